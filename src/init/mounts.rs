//! The early filesystems, as data (u-root's `init` table).
//!
//! The kernel starts `/init` on a bare rootfs: no `/proc` (so no `/proc/cmdline`), no `/sys` (no
//! netlink-visible devices by path, no module sysfs), no `/dev` beyond what the image ships, no
//! writable `/run`. Each row below is one mount; order matters (`/dev/pts` lives in `/dev`,
//! cgroup2 in `/sys`). A `required` row failing is fatal; the others only warn, because
//! kubejoin can join without them (they matter to the kubelet afterwards).

use crate::sys::init::{Init, MountFlags};
use std::io;
use std::path::Path;

/// One early mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    pub target: &'static str,
    pub source: &'static str,
    pub fstype: &'static str,
    pub flags: MountFlags,
    pub data: &'static str,
    /// Mode of the mount point when it has to be created.
    pub mode: u32,
    pub required: bool,
}

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);

/// The API filesystems PID 1 mounts, in order.
pub const EARLY_MOUNTS: &[Mount] = &[
    Mount {
        target: "/proc",
        source: "proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        mode: 0o555,
        required: true,
    },
    Mount {
        target: "/sys",
        source: "sysfs",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        mode: 0o555,
        required: true,
    },
    // devtmpfs: the kernel creates a node for every device it knows, so kubejoin needs no udev to
    // find /dev/kmsg, /dev/console or the root disk.
    Mount {
        target: "/dev",
        source: "devtmpfs",
        fstype: "devtmpfs",
        flags: MountFlags::NOSUID,
        data: "mode=0755",
        mode: 0o755,
        required: true,
    },
    Mount {
        target: "/dev/pts",
        source: "devpts",
        fstype: "devpts",
        flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
        data: "gid=5,mode=0620,ptmxmode=0666",
        mode: 0o755,
        required: false,
    },
    Mount {
        target: "/dev/shm",
        source: "shm",
        fstype: "tmpfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: "mode=1777",
        mode: 0o1777,
        required: false,
    },
    // /run: where the result file goes, and what the kubelet and the container runtime expect to
    // be a fresh tmpfs on every boot.
    Mount {
        target: "/run",
        source: "tmpfs",
        fstype: "tmpfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: "mode=0755",
        mode: 0o755,
        required: true,
    },
    // The kubelet (exec handoff) needs the unified cgroup hierarchy; systemd mounts it itself
    // after a switch-root, and the mount moves along with /sys.
    Mount {
        target: "/sys/fs/cgroup",
        source: "cgroup2",
        fstype: "cgroup2",
        flags: NOSUID_NODEV_NOEXEC.union(MountFlags::RELATIME),
        data: "nsdelegate",
        mode: 0o555,
        required: false,
    },
];

/// Symlinks devtmpfs does not provide but programs expect, created after the mounts.
pub const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
];

/// What happened to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Mounted,
    /// `EBUSY`: something (the kernel's own devtmpfs automount, an earlier run) mounted it
    /// already; that is as good as mounting it.
    AlreadyMounted,
    Failed {
        required: bool,
        error: String,
    },
}

/// A required early mount failed.
#[derive(Debug, thiserror::Error)]
#[error("mounting {fstype} on {target}")]
pub struct MountError {
    pub target: &'static str,
    pub fstype: &'static str,
    #[source]
    pub source: io::Error,
}

/// Mounts every row of `table` in order; stops at the first required row that fails.
/// Returns each row's outcome (for the log).
pub fn mount_all(
    sys: &dyn Init,
    table: &[Mount],
) -> Result<Vec<(&'static str, Outcome)>, MountError> {
    let mut out = Vec::new();
    for m in table {
        let target = Path::new(m.target);
        // Mounted already (`kubejoin init` on a booted system, or the kernel's devtmpfs
        // automount): mounting again would stack a second filesystem over the first.
        let parent = target.parent().unwrap_or(Path::new("/"));
        if sys.exists(target) && !sys.same_fs(target, parent).unwrap_or(true) {
            out.push((m.target, Outcome::AlreadyMounted));
            continue;
        }
        let result = sys
            .mkdir_all(target, m.mode)
            .and_then(|()| sys.mount(m.source, target, m.fstype, m.flags, m.data));
        let outcome = match result {
            Ok(()) => Outcome::Mounted,
            Err(e) if e.kind() == io::ErrorKind::ResourceBusy => Outcome::AlreadyMounted,
            Err(e) if m.required => {
                return Err(MountError {
                    target: m.target,
                    fstype: m.fstype,
                    source: e,
                });
            }
            Err(e) => Outcome::Failed {
                required: false,
                error: e.to_string(),
            },
        };
        out.push((m.target, outcome));
    }
    Ok(out)
}

