//! Section 5: fleet scale. N simulated nodes, each an in-process task on one shared runtime
//! running kubejoin's own join stages (token discovery with both fetches, cluster
//! configuration, a fresh P-256 key persisted under its own root, CSR, wait for issuance,
//! verification, install), all started at once against one control plane.
//!
//! The stages are those of `app::bootstrap_and_install` minus the identity check and the
//! completion files: the completion file embeds the process-wide phase timeline, which in one
//! process with N joins would grow with N (N² bytes written), so it is left out.

use crate::stats::{self, round2};
use crate::{err, Error};
use kubejoin::bootstrap::{config, csr, verify, wait, Cluster};
use kubejoin::install::{self, flags};
use kubejoin::plan::JoinPlan;
use kubejoin::root::Root;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How a node paces its retries of a stage that failed transiently (429, 5xx, transport).
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// Constant interval, no jitter, `Retry-After` ignored: the naive client.
    Fixed { interval: Duration },
    /// Exponential backoff with full jitter: a uniform delay in [0, min(cap, base·2^attempt)].
    FullJitter { base: Duration, cap: Duration },
}

impl Pacing {
    pub fn name(&self) -> &'static str {
        match self {
            Pacing::Fixed { .. } => "naive fixed interval",
            Pacing::FullJitter { .. } => "full-jitter backoff",
        }
    }

    fn describe(&self) -> String {
        match self {
            Pacing::Fixed { interval } => format!("every {} ms, no jitter", interval.as_millis()),
            Pacing::FullJitter { base, cap } => format!(
                "uniform in [0, min({} ms, {} ms * 2^attempt)]",
                cap.as_millis(),
                base.as_millis()
            ),
        }
    }

    fn delay(&self, attempt: u32, rng: &mut u64) -> Duration {
        match *self {
            Pacing::Fixed { interval } => interval,
            Pacing::FullJitter { base, cap } => {
                let ceiling = base
                    .saturating_mul(1u32 << attempt.min(16))
                    .min(cap)
                    .as_micros() as u64;
                Duration::from_micros(next(rng) % ceiling.max(1))
            }
        }
    }
}

/// xorshift64*: enough randomness for jitter, no dependency.
fn next(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// One fleet run.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    /// The control plane's concurrency cap (in-flight requests); `None`: uncapped.
    pub cap: Option<usize>,
    pub pacing: Pacing,
    /// Everything stops by then; unfinished nodes count as failures.
    pub deadline: Duration,
    /// Parent of the per-node roots (a tmpfs when there is one: each real node has its own disk).
    pub roots: PathBuf,
}

#[derive(Debug)]
struct NodeResult {
    ok: bool,
    ms: f64,
    retries: u32,
    error: Option<String>,
}

