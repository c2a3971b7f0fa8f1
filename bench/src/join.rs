//! Sections 2–4: the whole `kubejoin join` process against the test control plane on loopback
//! (auto-approval, zero approval delay), `--handoff none`, into a fresh temporary root per run.
//!
//! Per run: wall time from just before `exec` to the reaped exit; the phase timeline kubejoin
//! wrote to `run/kubejoin/result.json`; and the control plane's request log for the run's window
//! (arrival times, statuses, body bytes). Peak RSS from `getrusage(RUSAGE_CHILDREN)` over every
//! join (the largest child's high-water mark), cross-checked by `/usr/bin/time -v`.

use crate::stats::{self, median, round2};
use crate::{err, Error};
use kubejoin_testcp::{Handle, RequestRecord};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

/// What the join section needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The static binary under test.
    pub bin: PathBuf,
    /// Measured runs (after two warm-up runs).
    pub runs: usize,
    /// Scratch directory (logs, files).
    pub work: PathBuf,
    /// Where the measured joins' temporary roots go (a tmpfs when there is one: the figures are
    /// kubejoin's, not a shared disk's fsync latency).
    pub roots: PathBuf,
    /// Where the roots of the on-disk series go (the durability cost on this machine's disk),
    /// if that is another filesystem than `roots`.
    pub disk_roots: Option<PathBuf>,
}

/// One finished join process.
#[derive(Debug, Clone)]
pub struct Run {
    pub wall_start: SystemTime,
    pub wall_end: SystemTime,
    pub wall_ms: f64,
    pub exit_code: Option<i32>,
    /// (phase, start_ms, end_ms) from result.json (epoch milliseconds).
    pub phases: Vec<(String, u128, u128)>,
    pub log: PathBuf,
}

impl Run {
    /// A phase's (start, end) in epoch milliseconds, corrected for truncation: kubejoin writes
    /// `start_ms = floor(start)` and `end_ms = start_ms + floor(duration)`, so on average the
    /// true start is 0.5 ms later and the true end 1 ms later than written.
    fn phase(&self, name: &str) -> Option<(f64, f64)> {
        self.phases
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, e)| (*s as f64 + 0.5, *e as f64 + 1.0))
    }
}

/// The join command line for `cp`.
pub fn join_args(cp: &Handle, endpoint: &str, node: &str, root: &Path) -> Vec<String> {
    vec![
        "join".into(),
        endpoint.to_string(),
        "--token".into(),
        cp.token(),
        "--discovery-token-ca-cert-hash".into(),
        cp.signing_ca_pin(),
        "--node-name".into(),
        node.to_string(),
        "--root".into(),
        root.display().to_string(),
        "--handoff".into(),
        "none".into(),
    ]
}

/// Runs one join process to completion (bounded: kubejoin's own deadlines, plus ours).
pub fn run_join(
    bin: &Path,
    args: &[String],
    root: &Path,
    log: &Path,
    env: &[(&str, &Path)],
) -> Result<Run, Error> {
    std::fs::create_dir_all(root).map_err(|e| err(format!("creating {}: {e}", root.display())))?;
    let log_file =
        std::fs::File::create(log).map_err(|e| err(format!("creating {}: {e}", log.display())))?;
    let wall_start = SystemTime::now();
    let t0 = Instant::now();
    let status = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .map_err(|e| err(format!("running {}: {e}", bin.display())))?;
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    let wall_end = SystemTime::now();
    let phases = read_phases(&root.join("run/kubejoin/result.json"));
    Ok(Run {
        wall_start,
        wall_end,
        wall_ms,
        exit_code: status.code(),
        phases,
        log: log.to_path_buf(),
    })
}

