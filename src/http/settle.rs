//! The first connection to a server that was refusing connections a moment ago waits before it
//! is used.
//!
//! A kube-apiserver that has just started listening is not ready to serve: its post-start hooks
//! start the shared informers only after the socket is open (`start-kube-apiserver-informers`),
//! so until the Secret and RBAC caches are filled it answers a valid bootstrap token with 401 and
//! the anonymous cluster-info GET with 403 (see [`super::retry`], "Refusals while the API server
//! restarts"). A client that was probing a refused port (a restart, a site powering up with its
//! control plane) sees the port open at the very start of that window, and a request sent at
//! once buys a refusal: one more request for the server to answer, and one step towards the
//! refusal rule that ends a join.
//!
//! So a connector wrapped in [`Settle`] remembers whether its last connect was refused; the
//! next connect that succeeds waits [`pause`] (0.5–1 s, the same as the retry loop's pause
//! after a first refusal, [`super::retry::PROBE_CEILING`] halved to whole) before the
//! connection is handed on to the TLS handshake and the request. Any other connect goes on at
//! once: the healthy path pays nothing. Measured with `scripts/bench`'s restart row (1,000 nodes,
//! the control plane down 2–2.75 s then 0.5 s of start-up refusals; see README "Performance").
//!
//! The benchmark's naive client is built without it (`kube::Timeouts::settle`): it stands for
//! a client that sends as soon as it can.
//!
//! The same layer times each successful TCP connect (the kernel answers a SYN without the API
//! server's process: the network's round trip, plus name resolution for a host name) and keeps
//! the fastest in the client's [`Link`], on or off: the retry policy tells the server's own
//! share of an answer's time from the network's by it (`super::retry::write_spread`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The wait after a refused port opened: half of [`super::retry::PROBE_CEILING`] to all of it,
/// from `random` (a uniformly random `u64`).
pub fn pause(random: u64) -> Duration {
    let half = super::retry::PROBE_CEILING / 2;
    half + super::retry::jitter(half, random)
}

/// What a client's connector has learnt of the link to its server, shared by the client's clones.
#[derive(Debug)]
pub struct Link {
    /// The last connect was refused.
    refused: AtomicBool,
    /// The fastest successful TCP connect so far, in nanoseconds (`u64::MAX`: none yet).
    fastest_connect_ns: AtomicU64,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            refused: AtomicBool::new(false),
            fastest_connect_ns: AtomicU64::new(u64::MAX),
        }
    }
}

impl Link {
    /// The fastest successful TCP connect so far: about the network's round trip to the server.
    pub fn fastest_connect(&self) -> Option<Duration> {
        match self.fastest_connect_ns.load(Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    fn connected_in(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX - 1);
        self.fastest_connect_ns.fetch_min(ns, Ordering::Relaxed);
    }
}

/// A connector (`S`) whose first successful connect after a refused one waits [`pause`], and
/// which times every successful connect into its [`Link`].
#[derive(Debug, Clone)]
pub struct Settle<S> {
    inner: S,
    /// Whether a connect after a refused one waits (off: every connect goes on at once).
    on: bool,
    link: Arc<Link>,
}

impl<S> Settle<S> {
    /// `on: false` passes every connect through unchanged (it is still timed into `link`).
    pub fn new(inner: S, on: bool, link: Arc<Link>) -> Settle<S> {
        Settle { inner, on, link }
    }
}

type Boxed<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S> tower_service::Service<http::Uri> for Settle<S>
where
    S: tower_service::Service<http::Uri>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: std::error::Error + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Boxed<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        // The timeline's detail, only when the layer is on (every connect passes here).
        let what = self.on.then(|| crate::trace::authority(&uri));
        let start = Instant::now();
        // Called here, not in the future: the connect starts now, as the caller expects.
        let fut = self.inner.call(uri);
        let link = Arc::clone(&self.link);
        Box::pin(async move {
            let r = fut.await;
            if r.is_ok() {
                link.connected_in(start.elapsed());
            }
            if what.is_none() {
                return r;
            }
            let flag = &link.refused;
            let wait = match &r {
                Err(e) => {
                    flag.store(
                        super::wire::io_kind_in_chain(e, std::io::ErrorKind::ConnectionRefused),
                        Ordering::Relaxed,
                    );
                    None
                }
                Ok(_) => flag.swap(false, Ordering::Relaxed).then(|| {
                    use super::retry::Env;
                    pause(super::retry::RealEnv::new().random())
                }),
            };
            if let Some(d) = wait {
                let start = Instant::now();
                tokio::time::sleep(d).await;
                crate::trace::record(
                    "wait",
                    || {
                        format!("{} refused connections until now: letting a starting API server fill its caches before the first request", what.unwrap_or_default())
                    },
                    start,
                );
            }
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use tower_service::Service;

    /// A connector answering from a script: `Err(kind)` or `Ok(())`.
    #[derive(Clone)]
    struct Scripted(Arc<Mutex<VecDeque<Result<(), std::io::ErrorKind>>>>);

    impl Service<http::Uri> for Scripted {
        type Response = ();
        type Error = std::io::Error;
        type Future = Boxed<(), std::io::Error>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Uri) -> Self::Future {
            let next = self.0.lock().unwrap().pop_front().unwrap_or(Ok(()));
            Box::pin(async move { next.map_err(std::io::Error::from) })
        }
    }

    fn settle(script: Vec<Result<(), std::io::ErrorKind>>, on: bool) -> Settle<Scripted> {
        Settle::new(
            Scripted(Arc::new(Mutex::new(script.into()))),
            on,
            Arc::new(Link::default()),
        )
    }

    /// How long each connect of `s` took, with its outcome.
    fn connects(s: &mut Settle<Scripted>, n: usize) -> Vec<(bool, Duration)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        (0..n)
            .map(|_| {
                let t = Instant::now();
                let r = rt.block_on(s.call(http::Uri::from_static("https://10.0.0.1:6443")));
                (r.is_ok(), t.elapsed())
            })
            .collect()
    }

