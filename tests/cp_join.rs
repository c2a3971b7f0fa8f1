//! The control-plane join through the real binary: `kubejoin join --control-plane
//! --certificate-key-file …` against `kubejoin-testcp` acting as the first control plane of a
//! `kubeadm init --upload-certs` cluster (kubeadm-certs, admin credentials of the version, etcd
//! Pods' annotation, the fake etcd v3 gateway over mTLS, kubelet registration, NodeRestriction).
//!
//! Asserted: the bytes and modes of the files written under `--root`, the requests the control
//! plane and its etcd saw, the Node's labels and taints; a wrong or expired key and a refusing
//! etcd fail with their reason and (for the key) nothing written; a dry run writes nothing and
//! sends no member add or PATCH; bad control-plane input is a usage error that never echoes the
//! key. The local API server is not run: `--control-plane-healthz-url` points the final wait at
//! the test control plane's own `/healthz` (and, in one test, at a port where nothing listens).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin_testcp::{
    Config, ControlPlane, EtcdError, EtcdOptions, EtcdRefusal, EtcdTopology, ExternalEtcd, Handle,
};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubejoin");
const TOKEN: &str = "abcdef.0123456789abcdef";
const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
const NODE: &str = "cp-2";
/// The joining node's address: another loopback address than the first control plane's, so its
/// etcd peer URL differs from the first member's.
const ADVERTISE: &str = "127.0.0.2";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

fn cp(version: &str, cp: ControlPlane) -> Handle {
    kubejoin_testcp::start(Config {
        kubernetes_version: version.into(),
        control_plane: Some(ControlPlane {
            register_nodes_after: Some(Duration::from_millis(300)),
            ..cp
        }),
        ..Config::default()
    })
    .unwrap()
}

