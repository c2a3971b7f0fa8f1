//! The CA: certificate facts and a signer for rcgen.

use super::der::*;
use super::PkiError;
use rcgen::{DistinguishedName, DnType, DnValue, PublicKeyData, SignatureAlgorithm, SigningKey};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use std::fmt;

pub(super) enum CaKey {
    Rsa(RsaKeyPair),
    EcdsaP256(EcdsaKeyPair, SystemRandom),
}

/// A CA certificate with its private key, ready to sign leaves.
pub struct Ca {
    pub(super) name: String,
    pub cert_pem: Vec<u8>,
    pub(super) subject: DistinguishedName,
    /// The CA's subjectKeyIdentifier (becomes the leaves' authorityKeyIdentifier).
    pub(super) ski: Option<Vec<u8>>,
    /// notBefore, seconds since the epoch.
    pub not_before: i64,
    signer: KeySigner,
}

/// A private key that signs for rcgen (RSA PKCS#1 v1.5 SHA-256 or ECDSA P-256 SHA-256).
pub struct KeySigner {
    key: CaKey,
    public_raw: Vec<u8>,
}

impl fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySigner(<redacted>)")
    }
}

impl KeySigner {
    /// Loads `RSA PRIVATE KEY`, `EC PRIVATE KEY` (P-256) or `PRIVATE KEY` (PKCS#8) PEM.
    pub fn from_pem(name: &str, key_pem: &[u8]) -> Result<Self, PkiError> {
        let bad = |why: &str| PkiError::BadKey {
            what: name.to_string(),
            why: why.to_string(),
        };
        let (label, kder) = crate::pki::pem::pem_blocks(key_pem)
            .into_iter()
            .find(|(l, _)| l.ends_with("PRIVATE KEY"))
            .ok_or_else(|| bad("no private key PEM block"))?;
        let key = match label {
            "RSA PRIVATE KEY" => {
                CaKey::Rsa(RsaKeyPair::from_der(&kder).map_err(|e| bad(&e.to_string()))?)
            }
            "EC PRIVATE KEY" => {
                let (scalar, public) = sec1_parts(&kder).ok_or_else(|| bad("malformed EC key"))?;
                let rng = SystemRandom::new();
                let kp = EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &scalar,
                    &public,
                    &rng,
                )
                .map_err(|e| bad(&e.to_string()))?;
                CaKey::EcdsaP256(kp, rng)
            }
            _ => match RsaKeyPair::from_pkcs8(&kder) {
                Ok(k) => CaKey::Rsa(k),
                Err(_) => {
                    let rng = SystemRandom::new();
                    CaKey::EcdsaP256(
                        EcdsaKeyPair::from_pkcs8(
                            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                            &kder,
                            &rng,
                        )
                        .map_err(|e| bad(&e.to_string()))?,
                        rng,
                    )
                }
            },
        };
        let public_raw = match &key {
            CaKey::Rsa(k) => k.public().as_ref().to_vec(),
            CaKey::EcdsaP256(k, _) => k.public_key().as_ref().to_vec(),
        };
        Ok(Self { key, public_raw })
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("name", &self.name)
            .field("not_before", &self.not_before)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Why a CA's subject cannot be carried over as the leaves' issuer.
#[derive(Debug, thiserror::Error)]
pub(super) enum SubjectError {
    #[error("an attribute of the subject is not text")]
    NotText,
    /// A PrintableString or IA5String attribute whose text that type does not allow.
    #[error(transparent)]
    String(rcgen::Error),
    #[error("an attribute type is not a valid OID")]
    BadOid,
}

/// The same string type the CA used for each attribute, so a leaf's issuer is byte-identical to
/// the CA's subject (Go's chain building matches the raw bytes).
pub(super) fn dn_from(
    name: &crate::pki::x509::Name<'_>,
) -> Result<DistinguishedName, SubjectError> {
    let mut dn = DistinguishedName::new();
    for a in name.attributes() {
        let text = a.as_str().ok_or(SubjectError::NotText)?;
        let value = match a.value.tag {
            0x13 => DnValue::PrintableString(
                rcgen::string::PrintableString::try_from(text).map_err(SubjectError::String)?,
            ),
            0x16 => DnValue::Ia5String(
                rcgen::string::Ia5String::try_from(text).map_err(SubjectError::String)?,
            ),
            _ => DnValue::Utf8String(text.to_string()),
        };
        let oid = oid_components(a.oid).ok_or(SubjectError::BadOid)?;
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

pub(super) fn oid_components(content: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    let mut v: u64 = 0;
    for (i, b) in content.iter().enumerate() {
        v = (v << 7) | (*b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if out.is_empty() {
                let (a, b) = if v < 80 {
                    (v / 40, v % 40)
                } else {
                    (2, v - 80)
                };
                out.push(a);
                out.push(b);
            } else {
                out.push(v);
            }
            v = 0;
        } else if i + 1 == content.len() {
            return None;
        }
    }
    Some(out)
}

/// Go's `asn1` marshalling picks PrintableString when every byte allows it, else UTF8String.
pub(super) fn go_dn_value(s: &str) -> DnValue {
    match rcgen::string::PrintableString::try_from(s) {
        Ok(p) => DnValue::PrintableString(p),
        Err(_) => DnValue::Utf8String(s.to_string()),
    }
}

impl Ca {
    /// Loads a CA from its PEM certificate and PEM private key (`RSA PRIVATE KEY`, `EC PRIVATE
    /// KEY` or `PRIVATE KEY`), as download-certs wrote them. `name` is for messages (`ca`).
    pub fn from_pem(name: &str, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, PkiError> {
        let what = format!("{name} certificate");
        let der = crate::pki::pem::pem_blocks(cert_pem)
            .into_iter()
            .find(|(l, _)| *l == "CERTIFICATE")
            .map(|(_, d)| d)
            .ok_or_else(|| PkiError::NotACertificate { what: what.clone() })?;
        let cert =
            crate::pki::x509::parse_certificate(&der).map_err(|e| PkiError::BadCertificate {
                what: what.clone(),
                why: e.to_string(),
            })?;
        let subject = dn_from(&cert.subject).map_err(|e| PkiError::BadCertificate {
            what: what.clone(),
            why: e.to_string(),
        })?;
        let ski = cert.extensions.and_then(subject_key_id);
        let not_before = cert.validity.not_before.timestamp();
        let spki_key = cert.spki.key.to_vec();

        let signer = KeySigner::from_pem(name, key_pem)?;
        if signer.public_raw != spki_key {
            return Err(PkiError::KeyMismatch {
                what: name.to_string(),
            });
        }
        Ok(Self {
            name: name.to_string(),
            cert_pem: cert_pem.to_vec(),
            subject,
            ski,
            not_before,
            signer,
        })
    }
}

/// SEC1 ECPrivateKey → (private scalar, uncompressed public point) for P-256.
pub(super) fn sec1_parts(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, body, _) = der_read(der)?;
    let (_, _version, rest) = der_read(body)?;
    let (_, scalar, mut rest) = der_read(rest)?;
    let mut public = None;
    while !rest.is_empty() {
        let (tag, content, next) = der_read(rest)?;
        rest = next;
        if tag == 0xa0 {
            let (_, oid, _) = der_read(content)?;
            if oid != OID_P256 {
                return None;
            }
        } else if tag == 0xa1 {
            let (_, bits, _) = der_read(content)?;
            public = Some(bits.get(1..)?.to_vec());
        }
    }
    Some((scalar.to_vec(), public?))
}

impl PublicKeyData for Ca {
    fn der_bytes(&self) -> &[u8] {
        self.signer.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.signer.algorithm()
    }
}

impl SigningKey for Ca {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(msg)
    }
}

impl PublicKeyData for KeySigner {
    fn der_bytes(&self) -> &[u8] {
        &self.public_raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.key {
            CaKey::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
            CaKey::EcdsaP256(..) => &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }
}

impl SigningKey for KeySigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match &self.key {
            CaKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    msg,
                    &mut sig,
                )
                .map_err(|_| rcgen::Error::RingUnspecified)?;
                Ok(sig)
            }
            CaKey::EcdsaP256(k, rng) => Ok(k
                .sign(rng, msg)
                .map_err(|_| rcgen::Error::RingUnspecified)?
                .as_ref()
                .to_vec()),
        }
    }
}
