//! The running control-plane side: the PKI `kubeadm init` left on the first node, uploads of
//! `kubeadm-certs` (as `kubeadm init phase upload-certs --upload-certs` does them, through
//! the same kube-system store the API serves), the fake etcd, and the static Pods' mirrors.

use crate::controlplane::{ControlPlane, ControlPlanePki, KubeadmRules};
use crate::copycerts::{self, CertificateKey};
use crate::etcd::Etcd;
use crate::kubesystem::{self, KubeSystem, NewSecret};
use crate::objects::OwnerReference;
use crate::pods::{Pod, PodFacts};
use crate::Error;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

pub(crate) struct ControlPlaneState {
    pub config: ControlPlane,
    pub rules: KubeadmRules,
    pub pki: ControlPlanePki,
    /// `certsToTransfer` with contents: (name under certificatesDir, plaintext).
    pub files: Vec<(String, Vec<u8>)>,
    pub etcd: Option<Arc<Etcd>>,
    pub pod_facts: PodFacts,
    key: Mutex<Option<CertificateKey>>,
}

impl std::fmt::Debug for ControlPlaneState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlaneState")
            .field("first_node", &self.config.first_node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `[a-z0-9]{n}`, as `bootstraputil.GenerateBootstrapToken` draws a token's parts.
fn token_part(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 32];
        crate::util::random_bytes(&mut buf);
        for b in buf {
            // 252 = 7 * 36: rejection keeps the draw uniform.
            if b < 252 && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(b) % 36]));
            }
        }
    }
    out
}

impl ControlPlaneState {
    pub(crate) fn new(
        config: ControlPlane,
        rules: KubeadmRules,
        pki: ControlPlanePki,
        files: Vec<(String, Vec<u8>)>,
        etcd: Option<Arc<Etcd>>,
        pod_facts: PodFacts,
    ) -> ControlPlaneState {
        ControlPlaneState {
            config,
            rules,
            pki,
            files,
            etcd,
            pod_facts,
            key: Mutex::new(None),
        }
    }

    /// The key of the current upload, hex.
    pub(crate) fn certificate_key(&self) -> Option<String> {
        lock(&self.key).as_ref().map(CertificateKey::to_hex)
    }

    /// `upload-certs`: a proxy token with the TTL, the Secret (created or replaced) owned by
    /// it, then the Role and RoleBinding (created or replaced).
    pub(crate) fn upload(&self, ks: &KubeSystem, key: CertificateKey) -> Result<(), Error> {
        let fail = |what: &str, e: crate::objects::Status| {
            Error::ControlPlane(format!("{what}: {}", e.message))
        };
        let expires = SystemTime::now() + self.config.certs_ttl;
        let token = ks
            .put_secret(
                kubesystem::token_secret(
                    &token_part(6),
                    &token_part(16),
                    Some(copycerts::PROXY_TOKEN_DESCRIPTION),
                    Some(expires),
                    &[],
                    &[],
                ),
                false,
                "kubeadm",
            )
            .map_err(|e| fail("creating the upload-certs token", e))?;
        let data = copycerts::seal_entries(&key, &copycerts::entries(&self.files))
            .ok_or_else(|| Error::ControlPlane("encrypting kubeadm-certs failed".into()))?;
        let secret = NewSecret {
            name: copycerts::SECRET_NAME.to_string(),
            type_: String::new(),
            data,
            owners: vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Secret".into(),
                name: token.metadata.name.clone(),
                uid: token.metadata.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            expires: None,
        };
        if let Err(e) = ks.put_secret(secret.clone(), false, "kubeadm") {
            if e.code != 409 {
                return Err(fail("creating kubeadm-certs", e));
            }
            ks.put_secret(secret, true, "kubeadm")
                .map_err(|e| fail("updating kubeadm-certs", e))?;
        }
        let (role, binding) = kubesystem::kubeadm_certs_rbac();
        for (resource, body) in [("roles", role), ("rolebindings", binding)] {
            if ks
                .put_rbac(resource, &body, copycerts::ROLE_NAME, false)
                .is_err()
            {
                ks.put_rbac(resource, &body, copycerts::ROLE_NAME, true)
                    .map_err(|e| fail("updating the kubeadm-certs RBAC", e))?;
            }
        }
        *lock(&self.key) = Some(key);
        Ok(())
    }

    pub(crate) fn pods(&self, node_uid: &str) -> Vec<Pod> {
        let mut facts = self.pod_facts.clone();
        facts.node_uid = node_uid.to_string();
        crate::pods::pods(&facts)
    }
}
