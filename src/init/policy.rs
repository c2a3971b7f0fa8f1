//! The failure policy: what PID 1 does when the join fails, and the record it leaves.
//!
//! PID 1 may not exit (the kernel panics when it does), so every failure ends in one of:
//! a retry, a reboot, a power-off, or a shell. Before acting, kubejoin prints one reason block
//! on the console and writes the same facts to `/run/kubejoin/result.json`.
//!
//! Retry schedule (`kubejoin.on-failure=retry`, the default): the failed stage is run again after
//! 2 s, 4 s, 8 s, 16 s, then every 30 s, as long as the next attempt would start before
//! `kubejoin.timeout` (default 10 m) has passed since `/init` started; then the machine reboots.
//! Only failures that can heal by waiting are retried: timeouts and "other" (a network that is
//! not up yet, a server that is restarting). A usage error (bad join data), a trust failure (the
//! pin does not match) or a rejection (token refused, CSR denied) will fail the same way again,
//! so those reboot right away, after a pause that keeps a reboot loop slow and the reason
//! readable on the console.
//!
//! Outside PID 1 (`kubejoin init` run by hand) nothing is ever rebooted or powered off: the
//! action becomes an exit with the failure's exit code.

use super::config::OnFailure;
use crate::error::{Class, Classify, Report};
use std::time::Duration;

/// One failed stage, rendered for people and for `result.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The stage that failed (`discovery`, …).
    pub stage: &'static str,
    pub class: Class,
    /// The error and its causes, one per line (`error: …`, `  caused by: …`).
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    /// From any of the crate's classified errors.
    pub fn from_error<E: Classify + 'static>(stage: &'static str, e: &E) -> Self {
        let hint = e.hint();
        let message = Report(e, None).to_string();
        Failure {
            stage,
            class: e.class(),
            message,
            hint,
        }
    }

    /// A failure without an error value (a missing piece, a deadline).
    pub fn new(stage: &'static str, class: Class, message: impl Into<String>) -> Self {
        Failure {
            stage,
            class,
            message: format!("error: {}", message.into()),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The lowercase name of a class, as `result.json` carries it.
pub fn class_name(c: Class) -> &'static str {
    match c {
        Class::Usage => "usage",
        Class::Trust => "trust",
        Class::Rejected => "rejected",
        Class::Timeout => "timeout",
        Class::Other => "other",
    }
}

/// Whether waiting and trying again can help.
pub fn retryable(c: Class) -> bool {
    matches!(c, Class::Timeout | Class::Other)
}

/// The pauses between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub first: Duration,
    pub max: Duration,
    /// Pause before a policy reboot, so a reboot loop stays slow and the reason stays readable.
    pub before_reboot: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            first: Duration::from_secs(2),
            max: Duration::from_secs(30),
            before_reboot: Duration::from_secs(15),
        }
    }
}

impl Schedule {
    /// The pause after failed attempt `attempt` (1-based): first, 2×first, 4×first, … ≤ max.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run the failed stage again after this pause.
    RetryIn(Duration),
    Reboot {
        after: Duration,
    },
    Poweroff,
    Shell,
    /// Not PID 1: exit with this code.
    Exit(u8),
}

impl Action {
    /// A short name for `result.json` and the console.
    pub fn name(&self) -> &'static str {
        match self {
            Action::RetryIn(_) => "retry",
            Action::Reboot { .. } => "reboot",
            Action::Poweroff => "poweroff",
            Action::Shell => "shell",
            Action::Exit(_) => "exit",
        }
    }
}

/// The decision for a failure of class `class` on attempt `attempt` (1-based), `elapsed` after
/// `/init` started, under `policy` and the overall `timeout`.
pub fn decide(
    policy: OnFailure,
    class: Class,
    attempt: u32,
    elapsed: Duration,
    timeout: Duration,
    schedule: &Schedule,
    pid1: bool,
) -> Action {
    let pause = schedule.backoff(attempt);
    let may_retry = retryable(class) && elapsed.saturating_add(pause) < timeout;
    match (policy, pid1) {
        (OnFailure::Retry, _) if may_retry => Action::RetryIn(pause),
        (_, false) => Action::Exit(class.exit_code()),
        (OnFailure::Retry, true) => Action::Reboot {
            after: if retryable(class) {
                Duration::ZERO
            } else {
                schedule.before_reboot
            },
        },
        (OnFailure::Reboot, true) => Action::Reboot {
            after: Duration::ZERO,
        },
        (OnFailure::Poweroff, true) => Action::Poweroff,
        (OnFailure::Shell, true) => Action::Shell,
    }
}

/// The console reason block: what failed, why, what to do, and what happens next.
pub fn reason_block(
    f: &Failure,
    policy: OnFailure,
    action: &Action,
    attempt: u32,
    elapsed: Duration,
) -> Vec<String> {
    let mut lines = vec![format!(
        "======== join failed in stage {} ========",
        f.stage
    )];
    // Every console line already says `kubejoin: error:`; the message's own `error: ` would
    // only repeat it.
    lines.extend(
        f.message
            .lines()
            .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string()),
    );
    if let Some(h) = &f.hint {
        lines.push(format!("  hint: {h}"));
    }
    lines.push(format!(
        "attempt {attempt}, {} after /init started; class {} (exit code {})",
        crate::time::duration::format(elapsed),
        class_name(f.class),
        f.class.exit_code()
    ));
    let next = match action {
        Action::RetryIn(d) => format!("retrying in {}", crate::time::duration::format(*d)),
        Action::Reboot { after } if after.is_zero() => "rebooting now".to_string(),
        Action::Reboot { after } => {
            format!("rebooting in {}", crate::time::duration::format(*after))
        }
        Action::Poweroff => "powering off now".to_string(),
        Action::Shell => "starting a shell on the console".to_string(),
        Action::Exit(code) => {
            format!("not PID 1: exiting with code {code} instead of acting on the machine")
        }
    };
    lines.push(format!(
        "policy: kubejoin.on-failure={} -> {next}",
        policy.name()
    ));
    lines.push(format!("details: {}", crate::install::RESULT_JSON));
    lines.push("=".repeat(lines[0].chars().count()));
    lines
}

