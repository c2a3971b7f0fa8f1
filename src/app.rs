//! The one place that knows the order of stages.

use crate::bootstrap::backoff;
use crate::bootstrap::{self, config, csr, verify, wait, Cluster};
use crate::cli::{Command, UsageError};
use crate::deadline::{Cause, Deadline, Expired, PhaseClock};
use crate::discovery::{self, Discovered, Method};
use crate::error::{Class, Classify};
use crate::install::{self, existing, flags};
use crate::log;
use crate::plan::node_name::NodeName;
use crate::plan::pin::CaPin;
use crate::plan::JoinPlan;
use crate::root::Root;
use crate::sys::{RealSys, Sys};
use crate::versions::ClusterRules;
use crate::{handoff, info, warn};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Any failure of a command, classified for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Discovery(#[from] discovery::Error),
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no usable certificate")]
    Pem {
        path: PathBuf,
        #[source]
        source: crate::plan::pin::PemError,
    },
    #[error(transparent)]
    Host(crate::host::HostError),
    #[error(transparent)]
    Sources(#[from] crate::source::merge::LoadError),
    #[error(transparent)]
    Settings(crate::source::merge::SettingsError),
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::Error),
    #[error(transparent)]
    Install(#[from] install::Error),
    #[error(transparent)]
    Handoff(#[from] handoff::Error),
    /// A join phase ran out of time (its own bound or `--timeout`).
    #[error(transparent)]
    Deadline(#[from] Expired),
    /// A bug (a task that panicked); never expected.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Usage(e) => e.class(),
            Error::Discovery(e) => e.class(),
            Error::Read { .. } => Class::Other,
            Error::Pem { .. } => Class::Usage,
            Error::Host(e) => e.class(),
            Error::Sources(e) => e.class(),
            Error::Settings(e) => e.class(),
            Error::Bootstrap(e) => e.class(),
            Error::Install(e) => e.class(),
            Error::Handoff(e) => e.class(),
            Error::Deadline(e) => e.class(),
            Error::Internal(_) => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Usage(e) => e.hint(),
            Error::Host(e) => e.hint(),
            Error::Sources(e) => e.hint(),
            Error::Settings(e) => e.hint(),
            Error::Discovery(e) => e.hint(),
            Error::Bootstrap(e) => e.hint(),
            Error::Install(e) => e.hint(),
            Error::Handoff(e) => e.hint(),
            Error::Deadline(e) => e.hint(),
            _ => None,
        }
    }
}

/// Runs one command to completion.
pub async fn run(cmd: Command) -> Result<(), Error> {
    match cmd {
        Command::Help(text) => {
            print!("{text}");
            Ok(())
        }
        // `main` runs PID-1 mode itself, before any runtime exists; it never gets here.
        Command::Init => Err(Error::Internal(
            "`kubejoin init` is run by main, not by app::run".into(),
        )),
        Command::Version => {
            println!("kubejoin {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::CaHash(files) => ca_hash(&files),
        Command::Join(plan) => {
            prepare_host(&plan)?;
            join(&plan).await
        }
        Command::HostPrep(h) => host_prep(&h.host, &h.root, h.dry_run).map(|_| ()),
        Command::JoinFromSources(j) => join_from_sources(&j, &load_options(&j.sources)).await,
        Command::Plan(args) => {
            let loaded = load_sources(&args).await?;
            let json = crate::source::merge::plan_json(&loaded.settings);
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
            if json["valid"] == serde_json::Value::Bool(true) {
                Ok(())
            } else {
                // The JSON says what is missing or wrong; the exit code says it is not joinable.
                loaded
                    .settings
                    .to_plan(&args.root)
                    .map(|_| ())
                    .map_err(Error::Settings)
            }
        }
    }
}

/// Host preparation and preflight before a join, when the node being joined is this machine.
///
/// Only with `--root /`: installing into another directory (a test root, an image being built)
/// says nothing about the running kernel, and loading modules or changing sysctls there would
/// change the wrong machine. PID-1 mode runs host preparation itself, before the network.
fn prepare_host(plan: &JoinPlan) -> Result<(), Error> {
    if plan
        .skip_phases
        .iter()
        .any(|p| p == "host" || p == "preflight")
    {
        log::phase("host").skipped();
        return Ok(());
    }
    if plan.root != std::path::Path::new("/") {
        crate::info!(
            "installing into {}: host preparation and preflight skipped (they apply to the running machine; see `kubejoin host-prep`)",
            plan.root.display()
        );
        return Ok(());
    }
    let root = crate::root::Root::new("/");
    if plan.dry_run {
        // A dry run reports what host preparation would find wrong, and goes on to discovery.
        if let Err(e) = host_prep(&plan.host, std::path::Path::new("/"), true) {
            crate::warn!(
                "host preparation would fail: {}",
                crate::error::Report(&e, e.hint())
                    .to_string()
                    .trim_start_matches("error: ")
            );
        }
    } else {
        host_prep(&plan.host, std::path::Path::new("/"), false)?;
    }
    let phase = log::phase("preflight");
    let sys = crate::sys::host::RealHostSys;
    let cfg = crate::host::PreflightConfig {
        cri_socket: plan.cri_socket.clone(),
        kubelet_path: plan.kubelet_path.clone(),
        ignore_errors: plan.ignore_preflight_errors.clone(),
        ..crate::host::PreflightConfig::default()
    };
    let pre = crate::host::preflight(&cfg, &plan.host, &root, &sys);
    eprint!("{pre}");
    if plan.dry_run {
        // A dry run goes on to discovery, but says that a real join would stop here.
        let errors = pre.errors();
        if errors.is_empty() {
            phase.ok();
        } else {
            crate::warn!(
                "preflight: {} check(s) in ERROR ({}): a real join would stop here; fix them, or downgrade them \
                 with --ignore-preflight-errors={}",
                errors.len(),
                errors.join(", "),
                errors.join(",")
            );
            phase.would_fail();
        }
        return Ok(());
    }
    pre.into_result().map_err(Error::Host)?;
    phase.ok();
    Ok(())
}

/// Plans host preparation from the host's state, then applies and verifies it (or prints the plan).
fn host_prep(
    cfg: &crate::host::HostConfig,
    root: &std::path::Path,
    dry_run: bool,
) -> Result<Option<crate::host::HostReport>, Error> {
    let phase = log::phase("host");
    let root = crate::root::Root::new(root);
    let sys = crate::sys::host::RealHostSys;
    let plan = match crate::host::plan(cfg, &root, &sys) {
        Ok(plan) => plan,
        Err(e) => {
            if dry_run {
                phase.would_fail();
            }
            return Err(Error::Host(e));
        }
    };
    if dry_run {
        println!("{plan}");
        phase.skipped();
        return Ok(None);
    }
    let report = crate::host::apply(&plan, &root, &sys).map_err(Error::Host)?;
    crate::info!("{report}");
    phase.ok();
    Ok(Some(report))
}

/// The boot sources of `kubejoin join`/`plan` as the command line names them. On this machine
/// (`--root /`) an OpenStack config drive is mounted for real (read-only, and unmounted again);
/// replays (`--metadata-dir`) never mount anything.
pub fn load_options(args: &crate::cli::SourceArgs) -> crate::source::merge::LoadOptions {
    use crate::source::merge::{LoadOptions, MetadataAccess};
    let mut opts = LoadOptions::live(crate::root::Root::new(&args.root));
    opts.cmdline_file = args.cmdline_file.clone();
    opts.config_file = args.config.clone();
    if let Some(dir) = &args.metadata_dir {
        opts.metadata = MetadataAccess::Recorded(dir.clone());
    }
    opts
}

/// Gathers the boot sources (kernel command line, local config, metadata) into merged settings.
pub async fn load_sources(
    args: &crate::cli::SourceArgs,
) -> Result<crate::source::merge::Loaded, Error> {
    load_sources_with(&load_options(args)).await
}

async fn load_sources_with(
    opts: &crate::source::merge::LoadOptions,
) -> Result<crate::source::merge::Loaded, Error> {
    let loaded = crate::source::merge::load(opts).await?;
    for w in &loaded.settings.warnings {
        crate::warn!("{w}");
    }
    for c in &loaded.settings.conflicts {
        crate::info!("sources: {c}");
    }
    Ok(loaded)
}

/// The join plan of the boot sources, validated like the command line's.
pub async fn plan_from_sources(args: &crate::cli::SourceArgs) -> Result<JoinPlan, Error> {
    let loaded = load_sources(args).await?;
    loaded.settings.to_plan(&args.root).map_err(Error::Settings)
}

/// `kubejoin join` without discovery flags: the plan of the boot sources `opts` describes
/// (normally [`load_options`] of `j.sources`; tests point the metadata at a loopback server),
/// with the flags that were given on top, then host preparation and the join.
pub async fn join_from_sources(
    j: &crate::cli::SourcesJoin,
    opts: &crate::source::merge::LoadOptions,
) -> Result<(), Error> {
    let loaded = load_sources_with(opts).await?;
    let mut plan = loaded
        .settings
        .to_plan(&j.sources.root)
        .map_err(Error::Settings)?;
    plan.dry_run |= j.dry_run;
    plan.force |= j.force;
    if let Some(h) = j.handoff {
        plan.handoff = h;
    }
    if let Some(k) = &j.kubelet_path {
        plan.kubelet_path = k.clone();
    }
    if let Some(n) = &j.node_name {
        plan.node_name = Some(n.clone());
    }
    prepare_host(&plan)?;
    join(&plan).await
}

fn ca_hash(files: &[PathBuf]) -> Result<(), Error> {
    for path in files {
        let pem = std::fs::read(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let ders = crate::plan::pin::certs_from_pem(&pem).map_err(|source| Error::Pem {
            path: path.clone(),
            source,
        })?;
        for der in ders {
            let pin = CaPin::of_cert_der(&der).map_err(|e| Error::Pem {
                path: path.clone(),
                source: crate::plan::pin::PemError::Cert(e),
            })?;
            println!("{pin}");
        }
    }
    Ok(())
}

async fn join(plan: &JoinPlan) -> Result<(), Error> {
    // Crash tests enumerate the failpoints through the binary they kill (debug builds only).
    if install::failpoint::armed() == Some(&install::failpoint::Armed::List) {
        for name in install::failpoint::list() {
            println!("{name}");
        }
        return Ok(());
    }
    // The overall deadline starts before discovery: `--timeout` bounds the whole join.
    let mut run = Run::new(overall_timeout(plan));
    let discovered = discover_within(plan, &mut run).await?;
    if plan.dry_run {
        print_dry_run(plan, &discovered);
    }
    let sys = RealSys;
    let joined =
        bootstrap_and_install_within(plan, &discovered, &sys, &Tuning::default(), &mut run).await?;
    if joined.outcome == Outcome::DryRun {
        return Ok(());
    }
    // Not bounded: the node's files are installed, and handing off is an exec or a return.
    let phase = log::phase("handoff");
    handoff::handoff(
        plan.handoff,
        &plan.kubelet_path,
        &Root::new(&plan.root),
        &sys,
    )?;
    phase.ok();
    Ok(())
}

/// The overall deadline of a join (`--timeout`).
fn overall_timeout(plan: &JoinPlan) -> Duration {
    plan.timeout
}

/// Knobs of the post-discovery pipeline that tests shorten; `Default` is the binary's.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The CSR wait; its `timeout` is replaced by `min(plan.tls_bootstrap_timeout, time left)`.
    pub wait: wait::WaitOptions,
    /// Retry schedule of the API calls of `cluster-config` and `csr`.
    pub backoff: crate::retry::Policy,
    /// Own bound of each API phase (`cluster-config`, `csr`): kubeadm's 1 m for an API call
    /// with retries (`timeouts.kubernetesAPICall`).
    pub api_phase: Duration,
    /// Own bound of the local writes (`install`, `completion`).
    pub install_phase: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            wait: wait::WaitOptions::default(),
            backoff: backoff::API_POLICY,
            api_phase: Duration::from_secs(60),
            install_phase: Duration::from_secs(60),
        }
    }
}

/// One join's overall deadline and the record of its phases for `result.json`. Kept per join
/// (not process-wide) so joins running side by side in one process each report their own.
#[derive(Debug)]
pub struct Run {
    pub deadline: Deadline,
    phases: Vec<log::PhaseRecord>,
}

/// A phase in progress: its log line, its clock, its wall-clock start.
struct Stage {
    log: log::Phase,
    clock: PhaseClock,
    wall: SystemTime,
}

impl Run {
    /// A run whose overall deadline is `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        Self {
            deadline: Deadline::after(timeout),
            phases: Vec::new(),
        }
    }

    /// The phases finished so far, in order.
    pub fn phases(&self) -> &[log::PhaseRecord] {
        &self.phases
    }

    fn begin(&self, name: &'static str, phase_max: Duration) -> Stage {
        Stage {
            log: log::phase(name),
            clock: self.deadline.phase(name, phase_max),
            wall: SystemTime::now(),
        }
    }

    fn end(&mut self, stage: Stage, skipped: bool) {
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        };
        let took = stage.clock.started.elapsed().as_millis();
        let start_ms = ms(stage.wall);
        let steps = if skipped {
            stage.log.skipped_steps()
        } else {
            stage.log.ok_steps()
        };
        self.phases.push(log::PhaseRecord {
            phase: stage.clock.name.to_string(),
            start_ms,
            end_ms: start_ms + took,
            duration_ms: took,
            outcome: if skipped { "skipped" } else { "ok" }.into(),
            steps,
        });
    }
}

