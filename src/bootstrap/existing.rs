//! Is this node already joined? (idempotent re-runs)
//!
//! A node that has a `kubelet.conf` whose client certificate is for this node, unexpired and
//! issued by the cluster we just discovered is joined: a second run goes straight to the
//! handoff. One whose certificate has merely expired or vanished is re-joined (that is what
//! the kubelet itself would need). One that belongs to another cluster, or to another node
//! name, or that cannot be read, is refused unless `--force`: overwriting it would silently
//! move the machine.

use crate::bootstrap::csr::common_name;
use crate::bootstrap::verify;
use crate::error::{Class, Classify};
use crate::fs::root::Root;
use crate::kube::kubeconfig::Kubeconfig;
use crate::pki::pem::blocks_of as pem_blocks;
use std::path::PathBuf;
use std::time::SystemTime;

/// What is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// No kubelet.conf: a fresh join.
    None,
    /// Joined to this cluster as this node, certificate valid until `not_after` (Unix seconds).
    Joined { not_after: i64 },
    /// A kubelet.conf for this cluster and node whose certificate is unusable: re-join.
    Stale(String),
    /// Something a join would overwrite that is not ours to overwrite without `--force`.
    Conflict(Conflict),
}

/// A kubelet.conf that a join must not replace silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("{} belongs to another cluster: its CA is not the CA discovered for this join", path.display())]
    OtherCluster { path: PathBuf },
    #[error("{} holds the identity of node {found:?}, not {wanted:?}", path.display())]
    OtherNode {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("{} exists but cannot be used to tell which cluster it belongs to: {why}", path.display())]
    Unreadable { path: PathBuf, why: String },
}

impl Classify for Conflict {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(
            "this machine already has a kubelet identity; pass --force to replace it (or run `kubeadm reset` \
             first), or check that you are joining the intended cluster"
                .into(),
        )
    }
}

/// Reads a path a kubeconfig names (absolute as the node sees it) inside the root: every
/// symlink on the way (`kubelet-client-current.pem` points at an absolute node path) resolves
/// inside the root, as it will for the booted system, never on the host.
fn read_node_file(root: &Root, p: &str) -> Result<Vec<u8>, NodeFileError> {
    root.read(p).map_err(|source| NodeFileError {
        path: root.join(p).unwrap_or_else(|_| PathBuf::from(p)),
        source,
    })
}

/// A file a kubeconfig names that could not be read (the reason the kubeconfig is unusable).
#[derive(Debug, thiserror::Error)]
#[error("reading {}: {source}", path.display())]
struct NodeFileError {
    path: PathBuf,
    source: std::io::Error,
}

