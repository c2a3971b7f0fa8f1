//! Fault injection: each fault, observed from the outside with an independent client (ureq, or a
//! raw TCP socket), so these tests prove the server really misbehaves the way it says. Every
//! test is bounded: short faults, client timeouts, loops with deadlines.

// Test code (and its helpers outside #[test] fns) panics on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{csr_body, fixture, make_csr, wait_for, Client, CSRS, TOKEN};
use kubejoin_testcp::{
    start, Action, Config, DownMode, Faults, Handle, InFlightLimit, RequestFault, RequestRecord,
    Restart, WatchCut,
};
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use ureq::tls::TlsConfig;

const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
const KUBE_PUBLIC: &str = "/api/v1/namespaces/kube-public";
const KUBE_SYSTEM_CONFIGMAPS: &str = "/api/v1/namespaces/kube-system/configmaps";

fn with_faults(faults: Faults) -> Handle {
    start(Config {
        faults,
        ..Config::default()
    })
    .unwrap()
}

/// An anonymous, unverified client that reports statuses as they are, follows no redirect and
/// gives up after `timeout`.
fn raw_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().disable_verification(true).build())
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

fn records(cp: &Handle, path: &str) -> Vec<RequestRecord> {
    cp.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

// ---- down ----

#[test]
fn down_refuses_connections_then_comes_up() {
    let t0 = Instant::now();
    let cp = with_faults(Faults {
        down_for: Duration::from_millis(800),
        ..Faults::default()
    });
    // start() returns at once: the port is known, and refused.
    assert!(t0.elapsed() < Duration::from_millis(500));
    let err = TcpStream::connect(cp.addr()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    // Then it comes up by itself, on the same port.
    let up = wait_for(Duration::from_secs(5), "the server to come up", || {
        TcpStream::connect(cp.addr()).ok().map(|_| Instant::now())
    });
    assert!(up - t0 >= Duration::from_millis(800), "{:?}", up - t0);
    assert_eq!(Client::insecure(&cp).get("/healthz").status, 200);
}

#[test]
fn down_with_reset_accepts_and_resets() {
    let cp = with_faults(Faults {
        down_for: Duration::from_millis(800),
        down_mode: DownMode::Reset,
        ..Faults::default()
    });
    // The TCP handshake completes (the kernel accepts), and the first read sees a reset. (No
    // write first: a write racing the RST would consume the error, and the read see EOF.)
    let mut s = TcpStream::connect(cp.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    // Nothing reached HTTP.
    assert!(cp.requests().is_empty());
    wait_for(Duration::from_secs(5), "the server to come up", || {
        raw_agent(Duration::from_secs(2))
            .get(format!("{}/healthz", cp.url()))
            .call()
            .ok()
            .filter(|r| r.status() == 200)
    });
}

// ---- status faults ----

#[test]
fn first_requests_under_a_prefix_get_503_with_retry_after() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::first(
            3,
            Action::Status {
                code: 503,
                retry_after: Some("2".into()),
            },
        )
        .under(KUBE_PUBLIC)],
        ..Faults::default()
    });
    let agent = raw_agent(Duration::from_secs(5));
    // Other paths are not charged.
    assert_eq!(
        agent
            .get(format!("{}/healthz", cp.url()))
            .call()
            .unwrap()
            .status(),
        200
    );
    for _ in 0..3 {
        let r = agent
            .get(format!("{}{CLUSTER_INFO}", cp.url()))
            .call()
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(
            r.headers().get("retry-after").unwrap().to_str().unwrap(),
            "2"
        );
        let body: serde_json::Value =
            serde_json::from_str(&r.into_body().read_to_string().unwrap()).unwrap();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "ServiceUnavailable");
        assert_eq!(body["code"], 503);
        assert_eq!(body["details"]["retryAfterSeconds"], 2);
    }
    let r = agent
        .get(format!("{}{CLUSTER_INFO}", cp.url()))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200, "the budget is spent");
    let recs = records(&cp, CLUSTER_INFO);
    assert_eq!(recs.len(), 4);
    assert!(recs[..3]
        .iter()
        .all(|r| r.status == 503 && r.fault.as_deref() == Some("status 503")));
    assert_eq!(recs[3].fault, None);
}

