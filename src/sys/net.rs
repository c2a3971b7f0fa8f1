//! Kernel-facing network effects behind one narrow trait (the `src/net` bring-up's seam).
//!
//! [`Net`] is everything the network bring-up asks of the kernel: list links, set a link up,
//! set its MTU, add an IPv4 address, add a default route, and open a DHCP client socket bound to
//! one link. [`RealNet`] speaks rtnetlink (the few messages encoded by hand in `rtnl`, a
//! plain blocking `netlink-sys` socket) and uses `socket2` + tokio for the DHCP socket;
//! [`RecordingNet`] records typed [`NetCall`]s, can inject failures, and answers DHCP packets with
//! a scripted responder, so the bring-up logic is tested without root and without a network.
//!
//! No `unsafe` is needed: `netlink-sys` and `socket2` wrap the raw calls.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::rtnl;
use crate::fs::root::Root;

/// DHCP server port (RFC 2131): where client packets go.
pub const DHCP_SERVER_PORT: u16 = 67;
/// DHCP client port (RFC 2131): where our socket listens.
pub const DHCP_CLIENT_PORT: u16 = 68;

/// A boxed, sendable future returning `io::Result<T>` (the DHCP socket's async methods must be
/// callable through `dyn`, so they cannot be `async fn`s).
pub type IoFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// One network link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Kernel interface index (stable while the link exists).
    pub index: u32,
    pub name: String,
    /// Ethernet MAC address; `None` for links without one (loopback, tunnels).
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`, what `/sys/class/net/<if>/carrier` shows for an up link).
    pub carrier: bool,
    /// The loopback device (`IFF_LOOPBACK`).
    pub loopback: bool,
    /// Backed by hardware (or a virtual NIC the hypervisor provides): it has
    /// `/sys/class/net/<if>/device`. Bridges, veths, tunnels and `lo` have none.
    pub physical: bool,
}

impl LinkInfo {
    /// A physical Ethernet link that is down (a test helper, and documentation of the shape).
    pub fn ethernet(index: u32, name: &str, mac: [u8; 6]) -> Self {
        Self {
            index,
            name: name.to_string(),
            mac: Some(mac),
            mtu: Some(1500),
            up: false,
            carrier: false,
            loopback: false,
            physical: true,
        }
    }

    /// The loopback link, down.
    pub fn loopback() -> Self {
        Self {
            index: 1,
            name: "lo".to_string(),
            mac: None,
            mtu: Some(65536),
            up: false,
            carrier: false,
            loopback: true,
            physical: false,
        }
    }
}

/// A default route to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Ipv4Addr,
    /// Route priority; distinct per link, because the kernel refuses a second default route
    /// with the same metric.
    pub metric: u32,
    /// The gateway lies outside the link's subnet (a /32 lease, as some clouds hand out): tell
    /// the kernel it is reachable on this link anyway, or it refuses the route.
    pub onlink: bool,
}

/// The network effects the bring-up needs. Errors are plain `io::Error`s carrying the kernel's
/// errno (`AlreadyExists` for `EEXIST`), so callers decide what is benign.
pub trait Net: fmt::Debug + Send + Sync {
    /// Every link in this network namespace, ordered by index.
    fn links(&self) -> io::Result<Vec<LinkInfo>>;
    /// `ip link set <link> up`.
    fn set_link_up(&self, link: &LinkInfo) -> io::Result<()>;
    /// `ip link set <link> mtu <mtu>`.
    fn set_mtu(&self, link: &LinkInfo, mtu: u32) -> io::Result<()>;
    /// `ip addr add <address>/<prefix_len> dev <link>` (with the broadcast address).
    fn add_address(&self, link: &LinkInfo, address: Ipv4Addr, prefix_len: u8) -> io::Result<()>;
    /// `ip route add default via <gateway> dev <link> metric <metric> [onlink]`.
    fn add_default_route(&self, link: &LinkInfo, route: DefaultRoute) -> io::Result<()>;
    /// A UDP socket on 0.0.0.0:68 bound to `link`, allowed to broadcast. Must be called from
    /// within a tokio runtime with I/O and time enabled.
    fn dhcp_socket(&self, link: &LinkInfo) -> io::Result<Box<dyn DhcpSocket>>;
}

/// A DHCP client socket bound to one link.
pub trait DhcpSocket: fmt::Debug + Send {
    /// Broadcasts `packet` to 255.255.255.255:67 out of the bound link.
    fn send<'a>(&'a mut self, packet: &'a [u8]) -> IoFuture<'a, ()>;
    /// Waits up to `timeout` for one datagram into `buf`; `Ok(None)` when none came in time.
    fn recv<'a>(&'a mut self, buf: &'a mut [u8], timeout: Duration) -> IoFuture<'a, Option<usize>>;
}

// ------------------------------------------------------------------------------------------------
// The real system.

/// The real system: rtnetlink in the calling thread's network namespace, `sysfs` under `root`.
#[derive(Debug, Clone)]
pub struct RealNet {
    root: Root,
}

impl RealNet {
    /// Reads `/sys/class/net` under `root` (`/` on a booted system or in the initramfs).
    pub fn new(root: Root) -> Self {
        Self { root }
    }

    fn is_physical(&self, name: &str) -> bool {
        self.root
            .join(format!("/sys/class/net/{name}/device"))
            .map(|p| p.exists())
            .unwrap_or(false)
    }
}

/// Sends one rtnetlink request and collects the answers up to its ACK (or `NLMSG_DONE` for a
/// dump). A fresh socket per request keeps sequence numbers trivial and leaves no stale replies
/// behind; the kernel answers rtnetlink synchronously, in the sender's context, so the replies
/// are queued by the time `send` returns and the blocking `recv` cannot hang.
fn rtnl_request(request: &[u8]) -> io::Result<Vec<rtnl::Link>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(request, 0)?;

    let mut links = Vec::new();
    // Larger than any datagram the kernel builds: it caps dump datagrams at 32 KiB
    // (netlink_recvmsg), so nothing is ever cut off.
    let mut rbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        rbuf.clear();
        let n = socket.recv(&mut rbuf, 0)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "rtnetlink socket closed before the answer was complete",
            ));
        }
        let replies = rtnl::parse(&rbuf)?;
        links.extend(replies.links);
        if replies.done {
            return Ok(links);
        }
    }
}

fn link_info(link: rtnl::Link) -> Option<LinkInfo> {
    Some(LinkInfo {
        index: link.index,
        name: link.name?,
        mac: link.mac,
        mtu: link.mtu,
        up: link.flags & rtnl::IFF_UP != 0,
        carrier: link.flags & rtnl::IFF_LOWER_UP != 0,
        loopback: link.flags & rtnl::IFF_LOOPBACK != 0,
        physical: false,
    })
}

impl Net for RealNet {
    fn links(&self) -> io::Result<Vec<LinkInfo>> {
        let mut links: Vec<LinkInfo> = rtnl_request(&rtnl::get_links())?
            .into_iter()
            .filter_map(link_info)
            .collect();
        for l in &mut links {
            l.physical = !l.loopback && self.is_physical(&l.name);
        }
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    fn set_link_up(&self, link: &LinkInfo) -> io::Result<()> {
        rtnl_request(&rtnl::set_link_up(link.index)).map(|_| ())
    }

    fn set_mtu(&self, link: &LinkInfo, mtu: u32) -> io::Result<()> {
        rtnl_request(&rtnl::set_mtu(link.index, mtu)).map(|_| ())
    }

    fn add_address(&self, link: &LinkInfo, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        // `ip addr add` sets the broadcast address only when asked; we always do, as the kernel's
        // own ip= autoconfig does, so broadcast-based protocols work on the subnet.
        let broadcast = (prefix_len < 31).then(|| {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            Ipv4Addr::from(u32::from(address) | host_bits)
        });
        rtnl_request(&rtnl::add_address(
            link.index, address, prefix_len, broadcast,
        ))
        .map(|_| ())
    }

    fn add_default_route(&self, link: &LinkInfo, route: DefaultRoute) -> io::Result<()> {
        rtnl_request(&rtnl::add_default_route(
            link.index,
            route.gateway,
            route.metric,
            route.onlink,
        ))
        .map(|_| ())
    }

    fn dhcp_socket(&self, link: &LinkInfo) -> io::Result<Box<dyn DhcpSocket>> {
        use socket2::{Domain, Protocol, Type};
        // tokio panics when a socket is registered outside a runtime: refuse instead (PID 1).
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other("the DHCP socket needs a tokio runtime"));
        }
        let socket = socket2::Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        // Several links run DHCP at once, each with its own socket on port 68.
        socket.set_reuse_address(true)?;
        // We have no address yet: the only way to reach a server is 255.255.255.255.
        socket.set_broadcast(true)?;
        // Send out of, and hear only, this link (the limited broadcast has no route otherwise).
        socket.bind_device(Some(link.name.as_bytes()))?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DHCP_CLIENT_PORT).into())?;
        let socket = tokio::net::UdpSocket::from_std(socket.into())?;
        Ok(Box::new(RealDhcpSocket { socket }))
    }
}

#[derive(Debug)]
struct RealDhcpSocket {
    socket: tokio::net::UdpSocket,
}

impl DhcpSocket for RealDhcpSocket {
    fn send<'a>(&'a mut self, packet: &'a [u8]) -> IoFuture<'a, ()> {
        Box::pin(async move {
            let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, DHCP_SERVER_PORT);
            self.socket.send_to(packet, to).await.map(|_| ())
        })
    }

    fn recv<'a>(&'a mut self, buf: &'a mut [u8], timeout: Duration) -> IoFuture<'a, Option<usize>> {
        Box::pin(async move {
            match tokio::time::timeout(timeout, self.socket.recv_from(buf)).await {
                Ok(Ok((n, _from))) => Ok(Some(n)),
                Ok(Err(e)) => Err(e),
                Err(_elapsed) => Ok(None),
            }
        })
    }
}

// ------------------------------------------------------------------------------------------------
// The recording fake.

/// One recorded call on [`RecordingNet`] (links named, packets as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCall {
    Links,
    SetLinkUp {
        link: String,
    },
    SetMtu {
        link: String,
        mtu: u32,
    },
    AddAddress {
        link: String,
        address: Ipv4Addr,
        prefix_len: u8,
    },
    AddDefaultRoute {
        link: String,
        route: DefaultRoute,
    },
    DhcpSocket {
        link: String,
    },
    DhcpSend {
        link: String,
        packet: Vec<u8>,
    },
}

/// Which operation a [`RecordingNet`] failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NetOp {
    Links,
    SetLinkUp,
    SetMtu,
    AddAddress,
    AddDefaultRoute,
    DhcpSocket,
}

/// Answers one sent DHCP packet with zero or more reply packets (a scripted server).
pub type DhcpResponder = Box<dyn FnMut(&[u8]) -> Vec<Vec<u8>> + Send>;

struct RecordingState {
    links: Vec<LinkInfo>,
    /// Link name -> number of `links()` calls before the link exists (a driver still probing).
    appears_after: BTreeMap<String, u32>,
    /// Link name -> number of `links()` calls after it was set up before carrier shows.
    carrier_after: BTreeMap<String, u32>,
    /// Link name -> `links()` calls seen since it was set up.
    polls_since_up: BTreeMap<String, u32>,
    polls: u32,
    calls: Vec<NetCall>,
    failures: BTreeMap<(NetOp, Option<String>), io::ErrorKind>,
    responders: BTreeMap<String, DhcpResponder>,
}

impl fmt::Debug for RecordingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingState")
            .field("links", &self.links)
            .field("calls", &self.calls)
            .field("failures", &self.failures)
            .field("responders", &self.responders.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A fake network: a table of links whose state follows the calls made on it, a record of
/// every call, injectable failures, and scripted DHCP servers per link.
///
/// A link's carrier shows once it is up (and, with [`RecordingNet::carrier_after`], only after
/// some more polls), like the kernel's `IFF_LOWER_UP`. A DHCP socket's `recv` returns the
/// responder's queued replies, or times out at once when there are none, so tests never sleep.
#[derive(Debug, Clone)]
pub struct RecordingNet {
    state: Arc<Mutex<RecordingState>>,
}

impl Default for RecordingNet {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingNet {
    /// A fake with no links at all.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(RecordingState {
                links: Vec::new(),
                appears_after: BTreeMap::new(),
                carrier_after: BTreeMap::new(),
                polls_since_up: BTreeMap::new(),
                polls: 0,
                calls: Vec::new(),
                failures: BTreeMap::new(),
                responders: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RecordingState> {
        // A panicking test thread poisons the lock; the state is still usable for reporting.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a link. Its `carrier` field says whether a cable is plugged in: carrier then shows
    /// once the link is up.
    pub fn with_link(self, link: LinkInfo) -> Self {
        {
            let mut s = self.lock();
            s.links.push(link);
            s.links.sort_by_key(|l| l.index);
        }
        self
    }

    /// Makes `link` invisible to the first `polls` calls of `links()`.
    pub fn appears_after(self, link: &str, polls: u32) -> Self {
        self.lock().appears_after.insert(link.to_string(), polls);
        self
    }

    /// Makes carrier on `link` show only after `polls` calls of `links()` once it is up.
    pub fn carrier_after(self, link: &str, polls: u32) -> Self {
        self.lock().carrier_after.insert(link.to_string(), polls);
        self
    }

    /// Makes `op` fail with `kind`, on every link (`link: None`) or on one.
    pub fn failing(self, op: NetOp, link: Option<&str>, kind: io::ErrorKind) -> Self {
        self.lock()
            .failures
            .insert((op, link.map(str::to_string)), kind);
        self
    }

    /// Answers DHCP packets sent on `link` with `responder`.
    pub fn dhcp_responder(self, link: &str, responder: DhcpResponder) -> Self {
        self.lock().responders.insert(link.to_string(), responder);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<NetCall> {
        self.lock().calls.clone()
    }

    /// The calls that changed something (everything but `links()` polls and DHCP packets).
    pub fn changes(&self) -> Vec<NetCall> {
        self.calls()
            .into_iter()
            .filter(|c| !matches!(c, NetCall::Links | NetCall::DhcpSend { .. }))
            .collect()
    }

    fn check(s: &RecordingState, op: NetOp, link: &str) -> io::Result<()> {
        let kind = s
            .failures
            .get(&(op, Some(link.to_string())))
            .or_else(|| s.failures.get(&(op, None)));
        match kind {
            Some(kind) => Err(io::Error::new(*kind, format!("{op:?} failed (fake)"))),
            None => Ok(()),
        }
    }

    fn change(
        &self,
        op: NetOp,
        call: NetCall,
        link: &LinkInfo,
        apply: impl FnOnce(&mut LinkInfo),
    ) -> io::Result<()> {
        let mut s = self.lock();
        s.calls.push(call);
        Self::check(&s, op, &link.name)?;
        match s.links.iter_mut().find(|l| l.index == link.index) {
            Some(l) => {
                apply(l);
                Ok(())
            }
            None => Err(io::Error::from_raw_os_error(19 /* ENODEV */)),
        }
    }
}

impl Net for RecordingNet {
    fn links(&self) -> io::Result<Vec<LinkInfo>> {
        let mut s = self.lock();
        s.calls.push(NetCall::Links);
        Self::check(&s, NetOp::Links, "")?;
        s.polls += 1;
        let polls = s.polls;
        let up: Vec<String> = s
            .links
            .iter()
            .filter(|l| l.up)
            .map(|l| l.name.clone())
            .collect();
        for name in up {
            *s.polls_since_up.entry(name).or_insert(0) += 1;
        }
        let visible = s
            .links
            .iter()
            .filter(|l| {
                s.appears_after
                    .get(&l.name)
                    .is_none_or(|after| polls > *after)
            })
            .map(|l| {
                let waited = s.polls_since_up.get(&l.name).copied().unwrap_or(0);
                let needed = s.carrier_after.get(&l.name).copied().unwrap_or(0);
                LinkInfo {
                    carrier: l.carrier && l.up && waited > needed,
                    ..l.clone()
                }
            })
            .collect();
        Ok(visible)
    }

    fn set_link_up(&self, link: &LinkInfo) -> io::Result<()> {
        let call = NetCall::SetLinkUp {
            link: link.name.clone(),
        };
        self.change(NetOp::SetLinkUp, call, link, |l| l.up = true)
    }

    fn set_mtu(&self, link: &LinkInfo, mtu: u32) -> io::Result<()> {
        let call = NetCall::SetMtu {
            link: link.name.clone(),
            mtu,
        };
        self.change(NetOp::SetMtu, call, link, |l| l.mtu = Some(mtu))
    }

    fn add_address(&self, link: &LinkInfo, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let call = NetCall::AddAddress {
            link: link.name.clone(),
            address,
            prefix_len,
        };
        self.change(NetOp::AddAddress, call, link, |_| {})
    }

    fn add_default_route(&self, link: &LinkInfo, route: DefaultRoute) -> io::Result<()> {
        let call = NetCall::AddDefaultRoute {
            link: link.name.clone(),
            route,
        };
        self.change(NetOp::AddDefaultRoute, call, link, |_| {})
    }

    fn dhcp_socket(&self, link: &LinkInfo) -> io::Result<Box<dyn DhcpSocket>> {
        let mut s = self.lock();
        s.calls.push(NetCall::DhcpSocket {
            link: link.name.clone(),
        });
        Self::check(&s, NetOp::DhcpSocket, &link.name)?;
        Ok(Box::new(RecordingDhcpSocket {
            state: Arc::clone(&self.state),
            link: link.name.clone(),
            inbox: VecDeque::new(),
        }))
    }
}

#[derive(Debug)]
struct RecordingDhcpSocket {
    state: Arc<Mutex<RecordingState>>,
    link: String,
    inbox: VecDeque<Vec<u8>>,
}

impl DhcpSocket for RecordingDhcpSocket {
    fn send<'a>(&'a mut self, packet: &'a [u8]) -> IoFuture<'a, ()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.calls.push(NetCall::DhcpSend {
            link: self.link.clone(),
            packet: packet.to_vec(),
        });
        if let Some(responder) = s.responders.get_mut(&self.link) {
            self.inbox.extend(responder(packet));
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn recv<'a>(
        &'a mut self,
        buf: &'a mut [u8],
        _timeout: Duration,
    ) -> IoFuture<'a, Option<usize>> {
        let got = self.inbox.pop_front().map(|p| {
            let n = p.len().min(buf.len());
            buf[..n].copy_from_slice(&p[..n]);
            n
        });
        Box::pin(std::future::ready(Ok(got)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn fake_link_state_follows_calls() {
        let fake = RecordingNet::new()
            .with_link(LinkInfo {
                carrier: true,
                ..LinkInfo::ethernet(2, "eth0", MAC)
            })
            .with_link(LinkInfo::loopback())
            .appears_after("eth0", 1)
            .carrier_after("eth0", 1);
        let names = |v: Vec<LinkInfo>| v.into_iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(names(fake.links().unwrap()), ["lo"]);
        let eth0 = fake.links().unwrap().remove(1);
        assert!(!eth0.carrier, "no carrier while down");
        fake.set_link_up(&eth0).unwrap();
        assert!(
            !fake.links().unwrap()[1].carrier,
            "carrier_after(1): not on the first poll"
        );
        assert!(fake.links().unwrap()[1].carrier);
        fake.set_mtu(&eth0, 1400).unwrap();
        assert_eq!(fake.links().unwrap()[1].mtu, Some(1400));
        assert_eq!(
            fake.changes(),
            [
                NetCall::SetLinkUp {
                    link: "eth0".into()
                },
                NetCall::SetMtu {
                    link: "eth0".into(),
                    mtu: 1400
                }
            ]
        );
    }

    #[test]
    fn fake_injects_failures_per_link() {
        let fake = RecordingNet::new()
            .with_link(LinkInfo::ethernet(2, "eth0", MAC))
            .with_link(LinkInfo::ethernet(3, "eth1", MAC))
            .failing(
                NetOp::AddAddress,
                Some("eth1"),
                io::ErrorKind::PermissionDenied,
            );
        let links = fake.links().unwrap();
        fake.add_address(&links[0], Ipv4Addr::new(10, 0, 0, 5), 24)
            .unwrap();
        let e = fake
            .add_address(&links[1], Ipv4Addr::new(10, 0, 1, 5), 24)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn fake_dhcp_socket_answers_from_the_responder_and_times_out_when_empty() {
        let fake = RecordingNet::new()
            .with_link(LinkInfo::ethernet(2, "eth0", MAC))
            .dhcp_responder(
                "eth0",
                Box::new(|p: &[u8]| vec![p.iter().rev().copied().collect()]),
            );
        let eth0 = fake.links().unwrap().remove(0);
        let mut sock = fake.dhcp_socket(&eth0).unwrap();
        sock.send(&[1, 2, 3]).await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            sock.recv(&mut buf, Duration::from_secs(1)).await.unwrap(),
            Some(3)
        );
        assert_eq!(&buf[..3], &[3, 2, 1]);
        assert_eq!(
            sock.recv(&mut buf, Duration::from_secs(1)).await.unwrap(),
            None
        );
    }

    #[test]
    fn real_links_include_loopback() {
        // Reading links needs no privilege; every network namespace has `lo`.
        let links = RealNet::new(Root::new("/")).links().unwrap();
        let lo = links.iter().find(|l| l.loopback).unwrap();
        assert_eq!(lo.name, "lo");
        assert!(!lo.physical);
        assert_eq!(lo.mac, None);
    }

    #[test]
    fn real_dhcp_socket_outside_a_runtime_is_an_error_not_a_panic() {
        let e = RealNet::new(Root::new("/"))
            .dhcp_socket(&LinkInfo::loopback())
            .unwrap_err();
        assert!(e.to_string().contains("tokio runtime"), "{e}");
    }
}
