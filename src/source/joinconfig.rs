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

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A position in the input, 1-based, as the YAML parser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// A config file that cannot be used. Displays as `<origin>: [line L column C: ]<reason>`.
/// Never carries a token secret. (Boxed: errors are rare and `Result`s stay small.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<ErrorInner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorInner {
    origin: String,
    location: Option<Location>,
    kind: ConfigErrorKind,
}

impl ConfigError {
    /// The path or URL given to [`parse`] (token-shaped text redacted).
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// Where in the input, when the YAML decoder knew it (syntax, unknown fields, wrong types,
    /// the start of a document that is refused as a whole).
    pub fn location(&self) -> Option<Location> {
        self.0.location
    }

    /// What is wrong.
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.0.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.0.origin)?;
        if let Some(l) = self.0.location {
            write!(f, "line {} column {}: ", l.line, l.column)?;
        }
        write!(f, "{}", self.0.kind)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.kind)
    }
}

impl Classify for ConfigError {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hint(&self) -> Option<String> {
        match &self.0.kind {
            ConfigErrorKind::UnsupportedVersion { kind, no_longer: true, .. } if kind == JOIN_KIND => Some(
                "convert the file with `kubeadm config migrate --old-config <file> --new-config <new-file>`"
                    .into(),
            ),
            ConfigErrorKind::UnsafeWithoutPins => Some(
                "on a control-plane node, get the hash with: openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt \
                 | openssl rsa -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex | sed 's/^.* /sha256:/'"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Why a config file was refused. Tests compare these; texts follow kubeadm where kubeadm has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("the config is {size} bytes; a config file may be at most {MAX_CONFIG_BYTES} bytes")]
    TooLarge { size: usize },
    /// The bytes are not YAML/JSON.
    #[error("malformed YAML or JSON: {message}")]
    Syntax { message: String },
    /// Over one of the YAML reader's budgets ([`crate::yaml`]): nesting, nodes, documents.
    #[error("the YAML exceeds kubejoin's limit of {limit} {what}")]
    YamlLimit { what: &'static str, limit: usize },
    #[error("document {document} is not a mapping with apiVersion and kind")]
    NotAMapping { document: usize },
    /// kubeadm's text.
    #[error(
        "document {document}: kind and apiVersion is mandatory information that must be specified"
    )]
    MissingTypeMeta { document: usize },
    #[error(
        "document {document}: unknown apiVersion {api_version:?} and kind {kind:?}; supported: {SUPPORTED_TEXT}"
    )]
    UnknownKind {
        document: usize,
        api_version: String,
        kind: String,
    },
    /// A known kind in an apiVersion kubejoin does not read (`no_longer`: an older kubeadm API).
    #[error(
        "document {document}: apiVersion {api_version:?} is {} for {kind}; use {}",
        if *no_longer { "no longer supported" } else { "not supported" },
        supported.join(" or ")
    )]
    UnsupportedVersion {
        document: usize,
        api_version: String,
        kind: String,
        no_longer: bool,
        supported: Vec<&'static str>,
    },
    #[error("{kind} is given twice (documents {first} and {second}); give it once")]
    DuplicateDocument {
        kind: String,
        first: usize,
        second: usize,
    },
    #[error("no JoinConfiguration or KubejoinConfiguration found in the supplied config")]
    NoConfiguration,
    /// A field the kind does not have. `path` is the full field path (`discovery.tlsBootstrapTokn`).
    #[error(
        "unknown field {field:?} in {kind} ({api_version}){}{}",
        if path.contains(['.', '[']) { format!(" at {path}") } else { String::new() },
        help.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
    )]
    UnknownField {
        field: String,
        path: String,
        kind: String,
        api_version: String,
        help: Option<String>,
    },
    /// A value of the wrong type or shape, as the decoder said it (it names the field path).
    #[error(
        "{message} in {kind} ({api_version}){}",
        help.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
    )]
    Decode {
        message: String,
        kind: String,
        api_version: String,
        help: Option<String>,
    },
    /// kubeadm's text.
    #[error("discovery: bootstrapToken or file must be set")]
    DiscoveryNotSet,
    /// kubeadm's text.
    #[error("discovery: bootstrapToken and file cannot both be set")]
    DiscoveryBothSet,
    /// kubeadm's text.
    #[error("discovery.bootstrapToken.apiServerEndpoint: APIServerEndpoint is not set")]
    EndpointNotSet,
    #[error(
        "discovery.bootstrapToken.apiServerEndpoint: invalid value {value:?}: {why} (use host:port; an IPv6 \
         address goes in brackets, e.g. [fd00::10]:6443)"
    )]
    EndpointInvalid { value: String, why: &'static str },
    /// kubeadm's text.
    #[error(
        "discovery.bootstrapToken.caCertHashes: using token-based discovery without caCertHashes can be unsafe. \
         Set unsafeSkipCAVerification as true in your kubeadm config file or pass \
         --discovery-token-unsafe-skip-ca-verification flag to continue"
    )]
    UnsafeWithoutPins,
    /// kubeadm's text; the token itself is never shown.
    #[error("{path}: the bootstrap token is invalid")]
    InvalidToken { path: String },
    #[error("{path}: invalid discovery token CA certificate hash: {source}")]
    InvalidPin { path: String, source: PinError },
    /// kubeadm's text.
    #[error("discovery.file.kubeConfigPath: if a URL is used, the scheme must be https (got {scheme:?})")]
    FileUrlScheme { scheme: String },
    #[error("{path}: {source}")]
    InvalidNodeName { path: String, source: NodeNameError },
    #[error("{path}: {source}")]
    InvalidDuration { path: String, source: DurationError },
    /// Any other refused value; `message` says what is wrong and what is allowed.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

