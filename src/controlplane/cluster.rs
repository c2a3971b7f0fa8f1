//! The cluster's `ClusterConfiguration` (from `kube-system/kubeadm-config`, any of
//! `kubeadm.k8s.io/v1beta2`, `v1beta3`, `v1beta4`, given here as JSON) reduced to what a
//! control-plane join renders, with kubeadm's defaults, and this node's API endpoint.
//!
//! Defaults (read in `cmd/kubeadm/app/apis/kubeadm/v1beta3/defaults.go` and `v1beta4`, same
//! values in both): `certificatesDir` `/etc/kubernetes/pki`, `clusterName` `kubernetes`,
//! `networking.serviceSubnet` `10.96.0.0/12`, `networking.dnsDomain` `cluster.local`,
//! `etcd.local.dataDir` `/var/lib/etcd`, `localAPIEndpoint.bindPort` 6443. kubeadm uploads the
//! defaulted configuration, so these only fill in for hand-written ConfigMaps.
//!
//! `extraArgs` is a map in v1beta2/v1beta3 and a list of `{name, value}` (duplicates allowed) in
//! v1beta4; both become one ordered list of [`Arg`]. Fields that would change a manifest and are
//! not modelled yet (`extraVolumes`, `extraEnvs`, `etcd.local.extraEnvs`) are refused by name
//! instead of ignored.

use crate::plan::version::KubernetesVersion;
use serde_json::Value;
use std::net::IpAddr;

/// One command-line argument of a component (`--name=value`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Arg {
    pub name: String,
    pub value: String,
}

impl Arg {
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            value: value.into(),
        }
    }
}

/// `etcd.local`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalEtcd {
    pub image_repository: Option<String>,
    pub image_tag: Option<String>,
    pub data_dir: String,
    pub extra_args: Vec<Arg>,
    pub server_cert_sans: Vec<String>,
    pub peer_cert_sans: Vec<String>,
}

/// `etcd.external`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExternalEtcd {
    pub endpoints: Vec<String>,
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
}

/// Stacked (local) or external etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Etcd {
    Local(LocalEtcd),
    External(ExternalEtcd),
}

/// Key type of generated keys (`encryptionAlgorithm`, v1beta4; before it only RSA-2048, or
/// ECDSA-P256 with the `PublicKeysECDSA` feature gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
    EcdsaP384,
}

/// What a control-plane join needs from the ClusterConfiguration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `apiVersion` of the document (`kubeadm.k8s.io/v1beta3`).
    pub api_version: String,
    pub kubernetes_version: KubernetesVersion,
    /// The literal `kubernetesVersion` string (image tags use it verbatim).
    pub kubernetes_version_text: String,
    pub image_repository: String,
    pub certificates_dir: String,
    pub cluster_name: String,
    pub control_plane_endpoint: String,
    pub service_subnet: String,
    pub pod_subnet: String,
    pub dns_domain: String,
    pub api_server_cert_sans: Vec<String>,
    pub api_server_extra_args: Vec<Arg>,
    pub controller_manager_extra_args: Vec<Arg>,
    pub scheduler_extra_args: Vec<Arg>,
    pub etcd: Etcd,
    pub feature_gates: Vec<(String, bool)>,
    pub key_algorithm: KeyAlgorithm,
    /// `certificateValidityPeriod` (v1beta4), seconds; kubeadm's default is 1 year (8760 h).
    pub certificate_validity_secs: i64,
}

/// This node's API endpoint (`JoinConfiguration.controlPlane.localAPIEndpoint`) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    pub name: String,
    pub advertise_address: IpAddr,
    pub bind_port: u16,
}

impl LocalNode {
    /// `host:port` as Go's `net.JoinHostPort` (brackets around IPv6).
    pub fn endpoint(&self) -> String {
        host_port(&self.advertise_address.to_string(), self.bind_port)
    }
}

pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why the ClusterConfiguration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the ClusterConfiguration in kube-system/kubeadm-config has no usable {0}")]
    Missing(&'static str),
    #[error(
        "the ClusterConfiguration in kube-system/kubeadm-config has an invalid {field}: {why}"
    )]
    Invalid { field: String, why: String },
    #[error(
        "the ClusterConfiguration sets {0}, which kubejoin's control-plane join does not render \
         yet: join this node with kubeadm"
    )]
    Unsupported(String),
}

fn invalid(field: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        why: why.into(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn strings_at(v: &Value, path: &[&str], field: &str) -> Result<Vec<String>, ConfigError> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(c) => cur = c,
            None => return Ok(Vec::new()),
        }
    }
    match cur {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(field, "not a list of strings"))
            })
            .collect(),
        _ => Err(invalid(field, "not a list")),
    }
}

