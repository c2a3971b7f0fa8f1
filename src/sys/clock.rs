//! The system clock behind a narrow trait: reading `CLOCK_REALTIME`, and stepping it with
//! `clock_settime(2)` (needs `CAP_SYS_TIME`). [`RealClock`] is one line per method;
//! [`RecordingClock`] keeps a fake clock, records every step as a typed [`ClockCall`] and can
//! refuse it with an errno, so the decision to step (`crate::clock::step`) is tested without root
//! and without touching the test machine's clock.

use crate::time::WallTime;
use std::fmt;
use std::io;
use std::sync::Mutex;

/// The clock effects.
pub trait Clock: fmt::Debug + Send + Sync {
    /// `CLOCK_REALTIME` now.
    fn now(&self) -> WallTime;

    /// Sets `CLOCK_REALTIME` to `t` (`clock_settime(2)`).
    fn set_realtime(&self, t: WallTime) -> io::Result<()>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> WallTime {
        WallTime::from_system(std::time::SystemTime::now())
    }

    fn set_realtime(&self, t: WallTime) -> io::Result<()> {
        use nix::sys::time::TimeSpec;
        use nix::time::{clock_settime, ClockId};
        let secs = t.unix_secs();
        let spec = TimeSpec::new(secs, i64::from(t.subsec_nanos()));
        Ok(clock_settime(ClockId::CLOCK_REALTIME, spec)?)
    }
}

/// The environment variable that gives a **debug** build of the binary a fake clock (see
/// [`OffsetClock`]): Unix seconds the clock reads when the process starts, e.g. `1420070400` for
/// 2015-01-01. Test-only: release builds ignore it, so a deployed kubejoin always reads and sets
/// the machine's real clock. The integration tests use it to join "a machine whose clock is
/// years off" without ever stepping the test machine's clock.
pub const TEST_CLOCK_ENV: &str = "KUBEJOIN_TEST_CLOCK";

/// A fake clock for the binary under test: the machine's clock shifted by an offset, stepped by
/// changing the offset only (the machine's clock is never touched). Made only by
/// [`node_clock`] in debug builds when [`TEST_CLOCK_ENV`] is set.
#[derive(Debug)]
pub struct OffsetClock {
    offset: Mutex<crate::time::Offset>,
}

impl OffsetClock {
    /// A clock that reads `start` now and runs at the machine's pace.
    pub fn starting_at(start: WallTime) -> Self {
        Self {
            offset: Mutex::new(start.since(RealClock.now())),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> WallTime {
        let offset = self
            .offset
            .lock()
            .map(|o| *o)
            .unwrap_or(crate::time::Offset::from_nanos(0));
        RealClock.now().plus(offset)
    }

    fn set_realtime(&self, t: WallTime) -> io::Result<()> {
        let mut o = self
            .offset
            .lock()
            .map_err(|_| io::Error::other("fake clock poisoned"))?;
        *o = t.since(RealClock.now());
        Ok(())
    }
}

/// The clock of this process: the real one, or — in a debug build with [`TEST_CLOCK_ENV`] set to
/// Unix seconds — an [`OffsetClock`] starting there. One instance per process, so the clock step
/// and every TLS verification (`crate::http::tls`) see the same clock.
pub fn node_clock() -> std::sync::Arc<dyn Clock> {
    static NODE_CLOCK: std::sync::OnceLock<std::sync::Arc<dyn Clock>> = std::sync::OnceLock::new();
    NODE_CLOCK
        .get_or_init(|| {
            let fake = cfg!(debug_assertions)
                .then(|| std::env::var(TEST_CLOCK_ENV).ok())
                .flatten()
                .and_then(|v| v.trim().parse::<i64>().ok());
            match fake {
                Some(secs) => {
                    let start = WallTime::from_unix_secs(secs);
                    crate::warn!(
                        "{TEST_CLOCK_ENV}: test build with a fake clock starting at {start}; the machine's clock is neither read nor set"
                    );
                    std::sync::Arc::new(OffsetClock::starting_at(start))
                }
                None => std::sync::Arc::new(RealClock),
            }
        })
        .clone()
}

/// One recorded step of the fake clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockCall {
    SetRealtime { from: WallTime, to: WallTime },
}

/// A fake clock: reads return its time (which stands still unless advanced), steps are recorded
/// and change it, or fail with the configured error and leave it as it was.
#[derive(Debug)]
pub struct RecordingClock {
    now: Mutex<WallTime>,
    calls: Mutex<Vec<ClockCall>>,
    set_error: Option<io::ErrorKind>,
}

impl RecordingClock {
    /// A fake clock that reads `now`.
    pub fn at(now: WallTime) -> Self {
        Self {
            now: Mutex::new(now),
            calls: Mutex::new(Vec::new()),
            set_error: None,
        }
    }

