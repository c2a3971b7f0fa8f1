//! The command line a newcomer meets, through the real binary: each command's help, "did you
//! mean" for mistyped flags and commands, missing input files, `--root`, the one default
//! deadline, what a dry run says and what it sends, a discovery that stops before its limit, host
//! preparation on a kernel that cannot load modules, a dry-run preflight with errors, and what a
//! second run sends.
//!
//! Every run is a child process bounded in time; the control plane is `kubejoin-testcp` on
//! loopback; joins go into temporary roots, except the one dry run against `/` that only reads.

// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin_testcp::{Action, Config, Faults, Handle, RequestFault};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubejoin");
const TOKEN: &str = "abcdef.0123456789abcdef";
const SECRET: &str = "0123456789abcdef";
const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

#[derive(Debug)]
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

fn run_in(dir: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let started = Instant::now();
    let out = support::run_bounded(cmd, Duration::from_secs(60));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn run(args: &[&str]) -> Run {
    run_in(None, args)
}

fn start(config: Config) -> Handle {
    kubejoin_testcp::start(config).expect("test control plane starts")
}

fn join_args(cp: &Handle, root: &Path) -> Vec<String> {
    support::join_args(cp, TOKEN, "cli-node", root)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---- help ----

#[test]
fn every_command_prints_its_own_help_and_exits_0() {
    for (command, title) in [
        ("join", "kubejoin join: "),
        ("plan", "kubejoin plan: "),
        ("host-prep", "kubejoin host-prep: "),
        ("ca-hash", "kubejoin ca-hash: "),
        ("init", "kubejoin init: "),
        ("version", "kubejoin version: "),
    ] {
        for args in [
            vec![command, "--help"],
            vec![command, "-h"],
            vec!["help", command],
        ] {
            let r = run(&args);
            assert_eq!(r.code, 0, "{args:?}: {}", r.show());
            assert!(r.stdout.starts_with(title), "{args:?}: {}", r.show());
            assert!(r.stderr.is_empty(), "{args:?}: {}", r.show());
        }
    }
    // `join --help` is the join's flags, not the command list.
    let r = run(&["join", "--help"]);
    for flag in [
        "--token",
        "--discovery-token-ca-cert-hash",
        "--root",
        "--timeout",
    ] {
        assert!(r.stdout.contains(flag), "{flag}: {}", r.show());
    }
    // `init --help` printed help and returned: it did not become PID 1 (mounts, a boot).
    let r = run(&["init", "--help"]);
    assert!(
        r.code == 0 && r.took < Duration::from_secs(5),
        "{}",
        r.show()
    );
}

#[test]
fn help_lists_every_command() {
    for args in [&["help"][..], &["--help"], &[]] {
        let r = run(args);
        assert_eq!(r.code, 0, "{}", r.show());
        for command in [
            "join",
            "plan",
            "host-prep",
            "ca-hash",
            "init",
            "version",
            "help",
        ] {
            assert!(
                r.stdout
                    .lines()
                    .any(|l| l.starts_with(&format!("    {command} "))),
                "{command} missing from `kubejoin {}`:\n{}",
                args.join(" "),
                r.stdout
            );
        }
        assert!(r.stdout.contains("EXIT CODES"), "{}", r.stdout);
    }
}

// ---- did you mean ----

#[test]
fn a_mistyped_flag_gets_the_flag_it_meant() {
    let token_eq = format!("--tokn={TOKEN}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["join", "10.0.0.1:6443", "--tokn", TOKEN],
            "unknown flag --tokn for `kubejoin join` (did you mean --token?)",
        ),
        (
            vec!["join", "10.0.0.1:6443", &token_eq],
            "unknown flag --tokn for `kubejoin join` (did you mean --token?)",
        ),
        (
            vec![
                "join",
                "10.0.0.1:6443",
                "--discovery-token-ca-cert-hsh",
                "sha256:00",
            ],
            "(did you mean --discovery-token-ca-cert-hash?)",
        ),
        (
            vec!["plan", "--cmdline-fle", "x"],
            "unknown flag --cmdline-fle for `kubejoin plan` (did you mean --cmdline-file?)",
        ),
        (vec!["host-prep", "--dryrun"], "(did you mean --dry-run?)"),
        (
            vec!["plan", "--token", TOKEN],
            "unknown flag --token for `kubejoin plan` (it is a flag of `kubejoin join`)",
        ),
    ];
    for (args, want) in cases {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.show());
        assert!(r.stderr.contains(want), "{args:?}: {}", r.show());
        assert!(r.stderr.contains("--help` lists its flags"), "{}", r.show());
        assert!(!r.stderr.contains(SECRET), "{}", r.show());
    }
}

