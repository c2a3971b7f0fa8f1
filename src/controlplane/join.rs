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
//! 4. `kubelet-start`: the worker's path (TLS bootstrap, kubelet files), with the control-plane
//!    taints of the version passed to `--register-with-taints` as kubeadm does;
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

use super::cluster::{ClusterConfig, Etcd, LocalNode};
use super::download::{self, DownloadError};
use super::etcd::{self, EtcdError};
use super::pki::{self, Ca, PkiError};
use super::{kubeconfigs, manifests, NodeFile};
use crate::deadline::{Deadline, Expired, PhaseClock};
use crate::discovery::Discovered;
use crate::error::{Class, Classify};
use crate::fs::root::Root;
use crate::install::{self, Step};
use crate::kube::{self, Identity, RequestError, Timeouts};
use crate::plan::control_plane::ControlPlanePlan;
use crate::plan::JoinPlan;
use crate::{info, log, warn};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

const KUBEADM_CONFIG: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";
const ETCD_PODS: &str =
    "/api/v1/namespaces/kube-system/pods?labelSelector=component%3Detcd%2Ctier%3Dcontrol-plane";
/// Own bound of each API phase (kubeadm's `kubernetesAPICall` is 1 m).
const API_PHASE: Duration = Duration::from_secs(60);
/// Own bound of the etcd member add and promotion (kubeadm: `etcdAPICall` 2 m).
const ETCD_PHASE: Duration = Duration::from_secs(120);
/// Own bound of the wait for the local API server (kubeadm's `controlPlaneComponentHealthCheck`, 4 m).
const HEALTH_PHASE: Duration = Duration::from_secs(240);
/// Own bound of the wait for the kubelet to register the Node (kubeadm's `kubeletHealthCheck`, 4 m).
const MARK_PHASE: Duration = Duration::from_secs(240);

/// Why a control-plane join failed. Never carries the certificate key or a private key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} from {server}")]
    Api {
        what: String,
        server: String,
        #[source]
        source: RequestError,
    },
    #[error("downloading the shared certificates (kube-system/kubeadm-certs)")]
    Download(#[source] DownloadError),
    #[error("reading the cluster's ClusterConfiguration")]
    Config(#[source] super::cluster::ConfigError),
    #[error(
        "unable to add a new control plane instance to a cluster that doesn't have a stable \
         controlPlaneEndpoint address"
    )]
    NoControlPlaneEndpoint,
    #[error("making this control plane's certificates")]
    Pki(#[source] PkiError),
    #[error(
        "control-plane preflight: {} already exist(s) ({}): this node holds (part of) a control plane already",
        .existing.len(),
        .existing.join(", ")
    )]
    Preflight { existing: Vec<String> },
    #[error("control-plane preflight: port(s) in use: {}", .0.join(", "))]
    Ports(Vec<String>),
    #[error("writing the control-plane files")]
    Write(#[source] install::Error),
    #[error(
        "no etcd endpoint found: no etcd Pod in kube-system carries the annotation {}",
        etcd::ADVERTISE_ANNOTATION
    )]
    NoEtcdEndpoints,
    #[error("joining the etcd cluster")]
    Etcd(#[source] EtcdError),
    #[error("{phase}: {detail}")]
    Deadline {
        phase: &'static str,
        detail: String,
        #[source]
        source: Expired,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Api { source, .. } => match source.status_code() {
                Some(401 | 403) => Class::Rejected,
                _ => Class::Other,
            },
            Error::Download(DownloadError::WrongKey { .. }) => Class::Usage,
            Error::Download(DownloadError::NotFound | DownloadError::Forbidden) => Class::Rejected,
            Error::Download(_) => Class::Other,
            Error::Preflight { .. } | Error::Ports(_) => Class::Usage,
            Error::NoControlPlaneEndpoint => Class::Rejected,
            Error::Etcd(EtcdError::Refused { .. }) => Class::Rejected,
            Error::Deadline { .. } => Class::Timeout,
            _ => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Download(e) => e.hint().map(str::to_string),
            Error::Preflight { .. } | Error::Ports(_) => Some(
                "a join interrupted before it finished left these: re-run with --force to make them again \
                 (or --ignore-preflight-errors=all); otherwise reset the node first (`kubeadm reset`)"
                    .into(),
            ),
            Error::NoControlPlaneEndpoint => Some(
                "set controlPlaneEndpoint (a load balancer or DNS name for every API server) in the cluster's \
                 ClusterConfiguration, as kubeadm requires before adding control planes"
                    .into(),
            ),
            Error::Config(_) => Some("join this node with kubeadm, or fix kube-system/kubeadm-config".into()),
            Error::Write(e) => e.hint(),
            Error::Etcd(_) | Error::NoEtcdEndpoints => Some(
                "check the etcd cluster's health on an existing control plane (`etcdctl endpoint health`, \
                 `etcdctl member list`); a member left by an earlier attempt may need `etcdctl member remove`"
                    .into(),
            ),
            Error::Deadline { source, .. } => source.hint(),
            _ => None,
        }
    }
}

