//! Kernel command line: a tokenizer with the kernel's own rules, and the `kubejoin.*` keys.
//!
//! # Tokenizing
//! [`tokenize`] follows `next_arg()` in the kernel's `lib/cmdline.c` (as `parse_args()` in
//! `kernel/params.c` drives it), so kubejoin sees exactly the parameters the kernel and init see:
//!
//! * parameters are separated by whitespace — the kernel's `isspace()`, which besides space, tab,
//!   newline, vertical tab, form feed and carriage return also counts byte `0xA0` (Latin-1
//!   no-break space);
//! * a double quote anywhere in a token toggles quoting, so `a="b c"` and `"a=b c"` are one token;
//! * quotes are removed where the kernel removes them: one at the start of the token, one at the
//!   start of the value, and one at the very end of the token. A quote in the middle of a value
//!   (`a=b"c d"`) is kept, as the kernel keeps it — quote the whole value instead (`a="b c d"`);
//! * `param=value` splits at the first `=` (a token without `=` has no value; as in the kernel a
//!   leading `=` does not count as the separator);
//! * a bare `--` ends the kernel's parameters: what follows is init's (see [`Cmdline::init_args`]);
//! * repeated keys are all kept, in order.
//!
//! Where the kernel is lenient kubejoin refuses, because a node must not join with half-read
//! settings: an **unterminated quote** is an error naming the byte offset of the opening quote
//! (the kernel would silently swallow the rest of the line into one parameter, hiding every
//! `kubejoin.*` key after it); a NUL byte is an error (it cannot come from `/proc/cmdline`).
//! Bytes that are not UTF-8 never make the tokenizer fail: such parameters are kept with U+FFFD
//! replacements and [`Param::lossy`] set, and only a `kubejoin.*` value that is not UTF-8 is
//! refused. The tokenizer never panics on any input (it is fuzzed as a pure function).
//!
//! # kubejoin keys
//! `kubejoin.<key>[=value]` with the keys of [`crate::plan::key::Key`] (mirroring
//! `kubejoin join`'s flags). A key that allows one value and is given twice with different
//! values is an error (not last-wins); the same value twice is a warning. Unknown `kubejoin.*`
//! keys are warnings with a "did you mean" suggestion. `_` and `-` are interchangeable in key
//! names, as in the kernel's own `parameq()`. Every other parameter (`ip=`, `root=`,
//! `br_netfilter.x=1`, …) stays available through [`Cmdline::params`] for other stages.

use crate::fs::root::Root;
use crate::plan::key::{did_you_mean, Key, KeyError};
use crate::plan::values::Values;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The prefix of kubejoin's own parameters.
pub const PREFIX: &str = "kubejoin.";

/// At most this many bytes are read from a command line file. The kernel's own limit
/// (`COMMAND_LINE_SIZE`) is 2–4 KiB on common architectures; anything far larger is not a
/// command line.
pub const MAX_LEN: usize = 64 * 1024;

/// One parameter as the kernel split it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The part before the first `=` (quotes removed as the kernel removes them).
    pub key: String,
    /// The part after the first `=`; `None` when there was no `=`.
    pub value: Option<String>,
    /// Byte offset of the parameter in the command line (of its opening quote, if any).
    pub offset: usize,
    /// Some bytes were not UTF-8 and were replaced with U+FFFD.
    pub lossy: bool,
}

/// A command line that cannot be used. Never carries a token secret.
#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    #[error("unterminated double quote at byte {offset} of the kernel command line")]
    UnterminatedQuote { offset: usize },
    #[error("NUL byte at byte {offset} of the kernel command line")]
    Nul { offset: usize },
    #[error("kernel command line {path} is longer than {max} bytes")]
    TooLong { path: PathBuf, max: usize },
    #[error("reading the kernel command line {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key} at byte {offset} of the kernel command line is not valid UTF-8")]
    NotUtf8 { key: String, offset: usize },
    #[error("{key} at byte {offset} of the kernel command line: {error}")]
    Key {
        key: String,
        offset: usize,
        error: KeyError,
    },
    #[error(
        "{key} is given twice on the kernel command line (bytes {first} and {second}) with different \
         values ({first_value} and {second_value}); only one value makes sense"
    )]
    Duplicate {
        key: String,
        first: usize,
        second: usize,
        first_value: String,
        second_value: String,
    },
}