const SUPPORTED_TEXT: &str = "JoinConfiguration (kubeadm.k8s.io/v1beta3, kubeadm.k8s.io/v1beta4), \
     KubejoinConfiguration (kubejoin.dev/v1alpha1); accepted and ignored: InitConfiguration, \
     ClusterConfiguration (kubeadm.k8s.io/v1beta3, kubeadm.k8s.io/v1beta4), ResetConfiguration, \
     UpgradeConfiguration (kubeadm.k8s.io/v1beta4), KubeletConfiguration (kubelet.config.k8s.io/v1beta1), \
     KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1)";

impl ConfigErrorKind {
    /// The same error with anything shaped like a bootstrap token redacted from every text it
    /// carries. Applied to every error [`parse`] returns: values are quoted back in messages
    /// (a token pasted into `caCertHashes`, `kubeletPath` or a node name must not be printed).
    fn redacted(self) -> Self {
        use ConfigErrorKind as K;
        let r = |s: String| redact_tokens(&s);
        match self {
            K::Syntax { message } => K::Syntax {
                message: r(message),
            },
            K::UnknownKind {
                document,
                api_version,
                kind,
            } => K::UnknownKind {
                document,
                api_version: r(api_version),
                kind: r(kind),
            },
            K::UnsupportedVersion {
                document,
                api_version,
                kind,
                no_longer,
                supported,
            } => K::UnsupportedVersion {
                document,
                api_version: r(api_version),
                kind: r(kind),
                no_longer,
                supported,
            },
            K::DuplicateDocument {
                kind,
                first,
                second,
            } => K::DuplicateDocument {
                kind: r(kind),
                first,
                second,
            },
            K::UnknownField {
                field,
                path,
                kind,
                api_version,
                help,
            } => K::UnknownField {
                field: r(field),
                path: r(path),
                kind: r(kind),
                api_version: r(api_version),
                help: help.map(r),
            },
            K::Decode {
                message,
                kind,
                api_version,
                help,
            } => K::Decode {
                message: r(message),
                kind: r(kind),
                api_version: r(api_version),
                help: help.map(r),
            },
            K::EndpointInvalid { value, why } => K::EndpointInvalid {
                value: r(value),
                why,
            },
            K::InvalidToken { path } => K::InvalidToken { path: r(path) },
            K::InvalidPin { path, source } => {
                let source = match source {
                    PinError::Format(s) => PinError::Format(r(s)),
                    PinError::UnknownFormat(s) => PinError::UnknownFormat(r(s)),
                    PinError::Length { full, found } => PinError::Length {
                        full: r(full),
                        found,
                    },
                    PinError::Hex(s) => PinError::Hex(r(s)),
                };
                K::InvalidPin {
                    path: r(path),
                    source,
                }
            }
            K::FileUrlScheme { scheme } => K::FileUrlScheme { scheme: r(scheme) },
            K::InvalidNodeName { path, source } => K::InvalidNodeName {
                path: r(path),
                source: NodeNameError {
                    name: r(source.name),
                    why: source.why,
                },
            },
            K::InvalidDuration { path, source } => K::InvalidDuration {
                path: r(path),
                source: DurationError(r(source.0)),
            },
            K::Invalid { path, message } => K::Invalid {
                path: r(path),
                message: r(message),
            },
            other @ (K::TooLarge { .. }
            | K::YamlLimit { .. }
            | K::NotAMapping { .. }
            | K::MissingTypeMeta { .. }
            | K::NoConfiguration
            | K::DiscoveryNotSet
            | K::DiscoveryBothSet
            | K::EndpointNotSet
            | K::UnsafeWithoutPins) => other,
        }
    }
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigErrorKind {
    ConfigErrorKind::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

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

// ---------------------------------------------------------------------------------------------
// Raw (wire) types. No Debug: they hold token strings.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JoinConfiguration mapping"
)]
struct RawJoinV1beta3 {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(default)]
    ca_cert_path: Option<String>,
    #[serde(default)]
    discovery: Option<RawDiscoveryV1beta3>,
    #[serde(default)]
    node_registration: Option<RawNodeRegistrationV1beta3>,
    #[serde(default)]
    control_plane: Option<RawControlPlane>,
    #[serde(default)]
    skip_phases: Option<Vec<String>>,
    #[serde(default)]
    patches: Option<RawPatches>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JoinConfiguration mapping"
)]
struct RawJoinV1beta4 {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    ca_cert_path: Option<String>,
    #[serde(default)]
    discovery: Option<RawDiscoveryV1beta4>,
    #[serde(default)]
    node_registration: Option<RawNodeRegistrationV1beta4>,
    #[serde(default)]
    control_plane: Option<RawControlPlane>,
    #[serde(default)]
    skip_phases: Option<Vec<String>>,
    #[serde(default)]
    patches: Option<RawPatches>,
    #[serde(default)]
    timeouts: Option<RawTimeouts>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a discovery mapping"
)]
struct RawDiscoveryV1beta3 {
    #[serde(default)]
    bootstrap_token: Option<RawBootstrapToken>,
    #[serde(default)]
    file: Option<RawFile>,
    #[serde(default)]
    tls_bootstrap_token: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a discovery mapping"
)]
struct RawDiscoveryV1beta4 {
    #[serde(default)]
    bootstrap_token: Option<RawBootstrapToken>,
    #[serde(default)]
    file: Option<RawFile>,
    #[serde(default)]
    tls_bootstrap_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a bootstrapToken mapping"
)]
struct RawBootstrapToken {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    api_server_endpoint: Option<String>,
    #[serde(default)]
    ca_cert_hashes: Option<Vec<String>>,
    #[serde(default, rename = "unsafeSkipCAVerification")]
    unsafe_skip_ca_verification: Option<bool>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a file mapping"
)]
struct RawFile {
    #[serde(default)]
    kube_config_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a nodeRegistration mapping"
)]
struct RawNodeRegistrationV1beta3 {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cri_socket: Option<String>,
    #[serde(default)]
    taints: Option<Vec<RawTaint>>,
    #[serde(default)]
    kubelet_extra_args: Option<BTreeMap<String, String>>,
    #[serde(default)]
    ignore_preflight_errors: Option<Vec<String>>,
    #[serde(default)]
    image_pull_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a nodeRegistration mapping"
)]
struct RawNodeRegistrationV1beta4 {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cri_socket: Option<String>,
    #[serde(default)]
    taints: Option<Vec<RawTaint>>,
    #[serde(default)]
    kubelet_extra_args: Option<Vec<RawArg>>,
    #[serde(default)]
    ignore_preflight_errors: Option<Vec<String>>,
    #[serde(default)]
    image_pull_policy: Option<String>,
    #[serde(default)]
    image_pull_serial: Option<bool>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a {name, value} mapping"
)]
struct RawArg {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a taint mapping"
)]
struct RawTaint {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    effect: Option<String>,
    #[serde(default)]
    time_added: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a patches mapping"
)]
struct RawPatches {
    #[serde(default)]
    directory: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a controlPlane mapping"
)]
struct RawControlPlane {
    #[serde(default, rename = "localAPIEndpoint")]
    local_api_endpoint: Option<RawApiEndpoint>,
    #[serde(default)]
    certificate_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a localAPIEndpoint mapping"
)]
struct RawApiEndpoint {
    #[serde(default)]
    advertise_address: Option<String>,
    #[serde(default)]
    bind_port: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a timeouts mapping"
)]
struct RawTimeouts {
    #[serde(default)]
    control_plane_component_health_check: Option<String>,
    #[serde(default)]
    kubelet_health_check: Option<String>,
    #[serde(default, rename = "kubernetesAPICall")]
    kubernetes_api_call: Option<String>,
    #[serde(default, rename = "etcdAPICall")]
    etcd_api_call: Option<String>,
    #[serde(default)]
    tls_bootstrap: Option<String>,
    #[serde(default)]
    discovery: Option<String>,
    #[serde(default)]
    upgrade_manifests: Option<String>,
}

