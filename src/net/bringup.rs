//! The bring-up sequence: find links, set them up, wait for carrier, get addresses, configure.

use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::fs::root::Root;
use crate::sys::net::{DefaultRoute, LinkInfo, Net};

use super::config::{LinkSpec, Method, NetConfig, NetMode};
use super::dhcp::{self, DhcpClient, ExchangeError};
use super::{resolv, Configured, LinkOutcome, LinkReport, NetError, NetReport, Source};

/// Route metric of the first configured link; the next ones get 101, 102, … in index order, so
/// the lowest-numbered NIC is preferred and the kernel accepts one default route per link.
const FIRST_METRIC: u32 = 100;

/// One link to configure and how.
#[derive(Debug, Clone)]
struct Target {
    link: LinkInfo,
    spec: LinkSpec,
    /// Named in `ip=` (or the static address's link): its failure fails the bring-up.
    required: bool,
}

/// Brings the network up as `cfg` says (see the module documentation for the sequence) and
/// writes `/etc/resolv.conf` under `root`. Every wait is bounded by `cfg.timeouts`.
pub async fn bring_up(cfg: &NetConfig, root: &Root, sys: &dyn Net) -> Result<NetReport, NetError> {
    let links = sys.links().map_err(NetError::ListLinks)?;
    // Loopback first, whatever else happens: the kubelet and its static pods talk to 127.0.0.1.
    // The kernel assigns 127.0.0.1/8 itself when `lo` goes up.
    for lo in links.iter().filter(|l| l.loopback && !l.up) {
        sys.set_link_up(lo)
            .map_err(netlink(lo, format!("setting {} up", lo.name)))?;
    }
    let specs = match &cfg.mode {
        NetMode::Off => {
            return Ok(NetReport {
                disabled: true,
                ..NetReport::default()
            })
        }
        NetMode::Auto => vec![LinkSpec::dhcp_everywhere()],
        NetMode::Explicit(specs) => specs.clone(),
    };

    let waited = std::time::Instant::now();
    let targets = find_targets(cfg, &specs, sys).await?;
    crate::trace::record(
        "wait",
        || {
            let names: Vec<&str> = targets.iter().map(|t| t.link.name.as_str()).collect();
            format!("links to appear: {}", names.join(", "))
        },
        waited,
    );
    let mut failed: Vec<Option<NetError>> = targets
        .iter()
        .map(|t| match t.link.up {
            true => None,
            false => sys
                .set_link_up(&t.link)
                .map_err(netlink(&t.link, format!("setting {} up", t.link.name)))
                .err(),
        })
        .collect();
    let active: Vec<bool> = failed.iter().map(Option::is_none).collect();
    let waited = std::time::Instant::now();
    let carrier = wait_for_carrier(cfg, &targets, &active, sys).await?;
    crate::trace::record(
        "wait",
        || {
            let seen: Vec<String> = targets
                .iter()
                .zip(&carrier)
                .map(|(t, c)| match c {
                    Some(d) => format!(
                        "{} after {}",
                        t.link.name,
                        crate::time::duration::format(*d)
                    ),
                    None => format!("{} none", t.link.name),
                })
                .collect();
            format!(
                "carrier (polled every {}): {}",
                crate::time::duration::format(cfg.timeouts.poll),
                seen.join(", ")
            )
        },
        waited,
    );

    let jobs = targets
        .iter()
        .zip(carrier)
        .enumerate()
        .map(|(i, (t, carrier))| {
            let metric = FIRST_METRIC + i as u32;
            let early = failed.get_mut(i).and_then(Option::take);
            async move {
                match early {
                    Some(e) => Err(e),
                    None => configure(cfg, sys, t, carrier, metric).await,
                }
            }
        });
    let results = join_all(jobs.collect()).await;

    let mut report = NetReport::default();
    let mut errors = Vec::new();
    for (t, result) in targets.iter().zip(results) {
        let outcome = match result {
            Ok(c) => LinkOutcome::Configured(c),
            Err(e) if t.required => return Err(e),
            Err(e) => {
                let text = e.to_string();
                errors.push(e);
                LinkOutcome::Failed(text)
            }
        };
        report.links.push(LinkReport {
            link: t.link.name.clone(),
            outcome,
        });
    }
    if report.configured().next().is_none() {
        return Err(match errors.len() {
            1 => errors.remove(0),
            _ => NetError::NoLinkConfigured { errors },
        });
    }

    write_dns(cfg, root, &mut report)?;
    Ok(report)
}

