//! The bootstrap token from a file (issue 13 §2), through the real binary: `--token-file`,
//! `--discovery-token-file`, `--tls-bootstrap-token-file`, `kubejoin.token-file=` and the
//! KubejoinConfiguration's `tokenFile`. A file others may read is refused with the fix
//! (`chmod 600`), a file that is not one token is refused, a token given twice is a usage
//! error, and a token on the kubejoin or kernel command line is warned about. The secret never
//! appears in any output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin_testcp::{Config, Handle};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "abcdef.0123456789abcdef";
const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";

fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubejoin"));
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    support::run_bounded(cmd, LIMIT)
}

fn all(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No output carries the token's secret half.
fn no_secret(out: &Output, token: &str) {
    let text = all(out);
    let secret = &token[7..];
    assert!(!text.contains(secret), "the token secret leaked:\n{text}");
}

fn token_file(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn start() -> Handle {
    kubejoin_testcp::start(Config::default()).expect("test control plane starts")
}

fn join_with(cp: &Handle, root: &Path, token_flags: &[&str]) -> Output {
    let endpoint = cp.endpoint();
    let pin = cp.signing_ca_pin();
    let mut args = vec![
        "join",
        &endpoint,
        "--discovery-token-ca-cert-hash",
        &pin,
        "--node-name",
        "file-node",
        "--root",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(token_flags);
    run(&args)
}

#[test]
fn token_file_joins_without_a_warning_or_the_secret_in_any_output() {
    let cp = start();
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let f = token_file(dir.path(), "token", &format!("{}\n", cp.token()), 0o600);
    let out = join_with(&cp, root.path(), &["--token-file", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert!(root.path().join("etc/kubernetes/kubelet.conf").exists());
    assert!(
        !all(&out).contains("given on the command line"),
        "{}",
        all(&out)
    );
    no_secret(&out, &cp.token());
    cp.shutdown();
}

#[test]
fn discovery_and_tls_bootstrap_token_files_join() {
    let cp = start();
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    // No trailing newline in one, CRLF in the other: both are one token.
    let d = token_file(dir.path(), "discovery", &cp.token(), 0o400);
    let t = token_file(dir.path(), "tls", &format!("{}\r\n", cp.token()), 0o600);
    let out = join_with(
        &cp,
        root.path(),
        &[
            "--discovery-token-file",
            d.to_str().unwrap(),
            "--tls-bootstrap-token-file",
            t.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert!(root.path().join("var/lib/kubelet/pki").exists());
    no_secret(&out, &cp.token());
    cp.shutdown();
}

#[test]
fn inline_token_warns_and_points_at_token_file() {
    let cp = start();
    let root = tempfile::tempdir().unwrap();
    let token = cp.token();
    let out = join_with(&cp, root.path(), &["--token", &token]);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let text = all(&out);
    assert!(
        text.contains("--token given on the command line")
            && text.contains("/proc/<pid>/cmdline")
            && text.contains("--token-file FILE"),
        "{text}"
    );
    no_secret(&out, &token);
    cp.shutdown();
}

#[test]
fn a_token_file_others_can_read_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    for (flag, mode) in [
        ("--token-file", 0o644),
        ("--discovery-token-file", 0o640),
        ("--tls-bootstrap-token-file", 0o604),
    ] {
        let f = token_file(dir.path(), "token", &format!("{TOKEN}\n"), mode);
        let out = run(&[
            "join",
            "127.0.0.1:1",
            "--discovery-token-ca-cert-hash",
            PIN,
            "--token",
            TOKEN,
            flag,
            f.to_str().unwrap(),
            "--root",
            root.path().to_str().unwrap(),
        ]);
        let text = all(&out);
        // --token-file alongside --token is refused for being given twice before the mode
        // matters; the other two are read.
        assert_eq!(out.status.code(), Some(2), "{flag}: {text}");
        if flag != "--token-file" {
            assert!(
                text.contains(&format!("mode {mode:04o}"))
                    && text.contains(&format!("run `chmod 600 {}`", f.display())),
                "{flag}: {text}"
            );
        }
        no_secret(&out, TOKEN);
        let out = run(&[
            "join",
            "127.0.0.1:1",
            "--discovery-token-ca-cert-hash",
            PIN,
            "--token-file",
            f.to_str().unwrap(),
            "--root",
            root.path().to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", all(&out));
        assert!(all(&out).contains("chmod 600"), "{}", all(&out));
        no_secret(&out, TOKEN);
    }
}

#[test]
fn a_token_file_must_hold_exactly_one_token() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    for content in [
        format!("{TOKEN}\n{TOKEN}\n"),
        format!("token: {TOKEN}\n"),
        format!("{TOKEN}\n\n"),
        format!(" {TOKEN}"),
        String::new(),
    ] {
        let f = token_file(dir.path(), "token", &content, 0o600);
        let out = run(&[
            "join",
            "127.0.0.1:1",
            "--discovery-token-ca-cert-hash",
            PIN,
            "--token-file",
            f.to_str().unwrap(),
            "--root",
            root.path().to_str().unwrap(),
        ]);
        let text = all(&out);
        assert_eq!(out.status.code(), Some(2), "{content:?}: {text}");
        assert!(
            text.contains("does not hold exactly one bootstrap token"),
            "{content:?}: {text}"
        );
        no_secret(&out, TOKEN);
    }
    let out = run(&[
        "join",
        "127.0.0.1:1",
        "--discovery-token-ca-cert-hash",
        PIN,
        "--token-file",
        dir.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", all(&out));
    assert!(
        all(&out).contains("no such file: ") && all(&out).contains("(given to --token-file)"),
        "{}",
        all(&out)
    );
}

#[test]
fn a_token_given_inline_and_by_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = token_file(dir.path(), "token", TOKEN, 0o600);
    for (inline, file) in [
        ("--token", "--token-file"),
        ("--discovery-token", "--discovery-token-file"),
        ("--tls-bootstrap-token", "--tls-bootstrap-token-file"),
    ] {
        let out = run(&[
            "join",
            "127.0.0.1:1",
            "--discovery-token-ca-cert-hash",
            PIN,
            inline,
            TOKEN,
            file,
            f.to_str().unwrap(),
        ]);
        let text = all(&out);
        assert_eq!(out.status.code(), Some(2), "{inline}: {text}");
        assert!(
            text.contains(&format!("{inline} and {file} both given")),
            "{inline}: {text}"
        );
        no_secret(&out, TOKEN);
    }
}

// ---- the boot sources: kubejoin plan ------------------------------------------------------------

/// `kubejoin plan` of a boot with `cmdline` (and files under its root).
fn plan(root: &Path, cmdline: &str, extra: &[&str]) -> Output {
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("proc/cmdline"), cmdline).unwrap();
    let mut args = vec!["plan", "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn plan_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", all(out)))
}

const BOOT: &str = "console=ttyS0 kubejoin.platform=none kubejoin.endpoint=10.0.0.1:6443";

#[test]
fn a_token_on_the_kernel_command_line_is_warned_about_at_boot() {
    let root = tempfile::tempdir().unwrap();
    let out = plan(
        root.path(),
        &format!("{BOOT} kubejoin.ca-cert-hash={PIN} kubejoin.token={TOKEN}\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "kubejoin.token=",
        "/proc/cmdline is world-readable and not namespaced",
        "every container",
        "any node name",
        "config drive",
        "user-data",
        "kubejoin.config.sha256=",
        "kubejoin.token-file=",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    let j = plan_json(&out);
    assert_eq!(j["values"]["token"]["source"], "cmdline");
    no_secret(&out, TOKEN);
}

#[test]
fn a_token_file_on_the_kernel_command_line_shows_its_file_as_the_source() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/kubejoin")).unwrap();
    token_file(
        &root.path().join("etc/kubejoin"),
        "token",
        &format!("{TOKEN}\n"),
        0o600,
    );
    let cmdline =
        format!("{BOOT} kubejoin.ca-cert-hash={PIN} kubejoin.token-file=/etc/kubejoin/token\n");
    let out = plan(root.path(), &cmdline, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let j = plan_json(&out);
    assert_eq!(j["values"]["token"]["source"], "file:/etc/kubejoin/token");
    assert_eq!(j["values"]["token"]["value"], "abcdef.<redacted>");
    assert_eq!(j["valid"], true);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("world-readable"),
        "{}",
        all(&out)
    );
    no_secret(&out, TOKEN);

    // Readable by others: refused, with the fix.
    std::fs::set_permissions(
        root.path().join("etc/kubejoin/token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = plan(root.path(), &cmdline, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", all(&out));
    assert!(
        all(&out).contains("run `chmod 600 /etc/kubejoin/token`"),
        "{}",
        all(&out)
    );
    no_secret(&out, TOKEN);

    // Both forms in one source.
    let out = plan(
        root.path(),
        &format!("{cmdline} kubejoin.token={TOKEN}"),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", all(&out));
    assert!(
        all(&out).contains("cmdline gives both token and token-file"),
        "{}",
        all(&out)
    );
    no_secret(&out, TOKEN);
}

#[test]
fn kubejoin_configuration_token_file_on_both_routes() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = token_file(dir.path(), "token", &format!("{TOKEN}\n"), 0o600);
    // The plan route reads the path under --root: put the same file there.
    let inside = root.path().join(f.strip_prefix("/").unwrap());
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    token_file(
        inside.parent().unwrap(),
        "token",
        &format!("{TOKEN}\n"),
        0o600,
    );
    let config = dir.path().join("kubejoin.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\ntokenFile: {}\n",
            f.display()
        ),
    )
    .unwrap();
    let out = plan(
        root.path(),
        &format!("{BOOT} kubejoin.ca-cert-hash={PIN}\n"),
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let j = plan_json(&out);
    assert_eq!(
        j["values"]["token"]["source"],
        format!("file:{}", f.display())
    );
    no_secret(&out, TOKEN);

    // The flags route (`kubejoin join --config`): the file's token is used (here it reaches
    // discovery, which fails on the closed port, not on a missing token).
    let out = run(&[
        "join",
        "127.0.0.1:1",
        "--discovery-token-ca-cert-hash",
        PIN,
        "--config",
        config.to_str().unwrap(),
        "--discovery-timeout",
        "1s",
        "--root",
        root.path().to_str().unwrap(),
    ]);
    let text = all(&out);
    assert!(!text.contains("no bootstrap token"), "{text}");
    assert!(!text.contains("given on the command line"), "{text}");
    assert_ne!(out.status.code(), Some(2), "{text}");
    no_secret(&out, TOKEN);
}
