//! A small, strict DER reader for the few read-only X.509 uses of kubejoin: a certificate's
//! subject, validity and exact SubjectPublicKeyInfo bytes (the CA pin is SHA-256 over them), a
//! PKCS#10 request's subject, key and self-signature (checked with `ring`); PEM is [`super::pem`].
//!
//! Every function is total: lengths are checked against the input, nothing panics, trailing
//! bytes, indefinite lengths, high tag numbers and non-minimal lengths are refused.

use std::fmt;

/// Why DER input was refused: what was being read, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct DerError {
    /// The structure being read, e.g. "certificate validity".
    pub what: &'static str,
    /// What was wrong, e.g. "truncated length".
    pub why: &'static str,
}

fn err<T>(what: &'static str, why: &'static str) -> Result<T, DerError> {
    Err(DerError { what, why })
}

// Universal tags used here.
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One TLV: its tag byte, its contents, and its whole encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// A cursor over DER bytes.
#[derive(Debug, Clone)]
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let what = self.what;
        let (&tag, rest) = match self.buf.split_first() {
            Some(x) => x,
            None => return err(what, "truncated (expected another element)"),
        };
        if tag & 0x1f == 0x1f {
            return err(what, "high tag numbers are not supported");
        }
        let (&l0, mut rest) = match rest.split_first() {
            Some(x) => x,
            None => return err(what, "truncated length"),
        };
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else if l0 == 0x80 {
            return err(what, "indefinite length (not DER)");
        } else {
            let n = usize::from(l0 & 0x7f);
            if n > 4 {
                return err(what, "length too large");
            }
            let Some((bytes, r)) = rest.split_at_checked(n) else {
                return err(what, "truncated length");
            };
            if bytes.first() == Some(&0) {
                return err(what, "non-minimal length (not DER)");
            }
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return err(what, "non-minimal length (not DER)");
            }
            rest = r;
            len
        };
        let Some((content, after)) = rest.split_at_checked(len) else {
            return err(what, "truncated contents");
        };
        let header = self.buf.len() - rest.len();
        let raw = self.buf.get(..header + len).unwrap_or_default();
        self.buf = after;
        Ok(Tlv { tag, content, raw })
    }

    fn expect(&mut self, tag: u8, why: &'static str) -> Result<Tlv<'a>, DerError> {
        let t = self.any()?;
        if t.tag != tag {
            return err(self.what, why);
        }
        Ok(t)
    }

    /// The next element if it has `tag`.
    fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }

    fn end(&self) -> Result<(), DerError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            err(self.what, "trailing bytes")
        }
    }
}

/// The contents of a SEQUENCE that must be the whole input.
fn whole_sequence<'a>(der: &'a [u8], what: &'static str) -> Result<Tlv<'a>, DerError> {
    let mut r = Reader::new(der, what);
    let t = r.expect(SEQUENCE, "not a SEQUENCE")?;
    r.end()?;
    Ok(t)
}

fn check_integer(t: &Tlv<'_>, what: &'static str) -> Result<(), DerError> {
    match t.content {
        [] => err(what, "empty INTEGER"),
        [0x00, b, ..] if *b < 0x80 => err(what, "non-minimal INTEGER (not DER)"),
        [0xff, b, ..] if *b >= 0x80 => err(what, "non-minimal INTEGER (not DER)"),
        _ => Ok(()),
    }
}

fn check_oid(content: &[u8], what: &'static str) -> Result<(), DerError> {
    if content.is_empty() {
        return err(what, "empty OBJECT IDENTIFIER");
    }
    // Each arc's first byte must not be 0x80 (non-minimal), and the last byte ends an arc.
    let mut start = true;
    for b in content {
        if start && *b == 0x80 {
            return err(what, "non-minimal OBJECT IDENTIFIER arc");
        }
        start = b & 0x80 == 0;
    }
    if !start {
        return err(what, "truncated OBJECT IDENTIFIER");
    }
    Ok(())
}

