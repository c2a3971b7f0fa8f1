//! Cloud metadata providers: user-data (the join config), and the node's hostname and address.
//!
//! One provider per platform, each in its own folder with a sibling `mock_tests.rs` that runs it
//! against a loopback mock server; one dispatch table ([`PROVIDERS`]) from platform id to
//! constructor and DMI detector. Every provider takes its base URL in its constructor: the real
//! link-local address is only the default ([`Endpoints::default`]), and tests replace it.
//!
//! | platform | user-data | headers | node facts |
//! |---|---|---|---|
//! | `aws` | IMDSv2: `PUT /latest/api/token` then `GET /latest/user-data` | `X-aws-ec2-metadata-token-ttl-seconds`, `X-aws-ec2-metadata-token` | `local-hostname`, `local-ipv4`, `ipv6` |
//! | `gcp` | `/computeMetadata/v1/instance/attributes/kubejoin-config`, else `…/user-data` | `Metadata-Flavor: Google` | `instance/hostname`, `network-interfaces/0/ip` |
//! | `azure` | `/metadata/instance/compute/userData?api-version=2021-01-01&format=text` (base64) | `Metadata: true` | `osProfile/computerName`, first private IPv4 |
//! | `openstack` | config drive `openstack/latest/user_data`, else `/openstack/latest/user_data` | — | `meta_data.json` hostname, EC2 `local-ipv4` |
//! | `digitalocean` | `/metadata/v1/user-data` | — | `hostname`, private (else public) IPv4 |
//! | `hetzner` | `/hetzner/v1/userdata` | — | `metadata/hostname`, private network (else public) IPv4 |
//! | `equinix` | `https://metadata.platformequinix.com/userdata` | — | `/metadata` JSON |
//! | `url` | any `http(s)://` URL with `${mac}`, `${uuid}`, `${hostname}`, `${serial}` | — | — |
//!
//! Platforms with a documented time source (for a machine whose clock is wrong, `crate::clock`):
//! `aws` the Amazon Time Sync Service `169.254.169.123` ([`aws::TIME_SERVER`]), `gcp` the
//! metadata server `metadata.google.internal` ([`gcp::TIME_SERVER`]); both are defaults that
//! [`Endpoints`] replaces, like the base URLs ([`Platform::time_server`]).
//!
//! Reads are bounded ([`MAX_USER_DATA`] for user-data, [`MAX_FACT`] for everything else) and
//! every request has connect and total timeouts ([`http::Timeouts`]) plus a written-out retry
//! schedule ([`http::Retry`]). Errors name the provider and the URL. User-data is kept in memory
//! only: nothing here writes it to disk, and its `Debug` shows only its length.

pub mod aws;
pub mod azure;
pub mod digitalocean;
pub mod dmi;
pub mod equinix;
pub mod gcp;
pub mod hetzner;
pub mod http;
pub mod openstack;
pub mod recorded;
pub mod url;
pub mod userdata;

#[cfg(test)]
pub(crate) mod mock;

use crate::error::{Class, Classify};
use futures_util::future::BoxFuture;
use http::{fetch, Request, Response, Retry, Transport, TransportError};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest user-data accepted (raw, and again once decompressed).
pub const MAX_USER_DATA: usize = 1 << 20;
/// Largest response for anything but user-data (hostnames, addresses, small JSON documents).
pub const MAX_FACT: usize = 64 * 1024;

pub use crate::plan::platform::Platform;

impl Platform {
    /// The platform's documented NTP server (`host[:port]`) as `endpoints` name it, if it has
    /// one.
    pub fn time_server(self, endpoints: &Endpoints) -> Option<&str> {
        match self {
            Platform::Aws => Some(&endpoints.aws_time),
            Platform::Gcp => Some(&endpoints.gcp_time),
            _ => None,
        }
    }
}

/// User-data as the provider returned it, after the provider's own transport encoding (Azure's
/// base64) is undone — i.e. the bytes the user supplied. `Debug` shows only the length: it
/// usually holds a bootstrap token.
#[derive(Clone)]
pub struct UserData {
    pub bytes: Vec<u8>,
    /// Where it came from (URL or config-drive path), for messages.
    pub location: String,
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UserData {{ {} bytes from {} }}",
            self.bytes.len(),
            self.location
        )
    }
}

/// What a provider knows about the node itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub hostname: Option<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

impl NodeFacts {
    /// The address to register with: IPv4 when there is one (dual-stack clusters list it first).
    pub fn node_ip(&self) -> Option<IpAddr> {
        self.ipv4.map(IpAddr::V4).or(self.ipv6.map(IpAddr::V6))
    }
}

