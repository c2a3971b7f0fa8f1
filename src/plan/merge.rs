//! Layered join settings with provenance.
//!
//! Join data reaches a node from up to five places. From highest precedence to lowest:
//!
//! 0. `kubejoin join`'s flags ([`crate::cli`]: the top layer when the join data comes from the
//!    command, with `--config` read as the file layer below it),
//! 1. the kernel command line (`kubejoin.*` keys; [`crate::source::cmdline`]),
//! 2. a local config file (`/etc/kubejoin.yaml`, `--config`, or `kubejoin.config=/path`),
//! 3. cloud metadata user-data ([`crate::source::metadata`]), plus the node name and IP the
//!    provider reports when no higher layer gave them,
//! 4. image defaults (built in: CRI socket, handoff, timeouts).
//!
//! Each layer is a [`Values`]; [`merge`] folds them into [`Settings`], where every value carries
//! the [`Source`] it came from. When a lower layer holds a *different* value for a key a higher
//! layer set, that is recorded as a [`Conflict`] (and shown by `kubejoin plan`) rather than
//! silently dropped. Scalar keys and lists (`ca-cert-hash`, `modules`) are taken whole from the
//! highest layer that sets them — in particular a lower layer can never add a CA pin to the set a
//! higher layer chose. `kubelet-arg` and `sysctl` merge per name: a higher layer overrides the
//! names it sets and keeps the others.
//!
//! [`Settings::to_plan`] turns the merged settings into a [`JoinPlan`] with the CLI's validation
//! (endpoint syntax, token form, pins, "no pin without the explicit unsafe flag", "token and file
//! discovery are exclusive"); [`plan_json`] renders them for `kubejoin plan` with secrets
//! redacted and each value's source.
//!
//! `kubejoin.config.sha256` pins the first config document loaded (see [`ConfigPin`]); a
//! mismatch refuses the document before a byte of it is parsed.

use crate::kube::token::BootstrapToken;
use crate::pki::pin::CaPin;
use crate::plan::certificate_key::CertificateKey;
use crate::plan::config_pin::ConfigPin;
use crate::plan::key::Key;
use crate::plan::network::NetworkSpec;
use crate::plan::platform::Platform;
use crate::plan::values::{Shown, Values};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The layer a value came from. `Display` is the form `kubejoin plan` prints: `cmdline`,
/// `file:/etc/kubejoin.yaml`, `metadata:aws`, `default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// `kubejoin join`'s command-line flags.
    Flag,
    Cmdline,
    File(PathBuf),
    Metadata(Platform),
    /// The DHCP lease (its NTP servers).
    Dhcp,
    /// What the platform documents (its time source).
    Platform(Platform),
    Default,
}

impl Source {
    /// Precedence: lower wins.
    pub fn rank(&self) -> u8 {
        match self {
            Source::Flag => 0,
            Source::Cmdline => 1,
            Source::File(_) => 2,
            Source::Metadata(_) => 3,
            Source::Dhcp => 4,
            Source::Platform(_) => 5,
            Source::Default => 6,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Cmdline => f.write_str("cmdline"),
            Source::File(p) => write!(f, "file:{}", p.display()),
            Source::Metadata(p) => write!(f, "metadata:{}", p.id()),
            Source::Dhcp => f.write_str("dhcp"),
            Source::Platform(p) => write!(f, "platform:{}", p.id()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and the layer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// One layer: its values and where they came from.
#[derive(Debug, Clone)]
pub struct Layer {
    pub source: Source,
    pub values: Values,
}

impl Layer {
    pub fn new(source: Source, values: Values) -> Self {
        Self { source, values }
    }
}

/// A lower layer's value that differed from the one kept. Both values are shown redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The key (`node-name`, `kubelet-arg max-pods`, `sysctl vm.swappiness`).
    pub key: String,
    pub kept: Sourced<String>,
    pub dropped: Sourced<String>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: using {:?} from {}, ignoring {:?} from {}",
            self.key, self.kept.value, self.kept.source, self.dropped.value, self.dropped.source
        )
    }
}

/// The merged settings: every value with its source, the conflicts found, and warnings gathered
/// while reading the layers (unknown keys, repeated values, provider facts that were missing).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub endpoint: Option<Sourced<String>>,
    pub token: Option<Sourced<BootstrapToken>>,
    pub tls_bootstrap_token: Option<Sourced<BootstrapToken>>,
    pub ca_cert_hashes: Option<Sourced<Vec<CaPin>>>,
    pub unsafe_skip_ca_verification: Option<Sourced<bool>>,
    pub discovery_file: Option<Sourced<String>>,
    pub node_name: Option<Sourced<String>>,
    pub node_ip: Option<Sourced<IpAddr>>,
    pub cri_socket: Option<Sourced<String>>,
    pub kubelet_args: Vec<Sourced<(String, String)>>,
    pub modules: Option<Sourced<Vec<String>>>,
    pub sysctls: Vec<Sourced<(String, String)>>,
    pub taints: Option<Sourced<Vec<String>>>,
    pub ignore_preflight_errors: Option<Sourced<Vec<String>>>,
    pub skip_phases: Option<Sourced<Vec<String>>>,
    pub platform: Option<Sourced<String>>,
    pub config: Option<Sourced<String>>,
    pub config_sha256: Option<Sourced<ConfigPin>>,
    pub handoff: Option<Sourced<String>>,
    pub kubelet_path: Option<Sourced<String>>,
    pub on_failure: Option<Sourced<String>>,
    pub timeout: Option<Sourced<Duration>>,
    pub discovery_timeout: Option<Sourced<Duration>>,
    pub tls_bootstrap_timeout: Option<Sourced<Duration>>,
    pub network: Option<Sourced<NetworkSpec>>,
    /// SNTP servers (`host[:port]`), or `["off"]`: whole from the highest layer naming any.
    pub ntp: Option<Sourced<Vec<String>>>,
    pub control_plane: Option<Sourced<bool>>,
    pub certificate_key: Option<Sourced<CertificateKey>>,
    pub advertise_address: Option<Sourced<IpAddr>>,
    pub bind_port: Option<Sourced<u16>>,
    pub dry_run: Option<Sourced<bool>>,
    pub conflicts: Vec<Conflict>,
    pub warnings: Vec<String>,
}

