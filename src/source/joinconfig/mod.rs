//! Config files: kubeadm `JoinConfiguration` (`kubeadm.k8s.io/v1beta3` and `v1beta4`) and
//! kubejoin's own `KubejoinConfiguration` (`kubejoin.dev/v1alpha1`), read into one
//! version-independent, defaulted and validated [`ConfigFile`].
//!
//! # What is read
//! The input is YAML or JSON (JSON is YAML), possibly several documents separated by `---`.
//! Each document is dispatched on `apiVersion` + `kind`:
//!
//! | kind | apiVersion | what happens |
//! |---|---|---|
//! | `JoinConfiguration` | `kubeadm.k8s.io/v1beta3`, `kubeadm.k8s.io/v1beta4` | normalized into [`JoinConfiguration`] |
//! | `KubejoinConfiguration` | `kubejoin.dev/v1alpha1` | normalized into [`KubejoinConfiguration`] |
//! | `InitConfiguration`, `ClusterConfiguration` | `kubeadm.k8s.io/v1beta3`, `v1beta4` | ignored (kubeadm join ignores them too), listed in [`ConfigFile::documents`] |
//! | `ResetConfiguration`, `UpgradeConfiguration` | `kubeadm.k8s.io/v1beta4` | ignored, as above |
//! | `KubeletConfiguration` | `kubelet.config.k8s.io/v1beta1` | ignored, as above |
//! | `KubeProxyConfiguration` | `kubeproxy.config.k8s.io/v1alpha1` | ignored, as above |
//!
//! Anything else is an error that names the apiVersion and kind and lists the supported ones; a
//! known kind in an old apiVersion (`kubeadm.k8s.io/v1beta2`) says it is no longer supported.
//! Each kind may appear once.
//!
//! # Strictness
//! kubeadm only warns about unknown fields; kubejoin refuses them, because a misspelt optional
//! field (`tlsBootstrapToken`, `taints`, `imagePullPolicy`) would otherwise be dropped and the
//! node would join differently than its author intended, with nothing but a log line to show for
//! it. The error names the field, the line and column, and suggests the closest known field. Defaults and validation messages follow kubeadm (spec §9) so that a
//! file that works with `kubeadm join --config` means the same thing here. kubejoin joins worker
//! nodes only, so `controlPlane` is refused.
//!
//! # KubejoinConfiguration
//! kubejoin's own settings, every field optional (unknown fields are errors here too):
//!
//! ```yaml
//! apiVersion: kubejoin.dev/v1alpha1
//! kind: KubejoinConfiguration
//! modules: [overlay, br_netfilter]         # module names, loaded with their dependencies
//! sysctls:                                 # written in this order; numbers/booleans as text
//!   net.ipv4.ip_forward: 1
//! handoff: exec                            # exec | none
//! kubeletPath: /usr/bin/kubelet            # absolute
//! tokenFile: /etc/kubejoin/token           # the bootstrap token, from a chmod-600 file
//! onFailure: retry                         # retry | reboot | poweroff | shell
//! timeout: 10m                             # overall deadline of the join (Go duration)
//! tlsBootstrapTimeout: 5m                  # wait for the CSR to be issued
//! network:
//!   interfaces:                            # none: DHCP on every physical link
//!   - name: eth0                           # optional; 1-15 bytes
//!     address: 10.0.0.7/24                 # static IPv4; without it: DHCP
//!     gateway: 10.0.0.1                    # only with address
//!     mtu: 9000
//!   - name: eth1
//!     dhcp: true
//!   nameservers: [10.0.0.1]
//! kubeletArgs:                             # as v1beta4 kubeletExtraArgs
//! - name: max-pods
//!   value: "200"
//! ntp: [time.example.org, 10.0.0.1:123]    # SNTP servers, host[:port]; [off] turns SNTP off
//! ```
//!
//! # Secrets
//! Tokens are held as [`BootstrapToken`] (redacted `Debug`/`Display`). Messages that come from the
//! YAML decoder can quote input values; anything shaped like a bootstrap token is redacted from
//! them before they reach a [`ConfigError`].

use crate::error::{Class, Classify};
use crate::kube::token::BootstrapToken;
use crate::pki::pin::{PinError, PinSet};
use crate::plan::boot::OnFailure;
use crate::plan::network::{Addressing, Interface, Network};
use crate::plan::node_name::{NodeName, NodeNameError};
use crate::plan::HandoffMode;
use crate::time::duration::{self, DurationError};
use crate::yaml;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// kubeadm's default `caCertPath` (`defaults_unix.go`).
pub const DEFAULT_CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";