/// Dotted form of OID contents (already checked), e.g. `2.5.4.3`.
pub fn oid_to_string(content: &[u8]) -> String {
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    for b in content {
        acc = acc.saturating_mul(128).saturating_add(u128::from(b & 0x7f));
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    let mut out = String::new();
    for (i, a) in arcs.iter().enumerate() {
        if i == 0 {
            let (x, y) = match a {
                0..=39 => (0, *a),
                40..=79 => (1, a - 40),
                _ => (2, a - 80),
            };
            out.push_str(&format!("{x}.{y}"));
        } else {
            out.push_str(&format!(".{a}"));
        }
    }
    out
}

/// An AlgorithmIdentifier: the algorithm OID contents and the raw parameters (if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmId<'a> {
    pub oid: &'a [u8],
    pub params: Option<Tlv<'a>>,
}

fn algorithm_id<'a>(t: &Tlv<'a>, what: &'static str) -> Result<AlgorithmId<'a>, DerError> {
    if t.tag != SEQUENCE {
        return err(what, "AlgorithmIdentifier is not a SEQUENCE");
    }
    let mut r = Reader::new(t.content, what);
    let oid = r.expect(OID, "AlgorithmIdentifier does not start with an OID")?;
    check_oid(oid.content, what)?;
    let params = if r.is_empty() { None } else { Some(r.any()?) };
    r.end()?;
    Ok(AlgorithmId {
        oid: oid.content,
        params,
    })
}

/// BIT STRING contents without unused bits.
fn bit_string_bytes<'a>(t: &Tlv<'a>, what: &'static str) -> Result<&'a [u8], DerError> {
    if t.tag != BIT_STRING {
        return err(what, "not a BIT STRING");
    }
    match t.content.split_first() {
        Some((0, bits)) => Ok(bits),
        Some(_) => err(what, "BIT STRING with unused bits"),
        None => err(what, "empty BIT STRING"),
    }
}

/// A SubjectPublicKeyInfo: its exact DER, its algorithm and the key bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spki<'a> {
    /// The whole SEQUENCE, byte for byte as in the input (what a CA pin hashes).
    pub raw: &'a [u8],
    pub algorithm: AlgorithmId<'a>,
    pub key: &'a [u8],
}

fn spki<'a>(t: &Tlv<'a>) -> Result<Spki<'a>, DerError> {
    const W: &str = "subjectPublicKeyInfo";
    if t.tag != SEQUENCE {
        return err(W, "not a SEQUENCE");
    }
    let mut r = Reader::new(t.content, W);
    let algorithm = algorithm_id(&r.any()?, W)?;
    let key = bit_string_bytes(&r.any()?, W)?;
    r.end()?;
    Ok(Spki {
        raw: t.raw,
        algorithm,
        key,
    })
}

/// One attribute of a distinguished name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// OID contents of the attribute type.
    pub oid: &'a [u8],
    pub value: Tlv<'a>,
}

/// OID contents of commonName (2.5.4.3).
pub const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// OID contents of organizationName (2.5.4.10).
pub const OID_O: &[u8] = &[0x55, 0x04, 0x0a];

impl Attribute<'_> {
    /// The value as text, for the string types that are text (UTF8String, PrintableString,
    /// IA5String, TeletexString, VisibleString, NumericString); `None` otherwise.
    pub fn as_str(&self) -> Option<&str> {
        match self.value.tag {
            0x0c | 0x12 | 0x13 | 0x14 | 0x16 | 0x1a => std::str::from_utf8(self.value.content).ok(),
            _ => None,
        }
    }

    fn short_name(&self) -> Option<&'static str> {
        Some(match self.oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x05] => "serialNumber",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x09] => "street",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "Email",
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
            _ => return None,
        })
    }
}

/// A distinguished name: its RDNs in order, each a set of attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name<'a> {
    pub rdns: Vec<Vec<Attribute<'a>>>,
}

impl<'a> Name<'a> {
    /// Every attribute, in order.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute<'a>> {
        self.rdns.iter().flatten()
    }

    /// The text values of every attribute of type `oid` (contents), in order.
    pub fn values_of(&self, oid: &[u8]) -> Vec<&str> {
        self.attributes()
            .filter(|a| a.oid == oid)
            .filter_map(|a| a.as_str())
            .collect()
    }
}

