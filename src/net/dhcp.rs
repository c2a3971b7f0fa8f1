//! DHCPv4 client (RFC 2131): a pure state machine plus a small I/O loop.
//!
//! [`DhcpClient`] takes one input at a time — a received packet or "the wait ran out" — and
//! answers with an [`Action`]: a message to send and how long to wait for a reply, keep waiting,
//! a [`Lease`], or a [`DhcpFailure`]. It never touches a socket or a clock (the caller passes the
//! elapsed time, randomness comes from a seed), so every path is unit-tested with packets built
//! by [`wire`], kubejoin's own codec. [`exchange`] drives it over a [`DhcpSocket`].
//!
//! Only what a booting node needs: INIT → SELECTING → REQUESTING → BOUND. No renewal (see the
//! module doc of `src/net`), no ARP conflict check (DECLINE), no INIT-REBOOT.
//!
//! Retransmission (RFC 2131 §4.1, shortened for boot): the first packet of a phase waits
//! `first_wait` (1 s), each resend doubles it up to `max_wait` (4 s), each wait randomized by
//! ±¼ of itself (at most ±1 s, the RFC's figure) so that machines booted together by one power
//! event do not retransmit in lockstep; `attempts` (6) packets per phase, so by default a phase
//! gives up after 1+2+4+4+4+4 ≈ 19 s.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::sys::net::DhcpSocket;

pub mod wire;

pub use wire::{code, decode, encode, DecodeError, Message, MessageType, Opcode, Options};

/// Retransmission schedule and bounds of one DHCP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpTiming {
    /// Wait after the first packet of a phase.
    pub first_wait: Duration,
    /// Longest wait between retransmissions (the doubling stops here).
    pub max_wait: Duration,
    /// Packets sent per phase (DISCOVER, then REQUEST) before giving up.
    pub attempts: u32,
    /// NAKs accepted, each restarting from DISCOVER, before giving up.
    pub max_naks: u32,
}

impl Default for DhcpTiming {
    fn default() -> Self {
        Self {
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(4),
            attempts: 6,
            max_naks: 3,
        }
    }
}

impl DhcpTiming {
    /// The un-jittered wait after the `attempt`-th packet (1-based) of a phase.
    pub fn base_wait(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.first_wait
            .saturating_mul(1 << doublings)
            .min(self.max_wait)
    }

    /// The jitter bound around `base`: a quarter of it, at most one second.
    pub fn jitter_bound(base: Duration) -> Duration {
        (base / 4).min(Duration::from_secs(1))
    }
}

/// What a completed exchange gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The first router the server named (option 3), if any.
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6), in the server's order.
    pub dns: Vec<Ipv4Addr>,
    /// Host name (option 12).
    pub hostname: Option<String>,
    /// Domain name (option 15), used as the resolv.conf search domain.
    pub domain: Option<String>,
    /// Interface MTU (option 26), when at least the IPv4 minimum of 68.
    pub mtu: Option<u16>,
    /// Lease time in seconds (option 51); `u32::MAX` means infinite.
    pub lease_secs: Option<u32>,
    /// The server that acknowledged the lease (option 54).
    pub server: Ipv4Addr,
    /// NTP servers (option 42, RFC 2132 §8.3), in the server's order: time sources for a
    /// machine whose clock is wrong (`crate::clock`).
    pub ntp: Vec<Ipv4Addr>,
}

impl Lease {
    /// Extracts the lease from an ACK (or, in tests, an OFFER) the client accepted.
    pub fn from_reply(msg: &Message, server: Ipv4Addr) -> Self {
        let opts = &msg.options;
        let prefix_len = opts
            .ip(code::SUBNET_MASK)
            .and_then(prefix_of_mask)
            // RFC 2131 makes the mask optional; without one, the classful default is what every
            // client falls back to.
            .unwrap_or_else(|| classful_prefix(msg.yiaddr));
        let router = opts
            .ips(code::ROUTER)
            .and_then(|r| r.into_iter().find(|a| !a.is_unspecified()));
        let usable = |code| {
            opts.ips(code)
                .unwrap_or_default()
                .into_iter()
                .filter(|a| !a.is_unspecified() && !a.is_broadcast())
                .collect::<Vec<_>>()
        };
        let dns = usable(code::DNS);
        let text = |code| {
            let s = std::str::from_utf8(opts.get(code)?).ok()?;
            let s = s.trim_end_matches('\0').trim();
            // Only printable ASCII: these end up in logs and in resolv.conf.
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_string())
        };
        Self {
            address: msg.yiaddr,
            prefix_len,
            router,
            dns,
            hostname: text(code::HOSTNAME),
            domain: text(code::DOMAIN_NAME),
            mtu: opts.u16(code::INTERFACE_MTU).filter(|m| *m >= 68),
            lease_secs: opts.u32(code::LEASE_TIME),
            server,
            ntp: usable(code::NTP_SERVERS),
        }
    }
}