/// A config file larger than this is refused before parsing: real ones are a few KiB, and the
/// bytes may come from a URL.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

const KUBEADM_V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
const KUBEADM_V1BETA4: &str = "kubeadm.k8s.io/v1beta4";
const KUBEJOIN_V1ALPHA1: &str = "kubejoin.dev/v1alpha1";
const JOIN_KIND: &str = "JoinConfiguration";
const KUBEJOIN_KIND: &str = "KubejoinConfiguration";

// ---------------------------------------------------------------------------------------------
// Normalized output
// ---------------------------------------------------------------------------------------------

/// Everything one config file said, defaulted and validated. `Debug` never shows a token secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The path or URL the bytes came from (as given to [`parse`]).
    pub origin: String,
    /// The `JoinConfiguration`, whichever of v1beta3/v1beta4 it was written in.
    pub join: Option<JoinConfiguration>,
    /// kubejoin's own settings.
    pub kubejoin: Option<KubejoinConfiguration>,
    /// Every non-empty document, in order, with what was done with it (ignored documents are
    /// the "note" kubeadm would not print).
    pub documents: Vec<DocumentInfo>,
    /// Things accepted but worth telling the user: a CRI socket without scheme, `patches`,
    /// ignored documents.
    pub warnings: Vec<String>,
}

impl ConfigFile {
    /// The documents that were accepted but not used (kubeadm join ignores them too).
    pub fn ignored(&self) -> impl Iterator<Item = &DocumentInfo> {
        self.documents.iter().filter(|d| !d.used)
    }
}

/// One document of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    /// 1-based position of the document in the stream.
    pub index: usize,
    pub api_version: String,
    pub kind: String,
    /// `false`: a kind kubeadm allows alongside a JoinConfiguration and kubejoin ignores.
    pub used: bool,
}

impl fmt::Display for DocumentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "document {}: {} ({})",
            self.index, self.kind, self.api_version
        )?;
        if !self.used {
            f.write_str(" is ignored, as kubeadm join ignores it")?;
        }
        Ok(())
    }
}

/// A kubeadm `JoinConfiguration`, independent of the version it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinConfiguration {
    /// `dryRun` (v1beta4 only; `false` for v1beta3).
    pub dry_run: bool,
    /// `caCertPath`: where the cluster CA is installed. Default [`DEFAULT_CA_CERT_PATH`]; absolute.
    pub ca_cert_path: PathBuf,
    /// `discovery`: how to find and trust the cluster.
    pub discovery: Discovery,
    /// `nodeRegistration`.
    pub node_registration: NodeRegistration,
    /// `skipPhases`, as given.
    pub skip_phases: Vec<String>,
    /// `patches.directory`. Accepted for compatibility; kubejoin does not apply patches (a
    /// warning says so).
    pub patches_directory: Option<PathBuf>,
    /// v1beta4 `timeouts` (v1beta3: `discovery.timeout`), each defaulted as kubeadm does.
    pub timeouts: Timeouts,
    /// `controlPlane`: set for a control-plane join.
    pub control_plane: Option<JoinControlPlane>,
}

/// `controlPlane` of a JoinConfiguration (same fields in v1beta3 and v1beta4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinControlPlane {
    /// `localAPIEndpoint.advertiseAddress`.
    pub advertise_address: Option<std::net::IpAddr>,
    /// `localAPIEndpoint.bindPort` (kubeadm's default 6443 applies when unset).
    pub bind_port: Option<u16>,
    /// `certificateKey`: a secret, redacted by its type.
    pub certificate_key: Option<crate::plan::certificate_key::CertificateKey>,
}

/// `discovery`: exactly one mechanism, plus the token for the TLS bootstrap.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub method: DiscoveryMethod,
    /// `discovery.tlsBootstrapToken`. In token mode it defaults to the discovery token (so it is
    /// always set); in file mode it is `None` unless given (the kubeconfig must then carry
    /// credentials).
    pub tls_bootstrap_token: Option<BootstrapToken>,
}

