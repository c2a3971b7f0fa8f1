//! Scaffolding shared by the integration tests that drive `kubejoin join` against the test
//! control plane. Each test file includes it with `mod support;` and uses what it needs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kubejoin_testcp::Handle;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The arguments of `kubejoin join` against `cp` with `token`, its CA pin, as `node`, into
/// `root`; callers append their own flags.
pub fn join_args(cp: &Handle, token: &str, node: &str, root: &Path) -> Vec<String> {
    [
        "join",
        &cp.endpoint(),
        "--token",
        token,
        "--discovery-token-ca-cert-hash",
        &cp.signing_ca_pin(),
        "--node-name",
        node,
        "--root",
        root.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A finished process's status, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to its end, killing it (and failing the test with its stderr) after `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.spawn().expect("spawn kubejoin");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "kubejoin ran longer than {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
