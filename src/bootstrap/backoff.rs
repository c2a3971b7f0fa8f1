//! The bootstrap's API calls under [`crate::retry`], within a phase's clock.
//!
//! Thousands of machines join at once after a power cut, and the API server sheds load with
//! 429 (`--max-requests-inflight`) or fails over with 503s and resets. A call that failed that
//! way is retried on [`crate::retry`]'s full-jitter schedule until the phase's clock runs out;
//! then the phase gives up with [`Error::GaveUp`], naming the phase and keeping the last
//! failure as the cause. Failures that retrying cannot heal (401, 403, 404, TLS verification, a
//! Ready Node of our name, a denied CSR…) end the phase at once, unchanged.
//!
//! Each attempt is bounded by the time left in the phase (on top of the client's own 10 s
//! per-request timeout), so a request that hangs cannot overrun it. `Retry-After` cannot be
//! honoured here: kube's error type does not keep response headers, so a 429 backs off on the
//! schedule.

use super::Error;
use crate::api::WireFailure;
use crate::deadline::{Cause, PhaseClock};
use crate::retry::{self, Disposition, Policy, RealEnv, Retryable, Stop};
use std::future::Future;
use std::time::Duration;

/// The schedule of the bootstrap's API phases: pauses of at most 0.25, 0.5, 1, 2, 4, 4, … s
/// (2 s on average once capped), so a shedding API server sees each waiting machine about
/// every 2 s rather than every kubeadm-like 500 ms.
pub const API_POLICY: Policy = Policy::new(Duration::from_millis(250), Duration::from_secs(4));

impl Retryable for Error {
    fn disposition(&self) -> Disposition {
        match self {
            Error::Api { failure, .. } => retry::classify(failure),
            _ => Disposition::Permanent,
        }
    }
}

/// Runs `op` until it succeeds, fails for good (that error, unchanged), or `clock` runs out
/// ([`Error::GaveUp`] with the last failure). `what` and `server` describe an attempt that the
/// clock cut short ("reading the cluster configuration at https://…: timed out").
pub async fn within<T, F, Fut>(
    clock: &PhaseClock,
    policy: &Policy,
    what: &str,
    server: &str,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    // Whether the last attempt was cut by the clock rather than answered: the failure before it
    // is then the better cause ("503", not "timed out" after a last try that had 5 ms).
    let cut = std::sync::atomic::AtomicBool::new(false);
    let result = retry::retry_notify(
        clock.at,
        policy,
        &mut RealEnv::new(),
        |attempt| {
            let fut = op();
            let cut = &cut;
            async move {
                let r = tokio::time::timeout(attempt.time_left, fut).await;
                cut.store(r.is_err(), std::sync::atomic::Ordering::Relaxed);
                r.unwrap_or_else(|_| {
                    Err(Error::Api {
                        action: what.to_string(),
                        server: server.to_string(),
                        failure: WireFailure::TimedOut,
                    })
                })
            }
        },
        |e, attempt, pause| {
            crate::debug!(
                "{e}; retrying in {} (attempt {attempt})",
                crate::log::fmt_ms(pause)
            )
        },
    )
    .await;
    match result {
        Ok(v) => Ok(v),
        Err(g) if g.stop == Stop::Permanent => Err(g.last),
        Err(g) => {
            let last = match g.previous {
                Some(p) if cut.load(std::sync::atomic::Ordering::Relaxed) => p,
                _ => g.last,
            };
            Err(Error::GaveUp(clock.expired(Some(Cause::of(last)))))
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

    const FAST: Policy = Policy::new(Duration::from_millis(1), Duration::from_millis(5));

    #[test]
    fn overload_and_transport_are_transient_refusals_are_not() {
        assert_eq!(api(429).disposition(), Disposition::Transient);
        assert_eq!(api(503).disposition(), Disposition::Transient);
        assert_eq!(api(401).disposition(), Disposition::Permanent);
        assert_eq!(api(403).disposition(), Disposition::Permanent);
        assert_eq!(
            Error::NodeExists { name: "n".into() }.disposition(),
            Disposition::Permanent
        );
        assert_eq!(API_POLICY.ceiling(0), Duration::from_millis(250));
        assert_eq!(API_POLICY.ceiling(10), Duration::from_secs(4));
    }

    #[tokio::test]
    async fn retries_until_success() {
        let d = Deadline::after(Duration::from_secs(30));
        let clock = d.phase("cluster-config", Duration::from_secs(10));
        let tries = AtomicU32::new(0);
        let v = within(&clock, &FAST, "reading", "https://x", || async {
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
    async fn gives_up_at_the_clock_with_the_last_cause_and_stops_on_permanent() {
        let d = Deadline::after(Duration::from_secs(30));
        let clock = d.phase("csr", Duration::from_millis(200));
        let e = within(&clock, &FAST, "posting", "https://x", || async {
            Err::<(), _>(api(503))
        })
        .await
        .unwrap_err();
        let Error::GaveUp(x) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(x.phase, "csr");
        assert!(e.to_string().starts_with("gave up in csr after "), "{e}");
        assert!(e.to_string().contains("503"), "{e}");
        use crate::error::Classify as _;
        assert_eq!(e.class(), crate::error::Class::Timeout);

        let tries = AtomicU32::new(0);
        let e = within(&clock, &FAST, "posting", "https://x", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(api(403))
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Api { .. }));
        assert_eq!(tries.load(Ordering::SeqCst), 1);

        // A request that hangs is cut at the clock, and named.
        let clock = d.phase("cluster-config", Duration::from_millis(50));
        let e = within(
            &clock,
            &FAST,
            "getting ConfigMap kube-system/kubelet-config",
            "https://x",
            || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), Error>(())
            },
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "gave up in cluster-config after 50ms (overall deadline 30s): getting ConfigMap \
                 kube-system/kubelet-config at https://x: timed out"
            ) || e
                .to_string()
                .contains("getting ConfigMap kube-system/kubelet-config at https://x: timed out"),
            "{e}"
        );
    }
}