/// `extraArgs` in either shape.
fn args_at(v: &Value, path: &[&str], field: &str) -> Result<Vec<Arg>, ConfigError> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(c) => cur = c,
            None => return Ok(Vec::new()),
        }
    }
    match cur {
        Value::Null => Ok(Vec::new()),
        // v1beta2/v1beta3: map[string]string.
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| Arg::new(k, s))
                    .ok_or_else(|| invalid(field, format!("{k} is not a string")))
            })
            .collect(),
        // v1beta4: []Arg{name, value}.
        Value::Array(a) => a
            .iter()
            .map(
                |e| match (e.get("name").and_then(Value::as_str), e.get("value")) {
                    (Some(n), Some(Value::String(s))) => Ok(Arg::new(n, s.clone())),
                    (Some(n), None | Some(Value::Null)) => Ok(Arg::new(n, "")),
                    _ => Err(invalid(field, "an entry is not {name, value}")),
                },
            )
            .collect(),
        _ => Err(invalid(field, "neither a map nor a list")),
    }
}

fn refuse_if_set(v: &Value, path: &[&str], name: &str) -> Result<(), ConfigError> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(c) => cur = c,
            None => return Ok(()),
        }
    }
    let empty = match cur {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if empty {
        Ok(())
    } else {
        Err(ConfigError::Unsupported(name.to_string()))
    }
}

