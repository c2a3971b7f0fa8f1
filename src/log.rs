//! Logging: `kubejoin: <level>: <message>` lines on stderr, and a timeline of named phases.
//!
//! Kept deliberately small (no tracing subscriber in the binary). Messages must never contain
//! secrets: tokens are only ever formatted through their redacting `Display`.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Log levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

static MIN_LEVEL: Mutex<Level> = Mutex::new(Level::Info);

/// Sets the lowest level that is printed.
pub fn set_level(level: Level) {
    if let Ok(mut l) = MIN_LEVEL.lock() {
        *l = level;
    }
}

/// Prints one log line (use the macros).
pub fn emit(level: Level, msg: std::fmt::Arguments<'_>) {
    let min = MIN_LEVEL.lock().map(|l| *l).unwrap_or(Level::Info);
    if level >= min {
        eprintln!("kubejoin: {}: {}", level.label(), msg);
    }
}

#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Debug, format_args!($($t)*)) } }

/// One finished phase of the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseRecord {
    pub phase: String,
    /// Milliseconds since the Unix epoch.
    pub start_ms: u128,
    pub end_ms: u128,
    pub duration_ms: u128,
    /// `ok`, `skipped` or `failed`.
    pub outcome: String,
    /// What the phase found worth keeping (the clock phase: servers, offset, the step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// What happened inside the phase ([`crate::trace`]), when anything was recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<crate::trace::Step>,
}

static TIMELINE: Mutex<Vec<PhaseRecord>> = Mutex::new(Vec::new());

/// A running phase; logs its start now and its end (with duration) when finished.
#[derive(Debug)]
pub struct Phase {
    name: &'static str,
    started: Instant,
    started_wall: SystemTime,
    mark: crate::trace::Mark,
    done: bool,
}

/// Starts a named phase.
pub fn phase(name: &'static str) -> Phase {
    emit(Level::Info, format_args!("[{name}] start"));
    Phase {
        name,
        started: Instant::now(),
        started_wall: SystemTime::now(),
        mark: crate::trace::mark(),
        done: false,
    }
}

fn epoch_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Phase {
    /// Time since the phase started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the phase; returns the steps recorded inside it.
    fn finish(&mut self, outcome: &str) -> Vec<crate::trace::Step> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let d = self.started.elapsed();
        emit(
            Level::Info,
            format_args!(
                "[{}] {} in {}",
                self.name,
                outcome,
                crate::time::duration::format(d)
            ),
        );
        let start_ms = epoch_ms(self.started_wall);
        let steps = crate::trace::take_since(self.mark);
        if let Ok(mut t) = TIMELINE.lock() {
            t.push(PhaseRecord {
                phase: self.name.to_string(),
                start_ms,
                end_ms: start_ms + d.as_millis(),
                duration_ms: d.as_millis(),
                outcome: outcome.to_string(),
                detail: None,
                steps: steps.clone(),
            });
        }
        steps
    }

    /// Ends the phase successfully.
    pub fn ok(mut self) {
        self.finish("ok");
    }

    /// Ends the phase successfully; returns the steps recorded inside it (for a caller that
    /// keeps its own record of the phase, as `result.json` does).
    pub fn ok_steps(mut self) -> Vec<crate::trace::Step> {
        self.finish("ok")
    }

    /// Ends the phase as skipped.
    pub fn skipped(mut self) {
        self.finish("skipped");
    }

    /// [`Phase::skipped`], returning the steps recorded inside it.
    pub fn skipped_steps(mut self) -> Vec<crate::trace::Step> {
        self.finish("skipped")
    }

    /// Ends a dry run's phase that found what would stop a real run.
    pub fn would_fail(mut self) {
        self.finish("would fail");
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        // A phase dropped without ok()/skipped() ended through an error path.
        self.finish("failed");
    }
}

/// Records a moment worth a line of its own in the timeline (the clock step: from, to, the
/// servers), as a zero-length entry named `event`.
pub fn record_event(event: &str, detail: serde_json::Value) {
    let at = epoch_ms(SystemTime::now());
    if let Ok(mut t) = TIMELINE.lock() {
        t.push(PhaseRecord {
            phase: event.to_string(),
            start_ms: at,
            end_ms: at,
            duration_ms: 0,
            outcome: "ok".into(),
            detail: Some(detail),
            steps: Vec::new(),
        });
    }
}

/// The phases finished so far, in order.
pub fn timeline() -> Vec<PhaseRecord> {
    TIMELINE.lock().map(|t| t.clone()).unwrap_or_default()
}
