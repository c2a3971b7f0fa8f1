//! Many machines joining at once: concurrent in-process joins against one test control plane
//! whose concurrency cap answers 429 + `Retry-After` (kube-apiserver's max-in-flight filter).
//!
//! Each join is a tokio task doing what the binary does after parsing: discovery (token, pinned
//! CA), then the TLS bootstrap and the install into its own root, with its own key, CSR and
//! node name, under one overall deadline. All must succeed. The figures (requests the server
//! saw, requests per join, 429s, wall time) are printed, not asserted: they depend on the
//! machine.
//!
//! `joins_1000_concurrently` runs in `cargo test` (debug build, about 10 s on 2 cores);
//! `KUBEJOIN_LOAD_JOINS` overrides the count.

// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kubejoin::fs::root::Root;
use kubejoin::install;
use kubejoin::join::{self, Run, Tuning};
use kubejoin::sys::RecordingExec;
use kubejoin_testcp::{Config, Faults, Handle, InFlightLimit};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the roots go: memory when the machine has it (the test measures the protocol, not
/// the disk's fsync latency).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

/// 1,000 joins hold thousands of sockets (both ends are in this process).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn plan(cp: &Handle, root: &Path, node: &str) -> kubejoin::plan::JoinPlan {
    let argv = [
        "kubejoin",
        "join",
        &cp.endpoint(),
        "--token",
        &cp.token(),
        "--discovery-token-ca-cert-hash",
        &cp.signing_ca_pin(),
        "--node-name",
        node,
        "--root",
        root.to_str().unwrap(),
        "--discovery-retry-interval",
        "1s",
    ];
    match kubejoin::cli::parse(argv.iter().map(Into::into)).unwrap() {
        kubejoin::cli::Command::Join(p) => *p,
        other => panic!("not a join: {other:?}"),
    }
}

/// `joins` concurrent joins against a control plane capped at `in_flight` concurrent reads
/// (and half as many writes); panics if any fails or the whole run outlasts `limit`.
fn fleet(joins: usize, in_flight: usize, limit: Duration) {
    raise_fd_limit();
    // Thousands of phase lines would drown the figures.
    kubejoin::log::set_level(kubejoin::log::Level::Warn);
    let cp = Arc::new(
        kubejoin_testcp::start(Config {
            faults: Faults {
                max_in_flight: Some(InFlightLimit::with_default_ratio(in_flight)),
                ..Faults::default()
            },
            ..Config::default()
        })
        .expect("test control plane starts"),
    );
    let scratch = scratch();
    // The joins are tasks on one thread (a LocalSet): discovery's future is not `Send` (it
    // holds a response across an await), so it cannot go to a multi-threaded pool. The control
    // plane runs on its own two-worker runtime, and file writes go to the blocking pool, so
    // the two cores of a CI machine are both busy anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let started = Instant::now();
    let outcomes = local.block_on(&runtime, async {
        let mut tasks = Vec::with_capacity(joins);
        for i in 0..joins {
            let cp = cp.clone();
            let root = scratch.path().join(format!("node-{i}"));
            std::fs::create_dir(&root).unwrap();
            tasks.push(tokio::task::spawn_local(async move {
                let node = format!("load-{i:04}");
                let plan = plan(&cp, &root, &node);
                // The binary's own pipeline: one overall deadline from discovery on.
                let mut run = Run::new(plan_timeout());
                let t0 = Instant::now();
                let d = join::discover_within(&plan, &mut run).await?;
                let joined = join::bootstrap_and_install_within(
                    &plan,
                    &d,
                    &RecordingExec::new(&node),
                    &Tuning::default(),
                    &mut run,
                )
                .await?;
                Ok::<_, join::Error>((joined, t0.elapsed()))
            }));
        }
        let all = async {
            let mut out = Vec::with_capacity(joins);
            for t in tasks {
                out.push(t.await);
            }
            out
        };
        tokio::time::timeout(limit, all).await
    });
    let wall = started.elapsed();
    let outcomes =
        outcomes.unwrap_or_else(|_| panic!("{joins} joins did not finish within {limit:?}"));

    let mut failures = Vec::new();
    let mut durations = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            Ok(Ok((joined, took))) => {
                assert_eq!(joined.outcome, join::Outcome::Joined);
                durations.push(took);
            }
            Ok(Err(e)) => failures.push(format!("join {i}: {}", kubejoin::error::Report(&e, None))),
            Err(e) => failures.push(format!("join {i}: task failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {joins} joins failed:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );

    // Every node has its identity on disk, and the server issued exactly one CSR per node.
    for i in 0..joins {
        let root = Root::new(scratch.path().join(format!("node-{i}")));
        assert!(
            root.join(install::KUBELET_CONF).unwrap().exists(),
            "node {i}"
        );
    }
    let csrs = cp.csrs();
    assert_eq!(csrs.len(), joins, "one CSR per join");
    let mut names: Vec<&str> = csrs
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), joins, "distinct CSR names");

    let requests = cp.requests();
    let shed = requests.iter().filter(|r| r.status == 429).count();
    durations.sort_unstable();
    let pct = |p: usize| durations[(durations.len() * p / 100).min(durations.len() - 1)];
    println!(
        "load ({} build): {joins} joins, cap {in_flight} in flight: {} requests ({:.1} per join, {shed} answered 429), \
         wall {:.1}s, join time p50 {:.2}s p90 {:.2}s max {:.2}s",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        requests.len(),
        requests.len() as f64 / joins as f64,
        wall.as_secs_f64(),
        pct(50).as_secs_f64(),
        pct(90).as_secs_f64(),
        durations.last().map_or(0.0, |d| d.as_secs_f64()),
    );
    drop(local);
    drop(runtime);
}

/// What runs after discovery can go to any worker thread.
#[allow(dead_code)]
fn bootstrap_is_send(plan: &kubejoin::plan::JoinPlan, d: &kubejoin::discovery::Discovered) {
    fn send<T: Send>(_: T) {}
    let sys = RecordingExec::new("n");
    let tuning = Tuning::default();
    let mut run = Run::new(Duration::from_secs(1));
    send(join::bootstrap_and_install_within(
        plan, d, &sys, &tuning, &mut run,
    ));
    send(join::bootstrap_and_install(plan, d, &sys, &tuning));
}

/// The binary's default overall deadline; the fleet bound below is what stops a hung test.
fn plan_timeout() -> Duration {
    kubejoin::deadline::DEFAULT_TIMEOUT
}

fn joins_from_env(default: usize) -> usize {
    std::env::var("KUBEJOIN_LOAD_JOINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The load test: 1,000 concurrent in-process joins, each with its own key and CSR, against
/// one control plane that answers 429 beyond 64 requests in flight. About 10 s in a debug build on 2
/// cores, so `scripts/test` runs it whole; `KUBEJOIN_LOAD_JOINS=N` changes the count.
#[test]
fn joins_1000_concurrently() {
    fleet(joins_from_env(1000), 64, Duration::from_secs(300));
}