/// What one control-plane join computed before writing: the files and what the later phases need.
struct Prepared {
    cfg: ClusterConfig,
    node: LocalNode,
    /// Everything to write before the kubelet starts, in order.
    files: Vec<(NodeFile, &'static str)>,
    /// The admin client certificate and key (for listing etcd Pods and marking the node).
    admin: (Vec<u8>, Vec<u8>),
    /// The etcd CA and a healthcheck client of it (stacked etcd).
    etcd_client: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    /// For a dry run: one line per certificate (subject, issuer, SANs).
    cert_lines: Vec<String>,
}

/// Runs a control-plane join: its phases before the kubelet, then `kubelet_start` (the worker's
/// path, given the plan with the control-plane taints), then its phases after. Every phase is
/// bounded by its own limit and by `deadline`. With `plan.dry_run` only reads happen.
pub async fn join<T, E, F>(
    plan: &JoinPlan,
    cp: &ControlPlanePlan,
    d: &Discovered,
    deadline: Deadline,
    kubelet_start: F,
) -> Result<T, E>
where
    F: AsyncFnOnce(&JoinPlan) -> Result<T, E>,
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
    let prepared = within(&clock, prepare(&bootstrap.client, cp, &node_name, &root, d)).await??;
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
    let pre = preflight(plan, cp, &prepared, &root);
    if plan.dry_run {
        if let Err(e) = &pre {
            warn!("{e}: a real join would stop here");
        }
        phase.skipped();
    } else {
        pre?;
        phase.ok();
    }

    // kubeadm registers a control-plane node with its control-plane taints unless the
    // JoinConfiguration sets taints itself (`SetNodeRegistrationDynamicDefaults`).
    let taints = if plan.taints.is_empty() {
        default_taints(prepared.cfg.minor())
    } else {
        plan.taints.clone()
    };
    let mut worker = plan.clone();
    worker.taints = taints.clone();

