//! The SNTP codec: client mode of RFC 4330 (SNTPv4) on the packet format of RFC 5905 (NTPv4).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |LI | VN  |Mode |    Stratum    |     Poll      |   Precision   |   0
//! |                          Root Delay                           |   4   (16.16 seconds)
//! |                       Root Dispersion                         |   8   (16.16 seconds)
//! |                     Reference Identifier                      |  12   (kiss code at stratum 0)
//! |                   Reference Timestamp (64)                    |  16
//! |                   Originate Timestamp (64)                    |  24   T1, echoed by the server
//! |                    Receive Timestamp (64)                     |  32   T2
//! |                    Transmit Timestamp (64)                    |  40   T3
//! ```
//!
//! A request is 48 bytes: LI 0, version 4, mode 3 (client), everything zero but the transmit
//! timestamp, which the server copies into its reply's originate field. kubejoin puts 64 random
//! bits there instead of its clock (RFC 4330 §5 lets the client choose; a random value is a nonce
//! an off-path attacker must guess, and it does not tell the network what a wrong clock says),
//! and keeps T1 for itself. A reply is accepted only when it passes [`parse_reply`]'s checks,
//! in the order listed on [`ReplyError`].
//!
//! Timestamps are 32-bit seconds since 1900-01-01 plus a 32-bit binary fraction; the seconds
//! wrap every 2^32 s (136 years), era 1 beginning 2036-02-07T06:28:16Z. A timestamp is placed in
//! the era that puts it nearest a pivot ([`NtpTimestamp::to_wall`]); kubejoin's pivot is the
//! clock floor (the build time), which is right for 68 years after the build whatever the local
//! clock says.

use crate::time::{Offset, WallTime};
use std::fmt;

/// The size of an NTP header without extension fields or MAC.
pub const PACKET_LEN: usize = 48;
/// The NTP port.
pub const NTP_PORT: u16 = 123;
/// Seconds from 1900-01-01 (NTP's prime epoch) to 1970-01-01.
pub const NTP_UNIX_OFFSET: i64 = 2_208_988_800;
/// The largest root distance (root delay / 2 + root dispersion) accepted from a server, as
/// ntpd's default distance threshold (`tos maxdist`): a server that does not know the time
/// better than this is no better than the 1 s tolerance kubejoin works with.
pub const MAX_ROOT_DISTANCE_NANOS: i128 = 1_500_000_000;

const ERA: i128 = 1 << 32;
const NANOS: i128 = 1_000_000_000;

/// A 64-bit NTP timestamp: seconds since 1900 (mod 2^32) in the high half, fraction in the low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    pub const ZERO: NtpTimestamp = NtpTimestamp(0);

    pub const fn new(seconds: u32, fraction: u32) -> Self {
        NtpTimestamp((seconds as u64) << 32 | fraction as u64)
    }

    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub const fn fraction(self) -> u32 {
        self.0 as u32
    }

    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    fn at(b: &[u8], at: usize) -> Self {
        let mut x = [0u8; 8];
        if let Some(s) = b.get(at..at + 8) {
            x.copy_from_slice(s);
        }
        NtpTimestamp(u64::from_be_bytes(x))
    }

    /// The timestamp of a wall time (the era is dropped, the fraction rounded up so that
    /// [`NtpTimestamp::to_wall`] gives back the same nanosecond).
    pub fn from_wall(t: WallTime) -> Self {
        let ntp_nanos = t.unix_nanos() + i128::from(NTP_UNIX_OFFSET) * NANOS;
        let secs = ntp_nanos.div_euclid(NANOS).rem_euclid(ERA);
        let nanos = ntp_nanos.rem_euclid(NANOS);
        // secs < 2^32 and nanos < 10^9 by the euclidean remainders.
        NtpTimestamp::new(secs as u32, nanos_to_fraction(nanos as u32))
    }

    /// The wall time of this timestamp in the era that puts it nearest `pivot`: within
    /// 2^31 s (68 years) of it either way.
    pub fn to_wall(self, pivot: WallTime) -> WallTime {
        let in_era0 = i128::from(self.seconds()) - i128::from(NTP_UNIX_OFFSET);
        let pivot_secs = i128::from(pivot.unix_secs());
        // The era whose copy of the timestamp is nearest the pivot.
        let era = (pivot_secs - in_era0 + ERA / 2).div_euclid(ERA);
        let secs = in_era0 + era * ERA;
        WallTime::from_unix_nanos(secs * NANOS + i128::from(fraction_to_nanos(self.fraction())))
    }
}