/// Both kubeadm versions, before defaulting and validation. Where a field's path differs between
/// the versions (`discovery.timeout` / `timeouts.discovery`, map / list `kubeletExtraArgs`), the
/// path travels with the value so errors name what the user wrote.
struct Common {
    dry_run: bool,
    ca_cert_path: Option<String>,
    bootstrap_token: Option<RawBootstrapToken>,
    file: Option<RawFile>,
    tls_bootstrap_token: Option<String>,
    name: Option<String>,
    cri_socket: Option<String>,
    taints: Vec<RawTaint>,
    /// (name, value, path of the entry)
    kubelet_extra_args: Vec<(Option<String>, String, String)>,
    ignore_preflight_errors: Vec<String>,
    image_pull_policy: Option<String>,
    image_pull_serial: Option<bool>,
    control_plane: Option<RawControlPlane>,
    skip_phases: Vec<String>,
    patches_directory: Option<String>,
    /// v1beta4 `timeouts`; for v1beta3 only `discovery` is set (from `discovery.timeout`).
    timeouts: RawTimeouts,
    /// Where the discovery timeout was written, for its error message.
    discovery_timeout_path: &'static str,
}

impl RawJoinV1beta3 {
    fn into_common(self) -> Common {
        let d = self.discovery;
        let nr = self.node_registration;
        let (bootstrap_token, file, tls_bootstrap_token, timeout) = match d {
            Some(d) => (d.bootstrap_token, d.file, d.tls_bootstrap_token, d.timeout),
            None => (None, None, None, None),
        };
        let mut c = Common {
            dry_run: false,
            ca_cert_path: self.ca_cert_path,
            bootstrap_token,
            file,
            tls_bootstrap_token,
            name: None,
            cri_socket: None,
            taints: Vec::new(),
            kubelet_extra_args: Vec::new(),
            ignore_preflight_errors: Vec::new(),
            image_pull_policy: None,
            image_pull_serial: None,
            control_plane: self.control_plane,
            skip_phases: self.skip_phases.unwrap_or_default(),
            patches_directory: self.patches.and_then(|p| p.directory),
            timeouts: RawTimeouts {
                discovery: timeout,
                ..RawTimeouts::default()
            },
            discovery_timeout_path: "discovery.timeout",
        };
        if let Some(nr) = nr {
            c.name = nr.name;
            c.cri_socket = nr.cri_socket;
            c.taints = nr.taints.unwrap_or_default();
            // v1beta3 → internal conversion sorts the map by name; BTreeMap iterates sorted.
            c.kubelet_extra_args = nr
                .kubelet_extra_args
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let path = format!("nodeRegistration.kubeletExtraArgs.{k}");
                    (Some(k), v, path)
                })
                .collect();
            c.ignore_preflight_errors = nr.ignore_preflight_errors.unwrap_or_default();
            c.image_pull_policy = nr.image_pull_policy;
        }
        c
    }
}

