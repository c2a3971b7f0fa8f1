//! Platform detection from DMI/SMBIOS (`/sys/class/dmi/id/*` under the root), in the manner of
//! cloud-init's ds-identify: a few stable strings each cloud writes into its firmware tables.
//! Reading these files needs no network and no privileges, so detection costs nothing on bare
//! metal.

use crate::fs::root::Root;
use std::io::Read;

/// The DMI fields detection looks at (trimmed; empty when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmi {
    pub sys_vendor: String,
    pub product_name: String,
    pub product_version: String,
    pub product_uuid: String,
    pub product_serial: String,
    pub chassis_asset_tag: String,
    pub board_vendor: String,
    pub bios_vendor: String,
}

fn read(root: &Root, name: &str) -> String {
    let Ok(path) = root.join(format!("/sys/class/dmi/id/{name}")) else {
        return String::new();
    };
    let Ok(f) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut s = String::new();
    // product_uuid/product_serial are root-only on most kernels: unreadable means empty.
    let _ = f.take(4096).read_to_string(&mut s);
    s.trim().to_string()
}

impl Dmi {
    pub fn from_root(root: &Root) -> Self {
        Dmi {
            sys_vendor: read(root, "sys_vendor"),
            product_name: read(root, "product_name"),
            product_version: read(root, "product_version"),
            product_uuid: read(root, "product_uuid"),
            product_serial: read(root, "product_serial"),
            chassis_asset_tag: read(root, "chassis_asset_tag"),
            board_vendor: read(root, "board_vendor"),
            bios_vendor: read(root, "bios_vendor"),
        }
    }
}

fn starts_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Nitro instances say "Amazon EC2"; Xen instances have `ec2`-prefixed UUID and serial.
pub fn is_aws(d: &Dmi) -> bool {
    d.sys_vendor == "Amazon EC2"
        || d.board_vendor == "Amazon EC2"
        || d.bios_vendor == "Amazon EC2"
        || (starts_ci(&d.product_uuid, "ec2") && starts_ci(&d.product_serial, "ec2"))
        || d.product_version.to_ascii_lowercase().contains("amazon")
}

pub fn is_gcp(d: &Dmi) -> bool {
    d.product_name == "Google Compute Engine"
        || d.sys_vendor == "Google"
        || d.product_serial.starts_with("GoogleCloud-")
}

/// Azure's fixed chassis asset tag.
pub fn is_azure(d: &Dmi) -> bool {
    d.chassis_asset_tag == "7783-7084-3265-9085-8269-3286-77"
}

pub fn is_openstack(d: &Dmi) -> bool {
    const NAMES: [&str; 2] = ["OpenStack Nova", "OpenStack Compute"];
    NAMES.contains(&d.product_name.as_str())
        || NAMES.contains(&d.chassis_asset_tag.as_str())
        || d.sys_vendor == "OpenStack Foundation"
}

pub fn is_digitalocean(d: &Dmi) -> bool {
    d.sys_vendor == "DigitalOcean"
}

pub fn is_hetzner(d: &Dmi) -> bool {
    d.sys_vendor == "Hetzner"
}

/// For platforms that can only be chosen explicitly.
pub fn never(_: &Dmi) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::metadata::{detect, Platform};

    fn dmi(f: impl FnOnce(&mut Dmi)) -> Dmi {
        let mut d = Dmi::default();
        f(&mut d);
        d
    }

    #[test]
    fn detects_each_platform() {
        let cases = [
            (
                dmi(|d| d.sys_vendor = "Amazon EC2".into()),
                Some(Platform::Aws),
            ),
            (
                dmi(|d| {
                    d.product_uuid = "EC2E1916-9099-7CAF-FD21-012345ABCDEF".into();
                    d.product_serial = "ec2e1916-9099-7caf-fd21-012345abcdef".into();
                }),
                Some(Platform::Aws),
            ),
            (
                dmi(|d| d.product_uuid = "ec2e1916-only-the-uuid".into()),
                None,
            ),
            (
                dmi(|d| d.product_name = "Google Compute Engine".into()),
                Some(Platform::Gcp),
            ),
            (
                dmi(|d| d.chassis_asset_tag = "7783-7084-3265-9085-8269-3286-77".into()),
                Some(Platform::Azure),
            ),
            (
                dmi(|d| d.product_name = "OpenStack Nova".into()),
                Some(Platform::OpenStack),
            ),
            (
                dmi(|d| d.chassis_asset_tag = "OpenStack Compute".into()),
                Some(Platform::OpenStack),
            ),
            (
                dmi(|d| d.sys_vendor = "DigitalOcean".into()),
                Some(Platform::DigitalOcean),
            ),
            (
                dmi(|d| d.sys_vendor = "Hetzner".into()),
                Some(Platform::Hetzner),
            ),
            (dmi(|d| d.sys_vendor = "Dell Inc.".into()), None),
            (Dmi::default(), None),
        ];
        for (d, want) in cases {
            assert_eq!(detect(&d), want, "{d:?}");
        }
    }

    #[test]
    fn reads_dmi_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("sys/class/dmi/id");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sys_vendor"), "Hetzner\n").unwrap();
        std::fs::write(dir.join("product_name"), "vServer\n").unwrap();
        let d = Dmi::from_root(&Root::new(root.path()));
        assert_eq!(
            (
                d.sys_vendor.as_str(),
                d.product_name.as_str(),
                d.product_uuid.as_str()
            ),
            ("Hetzner", "vServer", "")
        );
        assert_eq!(detect(&d), Some(Platform::Hetzner));
    }
}