/// Nanoseconds of a 32-bit binary fraction of a second, rounded down (so always < 10^9).
pub fn fraction_to_nanos(fraction: u32) -> u32 {
    // < 10^9 < 2^32.
    ((u64::from(fraction) * 1_000_000_000) >> 32) as u32
}

/// The binary fraction of `nanos` (< 10^9), rounded up: the smallest fraction whose
/// [`fraction_to_nanos`] is `nanos` again.
pub fn nanos_to_fraction(nanos: u32) -> u32 {
    let n = u64::from(nanos.min(999_999_999));
    // ceil(n * 2^32 / 10^9) <= 4_294_967_292 for n < 10^9: fits.
    ((n << 32).div_ceil(1_000_000_000)) as u32
}

/// NTP short format (16.16 seconds, root delay and dispersion) in nanoseconds.
pub fn short_to_nanos(v: u32) -> i128 {
    (i128::from(v) * NANOS) >> 16
}

/// The leap indicator (the top two bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leap {
    NoWarning,
    /// The last minute of the day has 61 seconds.
    AddSecond,
    /// The last minute of the day has 59 seconds.
    DeleteSecond,
    /// The server's clock is not synchronised (alarm condition).
    Unsynchronised,
}

impl Leap {
    fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => Leap::NoWarning,
            1 => Leap::AddSecond,
            2 => Leap::DeleteSecond,
            _ => Leap::Unsynchronised,
        }
    }
}

/// A kiss code: the reference identifier of a stratum-0 reply (RFC 5905 §7.4), four ASCII
/// letters such as `RATE`, `DENY`, `RSTR`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KissCode(pub [u8; 4]);

impl KissCode {
    pub const RATE: KissCode = KissCode(*b"RATE");
    pub const DENY: KissCode = KissCode(*b"DENY");
    pub const RSTR: KissCode = KissCode(*b"RSTR");

    /// DENY and RSTR: the server refuses this client for good — do not ask it again (RFC 4330
    /// §8, RFC 5905 §7.4). Every other code also ends this run's questions to that server.
    pub fn denies_access(self) -> bool {
        self == KissCode::DENY || self == KissCode::RSTR
    }
}

impl fmt::Display for KissCode {
    /// The code as text; bytes that are not printable ASCII as `\xNN` (it comes off the wire).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            if b.is_ascii_graphic() {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for KissCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KissCode({self})")
    }
}

/// A decoded server reply (every field of the 48-byte header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub leap: Leap,
    pub version: u8,
    pub mode: u8,
    pub stratum: u8,
    pub poll: i8,
    pub precision: i8,
    /// Root delay, NTP short format.
    pub root_delay: u32,
    /// Root dispersion, NTP short format.
    pub root_dispersion: u32,
    pub reference_id: [u8; 4],
    pub reference: NtpTimestamp,
    pub originate: NtpTimestamp,
    pub receive: NtpTimestamp,
    pub transmit: NtpTimestamp,
}

impl Reply {
    /// Root delay / 2 + root dispersion: the server's own bound on its error, in nanoseconds.
    pub fn root_distance_nanos(&self) -> i128 {
        short_to_nanos(self.root_delay) / 2 + short_to_nanos(self.root_dispersion)
    }
}

