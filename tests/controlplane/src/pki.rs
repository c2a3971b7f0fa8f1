//! The cluster PKI: the CA (as `kubeadm init` makes it), the serving certificate, client
//! certificates, and the leaf certificates kube-controller-manager's csrsigning controller issues.

use crate::der;
use crate::util;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// Encoded object identifiers (content bytes only).
pub(crate) mod oid {
    pub const COUNTRY: &[u8] = &[0x55, 0x04, 0x06];
    pub const PROVINCE: &[u8] = &[0x55, 0x04, 0x08];
    pub const LOCALITY: &[u8] = &[0x55, 0x04, 0x07];
    pub const STREET: &[u8] = &[0x55, 0x04, 0x09];
    pub const POSTAL_CODE: &[u8] = &[0x55, 0x04, 0x11];
    pub const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
    pub const ORGANIZATIONAL_UNIT: &[u8] = &[0x55, 0x04, 0x0b];
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    pub const SERIAL_NUMBER: &[u8] = &[0x55, 0x04, 0x05];

    pub const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    pub const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];

    pub const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    pub const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
    pub const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

    const KP: [u8; 7] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03];
    pub const EKU_ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
    pub const EKU_SERVER_AUTH: &[u8] = &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x01];
    pub const EKU_CLIENT_AUTH: &[u8] = &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x02];
    pub const EKU_CODE_SIGNING: &[u8] = &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x03];
    pub const EKU_EMAIL: &[u8] = &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x04];
    pub const EKU_IPSEC_END_SYSTEM: &[u8] =
        &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x05];
    pub const EKU_IPSEC_TUNNEL: &[u8] = &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x06];
    pub const EKU_IPSEC_USER: &[u8] = &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x07];
    pub const EKU_TIMESTAMPING: &[u8] = &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x08];
    pub const EKU_OCSP_SIGNING: &[u8] = &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 0x09];
    pub const EKU_MICROSOFT_SGC: &[u8] =
        &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x03, 0x03];
    pub const EKU_NETSCAPE_SGC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x42, 0x04, 0x01];
}

/// X.509 key usage bits, in wire order: byte 0 bit 7 is digitalSignature.
pub(crate) mod ku {
    pub const DIGITAL_SIGNATURE: u16 = 0x8000;
    pub const CONTENT_COMMITMENT: u16 = 0x4000;
    pub const KEY_ENCIPHERMENT: u16 = 0x2000;
    pub const DATA_ENCIPHERMENT: u16 = 0x1000;
    pub const KEY_AGREEMENT: u16 = 0x0800;
    pub const CERT_SIGN: u16 = 0x0400;
    pub const CRL_SIGN: u16 = 0x0200;
    pub const ENCIPHER_ONLY: u16 = 0x0100;
    pub const DECIPHER_ONLY: u16 = 0x0080;
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PkiError {
    #[error("generating a key: {0}")]
    Key(String),
    #[error("signing a certificate: {0}")]
    Sign(String),
}

/// A subject the way Go's `pkix.Name` holds it; `to_der` encodes it as `ToRDNSequence` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GoName {
    pub country: Vec<String>,
    pub province: Vec<String>,
    pub locality: Vec<String>,
    pub street: Vec<String>,
    pub postal_code: Vec<String>,
    pub organization: Vec<String>,
    pub organizational_unit: Vec<String>,
    pub common_name: String,
    pub serial_number: String,
}

impl GoName {
    pub(crate) fn new(cn: &str, orgs: &[&str]) -> GoName {
        GoName {
            organization: orgs.iter().map(|o| o.to_string()).collect(),
            common_name: cn.to_string(),
            ..GoName::default()
        }
    }

    /// Several values of one attribute share one RDN, as in Go's `appendRDNs`.
    pub(crate) fn to_der(&self) -> Vec<u8> {
        let mut rdns: Vec<Vec<u8>> = Vec::new();
        let mut add = |values: &[String], oid: &[u8]| {
            if values.is_empty() {
                return;
            }
            let atvs = values
                .iter()
                .map(|v| der::seq(&[&der::oid(oid), &der::directory_string(v)]))
                .collect();
            rdns.push(der::set_of(atvs));
        };
        add(&self.country, oid::COUNTRY);
        add(&self.province, oid::PROVINCE);
        add(&self.locality, oid::LOCALITY);
        add(&self.street, oid::STREET);
        add(&self.postal_code, oid::POSTAL_CODE);
        add(&self.organization, oid::ORGANIZATION);
        add(&self.organizational_unit, oid::ORGANIZATIONAL_UNIT);
        if !self.common_name.is_empty() {
            add(std::slice::from_ref(&self.common_name), oid::COMMON_NAME);
        }
        if !self.serial_number.is_empty() {
            add(
                std::slice::from_ref(&self.serial_number),
                oid::SERIAL_NUMBER,
            );
        }
        let refs: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
        der::seq(&refs)
    }
}

