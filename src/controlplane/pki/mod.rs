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

mod ca;
mod der;
mod leaf;

use ca::go_dn_value;
pub use ca::{Ca, KeySigner};
pub use leaf::LeafKey;

use super::cluster::{ClusterConfig, Etcd, KeyAlgorithm, LocalNode};
use super::{join_path, NodeFile};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SystemRandom;
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