/// Discovery as the `discovery` phase of `run`: each of its fetch loops keeps its own bound
/// (`--discovery-timeout`) but never past the overall deadline, and the phase as a whole (token
/// discovery runs two loops) is cut at the overall deadline. Running out of time gives
/// [`Error::Deadline`] naming the phase, with discovery's own error as the cause.
pub async fn discover_within(plan: &JoinPlan, run: &mut Run) -> Result<Discovered, Error> {
    let stage = run.begin("discovery", Duration::MAX);
    let mut opts = plan.discovery.clone();
    opts.timeout = run.deadline.bound(opts.timeout);
    match stage.clock.run(discovery::discover(&opts)).await {
        Ok(Ok(d)) => {
            run.end(stage, false);
            Ok(d)
        }
        // Discovery's own bound or the overall deadline: the report says which flag to raise.
        Ok(Err(e)) if e.class() == Class::Timeout => {
            // A loop that ended before its bound did so because the next attempt (a backoff
            // pause, a Retry-After) would have started after it: say that, not "it passed".
            let waited = match &e {
                discovery::Error::Unreachable { waited, .. }
                | discovery::Error::Unavailable { waited, .. }
                | discovery::Error::JwsMissing { waited, .. } => Some(*waited),
                _ => None,
            };
            let expired = stage.clock.expired_own_limit(
                Some(Cause::of(e)),
                "--discovery-timeout",
                plan.discovery.timeout,
            );
            Err(Error::Deadline(match waited {
                Some(w) if w + Duration::from_millis(1) < opts.timeout => expired.stopped_early(),
                _ => expired,
            }))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(expired) => Err(Error::Deadline(expired)),
    }
}

/// Runs local file work off the async workers (an fsync can take long on a busy disk, and joins
/// running side by side must not stall each other's network I/O), cut at the phase's clock.
/// When the clock wins, the write may still complete in the background: the atomic writer
/// makes whatever it finishes whole, so giving up is safe at any instant.
async fn on_disk<T, F>(clock: &PhaseClock, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    match clock.run(tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(Error::Internal(format!(
            "the {} phase's file task ended abnormally: {e}",
            clock.name
        ))),
        Err(expired) => Err(Error::Deadline(expired)),
    }
}

/// How a join ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Certificate issued and every file installed.
    Joined,
    /// A valid identity for this node and cluster was already installed; nothing was done.
    AlreadyJoined,
    /// `--dry-run`: everything read, nothing written or submitted.
    DryRun,
}

