//! Validated inputs ("parse, don't validate"): newtypes that can only hold valid values, and the
//! [`JoinPlan`] that the CLI (and later the kernel command line and metadata) produce.

pub mod boot;
pub mod build;
pub mod certificate_key;
pub mod config_pin;
pub mod control_plane;
pub mod endpoint;
pub mod json;
pub mod key;
pub mod merge;
pub mod network;
pub mod node_name;
pub mod platform;
#[cfg(test)]
mod testutil;
pub mod values;
pub mod version;

use crate::discovery;
use node_name::NodeName;
use std::path::PathBuf;
use std::time::Duration;

/// kubeadm's default CRI socket (containerd); owned by the host checks that probe it.
pub use crate::host::preflight::DEFAULT_CRI_SOCKET;

/// What happens once the node's files are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffMode {
    /// Replace this process with the kubelet.
    Exec,
    /// Exit 0 and let the service manager start the kubelet.
    None,
}

/// A complete, validated description of one join. The only way to run a join.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    pub discovery: discovery::Options,
    /// `--node-name`; `None` means the lower-cased hostname, resolved when the join runs.
    pub node_name: Option<NodeName>,
    /// Container runtime endpoint (`unix://` scheme added when missing, as kubeadm does).
    pub cri_socket: String,
    /// `kubeletExtraArgs` / `--kubelet-arg name=value`, in the order given (duplicates allowed).
    pub kubelet_extra_args: Vec<(String, String)>,
    /// Taints to register with, `key=value:Effect` or `key:Effect`.
    pub taints: Vec<String>,
    /// Where the node's filesystem is (`/`, `/sysroot`, or a temp dir in tests).
    pub root: PathBuf,
    /// Discover for real, print what would be done, write nothing.
    pub dry_run: bool,
    /// Re-join even when a valid kubelet.conf exists, or it belongs to another cluster.
    pub force: bool,
    /// Bound of the wait for the CSR to be approved and issued (default 5 m).
    pub tls_bootstrap_timeout: Duration,
    /// Overall deadline of the join, every phase included (`--timeout`, default 10 m).
    pub timeout: Duration,
    pub handoff: HandoffMode,
    /// The kubelet binary for `HandoffMode::Exec` (default `/usr/bin/kubelet`).
    pub kubelet_path: PathBuf,
    /// Phases to skip (`--skip-phases`), lower-case names.
    pub skip_phases: Vec<String>,
    /// Preflight checks to downgrade to warnings (`--ignore-preflight-errors`), lower-cased.
    pub ignore_preflight_errors: Vec<String>,
    /// Host preparation (modules, sysctls, swap) run before discovery when the node is this host.
    pub host: crate::host::HostConfig,
    /// How the network is brought up, when a boot source described it (`ip=` or a
    /// KubejoinConfiguration's `network`). PID-1 mode applies it before discovery; on a running
    /// machine the network is already up and this is only reported.
    pub network: Option<network::NetworkPlan>,
    /// `--control-plane`: join as a control-plane node (`None`: a worker).
    pub control_plane: Option<control_plane::ControlPlanePlan>,
    /// Where the clock phase asks the time before discovery (docs/time.md).
    pub time: TimePlan,
}

/// The SNTP servers of a join and the layer that named them (`--ntp`, `kubejoin.ntp=`, `ntp:`,
/// DHCP option 42, the platform's time source), taken whole from the highest layer naming any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimePlan {
    /// In the order given; empty when none was named or SNTP is off.
    pub servers: Vec<crate::clock::client::Server>,
    /// The layer they came from (`flag`, `cmdline`, `file:…`, `metadata:aws`, `dhcp`,
    /// `platform:aws`); `None` when no layer named any.
    pub source: Option<String>,
    /// `off`/`none` was given: no SNTP even where a lower layer names servers.
    pub off: bool,
}

impl TimePlan {
    /// The plan of `ntp` values (`host[:port]` or `off`, as [`values::Values::set`] checked them)
    /// from `source`.
    pub fn of(
        values: &[String],
        source: &str,
    ) -> Result<Self, crate::clock::client::ServerSpecError> {
        let off = values.iter().any(|v| v == values::NTP_OFF);
        let servers = if off {
            Vec::new()
        } else {
            values
                .iter()
                .map(|v| crate::clock::client::Server::parse(v))
                .collect::<Result<_, _>>()?
        };
        Ok(Self {
            servers,
            source: Some(source.to_string()),
            off,
        })
    }

    /// For `kubejoin plan` and the log: `off (from cmdline)`, `10.0.0.1:123, … (from dhcp)`,
    /// `none`.
    pub fn describe(&self) -> String {
        match (&self.source, self.off) {
            (Some(src), true) => format!("off (from {src})"),
            (Some(src), false) => format!(
                "{} (from {src})",
                self.servers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, _) => "none".into(),
        }
    }
}
