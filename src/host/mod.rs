//! Host preparation: kernel modules, sysctls, swap, preflight — planned as data, applied through
//! the syscall seam, verified.
//!
//! [`plan`] only reads: the running kernel's release, its module index under
//! `/lib/modules/<release>`, `/sys/module`, `/proc/cmdline`, modules-load.d and sysctl.d, and
//! `/proc/swaps`. It returns a [`HostPlan`] that `--dry-run` prints. [`apply`] carries the plan
//! out in a fixed order — modules first (a module creates its own sysctls, e.g. `net.bridge.*`),
//! then sysctls (each read back), then swap — logging one line per action with its duration.
//! [`preflight()`] checks the node the way kubeadm's worker preflight does, under the same check
//! names, so `--ignore-preflight-errors` means the same thing.
//!
//! Precedence, lowest first: sysctls — built-in defaults, sysctl.d files (systemd's order, then
//! `/etc/sysctl.conf`), [`HostConfig::sysctls`], `sysctl.*` on the kernel command line; module
//! parameters — [`HostConfig::module_params`], then `module.param=` on the command line (the
//! kernel keeps the last value). Modules from defaults and config are required; modules-load.d
//! entries and soft dependencies are best effort, as systemd-modules-load and modprobe treat them.
//!
//! Every file access goes through a [`Root`]: it must be where the *running* kernel's `/proc`,
//! `/sys` and `/lib/modules` are — `/` on a booted node and also inside an initramfs (whose own
//! `/lib/modules` holds the modules), a temporary directory in tests. Every syscall goes through
//! [`Host`].

pub mod cmdline;
pub mod coldplug;
pub mod confdirs;
pub mod filesystems;
pub mod fnmatch;
pub mod modules;
pub mod preflight;
pub mod swap;
pub mod sysctl;
#[cfg(test)]
pub(crate) mod testutil;

pub use modules::{ModuleParam, ModulePlan};
pub use preflight::{preflight, CheckStatus, PreflightConfig, PreflightReport};
pub use sysctl::SysctlSetting;

use crate::error::{Class, Classify};
use crate::fs::root::{Root, RootError};
use crate::sys::host::Host;
use crate::time::duration::format as fmt_duration;
use modules::{LoadMethod, RequestOutcome};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};
use swap::SwapArea;
use sysctl::SysctlOutcome;

/// kube-proxy's mode: decides which extra modules the node needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    #[default]
    Iptables,
    Ipvs,
    Nftables,
    /// No kube-proxy (e.g. a CNI that replaces it).
    None,
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Iptables => "iptables",
            Self::Ipvs => "ipvs",
            Self::Nftables => "nftables",
            Self::None => "none",
        })
    }
}

impl FromStr for ProxyMode {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, HostError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "iptables" | "" => Ok(Self::Iptables),
            "ipvs" => Ok(Self::Ipvs),
            "nftables" => Ok(Self::Nftables),
            "none" => Ok(Self::None),
            _ => Err(HostError::ProxyMode {
                value: s.to_string(),
            }),
        }
    }
}

/// What host preparation should achieve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Extra modules (names or aliases), on top of the defaults.
    pub modules: Vec<String>,
    /// Drop the default modules (`overlay`, `br_netfilter`) and the proxy mode's modules.
    pub skip_default_modules: bool,
    /// Module parameters from config; the kernel command line's `module.param=value` come
    /// after them and win.
    pub module_params: Vec<ModuleParam>,
    /// Extra sysctls (`key` dotted or slashed, `-key` to ignore failure; globs allowed); they
    /// override defaults and sysctl.d files and are required by preflight.
    pub sysctls: Vec<(String, String)>,
    /// Drop the default sysctls (forwarding, bridge netfilter, protect-kernel-defaults).
    pub skip_default_sysctls: bool,
    /// Keep active swap (the kubelet is configured for NodeSwap / `failSwapOn: false`).
    pub keep_swap: bool,
    pub proxy_mode: ProxyMode,
    /// Also enable IPv6 forwarding.
    pub dual_stack: bool,
    /// Load what `/etc|/run|/usr/local/lib|/usr/lib/modules-load.d/*.conf` list (best effort).
    pub read_modules_load_d: bool,
    /// Apply `sysctl.d` files and `/etc/sysctl.conf`.
    pub read_sysctl_d: bool,
    /// Take `module.param=value` and `sysctl.key=value` from `/proc/cmdline`.
    pub read_kernel_cmdline: bool,
    /// Load the image's drivers ([`modules::DRIVERS_PATH`]) for the devices present
    /// ([`coldplug`]); nothing happens where no image lists drivers.
    pub coldplug: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            modules: Vec::new(),
            skip_default_modules: false,
            module_params: Vec::new(),
            sysctls: Vec::new(),
            skip_default_sysctls: false,
            keep_swap: false,
            proxy_mode: ProxyMode::default(),
            dual_stack: false,
            read_modules_load_d: true,
            read_sysctl_d: true,
            read_kernel_cmdline: true,
            coldplug: true,
        }
    }
}

