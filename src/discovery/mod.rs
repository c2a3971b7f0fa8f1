//! Discovery: establish which cluster to trust (CA) and where its API is (server URL).
//!
//! Token discovery (spec §2.2): anonymous insecure GET of cluster-info, wait for the JWS of our
//! token id, verify the detached HS256 JWS over the raw kubeconfig bytes, check the CA bundle
//! against the pins, narrow trust to the certificates the pins matched (never the rest of the
//! bundle), and (when the signed `server:` is another address than the endpoint) re-fetch over
//! TLS verified against those and require a byte-identical kubeconfig. File and HTTPS discovery
//! (spec §2.3–2.4) read a kubeconfig instead.

pub mod file;
pub mod https;
pub mod jws;
pub mod token;

use crate::error::{Class, Classify};
use crate::http::retry::{self, Disposition, GaveUp, Pause, Retryable};
use crate::kube::kubeconfig::KubeconfigError;
use crate::kube::token::{BootstrapToken, TokenError};
use crate::kube::types::ConfigMap;
use crate::kube::{self, WireFailure};
use crate::pki::pem::PemError;
use crate::pki::pin::{CaPin, PinError, PinSet};
use std::collections::BTreeMap;
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

/// Why discovery failed. Variants carry their inputs (endpoint, URL, path, pins, token id) so a
/// person can act on the message; none ever carries a token secret or other credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- the inputs (class Usage) ----
    /// The discovery token does not have the bootstrap-token form.
    #[error("could not construct token string for the discovery token")]
    MalformedToken(#[source] TokenError),
    /// A `--discovery-token-ca-cert-hash` does not parse.
    #[error("invalid discovery token CA certificate hash")]
    InvalidPin(#[source] PinError),
    /// Token discovery with no pin and without the explicit unsafe opt-in.
    #[error("refusing token discovery without a CA pin: no --discovery-token-ca-cert-hash was given and --discovery-token-unsafe-skip-ca-verification is not set")]
    NoPin,
    /// An endpoint or URL that no client can be built for.
    #[error("invalid API server address {url:?}")]
    BadAddress {
        url: String,
        #[source]
        source: kube::ClientError,
    },
    /// HTTPS discovery was given a URL that is not `https://` (no connection was made).
    #[error("refusing to fetch the discovery kubeconfig from {url:?}: only https:// URLs are allowed, because this kubeconfig decides which CA the node trusts")]
    InsecureUrl { url: String },
    /// The discovery kubeconfig file could not be read.
    #[error("reading the discovery kubeconfig {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file named by the discovery kubeconfig (CA, client certificate or key) could not be read.
    #[error("reading {path}, named by the discovery kubeconfig {origin}")]
    ReadReferenced {
        origin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `--discovery-file-ca` could not be read.
    #[error("reading the CA bundle {path} for HTTPS discovery")]
    ReadCaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `--discovery-file-ca` holds no usable certificate.
    #[error("the CA bundle {path} for HTTPS discovery holds no usable certificate")]
    CaFilePem {
        path: PathBuf,
        #[source]
        source: PemError,
    },
    /// The discovery kubeconfig does not parse or names no usable cluster.
    #[error("the provided kubeconfig file {origin} is malformed")]
    BadKubeconfig {
        origin: String,
        #[source]
        source: KubeconfigError,
    },
    /// The discovery kubeconfig defines no cluster.
    #[error("the provided kubeconfig file {origin} must have at least one cluster defined")]
    NoClusters { origin: String },
    /// The discovery kubeconfig is unusable for another stated reason.
    #[error("the provided kubeconfig file {origin} is invalid: {why}")]
    InvalidKubeconfig { origin: String, why: String },
    /// Neither the discovery kubeconfig nor cluster-info provided a CA.
    #[error("could not get CA certificate from discovery kubeconfig {origin}")]
    NoCa { origin: String },
    /// The CA in the discovery kubeconfig does not parse.
    #[error("could not get CA certificate from discovery kubeconfig {origin}")]
    BadCa {
        origin: String,
        #[source]
        source: PemError,
    },
    /// The discovery kubeconfig has no credentials and no TLS bootstrap token was given.
    #[error("could not find authentication credentials for the TLS bootstrap process in {origin}. Please use Token discovery, a discovery file with embedded authentication credentials or a discovery file without authentication credentials but with the TLSBootstrapToken flag")]
    NoCredentials { origin: String },
    /// The discovery kubeconfig has credentials kubejoin cannot use for the TLS bootstrap.
    #[error(
        "the credentials of user {user:?} in {origin} cannot be used for the TLS bootstrap: {why}"
    )]
    UnsupportedCredentials {
        origin: String,
        user: String,
        why: &'static str,
    },

    // ---- the network ----
    /// The API server never answered (refused, reset, timed out, DNS) within the timeout.
    #[error("could not reach the API server at {url} to fetch {what}: {}: {reason}", gave_up_text(*.attempts, *.waited))]
    Unreachable {
        url: String,
        what: &'static str,
        attempts: u32,
        waited: Duration,
        reason: String,
    },
    /// The server kept answering 5xx/429/408 until the timeout (or asked to come back after it).
    #[error("the API server at {url} kept failing the request for {what}: {}{}: {status}", gave_up_text(*.attempts, *.waited), retry_after_note(*.retry_after_past_deadline))]
    Unavailable {
        url: String,
        what: &'static str,
        attempts: u32,
        waited: Duration,
        /// The server's last `Retry-After`, when it pointed past the deadline.
        retry_after_past_deadline: Option<Duration>,
        code: u16,
        /// The last answer: `503 ServiceUnavailable: <message>`.
        status: String,
    },
    /// The TLS handshake itself failed (a peer that does not speak TLS 1.2+, or not TLS at all).
    #[error("the TLS handshake with {endpoint} failed: {detail}; kubejoin speaks only TLS 1.2 and 1.3 to an API server")]
    TlsHandshake { endpoint: String, detail: String },
    /// The server's certificate is outside its validity window at the best time known: the
    /// clock is the likely cause (the message shows the clock and the window, the hint names
    /// `kubejoin.ntp=`).
    #[error("the API server at {endpoint}: {error}")]
    Clock {
        endpoint: String,
        error: Box<crate::clock::cert::ClockError>,
    },
    /// The server answered with a redirect; kubejoin never follows one.
    #[error("the server at {url} answered the request for {what} with a redirect ({code}) to {location:?}; kubejoin does not follow redirects")]
    Redirect {
        url: String,
        what: &'static str,
        code: u16,
        location: String,
    },
    /// A complete answer that is not what was asked for (too large, not a ConfigMap).
    #[error("the answer of {url} to the request for {what} is unusable: {detail}")]
    Malformed {
        url: String,
        what: &'static str,
        detail: String,
    },
    /// The server's certificate did not verify against the CA we trust for it.
    #[error("the API server at {endpoint} presented a certificate that does not verify against {against}: {detail}")]
    TlsVerify {
        endpoint: String,
        /// What the certificate was verified against, in words.
        against: String,
        /// What rustls said.
        detail: String,
        /// The `server:` of the cluster-info kubeconfig, when known (a name that will verify).
        cluster_server: Option<String>,
    },
    /// The server answered 401 or 403 (and kept answering it past an API server's restart
    /// window: `persisted`, see [`retry::Persistence`]).
    #[error("the API server at {url} refused {who} access to {what} ({code} {reason}): {message}{}", persisted_note(.persisted))]
    Rejected {
        url: String,
        who: &'static str,
        what: &'static str,
        code: u16,
        reason: String,
        message: String,
        /// Boxed: the error stays within clippy's `result_large_err` bound.
        persisted: Option<Box<retry::Persisted>>,
    },
    /// The server answered another non-success status.
    #[error(
        "the API server at {url} answered {code} {reason} to the request for {what}: {message}"
    )]
    Status {
        url: String,
        what: &'static str,
        code: u16,
        reason: String,
        message: String,
    },

    // ---- token discovery (spec §2.2) ----
    /// No `jws-kubeconfig-<id>` appeared within the timeout.
    #[error("could not find a JWS signature in the cluster-info ConfigMap for token ID {token_id:?} at {endpoint} within {}: the token is unknown to this cluster or has expired", crate::time::duration::format(*.waited))]
    JwsMissing {
        endpoint: String,
        token_id: String,
        waited: Duration,
    },
    /// cluster-info has no `kubeconfig` key.
    #[error("there is no kubeconfig key in the cluster-info ConfigMap at {endpoint}. This API Server isn't set up for token bootstrapping, can't connect")]
    NoKubeconfigKey { endpoint: String },
    /// The `jws-kubeconfig-<id>` key is present but empty.
    #[error("token id {token_id:?} is invalid for this cluster ({endpoint}) or it has expired: its signature in the cluster-info ConfigMap is empty")]
    EmptyJws { endpoint: String, token_id: String },
    /// The JWS does not verify over the kubeconfig with our token.
    #[error("failed to verify JWS signature of received cluster info object, can't trust this API Server ({endpoint}, token ID {token_id:?})")]
    BadJws { endpoint: String, token_id: String },
    /// The signed kubeconfig does not parse or names no cluster.
    #[error("couldn't parse the kubeconfig file in the cluster-info ConfigMap from {endpoint}")]
    ClusterInfoKubeconfig {
        endpoint: String,
        #[source]
        source: KubeconfigError,
    },
    /// The signed kubeconfig carries no usable CA.
    #[error("failed to parse cluster CA from the cluster-info ConfigMap from {endpoint}")]
    ClusterInfoCa {
        endpoint: String,
        #[source]
        source: PemError,
    },
    /// No CA of the bundle matches any pin.
    #[error("cluster CA found in cluster-info ConfigMap from {endpoint} is invalid: none of the public keys {} are pinned (expected {}); this may be a man-in-the-middle attack or the wrong cluster", pins(.seen), pins(.expected))]
    PinMismatch {
        endpoint: String,
        expected: Vec<CaPin>,
        seen: Vec<CaPin>,
    },
    /// The server's certificate chains to a CA that cluster-info's bundle lists but no pin
    /// names: with a stolen token anyone can add a CA of their own to the bundle.
    #[error("the API server at {endpoint} presented a certificate issued by CA {}, which the cluster-info CA bundle lists but which is not pinned; only the pinned CAs are trusted, so nothing was sent to it", ca_list(.pins))]
    UnpinnedCa { endpoint: String, pins: Vec<CaPin> },
    /// The TLS-verified copy of cluster-info differs from the JWS-verified one.
    #[error("the second kubeconfig from the cluster-info ConfigMap at {endpoint} (using validated TLS) was different from the first")]
    RefetchDiffers { endpoint: String },

    // ---- HTTPS discovery (spec §2.4) ----
    /// The HTTPS URL answered with a status other than 200.
    #[error("error trying to fetch discovery kubeconfig over HTTPS from {url}, received status {status}")]
    HttpsStatus { url: String, status: u16 },
    /// The HTTPS body could not be read (too large, not UTF-8, cut off).
    #[error("reading the discovery kubeconfig from {url}: {detail}")]
    HttpsBody { url: String, detail: String },
}