/// The `phases` of kubejoin's result.json, empty if it is missing.
pub fn read_phases(path: &Path) -> Vec<(String, u128, u128)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    v["phases"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some((
                        p["phase"].as_str()?.to_string(),
                        u128::from(p["start_ms"].as_u64()?),
                        u128::from(p["end_ms"].as_u64()?),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn epoch_ms(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

/// The requests that arrived while `run` was alive.
pub fn requests_of<'a>(all: &'a [RequestRecord], run: &Run) -> Vec<&'a RequestRecord> {
    all.iter()
        .filter(|r| r.time >= run.wall_start && r.time <= run.wall_end)
        .collect()
}

/// `GET /api/v1/namespaces/kube-public/configmaps/cluster-info` (query dropped, watch marked).
pub fn describe_request(r: &RequestRecord) -> String {
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    let watch = if query.contains("watch=true") {
        " (watch)"
    } else {
        ""
    };
    let user = if r.user.is_empty() {
        "-".to_string()
    } else {
        r.user.clone()
    };
    format!("{} {path}{watch} -> {} as {user}", r.method, r.status)
}

const BOUNDARIES: [(&str, &str); 9] = [
    (
        "startup",
        "exec -> first request at the server (process start, runtime, TLS connect)",
    ),
    (
        "discovery",
        "discovery: cluster-info fetch, JWS + pin (-> discovery done)",
    ),
    ("identity_check", "identity check (existing kubelet.conf)"),
    (
        "config_fetches",
        "config fetches (kubelet-config, kubeadm-config, node; verified TLS connect)",
    ),
    ("key_csr", "key + CSR (P-256 key persisted, CSR POSTed)"),
    (
        "approval_wait",
        "approval wait (watch from the POST's version until issued)",
    ),
    ("verify", "verify certificate"),
    ("install", "install (atomic writes + fsync)"),
    ("exit", "completion files, handoff=none, exit"),
];

/// The per-run split of [exec, exit] into consecutive intervals (ms), in [`BOUNDARIES`] order.
/// `None` when the run lacks a timeline or requests.
fn split(run: &Run, reqs: &[&RequestRecord]) -> Option<Vec<f64>> {
    let first = reqs.iter().map(|r| epoch_ms(r.time)).reduce(f64::min)?;
    let b = [
        epoch_ms(run.wall_start),
        first,
        run.phase("discovery")?.1,
        run.phase("cluster-config")?.0,
        run.phase("cluster-config")?.1,
        run.phase("csr")?.1,
        run.phase("wait-approval")?.1,
        run.phase("verify-certificate")?.1,
        run.phase("install")?.1,
        epoch_ms(run.wall_end),
    ];
    // Boundaries from two clocks (ms-resolution phases, exact arrivals) can cross by a fraction
    // of a millisecond: keep them in order so the intervals add up to the wall time.
    let mut b = b;
    for i in 1..b.len() {
        b[i] = b[i].max(b[i - 1]);
    }
    Some(b.windows(2).map(|w| w[1] - w[0]).collect())
}

/// `runs` joins (after `warmup` unmeasured ones) of nodes `{prefix}-{i}`, each into a fresh root.
#[allow(clippy::too_many_arguments)]
fn join_series(
    opts: &Options,
    cp: &Handle,
    prefix: &str,
    warmup: usize,
    runs: usize,
    env: &[(&str, &Path)],
    roots: &Path,
) -> Result<Vec<Run>, Error> {
    let endpoint = cp.endpoint();
    let mut out = Vec::new();
    for i in 0..warmup + runs {
        let node = format!("{prefix}-{i}");
        let root = roots.join(format!("kubejoin-bench-{}-{node}", std::process::id()));
        let log = opts.work.join(format!("{node}.log"));
        let args = join_args(cp, &endpoint, &node, &root);
        let run = run_join(&opts.bin, &args, &root, &log, env)?;
        if run.exit_code != Some(0) {
            let tail = std::fs::read_to_string(&run.log).unwrap_or_default();
            return Err(err(format!(
                "join {node} exited with {:?}:\n{tail}",
                run.exit_code
            )));
        }
        if i >= warmup {
            out.push(run);
        }
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_file(&log);
    }
    Ok(out)
}

/// exec -> first request at the server, per run.
fn first_request_ms(all: &[RequestRecord], runs: &[Run]) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| {
            requests_of(all, r)
                .iter()
                .map(|q| epoch_ms(q.time))
                .reduce(f64::min)
                .map(|t| t - epoch_ms(r.wall_start))
        })
        .collect()
}

