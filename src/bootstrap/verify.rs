//! Checking the certificate the cluster returned before anything is installed.
//!
//! The API server relays whatever the signer (or anyone who can update CSR status) put into
//! `status.certificate`. Installing a certificate that is not for our key, not for our node
//! name, not from this cluster's CA or not valid now would leave a kubelet that cannot
//! authenticate, or one that authenticates as someone else; so each is refused.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::csr::{common_name, NODES_GROUP};
use crate::error::{Class, Classify};
use crate::pki::pem::blocks_of as pem_blocks;
use rustls::pki_types::{CertificateDer, UnixTime};

/// A certificate that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCert {
    /// Every `CERTIFICATE` block returned (leaf first), re-encoded as PEM.
    pub chain_pem: String,
    /// notBefore of the leaf, seconds since the Unix epoch. Names the client PEM, so a re-run
    /// that resumes the same CSR (and gets the same certificate) writes the same file.
    pub not_before: i64,
    /// notAfter of the leaf, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Why a returned certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("it holds no PEM CERTIFICATE block")]
    NotPem,
    #[error("it does not parse as X.509: {0}")]
    Parse(String),
    #[error("it certifies a different public key than the one this node generated")]
    WrongKey,
    #[error("its subject is {got:?}, expected \"O={NODES_GROUP}, CN={expected}\"")]
    WrongSubject { got: String, expected: String },
    #[error("it is not valid before {not_before} (check this machine's clock)")]
    NotYetValid { not_before: String },
    #[error("it expired at {not_after}")]
    Expired { not_after: String },
    #[error("it does not chain to the discovered cluster CA: {0}")]
    NotChained(String),
}