/// Which discovery mechanism the file chose (spec §2).
#[derive(Debug, Clone)]
pub enum DiscoveryMethod {
    /// `discovery.bootstrapToken`.
    Token {
        /// `apiServerEndpoint`: `host:port` (IPv6 in brackets), checked.
        api_server_endpoint: String,
        /// `token`.
        token: BootstrapToken,
        /// `caCertHashes`, parsed.
        ca_cert_hashes: PinSet,
        /// `unsafeSkipCAVerification`. Only `true` allows an empty `ca_cert_hashes`.
        unsafe_skip_ca_verification: bool,
    },
    /// `discovery.file.kubeConfigPath` naming a local file (a `file://` URL reduced to its path).
    File { kube_config_path: PathBuf },
    /// `discovery.file.kubeConfigPath` as an `https://` URL.
    Https { url: String },
}

fn same_token(a: &BootstrapToken, b: &BootstrapToken) -> bool {
    a.ct_eq(b)
}

impl PartialEq for DiscoveryMethod {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                DiscoveryMethod::Token {
                    api_server_endpoint: e1,
                    token: t1,
                    ca_cert_hashes: h1,
                    unsafe_skip_ca_verification: u1,
                },
                DiscoveryMethod::Token {
                    api_server_endpoint: e2,
                    token: t2,
                    ca_cert_hashes: h2,
                    unsafe_skip_ca_verification: u2,
                },
            ) => e1 == e2 && same_token(t1, t2) && h1 == h2 && u1 == u2,
            (
                DiscoveryMethod::File {
                    kube_config_path: a,
                },
                DiscoveryMethod::File {
                    kube_config_path: b,
                },
            ) => a == b,
            (DiscoveryMethod::Https { url: a }, DiscoveryMethod::Https { url: b }) => a == b,
            _ => false,
        }
    }
}
impl Eq for DiscoveryMethod {}

impl PartialEq for Discovery {
    fn eq(&self, other: &Self) -> bool {
        let tokens = match (&self.tls_bootstrap_token, &other.tls_bootstrap_token) {
            (Some(a), Some(b)) => same_token(a, b),
            (None, None) => true,
            _ => false,
        };
        tokens && self.method == other.method
    }
}
impl Eq for Discovery {}

/// `nodeRegistration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRegistration {
    /// `name`, lower-cased and validated. `None`: the lower-cased hostname, resolved at join time.
    pub name: Option<NodeName>,
    /// `criSocket` with the `unix://` scheme (added, with a warning, when it was missing).
    /// `None`: not set — auto-detected or [`crate::plan::DEFAULT_CRI_SOCKET`].
    pub cri_socket: Option<String>,
    /// `taints` for `--register-with-taints` (a worker without taints registers with none).
    pub taints: Vec<Taint>,
    /// `kubeletExtraArgs` as `(name, value)` without leading dashes. v1beta4's list keeps its
    /// order and duplicates; v1beta3's map is sorted by name (as kubeadm's conversion does).
    pub kubelet_extra_args: Vec<(String, String)>,
    /// `ignorePreflightErrors`, lower-cased, duplicates removed, order kept.
    pub ignore_preflight_errors: Vec<String>,
    /// `imagePullPolicy` (default `IfNotPresent`). kubejoin pulls no images; kept for fidelity.
    pub image_pull_policy: ImagePullPolicy,
    /// `imagePullSerial` (v1beta4; default `true`).
    pub image_pull_serial: bool,
}

/// `nodeRegistration.imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImagePullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

/// One `nodeRegistration.taints` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    /// Empty when not given.
    pub value: String,
    pub effect: TaintEffect,
    /// `timeAdded` as given (kubelet's `--register-with-taints` ignores it).
    pub time_added: Option<String>,
}

impl fmt::Display for Taint {
    /// `key=value:Effect`, or `key:Effect` without a value, as kubeadm's `Taint.ToString()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect.as_str())
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect.as_str())
        }
    }
}

/// A taint effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// v1beta4 `timeouts` with kubeadm's defaults (spec §8/§9). v1beta3 only has the discovery one
/// (`discovery.timeout`); the others take their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Each cluster-info fetch loop (5 m).
    pub discovery: Duration,
    /// Wait for the TLS bootstrap to complete (5 m).
    pub tls_bootstrap: Duration,
    /// Wait for the kubelet's healthz (4 m).
    pub kubelet_health_check: Duration,
    /// Generic API call retries (1 m).
    pub kubernetes_api_call: Duration,
    /// Control-plane only, kept for fidelity (4 m).
    pub control_plane_component_health_check: Duration,
    /// Control-plane only, kept for fidelity (2 m).
    pub etcd_api_call: Duration,
    /// Upgrade only, kept for fidelity (5 m).
    pub upgrade_manifests: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        Self {
            discovery: min(5),
            tls_bootstrap: min(5),
            kubelet_health_check: min(4),
            kubernetes_api_call: min(1),
            control_plane_component_health_check: min(4),
            etcd_api_call: min(2),
            upgrade_manifests: min(5),
        }
    }
}

