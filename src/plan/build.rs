//! Merged settings → a [`JoinPlan`]: the one set of rules that decides whether join data makes a
//! join, whatever its sources.

use crate::discovery::{Mode, Options};
use crate::error::{Class, Classify};
use crate::pki::pin::PinError;
use crate::pki::pin::PinSet;
use crate::plan::endpoint::Endpoint;
use crate::plan::endpoint::EndpointError;
use crate::plan::key::Key;
use crate::plan::merge::{Settings, Source, Sourced};
use crate::plan::network::NetworkPlan;
use crate::plan::node_name::NodeName;
use crate::plan::node_name::NodeNameError;
use crate::plan::{HandoffMode, JoinPlan, DEFAULT_CRI_SOCKET};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Join data that does not make a join. None carries a token secret.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Endpoint(EndpointError),
    #[error("invalid discovery token CA certificate hash")]
    Pin(#[source] PinError),
    #[error("invalid node name")]
    NodeName(#[source] NodeNameError),
    #[error("using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue")]
    NoPin,
    #[error(
        "no discovery method given: pass an API server endpoint with --token, or --discovery-file"
    )]
    NoDiscovery,
    #[error("bootstrapToken and file cannot both be set: use either token discovery (endpoint + --discovery-token) or --discovery-file")]
    BothDiscovery,
    #[error("no API server endpoint given for token discovery")]
    NoEndpoint,
    #[error("no bootstrap token given for token discovery")]
    NoToken,
    #[error("if a URL is used, the scheme must be https (got {0:?})")]
    DiscoveryScheme(String),
    #[error(transparent)]
    Ntp(crate::clock::client::ServerSpecError),
    #[error(transparent)]
    ControlPlane(crate::plan::control_plane::ControlPlaneError),
}

impl Classify for PlanError {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hint(&self) -> Option<String> {
        match self {
            PlanError::NoPin => Some(
                "print the pin on a control-plane node with `kubejoin ca-hash /etc/kubernetes/pki/ca.crt` \
                 (or `kubeadm token create --print-join-command`) and pass --discovery-token-ca-cert-hash"
                    .into(),
            ),
            PlanError::NoToken => Some(
                "create a token on a control-plane node with `kubeadm token create --print-join-command`".into(),
            ),
            PlanError::Endpoint(_) | PlanError::NoEndpoint => {
                Some("give the API server as host:port, e.g. `kubejoin join 10.0.0.1:6443 …`".into())
            }
            PlanError::NoDiscovery | PlanError::BothDiscovery => {
                Some("run `kubejoin help` for the flags".into())
            }
            PlanError::Ntp(e) => e.hint(),
            PlanError::ControlPlane(e) => e.hint(),
            _ => None,
        }
    }
}

/// Merged settings that do not make a valid join. Each names the key and the layer it came
/// from; none carries a token secret.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// One value is invalid (the CLI's own check and message).
    #[error("{key} from {origin}: {error}")]
    Invalid {
        key: &'static str,
        origin: Source,
        error: PlanError,
    },
    /// Something required is missing (the CLI's message, plus what the sources did give).
    #[error("{error} ({context})")]
    Missing { error: PlanError, context: String },
    /// Token and file discovery are both configured.
    #[error(
        "token discovery ({token_key} from {token_origin}) and file discovery (discovery-file from \
         {file_origin}) are both set: bootstrapToken and file cannot both be set; use one"
    )]
    BothDiscovery {
        token_key: &'static str,
        token_origin: Source,
        file_origin: Source,
    },
}

impl Classify for SettingsError {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hint(&self) -> Option<String> {
        match self {
            SettingsError::Invalid { error, .. } | SettingsError::Missing { error, .. } => error.hint(),
            SettingsError::BothDiscovery { .. } => Some(
                "remove kubejoin.discovery-file, or kubejoin.endpoint/ca-cert-hash, from the layer that should not \
                 decide discovery (`kubejoin plan` shows every value's source)"
                    .into(),
            ),
        }
    }
}