impl crate::error::Classify for CmdlineError {
    fn class(&self) -> crate::error::Class {
        match self {
            CmdlineError::Read { .. } => crate::error::Class::Other,
            _ => crate::error::Class::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CmdlineError::UnterminatedQuote { .. } => {
                Some("close the quote in the boot loader entry (PXE/iPXE script, grub.cfg)".into())
            }
            CmdlineError::Duplicate { .. } => Some(
                "the boot loader may append a second copy of the arguments (e.g. iPXE `imgargs` and an \
                 embedded cmdline): keep one"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The kernel's `isspace()` (lib/ctype.c): ASCII whitespace and 0xA0.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

fn skip_spaces(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && is_space(bytes[pos]) {
        pos += 1;
    }
    pos
}

fn text(b: &[u8]) -> (String, bool) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (String::from_utf8_lossy(b).into_owned(), true),
    }
}

/// Splits a command line into parameters with the kernel's rules (see the module docs).
/// A `--` token is returned like any other (key `--`, no value); [`Cmdline`] splits there.
pub fn tokenize(bytes: &[u8]) -> Result<Vec<Param>, CmdlineError> {
    let mut out = Vec::new();
    let mut pos = skip_spaces(bytes, 0);
    while pos < bytes.len() {
        let offset = pos;
        let mut start = pos;
        let (mut in_quote, mut quoted, mut quote_at) = (false, false, pos);
        if bytes[start] == b'"' {
            start += 1;
            in_quote = true;
            quoted = true;
        }
        // `equals == 0` means "no '=' yet", exactly as in next_arg(): a '=' at index 0 does not
        // count as the separator.
        let (mut i, mut equals) = (0usize, 0usize);
        while let Some(&c) = bytes.get(start + i) {
            if c == 0 {
                return Err(CmdlineError::Nul { offset: start + i });
            }
            if is_space(c) && !in_quote {
                break;
            }
            if equals == 0 && c == b'=' {
                equals = i;
            }
            if c == b'"' {
                in_quote = !in_quote;
                if in_quote {
                    quote_at = start + i;
                }
            }
            i += 1;
        }
        if in_quote {
            return Err(CmdlineError::UnterminatedQuote { offset: quote_at });
        }
        let tok = &bytes[start..start + i];
        let last_is_quote = i > 0 && tok[i - 1] == b'"';
        let (key, value) = if equals == 0 {
            let end = if quoted && last_is_quote { i - 1 } else { i };
            (&tok[..end], None)
        } else {
            let mut vstart = equals + 1;
            let mut end = i;
            if tok.get(vstart) == Some(&b'"') {
                vstart += 1;
                if last_is_quote {
                    end = i - 1;
                }
            }
            // A token that opened with a quote loses its last quote too (a no-op when the
            // value's closing quote was already removed).
            if quoted && end == i && last_is_quote {
                end = i - 1;
            }
            (&tok[..equals], Some(&tok[vstart..end.max(vstart)]))
        };
        let (key, key_lossy) = text(key);
        let (value, value_lossy) = match value {
            Some(v) => {
                let (v, l) = text(v);
                (Some(v), l)
            }
            None => (None, false),
        };
        out.push(Param {
            key,
            value,
            offset,
            lossy: key_lossy || value_lossy,
        });
        pos = start + i;
        if pos < bytes.len() {
            pos += 1;
        }
        pos = skip_spaces(bytes, pos);
    }
    Ok(out)
}

/// A parsed kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// The kernel's parameters (everything before a bare `--`), in order, repeats kept.
    pub params: Vec<Param>,
    /// What follows `--`: init's arguments.
    pub init_args: Vec<Param>,
}

/// The `kubejoin.*` part of a command line: the layer's values and the warnings found.
#[derive(Debug, Clone, Default)]
pub struct KubejoinParams {
    pub values: Values,
    pub warnings: Vec<String>,
}

impl Cmdline {
    /// Parses command line bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CmdlineError> {
        let mut params = tokenize(bytes)?;
        let init_args = match params
            .iter()
            .position(|p| p.key == "--" && p.value.is_none())
        {
            Some(i) => {
                let rest = params.split_off(i + 1);
                params.pop();
                rest
            }
            None => Vec::new(),
        };
        Ok(Self { params, init_args })
    }

