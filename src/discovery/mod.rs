//! Discovery: establish which cluster to trust (CA) and where its API is (server URL).
//!
//! Token discovery (spec §2.2): anonymous insecure GET of cluster-info, wait for the JWS of our
//! token id, verify the detached HS256 JWS over the raw kubeconfig bytes, check the CA bundle
//! against the pins, narrow trust to the certificates the pins matched (never the rest of the
//! bundle), and (when the signed `server:` is another address than the endpoint) re-fetch over
//! TLS verified against those and require a byte-identical kubeconfig. File and HTTPS discovery
//! (spec §2.3–2.4) read a kubeconfig instead.

mod error;
mod fetch;
pub mod file;
pub mod https;
pub mod jws;
pub mod token;

pub use error::Error;
use fetch::{
    data_of, gave_up_error, poll_cluster_info, single_request_error, timeouts, FetchContext, Miss,
    Verdict,
};
pub use fetch::{decode_cluster_info, MalformedClusterInfo, CLUSTER_INFO_PATH, MAX_CLUSTER_INFO};

use crate::kube;
use crate::kube::token::BootstrapToken;
use crate::pki::pem::PemError;
use crate::pki::pin::{CaPin, PinSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the cluster was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Bootstrap-token discovery against this `host:port`.
    Token { endpoint: String },
    /// A local kubeconfig file.
    File { path: String },
    /// A kubeconfig fetched over verified HTTPS.
    Https { url: String },
}

/// Credentials for the TLS bootstrap (the requests made after discovery).
#[derive(Clone)]
pub enum BootstrapCredentials {
    /// `--tls-bootstrap-token`, or the discovery token (kubeadm defaults one to the other).
    Token(BootstrapToken),
    /// A client certificate embedded in a discovery file.
    ClientCert { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

impl Discovered {
    /// How later clients verify the API server: the pinned CAs only, recognising the unpinned
    /// ones of the bundle to name them when a server chains to one.
    pub fn trust(&self) -> kube::Trust {
        kube::Trust::Pinned {
            pinned: self.ca_der.clone(),
            unpinned: self.unpinned.clone(),
        }
    }
}

impl std::fmt::Debug for BootstrapCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootstrapCredentials::Token(t) => write!(f, "Token({t})"),
            BootstrapCredentials::ClientCert { .. } => write!(f, "ClientCert(<redacted>)"),
        }
    }
}

/// The result of discovery: a cluster we have decided to trust, and how we reached that decision.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// `server:` of the discovered kubeconfig (SRV). Everything after discovery talks to it.
    pub server: String,
    /// The trust anchors (DER) of everything after discovery: every TLS connection, the chain
    /// check of the issued certificate, the "already joined" check. Token discovery with pins:
    /// only the certificates of cluster-info's bundle that a pin matched (all of them when
    /// several pins match, as during a CA rotation), never the rest of the bundle. The unsafe
    /// skip, file and HTTPS discovery: every certificate of the bundle they read.
    pub ca_der: Vec<Vec<u8>>,
    /// `ca_der` as PEM, re-encoded from the DER ([`crate::pki::pem::pem_bundle`]): what
    /// `ca.crt` and `kubelet.conf` hold. Never the bundle as it was carried.
    pub ca_pem: Vec<u8>,
    /// The certificates of cluster-info's bundle that no pin matched, with their pins: never
    /// trusted, only recognised, so a server that chains to one is refused by name.
    pub unpinned: Vec<(CaPin, Vec<u8>)>,
    /// The first pin that matched, or `None` when discovery was file/HTTPS or the unsafe skip
    /// was used.
    pub matched_pin: Option<CaPin>,
    /// How the cluster was discovered.
    pub method: Method,
    /// Credentials for the TLS bootstrap.
    pub credentials: BootstrapCredentials,
    /// The cluster-info fetch's client (anonymous), when the TLS bootstrap may go on over its
    /// connection instead of a new one: token discovery with a pin, whose API server is the
    /// endpoint it fetched from, every certificate that client was shown passing the trust
    /// above ([`crate::http::tls::Trust::Deferred`]), every later handshake verified by it.
    /// `None` otherwise.
    pub warm: Option<crate::kube::Client>,
}

