//! The TLS bootstrap, install and handoff against the test control plane (loopback only).
//!
//! Each test starts its own control plane, builds the `Discovered` that discovery would have
//! produced (server URL, CA bundle, bootstrap token) and runs everything after discovery into a
//! temporary root, with the recording syscall fake.

// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use kubejoin::bootstrap::{self, csr, wait::WaitOptions};
use kubejoin::discovery::{BootstrapCredentials, Discovered, Method};
use kubejoin::error::{Class, Classify};
use kubejoin::fs::root::Root;
use kubejoin::install;
use kubejoin::join::{self, Joined, Outcome, Tuning};
use kubejoin::kube::token::BootstrapToken;
use kubejoin::kube::{self, Identity, Timeouts, Trust};
use kubejoin::plan::{HandoffMode, JoinPlan};
use kubejoin::sys::exec::{ExecCall, RecordingExec};
use kubejoin_testcp::{Approval, Config, Handle, NodeSpec, TokenSpec};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const NODE: &str = "worker-1";
const HOSTNAME: &str = "test-host";

fn start(config: Config) -> Handle {
    kubejoin_testcp::start(config).expect("test control plane starts")
}

fn discovered(cp: &Handle) -> Discovered {
    let ca_pem = cp.ca_pem().into_bytes();
    let ca_der = kubejoin::pki::pem::certs_from_pem(&ca_pem).unwrap();
    Discovered {
        server: cp.url(),
        ca_pem,
        ca_der,
        unpinned: Vec::new(),
        matched_pin: None,
        method: Method::Token {
            endpoint: cp.endpoint(),
        },
        credentials: BootstrapCredentials::Token(BootstrapToken::parse(&cp.token()).unwrap()),
        warm: None,
    }
}

/// A plan as the CLI builds it, into `root`.
fn plan(cp: &Handle, root: &Path, extra: &[&str]) -> JoinPlan {
    let mut argv = vec!["kubejoin".to_string()];
    argv.extend(support::join_args(cp, &cp.token(), NODE, root));
    argv.extend(extra.iter().map(|s| s.to_string()));
    match kubejoin::cli::parse(argv.into_iter().map(Into::into)).unwrap() {
        kubejoin::cli::Command::Join(p) => *p,
        other => panic!("not a join: {other:?}"),
    }
}

fn tuning() -> Tuning {
    Tuning {
        wait: WaitOptions {
            progress_interval: Duration::from_millis(500),
            retry_pause: Duration::from_millis(100),
            ..WaitOptions::default()
        },
        ..Tuning::default()
    }
}

async fn join(plan: &JoinPlan, cp: &Handle, tuning: &Tuning) -> Result<Joined, join::Error> {
    join::bootstrap_and_install(plan, &discovered(cp), &RecordingExec::new(HOSTNAME), tuning).await
}

fn p(root: &Path, node_path: &str) -> PathBuf {
    Root::new(root).join(node_path).unwrap()
}

fn mode(root: &Path, node_path: &str) -> u32 {
    std::fs::symlink_metadata(p(root, node_path))
        .unwrap()
        .mode()
        & 0o7777
}

