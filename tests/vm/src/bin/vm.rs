//! `kubejoin-vm`: boot one VM that joins with kubejoin as `/init`, and tell its story.
//!
//! ```text
//! kubejoin-vm join --kernel K --initrd I --testcp BIN --work DIR [--wrong-pin]
//!                  [--switch-root --checker BIN] [--node NAME] [--timeout SECS] [--append WORD]…
//! kubejoin-vm real --kubeconfig FILE --kernel K --initrd I --work DIR [--ttl SECS] [--node NAME] [--timeout SECS]
//! ```
//! `join` runs the test control plane in a fresh network namespace; `real` creates a short-lived
//! bootstrap token in the cluster of an admin kubeconfig and boots the VM on the host's network.
//! Exit code 0 when the guest's checker printed RESULT PASS (or, with `--wrong-pin`, when the
//! node refused the cluster without sending its token), 1 otherwise, 2 for usage errors.

use kubejoin_vmtest::harness::{self, Artifacts, Case, Console};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kubejoin-vm: {e}");
            ExitCode::from(2)
        }
    }
}

fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn need(args: &[String], name: &str) -> Result<String, String> {
    opt(args, name).ok_or_else(|| format!("{name} is required"))
}

fn secs(args: &[String], name: &str, default: u64) -> Result<Duration, String> {
    match opt(args, name) {
        None => Ok(Duration::from_secs(default)),
        Some(s) => s
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{name} {s:?}: not a number of seconds")),
    }
}

fn default_node() -> String {
    let r = harness::random_bytes::<3>();
    format!("kjvm-{:02x}{:02x}{:02x}", r[0], r[1], r[2])
}

fn run(args: &[String]) -> Result<bool, String> {
    harness::show_progress(true);
    let node = opt(args, "--node").unwrap_or_else(default_node);
    let timeout = secs(args, "--timeout", 150)?;
    let work = PathBuf::from(need(args, "--work")?);
    let kernel = PathBuf::from(need(args, "--kernel")?);
    let initrd = PathBuf::from(need(args, "--initrd")?);
    match args.first().map(String::as_str) {
        Some("join") => {
            let art = Artifacts {
                kernel,
                initrd,
                testcp: PathBuf::from(need(args, "--testcp")?),
                checker: opt(args, "--checker").map(PathBuf::from),
            };
            let wrong = args.iter().any(|a| a == "--wrong-pin");
            let switch_root = args.iter().any(|a| a == "--switch-root");
            let case = Case {
                right_pin: !wrong,
                node_name: node.clone(),
                // `--append WORD` (repeatable): more kernel command-line words (a diagnosis
                // such as `initcall_debug loglevel=8`, or `KUBEJOIN_MODULE_THREADS=1`).
                extra_append: args
                    .windows(2)
                    .filter(|w| w[0] == "--append")
                    .map(|w| w[1].clone())
                    .collect(),
                timeout,
                switch_root,
                endpoint: None,
                policy: None,
                config_drive: false,
                rtc_base: None,
                sntp: false,
                cp_args: vec![],
            };
            say(&format!(
                "booting a VM ({}): kernel {}, initramfs {} ({} KiB)",
                harness::accel(),
                file_name(&art.kernel),
                file_name(&art.initrd),
                std::fs::metadata(&art.initrd).map(|m| m.len() / 1024).unwrap_or(0)
            ));
            let o = harness::run_case(&art, &case, &work).map_err(|e| e.to_string())?;
            note(&format!(
                "network namespace {} (deleted again), test control plane on its 127.0.0.1:{p}, seen by the guest at {}:{p}",
                o.netns,
                harness::HOST_FROM_GUEST,
                p = harness::PORT
            ));
            Ok(tell(&o.run.console, &o.run, &o.append, &o.token, &o.requests, &node, wrong, &work))
        }
        Some("real") => real(args, &node, timeout, &work, kernel, initrd),
        _ => Err("usage: kubejoin-vm join|real --kernel K --initrd I --work DIR … (see the source's doc comment)".into()),
    }
}