#[test]
fn status_faults_500_and_429_with_an_http_date() {
    let date = "Wed, 21 Oct 2099 07:28:00 GMT";
    let cp = with_faults(Faults {
        requests: vec![
            RequestFault::first(
                1,
                Action::Status {
                    code: 500,
                    retry_after: None,
                },
            ),
            RequestFault::first(
                1,
                Action::Status {
                    code: 429,
                    retry_after: Some(date.into()),
                },
            ),
        ],
        ..Faults::default()
    });
    let agent = raw_agent(Duration::from_secs(5));
    let get = || agent.get(format!("{}/version", cp.url())).call().unwrap();
    let r = get();
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("retry-after").is_none());
    let r = get();
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").unwrap().to_str().unwrap(),
        date
    );
    let body: serde_json::Value =
        serde_json::from_str(&r.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(get().status(), 200);
}

// ---- broken bodies ----

/// One HTTP/1.1 GET over rustls on a plain socket, verified against the cluster CA: returns
/// every byte received and how the stream ended (`Ok` for a clean EOF), so that a TCP reset is
/// seen as such (higher-level clients fold it into "disconnected").
fn raw_get(cp: &Handle, path: &str) -> (Vec<u8>, std::io::Result<()>) {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(common::ca_der(cp).into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(cp.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
}

#[test]
fn reset_mid_body_sends_half_then_resets() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::first(1, Action::ResetMidBody).under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let (got, end) = raw_get(&cp, CLUSTER_INFO);
    let err = end.expect_err("the stream must not end cleanly");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let declared: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        body.len(),
        declared / 2,
        "exactly half the body came through"
    );
    let rec = &records(&cp, CLUSTER_INFO)[0];
    assert_eq!(rec.fault.as_deref(), Some("reset mid-body"));
    // The next request is served whole, and ends cleanly.
    let (got, end) = raw_get(&cp, CLUSTER_INFO);
    assert!(end.is_ok(), "{end:?}");
    let text = String::from_utf8_lossy(&got);
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert!(
        serde_json::from_str::<serde_json::Value>(body).is_ok(),
        "{body}"
    );
}

#[test]
fn truncated_json_is_a_complete_message_with_half_a_document() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::first(2, Action::TruncateJson).under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let whole = Client::insecure(&cp).get("/version").body;
    assert!(serde_json::from_str::<serde_json::Value>(&whole).is_ok());
    let agent = raw_agent(Duration::from_secs(5));
    for _ in 0..2 {
        let r = agent
            .get(format!("{}{CLUSTER_INFO}", cp.url()))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        let declared: usize = r
            .headers()
            .get("content-length")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = r.into_body().read_to_string().unwrap();
        assert_eq!(body.len(), declared, "the message itself is complete");
        assert!(body.starts_with("{\"kind\":\"ConfigMap\""), "{body}");
        let e = serde_json::from_str::<serde_json::Value>(&body).unwrap_err();
        assert!(e.is_eof(), "{e}");
    }
    let body = Client::insecure(&cp).get(CLUSTER_INFO).body;
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
    let recs = records(&cp, CLUSTER_INFO);
    assert_eq!(
        recs.iter()
            .filter(|r| r.fault.as_deref() == Some("truncated json"))
            .count(),
        2
    );
}

#[test]
fn stalled_requests_are_never_answered_and_closed_after_max() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::first(
            2,
            Action::Stall {
                max: Duration::from_millis(1500),
            },
        )],
        ..Faults::default()
    });
    // A client with a short timeout gives up first.
    let t0 = Instant::now();
    let err = raw_agent(Duration::from_millis(400))
        .get(format!("{}/healthz", cp.url()))
        .call()
        .unwrap_err();
    assert!(matches!(err, ureq::Error::Timeout(_)), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(1));
    // A patient one sees the connection closed without an answer once `max` is up.
    let t0 = Instant::now();
    let err = raw_agent(Duration::from_secs(10))
        .get(format!("{}/healthz", cp.url()))
        .call()
        .unwrap_err();
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(5),
        "{waited:?}: {err}"
    );
    assert!(!matches!(err, ureq::Error::Timeout(_)), "{err}");
    let stalled: Vec<_> = records(&cp, "/healthz");
    assert_eq!(stalled.len(), 2);
    assert!(stalled
        .iter()
        .all(|r| r.status == 0 && r.fault.as_deref() == Some("stall")));
    assert_eq!(Client::insecure(&cp).get("/healthz").status, 200);
}

