//! PID 1 mode: kubejoin as the initramfs' `/init` (or `kubejoin init`).
//!
//! The kernel runs `/init` with nothing set up, and panics if it ever exits. So this module:
//!
//! 1. mounts the API filesystems from a table ([`mounts::EARLY_MOUNTS`]) and opens the console
//!    when the image did not give us one;
//! 2. copies every log line to the console and `/dev/kmsg` ([`console`]);
//! 3. reads its own settings from `/proc/cmdline` ([`config`]: failure policy, deadline,
//!    handoff, real root);
//! 4. runs the boot stages ([`pipeline::stages`]: the join's one phase list,
//!    [`crate::join::PHASES`], with PID 1's own stages around it; run by [`stages::NodeBoot`]):
//!    host preparation, the real root, the local join sources (command line, config file,
//!    config drive: they may describe the network), network, the remote join sources
//!    (metadata), then the orchestrator's clock (SNTP, before any TLS: `crate::clock::phase`),
//!    discovery and join (TLS bootstrap + install), and the
//!    handoff — each a timed phase, under the failure policy ([`policy`]).
//!    Host preparation comes in layers: the image's and the command line's first, then what
//!    the local sources add (before the network), then what user-data adds (before discovery);
//! 5. ends with the JSON timeline in `/run/kubejoin/timeline.json` and one summary line on the
//!    console (the whole JSON on one console line with `kubejoin.timeline=console` or when the
//!    boot failed: `kubejoin: timeline {…}`), then either
//!    execs the kubelet / the real root's init, or acts on a failure (reason block,
//!    `/run/kubejoin/result.json`, then retry, reboot, power-off or a shell).
//!
//! It never returns and never lets a panic out. Test (unwinding) builds run everything under
//! `catch_unwind`; the shipped binary is built with `panic = "abort"` (Cargo.toml: −636 KiB
//! of landing pads and unwind tables), where the panic hook does not return: it points stderr
//! back at the console and re-executes `/proc/self/exe` with [`PANICKED`] set, and the fresh
//! process applies the failure policy to the panic (`recover`), without running the boot again.
//! The last resort is an endless loop that reaps orphans (a hung machine can be inspected; a
//! kernel panic cannot).

pub mod config;
pub mod console;
pub mod mounts;
pub mod network;
pub mod pipeline;
pub mod policy;
pub mod stages;
pub mod switch_root;
pub mod watchdog;

use crate::error::Class;
use crate::fs::root::Root;
use crate::sys::init::{Init, PowerAction};
use crate::sys::{Exec, System};
use config::{InitConfig, OnFailure};
use pipeline::Ended;
use policy::{Action, Failure, Schedule};
use std::ffi::OsString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

/// The shell `kubejoin.on-failure=shell` starts.
pub const SHELL: &str = "/bin/sh";

/// What PID 1 does once the stages are over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Act(Action),
    /// Nothing left to do (handoff `none`, or every action failed): wait forever, reaping.
    Idle,
}

/// Runs PID 1 mode. Never returns.
pub fn run(system: System) -> ! {
    let sys = &*system.init;
    let exec = &*system.exec;
    let recovering = std::env::var_os(PANICKED);
    let started = recovering
        .as_deref()
        .and_then(|ms| ms.to_str()?.parse().ok())
        .and_then(|ms| Instant::now().checked_sub(Duration::from_millis(ms)))
        .unwrap_or_else(Instant::now);
    let (init, execs) = (system.init.clone(), system.exec.clone());
    let again = recovering.is_some();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("kubejoin: error: internal error (a bug, please report it): {info}");
        if cfg!(panic = "abort") {
            // Returning would abort, and a PID 1 that exits panics the kernel.
            after_panic(&*init, &*execs, started, again)
        }
    }));
    if recovering.is_some() {
        finish(sys, exec, Next::Act(recover(sys, started)))
    }
    let start_watchdog = |cfg: &InitConfig, kernel_to_init: Option<Duration>| {
        watchdog::start(
            system.init.clone(),
            system.exec.clone(),
            cfg.clone(),
            started,
            kernel_to_init,
        )
    };
    let next = match catch_unwind(AssertUnwindSafe(|| boot(&system, started, &start_watchdog))) {
        Ok(next) => next,
        // The hook printed the panic.
        Err(_) => Next::Act(recover(sys, started)),
    };
    finish(sys, exec, next)
}