/// `kubejoin-vm real`: a VM joining the real cluster of an admin kubeconfig.
#[cfg(feature = "real-cluster")]
fn real(
    args: &[String],
    node: &str,
    timeout: Duration,
    work: &Path,
    kernel: PathBuf,
    initrd: PathBuf,
) -> Result<bool, String> {
    let kubeconfig = PathBuf::from(need(args, "--kubeconfig")?);
    let ttl = secs(args, "--ttl", 900)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    say(&format!(
        "creating a bootstrap token valid for {}s in the cluster of {}",
        ttl.as_secs(),
        kubeconfig.display()
    ));
    let (token, data) = rt.block_on(kubejoin_vmtest::cluster::prepare(&kubeconfig, ttl))?;
    note(&format!(
        "API server {} (the guest dials {})",
        data.server, data.endpoint
    ));
    note(&format!("CA pin(s): {}", data.pins.join(", ")));
    if data.endpoint.starts_with(harness::HOST_FROM_GUEST) {
        note(
                    "warning: the API server is on this machine's loopback; the VM reaches it at 10.0.2.2 for \
                     discovery, but everything after follows the server URL in cluster-info, which must be \
                     reachable from the VM too",
                );
    }
    let mut append = harness::append_line(&data.endpoint, &token, &data.pins[0], node, &[]);
    for p in &data.pins[1..] {
        append.push_str(&format!(" kubejoin.ca-cert-hash={p}"));
    }
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let spec = harness::VmSpec {
        kernel,
        initrd,
        append: append.clone(),
        memory_mb: 512,
        timeout,
        serial_log: work.join("console.log"),
        disk: None,
        config_drive: None,
        rtc_base: None,
    };
    say(&format!(
        "booting a VM ({}) on this machine's network",
        harness::accel()
    ));
    let run = harness::boot(None, &spec).map_err(|e| e.to_string())?;
    Ok(tell(
        &run.console,
        &run,
        &append,
        &token,
        &[],
        node,
        false,
        work,
    ))
}

