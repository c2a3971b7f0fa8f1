//! Section 5: fleet scale. N simulated nodes, all started at once, each a full join with its
//! own P-256 key and its own root (on a tmpfs: a real node has its own disk), against one
//! control plane whose max-in-flight filter answers 429 + `Retry-After: 1` beyond its cap.
//!
//! Two client policies, same requests:
//!
//! - **kubejoin**: exactly the binary's join (`join::discover_within` +
//!   `join::bootstrap_and_install_within`, the binary's defaults), i.e. whatever retry
//!   behaviour kubejoin ships.
//! - **naive**: the same stages, each request retried at a constant interval without jitter,
//!   ignoring `Retry-After`, whatever failed (a 401 or 403 included, as kubeadm's discovery
//!   loop does), on kubejoin's API client (which never retries) without its settle after a
//!   refused connection (`kubejoin::http::settle`: a naive client sends as soon as the port
//!   opens); discovery's two cluster-info
//!   fetches are done by the harness the same way (JWS, pin and byte-identical re-fetch checked
//!   with kubejoin's functions).
//!
//! Every node starts at the same instant: nothing queues them. The control plane runs in a
//! child process (this binary again, `--fleet-server`) so that each side has its own file
//! descriptor table: a node holds one connection at a time (discovery's, then the bootstrap's,
//! shared by its watch), so 10,000 nodes need ~10,000 descriptors on each side, which a
//! machine whose hard RLIMIT_NOFILE is 20,000 (and that may not raise it) allows only split.
//! Nodes run as tasks on one thread per CPU, each thread a current-thread runtime (what the
//! binary uses) with a `LocalSet`; the control plane has two worker threads: clients and
//! server share the machine's cores.
//!
//! The restart row: the control plane stops 1 s into the fleet (connections cut, the port
//! refusing), comes back 2–2.75 s later, and for 0.5 s after it listens again answers as a
//! kube-apiserver whose caches are not synced (401 to every token, 403 to anonymous). The
//! outage's length differs from run to run ([`Scenario::RESTART_DOWNS`], a quarter of the naive
//! client's 1 s interval apart) and the row is their mean: with one length only, the result
//! measured where the naive client's fixed ticks fell against the start-up window rather than
//! the policy (measured: the naive client's amplification 1.06 with a 2 s outage, 1.10 with
//! 2.5 s, 1.18–1.19 with 2.75 s, where its nodes all come back inside the window; kubejoin's
//! 1.12–1.17 throughout, 1.05–1.11 since its first connection after a refused one waits out
//! the window: `kubejoin::http::settle`).

use crate::stats::{self, round2};
use crate::{err, Error};
use kubejoin::bootstrap::{self, config, csr, verify, wait, Cluster};
use kubejoin::discovery::token::{jws_key, KUBECONFIG_KEY};
use kubejoin::discovery::{jws, BootstrapCredentials, Discovered, Method, Mode};
use kubejoin::fs::root::Root;
use kubejoin::install::{self, flags};
use kubejoin::join::{self, Tuning};
use kubejoin::kube;
use kubejoin::kube::kubeconfig::Kubeconfig;
use kubejoin::kube::token::BootstrapToken;
use kubejoin::kube::types::ConfigMap;
use kubejoin::pki::pem::certs_from_pem;
use kubejoin::plan::JoinPlan;
use kubejoin_testcp::Handle;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The client's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The binary's own.
    Kubejoin,
    /// Constant interval, no jitter, `Retry-After` ignored.
    Naive { interval: Duration },
}

impl Policy {
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Kubejoin => "kubejoin",
            Policy::Naive { .. } => "naive fixed interval",
        }
    }

    fn describe(&self) -> String {
        match self {
            Policy::Kubejoin => "the binary's defaults (one policy: full-jitter backoff, Retry-After honoured and widened by a slow 429's round trip, in discovery and the bootstrap; the CSR spread by the server's share of the last round trip)".into(),
            Policy::Naive { interval } => format!(
                "every request retried every {} ms, no jitter, Retry-After ignored",
                interval.as_millis()
            ),
        }
    }
}

/// What happens to the control plane during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// It only sheds load (429 beyond its cap).
    Overload,
    /// It also restarts mid-fleet: stops `at` into the fleet, refuses connections for `down`,
    /// then answers 401/403 for `window` as a kube-apiserver whose caches are not synced.
    Restart {
        at: Duration,
        down: Duration,
        window: Duration,
    },
}

impl Scenario {
    /// The restart row of the report.
    pub const RESTART: Scenario = Scenario::Restart {
        at: Duration::from_secs(1),
        down: Duration::from_secs(2),
        window: Duration::from_millis(500),
    };

