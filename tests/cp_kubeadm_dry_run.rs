//! `kubejoin join --control-plane --dry-run` against what real `kubeadm join --control-plane
//! --dry-run` printed (v1.24.0-alpha.1, `-v1`, node `cp-2` advertising 10.0.2.15, external etcd
//! over plain http: `tests/fixtures/kubeadm-v1.24/kubeadm-join-control-plane-dry-run.log`).
//!
//! `kubejoin-testcp` is configured as that cluster (v1.24.0-alpha.1, `imageRepository`
//! k8s.gcr.io, `controlPlaneEndpoint` 127.0.0.1:6443, `apiServer.certSANs` localhost, 127.0.0.1,
//! 10.0.2.2, external etcd http://127.0.0.1:2379 without TLS files, no pod subnet), and the real
//! binary's dry run is compared with the log, which the test parses:
//! - the set of files each would write, as node paths (kubeadm's dry run writes into a
//!   temporary directory that stands for a different real directory in each phase: see
//!   [`kubeadm_files`]); where they differ, the difference is named below with its reason, and
//!   a named difference that no longer exists fails the test too;
//! - the certificates generated, and the apiserver certificate's SAN line;
//! - the contents of the files kubeadm prints (`[dryrun] Would write file`) that kubejoin's dry
//!   run prints too (`kubeadm-flags.env`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin_testcp::{ClusterSpec, Config, ControlPlane, EtcdTopology, ExternalEtcd, Handle};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_kubejoin");
const TOKEN: &str = "abcdef.0123456789abcdef";
const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
/// The cluster's `certificatesDir` (kubeadm's default, as in the capture's manifests).
const PKI: &str = "/etc/kubernetes/pki";

/// Files kubejoin writes and kubeadm's join does not, and why.
const ONLY_KUBEJOIN: &[(&str, &str)] = &[
    (
        "/var/lib/kubelet/pki/kubelet-client.key.tmp",
        "kubejoin performs the TLS bootstrap itself: the node key while its CSR is pending \
         (removed once the certificate is installed); kubeadm leaves the bootstrap to the kubelet",
    ),
    (
        "/var/lib/kubelet/pki/kubelet-client-<notBefore>.pem",
        "the TLS bootstrap's result, which the kubelet writes itself after kubeadm starts it",
    ),
    (
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "the kubelet's link to its current client PEM, written by the kubelet under kubeadm",
    ),
    (
        "/etc/kubernetes/kubelet.conf",
        "the kubelet's kubeconfig with its node identity, written by the kubelet after its TLS \
         bootstrap under kubeadm",
    ),
    (
        "/run/kubejoin/result.json",
        "kubejoin's own record of the join's outcome",
    ),
    (
        "/run/cluster-api/bootstrap-success.complete",
        "the Cluster API bootstrap sentinel, which a kubeadm node gets from cloud-init",
    ),
];

/// Files kubeadm's join writes and kubejoin does not, and why.
const ONLY_KUBEADM: &[(&str, &str)] = &[(
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "kubeadm hands the bootstrap token to the kubelet in this file; kubejoin performs the TLS \
     bootstrap itself, so the token is never written to disk",
)];