impl Classify for VerifyError {
    fn class(&self) -> Class {
        Class::Trust
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Checks `cert_pem` (the CSR's `status.certificate`) for the node `node` whose key has the
/// DER SubjectPublicKeyInfo `spki`, against the cluster CA bundle `ca_der`, at time `now`.
pub fn verify(
    cert_pem: &[u8],
    spki: &[u8],
    node: &str,
    ca_der: &[Vec<u8>],
    now: SystemTime,
) -> Result<VerifiedCert, VerifyError> {
    let ders = pem_blocks(cert_pem, "CERTIFICATE");
    let leaf_der = ders.first().ok_or(VerifyError::NotPem)?;
    let leaf = crate::pki::x509::parse_certificate(leaf_der)
        .map_err(|e| VerifyError::Parse(e.to_string()))?;

    if leaf.spki.raw != spki {
        return Err(VerifyError::WrongKey);
    }

    // Exactly one O and one CN, with our values: anything more (another group, say) would
    // grant this node more than a node should have.
    let expected = common_name(node);
    let subject = &leaf.subject;
    let mut orgs = Vec::new();
    let mut cns = Vec::new();
    let mut others = 0;
    for attr in subject.attributes() {
        let value = attr.as_str().unwrap_or("");
        match attr.oid {
            crate::pki::x509::OID_O => orgs.push(value),
            crate::pki::x509::OID_CN => cns.push(value),
            _ => others += 1,
        }
    }
    if others != 0 || orgs != [NODES_GROUP] || cns != [expected.as_str()] {
        return Err(VerifyError::WrongSubject {
            got: subject.to_string(),
            expected,
        });
    }

    let validity = leaf.validity;
    let now_s = unix(now);
    if now_s < validity.not_before.timestamp() {
        return Err(VerifyError::NotYetValid {
            not_before: validity.not_before.to_string(),
        });
    }
    if now_s >= validity.not_after.timestamp() {
        return Err(VerifyError::Expired {
            not_after: validity.not_after.to_string(),
        });
    }

    chains_to(leaf_der, &ders[1..], ca_der, now)?;

    let chain_pem = ders
        .iter()
        .map(|d| pem_encode("CERTIFICATE", d))
        .collect::<Vec<_>>()
        .concat();
    Ok(VerifiedCert {
        chain_pem,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// Signature chain (leaf → optional intermediates → one of the CAs), validity and the
/// client-auth usage, by webpki as a TLS server would check this node's certificate.
pub fn chains_to(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    ca_der: &[Vec<u8>],
    now: SystemTime,
) -> Result<(), VerifyError> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ca_der {
        roots.add(CertificateDer::from(der.clone())).map_err(|e| {
            VerifyError::NotChained(format!("the cluster CA is unusable as a trust anchor: {e}"))
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| VerifyError::NotChained(e.to_string()))?;
    let inter: Vec<CertificateDer<'static>> = intermediates
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let secs = u64::try_from(unix(now)).unwrap_or(0);
    verifier
        .verify_client_cert(
            &CertificateDer::from(leaf.to_vec()),
            &inter,
            UnixTime::since_unix_epoch(Duration::from_secs(secs)),
        )
        .map(|_| ())
        .map_err(|e| VerifyError::NotChained(e.to_string()))
}

pub use crate::pki::pem::pem_encode;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::csr::NodeKey;
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, PublicKeyData as _,
    };

    struct Ca {
        cert: rcgen::Certificate,
        issuer: rcgen::Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Ca {
            cert,
            issuer: rcgen::Issuer::new(p, key),
        }
    }

    fn at(y: i32) -> SystemTime {
        // Jan 1 of year y (good enough for fixtures: 365.25-day years from 1970).
        SystemTime::UNIX_EPOCH + Duration::from_secs(((y - 1970) as f64 * 365.25 * 86400.0) as u64)
    }

    /// Issues a client certificate for `spki` with `subject` (O, CN list), valid 2025..2035.
    fn issue(ca: &Ca, spki: &[u8], orgs: &[&str], cn: &str) -> String {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let pk = rcgen::SubjectPublicKeyInfo::from_der(spki).unwrap();
        p.signed_by(&pk, &ca.issuer).unwrap().pem()
    }

    fn setup() -> (Ca, NodeKey, Vec<Vec<u8>>) {
        let c = ca("kubernetes");
        let key = NodeKey::generate().unwrap();
        let ca_der = vec![c.cert.der().to_vec()];
        (c, key, ca_der)
    }

    #[test]
    fn accepts_a_proper_certificate() {
        let (c, key, ca_der) = setup();
        let pem = issue(
            &c,
            &key.spki_der(),
            &["system:nodes"],
            "system:node:worker-1",
        );
        let v = verify(
            pem.as_bytes(),
            &key.spki_der(),
            "worker-1",
            &ca_der,
            at(2030),
        )
        .unwrap();
        assert_eq!(v.chain_pem, pem.replace("\r\n", "\n"));
        assert_eq!(v.not_after, 2051222400);
    }

    #[test]
    fn refuses_another_key() {
        let (c, key, ca_der) = setup();
        let other = KeyPair::generate().unwrap();
        let pem = issue(
            &c,
            &other.subject_public_key_info(),
            &["system:nodes"],
            "system:node:worker-1",
        );
        assert_eq!(
            verify(
                pem.as_bytes(),
                &key.spki_der(),
                "worker-1",
                &ca_der,
                at(2030)
            ),
            Err(VerifyError::WrongKey)
        );
    }

    #[test]
    fn refuses_another_ca() {
        let (_, key, ca_der) = setup();
        let rogue = ca("kubernetes");
        let pem = issue(
            &rogue,
            &key.spki_der(),
            &["system:nodes"],
            "system:node:worker-1",
        );
        let e = verify(
            pem.as_bytes(),
            &key.spki_der(),
            "worker-1",
            &ca_der,
            at(2030),
        )
        .unwrap_err();
        assert!(matches!(e, VerifyError::NotChained(_)), "{e:?}");
        assert_eq!(e.class(), Class::Trust);
    }

    #[test]
    fn refuses_wrong_subjects() {
        let (c, key, ca_der) = setup();
        for (orgs, cn) in [
            (&["system:nodes"][..], "system:node:worker-2"),
            (
                &["system:nodes", "system:masters"][..],
                "system:node:worker-1",
            ),
            (&[][..], "system:node:worker-1"),
        ] {
            let pem = issue(&c, &key.spki_der(), orgs, cn);
            let e = verify(
                pem.as_bytes(),
                &key.spki_der(),
                "worker-1",
                &ca_der,
                at(2030),
            )
            .unwrap_err();
            assert!(
                matches!(e, VerifyError::WrongSubject { .. }),
                "{orgs:?} {cn}: {e:?}"
            );
        }
    }

    #[test]
    fn refuses_outside_validity_and_garbage() {
        let (c, key, ca_der) = setup();
        let pem = issue(
            &c,
            &key.spki_der(),
            &["system:nodes"],
            "system:node:worker-1",
        );
        assert!(matches!(
            verify(
                pem.as_bytes(),
                &key.spki_der(),
                "worker-1",
                &ca_der,
                at(2020)
            ),
            Err(VerifyError::NotYetValid { .. })
        ));
        assert!(matches!(
            verify(
                pem.as_bytes(),
                &key.spki_der(),
                "worker-1",
                &ca_der,
                at(2040)
            ),
            Err(VerifyError::Expired { .. })
        ));
        assert_eq!(
            verify(b"nope", &key.spki_der(), "worker-1", &ca_der, at(2030)),
            Err(VerifyError::NotPem)
        );
        let bad = pem_encode("CERTIFICATE", b"\x30\x03\x02\x01\x01");
        assert!(matches!(
            verify(
                bad.as_bytes(),
                &key.spki_der(),
                "worker-1",
                &ca_der,
                at(2030)
            ),
            Err(VerifyError::Parse(_))
        ));
    }

    #[test]
    fn the_captured_certificate_chains_to_the_captured_ca() {
        // csr-issued.json: issued by the real control plane whose CA is ca.crt.
        let dir = format!("{}/tests/fixtures/apiserver", env!("CARGO_MANIFEST_DIR"));
        let ca_der =
            crate::pki::pem::certs_from_pem(&std::fs::read(format!("{dir}/ca.crt")).unwrap())
                .unwrap();
        let csr: k8s_openapi::api::certificates::v1::CertificateSigningRequest =
            serde_json::from_str(
                &std::fs::read_to_string(format!("{dir}/csr-issued.json")).unwrap(),
            )
            .unwrap();
        let cert = csr.status.unwrap().certificate.unwrap().0;
        let leaf = &pem_blocks(&cert, "CERTIFICATE")[0];
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf).unwrap();
        let spki = parsed.tbs_certificate.subject_pki.raw.to_vec();
        let v = verify(&cert, &spki, "test-node", &ca_der, at(2027)).unwrap();
        assert!(v
            .chain_pem
            .starts_with("-----BEGIN CERTIFICATE-----\nMIICYTCCAUmgAwIBAgIQ"));
        // And not to another CA.
        let other = ca("kubernetes");
        assert!(matches!(
            verify(
                &cert,
                &spki,
                "test-node",
                &[other.cert.der().to_vec()],
                at(2027)
            ),
            Err(VerifyError::NotChained(_))
        ));
    }
}