fn pick<T: Shown + Clone>(
    key: &str,
    layers: &[&Layer],
    get: impl Fn(&Values) -> Option<&T>,
    conflicts: &mut Vec<Conflict>,
) -> Option<Sourced<T>> {
    let mut kept: Option<Sourced<T>> = None;
    for layer in layers {
        let Some(v) = get(&layer.values) else {
            continue;
        };
        match &kept {
            None => {
                kept = Some(Sourced {
                    value: v.clone(),
                    source: layer.source.clone(),
                })
            }
            // Defaults exist to be overridden: replacing one is not a conflict.
            Some(k) if !k.value.same(v) && layer.source != Source::Default => {
                conflicts.push(Conflict {
                    key: key.to_string(),
                    kept: Sourced {
                        value: k.value.shown(),
                        source: k.source.clone(),
                    },
                    dropped: Sourced {
                        value: v.shown(),
                        source: layer.source.clone(),
                    },
                })
            }
            Some(_) => {}
        }
    }
    kept
}

/// Per-name merge of `name=value` lists: the highest layer that names `name` supplies all its
/// entries for that name; other layers' different entries for it are conflicts.
fn pick_pairs(
    what: &str,
    layers: &[&Layer],
    get: impl Fn(&Values) -> &Vec<(String, String)>,
    conflicts: &mut Vec<Conflict>,
) -> Vec<Sourced<(String, String)>> {
    let mut out: Vec<Sourced<(String, String)>> = Vec::new();
    let mut claimed: HashMap<String, (Source, Vec<String>)> = HashMap::new();
    for layer in layers {
        let mut mine: Vec<(String, Vec<String>)> = Vec::new();
        // Index by name: a scan of `mine` per pair was quadratic (49,000 sysctls from a 760 KB
        // user-data took 8 s).
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (n, v) in get(&layer.values) {
            match at.get(n.as_str()) {
                Some(&i) => mine[i].1.push(v.clone()),
                None => {
                    at.insert(n, mine.len());
                    mine.push((n.clone(), vec![v.clone()]));
                }
            }
        }
        for (name, vals) in mine {
            match claimed.get(&name) {
                Some((src, kept)) => {
                    if *kept != vals && layer.source != Source::Default {
                        conflicts.push(Conflict {
                            key: format!("{what} {name}"),
                            kept: Sourced {
                                value: kept.join(","),
                                source: src.clone(),
                            },
                            dropped: Sourced {
                                value: vals.join(","),
                                source: layer.source.clone(),
                            },
                        });
                    }
                }
                None => {
                    for v in &vals {
                        out.push(Sourced {
                            value: (name.clone(), v.clone()),
                            source: layer.source.clone(),
                        });
                    }
                    claimed.insert(name, (layer.source.clone(), vals));
                }
            }
        }
    }
    out
}

