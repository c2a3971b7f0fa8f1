//! Config files: kubeadm JoinConfiguration v1beta3/v1beta4 and KubejoinConfiguration, read into
//! one normalized value, with kubeadm's defaults and messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kubejoin::error::{Class, Classify};
use kubejoin::plan::boot::OnFailure;
use kubejoin::plan::network::Addressing;
use kubejoin::plan::HandoffMode;
use kubejoin::source::joinconfig::{
    parse, ConfigError, ConfigErrorKind, ConfigFile, DiscoveryMethod, ImagePullPolicy,
    JoinConfiguration, Location, TaintEffect, Timeouts, DEFAULT_CA_CERT_PATH, MAX_CONFIG_BYTES,
};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

const SECRET: &str = "0123456789abcdef";
const TOKEN: &str = "abcdef.0123456789abcdef";
const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/config/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn ok(yaml: &str) -> ConfigFile {
    parse(yaml.as_bytes(), "join.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn join(yaml: &str) -> JoinConfiguration {
    ok(yaml).join.expect("a JoinConfiguration")
}

fn err(yaml: &str) -> ConfigError {
    let e = parse(yaml.as_bytes(), "join.yaml").expect_err("should be refused");
    // Whatever went wrong, the secret never shows.
    assert!(!e.to_string().contains(SECRET), "{e}");
    assert!(!format!("{e:?}").contains(SECRET), "{e:?}");
    assert_eq!(e.class(), Class::Usage);
    e
}

/// A v1beta4 document with token discovery; `extra` is appended at the top level.
fn v4(discovery: &str, extra: &str) -> String {
    format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n{discovery}{extra}")
}

fn token_discovery() -> String {
    format!(
        "  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 192.168.0.101:6443\n    caCertHashes: [\"{PIN}\"]\n"
    )
}

// ---- the spec §9 examples ---------------------------------------------------------------------

#[test]
fn spec_examples_v1beta4_and_v1beta3_normalize_to_the_same_value() {
    let b4 = parse(&fixture("join-v1beta4.yaml"), "join-v1beta4.yaml").unwrap();
    let b3 = parse(&fixture("join-v1beta3.yaml"), "join-v1beta3.yaml").unwrap();
    assert_eq!(b4.join, b3.join);
    assert!(
        b4.warnings.is_empty() && b3.warnings.is_empty(),
        "{:?} {:?}",
        b4.warnings,
        b3.warnings
    );

    let j = b4.join.unwrap();
    assert!(!j.dry_run);
    assert_eq!(j.ca_cert_path, PathBuf::from(DEFAULT_CA_CERT_PATH));
    match &j.discovery.method {
        DiscoveryMethod::Token {
            api_server_endpoint,
            token,
            ca_cert_hashes,
            unsafe_skip_ca_verification,
        } => {
            assert_eq!(api_server_endpoint, "192.168.0.101:6443");
            assert_eq!(token.id(), "abcdef");
            assert_eq!(token.secret(), SECRET);
            assert_eq!(ca_cert_hashes.pins().len(), 1);
            assert_eq!(ca_cert_hashes.pins()[0].to_string(), PIN);
            assert!(!unsafe_skip_ca_verification);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        j.discovery.tls_bootstrap_token.as_ref().map(|t| t.bearer()),
        Some(TOKEN.to_string())
    );
    assert_eq!(
        j.node_registration.name.as_ref().map(|n| n.as_str()),
        Some("worker-1")
    );
    assert_eq!(
        j.node_registration.cri_socket.as_deref(),
        Some("unix:///var/run/containerd/containerd.sock")
    );
    assert_eq!(
        j.node_registration.kubelet_extra_args,
        vec![("node-ip".to_string(), "10.0.0.5".to_string())]
    );
    assert!(j.node_registration.taints.is_empty());
    assert_eq!(j.timeouts, Timeouts::default());
    assert_eq!(j.timeouts.discovery, Duration::from_secs(300));
}

#[test]
fn v1beta4_and_v1beta3_differ_only_where_the_versions_differ() {
    // Different timeouts must make the values differ (the equality above is not vacuous).
    let b3 =
        include_str!("fixtures/config/join-v1beta3.yaml").replace("timeout: 5m0s", "timeout: 1m");
    let b4 = parse(&fixture("join-v1beta4.yaml"), "x")
        .unwrap()
        .join
        .unwrap();
    let b3 = join(&b3);
    assert_eq!(b3.timeouts.discovery, Duration::from_secs(60));
    assert_ne!(b3, b4);
}

#[test]
fn json_input_with_file_discovery() {
    let f = parse(
        &fixture("join-file-discovery.json"),
        "join-file-discovery.json",
    )
    .unwrap();
    let j = f.join.unwrap();
    assert!(j.dry_run);
    assert_eq!(
        j.discovery.method,
        DiscoveryMethod::File {
            kube_config_path: PathBuf::from("/etc/kubernetes/discovery.conf")
        }
    );
    assert_eq!(
        j.discovery.tls_bootstrap_token.map(|t| t.id().to_string()),
        Some("abcdef".into())
    );
    assert_eq!(
        j.node_registration.image_pull_policy,
        ImagePullPolicy::Never
    );
    assert!(!j.node_registration.image_pull_serial);
}

#[test]
fn multi_document_file_with_kubejoin_configuration() {
    let f = parse(
        &fixture("join-with-kubejoin.yaml"),
        "join-with-kubejoin.yaml",
    )
    .unwrap();
    let j = f.join.as_ref().unwrap();
    let DiscoveryMethod::Token {
        api_server_endpoint,
        ca_cert_hashes,
        ..
    } = &j.discovery.method
    else {
        panic!("{:?}", j.discovery)
    };
    assert_eq!(api_server_endpoint, "[fd00::10]:6443");
    assert_eq!(ca_cert_hashes.pins().len(), 2);
    // tlsBootstrapToken defaults to the discovery token.
    assert_eq!(
        j.discovery.tls_bootstrap_token.as_ref().map(|t| t.id()),
        Some("07401b")
    );
    let nr = &j.node_registration;
    assert_eq!(nr.name.as_ref().map(|n| n.as_str()), Some("edge-worker-07"));
    assert_eq!(
        nr.cri_socket.as_deref(),
        Some("unix:///run/containerd/containerd.sock")
    );
    let taints: Vec<String> = nr.taints.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        taints,
        [
            "node.example.com/edge=true:NoSchedule",
            "dedicated:PreferNoSchedule"
        ]
    );
    assert_eq!(nr.taints[1].effect, TaintEffect::PreferNoSchedule);
    // v1beta4 list: order and duplicates kept.
    assert_eq!(
        nr.kubelet_extra_args,
        vec![
            (
                "node-labels".to_string(),
                "topology.kubernetes.io/zone=edge-1".to_string()
            ),
            ("node-labels".to_string(), "example.com/rack=r7".to_string()),
        ]
    );
    assert_eq!(
        nr.ignore_preflight_errors,
        ["swap", "fileavailable--etc-kubernetes-pki-ca.crt"]
    );
    assert_eq!(j.skip_phases, ["preflight"]);
    assert_eq!(j.timeouts.discovery, Duration::from_secs(120));
    assert_eq!(j.timeouts.tls_bootstrap, Duration::from_secs(600));
    assert_eq!(j.timeouts.kubelet_health_check, Duration::from_secs(90));
    assert_eq!(j.timeouts.kubernetes_api_call, Duration::from_secs(60));

    let k = f.kubejoin.as_ref().unwrap();
    assert_eq!(k.modules, ["overlay", "br_netfilter"]);
    assert_eq!(
        k.sysctls,
        vec![
            ("net.ipv4.ip_forward".to_string(), "1".to_string()),
            (
                "net.bridge.bridge-nf-call-iptables".to_string(),
                "1".to_string()
            ),
            ("vm.overcommit_memory".to_string(), "1".to_string()),
        ]
    );
    assert_eq!(k.handoff, Some(HandoffMode::Exec));
    assert_eq!(k.kubelet_path, Some(PathBuf::from("/usr/bin/kubelet")));
    assert_eq!(k.on_failure, Some(OnFailure::Reboot));
    assert_eq!(k.timeout, Some(Duration::from_secs(600)));
    assert_eq!(k.tls_bootstrap_timeout, Some(Duration::from_secs(900)));
    assert_eq!(
        k.kubelet_args,
        vec![("max-pods".to_string(), "200".to_string())]
    );
    let net = k.network.as_ref().unwrap();
    assert_eq!(
        net.nameservers,
        [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(1, 1, 1, 1)]
    );
    assert_eq!(net.interfaces.len(), 2);
    assert_eq!(net.interfaces[0].name.as_deref(), Some("eth0"));
    assert_eq!(
        net.interfaces[0].addressing,
        Addressing::Static {
            address: Ipv4Addr::new(10, 0, 0, 7),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1))
        }
    );
    assert_eq!(net.interfaces[0].mtu, Some(9000));
    assert_eq!(net.interfaces[1].addressing, Addressing::Dhcp);

    // The KubeletConfiguration is listed as ignored, and said so.
    let ignored: Vec<_> = f.ignored().collect();
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0].kind, "KubeletConfiguration");
    assert_eq!(ignored[0].index, 2);
    assert_eq!(ignored[0].to_string(), "document 2: KubeletConfiguration (kubelet.config.k8s.io/v1beta1) is ignored, as kubeadm join ignores it");
    assert_eq!(f.documents.len(), 3);
    assert!(
        f.warnings
            .iter()
            .any(|w| w.contains("ignoring KubeletConfiguration")),
        "{:?}",
        f.warnings
    );
    // The scheme-less criSocket got a warning.
    assert!(
        f.warnings
            .iter()
            .any(|w| w.contains("nodeRegistration.criSocket")),
        "{:?}",
        f.warnings
    );

    // Nothing of either token's secret in Debug.
    let dbg = format!("{f:?}");
    assert!(!dbg.contains("f395accd246ae52d"), "{dbg}");
    assert!(dbg.contains("07401b"));
}

