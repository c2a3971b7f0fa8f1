//! The bootstrap's API calls under [`crate::http::retry`], within a phase's clock.
//!
//! Thousands of machines join at once after a power cut, and the API server sheds load with
//! 429 (`--max-requests-inflight`) or fails over with 503s and resets. A call that failed that
//! way is retried on [`crate::http::retry`]'s full-jitter schedule until the phase's clock runs out;
//! then the phase gives up with [`Error::GaveUp`], naming the phase and keeping the last
//! failure as the cause. Failures that retrying cannot heal (404, TLS verification, a Ready Node
//! of our name, a denied CSR…) end the phase at once, unchanged. A 401 or 403 is retried until it
//! persists ([`crate::http::retry::Persistence`]: an API server that has just restarted refuses valid
//! tokens for a moment), then ends the phase as [`Error::Persisted`].
//!
//! Each attempt is bounded by the time left in the phase (on top of the client's own 10 s
//! per-request timeout), so a request that hangs cannot overrun it. A 429 or 503 that carries
//! `Retry-After` is waited as the server said, plus jitter over at least as long again, wider
//! each time the same call is turned away (`crate::http::retry`), so a fleet told the same second
//! does not come back in lockstep; a `Retry-After` past the phase's clock ends the phase at
//! once. The API client itself never retries: this is the only policy.

use super::Error;
use crate::deadline::{Cause, PhaseClock};
use crate::http::retry::{self, Disposition, Env, Pacing, Pause, Policy, RealEnv, Retryable, Stop};
use crate::kube::WireFailure;
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

    /// Retry-After is a promise only on 429 and 503 (as in discovery's loop).
    fn pause(&self) -> Pause {
        match self {
            Error::Api {
                failure:
                    WireFailure::Status {
                        code: 429 | 503, ..
                    },
                retry_after_ms: Some(ms),
                ..
            } => Pause::RetryAfter(Duration::from_millis(u64::from(*ms))),
            Error::Api { failure, .. } => retry::pause_of(failure),
            _ => Pause::Backoff,
        }
    }

    fn reason(&self) -> String {
        self.to_string()
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
    op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    within_env(clock, policy, &mut RealEnv::new(), what, server, op).await
}

/// [`within`], the backoff carried over from the join's earlier calls ([`Pacing`]).
pub async fn within_paced<T, F, Fut>(
    clock: &PhaseClock,
    policy: &Policy,
    pacing: &Pacing,
    what: &str,
    server: &str,
    op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    within_env_paced(clock, policy, &mut RealEnv::new(), pacing, what, server, op).await
}

/// Waits a uniformly random part of the window [`retry::write_spread`] gives for the join's
/// write, within `clock`: the server's share of `pacing`'s last served round trip (less
/// `network`, the client's fastest TCP connect) times
/// [`retry::WRITE_SPREAD_ROUND_TRIPS`], at most `policy`'s [`Policy::round_trip_cap`]. Nothing
/// when the server answered quickly; otherwise one timeline `wait` step with the figures it
/// went by.
pub async fn spread_write(
    clock: &PhaseClock,
    policy: &Policy,
    pacing: &Pacing,
    network: Option<Duration>,
    what: &str,
) {
    let served = pacing.last_served();
    let window = retry::write_spread(served, network, policy.round_trip_cap());
    if window.is_zero() {
        return;
    }
    let pause = retry::jitter(window, RealEnv::new().random()).min(clock.remaining());
    let start = std::time::Instant::now();
    tokio::time::sleep(pause).await;
    crate::trace::record(
        "wait",
        || {
            let f = crate::time::duration::format;
            format!(
                "spreading {what} over {} (the last answer took {}, a TCP connect {}): a fleet's writes do not reach a busy API server at once",
                f(window),
                f(served.unwrap_or_default()),
                f(network.unwrap_or_default()),
            )
        },
        start,
    );
}

/// [`within`] with the retry loop's clock, sleep and random source given (tests: virtual time).
pub async fn within_env<T, F, Fut>(
    clock: &PhaseClock,
    policy: &Policy,
    env: &mut impl Env,
    what: &str,
    server: &str,
    op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    within_env_paced(clock, policy, env, &Pacing::new(), what, server, op).await
}

