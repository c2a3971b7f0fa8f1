//! The few rtnetlink messages kubejoin sends, encoded by hand, and the replies it reads
//! (`RTM_NEWLINK` of a link dump, `NLMSG_ERROR` as ACK or errno, `NLMSG_DONE`).
//!
//! Layouts from `linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_link.h`, `linux/if_addr.h`:
//! a 16-byte `nlmsghdr`, a fixed family header, then `rtattr`s (u16 length including its
//! 4-byte header, u16 type, value padded to 4 bytes). All integers are host order (netlink is
//! host-endian; kubejoin targets little-endian x86_64/aarch64 but uses `to_ne_bytes` anyway).
//! The tests compare every request byte for byte with `netlink-packet-route`'s encoding.
//! Parsing is total: every read is a checked slice, so a strange reply is an error, not a panic.

use std::io;
use std::net::Ipv4Addr;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const AF_INET: u8 = 2;
const ARPHRD_ETHER: u16 = 1;

pub const IFF_UP: u32 = 0x1;
pub const IFF_LOOPBACK: u32 = 0x8;
pub const IFF_LOWER_UP: u32 = 0x1_0000;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;

const RT_TABLE_MAIN: u8 = 254;
/// "proto boot": installed during boot, as the kernel's ip= autoconfig marks its routes.
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTNH_F_ONLINK: u32 = 4;

const HEADER_LEN: usize = 16;

/// A request under construction: header, then the family header, then attributes.
#[derive(Debug)]
pub struct Request(Vec<u8>);

impl Request {
    fn new(kind: u16, flags: u16, family_header: &[u8]) -> Self {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        b.extend_from_slice(family_header);
        Self(b)
    }

    fn attr(mut self, kind: u16, value: &[u8]) -> Self {
        // Attribute values here are at most 4 bytes: the length always fits.
        let len = (4 + value.len()) as u16;
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    /// The finished datagram.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() as u32).to_ne_bytes();
        self.0[..4].copy_from_slice(&len);
        self.0
    }
}

/// `struct ifinfomsg`.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0; 16];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// Dump every link (`ip link show`).
pub fn get_links() -> Vec<u8> {
    Request::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifinfomsg(0, 0, 0)).finish()
}

/// `ip link set <index> up`.
pub fn set_link_up(index: u32) -> Vec<u8> {
    Request::new(
        RTM_SETLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        &ifinfomsg(index, IFF_UP, IFF_UP),
    )
    .finish()
}

/// `ip link set <index> mtu <mtu>`.
pub fn set_mtu(index: u32, mtu: u32) -> Vec<u8> {
    Request::new(
        RTM_SETLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        &ifinfomsg(index, 0, 0),
    )
    .attr(IFLA_MTU, &mtu.to_ne_bytes())
    .finish()
}

/// `ip addr add <address>/<prefix_len> [broadcast <broadcast>] dev <index>`.
pub fn add_address(
    index: u32,
    address: Ipv4Addr,
    prefix_len: u8,
    broadcast: Option<Ipv4Addr>,
) -> Vec<u8> {
    let mut h = [AF_INET, prefix_len, 0, 0, 0, 0, 0, 0];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    let r = Request::new(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
        &h,
    )
    .attr(IFA_LOCAL, &address.octets())
    .attr(IFA_ADDRESS, &address.octets());
    match broadcast {
        Some(b) => r.attr(IFA_BROADCAST, &b.octets()),
        None => r,
    }
    .finish()
}

/// `ip route add default via <gateway> dev <index> metric <metric> proto boot [onlink]`.
pub fn add_default_route(index: u32, gateway: Ipv4Addr, metric: u32, onlink: bool) -> Vec<u8> {
    let mut h = [
        AF_INET,
        0, // destination prefix length: default route
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ];
    let flags = if onlink { RTNH_F_ONLINK } else { 0 };
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    Request::new(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
        &h,
    )
    .attr(RTA_GATEWAY, &gateway.octets())
    .attr(RTA_OIF, &index.to_ne_bytes())
    .attr(RTA_PRIORITY, &metric.to_ne_bytes())
    .finish()
}

/// A link from an `RTM_NEWLINK` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub flags: u32,
    pub name: Option<String>,
    /// Only for Ethernet links (`ARPHRD_ETHER`) with a 6-byte address.
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
}