/// Folds layers into settings. Layers may come in any order: they are ranked by [`Source::rank`]
/// (command line, file, metadata, defaults); two layers of the same rank keep their given order.
pub fn merge(layers: &[Layer]) -> Settings {
    let mut sorted: Vec<&Layer> = layers.iter().collect();
    sorted.sort_by_key(|l| l.source.rank());
    let l = &sorted[..];
    let mut c = Vec::new();
    let c = &mut c;
    let mut s = Settings {
        endpoint: pick("endpoint", l, |v| v.endpoint.as_ref(), c),
        token: pick("token", l, |v| v.token.as_ref(), c),
        tls_bootstrap_token: pick(
            "tls-bootstrap-token",
            l,
            |v| v.tls_bootstrap_token.as_ref(),
            c,
        ),
        ca_cert_hashes: pick("ca-cert-hash", l, |v| v.ca_cert_hashes.as_ref(), c),
        unsafe_skip_ca_verification: pick(
            Key::UnsafeSkipCaVerification.name(),
            l,
            |v| v.unsafe_skip_ca_verification.as_ref(),
            c,
        ),
        discovery_file: pick("discovery-file", l, |v| v.discovery_file.as_ref(), c),
        node_name: pick("node-name", l, |v| v.node_name.as_ref(), c),
        node_ip: pick("node-ip", l, |v| v.node_ip.as_ref(), c),
        cri_socket: pick("cri-socket", l, |v| v.cri_socket.as_ref(), c),
        kubelet_args: pick_pairs("kubelet-arg", l, |v| &v.kubelet_args, c),
        modules: pick("modules", l, |v| v.modules.as_ref(), c),
        sysctls: pick_pairs("sysctl", l, |v| &v.sysctls, c),
        taints: pick("taints", l, |v| v.taints.as_ref(), c),
        ignore_preflight_errors: pick(
            "ignore-preflight-errors",
            l,
            |v| v.ignore_preflight_errors.as_ref(),
            c,
        ),
        skip_phases: pick("skip-phases", l, |v| v.skip_phases.as_ref(), c),
        platform: pick("platform", l, |v| v.platform.as_ref(), c),
        config: pick("config", l, |v| v.config.as_ref(), c),
        config_sha256: pick("config.sha256", l, |v| v.config_sha256.as_ref(), c),
        handoff: pick("handoff", l, |v| v.handoff.as_ref(), c),
        kubelet_path: pick("kubelet-path", l, |v| v.kubelet_path.as_ref(), c),
        on_failure: pick("on-failure", l, |v| v.on_failure.as_ref(), c),
        timeout: pick("timeout", l, |v| v.timeout.as_ref(), c),
        discovery_timeout: pick("discovery-timeout", l, |v| v.discovery_timeout.as_ref(), c),
        tls_bootstrap_timeout: pick(
            "tls-bootstrap-timeout",
            l,
            |v| v.tls_bootstrap_timeout.as_ref(),
            c,
        ),
        network: pick("network", l, |v| v.network.as_ref(), c),
        ntp: pick("ntp", l, |v| v.ntp.as_ref(), c),
        control_plane: pick("control-plane", l, |v| v.control_plane.as_ref(), c),
        certificate_key: pick("certificate-key", l, |v| v.certificate_key.as_ref(), c),
        advertise_address: pick("advertise-address", l, |v| v.advertise_address.as_ref(), c),
        bind_port: pick("bind-port", l, |v| v.bind_port.as_ref(), c),
        dry_run: pick("dry-run", l, |v| v.dry_run.as_ref(), c),
        conflicts: Vec::new(),
        warnings: Vec::new(),
    };
    s.conflicts = std::mem::take(c);
    // A token read from a token file shows that file as its source.
    if let Some(t) = &mut s.token {
        let file = l
            .iter()
            .find(|layer| layer.source == t.source)
            .and_then(|layer| layer.values.token_file.as_ref());
        if let Some(f) = file {
            t.source = Source::File(PathBuf::from(f));
        }
    }
    // Likewise a certificate key read from a key file.
    if let Some(k) = &mut s.certificate_key {
        let file = l
            .iter()
            .find(|layer| layer.source == k.source)
            .and_then(|layer| layer.values.certificate_key_file.as_ref());
        if let Some(f) = file {
            k.source = Source::File(PathBuf::from(f));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::testutil::{file, values, PIN, TOKEN};

    const PIN2: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000002";

    #[test]
    fn sources_display_as_plan_prints_them() {
        assert_eq!(Source::Cmdline.to_string(), "cmdline");
        assert_eq!(file().to_string(), "file:/etc/kubejoin.yaml");
        assert_eq!(Source::Metadata(Platform::Aws).to_string(), "metadata:aws");
        assert_eq!(Source::Default.to_string(), "default");
    }

    #[test]
    fn precedence_with_provenance_and_recorded_conflicts() {
        let layers = [
            // Given out of order on purpose: merge ranks them.
            Layer::new(Source::Default, Values::builtin_defaults()),
            Layer::new(
                Source::Metadata(Platform::Aws),
                values(&[
                    (Key::Endpoint, "10.0.0.9:6443"),
                    (Key::NodeName, "md"),
                    (Key::CriSocket, "/run/md.sock"),
                ]),
            ),
            Layer::new(
                file(),
                values(&[(Key::Endpoint, "10.0.0.1:6443"), (Key::NodeName, "file")]),
            ),
            Layer::new(
                Source::Cmdline,
                values(&[(Key::NodeName, "cmd"), (Key::Token, TOKEN)]),
            ),
        ];
        let s = merge(&layers);
        assert_eq!(
            s.node_name,
            Some(Sourced {
                value: "cmd".to_string(),
                source: Source::Cmdline
            })
        );
        assert_eq!(
            s.endpoint,
            Some(Sourced {
                value: "10.0.0.1:6443".to_string(),
                source: file()
            })
        );
        assert_eq!(
            s.cri_socket.as_ref().map(|c| &c.source),
            Some(&Source::Metadata(Platform::Aws))
        );
        assert_eq!(
            s.handoff.as_ref().map(|c| &c.source),
            Some(&Source::Default)
        );
        let shown: Vec<String> = s.conflicts.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"endpoint: using "10.0.0.1:6443" from file:/etc/kubejoin.yaml, ignoring "10.0.0.9:6443" from metadata:aws"#,
                r#"node-name: using "cmd" from cmdline, ignoring "file" from file:/etc/kubejoin.yaml"#,
                r#"node-name: using "cmd" from cmdline, ignoring "md" from metadata:aws"#,
            ]
        );
    }

    #[test]
    fn equal_values_are_not_conflicts_and_tokens_are_redacted_in_conflicts() {
        let s = merge(&[
            Layer::new(
                Source::Cmdline,
                values(&[(Key::Token, TOKEN), (Key::NodeName, "a")]),
            ),
            Layer::new(
                file(),
                values(&[
                    (Key::Token, "zzzzzz.0123456789abcdef"),
                    (Key::NodeName, "a"),
                ]),
            ),
        ]);
        assert_eq!(s.conflicts.len(), 1);
        let c = s.conflicts[0].to_string();
        assert_eq!(
            c,
            r#"token: using "abcdef.<redacted>" from cmdline, ignoring "zzzzzz.<redacted>" from file:/etc/kubejoin.yaml"#
        );
    }

    #[test]
    fn a_lower_layer_cannot_add_pins_and_pairs_merge_per_name() {
        let s = merge(&[
            Layer::new(
                Source::Cmdline,
                values(&[
                    (Key::CaCertHash, PIN),
                    (Key::KubeletArg, "max-pods=50"),
                    (Key::Sysctl, "vm.swappiness=0"),
                ]),
            ),
            Layer::new(
                Source::Metadata(Platform::Gcp),
                values(&[
                    (Key::CaCertHash, PIN2),
                    (Key::KubeletArg, "max-pods=110"),
                    (Key::KubeletArg, "node-labels=a=b"),
                    (Key::Sysctl, "vm.swappiness=10"),
                    (Key::Sysctl, "net.ipv4.ip_forward=1"),
                ]),
            ),
        ]);
        assert_eq!(
            s.ca_cert_hashes.as_ref().map(|p| p.value.len()),
            Some(1),
            "pins come whole from one layer"
        );
        let args: Vec<(String, String, String)> = s
            .kubelet_args
            .iter()
            .map(|a| (a.value.0.clone(), a.value.1.clone(), a.source.to_string()))
            .collect();
        assert_eq!(
            args,
            [
                ("max-pods".into(), "50".into(), "cmdline".into()),
                ("node-labels".into(), "a=b".into(), "metadata:gcp".into())
            ]
        );
        let sysctls: Vec<&str> = s.sysctls.iter().map(|x| x.value.0.as_str()).collect();
        assert_eq!(sysctls, ["vm.swappiness", "net.ipv4.ip_forward"]);
        let keys: Vec<&str> = s.conflicts.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ca-cert-hash",
                "kubelet-arg max-pods",
                "sysctl vm.swappiness"
            ]
        );
    }
}