/// [`within_env`] with the join's [`Pacing`]. The phase's clock bounds the loop, except while
/// the server sheds load (429/503 with `Retry-After`): then the join's overall deadline does
/// ([`retry::Bounds`]).
pub async fn within_env_paced<T, F, Fut>(
    clock: &PhaseClock,
    policy: &Policy,
    env: &mut impl Env,
    pacing: &Pacing,
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
    let bounds = retry::Bounds {
        deadline: clock.at,
        shedding: clock.overall_at(),
    };
    let result = retry::retry_paced(
        bounds,
        policy,
        env,
        pacing,
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
                        retry_after_ms: None,
                    })
                })
            }
        },
        |e, attempt, pause| {
            crate::debug!(
                "{e}; retrying in {} (attempt {attempt})",
                crate::time::duration::format(pause)
            )
        },
    )
    .await;
    match result {
        Ok(v) => Ok(v),
        Err(g) if g.stop == Stop::Permanent => Err(g.last),
        Err(g) if matches!(g.stop, Stop::Persisted(_)) => {
            let Stop::Persisted(persisted) = g.stop else {
                return Err(g.last);
            };
            Err(Error::Persisted {
                source: Box::new(g.last),
                persisted,
            })
        }
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
        api_after(code, None)
    }

    fn api_after(code: u16, retry_after: Option<Duration>) -> Error {
        Error::Api {
            action: "getting ConfigMap kube-system/kubelet-config".into(),
            server: "https://10.0.0.1:6443".into(),
            failure: WireFailure::Status {
                code,
                reason: "TooManyRequests".into(),
                message: String::new(),
            },
            retry_after_ms: retry_after.map(super::super::millis),
        }
    }

    const FAST: Policy = Policy::new(Duration::from_millis(1), Duration::from_millis(5));

    #[test]
    fn overload_and_transport_are_transient_refusals_are_not() {
        assert_eq!(api(429).disposition(), Disposition::Transient);
        assert_eq!(api(503).disposition(), Disposition::Transient);
        assert_eq!(api(401).disposition(), Disposition::Refused(401));
        assert_eq!(api(403).disposition(), Disposition::Refused(403));
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
            Err::<(), _>(Error::NodeExists { name: "n".into() })
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::NodeExists { .. }));
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

    #[tokio::test]
    async fn a_refusal_is_retried_until_it_persists_then_reported_as_such() {
        use crate::error::Classify as _;
        use crate::http::retry::test_env::Virtual;
        let d = Deadline::after(Duration::from_secs(60));
        let clock = d.phase("cluster-config", Duration::from_secs(30));
        // A restart window: two 401s, then the answer.
        let env = Virtual::new(u64::MAX);
        let tries = AtomicU32::new(0);
        let v = within_env(
            &clock,
            &API_POLICY,
            &mut env.clone(),
            "reading",
            "https://x",
            || async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(api(401)),
                    _ => Ok(5),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 5);

        // A token that is really refused: retried over the rule's span, then final.
        let env = Virtual::new(u64::MAX);
        let tries = AtomicU32::new(0);
        let e = within_env(
            &clock,
            &API_POLICY,
            &mut env.clone(),
            "reading",
            "https://x",
            || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(api(401))
            },
        )
        .await
        .unwrap_err();
        let Error::Persisted { source, persisted } = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(**source, Error::Api { .. }));
        assert_eq!(persisted.attempts, tries.load(Ordering::SeqCst));
        assert!(persisted.over >= crate::http::retry::REFUSALS.over);
        let total: Duration = env.pauses().iter().sum();
        assert_eq!(total, persisted.over);
        assert_eq!(e.class(), crate::error::Class::Rejected);
        assert!(e.hint().unwrap().contains("kubeadm token create"));
        let text = e.to_string();
        assert!(
            text.starts_with(
                "getting ConfigMap kube-system/kubelet-config at https://10.0.0.1:6443: the server answered 401"
            )
                && text.contains(&format!(
                    "(it persisted: 401 Unauthorized on {} attempts over ",
                    persisted.attempts
                )),
            "{text}"
        );
    }

    #[test]
    fn retry_after_is_a_pause_only_on_429_and_503() {
        let two = Some(Duration::from_secs(2));
        assert_eq!(
            api_after(429, two).pause(),
            Pause::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            api_after(503, two).pause(),
            Pause::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(api_after(500, two).pause(), Pause::Backoff);
        assert_eq!(api(429).pause(), Pause::Backoff);
    }

    #[tokio::test]
    async fn a_429_with_retry_after_is_waited_as_the_server_said() {
        use crate::http::retry::test_env::Virtual;
        let d = Deadline::after(Duration::from_secs(60));
        let clock = d.phase("cluster-config", Duration::from_secs(30));
        // random 0: no jitter on top of what the server asked for.
        let env = Virtual::new(0);
        let tries = AtomicU32::new(0);
        let v = within_env(
            &clock,
            &API_POLICY,
            &mut env.clone(),
            "reading",
            "https://x",
            || async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(api_after(429, Some(Duration::from_secs(3)))),
                    1 => Err(api_after(503, Some(Duration::from_secs(7)))),
                    _ => Ok(7),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 7);
        assert_eq!(
            env.pauses(),
            vec![Duration::from_secs(3), Duration::from_secs(7)],
            "the pauses are exactly the server's Retry-After, not the 250 ms backoff"
        );

        // Jitter over the Retry-After's own length is added (the backoff's first ceiling,
        // 250 ms, is shorter), so a fleet does not come back at once.
        let env = Virtual::new(u64::MAX);
        let tries = AtomicU32::new(0);
        within_env(
            &clock,
            &API_POLICY,
            &mut env.clone(),
            "reading",
            "https://x",
            || async {
                if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(api_after(429, Some(Duration::from_secs(3))))
                } else {
                    Ok(())
                }
            },
        )
        .await
        .unwrap();
        let p = env.pauses();
        assert_eq!(p.len(), 1);
        assert!(
            p[0] > Duration::from_millis(5999) && p[0] <= Duration::from_secs(6),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn a_retry_after_past_the_phase_clock_ends_the_phase_at_once() {
        use crate::http::retry::test_env::Virtual;
        let d = Deadline::after(Duration::from_secs(60));
        let clock = d.phase("csr", Duration::from_secs(5));
        let env = Virtual::new(0);
        let tries = AtomicU32::new(0);
        let e = within_env(
            &clock,
            &API_POLICY,
            &mut env.clone(),
            "posting",
            "https://x",
            || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(api_after(429, Some(Duration::from_secs(120))))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(tries.load(Ordering::SeqCst), 1);
        assert!(
            env.pauses().is_empty(),
            "no sleep towards a time past the clock"
        );
        assert!(matches!(e, Error::GaveUp(_)), "{e:?}");
        assert!(e.to_string().contains("429"), "{e}");
    }
}