/// Subject alternative names, kept in Go's marshalling order (DNS, email, IP, URI).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sans {
    pub dns: Vec<String>,
    pub emails: Vec<String>,
    pub ips: Vec<Vec<u8>>,
    pub uris: Vec<String>,
}

impl Sans {
    pub(crate) fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.emails.is_empty() && self.ips.is_empty() && self.uris.is_empty()
    }

    pub(crate) fn push_name(&mut self, name: &str) {
        match name.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => self.ips.push(ip.octets().to_vec()),
            Ok(IpAddr::V6(ip)) => self.ips.push(ip.octets().to_vec()),
            Err(_) => self.dns.push(name.to_string()),
        }
    }

    fn to_der(&self) -> Vec<u8> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        names.extend(self.dns.iter().map(|d| der::tlv(0x82, d.as_bytes())));
        names.extend(self.emails.iter().map(|e| der::tlv(0x81, e.as_bytes())));
        names.extend(self.ips.iter().map(|ip| der::tlv(0x87, ip)));
        names.extend(self.uris.iter().map(|u| der::tlv(0x86, u.as_bytes())));
        let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        der::seq(&refs)
    }
}

/// What a certificate will say, apart from its issuer.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub subject: Vec<u8>,
    pub spki: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub key_usage: u16,
    pub ext_key_usages: Vec<&'static [u8]>,
    pub sans: Sans,
}

fn extension(oid_bytes: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        der::seq(&[&der::oid(oid_bytes), &der::TRUE, &der::octets(value)])
    } else {
        der::seq(&[&der::oid(oid_bytes), &der::octets(value)])
    }
}

/// KeyUsage as Go marshals it: one byte unless a bit of the second is set, trailing zero bits
/// declared unused.
fn key_usage_value(bits: u16) -> Vec<u8> {
    let [hi, lo] = bits.to_be_bytes();
    let bytes: Vec<u8> = if lo != 0 { vec![hi, lo] } else { vec![hi] };
    let unused = bytes.last().map_or(0, |b| b.trailing_zeros().min(7) as u8);
    der::bits(unused, &bytes)
}

fn random_serial() -> Vec<u8> {
    // Go's signer draws a random 128-bit serial number.
    let mut serial = [0u8; 16];
    util::random_bytes(&mut serial);
    serial.to_vec()
}

/// A private key and the SubjectPublicKeyInfo that goes with it.
pub(crate) fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|e| PkiError::Key(e.to_string()))
}

/// The key type of the CAs: ECDSA P-256 (fast to make; what `encryptionAlgorithm: ECDSA-P256`
/// gives) or RSA 2048 (kubeadm's default, as in the v1.24 capture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaKeyType {
    #[default]
    EcdsaP256,
    Rsa2048,
}

/// An RSA 2048 key (e = 65537) as PKCS#8 DER, from the `rsa` crate (ring cannot make RSA
/// keys; it signs with them).
pub(crate) fn rsa_2048_pkcs8() -> Result<Vec<u8>, PkiError> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::PrivateKey::new(&mut RingRng, 2048).map_err(|e| PkiError::Key(e.to_string()))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| PkiError::Key(e.to_string()))?;
    Ok(der.as_bytes().to_vec())
}

/// ring's system CSPRNG as the RNG the `rsa` crate asks for.
pub(crate) struct RingRng;

#[derive(Debug)]
pub(crate) struct RngFailure;

impl std::fmt::Display for RngFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the system random number generator failed")
    }
}

impl std::error::Error for RngFailure {}

impl rsa::rand_core::TryRng for RingRng {
    type Error = RngFailure;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(dest)
            .map_err(|_| RngFailure)
    }
}

impl rsa::rand_core::TryCryptoRng for RingRng {}

/// The signature algorithm identifier of a key's signatures (ECDSA with SHA-256, or
/// sha256WithRSAEncryption with its NULL parameters).
fn signature_algorithm(key: &KeyPair) -> Vec<u8> {
    if key.algorithm() == &rcgen::PKCS_RSA_SHA256 {
        der::seq(&[&der::oid(oid::SHA256_WITH_RSA), &[0x05, 0x00]])
    } else {
        der::seq(&[&der::oid(oid::ECDSA_WITH_SHA256)])
    }
}

