//! The control-plane join's phases after the kubelet starts (etcd-join, mark-control-plane,
//! wait-control-plane) as a unit that runs from files on disk: [`Handover`] is what they need
//! besides those files, [`run`] runs them.
//!
//! Both front doors go through [`run`]. `kubejoin join --control-plane` calls it in-process right
//! after kubelet-start. PID 1 cannot: its kubelet starts only when PID 1 execs it. So it writes
//! the handover to [`HANDOVER`] under the node's root and, just before the exec, starts
//! `kubejoin finish-control-plane --root ROOT` as a detached child (`crate::init::stages`); the
//! child reads the handover and the files the join wrote and runs the same phases while the
//! kubelet starts the static Pods.
//!
//! What [`run`] reads: the handover, `admin.conf` (the admin client credentials), the cluster CA
//! (`ca.crt`: the only CA trusted, for the API and the local `/healthz`), and for stacked etcd
//! the etcd CA and the healthcheck client's certificate and key. Not the certificate key: it only
//! decrypts `kubeadm-certs`, which download-certs did before the handover; it is never written
//! and never passed on.
//!
//! Why the etcd member add is here and not before the handover (where PID 1 could still retry
//! it): kubeadm adds the member only after kubelet-start and writes `etcd.yaml` right after it
//! (`phases/join/controlplanejoin.go` → `etcdphase.CreateStackedEtcdStaticPodManifestFile`), so
//! the new member starts as soon as it exists. Where the version adds a voting member (before
//! v1.29's learner default, `EtcdLearnerMode`), a member added before its etcd can run makes a
//! one-member cluster lose quorum until it does: the add must not precede the kubelet.
//!
//! The outcome goes to [`STATUS`] (atomically, through the one writer), `running` first, then
//! `ok` or `failed` with the error and its hint; the log goes to stderr (the console under
//! PID 1). On success the handover is removed, so a second `finish-control-plane` finds nothing
//! to do; on failure it stays, and the same command (after fixing the cause) runs the phases
//! again: each of them finds what an earlier attempt did (the member by its peer URL, the
//! labels and taints) instead of doing it twice.

use super::cluster::{ClusterConfig, Etcd, LocalNode};
use super::finish;
use super::join_error::Error;
use super::manifests;
use crate::deadline::{Deadline, PhaseClock};
use crate::fs::root::Root;
use crate::install::{self, Step};
use crate::kube::{self, Identity, Timeouts, Trust};
use crate::{info, log};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// Where PID 1 leaves the handover for the finish step (node path; `/run`, next to
/// `result.json`, and carried into the booted system's `/run` by a switch-root like it).
pub const HANDOVER: &str = "/run/kubejoin/control-plane-handover.json";
/// The finish step's outcome (node path).
pub const STATUS: &str = "/run/kubejoin/control-plane.json";
/// How the finish step finds this binary.
pub const SELF_EXE: &str = "/proc/self/exe";
/// The handover's `kind`, so a stray JSON file is not taken for one.
const KIND: &str = "ControlPlaneHandover";

/// Own bound of the etcd member add and promotion (kubeadm: `etcdAPICall` 2 m).
const ETCD_PHASE: Duration = Duration::from_secs(120);
/// Own bound of the wait for the local API server (kubeadm's `controlPlaneComponentHealthCheck`, 4 m).
const HEALTH_PHASE: Duration = Duration::from_secs(240);
/// Own bound of the wait for the kubelet to register the Node (kubeadm's `kubeletHealthCheck`, 4 m).
const MARK_PHASE: Duration = Duration::from_secs(240);
/// Own bound of a local write.
const WRITE_PHASE: Duration = Duration::from_secs(60);

/// What the phases after the kubelet need besides the files on disk. Holds no secret: the
/// ClusterConfiguration is what `kube-system/kubeadm-config` shows every bootstrap token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handover {
    pub kind: String,
    /// The API server the join talked to (discovery's), for the admin client.
    pub server: String,
    pub node_name: String,
    pub advertise_address: IpAddr,
    pub bind_port: u16,
    /// The local API server's health URL the last phase waits for.
    pub healthz_url: String,
    /// The taints mark-control-plane sets (the version's defaults, or the plan's own).
    pub taints: Vec<String>,
    /// The overall bound of the phases after the kubelet, in seconds.
    pub timeout_secs: u64,
    /// The cluster's `ClusterConfiguration` as read from `kubeadm-config` (etcd.yaml is
    /// rendered from it).
    pub cluster_configuration: String,
}