/// Set (to the milliseconds since PID 1 started) in the environment of the re-executed PID 1
/// after a panic in a `panic = "abort"` build: the new process goes straight to `recover`.
pub const PANICKED: &str = "KUBEJOIN_INIT_PANICKED";

/// A panic of the boot: treated like any other failure of the boot.
fn recover(sys: &dyn Init, started: Instant) -> Action {
    let cfg = read_config(sys);
    let f = Failure::new(
        "init",
        Class::Other,
        "kubejoin panicked (see the line above)",
    );
    let action = retry_by_rebooting(
        policy::decide(
            cfg.on_failure,
            f.class,
            u32::MAX,
            started.elapsed(),
            cfg.timeout,
            &Schedule::default(),
            sys.is_pid1(),
        ),
        sys.is_pid1(),
    );
    report_failure(&Root::new("/"), &cfg, &f, &action, 1, started);
    action
}

/// After a panic the boot is not run again in the same process (its threads, locks and half-done
/// effects are unknown): as PID 1 a retry becomes a reboot after the same pause, a fresh boot;
/// `kubejoin init` by hand exits with the failure's status instead. Every other action is kept.
fn retry_by_rebooting(action: Action, pid1: bool) -> Action {
    match action {
        Action::RetryIn(after) if pid1 => Action::Reboot { after },
        Action::RetryIn(_) => Action::Exit(Class::Other.exit_code()),
        other => other,
    }
}