// ---- defaults -----------------------------------------------------------------------------------

#[test]
fn kubeadm_defaults_are_applied() {
    let j = join(&v4(
        &format!("  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: cp.example.com:6443\n    unsafeSkipCAVerification: true\n"),
        "",
    ));
    assert_eq!(j.ca_cert_path, PathBuf::from("/etc/kubernetes/pki/ca.crt"));
    assert!(!j.dry_run);
    assert_eq!(
        j.discovery.tls_bootstrap_token.as_ref().map(|t| t.bearer()),
        Some(TOKEN.to_string())
    );
    let DiscoveryMethod::Token {
        ca_cert_hashes,
        unsafe_skip_ca_verification,
        ..
    } = &j.discovery.method
    else {
        panic!()
    };
    assert!(ca_cert_hashes.is_empty());
    assert!(unsafe_skip_ca_verification);
    // Skipping CA verification is allowed, and said out loud.
    let f = ok(&v4(
        &format!("  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: cp.example.com:6443\n    unsafeSkipCAVerification: true\n"),
        "",
    ));
    assert_eq!(f.warnings.len(), 1);
    assert!(
        f.warnings[0]
            .starts_with("join.yaml: discovery.bootstrapToken.unsafeSkipCAVerification is true"),
        "{:?}",
        f.warnings
    );
    let t = j.timeouts;
    assert_eq!(
        (
            t.discovery,
            t.tls_bootstrap,
            t.kubelet_health_check,
            t.kubernetes_api_call
        ),
        (
            Duration::from_secs(300),
            Duration::from_secs(300),
            Duration::from_secs(240),
            Duration::from_secs(60)
        )
    );
    assert_eq!(
        (
            t.control_plane_component_health_check,
            t.etcd_api_call,
            t.upgrade_manifests
        ),
        (
            Duration::from_secs(240),
            Duration::from_secs(120),
            Duration::from_secs(300)
        )
    );
    let nr = j.node_registration;
    assert_eq!(nr.name, None);
    assert_eq!(nr.cri_socket, None);
    assert!(
        nr.taints.is_empty()
            && nr.kubelet_extra_args.is_empty()
            && nr.ignore_preflight_errors.is_empty()
    );
    assert_eq!(nr.image_pull_policy, ImagePullPolicy::IfNotPresent);
    assert!(nr.image_pull_serial);
    assert_eq!(j.patches_directory, None);
    assert!(j.skip_phases.is_empty());
}

