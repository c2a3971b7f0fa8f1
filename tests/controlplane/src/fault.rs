//! Fault injection: the ways a real control plane (or the network in front of it) misbehaves,
//! on demand, so that clients can be tested against them. Every fault is bounded: counted
//! faults stop after their budget, a stall ends after its `max`, a down period ends.
//!
//! | fault | what the client sees |
//! |---|---|
//! | [`Faults::down_for`] | connections refused (port bound, not listening) or reset, then a normal server |
//! | [`Action::Status`] | a `Status` 500/503/429/… with an optional `Retry-After`, instead of the answer |
//! | [`Action::ResetMidBody`] | headers and half the body, then a TCP reset |
//! | [`Action::Stall`] | the request is read and never answered; the connection closes after `max` |
//! | [`Action::Delay`] | the real answer, `by` later (a busy API server answering slowly) |
//! | [`Action::TruncateJson`] | a complete HTTP message whose JSON body is cut in half |
//! | [`Action::Redirect`] | a 301/302/307/308 to another `Location` |
//! | [`Action::Oversize`] | a 200 whose body is `bytes` long, produced lazily (never held in memory) |
//! | [`Faults::watch_cut`] | every CSR watch stream ends after M events (cleanly or abruptly) |
//! | [`Faults::certificate_delay`] | the certificate is issued this long after the `Approved` condition |
//! | [`Faults::max_in_flight`] | 429 + `Retry-After` beyond N concurrent reads or M concurrent writes, like `--max-requests-inflight` / `--max-mutating-requests-inflight` (see [`InFlightLimit`]) |
//! | [`Faults::startup_window`] | for N ms after the server starts listening (at start, after `down_for`, after each restart): 401 to every bearer token, 403 to anonymous and certificate users (except `system:masters`), with kube-apiserver's bodies |
//! | [`Faults::no_date_header`] | every answer without its `Date` header (a proxy that strips it; kube-apiserver always sends one) |
//! | [`Faults::restarts`] | the server stops (open connections closed, the port refusing), then listens again after N s with the same CA, tokens and objects (CSRs, approvals, ConfigMaps) |
//!
//! The startup window reproduces what a real kube-apiserver answers right after it starts
//! listening: its post-start hooks start the shared informers only then, so the bootstrap-token
//! authenticator's Secret lister is still empty (a valid token is "not found": 401, the body of
//! every 401) and the RBAC authorizer has no bindings yet (403 with the ordinary Forbidden
//! message and no reason, even for the anonymous cluster-info GET); only the `system:masters`
//! superuser check, which needs no cache, passes. A restart is what an upgrade, an HA fail-over
//! or a power cut does: the process goes away with its connections, the port refuses, and a new
//! process comes up on the same etcd, so nothing stored changes.
//!
//! Request faults act before authentication, as a load balancer or a failing apiserver would,
//! so a faulted request is recorded with an empty `user`; [`crate::RequestRecord::fault`] names
//! the fault and [`crate::RequestRecord::authorization`] still says whether credentials were sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What goes wrong, and when. `Faults::default()` is a healthy server.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// For this long after [`crate::start`], no connection is served: the port is bound (so it
    /// stays ours) but not listening, so connections are refused; then the server comes up.
    pub down_for: Duration,
    /// While down, accept each connection and reset it (RST) instead of refusing it: what a
    /// load balancer with no healthy backend often does.
    pub down_mode: DownMode,
    /// Per-request faults. A request gets the first one whose path matches and whose budget is
    /// not spent; the others are not consulted (nor charged).
    pub requests: Vec<RequestFault>,
    /// Every CSR watch stream ends after this many events.
    pub watch_cut: Option<WatchCut>,
    /// The csrsigning controller issues the certificate this long after the CSR was approved:
    /// two separate MODIFIED events (Approved, then certificate), as on a busy controller.
    pub certificate_delay: Duration,
    /// More concurrent requests than this (two pools, watches excluded, as in kube-apiserver)
    /// get 429.
    pub max_in_flight: Option<InFlightLimit>,
    /// For this long after the server starts listening — at [`crate::start`], after `down_for`,
    /// and after every restart — bearer tokens get 401 and everyone else but `system:masters`
    /// 403, as from a kube-apiserver whose caches are not synced yet (see the module doc).
    pub startup_window: Duration,
    /// Restarts of the server, each once (see [`Restart`]); [`crate::Handle::restart`] restarts
    /// it on demand.
    pub restarts: Vec<Restart>,
    /// Every answer leaves out its HTTP `Date` header. A real kube-apiserver always sends
    /// `Date` (Go's net/http server adds it to every response); this is a fault model of what
    /// sits in front of it, e.g. a proxy or load balancer that strips it, so that a client
    /// taking the time from `Date` (kubejoin's verified-Date time source) can be tested
    /// without one.
    pub no_date_header: bool,
}