/// Why a datagram is not an acceptable answer to our request. [`parse_reply`] checks in this
/// order: the first failing check is the one reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("{0} bytes is too short for an NTP packet (48)")]
    TooShort(usize),
    #[error("mode {0} is not a server reply (4)")]
    NotServerMode(u8),
    #[error("version {0} is not NTP version 3 or 4")]
    Version(u8),
    /// Not an answer to our request: the originate timestamp is not our nonce (RFC 4330 §5).
    /// Discarded, never believed, including kiss-o'-death packets.
    #[error("its originate timestamp does not match the request (a stale or forged packet)")]
    OriginateMismatch,
    #[error("kiss-o'-death {code}{meaning}", code = .0, meaning = kiss_meaning(*.0))]
    KissOfDeath(KissCode),
    #[error("stratum {0} is not a synchronised server (1-15)")]
    Stratum(u8),
    #[error("leap indicator 3: the server's clock is not synchronised")]
    Unsynchronised,
    #[error("its transmit timestamp is zero")]
    ZeroTransmit,
    #[error("its receive timestamp is zero")]
    ZeroReceive,
    #[error(
        "root distance {}ms (root delay {}ms, dispersion {}ms) is beyond {}ms: the server does not know the time well enough",
        .distance_ms, .delay_ms, .dispersion_ms, MAX_ROOT_DISTANCE_NANOS / 1_000_000
    )]
    RootDistance {
        distance_ms: i64,
        delay_ms: i64,
        dispersion_ms: i64,
    },
    /// The server claims to have held the request longer than the whole round trip took.
    #[error("the timestamps give a negative round-trip delay ({}ms)", .delay_ms)]
    NegativeDelay { delay_ms: i64 },
}

fn kiss_meaning(k: KissCode) -> &'static str {
    match &k.0 {
        b"RATE" => ": the server asks to be queried less often",
        b"DENY" => ": the server denies access to this client",
        b"RSTR" => ": the server restricts access to this client",
        _ => "",
    }
}

/// The 48-byte client request whose transmit timestamp is `nonce`.
pub fn request(nonce: NtpTimestamp) -> [u8; PACKET_LEN] {
    let mut b = [0u8; PACKET_LEN];
    // LI 0 (no warning), VN 4, mode 3 (client).
    b[0] = 4 << 3 | 3;
    b[40..48].copy_from_slice(&nonce.to_bytes());
    b
}

/// Decodes the fixed header of any NTP packet (extension fields and MAC after it are ignored:
/// SNTP does not authenticate). Checks nothing but the length.
pub fn decode(b: &[u8]) -> Result<Reply, ReplyError> {
    if b.len() < PACKET_LEN {
        return Err(ReplyError::TooShort(b.len()));
    }
    let byte = |at: usize| b.get(at).copied().unwrap_or(0);
    let (first, stratum, poll, precision) = (byte(0), byte(1), byte(2), byte(3));
    let be32 = |at: usize| {
        let mut x = [0u8; 4];
        if let Some(s) = b.get(at..at + 4) {
            x.copy_from_slice(s);
        }
        x
    };
    Ok(Reply {
        leap: Leap::from_bits(first >> 6),
        version: first >> 3 & 7,
        mode: first & 7,
        stratum,
        poll: poll as i8,
        precision: precision as i8,
        root_delay: u32::from_be_bytes(be32(4)),
        root_dispersion: u32::from_be_bytes(be32(8)),
        reference_id: be32(12),
        reference: NtpTimestamp::at(b, 16),
        originate: NtpTimestamp::at(b, 24),
        receive: NtpTimestamp::at(b, 32),
        transmit: NtpTimestamp::at(b, 40),
    })
}

/// Decodes `b` and checks that it is a usable server answer to the request whose transmit
/// timestamp was `sent` (RFC 4330 §5 and §8, RFC 5905 §7.4 for kiss codes).
pub fn parse_reply(b: &[u8], sent: NtpTimestamp) -> Result<Reply, ReplyError> {
    let r = decode(b)?;
    if r.mode != 4 {
        return Err(ReplyError::NotServerMode(r.mode));
    }
    if !(3..=4).contains(&r.version) {
        return Err(ReplyError::Version(r.version));
    }
    if r.originate != sent {
        return Err(ReplyError::OriginateMismatch);
    }
    if r.stratum == 0 {
        return Err(ReplyError::KissOfDeath(KissCode(r.reference_id)));
    }
    if r.stratum > 15 {
        return Err(ReplyError::Stratum(r.stratum));
    }
    if r.leap == Leap::Unsynchronised {
        return Err(ReplyError::Unsynchronised);
    }
    if r.transmit == NtpTimestamp::ZERO {
        return Err(ReplyError::ZeroTransmit);
    }
    if r.receive == NtpTimestamp::ZERO {
        return Err(ReplyError::ZeroReceive);
    }
    // The sign bit set would be a negative root delay (RFC 4330's signed field) or more than
    // nine hours: either is nonsense, and both fail the distance check.
    let distance = r.root_distance_nanos();
    if r.root_delay >= 0x8000_0000 || distance > MAX_ROOT_DISTANCE_NANOS {
        let ms = |n: i128| i64::try_from(n / 1_000_000).unwrap_or(i64::MAX);
        return Err(ReplyError::RootDistance {
            distance_ms: ms(distance),
            delay_ms: ms(short_to_nanos(r.root_delay)),
            dispersion_ms: ms(short_to_nanos(r.root_dispersion)),
        });
    }
    Ok(r)
}