impl Handover {
    pub(super) fn new(
        server: &str,
        node: &LocalNode,
        healthz_url: String,
        taints: Vec<String>,
        timeout: Duration,
        cluster_configuration: String,
    ) -> Self {
        Self {
            kind: KIND.into(),
            server: server.to_string(),
            node_name: node.name.clone(),
            advertise_address: node.advertise_address,
            bind_port: node.bind_port,
            healthz_url,
            taints,
            timeout_secs: timeout.as_secs().max(1),
            cluster_configuration,
        }
    }

    fn node(&self) -> LocalNode {
        LocalNode {
            name: self.node_name.clone(),
            advertise_address: self.advertise_address,
            bind_port: self.bind_port,
        }
    }

    /// The handover under `root`, or `None` when there is none (nothing to finish).
    pub fn read(root: &Root) -> Result<Option<Self>, Error> {
        let bytes = match root.read(HANDOVER) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Internal(format!(
                    "reading {HANDOVER} under {root}: {e}"
                )))
            }
        };
        let h: Handover = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Internal(format!("{HANDOVER} under {root} is not a handover: {e}"))
        })?;
        if h.kind != KIND {
            return Err(Error::Internal(format!(
                "{HANDOVER} under {root} is a {:?}, not a {KIND}",
                h.kind
            )));
        }
        Ok(Some(h))
    }

    /// Writes the handover under `root` (0600, atomically).
    pub fn write(&self, root: &Root) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("encoding the handover: {e}")))?;
        install::apply(
            root,
            &[Step::File {
                path: HANDOVER.into(),
                mode: 0o600,
                contents: json,
                what: "control-plane handover (the phases after the kubelet)",
            }],
        )
        .map_err(Error::Write)
    }
}

/// Whether a control-plane join left a handover under `root` (a dry run or a finished join
/// leaves none).
pub fn pending(root: &std::path::Path) -> bool {
    Root::new(root).join(HANDOVER).is_ok_and(|p| p.exists())
}

/// Starts the finish step through the exec seam: `self_exe finish-control-plane --root ROOT`,
/// detached, with only `PATH` in its environment. Its argv holds no secret: the certificate
/// key is not needed after download-certs, and the handover is read from the root.
pub fn start_finish_step(
    exec: &dyn crate::sys::Exec,
    self_exe: &std::path::Path,
    root: &std::path::Path,
) -> Result<u32, Error> {
    let argv: Vec<std::ffi::OsString> = vec![
        "kubejoin".into(),
        "finish-control-plane".into(),
        "--root".into(),
        root.as_os_str().to_os_string(),
    ];
    let env = vec![("PATH".into(), crate::sys::exec::KUBELET_PATH_ENV.into())];
    let pid = exec
        .spawn_detached(self_exe, &argv, &env)
        .map_err(|e| Error::FinishStep {
            program: self_exe.to_path_buf(),
            source: e,
        })?;
    info!(
        "control plane: started `kubejoin finish-control-plane --root {}` (pid {pid}): etcd-join, \
         mark-control-plane and wait-control-plane run while the kubelet starts; outcome in {STATUS}",
        root.display()
    );
    Ok(pid)
}

/// The outcome written to [`STATUS`].
#[derive(Debug, Serialize)]
struct Status<'a> {
    outcome: &'a str,
    node: &'a str,
    phases: &'a [log::PhaseRecord],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

fn write_status(root: &Root, status: &Status<'_>) {
    let json = match serde_json::to_vec_pretty(status) {
        Ok(j) => j,
        Err(e) => {
            crate::warn!("encoding {STATUS}: {e}");
            return;
        }
    };
    let step = Step::File {
        path: STATUS.into(),
        mode: 0o644,
        contents: json,
        what: "control-plane finish status",
    };
    if let Err(e) = install::apply(root, &[step]) {
        crate::warn!("writing {STATUS} under {root}: {e}");
    }
}

