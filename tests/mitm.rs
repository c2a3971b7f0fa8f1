//! Man-in-the-middle suite: the real `kubejoin` binary against attackers on loopback.
//!
//! Every case asserts four things:
//! 1. the join is refused, with the documented exit code and a reason that names the attack;
//! 2. nothing is installed: the run uses a temporary `--root`, which must stay empty;
//! 3. the attacker's own request log shows that no token-authenticated request ever reached it
//!    (no `Authorization` header at all, whatever the path or answer);
//! 4. the token secret appears nowhere in what kubejoin printed.
//!
//! Attackers are a second test control plane (its own CA, and sometimes the stolen token so that
//! its JWS is valid), raw TCP servers for what a control plane never does (TLS 1.0, garbage),
//! and a proxy that hands different connections to different servers. Every server is bounded:
//! short discovery timeouts, child processes killed after a minute, threads that stop on drop.

// Test helpers outside #[test] fns panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubejoin_testcp::{Action, Config, Faults, Handle, RequestFault, TokenSpec};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubejoin");
const TOKEN: &str = "abcdef.0123456789abcdef";
const SECRET: &str = "0123456789abcdef";
const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

fn start(cfg: Config) -> Handle {
    kubejoin_testcp::start(cfg).expect("starting a test control plane")
}

// ---- running the binary ----

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    /// Largest VmHWM (peak resident set, KiB) read from /proc/PID/status while it ran.
    peak_kib: Option<u64>,
    took: Duration,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs kubejoin with `args`, sampling its peak memory; killed if it runs for a minute.
fn kubejoin(args: &[String]) -> Run {
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut peak: Option<u64> = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = Some(peak.map_or(kib, |p| p.max(kib)));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kubejoin {args:?} ran for more than a minute");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        peak_kib: peak,
        took: t0.elapsed(),
    }
}

