//! Discovery against the test control plane (`tests/controlplane`): every path of token, file
//! and HTTPS discovery, on loopback, through the public `kubejoin::discovery::discover`.

// Test helpers outside #[test] fns panic on setup failures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubejoin::discovery::{
    self, jws, BootstrapCredentials, Discovered, Error, Method, Mode, Options,
};
use kubejoin::error::{Class, Classify};
use kubejoin_testcp::{ClusterInfoHook, Config, Handle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "abcdef.0123456789abcdef";
const SECRET: &str = "0123456789abcdef";
/// spec §11.2 testCertPEM's pin: a CA that is not this cluster's.
const FOREIGN_PIN: &str = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3";

fn start(cfg: Config) -> Handle {
    kubejoin_testcp::start(cfg).expect("starting the test control plane")
}

fn run(opts: &Options) -> Result<Discovered, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(discovery::discover(opts))
}

fn opts(mode: Mode) -> Options {
    Options {
        mode,
        tls_bootstrap_token: None,
        timeout: Duration::from_secs(3),
        retry_interval: Duration::from_millis(100),
    }
}

fn token_opts(endpoint: &str, pins: &[String], unsafe_skip: bool) -> Options {
    opts(discovery::token_mode(endpoint, TOKEN, pins, unsafe_skip).unwrap())
}

/// The error as a user sees it (message, causes, hint) must never hold the token secret.
fn assert_secret_free(e: &Error) {
    let report = kubejoin::error::Report(e, e.hint()).to_string();
    let all = format!("{e}\n{e:?}\n{report}");
    assert!(!all.contains(SECRET), "token secret leaked: {all}");
}

fn expect_err(opts: &Options) -> Error {
    let e = run(opts).expect_err("discovery should have failed");
    assert_secret_free(&e);
    e
}

fn cluster_info_gets(h: &Handle) -> Vec<kubejoin_testcp::RequestRecord> {
    h.requests()
        .into_iter()
        .filter(|r| r.path.contains("/configmaps/cluster-info"))
        .collect()
}

/// No request that reached the server carried the bootstrap token.
fn assert_token_never_sent(h: &Handle) {
    for r in h.requests() {
        assert!(
            !r.user.contains("system:bootstrap:"),
            "request sent with the token: {r:?}"
        );
    }
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn hook(
    f: impl Fn(u64, &mut BTreeMap<String, String>) + Send + Sync + 'static,
) -> Option<ClusterInfoHook> {
    Some(Arc::new(f))
}

// ---- token discovery ----

#[test]
fn token_discovery_with_pin() {
    let h = start(Config::default());
    let d = run(&token_opts(&h.endpoint(), &h.ca_pins(), false)).unwrap();
    assert_eq!(d.server, h.url());
    assert_eq!(d.ca_pem, h.ca_pem().as_bytes());
    assert!(h
        .ca_pins()
        .contains(&d.matched_pin.clone().unwrap().to_string()));
    assert_eq!(
        d.method,
        Method::Token {
            endpoint: h.endpoint()
        }
    );
    match &d.credentials {
        BootstrapCredentials::Token(t) => assert_eq!(t.bearer(), TOKEN),
        other => panic!("unexpected credentials {other:?}"),
    }
    // cluster-info names the endpoint itself as its server: one anonymous GET; the verified
    // re-fetch is folded into the TLS bootstrap's first request (same address, same pinned CA).
    let gets = cluster_info_gets(&h);
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert!(gets.iter().all(|r| r.method == "GET" && r.status == 200));
    assert_token_never_sent(&h);
    assert!(!format!("{d:?}").contains(SECRET));
}

/// The endpoint as `localhost:<port>`: the same server (its certificate names localhost), but
/// not the address cluster-info publishes (`https://127.0.0.1:<port>`).
fn localhost_endpoint(h: &Handle) -> String {
    format!("localhost:{}", h.addr().port())
}

#[test]
fn an_endpoint_other_than_the_published_server_is_verified_by_a_second_fetch() {
    let h = start(Config::default());
    let endpoint = localhost_endpoint(&h);
    let d = run(&token_opts(&endpoint, &h.ca_pins(), false)).unwrap();
    assert_eq!(d.server, h.url());
    assert!(d.matched_pin.is_some());
    // Insecure, then verified against the pinned CA with the endpoint's name.
    let gets = cluster_info_gets(&h);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets.iter().all(|r| r.method == "GET" && r.status == 200));
    assert_token_never_sent(&h);
}

