//! A small SNTP server for tests: answers client requests (RFC 4330 / RFC 5905 mode 3) with this
//! machine's time shifted by a chosen offset, or misbehaves on purpose: lies (a large offset),
//! sends a kiss-o'-death, says it is unsynchronised, answers with someone else's originate
//! timestamp, or stays silent.
//!
//! Written apart from kubejoin's codec (`src/clock/sntp.rs`), from the RFC's packet layout, so
//! that a misreading on one side is not mirrored on the other.
//!
//! ```no_run
//! use kubejoin_testcp::sntp::{start, Behaviour, SntpConfig};
//! let liar = start(SntpConfig { offset_secs: 86_400.0 * 400.0, ..SntpConfig::default() }).unwrap();
//! println!("ntp server at {}", liar.addr());
//! ```

use crate::Error;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Seconds from 1900-01-01 to 1970-01-01.
const NTP_TO_UNIX: u64 = 2_208_988_800;

/// How the server treats each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A good answer: this machine's time plus the offset.
    Answer,
    /// A kiss-o'-death (stratum 0) with this code, e.g. `*b"DENY"`.
    Kiss([u8; 4]),
    /// Leap indicator 3: "my clock is not synchronised".
    Unsynchronised,
    /// A good answer, but with an originate timestamp that is not the request's (a stale or
    /// forged packet, which a client must discard).
    WrongOriginate,
    /// No answer at all (requests are still counted).
    Silent,
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SntpConfig {
    /// Where to listen (UDP). Default `127.0.0.1:0`, a free port.
    pub bind: SocketAddr,
    /// Added to this machine's clock in every timestamp sent (negative: behind).
    pub offset_secs: f64,
    pub behaviour: Behaviour,
    /// Stratum of good answers (1–15).
    pub stratum: u8,
}

impl Default for SntpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            offset_secs: 0.0,
            behaviour: Behaviour::Answer,
            stratum: 1,
        }
    }
}

/// A running SNTP server. Dropping it stops it.
#[derive(Debug)]
pub struct SntpServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SntpServer {
    /// The address it answers on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Client requests received so far (answered or not).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops the server and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SntpServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Binds and starts answering on a thread of its own; returns once it listens.
pub fn start(config: SntpConfig) -> Result<SntpServer, Error> {
    if !(1..=15).contains(&config.stratum) {
        return Err(Error::Config(format!(
            "stratum {} is not 1 to 15",
            config.stratum
        )));
    }
    let bind = |source| Error::Bind {
        addr: config.bind,
        source,
    };
    let socket = UdpSocket::bind(config.bind).map_err(bind)?;
    // Short reads so that a stop request is seen promptly.
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(bind)?;
    let addr = socket.local_addr().map_err(bind)?;
    let requests = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (requests, stop) = (requests.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("sntp-{addr}"))
            .spawn(move || serve(&socket, &config, &requests, &stop))
            .map_err(Error::Runtime)?
    };
    Ok(SntpServer {
        addr,
        requests,
        stop,
        thread: Some(thread),
    })
}

