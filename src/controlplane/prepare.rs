//! control-plane-prepare and control-plane-preflight: everything a control-plane join reads
//! and makes before it writes (see [`super::join`] for the order and its sources).

use super::cluster::{ClusterConfig, Etcd, LocalNode};
use super::download::{self, DownloadError};
use super::etcd;
use super::finish;
use super::join_error::{api, Error};
use super::pki::{self, Ca, PkiError};
use super::{kubeconfigs, manifests, NodeFile};
use crate::bootstrap::config::Resume;
use crate::discovery::Discovered;
use crate::fs::root::Root;
use crate::kube;
use crate::kube::types::ConfigMap;
use crate::plan::control_plane::ControlPlanePlan;
use crate::plan::JoinPlan;
use crate::{info, warn};
use serde_json::Value;
use std::time::SystemTime;

const KUBEADM_CONFIG: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";

/// What one control-plane join computed before writing: the files and what the later phases need.
pub(super) struct Prepared {
    pub(super) cfg: ClusterConfig,
    pub(super) node: LocalNode,
    /// Everything to write before the kubelet starts, in order.
    pub(super) files: Vec<(NodeFile, &'static str)>,
    /// For a dry run: one line per certificate (subject, issuer, SANs).
    pub(super) cert_lines: Vec<String>,
    /// `kube-system/kubeadm-config` as read, for kubelet-start.
    pub(super) kubeadm_config: ConfigMap,
}

impl Prepared {
    /// What kubelet-start starts from: `kubeadm-config` is not read a second time.
    pub(super) fn resume(&self) -> Resume {
        Resume::with_kubeadm_config(self.kubeadm_config.clone())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// control-plane-prepare: configuration, download, and every file made in memory.
pub(super) async fn prepare(
    client: &kube::Client,
    cp: &ControlPlanePlan,
    node_name: &str,
    root: &Root,
    d: &Discovered,
) -> Result<Prepared, Error> {
    let server = client.server().to_string();
    // Read once per join: kubelet-start resumes from it (`Prepared::resume`).
    let cm: ConfigMap = client
        .get(KUBEADM_CONFIG, "ConfigMap")
        .await
        .map_err(api("getting ConfigMap kube-system/kubeadm-config", &server))?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("ClusterConfiguration"))
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
            confs.push(NodeFile::secret(
                super::join_path("/etc/kubernetes", s.file),
                text.into_bytes(),
            ));
        }
        Ok((leaves, confs))
    })
    .await
    .map_err(|e| Error::Internal(format!("the key generation task ended abnormally: {e}")))?
    .map_err(Error::Pki)?;
    let (leaves, confs) = made;

    let host_ca_dirs: Vec<String> = manifests::host_ca_dir_candidates(&cfg)
        .iter()
        .filter(|p| root.join(p).is_ok_and(|r| r.is_dir()))
        .map(|p| p.to_string())
        .collect();
    let pods = manifests::control_plane(&cfg, &node, &host_ca_dirs).map_err(Error::Config)?;

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
            // SANs in kubeadm's words (`[certs] … serving cert is signed for DNS names [..]
            // and IPs [..]`, Go's `%v` of a slice), so the two dry runs compare line for line.
            let sans = if s.dns_names.is_empty() && s.ips.is_empty() {
                "no SANs".to_string()
            } else {
                format!(
                    "signed for DNS names [{}] and IPs [{}]",
                    s.dns_names.join(" "),
                    s.ips
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            };
            format!(
                "{}.crt: subject CN={}{}, issuer {ca_name}, {sans}",
                s.base_name,
                s.common_name,
                s.organization
                    .iter()
                    .map(|o| format!(", O={o}"))
                    .collect::<String>(),
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
        cert_lines,
        kubeadm_config: cm,
    })
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
pub(super) fn preflight(
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

pub(super) fn print_dry_run(p: &Prepared, cp: &ControlPlanePlan) {
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
            "would: list the etcd Pods (GET {}) with the new admin credentials, then on the etcd gateway \
             POST {} {{\"peerURLs\":[\"{}\"]{}}}{}, and write {}/etcd.yaml (0600) with --initial-cluster-state=existing",
            finish::ETCD_PODS,
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
        finish::control_plane_labels(p.cfg.minor()).join(", "),
        finish::default_taints(p.cfg.minor()).join(", ")
    );
    println!("would: wait for {} to answer ok", finish::healthz_url(cp));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn preflight_names_are_kubeadms() {
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
