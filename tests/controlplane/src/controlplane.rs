//! The control-plane side of the cluster: what a `kubeadm init --upload-certs` cluster offers to
//! a node that joins with `--control-plane --certificate-key`, and the version rules of it.
//!
//! Version rules, each from kubernetes/kubernetes `cmd/kubeadm/app/...` (the search index held
//! one version of most files, not every tag: "read" = read in source, with the version it was
//! read at when known; "PR n" = the pull request whose release note states the change; rules
//! without either are marked inferred):
//!
//! | rule | versions | source |
//! |---|---|---|
//! | admin.conf user `kubernetes-admin` in `system:masters` | ≤ 1.28 | `phases/kubeconfig`; v1.24 capture |
//! | … in `kubeadm:cluster-admins`, bound to `cluster-admin` by a ClusterRoleBinding; `super-admin.conf` (`kubernetes-super-admin`, `system:masters`) on the init node | ≥ 1.29 | PR 121305 (KEP-4214) |
//! | `ClusterStatus` (apiEndpoints per control-plane node) in `kubeadm-config` | ≤ 1.21 | PR 101915 removed it in 1.22 |
//! | etcd Pods annotated `kubeadm.kubernetes.io/etcd.advertise-client-urls`, kube-apiserver Pods `kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint`; etcd endpoints read from the annotation (Pods `component=etcd,tier=control-plane` in kube-system), ClusterStatus the fallback while it exists | ≥ 1.18 | PR 87656 (release note names both annotations); `util/etcd/etcd.go` read (v1.19/1.20 era) |
//! | control-plane labels: `node-role.kubernetes.io/master` | ≤ 1.23 | `phases/markcontrolplane` read (1.21–1.23 era); PR 107533 |
//! | … `node-role.kubernetes.io/control-plane` | ≥ 1.20 | PR 107533 / KEP-2067 (first stage 1.20) |
//! | … `node.kubernetes.io/exclude-from-external-load-balancers` | ≥ 1.21 | PR 98269 |
//! | taint `node-role.kubernetes.io/master:NoSchedule` | ≤ 1.24 | PR 107533 (1.24 adds the new one next to it), removed in 1.25 |
//! | taint `node-role.kubernetes.io/control-plane:NoSchedule` | ≥ 1.24 | PR 107533 |
//! | marking: GET the Node (until it has `kubernetes.io/hostname`), then a strategic-merge PATCH from a two-way diff, with the admin.conf client | all | `util/apiclient` `PatchNodeOnce` read; `cmd/phases/join` |
//! | etcd learner by default (`EtcdLearnerMode`): no learner ≤ 1.26, gate off 1.27–1.28, on 1.29–1.31, always ≥ 1.32 | | PR 120228 (beta), PR 126374 (GA) |
//!
//! The etcd gateway's shapes and errors are etcd's (`server/etcdserver/api/v3rpc/member.go`,
//! `api/v3rpc/rpctypes/error.go`, read; the grpc-gateway v1 error body and status mapping as
//! etcd 3.4/3.5 ship it, inferred from grpc-gateway's `DefaultHTTPError`).

use crate::etcd::EtcdError;
use crate::pki::{self, Ca};
use crate::version::ServerVersion;
use crate::{der, Error};
use std::time::{Duration, SystemTime};

/// The group of admin.conf from v1.29 (`kubeadmconstants.ClusterAdminsGroupAndClusterRoleBinding`).
pub const CLUSTER_ADMINS_GROUP: &str = "kubeadm:cluster-admins";
/// Annotation of the etcd static Pods.
pub const ETCD_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";
/// Annotation of the kube-apiserver static Pods.
pub const APISERVER_ANNOTATION: &str =
    "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";

/// A cluster whose first control plane ran `kubeadm init` (by default with `--upload-certs`).
/// Its `Debug` never shows the certificate key.
#[derive(Clone)]
pub struct ControlPlane {
    /// The key of `kube-system/kubeadm-certs`, 64 hex digits. `None`: the certificates were
    /// never uploaded (no Secret, no Role: a bootstrap token gets 403).
    pub certificate_key: Option<String>,
    /// Lifetime of the token that owns the Secret (kubeadm: 2 h). When it ends, the Secret is
    /// gone (404).
    pub certs_ttl: Duration,
    pub etcd: EtcdTopology,
    /// What `kubeadm-config`'s ClusterConfiguration says beyond the defaults.
    pub cluster: ClusterSpec,
    /// The node `kubeadm init` ran on: its Node, its static Pods, its etcd member.
    pub first_node: String,
    /// The fake etcd's behaviour (stacked etcd only).
    pub etcd_options: EtcdOptions,
    /// The kubelet of a joined node registers its Node this long after its client certificate
    /// is issued (`None`: only [`crate::Handle::register_node`] creates Nodes).
    pub register_nodes_after: Option<Duration>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field(
                "certificate_key",
                &self.certificate_key.as_ref().map(|_| "<redacted>"),
            )
            .field("certs_ttl", &self.certs_ttl)
            .field("etcd", &self.etcd)
            .field("cluster", &self.cluster)
            .field("first_node", &self.first_node)
            .field("etcd_options", &self.etcd_options)
            .field("register_nodes_after", &self.register_nodes_after)
            .finish()
    }
}

