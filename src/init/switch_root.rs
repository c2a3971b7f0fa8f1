//! Handing the machine to a real root: mount it at `/sysroot`, install the node's files into it,
//! then switch — move the API filesystems into it, free the initramfs, make it `/`, exec its init.
//!
//! Not `pivot_root(2)`: the initramfs is the kernel's rootfs, which can never be unmounted, and
//! `pivot_root` refuses to move it. The classic sequence (busybox `switch_root`, systemd) instead
//! deletes the initramfs' files to give their memory back, moves the new root's mount over `/`
//! and chroots into it.
//!
//! Everything that can be checked is checked before the first destructive step (Firecracker's
//! jailer: validate into a plan, then act): that we are PID 1, that `/` really is an initramfs
//! (deleting the contents of a disk-backed `/` would destroy a system), that the new root is a
//! mount of its own, and that its init exists.

use crate::error::{Class, Classify};
use crate::sys::init::{Init, MountFlags, RAMFS_MAGIC, TMPFS_MAGIC};
use crate::sys::Exec;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::SysrootSpec;

/// The API filesystems moved into the new root, in the order systemd moves them.
pub const MOVED_MOUNTS: &[&str] = &["/dev", "/proc", "/sys", "/run"];

/// A switch-root that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("refusing to switch root: kubejoin is not PID 1")]
    NotPid1,
    #[error(
        "refusing to switch root: / is not an initramfs (statfs magic {0:#x}); deleting its contents would destroy a real system"
    )]
    NotInitramfs(u64),
    #[error("{0} is not a mount point of its own")]
    NotMounted(PathBuf),
    #[error("the real root has no init at {0}")]
    NoInit(PathBuf),
    #[error("root device {device} did not appear within {}", crate::time::duration::format(*waited))]
    NoDevice { device: PathBuf, waited: Duration },
    #[error("{action}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },
}

impl Classify for SwitchError {
    fn class(&self) -> Class {
        match self {
            SwitchError::NotPid1 | SwitchError::NotInitramfs(_) | SwitchError::NoInit(_) => {
                Class::Usage
            }
            SwitchError::NoDevice { .. } => Class::Timeout,
            SwitchError::NotMounted(_) | SwitchError::Io { .. } => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SwitchError::NoDevice { .. } => Some(
                "the disk's driver may be missing from the initramfs: add it (e.g. virtio_blk, nvme) to the image's \
                 module list, or check root=/kubejoin.sysroot="
                    .into(),
            ),
            SwitchError::NoInit(_) => Some("pass the real root's init with init=/path on the kernel command line".into()),
            _ => None,
        }
    }
}

fn io_err(action: impl Into<String>) -> impl FnOnce(io::Error) -> SwitchError {
    let action = action.into();
    move |source| SwitchError::Io { action, source }
}

/// `node_path` (absolute, as the new root sees it) below `root`.
fn under(root: &Path, node_path: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    out.extend(
        node_path
            .components()
            .filter(|c| matches!(c, Component::Normal(_))),
    );
    out
}