#[test]
fn delayed_requests_get_the_real_answer_late() {
    const LATE: Duration = Duration::from_millis(400);
    let cp = with_faults(Faults {
        requests: vec![RequestFault::first(1, Action::Delay { by: LATE }).under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let client = Client::insecure(&cp);
    let t0 = Instant::now();
    let late = client.get(CLUSTER_INFO);
    let waited = t0.elapsed();
    assert_eq!(late.status, 200);
    assert!(
        waited >= LATE && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // The very answer a prompt request gets, and only the first request was delayed.
    let t0 = Instant::now();
    let prompt = client.get(CLUSTER_INFO);
    assert!(t0.elapsed() < LATE, "{:?}", t0.elapsed());
    assert_eq!(prompt.status, 200);
    assert_eq!(late.body, prompt.body);
    let seen = records(&cp, CLUSTER_INFO);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].fault.as_deref(), Some("delay"));
    assert_eq!(seen[0].status, 200);
    assert_eq!(seen[1].fault, None);
}

// ---- redirects and oversized bodies ----

#[test]
fn redirects_point_elsewhere() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::always(Action::Redirect {
            code: 302,
            location: "https://127.0.0.2:6443/elsewhere".into(),
        })
        .under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let r = raw_agent(Duration::from_secs(5))
        .get(format!("{}{CLUSTER_INFO}", cp.url()))
        .call()
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers().get("location").unwrap().to_str().unwrap(),
        "https://127.0.0.2:6443/elsewhere"
    );
    assert_eq!(
        records(&cp, CLUSTER_INFO)[0].fault.as_deref(),
        Some("redirect 302")
    );
}

fn read_some(r: ureq::http::Response<ureq::Body>, want: usize) -> usize {
    let mut reader = r.into_body().into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < want {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

#[test]
fn oversized_bodies_are_generated_lazily() {
    const SIZE: u64 = 512 << 20;
    for declared in [true, false] {
        let cp = with_faults(Faults {
            requests: vec![RequestFault::always(Action::Oversize {
                bytes: SIZE,
                content_length: declared,
            })
            .under(CLUSTER_INFO)],
            ..Faults::default()
        });
        let r = raw_agent(Duration::from_secs(20))
            .get(format!("{}{CLUSTER_INFO}", cp.url()))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        let length = r
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_string());
        if declared {
            assert_eq!(length, Some(SIZE.to_string()));
        } else {
            assert_eq!(length, None);
            assert_eq!(
                r.headers()
                    .get("transfer-encoding")
                    .unwrap()
                    .to_str()
                    .unwrap(),
                "chunked"
            );
        }
        let got = read_some(r, 2 << 20);
        assert!(got >= 2 << 20, "{got}");
        // The client hung up after 2 MiB: the server produced only what the socket took.
        let rec = wait_for(Duration::from_secs(5), "the record", || {
            records(&cp, CLUSTER_INFO)
                .into_iter()
                .next()
                .filter(|r| r.response_bytes > 0)
        });
        assert_eq!(rec.fault.as_deref(), Some("oversize"));
        drop(cp);
        assert!(rec.response_bytes < 64 << 20, "{}", rec.response_bytes);
    }
}

// ---- concurrency cap ----

/// Holds a slot for `stall`: a request under `path` (GET, or POST with the bootstrap token and
/// `body`) that the server reads and does not answer.
fn hold(url: &str, path: &str, body: Option<Vec<u8>>) -> std::thread::JoinHandle<()> {
    let url = format!("{url}{path}");
    std::thread::spawn(move || {
        let agent = raw_agent(Duration::from_secs(5));
        let _ = match body {
            None => agent.get(&url).call(),
            Some(b) => agent
                .post(&url)
                .header("Authorization", &format!("Bearer {TOKEN}"))
                .content_type("application/json")
                .send(b),
        };
    })
}

#[test]
fn requests_beyond_the_in_flight_limit_get_429() {
    let cp = with_faults(Faults {
        max_in_flight: Some(InFlightLimit::with_default_ratio(2)),
        // Two requests that hold their slot for a while.
        requests: vec![RequestFault::first(
            2,
            Action::Stall {
                max: Duration::from_millis(1500),
            },
        )
        .under("/healthz")],
        ..Faults::default()
    });
    let url = cp.url();
    let holders: Vec<_> = (0..2).map(|_| hold(&url, "/healthz", None)).collect();
    wait_for(Duration::from_secs(5), "two requests in flight", || {
        (records(&cp, "/healthz").len() == 2).then_some(())
    });
    let agent = raw_agent(Duration::from_secs(5));
    let r = agent.get(format!("{url}/version")).call().unwrap();
    assert_eq!(r.status(), 429);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    // maxinflight.go's tooManyRequests: Retry-After "1" and net/http's http.Error, plain text.
    assert_eq!(header("retry-after").as_deref(), Some("1"));
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        r.into_body().read_to_string().unwrap(),
        "Too many requests, please try again later.\n"
    );
    for h in holders {
        h.join().unwrap();
    }
    // Slots free again.
    assert_eq!(
        agent.get(format!("{url}/version")).call().unwrap().status(),
        200
    );
    let recs = records(&cp, "/version");
    assert_eq!(recs[0].fault.as_deref(), Some("max in flight"));
    assert_eq!(recs[1].fault, None);
}