/// `result.json` for a failure.
pub fn failure_json(
    f: &Failure,
    policy: OnFailure,
    action: &Action,
    attempt: u32,
    elapsed: Duration,
) -> serde_json::Value {
    serde_json::json!({
        "outcome": "failed",
        "stage": f.stage,
        "class": class_name(f.class),
        "exit_code": f.class.exit_code(),
        "error": f.message,
        "hint": f.hint,
        "policy": policy.name(),
        "action": action.name(),
        "attempt": attempt,
        "elapsed_ms": elapsed.as_millis() as u64,
        "timeline": crate::log::timeline(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Schedule = Schedule {
        first: Duration::from_secs(2),
        max: Duration::from_secs(30),
        before_reboot: Duration::from_secs(15),
    };
    const T: Duration = Duration::from_secs(600);

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let got: Vec<u64> = (1..=7).map(|a| S.backoff(a).as_secs()).collect();
        assert_eq!(got, vec![2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(S.backoff(1000), Duration::from_secs(30));
        assert_eq!(S.backoff(0), Duration::from_secs(2));
    }

    #[test]
    fn retry_policy_retries_what_can_heal_until_the_deadline() {
        let d = |class, attempt, elapsed| {
            decide(OnFailure::Retry, class, attempt, elapsed, T, &S, true)
        };
        assert_eq!(
            d(Class::Timeout, 1, Duration::ZERO),
            Action::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(
            d(Class::Other, 3, Duration::from_secs(60)),
            Action::RetryIn(Duration::from_secs(8))
        );
        // The next attempt would start after the deadline: reboot now.
        assert_eq!(
            d(Class::Other, 9, Duration::from_secs(590)),
            Action::Reboot {
                after: Duration::ZERO
            }
        );
        // Bad data, a wrong pin, a refusal: retrying cannot help; reboot after a readable pause.
        for c in [Class::Usage, Class::Trust, Class::Rejected] {
            assert_eq!(
                d(c, 1, Duration::ZERO),
                Action::Reboot {
                    after: S.before_reboot
                }
            );
        }
    }

    #[test]
    fn explicit_policies_act_at_once() {
        for (p, a) in [
            (
                OnFailure::Reboot,
                Action::Reboot {
                    after: Duration::ZERO,
                },
            ),
            (OnFailure::Poweroff, Action::Poweroff),
            (OnFailure::Shell, Action::Shell),
        ] {
            assert_eq!(decide(p, Class::Timeout, 1, Duration::ZERO, T, &S, true), a);
            assert_eq!(decide(p, Class::Trust, 1, Duration::ZERO, T, &S, true), a);
        }
    }

    #[test]
    fn outside_pid1_nothing_is_rebooted() {
        assert_eq!(
            decide(
                OnFailure::Poweroff,
                Class::Trust,
                1,
                Duration::ZERO,
                T,
                &S,
                false
            ),
            Action::Exit(3)
        );
        assert_eq!(
            decide(
                OnFailure::Retry,
                Class::Usage,
                1,
                Duration::ZERO,
                T,
                &S,
                false
            ),
            Action::Exit(2)
        );
        assert_eq!(
            decide(
                OnFailure::Retry,
                Class::Other,
                1,
                Duration::ZERO,
                T,
                &S,
                false
            ),
            Action::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(
            decide(OnFailure::Retry, Class::Other, 1, T, T, &S, false),
            Action::Exit(1)
        );
    }

    #[test]
    fn the_reason_block_says_what_why_and_next() {
        let f = Failure::new(
            "discovery",
            Class::Trust,
            "cluster CA found in cluster-info ConfigMap is invalid",
        )
        .with_hint("check the pin");
        let b = reason_block(
            &f,
            OnFailure::Poweroff,
            &Action::Poweroff,
            1,
            Duration::from_millis(5300),
        );
        assert_eq!(b[0], "======== join failed in stage discovery ========");
        assert_eq!(
            b[1],
            "cluster CA found in cluster-info ConfigMap is invalid"
        );
        assert_eq!(b[2], "  hint: check the pin");
        assert_eq!(
            b[3],
            "attempt 1, 5.3s after /init started; class trust (exit code 3)"
        );
        assert_eq!(
            b[4],
            "policy: kubejoin.on-failure=poweroff -> powering off now"
        );
        assert_eq!(b[5], "details: /run/kubejoin/result.json");
        assert_eq!(b[6].len(), b[0].len());
        let j = failure_json(
            &f,
            OnFailure::Poweroff,
            &Action::Poweroff,
            1,
            Duration::from_millis(5300),
        );
        assert_eq!(j["stage"], "discovery");
        assert_eq!(j["class"], "trust");
        assert_eq!(j["exit_code"], 3);
        assert_eq!(j["action"], "poweroff");
        assert_eq!(j["hint"], "check the pin");
    }
}