/// Everything host preparation will do, computed without touching the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    /// `uname -r`.
    pub kernel_release: String,
    pub modules: ModulePlan,
    /// In application order; glob keys are expanded when applied (after modules are loaded).
    pub sysctls: Vec<SysctlSetting>,
    /// Active swap areas.
    pub swaps: Vec<SwapArea>,
    pub keep_swap: bool,
    /// Things worth telling a person: skipped lines, overridden values, unapplied parameters.
    pub notes: Vec<String>,
}

/// Builds the plan for `cfg` from the host's state under `root`. Reads only.
pub fn plan(cfg: &HostConfig, root: &Root, sys: &dyn Host) -> Result<HostPlan, HostError> {
    let _step = crate::trace::span("host-plan", "module index, modules-load.d, sysctl.d, swaps");
    let release = sys
        .uname_release()
        .map_err(|source| HostError::Uname { source })?;
    let mut notes = Vec::new();
    let args = if cfg.read_kernel_cmdline {
        let p = root.join("/proc/cmdline")?;
        match std::fs::read_to_string(&p) {
            Ok(s) => cmdline::split(&s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                notes.push(
                    "/proc/cmdline is missing: no parameters taken from the kernel command line"
                        .into(),
                );
                Vec::new()
            }
            Err(source) => return Err(HostError::Read { path: p, source }),
        }
    } else {
        Vec::new()
    };
    let modules = modules::plan_modules(cfg, root, &release, &args, &mut notes)?;
    let sysctls = sysctl::plan_sysctls(cfg, root, &args, &mut notes)?;
    let swaps = swap::active(root)?;
    Ok(HostPlan {
        kernel_release: release,
        modules,
        sysctls,
        swaps,
        keep_swap: cfg.keep_swap,
        notes,
    })
}

/// One thing [`apply`] did (or tried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    LoadModule {
        name: String,
        path: PathBuf,
        method: LoadMethod,
        /// Why, when not a request of the plan: the device (its modalias) a coldplugged
        /// driver is for, or the filesystem being mounted.
        why: Option<String>,
    },
    /// `key` dotted, as sysctl(8) prints it.
    SetSysctl {
        key: String,
        value: String,
        source: String,
    },
    Swapoff {
        path: String,
    },
    KeepSwap {
        path: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LoadModule {
                name,
                path,
                method,
                why,
            } => {
                write!(f, "load module {name} from {} ({method})", path.display())?;
                match why {
                    Some(why) => write!(f, " for {why}"),
                    None => Ok(()),
                }
            }
            Self::SetSysctl { key, value, source } => write!(f, "set {key} = {value} ({source})"),
            Self::Swapoff { path } => write!(f, "turn off swap {path}"),
            Self::KeepSwap { path } => write!(f, "keep swap {path}"),
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Nothing to do: already loaded, already set, already off.
    AlreadyDone,
    /// Not attempted (a dependency failed, or swap kept on purpose).
    Skipped(String),
    /// Failed, but it was best effort (`-key` sysctl, modules-load.d, soft dependency).
    Ignored(String),
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Done => f.write_str("done"),
            Self::AlreadyDone => f.write_str("nothing to do (already in place)"),
            Self::Skipped(why) => write!(f, "skipped: {why}"),
            Self::Ignored(why) => write!(f, "failed (ignored): {why}"),
            Self::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// One action with its outcome and duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub action: Action,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// What [`apply`] did, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostReport {
    pub actions: Vec<ActionRecord>,
}

impl HostReport {
    fn record(&mut self, action: Action, outcome: Outcome, started: Instant) {
        self.record_took(action, outcome, started, started.elapsed());
    }

