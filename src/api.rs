//! The one way kubejoin builds a Kubernetes API client (kube + hyper + rustls/ring).
//!
//! Every client gets connect and per-request timeouts. Anonymous clients send no
//! `Authorization` header at all (the real apiserver answers 403 to a bearer token on
//! `cluster-info`). Verification can only be turned off through [`Trust::DangerousAcceptAny`],
//! which discovery uses for the first, JWS-checked fetch of cluster-info and nothing else.

use crate::plan::token::BootstrapToken;
use std::time::Duration;

/// How the server's certificate is verified.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Verify the chain and hostname against exactly these CA certificates (DER).
    CaBundle(Vec<Vec<u8>>),
    /// Verify against the platform trust store (HTTPS discovery without an explicit CA).
    System,
    /// Accept any certificate. Only for the insecure cluster-info fetch, whose content is then
    /// authenticated by the JWS and the CA pin.
    DangerousAcceptAny,
}

/// Who the client is.
#[derive(Clone)]
pub enum Identity {
    /// No credentials: not even an empty `Authorization` header.
    Anonymous,
    /// `Authorization: Bearer <id>.<secret>`.
    Token(BootstrapToken),
    /// A client certificate chain and key, PEM (node identity after the TLS bootstrap).
    ClientCert { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => write!(f, "Anonymous"),
            Identity::Token(t) => write!(f, "Token({t})"),
            Identity::ClientCert { .. } => write!(f, "ClientCert(<redacted>)"),
        }
    }
}

/// Timeouts applied to every request of a client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Per-request read timeout (kubeadm uses 10 s for every API call). `None` for watches.
    pub read: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            read: Some(Duration::from_secs(10)),
        }
    }
}

/// Building the client failed (bad URL or credentials); no request was sent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server URL {url:?}")]
    Url {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("building the API client for {url}")]
    Build {
        url: String,
        #[source]
        source: kube::Error,
    },
}

/// Builds a kube client for `server` (an `https://host:port` URL).
pub fn client(
    server: &str,
    trust: &Trust,
    identity: &Identity,
    timeouts: Timeouts,
) -> Result<kube::Client, ClientError> {
    let uri: http::Uri = server.parse().map_err(|source| ClientError::Url {
        url: server.to_string(),
        source,
    })?;
    let mut cfg = kube::Config::new(uri);
    cfg.connect_timeout = Some(timeouts.connect);
    cfg.read_timeout = timeouts.read;
    cfg.write_timeout = Some(timeouts.connect);
    // Never let the environment redirect join traffic through a proxy we did not ask for.
    cfg.proxy_url = None;
    match trust {
        Trust::CaBundle(ders) => cfg.root_cert = Some(ders.clone()),
        Trust::System => cfg.root_cert = None,
        Trust::DangerousAcceptAny => {
            // An empty root store, so no system trust store is needed (an initramfs has none);
            // the verifier is replaced anyway.
            cfg.root_cert = Some(Vec::new());
            cfg.accept_invalid_certs = true;
        }
    }
    match identity {
        Identity::Anonymous => {}
        Identity::Token(t) => {
            cfg.auth_info.token = Some(t.bearer().into());
        }
        Identity::ClientCert { cert_pem, key_pem } => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD;
            cfg.auth_info.client_certificate_data = Some(b64.encode(cert_pem));
            cfg.auth_info.client_key_data = Some(b64.encode(key_pem).into());
        }
    }
    kube::Client::try_from(cfg).map_err(|source| ClientError::Build {
        url: server.to_string(),
        source,
    })
}

/// What went wrong on the wire, distilled from a kube error's cause chain, so callers can
/// classify (retry or stop) and explain (hint) without string matching at every call site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireFailure {
    /// The server answered with an HTTP status (and a `Status` body when it sent one).
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    /// TCP connect refused.
    Refused,
    /// A connect or read deadline passed.
    TimedOut,
    /// The TLS handshake failed verification (unknown CA, wrong name, expired…).
    TlsVerify(String),
    /// Anything else on the transport (reset, DNS, protocol).
    Transport(String),
}

/// Classifies a kube error by walking its source chain.
pub fn wire_failure(err: &kube::Error) -> WireFailure {
    if let kube::Error::Api(status) = err {
        return WireFailure::Status {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        };
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut texts = Vec::new();
    while let Some(e) = cur {
        // hyper-util wraps the rustls error in nested io::Errors whose `source()` skips the inner
        // error, so follow `io::Error::get_ref()` all the way down at every link of the chain.
        let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(i) = inner {
            if let Some(tls) = i.downcast_ref::<rustls::Error>() {
                return WireFailure::TlsVerify(tls.to_string());
            }
            if let Some(io) = i.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return WireFailure::Refused,
                    std::io::ErrorKind::TimedOut => return WireFailure::TimedOut,
                    _ => {}
                }
            }
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|r| r as &(dyn std::error::Error + 'static));
        }
        let t = e.to_string();
        if t.contains("timed out") || t.contains("deadline has elapsed") {
            return WireFailure::TimedOut;
        }
        texts.push(t);
        cur = e.source();
    }
    WireFailure::Transport(texts.last().cloned().unwrap_or_default())
}