fn persisted_note(p: &Option<Box<retry::Persisted>>) -> String {
    p.as_ref()
        .map(|p| format!(" (it persisted: {p})"))
        .unwrap_or_default()
}

fn retry_after_note(d: Option<Duration>) -> String {
    d.map(|d| {
        format!(
            " (it asked to retry after {}, past the deadline)",
            crate::time::duration::format(d)
        )
    })
    .unwrap_or_default()
}

/// `sha256:…` or `sha256:… or sha256:…`.
fn ca_list(p: &[CaPin]) -> String {
    let list: Vec<String> = p.iter().map(CaPin::to_string).collect();
    list.join(" or ")
}

fn pins(p: &[CaPin]) -> String {
    let list: Vec<String> = p.iter().map(CaPin::to_string).collect();
    format!("[{}]", list.join(", "))
}

/// The port of an `https://host:port` URL or `host:port` endpoint, for hints.
fn port_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
                && !host.ends_with(':') =>
        {
            port.to_string()
        }
        _ => "443".to_string(),
    }
}

const NEW_TOKEN: &str =
    "create a new token on a control-plane node with `kubeadm token create --print-join-command`";

impl Classify for Error {
    fn class(&self) -> Class {
        use Error::*;
        match self {
            MalformedToken(_)
            | InvalidPin(_)
            | NoPin
            | BadAddress { .. }
            | InsecureUrl { .. }
            | ReadFile { .. }
            | ReadReferenced { .. }
            | ReadCaFile { .. }
            | CaFilePem { .. }
            | BadKubeconfig { .. }
            | NoClusters { .. }
            | InvalidKubeconfig { .. }
            | NoCa { .. }
            | BadCa { .. }
            | NoCredentials { .. }
            | UnsupportedCredentials { .. } => Class::Usage,
            Unreachable { .. } | Unavailable { .. } | JwsMissing { .. } => Class::Timeout,
            TlsVerify { .. }
            | Clock { .. }
            | TlsHandshake { .. }
            | Redirect { .. }
            | Malformed { .. }
            | NoKubeconfigKey { .. }
            | EmptyJws { .. }
            | BadJws { .. }
            | ClusterInfoKubeconfig { .. }
            | ClusterInfoCa { .. }
            | PinMismatch { .. }
            | UnpinnedCa { .. }
            | RefetchDiffers { .. } => Class::Trust,
            Rejected { .. } => Class::Rejected,
            HttpsStatus {
                status: 401 | 403, ..
            } => Class::Rejected,
            HttpsStatus { status: 404, .. } => Class::Usage,
            Status { .. } | HttpsStatus { .. } | HttpsBody { .. } => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        use Error::*;
        Some(match self {
            MalformedToken(_) => {
                format!("a bootstrap token is <6 characters [a-z0-9]>.<16 characters [a-z0-9]>; {NEW_TOKEN}")
            }
            InvalidPin(_) => "a pin looks like sha256:<64 hex digits>; print it on a control-plane node with \
                 `kubejoin ca-hash /etc/kubernetes/pki/ca.crt`"
                .into(),
            NoPin => "print the pin on a control-plane node with `kubejoin ca-hash /etc/kubernetes/pki/ca.crt` \
                 (or `kubeadm token create --print-join-command`) and pass --discovery-token-ca-cert-hash"
                .into(),
            InsecureUrl { .. } => "serve the kubeconfig over https:// (verified against the system trust store or \
                 --discovery-file-ca), or copy it to this machine and pass its path"
                .into(),
            NoCredentials { .. } | UnsupportedCredentials { .. } => {
                "pass --tls-bootstrap-token (or --token), or embed a bootstrap token or client certificate and key \
                 in the discovery kubeconfig"
                    .into()
            }
            NoCa { .. } | BadCa { .. } => {
                "embed the cluster CA in the kubeconfig (certificate-authority-data) or point certificate-authority \
                 at /etc/kubernetes/pki/ca.crt copied from a control-plane node"
                    .into()
            }
            Unreachable { url, .. } => format!(
                "check the address and that port {} (the API server port) is open and reachable from this machine \
                 (firewall, routing, the API server running)",
                port_of(url)
            ),
            Unavailable { .. } => "the API server (or a load balancer in front of it) is overloaded or failing: \
                 kubejoin retried with backoff, honouring Retry-After, until --discovery-timeout; check the control \
                 plane's health, or give it more time with --discovery-timeout"
                .into(),
            TlsHandshake { endpoint, .. } => format!(
                "check that port {} is the API server's and not another service: it did not complete a TLS 1.2+ \
                 handshake (a TLS 1.0/1.1-only or non-TLS server, or something in between that speaks for it)",
                port_of(endpoint)
            ),
            Redirect { .. } => "an API server never redirects cluster-info: something between this machine and the \
                 endpoint (a proxy, a captive portal or an attacker) answered instead; point kubejoin at the API \
                 server itself"
                .into(),
            Malformed { .. } => "an API server answers with a small ConfigMap: this answer came from something else \
                 (a proxy, a captive portal or an attacker); check that the endpoint is the API server"
                .into(),
            Clock { error, .. } => return error.hint(),
            TlsVerify { cluster_server, .. } => {
                let mut h = "connect to a name or address listed in the API server certificate \
                     (kubeadm: apiServer.certSANs / --apiserver-cert-extra-sans add more)"
                    .to_string();
                if let Some(s) = cluster_server {
                    h.push_str(&format!("; the cluster calls its API server {s}"));
                }
                h
            }
            Rejected { what: "the cluster-info ConfigMap", who: "anonymous", .. } => {
                "cluster-info must be readable anonymously: check that the API server allows anonymous requests \
                 and that the kube-public RoleBinding kubeadm:bootstrap-signer-clusterinfo exists \
                 (`kubeadm init phase bootstrap-token` creates it)"
                    .into()
            }
            Rejected { .. } => "check the credentials in the discovery kubeconfig".into(),
            Status { code: 404, .. } => "the kube-public/cluster-info ConfigMap does not exist: the control plane \
                 was not set up for token bootstrapping (`kubeadm init phase bootstrap-token` creates it)"
                .into(),
            JwsMissing { .. } | EmptyJws { .. } => format!(
                "{NEW_TOKEN} (`kubeadm token list` shows the valid ones; only tokens with the signing usage are \
                 signed into cluster-info)"
            ),
            NoKubeconfigKey { .. } => "on a control-plane node, `kubeadm init phase bootstrap-token` uploads \
                 cluster-info; check that you are pointing at the right API server"
                .into(),
            BadJws { .. } => format!(
                "the cluster-info content was not signed with this token's secret: check the token (a typo in the \
                 secret gives this error), or something between you and the API server altered it; {NEW_TOKEN}"
            ),
            PinMismatch { .. } => "compare with the pin printed on a control-plane node by \
                 `kubejoin ca-hash /etc/kubernetes/pki/ca.crt`; if the CA was rotated, pin the new CA; \
                 do not join until they match"
                .into(),
            UnpinnedCa { pins, .. } => unpinned_ca_hint(pins),
            RefetchDiffers { .. } => "cluster-info changed between the two fetches, or a different server answered \
                 the verified request: retry, and check for proxies or load balancers in front of the API server"
                .into(),
            HttpsStatus { .. } => "check the URL: it must serve the discovery kubeconfig itself".into(),
            _ => return None,
        })
    }
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

// ---- the cluster-info fetch loop shared by token and file discovery ----

/// `kube-public/cluster-info`.
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// Largest cluster-info answer that is read. A real one is 2–3 KiB, plus about 100 bytes per
/// signing token; the first fetch trusts nobody, and a hostile server must not be able to make
/// kubejoin buffer hundreds of MB in an initramfs.
pub const MAX_CLUSTER_INFO: usize = 1 << 20;

/// Why one cluster-info attempt did not give what the loop waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Miss {
    /// The request failed, or the server answered an error status.
    Wire {
        failure: WireFailure,
        /// The answer's `Retry-After`, as a pause.
        retry_after: Option<Duration>,
        /// The answer's `Location` (a redirect).
        location: Option<String>,
        /// The TLS failure is about the server's certificate, not the handshake itself.
        bad_certificate: bool,
    },
    /// The answer is not a cluster-info ConfigMap (too large, not JSON).
    Malformed(String),
    /// Fetched, but no `jws-kubeconfig-<id>` yet.
    NoJws,
    /// Fetched, but neither a JWS nor even a `kubeconfig` key.
    NoKubeconfig,
    /// The loop's own deadline ended the attempt.
    CutOff,
}

impl Miss {
    fn wire(failure: WireFailure) -> Miss {
        Miss::Wire {
            failure,
            retry_after: None,
            location: None,
            bad_certificate: false,
        }
    }
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Wire {
                failure,
                retry_after,
                ..
            } => {
                f.write_str(&wire_text(failure))?;
                if let Some(d) = retry_after {
                    write!(f, " (Retry-After: {})", crate::time::duration::format(*d))?;
                }
                Ok(())
            }
            Miss::Malformed(d) => f.write_str(d),
            Miss::NoJws => f.write_str("no JWS signature for our token yet"),
            Miss::NoKubeconfig => f.write_str("no kubeconfig key"),
            Miss::CutOff => f.write_str("cut off by the deadline"),
        }
    }
}