/// What [`bootstrap_and_install`] did.
#[derive(Debug, Clone)]
pub struct Joined {
    pub outcome: Outcome,
    pub node: NodeName,
    /// The CSR that was submitted or resumed.
    pub csr: Option<String>,
    /// The CSR already existed with our name (an interrupted join resumed).
    pub csr_reused: bool,
    /// notAfter of the node certificate, Unix seconds.
    pub not_after: Option<i64>,
    /// The progress lines printed while the CSR was pending.
    pub progress: Vec<String>,
    /// What was (or, in a dry run, would be) written, in order.
    pub steps: Vec<String>,
    /// The phases run, as written to `result.json`.
    pub phases: Vec<log::PhaseRecord>,
}

fn ca_pin(d: &Discovered) -> Option<String> {
    d.matched_pin
        .clone()
        .or_else(|| {
            d.ca_der
                .first()
                .and_then(|der| CaPin::of_cert_der(der).ok())
        })
        .map(|p| p.to_string())
}

/// Everything after discovery up to (not including) the handoff, under a fresh overall deadline
/// of `--timeout`: see [`bootstrap_and_install_within`].
pub async fn bootstrap_and_install(
    plan: &JoinPlan,
    d: &Discovered,
    sys: &dyn Sys,
    tuning: &Tuning,
) -> Result<Joined, Error> {
    let mut run = Run::new(overall_timeout(plan));
    bootstrap_and_install_within(plan, d, sys, tuning, &mut run).await
}

