//! PID 1's network stage: the boot's network configuration (the kernel command line's keys, a
//! KubejoinConfiguration's `network` standing in for `ip=`) and the bring-up through the net
//! seam, with the NTP servers DHCP offered. Split out of [`super::stages`] (file size).

use super::pipeline::Done;
use super::policy::Failure;
use crate::fs::root::Root;
use crate::net;
use crate::plan::merge::Sourced;
use crate::plan::network::{Addressing, Network, NetworkSpec};
use crate::sys::net::Net;

/// The network configuration of the boot: the kernel command line's network keys (`ip=`,
/// `nameserver=`, `rd.peerdns=`, `rd.net.timeout.*`), with a KubejoinConfiguration's `network`
/// standing in for `ip=` when the merged sources took it from a config (the command line's
/// `ip=`, when given, outranks every config, and `kubejoin plan` reports the conflict).
/// The config's nameservers come after `nameserver=`.
pub fn net_config(
    params: &[(String, Option<String>)],
    network: Option<&Sourced<NetworkSpec>>,
) -> Result<net::NetConfig, net::NetError> {
    let mut cfg = net::NetConfig::from_cmdline(params)?;
    if let Some(Sourced {
        value: NetworkSpec::Config(n),
        ..
    }) = network
    {
        cfg.mode = net_mode(n);
        for ns in &n.nameservers {
            if !cfg.nameservers.contains(ns) {
                cfg.nameservers.push(*ns);
            }
        }
    }
    Ok(cfg)
}

/// A KubejoinConfiguration `network` as the bring-up's mode: no interfaces is DHCP on every
/// physical link; each interface is one link (a name-less one: every physical link for DHCP, the
/// first one for a static address — the meaning `ip=` gives an empty device).
fn net_mode(n: &Network) -> net::NetMode {
    if n.interfaces.is_empty() {
        return net::NetMode::Auto;
    }
    net::NetMode::Explicit(
        n.interfaces
            .iter()
            .map(|i| net::LinkSpec {
                device: i.name.clone(),
                method: match i.addressing {
                    Addressing::Dhcp => net::Method::Dhcp,
                    Addressing::Static {
                        address,
                        prefix_len,
                        gateway,
                    } => net::Method::Static(net::StaticAddr {
                        address,
                        prefix_len,
                        gateway,
                    }),
                },
                hostname: None,
                mtu: i.mtu,
                dns: Vec::new(),
            })
            .collect(),
    )
}

/// The network stage: [`net_config`], then the bring-up through `sys`, `/etc/resolv.conf`
/// under `root`, and a log line per configured link saying where its settings came from.
pub async fn bring_up_network(
    params: &[(String, Option<String>)],
    network: Option<&Sourced<NetworkSpec>>,
    root: &Root,
    sys: &dyn Net,
) -> Result<Done, Failure> {
    bring_up_network_with_ntp(params, network, root, sys)
        .await
        .map(|(d, _)| d)
}

/// [`bring_up_network`], also giving the NTP servers the DHCP leases named (option 42).
pub async fn bring_up_network_with_ntp(
    params: &[(String, Option<String>)],
    network: Option<&Sourced<NetworkSpec>>,
    root: &Root,
    sys: &dyn Net,
) -> Result<(Done, Vec<std::net::Ipv4Addr>), Failure> {
    let cfg = net_config(params, network).map_err(|e| Failure::from_error("network", &e))?;
    let origin = match network {
        Some(n) => n.source.to_string(),
        None => "default".to_string(),
    };
    let report = net::bring_up(&cfg, root, sys)
        .await
        .map_err(|e| Failure::from_error("network", &e))?;
    if report.disabled {
        return Ok((
            Done::Skipped(format!("ip=off: only loopback is up (from {origin})")),
            Vec::new(),
        ));
    }
    for (link, c) in report.configured() {
        let how = match c.source {
            net::Source::Static => format!("static, from {origin}"),
            net::Source::Dhcp { server } => format!(
                "DHCP lease from {server}{}",
                c.lease_secs.map(|s| format!(", {s}s")).unwrap_or_default()
            ),
        };
        crate::info!(
            "network: {link} {}/{}{} ({how})",
            c.address,
            c.prefix_len,
            c.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
        );
    }
    let ntp = report.ntp_servers();
    if !ntp.is_empty() {
        crate::info!(
            "network: DHCP names NTP server(s) {}",
            ntp.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok((Done::Ok, ntp))
}