fn wire_text(w: &WireFailure) -> String {
    match w {
        WireFailure::Status {
            code,
            reason,
            message,
        } if message.is_empty() => format!("{code} {reason}"),
        WireFailure::Status {
            code,
            reason,
            message,
        } => format!("{code} {reason}: {message}"),
        WireFailure::Refused => "connection refused".into(),
        WireFailure::TimedOut => "timed out".into(),
        WireFailure::TlsVerify(d) => format!("TLS handshake failed: {d}"),
        WireFailure::Clock(c) => c.to_string(),
        WireFailure::UnpinnedCa(pins) => format!(
            "TLS handshake refused: the server's certificate chains to CA {}, which is not pinned",
            ca_list(pins)
        ),
        WireFailure::Transport(t) => t.clone(),
    }
}

fn wire_miss(err: &kube::RequestError) -> Miss {
    match err {
        kube::RequestError::TooLarge {
            announced: Some(n), ..
        } => Miss::Malformed(format!(
            "the answer announces {n} bytes; a cluster-info ConfigMap is a few KiB, and no more than \
             {MAX_CLUSTER_INFO} bytes are read"
        )),
        kube::RequestError::TooLarge { announced: None, .. } => Miss::Malformed(format!(
            "the answer is larger than {MAX_CLUSTER_INFO} bytes; a cluster-info ConfigMap is a few KiB"
        )),
        _ => Miss::Wire {
            failure: err.failure(),
            retry_after: err.retry_after(),
            location: None,
            bad_certificate: matches!(
                err.rustls_error(),
                Some(rustls::Error::InvalidCertificate(_))
            ),
        },
    }
}

