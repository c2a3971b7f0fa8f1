//! The timeline's detail: what happened inside each phase and how long it took — each TCP
//! connect, TLS handshake and request, each module load, each wait and its reason (a retry
//! pause, the DHCP exchange, the kernel's random pool, a link's carrier).
//!
//! A step is recorded into one process-wide list; the phase that is running takes the steps
//! recorded since it began when it ends ([`crate::log::Phase`]), so every step lands in the
//! innermost phase around it, in `kubejoin: timeline …` and `result.json` alike. Steps recorded
//! outside any phase (PID 1's entropy check before its first phase) stay in the list and are
//! printed at the timeline's top level.
//!
//! Recording is on by default (the binary's runs are one join per process) and can be turned
//! off by a process that runs many joins side by side (the fleet benchmark), where the steps of
//! different joins would mix. Details never carry secrets: they name addresses, paths, modules
//! and statuses, never headers or bodies.

use serde::Serialize;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

static ON: AtomicBool = AtomicBool::new(true);
static GLOBAL: Recorder = Recorder::new();

/// Most steps kept: a bound for a process that loops (PID 1 retrying a stage forever).
const MAX_STEPS: usize = 4096;

/// Turns recording on or off for the whole process.
pub fn set_enabled(on: bool) {
    ON.store(on, Ordering::Relaxed);
    if !on {
        GLOBAL.clear();
    }
}

/// Whether steps are being recorded.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

#[derive(Debug, Clone)]
struct Recorded {
    seq: u64,
    kind: &'static str,
    detail: String,
    start: Instant,
    took: Duration,
}

/// One step as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What kind of step: `tcp-connect`, `tls-handshake`, `request`, `wait`, `module`, …
    pub step: &'static str,
    /// What it was about (`10.0.2.2:6443`, `GET /api/v1/… -> 200`, `entropy: …`).
    pub detail: String,
    /// Milliseconds from the start of its phase (or of the run, at the top level).
    pub at_ms: f64,
    pub ms: f64,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// A point in the list: the steps recorded after it are the ones a phase takes.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    seq: u64,
    at: Instant,
}

/// A list of steps (the process has one; tests make their own).
#[derive(Debug)]
struct Recorder {
    seq: AtomicU64,
    steps: Mutex<Vec<Recorded>>,
}

impl Recorder {
    const fn new() -> Recorder {
        Recorder {
            seq: AtomicU64::new(0),
            steps: Mutex::new(Vec::new()),
        }
    }

    fn clear(&self) {
        if let Ok(mut s) = self.steps.lock() {
            s.clear();
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            seq: self.seq.load(Ordering::Relaxed),
            at: Instant::now(),
        }
    }

    fn push(&self, kind: &'static str, detail: String, start: Instant, took: Duration) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.steps.lock() {
            if s.len() < MAX_STEPS {
                s.push(Recorded {
                    seq,
                    kind,
                    detail,
                    start,
                    took,
                });
            }
        }
    }

    fn take_since(&self, mark: Mark) -> Vec<Step> {
        let Ok(mut s) = self.steps.lock() else {
            return Vec::new();
        };
        let (mine, rest): (Vec<Recorded>, Vec<Recorded>) =
            s.drain(..).partition(|r| r.seq >= mark.seq);
        *s = rest;
        steps(mine, mark.at)
    }

    fn all(&self, origin: Instant) -> Vec<Step> {
        let list = self.steps.lock().map(|s| s.clone()).unwrap_or_default();
        steps(list, origin)
    }
}

/// The mark a phase takes when it begins.
pub fn mark() -> Mark {
    GLOBAL.mark()
}

/// Records a step that began at `start` and ends now.
pub fn record(kind: &'static str, detail: impl FnOnce() -> String, start: Instant) {
    record_took(kind, detail, start, start.elapsed());
}

/// Records a step that began at `start` and took `took`.
pub fn record_took(
    kind: &'static str,
    detail: impl FnOnce() -> String,
    start: Instant,
    took: Duration,
) {
    if enabled() {
        GLOBAL.push(kind, detail(), start, took);
    }
}

/// Takes the steps recorded since `mark`, times relative to it.
pub fn take_since(mark: Mark) -> Vec<Step> {
    GLOBAL.take_since(mark)
}

/// The steps no phase took (they happened outside every phase), times relative to `origin`.
pub fn unclaimed(origin: Instant) -> Vec<Step> {
    GLOBAL.all(origin)
}

/// In the order they ended (a request after the connect and handshake inside it); `at_ms` says
/// when each began.
fn steps(list: Vec<Recorded>, origin: Instant) -> Vec<Step> {
    list.into_iter()
        .map(|r| Step {
            step: r.kind,
            detail: r.detail,
            at_ms: if r.start >= origin {
                ms(r.start - origin)
            } else {
                -ms(origin - r.start)
            },
            ms: ms(r.took),
        })
        .collect()
}

