//! The node's key and its certificate signing request (spec §5.1, §5.2).
//!
//! The key is persisted (0600) before the CSR is sent, at the legacy kubelet's
//! `kubelet-client.key.tmp`, and reused when present: together with the deterministic name
//! `node-csr-<digest>` of (public key, subject, usages) this makes a join that was interrupted
//! between POST and install resume with the *same* CSR instead of leaving an orphan behind.

use super::{api_error, Cluster, Error};
use crate::fs::atomic;
use crate::fs::root::Root;
use crate::install::{self, KEY_TMP};
use crate::kube::types::{
    ByteString, CertificateSigningRequest, CertificateSigningRequestSpec, ObjectMeta,
};
use base64::Engine as _;
use sha2::{Digest as _, Sha512_256};
use std::time::SystemTime;

/// The signer that issues kubelet client certificates.
pub const SIGNER_NAME: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Usages of a kubelet from v1.27 for a non-RSA key (`DefaultKubeletClientGetUsages`). What a
/// join asks for depends on the cluster's version: [`crate::versions::ClusterRules::usages`].
pub const USAGES: [&str; 2] = ["digital signature", "client auth"];
/// The organisation every node certificate carries.
pub const NODES_GROUP: &str = "system:nodes";

/// `system:node:<name>`.
pub fn common_name(node: &str) -> String {
    format!("system:node:{node}")
}

/// The node's private key (ECDSA P-256). Never printed.
pub struct NodeKey(rcgen::KeyPair);

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    /// A fresh P-256 key.
    pub fn generate() -> Result<Self, Error> {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map(Self)
            .map_err(|e| Error::KeyGen(e.to_string()))
    }

    /// A P-256 key from PKCS#8 PEM; `None` for anything else.
    pub fn from_pem(pem: &str) -> Option<Self> {
        let k = rcgen::KeyPair::from_pem(pem).ok()?;
        (k.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256).then_some(Self(k))
    }

    /// PKCS#8 `PRIVATE KEY` PEM (what goes into the kubelet's client PEM after the certificate).
    pub fn to_pem(&self) -> String {
        self.0.serialize_pem()
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        use rcgen::PublicKeyData as _;
        self.0.subject_public_key_info()
    }

    /// PEM `CERTIFICATE REQUEST` for `CN=system:node:<node>, O=system:nodes`, no SANs and no
    /// extensions, signed ECDSA-SHA256 (what the kubelet's `MakeCSRFromTemplate` produces).
    pub fn csr_pem(&self, node: &str) -> Result<String, Error> {
        let mut params = rcgen::CertificateParams::default();
        // The default DN carries a placeholder CN; start empty. O before CN, as Go orders RDNs.
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, NODES_GROUP);
        dn.push(rcgen::DnType::CommonName, common_name(node));
        params.distinguished_name = dn;
        params
            .serialize_request(&self.0)
            .and_then(|csr| csr.pem())
            .map_err(|e| Error::BuildCsr(e.to_string()))
    }
}

/// The legacy kubelet's deterministic CSR name (spec §5.2): SHA-512/256 over
/// `b64url(field) "|"` for the SPKI DER, the CN, each O and each usage.
pub fn digested_name(spki_der: &[u8], cn: &str, orgs: &[&str], usages: &[&str]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut h = Sha512_256::new();
    let mut feed = |bytes: &[u8]| {
        h.update(b64.encode(bytes).as_bytes());
        h.update(b"|");
    };
    feed(spki_der);
    feed(cn.as_bytes());
    for o in orgs {
        feed(o.as_bytes());
    }
    for u in usages {
        feed(u.as_bytes());
    }
    format!("node-csr-{}", b64.encode(h.finalize()))
}

/// Our CSR's name for `key`, `node` and the `usages` asked for (they are part of the digest, as
/// in the kubelet's, so a request for other usages is another request).
pub fn csr_name(key: &NodeKey, node: &str, usages: &[&str]) -> String {
    digested_name(&key.spki_der(), &common_name(node), &[NODES_GROUP], usages)
}

