//! OpenStack: the config drive (a filesystem labelled `config-2`) when there is one, else the
//! metadata service.
//!
//! The config drive is preferred, as cloud-init does: it needs no network, and some clouds only
//! offer it. Finding it ([`find_config_drive`]) is a look at `/dev/disk/by-label/config-2` under
//! the root, or — in an initramfs, where no udev made that link — reading the filesystem labels
//! of the block devices in `/sys/class/block` ([`label`]). Reading it ([`read_config_drive`])
//! mounts it read-only through the [`Drive`] seam at a private directory, copies the few
//! small files kubejoin needs into memory ([`DriveData`]), and unmounts it and removes the
//! directory again before returning — also when something failed on the way. The provider then
//! answers from memory: nothing of the drive stays mounted during the join, and user-data is
//! never written anywhere.

pub mod label;
#[cfg(test)]
mod mock_tests;

use super::http::{Request, Retry, Transport};
use super::{join_url, Context, Http, MetadataError, NodeFacts, Platform, Provider, UserData};
use super::{MAX_FACT, MAX_USER_DATA};
use crate::fs::root::Root;
use crate::host::filesystems::FsModules;
use crate::sys::drive::Drive;
use futures_util::future::BoxFuture;
use label::FsKind;
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DEFAULT_BASE: &str = "http://169.254.169.254";
pub const USER_DATA_PATH: &str = "/openstack/latest/user_data";
const META_DATA_PATH: &str = "/openstack/latest/meta_data.json";
/// The EC2-compatible document on the config drive, and the EC2-compatible path on the service.
const EC2_META_DATA_JSON: &str = "ec2/latest/meta-data.json";
const EC2_LOCAL_IPV4: &str = "/latest/meta-data/local-ipv4";

/// Filesystem labels of a config drive (vfat drives carry it upper-cased).
pub const LABELS: [&str; 2] = ["config-2", "CONFIG-2"];

/// Where the drive is mounted while it is read (a private directory under the root's `/run`).
pub const MOUNT_DIR: &str = "/run/kubejoin/config-drive";

/// The config drive's device node under `root`, if the machine has one, and the filesystem its
/// label was read from (`None` when found through udev's by-label link). Devices are probed
/// through `drive`.
pub fn find_config_drive(root: &Root, drive: &dyn Drive) -> Option<(PathBuf, Option<FsKind>)> {
    LABELS
        .iter()
        .filter_map(|l| root.join(format!("/dev/disk/by-label/{l}")).ok())
        .find(|p| p.exists())
        .map(|p| (p, None))
        .or_else(|| label::find_by_label(root, drive, &LABELS).map(|(p, k)| (p, Some(k))))
}

/// What kubejoin reads from a config drive, held in memory once the drive is unmounted.
#[derive(Clone, PartialEq, Eq)]
pub struct DriveData {
    /// The device it came from, for messages.
    pub device: PathBuf,
    pub user_data: Option<Vec<u8>>,
    pub meta_data: Option<Vec<u8>>,
    pub ec2_meta_data: Option<Vec<u8>>,
}

impl std::fmt::Debug for DriveData {
    // User-data can hold a token: only its size is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveData")
            .field("device", &self.device)
            .field("user_data", &self.user_data.as_ref().map(Vec::len))
            .field("meta_data", &self.meta_data.as_ref().map(Vec::len))
            .field("ec2_meta_data", &self.ec2_meta_data.as_ref().map(Vec::len))
            .finish()
    }
}

/// A bounded read of a file of the drive; `Ok(None)` when it does not exist.
fn read_bounded(dir: &Path, rel: &str, limit: usize) -> Result<Option<Vec<u8>>, MetadataError> {
    let path = dir.join(rel);
    let err = |source| MetadataError::ConfigDrive {
        provider: Platform::OpenStack,
        path: path.clone(),
        source,
    };
    // The drive's content is input, not trusted: a symlink on it (Rock Ridge and vfat images can
    // carry them) would resolve in this system's tree and could feed one of its files in as
    // "user-data". Every component below the mount point must be a plain directory or file.
    let mut at = dir.to_path_buf();
    for part in Path::new(rel).components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is a symlink; refusing to follow it", at.display()),
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e)),
        }
    }
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let mut buf = Vec::new();
    f.take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(err)?;
    if buf.len() > limit {
        return Err(MetadataError::TooLarge {
            provider: Platform::OpenStack,
            url: path.display().to_string(),
            limit,
        });
    }
    Ok(Some(buf))
}