#[test]
fn v1beta3_discovery_timeout_becomes_the_discovery_timeout() {
    let j = join(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n{}  timeout: 90s\n",
        token_discovery()
    ));
    assert_eq!(j.timeouts.discovery, Duration::from_secs(90));
    assert_eq!(j.timeouts.tls_bootstrap, Duration::from_secs(300));
}

#[test]
fn cri_socket_without_scheme_gets_unix_and_a_warning() {
    let f = ok(&v4(
        &token_discovery(),
        "nodeRegistration:\n  criSocket: /var/run/crio/crio.sock\n",
    ));
    assert_eq!(
        f.join.unwrap().node_registration.cri_socket.as_deref(),
        Some("unix:///var/run/crio/crio.sock")
    );
    assert_eq!(f.warnings.len(), 1);
    assert!(
        f.warnings[0].contains("unix:///var/run/crio/crio.sock"),
        "{:?}",
        f.warnings
    );

    let e = err(&v4(
        &token_discovery(),
        "nodeRegistration:\n  criSocket: tcp://localhost:1234\n",
    ));
    assert!(
        matches!(e.kind(), ConfigErrorKind::Invalid { path, .. } if path == "nodeRegistration.criSocket"),
        "{e}"
    );
}

#[test]
fn file_discovery_paths_and_urls() {
    let file = |p: &str| format!("  file:\n    kubeConfigPath: {p}\n");
    assert_eq!(
        join(&v4(&file("file:///etc/kubernetes/discovery.conf"), ""))
            .discovery
            .method,
        DiscoveryMethod::File {
            kube_config_path: "/etc/kubernetes/discovery.conf".into()
        }
    );
    assert_eq!(
        join(&v4(&file("file://localhost/etc/d%20c.conf"), ""))
            .discovery
            .method,
        DiscoveryMethod::File {
            kube_config_path: "/etc/d c.conf".into()
        }
    );
    assert_eq!(
        join(&v4(&file("/etc/kubernetes/discovery.conf"), ""))
            .discovery
            .method,
        DiscoveryMethod::File {
            kube_config_path: "/etc/kubernetes/discovery.conf".into()
        }
    );
    assert_eq!(
        join(&v4(&file("https://example.com/cluster-info.yaml"), ""))
            .discovery
            .method,
        DiscoveryMethod::Https {
            url: "https://example.com/cluster-info.yaml".into()
        }
    );
    // No tlsBootstrapToken in file mode: the kubeconfig has to carry credentials.
    assert!(join(&v4(&file("/d.conf"), ""))
        .discovery
        .tls_bootstrap_token
        .is_none());

    let e = err(&v4(&file("http://example.com/cluster-info.yaml"), ""));
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::FileUrlScheme {
            scheme: "http".into()
        }
    );
    assert!(
        e.to_string()
            .contains("if a URL is used, the scheme must be https"),
        "{e}"
    );
}

#[test]
fn node_name_is_lower_cased_and_validated() {
    let j = join(&v4(
        &token_discovery(),
        "nodeRegistration:\n  name: Worker-1.Example.COM\n",
    ));
    assert_eq!(
        j.node_registration.name.unwrap().as_str(),
        "worker-1.example.com"
    );

    let e = err(&v4(
        &token_discovery(),
        "nodeRegistration:\n  name: worker_1\n",
    ));
    assert!(
        matches!(e.kind(), ConfigErrorKind::InvalidNodeName { path, .. } if path == "nodeRegistration.name")
    );
    assert!(
        e.to_string()
            .starts_with("join.yaml: nodeRegistration.name: invalid node name \"worker_1\""),
        "{e}"
    );
}

#[test]
fn patches_are_accepted_with_a_warning() {
    let f = ok(&v4(
        &token_discovery(),
        "patches:\n  directory: /etc/kubeadm/patches\n",
    ));
    assert_eq!(
        f.join.unwrap().patches_directory,
        Some(PathBuf::from("/etc/kubeadm/patches"))
    );
    assert!(f
        .warnings
        .iter()
        .any(|w| w.contains("patches.directory") && w.contains("not supported")));
}

