//! Worker preflight checks, named as kubeadm names them (spec §10) so that
//! `--ignore-preflight-errors=<name>|all` means the same thing with kubejoin.
//!
//! Checks that kubeadm has no name for are named in its style: `KernelModule-<name>` for a
//! module of the module set, `FileContent--proc-sys-…` for every required sysctl (kubeadm's own
//! name for the forwarding and bridge-nf checks), `SystemVerification` for cgroup v2 controllers
//! (where kubeadm's system validator checks them).

use crate::fs::root::Root;
use crate::host::modules::{self, ModuleIndex, Resolved};
use crate::host::sysctl::{self, Severity};
use crate::host::{swap, HostConfig, HostError};
use crate::sys::host::Host;
use std::fmt;
use std::path::PathBuf;

/// Capabilities host preparation and the join use: loading modules, network sysctls, swapoff
/// and the remaining privileged sysctls.
pub const REQUIRED_CAPABILITIES: &[&str] = &["CAP_SYS_MODULE", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"];

/// cgroup v2 controllers the kubelet needs (kubeadm's validator also lists `devices` and
/// `freezer`, which cgroup v2 provides without listing them in cgroup.controllers).
pub const REQUIRED_CGROUP_CONTROLLERS: &[&str] = &["cpu", "cpuset", "memory", "pids"];
/// Controllers whose absence only degrades the node (no hugepage or I/O accounting).
pub const OPTIONAL_CGROUP_CONTROLLERS: &[&str] = &["hugetlb", "io"];

/// kubeadm's default CRI socket (containerd).
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";

/// Inputs of the checks besides the host config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightConfig {
    /// The node's filesystem for the file, kubelet and CRI socket checks when it differs from
    /// the root holding `/proc` and `/sys` (an initramfs installing into `/sysroot`).
    pub node_root: Option<Root>,
    /// `--cri-socket` (`unix:///var/run/containerd/containerd.sock`; a bare path is accepted).
    pub cri_socket: String,
    /// The kubelet binary (`FileExisting-kubelet`).
    pub kubelet_path: PathBuf,
    /// The node already has a valid identity and the join is skipped: existing kubelet files
    /// are expected, so the `FileAvailable--…` checks are not run.
    pub join_skipped: bool,
    /// `--ignore-preflight-errors`: check names (any case) or `all`.
    pub ignore_errors: Vec<String>,
    /// The kubelet's port (`Port-10250`).
    pub kubelet_port: u16,
}

impl Default for PreflightConfig {
    fn default() -> Self {
        Self {
            node_root: None,
            cri_socket: DEFAULT_CRI_SOCKET.to_string(),
            kubelet_path: PathBuf::from("/usr/bin/kubelet"),
            join_skipped: false,
            ignore_errors: Vec::new(),
            kubelet_port: 10250,
        }
    }
}

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Warning,
    Error,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        })
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub status: CheckStatus,
    pub message: String,
    /// An error downgraded to a warning by `--ignore-preflight-errors`.
    pub ignored: bool,
}

/// All checks, in the order run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightReport {
    pub checks: Vec<CheckResult>,
}

impl PreflightReport {
    /// Names of the checks that are still errors.
    pub fn errors(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Error)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The check called `name`, if it ran.
    pub fn get(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// `Err(HostError::Preflight)` when any error remains (kubeadm's "preflight checks failed").
    pub fn into_result(self) -> Result<Self, HostError> {
        let failed: Vec<String> = self.errors().into_iter().map(String::from).collect();
        if failed.is_empty() {
            Ok(self)
        } else {
            Err(HostError::Preflight { failed })
        }
    }
}

impl fmt::Display for PreflightReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max("CHECK".len());
        writeln!(f, "{:<w$}  {:<7}  MESSAGE", "CHECK", "RESULT")?;
        for c in &self.checks {
            let msg = if c.ignored {
                format!("(ignored error) {}", c.message)
            } else {
                c.message.clone()
            };
            let row = format!("{:<w$}  {:<7}  {}", c.name, c.status.to_string(), msg);
            writeln!(f, "{}", row.trim_end())?;
        }
        Ok(())
    }
}

struct Checks<'a> {
    ignore: Vec<String>,
    out: &'a mut Vec<CheckResult>,
}

impl Checks<'_> {
    fn push(&mut self, name: impl Into<String>, status: CheckStatus, message: impl Into<String>) {
        let name = name.into();
        let lower = name.to_ascii_lowercase();
        let ignored =
            status == CheckStatus::Error && self.ignore.iter().any(|i| i == "all" || *i == lower);
        let status = if ignored {
            CheckStatus::Warning
        } else {
            status
        };
        self.out.push(CheckResult {
            name,
            status,
            message: message.into(),
            ignored,
        });
    }
    fn ok(&mut self, name: impl Into<String>, message: impl Into<String>) {
        self.push(name, CheckStatus::Ok, message);
    }
}

