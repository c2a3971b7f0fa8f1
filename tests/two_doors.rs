//! One config, two front doors, one plan: a config file given to `kubejoin join --config FILE`
//! and the same file found at boot as `/etc/kubejoin.yaml` must mean the same thing — each field
//! one meaning on every route (issue 15: the JoinConfiguration's `timeouts.discovery` is the
//! discovery bound, the KubejoinConfiguration's `timeout` the join's overall deadline).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kubejoin::cli::{self, Command};
use kubejoin::discovery::Mode;
use kubejoin::plan::JoinPlan;
use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

const PIN: &str = "sha256:0f90fc16ca8700dea6e04dd26e9925296f500cadb2dc8221bee9034bb5dec0c2";

fn config() -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    \
         apiServerEndpoint: 10.0.0.1:6443\n    token: abcdef.0123456789abcdef\n    caCertHashes:\n    \
         - {PIN}\ntimeouts:\n  discovery: 2s\n---\napiVersion: kubejoin.dev/v1alpha1\n\
         kind: KubejoinConfiguration\ntimeout: 5s\n"
    )
}

/// A node root holding the config as `/etc/kubejoin.yaml`, a command line that names no
/// platform (no metadata is asked), and the same config as a separate file.
fn node() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in [
        ("etc/kubejoin.yaml", config()),
        (
            "proc/cmdline",
            "console=ttyS0 kubejoin.platform=none\n".into(),
        ),
        ("given.yaml", config()),
    ] {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let given = dir.path().join("given.yaml");
    (dir, given)
}

fn parse(args: &[&str]) -> Command {
    let argv: Vec<std::ffi::OsString> = std::iter::once("kubejoin")
        .chain(args.iter().copied())
        .map(Into::into)
        .collect();
    cli::parse(argv).unwrap()
}

/// What the two routes must agree on.
fn essentials(p: &JoinPlan) -> (Duration, Duration, Duration, String) {
    let endpoint = match &p.discovery.mode {
        Mode::Token { endpoint, .. } => endpoint.clone(),
        other => panic!("not token discovery: {other:?}"),
    };
    (
        p.discovery.timeout,
        p.timeout,
        p.tls_bootstrap_timeout,
        endpoint,
    )
}

#[tokio::test]
async fn the_same_config_gives_the_same_plan_through_both_front_doors() {
    let (dir, given) = node();
    let root = dir.path().to_str().unwrap();

    // Door 1: the flags route, `kubejoin join --config FILE`.
    let Command::Join(flags_plan) =
        parse(&["join", "--config", given.to_str().unwrap(), "--root", root])
    else {
        panic!("--config with discovery in it is a flags join")
    };

    // Door 2: the boot route, /etc/kubejoin.yaml under the node's root.
    let Command::Plan(args) = parse(&["plan", "--root", root]) else {
        panic!("not a plan")
    };
    let boot_plan = kubejoin::app::plan_from_sources(&args, &kubejoin::sys::System::real())
        .await
        .unwrap();

    let want = (
        Duration::from_secs(2),
        Duration::from_secs(5),
        Duration::from_secs(300),
        "10.0.0.1:6443".to_string(),
    );
    assert_eq!(essentials(&flags_plan), want, "kubejoin join --config");
    assert_eq!(essentials(&boot_plan), want, "/etc/kubejoin.yaml at boot");
}

/// `kubejoin plan` (the real binary) shows both timeouts with their meaning and source.
#[test]
fn kubejoin_plan_shows_the_discovery_bound_and_the_overall_deadline_apart() {
    let (dir, _) = node();
    let out = Process::new(env!("CARGO_BIN_EXE_kubejoin"))
        .args(["plan", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &json["values"];
    let file = format!("file:{}", Path::new("/etc/kubejoin.yaml").display());
    assert_eq!(v["discovery-timeout"]["value"], "2s", "{json}");
    assert_eq!(v["discovery-timeout"]["source"], file.as_str());
    assert_eq!(v["timeout"]["value"], "5s", "{json}");
    assert_eq!(v["timeout"]["source"], file.as_str());
}