#[test]
fn ignore_preflight_errors_are_lower_cased_and_all_stands_alone() {
    let j = join(&v4(
        &token_discovery(),
        "nodeRegistration:\n  ignorePreflightErrors: [Swap, swap, NumCPU]\n",
    ));
    assert_eq!(
        j.node_registration.ignore_preflight_errors,
        ["swap", "numcpu"]
    );
    let e = err(&v4(
        &token_discovery(),
        "nodeRegistration:\n  ignorePreflightErrors: [all, Swap]\n",
    ));
    assert!(
        e.to_string()
            .contains("don't specify \"all\" along with any other ignored preflight errors"),
        "{e}"
    );
}

#[test]
fn kubelet_extra_args_v1beta3_map_is_sorted_by_name() {
    let j = join(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n{}nodeRegistration:\n  kubeletExtraArgs:\n    v: \"2\"\n    node-ip: 10.0.0.5\n    cgroup-driver: systemd\n",
        token_discovery()
    ));
    let names: Vec<&str> = j
        .node_registration
        .kubelet_extra_args
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["cgroup-driver", "node-ip", "v"]);
}

#[test]
fn kubelet_extra_args_shape_and_names() {
    // The v1beta3 map form in a v1beta4 document.
    let e = err(&v4(
        &token_discovery(),
        "nodeRegistration:\n  kubeletExtraArgs:\n    node-ip: 10.0.0.5\n",
    ));
    let ConfigErrorKind::Decode { help, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert!(
        help.as_deref()
            .unwrap_or("")
            .contains("list of {name, value}"),
        "{e}"
    );
    assert!(e.location().is_some());

    let e = err(&v4(
        &token_discovery(),
        "nodeRegistration:\n  kubeletExtraArgs:\n  - name: --node-ip\n    value: 1.2.3.4\n",
    ));
    assert!(
        matches!(e.kind(), ConfigErrorKind::Invalid { path, .. } if path == "nodeRegistration.kubeletExtraArgs[0]"),
        "{e}"
    );
    let e = err(&v4(
        &token_discovery(),
        "nodeRegistration:\n  kubeletExtraArgs:\n  - value: x\n",
    ));
    assert!(e.to_string().contains("argument has no name"), "{e}");
}

#[test]
fn taints_are_checked() {
    let t = |body: &str| {
        v4(
            &token_discovery(),
            &format!("nodeRegistration:\n  taints:\n{body}"),
        )
    };
    let e = err(&t("  - key: a\n    effect: NoPlease\n"));
    assert!(
        matches!(e.kind(), ConfigErrorKind::Invalid { path, .. } if path == "nodeRegistration.taints[0].effect")
    );
    assert!(
        e.to_string()
            .contains("supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""),
        "{e}"
    );
    let e = err(&t("  - key: a\n"));
    assert!(
        matches!(e.kind(), ConfigErrorKind::Invalid { path, .. } if path == "nodeRegistration.taints[0].effect")
    );
    let e = err(&t("  - key: \"bad key\"\n    effect: NoSchedule\n"));
    assert!(
        matches!(e.kind(), ConfigErrorKind::Invalid { path, .. } if path == "nodeRegistration.taints[0].key")
    );
    let e = err(&t(
        "  - key: a\n    effect: NoSchedule\n  - key: a\n    value: b\n    effect: NoSchedule\n",
    ));
    assert!(e.to_string().contains("unique by key and effect"), "{e}");
    let j = join(&t("  - key: a\n    value: b\n    effect: NoExecute\n    timeAdded: \"2024-01-01T00:00:00Z\"\n"));
    assert_eq!(j.node_registration.taints[0].to_string(), "a=b:NoExecute");
    assert_eq!(
        j.node_registration.taints[0].time_added.as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
}

// ---- kubeadm's validation messages --------------------------------------------------------------

#[test]
fn neither_discovery_mechanism() {
    let e = err(&v4("  tlsBootstrapToken: abcdef.0123456789abcdef\n", ""));
    assert_eq!(*e.kind(), ConfigErrorKind::DiscoveryNotSet);
    assert_eq!(
        e.to_string(),
        "join.yaml: discovery: bootstrapToken or file must be set"
    );
    let e = err("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n");
    assert_eq!(*e.kind(), ConfigErrorKind::DiscoveryNotSet);
}

#[test]
fn both_discovery_mechanisms() {
    let e = err(&v4(
        &format!(
            "{}  file:\n    kubeConfigPath: /d.conf\n",
            token_discovery()
        ),
        "",
    ));
    assert_eq!(*e.kind(), ConfigErrorKind::DiscoveryBothSet);
    assert_eq!(
        e.to_string(),
        "join.yaml: discovery: bootstrapToken and file cannot both be set"
    );
}

#[test]
fn endpoint_not_set() {
    let e = err(&v4(
        &format!("  bootstrapToken:\n    token: {TOKEN}\n    caCertHashes: [\"{PIN}\"]\n"),
        "",
    ));
    assert_eq!(*e.kind(), ConfigErrorKind::EndpointNotSet);
    assert_eq!(
        e.to_string(),
        "join.yaml: discovery.bootstrapToken.apiServerEndpoint: APIServerEndpoint is not set"
    );
}

#[test]
fn endpoint_must_be_host_port() {
    let with = |ep: &str| {
        v4(&format!("  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: \"{ep}\"\n    caCertHashes: [\"{PIN}\"]\n"), "")
    };
    for good in [
        "10.0.0.1:6443",
        "cp.example.com:443",
        "[fd00::1]:6443",
        "localhost:1",
    ] {
        join(&with(good));
    }
    for (bad, why) in [
        ("10.0.0.1", "missing port"),
        ("fd00::1:6443", "too many colons"),
        ("[fd00::1]", "missing port"),
        ("[fd00::1:6443", "missing ']'"),
        ("10.0.0.1:http", "port"),
        ("10.0.0.1:0", "port"),
        ("10.0.0.1:70000", "port"),
        (":6443", "host is empty"),
        ("https://10.0.0.1:6443", "too many colons"),
        ("[not-ip]:6443", "IPv6"),
        ("cp example:6443", "neither"),
        // A zone cannot name a TLS server (src/plan/endpoint.rs): refused here as on the
        // command line.
        ("[fe80::1%eth0]:6443", "zone"),
    ] {
        let e = err(&with(bad));
        match e.kind() {
            ConfigErrorKind::EndpointInvalid { value, why: w } => {
                assert_eq!(value, bad);
                assert!(w.contains(why), "{bad}: {e}");
            }
            other => panic!("{bad}: {other:?}"),
        }
        assert!(
            e.to_string().contains("IPv6 address goes in brackets"),
            "{e}"
        );
    }
}

#[test]
fn token_discovery_without_hashes_is_unsafe() {
    let e = err(&v4(
        &format!("  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n"),
        "",
    ));
    assert_eq!(*e.kind(), ConfigErrorKind::UnsafeWithoutPins);
    assert!(e.to_string().ends_with(
        "using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in \
         your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"
    ));
    assert!(e.hint().unwrap().contains("openssl"));
}

#[test]
fn bad_tokens_are_invalid_and_never_echoed() {
    for bad in [
        "ABCDEF.0123456789ABCDEF",
        "abcdef0123456789abcdef",
        "abcdef.0123456789abcdefg",
        "abc.def",
    ] {
        let e = err(&v4(
            &format!("  bootstrapToken:\n    token: {bad}\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [\"{PIN}\"]\n"),
            "",
        ));
        assert_eq!(
            *e.kind(),
            ConfigErrorKind::InvalidToken {
                path: "discovery.bootstrapToken.token".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "join.yaml: discovery.bootstrapToken.token: the bootstrap token is invalid"
        );
        assert!(!e.to_string().contains(bad) && !format!("{e:?}").contains(bad));
    }
    let e = err(&v4(
        &format!(
            "{}  tlsBootstrapToken: nope.0123456789abcdef\n",
            token_discovery()
        ),
        "",
    ));
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::InvalidToken {
            path: "discovery.tlsBootstrapToken".into()
        }
    );
    let e = err(&v4(
        "  file:\n    kubeConfigPath: /d.conf\n  tlsBootstrapToken: Abcdef.0123456789abcdef\n",
        "",
    ));
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::InvalidToken {
            path: "discovery.tlsBootstrapToken".into()
        }
    );
    // A missing token is invalid too.
    let e = err(&v4(&format!("  bootstrapToken:\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [\"{PIN}\"]\n"), ""));
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::InvalidToken {
            path: "discovery.bootstrapToken.token".into()
        }
    );
}

#[test]
fn bad_pin_names_its_index() {
    let e = err(&v4(
        &format!("  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes:\n    - {PIN}\n    - sha256:0011\n"),
        "",
    ));
    let ConfigErrorKind::InvalidPin { path, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(path, "discovery.bootstrapToken.caCertHashes[1]");
    assert!(e.to_string().starts_with(
        "join.yaml: discovery.bootstrapToken.caCertHashes[1]: invalid discovery token CA certificate hash: invalid hash \"sha256:0011\""
    ), "{e}");
}

#[test]
fn relative_ca_cert_path_is_refused() {
    let e = err(&v4(&token_discovery(), "caCertPath: pki/ca.crt\n"));
    assert!(
        matches!(e.kind(), ConfigErrorKind::Invalid { path, .. } if path == "caCertPath"),
        "{e}"
    );
    assert!(e.to_string().contains("path is not absolute"));
}

#[test]
fn bad_durations_name_their_field() {
    let e = err(&v4(
        &token_discovery(),
        "timeouts:\n  tlsBootstrap: 5 minutes\n",
    ));
    assert!(
        matches!(e.kind(), ConfigErrorKind::InvalidDuration { path, .. } if path == "timeouts.tlsBootstrap"),
        "{e}"
    );
    let e = err(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n{}  timeout: 5\n",
        token_discovery()
    ));
    assert!(
        matches!(
            e.kind(),
            ConfigErrorKind::Decode { .. } | ConfigErrorKind::InvalidDuration { .. }
        ),
        "{e}"
    );
}

#[test]
fn control_plane_is_read_validated_and_its_key_never_echoed() {
    const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
    let j = join(&v4(
        &token_discovery(),
        &format!(
            "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 10.0.0.2\n    bindPort: 6444\n  certificateKey: {KEY}\n"
        ),
    ));
    let cp = j.control_plane.expect("controlPlane");
    assert_eq!(cp.advertise_address, Some("10.0.0.2".parse().unwrap()));
    assert_eq!(cp.bind_port, Some(6444));
    assert!(cp.certificate_key.is_some());
    assert!(!format!("{cp:?}").contains(KEY));
    // Empty: a control-plane join whose values come from elsewhere (flags).
    let j = join(&v4(&token_discovery(), "controlPlane: {}\n"));
    assert_eq!(j.control_plane, Some(Default::default()));
    assert!(join(&v4(&token_discovery(), "controlPlane: null\n"))
        .control_plane
        .is_none());
    for (extra, path) in [
        (
            "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: cp.example\n",
            "controlPlane.localAPIEndpoint.advertiseAddress",
        ),
        (
            "controlPlane:\n  localAPIEndpoint:\n    bindPort: 70000\n",
            "controlPlane.localAPIEndpoint.bindPort",
        ),
        (
            "controlPlane:\n  certificateKey: 0123abcdXYZ\n",
            "controlPlane.certificateKey",
        ),
    ] {
        let e = err(&v4(&token_discovery(), extra));
        assert!(e.to_string().contains(path), "{e}");
        assert!(!e.to_string().contains("0123abcdXYZ"), "{e}");
    }
}

// ---- unknown fields -----------------------------------------------------------------------------

#[test]
fn unknown_field_in_v1beta4_with_suggestion_line_and_column() {
    let yaml = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n  tlsBootstrapTokn: {TOKEN}\n"
    );
    let e = err(&yaml);
    assert_eq!(e.location(), Some(Location { line: 7, column: 3 }));
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::UnknownField {
            field: "tlsBootstrapTokn".into(),
            path: "discovery.tlsBootstrapTokn".into(),
            kind: "JoinConfiguration".into(),
            api_version: "kubeadm.k8s.io/v1beta4".into(),
            help: Some("did you mean \"tlsBootstrapToken\"?".into()),
        }
    );
    assert_eq!(
        e.to_string(),
        "join.yaml: line 7 column 3: unknown field \"tlsBootstrapTokn\" in JoinConfiguration (kubeadm.k8s.io/v1beta4) \
         at discovery.tlsBootstrapTokn; did you mean \"tlsBootstrapToken\"?"
    );
}

