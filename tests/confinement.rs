//! `--root` confinement through the real binary: a symlink planted at any directory level of the
//! root, pointing outside it, never makes `kubejoin join` write (or read) outside the root.
//!
//! kubejoin resolves every path under `--root` inside it (`openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, or the per-component `O_NOFOLLOW` walk where openat2 is missing,
//! forced here with `KUBEJOIN_RESOLVE=walk`): a symlink `ROOT/var -> /elsewhere` means
//! `ROOT/elsewhere`, as it will for the booted system whose `/` the root becomes. So for each
//! level, with each resolver:
//! - the link's target missing inside the root: the join stops with an error naming the
//!   dangling link, and nothing is written outside;
//! - the target present inside the root (an absolute link, and a relative one whose `..` climb
//!   past the root): the join succeeds, its files are at the in-root target, and a second run
//!   reads them back through the same links ("already joined");
//! - every time, the directory outside the root that the link names on the host stays empty.
//!
//! Each run is bounded (`support::run_bounded`) and talks to one test control plane on loopback.

// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin_testcp::{Config, Handle};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Every directory level kubejoin writes below.
const LEVELS: &[&str] = &[
    "/var",
    "/var/lib",
    "/var/lib/kubelet",
    "/var/lib/kubelet/pki",
    "/etc",
    "/etc/kubernetes",
    "/etc/kubernetes/pki",
    "/run",
    "/run/kubejoin",
    "/run/cluster-api",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolver {
    /// openat2 (this kernel has it).
    Openat2,
    /// The per-component fallback, forced.
    Walk,
}

fn kubejoin(cp: &Handle, root: &Path, resolver: Resolver) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubejoin"));
    cmd.args(support::join_args(cp, &cp.token(), "confined", root))
        .args(["--discovery-retry-interval", "200ms", "--timeout", "50s"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if resolver == Resolver::Walk {
        cmd.env(kubejoin::fs::root::RESOLVE_ENV, "walk");
    }
    support::run_bounded(cmd, RUN_LIMIT)
}

use support::text;

/// Everything under `dir` (recursively, symlinks not followed).
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(entries(&e.path()));
            }
        }
    }
    out
}

/// A fresh root with `outside` beside it, and `ROOT<level>` a symlink to `outside` (absolute or
/// relative with enough `..` to climb out of the root); `mirror`: the link's target also exists
/// inside the root.
struct Planted {
    _t: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    /// Where the link leads inside the root.
    in_root: PathBuf,
}

fn plant(level: &str, absolute: bool, mirror: bool) -> Planted {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let link = root.join(&level[1..]);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    let host_rel = outside.strip_prefix("/").unwrap();
    let target = if absolute {
        outside.clone()
    } else {
        Path::new(&"../".repeat(16)).join(host_rel)
    };
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let in_root = root.join(host_rel);
    if mirror {
        std::fs::create_dir_all(&in_root).unwrap();
    }
    Planted {
        _t: t,
        root,
        outside,
        in_root,
    }
}

fn assert_outside_empty(p: &Planted, what: &str, out: &Output) {
    let found = entries(&p.outside);
    assert!(
        found.is_empty(),
        "{what}: written outside the root: {found:?}\n{}",
        text(out)
    );
}

/// What a clean join leaves that kubejoin reads back, resolved inside the root.
fn assert_joined_files(root: &Path, what: &str) {
    let r = kubejoin::fs::root::Root::new(root);
    for p in [
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/pki/ca.crt",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "/run/kubejoin/result.json",
        "/run/cluster-api/bootstrap-success.complete",
    ] {
        assert!(
            r.read(p).is_ok(),
            "{what}: {p} is not readable inside the root"
        );
    }
}

fn each_level(resolver: Resolver) {
    let cp = kubejoin_testcp::start(Config::default()).expect("test control plane starts");
    for level in LEVELS {
        // The target missing inside the root: refused at that level, nothing outside.
        let p = plant(level, true, false);
        let out = kubejoin(&cp, &p.root, resolver);
        let what = format!("{resolver:?} {level} -> outside (dangling inside the root)");
        assert_eq!(out.status.code(), Some(1), "{what}\n{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("does not exist inside the root"),
            "{what}\n{}",
            text(&out)
        );
        assert_outside_empty(&p, &what, &out);

        // The target present inside the root: joined there, read back through the links.
        for absolute in [true, false] {
            let p = plant(level, absolute, true);
            let what = format!(
                "{resolver:?} {level} -> outside ({}, present inside the root)",
                if absolute { "absolute" } else { "relative" }
            );
            let out = kubejoin(&cp, &p.root, resolver);
            assert!(out.status.success(), "{what}\n{}", text(&out));
            assert_outside_empty(&p, &what, &out);
            assert!(
                !entries(&p.in_root).is_empty(),
                "{what}: nothing at the link's in-root target\n{}",
                text(&out)
            );
            assert_joined_files(&p.root, &what);
            let again = kubejoin(&cp, &p.root, resolver);
            assert!(again.status.success(), "{what} (again)\n{}", text(&again));
            assert!(
                String::from_utf8_lossy(&again.stderr).contains("already joined"),
                "{what} (again)\n{}",
                text(&again)
            );
            assert_outside_empty(&p, &what, &again);
        }
    }
}

#[test]
fn a_symlink_at_any_level_never_takes_a_write_outside_the_root_openat2() {
    each_level(Resolver::Openat2);
}

#[test]
fn a_symlink_at_any_level_never_takes_a_write_outside_the_root_walk_fallback() {
    each_level(Resolver::Walk);
}

#[test]
fn symlinks_planted_at_the_files_themselves_are_replaced_not_followed() {
    // Each file kubejoin writes (and the pending key it reads) planted as a symlink to a file
    // outside: the writer renames over the link, a read resolves inside the root.
    let cp = kubejoin_testcp::start(Config::default()).expect("test control plane starts");
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let files = [
            "/etc/kubernetes/kubelet.conf",
            "/etc/kubernetes/pki/ca.crt",
            "/var/lib/kubelet/config.yaml",
            "/var/lib/kubelet/kubeadm-flags.env",
            "/var/lib/kubelet/pki/kubelet-client.key.tmp",
            "/run/kubejoin/result.json",
        ];
        for (i, f) in files.iter().enumerate() {
            let link = root.join(&f[1..]);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(outside.join(format!("file-{i}")), &link).unwrap();
        }
        let out = kubejoin(&cp, &root, resolver);
        assert!(out.status.success(), "{resolver:?}\n{}", text(&out));
        let found = entries(&outside);
        assert!(found.is_empty(), "{resolver:?}: {found:?}\n{}", text(&out));
        for f in &files[..4] {
            let m = std::fs::symlink_metadata(root.join(&f[1..])).unwrap();
            assert!(m.is_file(), "{resolver:?}: {f} is a regular file now");
        }
    }
}
