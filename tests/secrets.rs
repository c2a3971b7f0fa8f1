//! Secrets never leak: not into any output, not onto disk beyond the key files, not into the
//! kubelet's environment.
//!
//! Every scenario the real binary can be driven into against the test control plane (loopback)
//! is run with debug logging on, its stdout and stderr captured whole, and searched for the
//! bootstrap token's secret (and the whole token, and its `Bearer` form) and for the node's
//! private key in every encoding a careless log line could use (PEM body lines, the DER in
//! standard and URL-safe base64, and hex). Key files are checked 0600, including at the
//! instant they are created (umask 000, stopped by a failpoint right after `open`).

// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine as _;
use kubejoin::fs::root::Root;
use kubejoin::install;
use kubejoin_testcp::{Approval, Config, Handle, TokenSpec};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODE: &str = "secret-node";
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn start(config: Config) -> Handle {
    kubejoin_testcp::start(config).expect("test control plane starts")
}

/// The real binary with `args`, optionally under a umask and with a failpoint, bounded in time.
fn run(args: &[String], umask: Option<&str>, failpoint: Option<&str>) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "{}ulimit -c 0; exec \"$0\" \"$@\"",
            umask.map(|u| format!("umask {u}; ")).unwrap_or_default()
        ))
        .arg(env!("CARGO_BIN_EXE_kubejoin"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(fp) = failpoint {
        cmd.env(kubejoin::fs::failpoint::ENV, fp);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("kubejoin ran longer than {RUN_LIMIT:?}: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `kubejoin join` against `cp` into `root` with `token`, debug logging on, plus `extra`.
fn join_args(cp: &Handle, root: &Path, token: &str, extra: &[&str]) -> Vec<String> {
    let mut v = support::join_args(cp, token, NODE, root);
    v.extend(
        ["--discovery-retry-interval", "200ms", "-v"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    v
}

/// Everything the process printed.
fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The encodings of `token` that must never be printed.
fn token_needles(token: &str) -> Vec<String> {
    let secret = token.split_once('.').map_or(token, |(_, s)| s);
    vec![
        secret.to_string(),
        token.to_string(),
        format!("Bearer {token}"),
        base64::engine::general_purpose::STANDARD.encode(token),
    ]
}

/// The encodings of a private key (PKCS#8 PEM) that must never be printed.
fn key_needles(key_pem: &str) -> Vec<String> {
    let der = kubejoin::pki::pem::blocks_of(key_pem.as_bytes(), "PRIVATE KEY")
        .into_iter()
        .next()
        .expect("a PRIVATE KEY block");
    let mut v: Vec<String> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect();
    v.push(base64::engine::general_purpose::STANDARD.encode(&der));
    v.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der));
    v.push(hex::encode(&der));
    // The private scalar alone: `INTEGER 1, OCTET STRING (32)` opens SEC1's ECPrivateKey.
    let at = der
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("an ECPrivateKey inside the PKCS#8")
        + 5;
    let scalar = &der[at..at + 32];
    v.push(hex::encode(scalar));
    v.push(base64::engine::general_purpose::STANDARD.encode(scalar));
    v
}

fn assert_absent(what: &str, haystack: &str, needles: &[String]) {
    for n in needles {
        assert!(
            !haystack.contains(n.as_str()),
            "{what} contains a secret ({}…):\n{haystack}",
            &n[..n.len().min(8)]
        );
    }
}

/// The key in the installed client PEM (after a join) or the pending key (after a failure).
fn key_on_disk(root: &Path) -> Option<String> {
    let r = Root::new(root);
    let pending = r.join(install::KEY_TMP).unwrap();
    if let Ok(k) = std::fs::read_to_string(&pending) {
        return Some(k);
    }
    let current = r.join(install::CLIENT_CURRENT).unwrap();
    let target = std::fs::read_link(current).ok()?;
    let pem = std::fs::read_to_string(r.join(target).unwrap()).ok()?;
    let at = pem.find("-----BEGIN PRIVATE KEY-----")?;
    Some(pem[at..].to_string())
}

/// Every regular file under `root`.
fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(&e.path(), out);
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Files holding key material are 0600; the token is in no file at all.
fn check_disk(root: &Path, token: &str) {
    for f in files(root) {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert_absent(&format!("{}", f.display()), &text, &token_needles(token));
        if text.contains("PRIVATE KEY") {
            assert_eq!(mode(&f), 0o600, "{} holds a key", f.display());
        }
    }
}

struct Scenario {
    name: &'static str,
    out: Output,
    token: String,
    root: tempfile::TempDir,
    expect_code: i32,
}

impl Scenario {
    fn check(&self) {
        let text = all_output(&self.out);
        assert_eq!(
            self.out.status.code(),
            Some(self.expect_code),
            "{}: exit code\n{text}",
            self.name
        );
        assert_absent(self.name, &text, &token_needles(&self.token));
        if let Some(key) = key_on_disk(self.root.path()) {
            assert_absent(self.name, &text, &key_needles(&key));
        }
        check_disk(self.root.path(), &self.token);
    }
}

fn scenario(
    name: &'static str,
    cp: &Handle,
    token: &str,
    extra: &[&str],
    expect_code: i32,
) -> Scenario {
    let root = tempfile::tempdir().unwrap();
    let out = run(&join_args(cp, root.path(), token, extra), None, None);
    Scenario {
        name,
        out,
        token: token.to_string(),
        root,
        expect_code,
    }
}

/// On a thread: once `cp` holds a CSR, deny it.
fn deny_when_submitted(cp: &Arc<Handle>) -> std::thread::JoinHandle<()> {
    let cp = Arc::clone(cp);
    std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < RUN_LIMIT {
            if let Some(n) = cp
                .csrs()
                .first()
                .and_then(|c| c["metadata"]["name"].as_str().map(str::to_string))
            {
                cp.deny(&n, "NotInInventory", "unknown machine").unwrap();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

#[test]
fn success_dry_run_and_already_joined_print_no_secret_and_leave_no_token_on_disk() {
    let cp = start(Config::default());
    let token = cp.token();

    let joined = scenario("success", &cp, &token, &[], 0);
    joined.check();
    let key = key_on_disk(joined.root.path()).expect("the installed key");
    assert!(
        !Root::new(joined.root.path())
            .join(install::KEY_TMP)
            .unwrap()
            .exists(),
        "the pending key is removed once installed"
    );
    // The whole root, result.json included, is free of the token (check_disk did that); the
    // result file is checked by name so a future move of it cannot slip past.
    let result = std::fs::read_to_string(
        Root::new(joined.root.path())
            .join(install::RESULT_JSON)
            .unwrap(),
    )
    .unwrap();
    assert_absent("result.json", &result, &token_needles(&token));
    assert_absent("result.json", &result, &key_needles(&key));
    for p in [install::KUBELET_CONF, install::KEY_TMP] {
        let real = Root::new(joined.root.path()).join(p).unwrap();
        if real.exists() {
            assert_eq!(mode(&real), 0o600, "{p}");
        }
    }

    // A second run on the joined root: already joined, nothing printed that matters.
    let again = run(&join_args(&cp, joined.root.path(), &token, &[]), None, None);
    assert_eq!(again.status.code(), Some(0), "{}", all_output(&again));
    assert!(all_output(&again).contains("already joined"));
    assert_absent(
        "already-joined",
        &all_output(&again),
        &token_needles(&token),
    );
    assert_absent("already-joined", &all_output(&again), &key_needles(&key));
    check_disk(joined.root.path(), &token);

    let dry = scenario("dry-run", &cp, &token, &["--dry-run"], 0);
    dry.check();
    assert!(
        files(dry.root.path()).is_empty(),
        "a dry run writes nothing"
    );
}

#[test]
fn denied_and_timed_out_joins_print_no_secret() {
    let cp = Arc::new(start(Config {
        approval: Approval::Manual,
        ..Config::default()
    }));
    let token = cp.token();
    let denier = deny_when_submitted(&cp);
    let denied = scenario("denied", &cp, &token, &[], 4);
    denier.join().unwrap();
    denied.check();
    assert!(
        all_output(&denied.out).contains("is denied, reason: NotInInventory"),
        "{}",
        all_output(&denied.out)
    );
    assert!(
        key_on_disk(denied.root.path()).is_some(),
        "the pending key stays for a re-run"
    );

    let cp = start(Config {
        approval: Approval::Manual,
        ..Config::default()
    });
    let timed_out = scenario(
        "timeout",
        &cp,
        &token,
        &["--tls-bootstrap-timeout", "1s"],
        5,
    );
    timed_out.check();
    assert!(
        all_output(&timed_out.out).contains("gave up in wait-approval after "),
        "{}",
        all_output(&timed_out.out)
    );

    // The overall deadline (--timeout) rather than the wait's own bound ends it.
    let cp = start(Config {
        approval: Approval::Manual,
        ..Config::default()
    });
    let started = Instant::now();
    let overall = scenario("overall timeout", &cp, &token, &["--timeout", "2s"], 5);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    overall.check();
    let text = all_output(&overall.out);
    assert!(
        text.contains("gave up in wait-approval after ")
            && text.contains("(overall deadline 2s)")
            && text.contains("raise --timeout"),
        "{text}"
    );
}

#[test]
fn refusals_print_no_secret() {
    // 401: the token signs cluster-info (discovery passes) but does not authenticate.
    let cp = start(Config {
        tokens: vec![TokenSpec {
            authentication: false,
            ..TokenSpec::new("abcdef", "0123456789abcdef")
        }],
        ..Config::default()
    });
    let s = scenario("401", &cp, &cp.token(), &[], 4);
    s.check();
    assert!(all_output(&s.out).contains("401"), "{}", all_output(&s.out));

    // 403: the token lacks kubeadm's default node group.
    let cp = start(Config {
        tokens: vec![TokenSpec {
            extra_groups: Vec::new(),
            ..TokenSpec::new("abcdef", "0123456789abcdef")
        }],
        ..Config::default()
    });
    let s = scenario("403", &cp, &cp.token(), &[], 4);
    s.check();
    assert!(all_output(&s.out).contains("403"), "{}", all_output(&s.out));

    // A wrong secret for a known token id: the JWS does not verify (trust, exit 3).
    let cp = start(Config::default());
    let s = scenario("wrong secret", &cp, "abcdef.ffffffffffffffff", &[], 3);
    s.check();

    // Pin mismatch (exit 3), before any token-authenticated request.
    let cp = start(Config::default());
    let root = tempfile::tempdir().unwrap();
    let mut args = join_args(&cp, root.path(), &cp.token(), &[]);
    let pin_at = args
        .iter()
        .position(|a| a == "--discovery-token-ca-cert-hash")
        .unwrap()
        + 1;
    args[pin_at] = format!("sha256:{}", "0".repeat(64));
    let out = run(&args, None, None);
    Scenario {
        name: "pin mismatch",
        out,
        token: cp.token(),
        root,
        expect_code: 3,
    }
    .check();
    assert!(
        cp.requests()
            .iter()
            .all(|r| !r.user.starts_with("system:bootstrap")),
        "no token-authenticated request after a pin mismatch"
    );

    // Nothing listens: discovery gives up at its bound (exit 5).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = dead.local_addr().unwrap().to_string();
    drop(dead);
    let root = tempfile::tempdir().unwrap();
    let mut args = join_args(
        &cp,
        root.path(),
        &cp.token(),
        &["--discovery-timeout", "1s"],
    );
    args[1] = endpoint;
    let out = run(&args, None, None);
    let s = Scenario {
        name: "unreachable",
        out,
        token: cp.token(),
        root,
        expect_code: 5,
    };
    s.check();
    assert!(
        all_output(&s.out).contains("gave up in discovery after "),
        "{}",
        all_output(&s.out)
    );
}

#[test]
fn usage_errors_never_echo_the_token() {
    let cp = start(Config::default());
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let pin = cp.signing_ca_pin();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // Not a token (uppercase id): the message must not quote it.
        (
            vec![
                "join",
                "127.0.0.1:6443",
                "--token",
                "ABCDEF.0123456789abcdef",
                "--discovery-token-ca-cert-hash",
                &pin,
                "--root",
                r,
            ],
            "ABCDEF.0123456789abcdef",
        ),
        // A secret one character short.
        (
            vec![
                "join",
                "127.0.0.1:6443",
                "--token",
                "abcdef.0123456789abcde",
                "--discovery-token-ca-cert-hash",
                &pin,
                "--root",
                r,
            ],
            "abcdef.0123456789abcde",
        ),
        // A valid token with a bad pin, a bad flag, no pin, a bad endpoint, a bad duration.
        (
            vec![
                "join",
                "127.0.0.1:6443",
                "--token",
                "abcdef.0123456789abcdef",
                "--discovery-token-ca-cert-hash",
                "sha256:zz",
                "--root",
                r,
            ],
            "abcdef.0123456789abcdef",
        ),
        (
            vec![
                "join",
                "127.0.0.1:6443",
                "--token",
                "abcdef.0123456789abcdef",
                "--bogus",
                "--root",
                r,
            ],
            "abcdef.0123456789abcdef",
        ),
        (
            vec![
                "join",
                "127.0.0.1:6443",
                "--token",
                "abcdef.0123456789abcdef",
                "--root",
                r,
            ],
            "abcdef.0123456789abcdef",
        ),
        (
            vec![
                "join",
                "not-an-endpoint",
                "--token",
                "abcdef.0123456789abcdef",
                "--discovery-token-ca-cert-hash",
                &pin,
                "--root",
                r,
            ],
            "abcdef.0123456789abcdef",
        ),
        (
            vec![
                "join",
                "127.0.0.1:6443",
                "--token",
                "abcdef.0123456789abcdef",
                "--discovery-token-ca-cert-hash",
                &pin,
                "--tls-bootstrap-timeout",
                "soon",
                "--root",
                r,
            ],
            "abcdef.0123456789abcdef",
        ),
        (
            vec![
                "join",
                "127.0.0.1:6443",
                "--token",
                "abcdef.0123456789abcdef",
                "--discovery-token-ca-cert-hash",
                &pin,
                "--timeout",
                "soon",
                "--root",
                r,
            ],
            "abcdef.0123456789abcdef",
        ),
        (
            vec![
                "join",
                "127.0.0.1:6443",
                "--tls-bootstrap-token",
                "abcdef.0123456789ABCDEF",
                "--discovery-token-ca-cert-hash",
                &pin,
                "--root",
                r,
            ],
            "abcdef.0123456789ABCDEF",
        ),
    ];
    for (args, token) in cases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = run(&args, None, None);
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{text}");
        assert_absent(&format!("{args:?}"), &text, &token_needles(token));
    }
    assert!(files(root.path()).is_empty());
}

#[cfg(any(debug_assertions, feature = "failpoints"))]
#[test]
fn key_files_are_created_0600_even_under_umask_000() {
    // Stopped right after open(O_CREAT|O_EXCL, mode), before fchmod and before any byte: with
    // umask 000 the temp file shows exactly the mode it was created with.
    for node_path in [
        install::KEY_TMP.to_string(),
        "/var/lib/kubelet/pki/kubelet-client-*.pem".to_string(),
        install::KUBELET_CONF.to_string(),
    ] {
        let cp = start(Config::default());
        let root = tempfile::tempdir().unwrap();
        let fp = format!("write.opened:{node_path}");
        let out = run(
            &join_args(&cp, root.path(), &cp.token(), &[]),
            Some("000"),
            Some(&fp),
        );
        assert!(
            all_output(&out).contains(&format!("failpoint: {fp}: aborting")),
            "{}",
            all_output(&out)
        );
        let dir = Root::new(root.path())
            .join(Path::new(&node_path).parent().unwrap())
            .unwrap();
        let temps: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(".kubejoin-tmp.")
            })
            .collect();
        assert_eq!(temps.len(), 1, "{temps:?}");
        assert_eq!(
            mode(&temps[0]),
            0o600,
            "{fp}: created with mode {:04o}",
            mode(&temps[0])
        );
    }
}

#[tokio::test]
async fn the_kubelet_gets_no_secret_in_its_environment_or_arguments() {
    use kubejoin::discovery::{BootstrapCredentials, Discovered, Method};
    use kubejoin::kube::token::BootstrapToken;
    use kubejoin::sys::exec::{ExecCall, RecordingExec};
    let cp = start(Config::default());
    let t = tempfile::tempdir().unwrap();
    let args: Vec<String> = std::iter::once("kubejoin".to_string())
        .chain(join_args(
            &cp,
            t.path(),
            &cp.token(),
            &["--handoff", "exec"],
        ))
        .collect();
    let plan = match kubejoin::cli::parse(args.into_iter().map(Into::into)).unwrap() {
        kubejoin::cli::Command::Join(p) => *p,
        other => panic!("{other:?}"),
    };
    let ca_pem = cp.ca_pem().into_bytes();
    let d = Discovered {
        server: cp.url(),
        ca_der: kubejoin::pki::pem::certs_from_pem(&ca_pem).unwrap(),
        ca_pem,
        unpinned: Vec::new(),
        matched_pin: None,
        method: Method::Token {
            endpoint: cp.endpoint(),
        },
        credentials: BootstrapCredentials::Token(BootstrapToken::parse(&cp.token()).unwrap()),
        warm: None,
    };
    let sys = RecordingExec::new("host");
    kubejoin::join::bootstrap_and_install(&plan, &d, &sys, &kubejoin::join::Tuning::default())
        .await
        .unwrap();
    let _ =
        kubejoin::handoff::handoff(plan.handoff, &plan.kubelet_path, &Root::new(t.path()), &sys);
    let key = key_on_disk(t.path()).unwrap();
    let execs: Vec<ExecCall> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, ExecCall::Execve { .. }))
        .collect();
    let [ExecCall::Execve { argv, env, .. }] = execs.as_slice() else {
        panic!("{execs:?}")
    };
    assert_eq!(
        env.iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        vec!["PATH"],
        "the kubelet's environment is built from nothing"
    );
    let everything = format!("{argv:?}{env:?}");
    assert_absent(
        "the kubelet's argv/env",
        &everything,
        &token_needles(&cp.token()),
    );
    assert_absent("the kubelet's argv/env", &everything, &key_needles(&key));
}
