//! Network bring-up: NIC carrier wait, ip= syntax, DHCPv4, rtnetlink configuration, resolv.conf.
//!
//! The Debian cloud kernel has no in-kernel `ip=` autoconfiguration and `virtio_net` is a
//! module, so from the initramfs kubejoin configures the network itself, after the NIC modules
//! are loaded:
//!
//! 1. loopback up;
//! 2. wait (bounded) for the links to appear, set them up, wait (bounded) for carrier;
//! 3. per link, a static address from `ip=` or a DHCPv4 lease ([`dhcp`]), links in parallel;
//! 4. MTU, address and default route through rtnetlink ([`crate::sys::net::Net`]);
//! 5. `/etc/resolv.conf` from `nameserver=`, `ip=` DNS fields and DHCP ([`resolv`]).
//!
//! Without `ip=`, every physical link (one with `/sys/class/net/<if>/device`) that has carrier
//! runs DHCP and at least one must get a lease; a link named in `ip=` must succeed.
//!
//! Not done: lease renewal (addresses are added without a lifetime, so they outlive the lease
//! until the booted system's own network manager takes over), IPv6, ARP conflict detection
//! (DHCPDECLINE), classless static routes (option 121).

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Class, Classify};
use crate::fs::atomic::WriteError;
use crate::fs::root::RootError;

mod bringup;
pub mod config;
pub mod dhcp;
pub mod resolv;

pub use bringup::bring_up;
pub use config::{LinkSpec, Method, NetConfig, NetMode, NetTimeouts, StaticAddr};
pub use dhcp::{DhcpFailure, DhcpTiming, Lease};

