//! One overall deadline for a join, split into phase bounds.
//!
//! A join runs unattended on thousands of machines at once: whatever the cluster does (never
//! approves, answers 429 forever, accepts a connection and then says nothing), the process must
//! end by `--timeout` (default 10 m) with an exit code and a message that names where it was.
//! So the run holds one [`Deadline`], and each phase gets `bound(phase_max)`: its own limit
//! (kubeadm's value for that step, e.g. `--tls-bootstrap-timeout` for the approval wait), cut
//! short by whatever is left of the overall one. A phase that runs out ends with [`Expired`],
//! which names the phase, how long it ran, the overall deadline, and keeps the last cause seen
//! (the last refused connection, the CSR still pending…) so the operator knows what to fix.

use crate::error::{Class, Classify};
use crate::time::duration;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// The default overall deadline (`--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The instant by which the whole join must have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When the run gives up.
    pub at: Instant,
    /// When the run started (to report the overall budget).
    started: Instant,
}

impl Deadline {
    /// A deadline `total` from now.
    pub fn after(total: Duration) -> Self {
        let started = Instant::now();
        Self {
            // An absurd --timeout (years) must not overflow Instant: clamp to a century.
            at: started
                .checked_add(total)
                .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 86_400)),
            started,
        }
    }

    /// The overall budget this deadline was created with.
    pub fn total(&self) -> Duration {
        self.at.saturating_duration_since(self.started)
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The bound of a phase whose own limit is `phase_max`: never past the overall deadline.
    pub fn bound(&self, phase_max: Duration) -> Duration {
        phase_max.min(self.remaining())
    }

    /// A phase starting now, limited to `bound(phase_max)`.
    pub fn phase(&self, name: &'static str, phase_max: Duration) -> PhaseClock {
        let started = Instant::now();
        let own = started.checked_add(phase_max);
        PhaseClock {
            name,
            started,
            at: started + self.bound(phase_max),
            by_overall: own.is_none_or(|own| own >= self.at),
            overall: *self,
        }
    }
}

/// The clock of one phase: where it must end, and what to say when it does not.
#[derive(Debug, Clone, Copy)]
pub struct PhaseClock {
    pub name: &'static str,
    pub started: Instant,
    /// The phase's end: `min(start + phase_max, overall deadline)`.
    pub at: Instant,
    /// The overall deadline, not the phase's own limit, decides the end.
    pub by_overall: bool,
    overall: Deadline,
}

impl PhaseClock {
    /// Time left in this phase; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The overall deadline this phase's bound is cut from.
    pub fn overall_at(&self) -> Instant {
        self.overall.at
    }

    /// The phase's whole bound.
    pub fn bound(&self) -> Duration {
        self.at.saturating_duration_since(self.started)
    }

    /// The error for running out of time in this phase, keeping `cause` (the last failure seen,
    /// or the phase's own timeout error).
    pub fn expired(&self, cause: Option<Cause>) -> Expired {
        Expired {
            phase: self.name,
            after: self.started.elapsed(),
            overall: self.overall.total(),
            by_overall: self.by_overall,
            own_limit: None,
            cause,
            stopped_early: false,
        }
    }

    /// Like [`PhaseClock::expired`], for a phase whose work ran under a bound of its own that
    /// the flag `flag` sets to `limit` (discovery's fetch loops: `--discovery-timeout`). The
    /// overall deadline ended the phase only if it came before that limit would have; otherwise
    /// the report names the flag, so the advice is to raise that one and not `--timeout`.
    pub fn expired_own_limit(
        &self,
        cause: Option<Cause>,
        flag: &'static str,
        limit: Duration,
    ) -> Expired {
        // The overall deadline came first if the limit would have ended after it, or if it
        // has passed by now (a loop that started late in the phase, cut at the same instant).
        let cut_by_overall = self
            .started
            .checked_add(limit)
            .is_none_or(|own| own > self.overall.at)
            || self.overall.expired();
        Expired {
            by_overall: cut_by_overall,
            own_limit: Some(OwnLimit::new(flag, limit)),
            ..self.expired(cause)
        }
    }