/// A metadata provider.
pub trait Provider: fmt::Debug + Send + Sync {
    fn platform(&self) -> Platform;
    /// The user-data document.
    fn user_data(&self) -> BoxFuture<'_, Result<UserData, MetadataError>>;
    /// Hostname and addresses (missing ones are `None`, not errors).
    fn node_facts(&self) -> BoxFuture<'_, Result<NodeFacts, MetadataError>>;
}

/// A metadata failure: always says which provider and which URL (or file).
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("no user-data: provider {provider} at {url} returned 404")]
    NoUserData { provider: Platform, url: String },
    #[error("no user-data: provider {provider} at {url} returned an empty document")]
    EmptyUserData { provider: Platform, url: String },
    #[error("provider {provider}: {url} returned HTTP {status}")]
    Status {
        provider: Platform,
        url: String,
        status: u16,
    },
    #[error("provider {provider}: IMDSv2 refused {url} with HTTP {status}")]
    ImdsRefused {
        provider: Platform,
        url: String,
        status: u16,
    },
    #[error("provider {provider}: no IMDSv2 session token from {url}: {reason} (IMDSv1 is never used as a fallback)")]
    ImdsToken {
        provider: Platform,
        url: String,
        reason: String,
    },
    #[error("provider {provider}: request to {url} timed out after {after:?}")]
    Timeout {
        provider: Platform,
        url: String,
        after: Duration,
    },
    #[error("provider {provider}: cannot reach {url}: {reason}")]
    Unreachable {
        provider: Platform,
        url: String,
        reason: String,
    },
    #[error("provider {provider}: reading the response from {url} failed: {reason}")]
    Transfer {
        provider: Platform,
        url: String,
        reason: String,
    },
    #[error("provider {provider}: {url} sent more than {limit} bytes")]
    TooLarge {
        provider: Platform,
        url: String,
        limit: usize,
    },
    #[error("provider {provider}: {url} returned malformed data: {reason}")]
    Malformed {
        provider: Platform,
        url: String,
        reason: String,
    },
    #[error("provider {provider}: reading {path} on the config drive")]
    ConfigDrive {
        provider: Platform,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no user-data: provider {provider} has no {path} on the config drive {device}")]
    NoUserDataFile {
        provider: Platform,
        path: PathBuf,
        device: PathBuf,
    },
    #[error("provider url: cannot substitute ${{{var}}} in the config URL {url}: {reason}")]
    Substitution {
        var: String,
        url: String,
        reason: String,
    },
    #[error(
        "refusing the plain-http config URL {url} without kubejoin.config.sha256: anyone on the path \
         could change the join config"
    )]
    InsecureUrl { url: String },
    #[error("provider {provider}: setting up the HTTP client: {reason}")]
    Client { provider: Platform, reason: String },
    #[error("provider {provider}: setting up TLS for the HTTP client")]
    Tls {
        provider: Platform,
        #[source]
        source: Box<crate::http::tls::TlsError>,
    },
}

impl MetadataError {
    /// A transport failure, with the provider and URL it happened on.
    pub fn transport(provider: Platform, url: &str, e: TransportError) -> Self {
        let url = url.to_string();
        match e {
            TransportError::Timeout(after) => MetadataError::Timeout {
                provider,
                url,
                after,
            },
            TransportError::TooLarge(limit) => MetadataError::TooLarge {
                provider,
                url,
                limit,
            },
            TransportError::Body(reason) => MetadataError::Transfer {
                provider,
                url,
                reason,
            },
            other => MetadataError::Unreachable {
                provider,
                url,
                reason: other.to_string(),
            },
        }
    }

    /// The provider the error is about.
    pub fn provider(&self) -> Platform {
        match self {
            MetadataError::NoUserData { provider, .. }
            | MetadataError::EmptyUserData { provider, .. }
            | MetadataError::Status { provider, .. }
            | MetadataError::ImdsRefused { provider, .. }
            | MetadataError::ImdsToken { provider, .. }
            | MetadataError::Timeout { provider, .. }
            | MetadataError::Unreachable { provider, .. }
            | MetadataError::TooLarge { provider, .. }
            | MetadataError::Transfer { provider, .. }
            | MetadataError::Malformed { provider, .. }
            | MetadataError::ConfigDrive { provider, .. }
            | MetadataError::NoUserDataFile { provider, .. }
            | MetadataError::Client { provider, .. }
            | MetadataError::Tls { provider, .. } => *provider,
            MetadataError::Substitution { .. } | MetadataError::InsecureUrl { .. } => Platform::Url,
        }
    }
}

/// The hint for IMDSv2 refusals and token timeouts: the classic cause is a container network
/// hop that the PUT response's default hop limit (1) does not survive.
pub const HOP_LIMIT_HINT: &str = "IMDSv2 needs a session token: if kubejoin runs in a container or behind another \
     network hop, raise the instance's HttpPutResponseHopLimit to 2 or more \
     (`aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2 --http-endpoint enabled`); \
     check that the metadata service is enabled for the instance";

