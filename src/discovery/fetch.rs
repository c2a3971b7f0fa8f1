//! The cluster-info fetch loop shared by token and file discovery, and the mapping of wire
//! failures to discovery errors.

use super::error::ca_list;
use super::{Error, Options};
use crate::http::retry::{self, Disposition, GaveUp, Pause, Retryable};
use crate::kube::types::ConfigMap;
use crate::kube::{self, WireFailure};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `kube-public/cluster-info`.
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// Largest cluster-info answer that is read. A real one is 2–3 KiB, plus about 100 bytes per
/// signing token; the first fetch trusts nobody, and a hostile server must not be able to make
/// kubejoin buffer hundreds of MB in an initramfs.
pub const MAX_CLUSTER_INFO: usize = 1 << 20;

/// Why one cluster-info attempt did not give what the loop waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Miss {
    /// The request failed, or the server answered an error status.
    Wire {
        failure: WireFailure,
        /// The answer's `Retry-After`, as a pause.
        retry_after: Option<Duration>,
        /// The answer's `Location` (a redirect).
        location: Option<String>,
        /// The TLS failure is about the server's certificate, not the handshake itself.
        bad_certificate: bool,
    },
    /// The answer is not a cluster-info ConfigMap (too large, not JSON).
    Malformed(String),
    /// Fetched, but no `jws-kubeconfig-<id>` yet.
    NoJws,
    /// Fetched, but neither a JWS nor even a `kubeconfig` key.
    NoKubeconfig,
    /// The loop's own deadline ended the attempt.
    CutOff,
}

impl Miss {
    pub(super) fn wire(failure: WireFailure) -> Miss {
        Miss::Wire {
            failure,
            retry_after: None,
            location: None,
            bad_certificate: false,
        }
    }
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Wire {
                failure,
                retry_after,
                ..
            } => {
                f.write_str(&wire_text(failure))?;
                if let Some(d) = retry_after {
                    write!(f, " (Retry-After: {})", crate::time::duration::format(*d))?;
                }
                Ok(())
            }
            Miss::Malformed(d) => f.write_str(d),
            Miss::NoJws => f.write_str("no JWS signature for our token yet"),
            Miss::NoKubeconfig => f.write_str("no kubeconfig key"),
            Miss::CutOff => f.write_str("cut off by the deadline"),
        }
    }
}

pub(super) fn wire_text(w: &WireFailure) -> String {
    match w {
        WireFailure::Status {
            code,
            reason,
            message,
        } if message.is_empty() => format!("{code} {reason}"),
        WireFailure::Status {
            code,
            reason,
            message,
        } => format!("{code} {reason}: {message}"),
        WireFailure::Refused => "connection refused".into(),
        WireFailure::TimedOut => "timed out".into(),
        WireFailure::TlsVerify(d) => format!("TLS handshake failed: {d}"),
        WireFailure::Clock(c) => c.to_string(),
        WireFailure::UnpinnedCa(pins) => format!(
            "TLS handshake refused: the server's certificate chains to CA {}, which is not pinned",
            ca_list(pins)
        ),
        WireFailure::Transport(t) => t.clone(),
    }
}

pub(super) fn wire_miss(err: &kube::RequestError) -> Miss {
    match err {
        kube::RequestError::TooLarge {
            announced: Some(n), ..
        } => Miss::Malformed(format!(
            "the answer announces {n} bytes; a cluster-info ConfigMap is a few KiB, and no more than \
             {MAX_CLUSTER_INFO} bytes are read"
        )),
        kube::RequestError::TooLarge { announced: None, .. } => Miss::Malformed(format!(
            "the answer is larger than {MAX_CLUSTER_INFO} bytes; a cluster-info ConfigMap is a few KiB"
        )),
        _ => Miss::Wire {
            failure: err.failure(),
            retry_after: err.retry_after(),
            location: None,
            bad_certificate: matches!(
                err.rustls_error(),
                Some(rustls::Error::InvalidCertificate(_))
            ),
        },
    }
}

