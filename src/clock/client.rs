//! The SNTP client: several servers asked at once over UDP, bounded in time and attempts, and one
//! consistent answer taken from them ([`query`]), or a refusal that says what each server did.
//!
//! Per server: the name is resolved through the system resolver (`getaddrinfo`, as the API and
//! metadata clients do; IP literals are not looked up), then up to [`Policy::attempts`] requests,
//! each from a fresh socket (a new source port) connected to the server (the kernel drops
//! datagrams from anyone else), each with a fresh 64-bit random nonce, each waiting up to
//! [`Policy::attempt_timeout`]; attempts rotate through the name's addresses. Everything ends by
//! [`Policy::overall`] after the start, whatever the servers do. Within an attempt:
//! - a datagram that is not an answer to this request (too short, not a server reply, another
//!   nonce) is discarded and the wait goes on: anyone can send one, so it proves nothing;
//! - an answer refused on its content (unsynchronised, stratum 16, zero timestamps, root distance)
//!   ends the attempt; the next one comes when the attempt's time is up (a server that is still
//!   synchronising may be ready then);
//! - an answer whose time is earlier than the clock floor (the build time) is refused like one
//!   with bad content: it is certainly wrong;
//! - a kiss-o'-death ends the questions to that server for this run (RFC 4330 §8: DENY and RSTR
//!   say never again, RATE says not so often, and this client asks only a few times anyway).
//!
//! The answer ([`vote`]): the offsets of the servers that answered, sorted; the largest group
//! that fits within [`Policy::tolerance`] (1 s) of each other wins if it is a strict majority of
//! the answers and has at least two members, and its median is the offset. A server outside it
//! is outvoted. Two answers that disagree, or no majority, refuse every answer ("inconsistent").
//! One answer is taken only when one server was configured: with more, a single answer cannot be
//! checked against anything, so a lone liar would win. The tolerance is the step threshold
//! (`step::STEP_THRESHOLD`): honest servers agree to tens of milliseconds, a lying or broken one
//! is off by minutes to years, and a disagreement below a second would not change the step.

use super::sntp::{self, KissCode, NtpTimestamp, ReplyError, Sample, NTP_PORT};
use crate::error::{Class, Classify};
use crate::sys::clock::Clock;
use crate::time::{Offset, WallTime};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

/// An SNTP server as configured: a host name or IP address, and a port (123 unless given).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server {
    pub host: String,
    pub port: u16,
}

/// A server string that is not `host`, `host:port`, `IPv4[:port]`, `IPv6` or `[IPv6]:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NTP server {given:?}: {why}")]
pub struct ServerSpecError {
    pub given: String,
    pub why: &'static str,
}

impl Classify for ServerSpecError {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(
            "give a host name or an IP address, optionally with a port: kubejoin.ntp=time.example.org, \
             kubejoin.ntp=10.0.0.1:123, kubejoin.ntp=[fd00::1]:123"
                .into(),
        )
    }
}

impl Server {
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_string(),
            port,
        }
    }

    /// Parses `host`, `host:port`, `192.0.2.1[:port]`, `2001:db8::1` or `[2001:db8::1]:port`.
    pub fn parse(s: &str) -> Result<Self, ServerSpecError> {
        let bad = |why| ServerSpecError {
            given: s.to_string(),
            why,
        };
        let port = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad("the port is not a number from 1 to 65535")),
            Ok(n) => Ok(n),
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let Some((addr, after)) = rest.split_once(']') else {
                return Err(bad("an opening [ without a closing ]"));
            };
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("the address in brackets is not an IPv6 address"));
            }
            let port = match after {
                "" => NTP_PORT,
                p => match p.strip_prefix(':') {
                    Some(p) => port(p)?,
                    None => return Err(bad("only :PORT may follow ]")),
                },
            };
            (addr, port)
        } else if s.parse::<std::net::Ipv6Addr>().is_ok() {
            (s, NTP_PORT)
        } else if let Some((h, p)) = s.split_once(':') {
            (h, port(p)?)
        } else {
            (s, NTP_PORT)
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.parse::<IpAddr>().is_err() {
            let name_ok = host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !name_ok {
                return Err(bad("not a host name or IP address"));
            }
        }
        Ok(Self::new(host, port))
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How long and how often to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long one request waits for its answer.
    pub attempt_timeout: Duration,
    /// Requests per server (the first one included).
    pub attempts: u32,
    /// Everything, resolution included, ends this long after the start.
    pub overall: Duration,
    /// How far apart two answers may be and still agree.
    pub tolerance: Duration,
}