    /// The restart row's outage lengths, one per run: spread over one interval of the naive
    /// client, so that the row does not depend on where its fixed ticks fall (a real control
    /// plane's restart is no multiple of any client's retry interval).
    pub const RESTART_DOWNS: [Duration; 4] = [
        Duration::from_millis(2000),
        Duration::from_millis(2250),
        Duration::from_millis(2500),
        Duration::from_millis(2750),
    ];

    /// This scenario for the `run`-th run of its row (from 1): a restart takes the outage
    /// length of [`Scenario::RESTART_DOWNS`] in turn.
    pub fn for_run(self, run: usize) -> Scenario {
        match self {
            Scenario::Restart { at, window, .. } => Scenario::Restart {
                at,
                down: Self::RESTART_DOWNS[run.saturating_sub(1) % Self::RESTART_DOWNS.len()],
                window,
            },
            s => s,
        }
    }

    /// How many runs a row of this scenario takes when `repeat` were asked for: a restart row
    /// covers every outage length the same number of times.
    pub fn runs(self, repeat: usize) -> usize {
        match self {
            Scenario::Restart { .. } => {
                let k = Self::RESTART_DOWNS.len();
                repeat.max(1).div_ceil(k) * k
            }
            Scenario::Overload => repeat,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Overload => "overload",
            Scenario::Restart { .. } => "restart",
        }
    }
}

/// One fleet run.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    /// The control plane's max-in-flight cap; `None`: uncapped.
    pub cap: Option<usize>,
    pub policy: Policy,
    pub scenario: Scenario,
    /// Everything stops by then; unfinished nodes count as failures.
    pub deadline: Duration,
    /// Parent of the per-node roots.
    pub roots: PathBuf,
}