/// One restart: the server stops listening (open connections are closed, new ones refused),
/// then listens again on the same port after `down`, with the same state; the startup window
/// starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub trigger: RestartTrigger,
    /// How long connections are refused.
    pub down: Duration,
}

/// What makes a [`Restart`] happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartTrigger {
    /// This long after the server first started listening.
    After(Duration),
    /// The `nth` (from 1) request whose path (query excluded) starts with `path_prefix`: it is
    /// cut unanswered, with every other open connection, as a process that is killed cuts them.
    Request { path_prefix: String, nth: u64 },
}

impl Restart {
    /// A restart `after` the server came up, down for `down`.
    pub fn after(after: Duration, down: Duration) -> Restart {
        Restart {
            trigger: RestartTrigger::After(after),
            down,
        }
    }

    /// A restart on the first request under `path_prefix`, down for `down`.
    pub fn on_request(path_prefix: &str, down: Duration) -> Restart {
        Restart {
            trigger: RestartTrigger::Request {
                path_prefix: path_prefix.to_string(),
                nth: 1,
            },
            down,
        }
    }

    /// On the `nth` matching request instead of the first.
    pub fn nth(mut self, n: u64) -> Restart {
        if let RestartTrigger::Request { nth, .. } = &mut self.trigger {
            *nth = n.max(1);
        }
        self
    }
}

/// A request to restart, sent to the accept loop; `done` hears once the port refuses.
#[derive(Debug)]
pub(crate) struct RestartRequest {
    pub down: Duration,
    pub done: Option<std::sync::mpsc::Sender<()>>,
}

/// When the server is up, its restart triggers, and the channel to its accept loop.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    window: Duration,
    /// When the server last started listening; `None` while it does not.
    up_since: std::sync::Mutex<Option<std::time::Instant>>,
    /// The request-triggered restarts, with the matching requests seen so far by each.
    on_request: Vec<(String, u64, Duration, AtomicU64)>,
    restarts_done: AtomicU64,
    tx: tokio::sync::mpsc::UnboundedSender<RestartRequest>,
}

impl Lifecycle {
    pub(crate) fn new(
        faults: &Faults,
    ) -> (
        Lifecycle,
        tokio::sync::mpsc::UnboundedReceiver<RestartRequest>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let on_request = faults
            .restarts
            .iter()
            .filter_map(|r| match &r.trigger {
                RestartTrigger::Request { path_prefix, nth } => {
                    Some((path_prefix.clone(), *nth, r.down, AtomicU64::new(0)))
                }
                RestartTrigger::After(_) => None,
            })
            .collect();
        let lifecycle = Lifecycle {
            window: faults.startup_window,
            up_since: std::sync::Mutex::new(None),
            on_request,
            restarts_done: AtomicU64::new(0),
            tx,
        };
        (lifecycle, rx)
    }

    /// The server serves from `at` on (now, or when a resetting down period ends): its startup
    /// window starts then.
    pub(crate) fn up(&self, at: std::time::Instant) {
        *self.up_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// The server stopped listening (a restart).
    pub(crate) fn down(&self) {
        *self.up_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.restarts_done.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether a request arriving now falls in the startup window.
    pub(crate) fn in_startup_window(&self) -> bool {
        if self.window.is_zero() {
            return false;
        }
        self.up_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < self.window)
    }

    /// Restarts done so far.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts_done.load(Ordering::SeqCst)
    }

