//! The inputs of a control-plane join (`kubeadm join --control-plane --certificate-key`),
//! validated once for every source: flags (`--control-plane`, `--certificate-key[-file]`,
//! `--apiserver-advertise-address`, `--apiserver-bind-port`), the kernel command line
//! (`kubejoin.control-plane`, `kubejoin.certificate-key[-file]`, `kubejoin.advertise-address`)
//! and a JoinConfiguration's `controlPlane`.

use crate::error::{Class, Classify};
use crate::plan::certificate_key::{CertificateKey, KeyError, KeyFileError};
use std::net::IpAddr;

/// kubeadm's default `localAPIEndpoint.bindPort`.
pub const DEFAULT_BIND_PORT: u16 = 6443;

/// What a control-plane join needs beyond a worker's. `Debug` redacts the key (its type does).
#[derive(Debug, Clone)]
pub struct ControlPlanePlan {
    /// Decrypts `kube-system/kubeadm-certs`. A secret.
    pub certificate_key: CertificateKey,
    /// Where the key came from (`--certificate-key`, `file:/path`, `cmdline`, a config file):
    /// shown instead of the key.
    pub key_source: String,
    /// `localAPIEndpoint.advertiseAddress`: where this node's API server and etcd are reached.
    pub advertise_address: IpAddr,
    /// `localAPIEndpoint.bindPort` (default 6443).
    pub bind_port: u16,
    /// Where the join waits for the local API server to be healthy (default
    /// `https://<advertise address>:<bind port>/healthz`); `--control-plane-healthz-url`.
    pub healthz_url: Option<String>,
}

/// The control-plane inputs of one join, as its sources gave them (not yet validated).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `--control-plane`, `kubejoin.control-plane`, a JoinConfiguration's `controlPlane`.
    pub enabled: bool,
    /// The key and where it came from (parsed already by sources that parse on read).
    pub key: Option<(CertificateKey, String)>,
    /// `--apiserver-advertise-address` etc., as written.
    pub advertise_address: Option<String>,
    pub bind_port: Option<u16>,
    pub healthz_url: Option<String>,
    /// The node's address when a source gave one (`node-ip`): kubeadm's default advertise
    /// address is the host's; kubejoin takes the node IP when it has one.
    pub node_ip: Option<IpAddr>,
}

/// Control-plane inputs that do not make a control-plane join. Never carries the key.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(
        "a control-plane join needs the certificate key that decrypts Secret kube-system/kubeadm-certs"
    )]
    NoKey,
    #[error("invalid certificate key")]
    Key(#[source] KeyError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("the certificate key is given twice ({0}): give it once, preferably by file")]
    KeyTwice(String),
    #[error("{what} is set, but this is not a control-plane join (no --control-plane)")]
    NotControlPlane { what: String },
    #[error("invalid advertise address {0:?}: not an IP address")]
    Advertise(String),
    #[error(
        "a control-plane join needs the address this node's API server and etcd advertise, and none was given"
    )]
    NoAdvertise,
    #[error("invalid API server bind port 0")]
    BindPort,
    #[error("invalid --control-plane-healthz-url {0:?}: expected an https:// URL")]
    HealthzUrl(String),
}

impl Classify for ControlPlaneError {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::NoKey | Self::Key(_) => Some(
                "on an existing control plane run `kubeadm init phase upload-certs --upload-certs`; pass the key it \
                 prints with --certificate-key-file FILE (chmod 600) or --certificate-key"
                    .into(),
            ),
            Self::NoAdvertise | Self::Advertise(_) => Some(
                "pass --apiserver-advertise-address IP (kernel command line: kubejoin.advertise-address=IP; \
                 JoinConfiguration: controlPlane.localAPIEndpoint.advertiseAddress)"
                    .into(),
            ),
            Self::NotControlPlane { .. } => {
                Some("add --control-plane (kubejoin.control-plane) or drop the control-plane settings".into())
            }
            _ => None,
        }
    }
}

/// Builds the control-plane part of a plan: `Ok(None)` for a worker join.
pub fn build(i: Inputs) -> Result<Option<ControlPlanePlan>, ControlPlaneError> {
    if !i.enabled {
        let what = if i.key.is_some() {
            Some("a certificate key")
        } else if i.advertise_address.is_some() {
            Some("an advertise address")
        } else if i.bind_port.is_some() {
            Some("an API server bind port")
        } else if i.healthz_url.is_some() {
            Some("--control-plane-healthz-url")
        } else {
            None
        };
        return match what {
            Some(w) => Err(ControlPlaneError::NotControlPlane { what: w.into() }),
            None => Ok(None),
        };
    }
    let (certificate_key, key_source) = i.key.ok_or(ControlPlaneError::NoKey)?;
    let advertise_address = match &i.advertise_address {
        Some(a) => a
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| ControlPlaneError::Advertise(a.clone()))?,
        None => i.node_ip.ok_or(ControlPlaneError::NoAdvertise)?,
    };
    if advertise_address.is_unspecified() {
        return Err(ControlPlaneError::Advertise(advertise_address.to_string()));
    }
    let bind_port = i.bind_port.unwrap_or(DEFAULT_BIND_PORT);
    if bind_port == 0 {
        return Err(ControlPlaneError::BindPort);
    }
    if let Some(u) = &i.healthz_url {
        if !u.starts_with("https://") {
            return Err(ControlPlaneError::HealthzUrl(u.clone()));
        }
    }
    Ok(Some(ControlPlanePlan {
        certificate_key,
        key_source,
        advertise_address,
        bind_port,
        healthz_url: i.healthz_url,
    }))
}

/// Parses a key given as text by `source` (a flag, the kernel command line, a config file).
pub fn parse_key(text: &str, source: &str) -> Result<(CertificateKey, String), ControlPlaneError> {
    CertificateKey::parse(text)
        .map(|k| (k, source.to_string()))
        .map_err(ControlPlaneError::Key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";

    fn inputs() -> Inputs {
        Inputs {
            enabled: true,
            key: Some(parse_key(KEY, "--certificate-key").unwrap()),
            advertise_address: Some("10.0.0.2".into()),
            ..Inputs::default()
        }
    }

    #[test]
    fn builds_with_defaults_and_refuses_what_cannot_work() {
        let p = build(inputs()).unwrap().unwrap();
        assert_eq!(p.bind_port, 6443);
        assert_eq!(p.advertise_address.to_string(), "10.0.0.2");
        assert!(!format!("{p:?}").contains(KEY));
        assert!(build(Inputs::default()).unwrap().is_none());
        let e = build(Inputs {
            key: None,
            ..inputs()
        })
        .unwrap_err();
        assert!(matches!(e, ControlPlaneError::NoKey));
        assert!(e.hint().unwrap().contains("upload-certs"));
        let e = build(Inputs {
            advertise_address: None,
            ..inputs()
        })
        .unwrap_err();
        assert!(matches!(e, ControlPlaneError::NoAdvertise));
        // The node IP a provider gave stands in for it.
        let p = build(Inputs {
            advertise_address: None,
            node_ip: Some("10.0.0.9".parse().unwrap()),
            ..inputs()
        })
        .unwrap()
        .unwrap();
        assert_eq!(p.advertise_address.to_string(), "10.0.0.9");
        let e = build(Inputs {
            enabled: false,
            ..inputs()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a certificate key is set, but this is not a control-plane join (no --control-plane)"
        );
        let e = parse_key("abc", "--certificate-key").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("abc"));
    }
}
