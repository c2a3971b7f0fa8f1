//! The DHCPv4 wire format: the BOOTP header (RFC 2131 §2), the magic cookie and the option
//! TLVs (RFC 2132), with option overload into `file`/`sname` (RFC 2132 §9.3) and long options
//! split over several TLVs of one code (RFC 3396).
//!
//! Options are kept as raw bytes per code; the typed readers (`ip`, `ips`, `u16`, `u32`,
//! `msg_type`) answer `None` for a value of the wrong length instead of failing the packet, so
//! one odd option from a server does not cost the lease. [`decode`] is total: any byte string
//! gives a message or a [`DecodeError`], never a panic (it only indexes through checked
//! `get`s); [`encode`] cannot fail.

use std::net::Ipv4Addr;

/// The RFC 2131 §3 magic cookie that starts the options field.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The BOOTP minimum that some relays and old servers insist on (RFC 1542 §2.1).
pub const MIN_PACKET_SIZE: usize = 300;
/// op .. file: the fixed BOOTP header.
const HEADER_LEN: usize = 236;
const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;

/// Option codes (RFC 2132) that kubejoin reads or writes.
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const BROADCAST_ADDR: u8 = 28;
    pub const NTP_SERVERS: u8 = 42;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// BOOTP `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    BootRequest = 1,
    BootReply = 2,
}

/// Option 53 (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }
}

/// The options of one message: one entry per code, in first-seen order, the values of repeated
/// TLVs of a code concatenated (RFC 3396 §7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(Vec<(u8, Vec<u8>)>);

impl Options {
    /// The raw value of `code`.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `code` to `value`, replacing an earlier value. PAD and END are framing, not options:
    /// they are ignored.
    pub fn insert(&mut self, code: u8, value: impl Into<Vec<u8>>) {
        if code == code::PAD || code == code::END {
            return;
        }
        let value = value.into();
        match self.0.iter_mut().find(|(c, _)| *c == code) {
            Some((_, v)) => *v = value,
            None => self.0.push((code, value)),
        }
    }

    pub fn insert_ip(&mut self, code: u8, ip: Ipv4Addr) {
        self.insert(code, ip.octets());
    }

    pub fn insert_ips(&mut self, code: u8, ips: &[Ipv4Addr]) {
        self.insert(
            code,
            ips.iter().flat_map(|a| a.octets()).collect::<Vec<_>>(),
        );
    }

    pub fn remove(&mut self, code: u8) {
        self.0.retain(|(c, _)| *c != code);
    }

    /// Appends one TLV's worth to `code` (RFC 3396 concatenation).
    fn append(&mut self, code: u8, value: &[u8]) {
        match self.0.iter_mut().find(|(c, _)| *c == code) {
            Some((_, v)) => v.extend_from_slice(value),
            None => self.0.push((code, value.to_vec())),
        }
    }

    /// Option 53, when it is one known byte.
    pub fn msg_type(&self) -> Option<MessageType> {
        match self.get(code::MESSAGE_TYPE)? {
            [b] => MessageType::from_u8(*b),
            _ => None,
        }
    }

    /// A single address (exactly four bytes).
    pub fn ip(&self, code: u8) -> Option<Ipv4Addr> {
        let b: [u8; 4] = self.get(code)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    }

    /// A non-empty list of addresses (a multiple of four bytes).
    pub fn ips(&self, code: u8) -> Option<Vec<Ipv4Addr>> {
        let v = self.get(code)?;
        if v.is_empty() || v.len() % 4 != 0 {
            return None;
        }
        Some(
            v.chunks_exact(4)
                .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                .collect(),
        )
    }

    pub fn u16(&self, code: u8) -> Option<u16> {
        Some(u16::from_be_bytes(self.get(code)?.try_into().ok()?))
    }

    pub fn u32(&self, code: u8) -> Option<u32> {
        Some(u32::from_be_bytes(self.get(code)?.try_into().ok()?))
    }

