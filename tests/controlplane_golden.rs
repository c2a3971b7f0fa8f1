//! Phase-1 control-plane join core against what real kubeadm v1.24 (built from
//! v1.24.0-alpha.1) wrote for node `cp-2` (advertise 10.0.2.15) joining a cluster with external
//! etcd (`tests/fixtures/kubeadm-v1.24/`), and against goldens derived from kubeadm's source for
//! other versions (`tests/fixtures/controlplane/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use kubejoin::controlplane::certkey::{self, CertificateKey, DecryptError};
use kubejoin::controlplane::cluster::{ClusterConfig, Etcd, LocalNode};
use kubejoin::controlplane::download::{self, DownloadError};
use kubejoin::controlplane::manifests::{self, InitialMember};
use kubejoin::controlplane::{kubeconfigs, pki};
use std::collections::BTreeMap;
use std::path::PathBuf;
use x509_parser::prelude::*;

fn fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The cluster of the capture, as its outputs show it: `controlPlaneEndpoint` 127.0.0.1:6443
/// (admin.conf's server, the apiserver SAN 127.0.0.1), `apiServer.certSANs` localhost,
/// 127.0.0.1, 10.0.2.2, external etcd at http://127.0.0.1:2379 without TLS files.
fn cluster_v124() -> ClusterConfig {
    ClusterConfig::from_json(&serde_json::json!({
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": "v1.24.0-alpha.1",
        "imageRepository": "k8s.gcr.io",
        "certificatesDir": "/etc/kubernetes/pki",
        "clusterName": "kubernetes",
        "controlPlaneEndpoint": "127.0.0.1:6443",
        "apiServer": {"certSANs": ["localhost", "127.0.0.1", "10.0.2.2"]},
        "controllerManager": {},
        "scheduler": {},
        "dns": {},
        "etcd": {"external": {"endpoints": ["http://127.0.0.1:2379"]}},
        "networking": {"dnsDomain": "cluster.local", "serviceSubnet": "10.96.0.0/12"},
    }))
    .unwrap()
}

fn cp2() -> LocalNode {
    LocalNode {
        name: "cp-2".into(),
        advertise_address: "10.0.2.15".parse().unwrap(),
        bind_port: 6443,
    }
}

/// Debian has these three of kubeadm v1.24's CA directories (not /etc/pki).
fn debian_ca_dirs() -> Vec<String> {
    vec![
        "/usr/share/ca-certificates".into(),
        "/usr/local/share/ca-certificates".into(),
        "/etc/ca-certificates".into(),
    ]
}

#[test]
fn v1_24_manifests_are_byte_identical_to_kubeadm() {
    let files = manifests::control_plane(&cluster_v124(), &cp2(), &debian_ca_dirs()).unwrap();
    assert_eq!(files.len(), 3);
    for f in &files {
        let name = f.path.rsplit('/').next().unwrap();
        assert_eq!(f.path, format!("/etc/kubernetes/manifests/{name}"));
        assert_eq!(f.mode, 0o600);
        let want = fixture(&format!("kubeadm-v1.24/manifests/{name}"));
        let got = String::from_utf8(f.contents.clone()).unwrap();
        if got != want {
            for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
                assert_eq!(g, w, "{name} line {}", i + 1);
            }
            assert_eq!(got, want, "{name}");
        }
    }
}

