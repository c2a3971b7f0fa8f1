//! DigitalOcean droplet metadata (no headers).

#[cfg(test)]
mod mock_tests;

use super::http::{Request, Retry, Transport};
use super::{join_url, Context, Http, MetadataError, NodeFacts, Platform, Provider, UserData};
use super::{MAX_FACT, MAX_USER_DATA};
use futures_util::future::BoxFuture;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub const DEFAULT_BASE: &str = "http://169.254.169.254";
pub const USER_DATA_PATH: &str = "/metadata/v1/user-data";

/// The DigitalOcean provider.
#[derive(Debug)]
pub struct DigitalOcean {
    http: Http,
    base: String,
}

pub fn build(ctx: &Context) -> Box<dyn Provider> {
    Box::new(DigitalOcean::new(
        &ctx.endpoints.digitalocean,
        ctx.transport.clone(),
        ctx.retry.clone(),
    ))
}

impl DigitalOcean {
    pub fn new(base: &str, transport: Arc<dyn Transport>, retry: Retry) -> Self {
        Self {
            http: Http::new(Platform::DigitalOcean, transport, retry),
            base: base.to_string(),
        }
    }

    async fn ip<T: std::str::FromStr>(&self, path: &str) -> Result<Option<T>, MetadataError> {
        let url = join_url(&self.base, path);
        let v = self.http.text(Request::get(&url, MAX_FACT)).await?;
        self.http.ip::<T>(&url, v)
    }
}

impl Provider for DigitalOcean {
    fn platform(&self) -> Platform {
        Platform::DigitalOcean
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
                    join_url(&self.base, "/metadata/v1/hostname"),
                    MAX_FACT,
                ))
                .await?;
            // The VPC (private) address is what cluster traffic should use; droplets without one
            // register their public address.
            let ipv4 = match self
                .ip::<Ipv4Addr>("/metadata/v1/interfaces/private/0/ipv4/address")
                .await?
            {
                Some(ip) => Some(ip),
                None => {
                    self.ip::<Ipv4Addr>("/metadata/v1/interfaces/public/0/ipv4/address")
                        .await?
                }
            };
            let ipv6 = self
                .ip::<Ipv6Addr>("/metadata/v1/interfaces/public/0/ipv6/address")
                .await?;
            Ok(NodeFacts {
                hostname: hostname.filter(|h| !h.is_empty()),
                ipv4,
                ipv6,
            })
        })
    }
}