/// Creates [`DEV_SYMLINKS`]; existing links are left alone, failures are only reported.
pub fn dev_symlinks(sys: &dyn Init) -> Vec<String> {
    let mut problems = Vec::new();
    for (target, link) in DEV_SYMLINKS {
        let link = Path::new(link);
        if sys.exists(link) {
            continue;
        }
        if let Err(e) = sys.symlink(Path::new(target), link) {
            problems.push(format!("creating {} -> {target}: {e}", link.display()));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::init::{InitCall, RecordingInit};

    #[test]
    fn the_table_mounts_parents_before_children() {
        for (i, m) in EARLY_MOUNTS.iter().enumerate() {
            for earlier in &EARLY_MOUNTS[i + 1..] {
                assert!(
                    !Path::new(m.target).starts_with(earlier.target),
                    "{} is mounted before its parent {}",
                    m.target,
                    earlier.target
                );
            }
        }
        let required: Vec<_> = EARLY_MOUNTS
            .iter()
            .filter(|m| m.required)
            .map(|m| m.target)
            .collect();
        assert_eq!(required, ["/proc", "/sys", "/dev", "/run"]);
    }

    #[test]
    fn mounts_every_row_in_order() {
        let fake = RecordingInit::new();
        let out = mount_all(&fake, EARLY_MOUNTS).unwrap();
        assert!(out.iter().all(|(_, o)| *o == Outcome::Mounted));
        let mounts: Vec<(String, PathBuf, String)> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                InitCall::Mount {
                    source,
                    target,
                    fstype,
                    ..
                } => Some((source, target, fstype)),
                _ => None,
            })
            .collect();
        let expect = |s: &str, t: &str, f: &str| (s.to_string(), PathBuf::from(t), f.to_string());
        assert_eq!(
            mounts,
            vec![
                expect("proc", "/proc", "proc"),
                expect("sysfs", "/sys", "sysfs"),
                expect("devtmpfs", "/dev", "devtmpfs"),
                expect("devpts", "/dev/pts", "devpts"),
                expect("shm", "/dev/shm", "tmpfs"),
                expect("tmpfs", "/run", "tmpfs"),
                expect("cgroup2", "/sys/fs/cgroup", "cgroup2"),
            ]
        );
        assert_eq!(
            fake.calls()[0],
            InitCall::MkdirAll {
                path: "/proc".into(),
                mode: 0o555
            }
        );
        assert!(fake.calls().contains(&InitCall::Mount {
            source: "proc".into(),
            target: "/proc".into(),
            fstype: "proc".into(),
            flags: MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            data: String::new(),
        }));
    }

    use std::path::PathBuf;

    #[test]
    fn busy_is_fine_optional_warns_required_stops() {
        assert_eq!(
            io::Error::from_raw_os_error(nix::libc::EBUSY).kind(),
            io::ErrorKind::ResourceBusy
        );
        let fake = RecordingInit::new()
            .fail_at("/dev/pts", io::ErrorKind::PermissionDenied)
            .fail_at("/dev", io::ErrorKind::ResourceBusy);
        let out = mount_all(&fake, EARLY_MOUNTS).unwrap();
        assert_eq!(out[2], ("/dev", Outcome::AlreadyMounted));
        assert!(matches!(
            &out[3],
            (
                "/dev/pts",
                Outcome::Failed {
                    required: false,
                    ..
                }
            )
        ));
        assert_eq!(out.len(), EARLY_MOUNTS.len());

        let fake = RecordingInit::new().fail_at("/sys", io::ErrorKind::PermissionDenied);
        let e = mount_all(&fake, EARLY_MOUNTS).unwrap_err();
        assert_eq!(e.target, "/sys");
        assert_eq!(e.to_string(), "mounting sysfs on /sys");
        // Nothing after the failed required row was attempted.
        assert!(!fake
            .calls()
            .iter()
            .any(|c| matches!(c, InitCall::Mount { fstype, .. } if fstype == "devtmpfs")));
    }

    #[test]
    fn mounted_targets_are_left_alone() {
        let fake = RecordingInit::new().with_mount("/proc").with_mount("/sys");
        let out = mount_all(&fake, EARLY_MOUNTS).unwrap();
        assert_eq!(out[0], ("/proc", Outcome::AlreadyMounted));
        assert_eq!(out[1], ("/sys", Outcome::AlreadyMounted));
        assert_eq!(out[2], ("/dev", Outcome::Mounted));
        assert!(!fake
            .calls()
            .iter()
            .any(|c| matches!(c, InitCall::Mount { fstype, .. } if fstype == "proc")));
    }

    #[test]
    fn symlinks_skip_existing() {
        let fake = RecordingInit::new().with_path("/dev/fd");
        assert!(dev_symlinks(&fake).is_empty());
        let links: Vec<_> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                InitCall::Symlink { link, .. } => Some(link),
                _ => None,
            })
            .collect();
        assert_eq!(
            links,
            vec![
                PathBuf::from("/dev/stdin"),
                "/dev/stdout".into(),
                "/dev/stderr".into()
            ]
        );
    }
}
