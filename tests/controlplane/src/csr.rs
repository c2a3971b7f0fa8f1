//! CertificateSigningRequests: parsing `spec.request` the way Go does, create validation (the
//! 422s), the csrapproving controller's recognizers (spec §5.3) and the csrsigning controller.

use crate::objects::{quote, FieldError};
use crate::pki::{self, ku, oid, GoName, Sans, Template};
use crate::version::ServerVersion;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

pub(crate) const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub(crate) const APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
pub(crate) const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
pub(crate) const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";

/// `allValidUsages`, sorted as `sets.List` returns them.
const VALID_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// A parsed, signature-checked PKCS#10 request: the parts Go's `x509.CertificateRequest` exposes.
#[derive(Debug, Clone)]
pub(crate) struct ParsedCsr {
    pub subject: GoName,
    pub spki: Vec<u8>,
    pub sans: Sans,
}

/// Why `spec.request` is not acceptable; `Display` is Go's error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotPem,
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Signature(&'static str),
}

/// `certificates.ParseCSR` + `CheckSignature`.
pub(crate) fn parse_request(pem: &[u8]) -> Result<ParsedCsr, RequestError> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;

    let (label, der) = pki::pem_decode_first(pem).ok_or(RequestError::NotPem)?;
    if label != "CERTIFICATE REQUEST" {
        return Err(RequestError::NotPem);
    }
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| RequestError::Malformed(format!("asn1: structure error: {e}")))?;
    if !rest.is_empty() {
        return Err(RequestError::Malformed(
            "asn1: syntax error: trailing data".into(),
        ));
    }
    let info = &csr.certification_request_info;
    let key_alg = info.subject_pki.algorithm.algorithm.to_id_string();
    if csr.verify_signature().is_err() {
        return Err(RequestError::Signature(match key_alg.as_str() {
            "1.2.840.113549.1.1.1" => "crypto/rsa: verification error",
            "1.2.840.10045.2.1" => "x509: ECDSA verification failure",
            "1.3.101.112" => "x509: Ed25519 verification failure",
            _ => "x509: cannot verify signature: algorithm unimplemented",
        }));
    }

    let mut subject = GoName::default();
    for rdn in info.subject.iter() {
        for atv in rdn.iter() {
            let Ok(value) = atv.as_str() else { continue };
            let value = value.to_string();
            match atv.attr_type().to_id_string().as_str() {
                "2.5.4.6" => subject.country.push(value),
                "2.5.4.8" => subject.province.push(value),
                "2.5.4.7" => subject.locality.push(value),
                "2.5.4.9" => subject.street.push(value),
                "2.5.4.17" => subject.postal_code.push(value),
                "2.5.4.10" => subject.organization.push(value),
                "2.5.4.11" => subject.organizational_unit.push(value),
                "2.5.4.3" => subject.common_name = value,
                "2.5.4.5" => subject.serial_number = value,
                _ => {}
            }
        }
    }
    let mut sans = Sans::default();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => sans.dns.push(d.to_string()),
                        GeneralName::RFC822Name(e) => sans.emails.push(e.to_string()),
                        GeneralName::IPAddress(ip) => sans.ips.push(ip.to_vec()),
                        GeneralName::URI(u) => sans.uris.push(u.to_string()),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(ParsedCsr {
        subject,
        spki: info.subject_pki.raw.to_vec(),
        sans,
    })
}

/// The create-time input, after JSON decoding.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewCsr {
    pub name: String,
    pub request: Option<Vec<u8>>,
    pub signer_name: String,
    pub usages: Vec<String>,
    pub expiration_seconds: Option<i64>,
}