impl Default for ControlPlane {
    fn default() -> Self {
        ControlPlane {
            certificate_key: None,
            certs_ttl: crate::copycerts::DEFAULT_TTL,
            etcd: EtcdTopology::default(),
            cluster: ClusterSpec::default(),
            first_node: "cp-1".to_string(),
            etcd_options: EtcdOptions::default(),
            register_nodes_after: None,
        }
    }
}

impl ControlPlane {
    /// Certificates uploaded with this key (`kubeadm init --upload-certs --certificate-key`).
    pub fn with_certificate_key(key: &str) -> ControlPlane {
        ControlPlane {
            certificate_key: Some(key.to_string()),
            ..ControlPlane::default()
        }
    }

    /// Certificates uploaded with a fresh random key (`kubeadm init --upload-certs`).
    pub fn uploaded() -> ControlPlane {
        Self::with_certificate_key(&crate::copycerts::CertificateKey::generate().to_hex())
    }
}

/// Where etcd runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdTopology {
    /// etcd on each control-plane node (kubeadm's default): the etcd CA travels in
    /// kubeadm-certs and a joining node adds itself as a member.
    Stacked(LocalEtcd),
    /// etcd elsewhere: only the client files travel (empty entries when there are none).
    External(ExternalEtcd),
}

impl Default for EtcdTopology {
    fn default() -> Self {
        EtcdTopology::Stacked(LocalEtcd::default())
    }
}

/// `etcd.local` of the ClusterConfiguration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEtcd {
    pub data_dir: String,
    pub image_tag: Option<String>,
    pub extra_args: Vec<(String, String)>,
    pub server_cert_sans: Vec<String>,
    pub peer_cert_sans: Vec<String>,
}

impl Default for LocalEtcd {
    fn default() -> Self {
        LocalEtcd {
            data_dir: "/var/lib/etcd".to_string(),
            image_tag: None,
            extra_args: Vec::new(),
            server_cert_sans: Vec::new(),
            peer_cert_sans: Vec::new(),
        }
    }
}

/// `etcd.external` of the ClusterConfiguration. With `tls`, the three files exist on the
/// init node (an etcd CA and a client certificate this server makes) and travel in
/// kubeadm-certs; without, the paths are empty and so are the three entries (plain http, as
/// in the v1.24 capture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalEtcd {
    pub endpoints: Vec<String>,
    pub tls: bool,
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
}

impl ExternalEtcd {
    /// External etcd over TLS with the usual file locations.
    pub fn tls(endpoints: &[&str]) -> ExternalEtcd {
        ExternalEtcd {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            tls: true,
            ca_file: "/etc/kubernetes/pki/etcd/ca.crt".to_string(),
            cert_file: "/etc/kubernetes/pki/apiserver-etcd-client.crt".to_string(),
            key_file: "/etc/kubernetes/pki/apiserver-etcd-client.key".to_string(),
        }
    }

    /// External etcd over plain http: no files.
    pub fn plain(endpoints: &[&str]) -> ExternalEtcd {
        ExternalEtcd {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            tls: false,
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
        }
    }
}