    fn record_took(
        &mut self,
        action: Action,
        outcome: Outcome,
        started: Instant,
        duration: Duration,
    ) {
        if let Action::LoadModule { name, .. } | Action::Swapoff { path: name } = &action {
            let (kind, why) = match &action {
                Action::LoadModule { why, .. } => ("module", why.as_deref()),
                _ => ("swapoff", None),
            };
            crate::trace::record_took(
                kind,
                || match why {
                    Some(why) => format!("{name}: {outcome} (for {why})"),
                    None => format!("{name}: {outcome}"),
                },
                started,
                duration,
            );
        }
        match &outcome {
            Outcome::Failed(_) | Outcome::Ignored(_) => {
                crate::warn!("host: {action}: {outcome} ({})", fmt_duration(duration))
            }
            _ => crate::info!("host: {action}: {outcome} ({})", fmt_duration(duration)),
        }
        self.actions.push(ActionRecord {
            action,
            outcome,
            duration,
        });
    }
}

impl fmt::Display for HostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.actions {
            writeln!(
                f,
                "{}: {} ({})",
                r.action,
                r.outcome,
                fmt_duration(r.duration)
            )?;
        }
        Ok(())
    }
}

/// Carries out `plan`: modules in dependency order, then sysctls (read back), then swap.
/// Keeps going after a failure so one run shows every problem; modules whose dependency
/// failed are skipped. Fails with [`HostError::Apply`] (holding the report) when a required
/// action failed.
pub fn apply(plan: &HostPlan, root: &Root, sys: &dyn Host) -> Result<HostReport, HostError> {
    let mut report = HostReport::default();
    let mut failures = Vec::new();
    for n in &plan.notes {
        crate::info!("host: note: {n}");
    }

    for (l, loaded) in plan
        .modules
        .loads
        .iter()
        .zip(load_all(&plan.modules.loads, root, sys))
    {
        let action = Action::LoadModule {
            name: l.name.clone(),
            path: l.path.clone(),
            method: l.method,
            why: None,
        };
        if let Some(e) = loaded.error {
            failures.push(e);
        }
        report.record_took(action, loaded.outcome, loaded.started, loaded.took);
    }
    if let Some(cp) = &plan.modules.coldplug {
        coldplug::run(cp, &plan.modules, root, sys, &mut report);
    }

    let sysctls_started = Instant::now();
    let explicit = sysctl::explicit_keys(&plan.sysctls);
    for s in &plan.sysctls {
        let keys = if s.glob {
            let keys: Vec<String> = sysctl::expand(root, &s.key)
                .into_iter()
                .filter(|k| !explicit.contains(k))
                .collect();
            if keys.is_empty() {
                crate::debug!(
                    "host: sysctl pattern {} ({}) matches nothing",
                    s.name(),
                    s.source
                );
            }
            keys
        } else {
            vec![s.key.clone()]
        };
        for k in keys {
            let started = Instant::now();
            let action = Action::SetSysctl {
                key: sysctl::to_dotted(&k),
                value: s.value.clone(),
                source: s.source.clone(),
            };
            let outcome = match sysctl::write(root, &k, &s.value, sys) {
                Ok(SysctlOutcome::Written) => Outcome::Done,
                Ok(SysctlOutcome::AlreadySet) => Outcome::AlreadyDone,
                Ok(SysctlOutcome::WrittenUnverified) => {
                    crate::debug!(
                        "host: {} is write-only: not read back",
                        sysctl::to_dotted(&k)
                    );
                    Outcome::Done
                }
                Err(e) if s.ignore_failure => Outcome::Ignored(e.to_string()),
                Err(e) => {
                    let o = Outcome::Failed(e.to_string());
                    failures.push(e);
                    o
                }
            };
            report.record(action, outcome, started);
        }
    }

    if !plan.sysctls.is_empty() {
        crate::trace::record(
            "sysctls",
            || format!("{} setting(s) written and read back", plan.sysctls.len()),
            sysctls_started,
        );
    }
    let mut turned_off = Vec::new();
    for a in &plan.swaps {
        let started = Instant::now();
        if plan.keep_swap {
            report.record(
                Action::KeepSwap {
                    path: a.path.clone(),
                },
                Outcome::Skipped(
                    "keep_swap is set: the kubelet must be configured for swap".into(),
                ),
                started,
            );
            continue;
        }
        let action = Action::Swapoff {
            path: a.path.clone(),
        };
        let outcome = match sys.swapoff(std::path::Path::new(&a.path)) {
            Ok(()) => {
                turned_off.push(a.path.clone());
                Outcome::Done
            }
            // EINVAL: not an active swap area any more (turned off since planning).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Outcome::AlreadyDone,
            Err(e) => {
                let err = HostError::Swapoff {
                    path: a.path.clone(),
                    errno: e.raw_os_error().unwrap_or(0),
                    meaning: swap::errno_meaning(&e),
                };
                let o = Outcome::Failed(err.to_string());
                failures.push(err);
                o
            }
        };
        report.record(action, outcome, started);
    }
    if !turned_off.is_empty() {
        // Verify: the kernel drops an area from /proc/swaps once swapoff has returned.
        let still: Vec<SwapArea> = swap::active(root)?;
        for p in turned_off {
            if still.iter().any(|a| a.path == p) {
                failures.push(HostError::SwapStillActive { path: p });
            }
        }
    }

    if failures.is_empty() {
        Ok(report)
    } else {
        Err(HostError::Apply {
            failures,
            report: Box::new(report),
        })
    }
}

