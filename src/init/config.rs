//! What PID-1 mode itself reads from the kernel command line, before (and independently of) the
//! join sources: the failure policy, the overall deadline, how to hand off, and where the real
//! root is. These are parsed first and leniently — a typo here must not leave PID 1 without a
//! policy — and every problem becomes a warning plus the default.
//!
//! | key | values | default |
//! |---|---|---|
//! | `kubejoin.on-failure` | `retry`, `reboot`, `poweroff`, `shell` | `retry` |
//! | `kubejoin.timeout` | Go duration (`10m`, `1h`) | `10m` |
//! | `kubejoin.handoff` | `exec`, `switch-root`, `none` | `switch-root` with a root, else `exec` |
//! | `kubejoin.sysroot` / `root` | a block device path (`/dev/vda1`) | none |
//! | `rootfstype`, `rootflags`, `ro`/`rw` | as for the kernel | `ext4`, none, `rw` |
//! | `init` | the real root's init | `/sbin/init` |
//! | `kubejoin.debug` | (flag) | off |
//! | `kubejoin.timeline` | `file`, `console` | `file` |

pub use crate::plan::boot::OnFailure;
use crate::time::duration;
use std::path::PathBuf;
use std::time::Duration;

/// How PID 1 hands the machine over once the node's files are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Exec the kubelet inside the initramfs, which stays the root (appliance images).
    Exec,
    /// Install into the real root, move the API filesystems into it, free the initramfs, chroot
    /// and exec its init.
    SwitchRoot,
    /// Install and stay: nothing is started (debugging an image).
    None,
}

impl Handoff {
    pub fn name(self) -> &'static str {
        match self {
            Handoff::Exec => "exec",
            Handoff::SwitchRoot => "switch-root",
            Handoff::None => "none",
        }
    }
}

/// Where the boot's JSON timeline goes. It is always written to
/// [`crate::install::TIMELINE_JSON`]; this says whether the console gets all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimelineOut {
    /// The file, and one summary line on the console (the whole JSON too when the boot
    /// failed: the console may be all that is left of it). A serial console at 115,200 baud
    /// takes ~0.6 s to print the ~7 KB JSON, and the handoff waits for the console to drain.
    #[default]
    File,
    /// The file, and the whole JSON on one console line (test harnesses and benchmarks read it).
    Console,
}

/// The real root to switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysrootSpec {
    /// Block device (`/dev/vda1`).
    pub device: PathBuf,
    pub fstype: String,
    /// `rootflags=` (filesystem options).
    pub options: String,
    pub read_only: bool,
    /// Where the real root's init is, inside it.
    pub init: PathBuf,
}

/// PID-1 settings from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitConfig {
    pub on_failure: OnFailure,
    /// Deadline of the whole join, retries included.
    pub timeout: Duration,
    pub handoff: Handoff,
    pub sysroot: Option<SysrootSpec>,
    pub debug: bool,
    pub timeline: TimelineOut,
    /// Problems found while reading the command line (each already resolved to a default).
    pub warnings: Vec<String>,
}

/// The default deadline of the whole join: the same constant as `kubejoin join --timeout`'s.
pub use crate::deadline::DEFAULT_TIMEOUT;
/// Where the real root is mounted before the switch.
pub const SYSROOT: &str = "/sysroot";