    /// Asks the accept loop to restart; `false` when the server has gone.
    pub(crate) fn request(
        &self,
        down: Duration,
        done: Option<std::sync::mpsc::Sender<()>>,
    ) -> bool {
        self.tx.send(RestartRequest { down, done }).is_ok()
    }

    /// Counts a request against the request-triggered restarts; `true` when it sets one off
    /// (the restart has been asked for; the caller cuts the request).
    pub(crate) fn on_request(&self, path: &str) -> bool {
        let mut fired = false;
        for (prefix, nth, down, seen) in &self.on_request {
            if !path.starts_with(prefix.as_str()) {
                continue;
            }
            if seen.fetch_add(1, Ordering::SeqCst) + 1 == *nth && !fired {
                fired = self.request(*down, None);
            }
        }
        fired
    }
}

/// How connections are turned away while the server is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownMode {
    /// Connection refused (the kernel answers the SYN with a RST).
    #[default]
    Refuse,
    /// The TCP handshake completes, then the connection is reset before any byte is read.
    Reset,
}

/// A fault applied to `count` requests under `path_prefix`, after the first `skip` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFault {
    pub action: Action,
    /// How many matching requests get it; `None`: every matching request.
    pub count: Option<u64>,
    /// The first `skip` matching requests pass unharmed (e.g. to fail only a client's second
    /// fetch).
    pub skip: u64,
    /// Only requests whose path starts with this (query excluded); `None`: every path.
    pub path_prefix: Option<String>,
}

impl RequestFault {
    /// `action` for the first `count` requests, whatever their path.
    pub fn first(count: u64, action: Action) -> RequestFault {
        RequestFault {
            action,
            count: Some(count),
            skip: 0,
            path_prefix: None,
        }
    }

    /// `action` for every request.
    pub fn always(action: Action) -> RequestFault {
        RequestFault {
            action,
            count: None,
            skip: 0,
            path_prefix: None,
        }
    }

    /// Lets the first `n` matching requests pass before the fault applies.
    pub fn after(mut self, n: u64) -> RequestFault {
        self.skip = n;
        self
    }

    /// Restricts the fault to paths starting with `prefix`.
    pub fn under(mut self, prefix: &str) -> RequestFault {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    fn matches(&self, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p))
    }
}

/// What a faulted request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A `Status` object with this code (reason and message as kube-apiserver words them for
    /// 429/500/503/504), and `Retry-After` verbatim when set (seconds or an HTTP-date).
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// The real answer's headers (with its full `Content-Length`) and the first half of its
    /// body, then the connection is reset. Streaming answers (watches) pass unharmed.
    ResetMidBody,
    /// The request is read and never answered; after `max` the connection is closed.
    Stall { max: Duration },
    /// The real answer, `by` later: a busy API server (its cores taken by other clients'
    /// handshakes and requests) answering slowly.
    Delay { by: Duration },
    /// The real answer with its body cut in half and a `Content-Length` that says so: the HTTP
    /// message is complete, the JSON in it is not.
    TruncateJson,
    /// A redirect to `location`; nothing else is done with the request.
    Redirect { code: u16, location: String },
    /// A 200 `application/json` whose body (a ConfigMap whose `kubeconfig` never ends) is
    /// `bytes` long, generated as it is sent; `content_length` declares the size up front,
    /// otherwise it is chunked.
    Oversize { bytes: u64, content_length: bool },
}

impl Action {
    /// The short name recorded in [`crate::RequestRecord::fault`].
    pub fn name(&self) -> String {
        match self {
            Action::Status { code, .. } => format!("status {code}"),
            Action::ResetMidBody => "reset mid-body".into(),
            Action::Stall { .. } => "stall".into(),
            Action::Delay { .. } => "delay".into(),
            Action::TruncateJson => "truncated json".into(),
            Action::Redirect { code, .. } => format!("redirect {code}"),
            Action::Oversize { .. } => "oversize".into(),
        }
    }
}

/// How watch streams are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchCut {
    /// Events per stream (the initial ADDED ones count).
    pub every: u32,
    /// Reset the connection in the middle of the chunked stream instead of ending it cleanly.
    pub abrupt: bool,
}