#[test]
fn unknown_top_level_field_reads_like_the_brief() {
    let e = err(&v4(&token_discovery(), "caCertPth: /x\n"));
    assert_eq!(
        e.to_string(),
        "join.yaml: line 8 column 1: unknown field \"caCertPth\" in JoinConfiguration (kubeadm.k8s.io/v1beta4); did you mean \"caCertPath\"?"
    );
}

#[test]
fn unknown_field_in_v1beta3_and_moved_fields() {
    let e = err(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n    cacertHashes: [\"{PIN}\"]\n"
    ));
    let ConfigErrorKind::UnknownField {
        field,
        path,
        help,
        api_version,
        ..
    } = e.kind()
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (field.as_str(), path.as_str()),
        ("cacertHashes", "discovery.bootstrapToken.cacertHashes")
    );
    assert_eq!(api_version, "kubeadm.k8s.io/v1beta3");
    assert_eq!(help.as_deref(), Some("did you mean \"caCertHashes\"?"));
    assert_eq!(e.location(), Some(Location { line: 7, column: 5 }));

    // v1beta3 spelling in a v1beta4 file, and the other way round.
    let e = err(&v4(&format!("{}  timeout: 5m\n", token_discovery()), ""));
    assert!(
        e.to_string()
            .contains("in kubeadm.k8s.io/v1beta4 the discovery timeout is timeouts.discovery"),
        "{e}"
    );
    let e = err(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n{}timeouts:\n  discovery: 5m\n",
        token_discovery()
    ));
    assert!(
        e.to_string()
            .contains("timeouts is new in kubeadm.k8s.io/v1beta4"),
        "{e}"
    );
    let e = err(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n{}nodeRegistration:\n  kubeletExtraArgs:\n  - name: a\n    value: b\n",
        token_discovery()
    ));
    assert!(
        e.to_string()
            .contains("in kubeadm.k8s.io/v1beta3 kubeletExtraArgs is a map"),
        "{e}"
    );
}