/// Loads the persisted key, or generates one and persists it (0600) before returning, so a key
/// whose CSR reaches the server is always on disk. With `persist` false (dry run) nothing is
/// written. Returns whether an existing key was reused.
pub fn load_or_generate_key(root: &Root, persist: bool) -> Result<(NodeKey, bool), Error> {
    // Read inside the root (a planted symlink cannot make it read a key from elsewhere).
    match root.read_to_string(KEY_TMP) {
        Ok(pem) => match NodeKey::from_pem(&pem) {
            Some(k) => {
                crate::info!("reusing the node key from an earlier attempt ({KEY_TMP})");
                return Ok((k, true));
            }
            None => crate::warn!("{KEY_TMP} is not a P-256 PKCS#8 key; generating a new one"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => crate::warn!("cannot read {KEY_TMP} ({e}); generating a new key"),
    }
    let key = NodeKey::generate()?;
    if persist {
        store_key(root, &key)?;
    }
    Ok((key, false))
}

/// Writes the key to `KEY_TMP`, 0600.
pub fn store_key(root: &Root, key: &NodeKey) -> Result<(), Error> {
    install::ensure_dirs_for(root, KEY_TMP).map_err(Error::StoreKey)?;
    atomic::write_file(
        root,
        std::path::Path::new(KEY_TMP),
        key.to_pem().as_bytes(),
        0o600,
        0o755,
    )
    .map_err(Error::StoreKey)?;
    crate::fs::failpoint::hit("key.persisted", KEY_TMP);
    Ok(())
}

/// The CSR object we POST.
pub fn csr_object(name: &str, csr_pem: &str, usages: &[&str]) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.as_bytes().to_vec()),
            signer_name: SIGNER_NAME.to_string(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
        },
        ..Default::default()
    }
}

/// The CSR on the server that we wait for.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub name: String,
    /// UID of the object we created or adopted; a different UID later means someone replaced it.
    pub uid: Option<String>,
    /// An object existed with our name and was adopted (a resumed join).
    pub reused: bool,
    /// The object as the POST (or, when adopted, the GET) returned it: its state and the
    /// resourceVersion the wait's watch starts from, so no LIST is needed first.
    pub observed: Option<Box<CertificateSigningRequest>>,
    /// The usages asked for.
    pub usages: Vec<String>,
}

/// `certificates.k8s.io/v1` CertificateSigningRequests.
pub const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// Why an existing CSR with our name cannot be adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incompatible {
    /// Decided by an admin or the signer: adopting it would only fail later.
    Denied {
        reason: String,
        message: String,
    },
    Failed {
        reason: String,
        message: String,
    },
    /// Not ours, or its certificate is no longer usable: a new key (and name) is needed.
    Other(String),
}

fn condition<'a>(csr: &'a CertificateSigningRequest, ty: &str) -> Option<(&'a str, &'a str)> {
    csr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty && c.status != "False")
        .map(|c| {
            (
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or(""),
            )
        })
}

/// client-go's `ensureCompatible`, plus refusing decided requests: same subject, same signer,
/// requested for our public key with a valid self-signature, and an issued certificate (if
/// any) not yet expired at `now`.
pub fn check_compatible(
    existing: &CertificateSigningRequest,
    key: &NodeKey,
    node: &str,
    now: SystemTime,
) -> Result<(), Incompatible> {
    let other = |s: &str| Incompatible::Other(s.to_string());
    if let Some((reason, message)) = condition(existing, "Denied") {
        return Err(Incompatible::Denied {
            reason: reason.into(),
            message: message.into(),
        });
    }
    if let Some((reason, message)) = condition(existing, "Failed") {
        return Err(Incompatible::Failed {
            reason: reason.into(),
            message: message.into(),
        });
    }
    if existing.spec.signer_name != SIGNER_NAME {
        return Err(other("it asks a different signer"));
    }
    let ders = crate::pki::pem::blocks_of(&existing.spec.request.0, "CERTIFICATE REQUEST");
    let der = ders
        .first()
        .ok_or_else(|| other("its request is not a PEM certificate request"))?;
    let req = crate::pki::x509::parse_csr(der).map_err(|_| other("its request does not parse"))?;
    if req.spki.raw != key.spki_der().as_slice() {
        return Err(other("it was made for a different key"));
    }
    if req.verify_signature().is_err() {
        return Err(other(
            "its request's signature does not verify under our key",
        ));
    }
    let cns = req.subject.values_of(crate::pki::x509::OID_CN);
    let orgs = req.subject.values_of(crate::pki::x509::OID_O);
    if cns != [common_name(node).as_str()] || orgs != [NODES_GROUP] {
        return Err(other("it asks for a different subject"));
    }
    if let Some(cert) = existing
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
    {
        if !cert.0.is_empty() {
            let ders = crate::pki::pem::blocks_of(&cert.0, "CERTIFICATE");
            let leaf = ders
                .first()
                .ok_or_else(|| other("its certificate is not PEM"))?;
            let c = crate::pki::x509::parse_certificate(leaf)
                .map_err(|_| other("its certificate does not parse"))?;
            let now = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if c.validity.not_after.timestamp() <= now {
                return Err(other("its certificate has expired"));
            }
        }
    }
    Ok(())
}