/// One anonymous GET of cluster-info. The body is read only up to [`MAX_CLUSTER_INFO`] (an
/// announced larger one is not read at all); `Retry-After` and `Location` are kept for the
/// retry policy and the error message; kubejoin never follows a redirect.
pub(super) async fn get_cluster_info(client: &kube::Client) -> Result<ConfigMap, Miss> {
    let a = client
        .send(
            http::Method::GET,
            CLUSTER_INFO_PATH,
            "application/json, */*",
            None,
            MAX_CLUSTER_INFO,
        )
        .await
        .map_err(|e| wire_miss(&e))?;
    if !a.is_success() {
        let location = a.location.clone();
        let retry_after = a.retry_after;
        let failure = a.into_status_error().failure();
        return Err(Miss::Wire {
            failure,
            retry_after,
            location,
            bad_certificate: false,
        });
    }
    decode_cluster_info(&a.body).map_err(|e| Miss::Malformed(e.to_string()))
}

/// Why an answer to the cluster-info request is not a cluster-info ConfigMap.
#[derive(Debug, thiserror::Error)]
pub enum MalformedClusterInfo {
    #[error("the answer is larger than {limit} bytes; a cluster-info ConfigMap is a few KiB")]
    TooLarge { limit: usize },
    /// The JSON error is part of the message: the answer is reported as one line of a retry
    /// loop's verdict.
    #[error("the answer is not a ConfigMap: {0}")]
    NotConfigMap(serde_json::Error),
}

/// Decodes the body of a cluster-info answer (at most [`MAX_CLUSTER_INFO`] bytes); the error
/// says why it is not a ConfigMap.
pub fn decode_cluster_info(bytes: &[u8]) -> Result<ConfigMap, MalformedClusterInfo> {
    if bytes.len() > MAX_CLUSTER_INFO {
        return Err(MalformedClusterInfo::TooLarge {
            limit: MAX_CLUSTER_INFO,
        });
    }
    serde_json::from_slice::<ConfigMap>(bytes).map_err(MalformedClusterInfo::NotConfigMap)
}

/// What the loop does with one answer.
pub(super) enum Verdict<T> {
    Done(T),
    Retry(Miss),
}

/// A miss, judged by the retry policy of its loop.
#[derive(Debug, Clone)]
pub(super) struct Failed {
    pub(super) miss: Miss,
    /// The loop's fixed poll interval (for the bootstrap signer's lag).
    pub(super) interval: Duration,
}

impl Retryable for Failed {
    fn disposition(&self) -> Disposition {
        match &self.miss {
            Miss::Wire { failure, .. } => retry::classify(failure),
            // A complete answer that is not cluster-info will not become one: it is a proxy,
            // a captive portal or an attacker, not a network blip.
            Miss::Malformed(_) => Disposition::Permanent,
            // The bootstrap signer adds our JWS 1–15 s after cluster-info is (re)written.
            Miss::NoJws | Miss::NoKubeconfig | Miss::CutOff => Disposition::Transient,
        }
    }

    fn pause(&self) -> Pause {
        match &self.miss {
            Miss::Wire {
                failure:
                    WireFailure::Status {
                        code: 429 | 503, ..
                    },
                retry_after: Some(d),
                ..
            } => Pause::RetryAfter(*d),
            // kubeadm's semantics for the signer's lag: a fixed poll.
            Miss::NoJws | Miss::NoKubeconfig => Pause::Fixed(self.interval),
            Miss::Wire { failure, .. } => retry::pause_of(failure),
            _ => Pause::Backoff,
        }
    }

    fn reason(&self) -> String {
        self.miss.to_string()
    }
}

