//! Hetzner Cloud server metadata (no headers). `private-networks` is a YAML list of the
//! server's private network attachments; the first one's `ip` is the node address, else the
//! public IPv4.

#[cfg(test)]
mod mock_tests;

use super::http::{Request, Retry, Transport};
use super::{join_url, Context, Http, MetadataError, NodeFacts, Platform, Provider, UserData};
use super::{MAX_FACT, MAX_USER_DATA};
use futures_util::future::BoxFuture;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub const DEFAULT_BASE: &str = "http://169.254.169.254";
pub const USER_DATA_PATH: &str = "/hetzner/v1/userdata";
const PRIVATE_NETWORKS: &str = "/hetzner/v1/metadata/private-networks";

/// The Hetzner Cloud provider.
#[derive(Debug)]
pub struct Hetzner {
    http: Http,
    base: String,
}

pub fn build(ctx: &Context) -> Box<dyn Provider> {
    Box::new(Hetzner::new(
        &ctx.endpoints.hetzner,
        ctx.transport.clone(),
        ctx.retry.clone(),
    ))
}

#[derive(serde::Deserialize)]
struct PrivateNetwork {
    ip: Option<String>,
}

impl Hetzner {
    pub fn new(base: &str, transport: Arc<dyn Transport>, retry: Retry) -> Self {
        Self {
            http: Http::new(Platform::Hetzner, transport, retry),
            base: base.to_string(),
        }
    }
}

impl Provider for Hetzner {
    fn platform(&self) -> Platform {
        Platform::Hetzner
    }

    fn user_data(&self) -> BoxFuture<'_, Result<UserData, MetadataError>> {
        Box::pin(async move {
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
            let hostname = self
                .http
                .text(Request::get(
                    join_url(&self.base, "/hetzner/v1/metadata/hostname"),
                    MAX_FACT,
                ))
                .await?;
            let pn_url = join_url(&self.base, PRIVATE_NETWORKS);
            let private = match self.http.text(Request::get(&pn_url, MAX_FACT)).await? {
                None => None,
                Some(text) if text.trim().is_empty() => None,
                Some(text) => {
                    let nets: Vec<PrivateNetwork> =
                        crate::yaml::from_str(&text).map_err(|e| MetadataError::Malformed {
                            provider: Platform::Hetzner,
                            url: pn_url.clone(),
                            reason: format!("private-networks is not a YAML list: {e}"),
                        })?;
                    nets.into_iter().find_map(|n| n.ip)
                }
            };
            let ipv4 = match private {
                Some(ip) => self.http.ip::<Ipv4Addr>(&pn_url, Some(ip))?,
                None => {
                    let url = join_url(&self.base, "/hetzner/v1/metadata/public-ipv4");
                    let v = self.http.text(Request::get(&url, MAX_FACT)).await?;
                    self.http.ip::<Ipv4Addr>(&url, v)?
                }
            };
            Ok(NodeFacts {
                hostname: hostname.filter(|h| !h.is_empty()),
                ipv4,
                ipv6: None,
            })
        })
    }
}
