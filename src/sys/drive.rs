//! Finding and mounting a config drive (OpenStack's `config-2` filesystem) read-only, behind a
//! narrow seam.
//!
//! [`Drive`] is the calls the config-drive reader makes: the block devices the kernel lists, the
//! first bytes of one (its label), a read-only mount of one filesystem type and the unmount.
//! [`RealDrive`] is one system call (or directory read) per method;
//! [`RecordingDrive`] records typed [`DriveCall`]s, accepts only the filesystem types it is
//! told to, and emulates a successful mount by placing files in the target directory (removed
//! again on unmount), so the reader's try-iso9660-then-vfat order, its unmount guard and its
//! cleanup are unit-tested without root. What to mount, where, and what to read is decided in
//! `crate::source::metadata::openstack`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The probe, mount and unmount of a config drive.
pub trait Drive: fmt::Debug + Send + Sync {
    /// The names of the block devices the kernel lists in `sys_class_block`
    /// (`/sys/class/block` under the node's root), in no particular order.
    fn block_devices(&self, sys_class_block: &Path) -> io::Result<Vec<String>>;
    /// Up to `len` bytes from the start of the device node `device` (where labels are).
    fn read_head(&self, device: &Path, len: usize) -> io::Result<Vec<u8>>;
    /// `mount(2)` of `device` on `target` as `fstype`, read-only, `nosuid`, `nodev`, `noexec`.
    fn mount_ro(&self, device: &Path, target: &Path, fstype: &str) -> io::Result<()>;
    /// `umount2(2)` of `target`.
    fn unmount(&self, target: &Path) -> io::Result<()>;
}

/// The real system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDrive;

fn list_names(dir: &Path) -> io::Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect())
}

fn head(device: &Path, len: usize) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(len);
    std::fs::File::open(device)?
        .take(len as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

impl Drive for RealDrive {
    fn block_devices(&self, sys_class_block: &Path) -> io::Result<Vec<String>> {
        list_names(sys_class_block)
    }

    fn read_head(&self, device: &Path, len: usize) -> io::Result<Vec<u8>> {
        head(device, len)
    }

    fn mount_ro(&self, device: &Path, target: &Path, fstype: &str) -> io::Result<()> {
        use nix::mount::MsFlags as M;
        // The drive's content is untrusted input: nothing on it may run, be a device node, or
        // gain privileges, and nothing is ever written to it.
        let flags = M::MS_RDONLY | M::MS_NOSUID | M::MS_NODEV | M::MS_NOEXEC;
        nix::mount::mount(Some(device), target, Some(fstype), flags, None::<&str>)
            .map_err(io::Error::from)
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        nix::mount::umount2(target, nix::mount::MntFlags::empty()).map_err(io::Error::from)
    }
}

/// One recorded call on [`RecordingDrive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveCall {
    BlockDevices {
        dir: PathBuf,
    },
    ReadHead {
        device: PathBuf,
        len: usize,
    },
    MountRo {
        device: PathBuf,
        target: PathBuf,
        fstype: String,
    },
    Unmount {
        target: PathBuf,
    },
}

/// A fake that records calls. The probe reads what a test put under its temporary root (device
/// names in its `/sys/class/block`, device images in its `/dev`). A mount succeeds only for the filesystem types given to
/// [`RecordingDrive::accepting`]; a successful mount writes the fake drive's files under the
/// target (so readers see them there), and the unmount deletes them again.
#[derive(Debug, Default)]
pub struct RecordingDrive {
    calls: Mutex<Vec<DriveCall>>,
    accepts: Vec<String>,
    files: BTreeMap<PathBuf, Vec<u8>>,
    unmount_error: Option<io::ErrorKind>,
}

impl RecordingDrive {
    /// A fake on which every mount fails (`EINVAL`, as the kernel answers a wrong type).
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts of `fstype` succeed.
    pub fn accepting(mut self, fstype: &str) -> Self {
        self.accepts.push(fstype.to_string());
        self
    }

    /// A file on the fake drive (`rel` relative to the drive's root).
    pub fn with_file(mut self, rel: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.insert(PathBuf::from(rel), contents.into());
        self
    }

    /// Makes `unmount` fail with `kind` (after recording it; the files stay).
    pub fn failing_unmount(mut self, kind: io::ErrorKind) -> Self {
        self.unmount_error = Some(kind);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<DriveCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: DriveCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }
}

impl Drive for RecordingDrive {
    fn block_devices(&self, sys_class_block: &Path) -> io::Result<Vec<String>> {
        self.record(DriveCall::BlockDevices {
            dir: sys_class_block.to_path_buf(),
        });
        list_names(sys_class_block)
    }

    fn read_head(&self, device: &Path, len: usize) -> io::Result<Vec<u8>> {
        self.record(DriveCall::ReadHead {
            device: device.to_path_buf(),
            len,
        });
        head(device, len)
    }

    fn mount_ro(&self, device: &Path, target: &Path, fstype: &str) -> io::Result<()> {
        self.record(DriveCall::MountRo {
            device: device.to_path_buf(),
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
        });
        if !self.accepts.iter().any(|a| a == fstype) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        for (rel, contents) in &self.files {
            let p = target.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, contents)?;
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        self.record(DriveCall::Unmount {
            target: target.to_path_buf(),
        });
        if let Some(kind) = self.unmount_error {
            return Err(io::Error::new(kind, "unmount refused (recording fake)"));
        }
        // What a real unmount does to the directory: it is empty again.
        let entries = std::fs::read_dir(target)?;
        for e in entries {
            let p = e?.path();
            if p.is_dir() {
                std::fs::remove_dir_all(p)?;
            } else {
                std::fs::remove_file(p)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_mount_shows_files_until_unmounted_and_records_the_calls() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingDrive::new()
            .accepting("vfat")
            .with_file("openstack/latest/user_data", "x");
        let e = sys
            .mount_ro(Path::new("/dev/vdb"), dir.path(), "iso9660")
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        sys.mount_ro(Path::new("/dev/vdb"), dir.path(), "vfat")
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("openstack/latest/user_data")).unwrap(),
            b"x"
        );
        sys.unmount(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(sys.calls().len(), 3);
    }

    #[test]
    fn real_mount_of_a_missing_device_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let e = RealDrive
            .mount_ro(Path::new("/nonexistent/config-2"), dir.path(), "iso9660")
            .unwrap_err();
        // ENOENT as root, EPERM otherwise: either way an error that names no secret.
        assert!(e.raw_os_error().is_some(), "{e}");
        assert!(RealDrive.unmount(dir.path()).is_err());
    }
}