/// The panic hook's end in a `panic = "abort"` build, which cannot unwind to `catch_unwind`:
/// never returns. Re-executes this binary (same arguments, same environment plus [`PANICKED`]),
/// which replaces every thread and lock of the panicked process with a fresh PID 1 that only
/// applies the failure policy; when that one panics too (`again`), or the exec fails, it idles.
fn after_panic(sys: &dyn Init, exec: &dyn Exec, started: Instant, again: bool) -> ! {
    // The console copy thread's pipe would have no reader after the exec.
    console::restore(sys);
    if !again {
        let argv: Vec<OsString> = std::env::args_os().collect();
        let mut env: Vec<(OsString, OsString)> =
            std::env::vars_os().filter(|(k, _)| k != PANICKED).collect();
        env.push((
            OsString::from(PANICKED),
            OsString::from(started.elapsed().as_millis().to_string()),
        ));
        let e = exec.execve(Path::new("/proc/self/exe"), &argv, &env);
        eprintln!("kubejoin: error: could not restart after the panic: {e}; idling");
    }
    loop {
        sys.reap();
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Acts on `next`, and if that returns or panics, idles forever.
fn finish(sys: &dyn Init, exec: &dyn Exec, next: Next) -> ! {
    watchdog::disarm();
    if let Next::Act(action) = next {
        let _ = catch_unwind(AssertUnwindSafe(|| act(sys, exec, action)));
    }
    idle(sys)
}

/// The last resort: PID 1 must not exit. Reaps orphans once a second, forever.
fn idle(sys: &dyn Init) -> ! {
    if !sys.is_pid1() {
        // `kubejoin init` by hand: there is no kernel to panic, exit like a normal program.
        let e = sys.exit(1);
        eprintln!("kubejoin: error: could not exit: {e}; idling");
    }
    loop {
        let _ = catch_unwind(AssertUnwindSafe(|| sys.reap()));
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn read_config(sys: &dyn Init) -> InitConfig {
    let cmdline = sys
        .read_file(Path::new("/proc/cmdline"))
        .unwrap_or_default();
    InitConfig::from_cmdline(&String::from_utf8_lossy(&cmdline))
}

/// Everything up to the final action.
fn boot(
    system: &System,
    started: Instant,
    start_watchdog: &dyn Fn(&InitConfig, Option<Duration>),
) -> Next {
    let sys = &*system.init;
    let phase = crate::log::phase("mounts");
    let step = crate::trace::span("mount", "the API filesystems");
    let mounted = mounts::mount_all(sys, mounts::EARLY_MOUNTS);
    drop(step);
    // Only now can the console be opened if the image gave us none (/dev is mounted).
    let reopened = sys.ensure_stdio();
    let step = crate::trace::span("console", "stderr to the console and /dev/kmsg");
    let tee = console::start(sys);
    drop(step);
    let cfg = read_config(sys);
    if cfg.debug {
        crate::log::set_level(crate::log::Level::Debug);
    }
    let kernel_to_init = sys
        .since_boot()
        .ok()
        .map(|up| up.saturating_sub(started.elapsed()));
    crate::info!(
        "kubejoin {} as {}{}: on-failure={} timeout={} handoff={}",
        env!("CARGO_PKG_VERSION"),
        if sys.is_pid1() {
            "PID 1"
        } else {
            "`kubejoin init` (not PID 1: will never reboot)"
        },
        kernel_to_init
            .map(|d| format!(
                ", started {} after the kernel",
                crate::time::duration::format(d)
            ))
            .unwrap_or_default(),
        cfg.on_failure.name(),
        crate::time::duration::format(cfg.timeout),
        cfg.handoff.name(),
    );
    // Whether TLS will have to wait for the kernel's random pool (see sys::entropy).
    let pool = Instant::now();
    let ready = crate::sys::entropy::ready();
    crate::trace::record(
        "entropy",
        || {
            if ready {
                "the kernel's random pool is initialised".into()
            } else {
                "the kernel's random pool is not initialised yet (no trusted hardware RNG so far)"
                    .into()
            }
        },
        pool,
    );
    start_watchdog(&cfg, kernel_to_init);
    if let Ok(true) = reopened {
        crate::info!("the image has no /dev/console: opened it on stdin, stdout and stderr");
    }
    for w in &cfg.warnings {
        crate::warn!("{w}");
    }
    match mounted {
        Ok(outcomes) => {
            for (target, o) in outcomes {
                match o {
                    mounts::Outcome::Failed { error, .. } => {
                        crate::warn!("could not mount {target} ({error}); going on")
                    }
                    o => crate::debug!("{target}: {o:?}"),
                }
            }
            for p in mounts::dev_symlinks(sys) {
                crate::debug!("{p}");
            }
            phase.ok();
        }
        Err(e) => {
            drop(phase);
            let f = Failure::from_error_plain("mounts", &e);
            return conclude(sys, &cfg, f, 1, started, tee, kernel_to_init);
        }
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let f = Failure::new(
                "init",
                Class::Other,
                format!("starting the async runtime: {e}"),
            );
            return conclude(sys, &cfg, f, 1, started, tee, kernel_to_init);
        }
    };
    let mut boot = stages::NodeBoot::new(system, &cfg, started, kernel_to_init, tee);
    let ended = runtime.block_on(pipeline::run_stages(
        &mut boot,
        &pipeline::stages(),
        sys,
        &cfg,
        &Schedule::default(),
        started,
    ));
    let tee = boot.take_tee();
    match ended {
        Ended::Completed => {
            // Only handoff=none gets here: exec and switch-root do not return when they work.
            report_timeline(
                &Root::new("/"),
                cfg.timeline,
                "completed",
                started,
                kernel_to_init,
            );
            crate::info!("kubejoin.handoff=none: the node's files are installed; nothing more to start, idling");
            if let Some(t) = tee {
                t.finish(sys);
            }
            Next::Idle
        }
        Ended::Failed {
            failure,
            action,
            attempt,
        } => {
            report_failed_boot(&cfg, &failure, &action, attempt, started, kernel_to_init);
            if let Some(t) = tee {
                t.finish(sys);
            }
            Next::Act(action)
        }
    }
}

impl Failure {
    /// For errors outside the crate's classified ones (a mount failure): class `other`.
    fn from_error_plain(stage: &'static str, e: &(dyn std::error::Error + 'static)) -> Self {
        let message = crate::error::Report(e, None).to_string();
        Failure {
            stage,
            class: Class::Other,
            message,
            hint: None,
        }
    }
}

/// A failure before the stages: decide, report, print the timeline.
fn conclude(
    sys: &dyn Init,
    cfg: &InitConfig,
    f: Failure,
    attempt: u32,
    started: Instant,
    tee: Option<console::Tee>,
    kernel_to_init: Option<Duration>,
) -> Next {
    // These failures (no /proc, no runtime) cannot heal by retrying in this boot.
    let action = match cfg.on_failure {
        OnFailure::Retry if sys.is_pid1() => Action::Reboot {
            after: Schedule::default().before_reboot,
        },
        _ => policy::decide(
            cfg.on_failure,
            f.class,
            attempt,
            started.elapsed(),
            cfg.timeout,
            &Schedule::default(),
            sys.is_pid1(),
        ),
    };
    report_failed_boot(cfg, &f, &action, attempt, started, kernel_to_init);
    if let Some(t) = tee {
        t.finish(sys);
    }
    Next::Act(action)
}

/// Everything a failed boot leaves under the live `/` and on the console: the reason block,
/// `result.json` and the timeline (whole on the console: see [`report_timeline`]).
pub fn report_failed_boot(
    cfg: &InitConfig,
    f: &Failure,
    action: &Action,
    attempt: u32,
    started: Instant,
    kernel_to_init: Option<Duration>,
) {
    let root = Root::new("/");
    report_failure(&root, cfg, f, action, attempt, started);
    report_timeline(&root, cfg.timeline, "failed", started, kernel_to_init);
}

/// The reason block on the console, and `result.json` under `root` (the live `/`), written
/// atomically as every file kubejoin writes.
pub fn report_failure(
    root: &Root,
    cfg: &InitConfig,
    f: &Failure,
    action: &Action,
    attempt: u32,
    started: Instant,
) {
    for line in policy::reason_block(f, cfg.on_failure, action, attempt, started.elapsed()) {
        eprintln!("kubejoin: error: {line}");
    }
    let json = policy::failure_json(f, cfg.on_failure, action, attempt, started.elapsed());
    let mut bytes = serde_json::to_vec_pretty(&json).unwrap_or_default();
    bytes.push(b'\n');
    if let Err(e) = crate::install::write_result_json(root, &bytes) {
        warn_unwritten(crate::install::RESULT_JSON, &e);
    }
}

/// The timeline as one JSON object.
pub fn timeline_json(
    outcome: &str,
    init_to_end: Duration,
    kernel_to_init: Option<Duration>,
) -> serde_json::Value {
    serde_json::json!({
        "outcome": outcome,
        "kernel_to_init_ms": kernel_to_init.map(|d| d.as_millis() as u64),
        "init_to_end_ms": init_to_end.as_millis() as u64,
        "phases": crate::log::timeline(),
        // What happened outside every phase (PID 1's first look at the random pool).
        "steps": crate::trace::unclaimed(Instant::now().checked_sub(init_to_end).unwrap_or_else(Instant::now)),
    })
}

/// One warning line for a report file PID 1 could not write (the boot goes on without it).
fn warn_unwritten(path: &str, e: &crate::install::Error) {
    crate::warn!(
        "could not write {path}: {}",
        crate::error::Report(e, None)
            .to_string()
            .trim_start_matches("error: ")
            .replace('\n', " ")
    );
}

/// Records the timeline: [`crate::install::TIMELINE_JSON`] under the live `/`, and on the
/// console either the whole JSON on one line (`kubejoin: timeline {…}`: `kubejoin.timeline=console`,
/// or a failed boot, whose console may be all that is left of it) or one summary line naming
/// the file.
pub fn report_timeline(
    root: &Root,
    out: config::TimelineOut,
    outcome: &str,
    started: Instant,
    kernel_to_init: Option<Duration>,
) {
    let json = timeline_json(outcome, started.elapsed(), kernel_to_init);
    let mut bytes = serde_json::to_vec(&json).unwrap_or_default();
    bytes.push(b'\n');
    let written = crate::install::write_timeline_json(root, &bytes);
    if let Err(e) = &written {
        warn_unwritten(crate::install::TIMELINE_JSON, e);
    }
    if timeline_in_full(out, outcome, written.is_ok()) {
        eprintln!("kubejoin: timeline {json}");
    } else {
        crate::info!("{}", timeline_summary(&json));
    }
}

/// Whether the console gets the whole timeline: when asked to, when the boot failed, or when
/// the file could not be written (nothing else would keep it).
pub fn timeline_in_full(out: config::TimelineOut, outcome: &str, file_written: bool) -> bool {
    out == config::TimelineOut::Console || outcome == "failed" || !file_written
}

/// `timeline: handoff 628ms after /init (mounts 34ms, host-prep 132ms, …); all of it in
/// /run/kubejoin/timeline.json` — the phases in order (skipped ones and events left out), each
/// with its duration.
pub fn timeline_summary(json: &serde_json::Value) -> String {
    let ms = |v: &serde_json::Value| v.as_u64().unwrap_or_default();
    let phases: Vec<String> = json["phases"]
        .as_array()
        .map(|ps| {
            ps.iter()
                // Phases, not events (the clock step's zero-length entry carries a detail).
                .filter(|p| {
                    p["outcome"] != "skipped" && p["duration_ms"].is_u64() && p["detail"].is_null()
                })
                .map(|p| {
                    format!(
                        "{} {}ms",
                        p["phase"].as_str().unwrap_or("?"),
                        ms(&p["duration_ms"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "timeline: {} {}ms after /init ({}); all of it in {}",
        json["outcome"].as_str().unwrap_or("?"),
        ms(&json["init_to_end_ms"]),
        phases.join(", "),
        crate::install::TIMELINE_JSON
    )
}

/// Carries out a final action. Returns only when it could not.
pub(crate) fn act(sys: &dyn Init, exec: &dyn Exec, action: Action) {
    match action {
        Action::RetryIn(_) => {}
        Action::Exit(code) => {
            let e = sys.exit(i32::from(code));
            eprintln!("kubejoin: error: could not exit: {e}");
        }
        Action::Reboot { after } => {
            if !after.is_zero() {
                std::thread::sleep(after);
            }
            sys.sync();
            let e = sys.power(PowerAction::Reboot);
            eprintln!("kubejoin: error: reboot failed: {e}; idling");
        }
        Action::Poweroff => power_off(sys),
        Action::Shell => {
            if sys.exists(Path::new(SHELL)) {
                eprintln!(
                    "kubejoin: info: starting {SHELL} on the console (the join failed; see above)"
                );
                let argv = [OsString::from("sh")];
                let env = [
                    (
                        OsString::from("PATH"),
                        OsString::from("/usr/sbin:/usr/bin:/sbin:/bin"),
                    ),
                    (OsString::from("HOME"), OsString::from("/")),
                    (OsString::from("TERM"), OsString::from("linux")),
                ];
                console::restore(sys);
                let e = exec.execve(Path::new(SHELL), &argv, &env);
                eprintln!("kubejoin: error: could not start {SHELL}: {e}; powering off");
            } else {
                eprintln!("kubejoin: error: kubejoin.on-failure=shell, but this image has no {SHELL}; powering off");
            }
            power_off(sys);
        }
    }
}

fn power_off(sys: &dyn Init) {
    sys.sync();
    let e = sys.power(PowerAction::PowerOff);
    eprintln!("kubejoin: error: power-off failed: {e}; idling");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::exec::{ExecCall, RecordingExec};
    use crate::sys::init::{InitCall, RecordingInit};

    #[test]
    fn a_retry_after_a_panic_is_a_reboot_after_the_same_pause() {
        let pause = Duration::from_secs(30);
        assert_eq!(
            retry_by_rebooting(Action::RetryIn(pause), true),
            Action::Reboot { after: pause }
        );
        assert_eq!(
            retry_by_rebooting(Action::RetryIn(pause), false),
            Action::Exit(Class::Other.exit_code())
        );
        assert_eq!(retry_by_rebooting(Action::Poweroff, true), Action::Poweroff);
        assert_eq!(retry_by_rebooting(Action::Shell, true), Action::Shell);
        assert_eq!(retry_by_rebooting(Action::Exit(1), false), Action::Exit(1));
    }

    #[test]
    fn uptime_parses_proc_uptime() {
        use crate::sys::init::uptime;
        assert_eq!(uptime("3.91 1.20\n"), Some(Duration::from_millis(3910)));
        assert_eq!(uptime(""), None);
        assert_eq!(uptime("x y"), None);
    }

    #[test]
    fn exit_goes_through_the_seam() {
        let sys = RecordingInit::new();
        let exec = RecordingExec::new("n");
        act(&sys, &exec, Action::Exit(2));
        assert_eq!(sys.calls(), vec![InitCall::Exit(2)]);
    }

    #[test]
    fn reboot_and_poweroff_sync_first() {
        let sys = RecordingInit::new();
        let exec = RecordingExec::new("n");
        act(
            &sys,
            &exec,
            Action::Reboot {
                after: Duration::ZERO,
            },
        );
        act(&sys, &exec, Action::Poweroff);
        assert_eq!(
            sys.calls(),
            vec![
                InitCall::Sync,
                InitCall::Power(PowerAction::Reboot),
                InitCall::Sync,
                InitCall::Power(PowerAction::PowerOff)
            ]
        );
    }

    #[test]
    fn shell_execs_sh_or_powers_off_without_one() {
        let sys = RecordingInit::new().with_path("/bin/sh");
        let exec = RecordingExec::new("n");
        act(&sys, &exec, Action::Shell);
        assert!(
            matches!(&exec.calls()[0], ExecCall::Execve { path, .. } if path == Path::new("/bin/sh"))
        );
        // The fake's exec "fails", so the policy falls through to a power-off.
        assert_eq!(
            sys.calls().last(),
            Some(&InitCall::Power(PowerAction::PowerOff))
        );

        let sys = RecordingInit::new();
        let exec = RecordingExec::new("n");
        act(&sys, &exec, Action::Shell);
        assert!(exec.calls().is_empty());
        assert_eq!(
            sys.calls(),
            vec![InitCall::Sync, InitCall::Power(PowerAction::PowerOff)]
        );
    }

    #[test]
    fn a_failure_leaves_result_json() {
        let cfg = InitConfig::from_cmdline("kubejoin.on-failure=poweroff");
        let f = Failure::new("discovery", Class::Trust, "pin mismatch");
        let dir = tempfile::tempdir().unwrap();
        report_failure(
            &Root::new(dir.path()),
            &cfg,
            &f,
            &Action::Poweroff,
            1,
            Instant::now(),
        );
        let path = dir.path().join("run/kubejoin/result.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["stage"], "discovery");
        assert_eq!(json["policy"], "poweroff");
        assert_eq!(json["error"], "error: pin mismatch");
    }

    #[test]
    fn the_timeline_is_one_json_line() {
        let p = crate::log::phase("unit-test-phase");
        p.ok();
        let j = timeline_json(
            "failed",
            Duration::from_millis(1234),
            Some(Duration::from_millis(3900)),
        );
        let line = j.to_string();
        assert!(!line.contains('\n'));
        assert_eq!(j["init_to_end_ms"], 1234);
        assert_eq!(j["kernel_to_init_ms"], 3900);
        assert!(j["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["phase"] == "unit-test-phase"));
    }

    #[test]
    fn the_timeline_file_holds_the_whole_json() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let p = crate::log::phase("unit-test-file-phase");
        p.ok();
        report_timeline(
            &root,
            config::TimelineOut::File,
            "handoff",
            Instant::now(),
            Some(Duration::from_millis(1500)),
        );
        let path = dir.path().join("run/kubejoin/timeline.json");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.last(), Some(&b'\n'));
        let j: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(j["outcome"], "handoff");
        assert_eq!(j["kernel_to_init_ms"], 1500);
        assert!(j["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["phase"] == "unit-test-file-phase"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // Nothing else was left beside it (the atomic writer's temporary file included).
        let names: Vec<_> = std::fs::read_dir(dir.path().join("run/kubejoin"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["timeline.json"]);
    }

    #[test]
    fn the_console_gets_the_whole_timeline_only_when_it_must() {
        use config::TimelineOut::{Console, File};
        assert!(!timeline_in_full(File, "handoff", true));
        assert!(!timeline_in_full(File, "switch-root", true));
        assert!(!timeline_in_full(File, "completed", true));
        assert!(timeline_in_full(File, "failed", true));
        assert!(timeline_in_full(File, "handoff", false));
        assert!(timeline_in_full(Console, "handoff", true));
    }

    #[test]
    fn the_summary_names_each_phase_and_the_file() {
        let j = serde_json::json!({
            "outcome": "handoff",
            "init_to_end_ms": 628,
            "phases": [
                {"phase": "mounts", "duration_ms": 34, "outcome": "ok"},
                {"phase": "sysroot", "duration_ms": 0, "outcome": "skipped"},
                {"phase": "discovery", "duration_ms": 145, "outcome": "ok"},
                {"phase": "clock-step", "duration_ms": 0, "outcome": "ok", "detail": {}},
            ],
        });
        assert_eq!(
            timeline_summary(&j),
            "timeline: handoff 628ms after /init (mounts 34ms, discovery 145ms); \
             all of it in /run/kubejoin/timeline.json"
        );
    }
}