/// `kubejoin finish-control-plane`: the handover under `root`, its phases run, the outcome in
/// [`STATUS`]. `Ok(false)` when there is no handover (nothing to finish).
pub async fn finish_from_handover(root: &Root) -> Result<bool, Error> {
    let Some(h) = Handover::read(root)? else {
        info!("control plane: no {HANDOVER} under {root}: nothing to finish");
        return Ok(false);
    };
    info!(
        "control plane: finishing the join of {} (etcd, mark-control-plane, {})",
        h.node_name, h.healthz_url
    );
    let mut phases = Vec::new();
    write_status(
        root,
        &Status {
            outcome: "running",
            node: &h.node_name,
            phases: &phases,
            error: None,
            hint: None,
        },
    );
    let deadline = Deadline::after(Duration::from_secs(h.timeout_secs));
    match run(root, &h, deadline, &mut phases).await {
        Ok(()) => {
            write_status(
                root,
                &Status {
                    outcome: "ok",
                    node: &h.node_name,
                    phases: &phases,
                    error: None,
                    hint: None,
                },
            );
            let gone = install::apply(
                root,
                &[Step::Remove {
                    path: HANDOVER.into(),
                    what: "control-plane handover (finished)",
                }],
            );
            if let Err(e) = gone {
                crate::warn!("removing {HANDOVER} under {root}: {e}");
            }
            Ok(true)
        }
        Err(e) => {
            use crate::error::Classify as _;
            write_status(
                root,
                &Status {
                    outcome: "failed",
                    node: &h.node_name,
                    phases: &phases,
                    error: Some(crate::error::Report(&e, None).to_string()),
                    hint: e.hint(),
                },
            );
            Err(e)
        }
    }
}

/// The phases after the kubelet, from `h` and the files under `root`, each bounded by its own
/// limit and by `deadline`; each one finished is appended to `phases`. Then the join's
/// completion: `result.json`'s `control_plane` becomes `ready` and the Cluster API sentinel is
/// written (`failed`, without the sentinel, when a phase failed).
pub async fn run(
    root: &Root,
    h: &Handover,
    deadline: Deadline,
    phases: &mut Vec<log::PhaseRecord>,
) -> Result<(), Error> {
    match run_phases(root, h, &deadline, phases).await {
        Ok(()) => {
            let steps = install::control_plane_completion(root, true).map_err(Error::Write)?;
            write(root, steps, &deadline).await
        }
        Err(e) => {
            // Best effort: the error itself is what the caller reports.
            match install::control_plane_completion(root, false)
                .and_then(|steps| install::apply(root, &steps))
            {
                Ok(()) => {}
                Err(w) => crate::warn!("marking the control plane failed in result.json: {w}"),
            }
            Err(e)
        }
    }
}