/// The certificate authority of the cluster (or an unrelated "old" one for rotation tests).
pub(crate) struct Ca {
    key: KeyPair,
    pub(crate) der: Vec<u8>,
    name: Vec<u8>,
    ski: Vec<u8>,
    pub(crate) not_after: SystemTime,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("pin", &self.pin())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A self-signed CA like kubeadm's: CN=kubernetes, valid 10 years from 5 minutes ago,
    /// keyUsage digitalSignature/keyEncipherment/keyCertSign, CA:TRUE, SAN DNS:kubernetes.
    #[cfg(test)]
    pub(crate) fn generate(cn: &str, now: SystemTime) -> Result<Ca, PkiError> {
        Ca::generate_with(cn, now, CaKeyType::EcdsaP256)
    }

    /// [`Ca::generate`] with a key of `kind`.
    pub(crate) fn generate_with(
        cn: &str,
        now: SystemTime,
        kind: CaKeyType,
    ) -> Result<Ca, PkiError> {
        let key = match kind {
            CaKeyType::EcdsaP256 => new_key()?,
            CaKeyType::Rsa2048 => KeyPair::try_from(rsa_2048_pkcs8()?.as_slice())
                .map_err(|e| PkiError::Key(e.to_string()))?,
        };
        let now = der::truncate_to_seconds(now);
        let name = GoName::new(cn, &[]).to_der();
        // Go derives the subject key identifier as SHA-1 over the subjectPublicKey bits.
        let ski = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, key.der_bytes())
            .as_ref()
            .to_vec();
        let not_after = now + Duration::from_secs(3650 * 86_400);
        let mut sans = Sans::default();
        sans.dns.push(cn.to_string());
        let exts = [
            extension(
                oid::KEY_USAGE,
                true,
                &key_usage_value(ku::DIGITAL_SIGNATURE | ku::KEY_ENCIPHERMENT | ku::CERT_SIGN),
            ),
            extension(oid::BASIC_CONSTRAINTS, true, &der::seq(&[&der::TRUE])),
            extension(oid::SUBJECT_KEY_ID, false, &der::octets(&ski)),
            extension(oid::SUBJECT_ALT_NAME, false, &sans.to_der()),
        ];
        let tbs = tbs(
            &random_serial(),
            &signature_algorithm(&key),
            &name,
            now - Duration::from_secs(300),
            not_after,
            &name,
            &key.subject_public_key_info(),
            &exts,
        );
        let der = sign(&key, &tbs)?;
        Ok(Ca {
            key,
            der,
            name,
            ski,
            not_after,
        })
    }

    /// Issues a leaf: key usage critical, extended key usage, CA:FALSE, the authority key id,
    /// and the SANs, in Go's order.
    pub(crate) fn issue(&self, t: &Template) -> Result<Vec<u8>, PkiError> {
        let mut exts = Vec::new();
        if t.key_usage != 0 {
            exts.push(extension(
                oid::KEY_USAGE,
                true,
                &key_usage_value(t.key_usage),
            ));
        }
        if !t.ext_key_usages.is_empty() {
            let ekus: Vec<Vec<u8>> = t.ext_key_usages.iter().map(|o| der::oid(o)).collect();
            let refs: Vec<&[u8]> = ekus.iter().map(Vec::as_slice).collect();
            exts.push(extension(oid::EXT_KEY_USAGE, false, &der::seq(&refs)));
        }
        exts.push(extension(oid::BASIC_CONSTRAINTS, true, &der::seq(&[])));
        exts.push(extension(
            oid::AUTHORITY_KEY_ID,
            false,
            &der::seq(&[&der::tlv(0x80, &self.ski)]),
        ));
        if !t.sans.is_empty() {
            // RFC 5280: the SAN extension is critical when the subject is empty.
            let empty_subject = t.subject == der::seq(&[]);
            exts.push(extension(
                oid::SUBJECT_ALT_NAME,
                empty_subject,
                &t.sans.to_der(),
            ));
        }
        let tbs = tbs(
            &random_serial(),
            &signature_algorithm(&self.key),
            &self.name,
            t.not_before,
            t.not_after,
            &t.subject,
            &t.spki,
            &exts,
        );
        sign(&self.key, &tbs)
    }

    /// `sha256:<hex>` of the CA's SubjectPublicKeyInfo: what `--discovery-token-ca-cert-hash` pins.
    pub(crate) fn pin(&self) -> String {
        spki_pin(&self.key.subject_public_key_info())
    }

    pub(crate) fn pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    /// The CA's private key (PKCS#8 DER) and public key (uncompressed P-256 point, or PKCS#1
    /// for RSA), for the files `kubeadm init` leaves on disk and `upload-certs` shares.
    pub(crate) fn key_material(&self) -> (Vec<u8>, Vec<u8>) {
        (self.key.serialize_der(), self.key.public_key_raw().to_vec())
    }

    pub(crate) fn is_rsa(&self) -> bool {
        self.key.algorithm() == &rcgen::PKCS_RSA_SHA256
    }

    /// A client certificate and its key (PEM), as kubeadm issues them for kubeconfig files.
    pub(crate) fn client_cert(
        &self,
        cn: &str,
        orgs: &[&str],
    ) -> Result<(String, String), PkiError> {
        let key = new_key()?;
        let now = der::truncate_to_seconds(SystemTime::now());
        let not_after = (now + Duration::from_secs(365 * 86_400)).min(self.not_after);
        let t = Template {
            subject: GoName::new(cn, orgs).to_der(),
            spki: key.subject_public_key_info(),
            not_before: now - Duration::from_secs(300),
            not_after,
            key_usage: ku::DIGITAL_SIGNATURE | ku::KEY_ENCIPHERMENT,
            ext_key_usages: vec![oid::EKU_CLIENT_AUTH],
            sans: Sans::default(),
        };
        let cert = self.issue(&t)?;
        Ok((
            pem_encode("CERTIFICATE", &cert),
            pem_encode("PRIVATE KEY", &key.serialize_der()),
        ))
    }

    /// The API server's serving certificate and its PKCS#8 key (DER).
    /// It is valid from `backdate` before now.
    pub(crate) fn serving_cert(
        &self,
        sans: Sans,
        backdate: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
        let key = new_key()?;
        let now = der::truncate_to_seconds(SystemTime::now());
        let t = Template {
            subject: GoName::new("kube-apiserver", &[]).to_der(),
            spki: key.subject_public_key_info(),
            not_before: now - backdate,
            not_after: (now + Duration::from_secs(365 * 86_400)).min(self.not_after),
            key_usage: ku::DIGITAL_SIGNATURE | ku::KEY_ENCIPHERMENT,
            ext_key_usages: vec![oid::EKU_SERVER_AUTH],
            sans,
        };
        Ok((self.issue(&t)?, key.serialize_der()))
    }
}