impl Default for Policy {
    /// 3 attempts of 1 s each, 5 s in all, 1 s tolerance: a lost datagram costs one second, a
    /// dead server three, and a machine with no time source at all waits 5 s before going on
    /// with the best time it knows.
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(1),
            attempts: 3,
            overall: Duration::from_secs(5),
            tolerance: super::step::STEP_THRESHOLD,
        }
    }
}

/// Why a server gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFailure {
    /// The name did not resolve (or to no address).
    Resolve(ResolveError),
    /// No acceptable answer in time; `last` is the last thing that went wrong, if anything did
    /// besides silence (a discarded packet, a refused answer, an ICMP port unreachable).
    NoAnswer {
        attempts: u32,
        waited: Duration,
        last: Option<String>,
    },
    /// A kiss-o'-death: not asked again in this run.
    Kiss(KissCode),
    /// The local socket could not be set up.
    Socket(SocketError),
}

/// Why a server's name gave no address to ask.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The lookup did not end before the query's deadline.
    #[error("the name did not resolve in time")]
    TimedOut,
    /// The resolver's own error, as text (`io::Error` is neither `Clone` nor `Eq`).
    #[error("{0}")]
    Lookup(String),
    /// The lookup succeeded with an empty list.
    #[error("it resolves to no address")]
    NoAddress,
}

/// Why the local UDP socket for a server could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    #[error("binding {local}: {detail}")]
    Bind { local: SocketAddr, detail: String },
    #[error("connecting to {addr}: {detail}")]
    Connect { addr: SocketAddr, detail: String },
}

impl fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerFailure::Resolve(e) => write!(f, "cannot resolve it: {e}"),
            ServerFailure::NoAnswer {
                attempts,
                waited,
                last,
            } => {
                write!(
                    f,
                    "no answer to {attempts} request(s) in {}",
                    crate::time::duration::format(*waited)
                )?;
                if let Some(l) = last {
                    write!(f, " (last: {l})")?;
                }
                Ok(())
            }
            ServerFailure::Kiss(k) => write!(f, "{}", ReplyError::KissOfDeath(*k)),
            ServerFailure::Socket(e) => write!(f, "socket: {e}"),
        }
    }
}

/// What the vote made of a server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Part of the agreeing majority.
    Agreed,
    /// Farther than the tolerance from the majority: ignored.
    Outvoted,
    /// No majority formed: refused with every other answer.
    Refused,
}

/// One server's part in a query.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerReport {
    pub server: Server,
    /// The address that answered, or the last one asked.
    pub address: Option<SocketAddr>,
    pub result: Result<Sample, ServerFailure>,
    /// For an answer: what the vote made of it.
    pub verdict: Option<Verdict>,
}

impl fmt::Display for ServerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.server)?;
        if let Some(a) = self
            .address
            .filter(|a| a.to_string() != self.server.to_string())
        {
            write!(f, " ({a})")?;
        }
        match &self.result {
            Ok(s) => {
                write!(
                    f,
                    ": offset {}, delay {}, stratum {}",
                    s.offset, s.delay, s.stratum
                )?;
                match self.verdict {
                    Some(Verdict::Outvoted) => f.write_str(", outvoted"),
                    Some(Verdict::Refused) => f.write_str(", refused"),
                    Some(Verdict::Agreed) | None => Ok(()),
                }
            }
            Err(e) => write!(f, ": {e}"),
        }
    }
}

/// A consistent answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// What to add to the local clock.
    pub offset: Offset,
    /// How many answers agreed.
    pub agreeing: usize,
    /// Every configured server, in the order given.
    pub servers: Vec<ServerReport>,
}

/// No consistent answer. Every variant but `NoServers` carries what each server did.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SntpError {
    #[error("no NTP server is configured")]
    NoServers,
    #[error("no NTP server gave an acceptable answer: {}", list(.0))]
    NoAnswer(Vec<ServerReport>),
    #[error("the NTP servers disagree by more than {}s, so none is believed: {}", .tolerance.as_secs_f64(), list(.servers))]
    Inconsistent {
        tolerance: Duration,
        servers: Vec<ServerReport>,
    },
    #[error("only one of {} NTP servers answered, and a single answer cannot be checked against the others: {}", .0.len(), list(.0))]
    Unconfirmed(Vec<ServerReport>),
}