    if plan.dry_run {
        print_dry_run(&prepared, cp);
        return kubelet_start(&worker).await;
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
    write(&root, steps, deadline).await?;
    phase.ok();

    let out = kubelet_start(&worker).await?;

    let admin = kube::client(
        &d.server,
        &d.trust(),
        &Identity::ClientCert {
            cert_pem: prepared.admin.0.clone(),
            key_pem: prepared.admin.1.clone(),
        },
        Timeouts::default(),
    )
    .map_err(|e| Error::Internal(format!("the admin client for {}: {e}", d.server)))?;

    if let Some((ca, cert, key)) = &prepared.etcd_client {
        let phase = log::phase("etcd-join");
        let clock = deadline.phase("etcd-join", ETCD_PHASE);
        let initial = within(&clock, join_etcd(&admin, &prepared, ca, cert, key, &clock)).await??;
        let file =
            manifests::etcd(&prepared.cfg, &prepared.node, &initial).map_err(Error::Config)?;
        write(
            &root,
            vec![Step::File {
                path: file.path,
                mode: file.mode,
                contents: file.contents,
                what: "static Pod manifest (etcd, joining the existing cluster)",
            }],
            deadline,
        )
        .await?;
        phase.ok();
    }

    let phase = log::phase("mark-control-plane");
    let clock = deadline.phase("mark-control-plane", MARK_PHASE);
    within(
        &clock,
        mark(&admin, &prepared.node.name, prepared.cfg.minor(), &taints),
    )
    .await??;
    phase.ok();

    let phase = log::phase("wait-control-plane");
    let clock = deadline.phase("wait-control-plane", HEALTH_PHASE);
    let url = healthz_url(cp);
    within(&clock, wait_healthy(&url, d)).await??;
    info!("control plane: the local API server at {url} is healthy");
    phase.ok();
    Ok(out)
}

/// `fut` within `clock`; running out of time names the phase.
async fn within<T>(
    clock: &PhaseClock,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    clock.run(fut).await.map_err(|source| Error::Deadline {
        phase: clock.name,
        detail: format!(
            "gave up after {}",
            crate::time::duration::format(clock.bound())
        ),
        source,
    })
}

async fn write(root: &Root, steps: Vec<Step>, deadline: Deadline) -> Result<(), Error> {
    let clock = deadline.phase("control-plane-files", API_PHASE);
    let r = root.clone();
    let task = tokio::task::spawn_blocking(move || install::apply(&r, &steps));
    match within(&clock, task).await? {
        Ok(r) => r.map_err(Error::Write),
        Err(e) => Err(Error::Internal(format!(
            "the file task ended abnormally: {e}"
        ))),
    }
}

fn api(what: impl Into<String>, server: &str) -> impl FnOnce(RequestError) -> Error + '_ {
    let what = what.into();
    move |source| Error::Api {
        what,
        server: server.to_string(),
        source,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// control-plane-prepare: configuration, download, and every file made in memory.
async fn prepare(
    client: &kube::Client,
    cp: &ControlPlanePlan,
    node_name: &str,
    root: &Root,
    d: &Discovered,
) -> Result<Prepared, Error> {
    let server = client.server().to_string();
    let cm: Value = client
        .get(KUBEADM_CONFIG, "ConfigMap")
        .await
        .map_err(api("getting ConfigMap kube-system/kubeadm-config", &server))?;
    let text = cm
        .pointer("/data/ClusterConfiguration")
        .and_then(Value::as_str)
        .ok_or(Error::Config(super::cluster::ConfigError::Missing(
            "ClusterConfiguration",
        )))?;
    let doc: Value = crate::yaml::from_str(text).map_err(|e| {
        Error::Config(super::cluster::ConfigError::Invalid {
            field: "ClusterConfiguration".into(),
            why: e.to_string(),
        })
    })?;
    let cfg = ClusterConfig::from_json(&doc).map_err(Error::Config)?;
    if cfg.control_plane_endpoint.trim().is_empty() {
        return Err(Error::NoControlPlaneEndpoint);
    }
    let node = LocalNode {
        name: node_name.to_string(),
        advertise_address: cp.advertise_address,
        bind_port: cp.bind_port,
    };

    // download-certs: the whole Secret decrypts or nothing is used.
    let answer = client
        .send(
            http::Method::GET,
            download::SECRET_PATH,
            "application/json",
            None,
            kube::MAX_BODY,
        )
        .await
        .map_err(api("getting Secret kube-system/kubeadm-certs", &server))?;
    if let Some(e) = download::classify_status(answer.code) {
        return Err(Error::Download(e));
    }
    if !answer.is_success() {
        return Err(api("getting Secret kube-system/kubeadm-certs", &server)(
            answer.into_status_error(),
        ));
    }
    let secret: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| Error::Download(DownloadError::Malformed(e.to_string())))?;
    let data = download::secret_data(&secret).map_err(Error::Download)?;
    let downloaded = download::files(&data, &cp.certificate_key, &cfg.certificates_dir, &cfg.etcd)
        .map_err(Error::Download)?;
    info!(
        "download-certs: decrypted {} file(s) from Secret kube-system/kubeadm-certs{}",
        downloaded.files.len(),
        if downloaded.skipped_empty.is_empty() {
            String::new()
        } else {
            format!(
                " (empty, not written: {})",
                downloaded.skipped_empty.join(", ")
            )
        }
    );
    // The downloaded cluster CA must be the one discovery pinned: a Secret that carries another
    // CA would make this node a control plane of some other cluster.
    let ca_path = super::join_path(&cfg.certificates_dir, "ca.crt");
    let find = |path: &str| {
        downloaded
            .files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.contents.clone())
    };
    let missing = |path: &str| {
        Error::Download(DownloadError::MissingEntry {
            entry: path.rsplit('/').next().unwrap_or(path).to_string(),
            path: path.to_string(),
        })
    };
    let ca_crt = find(&ca_path).ok_or_else(|| missing(&ca_path))?;
    let ca_der = crate::pki::pem::certs_from_pem(&ca_crt)
        .map_err(|e| Error::Download(DownloadError::Malformed(format!("ca.crt: {e}"))))?;
    if !ca_der.iter().any(|c| d.ca_der.contains(c)) {
        return Err(Error::Download(DownloadError::Malformed(
            "ca.crt is not the cluster CA that discovery trusts".into(),
        )));
    }
    let load = |name: &str, base: &str| -> Result<Ca, Error> {
        let crt = super::join_path(&cfg.certificates_dir, &format!("{base}.crt"));
        let key = super::join_path(&cfg.certificates_dir, &format!("{base}.key"));
        Ca::from_pem(
            name,
            &find(&crt).ok_or_else(|| missing(&crt))?,
            &find(&key).ok_or_else(|| missing(&key))?,
        )
        .map_err(Error::Pki)
    };
    let ca = load("ca", "ca")?;
    let front_proxy_ca = load("front-proxy-ca", "front-proxy-ca")?;
    let etcd_ca = match &cfg.etcd {
        Etcd::Local(_) => Some(load("etcd-ca", "etcd/ca")?),
        Etcd::External(_) => None,
    };

