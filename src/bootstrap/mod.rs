//! The kubelet's TLS bootstrap, done by kubejoin (spec §5): cluster configuration, key, CSR,
//! submit, wait, verify.
//!
//! Stages, each a function the app runs as a named phase:
//! - [`config::fetch`]: `kubeadm-config`, then the kubelet-config ConfigMap under the name of
//!   the cluster's version, with the bootstrap credentials (not `kube-proxy`, which a worker
//!   never uses), and the Node-name clash check ([`config::check_node`]); the cluster's version
//!   then decides the CSR usages and kubelet flags ([`crate::versions`]);
//! - [`csr::load_or_generate_key`] + [`csr::submit`]: a P-256 key persisted before anything is
//!   sent, a CSR named deterministically from it (`node-csr-<digest>`, spec §5.2) so an
//!   interrupted join resumes with the same CSR;
//! - [`wait::wait`]: a watch, from the POST's resourceVersion, until the CSR is approved and
//!   issued, denied, failed, deleted or the deadline passes (a pure progress function plus a small
//!   deadline loop; LIST + watch only when that watch cannot start);
//! - [`verify::verify`]: the returned certificate must be for our key, our subject, chain to the
//!   discovered CA and be valid now. Nothing is installed before it passes.
//!
//! The API calls of the first two are retried by [`backoff::within`] (overload, failover,
//! resets) inside their phase's clock; the wait has its own deadline loop. A phase that runs
//! out of time ends with [`Error::GaveUp`] (see [`crate::deadline`]).

pub mod backoff;
pub mod config;
pub mod csr;
pub mod existing;
pub mod verify;
pub mod wait;

use crate::discovery::{BootstrapCredentials, Discovered};
use crate::error::{Class, Classify};
use crate::kube::{self, Identity, Timeouts, WireFailure};
use crate::plan::node_name::{NodeName, NodeNameError};
use crate::sys::Exec;
use std::time::Duration;

/// Longest silence on a watch connection before it counts as dead. Watches ask the server to
/// end them well before (see [`wait::MAX_WATCH_TIMEOUT`]).
pub const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(90);