fn key_file(dir: &Path, key: &str) -> PathBuf {
    let p = dir.join("certificate-key");
    std::fs::write(&p, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn join(cp: &Handle, root: &Path, key_file: &Path, extra: &[&str]) -> Run {
    let mut args = support::join_args(cp, TOKEN, NODE, root);
    args.extend(
        [
            "--control-plane",
            "--certificate-key-file",
            key_file.to_str().unwrap(),
            "--apiserver-advertise-address",
            ADVERTISE,
            "--control-plane-healthz-url",
            &format!("{}/healthz", cp.url()),
            "--timeout",
            "90s",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&args)
}

fn run(args: &[String]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = support::run_bounded(cmd, Duration::from_secs(120));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn mode(root: &Path, p: &str) -> u32 {
    std::fs::metadata(root.join(p.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .permissions()
        .mode()
        & 0o777
}

fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A file's bytes, or a symlink's target (the kubelet's client PEM link names a node path).
/// `result.json`'s `control_plane` and whether the Cluster API sentinel exists.
fn completion(root: &Path) -> (String, bool) {
    let v: serde_json::Value =
        serde_json::from_slice(&contents(&root.join("run/kubejoin/result.json"))).unwrap();
    (
        v["control_plane"].as_str().unwrap_or("(none)").to_string(),
        root.join("run/cluster-api/bootstrap-success.complete")
            .exists(),
    )
}

fn contents(p: &Path) -> Vec<u8> {
    match std::fs::read_link(p) {
        Ok(target) => target.display().to_string().into_bytes(),
        Err(_) => std::fs::read(p).unwrap(),
    }
}

fn no_key_in(r: &Run, key: &str) {
    assert!(
        !r.stdout.contains(key) && !r.stderr.contains(key),
        "the certificate key leaked:\n{}",
        r.show()
    );
}

#[test]
fn a_control_plane_joins_a_stacked_etcd_cluster() {
    for (version, learner, taints) in [
        (
            "v1.30.4",
            true,
            vec!["node-role.kubernetes.io/control-plane"],
        ),
        (
            "v1.24.17",
            false,
            vec![
                "node-role.kubernetes.io/master",
                "node-role.kubernetes.io/control-plane",
            ],
        ),
    ] {
        let cp = cp(version, ControlPlane::with_certificate_key(KEY));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let key = key_file(dir.path(), KEY);
        let r = join(&cp, &root, &key, &[]);
        assert_eq!(r.code, 0, "{version}: {}", r.show());
        no_key_in(&r, KEY);

        // The shared PKI, byte for byte what the first control plane holds, kubeadm's modes.
        for (name, content) in cp.shared_files() {
            let p = format!("/etc/kubernetes/pki/{name}");
            assert_eq!(read(&root, &p).as_bytes(), &content[..], "{p}");
            let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
            assert_eq!(mode(&root, &p), want, "{p}");
        }
        // This node's certificates and keys, kubeconfigs and static Pods.
        for base in [
            "apiserver",
            "apiserver-kubelet-client",
            "front-proxy-client",
            "etcd/server",
            "etcd/peer",
            "etcd/healthcheck-client",
            "apiserver-etcd-client",
        ] {
            let crt = format!("/etc/kubernetes/pki/{base}.crt");
            let key = format!("/etc/kubernetes/pki/{base}.key");
            assert!(read(&root, &crt).starts_with("-----BEGIN CERTIFICATE-----\n"));
            assert_eq!(mode(&root, &crt), 0o644, "{crt}");
            assert!(read(&root, &key).contains("PRIVATE KEY-----\n"));
            assert_eq!(mode(&root, &key), 0o600, "{key}");
        }
        for conf in ["admin.conf", "controller-manager.conf", "scheduler.conf"] {
            let p = format!("/etc/kubernetes/{conf}");
            assert_eq!(mode(&root, &p), 0o600, "{p}");
            assert!(read(&root, &p).contains("client-key-data: "), "{p}");
        }
        let admin = read(&root, "/etc/kubernetes/admin.conf");
        assert!(
            admin.contains(&format!("    server: {}\n", cp.url())),
            "admin.conf talks to controlPlaneEndpoint: {admin}"
        );
        let apiserver = read(&root, "/etc/kubernetes/manifests/kube-apiserver.yaml");
        assert_eq!(
            mode(&root, "/etc/kubernetes/manifests/kube-apiserver.yaml"),
            0o600
        );
        assert!(apiserver.contains(&format!("    - --advertise-address={ADVERTISE}\n")));
        assert!(apiserver.contains("    - --etcd-servers=https://127.0.0.1:2379\n"));
        let tag = version.trim_start_matches('v');
        assert!(
            apiserver.contains(&format!("kube-apiserver:v{tag}\n")),
            "{apiserver}"
        );
        for m in ["kube-controller-manager", "kube-scheduler", "etcd"] {
            let p = format!("/etc/kubernetes/manifests/{m}.yaml");
            assert_eq!(mode(&root, &p), 0o600, "{p}");
        }
        let etcd_yaml = read(&root, "/etc/kubernetes/manifests/etcd.yaml");
        let first_peer = &cp.etcd_members()[0].peer_urls[0];
        assert!(
            etcd_yaml.contains(&format!(
                "    - --initial-cluster=cp-1={first_peer},{NODE}=https://{ADVERTISE}:2380\n"
            )),
            "{etcd_yaml}"
        );
        assert!(etcd_yaml.contains("    - --initial-cluster-state=existing\n"));
        // The worker's files, without `--register-with-taints`: kubeadm passes it only for a
        // worker; mark-control-plane taints a control plane (checked on the Node below).
        let flags = read(&root, "/var/lib/kubelet/kubeadm-flags.env");
        assert!(
            !flags.contains("--register-with-taints"),
            "{version}: {flags}"
        );
        assert_eq!(mode(&root, "/etc/kubernetes/kubelet.conf"), 0o600);

        // The requests: the Secret with the bootstrap token, the etcd Pods and the PATCH with
        // the new admin credentials, the health check.
        let reqs = cp.requests();
        // kubeadm-config once: control-plane-prepare reads it, kubelet-start resumes from it.
        assert_eq!(
            reqs.iter()
                .filter(|q| q.path == "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
                .count(),
            1,
            "{version}: kubeadm-config read once"
        );
        let saw = |method: &str, path: &str, user: &str| {
            reqs.iter()
                .any(|q| q.method == method && q.path == path && q.user == user && q.status < 300)
        };
        assert!(
            saw(
                "GET",
                "/api/v1/namespaces/kube-system/secrets/kubeadm-certs",
                "system:bootstrap:abcdef"
            ),
            "{reqs:#?}"
        );
        assert!(
            saw(
                "GET",
                "/api/v1/namespaces/kube-system/pods?labelSelector=component%3Detcd%2Ctier%3Dcontrol-plane",
                "kubernetes-admin"
            ),
            "{reqs:#?}"
        );
        assert!(
            saw("PATCH", "/api/v1/nodes/cp-2", "kubernetes-admin"),
            "{reqs:#?}"
        );
        assert!(reqs.iter().any(|q| q.path == "/healthz" && q.status == 200));
        // etcd: list, add (a learner where the version adds one), promote; as the healthcheck
        // client of the downloaded etcd CA.
        let calls = cp.etcd_calls();
        let paths: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
        let mut want = vec!["/v3/cluster/member/list", "/v3/cluster/member/add"];
        if learner {
            want.push("/v3/cluster/member/promote");
        }
        assert_eq!(paths, want, "{version}");
        let add = &calls[1].request;
        assert_eq!(add["peerURLs"][0], format!("https://{ADVERTISE}:2380"));
        assert_eq!(
            add["isLearner"].as_bool().unwrap_or(false),
            learner,
            "{version}"
        );
        assert!(calls
            .iter()
            .all(|c| c.client == "kube-etcd-healthcheck-client"));
        let members = cp.etcd_members();
        assert_eq!(members.len(), 2);
        assert!(!members[1].is_learner, "promoted");
        // The node, marked as kubeadm of the version marks it.
        let node = cp.node(NODE).unwrap();
        assert_eq!(
            node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
            ""
        );
        assert_eq!(
            node["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"],
            ""
        );
        let keys: Vec<&str> = node["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        for t in &taints {
            assert!(keys.contains(t), "{version}: {keys:?}");
        }
        // The join is complete only now: result.json says so and Cluster API's sentinel exists.
        assert_eq!(completion(&root), ("ready".to_string(), true), "{version}");

        // A second run finds the control plane's files and stops before writing anything.
        let before: Vec<(String, Vec<u8>)> = files_under(&root)
            .into_iter()
            .map(|f| {
                let b = contents(&root.join(&f));
                (f, b)
            })
            .collect();
        let again = join(&cp, &root, &key, &[]);
        assert_eq!(again.code, 2, "{}", again.show());
        assert!(
            again.stderr.contains("control-plane preflight:") && again.stderr.contains("--force"),
            "{}",
            again.show()
        );
        let after: Vec<(String, Vec<u8>)> = files_under(&root)
            .into_iter()
            .map(|f| {
                let b = contents(&root.join(&f));
                (f, b)
            })
            .collect();
        assert!(before == after, "a refused re-run changed files");
        assert_eq!(cp.etcd_members().len(), 2, "no second member");
    }
}

#[test]
fn a_wrong_or_expired_key_fails_naming_the_secret_and_writes_nothing() {
    let cp = cp("v1.30.4", ControlPlane::with_certificate_key(KEY));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let wrong = "11".repeat(32);
    let r = join(&cp, &root, &key_file(dir.path(), &wrong), &[]);
    assert_eq!(r.code, 2, "{}", r.show());
    assert!(
        r.stderr
            .contains("the certificate key does not decrypt kubeadm-certs")
            && r.stderr
                .contains("kubeadm init phase upload-certs --upload-certs"),
        "{}",
        r.show()
    );
    no_key_in(&r, &wrong);
    assert_eq!(files_under(&root), Vec::<String>::new(), "nothing written");
    assert!(cp.etcd_calls().is_empty());

    // Expired: the Secret is gone with its token.
    assert!(cp.expire_kubeadm_certs());
    let r = join(&cp, &root, &key_file(dir.path(), KEY), &[]);
    assert_eq!(r.code, 4, "{}", r.show());
    assert!(
        r.stderr.contains("Secret \"kubeadm-certs\" was not found")
            && r.stderr.contains("upload-certs"),
        "{}",
        r.show()
    );
    assert_eq!(files_under(&root), Vec::<String>::new(), "nothing written");
}

#[test]
fn a_dry_run_lists_files_and_requests_and_writes_nothing() {
    let cp = cp("v1.33.2", ControlPlane::with_certificate_key(KEY));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let r = join(&cp, &root, &key_file(dir.path(), KEY), &["--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.show());
    no_key_in(&r, KEY);
    for line in [
        "  write   /etc/kubernetes/pki/ca.key (0600): shared certificate or key from kubeadm-certs",
        "  write   /etc/kubernetes/pki/apiserver.key (0600): this control plane's certificate or key",
        "  write   /etc/kubernetes/admin.conf (0600): kubeconfig of a control-plane component",
        "  write   /etc/kubernetes/manifests/kube-apiserver.yaml (0600): static Pod manifest",
        "  certificate apiserver.crt: subject CN=kube-apiserver, issuer ca, signed for DNS names [cp-2 kubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local] and IPs [10.96.0.1 127.0.0.2 127.0.0.1]",
        "  certificate apiserver-kubelet-client.crt: subject CN=kube-apiserver-kubelet-client, O=kubeadm:cluster-admins, issuer ca, no SANs",
        "\"isLearner\":true}",
        "would: PATCH /api/v1/nodes/cp-2 (strategic merge) with labels [node-role.kubernetes.io/control-plane, node.kubernetes.io/exclude-from-external-load-balancers] and taints [node-role.kubernetes.io/control-plane:NoSchedule]",
    ] {
        assert!(r.stdout.contains(line), "missing {line:?}:\n{}", r.show());
    }
    assert_eq!(files_under(&root), Vec::<String>::new(), "nothing written");
    assert!(cp.etcd_calls().is_empty(), "no etcd call");
    assert!(
        cp.requests().iter().all(|q| q.method == "GET"),
        "only reads"
    );
    assert!(cp.requests().iter().any(|q| q.path
        == "/api/v1/namespaces/kube-system/secrets/kubeadm-certs"
        && q.status == 200));
}

#[test]
fn an_etcd_that_refuses_the_member_ends_the_join_with_its_reason() {
    let cp = cp(
        "v1.30.4",
        ControlPlane {
            etcd_options: EtcdOptions {
                refuse_add: Some(EtcdRefusal {
                    error: EtcdError::Unhealthy,
                    count: None,
                }),
                ..EtcdOptions::default()
            },
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let r = join(
        &cp,
        &root,
        &key_file(dir.path(), KEY),
        &["--timeout", "25s"],
    );
    assert_ne!(r.code, 0, "{}", r.show());
    assert!(
        r.stderr.contains("etcdserver: unhealthy cluster"),
        "{}",
        r.show()
    );
    assert!(r.took < Duration::from_secs(60), "bounded: {:?}", r.took);
    // Retried, never added, and no etcd.yaml naming a member that does not exist.
    let adds = cp
        .etcd_calls()
        .iter()
        .filter(|c| c.path == "/v3/cluster/member/add")
        .count();
    assert!(adds >= 2, "retried: {adds}");
    assert_eq!(cp.etcd_members().len(), 1);
    assert!(!root.join("etc/kubernetes/manifests/etcd.yaml").exists());
    // The worker half was installed, but the node is not bootstrapped: no sentinel.
    assert_eq!(completion(&root), ("failed".to_string(), false));
}

#[test]
fn the_wait_for_the_local_api_server_is_bounded() {
    let cp = cp("v1.30.4", ControlPlane::with_certificate_key(KEY));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}/healthz");
    let r = join(
        &cp,
        &root,
        &key_file(dir.path(), KEY),
        &["--control-plane-healthz-url", &url, "--timeout", "20s"],
    );
    assert_eq!(r.code, 5, "{}", r.show());
    assert!(r.stderr.contains("wait-control-plane"), "{}", r.show());
    assert!(r.took < Duration::from_secs(40), "{:?}", r.took);
    // Everything before it was done.
    assert!(root.join("etc/kubernetes/manifests/etcd.yaml").exists());
    assert_eq!(completion(&root), ("failed".to_string(), false));
}

#[test]
fn bad_control_plane_input_is_a_usage_error_that_never_echoes_the_key() {
    let cp = cp("v1.30.4", ControlPlane::with_certificate_key(KEY));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let base = support::join_args(&cp, TOKEN, NODE, &root);
    let with = |extra: &[&str]| -> Run {
        let mut a = base.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        run(&a)
    };
    // No key.
    let r = with(&[
        "--control-plane",
        "--apiserver-advertise-address",
        ADVERTISE,
    ]);
    assert_eq!(r.code, 2, "{}", r.show());
    assert!(
        r.stderr.contains("needs the certificate key")
            && r.stderr.contains("--certificate-key-file")
    );
    // A malformed key: named, not echoed.
    let bad = "0123456789abcdefXYZ";
    let r = with(&[
        "--control-plane",
        "--certificate-key",
        bad,
        "--apiserver-advertise-address",
        ADVERTISE,
    ]);
    assert_eq!(r.code, 2, "{}", r.show());
    assert!(
        r.stderr.contains("not 64 hexadecimal digits"),
        "{}",
        r.show()
    );
    no_key_in(&r, bad);
    // A key file others may read.
    let f = dir.path().join("k");
    std::fs::write(&f, KEY).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = with(&[
        "--control-plane",
        "--certificate-key-file",
        f.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.show());
    assert!(r.stderr.contains("chmod 600"), "{}", r.show());
    no_key_in(&r, KEY);
    // A key without --control-plane.
    let r = with(&[
        "--certificate-key-file",
        key_file(dir.path(), KEY).to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.show());
    assert!(
        r.stderr.contains("not a control-plane join"),
        "{}",
        r.show()
    );
    // Inline: warned about like a token, never printed; the dry run then goes ahead.
    let r = with(&[
        "--control-plane",
        "--certificate-key",
        KEY,
        "--apiserver-advertise-address",
        ADVERTISE,
        "--dry-run",
    ]);
    assert_eq!(r.code, 0, "{}", r.show());
    assert!(
        r.stderr
            .contains("--certificate-key given on the command line")
            && r.stderr.contains("--certificate-key-file FILE"),
        "{}",
        r.show()
    );
    no_key_in(&r, KEY);
    assert_eq!(files_under(&root), Vec::<String>::new());
}

#[test]
fn the_kernel_command_line_route_plans_a_control_plane_join() {
    const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    key_file(&root, KEY);
    let base = format!(
        "console=ttyS0 kubejoin.platform=none kubejoin.endpoint=10.0.0.1:6443 kubejoin.token={TOKEN} \
         kubejoin.ca-cert-hash={PIN} kubejoin.control-plane kubejoin.advertise-address=10.0.0.2"
    );
    let plan = |line: &str| -> (Run, serde_json::Value) {
        let f = dir.path().join("cmdline");
        std::fs::write(&f, line).unwrap();
        let r = run(&[
            "plan".to_string(),
            "--cmdline-file".into(),
            f.display().to_string(),
            "--root".into(),
            root.display().to_string(),
        ]);
        let json = serde_json::from_str(&r.stdout).unwrap_or(serde_json::Value::Null);
        (r, json)
    };
    // By file (chmod 600, under the root): valid, the key redacted and its source the file.
    let (r, json) = plan(&format!(
        "{base} kubejoin.certificate-key-file=/certificate-key"
    ));
    assert_eq!(r.code, 0, "{}", r.show());
    assert_eq!(json["valid"], true, "{}", r.show());
    assert_eq!(
        json["values"]["certificate-key"],
        serde_json::json!({"value": "<redacted>", "source": "file:/certificate-key"})
    );
    assert_eq!(json["values"]["control-plane"]["value"], true);
    assert_eq!(json["values"]["advertise-address"]["value"], "10.0.0.2");
    no_key_in(&r, KEY);
    // Inline: the same plan, with the exposure warning; never the key.
    let (r, json) = plan(&format!("{base} kubejoin.certificate-key={KEY}"));
    assert_eq!(r.code, 0, "{}", r.show());
    assert_eq!(json["valid"], true);
    assert!(
        json["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("kubejoin.certificate-key=")),
        "{}",
        r.show()
    );
    no_key_in(&r, KEY);
    // Without a key: not joinable, exit 2, saying what to add.
    let (r, json) = plan(&base);
    assert_eq!(r.code, 2, "{}", r.show());
    assert_eq!(json["valid"], false);
    assert!(
        r.stderr.contains("certificate-key from cmdline")
            && r.stderr.contains("needs the certificate key"),
        "{}",
        r.show()
    );
}

#[test]
fn an_external_etcd_cluster_gets_its_files_and_no_member() {
    // TLS: the three external-etcd files travel in kubeadm-certs to the configured paths.
    let x = ExternalEtcd::tls(&["https://10.0.0.9:2379", "https://10.0.0.10:2379"]);
    let cp = cp(
        "v1.24.17",
        ControlPlane {
            etcd: EtcdTopology::External(x.clone()),
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let r = join(&cp, &root, &key_file(dir.path(), KEY), &[]);
    assert_eq!(r.code, 0, "{}", r.show());
    for (name, content) in cp.shared_files() {
        if content.is_empty() {
            continue;
        }
        let p = match name.as_str() {
            "external-etcd-ca.crt" => x.ca_file.clone(),
            "external-etcd.crt" => x.cert_file.clone(),
            "external-etcd.key" => x.key_file.clone(),
            n => format!("/etc/kubernetes/pki/{n}"),
        };
        assert_eq!(read(&root, &p).as_bytes(), &content[..], "{p}");
    }
    assert_eq!(mode(&root, &x.key_file), 0o600);
    // No local etcd: no etcd certificates of its own, no etcd.yaml, no etcd call.
    for p in [
        "etc/kubernetes/manifests/etcd.yaml",
        "etc/kubernetes/pki/etcd/server.crt",
        "etc/kubernetes/pki/etcd/peer.key",
    ] {
        assert!(!root.join(p).exists(), "{p}");
    }
    let apiserver = read(&root, "/etc/kubernetes/manifests/kube-apiserver.yaml");
    assert!(
        apiserver.contains("    - --etcd-servers=https://10.0.0.9:2379,https://10.0.0.10:2379\n"),
        "{apiserver}"
    );
    assert!(apiserver.contains(&format!("    - --etcd-keyfile={}\n", x.key_file)));
    assert!(cp.etcd_calls().is_empty());
    let node = cp.node(NODE).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
}

/// `--handoff exec` (as PID 1 does it): the files before the kubelet, the handover, the finish
/// step started from the real binary (`/proc/self/exe finish-control-plane --root ROOT`, detached),
/// then the "kubelet" exec'd (`/bin/true` here). The finish step alone then adds and promotes
/// the etcd member, writes etcd.yaml, marks the Node once it is registered, waits for /healthz,
/// records `ok` in its status file and removes the handover; the key is in no output or file.
#[test]
fn handoff_exec_hands_the_phases_after_the_kubelet_to_a_finish_step() {
    let cp = cp("v1.30.4", ControlPlane::with_certificate_key(KEY));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let key = key_file(dir.path(), KEY);
    // The finish step shares the join's stdout and stderr: `run` returns once both ended.
    let r = join(
        &cp,
        &root,
        &key,
        &["--handoff", "exec", "--kubelet-path", "/bin/true"],
    );
    assert_eq!(r.code, 0, "{}", r.show());
    no_key_in(&r, KEY);
    assert!(
        r.stderr
            .contains("started `kubejoin finish-control-plane --root"),
        "{}",
        r.show()
    );
    assert!(r.stderr.contains("executing /bin/true"), "{}", r.show());

    // The finish step is detached: wait (bounded) for its outcome.
    let status = root.join("run/kubejoin/control-plane.json");
    let started = Instant::now();
    let json = loop {
        let j: serde_json::Value = std::fs::read(&status)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        if j["outcome"] == "ok" || j["outcome"] == "failed" {
            break j;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no outcome: {j}\n{}",
            r.show()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(json["outcome"], "ok", "{json}\n{}", r.show());
    assert_eq!(json["node"], NODE);
    let phases: Vec<&str> = json["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["etcd-join", "mark-control-plane", "wait-control-plane"]
    );
    assert!(
        !root
            .join("run/kubejoin/control-plane-handover.json")
            .exists(),
        "the handover is removed once finished"
    );
    // The finish step completed the join: result.json's control plane and the sentinel.
    assert_eq!(completion(&root), ("ready".to_string(), true));

    // etcd: list, add as a learner, promote, by the healthcheck client; etcd.yaml written.
    let paths: Vec<String> = cp.etcd_calls().into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        [
            "/v3/cluster/member/list",
            "/v3/cluster/member/add",
            "/v3/cluster/member/promote"
        ]
    );
    let members = cp.etcd_members();
    assert_eq!(members.len(), 2);
    assert!(!members[1].is_learner, "promoted");
    let etcd_yaml = read(&root, "/etc/kubernetes/manifests/etcd.yaml");
    assert!(etcd_yaml.contains("    - --initial-cluster-state=existing\n"));
    // The Node marked with the admin credentials, /healthz answered.
    let node = cp.node(NODE).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    let reqs = cp.requests();
    assert!(reqs.iter().any(|q| q.method == "PATCH"
        && q.path == "/api/v1/nodes/cp-2"
        && q.user == "kubernetes-admin"));
    assert!(reqs.iter().any(|q| q.path == "/healthz" && q.status == 200));
    for f in files_under(&root) {
        let b = contents(&root.join(&f));
        assert!(
            !String::from_utf8_lossy(&b).contains(KEY),
            "the certificate key in {f}"
        );
    }
}

/// `kubejoin finish-control-plane` on its own: with no handover it has nothing to do (exit 0);
/// with a handover but not the join's files it fails naming the file, records `failed` with
/// the reason in its status file, and keeps the handover for a re-run.
#[test]
fn finish_control_plane_without_its_inputs_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let r = run(&[
        "finish-control-plane".into(),
        "--root".into(),
        root.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.show());
    assert!(r.stderr.contains("nothing to finish"), "{}", r.show());

    let handover = serde_json::json!({
        "kind": "ControlPlaneHandover",
        "server": "https://127.0.0.1:9",
        "nodeName": NODE,
        "advertiseAddress": ADVERTISE,
        "bindPort": 6443,
        "healthzUrl": "https://127.0.0.2:6443/healthz",
        "taints": [],
        "timeoutSecs": 30,
        "clusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.30.4\nimageRepository: registry.k8s.io\ncontrolPlaneEndpoint: 127.0.0.1:9\n"
    });
    let p = root.join("run/kubejoin/control-plane-handover.json");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, handover.to_string()).unwrap();
    let r = run(&[
        "finish-control-plane".into(),
        "--root".into(),
        root.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(
        r.stderr.contains("reading /etc/kubernetes/pki/ca.crt"),
        "{}",
        r.show()
    );
    let status: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("run/kubejoin/control-plane.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["outcome"], "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("/etc/kubernetes/pki/ca.crt"),
        "{status}"
    );
    assert!(p.exists(), "the handover stays for a re-run");
}