/// `FileAvailable--etc-kubernetes-kubelet.conf` for `/etc/kubernetes/kubelet.conf`: kubeadm
/// joins the kind and the path with `-` after turning every `/` into `-` (hence the `--`).
pub fn file_check_name(kind: &str, node_path: &str) -> String {
    format!("{kind}-{}", node_path.replace('/', "-"))
}

/// Runs the worker checks. `root` holds `/proc`, `/sys` and `/lib/modules`; the node's files
/// are under `cfg.node_root` (or `root`). Never fails: every problem is a row of the report.
pub fn preflight(
    cfg: &PreflightConfig,
    host: &HostConfig,
    root: &Root,
    sys: &dyn Host,
) -> PreflightReport {
    let mut out = Vec::new();
    let mut c = Checks {
        ignore: cfg
            .ignore_errors
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect(),
        out: &mut out,
    };
    let node = cfg.node_root.as_ref().unwrap_or(root);

    // IsPrivilegedUser (kubeadm: euid 0), plus the capabilities that root may have lost in a
    // container or under a restricted unit.
    let name = "IsPrivilegedUser";
    if sys.euid() != 0 {
        c.push(name, CheckStatus::Error, "user is not running as root");
    } else {
        match sys.effective_capabilities() {
            Ok(caps) => {
                let missing: Vec<&str> = REQUIRED_CAPABILITIES
                    .iter()
                    .copied()
                    .filter(|k| !caps.contains(*k))
                    .collect();
                if missing.is_empty() {
                    c.ok(name, "");
                } else {
                    c.push(
                        name,
                        CheckStatus::Error,
                        format!("missing capabilities: {}", missing.join(", ")),
                    );
                }
            }
            Err(e) => c.push(
                name,
                CheckStatus::Warning,
                format!("cannot read the capability set: {e}"),
            ),
        }
    }

    if !cfg.join_skipped {
        for p in [
            "/etc/kubernetes/kubelet.conf",
            "/etc/kubernetes/bootstrap-kubelet.conf",
        ] {
            file_available(&mut c, node, p);
        }
    }

    cri(&mut c, node, &cfg.cri_socket, sys);

    match swap::active(root) {
        Ok(a) if a.is_empty() => c.ok("Swap", ""),
        Ok(a) => {
            let list = a
                .iter()
                .map(|s| s.path.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if host.keep_swap {
                c.push(
                    "Swap",
                    CheckStatus::Warning,
                    format!("swap is on ({list}): the kubelet must be properly configured to use swap (NodeSwap, failSwapOn: false)"),
                );
            } else {
                c.push(
                    "Swap",
                    CheckStatus::Error,
                    format!("swap is on ({list}): the kubelet refuses to start with swap unless configured for it; host preparation turns it off unless keep_swap is set"),
                );
            }
        }
        Err(e) => c.push("Swap", CheckStatus::Warning, e.to_string()),
    }

    kubelet_binary(&mut c, node, &cfg.kubelet_path);
    cgroups(&mut c, root);
    kernel_modules(&mut c, host, root, sys);
    sysctls(&mut c, host, root);

    let port = format!("Port-{}", cfg.kubelet_port);
    match sys.bind_tcp(cfg.kubelet_port) {
        Ok(()) => c.ok(port, ""),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => c.push(
            port,
            CheckStatus::Error,
            format!("Port {} is in use", cfg.kubelet_port),
        ),
        Err(e) => c.push(
            port,
            CheckStatus::Error,
            format!("cannot listen on port {}: {e}", cfg.kubelet_port),
        ),
    }

    if !cfg.join_skipped {
        file_available(&mut c, node, "/etc/kubernetes/pki/ca.crt");
    }
    PreflightReport { checks: out }
}

fn file_available(c: &mut Checks<'_>, node: &Root, p: &str) {
    let name = file_check_name("FileAvailable", p);
    match node.join(p) {
        Ok(real) if real.symlink_metadata().is_ok() => {
            c.push(name, CheckStatus::Error, format!("{p} already exists"))
        }
        Ok(_) => c.ok(name, ""),
        Err(e) => c.push(name, CheckStatus::Error, e.to_string()),
    }
}

fn cri(c: &mut Checks<'_>, node: &Root, endpoint: &str, sys: &dyn Host) {
    let path = match endpoint.strip_prefix("unix://") {
        Some(p) => p,
        None if endpoint.starts_with('/') => endpoint,
        None => {
            c.push(
                "CRI",
                CheckStatus::Warning,
                format!("cannot check CRI endpoint {endpoint}: only unix sockets are checked"),
            );
            return;
        }
    };
    match node.join(path) {
        Ok(real) => match sys.connect_unix(&real) {
            Ok(_) => c.ok("CRI", ""),
            Err(e) => c.push(
                "CRI",
                CheckStatus::Error,
                format!(
                    "container runtime is not running: connecting to {endpoint}: {}",
                    crate::error::io_text(&e)
                ),
            ),
        },
        Err(e) => c.push("CRI", CheckStatus::Error, e.to_string()),
    }
}

fn kubelet_binary(c: &mut Checks<'_>, node: &Root, path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let name = "FileExisting-kubelet";
    let shown = path.display();
    match node.join(path).map(std::fs::metadata) {
        Ok(Ok(m)) if m.is_file() && m.permissions().mode() & 0o111 != 0 => c.ok(name, ""),
        Ok(Ok(_)) => c.push(
            name,
            CheckStatus::Error,
            format!("{shown} is not an executable file"),
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => c.push(
            name,
            CheckStatus::Error,
            format!("kubelet not found at {shown}"),
        ),
        Ok(Err(e)) => c.push(name, CheckStatus::Error, format!("checking {shown}: {e}")),
        Err(e) => c.push(name, CheckStatus::Error, e.to_string()),
    }
}

fn cgroups(c: &mut Checks<'_>, root: &Root) {
    let name = "SystemVerification";
    let node = "/sys/fs/cgroup/cgroup.controllers";
    let content = root
        .join(node)
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok());
    let Some(content) = content else {
        c.push(
            name,
            CheckStatus::Error,
            format!("cgroup v2 is not mounted at /sys/fs/cgroup ({node} is missing)"),
        );
        return;
    };
    let have: Vec<&str> = content.split_whitespace().collect();
    let missing: Vec<&str> = REQUIRED_CGROUP_CONTROLLERS
        .iter()
        .copied()
        .filter(|k| !have.contains(k))
        .collect();
    let optional: Vec<&str> = OPTIONAL_CGROUP_CONTROLLERS
        .iter()
        .copied()
        .filter(|k| !have.contains(k))
        .collect();
    if !missing.is_empty() {
        c.push(
            name,
            CheckStatus::Error,
            format!(
                "cgroup v2 controllers missing: {} (have: {})",
                missing.join(" "),
                have.join(" ")
            ),
        );
    } else if !optional.is_empty() {
        c.push(
            name,
            CheckStatus::Warning,
            format!(
                "optional cgroup v2 controllers missing: {}",
                optional.join(" ")
            ),
        );
    } else {
        c.ok(name, "");
    }
}

fn kernel_modules(c: &mut Checks<'_>, host: &HostConfig, root: &Root, sys: &dyn Host) {
    let mut notes = Vec::new();
    let requests = match modules::module_set(host, root, &mut notes) {
        Ok(r) => r,
        Err(e) => {
            c.push(
                "KernelModules",
                CheckStatus::Warning,
                format!("cannot list the module set: {e}"),
            );
            return;
        }
    };
    let required: Vec<_> = requests.into_iter().filter(|r| r.required).collect();
    if required.is_empty() {
        return;
    }
    // The index tells built-ins (no /sys/module entry unless they have parameters) and aliases.
    let index = sys
        .uname_release()
        .ok()
        .and_then(|r| ModuleIndex::load(root, &r).ok());
    for r in required {
        let name = format!("KernelModule-{}", modules::normalize(&r.name));
        let ok = modules::is_loaded(root, &r.name)
            || match index.as_ref().map(|i| i.resolve(&r.name)) {
                Some(Resolved::Builtin(_)) => true,
                Some(Resolved::Modules(ms)) => ms.iter().all(|m| modules::is_loaded(root, m)),
                _ => false,
            };
        if ok {
            c.ok(name, "");
        } else {
            c.push(
                name,
                CheckStatus::Error,
                format!("module {} is not loaded ({})", r.name, r.source),
            );
        }
    }
}

fn sysctls(c: &mut Checks<'_>, host: &HostConfig, root: &Root) {
    for r in sysctl::required(host) {
        let keys = if crate::host::fnmatch::is_pattern(&r.key) {
            sysctl::expand(root, &r.key)
        } else {
            vec![r.key.clone()]
        };
        let name = file_check_name("FileContent", &sysctl::node_path(&r.key).to_string_lossy());
        let severity = match r.severity {
            Severity::Error => CheckStatus::Error,
            Severity::Warning => CheckStatus::Warning,
        };
        let mut problems = Vec::new();
        for k in &keys {
            let node = sysctl::node_path(k);
            match root.join(&node).map(std::fs::read_to_string) {
                Ok(Ok(v)) if sysctl::same_value(&v, &r.value) => {}
                Ok(Ok(_)) => problems.push(format!(
                    "{} contents are not set to {}",
                    node.display(),
                    r.value
                )),
                Ok(Err(_)) => {
                    let hint = sysctl::module_for(k)
                        .map(|m| format!(" (load module {m})"))
                        .unwrap_or_default();
                    problems.push(format!("{} does not exist{hint}", node.display()));
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            c.ok(name, "");
        } else {
            c.push(
                name,
                severity,
                format!("{} [{}]", problems.join("; "), r.why),
            );
        }
    }
}
