//! One layer's values: what a source said, each checked by the key's own rule (the same for
//! every source), nothing merged yet.

use crate::kube::token::BootstrapToken;
use crate::pki::pin::CaPin;
use crate::plan::certificate_key::CertificateKey;
use crate::plan::config_pin::ConfigPin;
use crate::plan::endpoint::Endpoint;
use crate::plan::key::{Key, KeyError};
use crate::plan::network::NetworkSpec;
use crate::plan::node_name::NodeName;
use crate::plan::platform::Platform;
use crate::plan::DEFAULT_CRI_SOCKET;
use crate::time::duration;
use std::net::IpAddr;
use std::time::Duration;

/// What `on-failure` may say (PID-1 mode's policy, `src/init/config.rs`).
pub const ON_FAILURE: [&str; 4] = ["retry", "reboot", "poweroff", "shell"];
/// The `ntp` value that turns network time off: SNTP and the verified `Date` (`none` is taken as
/// its synonym).
pub const NTP_OFF: &str = "off";
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
    /// The overall deadline of the join: `kubejoin.timeout`, a KubejoinConfiguration's
    /// `timeout`, `--timeout` (one meaning on every route).
    pub timeout: Option<Duration>,
    /// The bound of each cluster-info fetch loop: a JoinConfiguration's `timeouts.discovery`
    /// (v1beta3 `discovery.timeout`), `--discovery-timeout`; kubeadm's 5m when unset.
    pub discovery_timeout: Option<Duration>,
    /// `ntp`: SNTP servers as given (`host[:port]`, each checked), in order; `["off"]` when SNTP
    /// is turned off.
    pub ntp: Option<Vec<String>>,
    pub tls_bootstrap_timeout: Option<Duration>,
    /// How to bring the network up: the command line's `ip=` parameters, or a
    /// KubejoinConfiguration's `network`. Taken whole from the highest layer that has one.
    pub network: Option<NetworkSpec>,
    /// `control-plane`: join as a control-plane node.
    pub control_plane: Option<bool>,
    /// `certificate-key` (a secret: shown redacted).
    pub certificate_key: Option<CertificateKey>,
    /// `certificate-key-file`: an absolute path (under the root), read into `certificate_key`
    /// before the merge, as `token-file` is.
    pub certificate_key_file: Option<String>,
    /// `advertise-address` (JoinConfiguration `controlPlane.localAPIEndpoint.advertiseAddress`).
    pub advertise_address: Option<IpAddr>,
    /// JoinConfiguration `controlPlane.localAPIEndpoint.bindPort` only.
    pub bind_port: Option<u16>,
    /// `--dry-run`, or a JoinConfiguration's `dryRun: true` (not a key of the command line).
    pub dry_run: Option<bool>,
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

/// Values shown by their `Display` (which redacts where needed, e.g. [`CertificateKey`]) and
/// compared with `==`.
macro_rules! shown_by_display {
    ($($t:ty),* $(,)?) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
            fn same(&self, other: &Self) -> bool {
                self == other
            }
        }
    )*};
}

shown_by_display!(bool, CertificateKey, u16, ConfigPin, IpAddr, NetworkSpec);

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

/// A boolean key: a bare key (or an empty value) means true, as a flag does.
fn flag_value(value: Option<&str>) -> Result<bool, KeyError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("true") | Some("1") | Some("yes") => Ok(true),
        Some("false") | Some("0") | Some("no") => Ok(false),
        Some(other) => Err(KeyError::Invalid(format!(
            "{other:?} is not a boolean (true or false)"
        ))),
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
                Endpoint::parse(v).map_err(|e| KeyError::Invalid(e.to_string()))?;
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
                let b = flag_value(value)?;
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
                let pin = ConfigPin::parse(need(key, value)?)
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
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
            Key::Ntp => {
                let v = need(key, value)?;
                let list = self.ntp.get_or_insert_with(Vec::new);
                for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let off = n.eq_ignore_ascii_case("off") || n.eq_ignore_ascii_case("none");
                    if off != list.iter().all(|x| x == NTP_OFF) && !list.is_empty() {
                        return Err(KeyError::Invalid(format!(
                            "{n:?} given with {}: `off` turns SNTP off, so it cannot go with servers",
                            list.join(",")
                        )));
                    }
                    let n = if off {
                        NTP_OFF.to_string()
                    } else {
                        crate::clock::client::Server::parse(n)
                            .map_err(|e| KeyError::Invalid(e.to_string()))?;
                        n.to_string()
                    };
                    if !list.contains(&n) {
                        list.push(n);
                    }
                }
                Ok(None)
            }
            Key::ControlPlane => {
                let b = flag_value(value)?;
                set_once(&mut self.control_plane, b)
            }
            Key::CertificateKey => {
                let k = CertificateKey::parse(need(key, value)?)
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
                set_once(&mut self.certificate_key, k)
            }
            Key::CertificateKeyFile => {
                let v = need(key, value)?;
                if !v.starts_with('/') {
                    return Err(KeyError::Invalid(format!("{v:?} is not an absolute path")));
                }
                set_once(&mut self.certificate_key_file, v.to_string())
            }
            Key::AdvertiseAddress => {
                let v = need(key, value)?;
                let ip: IpAddr = v
                    .parse()
                    .map_err(|_| KeyError::Invalid(format!("{v:?} is not an IP address")))?;
                set_once(&mut self.advertise_address, ip)
            }
            Key::Sysroot | Key::Debug | Key::Timeline => Ok(None),
        }
    }
}