/// kube-apiserver's filter (maxinflight.go, v1.28) keeps two pools, reads (get, list) and
/// writes (every other verb), lets watches through, runs after authentication (a rejected
/// token gets its 401 without a slot) and never turns `system:masters` away.
#[test]
fn the_in_flight_limit_has_a_read_and_a_write_pool_and_sits_after_authentication() {
    let stall = |path: &str| {
        RequestFault::first(
            1,
            Action::Stall {
                max: Duration::from_millis(2500),
            },
        )
        .under(path)
    };
    let cp = with_faults(Faults {
        max_in_flight: Some(InFlightLimit {
            limit: 1,
            mutating: 1,
            retry_after_secs: 1,
        }),
        requests: vec![stall("/healthz"), stall(CSRS)],
        ..Faults::default()
    });
    let url = cp.url();
    let (pem, _key) = make_csr("system:node:n1", &["system:nodes"], &[]);
    let body = serde_json::to_vec(&csr_body(
        Some("n1"),
        &pem,
        &["digital signature", "client auth"],
    ))
    .unwrap();
    // The read pool full: a write still passes.
    let reader = hold(&url, "/healthz", None);
    wait_for(Duration::from_secs(5), "a read in flight", || {
        (records(&cp, "/healthz").len() == 1).then_some(())
    });
    let bootstrap = Client::bootstrap(&cp);
    assert_eq!(bootstrap.get("/version").status, 429);
    let (pem2, _key2) = make_csr("system:node:n2", &["system:nodes"], &[]);
    // This POST is the first under CSRS: the stall takes it and its write slot stays taken.
    let writer = hold(&url, CSRS, Some(body));
    wait_for(Duration::from_secs(5), "a write in flight", || {
        (!records(&cp, CSRS).is_empty()).then_some(())
    });
    // Both pools full now.
    let second = bootstrap.post(
        CSRS,
        &csr_body(Some("n2"), &pem2, &["digital signature", "client auth"]),
    );
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(bootstrap.get("/version").status, 429);
    // A watch is long-running: no slot, no 429.
    let mut watch = bootstrap.watch(&format!("{CSRS}?watch=true&timeoutSeconds=1"));
    while watch.next().is_some() {}
    // Rejected credentials: 401 from authentication, which runs first.
    let wrong = Client::token(&cp, "zzzzzz.0123456789abcdef");
    let r = wrong.get("/version");
    assert_eq!(r.status, 401, "{}", r.body);
    // system:masters is served whatever the pools hold.
    assert_eq!(Client::admin(&cp).get("/version").status, 200);
    reader.join().unwrap();
    writer.join().unwrap();
    // Both pools free again: the same write is served.
    let again = bootstrap.post(
        CSRS,
        &csr_body(Some("n2"), &pem2, &["digital signature", "client auth"]),
    );
    assert_eq!(again.status, 201, "{}", again.body);
    let faults: Vec<Option<String>> = cp
        .requests()
        .into_iter()
        .filter(|r| r.path == "/version" || r.path == CSRS)
        .map(|r| r.fault)
        .collect();
    assert_eq!(
        faults,
        [
            Some("max in flight".into()), // GET /version, reads full
            Some("stall".into()),         // the held POST
            Some("max in flight".into()), // the second POST, writes full
            Some("max in flight".into()), // GET /version
            None,                         // wrong token: 401
            None,                         // admin
            None,                         // the POST again
        ]
    );
}

// ---- CSR watch and signer ----