impl fmt::Display for Name<'_> {
    /// `O=system:nodes, CN=system:node:a`: RDNs joined by ", ", multi-valued RDNs by "+".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            for (j, a) in rdn.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                match a.short_name() {
                    Some(n) => f.write_str(n)?,
                    None => f.write_str(&oid_to_string(a.oid))?,
                }
                f.write_str("=")?;
                match a.as_str() {
                    Some(s) => f.write_str(s)?,
                    None => write!(f, "#{}", hex::encode(a.value.raw))?,
                }
            }
        }
        Ok(())
    }
}

fn name<'a>(t: &Tlv<'a>) -> Result<Name<'a>, DerError> {
    const W: &str = "distinguished name";
    if t.tag != SEQUENCE {
        return err(W, "not a SEQUENCE");
    }
    let mut rdns = Vec::new();
    let mut r = Reader::new(t.content, W);
    while !r.is_empty() {
        let set = r.expect(SET, "relative distinguished name is not a SET")?;
        let mut s = Reader::new(set.content, W);
        let mut rdn = Vec::new();
        while !s.is_empty() {
            let atv = s.expect(SEQUENCE, "attribute is not a SEQUENCE")?;
            let mut a = Reader::new(atv.content, W);
            let oid = a.expect(OID, "attribute type is not an OID")?;
            check_oid(oid.content, W)?;
            let value = a.any()?;
            a.end()?;
            rdn.push(Attribute {
                oid: oid.content,
                value,
            });
        }
        if rdn.is_empty() {
            return err(W, "empty relative distinguished name");
        }
        rdns.push(rdn);
    }
    Ok(Name { rdns })
}

/// A point in time of a certificate (seconds since the Unix epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub i64);

impl Time {
    /// Seconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.0
    }
}

impl fmt::Display for Time {
    /// `Nov 23 14:56:40 2026 +00:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (y, m, d) = crate::time::calendar::civil_from_days(days);
        let month = usize::try_from(m.saturating_sub(1))
            .ok()
            .and_then(|i| MONTHS.get(i))
            .copied()
            .unwrap_or("???");
        write!(
            f,
            "{month} {d:>2} {:02}:{:02}:{:02} {y} +00:00",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

fn time(t: &Tlv<'_>) -> Result<Time, DerError> {
    const W: &str = "certificate validity";
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match (t.tag, t.content) {
        (UTC_TIME, [y @ .., _, _, _, _, _, _, _, _, _, _, b'Z']) if y.len() == 2 => {
            let Some(yy) = digits(y) else {
                return err(W, "UTCTime is not digits");
            };
            let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
            (year, t.content.get(2..12))
        }
        (GENERALIZED_TIME, [y @ .., _, _, _, _, _, _, _, _, _, _, b'Z']) if y.len() == 4 => {
            let Some(year) = digits(y) else {
                return err(W, "GeneralizedTime is not digits");
            };
            (year, t.content.get(4..14))
        }
        (UTC_TIME, _) => return err(W, "UTCTime is not YYMMDDHHMMSSZ"),
        (GENERALIZED_TIME, _) => return err(W, "GeneralizedTime is not YYYYMMDDHHMMSSZ"),
        _ => return err(W, "time is neither UTCTime nor GeneralizedTime"),
    };
    let Some(rest) = rest else {
        return err(W, "truncated time");
    };
    let field = |i: usize| rest.get(i..i + 2).and_then(digits);
    let (Some(mo), Some(d), Some(h), Some(mi), Some(s)) =
        (field(0), field(2), field(4), field(6), field(8))
    else {
        return err(W, "time is not digits");
    };
    let (Ok(mo), Ok(d)) = (u32::try_from(mo), u32::try_from(d)) else {
        return err(W, "date out of range");
    };
    let mdays = crate::time::calendar::days_in_month(year, mo);
    if mdays == 0 {
        return err(W, "month out of range");
    }
    if d < 1 || d > mdays || h > 23 || mi > 59 || s > 59 {
        return err(W, "date or time of day out of range");
    }
    Ok(Time(
        crate::time::calendar::days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s,
    ))
}

/// A certificate's validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: Time,
    pub not_after: Time,
}

/// A parsed X.509 certificate (the parts kubejoin reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// 0 for v1, 2 for v3.
    pub version: u8,
    /// INTEGER contents of the serial number.
    pub serial: &'a [u8],
    pub signature_algorithm: AlgorithmId<'a>,
    pub issuer: Name<'a>,
    pub validity: Validity,
    pub subject: Name<'a>,
    pub spki: Spki<'a>,
    /// Contents of the extensions SEQUENCE, if present.
    pub extensions: Option<&'a [u8]>,
    pub signature: &'a [u8],
}