    /// Runs `fut` within this phase's bound; [`Expired`] without a cause when the bound passed
    /// first (the future is dropped, which cancels its requests).
    pub async fn run<F: Future>(&self, fut: F) -> Result<F::Output, Expired> {
        match tokio::time::timeout_at(tokio::time::Instant::from_std(self.at), fut).await {
            Ok(out) => Ok(out),
            Err(_) => Err(self.expired(None)),
        }
    }
}

/// The last failure before a phase gave up: its text chain, class and hint, kept as a boxed
/// error so the report prints it as the cause.
#[derive(Debug)]
pub struct Cause {
    pub error: Box<dyn StdError + Send + Sync + 'static>,
    pub hint: Option<String>,
}

impl Cause {
    /// Keeps `e` (with its hint) as the cause of a give-up.
    pub fn of<E: Classify + Send + Sync + 'static>(e: E) -> Self {
        let hint = e.hint();
        Self {
            error: Box::new(e),
            hint,
        }
    }
}

/// A phase's own limit and the flag that sets it, e.g. `--discovery-timeout 5m0s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnLimit {
    pub flag: &'static str,
    /// In milliseconds, saturated at `u32::MAX` (49 days): small enough that an [`Expired`]
    /// stays a cheap error value to return.
    pub millis: u32,
}

impl OwnLimit {
    pub fn new(flag: &'static str, limit: Duration) -> Self {
        Self {
            flag,
            millis: u32::try_from(limit.as_millis()).unwrap_or(u32::MAX),
        }
    }

    pub fn limit(&self) -> Duration {
        Duration::from_millis(u64::from(self.millis))
    }
}

/// A phase ran out of time (its own bound or the overall deadline). Always exit code 5.
#[derive(Debug)]
pub struct Expired {
    pub phase: &'static str,
    /// How long the phase ran.
    pub after: Duration,
    /// The overall deadline of the run.
    pub overall: Duration,
    /// The overall deadline (rather than the phase's own limit) ended the phase.
    pub by_overall: bool,
    /// The flag that sets the phase's own limit, and its value, when the caller knows it
    /// (`--discovery-timeout`): named in the message and the hint when that limit ended it.
    pub own_limit: Option<OwnLimit>,
    /// The last failure seen, if there was one.
    pub cause: Option<Cause>,
    /// The phase stopped before its limit, because its next attempt could only have started
    /// after it (a backoff pause or a `Retry-After` longer than the time left).
    pub stopped_early: bool,
}

impl Expired {
    /// Marks the phase as stopped before its limit, because the next attempt would have come
    /// after it: the report says so instead of "the limit passed".
    pub fn stopped_early(self) -> Self {
        Self {
            stopped_early: true,
            ..self
        }
    }

    /// The limit that ended (or would have ended) the phase, as a person knows it:
    /// `--discovery-timeout 3s` or `the overall deadline 10m0s`.
    fn limit_name(&self) -> String {
        match (self.own_limit, self.by_overall) {
            (Some(own), false) => format!("{} {}", own.flag, duration::format(own.limit())),
            _ => format!("the overall deadline {}", duration::format(self.overall)),
        }
    }
}

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stopped_early {
            write!(
                f,
                "gave up in {} after {}: the next attempt could only have started after {} (overall deadline {})",
                self.phase,
                duration::format(round_ms(self.after)),
                self.limit_name(),
                duration::format(self.overall)
            )?;
            return match &self.cause {
                Some(c) => write!(f, ": {}", c.error),
                None => Ok(()),
            };
        }
        write!(
            f,
            "gave up in {} after {} (",
            self.phase,
            duration::format(round_ms(self.after)),
        )?;
        if let (Some(own), false) = (self.own_limit, self.by_overall) {
            write!(f, "{} {}, ", own.flag, duration::format(own.limit()))?;
        }
        write!(f, "overall deadline {})", duration::format(self.overall))?;
        match &self.cause {
            // The cause's text on the same line: the one line a log collector keeps says why.
            Some(c) => write!(f, ": {}", c.error),
            None => write!(f, ": no answer within the phase's time"),
        }
    }
}

