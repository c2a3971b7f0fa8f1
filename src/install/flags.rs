//! `/var/lib/kubelet/kubeadm-flags.env` (spec §6.3): the node-specific kubelet flags.
//!
//! `KUBELET_KUBEADM_ARGS=<Go %q of the space-joined args>`; the packaging drop-in expands it
//! into the kubelet's command line, and the exec handoff reads it back the same way.
//!
//! Which flags kubeadm writes depends on its version (`--container-runtime=remote` up to v1.25,
//! `--network-plugin=cni` for a pre-v1.24 kubelet's dockershim under kubeadm v1.24, the pause
//! image up to v1.34 with that version's tag): the caller passes them from
//! [`crate::versions::ClusterRules`].

pub use crate::versions::RuntimeFlags;

/// The node-local inputs of the flags.
#[derive(Debug, Clone, Default)]
pub struct FlagsInput<'a> {
    /// Which runtime flags the cluster's kubeadm version writes.
    pub runtime: RuntimeFlags,
    /// `--container-runtime-endpoint`, unless the cluster's KubeletConfiguration sets one.
    pub container_runtime_endpoint: Option<&'a str>,
    /// The node name when it differs from the lower-cased hostname.
    pub hostname_override: Option<&'a str>,
    /// `key=value:Effect` / `key:Effect`.
    pub taints: &'a [String],
    /// `ClusterConfiguration.imageRepository`.
    pub image_repository: &'a str,
    /// The pause tag of the cluster's kubeadm version; `None`: no `--pod-infra-container-image`
    /// (kubeadm from v1.35).
    pub pause_tag: Option<&'a str>,
    /// `kubeletExtraArgs` / `--kubelet-arg`, in the order given.
    pub extra_args: &'a [(String, String)],
}

/// kubeadm's `buildKubeletArgsCommon` merged with the extra args by `ArgumentsToCommand`:
/// an extra arg removes every base arg of its name; the result is sorted by name, then value.
pub fn kubelet_args(input: &FlagsInput<'_>) -> Vec<(String, String)> {
    let mut base: Vec<(String, String)> = Vec::new();
    match input.runtime {
        RuntimeFlags::Dockershim => base.push(("network-plugin".into(), "cni".into())),
        RuntimeFlags::RemoteWithFlag | RuntimeFlags::Remote => {
            if input.runtime == RuntimeFlags::RemoteWithFlag {
                base.push(("container-runtime".into(), "remote".into()));
            }
            if let Some(ep) = input.container_runtime_endpoint {
                base.push(("container-runtime-endpoint".into(), ep.into()));
            }
        }
    }
    if let Some(h) = input.hostname_override {
        base.push(("hostname-override".into(), h.into()));
    }
    if let Some(tag) = input.pause_tag {
        base.push((
            "pod-infra-container-image".into(),
            format!("{}/pause:{tag}", input.image_repository),
        ));
    }
    if !input.taints.is_empty() {
        base.push(("register-with-taints".into(), input.taints.join(",")));
    }
    base.retain(|(name, _)| !input.extra_args.iter().any(|(n, _)| n == name));
    base.extend(input.extra_args.iter().cloned());
    base.sort();
    base
}

/// `--name=value` for each arg.
pub fn to_command_line(args: &[(String, String)]) -> Vec<String> {
    args.iter().map(|(n, v)| format!("--{n}={v}")).collect()
}

/// The file's content.
pub fn render(args: &[(String, String)]) -> String {
    format!(
        "KUBELET_KUBEADM_ARGS={}\n",
        go_quote(&to_command_line(args).join(" "))
    )
}

/// Go's `strconv.Quote`: double quotes, `"` and `\` escaped, C escapes for control characters,
/// `\xNN`/`\uNNNN`/`\UNNNNNNNN` for other non-printable characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c == ' ' || !(c.is_control() || c.is_whitespace()) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A kubeadm-flags.env that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kubeadm-flags.env is malformed: {0}")]
pub struct FlagsError(pub String);

/// Reverses [`go_quote`].
pub fn go_unquote(q: &str) -> Result<String, FlagsError> {
    let bad = |why: &str| FlagsError(why.to_string());
    let inner = q
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| bad("the value is not double-quoted"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        fn hex(chars: &mut std::str::Chars<'_>, n: usize) -> Result<char, FlagsError> {
            let digits: String = chars.by_ref().take(n).collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| digits.len() == n)
                .and_then(char::from_u32)
                .ok_or_else(|| FlagsError("bad hex escape".into()))
        }
        let e = match chars.next() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('a') => '\u{7}',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('v') => '\u{b}',
            Some('x') => hex(&mut chars, 2)?,
            Some('u') => hex(&mut chars, 4)?,
            Some('U') => hex(&mut chars, 8)?,
            _ => return Err(bad("unknown escape")),
        };
        out.push(e);
    }
    Ok(out)
}

