//! The `kubejoin-testcp` binary: `serve` announces itself and writes its state directory;
//! `approve` and `deny` act on the running server over mutual TLS.

// Test code (and its helpers outside #[test] fns) panics on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{csr_body, make_csr, wait_for, Client, CSRS, TOKEN};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_kubejoin-testcp");

struct Server {
    child: Child,
    lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "serve exited before READY: {lines:?}"
        );
        let done = line.starts_with("READY ");
        lines.push(line.trim_end().to_string());
        if done {
            break;
        }
    }
    Server { child, lines }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_announces_itself_and_approve_and_deny_work() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let mut server = serve(&[
        "--listen",
        "127.0.0.1:0",
        "--approval",
        "manual",
        "--state-dir",
        state,
    ]);

    let ready = server.lines.last().unwrap().clone();
    let url = ready.strip_prefix("READY ").unwrap().to_string();
    let endpoint = std::fs::read_to_string(dir.path().join("endpoint")).unwrap();
    assert_eq!(url, format!("https://{}", endpoint.trim()));
    let pin = std::fs::read_to_string(dir.path().join("pin")).unwrap();
    assert!(pin.trim().starts_with("sha256:") && pin.trim().len() == 71);
    let join = format!(
        "kubejoin join {} --token {TOKEN} --discovery-token-ca-cert-hash {}",
        endpoint.trim(),
        pin.trim()
    );
    assert!(
        server.lines.iter().any(|l| l.trim() == join),
        "{:?}",
        server.lines
    );
    assert!(server.lines.iter().any(|l| l.contains(pin.trim())));

    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let client = Client::token_at(&url, &ca, TOKEN);
    let (pem, _) = make_csr("system:node:cli-1", &["system:nodes"], &[]);
    let usages = ["digital signature", "client auth"];
    assert_eq!(
        client
            .post(CSRS, &csr_body(Some("cli-approve"), &pem, &usages))
            .status,
        201
    );
    assert_eq!(
        client
            .post(CSRS, &csr_body(Some("cli-deny"), &pem, &usages))
            .status,
        201
    );

    let (code, stdout, stderr) = run(&["approve", "cli-approve", "--state-dir", state]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "certificatesigningrequest.certificates.k8s.io/cli-approve approved\n"
    );
    let csr = wait_for(Duration::from_secs(5), "the certificate", || {
        let csr = client.get(&format!("{CSRS}/cli-approve")).json();
        csr["status"].get("certificate").is_some().then_some(csr)
    });
    assert_eq!(csr["status"]["conditions"][0]["reason"], "KubectlApprove");

    let (code, stdout, stderr) = run(&[
        "deny",
        "cli-deny",
        "--reason",
        "NotToday",
        "--message",
        "no",
        "--state-dir",
        state,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "certificatesigningrequest.certificates.k8s.io/cli-deny denied\n"
    );
    let denied = client.get(&format!("{CSRS}/cli-deny")).json();
    assert_eq!(denied["status"]["conditions"][0]["type"], "Denied");
    assert_eq!(denied["status"]["conditions"][0]["reason"], "NotToday");
    assert_eq!(denied["status"]["conditions"][0]["message"], "no");

    let (code, _, stderr) = run(&["approve", "cli-deny", "--state-dir", state]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already denied"), "{stderr}");
    let (code, _, stderr) = run(&["approve", "missing", "--state-dir", state]);
    assert_eq!(code, 1);
    assert!(stderr.contains("(NotFound)"), "{stderr}");

    // One JSON line per request, with the user that made it.
    let log = wait_for(Duration::from_secs(5), "the request log", || {
        let log = std::fs::read_to_string(dir.path().join("requests.jsonl")).ok()?;
        log.contains("\"user\":\"kubernetes-admin\"").then_some(log)
    });
    assert!(log.contains("\"user\":\"system:bootstrap:abcdef\""));
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["status"].as_u64().unwrap() >= 200);
    }

    // SIGTERM stops it cleanly.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait_for(Duration::from_secs(5), "serve to exit", || {
        server.child.try_wait().unwrap()
    });
    assert!(status.success());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["serve", "--approval", "sometimes"][..],
        &["approve", "x"],
        &["sntp", "--kiss", "nope"],
        &["frobnicate"],
        &[],
    ] {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.contains("USAGE"), "{stderr}");
    }
}

/// `sntp` announces its address, answers a client request with its time shifted by `--offset`
/// (checked here with a hand-made request, independent of both codecs), and on SIGTERM exits 0
/// saying how many requests it answered.
#[test]
fn sntp_answers_with_its_offset_and_stops_on_sigterm() {
    let child = Command::new(BIN)
        .args(["sntp", "--offset", "300", "--stratum", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Killed on drop if an assertion fails first.
    let mut server = Server {
        child,
        lines: Vec::new(),
    };
    let mut reader = BufReader::new(server.child.stdout.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "exited before READY"
        );
        if let Some(a) = line.trim_end().strip_prefix("READY udp://") {
            break a.parse::<std::net::SocketAddr>().unwrap();
        }
    };
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = [0u8; 48];
    req[0] = 0x23; // LI 0, version 4, client
    req[40..48].copy_from_slice(b"nonce-42");
    sock.send_to(&req, addr).unwrap();
    let mut reply = [0u8; 64];
    let (n, from) = sock.recv_from(&mut reply).unwrap();
    assert_eq!((n, from), (48, addr));
    assert_eq!(reply[0], 0x24, "LI 0, version 4, server");
    assert_eq!(reply[1], 2, "stratum");
    assert_eq!(&reply[24..32], b"nonce-42", "originate = our transmit");
    let ntp_secs = u32::from_be_bytes(reply[40..44].try_into().unwrap());
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Era 0 until 2036: NTP seconds minus 70 years.
    let told = u64::from(ntp_secs) - 2_208_988_800;
    assert!((unix_now + 300).abs_diff(told) <= 2, "{told} vs {unix_now}");

    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(rest.contains("answered 1 request(s)"), "{rest}");
}
