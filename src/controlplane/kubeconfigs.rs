//! admin.conf, controller-manager.conf and scheduler.conf of a joining control plane.
//!
//! Sources (kubernetes/kubernetes `cmd/kubeadm/app/phases/kubeconfig/kubeconfig.go`
//! `getKubeConfigSpecsBase`; status as in [`super::pki`]):
//! - admin.conf: user `kubernetes-admin`, certificate CN `kubernetes-admin`, O `system:masters`
//!   (golden v1.24) — `kubeadm:cluster-admins` from v1.29 (inferred: KEP-4214); server = the
//!   `controlPlaneEndpoint`, else this node (golden: `https://127.0.0.1:6443` from the cluster's
//!   endpoint).
//! - super-admin.conf (v1.29+, O `system:masters`) is written by `kubeadm init` only, not by a
//!   join (inferred: KEP-4214), so it is not made here.
//! - controller-manager.conf / scheduler.conf: users `system:kube-controller-manager` /
//!   `system:kube-scheduler` (CN, no O), server = this node's advertise address and bind port
//!   (golden: `https://10.0.2.15:6443`).
//! - Cluster `<clusterName>`, context `<user>@<clusterName>`, `certificate-authority-data` the
//!   cluster CA PEM, embedded client certificate and key; written 0600 (`clientcmd.WriteToFile`).
//! - `preferences: {}` is written by client-go up to v0.33 and omitted from v0.34 (kubeadm
//!   v1.34+), as the crate's kubeconfig emitter documents.

use super::cluster::{ClusterConfig, LocalNode};
use super::pki::{self, Ca, PkiError};
use super::{join_path, NodeFile};
use crate::kube::kubeconfig::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedCluster, NamedContext, NamedUser,
};

/// One kubeconfig kubeadm writes: file name, user, certificate subject, server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigSpec {
    pub file: &'static str,
    pub user: &'static str,
    pub organization: Vec<&'static str>,
    pub server: String,
}

/// The kubeconfigs of a joining control plane at the cluster's version.
pub fn specs(cfg: &ClusterConfig, node: &LocalNode) -> Vec<KubeconfigSpec> {
    let admin_org = if cfg.minor() >= 29 {
        "kubeadm:cluster-admins"
    } else {
        "system:masters"
    };
    let local = format!("https://{}", node.endpoint());
    vec![
        KubeconfigSpec {
            file: "admin.conf",
            user: "kubernetes-admin",
            organization: vec![admin_org],
            server: cfg.control_plane_url(node),
        },
        KubeconfigSpec {
            file: "controller-manager.conf",
            user: "system:kube-controller-manager",
            organization: vec![],
            server: local.clone(),
        },
        KubeconfigSpec {
            file: "scheduler.conf",
            user: "system:kube-scheduler",
            organization: vec![],
            server: local,
        },
    ]
}

/// Renders one kubeconfig with the given embedded credentials (client-go's byte layout).
pub fn render(
    cfg: &ClusterConfig,
    spec: &KubeconfigSpec,
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> String {
    let context = format!("{}@{}", spec.user, cfg.cluster_name);
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: cfg.cluster_name.clone(),
            cluster: Cluster {
                server: spec.server.clone(),
                certificate_authority_data: Some(ca_pem.to_vec()),
                ..Cluster::default()
            },
        }],
        contexts: vec![NamedContext {
            name: context.clone(),
            context: Context {
                cluster: cfg.cluster_name.clone(),
                user: spec.user.to_string(),
                namespace: None,
            },
        }],
        users: vec![NamedUser {
            name: spec.user.to_string(),
            user: AuthInfo {
                client_certificate_data: Some(cert_pem.to_vec()),
                client_key_data: Some(key_pem.to_vec()),
                ..AuthInfo::default()
            },
        }],
        current_context: context,
        preferences: cfg.minor() <= 33,
    }
    .render()
}

/// The three kubeconfig files (0600, under /etc/kubernetes), with fresh client certificates
/// signed by the cluster CA.
pub fn files(
    cfg: &ClusterConfig,
    node: &LocalNode,
    ca: &Ca,
    now: i64,
) -> Result<Vec<NodeFile>, PkiError> {
    let mut out = Vec::new();
    for s in specs(cfg, node) {
        let issued = pki::client_cert(
            ca,
            s.user,
            &s.organization,
            cfg.key_algorithm,
            now,
            cfg.certificate_validity_secs,
        )?;
        let text = render(
            cfg,
            &s,
            &ca.cert_pem,
            &issued.cert_pem,
            &issued.key.private_pem,
        );
        out.push(NodeFile::secret(
            join_path("/etc/kubernetes", s.file),
            text.into_bytes(),
        ));
    }
    Ok(out)
}