fn kubeadm_log() -> String {
    let p = format!(
        "{}/tests/fixtures/kubeadm-v1.24/kubeadm-join-control-plane-dry-run.log",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The text between the first `"` after `after` and the next `"`.
fn quoted<'a>(line: &'a str, after: &str) -> Option<&'a str> {
    let rest = &line[line.find(after)? + after.len()..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(&rest[start..end])
}

/// What kubeadm's log says it would write.
struct Kubeadm {
    /// Node paths of every file named.
    files: BTreeSet<String>,
    /// kubeadm-certs entries not saved because they are empty.
    skipped: BTreeSet<String>,
    /// Certificates (with keys) it generated.
    generated: BTreeSet<String>,
    /// `signed for DNS names [...] and IPs [...]` of the apiserver certificate.
    apiserver_sans: String,
    /// The contents printed after `[dryrun] Would write file "<path>"`, by path.
    printed: Vec<(String, String)>,
}

/// Parses the log. kubeadm's dry run writes into one temporary directory that stands for the
/// certificates dir in `[certs]`, `/etc/kubernetes` in `[kubeconfig]` and for
/// `bootstrap-kubelet.conf`, `/etc/kubernetes/manifests` in `[control-plane]`, and
/// `/var/lib/kubelet` for the kubelet's `config.yaml` and `kubeadm-flags.env` (the
/// `[dryrun] Would write file` lines name those real paths).
fn kubeadm_files(log: &str) -> Kubeadm {
    let mut k = Kubeadm {
        files: BTreeSet::new(),
        skipped: BTreeSet::new(),
        generated: BTreeSet::new(),
        apiserver_sans: String::new(),
        printed: Vec::new(),
    };
    let mut dry_dir = None;
    let mut lines = log.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(d) = quoted(line, "[certs] Using certificateDir folder") {
            dry_dir = Some(d.to_string());
        } else if let Some(name) = quoted(line, "[certs] Generating") {
            k.generated.insert(name.to_string());
            k.files.insert(format!("{PKI}/{name}.crt"));
            k.files.insert(format!("{PKI}/{name}.key"));
        } else if let Some(name) = quoted(line, "[certs] Using the existing") {
            // Only the service-account key pair is a key without a certificate.
            assert!(line.ends_with(" key"), "{line}");
            assert_eq!(name, "sa", "{line}");
            k.files.insert(format!("{PKI}/sa.key"));
            k.files.insert(format!("{PKI}/sa.pub"));
        } else if let Some(entry) = quoted(line, "[download-certs] Not saving") {
            k.skipped.insert(entry.to_string());
        } else if line.contains("apiserver serving cert is ") {
            let at = line.find("signed for DNS names").unwrap();
            k.apiserver_sans = line[at..].to_string();
        } else if let Some(name) = quoted(line, "[kubeconfig] Writing") {
            k.files.insert(format!("/etc/kubernetes/{name}"));
        } else if line.contains("wrote static Pod manifest for component ") {
            let p = quoted(line, "\" to ").unwrap();
            let dir = dry_dir.as_deref().expect("the dry-run dir was named first");
            let file = p.strip_prefix(dir).unwrap().trim_start_matches('/');
            k.files.insert(format!("/etc/kubernetes/manifests/{file}"));
        } else if line.contains("[kubelet-start] writing bootstrap kubelet config file at ") {
            let p = line.rsplit(' ').next().unwrap();
            assert!(p.starts_with(dry_dir.as_deref().unwrap()), "{line}");
            let file = p.rsplit('/').next().unwrap();
            k.files.insert(format!("/etc/kubernetes/{file}"));
        } else if let Some(p) = quoted(line, "[kubelet-start] Writing kubelet") {
            let file = p.rsplit('/').next().unwrap();
            k.files.insert(format!("/var/lib/kubelet/{file}"));
        } else if let Some(p) = quoted(line, "[dryrun] Would write file") {
            k.files.insert(p.to_string());
            let mut body = String::new();
            while let Some(l) = lines.peek().and_then(|l| l.strip_prefix('\t')) {
                body.push_str(l);
                body.push('\n');
                lines.next();
            }
            k.printed.push((p.to_string(), body));
        }
    }
    k
}

