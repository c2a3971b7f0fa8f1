//! This node's certificates and keys, made as kubeadm of the cluster's version makes them, from
//! the CAs download-certs brought.
//!
//! Sources (kubernetes/kubernetes, `cmd/kubeadm/app/`): `phases/certs/certlist.go` (the list,
//! subjects and usages), `util/pkiutil/pki_helpers.go` (`GetAPIServerAltNames`, `getAltNames`,
//! `appendSANsToAltNames`, `RemoveDuplicateAltNames`, `NewSignedCert`, `GeneratePrivateKey`),
//! client-go `util/keyutil` (`MarshalPrivateKeyToPEM`: RSA as PKCS#1 `RSA PRIVATE KEY`, ECDSA as
//! SEC1 `EC PRIVATE KEY`; `WriteKey` 0600, `WriteCert` 0644). Status per rule: **golden** =
//! field-identical to real kubeadm v1.24's certs (`tests/fixtures/kubeadm-v1.24/certs/`),
//! **read** = read in upstream source (one recent release and one older one), **inferred** =
//! from release notes, not read at the tag.
//!
//! - Keys: RSA-2048 by default (golden); `encryptionAlgorithm` RSA-3072/RSA-4096/ECDSA-P256
//!   (read, v1beta4) and ECDSA-P384 (inferred, v1.34+ release note); `PublicKeysECDSA` feature
//!   gate → ECDSA-P256 before v1beta4 (inferred).
//! - Key usage: digital signature + key encipherment, critical, for every leaf and key type
//!   (read; golden). Basic constraints CA:FALSE, critical (golden). AKI = the CA's SKI (golden).
//! - Validity: notBefore = the CA's notBefore (golden; read in `NewSignedCert`), notAfter =
//!   now plus 1 year (golden: 20:07:46 = the join's time + 365 d), or plus
//!   `certificateValidityPeriod` (v1beta4, read).
//! - Serial: uniform random in [1, 2^63-1) (read: `NewSignedCert`; v1.24 drew from [0, 2^63-1)).
//! - SANs: DNS names deduplicated and sorted (`sets.List`), IPs deduplicated in order (read;
//!   golden order).
//! - Signature: sha256WithRSAEncryption by an RSA CA (golden), ecdsa-with-SHA256 by a P-256 CA.
//!
//! RSA key generation: ring (and so rcgen on ring) cannot generate RSA keys. Options weighed:
//! ECDSA P-256 leaves by default would need no new code but differ from what kubeadm makes for
//! every version (RSA-2048 unless the cluster asks otherwise), which the goldens check; the
//! RustCrypto `rsa` crate costs +221,184 B (0.10) or +135,168 B (0.9) in the release binary once
//! phase 1 is reachable, more than the 4 MiB budget's whole margin. Chosen: [`super::rsagen`],
//! Miller-Rabin prime generation and PKCS#1 encoding over num-bigint, +57,344 B (its header has
//! the measurement table); signing stays in ring. Details: `docs/control-plane.md`.

use super::cluster::{ClusterConfig, Etcd, KeyAlgorithm, LocalNode};
use super::{join_path, NodeFile};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
    SigningKey,
};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use std::fmt;
use std::net::IpAddr;

/// Why a certificate could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    #[error("the {what} is not a PEM certificate")]
    NotACertificate { what: String },
    #[error("the {what} cannot be read: {why}")]
    BadCertificate { what: String, why: String },
    #[error(
        "the {what} private key is not an RSA or ECDSA P-256 key kubejoin can sign with: {why}"
    )]
    BadKey { what: String, why: String },
    #[error("the {what} private key does not belong to its certificate")]
    KeyMismatch { what: String },
    #[error("generating a {alg} key failed: {why}")]
    KeyGeneration { alg: String, why: String },
    #[error("signing the {what} certificate failed: {why}")]
    Sign { what: String, why: String },
    #[error("{0}")]
    Config(String),
}

// ---- minimal DER helpers (reading the CA, writing SEC1) ----

fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for b in &rest[..n] {
            len = (len << 8) | *b as usize;
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn der_write(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

const OID_SKI: &[u8] = &[0x55, 0x1d, 0x0e];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// The subjectKeyIdentifier of a certificate's extensions (contents of the extensions SEQUENCE).
fn subject_key_id(extensions: &[u8]) -> Option<Vec<u8>> {
    let mut rest = extensions;
    while !rest.is_empty() {
        let (_, ext, next) = der_read(rest)?;
        rest = next;
        let (_, oid, mut e) = der_read(ext)?;
        if oid != OID_SKI {
            continue;
        }
        if e.first() == Some(&0x01) {
            e = der_read(e)?.2;
        }
        let (_, octets, _) = der_read(e)?;
        let (_, id, _) = der_read(octets)?;
        return Some(id.to_vec());
    }
    None
}

// ---- the CA: certificate facts and a signer for rcgen ----

enum CaKey {
    Rsa(RsaKeyPair),
    EcdsaP256(EcdsaKeyPair, SystemRandom),
}

/// A CA certificate with its private key, ready to sign leaves.
pub struct Ca {
    name: String,
    pub cert_pem: Vec<u8>,
    subject: DistinguishedName,
    /// The CA's subjectKeyIdentifier (becomes the leaves' authorityKeyIdentifier).
    ski: Option<Vec<u8>>,
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

/// The same string type the CA used for each attribute, so a leaf's issuer is byte-identical to
/// the CA's subject (Go's chain building matches the raw bytes).
fn dn_from(name: &crate::pki::x509::Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for a in name.attributes() {
        let text = a
            .as_str()
            .ok_or("an attribute of the subject is not text")?;
        let value = match a.value.tag {
            0x13 => DnValue::PrintableString(
                rcgen::string::PrintableString::try_from(text).map_err(|e| e.to_string())?,
            ),
            0x16 => DnValue::Ia5String(
                rcgen::string::Ia5String::try_from(text).map_err(|e| e.to_string())?,
            ),
            _ => DnValue::Utf8String(text.to_string()),
        };
        let oid = oid_components(a.oid).ok_or("an attribute type is not a valid OID")?;
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

fn oid_components(content: &[u8]) -> Option<Vec<u64>> {
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
fn go_dn_value(s: &str) -> DnValue {
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
        let subject = dn_from(&cert.subject).map_err(|why| PkiError::BadCertificate {
            what: what.clone(),
            why,
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
fn sec1_parts(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
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

// ---- leaf keys ----

/// A freshly generated leaf key: its private PEM (kubeadm's format) and its public key for the
/// certificate.
pub struct LeafKey {
    pub private_pem: Vec<u8>,
    public_raw: Vec<u8>,
    alg: &'static SignatureAlgorithm,
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
                let key = super::rsagen::generate(bits).map_err(|e| fail(e.to_string()))?;
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
fn pkcs8_ec_scalar(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let (_, body, _) = der_read(pkcs8)?;
    let (_, _version, rest) = der_read(body)?;
    let (_, _alg, rest) = der_read(rest)?;
    let (_, octets, _) = der_read(rest)?;
    let (_, ec, _) = der_read(octets)?;
    let (_, _v, rest) = der_read(ec)?;
    let (_, scalar, _) = der_read(rest)?;
    Some(scalar.to_vec())
}

// ---- certificate specs ----

/// Which CA signs a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaName {
    Ca,
    FrontProxyCa,
    EtcdCa,
}

/// One certificate kubeadm makes for a joining control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// kubeadm's base name (`apiserver`, `etcd/server`): files `<name>.crt`/`<name>.key`.
    pub base_name: &'static str,
    pub ca: CaName,
    pub common_name: String,
    pub organization: Vec<String>,
    pub server_auth: bool,
    pub client_auth: bool,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// `appendSANsToAltNames`: IPs, then RFC 1123 subdomains and wildcards as DNS names; anything
/// else is dropped with a warning upstream (here: returned for the caller to warn about).
fn append_sans(
    dns: &mut Vec<String>,
    ips: &mut Vec<IpAddr>,
    sans: &[String],
    dropped: &mut Vec<String>,
) {
    for s in sans {
        if let Ok(ip) = s.parse::<IpAddr>() {
            ips.push(ip);
        } else if is_dns1123_subdomain(s) || s.strip_prefix("*.").is_some_and(is_dns1123_subdomain)
        {
            dns.push(s.clone());
        } else {
            dropped.push(s.clone());
        }
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `RemoveDuplicateAltNames`: DNS names as a sorted set, IPs deduplicated in order.
fn dedup(dns: &mut Vec<String>, ips: &mut Vec<IpAddr>) {
    dns.sort();
    dns.dedup();
    let mut seen = Vec::new();
    ips.retain(|ip| {
        if seen.contains(ip) {
            false
        } else {
            seen.push(*ip);
            true
        }
    });
}

/// The certificates a joining control plane generates (kubeadm's `certsphase.CreatePKIAssets`
/// minus the CAs, which are downloaded), in kubeadm's list order, with SANs that were dropped
/// for being neither an IP nor a DNS name.
pub fn cert_specs(
    cfg: &ClusterConfig,
    node: &LocalNode,
) -> Result<(Vec<CertSpec>, Vec<String>), PkiError> {
    let mut dropped = Vec::new();
    let vip = cfg
        .api_server_virtual_ip()
        .map_err(|e| PkiError::Config(e.to_string()))?;
    // GetAPIServerAltNames (read; golden).
    let mut dns = vec![
        node.name.clone(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        format!("kubernetes.default.svc.{}", cfg.dns_domain),
    ];
    let mut ips = vec![vip, node.advertise_address];
    if let Some((host, _)) = cfg.control_plane_host_port(node) {
        match host.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(host),
        }
    }
    append_sans(&mut dns, &mut ips, &cfg.api_server_cert_sans, &mut dropped);
    dedup(&mut dns, &mut ips);
    let spec = |base_name, ca, cn: &str, o: &[&str], server, client| CertSpec {
        base_name,
        ca,
        common_name: cn.to_string(),
        organization: o.iter().map(|s| s.to_string()).collect(),
        server_auth: server,
        client_auth: client,
        dns_names: Vec::new(),
        ips: Vec::new(),
    };
    let mut apiserver = spec("apiserver", CaName::Ca, "kube-apiserver", &[], true, false);
    apiserver.dns_names = dns;
    apiserver.ips = ips;
    // apiserver-kubelet-client: O=system:masters (golden v1.24; read in an older release);
    // kubeadm:cluster-admins from v1.29 (inferred: KEP-4214 moved kubeadm's admin identities
    // off system:masters in v1.29).
    let kubelet_client_org = if cfg.minor() >= 29 {
        "kubeadm:cluster-admins"
    } else {
        "system:masters"
    };
    let mut out = vec![
        apiserver,
        spec(
            "apiserver-kubelet-client",
            CaName::Ca,
            "kube-apiserver-kubelet-client",
            &[kubelet_client_org],
            false,
            true,
        ),
        spec(
            "front-proxy-client",
            CaName::FrontProxyCa,
            "front-proxy-client",
            &[],
            false,
            true,
        ),
    ];
    if let Etcd::Local(l) = &cfg.etcd {
        // getAltNames (read): DNS node name + localhost, IPs advertise, 127.0.0.1, ::1, then the
        // etcd.local.*CertSANs.
        let base = |extra: &[String], dropped: &mut Vec<String>| {
            let mut dns = vec![node.name.clone(), "localhost".to_string()];
            let mut ips: Vec<IpAddr> = vec![
                node.advertise_address,
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ];
            append_sans(&mut dns, &mut ips, extra, dropped);
            dedup(&mut dns, &mut ips);
            (dns, ips)
        };
        let mut server = spec("etcd/server", CaName::EtcdCa, &node.name, &[], true, true);
        (server.dns_names, server.ips) = base(&l.server_cert_sans, &mut dropped);
        let mut peer = spec("etcd/peer", CaName::EtcdCa, &node.name, &[], true, true);
        (peer.dns_names, peer.ips) = base(&l.peer_cert_sans, &mut dropped);
        out.push(server);
        out.push(peer);
        // O=system:masters on both etcd clients: read in an older release, inferred unchanged.
        out.push(spec(
            "etcd/healthcheck-client",
            CaName::EtcdCa,
            "kube-etcd-healthcheck-client",
            &["system:masters"],
            false,
            true,
        ));
        out.push(spec(
            "apiserver-etcd-client",
            CaName::EtcdCa,
            "kube-apiserver-etcd-client",
            &["system:masters"],
            false,
            true,
        ));
    }
    Ok((out, dropped))
}

/// Random serial in [1, 2^63-1), big-endian without leading zero bytes.
fn serial() -> Result<SerialNumber, PkiError> {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 8];
    loop {
        SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| PkiError::Sign {
                what: "serial number".into(),
                why: "the system RNG failed".into(),
            })?;
        b[0] &= 0x7f;
        let v = u64::from_be_bytes(b);
        if (1..(1u64 << 63) - 1).contains(&v) {
            let bytes: Vec<u8> = v
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|x| *x == 0)
                .collect();
            return Ok(SerialNumber::from_slice(&bytes));
        }
    }
}

/// A signed leaf: certificate PEM and its key.
#[derive(Debug)]
pub struct Issued {
    pub cert_pem: Vec<u8>,
    pub key: LeafKey,
}

/// Signs a leaf for `spec` with `ca`, valid from the CA's notBefore to `now + validity`.
pub fn issue(
    spec: &CertSpec,
    ca: &Ca,
    alg: KeyAlgorithm,
    now: i64,
    validity_secs: i64,
) -> Result<Issued, PkiError> {
    let key = LeafKey::generate(alg)?;
    let sign_err = |why: String| PkiError::Sign {
        what: spec.base_name.to_string(),
        why,
    };
    let time =
        |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| sign_err(e.to_string()));
    let mut p = CertificateParams::default();
    p.serial_number = Some(serial()?);
    p.not_before = time(ca.not_before)?;
    p.not_after = time(now + validity_secs)?;
    let mut dn = DistinguishedName::new();
    for o in &spec.organization {
        dn.push(DnType::OrganizationName, go_dn_value(o));
    }
    dn.push(DnType::CommonName, go_dn_value(&spec.common_name));
    p.distinguished_name = dn;
    // Go writes basicConstraints CA:FALSE (critical, an empty SEQUENCE) and no
    // subjectKeyIdentifier on leaves; rcgen's `ExplicitNoCa` would add an SKI, so the
    // extension is written as a custom one.
    p.is_ca = IsCa::NoCa;
    let mut bc = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x00]);
    bc.set_criticality(true);
    p.custom_extensions.push(bc);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    if spec.server_auth {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client_auth {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    for d in &spec.dns_names {
        let name = d
            .clone()
            .try_into()
            .map_err(|e: rcgen::Error| sign_err(e.to_string()))?;
        p.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in &spec.ips {
        p.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    p.use_authority_key_identifier_extension = ca.ski.is_some();
    // rcgen would add a subjectKeyIdentifier to every certificate; Go adds none to leaves.
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = ca.subject.clone();
    if let Some(ski) = &ca.ski {
        issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    }
    let issuer = rcgen::Issuer::new(issuer_params, ca);
    let cert = p
        .signed_by(&key, &issuer)
        .map_err(|e| sign_err(e.to_string()))?;
    Ok(Issued {
        cert_pem: cert.pem().into_bytes(),
        key,
    })
}

/// The CAs a join has after download-certs.
#[derive(Debug)]
pub struct Cas<'a> {
    pub ca: &'a Ca,
    pub front_proxy_ca: &'a Ca,
    pub etcd_ca: Option<&'a Ca>,
}

/// Every leaf certificate and key file of a joining control plane (certificate 0644, key 0600),
/// under `certificatesDir`.
pub fn leaf_files(
    cfg: &ClusterConfig,
    node: &LocalNode,
    cas: &Cas<'_>,
    now: i64,
) -> Result<Vec<NodeFile>, PkiError> {
    let (specs, _) = cert_specs(cfg, node)?;
    let mut out = Vec::new();
    for s in &specs {
        let ca = match s.ca {
            CaName::Ca => cas.ca,
            CaName::FrontProxyCa => cas.front_proxy_ca,
            CaName::EtcdCa => cas.etcd_ca.ok_or_else(|| {
                PkiError::Config("stacked etcd needs the etcd CA (etcd/ca.crt, etcd/ca.key)".into())
            })?,
        };
        let issued = issue(s, ca, cfg.key_algorithm, now, cfg.certificate_validity_secs)?;
        out.push(NodeFile::new(
            join_path(&cfg.certificates_dir, &format!("{}.crt", s.base_name)),
            0o644,
            issued.cert_pem,
        ));
        out.push(NodeFile::secret(
            join_path(&cfg.certificates_dir, &format!("{}.key", s.base_name)),
            issued.key.private_pem.clone(),
        ));
    }
    Ok(out)
}

/// A client certificate and key for a kubeconfig (used by [`super::kubeconfigs`]).
pub fn client_cert(
    ca: &Ca,
    common_name: &str,
    organization: &[&str],
    alg: KeyAlgorithm,
    now: i64,
    validity_secs: i64,
) -> Result<Issued, PkiError> {
    let spec = CertSpec {
        base_name: "kubeconfig",
        ca: CaName::Ca,
        common_name: common_name.to_string(),
        organization: organization.iter().map(|s| s.to_string()).collect(),
        server_auth: false,
        client_auth: true,
        dns_names: Vec::new(),
        ips: Vec::new(),
    };
    issue(&spec, ca, alg, now, validity_secs)
}

/// A self-signed CA as kubeadm's `NewSelfSignedCACert` makes one (CN, SAN DNS = CN, key usage
/// DS+KE+CertSign critical, CA:TRUE critical, notBefore `now`, notAfter `now + validity`;
/// kubeadm's CA validity is 10 years). For the test control plane and tests: a join downloads
/// its CAs. Returns (certificate PEM, key PEM).
pub fn self_signed_ca(
    common_name: &str,
    alg: KeyAlgorithm,
    now: i64,
    validity_secs: i64,
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let key = LeafKey::generate(alg)?;
    let signer = KeySigner::from_pem(common_name, &key.private_pem)?;
    let sign_err = |why: String| PkiError::Sign {
        what: common_name.to_string(),
        why,
    };
    let time =
        |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| sign_err(e.to_string()));
    let mut p = CertificateParams::default();
    p.serial_number = Some(serial()?);
    p.not_before = time(now)?;
    p.not_after = time(now + validity_secs)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, go_dn_value(common_name));
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    let name = common_name
        .to_string()
        .try_into()
        .map_err(|e: rcgen::Error| sign_err(e.to_string()))?;
    p.subject_alt_names.push(SanType::DnsName(name));
    let cert = p
        .self_signed(&signer)
        .map_err(|e| sign_err(e.to_string()))?;
    Ok((cert.pem().into_bytes(), key.private_pem))
}
