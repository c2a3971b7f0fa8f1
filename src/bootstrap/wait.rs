//! Waiting for the CSR to be decided (client-go `WaitForCertificate`, spec §5.1).
//!
//! Split in two: [`progress`], a pure function from (state, event) to the next state or an
//! outcome, unit-tested with captured watch events; and [`wait`], a small loop that watches from
//! the resourceVersion of the POST's answer (no LIST first), re-establishes dropped watches from
//! the last resourceVersion (LIST, then watch, on `410 Expired` or a watch that cannot start),
//! prints a progress line every `progress_interval`, and stops at the deadline. A 401/403 on the
//! list or watch (an API server restarting during the wait) is retried until it persists.

use super::csr::{Submitted, CSR_PATH};
use super::{api_error, Cluster, Error};
use crate::http::retry::Refusals;
use crate::kube::types::{CertificateSigningRequest, CertificateSigningRequestList};
pub use crate::kube::WatchEvent;
use crate::kube::{query, RequestError};
use std::future::Future;
use std::time::{Duration, Instant};

/// Longest `timeoutSeconds` a watch asks for: the server ends the stream before the watch
/// client's read timeout ([`super::WATCH_READ_TIMEOUT`]) could mistake a quiet watch for a dead
/// connection.
pub const MAX_WATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Knobs of the wait. `Default` is what the binary uses.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up after this long (`--tls-bootstrap-timeout`, kubeadm's 5 m).
    pub timeout: Duration,
    /// A progress line this often while pending.
    pub progress_interval: Duration,
    /// `timeoutSeconds` of each watch request; the server ends the stream after it and the
    /// loop re-establishes it, so a silently dead connection is noticed within this bound.
    pub watch_timeout: Duration,
    /// Pause after a failed list/watch request before trying again.
    pub retry_pause: Duration,
    /// When a 401/403 on the list or watch is final (an API server restarting during the wait
    /// refuses the token for a moment; see [`crate::http::retry::Persistence`]).
    pub refusals: crate::http::retry::Persistence,
    /// The backoff level the join's earlier calls reached against a server shedding load
    /// ([`crate::http::retry::Pacing`]): a list or watch turned away with `Retry-After` pauses
    /// from there, not from the narrowest window (0: a wait on its own).
    pub shed_level: u32,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            progress_interval: Duration::from_secs(10),
            watch_timeout: Duration::from_secs(60),
            retry_pause: Duration::from_secs(1),
            refusals: crate::http::retry::REFUSALS,
            shed_level: 0,
        }
    }
}

/// What the loop knows between events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitState {
    /// The `Approved` condition has been seen (the certificate may still be missing).
    pub approved: bool,
    /// Where to resume a watch.
    pub resource_version: Option<String>,
    /// The watch cannot be resumed (410 Expired or an error event): list again first.
    pub relist: bool,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Continue(WaitState),
    /// Approved, with the PEM certificate (chain) from `status.certificate`.
    Issued(Vec<u8>),
}

/// One CSR observation (from a list or a watch event) → next state, or the end of the wait.
pub fn examine(
    state: &WaitState,
    name: &str,
    uid: Option<&str>,
    csr: &CertificateSigningRequest,
) -> Result<Next, Error> {
    if csr.metadata.name.as_deref() != Some(name) {
        return Ok(Next::Continue(state.clone()));
    }
    if let (Some(want), Some(got)) = (uid, csr.metadata.uid.as_deref()) {
        if want != got {
            return Err(Error::UidChanged {
                name: name.to_string(),
            });
        }
    }
    let status = csr.status.as_ref();
    let mut approved = false;
    for c in status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if c.status == "False" {
            continue;
        }
        let reason = c.reason.clone().unwrap_or_default();
        let message = c.message.clone().unwrap_or_default();
        match c.type_.as_str() {
            "Denied" => {
                return Err(Error::Denied {
                    name: name.to_string(),
                    reason,
                    message,
                })
            }
            "Failed" => {
                return Err(Error::Failed {
                    name: name.to_string(),
                    reason,
                    message,
                })
            }
            "Approved" => approved = true,
            _ => {}
        }
    }
    if let Some(cert) = status
        .and_then(|s| s.certificate.as_ref())
        .filter(|c| !c.0.is_empty())
    {
        if approved {
            return Ok(Next::Issued(cert.0.clone()));
        }
    }
    Ok(Next::Continue(WaitState {
        approved,
        resource_version: csr
            .metadata
            .resource_version
            .clone()
            .or_else(|| state.resource_version.clone()),
        relist: false,
    }))
}