    /// Codes in order, with their values.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.0.iter().map(|(c, v)| (*c, v.as_slice()))
    }
}

/// One DHCP message. `sname` and `file` are not kept: kubejoin boots nothing over TFTP, and
/// options overloaded into them are moved into [`Message::options`] by [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: Opcode,
    /// Hardware type: 1 is Ethernet.
    pub htype: u8,
    /// Hardware address length, as sent (not validated: see [`Message::chaddr`]).
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    /// Bit 15 is the broadcast flag ([`Message::BROADCAST`]).
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// The whole 16-byte field.
    pub chaddr_field: [u8; 16],
    pub options: Options,
}

impl Message {
    /// The broadcast bit of `flags` (RFC 2131 §2, figure 2).
    pub const BROADCAST: u16 = 0x8000;

    /// A message of `op` for an Ethernet `mac`, all addresses zero, no options.
    pub fn new(op: Opcode, xid: u32, mac: [u8; 6]) -> Self {
        let mut chaddr_field = [0; 16];
        chaddr_field[..6].copy_from_slice(&mac);
        Self {
            op,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr_field,
            options: Options::default(),
        }
    }

    /// The hardware address: the first `hlen` bytes of the field (all 16 if `hlen` says more).
    pub fn chaddr(&self) -> &[u8] {
        &self.chaddr_field[..usize::from(self.hlen).min(16)]
    }

    pub fn broadcast(&self) -> bool {
        self.flags & Self::BROADCAST != 0
    }
}

/// Why a datagram is not a DHCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the BOOTP header plus the cookie.
    TooShort(usize),
    /// `op` is neither BOOTREQUEST nor BOOTREPLY.
    Opcode(u8),
    /// Plain BOOTP (no DHCP magic cookie).
    NoMagicCookie,
    /// An option's length runs past the end of its field.
    TruncatedOption { code: u8 },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "{n} bytes is too short for a DHCP message"),
            Self::Opcode(op) => write!(f, "BOOTP op {op} is neither request nor reply"),
            Self::NoMagicCookie => f.write_str("no DHCP magic cookie (plain BOOTP?)"),
            Self::TruncatedOption { code } => write!(f, "option {code} runs past its field"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

fn be16_at(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

/// Parses one options area into `into`. Stops at END or the end of the area; PAD is skipped.
fn parse_options(area: &[u8], into: &mut Options) -> Result<(), DecodeError> {
    let mut rest = area;
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            code::END => break,
            code::PAD => rest = tail,
            _ => {
                let Some((&len, tail)) = tail.split_first() else {
                    return Err(DecodeError::TruncatedOption { code });
                };
                let Some((value, tail)) = tail.split_at_checked(usize::from(len)) else {
                    return Err(DecodeError::TruncatedOption { code });
                };
                into.append(code, value);
                rest = tail;
            }
        }
    }
    Ok(())
}

/// Parses a datagram. Total over arbitrary bytes.
pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
    let Some((header, rest)) = b.split_at_checked(HEADER_LEN) else {
        return Err(DecodeError::TooShort(b.len()));
    };
    let Some((cookie, area)) = rest.split_at_checked(MAGIC_COOKIE.len()) else {
        return Err(DecodeError::TooShort(b.len()));
    };
    if cookie != MAGIC_COOKIE {
        return Err(DecodeError::NoMagicCookie);
    }
    let op = match header.first() {
        Some(1) => Opcode::BootRequest,
        Some(2) => Opcode::BootReply,
        other => return Err(DecodeError::Opcode(other.copied().unwrap_or(0))),
    };
    let byte = |at: usize| header.get(at).copied().unwrap_or(0);
    let mut chaddr_field = [0; 16];
    if let Some(c) = header.get(28..44) {
        chaddr_field.copy_from_slice(c);
    }
    let mut options = Options::default();
    parse_options(area, &mut options)?;
    // RFC 2132 §9.3 and RFC 3396 §5: with overload, the options go on in `file`, then `sname`.
    // An overload option inside those fields is not looked at again.
    let overload = match options.get(code::OVERLOAD) {
        Some(&[v]) => v,
        _ => 0,
    };
    if overload & 1 != 0 {
        parse_options(header.get(FILE).unwrap_or_default(), &mut options)?;
    }
    if overload & 2 != 0 {
        parse_options(header.get(SNAME).unwrap_or_default(), &mut options)?;
    }
    Ok(Message {
        op,
        htype: byte(1),
        hlen: byte(2),
        hops: byte(3),
        xid: u32::from(be16_at(header, 4)) << 16 | u32::from(be16_at(header, 6)),
        secs: be16_at(header, 8),
        flags: be16_at(header, 10),
        ciaddr: ip_at(header, 12),
        yiaddr: ip_at(header, 16),
        siaddr: ip_at(header, 20),
        giaddr: ip_at(header, 24),
        chaddr_field,
        options,
    })
}