impl Classify for MetadataError {
    fn class(&self) -> Class {
        match self {
            MetadataError::Timeout { .. } => Class::Timeout,
            MetadataError::NoUserData { .. }
            | MetadataError::EmptyUserData { .. }
            | MetadataError::NoUserDataFile { .. }
            | MetadataError::Malformed { .. }
            | MetadataError::Substitution { .. }
            | MetadataError::InsecureUrl { .. } => Class::Usage,
            _ => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            MetadataError::ImdsRefused { .. } | MetadataError::ImdsToken { .. } => Some(HOP_LIMIT_HINT.into()),
            MetadataError::NoUserData { .. } | MetadataError::EmptyUserData { .. } | MetadataError::NoUserDataFile { .. } => {
                Some(
                    "give the instance user-data (kubejoin YAML, a kubeadm JoinConfiguration, or a #cloud-config \
                     with a `kubejoin:` key), or pass kubejoin.* on the kernel command line"
                        .into(),
                )
            }
            MetadataError::InsecureUrl { .. } => {
                Some("use an https:// URL, or pin the document with kubejoin.config.sha256=<sha256 of the file>".into())
            }
            MetadataError::Timeout { .. } | MetadataError::Unreachable { .. } => Some(
                "check that the node's network is up and that the platform is right (kubejoin.platform=…)".into(),
            ),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shared request helper
// ---------------------------------------------------------------------------------------------

/// What every HTTP provider holds: its platform (for errors), a transport and the retry schedule.
#[derive(Debug, Clone)]
pub struct Http {
    pub platform: Platform,
    pub transport: Arc<dyn Transport>,
    pub retry: Retry,
}

impl Http {
    pub fn new(platform: Platform, transport: Arc<dyn Transport>, retry: Retry) -> Self {
        Self {
            platform,
            transport,
            retry,
        }
    }

    /// Sends `req` (with retries), mapping transport failures to errors naming provider and URL.
    pub async fn send(&self, req: &Request) -> Result<Response, MetadataError> {
        fetch(&*self.transport, req, &self.retry)
            .await
            .map_err(|e| MetadataError::transport(self.platform, &req.url, e))
    }

    /// A small text value: `Ok(None)` on 404, an error on other non-200 statuses.
    pub async fn text(&self, req: Request) -> Result<Option<String>, MetadataError> {
        let r = self.send(&req).await?;
        match r.status {
            200 => String::from_utf8(r.body)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|_| MetadataError::Malformed {
                    provider: self.platform,
                    url: req.url.clone(),
                    reason: "not UTF-8 text".into(),
                }),
            404 => Ok(None),
            status => Err(MetadataError::Status {
                provider: self.platform,
                url: req.url.clone(),
                status,
            }),
        }
    }

    /// The user-data at `req.url`: 404 and empty bodies are "no user-data" errors.
    pub async fn user_data(&self, req: Request) -> Result<UserData, MetadataError> {
        let r = self.send(&req).await?;
        user_data_from(self.platform, &req.url, r)
    }

    /// Parses an optional address value.
    pub fn ip<T: std::str::FromStr>(
        &self,
        url: &str,
        v: Option<String>,
    ) -> Result<Option<T>, MetadataError> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<T>()
                .map(Some)
                .map_err(|_| MetadataError::Malformed {
                    provider: self.platform,
                    url: url.to_string(),
                    reason: format!("{s:?} is not an IP address"),
                }),
        }
    }
}