#[derive(Debug)]
struct NodeResult {
    ok: bool,
    ms: f64,
    error: Option<String>,
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

// ---- the kubejoin policy: the binary's join ------------------------------------------------

async fn join_kubejoin(plan: JoinPlan, timeout: Duration) -> Result<(), String> {
    let mut run = join::Run::new(timeout);
    let d = join::discover_within(&plan, &mut run)
        .await
        .map_err(|e| chain(&e))?;
    join::bootstrap_and_install_within(
        &plan,
        &d,
        &kubejoin::sys::RealExec,
        &Tuning::default(),
        &mut run,
    )
    .await
    .map_err(|e| chain(&e))?;
    Ok(())
}

// ---- the naive policy -------------------------------------------------------------------------

/// kubejoin's API client (it never retries on its own: the naive loop below does).
fn naive_client(
    server: &str,
    ca: Option<&[Vec<u8>]>,
    token: Option<&BootstrapToken>,
    read: Option<Duration>,
) -> Result<kube::Client, String> {
    let trust = match ca {
        Some(ders) => kube::Trust::CaBundle(ders.to_vec()),
        None => kube::Trust::DangerousAcceptAny,
    };
    let identity = match token {
        Some(t) => kube::Identity::Token(t.clone()),
        None => kube::Identity::Anonymous,
    };
    // A naive client sends as soon as a port opens: no settle after refused connections.
    let timeouts = kube::Timeouts {
        connect: Duration::from_secs(10),
        read,
        settle: false,
    };
    kube::client(server, &trust, &identity, timeouts).map_err(|e| chain(&e))
}

/// The naive client retries whatever failed but a missing object or a conflict: overload,
/// failover, and the 401/403 of an API server that has just restarted alike.
fn transient_status(code: u16) -> bool {
    matches!(code, 401 | 403 | 408 | 429 | 500..=599)
}

fn transient_api(e: &kube::RequestError) -> bool {
    use kubejoin::kube::WireFailure;
    match e.failure() {
        WireFailure::Status { code, .. } => transient_status(code),
        WireFailure::Refused | WireFailure::TimedOut | WireFailure::Transport(_) => true,
        WireFailure::TlsVerify(_) | WireFailure::UnpinnedCa(_) | WireFailure::Clock(_) => false,
    }
}

fn transient_bootstrap(e: &bootstrap::Error) -> bool {
    use kubejoin::kube::WireFailure;
    match e {
        bootstrap::Error::Api { failure, .. } => match failure {
            WireFailure::Status { code, .. } => transient_status(*code),
            WireFailure::Refused | WireFailure::TimedOut | WireFailure::Transport(_) => true,
            WireFailure::TlsVerify(_) | WireFailure::UnpinnedCa(_) | WireFailure::Clock(_) => false,
        },
        _ => false,
    }
}

/// Retries `$f` (an expression producing a future) every `$interval` while it fails
/// transiently and `$deadline` has not passed.
macro_rules! every {
    ($interval:expr, $deadline:expr, $transient:expr, $f:expr) => {{
        loop {
            match $f.await {
                Ok(v) => break Ok(v),
                Err(e) if $transient(&e) && Instant::now() + $interval < $deadline => {
                    tokio::time::sleep($interval).await;
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

async fn naive_cluster_info(
    client: &kube::Client,
    interval: Duration,
    deadline: Instant,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let cm = every!(
        interval,
        deadline,
        transient_api,
        client.get::<ConfigMap>(kubejoin::discovery::CLUSTER_INFO_PATH, "ConfigMap")
    )
    .map_err(|e| chain(&e))?;
    Ok(cm.data.unwrap_or_default())
}

/// Token discovery (both fetches, JWS, pin, byte-identical re-fetch) with naive retries.
async fn naive_discover(
    plan: &JoinPlan,
    interval: Duration,
    deadline: Instant,
) -> Result<Discovered, String> {
    let Mode::Token {
        endpoint,
        token,
        pins,
        ..
    } = &plan.discovery.mode
    else {
        return Err("the fleet uses token discovery".into());
    };
    let url = format!("https://{endpoint}");
    let timeout = Some(Duration::from_secs(10));
    // Dropped (its connection closed) before the verified client connects: one connection per
    // node at a time, as kubejoin.
    let data = {
        let insecure = naive_client(&url, None, None, timeout)?;
        naive_cluster_info(&insecure, interval, deadline).await?
    };
    let kc = data.get(KUBECONFIG_KEY).cloned().unwrap_or_default();
    let sig = data.get(&jws_key(token.id())).cloned().unwrap_or_default();
    if !jws::verify_detached(&sig, kc.as_bytes(), token.id(), token.secret()) {
        return Err("cluster-info: JWS does not verify".into());
    }
    let config = Kubeconfig::parse(&kc).map_err(|e| chain(&e))?;
    let cluster = config.cluster().map_err(|e| chain(&e))?.cluster.clone();
    let ca_pem = cluster
        .certificate_authority_data
        .clone()
        .unwrap_or_default();
    let ca_der = certs_from_pem(&ca_pem).map_err(|e| chain(&e))?;
    let matched = pins
        .matching(&ca_der)
        .map_err(|e| chain(&e))?
        .ok_or("cluster-info: no pinned CA")?;
    let secure = naive_client(&url, Some(&ca_der), None, timeout)?;
    let data2 = naive_cluster_info(&secure, interval, deadline).await?;
    if data2.get(KUBECONFIG_KEY) != Some(&kc) {
        return Err("cluster-info: the verified re-fetch differs".into());
    }
    Ok(Discovered {
        server: cluster.server.clone(),
        ca_pem,
        ca_der,
        // The naive client models kubeadm: the whole bundle is trusted after a match.
        unpinned: Vec::new(),
        matched_pin: Some(matched),
        method: Method::Token {
            endpoint: endpoint.clone(),
        },
        credentials: BootstrapCredentials::Token(token.clone()),
        warm: None,
    })
}

/// The join of `join::bootstrap_and_install_within` (identity check and completion files
/// aside), every request retried naively.
async fn join_naive(plan: JoinPlan, interval: Duration, deadline: Instant) -> Result<(), String> {
    let d = naive_discover(&plan, interval, deadline).await?;
    let BootstrapCredentials::Token(token) = &d.credentials else {
        return Err("the fleet uses token credentials".into());
    };
    let client = naive_client(
        &d.server,
        Some(&d.ca_der),
        Some(token),
        Some(Duration::from_secs(10)),
    )?;
    let cluster = Cluster {
        server: d.server.clone(),
        // The same connection pool, as kubejoin's.
        watch_client: client.with_read_timeout(Some(bootstrap::WATCH_READ_TIMEOUT)),
        client,
    };
    let root = Root::new(&plan.root);
    let node = plan
        .node_name
        .as_ref()
        .map(|n| n.as_str().to_string())
        .ok_or("no node name")?;
    let resume = config::Resume::default();
    let cfg = every!(
        interval,
        deadline,
        transient_bootstrap,
        config::fetch_resuming(&cluster, &resume)
    )
    .map_err(|e| chain(&e))?;
    every!(
        interval,
        deadline,
        transient_bootstrap,
        config::check_node(&cluster, &node)
    )
    .map_err(|e| chain(&e))?;
    let rules = kubejoin::versions::ClusterRules::for_cluster(cfg.kubernetes_version.as_ref());
    let args = flags::kubelet_args(&flags::FlagsInput {
        runtime: rules.runtime_flags(&plan.cri_socket, None),
        pause_tag: rules.pause_tag(),
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
    // On the blocking pool, as the binary's join does (`join::run::on_disk`): the key's
    // generation and its file are the same work on the same threads for both policies, so
    // that only the retry policy differs (done inline on the client threads, the naive nodes'
    // key generation queued behind each other and spread their POSTs out by itself).
    let key_root = root.clone();
    let (mut key, _) =
        tokio::task::spawn_blocking(move || csr::load_or_generate_key(&key_root, true))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| chain(&e))?;
    let submitted = every!(
        interval,
        deadline,
        transient_bootstrap,
        csr::submit(&cluster, &root, &mut key, &node, rules.usages())
    )
    .map_err(|e| chain(&e))?;
    let opts = wait::WaitOptions {
        timeout: deadline.saturating_duration_since(Instant::now()),
        retry_pause: interval,
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
        instance_config: None,
        now: SystemTime::now(),
    });
    tokio::task::spawn_blocking(move || install::apply(&root, &steps))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| chain(&e))?;
    Ok(())
}

// ---- the run ----------------------------------------------------------------------------------

/// The plan the CLI builds for node `name` of `cp` (the binary's defaults otherwise).
fn plan_for(cp: &ServerInfo, name: &str, root: &Path) -> Result<JoinPlan, Error> {
    // `--root` must be an existing directory (the command line checks it).
    std::fs::create_dir_all(root).map_err(|e| err(format!("creating {}: {e}", root.display())))?;
    let argv = [
        "kubejoin".to_string(),
        "join".into(),
        cp.endpoint.clone(),
        "--token".into(),
        cp.token.clone(),
        "--discovery-token-ca-cert-hash".into(),
        cp.pin.clone(),
        "--node-name".into(),
        name.into(),
        "--root".into(),
        root.display().to_string(),
        "--handoff".into(),
        "none".into(),
    ];
    match kubejoin::cli::parse(argv.into_iter().map(Into::into)) {
        Ok(kubejoin::cli::Command::Join(p)) => Ok(*p),
        Ok(_) => Err(err("the fleet's command line is not a join")),
        Err(e) => Err(err(format!("the fleet's command line: {e}"))),
    }
}

async fn join_node(plan: JoinPlan, policy: Policy, deadline: Instant) -> Result<(), String> {
    match policy {
        Policy::Kubejoin => {
            join_kubejoin(plan, deadline.saturating_duration_since(Instant::now())).await
        }
        Policy::Naive { interval } => join_naive(plan, interval, deadline).await,
    }
}

fn cpu_ms() -> f64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t =
                |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 * 1e3 + tv.tv_usec() as f64 / 1e3;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// Requests the control plane answered, tallied from its in-memory log (which keeps the newest
/// 100,000): followed every 2 s, each record counted once it is 2 s old and answered (or 30 s
/// old, or cut by a restart: unanswered), the rest at the end. Each poll copies only the
/// records not counted yet: copying the whole log (~100,000 records at 10,000 nodes) held the
/// lock every request handler takes for long enough to stall the control plane every 2 s,
/// which turned into bursts of 429s.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    total: u64,
    r429: u64,
    r5xx: u64,
    /// 401 and 403: refusals (a restarting API server's, here).
    refused: u64,
    /// Cut by a restart before they were answered.
    #[serde(default)]
    unanswered: u64,
    /// Answered without 429, 5xx, 401 or 403: the work a join needed.
    useful: u64,
    /// Per kind of request: (total, 429s, unanswered).
    by_kind: std::collections::BTreeMap<String, (u64, u64, u64)>,
    /// Per quarter second from the fleet's start: [requests, 429s, 401/403s, unanswered,
    /// `POST csr`s] (where in the run the control plane shed load or refused).
    #[serde(default)]
    per_250ms: std::collections::BTreeMap<u64, [u64; 5]>,
    /// Per TLS connection that sent a `POST csr` (a node's bootstrap connection, kept alive
    /// through its retries): how many of its POSTs got 429.
    #[serde(default)]
    post_429s: std::collections::HashMap<u64, u32>,
}

/// `GET cluster-info`, `POST csr`, `WATCH csr`…: what a request was, for the per-kind tally.
fn kind(method: &str, path: &str) -> String {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let what = if p.ends_with("/configmaps/cluster-info") {
        "cluster-info"
    } else if p.contains("/configmaps/") {
        p.rsplit('/').next().unwrap_or("configmap")
    } else if p.contains("/nodes/") {
        "node"
    } else if p.contains("certificatesigningrequests") {
        "csr"
    } else {
        "other"
    };
    let verb = if q.contains("watch=true") {
        "WATCH"
    } else if method == "GET" && what == "csr" && !p.contains("/certificatesigningrequests/") {
        "LIST"
    } else {
        method
    };
    format!("{verb} {what}")
}

fn tally(cp: &Handle, from: SystemTime, done: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    // The index of the first record not counted yet; records before `from` are the warm-up's.
    let mut next = 0usize;
    let mut started = false;
    loop {
        let finished = done.load(Ordering::SeqCst);
        let now = SystemTime::now();
        let upto = if finished {
            now + Duration::from_secs(3600)
        } else {
            now - Duration::from_secs(2)
        };
        // A request with no answer yet is only counted as unanswered once it is this old (or
        // the fleet is over, or a restart cut it): a saturated control plane answers some
        // requests seconds after they arrived, and counting them at 2 s called 1,187 answered
        // POSTs of a 10,000-node fleet "unanswered".
        let given_up = now - Duration::from_secs(30);
        let (first, records) = cp.requests_from(next);
        next = first;
        for r in &records {
            if !started && r.time <= from {
                next += 1;
                continue;
            }
            started = true;
            // In arrival order: the first one too young, or not answered yet, ends this poll
            // (the next resumes there).
            let waiting = r.status == 0 && r.fault.is_none() && r.time > given_up;
            if r.time > upto || (waiting && !finished) {
                break;
            }
            next += 1;
            t.total += 1;
            let what = kind(&r.method, &r.path);
            let quarter = r
                .time
                .duration_since(from)
                .map_or(0, |d| d.as_millis() as u64 / 250);
            let q = t.per_250ms.entry(quarter).or_default();
            q[0] += 1;
            if what == "POST csr" {
                q[4] += 1;
                *t.post_429s.entry(r.connection).or_default() += u32::from(r.status == 429);
            }
            let k = t.by_kind.entry(what).or_default();
            k.0 += 1;
            match r.status {
                // Cut with the server (a restart), or given up by its client, before any answer.
                0 => {
                    t.unanswered += 1;
                    q[3] += 1;
                    k.2 += 1;
                }
                429 => {
                    t.r429 += 1;
                    q[1] += 1;
                    k.1 += 1;
                }
                401 | 403 => {
                    t.refused += 1;
                    q[2] += 1;
                }
                s if s >= 500 => t.r5xx += 1,
                _ => t.useful += 1,
            }
        }
        drop(records);
        if finished {
            return t;
        }
        // Short steps, so the end is not delayed by a whole poll.
        for _ in 0..20 {
            if done.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---- the control plane, in a child process ----------------------------------------------------

/// What the nodes need to know of the control plane.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServerInfo {
    pub endpoint: String,
    pub token: String,
    pub pin: String,
}

/// How the child configures its control plane (one JSON line on its stdin).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ServerConfig {
    cap: Option<usize>,
    startup_window_ms: u64,
}

/// `kubejoin-bench --fleet-server`: runs a control plane for a parent fleet run. Reads its
/// configuration (one JSON line), prints its [`ServerInfo`] (one JSON line), then obeys one
/// command per line: `tally` (start counting requests from now), `restart MS` (stop, refuse
/// connections for MS ms, come back), `end` (print the [`Tally`] as one JSON line and exit).
/// Exits when its stdin closes, so it never outlives the parent.
pub fn serve_child() -> Result<(), Error> {
    use std::io::{BufRead as _, Write as _};
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let line = lines
        .next()
        .ok_or_else(|| err("no configuration on stdin"))?
        .map_err(|e| err(e.to_string()))?;
    let cfg: ServerConfig = serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
    let mut config = crate::capped_config(cfg.cap);
    config.faults.startup_window = Duration::from_millis(cfg.startup_window_ms);
    let cp = kubejoin_testcp::start(config)
        .map_err(|e| err(format!("starting the test control plane: {e}")))?;
    let info = ServerInfo {
        endpoint: cp.endpoint(),
        token: cp.token(),
        pin: cp.signing_ca_pin(),
    };
    let mut out = std::io::stdout();
    writeln!(
        out,
        "{}",
        serde_json::to_string(&info).map_err(|e| err(e.to_string()))?
    )
    .and_then(|_| out.flush())
    .map_err(|e| err(e.to_string()))?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<(), Error> {
        let mut counter = None;
        for line in lines {
            let line = line.map_err(|e| err(e.to_string()))?;
            let mut words = line.split_whitespace();
            match words.next() {
                Some("tally") => {
                    let from = SystemTime::now();
                    let (cp, done) = (&cp, &done);
                    counter = Some(s.spawn(move || tally(cp, from, done)));
                }
                Some("restart") => {
                    let ms = words.next().and_then(|w| w.parse().ok()).unwrap_or(1000);
                    let ok = cp.restart(Duration::from_millis(ms));
                    writeln!(out, "{}", json!({ "restarted": ok }))
                        .and_then(|_| out.flush())
                        .map_err(|e| err(e.to_string()))?;
                }
                Some("end") => {
                    done.store(true, Ordering::SeqCst);
                    let t = counter
                        .take()
                        .and_then(|c| c.join().ok())
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string(&t).map_err(|e| err(e.to_string()))?
                    )
                    .and_then(|_| out.flush())
                    .map_err(|e| err(e.to_string()))?;
                    return Ok(());
                }
                _ => {}
            }
        }
        done.store(true, Ordering::SeqCst);
        Ok(())
    })
}

/// The parent's end of a [`serve_child`] process (killed on drop).
struct Server {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    info: ServerInfo,
}

impl Server {
    fn start(cfg: &ServerConfig) -> Result<Server, Error> {
        use std::io::{BufRead as _, Write as _};
        let exe = std::env::current_exe().map_err(|e| err(format!("this program's path: {e}")))?;
        let mut child = std::process::Command::new(exe)
            .arg("--fleet-server")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| err(format!("starting the control plane process: {e}")))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(err("the control plane process has no pipes"));
        };
        writeln!(
            stdin,
            "{}",
            serde_json::to_string(cfg).map_err(|e| err(e.to_string()))?
        )
        .map_err(|e| err(format!("configuring the control plane process: {e}")))?;
        let mut stdout = std::io::BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| err(format!("reading from the control plane process: {e}")))?;
        let info: ServerInfo = serde_json::from_str(&line).map_err(|e| {
            err(format!(
                "the control plane process did not start: {e}: {line:?}"
            ))
        })?;
        Ok(Server {
            child,
            stdin,
            stdout,
            info,
        })
    }

    fn send(&mut self, cmd: &str) -> Result<(), Error> {
        use std::io::Write as _;
        writeln!(self.stdin, "{cmd}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| err(format!("telling the control plane process {cmd:?}: {e}")))
    }

    fn reply(&mut self) -> Result<String, Error> {
        use std::io::BufRead as _;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| err(format!("reading from the control plane process: {e}")))?;
        Ok(line)
    }

    /// Stops the count and returns it (the process then exits).
    fn end(mut self) -> Result<Tally, Error> {
        self.send("end")?;
        let line = self.reply()?;
        serde_json::from_str(&line).map_err(|e| err(format!("the request tally: {e}: {line:?}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one fleet: a warm-up join alone (its request count is an uncontended join's), then N
/// at once.
pub fn run(opts: &Options) -> Result<Value, Error> {
    let window = match opts.scenario {
        Scenario::Restart { window, .. } => window,
        Scenario::Overload => Duration::ZERO,
    };
    let mut server = Server::start(&ServerConfig {
        cap: opts.cap,
        startup_window_ms: window.as_millis() as u64,
    })?;
    let cp = server.info.clone();
    // The startup window also follows the first start: the warm-up comes after it.
    std::thread::sleep(window);
    let base = opts
        .roots
        .join(format!("kubejoin-bench-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).map_err(|e| err(format!("creating {}: {e}", base.display())))?;

    server.send("tally")?;
    let warm = plan_for(&cp, "fleet-warmup", &base.join("warmup"))?;
    let far = Instant::now() + Duration::from_secs(60);
    let policy = opts.policy;
    for r in on_client_threads(vec![warm], move |_, plan| join_node(plan, policy, far))? {
        r.map_err(|e| err(format!("the warm-up join failed: {e}")))?;
    }
    std::thread::sleep(Duration::from_millis(200));
    let uncontended = std::mem::replace(
        &mut server,
        Server::start(&ServerConfig {
            cap: opts.cap,
            startup_window_ms: window.as_millis() as u64,
        })?,
    )
    .end()?
    .total;
    // A fresh control plane for the fleet (the warm-up's CSR and Node are not in its way).
    let cp = server.info.clone();
    std::thread::sleep(window);

    let mut plans = Vec::with_capacity(opts.nodes);
    for i in 0..opts.nodes {
        plans.push(plan_for(
            &cp,
            &format!("fleet-{i}"),
            &base.join(format!("n{i}")),
        )?);
    }
    server.send("tally")?;
    let cpu0 = cpu_ms();
    let started = Instant::now();
    let deadline = started + opts.deadline;
    let fds = std::sync::atomic::AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let (results, restarted) = std::thread::scope(|s| {
        // The restart, from here: the control plane process obeys.
        let restart = match opts.scenario {
            Scenario::Restart { at, down, .. } => {
                let server = &mut server;
                Some(s.spawn(move || {
                    std::thread::sleep(at);
                    let sent = server.send(&format!("restart {}", down.as_millis()));
                    sent.and_then(|_| server.reply())
                        .map(|l| l.contains("true"))
                        .unwrap_or(false)
                }))
            }
            Scenario::Overload => None,
        };
        // Peak descriptors of this process (the clients' side), sampled.
        let sampler = s.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                let n = std::fs::read_dir("/proc/self/fd")
                    .map(|d| d.count())
                    .unwrap_or(0);
                fds.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let results = on_client_threads(plans, move |_, plan| async move {
            let t0 = Instant::now();
            let left = deadline.saturating_duration_since(t0);
            let r = tokio::time::timeout(left, join_node(plan, policy, deadline)).await;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            match r {
                Ok(Ok(())) => NodeResult {
                    ok: true,
                    ms,
                    error: None,
                },
                Ok(Err(e)) => NodeResult {
                    ok: false,
                    ms,
                    error: Some(e),
                },
                Err(_) => NodeResult {
                    ok: false,
                    ms,
                    error: Some("did not finish before the fleet deadline".into()),
                },
            }
        });
        let wall_ms = started.elapsed().as_secs_f64() * 1e3;
        finished.store(true, Ordering::SeqCst);
        let _ = sampler.join();
        let restarted = restart.map(|r| r.join().unwrap_or(false));
        (results.map(|r| (r, wall_ms)), restarted)
    });
    let (results, wall_ms) = results?;
    let cpu = cpu_ms() - cpu0;
    // Let the last watch streams end, then count.
    std::thread::sleep(Duration::from_millis(500));
    let counted = server.end()?;
    let _ = std::fs::remove_dir_all(&base);

    let ok: Vec<f64> = results.iter().filter(|r| r.ok).map(|r| r.ms).collect();
    let failures = results.len() - ok.len();
    let mut errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(5);
    // How many nodes met how many 429s on their CSR: first attempts turned away vs returns.
    let mut by_429s = std::collections::BTreeMap::<u32, u64>::new();
    for n in counted.post_429s.values() {
        *by_429s.entry(*n).or_default() += 1;
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| round2(a as f64 / b as f64));
    Ok(json!({
        "nodes": opts.nodes,
        "concurrent_nodes": opts.nodes,
        "cap": opts.cap,
        "cap_mutating": opts.cap.map(|c| kubejoin_testcp::InFlightLimit::with_default_ratio(c).mutating),
        "overload": opts.cap.map(|c| round2(opts.nodes as f64 / c.max(1) as f64)),
        "scenario": opts.scenario.name(),
        "restarted": restarted,
        "restart_down_ms": match opts.scenario {
            Scenario::Restart { down, .. } => Some(down.as_millis() as u64),
            Scenario::Overload => None,
        },
        "policy": opts.policy.name(),
        "policy_detail": opts.policy.describe(),
        "wall_ms": round2(wall_ms),
        "join_ms": stats::summary(&ok),
        "failures": failures,
        "errors": errors,
        "requests": counted.total,
        "responses_429": counted.r429,
        "responses_5xx": counted.r5xx,
        "responses_401_403": counted.refused,
        "unanswered": counted.unanswered,
        "useful_requests": counted.useful,
        // Where in the run the load was shed: one entry per quarter second that saw requests.
        "per_250ms": counted
            .per_250ms
            .iter()
            .map(|(q, [n, r429, refused, unanswered, post_csr])| json!({
                "from_ms": q * 250,
                "requests": n,
                "responses_429": r429,
                "responses_401_403": refused,
                "unanswered": unanswered,
                "post_csr": post_csr,
            }))
            .collect::<Vec<_>>(),
        "post_csr_connections_by_429s": by_429s
            .iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "by_request": counted
            .by_kind
            .iter()
            .map(|(k, (n, r429, unanswered))| {
                json!({ "request": k, "count": n, "responses_429": r429, "unanswered": unanswered })
            })
            .collect::<Vec<_>>(),
        "amplification": ratio(counted.total, counted.useful),
        "uncontended_requests_per_join": uncontended,
        "requests_per_join": ratio(counted.total, opts.nodes as u64),
        "client_fds_peak": fds.load(Ordering::SeqCst),
        "cpu_ms_clients": round2(cpu),
        "cpu_ms_per_join_clients": round2(cpu / opts.nodes.max(1) as f64),
        "deadline_s": opts.deadline.as_secs(),
    }))
}

/// One row of the report from repeated runs: the run of median wall time, with the median
/// wall time and amplification of all of them (their mean for a restart row, whose runs are
/// different outage lengths, each as likely) and the worst failure count; every run's figures
/// are kept under `repeats`.
pub fn median_run(mut tries: Vec<Value>) -> Value {
    let restart = tries.iter().any(|t| t["restart_down_ms"].is_u64());
    let med = |key: &str| {
        let v: Vec<f64> = tries.iter().filter_map(|t| t[key].as_f64()).collect();
        if restart {
            stats::mean(&v).map(round2)
        } else {
            stats::median(&v)
        }
    };
    let (wall, amp) = (med("wall_ms"), med("amplification"));
    let failures = tries.iter().filter_map(|t| t["failures"].as_u64()).max();
    let repeats: Vec<Value> = tries
        .iter()
        .map(|t| {
            json!({
                "wall_ms": t["wall_ms"],
                "amplification": t["amplification"],
                "failures": t["failures"],
                "requests": t["requests"],
                "responses_429": t["responses_429"],
                "restart_down_ms": t["restart_down_ms"],
            })
        })
        .collect();
    tries.sort_by(|a, b| {
        a["wall_ms"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&b["wall_ms"].as_f64().unwrap_or(0.0))
    });
    let mid = (tries.len().saturating_sub(1)) / 2;
    let mut row = tries.swap_remove(mid);
    row["wall_ms"] = json!(wall);
    row["amplification"] = json!(amp);
    row["failures"] = json!(failures);
    row["repeats"] = json!(repeats);
    row
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

/// Raises RLIMIT_NOFILE to `want` (clients and server ends of every connection live in this
/// process): the hard limit too when we may, else the soft one up to the hard one.
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
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|l| l.0)
        .unwrap_or(soft)
}

/// Runs `f(i, item)` for every item as a task, all at once, spread round-robin over one thread
/// per CPU, each with a current-thread runtime and a `LocalSet` (the join futures need not be
/// `Send`). Returns the outputs in item order.
fn on_client_threads<T, R, F, Fut>(items: Vec<T>, f: F) -> Result<Vec<R>, Error>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(usize, T) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len().max(1));
    let mut buckets: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        buckets[i % threads].push((i, item));
    }
    let mut handles = Vec::new();
    for bucket in buckets {
        let f = f.clone();
        handles.push(
            std::thread::Builder::new()
                .name("fleet-client".into())
                .spawn(move || -> Result<Vec<(usize, R)>, String> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        let tasks: Vec<_> = bucket
                            .into_iter()
                            .map(|(i, item)| {
                                let f = f.clone();
                                (i, tokio::task::spawn_local(async move { f(i, item).await }))
                            })
                            .collect();
                        let mut out = Vec::new();
                        for (i, t) in tasks {
                            out.push((i, t.await.map_err(|e| format!("node {i}: {e}"))?));
                        }
                        Ok(out)
                    })
                })
                .map_err(|e| err(format!("starting a client thread: {e}")))?,
        );
    }
    let mut all = Vec::new();
    for h in handles {
        let part = h
            .join()
            .map_err(|_| err("a client thread panicked"))?
            .map_err(err)?;
        all.extend(part);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_row_covers_every_outage_length_equally_and_reports_their_mean() {
        let downs: Vec<Duration> = (1..=8)
            .map(|r| match Scenario::RESTART.for_run(r) {
                Scenario::Restart { down, .. } => down,
                Scenario::Overload => Duration::ZERO,
            })
            .collect();
        let ms: Vec<u128> = downs.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [2000, 2250, 2500, 2750, 2000, 2250, 2500, 2750]);
        assert_eq!(Scenario::Overload.for_run(3), Scenario::Overload);
        assert_eq!(Scenario::RESTART.runs(3), 4);
        assert_eq!(Scenario::RESTART.runs(5), 8);
        assert_eq!(Scenario::RESTART.runs(0), 4);
        assert_eq!(Scenario::Overload.runs(3), 3);
        let run = |down: Option<u64>, amp: f64, wall: f64| json!({ "restart_down_ms": down, "amplification": amp, "wall_ms": wall, "failures": 0 });
        // A restart row: the mean of the four lengths (the naive client's 2.75 s case counts).
        let row = median_run(vec![
            run(Some(2000), 1.06, 5000.0),
            run(Some(2250), 1.10, 5900.0),
            run(Some(2500), 1.10, 5400.0),
            run(Some(2750), 1.18, 6500.0),
        ]);
        assert_eq!(row["amplification"], json!(1.11));
        assert_eq!(row["wall_ms"], json!(5700.0));
        assert_eq!(row["repeats"][3]["restart_down_ms"], json!(2750));
        // Any other row: the median.
        let row = median_run(vec![
            run(None, 1.06, 5000.0),
            run(None, 1.10, 5900.0),
            run(None, 1.30, 9000.0),
        ]);
        assert_eq!(row["amplification"], json!(1.10));
        assert_eq!(row["wall_ms"], json!(5900.0));
    }

    #[test]
    fn request_kinds() {
        let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
        assert_eq!(
            kind(
                "GET",
                "/api/v1/namespaces/kube-public/configmaps/cluster-info"
            ),
            "GET cluster-info"
        );
        assert_eq!(
            kind(
                "GET",
                "/api/v1/namespaces/kube-system/configmaps/kubelet-config"
            ),
            "GET kubelet-config"
        );
        assert_eq!(kind("GET", "/api/v1/nodes/n1"), "GET node");
        assert_eq!(kind("POST", &format!("{csrs}?")), "POST csr");
        assert_eq!(
            kind("GET", &format!("{csrs}?&fieldSelector=metadata.name%3Dx")),
            "LIST csr"
        );
        assert_eq!(
            kind("GET", &format!("{csrs}?&watch=true&fieldSelector=x")),
            "WATCH csr"
        );
        assert_eq!(kind("GET", &format!("{csrs}/node-csr-x")), "GET csr");
    }
}