impl InitConfig {
    /// Reads the PID-1 keys from a kernel command line. Never fails: see the module docs.
    pub fn from_cmdline(cmdline: &str) -> Self {
        let mut warnings = Vec::new();
        let mut on_failure = OnFailure::Retry;
        let mut timeout = DEFAULT_TIMEOUT;
        let mut handoff = None;
        let (mut device, mut fstype, mut options, mut read_only, mut init) = (
            None,
            "ext4".to_string(),
            String::new(),
            false,
            PathBuf::from("/sbin/init"),
        );
        let mut debug = false;
        let mut timeline = TimelineOut::File;
        for (key, value) in split(cmdline) {
            let key = key.replace('_', "-");
            let value = value.unwrap_or_default();
            match key.as_str() {
                "kubejoin.on-failure" => match OnFailure::parse(&value) {
                    Some(p) => on_failure = p,
                    None => warnings.push(format!(
                        "kubejoin.on-failure={value:?} is not one of retry, reboot, poweroff, shell: using retry"
                    )),
                },
                "kubejoin.timeout" => match duration::parse(&value) {
                    Ok(d) if !d.is_zero() => timeout = d,
                    _ => warnings.push(format!(
                        "kubejoin.timeout={value:?} is not a duration like 10m: using {}",
                        duration::format(DEFAULT_TIMEOUT)
                    )),
                },
                "kubejoin.handoff" => match value.as_str() {
                    "exec" => handoff = Some(Handoff::Exec),
                    "switch-root" | "switchroot" => handoff = Some(Handoff::SwitchRoot),
                    "none" => handoff = Some(Handoff::None),
                    _ => warnings.push(format!(
                        "kubejoin.handoff={value:?} is not one of exec, switch-root, none: choosing from root="
                    )),
                },
                // kubejoin.sysroot wins over root= (which a boot loader may add on its own).
                "kubejoin.sysroot" => device = Some((true, value)),
                "root" if !matches!(device, Some((true, _))) => device = Some((false, value)),
                "rootfstype" if !value.is_empty() => fstype = value,
                "rootflags" => options = value,
                "ro" => read_only = true,
                "rw" => read_only = false,
                "init" if value.starts_with('/') => init = PathBuf::from(value),
                "kubejoin.debug" => debug = value.is_empty() || value == "1" || value == "true",
                "kubejoin.timeline" => match value.as_str() {
                    "file" => timeline = TimelineOut::File,
                    "console" => timeline = TimelineOut::Console,
                    _ => warnings.push(format!(
                        "kubejoin.timeline={value:?} is not one of file, console: using file"
                    )),
                },
                _ => {}
            }
        }
        let sysroot = match device.map(|(_, d)| d) {
            None => None,
            Some(d) if d.starts_with("/dev/") => Some(SysrootSpec {
                device: PathBuf::from(d),
                fstype,
                options,
                read_only,
                init,
            }),
            Some(d) => {
                warnings.push(format!(
                    "root device {d:?} is not a /dev path (UUID=, LABEL= and PARTUUID= need udev, which this \
                     initramfs does not have): ignoring it"
                ));
                None
            }
        };
        let handoff = match (handoff, &sysroot) {
            (Some(Handoff::SwitchRoot), None) => {
                warnings.push("kubejoin.handoff=switch-root needs root=/dev/… or kubejoin.sysroot=/dev/…: using exec".into());
                Handoff::Exec
            }
            (Some(h), _) => h,
            (None, Some(_)) => Handoff::SwitchRoot,
            (None, None) => Handoff::Exec,
        };
        InitConfig {
            on_failure,
            timeout,
            handoff,
            sysroot,
            debug,
            timeline,
            warnings,
        }
    }
}