/// The kubeconfig fixtures have their base64 data replaced by a marker; do the same.
fn strip_data(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once("-data: ") {
            Some((k, _)) => format!("{k}-data: <base64 PEM, removed>"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn v1_24_kubeconfigs_match_kubeadm() {
    let cfg = cluster_v124();
    let specs = kubeconfigs::specs(&cfg, &cp2());
    let names: Vec<_> = specs.iter().map(|s| s.file).collect();
    assert_eq!(
        names,
        ["admin.conf", "controller-manager.conf", "scheduler.conf"]
    );
    for s in &specs {
        let text = kubeconfigs::render(&cfg, s, b"ca", b"cert", b"key");
        assert_eq!(
            strip_data(&text),
            fixture(&format!("kubeadm-v1.24/kubeconfig/{}", s.file)),
            "{}",
            s.file
        );
    }
    assert_eq!(specs[0].organization, ["system:masters"]);
    assert!(specs[1].organization.is_empty() && specs[2].organization.is_empty());
}

// ---- certificates, field by field ----

/// `Dec  6 19:38:14 2026 GMT` → seconds since the epoch.
fn openssl_time(s: &str) -> i64 {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[0])
    .unwrap() as i64
        + 1;
    let day: i64 = parts[1].parse().unwrap();
    let hms: Vec<i64> = parts[2].split(':').map(|x| x.parse().unwrap()).collect();
    let year: i64 = parts[3].parse().unwrap();
    // days_from_civil (Howard Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
}

/// The fields of an openssl text dump the fixture keeps.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields {
    subject: String,
    issuer: String,
    not_before: i64,
    not_after: i64,
    key_usage: String,
    ext_key_usage: String,
    basic_constraints: String,
    sans: String,
    has_aki: bool,
    key: String,
    signature: String,
}

fn golden_fields(text: &str) -> Fields {
    let mut f = Fields::default();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let next = || {
            lines
                .get(i + 1)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        if let Some(v) = l.strip_prefix("subject=") {
            f.subject = v.to_string();
        } else if let Some(v) = l.strip_prefix("issuer=") {
            f.issuer = v.to_string();
        } else if let Some(v) = l.strip_prefix("notBefore=") {
            f.not_before = openssl_time(v);
        } else if let Some(v) = l.strip_prefix("notAfter=") {
            f.not_after = openssl_time(v);
        } else if l.starts_with("X509v3 Key Usage") {
            f.key_usage = format!("{} {}", l.contains("critical"), next());
        } else if l.starts_with("X509v3 Extended Key Usage") {
            f.ext_key_usage = next();
        } else if l.starts_with("X509v3 Basic Constraints") {
            f.basic_constraints = format!("{} {}", l.contains("critical"), next());
        } else if l.starts_with("X509v3 Subject Alternative Name") {
            f.sans = next();
        } else if l.starts_with("X509v3 Authority Key Identifier") {
            f.has_aki = true;
        } else if l.trim().starts_with("Public-Key:") {
            f.key = format!("{} {}", l.trim(), lines[i + 1].trim());
        } else if l.trim().starts_with("Signature Algorithm:") && f.signature.is_empty() {
            f.signature = l.trim().to_string();
        }
    }
    f
}

fn name_text(n: &X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for rdn in n.iter() {
        for a in rdn.iter() {
            let short = match a.attr_type().to_id_string().as_str() {
                "2.5.4.3" => "CN",
                "2.5.4.10" => "O",
                other => panic!("unexpected attribute {other}"),
            };
            parts.push(format!("{short} = {}", a.as_str().unwrap()));
        }
    }
    parts.join(", ")
}

fn generated_fields(pem: &[u8], ca_ski: &[u8]) -> Fields {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    let cert = p.parse_x509().unwrap();
    let mut f = Fields {
        subject: name_text(cert.subject()),
        issuer: name_text(cert.issuer()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        ..Fields::default()
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                let mut v = Vec::new();
                if ku.digital_signature() {
                    v.push("Digital Signature");
                }
                if ku.key_encipherment() {
                    v.push("Key Encipherment");
                }
                if ku.key_cert_sign() {
                    v.push("Certificate Sign");
                }
                f.key_usage = format!("{} {}", ext.critical, v.join(", "));
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let mut v = Vec::new();
                if eku.server_auth {
                    v.push("TLS Web Server Authentication");
                }
                if eku.client_auth {
                    v.push("TLS Web Client Authentication");
                }
                f.ext_key_usage = v.join(", ");
            }
            ParsedExtension::BasicConstraints(bc) => {
                f.basic_constraints = format!(
                    "{} CA:{}",
                    ext.critical,
                    if bc.ca { "TRUE" } else { "FALSE" }
                );
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                let v: Vec<String> = san
                    .general_names
                    .iter()
                    .map(|g| match g {
                        GeneralName::DNSName(d) => format!("DNS:{d}"),
                        GeneralName::IPAddress(b) => {
                            let ip: std::net::IpAddr = match b.len() {
                                4 => <[u8; 4]>::try_from(*b).unwrap().into(),
                                _ => <[u8; 16]>::try_from(*b).unwrap().into(),
                            };
                            format!("IP Address:{}", ip.to_string().to_uppercase())
                        }
                        other => panic!("unexpected SAN {other:?}"),
                    })
                    .collect();
                f.sans = v.join(", ");
            }
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                assert_eq!(
                    aki.key_identifier.as_ref().unwrap().0,
                    ca_ski,
                    "AKI is the CA's SKI"
                );
                f.has_aki = true;
            }
            ParsedExtension::SubjectKeyIdentifier(_) => panic!("kubeadm leaves have no SKI"),
            _ => {}
        }
    }
    let spki = cert.public_key();
    match spki.parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            f.key = format!(
                "Public-Key: ({} bit) Public Key Algorithm: rsaEncryption",
                rsa.key_size()
            );
        }
        other => panic!("not RSA: {other:?}"),
    }
    assert_eq!(
        cert.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.11"
    );
    f.signature = "Signature Algorithm: sha256WithRSAEncryption".into();
    // Serial: positive, at most 63 bits, not zero.
    let serial = cert.tbs_certificate.raw_serial();
    assert!(
        !serial.is_empty() && serial.len() <= 8 && serial[0] & 0x80 == 0,
        "serial {serial:?}"
    );
    f
}

