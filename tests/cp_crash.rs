//! Crash consistency of the control-plane join, at every one of its failpoints.
//!
//! A clean `kubejoin join --control-plane` into an empty root runs with every failpoint traced
//! (`KUBEJOIN_FAILPOINT=trace`): the failpoints it passes are the list — taken from the binary,
//! not written down here — and its root is the reference. Then, for each failpoint the
//! control-plane phases pass (the certificates, keys, kubeconfigs and static Pods of
//! control-plane-files, and `etcd.yaml` after the member add; the worker's own failpoints inside
//! kubelet-start are `tests/crash.rs`'s), the real binary runs against its own test control
//! plane into its own root under umask 000 and `abort()`s there, as an OOM kill would. The root
//! it leaves must hold only whole files under real names with their final modes (a temp file no
//! wider than its target: private keys never readable by others), and no certificate key; the
//! re-run with `--force` (kubeadm's preflight refuses existing control-plane files, as kubejoin's
//! does) must then complete with exactly the entries and modes of the clean join, one etcd
//! member added (a re-run finds its own member by peer URL), and the node marked.
//!
//! Key generation: the cluster is v1.31 with `encryptionAlgorithm: ECDSA-P256` (v1beta4), so the
//! ~140 runs do not each generate ten RSA keys in a debug build (measured: ~1.5 s of CPU per
//! join); the write path, its order and its failpoints are the same for every key type, and
//! RSA-2048 leaves are checked by `tests/cp_join.rs` and `tests/controlplane_golden.rs`.
//! Failpoints exist only in debug builds (or with the `failpoints` feature).

#![cfg(any(debug_assertions, feature = "failpoints"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin::fs::failpoint;
use kubejoin_testcp::{ClusterSpec, Config, ControlPlane, Handle};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "abcdef.0123456789abcdef";
const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
const NODE: &str = "cp-2";
const ADVERTISE: &str = "127.0.0.2";
const VERSION: &str = "v1.31.4";
/// Bound of one binary run.
const RUN_LIMIT: Duration = Duration::from_secs(90);
/// Bound of the whole matrix.
const MATRIX_LIMIT: Duration = Duration::from_secs(600);

fn start() -> Handle {
    kubejoin_testcp::start(Config {
        kubernetes_version: VERSION.into(),
        control_plane: Some(ControlPlane {
            register_nodes_after: Some(Duration::from_millis(200)),
            cluster: ClusterSpec {
                encryption_algorithm: Some("ECDSA-P256".into()),
                ..ClusterSpec::default()
            },
            ..ControlPlane::with_certificate_key(KEY)
        }),
        ..Config::default()
    })
    .unwrap()
}

/// The real binary, as `kubejoin join --control-plane …` under umask 000 (a file created wider
/// than its final mode would show), without core dumps, `failpoint` armed or not.
fn kubejoin(cp: &Handle, dir: &Path, failpoint: Option<&str>, extra: &[&str]) -> Output {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let key = dir.join("certificate-key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000; ulimit -c 0; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_kubejoin"))
        .args(support::join_args(cp, TOKEN, NODE, &root))
        .args([
            "--control-plane",
            "--certificate-key-file",
            key.to_str().unwrap(),
            "--apiserver-advertise-address",
            ADVERTISE,
            "--control-plane-healthz-url",
            &format!("{}/healthz", cp.url()),
        ])
        .args(extra)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(fp) = failpoint {
        cmd.env(failpoint::ENV, fp);
    }
    support::run_bounded(cmd, RUN_LIMIT)
}

use support::text;

/// One entry of a root: kind and mode (a symlink's mode is its target's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir(u32),
    File(u32),
    Symlink,
}

/// `/var/lib/kubelet/pki/kubelet-client-2026-…pem` → `…/kubelet-client-*.pem`, as failpoint
/// names write it, so roots of different runs compare.
fn normal(node_path: &str) -> String {
    failpoint::name("x", node_path)["x:".len()..].to_string()
}

/// The real name a temp entry of the atomic writer stands for: `.<name>.kubejoin-tmp.<pid>.<n>`.
fn temp_target(node_path: &str) -> Option<String> {
    let (dir, name) = node_path.rsplit_once('/')?;
    let inner = name.strip_prefix('.')?;
    let (target, _) = inner.split_once(".kubejoin-tmp.")?;
    Some(format!("{dir}/{target}"))
}

