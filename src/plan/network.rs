//! How the node's network is to be brought up, as the join sources said it.
//!
//! Two sources can describe it: the kernel command line's `ip=` parameters (dracut's syntax,
//! parsed by [`crate::net::NetConfig::from_cmdline`]) and the `network` of a
//! KubejoinConfiguration ([`Network`]). They are never mixed: the
//! highest layer that describes the network describes all of it (`crate::plan::merge`).

use std::fmt;
use std::net::Ipv4Addr;

/// `network` of a KubejoinConfiguration (IPv4, like the network bring-up).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    /// `interfaces`; empty means DHCP on every physical link.
    pub interfaces: Vec<Interface>,
    /// `nameservers`, in order.
    pub nameservers: Vec<Ipv4Addr>,
}

/// One `network.interfaces` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `name`; `None`: every physical link for DHCP, the first one for a static address.
    pub name: Option<String>,
    pub addressing: Addressing,
    /// `mtu` (68–65535).
    pub mtu: Option<u32>,
}

/// How an interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `dhcp: true`, or no `address`.
    Dhcp,
    /// `address: a.b.c.d/len` with an optional `gateway`.
    Static {
        address: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    },
}

/// The network description one layer gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkSpec {
    /// `ip=` parameters of the kernel command line, as given (`ip=dhcp`, `ip=10.0.0.7::…`).
    Cmdline(Vec<String>),
    /// A KubejoinConfiguration's `network`.
    Config(Network),
}

/// The network of a plan and the layer it came from (`cmdline`, `file:/etc/kubejoin.yaml`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    pub spec: NetworkSpec,
    pub source: String,
}

impl NetworkSpec {
    /// The form `kubejoin plan` prints.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            NetworkSpec::Cmdline(params) => serde_json::json!({ "cmdline": params }),
            NetworkSpec::Config(n) => {
                let interfaces: Vec<serde_json::Value> = n
                    .interfaces
                    .iter()
                    .map(|i| {
                        let mut o = serde_json::Map::new();
                        if let Some(name) = &i.name {
                            o.insert("name".into(), name.clone().into());
                        }
                        match i.addressing {
                            Addressing::Dhcp => {
                                o.insert("dhcp".into(), true.into());
                            }
                            Addressing::Static {
                                address,
                                prefix_len,
                                gateway,
                            } => {
                                o.insert(
                                    "address".into(),
                                    format!("{address}/{prefix_len}").into(),
                                );
                                if let Some(g) = gateway {
                                    o.insert("gateway".into(), g.to_string().into());
                                }
                            }
                        }
                        if let Some(m) = i.mtu {
                            o.insert("mtu".into(), m.into());
                        }
                        serde_json::Value::Object(o)
                    })
                    .collect();
                let ns: Vec<String> = n.nameservers.iter().map(ToString::to_string).collect();
                serde_json::json!({ "interfaces": interfaces, "nameservers": ns })
            }
        }
    }
}

/// One line: `ip=dhcp`, or `eth0 10.0.0.7/24 via 10.0.0.1 mtu 9000, eth1 dhcp; nameservers
/// 10.0.0.1` (`dhcp on every physical link` when no interface is listed).
impl fmt::Display for NetworkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkSpec::Cmdline(params) => f.write_str(&params.join(" ")),
            NetworkSpec::Config(n) => {
                let links: Vec<String> = n
                    .interfaces
                    .iter()
                    .map(|i| {
                        let name = i.name.as_deref().unwrap_or("(first physical link)");
                        let mut s = match i.addressing {
                            Addressing::Dhcp => format!(
                                "{} dhcp",
                                i.name.as_deref().unwrap_or("(every physical link)")
                            ),
                            Addressing::Static {
                                address,
                                prefix_len,
                                gateway,
                            } => format!(
                                "{name} {address}/{prefix_len}{}",
                                gateway.map(|g| format!(" via {g}")).unwrap_or_default()
                            ),
                        };
                        if let Some(m) = i.mtu {
                            s.push_str(&format!(" mtu {m}"));
                        }
                        s
                    })
                    .collect();
                if links.is_empty() {
                    f.write_str("dhcp on every physical link")?;
                } else {
                    f.write_str(&links.join(", "))?;
                }
                if !n.nameservers.is_empty() {
                    let ns: Vec<String> = n.nameservers.iter().map(ToString::to_string).collect();
                    write!(f, "; nameservers {}", ns.join(" "))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        Network {
            interfaces: vec![
                Interface {
                    name: Some("eth0".into()),
                    addressing: Addressing::Static {
                        address: "10.0.0.7".parse().unwrap(),
                        prefix_len: 24,
                        gateway: Some("10.0.0.1".parse().unwrap()),
                    },
                    mtu: Some(9000),
                },
                Interface {
                    name: Some("eth1".into()),
                    addressing: Addressing::Dhcp,
                    mtu: None,
                },
            ],
            nameservers: vec!["10.0.0.1".parse().unwrap()],
        }
    }

    #[test]
    fn shown_in_one_line() {
        assert_eq!(
            NetworkSpec::Config(net()).to_string(),
            "eth0 10.0.0.7/24 via 10.0.0.1 mtu 9000, eth1 dhcp; nameservers 10.0.0.1"
        );
        assert_eq!(
            NetworkSpec::Config(Network::default()).to_string(),
            "dhcp on every physical link"
        );
        assert_eq!(
            NetworkSpec::Cmdline(vec!["ip=eth0:dhcp".into(), "ip=eth1:dhcp".into()]).to_string(),
            "ip=eth0:dhcp ip=eth1:dhcp"
        );
    }

    #[test]
    fn json_for_plan() {
        assert_eq!(
            NetworkSpec::Config(net()).to_json(),
            serde_json::json!({
                "interfaces": [
                    {"name": "eth0", "address": "10.0.0.7/24", "gateway": "10.0.0.1", "mtu": 9000},
                    {"name": "eth1", "dhcp": true}
                ],
                "nameservers": ["10.0.0.1"]
            })
        );
        assert_eq!(
            NetworkSpec::Cmdline(vec!["ip=off".into()]).to_json(),
            serde_json::json!({"cmdline": ["ip=off"]})
        );
    }
}