/// A running step, recorded when finished (or dropped).
#[derive(Debug)]
pub struct Span {
    kind: &'static str,
    detail: Option<String>,
    start: Instant,
}

/// Starts a step.
pub fn span(kind: &'static str, detail: impl Into<String>) -> Span {
    Span {
        kind,
        detail: Some(detail.into()),
        start: Instant::now(),
    }
}

impl Span {
    /// Ends the step, its detail extended with `outcome` (`-> 200`, `failed: …`).
    pub fn finish(mut self, outcome: impl std::fmt::Display) {
        if let Some(d) = self.detail.take() {
            let kind = self.kind;
            record(kind, || format!("{d} {outcome}"), self.start);
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(d) = self.detail.take() {
            record(self.kind, || d, self.start);
        }
    }
}

/// Times `fut` as a step of `kind` whose detail is `detail` plus the outcome `judge` gives.
pub async fn timed<T>(
    kind: &'static str,
    detail: impl Into<String>,
    fut: impl Future<Output = T>,
    judge: impl FnOnce(&T) -> String,
) -> T {
    let s = span(kind, detail);
    let out = fut.await;
    s.finish(judge(&out));
    out
}

// ---- connections: TCP connect and TLS handshake, timed apart ---------------------------------

thread_local! {
    /// Set by [`Handshake::call`] while it calls the TLS connector, which calls the TCP
    /// connector synchronously ([`Connect::call`] picks it up): where the TCP connect reports
    /// when it finished, so the TLS handshake can be timed from then.
    static TCP_DONE: RefCell<Option<Arc<Mutex<Option<Instant>>>>> = const { RefCell::new(None) };
}

/// A TCP connector (hyper's `HttpConnector`) that records each connect.
#[derive(Debug, Clone)]
pub struct Connect<S>(pub S);

/// A TLS connector around a [`Connect`] that records each handshake (from the end of the TCP
/// connect to the end of the handshake).
#[derive(Debug, Clone)]
pub struct Handshake<S>(pub S);

type Boxed<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// `host:port` of `uri`, for a step's detail.
pub(crate) fn authority(uri: &http::Uri) -> String {
    uri.authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default()
}

impl<S> tower_service::Service<http::Uri> for Connect<S>
where
    S: tower_service::Service<http::Uri>,
    S::Future: Send + 'static,
    S::Response: 'static,
    S::Error: std::fmt::Display + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Boxed<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let done = TCP_DONE.with(|d| d.borrow_mut().take());
        let what = authority(&uri);
        let start = Instant::now();
        let fut = self.0.call(uri);
        Box::pin(async move {
            let r = fut.await;
            if let Some(d) = done {
                if let Ok(mut d) = d.lock() {
                    *d = Some(Instant::now());
                }
            }
            record(
                "tcp-connect",
                || match &r {
                    Ok(_) => what,
                    Err(e) => format!("{what} failed: {e}"),
                },
                start,
            );
            r
        })
    }
}

impl<S> tower_service::Service<http::Uri> for Handshake<S>
where
    S: tower_service::Service<http::Uri>,
    S::Future: Send + 'static,
    S::Response: 'static,
    S::Error: std::fmt::Display + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Boxed<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let done = Arc::new(Mutex::new(None));
        TCP_DONE.with(|d| *d.borrow_mut() = Some(done.clone()));
        let what = authority(&uri);
        let fut = self.0.call(uri);
        // Not picked up: the TLS connector did not call the TCP one at once.
        TCP_DONE.with(|d| d.borrow_mut().take());
        Box::pin(async move {
            let r = fut.await;
            let tcp_done = done.lock().ok().and_then(|d| *d);
            if let Some(start) = tcp_done {
                record(
                    "tls-handshake",
                    || match &r {
                        Ok(_) => what,
                        Err(e) => format!("{what} failed: {e}"),
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

    #[test]
    fn steps_land_in_the_phase_that_was_running() {
        let r = Recorder::new();
        let t0 = Instant::now();
        let outer = r.mark();
        r.push("wait", "before the inner phase".into(), t0, Duration::ZERO);
        let inner = r.mark();
        r.push(
            "module",
            "overlay".into(),
            Instant::now(),
            Duration::from_micros(1500),
        );
        r.push(
            "request",
            "GET /x -> 200".into(),
            Instant::now(),
            Duration::ZERO,
        );
        let got = r.take_since(inner);
        assert_eq!(
            got.iter()
                .map(|s| (s.step, s.detail.as_str()))
                .collect::<Vec<_>>(),
            vec![("module", "overlay"), ("request", "GET /x -> 200")]
        );
        assert_eq!(got[0].ms, 1.5);
        assert!(got.iter().all(|s| s.at_ms >= 0.0));
        let rest = r.take_since(outer);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].detail, "before the inner phase");
        assert!(r.all(t0).is_empty());
        assert_eq!(ms(Duration::from_micros(12_345)), 12.3);
    }
}