/// Every file and symlink under `root`, as node paths, sorted.
fn tree(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(base, &e.path(), out);
            } else {
                out.push(format!(
                    "/{}",
                    e.path().strip_prefix(base).unwrap().display()
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// On a thread: once the control plane holds a CSR, wait `delay`, then run `f` with its name.
fn when_csr_appears(
    cp: &Arc<Handle>,
    delay: Duration,
    f: impl FnOnce(&Handle, &str) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let cp = Arc::clone(cp);
    std::thread::spawn(move || {
        let name = loop {
            let first = cp
                .csrs()
                .first()
                .and_then(|c| c["metadata"]["name"].as_str().map(str::to_string));
            if let Some(n) = first {
                break n;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(delay);
        f(&cp, &name);
    })
}

fn manual() -> Config {
    Config {
        approval: Approval::Manual,
        ..Config::default()
    }
}

fn assert_nothing_installed(root: &Path) {
    // Only the pending key may exist: it is what lets a re-run resume the same CSR.
    let files = tree(root);
    assert!(
        files.iter().all(|f| f == install::KEY_TMP),
        "nothing but the pending key may be written, found {files:?}"
    );
}

#[tokio::test]
async fn auto_approved_join_installs_every_file() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let joined = join(
        &plan(&cp, root, &["--kubelet-arg", "node-ip=10.0.0.5"]),
        &cp,
        &tuning(),
    )
    .await
    .unwrap();
    assert_eq!(joined.outcome, Outcome::Joined);
    let csr_name = joined.csr.clone().unwrap();
    assert!(csr_name.starts_with("node-csr-"), "{csr_name}");
    assert!(!joined.csr_reused);

    // Exactly the files of spec §6, with their modes, and nothing else.
    let pem_name = tree(root)
        .into_iter()
        .find(|f| f.starts_with("/var/lib/kubelet/pki/kubelet-client-2"))
        .expect("a timestamped client PEM");
    let mut expected = vec![
        install::CA_CRT.to_string(),
        install::KUBELET_CONF.to_string(),
        install::CAPI_SENTINEL.to_string(),
        install::RESULT_JSON.to_string(),
        install::FLAGS_ENV.to_string(),
        install::KUBELET_CONFIG.to_string(),
        pem_name.clone(),
        install::CLIENT_CURRENT.to_string(),
    ];
    expected.sort();
    assert_eq!(tree(root), expected);
    assert_eq!(mode(root, install::CA_CRT), 0o644);
    assert_eq!(mode(root, &pem_name), 0o600);
    assert_eq!(mode(root, install::KUBELET_CONF), 0o600);
    assert_eq!(mode(root, install::KUBELET_CONFIG), 0o644);
    assert_eq!(mode(root, install::FLAGS_ENV), 0o644);
    assert_eq!(mode(root, "/var/lib/kubelet"), 0o700);
    assert_eq!(mode(root, "/var/lib/kubelet/pki"), 0o755);
    assert_eq!(mode(root, "/etc/kubernetes"), 0o755);

    // Contents.
    assert_eq!(
        std::fs::read(p(root, install::CA_CRT)).unwrap(),
        cp.ca_pem().into_bytes()
    );
    assert_eq!(
        std::fs::read_link(p(root, install::CLIENT_CURRENT)).unwrap(),
        PathBuf::from(&pem_name)
    );
    let pem = std::fs::read_to_string(p(root, &pem_name)).unwrap();
    let cert_at = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
    let key_at = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
    assert!(
        cert_at == 0 && cert_at < key_at,
        "certificate chain first, then the key"
    );
    assert_eq!(
        std::fs::read_to_string(p(root, install::KUBELET_CONF)).unwrap(),
        install::kubelet_conf(&cp.url(), cp.ca_pem().as_bytes())
    );
    let kubelet_config = std::fs::read_to_string(p(root, install::KUBELET_CONFIG)).unwrap();
    assert!(
        kubelet_config.contains("kind: KubeletConfiguration"),
        "{kubelet_config}"
    );
    assert_eq!(
        std::fs::read_to_string(p(root, install::FLAGS_ENV)).unwrap(),
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock \
         --hostname-override=worker-1 --node-ip=10.0.0.5 --pod-infra-container-image=registry.k8s.io/pause:3.10\"\n"
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p(root, install::RESULT_JSON)).unwrap())
            .unwrap();
    assert_eq!(result["outcome"], "joined");
    assert_eq!(result["node"], NODE);
    assert_eq!(result["csr"], csr_name.as_str());
    assert_eq!(result["server"], cp.url());
    assert_eq!(result["ca_pin"], cp.signing_ca_pin());
    assert!(result["certificate_not_after"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(result["phases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|ph| ph["phase"] == "wait-approval"));
    assert_eq!(
        std::fs::read_to_string(p(root, install::CAPI_SENTINEL)).unwrap(),
        "success\n"
    );

    // No bootstrap kubeconfig, no pending key, and the token secret nowhere on disk.
    assert!(!p(root, "/etc/kubernetes/bootstrap-kubelet.conf").exists());
    assert!(!p(root, install::KEY_TMP).exists());
    let secret = cp.token().split_once('.').unwrap().1.to_string();
    for f in tree(root)
        .into_iter()
        .filter(|f| f != install::CLIENT_CURRENT)
    {
        let bytes = std::fs::read(p(root, &f)).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret),
            "{f} holds the token secret"
        );
    }

    // The server saw one CSR, created by the bootstrap identity, issued.
    let csrs = cp.csrs();
    assert_eq!(csrs.len(), 1);
    assert_eq!(csrs[0]["metadata"]["name"], csr_name.as_str());
    assert_eq!(csrs[0]["spec"]["username"], "system:bootstrap:abcdef");
    assert_eq!(csrs[0]["spec"]["signerName"], csr::SIGNER_NAME);
    assert_eq!(
        csrs[0]["spec"]["usages"],
        serde_json::json!(["digital signature", "client auth"])
    );
}

#[tokio::test]
async fn manual_approval_after_a_few_seconds_prints_progress() {
    let cp = Arc::new(start(manual()));
    let t = tempfile::tempdir().unwrap();
    let approver = when_csr_appears(&cp, Duration::from_millis(2500), |cp, name| {
        cp.approve(name).unwrap()
    });
    let joined = join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap();
    approver.join().unwrap();
    let name = joined.csr.clone().unwrap();
    assert!(
        joined.progress.len() >= 3,
        "a line every 500 ms while pending: {:?}",
        joined.progress
    );
    for line in &joined.progress {
        assert!(
            line.contains(&format!("kubectl certificate approve {name}")),
            "{line}"
        );
        assert!(line.contains("elapsed"), "{line}");
    }
    assert!(p(t.path(), install::KUBELET_CONF).exists());
}

#[tokio::test]
async fn denied_csr_reports_reason_and_installs_nothing() {
    let cp = Arc::new(start(manual()));
    let t = tempfile::tempdir().unwrap();
    let denier = when_csr_appears(&cp, Duration::from_millis(300), |cp, name| {
        cp.deny(
            name,
            "NotOurMachine",
            "this machine is not in the inventory",
        )
        .unwrap()
    });
    let e = join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap_err();
    denier.join().unwrap();
    assert_eq!(e.class(), Class::Rejected);
    let text = e.to_string();
    assert!(
        text.contains(
            "is denied, reason: NotOurMachine, message: this machine is not in the inventory"
        ),
        "{text}"
    );
    assert!(e.hint().unwrap().contains("kubectl delete csr"));
    assert_nothing_installed(t.path());
}

#[tokio::test]
async fn never_approved_times_out_and_installs_nothing() {
    let cp = start(manual());
    let t = tempfile::tempdir().unwrap();
    let e = join(
        &plan(&cp, t.path(), &["--tls-bootstrap-timeout", "2s"]),
        &cp,
        &tuning(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), Class::Timeout);
    let name = cp.csrs()[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.to_string()
            .contains(&format!("waiting for certificate signing request {name}")),
        "{e}"
    );
    assert!(e
        .hint()
        .unwrap()
        .contains(&format!("kubectl certificate approve {name}")));
    assert_nothing_installed(t.path());
}

#[tokio::test]
async fn csr_deleted_while_waiting() {
    let cp = Arc::new(start(manual()));
    let t = tempfile::tempdir().unwrap();
    let deleter = when_csr_appears(&cp, Duration::from_millis(500), |cp, name| {
        cp.delete_csr(name).unwrap()
    });
    let e = join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap_err();
    deleter.join().unwrap();
    assert!(
        matches!(e, join::Error::Bootstrap(bootstrap::Error::Deleted { .. })),
        "{e:?}"
    );
    assert_eq!(e.class(), Class::Rejected);
    assert_nothing_installed(t.path());
}

#[tokio::test]
async fn watch_dropped_mid_wait_is_re_established() {
    // The control plane cannot cut a stream on demand, so each watch asks the server to end
    // it after 1 s (timeoutSeconds): the approval arrives on the third or fourth watch.
    let cp = Arc::new(start(manual()));
    let t = tempfile::tempdir().unwrap();
    let approver = when_csr_appears(&cp, Duration::from_millis(3500), |cp, name| {
        cp.approve(name).unwrap()
    });
    let mut tu = tuning();
    tu.wait.watch_timeout = Duration::from_secs(1);
    let joined = join(&plan(&cp, t.path(), &[]), &cp, &tu).await.unwrap();
    approver.join().unwrap();
    assert_eq!(joined.outcome, Outcome::Joined);
    let watches: Vec<_> = cp
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("watch=true"))
        .collect();
    assert!(
        watches.len() >= 3,
        "the watch was re-established: {watches:?}"
    );
    // Every re-established watch resumed from a resourceVersion rather than starting blind.
    assert!(
        watches.iter().all(|w| w.path.contains("resourceVersion=")),
        "{watches:?}"
    );
}

#[tokio::test]
async fn certificate_for_another_key_is_refused() {
    // The control plane only issues for the CSR's key; a certificate from the real cluster CA
    // for the right node but another key stands in for a misbehaving signer.
    let cp = start(Config::default());
    let (cert, _key) = cp.issue_client_cert("system:node:worker-1", &["system:nodes"]);
    let ours = csr::NodeKey::generate().unwrap();
    let d = discovered(&cp);
    let e = bootstrap::verify::verify(
        cert.as_bytes(),
        &ours.spki_der(),
        NODE,
        &d.ca_der,
        std::time::SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(e, bootstrap::verify::VerifyError::WrongKey);
    // The same certificate is fine for its own key, and refused against another cluster's CA.
    let ders = kubejoin::pki::pem::blocks_of(cert.as_bytes(), "CERTIFICATE");
    let (_, c) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
    let spki = c.tbs_certificate.subject_pki.raw.to_vec();
    bootstrap::verify::verify(
        cert.as_bytes(),
        &spki,
        NODE,
        &d.ca_der,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let other = discovered(&start(Config::default()));
    assert!(matches!(
        bootstrap::verify::verify(
            cert.as_bytes(),
            &spki,
            NODE,
            &other.ca_der,
            std::time::SystemTime::now()
        ),
        Err(bootstrap::verify::VerifyError::NotChained(_))
    ));
}

#[tokio::test]
async fn ready_node_with_the_same_name_is_refused() {
    let cp = start(Config {
        nodes: vec![NodeSpec {
            name: NODE.into(),
            ready: true,
        }],
        ..Config::default()
    });
    let t = tempfile::tempdir().unwrap();
    let e = join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap_err();
    assert_eq!(e.class(), Class::Rejected);
    assert_eq!(
        e.to_string(),
        "a Node with name \"worker-1\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node"
    );
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("kubectl delete node worker-1") && hint.contains("--node-name"),
        "{hint}"
    );
    assert!(cp.csrs().is_empty(), "no CSR was submitted");
    assert!(tree(t.path()).is_empty());

    // A NotReady Node of that name (a previous life of this machine) does not block the join.
    let cp = start(Config {
        nodes: vec![NodeSpec {
            name: NODE.into(),
            ready: false,
        }],
        ..Config::default()
    });
    let t = tempfile::tempdir().unwrap();
    join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap();
}

#[tokio::test]
async fn token_without_the_default_group_gets_403_with_a_hint() {
    let token = TokenSpec {
        extra_groups: Vec::new(),
        ..TokenSpec::new("abcdef", "0123456789abcdef")
    };
    let cp = start(Config {
        tokens: vec![token],
        ..Config::default()
    });
    let t = tempfile::tempdir().unwrap();
    let e = join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap_err();
    assert_eq!(e.class(), Class::Rejected);
    let text = e.to_string();
    assert!(
        text.contains("getting ConfigMap kube-system/kubeadm-config") && text.contains("403"),
        "{text}"
    );
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("system:bootstrappers:kubeadm:default-node-token"),
        "{hint}"
    );
    assert!(hint.contains("kubeadm token create"), "{hint}");
    assert!(!text.contains("0123456789abcdef") && !hint.contains("0123456789abcdef"));
    assert!(tree(t.path()).is_empty());
}

#[tokio::test]
async fn crash_between_post_and_install_resumes_the_same_csr() {
    let cp = start(manual());
    let t = tempfile::tempdir().unwrap();
    let pl = plan(&cp, t.path(), &[]);
    // "Crash": the first run is dropped while it waits for approval.
    let first = tokio::time::timeout(Duration::from_secs(2), join(&pl, &cp, &tuning())).await;
    assert!(first.is_err(), "the first run was still waiting");
    let csrs = cp.csrs();
    assert_eq!(csrs.len(), 1);
    let name = csrs[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        p(t.path(), install::KEY_TMP).exists(),
        "the key was persisted before the POST"
    );
    assert!(!p(t.path(), install::KUBELET_CONF).exists());

    cp.approve(&name).unwrap();
    let joined = join(&pl, &cp, &tuning()).await.unwrap();
    assert_eq!(joined.csr.as_deref(), Some(name.as_str()));
    assert!(joined.csr_reused);
    assert_eq!(cp.csrs().len(), 1, "exactly one CSR on the server");
    let posts = cp
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(posts, vec![201, 409]);
    assert!(!p(t.path(), install::KEY_TMP).exists());
}

#[tokio::test]
async fn second_run_is_a_no_op() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let pl = plan(&cp, t.path(), &[]);
    join(&pl, &cp, &tuning()).await.unwrap();
    let conf_before = std::fs::metadata(p(t.path(), install::KUBELET_CONF)).unwrap();
    let requests_before = cp.requests().len();

    let again = join(&pl, &cp, &tuning()).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyJoined);
    assert!(again.csr.is_none());
    assert_eq!(
        cp.requests().len(),
        requests_before,
        "no request at all: the token is not needed"
    );
    assert_eq!(cp.csrs().len(), 1);
    let conf_after = std::fs::metadata(p(t.path(), install::KUBELET_CONF)).unwrap();
    assert_eq!(
        conf_before.ino(),
        conf_after.ino(),
        "kubelet.conf was not rewritten"
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p(t.path(), install::RESULT_JSON)).unwrap())
            .unwrap();
    assert_eq!(result["outcome"], "already-joined");

    // --force joins again (a new CSR, the same node).
    let forced = join(&plan(&cp, t.path(), &["--force"]), &cp, &tuning())
        .await
        .unwrap();
    assert_eq!(forced.outcome, Outcome::Joined);
    assert_eq!(cp.csrs().len(), 2);
}

#[tokio::test]
async fn kubelet_conf_of_another_cluster_is_refused_unless_forced() {
    let first = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    join(&plan(&first, t.path(), &[]), &first, &tuning())
        .await
        .unwrap();

    let second = start(Config::default());
    let e = join(&plan(&second, t.path(), &[]), &second, &tuning())
        .await
        .unwrap_err();
    assert_eq!(e.class(), Class::Usage);
    assert!(e.to_string().contains("belongs to another cluster"), "{e}");
    assert!(e.hint().unwrap().contains("--force"));
    assert!(second.requests().is_empty(), "refused before any request");

    let joined = join(&plan(&second, t.path(), &["--force"]), &second, &tuning())
        .await
        .unwrap();
    assert_eq!(joined.outcome, Outcome::Joined);
    assert_eq!(
        std::fs::read(p(t.path(), install::CA_CRT)).unwrap(),
        second.ca_pem().into_bytes()
    );
}

#[tokio::test]
async fn issued_certificate_authenticates_as_the_node() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap();
    // The symlink's target is a node path: resolve it inside the root.
    let target = std::fs::read_link(p(t.path(), install::CLIENT_CURRENT)).unwrap();
    let pem = std::fs::read(p(t.path(), target.to_str().unwrap())).unwrap();
    let d = discovered(&cp);
    let client = kube::client(
        &cp.url(),
        &Trust::CaBundle(d.ca_der.clone()),
        &Identity::ClientCert {
            cert_pem: pem.clone(),
            key_pem: pem,
        },
        Timeouts::default(),
    )
    .unwrap();
    let err = client
        .get::<kubejoin::kube::types::Node>(&format!("/api/v1/nodes/{NODE}"), "Node")
        .await
        .unwrap_err();
    match kube::wire_failure(&err) {
        kube::WireFailure::Status { code, reason, .. } => {
            assert_eq!(
                (code, reason.as_str()),
                (404, "NotFound"),
                "authenticated and authorized, the Node just does not exist"
            )
        }
        other => panic!("{other:?}"),
    }
    let last = cp
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.contains("/api/v1/nodes/worker-1"))
        .unwrap();
    assert_eq!(last.user, "system:node:worker-1");
}