fn source_of<T>(v: &Option<Sourced<T>>) -> String {
    v.as_ref()
        .map(|s| s.source.to_string())
        .unwrap_or_else(|| "none".into())
}

impl Settings {
    /// The discovery mode, checked as `kubejoin join` checks its flags.
    fn discovery_mode(&self) -> Result<Mode, SettingsError> {
        if let Some(file) = &self.discovery_file {
            // kubeadm: a bootstrapToken and a file cannot both be set. The token itself may stay:
            // it is then the TLS bootstrap token.
            let token_side = self
                .endpoint
                .as_ref()
                .map(|e| ("endpoint", e.source.clone()))
                .or_else(|| {
                    self.ca_cert_hashes
                        .as_ref()
                        .map(|p| ("ca-cert-hash", p.source.clone()))
                });
            if let Some((token_key, token_origin)) = token_side {
                return Err(SettingsError::BothDiscovery {
                    token_key,
                    token_origin,
                    file_origin: file.source.clone(),
                });
            }
            let f = &file.value;
            let invalid = |error| SettingsError::Invalid {
                key: "discovery-file",
                origin: file.source.clone(),
                error,
            };
            return if let Some(rest) = f.strip_prefix("file://") {
                Ok(Mode::File { path: rest.into() })
            } else if f.starts_with("https://") {
                Ok(Mode::Https {
                    url: f.clone(),
                    ca_file: None,
                })
            } else if f.contains("://") {
                Err(invalid(PlanError::DiscoveryScheme(f.clone())))
            } else {
                Ok(Mode::File { path: f.into() })
            };
        }
        let Some(endpoint) = &self.endpoint else {
            return Err(SettingsError::Missing {
                error: if self.token.is_some() { PlanError::NoEndpoint } else { PlanError::NoDiscovery },
                context: format!(
                    "no kubejoin.endpoint or kubejoin.discovery-file from any source; token from {}",
                    source_of(&self.token)
                ),
            });
        };
        Endpoint::parse(&endpoint.value).map_err(|e| SettingsError::Invalid {
            key: "endpoint",
            origin: endpoint.source.clone(),
            error: PlanError::Endpoint(e),
        })?;
        let Some(token) = &self.token else {
            return Err(SettingsError::Missing {
                error: PlanError::NoToken,
                context: format!(
                    "endpoint from {}; no kubejoin.token from any source",
                    endpoint.source
                ),
            });
        };
        // Each pin was parsed when its layer was read: it is not turned back into text here.
        let pins = self
            .ca_cert_hashes
            .as_ref()
            .map(|p| PinSet::from_pins(&p.value))
            .unwrap_or_default();
        let unsafe_skip = self
            .unsafe_skip_ca_verification
            .as_ref()
            .is_some_and(|u| u.value);
        if pins.is_empty() && !unsafe_skip {
            return Err(SettingsError::Missing {
                error: PlanError::NoPin,
                context: format!(
                    "token from {}, endpoint from {}; no kubejoin.ca-cert-hash and no \
                     kubejoin.{} from any source",
                    token.source,
                    endpoint.source,
                    Key::UnsafeSkipCaVerification.name()
                ),
            });
        }
        Ok(Mode::Token {
            endpoint: endpoint.value.clone(),
            token: token.value.clone(),
            pins,
            unsafe_skip_ca_verification: unsafe_skip,
        })
    }

