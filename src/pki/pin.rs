//! CA public-key pins (`sha256:<hex>` of the DER SubjectPublicKeyInfo), as kubeadm's pubkeypin.

use sha2::{Digest, Sha256};
use std::fmt;

/// One `sha256:<64 hex>` pin. Stored lower-cased; the `SHA256:` prefix and upper-case hex are
/// accepted on input, as kubeadm does.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CaPin([u8; 32]);

/// Why a pin string was refused. Texts follow kubeadm's pubkeypin messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("invalid hash {0:?}, expected \"format:hex-value\". Known format(s) are: sha256")]
    Format(String),
    #[error("unknown hash format {0:?}. Known format(s) are: sha256")]
    UnknownFormat(String),
    #[error("invalid hash {full:?}, expected a 32 byte SHA-256 hash, found {found} bytes")]
    Length { full: String, found: usize },
    #[error("invalid hash {0:?}, could not decode SHA-256 from hex")]
    Hex(String),
}

impl CaPin {
    /// Parses `sha256:<hex>` (case-insensitive), with kubeadm's checks and messages.
    pub fn parse(s: &str) -> Result<Self, PinError> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 2 {
            return Err(PinError::Format(s.to_string()));
        }
        if !parts[0].eq_ignore_ascii_case("sha256") {
            return Err(PinError::UnknownFormat(parts[0].to_string()));
        }
        let hexpart = parts[1];
        // Go's hex.DecodedLen(n) = n / 2.
        if hexpart.len() / 2 != 32 {
            return Err(PinError::Length {
                full: s.to_string(),
                found: hexpart.len() / 2,
            });
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hexpart.to_ascii_lowercase(), &mut out)
            .map_err(|_| PinError::Hex(s.to_string()))?;
        Ok(Self(out))
    }

    /// The pin of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }

    /// The pin of a DER certificate (hash of its SubjectPublicKeyInfo, not of the certificate).
    pub fn of_cert_der(cert_der: &[u8]) -> Result<Self, CertParseError> {
        let cert = crate::pki::x509::parse_certificate(cert_der)
            .map_err(|e| CertParseError(e.to_string()))?;
        Ok(Self::of_spki(cert.spki.raw))
    }

    /// The 32 digest bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A certificate that did not parse as X.509.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate does not parse as X.509: {0}")]
pub struct CertParseError(pub String);

/// The set of pins a join accepts; any CA of the bundle matching any pin is a match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinSet(Vec<CaPin>);

impl PinSet {
    /// Parses every pin; fails on the first bad one and keeps nothing, like kubeadm's `Allow`.
    pub fn parse<S: AsRef<str>>(pins: &[S]) -> Result<Self, PinError> {
        let mut set = Vec::new();
        for p in pins {
            let pin = CaPin::parse(p.as_ref())?;
            if !set.contains(&pin) {
                set.push(pin);
            }
        }
        Ok(Self(set))
    }

    /// The set of pins already parsed (duplicates dropped, order kept).
    pub fn from_pins(pins: &[CaPin]) -> Self {
        let mut set: Vec<CaPin> = Vec::with_capacity(pins.len());
        for p in pins {
            if !set.contains(p) {
                set.push(p.clone());
            }
        }
        Self(set)
    }

    /// No pin configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pins, in the order given.
    pub fn pins(&self) -> &[CaPin] {
        &self.0
    }

    /// The first pin that matches any of the certificates (DER), if one does.
    pub fn matching(&self, certs_der: &[Vec<u8>]) -> Result<Option<CaPin>, CertParseError> {
        for der in certs_der {
            let pin = CaPin::of_cert_der(der)?;
            if self.0.contains(&pin) {
                return Ok(Some(pin));
            }
        }
        Ok(None)
    }