/// `ValidateCertificateSigningRequestCreate` for v1, in its order.
pub(crate) fn validate_create(csr: &NewCsr) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if csr.name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Some(why) = path_segment_problem(&csr.name) {
        errs.push(FieldError::invalid("metadata.name", &quote(&csr.name), why));
    }
    if let Err(e) = parse_request(csr.request.as_deref().unwrap_or_default()) {
        errs.push(FieldError::invalid(
            "spec.request",
            &crate::util::go_bytes(csr.request.as_deref()),
            &e.to_string(),
        ));
    }
    if csr.usages.is_empty() {
        errs.push(FieldError::required("spec.usages", ""));
    }
    for (i, u) in csr.usages.iter().enumerate() {
        if !VALID_USAGES.contains(&u.as_str()) {
            errs.push(FieldError::not_supported(
                &format!("spec.usages[{i}]"),
                &quote(u),
                VALID_USAGES,
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, u) in csr.usages.iter().enumerate() {
        if !seen.insert(u.as_str()) {
            errs.push(FieldError::duplicate(
                &format!("spec.usages[{i}]"),
                &quote(u),
            ));
        }
    }
    if csr.signer_name == LEGACY_UNKNOWN_SIGNER {
        errs.push(FieldError::invalid(
            "spec.signerName",
            &quote(&csr.signer_name),
            "the legacy signerName is not allowed via this API version",
        ));
    } else if csr.signer_name.is_empty() {
        errs.push(FieldError::required("spec.signerName", ""));
    } else if csr.signer_name.split('/').count() != 2
        || csr.signer_name.split('/').any(str::is_empty)
        || !csr
            .signer_name
            .split('/')
            .next()
            .unwrap_or_default()
            .contains('.')
    {
        errs.push(FieldError::invalid(
            "spec.signerName",
            &quote(&csr.signer_name),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    if let Some(secs) = csr.expiration_seconds {
        if secs < 600 {
            errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                &secs.to_string(),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    errs
}

fn path_segment_problem(name: &str) -> Option<&'static str> {
    if name == "." || name == ".." {
        Some("may not be '.' or '..'")
    } else if name.contains('/') {
        Some("may not contain '/'")
    } else if name.contains('%') {
        Some("may not contain '%'")
    } else {
        None
    }
}

fn usage_set(usages: &[String]) -> BTreeSet<&str> {
    usages.iter().map(String::as_str).collect()
}

/// `ValidateKubeletClientCSR` of `version`, with its error texts (the signer reports them).
/// Up to v1.24 only the set with key encipherment passes; from v1.25 (PR 111061) also the
/// set without it. The message lists the required set sorted, as `sets.String.List()` does.
pub(crate) fn validate_kubelet_client(
    csr: &ParsedCsr,
    usages: &[String],
    version: &ServerVersion,
) -> Result<(), String> {
    if csr.subject.organization != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !csr.sans.dns.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !csr.sans.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !csr.sans.ips.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !csr.sans.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !csr.subject.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    let set = usage_set(usages);
    let with_rsa: BTreeSet<&str> = ["digital signature", "key encipherment", "client auth"].into();
    let without: BTreeSet<&str> = ["digital signature", "client auth"].into();
    let accepted = set == with_rsa || (set == without && !version.strict_kubelet_client_usages());
    if !accepted {
        return Err("usages did not match [client auth digital signature key encipherment]".into());
    }
    Ok(())
}

fn validate_kubelet_serving(csr: &ParsedCsr, usages: &[String]) -> Result<(), String> {
    if csr.subject.organization != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if csr.sans.dns.is_empty() && csr.sans.ips.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !csr.sans.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !csr.sans.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !csr.subject.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    let set = usage_set(usages);
    let with_rsa: BTreeSet<&str> = ["digital signature", "key encipherment", "server auth"].into();
    let without: BTreeSet<&str> = ["digital signature", "server auth"].into();
    if set != with_rsa && set != without {
        return Err("usages did not match [digital signature key encipherment server auth]".into());
    }
    Ok(())
}

fn validate_apiserver_client(usages: &[String]) -> Result<(), String> {
    let mut client_auth = false;
    for u in usages {
        match u.as_str() {
            "digital signature" | "key encipherment" => {}
            "client auth" => client_auth = true,
            other => return Err(format!("invalid usage for client certificate: {other}")),
        }
    }
    if client_auth {
        Ok(())
    } else {
        Err("missing required usage for client certificate: client auth".into())
    }
}

/// Which auto-approval rule (if any) a pending CSR satisfies, given the requester's
/// permissions (the SubjectAccessReviews of the approver). Returns the condition message.
pub(crate) fn auto_approval(
    csr: &ParsedCsr,
    signer_name: &str,
    usages: &[String],
    username: &str,
    may_create: impl Fn(&str) -> bool,
    version: &ServerVersion,
) -> Option<&'static str> {
    let node_client = signer_name == KUBELET_CLIENT_SIGNER
        && validate_kubelet_client(csr, usages, version).is_ok();
    if !node_client {
        return None;
    }
    if username == csr.subject.common_name && may_create("selfnodeclient") {
        return Some("Auto approving self kubelet client certificate after SubjectAccessReview.");
    }
    if may_create("nodeclient") {
        return Some("Auto approving kubelet client certificate after SubjectAccessReview.");
    }
    None
}

/// The outcome of the csrsigning controller for an approved CSR.
#[derive(Debug)]
pub(crate) enum Signing {
    /// The leaf certificate, DER.
    Issued(Vec<u8>),
    /// A `Failed` condition with reason `SignerValidationFailure`.
    Failed(String),
    /// No controller handles this signer name.
    NotMine,
}

/// kube-controller-manager's signer with kubeadm's flags: cluster CA, 1 year
/// (`--cluster-signing-duration` default), 5 minutes of backdating.
pub(crate) fn sign(
    ca: &pki::Ca,
    csr: &ParsedCsr,
    signer_name: &str,
    usages: &[String],
    expiration_seconds: Option<i64>,
    now: SystemTime,
    version: &ServerVersion,
) -> Signing {
    let check = match signer_name {
        KUBELET_CLIENT_SIGNER => validate_kubelet_client(csr, usages, version),
        APISERVER_CLIENT_SIGNER => validate_apiserver_client(usages),
        KUBELET_SERVING_SIGNER => validate_kubelet_serving(csr, usages),
        _ => return Signing::NotMine,
    };
    if let Err(why) = check {
        return Signing::Failed(why);
    }
    let now = crate::der::truncate_to_seconds(now);
    let mut ttl = Duration::from_secs(365 * 86_400);
    if let Some(secs) = expiration_seconds {
        let requested = Duration::from_secs(secs.max(600) as u64);
        ttl = ttl.min(requested);
    }
    let backdate = Duration::from_secs(300);
    let not_before = now - backdate;
    // Short-lived certificates (under 8h) do not have their end backdated: 5 minutes would be
    // a noticeable share of their life.
    let mut not_after = if ttl < Duration::from_secs(8 * 3600) {
        now + ttl
    } else {
        not_before + ttl
    };
    if not_after > ca.not_after {
        not_after = ca.not_after;
    }
    let (key_usage, ext_key_usages) = key_usages(usages);
    let template = Template {
        subject: csr.subject.to_der(),
        spki: csr.spki.clone(),
        not_before,
        not_after,
        key_usage,
        ext_key_usages,
        sans: csr.sans.clone(),
    };
    match ca.issue(&template) {
        Ok(der) => Signing::Issued(der),
        Err(e) => Signing::Failed(e.to_string()),
    }
}

/// `keyUsagesFromStrings`: key usage bits and extended key usages, the latter in Go's
/// `x509.ExtKeyUsage` order.
fn key_usages(usages: &[String]) -> (u16, Vec<&'static [u8]>) {
    let mut bits = 0u16;
    let mut ekus: BTreeSet<u8> = BTreeSet::new();
    for u in usages {
        match u.as_str() {
            "signing" | "digital signature" => bits |= ku::DIGITAL_SIGNATURE,
            "content commitment" => bits |= ku::CONTENT_COMMITMENT,
            "key encipherment" => bits |= ku::KEY_ENCIPHERMENT,
            "key agreement" => bits |= ku::KEY_AGREEMENT,
            "data encipherment" => bits |= ku::DATA_ENCIPHERMENT,
            "cert sign" => bits |= ku::CERT_SIGN,
            "crl sign" => bits |= ku::CRL_SIGN,
            "encipher only" => bits |= ku::ENCIPHER_ONLY,
            "decipher only" => bits |= ku::DECIPHER_ONLY,
            "any" => {
                ekus.insert(0);
            }
            "server auth" => {
                ekus.insert(1);
            }
            "client auth" => {
                ekus.insert(2);
            }
            "code signing" => {
                ekus.insert(3);
            }
            "email protection" | "s/mime" => {
                ekus.insert(4);
            }
            "ipsec end system" => {
                ekus.insert(5);
            }
            "ipsec tunnel" => {
                ekus.insert(6);
            }
            "ipsec user" => {
                ekus.insert(7);
            }
            "timestamping" => {
                ekus.insert(8);
            }
            "ocsp signing" => {
                ekus.insert(9);
            }
            "microsoft sgc" => {
                ekus.insert(10);
            }
            "netscape sgc" => {
                ekus.insert(11);
            }
            _ => {}
        }
    }
    let ekus = ekus
        .into_iter()
        .map(|e| match e {
            0 => oid::EKU_ANY,
            1 => oid::EKU_SERVER_AUTH,
            2 => oid::EKU_CLIENT_AUTH,
            3 => oid::EKU_CODE_SIGNING,
            4 => oid::EKU_EMAIL,
            5 => oid::EKU_IPSEC_END_SYSTEM,
            6 => oid::EKU_IPSEC_TUNNEL,
            7 => oid::EKU_IPSEC_USER,
            8 => oid::EKU_TIMESTAMPING,
            9 => oid::EKU_OCSP_SIGNING,
            10 => oid::EKU_MICROSOFT_SGC,
            _ => oid::EKU_NETSCAPE_SGC,
        })
        .collect();
    (bits, ekus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn fixture_request(name: &str) -> (Vec<u8>, Vec<String>) {
        let path = format!(
            "{}/../fixtures/apiserver/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let req = STANDARD
            .decode(v["spec"]["request"].as_str().unwrap())
            .unwrap();
        let usages = v["spec"]["usages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect();
        (req, usages)
    }

    fn v(s: &str) -> ServerVersion {
        ServerVersion::parse(s).unwrap()
    }

    fn approves_at(name: &str, version: &str) -> bool {
        let (req, usages) = fixture_request(name);
        let csr = parse_request(&req).unwrap();
        auto_approval(
            &csr,
            KUBELET_CLIENT_SIGNER,
            &usages,
            "system:bootstrap:abcdef",
            |s| s == "nodeclient",
            &v(version),
        )
        .is_some()
    }

    /// As the v1.28.7 control plane the captures come from.
    fn approves(name: &str) -> bool {
        approves_at(name, "v1.28.7")
    }

    #[test]
    fn before_v1_25_only_the_set_with_key_encipherment_is_approved_and_signed() {
        // The captured ECDSA request asks for [digital signature, client auth].
        assert!(!approves_at("csr-post-response.json", "v1.24.17"));
        assert!(approves_at("csr-post-response.json", "v1.25.0"));
        assert!(approves_at(
            "extra/x-ok-rsa-keyenc-1795347852.post.json",
            "v1.24.17"
        ));
        let (req, usages) = fixture_request("csr-post-response.json");
        let csr = parse_request(&req).unwrap();
        let ca = pki::Ca::generate("kubernetes", SystemTime::now()).unwrap();
        let sign_at = |version: &str| {
            sign(
                &ca,
                &csr,
                KUBELET_CLIENT_SIGNER,
                &usages,
                None,
                SystemTime::now(),
                &v(version),
            )
        };
        match sign_at("v1.24.0") {
            Signing::Failed(m) => assert_eq!(
                m,
                "usages did not match [client auth digital signature key encipherment]"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(sign_at("v1.25.0"), Signing::Issued(_)));
    }

    #[test]
    fn the_captured_csrs_are_judged_like_the_real_approver() {
        assert!(approves("csr-post-response.json"));
        assert!(approves("extra/x-ok-rsa-keyenc-1795347852.post.json"));
        assert!(approves("extra/x-ok-expiry3600-1795347852.post.json"));
        for bad in ["cn", "org", "dnssan", "serverauth", "keyenc-ec-only"] {
            assert!(
                !approves(&format!("extra/x-bad-{bad}-1795347852.post.json")),
                "{bad} must stay pending"
            );
        }
    }

    #[test]
    fn self_node_client_needs_the_node_itself() {
        let (req, usages) = fixture_request("csr-post-response.json");
        let csr = parse_request(&req).unwrap();
        let cn = csr.subject.common_name.clone();
        assert_eq!(
            auto_approval(
                &csr,
                KUBELET_CLIENT_SIGNER,
                &usages,
                &cn,
                |s| s == "selfnodeclient",
                &v("v1.28.7")
            ),
            Some("Auto approving self kubelet client certificate after SubjectAccessReview.")
        );
        assert_eq!(
            auto_approval(
                &csr,
                KUBELET_CLIENT_SIGNER,
                &usages,
                "someone-else",
                |s| s == "selfnodeclient",
                &v("v1.28.7")
            ),
            None
        );
    }

    #[test]
    fn garbage_and_der_are_not_pem() {
        assert_eq!(
            parse_request(b"not a csr").unwrap_err(),
            RequestError::NotPem
        );
        let (req, _) = fixture_request("csr-post-response.json");
        let (_, der) = pki::pem_decode_first(&req).unwrap();
        assert_eq!(parse_request(&der).unwrap_err(), RequestError::NotPem);
    }

    #[test]
    fn a_tampered_request_fails_its_signature() {
        let (req, _) = fixture_request("csr-post-response.json");
        let (_, mut der) = pki::pem_decode_first(&req).unwrap();
        // Flip a bit of the subject (well inside the signed part).
        der[40] ^= 0x01;
        let pem = pki::pem_encode("CERTIFICATE REQUEST", &der);
        assert!(matches!(
            parse_request(pem.as_bytes()),
            Err(RequestError::Signature(_) | RequestError::Malformed(_))
        ));
    }

    #[test]
    fn usage_validation_order_and_messages() {
        let (req, _) = fixture_request("csr-post-response.json");
        let errs = validate_create(&NewCsr {
            name: "x".into(),
            request: Some(req),
            signer_name: String::new(),
            usages: vec![
                "digital signature".into(),
                "bogus".into(),
                "digital signature".into(),
            ],
            expiration_seconds: Some(100),
        });
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.usages[1]",
                "spec.usages[2]",
                "spec.signerName",
                "spec.expirationSeconds"
            ]
        );
    }
}
