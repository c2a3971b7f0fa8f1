//! The boot as named stages (Talos' phases), run in order under the failure policy.
//!
//! [`Boot`] is what runs one stage; [`run_stages`] is the loop around it: a phase (log lines and
//! a timeline entry) per stage, the overall deadline as a bound on every stage, orphans reaped
//! between stages, and [`decide`] consulted on every failure. A retry re-runs the stage that
//! failed (earlier stages' results are kept in the [`Boot`]).

use super::config::InitConfig;
use super::policy::{decide, Action, Failure, Schedule};
use crate::error::Class;
use crate::join::Phase;
use crate::log;
use crate::sys::init::Init;
use std::time::{Duration, Instant};

pub use crate::join::Done;

/// PID 1's own stage that follows a join phase: `sysroot` after host preparation (the real
/// root's disk driver is loaded by then), `local-sources` before the network (a local config may
/// describe it).
fn own_stages(phase: Phase) -> (&'static [&'static str], &'static [&'static str]) {
    match phase {
        Phase::Host => (&[], &["sysroot"]),
        Phase::Network => (&["local-sources"], &[]),
        _ => (&[], &[]),
    }
}

/// The stages of a join from the initramfs, in order: the join's phases ([`crate::join::PHASES`])
/// with PID 1's own stages around them.
pub fn stages() -> Vec<&'static str> {
    let mut out = Vec::new();
    for &phase in crate::join::PHASES {
        let (before, after) = own_stages(phase);
        out.extend_from_slice(before);
        out.push(phase.name());
        out.extend_from_slice(after);
    }
    out
}

/// Runs the stages. Implementations keep each stage's output for the later ones.
#[allow(async_fn_in_trait)] // only used with concrete types, never as `dyn`
pub trait Boot {
    async fn stage(&mut self, name: &'static str) -> Result<Done, Failure>;
}

/// How the stages ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every stage ran and the last one returned (a handoff that execs never returns).
    Completed,
    /// A stage failed for good; `action` is what the policy says to do now.
    Failed {
        failure: Failure,
        action: Action,
        attempt: u32,
    },
}

/// Runs `stages` on `boot` until they are done or one fails for good.
pub async fn run_stages<B: Boot>(
    boot: &mut B,
    stages: &[&'static str],
    sys: &dyn Init,
    cfg: &InitConfig,
    schedule: &Schedule,
    started: Instant,
) -> Ended {
    let mut i = 0;
    let mut attempt = 1;
    while let Some(&name) = stages.get(i) {
        super::watchdog::set_stage(name);
        let phase = log::phase(name);
        let remaining = cfg.timeout.saturating_sub(started.elapsed());
        let result = match tokio::time::timeout(remaining, boot.stage(name)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                name,
                Class::Timeout,
                format!(
                    "stage {name} was still running when kubejoin.timeout ({}) ran out",
                    crate::time::duration::format(cfg.timeout)
                ),
            )
            .with_hint("raise kubejoin.timeout on the kernel command line if the network or the cluster is slow")),
        };
        for r in sys.reap() {
            crate::debug!("reaped orphan {} ({})", r.pid, r.how);
        }
        match result {
            Ok(Done::Ok) => {
                phase.ok();
                i += 1;
                attempt = 1;
            }
            Ok(Done::Skipped(why)) => {
                crate::info!("[{name}] skipped: {why}");
                phase.skipped();
                i += 1;
                attempt = 1;
            }
            Err(failure) => {
                drop(phase);
                let action = decide(
                    cfg.on_failure,
                    failure.class,
                    attempt,
                    started.elapsed(),
                    cfg.timeout,
                    schedule,
                    sys.is_pid1(),
                );
                match action {
                    Action::RetryIn(pause) => {
                        let first = failure
                            .message
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .trim_start_matches("error: ");
                        crate::warn!(
                            "[{name}] attempt {attempt} failed: {first}; retrying in {} (until kubejoin.timeout={})",
                            crate::time::duration::format(pause),
                            crate::time::duration::format(cfg.timeout)
                        );
                        if let Some(h) = &failure.hint {
                            crate::warn!("[{name}] hint: {h}");
                        }
                        sleep_reaping(sys, pause).await;
                        attempt += 1;
                    }
                    action => {
                        return Ended::Failed {
                            failure,
                            action,
                            attempt,
                        }
                    }
                }
            }
        }
    }
    Ended::Completed
}