#[test]
fn unknown_field_in_list_item() {
    let e = err(&v4(
        &token_discovery(),
        "nodeRegistration:\n  taints:\n  - key: a\n    efect: NoSchedule\n",
    ));
    let ConfigErrorKind::UnknownField { path, help, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(path, "nodeRegistration.taints[0].efect");
    assert_eq!(help.as_deref(), Some("did you mean \"effect\"?"));
}

#[test]
fn unknown_field_without_a_close_match_has_no_suggestion() {
    let e = err(&v4(&token_discovery(), "somethingElseEntirely: 1\n"));
    let ConfigErrorKind::UnknownField { help, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(*help, None);
}

#[test]
fn unknown_field_in_kubejoin_configuration() {
    let e =
        err("apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nonFailur: reboot\n");
    assert_eq!(e.location(), Some(Location { line: 3, column: 1 }));
    let ConfigErrorKind::UnknownField {
        field, kind, help, ..
    } = e.kind()
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (field.as_str(), kind.as_str()),
        ("onFailur", "KubejoinConfiguration")
    );
    assert_eq!(help.as_deref(), Some("did you mean \"onFailure\"?"));
    let e = err("apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nnetwork:\n  interfaces:\n  - name: eth0\n    adress: 10.0.0.1/24\n");
    let ConfigErrorKind::UnknownField { path, help, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(path, "network.interfaces[0].adress");
    assert_eq!(help.as_deref(), Some("did you mean \"address\"?"));
}

// ---- syntax, kinds and versions -----------------------------------------------------------------

#[test]
fn malformed_yaml_has_line_and_column() {
    let e = err("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken: [\n");
    assert!(matches!(e.kind(), ConfigErrorKind::Syntax { .. }), "{e:?}");
    // The parser points at the `[` that is never closed (serde_yaml said the end of input).
    assert_eq!(e.location().map(|l| l.line), Some(4));
    assert!(
        e.to_string()
            .starts_with("join.yaml: line 4 column 19: malformed YAML or JSON: "),
        "{e}"
    );

    let e = err("apiVersion: a\n\tkind: b\n");
    assert!(matches!(e.kind(), ConfigErrorKind::Syntax { .. }), "{e:?}");
    assert!(e.location().is_some());
}

#[test]
fn malformed_json_has_line_and_column() {
    let e = err("{\n  \"apiVersion\": \"kubeadm.k8s.io/v1beta4\",\n  \"kind\": \"JoinConfiguration\"\n  \"discovery\": {}\n}\n");
    assert!(matches!(e.kind(), ConfigErrorKind::Syntax { .. }), "{e:?}");
    assert_eq!(e.location().map(|l| l.line), Some(4));
}

#[test]
fn syntax_error_in_a_later_document_is_found() {
    let e = err(&format!(
        "{}---\napiVersion: x\n  kind: [\n",
        v4(&token_discovery(), "")
    ));
    assert!(matches!(e.kind(), ConfigErrorKind::Syntax { .. }), "{e:?}");
}

#[test]
fn wrong_type_is_a_decode_error_naming_the_field() {
    let e = err(&v4(
        &format!("  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n    unsafeSkipCAVerification: [yes]\n"),
        "",
    ));
    let ConfigErrorKind::Decode { message, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert!(
        message.starts_with("discovery.bootstrapToken.unsafeSkipCAVerification: invalid type"),
        "{message}"
    );
    assert_eq!(e.location().map(|l| l.line), Some(7));
}

#[test]
fn old_kubeadm_versions_are_no_longer_supported() {
    let e = err("apiVersion: kubeadm.k8s.io/v1beta2\nkind: JoinConfiguration\n");
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::UnsupportedVersion {
            document: 1,
            api_version: "kubeadm.k8s.io/v1beta2".into(),
            kind: "JoinConfiguration".into(),
            no_longer: true,
            supported: vec!["kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"],
        }
    );
    assert_eq!(
        e.to_string(),
        "join.yaml: line 1 column 1: document 1: apiVersion \"kubeadm.k8s.io/v1beta2\" is no longer supported for \
         JoinConfiguration; use kubeadm.k8s.io/v1beta3 or kubeadm.k8s.io/v1beta4"
    );
    assert!(e.hint().unwrap().contains("kubeadm config migrate"));

    let e = err("apiVersion: kubeadm.k8s.io/v1beta5\nkind: JoinConfiguration\n");
    assert!(
        e.to_string()
            .contains("is not supported for JoinConfiguration"),
        "{e}"
    );
    let e = err("apiVersion: kubejoin.dev/v1\nkind: KubejoinConfiguration\n");
    assert!(e.to_string().contains("use kubejoin.dev/v1alpha1"), "{e}");
}

#[test]
fn unknown_kind_names_both_and_lists_the_supported_ones() {
    let e = err(&format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\n",
        v4(&token_discovery(), "")
    ));
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::UnknownKind {
            document: 2,
            api_version: "v1".into(),
            kind: "ConfigMap".into()
        }
    );
    let s = e.to_string();
    assert!(
        s.contains("unknown apiVersion \"v1\" and kind \"ConfigMap\""),
        "{s}"
    );
    assert!(
        s.contains("JoinConfiguration (kubeadm.k8s.io/v1beta3, kubeadm.k8s.io/v1beta4)"),
        "{s}"
    );
    assert!(
        s.contains("KubejoinConfiguration (kubejoin.dev/v1alpha1)"),
        "{s}"
    );
    assert_eq!(e.location().map(|l| l.line), Some(9), "{s}");
}