/// The parts of the ClusterConfiguration a control-plane join reads. The defaults are what
/// the worker-only server always served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// `host:port`; `None`: this server's endpoint (or the host:port of `server_url`).
    pub control_plane_endpoint: Option<String>,
    pub service_subnet: String,
    pub pod_subnet: Option<String>,
    pub dns_domain: String,
    pub certificates_dir: String,
    pub cert_sans: Vec<String>,
    pub api_server_extra_args: Vec<(String, String)>,
    pub controller_manager_extra_args: Vec<(String, String)>,
    pub scheduler_extra_args: Vec<(String, String)>,
    /// `featureGates` (besides `UnversionedKubeletConfigMap`, which has its own field).
    pub feature_gates: Vec<(String, bool)>,
    /// `encryptionAlgorithm` (v1beta4 only); `None`: `RSA-2048`.
    pub encryption_algorithm: Option<String>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            control_plane_endpoint: None,
            service_subnet: "10.96.0.0/12".to_string(),
            pod_subnet: Some("10.244.0.0/16".to_string()),
            dns_domain: "cluster.local".to_string(),
            certificates_dir: "/etc/kubernetes/pki".to_string(),
            cert_sans: Vec::new(),
            api_server_extra_args: Vec::new(),
            controller_manager_extra_args: Vec::new(),
            scheduler_extra_args: Vec::new(),
            feature_gates: Vec::new(),
            encryption_algorithm: None,
        }
    }
}

/// How the fake etcd behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// An added member's etcd "starts" (and, for a learner, catches up with the leader) this
    /// long after `member add`; `None`: never, until [`crate::Handle::etcd_member_started`].
    /// Until then it counts as not started for etcd's quorum checks and a learner cannot be
    /// promoted ("…which is in sync with leader").
    pub member_start: Option<Duration>,
    /// The first N promotes are refused as not in sync with the leader, whatever the state.
    pub promote_not_ready: u32,
    /// `member add` is refused with this error.
    pub refuse_add: Option<EtcdRefusal>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            member_start: Some(Duration::ZERO),
            promote_not_ready: 0,
            refuse_add: None,
        }
    }
}

/// A refusal of `member add`: `count` times (`None`: every time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdRefusal {
    pub error: EtcdError,
    pub count: Option<u32>,
}

/// What kubeadm of one version does for a control-plane join, as this server models it (see
/// the module table for sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeadmRules {
    /// `v1.24.0`.
    pub version: String,
    /// The O of admin.conf's `kubernetes-admin` certificate.
    pub admin_group: &'static str,
    /// `super-admin.conf` exists on the init node (a join does not write it).
    pub super_admin: bool,
    /// Labels the mark-control-plane phase sets (value "").
    pub control_plane_labels: Vec<&'static str>,
    /// Taint keys the join adds, each with effect `NoSchedule`.
    pub control_plane_taints: Vec<&'static str>,
    /// kubeadm adds a joining etcd member as a learner (then promotes it) by default.
    pub etcd_learner: bool,
    /// `kubeadm-config` holds a `ClusterStatus`.
    pub cluster_status: bool,
    /// Static Pods carry the endpoint annotations.
    pub pod_annotations: bool,
}

/// The rules for `version` (`v1.28.7`, `1.28`).
pub fn kubeadm_rules(version: &str) -> Result<KubeadmRules, Error> {
    Ok(rules(&ServerVersion::parse(version)?))
}

pub(crate) fn rules(v: &ServerVersion) -> KubeadmRules {
    let m = if v.major == 1 { v.minor } else { u32::MAX };
    let mut labels = Vec::new();
    if m <= 23 {
        labels.push("node-role.kubernetes.io/master");
    }
    if m >= 20 {
        labels.push("node-role.kubernetes.io/control-plane");
    }
    if m >= 21 {
        labels.push("node.kubernetes.io/exclude-from-external-load-balancers");
    }
    let mut taints = Vec::new();
    if m <= 24 {
        taints.push("node-role.kubernetes.io/master");
    }
    if m >= 24 {
        taints.push("node-role.kubernetes.io/control-plane");
    }
    KubeadmRules {
        version: v.text.clone(),
        admin_group: if m >= 29 {
            CLUSTER_ADMINS_GROUP
        } else {
            crate::auth::MASTERS
        },
        super_admin: m >= 29,
        control_plane_labels: labels,
        control_plane_taints: taints,
        etcd_learner: m >= 29,
        cluster_status: m <= 21,
        pod_annotations: m >= 18,
    }
}

/// The shared PKI of the control plane besides the cluster CA: what `kubeadm init` put in
/// `/etc/kubernetes/pki` and `upload-certs` encrypts.
pub(crate) struct ControlPlanePki {
    pub front_proxy_ca: Ca,
    pub sa_key_pem: String,
    pub sa_pub_pem: String,
    /// Stacked: the etcd CA (which also signs the gateway's serving certificate).
    pub etcd_ca: Option<Ca>,
    /// External with TLS: (CA PEM, client certificate PEM, client key PEM).
    pub external: Option<(String, String, String)>,
}

impl std::fmt::Debug for ControlPlanePki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlanePki").finish_non_exhaustive()
    }
}