/// Waits (bounded) for the root device, then mounts it read-write at `at`: kubejoin writes the
/// node's files into it; the real init remounts it as its fstab says.
pub async fn mount_sysroot(
    sys: &dyn Init,
    spec: &SysrootSpec,
    at: &Path,
    wait: Duration,
) -> Result<(), SwitchError> {
    let start = Instant::now();
    while !sys.exists(&spec.device) {
        if start.elapsed() >= wait {
            return Err(SwitchError::NoDevice {
                device: spec.device.clone(),
                waited: wait,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if spec.read_only {
        crate::info!(
            "mounting {} read-write to install the node's files (ro is left to the real init)",
            spec.device.display()
        );
    }
    sys.mkdir_all(at, 0o755)
        .map_err(io_err(format!("creating {}", at.display())))?;
    let device = spec.device.to_string_lossy();
    sys.mount(&device, at, &spec.fstype, MountFlags::NONE, &spec.options)
        .map_err(io_err(format!(
            "mounting {device} ({}) on {}",
            spec.fstype,
            at.display()
        )))
}

/// Everything `switch_root` checks before acting.
pub fn validate(sys: &dyn Init, sysroot: &Path, init: &Path) -> Result<(), SwitchError> {
    if !sys.is_pid1() {
        return Err(SwitchError::NotPid1);
    }
    let magic = sys.fs_magic(Path::new("/")).map_err(io_err("statfs /"))?;
    if magic != RAMFS_MAGIC && magic != TMPFS_MAGIC {
        return Err(SwitchError::NotInitramfs(magic));
    }
    if sys
        .same_fs(Path::new("/"), sysroot)
        .map_err(io_err(format!("stat {}", sysroot.display())))?
    {
        return Err(SwitchError::NotMounted(sysroot.to_path_buf()));
    }
    if !sys.exists(&under(sysroot, init)) {
        return Err(SwitchError::NoInit(init.to_path_buf()));
    }
    Ok(())
}

/// Switches to `sysroot` and execs `init` there. Returns only on failure.
///
/// Steps: validate; move `/dev`, `/proc`, `/sys`, `/run` into the new root; delete the
/// initramfs' files (same filesystem only, the new root kept); move the new root over `/`;
/// `chroot .`; `chdir /`; exec `init`.
pub fn switch_root(sys: &dyn Init, exec: &dyn Exec, sysroot: &Path, init: &Path) -> SwitchError {
    if let Err(e) = validate(sys, sysroot, init) {
        return e;
    }
    match steps(sys, sysroot) {
        Ok(()) => {}
        Err(e) => return e,
    }
    let argv = [OsString::from(init.as_os_str())];
    let env = [(
        OsString::from("PATH"),
        OsString::from("/usr/sbin:/usr/bin:/sbin:/bin"),
    )];
    io_err(format!("exec {} in the new root", init.display()))(exec.execve(init, &argv, &env))
}

fn steps(sys: &dyn Init, sysroot: &Path) -> Result<(), SwitchError> {
    for m in MOVED_MOUNTS {
        let to = under(sysroot, Path::new(m));
        sys.mkdir_all(&to, 0o755)
            .map_err(io_err(format!("creating {}", to.display())))?;
        sys.move_mount(Path::new(m), &to)
            .map_err(io_err(format!("moving the {m} mount to {}", to.display())))?;
    }
    sys.chdir(sysroot)
        .map_err(io_err(format!("chdir {}", sysroot.display())))?;
    // Gives the initramfs' memory back. Best effort: what stays is only wasted memory.
    match sys.clear_tree(Path::new("/"), &[sysroot.to_path_buf()]) {
        Ok(c) => crate::debug!(
            "freed the initramfs: {} entries removed, {} kept",
            c.removed,
            c.kept
        ),
        Err(e) => crate::warn!("could not free the initramfs ({e}); going on"),
    }
    sys.move_mount(sysroot, Path::new("/"))
        .map_err(io_err(format!("moving {} over /", sysroot.display())))?;
    sys.chroot(Path::new("."))
        .map_err(io_err("chroot into the new root"))?;
    sys.chdir(Path::new("/"))
        .map_err(io_err("chdir / in the new root"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::exec::{ExecCall, RecordingExec};
    use crate::sys::init::{InitCall, RecordingInit};

    fn ready() -> RecordingInit {
        RecordingInit::new()
            .with_mount("/sysroot")
            .with_path("/sysroot/lib/systemd/systemd")
    }

    #[test]
    fn switches_in_the_right_order() {
        let sys = ready();
        let exec = RecordingExec::new("n");
        let e = switch_root(
            &sys,
            &exec,
            Path::new("/sysroot"),
            Path::new("/lib/systemd/systemd"),
        );
        assert!(
            e.to_string()
                .starts_with("exec /lib/systemd/systemd in the new root"),
            "{e}"
        );
        let mv = |f: &str, t: &str| InitCall::MoveMount {
            from: f.into(),
            to: t.into(),
        };
        let mk = |p: &str| InitCall::MkdirAll {
            path: p.into(),
            mode: 0o755,
        };
        assert_eq!(
            sys.calls(),
            vec![
                mk("/sysroot/dev"),
                mv("/dev", "/sysroot/dev"),
                mk("/sysroot/proc"),
                mv("/proc", "/sysroot/proc"),
                mk("/sysroot/sys"),
                mv("/sys", "/sysroot/sys"),
                mk("/sysroot/run"),
                mv("/run", "/sysroot/run"),
                InitCall::Chdir("/sysroot".into()),
                InitCall::ClearTree {
                    dir: "/".into(),
                    keep: vec!["/sysroot".into()]
                },
                mv("/sysroot", "/"),
                InitCall::Chroot(".".into()),
                InitCall::Chdir("/".into()),
            ]
        );
        assert_eq!(
            exec.calls(),
            vec![ExecCall::Execve {
                path: "/lib/systemd/systemd".into(),
                argv: vec!["/lib/systemd/systemd".into()],
                env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
            }]
        );
    }

    #[test]
    fn refuses_before_touching_anything() {
        let exec = RecordingExec::new("n");
        let root = Path::new("/sysroot");
        let init = Path::new("/sbin/init");
        let cases: Vec<(RecordingInit, &str)> = vec![
            (ready().not_pid1(), "not PID 1"),
            (
                ready().with_fs_magic(0xef53),
                "is not an initramfs (statfs magic 0xef53)",
            ),
            (
                RecordingInit::new().with_path("/sysroot/sbin/init"),
                "/sysroot is not a mount point",
            ),
            (
                RecordingInit::new().with_mount("/sysroot"),
                "has no init at /sbin/init",
            ),
        ];
        for (sys, want) in cases {
            let e = switch_root(&sys, &exec, root, init);
            assert!(e.to_string().contains(want), "{e} / {want}");
            assert!(sys.calls().is_empty(), "{:?}", sys.calls());
        }
        assert!(exec.calls().is_empty());
        let e = switch_root(&RecordingInit::new().not_pid1(), &exec, root, init);
        assert_eq!(e.class(), Class::Usage);
        // Absolute init paths are looked up inside the new root.
        assert_eq!(
            under(root, Path::new("/sbin/../init")),
            PathBuf::from("/sysroot/sbin/init")
        );
    }

    #[test]
    fn a_failed_move_stops_before_deleting() {
        let sys = ready().fail_at("/proc", io::ErrorKind::InvalidInput);
        let exec = RecordingExec::new("n");
        let e = switch_root(
            &sys,
            &exec,
            Path::new("/sysroot"),
            Path::new("/lib/systemd/systemd"),
        );
        assert_eq!(e.to_string(), "moving the /proc mount to /sysroot/proc");
        assert!(!sys
            .calls()
            .iter()
            .any(|c| matches!(c, InitCall::ClearTree { .. })));
        assert!(exec.calls().is_empty());
    }

    #[test]
    fn mounts_the_sysroot_once_the_device_exists() {
        let spec = SysrootSpec {
            device: "/dev/vda1".into(),
            fstype: "ext4".into(),
            options: "noatime".into(),
            read_only: false,
            init: "/sbin/init".into(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sys = RecordingInit::new().with_path("/dev/vda1");
        rt.block_on(mount_sysroot(
            &sys,
            &spec,
            Path::new("/sysroot"),
            Duration::from_secs(1),
        ))
        .unwrap();
        assert_eq!(
            sys.calls()[1],
            InitCall::Mount {
                source: "/dev/vda1".into(),
                target: "/sysroot".into(),
                fstype: "ext4".into(),
                flags: MountFlags::NONE,
                data: "noatime".into(),
            }
        );
        let missing = RecordingInit::new();
        let e = rt
            .block_on(mount_sysroot(
                &missing,
                &spec,
                Path::new("/sysroot"),
                Duration::from_millis(150),
            ))
            .unwrap_err();
        assert!(matches!(e, SwitchError::NoDevice { .. }));
        assert_eq!(e.class(), Class::Timeout);
        assert!(e.hint().unwrap().contains("virtio_blk"));
    }
}