fn list(r: &[ServerReport]) -> String {
    r.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl SntpError {
    /// What each server did (empty for `NoServers`).
    pub fn servers(&self) -> &[ServerReport] {
        match self {
            SntpError::NoServers => &[],
            SntpError::NoAnswer(s)
            | SntpError::Unconfirmed(s)
            | SntpError::Inconsistent { servers: s, .. } => s,
        }
    }
}

impl Classify for SntpError {
    fn class(&self) -> Class {
        match self {
            SntpError::NoAnswer(_) => Class::Timeout,
            SntpError::NoServers => Class::Usage,
            SntpError::Inconsistent { .. } | SntpError::Unconfirmed(_) => Class::Trust,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            SntpError::NoServers | SntpError::NoAnswer(_) => {
                "name reachable NTP servers with kubejoin.ntp=HOST[:PORT] (repeatable), or check that UDP \
                 port 123 is open to them"
                    .into()
            }
            SntpError::Inconsistent { .. } => {
                "check the NTP servers named by kubejoin.ntp=, DHCP option 42 and the platform: at least one \
                 of them serves a wrong time"
                    .into()
            }
            SntpError::Unconfirmed(_) => {
                "name a single NTP server with kubejoin.ntp= to trust it alone, or make more of them reachable"
                    .into()
            }
        })
    }
}

/// The outcome of the vote over the answers' offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// `members` (indices into the offsets) agree; `offset` is their median.
    Agreed {
        members: Vec<usize>,
        offset: Offset,
    },
    NoAnswers,
    /// A single answer while several servers were configured.
    Unconfirmed,
    /// No group within the tolerance holds a strict majority of two or more.
    Inconsistent,
}

/// The consistency rule (see the module docs), on the offsets of the answers; `configured` is
/// how many servers were asked.
pub fn vote(offsets: &[Offset], configured: usize, tolerance: Duration) -> Vote {
    match offsets {
        [] => return Vote::NoAnswers,
        [only] if configured <= 1 => {
            return Vote::Agreed {
                members: vec![0],
                offset: *only,
            }
        }
        [_] => return Vote::Unconfirmed,
        _ => {}
    }
    let tol = tolerance.as_nanos() as i128;
    let mut order: Vec<usize> = (0..offsets.len()).collect();
    order.sort_by_key(|&i| (offsets[i], i));
    let at = |k: usize| offsets[order[k]].nanos();
    // The largest window of sorted offsets no wider than the tolerance; ties to the narrowest.
    let mut best: Option<(usize, usize)> = None;
    let mut end = 0;
    for start in 0..order.len() {
        end = end.max(start);
        while end + 1 < order.len() && at(end + 1) - at(start) <= tol {
            end += 1;
        }
        let better = match best {
            None => true,
            Some((s, e)) => {
                let (len, best_len) = (end - start, e - s);
                len > best_len || (len == best_len && at(end) - at(start) < at(e) - at(s))
            }
        };
        if better {
            best = Some((start, end));
        }
    }
    let Some((s, e)) = best else {
        return Vote::NoAnswers;
    };
    let size = e - s + 1;
    if size < 2 || size * 2 <= offsets.len() {
        return Vote::Inconsistent;
    }
    let mid = s + size / 2;
    let median = if size % 2 == 1 {
        at(mid)
    } else {
        (at(mid - 1) + at(mid)) / 2
    };
    let mut members: Vec<usize> = order[s..=e].to_vec();
    members.sort_unstable();
    Vote::Agreed {
        members,
        offset: Offset::from_nanos(median),
    }
}

/// A fresh nonce for a request's transmit timestamp.
fn nonce() -> NtpTimestamp {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // No randomness: the local clock, as RFC 4330 §5 does; still checked on the way back,
        // only more guessable.
        return NtpTimestamp::from_wall(WallTime::from_system(std::time::SystemTime::now()));
    }
    NtpTimestamp(u64::from_be_bytes(b))
}