/// Runs the section against `cp` (already started with auto-approval and no delays).
pub fn run(opts: &Options, cp: &Handle) -> Result<Value, Error> {
    // RUSAGE_CHILDREN covers every child ever reaped by this process, including those of a
    // program that exec'd into it: only trust it if nothing was reaped before the joins.
    let children_before = children_max_rss();
    let warmup = 2;
    let runs = join_series(opts, cp, "bench", warmup, opts.runs, &[], &opts.roots)?;
    // The largest child's high-water mark: every child so far is a join.
    let rusage_max_rss_kib = children_max_rss().filter(|_| children_before == Some(0));

    // The same join with a one-certificate system trust store (SSL_CERT_FILE = the cluster CA,
    // SSL_CERT_DIR = an empty directory): what loading the host's trust store costs. The
    // token-discovery path never uses it (it trusts the pinned CA only).
    let store_runs = (opts.runs / 3).max(10);
    let ca = opts.work.join("one-ca.crt");
    let empty = opts.work.join("empty-cert-dir");
    std::fs::write(&ca, cp.ca_pem()).map_err(|e| err(format!("writing {}: {e}", ca.display())))?;
    std::fs::create_dir_all(&empty)
        .map_err(|e| err(format!("creating {}: {e}", empty.display())))?;
    let small_store = join_series(
        opts,
        cp,
        "bench-store",
        1,
        store_runs,
        &[("SSL_CERT_FILE", &ca), ("SSL_CERT_DIR", &empty)],
        &opts.roots,
    )?;
    // The same join with its root on this machine's disk: the fsyncs of the key and the
    // install become real (and so does any other I/O load on that disk).
    let on_disk = match &opts.disk_roots {
        Some(dir) => join_series(opts, cp, "bench-disk", 1, store_runs, &[], dir)?,
        None => Vec::new(),
    };

    // Let the last watch streams be closed and counted.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let all = cp.requests();

    let walls: Vec<f64> = runs.iter().map(|r| r.wall_ms).collect();
    let mut splits: Vec<Vec<f64>> = Vec::new();
    let mut excl_wait = Vec::new();
    let mut req_counts = Vec::new();
    let mut body_bytes = Vec::new();
    let mut statuses_bad = 0usize;
    let mut per_run = Vec::new();
    for run in &runs {
        let reqs = requests_of(&all, run);
        req_counts.push(reqs.len() as f64);
        let body: u64 = reqs
            .iter()
            .map(|r| r.request_bytes + r.response_bytes)
            .sum();
        body_bytes.push(body as f64);
        statuses_bad += reqs
            .iter()
            .filter(|r| r.status >= 500 || r.status == 429)
            .count();
        let split = split(run, &reqs);
        if let Some(s) = &split {
            excl_wait.push(run.wall_ms - approval_wait(s));
            splits.push(s.clone());
        }
        per_run.push(json!({
            "wall_ms": round2(run.wall_ms),
            "requests": reqs.len(),
            "body_bytes": body,
            "split_ms": split.map(|s| s.into_iter().map(round2).collect::<Vec<_>>()),
        }));
    }
    let phases: Vec<Value> = BOUNDARIES
        .iter()
        .enumerate()
        .map(|(i, (key, label))| {
            let v: Vec<f64> = splits.iter().filter_map(|s| s.get(i).copied()).collect();
            json!({ "phase": key, "what": label, "ms": stats::summary(&v) })
        })
        .collect();
    // kubejoin's own phase durations, as it reported them.
    let mut own: Vec<Value> = Vec::new();
    if let Some(first) = runs.first() {
        for (name, _, _) in &first.phases {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.phase(name).map(|(s, e)| e - s - 0.5))
                .collect();
            own.push(json!({ "phase": name, "median_ms": median(&v) }));
        }
    }
    let example: Vec<Value> = runs
        .iter()
        .map(|r| requests_of(&all, r))
        .max_by_key(|r| r.len())
        .unwrap_or_default()
        .iter()
        .map(|q| {
            json!({
                "request": describe_request(q),
                "request_bytes": q.request_bytes,
                "response_bytes": q.response_bytes,
            })
        })
        .collect();

    let startup = startup_only(&opts.bin, 30)?;
    let time_v = time_v_rss(opts, cp)?;
    let small_walls: Vec<f64> = small_store.iter().map(|r| r.wall_ms).collect();

    Ok(json!({
        "runs": runs.len(),
        "warmup_runs": warmup,
        "wall_ms": stats::summary(&walls),
        "wall_excluding_approval_wait_ms": stats::summary(&excl_wait),
        "phases": phases,
        "kubejoin_phases": own,
        "process_start_ms": {
            "what": "exec -> exit of `kubejoin version` (no network)",
            "ms": stats::summary(&startup),
        },
        "first_request_ms": stats::summary(&first_request_ms(&all, &runs)),
        "one_certificate_trust_store": {
            "what": "the same join with SSL_CERT_FILE=<cluster CA> SSL_CERT_DIR=<empty>: the host trust store is not loaded",
            "runs": small_store.len(),
            "wall_ms": stats::summary(&small_walls),
            "first_request_ms": stats::summary(&first_request_ms(&all, &small_store)),
        },
        "roots": opts.roots.display().to_string(),
        "on_disk": {
            "what": "the same join with its temporary root on the disk (real fsyncs)",
            "roots": opts.disk_roots.as_ref().map(|d| d.display().to_string()),
            "runs": on_disk.len(),
            "wall_ms": stats::summary(&on_disk.iter().map(|r| r.wall_ms).collect::<Vec<_>>()),
            "wall_excluding_approval_wait_ms": stats::summary(&excl_wait_of(&all, &on_disk)),
            "key_csr_ms": stats::summary(&phase_ms(&on_disk, "csr")),
            "install_ms": stats::summary(&phase_ms(&on_disk, "install")),
        },
        "peak_rss": {
            "rusage_children_max_kib": rusage_max_rss_kib,
            "time_v_max_kib": time_v,
        },
        "requests": {
            "per_join": stats::summary(&req_counts),
            "retried_or_failed_statuses": statuses_bad,
            "body_bytes_per_join": stats::summary(&body_bytes),
            "example_join": example,
        },
        "per_run": per_run,
    }))
}