/// kube-apiserver's max-in-flight filter (`WithMaxInFlightLimit`, used when API Priority and
/// Fairness is off), as `staging/src/k8s.io/apiserver/pkg/server/filters/maxinflight.go` and
/// `DefaultBuildHandlerChain` (`pkg/server/config.go`) do it at v1.28:
///
/// - two pools: requests whose verb is `get`, `list` or `watch` take a slot of
///   `--max-requests-inflight` ([`InFlightLimit::limit`]), every other verb (create, update,
///   patch, delete…) one of `--max-mutating-requests-inflight` ([`InFlightLimit::mutating`]);
/// - long-running requests (watches) take no slot;
/// - the filter runs after authentication and before authorization: a request whose
///   credentials are rejected gets its 401 without a slot, and one that RBAC denies (403)
///   held a slot while it was decided;
/// - a `system:masters` user is served even when its pool is full;
/// - the refusal is `http.Error`'s plain text, `Too many requests, please try again later.`,
///   with `Retry-After: 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlightLimit {
    /// Concurrent `get`/`list` requests (`--max-requests-inflight`, 400 by default).
    pub limit: usize,
    /// Concurrent requests of every other verb (`--max-mutating-requests-inflight`, 200 by
    /// default).
    pub mutating: usize,
    /// `Retry-After` seconds of the 429 (kube-apiserver sends 1).
    pub retry_after_secs: u64,
}

impl InFlightLimit {
    /// `limit` reads and half as many writes (rounded up), the ratio of kube-apiserver's
    /// defaults (400 and 200), with `Retry-After: 1` as kube-apiserver sends it.
    pub fn with_default_ratio(limit: usize) -> InFlightLimit {
        InFlightLimit {
            limit,
            mutating: limit.div_ceil(2).max(1),
            retry_after_secs: 1,
        }
    }

    /// The cap of a request's pool: writes take the mutating one.
    pub fn cap(&self, mutating: bool) -> usize {
        if mutating {
            self.mutating
        } else {
            self.limit
        }
    }
}

/// The budgets of the request faults, charged as requests arrive.
#[derive(Debug)]
pub(crate) struct Budgets {
    faults: Vec<RequestFault>,
    /// Matching requests that reached each fault so far.
    seen: Vec<AtomicU64>,
}

impl Budgets {
    pub(crate) fn new(faults: Vec<RequestFault>) -> Budgets {
        let seen = faults.iter().map(|_| AtomicU64::new(0)).collect();
        Budgets { faults, seen }
    }

    /// The fault this request gets, if any; its budget is charged. A request a fault passes
    /// (skipped, or budget spent) goes on to the next fault.
    pub(crate) fn take(&self, path: &str) -> Option<&Action> {
        for (fault, seen) in self.faults.iter().zip(&self.seen) {
            if !fault.matches(path) {
                continue;
            }
            // Each matching request gets its own number, so concurrent requests cannot both
            // take the last unit of budget.
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let applies = n >= fault.skip && fault.count.is_none_or(|c| n - fault.skip < c);
            if applies {
                return Some(&fault.action);
            }
        }
        None
    }
}

