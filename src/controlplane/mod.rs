//! Control-plane join: what `kubeadm join --control-plane --certificate-key` performs. The core
//! (phase 1) is pure functions that return file contents and modes plus a small etcd v3 JSON
//! gateway client; [`join`] runs them as phases around the worker's kubelet start (`kubejoin
//! join --control-plane`, called from one spot in `app.rs`), writing through the one atomic
//! writer. PID 1 (and `--handoff exec`) hands the phases that need the running kubelet to a
//! detached finish step ([`after`]). Every version-dependent rule names its
//! upstream source (kubernetes/kubernetes, `cmd/kubeadm/app/...`) and whether it was read at a
//! tag or inferred; `docs/control-plane.md` collects them in one table.
//!
//! | file | job |
//! |---|---|
//! | [`certkey`] | the certificate key (redacted newtype) and the AES-256-GCM entry codec |
//! | [`download`] | `kube-system/kubeadm-certs` → the shared CA/SA/etcd files with kubeadm's modes |
//! | [`cluster`] | the cluster's `ClusterConfiguration` (v1beta2–v1beta4) and this node's endpoint |
//! | [`pki`] | this node's certificates and keys, as kubeadm of the cluster's version makes them |
//! | [`rsagen`] | RSA key generation (PKCS#1 DER), our own for binary size |
//! | [`kubeconfigs`] | admin.conf, controller-manager.conf, scheduler.conf |
//! | [`yaml`] | a deterministic YAML emitter in the style of sigs.k8s.io/yaml (go-yaml v2) |
//! | [`manifests`] | the static Pod manifests (kube-apiserver, controller-manager, scheduler, etcd) |
//! | [`etcd`] | etcd's v3 JSON gateway: member list/add/promote codec and an mTLS client |
//! | [`join`] | the one entry: the phases in kubeadm's order, around the kubelet start |
//! | [`prepare`] | control-plane-prepare (kubeadm-config, kubeadm-certs, every file in memory), preflight, dry-run listing |
//! | [`finish`] | after the kubelet: etcd member add/promote, node marking, the local `/healthz` wait |
//! | [`after`] | those phases run from files on disk and a secret-free handover (`kubejoin finish-control-plane`) |
//! | [`join_error`] | the join's errors and their exit classes |

pub mod after;
pub mod certkey;
pub mod cluster;
pub mod download;
pub mod etcd;
pub mod finish;
pub mod join;
pub mod join_error;
pub mod kubeconfigs;
pub mod manifests;
pub mod pki;
pub mod prepare;
pub mod rsagen;
pub mod yaml;

use std::fmt;

/// One file a control-plane join writes: its node path (absolute, under the install root),
/// mode and contents. Private keys are marked `secret` and their contents never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeFile {
    pub path: String,
    pub mode: u32,
    pub contents: Vec<u8>,
    pub secret: bool,
}

impl NodeFile {
    pub fn new(path: impl Into<String>, mode: u32, contents: Vec<u8>) -> Self {
        Self {
            path: path.into(),
            mode,
            contents,
            secret: false,
        }
    }

    pub fn secret(path: impl Into<String>, contents: Vec<u8>) -> Self {
        Self {
            path: path.into(),
            mode: 0o600,
            contents,
            secret: true,
        }
    }
}

impl fmt::Debug for NodeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("NodeFile");
        d.field("path", &self.path)
            .field("mode", &format_args!("{:04o}", self.mode));
        if self.secret {
            d.field(
                "contents",
                &format_args!("<redacted, {} bytes>", self.contents.len()),
            );
        } else {
            d.field("contents", &String::from_utf8_lossy(&self.contents));
        }
        d.finish()
    }
}

/// `dir` joined with `name` the way Go's `filepath.Join` does for the absolute, clean paths of
/// a ClusterConfiguration (`/etc/kubernetes/pki` + `ca.crt`).
pub(crate) fn join_path(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}