/// The wire form of `msg`: header, cookie, options (values over 255 bytes split into several
/// TLVs, RFC 3396), END, zero-padded to [`MIN_PACKET_SIZE`]. Never overloads `file`/`sname`.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut b = Vec::with_capacity(MIN_PACKET_SIZE + 64);
    b.extend_from_slice(&[msg.op as u8, msg.htype, msg.hlen, msg.hops]);
    b.extend_from_slice(&msg.xid.to_be_bytes());
    b.extend_from_slice(&msg.secs.to_be_bytes());
    b.extend_from_slice(&msg.flags.to_be_bytes());
    for a in [msg.ciaddr, msg.yiaddr, msg.siaddr, msg.giaddr] {
        b.extend_from_slice(&a.octets());
    }
    b.extend_from_slice(&msg.chaddr_field);
    b.resize(HEADER_LEN, 0); // sname, file
    b.extend_from_slice(&MAGIC_COOKIE);
    for (code, value) in msg.options.iter() {
        if value.is_empty() {
            b.extend_from_slice(&[code, 0]);
        }
        for chunk in value.chunks(255) {
            // chunks(255) guarantees the length fits.
            b.extend_from_slice(&[code, chunk.len() as u8]);
            b.extend_from_slice(chunk);
        }
    }
    b.push(code::END);
    if b.len() < MIN_PACKET_SIZE {
        b.resize(MIN_PACKET_SIZE, 0);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from dnsmasq 2.90 (see `tests/fixtures/dhcp/README.md`).
    const OFFER: &[u8] = include_bytes!("../../../tests/fixtures/dhcp/dnsmasq-offer.bin");
    const ACK: &[u8] = include_bytes!("../../../tests/fixtures/dhcp/dnsmasq-ack.bin");

    #[test]
    fn decodes_a_real_offer_and_ack() {
        for (bytes, kind) in [(OFFER, MessageType::Offer), (ACK, MessageType::Ack)] {
            let m = decode(bytes).unwrap();
            assert_eq!(m.op, Opcode::BootReply);
            assert_eq!((m.htype, m.hlen, m.hops), (1, 6, 0));
            assert_eq!(m.xid, 0x58a1_c3d2);
            assert!(m.broadcast(), "dnsmasq echoes the broadcast flag");
            assert_eq!(m.ciaddr, Ipv4Addr::UNSPECIFIED);
            assert_eq!(m.yiaddr, Ipv4Addr::new(10, 201, 0, 58));
            assert_eq!(m.siaddr, Ipv4Addr::new(10, 201, 0, 1));
            assert_eq!(m.chaddr(), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
            let o = &m.options;
            assert_eq!(o.msg_type(), Some(kind));
            assert_eq!(o.ip(code::SERVER_ID), Some(Ipv4Addr::new(10, 201, 0, 1)));
            assert_eq!(o.u32(code::LEASE_TIME), Some(600));
            assert_eq!(o.u32(code::RENEWAL_TIME), Some(300));
            assert_eq!(o.u32(code::REBINDING_TIME), Some(525));
            assert_eq!(
                o.ip(code::SUBNET_MASK),
                Some(Ipv4Addr::new(255, 255, 255, 0))
            );
            assert_eq!(
                o.ip(code::BROADCAST_ADDR),
                Some(Ipv4Addr::new(10, 201, 0, 255))
            );
            assert_eq!(
                o.ips(code::ROUTER),
                Some(vec![Ipv4Addr::new(10, 201, 0, 1)])
            );
            assert_eq!(o.ips(code::DNS), Some(vec![Ipv4Addr::new(10, 201, 0, 1)]));
            assert_eq!(o.get(code::DOMAIN_NAME), Some(&b"cluster.example"[..]));
            let codes: Vec<u8> = o.iter().map(|(c, _)| c).collect();
            assert_eq!(codes, [53, 54, 51, 58, 59, 1, 28, 15, 6, 3]);
            // Our encoder writes the same bytes back (dnsmasq sends no padding after END).
            assert_eq!(encode(&m), bytes);
        }
    }

    #[test]
    fn encodes_the_rfc_layout_byte_for_byte() {
        let mut m = Message::new(
            Opcode::BootRequest,
            0x0102_0304,
            [0x52, 0x54, 0, 0xab, 0xcd, 0xef],
        );
        m.secs = 3;
        m.flags = Message::BROADCAST;
        m.options
            .insert(code::MESSAGE_TYPE, [MessageType::Discover as u8]);
        m.options
            .insert(code::MAX_MESSAGE_SIZE, 1472u16.to_be_bytes());
        let b = encode(&m);
        assert_eq!(b.len(), MIN_PACKET_SIZE);
        assert_eq!(
            b[..12],
            [1, 1, 6, 0, 1, 2, 3, 4, 0, 3, 0x80, 0],
            "op htype hlen hops xid secs flags"
        );
        assert!(b[12..28].iter().all(|&x| x == 0), "four zero addresses");
        assert_eq!(b[28..34], [0x52, 0x54, 0, 0xab, 0xcd, 0xef]);
        assert!(
            b[34..236].iter().all(|&x| x == 0),
            "chaddr pad, sname, file"
        );
        assert_eq!(b[236..240], MAGIC_COOKIE);
        assert_eq!(b[240..248], [53, 1, 1, 57, 2, 0x05, 0xc0, 255]);
        assert!(b[248..].iter().all(|&x| x == 0), "padding after END");
        assert_eq!(decode(&b).unwrap(), m);
    }

    #[test]
    fn long_options_are_split_and_joined_again() {
        let mut m = Message::new(Opcode::BootReply, 9, [2; 6]);
        let long: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        m.options.insert(code::MESSAGE, long.clone());
        m.options.insert(code::CLIENT_ID, Vec::new());
        let b = encode(&m);
        // 255 + 255 + 90, each with its own header.
        assert_eq!(b[240..242], [56, 255]);
        assert_eq!(b[240 + 257..240 + 259], [56, 255]);
        assert_eq!(b[240 + 514..240 + 516], [56, 90]);
        assert_eq!(b[240 + 606..240 + 609], [61, 0, 255]);
        let back = decode(&b).unwrap();
        assert_eq!(back.options.get(code::MESSAGE), Some(&long[..]));
        assert_eq!(back.options.get(code::CLIENT_ID), Some(&[][..]));
        assert_eq!(back, m);
    }

    #[test]
    fn overloaded_options_are_read_from_file_then_sname() {
        let mut b = encode(&Message::new(Opcode::BootReply, 1, [2; 6]));
        // options: overload = both, message type in the main area.
        b.truncate(240);
        b.extend_from_slice(&[52, 1, 3, 53, 1, 5, 255]);
        b[FILE.start..FILE.start + 7].copy_from_slice(&[3, 4, 10, 0, 0, 1, 255]);
        b[SNAME.start..SNAME.start + 9]
            .copy_from_slice(&[0, 0, 12, 4, b'n', b'o', b'd', b'e', 255]);
        let m = decode(&b).unwrap();
        assert_eq!(m.options.msg_type(), Some(MessageType::Ack));
        assert_eq!(
            m.options.ips(code::ROUTER),
            Some(vec![Ipv4Addr::new(10, 0, 0, 1)])
        );
        assert_eq!(m.options.get(code::HOSTNAME), Some(&b"node"[..]));

        // Without the overload option, the same fields are a boot file name and server name.
        let mut plain = b.clone();
        plain[242] = 0;
        let m = decode(&plain).unwrap();
        assert_eq!(m.options.get(code::ROUTER), None);
        assert_eq!(m.options.get(code::HOSTNAME), None);
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        let good = encode(&Message::new(Opcode::BootReply, 1, [2; 6]));
        assert_eq!(decode(&[]), Err(DecodeError::TooShort(0)));
        assert_eq!(decode(&good[..239]), Err(DecodeError::TooShort(239)));
        let mut bad = good.clone();
        bad[0] = 3;
        assert_eq!(decode(&bad), Err(DecodeError::Opcode(3)));
        let mut bootp = good.clone();
        bootp[239] = 0;
        assert_eq!(decode(&bootp), Err(DecodeError::NoMagicCookie));
        let mut cut = good[..240].to_vec();
        cut.extend_from_slice(&[3, 8, 10, 0, 0, 1]);
        assert_eq!(decode(&cut), Err(DecodeError::TruncatedOption { code: 3 }));
        cut.truncate(241);
        assert_eq!(decode(&cut), Err(DecodeError::TruncatedOption { code: 3 }));
        // No END is tolerated (the area simply ends), and so is PAD between options.
        let mut no_end = good[..240].to_vec();
        no_end.extend_from_slice(&[0, 0, 53, 1, 2]);
        assert_eq!(
            decode(&no_end).unwrap().options.msg_type(),
            Some(MessageType::Offer)
        );
    }

    #[test]
    fn typed_readers_refuse_wrong_lengths() {
        let mut o = Options::default();
        o.insert(code::MESSAGE_TYPE, [2, 2]);
        o.insert(code::SERVER_ID, [10, 0, 0]);
        o.insert(code::ROUTER, [10, 0, 0, 1, 10]);
        o.insert(code::DNS, []);
        o.insert(code::INTERFACE_MTU, [5]);
        o.insert(code::LEASE_TIME, [0, 0, 1]);
        assert_eq!(o.msg_type(), None);
        assert_eq!(o.ip(code::SERVER_ID), None);
        assert_eq!(o.ips(code::ROUTER), None);
        assert_eq!(o.ips(code::DNS), None);
        assert_eq!(o.u16(code::INTERFACE_MTU), None);
        assert_eq!(o.u32(code::LEASE_TIME), None);
        o.insert(code::MESSAGE_TYPE, [9]);
        assert_eq!(o.msg_type(), None, "unknown message type");
        o.insert(code::PAD, [1]);
        o.insert(code::END, [1]);
        assert_eq!(o.iter().count(), 6, "PAD and END are not options");
    }

    #[test]
    fn a_huge_hlen_is_kept_but_chaddr_stays_in_its_field() {
        let mut b = encode(&Message::new(Opcode::BootReply, 1, [2; 6]));
        b[2] = 200;
        let m = decode(&b).unwrap();
        assert_eq!(m.hlen, 200);
        assert_eq!(m.chaddr().len(), 16);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_round_trip() {
        // A deterministic sweep of mutations of a real packet (the fuzz target does more).
        let base = OFFER.to_vec();
        let mut s = 0x1234_5678_9abc_def0u64;
        for i in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mut p = base.clone();
            for k in 0..(1 + i % 6) {
                let at = (s.rotate_left(k * 9) as usize) % p.len();
                p[at] = (s >> (k * 8)) as u8;
            }
            p.truncate(240 + (s as usize) % (p.len() - 239));
            if let Ok(m) = decode(&p) {
                assert_eq!(decode(&encode(&m)), Ok(m));
            }
        }
    }
}