/// Parses a `--fault` spec: `KIND[,count=K][,skip=N][,path=PREFIX][,retry-after=V]`, KIND one of
/// `status=CODE`, `reset`, `stall[=DURATION]`, `truncate`, `redirect=CODE:LOCATION`,
/// `oversize=SIZE[:chunked]` (SIZE in bytes, or with K/M/G suffix, binary units).
pub fn parse_spec(spec: &str) -> Result<RequestFault, String> {
    let mut parts = spec.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut count = None;
    let mut skip = 0;
    let mut path_prefix = None;
    let mut retry_after = None;
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("{p:?}: expected key=value"))?;
        match k {
            "count" => {
                count = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("count={v:?}: not a number"))?,
                )
            }
            "skip" => {
                skip = v
                    .parse::<u64>()
                    .map_err(|_| format!("skip={v:?}: not a number"))?
            }
            "path" => path_prefix = Some(v.to_string()),
            "retry-after" => retry_after = Some(v.to_string()),
            other => return Err(format!("unknown fault option {other:?}")),
        }
    }
    let (name, arg) = match kind.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (kind, None),
    };
    let action = match (name, arg) {
        ("status", Some(code)) => Action::Status {
            code: status_code(code)?,
            retry_after: retry_after.take(),
        },
        ("reset", None) => Action::ResetMidBody,
        ("stall", None) => Action::Stall {
            max: Duration::from_secs(30),
        },
        ("stall", Some(d)) => Action::Stall {
            max: crate::parse_duration(d).ok_or_else(|| format!("stall={d:?}: not a duration"))?,
        },
        ("delay", Some(d)) => Action::Delay {
            by: crate::parse_duration(d).ok_or_else(|| format!("delay={d:?}: not a duration"))?,
        },
        ("truncate", None) => Action::TruncateJson,
        ("redirect", Some(a)) => {
            let (code, location) = a
                .split_once(':')
                .ok_or_else(|| format!("redirect={a:?}: expected CODE:LOCATION"))?;
            let code = status_code(code)?;
            if !(300..400).contains(&code) {
                return Err(format!("redirect={a:?}: {code} is not a 3xx status"));
            }
            Action::Redirect {
                code,
                location: location.to_string(),
            }
        }
        ("oversize", Some(a)) => {
            let (size, chunked) = match a.strip_suffix(":chunked") {
                Some(s) => (s, true),
                None => (a, false),
            };
            Action::Oversize {
                bytes: parse_size(size).ok_or_else(|| format!("oversize={a:?}: not a size"))?,
                content_length: !chunked,
            }
        }
        _ => return Err(format!("unknown fault {kind:?}")),
    };
    if retry_after.is_some() {
        return Err("retry-after= only goes with status=CODE".into());
    }
    Ok(RequestFault {
        action,
        count,
        skip,
        path_prefix,
    })
}

/// Parses a `--restart` spec: `down=DURATION` with either `after=DURATION` (after the server
/// first came up) or `path=PREFIX[,nth=N]` (on the Nth request under PREFIX, default the first).
pub fn parse_restart(spec: &str) -> Result<Restart, String> {
    let mut down = None;
    let mut after = None;
    let mut path = None;
    let mut nth = None;
    for p in spec.split(',') {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("{p:?}: expected key=value"))?;
        let dur = || crate::parse_duration(v).ok_or_else(|| format!("{k}={v:?}: not a duration"));
        match k {
            "down" => down = Some(dur()?),
            "after" => after = Some(dur()?),
            "path" if !v.is_empty() => path = Some(v.to_string()),
            "nth" => {
                nth = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("nth={v:?}: a positive number"))?,
                )
            }
            other => return Err(format!("unknown restart option {other:?}")),
        }
    }
    let down = down.ok_or("down=DURATION is required")?;
    let trigger = match (after, path, nth) {
        (Some(a), None, None) => RestartTrigger::After(a),
        (None, Some(path_prefix), nth) => RestartTrigger::Request {
            path_prefix,
            nth: nth.unwrap_or(1),
        },
        (None, None, _) => return Err("after=DURATION or path=PREFIX is required".into()),
        _ => return Err("after= and path=/nth= exclude each other".into()),
    };
    Ok(Restart { trigger, down })
}

fn status_code(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| format!("{s:?} is not an HTTP status code"))
}

