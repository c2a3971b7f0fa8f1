//! Sysctls: the defaults a node needs, `sysctl.d` files in systemd-sysctl's format and
//! precedence, config and `sysctl.*` from the kernel command line; written to `/proc/sys` and
//! read back.

use crate::fs::root::Root;
use crate::host::{cmdline, confdirs, fnmatch, HostConfig, HostError};
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

/// How much a wrong value of a required sysctl matters to preflight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Pods or services break (forwarding, bridge netfilter): an error.
    Error,
    /// Only the kubelet's protectKernelDefaults mode would refuse it: a warning.
    Warning,
}

/// A sysctl value Kubernetes needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    /// Path form (`net/ipv4/ip_forward`), or a glob pattern in path form.
    pub key: String,
    pub value: String,
    pub severity: Severity,
    pub why: &'static str,
}

/// The sysctls a node needs for `cfg`: defaults (unless skipped) and config values.
pub fn required(cfg: &HostConfig) -> Vec<Required> {
    let mut out = Vec::new();
    if !cfg.skip_default_sysctls {
        let core = "default";
        let mut push = |k: &str, v: &str, severity, why| {
            out.push(Required {
                key: to_path(k),
                value: v.to_string(),
                severity,
                why,
            });
        };
        push(
            "net.bridge.bridge-nf-call-iptables",
            "1",
            Severity::Error,
            core,
        );
        push(
            "net.bridge.bridge-nf-call-ip6tables",
            "1",
            Severity::Error,
            core,
        );
        push("net.ipv4.ip_forward", "1", Severity::Error, core);
        if cfg.dual_stack {
            push(
                "net.ipv6.conf.all.forwarding",
                "1",
                Severity::Error,
                "default (dual-stack)",
            );
        }
        // The kubelet sets these itself unless protectKernelDefaults is on, in which case it
        // refuses to start when they differ; setting them here makes both modes work.
        let pkd = "kubelet protect-kernel-defaults";
        push("vm.overcommit_memory", "1", Severity::Warning, pkd);
        push("vm.panic_on_oom", "0", Severity::Warning, pkd);
        push("kernel.panic", "10", Severity::Warning, pkd);
        push("kernel.panic_on_oops", "1", Severity::Warning, pkd);
        push(
            "kernel.keys.root_maxkeys",
            "1000000",
            Severity::Warning,
            pkd,
        );
        push(
            "kernel.keys.root_maxbytes",
            "25000000",
            Severity::Warning,
            pkd,
        );
    }
    for (k, v) in &cfg.sysctls {
        let (k, _) = strip_ignore(k);
        out.push(Required {
            key: to_path(k),
            value: v.trim().to_string(),
            severity: Severity::Error,
            why: "config",
        });
    }
    out
}

/// One sysctl assignment of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlSetting {
    /// Path form relative to `/proc/sys` (`net/ipv4/ip_forward`); a pattern when `glob`.
    pub key: String,
    pub value: String,
    /// Where the value comes from: `default`, `config`, `kernel command line`, `file:line`.
    pub source: String,
    /// `-key = value`: a missing or refused sysctl is not a failure.
    pub ignore_failure: bool,
    pub glob: bool,
    /// Earlier assignments of the same key that this one replaced: (source, value).
    pub overrides: Vec<(String, String)>,
}

impl SysctlSetting {
    /// The dotted name (`net.ipv4.ip_forward`).
    pub fn name(&self) -> String {
        to_dotted(&self.key)
    }
}

impl fmt::Display for SysctlSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{} = {}",
            if self.ignore_failure { "-" } else { "" },
            self.name(),
            self.value
        )
    }
}

/// Path form of a sysctl key. As in sysctl(8) and systemd: when the first separator is a `.`,
/// dots separate components and any `/` is a literal dot inside one (`net.ipv4.conf.eth0/100.rp_filter`
/// is the VLAN interface `eth0.100`), so the two are swapped; a key whose first separator is
/// `/` is already a path.
pub fn to_path(key: &str) -> String {
    let key = key.trim().trim_start_matches('/');
    let first = key.find(['.', '/']);
    let swapped: String = if first.is_some_and(|i| key.as_bytes()[i] == b'.') {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    } else {
        key.to_string()
    };
    swapped
        .split('/')
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Dotted form of a path-form key (the inverse swap).
pub fn to_dotted(path_key: &str) -> String {
    path_key
        .chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            c => c,
        })
        .collect()
}

fn strip_ignore(key: &str) -> (&str, bool) {
    match key.trim().strip_prefix('-') {
        Some(k) => (k.trim(), true),
        None => (key.trim(), false),
    }
}

/// The module whose loading creates a sysctl, for a hint when its file is missing.
pub fn module_for(path_key: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("net/bridge/", "br_netfilter"),
        ("net/netfilter/nf_conntrack", "nf_conntrack"),
        ("net/nf_conntrack_max", "nf_conntrack"),
        ("net/ipv4/vs/", "ip_vs"),
        ("net/ipv6/", "ipv6"),
    ];
    TABLE
        .iter()
        .find(|(p, _)| path_key.starts_with(p))
        .map(|(_, m)| *m)
}

