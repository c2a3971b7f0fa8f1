//! A minimal DER writer: exactly what the certificates of this control plane need.
//!
//! Certificates are assembled by hand (rather than with rcgen's builder) so that they carry what
//! kube-controller-manager's signer writes and nothing else: the subject re-encoded the way Go's
//! `pkix.Name` does (several `O` values in one RDN), no subject key identifier on leaves, and the
//! extension order of Go's `x509.CreateCertificate`.

use std::time::{SystemTime, UNIX_EPOCH};

/// One tag-length-value element.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(&significant);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A `SET OF`: DER wants the encoded elements sorted.
pub(crate) fn set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    tlv(0x31, &parts.concat())
}

/// An OBJECT IDENTIFIER from its already-encoded content bytes.
pub(crate) fn oid(encoded: &[u8]) -> Vec<u8> {
    tlv(0x06, encoded)
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub(crate) fn uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = magnitude.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&trimmed);
    tlv(0x02, &content)
}

pub(crate) fn octets(content: &[u8]) -> Vec<u8> {
    tlv(0x04, content)
}

/// A BIT STRING whose last `unused` bits are padding.
pub(crate) fn bits(unused: u8, content: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(content.len() + 1);
    body.push(unused);
    body.extend_from_slice(content);
    tlv(0x03, &body)
}

pub(crate) const TRUE: [u8; 3] = [0x01, 0x01, 0xff];

/// A directory string the way Go's encoding/asn1 picks it: PrintableString when every character
/// is in its alphabet (without `*` and `&`), UTF8String otherwise.
pub(crate) fn directory_string(value: &str) -> Vec<u8> {
    let printable = value.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
            )
    });
    tlv(if printable { 0x13 } else { 0x0c }, value.as_bytes())
}

/// A certificate validity time: UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
pub(crate) fn time(t: SystemTime) -> Vec<u8> {
    let c = crate::util::Civil::from_system_time(t);
    if (1950..2050).contains(&c.year) {
        let s = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            c.year % 100,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second
        );
        tlv(0x17, s.as_bytes())
    } else {
        let s = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        tlv(0x18, s.as_bytes())
    }
}

/// Whole seconds: X.509 times have no fraction, so everything that compares them truncates too.
pub(crate) fn truncate_to_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_short_and_long_forms() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = tlv(0x04, &[0u8; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(uint(&[0, 0, 5]), vec![0x02, 1, 5]);
        assert_eq!(uint(&[0x80]), vec![0x02, 2, 0, 0x80]);
        assert_eq!(uint(&[]), vec![0x02, 1, 0]);
    }

    #[test]
    fn strings_follow_go() {
        assert_eq!(directory_string("system:nodes")[0], 0x13);
        assert_eq!(directory_string("a*b")[0], 0x0c);
        assert_eq!(directory_string("ü")[0], 0x0c);
    }

    #[test]
    fn times_switch_to_generalized_in_2050() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_348_576); // 2026-11-22T11:56:16Z
        assert_eq!(time(t), tlv(0x17, b"261122115616Z"));
        let t = UNIX_EPOCH + std::time::Duration::from_secs(2_524_608_000); // 2050-01-01T00:00:00Z
        assert_eq!(time(t), tlv(0x18, b"20500101000000Z"));
    }
}