impl ControlPlanePki {
    pub(crate) fn generate(
        topology: &EtcdTopology,
        kind: pki::CaKeyType,
    ) -> Result<ControlPlanePki, Error> {
        let now = SystemTime::now();
        let pki_err = |e: pki::PkiError| Error::Pki(e.to_string());
        let front_proxy_ca = Ca::generate_with("front-proxy-ca", now, kind).map_err(pki_err)?;
        let (sa_key_pem, sa_pub_pem) = rsa_key_pair()?;
        let (etcd_ca, external) = match topology {
            EtcdTopology::Stacked(_) => (
                Some(Ca::generate_with("etcd-ca", now, kind).map_err(pki_err)?),
                None,
            ),
            EtcdTopology::External(x) if x.tls => {
                let ca = Ca::generate_with("etcd-ca", now, kind).map_err(pki_err)?;
                let (cert, key) = ca
                    .client_cert("kube-apiserver-etcd-client", &[])
                    .map_err(pki_err)?;
                (None, Some((ca.pem(), cert, key)))
            }
            EtcdTopology::External(_) => (None, None),
        };
        Ok(ControlPlanePki {
            front_proxy_ca,
            sa_key_pem,
            sa_pub_pem,
            etcd_ca,
            external,
        })
    }

    /// kubeadm's `certsToTransfer` with the file contents (names relative to
    /// `certificatesDir`, `/` kept; external files by their entry names), absent files empty.
    pub(crate) fn files(&self, ca: &Ca, topology: &EtcdTopology) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![
            ("ca.crt".to_string(), ca.pem().into_bytes()),
            ("ca.key".to_string(), ec_private_key_pem(ca).into_bytes()),
            (
                "front-proxy-ca.crt".to_string(),
                self.front_proxy_ca.pem().into_bytes(),
            ),
            (
                "front-proxy-ca.key".to_string(),
                ec_private_key_pem(&self.front_proxy_ca).into_bytes(),
            ),
            ("sa.key".to_string(), self.sa_key_pem.clone().into_bytes()),
            ("sa.pub".to_string(), self.sa_pub_pem.clone().into_bytes()),
        ];
        match topology {
            EtcdTopology::Stacked(_) => {
                if let Some(etcd) = &self.etcd_ca {
                    out.push(("etcd/ca.crt".to_string(), etcd.pem().into_bytes()));
                    out.push((
                        "etcd/ca.key".to_string(),
                        ec_private_key_pem(etcd).into_bytes(),
                    ));
                }
            }
            EtcdTopology::External(_) => {
                let (ca, cert, key) = self.external.clone().unwrap_or_default();
                out.push(("external-etcd-ca.crt".to_string(), ca.into_bytes()));
                out.push(("external-etcd.crt".to_string(), cert.into_bytes()));
                out.push(("external-etcd.key".to_string(), key.into_bytes()));
            }
        }
        out
    }
}

/// A CA key as kubeadm writes it: for ECDSA `EC PRIVATE KEY` (SEC 1, Go's
/// `x509.MarshalECPrivateKey`: version 1, the scalar, [0] the curve, [1] the public key), for
/// RSA `RSA PRIVATE KEY` (PKCS#1).
pub(crate) fn ec_private_key_pem(ca: &Ca) -> String {
    if ca.is_rsa() {
        return rsa_private_key_pem(ca);
    }
    let (scalar, public) = key_parts(ca);
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let body = der::seq(&[
        &der::uint(&[1]),
        &der::octets(&scalar),
        &der::tlv(0xa0, &der::oid(P256)),
        &der::tlv(0xa1, &der::bits(0, &public)),
    ]);
    pki::pem_encode("EC PRIVATE KEY", &body)
}

/// An RSA CA key as kubeadm writes it: `RSA PRIVATE KEY` (PKCS#1, the private key inside
/// PKCS#8's OCTET STRING).
fn rsa_private_key_pem(ca: &Ca) -> String {
    let (pkcs8, _) = ca.key_material();
    let pkcs1 = (|| {
        let (_, body, _) = der_read(&pkcs8)?;
        let (_, _version, rest) = der_read(body)?;
        let (_, _alg, rest) = der_read(rest)?;
        let (_, octets, _) = der_read(rest)?;
        Some(octets.to_vec())
    })()
    .unwrap_or_default();
    pki::pem_encode("RSA PRIVATE KEY", &pkcs1)
}