/// Creates a kubelet CSR with the bootstrap token; returns its name.
fn create_csr(cp: &Handle, name: &str) -> String {
    let (pem, _key) = make_csr(&format!("system:node:{name}"), &["system:nodes"], &[]);
    let reply = Client::bootstrap(cp).post(
        CSRS,
        &csr_body(Some(name), &pem, &["digital signature", "client auth"]),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    name.to_string()
}

#[test]
fn watch_streams_are_cut_every_m_events() {
    let cp = start(Config {
        approval: kubejoin_testcp::Approval::Manual,
        faults: Faults {
            watch_cut: Some(WatchCut {
                every: 2,
                abrupt: false,
            }),
            ..Faults::default()
        },
        ..Config::default()
    })
    .unwrap();
    let a = create_csr(&cp, "node-a");
    create_csr(&cp, "node-b");
    create_csr(&cp, "node-c");
    let admin = Client::admin(&cp);
    let mut w = admin.watch(&format!("{CSRS}?watch=true"));
    let first = w.next().unwrap();
    let second = w.next().unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(second["type"], "ADDED");
    assert!(w.next().is_none(), "the stream ends cleanly after 2 events");
    // Resuming from the last version seen goes on where it stopped, and is cut again.
    let rv = second["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    cp.approve(&a).unwrap();
    let mut w = admin.watch(&format!("{CSRS}?watch=true&resourceVersion={rv}"));
    let e1 = w.next().unwrap();
    let e2 = w.next().unwrap();
    assert_eq!(e1["object"]["metadata"]["name"], "node-c");
    assert_eq!(e2["type"], "MODIFIED");
    assert!(w.next().is_none());
}

#[test]
fn abrupt_watch_cuts_break_the_connection() {
    let cp = start(Config {
        approval: kubejoin_testcp::Approval::Manual,
        faults: Faults {
            watch_cut: Some(WatchCut {
                every: 1,
                abrupt: true,
            }),
            ..Faults::default()
        },
        ..Config::default()
    })
    .unwrap();
    create_csr(&cp, "node-a");
    let url = format!("{}{CSRS}?watch=true", cp.url());
    let (cert, key) = cp.issue_client_cert("kubernetes-admin", &["system:masters"]);
    let tls = TlsConfig::builder()
        .disable_verification(true)
        .client_cert(Some(ureq::tls::ClientCert::new_with_certs(
            &[ureq::tls::Certificate::from_pem(cert.as_bytes()).unwrap()],
            ureq::tls::PrivateKey::from_pem(key.as_bytes()).unwrap(),
        )))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let r = agent.get(&url).call().unwrap();
    let mut reader = r.into_body().into_reader();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match reader.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e),
        }
    };
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        end.is_some(),
        "an abrupt cut is an error, not a clean end of the chunked stream"
    );
}

#[test]
fn certificate_comes_later_than_the_approval() {
    let delay = Duration::from_millis(800);
    let cp = with_faults(Faults {
        certificate_delay: delay,
        ..Faults::default()
    });
    let admin = Client::admin(&cp);
    let mut w = admin.watch(&format!("{CSRS}?watch=true"));
    create_csr(&cp, "node-a");
    let added = w.next().unwrap();
    assert_eq!(added["type"], "ADDED");
    let approved = w.next().unwrap();
    let t_approved = Instant::now();
    assert_eq!(approved["type"], "MODIFIED");
    assert_eq!(
        approved["object"]["status"]["conditions"][0]["type"],
        "Approved"
    );
    assert!(approved["object"]["status"]["certificate"].is_null());
    let issued = w.next().unwrap();
    let gap = t_approved.elapsed();
    assert_eq!(issued["type"], "MODIFIED");
    assert!(issued["object"]["status"]["certificate"].is_string());
    assert!(
        gap >= delay - Duration::from_millis(100) && gap < Duration::from_secs(5),
        "{gap:?}"
    );
}

// ---- startup window and restarts ----

const KUBELET_CONFIG: &str = "/api/v1/namespaces/kube-system/configmaps/kubelet-config";

/// The 403 a kube-apiserver with an empty RBAC cache gives the anonymous cluster-info GET: the
/// captured anonymous 403 (on kubeadm-config) with this ConfigMap's name and namespace.
fn anonymous_cluster_info_403() -> serde_json::Value {
    let mut v = fixture("error-403-anonymous-kubeadm-config.json");
    v["message"] = serde_json::Value::String(
        v["message"]
            .as_str()
            .unwrap()
            .replace("\"kubeadm-config\"", "\"cluster-info\"")
            .replace("\"kube-system\"", "\"kube-public\""),
    );
    v["details"]["name"] = "cluster-info".into();
    v
}