/// `kubejoin join ENDPOINT --token … [--discovery-token-ca-cert-hash PIN]…` into a fresh
/// temporary root, with short discovery bounds.
fn join(endpoint: &str, pins: &[String], extra: &[&str]) -> (Run, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec![
        "join".into(),
        endpoint.into(),
        "--token".into(),
        TOKEN.into(),
        "--node-name".into(),
        "mitm-node".into(),
        "--root".into(),
        root.path().display().to_string(),
        "--discovery-timeout".into(),
        "3s".into(),
        "--discovery-retry-interval".into(),
        "200ms".into(),
        "--tls-bootstrap-timeout".into(),
        "5s".into(),
    ];
    for p in pins {
        args.push("--discovery-token-ca-cert-hash".into());
        args.push(p.clone());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    (kubejoin(&args), root)
}

/// Refused with `code`, for a reason that contains each of `words`, without the secret.
fn assert_refused(run: &Run, code: i32, words: &[&str]) {
    // Shown with --nocapture: what an operator would read.
    eprintln!("exit {} after {:?}:\n{}", run.code, run.took, run.stderr);
    assert_eq!(
        run.code, code,
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout, run.stderr
    );
    for w in words {
        assert!(
            run.stderr.contains(w),
            "{w:?} missing from stderr:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("kubejoin: error: "),
        "no error line:\n{}",
        run.stderr
    );
    assert_secret_free(run);
}

fn assert_secret_free(run: &Run) {
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "the token secret was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

/// The root kubejoin was given holds nothing at all.
fn assert_nothing_installed(root: &Path) {
    let entries: Vec<_> = walk(root);
    assert!(
        entries.is_empty(),
        "files written under --root: {entries:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

/// No request that reached this server carried credentials of any kind.
fn assert_no_token_request(h: &Handle, who: &str) {
    for r in h.requests() {
        assert!(
            !r.authorization && !r.user.starts_with("system:bootstrap:"),
            "{who} received a token-authenticated request: {r:?}"
        );
    }
}

/// Only anonymous GETs of cluster-info reached this server; returns how many.
fn only_anonymous_cluster_info(h: &Handle, who: &str) -> usize {
    let reqs = h.requests();
    for r in &reqs {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", CLUSTER_INFO),
            "{who}: unexpected request {r:?}"
        );
    }
    assert_no_token_request(h, who);
    reqs.len()
}

// ---- raw servers for what an API server never does ----

/// A TCP server that answers each connection with `reply` and records what it received.
struct RawServer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    fn start(bind: &str, reply: Vec<u8>) -> RawServer {
        let listener = TcpListener::bind(bind).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (s, c, r) = (stop.clone(), connections.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut sock, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        let _ = sock.set_nonblocking(false);
                        let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        // The client speaks first (its ClientHello).
                        if let Ok(n) = sock.read(&mut buf) {
                            r.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                        let _ = sock.write_all(&reply);
                        // Keep reading until the client gives up, so that all it sent is seen.
                        while let Ok(n) = sock.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            r.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawServer {
            addr,
            stop,
            connections,
            received,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TLS 1.0 ServerHello (TLS_RSA_WITH_AES_128_CBC_SHA, no extensions) in a TLS 1.0 record:
/// what a server that only speaks TLS 1.0 answers to any ClientHello.
fn tls10_server_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x01]; // server_version TLS 1.0
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // session id length
    hello.extend_from_slice(&[0x00, 0x2f]); // cipher suite
    hello.push(0); // compression: null
    let mut handshake = vec![0x02]; // ServerHello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// A TCP proxy that sends connection `i` to `routes[min(i, last)]`.
struct Proxy {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(routes: Vec<std::net::SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, _)) => {
                        let to = routes[n.min(routes.len() - 1)];
                        n += 1;
                        let _ = down.set_nonblocking(false);
                        let Ok(up) = TcpStream::connect(to) else {
                            continue;
                        };
                        pipe(down.try_clone().unwrap(), up.try_clone().unwrap());
                        pipe(up, down);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

/// Copies `from` to `to` on a thread until either side closes (bounded by read timeouts).
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = from.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- the control case: the harness itself lets a real join through ----

#[test]
fn control_the_real_cluster_is_joined() {
    let legit = start(Config::default());
    let (run, root) = join(&legit.endpoint(), &[legit.signing_ca_pin()], &["--dry-run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("matches the pinned hash"),
        "{}",
        run.stderr
    );
    assert_secret_free(&run);
    // A dry run writes nothing, even against the real cluster.
    assert_nothing_installed(root.path());
}

// ---- (a) an attacker with its own CA and the stolen token ----

#[test]
fn a_stolen_token_is_not_enough_the_pin_stops_the_impostor() {
    let legit = start(Config::default());
    // The attacker knows the token (its JWS over its own cluster-info is valid) but not the
    // cluster CA's key: its CA is its own.
    let attacker = start(Config::default());
    assert_ne!(attacker.signing_ca_pin(), legit.signing_ca_pin());
    let (run, root) = join(&attacker.endpoint(), &[legit.signing_ca_pin()], &[]);
    assert_refused(
        &run,
        3,
        &[
            "none of the public keys",
            "are pinned",
            &attacker.signing_ca_pin(),
            &legit.signing_ca_pin(),
            "man-in-the-middle",
        ],
    );
    // The JWS was valid: only the pin stopped it, after a single anonymous GET.
    assert!(
        run.stderr.contains("JWS signature of cluster-info"),
        "{}",
        run.stderr
    );
    assert_eq!(only_anonymous_cluster_info(&attacker, "the attacker"), 1);
    assert!(legit.requests().is_empty());
    assert_nothing_installed(root.path());
}

// ---- (b) cluster-info without any JWS; (c) a JWS only for another token id ----

#[test]
fn cluster_info_without_a_signature_is_never_trusted() {
    let attacker = start(Config {
        cluster_info_hook: Some(Arc::new(|_, data: &mut BTreeMap<String, String>| {
            data.retain(|k, _| !k.starts_with("jws-kubeconfig-"));
        })),
        ..Config::default()
    });
    let (run, root) = join(
        &attacker.endpoint(),
        &[attacker.signing_ca_pin()],
        &["--discovery-timeout", "2s"],
    );
    assert_refused(
        &run,
        5,
        &[
            "could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\"",
            "kubeadm token create",
        ],
    );
    // It kept asking (the signer may lag), anonymously, and never trusted the content.
    assert!(only_anonymous_cluster_info(&attacker, "the attacker") >= 5);
    assert!(!run.stderr.contains("matches the pinned hash"));
    assert_nothing_installed(root.path());
}

#[test]
fn a_signature_for_another_token_id_only_is_not_ours() {
    let attacker = start(Config {
        tokens: vec![TokenSpec::new("zzzzzz", "0123456789zzzzzz")],
        ..Config::default()
    });
    let (run, root) = join(
        &attacker.endpoint(),
        &[attacker.signing_ca_pin()],
        &["--discovery-timeout", "2s"],
    );
    assert_refused(
        &run,
        5,
        &[
            "for token ID \"abcdef\"",
            "unknown to this cluster or has expired",
        ],
    );
    assert!(only_anonymous_cluster_info(&attacker, "the attacker") >= 5);
    assert_nothing_installed(root.path());
}

#[test]
fn a_signature_under_our_id_but_another_secret_fails_the_jws() {
    // The attacker guessed the token id (it is not secret) and signs with a secret of its own.
    let attacker = start(Config {
        cluster_info_hook: Some(Arc::new(|_, data: &mut BTreeMap<String, String>| {
            if let Some(kc) = data.get("kubeconfig").cloned() {
                data.insert(
                    "jws-kubeconfig-abcdef".into(),
                    kubejoin_testcp::compute_detached_signature(&kc, "abcdef", "notoursecret0000"),
                );
            }
        })),
        ..Config::default()
    });
    let (run, root) = join(&attacker.endpoint(), &[attacker.signing_ca_pin()], &[]);
    assert_refused(
        &run,
        3,
        &[
            "failed to verify JWS signature",
            "can't trust this API Server",
        ],
    );
    assert_eq!(only_anonymous_cluster_info(&attacker, "the attacker"), 1);
    assert_nothing_installed(root.path());
}

// ---- (d) valid JWS, pinned CA, but the kubeconfig swapped between the two fetches ----

#[test]
fn a_kubeconfig_swapped_between_the_fetches_is_refused() {
    let legit = start(Config::default());
    // The attacker intercepts the first connection. It serves the real cluster CA (public, so
    // the pin matches) with a `server:` of its choosing, signed with the stolen token. The
    // second, TLS-verified fetch can only succeed against the real API server, which serves the
    // real kubeconfig: the two differ.
    let evil = kubejoin_testcp::kubeconfig::cluster_info_kubeconfig(
        &legit.ca_pem(),
        "https://evil.example:6443",
        true,
    );
    let attacker = start(Config {
        cluster_info_hook: Some(Arc::new(move |_, data: &mut BTreeMap<String, String>| {
            data.insert("kubeconfig".into(), evil.clone());
            data.insert(
                "jws-kubeconfig-abcdef".into(),
                kubejoin_testcp::compute_detached_signature(&evil, "abcdef", SECRET),
            );
        })),
        ..Config::default()
    });
    let proxy = Proxy::start(vec![attacker.addr(), legit.addr()]);
    let (run, root) = join(&proxy.addr.to_string(), &[legit.signing_ca_pin()], &[]);
    assert_refused(
        &run,
        3,
        &["(using validated TLS) was different from the first"],
    );
    // The JWS and the pin passed on the attacker's copy: only the byte comparison caught it.
    assert!(
        run.stderr.contains("matches the pinned hash"),
        "{}",
        run.stderr
    );
    assert_eq!(only_anonymous_cluster_info(&attacker, "the attacker"), 1);
    assert_eq!(only_anonymous_cluster_info(&legit, "the real cluster"), 1);
    assert_nothing_installed(root.path());
}

// ---- (d') the same, with the impostor naming itself as the server ----

#[test]
fn a_kubeconfig_naming_the_impostor_as_server_never_gets_the_token() {
    // The impostor serves the real cluster CA (public, so the pin matches) in a kubeconfig whose
    // `server:` is the impostor itself, signed with the stolen token. `server:` is then the
    // endpoint, so kubejoin makes no verified re-fetch of cluster-info: the TLS bootstrap's first
    // request goes to that address over TLS verified against the pinned CA, which the impostor
    // cannot pass, so the token is never sent to it.
    let legit = start(Config::default());
    let me: Arc<std::sync::OnceLock<String>> = Arc::default();
    let (me2, ca) = (me.clone(), legit.ca_pem());
    let attacker = start(Config {
        cluster_info_hook: Some(Arc::new(move |_, data: &mut BTreeMap<String, String>| {
            let server = me2.get().cloned().unwrap_or_default();
            let evil = kubejoin_testcp::kubeconfig::cluster_info_kubeconfig(&ca, &server, true);
            data.insert(
                "jws-kubeconfig-abcdef".into(),
                kubejoin_testcp::compute_detached_signature(&evil, "abcdef", SECRET),
            );
            data.insert("kubeconfig".into(), evil);
        })),
        ..Config::default()
    });
    me.set(attacker.url()).unwrap();
    let (run, root) = join(&attacker.endpoint(), &[legit.signing_ca_pin()], &[]);
    assert_refused(
        &run,
        3,
        &[
            &attacker.url(),
            "TLS verification failed: invalid peer certificate",
        ],
    );
    // The JWS and the pin passed on the impostor's copy; the handshake stopped it.
    assert!(
        run.stderr.contains("matches the pinned hash"),
        "{}",
        run.stderr
    );
    assert_eq!(only_anonymous_cluster_info(&attacker, "the attacker"), 1);
    assert!(legit.requests().is_empty());
    assert!(run.took < Duration::from_secs(5), "{:?}", run.took);
    assert_nothing_installed(root.path());
}

// ---- (e) a server certificate for another name on the verified fetch ----

#[test]
fn a_certificate_for_another_name_fails_the_verified_fetch() {
    // 127.0.0.2 reaches the server (all of 127/8 is loopback) but is not in its certificate.
    let server = start(Config {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..Config::default()
    });
    let endpoint = format!("127.0.0.2:{}", server.addr().port());
    let (run, root) = join(&endpoint, &[server.signing_ca_pin()], &[]);
    assert_refused(
        &run,
        3,
        &[
            &format!("the API server at {endpoint} presented a certificate that does not verify"),
            "certificate not valid for name \"127.0.0.2\"",
        ],
    );
    // Permanent: no second verified attempt, and the verified one never got to HTTP.
    assert_eq!(only_anonymous_cluster_info(&server, "the server"), 1);
    assert!(run.took < Duration::from_secs(2), "{:?}", run.took);
    assert_nothing_installed(root.path());
}

// ---- (f) TLS < 1.2, or no TLS at all ----

#[test]
fn a_tls_1_0_server_is_refused_at_the_handshake() {
    let attacker = RawServer::start("127.0.0.1:0", tls10_server_hello());
    let (run, root) = join(
        &attacker.addr.to_string(),
        &["sha256:".to_string() + &"ab".repeat(32)],
        &[],
    );
    assert_refused(&run, 3, &["TLS handshake", "TLS 1.2 and 1.3"]);
    assert!(
        run.stderr.to_lowercase().contains("incompatible")
            || run.stderr.to_lowercase().contains("version"),
        "{}",
        run.stderr
    );
    // Permanent: one connection, not a retry loop; all it got was a ClientHello.
    assert_eq!(attacker.connections.load(Ordering::SeqCst), 1);
    let got = attacker.received();
    assert_eq!(&got[..2], &[0x16, 0x03], "a TLS handshake record");
    assert_eq!(got[5], 0x01, "a ClientHello");
    assert!(!contains(&got, b"Authorization") && !contains(&got, SECRET.as_bytes()));
    assert_nothing_installed(root.path());
}

#[test]
fn a_server_that_does_not_speak_tls_is_refused() {
    let attacker = RawServer::start(
        "127.0.0.1:0",
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n".to_vec(),
    );
    let (run, root) = join(
        &attacker.addr.to_string(),
        &["sha256:".to_string() + &"ab".repeat(32)],
        &[],
    );
    assert_refused(&run, 3, &["TLS handshake"]);
    assert_eq!(attacker.connections.load(Ordering::SeqCst), 1);
    assert!(!contains(&attacker.received(), SECRET.as_bytes()));
    assert_nothing_installed(root.path());
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---- (g) a redirect to another host ----

#[test]
fn redirects_are_not_followed() {
    // Where the attacker wants the node to go: it must never be contacted.
    let elsewhere = RawServer::start("127.0.0.2:0", Vec::new());
    let location = format!("https://{}{CLUSTER_INFO}", elsewhere.addr);
    for code in [301, 302, 307, 308] {
        let attacker = start(Config {
            faults: Faults {
                requests: vec![RequestFault::always(Action::Redirect {
                    code,
                    location: location.clone(),
                })],
                ..Faults::default()
            },
            ..Config::default()
        });
        let (run, root) = join(&attacker.endpoint(), &[attacker.signing_ca_pin()], &[]);
        assert_refused(
            &run,
            3,
            &[
                &format!("with a redirect ({code}) to \"{location}\""),
                "kubejoin does not follow redirects",
            ],
        );
        assert_eq!(
            only_anonymous_cluster_info(&attacker, "the attacker"),
            1,
            "{code}"
        );
        assert_nothing_installed(root.path());
    }
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
}

// ---- (h) an oversized cluster-info ----

#[test]
fn an_oversized_cluster_info_is_not_buffered() {
    const SIZE: u64 = 512 << 20;
    for declared in [true, false] {
        let attacker = start(Config {
            faults: Faults {
                requests: vec![RequestFault::always(Action::Oversize {
                    bytes: SIZE,
                    content_length: declared,
                })],
                ..Faults::default()
            },
            ..Config::default()
        });
        let (run, root) = join(&attacker.endpoint(), &[attacker.signing_ca_pin()], &[]);
        let expect = if declared {
            "the answer announces 536870912 bytes"
        } else {
            "the answer is larger than 1048576 bytes"
        };
        assert_refused(&run, 3, &["is unusable", expect]);
        // Memory: a 512 MiB body must not have been held; kubejoin stays small. VmHWM is a
        // high-water mark, so a sample taken any time after the peak sees it; buffering the
        // body would take far longer than the 2 ms between samples.
        let peak = run.peak_kib.expect("VmHWM was sampled");
        eprintln!("peak RSS {peak} KiB (declared length: {declared})");
        assert!(
            peak < 64 * 1024,
            "peak RSS {peak} KiB (declared: {declared})"
        );
        // And it stopped reading: the server produced a small fraction of the body.
        let sent: u64 = attacker.requests().iter().map(|r| r.response_bytes).sum();
        eprintln!("{sent} bytes left the attacker");
        assert!(
            sent < 32 << 20,
            "{sent} bytes left the attacker (declared: {declared})"
        );
        assert_eq!(only_anonymous_cluster_info(&attacker, "the attacker"), 1);
        assert_nothing_installed(root.path());
    }
}

// ---- (i) no pin and no explicit opt-in ----

#[test]
fn no_pin_without_the_unsafe_opt_in_is_refused_before_any_request() {
    let server = start(Config::default());
    let (run, root) = join(&server.endpoint(), &[], &[]);
    assert_refused(
        &run,
        2,
        &[
            "without caCertHashes can be unsafe",
            "--discovery-token-unsafe-skip-ca-verification",
        ],
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_nothing_installed(root.path());
}

// ---- (j) a second CA in cluster-info: trust is only what was pinned ----

/// The cluster CAs of a PEM bundle, re-encoded as kubejoin installs them (DER → PEM).
fn reencoded(pem: &str) -> String {
    let ders = kubejoin::pki::pem::certs_from_pem(pem.as_bytes()).unwrap();
    String::from_utf8(kubejoin::pki::pem::pem_bundle(&ders)).unwrap()
}

/// The `certificate-authority-data` of the kubeconfig at `path`, decoded.
fn kubeconfig_ca(path: &Path) -> String {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path).unwrap();
    let b64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap_or_else(|| panic!("no CA data in {text}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn a_second_ca_in_cluster_info_does_not_bypass_the_pin() {
    // The attack of issue 13: the attacker holds the bootstrap token (a leaked join line) and
    // the real CA's certificate (cluster-info is anonymous). It publishes cluster-info with the
    // bundle [real CA, attacker CA], signed with the token, `server:` = the endpoint itself, and
    // serves TLS with a certificate from its own CA. The pin matches through the real CA; a
    // client that then trusts the whole bundle (kubeadm does) sends the attacker its token.
    let legit = start(Config::default());
    let slot: Arc<std::sync::OnceLock<(String, String)>> = Arc::default();
    let (slot2, real_ca) = (slot.clone(), legit.ca_pem());
    let attacker = start(Config {
        cluster_info_hook: Some(Arc::new(move |_, data: &mut BTreeMap<String, String>| {
            let Some((server, own_ca)) = slot2.get() else {
                return;
            };
            let bundle = format!("{real_ca}{own_ca}");
            let evil = kubejoin_testcp::kubeconfig::cluster_info_kubeconfig(&bundle, server, true);
            data.insert(
                "jws-kubeconfig-abcdef".into(),
                kubejoin_testcp::compute_detached_signature(&evil, "abcdef", SECRET),
            );
            data.insert("kubeconfig".into(), evil);
        })),
        ..Config::default()
    });
    slot.set((attacker.url(), attacker.ca_pem())).unwrap();
    let evil_pin = attacker.signing_ca_pin();
    assert_ne!(evil_pin, legit.signing_ca_pin());

    // A real join and a dry run (which also reads the cluster configuration with the token).
    let mut seen = 0;
    for extra in [&[][..], &["--dry-run"][..]] {
        let (run, root) = join(&attacker.endpoint(), &[legit.signing_ca_pin()], extra);
        assert_refused(
            &run,
            3,
            &[
                &format!("presented a certificate issued by CA {evil_pin}"),
                "not pinned",
                &format!("--discovery-token-ca-cert-hash {evil_pin}"),
            ],
        );
        // The JWS and the pin passed (through the real CA); the unpinned CA was flagged and
        // the handshake of the first token-bearing request refused the attacker's certificate.
        assert!(
            run.stderr.contains("matches the pinned hash"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains(&format!("also lists CA {evil_pin}, which is not pinned")),
            "{}",
            run.stderr
        );
        assert_nothing_installed(root.path());
        // The attacker's own log: one anonymous cluster-info per run, never the token.
        seen += 1;
        assert_eq!(only_anonymous_cluster_info(&attacker, "the attacker"), seen);
    }
    assert!(legit.requests().is_empty());
}

#[test]
fn ca_rotation_with_both_cas_pinned_trusts_and_installs_both() {
    // cluster-info lists [old CA, new CA]; the API server's certificate is from the new one.
    let cp = start(Config {
        ca_rotation: true,
        ..Config::default()
    });
    let pins = cp.ca_pins();
    assert_eq!(pins.len(), 2);
    let (run, root) = join(&cp.endpoint(), &pins, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_secret_free(&run);
    // Both pinned, so both are the node's cluster CA, re-encoded from their DER.
    let want = reencoded(&cp.ca_pem());
    assert_eq!(
        kubejoin::pki::pem::certs_from_pem(want.as_bytes())
            .unwrap()
            .len(),
        2
    );
    let ca_crt = std::fs::read_to_string(root.path().join("etc/kubernetes/pki/ca.crt")).unwrap();
    assert_eq!(ca_crt, want);
    assert_eq!(
        kubeconfig_ca(&root.path().join("etc/kubernetes/kubelet.conf")),
        want
    );
    assert!(
        !run.stderr.contains("which is not pinned"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unpinned_ca_of_the_bundle_is_neither_trusted_nor_installed() {
    // The same rotation bundle, only the serving (new) CA pinned: the join succeeds and the
    // old CA is reported, not trusted, not installed.
    let cp = start(Config {
        ca_rotation: true,
        ..Config::default()
    });
    let (old, new) = (cp.ca_pins()[0].clone(), cp.signing_ca_pin());
    assert_ne!(old, new);
    let (run, root) = join(&cp.endpoint(), std::slice::from_ref(&new), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains(&format!("also lists CA {old}, which is not pinned")),
        "{}",
        run.stderr
    );
    let ders = kubejoin::pki::pem::certs_from_pem(cp.ca_pem().as_bytes()).unwrap();
    let signing: Vec<Vec<u8>> = ders
        .into_iter()
        .filter(|d| {
            kubejoin::pki::pin::CaPin::of_cert_der(d)
                .unwrap()
                .to_string()
                == new
        })
        .collect();
    let want = String::from_utf8(kubejoin::pki::pem::pem_bundle(&signing)).unwrap();
    let ca_crt = std::fs::read_to_string(root.path().join("etc/kubernetes/pki/ca.crt")).unwrap();
    assert_eq!(ca_crt, want, "ca.crt holds only the pinned certificate");
    assert_eq!(
        kubeconfig_ca(&root.path().join("etc/kubernetes/kubelet.conf")),
        want
    );
    let (run, _) = join(&cp.endpoint(), &[new], &["--dry-run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "{old}  <- NOT pinned: not trusted, would not be installed"
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn a_rotation_with_only_the_old_ca_pinned_is_refused_by_name() {
    // The user pinned the CA that is being retired; the API server already serves from the new
    // one, which cluster-info lists: refused before the token is sent, naming the new CA.
    let cp = start(Config {
        ca_rotation: true,
        ..Config::default()
    });
    let (old, new) = (cp.ca_pins()[0].clone(), cp.signing_ca_pin());
    let (run, root) = join(&cp.endpoint(), &[old], &[]);
    assert_refused(
        &run,
        3,
        &[
            &format!("presented a certificate issued by CA {new}"),
            &format!("add it with --discovery-token-ca-cert-hash {new}"),
        ],
    );
    assert_eq!(only_anonymous_cluster_info(&cp, "the cluster"), 1);
    assert_nothing_installed(root.path());
}

#[test]
fn the_unsafe_skip_still_trusts_the_whole_bundle_loudly() {
    let cp = start(Config {
        ca_rotation: true,
        ..Config::default()
    });
    let (run, root) = join(
        &cp.endpoint(),
        &[],
        &["--discovery-token-unsafe-skip-ca-verification"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("THE CLUSTER CA WAS NOT VERIFIED")
            && run.stderr.contains("trusting ALL 2 certificate(s)"),
        "{}",
        run.stderr
    );
    let ca_crt = std::fs::read_to_string(root.path().join("etc/kubernetes/pki/ca.crt")).unwrap();
    assert_eq!(ca_crt, reencoded(&cp.ca_pem()));
}

#[test]
fn the_tls_bootstrap_goes_on_over_the_discovery_connection_once_its_certificate_is_verified() {
    // cluster-info names the endpoint itself (kubeadm's usual): the connection the anonymous
    // cluster-info came over carries the bootstrap on, since the certificate it was made with
    // passes the pinned CA; one TCP and TLS handshake per join instead of two.
    let cp = start(Config::default());
    let (run, _root) = join(&cp.endpoint(), &[cp.signing_ca_pin()], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_secret_free(&run);
    assert!(
        run.stderr
            .contains("the TLS bootstrap goes on over that connection"),
        "{}",
        run.stderr
    );
    let reqs = cp.requests();
    let first = &reqs[0];
    assert_eq!(
        (first.path.as_str(), first.authorization),
        (CLUSTER_INFO, false)
    );
    let with_token: Vec<_> = reqs.iter().filter(|r| r.authorization).collect();
    assert!(!with_token.is_empty(), "{reqs:#?}");
    // The first token-bearing request (the cluster configuration) on the same connection.
    assert_eq!(with_token[0].connection, first.connection, "{reqs:#?}");
    assert!(
        with_token[0].path.ends_with("/configmaps/kubeadm-config"),
        "{reqs:#?}"
    );
    // One handshake for the whole join: every request but the node's own (client certificate,
    // after the join) came over it.
    let connections: std::collections::BTreeSet<u64> = reqs
        .iter()
        .filter(|r| r.user != "system:node:mitm-node")
        .map(|r| r.connection)
        .collect();
    assert_eq!(connections.len(), 1, "{reqs:#?}");
}