/// The prefix length of a contiguous netmask (`255.255.255.0` → 24); `None` for `255.0.255.0`.
pub fn prefix_of_mask(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Why an exchange gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpFailure {
    /// Nobody offered an address.
    NoOffer { attempts: u32, waited: Duration },
    /// A server offered an address but never acknowledged our request for it.
    NoAck {
        server: Ipv4Addr,
        offered: Ipv4Addr,
        attempts: u32,
        waited: Duration,
    },
    /// The server refused our requests (DHCPNAK) too many times.
    Naks {
        server: Ipv4Addr,
        naks: u32,
        message: Option<String>,
    },
}

/// What happened since the last action.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A datagram arrived on port 68 (anything: it is checked here).
    Packet(&'a [u8]),
    /// The wait of the last [`Action::Send`] ran out.
    Timeout,
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Broadcast `message`, then wait up to `wait` for a reply.
    Send {
        message: Box<Message>,
        wait: Duration,
    },
    /// The input was not for us: keep waiting until the current wait runs out.
    Wait,
    /// Done: configure this lease.
    Bound(Lease),
    /// Done: give up.
    Failed(DhcpFailure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Init,
    Selecting,
    Requesting { server: Ipv4Addr, offered: Ipv4Addr },
    Done,
}

/// A small, seeded PRNG (SplitMix64) for xids and jitter; DHCP's xid only has to differ between
/// machines, it protects nothing.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The DHCPv4 client state machine for one link.
#[derive(Debug, Clone)]
pub struct DhcpClient {
    mac: [u8; 6],
    hostname: Option<String>,
    timing: DhcpTiming,
    rng: SplitMix64,
    xid: u32,
    state: State,
    /// Packets sent in the current phase.
    attempts: u32,
    /// The wait of the last packet sent.
    last_wait: Duration,
    /// Sum of the waits that ran out in the current phase.
    waited: Duration,
    naks: u32,
}

/// Options we ask servers for (option 55). Classless static routes (121) are deliberately not
/// requested: a server that sends them expects the client to ignore option 3, and we only
/// install a default route.
const REQUESTED: [u8; 11] = [
    code::SUBNET_MASK,
    code::ROUTER,
    code::DNS,
    code::HOSTNAME,
    code::DOMAIN_NAME,
    code::INTERFACE_MTU,
    code::BROADCAST_ADDR,
    code::NTP_SERVERS,
    code::LEASE_TIME,
    code::RENEWAL_TIME,
    code::REBINDING_TIME,
];

impl DhcpClient {
    /// A client for the link with `mac`. `seed` feeds the xid and jitter; pass real randomness
    /// (see [`random_seed`]) outside tests. `hostname`, when set, is sent as option 12.
    pub fn new(mac: [u8; 6], hostname: Option<String>, timing: DhcpTiming, seed: u64) -> Self {
        Self {
            mac,
            hostname,
            timing,
            rng: SplitMix64(seed),
            xid: 0,
            state: State::Init,
            attempts: 0,
            last_wait: Duration::ZERO,
            waited: Duration::ZERO,
            naks: 0,
        }
    }

    /// The transaction id of the current exchange.
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// Starts (or restarts) with a DISCOVER. `now` is the time since the exchange began.
    pub fn start(&mut self, now: Duration) -> Action {
        // A fresh xid per DISCOVER cycle, so late replies to a NAKed cycle are ignored.
        self.xid = (self.rng.next() >> 32) as u32;
        self.state = State::Selecting;
        self.begin_phase();
        self.send(MessageType::Discover, now)
    }

    /// Feeds one input; `now` is the time since the exchange began (for the `secs` field).
    pub fn handle(&mut self, input: Input<'_>, now: Duration) -> Action {
        match input {
            Input::Timeout => self.timeout(now),
            Input::Packet(bytes) => match decode(bytes) {
                Ok(msg) => self.packet(&msg, now),
                // Not DHCP, or mangled: someone else's traffic on port 68.
                Err(_) => Action::Wait,
            },
        }
    }

    fn begin_phase(&mut self) {
        self.attempts = 0;
        self.waited = Duration::ZERO;
    }

    fn timeout(&mut self, now: Duration) -> Action {
        self.waited += self.last_wait;
        let exhausted = self.attempts >= self.timing.attempts;
        match self.state.clone() {
            State::Selecting if exhausted => self.fail(DhcpFailure::NoOffer {
                attempts: self.attempts,
                waited: self.waited,
            }),
            State::Selecting => self.send(MessageType::Discover, now),
            State::Requesting { server, offered } if exhausted => self.fail(DhcpFailure::NoAck {
                server,
                offered,
                attempts: self.attempts,
                waited: self.waited,
            }),
            State::Requesting { .. } => self.send(MessageType::Request, now),
            State::Init => self.start(now),
            State::Done => Action::Wait,
        }
    }

    fn packet(&mut self, msg: &Message, now: Duration) -> Action {
        let ours = msg.op == Opcode::BootReply
            && msg.xid == self.xid
            && msg.hlen == 6
            && msg.chaddr() == self.mac;
        if !ours {
            return Action::Wait;
        }
        let server = msg.options.ip(code::SERVER_ID);
        match (self.state.clone(), msg.options.msg_type()) {
            (State::Selecting, Some(MessageType::Offer)) => {
                let offered = msg.yiaddr;
                // An offer without a server identifier cannot be requested (RFC 2131 §4.3.1
                // makes it mandatory), and one without a usable address is not an offer.
                match server {
                    Some(server) if usable_address(offered) => {
                        self.state = State::Requesting { server, offered };
                        self.begin_phase();
                        self.send(MessageType::Request, now)
                    }
                    _ => Action::Wait,
                }
            }
            (State::Requesting { server: chosen, .. }, Some(MessageType::Ack)) => {
                // Another server's ACK is for someone else's choice, not ours.
                if server.is_some_and(|s| s != chosen) || !usable_address(msg.yiaddr) {
                    return Action::Wait;
                }
                self.state = State::Done;
                Action::Bound(Lease::from_reply(msg, chosen))
            }
            (State::Requesting { server: chosen, .. }, Some(MessageType::Nak)) => {
                if server.is_some_and(|s| s != chosen) {
                    return Action::Wait;
                }
                self.naks += 1;
                if self.naks > self.timing.max_naks {
                    let message = msg
                        .options
                        .get(code::MESSAGE)
                        .map(|m| String::from_utf8_lossy(m).into_owned());
                    return self.fail(DhcpFailure::Naks {
                        server: chosen,
                        naks: self.naks,
                        message,
                    });
                }
                self.start(now)
            }
            _ => Action::Wait,
        }
    }

    fn fail(&mut self, failure: DhcpFailure) -> Action {
        self.state = State::Done;
        Action::Failed(failure)
    }

    fn send(&mut self, kind: MessageType, now: Duration) -> Action {
        self.attempts += 1;
        let base = self.timing.base_wait(self.attempts);
        let bound = DhcpTiming::jitter_bound(base).as_millis() as u64;
        let jitter = self.rng.next() % (2 * bound + 1);
        // base - bound + [0, 2*bound]: never negative, since bound <= base / 4.
        let wait =
            (base + Duration::from_millis(jitter)).saturating_sub(Duration::from_millis(bound));
        self.last_wait = wait;

        let mut msg = Message::new(Opcode::BootRequest, self.xid, self.mac);
        msg.secs = u16::try_from(now.as_secs()).unwrap_or(u16::MAX);
        // We have no address yet, so the kernel would drop a unicast reply: ask for broadcast.
        msg.flags = Message::BROADCAST;
        let opts = &mut msg.options;
        opts.insert(code::MESSAGE_TYPE, [kind as u8]);
        // Client identifier: hardware type 1 (Ethernet) + MAC, the RFC 2132 §9.14 convention.
        let mut client_id = vec![1];
        client_id.extend_from_slice(&self.mac);
        opts.insert(code::CLIENT_ID, client_id);
        opts.insert(code::PARAMETER_REQUEST_LIST, REQUESTED);
        // 1500-byte Ethernet frame minus IP and UDP headers; servers otherwise cap at 576.
        opts.insert(code::MAX_MESSAGE_SIZE, 1472u16.to_be_bytes());
        if let Some(h) = &self.hostname {
            opts.insert(code::HOSTNAME, h.as_bytes());
        }
        if let State::Requesting { server, offered } = self.state {
            opts.insert_ip(code::REQUESTED_IP, offered);
            opts.insert_ip(code::SERVER_ID, server);
        }
        Action::Send {
            message: Box::new(msg),
            wait,
        }
    }
}

fn usable_address(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

/// A seed from the OS's randomness (std's hash keys come from getrandom), mixed with the MAC
/// so that two NICs of one machine get different xids.
pub fn random_seed(mac: [u8; 6]) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(&mac);
    h.finish()
}

/// Why [`exchange`] stopped without a lease.
#[derive(Debug)]
pub enum ExchangeError {
    /// The protocol gave up.
    Failed(DhcpFailure),
    /// Sending or receiving failed.
    Io {
        action: &'static str,
        source: std::io::Error,
    },
}

/// Runs `client` over `socket` until it is bound or gives up. Every wait is bounded by the
/// client's schedule.
pub async fn exchange(
    socket: &mut dyn DhcpSocket,
    mut client: DhcpClient,
) -> Result<Lease, ExchangeError> {
    let started = Instant::now();
    let mut deadline = started;
    let mut action = client.start(Duration::ZERO);
    let mut buf = vec![0u8; 4096];
    // The timeline's steps: each message sent, until what followed it.
    let mut sent: Option<(Instant, String)> = None;
    let step = |sent: &mut Option<(Instant, String)>, then: String| {
        if let Some((at, what)) = sent.take() {
            crate::trace::record("dhcp", || format!("{what} -> {then}"), at);
        }
    };
    loop {
        match &action {
            Action::Send { message, .. } => {
                let what = match message.options.msg_type() {
                    Some(t) => format!("{t:?}").to_uppercase(),
                    None => "message".into(),
                };
                step(&mut sent, format!("sent {what}"));
                sent = Some((Instant::now(), what));
            }
            Action::Wait => {}
            Action::Bound(lease) => step(&mut sent, format!("bound {}", lease.address)),
            Action::Failed(_) => step(&mut sent, "failed".into()),
        }
        match action {
            Action::Send { message, wait } => {
                let bytes = encode(&message);
                socket
                    .send(&bytes)
                    .await
                    .map_err(|source| ExchangeError::Io {
                        action: "sending a DHCP packet",
                        source,
                    })?;
                deadline = Instant::now() + wait;
            }
            Action::Wait => {}
            Action::Bound(lease) => return Ok(lease),
            Action::Failed(failure) => return Err(ExchangeError::Failed(failure)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // Checked before receiving, so a stream of foreign packets cannot postpone the timeout.
        let got = if left.is_zero() {
            None
        } else {
            socket
                .recv(&mut buf, left)
                .await
                .map_err(|source| ExchangeError::Io {
                    action: "receiving DHCP replies",
                    source,
                })?
        };
        action = match got {
            Some(n) => client.handle(Input::Packet(&buf[..n.min(buf.len())]), started.elapsed()),
            None => client.handle(Input::Timeout, started.elapsed()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_length_option_152_is_an_empty_option_not_a_panic() {
        // The fuzzer's input that panicked dhcproto 0.15: an OFFER (after the fuzz target's
        // 2-byte length prefix) whose option 152 has length 0.
        let seed = include_bytes!("../../fuzz/corpus/dhcp/seed-known-dhcproto-option152-len0");
        let mut pkt = seed[2..].to_vec();
        let m = decode(&pkt).unwrap();
        assert_eq!(m.options.get(152), Some(&[][..]));
        assert_eq!(m.options.msg_type(), Some(MessageType::Offer));
        // Patched to our exchange the way the fuzz target does it, the client takes it as an
        // offer without a usable address (yiaddr 0.0.0.0), i.e. it keeps waiting.
        let mut c = client();
        let xid = sent(&c.start(Duration::ZERO)).0.xid;
        pkt[4..8].copy_from_slice(&xid.to_be_bytes());
        pkt[28..34].copy_from_slice(&MAC);
        assert_eq!(c.handle(Input::Packet(&pkt), Duration::ZERO), Action::Wait);
        // With an address in it, the same packet is a good offer.
        pkt[16..20].copy_from_slice(&OFFERED.octets());
        let request = c.handle(Input::Packet(&pkt), Duration::ZERO);
        assert_eq!(
            sent(&request).0.options.msg_type(),
            Some(MessageType::Request)
        );
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 42);

    fn client() -> DhcpClient {
        DhcpClient::new(MAC, None, DhcpTiming::default(), 7)
    }

    fn sent(action: &Action) -> (&Message, Duration) {
        match action {
            Action::Send { message, wait } => (message, *wait),
            other => panic!("expected a packet to send, got {other:?}"),
        }
    }

    /// A server reply to `xid`, of `kind`, with the usual options.
    fn reply(xid: u32, kind: MessageType) -> Message {
        let mut m = Message::new(Opcode::BootReply, xid, MAC);
        m.yiaddr = OFFERED;
        m.siaddr = SERVER;
        let o = &mut m.options;
        o.insert(code::MESSAGE_TYPE, [kind as u8]);
        o.insert_ip(code::SERVER_ID, SERVER);
        o.insert_ip(code::SUBNET_MASK, Ipv4Addr::new(255, 255, 255, 0));
        o.insert_ips(code::ROUTER, &[SERVER]);
        o.insert_ips(
            code::DNS,
            &[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
        );
        o.insert(code::HOSTNAME, "node1");
        o.insert(code::DOMAIN_NAME, "cluster.example");
        o.insert(code::INTERFACE_MTU, 1450u16.to_be_bytes());
        o.insert(code::LEASE_TIME, 3600u32.to_be_bytes());
        o.insert_ips(
            code::NTP_SERVERS,
            &[Ipv4Addr::new(10, 0, 0, 4), Ipv4Addr::new(10, 0, 0, 5)],
        );
        m
    }

    fn bytes(m: &Message) -> Vec<u8> {
        encode(m)
    }

    fn opt(m: &Message, code: u8) -> Option<&[u8]> {
        m.options.get(code)
    }

    #[test]
    fn happy_path_discover_offer_request_ack() {
        let mut c = DhcpClient::new(MAC, Some("node1".into()), DhcpTiming::default(), 1);
        let discover = c.start(Duration::ZERO);
        let (d, _) = sent(&discover);
        assert_eq!(d.options.msg_type(), Some(MessageType::Discover));
        assert_eq!(d.op, Opcode::BootRequest);
        assert!(d.broadcast(), "broadcast flag: we have no address yet");
        assert_eq!(d.chaddr(), MAC);
        assert_eq!(d.ciaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            opt(d, code::CLIENT_ID),
            Some(&[1, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef][..])
        );
        assert_eq!(opt(d, code::HOSTNAME), Some(&b"node1"[..]));
        assert_eq!(opt(d, code::MAX_MESSAGE_SIZE), Some(&[0x05, 0xc0][..]));
        let p = opt(d, code::PARAMETER_REQUEST_LIST).unwrap();
        for code in [
            code::SUBNET_MASK,
            code::ROUTER,
            code::DNS,
            code::NTP_SERVERS,
        ] {
            assert!(p.contains(&code), "{code} requested");
        }
        assert!(!p.contains(&121), "classless routes are not asked for");
        let xid = d.xid;
        assert_eq!(xid, c.xid());

        let request = c.handle(
            Input::Packet(&bytes(&reply(xid, MessageType::Offer))),
            Duration::from_millis(300),
        );
        let (r, _) = sent(&request);
        assert_eq!(r.options.msg_type(), Some(MessageType::Request));
        assert_eq!(r.xid, xid, "REQUEST keeps the OFFER's xid");
        assert!(r.broadcast());
        assert_eq!(r.options.ip(code::REQUESTED_IP), Some(OFFERED));
        assert_eq!(r.options.ip(code::SERVER_ID), Some(SERVER));
        assert_eq!(
            r.ciaddr,
            Ipv4Addr::UNSPECIFIED,
            "ciaddr stays 0 in SELECTING"
        );

        let bound = c.handle(
            Input::Packet(&bytes(&reply(xid, MessageType::Ack))),
            Duration::from_millis(500),
        );
        assert_eq!(
            bound,
            Action::Bound(Lease {
                address: OFFERED,
                prefix_len: 24,
                router: Some(SERVER),
                dns: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
                hostname: Some("node1".into()),
                domain: Some("cluster.example".into()),
                mtu: Some(1450),
                lease_secs: Some(3600),
                server: SERVER,
                ntp: vec![Ipv4Addr::new(10, 0, 0, 4), Ipv4Addr::new(10, 0, 0, 5)],
            })
        );
        // Done: anything further is ignored.
        assert_eq!(
            c.handle(Input::Timeout, Duration::from_secs(1)),
            Action::Wait
        );
    }

    #[test]
    fn retransmission_doubles_with_bounded_jitter_then_gives_up() {
        let timing = DhcpTiming::default();
        let mut c = client();
        let mut waits = vec![sent(&c.start(Duration::ZERO)).1];
        let xid = c.xid();
        loop {
            match c.handle(Input::Timeout, Duration::ZERO) {
                Action::Send { message, wait } => {
                    assert_eq!(message.xid, xid, "retransmissions keep the xid");
                    assert_eq!(message.options.msg_type(), Some(MessageType::Discover));
                    waits.push(wait);
                }
                Action::Failed(f) => {
                    let total: Duration = waits.iter().sum();
                    assert_eq!(
                        f,
                        DhcpFailure::NoOffer {
                            attempts: 6,
                            waited: total
                        }
                    );
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(waits.len(), 6);
        for (i, w) in waits.iter().enumerate() {
            let base = timing.base_wait(i as u32 + 1);
            let j = DhcpTiming::jitter_bound(base);
            assert!(
                *w >= base - j && *w <= base + j,
                "wait {i}: {w:?} around {base:?}"
            );
        }
        let bases: Vec<u64> = (1..=6).map(|n| timing.base_wait(n).as_secs()).collect();
        assert_eq!(bases, [1, 2, 4, 4, 4, 4]);
        // Jitter differs between attempts with the same base (not lockstep).
        assert!(waits[3..].windows(2).any(|w| w[0] != w[1]), "{waits:?}");
    }

    #[test]
    fn request_is_retransmitted_then_fails_without_ack() {
        let mut c = client();
        let xid = sent(&c.start(Duration::ZERO)).0.xid;
        sent(&c.handle(
            Input::Packet(&bytes(&reply(xid, MessageType::Offer))),
            Duration::ZERO,
        ));
        for _ in 0..5 {
            let a = c.handle(Input::Timeout, Duration::ZERO);
            assert_eq!(sent(&a).0.options.msg_type(), Some(MessageType::Request));
        }
        match c.handle(Input::Timeout, Duration::ZERO) {
            Action::Failed(DhcpFailure::NoAck {
                server,
                offered,
                attempts,
                ..
            }) => {
                assert_eq!((server, offered, attempts), (SERVER, OFFERED, 6));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn nak_restarts_with_a_new_xid_and_too_many_naks_fail() {
        let mut c = client();
        let mut xid = sent(&c.start(Duration::ZERO)).0.xid;
        for round in 1..=4 {
            sent(&c.handle(
                Input::Packet(&bytes(&reply(xid, MessageType::Offer))),
                Duration::ZERO,
            ));
            let mut nak = reply(xid, MessageType::Nak);
            nak.options.insert(code::MESSAGE, "address in use");
            match c.handle(Input::Packet(&bytes(&nak)), Duration::ZERO) {
                Action::Send { message, .. } if round <= 3 => {
                    assert_eq!(message.options.msg_type(), Some(MessageType::Discover));
                    assert_ne!(message.xid, xid, "a restart uses a new xid");
                    xid = message.xid;
                }
                Action::Failed(f) => {
                    assert_eq!(round, 4);
                    assert_eq!(
                        f,
                        DhcpFailure::Naks {
                            server: SERVER,
                            naks: 4,
                            message: Some("address in use".into())
                        }
                    );
                }
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn foreign_replies_are_ignored() {
        let mut c = client();
        let xid = sent(&c.start(Duration::ZERO)).0.xid;
        // Wrong xid.
        let wrong = reply(xid.wrapping_add(1), MessageType::Offer);
        assert_eq!(
            c.handle(Input::Packet(&bytes(&wrong)), Duration::ZERO),
            Action::Wait
        );
        // Right xid, another machine's MAC.
        let mut other_mac = reply(xid, MessageType::Offer);
        other_mac.chaddr_field[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        assert_eq!(
            c.handle(Input::Packet(&bytes(&other_mac)), Duration::ZERO),
            Action::Wait
        );
        // Our own broadcast DISCOVER echoed back (BootRequest).
        let mut echo = reply(xid, MessageType::Offer);
        echo.op = Opcode::BootRequest;
        assert_eq!(
            c.handle(Input::Packet(&bytes(&echo)), Duration::ZERO),
            Action::Wait
        );
        // An ACK while selecting, an offer without server id, garbage.
        assert_eq!(
            c.handle(
                Input::Packet(&bytes(&reply(xid, MessageType::Ack))),
                Duration::ZERO
            ),
            Action::Wait
        );
        let mut no_sid = reply(xid, MessageType::Offer);
        no_sid.options.remove(code::SERVER_ID);
        assert_eq!(
            c.handle(Input::Packet(&bytes(&no_sid)), Duration::ZERO),
            Action::Wait
        );
        assert_eq!(
            c.handle(Input::Packet(b"\x02garbage"), Duration::ZERO),
            Action::Wait
        );
        // A bogus hlen: not an Ethernet reply, so not ours.
        let mut raw = bytes(&reply(xid, MessageType::Offer));
        raw[2] = 200;
        assert_eq!(c.handle(Input::Packet(&raw), Duration::ZERO), Action::Wait);
        // Still selecting: the genuine offer is taken.
        let a = c.handle(
            Input::Packet(&bytes(&reply(xid, MessageType::Offer))),
            Duration::ZERO,
        );
        assert_eq!(sent(&a).0.options.msg_type(), Some(MessageType::Request));
        // An ACK from a server we did not choose is ignored.
        let mut other_server = reply(xid, MessageType::Ack);
        other_server
            .options
            .insert_ip(code::SERVER_ID, Ipv4Addr::new(10, 0, 0, 99));
        assert_eq!(
            c.handle(Input::Packet(&bytes(&other_server)), Duration::ZERO),
            Action::Wait
        );
    }

    #[test]
    fn offer_without_router_or_mask_gives_a_lease_without_gateway() {
        let mut m = reply(1, MessageType::Ack);
        for code in [
            code::ROUTER,
            code::SUBNET_MASK,
            code::DNS,
            code::HOSTNAME,
            code::DOMAIN_NAME,
            code::INTERFACE_MTU,
            code::LEASE_TIME,
            code::NTP_SERVERS,
        ] {
            m.options.remove(code);
        }
        let lease = Lease::from_reply(&m, SERVER);
        assert_eq!(lease.router, None);
        assert_eq!(
            lease.prefix_len, 8,
            "classful default for 10.x without a mask"
        );
        assert!(lease.dns.is_empty());
        assert!(lease.ntp.is_empty());
        assert_eq!(
            (lease.hostname, lease.domain, lease.mtu, lease.lease_secs),
            (None, None, None, None)
        );

        let mut c = client();
        let xid = sent(&c.start(Duration::ZERO)).0.xid;
        let mut offer = reply(xid, MessageType::Offer);
        offer.options.remove(code::ROUTER);
        sent(&c.handle(Input::Packet(&bytes(&offer)), Duration::ZERO));
        let mut ack = reply(xid, MessageType::Ack);
        ack.options.remove(code::ROUTER);
        match c.handle(Input::Packet(&bytes(&ack)), Duration::ZERO) {
            Action::Bound(l) => assert_eq!(l.router, None),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lease_option_extraction_edge_cases() {
        let mut m = reply(1, MessageType::Ack);
        let o = &mut m.options;
        o.insert_ips(
            code::ROUTER,
            &[Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(10, 0, 0, 254)],
        );
        o.insert_ips(
            code::DNS,
            &[Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(1, 1, 1, 1)],
        );
        o.insert(code::INTERFACE_MTU, 40u16.to_be_bytes());
        o.insert(code::HOSTNAME, "bad\nname");
        o.insert(code::DOMAIN_NAME, "example.org\0");
        o.insert_ip(code::SUBNET_MASK, Ipv4Addr::new(255, 255, 240, 0));
        o.insert(code::LEASE_TIME, u32::MAX.to_be_bytes());
        let l = Lease::from_reply(&m, SERVER);
        assert_eq!(l.router, Some(Ipv4Addr::new(10, 0, 0, 254)));
        assert_eq!(l.dns, [Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(l.mtu, None, "below the IPv4 minimum of 68");
        assert_eq!(l.hostname, None, "control characters refused");
        assert_eq!(l.domain.as_deref(), Some("example.org"));
        assert_eq!(l.prefix_len, 20);
        assert_eq!(l.lease_secs, Some(u32::MAX));
    }

    #[test]
    fn ntp_servers_come_from_option_42() {
        // RFC 2132 §8.3: a list of addresses, in order of preference.
        let mut m = reply(1, MessageType::Ack);
        m.options.insert(
            code::NTP_SERVERS,
            [192, 0, 2, 123, 0, 0, 0, 0, 198, 51, 100, 7],
        );
        // Wire bytes: code 42, length 12, then the addresses as sent.
        let wire = bytes(&m);
        let at = wire
            .windows(2)
            .position(|w| w == [code::NTP_SERVERS, 12])
            .unwrap();
        assert_eq!(wire[at + 2..at + 6], [192, 0, 2, 123]);
        // From the bytes, through the decoder: the unspecified address is dropped.
        let l = Lease::from_reply(&decode(&wire).unwrap(), SERVER);
        assert_eq!(
            l.ntp,
            [
                Ipv4Addr::new(192, 0, 2, 123),
                Ipv4Addr::new(198, 51, 100, 7)
            ]
        );
        // A length that is not a multiple of four is ignored, not half-read.
        m.options.insert(code::NTP_SERVERS, [192, 0, 2, 123, 1]);
        assert!(Lease::from_reply(&m, SERVER).ntp.is_empty());
        m.options.insert(code::NTP_SERVERS, []);
        assert!(Lease::from_reply(&m, SERVER).ntp.is_empty());
        m.options
            .insert_ips(code::NTP_SERVERS, &[Ipv4Addr::BROADCAST]);
        assert!(Lease::from_reply(&m, SERVER).ntp.is_empty());
    }

    #[test]
    fn masks_to_prefixes() {
        assert_eq!(prefix_of_mask(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_of_mask(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_of_mask(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(prefix_of_mask(Ipv4Addr::new(255, 254, 0, 0)), Some(15));
        assert_eq!(prefix_of_mask(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn encoded_packets_are_padded_to_the_bootp_minimum() {
        let mut c = client();
        let b = bytes(sent(&c.start(Duration::ZERO)).0);
        assert!(b.len() >= 300);
        let back = decode(&b).unwrap();
        assert_eq!(back.options.msg_type(), Some(MessageType::Discover));
    }

    #[test]
    fn random_bytes_never_panic_the_client() {
        let mut rng = SplitMix64(42);
        let mut c = client();
        let xid = sent(&c.start(Duration::ZERO)).0.xid;
        let template = bytes(&reply(xid, MessageType::Offer));
        for i in 0..5000 {
            let mut p = template.clone();
            // Flip a few bytes and cut at a random length.
            for _ in 0..(1 + i % 8) {
                let at = (rng.next() as usize) % p.len();
                p[at] = rng.next() as u8;
            }
            p.truncate((rng.next() as usize) % (p.len() + 1));
            let _ = c.clone().handle(Input::Packet(&p), Duration::ZERO);
        }
    }
}