/// Parses one DER certificate, which must be the whole of `der`.
pub fn parse_certificate(der: &[u8]) -> Result<Certificate<'_>, DerError> {
    const W: &str = "certificate";
    let outer = whole_sequence(der, W)?;
    let mut r = Reader::new(outer.content, W);
    let tbs = r.expect(SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let outer_alg = algorithm_id(&r.any()?, W)?;
    let signature = bit_string_bytes(&r.any()?, W)?;
    r.end()?;

    let mut t = Reader::new(tbs.content, "tbsCertificate");
    let version = match t.optional(0xa0)? {
        None => 0,
        Some(v) => {
            let mut vr = Reader::new(v.content, "certificate version");
            let i = vr.expect(INTEGER, "not an INTEGER")?;
            vr.end()?;
            match i.content {
                [n @ 0..=2] => *n,
                _ => return err("certificate version", "unknown version"),
            }
        }
    };
    let serial = t.expect(INTEGER, "serial number is not an INTEGER")?;
    check_integer(&serial, "certificate serial number")?;
    let signature_algorithm = algorithm_id(&t.any()?, "tbsCertificate")?;
    if signature_algorithm != outer_alg {
        return err(W, "the two signature algorithms differ");
    }
    let issuer = name(&t.any()?)?;
    let v = t.expect(SEQUENCE, "validity is not a SEQUENCE")?;
    let mut vr = Reader::new(v.content, "certificate validity");
    let not_before = time(&vr.any()?)?;
    let not_after = time(&vr.any()?)?;
    vr.end()?;
    let subject = name(&t.any()?)?;
    let spki = spki(&t.any()?)?;
    let _issuer_uid = t.optional(0x81)?;
    let _subject_uid = t.optional(0x82)?;
    let extensions = match t.optional(0xa3)? {
        None => None,
        Some(e) => {
            let mut er = Reader::new(e.content, "certificate extensions");
            let seq = er.expect(SEQUENCE, "not a SEQUENCE")?;
            er.end()?;
            check_extensions(seq.content)?;
            Some(seq.content)
        }
    };
    t.end()?;
    Ok(Certificate {
        version,
        serial: serial.content,
        signature_algorithm,
        issuer,
        validity: Validity {
            not_before,
            not_after,
        },
        subject,
        spki,
        extensions,
        signature,
    })
}

/// Each extension is SEQUENCE { OID, BOOLEAN DEFAULT FALSE, OCTET STRING }.
fn check_extensions(content: &[u8]) -> Result<(), DerError> {
    const W: &str = "certificate extension";
    let mut r = Reader::new(content, W);
    while !r.is_empty() {
        let ext = r.expect(SEQUENCE, "not a SEQUENCE")?;
        let mut e = Reader::new(ext.content, W);
        let oid = e.expect(OID, "does not start with an OID")?;
        check_oid(oid.content, W)?;
        if let Some(b) = e.optional(BOOLEAN)? {
            if b.content != [0xff] {
                return err(W, "critical flag is not DER TRUE");
            }
        }
        e.expect(0x04, "value is not an OCTET STRING")?;
        e.end()?;
    }
    Ok(())
}

/// A parsed PKCS#10 certification request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csr<'a> {
    /// The exact DER of certificationRequestInfo (what the signature covers).
    pub info_raw: &'a [u8],
    pub subject: Name<'a>,
    pub spki: Spki<'a>,
    /// Contents of the `[0]` attributes.
    pub attributes: &'a [u8],
    pub signature_algorithm: AlgorithmId<'a>,
    pub signature: &'a [u8],
}

