//! One join's overall deadline, its phase records, and what it produced.

use super::Error;
use crate::bootstrap::{backoff, wait};
use crate::deadline::{Deadline, PhaseClock};
use crate::discovery::Discovered;
use crate::log;
use crate::pki::pin::CaPin;
use crate::plan::node_name::NodeName;
use std::time::{Duration, SystemTime};

/// Knobs of the post-discovery pipeline that tests shorten; `Default` is the binary's.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The CSR wait; its `timeout` is replaced by `min(plan.tls_bootstrap_timeout, time left)`.
    pub wait: wait::WaitOptions,
    /// Retry schedule of the API calls of `cluster-config` and `csr`.
    pub backoff: crate::http::retry::Policy,
    /// Own bound of each API phase (`cluster-config`, `csr`): kubeadm's 1 m for an API call
    /// with retries (`timeouts.kubernetesAPICall`); while the server sheds load (429/503 with
    /// `Retry-After`) the overall deadline bounds the phase instead (`retry::Bounds`).
    pub api_phase: Duration,
    /// Own bound of the local writes (`install`, `completion`).
    pub install_phase: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            wait: wait::WaitOptions::default(),
            backoff: backoff::API_POLICY,
            api_phase: Duration::from_secs(60),
            install_phase: Duration::from_secs(60),
        }
    }
}

/// One join's overall deadline and the record of its phases for `result.json`. Kept per join
/// (not process-wide) so joins running side by side in one process each report their own.
#[derive(Debug)]
pub struct Run {
    pub deadline: Deadline,
    phases: Vec<log::PhaseRecord>,
    /// What the clock phase did, for `result.json`.
    pub(super) clock: Option<crate::clock::phase::ClockRecord>,
}

/// A phase in progress: its log line, its clock, its wall-clock start.
pub(super) struct Stage {
    log: log::Phase,
    pub(super) clock: PhaseClock,
    wall: SystemTime,
}

impl Run {
    /// A run whose overall deadline is `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        Self {
            deadline: Deadline::after(timeout),
            phases: Vec::new(),
            clock: None,
        }
    }

    /// Keeps what the clock phase did (run before this join's discovery) for `result.json`.
    pub fn with_clock(mut self, clock: Option<crate::clock::phase::ClockRecord>) -> Self {
        self.clock = clock;
        self
    }

    /// The phases finished so far, in order.
    pub fn phases(&self) -> &[log::PhaseRecord] {
        &self.phases
    }

    pub(super) fn begin(&self, name: &'static str, phase_max: Duration) -> Stage {
        Stage {
            log: log::phase(name),
            clock: self.deadline.phase(name, phase_max),
            wall: SystemTime::now(),
        }
    }

    pub(super) fn end(&mut self, stage: Stage, skipped: bool) {
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        };
        let took = stage.clock.started.elapsed().as_millis();
        let start_ms = ms(stage.wall);
        let steps = if skipped {
            stage.log.skipped_steps()
        } else {
            stage.log.ok_steps()
        };
        self.phases.push(log::PhaseRecord {
            phase: stage.clock.name.to_string(),
            start_ms,
            end_ms: start_ms + took,
            duration_ms: took,
            outcome: if skipped { "skipped" } else { "ok" }.into(),
            detail: None,
            steps,
        });
    }
}

/// Runs local file work off the async workers (an fsync can take long on a busy disk, and joins
/// running side by side must not stall each other's network I/O), cut at the phase's clock.
/// When the clock wins, the write may still complete in the background: the atomic writer
/// makes whatever it finishes whole, so giving up is safe at any instant.
pub(super) async fn on_disk<T, F>(clock: &PhaseClock, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    match clock.run(tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(Error::Internal(format!(
            "the {} phase's file task ended abnormally: {e}",
            clock.name
        ))),
        Err(expired) => Err(Error::Deadline(expired)),
    }
}

/// How a join ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Certificate issued and every file installed.
    Joined,
    /// A valid identity for this node and cluster was already installed; nothing was done.
    AlreadyJoined,
    /// `--dry-run`: everything read, nothing written or submitted.
    DryRun,
}

/// What [`super::bootstrap_and_install`] did.
#[derive(Debug, Clone)]
pub struct Joined {
    pub outcome: Outcome,
    pub node: NodeName,
    /// The CSR that was submitted or resumed.
    pub csr: Option<String>,
    /// The CSR already existed with our name (an interrupted join resumed).
    pub csr_reused: bool,
    /// notAfter of the node certificate, Unix seconds.
    pub not_after: Option<i64>,
    /// The progress lines printed while the CSR was pending.
    pub progress: Vec<String>,
    /// What was (or, in a dry run, would be) written, in order.
    pub steps: Vec<String>,
    /// The phases run, as written to `result.json`.
    pub phases: Vec<log::PhaseRecord>,
}

pub(super) fn ca_pin(d: &Discovered) -> Option<String> {
    d.matched_pin
        .clone()
        .or_else(|| {
            d.ca_der
                .first()
                .and_then(|der| CaPin::of_cert_der(der).ok())
        })
        .map(|p| p.to_string())
}