#[test]
fn a_mistyped_command_gets_the_command_it_meant() {
    for (typed, meant) in [("jion", "join"), ("pln", "plan"), ("hostprep", "host-prep")] {
        let r = run(&[typed]);
        assert_eq!(r.code, 2, "{}", r.show());
        assert!(
            r.stderr.contains(&format!(
                "unknown command \"{typed}\" (did you mean {meant}?)"
            )),
            "{}",
            r.show()
        );
        assert!(r.stderr.contains("`kubejoin help` lists the commands"));
    }
    let r = run(&["frobnicate"]);
    assert_eq!(r.code, 2);
    assert!(!r.stderr.contains("did you mean"), "{}", r.show());
}

// ---- input files and --root ----

#[test]
fn every_missing_input_file_says_no_such_file_and_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.yaml");
    let m = missing.to_str().unwrap();
    let file_url = format!("file://{m}");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["join", "--config", m], format!("no such file: {m}")),
        (vec!["plan", "--config", m], format!("no such file: {m}")),
        (
            vec!["plan", "--cmdline-file", m],
            format!("no such file: {m}"),
        ),
        (
            vec!["join", "--cmdline-file", m],
            format!("no such file: {m}"),
        ),
        (
            vec!["plan", "--metadata-dir", m],
            format!("no such directory: {m}"),
        ),
        (
            vec!["join", "--discovery-file", m],
            format!("no such file: {m}"),
        ),
        (
            vec!["join", "--discovery-file", &file_url],
            format!("no such file: {m}"),
        ),
        (
            vec![
                "join",
                "--discovery-file",
                "https://127.0.0.1:1/kc",
                "--discovery-file-ca",
                m,
                "--tls-bootstrap-token",
                TOKEN,
            ],
            format!("no such file: {m}"),
        ),
        (vec!["ca-hash", m], format!("no such file: {m}")),
    ];
    for (args, want) in &cases {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.show());
        let first = r.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("kubejoin: error: {want}")),
            "{args:?}: {}",
            r.show()
        );
        assert!(r.stderr.contains("hint: "), "{args:?}: {}", r.show());
        assert!(!r.stderr.contains("os error"), "{args:?}: {}", r.show());
    }
    // A relative path: the hint says where it was looked for.
    let r = run_in(Some(t.path()), &["join", "--config", "kubejoin.yaml"]);
    assert_eq!(r.code, 2, "{}", r.show());
    assert!(
        r.stderr.contains("no such file: kubejoin.yaml")
            && r.stderr
                .contains(&format!("the current directory, {}", t.path().display())),
        "{}",
        r.show()
    );
}

