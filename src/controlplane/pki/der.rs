//! Minimal DER helpers: reading the CA, writing SEC1, PEM armour.

pub(super) fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
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

pub(super) fn der_write(tag: u8, content: &[u8]) -> Vec<u8> {
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

pub(super) fn pem(label: &str, der: &[u8]) -> Vec<u8> {
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

pub(super) const OID_SKI: &[u8] = &[0x55, 0x1d, 0x0e];
pub(super) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(super) const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// The subjectKeyIdentifier of a certificate's extensions (contents of the extensions SEQUENCE).
pub(super) fn subject_key_id(extensions: &[u8]) -> Option<Vec<u8>> {
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