/// One fetch loop (spec §2.2 `getClusterInfo`): `GET kube-public/cluster-info` at once, then
/// again until `judge` is satisfied or `opts.timeout` passes. While the JWS is missing it polls
/// every `retry_interval`, as kubeadm does; failures of the wire are retried with the backoff of
/// [`retry::Policy::for_interval`] (full jitter, mean pause `retry_interval`) and a server's
/// `Retry-After` is honoured; a permanent failure (TLS, 404, a redirect, an answer that is not
/// cluster-info) stops the loop at once, a 401 or 403 once it persists (an API server that has
/// just restarted refuses even the anonymous GET for a moment: [`retry::Persistence`]). Each attempt is bounded by the time left,
/// so the loop never overruns its timeout.
pub(super) async fn poll_cluster_info<T>(
    client: &kube::Client,
    url: &str,
    label: &str,
    opts: &Options,
    judge: impl Fn(Result<ConfigMap, Miss>) -> Verdict<T>,
) -> Result<T, GaveUp<Failed>> {
    let interval = opts.retry_interval.min(opts.timeout);
    let policy = retry::Policy::for_interval(interval);
    let deadline = Instant::now() + opts.timeout;
    let judge = &judge;
    let mut env = retry::RealEnv::new();
    retry::retry_notify(
        deadline,
        &policy,
        &mut env,
        |attempt| async move {
            let answer =
                match tokio::time::timeout(attempt.time_left, get_cluster_info(client)).await {
                    Ok(answer) => answer,
                    Err(_elapsed) => Err(Miss::CutOff),
                };
            match judge(answer) {
                Verdict::Done(v) => {
                    crate::debug!(
                        "cluster-info ({label}) from {url}: ok on attempt {}",
                        attempt.number
                    );
                    Ok(v)
                }
                Verdict::Retry(miss) => Err(Failed { miss, interval }),
            }
        },
        |failed, attempt, pause| {
            crate::info!(
                "cluster-info ({label}) from {url}, attempt {attempt}: {}; retrying in {}",
                failed.miss,
                crate::time::duration::format(pause)
            );
        },
    )
    .await
}

/// Per-request timeouts of discovery clients: kubeadm's 10 s, but never beyond the loop's bound.
pub(super) fn timeouts(opts: &Options) -> kube::Timeouts {
    let t = Duration::from_secs(10).min(opts.timeout.max(Duration::from_millis(1)));
    kube::Timeouts {
        connect: t,
        read: Some(t),
        settle: true,
    }
}

/// The error for a loop that gave up, in the words of the stage it was in. A last attempt that
/// was only cut off by the deadline is reported with the failure before it, as kubeadm does.
pub(super) fn gave_up_error(g: GaveUp<Failed>, ctx: &FetchContext<'_>) -> Error {
    let tried = Tried {
        attempts: g.attempts,
        waited: g.elapsed,
        retry_after_past_deadline: match g.stop {
            retry::Stop::RetryAfterPastDeadline(d) => Some(d),
            _ => None,
        },
        persisted: match g.stop {
            retry::Stop::Persisted(p) => Some(p),
            _ => None,
        },
    };
    let miss = match g.last.miss {
        Miss::CutOff => g
            .previous
            .map(|p| p.miss)
            .filter(|m| *m != Miss::CutOff)
            .unwrap_or(Miss::wire(WireFailure::TimedOut)),
        m => m,
    };
    match miss {
        Miss::NoJws => Error::JwsMissing {
            endpoint: ctx.endpoint.to_string(),
            token_id: ctx.token_id.unwrap_or_default().to_string(),
            waited: tried.waited,
        },
        Miss::NoKubeconfig => Error::NoKubeconfigKey {
            endpoint: ctx.endpoint.to_string(),
        },
        Miss::Malformed(detail) => Error::Malformed {
            url: ctx.url.to_string(),
            what: ctx.what,
            detail,
        },
        Miss::Wire {
            failure,
            location,
            bad_certificate,
            ..
        } => wire_error(failure, ctx, &tried, location, bad_certificate),
        Miss::CutOff => wire_error(WireFailure::TimedOut, ctx, &tried, None, false),
    }
}