fn valid_key(path_key: &str) -> bool {
    !path_key.is_empty()
        && path_key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// A sysctl assignment that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("invalid sysctl key {0:?}")]
    Key(String),
    #[error("invalid value for {0}: contains a NUL byte")]
    NulInValue(String),
}

/// Ordered assignments with systemd's override rule: assigning a key again replaces the value
/// in place (the later file or line wins) and remembers what it replaced.
#[derive(Debug, Default)]
struct Assignments(Vec<SysctlSetting>);

impl Assignments {
    fn set(
        &mut self,
        key: &str,
        value: &str,
        source: String,
        notes: &mut Vec<String>,
    ) -> Result<(), AssignmentError> {
        let (k, ignore_failure) = strip_ignore(key);
        let path_key = to_path(k);
        if !valid_key(&path_key) {
            return Err(AssignmentError::Key(key.to_string()));
        }
        let value = value.trim().to_string();
        if value.contains('\0') {
            return Err(AssignmentError::NulInValue(k.to_string()));
        }
        if let Some(s) = self.0.iter_mut().find(|s| s.key == path_key) {
            if s.value != value {
                notes.push(format!(
                    "sysctl {} = {value} ({source}) overrides {} ({})",
                    s.name(),
                    s.value,
                    s.source
                ));
            }
            let old = std::mem::replace(&mut s.source, source);
            s.overrides
                .push((old, std::mem::replace(&mut s.value, value)));
            s.ignore_failure = ignore_failure;
            return Ok(());
        }
        self.0.push(SysctlSetting {
            glob: fnmatch::is_pattern(&path_key),
            key: path_key,
            value,
            source,
            ignore_failure,
            overrides: Vec::new(),
        });
        Ok(())
    }
}

/// The sysctl assignments for `cfg`, lowest precedence first: defaults, then sysctl.d files
/// (and `/etc/sysctl.conf`), then config, then `sysctl.*` on the kernel command line.
/// Malformed lines in files are skipped with a note (as systemd-sysctl does); malformed config
/// is an error.
pub fn plan_sysctls(
    cfg: &HostConfig,
    root: &Root,
    args: &[cmdline::Arg],
    notes: &mut Vec<String>,
) -> Result<Vec<SysctlSetting>, HostError> {
    let mut a = Assignments::default();
    if !cfg.skip_default_sysctls {
        for r in required(&HostConfig {
            sysctls: Vec::new(),
            ..cfg.clone()
        }) {
            a.set(&r.key, &r.value, r.why.to_string(), notes)
                .map_err(|reason| HostError::Sysctl { reason })?;
        }
    }
    if cfg.read_sysctl_d {
        let mut files = confdirs::collect(root, &confdirs::search_dirs("sysctl.d"))?;
        // procps reads /etc/sysctl.conf after the directories; Debian also links it in as
        // /etc/sysctl.d/99-sysctl.conf, which only repeats the same values.
        if let Ok(p) = root.join("/etc/sysctl.conf") {
            if let Ok(content) = std::fs::read_to_string(&p) {
                files.push(confdirs::ConfFile {
                    path: PathBuf::from("/etc/sysctl.conf"),
                    content,
                });
            }
        }
        for f in files {
            for (line, text) in confdirs::lines(&f.content) {
                let src = format!("{}:{line}", f.path.display());
                let Some((k, v)) = text.split_once('=') else {
                    notes.push(format!("{src}: ignoring {text:?}: not an assignment"));
                    continue;
                };
                if let Err(reason) = a.set(k, v, src.clone(), notes) {
                    notes.push(format!("{src}: ignoring line: {reason}"));
                }
            }
        }
    }
    for (k, v) in &cfg.sysctls {
        a.set(k, v, "config".into(), notes)
            .map_err(|reason| HostError::Sysctl { reason })?;
    }
    if cfg.read_kernel_cmdline {
        for (k, v) in cmdline::sysctls(args) {
            if let Err(reason) = a.set(&k, &v, "kernel command line".into(), notes) {
                notes.push(format!(
                    "kernel command line: ignoring sysctl.{k}: {reason}"
                ));
            }
        }
    }
    Ok(a.0)
}

/// The node path of a path-form key.
pub fn node_path(path_key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(path_key)
}

/// The existing sysctls matching a glob pattern (path form), matched one component at a time
/// like glob(3): `*` does not cross `/`.
pub fn expand(root: &Root, pattern: &str) -> Vec<String> {
    let mut found = vec![String::new()];
    for comp in pattern.split('/') {
        let mut next = Vec::new();
        for prefix in &found {
            let dir = if prefix.is_empty() {
                node_path("")
            } else {
                node_path(prefix)
            };
            let join = |name: &str| {
                if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                }
            };
            if fnmatch::is_pattern(comp) {
                let Ok(real) = root.join(&dir) else { continue };
                let Ok(rd) = std::fs::read_dir(real) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| fnmatch::fnmatch(comp, n))
                    .collect();
                names.sort();
                next.extend(names.iter().map(|n| join(n)));
            } else if root.join(dir.join(comp)).is_ok_and(|p| p.exists()) {
                next.push(join(comp));
            }
        }
        found = next;
    }
    found.retain(|k| {
        root.join(node_path(k))
            .is_ok_and(|p| p.exists() && !p.is_dir())
    });
    found
}