/// Every entry under `root`, by normalised node path, with its bytes for files.
fn snapshot(root: &Path) -> BTreeMap<String, (Kind, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (Kind, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let node = normal(&format!("/{}", p.strip_prefix(base).unwrap().display()));
            let mode = m.mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(node, (Kind::Symlink, Vec::new()));
            } else if m.is_dir() {
                out.insert(node, (Kind::Dir(mode), Vec::new()));
                walk(base, &p, out);
            } else {
                out.insert(node, (Kind::File(mode), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn shape(s: &BTreeMap<String, (Kind, Vec<u8>)>) -> BTreeMap<String, Kind> {
    s.iter().map(|(p, (k, _))| (p.clone(), *k)).collect()
}

/// What a crashed root may hold: entries of the clean join's root (with its modes) whose files
/// are whole, and temp entries no wider than their targets.
fn check_crashed(fp: &str, dir: &Path, reference: &BTreeMap<String, Kind>) {
    for (p, (kind, bytes)) in snapshot(&dir.join("root")) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(KEY), "{fp}: the certificate key is in {p}");
        if let Some(target) = temp_target(&p) {
            let want = reference
                .get(&target)
                .unwrap_or_else(|| panic!("{fp}: temp {p} of an unknown file"));
            match (kind, want) {
                (Kind::File(m), Kind::File(w)) | (Kind::Dir(m), Kind::Dir(w)) => {
                    assert_eq!(m & !w, 0, "{fp}: temp {p} is {m:o}, wider than {w:o}")
                }
                (Kind::Symlink, Kind::Symlink) => {}
                other => panic!("{fp}: temp {p}: {other:?}"),
            }
            continue;
        }
        let want = reference
            .get(&p)
            .unwrap_or_else(|| panic!("{fp}: {p} is not in a clean join's root"));
        assert_eq!(&kind, want, "{fp}: {p}");
        if let Kind::File(_) = kind {
            // Whole: PEM files end with their END line, the rest with a newline.
            if p.ends_with(".crt") || p.ends_with(".key") || p.ends_with(".pub") {
                assert!(text.trim_end().ends_with("-----"), "{fp}: {p} is not whole");
            } else {
                assert!(bytes.ends_with(b"\n"), "{fp}: {p} is not whole");
            }
        }
    }
}

/// Crash at `fp`, check, re-run with `--force`, check. (A failpoint passed twice, as
/// `ca.crt`'s, aborts at its first pass: the control plane's.)
fn crash_and_rerun(fp: &str, reference: &BTreeMap<String, Kind>) {
    let cp = start();
    let t = tempfile::tempdir().unwrap();
    let out = kubejoin(&cp, t.path(), Some(fp), &[]);
    assert_eq!(
        out.status.signal(),
        Some(6),
        "must die at {fp}:\n{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint: {fp}: aborting")),
        "{}",
        text(&out)
    );
    check_crashed(fp, t.path(), reference);

    let out = kubejoin(&cp, t.path(), None, &["--force"]);
    assert!(out.status.success(), "re-run after {fp}:\n{}", text(&out));
    let after = snapshot(&t.path().join("root"));
    assert_eq!(
        &shape(&after),
        reference,
        "after a crash at {fp} and a re-run, the root differs from a clean join's"
    );
    // The shared PKI is the first control plane's, byte for byte.
    for (name, content) in cp.shared_files() {
        let p = format!("/etc/kubernetes/pki/{name}");
        assert_eq!(after.get(&p).map(|(_, b)| b), Some(&content), "{fp}: {p}");
    }
    let peer = format!("https://{ADVERTISE}:2380");
    let members = cp.etcd_members();
    assert_eq!(members.len(), 2, "{fp}: one member added: {members:?}");
    assert_eq!(
        members
            .iter()
            .filter(|m| m.peer_urls.contains(&peer))
            .count(),
        1,
        "{fp}: {members:?}"
    );
    assert_eq!(
        cp.node(NODE).unwrap()["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        "",
        "{fp}: the node is marked"
    );
}

#[test]
fn a_crash_at_every_control_plane_write_re_runs_to_the_same_files() {
    // The clean, traced join: the reference root and the failpoints, from the binary.
    let cp = start();
    let t = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = kubejoin(&cp, t.path(), Some("trace"), &[]);
    let clean = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let traced: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("kubejoin: failpoint: "))
        .map(str::to_string)
        .collect();
    let reference = shape(&snapshot(&t.path().join("root")));
    // Private keys and the files holding one (kubeconfigs) or naming the node's secrets
    // (manifests) are 0600; certificates and public keys 0644.
    for (p, k) in &reference {
        if p.starts_with("/etc/kubernetes/") && matches!(k, Kind::File(_)) {
            let want = if p.ends_with(".crt") || p.ends_with(".pub") {
                0o644
            } else {
                0o600
            };
            assert_eq!(*k, Kind::File(want), "{p}");
        }
    }

    // The control-plane phases' failpoints: control-plane-files runs before kubelet-start and
    // etcd-join after it, so they are the failpoints passed before the worker's first one and
    // after its last (directories included: the first to create /etc/kubernetes/pki is the
    // control plane's). The worker's list comes from the binary's own derivation
    // (`KUBEJOIN_FAILPOINT=list` prints the same, checked by tests/crash.rs); every failpoint
    // in between must be one of it, so no control-plane write hides there.
    //
    // The worker's Cluster API sentinel is not among them: a control-plane join writes it (and
    // result.json again, `control_plane: ready`) only after its phases after the kubelet, so
    // those writes come last and are crash-tested with the control plane's.
    let sentinel = "/run/cluster-api/bootstrap-success.complete";
    let worker: Vec<String> = kubejoin::install::failpoints::list()
        .into_iter()
        .filter(|f| !f.contains("/run/cluster-api"))
        .collect();
    // (By its first and last names: the worker's `/etc` ones, such as ca.crt, are passed by
    // control-plane-files first.)
    let first = traced.iter().position(|f| *f == worker[0]).unwrap();
    // (Its last, result.json, is written again by the control plane's completion: the first
    // time after `first` is the worker's.)
    let last = first
        + traced[first..]
            .iter()
            .position(|f| Some(f) == worker.last())
            .unwrap();
    for f in &traced[first..=last] {
        assert!(
            worker.contains(f),
            "{f}: a control-plane write inside kubelet-start"
        );
    }
    let points: Vec<String> = traced[..first]
        .iter()
        .chain(&traced[last + 1..])
        .cloned()
        .collect();
    let cp_files = reference
        .iter()
        .filter(|(p, k)| {
            matches!(k, Kind::File(_))
                && (p.starts_with("/etc/kubernetes/pki/")
                    || p.starts_with("/etc/kubernetes/manifests/")
                    || ["admin.conf", "controller-manager.conf", "scheduler.conf"]
                        .iter()
                        .any(|c| **p == format!("/etc/kubernetes/{c}")))
        })
        .count();
    // Every control-plane file is written once by those phases, with its five instants.
    assert_eq!(
        points
            .iter()
            .filter(|f| f.starts_with("write.before:/etc/"))
            .count(),
        cp_files,
        "{points:#?}"
    );
    // …and the join's completion once the control plane is ready, last of all.
    let last_writes: Vec<&String> = points
        .iter()
        .filter(|f| f.starts_with("write.before:"))
        .rev()
        .take(2)
        .collect();
    assert_eq!(
        last_writes,
        [
            &format!("write.before:{sentinel}"),
            &"write.before:/run/kubejoin/result.json".to_string()
        ],
        "{points:#?}"
    );
    assert!(
        points
            .iter()
            .any(|f| f == "write.dir-synced:/etc/kubernetes/manifests/etcd.yaml"),
        "{points:#?}"
    );

    let matrix = Instant::now();
    let queue = Arc::new(Mutex::new(points.clone()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let reference = Arc::new(reference);
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (queue, failures, reference) = (queue.clone(), failures.clone(), reference.clone());
            std::thread::spawn(move || loop {
                if matrix.elapsed() > MATRIX_LIMIT {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("matrix exceeded {MATRIX_LIMIT:?}"));
                    return;
                }
                let Some(fp) = queue.lock().unwrap().pop() else {
                    return;
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crash_and_rerun(&fp, &reference)
                }));
                if let Err(e) = r {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.lock().unwrap().push(format!("{fp}: {msg}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    eprintln!(
        "control-plane crash matrix: {} of {} failpoints of the join ({} control-plane files) in \
         {:.1}s; a clean join took {clean:?}; {} failed",
        points.len(),
        traced.len(),
        cp_files,
        matrix.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