    // RSA key generation takes a while: off the async workers.
    let now = unix_now();
    let gen_cfg = cfg.clone();
    let gen_node = node.clone();
    let made = tokio::task::spawn_blocking(move || -> Result<_, PkiError> {
        let cas = pki::Cas {
            ca: &ca,
            front_proxy_ca: &front_proxy_ca,
            etcd_ca: etcd_ca.as_ref(),
        };
        let leaves = pki::leaf_files(&gen_cfg, &gen_node, &cas, now)?;
        let mut confs = Vec::new();
        let mut admin = None;
        for s in kubeconfigs::specs(&gen_cfg, &gen_node) {
            let issued = pki::client_cert(
                &ca,
                s.user,
                &s.organization,
                gen_cfg.key_algorithm,
                now,
                gen_cfg.certificate_validity_secs,
            )?;
            let text = kubeconfigs::render(
                &gen_cfg,
                &s,
                &ca.cert_pem,
                &issued.cert_pem,
                &issued.key.private_pem,
            );
            if s.file == "admin.conf" {
                admin = Some((issued.cert_pem.clone(), issued.key.private_pem.clone()));
            }
            confs.push(NodeFile::secret(
                super::join_path("/etc/kubernetes", s.file),
                text.into_bytes(),
            ));
        }
        let etcd_ca_pem = etcd_ca.as_ref().map(|c| c.cert_pem.clone());
        let ca_subject = subject_of(&ca.cert_pem);
        Ok((leaves, confs, admin, etcd_ca_pem, ca_subject))
    })
    .await
    .map_err(|e| Error::Internal(format!("the key generation task ended abnormally: {e}")))?
    .map_err(Error::Pki)?;
    let (leaves, confs, admin, etcd_ca_pem, _) = made;
    let admin =
        admin.ok_or_else(|| Error::Internal("no admin.conf among the kubeconfigs".into()))?;