/// kubejoin's own settings (`kubejoin.dev/v1alpha1`, kind `KubejoinConfiguration`). Every field
/// is optional: `None`/empty means "not set here", so flags, the kernel command line and the
/// built-in defaults decide.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubejoinConfiguration {
    /// `modules`: kernel modules to load (with their dependencies), in order.
    pub modules: Vec<String>,
    /// `sysctls`: `key: value` in file order; numbers and booleans are taken as their text.
    pub sysctls: Vec<(String, String)>,
    /// `handoff`: `exec` | `none`.
    pub handoff: Option<HandoffMode>,
    /// `kubeletPath`: the kubelet binary for `handoff: exec`; absolute.
    pub kubelet_path: Option<PathBuf>,
    /// `tokenFile`: a file (mode 0600) holding the bootstrap token, for discovery and the TLS
    /// bootstrap, so the token is in no config and on no command line; absolute. A
    /// JoinConfiguration token in the same file is refused alongside it.
    pub token_file: Option<PathBuf>,
    /// `onFailure`: `retry` | `reboot` | `poweroff` | `shell`.
    pub on_failure: Option<OnFailure>,
    /// `timeout`: the overall deadline of the join, all phases included — what `--timeout` and
    /// `kubejoin.timeout` set (a JoinConfiguration's `timeouts.discovery` is the discovery bound).
    pub timeout: Option<Duration>,
    /// `tlsBootstrapTimeout`: bound of the wait for the CSR to be issued. When both are set it
    /// takes precedence over the JoinConfiguration's `timeouts.tlsBootstrap`.
    pub tls_bootstrap_timeout: Option<Duration>,
    /// `network`: how to bring up the network before discovery.
    pub network: Option<Network>,
    /// `kubeletArgs`: `(name, value)` pairs without leading dashes, in order, duplicates kept.
    pub kubelet_args: Vec<(String, String)>,
    /// `ntp`: SNTP servers (`host[:port]`), in order, or `[off]` (docs/time.md).
    pub ntp: Vec<String>,
}

mod errors;
mod kubejoin;
mod validate;
mod wire;

pub use errors::*;
use kubejoin::*;
use validate::*;
use wire::*;

// ---------------------------------------------------------------------------------------------
// Document dispatch
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    JoinV1beta3,
    JoinV1beta4,
    Kubejoin,
    Ignore,
}

/// Every kind kubejoin knows: the apiVersions it reads and what it does with them.
const KINDS: &[(&str, &[(&str, Use)])] = &[
    (
        JOIN_KIND,
        &[
            (KUBEADM_V1BETA3, Use::JoinV1beta3),
            (KUBEADM_V1BETA4, Use::JoinV1beta4),
        ],
    ),
    (KUBEJOIN_KIND, &[(KUBEJOIN_V1ALPHA1, Use::Kubejoin)]),
    (
        "InitConfiguration",
        &[
            (KUBEADM_V1BETA3, Use::Ignore),
            (KUBEADM_V1BETA4, Use::Ignore),
        ],
    ),
    (
        "ClusterConfiguration",
        &[
            (KUBEADM_V1BETA3, Use::Ignore),
            (KUBEADM_V1BETA4, Use::Ignore),
        ],
    ),
    ("ResetConfiguration", &[(KUBEADM_V1BETA4, Use::Ignore)]),
    ("UpgradeConfiguration", &[(KUBEADM_V1BETA4, Use::Ignore)]),
    (
        "KubeletConfiguration",
        &[("kubelet.config.k8s.io/v1beta1", Use::Ignore)],
    ),
    (
        "KubeProxyConfiguration",
        &[("kubeproxy.config.k8s.io/v1alpha1", Use::Ignore)],
    ),
];