#[test]
fn the_startup_window_refuses_tokens_401_and_anonymous_403_then_serves() {
    let window = Duration::from_millis(1500);
    let t0 = Instant::now();
    let cp = with_faults(Faults {
        startup_window: window,
        ..Faults::default()
    });
    let anonymous = Client::insecure(&cp);
    let token = Client::bootstrap(&cp);
    let admin = Client::admin(&cp);

    let r = anonymous.get(CLUSTER_INFO);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json(), anonymous_cluster_info_403());
    let r = token.get(KUBELET_CONFIG);
    assert_eq!(r.status, 401, "{}", r.body);
    // Byte for byte what a real one sends to any refused token.
    assert_eq!(r.json(), fixture("error-401-wrong-token.json"));
    let r = token.post(
        CSRS,
        &serde_json::json!({"kind": "CertificateSigningRequest"}),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    // Health and version are refused to anonymous users too (system:public-info-viewer's
    // binding is not in the cache yet).
    let r = anonymous.get("/readyz");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/readyz\""
    );
    // The superuser check needs no cache.
    assert_eq!(admin.get(KUBELET_CONFIG).status, 200);
    assert!(t0.elapsed() < window, "the test itself was too slow");

    let refused: Vec<RequestRecord> = cp
        .requests()
        .into_iter()
        .filter(|r| r.fault.as_deref() == Some("startup window"))
        .collect();
    assert_eq!(refused.len(), 4, "{refused:#?}");
    assert_eq!(
        refused.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![403, 401, 401, 403]
    );
    assert_eq!(refused[0].user, "system:anonymous");
    assert_eq!(refused[1].user, "", "a refused token is no user");
    assert!(refused[1].authorization);

    // After the window: served as usual.
    wait_for(Duration::from_secs(5), "the window to pass", || {
        (anonymous.get(CLUSTER_INFO).status == 200).then_some(())
    });
    assert!(t0.elapsed() >= window);
    assert_eq!(token.get(KUBELET_CONFIG).status, 200);
    assert_eq!(anonymous.get("/readyz").status, 200);
}

#[test]
fn the_startup_window_starts_when_the_server_listens_after_a_down_period() {
    let down = Duration::from_millis(600);
    let window = Duration::from_millis(800);
    let cp = with_faults(Faults {
        down_for: down,
        startup_window: window,
        ..Faults::default()
    });
    let anonymous = Client::insecure(&cp);
    let up = wait_for(Duration::from_secs(5), "the server to come up", || {
        TcpStream::connect(cp.addr()).ok().map(|_| Instant::now())
    });
    assert_eq!(anonymous.get(CLUSTER_INFO).status, 403);
    wait_for(Duration::from_secs(5), "the window to pass", || {
        (anonymous.get(CLUSTER_INFO).status == 200).then_some(())
    });
    assert!(up.elapsed() + Duration::from_millis(100) >= window);
}

/// A watch of every CSR, read on a thread: its events, then how it ended.
/// A watch of the CSRs read on a thread: its handle, and the count of whole lines (events) read so
/// far (a test waits on it before cutting the stream: a reset discards what the client has not
/// read yet).
fn watch_on_a_thread(
    cp: &Handle,
) -> (
    std::thread::JoinHandle<(usize, Option<std::io::Error>)>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let url = format!("{}{CSRS}?watch=true", cp.url());
    let (cert, key) = cp.issue_client_cert("kubernetes-admin", &["system:masters"]);
    let tls = TlsConfig::builder()
        .disable_verification(true)
        .client_cert(Some(ureq::tls::ClientCert::new_with_certs(
            &[ureq::tls::Certificate::from_pem(cert.as_bytes()).unwrap()],
            ureq::tls::PrivateKey::from_pem(key.as_bytes()).unwrap(),
        )))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let r = agent.get(&url).call().unwrap();
    let lines = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = lines.clone();
    let handle = std::thread::spawn(move || {
        let mut reader = r.into_body().into_reader();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            match reader.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    let whole = got.iter().filter(|b| **b == b'\n').count();
                    seen.store(whole, std::sync::atomic::Ordering::SeqCst);
                }
                Err(e) => break Some(e),
            }
        };
        (String::from_utf8_lossy(&got).lines().count(), end)
    });
    (handle, lines)
}

