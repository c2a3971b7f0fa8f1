//! A generic config URL (`kubejoin.config=https://…`), NoCloud-style.
//!
//! Like Talos, the URL may name the machine so one boot entry serves a fleet:
//! `${mac}` (the first Ethernet link's address, by interface index), `${uuid}` (SMBIOS
//! `product_uuid`, lower-cased), `${serial}` (SMBIOS `product_serial`) and `${hostname}` (the
//! kernel's hostname), all read under the root. Values are percent-encoded where a URL needs it.
//!
//! `https://` is verified against the system trust store. A plain `http://` URL is accepted only
//! when `kubejoin.config.sha256` pins the document: without TLS or a pin, anyone on the path
//! could hand the node another cluster (or a token) — see [`UrlProvider::new`]. Errors show the
//! URL without credentials or query string (signed URLs carry secrets there).

#[cfg(test)]
mod mock_tests;

use super::http::{Request, Retry, Transport};
use super::{Http, MetadataError, NodeFacts, Platform, Provider, UserData, MAX_USER_DATA};
use crate::fs::root::Root;
pub use crate::http::redact_url as redact;
use futures_util::future::BoxFuture;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Values for the `${…}` variables (`None`: not available on this machine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub mac: Option<String>,
    pub uuid: Option<String>,
    pub serial: Option<String>,
    pub hostname: Option<String>,
}

fn read_small(path: &Path) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    let mut s = String::new();
    f.take(4096).read_to_string(&mut s).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

impl Vars {
    /// Reads the variables from `/sys` and `/proc` under `root`.
    pub fn from_root(root: &Root) -> Self {
        let at = |p: &str| root.join(p).ok().and_then(|p| read_small(&p));
        Vars {
            mac: first_ethernet_mac(root),
            uuid: at("/sys/class/dmi/id/product_uuid").map(|u| u.to_ascii_lowercase()),
            serial: at("/sys/class/dmi/id/product_serial"),
            hostname: at("/proc/sys/kernel/hostname").or_else(|| at("/etc/hostname")),
        }
    }

    fn get(&self, name: &str) -> Result<Option<&String>, ()> {
        match name {
            "mac" => Ok(self.mac.as_ref()),
            "uuid" => Ok(self.uuid.as_ref()),
            "serial" => Ok(self.serial.as_ref()),
            "hostname" => Ok(self.hostname.as_ref()),
            _ => Err(()),
        }
    }
}

/// The address of the Ethernet link with the lowest interface index (not loopback, not all
/// zeros): the NIC a PXE boot most likely came through.
fn first_ethernet_mac(root: &Root) -> Option<String> {
    let dir = root.join("/sys/class/net").ok()?;
    let mut links: Vec<(u64, String)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let p = e.path();
            // ARPHRD_ETHER = 1; loopback is 772.
            if read_small(&p.join("type")).as_deref() != Some("1") {
                return None;
            }
            let mac = read_small(&p.join("address"))?.to_ascii_lowercase();
            if mac.chars().all(|c| c == '0' || c == ':') {
                return None;
            }
            let index = read_small(&p.join("ifindex"))
                .and_then(|i| i.parse().ok())
                .unwrap_or(u64::MAX);
            Some((index, mac))
        })
        .collect();
    links.sort();
    links.into_iter().next().map(|(_, mac)| mac)
}

fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces `${name}` with the variable's (percent-encoded) value.
pub fn substitute(template: &str, vars: &Vars) -> Result<String, MetadataError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(MetadataError::Substitution {
                var: after.chars().take(16).collect(),
                url: redact(template),
                reason: "the variable is not closed with '}'".into(),
            });
        };
        let name = &after[..end];
        let err = |reason: String| MetadataError::Substitution {
            var: name.to_string(),
            url: redact(template),
            reason,
        };
        match vars.get(name) {
            Err(()) => {
                return Err(err(
                    "unknown variable (known: mac, uuid, serial, hostname)".into()
                ))
            }
            Ok(None) => return Err(err("this machine does not report it".into())),
            Ok(Some(v)) => out.push_str(&encode(v)),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The generic URL provider.
#[derive(Debug)]
pub struct UrlProvider {
    http: Http,
    url: String,
}

impl UrlProvider {
    /// `template` with its variables substituted. `pinned`: `kubejoin.config.sha256` is set,
    /// which is what makes a plain-http URL acceptable.
    pub fn new(
        template: &str,
        pinned: bool,
        vars: &Vars,
        transport: Arc<dyn Transport>,
        retry: Retry,
    ) -> Result<Self, MetadataError> {
        let url = substitute(template, vars)?;
        if url.starts_with("http://") && !pinned {
            return Err(MetadataError::InsecureUrl { url: redact(&url) });
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(MetadataError::Substitution {
                var: String::new(),
                url: redact(&url),
                reason: "not an http(s) URL".into(),
            });
        }
        Ok(Self {
            http: Http::new(Platform::Url, transport, retry),
            url,
        })
    }

    /// The URL requested (substituted, not redacted).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Provider for UrlProvider {
    fn platform(&self) -> Platform {
        Platform::Url
    }

    fn user_data(&self) -> BoxFuture<'_, Result<UserData, MetadataError>> {
        Box::pin(async move {
            let shown = redact(&self.url);
            let r = fetch_redacted(&self.http, &self.url, &shown).await?;
            super::user_data_from(Platform::Url, &shown, r)
        })
    }

    fn node_facts(&self) -> BoxFuture<'_, Result<NodeFacts, MetadataError>> {
        Box::pin(async { Ok(NodeFacts::default()) })
    }
}

async fn fetch_redacted(
    http: &Http,
    url: &str,
    shown: &str,
) -> Result<super::http::Response, MetadataError> {
    super::http::fetch(
        &*http.transport,
        &Request::get(url, MAX_USER_DATA),
        &http.retry,
    )
    .await
    .map_err(|e| MetadataError::transport(Platform::Url, shown, e))
}