/// kubeadm API versions that existed and were removed (kubeadm calls them "an old API spec").
const OLD_KUBEADM: &[&str] = &[
    "kubeadm.k8s.io/v1alpha1",
    "kubeadm.k8s.io/v1alpha2",
    "kubeadm.k8s.io/v1alpha3",
    "kubeadm.k8s.io/v1beta1",
    "kubeadm.k8s.io/v1beta2",
];

fn classify(document: usize, api_version: &str, kind: &str) -> Result<Use, ConfigErrorKind> {
    let Some((_, versions)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        return Err(ConfigErrorKind::UnknownKind {
            document,
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        });
    };
    if let Some((_, u)) = versions.iter().find(|(v, _)| *v == api_version) {
        return Ok(*u);
    }
    Err(ConfigErrorKind::UnsupportedVersion {
        document,
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        no_longer: OLD_KUBEADM.contains(&api_version),
        supported: versions.iter().map(|(v, _)| *v).collect(),
    })
}

/// The part of a document that says what it is.
fn type_meta(document: usize, v: &yaml::Node) -> Result<(String, String), ConfigErrorKind> {
    if v.as_mapping().is_none() {
        return Err(ConfigErrorKind::NotAMapping { document });
    }
    let get = |k: &str| match v.get(k).and_then(yaml::Node::as_str) {
        Some(s) if !s.is_empty() => Some(redact_tokens(s)),
        _ => None,
    };
    match (get("apiVersion"), get("kind")) {
        (Some(a), Some(k)) => Ok((a, k)),
        _ => Err(ConfigErrorKind::MissingTypeMeta { document }),
    }
}

/// Parses a config file (YAML or JSON, one or more documents) into a [`ConfigFile`].
///
/// `origin` is the path or URL the bytes came from; every error starts with it.
pub fn parse(bytes: &[u8], origin: &str) -> Result<ConfigFile, ConfigError> {
    // A URL origin could carry a token in its query; every text that leaves here is redacted.
    let origin = redact_tokens(origin);
    let origin = origin.as_str();
    let fail = |location, kind: ConfigErrorKind| {
        ConfigError(Box::new(ErrorInner {
            origin: origin.to_string(),
            location,
            kind: kind.redacted(),
        }))
    };
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(fail(None, ConfigErrorKind::TooLarge { size: bytes.len() }));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        fail(
            None,
            ConfigErrorKind::Syntax {
                message: format!("the config is not UTF-8 text (byte {})", e.valid_up_to()),
            },
        )
    })?;

    // Every document as a tree first, so that a syntax error or an input over the YAML budgets
    // (src/yaml.rs) anywhere in the stream stops us before acting on any document.
    let documents = yaml::documents(text).map_err(|e| {
        let kind = match e.kind() {
            yaml::ErrorKind::Limit { what, limit } => ConfigErrorKind::YamlLimit {
                what,
                limit: *limit,
            },
            _ => ConfigErrorKind::Syntax {
                message: redact_tokens(&e.message()),
            },
        };
        fail(e.location().map(location), kind)
    })?;

    let mut out = ConfigFile {
        origin: origin.to_string(),
        join: None,
        kubejoin: None,
        documents: Vec::new(),
        warnings: Vec::new(),
    };
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, doc) in documents.iter().enumerate() {
        let index = i + 1;
        if doc.is_null() {
            // An empty document (`---` twice, or a trailing `---`): nothing to read.
            continue;
        }
        let meta = type_meta(index, doc).and_then(|(api, kind)| {
            let u = classify(index, &api, &kind)?;
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == kind) {
                return Err(ConfigErrorKind::DuplicateDocument {
                    kind,
                    first: *first,
                    second: index,
                });
            }
            Ok((api, kind, u))
        });
        let (api_version, kind, usage) = match meta {
            Ok(m) => m,
            Err(reason) => return Err(fail(Some(document_start(doc)), reason)),
        };
        seen.push((kind.clone(), index));
        let decode_err = |e: yaml::Error| {
            let (location, reason) = decode_error(&e, &kind, &api_version);
            fail(location, reason)
        };
        match usage {
            Use::JoinV1beta3 => {
                let raw: RawJoinV1beta3 = yaml::from_node(doc).map_err(decode_err)?;
                let join = normalize_join(raw.into_common(), &mut out.warnings)
                    .map_err(|k| fail(None, k))?;
                out.join = Some(join);
            }
            Use::JoinV1beta4 => {
                let raw: RawJoinV1beta4 = yaml::from_node(doc).map_err(decode_err)?;
                let join = normalize_join(raw.into_common(), &mut out.warnings)
                    .map_err(|k| fail(None, k))?;
                out.join = Some(join);
            }
            Use::Kubejoin => {
                let raw: RawKubejoin = yaml::from_node(doc).map_err(decode_err)?;
                out.kubejoin = Some(normalize_kubejoin(raw).map_err(|k| fail(None, k))?);
            }
            Use::Ignore => {
                out.warnings.push(format!(
                    "document {index}: ignoring {kind} ({api_version}), as kubeadm join does"
                ));
            }
        }
        out.documents.push(DocumentInfo {
            index,
            api_version,
            kind,
            used: usage != Use::Ignore,
        });
    }
    // Warnings quote values (criSocket, patches.directory); keep token-shaped text out of them too.
    out.warnings = out
        .warnings
        .iter()
        .map(|w| redact_tokens(&format!("{origin}: {w}")))
        .collect();
    if out.join.is_none() && out.kubejoin.is_none() {
        return Err(fail(None, ConfigErrorKind::NoConfiguration));
    }
    Ok(out)
}