/// Why the network could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A network parameter on the kernel command line is malformed.
    #[error("kernel command line {param}: {reason}")]
    Cmdline {
        param: String,
        reason: config::ParamError,
    },
    /// The kernel would not list links (netlink unavailable).
    #[error("listing network links")]
    ListLinks(#[source] io::Error),
    /// A configuration step on one link failed; `action` names it and the link.
    #[error("{action}")]
    Netlink {
        link: String,
        action: String,
        #[source]
        source: io::Error,
    },
    /// A link named in `ip=` never appeared.
    #[error("network link {link} did not appear within {}: is its driver module loaded, and is it named {link}?", secs(*waited))]
    LinkMissing { link: String, waited: Duration },
    /// No link to configure automatically appeared.
    #[error("no physical network link appeared within {} (links present: {}): is the NIC driver module loaded?", secs(*waited), list(present))]
    NoLinks {
        waited: Duration,
        present: Vec<String>,
    },
    /// The link never reported carrier.
    #[error("no carrier on {link} after {}: is the cable connected, or the virtual NIC attached to a network?", secs(*waited))]
    NoCarrier { link: String, waited: Duration },
    /// DHCP needs an Ethernet MAC address.
    #[error(
        "{link} has no Ethernet MAC address, which DHCP needs: configure it with a static ip="
    )]
    NoMac { link: String },
    /// The DHCP exchange gave up.
    #[error("{}", dhcp_text(link, failure))]
    Dhcp { link: String, failure: DhcpFailure },
    /// The DHCP socket failed.
    #[error("{action} on {link}")]
    DhcpIo {
        link: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// Automatic mode: every candidate link failed.
    #[error("no network link could be configured: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    NoLinkConfigured { errors: Vec<NetError> },
    /// The resolv.conf path is not under the root.
    #[error("placing /etc/resolv.conf under the root")]
    ResolvPath(#[source] RootError),
    /// Writing resolv.conf failed.
    #[error("writing the DNS configuration")]
    ResolvConf(#[source] WriteError),
}

/// A wait, to a tenth of a second (`1.5s`, `12s`).
fn secs(d: Duration) -> String {
    crate::time::duration::format(crate::time::duration::round(d, Duration::from_millis(100)))
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn dhcp_text(link: &str, failure: &DhcpFailure) -> String {
    match failure {
        DhcpFailure::NoOffer { attempts, waited } => format!(
            "no DHCP offer on {link} after {attempts} attempts over {}: is a DHCP server on this network?",
            secs(*waited)
        ),
        DhcpFailure::NoAck { server, offered, attempts, waited } => format!(
            "DHCP server {server} offered {offered} on {link} but did not acknowledge {attempts} requests over {}",
            secs(*waited)
        ),
        DhcpFailure::Naks { server, naks, message } => format!(
            "DHCP server {server} refused our requests on {link} {naks} times{}",
            message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default()
        ),
    }
}

impl NetError {
    fn is_timeout(&self) -> bool {
        match self {
            NetError::LinkMissing { .. }
            | NetError::NoLinks { .. }
            | NetError::NoCarrier { .. } => true,
            NetError::Dhcp { failure, .. } => !matches!(failure, DhcpFailure::Naks { .. }),
            NetError::NoLinkConfigured { errors } => errors.iter().all(NetError::is_timeout),
            _ => false,
        }
    }
}

impl Classify for NetError {
    fn class(&self) -> Class {
        match self {
            NetError::Cmdline { .. } => Class::Usage,
            e if e.is_timeout() => Class::Timeout,
            _ => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            NetError::Cmdline { .. } => Some(
                "ip= takes dhcp, off, <dev>:dhcp, or \
                 <client-IP>:[<server>]:<gw-IP>:<netmask>:<hostname>:<dev>:off[:<dns0>[:<dns1>]]"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// How one link's address was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From `ip=`.
    Static,
    /// From a DHCP server.
    Dhcp { server: Ipv4Addr },
}

/// A link that was configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers this link contributed (from `ip=` or DHCP).
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    /// The MTU set (`None`: left as it was).
    pub mtu: Option<u32>,
    /// DHCP lease time in seconds (`u32::MAX`: infinite).
    pub lease_secs: Option<u32>,
    pub source: Source,
    /// Time from setting the link up to carrier; `None`: no carrier within the timeout (a static
    /// address is configured anyway).
    pub carrier_after: Option<Duration>,
    /// How long the DHCP exchange took.
    pub dhcp_took: Option<Duration>,
    /// NTP servers of the lease (option 42), for the clock phase.
    pub ntp: Vec<Ipv4Addr>,
}

/// What happened on one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Configured(Configured),
    /// An automatically chosen link that could not be configured (others were).
    Failed(String),
}

/// One link's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    pub link: String,
    pub outcome: LinkOutcome,
}

/// What [`bring_up`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetReport {
    /// Links in index order; empty with `ip=off`.
    pub links: Vec<LinkReport>,
    /// Everything that went into resolv.conf, in order.
    pub dns: Vec<Ipv4Addr>,
    pub search: Vec<String>,
    /// The real path of the resolv.conf written; `None` when no DNS server was known.
    pub resolv_conf: Option<PathBuf>,
    /// `ip=off`: only loopback was brought up.
    pub disabled: bool,
}

impl NetReport {
    /// The links that got an address.
    pub fn configured(&self) -> impl Iterator<Item = (&str, &Configured)> {
        self.links.iter().filter_map(|l| match &l.outcome {
            LinkOutcome::Configured(c) => Some((l.link.as_str(), c)),
            LinkOutcome::Failed(_) => None,
        })
    }

    /// The NTP servers the DHCP leases named (option 42), in link order, each once.
    pub fn ntp_servers(&self) -> Vec<Ipv4Addr> {
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for (_, c) in self.configured() {
            for n in &c.ntp {
                if !out.contains(n) {
                    out.push(*n);
                }
            }
        }
        out
    }

    /// The first host name a link was given (by `ip=` or DHCP), for the node name.
    pub fn hostname(&self) -> Option<&str> {
        self.configured().find_map(|(_, c)| c.hostname.as_deref())
    }
}

impl fmt::Display for Configured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(h) = &self.hostname {
            write!(f, " host {h}")?;
        }
        if let Some(d) = &self.domain {
            write!(f, " domain {d}")?;
        }
        if let Some(m) = self.mtu {
            write!(f, " mtu {m}")?;
        }
        match self.source {
            Source::Static => write!(f, " (static")?,
            Source::Dhcp { server } => write!(f, " (dhcp from {server}")?,
        }
        match self.lease_secs {
            Some(u32::MAX) => write!(f, ", lease infinite")?,
            Some(s) => write!(f, ", lease {s}s")?,
            None => {}
        }
        match self.carrier_after {
            Some(c) => write!(f, ", carrier {}", secs(c))?,
            None => write!(f, ", no carrier")?,
        }
        if let Some(d) = self.dhcp_took {
            write!(f, ", dhcp {}", secs(d))?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for NetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.disabled {
            return write!(f, "network off (ip=off): loopback only");
        }
        for (i, l) in self.links.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            match &l.outcome {
                LinkOutcome::Configured(c) => write!(f, "{} {c}", l.link)?,
                LinkOutcome::Failed(e) => write!(f, "{} failed: {e}", l.link)?,
            }
        }
        if self.dns.is_empty() {
            write!(f, "; no DNS servers")
        } else {
            let dns: Vec<String> = self.dns.iter().map(|d| d.to_string()).collect();
            write!(f, "; dns {}", dns.join(","))?;
            if !self.search.is_empty() {
                write!(f, " search {}", self.search.join(","))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_link_and_what_timed_out() {
        let e = NetError::Dhcp {
            link: "eth0".into(),
            failure: DhcpFailure::NoOffer {
                attempts: 6,
                waited: Duration::from_millis(19_600),
            },
        };
        assert_eq!(
            e.to_string(),
            "no DHCP offer on eth0 after 6 attempts over 19.6s: is a DHCP server on this network?"
        );
        assert_eq!(e.class(), Class::Timeout);
        let e = NetError::NoCarrier {
            link: "eth1".into(),
            waited: Duration::from_secs(10),
        };
        assert!(
            e.to_string().starts_with("no carrier on eth1 after 10s: "),
            "{e}"
        );
        assert_eq!(e.class(), Class::Timeout);
        let e = NetError::Dhcp {
            link: "eth0".into(),
            failure: DhcpFailure::Naks {
                server: Ipv4Addr::new(10, 0, 0, 1),
                naks: 4,
                message: None,
            },
        };
        assert_eq!(
            e.to_string(),
            "DHCP server 10.0.0.1 refused our requests on eth0 4 times"
        );
        assert_eq!(e.class(), Class::Other);
        let e = NetError::Cmdline {
            param: "ip=x".into(),
            reason: config::ParamError::Empty,
        };
        assert_eq!(e.class(), Class::Usage);
        assert!(e.hint().is_some());
    }

    #[test]
    fn report_is_one_line() {
        let r = NetReport {
            links: vec![
                LinkReport {
                    link: "eth0".into(),
                    outcome: LinkOutcome::Configured(Configured {
                        address: Ipv4Addr::new(10, 0, 0, 42),
                        prefix_len: 24,
                        gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
                        dns: vec![Ipv4Addr::new(10, 0, 0, 2)],
                        hostname: Some("node1".into()),
                        domain: None,
                        mtu: Some(1450),
                        lease_secs: Some(3600),
                        source: Source::Dhcp {
                            server: Ipv4Addr::new(10, 0, 0, 1),
                        },
                        carrier_after: Some(Duration::from_millis(300)),
                        dhcp_took: Some(Duration::from_millis(1200)),
                        ntp: Vec::new(),
                    }),
                },
                LinkReport {
                    link: "eth1".into(),
                    outcome: LinkOutcome::Failed("no carrier".into()),
                },
            ],
            dns: vec![Ipv4Addr::new(10, 0, 0, 2)],
            search: vec!["cluster.example".into()],
            resolv_conf: Some("/etc/resolv.conf".into()),
            disabled: false,
        };
        assert_eq!(
            r.to_string(),
            "eth0 10.0.0.42/24 via 10.0.0.1 host node1 mtu 1450 (dhcp from 10.0.0.1, lease 3600s, \
             carrier 300ms, dhcp 1.2s); eth1 failed: no carrier; dns 10.0.0.2 search cluster.example"
        );
        assert_eq!(r.hostname(), Some("node1"));
        assert!(!r.to_string().contains('\n'));
        let off = NetReport {
            disabled: true,
            ..NetReport::default()
        };
        assert_eq!(off.to_string(), "network off (ip=off): loopback only");
    }
}