/// Turns a user-data response into [`UserData`] or the matching "no user-data" error.
pub fn user_data_from(
    provider: Platform,
    url: &str,
    r: Response,
) -> Result<UserData, MetadataError> {
    match r.status {
        200 if r.body.iter().all(u8::is_ascii_whitespace) => Err(MetadataError::EmptyUserData {
            provider,
            url: url.to_string(),
        }),
        200 => Ok(UserData {
            bytes: r.body,
            location: url.to_string(),
        }),
        404 => Err(MetadataError::NoUserData {
            provider,
            url: url.to_string(),
        }),
        status => Err(MetadataError::Status {
            provider,
            url: url.to_string(),
            status,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The dispatch table
// ---------------------------------------------------------------------------------------------

/// Base URLs of every provider. The defaults are the real services; tests and replays replace
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub aws_ipv4: String,
    pub aws_ipv6: String,
    pub gcp: String,
    pub azure: String,
    pub openstack: String,
    pub digitalocean: String,
    pub hetzner: String,
    pub equinix: String,
    /// NTP server (`host[:port]`) of the platform's time source, where it has one.
    pub aws_time: String,
    pub gcp_time: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            aws_ipv4: aws::DEFAULT_IPV4.into(),
            aws_ipv6: aws::DEFAULT_IPV6.into(),
            gcp: gcp::DEFAULT_BASE.into(),
            azure: azure::DEFAULT_BASE.into(),
            openstack: openstack::DEFAULT_BASE.into(),
            digitalocean: digitalocean::DEFAULT_BASE.into(),
            hetzner: hetzner::DEFAULT_BASE.into(),
            equinix: equinix::DEFAULT_BASE.into(),
            aws_time: aws::TIME_SERVER.into(),
            gcp_time: gcp::TIME_SERVER.into(),
        }
    }
}

impl Endpoints {
    /// Every base URL set to `base` (one mock server for all providers). The time servers keep
    /// their defaults: they are UDP, not HTTP (set `aws_time`/`gcp_time` to point them elsewhere).
    pub fn all(base: &str) -> Self {
        Self {
            aws_ipv4: base.into(),
            aws_ipv6: base.into(),
            gcp: base.into(),
            azure: base.into(),
            openstack: base.into(),
            digitalocean: base.into(),
            hetzner: base.into(),
            equinix: base.into(),
            ..Self::default()
        }
    }
}

/// What constructors get.
#[derive(Debug, Clone)]
pub struct Context {
    pub transport: Arc<dyn Transport>,
    pub endpoints: Endpoints,
    pub retry: Retry,
    /// What was read from the OpenStack config drive (`config-2`), when there is one.
    pub config_drive: Option<Arc<openstack::DriveData>>,
}

/// One row of the dispatch table.
#[derive(Debug)]
pub struct ProviderEntry {
    pub platform: Platform,
    /// Whether DMI/SMBIOS says we run on this platform (cloud-init ds-identify style).
    pub detect: fn(&dmi::Dmi) -> bool,
    pub build: fn(&Context) -> Box<dyn Provider>,
}

/// Platform id → detector and constructor. The one place a new provider is registered.
pub const PROVIDERS: &[ProviderEntry] = &[
    ProviderEntry {
        platform: Platform::Aws,
        detect: dmi::is_aws,
        build: aws::build,
    },
    ProviderEntry {
        platform: Platform::Gcp,
        detect: dmi::is_gcp,
        build: gcp::build,
    },
    ProviderEntry {
        platform: Platform::Azure,
        detect: dmi::is_azure,
        build: azure::build,
    },
    ProviderEntry {
        platform: Platform::OpenStack,
        detect: dmi::is_openstack,
        build: openstack::build,
    },
    ProviderEntry {
        platform: Platform::DigitalOcean,
        detect: dmi::is_digitalocean,
        build: digitalocean::build,
    },
    ProviderEntry {
        platform: Platform::Hetzner,
        detect: dmi::is_hetzner,
        build: hetzner::build,
    },
    // Equinix Metal is bare metal with vendor SMBIOS: only `kubejoin.platform=equinix` selects it.
    ProviderEntry {
        platform: Platform::Equinix,
        detect: dmi::never,
        build: equinix::build,
    },
];

/// The provider for `platform` (`None` for [`Platform::Url`], which needs its URL: see
/// [`url::UrlProvider`]).
pub fn provider(platform: Platform, ctx: &Context) -> Option<Box<dyn Provider>> {
    PROVIDERS
        .iter()
        .find(|e| e.platform == platform)
        .map(|e| (e.build)(ctx))
}

/// The platform DMI identifies, if any.
pub fn detect(d: &dmi::Dmi) -> Option<Platform> {
    PROVIDERS.iter().find(|e| (e.detect)(d)).map(|e| e.platform)
}

/// Joins a base URL and an absolute path without doubling the slash.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

#[cfg(test)]
mod time_server_tests {
    use super::*;
    use crate::clock::client::Server;

    #[test]
    fn platform_time_sources_are_defaults_that_endpoints_replace() {
        let d = Endpoints::default();
        assert_eq!(Platform::Aws.time_server(&d), Some("169.254.169.123"));
        assert_eq!(
            Platform::Gcp.time_server(&d),
            Some("metadata.google.internal")
        );
        for p in [
            Platform::Azure,
            Platform::OpenStack,
            Platform::Hetzner,
            Platform::Url,
        ] {
            assert_eq!(p.time_server(&d), None, "{p}");
        }
        // Both parse as NTP servers on port 123.
        for p in [Platform::Aws, Platform::Gcp] {
            let s = Server::parse(p.time_server(&d).unwrap()).unwrap();
            assert_eq!(s.port, 123);
        }
        // Tests and replays point them at loopback.
        let local = Endpoints {
            aws_time: "127.0.0.1:10123".into(),
            ..Endpoints::all("http://127.0.0.1:8080")
        };
        assert_eq!(Platform::Aws.time_server(&local), Some("127.0.0.1:10123"));
        assert_eq!(local.gcp_time, gcp::TIME_SERVER);
    }
}