#[test]
fn a_restart_refuses_then_serves_the_same_cluster_again() {
    let cp = start(Config {
        approval: kubejoin_testcp::Approval::Manual,
        faults: Faults {
            startup_window: Duration::from_millis(700),
            ..Faults::default()
        },
        ..Config::default()
    })
    .unwrap();
    // Past the first startup window, a pending CSR and an approved one, a watch open.
    wait_for(Duration::from_secs(5), "the first window to pass", || {
        (Client::bootstrap(&cp).get(KUBELET_CONFIG).status == 200).then_some(())
    });
    let pending = create_csr(&cp, "node-a");
    let approved = create_csr(&cp, "node-b");
    cp.approve(&approved).unwrap();
    let pin = cp.signing_ca_pin();
    let before = Client::admin(&cp).get(KUBELET_CONFIG).json();
    let (watch, lines) = watch_on_a_thread(&cp);
    wait_for(
        Duration::from_secs(5),
        "the watch to read both CSRs",
        || (lines.load(std::sync::atomic::Ordering::SeqCst) >= 2).then_some(()),
    );

    let down = Duration::from_millis(1000);
    let t0 = Instant::now();
    assert!(cp.restart(down), "the server went down");
    assert_eq!(cp.restarts(), 1);
    // Down: refused, and the open watch was cut.
    let err = TcpStream::connect(cp.addr()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    let (events, _end) = watch.join().unwrap();
    assert_eq!(events, 2, "the watch saw the two CSRs before the restart");
    // Up again on the same port after `down`, in a new startup window.
    let up = wait_for(Duration::from_secs(5), "the server to come back", || {
        TcpStream::connect(cp.addr()).ok().map(|_| Instant::now())
    });
    assert!(up - t0 + Duration::from_millis(50) >= down, "{:?}", up - t0);
    let token = Client::bootstrap(&cp);
    assert_eq!(token.get(KUBELET_CONFIG).status, 401);
    assert_eq!(Client::insecure(&cp).get(CLUSTER_INFO).status, 403);
    wait_for(
        Duration::from_secs(5),
        "the window after the restart to pass",
        || (token.get(KUBELET_CONFIG).status == 200).then_some(()),
    );
    // The same CA (the verified clients trust the bundle from before), tokens and objects.
    assert_eq!(cp.signing_ca_pin(), pin);
    assert_eq!(Client::admin(&cp).get(KUBELET_CONFIG).json(), before);
    let csrs = Client::admin(&cp).get(CSRS).json();
    let by_name = |n: &str| {
        csrs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["metadata"]["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} survived the restart: {csrs}"))
    };
    assert!(by_name(&pending)["status"]["conditions"].is_null());
    assert_eq!(
        by_name(&approved)["status"]["conditions"][0]["type"],
        "Approved"
    );
    assert!(by_name(&approved)["status"]["certificate"].is_string());
    // Approving after the restart still works, the controllers being the same.
    cp.approve(&pending).unwrap();
    let issued = Client::admin(&cp).get(&format!("{CSRS}/{pending}")).json();
    assert!(issued["status"]["certificate"].is_string());
}

#[test]
fn a_request_can_set_off_a_restart_and_is_cut_by_it() {
    let down = Duration::from_millis(800);
    let cp = with_faults(Faults {
        restarts: vec![Restart::on_request(KUBE_SYSTEM_CONFIGMAPS, down).nth(2)],
        ..Faults::default()
    });
    let token = Client::bootstrap(&cp);
    assert_eq!(token.get(KUBELET_CONFIG).status, 200);
    assert_eq!(cp.restarts(), 0);
    // The second request under the prefix is not answered: the connection closes.
    let t0 = Instant::now();
    let cut = raw_agent(Duration::from_secs(5))
        .get(format!("{}{KUBELET_CONFIG}", cp.url()))
        .call();
    assert!(cut.is_err(), "{cut:?}");
    wait_for(Duration::from_secs(2), "the port to refuse", || {
        TcpStream::connect(cp.addr())
            .err()
            .filter(|e| e.kind() == ErrorKind::ConnectionRefused)
    });
    wait_for(Duration::from_secs(5), "the server to come back", || {
        TcpStream::connect(cp.addr()).ok()
    });
    assert!(t0.elapsed() + Duration::from_millis(50) >= down);
    assert_eq!(cp.restarts(), 1);
    // Once only: the third request is answered.
    assert_eq!(token.get(KUBELET_CONFIG).status, 200);
    assert_eq!(cp.restarts(), 1);
    let recs = records(&cp, KUBELET_CONFIG);
    assert_eq!(
        recs.iter().map(|r| r.fault.as_deref()).collect::<Vec<_>>(),
        vec![None, Some("restart"), None]
    );
}