    const QUICK: Duration = Duration::from_millis(200);

    #[test]
    fn pause_is_half_the_probe_ceiling_to_all_of_it() {
        assert_eq!(pause(0), Duration::from_millis(500));
        assert_eq!(pause(u64::MAX / 2 + 1), Duration::from_millis(750));
        assert!(pause(u64::MAX) <= Duration::from_secs(1));
        assert!(pause(u64::MAX) > Duration::from_millis(999));
    }

    #[test]
    fn the_first_connect_after_a_refused_one_waits_and_only_that_one() {
        use std::io::ErrorKind::ConnectionRefused;
        let mut s = settle(
            vec![
                Err(ConnectionRefused),
                Err(ConnectionRefused),
                Ok(()),
                Ok(()),
            ],
            true,
        );
        let got = connects(&mut s, 4);
        assert!(!got[0].0 && !got[1].0 && got[2].0 && got[3].0, "{got:?}");
        // The refusals themselves come back at once.
        assert!(got[0].1 < QUICK && got[1].1 < QUICK, "{got:?}");
        // The port opened: at least half a second before the connection is handed on.
        assert!(got[2].1 >= Duration::from_millis(500), "{got:?}");
        assert!(got[2].1 < Duration::from_secs(3), "{got:?}");
        // The next one is a plain connect again.
        assert!(got[3].1 < QUICK, "{got:?}");
    }

    #[test]
    fn other_failures_and_a_healthy_path_never_wait() {
        use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, TimedOut};
        // Refused, then another failure: the refusal is no longer the last word.
        let mut s = settle(
            vec![
                Err(ConnectionRefused),
                Err(TimedOut),
                Ok(()),
                Err(ConnectionReset),
                Ok(()),
            ],
            true,
        );
        let got = connects(&mut s, 5);
        assert!(got.iter().all(|(_, t)| *t < QUICK), "{got:?}");
        assert_eq!(got.iter().filter(|(ok, _)| *ok).count(), 2);
    }

    #[test]
    fn the_link_keeps_the_fastest_successful_connect_on_or_off() {
        use std::io::ErrorKind::ConnectionRefused;
        for on in [true, false] {
            let mut s = settle(vec![Err(ConnectionRefused), Ok(()), Ok(())], on);
            assert_eq!(s.link.fastest_connect(), None, "nothing connected yet");
            let got = connects(&mut s, 1);
            assert!(!got[0].0);
            assert_eq!(s.link.fastest_connect(), None, "a refusal is no round trip");
            // The next connect succeeds (after the settle's wait when on): the connect itself
            // is timed, not the wait.
            let got = connects(&mut s, 2);
            let fastest = s.link.fastest_connect().expect("timed");
            assert!(fastest < QUICK, "{fastest:?} {got:?}");
        }
        // The fastest stays the fastest.
        let link = Link::default();
        link.connected_in(Duration::from_millis(30));
        link.connected_in(Duration::from_millis(10));
        link.connected_in(Duration::from_millis(20));
        assert_eq!(link.fastest_connect(), Some(Duration::from_millis(10)));
    }

    #[test]
    fn off_it_passes_every_connect_through() {
        use std::io::ErrorKind::ConnectionRefused;
        let mut s = settle(vec![Err(ConnectionRefused), Ok(())], false);
        let got = connects(&mut s, 2);
        assert!(!got[0].0 && got[1].0, "{got:?}");
        assert!(got.iter().all(|(_, t)| *t < QUICK), "{got:?}");
    }
}