/// One anonymous GET of cluster-info. The body is read only up to [`MAX_CLUSTER_INFO`] (an
/// announced larger one is not read at all); `Retry-After` and `Location` are kept for the
/// retry policy and the error message; kubejoin never follows a redirect.
async fn get_cluster_info(client: &kube::Client) -> Result<ConfigMap, Miss> {
    let a = client
        .send(
            http::Method::GET,
            CLUSTER_INFO_PATH,
            "application/json, */*",
            None,
            MAX_CLUSTER_INFO,
        )
        .await
        .map_err(|e| wire_miss(&e))?;
    if !a.is_success() {
        let location = a.location.clone();
        let retry_after = a.retry_after;
        let failure = a.into_status_error().failure();
        return Err(Miss::Wire {
            failure,
            retry_after,
            location,
            bad_certificate: false,
        });
    }
    decode_cluster_info(&a.body).map_err(|e| Miss::Malformed(e.to_string()))
}

/// Why an answer to the cluster-info request is not a cluster-info ConfigMap.
#[derive(Debug, thiserror::Error)]
pub enum MalformedClusterInfo {
    #[error("the answer is larger than {limit} bytes; a cluster-info ConfigMap is a few KiB")]
    TooLarge { limit: usize },
    /// The JSON error is part of the message: the answer is reported as one line of a retry
    /// loop's verdict.
    #[error("the answer is not a ConfigMap: {0}")]
    NotConfigMap(serde_json::Error),
}