impl DriveData {
    /// Reads the files kubejoin uses from a mounted drive at `dir` (bounded reads).
    pub fn read(dir: &Path, device: &Path) -> Result<Self, MetadataError> {
        Ok(Self {
            device: device.to_path_buf(),
            user_data: read_bounded(dir, USER_DATA_PATH.trim_start_matches('/'), MAX_USER_DATA)?,
            meta_data: read_bounded(dir, META_DATA_PATH.trim_start_matches('/'), MAX_FACT)?,
            ec2_meta_data: read_bounded(dir, EC2_META_DATA_JSON, MAX_FACT)?,
        })
    }

    /// The drive's user-data, or the matching "no user-data" error.
    pub fn user_data(&self) -> Result<UserData, MetadataError> {
        let location = self.location(USER_DATA_PATH);
        match &self.user_data {
            None => Err(MetadataError::NoUserDataFile {
                provider: Platform::OpenStack,
                path: PathBuf::from(USER_DATA_PATH),
                device: self.device.clone(),
            }),
            Some(b) if b.iter().all(u8::is_ascii_whitespace) => Err(MetadataError::EmptyUserData {
                provider: Platform::OpenStack,
                url: location,
            }),
            Some(bytes) => Ok(UserData {
                bytes: bytes.clone(),
                location,
            }),
        }
    }

    /// Where a file of the drive is, for messages: `/dev/vdb:/openstack/latest/user_data`.
    fn location(&self, path: &str) -> String {
        format!(
            "{}:/{}",
            self.device.display(),
            path.trim_start_matches('/')
        )
    }
}

/// Unmounts the drive (if mounted) and removes the mount directory when dropped, so every way
/// out of [`read_config_drive`] — success, an error, a panic in a test — cleans up.
struct Mounted<'a> {
    sys: &'a dyn Drive,
    dir: PathBuf,
    mounted: bool,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = self.sys.unmount(&self.dir) {
                // The directory stays (it is a mount point); the drive is read-only, so
                // nothing is lost, but say so: a later run will find the directory busy.
                crate::warn!(
                    "unmounting the config drive from {}: {e}",
                    self.dir.display()
                );
                return;
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            crate::warn!(
                "removing the config drive's mount directory {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// Mounting or reading a config drive failed.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("creating the config drive's mount directory {dir}")]
    MountDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "mounting the config drive {device} read-only on {dir} (tried {})",
        tried.iter().map(|(t, e)| format!("{t}: {e}")).collect::<Vec<_>>().join("; ")
    )]
    Mount {
        device: PathBuf,
        dir: PathBuf,
        tried: Vec<(&'static str, std::io::Error)>,
    },
    #[error(transparent)]
    Read(#[from] MetadataError),
}

/// Mounts the config drive `device` read-only (`nosuid,nodev,noexec`) at `dir` — trying
/// `first` (the type its label was read from), else iso9660 then vfat — reads what kubejoin
/// needs into memory, then unmounts it and removes `dir`, whatever happened. With `fs`, each
/// type's module is loaded first when the kernel does not have it yet (an initramfs has no
/// modprobe for the kernel to ask; [`FsModules`]).
pub fn read_config_drive(
    sys: &dyn Drive,
    device: &Path,
    dir: &Path,
    first: Option<FsKind>,
    fs: Option<&FsModules>,
) -> Result<DriveData, DriveError> {
    let mkdir_err = |source| DriveError::MountDir {
        dir: dir.to_path_buf(),
        source,
    };
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(mkdir_err)?;
    }
    // A leftover empty directory (a run that was killed) is reused; one with content, or a
    // mount still on it, is not: mounting over it would hide what is there.
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_dir(dir).map_err(mkdir_err)?;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(mkdir_err)?;
        }
        Err(e) => return Err(mkdir_err(e)),
    }
    let mut guard = Mounted {
        sys,
        dir: dir.to_path_buf(),
        mounted: false,
    };
    let mut order = vec![FsKind::Iso9660, FsKind::Vfat];
    if let Some(f) = first {
        order.retain(|k| *k != f);
        order.insert(0, f);
    }
    let mut tried = Vec::new();
    for kind in order {
        if let Some(fs) = fs {
            // A failed load is not the end: the mount says what the kernel thinks.
            if let Err(e) = fs.ensure(kind.mount_type()) {
                crate::warn!(
                    "config drive {}: making {} mountable: {e}",
                    device.display(),
                    kind.mount_type()
                );
            }
        }
        match sys.mount_ro(device, dir, kind.mount_type()) {
            Ok(()) => {
                guard.mounted = true;
                break;
            }
            Err(e) => tried.push((kind.mount_type(), e)),
        }
    }
    if !guard.mounted {
        return Err(DriveError::Mount {
            device: device.to_path_buf(),
            dir: dir.to_path_buf(),
            tried,
        });
    }
    let data = DriveData::read(dir, device)?;
    drop(guard);
    Ok(data)
}