/// Parses one DER PKCS#10 request, which must be the whole of `der`.
pub fn parse_csr(der: &[u8]) -> Result<Csr<'_>, DerError> {
    const W: &str = "certificate request";
    let outer = whole_sequence(der, W)?;
    let mut r = Reader::new(outer.content, W);
    let info = r.expect(SEQUENCE, "certificationRequestInfo is not a SEQUENCE")?;
    let signature_algorithm = algorithm_id(&r.any()?, W)?;
    let signature = bit_string_bytes(&r.any()?, W)?;
    r.end()?;
    let mut i = Reader::new(info.content, "certificationRequestInfo");
    let v = i.expect(INTEGER, "version is not an INTEGER")?;
    if v.content != [0] {
        return err("certificationRequestInfo", "unknown version");
    }
    let subject = name(&i.any()?)?;
    let spki = spki(&i.any()?)?;
    let attributes = i.expect(0xa0, "attributes are not [0]")?;
    i.end()?;
    Ok(Csr {
        info_raw: info.raw,
        subject,
        spki,
        attributes: attributes.content,
        signature_algorithm,
        signature,
    })
}

// OID contents of the algorithms a CSR self-signature may use.
const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const RSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const RSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];

/// Why a CSR's self-signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "unsupported signature algorithm {0} (supported: ECDSA P-256/SHA-256, P-384/SHA-384, Ed25519, RSA PKCS#1 SHA-256/384/512)"
    )]
    Unsupported(String),
    #[error("the signature does not verify under the request's own key")]
    Invalid,
}