/// Which discovery mechanism to run, with its inputs (already validated).
#[derive(Debug, Clone)]
pub enum Mode {
    /// Bootstrap-token discovery (spec §2.2).
    Token {
        /// `host:port` given by the user (EP). Only the two cluster-info fetches go there.
        endpoint: String,
        token: BootstrapToken,
        pins: PinSet,
        /// `--discovery-token-unsafe-skip-ca-verification`: the only way to run without a pin.
        unsafe_skip_ca_verification: bool,
    },
    /// A kubeconfig file on the local disk (spec §2.3).
    File { path: PathBuf },
    /// A kubeconfig fetched over HTTPS (spec §2.4), verified against the system trust store or
    /// `ca_file`.
    Https {
        url: String,
        ca_file: Option<PathBuf>,
    },
}

/// Everything discovery needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// `--tls-bootstrap-token` (defaults to the discovery token in token mode).
    pub tls_bootstrap_token: Option<BootstrapToken>,
    /// Bound of each cluster-info fetch loop (kubeadm: 5 m, applied to each of the two loops).
    pub timeout: Duration,
    /// Pause between cluster-info attempts (kubeadm: 5 s).
    pub retry_interval: Duration,
}

/// What to do about a server whose certificate chains to an unpinned CA of the bundle.
pub fn unpinned_ca_hint(pins: &[CaPin]) -> String {
    let flags: Vec<String> = pins
        .iter()
        .map(|p| format!("--discovery-token-ca-cert-hash {p}"))
        .collect();
    format!(
        "if that CA is legitimately the cluster's (a CA rotation in progress: compare with \
         `kubejoin ca-hash /etc/kubernetes/pki/ca.crt` on a control-plane node), add it with {}; \
         otherwise someone holding the bootstrap token may be impersonating the API server: \
         do not join, and delete the token (`kubeadm token delete`)",
        flags.join(" ")
    )
}

/// Checks token-discovery inputs given as text (for config sources other than the CLI, and
/// tests) and builds the [`Mode`].
pub fn token_mode<S: AsRef<str>>(
    endpoint: &str,
    token: &str,
    ca_cert_hashes: &[S],
    unsafe_skip_ca_verification: bool,
) -> Result<Mode, Error> {
    let token = BootstrapToken::parse(token).map_err(Error::MalformedToken)?;
    let pins = PinSet::parse(ca_cert_hashes).map_err(Error::InvalidPin)?;
    if pins.is_empty() && !unsafe_skip_ca_verification {
        return Err(Error::NoPin);
    }
    Ok(Mode::Token {
        endpoint: endpoint.to_string(),
        token,
        pins,
        unsafe_skip_ca_verification,
    })
}

/// Runs the configured discovery (spec §2.1): token, file or HTTPS.
pub async fn discover(opts: &Options) -> Result<Discovered, Error> {
    random_pool_ready().await;
    match &opts.mode {
        Mode::Token {
            endpoint,
            token,
            pins,
            unsafe_skip_ca_verification,
        } => token::discover(endpoint, token, pins, *unsafe_skip_ca_verification, opts).await,
        Mode::File { path } => file::discover(path, opts).await,
        Mode::Https { url, ca_file } => https::discover(url, ca_file.as_deref(), opts).await,
    }
}

/// The first TLS handshake needs the kernel's random pool: when it is not initialised yet (a
/// machine without RDRAND or an RNG device, see [`crate::sys::entropy`]), the wait happens
/// here, said in the log and recorded in the timeline, rather than hidden in the handshake.
async fn random_pool_ready() {
    if crate::sys::entropy::ready() {
        return;
    }
    crate::info!(
        "waiting for the kernel's random pool (TLS needs it): this machine has no hardware random source \
         (CPU RDRAND or a virtio-rng device) the kernel trusts, so it gathers timer jitter, ~1 s"
    );
    let start = Instant::now();
    let r = tokio::task::spawn_blocking(crate::sys::entropy::wait).await;
    crate::trace::record(
        "wait",
        || match r {
            Ok(Ok(())) => "entropy: the kernel's random pool was not initialised".into(),
            Ok(Err(e)) => format!("entropy: getrandom failed: {e}"),
            Err(e) => format!("entropy: {e}"),
        },
        start,
    );
}