impl RawJoinV1beta4 {
    fn into_common(self) -> Common {
        let (bootstrap_token, file, tls_bootstrap_token) = match self.discovery {
            Some(d) => (d.bootstrap_token, d.file, d.tls_bootstrap_token),
            None => (None, None, None),
        };
        let mut c = Common {
            dry_run: self.dry_run.unwrap_or(false),
            ca_cert_path: self.ca_cert_path,
            bootstrap_token,
            file,
            tls_bootstrap_token,
            name: None,
            cri_socket: None,
            taints: Vec::new(),
            kubelet_extra_args: Vec::new(),
            ignore_preflight_errors: Vec::new(),
            image_pull_policy: None,
            image_pull_serial: None,
            control_plane: self.control_plane,
            skip_phases: self.skip_phases.unwrap_or_default(),
            patches_directory: self.patches.and_then(|p| p.directory),
            timeouts: self.timeouts.unwrap_or_default(),
            discovery_timeout_path: "timeouts.discovery",
        };
        if let Some(nr) = self.node_registration {
            c.name = nr.name;
            c.cri_socket = nr.cri_socket;
            c.taints = nr.taints.unwrap_or_default();
            c.kubelet_extra_args = nr
                .kubelet_extra_args
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    (
                        a.name,
                        a.value.unwrap_or_default(),
                        format!("nodeRegistration.kubeletExtraArgs[{i}]"),
                    )
                })
                .collect();
            c.ignore_preflight_errors = nr.ignore_preflight_errors.unwrap_or_default();
            c.image_pull_policy = nr.image_pull_policy;
            c.image_pull_serial = nr.image_pull_serial;
        }
        c
    }
}

// ---------------------------------------------------------------------------------------------
// Defaulting and validation of a JoinConfiguration
// ---------------------------------------------------------------------------------------------

/// `controlPlane`, validated as kubeadm does (an IP address, a port), the key parsed and never
/// echoed.
fn control_plane(cp: RawControlPlane) -> Result<JoinControlPlane, ConfigErrorKind> {
    let mut out = JoinControlPlane::default();
    if let Some(e) = cp.local_api_endpoint {
        if let Some(a) = non_empty(e.advertise_address) {
            out.advertise_address = Some(a.parse().map_err(|_| {
                invalid(
                    "controlPlane.localAPIEndpoint.advertiseAddress",
                    format!("{a:?} is not a valid IP address"),
                )
            })?);
        }
        if let Some(p) = e.bind_port {
            out.bind_port = Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                invalid(
                    "controlPlane.localAPIEndpoint.bindPort",
                    format!("{p} is not a valid port number (1-65535)"),
                )
            })?);
        }
    }
    if let Some(k) = non_empty(cp.certificate_key) {
        out.certificate_key = Some(
            crate::plan::certificate_key::CertificateKey::parse(&k)
                .map_err(|e| invalid("controlPlane.certificateKey", e.to_string()))?,
        );
    }
    Ok(out)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn normalize_join(
    c: Common,
    warnings: &mut Vec<String>,
) -> Result<JoinConfiguration, ConfigErrorKind> {
    let control_plane = match c.control_plane {
        None => None,
        Some(cp) => Some(control_plane(cp)?),
    };

    let ca_cert_path =
        non_empty(c.ca_cert_path).unwrap_or_else(|| DEFAULT_CA_CERT_PATH.to_string());
    if !ca_cert_path.starts_with('/') {
        return Err(invalid(
            "caCertPath",
            format!("invalid value {ca_cert_path:?}: path is not absolute"),
        ));
    }

    let discovery =
        normalize_discovery(c.bootstrap_token, c.file, non_empty(c.tls_bootstrap_token))?;
    if let DiscoveryMethod::Token {
        ca_cert_hashes,
        unsafe_skip_ca_verification: true,
        ..
    } = &discovery.method
    {
        if ca_cert_hashes.is_empty() {
            warnings.push(
                "discovery.bootstrapToken.unsafeSkipCAVerification is true and no caCertHashes are set: the \
                 cluster CA will be trusted without verification"
                    .to_string(),
            );
        }
    }

    let name = match non_empty(c.name) {
        // kubeadm lower-cases the name before validating it (SetNodeRegistrationDynamicDefaults).
        Some(n) => Some(NodeName::parse(&n.to_ascii_lowercase()).map_err(|source| {
            ConfigErrorKind::InvalidNodeName {
                path: "nodeRegistration.name".into(),
                source,
            }
        })?),
        None => None,
    };

    let cri_socket = match non_empty(c.cri_socket) {
        Some(s) => Some(normalize_cri_socket(&s, warnings)?),
        None => None,
    };

    let mut taints = Vec::new();
    for (i, t) in c.taints.into_iter().enumerate() {
        let taint = normalize_taint(t, &format!("nodeRegistration.taints[{i}]"))?;
        if taints
            .iter()
            .any(|o: &Taint| o.key == taint.key && o.effect == taint.effect)
        {
            return Err(invalid(
                format!("nodeRegistration.taints[{i}]"),
                format!("taints must be unique by key and effect ({taint} repeats an earlier one)"),
            ));
        }
        taints.push(taint);
    }

    let kubelet_extra_args = c
        .kubelet_extra_args
        .into_iter()
        .map(|(name, value, path)| check_arg(name, value, &path))
        .collect::<Result<Vec<_>, _>>()?;

    let ignore_preflight_errors = normalize_ignore_preflight(c.ignore_preflight_errors)?;

    let image_pull_policy = match c.image_pull_policy.as_deref().unwrap_or("") {
        "" | "IfNotPresent" => ImagePullPolicy::IfNotPresent,
        "Always" => ImagePullPolicy::Always,
        "Never" => ImagePullPolicy::Never,
        other => {
            return Err(invalid(
                "nodeRegistration.imagePullPolicy",
                format!("Unsupported value: {other:?}: supported values: \"Always\", \"IfNotPresent\", \"Never\""),
            ))
        }
    };

    let patches_directory = non_empty(c.patches_directory).map(PathBuf::from);
    if let Some(dir) = &patches_directory {
        warnings.push(format!(
            "patches.directory ({}) is not supported by kubejoin and is ignored: no patches are applied",
            dir.display()
        ));
    }

    let timeouts = normalize_timeouts(&c.timeouts, c.discovery_timeout_path)?;

    Ok(JoinConfiguration {
        dry_run: c.dry_run,
        ca_cert_path: PathBuf::from(ca_cert_path),
        discovery,
        node_registration: NodeRegistration {
            name,
            cri_socket,
            taints,
            kubelet_extra_args,
            ignore_preflight_errors,
            image_pull_policy,
            image_pull_serial: c.image_pull_serial.unwrap_or(true),
        },
        control_plane,
        skip_phases: c
            .skip_phases
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        patches_directory,
        timeouts,
    })
}

