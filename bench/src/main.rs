//! `kubejoin-bench`: the benchmark behind `scripts/bench` (issue #8).
//!
//! Measures, against `kubejoin-testcp` on loopback, and writes `target/bench/report.json` plus a
//! table on stdout with PASS/OVER for each budget:
//!
//! 1. binary size (stripped, static) and compressed (gzip -9, zstd -19);
//! 2. join latency of the whole process (exec -> exit, `--handoff none`, fresh temp root per
//!    run), median/p95 over >= 30 runs, split into phases from kubejoin's own timeline and the
//!    control plane's request arrivals; process start-up cost;
//! 3. peak RSS of the join process;
//! 4. requests and bytes per join (request log; TCP bytes through a counting relay);
//! 5. fleet scale: N in-process nodes all at once against a capped control plane in a child
//!    process (10x and 100x overload, and a restart mid-fleet), kubejoin's retry policy vs a
//!    naive fixed-interval retry, repeated runs with medians;
//! 6. the VM boot (with `--vm-env`: boots of the VM test's image and of comparison images, the
//!    guest timeline's phases and steps, medians; else consoles kept by an earlier run).
//!
//! Budgets are reported, never asserted: the exit status is 0 unless a measurement could not
//! be taken at all.
//!
//! ```text
//! kubejoin-bench --markdown [REPORT]     (the README's tables from a report)
//! kubejoin-bench [--quick] [--runs N] [--fleet 100,1000,10000,1000:restart | --no-fleet]
//!                [--fleet-repeat N] [--bin PATH] [--overload K] [--naive-interval-ms MS]
//!                [--out PATH] [--before REPORT] [--vm-console PATH]
//!                [--vm-env VM.ENV [--vm-boots N] [--vm-variant-boots N] [--vm-initrd IMG]]
//!                [--sections size,join,wire,fleet,vm]
//! ```

mod fleet;
mod join;
mod report;
mod size;
mod stats;
mod vm;
mod wire;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn err(msg: impl Into<String>) -> Error {
    msg.into().into()
}

/// How many times a fleet row of `nodes` runs unless `--fleet-repeat` says: 7 up to 1,000 nodes
/// (a run takes seconds; with 3 runs the 1,000 × 10 row's amplification line came out +0.04 in
/// one report and -0.03 over 8 runs: each policy's 3-run median moved by ±0.03), 3 at 10,000
/// (a run takes about a minute a policy).
pub fn default_repeat(nodes: usize) -> usize {
    if nodes >= 10_000 {
        3
    } else {
        7
    }
}

/// The control plane for a fleet run: auto-approval, no delays, and the concurrency cap:
/// `cap` concurrent reads and half as many writes, the ratio of kube-apiserver's defaults
/// (`--max-requests-inflight` 400, `--max-mutating-requests-inflight` 200), each refusal a 429
/// with `Retry-After: 1` as its max-in-flight filter sends.
pub fn capped_config(cap: Option<usize>) -> kubejoin_testcp::Config {
    let mut config = kubejoin_testcp::Config::default();
    config.faults.max_in_flight = cap.map(kubejoin_testcp::InFlightLimit::with_default_ratio);
    config
}

#[derive(Debug)]
struct Args {
    quick: bool,
    runs: usize,
    /// (nodes, overload, scenario): the cap is the nodes divided by the overload.
    fleet: Vec<(usize, usize, fleet::Scenario)>,
    /// Runs per fleet row and policy (`None`: 3 up to 1,000 nodes, 1 above), medians reported.
    fleet_repeat: Option<usize>,
    bin: PathBuf,
    out: PathBuf,
    /// The report of the before column (default: the one this run replaces).
    before: Option<PathBuf>,
    vm_console: Option<PathBuf>,
    /// How the VM ran (`kvm`, `tcg`), when known.
    vm_accel: Option<String>,
    /// `scripts/vm-image`'s `vm.env`: boot the VMs (else the kept consoles are read).
    vm_env: Option<PathBuf>,
    vm_boots: usize,
    vm_variant_boots: usize,
    /// Boot this image as the default one (e.g. an older build, for a before/after).
    vm_initrd: Option<PathBuf>,
    sections: Vec<String>,
    /// Fleet nodes per unit of the control plane's max-in-flight cap.
    overload: usize,
    /// The naive policy's constant retry interval.
    naive_interval: Duration,
}

