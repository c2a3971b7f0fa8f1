//! Crash consistency of the real binary, proven by killing it at every failpoint.
//!
//! For each failpoint the binary lists (`KUBEJOIN_FAILPOINT=list`), the real `kubejoin join`
//! runs against its own test control plane (loopback) into its own temporary root and
//! `abort()`s at that instant, exactly as an OOM kill would stop it (a power cut additionally
//! loses what was not fsynced; the writer's fsync discipline is what covers that). The
//! half-done root must then satisfy the invariants a kubelet or a re-run relies on:
//!
//! - `etc/kubernetes/kubelet.conf` never exists unless it is complete and its
//!   `kubelet-client-current.pem` resolves to a complete PEM whose certificate is for this
//!   node, for the key in the same file, issued by this cluster's CA;
//! - no file holding key material has a group or other permission bit (the runs use umask
//!   000, so a file created wider than its final mode would show it; at `write.opened` of a
//!   key file the temp file must already be exactly 0600);
//! - every file under a real name is complete (a temp file is never mistaken for a real one:
//!   temp files and directories only ever carry the hidden `.<name>.kubejoin-tmp.` names);
//! - the bootstrap token's secret is nowhere on disk.
//!
//! Then the same join runs again without the failpoint and must leave exactly the files and
//! modes of a clean join, with exactly one CSR on the server (the deterministic name is reused).
//! Failpoints exist only in debug builds (or with the `failpoints` feature).

#![cfg(any(debug_assertions, feature = "failpoints"))]
// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin::bootstrap::csr::NodeKey;
use kubejoin::bootstrap::verify;
use kubejoin::fs::failpoint;
use kubejoin::install;
use kubejoin_testcp::{Config, Handle};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const NODE: &str = "crash-node";
/// Bound of one binary run; a join against a local control plane takes well under a second.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// Bound of the whole matrix.
const MATRIX_LIMIT: Duration = Duration::from_secs(600);

fn start() -> Handle {
    kubejoin_testcp::start(Config::default()).expect("test control plane starts")
}

fn secret(cp: &Handle) -> String {
    cp.token().split_once('.').unwrap().1.to_string()
}

/// Runs the real binary under `umask`, with `failpoint` armed (or not), bounded in time.
fn kubejoin(cp: &Handle, root: &Path, umask: &str, failpoint: Option<&str>) -> Output {
    let mut cmd = Command::new("sh");
    // A shell sets the umask (and no core dumps for the aborts), then becomes the binary.
    cmd.arg("-c")
        .arg(format!("umask {umask}; ulimit -c 0; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_kubejoin"))
        .args(support::join_args(cp, &cp.token(), NODE, root))
        .args(["--discovery-retry-interval", "200ms"])
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

/// One entry of a root, as the node sees its path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, bytes: Vec<u8> },
    Symlink { target: PathBuf },
}

/// Every entry under `root` (the root itself excluded), keyed by node path.
fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let node = format!("/{}", p.strip_prefix(base).unwrap().display());
            let mode = m.mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    node,
                    Entry::Symlink {
                        target: std::fs::read_link(&p).unwrap(),
                    },
                );
            } else if m.is_dir() {
                out.insert(node, Entry::Dir { mode });
                walk(base, &p, out);
            } else {
                out.insert(
                    node,
                    Entry::File {
                        mode,
                        bytes: std::fs::read(&p).unwrap(),
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// `/var/lib/kubelet/pki/kubelet-client-2026-…pem` → `…/kubelet-client-*.pem`, so roots of
/// different runs compare.
fn normal(node_path: &str) -> String {
    let name = failpoint::name("x", node_path);
    name["x:".len()..].to_string()
}

/// A temp file or directory of the atomic writer: `.<name>.kubejoin-tmp.<pid>.<n>`.
fn is_temp(node_path: &str) -> bool {
    let name = node_path.rsplit('/').next().unwrap_or("");
    name.starts_with('.')
        && name.split_once(".kubejoin-tmp.").is_some_and(|(_, rest)| {
            let mut parts = rest.split('.');
            matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None)
                if !a.is_empty() && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit()))
        })
}

/// What a complete client PEM holds: a certificate for `NODE` by the cluster CA, and its key.
fn check_client_pem(bytes: &[u8], ca_der: &[Vec<u8>], what: &str) {
    let text = String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| panic!("{what} is not text"));
    let key_at = text
        .find("-----BEGIN PRIVATE KEY-----")
        .unwrap_or_else(|| panic!("{what} holds no key"));
    let key = NodeKey::from_pem(&text[key_at..]).unwrap_or_else(|| panic!("{what}: bad key"));
    verify::verify(
        &bytes[..key_at],
        &key.spki_der(),
        NODE,
        ca_der,
        SystemTime::now(),
    )
    .unwrap_or_else(|e| panic!("{what}: certificate not for this node/key/cluster: {e}"));
}