impl Csr<'_> {
    /// Checks the self-signature over certificationRequestInfo with the request's own key.
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        use ring::signature as s;
        let key_alg = self.spki.algorithm;
        let curve = key_alg.params.filter(|p| p.tag == OID).map(|p| p.content);
        let null_or_absent = self
            .signature_algorithm
            .params
            .is_none_or(|p| p.raw == [5, 0]);
        let alg: &dyn s::VerificationAlgorithm = match (self.signature_algorithm.oid, key_alg.oid) {
            (ECDSA_SHA256, EC_PUBLIC_KEY)
                if curve == Some(P256) && self.signature_algorithm.params.is_none() =>
            {
                &s::ECDSA_P256_SHA256_ASN1
            }
            (ECDSA_SHA384, EC_PUBLIC_KEY)
                if curve == Some(P384) && self.signature_algorithm.params.is_none() =>
            {
                &s::ECDSA_P384_SHA384_ASN1
            }
            (ED25519, ED25519) if self.signature_algorithm.params.is_none() => &s::ED25519,
            (RSA_SHA256, RSA) if null_or_absent => &s::RSA_PKCS1_2048_8192_SHA256,
            (RSA_SHA384, RSA) if null_or_absent => &s::RSA_PKCS1_2048_8192_SHA384,
            (RSA_SHA512, RSA) if null_or_absent => &s::RSA_PKCS1_2048_8192_SHA512,
            (sig, key) => {
                return Err(SignatureError::Unsupported(format!(
                    "{} with a {} key",
                    oid_to_string(sig),
                    oid_to_string(key)
                )))
            }
        };
        s::UnparsedPublicKey::new(alg, self.spki.key)
            .verify(self.info_raw, self.signature)
            .map_err(|_| SignatureError::Invalid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::pki::pem::pem_blocks;
    use x509_parser::prelude::FromDer as _;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/apiserver/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// Real certificates: the captured cluster CA, the leaf it issued, and rcgen-made ones.
    fn certs() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (_, der) in pem_blocks(&fixture("ca.crt")) {
            out.push(der);
        }
        let csr: serde_json::Value = serde_json::from_slice(&fixture("csr-issued.json")).unwrap();
        let cert_b64 = csr["status"]["certificate"].as_str().unwrap();
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(cert_b64)
            .unwrap();
        for (_, der) in pem_blocks(&pem) {
            out.push(der);
        }
        // rcgen: a CA with extensions, a leaf with SANs and a GeneralizedTime validity.
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["kubernetes".into()]).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "kubernetes");
        let ca = p.self_signed(&ca_key).unwrap();
        out.push(ca.der().to_vec());
        let issuer = rcgen::Issuer::new(p, ca_key);
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let mut lp =
            rcgen::CertificateParams::new(vec!["a.example".into(), "10.0.0.1".into()]).unwrap();
        lp.distinguished_name = rcgen::DistinguishedName::new();
        lp.distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        lp.distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:w1");
        lp.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        lp.not_before = rcgen::date_time_ymd(1999, 2, 28);
        lp.not_after = rcgen::date_time_ymd(2052, 2, 29);
        out.push(lp.signed_by(&leaf_key, &issuer).unwrap().der().to_vec());
        out
    }

    fn csrs() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let mut p = rcgen::CertificateParams::default();
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name
                .push(rcgen::DnType::OrganizationName, "system:nodes");
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "system:node:worker-1");
            out.push(p.serialize_request(&key).unwrap().der().to_vec());
        }
        let body: serde_json::Value = serde_json::from_slice(&fixture("csr-issued.json")).unwrap();
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(body["spec"]["request"].as_str().unwrap())
            .unwrap();
        for (_, der) in pem_blocks(&pem) {
            out.push(der);
        }
        out
    }

    #[test]
    fn certificates_read_as_x509_parser_reads_them() {
        let certs = certs();
        assert_eq!(certs.len(), 4);
        for der in &certs {
            let ours = parse_certificate(der).unwrap();
            let (rest, theirs) = x509_parser::parse_x509_certificate(der).unwrap();
            assert!(rest.is_empty());
            assert_eq!(ours.spki.raw, theirs.tbs_certificate.subject_pki.raw);
            assert_eq!(ours.subject.to_string(), theirs.subject().to_string());
            assert_eq!(ours.issuer.to_string(), theirs.issuer().to_string());
            let v = theirs.validity();
            assert_eq!(ours.validity.not_before.0, v.not_before.timestamp());
            assert_eq!(ours.validity.not_after.0, v.not_after.timestamp());
            assert_eq!(
                ours.validity.not_before.to_string(),
                v.not_before.to_string()
            );
            assert_eq!(ours.validity.not_after.to_string(), v.not_after.to_string());
            assert_eq!(ours.serial, theirs.tbs_certificate.raw_serial());
            assert_eq!(u32::from(ours.version), theirs.version().0);
            assert_eq!(ours.signature, theirs.signature_value.data.as_ref());
            assert_eq!(
                oid_to_string(ours.signature_algorithm.oid),
                theirs.signature_algorithm.algorithm.to_id_string()
            );
            let cns = theirs
                .subject()
                .iter_common_name()
                .map(|a| a.as_str().unwrap())
                .collect::<Vec<_>>();
            assert_eq!(ours.subject.values_of(OID_CN), cns);
        }
    }

    #[test]
    fn the_pin_of_the_captured_ca_is_the_fixtures() {
        let pin = std::fs::read_to_string(format!(
            "{}/tests/fixtures/apiserver/ca-pin.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let der = &certs()[0];
        let c = parse_certificate(der).unwrap();
        assert_eq!(
            crate::pki::pin::CaPin::of_spki(c.spki.raw).to_string(),
            pin.trim()
        );
    }

    #[test]
    fn requests_read_and_verify_as_x509_parser_does() {
        let csrs = csrs();
        assert_eq!(csrs.len(), 4);
        for der in &csrs {
            let ours = parse_csr(der).unwrap();
            let (rest, theirs) =
                x509_parser::certification_request::X509CertificationRequest::from_der(der)
                    .unwrap();
            assert!(rest.is_empty());
            let info = &theirs.certification_request_info;
            assert_eq!(ours.spki.raw, info.subject_pki.raw);
            assert_eq!(ours.info_raw, info.raw);
            assert_eq!(ours.subject.to_string(), info.subject.to_string());
            theirs.verify_signature().unwrap();
            ours.verify_signature().unwrap();
            assert_eq!(
                ours.subject.values_of(OID_O),
                vec!["system:nodes"],
                "{}",
                ours.subject
            );
        }
    }

    #[test]
    fn a_tampered_request_does_not_verify() {
        for der in csrs() {
            let c = parse_csr(&der).unwrap();
            // Flip one bit of the signed part (a subject text byte: it still parses).
            let pos = der.windows(11).position(|w| w == b"system:node").unwrap() + 3;
            let mut bad = der.clone();
            bad[pos] ^= 1;
            let b = parse_csr(&bad).unwrap();
            assert_eq!(b.verify_signature(), Err(SignatureError::Invalid));
            // And a signature made by another key.
            let other = &csrs()[0];
            let o = parse_csr(other).unwrap();
            let mixed = Csr {
                signature: o.signature,
                ..c.clone()
            };
            if c.spki.raw != o.spki.raw {
                assert!(mixed.verify_signature().is_err());
            }
        }
    }

    #[test]
    fn unsupported_algorithms_are_named() {
        let der = &csrs()[0];
        let mut c = parse_csr(der).unwrap();
        c.signature_algorithm.oid = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
        let e = c.verify_signature().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported signature algorithm 1.2.840.113549.1.1.5 with a 1.2.840.10045.2.1 key \
             (supported: ECDSA P-256/SHA-256, P-384/SHA-384, Ed25519, RSA PKCS#1 SHA-256/384/512)"
        );
    }

    #[test]
    fn trailing_bytes_indefinite_and_non_minimal_lengths_are_refused() {
        let der = certs()[0].clone();
        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(
            parse_certificate(&trailing).unwrap_err().why,
            "trailing bytes"
        );
        // The outer SEQUENCE of a >255-byte certificate has the length form 0x82 hh ll.
        assert_eq!(der[1], 0x82);
        let mut long = vec![0x30, 0x83, 0x00];
        long.extend_from_slice(&der[2..]);
        assert_eq!(
            parse_certificate(&long).unwrap_err().why,
            "non-minimal length (not DER)"
        );
        let mut indefinite = vec![0x30, 0x80];
        indefinite.extend_from_slice(&der[4..]);
        indefinite.extend_from_slice(&[0, 0]);
        assert_eq!(
            parse_certificate(&indefinite).unwrap_err().why,
            "indefinite length (not DER)"
        );
        assert_eq!(
            Reader::new(&[0x02, 0x81, 0x05, 1, 2, 3, 4, 5], "x")
                .any()
                .unwrap_err()
                .why,
            "non-minimal length (not DER)"
        );
        assert!(check_integer(
            &Reader::new(&[0x02, 0x02, 0x00, 0x01], "x").any().unwrap(),
            "x"
        )
        .is_err());
        assert!(parse_certificate(&[]).is_err());
        assert!(parse_csr(&der).is_err());
        assert!(parse_certificate(&csrs()[0]).is_err());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_total() {
        for der in certs().iter().chain(csrs().iter()) {
            for n in 0..der.len() {
                assert!(parse_certificate(&der[..n]).is_err());
                assert!(parse_csr(&der[..n]).is_err());
            }
            for bit in 0..der.len() * 8 {
                let mut d = der.clone();
                d[bit / 8] ^= 1 << (bit % 8);
                crate::fuzzing::x509(&d);
            }
        }
    }

    #[test]
    fn times_follow_rfc_5280() {
        let t = |tag: u8, s: &str| {
            time(&Tlv {
                tag,
                content: s.as_bytes(),
                raw: &[],
            })
        };
        assert_eq!(t(UTC_TIME, "700101000000Z"), Ok(Time(0)));
        assert_eq!(t(UTC_TIME, "491231235959Z").unwrap().0, 2_524_607_999);
        assert_eq!(t(UTC_TIME, "500101000000Z").unwrap().0, -631_152_000);
        assert_eq!(
            t(GENERALIZED_TIME, "20240229120000Z").unwrap().to_string(),
            "Feb 29 12:00:00 2024 +00:00"
        );
        for bad in [
            "230229000000Z",
            "231301000000Z",
            "230101240000Z",
            "2301010000Z",
            "230101000000",
            "230101000000+0100",
            "23010100000aZ",
        ] {
            assert!(t(UTC_TIME, bad).is_err(), "{bad}");
        }
        assert!(t(GENERALIZED_TIME, "20230101000000.5Z").is_err());
        assert!(t(0x04, "20230101000000Z").is_err());
    }
}
