//! One config, two front doors, one plan: a config file given to `kubejoin join --config FILE`
//! and the same file found at boot as `/etc/kubejoin.yaml` must mean the same thing — each field
//! one meaning on every route (issue 15: the JoinConfiguration's `timeouts.discovery` is the
//! discovery bound, the KubejoinConfiguration's `timeout` the join's overall deadline).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

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

const TOKEN: &str = "abcdef.0123456789abcdef";

/// `kubejoin join ARGS` (the real binary), bounded; the port 127.0.0.1:1 is closed, so a join that
/// gets past its plan fails in discovery, while a plan that is refused exits 2.
fn join(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Process::new(env!("CARGO_BIN_EXE_kubejoin"));
    cmd.arg("join")
        .args(args)
        .args([
            "--discovery-timeout",
            "1s",
            "--timeout",
            "5s",
            "--skip-phases",
            "host",
        ])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = support::run_bounded(cmd, Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("0123456789abcdef"), "secret shown: {text}");
    (out.status.code(), text)
}

/// A config of plain kubejoin keys (as user-data or `/etc/kubejoin.yaml` may hold) is read by
/// `join --config` exactly as at boot: one reader of config files, so it makes a join instead of
/// being refused for having no `apiVersion`.
#[test]
fn join_config_reads_the_same_documents_as_the_boot_sources() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("keys.yaml");
    std::fs::write(
        &f,
        format!("endpoint: 127.0.0.1:1\ntoken: {TOKEN}\nca-cert-hash: {PIN}\n"),
    )
    .unwrap();
    let Command::Join(plan) = parse(&["join", "--config", f.to_str().unwrap()]) else {
        panic!("--config with discovery in it is a flags join")
    };
    assert!(
        matches!(&plan.discovery.mode, Mode::Token { endpoint, pins, .. }
            if endpoint == "127.0.0.1:1" && pins.pins()[0].to_string() == PIN),
        "{:?}",
        plan.discovery.mode
    );
    let (code, text) = join(&["--config", f.to_str().unwrap()]);
    assert!(
        code.is_some_and(|c| c != 0 && c != 2),
        "the plan was accepted, discovery failed: {text}"
    );
    assert!(text.contains("[discovery] failed"), "{text}");
}

/// Flags are the top layer of the same merge: they win key by key over `--config` (the conflict
/// is reported with both sources), the file still supplies what the flags left out (here the CA
/// pin, which used to be dropped with the whole discovery section), and token discovery from one
/// layer with file discovery from the other is refused naming both, as on the boot route.
#[test]
fn flags_override_the_config_key_by_key_with_the_boot_routes_conflict_rules() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("join.yaml");
    std::fs::write(&f, config()).unwrap();
    let f = f.to_str().unwrap();

    let (code, text) = join(&["127.0.0.1:1", "--token", TOKEN, "--config", f]);
    assert!(
        code.is_some_and(|c| c != 0 && c != 2),
        "the file's pin completes the flags' discovery: {text}"
    );
    assert!(text.contains("[discovery] failed"), "{text}");
    assert!(
        text.contains(&format!(
            "endpoint: using \"127.0.0.1:1\" from flag, ignoring \"10.0.0.1:6443\" from file:{f}"
        )),
        "{text}"
    );

    let kc = dir.path().join("kc.yaml");
    std::fs::write(&kc, "").unwrap();
    let (code, text) = join(&["--discovery-file", kc.to_str().unwrap(), "--config", f]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("endpoint from file:{f}"))
            && text.contains("discovery-file from flag"),
        "{text}"
    );
}

/// On the boot route too the flags are the top layer of the merge (not fields patched onto the
/// finished plan): a flag that a boot source also sets wins with the conflict reported, and a flag
/// the old route dropped (`--kubelet-arg`, `--timeout`) reaches the plan.
#[test]
fn flags_on_the_boot_sources_are_their_top_layer() {
    let dir = tempfile::tempdir().unwrap();
    let cmdline = dir.path().join("proc/cmdline");
    std::fs::create_dir_all(cmdline.parent().unwrap()).unwrap();
    std::fs::write(
        &cmdline,
        format!(
            "console=ttyS0 kubejoin.platform=none kubejoin.endpoint=127.0.0.1:1 kubejoin.token={TOKEN} \
             kubejoin.ca-cert-hash={PIN} kubejoin.node-name=from-cmdline\n"
        ),
    )
    .unwrap();
    let root = dir.path().to_str().unwrap();
    let Command::JoinFromSources(j) = parse(&[
        "join",
        "--root",
        root,
        "--node-name",
        "from-flag",
        "--kubelet-arg",
        "max-pods=50",
    ]) else {
        panic!("no discovery flags: the boot sources")
    };
    assert_eq!(j.flags.node_name.as_deref(), Some("from-flag"));
    assert_eq!(
        j.flags.kubelet_args,
        [("max-pods".to_string(), "50".to_string())]
    );
    let (code, text) = join(&["--root", root, "--node-name", "from-flag"]);
    assert!(code.is_some_and(|c| c != 0 && c != 2), "{text}");
    assert!(
        text.contains(
            "node-name: using \"from-flag\" from flag, ignoring \"from-cmdline\" from cmdline"
        ),
        "{text}"
    );
    assert!(text.contains("[discovery] failed"), "{text}");
}