impl fmt::Display for HostPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "host preparation plan for kernel {}",
            self.kernel_release
        )?;
        let kc = self
            .modules
            .kernel_compression
            .map_or("none".to_string(), |c| c.to_string());
        writeln!(f, "modules (in-kernel decompression: {kc}):")?;
        if self.modules.requests.is_empty() && self.modules.coldplug.is_none() {
            writeln!(f, "  (none requested)")?;
        }
        for l in &self.modules.loads {
            write!(
                f,
                "  load {} from {} ({})",
                l.name,
                l.path.display(),
                l.method
            )?;
            if !l.params.is_empty() {
                write!(f, " params: {}", l.params.join(" "))?;
            }
            let opt = if l.required { "" } else { ", best effort" };
            writeln!(f, " [for {}{opt}]", l.wanted_by.join(", "))?;
        }
        for r in &self.modules.requests {
            let what = match &r.outcome {
                RequestOutcome::Load { already, .. } if already.is_empty() => continue,
                RequestOutcome::Load { already, .. } => {
                    format!("dependencies already loaded: {}", already.join(", "))
                }
                RequestOutcome::AlreadyLoaded => "already loaded".to_string(),
                RequestOutcome::Builtin => "built into the kernel".to_string(),
                RequestOutcome::NotFound => "not found, skipped".to_string(),
            };
            writeln!(f, "  {}: {what} ({})", r.request.name, r.request.source)?;
        }
        if let Some(cp) = &self.modules.coldplug {
            writeln!(
                f,
                "  coldplug: for the devices present, the drivers of {} that match them: {}",
                cp.source.display(),
                if cp.drivers.is_empty() {
                    "(none listed)".to_string()
                } else {
                    cp.drivers.join(" ")
                }
            )?;
        }
        writeln!(f, "sysctls:")?;
        if self.sysctls.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for s in &self.sysctls {
            write!(f, "  {s} ({}", s.source)?;
            if s.glob {
                write!(f, "; pattern, expanded after modules load")?;
            }
            for (src, v) in &s.overrides {
                write!(f, "; overrides {v} from {src}")?;
            }
            writeln!(f, ")")?;
        }
        writeln!(f, "swap:")?;
        if self.swaps.is_empty() {
            writeln!(f, "  no active swap")?;
        }
        for a in &self.swaps {
            let verb = if self.keep_swap { "keep" } else { "turn off" };
            writeln!(f, "  {verb} {a}")?;
        }
        if !self.notes.is_empty() {
            writeln!(f, "notes:")?;
            for n in &self.notes {
                writeln!(f, "  {n}")?;
            }
        }
        Ok(())
    }
}