    let host_ca_dirs: Vec<String> = manifests::host_ca_dir_candidates(&cfg)
        .iter()
        .filter(|p| root.join(p).is_ok_and(|r| r.is_dir()))
        .map(|p| p.to_string())
        .collect();
    let pods = manifests::control_plane(&cfg, &node, &host_ca_dirs).map_err(Error::Config)?;

    let etcd_client = match etcd_ca_pem {
        Some(ca_pem) => {
            let path = |ext: &str| {
                super::join_path(
                    &cfg.certificates_dir,
                    &format!("etcd/healthcheck-client.{ext}"),
                )
            };
            let get = |p: String| {
                leaves
                    .iter()
                    .find(|f| f.path == p)
                    .map(|f| f.contents.clone())
            };
            match (get(path("crt")), get(path("key"))) {
                (Some(c), Some(k)) => Some((ca_pem, c, k)),
                _ => {
                    return Err(Error::Internal(
                        "no etcd healthcheck client among the certificates".into(),
                    ))
                }
            }
        }
        None => None,
    };

    let (specs, dropped) = pki::cert_specs(&cfg, &node).map_err(Error::Pki)?;
    for s in dropped {
        warn!("certificate SAN {s:?} is neither an IP address nor a DNS name: left out, as kubeadm does");
    }
    let cert_lines = specs
        .iter()
        .map(|s| {
            let ca_name = match s.ca {
                pki::CaName::Ca => "ca",
                pki::CaName::FrontProxyCa => "front-proxy-ca",
                pki::CaName::EtcdCa => "etcd/ca",
            };
            let mut sans: Vec<String> = s.dns_names.clone();
            sans.extend(s.ips.iter().map(|i| i.to_string()));
            format!(
                "{}.crt: subject CN={}{}, issuer {ca_name}, SANs [{}]",
                s.base_name,
                s.common_name,
                s.organization
                    .iter()
                    .map(|o| format!(", O={o}"))
                    .collect::<String>(),
                sans.join(", ")
            )
        })
        .collect();

