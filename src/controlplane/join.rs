//! The control-plane join's phases (`kubeadm join --control-plane --certificate-key`), run around
//! the worker's kubelet start: [`join`] is the one entry.
//!
//! Order, as kubeadm v1.24+ runs its join phases (`cmd/kubeadm/app/cmd/join.go`,
//! `phases/join/controlplaneprepare.go`, `kubelet.go`, `controlplanejoin.go`; read):
//!
//! 1. `control-plane-prepare`: read `ClusterConfiguration` from `kube-system/kubeadm-config`
//!    (the bootstrap token may), refuse a cluster without `controlPlaneEndpoint` (kubeadm:
//!    "unable to add a new control plane instance to a cluster that doesn't have a stable
//!    controlPlaneEndpoint address"), download and decrypt `kube-system/kubeadm-certs`, make this
//!    node's certificates, kubeconfigs and static Pod manifests in memory;
//! 2. `control-plane-preflight`: none of those files may exist yet (kubeadm's `FileAvailable--…`
//!    checks; for stacked etcd also `DirAvailable--var-lib-etcd`), and on this machine (`--root /`)
//!    the control-plane ports must be free (`Port-6443`, `Port-10259`, `Port-10257`, `Port-2379`,
//!    `Port-2380`); `--force` or `--ignore-preflight-errors` lets a re-run overwrite them;
//! 3. `control-plane-files`: everything written through the one atomic writer, shared PKI
//!    first, manifests last, private keys 0600;
//! 4. `kubelet-start`: the worker's path (TLS bootstrap, kubelet files), without
//!    `--register-with-taints` (kubeadm passes it only for a worker; step 6 taints the node);
//! 5. `etcd-join` (stacked etcd): endpoints from the etcd Pods' annotation (listed with the new
//!    admin credentials), `member add` (as a learner where the version does, then `promote`
//!    once it is in sync), `etcd.yaml` with `--initial-cluster-state=existing`; a re-run finds
//!    its own member by peer URL instead of adding a second one;
//! 6. `mark-control-plane`: once the kubelet has registered the Node, its labels and taints by
//!    strategic-merge PATCH with the admin credentials (NodeRestriction forbids the node itself);
//! 7. `wait-control-plane`: the local API server's `/healthz`, bounded.
//!
//! A dry run does 1 for real (the download proves the key), prints every file with its mode
//! (and, for certificates, subject, issuer and SANs) and every request it would make, runs the
//! worker's dry run, and writes nothing.

use super::after::{self, within, write};
use super::cluster::Etcd;
use super::finish;
pub use super::join_error::Error;
use super::prepare;
use crate::bootstrap::config::Resume;
use crate::deadline::Deadline;
use crate::discovery::Discovered;
use crate::fs::root::Root;
use crate::install::Step;
use crate::plan::control_plane::ControlPlanePlan;
use crate::plan::JoinPlan;
use crate::{info, log, warn};
use std::time::Duration;

/// Own bound of each API phase (kubeadm's `kubernetesAPICall` is 1 m).
pub(super) const API_PHASE: Duration = Duration::from_secs(60);

/// Who runs the phases after the kubelet start (etcd-join, mark-control-plane,
/// wait-control-plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterKubelet {
    /// This process, right after kubelet-start (`kubejoin join --control-plane`: the kubelet
    /// is a service that starts once its files exist, or is already running).
    Run,
    /// PID 1's finish step: the handover is written ([`after::HANDOVER`]) and the caller starts
    /// `kubejoin finish-control-plane` before it execs the kubelet ([`after`]).
    HandOver,
}