/// Decodes the body of a cluster-info answer (at most [`MAX_CLUSTER_INFO`] bytes); the error
/// says why it is not a ConfigMap.
pub fn decode_cluster_info(bytes: &[u8]) -> Result<ConfigMap, MalformedClusterInfo> {
    if bytes.len() > MAX_CLUSTER_INFO {
        return Err(MalformedClusterInfo::TooLarge {
            limit: MAX_CLUSTER_INFO,
        });
    }
    serde_json::from_slice::<ConfigMap>(bytes).map_err(MalformedClusterInfo::NotConfigMap)
}

/// What the loop does with one answer.
enum Verdict<T> {
    Done(T),
    Retry(Miss),
}

/// A miss, judged by the retry policy of its loop.
#[derive(Debug, Clone)]
struct Failed {
    miss: Miss,
    /// The loop's fixed poll interval (for the bootstrap signer's lag).
    interval: Duration,
}

impl Retryable for Failed {
    fn disposition(&self) -> Disposition {
        match &self.miss {
            Miss::Wire { failure, .. } => retry::classify(failure),
            // A complete answer that is not cluster-info will not become one: it is a proxy,
            // a captive portal or an attacker, not a network blip.
            Miss::Malformed(_) => Disposition::Permanent,
            // The bootstrap signer adds our JWS 1–15 s after cluster-info is (re)written.
            Miss::NoJws | Miss::NoKubeconfig | Miss::CutOff => Disposition::Transient,
        }
    }