/// The kubelet arguments in a kubeadm-flags.env, split on whitespace as systemd expands
/// `$KUBELET_KUBEADM_ARGS`.
pub fn parse(text: &str) -> Result<Vec<String>, FlagsError> {
    for line in text.lines() {
        if let Some(v) = line.trim().strip_prefix("KUBELET_KUBEADM_ARGS=") {
            let v = v.trim();
            let value = if v.starts_with('"') {
                go_unquote(v)?
            } else {
                v.to_string()
            };
            return Ok(value.split_whitespace().map(str::to_string).collect());
        }
    }
    Err(FlagsError("no KUBELET_KUBEADM_ARGS line".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn reproduces_the_reference_kubeadm_file_semantics() {
        // reference-kubeadm-join/kubeadm-flags.env, written by kubeadm 1.28.7 (pause 3.9 then).
        let reference = std::fs::read_to_string(format!(
            "{}/tests/fixtures/apiserver/reference-kubeadm-join/kubeadm-flags.env",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let args = kubelet_args(&FlagsInput {
            container_runtime_endpoint: Some("unix:///tmp/realcp/refjoin/no-such-cri.sock"),
            hostname_override: Some("ref-join"),
            image_repository: "registry.k8s.io",
            pause_tag: Some("3.9"),
            ..Default::default()
        });
        let ours = render(&args);
        assert_eq!(ours, reference);
        assert_eq!(parse(&reference).unwrap().len(), 3);
    }

    #[test]
    fn reproduces_what_kubeadm_v1_24_wrote() {
        // kubeadm-v1.24/kubeadm-flags.env, written by kubeadm v1.24.0-alpha.1 (pause 3.6 then).
        let reference = std::fs::read_to_string(format!(
            "{}/tests/fixtures/kubeadm-v1.24/kubeadm-flags.env",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let v = crate::plan::version::KubernetesVersion::parse("v1.24.0-alpha.1").unwrap();
        let rules = crate::versions::ClusterRules::for_cluster(Some(&v));
        let endpoint = "unix:///tmp/realcp/run/containerd.sock";
        let args = kubelet_args(&FlagsInput {
            runtime: rules.runtime_flags(endpoint, None),
            container_runtime_endpoint: Some(endpoint),
            hostname_override: Some("cp-2"),
            image_repository: "k8s.gcr.io",
            pause_tag: rules.pause_tag(),
            ..Default::default()
        });
        assert_eq!(render(&args), reference);
    }

    #[test]
    fn dockershim_kubelets_get_the_network_plugin_and_no_runtime_flags() {
        let args = kubelet_args(&FlagsInput {
            runtime: RuntimeFlags::Dockershim,
            container_runtime_endpoint: Some("unix:///var/run/dockershim.sock"),
            image_repository: "k8s.gcr.io",
            pause_tag: Some("3.7"),
            ..Default::default()
        });
        assert_eq!(
            to_command_line(&args),
            vec![
                "--network-plugin=cni",
                "--pod-infra-container-image=k8s.gcr.io/pause:3.7"
            ]
        );
    }

    #[test]
    fn extra_args_override_by_name_and_everything_is_sorted() {
        let taints = vec![
            "dedicated=gpu:NoSchedule".to_string(),
            "spot:NoExecute".to_string(),
        ];
        let extra = pairs(&[
            ("node-ip", "10.0.0.5"),
            ("hostname-override", "custom"),
            ("feature-gates", "B=true"),
            ("feature-gates", "A=true"),
        ]);
        let args = kubelet_args(&FlagsInput {
            container_runtime_endpoint: Some("unix:///run/containerd/containerd.sock"),
            hostname_override: Some("worker-1"),
            taints: &taints,
            image_repository: "registry.example.com/k8s",
            pause_tag: Some("3.10"),
            extra_args: &extra,
            ..Default::default()
        });
        assert_eq!(
            to_command_line(&args),
            vec![
                "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
                "--feature-gates=A=true",
                "--feature-gates=B=true",
                "--hostname-override=custom",
                "--node-ip=10.0.0.5",
                "--pod-infra-container-image=registry.example.com/k8s/pause:3.10",
                "--register-with-taints=dedicated=gpu:NoSchedule,spot:NoExecute",
            ]
        );
    }

    #[test]
    fn no_runtime_flag_when_the_cluster_config_sets_it() {
        let args = kubelet_args(&FlagsInput {
            image_repository: "registry.k8s.io",
            pause_tag: Some("3.10"),
            ..Default::default()
        });
        assert_eq!(
            render(&args),
            "KUBELET_KUBEADM_ARGS=\"--pod-infra-container-image=registry.k8s.io/pause:3.10\"\n"
        );
        // kubeadm from v1.35: no pause flag at all.
        let args = kubelet_args(&FlagsInput {
            image_repository: "registry.k8s.io",
            ..Default::default()
        });
        assert_eq!(render(&args), "KUBELET_KUBEADM_ARGS=\"\"\n");
    }

    #[test]
    fn go_quoting_round_trips() {
        assert_eq!(go_quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(
            go_quote("x\ny\t\u{1}\u{7f}é\u{2028}"),
            r#""x\ny\t\x01\x7fé\u2028""#
        );
        for s in ["", "plain --a=b", "q\"\\\n\u{1}\u{7f}\u{2028}\u{1F600}é"] {
            assert_eq!(go_unquote(&go_quote(s)).unwrap(), s);
        }
        assert!(go_unquote("nope").is_err());
        assert!(go_unquote(r#""\q""#).is_err());
        assert!(parse("OTHER=1\n").is_err());
    }
}