/// Everything after discovery up to (not including) the handoff: identity check, cluster
/// configuration, key and CSR, wait, verification, install, completion files. Each stage is a
/// named phase of `run`, bounded by its own limit and by `run`'s overall deadline. With
/// `plan.dry_run` only reads happen and the planned writes are printed.
pub async fn bootstrap_and_install_within(
    plan: &JoinPlan,
    d: &Discovered,
    sys: &dyn Sys,
    tuning: &Tuning,
    run: &mut Run,
) -> Result<Joined, Error> {
    let root = Root::new(&plan.root);
    let id = bootstrap::resolve_node_name(plan.node_name.as_ref(), sys)?;
    let node = id.name.as_str().to_string();
    let mut joined = Joined {
        outcome: if plan.dry_run {
            Outcome::DryRun
        } else {
            Outcome::Joined
        },
        node: id.name.clone(),
        csr: None,
        csr_reused: false,
        not_after: None,
        progress: Vec::new(),
        steps: Vec::new(),
        phases: Vec::new(),
    };

    // Before any request: a node that is already joined must not spend the token again (it may
    // have expired since), and one that belongs elsewhere must not be overwritten silently.
    let stage = run.begin("identity-check", Duration::MAX);
    match existing::check(&root, &d.ca_der, &node, SystemTime::now()) {
        existing::Existing::None => run.end(stage, false),
        existing::Existing::Joined { not_after } if !plan.force => {
            info!(
                "already joined: {} holds a valid certificate for system:node:{node} from this cluster (until {}); nothing to do",
                install::KUBELET_CONF,
                install::rfc3339(not_after)
            );
            run.end(stage, true);
            if plan.dry_run {
                println!("dry run: this node is already joined; nothing would be written");
                return Ok(joined);
            }
            joined.outcome = Outcome::AlreadyJoined;
            joined.not_after = Some(not_after);
            // A run that crashed between writing kubelet.conf and removing the pending key
            // leaves the key behind; its certificate is installed, so it is only debris now.
            let stage = run.begin("install", tuning.install_phase);
            let r = root.clone();
            on_disk(&stage.clock, move || {
                install::apply(
                    &r,
                    &[install::Step::Remove {
                        path: csr::KEY_TMP.into(),
                        what: "a pending key left by an interrupted run",
                    }],
                )
                .map_err(Error::from)
            })
            .await?;
            run.end(stage, false);
            // The completion files live in /run (volatile): describe this boot's outcome.
            complete(run, &root, d, &mut joined, tuning).await?;
            return Ok(joined);
        }
        existing::Existing::Joined { .. } => {
            warn!("already joined, but --force given: joining again");
            run.end(stage, false);
        }
        existing::Existing::Stale(why) => {
            warn!("{} exists but {why}; joining again", install::KUBELET_CONF);
            run.end(stage, false);
        }
        existing::Existing::Conflict(c) if plan.force => {
            warn!("{c}; replacing it because --force was given");
            run.end(stage, false);
        }
        existing::Existing::Conflict(c) => return Err(install::Error::Existing(c).into()),
    }

    // Overload (429), failover (5xx, resets) and slow answers are retried within the phase; a
    // Ready Node of our name ends it at once, a 401/403 once it persists (an API server that
    // has just restarted refuses valid tokens for a moment: retry::Persistence).
    let stage = run.begin("cluster-config", tuning.api_phase);
    let cluster = Cluster::connect(d)?;
    let resume = config::Resume::default();
    let cfg = backoff::within(
        &stage.clock,
        &tuning.backoff,
        "reading the cluster configuration",
        &cluster.server,
        || config::fetch_resuming(&cluster, &resume),
    )
    .await?;
    backoff::within(
        &stage.clock,
        &tuning.backoff,
        &format!("getting Node {node:?}"),
        &cluster.server,
        || config::check_node(&cluster, &node),
    )
    .await?;
    run.end(stage, false);

    let runtime_endpoint = match &cfg.container_runtime_endpoint {
        Some(ep) => {
            if *ep != plan.cri_socket {
                warn!(
                    "the cluster's KubeletConfiguration sets containerRuntimeEndpoint {ep:?}, which the kubelet will use; \
                     --cri-socket {:?} is not passed (use --kubelet-arg container-runtime-endpoint=... to override)",
                    plan.cri_socket
                );
            }
            None
        }
        None => Some(plan.cri_socket.as_str()),
    };
    let hostname_override =
        (id.hostname.as_deref() != Some(node.as_str())).then_some(node.as_str());
    // What this cluster's version needs: CSR usages, runtime flags, pause image.
    let rules = ClusterRules::for_cluster(cfg.kubernetes_version.as_ref());
    if let Some(w) = &rules.warning {
        warn!("{w}");
    }
    let kubelet_version = if rules.needs_kubelet_version(&plan.cri_socket) {
        local_kubelet_version(&plan.kubelet_path, sys)
    } else {
        None
    };
    let usages = rules.usages();
    let args = flags::kubelet_args(&flags::FlagsInput {
        runtime: rules.runtime_flags(&plan.cri_socket, kubelet_version.as_ref()),
        container_runtime_endpoint: runtime_endpoint,
        hostname_override,
        taints: &plan.taints,
        image_repository: &cfg.image_repository,
        pause_tag: rules.pause_tag(),
        extra_args: &plan.kubelet_extra_args,
    });
    let flags_env = flags::render(&args);
    info!(
        "cluster version {} ({} in kube-system/kubeadm-config; kubelet configuration from kube-system/{}): \
         joining as kubeadm v1.{} does, CSR usages [{}], {}",
        rules
            .version
            .as_ref()
            .map_or_else(|| "unknown".to_string(), |v| v.to_string()),
        cfg.api_version.as_deref().unwrap_or("ClusterConfiguration"),
        cfg.kubelet_config_map,
        rules.row.minor,
        usages.join(", "),
        match rules.pause_tag() {
            Some(tag) => format!("pause image {}/pause:{tag}", cfg.image_repository),
            None => "no pause image flag".to_string(),
        }
    );

    if plan.dry_run {
        let (key, reused) = csr::load_or_generate_key(&root, false)?;
        if reused {
            println!(
                "would: resume certificate signing request {} for {} (key from an earlier attempt)",
                csr::csr_name(&key, &node, usages),
                csr::common_name(&node)
            );
        } else {
            println!(
                "would: submit a certificate signing request node-csr-<digest of a new P-256 key> for {}",
                csr::common_name(&node)
            );
        }
        println!("would: write under {}:", root);
        let i = install::Inputs {
            server: &d.server,
            ca_pem: &d.ca_pem,
            cert_chain_pem: "",
            key_pem: "",
            kubelet_config: &cfg.kubelet_config,
            flags_env: &flags_env,
            now: SystemTime::now(),
        };
        let mut steps = vec![install::Step::File {
            path: csr::KEY_TMP.into(),
            mode: 0o600,
            contents: Vec::new(),
            what: "the node's private key while the CSR is pending",
        }];
        steps.extend(install::plan(&i));
        steps.extend(install::completion_steps());
        // The join names the client PEM after the issued certificate's notBefore, which a dry
        // run cannot know: say so instead of printing a name made from the clock.
        let guessed = install::client_pem_path(i.now);
        let named = format!("{}/kubelet-client-<notBefore>.pem", install::PKI_DIR);
        joined.steps = steps
            .iter()
            .map(|s| s.to_string().replace(&guessed, &named))
            .collect();
        for s in &joined.steps {
            println!("  {s}");
        }
        println!("  (<notBefore>: the issued certificate's notBefore, YYYY-MM-DD-HH-MM-SS in UTC)");
        println!("  {}", flags_env.trim_end());
        joined.phases = run.phases().to_vec();
        return Ok(joined);
    }

    // The key is durable before the CSR is sent, and the CSR's name derives from it, so a POST
    // that is retried (its answer lost) or a run that is restarted finds its own CSR (409) and
    // adopts it instead of leaving an orphan.
    let stage = run.begin("csr", tuning.api_phase);
    let key_root = root.clone();
    let (key, _) = on_disk(&stage.clock, move || {
        csr::load_or_generate_key(&key_root, true).map_err(Error::from)
    })
    .await?;
    // Shared across attempts: an attempt that met an unusable CSR of our name replaced it.
    let key_slot = tokio::sync::Mutex::new(key);
    let submitted = backoff::within(
        &stage.clock,
        &tuning.backoff,
        "creating the certificate signing request",
        &cluster.server,
        || async {
            let mut key = key_slot.lock().await;
            csr::submit(&cluster, &root, &mut key, &node, usages).await
        },
    )
    .await?;
    let key = key_slot.into_inner();
    joined.csr = Some(submitted.name.clone());
    joined.csr_reused = submitted.reused;
    run.end(stage, false);

    let stage = run.begin("wait-approval", plan.tls_bootstrap_timeout);
    let opts = wait::WaitOptions {
        timeout: stage.clock.remaining(),
        ..tuning.wait.clone()
    };
    let issued = match wait::wait(&cluster, &submitted, &opts).await {
        Ok(issued) => issued,
        Err(e @ bootstrap::Error::Timeout { .. }) => {
            return Err(Error::Deadline(stage.clock.expired(Some(Cause::of(e)))))
        }
        Err(e) => return Err(e.into()),
    };
    joined.progress = issued.progress.clone();
    run.end(stage, false);

    let stage = run.begin("verify-certificate", Duration::MAX);
    let verified = verify::verify(
        &issued.cert_pem,
        &key.spki_der(),
        &node,
        &d.ca_der,
        SystemTime::now(),
    )
    .map_err(|source| bootstrap::Error::Certificate {
        name: submitted.name.clone(),
        source,
    })?;
    joined.not_after = Some(verified.not_after);
    info!(
        "certificate for {} issued, valid until {}",
        csr::common_name(&node),
        install::rfc3339(verified.not_after)
    );
    run.end(stage, false);

    let stage = run.begin("install", tuning.install_phase);
    let key_pem = key.to_pem();
    let steps = install::plan(&install::Inputs {
        server: &d.server,
        ca_pem: &d.ca_pem,
        cert_chain_pem: &verified.chain_pem,
        key_pem: &key_pem,
        kubelet_config: &cfg.kubelet_config,
        flags_env: &flags_env,
        // Named after the certificate, not the clock: a re-run that resumes the same CSR gets
        // the same certificate and rewrites the same file instead of leaving a second PEM.
        now: SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(verified.not_before).unwrap_or(0)),
    });
    joined.steps = steps.iter().map(|s| s.to_string()).collect();
    let r = root.clone();
    on_disk(&stage.clock, move || {
        install::apply(&r, &steps).map_err(Error::from)
    })
    .await?;
    run.end(stage, false);

    complete(run, &root, d, &mut joined, tuning).await?;
    Ok(joined)
}

