//! The scripts' set-up on a machine without Rust (`scripts/lib.sh`, `ensure_rust`), run with a
//! `PATH` and `HOME` that have no cargo, so the installer path is taken on a machine that has Rust:
//!
//! - as a dry run, it names the standard installer with the flags the README documents and the
//!   toolchain step, and installs nothing;
//! - with both installer addresses unreachable (closed ports on loopback), it stops with one
//!   sentence saying what to install.
//!
//! The real download (rustup-init, then the toolchain of rust-toolchain.toml) needs the internet,
//! which tests do not use; it was run by hand once (see README "Prerequisites").

// Test code: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A PATH of the system directories only: no `~/.cargo/bin`.
const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

fn ensure_rust(home: &Path, extra_env: &[(&str, &str)]) -> Output {
    for dir in SYSTEM_PATH.split(':') {
        assert!(
            !Path::new(dir).join("cargo").exists(),
            "{dir}/cargo exists: this machine cannot show the missing-cargo path"
        );
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib.sh");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("source '{}' && ensure_rust", lib.display()))
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("HOME", home)
        .env("CARGO_HOME", home.join(".cargo"))
        .env("RUSTUP_HOME", home.join(".rustup"))
        .stdin(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn without_cargo_the_dry_run_names_the_standard_installer_and_installs_nothing() {
    let home = tempfile::tempdir().unwrap();
    let out = ensure_rust(home.path(), &[("KUBEJOIN_SETUP_DRY_RUN", "1")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "would run: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --default-toolchain none --profile minimal"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init.sha256"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("would run: rustup toolchain install")
            && stdout.contains("rust-toolchain.toml"),
        "{stdout}"
    );
    assert!(
        std::fs::read_dir(home.path()).unwrap().next().is_none(),
        "nothing was installed"
    );
}

#[test]
fn without_cargo_and_without_the_installer_it_stops_with_one_sentence() {
    // curl is what the installer path uses; it must be here already (the scripts install it),
    // or this test would make ensure_debs reach the Debian mirror.
    let curl = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "curl", "ca-certificates"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&curl.stdout)
            .matches("install ok installed")
            .count()
            == 2,
        "install curl and ca-certificates first"
    );
    let home = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let out = ensure_rust(
        home.path(),
        &[
            ("KUBEJOIN_RUSTUP_SH_URL", "https://127.0.0.1:9/rustup.sh"),
            (
                "KUBEJOIN_RUSTUP_INIT_URL",
                "https://127.0.0.1:9/rustup-init",
            ),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: cannot reach the Rust installer (https://127.0.0.1:9/rustup.sh or static.rust-lang.org): install Rust with rustup as https://rustup.rs describes"),
        "{stderr}"
    );
    let rust_version =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("rust-version = \""))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap();
    assert!(
        last.contains(&format!("Rust >= {rust_version} is needed"))
            && last.ends_with("then re-run."),
        "{last}"
    );
    // One sentence: a single full stop, at the end.
    assert_eq!(last.matches(". ").count(), 0, "{last}");
    assert!(
        !home.path().join(".cargo").exists(),
        "nothing was installed"
    );
}