/// Host preparation errors. Each names the action and the module, path or key.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("reading the running kernel's release (uname)")]
    Uname {
        #[source]
        source: std::io::Error,
    },
    #[error("kernel release {release:?} cannot name a module directory")]
    BadRelease { release: String },
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("parsing {}:{line}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("reading module info of {}", path.display())]
    ModInfo {
        path: PathBuf,
        #[source]
        source: modules::ModInfoError,
    },
    #[error("module {module} depends on {depends}, which is not in the module set")]
    UnresolvedDependency { module: String, depends: String },
    #[error("module {module}: dependency cycle {cycle}")]
    DependencyCycle { module: String, cycle: String },
    #[error("module {name} is needed, but kernel {release} cannot load modules: /proc/modules is missing (a kernel built without loadable module support) and so is /lib/modules/{release}")]
    NoModuleSupport { name: String, release: String },
    #[error("module {name} not found for kernel {release}: {}", not_found_reason(release, *index_missing))]
    ModuleNotFound {
        name: String,
        release: String,
        index_missing: bool,
    },
    #[error("invalid module parameter {param:?}{}: {reason}", if module.is_empty() { String::new() } else { format!(" for module {module}") })]
    ModuleParam {
        module: String,
        param: String,
        reason: String,
    },
    #[error("opening module {module} file {}", path.display())]
    ModuleOpen {
        module: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("decompressing module {module} file {} ({format}): {reason}", path.display())]
    Decompress {
        module: String,
        path: PathBuf,
        format: modules::Compression,
        reason: modules::compress::DecompressError,
    },
    #[error("loading module {module} from {}: {meaning} ({})", path.display(), errno_name(*errno))]
    ModuleLoad {
        module: String,
        path: PathBuf,
        errno: i32,
        meaning: String,
    },
    #[error("invalid proxy mode {value:?} (expected iptables, ipvs, nftables or none)")]
    ProxyMode { value: String },
    #[error("invalid sysctl configuration: {reason}")]
    Sysctl { reason: sysctl::AssignmentError },
    #[error("setting sysctl {key}: {} does not exist{}", path.display(), module.as_ref().map(|m| format!(" (load module {m} first)")).unwrap_or_default())]
    SysctlMissing {
        key: String,
        path: PathBuf,
        module: Option<String>,
    },
    #[error("setting sysctl {key} = {value} (writing {})", path.display())]
    SysctlWrite {
        key: String,
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("setting sysctl {key}: wrote {wanted:?} but {} reads back {got:?} (the kernel refused or adjusted the value)", path.display())]
    SysctlMismatch {
        key: String,
        path: PathBuf,
        wanted: String,
        got: String,
    },
    #[error("turning off swap {path}: {meaning} ({})", errno_name(*errno))]
    Swapoff {
        path: String,
        errno: i32,
        meaning: String,
    },
    #[error("swap {path} is still listed in /proc/swaps after swapoff")]
    SwapStillActive { path: String },
    #[error("host preparation failed: {}", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Apply {
        failures: Vec<HostError>,
        report: Box<HostReport>,
    },
    #[error("preflight checks failed: {}", failed.join(", "))]
    Preflight { failed: Vec<String> },
}

fn not_found_reason(release: &str, index_missing: bool) -> String {
    if index_missing {
        format!("/lib/modules/{release}/modules.dep is missing (depmod never ran for this kernel)")
    } else {
        "is the module shipped in the image?".to_string()
    }
}

/// `ENOEXEC`-style name of an errno (for messages a person can search for).
pub fn errno_name(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    if e == nix::errno::Errno::UnknownErrno {
        format!("errno {errno}")
    } else {
        format!("{e:?}")
    }
}

impl Classify for HostError {
    fn class(&self) -> Class {
        match self {
            Self::Parse { .. }
            | Self::ModuleParam { .. }
            | Self::ProxyMode { .. }
            | Self::Sysctl { .. } => Class::Usage,
            _ => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::NoModuleSupport { .. } => Some(
                "on such a kernel the modules the node needs (overlay, br_netfilter, …) must be built in; if they are, \
                 or the host is prepared some other way, skip host preparation: `kubejoin join --skip-phases host`"
                    .into(),
            ),
            Self::ModuleNotFound { release, index_missing: true, .. } => Some(format!(
                "generate modules.dep for {release} when building the image (kubejoin's image builder does it without depmod)"
            )),
            Self::ModuleNotFound { name, .. } => Some(format!(
                "add {name} to the image's module list, or remove it from the module set (config `modules`, modules-load.d)"
            )),
            Self::ModuleLoad { errno, .. } => match *errno {
                libc::EPERM => Some("run as root with CAP_SYS_MODULE; check kernel.modules_disabled and lockdown".into()),
                libc::ENOEXEC => Some("ship the modules built for the running kernel (`uname -r`)".into()),
                libc::EKEYREJECTED | libc::EBADMSG | libc::ENOKEY | libc::EKEYEXPIRED => {
                    Some("ship modules signed for this kernel, or boot without signature enforcement".into())
                }
                _ => Some("the kernel log (dmesg) says more".into()),
            },
            Self::SysctlMissing { module: Some(m), .. } => {
                Some(format!("add {m} to the module set so it is loaded before sysctls are set"))
            }
            Self::Swapoff { .. } | Self::SwapStillActive { .. } => {
                Some("free memory, or set keep_swap and configure the kubelet for swap (NodeSwap)".into())
            }
            Self::Apply { failures, .. } => failures.iter().find_map(Classify::hint),
            Self::Preflight { .. } => Some(
                "fix the errors above, or downgrade them with --ignore-preflight-errors=<name>[,<name>…] (or all)".into(),
            ),
            _ => None,
        }
    }
}

mod load;
use load::load_all;
pub use load::split_for_boot;

#[cfg(test)]
mod tests;