#[test]
fn a_restart_can_be_set_off_by_the_clock() {
    let t0 = Instant::now();
    let cp = with_faults(Faults {
        restarts: vec![Restart::after(
            Duration::from_millis(400),
            Duration::from_millis(600),
        )],
        ..Faults::default()
    });
    assert_eq!(Client::insecure(&cp).get("/healthz").status, 200);
    let refused = wait_for(Duration::from_secs(3), "the restart", || {
        TcpStream::connect(cp.addr())
            .err()
            .filter(|e| e.kind() == ErrorKind::ConnectionRefused)
            .map(|_| Instant::now())
    });
    assert!(
        refused - t0 >= Duration::from_millis(400),
        "{:?}",
        refused - t0
    );
    wait_for(Duration::from_secs(5), "the server to come back", || {
        TcpStream::connect(cp.addr()).ok()
    });
    assert_eq!(Client::insecure(&cp).get("/healthz").status, 200);
    assert_eq!(cp.restarts(), 1);
}

// ---- the binary ----

#[test]
fn serve_flags_inject_faults() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubejoin-testcp"))
        .args([
            "serve",
            "--down-for",
            "700ms",
            "--fault",
            &format!("status=429,count=1,retry-after=3,path={CLUSTER_INFO}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    let mut lines = Vec::new();
    while url.is_empty() {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "{lines:?}");
        if let Some(u) = line.strip_prefix("READY ") {
            url = u.trim().to_string();
        }
        lines.push(line);
    }
    let out = lines.concat();
    assert!(out.contains("fault: down for"), "{out}");
    let addr = url.trim_start_matches("https://").to_string();
    let refused = TcpStream::connect(&addr).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    let agent = raw_agent(Duration::from_secs(3));
    let first = wait_for(Duration::from_secs(5), "the server to come up", || {
        agent.get(format!("{url}{CLUSTER_INFO}")).call().ok()
    });
    assert_eq!(first.status(), 429);
    assert_eq!(
        first
            .headers()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap(),
        "3"
    );
    assert_eq!(
        agent
            .get(format!("{url}{CLUSTER_INFO}"))
            .call()
            .unwrap()
            .status(),
        200
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_flags_set_a_startup_window_and_a_restart() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubejoin-testcp"))
        .args([
            "serve",
            "--startup-window",
            "1s",
            "--restart",
            &format!("down=800ms,path={KUBELET_CONFIG}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    let mut lines = Vec::new();
    while url.is_empty() {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "{lines:?}");
        if let Some(u) = line.strip_prefix("READY ") {
            url = u.trim().to_string();
        }
        lines.push(line);
    }
    let out = lines.concat();
    assert!(out.contains("fault: startup window of 1s"), "{out}");
    assert!(
        out.contains(&format!(
            "fault: restart on request 1 under {KUBELET_CONFIG}, down for 800ms"
        )),
        "{out}"
    );
    let agent = raw_agent(Duration::from_secs(3));
    let anonymous = |path: &str| {
        agent
            .get(format!("{url}{path}"))
            .call()
            .map(|r| r.status().as_u16())
    };
    assert_eq!(anonymous(CLUSTER_INFO).unwrap(), 403);
    let served = wait_for(Duration::from_secs(5), "the window to pass", || {
        anonymous(CLUSTER_INFO).ok().filter(|s| *s == 200)
    });
    assert_eq!(served, 200);
    // The token's first kubelet-config read sets the restart off and is cut.
    let cut = agent
        .get(format!("{url}{KUBELET_CONFIG}"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call();
    assert!(cut.is_err(), "{cut:?}");
    let addr = url.trim_start_matches("https://").to_string();
    wait_for(Duration::from_secs(2), "the port to refuse", || {
        TcpStream::connect(&addr)
            .err()
            .filter(|e| e.kind() == ErrorKind::ConnectionRefused)
    });
    // Back, in a new startup window.
    let status = wait_for(Duration::from_secs(5), "the server to come back", || {
        anonymous(CLUSTER_INFO).ok()
    });
    assert_eq!(status, 403);
    let _ = child.kill();
    let _ = child.wait();
}
