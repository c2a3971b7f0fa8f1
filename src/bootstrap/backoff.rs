//! Retrying the bootstrap's API calls within a phase's time.
//!
//! Thousands of machines join at once after a power cut, and the API server sheds load with
//! 429 (`--max-requests-inflight`) or fails over with 503s and resets. A request that failed
//! that way is retried after a pause drawn uniformly from `[0, min(cap, base·2^n)]` ("full
//! jitter": clients that failed together do not come back together), until the phase's clock
//! runs out; then the phase gives up with the last failure as the cause. Failures that retrying
//! cannot heal (401, 403, 404, TLS verification, a denied CSR…) end the phase at once.
//!
//! Schedule with the defaults (base 250 ms, cap 8 s): pauses of at most 0.25, 0.5, 1, 2, 4, 8,
//! 8, … s, 4 s on average once capped.

use super::Error;
use crate::api::WireFailure;
use crate::deadline::{Cause, PhaseClock};
use std::future::Future;
use std::time::Duration;

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(8),
        }
    }
}

impl Backoff {
    /// The longest pause after the `attempt`-th failure (from 0).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A pause after the `attempt`-th failure: uniform in `[0, ceiling]`.
    pub fn pause(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(unit_random())
    }
}

/// A uniform number in `[0, 1)`. Jitter only needs different machines (and tasks) to disagree,
/// not cryptographic quality: std's `RandomState` is seeded from the OS per thread and
/// advanced per instance, and a counter makes every draw distinct.
fn unit_random() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether retrying `e` may succeed: overload, server errors and transport failures.
pub fn is_transient(e: &Error) -> bool {
    match e {
        Error::Api { failure, .. } => match failure {
            WireFailure::Status { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            WireFailure::Refused | WireFailure::TimedOut | WireFailure::Transport(_) => true,
            WireFailure::TlsVerify(_) => false,
        },
        _ => false,
    }
}

/// The retry state of one phase: its clock, the schedule, and the last failure (kept as the
/// cause when the phase gives up).
#[derive(Debug)]
pub struct Retry<'a> {
    clock: &'a PhaseClock,
    policy: Backoff,
    attempt: u32,
    last: Option<Error>,
}

impl<'a> Retry<'a> {
    pub fn new(clock: &'a PhaseClock, policy: Backoff) -> Self {
        Self {
            clock,
            policy,
            attempt: 0,
            last: None,
        }
    }

    /// Runs one attempt, cut at the clock's end (then [`Error::GaveUp`] with the last failure),
    /// so a request that hangs cannot overrun the phase.
    pub async fn attempt<F: Future>(&mut self, fut: F) -> Result<F::Output, Error> {
        match self.clock.run(fut).await {
            Ok(out) => Ok(out),
            Err(_) => Err(Error::GaveUp(
                self.clock.expired(self.last.take().map(Cause::of)),
            )),
        }
    }

    /// After a failed attempt: pauses and returns `Ok` when another attempt is worth it;
    /// otherwise returns the error to stop with (`e` itself when retrying cannot heal it,
    /// [`Error::GaveUp`] when the next pause would outlast the phase).
    pub async fn after(&mut self, e: Error) -> Result<(), Error> {
        if !is_transient(&e) {
            return Err(e);
        }
        let pause = self.policy.pause(self.attempt);
        if pause >= self.clock.remaining() {
            return Err(Error::GaveUp(self.clock.expired(Some(Cause::of(e)))));
        }
        crate::debug!(
            "{e}; retrying in {} (attempt {})",
            crate::log::fmt_ms(pause),
            self.attempt + 1
        );
        tokio::time::sleep(pause).await;
        self.attempt = self.attempt.saturating_add(1);
        self.last = Some(e);
        Ok(())
    }
}

/// Runs `op` until it succeeds, fails for good, or `clock` runs out (then [`Error::GaveUp`],
/// keeping the last failure as the cause).
pub async fn retrying<T, F, Fut>(clock: &PhaseClock, policy: &Backoff, mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut retry = Retry::new(clock, *policy);
    loop {
        match retry.attempt(op()).await? {
            Ok(v) => return Ok(v),
            Err(e) => retry.after(e).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::Deadline;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api(code: u16) -> Error {
        Error::Api {
            action: "getting ConfigMap kube-system/kubelet-config".into(),
            server: "https://10.0.0.1:6443".into(),
            failure: WireFailure::Status {
                code,
                reason: "TooManyRequests".into(),
                message: String::new(),
            },
        }
    }

    #[test]
    fn ceilings_double_up_to_the_cap_and_pauses_stay_below() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(250));
        assert_eq!(b.ceiling(3), Duration::from_secs(2));
        assert_eq!(b.ceiling(10), Duration::from_secs(8));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(8));
        let pauses: Vec<Duration> = (0..200).map(|_| b.pause(5)).collect();
        assert!(pauses.iter().all(|p| *p <= Duration::from_secs(8)));
        // Jittered: not all equal.
        assert!(pauses.iter().any(|p| *p != pauses[0]));
    }

    #[test]
    fn overload_and_transport_are_transient_refusals_are_not() {
        assert!(is_transient(&api(429)));
        assert!(is_transient(&api(503)));
        assert!(!is_transient(&api(401)));
        assert!(!is_transient(&api(403)));
        assert!(!is_transient(&Error::NodeExists { name: "n".into() }));
    }

    #[tokio::test]
    async fn retries_until_success() {
        let d = Deadline::after(Duration::from_secs(30));
        let clock = d.phase("cluster-config", Duration::from_secs(10));
        let tries = AtomicU32::new(0);
        let fast = Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        };
        let v = retrying(&clock, &fast, || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(api(429))
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 7);
        assert_eq!(tries.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_at_the_clock_with_the_last_cause_and_stops_on_fatal() {
        let d = Deadline::after(Duration::from_secs(30));
        let clock = d.phase("csr", Duration::from_millis(200));
        let fast = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(20),
        };
        let e = retrying(&clock, &fast, || async { Err::<(), _>(api(503)) })
            .await
            .unwrap_err();
        let Error::GaveUp(x) = &e else { panic!("{e:?}") };
        assert_eq!(x.phase, "csr");
        assert!(e.to_string().starts_with("gave up in csr after "), "{e}");
        assert!(e.to_string().contains("503"), "{e}");

        let tries = AtomicU32::new(0);
        let e = retrying(&clock, &fast, || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(api(403))
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Api { .. }));
        assert_eq!(tries.load(Ordering::SeqCst), 1);

        // A request that hangs is cut at the clock.
        let clock = d.phase("csr", Duration::from_millis(50));
        let e = retrying(&clock, &fast, || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), Error>(())
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::GaveUp(_)), "{e:?}");
    }
}
