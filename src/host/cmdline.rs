//! The kernel command line, split the way the kernel splits it, and the two kinds of keys host
//! preparation reads from it: `module.param=value` (what modprobe passes to a module it loads;
//! the kernel applies these itself only to built-in modules) and `sysctl.key=value` (which the
//! kernel applies at boot only to sysctls that already exist — those of a module loaded later,
//! like `net.bridge.*`, are missed, so we apply them again after loading modules).

/// Kernel module names treat `-` and `_` alike; the kernel itself uses `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// One `param` or `param=value` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub key: String,
    pub value: Option<String>,
}

/// Splits a command line as the kernel's argument parser does: arguments are separated by
/// whitespace outside double quotes; a quote right after `=` (or opening the whole argument)
/// is removed together with the closing quote at the end of the argument; `--` ends the
/// kernel's arguments (the rest belongs to init and is not returned).
pub fn split(cmdline: &str) -> Vec<Arg> {
    let b = cmdline.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut start = i;
        let quoted = b[i] == b'"';
        let mut in_quote = quoted;
        if quoted {
            start += 1;
            i += 1;
        }
        let mut equals = None;
        while i < b.len() {
            if b[i].is_ascii_whitespace() && !in_quote {
                break;
            }
            if equals.is_none() && b[i] == b'=' && i > start {
                equals = Some(i);
            }
            if b[i] == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        let end = i;
        // The kernel drops a trailing quote when the argument or its value opened with one.
        let ends_in_quote = end > start && b[end - 1] == b'"';
        let (key, value) = match equals {
            None => {
                let e = if quoted && ends_in_quote {
                    end - 1
                } else {
                    end
                };
                (&b[start..e], None)
            }
            Some(eq) => {
                let mut vs = eq + 1;
                let mut ve = end;
                let value_quoted = b.get(vs) == Some(&b'"');
                if value_quoted {
                    vs += 1;
                }
                if (value_quoted || quoted) && ends_in_quote && ve > vs {
                    ve -= 1;
                }
                (&b[start..eq], Some(&b[vs.min(ve)..ve]))
            }
        };
        let key = String::from_utf8_lossy(key).into_owned();
        if key == "--" && value.is_none() {
            break;
        }
        out.push(Arg {
            key,
            value: value.map(|v| String::from_utf8_lossy(v).into_owned()),
        });
    }
    out
}

/// `module.param[=value]` arguments: (module with `-` folded to `_`, param, value).
pub fn module_params(args: &[Arg]) -> Vec<(String, String, Option<String>)> {
    args.iter()
        .filter_map(|a| {
            let (module, param) = a.key.split_once('.')?;
            if module.is_empty() || param.is_empty() || module == "sysctl" {
                return None;
            }
            Some((normalize(module), param.to_string(), a.value.clone()))
        })
        .collect()
}

/// `sysctl.key=value` arguments: (key as written, value).
pub fn sysctls(args: &[Arg]) -> Vec<(String, String)> {
    args.iter()
        .filter_map(|a| {
            let key = a.key.strip_prefix("sysctl.")?;
            Some((key.to_string(), a.value.clone()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: Option<&str>) -> Arg {
        Arg {
            key: k.into(),
            value: v.map(Into::into),
        }
    }

    #[test]
    fn splits_like_the_kernel() {
        let args = split(
            "BOOT_IMAGE=/vmlinuz root=UUID=abc ro quiet  br_netfilter.foo=1 \
             dyndbg=\"file x.c +p\" \"ip_vs.conn_tab_bits=12\" bare \"x.y=a b\" -- init-arg z.q=1\n",
        );
        assert_eq!(
            args,
            vec![
                kv("BOOT_IMAGE", Some("/vmlinuz")),
                kv("root", Some("UUID=abc")),
                kv("ro", None),
                kv("quiet", None),
                kv("br_netfilter.foo", Some("1")),
                kv("dyndbg", Some("file x.c +p")),
                kv("ip_vs.conn_tab_bits", Some("12")),
                kv("bare", None),
                kv("x.y", Some("a b")),
            ]
        );
    }

    #[test]
    fn module_and_sysctl_keys() {
        let args = split("nf-conntrack.hashsize=4096 sysctl.net.ipv4.ip_forward=1 sysctl.vm/swappiness=10 quiet .x=1");
        assert_eq!(
            module_params(&args),
            vec![(
                "nf_conntrack".into(),
                "hashsize".into(),
                Some("4096".into())
            )]
        );
        assert_eq!(
            sysctls(&args),
            vec![
                ("net.ipv4.ip_forward".into(), "1".into()),
                ("vm/swappiness".into(), "10".into())
            ]
        );
    }

    #[test]
    fn empty_and_odd_inputs() {
        assert!(split("").is_empty());
        assert!(split("   \n").is_empty());
        assert_eq!(split("a=\"\""), vec![kv("a", Some(""))]);
        assert_eq!(split("\"unterminated x"), vec![kv("unterminated x", None)]);
        assert_eq!(
            split("=x"),
            vec![kv("=x", None)],
            "an `=` at the start is part of the name"
        );
    }
}
