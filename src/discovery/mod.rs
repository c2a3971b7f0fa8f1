//! Discovery: establish which cluster to trust (CA) and where its API is (server URL).
//!
//! Token discovery (spec §2.2): anonymous insecure GET of cluster-info, wait for the JWS of our
//! token id, verify the detached HS256 JWS over the raw kubeconfig bytes, check the CA bundle
//! against the pins, re-fetch over verified TLS and require byte-identical kubeconfig. File and
//! HTTPS discovery (spec §2.3–2.4) read a kubeconfig instead.

use crate::plan::pin::CaPin;
use crate::plan::token::BootstrapToken;

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
    /// The CA bundle exactly as `certificate-authority-data` carried it (PEM). Installed verbatim
    /// as `ca.crt`.
    pub ca_pem: Vec<u8>,
    /// Every certificate of `ca_pem`, DER; the roots for all later TLS connections.
    pub ca_der: Vec<Vec<u8>>,
    /// The pin that matched, or `None` when discovery was file/HTTPS or the unsafe skip was used.
    pub matched_pin: Option<CaPin>,
    /// How the cluster was discovered.
    pub method: Method,
    /// Credentials for the TLS bootstrap.
    pub credentials: BootstrapCredentials,
}