/// Runs a control-plane join: its phases before the kubelet, then `kubelet_start` (the worker's
/// path, given the plan and the `kubeadm-config` already read, so the join reads it once), then
/// its phases after. Every phase is
/// bounded by its own limit and by `deadline`. With `plan.dry_run` only reads happen.
///
/// `files_written` is true when an earlier attempt in this process (PID 1 retrying its join
/// phase) wrote the control-plane files already: preflight then lets them be made again, as
/// `--force` would, instead of refusing the files this same boot wrote. It is set once they are
/// written.
pub async fn join<T, E, F>(
    plan: &JoinPlan,
    cp: &ControlPlanePlan,
    d: &Discovered,
    deadline: Deadline,
    then: AfterKubelet,
    files_written: &mut bool,
    kubelet_start: F,
) -> Result<T, E>
where
    F: AsyncFnOnce(&JoinPlan, Resume) -> Result<T, E>,
    E: From<Error>,
{
    let root = Root::new(&plan.root);
    let node_name =
        crate::bootstrap::resolve_node_name(plan.node_name.as_ref(), &crate::sys::RealExec)
            .map_err(|e| Error::Internal(format!("resolving the node name: {e}")))?
            .name
            .as_str()
            .to_string();
    let bootstrap = crate::bootstrap::Cluster::connect(d)
        .map_err(|e| Error::Internal(format!("connecting to {}: {e}", d.server)))?;

    let phase = log::phase("control-plane-prepare");
    let clock = deadline.phase("control-plane-prepare", API_PHASE);
    let prepared = within(
        &clock,
        prepare::prepare(&bootstrap.client, cp, &node_name, &root, d),
    )
    .await??;
    phase.ok();
    info!(
        "control plane: cluster {} ({}), {} etcd; this node {} advertises {}",
        prepared.cfg.kubernetes_version_text,
        prepared.cfg.api_version,
        if matches!(prepared.cfg.etcd, Etcd::Local(_)) {
            "stacked"
        } else {
            "external"
        },
        prepared.node.name,
        prepared.node.endpoint()
    );

    let phase = log::phase("control-plane-preflight");
    let forced;
    let pre_plan = if *files_written {
        info!("control-plane-preflight: the files are this boot's earlier attempt's: making them again");
        forced = JoinPlan {
            force: true,
            ..plan.clone()
        };
        &forced
    } else {
        plan
    };
    let pre = prepare::preflight(pre_plan, cp, &prepared, &root);
    if plan.dry_run {
        if let Err(e) = &pre {
            warn!("{e}: a real join would stop here");
        }
        phase.skipped();
    } else {
        pre?;
        phase.ok();
    }

    // A control-plane node gets the version's control-plane taints unless the
    // JoinConfiguration sets taints itself (`SetNodeRegistrationDynamicDefaults`). They are
    // applied by mark-control-plane, not by the kubelet's registration: kubeadm's kubelet-start
    // passes `--register-with-taints` only for a worker (`registerTaintsUsingFlags :=
    // cfg.ControlPlane == nil`, phases/join/kubelet.go), and the real v1.24 capture's
    // kubeadm-flags.env has no such flag.
    let taints = if plan.taints.is_empty() {
        finish::default_taints(prepared.cfg.minor())
    } else {
        plan.taints.clone()
    };
    let mut worker = plan.clone();
    worker.taints = Vec::new();

    if plan.dry_run {
        prepare::print_dry_run(&prepared, cp);
        return kubelet_start(&worker, prepared.resume()).await;
    }

    let phase = log::phase("control-plane-files");
    let steps: Vec<Step> = prepared
        .files
        .iter()
        .map(|(f, what)| Step::File {
            path: f.path.clone(),
            mode: f.mode,
            contents: f.contents.clone(),
            what,
        })
        .collect();
    write(&root, steps, &deadline).await?;
    *files_written = true;
    phase.ok();

    let out = kubelet_start(&worker, prepared.resume()).await?;

    // The phases after the kubelet run from the files just written and this handover (no
    // certificate key: download-certs is done), in this process or in PID 1's finish step.
    let cluster_configuration = prepared
        .kubeadm_config
        .data
        .as_ref()
        .and_then(|d| d.get("ClusterConfiguration"))
        .cloned()
        .unwrap_or_default();
    let handover = after::Handover::new(
        &d.server,
        &prepared.node,
        finish::healthz_url(cp),
        taints,
        plan.timeout,
        cluster_configuration,
    );
    match then {
        AfterKubelet::Run => {
            let mut phases = Vec::new();
            after::run(&root, &handover, deadline, &mut phases).await?;
        }
        AfterKubelet::HandOver => {
            handover.write(&root)?;
            info!(
                "control plane: etcd-join, mark-control-plane and wait-control-plane run once the \
                 kubelet does (handover {} under {root})",
                after::HANDOVER
            );
        }
    }
    Ok(out)
}