    /// The join plan these settings describe, with the CLI's validation. `root` is where the
    /// node's filesystem is; `dry_run`, `force`, `kubelet_path`, `skip_phases` and
    /// `ignore_preflight_errors` start from their CLI defaults unless a layer set them.
    pub fn to_plan(&self, root: &Path) -> Result<JoinPlan, SettingsError> {
        let mode = self.discovery_mode()?;
        let tls_bootstrap_token = self
            .tls_bootstrap_token
            .as_ref()
            .or(self.token.as_ref())
            .map(|t| t.value.clone());
        let node_name = match &self.node_name {
            None => None,
            Some(n) => Some(NodeName::parse(&n.value.to_ascii_lowercase()).map_err(|e| {
                SettingsError::Invalid {
                    key: "node-name",
                    origin: n.source.clone(),
                    error: PlanError::NodeName(e),
                }
            })?),
        };
        let mut cri_socket = self
            .cri_socket
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_else(|| DEFAULT_CRI_SOCKET.to_string());
        if !cri_socket.contains("://") {
            // As kubeadm (and the CLI) do for a bare path.
            cri_socket = format!("unix://{cri_socket}");
        }
        let mut kubelet_extra_args: Vec<(String, String)> =
            self.kubelet_args.iter().map(|a| a.value.clone()).collect();
        if let Some(ip) = &self.node_ip {
            if !kubelet_extra_args.iter().any(|(n, _)| n == "node-ip") {
                kubelet_extra_args.push(("node-ip".into(), ip.value.to_string()));
            }
        }
        let handoff = match self.handoff.as_ref().map(|h| h.value.as_str()) {
            Some("exec") => HandoffMode::Exec,
            // `switch-root` is carried out by PID-1 mode after the join; to the join itself it
            // means "install and return", like `none`.
            _ => HandoffMode::None,
        };
        let five_min = Duration::from_secs(300);
        let control_plane = self.control_plane_plan(&kubelet_extra_args)?;
        Ok(JoinPlan {
            discovery: Options {
                mode,
                tls_bootstrap_token,
                // kubeadm's per-loop discovery bound; the overall deadline below caps it.
                timeout: self
                    .discovery_timeout
                    .as_ref()
                    .map_or(five_min, |t| t.value),
                retry_interval: Duration::from_secs(5),
            },
            node_name,
            cri_socket,
            kubelet_extra_args,
            taints: self
                .taints
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default(),
            root: root.to_path_buf(),
            dry_run: self.dry_run.as_ref().is_some_and(|d| d.value),
            force: false,
            tls_bootstrap_timeout: self
                .tls_bootstrap_timeout
                .as_ref()
                .map_or(five_min, |t| t.value),
            // `kubejoin.timeout`: the overall deadline of the join (issue contract), not discovery's.
            timeout: self
                .timeout
                .as_ref()
                .map_or(crate::deadline::DEFAULT_TIMEOUT, |t| t.value),
            handoff,
            kubelet_path: PathBuf::from(
                self.kubelet_path
                    .as_ref()
                    .map_or("/usr/bin/kubelet", |k| k.value.as_str()),
            ),
            skip_phases: self
                .skip_phases
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default(),
            ignore_preflight_errors: self
                .ignore_preflight_errors
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default(),
            host: crate::host::HostConfig {
                modules: self
                    .modules
                    .as_ref()
                    .map(|m| m.value.clone())
                    .unwrap_or_default(),
                sysctls: self.sysctls.iter().map(|s| s.value.clone()).collect(),
                ..crate::host::HostConfig::default()
            },
            network: self.network.as_ref().map(|n| NetworkPlan {
                spec: n.value.clone(),
                source: n.source.to_string(),
            }),
            time: match &self.ntp {
                None => crate::plan::TimePlan::default(),
                // Every value was checked when its layer was read: an error here is a bug.
                Some(n) => {
                    crate::plan::TimePlan::of(&n.value, &n.source.to_string()).map_err(|e| {
                        SettingsError::Invalid {
                            key: "ntp",
                            origin: n.source.clone(),
                            error: PlanError::Ntp(e),
                        }
                    })?
                }
            },
            control_plane,
        })
    }