#[tokio::test]
async fn exec_handoff_through_the_recording_fake() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let pl = plan(
        &cp,
        t.path(),
        &[
            "--handoff",
            "exec",
            "--kubelet-path",
            "/opt/bin/kubelet",
            "--kubelet-arg",
            "v=2",
        ],
    );
    assert_eq!(pl.handoff, HandoffMode::Exec);
    join(&pl, &cp, &tuning()).await.unwrap();
    let sys = RecordingExec::new(HOSTNAME);
    let e = kubejoin::handoff::handoff(pl.handoff, &pl.kubelet_path, &Root::new(t.path()), &sys)
        .unwrap_err();
    assert!(matches!(e, kubejoin::handoff::Error::Exec { .. }));
    let calls = sys.calls();
    let [ExecCall::Execve { path, argv, env }] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(path, Path::new("/opt/bin/kubelet"));
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        argv,
        vec![
            "/opt/bin/kubelet",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
            "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
            "--hostname-override=worker-1",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10",
            "--v=2",
        ]
    );
    assert_eq!(
        env,
        &vec![("PATH".into(), kubejoin::handoff::KUBELET_PATH_ENV.into())]
    );
    let secret = cp.token();
    assert!(argv.iter().all(|a| !a.contains(&secret[7..])));
}