#[test]
fn missing_type_meta_and_non_mappings() {
    let e = err("discovery: {}\n");
    assert_eq!(*e.kind(), ConfigErrorKind::MissingTypeMeta { document: 1 });
    assert!(e
        .to_string()
        .contains("kind and apiVersion is mandatory information that must be specified"));
    let e = err("- a\n- b\n");
    assert_eq!(*e.kind(), ConfigErrorKind::NotAMapping { document: 1 });
}

#[test]
fn ignored_kinds_and_nothing_usable() {
    let e = err("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.0\n");
    assert_eq!(*e.kind(), ConfigErrorKind::NoConfiguration);
    assert_eq!(*err("").kind(), ConfigErrorKind::NoConfiguration);
    assert_eq!(
        *err("---\n---\n# nothing\n").kind(),
        ConfigErrorKind::NoConfiguration
    );

    let f = ok(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\n---\n{}---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n",
        v4(&token_discovery(), "")
    ));
    assert!(f.join.is_some());
    let kinds: Vec<(&str, bool)> = f
        .documents
        .iter()
        .map(|d| (d.kind.as_str(), d.used))
        .collect();
    assert_eq!(
        kinds,
        [
            ("InitConfiguration", false),
            ("JoinConfiguration", true),
            ("KubeProxyConfiguration", false)
        ]
    );
    assert_eq!(f.documents[2].index, 4, "empty documents keep their number");
}

#[test]
fn a_kind_may_appear_once() {
    let doc = v4(&token_discovery(), "");
    let e = err(&format!("{doc}---\n{}", doc.replace("v1beta4", "v1beta3")));
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::DuplicateDocument {
            kind: "JoinConfiguration".into(),
            first: 1,
            second: 2
        }
    );
}

#[test]
fn kubejoin_configuration_alone_is_enough() {
    let f = ok("apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nhandoff: none\n");
    assert!(f.join.is_none());
    assert_eq!(f.kubejoin.unwrap().handoff, Some(HandoffMode::None));
}