/// The addresses of `server`, bounded by `deadline`.
async fn resolve(server: &Server, deadline: Instant) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Ok(ip) = server.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, server.port)]);
    }
    let lookup = tokio::net::lookup_host((server.host.as_str(), server.port));
    match tokio::time::timeout_at(deadline, lookup).await {
        Err(_) => Err(ResolveError::TimedOut),
        Ok(Err(e)) => Err(ResolveError::Lookup(e.to_string())),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(ResolveError::NoAddress)
            } else {
                Ok(addrs)
            }
        }
    }
}

/// How one attempt ended.
enum Attempt {
    Answer(Sample),
    Kiss(KissCode),
    /// No acceptable answer before the attempt's end; what went wrong, if anything was seen.
    Nothing(Option<String>),
}

/// One request to `addr`, waiting until `until` for its answer.
async fn attempt(
    addr: SocketAddr,
    clock: &dyn Clock,
    floor: WallTime,
    until: Instant,
) -> Result<Attempt, SocketError> {
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| SocketError::Bind {
            local,
            detail: e.to_string(),
        })?;
    sock.connect(addr).await.map_err(|e| SocketError::Connect {
        addr,
        detail: e.to_string(),
    })?;
    let sent = nonce();
    let t1 = clock.now();
    let started = Instant::now();
    if let Err(e) = sock.send(&sntp::request(sent)).await {
        // Unreachable network, no route: the next attempt may fare better (the network may be
        // coming up); wait out the slot so a retry is not a busy loop.
        tokio::time::sleep_until(until).await;
        return Ok(Attempt::Nothing(Some(format!("sending: {e}"))));
    }
    let mut last = None;
    // Room for extension fields and a MAC; anything longer is not SNTP.
    let mut buf = [0u8; 1024];
    loop {
        let n = match tokio::time::timeout_at(until, sock.recv(&mut buf)).await {
            Err(_) => return Ok(Attempt::Nothing(last)),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                // ICMP port unreachable (ECONNREFUSED) and friends: nobody serves there now.
                tokio::time::sleep_until(until).await;
                return Ok(Attempt::Nothing(Some(e.to_string())));
            }
        };
        let t4 = t1.plus(Offset::of(started.elapsed()));
        let data = buf.get(..n).unwrap_or_default();
        match sntp::parse_reply(data, sent) {
            Ok(reply) => match sntp::sample(t1, &reply, t4, floor) {
                // A time before this binary was built is certainly wrong, whoever says it.
                Ok(s) if s.server_time < floor => {
                    tokio::time::sleep_until(until).await;
                    return Ok(Attempt::Nothing(Some(format!(
                        "refused its answer: its time {} is before this kubejoin was built ({floor})",
                        s.server_time
                    ))));
                }
                Ok(s) => return Ok(Attempt::Answer(s)),
                Err(e) => {
                    tokio::time::sleep_until(until).await;
                    return Ok(Attempt::Nothing(Some(e.to_string())));
                }
            },
            Err(ReplyError::KissOfDeath(k)) => return Ok(Attempt::Kiss(k)),
            // Not an answer to this request: anyone could have sent it. Keep waiting.
            Err(
                e @ (ReplyError::TooShort(_)
                | ReplyError::NotServerMode(_)
                | ReplyError::Version(_)
                | ReplyError::OriginateMismatch),
            ) => {
                crate::debug!("sntp: discarded a packet from {addr}: {e}");
                last = Some(format!("discarded a packet: {e}"));
            }
            // The server's own answer, refused on its content: this attempt is over.
            Err(e) => {
                tokio::time::sleep_until(until).await;
                return Ok(Attempt::Nothing(Some(format!("refused its answer: {e}"))));
            }
        }
    }
}