impl StdError for Expired {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_ref()
            .map(|c| c.error.as_ref() as &(dyn StdError + 'static))
    }
}

impl Classify for Expired {
    fn class(&self) -> Class {
        Class::Timeout
    }

    fn hint(&self) -> Option<String> {
        let cause = self.cause.as_ref().and_then(|c| c.hint.clone());
        if self.stopped_early {
            // Nothing "passed": the limit left no room for another attempt.
            let flag = match (self.own_limit, self.by_overall) {
                (Some(own), false) => own.flag,
                _ => "--timeout",
            };
            let own = format!(
                "{} left no room for another attempt: raise {flag} to give the server more time",
                self.limit_name()
            );
            return Some(match cause {
                Some(h) => format!("{h}; {own}"),
                None => own,
            });
        }
        if !self.by_overall {
            // The phase's own limit ended it: that flag is the one to raise, never --timeout.
            return match (cause, self.own_limit.map(|o| o.flag)) {
                (Some(h), Some(flag)) if h.contains(flag) => Some(h),
                (cause, Some(flag)) => {
                    let own = format!(
                        "{flag} passed: raise it if this machine needs longer to reach the cluster"
                    );
                    Some(match cause {
                        Some(h) => format!("{h}; {own}"),
                        None => own,
                    })
                }
                (cause, None) => cause,
            };
        }
        let own =
            "the overall deadline passed: raise --timeout if this machine needs longer to join";
        match cause {
            Some(h) => Some(format!("{h}; {own}")),
            None => Some(own.to_string()),
        }
    }
}

/// Millisecond precision is plenty in a message (`5m0.012s` rather than nanoseconds).
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("certificate signing request node-csr-x is still pending")]
    struct Pending;

    impl Classify for Pending {
        fn class(&self) -> Class {
            Class::Timeout
        }
        fn hint(&self) -> Option<String> {
            Some("approve it with `kubectl certificate approve node-csr-x`".into())
        }
    }

    #[test]
    fn bound_never_passes_the_overall_deadline() {
        let d = Deadline::after(Duration::from_secs(10));
        assert!(d.bound(Duration::from_secs(300)) <= Duration::from_secs(10));
        assert_eq!(d.bound(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(d.total(), Duration::from_secs(10));
        assert!(!d.expired());
        let gone = Deadline::after(Duration::ZERO);
        assert!(gone.expired());
        assert_eq!(gone.bound(Duration::from_secs(5)), Duration::ZERO);
        // Absurd budgets clamp instead of overflowing.
        assert!(Deadline::after(Duration::MAX).remaining() > Duration::from_secs(1 << 30));
    }

    #[test]
    fn expired_names_phase_durations_and_keeps_the_cause() {
        let e = Expired {
            phase: "wait-approval",
            after: Duration::from_secs(300),
            overall: Duration::from_secs(600),
            by_overall: true,
            own_limit: None,
            cause: Some(Cause::of(Pending)),
            stopped_early: false,
        };
        assert_eq!(
            e.to_string(),
            "gave up in wait-approval after 5m0s (overall deadline 10m0s): \
             certificate signing request node-csr-x is still pending"
        );
        assert_eq!(e.class(), Class::Timeout);
        assert_eq!(e.class().exit_code(), 5);
        let hint = e.hint().unwrap();
        assert!(
            hint.contains("kubectl certificate approve node-csr-x"),
            "{hint}"
        );
        assert!(hint.contains("--timeout"), "{hint}");
        assert!(e.source().is_some());
        // The report prints the cause once (it is already on the first line).
        let report = crate::error::Report(&e, None).to_string();
        assert_eq!(report.lines().count(), 1, "{report}");

        let bare = Expired {
            phase: "csr",
            after: Duration::from_millis(1500),
            overall: Duration::from_secs(60),
            by_overall: false,
            own_limit: None,
            cause: None,
            stopped_early: false,
        };
        assert_eq!(bare.hint(), None);
        assert_eq!(
            bare.to_string(),
            "gave up in csr after 1.5s (overall deadline 1m0s): no answer within the phase's time"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("could not reach the API server: connection refused")]
    struct Refused;

    impl Classify for Refused {
        fn class(&self) -> Class {
            Class::Timeout
        }
        fn hint(&self) -> Option<String> {
            Some("check that port 6443 is open".into())
        }
    }

    #[test]
    fn an_own_limit_that_ran_out_is_named_instead_of_the_overall_deadline() {
        // --discovery-timeout 2s inside --timeout 10m: the flag's limit ended the phase.
        let d = Deadline::after(Duration::from_secs(600));
        let clock = d.phase("discovery", Duration::MAX);
        assert!(clock.by_overall, "the phase itself has no bound of its own");
        let e = clock.expired_own_limit(
            Some(Cause::of(Refused)),
            "--discovery-timeout",
            Duration::from_secs(2),
        );
        assert!(!e.by_overall);
        let text = e.to_string();
        assert!(
            text.starts_with("gave up in discovery after ")
                && text
                    .contains("(--discovery-timeout 2s, overall deadline 10m0s): could not reach"),
            "{text}"
        );
        let hint = e.hint().unwrap();
        assert!(
            !hint.contains("--timeout ") && !hint.contains("raise --timeout"),
            "{hint}"
        );
        assert_eq!(
            hint,
            "check that port 6443 is open; --discovery-timeout passed: raise it if this machine \
             needs longer to reach the cluster"
        );
        assert_eq!(e.class().exit_code(), 5);

        // --discovery-timeout 5m inside --timeout 1s: the overall deadline ended it.
        let d = Deadline::after(Duration::from_secs(1));
        let e = d.phase("discovery", Duration::MAX).expired_own_limit(
            Some(Cause::of(Refused)),
            "--discovery-timeout",
            Duration::from_secs(300),
        );
        assert!(e.by_overall);
        assert!(e.to_string().contains("(overall deadline 1s): "), "{e}");
        let hint = e.hint().unwrap();
        assert!(hint.contains("raise --timeout"), "{hint}");
        assert!(!hint.contains("--discovery-timeout"), "{hint}");

        // A limit equal to what was left, once the deadline has passed: the overall one.
        let gone = Deadline::after(Duration::ZERO);
        let e = gone.phase("discovery", Duration::MAX).expired_own_limit(
            None,
            "--discovery-timeout",
            Duration::ZERO,
        );
        assert!(e.by_overall);
    }

    #[test]
    fn a_phase_that_stopped_early_says_why_and_not_that_its_limit_passed() {
        let d = Deadline::after(Duration::from_secs(600));
        let e = d
            .phase("discovery", Duration::MAX)
            .expired_own_limit(
                Some(Cause::of(Refused)),
                "--discovery-timeout",
                Duration::from_secs(3),
            )
            .stopped_early();
        let text = e.to_string();
        assert!(
            text.contains(
                "the next attempt could only have started after --discovery-timeout 3s (overall deadline 10m0s): could not reach"
            ),
            "{text}"
        );
        let hint = e.hint().unwrap();
        assert!(!hint.contains("passed"), "{hint}");
        assert!(
            hint.ends_with("--discovery-timeout 3s left no room for another attempt: raise --discovery-timeout to give the server more time"),
            "{hint}"
        );
        assert_eq!(e.class().exit_code(), 5);
    }

    #[tokio::test]
    async fn run_cuts_a_phase_at_its_bound() {
        let d = Deadline::after(Duration::from_secs(60));
        let p = d.phase("cluster-config", Duration::from_millis(50));
        let started = Instant::now();
        let r = p.run(tokio::time::sleep(Duration::from_secs(30))).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let e = r.unwrap_err();
        assert_eq!(e.phase, "cluster-config");
        assert!(!e.by_overall, "its own 50 ms bound ended it");
        assert!(
            d.phase("wait-approval", Duration::from_secs(3600))
                .by_overall
        );
        assert!(e.after >= Duration::from_millis(50));
        assert_eq!(p.run(async { 7 }).await.unwrap(), 7);
    }
}