    /// Makes every `set_realtime` fail with `kind` (e.g. `PermissionDenied`: no CAP_SYS_TIME).
    pub fn failing_set(mut self, kind: io::ErrorKind) -> Self {
        self.set_error = Some(kind);
        self
    }

    /// Moves the fake clock on by `by` (time passing).
    pub fn advance(&self, by: crate::time::Offset) {
        if let Ok(mut n) = self.now.lock() {
            *n = n.plus(by);
        }
    }

    /// Every step so far, in order.
    pub fn calls(&self) -> Vec<ClockCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Clock for RecordingClock {
    fn now(&self) -> WallTime {
        self.now.lock().map(|n| *n).unwrap_or(WallTime::UNIX_EPOCH)
    }

    fn set_realtime(&self, t: WallTime) -> io::Result<()> {
        let from = self.now();
        if let Ok(mut c) = self.calls.lock() {
            c.push(ClockCall::SetRealtime { from, to: t });
        }
        if let Some(kind) = self.set_error {
            return Err(io::Error::new(
                kind,
                "clock_settime refused (recording fake)",
            ));
        }
        if let Ok(mut n) = self.now.lock() {
            *n = t;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_clock_reads_the_system_time() {
        let before = WallTime::from_system(std::time::SystemTime::now());
        let now = RealClock.now();
        let after = WallTime::from_system(std::time::SystemTime::now());
        assert!(before <= now && now <= after);
    }

    #[test]
    fn the_real_call_reaches_the_kernel_without_changing_the_clock() {
        // Linux checks the value before the privilege (do_sys_settimeofday64): a time before
        // 1970 is EINVAL for root and everyone else, so this exercises the real syscall path
        // without ever stepping the test machine's clock.
        let before = RealClock.now();
        let e = RealClock
            .set_realtime(WallTime::from_unix_secs(-1))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(RealClock.now() >= before);
    }

    #[test]
    fn the_offset_clock_steps_without_touching_the_machine() {
        let t0 = WallTime::from_unix_secs(1_420_070_400);
        let c = OffsetClock::starting_at(t0);
        let off = c.now().since(t0);
        assert!(off.abs() < std::time::Duration::from_secs(1), "{off}");
        let real_before = RealClock.now();
        let target = real_before.plus(crate::time::Offset::from_nanos(7_000_000_000));
        c.set_realtime(target).unwrap();
        assert!(c.now().since(target).abs() < std::time::Duration::from_secs(1));
        // The machine's clock did not move by 7 s.
        assert!(RealClock.now().since(real_before).abs() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn the_fake_records_steps_and_can_refuse_them() {
        let t0 = WallTime::from_unix_secs(1_420_070_400);
        let t1 = WallTime::from_unix_secs(1_796_083_200);
        let fake = RecordingClock::at(t0);
        fake.set_realtime(t1).unwrap();
        assert_eq!(fake.now(), t1);
        assert_eq!(fake.calls(), [ClockCall::SetRealtime { from: t0, to: t1 }]);
        let denied = RecordingClock::at(t0).failing_set(io::ErrorKind::PermissionDenied);
        assert_eq!(
            denied.set_realtime(t1).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(denied.now(), t0, "a refused step leaves the clock alone");
        assert_eq!(denied.calls().len(), 1);
        fake.advance(crate::time::Offset::from_nanos(5));
        assert_eq!(fake.now(), t1.plus(crate::time::Offset::from_nanos(5)));
    }
}
