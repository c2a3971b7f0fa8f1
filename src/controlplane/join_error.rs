//! Why a control-plane join failed, classified for the exit code.

use super::download::DownloadError;
use super::etcd::{self, EtcdError};
use super::pki::PkiError;
use crate::deadline::Expired;
use crate::error::{Class, Classify};
use crate::install;
use crate::kube::RequestError;

/// Why a control-plane join failed. Never carries the certificate key or a private key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} from {server}")]
    Api {
        what: String,
        server: String,
        #[source]
        source: RequestError,
    },
    #[error("downloading the shared certificates (kube-system/kubeadm-certs)")]
    Download(#[source] DownloadError),
    #[error("reading the cluster's ClusterConfiguration")]
    Config(#[source] super::cluster::ConfigError),
    #[error(
        "unable to add a new control plane instance to a cluster that doesn't have a stable \
         controlPlaneEndpoint address"
    )]
    NoControlPlaneEndpoint,
    #[error("making this control plane's certificates")]
    Pki(#[source] PkiError),
    #[error(
        "control-plane preflight: {} already exist(s) ({}): this node holds (part of) a control plane already",
        .existing.len(),
        .existing.join(", ")
    )]
    Preflight { existing: Vec<String> },
    #[error("control-plane preflight: port(s) in use: {}", .0.join(", "))]
    Ports(Vec<String>),
    #[error("writing the control-plane files")]
    Write(#[source] install::Error),
    #[error(
        "no etcd endpoint found: no etcd Pod in kube-system carries the annotation {}",
        etcd::ADVERTISE_ANNOTATION
    )]
    NoEtcdEndpoints,
    #[error("joining the etcd cluster")]
    Etcd(#[source] EtcdError),
    #[error("{phase}: {detail}")]
    Deadline {
        phase: &'static str,
        detail: String,
        #[source]
        source: Box<Expired>,
    },
    #[error("starting the control-plane finish step ({} finish-control-plane)", .program.display())]
    FinishStep {
        program: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Api { source, .. } => match source.status_code() {
                Some(401 | 403) => Class::Rejected,
                _ => Class::Other,
            },
            Error::Download(DownloadError::WrongKey { .. }) => Class::Usage,
            Error::Download(DownloadError::NotFound | DownloadError::Forbidden) => Class::Rejected,
            Error::Download(_) => Class::Other,
            Error::Preflight { .. } | Error::Ports(_) => Class::Usage,
            Error::NoControlPlaneEndpoint => Class::Rejected,
            Error::Etcd(EtcdError::Refused { .. }) => Class::Rejected,
            Error::Deadline { .. } => Class::Timeout,
            _ => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Download(e) => e.hint().map(str::to_string),
            Error::Preflight { .. } | Error::Ports(_) => Some(
                "a join interrupted before it finished left these: re-run with --force to make them again \
                 (or --ignore-preflight-errors=all); otherwise reset the node first (`kubeadm reset`)"
                    .into(),
            ),
            Error::NoControlPlaneEndpoint => Some(
                "set controlPlaneEndpoint (a load balancer or DNS name for every API server) in the cluster's \
                 ClusterConfiguration, as kubeadm requires before adding control planes"
                    .into(),
            ),
            Error::Config(_) => Some("join this node with kubeadm, or fix kube-system/kubeadm-config".into()),
            Error::Write(e) => e.hint(),
            Error::Etcd(_) | Error::NoEtcdEndpoints => Some(
                "check the etcd cluster's health on an existing control plane (`etcdctl endpoint health`, \
                 `etcdctl member list`); a member left by an earlier attempt may need `etcdctl member remove`"
                    .into(),
            ),
            Error::Deadline { source, .. } => source.hint(),
            Error::FinishStep { .. } => Some(
                "the node's files are written: start `kubejoin finish-control-plane` once the kubelet runs \
                 (or boot with kubejoin.handoff=none and run the kubelet as a service)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Maps a failed request to [`Error::Api`] naming what was asked of whom.
pub(super) fn api(
    what: impl Into<String>,
    server: &str,
) -> impl FnOnce(RequestError) -> Error + '_ {
    let what = what.into();
    move |source| Error::Api {
        what,
        server: server.to_string(),
        source,
    }
}