/// `1048576`, `512K`, `300M`, `1G` (binary units; an optional `iB`/`B` is accepted).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim_end_matches("iB").trim_end_matches('B');
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec("status=503,count=3,retry-after=2,path=/api/v1/namespaces/kube-public")
                .unwrap(),
            RequestFault {
                action: Action::Status {
                    code: 503,
                    retry_after: Some("2".into())
                },
                count: Some(3),
                skip: 0,
                path_prefix: Some("/api/v1/namespaces/kube-public".into()),
            }
        );
        assert_eq!(
            parse_spec("stall=2s,count=1").unwrap().action,
            Action::Stall {
                max: Duration::from_secs(2)
            }
        );
        assert_eq!(
            parse_spec("delay=300ms,path=/api/v1/nodes").unwrap().action,
            Action::Delay {
                by: Duration::from_millis(300)
            }
        );
        assert!(parse_spec("delay").is_err());
        assert_eq!(
            parse_spec("redirect=302:https://127.0.0.2:6443/x").unwrap(),
            RequestFault::always(Action::Redirect {
                code: 302,
                location: "https://127.0.0.2:6443/x".into()
            })
        );
        assert_eq!(
            parse_spec("oversize=512M:chunked").unwrap().action,
            Action::Oversize {
                bytes: 512 << 20,
                content_length: false
            }
        );
        assert_eq!(parse_spec("reset").unwrap().action, Action::ResetMidBody);
        assert_eq!(parse_spec("truncate,count=2").unwrap().count, Some(2));
        for bad in [
            "",
            "status",
            "status=99",
            "status=503,retry-after",
            "reset,retry-after=1",
            "redirect=200:x",
            "redirect=302",
            "oversize=lots",
            "explode",
            "reset,count=x",
            "reset,colour=red",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn restart_specs() {
        assert_eq!(
            parse_restart("down=3s,after=10s").unwrap(),
            Restart::after(Duration::from_secs(10), Duration::from_secs(3))
        );
        assert_eq!(
            parse_restart("path=/apis/certificates.k8s.io,down=500ms,nth=2").unwrap(),
            Restart::on_request("/apis/certificates.k8s.io", Duration::from_millis(500)).nth(2)
        );
        assert_eq!(
            parse_restart("down=1s,path=/api").unwrap().trigger,
            RestartTrigger::Request {
                path_prefix: "/api".into(),
                nth: 1
            }
        );
        for bad in [
            "",
            "after=1s",
            "down=1s",
            "down=soon,after=1s",
            "down=1s,after=1s,path=/x",
            "down=1s,path=/x,nth=0",
            "down=1s,path=",
            "down=1s,colour=red",
            "down",
        ] {
            assert!(parse_restart(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_triggered_restarts_fire_once_on_their_nth_request() {
        let faults = Faults {
            restarts: vec![
                Restart::on_request("/api/v1/namespaces/kube-system", Duration::from_secs(1))
                    .nth(2),
                Restart::after(Duration::from_secs(5), Duration::from_secs(1)),
            ],
            startup_window: Duration::from_secs(60),
            ..Faults::default()
        };
        let (l, mut rx) = Lifecycle::new(&faults);
        assert!(!l.in_startup_window(), "not listening yet");
        l.up(std::time::Instant::now());
        assert!(l.in_startup_window());
        let cm = "/api/v1/namespaces/kube-system/configmaps/kubelet-config";
        assert!(!l.on_request("/api/v1/namespaces/kube-public/configmaps/cluster-info"));
        assert!(!l.on_request(cm));
        assert!(l.on_request(cm));
        assert!(!l.on_request(cm));
        let req = rx.try_recv().unwrap();
        assert_eq!(req.down, Duration::from_secs(1));
        assert!(rx.try_recv().is_err(), "fired once");
        l.down();
        assert!(!l.in_startup_window());
        assert_eq!(l.restarts(), 1);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("300MiB"), Some(300 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1T"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn budgets_are_charged_per_fault_and_path() {
        let b = Budgets::new(vec![
            RequestFault::first(
                2,
                Action::Status {
                    code: 503,
                    retry_after: None,
                },
            )
            .under("/api/v1/namespaces/kube-public"),
            RequestFault::first(1, Action::TruncateJson),
        ]);
        let ci = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
        assert_eq!(b.take("/healthz"), Some(&Action::TruncateJson));
        assert_eq!(b.take("/healthz"), None);
        assert!(matches!(b.take(ci), Some(Action::Status { code: 503, .. })));
        assert!(matches!(b.take(ci), Some(Action::Status { code: 503, .. })));
        assert_eq!(b.take(ci), None);
    }

    #[test]
    fn skipped_requests_pass() {
        let b = Budgets::new(vec![RequestFault::first(2, Action::TruncateJson).after(1)]);
        let got: Vec<bool> = (0..5).map(|_| b.take("/x").is_some()).collect();
        assert_eq!(got, vec![false, true, true, false, false]);
        assert_eq!(parse_spec("reset,skip=2,count=1").unwrap().skip, 2);
    }
}