fn normalize_discovery(
    bootstrap_token: Option<RawBootstrapToken>,
    file: Option<RawFile>,
    tls_bootstrap_token: Option<String>,
) -> Result<Discovery, ConfigErrorKind> {
    const TLS_PATH: &str = "discovery.tlsBootstrapToken";
    let parse_tls = |s: &str| {
        BootstrapToken::parse(s).map_err(|_| ConfigErrorKind::InvalidToken {
            path: TLS_PATH.into(),
        })
    };
    match (bootstrap_token, file) {
        (None, None) => Err(ConfigErrorKind::DiscoveryNotSet),
        (Some(_), Some(_)) => Err(ConfigErrorKind::DiscoveryBothSet),
        (Some(bt), None) => {
            // Checks in kubeadm's order (ValidateDiscoveryBootstrapToken), so the first message a
            // user sees is the one kubeadm would have printed first.
            let endpoint =
                non_empty(bt.api_server_endpoint).ok_or(ConfigErrorKind::EndpointNotSet)?;
            let hashes = bt.ca_cert_hashes.unwrap_or_default();
            let unsafe_skip = bt.unsafe_skip_ca_verification.unwrap_or(false);
            if hashes.is_empty() && !unsafe_skip {
                return Err(ConfigErrorKind::UnsafeWithoutPins);
            }
            let token = BootstrapToken::parse(bt.token.as_deref().unwrap_or("")).map_err(|_| {
                ConfigErrorKind::InvalidToken {
                    path: "discovery.bootstrapToken.token".into(),
                }
            })?;
            check_endpoint(&endpoint)?;
            let mut pins = Vec::new();
            for (i, h) in hashes.iter().enumerate() {
                // Parse one by one so the error names the entry.
                PinSet::parse(&[h]).map_err(|source| ConfigErrorKind::InvalidPin {
                    path: format!("discovery.bootstrapToken.caCertHashes[{i}]"),
                    source,
                })?;
                pins.push(h.as_str());
            }
            let ca_cert_hashes =
                PinSet::parse(&pins).map_err(|source| ConfigErrorKind::InvalidPin {
                    path: "discovery.bootstrapToken.caCertHashes".into(),
                    source,
                })?;
            // tlsBootstrapToken defaults to the discovery token (SetDefaults_Discovery).
            let tls_bootstrap_token = match tls_bootstrap_token {
                Some(t) => parse_tls(&t)?,
                None => token.clone(),
            };
            Ok(Discovery {
                method: DiscoveryMethod::Token {
                    api_server_endpoint: endpoint,
                    token,
                    ca_cert_hashes,
                    unsafe_skip_ca_verification: unsafe_skip,
                },
                tls_bootstrap_token: Some(tls_bootstrap_token),
            })
        }
        (None, Some(f)) => {
            let method = normalize_file_path(non_empty(f.kube_config_path))?;
            let tls_bootstrap_token = tls_bootstrap_token.as_deref().map(parse_tls).transpose()?;
            Ok(Discovery {
                method,
                tls_bootstrap_token,
            })
        }
    }
}

/// `host:port`, validated as for every source ([`crate::plan::endpoint`]).
fn check_endpoint(ep: &str) -> Result<(), ConfigErrorKind> {
    crate::plan::endpoint::Endpoint::parse(ep)
        .map(|_| ())
        .map_err(|e| ConfigErrorKind::EndpointInvalid {
            value: e.value,
            why: e.why,
        })
}

/// The scheme of a URL as Go's `url.Parse` finds it (`[a-zA-Z][a-zA-Z0-9+.-]*:`), lower-cased.
fn url_scheme(s: &str) -> Option<String> {
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => return Some(s[..i].to_ascii_lowercase()),
            _ => return None,
        }
    }
    None
}

