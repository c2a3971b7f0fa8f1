//! Equinix Metal: `https://metadata.platformequinix.com` (`/userdata`, `/metadata` JSON). The
//! service is reached over HTTPS and verified against the system trust store (the transport
//! decides the roots; tests inject their own).

#[cfg(test)]
mod mock_tests;

use super::http::{Request, Retry, Transport};
use super::{join_url, Context, Http, MetadataError, NodeFacts, Platform, Provider, UserData};
use super::{MAX_FACT, MAX_USER_DATA};
use futures_util::future::BoxFuture;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub const DEFAULT_BASE: &str = "https://metadata.platformequinix.com";

/// The Equinix Metal provider.
#[derive(Debug)]
pub struct Equinix {
    http: Http,
    base: String,
}

pub fn build(ctx: &Context) -> Box<dyn Provider> {
    Box::new(Equinix::new(
        &ctx.endpoints.equinix,
        ctx.transport.clone(),
        ctx.retry.clone(),
    ))
}

#[derive(serde::Deserialize)]
struct Device {
    hostname: Option<String>,
    #[serde(default)]
    network: Network,
}

#[derive(serde::Deserialize, Default)]
struct Network {
    #[serde(default)]
    addresses: Vec<Address>,
}

#[derive(serde::Deserialize)]
struct Address {
    address: String,
    address_family: u8,
    #[serde(default)]
    public: bool,
}

impl Equinix {
    pub fn new(base: &str, transport: Arc<dyn Transport>, retry: Retry) -> Self {
        Self {
            http: Http::new(Platform::Equinix, transport, retry),
            base: base.to_string(),
        }
    }
}

/// The first address of `family` (private preferred: cluster traffic stays on the private
/// network when the device has one).
fn pick(addrs: &[Address], family: u8) -> Option<IpAddr> {
    let of = |public: bool| {
        addrs
            .iter()
            .filter(|a| a.address_family == family && a.public == public)
            .find_map(|a| a.address.parse().ok())
    };
    of(false).or_else(|| of(true))
}

impl Provider for Equinix {
    fn platform(&self) -> Platform {
        Platform::Equinix
    }

    fn user_data(&self) -> BoxFuture<'_, Result<UserData, MetadataError>> {
        Box::pin(async move {
            self.http
                .user_data(Request::get(
                    join_url(&self.base, "/userdata"),
                    MAX_USER_DATA,
                ))
                .await
        })
    }

    fn node_facts(&self) -> BoxFuture<'_, Result<NodeFacts, MetadataError>> {
        Box::pin(async move {
            let url = join_url(&self.base, "/metadata");
            let Some(text) = self.http.text(Request::get(&url, MAX_FACT)).await? else {
                return Ok(NodeFacts::default());
            };
            let d: Device = serde_json::from_str(&text).map_err(|e| MetadataError::Malformed {
                provider: Platform::Equinix,
                url: url.clone(),
                reason: format!("not the device metadata JSON: {e}"),
            })?;
            let ipv4: Option<Ipv4Addr> = match pick(&d.network.addresses, 4) {
                Some(IpAddr::V4(ip)) => Some(ip),
                _ => None,
            };
            let ipv6: Option<Ipv6Addr> = match pick(&d.network.addresses, 6) {
                Some(IpAddr::V6(ip)) => Some(ip),
                _ => None,
            };
            Ok(NodeFacts {
                hostname: d.hostname.filter(|h| !h.is_empty()),
                ipv4,
                ipv6,
            })
        })
    }
}