/// What one datagram from the kernel said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replies {
    pub links: Vec<Link>,
    /// `NLMSG_DONE`, or an `NLMSG_ERROR` with code 0 (the ACK): the request is answered.
    pub done: bool,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed rtnetlink reply: {what}"),
    )
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses one datagram of answers. An `NLMSG_ERROR` with a non-zero code is returned as the
/// `io::Error` of that errno (`EEXIST` → `AlreadyExists`).
pub fn parse(datagram: &[u8]) -> io::Result<Replies> {
    let mut out = Replies::default();
    let mut rest = datagram;
    while rest.len() >= HEADER_LEN {
        let len = u32_at(rest, 0).ok_or_else(|| invalid("header"))? as usize;
        let kind = u16_at(rest, 4).ok_or_else(|| invalid("header"))?;
        if len < HEADER_LEN || len > rest.len() {
            return Err(invalid("message length"));
        }
        let payload = rest.get(HEADER_LEN..len).unwrap_or_default();
        match kind {
            NLMSG_DONE => {
                out.done = true;
                return Ok(out);
            }
            NLMSG_ERROR => {
                let code = u32_at(payload, 0).ok_or_else(|| invalid("error message"))? as i32;
                if code == 0 {
                    out.done = true;
                    return Ok(out);
                }
                return Err(io::Error::from_raw_os_error(code.wrapping_neg()));
            }
            RTM_NEWLINK => out.links.push(parse_link(payload)?),
            _ => {}
        }
        // Messages inside one datagram are 4-byte aligned.
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(out)
}

fn parse_link(p: &[u8]) -> io::Result<Link> {
    let link_type = u16_at(p, 2).ok_or_else(|| invalid("ifinfomsg"))?;
    let index = u32_at(p, 4).ok_or_else(|| invalid("ifinfomsg"))?;
    let flags = u32_at(p, 8).ok_or_else(|| invalid("ifinfomsg"))?;
    let mut link = Link {
        index,
        flags,
        name: None,
        mac: None,
        mtu: None,
    };
    let mut attrs = p.get(16..).unwrap_or_default();
    while attrs.len() >= 4 {
        let (Some(len), Some(kind)) = (u16_at(attrs, 0), u16_at(attrs, 2)) else {
            break;
        };
        let len = usize::from(len);
        let value = attrs.get(4..len).ok_or_else(|| invalid("link attribute"))?;
        // The top bits are the nested/byte-order flags.
        match kind & 0x3fff {
            IFLA_IFNAME => {
                let name = value.split(|&b| b == 0).next().unwrap_or_default();
                link.name = Some(String::from_utf8_lossy(name).into_owned());
            }
            IFLA_ADDRESS if link_type == ARPHRD_ETHER => link.mac = value.try_into().ok(),
            IFLA_MTU => link.mtu = value.try_into().ok().map(u32::from_ne_bytes),
            _ => {}
        }
        attrs = attrs
            .get(len.max(4).next_multiple_of(4)..)
            .unwrap_or_default();
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::NetlinkMessage;
    use netlink_packet_route::address::{AddressAttribute, AddressMessage};
    use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
    use netlink_packet_route::route::{
        RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
        RouteScope, RouteType,
    };
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

    use super::*;

    /// The crate's encoding of `message` with our header fields (the known answer).
    fn crate_bytes(message: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
        let mut m = NetlinkMessage::from(message);
        m.header.flags = flags;
        m.header.sequence_number = 1;
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    #[test]
    fn link_requests_match_the_crate_encoding() {
        assert_eq!(
            get_links(),
            crate_bytes(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP
            )
        );
        let mut up = LinkMessage::default();
        up.header.index = 7;
        up.header.flags = LinkFlags::Up;
        up.header.change_mask = LinkFlags::Up;
        assert_eq!(
            set_link_up(7),
            crate_bytes(RouteNetlinkMessage::SetLink(up), NLM_F_REQUEST | NLM_F_ACK)
        );
        let mut mtu = LinkMessage::default();
        mtu.header.index = 7;
        mtu.attributes.push(LinkAttribute::Mtu(1450));
        assert_eq!(
            set_mtu(7, 1450),
            crate_bytes(RouteNetlinkMessage::SetLink(mtu), NLM_F_REQUEST | NLM_F_ACK)
        );
    }

    #[test]
    fn address_requests_match_the_crate_encoding() {
        let addr = Ipv4Addr::new(10, 0, 0, 42);
        for broadcast in [Some(Ipv4Addr::new(10, 0, 0, 255)), None] {
            let mut m = AddressMessage::default();
            m.header.family = AddressFamily::Inet;
            m.header.prefix_len = 24;
            m.header.index = 3;
            m.attributes.push(AddressAttribute::Local(addr.into()));
            m.attributes.push(AddressAttribute::Address(addr.into()));
            if let Some(b) = broadcast {
                m.attributes.push(AddressAttribute::Broadcast(b));
            }
            assert_eq!(
                add_address(3, addr, 24, broadcast),
                crate_bytes(
                    RouteNetlinkMessage::NewAddress(m),
                    NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
                )
            );
        }
    }

    #[test]
    fn route_requests_match_the_crate_encoding() {
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        for onlink in [false, true] {
            let mut m = RouteMessage::default();
            m.header.address_family = AddressFamily::Inet;
            m.header.table = RouteHeader::RT_TABLE_MAIN;
            m.header.protocol = RouteProtocol::Boot;
            m.header.scope = RouteScope::Universe;
            m.header.kind = RouteType::Unicast;
            if onlink {
                m.header.flags = RouteFlags::Onlink;
            }
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
            m.attributes.push(RouteAttribute::Oif(3));
            m.attributes.push(RouteAttribute::Priority(1024));
            assert_eq!(
                add_default_route(3, gw, 1024, onlink),
                crate_bytes(
                    RouteNetlinkMessage::NewRoute(m),
                    NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
                )
            );
        }
    }

    /// An `RTM_NEWLINK` as the kernel sends it, built with the crate.
    fn newlink(index: u32, name: &str, ether: bool, flags: LinkFlags) -> Vec<u8> {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.flags = flags;
        l.header.link_layer_type = if ether {
            LinkLayerType::Ether
        } else {
            LinkLayerType::Loopback
        };
        l.attributes.push(LinkAttribute::IfName(name.into()));
        l.attributes.push(LinkAttribute::Mtu(1500));
        // An attribute we do not read, with a length that needs padding.
        l.attributes.push(LinkAttribute::Qdisc("noqueue".into()));
        l.attributes
            .push(LinkAttribute::Address(vec![0x52, 0x54, 0, 1, 2, 3]));
        crate_bytes(RouteNetlinkMessage::NewLink(l), 2)
    }

    #[test]
    fn a_link_dump_is_parsed() {
        let mut datagram = newlink(1, "lo", false, LinkFlags::Up | LinkFlags::Loopback);
        datagram.extend(newlink(2, "eth0", true, LinkFlags::Up | LinkFlags::LowerUp));
        let r = parse(&datagram).unwrap();
        assert!(!r.done, "no NLMSG_DONE yet: keep reading");
        assert_eq!(
            r.links,
            [
                Link {
                    index: 1,
                    flags: IFF_UP | IFF_LOOPBACK,
                    name: Some("lo".into()),
                    mac: None,
                    mtu: Some(1500),
                },
                Link {
                    index: 2,
                    flags: IFF_UP | IFF_LOWER_UP,
                    name: Some("eth0".into()),
                    mac: Some([0x52, 0x54, 0, 1, 2, 3]),
                    mtu: Some(1500),
                },
            ]
        );
        // NLMSG_DONE (a 4-byte payload) ends the dump.
        let mut done = 20u32.to_ne_bytes().to_vec();
        done.extend(NLMSG_DONE.to_ne_bytes());
        done.extend([2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(parse(&done).unwrap().done);
    }

    fn error_message(code: i32) -> Vec<u8> {
        let mut b = 36u32.to_ne_bytes().to_vec();
        b.extend(NLMSG_ERROR.to_ne_bytes());
        b.extend([0; 10]);
        b.extend(code.to_ne_bytes());
        b.extend(&set_link_up(2)[..16]); // the echoed request header
        b
    }

    #[test]
    fn ack_and_errno_replies() {
        assert!(parse(&error_message(0)).unwrap().done);
        let e = parse(&error_message(-17)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(e.raw_os_error(), Some(17));
        let e = parse(&error_message(-1)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(1), "EPERM");
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let good = newlink(2, "eth0", true, LinkFlags::Up);
        let mut bad_len = good.clone();
        bad_len[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse(&bad_len).is_err());
        let mut short = good.clone();
        short[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(parse(&short).is_err());
        // Every truncation and every single-byte change: an answer or an error, no panic.
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        for at in 0..good.len() {
            for v in [0, 1, 3, 0x7f, 0xff] {
                let mut p = good.clone();
                p[at] = v;
                let _ = parse(&p);
            }
        }
        let _ = parse(&error_message(0)[..20]);
    }
}
