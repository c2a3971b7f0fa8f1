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
use crate::fs::root::Root;
use crate::pki::pin::{CaPin, PinSet};
use crate::plan::network::{NetworkPlan, NetworkSpec};
use crate::plan::node_name::NodeName;
use crate::plan::token::BootstrapToken;
use crate::plan::{HandoffMode, JoinPlan, DEFAULT_CRI_SOCKET};
use crate::source::cmdline::{Cmdline, CmdlineError};
use crate::source::joinconfig::{self, ConfigError, ConfigFile, DiscoveryMethod};
use crate::source::metadata::http::{HttpTransport, Retry, Timeouts, Tls, Transport};
use crate::source::metadata::openstack::{self, find_config_drive, DriveData};
use crate::source::metadata::recorded::RecordedMetadata;
use crate::source::metadata::url::{UrlProvider, Vars};
use crate::source::metadata::userdata::{self, Document, UserDataError};
use crate::source::metadata::{
    self, dmi::Dmi, Context, Endpoints, MetadataError, Platform, Provider, UserData, MAX_USER_DATA,
};
use crate::sys::configdrive::DriveSys;
use crate::time::duration;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// A file holding the token (mode 0600), read at load time: `token` without exposing it.
    TokenFile,
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
    /// Read by PID-1 mode (`src/init/config.rs`): the real root's block device.
    Sysroot,
    /// Read by PID-1 mode: debug logging.
    Debug,
}

impl Key {
    /// Every key, in the order the docs list them.
    pub const ALL: [Key; 20] = [
        Key::Endpoint,
        Key::Token,
        Key::TokenFile,
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
        Key::Sysroot,
        Key::Debug,
    ];