#[allow(clippy::too_many_arguments)] // the fields of a TBSCertificate, in order
fn tbs(
    serial: &[u8],
    alg: &[u8],
    issuer: &[u8],
    not_before: SystemTime,
    not_after: SystemTime,
    subject: &[u8],
    spki: &[u8],
    extensions: &[Vec<u8>],
) -> Vec<u8> {
    let version = der::tlv(0xa0, &der::uint(&[2]));
    let validity = der::seq(&[&der::time(not_before), &der::time(not_after)]);
    let ext_refs: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
    let exts = der::tlv(0xa3, &der::seq(&ext_refs));
    der::seq(&[
        &version,
        &der::uint(serial),
        alg,
        issuer,
        &validity,
        subject,
        spki,
        &exts,
    ])
}

fn sign(key: &KeyPair, tbs: &[u8]) -> Result<Vec<u8>, PkiError> {
    let signature = key.sign(tbs).map_err(|e| PkiError::Sign(e.to_string()))?;
    let alg = signature_algorithm(key);
    Ok(der::seq(&[tbs, &alg, &der::bits(0, &signature)]))
}

/// `sha256:<lowercase hex>` of a DER SubjectPublicKeyInfo.
pub(crate) fn spki_pin(spki: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(spki)))
}

/// The pin of a DER certificate.
#[cfg(test)]
pub(crate) fn cert_pin(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(spki_pin(cert.tbs_certificate.subject_pki.raw))
}