    let mut files: Vec<(NodeFile, &'static str)> = Vec::new();
    files.extend(
        downloaded
            .files
            .into_iter()
            .map(|f| (f, "shared certificate or key from kubeadm-certs")),
    );
    files.extend(
        leaves
            .into_iter()
            .map(|f| (f, "this control plane's certificate or key")),
    );
    files.extend(
        confs
            .into_iter()
            .map(|f| (f, "kubeconfig of a control-plane component")),
    );
    files.extend(pods.into_iter().map(|f| (f, "static Pod manifest")));
    Ok(Prepared {
        cfg,
        node,
        files,
        admin,
        etcd_client,
        cert_lines,
    })
}

/// The subject of the first certificate of a PEM, for messages.
fn subject_of(pem: &[u8]) -> String {
    crate::pki::pem::certs_from_pem(pem)
        .ok()
        .and_then(|c| c.into_iter().next())
        .and_then(|der| {
            crate::pki::x509::parse_certificate(&der)
                .ok()
                .map(|c| c.subject.to_string())
        })
        .unwrap_or_default()
}

/// kubeadm's preflight names for what it finds in the way.
fn check_name(path: &str, dir: bool) -> String {
    format!(
        "{}Available-{}",
        if dir { "Dir" } else { "File" },
        path.replace('/', "-")
    )
}

fn ignored(plan: &JoinPlan, name: &str) -> bool {
    plan.force
        || plan
            .ignore_preflight_errors
            .iter()
            .any(|i| i == "all" || i.eq_ignore_ascii_case(name))
}

/// control-plane-preflight: nothing of a control plane may be there yet.
fn preflight(
    plan: &JoinPlan,
    cp: &ControlPlanePlan,
    p: &Prepared,
    root: &Root,
) -> Result<(), Error> {
    let mut existing = Vec::new();
    let mut paths: Vec<&str> = p.files.iter().map(|(f, _)| f.path.as_str()).collect();
    let etcd_yaml = super::join_path(manifests::MANIFESTS_DIR, "etcd.yaml");
    if matches!(p.cfg.etcd, Etcd::Local(_)) {
        paths.push(&etcd_yaml);
    }
    for path in paths {
        if root.join(path).is_ok_and(|r| r.exists()) && !ignored(plan, &check_name(path, false)) {
            existing.push(path.to_string());
        }
    }
    if let Etcd::Local(l) = &p.cfg.etcd {
        let non_empty = root
            .join(&l.data_dir)
            .ok()
            .and_then(|d| std::fs::read_dir(d).ok())
            .is_some_and(|mut e| e.next().is_some());
        if non_empty && !ignored(plan, &check_name(&l.data_dir, true)) {
            existing.push(format!("{} (not empty)", l.data_dir));
        }
    }
    if !existing.is_empty() {
        return Err(Error::Preflight { existing });
    }
    // Ports only on this machine: another root says nothing about this host's listeners.
    if root.is_host() {
        let mut busy = Vec::new();
        let mut ports = vec![cp.bind_port, 10259, 10257];
        if matches!(p.cfg.etcd, Etcd::Local(_)) {
            ports.extend([manifests::ETCD_CLIENT_PORT, manifests::ETCD_PEER_PORT]);
        }
        for port in ports {
            let name = format!("Port-{port}");
            if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() && !ignored(plan, &name) {
                busy.push(name);
            }
        }
        if !busy.is_empty() {
            return Err(Error::Ports(busy));
        }
    }
    Ok(())
}

/// The taints kubeadm gives a control-plane node (`constants.ControlPlaneTaint`, and
/// `OldControlPlaneTaint` alongside it in v1.24 only; read: v1.24 added the new taint, v1.25
/// dropped the old one).
pub fn default_taints(minor: u32) -> Vec<String> {
    let new = "node-role.kubernetes.io/control-plane:NoSchedule".to_string();
    match minor {
        0..=23 => vec!["node-role.kubernetes.io/master:NoSchedule".into()],
        24 => vec!["node-role.kubernetes.io/master:NoSchedule".into(), new],
        _ => vec![new],
    }
}

/// The labels kubeadm's mark-control-plane sets (`markcontrolplane.go`; v1.24 dropped the
/// `master` label, read).
pub fn control_plane_labels(minor: u32) -> Vec<&'static str> {
    let mut l = vec![
        "node-role.kubernetes.io/control-plane",
        "node.kubernetes.io/exclude-from-external-load-balancers",
    ];
    if minor <= 23 {
        l.insert(0, "node-role.kubernetes.io/master");
    }
    l
}

/// `key[=value]:Effect` as a Node taint object.
fn taint_json(t: &str) -> Value {
    let (kv, effect) = t.rsplit_once(':').unwrap_or((t, "NoSchedule"));
    match kv.split_once('=') {
        Some((k, v)) => json!({"key": k, "value": v, "effect": effect}),
        None => json!({"key": kv, "effect": effect}),
    }
}

