//! Google Compute Engine: `Metadata-Flavor: Google` on every request.
//!
//! User-data is the instance attribute `kubejoin-config` when set (a dedicated key that does
//! not collide with cloud-init's), else `user-data`.

#[cfg(test)]
mod mock_tests;

use super::http::{Request, Retry, Transport};
use super::{join_url, Context, Http, MetadataError, NodeFacts, Platform, Provider, UserData};
use super::{MAX_FACT, MAX_USER_DATA};
use futures_util::future::BoxFuture;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub const DEFAULT_BASE: &str = "http://169.254.169.254";
/// The NTP server Google documents for Compute Engine instances (the metadata server, by its
/// name). A default only: [`super::Endpoints::gcp_time`] replaces it.
pub const TIME_SERVER: &str = "metadata.google.internal";
pub const FLAVOR_HEADER: &str = "Metadata-Flavor";
pub const ATTRIBUTES: &str = "/computeMetadata/v1/instance/attributes";

/// The GCE provider.
#[derive(Debug)]
pub struct Gcp {
    http: Http,
    base: String,
}

pub fn build(ctx: &Context) -> Box<dyn Provider> {
    Box::new(Gcp::new(
        &ctx.endpoints.gcp,
        ctx.transport.clone(),
        ctx.retry.clone(),
    ))
}

impl Gcp {
    pub fn new(base: &str, transport: Arc<dyn Transport>, retry: Retry) -> Self {
        Self {
            http: Http::new(Platform::Gcp, transport, retry),
            base: base.to_string(),
        }
    }

    fn req(&self, path: &str, limit: usize) -> Request {
        Request::get(join_url(&self.base, path), limit).header(FLAVOR_HEADER, "Google")
    }
}

impl Provider for Gcp {
    fn platform(&self) -> Platform {
        Platform::Gcp
    }

    fn user_data(&self) -> BoxFuture<'_, Result<UserData, MetadataError>> {
        Box::pin(async move {
            match self
                .http
                .user_data(self.req(&format!("{ATTRIBUTES}/kubejoin-config"), MAX_USER_DATA))
                .await
            {
                Err(MetadataError::NoUserData { .. }) => {
                    self.http
                        .user_data(self.req(&format!("{ATTRIBUTES}/user-data"), MAX_USER_DATA))
                        .await
                }
                other => other,
            }
        })
    }

    fn node_facts(&self) -> BoxFuture<'_, Result<NodeFacts, MetadataError>> {
        Box::pin(async move {
            let hostname = self
                .http
                .text(self.req("/computeMetadata/v1/instance/hostname", MAX_FACT))
                .await?;
            let ip_req = self.req(
                "/computeMetadata/v1/instance/network-interfaces/0/ip",
                MAX_FACT,
            );
            let url = ip_req.url.clone();
            let ip = self.http.text(ip_req).await?;
            Ok(NodeFacts {
                hostname: hostname.filter(|h| !h.is_empty()),
                ipv4: self.http.ip::<Ipv4Addr>(&url, ip)?,
                ipv6: None,
            })
        })
    }
}
