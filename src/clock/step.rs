//! Whether to set the system clock, and setting it.
//!
//! The clock is stepped (`clock_settime(CLOCK_REALTIME)`) when the agreed offset is larger than
//! [`STEP_THRESHOLD`], 1 s:
//! - below it a step buys nothing: certificate validity is checked to the second, the CSR
//!   signer back-dates certificates by minutes, and SNTP's own error (half the round trip plus
//!   the server's root distance, see `sntp::Sample`) is tens of milliseconds on a good network
//!   and can approach a second on a bad one, so a smaller step may be noise;
//! - a step is a discontinuity for every program reading the wall clock; kubejoin runs before
//!   them, but a machine already running (`kubejoin join` on a live host) may have a time daemon
//!   slewing towards the right time, which kubejoin should not fight over milliseconds;
//! - it is the rule of the common time daemons' first synchronisation (chrony's `makestep 1 3`
//!   in the distributions' default configurations).
//!
//! kubejoin steps forwards and backwards alike when SNTP agrees: a clock in the future makes
//! certificates look expired just as one in the past makes them "not yet valid".

use crate::error::{Class, Classify};
use crate::sys::clock::Clock;
use crate::time::{Offset, WallTime};
use std::time::Duration;

/// Offsets up to this are left alone.
pub const STEP_THRESHOLD: Duration = Duration::from_secs(1);

/// A step of the clock that was made: for the log, the timeline and result.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The clock just before the step.
    pub old: WallTime,
    /// What it was set to.
    pub new: WallTime,
    /// `new - old`.
    pub offset: Offset,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The offset was within the threshold: nothing done.
    WithinThreshold { offset: Offset },
    /// The clock was set.
    Stepped(Step),
}

/// Whether an offset calls for a step.
pub fn needs_step(offset: Offset, threshold: Duration) -> bool {
    offset.abs() > threshold
}

/// The clock could not be set.
#[derive(Debug, thiserror::Error)]
#[error("setting the system clock from {old} to {new} (offset {offset})")]
pub struct StepError {
    pub old: WallTime,
    pub new: WallTime,
    pub offset: Offset,
    #[source]
    pub source: std::io::Error,
}

impl Classify for StepError {
    fn class(&self) -> Class {
        Class::Other
    }

    fn hint(&self) -> Option<String> {
        (self.source.kind() == std::io::ErrorKind::PermissionDenied).then(|| {
            "setting the clock needs CAP_SYS_TIME: run kubejoin as root (it is PID 1 in the initramfs), \
             or let a time daemon set the clock before the join"
                .into()
        })
    }
}

/// Applies an `offset` measured a moment ago: when it exceeds `threshold`, the clock is read
/// again and set to that reading plus the offset (an offset stays right while time passes, an
/// absolute time would not), and `old → new` is logged.
pub fn apply(
    clock: &dyn Clock,
    offset: Offset,
    threshold: Duration,
) -> Result<StepOutcome, StepError> {
    if !needs_step(offset, threshold) {
        crate::debug!("clock: offset {offset} is within {threshold:?}: not stepped");
        return Ok(StepOutcome::WithinThreshold { offset });
    }
    let old = clock.now();
    let new = old.plus(offset);
    clock.set_realtime(new).map_err(|source| StepError {
        old,
        new,
        offset,
        source,
    })?;
    crate::info!("clock: stepped {old} → {new} (offset {offset})");
    Ok(StepOutcome::Stepped(Step { old, new, offset }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::clock::{ClockCall, RecordingClock};
    use std::io;

    const Y2015: WallTime = WallTime::from_unix_secs(1_420_070_400);

    #[test]
    fn small_offsets_are_left_alone() {
        let clock = RecordingClock::at(Y2015);
        for ms in [0, 1, -999, 1000, -1000] {
            let o = Offset::from_nanos(ms * 1_000_000);
            assert_eq!(
                apply(&clock, o, STEP_THRESHOLD).unwrap(),
                StepOutcome::WithinThreshold { offset: o }
            );
        }
        assert!(clock.calls().is_empty());
        assert!(needs_step(
            Offset::from_nanos(1_000_000_001),
            STEP_THRESHOLD
        ));
        assert!(!needs_step(
            Offset::from_nanos(-1_000_000_000),
            STEP_THRESHOLD
        ));
    }

    #[test]
    fn a_clock_years_behind_is_stepped_forward_from_its_current_reading() {
        let clock = RecordingClock::at(Y2015);
        let offset = Offset::from_nanos(376_012_800 * 1_000_000_000 + 250_000_000);
        // Time passed between the measurement and the step: the offset still applies.
        clock.advance(Offset::from_nanos(3_000_000_000));
        let old = Y2015.plus(Offset::from_nanos(3_000_000_000));
        let new = old.plus(offset);
        assert_eq!(
            apply(&clock, offset, STEP_THRESHOLD).unwrap(),
            StepOutcome::Stepped(Step { old, new, offset })
        );
        assert_eq!(
            clock.calls(),
            [ClockCall::SetRealtime { from: old, to: new }]
        );
        assert_eq!(new.to_string(), "2026-12-01T00:00:03.250Z");
    }

    #[test]
    fn a_clock_ahead_is_stepped_back() {
        let clock = RecordingClock::at(Y2015);
        let offset = Offset::from_nanos(-90_000_000_000);
        let out = apply(&clock, offset, STEP_THRESHOLD).unwrap();
        assert!(matches!(out, StepOutcome::Stepped(s) if s.new == Y2015.plus(offset)));
    }

    #[test]
    fn a_refused_step_says_what_and_how_to_fix_it() {
        let clock = RecordingClock::at(Y2015).failing_set(io::ErrorKind::PermissionDenied);
        let e = apply(&clock, Offset::from_nanos(5_000_000_000), STEP_THRESHOLD).unwrap_err();
        assert_eq!(
            e.to_string(),
            "setting the system clock from 2015-01-01T00:00:00.000Z to 2015-01-01T00:00:05.000Z (offset +5.000s)"
        );
        assert!(e.hint().unwrap().contains("CAP_SYS_TIME"));
        assert_eq!(e.class(), Class::Other);
        assert_eq!(clock.now(), Y2015);
    }
}
