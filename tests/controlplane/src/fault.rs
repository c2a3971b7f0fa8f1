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
//! | [`Action::TruncateJson`] | a complete HTTP message whose JSON body is cut in half |
//! | [`Action::Redirect`] | a 301/302/307/308 to another `Location` |
//! | [`Action::Oversize`] | a 200 whose body is `bytes` long, produced lazily (never held in memory) |
//! | [`Faults::watch_cut`] | every CSR watch stream ends after M events (cleanly or abruptly) |
//! | [`Faults::certificate_delay`] | the certificate is issued this long after the `Approved` condition |
//! | [`Faults::max_in_flight`] | 429 + `Retry-After` beyond N concurrent requests, like `--max-requests-inflight` |
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
    /// More concurrent requests than this (watches excluded, as in kube-apiserver) get 429.
    pub max_in_flight: Option<InFlightLimit>,
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

/// kube-apiserver's max-in-flight filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlightLimit {
    pub limit: usize,
    /// `Retry-After` seconds of the 429 (kube-apiserver sends 1).
    pub retry_after_secs: u64,
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