    /// Reads and parses `path` (bounded by [`MAX_LEN`]).
    pub fn read_file(path: &Path) -> Result<Self, CmdlineError> {
        let read_err = |source| CmdlineError::Read {
            path: path.to_path_buf(),
            source,
        };
        let f = std::fs::File::open(path).map_err(read_err)?;
        let mut buf = Vec::new();
        f.take(MAX_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        if buf.len() > MAX_LEN {
            return Err(CmdlineError::TooLong {
                path: path.to_path_buf(),
                max: MAX_LEN,
            });
        }
        Self::parse(&buf)
    }

    /// Reads `/proc/cmdline` under `root`.
    pub fn read(root: &Root) -> Result<Self, CmdlineError> {
        let path = root.join("/proc/cmdline").map_err(|e| CmdlineError::Read {
            path: PathBuf::from("/proc/cmdline"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        Self::read_file(&path)
    }

    /// Every parameter named `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Param> + 'a {
        self.params.iter().filter(move |p| p.key == key)
    }

    /// The last parameter named `key` (the kernel's own convention for repeated parameters).
    pub fn last(&self, key: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.key == key)
    }

    /// The `kubejoin.*` keys as a settings layer (see the module docs for the rules).
    pub fn kubejoin(&self) -> Result<KubejoinParams, CmdlineError> {
        let mut out = KubejoinParams::default();
        // Where each key was first given, for duplicate errors; sysctls are single-valued per name.
        let mut first_at: HashMap<(Key, String), (usize, String)> = HashMap::new();
        for p in &self.params {
            let Some(name) = p.key.strip_prefix(PREFIX) else {
                continue;
            };
            let Some(key) = Key::parse(name) else {
                let hint = did_you_mean(name)
                    .map(|k| format!(" (did you mean {PREFIX}{k}?)"))
                    .unwrap_or_default();
                out.warnings.push(format!(
                    "ignoring unknown kernel parameter {} at byte {}{hint}",
                    p.key, p.offset
                ));
                continue;
            };
            let full = format!("{PREFIX}{}", key.name());
            if p.lossy {
                return Err(CmdlineError::NotUtf8 {
                    key: full,
                    offset: p.offset,
                });
            }
            let shown = shown_value(key, p.value.as_deref());
            match out.values.set(key, p.value.as_deref()) {
                Ok(None) => {}
                Ok(Some(note)) => out
                    .warnings
                    .push(format!("{full} at byte {}: {note}", p.offset)),
                Err(KeyError::Duplicate { .. }) => {
                    let (first, first_value) = first_at
                        .get(&(key, slot_name(key, p)))
                        .cloned()
                        .unwrap_or((0, String::new()));
                    return Err(CmdlineError::Duplicate {
                        key: full,
                        first,
                        second: p.offset,
                        first_value,
                        second_value: shown,
                    });
                }
                Err(error) => {
                    return Err(CmdlineError::Key {
                        key: full,
                        offset: p.offset,
                        error,
                    })
                }
            }
            first_at
                .entry((key, slot_name(key, p)))
                .or_insert((p.offset, shown));
        }
        for p in &self.init_args {
            if p.key.starts_with(PREFIX) {
                out.warnings.push(format!(
                    "ignoring {} at byte {}: it comes after `--`, so it is an argument for init, not a kernel parameter",
                    p.key, p.offset
                ));
            }
        }
        Ok(out)
    }
}

/// The "slot" a value fills: the sysctl name for `sysctl`, nothing for other keys.
fn slot_name(key: Key, p: &Param) -> String {
    match (key, p.value.as_deref()) {
        (Key::Sysctl, Some(v)) => v.split_once('=').map_or(v, |(n, _)| n).trim().to_string(),
        _ => String::new(),
    }
}

/// A value as errors may show it: tokens redacted to their id.
fn shown_value(key: Key, value: Option<&str>) -> String {
    let v = value.unwrap_or("");
    match key {
        Key::Token | Key::TlsBootstrapToken => match v.split_once('.') {
            Some((id, _)) if id.len() == 6 => format!("{id}.<redacted>"),
            _ => "<redacted>".into(),
        },
        _ => format!("{v:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(line: &str) -> Vec<(String, Option<String>)> {
        tokenize(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn p(k: &str, v: Option<&str>) -> (String, Option<String>) {
        (k.to_string(), v.map(String::from))
    }

    #[test]
    fn splits_on_kernel_whitespace_and_keeps_repeats() {
        assert_eq!(
            kv("  root=/dev/sda1 ro\tquiet\nip=dhcp ip=eth0:dhcp \r\x0b\x0cx=1\n"),
            vec![
                p("root", Some("/dev/sda1")),
                p("ro", None),
                p("quiet", None),
                p("ip", Some("dhcp")),
                p("ip", Some("eth0:dhcp")),
                p("x", Some("1")),
            ]
        );
        assert!(kv("").is_empty());
        assert!(kv(" \t\n").is_empty());
        // 0xA0 is whitespace to the kernel's isspace().
        let t = tokenize(b"a=1\xa0b=2").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].offset, 4);
    }

    #[test]
    fn removes_quotes_where_the_kernel_does() {
        assert_eq!(kv(r#"a="b c" d"#), vec![p("a", Some("b c")), p("d", None)]);
        assert_eq!(kv(r#""a=b c" d"#), vec![p("a", Some("b c")), p("d", None)]);
        assert_eq!(kv(r#""quoted flag""#), vec![p("quoted flag", None)]);
        // A quote opened mid-value protects spaces but is kept, exactly as the kernel keeps it.
        assert_eq!(
            kv(r#"a=b"c d"e f"#),
            vec![p("a", Some(r#"b"c d"e"#)), p("f", None)]
        );
        assert_eq!(kv(r#"k="v=w x""#), vec![p("k", Some("v=w x"))]);
        assert_eq!(kv(r#"a="" b="#), vec![p("a", Some("")), p("b", Some(""))]);
        assert_eq!(kv(r#"a=""#.trim_end_matches('"')), vec![p("a", Some(""))]);
        assert_eq!(kv("\"\""), vec![p("", None)]);
        // The kernel ignores a '=' at index 0 when looking for the separator.
        assert_eq!(kv("=a=b"), vec![p("=a", Some("b"))]);
        assert_eq!(kv("a==b"), vec![p("a", Some("=b"))]);
    }

    #[test]
    fn unterminated_quote_is_an_error_naming_the_position() {
        let e = tokenize(br#"root=/dev/sda kubejoin.node-name="worker 1 kubejoin.token=x"#)
            .unwrap_err();
        assert!(
            matches!(e, CmdlineError::UnterminatedQuote { offset: 33 }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "unterminated double quote at byte 33 of the kernel command line"
        );
        assert!(matches!(
            tokenize(b"\"abc").unwrap_err(),
            CmdlineError::UnterminatedQuote { offset: 0 }
        ));
        assert!(matches!(
            tokenize(b"a=\"x\" \"").unwrap_err(),
            CmdlineError::UnterminatedQuote { offset: 6 }
        ));
    }

    #[test]
    fn nul_and_non_utf8_bytes() {
        assert!(matches!(
            tokenize(b"a=1 b\0c").unwrap_err(),
            CmdlineError::Nul { offset: 5 }
        ));
        let t = tokenize(b"x=\xff\xfe y=ok").unwrap();
        assert!(t[0].lossy);
        assert_eq!(t[0].value.as_deref(), Some("\u{fffd}\u{fffd}"));
        assert!(!t[1].lossy);
        let c = Cmdline::parse(b"kubejoin.node-name=w\xff1").unwrap();
        let e = c.kubejoin().unwrap_err();
        assert!(
            matches!(e, CmdlineError::NotUtf8 { offset: 0, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("kubejoin.node-name"));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: every byte value, quotes, '=' and spaces in many mixes.
        let alphabet: &[u8] = b"\"= a-\t\n\xa0\xff\x00k.";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..64 {
            for _ in 0..200 {
                let line: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        if seed.is_multiple_of(3) {
                            (seed >> 8) as u8
                        } else {
                            alphabet[(seed as usize >> 3) % alphabet.len()]
                        }
                    })
                    .collect();
                if let Ok(c) = Cmdline::parse(&line) {
                    let _ = c.kubejoin();
                }
            }
        }
    }

    #[test]
    fn double_dash_ends_kernel_params() {
        let c = Cmdline::parse(
            b"ro kubejoin.platform=aws -- single kubejoin.token=abcdef.0123456789abcdef",
        )
        .unwrap();
        assert_eq!(c.params.len(), 2);
        assert_eq!(
            c.init_args
                .iter()
                .map(|p| p.key.as_str())
                .collect::<Vec<_>>(),
            ["single", "kubejoin.token"]
        );
        let k = c.kubejoin().unwrap();
        assert!(k.values.token.is_none());
        assert!(k.warnings[0].contains("after `--`"), "{:?}", k.warnings);
        // `--=x` has a value, so it is an ordinary parameter.
        assert!(Cmdline::parse(b"--=x a").unwrap().init_args.is_empty());
    }

    #[test]
    fn other_params_stay_available() {
        let c = Cmdline::parse(
            b"br_netfilter.x=1 ip=dhcp nameserver=1.1.1.1 root=LABEL=root nameserver=8.8.8.8",
        )
        .unwrap();
        assert_eq!(
            c.last("nameserver").and_then(|p| p.value.as_deref()),
            Some("8.8.8.8")
        );
        assert_eq!(c.all("nameserver").count(), 2);
        assert_eq!(
            c.last("root").and_then(|p| p.value.as_deref()),
            Some("LABEL=root")
        );
        assert_eq!(
            c.last("br_netfilter.x").and_then(|p| p.value.as_deref()),
            Some("1")
        );
    }

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";
    const PIN2: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn reads_every_kubejoin_key() {
        let line = format!(
            "kubejoin.endpoint=10.0.0.1:6443 kubejoin.token={TOKEN} kubejoin.ca-cert-hash={PIN},{PIN2} \
             kubejoin.ca-cert-hash={PIN} kubejoin.tls-bootstrap-token={TOKEN} kubejoin.node-name=Worker-1 \
             kubejoin.cri-socket=/run/crio/crio.sock kubejoin.kubelet-arg=max-pods=50 \
             \"kubejoin.kubelet-arg=node-labels=a=b,c=d\" kubejoin.modules=br_netfilter,overlay \
             kubejoin.sysctl=net.ipv4.ip_forward=1 kubejoin.sysctl=vm.swappiness=0 kubejoin.platform=aws \
             kubejoin.config=metadata kubejoin.config.sha256={} kubejoin.handoff=exec \
             kubejoin.on-failure=reboot kubejoin.sysroot=/dev/vda1 kubejoin.debug kubejoin.timeline=console kubejoin.timeout=2m \
             kubejoin.discovery-token-unsafe-skip-ca-verification",
            "ab".repeat(32)
        );
        let k = Cmdline::parse(line.as_bytes()).unwrap().kubejoin().unwrap();
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
        let v = k.values;
        assert_eq!(v.endpoint.as_deref(), Some("10.0.0.1:6443"));
        assert_eq!(v.token.as_ref().map(|t| t.id()), Some("abcdef"));
        assert_eq!(v.ca_cert_hashes.as_ref().map(Vec::len), Some(2));
        assert_eq!(v.node_name.as_deref(), Some("worker-1"));
        assert_eq!(v.cri_socket.as_deref(), Some("/run/crio/crio.sock"));
        assert_eq!(
            v.kubelet_args,
            vec![
                ("max-pods".into(), "50".into()),
                ("node-labels".into(), "a=b,c=d".into())
            ]
        );
        assert_eq!(
            v.modules,
            Some(vec!["br_netfilter".to_string(), "overlay".to_string()])
        );
        assert_eq!(v.sysctls.len(), 2);
        assert_eq!(v.platform.as_deref(), Some("aws"));
        assert_eq!(v.config.as_deref(), Some("metadata"));
        assert!(v.config_sha256.is_some());
        assert_eq!(v.handoff.as_deref(), Some("exec"));
        assert_eq!(v.on_failure.as_deref(), Some("reboot"));
        assert_eq!(v.timeout, Some(std::time::Duration::from_secs(120)));
        assert_eq!(v.unsafe_skip_ca_verification, Some(true));
    }

    #[test]
    fn unknown_keys_warn_with_did_you_mean() {
        let c = Cmdline::parse(
            b"kubejoin.tokn=x kubejoin.ca_cert_hsh=y kubejoin.zzzzzz=1 kubejoin.node_name=a",
        )
        .unwrap();
        let k = c.kubejoin().unwrap();
        assert_eq!(
            k.values.node_name.as_deref(),
            Some("a"),
            "underscores are dashes, as in parameq()"
        );
        assert_eq!(k.warnings.len(), 3, "{:?}", k.warnings);
        assert!(
            k.warnings[0].contains("kubejoin.tokn at byte 0 (did you mean kubejoin.token?)"),
            "{}",
            k.warnings[0]
        );
        assert!(
            k.warnings[1].contains("did you mean kubejoin.ca-cert-hash?"),
            "{}",
            k.warnings[1]
        );
        assert!(!k.warnings[2].contains("did you mean"), "{}", k.warnings[2]);
        // The unknown value is not echoed (it may be a mistyped token).
        assert!(!k.warnings.join(" ").contains("=x"));
    }

    #[test]
    fn duplicate_single_valued_keys_are_errors() {
        let e = Cmdline::parse(b"kubejoin.node-name=a quiet kubejoin.node-name=b")
            .unwrap()
            .kubejoin()
            .unwrap_err();
        match &e {
            CmdlineError::Duplicate {
                key, first, second, ..
            } => {
                assert_eq!(
                    (key.as_str(), *first, *second),
                    ("kubejoin.node-name", 0, 27)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(r#"("a" and "b")"#), "{e}");
        // Tokens given twice: the error names both ids, never the secrets.
        let line = format!("kubejoin.token={TOKEN} kubejoin.token=zzzzzz.0123456789abcdef");
        let e = Cmdline::parse(line.as_bytes())
            .unwrap()
            .kubejoin()
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("abcdef.<redacted>") && msg.contains("zzzzzz.<redacted>"),
            "{msg}"
        );
        assert!(!msg.contains("0123456789abcdef"), "{msg}");
        // The same value twice is only a warning.
        let k = Cmdline::parse(b"kubejoin.platform=aws kubejoin.platform=aws")
            .unwrap()
            .kubejoin()
            .unwrap();
        assert_eq!(k.warnings.len(), 1);
    }

    #[test]
    fn bad_values_name_key_and_position() {
        for (line, want) in [
            ("kubejoin.endpoint", "kubejoin.endpoint at byte 0 of the kernel command line: needs a value"),
            ("ro kubejoin.endpoint=nope", "kubejoin.endpoint at byte 3 of the kernel command line: invalid API server endpoint"),
            ("kubejoin.token=foo.bar", "kubejoin.token at byte 0 of the kernel command line: the bootstrap token is not of the form"),
            ("kubejoin.ca-cert-hash=md5:00", "unknown hash format"),
            ("kubejoin.platform=awz", "unknown platform \"awz\""),
            ("kubejoin.kubelet-arg=novalue", "is not name=value"),
            ("kubejoin.config=relative/path", "neither an absolute path"),
            ("kubejoin.config.sha256=abc", "is not a SHA-256 hash"),
            ("kubejoin.timeout=5", "invalid duration"),
            ("kubejoin.handoff=maybe", "expected one of exec, switch-root, none"),
            ("kubejoin.discovery-token-unsafe-skip-ca-verification=perhaps", "not a boolean"),
            (
                "kubejoin.sysctl=b=1 kubejoin.sysctl=a=1 kubejoin.sysctl=a=2",
                "kubejoin.sysctl is given twice on the kernel command line (bytes 20 and 40)",
            ),
        ] {
            let e = Cmdline::parse(line.as_bytes()).unwrap().kubejoin().unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
        let e = Cmdline::parse(b"kubejoin.token=abcdef.0123456789ABCDEF")
            .unwrap()
            .kubejoin()
            .unwrap_err();
        assert!(!e.to_string().contains("0123456789"), "{e}");
    }

    #[test]
    fn reads_proc_cmdline_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(
            dir.path().join("proc/cmdline"),
            "ro kubejoin.node-name=n1\n",
        )
        .unwrap();
        let c = Cmdline::read(&Root::new(dir.path())).unwrap();
        assert_eq!(
            c.kubejoin().unwrap().values.node_name.as_deref(),
            Some("n1")
        );
        std::fs::write(dir.path().join("big"), vec![b'a'; MAX_LEN + 1]).unwrap();
        assert!(matches!(
            Cmdline::read_file(&dir.path().join("big")),
            Err(CmdlineError::TooLong { .. })
        ));
        let e = Cmdline::read_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