/// The private scalar and the public point of a CA's P-256 key (the scalar read out of
/// PKCS#8: `SEQUENCE { version, algorithm, OCTET STRING { ECPrivateKey } }`).
fn key_parts(ca: &Ca) -> (Vec<u8>, Vec<u8>) {
    let (pkcs8, public) = ca.key_material();
    let scalar = (|| {
        let (_, body, _) = der_read(&pkcs8)?;
        let (_, _version, rest) = der_read(body)?;
        let (_, _alg, rest) = der_read(rest)?;
        let (_, octets, _) = der_read(rest)?;
        let (_, ec, _) = der_read(octets)?;
        let (_, _v, rest) = der_read(ec)?;
        let (_, scalar, _) = der_read(rest)?;
        Some(scalar.to_vec())
    })()
    .unwrap_or_default();
    (scalar, public)
}

/// One DER TLV: (tag, content, rest); short and long definite lengths.
fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, tail) = rest.split_at(n);
        rest = tail;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, tail) = rest.split_at(len);
    Some((tag, content, tail))
}

/// The service-account key pair kubeadm makes (RSA 2048): `RSA PRIVATE KEY` (PKCS#1) and
/// `PUBLIC KEY` (PKIX), as in the v1.24 capture's `sa.pub`.
fn rsa_key_pair() -> Result<(String, String), Error> {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
    let fail = |e: String| Error::Pki(format!("generating the service-account key: {e}"));
    let pkcs8 = pki::rsa_2048_pkcs8().map_err(|e| fail(e.to_string()))?;
    let key = rsa::PrivateKey::from_pkcs8_der(&pkcs8).map_err(|e| fail(e.to_string()))?;
    let private = key.to_pkcs1_der().map_err(|e| fail(e.to_string()))?;
    let public = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| fail(e.to_string()))?;
    Ok((
        pki::pem_encode("RSA PRIVATE KEY", private.as_bytes()),
        pki::pem_encode("PUBLIC KEY", public.as_bytes()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str) -> KubeadmRules {
        kubeadm_rules(v).unwrap()
    }

    #[test]
    fn marks_follow_the_master_rename() {
        assert_eq!(
            r("1.19").control_plane_labels,
            ["node-role.kubernetes.io/master"]
        );
        assert_eq!(
            r("1.23").control_plane_labels,
            [
                "node-role.kubernetes.io/master",
                "node-role.kubernetes.io/control-plane",
                "node.kubernetes.io/exclude-from-external-load-balancers"
            ]
        );
        assert_eq!(
            r("1.23").control_plane_taints,
            ["node-role.kubernetes.io/master"]
        );
        assert_eq!(
            r("1.24").control_plane_labels,
            [
                "node-role.kubernetes.io/control-plane",
                "node.kubernetes.io/exclude-from-external-load-balancers"
            ]
        );
        assert_eq!(
            r("1.24").control_plane_taints,
            [
                "node-role.kubernetes.io/master",
                "node-role.kubernetes.io/control-plane"
            ]
        );
        assert_eq!(
            r("1.25").control_plane_taints,
            ["node-role.kubernetes.io/control-plane"]
        );
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let key = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
        let cp = ControlPlane::with_certificate_key(key);
        let config = crate::Config {
            control_plane: Some(cp.clone()),
            ..crate::Config::default()
        };
        for shown in [format!("{cp:?}"), format!("{config:?}")] {
            assert!(!shown.contains("a0be1615"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    #[test]
    fn admins_status_and_learners() {
        assert_eq!(r("1.28").admin_group, "system:masters");
        assert_eq!(r("1.29").admin_group, CLUSTER_ADMINS_GROUP);
        assert!(r("1.21").cluster_status && !r("1.22").cluster_status);
        assert!(!r("1.17").pod_annotations && r("1.18").pod_annotations);
        assert!(!r("1.28").etcd_learner && r("1.29").etcd_learner);
    }

    #[test]
    fn ca_keys_are_sec1_and_match_the_certificate() {
        let ca = Ca::generate("front-proxy-ca", SystemTime::now()).unwrap();
        let pem = ec_private_key_pem(&ca);
        let (label, der) = pki::pem_decode_first(pem.as_bytes()).unwrap();
        assert_eq!(label, "EC PRIVATE KEY");
        // ring accepts the pair only if the scalar and the public key belong together.
        let (scalar, public) = key_parts(&ca);
        assert!(
            ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &scalar,
                &public,
                &ring::rand::SystemRandom::new(),
            )
            .is_ok()
        );
        assert!(der.windows(scalar.len()).any(|w| w == scalar.as_slice()));
    }
}
