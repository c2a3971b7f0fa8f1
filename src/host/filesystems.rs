//! A filesystem's module loaded when something is about to mount it, as the kernel's own
//! `request_module("fs-<type>")` would through `/sbin/modprobe` — which an initramfs without
//! modprobe does not have (the mount then fails with `ENODEV`).
//!
//! The config-drive reader mounts iso9660 (then vfat) only when a block device with the
//! drive's label exists; just before each attempt it asks [`FsModules::ensure`], which does
//! nothing when the kernel already has the type (`/proc/filesystems`: built in, or loaded),
//! and otherwise loads the module of alias `fs-<type>` (isofs, vfat with fat) from the image's
//! index, through the [`Host`] seam, with what it needs — recorded in the log and the timeline
//! as a `module` step for that filesystem.

use super::load::load_all;
use super::modules::{self, ModuleIndex, ModulePlan, ModuleRequest, Resolved};
use super::{Action, HostError, HostReport, Outcome};
use crate::fs::root::Root;
use crate::sys::host::Host;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What [`FsModules::ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsReady {
    /// `/proc/filesystems` lists the type already.
    Available,
    /// These modules were loaded (in order).
    Loaded(Vec<String>),
    /// The kernel has no such module (not shipped, or built in without being listed): the
    /// mount will say what is wrong.
    NotShipped,
}

/// Whether `/proc/filesystems` under `root` lists `fstype` (`nodev\tproc`, `\tiso9660`).
pub fn available(root: &Root, fstype: &str) -> bool {
    root.join("/proc/filesystems")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|t| {
            t.lines()
                .any(|l| l.split_whitespace().last() == Some(fstype))
        })
}

/// Loads filesystem modules on demand: where the running kernel's files are, and the seam.
#[derive(Debug, Clone)]
pub struct FsModules {
    root: Root,
    host: Arc<dyn Host>,
}

impl FsModules {
    /// `root`: where the running kernel's `/proc` and `/lib/modules` are (`/` at boot).
    pub fn new(root: Root, host: Arc<dyn Host>) -> Self {
        Self { root, host }
    }

    /// Makes `fstype` mountable if the kernel does not have it yet (see the module doc).
    pub fn ensure(&self, fstype: &str) -> Result<FsReady, HostError> {
        if available(&self.root, fstype) {
            return Ok(FsReady::Available);
        }
        let release = self
            .host
            .uname_release()
            .map_err(|source| HostError::Uname { source })?;
        let index = ModuleIndex::load(&self.root, &release)?;
        let alias = format!("fs-{fstype}");
        if !matches!(index.resolve(&alias), Resolved::Modules(_)) {
            return Ok(FsReady::NotShipped);
        }
        let mut plan = ModulePlan {
            kernel_compression: modules::kernel_compression(&self.root),
            ..ModulePlan::default()
        };
        let request = ModuleRequest {
            name: alias,
            source: format!("mounting {fstype}"),
            required: true,
        };
        let mut notes = Vec::new();
        modules::place_requests(
            &mut plan,
            vec![request],
            &index,
            &self.root,
            &BTreeMap::new(),
            &mut notes,
        )?;
        let mut report = HostReport::default();
        let mut loaded = Vec::new();
        let mut failures = Vec::new();
        for (l, done) in plan
            .loads
            .iter()
            .zip(load_all(&plan.loads, &self.root, &*self.host))
        {
            if matches!(done.outcome, Outcome::Done | Outcome::AlreadyDone) {
                loaded.push(l.name.clone());
            }
            if let Some(e) = done.error {
                failures.push(e);
            }
            report.record_took(
                Action::LoadModule {
                    name: l.name.clone(),
                    path: l.path.clone(),
                    method: l.method,
                    why: Some(format!("filesystem {fstype}")),
                },
                done.outcome,
                done.started,
                done.took,
            );
        }
        match failures.pop() {
            Some(e) => Err(e),
            None => Ok(FsReady::Loaded(loaded)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::testutil::{synthetic_ko, FakeRoot, RELEASE};
    use crate::sys::host::{HostCall, RecordingHost};

    fn node() -> FakeRoot {
        let r = FakeRoot::new();
        let dir = format!("/lib/modules/{RELEASE}");
        r.write(
            &format!("{dir}/modules.dep"),
            "kernel/fs/isofs/isofs.ko:\nkernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\nkernel/fs/fat/fat.ko:\n",
        );
        r.write(
            &format!("{dir}/modules.alias"),
            "alias fs-iso9660 isofs\nalias iso9660 isofs\nalias fs-vfat vfat\n",
        );
        for m in ["isofs/isofs", "fat/vfat", "fat/fat"] {
            r.write(&format!("{dir}/kernel/fs/{m}.ko"), synthetic_ko(&[]));
        }
        r.write("/proc/filesystems", "nodev\tsysfs\nnodev\tproc\n\text4\n");
        r
    }

    #[test]
    fn proc_filesystems_is_read_by_type_name() {
        let r = node();
        assert!(available(&r.root, "ext4") && available(&r.root, "proc"));
        assert!(!available(&r.root, "iso9660") && !available(&r.root, "ext"));
        assert!(!available(&FakeRoot::new().root, "ext4"));
    }

    #[test]
    fn a_missing_filesystem_loads_its_module_with_dependencies_once() {
        let r = node();
        let fake = Arc::new(RecordingHost::new(RELEASE).with_kernel_root(r.dir.path()));
        let fs = FsModules::new(r.root.clone(), fake.clone());
        assert_eq!(
            fs.ensure("iso9660").unwrap(),
            FsReady::Loaded(vec!["isofs".into()])
        );
        assert_eq!(
            fs.ensure("vfat").unwrap(),
            FsReady::Loaded(vec!["fat".into(), "vfat".into()])
        );
        assert_eq!(fake.loaded(), ["isofs", "fat", "vfat"]);
        // Already there (built in, or loaded before): nothing is loaded.
        assert_eq!(fs.ensure("ext4").unwrap(), FsReady::Available);
        // What the image does not ship: nothing to do, the mount reports it.
        assert_eq!(fs.ensure("btrfs").unwrap(), FsReady::NotShipped);
        assert_eq!(fake.loaded().len(), 3);
        assert!(fake
            .calls()
            .iter()
            .all(|c| !matches!(c, HostCall::InitModule { .. })));
    }

    #[test]
    fn a_failed_load_is_an_error_naming_the_module() {
        let r = node();
        let fake = Arc::new(RecordingHost::new(RELEASE).failing_load("isofs", libc::ENOEXEC));
        let e = FsModules::new(r.root.clone(), fake)
            .ensure("iso9660")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("loading module isofs from /lib/modules/"),
            "{e}"
        );
    }
}
