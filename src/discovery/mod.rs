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

use crate::plan::pin::PinSet;
use std::path::PathBuf;
use std::time::Duration;

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
    Https { url: String, ca_file: Option<PathBuf> },
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

/// Why discovery failed. (Placeholder: the discovery module defines the real variants.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("discovery is not implemented yet")]
    NotImplemented,
}

impl crate::error::Classify for Error {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Other
    }
}

/// Runs the configured discovery. (Placeholder until the discovery module lands.)
pub async fn discover(_opts: &Options) -> Result<Discovered, Error> {
    Err(Error::NotImplemented)
}