    /// The key's name without the `kubejoin.` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Key::Endpoint => "endpoint",
            Key::Token => "token",
            Key::TokenFile => "token-file",
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
            Key::Sysroot => "sysroot",
            Key::Debug => "debug",
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
        matches!(
            self,
            Key::CaCertHash | Key::KubeletArg | Key::Modules | Key::Sysctl
        )
    }

    /// Keys only the kernel command line may set: they choose where configs come from and pin
    /// them, so a fetched config must not be able to redirect or re-pin itself.
    pub fn cmdline_only(self) -> bool {
        matches!(
            self,
            Key::Config | Key::ConfigSha256 | Key::Sysroot | Key::Debug
        )
    }

    /// Keys PID-1 mode reads and validates itself (`src/init/config.rs`); the join settings
    /// accept them without storing anything, so they are not reported as unknown.
    pub fn init_only(self) -> bool {
        matches!(self, Key::Sysroot | Key::Debug)
    }

    /// A value that shows the expected form, for "needs a value" errors.
    fn example(self) -> &'static str {
        match self {
            Key::Endpoint => "host:port, e.g. 10.0.0.1:6443",
            Key::Token | Key::TlsBootstrapToken => "abcdef.0123456789abcdef",
            Key::TokenFile => "/path/to/a/chmod-600/file",
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
            Key::Handoff => "exec, switch-root or none",
            Key::OnFailure => "retry, reboot, poweroff or shell",
            Key::Timeout => "a duration, e.g. 5m",
            Key::Sysroot => "a block device, e.g. /dev/vda1",
            Key::Debug => "true or false",
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
    #[error(
        "given twice with different values ({first} and {second}); only one value makes sense"
    )]
    Duplicate { first: String, second: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "is only accepted on the kernel command line (a config must not redirect or re-pin itself)"
    )]
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
        let hexpart = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .unwrap_or(s);
        let mut out = [0u8; 32];
        if hexpart.len() != 64
            || hex::decode_to_slice(hexpart.to_ascii_lowercase(), &mut out).is_err()
        {
            return Err(format!(
                "{s:?} is not a SHA-256 hash (64 hex digits, optionally prefixed sha256:)"
            ));
        }
        Ok(Self(out))
    }

    /// Checks `bytes` against the pin. `what` names the document (path, URL, provider).
    pub fn verify(&self, what: &str, bytes: &[u8]) -> Result<(), ConfigPinMismatch> {
        let actual: [u8; 32] = Sha256::digest(bytes).into();
        if actual == self.0 {
            Ok(())
        } else {
            Err(ConfigPinMismatch {
                what: what.to_string(),
                expected: *self,
                actual: ConfigPin(actual),
            })
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

/// What `on-failure` may say (PID-1 mode's policy, `src/init/config.rs`).
pub const ON_FAILURE: [&str; 4] = ["retry", "reboot", "poweroff", "shell"];
/// What `handoff` may say (`switch-root` is PID-1 mode's; to the join it means "install only").
pub const HANDOFF: [&str; 3] = ["exec", "switch-root", "none"];

/// The values one layer set. Everything is optional; `Debug` never shows a token secret (the
/// token type redacts itself).
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub endpoint: Option<String>,
    pub token: Option<BootstrapToken>,
    /// `token-file`: an absolute path (under the root), read into `token` before the merge
    /// ([`read_token_files`]); the token then shows `file:<path>` as its source.
    pub token_file: Option<String>,
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
    /// One of [`HANDOFF`].
    pub handoff: Option<String>,
    /// The kubelet binary for `handoff: exec` (KubejoinConfiguration `kubeletPath` only).
    pub kubelet_path: Option<String>,
    /// One of [`ON_FAILURE`].
    pub on_failure: Option<String>,
    /// Discovery timeout (kubeadm's `discovery.timeout`).
    pub timeout: Option<Duration>,
    pub tls_bootstrap_timeout: Option<Duration>,
    /// How to bring the network up: the command line's `ip=` parameters, or a
    /// KubejoinConfiguration's `network`. Taken whole from the highest layer that has one.
    pub network: Option<NetworkSpec>,
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

impl Shown for NetworkSpec {
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
        self.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
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
        Some(old) => Err(KeyError::Duplicate {
            first: old.shown(),
            second: value.shown(),
        }),
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
            // The one default overall deadline, as for `kubejoin join --timeout` and PID 1.
            timeout: Some(crate::deadline::DEFAULT_TIMEOUT),
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
                let slot = if key == Key::Token {
                    &mut self.token
                } else {
                    &mut self.tls_bootstrap_token
                };
                set_once(slot, t)
            }
            Key::TokenFile => {
                let v = need(key, value)?;
                if !v.starts_with('/') {
                    return Err(KeyError::Invalid(format!("{v:?} is not an absolute path")));
                }
                set_once(&mut self.token_file, v.to_string())
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
                        return Err(KeyError::Invalid(format!(
                            "{other:?} is not a boolean (true or false)"
                        )))
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
                    if !m
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
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
                if !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
                {
                    return Err(KeyError::Invalid(format!("{k:?} is not a sysctl name")));
                }
                if let Some((_, old)) = self.sysctls.iter().find(|(n, _)| *n == k) {
                    if *old == val {
                        return Ok(Some(format!("sysctl {k} given twice with the same value")));
                    }
                    return Err(KeyError::Duplicate {
                        first: format!("{k}={old}"),
                        second: format!("{k}={val}"),
                    });
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
                if !HANDOFF.contains(&v.as_str()) {
                    return Err(KeyError::Invalid(format!(
                        "{v:?}: expected one of {}",
                        HANDOFF.join(", ")
                    )));
                }
                set_once(&mut self.handoff, v)
            }
            Key::OnFailure => {
                let v = need(key, value)?.to_ascii_lowercase();
                if !ON_FAILURE.contains(&v.as_str()) {
                    return Err(KeyError::Invalid(format!(
                        "{v:?}: expected one of {}",
                        ON_FAILURE.join(", ")
                    )));
                }
                set_once(&mut self.on_failure, v)
            }
            Key::Timeout => {
                let d = duration::parse(need(key, value)?)
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
                set_once(&mut self.timeout, d)
            }
            Key::Sysroot | Key::Debug => Ok(None),
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
    pub kubelet_path: Option<Sourced<String>>,
    pub on_failure: Option<Sourced<String>>,
    pub timeout: Option<Sourced<Duration>>,
    pub tls_bootstrap_timeout: Option<Sourced<Duration>>,
    pub network: Option<Sourced<NetworkSpec>>,
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
        tls_bootstrap_timeout: pick(
            "tls-bootstrap-timeout",
            l,
            |v| v.tls_bootstrap_timeout.as_ref(),
            c,
        ),
        network: pick("network", l, |v| v.network.as_ref(), c),
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
    s
}

/// Reads every layer's `token-file` (under `root`) into its token. A layer that gives both a
/// token and a token file is refused: which one was meant is not ours to guess.
pub fn read_token_files(layers: &mut [Layer], root: &Root) -> Result<(), LoadError> {
    for layer in layers.iter_mut() {
        let Some(path) = layer.values.token_file.clone() else {
            continue;
        };
        if layer.values.token.is_some() {
            return Err(LoadError::TokenTwice {
                origin: layer.source.clone(),
            });
        }
        let shown = PathBuf::from(&path);
        let real = root.join(&path).map_err(|e| {
            LoadError::TokenFile(crate::plan::token::TokenFileError::Read {
                path: shown.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })
        })?;
        let t = crate::plan::token::read_token_file(&real, &shown)?;
        layer.values.token = Some(t);
    }
    Ok(())
}

/// The boot-time warning for a token taken from the kernel command line (`kubejoin.token=`).
pub const CMDLINE_TOKEN_WARNING: &str = "the bootstrap token comes from the kernel command line \
     (kubejoin.token=): /proc/cmdline is world-readable and not namespaced, so every local user and \
     every container on this node can read it for the node's whole uptime, and with kubeadm's \
     default auto-approval that token can obtain a client certificate for any node name until it \
     expires; give it from a safer source: a config drive or cloud user-data, kubejoin.config= \
     with kubejoin.config.sha256=, or kubejoin.token-file= naming a chmod-600 file in the \
     initramfs, and keep its TTL short";

// ---------------------------------------------------------------------------------------------
// Settings -> JoinPlan
// ---------------------------------------------------------------------------------------------

/// Merged settings that do not make a valid join. Each names the key and the layer it came
/// from; none carries a token secret.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// One value is invalid (the CLI's own check and message).
    #[error("{key} from {origin}: {error}")]
    Invalid {
        key: &'static str,
        origin: Source,
        error: UsageError,
    },
    /// Something required is missing (the CLI's message, plus what the sources did give).
    #[error("{error} ({context})")]
    Missing { error: UsageError, context: String },
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
        validate_endpoint(&endpoint.value).map_err(|error| SettingsError::Invalid {
            key: "endpoint",
            origin: endpoint.source.clone(),
            error,
        })?;
        let Some(token) = &self.token else {
            return Err(SettingsError::Missing {
                error: UsageError::NoToken,
                context: format!(
                    "endpoint from {}; no kubejoin.token from any source",
                    endpoint.source
                ),
            });
        };
        let pin_text: Vec<String> = self
            .ca_cert_hashes
            .as_ref()
            .map(|p| p.value.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let pins = PinSet::parse(&pin_text).map_err(|e| SettingsError::Invalid {
            key: "ca-cert-hash",
            origin: self
                .ca_cert_hashes
                .as_ref()
                .map_or(Source::Default, |p| p.source.clone()),
            error: UsageError::Pin(e),
        })?;
        let unsafe_skip = self
            .unsafe_skip_ca_verification
            .as_ref()
            .is_some_and(|u| u.value);
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
            Some(n) => Some(NodeName::parse(&n.value.to_ascii_lowercase()).map_err(|e| {
                SettingsError::Invalid {
                    key: "node-name",
                    origin: n.source.clone(),
                    error: UsageError::NodeName(e),
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
        Ok(JoinPlan {
            discovery: Options {
                mode,
                tls_bootstrap_token,
                // kubeadm's per-loop discovery bound; the overall deadline below caps it.
                timeout: five_min,
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
            dry_run: false,
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
        })
    }
}

// ---------------------------------------------------------------------------------------------
// `kubejoin plan`
// ---------------------------------------------------------------------------------------------

fn entry<T: Shown>(
    out: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    v: &Option<Sourced<T>>,
) {
    if let Some(s) = v {
        out.insert(
            key.to_string(),
            serde_json::json!({ "value": s.value.shown(), "source": s.source.to_string() }),
        );
    }
}

fn list_entry(
    out: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    v: &Option<Sourced<Vec<String>>>,
) {
    if let Some(s) = v {
        out.insert(
            key.to_string(),
            serde_json::json!({ "value": s.value, "source": s.source.to_string() }),
        );
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
        values.insert(
            "ca-cert-hash".into(),
            serde_json::json!({ "value": pins, "source": p.source.to_string() }),
        );
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
    list_entry(
        &mut values,
        "ignore-preflight-errors",
        &s.ignore_preflight_errors,
    );
    list_entry(&mut values, "skip-phases", &s.skip_phases);
    entry(&mut values, "platform", &s.platform);
    // A config URL can carry credentials (user:password@, a signed query): shown redacted.
    let config = s.config.as_ref().map(|c| Sourced {
        value: crate::source::metadata::url::redact(&c.value),
        source: c.source.clone(),
    });
    entry(&mut values, "config", &config);
    entry(&mut values, "config.sha256", &s.config_sha256);
    entry(&mut values, "handoff", &s.handoff);
    entry(&mut values, "kubelet-path", &s.kubelet_path);
    entry(&mut values, "on-failure", &s.on_failure);
    entry(&mut values, "timeout", &s.timeout);
    entry(
        &mut values,
        "tls-bootstrap-timeout",
        &s.tls_bootstrap_timeout,
    );
    if let Some(n) = &s.network {
        values.insert(
            "network".into(),
            serde_json::json!({ "value": n.value.to_json(), "source": n.source.to_string() }),
        );
    }

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

// ---------------------------------------------------------------------------------------------
// Config files (joinconfig's output) as a layer
// ---------------------------------------------------------------------------------------------

/// The values a parsed config file sets. joinconfig fills defaults in (timeouts, the TLS bootstrap
/// token in token mode); values equal to those defaults are left unset here so they neither
/// override the defaults layer nor show up as conflicts with a higher layer.
pub fn values_from_config_file(cf: &ConfigFile) -> (Values, Vec<String>) {
    let mut v = Values::default();
    if let Some(j) = &cf.join {
        match &j.discovery.method {
            DiscoveryMethod::Token {
                api_server_endpoint,
                token,
                ca_cert_hashes,
                unsafe_skip_ca_verification,
            } => {
                v.endpoint = Some(api_server_endpoint.clone());
                v.token = Some(token.clone());
                if !ca_cert_hashes.is_empty() {
                    v.ca_cert_hashes = Some(ca_cert_hashes.pins().to_vec());
                }
                if *unsafe_skip_ca_verification {
                    v.unsafe_skip_ca_verification = Some(true);
                }
                if let Some(t) = &j.discovery.tls_bootstrap_token {
                    if !t.ct_eq(token) {
                        v.tls_bootstrap_token = Some(t.clone());
                    }
                }
            }
            DiscoveryMethod::File { kube_config_path } => {
                v.discovery_file = Some(kube_config_path.display().to_string());
                v.tls_bootstrap_token = j.discovery.tls_bootstrap_token.clone();
            }
            DiscoveryMethod::Https { url } => {
                v.discovery_file = Some(url.clone());
                v.tls_bootstrap_token = j.discovery.tls_bootstrap_token.clone();
            }
        }
        let nr = &j.node_registration;
        v.node_name = nr.name.as_ref().map(|n| n.as_str().to_string());
        v.cri_socket = nr.cri_socket.clone();
        v.kubelet_args = nr.kubelet_extra_args.clone();
        let nonempty = |l: &Vec<String>| (!l.is_empty()).then(|| l.clone());
        let taints: Vec<String> = nr.taints.iter().map(ToString::to_string).collect();
        v.taints = nonempty(&taints);
        v.ignore_preflight_errors = nonempty(&nr.ignore_preflight_errors);
        v.skip_phases = nonempty(&j.skip_phases);
        let defaults = joinconfig::Timeouts::default();
        if j.timeouts.discovery != defaults.discovery {
            v.timeout = Some(j.timeouts.discovery);
        }
        if j.timeouts.tls_bootstrap != defaults.tls_bootstrap {
            v.tls_bootstrap_timeout = Some(j.timeouts.tls_bootstrap);
        }
    }
    if let Some(k) = &cf.kubejoin {
        if !k.modules.is_empty() {
            v.modules = Some(k.modules.clone());
        }
        v.sysctls.extend(k.sysctls.iter().cloned());
        if let Some(h) = k.handoff {
            v.handoff = Some(match h {
                HandoffMode::Exec => "exec".into(),
                HandoffMode::None => "none".into(),
            });
        }
        v.kubelet_path = k.kubelet_path.as_ref().map(|p| p.display().to_string());
        v.token_file = k.token_file.as_ref().map(|p| p.display().to_string());
        v.on_failure = k.on_failure.map(|o| o.name().to_string());
        // The KubejoinConfiguration's timeouts win over the JoinConfiguration's (joinconfig docs).
        v.timeout = k.timeout.or(v.timeout);
        v.tls_bootstrap_timeout = k.tls_bootstrap_timeout.or(v.tls_bootstrap_timeout);
        v.kubelet_args.extend(k.kubelet_args.iter().cloned());
        v.network = k.network.clone().map(NetworkSpec::Config);
    }
    (v, cf.warnings.clone())
}

// ---------------------------------------------------------------------------------------------
// Gathering the layers of one boot
// ---------------------------------------------------------------------------------------------

/// The local config file read when neither `--config` nor `kubejoin.config=` names one.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/kubejoin.yaml";

/// Where metadata comes from.
// Built once per run: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum MetadataAccess {
    /// The real services. `tls` replaces the system trust store for `https://` (tests).
    Live {
        endpoints: Endpoints,
        timeouts: Timeouts,
        retry: Retry,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
    /// A recorded boot (`--metadata-dir DIR`): see [`RecordedMetadata`] for the layout.
    Recorded(PathBuf),
}

impl MetadataAccess {
    /// The real services at their real addresses, default timeouts and retries.
    pub fn live() -> Self {
        MetadataAccess::Live {
            endpoints: Endpoints::default(),
            timeouts: Timeouts::default(),
            retry: Retry::default(),
            tls: None,
        }
    }
}

/// Everything [`load`] needs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The node's filesystem (`/proc/cmdline`, `/sys/class/dmi/id`, `/etc/kubejoin.yaml`, the
    /// config drive's `/dev/disk/by-label/config-2` or `/sys/class/block` are read under it).
    pub root: Root,
    /// `--cmdline-file FILE`: a recorded command line instead of `/proc/cmdline`.
    pub cmdline_file: Option<PathBuf>,
    /// `--config FILE` (a path on this machine, not under the root). Without it the default
    /// [`DEFAULT_CONFIG_FILE`] is read under the root when it exists.
    pub config_file: Option<PathBuf>,
    pub metadata: MetadataAccess,
    /// Mounts an OpenStack config drive; without it the drive is not read (a warning says so)
    /// and the metadata service is used.
    pub config_drive: Option<Arc<dyn DriveSys>>,
    /// The image defaults (lowest layer).
    pub defaults: Values,
}

impl LoadOptions {
    /// Options that never mount anything (tests, replays, roots other than this machine's).
    pub fn new(root: Root) -> Self {
        Self {
            root,
            cmdline_file: None,
            config_drive: None,
            config_file: None,
            metadata: MetadataAccess::live(),
            defaults: Values::builtin_defaults(),
        }
    }

    /// The options of a live boot of this machine: like [`LoadOptions::new`], plus the real
    /// config-drive mount when `root` is this machine's `/` (mounting a device found under
    /// another root would mount the wrong machine's disk).
    pub fn live(root: Root) -> Self {
        let drive: Option<Arc<dyn DriveSys>> = root
            .is_host()
            .then(|| Arc::new(crate::sys::configdrive::RealDriveSys) as Arc<dyn DriveSys>);
        Self {
            config_drive: drive,
            ..Self::new(root)
        }
    }
}

/// The result of [`load`].
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// The whole command line (other stages read `ip=`, `root=`, module parameters…).
    pub cmdline: Cmdline,
    /// The metadata platform in use, if any.
    pub platform: Option<Platform>,
}

/// Gathering the layers failed. Each names what and where; none carries a token secret.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    #[error("reading the config file {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is larger than {max} bytes")]
    ConfigTooLarge { path: PathBuf, max: usize },
    #[error("config from {origin} ({location}): {error}")]
    Document {
        origin: Source,
        location: String,
        error: UserDataError,
    },
    /// joinconfig's error; its text starts with the source and location.
    #[error("{0}")]
    Config(ConfigError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Pin(#[from] ConfigPinMismatch),
    #[error("kubejoin.config.sha256 is set but no config document was loaded to check it against")]
    PinUnused,
    #[error(
        "kubejoin.config=metadata, but no metadata platform is known (DMI did not identify one)"
    )]
    NoPlatform,
    /// `token-file` unreadable, readable by others, or not one token.
    #[error(transparent)]
    TokenFile(#[from] crate::plan::token::TokenFileError),
    #[error("{origin} gives both token and token-file: give the token once, preferably by file")]
    TokenTwice { origin: Source },
}

impl Classify for LoadError {
    fn class(&self) -> Class {
        match self {
            LoadError::Cmdline(e) => e.class(),
            LoadError::ReadConfig { .. } => Class::Other,
            LoadError::Config(e) => e.class(),
            LoadError::Metadata(e) => e.class(),
            LoadError::Pin(_) => Class::Trust,
            LoadError::ConfigTooLarge { .. }
            | LoadError::Document { .. }
            | LoadError::PinUnused
            | LoadError::NoPlatform
            | LoadError::TokenFile(_)
            | LoadError::TokenTwice { .. } => Class::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            LoadError::Cmdline(e) => e.hint(),
            LoadError::Config(e) => e.hint(),
            LoadError::Metadata(e) => e.hint(),
            LoadError::Pin(_) => Some(
                "the config changed since it was pinned: compare `sha256sum` of the document you meant to serve \
                 with kubejoin.config.sha256, and do not join until they match"
                    .into(),
            ),
            LoadError::PinUnused => Some(
                "add kubejoin.config=<path|https://URL|metadata> naming the document the hash pins".into(),
            ),
            LoadError::NoPlatform => Some(format!(
                "set kubejoin.platform to one of {}",
                Platform::NAMED.iter().map(|p| p.id()).collect::<Vec<_>>().join(", ")
            )),
            _ => None,
        }
    }
}

/// Checks the pin (if any) against the first config document; later documents are not pinned.
fn check_pin(
    pin: Option<ConfigPin>,
    used: &mut bool,
    what: &str,
    bytes: &[u8],
) -> Result<(), LoadError> {
    if let Some(p) = pin {
        if !*used {
            *used = true;
            p.verify(what, bytes)?;
        }
    }
    Ok(())
}

/// A config document (file or user-data) as a layer. User-data bytes are only ever held in
/// memory.
fn document_layer(
    bytes: &[u8],
    origin: Source,
    location: &str,
    warnings: &mut Vec<String>,
) -> Result<Layer, LoadError> {
    let doc_err = |error| LoadError::Document {
        origin: origin.clone(),
        location: location.to_string(),
        error,
    };
    let decoded = userdata::decode(bytes).map_err(doc_err)?;
    match userdata::parse(&decoded).map_err(doc_err)? {
        Document::Kubejoin {
            values,
            warnings: w,
        } => {
            warnings.extend(w.into_iter().map(|w| format!("{origin}: {w}")));
            Ok(Layer::new(origin, values))
        }
        Document::Config(text) => {
            let shown = match &origin {
                Source::File(_) => origin.to_string(),
                _ => format!("{origin} ({location})"),
            };
            let cf = joinconfig::parse(text.as_bytes(), &shown).map_err(LoadError::Config)?;
            let (values, w) = values_from_config_file(&cf);
            warnings.extend(w.into_iter().map(|w| format!("{shown}: {w}")));
            Ok(Layer::new(origin, values))
        }
    }
}

fn read_config(path: &Path) -> Result<Vec<u8>, LoadError> {
    let err = |source| LoadError::ReadConfig {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    let mut buf = Vec::new();
    f.take(MAX_USER_DATA as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(err)?;
    if buf.len() > MAX_USER_DATA {
        return Err(LoadError::ConfigTooLarge {
            path: path.to_path_buf(),
            max: MAX_USER_DATA,
        });
    }
    Ok(buf)
}

/// The platform: DMI under the root, else a config drive; for a recorded boot, else the
/// recording's only platform.
fn detect_platform(opts: &LoadOptions) -> Option<Platform> {
    if let Some(p) = metadata::detect(&Dmi::from_root(&opts.root)) {
        return Some(p);
    }
    // As cloud-init's ds-identify: a filesystem labelled config-2 means OpenStack, whatever the
    // SMBIOS says (some OpenStack clouds run on hardware or hypervisors with their own vendor
    // strings). Only where the drive could be read.
    if opts.config_drive.is_some()
        && matches!(opts.metadata, MetadataAccess::Live { .. })
        && find_config_drive(&opts.root).is_some()
    {
        return Some(Platform::OpenStack);
    }
    let MetadataAccess::Recorded(dir) = &opts.metadata else {
        return None;
    };
    let mut found: Vec<Platform> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(Platform::parse))
        .filter(|p| *p != Platform::Url)
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Builds providers for one boot (transport per platform).
struct Providers<'a> {
    opts: &'a LoadOptions,
}

impl Providers<'_> {
    fn transport(
        &self,
        platform: Platform,
        https: bool,
    ) -> Result<(Arc<dyn Transport>, Endpoints, Retry), MetadataError> {
        match &self.opts.metadata {
            MetadataAccess::Live {
                endpoints,
                timeouts,
                retry,
                tls,
            } => {
                let tls = match (https, tls) {
                    (false, _) => Tls::Disabled,
                    (true, Some(cfg)) => Tls::Config(cfg.clone()),
                    (true, None) => Tls::NativeRoots,
                };
                let t =
                    HttpTransport::new(*timeouts, tls).map_err(|source| MetadataError::Tls {
                        provider: platform,
                        source: Box::new(source),
                    })?;
                Ok((Arc::new(t), endpoints.clone(), retry.clone()))
            }
            MetadataAccess::Recorded(dir) => Ok((
                Arc::new(RecordedMetadata::new(dir.join(platform.id()))),
                Endpoints::default(),
                Retry::none(),
            )),
        }
    }

    /// The provider of `platform`; `drive` is what was read from an OpenStack config drive.
    fn provider(
        &self,
        platform: Platform,
        drive: Option<Arc<DriveData>>,
    ) -> Result<Box<dyn Provider>, MetadataError> {
        let (transport, endpoints, retry) =
            self.transport(platform, platform == Platform::Equinix)?;
        let ctx = Context {
            transport,
            endpoints,
            retry,
            config_drive: drive.filter(|_| platform == Platform::OpenStack),
        };
        metadata::provider(platform, &ctx).ok_or(MetadataError::Client {
            provider: platform,
            reason: "no provider is registered for this platform".into(),
        })
    }

    fn url(&self, template: &str, pinned: bool) -> Result<UrlProvider, MetadataError> {
        let (transport, _, retry) =
            self.transport(Platform::Url, template.starts_with("https://"))?;
        UrlProvider::new(
            template,
            pinned,
            &Vars::from_root(&self.opts.root),
            transport,
            retry,
        )
    }
}

/// The OpenStack config drive, read into memory and unmounted again, when this is a live boot
/// on OpenStack that has one. Failures are warnings: the metadata service is the fallback.
fn read_drive(opts: &LoadOptions, warnings: &mut Vec<String>) -> Option<Arc<DriveData>> {
    if !matches!(opts.metadata, MetadataAccess::Live { .. }) {
        return None;
    }
    let (device, kind) = find_config_drive(&opts.root)?;
    let Some(sys) = &opts.config_drive else {
        warnings.push(format!(
            "found the config drive {} but cannot mount it here; using the metadata service",
            device.display()
        ));
        return None;
    };
    let dir = match opts.root.join(openstack::MOUNT_DIR) {
        Ok(d) => d,
        Err(e) => {
            warnings.push(format!("config drive {}: {e}", device.display()));
            return None;
        }
    };
    match openstack::read_config_drive(&**sys, &device, &dir, kind) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) => {
            let chain = crate::error::Report(&e, None).to_string();
            warnings.push(format!(
                "{}; using the metadata service",
                chain.trim_start_matches("error: ").replace('\n', " ")
            ));
            None
        }
    }
}

fn is_no_user_data(e: &MetadataError) -> bool {
    matches!(
        e,
        MetadataError::NoUserData { .. }
            | MetadataError::EmptyUserData { .. }
            | MetadataError::NoUserDataFile { .. }
    )
}

/// The sources that need no network, read before the network comes up (PID-1 mode brings the
/// network up from them): the kernel command line, a local config file, and an OpenStack config
/// drive. Made by [`load_local`], finished by [`load_remote`].
#[derive(Debug, Clone)]
pub struct Local {
    cmdline: Cmdline,
    config: Option<String>,
    pin: Option<ConfigPin>,
    pin_used: bool,
    layers: Vec<Layer>,
    warnings: Vec<String>,
    platform: Option<Platform>,
    explicit_platform: bool,
    drive: Option<Arc<DriveData>>,
    /// The platform's user-data was already read (from the config drive).
    user_data_read: bool,
}

impl Local {
    /// The whole command line.
    pub fn cmdline(&self) -> &Cmdline {
        &self.cmdline
    }

    /// The local layers merged (no defaults, no metadata service): what the network stage
    /// needs.
    pub fn settings(&self) -> Settings {
        let mut s = merge(&self.layers);
        s.warnings = self.warnings.clone();
        s
    }

    /// The metadata platform in use, if any.
    pub fn platform(&self) -> Option<Platform> {
        self.platform
    }

    /// Whether an OpenStack config drive was read.
    pub fn has_config_drive(&self) -> bool {
        self.drive.is_some()
    }
}

/// The kernel command line's network parameters (`ip=`), as a network description.
fn cmdline_network(cmdline: &Cmdline) -> Option<NetworkSpec> {
    let ip: Vec<String> = cmdline
        .all("ip")
        .map(|p| match &p.value {
            Some(v) => format!("ip={v}"),
            None => "ip".to_string(),
        })
        .collect();
    (!ip.is_empty()).then_some(NetworkSpec::Cmdline(ip))
}

/// The config drive's user-data as a layer. `required`: a drive without user-data is an error
/// (nothing else says how to join), else a warning.
fn drive_layer(
    drive: &DriveData,
    required: bool,
    pin: Option<ConfigPin>,
    pin_used: &mut bool,
    layers: &mut Vec<Layer>,
    warnings: &mut Vec<String>,
) -> Result<(), LoadError> {
    match drive.user_data() {
        Ok(ud) => {
            check_pin(pin, pin_used, &ud.location, &ud.bytes)?;
            layers.push(document_layer(
                &ud.bytes,
                Source::Metadata(Platform::OpenStack),
                &ud.location,
                warnings,
            )?);
        }
        Err(e) if !required && is_no_user_data(&e) => {
            warnings.push(format!("{e}; using the other sources"));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Reads the local sources (see [`Local`]; the rules are [`load`]'s). Nothing here uses the
/// network.
pub fn load_local(opts: &LoadOptions) -> Result<Local, LoadError> {
    let cmdline = match &opts.cmdline_file {
        Some(p) => Cmdline::read_file(p)?,
        None => Cmdline::read(&opts.root)?,
    };
    let kj = cmdline.kubejoin()?;
    let mut warnings: Vec<String> = kj
        .warnings
        .iter()
        .map(|w| format!("cmdline: {w}"))
        .collect();
    let mut cmd = kj.values;
    cmd.network = cmdline_network(&cmdline);
    let pin = cmd.config_sha256;
    let mut pin_used = false;
    let mut layers = vec![Layer::new(Source::Cmdline, cmd.clone())];

    let explicit_platform = cmd
        .platform
        .as_deref()
        .filter(|p| *p != "none")
        .and_then(Platform::parse);
    let platform = match cmd.platform.as_deref() {
        Some("none") => None,
        Some(_) => explicit_platform,
        None => detect_platform(opts),
    };
    let drive = match platform {
        Some(Platform::OpenStack) => read_drive(opts, &mut warnings),
        _ => None,
    };
    let mut user_data_read = false;

    match cmd.config.as_deref() {
        Some(path) if path.starts_with('/') => {
            let real = opts.root.join(path).map_err(|e| LoadError::ReadConfig {
                path: PathBuf::from(path),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })?;
            let bytes = read_config(&real)?;
            check_pin(pin, &mut pin_used, path, &bytes)?;
            layers.push(document_layer(
                &bytes,
                Source::File(PathBuf::from(path)),
                path,
                &mut warnings,
            )?);
        }
        // A URL is fetched once the network is up.
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
        Some(_) => {
            if platform.is_none() {
                return Err(LoadError::NoPlatform);
            }
            if let Some(d) = &drive {
                drive_layer(d, true, pin, &mut pin_used, &mut layers, &mut warnings)?;
                user_data_read = true;
            }
        }
        None => {
            let local = match &opts.config_file {
                Some(p) => Some((p.clone(), p.clone())),
                None => opts
                    .root
                    .join(DEFAULT_CONFIG_FILE)
                    .ok()
                    .filter(|p| p.exists())
                    .map(|real| (real, PathBuf::from(DEFAULT_CONFIG_FILE))),
            };
            if let Some((real, shown)) = local {
                let bytes = read_config(&real)?;
                let what = shown.display().to_string();
                check_pin(pin, &mut pin_used, &what, &bytes)?;
                layers.push(document_layer(
                    &bytes,
                    Source::File(shown),
                    &what,
                    &mut warnings,
                )?);
            }
            let has_discovery = layers.iter().any(|l| l.values.has_discovery());
            if let Some(d) = &drive {
                if explicit_platform.is_some() || !has_discovery {
                    drive_layer(
                        d,
                        !has_discovery,
                        pin,
                        &mut pin_used,
                        &mut layers,
                        &mut warnings,
                    )?;
                }
                // The drive answered (or had nothing): the metadata service is not asked.
                user_data_read = true;
            }
        }
    }
    Ok(Local {
        cmdline,
        config: cmd.config.clone(),
        pin,
        pin_used,
        layers,
        warnings,
        platform,
        explicit_platform: explicit_platform.is_some(),
        drive,
        user_data_read,
    })
}

/// Finishes what [`load_local`] started, once the network is up: a config URL, the platform's
/// user-data from its metadata service, the node name and address the provider reports; then
/// the image defaults and the merge.
pub async fn load_remote(opts: &LoadOptions, local: Local) -> Result<Loaded, LoadError> {
    let Local {
        cmdline,
        config,
        pin,
        mut pin_used,
        mut layers,
        mut warnings,
        platform,
        explicit_platform,
        drive,
        user_data_read,
    } = local;
    let providers = Providers { opts };
    let mut provider: Option<Box<dyn Provider>> = None;

    match config.as_deref() {
        Some(path) if path.starts_with('/') => {}
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let p = providers.url(url, pin.is_some())?;
            let ud = p.user_data().await?;
            check_pin(pin, &mut pin_used, &ud.location, &ud.bytes)?;
            layers.push(document_layer(
                &ud.bytes,
                Source::Metadata(Platform::Url),
                &ud.location,
                &mut warnings,
            )?);
        }
        Some(_) if !user_data_read => {
            let plat = platform.ok_or(LoadError::NoPlatform)?;
            let p = provider.insert(providers.provider(plat, drive.clone())?);
            let ud: UserData = p.user_data().await?;
            check_pin(pin, &mut pin_used, &ud.location, &ud.bytes)?;
            layers.push(document_layer(
                &ud.bytes,
                Source::Metadata(plat),
                &ud.location,
                &mut warnings,
            )?);
        }
        Some(_) => {}
        None if user_data_read => {}
        None => {
            let has_discovery = layers.iter().any(|l| l.values.has_discovery());
            if let Some(plat) = platform {
                if explicit_platform || !has_discovery {
                    let p = provider.insert(providers.provider(plat, drive.clone())?);
                    match p.user_data().await {
                        Ok(ud) => {
                            check_pin(pin, &mut pin_used, &ud.location, &ud.bytes)?;
                            layers.push(document_layer(
                                &ud.bytes,
                                Source::Metadata(plat),
                                &ud.location,
                                &mut warnings,
                            )?);
                        }
                        Err(e) if has_discovery && is_no_user_data(&e) => {
                            warnings.push(format!("{e}; using the other sources"));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    if pin.is_some() && !pin_used {
        return Err(LoadError::PinUnused);
    }

    // The provider fills in the node name and address nobody gave.
    if let Some(plat) = platform {
        let so_far = merge(&layers);
        if so_far.node_name.is_none() || so_far.node_ip.is_none() {
            let p = match provider.take() {
                Some(p) => Ok(p),
                None => providers.provider(plat, drive.clone()),
            };
            let facts = match p {
                Ok(p) => p.node_facts().await,
                Err(e) => Err(e),
            };
            match facts {
                Ok(f) => {
                    let mut v = Values::default();
                    if so_far.node_name.is_none() {
                        if let Some(h) = &f.hostname {
                            if let Err(e) = v.set(Key::NodeName, Some(h)) {
                                warnings.push(format!("metadata:{plat}: not using the hostname {h:?} as node name: {e}"));
                            }
                        }
                    }
                    if so_far.node_ip.is_none() {
                        v.node_ip = f.node_ip();
                    }
                    layers.push(Layer::new(Source::Metadata(plat), v));
                }
                Err(e) => warnings.push(format!("node name and address from metadata: {e}")),
            }
        }
    }

    layers.push(Layer::new(Source::Default, opts.defaults.clone()));
    read_token_files(&mut layers, &opts.root)?;
    let mut settings = merge(&layers);
    if settings
        .token
        .as_ref()
        .is_some_and(|t| t.source == Source::Cmdline)
        || settings
            .tls_bootstrap_token
            .as_ref()
            .is_some_and(|t| t.source == Source::Cmdline)
    {
        warnings.push(CMDLINE_TOKEN_WARNING.to_string());
    }
    // Only local sources can say how to bring the network up: anything fetched over it came too
    // late. (A config drive is local: its user-data was read before the network.)
    if let Some(n) = &settings.network {
        let local = match &n.source {
            Source::Cmdline | Source::File(_) | Source::Default => true,
            Source::Metadata(p) => *p == Platform::OpenStack && drive.is_some(),
        };
        if !local {
            warnings.push(format!(
                "network from {}: not applied, the network was already up when it was fetched \
                 (put it on the kernel command line (ip=), in a local config file or on a config drive)",
                n.source
            ));
        }
    }
    settings.warnings = warnings;
    Ok(Loaded {
        settings,
        cmdline,
        platform,
    })
}

/// Gathers one boot's layers and merges them (see the module docs for the precedence):
/// [`load_local`], then [`load_remote`].
///
/// * The kernel command line is always read (`--cmdline-file` or `/proc/cmdline`); its `ip=`
///   parameters are its description of the network.
/// * `kubejoin.config=/path` reads that file (under the root), `=https://…` fetches it (the
///   generic URL provider), `=metadata` reads the platform's user-data. Without it, the local
///   config file is read when there is one.
/// * The platform is `kubejoin.platform` (`none` disables metadata), else DMI detection. Its
///   user-data is fetched when `kubejoin.platform` names it, or when no higher layer says how to
///   discover the cluster; a missing user-data is then an error, except when `kubejoin.platform`
///   merely names the platform and another layer already has discovery (a warning).
/// * On OpenStack, a config drive (label `config-2`) answers instead of the metadata service:
///   it is mounted read-only, read into memory and unmounted before anything else happens, so
///   its user-data counts among the local sources.
/// * `kubejoin.config.sha256` is checked against the first document loaded, before parsing; a
///   mismatch refuses it, and a pin that checked nothing is an error.
/// * Missing node name or node IP are taken from the provider (failures are warnings: the
///   hostname fallback still works).
pub async fn load(opts: &LoadOptions) -> Result<Loaded, LoadError> {
    load_remote(opts, load_local(opts)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";
    const PIN2: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000002";

    fn values(pairs: &[(Key, &str)]) -> Values {
        let mut v = Values::default();
        for (k, val) in pairs {
            v.set(*k, Some(val)).unwrap();
        }
        v
    }

    fn file() -> Source {
        Source::File("/etc/kubejoin.yaml".into())
    }

    #[test]
    fn sources_display_as_plan_prints_them() {
        assert_eq!(Source::Cmdline.to_string(), "cmdline");
        assert_eq!(file().to_string(), "file:/etc/kubejoin.yaml");
        assert_eq!(Source::Metadata(Platform::Aws).to_string(), "metadata:aws");
        assert_eq!(Source::Default.to_string(), "default");
    }

    #[test]
    fn keys_and_suggestions() {
        assert_eq!(Key::parse("ca_cert_hash"), Some(Key::CaCertHash));
        assert_eq!(Key::parse("config.sha256"), Some(Key::ConfigSha256));
        assert_eq!(Key::parse("nope"), None);
        assert_eq!(did_you_mean("tokn"), Some("token"));
        assert_eq!(did_you_mean("endpiont"), Some("endpoint"));
        assert_eq!(did_you_mean("config.sha265"), Some("config.sha256"));
        assert_eq!(did_you_mean("x"), None);
        assert_eq!(did_you_mean("completely-different"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
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

    fn token_layer() -> Layer {
        Layer::new(
            Source::Cmdline,
            values(&[
                (Key::Endpoint, "10.0.0.1:6443"),
                (Key::Token, TOKEN),
                (Key::CaCertHash, PIN),
            ]),
        )
    }

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

    #[test]
    fn plan_json_redacts_and_shows_sources() {
        let s = merge(&[
            token_layer(),
            Layer::new(
                file(),
                values(&[
                    (Key::Token, "zzzzzz.0123456789abcdef"),
                    (Key::Modules, "br_netfilter"),
                ]),
            ),
            Layer::new(Source::Default, Values::builtin_defaults()),
        ]);
        let j = plan_json(&s);
        let text = j.to_string();
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert_eq!(j["valid"], true);
        assert_eq!(j["discovery"], "token");
        assert_eq!(
            j["values"]["token"],
            serde_json::json!({"value": "abcdef.<redacted>", "source": "cmdline"})
        );
        assert_eq!(
            j["values"]["modules"],
            serde_json::json!({"value": ["br_netfilter"], "source": "file:/etc/kubejoin.yaml"})
        );
        assert_eq!(
            j["values"]["timeout"],
            serde_json::json!({"value": "10m0s", "source": "default"})
        );
        assert_eq!(j["conflicts"][0]["dropped"]["value"], "zzzzzz.<redacted>");

        let bad = plan_json(&merge(&[Layer::new(
            Source::Cmdline,
            values(&[(Key::Token, TOKEN)]),
        )]));
        assert_eq!(bad["valid"], false);
        assert!(
            bad["error"]
                .as_str()
                .unwrap()
                .starts_with("no API server endpoint"),
            "{bad}"
        );
        assert!(!bad.to_string().contains("0123456789abcdef"));
    }

    #[test]
    fn config_pin_mismatch_names_both_hashes() {
        let pin = ConfigPin::parse(&format!("sha256:{}", "AB".repeat(32))).unwrap();
        let e = pin.verify("https://cfg/x.yaml", b"doc").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("refusing config https://cfg/x.yaml: its hash is sha256:"),
            "{e}"
        );
        assert!(
            e.to_string().ends_with(&format!(
                "but kubejoin.config.sha256 pins sha256:{}",
                "ab".repeat(32)
            )),
            "{e}"
        );
        let good = ConfigPin(Sha256::digest(b"doc").into());
        assert!(good.verify("x", b"doc").is_ok());
    }

    #[test]
    fn config_files_from_joinconfig_become_a_layer() {
        let doc = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    \
             apiServerEndpoint: 10.0.0.1:6443\n    token: {TOKEN}\n    caCertHashes: [\"{PIN}\"]\nnodeRegistration:\n  \
             name: file-node\n  kubeletExtraArgs:\n  - name: max-pods\n    value: \"30\"\n---\n\
             apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nmodules: [overlay]\nonFailure: reboot\n"
        );
        let cf = joinconfig::parse(doc.as_bytes(), "/etc/kubejoin.yaml").unwrap();
        let (v, _) = values_from_config_file(&cf);
        assert_eq!(v.endpoint.as_deref(), Some("10.0.0.1:6443"));
        assert_eq!(v.token.as_ref().map(|t| t.id()), Some("abcdef"));
        assert!(
            v.tls_bootstrap_token.is_none(),
            "the defaulted copy of the token is not a separate value"
        );
        assert_eq!(v.node_name.as_deref(), Some("file-node"));
        assert_eq!(v.kubelet_args, [("max-pods".to_string(), "30".to_string())]);
        assert_eq!(v.modules, Some(vec!["overlay".to_string()]));
        assert_eq!(v.on_failure.as_deref(), Some("reboot"));
        assert_eq!(
            v.timeout, None,
            "joinconfig's defaulted timeout is not a value the file set"
        );
    }

    const NET_DOC: &str = "apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nnetwork:\n  \
        interfaces:\n  - name: eth0\n    address: 10.0.0.7/24\n    gateway: 10.0.0.1\n  - name: eth1\n    dhcp: true\n  \
        nameservers: [10.0.0.53]\n";

    fn net_layer(source: Source) -> Layer {
        let cf = joinconfig::parse(NET_DOC.as_bytes(), "test").unwrap();
        Layer::new(source, values_from_config_file(&cf).0)
    }

    #[test]
    fn a_config_network_reaches_the_plan_and_plan_json_with_its_source() {
        let s = merge(&[
            token_layer(),
            net_layer(file()),
            Layer::new(Source::Default, Values::builtin_defaults()),
        ]);
        assert!(s.conflicts.is_empty(), "{:?}", s.conflicts);
        let plan = s.to_plan(Path::new("/")).unwrap();
        let n = plan.network.unwrap();
        assert_eq!(n.source, "file:/etc/kubejoin.yaml");
        let NetworkSpec::Config(net) = &n.spec else {
            panic!("{n:?}")
        };
        assert_eq!(net.interfaces.len(), 2);
        assert_eq!(
            net.nameservers,
            ["10.0.0.53".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        let j = plan_json(&s);
        assert_eq!(j["values"]["network"]["source"], "file:/etc/kubejoin.yaml");
        assert_eq!(
            j["values"]["network"]["value"]["interfaces"][0],
            serde_json::json!({"name": "eth0", "address": "10.0.0.7/24", "gateway": "10.0.0.1"})
        );
        assert_eq!(
            j["values"]["network"]["value"]["interfaces"][1],
            serde_json::json!({"name": "eth1", "dhcp": true})
        );
    }

    #[test]
    fn the_network_is_taken_whole_from_the_highest_layer_and_conflicts_are_reported() {
        let mut cmd = token_layer();
        cmd.values.network = Some(NetworkSpec::Cmdline(vec!["ip=eth0:dhcp".into()]));
        let s = merge(&[
            net_layer(Source::Metadata(Platform::OpenStack)),
            net_layer(file()),
            cmd,
        ]);
        let n = s.network.as_ref().unwrap();
        assert_eq!(n.source, Source::Cmdline);
        let shown: Vec<String> = s.conflicts.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"network: using "ip=eth0:dhcp" from cmdline, ignoring "eth0 10.0.0.7/24 via 10.0.0.1, eth1 dhcp; nameservers 10.0.0.53" from file:/etc/kubejoin.yaml"#,
                r#"network: using "ip=eth0:dhcp" from cmdline, ignoring "eth0 10.0.0.7/24 via 10.0.0.1, eth1 dhcp; nameservers 10.0.0.53" from metadata:openstack"#,
            ]
        );
        // Without ip=, the file beats the config drive; equal networks are no conflict.
        let s = merge(&[
            net_layer(Source::Metadata(Platform::OpenStack)),
            net_layer(file()),
        ]);
        assert_eq!(s.network.unwrap().source, file());
        assert!(s.conflicts.is_empty());
        // A plan with no network described has none.
        let plan = merge(&[token_layer()]).to_plan(Path::new("/")).unwrap();
        assert!(plan.network.is_none());
    }
}