/// Each CA of a PEM bundle with its pin and subject, for `kubejoin ca-hash FILE`.
pub fn ca_hash_report(pem: &[u8]) -> Result<Vec<(CaPin, String)>, PemError> {
    let ders = crate::pki::pem::certs_from_pem(pem)?;
    let mut out = Vec::with_capacity(ders.len());
    for der in ders {
        let cert = crate::pki::x509::parse_certificate(&der)
            .map_err(|e| PemError::Cert(crate::pki::pin::CertParseError(e.to_string())))?;
        out.push((CaPin::of_spki(cert.spki.raw), cert.subject.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::error::*;
    use super::fetch::*;
    use super::*;
    use crate::error::{Class, Classify};
    use crate::http::retry::{self, Disposition, Pause, Retryable};
    use crate::kube::status_text;
    use crate::kube::WireFailure;
    use std::time::Duration;

    const SECRET: &str = "0123456789abcdef";

    fn all_errors() -> Vec<Error> {
        let pin =
            CaPin::parse("sha256:0f90fc16ca8700dea6e04dd26e9925296f500cadb2dc8221bee9034bb5dec0c2")
                .unwrap();
        let other = CaPin::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        vec![
            Error::MalformedToken(BootstrapToken::parse("abcdef.0123456789abcdeX").unwrap_err()),
            Error::InvalidPin(CaPin::parse("sha256:00").unwrap_err()),
            Error::NoPin,
            Error::InsecureUrl {
                url: "http://10.0.0.1/kc".into(),
            },
            Error::Unreachable {
                url: "https://10.0.0.1:6443".into(),
                what: "the cluster-info ConfigMap",
                attempts: 3,
                waited: Duration::from_secs(2),
                reason: "connection refused".into(),
            },
            Error::TlsVerify {
                endpoint: "127.0.0.2:6443".into(),
                against: "the cluster CA from cluster-info".into(),
                detail: "invalid peer certificate: NotValidForName".into(),
                cluster_server: Some("https://127.0.0.1:6443".into()),
            },
            Error::JwsMissing {
                endpoint: "10.0.0.1:6443".into(),
                token_id: "abcdef".into(),
                waited: Duration::from_secs(300),
            },
            Error::NoKubeconfigKey {
                endpoint: "10.0.0.1:6443".into(),
            },
            Error::BadJws {
                endpoint: "10.0.0.1:6443".into(),
                token_id: "abcdef".into(),
            },
            Error::PinMismatch {
                endpoint: "10.0.0.1:6443".into(),
                expected: vec![other],
                seen: vec![pin],
            },
            Error::RefetchDiffers {
                endpoint: "10.0.0.1:6443".into(),
            },
            Error::HttpsStatus {
                url: "https://x/kc".into(),
                status: 404,
            },
            Error::NoCredentials {
                origin: "/tmp/kc".into(),
            },
        ]
    }

    #[test]
    fn messages_say_what_and_where() {
        let e = all_errors();
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text[0],
            "could not construct token string for the discovery token"
        );
        assert_eq!(text[1], "invalid discovery token CA certificate hash");
        assert!(
            text[3].contains("only https:// URLs are allowed"),
            "{}",
            text[3]
        );
        assert_eq!(
            text[4],
            "could not reach the API server at https://10.0.0.1:6443 to fetch the cluster-info ConfigMap: gave up after 3 attempts over 2s: connection refused"
        );
        assert!(e[4].hint().unwrap().contains(
            "check the address and that port 6443 (the API server port) is open and reachable"
        ));
        assert!(
            text[5].contains("127.0.0.2:6443") && text[5].contains("NotValidForName"),
            "{}",
            text[5]
        );
        assert!(e[5].hint().unwrap().contains("https://127.0.0.1:6443"));
        assert_eq!(
            text[6],
            "could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\" at 10.0.0.1:6443 within 5m0s: the token is unknown to this cluster or has expired"
        );
        assert!(e[6]
            .hint()
            .unwrap()
            .contains("kubeadm token create --print-join-command"));
        assert!(text[7].starts_with("there is no kubeconfig key in the cluster-info ConfigMap"));
        assert!(text[8].starts_with(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server"
        ));
        assert_eq!(
            text[9],
            format!(
                "cluster CA found in cluster-info ConfigMap from 10.0.0.1:6443 is invalid: none of the public keys \
                 [sha256:0f90fc16ca8700dea6e04dd26e9925296f500cadb2dc8221bee9034bb5dec0c2] are pinned (expected \
                 [sha256:{}]); this may be a man-in-the-middle attack or the wrong cluster",
                "ab".repeat(32)
            )
        );
        assert!(text[10].contains("was different from the first"));
        assert_eq!(text[11], "error trying to fetch discovery kubeconfig over HTTPS from https://x/kc, received status 404");
        assert!(text[12].starts_with(
            "could not find authentication credentials for the TLS bootstrap process"
        ));
        for (e, t) in e.iter().zip(&text) {
            assert!(
                !t.contains(SECRET) && !format!("{e:?}").contains(SECRET),
                "{t}"
            );
            assert_eq!(
                t.chars()
                    .next()
                    .map(|c| c.is_lowercase() || !c.is_alphabetic()),
                Some(true),
                "{t}"
            );
        }
    }

    #[test]
    fn an_unpinned_ca_is_a_trust_failure_naming_its_pin_and_the_flag() {
        let pin =
            CaPin::parse("sha256:0f90fc16ca8700dea6e04dd26e9925296f500cadb2dc8221bee9034bb5dec0c2")
                .unwrap();
        let e = Error::UnpinnedCa {
            endpoint: "10.0.0.1:6443".into(),
            pins: vec![pin.clone()],
        };
        assert_eq!(
            e.to_string(),
            format!(
                "the API server at 10.0.0.1:6443 presented a certificate issued by CA {pin}, which the \
                 cluster-info CA bundle lists but which is not pinned; only the pinned CAs are trusted, so \
                 nothing was sent to it"
            )
        );
        assert_eq!(e.class(), Class::Trust);
        let hint = e.hint().unwrap();
        assert!(
            hint.contains(&format!("--discovery-token-ca-cert-hash {pin}")),
            "{hint}"
        );
        assert!(hint.contains("impersonating the API server"), "{hint}");
        // The retry policy never retries it; the wire text names the CA too.
        assert_eq!(
            retry::classify(&WireFailure::UnpinnedCa(vec![pin.clone()])),
            Disposition::Permanent
        );
        assert!(wire_text(&WireFailure::UnpinnedCa(vec![pin.clone()])).contains(&pin.to_string()));
    }

    #[test]
    fn classes() {
        let c: Vec<Class> = all_errors().iter().map(|e| e.class()).collect();
        use Class::*;
        assert_eq!(
            c,
            vec![
                Usage, Usage, Usage, Usage, Timeout, Trust, Timeout, Trust, Trust, Trust, Trust,
                Usage, Usage
            ]
        );
        let rejected = Error::Rejected {
            url: "https://x".into(),
            who: "anonymous",
            what: "the cluster-info ConfigMap",
            code: 403,
            reason: "Forbidden".into(),
            message: "no".into(),
            persisted: None,
        };
        assert_eq!(rejected.class(), Rejected);
        assert!(rejected.hint().unwrap().contains("anonymous"));
        assert_eq!(
            Error::HttpsStatus {
                url: "u".into(),
                status: 403
            }
            .class(),
            Rejected
        );
        assert_eq!(
            Error::HttpsStatus {
                url: "u".into(),
                status: 500
            }
            .class(),
            Other
        );
    }

    #[test]
    fn token_mode_checks_inputs() {
        let e = token_mode(
            "10.0.0.1:6443",
            "abcdef.0123456789abcdeZ",
            &["sha256:00"],
            false,
        )
        .unwrap_err();
        assert!(matches!(e, Error::MalformedToken(_)));
        assert!(!format!("{e} {e:?}").contains("0123456789abcde"));
        let e = token_mode(
            "10.0.0.1:6443",
            "abcdef.0123456789abcdef",
            &["sha256:00"],
            false,
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidPin(_)));
        assert_eq!(e.class(), Class::Usage);
        let e =
            token_mode::<&str>("10.0.0.1:6443", "abcdef.0123456789abcdef", &[], false).unwrap_err();
        assert!(matches!(e, Error::NoPin));
        assert!(token_mode::<&str>("10.0.0.1:6443", "abcdef.0123456789abcdef", &[], true).is_ok());
    }

    #[test]
    fn finds_tls_failures_nested_in_io_errors() {
        use std::io;
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, tls));
        let e = kube::RequestError::Transport(Box::new(nested));
        assert!(
            matches!(wire_miss(&e), Miss::Wire { failure: WireFailure::TlsVerify(d), bad_certificate: true, .. } if d.contains("UnknownIssuer"))
        );
        let refused = kube::RequestError::Transport(Box::new(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(wire_miss(&refused), Miss::wire(WireFailure::Refused));
    }

    #[test]
    fn network_errors_say_how_hard_kubejoin_tried() {
        let unavailable = Error::Unavailable {
            url: "https://10.0.0.1:6443".into(),
            what: "the cluster-info ConfigMap",
            attempts: 14,
            waited: Duration::from_secs(300),
            retry_after_past_deadline: None,
            code: 503,
            status: "503 ServiceUnavailable: the server is currently unable to handle the request"
                .into(),
        };
        assert_eq!(
            unavailable.to_string(),
            "the API server at https://10.0.0.1:6443 kept failing the request for the cluster-info ConfigMap: \
             gave up after 14 attempts over 5m0s: 503 ServiceUnavailable: the server is currently unable to \
             handle the request"
        );
        assert_eq!(unavailable.class(), Class::Timeout);
        assert!(unavailable.hint().unwrap().contains("Retry-After"));
        let asked = Error::Unavailable {
            retry_after_past_deadline: Some(Duration::from_secs(600)),
            attempts: 1,
            waited: Duration::from_millis(40),
            code: 429,
            status: "429 TooManyRequests".into(),
            url: "https://x".into(),
            what: "the cluster-info ConfigMap",
        };
        assert_eq!(
            asked.to_string(),
            "the API server at https://x kept failing the request for the cluster-info ConfigMap: gave up after \
             1 attempt over 40ms (it asked to retry after 10m0s, past the deadline): 429 TooManyRequests"
        );
        let tls = Error::TlsHandshake {
            endpoint: "127.0.0.1:6443".into(),
            detail: "peer is incompatible: ServerTlsVersionIsDisabledByOurConfig".into(),
        };
        assert!(tls.to_string().contains("TLS 1.2 and 1.3"));
        assert!(tls.hint().unwrap().contains("port 6443"));
        let redirect = Error::Redirect {
            url: "https://10.0.0.1:6443".into(),
            what: "the cluster-info ConfigMap",
            code: 302,
            location: "https://evil\n.example/".into(),
        };
        assert!(
            redirect
                .to_string()
                .contains("redirect (302) to \"https://evil\\n.example/\"; kubejoin does not follow redirects"),
            "{redirect}"
        );
        let malformed = Error::Malformed {
            url: "https://x".into(),
            what: "the cluster-info ConfigMap",
            detail: "the answer is larger than 1048576 bytes".into(),
        };
        for e in [&tls, &redirect, &malformed] {
            assert_eq!(e.class(), Class::Trust, "{e}");
            assert!(e.hint().is_some());
        }
    }

    #[test]
    fn misses_are_judged_by_the_retry_policy() {
        let interval = Duration::from_secs(5);
        let judge = |miss: Miss| {
            let f = Failed { miss, interval };
            (f.disposition(), f.pause())
        };
        let status = |code| WireFailure::Status {
            code,
            reason: String::new(),
            message: String::new(),
        };
        use Disposition::*;
        assert_eq!(judge(Miss::NoJws), (Transient, Pause::Fixed(interval)));
        assert_eq!(
            judge(Miss::NoKubeconfig),
            (Transient, Pause::Fixed(interval))
        );
        assert_eq!(
            judge(Miss::wire(WireFailure::Refused)),
            (Transient, Pause::Probe)
        );
        assert_eq!(
            judge(Miss::wire(WireFailure::TimedOut)),
            (Transient, Pause::Backoff)
        );
        assert_eq!(judge(Miss::Malformed("x".into())).0, Permanent);
        assert_eq!(judge(Miss::wire(status(403))).0, Refused(403));
        assert_eq!(judge(Miss::wire(status(401))).0, Refused(401));
        assert_eq!(judge(Miss::wire(status(404))).0, Permanent);
        let with_retry_after = |code| Miss::Wire {
            failure: status(code),
            retry_after: Some(Duration::from_secs(2)),
            location: None,
            bad_certificate: false,
        };
        assert_eq!(
            judge(with_retry_after(503)),
            (Transient, Pause::RetryAfter(Duration::from_secs(2)))
        );
        assert_eq!(
            judge(with_retry_after(429)),
            (Transient, Pause::RetryAfter(Duration::from_secs(2)))
        );
        // Retry-After is a promise only on 429 and 503.
        assert_eq!(judge(with_retry_after(500)), (Transient, Pause::Backoff));
    }

    #[test]
    fn error_answers_are_read_as_status_objects_or_made_printable() {
        let (reason, message) = status_text(
            503,
            br#"{"kind":"Status","reason":"ServiceUnavailable","message":"down","code":503}"#,
        );
        assert_eq!(
            (reason.as_str(), message.as_str()),
            ("ServiceUnavailable", "down")
        );
        let (reason, message) = status_text(302, b"<a href=\"x\">Found</a>.\n\x1b[31m");
        assert_eq!(reason, "Found");
        assert_eq!(message, "<a href=\"x\">Found</a>.  [31m");
        let (_, message) = status_text(500, &[b'A'; 10_000]);
        assert_eq!(message.len(), 200);
    }

    #[test]
    fn errors_stay_small() {
        // Callers return `Result<_, Error>` everywhere (clippy's result_large_err: 128 bytes).
        assert!(
            std::mem::size_of::<Error>() <= 128,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(crate::time::duration::format(Duration::from_secs(2)), "2s");
        assert_eq!(
            crate::time::duration::format(Duration::from_secs(300)),
            "5m0s"
        );
        assert_eq!(
            crate::time::duration::format(Duration::from_millis(1500)),
            "1.5s"
        );
        assert_eq!(
            crate::time::duration::format(Duration::from_millis(100)),
            "100ms"
        );
    }

    #[test]
    fn ports_for_hints() {
        assert_eq!(port_of("https://10.0.0.1:6443"), "6443");
        assert_eq!(port_of("https://[::1]:7443/x"), "7443");
        assert_eq!(port_of("https://example.com/x"), "443");
        assert_eq!(port_of("10.0.0.1:6443"), "6443");
    }

    #[test]
    fn ca_hash_report_on_fixtures() {
        let real = include_bytes!("../../tests/fixtures/apiserver/ca.crt");
        let pin = include_str!("../../tests/fixtures/apiserver/ca-pin.txt").trim();
        let r = ca_hash_report(real).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0.to_string(), pin);
        assert_eq!(r[0].1, "CN=kubernetes");
        let up = include_bytes!("../../tests/fixtures/upstream/token-test-ca-cert.pem");
        let mut bundle = up.to_vec();
        bundle.push(b'\n');
        bundle.extend_from_slice(real);
        let r = ca_hash_report(&bundle).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].0.to_string(),
            "sha256:98be2e6d4d8a89aa308fb15de0c07e2531ce549c68dec1687cdd5c06f0826658"
        );
        assert_eq!(r[1].0.to_string(), pin);
        assert!(matches!(
            ca_hash_report(b"nothing"),
            Err(PemError::NoCertificates)
        ));
    }
}