async fn run_phases(
    root: &Root,
    h: &Handover,
    deadline: &Deadline,
    phases: &mut Vec<log::PhaseRecord>,
) -> Result<(), Error> {
    let doc: serde_json::Value = crate::yaml::from_str(&h.cluster_configuration).map_err(|e| {
        Error::Config(super::cluster::ConfigError::Invalid {
            field: "ClusterConfiguration".into(),
            why: e.to_string(),
        })
    })?;
    let cfg = ClusterConfig::from_json(&doc).map_err(Error::Config)?;
    let node = h.node();
    let pki = |name: &str| super::join_path(&cfg.certificates_dir, name);
    let read = |path: &str| {
        root.read(path)
            .map_err(|e| Error::Internal(format!("reading {path} under {root}: {e}")))
    };

    // Only the cluster CA is trusted: the one download-certs checked against discovery's pin.
    let ca_der = crate::pki::pem::certs_from_pem(&read(&pki("ca.crt"))?)
        .map_err(|e| Error::Internal(format!("{}: {e}", pki("ca.crt"))))?;
    let trust = Trust::CaBundle(ca_der);
    let (cert_pem, key_pem) = admin_credentials(&read(ADMIN_CONF)?)?;
    let admin = kube::client(
        &h.server,
        &trust,
        &Identity::ClientCert { cert_pem, key_pem },
        Timeouts::default(),
    )
    .map_err(|e| Error::Internal(format!("the admin client for {}: {e}", h.server)))?;

    if matches!(cfg.etcd, Etcd::Local(_)) {
        let (name, clock) = begin(deadline, "etcd-join", ETCD_PHASE);
        let ca = read(&pki("etcd/ca.crt"))?;
        let cert = read(&pki("etcd/healthcheck-client.crt"))?;
        let key = read(&pki("etcd/healthcheck-client.key"))?;
        let initial = within(
            &clock,
            finish::join_etcd(&admin, &cfg, &node, &ca, &cert, &key, &clock),
        )
        .await??;
        let file = manifests::etcd(&cfg, &node, &initial).map_err(Error::Config)?;
        let step = Step::File {
            path: file.path,
            mode: file.mode,
            contents: file.contents,
            what: "static Pod manifest (etcd, joining the existing cluster)",
        };
        write(root, vec![step], deadline).await?;
        phases.push(name.ok(&clock));
    }

    let (name, clock) = begin(deadline, "mark-control-plane", MARK_PHASE);
    within(
        &clock,
        finish::mark(&admin, &node.name, cfg.minor(), &h.taints),
    )
    .await??;
    phases.push(name.ok(&clock));

    let (name, clock) = begin(deadline, "wait-control-plane", HEALTH_PHASE);
    within(&clock, finish::wait_healthy(&h.healthz_url, &trust)).await??;
    info!(
        "control plane: the local API server at {} is healthy",
        h.healthz_url
    );
    phases.push(name.ok(&clock));
    Ok(())
}

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// The client certificate and key of `admin.conf`'s current user.
fn admin_credentials(text: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let bad = |why: &str| Error::Internal(format!("{ADMIN_CONF}: {why}"));
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
    let cfg = crate::kube::kubeconfig::Kubeconfig::parse(text).map_err(|e| bad(&e.to_string()))?;
    let user = cfg
        .current_user()
        .ok_or_else(|| bad("no user for the current context"))?;
    match (
        &user.user.client_certificate_data,
        &user.user.client_key_data,
    ) {
        (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => Ok((c.clone(), k.clone())),
        _ => Err(bad(
            "the current user has no embedded client certificate and key",
        )),
    }
}

/// A phase in progress: its log line and wall-clock start.
struct Begun {
    log: log::Phase,
    wall: std::time::SystemTime,
}

impl Begun {
    fn ok(self, clock: &PhaseClock) -> log::PhaseRecord {
        let ms = |t: std::time::SystemTime| {
            t.duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        };
        let took = clock.started.elapsed().as_millis();
        let start_ms = ms(self.wall);
        log::PhaseRecord {
            phase: clock.name.to_string(),
            start_ms,
            end_ms: start_ms + took,
            duration_ms: took,
            outcome: "ok".into(),
            detail: None,
            steps: self.log.ok_steps(),
        }
    }
}

fn begin(deadline: &Deadline, name: &'static str, max: Duration) -> (Begun, PhaseClock) {
    (
        Begun {
            log: log::phase(name),
            wall: std::time::SystemTime::now(),
        },
        deadline.phase(name, max),
    )
}

/// `fut` within `clock`; running out of time names the phase.
pub(super) async fn within<T>(
    clock: &PhaseClock,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    clock.run(fut).await.map_err(|source| Error::Deadline {
        phase: clock.name,
        detail: format!(
            "gave up after {}",
            crate::time::duration::format(clock.bound())
        ),
        source: Box::new(source),
    })
}

/// `steps` written through the one atomic writer, off the async workers, within `deadline`.
pub(super) async fn write(root: &Root, steps: Vec<Step>, deadline: &Deadline) -> Result<(), Error> {
    let clock = deadline.phase("control-plane-files", WRITE_PHASE);
    let r = root.clone();
    let task = tokio::task::spawn_blocking(move || install::apply(&r, &steps));
    match within(&clock, task).await? {
        Ok(r) => r.map_err(Error::Write),
        Err(e) => Err(Error::Internal(format!(
            "the file task ended abnormally: {e}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The switch-root unit runs when this code leaves a handover, after the kubelet.
    #[test]
    fn the_booted_systems_unit_waits_for_this_handover_and_the_kubelet() {
        let unit = include_str!("../../image/systemd/kubejoin-finish-control-plane.service");
        for line in [
            format!("ConditionPathExists={HANDOVER}"),
            "ExecStart=/usr/bin/kubejoin finish-control-plane".to_string(),
            "After=network-online.target kubelet.service".to_string(),
            "Type=oneshot".to_string(),
        ] {
            assert!(unit.lines().any(|l| l == line), "{line}");
        }
    }

    #[test]
    fn a_handover_round_trips_and_a_stray_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert!(Handover::read(&root).unwrap().is_none());
        assert!(!pending(dir.path()));
        let node = LocalNode {
            name: "cp-2".into(),
            advertise_address: "10.0.0.2".parse().unwrap(),
            bind_port: 6443,
        };
        let h = Handover::new(
            "https://10.0.0.1:6443",
            &node,
            "https://10.0.0.2:6443/healthz".into(),
            vec!["node-role.kubernetes.io/control-plane:NoSchedule".into()],
            Duration::from_secs(300),
            "kind: ClusterConfiguration\n".into(),
        );
        h.write(&root).unwrap();
        assert!(pending(dir.path()));
        assert_eq!(Handover::read(&root).unwrap(), Some(h));
        std::fs::write(
            dir.path().join(HANDOVER.trim_start_matches('/')),
            r#"{"kind":"Other"}"#,
        )
        .unwrap();
        let e = Handover::read(&root).unwrap_err().to_string();
        assert!(e.contains("is not a handover"), "{e}");
    }
}