    fn pause(&self) -> Pause {
        match &self.miss {
            Miss::Wire {
                failure:
                    WireFailure::Status {
                        code: 429 | 503, ..
                    },
                retry_after: Some(d),
                ..
            } => Pause::RetryAfter(*d),
            // kubeadm's semantics for the signer's lag: a fixed poll.
            Miss::NoJws | Miss::NoKubeconfig => Pause::Fixed(self.interval),
            Miss::Wire { failure, .. } => retry::pause_of(failure),
            _ => Pause::Backoff,
        }
    }

    fn reason(&self) -> String {
        self.miss.to_string()
    }
}

/// One fetch loop (spec §2.2 `getClusterInfo`): `GET kube-public/cluster-info` at once, then
/// again until `judge` is satisfied or `opts.timeout` passes. While the JWS is missing it polls
/// every `retry_interval`, as kubeadm does; failures of the wire are retried with the backoff of
/// [`retry::Policy::for_interval`] (full jitter, mean pause `retry_interval`) and a server's
/// `Retry-After` is honoured; a permanent failure (TLS, 404, a redirect, an answer that is not
/// cluster-info) stops the loop at once, a 401 or 403 once it persists (an API server that has
/// just restarted refuses even the anonymous GET for a moment: [`retry::Persistence`]). Each attempt is bounded by the time left,
/// so the loop never overruns its timeout.
async fn poll_cluster_info<T>(
    client: &kube::Client,
    url: &str,
    label: &str,
    opts: &Options,
    judge: impl Fn(Result<ConfigMap, Miss>) -> Verdict<T>,
) -> Result<T, GaveUp<Failed>> {
    let interval = opts.retry_interval.min(opts.timeout);
    let policy = retry::Policy::for_interval(interval);
    let deadline = Instant::now() + opts.timeout;
    let judge = &judge;
    let mut env = retry::RealEnv::new();
    retry::retry_notify(
        deadline,
        &policy,
        &mut env,
        |attempt| async move {
            let answer =
                match tokio::time::timeout(attempt.time_left, get_cluster_info(client)).await {
                    Ok(answer) => answer,
                    Err(_elapsed) => Err(Miss::CutOff),
                };
            match judge(answer) {
                Verdict::Done(v) => {
                    crate::debug!(
                        "cluster-info ({label}) from {url}: ok on attempt {}",
                        attempt.number
                    );
                    Ok(v)
                }
                Verdict::Retry(miss) => Err(Failed { miss, interval }),
            }
        },
        |failed, attempt, pause| {
            crate::info!(
                "cluster-info ({label}) from {url}, attempt {attempt}: {}; retrying in {}",
                failed.miss,
                crate::time::duration::format(pause)
            );
        },
    )
    .await
}