#[test]
fn tls_bootstrap_token_overrides_the_discovery_token() {
    let h = start(Config::default());
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.tls_bootstrap_token =
        Some(kubejoin::kube::token::BootstrapToken::parse("zzzzzz.0123456789zzzzzz").unwrap());
    let d = run(&o).unwrap();
    match &d.credentials {
        BootstrapCredentials::Token(t) => assert_eq!(t.id(), "zzzzzz"),
        other => panic!("unexpected credentials {other:?}"),
    }
}

#[test]
fn ca_rotation_either_pin_matches() {
    let h = start(Config {
        ca_rotation: true,
        ..Config::default()
    });
    let pins = h.ca_pins();
    assert_eq!(pins.len(), 2, "a rotation bundle holds two CAs");
    let ders = kubejoin::pki::pem::certs_from_pem(h.ca_pem().as_bytes()).unwrap();
    for (i, pin) in pins.iter().enumerate() {
        let d = run(&token_opts(&h.endpoint(), std::slice::from_ref(pin), false)).unwrap();
        assert_eq!(&d.matched_pin.clone().unwrap().to_string(), pin);
        // Only the pinned CA is trusted (and installed); the other is recognised, not trusted.
        assert_eq!(d.ca_der, vec![ders[i].clone()]);
        assert_eq!(d.ca_pem, kubejoin::pki::pem::pem_bundle(&d.ca_der));
        assert_eq!(d.unpinned.len(), 1);
        assert_eq!(d.unpinned[0].1, ders[1 - i]);
        assert_eq!(d.unpinned[0].0.to_string(), pins[1 - i]);
    }
    // Both pinned: both trusted, in bundle order, nothing left over.
    let d = run(&token_opts(&h.endpoint(), &pins, false)).unwrap();
    assert_eq!(d.ca_der, ders);
    assert!(d.unpinned.is_empty());
}

