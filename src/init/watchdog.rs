//! The last line of the deadline: a thread that acts on the failure policy when the boot is
//! still running well after `kubejoin.timeout`.
//!
//! Every stage already runs under `tokio::time::timeout`, but that only works when the stage
//! yields to the runtime. A stage stuck in a blocking call (a socket read without a timeout, a
//! kernel call that never returns) would hold the runtime's only thread forever, and PID 1 would
//! hang with nobody to notice. This thread does not depend on the runtime: after the deadline
//! plus [`GRACE`] it prints the reason block, writes `result.json` and reboots, powers off or
//! starts the shell, from outside the stuck thread.
//!
//! It is disarmed before every exec (the kubelet, the real root's init) and before the final
//! action of a boot that ended on its own.

use super::config::{InitConfig, OnFailure};
use super::policy::{Action, Failure};
use crate::error::Class;
use crate::sys::init::Init;
use crate::sys::Exec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long past `kubejoin.timeout` the watchdog waits for the runtime's own deadline to win.
pub const GRACE: Duration = Duration::from_secs(15);

static DISARMED: AtomicBool = AtomicBool::new(false);
static STAGE: Mutex<&'static str> = Mutex::new("init");

/// Records the stage that is running (for the watchdog's reason block).
pub fn set_stage(name: &'static str) {
    if let Ok(mut s) = STAGE.lock() {
        *s = name;
    }
}

/// The stage that is running.
pub fn stage() -> &'static str {
    STAGE.lock().map(|s| *s).unwrap_or("unknown")
}

/// Stops the watchdog from acting (the boot reached its end, or an exec follows).
pub fn disarm() {
    DISARMED.store(true, Ordering::SeqCst);
}

fn disarmed() -> bool {
    DISARMED.load(Ordering::SeqCst)
}

/// What the watchdog does when it fires: the policy's final action, never a retry (the stuck
/// thread cannot be retried).
pub fn action(cfg: &InitConfig, pid1: bool) -> Action {
    if !pid1 {
        return Action::Exit(Class::Timeout.exit_code());
    }
    match cfg.on_failure {
        OnFailure::Retry | OnFailure::Reboot => Action::Reboot {
            after: Duration::ZERO,
        },
        OnFailure::Poweroff => Action::Poweroff,
        OnFailure::Shell => Action::Shell,
    }
}

/// The failure the watchdog reports.
pub fn failure(cfg: &InitConfig) -> Failure {
    let stage = stage();
    Failure::new(
        stage,
        Class::Timeout,
        format!(
            "stage {stage} was still running {} after kubejoin.timeout ({}) ran out and did not stop by itself",
            crate::time::duration::format(GRACE),
            crate::time::duration::format(cfg.timeout)
        ),
    )
    .with_hint("a blocking call hung; the log above shows the last thing kubejoin did")
}

/// Starts the watchdog thread. `sys` and `exec` are moved into it.
pub fn start(
    sys: Arc<dyn Init>,
    exec: Arc<dyn Exec>,
    cfg: InitConfig,
    started: Instant,
    kernel_to_init: Option<Duration>,
) {
    let deadline = cfg.timeout.saturating_add(GRACE);
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            while started.elapsed() < deadline {
                if disarmed() {
                    return;
                }
                std::thread::sleep(
                    Duration::from_millis(500).min(deadline.saturating_sub(started.elapsed())),
                );
            }
            if disarmed() {
                return;
            }
            disarm();
            let f = failure(&cfg);
            let action = action(&cfg, sys.is_pid1());
            super::report_failed_boot(&cfg, &f, &action, 1, started, kernel_to_init);
            super::act(&*sys, &*exec, action);
        });
    if let Err(e) = spawned {
        crate::warn!(
            "could not start the watchdog thread ({e}): a hung stage would not be noticed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_action_of_each_policy() {
        let cfg = |p: &str| InitConfig::from_cmdline(&format!("kubejoin.on-failure={p}"));
        assert_eq!(
            action(&cfg("retry"), true),
            Action::Reboot {
                after: Duration::ZERO
            }
        );
        assert_eq!(
            action(&cfg("reboot"), true),
            Action::Reboot {
                after: Duration::ZERO
            }
        );
        assert_eq!(action(&cfg("poweroff"), true), Action::Poweroff);
        assert_eq!(action(&cfg("shell"), true), Action::Shell);
        assert_eq!(action(&cfg("poweroff"), false), Action::Exit(5));
    }

    #[test]
    fn the_reason_names_the_stuck_stage() {
        set_stage("network");
        let f = failure(&InitConfig::from_cmdline("kubejoin.timeout=90s"));
        assert_eq!((f.stage, f.class), ("network", Class::Timeout));
        assert!(
            f.message
                .contains("stage network was still running 15s after kubejoin.timeout (1m30s)"),
            "{}",
            f.message
        );
    }
}