/// POSTs our CSR; on `AlreadyExists` adopts the existing one when compatible (a resumed join).
/// An existing one that is merely incompatible (another key, expired certificate) is replaced
/// by a new key and name, once; a denied or failed one is reported as such.
pub async fn submit(
    cluster: &Cluster,
    root: &Root,
    key: &mut NodeKey,
    node: &str,
    usages: &[&str],
) -> Result<Submitted, Error> {
    let client = &cluster.client;
    let owned = || usages.iter().map(|u| u.to_string()).collect::<Vec<_>>();
    for attempt in 0..2 {
        let name = csr_name(key, node, usages);
        let obj = csr_object(&name, &key.csr_pem(node)?, usages);
        let created = client
            .post::<_, CertificateSigningRequest>(CSR_PATH, &obj, "CertificateSigningRequest")
            .await;
        match created {
            Ok(created) => {
                crate::fs::failpoint::hit("csr.posted", "node-csr-*");
                crate::info!(
                    "submitted certificate signing request {name} for {}",
                    common_name(node)
                );
                return Ok(Submitted {
                    name,
                    uid: created.metadata.uid.clone(),
                    reused: false,
                    observed: Some(Box::new(created)),
                    usages: owned(),
                });
            }
            Err(e) if e.status_code() == Some(409) => {
                let existing = client
                    .get::<CertificateSigningRequest>(
                        &format!("{CSR_PATH}/{name}"),
                        "CertificateSigningRequest",
                    )
                    .await
                    .map_err(|e| {
                        api_error(
                            format!("getting certificate signing request {name}"),
                            &cluster.server,
                            &e,
                        )
                    })?;
                match check_compatible(&existing, key, node, SystemTime::now()) {
                    Ok(()) => {
                        crate::info!("certificate signing request {name} already exists for this key; resuming with it");
                        return Ok(Submitted {
                            name,
                            uid: existing.metadata.uid.clone(),
                            reused: true,
                            observed: Some(Box::new(existing)),
                            usages: owned(),
                        });
                    }
                    Err(Incompatible::Denied { reason, message }) => {
                        return Err(Error::Denied {
                            name,
                            reason,
                            message,
                        })
                    }
                    Err(Incompatible::Failed { reason, message }) => {
                        return Err(Error::Failed {
                            name,
                            reason,
                            message,
                        })
                    }
                    Err(Incompatible::Other(why)) if attempt == 0 => {
                        crate::warn!(
                            "certificate signing request {name} exists but {why}; using a new key"
                        );
                        *key = NodeKey::generate()?;
                        store_key(root, key)?;
                    }
                    Err(Incompatible::Other(why)) => return Err(Error::CsrConflict { name, why }),
                }
            }
            Err(e) => {
                return Err(api_error(
                    format!("creating certificate signing request {name}"),
                    &cluster.server,
                    &e,
                ))
            }
        }
    }
    // Unreachable in practice: the second attempt always returns.
    Err(Error::CsrConflict {
        name: csr_name(key, node, usages),
        why: "no usable name".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // Spec §11.6: SPKI of the RFC 6979 §A.2.5 P-256 key.
    const SPKI_HEX: &str = "3059301306072a8648ce3d020106082a8648ce3d0301070342000460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";

    #[test]
    fn digested_name_matches_the_spec_vector() {
        let spki = hex::decode(SPKI_HEX).unwrap();
        let cn = "system:node:worker-1";
        assert_eq!(
            digested_name(
                &spki,
                cn,
                &["system:nodes"],
                &["digital signature", "key encipherment", "client auth"]
            ),
            "node-csr--aBWq9T8-4cnk14mZ7lKWIt-EGV5toFg71oqjwpLqTA"
        );
        assert_eq!(
            digested_name(&spki, cn, &["system:nodes"], &USAGES),
            "node-csr-F5F-QQPnMrAvcAUWj0YT3oumnVd_q7IAN2Z8LV6Rdkk"
        );
        // And the pin of that key, as a check that the SPKI bytes are the spec's.
        assert_eq!(
            crate::pki::pin::CaPin::of_spki(&spki).to_string(),
            "sha256:5a7a78cca4a0f420d9bc62bb669c3c2759e39f723d3ae10dcbe0f0815a07ecd4"
        );
    }

    #[test]
    fn csr_has_exactly_our_subject_key_and_no_extensions() {
        use x509_parser::prelude::FromDer as _;
        let key = NodeKey::generate().unwrap();
        let pem = key.csr_pem("worker-1").unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let der = &crate::pki::pem::blocks_of(pem.as_bytes(), "CERTIFICATE REQUEST")[0];
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(der).unwrap();
        req.verify_signature().unwrap();
        let info = &req.certification_request_info;
        assert_eq!(
            info.subject.to_string(),
            "O=system:nodes, CN=system:node:worker-1"
        );
        assert_eq!(info.subject_pki.raw, key.spki_der().as_slice());
        assert!(req
            .requested_extensions()
            .is_none_or(|mut e| e.next().is_none()));
        assert_eq!(
            req.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.2",
            "ecdsa-with-SHA256"
        );
    }

    #[test]
    fn name_is_stable_for_a_key_and_differs_between_keys() {
        let a = NodeKey::generate().unwrap();
        let b = NodeKey::generate().unwrap();
        assert_eq!(
            csr_name(&a, "n", &USAGES),
            csr_name(&NodeKey::from_pem(&a.to_pem()).unwrap(), "n", &USAGES)
        );
        assert_ne!(csr_name(&a, "n", &USAGES), csr_name(&b, "n", &USAGES));
        assert_ne!(csr_name(&a, "n", &USAGES), csr_name(&a, "m", &USAGES));
        assert!(csr_name(&a, "n", &USAGES).starts_with("node-csr-"));
        // The usages are part of the name: a request for another set is another request.
        assert_ne!(
            csr_name(&a, "n", &USAGES),
            csr_name(&a, "n", crate::versions::USAGES_WITH_KEY_ENCIPHERMENT)
        );
        assert_eq!(format!("{a:?}"), "NodeKey(<redacted>)");
    }

    #[test]
    fn object_matches_the_captured_request_shape() {
        let captured: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/apiserver/csr-request-body.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let ours = serde_json::to_value(csr_object("node-csr-x", "PEM", &USAGES)).unwrap();
        assert_eq!(ours["apiVersion"], captured["apiVersion"]);
        assert_eq!(ours["kind"], captured["kind"]);
        assert_eq!(ours["spec"]["signerName"], captured["spec"]["signerName"]);
        assert_eq!(ours["spec"]["usages"], captured["spec"]["usages"]);
        assert_eq!(
            ours["spec"]["request"], "UEVN",
            "standard base64 of the PEM bytes"
        );
        assert_eq!(ours["metadata"], serde_json::json!({"name": "node-csr-x"}));
    }

    #[test]
    fn key_is_persisted_0600_and_reused() {
        use std::os::unix::fs::MetadataExt as _;
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let (k1, reused) = load_or_generate_key(&root, true).unwrap();
        assert!(!reused);
        let p = root.join(KEY_TMP).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let (k2, reused) = load_or_generate_key(&root, true).unwrap();
        assert!(reused);
        assert_eq!(k1.spki_der(), k2.spki_der());
        // Garbage is replaced, not fatal.
        std::fs::write(&p, "junk").unwrap();
        let (k3, reused) = load_or_generate_key(&root, true).unwrap();
        assert!(!reused);
        assert_ne!(k3.spki_der(), k1.spki_der());
        // Dry run writes nothing.
        let t2 = tempfile::tempdir().unwrap();
        load_or_generate_key(&Root::new(t2.path()), false).unwrap();
        assert_eq!(std::fs::read_dir(t2.path()).unwrap().count(), 0);
    }

    fn existing(key: &NodeKey, node: &str) -> CertificateSigningRequest {
        csr_object(
            &csr_name(key, node, &USAGES),
            &key.csr_pem(node).unwrap(),
            &USAGES,
        )
    }

    #[test]
    fn compatibility_rules() {
        let now = SystemTime::now();
        let key = NodeKey::generate().unwrap();
        let other = NodeKey::generate().unwrap();
        assert_eq!(
            check_compatible(&existing(&key, "n"), &key, "n", now),
            Ok(())
        );
        assert!(
            matches!(check_compatible(&existing(&other, "n"), &key, "n", now), Err(Incompatible::Other(w)) if w.contains("different key"))
        );
        assert!(
            matches!(check_compatible(&existing(&key, "m"), &key, "n", now), Err(Incompatible::Other(w)) if w.contains("subject"))
        );
        let mut signer = existing(&key, "n");
        signer.spec.signer_name = "kubernetes.io/kube-apiserver-client".into();
        assert!(
            matches!(check_compatible(&signer, &key, "n", now), Err(Incompatible::Other(w)) if w.contains("signer"))
        );

        let denied: CertificateSigningRequest = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/apiserver/csr-denied.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            check_compatible(&denied, &key, "n", now),
            Err(Incompatible::Denied {
                reason: "KubectlDeny".into(),
                message: "This CSR was denied by kubectl certificate deny.".into()
            })
        );

        // An issued certificate is checked for expiry: the captured one ends 2027-11-22.
        let issued: CertificateSigningRequest = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/apiserver/csr-issued.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let mut ours = existing(&key, "n");
        ours.status = issued.status.clone();
        let before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000); // 2027-01
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000); // 2030
        assert_eq!(check_compatible(&ours, &key, "n", before), Ok(()));
        assert!(
            matches!(check_compatible(&ours, &key, "n", after), Err(Incompatible::Other(w)) if w.contains("expired"))
        );
    }
}