/// Where a fetch went and what it trusted, for error messages.
pub(super) struct FetchContext<'a> {
    pub(super) url: &'a str,
    pub(super) endpoint: &'a str,
    pub(super) token_id: Option<&'a str>,
    /// `None` when verification was off (the insecure fetch).
    pub(super) against: Option<&'a str>,
    pub(super) who: &'static str,
    pub(super) what: &'static str,
    pub(super) cluster_server: Option<&'a str>,
}

/// How much trying went into a failure.
pub(super) struct Tried {
    pub(super) attempts: u32,
    pub(super) waited: Duration,
    pub(super) retry_after_past_deadline: Option<Duration>,
    /// The refusal that ended the loop persisted this long.
    pub(super) persisted: Option<retry::Persisted>,
}

pub(super) fn wire_error(
    w: WireFailure,
    ctx: &FetchContext<'_>,
    tried: &Tried,
    location: Option<String>,
    bad_certificate: bool,
) -> Error {
    match w {
        WireFailure::UnpinnedCa(pins) => Error::UnpinnedCa {
            endpoint: ctx.endpoint.to_string(),
            pins,
        },
        WireFailure::TlsVerify(detail) if bad_certificate && ctx.against.is_some() => {
            Error::TlsVerify {
                endpoint: ctx.endpoint.to_string(),
                against: ctx.against.unwrap_or_default().to_string(),
                detail,
                cluster_server: ctx.cluster_server.map(str::to_string),
            }
        }
        WireFailure::Clock(error) => Error::Clock {
            endpoint: ctx.endpoint.to_string(),
            error,
        },
        WireFailure::TlsVerify(detail) => Error::TlsHandshake {
            endpoint: ctx.endpoint.to_string(),
            detail,
        },
        WireFailure::Status {
            code: code @ (401 | 403),
            reason,
            message,
        } => Error::Rejected {
            url: ctx.url.to_string(),
            who: ctx.who,
            what: ctx.what,
            code,
            reason,
            message,
            persisted: tried.persisted.map(Box::new),
        },
        WireFailure::Status {
            code: code @ 300..=399,
            ..
        } => Error::Redirect {
            url: ctx.url.to_string(),
            what: ctx.what,
            code,
            location: location.unwrap_or_default(),
        },
        WireFailure::Status {
            code,
            reason,
            message,
        } if retry::classify(&WireFailure::Status {
            code,
            reason: String::new(),
            message: String::new(),
        }) == Disposition::Transient =>
        {
            Error::Unavailable {
                url: ctx.url.to_string(),
                what: ctx.what,
                attempts: tried.attempts,
                waited: tried.waited,
                retry_after_past_deadline: tried.retry_after_past_deadline,
                code,
                status: wire_text(&WireFailure::Status {
                    code,
                    reason,
                    message,
                }),
            }
        }
        WireFailure::Status {
            code,
            reason,
            message,
        } => Error::Status {
            url: ctx.url.to_string(),
            what: ctx.what,
            code,
            reason,
            message,
        },
        other => Error::Unreachable {
            url: ctx.url.to_string(),
            what: ctx.what,
            attempts: tried.attempts,
            waited: tried.waited,
            reason: wire_text(&other),
        },
    }
}

/// The error for a single request that failed (HTTPS discovery, which has no retry loop).
pub(super) fn single_request_error(
    e: &kube::RequestError,
    ctx: &FetchContext<'_>,
    waited: Duration,
) -> Error {
    let bad_certificate = matches!(e.rustls_error(), Some(rustls::Error::InvalidCertificate(_)));
    let tried = Tried {
        attempts: 1,
        waited,
        retry_after_past_deadline: None,
        persisted: None,
    };
    wire_error(e.failure(), ctx, &tried, None, bad_certificate)
}

/// The ConfigMap's data, or an empty map.
pub(super) fn data_of(cm: ConfigMap) -> BTreeMap<String, String> {
    cm.data.unwrap_or_default()
}