/// Values compare as the kernel prints them: whitespace-separated fields (a written
/// `32768 60999` reads back as `32768\t60999`).
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// What happened to one sysctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlOutcome {
    Written,
    /// Already had the value: nothing written (so a read-only /proc/sys is fine).
    AlreadySet,
    /// Written, but the file cannot be read back (write-only sysctls such as vm.drop_caches).
    WrittenUnverified,
}

/// Sets one sysctl (path-form key) through the host seam, and reads it back.
pub fn write(
    root: &Root,
    path_key: &str,
    value: &str,
    sys: &dyn crate::sys::Host,
) -> Result<SysctlOutcome, HostError> {
    let node = node_path(path_key);
    let real = root.join(&node)?;
    // Not `is_file()`: what matters is that the kernel has an entry there (a test root may
    // stand one in with a device such as /dev/null).
    if !real.exists() || real.is_dir() {
        return Err(HostError::SysctlMissing {
            key: to_dotted(path_key),
            path: node,
            module: module_for(path_key).map(str::to_string),
        });
    }
    if std::fs::read_to_string(&real).is_ok_and(|cur| same_value(&cur, value)) {
        return Ok(SysctlOutcome::AlreadySet);
    }
    if let Err(source) = sys.write_sysctl(&to_dotted(path_key), &real, value) {
        return Err(HostError::SysctlWrite {
            key: to_dotted(path_key),
            path: node,
            value: value.to_string(),
            source,
        });
    }
    match std::fs::read_to_string(&real) {
        Ok(got) if same_value(&got, value) => Ok(SysctlOutcome::Written),
        Ok(got) => Err(HostError::SysctlMismatch {
            key: to_dotted(path_key),
            path: node,
            wanted: value.to_string(),
            got: got.trim_end().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Ok(SysctlOutcome::WrittenUnverified)
        }
        Err(source) => Err(HostError::Read { path: real, source }),
    }
}

/// The keys set explicitly (not through a glob): systemd lets these win over any glob,
/// whatever the order.
pub fn explicit_keys(settings: &[SysctlSetting]) -> BTreeSet<String> {
    settings
        .iter()
        .filter(|s| !s.glob)
        .map(|s| s.key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_forms() {
        assert_eq!(to_path("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(to_path("net/ipv4/ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(
            to_path("net.ipv4.conf.eth0/100.rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            to_path("net/ipv4/conf/eth0.100/rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(to_path(" /net//ipv4/ip_forward "), "net/ipv4/ip_forward");
        assert_eq!(
            to_dotted("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(
            to_path("net.ipv4.conf.*.rp_filter"),
            "net/ipv4/conf/*/rp_filter"
        );
        assert!(!valid_key(&to_path("net.ipv4...x")) || to_path("net.ipv4...x") == "net/ipv4/x");
        assert!(!valid_key("net/../x"));
    }

    #[test]
    fn hints_name_the_module() {
        assert_eq!(
            module_for("net/bridge/bridge-nf-call-iptables"),
            Some("br_netfilter")
        );
        assert_eq!(
            module_for("net/netfilter/nf_conntrack_max"),
            Some("nf_conntrack")
        );
        assert_eq!(module_for("net/ipv4/vs/conntrack"), Some("ip_vs"));
        assert_eq!(module_for("vm/swappiness"), None);
    }

    #[test]
    fn values_compare_by_fields() {
        assert!(same_value("32768\t60999\n", "32768 60999"));
        assert!(same_value("1\n", "1"));
        assert!(!same_value("0\n", "1"));
    }

    #[test]
    fn required_defaults_follow_config() {
        let keys = |c: &HostConfig| {
            required(c)
                .into_iter()
                .map(|r| to_dotted(&r.key))
                .collect::<Vec<_>>()
        };
        let base = keys(&HostConfig::default());
        assert!(base.contains(&"net.ipv4.ip_forward".to_string()));
        assert!(base.contains(&"kernel.panic_on_oops".to_string()));
        assert!(!base.contains(&"net.ipv6.conf.all.forwarding".to_string()));
        let ds = keys(&HostConfig {
            dual_stack: true,
            ..HostConfig::default()
        });
        assert!(ds.contains(&"net.ipv6.conf.all.forwarding".to_string()));
        let none = keys(&HostConfig {
            skip_default_sysctls: true,
            sysctls: vec![("-vm.swappiness".into(), "10".into())],
            ..HostConfig::default()
        });
        assert_eq!(none, vec!["vm.swappiness"]);
    }
}
