//! The API server endpoint of token discovery: `host:port`, validated once for every source
//! (flags, the kernel command line, config files, metadata).
//!
//! The split follows Go's `net.SplitHostPort`, as kubeadm's `ValidateDiscoveryTokenAPIServer`
//! does, plus what a connection needs: a host that is an IP address or a DNS name, and a port
//! from 1 to 65535. One deliberate difference: kubeadm (through Go) accepts an IPv6 zone
//! (`[fe80::1%eth0]:6443`); kubejoin refuses it, because the server is verified by the name the
//! endpoint gives it, and a TLS server name is a DNS name or an IP address — a zone has no place
//! in either (rustls cannot even form the name), so such a join could only fail later, at the
//! handshake, with a message about something else.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// A valid `host:port` (IPv6 in brackets, no zone).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint(String);

/// Why a string is not an endpoint. `why` is one of a few fixed phrases (tests match them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid API server endpoint {value:?}: {why} (use host:port; an IPv6 address goes in brackets, \
     e.g. [fd00::10]:6443)"
)]
pub struct EndpointError {
    pub value: String,
    pub why: &'static str,
}

impl Endpoint {
    pub fn parse(ep: &str) -> Result<Self, EndpointError> {
        let bad = |why| {
            Err(EndpointError {
                value: ep.to_string(),
                why,
            })
        };
        let (host, port) = if let Some(rest) = ep.strip_prefix('[') {
            let Some(close) = rest.find(']') else {
                return bad("missing ']' in address");
            };
            let host = &rest[..close];
            let after = &rest[close + 1..];
            let Some(port) = after.strip_prefix(':') else {
                return if after.is_empty() {
                    bad("missing port in address")
                } else {
                    bad("unexpected ']' in address")
                };
            };
            if host.contains('%') {
                return bad("an IPv6 zone (%…) cannot be used: TLS names the server by its address, which carries no zone; use a global or unique-local address or a DNS name");
            }
            if host.parse::<Ipv6Addr>().is_err() {
                return bad("the part in brackets is not an IPv6 address");
            }
            (host, port)
        } else {
            let Some((host, port)) = ep.rsplit_once(':') else {
                return bad("missing port in address");
            };
            if host.contains(':') {
                return bad("too many colons in address");
            }
            if host.contains(['[', ']']) {
                return bad("unexpected '[' or ']' in address");
            }
            (host, port)
        };
        if host.is_empty() {
            return bad("the host is empty");
        }
        if !port.bytes().all(|b| b.is_ascii_digit())
            || !matches!(port.parse::<u32>(), Ok(1..=65535))
        {
            return bad("the port is not a number from 1 to 65535");
        }
        if !ep.starts_with('[')
            && host.parse::<IpAddr>().is_err()
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return bad("the host is neither an IP address nor a DNS name");
        }
        Ok(Self(ep.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_as_go_splits_it_without_zones() {
        for good in [
            "10.0.0.1:6443",
            "cp.example.com:443",
            "[fd00::1]:6443",
            "localhost:1",
            "node_1.local:65535",
        ] {
            assert_eq!(Endpoint::parse(good).unwrap().as_str(), good);
        }
        for (bad, why) in [
            ("10.0.0.1", "missing port"),
            ("fd00::1:6443", "too many colons"),
            ("[fd00::1]", "missing port"),
            ("[fd00::1:6443", "missing ']'"),
            ("[fd00::1]x:6443", "unexpected ']'"),
            ("10.0.0.1:http", "port"),
            ("10.0.0.1:0", "port"),
            ("10.0.0.1:70000", "port"),
            (":6443", "host is empty"),
            ("https://10.0.0.1:6443", "too many colons"),
            ("[not-ip]:6443", "IPv6"),
            ("cp example:6443", "neither"),
            ("cp/x:6443", "neither"),
            ("[fe80::1%eth0]:6443", "zone"),
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert_eq!(e.value, bad);
            assert!(e.why.contains(why), "{bad}: {e}");
            assert!(
                e.to_string().contains("IPv6 address goes in brackets"),
                "{e}"
            );
        }
    }
}