/// The pure progress function: a watch event → next state or outcome.
pub fn progress(
    state: &WaitState,
    name: &str,
    uid: Option<&str>,
    event: &WatchEvent<CertificateSigningRequest>,
) -> Result<Next, Error> {
    match event {
        WatchEvent::Added(csr) | WatchEvent::Modified(csr) => examine(state, name, uid, csr),
        WatchEvent::Deleted(csr) if csr.metadata.name.as_deref() == Some(name) => {
            Err(Error::Deleted {
                name: name.to_string(),
            })
        }
        WatchEvent::Deleted(_) => Ok(Next::Continue(state.clone())),
        WatchEvent::Bookmark(b) => Ok(Next::Continue(WaitState {
            resource_version: Some(b.metadata.resource_version.clone()),
            ..state.clone()
        })),
        // 410 Expired ("too old resource version") or any other error event: the watch cannot
        // go on from here; list to learn the current state and a fresh resourceVersion.
        WatchEvent::Error(_) => Ok(Next::Continue(WaitState {
            resource_version: None,
            relist: true,
            ..state.clone()
        })),
    }
}

/// The issued certificate and how the wait went.
#[derive(Debug, Clone)]
pub struct Issued {
    /// `status.certificate` (PEM, leaf first), not yet verified.
    pub cert_pem: Vec<u8>,
    pub waited: Duration,
    /// The progress lines printed while waiting (also logged).
    pub progress: Vec<String>,
}

/// A progress figure: whole seconds (`42s`, `3m5s`).
fn secs(d: Duration) -> String {
    crate::time::duration::format(crate::time::duration::round(d, Duration::from_secs(1)))
}

/// The progress line for a pending request.
pub fn progress_line(name: &str, approved: bool, elapsed: Duration, timeout: Duration) -> String {
    if approved {
        format!(
            "certificate signing request {name} is approved; waiting for the signer to issue the certificate \
             ({} elapsed, timeout {})",
            secs(elapsed),
            secs(timeout)
        )
    } else {
        format!(
            "waiting for certificate signing request {name} to be approved ({} elapsed, timeout {}); \
             an administrator can approve it with: kubectl certificate approve {name}",
            secs(elapsed),
            secs(timeout)
        )
    }
}

/// For a request still pending: a note when its usages are ones that control planes before
/// v1.25 never approve nor sign (`ValidateKubeletClientCSR` there requires exactly
/// [digital signature, key encipherment, client auth]); empty otherwise.
pub fn usages_note(usages: &[String]) -> String {
    if usages.is_empty() || usages.iter().any(|u| u == "key encipherment") {
        return String::new();
    }
    format!(
        "; the request asks for usages [{}], which kube-controller-manager before v1.25 neither \
         auto-approves nor signs — if it runs an older version than kube-system/kubeadm-config says \
         (an upgrade in progress), the request will stay pending",
        usages.join(", ")
    )
}

struct Reporter<'a> {
    name: &'a str,
    start: Instant,
    timeout: Duration,
    interval: Duration,
    next: tokio::time::Instant,
    lines: Vec<String>,
    usages: &'a [String],
    usages_noted: bool,
}

impl Reporter<'_> {
    fn tick(&mut self, approved: bool) {
        let line = progress_line(self.name, approved, self.start.elapsed(), self.timeout);
        crate::info!("{line}");
        self.lines.push(line);
        // An auto-approver answers within milliseconds: a request still pending at the first
        // progress line may be one this control plane never approves. Say so once (logged, not
        // a progress line: on a current control plane it is only a manual approval).
        let note = usages_note(self.usages);
        if !approved && !self.usages_noted && !note.is_empty() {
            self.usages_noted = true;
            crate::info!(
                "certificate signing request {} is still pending{note}",
                self.name
            );
        }
        self.next += self.interval;
    }
}

/// Runs `fut` while printing progress lines; `None` when the deadline passes first.
async fn race<F: Future>(
    deadline: tokio::time::Instant,
    reporter: &mut Reporter<'_>,
    approved: bool,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return Some(r),
            _ = tokio::time::sleep_until(deadline) => return None,
            _ = tokio::time::sleep_until(reporter.next) => reporter.tick(approved),
        }
    }
}