/// The approval wait's interval of a split.
fn approval_wait(split: &[f64]) -> f64 {
    BOUNDARIES
        .iter()
        .position(|(key, _)| *key == "approval_wait")
        .and_then(|i| split.get(i))
        .copied()
        .unwrap_or(0.0)
}

/// Wall time minus the approval wait, per run that has a full split.
fn excl_wait_of(all: &[RequestRecord], runs: &[Run]) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| split(r, &requests_of(all, r)).map(|s| r.wall_ms - approval_wait(&s)))
        .collect()
}

/// Durations of kubejoin's phase `name`, per run.
fn phase_ms(runs: &[Run], name: &str) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| r.phase(name).map(|(s, e)| e - s - 0.5))
        .collect()
}

/// ru_maxrss of RUSAGE_CHILDREN (KiB): the largest reaped child's peak RSS.
fn children_max_rss() -> Option<i64> {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .ok()
}

/// exec -> exit of `kubejoin version`, `n` times: the fixed cost of starting the process.
fn startup_only(bin: &Path, n: usize) -> Result<Vec<f64>, Error> {
    let mut v = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let st = Command::new(bin)
            .arg("version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| err(format!("running {} version: {e}", bin.display())))?;
        if !st.success() {
            return Err(err(format!("{} version failed: {st}", bin.display())));
        }
        v.push(round2(t0.elapsed().as_secs_f64() * 1e3));
    }
    Ok(v)
}

/// Peak RSS of five joins under `/usr/bin/time -v` (`None` when it is not installed).
fn time_v_rss(opts: &Options, cp: &Handle) -> Result<Option<u64>, Error> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return Ok(None);
    }
    let mut max = 0u64;
    for i in 0..5 {
        let node = format!("bench-time-{i}");
        let root = opts
            .roots
            .join(format!("kubejoin-bench-{}-time-{i}", std::process::id()));
        std::fs::create_dir_all(&root)
            .map_err(|e| err(format!("creating {}: {e}", root.display())))?;
        let out = Command::new(time)
            .arg("-v")
            .arg(&opts.bin)
            .args(join_args(cp, &cp.endpoint(), &node, &root))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(|e| err(format!("running /usr/bin/time: {e}")))?;
        let text = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(err(format!("join under /usr/bin/time failed:\n{text}")));
        }
        let kib = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| err("no maximum RSS in /usr/bin/time -v output"))?;
        max = max.max(kib);
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(Some(max))
}