/// Go's `time.ParseDuration` for the hour/minute/second forms kubeadm prints (`8760h0m0s`).
fn parse_duration_secs(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    if s.is_empty() {
        return None;
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Some(total as i64)
}

impl ClusterConfig {
    /// Reads a ClusterConfiguration document (already converted to JSON).
    pub fn from_json(doc: &Value) -> Result<Self, ConfigError> {
        let api_version = str_at(doc, &["apiVersion"]).unwrap_or("").to_string();
        let kv = str_at(doc, &["kubernetesVersion"])
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing("kubernetesVersion"))?;
        let kubernetes_version = KubernetesVersion::parse(kv)
            .map_err(|e| invalid("kubernetesVersion", e.to_string()))?;
        let image_repository = str_at(doc, &["imageRepository"])
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing("imageRepository"))?
            .to_string();
        let d = |path: &[&str], default: &str| -> String {
            str_at(doc, path)
                .filter(|s| !s.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        for (path, name) in [
            (&["apiServer", "extraVolumes"][..], "apiServer.extraVolumes"),
            (
                &["controllerManager", "extraVolumes"][..],
                "controllerManager.extraVolumes",
            ),
            (&["scheduler", "extraVolumes"][..], "scheduler.extraVolumes"),
            (&["apiServer", "extraEnvs"][..], "apiServer.extraEnvs"),
            (
                &["controllerManager", "extraEnvs"][..],
                "controllerManager.extraEnvs",
            ),
            (&["scheduler", "extraEnvs"][..], "scheduler.extraEnvs"),
            (&["etcd", "local", "extraEnvs"][..], "etcd.local.extraEnvs"),
        ] {
            refuse_if_set(doc, path, name)?;
        }
        let etcd = match doc.get("etcd").and_then(|e| e.get("external")) {
            Some(x) if !x.is_null() => Etcd::External(ExternalEtcd {
                endpoints: strings_at(x, &["endpoints"], "etcd.external.endpoints")?,
                ca_file: str_at(x, &["caFile"]).unwrap_or("").to_string(),
                cert_file: str_at(x, &["certFile"]).unwrap_or("").to_string(),
                key_file: str_at(x, &["keyFile"]).unwrap_or("").to_string(),
            }),
            _ => {
                let l = doc
                    .get("etcd")
                    .and_then(|e| e.get("local"))
                    .cloned()
                    .unwrap_or(Value::Null);
                Etcd::Local(LocalEtcd {
                    image_repository: str_at(&l, &["imageRepository"])
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                    image_tag: str_at(&l, &["imageTag"])
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                    data_dir: str_at(&l, &["dataDir"])
                        .filter(|s| !s.is_empty())
                        .unwrap_or("/var/lib/etcd")
                        .to_string(),
                    extra_args: args_at(&l, &["extraArgs"], "etcd.local.extraArgs")?,
                    server_cert_sans: strings_at(
                        &l,
                        &["serverCertSANs"],
                        "etcd.local.serverCertSANs",
                    )?,
                    peer_cert_sans: strings_at(&l, &["peerCertSANs"], "etcd.local.peerCertSANs")?,
                })
            }
        };
        if let Etcd::External(x) = &etcd {
            if x.endpoints.is_empty() {
                return Err(ConfigError::Missing("etcd.external.endpoints"));
            }
        }
        let mut feature_gates = Vec::new();
        if let Some(Value::Object(m)) = doc.get("featureGates") {
            for (k, v) in m {
                let b = v
                    .as_bool()
                    .ok_or_else(|| invalid("featureGates", format!("{k} is not a boolean")))?;
                feature_gates.push((k.clone(), b));
            }
        }
        let gate = |name: &str| {
            feature_gates
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| *v)
        };
        let key_algorithm = match str_at(doc, &["encryptionAlgorithm"]).unwrap_or("") {
            "" if gate("PublicKeysECDSA") == Some(true) => KeyAlgorithm::EcdsaP256,
            "" | "RSA-2048" => KeyAlgorithm::Rsa2048,
            "RSA-3072" => KeyAlgorithm::Rsa3072,
            "RSA-4096" => KeyAlgorithm::Rsa4096,
            "ECDSA-P256" => KeyAlgorithm::EcdsaP256,
            "ECDSA-P384" => KeyAlgorithm::EcdsaP384,
            other => return Err(invalid("encryptionAlgorithm", format!("unknown {other:?}"))),
        };
        let certificate_validity_secs = match str_at(doc, &["certificateValidityPeriod"]) {
            None | Some("") => 365 * 24 * 3600,
            Some(s) => parse_duration_secs(s)
                .filter(|s| *s > 0)
                .ok_or_else(|| invalid("certificateValidityPeriod", format!("{s:?}")))?,
        };
        Ok(Self {
            api_version,
            kubernetes_version,
            kubernetes_version_text: kv.to_string(),
            image_repository,
            certificates_dir: d(&["certificatesDir"], "/etc/kubernetes/pki"),
            cluster_name: d(&["clusterName"], "kubernetes"),
            control_plane_endpoint: d(&["controlPlaneEndpoint"], ""),
            service_subnet: d(&["networking", "serviceSubnet"], "10.96.0.0/12"),
            pod_subnet: d(&["networking", "podSubnet"], ""),
            dns_domain: d(&["networking", "dnsDomain"], "cluster.local"),
            api_server_cert_sans: strings_at(
                doc,
                &["apiServer", "certSANs"],
                "apiServer.certSANs",
            )?,
            api_server_extra_args: args_at(
                doc,
                &["apiServer", "extraArgs"],
                "apiServer.extraArgs",
            )?,
            controller_manager_extra_args: args_at(
                doc,
                &["controllerManager", "extraArgs"],
                "controllerManager.extraArgs",
            )?,
            scheduler_extra_args: args_at(doc, &["scheduler", "extraArgs"], "scheduler.extraArgs")?,
            etcd,
            feature_gates,
            key_algorithm,
            certificate_validity_secs,
        })
    }

    /// Whether a kubeadm feature gate is on, given its default at this version.
    pub fn feature_gate(&self, name: &str, default: bool) -> bool {
        self.feature_gates
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or(default)
    }

    /// The minor version (`24` of v1.24.17).
    pub fn minor(&self) -> u32 {
        self.kubernetes_version.minor()
    }

    /// The first address of `serviceSubnet` plus one (kubeadm's `GetAPIServerVirtualIP`: the
    /// first service IP, of the first subnet when dual-stack).
    pub fn api_server_virtual_ip(&self) -> Result<IpAddr, ConfigError> {
        let first = self.service_subnet.split(',').next().unwrap_or("").trim();
        let (addr, bits) = first.split_once('/').ok_or_else(|| {
            invalid(
                "networking.serviceSubnet",
                format!("{first:?} is not a CIDR"),
            )
        })?;
        let bad = || {
            invalid(
                "networking.serviceSubnet",
                format!("{first:?} is not a CIDR"),
            )
        };
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits: u32 = bits.parse().map_err(|_| bad())?;
        Ok(match ip {
            IpAddr::V4(v4) => {
                if bits > 31 {
                    return Err(bad());
                }
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                IpAddr::V4((u32::from(v4) & mask).wrapping_add(1).into())
            }
            IpAddr::V6(v6) => {
                if bits > 127 {
                    return Err(bad());
                }
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                IpAddr::V6((u128::from(v6) & mask).wrapping_add(1).into())
            }
        })
    }

    /// `controlPlaneEndpoint` split into host and port (port defaults to the local bind port,
    /// as kubeadm's `GetControlPlaneEndpoint` does).
    pub fn control_plane_host_port(&self, node: &LocalNode) -> Option<(String, u16)> {
        let e = self.control_plane_endpoint.trim();
        if e.is_empty() {
            return None;
        }
        if let Some(rest) = e.strip_prefix('[') {
            let (h, p) = rest.split_once(']')?;
            let port = p.strip_prefix(':').and_then(|p| p.parse().ok());
            return Some((h.to_string(), port.unwrap_or(node.bind_port)));
        }
        match e.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => Some((h.to_string(), p.parse().ok()?)),
            _ => Some((e.to_string(), node.bind_port)),
        }
    }

    /// The URL clients of the whole cluster use: `controlPlaneEndpoint`, else this node's
    /// advertise address (`kubeadmutil.GetControlPlaneEndpoint`).
    pub fn control_plane_url(&self, node: &LocalNode) -> String {
        match self.control_plane_host_port(node) {
            Some((h, p)) => format!("https://{}", host_port(&h, p)),
            None => format!("https://{}", node.endpoint()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_both_extra_args_shapes() {
        let c = ClusterConfig::from_json(&serde_json::json!({
            "apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration",
            "kubernetesVersion": "v1.30.2", "imageRepository": "registry.k8s.io",
            "apiServer": {"extraArgs": {"b": "2", "a": "1"}},
        }))
        .unwrap();
        assert_eq!(c.certificates_dir, "/etc/kubernetes/pki");
        assert_eq!(c.service_subnet, "10.96.0.0/12");
        assert_eq!(c.api_server_virtual_ip().unwrap().to_string(), "10.96.0.1");
        assert_eq!(
            c.api_server_extra_args,
            vec![Arg::new("a", "1"), Arg::new("b", "2")]
        );
        assert!(matches!(&c.etcd, Etcd::Local(l) if l.data_dir == "/var/lib/etcd"));
        assert_eq!(c.key_algorithm, KeyAlgorithm::Rsa2048);
        assert_eq!(c.certificate_validity_secs, 365 * 86400);
        let c = ClusterConfig::from_json(&serde_json::json!({
            "apiVersion": "kubeadm.k8s.io/v1beta4", "kubernetesVersion": "v1.31.0",
            "imageRepository": "r", "encryptionAlgorithm": "ECDSA-P256",
            "certificateValidityPeriod": "48h0m0s",
            "networking": {"serviceSubnet": "fd00::/108,10.0.0.0/16"},
            "apiServer": {"extraArgs": [{"name": "x", "value": "1"}, {"name": "x", "value": "0"}]},
        }))
        .unwrap();
        assert_eq!(
            c.api_server_extra_args,
            vec![Arg::new("x", "1"), Arg::new("x", "0")]
        );
        assert_eq!(c.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(c.certificate_validity_secs, 48 * 3600);
        assert_eq!(c.api_server_virtual_ip().unwrap().to_string(), "fd00::1");
    }

    #[test]
    fn refuses_what_is_not_rendered_yet() {
        let e = ClusterConfig::from_json(&serde_json::json!({
            "kubernetesVersion": "v1.30.2", "imageRepository": "r",
            "apiServer": {"extraVolumes": [{"name": "x", "hostPath": "/x", "mountPath": "/x"}]},
        }))
        .unwrap_err();
        assert_eq!(e, ConfigError::Unsupported("apiServer.extraVolumes".into()));
        assert!(ClusterConfig::from_json(&serde_json::json!({"imageRepository": "r"})).is_err());
    }

    #[test]
    fn control_plane_endpoint_forms() {
        let node = LocalNode {
            name: "n".into(),
            advertise_address: "10.0.0.2".parse().unwrap(),
            bind_port: 6443,
        };
        let mut c = ClusterConfig::from_json(&serde_json::json!({
            "kubernetesVersion": "v1.30.2", "imageRepository": "r"}))
        .unwrap();
        assert_eq!(c.control_plane_url(&node), "https://10.0.0.2:6443");
        c.control_plane_endpoint = "lb.example:443".into();
        assert_eq!(c.control_plane_url(&node), "https://lb.example:443");
        c.control_plane_endpoint = "lb.example".into();
        assert_eq!(c.control_plane_url(&node), "https://lb.example:6443");
        c.control_plane_endpoint = "[fd00::1]:6443".into();
        assert_eq!(c.control_plane_url(&node), "https://[fd00::1]:6443");
    }
}