/// Per-request timeouts of discovery clients: kubeadm's 10 s, but never beyond the loop's bound.
fn timeouts(opts: &Options) -> kube::Timeouts {
    let t = Duration::from_secs(10).min(opts.timeout.max(Duration::from_millis(1)));
    kube::Timeouts {
        connect: t,
        read: Some(t),
    }
}

/// The error for a loop that gave up, in the words of the stage it was in. A last attempt that
/// was only cut off by the deadline is reported with the failure before it, as kubeadm does.
fn gave_up_error(g: GaveUp<Failed>, ctx: &FetchContext<'_>) -> Error {
    let tried = Tried {
        attempts: g.attempts,
        waited: g.elapsed,
        retry_after_past_deadline: match g.stop {
            retry::Stop::RetryAfterPastDeadline(d) => Some(d),
            _ => None,
        },
        persisted: match g.stop {
            retry::Stop::Persisted(p) => Some(p),
            _ => None,
        },
    };
    let miss = match g.last.miss {
        Miss::CutOff => g
            .previous
            .map(|p| p.miss)
            .filter(|m| *m != Miss::CutOff)
            .unwrap_or(Miss::wire(WireFailure::TimedOut)),
        m => m,
    };
    match miss {
        Miss::NoJws => Error::JwsMissing {
            endpoint: ctx.endpoint.to_string(),
            token_id: ctx.token_id.unwrap_or_default().to_string(),
            waited: tried.waited,
        },
        Miss::NoKubeconfig => Error::NoKubeconfigKey {
            endpoint: ctx.endpoint.to_string(),
        },
        Miss::Malformed(detail) => Error::Malformed {
            url: ctx.url.to_string(),
            what: ctx.what,
            detail,
        },
        Miss::Wire {
            failure,
            location,
            bad_certificate,
            ..
        } => wire_error(failure, ctx, &tried, location, bad_certificate),
        Miss::CutOff => wire_error(WireFailure::TimedOut, ctx, &tried, None, false),
    }
}

