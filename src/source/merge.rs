//! Layered join settings with provenance.
//!
//! Join data reaches a node from up to four places. From highest precedence to lowest:
//!
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

use crate::cli::{validate_endpoint, UsageError};
use crate::discovery::{Mode, Options};
use crate::error::{Class, Classify};
use crate::plan::duration;
use crate::plan::node_name::NodeName;
use crate::plan::pin::{CaPin, PinSet};
use crate::plan::token::BootstrapToken;
use crate::plan::{HandoffMode, JoinPlan, DEFAULT_CRI_SOCKET};
use crate::source::metadata::Platform;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Where a value came from
// ---------------------------------------------------------------------------------------------

/// The layer a value came from. `Display` is the form `kubejoin plan` prints: `cmdline`,
/// `file:/etc/kubejoin.yaml`, `metadata:aws`, `default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Cmdline,
    File(PathBuf),
    Metadata(Platform),
    Default,
}

impl Source {
    /// Precedence: lower wins.
    pub fn rank(&self) -> u8 {
        match self {
            Source::Cmdline => 0,
            Source::File(_) => 1,
            Source::Metadata(_) => 2,
            Source::Default => 3,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cmdline => f.write_str("cmdline"),
            Source::File(p) => write!(f, "file:{}", p.display()),
            Source::Metadata(p) => write!(f, "metadata:{}", p.id()),
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

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// A join setting key: `kubejoin.<name>` on the kernel command line, `<name>` in kubejoin YAML
/// (a config file, or the `kubejoin:` subtree of a `#cloud-config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Endpoint,
    Token,
    CaCertHash,
    UnsafeSkipCaVerification,
    DiscoveryFile,
    TlsBootstrapToken,
    NodeName,
    CriSocket,
    KubeletArg,
    Modules,
    Sysctl,
    Platform,
    Config,
    ConfigSha256,
    Handoff,
    OnFailure,
    Timeout,
}

impl Key {
    /// Every key, in the order the docs list them.
    pub const ALL: [Key; 17] = [
        Key::Endpoint,
        Key::Token,
        Key::CaCertHash,
        Key::UnsafeSkipCaVerification,
        Key::DiscoveryFile,
        Key::TlsBootstrapToken,
        Key::NodeName,
        Key::CriSocket,
        Key::KubeletArg,
        Key::Modules,
        Key::Sysctl,
        Key::Platform,
        Key::Config,
        Key::ConfigSha256,
        Key::Handoff,
        Key::OnFailure,
        Key::Timeout,
    ];

    /// The key's name without the `kubejoin.` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Key::Endpoint => "endpoint",
            Key::Token => "token",
            Key::CaCertHash => "ca-cert-hash",
            Key::UnsafeSkipCaVerification => "discovery-token-unsafe-skip-ca-verification",
            Key::DiscoveryFile => "discovery-file",
            Key::TlsBootstrapToken => "tls-bootstrap-token",
            Key::NodeName => "node-name",
            Key::CriSocket => "cri-socket",
            Key::KubeletArg => "kubelet-arg",
            Key::Modules => "modules",
            Key::Sysctl => "sysctl",
            Key::Platform => "platform",
            Key::Config => "config",
            Key::ConfigSha256 => "config.sha256",
            Key::Handoff => "handoff",
            Key::OnFailure => "on-failure",
            Key::Timeout => "timeout",
        }
    }

    /// Looks a name up. `_` is accepted for `-`, as the kernel does for its own parameters
    /// (`parameq`), so `kubejoin.node_name` means `kubejoin.node-name`.
    pub fn parse(name: &str) -> Option<Key> {
        let norm = name.replace('_', "-");
        Key::ALL.into_iter().find(|k| k.name() == norm)
    }

    /// Keys that may be given more than once (each occurrence adds).
    pub fn repeatable(self) -> bool {
        matches!(self, Key::CaCertHash | Key::KubeletArg | Key::Modules | Key::Sysctl)
    }

    /// Keys only the kernel command line may set: they choose where configs come from and pin
    /// them, so a fetched config must not be able to redirect or re-pin itself.
    pub fn cmdline_only(self) -> bool {
        matches!(self, Key::Config | Key::ConfigSha256)
    }