fn netlink(link: &LinkInfo, action: String) -> impl FnOnce(io::Error) -> NetError + '_ {
    move |source| NetError::Netlink {
        link: link.name.clone(),
        action,
        source,
    }
}

/// Waits (bounded by `cfg.timeouts.link`) until every link the specs need exists: drivers probe
/// asynchronously, so a NIC can appear a moment after its module was loaded.
async fn find_targets(
    cfg: &NetConfig,
    specs: &[LinkSpec],
    sys: &dyn Net,
) -> Result<Vec<Target>, NetError> {
    let start = Instant::now();
    loop {
        let links = sys.links().map_err(NetError::ListLinks)?;
        let last_try = start.elapsed() >= cfg.timeouts.link;
        match resolve(cfg, specs, &links, start.elapsed(), last_try) {
            Ok(targets) => return Ok(targets),
            Err(e) if last_try => return Err(e),
            Err(_) => tokio::time::sleep(cfg.timeouts.poll).await,
        }
    }
}

/// The targets for `specs` among `links`, or what is still missing. On the last try, a partial
/// list of `cfg.links` is accepted.
fn resolve(
    cfg: &NetConfig,
    specs: &[LinkSpec],
    links: &[LinkInfo],
    waited: Duration,
    last_try: bool,
) -> Result<Vec<Target>, NetError> {
    let named: Vec<&str> = specs.iter().filter_map(|s| s.device.as_deref()).collect();
    let mut targets = Vec::new();
    for spec in specs {
        if let Some(name) = &spec.device {
            let link =
                links
                    .iter()
                    .find(|l| &l.name == name)
                    .ok_or_else(|| NetError::LinkMissing {
                        link: name.clone(),
                        waited,
                    })?;
            targets.push(Target {
                link: link.clone(),
                spec: spec.clone(),
                required: true,
            });
            continue;
        }
        // No device: the automatic candidates, minus links that have their own ip=.
        let free = |n: &str| !named.contains(&n);
        let candidates: Vec<&LinkInfo> = links
            .iter()
            .filter(|l| !l.loopback && free(&l.name))
            .filter(|l| match cfg.links.is_empty() {
                true => l.physical,
                false => cfg.links.contains(&l.name),
            })
            .collect();
        let missing = cfg
            .links
            .iter()
            .find(|n| free(n) && !links.iter().any(|l| &l.name == *n));
        if let (Some(m), false) = (missing, last_try) {
            return Err(NetError::LinkMissing {
                link: m.clone(),
                waited,
            });
        }
        if candidates.is_empty() {
            let present = links
                .iter()
                .filter(|l| !l.loopback)
                .map(|l| l.name.clone())
                .collect();
            return Err(NetError::NoLinks { waited, present });
        }
        match spec.method {
            Method::Dhcp => targets.extend(candidates.into_iter().map(|l| Target {
                link: l.clone(),
                spec: spec.clone(),
                required: false,
            })),
            // The kernel's rule for a static ip= without a device: the first one.
            Method::Static(_) => {
                targets.extend(candidates.first().map(|l| Target {
                    link: (*l).clone(),
                    spec: spec.clone(),
                    required: true,
                }));
            }
        }
    }
    targets.sort_by_key(|t| t.link.index);
    Ok(targets)
}

/// Polls until the `active` targets have carrier, returning per target the time it took
/// (`None`: none within the timeout). Stops early once one link has carrier, every required link
/// has it, and the grace period for the other automatic links is over.
async fn wait_for_carrier(
    cfg: &NetConfig,
    targets: &[Target],
    active: &[bool],
    sys: &dyn Net,
) -> Result<Vec<Option<Duration>>, NetError> {
    let start = Instant::now();
    let mut seen: Vec<Option<Duration>> = vec![None; targets.len()];
    let mut first: Option<Instant> = None;
    loop {
        let links = sys.links().map_err(NetError::ListLinks)?;
        for (i, t) in targets.iter().enumerate() {
            let up = links.iter().any(|l| l.index == t.link.index && l.carrier);
            if up && active.get(i) == Some(&true) && seen[i].is_none() {
                seen[i] = Some(start.elapsed());
                first.get_or_insert_with(Instant::now);
            }
        }
        let waiting = |required_only: bool| {
            targets
                .iter()
                .zip(&seen)
                .zip(active)
                .any(|((t, s), a)| *a && s.is_none() && (t.required || !required_only))
        };
        let now = Instant::now();
        let grace_over = first.is_some_and(|f| now >= f + cfg.timeouts.carrier_grace);
        if !waiting(false) || now >= start + cfg.timeouts.carrier || (grace_over && !waiting(true))
        {
            return Ok(seen);
        }
        tokio::time::sleep(cfg.timeouts.poll).await;
    }
}