    /// Splits a CA bundle (DER, in bundle order) into the certificates a pin matches and the
    /// rest, each with its own pin; a certificate repeated in the bundle is kept once. After a
    /// match only [`Partition::pinned`] is ever trusted: a bundle is signed with the bootstrap
    /// token, so anyone holding the token can add a CA of their own next to the real one.
    pub fn partition(&self, certs_der: &[Vec<u8>]) -> Result<Partition, CertParseError> {
        let mut out = Partition::default();
        for der in certs_der {
            let pin = CaPin::of_cert_der(der)?;
            let side = if self.0.contains(&pin) {
                &mut out.pinned
            } else {
                &mut out.unpinned
            };
            if !side.iter().any(|(_, d)| d == der) {
                side.push((pin, der.clone()));
            }
        }
        Ok(out)
    }
}

/// A CA bundle split by [`PinSet::partition`]: `(pin, DER)` in bundle order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partition {
    /// Certificates whose public key is pinned: the only trust anchors after discovery.
    pub pinned: Vec<(CaPin, Vec<u8>)>,
    /// Certificates of the bundle that no pin names: never trusted.
    pub unpinned: Vec<(CaPin, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::pem::{certs_from_pem, pem_bundle, PemError};

    // Upstream vectors: kubeadm pubkeypin_test.go (spec §11.2).
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIDRDCCAiygAwIBAgIJAJgVaCXvC6HkMA0GCSqGSIb3DQEBBQUAMB8xHTAbBgNV
BAMTFGt1YmVhZG0ta2V5cGlucy10ZXN0MCAXDTE3MDcwNTE3NDMxMFoYDzIxMTcw
NjExMTc0MzEwWjAfMR0wGwYDVQQDExRrdWJlYWRtLWtleXBpbnMtdGVzdDCCASIw
DQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAK0ba8mHU9UtYlzM1Own2Fk/XGjR
J4uJQvSeGLtz1hID1IA0dLwruvgLCPadXEOw/f/IWIWcmT+ZmvIHZKa/woq2iHi5
+HLhXs7aG4tjKGLYhag1hLjBI7icqV7ovkjdGAt9pWkxEzhIYClFMXDjKpMSynu+
YX6nZ9tic1cOkHmx2yiZdMkuriRQnpTOa7bb03OC1VfGl7gHlOAIYaj4539WCOr8
+ACTUMJUFEHcRZ2o8a/v6F9GMK+7SC8SJUI+GuroXqlMAdhEv4lX5Co52enYaClN
+D9FJLRpBv2YfiCQdJRaiTvCBSxEFz6BN+PtP5l2Hs703ZWEkOqCByM6HV8CAwEA
AaOBgDB+MB0GA1UdDgQWBBRQgUX8MhK2rWBWQiPHWcKzoWDH5DBPBgNVHSMESDBG
gBRQgUX8MhK2rWBWQiPHWcKzoWDH5KEjpCEwHzEdMBsGA1UEAxMUa3ViZWFkbS1r
ZXlwaW5zLXRlc3SCCQCYFWgl7wuh5DAMBgNVHRMEBTADAQH/MA0GCSqGSIb3DQEB
BQUAA4IBAQCaAUif7Pfx3X0F08cxhx8/Hdx4jcJw6MCq6iq6rsXM32ge43t8OHKC
pJW08dk58a3O1YQSMMvD6GJDAiAfXzfwcwY6j258b1ZlI9Ag0VokvhMl/XfdCsdh
AWImnL1t4hvU5jLaImUUMlYxMcSfHBGAm7WJIZ2LdEfg6YWfZh+WGbg1W7uxLxk6
y4h5rWdNnzBHWAGf7zJ0oEDV6W6RSwNXtC0JNnLaeIUm/6xdSddJlQPwUv8YH4jX
c1vuFqTnJBPcb7W//R/GI2Paicm1cmns9NLnPR35exHxFTy+D1yxmGokpoPMdife
aH+sfuxT8xeTPb3kjzF9eJTlnEquUDLM
-----END CERTIFICATE-----
";
    const TEST_CERT2: &str = "-----BEGIN CERTIFICATE-----
MIID9jCCAt6gAwIBAgIJAN5MXZDic7qYMA0GCSqGSIb3DQEBBQUAMFkxCzAJBgNV
BAYTAkFVMRMwEQYDVQQIEwpTb21lLVN0YXRlMSEwHwYDVQQKExhJbnRlcm5ldCBX
aWRnaXRzIFB0eSBMdGQxEjAQBgNVBAMTCXRlc3RDZXJ0MjAgFw0xNzA3MjQxNjA0
MDFaGA8yMTE3MDYzMDE2MDQwMVowWTELMAkGA1UEBhMCQVUxEzARBgNVBAgTClNv
bWUtU3RhdGUxITAfBgNVBAoTGEludGVybmV0IFdpZGdpdHMgUHR5IEx0ZDESMBAG
A1UEAxMJdGVzdENlcnQyMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA
0brwpJYN2ytPWzRBtZSVc3dhkQlA59AzxzqeLLkano0Pxo9NIc3T/y58nnRI8uaS
I1P7BzUfJTiUEvmAtX8NggqKK4ld/gPrU+IRww1CUYS4KCkA/0d0ctPy0JwBCjD+
b57G3rmNE8c+0jns6J96ZzNtqmv6N+ZlFBAXm1p4S+k0kGi5+hoQ6H7SYXjk2lG+
r/8jPQEjy/NSdw1dcCA0Nc6o+hPr32927dS6J9KOhBeXNYUNdbuDDmroM9/gN2e/
YMSA1olLeDPQ7Xvhk0PIyEDnHh83AffPCx5yM3htVRGddjIsPAVUJEL3z5leJtxe
fzyPghOhHJY0PXqznDQTcwIDAQABo4G+MIG7MB0GA1UdDgQWBBRP0IJqv/5rQ4Uf
SByl77dJeEapRDCBiwYDVR0jBIGDMIGAgBRP0IJqv/5rQ4UfSByl77dJeEapRKFd
pFswWTELMAkGA1UEBhMCQVUxEzARBgNVBAgTClNvbWUtU3RhdGUxITAfBgNVBAoT
GEludGVybmV0IFdpZGdpdHMgUHR5IEx0ZDESMBAGA1UEAxMJdGVzdENlcnQyggkA
3kxdkOJzupgwDAYDVR0TBAUwAwEB/zANBgkqhkiG9w0BAQUFAAOCAQEA0RIMHc10
wHHPMh9UflqBgDMF7gfbOL0juJfGloAOcohWWfMZBBJ0CQKMy3xRyoK3HmbW1eeb
iATjesw7t4VEAwf7mgKAd+eTfWYB952uq5qYJ2TI28mSofEq1Wz3RmrNkC1KCBs1
u+YMFGwyl6necV9zKCeiju4jeovI1GA38TvH7MgYln6vMJ+FbgOXj7XCpek7dQiY
KGaeSSH218mGNQaWRQw2Sm3W6cFdANoCJUph4w18s7gjtFpfV63s80hXRps+vEyv
jEQMEQpG8Ss7HGJLGLBw/xAmG0e//XS/o2dDonbGbvzToFByz8OGxjMhk6yV6hdd
+iyvsLAw/MYMSA==
-----END CERTIFICATE-----
";
    const EXPECTED: &str =
        "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3";

    #[test]
    fn upstream_pin_vectors() {
        let c1 = certs_from_pem(TEST_CERT.as_bytes()).unwrap();
        let c2 = certs_from_pem(TEST_CERT2.as_bytes()).unwrap();
        assert_eq!(CaPin::of_cert_der(&c1[0]).unwrap().to_string(), EXPECTED);
        assert_eq!(
            CaPin::of_cert_der(&c2[0]).unwrap().to_string(),
            "sha256:d1ef16989563fe7775f81a7dc55ce16a467ca9baedae2d081cb0a068b6a81971"
        );
        let set = PinSet::parse(&[EXPECTED]).unwrap();
        assert_eq!(set.matching(&c1).unwrap().unwrap().to_string(), EXPECTED);
        assert_eq!(set.matching(&c2).unwrap(), None);
        // any cert of a bundle may match
        let bundle = [c2[0].clone(), c1[0].clone()];
        assert!(set.matching(&bundle).unwrap().is_some());
    }

    #[test]
    fn upstream_set_expectations() {
        assert!(matches!(PinSet::parse(&["xyz"]), Err(PinError::Format(_))));
        assert!(matches!(
            PinSet::parse(&["0011223344"]),
            Err(PinError::Format(_))
        ));
        let double = format!("{EXPECTED}{EXPECTED}");
        assert!(matches!(PinSet::parse(&[double]), Err(PinError::Format(_))));
        let upper = EXPECTED.to_uppercase();
        assert_eq!(
            PinSet::parse(&[upper]).unwrap().pins()[0].to_string(),
            EXPECTED
        );
        assert!(matches!(
            CaPin::parse("md5:00"),
            Err(PinError::UnknownFormat(_))
        ));
        assert!(matches!(
            CaPin::parse("sha256:0011"),
            Err(PinError::Length { found: 2, .. })
        ));
        let nothex = format!("sha256:{}", "zz".repeat(32));
        assert!(matches!(CaPin::parse(&nothex), Err(PinError::Hex(_))));
    }

    #[test]
    fn token_test_ca_and_dry_run_pins() {
        // spec §11.3 testdata/ca-cert.pem (upstream constant caCertHash)
        let pem = include_str!("../../tests/fixtures/upstream/token-test-ca-cert.pem");
        let der = certs_from_pem(pem.as_bytes()).unwrap();
        assert_eq!(
            CaPin::of_cert_der(&der[0]).unwrap().to_string(),
            "sha256:98be2e6d4d8a89aa308fb15de0c07e2531ce549c68dec1687cdd5c06f0826658"
        );
        // the real control-plane capture
        let real = include_str!("../../tests/fixtures/apiserver/ca.crt");
        let der = certs_from_pem(real.as_bytes()).unwrap();
        let pin = include_str!("../../tests/fixtures/apiserver/ca-pin.txt").trim();
        assert_eq!(CaPin::of_cert_der(&der[0]).unwrap().to_string(), pin);
    }

    #[test]
    fn partition_keeps_only_pinned_certificates_trusted() {
        let c1 = certs_from_pem(TEST_CERT.as_bytes()).unwrap().remove(0);
        let c2 = certs_from_pem(TEST_CERT2.as_bytes()).unwrap().remove(0);
        let pin2 = CaPin::of_cert_der(&c2).unwrap();
        let set = PinSet::parse(&[EXPECTED]).unwrap();
        let bundle = vec![c2.clone(), c1.clone(), c1.clone()];
        let p = set.partition(&bundle).unwrap();
        assert_eq!(p.pinned.len(), 1, "a repeated certificate is kept once");
        assert_eq!(p.pinned[0].0.to_string(), EXPECTED);
        assert_eq!(p.pinned[0].1, c1);
        assert_eq!(p.unpinned, vec![(pin2.clone(), c2.clone())]);
        // Both pinned (a CA rotation): both trusted, in bundle order.
        let both = PinSet::parse(&[EXPECTED.to_string(), pin2.to_string()]).unwrap();
        let p = both.partition(&bundle).unwrap();
        assert_eq!(
            p.pinned.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
            vec![c2.clone(), c1.clone()]
        );
        assert!(p.unpinned.is_empty());
    }

    #[test]
    fn pem_bundle_round_trips_only_the_certificates() {
        let c1 = certs_from_pem(TEST_CERT.as_bytes()).unwrap();
        // The upstream PEM is already canonical (64 columns, LF): re-encoding gives it back.
        assert_eq!(pem_bundle(&c1), TEST_CERT.as_bytes());
        // Anything else in the input (a key, comments, CRLF) is not carried over.
        let messy = format!(
            "junk before\r\n{}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            TEST_CERT2.replace('\n', "\r\n")
        );
        let ders = certs_from_pem(messy.as_bytes()).unwrap();
        assert_eq!(pem_bundle(&ders), TEST_CERT2.as_bytes());
    }

    #[test]
    fn pem_without_certs_is_an_error() {
        assert_eq!(certs_from_pem(b"hello"), Err(PemError::NoCertificates));
    }
}