/// Sleeps, reaping orphans once a second meanwhile.
pub async fn sleep_reaping(sys: &dyn Init, d: Duration) {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        sys.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::boot::OnFailure;
    use crate::sys::init::RecordingInit;
    use std::collections::HashMap;

    /// Stages that fail a set number of times with a set class, then succeed.
    struct Scripted {
        fail: HashMap<&'static str, (u32, Class)>,
        ran: Vec<&'static str>,
        slow: Option<&'static str>,
    }

    impl Boot for Scripted {
        async fn stage(&mut self, name: &'static str) -> Result<Done, Failure> {
            self.ran.push(name);
            if self.slow == Some(name) {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            match self.fail.get_mut(name) {
                Some((n, class)) if *n > 0 => {
                    *n -= 1;
                    Err(Failure::new(name, *class, format!("{name} broke")))
                }
                _ if name == "sources" => Ok(Done::Skipped("no metadata".into())),
                _ => Ok(Done::Ok),
            }
        }
    }

    #[test]
    fn the_boot_runs_the_join_phases_with_its_own_stages_around_them() {
        assert_eq!(
            stages(),
            [
                "host-prep",
                "sysroot",
                "local-sources",
                "network",
                "sources",
                "clock",
                "discovery",
                "join",
                "handoff"
            ]
        );
    }

    fn cfg(policy: OnFailure, timeout_ms: u64) -> InitConfig {
        let mut c = InitConfig::from_cmdline("");
        c.on_failure = policy;
        c.timeout = Duration::from_millis(timeout_ms);
        c
    }

    const FAST: Schedule = Schedule {
        first: Duration::from_millis(1),
        max: Duration::from_millis(4),
        before_reboot: Duration::from_millis(1),
    };

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn runs_every_stage_in_order() {
        let mut b = Scripted {
            fail: HashMap::new(),
            ran: vec![],
            slow: None,
        };
        let sys = RecordingInit::new();
        let end = rt().block_on(run_stages(
            &mut b,
            &stages(),
            &sys,
            &cfg(OnFailure::Retry, 60_000),
            &FAST,
            Instant::now(),
        ));
        assert_eq!(end, Ended::Completed);
        assert_eq!(b.ran, stages());
    }

    #[test]
    fn retries_the_failed_stage_only() {
        let mut b = Scripted {
            fail: HashMap::from([("discovery", (3, Class::Timeout))]),
            ran: vec![],
            slow: None,
        };
        let sys = RecordingInit::new();
        let end = rt().block_on(run_stages(
            &mut b,
            &stages(),
            &sys,
            &cfg(OnFailure::Retry, 60_000),
            &FAST,
            Instant::now(),
        ));
        assert_eq!(end, Ended::Completed);
        assert_eq!(b.ran.iter().filter(|s| **s == "discovery").count(), 4);
        assert_eq!(b.ran.iter().filter(|s| **s == "network").count(), 1);
    }

    #[test]
    fn a_trust_failure_is_not_retried() {
        let mut b = Scripted {
            fail: HashMap::from([("discovery", (1, Class::Trust))]),
            ran: vec![],
            slow: None,
        };
        let sys = RecordingInit::new();
        let end = rt().block_on(run_stages(
            &mut b,
            &stages(),
            &sys,
            &cfg(OnFailure::Retry, 60_000),
            &FAST,
            Instant::now(),
        ));
        let Ended::Failed {
            failure,
            action,
            attempt,
        } = end
        else {
            panic!("{end:?}")
        };
        assert_eq!(
            (failure.stage, failure.class, attempt),
            ("discovery", Class::Trust, 1)
        );
        assert_eq!(
            action,
            Action::Reboot {
                after: FAST.before_reboot
            }
        );
        assert!(!b.ran.contains(&"join"));
    }

    #[test]
    fn poweroff_policy_acts_on_the_first_failure() {
        let mut b = Scripted {
            fail: HashMap::from([("network", (5, Class::Timeout))]),
            ran: vec![],
            slow: None,
        };
        let sys = RecordingInit::new();
        let end = rt().block_on(run_stages(
            &mut b,
            &stages(),
            &sys,
            &cfg(OnFailure::Poweroff, 60_000),
            &FAST,
            Instant::now(),
        ));
        assert!(
            matches!(
                end,
                Ended::Failed {
                    action: Action::Poweroff,
                    attempt: 1,
                    ..
                }
            ),
            "{end:?}"
        );
    }

    #[test]
    fn the_deadline_bounds_a_hanging_stage_and_the_retries() {
        let mut b = Scripted {
            fail: HashMap::new(),
            ran: vec![],
            slow: Some("join"),
        };
        let sys = RecordingInit::new();
        let end = rt().block_on(run_stages(
            &mut b,
            &stages(),
            &sys,
            &cfg(OnFailure::Retry, 200),
            &FAST,
            Instant::now(),
        ));
        let Ended::Failed {
            failure, action, ..
        } = end
        else {
            panic!("{end:?}")
        };
        assert_eq!((failure.stage, failure.class), ("join", Class::Timeout));
        assert!(
            failure.message.contains("kubejoin.timeout (200ms)"),
            "{}",
            failure.message
        );
        assert_eq!(
            action,
            Action::Reboot {
                after: Duration::ZERO
            }
        );

        // A stage that keeps failing: retried until the deadline, then the reboot.
        let mut b = Scripted {
            fail: HashMap::from([("network", (u32::MAX, Class::Other))]),
            ran: vec![],
            slow: None,
        };
        let t = Instant::now();
        let end = rt().block_on(run_stages(
            &mut b,
            &stages(),
            &sys,
            &cfg(OnFailure::Retry, 150),
            &FAST,
            t,
        ));
        assert!(
            matches!(
                end,
                Ended::Failed {
                    action: Action::Reboot { .. },
                    ..
                }
            ),
            "{end:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(b.ran.len() > 5);
        // Orphans were reaped between attempts.
        assert!(
            sys.calls()
                .iter()
                .filter(|c| **c == crate::sys::init::InitCall::Reap)
                .count()
                > 5
        );
    }
}
