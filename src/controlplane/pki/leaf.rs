//! Leaf keys: generated in the algorithm the cluster asks for, kept as kubeadm writes them.

use super::der::*;
use super::PkiError;
use crate::controlplane::cluster::KeyAlgorithm;
use rcgen::{PublicKeyData, SignatureAlgorithm};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use std::fmt;

/// A freshly generated leaf key: its private PEM (kubeadm's format) and its public key for the
/// certificate.
pub struct LeafKey {
    pub private_pem: Vec<u8>,
    pub(super) public_raw: Vec<u8>,
    pub(super) alg: &'static SignatureAlgorithm,
}

impl fmt::Debug for LeafKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeafKey(<redacted>)")
    }
}

impl PublicKeyData for LeafKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl LeafKey {
    /// Generates a key of `alg` (kubeadm's `GeneratePrivateKey`).
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, PkiError> {
        let fail = |why: String| PkiError::KeyGeneration {
            alg: format!("{alg:?}"),
            why,
        };
        match alg {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits = match alg {
                    KeyAlgorithm::Rsa3072 => 3072,
                    KeyAlgorithm::Rsa4096 => 4096,
                    _ => 2048,
                };
                let key =
                    crate::controlplane::rsagen::generate(bits).map_err(|e| fail(e.to_string()))?;
                Ok(Self {
                    private_pem: pem("RSA PRIVATE KEY", &key.private_pkcs1),
                    public_raw: key.public_pkcs1,
                    alg: &rcgen::PKCS_RSA_SHA256,
                })
            }
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let (rc_alg, ring_alg, curve) = if alg == KeyAlgorithm::EcdsaP256 {
                    (
                        &rcgen::PKCS_ECDSA_P256_SHA256,
                        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                        OID_P256,
                    )
                } else {
                    (
                        &rcgen::PKCS_ECDSA_P384_SHA384,
                        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                        OID_P384,
                    )
                };
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(ring_alg, &rng)
                    .map_err(|e| fail(e.to_string()))?;
                let kp = EcdsaKeyPair::from_pkcs8(ring_alg, pkcs8.as_ref(), &rng)
                    .map_err(|e| fail(e.to_string()))?;
                let public = kp.public_key().as_ref().to_vec();
                let scalar = pkcs8_ec_scalar(pkcs8.as_ref())
                    .ok_or_else(|| fail("unexpected PKCS#8 layout".into()))?;
                // Go's x509.MarshalECPrivateKey: version 1, key, [0] curve, [1] public key.
                let mut body = der_write(0x02, &[1]);
                body.extend(der_write(0x04, &scalar));
                body.extend(der_write(0xa0, &der_write(0x06, curve)));
                let mut bits = vec![0u8];
                bits.extend_from_slice(&public);
                body.extend(der_write(0xa1, &der_write(0x03, &bits)));
                Ok(Self {
                    private_pem: pem("EC PRIVATE KEY", &der_write(0x30, &body)),
                    public_raw: public,
                    alg: rc_alg,
                })
            }
        }
    }
}

/// The private scalar inside ring's PKCS#8 for an EC key.
pub(super) fn pkcs8_ec_scalar(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let (_, body, _) = der_read(pkcs8)?;
    let (_, _version, rest) = der_read(body)?;
    let (_, _alg, rest) = der_read(rest)?;
    let (_, octets, _) = der_read(rest)?;
    let (_, ec, _) = der_read(octets)?;
    let (_, _v, rest) = der_read(ec)?;
    let (_, scalar, _) = der_read(rest)?;
    Some(scalar.to_vec())
}