#[tokio::test]
async fn dry_run_writes_and_submits_nothing() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let joined = join(&plan(&cp, t.path(), &["--dry-run"]), &cp, &tuning())
        .await
        .unwrap();
    assert_eq!(joined.outcome, Outcome::DryRun);
    assert!(tree(t.path()).is_empty(), "{:?}", tree(t.path()));
    assert!(cp.csrs().is_empty());
    assert!(
        cp.requests().iter().all(|r| r.method == "GET"),
        "reads only"
    );
    let listing = joined.steps.join("\n");
    for expected in [
        "write   /var/lib/kubelet/pki/kubelet-client.key.tmp (0600)",
        "write   /etc/kubernetes/pki/ca.crt (0644)",
        "symlink /var/lib/kubelet/pki/kubelet-client-current.pem -> /var/lib/kubelet/pki/kubelet-client-",
        "write   /var/lib/kubelet/config.yaml (0644)",
        "write   /var/lib/kubelet/kubeadm-flags.env (0644)",
        "write   /etc/kubernetes/kubelet.conf (0600)",
        "write   /run/kubejoin/result.json (0644)",
    ] {
        assert!(listing.contains(expected), "{expected:?} missing from\n{listing}");
    }
}

// ---- the overall deadline, phase bounds and retries (issue #7 part B) ----