#[test]
fn root_must_be_an_existing_directory() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let absent = t.path().join("nonexistent/dir");
    let r = run(&strs(&join_args(&cp, &absent)));
    assert_eq!(r.code, 2, "{}", r.show());
    assert!(
        r.stderr
            .contains(&format!("--root {}: no such directory", absent.display())),
        "{}",
        r.show()
    );
    assert!(r.stderr.contains("mkdir -p"), "{}", r.show());
    assert!(!absent.exists(), "the tree was not created");
    assert!(!t.path().join("nonexistent").exists());

    let file = t.path().join("hostname");
    std::fs::write(&file, "a file\n").unwrap();
    let r = run(&strs(&join_args(&cp, &file)));
    assert_eq!(r.code, 2, "{}", r.show());
    assert!(
        r.stderr
            .contains(&format!("--root {}: not a directory", file.display())),
        "{}",
        r.show()
    );
    assert!(!r.stderr.contains("identity"), "{}", r.show());
    for command in ["plan", "host-prep"] {
        let r = run(&[command, "--root", absent.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{command}: {}", r.show());
        assert!(r.stderr.contains("no such directory"), "{}", r.show());
    }
    assert!(cp.requests().is_empty(), "refused before any request");
}

// ---- the default deadline ----

#[test]
fn one_default_overall_deadline_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let cmdline = t.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!(
            "console=ttyS0 kubejoin.endpoint=10.0.0.1:6443 kubejoin.token={TOKEN} \
             kubejoin.ca-cert-hash=sha256:{}\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let r = run(&[
        "plan",
        "--root",
        t.path().to_str().unwrap(),
        "--cmdline-file",
        cmdline.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.show());
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        plan["values"]["timeout"],
        serde_json::json!({"value": "10m0s", "source": "default"}),
        "{}",
        r.stdout
    );
    let help = run(&["join", "--help"]).stdout;
    assert!(
        help.lines()
            .any(|l| l.contains("--timeout DURATION") && l.contains("(default 10m)")),
        "{help}"
    );
}

// ---- the dry run ----

#[test]
fn a_dry_run_tells_only_what_happens() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let mut args = join_args(&cp, t.path());
    args.push("--dry-run".into());
    let r = run(&strs(&args));
    assert_eq!(r.code, 0, "{}", r.show());
    // cluster-info names the endpoint itself: no re-fetch is made, and none is claimed.
    assert!(!r.stdout.contains("re-fetch verified"), "{}", r.show());
    assert!(r.stdout.contains("no re-fetch"), "{}", r.show());
    assert!(!r.stdout.contains("kube-proxy"), "{}", r.show());
    assert!(
        r.stdout
            .contains("reading the cluster configuration (kubeadm-config, then kubelet-config by the cluster's version) and looking up Node \"cli-node\""),
        "{}",
        r.show()
    );
    // The client PEM is named after the certificate's notBefore, which a dry run cannot know.
    assert!(
        r.stdout
            .contains("/var/lib/kubelet/pki/kubelet-client-<notBefore>.pem"),
        "{}",
        r.show()
    );
    assert!(!r.stdout.contains("kubelet-client-20"), "{}", r.show());
    let seen: Vec<(String, String)> = cp
        .requests()
        .into_iter()
        .map(|q| (q.method, q.path))
        .collect();
    assert_eq!(
        seen.iter()
            .filter(|(_, p)| p.starts_with(CLUSTER_INFO))
            .count(),
        1,
        "one cluster-info fetch: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(m, p)| m == "GET" && !p.contains("kube-proxy")),
        "{seen:?}"
    );
    assert_eq!(
        seen.len(),
        4,
        "cluster-info, kubelet-config, kubeadm-config, node: {seen:?}"
    );
    assert!(
        std::fs::read_dir(t.path()).unwrap().next().is_none(),
        "nothing written"
    );

    // cluster-info names another address than the endpoint: the verified re-fetch is made,
    // and only then said.
    let cp = start(Config {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..Config::default()
    });
    let port = cp.endpoint().rsplit_once(':').unwrap().1.to_string();
    let mut args = join_args(&cp, t.path());
    args[1] = format!("localhost:{port}");
    args.push("--dry-run".into());
    let r = run(&strs(&args));
    assert_eq!(r.code, 0, "{}", r.show());
    assert!(
        r.stdout.contains(&format!(
            "cluster-info fetched again from localhost:{port} over TLS verified against the pinned CA: identical"
        )),
        "{}",
        r.show()
    );
    let fetches = cp
        .requests()
        .into_iter()
        .filter(|q| q.path.starts_with(CLUSTER_INFO))
        .count();
    assert_eq!(fetches, 2, "the insecure fetch and the verified one");
}

