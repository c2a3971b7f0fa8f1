//! Filesystem labels read straight from block devices, for an initramfs without udev (so without
//! `/dev/disk/by-label`).
//!
//! Only the two formats a config drive comes in are recognised, each by its own signature, so a
//! random disk never "has" a label:
//!
//! * ISO 9660: the primary volume descriptor in sector 16 (byte 32768) starts with type 1 and
//!   `CD001`; its volume identifier is the 32 bytes at 32808, padded with spaces.
//! * FAT: a boot sector ending in `55 AA` with a sane bytes-per-sector; FAT12/16 keep the
//!   extended boot signature `0x29` at byte 38 and the 11-byte volume label at 43, FAT32 (whose
//!   16-bit sectors-per-FAT at byte 22 is zero) keeps them at 66 and 71. Padded with spaces.

use crate::fs::root::Root;
use crate::sys::Drive;
use std::path::PathBuf;

/// How many bytes of a device [`label`] needs (the end of the ISO 9660 volume identifier).
pub const PROBE_LEN: usize = ISO_VOLUME_ID + 32;

const ISO_PVD: usize = 16 * 2048;
const ISO_VOLUME_ID: usize = ISO_PVD + 40;

/// The filesystem a label was read from (also the `mount(2)` type to try first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Iso9660,
    Vfat,
}

impl FsKind {
    pub fn mount_type(self) -> &'static str {
        match self {
            FsKind::Iso9660 => "iso9660",
            FsKind::Vfat => "vfat",
        }
    }
}

fn padded(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    let s = s.trim_end_matches([' ', '\0']);
    (!s.is_empty()).then(|| s.to_string())
}

/// The filesystem label in the first bytes of a device, when they hold an ISO 9660 or FAT
/// filesystem that has one. `bytes` may be shorter than [`PROBE_LEN`] (a small FAT image).
pub fn label(bytes: &[u8]) -> Option<(FsKind, String)> {
    if let Some(pvd) = bytes.get(ISO_PVD..ISO_PVD + 6) {
        if pvd == b"\x01CD001" {
            return padded(bytes.get(ISO_VOLUME_ID..ISO_VOLUME_ID + 32)?)
                .map(|l| (FsKind::Iso9660, l));
        }
    }
    let boot = bytes.get(..512)?;
    if boot[510..512] != [0x55, 0xAA] {
        return None;
    }
    let bytes_per_sector = u16::from_le_bytes([boot[11], boot[12]]);
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096) {
        return None;
    }
    let fat16_sectors = u16::from_le_bytes([boot[22], boot[23]]);
    let (sig, at) = if fat16_sectors == 0 {
        (66, 71)
    } else {
        (38, 43)
    };
    if boot[sig] != 0x29 {
        return None;
    }
    padded(&boot[at..at + 11]).map(|l| (FsKind::Vfat, l))
}