fn with_faults(faults: kubejoin_testcp::Faults, approval: Approval) -> Config {
    Config {
        faults,
        approval,
        ..Config::default()
    }
}

fn short_api_phases(api: Duration) -> Tuning {
    Tuning {
        api_phase: api,
        ..tuning()
    }
}

#[tokio::test]
async fn the_overall_deadline_cuts_the_approval_wait_and_names_the_phase() {
    let cp = start(manual());
    let t = tempfile::tempdir().unwrap();
    // --tls-bootstrap-timeout stays at 5 m: the 3 s overall deadline is what ends the wait.
    let pl = plan(&cp, t.path(), &[]);
    let mut run = join::Run::new(Duration::from_secs(3));
    let started = std::time::Instant::now();
    let e = join::bootstrap_and_install_within(
        &pl,
        &discovered(&cp),
        &RecordingExec::new(HOSTNAME),
        &tuning(),
        &mut run,
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(e.class(), Class::Timeout);
    assert_eq!(e.class().exit_code(), 5);
    let text = e.to_string();
    assert!(
        text.starts_with("gave up in wait-approval after ")
            && text.contains("(overall deadline 3s): "),
        "{text}"
    );
    let name = cp.csrs()[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains(&format!("waiting for certificate signing request {name}")),
        "the last cause is kept: {text}"
    );
    let hint = e.hint().unwrap();
    assert!(
        hint.contains(&format!("kubectl certificate approve {name}")) && hint.contains("--timeout"),
        "{hint}"
    );
    // The phases that finished are on record; the one that ran out is not.
    let phases: Vec<&str> = run.phases().iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(phases, vec!["identity-check", "cluster-config", "csr"]);
    assert_nothing_installed(t.path());
}

#[test]
fn timeout_flag_sets_the_overall_deadline() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    assert_eq!(plan(&cp, t.path(), &[]).timeout, Duration::from_secs(600));
    assert_eq!(
        plan(&cp, t.path(), &["--timeout", "90s"]).timeout,
        Duration::from_secs(90)
    );
    assert_eq!(
        plan(&cp, t.path(), &["--timeout=1h30m"]).timeout,
        Duration::from_secs(5400)
    );
    for bad in ["0", "soon", "-1s"] {
        let argv = [
            "kubejoin",
            "join",
            &cp.endpoint(),
            "--token",
            &cp.token(),
            "--discovery-token-ca-cert-hash",
            &cp.signing_ca_pin(),
            "--timeout",
            bad,
        ];
        let e = kubejoin::cli::parse(argv.iter().map(Into::into)).unwrap_err();
        assert_eq!(e.class(), Class::Usage, "{bad}: {e}");
        assert!(e.to_string().contains("--timeout"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn an_exhausted_deadline_stops_before_any_request() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let pl = plan(&cp, t.path(), &[]);
    let mut run = join::Run::new(Duration::ZERO);
    let e = join::bootstrap_and_install_within(
        &pl,
        &discovered(&cp),
        &RecordingExec::new(HOSTNAME),
        &tuning(),
        &mut run,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("gave up in cluster-config after "),
        "{e}"
    );
    assert_eq!(e.class(), Class::Timeout);
    assert!(tree(t.path()).is_empty());
}

#[tokio::test]
async fn overload_and_failover_answers_are_retried_within_the_phase() {
    use kubejoin_testcp::{Action, Faults, RequestFault};
    let status = |code: u16| Action::Status {
        code,
        retry_after: Some("1".into()),
    };
    let cp = start(with_faults(
        Faults {
            requests: vec![
                RequestFault::first(2, status(429))
                    .under("/api/v1/namespaces/kube-system/configmaps"),
                RequestFault::first(1, status(503)).under("/api/v1/nodes"),
                RequestFault::first(2, status(500))
                    .under("/apis/certificates.k8s.io/v1/certificatesigningrequests"),
            ],
            ..Faults::default()
        },
        Approval::Auto,
    ));
    let t = tempfile::tempdir().unwrap();
    let joined = join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap();
    assert_eq!(joined.outcome, Outcome::Joined);
    let faulted: Vec<String> = cp.requests().into_iter().filter_map(|r| r.fault).collect();
    assert_eq!(faulted.len(), 5, "{faulted:?}");
    assert_eq!(cp.csrs().len(), 1);
}

#[tokio::test]
async fn a_lost_csr_answer_is_retried_and_the_same_csr_adopted() {
    use kubejoin_testcp::{Action, Faults, RequestFault};
    // The server creates the CSR but the connection is reset halfway through the answer: the
    // retried POST meets our own CSR (409) and adopts it rather than leaving an orphan.
    let cp = start(with_faults(
        Faults {
            requests: vec![RequestFault::first(1, Action::ResetMidBody)
                .under("/apis/certificates.k8s.io/v1/certificatesigningrequests")],
            ..Faults::default()
        },
        Approval::Auto,
    ));
    let t = tempfile::tempdir().unwrap();
    let joined = join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap();
    assert!(
        joined.csr_reused,
        "the retry adopted the CSR the lost answer created"
    );
    assert_eq!(cp.csrs().len(), 1, "exactly one CSR on the server");
    let posts: Vec<u16> = cp
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[1], 409, "{posts:?}");
}

#[tokio::test]
async fn a_server_that_keeps_failing_gives_up_at_the_phase_bound_with_the_last_cause() {
    use kubejoin_testcp::{Action, Faults, RequestFault};
    let cp = start(with_faults(
        Faults {
            // Every attempt reaches kubejoin's loop (the API client never retries on its own).
            requests: vec![RequestFault::always(Action::Status {
                code: 500,
                retry_after: None,
            })
            .under("/api/v1/namespaces/kube-system/configmaps")],
            ..Faults::default()
        },
        Approval::Auto,
    ));
    let t = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let e = join(
        &plan(&cp, t.path(), &[]),
        &cp,
        &short_api_phases(Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = e.to_string();
    assert!(
        text.starts_with("gave up in cluster-config after ")
            && text.contains(
                "(overall deadline 10m0s): getting ConfigMap kube-system/kubeadm-config at"
            )
            && text.contains("500"),
        "{text}"
    );
    let attempts = cp.requests().len();
    assert!(attempts >= 3, "retried with backoff: {attempts} requests");
    assert_eq!(e.class(), Class::Timeout);
    assert!(cp.csrs().is_empty());
    assert!(tree(t.path()).is_empty());
}

#[tokio::test]
async fn a_request_that_never_answers_is_cut_at_the_phase_bound() {
    use kubejoin_testcp::{Action, Faults, RequestFault};
    let cp = start(with_faults(
        Faults {
            requests: vec![RequestFault::always(Action::Stall {
                max: Duration::from_secs(30),
            })
            .under("/apis/certificates.k8s.io/v1/certificatesigningrequests")],
            ..Faults::default()
        },
        Approval::Auto,
    ));
    let t = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let e = join(
        &plan(&cp, t.path(), &[]),
        &cp,
        &short_api_phases(Duration::from_millis(1500)),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("gave up in csr after ")
            && text.contains("creating the certificate signing request")
            && text.contains("timed out"),
        "{text}"
    );
    assert_eq!(e.class(), Class::Timeout);
    // The key was persisted before the POST: a re-run resumes with the same CSR name.
    assert_nothing_installed(t.path());
}

/// `(method, path without query)` of every request the control plane saw, and the queries.
fn request_lines(cp: &Handle) -> Vec<(String, String, String)> {
    cp.requests()
        .into_iter()
        .map(|r| {
            let (path, query) = r.path.split_once('?').unwrap_or((r.path.as_str(), ""));
            (r.method.clone(), path.to_string(), query.to_string())
        })
        .collect()
}

const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

#[tokio::test]
async fn a_fresh_join_makes_five_requests_and_watches_from_the_posts_version() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let joined = join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap();
    let csr = joined.csr.clone().unwrap();
    let lines = request_lines(&cp);
    let calls: Vec<(&str, &str)> = lines
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    // No kube-proxy GET, no LIST before the watch.
    assert_eq!(
        calls,
        vec![
            (
                "GET",
                "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-system/configmaps/kubelet-config"
            ),
            ("GET", &*format!("/api/v1/nodes/{NODE}")),
            ("POST", CSRS),
            ("GET", CSRS),
        ],
        "{lines:?}"
    );
    let watch = &lines[4].2;
    assert!(watch.contains("watch=true"), "{watch}");
    assert!(
        watch.contains(&format!("fieldSelector=metadata.name%3D{csr}")),
        "{watch}"
    );
    // Resumed from the POST's answer: a concrete resourceVersion, not "" or 0.
    let rv = watch
        .split('&')
        .find_map(|kv| kv.strip_prefix("resourceVersion="))
        .unwrap();
    assert!(rv.parse::<u64>().unwrap() > 0, "{watch}");
    // One connection pool: every request carried the token, none was anonymous.
    assert!(cp.requests().iter().all(|r| r.authorization));
}

#[tokio::test]
async fn a_watch_that_cannot_start_falls_back_to_list_and_watch() {
    use kubejoin_testcp::{Action, Faults, RequestFault};
    // The POST passes; the next CSR request (the watch from the POST's version) gets a 503.
    let cp = start(with_faults(
        Faults {
            requests: vec![RequestFault::first(
                1,
                Action::Status {
                    code: 503,
                    retry_after: None,
                },
            )
            .after(1)
            .under(CSRS)],
            ..Faults::default()
        },
        Approval::Auto,
    ));
    let t = tempfile::tempdir().unwrap();
    join(&plan(&cp, t.path(), &[]), &cp, &tuning())
        .await
        .unwrap();
    let csr_calls: Vec<(String, u16, bool)> = cp
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(CSRS))
        .map(|r| (r.method.clone(), r.status, r.path.contains("watch=true")))
        .collect();
    assert_eq!(
        csr_calls[0],
        ("POST".to_string(), 201, false),
        "{csr_calls:?}"
    );
    assert_eq!(
        csr_calls[1],
        ("GET".to_string(), 503, true),
        "{csr_calls:?}"
    );
    // Then LIST (not a watch), and a watch from the list's version, or the list already had it.
    assert_eq!(
        csr_calls[2],
        ("GET".to_string(), 200, false),
        "{csr_calls:?}"
    );
    assert!(csr_calls.len() <= 4, "{csr_calls:?}");
    assert!(tree(t.path()).iter().any(|p| p.ends_with("kubelet.conf")));
}
