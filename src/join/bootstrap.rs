//! The join phase: everything after discovery up to (not including) the handoff.

use super::run::{ca_pin, on_disk, Joined, Outcome, Run, Tuning};
use super::Error;
use crate::bootstrap::{self, backoff, config, csr, existing, verify, wait, Cluster};
use crate::deadline::Cause;
use crate::discovery::Discovered;
use crate::fs::root::Root;
use crate::install::{self, flags};
use crate::plan::JoinPlan;
use crate::sys::Exec;
use crate::versions::ClusterRules;
use crate::{info, warn};
use std::time::{Duration, SystemTime};

/// Everything after discovery up to (not including) the handoff, under a fresh overall deadline
/// of `--timeout`: see [`bootstrap_and_install_within`].
pub async fn bootstrap_and_install(
    plan: &JoinPlan,
    d: &Discovered,
    sys: &dyn Exec,
    tuning: &Tuning,
) -> Result<Joined, Error> {
    let mut run = Run::new(plan.timeout);
    bootstrap_and_install_within(plan, d, sys, tuning, &mut run).await
}

/// Everything after discovery up to (not including) the handoff: identity check, cluster
/// configuration, key and CSR, wait, verification, install, completion files. Each stage is a
/// named phase of `run`, bounded by its own limit and by `run`'s overall deadline. With
/// `plan.dry_run` only reads happen and the planned writes are printed.
pub async fn bootstrap_and_install_within(
    plan: &JoinPlan,
    d: &Discovered,
    sys: &dyn Exec,
    tuning: &Tuning,
    run: &mut Run,
) -> Result<Joined, Error> {
    bootstrap_and_install_resuming(plan, d, sys, tuning, run, config::Resume::default()).await
}