/// The first block device under `root` whose filesystem label is one of `labels` (compared
/// case-insensitively, as FAT labels are often upper-cased), from the devices the kernel lists
/// in `/sys/class/block` and their nodes in `/dev`. Unreadable devices (an empty CD drive) are
/// skipped. Devices are probed in name order, so the answer does not depend on readdir order.
/// Both reads go through the drive seam.
pub fn find_by_label(root: &Root, drive: &dyn Drive, labels: &[&str]) -> Option<(PathBuf, FsKind)> {
    let class = root.join("/sys/class/block").ok()?;
    let mut names = drive.block_devices(&class).ok()?;
    names.sort();
    names.into_iter().find_map(|name| {
        let dev = root.join(format!("/dev/{name}")).ok()?;
        let buf = drive.read_head(&dev, PROBE_LEN).ok()?;
        let (kind, l) = label(&buf)?;
        labels
            .iter()
            .any(|want| want.eq_ignore_ascii_case(&l))
            .then_some((dev, kind))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(volume_id: &str) -> Vec<u8> {
        let mut b = vec![0u8; PROBE_LEN + 2048];
        b[ISO_PVD..ISO_PVD + 6].copy_from_slice(b"\x01CD001");
        b[ISO_VOLUME_ID..ISO_VOLUME_ID + 32].fill(b' ');
        b[ISO_VOLUME_ID..ISO_VOLUME_ID + volume_id.len()].copy_from_slice(volume_id.as_bytes());
        b
    }

    fn fat(label: &str, fat32: bool) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        let (sig, at) = if fat32 {
            (66, 71)
        } else {
            b[22..24].copy_from_slice(&8u16.to_le_bytes());
            (38, 43)
        };
        b[sig] = 0x29;
        b[at..at + 11].fill(b' ');
        b[at..at + label.len()].copy_from_slice(label.as_bytes());
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    #[test]
    fn iso9660_volume_id_is_read_and_unpadded() {
        assert_eq!(
            label(&iso("config-2")),
            Some((FsKind::Iso9660, "config-2".into()))
        );
        let mut no_magic = iso("config-2");
        no_magic[ISO_PVD + 1] = b'X';
        assert_eq!(label(&no_magic), None);
        assert_eq!(label(&iso("")), None, "a blank volume id is no label");
        // Cut off inside the volume id: no label rather than a wrong one.
        assert_eq!(label(&iso("config-2")[..ISO_VOLUME_ID + 10]), None);
    }

    #[test]
    fn fat16_and_fat32_labels_are_read_from_their_own_offsets() {
        assert_eq!(
            label(&fat("CONFIG-2", false)),
            Some((FsKind::Vfat, "CONFIG-2".into()))
        );
        assert_eq!(
            label(&fat("config-2", true)),
            Some((FsKind::Vfat, "config-2".into()))
        );
        // A FAT32 label read at the FAT16 offset would be garbage: the layouts differ.
        let mut b = fat("config-2", true);
        b[22] = 1;
        assert_eq!(label(&b), None);
    }

    #[test]
    fn random_bytes_and_short_reads_have_no_label() {
        assert_eq!(label(&[]), None);
        assert_eq!(label(&[0u8; 100]), None);
        let mut b = fat("config-2", false);
        b[511] = 0;
        assert_eq!(label(&b), None, "no boot signature");
        let mut b = fat("config-2", false);
        b[11..13].copy_from_slice(&7u16.to_le_bytes());
        assert_eq!(label(&b), None, "impossible sector size");
        let mut b = fat("config-2", false);
        b[38] = 0;
        assert_eq!(label(&b), None, "no extended boot signature");
        let mut b = fat("config-2", false);
        b[43] = 0xFF;
        assert_eq!(label(&b), None, "not text");
    }

    #[test]
    fn finds_the_device_under_the_root_from_sys_class_block() {
        let root = tempfile::tempdir().unwrap();
        let r = Root::new(root.path());
        let drive = crate::sys::RecordingDrive::new();
        assert_eq!(find_by_label(&r, &drive, &["config-2"]), None);
        for name in ["sr0", "vda", "vdb"] {
            std::fs::create_dir_all(root.path().join("sys/class/block").join(name)).unwrap();
        }
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        // vda: another filesystem; sr0: listed but no node (an empty drive); vdb: the drive.
        std::fs::write(root.path().join("dev/vda"), fat("EFI", false)).unwrap();
        std::fs::write(root.path().join("dev/vdb"), fat("CONFIG-2", true)).unwrap();
        assert_eq!(
            find_by_label(&r, &drive, &["config-2"]),
            Some((root.path().join("dev/vdb"), FsKind::Vfat))
        );
        std::fs::write(root.path().join("dev/sr0"), iso("config-2")).unwrap();
        assert_eq!(
            find_by_label(&r, &drive, &["config-2"]),
            Some((root.path().join("dev/sr0"), FsKind::Iso9660))
        );
        assert_eq!(find_by_label(&r, &drive, &["cidata"]), None);
        // Every read went through the seam: the listing, then each listed node in name order
        // (sr0's node read fails while it has none; the fake still records the attempt).
        use crate::sys::drive::DriveCall;
        let calls = drive.calls();
        assert!(calls.iter().all(|c| matches!(
            c,
            DriveCall::BlockDevices { .. } | DriveCall::ReadHead { .. }
        )));
        assert_eq!(
            calls[1],
            DriveCall::BlockDevices {
                dir: root.path().join("sys/class/block")
            }
        );
        assert!(calls.contains(&DriveCall::ReadHead {
            device: root.path().join("dev/vdb"),
            len: PROBE_LEN
        }));
    }
}