/// Where a symlink in the root points, resolved inside the root (targets are node paths).
fn resolve<'a>(snap: &'a BTreeMap<String, Entry>, link: &str) -> Option<(&'a String, &'a Entry)> {
    let mut at = link.to_string();
    for _ in 0..8 {
        match snap.get_key_value(&at)? {
            (_, Entry::Symlink { target }) => at = target.display().to_string(),
            found => return Some(found),
        }
    }
    None
}

/// What a clean join leaves, for comparing contents that do not depend on the cluster.
struct Reference {
    snap: BTreeMap<String, Entry>,
}

impl Reference {
    fn bytes(&self, node_path: &str) -> &[u8] {
        match self.snap.get(node_path) {
            Some(Entry::File { bytes, .. }) => bytes,
            other => panic!("reference has no file {node_path}: {other:?}"),
        }
    }

    /// Node paths (normalized) with kind and mode: what "the same files and modes" means.
    fn shape(snap: &BTreeMap<String, Entry>) -> Vec<(String, String)> {
        snap.iter()
            .map(|(p, e)| {
                let kind = match e {
                    Entry::Dir { mode } => format!("dir {mode:04o}"),
                    Entry::File { mode, .. } => format!("file {mode:04o}"),
                    Entry::Symlink { target } => {
                        format!("symlink -> {}", normal(&target.display().to_string()))
                    }
                };
                (normal(p), kind)
            })
            .collect()
    }
}

/// The invariants of a root left by a crash at `fp`.
fn check_intermediate(fp: &str, root: &Path, cp: &Handle, reference: &Reference) {
    let snap = snapshot(root);
    let ca_pem = cp.ca_pem().into_bytes();
    let ca_der = kubejoin::pki::pem::certs_from_pem(&ca_pem).unwrap();
    let ctx = |msg: String| {
        format!(
            "after a crash at {fp}: {msg}\nroot: {:#?}",
            Reference::shape(&snap)
        )
    };

    for (path, entry) in &snap {
        // No key material with group/other bits, at any instant (temp files included).
        if let Entry::File { mode, bytes } = entry {
            if String::from_utf8_lossy(bytes).contains("PRIVATE KEY") {
                assert_eq!(
                    mode & 0o077,
                    0,
                    "{}",
                    ctx(format!("{path} holds a key with mode {mode:04o}"))
                );
            }
            assert!(
                !String::from_utf8_lossy(bytes).contains(&secret(cp)),
                "{}",
                ctx(format!("{path} holds the token secret"))
            );
        }
        if is_temp(path) {
            continue;
        }
        // Every real name holds a complete file.
        let n = normal(path);
        match (n.as_str(), entry) {
            (_, Entry::Dir { .. }) => {}
            (install::CA_CRT, Entry::File { bytes, mode }) => {
                assert_eq!(bytes, &ca_pem, "{}", ctx(format!("{path} is partial")));
                assert_eq!(*mode, 0o644, "{}", ctx(format!("{path} mode")));
            }
            (
                install::KUBELET_CONFIG | install::FLAGS_ENV | install::CAPI_SENTINEL,
                Entry::File { bytes, .. },
            ) => {
                assert_eq!(
                    bytes.as_slice(),
                    reference.bytes(path),
                    "{}",
                    ctx(format!("{path} is partial"))
                );
            }
            (install::RESULT_JSON, Entry::File { bytes, .. }) => {
                serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_else(|e| {
                    panic!("{}", ctx(format!("{path} is not complete JSON: {e}")))
                });
            }
            (install::KUBELET_CONF, Entry::File { bytes, mode }) => {
                assert_eq!(
                    String::from_utf8_lossy(bytes),
                    install::kubelet_conf(&cp.url(), &ca_pem),
                    "{}",
                    ctx(format!("{path} is partial or foreign"))
                );
                assert_eq!(*mode, 0o600, "{}", ctx(format!("{path} mode")));
                // What it points at exists and is this node's identity.
                let (target, pem) = resolve(&snap, install::CLIENT_CURRENT).unwrap_or_else(|| {
                    panic!(
                        "{}",
                        ctx(format!(
                            "{} exists but {} points at nothing",
                            path,
                            install::CLIENT_CURRENT
                        ))
                    )
                });
                let Entry::File { bytes, .. } = pem else {
                    panic!("{}", ctx(format!("{target} is not a file")))
                };
                check_client_pem(bytes, &ca_der, target);
                assert!(
                    snap.contains_key(install::CA_CRT),
                    "{}",
                    ctx("kubelet.conf before ca.crt".into())
                );
            }
            ("/var/lib/kubelet/pki/kubelet-client-*.pem", Entry::File { bytes, mode }) => {
                assert_eq!(*mode, 0o600, "{}", ctx(format!("{path} mode")));
                check_client_pem(bytes, &ca_der, path);
            }
            (install::KEY_TMP, Entry::File { bytes, mode }) => {
                assert_eq!(*mode, 0o600, "{}", ctx(format!("{path} mode")));
                assert!(
                    NodeKey::from_pem(&String::from_utf8_lossy(bytes)).is_some(),
                    "{}",
                    ctx(format!("{path} is not a complete key"))
                );
            }
            (install::CLIENT_CURRENT | install::CLIENT_UPDATED, Entry::Symlink { .. }) => {
                let (target, pem) = resolve(&snap, path)
                    .unwrap_or_else(|| panic!("{}", ctx(format!("{path} dangles"))));
                let Entry::File { bytes, .. } = pem else {
                    panic!("{}", ctx(format!("{target} is not a file")))
                };
                check_client_pem(bytes, &ca_der, target);
            }
            _ => panic!("{}", ctx(format!("unexpected {path}: {entry:?}"))),
        }
    }

    // The open mode of a key file is already its final mode (umask 000 hides nothing).
    if let Some(node) = fp.strip_prefix("write.opened:") {
        let keyed = node == install::KEY_TMP
            || node.ends_with("kubelet-client-*.pem")
            || node == install::KUBELET_CONF;
        let dir = Path::new(node).parent().unwrap().display().to_string();
        let temps: Vec<(&String, &Entry)> = snap
            .iter()
            .filter(|(p, _)| {
                is_temp(p)
                    && Path::new(p.as_str())
                        .parent()
                        .unwrap()
                        .display()
                        .to_string()
                        == dir
            })
            .collect();
        assert_eq!(
            temps.len(),
            1,
            "{}",
            ctx("exactly the temp file being written".into())
        );
        if let (_, Entry::File { mode, .. }) = temps[0] {
            if keyed {
                assert_eq!(
                    *mode,
                    0o600,
                    "{}",
                    ctx("a key file is opened with its final mode".into())
                );
            }
        }
    }
}