    /// The control-plane part of the plan, by the same rules as the flags'
    /// ([`crate::plan::control_plane::build`]); an error names the layer of the value at fault.
    fn control_plane_plan(
        &self,
        kubelet_extra_args: &[(String, String)],
    ) -> Result<Option<crate::plan::control_plane::ControlPlanePlan>, SettingsError> {
        use crate::plan::control_plane::{build, ControlPlaneError, Inputs};
        let origin = match &self.control_plane {
            Some(c) => c.source.clone(),
            None => self
                .certificate_key
                .as_ref()
                .map(|k| k.source.clone())
                .or_else(|| self.advertise_address.as_ref().map(|a| a.source.clone()))
                .unwrap_or(Source::Default),
        };
        let node_ip = kubelet_extra_args
            .iter()
            .find(|(k, _)| k == "node-ip")
            .and_then(|(_, v)| v.parse().ok())
            .or(self.node_ip.as_ref().map(|n| n.value));
        build(Inputs {
            enabled: self.control_plane.as_ref().is_some_and(|c| c.value),
            key: self
                .certificate_key
                .as_ref()
                .map(|k| (k.value.clone(), k.source.to_string())),
            advertise_address: self.advertise_address.as_ref().map(|a| a.value.to_string()),
            bind_port: self.bind_port.as_ref().map(|p| p.value),
            healthz_url: None,
            node_ip,
        })
        .map_err(|e| {
            let key = match &e {
                ControlPlaneError::NoKey
                | ControlPlaneError::Key(_)
                | ControlPlaneError::KeyTwice(_) => "certificate-key",
                ControlPlaneError::KeyFile(_) => "certificate-key-file",
                ControlPlaneError::Advertise(_) | ControlPlaneError::NoAdvertise => {
                    "advertise-address"
                }
                _ => "control-plane",
            };
            SettingsError::Invalid {
                key,
                origin,
                error: PlanError::ControlPlane(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::key::Key;
    use crate::plan::merge::{merge, Layer};
    use crate::plan::platform::Platform;
    use crate::plan::values::Values;

    use crate::plan::testutil::{file, token_layer, values, TOKEN};

    #[test]
    fn to_plan_builds_a_token_join() {
        let mut md = Values {
            node_ip: Some("10.0.0.7".parse().unwrap()),
            ..Values::default()
        };
        md.set(Key::NodeName, Some("IP-10-0-0-7.ec2.internal"))
            .unwrap();
        let s = merge(&[
            token_layer(),
            Layer::new(
                file(),
                values(&[
                    (Key::Handoff, "exec"),
                    (Key::Timeout, "90s"),
                    (Key::CriSocket, "/run/crio.sock"),
                ]),
            ),
            Layer::new(Source::Metadata(Platform::Aws), md),
            Layer::new(Source::Default, Values::builtin_defaults()),
        ]);
        let plan = s.to_plan(Path::new("/sysroot")).unwrap();
        match &plan.discovery.mode {
            Mode::Token {
                endpoint,
                token,
                pins,
                unsafe_skip_ca_verification,
            } => {
                assert_eq!(endpoint, "10.0.0.1:6443");
                assert_eq!(token.id(), "abcdef");
                assert_eq!(pins.pins().len(), 1);
                assert!(!unsafe_skip_ca_verification);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            plan.discovery.tls_bootstrap_token.as_ref().map(|t| t.id()),
            Some("abcdef")
        );
        // kubejoin.timeout is the overall deadline of the join; discovery keeps kubeadm's 5m loops.
        assert_eq!(plan.timeout, Duration::from_secs(90));
        assert_eq!(plan.discovery.timeout, Duration::from_secs(300));
        assert_eq!(plan.tls_bootstrap_timeout, Duration::from_secs(300));
        assert_eq!(
            plan.node_name.as_ref().map(|n| n.as_str()),
            Some("ip-10-0-0-7.ec2.internal")
        );
        assert_eq!(
            plan.kubelet_extra_args,
            [("node-ip".to_string(), "10.0.0.7".to_string())]
        );
        assert_eq!(plan.cri_socket, "unix:///run/crio.sock");
        assert_eq!(plan.handoff, HandoffMode::Exec);
        assert_eq!(plan.root, PathBuf::from("/sysroot"));
    }

    #[test]
    fn an_explicit_node_ip_kubelet_arg_wins_over_the_provider_address() {
        let md = Values {
            node_ip: Some("10.0.0.7".parse().unwrap()),
            ..Values::default()
        };
        let mut cmd = token_layer();
        cmd.values
            .set(Key::KubeletArg, Some("node-ip=192.168.1.5"))
            .unwrap();
        let plan = merge(&[cmd, Layer::new(Source::Metadata(Platform::Aws), md)])
            .to_plan(Path::new("/"))
            .unwrap();
        assert_eq!(
            plan.kubelet_extra_args,
            [("node-ip".to_string(), "192.168.1.5".to_string())]
        );
    }

    #[test]
    fn token_and_file_discovery_from_different_layers_is_refused_naming_both() {
        let s = merge(&[
            token_layer(),
            Layer::new(
                Source::Metadata(Platform::Azure),
                values(&[(Key::DiscoveryFile, "https://x/kubeconfig")]),
            ),
        ]);
        let e = s.to_plan(Path::new("/")).unwrap_err();
        assert!(matches!(e, SettingsError::BothDiscovery { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "token discovery (endpoint from cmdline) and file discovery (discovery-file from metadata:azure) are both \
             set: bootstrapToken and file cannot both be set; use one"
        );
        // A token next to a discovery file is the TLS bootstrap token, as with kubeadm.
        let s = merge(&[Layer::new(
            Source::Cmdline,
            values(&[
                (Key::DiscoveryFile, "/etc/kubernetes/discovery.conf"),
                (Key::Token, TOKEN),
            ]),
        )]);
        let plan = s.to_plan(Path::new("/")).unwrap();
        assert!(matches!(plan.discovery.mode, Mode::File { .. }));
        assert!(plan.discovery.tls_bootstrap_token.is_some());
    }

    #[test]
    fn no_pin_without_the_explicit_unsafe_flag() {
        let s = merge(&[
            Layer::new(Source::Cmdline, values(&[(Key::Token, TOKEN)])),
            Layer::new(file(), values(&[(Key::Endpoint, "10.0.0.1:6443")])),
        ]);
        let e = s.to_plan(Path::new("/")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("using token-based discovery without caCertHashes can be unsafe"),
            "{msg}"
        );
        assert!(
            msg.contains("token from cmdline, endpoint from file:/etc/kubejoin.yaml"),
            "{msg}"
        );
        assert!(e.hint().unwrap().contains("kubejoin ca-hash"));
        let mut v = values(&[(Key::Token, TOKEN), (Key::Endpoint, "10.0.0.1:6443")]);
        v.set(Key::UnsafeSkipCaVerification, None).unwrap();
        let plan = merge(&[Layer::new(Source::Cmdline, v)])
            .to_plan(Path::new("/"))
            .unwrap();
        assert!(matches!(
            plan.discovery.mode,
            Mode::Token {
                unsafe_skip_ca_verification: true,
                ..
            }
        ));
    }

    #[test]
    fn missing_pieces_say_what_the_sources_gave() {
        let e = merge(&[]).to_plan(Path::new("/")).unwrap_err().to_string();
        assert!(e.starts_with("no discovery method given"), "{e}");
        let e = merge(&[Layer::new(
            file(),
            values(&[(Key::Endpoint, "10.0.0.1:6443")]),
        )])
        .to_plan(Path::new("/"))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "no bootstrap token given for token discovery (endpoint from file:/etc/kubejoin.yaml; no kubejoin.token from any source)"
        );
        let e = merge(&[Layer::new(
            Source::Metadata(Platform::Hetzner),
            values(&[(Key::DiscoveryFile, "ftp://x/y")]),
        )])
        .to_plan(Path::new("/"))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "discovery-file from metadata:hetzner: if a URL is used, the scheme must be https"
            ),
            "{e}"
        );
    }
}