/// The group kubeadm's RBAC grants everything a join needs to (spec §7).
pub const DEFAULT_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// Why the TLS bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("building the API client for {server}")]
    Client {
        server: String,
        #[source]
        source: kube::ClientError,
    },
    /// An API call failed on the wire or with an unexpected status.
    #[error("{action} at {server}: {}", describe(failure))]
    Api {
        action: String,
        server: String,
        failure: WireFailure,
        /// The answer's `Retry-After` in milliseconds (saturating; kept small so that
        /// `Result<_, Error>` stays small), honoured by [`backoff::within`].
        retry_after_ms: Option<u32>,
    },
    #[error("ConfigMap kube-system/{name} has no key {key:?}")]
    MissingConfig {
        name: &'static str,
        key: &'static str,
    },
    #[error("ConfigMap kube-system/{name} key {key:?} is not valid YAML: {why}")]
    BadConfig {
        name: &'static str,
        key: &'static str,
        why: String,
    },
    #[error("a Node with name {name:?} and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node")]
    NodeExists { name: String },
    #[error("reading this machine's hostname to name the node")]
    Hostname(#[source] std::io::Error),
    #[error("this machine's hostname cannot be used as the node name")]
    HostnameNotANodeName(#[source] NodeNameError),
    #[error("storing the node's private key")]
    StoreKey(#[source] crate::fs::atomic::WriteError),
    #[error("generating the node's private key: {0}")]
    KeyGen(String),
    #[error("building the certificate signing request: {0}")]
    BuildCsr(String),
    #[error("certificate signing request {name} exists but cannot be reused: {why}")]
    CsrConflict { name: String, why: String },
    #[error("certificate signing request {name} is denied, reason: {reason}, message: {message}")]
    Denied {
        name: String,
        reason: String,
        message: String,
    },
    #[error("certificate signing request {name} failed, reason: {reason}, message: {message}")]
    Failed {
        name: String,
        reason: String,
        message: String,
    },
    #[error("certificate signing request {name} was deleted while waiting for it to be issued")]
    Deleted { name: String },
    #[error("certificate signing request {name} changed UIDs (it was deleted and re-created by someone else)")]
    UidChanged { name: String },
    #[error("timed out after {} waiting for certificate signing request {name} to be approved and issued", crate::time::duration::format(*waited))]
    Timeout {
        name: String,
        waited: Duration,
        approved: bool,
        /// The usages the request asked for (some control planes never approve some sets).
        usages: Vec<String>,
    },
    #[error("the certificate issued for {name} is not acceptable")]
    Certificate {
        name: String,
        #[source]
        source: verify::VerifyError,
    },
    /// The node already has an identity a join must not replace silently.
    #[error(transparent)]
    Existing(#[from] existing::Conflict),
    /// A phase ran out of time (its own bound or the overall `--timeout`).
    #[error(transparent)]
    GaveUp(#[from] crate::deadline::Expired),
    /// A refusal (401/403) that was retried past an API server's restart window and persisted
    /// ([`crate::http::retry::Persistence`]): final, classified and hinted as the refusal itself.
    #[error("{source} (it persisted: {persisted})")]
    Persisted {
        #[source]
        source: Box<Error>,
        persisted: crate::http::retry::Persisted,
    },
}

/// A [`WireFailure`] in words.
pub fn describe(f: &WireFailure) -> String {
    match f {
        WireFailure::Status {
            code,
            reason,
            message,
        } if message.is_empty() => {
            format!("the server answered {code} {reason}")
        }
        WireFailure::Status {
            code,
            reason,
            message,
        } => {
            format!("the server answered {code} {reason}: {message}")
        }
        WireFailure::Refused => "connection refused".into(),
        WireFailure::TimedOut => "timed out".into(),
        WireFailure::TlsVerify(s) => format!("TLS verification failed: {s}"),
        WireFailure::Clock(c) => c.to_string(),
        WireFailure::UnpinnedCa(pins) => format!(
            "TLS verification failed: {}; only the pinned CAs are trusted, so the bootstrap token was not sent",
            kube::UnpinnedCa { pins: pins.clone() }
        ),
        WireFailure::Transport(s) => s.clone(),
    }
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Client { .. } => Class::Usage,
            Error::Api { failure, .. } => match failure {
                WireFailure::Status {
                    code: 401 | 403, ..
                } => Class::Rejected,
                WireFailure::TlsVerify(_) | WireFailure::UnpinnedCa(_) | WireFailure::Clock(_) => {
                    Class::Trust
                }
                WireFailure::Refused | WireFailure::TimedOut => Class::Timeout,
                _ => Class::Other,
            },
            Error::MissingConfig { .. } | Error::BadConfig { .. } => Class::Other,
            Error::NodeExists { .. } => Class::Rejected,
            Error::Hostname(_) => Class::Other,
            Error::HostnameNotANodeName(_) => Class::Usage,
            Error::StoreKey(_) | Error::KeyGen(_) | Error::BuildCsr(_) => Class::Other,
            Error::CsrConflict { .. } | Error::UidChanged { .. } => Class::Other,
            Error::Denied { .. } | Error::Failed { .. } | Error::Deleted { .. } => Class::Rejected,
            Error::Timeout { .. } => Class::Timeout,
            Error::Certificate { .. } => Class::Trust,
            Error::Existing(c) => c.class(),
            Error::GaveUp(e) => e.class(),
            Error::Persisted { source, .. } => source.class(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Existing(c) => c.hint(),
            Error::Api { failure: WireFailure::Status { code: 401, .. }, .. } => Some(
                "the bootstrap token was refused: it has likely expired or been deleted — create one with \
                 `kubeadm token create --print-join-command`"
                    .into(),
            ),
            Error::Api { failure: WireFailure::Status { code: 403, .. }, .. } => Some(format!(
                "the bootstrap token is not allowed to do this: it likely lacks the group \
                 {DEFAULT_NODE_TOKEN_GROUP}, which kubeadm's RBAC rules grant joins to — create a token \
                 with the default groups (`kubeadm token create --print-join-command`) or add the group \
                 (`kubeadm token create --groups {DEFAULT_NODE_TOKEN_GROUP}`)"
            )),
            Error::Api { failure: WireFailure::UnpinnedCa(pins), .. } => {
                Some(crate::discovery::unpinned_ca_hint(pins))
            }
            Error::Api { failure: WireFailure::Clock(c), .. } => c.hint(),
            Error::Api { failure: WireFailure::TlsVerify(_), server, .. } => Some(format!(
                "{server} presented a certificate that does not chain to the discovered cluster CA or \
                 does not name that address; the server: URL in cluster-info must be covered by the \
                 API server certificate"
            )),
            Error::Api { failure: WireFailure::Refused | WireFailure::TimedOut, server, .. } => Some(format!(
                "check that {server} (the server: URL published in cluster-info) is reachable from this machine"
            )),
            Error::MissingConfig { name, .. } | Error::BadConfig { name, .. } => Some(format!(
                "the cluster does not look set up by kubeadm; on a control-plane node, \
                 `kubeadm init phase upload-config all` recreates kube-system/{name}"
            )),
            Error::NodeExists { name } => Some(format!(
                "if that Node is a previous life of this machine, remove it with `kubectl delete node {name}`; \
                 otherwise choose another name with --node-name"
            )),
            Error::Hostname(_) | Error::HostnameNotANodeName(_) => {
                Some("set the node name explicitly with --node-name".into())
            }
            Error::Failed { name, reason, message } if reason == "SignerValidationFailure" && message.contains("usages") => {
                Some(format!(
                    "the cluster's signer (kube-controller-manager) does not accept the usages this request asks \
                     for; kubejoin chooses them by the version in kube-system/kubeadm-config (before v1.25 only \
                     [digital signature, key encipherment, client auth] is signed) — if kube-controller-manager \
                     runs an older version than that (an upgrade in progress), finish the upgrade or correct \
                     kubernetesVersion, then remove the request with `kubectl delete csr {name}` and run kubejoin again"
                ))
            }
            Error::Denied { name, .. } | Error::Failed { name, .. } => Some(format!(
                "an administrator or the signer refused this node's certificate; if that was a mistake, \
                 remove the request with `kubectl delete csr {name}` and run kubejoin again"
            )),
            Error::Deleted { .. } => Some("run kubejoin again to submit a new request".into()),
            Error::Timeout { name, approved: false, usages, .. } => Some(format!(
                "nobody approved the request: approve it with `kubectl certificate approve {name}` \
                 (or check that the token carries the group {DEFAULT_NODE_TOKEN_GROUP}, whose requests \
                 kubeadm's RBAC auto-approves), or raise --tls-bootstrap-timeout{}",
                wait::usages_note(usages)
            )),
            Error::Timeout { approved: true, .. } => Some(
                "the request was approved but no certificate was issued: check that kube-controller-manager \
                 runs its csrsigning controller with the cluster CA"
                    .into(),
            ),
            Error::Certificate { .. } => Some(
                "the API server returned a certificate that does not belong to this request or this \
                 cluster; nothing was installed"
                    .into(),
            ),
            Error::GaveUp(e) => e.hint(),
            Error::Persisted { source, .. } => source.hint(),
            _ => None,
        }
    }
}

/// Wraps a failed request of `action` against `server`.
pub(crate) fn api_error(action: impl Into<String>, server: &str, e: &kube::RequestError) -> Error {
    Error::Api {
        action: action.into(),
        server: server.to_string(),
        failure: e.failure(),
        retry_after_ms: e.retry_after().map(millis),
    }
}

/// A pause as whole milliseconds, saturating at `u32::MAX` (49 days).
pub(crate) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Clients for the discovered cluster, authenticated with the bootstrap credentials.
#[derive(Clone)]
pub struct Cluster {
    /// `server:` of cluster-info.
    pub server: String,
    /// For ordinary requests (per-request timeout).
    pub client: kube::Client,
    /// For watches: the same connections, with a silence bound of [`WATCH_READ_TIMEOUT`],
    /// longer than any watch's `timeoutSeconds` (after which the server ends the stream), so
    /// only a dead connection trips it.
    pub watch_client: kube::Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects (lazily) to `d.server`, trusting only the discovered trust anchors (the pinned
    /// CAs, for token discovery with pins).
    pub fn connect(d: &Discovered) -> Result<Self, Error> {
        let identity = match &d.credentials {
            BootstrapCredentials::Token(t) => Identity::Token(t.clone()),
            BootstrapCredentials::ClientCert { cert_pem, key_pem } => Identity::ClientCert {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            },
        };
        let trust = d.trust();
        // Discovery's connection, its certificate verified against the same trust (see
        // `Discovered::warm`), with the token from now on.
        let warm = match (&d.warm, &d.credentials) {
            (Some(w), BootstrapCredentials::Token(t)) if w.serves(&d.server) => Some(
                w.with_token(t)
                    .map(|c| c.with_read_timeout(Timeouts::default().read)),
            ),
            _ => None,
        };
        let client = match warm {
            Some(c) => c,
            None => kube::client(&d.server, &trust, &identity, Timeouts::default()),
        }
        .map_err(|source| Error::Client {
            server: d.server.clone(),
            source,
        })?;
        let watch_client = client.with_read_timeout(Some(WATCH_READ_TIMEOUT));
        Ok(Self {
            server: d.server.clone(),
            client,
            watch_client,
        })
    }
}

/// The node's name and, when known, the lower-cased OS hostname (which decides whether the
/// kubelet needs `--hostname-override`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub name: NodeName,
    pub hostname: Option<String>,
}

/// `--node-name`, or the hostname trimmed and lower-cased as kubeadm's `GetHostname` does.
pub fn resolve_node_name(given: Option<&NodeName>, sys: &dyn Exec) -> Result<NodeIdentity, Error> {
    let hostname = sys.hostname().map(|h| h.trim().to_ascii_lowercase());
    match (given, hostname) {
        (Some(n), h) => Ok(NodeIdentity {
            name: n.clone(),
            hostname: h.ok(),
        }),
        (None, Ok(h)) => {
            let name = NodeName::from_hostname(&h).map_err(Error::HostnameNotANodeName)?;
            Ok(NodeIdentity {
                name,
                hostname: Some(h),
            })
        }
        (None, Err(e)) => Err(Error::Hostname(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::exec::{ExecCall, RecordingExec};

    #[test]
    fn node_name_defaults_to_lowercased_hostname() {
        let sys = RecordingExec::new("Worker-7\n");
        let id = resolve_node_name(None, &sys).unwrap();
        assert_eq!(id.name.as_str(), "worker-7");
        assert_eq!(id.hostname.as_deref(), Some("worker-7"));
        assert_eq!(sys.calls(), vec![ExecCall::Hostname]);
    }

    #[test]
    fn explicit_node_name_wins_and_survives_a_hostname_failure() {
        let n = NodeName::parse("node-a").unwrap();
        let sys = RecordingExec::new("x").failing_hostname(std::io::ErrorKind::PermissionDenied);
        let id = resolve_node_name(Some(&n), &sys).unwrap();
        assert_eq!(
            id,
            NodeIdentity {
                name: n,
                hostname: None
            }
        );
        let e = resolve_node_name(None, &sys).unwrap_err();
        assert!(matches!(e, Error::Hostname(_)));
        assert!(e.hint().unwrap().contains("--node-name"));
    }

    #[test]
    fn invalid_hostname_is_a_usage_error_with_a_hint() {
        let e = resolve_node_name(None, &RecordingExec::new("bad_host")).unwrap_err();
        assert_eq!(e.class(), Class::Usage);
        assert!(e.hint().unwrap().contains("--node-name"));
    }

    #[test]
    fn a_server_chaining_to_an_unpinned_ca_is_a_trust_failure_naming_it() {
        let pin = crate::pki::pin::CaPin::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let e = Error::Api {
            action: "getting ConfigMap kube-system/kubelet-config".into(),
            server: "https://10.0.0.1:6443".into(),
            failure: WireFailure::UnpinnedCa(vec![pin.clone()]),
            retry_after_ms: None,
        };
        assert_eq!(e.class(), Class::Trust);
        let text = e.to_string();
        assert!(
            text.contains(&format!("presented a certificate issued by CA {pin}"))
                && text.contains("the bootstrap token was not sent"),
            "{text}"
        );
        assert!(e
            .hint()
            .unwrap()
            .contains(&format!("--discovery-token-ca-cert-hash {pin}")));
    }

    #[test]
    fn forbidden_is_rejected_with_the_group_hint() {
        let e = Error::Api {
            action: "getting ConfigMap kube-system/kubelet-config".into(),
            server: "https://10.0.0.1:6443".into(),
            failure: WireFailure::Status {
                code: 403,
                reason: "Forbidden".into(),
                message: "no".into(),
            },
            retry_after_ms: None,
        };
        assert_eq!(e.class(), Class::Rejected);
        assert_eq!(
            e.to_string(),
            "getting ConfigMap kube-system/kubelet-config at https://10.0.0.1:6443: the server answered 403 Forbidden: no"
        );
        assert!(e.hint().unwrap().contains(DEFAULT_NODE_TOKEN_GROUP));
    }
}