fn serve(socket: &UdpSocket, config: &SntpConfig, requests: &AtomicUsize, stop: &AtomicBool) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let received = now_ntp(config.offset_secs);
        let Some(request) = buf.get(..n) else {
            continue;
        };
        // Only client-mode requests of the RFC's minimum size get an answer.
        if n < 48 || request[0] & 7 != 3 {
            continue;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        if let Some(reply) = reply(request, received, config) {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

/// This machine's time plus `offset_secs`, as a 64-bit NTP timestamp (era dropped).
fn now_ntp(offset_secs: f64) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    ntp_of_unix(now + offset_secs)
}

/// The NTP timestamp of a Unix time in seconds.
pub fn ntp_of_unix(unix_secs: f64) -> u64 {
    let whole = unix_secs.floor();
    let frac = unix_secs - whole;
    let secs = (whole as i64 + NTP_TO_UNIX as i64).rem_euclid(1 << 32) as u64;
    let fraction = ((frac * 4_294_967_296.0) as u64).min(u64::from(u32::MAX));
    secs << 32 | fraction
}

fn reply(request: &[u8], received: u64, config: &SntpConfig) -> Option<[u8; 48]> {
    let version = (request[0] >> 3) & 7;
    let mut originate = [0u8; 8];
    originate.copy_from_slice(request.get(40..48)?);
    let mut b = [0u8; 48];
    let (leap, stratum, refid): (u8, u8, [u8; 4]) = match config.behaviour {
        Behaviour::Silent => return None,
        Behaviour::Kiss(code) => (3, 0, code),
        Behaviour::Unsynchronised => (3, config.stratum, *b"TEST"),
        Behaviour::Answer | Behaviour::WrongOriginate => (0, config.stratum, *b"TEST"),
    };
    if config.behaviour == Behaviour::WrongOriginate {
        originate[7] ^= 0xff;
    }
    // A server answers in the client's version (RFC 5905 §9.2), mode 4.
    b[0] = leap << 6 | version << 3 | 4;
    b[1] = stratum;
    b[2] = request[2]; // poll, echoed
    b[3] = (-20i8) as u8; // precision ~1 µs
    b[4..8].copy_from_slice(&0x0000_0020u32.to_be_bytes()); // root delay 0.5 ms
    b[8..12].copy_from_slice(&0x0000_0040u32.to_be_bytes()); // root dispersion 1 ms
    b[12..16].copy_from_slice(&refid);
    if stratum != 0 {
        // Reference time: when it last set its clock, a minute ago.
        b[16..24].copy_from_slice(&received.wrapping_sub(60 << 32).to_be_bytes());
        b[32..40].copy_from_slice(&received.to_be_bytes());
        b[40..48].copy_from_slice(&now_ntp(config.offset_secs).to_be_bytes());
    }
    b[24..32].copy_from_slice(&originate);
    Some(b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn ask(server: SocketAddr, transmit: u64) -> Option<[u8; 48]> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut req = [0u8; 48];
        req[0] = 4 << 3 | 3;
        req[40..48].copy_from_slice(&transmit.to_be_bytes());
        s.send_to(&req, server).unwrap();
        let mut buf = [0u8; 48];
        s.recv_from(&mut buf).ok().map(|_| buf)
    }

    #[test]
    fn known_timestamps() {
        assert_eq!(ntp_of_unix(0.0), NTP_TO_UNIX << 32);
        assert_eq!(ntp_of_unix(0.5), NTP_TO_UNIX << 32 | 0x8000_0000);
        // 2036-02-07T06:28:16Z wraps to era 1 second 0.
        assert_eq!(ntp_of_unix(2_085_978_496.0), 0);
        assert_eq!(ntp_of_unix(-2_208_988_800.0), 0);
    }

    #[test]
    fn answers_echo_the_nonce_and_carry_the_offset() {
        let server = start(SntpConfig {
            offset_secs: -3600.0,
            ..SntpConfig::default()
        })
        .unwrap();
        let r = ask(server.addr(), 0x0102_0304_0506_0708).unwrap();
        assert_eq!(r[0], 4 << 3 | 4);
        assert_eq!(r[1], 1);
        assert_eq!(r[24..32], 0x0102_0304_0506_0708u64.to_be_bytes());
        let t3 = u64::from_be_bytes(r[40..48].try_into().unwrap()) >> 32;
        let expected = ntp_of_unix(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                - 3600.0,
        ) >> 32;
        assert!(expected.abs_diff(t3) <= 1, "{expected} vs {t3}");
        assert_eq!(server.requests(), 1);
    }

    #[test]
    fn misbehaviours() {
        let kiss = start(SntpConfig {
            behaviour: Behaviour::Kiss(*b"DENY"),
            ..SntpConfig::default()
        })
        .unwrap();
        let r = ask(kiss.addr(), 7).unwrap();
        assert_eq!((r[1], &r[12..16]), (0, &b"DENY"[..]));
        let silent = start(SntpConfig {
            behaviour: Behaviour::Silent,
            ..SntpConfig::default()
        })
        .unwrap();
        assert!(ask(silent.addr(), 7).is_none());
        assert_eq!(silent.requests(), 1);
        let wrong = start(SntpConfig {
            behaviour: Behaviour::WrongOriginate,
            ..SntpConfig::default()
        })
        .unwrap();
        assert_ne!(ask(wrong.addr(), 7).unwrap()[24..32], 7u64.to_be_bytes());
        let unsync = start(SntpConfig {
            behaviour: Behaviour::Unsynchronised,
            ..SntpConfig::default()
        })
        .unwrap();
        assert_eq!(ask(unsync.addr(), 7).unwrap()[0] >> 6, 3);
        assert!(start(SntpConfig {
            stratum: 0,
            ..SntpConfig::default()
        })
        .is_err());
    }
}