/// The root after the re-run: a clean join's files and modes, one CSR, nothing left over.
fn check_final(fp: &str, root: &Path, cp: &Handle, reference: &Reference) {
    let snap = snapshot(root);
    assert_eq!(
        Reference::shape(&snap),
        Reference::shape(&reference.snap),
        "after a crash at {fp} and a re-run, the root differs from a clean join's"
    );
    let ca_pem = cp.ca_pem().into_bytes();
    let ca_der = kubejoin::pki::pem::certs_from_pem(&ca_pem).unwrap();
    let file = |p: &str| match snap.get(p) {
        Some(Entry::File { bytes, .. }) => bytes.clone(),
        other => panic!("after {fp}: {p}: {other:?}"),
    };
    assert_eq!(file(install::CA_CRT), ca_pem);
    assert_eq!(
        String::from_utf8(file(install::KUBELET_CONF)).unwrap(),
        install::kubelet_conf(&cp.url(), &ca_pem)
    );
    for p in [
        install::KUBELET_CONFIG,
        install::FLAGS_ENV,
        install::CAPI_SENTINEL,
    ] {
        assert_eq!(file(p), reference.bytes(p), "after {fp}: {p}");
    }
    let (target, Entry::File { bytes: pem, .. }) = resolve(&snap, install::CLIENT_CURRENT).unwrap()
    else {
        panic!("after {fp}: the current PEM is not a file")
    };
    check_client_pem(pem, &ca_der, target);

    let csrs = cp.csrs();
    assert_eq!(
        csrs.len(),
        1,
        "after {fp}: exactly one CSR on the server: {csrs:#?}"
    );
    let issued = csrs[0]["status"]["certificate"].as_str().unwrap();
    use base64::Engine as _;
    let issued = base64::engine::general_purpose::STANDARD
        .decode(issued)
        .unwrap();
    let leaf = kubejoin::pki::pem::blocks_of(&issued, "CERTIFICATE");
    assert_eq!(
        kubejoin::pki::pem::blocks_of(pem, "CERTIFICATE").first(),
        leaf.first(),
        "after {fp}: the installed certificate is the one issued for the single CSR"
    );
    let result: serde_json::Value = serde_json::from_slice(&file(install::RESULT_JSON)).unwrap();
    assert!(
        result["outcome"] == "joined" || result["outcome"] == "already-joined",
        "{result}"
    );
    if result["outcome"] == "joined" {
        assert_eq!(result["csr"], csrs[0]["metadata"]["name"], "after {fp}");
    }
}

