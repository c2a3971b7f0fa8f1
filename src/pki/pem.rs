//! PEM: reading blocks (rustls' parser), writing them (64-column base64, LF), certificate
//! bundles.

use super::pin::CertParseError;

/// PEM with 64-column base64 lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The PEM label of a section kind (the ones kubejoin reads).
fn label_of(kind: rustls::pki_types::pem::SectionKind) -> &'static str {
    use rustls::pki_types::pem::SectionKind as K;
    match kind {
        K::Certificate => "CERTIFICATE",
        K::PublicKey => "PUBLIC KEY",
        K::RsaPrivateKey => "RSA PRIVATE KEY",
        K::PrivateKey => "PRIVATE KEY",
        K::EcPrivateKey => "EC PRIVATE KEY",
        K::Crl => "X509 CRL",
        K::Csr => "CERTIFICATE REQUEST",
        K::EchConfigList => "ECHCONFIG",
        _ => "",
    }
}

/// Every PEM block of `data` as (label, DER), in order, up to the first malformed block.
/// Blocks of labels kubejoin does not know are skipped.
pub fn pem_blocks(data: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    use rustls::pki_types::pem::{PemObject, SectionKind};
    <(SectionKind, Vec<u8>)>::pem_slice_iter(data)
        .map_while(Result::ok)
        .map(|(k, der)| (label_of(k), der))
        .filter(|(l, _)| !l.is_empty())
        .collect()
}

/// The DER of every PEM block of type `label` in `data`.
pub fn blocks_of(data: &[u8], label: &str) -> Vec<Vec<u8>> {
    pem_blocks(data)
        .into_iter()
        .filter(|(l, _)| *l == label)
        .map(|(_, der)| der)
        .collect()
}

/// A PEM bundle that yielded no usable certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("no CERTIFICATE block found in the PEM data")]
    NoCertificates,
    #[error("PEM data is malformed: {0}")]
    Malformed(String),
    #[error(transparent)]
    Cert(#[from] CertParseError),
}

/// Every `CERTIFICATE` block of a PEM bundle, as DER, each checked to parse as X.509.
/// Other block types (keys, CSRs) are skipped, as Go's `certutil.ParseCertsPEM` does.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    use rustls::pki_types::pem::{PemObject, SectionKind};
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = item.map_err(|e| PemError::Malformed(format!("{e:?}")))?;
        if kind == SectionKind::Certificate {
            crate::pki::x509::parse_certificate(&der).map_err(|e| CertParseError(e.to_string()))?;
            out.push(der);
        }
    }
    if out.is_empty() {
        return Err(PemError::NoCertificates);
    }
    Ok(out)
}

/// DER certificates as one PEM bundle (`CERTIFICATE` blocks, 64-column base64, LF), in order:
/// what kubejoin installs as `ca.crt` and embeds in `kubelet.conf`, re-encoded from what was
/// parsed rather than copied, so nothing but those certificates reaches the disk.
pub fn pem_bundle(certs_der: &[Vec<u8>]) -> Vec<u8> {
    certs_der
        .iter()
        .map(|der| pem_encode("CERTIFICATE", der))
        .collect::<String>()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_keep_order_and_labels() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n\
            -----BEGIN FOO-----\nMAA=\n-----END FOO-----\n\
            -----BEGIN EC PRIVATE KEY-----\nMAEC\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(
            pem_blocks(pem),
            vec![
                ("CERTIFICATE", vec![0x30, 0x00]),
                ("EC PRIVATE KEY", vec![0x30, 0x01, 0x02])
            ]
        );
    }
}