const USAGE: &str =
    "usage: kubejoin-bench [--quick] [--runs N] [--fleet 100,1000,10000,1000:restart | --no-fleet] \
[--overload K] [--naive-interval-ms MS] [--bin PATH] [--out PATH] [--before REPORT] [--vm-console PATH] \
[--vm-accel kvm|tcg] [--vm-env VM.ENV [--vm-boots N] [--vm-variant-boots N] [--vm-initrd IMG]] [--sections size,join,wire,fleet,vm]";

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        quick: false,
        runs: 0,
        fleet: Vec::new(),
        fleet_repeat: None,
        bin: PathBuf::from("target/dist/kubejoin"),
        out: PathBuf::from("target/bench/report.json"),
        before: None,
        vm_console: None,
        vm_accel: None,
        vm_env: None,
        vm_boots: vm::MIN_BOOTS,
        vm_variant_boots: vm::VARIANT_BOOTS,
        vm_initrd: None,
        sections: ["size", "join", "wire", "fleet", "vm"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        overload: 10,
        naive_interval: Duration::from_secs(1),
    };
    let mut fleet: Option<Vec<(usize, bool)>> = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| err(format!("{name} needs a value\n{USAGE}")))
        };
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--runs" => {
                a.runs = value("--runs")?
                    .parse()
                    .map_err(|_| err("--runs: not a number"))?
            }
            "--fleet" => {
                let v = value("--fleet")?;
                fleet = Some(
                    v.split(',')
                        .map(|s| {
                            // `1000:restart`: that size in the restart scenario.
                            let (n, restart) = match s.trim().split_once(':') {
                                Some((n, "restart")) => (n, true),
                                Some(_) => return Err(()),
                                None => (s.trim(), false),
                            };
                            n.replace('_', "")
                                .parse::<usize>()
                                .map(|n| (n, restart))
                                .map_err(|_| ())
                        })
                        .collect::<Result<_, _>>()
                        .map_err(|_| {
                            err("--fleet: a comma-separated list of node counts (N or N:restart)")
                        })?,
                )
            }
            "--no-fleet" => fleet = Some(Vec::new()),
            "--fleet-repeat" => {
                a.fleet_repeat = Some(
                    value("--fleet-repeat")?
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err("--fleet-repeat: a positive number"))?,
                )
            }
            "--overload" => {
                a.overload = value("--overload")?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err("--overload: a positive number"))?
            }
            "--naive-interval-ms" => {
                a.naive_interval = Duration::from_millis(
                    value("--naive-interval-ms")?
                        .parse()
                        .map_err(|_| err("--naive-interval-ms: a number"))?,
                )
            }
            "--bin" => a.bin = value("--bin")?.into(),
            "--out" => a.out = value("--out")?.into(),
            "--before" => a.before = Some(value("--before")?.into()),
            "--vm-console" => a.vm_console = Some(value("--vm-console")?.into()),
            "--vm-accel" => a.vm_accel = Some(value("--vm-accel")?),
            "--vm-env" => a.vm_env = Some(value("--vm-env")?.into()),
            "--vm-initrd" => a.vm_initrd = Some(value("--vm-initrd")?.into()),
            "--vm-variant-boots" => {
                a.vm_variant_boots = value("--vm-variant-boots")?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err("--vm-variant-boots: a positive number"))?
            }
            "--vm-boots" => {
                a.vm_boots = value("--vm-boots")?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err("--vm-boots: a positive number"))?
            }
            "--sections" => {
                a.sections = value("--sections")?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect()
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(err(format!("unknown argument {other:?}\n{USAGE}"))),
        }
    }
    if a.runs == 0 {
        a.runs = if a.quick { 30 } else { 50 };
    }
    use fleet::Scenario::Overload;
    const RESTART: fleet::Scenario = fleet::Scenario::RESTART;
    a.fleet = match fleet {
        Some(sizes) => sizes
            .into_iter()
            .map(|(n, restart)| {
                if restart {
                    (n, a.overload, RESTART)
                } else {
                    (n, a.overload, Overload)
                }
            })
            .collect(),
        // Each size at the budgets' 10x overload and at a hard one (100x), where the control
        // plane sheds most of the load and the retry policy decides what follows; then a
        // control plane that restarts mid-fleet.
        None if a.quick => vec![
            (100, 10, Overload),
            (100, 100, Overload),
            (1000, 10, Overload),
            (1000, 100, Overload),
            (1000, 10, RESTART),
        ],
        None => vec![
            (100, 10, Overload),
            (100, 100, Overload),
            (1000, 10, Overload),
            (1000, 100, Overload),
            (10_000, 10, Overload),
            (10_000, 100, Overload),
            (1000, 10, RESTART),
        ],
    };
    Ok(a)
}