/// Judges a failed list/watch: `Some(error)` once it is a refusal (401/403) that persisted
/// over `refusals` (then it is final), `None` to try again.
fn refused_for_good(
    refusals: &mut Refusals,
    rule: &crate::http::retry::Persistence,
    e: &RequestError,
    action: impl FnOnce() -> String,
    server: &str,
) -> Option<Error> {
    let code = e.status_code().filter(|c| matches!(c, 401 | 403));
    let persisted = refusals.observe(rule, code, Instant::now())?;
    Some(Error::Persisted {
        source: Box::new(api_error(action(), server, e)),
        persisted,
    })
}

/// Waits until the CSR is issued (returns the unverified certificate), denied, failed, deleted,
/// or `opts.timeout` passes.
pub async fn wait(cluster: &Cluster, sub: &Submitted, opts: &WaitOptions) -> Result<Issued, Error> {
    let name = sub.name.as_str();
    let uid = sub.uid.as_deref();
    let selector = format!("metadata.name={name}");
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + opts.timeout);
    let interval = opts.progress_interval.max(Duration::from_millis(10));
    let mut reporter = Reporter {
        name,
        start,
        timeout: opts.timeout,
        interval,
        next: tokio::time::Instant::from_std(start + interval),
        lines: Vec::new(),
        usages: &sub.usages,
        usages_noted: false,
    };
    let mut state = WaitState {
        relist: true,
        ..WaitState::default()
    };
    // The POST's answer (or the GET of an adopted CSR) is the state to start from: the watch
    // resumes from its resourceVersion and no LIST is needed (spec §5.1; kubeadm lists first).
    if let Some(csr) = &sub.observed {
        match examine(&state, name, uid, csr)? {
            Next::Issued(cert_pem) => {
                return Ok(Issued {
                    cert_pem,
                    waited: start.elapsed(),
                    progress: reporter.lines,
                })
            }
            Next::Continue(s) => {
                state = WaitState {
                    relist: s.resource_version.is_none(),
                    ..s
                }
            }
        }
    }
    let timed_out = |state: &WaitState| Error::Timeout {
        name: name.to_string(),
        waited: start.elapsed(),
        approved: state.approved,
        usages: sub.usages.clone(),
    };
    let watch_secs = u32::try_from(opts.watch_timeout.min(MAX_WATCH_TIMEOUT).as_secs().max(1))
        .unwrap_or(u32::MAX);
    // The list and the watch share one streak: an API server restarting under the wait refuses
    // both the same way.
    let mut refusals = Refusals::default();
    let mut shed = Shed::from_level(opts.shed_level);

    loop {
        if state.relist || state.resource_version.is_none() {
            let path = format!("{CSR_PATH}{}", query(&[("fieldSelector", &selector)]));
            let list = cluster
                .client
                .get::<CertificateSigningRequestList>(&path, "CertificateSigningRequestList");
            let listed = match race(deadline, &mut reporter, state.approved, list).await {
                None => return Err(timed_out(&state)),
                Some(r) => r,
            };
            match listed {
                Ok(list) => {
                    refusals = Refusals::default();
                    shed.served();
                    let csr = list
                        .items
                        .iter()
                        .find(|c| c.metadata.name.as_deref() == Some(name));
                    let Some(csr) = csr else {
                        return Err(Error::Deleted {
                            name: name.to_string(),
                        });
                    };
                    match examine(&state, name, uid, csr)? {
                        Next::Issued(cert_pem) => {
                            return Ok(Issued {
                                cert_pem,
                                waited: start.elapsed(),
                                progress: reporter.lines,
                            })
                        }
                        Next::Continue(s) => state = s,
                    }
                    // Resume from the list's version: nothing between list and watch is missed.
                    state.resource_version =
                        list.metadata.resource_version.or(state.resource_version);
                    state.relist = false;
                }
                Err(e) => {
                    if let Some(err) = refused_for_good(
                        &mut refusals,
                        &opts.refusals,
                        &e,
                        || format!("listing certificate signing request {name}"),
                        &cluster.server,
                    ) {
                        return Err(err);
                    }
                    crate::debug!(
                        "listing {name}: {}; retrying",
                        super::describe(&e.failure())
                    );
                    let pause = shed.pause(&e, opts.retry_pause);
                    if race(
                        deadline,
                        &mut reporter,
                        state.approved,
                        tokio::time::sleep(pause),
                    )
                    .await
                    .is_none()
                    {
                        return Err(timed_out(&state));
                    }
                    continue;
                }
            }
        }

        let rv = state.resource_version.clone().unwrap_or_default();
        let secs = watch_secs.to_string();
        let path = format!(
            "{CSR_PATH}{}",
            query(&[
                ("allowWatchBookmarks", "true"),
                ("fieldSelector", &selector),
                ("resourceVersion", &rv),
                ("timeoutSeconds", &secs),
                ("watch", "true"),
            ])
        );
        let stream = match race(
            deadline,
            &mut reporter,
            state.approved,
            cluster
                .watch_client
                .watch::<CertificateSigningRequest>(&path),
        )
        .await
        {
            None => return Err(timed_out(&state)),
            Some(Ok(s)) => {
                refusals = Refusals::default();
                shed.served();
                s
            }
            Some(Err(e)) => {
                if let Some(err) = refused_for_good(
                    &mut refusals,
                    &opts.refusals,
                    &e,
                    || format!("watching certificate signing request {name}"),
                    &cluster.server,
                ) {
                    return Err(err);
                }
                crate::debug!(
                    "watching {name}: {}; listing again",
                    super::describe(&e.failure())
                );
                state.relist = true;
                let pause = shed.pause(&e, opts.retry_pause);
                if race(
                    deadline,
                    &mut reporter,
                    state.approved,
                    tokio::time::sleep(pause),
                )
                .await
                .is_none()
                {
                    return Err(timed_out(&state));
                }
                continue;
            }
        };
        let mut stream = stream;
        loop {
            match race(deadline, &mut reporter, state.approved, stream.next()).await {
                None => return Err(timed_out(&state)),
                // The server ended the watch (its timeoutSeconds) or the connection dropped:
                // resume from the last resourceVersion seen.
                Some(None) => {
                    crate::debug!(
                        "watch of {name} ended; re-establishing it from resourceVersion {rv:?}"
                    );
                    break;
                }
                Some(Some(Err(e))) => {
                    crate::debug!(
                        "watch of {name} broke: {}; re-establishing it",
                        super::describe(&e.failure())
                    );
                    break;
                }
                Some(Some(Ok(event))) => match progress(&state, name, uid, &event)? {
                    Next::Issued(cert_pem) => {
                        return Ok(Issued {
                            cert_pem,
                            waited: start.elapsed(),
                            progress: reporter.lines,
                        })
                    }
                    Next::Continue(s) => {
                        state = s;
                        if state.relist {
                            crate::debug!("watch of {name} expired; listing again");
                            break;
                        }
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The list/watch pause: what the server asked (429/503 `Retry-After`) plus the retry
    /// policy's jitter, wider each time in a row; anything else the fixed pause. No clock is
    /// read: the pauses are computed, not slept.
    #[test]
    fn a_list_or_watch_turned_away_waits_as_the_server_asked_with_jitter() {
        let status = |code: u16, after: Option<u64>| {
            RequestError::Status(Box::new(crate::kube::StatusError {
                code,
                reason: "TooManyRequests".into(),
                message: String::new(),
                retry_after: after.map(Duration::from_secs),
                location: None,
            }))
        };
        let fixed = Duration::from_millis(1000);
        let mut shed = Shed::default();
        for n in 0..6u32 {
            let p = shed.pause(&status(429, Some(2)), fixed);
            // Retry-After 2 s, then up to 2 s doubled per pause, at most max(2 s, the cap).
            let window = super::super::backoff::API_POLICY.shed_window(n, Duration::from_secs(2));
            assert_eq!(
                window,
                Duration::from_secs(if n == 0 { 2 } else { 4 }),
                "{n}"
            );
            assert!(
                p >= Duration::from_secs(2) && p <= Duration::from_secs(2) + window,
                "{n}: {p:?}"
            );
        }
        assert_eq!(shed.n, 6);
        // Served: halved, as the join's pacing is (multiplicative decrease).
        shed.served();
        assert_eq!(shed.n, 3);
        shed.served();
        shed.served();
        assert_eq!(shed.n, 0);
        // A 500, or a 429 without Retry-After: the fixed pause, the count unchanged.
        assert_eq!(shed.pause(&status(500, Some(2)), fixed), fixed);
        assert_eq!(shed.pause(&status(429, None), fixed), fixed);
        assert_eq!(shed.n, 0);
        assert!(shed.pause(&status(503, Some(1)), fixed) >= Duration::from_secs(1));
    }

    /// A wait that follows calls the server turned away starts its backoff at the level they
    /// reached (`WaitOptions::shed_level`, the join's pacing): after a 429 with `Retry-After: 1`
    /// a fresh wait pauses 1–2 s, one at level 5 up to 1 + 4 s (the API policy's ceiling there).
    #[test]
    fn a_list_turned_away_starts_at_the_join_s_level() {
        let status = RequestError::Status(Box::new(crate::kube::StatusError {
            code: 429,
            reason: "TooManyRequests".into(),
            message: String::new(),
            retry_after: Some(Duration::from_secs(1)),
            location: None,
        }));
        let fixed = Duration::from_millis(100);
        assert_eq!(WaitOptions::default().shed_level, 0, "a wait on its own");
        let draws = |level: u32| -> Vec<Duration> {
            (0..64)
                .map(|_| {
                    let mut shed = Shed::from_level(level);
                    let p = shed.pause(&status, fixed);
                    assert_eq!(shed.n, level + 1);
                    p
                })
                .collect()
        };
        let fresh = draws(0);
        assert!(fresh
            .iter()
            .all(|p| *p >= Duration::from_secs(1) && *p <= Duration::from_secs(2)));
        let paced = draws(5);
        assert!(paced
            .iter()
            .all(|p| *p >= Duration::from_secs(1) && *p <= Duration::from_secs(5)));
        // 64 uniform draws over [1 s, 5 s] all below 2 s: probability 4^-64.
        assert!(
            paced.iter().any(|p| *p > Duration::from_secs(2)),
            "{paced:?}"
        );
    }

    use super::*;

    const UID: &str = "16c03c97-3eb7-4276-9870-520db5b279a8";
    const NAME: &str = "node-csr-realcp-1795348575-5052";

    fn events(file: &str) -> Vec<WatchEvent<CertificateSigningRequest>> {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/apiserver/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn captured_stream_goes_pending_approved_issued() {
        let evs = events("csr-watch-stream.jsonl");
        assert_eq!(evs.len(), 3);
        let s0 = WaitState::default();
        let Next::Continue(s1) = progress(&s0, NAME, Some(UID), &evs[0]).unwrap() else {
            panic!("issued early")
        };
        assert_eq!(
            s1,
            WaitState {
                approved: false,
                resource_version: Some("358".into()),
                relist: false
            }
        );
        let Next::Continue(s2) = progress(&s1, NAME, Some(UID), &evs[1]).unwrap() else {
            panic!("issued early")
        };
        assert_eq!(
            s2,
            WaitState {
                approved: true,
                resource_version: Some("359".into()),
                relist: false
            }
        );
        let Next::Issued(cert) = progress(&s2, NAME, Some(UID), &evs[2]).unwrap() else {
            panic!("not issued")
        };
        assert!(cert.starts_with(b"-----BEGIN CERTIFICATE-----\n"));
    }

    #[test]
    fn captured_denial_carries_reason_and_message() {
        let evs = events("csr-watch-denied.jsonl");
        let e = progress(&WaitState::default(), "node-csr-deny-demo", None, &evs[0]).unwrap_err();
        match &e {
            Error::Denied {
                name,
                reason,
                message,
            } => {
                assert_eq!(name, "node-csr-deny-demo");
                assert_eq!(reason, "KubectlDeny");
                assert_eq!(message, "This CSR was denied by kubectl certificate deny.");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "certificate signing request node-csr-deny-demo is denied, reason: KubectlDeny, message: This CSR was denied by kubectl certificate deny."
        );
        use crate::error::Classify as _;
        assert_eq!(e.class(), crate::error::Class::Rejected);
    }

    #[test]
    fn captured_410_asks_for_a_relist() {
        let evs = events("watch-error-410-too-old-resource-version.jsonl");
        let s = WaitState {
            approved: true,
            resource_version: Some("1".into()),
            relist: false,
        };
        assert_eq!(
            progress(&s, NAME, Some(UID), &evs[0]).unwrap(),
            Next::Continue(WaitState {
                approved: true,
                resource_version: None,
                relist: true
            })
        );
    }

    #[test]
    fn deletion_uid_change_failure_and_bookmarks() {
        let evs = events("csr-watch-stream.jsonl");
        let WatchEvent::Added(csr) = &evs[0] else {
            panic!()
        };
        let deleted = WatchEvent::Deleted(csr.clone());
        assert!(matches!(
            progress(&WaitState::default(), NAME, Some(UID), &deleted),
            Err(Error::Deleted { .. })
        ));
        // Someone else's object (should not come through the field selector) is ignored.
        assert_eq!(
            progress(&WaitState::default(), "other", None, &deleted).unwrap(),
            Next::Continue(WaitState::default())
        );
        assert!(matches!(
            progress(&WaitState::default(), NAME, Some("x"), &evs[0]),
            Err(Error::UidChanged { .. })
        ));

        let mut failed = csr.clone();
        failed.status = serde_json::from_value(serde_json::json!({"conditions": [
            {"type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": "bad"}]}))
        .unwrap();
        assert!(matches!(
            examine(&WaitState::default(), NAME, Some(UID), &failed),
            Err(Error::Failed { reason, .. }) if reason == "SignerValidationFailure"
        ));

        let bm: WatchEvent<CertificateSigningRequest> = serde_json::from_value(serde_json::json!({
            "type": "BOOKMARK",
            "object": {"kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1",
                       "metadata": {"resourceVersion": "999"}}}))
        .unwrap();
        let Next::Continue(s) = progress(
            &WaitState {
                approved: true,
                ..Default::default()
            },
            NAME,
            None,
            &bm,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            s,
            WaitState {
                approved: true,
                resource_version: Some("999".into()),
                relist: false
            }
        );
    }

    #[test]
    fn certificate_without_approval_is_not_taken() {
        let evs = events("csr-watch-stream.jsonl");
        let WatchEvent::Modified(mut csr) = evs[2].clone() else {
            panic!()
        };
        csr.status.as_mut().unwrap().conditions = None;
        assert!(matches!(
            examine(&WaitState::default(), NAME, Some(UID), &csr).unwrap(),
            Next::Continue(_)
        ));
    }

    #[test]
    fn usages_note_only_for_sets_old_control_planes_refuse() {
        let s = |v: &[&str]| v.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        assert_eq!(
            usages_note(&s(&[
                "digital signature",
                "key encipherment",
                "client auth"
            ])),
            ""
        );
        assert_eq!(usages_note(&[]), "");
        let note = usages_note(&s(&["digital signature", "client auth"]));
        assert!(
            note.contains("[digital signature, client auth]") && note.contains("before v1.25"),
            "{note}"
        );
    }

    #[test]
    fn progress_lines_name_the_approve_command() {
        let l = progress_line(
            "node-csr-abc",
            false,
            Duration::from_secs(20),
            Duration::from_secs(300),
        );
        assert_eq!(
            l,
            "waiting for certificate signing request node-csr-abc to be approved (20s elapsed, timeout 5m0s); \
             an administrator can approve it with: kubectl certificate approve node-csr-abc"
        );
        assert!(
            progress_line("n", true, Duration::from_secs(61), Duration::from_secs(300))
                .contains("1m1s elapsed")
        );
    }
}

/// The pauses of the wait's list/watch loop. A 429 or 503 with `Retry-After` (an API server
/// shedding load under a fleet) is waited as the server said plus the retry policy's jitter,
/// wider each time in a row ([`crate::http::retry::Policy::pause`]), as every other API call of
/// the join is: a fleet whose watches all failed at once does not come back in lockstep. Any
/// other failure waits the fixed `retry_pause`. Like the join's other calls
/// ([`crate::http::retry::Pacing`]) the level starts where the join's earlier calls left it, rises
/// with each answer that sheds load and halves with each one served: a node that had to come
/// back several times for its CSR meets the same saturated server with its list, and must not
/// return to it with the narrowest window.
#[derive(Debug, Default)]
struct Shed {
    /// The backoff level: answers that shed load, halved by each one served.
    n: u32,
    env: Option<crate::http::retry::RealEnv>,
}

impl Shed {
    fn pause(&mut self, e: &crate::kube::RequestError, fixed: Duration) -> Duration {
        use crate::http::retry::{Env as _, Pause};
        let shed = matches!(e.status_code(), Some(429 | 503));
        let Some(after) = e.retry_after().filter(|_| shed) else {
            return fixed;
        };
        let random = self
            .env
            .get_or_insert_with(crate::http::retry::RealEnv::new)
            .random();
        let pause = super::backoff::API_POLICY.pause(self.n, Pause::RetryAfter(after), random);
        self.n = self.n.saturating_add(1);
        pause
    }

    fn from_level(level: u32) -> Shed {
        Shed {
            n: level,
            env: None,
        }
    }

    fn served(&mut self) {
        self.n /= 2;
    }
}