/// Asks one server, within `policy` and `deadline`.
async fn ask(
    server: &Server,
    policy: &Policy,
    clock: &dyn Clock,
    floor: WallTime,
    deadline: Instant,
) -> ServerReport {
    let report = |address, result| ServerReport {
        server: server.clone(),
        address,
        result,
        verdict: None,
    };
    let started = Instant::now();
    let addrs = match resolve(server, deadline).await {
        Ok(a) => a,
        Err(e) => return report(None, Err(ServerFailure::Resolve(e))),
    };
    let mut last = None;
    let mut asked = 0;
    let mut address = None;
    for k in 0..policy.attempts.max(1) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let addr = addrs[k as usize % addrs.len()];
        address = Some(addr);
        asked += 1;
        let until = (now + policy.attempt_timeout).min(deadline);
        match attempt(addr, clock, floor, until).await {
            Ok(Attempt::Answer(s)) => return report(Some(addr), Ok(s)),
            Ok(Attempt::Kiss(k)) => return report(Some(addr), Err(ServerFailure::Kiss(k))),
            Ok(Attempt::Nothing(why)) => last = why.or(last),
            Err(e) => return report(Some(addr), Err(ServerFailure::Socket(e))),
        }
    }
    report(
        address,
        Err(ServerFailure::NoAnswer {
            attempts: asked,
            waited: started.elapsed(),
            last,
        }),
    )
}