#[cfg(not(feature = "real-cluster"))]
fn real(
    _args: &[String],
    _node: &str,
    _timeout: Duration,
    _work: &Path,
    _kernel: PathBuf,
    _initrd: PathBuf,
) -> Result<bool, String> {
    Err("this kubejoin-vm was built without the real-cluster feature (scripts/demo --kubeconfig builds it with it)".into())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn say(s: &str) {
    println!("\x1b[1m==> {s}\x1b[0m");
}

fn note(s: &str) {
    println!("    {s}");
}

/// Prints the story of one boot; returns whether it went as intended.
#[allow(clippy::too_many_arguments)]
fn tell(
    console: &Console,
    run: &harness::VmRun,
    append: &str,
    token: &str,
    requests: &[Value],
    node: &str,
    wrong_pin: bool,
    work: &Path,
) -> bool {
    let secret = token.split_once('.').map(|(_, s)| s).unwrap_or(token);
    note(&format!(
        "kernel command line: {}",
        append.replace(secret, "<secret>")
    ));
    note(&format!(
        "qemu {} after {:.1}s",
        if run.exited() {
            "exited (the guest powered off)"
        } else {
            "was killed at the timeout"
        },
        run.elapsed.as_secs_f64()
    ));

    say("the boot, phase by phase (from kubejoin's JSON timeline on the serial console)");
    match console.timeline() {
        Some(t) => {
            if let Some(k) = t["kernel_to_init_ms"].as_u64() {
                note(&format!("{:<22} {:>8}", "kernel start -> /init", ms(k)));
            }
            for (phase, d, outcome) in console.phases() {
                note(&format!("{:<22} {:>8}  {outcome}", phase, ms(d)));
            }
            note(&format!(
                "{:<22} {:>8}  ({})",
                "/init -> end",
                ms(t["init_to_end_ms"].as_u64().unwrap_or_default()),
                t["outcome"].as_str().unwrap_or_default()
            ));
            // When the exec'd program printed its first line, on the same clock.
            let started = kubejoin_vmtest::check::started_ms(&console.0);
            if let (Some(s), Some(k)) = (started, t["kernel_to_init_ms"].as_f64()) {
                note(&format!(
                    "{:<22} {:>8}  (the stand-in kubelet's first line: the timeline, the console, the exec)",
                    "/init -> kubelet",
                    ms((s - k).max(0.0).round() as u64)
                ));
            }
        }
        None => note("(no timeline on the console: see the log below)"),
    }

    say("kubejoin's log (one line per module load and sysctl folded into a count)");
    let (mut loads, mut sysctls) = (0, 0);
    for l in console.kubejoin_lines() {
        if l.starts_with("kubejoin: info: host: load module ") {
            loads += 1;
        } else if l.starts_with("kubejoin: info: host: set ") {
            sysctls += 1;
        } else if !l.starts_with("kubejoin: timeline ") {
            if loads + sysctls > 0 {
                note(&format!("kubejoin: info: host: … {loads} module load(s), {sysctls} sysctl(s) set and read back …"));
                (loads, sysctls) = (0, 0);
            }
            note(&l.replace(secret, "<secret>"));
        }
    }

    let ok = if wrong_pin {
        let sent_token = requests.iter().any(|r| {
            r["user"]
                .as_str()
                .unwrap_or_default()
                .starts_with("system:bootstrap:")
        });
        say("the wrong pin: what happened");
        note(&format!(
            "token-authenticated requests reaching the control plane: {}",
            if sent_token { "SOME (bad)" } else { "none" }
        ));
        // The reason block's first line after its banner is the error itself.
        let lines = console.kubejoin_lines();
        let reason = lines
            .iter()
            .position(|l| l.contains("join failed in stage discovery"))
            .and_then(|i| lines.get(i + 1))
            .map(|l| {
                let l = l.strip_prefix("kubejoin: ").unwrap_or(l);
                l.strip_prefix("error: ").unwrap_or(l).to_string()
            });
        note(&format!(
            "reason on the console (stage discovery): {}",
            reason.as_deref().unwrap_or("none found (bad)")
        ));
        !sent_token && reason.is_some() && run.exited()
    } else {
        say("the node");
        for l in console.kubejoin_lines() {
            if let Some(rest) = l.strip_prefix("kubejoin: info: certificate for ") {
                note(&format!("identity: {rest}"));
            }
            if let Some(rest) = l.strip_prefix("kubejoin: info: node identity ") {
                note(&format!("installed: {rest}"));
            }
        }
        say(&format!("what the stand-in kubelet (kubejoin-vmcheck, exec'd with the kubelet's argv) found as system:node:{node}"));
        for (pass, what) in console.checks() {
            note(&format!("{} {what}", if pass { "PASS" } else { "FAIL" }));
        }
        console.check_result() == Some(true)
    };

    if !requests.is_empty() {
        say("what the control plane saw, request by request");
        for r in requests {
            // The whole path: a watch's query (fieldSelector, resourceVersion) is part of the story;
            // the TLS connection it came over shows the join's one handshake.
            note(&format!(
                "{:>3} {:<6} {}  as {}{}",
                r["status"],
                r["method"].as_str().unwrap_or_default(),
                r["path"].as_str().unwrap_or_default(),
                r["user"].as_str().unwrap_or_default(),
                r["connection"]
                    .as_u64()
                    .map(|c| format!("  (TLS connection {c})"))
                    .unwrap_or_default()
            ));
        }
    }
    note(&format!(
        "console, qemu log and the control plane's state: {}",
        work.display()
    ));
    say(if ok { "result: PASS" } else { "result: FAIL" });
    ok
}

fn ms(v: u64) -> String {
    if v < 1000 {
        format!("{v}ms")
    } else {
        format!("{:.3}s", v as f64 / 1000.0)
    }
}
