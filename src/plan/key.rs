//! The join settings' keys: `kubejoin.<name>` on the kernel command line, `<name>` in kubejoin
//! YAML (a config file, or the `kubejoin:` subtree of a `#cloud-config`), with what each accepts.

use crate::plan::DEFAULT_CRI_SOCKET;
use std::fmt;

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
    /// SNTP servers (`host[:port]`, repeatable or a comma list), or `off`/`none`.
    Ntp,
    /// Read by PID-1 mode (`src/init/config.rs`): the real root's block device.
    Sysroot,
    /// Read by PID-1 mode: debug logging.
    Debug,
    /// Read by PID-1 mode: where the boot's JSON timeline goes (`file` or `console`).
    Timeline,
    /// Join as a control-plane node (`kubeadm join --control-plane`).
    ControlPlane,
    /// The key that decrypts `kube-system/kubeadm-certs` (a secret; warned about on the command
    /// line as tokens are).
    CertificateKey,
    /// A file holding the certificate key (mode 0600), read at load time.
    CertificateKeyFile,
    /// The address this node's API server and etcd advertise.
    AdvertiseAddress,
}

impl Key {
    /// Every key, in the order the docs list them.
    pub const ALL: [Key; 26] = [
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
        Key::Ntp,
        Key::Sysroot,
        Key::Debug,
        Key::Timeline,
        Key::ControlPlane,
        Key::CertificateKey,
        Key::CertificateKeyFile,
        Key::AdvertiseAddress,
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
            Key::Ntp => "ntp",
            Key::Sysroot => "sysroot",
            Key::Debug => "debug",
            Key::Timeline => "timeline",
            Key::ControlPlane => "control-plane",
            Key::CertificateKey => "certificate-key",
            Key::CertificateKeyFile => "certificate-key-file",
            Key::AdvertiseAddress => "advertise-address",
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
            Key::CaCertHash | Key::KubeletArg | Key::Modules | Key::Sysctl | Key::Ntp
        )
    }

    /// Keys only the kernel command line may set: they choose where configs come from and pin
    /// them, so a fetched config must not be able to redirect or re-pin itself.
    pub fn cmdline_only(self) -> bool {
        matches!(
            self,
            Key::Config | Key::ConfigSha256 | Key::Sysroot | Key::Debug | Key::Timeline
        )
    }

    /// Keys PID-1 mode reads and validates itself (`src/init/config.rs`); the join settings
    /// accept them without storing anything, so they are not reported as unknown.
    pub fn init_only(self) -> bool {
        matches!(self, Key::Sysroot | Key::Debug | Key::Timeline)
    }

    /// A value that shows the expected form, for "needs a value" errors.
    pub fn example(self) -> &'static str {
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
            Key::Ntp => "host[:port], e.g. time.example.org or 10.0.0.1:123, or off",
            Key::Sysroot => "a block device, e.g. /dev/vda1",
            Key::Debug => "true or false",
            Key::Timeline => "file or console",
            Key::ControlPlane => "true or false",
            Key::CertificateKey => "<64 hex digits>",
            Key::CertificateKeyFile => "/path/to/a/chmod-600/file",
            Key::AdvertiseAddress => "an IP address, e.g. 10.0.0.2",
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The known key closest to `name`, when it is close enough to be a typo (at most 3 edits and
/// less than half the length, so `kubejoin.x` does not suggest `kubejoin.token`).
pub fn did_you_mean(name: &str) -> Option<&'static str> {
    let norm = name.replace('_', "-");
    crate::suggest::closest(&norm, Key::ALL.map(Key::name), |d, k| {
        d <= 3 && d * 2 < k.len().max(norm.len())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