/// The OpenStack provider.
#[derive(Debug)]
pub struct OpenStack {
    http: Http,
    base: String,
    drive: Option<Arc<DriveData>>,
}

pub fn build(ctx: &Context) -> Box<dyn Provider> {
    Box::new(OpenStack::new(
        &ctx.endpoints.openstack,
        ctx.config_drive.clone(),
        ctx.transport.clone(),
        ctx.retry.clone(),
    ))
}

#[derive(serde::Deserialize)]
struct MetaData {
    hostname: Option<String>,
}

#[derive(serde::Deserialize)]
struct Ec2MetaData {
    #[serde(rename = "local-ipv4")]
    local_ipv4: Option<String>,
}

impl OpenStack {
    /// `drive`: what was read from the config drive, when there is one (it then answers
    /// everything).
    pub fn new(
        base: &str,
        drive: Option<Arc<DriveData>>,
        transport: Arc<dyn Transport>,
        retry: Retry,
    ) -> Self {
        Self {
            http: Http::new(Platform::OpenStack, transport, retry),
            base: base.to_string(),
            drive,
        }
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        where_: &str,
        bytes: &[u8],
    ) -> Result<T, MetadataError> {
        serde_json::from_slice(bytes).map_err(|e| MetadataError::Malformed {
            provider: Platform::OpenStack,
            url: where_.to_string(),
            reason: e.to_string(),
        })
    }
}

impl Provider for OpenStack {
    fn platform(&self) -> Platform {
        Platform::OpenStack
    }

    fn user_data(&self) -> BoxFuture<'_, Result<UserData, MetadataError>> {
        Box::pin(async move {
            if let Some(drive) = &self.drive {
                return drive.user_data();
            }
            self.http
                .user_data(Request::get(
                    join_url(&self.base, USER_DATA_PATH),
                    MAX_USER_DATA,
                ))
                .await
        })
    }

    fn node_facts(&self) -> BoxFuture<'_, Result<NodeFacts, MetadataError>> {
        Box::pin(async move {
            let (meta, ec2, meta_where, ec2_where) = match &self.drive {
                Some(drive) => {
                    let ec2_where = drive.location(EC2_META_DATA_JSON);
                    (
                        drive.meta_data.clone(),
                        drive
                            .ec2_meta_data
                            .as_ref()
                            .map(|b| self.json::<Ec2MetaData>(&ec2_where, b))
                            .transpose()?
                            .and_then(|m| m.local_ipv4),
                        drive.location(META_DATA_PATH),
                        ec2_where,
                    )
                }
                None => {
                    let murl = join_url(&self.base, META_DATA_PATH);
                    let iurl = join_url(&self.base, EC2_LOCAL_IPV4);
                    (
                        self.http
                            .text(Request::get(&murl, MAX_FACT))
                            .await?
                            .map(String::into_bytes),
                        self.http.text(Request::get(&iurl, MAX_FACT)).await?,
                        murl,
                        iurl,
                    )
                }
            };
            let hostname = match meta {
                Some(b) => self.json::<MetaData>(&meta_where, &b)?.hostname,
                None => None,
            };
            Ok(NodeFacts {
                hostname: hostname.filter(|h| !h.is_empty()),
                ipv4: self.http.ip::<Ipv4Addr>(&ec2_where, ec2)?,
                ipv6: None,
            })
        })
    }
}