fn print_dry_run(p: &Prepared, cp: &ControlPlanePlan) {
    println!(
        "dry run: control plane for cluster {} (certificate key from {}: it decrypted kube-system/kubeadm-certs); nothing was written",
        p.cfg.kubernetes_version_text, cp.key_source
    );
    println!("would: write before the kubelet starts:");
    for (f, what) in &p.files {
        println!("  write   {} ({:04o}): {what}", f.path, f.mode);
    }
    for line in &p.cert_lines {
        println!("  certificate {line}");
    }
    if matches!(p.cfg.etcd, Etcd::Local(_)) {
        println!(
            "would: list the etcd Pods (GET {ETCD_PODS}) with the new admin credentials, then on the etcd gateway \
             POST {} {{\"peerURLs\":[\"{}\"]{}}}{}, and write {}/etcd.yaml (0600) with --initial-cluster-state=existing",
            etcd::MEMBER_ADD,
            manifests::etcd_peer_url(&p.node),
            if etcd::adds_as_learner(&p.cfg) { ",\"isLearner\":true" } else { "" },
            if etcd::adds_as_learner(&p.cfg) {
                format!(", then POST {} once the member is in sync", etcd::MEMBER_PROMOTE)
            } else {
                String::new()
            },
            manifests::MANIFESTS_DIR
        );
    }
    println!(
        "would: PATCH /api/v1/nodes/{} (strategic merge) with labels [{}] and taints [{}]",
        p.node.name,
        control_plane_labels(p.cfg.minor()).join(", "),
        default_taints(p.cfg.minor()).join(", ")
    );
    println!("would: wait for {} to answer ok", healthz_url(cp));
}

fn healthz_url(cp: &ControlPlanePlan) -> String {
    cp.healthz_url.clone().unwrap_or_else(|| {
        format!(
            "https://{}/healthz",
            super::cluster::host_port(&cp.advertise_address.to_string(), cp.bind_port)
        )
    })
}

/// Pauses between attempts of the waits: 0.5 s doubling to 5 s.
fn pause(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4))).min(Duration::from_secs(5))
}