/// Asks every server at once and takes a consistent answer (see the module docs). `floor` is
/// the clock floor (`floor::floor()`): it places the servers' timestamps in their NTP era, and a
/// server whose time is earlier is refused before the vote. `clock` gives T1 and T4.
/// Returns within `policy.overall` (plus scheduling), whatever the servers do.
pub async fn query(
    servers: &[Server],
    policy: &Policy,
    clock: &dyn Clock,
    floor: WallTime,
) -> Result<Agreement, SntpError> {
    if servers.is_empty() {
        return Err(SntpError::NoServers);
    }
    let deadline = Instant::now() + policy.overall;
    let mut reports: Vec<ServerReport> = futures_util::future::join_all(
        servers
            .iter()
            .map(|s| ask(s, policy, clock, floor, deadline)),
    )
    .await;
    let answered: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].result.is_ok())
        .collect();
    let offsets: Vec<Offset> = answered
        .iter()
        .filter_map(|&i| reports[i].result.as_ref().ok().map(|s| s.offset))
        .collect();
    match vote(&offsets, servers.len(), policy.tolerance) {
        Vote::Agreed { members, offset } => {
            for (k, &i) in answered.iter().enumerate() {
                reports[i].verdict = Some(if members.contains(&k) {
                    Verdict::Agreed
                } else {
                    Verdict::Outvoted
                });
            }
            for r in reports
                .iter()
                .filter(|r| r.verdict == Some(Verdict::Outvoted))
            {
                crate::warn!(
                    "sntp: {r}: more than {:?} from the others",
                    policy.tolerance
                );
            }
            Ok(Agreement {
                offset,
                agreeing: members.len(),
                servers: reports,
            })
        }
        Vote::NoAnswers => Err(SntpError::NoAnswer(reports)),
        Vote::Unconfirmed => Err(SntpError::Unconfirmed(reports)),
        Vote::Inconsistent => {
            for &i in &answered {
                reports[i].verdict = Some(Verdict::Refused);
            }
            Err(SntpError::Inconsistent {
                tolerance: policy.tolerance,
                servers: reports,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[f64]) -> Vec<Offset> {
        v.iter().map(|s| Offset::from_secs_f64(*s)).collect()
    }

    const TOL: Duration = Duration::from_secs(1);

    #[test]
    fn server_strings() {
        let ok = |s: &str, host: &str, port: u16| {
            assert_eq!(Server::parse(s), Ok(Server::new(host, port)), "{s}");
        };
        ok("time.example.org", "time.example.org", 123);
        ok("time.example.org:1123", "time.example.org", 1123);
        ok("169.254.169.123", "169.254.169.123", 123);
        ok("10.0.0.1:10123", "10.0.0.1", 10123);
        ok("fd00::1", "fd00::1", 123);
        ok("[fd00::1]", "fd00::1", 123);
        ok("[fd00::1]:4123", "fd00::1", 4123);
        ok("metadata.google.internal", "metadata.google.internal", 123);
        ok("ntp_1.lan", "ntp_1.lan", 123);
        for bad in [
            "",
            ":123",
            "host:",
            "host:0",
            "host:70000",
            "host:12x",
            "[fd00::1",
            "[10.0.0.1]:1",
            "[fd00::1]x",
            "a..b",
            "bad host",
            "-",
            "a:b:c:z",
        ] {
            let e = Server::parse(bad).unwrap_err();
            assert_eq!(e.given, bad);
            assert_eq!(e.class(), Class::Usage);
        }
        assert_eq!(Server::new("fd00::1", 123).to_string(), "[fd00::1]:123");
        assert_eq!(Server::new("10.0.0.1", 123).to_string(), "10.0.0.1:123");
    }

    #[test]
    fn the_median_of_agreeing_servers_wins() {
        assert_eq!(
            vote(&secs(&[10.0, 10.2, 10.1]), 3, TOL),
            Vote::Agreed {
                members: vec![0, 1, 2],
                offset: Offset::from_secs_f64(10.1)
            }
        );
        // An even group takes the mean of its two middle values.
        assert_eq!(
            vote(&secs(&[5.0, 5.4]), 2, TOL),
            Vote::Agreed {
                members: vec![0, 1],
                offset: Offset::from_secs_f64(5.2)
            }
        );
    }

    #[test]
    fn a_liar_is_outvoted() {
        // One server 1,000 days off among three.
        assert_eq!(
            vote(&secs(&[3.0, 86_400_000.0, 3.1]), 3, TOL),
            Vote::Agreed {
                members: vec![0, 2],
                offset: Offset::from_secs_f64(3.05)
            }
        );
        // Two liars that agree with each other do not beat three honest servers.
        assert_eq!(
            vote(&secs(&[-500.0, 0.1, 0.0, -500.2, 0.2]), 5, TOL),
            Vote::Agreed {
                members: vec![1, 2, 4],
                offset: Offset::from_secs_f64(0.1)
            }
        );
        // Exactly at the tolerance still agrees.
        assert!(matches!(
            vote(&secs(&[0.0, 1.0, 900.0]), 3, TOL),
            Vote::Agreed { ref members, .. } if members == &[0, 1]
        ));
    }

    #[test]
    fn disagreement_without_a_majority_refuses_every_answer() {
        assert_eq!(vote(&secs(&[0.0, 30.0]), 2, TOL), Vote::Inconsistent);
        assert_eq!(vote(&secs(&[0.0, 30.0, 60.0]), 3, TOL), Vote::Inconsistent);
        // Two against two: no strict majority.
        assert_eq!(
            vote(&secs(&[0.0, 0.1, 50.0, 50.1]), 4, TOL),
            Vote::Inconsistent
        );
        // Just over the tolerance apart.
        assert_eq!(vote(&secs(&[0.0, 1.001]), 2, TOL), Vote::Inconsistent);
    }

    #[test]
    fn a_single_answer_counts_only_when_it_is_the_only_server() {
        assert_eq!(
            vote(&secs(&[42.0]), 1, TOL),
            Vote::Agreed {
                members: vec![0],
                offset: Offset::from_secs_f64(42.0)
            }
        );
        assert_eq!(vote(&secs(&[42.0]), 3, TOL), Vote::Unconfirmed);
        assert_eq!(vote(&[], 3, TOL), Vote::NoAnswers);
        // Two of three answering and agreeing is a majority of the answers.
        assert!(matches!(
            vote(&secs(&[1.0, 1.1]), 3, TOL),
            Vote::Agreed { .. }
        ));
    }

    #[test]
    fn errors_name_what_each_server_did() {
        let report = |host: &str, result| ServerReport {
            server: Server::new(host, 123),
            address: None,
            result,
            verdict: None,
        };
        let e = SntpError::NoAnswer(vec![
            report(
                "10.0.0.1",
                Err(ServerFailure::NoAnswer {
                    attempts: 3,
                    waited: Duration::from_millis(3000),
                    last: None,
                }),
            ),
            report(
                "pool.invalid",
                Err(ServerFailure::Resolve(ResolveError::Lookup(
                    "no such host".into(),
                ))),
            ),
            report("10.0.0.3", Err(ServerFailure::Kiss(KissCode::DENY))),
        ]);
        assert_eq!(
            e.to_string(),
            "no NTP server gave an acceptable answer: 10.0.0.1:123: no answer to 3 request(s) in 3s; \
             pool.invalid:123: cannot resolve it: no such host; 10.0.0.3:123: kiss-o'-death DENY: the \
             server denies access to this client"
        );
        assert!(e.hint().unwrap().contains("kubejoin.ntp="));
        assert_eq!(e.class(), Class::Timeout);
        assert_eq!(e.servers().len(), 3);
    }
}