fn location(l: yaml::Location) -> Location {
    Location {
        line: l.line,
        column: l.column,
    }
}

/// Where a document starts: its first key (a mapping's own position is where its first key is).
fn document_start(doc: &yaml::Node) -> Location {
    let at = doc
        .as_mapping()
        .and_then(|m| m.first())
        .map_or(doc.location, |(k, _)| k.location);
    location(at)
}

/// Turns a typed-decode error into an unknown-field error (with a suggestion) or a decode error.
fn decode_error(
    e: &yaml::Error,
    kind: &str,
    api_version: &str,
) -> (Option<Location>, ConfigErrorKind) {
    let at = e.location().map(location);
    if let yaml::ErrorKind::UnknownField { field, expected } = e.kind() {
        let path = e.path().to_string();
        let help = moved_field_help(api_version, &path)
            .map(str::to_string)
            .or_else(|| closest(field, expected).map(|s| format!("did you mean {s:?}?")));
        return (
            at,
            ConfigErrorKind::UnknownField {
                field: field.clone(),
                path,
                kind: kind.to_string(),
                api_version: api_version.to_string(),
                help,
            },
        );
    }
    let message = redact_tokens(&e.message());
    if let yaml::ErrorKind::Syntax(_) | yaml::ErrorKind::DuplicateKey(_) = e.kind() {
        return (at, ConfigErrorKind::Syntax { message });
    }
    let help = shape_help(api_version, &message).map(str::to_string);
    (
        at,
        ConfigErrorKind::Decode {
            message,
            kind: kind.to_string(),
            api_version: api_version.to_string(),
            help,
        },
    )
}

/// Fields that exist in the other kubeadm version, with where they are in this one.
fn moved_field_help(api_version: &str, path: &str) -> Option<&'static str> {
    match (api_version, path) {
        (KUBEADM_V1BETA4, "discovery.timeout") => {
            Some("in kubeadm.k8s.io/v1beta4 the discovery timeout is timeouts.discovery")
        }
        (KUBEADM_V1BETA3, "timeouts") => {
            Some("timeouts is new in kubeadm.k8s.io/v1beta4; in v1beta3 use discovery.timeout")
        }
        (KUBEADM_V1BETA3, "dryRun") => Some("dryRun is new in kubeadm.k8s.io/v1beta4"),
        (KUBEADM_V1BETA3, "nodeRegistration.imagePullSerial") => {
            Some("imagePullSerial is new in kubeadm.k8s.io/v1beta4")
        }
        _ => None,
    }
}

/// Help for the decode errors users trip over: the one shape change between v1beta3 and v1beta4,
/// and YAML 1.1 booleans (`yes`, `on`), which kubeadm's YAML library reads as booleans and this
/// YAML 1.2 decoder reads as strings.
fn shape_help(api_version: &str, message: &str) -> Option<&'static str> {
    if message.contains("invalid type: string") && message.contains("expected a boolean") {
        return Some("write true or false");
    }
    if !message.starts_with("nodeRegistration.kubeletExtraArgs: invalid type") {
        return None;
    }
    match api_version {
        KUBEADM_V1BETA3 => Some(
            "in kubeadm.k8s.io/v1beta3 kubeletExtraArgs is a map (name: value); the list of {name, value} is v1beta4",
        ),
        KUBEADM_V1BETA4 => Some(
            "in kubeadm.k8s.io/v1beta4 kubeletExtraArgs is a list of {name, value}; the map form is v1beta3",
        ),
        _ => None,
    }
}

