//! OpenStack: the config drive (a filesystem labelled `config-2`) when there is one, else the
//! metadata service.
//!
//! The config drive is preferred, as cloud-init does: it needs no network, and some clouds only
//! offer it. Finding it is a look at `/dev/disk/by-label/config-2` under the root
//! ([`find_config_drive`]); mounting it is a privileged effect and stays behind the
//! [`ConfigDriveMount`] seam, so this module only ever reads an already-mounted directory.

#[cfg(test)]
mod mock_tests;

use super::http::{Request, Retry, Transport};
use super::{join_url, Context, Http, MetadataError, NodeFacts, Platform, Provider, UserData};
use super::{MAX_FACT, MAX_USER_DATA};
use crate::root::Root;
use futures_util::future::BoxFuture;
use std::io::Read;
use std::net::Ipv4Addr;
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

/// Mounts a config drive read-only and returns the mount directory (the seam for `mount(2)`).
pub trait ConfigDriveMount: std::fmt::Debug + Send + Sync {
    fn mount(&self, device: &Path) -> std::io::Result<PathBuf>;
}

/// The config drive's device node under `root`, if the machine has one.
pub fn find_config_drive(root: &Root) -> Option<PathBuf> {
    LABELS
        .iter()
        .filter_map(|l| root.join(format!("/dev/disk/by-label/{l}")).ok())
        .find(|p| p.exists())
}

/// The OpenStack provider.
#[derive(Debug)]
pub struct OpenStack {
    http: Http,
    base: String,
    drive: Option<PathBuf>,
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
    /// `drive`: the mounted config drive, when there is one (it then answers everything).
    pub fn new(
        base: &str,
        drive: Option<PathBuf>,
        transport: Arc<dyn Transport>,
        retry: Retry,
    ) -> Self {
        Self {
            http: Http::new(Platform::OpenStack, transport, retry),
            base: base.to_string(),
            drive,
        }
    }

    /// A bounded read of a config-drive file; `Ok(None)` when it does not exist.
    fn read_drive(
        &self,
        dir: &Path,
        rel: &str,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, MetadataError> {
        let path = dir.join(rel);
        let err = |source| MetadataError::ConfigDrive {
            provider: Platform::OpenStack,
            path: path.clone(),
            source,
        };
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
            if let Some(dir) = &self.drive {
                let rel = USER_DATA_PATH.trim_start_matches('/');
                let path = dir.join(rel);
                return match self.read_drive(dir, rel, MAX_USER_DATA)? {
                    None => Err(MetadataError::NoUserDataFile {
                        provider: Platform::OpenStack,
                        path,
                    }),
                    Some(b) if b.iter().all(u8::is_ascii_whitespace) => {
                        Err(MetadataError::EmptyUserData {
                            provider: Platform::OpenStack,
                            url: path.display().to_string(),
                        })
                    }
                    Some(bytes) => Ok(UserData {
                        bytes,
                        location: path.display().to_string(),
                    }),
                };
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
                Some(dir) => {
                    let rel = META_DATA_PATH.trim_start_matches('/');
                    (
                        self.read_drive(dir, rel, MAX_FACT)?,
                        self.read_drive(dir, EC2_META_DATA_JSON, MAX_FACT)?
                            .map(|b| self.json::<Ec2MetaData>(EC2_META_DATA_JSON, &b))
                            .transpose()?
                            .and_then(|m| m.local_ipv4),
                        dir.join(rel).display().to_string(),
                        dir.join(EC2_META_DATA_JSON).display().to_string(),
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