/// [`bootstrap_and_install_within`] starting from what an earlier phase of the same join read
/// (`resume`: the control-plane join's `kubeadm-config`, so it is read once per join).
pub async fn bootstrap_and_install_resuming(
    plan: &JoinPlan,
    d: &Discovered,
    sys: &dyn Exec,
    tuning: &Tuning,
    run: &mut Run,
    resume: config::Resume,
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

    if identity_check(plan, d, tuning, run, &root, &node, &mut joined).await? {
        return Ok(joined);
    }

    // Overload (429), failover (5xx, resets) and slow answers are retried within the phase; a
    // Ready Node of our name ends it at once, a 401/403 once it persists (an API server that
    // has just restarted refuses valid tokens for a moment: retry::Persistence).
    let stage = run.begin("cluster-config", tuning.api_phase);
    // What the join's calls learn of the server's load, carried from one to the next.
    let pacing = crate::http::retry::Pacing::new();
    let cluster = Cluster::connect(d)?;
    let cfg = backoff::within_paced(
        &stage.clock,
        &tuning.backoff,
        &pacing,
        "reading the cluster configuration",
        &cluster.server,
        || config::fetch_resuming(&cluster, &resume),
    )
    .await?;
    backoff::within_paced(
        &stage.clock,
        &tuning.backoff,
        &pacing,
        &format!("getting Node {node:?}"),
        &cluster.server,
        || config::check_node(&cluster, &node),
    )
    .await?;
    run.end(stage, false);

    let setup = kubelet_setup(plan, sys, &id, &node, &cfg)?;
    if plan.dry_run {
        report_dry_run(run, &root, d, &node, &setup, &mut joined)?;
        return Ok(joined);
    }
    let KubeletSetup {
        kubelet_config,
        instance_config,
        flags_env,
        usages,
    } = setup;

    // The key is durable before the CSR is sent, and the CSR's name derives from it, so a POST
    // that is retried (its answer lost) or a run that is restarted finds its own CSR (409) and
    // adopts it instead of leaving an orphan.
    let stage = run.begin("csr", tuning.api_phase);
    let key_root = root.clone();
    let (key, _) = on_disk(&stage.clock, move || {
        csr::load_or_generate_key(&key_root, true).map_err(Error::from)
    })
    .await?;
    // A busy server (its last answer slow beyond the network's round trip) gets the fleet's
    // writes spread out rather than in one burst (retry::write_spread).
    backoff::spread_write(
        &stage.clock,
        &tuning.backoff,
        &pacing,
        cluster.client.network_round_trip(),
        "the certificate signing request",
    )
    .await;
    // Shared across attempts: an attempt that met an unusable CSR of our name replaced it.
    let key_slot = tokio::sync::Mutex::new(key);
    let submitted = backoff::within_paced(
        &stage.clock,
        &tuning.backoff,
        &pacing,
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
        shed_level: pacing.level(),
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
        // The best time known (the clock, the build-time floor, a verified `Date`): the time
        // every TLS check of this join used (docs/time.md).
        issued_check_time(),
    )
    .map_err(|source| bootstrap::Error::Certificate {
        name: submitted.name.clone(),
        source,
    })?;
    joined.not_after = Some(verified.not_after);
    info!(
        "certificate for {} issued, valid until {}",
        csr::common_name(&node),
        crate::time::calendar::rfc3339(verified.not_after)
    );
    run.end(stage, false);

    let stage = run.begin("install", tuning.install_phase);
    let key_pem = key.to_pem();
    let steps = install::plan(&install::Inputs {
        server: &d.server,
        ca_pem: &d.ca_pem,
        cert_chain_pem: &verified.chain_pem,
        key_pem: &key_pem,
        kubelet_config: &kubelet_config,
        flags_env: &flags_env,
        instance_config: instance_config.as_deref(),
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

    complete(run, &root, d, &mut joined, tuning, plan).await?;
    Ok(joined)
}

/// The identity-check phase. Before any request: a node that is already joined must not spend
/// the token again (it may have expired since), and one that belongs elsewhere must not be
/// overwritten silently. `true` when the join ends here (already joined).
async fn identity_check(
    plan: &JoinPlan,
    d: &Discovered,
    tuning: &Tuning,
    run: &mut Run,
    root: &Root,
    node: &str,
    joined: &mut Joined,
) -> Result<bool, Error> {
    let stage = run.begin("identity-check", Duration::MAX);
    match existing::check(root, &d.ca_der, node, SystemTime::now()) {
        existing::Existing::None => run.end(stage, false),
        existing::Existing::Joined { not_after } if !plan.force => {
            info!(
                "already joined: {} holds a valid certificate for system:node:{node} from this cluster (until {}); nothing to do",
                install::KUBELET_CONF,
                crate::time::calendar::rfc3339(not_after)
            );
            run.end(stage, true);
            if plan.dry_run {
                println!("dry run: this node is already joined; nothing would be written");
                return Ok(true);
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
                        path: install::KEY_TMP.into(),
                        what: "a pending key left by an interrupted run",
                    }],
                )
                .map_err(Error::from)
            })
            .await?;
            run.end(stage, false);
            // The completion files live in /run (volatile): describe this boot's outcome.
            complete(run, root, d, joined, tuning, plan).await?;
            return Ok(true);
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
        existing::Existing::Conflict(c) => return Err(bootstrap::Error::Existing(c).into()),
    }
    Ok(false)
}

/// What this node's kubelet gets: the cluster's KubeletConfiguration (with this node's CRI
/// socket patched in where the cluster's version wants that), the instance configuration, the
/// kubelet's flags, and the CSR usages of the cluster's version.
struct KubeletSetup {
    kubelet_config: String,
    instance_config: Option<String>,
    flags_env: String,
    usages: &'static [&'static str],
}