/// One measurement: the clock offset and round-trip delay of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// What to add to the local clock: ((T2 - T1) + (T3 - T4)) / 2.
    pub offset: Offset,
    /// (T4 - T1) - (T3 - T2): the network's share of the round trip. The offset is right to
    /// within half of it (plus the server's root distance).
    pub delay: Offset,
    /// The server's own time when it answered (T3).
    pub server_time: WallTime,
    pub stratum: u8,
    pub leap: Leap,
    /// The server's root distance, nanoseconds.
    pub root_distance: Offset,
}

/// The offset and delay of one exchange (RFC 4330 §5): `t1` when the request left and `t4` when
/// the reply arrived, both on the local clock; T2 and T3 from the reply, placed in the NTP era
/// nearest `pivot`.
pub fn sample(
    t1: WallTime,
    reply: &Reply,
    t4: WallTime,
    pivot: WallTime,
) -> Result<Sample, ReplyError> {
    let t2 = reply.receive.to_wall(pivot).unix_nanos();
    let t3 = reply.transmit.to_wall(pivot).unix_nanos();
    let (t1, t4) = (t1.unix_nanos(), t4.unix_nanos());
    let delay = (t4 - t1) - (t3 - t2);
    // A few microseconds of disagreement between two clocks' rounding is not a lie; a server
    // that claims to have held the request a millisecond longer than the round trip is.
    if delay < -1_000_000 {
        return Err(ReplyError::NegativeDelay {
            delay_ms: i64::try_from(delay / 1_000_000).unwrap_or(i64::MIN),
        });
    }
    Ok(Sample {
        offset: Offset::from_nanos(((t2 - t1) + (t3 - t4)) / 2),
        delay: Offset::from_nanos(delay.max(0)),
        server_time: WallTime::from_unix_nanos(t3),
        stratum: reply.stratum,
        leap: reply.leap,
        root_distance: Offset::from_nanos(reply.root_distance_nanos()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y2026: WallTime = WallTime::from_unix_secs(1_796_083_200);

    /// A valid reply to `sent`, stratum 2, T2 = T3 = `at`.
    fn reply_bytes(sent: NtpTimestamp, at: NtpTimestamp) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0] = 4 << 3 | 4;
        b[1] = 2;
        b[2] = 6;
        b[3] = 0xe9; // precision 2^-23
        b[4..8].copy_from_slice(&0x0000_0100u32.to_be_bytes()); // 3.9 ms root delay
        b[8..12].copy_from_slice(&0x0000_0200u32.to_be_bytes()); // 7.8 ms dispersion
        b[12..16].copy_from_slice(&[192, 0, 2, 1]);
        b[16..24].copy_from_slice(&at.to_bytes());
        b[24..32].copy_from_slice(&sent.to_bytes());
        b[32..40].copy_from_slice(&at.to_bytes());
        b[40..48].copy_from_slice(&at.to_bytes());
        b
    }

    #[test]
    fn requests_are_version_4_client_mode_with_the_nonce_as_transmit_timestamp() {
        let nonce = NtpTimestamp(0x0123_4567_89ab_cdef);
        let b = request(nonce);
        assert_eq!(b.len(), 48);
        assert_eq!(b[0], 0x23, "LI 0, VN 4, mode 3");
        assert!(b[1..40].iter().all(|x| *x == 0));
        assert_eq!(b[40..48], [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        let d = decode(&b).unwrap();
        assert_eq!((d.version, d.mode, d.leap), (4, 3, Leap::NoWarning));
        assert_eq!(d.transmit, nonce);
    }

    #[test]
    fn era_known_answers_from_rfc_5905() {
        // RFC 5905 §6, figure 4 (interesting historic NTP dates): 1900 is era 0 timestamp 0,
        // 1970-01-01 is 2,208,988,800, 1972-01-01 is 2,272,060,800, 2000-01-01 is
        // 3,155,673,600, and 2036-02-08 is era 1 timestamp 63,104.
        let cases: [(u32, i64); 5] = [
            (0, -2_208_988_800),
            (2_208_988_800, 0),
            (2_272_060_800, 63_072_000),
            (3_155_673_600, 946_684_800),
            (63_104, 2_086_041_600),
        ];
        for (ntp, unix) in cases {
            let pivot = WallTime::from_unix_secs(unix);
            let t = NtpTimestamp::new(ntp, 0);
            assert_eq!(t.to_wall(pivot), WallTime::from_unix_secs(unix), "{ntp}");
            assert_eq!(NtpTimestamp::from_wall(WallTime::from_unix_secs(unix)), t);
        }
        // The era boundary: 2036-02-07T06:28:16Z is era 1 second 0; a second before it is era
        // 0's last second.
        let boundary = WallTime::from_unix_secs(2_085_978_496);
        assert_eq!(NtpTimestamp::from_wall(boundary), NtpTimestamp::new(0, 0));
        assert_eq!(
            NtpTimestamp::from_wall(WallTime::from_unix_secs(2_085_978_495)),
            NtpTimestamp::new(u32::MAX, 0)
        );
    }

    #[test]
    fn the_era_is_the_one_nearest_the_pivot() {
        // Pivot = a 2026 build: the small timestamps after 2036's wrap are era 1, the large
        // ones era 0, until 68 years after the pivot.
        let after_wrap = NtpTimestamp::new(63_104, 0);
        assert_eq!(
            after_wrap.to_wall(Y2026),
            WallTime::from_unix_secs(2_086_041_600),
            "2036-02-08, era 1"
        );
        let now_ish = NtpTimestamp::from_wall(Y2026);
        assert_eq!(now_ish.to_wall(Y2026), Y2026);
        // With the pivot at 2015 (a wrong clock) a 2026 timestamp is still era 0, and with the
        // pivot at 2100, era 1 wins for a 2026 timestamp: 2026 is 74 years from 2100 but 2162 is
        // only 62. Why the floor, not the clock, is the pivot.
        let y2015 = WallTime::from_unix_secs(1_420_070_400);
        assert_eq!(now_ish.to_wall(y2015), Y2026);
        let y2100 = WallTime::from_unix_secs(4_102_444_800);
        assert_eq!(
            now_ish.to_wall(y2100).unix_secs(),
            Y2026.unix_secs() + (1 << 32)
        );
        // Exactly 2^31 s either side of the pivot stays in range.
        let p = Y2026.unix_secs();
        for delta in [-(1i64 << 31) + 1, (1 << 31) - 1, 0, 12345] {
            let t = WallTime::from_unix_secs(p + delta);
            assert_eq!(NtpTimestamp::from_wall(t).to_wall(Y2026), t, "{delta}");
        }
    }

    #[test]
    fn fraction_known_answers() {
        assert_eq!(fraction_to_nanos(0), 0);
        assert_eq!(fraction_to_nanos(0x8000_0000), 500_000_000);
        assert_eq!(fraction_to_nanos(0x4000_0000), 250_000_000);
        assert_eq!(fraction_to_nanos(0xC000_0000), 750_000_000);
        assert_eq!(fraction_to_nanos(1), 0, "one unit is 232.8 ps");
        assert_eq!(fraction_to_nanos(5), 1);
        assert_eq!(fraction_to_nanos(u32::MAX), 999_999_999);
        assert_eq!(nanos_to_fraction(500_000_000), 0x8000_0000);
        assert_eq!(nanos_to_fraction(1), 5);
        assert_eq!(nanos_to_fraction(999_999_999), 4_294_967_292);
        // Every nanosecond survives the round trip (spot checks across the range).
        for n in (0..1_000_000_000u32)
            .step_by(999_983)
            .chain([1, 2, 3, 999_999_998])
        {
            assert_eq!(fraction_to_nanos(nanos_to_fraction(n)), n, "{n}");
        }
        // Short format: 1.5 s and 1/65536 s.
        assert_eq!(short_to_nanos(0x0001_8000), 1_500_000_000);
        assert_eq!(short_to_nanos(1), 15_258);
        // Sub-second wall times convert exactly.
        let t = WallTime::from_unix_nanos(1_796_083_200_123_456_789);
        assert_eq!(NtpTimestamp::from_wall(t).to_wall(Y2026), t);
    }

    #[test]
    fn a_good_reply_parses_with_every_field() {
        let sent = NtpTimestamp(0xdead_beef_0bad_f00d);
        let at = NtpTimestamp::from_wall(Y2026);
        let r = parse_reply(&reply_bytes(sent, at), sent).unwrap();
        assert_eq!(
            (r.leap, r.version, r.mode, r.stratum),
            (Leap::NoWarning, 4, 4, 2)
        );
        assert_eq!((r.poll, r.precision), (6, -23));
        assert_eq!(r.reference_id, [192, 0, 2, 1]);
        assert_eq!((r.originate, r.receive, r.transmit), (sent, at, at));
        assert_eq!(r.root_distance_nanos(), 3_906_250 / 2 + 7_812_500);
        // Version 3 servers and trailing extension fields or a MAC are fine.
        let mut v3 = reply_bytes(sent, at).to_vec();
        v3[0] = 3 << 3 | 4;
        v3.extend_from_slice(&[0; 20]);
        assert_eq!(parse_reply(&v3, sent).unwrap().version, 3);
        // A leap second warning is information, not a refusal.
        let mut leap = reply_bytes(sent, at);
        leap[0] |= 1 << 6;
        assert_eq!(parse_reply(&leap, sent).unwrap().leap, Leap::AddSecond);
    }

    #[test]
    fn bad_replies_are_refused_with_their_reason() {
        let sent = NtpTimestamp(0x1111_2222_3333_4444);
        let at = NtpTimestamp::from_wall(Y2026);
        let good = reply_bytes(sent, at);
        let with = |f: &dyn Fn(&mut [u8; 48])| {
            let mut b = good;
            f(&mut b);
            parse_reply(&b, sent)
        };
        assert_eq!(
            parse_reply(&good[..47], sent),
            Err(ReplyError::TooShort(47))
        );
        assert_eq!(parse_reply(&[], sent), Err(ReplyError::TooShort(0)));
        // Our own request reflected back, a broadcast, a symmetric peer.
        assert_eq!(with(&|b| b[0] = 0x23), Err(ReplyError::NotServerMode(3)));
        assert_eq!(
            with(&|b| b[0] = 4 << 3 | 5),
            Err(ReplyError::NotServerMode(5))
        );
        assert_eq!(with(&|b| b[0] = 2 << 3 | 4), Err(ReplyError::Version(2)));
        assert_eq!(with(&|b| b[0] = 5 << 3 | 4), Err(ReplyError::Version(5)));
        assert_eq!(with(&|b| b[31] ^= 1), Err(ReplyError::OriginateMismatch));
        assert_eq!(with(&|b| b[1] = 16), Err(ReplyError::Stratum(16)));
        assert_eq!(with(&|b| b[0] |= 3 << 6), Err(ReplyError::Unsynchronised));
        assert_eq!(with(&|b| b[40..48].fill(0)), Err(ReplyError::ZeroTransmit));
        assert_eq!(with(&|b| b[32..40].fill(0)), Err(ReplyError::ZeroReceive));
        assert!(matches!(
            with(&|b| b[8..12].copy_from_slice(&0x0001_8001u32.to_be_bytes())),
            Err(ReplyError::RootDistance {
                distance_ms: 1501,
                ..
            })
        ));
        assert!(matches!(
            with(&|b| b[4..8].copy_from_slice(&0x8000_0000u32.to_be_bytes())),
            Err(ReplyError::RootDistance { .. })
        ));
        // Exactly at the limit is accepted.
        assert!(with(&|b| {
            b[4..8].fill(0);
            b[8..12].copy_from_slice(&0x0001_8000u32.to_be_bytes());
        })
        .is_ok());
    }

    #[test]
    fn kiss_o_death_is_refused_with_its_code() {
        let sent = NtpTimestamp(42);
        let at = NtpTimestamp::from_wall(Y2026);
        for (code, denies) in [
            (*b"RATE", false),
            (*b"DENY", true),
            (*b"RSTR", true),
            (*b"INIT", false),
        ] {
            let mut b = reply_bytes(sent, at);
            b[1] = 0;
            b[12..16].copy_from_slice(&code);
            let e = parse_reply(&b, sent).unwrap_err();
            assert_eq!(e, ReplyError::KissOfDeath(KissCode(code)));
            assert_eq!(KissCode(code).denies_access(), denies);
        }
        let deny = ReplyError::KissOfDeath(KissCode::DENY).to_string();
        assert_eq!(
            deny,
            "kiss-o'-death DENY: the server denies access to this client"
        );
        assert_eq!(KissCode(*b"A\0\x7fB").to_string(), "A\\x00\\x7fB");
        // Stratum 0 with a wrong originate is someone else's packet (or a forgery): it is
        // discarded as such, not obeyed.
        let mut forged = reply_bytes(NtpTimestamp(43), at);
        forged[1] = 0;
        forged[12..16].copy_from_slice(b"DENY");
        assert_eq!(
            parse_reply(&forged, sent),
            Err(ReplyError::OriginateMismatch)
        );
    }

    #[test]
    fn offset_and_delay_from_the_four_timestamps() {
        // RFC 4330 §5's formulas on round numbers: the local clock is 10 s behind, the network
        // takes 40 ms each way, the server holds the request 20 ms.
        let t1 = WallTime::from_unix_secs(1_796_083_200);
        let ms = |n: i128| Offset::from_nanos(n * 1_000_000);
        let server = t1.plus(ms(10_000));
        let t2 = server.plus(ms(40));
        let t3 = t2.plus(ms(20));
        let t4 = t1.plus(ms(100));
        let mut r = decode(&reply_bytes(NtpTimestamp(1), NtpTimestamp::from_wall(t2))).unwrap();
        r.transmit = NtpTimestamp::from_wall(t3);
        let s = sample(t1, &r, t4, Y2026).unwrap();
        assert_eq!(s.offset, ms(10_000));
        assert_eq!(s.delay, ms(80));
        assert_eq!(s.server_time, t3);
        assert_eq!(s.stratum, 2);
        // Asymmetric paths put the error at up to half the delay: 70 ms out, 10 ms back.
        let t2 = server.plus(ms(70));
        r.receive = NtpTimestamp::from_wall(t2);
        r.transmit = NtpTimestamp::from_wall(t2.plus(ms(20)));
        let s = sample(t1, &r, t4, Y2026).unwrap();
        assert_eq!(s.offset, ms(10_030));
        assert_eq!(s.delay, ms(80));
        // A machine stuck in 2015 asking a server in 2026: the offset spans the eras' maths.
        let y2015 = WallTime::from_unix_secs(1_420_070_400);
        r.receive = NtpTimestamp::from_wall(Y2026);
        r.transmit = NtpTimestamp::from_wall(Y2026);
        let s = sample(y2015, &r, y2015, Y2026).unwrap();
        assert_eq!(s.offset, Y2026.since(y2015));
        // The server claims to have held the request longer than the round trip took.
        r.transmit = NtpTimestamp::from_wall(Y2026.plus(ms(50)));
        assert_eq!(
            sample(y2015, &r, y2015.plus(ms(10)), Y2026),
            Err(ReplyError::NegativeDelay { delay_ms: -40 })
        );
    }

    #[test]
    fn decode_is_total() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let b: Vec<u8> = (0..len).map(|i| (s >> (i % 8 * 8)) as u8).collect();
            let _ = parse_reply(&b, NtpTimestamp(s));
            assert_eq!(decode(&b).is_ok(), len >= 48);
        }
    }
}
