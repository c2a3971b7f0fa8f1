//! Why discovery failed: the error type, its messages, classes and hints.

use super::unpinned_ca_hint;
use crate::error::{Class, Classify};
use crate::http::retry;
use crate::kube;
use crate::kube::kubeconfig::KubeconfigError;
use crate::kube::token::TokenError;
use crate::pki::pem::PemError;
use crate::pki::pin::{CaPin, PinError};
use std::path::PathBuf;
use std::time::Duration;
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

pub(super) fn persisted_note(p: &Option<Box<retry::Persisted>>) -> String {
    p.as_ref()
        .map(|p| format!(" (it persisted: {p})"))
        .unwrap_or_default()
}

pub(super) fn retry_after_note(d: Option<Duration>) -> String {
    d.map(|d| {
        format!(
            " (it asked to retry after {}, past the deadline)",
            crate::time::duration::format(d)
        )
    })
    .unwrap_or_default()
}

/// `sha256:…` or `sha256:… or sha256:…`.
pub(super) fn ca_list(p: &[CaPin]) -> String {
    let list: Vec<String> = p.iter().map(CaPin::to_string).collect();
    list.join(" or ")
}

pub(super) fn pins(p: &[CaPin]) -> String {
    let list: Vec<String> = p.iter().map(CaPin::to_string).collect();
    format!("[{}]", list.join(", "))
}

/// The port of an `https://host:port` URL or `host:port` endpoint, for hints.
pub(super) fn port_of(url: &str) -> String {
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

pub(super) const NEW_TOKEN: &str =
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

/// "gave up after 3 attempts over 2s"
pub(super) fn gave_up_text(attempts: u32, waited: Duration) -> String {
    format!(
        "gave up after {attempts} attempt{} over {}",
        if attempts == 1 { "" } else { "s" },
        crate::time::duration::format(waited)
    )
}