/// Gets an address for one link (static or DHCP) and configures it.
async fn configure(
    cfg: &NetConfig,
    sys: &dyn Net,
    t: &Target,
    carrier: Option<Duration>,
    metric: u32,
) -> Result<Configured, NetError> {
    let link = &t.link;
    let name = || link.name.clone();
    let (address, prefix_len, gateway, lease, dhcp_took) = match t.spec.method {
        // A static address does not need carrier; the cable may come later.
        Method::Static(s) => (s.address, s.prefix_len, s.gateway, None, None),
        Method::Dhcp => {
            if carrier.is_none() {
                return Err(NetError::NoCarrier {
                    link: name(),
                    waited: cfg.timeouts.carrier,
                });
            }
            let mac = link.mac.ok_or_else(|| NetError::NoMac { link: name() })?;
            let started = Instant::now();
            let mut socket = sys.dhcp_socket(link).map_err(|source| NetError::DhcpIo {
                link: name(),
                action: "opening the DHCP socket",
                source,
            })?;
            let client = DhcpClient::new(
                mac,
                t.spec.hostname.clone(),
                cfg.timeouts.dhcp,
                dhcp::random_seed(mac),
            );
            let lease = dhcp::exchange(socket.as_mut(), client)
                .await
                .map_err(|e| match e {
                    ExchangeError::Failed(failure) => NetError::Dhcp {
                        link: name(),
                        failure,
                    },
                    ExchangeError::Io { action, source } => NetError::DhcpIo {
                        link: name(),
                        action,
                        source,
                    },
                })?;
            (
                lease.address,
                lease.prefix_len,
                lease.router,
                Some(lease),
                Some(started.elapsed()),
            )
        }
    };

    let configuring = Instant::now();
    // MTU before the address: nothing may be sent with the wrong one.
    let mtu = t
        .spec
        .mtu
        .or(lease.as_ref().and_then(|l| l.mtu).map(u32::from));
    if let Some(m) = mtu.filter(|m| link.mtu != Some(*m)) {
        sys.set_mtu(link, m).map_err(netlink(
            link,
            format!("setting the MTU of {} to {m}", link.name),
        ))?;
    }
    // EEXIST is fine for the address and the route: a restarted kubejoin finds its own work.
    tolerate_exists(sys.add_address(link, address, prefix_len)).map_err(netlink(
        link,
        format!("adding {address}/{prefix_len} to {}", link.name),
    ))?;
    if let Some(gw) = gateway {
        let route = DefaultRoute {
            gateway: gw,
            metric,
            onlink: !same_subnet(gw, address, prefix_len),
        };
        tolerate_exists(sys.add_default_route(link, route)).map_err(netlink(
            link,
            format!("adding the default route via {gw} on {}", link.name),
        ))?;
    }

    crate::trace::record(
        "netlink",
        || {
            format!(
                "{}: address {address}/{prefix_len}, default route",
                link.name
            )
        },
        configuring,
    );
    let mut dns = t.spec.dns.clone();
    if cfg.peer_dns {
        dns.extend(lease.iter().flat_map(|l| l.dns.iter().copied()));
    }
    Ok(Configured {
        address,
        prefix_len,
        gateway,
        dns,
        hostname: t
            .spec
            .hostname
            .clone()
            .or_else(|| lease.as_ref().and_then(|l| l.hostname.clone())),
        domain: lease.as_ref().and_then(|l| l.domain.clone()),
        mtu,
        lease_secs: lease.as_ref().and_then(|l| l.lease_secs),
        source: match &lease {
            Some(l) => Source::Dhcp { server: l.server },
            None => Source::Static,
        },
        carrier_after: carrier,
        dhcp_took,
        ntp: lease.as_ref().map(|l| l.ntp.clone()).unwrap_or_default(),
    })
}