fn is_transient(e: &kubejoin::bootstrap::Error) -> bool {
    use kubejoin::api::WireFailure;
    match e {
        kubejoin::bootstrap::Error::Api { failure, .. } => match failure {
            WireFailure::Status { code, .. } => *code == 429 || *code >= 500,
            WireFailure::Refused | WireFailure::TimedOut | WireFailure::Transport(_) => true,
            WireFailure::TlsVerify(_) => false,
        },
        _ => false,
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Retries `f` while it fails transiently, paced by `pacing`, until `deadline`.
macro_rules! retrying {
    ($pacing:expr, $rng:expr, $retries:expr, $deadline:expr, $f:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $f.await {
                Ok(v) => break Ok(v),
                Err(e) if is_transient(&e) && Instant::now() < $deadline => {
                    let d = $pacing.delay(attempt, $rng);
                    attempt += 1;
                    *$retries += 1;
                    tokio::time::sleep(d).await;
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

/// One node's join, as the binary does it after parsing (see the module doc for what is left out).
async fn join_node(
    plan: JoinPlan,
    pacing: Pacing,
    seed: u64,
    deadline: Instant,
) -> Result<u32, String> {
    let mut rng = seed | 1;
    let mut retries = 0u32;
    let root = Root::new(&plan.root);
    let node = plan
        .node_name
        .as_ref()
        .map(|n| n.as_str().to_string())
        .ok_or("no node name")?;
    let d = kubejoin::discovery::discover(&plan.discovery)
        .await
        .map_err(|e| chain(&e))?;
    let cluster = Cluster::connect(&d).map_err(|e| chain(&e))?;
    let cfg = retrying!(pacing, &mut rng, &mut retries, deadline, config::fetch(&cluster))
        .map_err(|e| chain(&e))?;
    retrying!(
        pacing,
        &mut rng,
        &mut retries,
        deadline,
        config::check_node(&cluster, &node)
    )
    .map_err(|e| chain(&e))?;
    let args = flags::kubelet_args(&flags::FlagsInput {
        container_runtime_endpoint: cfg
            .container_runtime_endpoint
            .is_none()
            .then_some(plan.cri_socket.as_str()),
        hostname_override: Some(node.as_str()),
        taints: &plan.taints,
        image_repository: &cfg.image_repository,
        extra_args: &plan.kubelet_extra_args,
    });
    let flags_env = flags::render(&args);
    let (mut key, _) = csr::load_or_generate_key(&root, true).map_err(|e| chain(&e))?;
    let submitted = retrying!(
        pacing,
        &mut rng,
        &mut retries,
        deadline,
        csr::submit(&cluster, &root, &mut key, &node)
    )
    .map_err(|e| chain(&e))?;
    let opts = wait::WaitOptions {
        timeout: plan.tls_bootstrap_timeout,
        ..wait::WaitOptions::default()
    };
    let issued = wait::wait(&cluster, &submitted, &opts)
        .await
        .map_err(|e| chain(&e))?;
    let verified = verify::verify(
        &issued.cert_pem,
        &key.spki_der(),
        &node,
        &d.ca_der,
        SystemTime::now(),
    )
    .map_err(|e| chain(&e))?;
    let key_pem = key.to_pem();
    let steps = install::plan(&install::Inputs {
        server: &d.server,
        ca_pem: &d.ca_pem,
        cert_chain_pem: &verified.chain_pem,
        key_pem: &key_pem,
        kubelet_config: &cfg.kubelet_config,
        flags_env: &flags_env,
        now: SystemTime::now(),
    });
    install::apply(&root, &steps).map_err(|e| chain(&e))?;
    Ok(retries)
}

/// The plan the CLI would build for node `name` of `cp`.
fn plan_for(cp: &kubejoin_testcp::Handle, name: &str, root: &Path, opts: &Options) -> Result<JoinPlan, Error> {
    let interval = match opts.pacing {
        Pacing::Fixed { interval } => interval,
        Pacing::FullJitter { base, .. } => base,
    };
    let argv = [
        "kubejoin".to_string(),
        "join".into(),
        cp.endpoint(),
        "--token".into(),
        cp.token(),
        "--discovery-token-ca-cert-hash".into(),
        cp.signing_ca_pin(),
        "--node-name".into(),
        name.into(),
        "--root".into(),
        root.display().to_string(),
        "--handoff".into(),
        "none".into(),
        "--discovery-timeout".into(),
        format!("{}s", opts.deadline.as_secs().max(1)),
        "--discovery-retry-interval".into(),
        format!("{}ms", interval.as_millis().max(1)),
        "--tls-bootstrap-timeout".into(),
        format!("{}s", opts.deadline.as_secs().max(1)),
    ];
    match kubejoin::cli::parse(argv.into_iter().map(Into::into)) {
        Ok(kubejoin::cli::Command::Join(p)) => Ok(*p),
        Ok(_) => Err(err("the fleet's command line is not a join")),
        Err(e) => Err(err(format!("the fleet's command line: {e}"))),
    }
}

fn cpu_ms() -> f64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 * 1e3 + tv.tv_usec() as f64 / 1e3;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// Requests logged in `path` (one JSON line each): (total, 429s, 5xx).
fn count_log(path: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut n, mut r429, mut r5xx) = (0, 0, 0);
    for line in text.lines() {
        n += 1;
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            match v["status"].as_u64() {
                Some(429) => r429 += 1,
                Some(s) if s >= 500 => r5xx += 1,
                _ => {}
            }
        }
    }
    (n, r429, r5xx)
}

/// Runs one fleet: a warm-up join (its request count is the minimum per join), then N at once.
pub fn run(opts: &Options, rt: &tokio::runtime::Runtime, work: &Path) -> Result<Value, Error> {
    let config = crate::capped_config(opts.cap);
    let cp = kubejoin_testcp::start(config)
        .map_err(|e| err(format!("starting the test control plane: {e}")))?;
    let base = opts.roots.join(format!("fleet-{}-{}", opts.nodes, std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).map_err(|e| err(format!("creating {}: {e}", base.display())))?;

    // Warm-up: one node alone; its requests are the minimum a join needs.
    let warm = plan_for(&cp, "fleet-warmup", &base.join("warmup"), opts)?;
    let far = Instant::now() + opts.deadline;
    rt.block_on(join_node(warm, opts.pacing, 1, far))
        .map_err(|e| err(format!("the warm-up join failed: {e}")))?;
    std::thread::sleep(Duration::from_millis(100));
    let min_per_join = cp.requests().len();
    let log = work.join(format!("fleet-{}-{}.jsonl", opts.nodes, opts.pacing.name().replace(' ', "-")));
    let _ = std::fs::remove_file(&log);
    cp.log_requests_to(&log)
        .map_err(|e| err(format!("request log: {e}")))?;

    let mut plans = Vec::with_capacity(opts.nodes);
    for i in 0..opts.nodes {
        plans.push(plan_for(&cp, &format!("fleet-{i}"), &base.join(format!("n{i}")), opts)?);
    }
    let cpu0 = cpu_ms();
    let started = Instant::now();
    let deadline = started + opts.deadline;
    let pacing = opts.pacing;
    let results: Vec<NodeResult> = rt.block_on(async move {
        let mut tasks = Vec::with_capacity(plans.len());
        for (i, plan) in plans.into_iter().enumerate() {
            let seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1);
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let left = deadline.saturating_duration_since(t0);
                let r = tokio::time::timeout(left, join_node(plan, pacing, seed, deadline)).await;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                match r {
                    Ok(Ok(retries)) => NodeResult { ok: true, ms, retries, error: None },
                    Ok(Err(e)) => NodeResult { ok: false, ms, retries: 0, error: Some(e) },
                    Err(_) => NodeResult {
                        ok: false,
                        ms,
                        retries: 0,
                        error: Some("did not finish before the fleet deadline".into()),
                    },
                }
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or(NodeResult {
                ok: false,
                ms: 0.0,
                retries: 0,
                error: Some("the node task panicked".into()),
            }));
        }
        out
    });
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let cpu = cpu_ms() - cpu0;
    // Let the last watch streams end and reach the log.
    std::thread::sleep(Duration::from_millis(300));
    drop(cp);
    let (requests, r429, r5xx) = count_log(&log);
    let _ = std::fs::remove_dir_all(&base);

    let ok: Vec<f64> = results.iter().filter(|r| r.ok).map(|r| r.ms).collect();
    let failures = results.len() - ok.len();
    let mut errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(5);
    let minimum = opts.nodes * min_per_join;
    let amplification = if minimum == 0 {
        None
    } else {
        Some(round2(requests as f64 / minimum as f64))
    };
    Ok(json!({
        "nodes": opts.nodes,
        "cap": opts.cap,
        "overload": opts.cap.map(|c| round2(opts.nodes as f64 / c.max(1) as f64)),
        "policy": opts.pacing.name(),
        "policy_detail": opts.pacing.describe(),
        "wall_ms": round2(wall_ms),
        "join_ms": stats::summary(&ok),
        "failures": failures,
        "errors": errors,
        "requests": requests,
        "responses_429": r429,
        "responses_5xx": r5xx,
        "min_requests_per_join": min_per_join,
        "amplification": amplification,
        "stage_retries": results.iter().map(|r| u64::from(r.retries)).sum::<u64>(),
        "cpu_ms": round2(cpu),
        "cpu_ms_per_join": round2(cpu / opts.nodes.max(1) as f64),
        "deadline_s": opts.deadline.as_secs(),
    }))
}

/// What the crypto of N joins costs on its own: P-256 key generation + CSR signing, in a loop.
pub fn crypto_cost(n: usize) -> Result<Value, Error> {
    let t0 = Instant::now();
    for i in 0..n {
        let key = csr::NodeKey::generate().map_err(|e| err(e.to_string()))?;
        let _ = key
            .csr_pem(&format!("fleet-{i}"))
            .map_err(|e| err(e.to_string()))?;
    }
    let per = t0.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    Ok(json!({ "keys_and_csrs": n, "us_per_key_and_csr": round2(per) }))
}

/// Raises RLIMIT_NOFILE (every node holds up to two client connections, the server the other
/// ends): the hard limit when we may, else the soft one up to the hard one.
pub fn raise_nofile(want: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft >= want {
        return soft;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_ok() {
        return want;
    }
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    getrlimit(Resource::RLIMIT_NOFILE).map(|l| l.0).unwrap_or(soft)
}