/// PEM the way Go's encoding/pem writes it: 64-character lines, `\n` endings.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The first PEM block of `data`, as Go's `pem.Decode` finds it: `-----BEGIN ` at the start of
/// the input or of a line; a block whose body is not base64 is skipped.
pub(crate) fn pem_decode_first(data: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(data);
    let mut search_from = 0;
    loop {
        let rest = text.get(search_from..)?;
        let begin = if rest.starts_with("-----BEGIN ") {
            0
        } else {
            rest.find("\n-----BEGIN ")? + 1
        };
        let after_begin = search_from + begin + "-----BEGIN ".len();
        search_from = after_begin;
        let line_end = text[after_begin..]
            .find('\n')
            .map_or(text.len(), |i| after_begin + i);
        let Some(label) = text[after_begin..line_end].trim_end().strip_suffix("-----") else {
            continue;
        };
        let end_marker = format!("\n-----END {label}-----");
        let Some(end) = text[line_end..].find(&end_marker).map(|i| line_end + i) else {
            continue;
        };
        let body: String = text[line_end..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Ok(bytes) = STANDARD.decode(body.as_bytes()) {
            return Some((label.to_string(), bytes));
        }
    }
}

/// Every `CERTIFICATE` block in a PEM bundle, DER.
pub(crate) fn pem_certs(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((label, der)) = pem_decode_first(rest) {
        if label == "CERTIFICATE" {
            out.push(der);
        }
        // Continue after this block's END line.
        let text = String::from_utf8_lossy(rest);
        let marker = format!("-----END {label}-----");
        match text.find(&marker) {
            Some(i) => rest = &rest[(i + marker.len()).min(rest.len())..],
            None => break,
        }
    }
    out
}

/// The user a verified client certificate stands for: CN, and O as groups.
pub(crate) fn cert_identity(cert_der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let subject = cert.subject();
    // Go's pkix.Name keeps the last CN it sees.
    let cn = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()?
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_looks_like_kubeadms() {
        let ca = Ca::generate("kubernetes", SystemTime::now()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&ca.der).unwrap();
        assert_eq!(cert.subject().to_string(), "CN=kubernetes");
        assert_eq!(cert.issuer().to_string(), "CN=kubernetes");
        assert!(cert.is_ca());
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(
            ku.value.digital_signature() && ku.value.key_encipherment() && ku.value.key_cert_sign()
        );
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", san.value.general_names),
            r#"[DNSName("kubernetes")]"#
        );
        // Self-signed: the signature verifies with its own key.
        cert.verify_signature(None).unwrap();
        let validity = cert.validity();
        let span = validity.not_after.timestamp() - validity.not_before.timestamp();
        assert_eq!(span, 3650 * 86_400 + 300);
    }

    #[test]
    fn client_certs_chain_to_the_ca_and_carry_several_orgs() {
        let ca = Ca::generate("kubernetes", SystemTime::now()).unwrap();
        let (cert_pem, key_pem) = ca.client_cert("jane", &["b-team", "a-team"]).unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let der = pem_certs(cert_pem.as_bytes()).remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca.der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        let (cn, mut orgs) = cert_identity(&der).unwrap();
        orgs.sort();
        assert_eq!(cn, "jane");
        assert_eq!(orgs, vec!["a-team", "b-team"]);
        assert!(!cert.is_ca());
        let aki = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.5.29.35")
            .unwrap();
        assert!(!aki.critical);
    }

    #[test]
    fn an_rsa_ca_signs_with_sha256_rsa() {
        let ca = Ca::generate_with("kubernetes", SystemTime::now(), CaKeyType::Rsa2048).unwrap();
        assert!(ca.is_rsa());
        let (_, cert) = x509_parser::parse_x509_certificate(&ca.der).unwrap();
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.11"
        );
        cert.verify_signature(None).unwrap();
        let (leaf_pem, _) = ca.client_cert("jane", &[]).unwrap();
        let leaf = pem_certs(leaf_pem.as_bytes()).remove(0);
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        leaf.verify_signature(Some(cert.public_key())).unwrap();
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let pem = pem_encode("CERTIFICATE", &[7u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[1].len(), 64);
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert_eq!(pem_decode_first(pem.as_bytes()).unwrap().1, vec![7u8; 100]);
    }

    #[test]
    fn pem_decode_skips_leading_text_and_finds_bundles() {
        let a = pem_encode("CERTIFICATE", b"one");
        let b = pem_encode("CERTIFICATE", b"two");
        let bundle = format!("junk\n{a}{b}");
        assert_eq!(
            pem_certs(bundle.as_bytes()),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
        assert_eq!(pem_decode_first(b"not a csr"), None);
    }

    #[test]
    fn fixture_ca_pin() {
        let pem = include_str!("../../fixtures/apiserver/ca.crt");
        let pin = include_str!("../../fixtures/apiserver/ca-pin.txt");
        let der = pem_certs(pem.as_bytes()).remove(0);
        assert_eq!(cert_pin(&der).unwrap(), pin.trim());
    }
}