fn normalize_file_path(path: Option<String>) -> Result<DiscoveryMethod, ConfigErrorKind> {
    const PATH: &str = "discovery.file.kubeConfigPath";
    let Some(path) = path else {
        return Err(invalid(PATH, "kubeConfigPath is not set"));
    };
    match url_scheme(&path).as_deref() {
        None => Ok(DiscoveryMethod::File {
            kube_config_path: PathBuf::from(path),
        }),
        Some("https") => {
            // `https:` without `//` or without a host cannot be fetched.
            let host = match path.get(..8) {
                Some(p) if p.eq_ignore_ascii_case("https://") => {
                    path[8..].split(['/', '?', '#']).next()
                }
                _ => None,
            };
            if host.is_none_or(str::is_empty) {
                return Err(invalid(
                    PATH,
                    format!("invalid value {path:?}: not a valid HTTPS URL"),
                ));
            }
            Ok(DiscoveryMethod::Https { url: path })
        }
        Some("file") => {
            // SetDefaults_FileDiscovery keeps only the URL's path: file:///p and file://host/p
            // both become /p.
            let rest = &path["file:".len()..];
            let p = match rest.strip_prefix("//") {
                Some(after) => after.find('/').map(|i| &after[i..]).unwrap_or(""),
                None => rest,
            };
            let p = percent_decode(p)
                .ok_or_else(|| invalid(PATH, format!("invalid value {path:?}: bad %-escape")))?;
            if p.is_empty() {
                return Err(invalid(
                    PATH,
                    format!("invalid value {path:?}: the file URL has no path"),
                ));
            }
            Ok(DiscoveryMethod::File {
                kube_config_path: PathBuf::from(p),
            })
        }
        Some(other) => Err(ConfigErrorKind::FileUrlScheme {
            scheme: other.to_string(),
        }),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn normalize_cri_socket(s: &str, warnings: &mut Vec<String>) -> Result<String, ConfigErrorKind> {
    const PATH: &str = "nodeRegistration.criSocket";
    let socket = if s.contains("://") {
        s.to_string()
    } else {
        // kubeadm prepends the scheme with a deprecation warning rather than failing.
        warnings.push(format!(
            "{PATH} {s:?} has no URL scheme; using \"unix://{s}\" (endpoints without a scheme are deprecated — \
             please update the configuration)"
        ));
        format!("unix://{s}")
    };
    match socket.split_once("://") {
        Some(("unix", path)) if path.starts_with('/') => Ok(socket),
        Some(("unix", _)) => Err(invalid(
            PATH,
            format!("invalid value {socket:?}: path is not absolute"),
        )),
        Some((scheme, _)) => Err(invalid(
            PATH,
            format!("invalid value {socket:?}: URL scheme {scheme:?} is not supported"),
        )),
        None => Err(invalid(PATH, format!("invalid value {socket:?}"))),
    }
}

fn normalize_taint(t: RawTaint, path: &str) -> Result<Taint, ConfigErrorKind> {
    let key = t.key.unwrap_or_default();
    if let Err(why) = check_qualified_name(&key) {
        return Err(invalid(
            format!("{path}.key"),
            format!("invalid value {key:?}: {why}"),
        ));
    }
    let value = t.value.unwrap_or_default();
    if !value.is_empty() && check_label_part(&value).is_err() {
        return Err(invalid(
            format!("{path}.value"),
            format!(
                "invalid value {value:?}: a taint value must be at most 63 characters of [A-Za-z0-9_.-], starting and \
                 ending with a letter or digit"
            ),
        ));
    }
    let effect = match t.effect.as_deref().unwrap_or("") {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        other => {
            return Err(invalid(
                format!("{path}.effect"),
                format!(
                    "Unsupported value: {other:?}: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
                ),
            ))
        }
    };
    Ok(Taint {
        key,
        value,
        effect,
        time_added: non_empty(t.time_added),
    })
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn check_label_part(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    if !b.iter().all(inner)
        || !b[0].is_ascii_alphanumeric()
        || !b[b.len() - 1].is_ascii_alphanumeric()
    {
        return Err("must be [A-Za-z0-9_.-], starting and ending with a letter or digit");
    }
    Ok(())
}

/// A Kubernetes qualified name: `[prefix/]name`, the prefix a DNS subdomain.
fn check_qualified_name(s: &str) -> Result<(), &'static str> {
    let name = match s.split_once('/') {
        Some((prefix, name)) => {
            let ok_prefix = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    let b = l.as_bytes();
                    !b.is_empty()
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                        && b[0] != b'-'
                        && b[b.len() - 1] != b'-'
                });
            if !ok_prefix {
                return Err("the prefix before '/' must be a lower-case DNS subdomain");
            }
            name
        }
        None => s,
    };
    check_label_part(name).map_err(|_| {
        "a taint key must be a qualified name: an optional DNS subdomain prefix and '/', then at most 63 characters \
         of [A-Za-z0-9_.-], starting and ending with a letter or digit"
    })
}

fn check_arg(
    name: Option<String>,
    value: String,
    path: &str,
) -> Result<(String, String), ConfigErrorKind> {
    let name = name.unwrap_or_default();
    if name.is_empty() {
        return Err(invalid(path, "argument has no name"));
    }
    if name.starts_with('-') {
        // kubeadm would render "----node-ip" and the kubelet would refuse it.
        return Err(invalid(
            path,
            format!(
                "argument name {name:?} must be given without leading dashes (kubeadm adds \"--\")"
            ),
        ));
    }
    if name.contains(['=', ' ', '\n', '\t']) {
        return Err(invalid(
            path,
            format!("argument name {name:?} must not contain '=' or whitespace"),
        ));
    }
    Ok((name, value))
}