/// [`KubeletSetup`] from the cluster's configuration and its version's rules (it says which
/// rules it applied).
fn kubelet_setup(
    plan: &JoinPlan,
    sys: &dyn Exec,
    id: &bootstrap::NodeIdentity,
    node: &str,
    cfg: &config::ClusterConfig,
) -> Result<KubeletSetup, Error> {
    // What this cluster's version needs: CSR usages, runtime flags, pause image.
    let rules = ClusterRules::for_cluster(cfg.kubernetes_version.as_ref());
    if let Some(w) = &rules.warning {
        warn!("{w}");
    }
    // kubeadm's NodeLocalCRISocket: the CRI socket in the kubelet's instance configuration,
    // patched into config.yaml over whatever the cluster's KubeletConfiguration says.
    let node_local_cri = rules.node_local_cri_socket(cfg.node_local_cri_socket);
    let (kubelet_config, instance_config) = if node_local_cri {
        if let Some(ep) = cfg
            .container_runtime_endpoint
            .as_ref()
            .filter(|ep| **ep != plan.cri_socket)
        {
            warn!(
                "the cluster's KubeletConfiguration sets containerRuntimeEndpoint {ep:?}; this node's \
                 {:?} replaces it in config.yaml, as kubeadm's kubelet instance configuration does",
                plan.cri_socket
            );
        }
        let patched =
            install::instance::patch_kubelet_config(&cfg.kubelet_config, &plan.cri_socket)
                .map_err(|e| {
                    install::Error::Serialise {
            what: "the cluster's KubeletConfiguration with this node's containerRuntimeEndpoint",
            why: e.to_string(),
        }
                })?;
        (patched, Some(install::instance::render(&plan.cri_socket)))
    } else {
        (cfg.kubelet_config.clone(), None)
    };
    let runtime_endpoint = match &cfg.container_runtime_endpoint {
        _ if node_local_cri => None,
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
    let hostname_override = (id.hostname.as_deref() != Some(node)).then_some(node);
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
         joining as kubeadm v1.{} does, CSR usages [{}], {}{}",
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
        },
        if node_local_cri {
            ", the CRI socket in the kubelet instance configuration"
        } else {
            ""
        }
    );
    Ok(KubeletSetup {
        kubelet_config,
        instance_config,
        flags_env,
        usages,
    })
}

/// A dry run's end: what the CSR and the install would do, printed and kept in `joined`.
fn report_dry_run(
    run: &Run,
    root: &Root,
    d: &Discovered,
    node: &str,
    setup: &KubeletSetup,
    joined: &mut Joined,
) -> Result<(), Error> {
    let KubeletSetup {
        kubelet_config,
        instance_config,
        flags_env,
        usages,
    } = setup;
    let (key, reused) = csr::load_or_generate_key(root, false)?;
    if reused {
        println!(
            "would: resume certificate signing request {} for {} (key from an earlier attempt)",
            csr::csr_name(&key, node, usages),
            csr::common_name(node)
        );
    } else {
        println!(
            "would: submit a certificate signing request node-csr-<digest of a new P-256 key> for {}",
            csr::common_name(node)
        );
    }
    println!("would: write under {}:", root);
    let i = install::Inputs {
        server: &d.server,
        ca_pem: &d.ca_pem,
        cert_chain_pem: "",
        key_pem: "",
        kubelet_config,
        flags_env,
        instance_config: instance_config.as_deref(),
        now: SystemTime::now(),
    };
    let mut steps = vec![install::Step::File {
        path: install::KEY_TMP.into(),
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
    Ok(())
}

/// The version of the kubelet at `path` (`kubelet --version`), as kubeadm's
/// `preflight.GetKubeletVersion` reads it; `None` when there is no kubelet there or its answer
/// is not a version (the kubelet is then taken to be of the cluster's version).
fn local_kubelet_version(
    path: &std::path::Path,
    sys: &dyn Exec,
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

/// Writes the completion contract (`result.json`, Cluster API sentinel) as its own phase. For a
/// control-plane join `result.json` says the control plane is still finishing and the sentinel
/// waits for its phases after the kubelet (`install::control_plane_completion`).
async fn complete(
    run: &mut Run,
    root: &Root,
    d: &Discovered,
    joined: &mut Joined,
    tuning: &Tuning,
    plan: &JoinPlan,
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
        certificate_not_after: joined.not_after.map(crate::time::calendar::rfc3339),
        server: d.server.clone(),
        ca_pin: ca_pin(d),
        phases: run.phases().to_vec(),
        clock: run.clock.clone(),
        // An already-joined control plane runs its phases after the kubelet again too (each
        // finds what an earlier attempt did).
        control_plane: plan
            .control_plane
            .as_ref()
            .map(|_| install::CONTROL_PLANE_FINISHING.into()),
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

/// The time the issued certificate is checked at: the best time known, as for every TLS
/// connection of the join (`clock::floor::best_known` over the node's clock, the build-time
/// floor and a verified `Date`), never earlier than the node's clock.
fn issued_check_time() -> SystemTime {
    let best = crate::clock::floor::best_now(
        crate::clock::floor::floor(),
        crate::sys::clock::node_clock().now(),
    );
    best.time.to_system().unwrap_or_else(SystemTime::now)
}
