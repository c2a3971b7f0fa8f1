//! Microsoft Azure IMDS: `Metadata: true` on every request (IMDS refuses requests without it,
//! which also stops a redirected or proxied request from reaching it by accident).
//!
//! `userData` is returned base64-encoded (it is given to the Azure API that way); the decoded
//! bytes are the user's document.

#[cfg(test)]
mod mock_tests;

use super::http::{Request, Retry, Transport};
use super::{join_url, Context, Http, MetadataError, NodeFacts, Platform, Provider, UserData};
use super::{MAX_FACT, MAX_USER_DATA};
use base64::Engine as _;
use futures_util::future::BoxFuture;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub const DEFAULT_BASE: &str = "http://169.254.169.254";
pub const USER_DATA_PATH: &str =
    "/metadata/instance/compute/userData?api-version=2021-01-01&format=text";
const HOSTNAME_PATH: &str =
    "/metadata/instance/compute/osProfile/computerName?api-version=2021-01-01&format=text";
const IP_PATH: &str =
    "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-01-01&format=text";

/// The Azure provider.
#[derive(Debug)]
pub struct Azure {
    http: Http,
    base: String,
}

pub fn build(ctx: &Context) -> Box<dyn Provider> {
    Box::new(Azure::new(
        &ctx.endpoints.azure,
        ctx.transport.clone(),
        ctx.retry.clone(),
    ))
}

impl Azure {
    pub fn new(base: &str, transport: Arc<dyn Transport>, retry: Retry) -> Self {
        Self {
            http: Http::new(Platform::Azure, transport, retry),
            base: base.to_string(),
        }
    }

    fn req(&self, path: &str, limit: usize) -> Request {
        Request::get(join_url(&self.base, path), limit).header("Metadata", "true")
    }
}

impl Provider for Azure {
    fn platform(&self) -> Platform {
        Platform::Azure
    }

    fn user_data(&self) -> BoxFuture<'_, Result<UserData, MetadataError>> {
        Box::pin(async move {
            // base64 inflates by 4/3: allow the encoded form of a full-size document.
            let ud = self
                .http
                .user_data(self.req(USER_DATA_PATH, MAX_USER_DATA / 3 * 4 + 4))
                .await?;
            let compact: Vec<u8> = ud
                .bytes
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&compact)
                .map_err(|e| MetadataError::Malformed {
                    provider: Platform::Azure,
                    url: ud.location.clone(),
                    reason: format!("userData is not base64: {e}"),
                })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(MetadataError::EmptyUserData {
                    provider: Platform::Azure,
                    url: ud.location,
                });
            }
            Ok(UserData {
                bytes,
                location: ud.location,
            })
        })
    }

    fn node_facts(&self) -> BoxFuture<'_, Result<NodeFacts, MetadataError>> {
        Box::pin(async move {
            let hostname = self.http.text(self.req(HOSTNAME_PATH, MAX_FACT)).await?;
            let ip_req = self.req(IP_PATH, MAX_FACT);
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