/// The version of the kubelet at `path` (`kubelet --version`), as kubeadm's
/// `preflight.GetKubeletVersion` reads it; `None` when there is no kubelet there or its answer
/// is not a version (the kubelet is then taken to be of the cluster's version).
fn local_kubelet_version(
    path: &std::path::Path,
    sys: &dyn Sys,
) -> Option<crate::plan::version::KubernetesVersion> {
    if std::fs::metadata(path).is_err() {
        info!(
            "no kubelet at {} (--kubelet-path): taking it to be of the cluster's version",
            path.display()
        );
        return None;
    }
    let out = match sys.output(path, &["--version"], Duration::from_secs(10)) {
        Ok(out) => out,
        Err(e) => {
            warn!(
                "cannot run {} --version ({e}); taking the kubelet to be of the cluster's version",
                path.display()
            );
            return None;
        }
    };
    match crate::plan::version::KubernetesVersion::from_kubelet_output(&String::from_utf8_lossy(
        &out,
    )) {
        Ok(v) => {
            info!("kubelet at {} is {v}", path.display());
            Some(v)
        }
        Err(e) => {
            warn!(
                "{} --version: {e}; taking the kubelet to be of the cluster's version",
                path.display()
            );
            None
        }
    }
}

/// Writes the completion contract (`result.json`, Cluster API sentinel) as its own phase.
async fn complete(
    run: &mut Run,
    root: &Root,
    d: &Discovered,
    joined: &mut Joined,
    tuning: &Tuning,
) -> Result<(), Error> {
    let stage = run.begin("completion", tuning.install_phase);
    let result = install::JoinResult {
        outcome: match joined.outcome {
            Outcome::AlreadyJoined => "already-joined",
            _ => "joined",
        }
        .into(),
        node: joined.node.to_string(),
        csr: joined.csr.clone(),
        certificate_not_after: joined.not_after.map(install::rfc3339),
        server: d.server.clone(),
        ca_pin: ca_pin(d),
        phases: run.phases().to_vec(),
    };
    let r = root.clone();
    on_disk(&stage.clock, move || {
        install::write_completion(&r, &result).map_err(Error::from)
    })
    .await?;
    run.end(stage, false);
    joined.phases = run.phases().to_vec();
    Ok(())
}