fn normalize_ignore_preflight(list: Vec<String>) -> Result<Vec<String>, ConfigErrorKind> {
    let mut out: Vec<String> = Vec::new();
    for item in list {
        let item = item.trim().to_ascii_lowercase();
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
    }
    if out.len() > 1 && out.iter().any(|s| s == "all") {
        return Err(invalid(
            "nodeRegistration.ignorePreflightErrors",
            "don't specify \"all\" along with any other ignored preflight errors",
        ));
    }
    Ok(out)
}

fn parse_duration(path: &str, s: &str) -> Result<Duration, ConfigErrorKind> {
    duration::parse(s).map_err(|source| ConfigErrorKind::InvalidDuration {
        path: path.into(),
        source,
    })
}

fn normalize_timeouts(
    raw: &RawTimeouts,
    discovery_path: &str,
) -> Result<Timeouts, ConfigErrorKind> {
    let d = Timeouts::default();
    let one = |path: &str, v: &Option<String>, default: Duration| match non_empty(v.clone()) {
        Some(s) => parse_duration(path, &s),
        None => Ok(default),
    };
    Ok(Timeouts {
        control_plane_component_health_check: one(
            "timeouts.controlPlaneComponentHealthCheck",
            &raw.control_plane_component_health_check,
            d.control_plane_component_health_check,
        )?,
        kubelet_health_check: one(
            "timeouts.kubeletHealthCheck",
            &raw.kubelet_health_check,
            d.kubelet_health_check,
        )?,
        kubernetes_api_call: one(
            "timeouts.kubernetesAPICall",
            &raw.kubernetes_api_call,
            d.kubernetes_api_call,
        )?,
        etcd_api_call: one("timeouts.etcdAPICall", &raw.etcd_api_call, d.etcd_api_call)?,
        tls_bootstrap: one("timeouts.tlsBootstrap", &raw.tls_bootstrap, d.tls_bootstrap)?,
        discovery: one(discovery_path, &raw.discovery, d.discovery)?,
        upgrade_manifests: one(
            "timeouts.upgradeManifests",
            &raw.upgrade_manifests,
            d.upgrade_manifests,
        )?,
    })
}

// ---------------------------------------------------------------------------------------------
// KubejoinConfiguration
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a KubejoinConfiguration mapping"
)]
struct RawKubejoin {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(default)]
    modules: Option<Vec<String>>,
    #[serde(default)]
    sysctls: Option<OrderedScalars>,
    #[serde(default)]
    handoff: Option<RawHandoff>,
    #[serde(default)]
    kubelet_path: Option<String>,
    #[serde(default)]
    token_file: Option<String>,
    #[serde(default)]
    on_failure: Option<RawOnFailure>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    tls_bootstrap_timeout: Option<String>,
    #[serde(default)]
    network: Option<RawNetwork>,
    #[serde(default)]
    kubelet_args: Option<Vec<RawArg>>,
    #[serde(default)]
    ntp: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawHandoff {
    Exec,
    None,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawOnFailure {
    Retry,
    Reboot,
    Poweroff,
    Shell,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a network mapping"
)]
struct RawNetwork {
    #[serde(default)]
    interfaces: Option<Vec<RawInterface>>,
    #[serde(default)]
    nameservers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "an interface mapping"
)]
struct RawInterface {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    dhcp: Option<bool>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
}

/// A mapping of scalars kept in file order, each value as text (`1` → "1", `true` → "true"):
/// sysctl values are written as text, and YAML users write `net.ipv4.ip_forward: 1`.
struct OrderedScalars(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedScalars {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar(String);
        impl<'de> Deserialize<'de> for Scalar {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Scalar;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string, number or boolean")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct M;
        impl<'de> Visitor<'de> for M {
            type Value = OrderedScalars;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of key: value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedScalars, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                // A set, not a scan of `out`: a hostile map of 50,000 keys stays linear.
                let mut seen = std::collections::HashSet::new();
                while let Some((k, Scalar(v))) = m.next_entry::<String, Scalar>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.push((k, v));
                }
                Ok(OrderedScalars(out))
            }
        }
        d.deserialize_map(M)
    }
}