/// etcd-join: member add (or find), promote; the `--initial-cluster` for etcd.yaml.
async fn join_etcd(
    admin: &kube::Client,
    p: &Prepared,
    ca: &[u8],
    cert: &[u8],
    key: &[u8],
    clock: &PhaseClock,
) -> Result<Vec<manifests::InitialMember>, Error> {
    let pods: Value = admin
        .get(ETCD_PODS, "PodList")
        .await
        .map_err(api("listing the etcd Pods in kube-system", admin.server()))?;
    let endpoints = etcd::endpoints_from_pods(&pods);
    if endpoints.is_empty() {
        return Err(Error::NoEtcdEndpoints);
    }
    info!("etcd: endpoints {}", endpoints.join(", "));
    let client = etcd::Client::new(&endpoints, ca, cert, key, Duration::from_secs(10))
        .map_err(Error::Etcd)?;
    let peer = manifests::etcd_peer_url(&p.node);
    let learner = etcd::adds_as_learner(&p.cfg);
    let listed = client.member_list().await.map_err(Error::Etcd)?;
    let (members, id, is_learner) = match etcd::member_by_peer(&listed.members, &peer) {
        // A re-run after a crash: the member is there already.
        Some(m) => {
            info!("etcd: member {:x} with peer URL {peer} exists already (an earlier attempt); not adding it again", m.id);
            (listed.members.clone(), m.id, m.is_learner)
        }
        None => {
            let mut attempt = 0;
            let added = loop {
                match client.member_add(&peer, learner).await {
                    Ok(a) => break a,
                    Err(e @ EtcdError::Refused { .. })
                        if !e.to_string().contains("already exists") =>
                    {
                        if clock.remaining() <= pause(attempt) {
                            return Err(Error::Etcd(e));
                        }
                        warn!("etcd: {e}; retrying");
                        tokio::time::sleep(pause(attempt)).await;
                        attempt += 1;
                    }
                    Err(e) => return Err(Error::Etcd(e)),
                }
            };
            info!(
                "etcd: added member {:x} ({peer}){}",
                added.member.id,
                if learner { " as a learner" } else { "" }
            );
            (added.members, added.member.id, added.member.is_learner)
        }
    };
    let initial = etcd::initial_cluster(&members, &p.node.name, &peer);
    if is_learner {
        let mut attempt = 0;
        loop {
            match client.member_promote(id).await {
                Ok(_) => break,
                Err(e) if e.is_learner_not_ready() && clock.remaining() > pause(attempt) => {
                    crate::debug!("etcd: {e}; retrying");
                    tokio::time::sleep(pause(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(Error::Etcd(e)),
            }
        }
        info!("etcd: promoted member {id:x} to a voting member");
    }
    Ok(initial)
}

/// mark-control-plane: wait for the Node, then add the labels and the taints it lacks.
async fn mark(
    admin: &kube::Client,
    node: &str,
    minor: u32,
    taints: &[String],
) -> Result<(), Error> {
    let path = format!("/api/v1/nodes/{node}");
    let mut attempt = 0;
    let current: Value = loop {
        match admin.get(&path, "Node").await {
            Ok(n) => break n,
            Err(e) if e.status_code() == Some(404) => {
                if attempt % 10 == 0 {
                    info!("mark-control-plane: waiting for the kubelet to register Node {node:?}");
                }
                tokio::time::sleep(pause(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(api(format!("getting Node {node:?}"), admin.server())(e)),
        }
    };
    let mut want: Vec<Value> = taints.iter().map(|t| taint_json(t)).collect();
    for t in current
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        if !want
            .iter()
            .any(|w| w["key"] == t["key"] && w["effect"] == t["effect"])
        {
            want.push(t);
        }
    }
    let labels: serde_json::Map<String, Value> = control_plane_labels(minor)
        .into_iter()
        .map(|l| (l.to_string(), json!("")))
        .collect();
    let patch = json!({"metadata": {"labels": labels}, "spec": {"taints": want}});
    let answer = admin
        .send_typed(
            http::Method::PATCH,
            &path,
            "application/json",
            "application/strategic-merge-patch+json",
            Some(patch.to_string().into_bytes()),
            kube::MAX_BODY,
        )
        .await
        .map_err(api(format!("patching Node {node:?}"), admin.server()))?;
    if !answer.is_success() {
        return Err(api(format!("patching Node {node:?}"), admin.server())(
            answer.into_status_error(),
        ));
    }
    info!(
        "mark-control-plane: Node {node:?} labelled [{}] and tainted [{}]",
        control_plane_labels(minor).join(", "),
        taints.join(", ")
    );
    Ok(())
}

/// wait-control-plane: `url` answers 200, verified against the cluster CA.
async fn wait_healthy(url: &str, d: &Discovered) -> Result<(), Error> {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    let base = format!("https://{host}");
    let client = kube::client(
        &base,
        &d.trust(),
        &Identity::Anonymous,
        Timeouts {
            connect: Duration::from_secs(5),
            read: Some(Duration::from_secs(5)),
        },
    )
    .map_err(|e| Error::Internal(format!("a client for {base}: {e}")))?;
    let mut attempt = 0;
    loop {
        match client
            .send(http::Method::GET, path, "text/plain", None, 4096)
            .await
        {
            Ok(a) if a.is_success() => return Ok(()),
            Ok(a) => crate::debug!("wait-control-plane: {url} answered {}", a.code),
            Err(e) => crate::debug!("wait-control-plane: {url}: {e}"),
        }
        if attempt % 10 == 0 {
            info!("wait-control-plane: waiting for {url}");
        }
        tokio::time::sleep(pause(attempt)).await;
        attempt += 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn marking_rules_by_version() {
        assert_eq!(
            default_taints(24),
            [
                "node-role.kubernetes.io/master:NoSchedule",
                "node-role.kubernetes.io/control-plane:NoSchedule"
            ]
        );
        assert_eq!(
            default_taints(30),
            ["node-role.kubernetes.io/control-plane:NoSchedule"]
        );
        assert_eq!(control_plane_labels(23).len(), 3);
        assert_eq!(
            control_plane_labels(24)[0],
            "node-role.kubernetes.io/control-plane"
        );
        assert_eq!(
            taint_json("a=b:NoExecute"),
            json!({"key": "a", "value": "b", "effect": "NoExecute"})
        );
        assert_eq!(
            check_name("/etc/kubernetes/manifests/kube-apiserver.yaml", false),
            "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"
        );
        assert_eq!(
            check_name("/var/lib/etcd", true),
            "DirAvailable--var-lib-etcd"
        );
    }
}