/// Inspects `/etc/kubernetes/kubelet.conf` under `root` for node `node`, against the
/// discovered CA bundle `ca_der`, at `now`.
pub fn check(root: &Root, ca_der: &[Vec<u8>], node: &str, now: SystemTime) -> Existing {
    let Ok(path) = root.join(crate::install::KUBELET_CONF) else {
        return Existing::None;
    };
    let unreadable = |why: String| {
        Existing::Conflict(Conflict::Unreadable {
            path: path.clone(),
            why,
        })
    };
    let text = match root.read_to_string(crate::install::KUBELET_CONF) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Existing::None,
        Err(e) => return unreadable(e.to_string()),
    };
    let kc = match Kubeconfig::parse(&text) {
        Ok(k) => k,
        Err(e) => return unreadable(e.to_string()),
    };

    // Which cluster: compare CA bundles. Any certificate in common is the same cluster (a CA
    // bundle may gain a certificate during a CA rotation).
    let cluster = match kc.cluster() {
        Ok(c) => &c.cluster,
        Err(e) => return unreadable(e.to_string()),
    };
    let ca_pem = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(d), _) => d.clone(),
        (None, Some(p)) => match read_node_file(root, p) {
            Ok(d) => d,
            Err(why) => return unreadable(why.to_string()),
        },
        (None, None) => return unreadable("it names no cluster CA".into()),
    };
    let theirs = pem_blocks(&ca_pem, "CERTIFICATE");
    if theirs.is_empty() {
        return unreadable("its cluster CA is not PEM".into());
    }
    if !theirs.iter().any(|c| ca_der.contains(c)) {
        return Existing::Conflict(Conflict::OtherCluster { path });
    }

    // Which node, and is the identity still usable.
    let Some(user) = kc.current_user() else {
        return unreadable("its current context names no user".into());
    };
    let cert_pem = match (
        &user.user.client_certificate_data,
        &user.user.client_certificate,
    ) {
        (Some(d), _) => d.clone(),
        (None, Some(p)) => match read_node_file(root, p) {
            Ok(d) => d,
            Err(why) => return Existing::Stale(why.to_string()),
        },
        (None, None) => return Existing::Stale("it has no client certificate".into()),
    };
    let ders = pem_blocks(&cert_pem, "CERTIFICATE");
    let Some(leaf_der) = ders.first() else {
        return Existing::Stale("its client certificate is not PEM".into());
    };
    let Ok(leaf) = crate::pki::x509::parse_certificate(leaf_der) else {
        return Existing::Stale("its client certificate does not parse".into());
    };
    let found = leaf
        .subject
        .attributes()
        .find(|a| a.oid == crate::pki::x509::OID_CN)
        .and_then(|a| a.as_str())
        .unwrap_or("")
        .to_string();
    let wanted = common_name(node);
    if found != wanted {
        let found = found
            .strip_prefix("system:node:")
            .unwrap_or(&found)
            .to_string();
        return Existing::Conflict(Conflict::OtherNode {
            path,
            found,
            wanted: node.to_string(),
        });
    }
    let spki = leaf.spki.raw.to_vec();
    match verify::verify(&cert_pem, &spki, node, ca_der, now) {
        Ok(v) => Existing::Joined {
            not_after: v.not_after,
        },
        Err(e) => Existing::Stale(format!("its client certificate {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::{apply, plan, Inputs, KUBELET_CONF};
    use rcgen::{CertificateParams, DnType, IsCa, KeyPair};
    use std::time::Duration;

    struct Ca {
        der: Vec<u8>,
        pem: String,
        issuer: rcgen::Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "kubernetes");
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(p, key),
        }
    }

    fn node_cert(ca: &Ca, node: &str, end_year: i32) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "system:nodes");
        p.distinguished_name
            .push(DnType::CommonName, format!("system:node:{node}"));
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(end_year, 1, 1);
        (
            p.signed_by(&key, &ca.issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    fn install(root: &Root, ca: &Ca, cert: &str, key: &str) {
        let i = Inputs {
            server: "https://10.0.0.1:6443",
            ca_pem: ca.pem.as_bytes(),
            cert_chain_pem: cert,
            key_pem: key,
            kubelet_config: "kind: KubeletConfiguration\n",
            flags_env: "KUBELET_KUBEADM_ARGS=\"\"\n",
            instance_config: None,
            now: SystemTime::now(),
        };
        apply(root, &plan(&i)).unwrap();
    }

    fn at(y: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs((y - 1970) * 31_557_600)
    }

    #[test]
    fn fresh_joined_stale_and_conflicts() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let c = ca();
        let ders = vec![c.der.clone()];
        assert_eq!(check(&root, &ders, "worker-1", at(2030)), Existing::None);

        let (cert, key) = node_cert(&c, "worker-1", 2035);
        install(&root, &c, &cert, &key);
        assert!(matches!(
            check(&root, &ders, "worker-1", at(2030)),
            Existing::Joined { .. }
        ));
        // Expired: re-join.
        assert!(
            matches!(check(&root, &ders, "worker-1", at(2036)), Existing::Stale(w) if w.contains("expired"))
        );
        // Another node name: refuse.
        assert!(matches!(
            check(&root, &ders, "worker-2", at(2030)),
            Existing::Conflict(Conflict::OtherNode { found, .. }) if found == "worker-1"
        ));
        // Another cluster: refuse.
        let other = ca();
        assert!(matches!(
            check(
                &root,
                std::slice::from_ref(&other.der),
                "worker-1",
                at(2030)
            ),
            Existing::Conflict(Conflict::OtherCluster { .. })
        ));
        // The PEM is gone: re-join.
        std::fs::remove_file(root.join(crate::install::CLIENT_CURRENT).unwrap()).unwrap();
        assert!(matches!(
            check(&root, &ders, "worker-1", at(2030)),
            Existing::Stale(_)
        ));
        // Identity from a CA that is in the installed bundle but not among the trusted (pinned)
        // ones: never "already joined".
        let pinned = ca();
        let both = format!("{}{}", pinned.pem, c.pem);
        let i = Inputs {
            server: "https://10.0.0.1:6443",
            ca_pem: both.as_bytes(),
            cert_chain_pem: &cert,
            key_pem: &key,
            kubelet_config: "kind: KubeletConfiguration\n",
            flags_env: "KUBELET_KUBEADM_ARGS=\"\"\n",
            instance_config: None,
            now: SystemTime::now(),
        };
        apply(&root, &plan(&i)).unwrap();
        assert!(matches!(
            check(
                &root,
                &[c.der.clone(), pinned.der.clone()],
                "worker-1",
                at(2030)
            ),
            Existing::Joined { .. }
        ));
        assert!(
            matches!(check(&root, std::slice::from_ref(&pinned.der), "worker-1", at(2030)), Existing::Stale(w) if w.contains("does not chain")),
            "{:?}",
            check(
                &root,
                std::slice::from_ref(&pinned.der),
                "worker-1",
                at(2030)
            )
        );
        // Garbage: refuse.
        std::fs::write(root.join(KUBELET_CONF).unwrap(), "clusters: [").unwrap();
        let e = check(&root, &ders, "worker-1", at(2030));
        assert!(
            matches!(&e, Existing::Conflict(Conflict::Unreadable { .. })),
            "{e:?}"
        );
        if let Existing::Conflict(c) = e {
            assert_eq!(c.class(), Class::Usage);
            assert!(c.hint().unwrap().contains("--force"));
        }
    }
}