fn normalize_kubejoin(raw: RawKubejoin) -> Result<KubejoinConfiguration, ConfigErrorKind> {
    let mut out = KubejoinConfiguration::default();

    for (i, m) in raw.modules.unwrap_or_default().into_iter().enumerate() {
        // Names only: a path would let the config load an arbitrary file as a module.
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                format!("modules[{i}]"),
                format!(
                    "invalid module name {m:?}: use the module's name ([A-Za-z0-9_-]), not a path"
                ),
            ));
        }
        out.modules.push(m);
    }

    for (k, v) in raw.sysctls.map(|s| s.0).unwrap_or_default() {
        check_sysctl(&k, &v)?;
        out.sysctls.push((k, v));
    }

    out.handoff = raw.handoff.map(|h| match h {
        RawHandoff::Exec => HandoffMode::Exec,
        RawHandoff::None => HandoffMode::None,
    });
    out.on_failure = raw.on_failure.map(|o| match o {
        RawOnFailure::Retry => OnFailure::Retry,
        RawOnFailure::Reboot => OnFailure::Reboot,
        RawOnFailure::Poweroff => OnFailure::Poweroff,
        RawOnFailure::Shell => OnFailure::Shell,
    });

    if let Some(p) = non_empty(raw.kubelet_path) {
        if !p.starts_with('/') {
            return Err(invalid(
                "kubeletPath",
                format!("invalid value {p:?}: path is not absolute"),
            ));
        }
        out.kubelet_path = Some(PathBuf::from(p));
    }
    if let Some(p) = non_empty(raw.token_file) {
        if !p.starts_with('/') {
            return Err(invalid(
                "tokenFile",
                format!("invalid value {p:?}: path is not absolute"),
            ));
        }
        out.token_file = Some(PathBuf::from(p));
    }

    out.timeout = non_empty(raw.timeout)
        .map(|s| parse_duration("timeout", &s))
        .transpose()?;
    out.tls_bootstrap_timeout = non_empty(raw.tls_bootstrap_timeout)
        .map(|s| parse_duration("tlsBootstrapTimeout", &s))
        .transpose()?;
    for (path, d) in [
        ("timeout", out.timeout),
        ("tlsBootstrapTimeout", out.tls_bootstrap_timeout),
    ] {
        if d == Some(Duration::ZERO) {
            return Err(invalid(path, "must be greater than zero"));
        }
    }

    out.network = raw.network.map(normalize_network).transpose()?;

    for (i, a) in raw.kubelet_args.unwrap_or_default().into_iter().enumerate() {
        out.kubelet_args.push(check_arg(
            a.name,
            a.value.unwrap_or_default(),
            &format!("kubeletArgs[{i}]"),
        )?);
    }
    // Checked as the kernel command line's `kubejoin.ntp=` is, one entry at a time.
    let mut ntp = crate::plan::values::Values::default();
    for (i, n) in raw.ntp.unwrap_or_default().into_iter().enumerate() {
        ntp.set(crate::plan::key::Key::Ntp, Some(&n))
            .map_err(|e| invalid(format!("ntp[{i}]"), e.to_string()))?;
    }
    out.ntp = ntp.ntp.unwrap_or_default();
    Ok(out)
}

/// Sysctl names become paths under /proc/sys, so only name characters are allowed and no
/// segment may be empty or `..` (which would escape /proc/sys).
fn check_sysctl(k: &str, v: &str) -> Result<(), ConfigErrorKind> {
    let path = format!("sysctls.{k}");
    let ok_chars = k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':'));
    let ok_segments = k.split(['.', '/']).all(|s| !s.is_empty() && s != "..");
    if k.is_empty() || !ok_chars || !ok_segments {
        return Err(invalid(
            path,
            "invalid sysctl name: use dotted names like net.ipv4.ip_forward ([A-Za-z0-9_-:] segments separated by \
             '.' or '/')",
        ));
    }
    if v.contains(['\n', '\0']) {
        return Err(invalid(path, "a sysctl value must be one line"));
    }
    Ok(())
}

fn normalize_network(raw: RawNetwork) -> Result<Network, ConfigErrorKind> {
    let mut net = Network::default();
    for (i, n) in raw.nameservers.unwrap_or_default().iter().enumerate() {
        let ip = n.parse::<Ipv4Addr>().map_err(|_| {
            invalid(
                format!("network.nameservers[{i}]"),
                format!("invalid value {n:?}: not an IPv4 address"),
            )
        })?;
        net.nameservers.push(ip);
    }
    for (i, r) in raw.interfaces.unwrap_or_default().into_iter().enumerate() {
        let path = format!("network.interfaces[{i}]");
        let name = non_empty(r.name);
        if let Some(n) = &name {
            // The kernel's rule (dev_valid_name): 1–15 bytes, no '/', ':' or whitespace.
            if n.len() > 15
                || n == "."
                || n == ".."
                || n.contains(['/', ':'])
                || n.contains(char::is_whitespace)
            {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("invalid interface name {n:?}"),
                ));
            }
            if net
                .interfaces
                .iter()
                .any(|o: &Interface| o.name.as_ref() == Some(n))
            {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("interface {n:?} is given twice"),
                ));
            }
        }
        let address = non_empty(r.address);
        let gateway = non_empty(r.gateway);
        let addressing = match (r.dhcp, address) {
            (Some(true), Some(_)) => {
                return Err(invalid(path, "dhcp: true and address cannot both be set"));
            }
            (Some(false), None) => {
                return Err(invalid(
                    path,
                    "dhcp: false needs a static address (address: a.b.c.d/len)",
                ));
            }
            (_, None) => {
                if gateway.is_some() {
                    return Err(invalid(
                        format!("{path}.gateway"),
                        "a gateway needs a static address",
                    ));
                }
                Addressing::Dhcp
            }
            (_, Some(a)) => {
                let (address, prefix_len) = parse_cidr4(&a).ok_or_else(|| {
                    invalid(
                        format!("{path}.address"),
                        format!("invalid value {a:?}: use an IPv4 address with a prefix length, e.g. 10.0.0.5/24"),
                    )
                })?;
                let gateway = gateway
                    .map(|g| {
                        g.parse::<Ipv4Addr>().map_err(|_| {
                            invalid(
                                format!("{path}.gateway"),
                                format!("invalid value {g:?}: not an IPv4 address"),
                            )
                        })
                    })
                    .transpose()?;
                Addressing::Static {
                    address,
                    prefix_len,
                    gateway,
                }
            }
        };
        if let Some(m) = r.mtu {
            if !(68..=65535).contains(&m) {
                return Err(invalid(
                    format!("{path}.mtu"),
                    format!("invalid value {m}: must be from 68 to 65535"),
                ));
            }
        }
        net.interfaces.push(Interface {
            name,
            addressing,
            mtu: r.mtu,
        });
    }
    Ok(net)
}

fn parse_cidr4(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let addr = a.parse::<Ipv4Addr>().ok()?;
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len = p.parse::<u8>().ok().filter(|l| *l <= 32)?;
    Some((addr, len))
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