/// The known name closest to `name`, if it is close enough to be a likely typo (case ignored).
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let lowered: Vec<String> = known.iter().map(|k| k.to_ascii_lowercase()).collect();
    let hit = crate::suggest::closest(&lower, lowered.iter().map(String::as_str), |d, k| {
        d <= 2 || d * 3 <= k.len()
    })?;
    let i = lowered.iter().position(|k| k == hit)?;
    known.get(i).copied()
}

/// Replaces the secret half of anything shaped like a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`,
/// any case, so a mistyped upper-case token is caught too). Decoder messages quote values, e.g.
/// `invalid type: string "abcdef.0123…", expected a mapping` when a token is put one level up.
fn redact_tokens(s: &str) -> String {
    let b = s.as_bytes();
    let alnum = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_alphanumeric());
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 23 <= b.len() {
        let shaped = (i..i + 6).all(alnum) && b[i + 6] == b'.' && (i + 7..i + 23).all(alnum);
        if shaped && !(i > 0 && alnum(i - 1)) {
            // Only ASCII bytes were matched, so i + 7 is a char boundary.
            out.push_str(&s[copied..i + 7]);
            out.push_str("<redacted>");
            let mut end = i + 23;
            while alnum(end) {
                end += 1;
            }
            copied = end;
            i = end;
        } else {
            i += 1;
        }
    }
    // `copied` is always just after an ASCII byte or 0, so it is a char boundary.
    out.push_str(&s[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_suggestions() {
        let known = ["caCertPath", "discovery", "nodeRegistration"];
        assert_eq!(closest("cacertpath", &known), Some("caCertPath"));
        assert_eq!(closest("discovry", &known), Some("discovery"));
        assert_eq!(closest("zzz", &known), None);
    }

    #[test]
    fn token_shapes_are_redacted_wherever_they_are() {
        assert_eq!(
            redact_tokens("abcdef.0123456789abcdef"),
            "abcdef.<redacted>"
        );
        assert_eq!(
            redact_tokens("string \"ABCDEF.0123456789ABCDEF\", expected"),
            "string \"ABCDEF.<redacted>\", expected"
        );
        // Longer secrets are swallowed whole; two tokens both go.
        assert_eq!(
            redact_tokens("x abcdef.0123456789abcdefgh y"),
            "x abcdef.<redacted> y"
        );
        assert_eq!(
            redact_tokens("abcdef.0123456789abcdef:abcdef.0123456789abcdef"),
            "abcdef.<redacted>:abcdef.<redacted>"
        );
        // Ordinary text, short ids, multi-byte text untouched.
        for s in [
            "kubeadm.k8s.io/v1beta4",
            "net.ipv4.ip_forward",
            "é abcdef.0123 ü",
            "",
        ] {
            assert_eq!(redact_tokens(s), s);
        }
        assert_eq!(
            redact_tokens("ü-abcdef.0123456789abcdef-ü"),
            "ü-abcdef.<redacted>-ü"
        );
    }

    #[test]
    fn url_schemes_as_go_finds_them() {
        assert_eq!(url_scheme("https://x").as_deref(), Some("https"));
        assert_eq!(url_scheme("HTTPS://x").as_deref(), Some("https"));
        assert_eq!(url_scheme("file:///x").as_deref(), Some("file"));
        assert_eq!(url_scheme("/etc/kubernetes/x.conf"), None);
        assert_eq!(url_scheme("x.conf"), None);
        assert_eq!(url_scheme(":x"), None);
        assert_eq!(url_scheme("1http://x"), None);
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/a%2"), None);
    }

    #[test]
    fn https_urls_need_a_host() {
        assert!(normalize_file_path(Some("https:///x".into())).is_err());
        assert!(normalize_file_path(Some("https:x".into())).is_err());
        assert_eq!(
            normalize_file_path(Some("HTTPS://h/x".into())),
            Ok(DiscoveryMethod::Https {
                url: "HTTPS://h/x".into()
            })
        );
    }

    #[test]
    fn yaml_one_one_booleans_get_help() {
        let yaml = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndryRun: yes\n";
        let e = parse(yaml.as_bytes(), "x").unwrap_err();
        assert!(e.to_string().ends_with("; write true or false"), "{e}");
    }
}