fn join_args_for_listing(root: &Path) -> Vec<String> {
    [
        "join",
        "127.0.0.1:9",
        "--token",
        "abcdef.0123456789abcdef",
        "--discovery-token-unsafe-skip-ca-verification",
        // Not `/`: the join would prepare this host first (an empty directory: --root must
        // exist; listing writes nothing).
        "--root",
        root.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The failpoints, as the binary prints them.
fn listed() -> Vec<String> {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubejoin"));
    cmd.args(join_args_for_listing(root.path()))
        .env(failpoint::ENV, "list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = support::run_bounded(cmd, RUN_LIMIT);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A clean join of the real binary with every failpoint traced: the reference root, and the
/// failpoints it passed, in order.
fn traced_clean_join(umask: &str) -> (Reference, Vec<String>) {
    let cp = start();
    let t = tempfile::tempdir().unwrap();
    let out = kubejoin(&cp, t.path(), umask, Some("trace"));
    assert!(out.status.success(), "{}", text(&out));
    let passed = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("kubejoin: failpoint: "))
        .map(str::to_string)
        .collect();
    assert_eq!(cp.csrs().len(), 1);
    (
        Reference {
            snap: snapshot(t.path()),
        },
        passed,
    )
}

#[test]
fn the_binary_lists_every_failpoint_a_join_passes() {
    let list = listed();
    assert_eq!(
        list,
        install::failpoints::list(),
        "the binary and the library agree"
    );
    let (_, passed) = traced_clean_join("022");
    assert_eq!(
        passed, list,
        "a traced clean join passes exactly the listed failpoints, in order"
    );
    // The brief's write steps are all there.
    for needle in [
        "write.before:/etc/kubernetes/kubelet.conf",
        "write.temp-synced:/etc/kubernetes/kubelet.conf",
        "write.renamed:/etc/kubernetes/kubelet.conf",
        "write.dir-synced:/etc/kubernetes/kubelet.conf",
        "symlink.staged:/var/lib/kubelet/pki/kubelet-client-current.pem",
        "symlink.swapped:/var/lib/kubelet/pki/kubelet-client-current.pem",
        "mkdir.dir-synced:/var/lib/kubelet",
        "key.persisted:/var/lib/kubelet/pki/kubelet-client.key.tmp",
        "csr.posted:node-csr-*",
        "remove.unlinked:/var/lib/kubelet/pki/kubelet-client.key.tmp",
    ] {
        assert!(
            list.iter().any(|l| l == needle),
            "{needle} missing from {list:#?}"
        );
    }
}

/// Crash at `fp`, check, re-run, check; returns how long it took.
fn crash_and_resume(fp: &str, umask: &str, reference: &Reference) -> Duration {
    let started = Instant::now();
    let cp = start();
    let t = tempfile::tempdir().unwrap();
    let out = kubejoin(&cp, t.path(), umask, Some(fp));
    assert_eq!(
        out.status.signal(),
        Some(libc_sigabrt()),
        "the process must die at {fp}:\n{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint: {fp}: aborting")),
        "{}",
        text(&out)
    );
    check_intermediate(fp, t.path(), &cp, reference);

    let out = kubejoin(&cp, t.path(), umask, None);
    assert!(out.status.success(), "re-run after {fp}:\n{}", text(&out));
    check_final(fp, t.path(), &cp, reference);
    started.elapsed()
}

fn libc_sigabrt() -> i32 {
    6
}

/// Runs `points` on a few threads; every failure is collected and reported together.
fn matrix(points: Vec<String>, umask: &'static str, reference: Arc<Reference>) {
    let started = Instant::now();
    let queue = Arc::new(Mutex::new(points.clone()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (queue, failures, reference) = (queue.clone(), failures.clone(), reference.clone());
            std::thread::spawn(move || loop {
                if started.elapsed() > MATRIX_LIMIT {
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
                    crash_and_resume(&fp, umask, &reference)
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
        "crash matrix (umask {umask}): {} failpoints in {:.1}s, {} failed",
        points.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_crash_at_any_failpoint_is_safe_and_a_rerun_completes_the_join() {
    // umask 000: anything created wider than its final mode would be visible.
    let (reference, passed) = traced_clean_join("000");
    assert!(passed.len() > 50, "{passed:?}");
    matrix(passed, "000", Arc::new(reference));
}

#[test]
fn a_crash_while_creating_directories_under_a_strict_umask_leaves_no_wrong_mode() {
    // umask 077: mkdir would give 0700 where the spec says 0755; a directory left between
    // mkdir and chmod would keep it forever (existing directories are not touched).
    let (reference, passed) = traced_clean_join("077");
    let dirs: Vec<String> = passed
        .into_iter()
        .filter(|p| p.starts_with("mkdir."))
        .collect();
    assert_eq!(dirs.len(), 40, "{dirs:?}");
    matrix(dirs, "077", Arc::new(reference));
}