fn tolerate_exists(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix_len: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

/// Fills the report's DNS fields and writes resolv.conf when there is any server: `nameserver=`
/// first, then each link's in index order, duplicates dropped.
fn write_dns(cfg: &NetConfig, root: &Root, report: &mut NetReport) -> Result<(), NetError> {
    let mut origins = Vec::new();
    if !cfg.nameservers.is_empty() {
        origins.push("nameserver=".to_string());
    }
    let mut dns = cfg.nameservers.clone();
    let mut search: Vec<String> = Vec::new();
    for (link, c) in report.configured() {
        if !c.dns.is_empty() {
            origins.push(match c.source {
                Source::Static => format!("ip= for {link}"),
                Source::Dhcp { .. } => format!("DHCP on {link}"),
            });
        }
        dns.extend(c.dns.iter().copied());
        if cfg.peer_dns {
            search.extend(c.domain.iter().cloned());
        }
    }
    dedup(&mut dns);
    dedup(&mut search);
    if !dns.is_empty() {
        let text = resolv::render(&dns, &search, &origins.join(", "));
        report.resolv_conf = Some(resolv::write(root, &text)?);
    }
    report.dns = dns;
    report.search = search;
    Ok(())
}

fn dedup<T: PartialEq + Clone>(v: &mut Vec<T>) {
    let mut seen: Vec<T> = Vec::with_capacity(v.len());
    v.retain(|x| {
        let new = !seen.contains(x);
        if new {
            seen.push(x.clone());
        }
        new
    });
}

/// Runs futures concurrently on the current task and returns their outputs in order (DHCP on
/// several links at once, without spawning: they borrow the config and the `Net`).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::net::config::{NetTimeouts, StaticAddr};
    use crate::net::dhcp::{
        code, decode, encode, DhcpFailure, DhcpTiming, Message, MessageType, Opcode,
    };
    use crate::sys::net::{NetCall, NetOp, RecordingNet};

    const MAC0: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    const MAC1: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn fast() -> NetTimeouts {
        NetTimeouts {
            link: Duration::from_millis(200),
            carrier: Duration::from_millis(200),
            carrier_grace: Duration::from_millis(50),
            poll: Duration::from_millis(5),
            dhcp: DhcpTiming::default(),
        }
    }

    fn cfg(mode: NetMode) -> NetConfig {
        NetConfig {
            mode,
            timeouts: fast(),
            ..NetConfig::default()
        }
    }

    fn wired(index: u32, name: &str, mac: [u8; 6]) -> LinkInfo {
        LinkInfo {
            carrier: true,
            ..LinkInfo::ethernet(index, name, mac)
        }
    }

    /// A scripted DHCP server handing out `address` with `mask`, `router` and DNS 10.0.0.2.
    fn server(
        address: Ipv4Addr,
        mask: Ipv4Addr,
        router: Option<Ipv4Addr>,
    ) -> crate::sys::net::DhcpResponder {
        Box::new(move |packet: &[u8]| {
            let Ok(req) = decode(packet) else {
                return vec![];
            };
            let kind = match req.options.msg_type() {
                Some(MessageType::Discover) => MessageType::Offer,
                Some(MessageType::Request) => MessageType::Ack,
                _ => return vec![],
            };
            let mut m = Message::new(Opcode::BootReply, req.xid, [0; 6]);
            m.chaddr_field = req.chaddr_field;
            m.hlen = req.hlen;
            m.yiaddr = address;
            m.siaddr = SERVER;
            let o = &mut m.options;
            o.insert(code::MESSAGE_TYPE, [kind as u8]);
            o.insert_ip(code::SERVER_ID, SERVER);
            o.insert_ip(code::SUBNET_MASK, mask);
            if let Some(r) = router {
                o.insert_ips(code::ROUTER, &[r]);
            }
            o.insert_ips(code::DNS, &[Ipv4Addr::new(10, 0, 0, 2)]);
            o.insert(code::DOMAIN_NAME, "cluster.example");
            o.insert(code::LEASE_TIME, 600u32.to_be_bytes());
            o.insert(code::INTERFACE_MTU, 1450u16.to_be_bytes());
            o.insert_ips(code::NTP_SERVERS, &[Ipv4Addr::new(10, 0, 0, 123)]);
            vec![encode(&m)]
        })
    }

    fn mask24() -> Ipv4Addr {
        Ipv4Addr::new(255, 255, 255, 0)
    }

    fn root() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        (dir, root)
    }

    fn configured(r: &NetReport, link: &str) -> Configured {
        r.configured()
            .find(|(l, _)| *l == link)
            .map(|(_, c)| c.clone())
            .unwrap()
    }

    #[tokio::test]
    async fn auto_mode_runs_dhcp_on_physical_links_with_carrier() {
        let sys = RecordingNet::new()
            .with_link(LinkInfo::loopback())
            .with_link(wired(2, "eth0", MAC0))
            .with_link(LinkInfo {
                physical: false,
                ..wired(3, "veth0", MAC1)
            })
            .with_link(LinkInfo::ethernet(4, "eth1", MAC1)) // no cable
            .carrier_after("eth0", 2)
            .dhcp_responder(
                "eth0",
                server(Ipv4Addr::new(10, 0, 0, 42), mask24(), Some(SERVER)),
            );
        let (dir, root) = root();
        let report = bring_up(&cfg(NetMode::Auto), &root, &sys).await.unwrap();

        assert_eq!(
            sys.changes(),
            [
                NetCall::SetLinkUp { link: "lo".into() },
                NetCall::SetLinkUp {
                    link: "eth0".into()
                },
                NetCall::SetLinkUp {
                    link: "eth1".into()
                },
                NetCall::DhcpSocket {
                    link: "eth0".into()
                },
                NetCall::SetMtu {
                    link: "eth0".into(),
                    mtu: 1450
                },
                NetCall::AddAddress {
                    link: "eth0".into(),
                    address: Ipv4Addr::new(10, 0, 0, 42),
                    prefix_len: 24
                },
                NetCall::AddDefaultRoute {
                    link: "eth0".into(),
                    route: DefaultRoute {
                        gateway: SERVER,
                        metric: 100,
                        onlink: false
                    }
                },
            ],
            "veth0 is virtual and left alone; eth1 has no carrier so no DHCP"
        );
        let eth0 = configured(&report, "eth0");
        assert_eq!(
            (eth0.address, eth0.prefix_len, eth0.gateway),
            (Ipv4Addr::new(10, 0, 0, 42), 24, Some(SERVER))
        );
        assert_eq!(eth0.source, Source::Dhcp { server: SERVER });
        assert_eq!((eth0.mtu, eth0.lease_secs), (Some(1450), Some(600)));
        assert!(eth0.carrier_after.is_some() && eth0.dhcp_took.is_some());
        assert!(
            matches!(&report.links[1].outcome, LinkOutcome::Failed(e) if e.starts_with("no carrier on eth1"))
        );
        assert_eq!(report.dns, [Ipv4Addr::new(10, 0, 0, 2)]);
        let resolv = std::fs::read_to_string(dir.path().join("etc/resolv.conf")).unwrap();
        assert_eq!(
            resolv,
            "# written by kubejoin at boot from DHCP on eth0\nsearch cluster.example\nnameserver 10.0.0.2\n"
        );
        assert_eq!(report.resolv_conf, Some(dir.path().join("etc/resolv.conf")));
        let line = report.to_string();
        assert!(line.starts_with("eth0 10.0.0.42/24 via 10.0.0.1 domain cluster.example mtu 1450 (dhcp from 10.0.0.1, lease 600s"), "{line}");
    }

    #[tokio::test]
    async fn two_physical_links_get_leases_concurrently_with_distinct_metrics() {
        let sys = RecordingNet::new()
            .with_link(wired(3, "eth1", MAC1))
            .with_link(wired(2, "eth0", MAC0))
            .dhcp_responder(
                "eth0",
                server(Ipv4Addr::new(10, 0, 0, 42), mask24(), Some(SERVER)),
            )
            .dhcp_responder(
                "eth1",
                server(Ipv4Addr::new(10, 0, 0, 43), mask24(), Some(SERVER)),
            );
        let (_dir, root) = root();
        let report = bring_up(&cfg(NetMode::Auto), &root, &sys).await.unwrap();
        let routes: Vec<_> = sys
            .changes()
            .into_iter()
            .filter_map(|c| match c {
                NetCall::AddDefaultRoute { link, route } => Some((link, route.metric)),
                _ => None,
            })
            .collect();
        assert_eq!(
            routes,
            [("eth0".to_string(), 100), ("eth1".to_string(), 101)]
        );
        assert_eq!(report.configured().count(), 2);
        assert_eq!(report.dns, [Ipv4Addr::new(10, 0, 0, 2)], "deduplicated");
        // Option 42 of both leases, once: the clock phase's `dhcp` layer.
        assert_eq!(report.ntp_servers(), [Ipv4Addr::new(10, 0, 0, 123)]);
        assert_eq!(
            configured(&report, "eth1").ntp,
            [Ipv4Addr::new(10, 0, 0, 123)]
        );
    }

    #[tokio::test]
    async fn static_ip_with_dns_and_nameserver_params() {
        let mut c = NetConfig::from_cmdline(&[
            (
                "ip".into(),
                Some("10.0.0.5::10.0.0.1:255.255.255.0:node1:eth0:off:10.0.0.53".into()),
            ),
            ("nameserver".into(), Some("10.9.9.9".into())),
        ])
        .unwrap();
        c.timeouts = fast();
        let sys = RecordingNet::new()
            .with_link(LinkInfo::loopback())
            .with_link(wired(2, "eth0", MAC0));
        let (dir, root) = root();
        let report = bring_up(&c, &root, &sys).await.unwrap();
        assert_eq!(
            sys.changes(),
            [
                NetCall::SetLinkUp { link: "lo".into() },
                NetCall::SetLinkUp {
                    link: "eth0".into()
                },
                NetCall::AddAddress {
                    link: "eth0".into(),
                    address: Ipv4Addr::new(10, 0, 0, 5),
                    prefix_len: 24
                },
                NetCall::AddDefaultRoute {
                    link: "eth0".into(),
                    route: DefaultRoute {
                        gateway: Ipv4Addr::new(10, 0, 0, 1),
                        metric: 100,
                        onlink: false
                    }
                },
            ]
        );
        let eth0 = configured(&report, "eth0");
        assert_eq!(eth0.source, Source::Static);
        assert_eq!(eth0.hostname.as_deref(), Some("node1"));
        assert_eq!(report.hostname(), Some("node1"));
        let resolv = std::fs::read_to_string(dir.path().join("etc/resolv.conf")).unwrap();
        assert_eq!(
            resolv,
            "# written by kubejoin at boot from nameserver=, ip= for eth0\nnameserver 10.9.9.9\nnameserver 10.0.0.53\n"
        );
    }

    #[tokio::test]
    async fn static_without_carrier_is_configured_anyway() {
        let spec = LinkSpec {
            device: None,
            method: Method::Static(StaticAddr {
                address: Ipv4Addr::new(192, 168, 1, 9),
                prefix_len: 24,
                gateway: None,
            }),
            ..LinkSpec::dhcp_everywhere()
        };
        let sys = RecordingNet::new()
            .with_link(LinkInfo {
                physical: false,
                ..wired(2, "docker0", MAC1)
            })
            .with_link(LinkInfo::ethernet(3, "ens3", MAC0))
            .with_link(LinkInfo::ethernet(4, "ens4", MAC1));
        let (_dir, root) = root();
        let report = bring_up(&cfg(NetMode::Explicit(vec![spec])), &root, &sys)
            .await
            .unwrap();
        let ens3 = configured(&report, "ens3");
        assert_eq!(ens3.carrier_after, None);
        assert_eq!(
            report.links.len(),
            1,
            "a static ip= without device takes the first physical link"
        );
        assert_eq!(
            report.resolv_conf, None,
            "no DNS server known: resolv.conf untouched"
        );
        assert!(report.to_string().contains("no carrier"), "{report}");
    }

    #[tokio::test]
    async fn named_link_without_dhcp_server_fails_with_a_clear_error() {
        let spec = LinkSpec {
            device: Some("eth0".into()),
            ..LinkSpec::dhcp_everywhere()
        };
        let sys = RecordingNet::new()
            .with_link(wired(2, "eth0", MAC0))
            .with_link(wired(3, "eth1", MAC1));
        let (_dir, root) = root();
        let e = bring_up(&cfg(NetMode::Explicit(vec![spec])), &root, &sys)
            .await
            .unwrap_err();
        match &e {
            NetError::Dhcp {
                link,
                failure: DhcpFailure::NoOffer { attempts: 6, .. },
            } => assert_eq!(link, "eth0"),
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string()
                .starts_with("no DHCP offer on eth0 after 6 attempts over "),
            "{e}"
        );
        let sends = sys
            .calls()
            .iter()
            .filter(|c| matches!(c, NetCall::DhcpSend { .. }))
            .count();
        assert_eq!(sends, 6);
        assert!(
            !sys.changes().contains(&NetCall::SetLinkUp {
                link: "eth1".into()
            }),
            "eth1 not named"
        );
    }

    #[tokio::test]
    async fn auto_mode_with_every_link_failing_reports_each() {
        let sys = RecordingNet::new()
            .with_link(wired(2, "eth0", MAC0))
            .with_link(LinkInfo::ethernet(3, "eth1", MAC1));
        let (_dir, root) = root();
        let e = bring_up(&cfg(NetMode::Auto), &root, &sys)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, NetError::NoLinkConfigured { errors } if errors.len() == 2),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("no DHCP offer on eth0") && text.contains("no carrier on eth1"),
            "{text}"
        );
        use crate::error::{Class, Classify as _};
        assert_eq!(e.class(), Class::Timeout);
    }

    #[tokio::test]
    async fn links_that_appear_late_are_waited_for_and_missing_ones_named() {
        let sys = RecordingNet::new()
            .with_link(wired(2, "eth0", MAC0))
            .appears_after("eth0", 3)
            .dhcp_responder(
                "eth0",
                server(Ipv4Addr::new(10, 0, 0, 42), mask24(), Some(SERVER)),
            );
        let (_dir, root) = root();
        let report = bring_up(&cfg(NetMode::Auto), &root, &sys).await.unwrap();
        assert_eq!(report.configured().count(), 1);

        let spec = LinkSpec {
            device: Some("eth7".into()),
            ..LinkSpec::dhcp_everywhere()
        };
        let e = bring_up(&cfg(NetMode::Explicit(vec![spec])), &root, &sys)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, NetError::LinkMissing { link, .. } if link == "eth7"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("network link eth7 did not appear within 200ms"),
            "{e}"
        );

        let sys = RecordingNet::new()
            .with_link(LinkInfo::loopback())
            .with_link(LinkInfo {
                physical: false,
                ..wired(2, "br0", MAC0)
            });
        let e = bring_up(&cfg(NetMode::Auto), &root, &sys)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no physical network link appeared within 200ms (links present: br0): is the NIC driver module loaded?"
        );
    }

    #[tokio::test]
    async fn candidate_links_may_be_given_and_may_be_virtual() {
        let sys = RecordingNet::new()
            .with_link(LinkInfo {
                physical: false,
                ..wired(2, "veth0", MAC0)
            })
            .with_link(wired(3, "eth0", MAC1))
            .dhcp_responder("veth0", server(Ipv4Addr::new(10, 0, 0, 42), mask24(), None));
        let (_dir, root) = root();
        let c = NetConfig {
            links: vec!["veth0".into()],
            ..cfg(NetMode::Auto)
        };
        let report = bring_up(&c, &root, &sys).await.unwrap();
        let links: Vec<_> = report.links.iter().map(|l| l.link.as_str()).collect();
        assert_eq!(links, ["veth0"]);
        assert_eq!(
            configured(&report, "veth0").gateway,
            None,
            "no router offered: no default route"
        );
        assert!(!sys
            .changes()
            .iter()
            .any(|c| matches!(c, NetCall::AddDefaultRoute { .. })));
    }

    #[tokio::test]
    async fn ip_off_brings_up_loopback_only() {
        let sys = RecordingNet::new()
            .with_link(LinkInfo::loopback())
            .with_link(wired(2, "eth0", MAC0));
        let (_dir, root) = root();
        let report = bring_up(&cfg(NetMode::Off), &root, &sys).await.unwrap();
        assert!(report.disabled);
        assert_eq!(sys.changes(), [NetCall::SetLinkUp { link: "lo".into() }]);
    }

    #[tokio::test]
    async fn existing_address_and_route_are_fine_other_failures_name_link_and_action() {
        let lease = || server(Ipv4Addr::new(10, 0, 0, 42), mask24(), Some(SERVER));
        let sys = RecordingNet::new()
            .with_link(wired(2, "eth0", MAC0))
            .dhcp_responder("eth0", lease())
            .failing(NetOp::AddAddress, None, io::ErrorKind::AlreadyExists)
            .failing(NetOp::AddDefaultRoute, None, io::ErrorKind::AlreadyExists);
        let (_dir, root) = root();
        bring_up(&cfg(NetMode::Auto), &root, &sys).await.unwrap();

        let sys = RecordingNet::new()
            .with_link(wired(2, "eth0", MAC0))
            .dhcp_responder("eth0", lease())
            .failing(
                NetOp::AddAddress,
                Some("eth0"),
                io::ErrorKind::PermissionDenied,
            );
        let spec = LinkSpec {
            device: Some("eth0".into()),
            ..LinkSpec::dhcp_everywhere()
        };
        let e = bring_up(&cfg(NetMode::Explicit(vec![spec])), &root, &sys)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "adding 10.0.0.42/24 to eth0");
        assert!(matches!(&e, NetError::Netlink { link, source, .. }
            if link == "eth0" && source.kind() == io::ErrorKind::PermissionDenied));
    }

    #[tokio::test]
    async fn a_slash_32_lease_gets_an_onlink_default_route() {
        let sys = RecordingNet::new()
            .with_link(wired(2, "eth0", MAC0))
            .dhcp_responder(
                "eth0",
                server(
                    Ipv4Addr::new(10, 128, 0, 7),
                    Ipv4Addr::new(255, 255, 255, 255),
                    Some(Ipv4Addr::new(10, 128, 0, 1)),
                ),
            );
        let (_dir, root) = root();
        bring_up(&cfg(NetMode::Auto), &root, &sys).await.unwrap();
        assert!(sys.changes().contains(&NetCall::AddDefaultRoute {
            link: "eth0".into(),
            route: DefaultRoute {
                gateway: Ipv4Addr::new(10, 128, 0, 1),
                metric: 100,
                onlink: true
            },
        }));
    }

    #[tokio::test]
    async fn peer_dns_off_ignores_dhcp_dns() {
        let sys = RecordingNet::new()
            .with_link(wired(2, "eth0", MAC0))
            .dhcp_responder(
                "eth0",
                server(Ipv4Addr::new(10, 0, 0, 42), mask24(), Some(SERVER)),
            );
        let (dir, root) = root();
        let c = NetConfig {
            peer_dns: false,
            ..cfg(NetMode::Auto)
        };
        let report = bring_up(&c, &root, &sys).await.unwrap();
        assert!(report.dns.is_empty() && report.search.is_empty());
        assert!(!dir.path().join("etc/resolv.conf").exists());
    }

    #[tokio::test]
    async fn dhcp_requests_carry_the_ip_hostname() {
        let spec = LinkSpec {
            device: Some("eth0".into()),
            hostname: Some("node9".into()),
            ..LinkSpec::dhcp_everywhere()
        };
        let sys = RecordingNet::new()
            .with_link(wired(2, "eth0", MAC0))
            .dhcp_responder(
                "eth0",
                server(Ipv4Addr::new(10, 0, 0, 42), mask24(), Some(SERVER)),
            );
        let (_dir, root) = root();
        bring_up(&cfg(NetMode::Explicit(vec![spec])), &root, &sys)
            .await
            .unwrap();
        let first = sys.calls().into_iter().find_map(|c| match c {
            NetCall::DhcpSend { packet, .. } => Some(packet),
            _ => None,
        });
        let msg = decode(&first.unwrap()).unwrap();
        assert_eq!(msg.options.get(code::HOSTNAME), Some(&b"node9"[..]));
    }

    #[test]
    fn subnet_membership() {
        let a = Ipv4Addr::new(10, 0, 0, 42);
        assert!(same_subnet(Ipv4Addr::new(10, 0, 0, 1), a, 24));
        assert!(!same_subnet(Ipv4Addr::new(10, 0, 1, 1), a, 24));
        assert!(!same_subnet(Ipv4Addr::new(10, 0, 0, 1), a, 32));
        assert!(same_subnet(Ipv4Addr::new(192, 168, 0, 1), a, 0));
    }
}
