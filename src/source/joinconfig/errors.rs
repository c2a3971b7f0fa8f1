//! The error catalogue of config files: where (line, column), what (each kind with its
//! kubeadm-compatible message) and what to do (hints).

use super::*;

/// A position in the input, 1-based, as the YAML parser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// A config file that cannot be used. Displays as `<origin>: [line L column C: ]<reason>`.
/// Never carries a token secret. (Boxed: errors are rare and `Result`s stay small.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(super) Box<ErrorInner>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorInner {
    pub(super) origin: String,
    pub(super) location: Option<Location>,
    pub(super) kind: ConfigErrorKind,
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

pub(super) const SUPPORTED_TEXT: &str = "JoinConfiguration (kubeadm.k8s.io/v1beta3, kubeadm.k8s.io/v1beta4), \
     KubejoinConfiguration (kubejoin.dev/v1alpha1); accepted and ignored: InitConfiguration, \
     ClusterConfiguration (kubeadm.k8s.io/v1beta3, kubeadm.k8s.io/v1beta4), ResetConfiguration, \
     UpgradeConfiguration (kubeadm.k8s.io/v1beta4), KubeletConfiguration (kubelet.config.k8s.io/v1beta1), \
     KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1)";

impl ConfigErrorKind {
    /// The same error with anything shaped like a bootstrap token redacted from every text it
    /// carries. Applied to every error [`parse`] returns: values are quoted back in messages
    /// (a token pasted into `caCertHashes`, `kubeletPath` or a node name must not be printed).
    pub(super) fn redacted(self) -> Self {
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

pub(super) fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigErrorKind {
    ConfigErrorKind::Invalid {
        path: path.into(),
        message: message.into(),
    }
}