#[test]
fn a_verified_refetch_from_an_unpinned_ca_of_the_bundle_is_refused_by_name() {
    // The endpoint is not cluster-info's `server:`, so discovery re-fetches over TLS verified
    // against the pinned CA only: here the retiring one, while the server already serves from
    // the new CA that the bundle also lists.
    let h = start(Config {
        ca_rotation: true,
        ..Config::default()
    });
    let old = h.ca_pins()[0].clone();
    let e = expect_err(&token_opts(&localhost_endpoint(&h), &[old], false));
    let Error::UnpinnedCa { pins, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(
        pins.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![h.signing_ca_pin()]
    );
    assert_eq!(e.class(), Class::Trust);
    assert!(e.hint().unwrap().contains(&format!(
        "--discovery-token-ca-cert-hash {}",
        h.signing_ca_pin()
    )));
    // Refused at the handshake: only the insecure GET reached HTTP, never with a token.
    assert_eq!(cluster_info_gets(&h).len(), 1);
    assert_token_never_sent(&h);
}

#[test]
fn unsafe_skip_ca_verification() {
    let h = start(Config::default());
    let d = run(&token_opts(&h.endpoint(), &[], true)).unwrap();
    assert_eq!(d.matched_pin, None);
    assert_eq!(d.server, h.url());
    // No pin means no verified re-fetch.
    assert_eq!(cluster_info_gets(&h).len(), 1);
}

#[test]
fn malformed_token_is_refused_before_any_request() {
    let h = start(Config::default());
    for bad in [
        "foo.bar",
        "abcdef.0123456789ABCDEF",
        "abcdef0123456789abcdef",
    ] {
        let e = discovery::token_mode(&h.endpoint(), bad, &h.ca_pins(), false).unwrap_err();
        assert!(matches!(e, Error::MalformedToken(_)), "{e}");
        assert_eq!(e.class(), Class::Usage);
        assert!(e
            .hint()
            .unwrap()
            .contains("kubeadm token create --print-join-command"));
        assert_secret_free(&e);
    }
    assert!(h.requests().is_empty());
}

#[test]
fn malformed_pin_is_refused_before_any_request() {
    let h = start(Config::default());
    for bad in [
        "foo",
        "sha256:0011",
        "md5:00112233",
        &format!("{FOREIGN_PIN}{FOREIGN_PIN}"),
    ] {
        let e = discovery::token_mode(&h.endpoint(), TOKEN, &[bad.to_string()], false).unwrap_err();
        assert!(matches!(e, Error::InvalidPin(_)), "{e}");
        assert_eq!(e.to_string(), "invalid discovery token CA certificate hash");
        assert_eq!(e.class(), Class::Usage);
        assert_secret_free(&e);
    }
    assert!(h.requests().is_empty());
}

#[test]
fn pin_mismatch_names_expected_and_seen_keys() {
    let h = start(Config::default());
    let e = expect_err(&token_opts(
        &h.endpoint(),
        &[FOREIGN_PIN.to_string()],
        false,
    ));
    let Error::PinMismatch { expected, seen, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(
        expected.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![FOREIGN_PIN]
    );
    assert_eq!(
        seen.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        h.ca_pins()
    );
    let text = e.to_string();
    assert!(
        text.contains(FOREIGN_PIN) && text.contains(&h.ca_pins()[0]),
        "{text}"
    );
    assert!(
        text.contains("man-in-the-middle") && text.contains("wrong cluster"),
        "{text}"
    );
    assert_eq!(e.class(), Class::Trust);
    // Stopped after the insecure fetch: no verified re-fetch, and never a bearer token.
    assert_eq!(cluster_info_gets(&h).len(), 1);
    assert_token_never_sent(&h);
}

#[test]
fn cluster_info_without_kubeconfig() {
    let h = start(Config {
        cluster_info_hook: hook(|_, data| {
            data.remove("kubeconfig");
        }),
        ..Config::default()
    });
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.timeout = Duration::from_secs(1);
    let e = expect_err(&o);
    assert!(matches!(e, Error::NoKubeconfigKey { .. }), "{e}");
    assert!(e
        .to_string()
        .contains("there is no kubeconfig key in the cluster-info ConfigMap"));
}

#[test]
fn jws_never_appears_for_an_unknown_token() {
    let h = start(Config::default());
    let mut o = opts(
        discovery::token_mode(
            &h.endpoint(),
            "zzzzzz.0123456789abcdef",
            &h.ca_pins(),
            false,
        )
        .unwrap(),
    );
    o.timeout = Duration::from_secs(2);
    o.retry_interval = Duration::from_millis(100);
    let t0 = Instant::now();
    let e = expect_err(&o);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let Error::JwsMissing { token_id, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(token_id, "zzzzzz");
    assert!(
        e.to_string()
            .contains("unknown to this cluster or has expired"),
        "{e}"
    );
    assert!(e
        .hint()
        .unwrap()
        .contains("kubeadm token create --print-join-command"));
    assert_eq!(e.class(), Class::Timeout);
    // It kept asking while it waited.
    assert!(
        cluster_info_gets(&h).len() >= 10,
        "{}",
        cluster_info_gets(&h).len()
    );
}

#[test]
fn waits_for_a_lagging_signer() {
    let h = start(Config {
        signer_delay: Duration::from_secs(1),
        ..Config::default()
    });
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.timeout = Duration::from_secs(5);
    let d = run(&o).unwrap();
    assert!(d.matched_pin.is_some());
    assert!(
        cluster_info_gets(&h).len() > 2,
        "the first GETs had no JWS yet"
    );
}

#[test]
fn tampered_kubeconfig_fails_the_jws() {
    let h = start(Config {
        cluster_info_hook: hook(|_, data| {
            if let Some(kc) = data.get_mut("kubeconfig") {
                *kc = kc.replace("server: https://", "server: https://evil.");
            }
        }),
        ..Config::default()
    });
    let e = expect_err(&token_opts(&h.endpoint(), &h.ca_pins(), false));
    assert!(matches!(e, Error::BadJws { .. }), "{e}");
    assert!(e.to_string().starts_with(
        "failed to verify JWS signature of received cluster info object, can't trust this API Server"
    ));
    assert_eq!(e.class(), Class::Trust);
}

#[test]
fn tampered_signature_fails_the_jws() {
    let h = start(Config {
        cluster_info_hook: hook(|_, data| {
            if let Some(sig) = data.get_mut("jws-kubeconfig-abcdef") {
                let last = sig.pop().unwrap();
                sig.push(if last == 'A' { 'B' } else { 'A' });
            }
        }),
        ..Config::default()
    });
    let e = expect_err(&token_opts(&h.endpoint(), &h.ca_pins(), false));
    assert!(matches!(e, Error::BadJws { .. }), "{e}");
}

#[test]
fn refetch_that_differs_is_refused() {
    // The second GET serves other content, validly signed: only the byte comparison catches it.
    let h = start(Config {
        cluster_info_hook: hook(|n, data| {
            if n >= 2 {
                if let Some(kc) = data.get("kubeconfig") {
                    let changed = format!("{kc}# changed\n");
                    let sig = jws::compute_detached(changed.as_bytes(), "abcdef", SECRET);
                    data.insert("kubeconfig".into(), changed);
                    data.insert("jws-kubeconfig-abcdef".into(), sig);
                }
            }
        }),
        ..Config::default()
    });
    let e = expect_err(&token_opts(&localhost_endpoint(&h), &h.ca_pins(), false));
    assert!(matches!(e, Error::RefetchDiffers { .. }), "{e}");
    assert!(e.to_string().contains("was different from the first"));
    assert_eq!(e.class(), Class::Trust);
}

#[test]
fn certificate_not_valid_for_the_endpoint() {
    // 127.0.0.2 is loopback, so the server answers, but it is not in the serving cert's SANs:
    // the insecure fetch and the pin pass, the verified re-fetch must not. Listen on all
    // addresses so that 127.0.0.2 reaches the server.
    let h = start(Config {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..Config::default()
    });
    let port = h.endpoint().rsplit_once(':').unwrap().1.to_string();
    let endpoint = format!("127.0.0.2:{port}");
    let mut o = token_opts(&endpoint, &h.ca_pins(), false);
    o.timeout = Duration::from_secs(1);
    let e = expect_err(&o);
    let Error::TlsVerify {
        endpoint: ep,
        detail,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(ep, &endpoint);
    assert!(
        detail.contains("not valid for name") || detail.contains("NotValidForName"),
        "{detail}"
    );
    assert!(e.to_string().contains(&endpoint));
    assert_eq!(e.class(), Class::Trust);
    assert!(e.hint().unwrap().contains(&h.url()), "{:?}", e.hint());
    // The insecure fetch went through; the verified one never completed a request.
    assert_eq!(cluster_info_gets(&h).len(), 1);
}

#[test]
fn connection_refused() {
    let port = closed_port();
    let mut o = token_opts(
        &format!("127.0.0.1:{port}"),
        &[FOREIGN_PIN.to_string()],
        false,
    );
    o.timeout = Duration::from_millis(500);
    let e = expect_err(&o);
    let Error::Unreachable {
        reason, attempts, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert!(reason.contains("refused"), "{reason}");
    assert!(*attempts >= 2);
    assert_eq!(e.class(), Class::Timeout);
    let hint = e.hint().unwrap();
    assert!(
        hint.contains(&format!(
            "check the address and that port {port} (the API server port) is open and reachable"
        )),
        "{hint}"
    );
}

#[test]
fn unresponsive_server_times_out_with_the_same_advice() {
    // A socket that accepts (in the kernel backlog) but never speaks TLS.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = silent.local_addr().unwrap().to_string();
    let mut o = token_opts(&endpoint, &[FOREIGN_PIN.to_string()], false);
    o.timeout = Duration::from_millis(800);
    let t0 = Instant::now();
    let e = expect_err(&o);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let Error::Unreachable { reason, .. } = &e else {
        panic!("{e}")
    };
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(e.class(), Class::Timeout);
    assert!(e
        .hint()
        .unwrap()
        .contains("(the API server port) is open and reachable"));
    drop(silent);
}

// ---- HTTPS discovery ----

#[test]
fn https_discovery_refuses_plain_http() {
    let h = start(Config::default());
    let url = format!(
        "http://{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        h.endpoint()
    );
    let e = expect_err(&opts(Mode::Https {
        url: url.clone(),
        ca_file: None,
    }));
    assert!(matches!(e, Error::InsecureUrl { .. }), "{e}");
    assert!(
        e.to_string().contains(&url) && e.to_string().contains("only https://"),
        "{e}"
    );
    assert_eq!(e.class(), Class::Usage);
    assert!(
        h.requests().is_empty(),
        "nothing may be sent over plain http"
    );
}

#[test]
fn https_discovery_non_200() {
    let h = start(Config::default());
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.crt", h.ca_pem().as_bytes());
    let url = format!("{}/no/such/kubeconfig", h.url());
    let e = expect_err(&opts(Mode::Https {
        url: url.clone(),
        ca_file: Some(ca),
    }));
    let Error::HttpsStatus { status, .. } = &e else {
        panic!("{e}")
    };
    // Anonymous requests to unknown paths are forbidden before they are not found, as on a
    // real API server.
    assert!(*status == 403 || *status == 404, "{status}");
    assert_eq!(
        e.to_string(),
        format!("error trying to fetch discovery kubeconfig over HTTPS from {url}, received status {status}")
    );
    let gets: Vec<_> = h
        .requests()
        .into_iter()
        .filter(|r| r.path == "/no/such/kubeconfig")
        .collect();
    assert_eq!(gets.len(), 1, "one GET, no retry");
}

#[test]
fn https_discovery_validates_the_body_like_a_file() {
    // A 200 whose body is not a kubeconfig with a cluster (the cluster-info ConfigMap JSON).
    let h = start(Config::default());
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.crt", h.ca_pem().as_bytes());
    let url = format!(
        "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        h.url()
    );
    let e = expect_err(&opts(Mode::Https {
        url: url.clone(),
        ca_file: Some(ca),
    }));
    assert!(matches!(e, Error::NoClusters { .. }), "{e}");
    assert!(e.to_string().contains(&url));
}

#[test]
fn https_discovery_verifies_the_server() {
    // Without the cluster CA, the system trust store does not know the test CA.
    let h = start(Config::default());
    let e = expect_err(&opts(Mode::Https {
        url: format!("{}/kubeconfig", h.url()),
        ca_file: None,
    }));
    assert!(matches!(e, Error::TlsVerify { .. }), "{e}");
    assert_eq!(e.class(), Class::Trust);
}

// ---- file discovery ----

fn file_kubeconfig(h: &Handle, user: Option<&str>) -> kubejoin::kube::kubeconfig::Kubeconfig {
    use kubejoin::kube::kubeconfig::*;
    let mut kc = Kubeconfig::with_token(
        &h.url(),
        "kubernetes",
        h.ca_pem().as_bytes(),
        user.unwrap_or(""),
    );
    if user.is_none() {
        kc.users[0].user = AuthInfo::default();
    }
    kc
}

#[test]
fn file_discovery_with_embedded_bootstrap_token() {
    let h = start(Config::default());
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "discovery.conf",
        file_kubeconfig(&h, Some(TOKEN)).render().as_bytes(),
    );
    let d = run(&opts(Mode::File { path: path.clone() })).unwrap();
    assert_eq!(d.server, h.url());
    assert_eq!(d.ca_pem, h.ca_pem().as_bytes());
    assert_eq!(d.matched_pin, None);
    assert_eq!(
        d.method,
        Method::File {
            path: path.display().to_string()
        }
    );
    assert!(matches!(&d.credentials, BootstrapCredentials::Token(t) if t.bearer() == TOKEN));
    // The token may not read cluster-info (403): that is fine, the TLS check already passed.
    let gets = cluster_info_gets(&h);
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].status, 403);
}

#[test]
fn file_discovery_without_credentials_needs_a_tls_bootstrap_token() {
    let h = start(Config::default());
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "discovery.conf",
        file_kubeconfig(&h, None).render().as_bytes(),
    );
    let e = expect_err(&opts(Mode::File { path: path.clone() }));
    assert!(matches!(e, Error::NoCredentials { .. }), "{e}");
    assert!(e
        .to_string()
        .starts_with("could not find authentication credentials for the TLS bootstrap process"));
    assert!(h.requests().is_empty());

    let mut o = opts(Mode::File { path });
    o.tls_bootstrap_token = Some(kubejoin::kube::token::BootstrapToken::parse(TOKEN).unwrap());
    let d = run(&o).unwrap();
    assert!(matches!(&d.credentials, BootstrapCredentials::Token(t) if t.id() == "abcdef"));
    // anonymous → 200
    assert_eq!(cluster_info_gets(&h)[0].status, 200);
}

#[test]
fn file_discovery_fills_in_a_missing_ca_only_over_verified_tls() {
    // No CA in the file: the system trust store cannot verify the test CA, so this fails
    // rather than learning a CA over an unverified connection.
    let h = start(Config::default());
    let dir = tempfile::tempdir().unwrap();
    let mut kc = file_kubeconfig(&h, Some(TOKEN));
    kc.clusters[0].cluster.certificate_authority_data = None;
    let path = write(dir.path(), "discovery.conf", kc.render().as_bytes());
    let mut o = opts(Mode::File { path });
    o.timeout = Duration::from_millis(500);
    let e = expect_err(&o);
    assert!(matches!(e, Error::TlsVerify { .. }), "{e}");
}

#[test]
fn file_discovery_reads_a_ca_file_next_to_the_kubeconfig() {
    let h = start(Config::default());
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ca.crt", h.ca_pem().as_bytes());
    let mut kc = file_kubeconfig(&h, Some(TOKEN));
    kc.clusters[0].cluster.certificate_authority_data = None;
    kc.clusters[0].cluster.certificate_authority = Some("ca.crt".into());
    let path = write(dir.path(), "discovery.conf", kc.render().as_bytes());
    let d = run(&opts(Mode::File { path })).unwrap();
    assert_eq!(d.ca_pem, h.ca_pem().as_bytes());
}

#[test]
fn file_discovery_keeps_every_ca_of_its_file_but_only_as_certificates() {
    // File discovery has no pin: the file is the trust decision, so every CA it holds is
    // trusted (a rotation bundle here), as before. What is installed is re-encoded from the
    // parsed certificates: a key or other text bundled into the CA file never reaches ca.crt.
    let h = start(Config {
        ca_rotation: true,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let messy = format!(
        "# the cluster CAs\r\n{}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        h.ca_pem().replace('\n', "\r\n")
    );
    write(dir.path(), "ca.crt", messy.as_bytes());
    let mut kc = file_kubeconfig(&h, Some(TOKEN));
    kc.clusters[0].cluster.certificate_authority_data = None;
    kc.clusters[0].cluster.certificate_authority = Some("ca.crt".into());
    let path = write(dir.path(), "discovery.conf", kc.render().as_bytes());
    let d = run(&opts(Mode::File { path })).unwrap();
    assert_eq!(d.ca_der.len(), 2);
    assert!(d.unpinned.is_empty());
    assert_eq!(d.ca_pem, h.ca_pem().as_bytes());
    assert!(!String::from_utf8_lossy(&d.ca_pem).contains("PRIVATE KEY"));
}

#[test]
fn file_discovery_to_a_closed_port() {
    let h = start(Config::default());
    let dir = tempfile::tempdir().unwrap();
    let mut kc = file_kubeconfig(&h, Some(TOKEN));
    let port = closed_port();
    kc.clusters[0].cluster.server = format!("https://127.0.0.1:{port}");
    let path = write(dir.path(), "discovery.conf", kc.render().as_bytes());
    let mut o = opts(Mode::File { path });
    o.timeout = Duration::from_millis(500);
    let e = expect_err(&o);
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(e.hint().unwrap().contains(&format!("port {port}")));
}

// ---- a flaky or failing server (fault injection in the test control plane) ----

fn with_faults(faults: kubejoin_testcp::Faults) -> Handle {
    start(Config {
        faults,
        ..Config::default()
    })
}

fn cluster_info_fault(count: u64, action: kubejoin_testcp::Action) -> kubejoin_testcp::Faults {
    kubejoin_testcp::Faults {
        requests: vec![kubejoin_testcp::RequestFault::first(count, action)
            .under("/api/v1/namespaces/kube-public/configmaps/cluster-info")],
        ..Default::default()
    }
}

fn status_fault(code: u16, retry_after: Option<&str>) -> kubejoin_testcp::Action {
    kubejoin_testcp::Action::Status {
        code,
        retry_after: retry_after.map(str::to_string),
    }
}

#[test]
fn rides_out_a_server_that_refuses_connections_at_first() {
    for mode in [
        kubejoin_testcp::DownMode::Refuse,
        kubejoin_testcp::DownMode::Reset,
    ] {
        let h = with_faults(kubejoin_testcp::Faults {
            down_for: Duration::from_millis(1200),
            down_mode: mode,
            ..Default::default()
        });
        let t0 = Instant::now();
        let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
        o.timeout = Duration::from_secs(10);
        o.retry_interval = Duration::from_millis(400);
        let d = run(&o).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert!(d.matched_pin.is_some());
        assert!(t0.elapsed() >= Duration::from_millis(1200));
        // Backoff with a 800 ms cap: it came back soon after the server did.
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
        // One successful GET (cluster-info names this endpoint: no verified re-fetch).
        assert_eq!(cluster_info_gets(&h).len(), 1);
        assert_token_never_sent(&h);
    }
}

#[test]
fn honours_retry_after_on_503_and_429() {
    for code in [503, 429] {
        let h = with_faults(cluster_info_fault(2, status_fault(code, Some("1"))));
        let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
        o.timeout = Duration::from_secs(10);
        // Without Retry-After the backoff would come back within 200 ms.
        o.retry_interval = Duration::from_millis(100);
        run(&o).unwrap();
        // Two answered `code`, then the one that succeeds (no verified re-fetch: cluster-info
        // names this endpoint).
        let gets = cluster_info_gets(&h);
        assert_eq!(gets.len(), 3, "{gets:?}");
        assert_eq!(gets[0].status, code);
        assert_eq!(gets[1].status, code);
        for w in gets[..3].windows(2) {
            let gap = w[1].time.duration_since(w[0].time).unwrap();
            assert!(gap >= Duration::from_millis(950), "{code}: {gap:?}");
        }
    }
}

#[test]
fn retry_after_past_the_deadline_stops_at_once() {
    let h = with_faults(cluster_info_fault(100, status_fault(429, Some("3600"))));
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.timeout = Duration::from_secs(5);
    let t0 = Instant::now();
    let e = expect_err(&o);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let Error::Unavailable {
        code,
        attempts,
        retry_after_past_deadline,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!((*code, *attempts), (429, 1));
    assert_eq!(*retry_after_past_deadline, Some(Duration::from_secs(3600)));
    assert!(
        e.to_string()
            .contains("(it asked to retry after 1h0m0s, past the deadline): 429 TooManyRequests"),
        "{e}"
    );
    assert_eq!(e.class(), Class::Timeout);
    assert_eq!(cluster_info_gets(&h).len(), 1);
}

#[test]
fn a_server_that_keeps_failing_gives_up_with_the_count_and_last_cause() {
    let h = with_faults(cluster_info_fault(10_000, status_fault(500, None)));
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.timeout = Duration::from_millis(1500);
    o.retry_interval = Duration::from_millis(100);
    let t0 = Instant::now();
    let e = expect_err(&o);
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    let Error::Unavailable { attempts, code, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*code, 500);
    // Every attempt the join started is counted, the last one too when the deadline cut it
    // (`retry_paced` starts an attempt whenever its pause ends before the deadline, however
    // little time that leaves). With a pause drawn from 0–200 ms, about one run in a hundred
    // starts its last attempt under a millisecond before the deadline, and the cut comes
    // before the request reaches the server: then the server saw one request fewer than the
    // join counted, never more. The server records a request once it has answered it, so the
    // last answered one may be recorded a moment after the join read its answer: wait
    // (bounded) for the record to catch up.
    let counted = *attempts as usize;
    let until = Instant::now() + Duration::from_secs(2);
    let mut seen = cluster_info_gets(&h).len();
    while seen < counted && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
        seen = cluster_info_gets(&h).len();
    }
    assert!(
        seen == counted || seen + 1 == counted,
        "counted {counted}, the server saw {seen}"
    );
    assert!(*attempts >= 5, "{attempts}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("gave up after {attempts} attempts over 1."))
            && text.ends_with("500 InternalError: Internal error occurred: injected fault"),
        "{text}"
    );
    assert_eq!(e.class(), Class::Timeout);
}

#[test]
fn resets_and_cut_bodies_are_retried() {
    let h = with_faults(cluster_info_fault(2, kubejoin_testcp::Action::ResetMidBody));
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.retry_interval = Duration::from_millis(100);
    run(&o).unwrap();
    let gets = cluster_info_gets(&h);
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(gets[0].fault.as_deref(), Some("reset mid-body"));
    assert_eq!(gets[1].fault.as_deref(), Some("reset mid-body"));
}

#[test]
fn truncated_json_stops_at_once() {
    let h = with_faults(cluster_info_fault(1, kubejoin_testcp::Action::TruncateJson));
    let e = expect_err(&token_opts(&h.endpoint(), &h.ca_pins(), false));
    let Error::Malformed { detail, .. } = &e else {
        panic!("{e}")
    };
    assert!(detail.contains("not a ConfigMap"), "{detail}");
    assert_eq!(e.class(), Class::Trust);
    assert!(e.hint().unwrap().contains("captive portal"));
    assert_eq!(cluster_info_gets(&h).len(), 1);
}

#[test]
fn permanent_statuses_stop_at_once_refusals_once_they_persist() {
    // 404: the ConfigMap does not exist; asking again will not create it.
    let h = with_faults(cluster_info_fault(100, status_fault(404, None)));
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.timeout = Duration::from_secs(30);
    let t0 = Instant::now();
    let e = expect_err(&o);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(e.class(), Class::Other, "{e}");
    assert_eq!(cluster_info_gets(&h).len(), 1);

    // 401/403: retried (an API server that just started refuses everyone for a moment) until
    // the same answer came back over 5 s, then final, saying so.
    for code in [401, 403] {
        let h = with_faults(cluster_info_fault(1000, status_fault(code, None)));
        let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
        o.timeout = Duration::from_secs(30);
        o.retry_interval = Duration::from_millis(100);
        let t0 = Instant::now();
        let e = expect_err(&o);
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(8),
            "{code}: {took:?}"
        );
        assert_eq!(e.class(), Class::Rejected, "{code}: {e}");
        let gets = cluster_info_gets(&h);
        let Error::Rejected {
            code: c,
            persisted: Some(p),
            ..
        } = &e
        else {
            panic!("{code}: {e:?}")
        };
        assert_eq!(*c, code);
        assert_eq!(p.code, code);
        assert_eq!(p.attempts as usize, gets.len(), "{code}");
        assert!(p.over >= Duration::from_secs(5), "{code}: {p:?}");
        assert!(
            e.to_string().contains(&format!("(it persisted: {p})")),
            "{e}"
        );
    }
}

#[test]
fn the_startup_window_of_a_restarted_api_server_is_ridden_out() {
    let h = with_faults(kubejoin_testcp::Faults {
        startup_window: Duration::from_millis(700),
        ..Default::default()
    });
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.retry_interval = Duration::from_millis(100);
    run(&o).unwrap();
    let gets = cluster_info_gets(&h);
    let refused = gets
        .iter()
        .filter(|r| r.status == 403 && r.fault.as_deref() == Some("startup window"))
        .count();
    assert!(refused >= 1, "{gets:?}");
    assert_eq!(gets.last().unwrap().status, 200);
    assert_eq!(refused + 1, gets.len(), "{gets:?}");
}

#[test]
fn a_stalled_server_is_bounded_by_the_timeout() {
    let h = with_faults(cluster_info_fault(
        100,
        kubejoin_testcp::Action::Stall {
            max: Duration::from_secs(20),
        },
    ));
    let mut o = token_opts(&h.endpoint(), &h.ca_pins(), false);
    o.timeout = Duration::from_millis(1000);
    let t0 = Instant::now();
    let e = expect_err(&o);
    assert!(
        t0.elapsed() < Duration::from_millis(1800),
        "{:?}",
        t0.elapsed()
    );
    let Error::Unreachable { reason, .. } = &e else {
        panic!("{e}")
    };
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(e.class(), Class::Timeout);
}

#[test]
fn the_verified_fetch_rides_out_failures_too() {
    // The first GET (insecure) passes; the next two (the verified re-fetch) fail transiently.
    let h = with_faults(kubejoin_testcp::Faults {
        requests: vec![
            kubejoin_testcp::RequestFault::first(2, status_fault(503, None))
                .after(1)
                .under("/api/v1/namespaces/kube-public/configmaps/cluster-info"),
        ],
        ..Default::default()
    });
    let mut o = token_opts(&localhost_endpoint(&h), &h.ca_pins(), false);
    o.retry_interval = Duration::from_millis(100);
    let d = run(&o).unwrap();
    assert!(d.matched_pin.is_some());
    let statuses: Vec<u16> = cluster_info_gets(&h).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 503, 503, 200]);
}