/// The capture's cluster.
fn capture_cluster() -> Handle {
    kubejoin_testcp::start(Config {
        kubernetes_version: "v1.24.0-alpha.1".into(),
        image_repository: Some("k8s.gcr.io".into()),
        control_plane: Some(ControlPlane {
            etcd: EtcdTopology::External(ExternalEtcd::plain(&["http://127.0.0.1:2379"])),
            cluster: ClusterSpec {
                control_plane_endpoint: Some("127.0.0.1:6443".into()),
                cert_sans: vec!["localhost".into(), "127.0.0.1".into(), "10.0.2.2".into()],
                pod_subnet: None,
                ..ClusterSpec::default()
            },
            ..ControlPlane::with_certificate_key(KEY)
        }),
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn the_dry_run_names_the_files_and_sans_kubeadm_v1_24_names() {
    let log = kubeadm_log();
    assert!(!log.contains(KEY) && !log.contains("0123456789abcdef"));
    let kubeadm = kubeadm_files(&log);
    assert!(
        kubeadm.files.len() >= 15 && !kubeadm.printed.is_empty(),
        "the log parsed: {:#?}",
        kubeadm.files
    );

    let cp = capture_cluster();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let key = dir.path().join("certificate-key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = support::join_args(&cp, TOKEN, "cp-2", &root);
    args.extend(
        [
            "--control-plane",
            "--certificate-key-file",
            key.to_str().unwrap(),
            "--apiserver-advertise-address",
            "10.0.2.15",
            "--cri-socket",
            "unix:///tmp/realcp/run/containerd.sock",
            "--dry-run",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut cmd = Command::new(BIN);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = support::run_bounded(cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let show = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert!(out.status.success(), "{show}");
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY), "{show}");

    // The Secret: the entries kubeadm skipped as empty are exactly the test cluster's empty
    // ones (it is configured as the captured cluster), and the others are downloaded.
    let secret = cp.shared_files();
    let empty: BTreeSet<String> = secret
        .iter()
        .filter(|(_, c)| c.is_empty())
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(empty, kubeadm.skipped, "kubeadm-certs' empty entries");
    let mut want = kubeadm.files.clone();
    // (`shared_files` names a file by its path under the certificates dir, an empty external
    // entry by its Secret name.)
    for (name, content) in &secret {
        if !content.is_empty() {
            want.insert(format!("{PKI}/{name}"));
        }
    }

    // kubejoin's dry run: every `write` and `symlink` line (a `remove` writes nothing).
    let mut got = BTreeSet::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("  write   ") {
            got.insert(rest.split(" (").next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("  symlink ") {
            got.insert(rest.split(" -> ").next().unwrap().to_string());
        }
    }
    for (p, why) in ONLY_KUBEJOIN {
        assert!(
            got.remove(*p),
            "named difference {p} ({why}) is gone:\n{show}"
        );
    }
    for (p, why) in ONLY_KUBEADM {
        assert!(
            want.remove(*p),
            "named difference {p} ({why}) is not in kubeadm's log"
        );
    }
    assert_eq!(
        got, want,
        "kubejoin's dry-run files (left) vs kubeadm's (right)\n{show}"
    );

    // The certificates generated, and the apiserver's SANs in kubeadm's words.
    let certs: BTreeSet<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  certificate "))
        .map(|l| l.split(".crt:").next().unwrap().to_string())
        .collect();
    assert_eq!(certs, kubeadm.generated, "{show}");
    let apiserver = stdout
        .lines()
        .find(|l| l.starts_with("  certificate apiserver.crt: "))
        .unwrap();
    assert!(
        apiserver.ends_with(&kubeadm.apiserver_sans),
        "kubeadm: {}\nkubejoin: {apiserver}",
        kubeadm.apiserver_sans
    );

    // kubeadm-flags.env, which both print: the same line (kubeadm passes no
    // `--register-with-taints` for a control plane; mark-control-plane taints it).
    let (_, flags) = kubeadm
        .printed
        .iter()
        .find(|(p, _)| p == "/var/lib/kubelet/kubeadm-flags.env")
        .unwrap();
    let flags = flags.trim_end();
    assert!(
        stdout.lines().any(|l| l.trim() == flags),
        "kubeadm: {flags}\n{show}"
    );
}