/// Splits a command line into `(key, value)` pairs with the shared kernel tokenizer
/// ([`crate::source::cmdline::tokenize`]: the kernel's quoting rules, `--` ends the kernel's
/// part). Never fails, as the PID-1 keys must not: an unterminated quote swallows the rest of
/// the line into one parameter (what the kernel itself does), and a NUL byte ends the line.
/// The join sources refuse both, so the boot still fails in `local-sources`, with the reason.
pub fn split(cmdline: &str) -> Vec<(String, Option<String>)> {
    use crate::source::cmdline::{tokenize, CmdlineError};
    let bytes = cmdline.as_bytes();
    let bytes = match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    };
    let params = match tokenize(bytes) {
        Ok(p) => p,
        Err(CmdlineError::UnterminatedQuote { .. }) => {
            let mut closed = bytes.to_vec();
            closed.push(b'"');
            tokenize(&closed).unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    params
        .into_iter()
        .take_while(|p| !(p.key == "--" && p.value.is_none()))
        .map(|p| (p.key, p.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = InitConfig::from_cmdline("console=ttyS0 quiet");
        assert_eq!(c.on_failure, OnFailure::Retry);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.handoff, Handoff::Exec);
        assert_eq!(c.sysroot, None);
        assert!(!c.debug);
        assert_eq!(c.timeline, TimelineOut::File);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn timeline_destination() {
        let c = InitConfig::from_cmdline("kubejoin.timeline=console");
        assert_eq!(c.timeline, TimelineOut::Console);
        assert!(c.warnings.is_empty());
        // The last one wins, as for the kernel's own parameters.
        let c = InitConfig::from_cmdline("kubejoin.timeline=console kubejoin.timeline=file");
        assert_eq!(c.timeline, TimelineOut::File);
        let c = InitConfig::from_cmdline("kubejoin.timeline=serial");
        assert_eq!(c.timeline, TimelineOut::File);
        assert_eq!(
            c.warnings,
            ["kubejoin.timeline=\"serial\" is not one of file, console: using file"]
        );
    }

    #[test]
    fn reads_policy_timeout_and_handoff() {
        let c = InitConfig::from_cmdline(
            "kubejoin.on-failure=poweroff kubejoin.timeout=90s kubejoin.handoff=exec kubejoin.debug",
        );
        assert_eq!(
            (c.on_failure, c.timeout, c.handoff),
            (OnFailure::Poweroff, Duration::from_secs(90), Handoff::Exec)
        );
        assert!(c.debug);
        let c = InitConfig::from_cmdline("kubejoin.on_failure=shell");
        assert_eq!(c.on_failure, OnFailure::Shell);
    }

    #[test]
    fn a_root_implies_switch_root() {
        let c = InitConfig::from_cmdline(
            "root=/dev/vda1 rootfstype=xfs rootflags=noatime ro init=/lib/systemd/systemd",
        );
        assert_eq!(c.handoff, Handoff::SwitchRoot);
        assert_eq!(
            c.sysroot,
            Some(SysrootSpec {
                device: "/dev/vda1".into(),
                fstype: "xfs".into(),
                options: "noatime".into(),
                read_only: true,
                init: "/lib/systemd/systemd".into(),
            })
        );
        let c = InitConfig::from_cmdline(
            "kubejoin.sysroot=/dev/vdb root=/dev/vda1 kubejoin.handoff=exec",
        );
        assert_eq!(c.handoff, Handoff::Exec);
        assert_eq!(c.sysroot.unwrap().device, PathBuf::from("/dev/vdb"));
    }

    #[test]
    fn bad_values_warn_and_fall_back() {
        let c = InitConfig::from_cmdline(
            "kubejoin.on-failure=explode kubejoin.timeout=soon kubejoin.handoff=switch-root root=UUID=1234",
        );
        assert_eq!(c.on_failure, OnFailure::Retry);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.handoff, Handoff::Exec);
        assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
        assert!(c.warnings[3].contains("needs root="), "{:?}", c.warnings);
    }

    #[test]
    fn splitting_honours_quotes_and_double_dash() {
        assert_eq!(
            split("a=1 \"b=x y\" c -- kubejoin.on-failure=shell"),
            vec![
                ("a".into(), Some("1".into())),
                ("b".into(), Some("x y".into())),
                ("c".into(), None)
            ]
        );
        // The kernel's own rules: tabs and newlines separate, a quoted value keeps its spaces,
        // an unterminated quote takes the rest of the line (and never loses the keys before it).
        assert_eq!(
            split("kubejoin.on-failure=shell\troot=/dev/vda\n"),
            vec![
                ("kubejoin.on-failure".into(), Some("shell".into())),
                ("root".into(), Some("/dev/vda".into()))
            ]
        );
        assert_eq!(
            split("kubejoin.handoff=none rootflags=\"a b"),
            vec![
                ("kubejoin.handoff".into(), Some("none".into())),
                ("rootflags".into(), Some("a b".into()))
            ]
        );
        let c = InitConfig::from_cmdline("kubejoin.on-failure=poweroff x=\"unclosed");
        assert_eq!(c.on_failure, OnFailure::Poweroff);
    }
}