#[test]
fn a_dry_run_preflight_with_errors_does_not_end_ok() {
    // Against this machine (`--root /`): host preparation and preflight only read. A CRI socket
    // and a kubelet that cannot exist make two checks ERROR on any machine.
    let cp = start(Config::default());
    let r = run(&[
        "join",
        &cp.endpoint(),
        "--token",
        TOKEN,
        "--discovery-token-ca-cert-hash",
        &cp.signing_ca_pin(),
        "--node-name",
        "cli-node",
        "--dry-run",
        "--cri-socket",
        "unix:///nonexistent/kubejoin-test/cri.sock",
        "--kubelet-path",
        "/nonexistent/kubejoin-test/kubelet",
    ]);
    assert_eq!(r.code, 0, "the dry run goes on to discovery: {}", r.show());
    assert!(r.stderr.contains("[preflight] would fail"), "{}", r.show());
    assert!(!r.stderr.contains("[preflight] ok"), "{}", r.show());
    assert!(
        r.stderr.contains("a real join would stop here") && r.stderr.contains("CRI"),
        "{}",
        r.show()
    );
    assert!(!r.stderr.contains("os error"), "{}", r.show());
    assert!(r.stdout.contains("dry run: discovery verified the cluster"));
}

// ---- discovery and host preparation ----

#[test]
fn discovery_that_stops_before_its_limit_says_why() {
    // Every cluster-info answer is 503 asking to come back in 5 s, longer than the 3 s
    // --discovery-timeout: the loop stops after one attempt, long before 3 s.
    let cp = start(Config {
        faults: Faults {
            requests: vec![RequestFault {
                path_prefix: Some(CLUSTER_INFO.into()),
                ..RequestFault::always(Action::Status {
                    code: 503,
                    retry_after: Some("5".into()),
                })
            }],
            ..Faults::default()
        },
        ..Config::default()
    });
    let t = tempfile::tempdir().unwrap();
    let mut args = join_args(&cp, t.path());
    args.extend(["--discovery-timeout".into(), "3s".into()]);
    let r = run(&strs(&args));
    assert_eq!(r.code, 5, "{}", r.show());
    assert!(r.took < Duration::from_secs(3), "{}", r.show());
    assert!(
        r.stderr.contains(
            "the next attempt could only have started after --discovery-timeout 3s (overall deadline 10m0s)"
        ),
        "{}",
        r.show()
    );
    assert!(r.stderr.contains("asked to retry after 5s"), "{}", r.show());
    assert!(
        !r.stderr.contains("--discovery-timeout passed"),
        "{}",
        r.show()
    );
    assert!(
        r.stderr
            .contains("left no room for another attempt: raise --discovery-timeout"),
        "{}",
        r.show()
    );
    assert_eq!(cp.requests().len(), 1, "one attempt");
}

#[test]
fn host_prep_on_a_kernel_that_cannot_load_modules_says_so() {
    // A root without /proc/modules and without /lib/modules/<release>: what a kernel built
    // without loadable module support looks like.
    let t = tempfile::tempdir().unwrap();
    let r = run(&[
        "host-prep",
        "--dry-run",
        "--root",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(r.stderr.contains("cannot load modules"), "{}", r.show());
    assert!(
        r.stderr.contains("/proc/modules is missing"),
        "{}",
        r.show()
    );
    assert!(r.stderr.contains("--skip-phases host"), "{}", r.show());
    assert!(r.stderr.contains("[host] would fail"), "{}", r.show());
    assert!(!r.stderr.contains("depmod never ran"), "{}", r.show());
}

// ---- a second run ----

#[test]
fn a_second_run_sends_one_anonymous_get_and_no_token() {
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let args = join_args(&cp, t.path());
    let first = run(&strs(&args));
    assert_eq!(first.code, 0, "{}", first.show());
    let before = cp.requests().len();
    let again = run(&strs(&args));
    assert_eq!(again.code, 0, "{}", again.show());
    assert!(again.stderr.contains("already joined"), "{}", again.show());
    let sent: Vec<_> = cp.requests().into_iter().skip(before).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].method, "GET");
    assert!(sent[0].path.starts_with(CLUSTER_INFO), "{sent:?}");
    assert_eq!(sent[0].user, "system:anonymous");
    assert!(!sent[0].authorization, "no token sent");
}