fn main() -> ExitCode {
    // `kubejoin-bench --markdown REPORT`: the README's tables from a report.
    let argv: Vec<String> = std::env::args().collect();
    // The fleet's control plane, in its own process (fleet::run starts it).
    if argv.get(1).map(String::as_str) == Some("--fleet-server") {
        kubejoin::log::set_level(kubejoin::log::Level::Error);
        kubejoin::trace::set_enabled(false);
        return match fleet::serve_child() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kubejoin-bench --fleet-server: {e}");
                ExitCode::from(1)
            }
        };
    }
    if argv.get(1).map(String::as_str) == Some("--markdown") {
        let path = argv
            .get(2)
            .map_or("target/bench/report.json", String::as_str);
        return match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        {
            Ok(r) => {
                print!("{}", report::markdown(&r));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kubejoin-bench: {path}: {e}");
                ExitCode::from(1)
            }
        };
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kubejoin-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kubejoin-bench: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn section(name: &str) {
    eprintln!("kubejoin-bench: {name}");
}

/// Runs the selected sections; `Ok(false)` if any could not be measured.
fn run(args: &Args) -> Result<bool, Error> {
    let started = Instant::now();
    let want = |s: &str| args.sections.iter().any(|x| x == s);
    // Quiet library: the fleet's nodes would otherwise print thousands of info lines.
    kubejoin::log::set_level(kubejoin::log::Level::Error);
    // Thousands of joins side by side in this process: their timeline steps would mix.
    kubejoin::trace::set_enabled(false);
    let work = std::env::temp_dir().join(format!("kubejoin-bench.{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| err(format!("creating {}: {e}", work.display())))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| err(format!("starting the runtime: {e}")))?;
    let bin = std::fs::canonicalize(&args.bin).map_err(|e| {
        err(format!(
            "{}: {e} (run scripts/build first)",
            args.bin.display()
        ))
    })?;
    let mut report = json!({
        "generated_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "host": host(),
        "settings": {
            "quick": args.quick,
            "runs": args.runs,
            "fleet": args.fleet.iter().map(|(n, o, sc)| json!([n, o, sc.name()])).collect::<Vec<_>>(),
            "binary": bin.display().to_string(),
        },
    });
    let mut complete = true;
    let mut record = |report: &mut Value, key: &str, r: Result<Value, Error>| match r {
        Ok(v) => report[key] = v,
        Err(e) => {
            eprintln!("kubejoin-bench: {key}: could not measure: {e}");
            report[key] = json!({ "error": e.to_string() });
            complete = false;
        }
    };

    // A tmpfs for the joins' roots, when the machine has one.
    let tmpfs = Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir());
    // The join runs come first: until they are done every child of this process is a join,
    // which is what getrusage(RUSAGE_CHILDREN) relies on.
    if want("join") {
        section(&format!(
            "join latency: {} runs of the whole process",
            args.runs
        ));
        let r = kubejoin_testcp::start(kubejoin_testcp::Config::default())
            .map_err(|e| err(format!("starting the test control plane: {e}")))
            .and_then(|cp| {
                join::run(
                    &join::Options {
                        bin: bin.clone(),
                        runs: args.runs,
                        work: work.clone(),
                        roots: tmpfs.clone().unwrap_or_else(|| work.clone()),
                        disk_roots: tmpfs.as_ref().map(|_| work.clone()),
                    },
                    &cp,
                )
            });
        record(&mut report, "join", r);
    }
    if want("size") {
        section("binary size");
        record(&mut report, "binary", size::measure(&bin));
    }
    if want("wire") {
        section("bytes on the wire (byte-counting relay)");
        record(&mut report, "wire", wire::run(&bin, &work, 10, &rt));
    }
    if want("fleet") && !args.fleet.is_empty() {
        let nofile = fleet::raise_nofile(1 << 18);
        let roots = tmpfs.clone().unwrap_or_else(|| work.clone());
        let crypto_n = args
            .fleet
            .iter()
            .map(|(n, _, _)| *n)
            .max()
            .unwrap_or(0)
            .min(10_000);
        section(&format!("fleet: cost of {crypto_n} P-256 keys + CSRs"));
        let crypto =
            fleet::crypto_cost(crypto_n).unwrap_or_else(|e| json!({ "error": e.to_string() }));
        let mut runs = Vec::new();
        for &(n, overload, scenario) in &args.fleet {
            // `--quick` is a first look: 3 runs a row.
            let repeat = scenario.runs(args.fleet_repeat.unwrap_or(if args.quick {
                3
            } else {
                default_repeat(n)
            }));
            for policy in [
                fleet::Policy::Kubejoin,
                fleet::Policy::Naive {
                    interval: args.naive_interval,
                },
            ] {
                let opts = fleet::Options {
                    nodes: n,
                    cap: Some((n / overload).max(1)),
                    policy,
                    scenario,
                    deadline: Duration::from_secs(60) + Duration::from_millis(20) * n as u32,
                    roots: roots.clone(),
                };
                let mut tries = Vec::new();
                for r in 1..=repeat {
                    let opts = fleet::Options {
                        scenario: scenario.for_run(r),
                        ..opts.clone()
                    };
                    let outage = match opts.scenario {
                        fleet::Scenario::Restart { down, .. } => {
                            format!(" (down for {} ms)", down.as_millis())
                        }
                        fleet::Scenario::Overload => String::new(),
                    };
                    section(&format!(
                        "fleet: {n} nodes at once, max in flight {:?}, {}{outage}, {} policy, run {r}/{repeat} (deadline {} s)",
                        opts.cap,
                        scenario.name(),
                        policy.name(),
                        opts.deadline.as_secs()
                    ));
                    match fleet::run(&opts) {
                        Ok(v) => {
                            eprintln!(
                                "kubejoin-bench:   wall {} ms, amplification {}, requests {}, 429s {}, failures {}",
                                v["wall_ms"], v["amplification"], v["requests"], v["responses_429"], v["failures"]
                            );
                            tries.push(v)
                        }
                        Err(e) => {
                            eprintln!("kubejoin-bench: fleet {n}: could not measure: {e}");
                            complete = false;
                        }
                    }
                }
                runs.push(if tries.is_empty() {
                    json!({ "nodes": n, "overload": overload, "scenario": scenario.name(), "policy": policy.name(), "error": "no run could be measured" })
                } else {
                    fleet::median_run(tries)
                });
            }
        }
        report["fleet"] = json!({
            "nofile_limit": nofile,
            "crypto": crypto,
            "runs": runs,
            "harness_peak_rss_kib": nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
                .map(|u| u.max_rss())
                .ok(),
        });
    }
    if want("vm") {
        let keep = args
            .out
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("vm");
        match &args.vm_env {
            Some(env) => {
                section(&format!(
                    "VM boots (kubejoin-vm join): {} of the default image, {} of each comparison image",
                    args.vm_boots, args.vm_variant_boots
                ));
                let r = vm::run(&vm::BootOptions {
                    env: env.clone(),
                    boots: args.vm_boots,
                    variant_boots: args.vm_variant_boots,
                    initrd: args.vm_initrd.clone(),
                    keep,
                    accel: args.vm_accel.clone().unwrap_or_else(|| "tcg".into()),
                });
                match r {
                    Ok(v) => report["vm"] = v,
                    Err(e) => {
                        eprintln!("kubejoin-bench: vm: could not measure: {e}");
                        report["vm"] = json!({ "error": e.to_string() });
                        complete = false;
                    }
                }
            }
            None => {
                report["vm"] = vm::measure_kept(args.vm_console.as_deref(), &keep);
                if report["vm"]["status"] == "measured" {
                    report["vm"]["accel"] = json!(args
                        .vm_accel
                        .as_deref()
                        .unwrap_or("unknown (tcg unless KUBEJOIN_VM_ACCEL=kvm)"));
                }
            }
        }
    }
    report["bench_wall_s"] = json!(stats::round2(started.elapsed().as_secs_f64()));
    report["loadavg_end"] = json!(loadavg());

    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
    }
    // The report this run replaces: kept beside it (REPORT.previous.json) for the before/after
    // column, and the source of the sections this run did not measure (marked as carried over).
    let previous = std::fs::read_to_string(&args.out)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    if let Some(prev) = &previous {
        report::carry_over_fleet_rows(&mut report, prev);
        report::carry_over(
            &mut report,
            prev,
            &["binary", "join", "wire", "fleet", "vm"],
        );
        let kept = report::previous_path(&args.out);
        let _ = std::fs::copy(&args.out, &kept);
        report["previous"] = report::summary_of(prev, &kept);
    }
    // `--before FILE`: the before column from that report instead (a run measured in parts,
    // each replacing the last, still compares with the report from before them all).
    if let Some(path) = &args.before {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("reading --before {}: {e}", path.display())))?;
        let before: Value = serde_json::from_str(&text)
            .map_err(|e| err(format!("reading --before {}: {e}", path.display())))?;
        report["previous"] = report::summary_of(&before, path);
    }
    report["budgets"] = report::budgets(&report);
    let mut text = serde_json::to_string_pretty(&report).map_err(|e| err(e.to_string()))?;
    text.push('\n');
    std::fs::write(&args.out, text)
        .map_err(|e| err(format!("writing {}: {e}", args.out.display())))?;
    print!("{}", report::table(&report));
    println!("report: {}", args.out.display());
    let _ = std::fs::remove_dir_all(&work);
    drop(rt);
    Ok(complete)
}

fn host() -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    json!({ "cpus": cpus, "cpu_model": model, "kernel": kernel, "loadavg_start": loadavg() })
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_rows_run_7_times_up_to_1000_nodes_and_3_at_10000() {
        assert_eq!(default_repeat(100), 7);
        assert_eq!(default_repeat(1000), 7);
        assert_eq!(default_repeat(10_000), 3);
        // The restart row: every outage length twice.
        assert_eq!(fleet::Scenario::RESTART.runs(default_repeat(1000)), 8);
    }
}