    /// A value that shows the expected form, for "needs a value" errors.
    fn example(self) -> &'static str {
        match self {
            Key::Endpoint => "host:port, e.g. 10.0.0.1:6443",
            Key::Token | Key::TlsBootstrapToken => "abcdef.0123456789abcdef",
            Key::CaCertHash => "sha256:<64 hex digits>",
            Key::UnsafeSkipCaVerification => "true or false",
            Key::DiscoveryFile => "/path/to/kubeconfig or https://…",
            Key::NodeName => "worker-1",
            Key::CriSocket => DEFAULT_CRI_SOCKET,
            Key::KubeletArg => "name=value, e.g. max-pods=50",
            Key::Modules => "a comma list, e.g. br_netfilter,overlay",
            Key::Sysctl => "key=value, e.g. net.ipv4.ip_forward=1",
            Key::Platform => "aws, gcp, azure, openstack, digitalocean, hetzner, equinix or none",
            Key::Config => "/path, https://URL or metadata",
            Key::ConfigSha256 => "<64 hex digits>",
            Key::Handoff => "exec or none",
            Key::OnFailure => "exit, reboot, poweroff or shell",
            Key::Timeout => "a duration, e.g. 5m",
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Levenshtein distance (two rows), for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The known key closest to `name`, when it is close enough to be a typo (at most 3 edits and
/// less than half the length, so `kubejoin.x` does not suggest `kubejoin.token`).
pub fn did_you_mean(name: &str) -> Option<&'static str> {
    let norm = name.replace('_', "-");
    Key::ALL
        .into_iter()
        .map(|k| (edit_distance(&norm, k.name()), k.name()))
        .filter(|(d, k)| *d <= 3 && *d * 2 < k.len().max(norm.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Why one key's value was refused. The caller adds where it was (byte offset on the command
/// line, or the file/provider).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("needs a value ({0})")]
    MissingValue(&'static str),
    #[error("given twice with different values ({first} and {second}); only one value makes sense")]
    Duplicate { first: String, second: String },
    #[error("{0}")]
    Invalid(String),
    #[error("is only accepted on the kernel command line (a config must not redirect or re-pin itself)")]
    CmdlineOnly,
}

// ---------------------------------------------------------------------------------------------
// One layer's values
// ---------------------------------------------------------------------------------------------

/// The expected SHA-256 of the first config document (`kubejoin.config.sha256`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConfigPin(pub [u8; 32]);

impl ConfigPin {
    /// `<64 hex>` or `sha256:<64 hex>`, any case.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hexpart = s.strip_prefix("sha256:").or_else(|| s.strip_prefix("SHA256:")).unwrap_or(s);
        let mut out = [0u8; 32];
        if hexpart.len() != 64 || hex::decode_to_slice(hexpart.to_ascii_lowercase(), &mut out).is_err() {
            return Err(format!("{s:?} is not a SHA-256 hash (64 hex digits, optionally prefixed sha256:)"));
        }
        Ok(Self(out))
    }

    /// Checks `bytes` against the pin. `what` names the document (path, URL, provider).
    pub fn verify(&self, what: &str, bytes: &[u8]) -> Result<(), ConfigPinMismatch> {
        let actual: [u8; 32] = Sha256::digest(bytes).into();
        if actual == self.0 {
            Ok(())
        } else {
            Err(ConfigPinMismatch { what: what.to_string(), expected: *self, actual: ConfigPin(actual) })
        }
    }
}

impl fmt::Display for ConfigPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ConfigPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A config document whose hash is not the pinned one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing config {what}: its hash is {actual} but kubejoin.config.sha256 pins {expected}")]
pub struct ConfigPinMismatch {
    pub what: String,
    pub expected: ConfigPin,
    pub actual: ConfigPin,
}

/// What `on-failure` does when the join fails.
pub const ON_FAILURE: [&str; 4] = ["exit", "reboot", "poweroff", "shell"];

/// The values one layer set. Everything is optional; `Debug` never shows a token secret (the
/// token type redacts itself).
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub endpoint: Option<String>,
    pub token: Option<BootstrapToken>,
    pub tls_bootstrap_token: Option<BootstrapToken>,
    pub ca_cert_hashes: Option<Vec<CaPin>>,
    pub unsafe_skip_ca_verification: Option<bool>,
    pub discovery_file: Option<String>,
    /// Lower-cased and checked as a node name.
    pub node_name: Option<String>,
    /// Only providers set it (their view of the node's address); becomes `node-ip` for the
    /// kubelet unless a `kubelet-arg` sets `node-ip` itself.
    pub node_ip: Option<IpAddr>,
    pub cri_socket: Option<String>,
    /// `name=value` pairs in order; names without leading dashes.
    pub kubelet_args: Vec<(String, String)>,
    pub modules: Option<Vec<String>>,
    pub sysctls: Vec<(String, String)>,
    /// From kubeadm JoinConfiguration files only (`nodeRegistration.taints`).
    pub taints: Option<Vec<String>>,
    pub ignore_preflight_errors: Option<Vec<String>>,
    pub skip_phases: Option<Vec<String>>,
    pub platform: Option<String>,
    pub config: Option<String>,
    pub config_sha256: Option<ConfigPin>,
    /// `exec` or `none`.
    pub handoff: Option<String>,
    /// One of [`ON_FAILURE`].
    pub on_failure: Option<String>,
    /// Discovery timeout (kubeadm's `discovery.timeout`).
    pub timeout: Option<Duration>,
    pub tls_bootstrap_timeout: Option<Duration>,
}

/// Values a layer can compare and show (redacted) in conflicts and `kubejoin plan`.
pub trait Shown {
    /// Printable form; secrets redacted.
    fn shown(&self) -> String;
    /// Equality (constant time for secrets).
    fn same(&self, other: &Self) -> bool;
}

impl Shown for String {
    fn shown(&self) -> String {
        self.clone()
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Shown for bool {
    fn shown(&self) -> String {
        self.to_string()
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Shown for BootstrapToken {
    fn shown(&self) -> String {
        self.to_string()
    }
    fn same(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Shown for Duration {
    fn shown(&self) -> String {
        duration::format(*self)
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Shown for ConfigPin {
    fn shown(&self) -> String {
        self.to_string()
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Shown for IpAddr {
    fn shown(&self) -> String {
        self.to_string()
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Shown for Vec<String> {
    fn shown(&self) -> String {
        self.join(",")
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Shown for Vec<CaPin> {
    fn shown(&self) -> String {
        self.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

fn set_once<T: Shown>(slot: &mut Option<T>, value: T) -> Result<Option<String>, KeyError> {
    match slot {
        None => {
            *slot = Some(value);
            Ok(None)
        }
        Some(old) if old.same(&value) => Ok(Some("given twice with the same value".to_string())),
        Some(old) => Err(KeyError::Duplicate { first: old.shown(), second: value.shown() }),
    }
}

fn need(key: Key, value: Option<&str>) -> Result<&str, KeyError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(KeyError::MissingValue(key.example())),
    }
}

fn name_value(key: Key, v: &str) -> Result<(String, String), KeyError> {
    let (k, val) = v
        .split_once('=')
        .ok_or_else(|| KeyError::Invalid(format!("{v:?} is not name=value ({})", key.example())))?;
    let k = k.trim().trim_start_matches('-');
    if k.is_empty() {
        return Err(KeyError::Invalid(format!("{v:?} has an empty name")));
    }
    Ok((k.to_string(), val.to_string()))
}

impl Values {
    /// The image defaults (the lowest layer).
    pub fn builtin_defaults() -> Self {
        Values {
            cri_socket: Some(DEFAULT_CRI_SOCKET.to_string()),
            handoff: Some("none".to_string()),
            timeout: Some(Duration::from_secs(300)),
            tls_bootstrap_timeout: Some(Duration::from_secs(300)),
            ..Values::default()
        }
    }

    /// Whether this layer says anything about how to discover the cluster.
    pub fn has_discovery(&self) -> bool {
        self.endpoint.is_some() || self.discovery_file.is_some()
    }

    /// Sets `key` from its textual value (`None` for a bare `kubejoin.key` without `=`).
    /// Single-valued keys given twice with different values are refused; repeatable keys add.
    /// `Ok(Some(note))` is a warning worth logging (e.g. a repeated identical value).
    pub fn set(&mut self, key: Key, value: Option<&str>) -> Result<Option<String>, KeyError> {
        match key {
            Key::Endpoint => {
                let v = need(key, value)?;
                validate_endpoint(v).map_err(|e| KeyError::Invalid(e.to_string()))?;
                set_once(&mut self.endpoint, v.to_string())
            }
            Key::Token | Key::TlsBootstrapToken => {
                let v = need(key, value)?;
                let t = BootstrapToken::parse(v).map_err(|e| KeyError::Invalid(e.to_string()))?;
                let slot = if key == Key::Token { &mut self.token } else { &mut self.tls_bootstrap_token };
                set_once(slot, t)
            }
            Key::CaCertHash => {
                let v = need(key, value)?;
                let pins = self.ca_cert_hashes.get_or_insert_with(Vec::new);
                // kubeadm takes the flag repeatedly or as a comma list.
                for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let pin = CaPin::parse(p).map_err(|e| KeyError::Invalid(e.to_string()))?;
                    if !pins.contains(&pin) {
                        pins.push(pin);
                    }
                }
                Ok(None)
            }
            Key::UnsafeSkipCaVerification => {
                let b = match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
                    None | Some("") | Some("true") | Some("1") | Some("yes") => true,
                    Some("false") | Some("0") | Some("no") => false,
                    Some(other) => {
                        return Err(KeyError::Invalid(format!("{other:?} is not a boolean (true or false)")))
                    }
                };
                set_once(&mut self.unsafe_skip_ca_verification, b)
            }
            Key::DiscoveryFile => {
                let v = need(key, value)?;
                set_once(&mut self.discovery_file, v.to_string())
            }
            Key::NodeName => {
                let v = need(key, value)?.to_ascii_lowercase();
                NodeName::parse(&v).map_err(|e| KeyError::Invalid(e.to_string()))?;
                set_once(&mut self.node_name, v)
            }
            Key::CriSocket => {
                let v = need(key, value)?;
                set_once(&mut self.cri_socket, v.to_string())
            }
            Key::KubeletArg => {
                let v = need(key, value)?;
                self.kubelet_args.push(name_value(key, v)?);
                Ok(None)
            }
            Key::Modules => {
                let v = need(key, value)?;
                let list = self.modules.get_or_insert_with(Vec::new);
                for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    if !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                        return Err(KeyError::Invalid(format!(
                            "{m:?} is not a module name (letters, digits, '_' and '-')"
                        )));
                    }
                    if !list.iter().any(|x| x == m) {
                        list.push(m.to_string());
                    }
                }
                Ok(None)
            }
            Key::Sysctl => {
                let v = need(key, value)?;
                let (k, val) = name_value(key, v)?;
                if !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)) {
                    return Err(KeyError::Invalid(format!("{k:?} is not a sysctl name")));
                }
                if let Some((_, old)) = self.sysctls.iter().find(|(n, _)| *n == k) {
                    if *old == val {
                        return Ok(Some(format!("sysctl {k} given twice with the same value")));
                    }
                    return Err(KeyError::Duplicate { first: format!("{k}={old}"), second: format!("{k}={val}") });
                }
                self.sysctls.push((k, val));
                Ok(None)
            }
            Key::Platform => {
                let v = need(key, value)?.to_ascii_lowercase();
                if v != "none" && Platform::parse(&v).is_none() {
                    return Err(KeyError::Invalid(format!(
                        "unknown platform {v:?} (known: {})",
                        Key::Platform.example()
                    )));
                }
                set_once(&mut self.platform, v)
            }
            Key::Config => {
                let v = need(key, value)?;
                if !(v == "metadata"
                    || v.starts_with("https://")
                    || v.starts_with("http://")
                    || v.starts_with('/'))
                {
                    return Err(KeyError::Invalid(format!(
                        "{v:?} is neither an absolute path, an http(s):// URL nor `metadata`"
                    )));
                }
                set_once(&mut self.config, v.to_string())
            }
            Key::ConfigSha256 => {
                let pin = ConfigPin::parse(need(key, value)?).map_err(KeyError::Invalid)?;
                set_once(&mut self.config_sha256, pin)
            }
            Key::Handoff => {
                let v = need(key, value)?.to_ascii_lowercase();
                if v != "exec" && v != "none" {
                    return Err(KeyError::Invalid(format!("{v:?}: expected exec or none")));
                }
                set_once(&mut self.handoff, v)
            }
            Key::OnFailure => {
                let v = need(key, value)?.to_ascii_lowercase();
                if !ON_FAILURE.contains(&v.as_str()) {
                    return Err(KeyError::Invalid(format!("{v:?}: expected one of {}", ON_FAILURE.join(", "))));
                }
                set_once(&mut self.on_failure, v)
            }
            Key::Timeout => {
                let d = duration::parse(need(key, value)?).map_err(|e| KeyError::Invalid(e.to_string()))?;
                set_once(&mut self.timeout, d)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Merging
// ---------------------------------------------------------------------------------------------

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
    pub on_failure: Option<Sourced<String>>,
    pub timeout: Option<Sourced<Duration>>,
    pub tls_bootstrap_timeout: Option<Sourced<Duration>>,
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
        let Some(v) = get(&layer.values) else { continue };
        match &kept {
            None => kept = Some(Sourced { value: v.clone(), source: layer.source.clone() }),
            Some(k) if !k.value.same(v) => conflicts.push(Conflict {
                key: key.to_string(),
                kept: Sourced { value: k.value.shown(), source: k.source.clone() },
                dropped: Sourced { value: v.shown(), source: layer.source.clone() },
            }),
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
        for (n, v) in get(&layer.values) {
            match mine.iter_mut().find(|(m, _)| m == n) {
                Some((_, vals)) => vals.push(v.clone()),
                None => mine.push((n.clone(), vec![v.clone()])),
            }
        }
        for (name, vals) in mine {
            match claimed.get(&name) {
                Some((src, kept)) => {
                    if *kept != vals {
                        conflicts.push(Conflict {
                            key: format!("{what} {name}"),
                            kept: Sourced { value: kept.join(","), source: src.clone() },
                            dropped: Sourced { value: vals.join(","), source: layer.source.clone() },
                        });
                    }
                }
                None => {
                    for v in &vals {
                        out.push(Sourced { value: (name.clone(), v.clone()), source: layer.source.clone() });
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
        tls_bootstrap_token: pick("tls-bootstrap-token", l, |v| v.tls_bootstrap_token.as_ref(), c),
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
        ignore_preflight_errors: pick("ignore-preflight-errors", l, |v| v.ignore_preflight_errors.as_ref(), c),
        skip_phases: pick("skip-phases", l, |v| v.skip_phases.as_ref(), c),
        platform: pick("platform", l, |v| v.platform.as_ref(), c),
        config: pick("config", l, |v| v.config.as_ref(), c),
        config_sha256: pick("config.sha256", l, |v| v.config_sha256.as_ref(), c),
        handoff: pick("handoff", l, |v| v.handoff.as_ref(), c),
        on_failure: pick("on-failure", l, |v| v.on_failure.as_ref(), c),
        timeout: pick("timeout", l, |v| v.timeout.as_ref(), c),
        tls_bootstrap_timeout: pick("tls-bootstrap-timeout", l, |v| v.tls_bootstrap_timeout.as_ref(), c),
        conflicts: Vec::new(),
        warnings: Vec::new(),
    };
    s.conflicts = std::mem::take(c);
    s
}

// ---------------------------------------------------------------------------------------------
// Settings -> JoinPlan
// ---------------------------------------------------------------------------------------------

/// Merged settings that do not make a valid join. Each names the key and the layer it came
/// from; none carries a token secret.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// One value is invalid (the CLI's own check and message).
    #[error("{key} from {origin}: {error}")]
    Invalid { key: &'static str, origin: Source, error: UsageError },
    /// Something required is missing (the CLI's message, plus what the sources did give).
    #[error("{error} ({context})")]
    Missing { error: UsageError, context: String },
    /// Token and file discovery are both configured.
    #[error(
        "token discovery ({token_key} from {token_origin}) and file discovery (discovery-file from \
         {file_origin}) are both set: bootstrapToken and file cannot both be set; use one"
    )]
    BothDiscovery { token_key: &'static str, token_origin: Source, file_origin: Source },
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
    v.as_ref().map(|s| s.source.to_string()).unwrap_or_else(|| "none".into())
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
                .or_else(|| self.ca_cert_hashes.as_ref().map(|p| ("ca-cert-hash", p.source.clone())));
            if let Some((token_key, token_origin)) = token_side {
                return Err(SettingsError::BothDiscovery { token_key, token_origin, file_origin: file.source.clone() });
            }
            let f = &file.value;
            let invalid = |error| SettingsError::Invalid { key: "discovery-file", origin: file.source.clone(), error };
            return if let Some(rest) = f.strip_prefix("file://") {
                Ok(Mode::File { path: rest.into() })
            } else if f.starts_with("https://") {
                Ok(Mode::Https { url: f.clone(), ca_file: None })
            } else if f.contains("://") {
                Err(invalid(UsageError::DiscoveryScheme(f.clone())))
            } else {
                Ok(Mode::File { path: f.into() })
            };
        }
        let Some(endpoint) = &self.endpoint else {
            return Err(SettingsError::Missing {
                error: if self.token.is_some() { UsageError::NoEndpoint } else { UsageError::NoDiscovery },
                context: format!(
                    "no kubejoin.endpoint or kubejoin.discovery-file from any source; token from {}",
                    source_of(&self.token)
                ),
            });
        };
        validate_endpoint(&endpoint.value)
            .map_err(|error| SettingsError::Invalid { key: "endpoint", origin: endpoint.source.clone(), error })?;
        let Some(token) = &self.token else {
            return Err(SettingsError::Missing {
                error: UsageError::NoToken,
                context: format!("endpoint from {}; no kubejoin.token from any source", endpoint.source),
            });
        };
        let pin_text: Vec<String> = self
            .ca_cert_hashes
            .as_ref()
            .map(|p| p.value.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let pins = PinSet::parse(&pin_text).map_err(|e| SettingsError::Invalid {
            key: "ca-cert-hash",
            origin: self.ca_cert_hashes.as_ref().map_or(Source::Default, |p| p.source.clone()),
            error: UsageError::Pin(e),
        })?;
        let unsafe_skip = self.unsafe_skip_ca_verification.as_ref().is_some_and(|u| u.value);
        if pins.is_empty() && !unsafe_skip {
            return Err(SettingsError::Missing {
                error: UsageError::NoPin,
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
            Some(n) => Some(NodeName::parse(&n.value.to_ascii_lowercase()).map_err(|e| SettingsError::Invalid {
                key: "node-name",
                origin: n.source.clone(),
                error: UsageError::NodeName(e),
            })?),
        };
        let mut cri_socket =
            self.cri_socket.as_ref().map(|c| c.value.clone()).unwrap_or_else(|| DEFAULT_CRI_SOCKET.to_string());
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
            _ => HandoffMode::None,
        };
        let five_min = Duration::from_secs(300);
        Ok(JoinPlan {
            discovery: Options {
                mode,
                tls_bootstrap_token,
                timeout: self.timeout.as_ref().map_or(five_min, |t| t.value),
                retry_interval: Duration::from_secs(5),
            },
            node_name,
            cri_socket,
            kubelet_extra_args,
            taints: self.taints.as_ref().map(|t| t.value.clone()).unwrap_or_default(),
            root: root.to_path_buf(),
            dry_run: false,
            force: false,
            tls_bootstrap_timeout: self.tls_bootstrap_timeout.as_ref().map_or(five_min, |t| t.value),
            handoff,
            kubelet_path: PathBuf::from("/usr/bin/kubelet"),
            skip_phases: self.skip_phases.as_ref().map(|t| t.value.clone()).unwrap_or_default(),
            ignore_preflight_errors: self.ignore_preflight_errors.as_ref().map(|t| t.value.clone()).unwrap_or_default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// `kubejoin plan`
// ---------------------------------------------------------------------------------------------

fn entry<T: Shown>(out: &mut serde_json::Map<String, serde_json::Value>, key: &str, v: &Option<Sourced<T>>) {
    if let Some(s) = v {
        out.insert(key.to_string(), serde_json::json!({ "value": s.value.shown(), "source": s.source.to_string() }));
    }
}

fn list_entry(out: &mut serde_json::Map<String, serde_json::Value>, key: &str, v: &Option<Sourced<Vec<String>>>) {
    if let Some(s) = v {
        out.insert(key.to_string(), serde_json::json!({ "value": s.value, "source": s.source.to_string() }));
    }
}

fn pairs_json(v: &[Sourced<(String, String)>]) -> serde_json::Value {
    v.iter()
        .map(|s| serde_json::json!({ "name": s.value.0, "value": s.value.1, "source": s.source.to_string() }))
        .collect()
}

/// The merged settings for `kubejoin plan`: whether they make a valid join (and if not, why),
/// every value with its source, conflicts and warnings. Tokens appear as `abcdef.<redacted>`.
pub fn plan_json(settings: &Settings) -> serde_json::Value {
    let s = settings;
    let mut values = serde_json::Map::new();
    entry(&mut values, "endpoint", &s.endpoint);
    entry(&mut values, "token", &s.token);
    entry(&mut values, "tls-bootstrap-token", &s.tls_bootstrap_token);
    if let Some(p) = &s.ca_cert_hashes {
        let pins: Vec<String> = p.value.iter().map(ToString::to_string).collect();
        values.insert("ca-cert-hash".into(), serde_json::json!({ "value": pins, "source": p.source.to_string() }));
    }
    if let Some(u) = &s.unsafe_skip_ca_verification {
        values.insert(
            Key::UnsafeSkipCaVerification.name().into(),
            serde_json::json!({ "value": u.value, "source": u.source.to_string() }),
        );
    }
    entry(&mut values, "discovery-file", &s.discovery_file);
    entry(&mut values, "node-name", &s.node_name);
    entry(&mut values, "node-ip", &s.node_ip);
    entry(&mut values, "cri-socket", &s.cri_socket);
    list_entry(&mut values, "modules", &s.modules);
    list_entry(&mut values, "taints", &s.taints);
    list_entry(&mut values, "ignore-preflight-errors", &s.ignore_preflight_errors);
    list_entry(&mut values, "skip-phases", &s.skip_phases);
    entry(&mut values, "platform", &s.platform);
    entry(&mut values, "config", &s.config);
    entry(&mut values, "config.sha256", &s.config_sha256);
    entry(&mut values, "handoff", &s.handoff);
    entry(&mut values, "on-failure", &s.on_failure);
    entry(&mut values, "timeout", &s.timeout);
    entry(&mut values, "tls-bootstrap-timeout", &s.tls_bootstrap_timeout);

    let conflicts: Vec<serde_json::Value> = s
        .conflicts
        .iter()
        .map(|c| {
            serde_json::json!({
                "key": c.key,
                "kept": { "value": c.kept.value, "source": c.kept.source.to_string() },
                "dropped": { "value": c.dropped.value, "source": c.dropped.source.to_string() },
            })
        })
        .collect();
    let mut out = serde_json::json!({
        "values": values,
        "kubelet-args": pairs_json(&s.kubelet_args),
        "sysctls": pairs_json(&s.sysctls),
        "conflicts": conflicts,
        "warnings": s.warnings,
    });
    match s.to_plan(Path::new("/")) {
        Ok(plan) => {
            out["valid"] = true.into();
            out["discovery"] = match plan.discovery.mode {
                Mode::Token { .. } => "token",
                Mode::File { .. } => "file",
                Mode::Https { .. } => "https",
            }
            .into();
            out["kubelet-extra-args"] = plan
                .kubelet_extra_args
                .iter()
                .map(|(n, v)| serde_json::Value::from(format!("--{n}={v}")))
                .collect();
        }
        Err(e) => {
            out["valid"] = false.into();
            out["error"] = e.to_string().into();
        }
    }
    out
}