/// What a dry run verified, for a person (stdout).
fn print_dry_run(plan: &JoinPlan, d: &Discovered) {
    println!("dry run: discovery verified the cluster; nothing was written");
    match &d.method {
        Method::Token { endpoint } => println!("  discovery:   bootstrap token via {endpoint}"),
        Method::File { path } => println!("  discovery:   kubeconfig file {path}"),
        Method::Https { url } => println!("  discovery:   kubeconfig from {url}"),
    }
    println!("  API server:  {}", d.server);
    let subject = |der: &[u8]| {
        crate::x509::parse_certificate(der)
            .map(|c| c.subject.to_string())
            .unwrap_or_default()
    };
    for der in &d.ca_der {
        let pin = CaPin::of_cert_der(der)
            .map(|p| p.to_string())
            .unwrap_or_default();
        let mark = if d.matched_pin.is_some() {
            "  <- matches a pinned hash: trusted, would be installed"
        } else {
            ""
        };
        println!("  cluster CA:  {}  {pin}{mark}", subject(der));
    }
    for (pin, der) in &d.unpinned {
        println!(
            "  cluster CA:  {}  {pin}  <- NOT pinned: not trusted, would not be installed",
            subject(der)
        );
    }
    // Only what discovery did: the verified re-fetch is made only when `server:` is another
    // address than the endpoint (see discovery::token).
    match (&d.method, &d.matched_pin) {
        (Method::Token { endpoint }, Some(_))
            if crate::discovery::token::same_address(&d.server, endpoint) =>
        {
            println!(
                "  trust:       JWS signature of cluster-info valid for the token; only the pinned CA(s) trusted; {} is the endpoint itself, \
                 so no re-fetch: its TLS is verified against the pinned CA by the next request, before the token is sent",
                d.server
            )
        }
        (Method::Token { endpoint }, Some(_)) => println!(
            "  trust:       JWS signature of cluster-info valid for the token; only the pinned CA(s) trusted; cluster-info fetched again \
             from {endpoint} over TLS verified against the pinned CA: identical"
        ),
        (Method::Token { .. }, None) => println!(
            "  trust:       JWS signature valid; CA NOT verified (--discovery-token-unsafe-skip-ca-verification)"
        ),
        _ => println!("  trust:       TLS verified against the kubeconfig's CA"),
    }
    println!(
        "reading the cluster configuration (kubeadm-config, then kubelet-config by the cluster's version) and looking up Node {:?} with the bootstrap credentials",
        node_name_for_dry_run(plan)
    );
}

/// The node name a dry run reports (`--node-name`, else the host's name as the join resolves it).
fn node_name_for_dry_run(plan: &JoinPlan) -> String {
    bootstrap::resolve_node_name(plan.node_name.as_ref(), &RealSys)
        .map(|id| id.name.as_str().to_string())
        .unwrap_or_else(|_| "<this host's name>".into())
}