/// Where a fetch went and what it trusted, for error messages.
struct FetchContext<'a> {
    url: &'a str,
    endpoint: &'a str,
    token_id: Option<&'a str>,
    /// `None` when verification was off (the insecure fetch).
    against: Option<&'a str>,
    who: &'static str,
    what: &'static str,
    cluster_server: Option<&'a str>,
}

/// How much trying went into a failure.
struct Tried {
    attempts: u32,
    waited: Duration,
    retry_after_past_deadline: Option<Duration>,
    /// The refusal that ended the loop persisted this long.
    persisted: Option<retry::Persisted>,
}

fn wire_error(
    w: WireFailure,
    ctx: &FetchContext<'_>,
    tried: &Tried,
    location: Option<String>,
    bad_certificate: bool,
) -> Error {
    match w {
        WireFailure::UnpinnedCa(pins) => Error::UnpinnedCa {
            endpoint: ctx.endpoint.to_string(),
            pins,
        },
        WireFailure::TlsVerify(detail) if bad_certificate && ctx.against.is_some() => {
            Error::TlsVerify {
                endpoint: ctx.endpoint.to_string(),
                against: ctx.against.unwrap_or_default().to_string(),
                detail,
                cluster_server: ctx.cluster_server.map(str::to_string),
            }
        }
        WireFailure::Clock(error) => Error::Clock {
            endpoint: ctx.endpoint.to_string(),
            error,
        },
        WireFailure::TlsVerify(detail) => Error::TlsHandshake {
            endpoint: ctx.endpoint.to_string(),
            detail,
        },
        WireFailure::Status {
            code: code @ (401 | 403),
            reason,
            message,
        } => Error::Rejected {
            url: ctx.url.to_string(),
            who: ctx.who,
            what: ctx.what,
            code,
            reason,
            message,
            persisted: tried.persisted.map(Box::new),
        },
        WireFailure::Status {
            code: code @ 300..=399,
            ..
        } => Error::Redirect {
            url: ctx.url.to_string(),
            what: ctx.what,
            code,
            location: location.unwrap_or_default(),
        },
        WireFailure::Status {
            code,
            reason,
            message,
        } if retry::classify(&WireFailure::Status {
            code,
            reason: String::new(),
            message: String::new(),
        }) == Disposition::Transient =>
        {
            Error::Unavailable {
                url: ctx.url.to_string(),
                what: ctx.what,
                attempts: tried.attempts,
                waited: tried.waited,
                retry_after_past_deadline: tried.retry_after_past_deadline,
                code,
                status: wire_text(&WireFailure::Status {
                    code,
                    reason,
                    message,
                }),
            }
        }
        WireFailure::Status {
            code,
            reason,
            message,
        } => Error::Status {
            url: ctx.url.to_string(),
            what: ctx.what,
            code,
            reason,
            message,
        },
        other => Error::Unreachable {
            url: ctx.url.to_string(),
            what: ctx.what,
            attempts: tried.attempts,
            waited: tried.waited,
            reason: wire_text(&other),
        },
    }
}

/// The error for a single request that failed (HTTPS discovery, which has no retry loop).
fn single_request_error(e: &kube::RequestError, ctx: &FetchContext<'_>, waited: Duration) -> Error {
    let bad_certificate = matches!(e.rustls_error(), Some(rustls::Error::InvalidCertificate(_)));
    let tried = Tried {
        attempts: 1,
        waited,
        retry_after_past_deadline: None,
        persisted: None,
    };
    wire_error(e.failure(), ctx, &tried, None, bad_certificate)
}

/// The ConfigMap's data, or an empty map.
fn data_of(cm: ConfigMap) -> BTreeMap<String, String> {
    cm.data.unwrap_or_default()
}

/// "gave up after 3 attempts over 2s"
fn gave_up_text(attempts: u32, waited: Duration) -> String {
    format!(
        "gave up after {attempts} attempt{} over {}",
        if attempts == 1 { "" } else { "s" },
        crate::time::duration::format(waited)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::status_text;

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