#[test]
fn too_large_is_refused_before_parsing() {
    let big = vec![b' '; MAX_CONFIG_BYTES + 1];
    let e = parse(&big, "big.yaml").unwrap_err();
    assert_eq!(
        *e.kind(),
        ConfigErrorKind::TooLarge {
            size: MAX_CONFIG_BYTES + 1
        }
    );
}

// ---- KubejoinConfiguration validation -----------------------------------------------------------

fn kj(body: &str) -> String {
    format!("apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\n{body}")
}

#[test]
fn kubejoin_values_are_checked() {
    let path_of = |e: &ConfigError| match e.kind() {
        ConfigErrorKind::Invalid { path, .. } => path.clone(),
        ConfigErrorKind::InvalidDuration { path, .. } => path.clone(),
        other => panic!("{other:?}"),
    };
    for (body, path) in [
        ("modules: [../../tmp/evil]\n", "modules[0]"),
        ("modules: [\"\"]\n", "modules[0]"),
        (
            "sysctls:\n  ../../etc/passwd: x\n",
            "sysctls.../../etc/passwd",
        ),
        ("sysctls:\n  net..x: 1\n", "sysctls.net..x"),
        ("kubeletPath: bin/kubelet\n", "kubeletPath"),
        ("timeout: soon\n", "timeout"),
        ("tlsBootstrapTimeout: 0s\n", "tlsBootstrapTimeout"),
        ("kubeletArgs:\n- name: \"\"\n", "kubeletArgs[0]"),
        (
            "network:\n  nameservers: [fd00::1]\n",
            "network.nameservers[0]",
        ),
        (
            "network:\n  interfaces:\n  - address: 10.0.0.1\n",
            "network.interfaces[0].address",
        ),
        (
            "network:\n  interfaces:\n  - address: 10.0.0.1/33\n",
            "network.interfaces[0].address",
        ),
        (
            "network:\n  interfaces:\n  - dhcp: true\n    address: 10.0.0.1/24\n",
            "network.interfaces[0]",
        ),
        (
            "network:\n  interfaces:\n  - dhcp: false\n",
            "network.interfaces[0]",
        ),
        (
            "network:\n  interfaces:\n  - gateway: 10.0.0.1\n",
            "network.interfaces[0].gateway",
        ),
        (
            "network:\n  interfaces:\n  - address: 10.0.0.2/24\n    gateway: x\n",
            "network.interfaces[0].gateway",
        ),
        (
            "network:\n  interfaces:\n  - name: a/b\n",
            "network.interfaces[0].name",
        ),
        (
            "network:\n  interfaces:\n  - name: eth0\n  - name: eth0\n",
            "network.interfaces[1].name",
        ),
        (
            "network:\n  interfaces:\n  - mtu: 20\n",
            "network.interfaces[0].mtu",
        ),
    ] {
        let e = err(&kj(body));
        assert_eq!(path_of(&e), path, "{body}: {e}");
    }
    // Enumerations are checked by the decoder, which lists the allowed values.
    let e = err(&kj("onFailure: explode\n"));
    assert!(
        e.to_string()
            .contains("`retry`, `reboot`, `poweroff`, `shell`"),
        "{e}"
    );
    let e = err(&kj("handoff: switch-root\n"));
    assert!(e.to_string().contains("`exec` or `none`"), "{e}");
    let e = err(&kj("sysctls:\n  a.b: 1\n  a.b: 2\n"));
    assert!(
        matches!(
            e.kind(),
            ConfigErrorKind::Decode { .. } | ConfigErrorKind::Syntax { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn kubejoin_network_defaults_to_dhcp() {
    let f = ok(&kj("network:\n  interfaces:\n  - name: eth0\n"));
    let net = f.kubejoin.unwrap().network.unwrap();
    assert_eq!(net.interfaces[0].addressing, Addressing::Dhcp);
    assert_eq!(net.interfaces[0].mtu, None);
}

// ---- secrets ------------------------------------------------------------------------------------

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let f = parse(&fixture("join-v1beta4.yaml"), "join-v1beta4.yaml").unwrap();
    let dbg = format!("{f:?}");
    assert!(!dbg.contains(SECRET), "{dbg}");
    assert!(dbg.contains("abcdef.<redacted>"), "{dbg}");

    // Tokens in places where the decoder quotes the value back.
    for yaml in [
        v4(&format!("  bootstrapToken: {TOKEN}\n"), ""),
        v4(&format!("  bootstrapToken:\n    token: [{TOKEN}]\n"), ""),
        v4(
            &format!("  tlsBootstrapToken: {{a: {TOKEN}}}\n{}", token_discovery()),
            "",
        ),
        v4(&token_discovery(), &format!("{TOKEN}: 1\n")),
        format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: {TOKEN}\n"),
        format!("apiVersion: {TOKEN}\nkind: JoinConfiguration\n"),
        kj(&format!("handoff: {TOKEN}\n")),
        kj(&format!("network:\n  nameservers: [{TOKEN}]\n")),
        kj(&format!("modules: [{TOKEN}]\n")),
        kj(&format!("sysctls:\n  \"{TOKEN}/..\": 1\n")),
        kj(&format!("kubeletPath: {TOKEN}\n")),
    ] {
        let e = err(&yaml); // err() asserts the secret is absent from Display and Debug
        let report = kubejoin::error::Report(&e, e.hint()).to_string();
        assert!(!report.contains(SECRET), "{report}");
    }
}