fn ski_of(pem: &[u8]) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    let cert = p.parse_x509().unwrap();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectKeyIdentifier(k) = ext.parsed_extension() {
            return k.0.to_vec();
        }
    }
    panic!("CA without SKI")
}

#[test]
fn v1_24_certificates_match_kubeadm_field_by_field() {
    let cfg = cluster_v124();
    let node = cp2();
    // Two RSA-2048 CAs with the notBefore of the capture's CAs; the join at the capture's time.
    let ca_nb = openssl_time("Dec  6 19:38:14 2026 GMT");
    let fp_nb = openssl_time("Dec  6 19:38:15 2026 GMT");
    let now = openssl_time("Dec  6 20:07:46 2026 GMT");
    let ten_years = openssl_time("Dec  3 19:38:14 2036 GMT") - ca_nb;
    let alg = cfg.key_algorithm;
    let (ca_pem, ca_key) = pki::self_signed_ca("kubernetes", alg, ca_nb, ten_years).unwrap();
    let (fp_pem, fp_key) = pki::self_signed_ca("front-proxy-ca", alg, fp_nb, ten_years).unwrap();
    // The CAs themselves match the capture's ca.txt / front-proxy-ca.txt (what init made).
    for (pem, golden) in [(&ca_pem, "ca.txt"), (&fp_pem, "front-proxy-ca.txt")] {
        let want = golden_fields(&fixture(&format!("kubeadm-v1.24/certs/{golden}")));
        let (_, p) = x509_parser::pem::parse_x509_pem(pem).unwrap();
        let c = p.parse_x509().unwrap();
        assert_eq!(name_text(c.subject()), want.subject);
        assert_eq!(
            (
                c.validity().not_before.timestamp(),
                c.validity().not_after.timestamp()
            ),
            (want.not_before, want.not_after)
        );
    }
    let ca = pki::Ca::from_pem("ca", &ca_pem, &ca_key).unwrap();
    let fp = pki::Ca::from_pem("front-proxy-ca", &fp_pem, &fp_key).unwrap();
    let cas = pki::Cas {
        ca: &ca,
        front_proxy_ca: &fp,
        etcd_ca: None,
    };
    let files = pki::leaf_files(&cfg, &node, &cas, now).unwrap();
    let by_path: BTreeMap<&str, &kubejoin::controlplane::NodeFile> =
        files.iter().map(|f| (f.path.as_str(), f)).collect();
    assert_eq!(
        by_path.keys().copied().collect::<Vec<_>>(),
        [
            "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
            "/etc/kubernetes/pki/apiserver-kubelet-client.key",
            "/etc/kubernetes/pki/apiserver.crt",
            "/etc/kubernetes/pki/apiserver.key",
            "/etc/kubernetes/pki/front-proxy-client.crt",
            "/etc/kubernetes/pki/front-proxy-client.key",
        ]
    );
    for (name, ca_pem) in [
        ("apiserver", &ca_pem),
        ("apiserver-kubelet-client", &ca_pem),
        ("front-proxy-client", &fp_pem),
    ] {
        let crt = by_path[format!("/etc/kubernetes/pki/{name}.crt").as_str()];
        let key = by_path[format!("/etc/kubernetes/pki/{name}.key").as_str()];
        assert_eq!((crt.mode, key.mode), (0o644, 0o600), "{name}");
        assert!(
            String::from_utf8_lossy(&key.contents).starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        assert!(format!("{key:?}").contains("redacted"));
        let want = golden_fields(&fixture(&format!("kubeadm-v1.24/certs/{name}.txt")));
        let got = generated_fields(&crt.contents, &ski_of(ca_pem));
        assert_eq!(got, want, "{name}");
        // The key in the .key file is the certificate's.
        let signer = pki::KeySigner::from_pem(name, &key.contents).unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(&crt.contents).unwrap();
        let c = p.parse_x509().unwrap();
        use rcgen::PublicKeyData as _;
        assert_eq!(
            c.public_key().subject_public_key.data.as_ref(),
            signer.der_bytes()
        );
    }
}

// ---- kubeadm-certs known answers ----

fn vectors() -> serde_json::Value {
    serde_json::from_str(&fixture("kubeadm-v1.24/kubeadm-certs-vectors.json")).unwrap()
}

#[test]
fn kubeadm_certs_known_answers_decrypt() {
    let v = vectors();
    let key = CertificateKey::parse(v["certificateKey"].as_str().unwrap()).unwrap();
    let entries = v["entries"].as_object().unwrap();
    assert!(entries.len() >= 4);
    for (name, e) in entries {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(e["secretValueBase64"].as_str().unwrap())
            .unwrap();
        let plain = e["plaintext"].as_str().unwrap();
        if sealed.is_empty() {
            assert!(plain.is_empty(), "{name}");
            continue;
        }
        assert_eq!(
            certkey::decrypt(&key, &sealed).unwrap(),
            plain.as_bytes(),
            "{name}"
        );
        // Another key fails the tag, as does a truncated value.
        let other = CertificateKey::from_bytes([0x5a; 32]);
        assert_eq!(
            certkey::decrypt(&other, &sealed),
            Err(DecryptError::TagMismatch)
        );
        assert_eq!(
            certkey::decrypt(&key, &sealed[..sealed.len() - 1]),
            Err(DecryptError::TagMismatch)
        );
    }
}

/// A Secret like the capture's: the known-answer entries as captured, the private keys (not in
/// the vectors) encrypted by us with the same key, the external-etcd entries empty.
fn secret_like_capture(key: &CertificateKey) -> BTreeMap<String, Vec<u8>> {
    let v = vectors();
    let mut data = BTreeMap::new();
    for (name, e) in v["entries"].as_object().unwrap() {
        data.insert(
            name.clone(),
            base64::engine::general_purpose::STANDARD
                .decode(e["secretValueBase64"].as_str().unwrap())
                .unwrap(),
        );
    }
    let (_, ca_key) = pki::self_signed_ca(
        "kubernetes",
        kubejoin::controlplane::cluster::KeyAlgorithm::EcdsaP256,
        0,
        10,
    )
    .unwrap();
    for name in ["ca.key", "front-proxy-ca.key", "sa.key"] {
        data.insert(name.into(), certkey::encrypt(key, &ca_key).unwrap());
    }
    for name in ["external-etcd.crt", "external-etcd.key"] {
        data.entry(name.to_string()).or_insert_with(Vec::new);
    }
    data
}

#[test]
fn download_certs_maps_entries_to_files_like_kubeadm() {
    let v = vectors();
    let key = CertificateKey::parse(v["certificateKey"].as_str().unwrap()).unwrap();
    let cfg = cluster_v124();
    let data = secret_like_capture(&key);
    let got = download::files(&data, &key, &cfg.certificates_dir, &cfg.etcd).unwrap();
    let summary: Vec<(String, u32)> = got.files.iter().map(|f| (f.path.clone(), f.mode)).collect();
    assert_eq!(
        summary,
        [
            ("/etc/kubernetes/pki/ca.crt".to_string(), 0o644),
            ("/etc/kubernetes/pki/ca.key".to_string(), 0o600),
            ("/etc/kubernetes/pki/front-proxy-ca.crt".to_string(), 0o644),
            ("/etc/kubernetes/pki/front-proxy-ca.key".to_string(), 0o600),
            ("/etc/kubernetes/pki/sa.key".to_string(), 0o600),
            ("/etc/kubernetes/pki/sa.pub".to_string(), 0o644),
        ]
    );
    // Exactly the entries the capture's log says were not saved.
    assert_eq!(
        got.skipped_empty,
        [
            "external-etcd-ca.crt",
            "external-etcd.crt",
            "external-etcd.key"
        ]
    );
    assert_eq!(
        got.files[0].contents,
        v["entries"]["ca.crt"]["plaintext"]
            .as_str()
            .unwrap()
            .as_bytes()
    );
    for f in &got.files {
        if f.mode == 0o600 {
            assert!(f.secret && format!("{f:?}").contains("redacted"));
        }
    }
}

#[test]
fn download_certs_refuses_wrong_key_missing_entries_and_bad_secrets() {
    let v = vectors();
    let key = CertificateKey::parse(v["certificateKey"].as_str().unwrap()).unwrap();
    let cfg = cluster_v124();
    let data = secret_like_capture(&key);
    let wrong = CertificateKey::from_bytes([1; 32]);
    let e = download::files(&data, &wrong, &cfg.certificates_dir, &cfg.etcd).unwrap_err();
    assert!(
        matches!(
            e,
            DownloadError::WrongKey {
                cause: DecryptError::TagMismatch,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.starts_with(
        "the certificate key does not decrypt kubeadm-certs: wrong key, or the Secret was re-uploaded with another key"
    ), "{msg}");
    assert!(e
        .hint()
        .unwrap()
        .contains("kubeadm init phase upload-certs --upload-certs"));
    assert!(!msg.contains(&key.to_hex()) && !msg.contains(&wrong.to_hex()));

    let mut partial = data.clone();
    partial.remove("sa.pub");
    assert_eq!(
        download::files(&partial, &key, &cfg.certificates_dir, &cfg.etcd).unwrap_err(),
        DownloadError::MissingEntry {
            entry: "sa.pub".into(),
            path: "/etc/kubernetes/pki/sa.pub".into()
        }
    );
    // Stacked etcd needs the etcd CA entries, named with `-` for `/`.
    let stacked = Etcd::Local(Default::default());
    assert_eq!(
        download::files(&data, &key, "/etc/kubernetes/pki", &stacked).unwrap_err(),
        DownloadError::MissingEntry {
            entry: "etcd-ca.crt".into(),
            path: "/etc/kubernetes/pki/etcd/ca.crt".into()
        }
    );
    // 404 (expired or never uploaded) and 403 (RBAC) name the cause and the remedy.
    let nf = download::classify_status(404).unwrap();
    assert!(nf.to_string().contains("2 hours") && nf.hint().unwrap().contains("upload-certs"));
    assert_eq!(
        download::classify_status(403),
        Some(DownloadError::Forbidden)
    );
    assert!(download::classify_status(500).is_none());
    // Garbage is refused, not half-used.
    let mut junk = data.clone();
    junk.insert("sa.pub".into(), certkey::encrypt(&key, b"not pem").unwrap());
    assert_eq!(
        download::files(&junk, &key, "/etc/kubernetes/pki", &cfg.etcd).unwrap_err(),
        DownloadError::UnknownData {
            entry: "sa.pub".into()
        }
    );
    assert!(download::secret_data(&serde_json::json!({"kind": "ConfigMap"})).is_err());
}

#[test]
fn stacked_etcd_transfers_and_external_paths() {
    let t = download::transfers("/etc/kubernetes/pki", &Etcd::Local(Default::default()));
    let names: Vec<_> = t
        .iter()
        .map(|t| (t.entry.as_str(), t.path.as_str()))
        .collect();
    assert_eq!(
        &names[6..],
        [
            ("etcd-ca.crt", "/etc/kubernetes/pki/etcd/ca.crt"),
            ("etcd-ca.key", "/etc/kubernetes/pki/etcd/ca.key")
        ]
    );
    let ext = Etcd::External(kubejoin::controlplane::cluster::ExternalEtcd {
        endpoints: vec!["https://e:2379".into()],
        ca_file: "/etc/etcd/ca.pem".into(),
        cert_file: "/etc/etcd/client.pem".into(),
        key_file: "/etc/etcd/client-key.pem".into(),
    });
    let t = download::transfers("/etc/kubernetes/pki", &ext);
    assert_eq!(t[6].path, "/etc/etcd/ca.pem");
    assert_eq!(t[8].entry, "external-etcd.key");
}

// ---- goldens derived from kubeadm's source for other versions and stacked etcd ----

fn stacked_cluster(version: &str, repo: &str, api: &str) -> ClusterConfig {
    ClusterConfig::from_json(&serde_json::json!({
        "apiVersion": api,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": version,
        "imageRepository": repo,
        "certificatesDir": "/etc/kubernetes/pki",
        "clusterName": "kubernetes",
        "controlPlaneEndpoint": "cp.example:6443",
        "etcd": {"local": {"dataDir": "/var/lib/etcd"}},
        "networking": {"dnsDomain": "cluster.local", "serviceSubnet": "10.96.0.0/12", "podSubnet": "192.168.0.0/16"},
    }))
    .unwrap()
}

fn check_golden(dir: &str, files: &[kubejoin::controlplane::NodeFile]) {
    let update = std::env::var_os("KUBEJOIN_UPDATE_GOLDENS").is_some();
    for f in files {
        let name = f.path.rsplit('/').next().unwrap();
        let rel = format!("controlplane/{dir}/{name}");
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(&rel);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &f.contents).unwrap();
        }
        assert_eq!(String::from_utf8_lossy(&f.contents), fixture(&rel), "{rel}");
    }
}

fn stacked_files(cfg: &ClusterConfig) -> Vec<kubejoin::controlplane::NodeFile> {
    let node = cp2();
    let dirs: Vec<String> = manifests::host_ca_dir_candidates(cfg)
        .iter()
        .filter(|d| !d.starts_with("/etc/pki"))
        .map(|d| d.to_string())
        .collect();
    let mut files = manifests::control_plane(cfg, &node, &dirs).unwrap();
    let members = vec![
        InitialMember {
            name: "cp-1".into(),
            peer_url: "https://10.0.2.10:2380".into(),
        },
        InitialMember {
            name: "cp-2".into(),
            peer_url: "https://10.0.2.15:2380".into(),
        },
    ];
    files.push(manifests::etcd(cfg, &node, &members).unwrap());
    files
}

#[test]
fn stacked_v1_24_goldens() {
    check_golden(
        "v1.24-stacked",
        &stacked_files(&stacked_cluster(
            "v1.24.17",
            "registry.k8s.io",
            "kubeadm.k8s.io/v1beta3",
        )),
    );
}

#[test]
fn stacked_v1_30_goldens() {
    check_golden(
        "v1.30-stacked",
        &stacked_files(&stacked_cluster(
            "v1.30.14",
            "registry.k8s.io",
            "kubeadm.k8s.io/v1beta3",
        )),
    );
}

#[test]
fn stacked_v1_36_goldens() {
    check_golden(
        "v1.36-stacked",
        &stacked_files(&stacked_cluster(
            "v1.36.0",
            "registry.k8s.io",
            "kubeadm.k8s.io/v1beta4",
        )),
    );
}
