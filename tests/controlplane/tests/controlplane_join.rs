//! The control-plane side of the test control plane, checked through its API with real
//! clients and, where kubejoin has the counterpart, with kubejoin's own code (its
//! `controlplane` module: the kubeadm-certs codec, ClusterConfiguration reader, CA loader and
//! etcd client), so that the two independent readings of kubeadm agree.

// Test code (and its helpers outside #[test] fns) panics on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{csr_body, make_csr, wait_for, Client, TOKEN};
use kubejoin::controlplane as kj;
use kubejoin_testcp::{
    start, ClusterSpec, Config, ControlPlane, EtcdError, EtcdOptions, EtcdRefusal, EtcdTopology,
    ExternalEtcd, Handle, LocalEtcd, TokenSpec,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

const SECRET: &str = "/api/v1/namespaces/kube-system/secrets/kubeadm-certs";
const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";
const ETCD_PODS: &str =
    "/api/v1/namespaces/kube-system/pods?labelSelector=component%3Detcd%2Ctier%3Dcontrol-plane";
const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";

fn cp_at(version: &str, cp: ControlPlane) -> Handle {
    start(Config {
        kubernetes_version: version.into(),
        control_plane: Some(cp),
        ..Config::default()
    })
    .unwrap()
}

/// The Secret as a joining node reads it, decrypted with kubejoin's codec into files.
fn download(cp: &Handle, key: &str, etcd: &kj::cluster::Etcd) -> kj::download::Downloaded {
    let reply = Client::bootstrap(cp).get(SECRET);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = kj::download::secret_data(&reply.json()).unwrap();
    let key = kj::certkey::CertificateKey::parse(key).unwrap();
    kj::download::files(&data, &key, "/etc/kubernetes/pki", etcd).unwrap()
}

fn local_etcd() -> kj::cluster::Etcd {
    kj::cluster::Etcd::Local(kj::cluster::LocalEtcd::default())
}

fn file<'a>(d: &'a kj::download::Downloaded, path: &str) -> &'a kj::NodeFile {
    d.files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} not downloaded: {d:?}"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn kubeadm_certs_decrypts_with_kubejoins_codec_to_the_shared_pki() {
    let cp = cp_at("v1.30.4", ControlPlane::with_certificate_key(KEY));
    assert_eq!(cp.certificate_key().as_deref(), Some(KEY));
    let d = download(&cp, KEY, &local_etcd());
    let paths: Vec<(&str, u32)> = d.files.iter().map(|f| (f.path.as_str(), f.mode)).collect();
    assert_eq!(
        paths,
        [
            ("/etc/kubernetes/pki/ca.crt", 0o644),
            ("/etc/kubernetes/pki/ca.key", 0o600),
            ("/etc/kubernetes/pki/front-proxy-ca.crt", 0o644),
            ("/etc/kubernetes/pki/front-proxy-ca.key", 0o600),
            ("/etc/kubernetes/pki/sa.key", 0o600),
            ("/etc/kubernetes/pki/sa.pub", 0o644),
            ("/etc/kubernetes/pki/etcd/ca.crt", 0o644),
            ("/etc/kubernetes/pki/etcd/ca.key", 0o600),
        ]
    );
    assert!(d.skipped_empty.is_empty());
    // The cluster CA is the one this server signs with and serves in cluster-info.
    assert_eq!(
        file(&d, "/etc/kubernetes/pki/ca.crt").contents,
        cp.ca_pem().as_bytes()
    );
    assert_eq!(
        file(&d, "/etc/kubernetes/pki/etcd/ca.crt").contents,
        cp.etcd_ca_pem().unwrap().as_bytes()
    );
    for (name, content) in cp.shared_files() {
        assert_eq!(
            file(&d, &format!("/etc/kubernetes/pki/{name}")).contents,
            content,
            "{name}"
        );
    }
    // kubeadm's key formats: EC keys for the CAs it made here, RSA for the service account.
    let text = |p: &str| String::from_utf8(file(&d, p).contents.clone()).unwrap();
    assert!(text("/etc/kubernetes/pki/ca.key").starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    assert!(text("/etc/kubernetes/pki/sa.key").starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(text("/etc/kubernetes/pki/sa.pub")
        .starts_with("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"));
    // Another key: the whole download fails, naming no plaintext.
    let reply = Client::bootstrap(&cp).get(SECRET);
    let data = kj::download::secret_data(&reply.json()).unwrap();
    let wrong = kj::certkey::CertificateKey::parse(&"11".repeat(32)).unwrap();
    let err = kj::download::files(&data, &wrong, "/etc/kubernetes/pki", &local_etcd()).unwrap_err();
    assert!(
        matches!(err, kj::download::DownloadError::WrongKey { .. }),
        "{err}"
    );
    // Each value is nonce(12) ‖ ciphertext ‖ tag(16), with a fresh nonce per entry.
    let raw = cp.kubeadm_certs_data().unwrap();
    let nonces: Vec<&[u8]> = raw.values().map(|v| &v[..12]).collect();
    let mut unique = nonces.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), nonces.len());
    assert_eq!(
        raw["ca.crt"].len(),
        12 + cp.ca_pem().len() + 16,
        "AES-GCM adds only the nonce and the tag"
    );
}

#[test]
fn external_etcd_entries_are_empty_without_tls_and_files_with_it() {
    // As in the v1.24 capture: plain http, the three external entries empty and skipped.
    let cp = cp_at(
        "v1.24.0",
        ControlPlane {
            etcd: EtcdTopology::External(ExternalEtcd::plain(&["http://127.0.0.1:2379"])),
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    assert!(cp.etcd_url().is_none(), "no etcd gateway for external etcd");
    let ext = kj::cluster::Etcd::External(kj::cluster::ExternalEtcd {
        endpoints: vec!["http://127.0.0.1:2379".into()],
        ..Default::default()
    });
    let d = download(&cp, KEY, &ext);
    assert_eq!(d.files.len(), 6);
    assert_eq!(
        d.skipped_empty,
        [
            "external-etcd-ca.crt",
            "external-etcd.crt",
            "external-etcd.key"
        ]
    );
    let secret = Client::bootstrap(&cp).get(SECRET).json();
    for e in [
        "external-etcd-ca.crt",
        "external-etcd.crt",
        "external-etcd.key",
    ] {
        assert_eq!(secret["data"][e], "", "{e}");
    }
    assert!(secret["data"].get("etcd-ca.crt").is_none());
    // With TLS: the files travel and land where the ClusterConfiguration says.
    let x = ExternalEtcd::tls(&["https://10.0.0.9:2379"]);
    let cp = cp_at(
        "v1.24.0",
        ControlPlane {
            etcd: EtcdTopology::External(x.clone()),
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    let ext = kj::cluster::Etcd::External(kj::cluster::ExternalEtcd {
        endpoints: x.endpoints.clone(),
        ca_file: x.ca_file.clone(),
        cert_file: x.cert_file.clone(),
        key_file: x.key_file.clone(),
    });
    let d = download(&cp, KEY, &ext);
    assert!(d.skipped_empty.is_empty());
    assert_eq!(file(&d, &x.key_file).mode, 0o600);
    assert_eq!(file(&d, &x.ca_file).mode, 0o644);
    assert!(file(&d, &x.cert_file)
        .contents
        .starts_with(b"-----BEGIN CERTIFICATE-----"));
}

#[test]
fn the_downloaded_ca_signs_certificates_this_server_accepts() {
    for (version, admin_group) in [
        ("v1.28.9", "system:masters"),
        ("v1.33.1", "kubeadm:cluster-admins"),
    ] {
        let cp = cp_at(version, ControlPlane::with_certificate_key(KEY));
        assert_eq!(cp.kubeadm_rules().admin_group, admin_group);
        let d = download(&cp, KEY, &local_etcd());
        let ca = kj::pki::Ca::from_pem(
            "ca",
            &file(&d, "/etc/kubernetes/pki/ca.crt").contents,
            &file(&d, "/etc/kubernetes/pki/ca.key").contents,
        )
        .unwrap();
        // admin.conf's user as kubejoin makes it from the downloaded CA (RSA, as kubeadm).
        let issued = kj::pki::client_cert(
            &ca,
            "kubernetes-admin",
            &[admin_group],
            kj::cluster::KeyAlgorithm::Rsa2048,
            unix_now(),
            365 * 86_400,
        )
        .unwrap();
        let admin = Client::cert(
            &cp,
            std::str::from_utf8(&issued.cert_pem).unwrap(),
            std::str::from_utf8(&issued.key.private_pem).unwrap(),
        );
        let review = admin.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1"}),
        );
        assert_eq!(
            review.json()["status"]["userInfo"]["username"],
            "kubernetes-admin"
        );
        assert_eq!(admin.get("/api/v1/nodes").status, 200, "{version}");
        assert_eq!(admin.get(ETCD_PODS).status, 200, "{version}");
        // The same from the server's own admin.conf of the version.
        let creds =
            kubejoin_testcp::kubeconfig::parse_admin_kubeconfig(&cp.kubeadm_admin_kubeconfig())
                .unwrap();
        assert_eq!(
            Client::cert(&cp, &creds.cert_pem, &creds.key_pem)
                .get("/api/v1/nodes")
                .status,
            200
        );
    }
    // Before v1.29 the kubeadm:cluster-admins group is bound to nothing.
    let cp = cp_at("v1.28.9", ControlPlane::with_certificate_key(KEY));
    let (cert, key) = cp.issue_client_cert("kubernetes-admin", &["kubeadm:cluster-admins"]);
    let reply = Client::cert(&cp, &cert, &key).get("/api/v1/nodes");
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json()["message"],
        "nodes is forbidden: User \"kubernetes-admin\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
}

#[test]
fn the_secret_is_owned_by_a_two_hour_token_as_kubeadm_uploads_it() {
    let before = SystemTime::now();
    let cp = cp_at("v1.24.17", ControlPlane::with_certificate_key(KEY));
    let secret = Client::bootstrap(&cp).get(SECRET).json();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../fixtures/kubeadm-v1.24/kubeadm-certs-vectors.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let captured = &fixture["secretMetadata"];
    assert_eq!(secret["metadata"]["name"], captured["name"]);
    assert_eq!(secret["metadata"]["namespace"], captured["namespace"]);
    assert_eq!(secret["type"], "Opaque");
    let owner = &secret["metadata"]["ownerReferences"][0];
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(owner), keys(&captured["ownerReferences"][0]));
    for k in ["apiVersion", "kind", "controller", "blockOwnerDeletion"] {
        assert_eq!(owner[k], captured["ownerReferences"][0][k], "{k}");
    }
    let token_name = owner["name"].as_str().unwrap();
    assert!(token_name.starts_with("bootstrap-token-") && token_name.len() == 22);
    // The owner: a token with the TTL, the description and no usages (it cannot be used).
    let admin = Client::admin(&cp);
    let token = admin.get(&format!("{SECRETS}/{token_name}")).json();
    assert_eq!(token["metadata"]["uid"], owner["uid"]);
    assert_eq!(token["type"], "bootstrap.kubernetes.io/token");
    let field = |k: &str| {
        use base64::Engine as _;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(token["data"][k].as_str().unwrap_or_else(|| panic!("{k}")))
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        field("description"),
        "Proxy for managing TTL for the kubeadm-certs secret"
    );
    let mut data_keys = keys(&token["data"]);
    data_keys.sort();
    assert_eq!(
        data_keys,
        ["description", "expiration", "token-id", "token-secret"]
    );
    let expiry = cp.kubeadm_certs_expiry().unwrap();
    let ttl = expiry.duration_since(before).unwrap();
    assert!(
        ttl > Duration::from_secs(7190) && ttl <= Duration::from_secs(7205),
        "{ttl:?}"
    );
    assert!(field("expiration").ends_with('Z'));
    // The entries, by kubeadm's names.
    let mut names = keys(&secret["data"]);
    names.sort();
    assert_eq!(
        names,
        [
            "ca.crt",
            "ca.key",
            "etcd-ca.crt",
            "etcd-ca.key",
            "front-proxy-ca.crt",
            "front-proxy-ca.key",
            "sa.key",
            "sa.pub"
        ]
    );
    // The configured tokens have their Secrets too.
    let listed = admin.get(SECRETS).json();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"bootstrap-token-abcdef") && names.contains(&"kubeadm-certs"),
        "{names:?}"
    );
}

#[test]
fn only_the_default_node_token_group_may_read_the_secret() {
    let other = TokenSpec {
        extra_groups: vec!["system:bootstrappers:other".into()],
        ..TokenSpec::new("zzzzzz", "0123456789zzzzzz")
    };
    let cp = start(Config {
        tokens: vec![TokenSpec::new("abcdef", "0123456789abcdef"), other],
        control_plane: Some(ControlPlane::with_certificate_key(KEY)),
        ..Config::default()
    })
    .unwrap();
    assert_eq!(Client::bootstrap(&cp).get(SECRET).status, 200);
    let reply = Client::token(&cp, "zzzzzz.0123456789zzzzzz").get(SECRET);
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"secrets \\\"kubeadm-certs\\\" is forbidden: User \\\"system:bootstrap:zzzzzz\\\" cannot get resource \\\"secrets\\\" in API group \\\"\\\" in the namespace \\\"kube-system\\\"\",\"reason\":\"Forbidden\",\"details\":{\"name\":\"kubeadm-certs\",\"kind\":\"secrets\"},\"code\":403}\n"
    );
    // The Role names one Secret and one verb.
    assert_eq!(Client::bootstrap(&cp).get(SECRETS).status, 403);
    assert_eq!(
        Client::bootstrap(&cp)
            .get(&format!("{SECRETS}/bootstrap-token-abcdef"))
            .status,
        403
    );
    assert_eq!(Client::bootstrap(&cp).delete(SECRET).status, 403);
    let reply = Client::bootstrap(&cp).get(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/kubeadm:kubeadm-certs",
    );
    assert_eq!(reply.status, 403);
    let role = Client::admin(&cp)
        .get(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/kubeadm:kubeadm-certs",
        )
        .json();
    assert_eq!(
        role["rules"],
        json!([{"verbs":["get"],"apiGroups":[""],"resources":["secrets"],"resourceNames":["kubeadm-certs"]}])
    );
    // A node has no relationship with the Secret.
    let (cert, key) = cp.issue_client_cert("system:node:cp-2", &["system:nodes"]);
    let reply = Client::cert(&cp, &cert, &key).get(SECRET);
    assert_eq!(reply.status, 403);
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .ends_with(": no relationship found between node 'cp-2' and this object"));

    // Never uploaded: no Secret and no Role, so a bootstrapper is forbidden, not told 404.
    let cp = cp_at("v1.30.0", ControlPlane::default());
    assert!(cp.certificate_key().is_none());
    assert_eq!(Client::bootstrap(&cp).get(SECRET).status, 403);
    assert_eq!(Client::admin(&cp).get(SECRET).status, 404);
    let key = cp.upload_certs(None).unwrap();
    assert_eq!(key.len(), 64);
    assert_eq!(Client::bootstrap(&cp).get(SECRET).status, 200);
    download(&cp, &key, &local_etcd());
}

#[test]
fn the_secret_is_gone_when_its_token_expires_and_a_re_upload_brings_it_back() {
    let cp = cp_at("v1.30.0", ControlPlane::with_certificate_key(KEY));
    let first_owner =
        Client::admin(&cp).get(SECRET).json()["metadata"]["ownerReferences"][0]["name"].clone();
    assert!(cp.expire_kubeadm_certs());
    let reply = Client::bootstrap(&cp).get(SECRET);
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message":"secrets \"kubeadm-certs\" not found","reason":"NotFound",
               "details":{"name":"kubeadm-certs","kind":"secrets"},"code":404})
    );
    assert_eq!(
        kj::download::classify_status(reply.status),
        Some(kj::download::DownloadError::NotFound)
    );
    // The token went first (token cleaner), the Role stays (it has no owner).
    assert_eq!(
        Client::admin(&cp)
            .get(&format!("{SECRETS}/{}", first_owner.as_str().unwrap()))
            .status,
        404
    );
    assert!(cp.kubeadm_certs_expiry().is_none());
    // `upload-certs` again, with a new key: a new owner; the old key no longer works.
    let new_key = cp.upload_certs(None).unwrap();
    assert_ne!(new_key, KEY);
    let secret = Client::bootstrap(&cp).get(SECRET).json();
    assert_ne!(
        secret["metadata"]["ownerReferences"][0]["name"],
        first_owner
    );
    download(&cp, &new_key, &local_etcd());
    let data = kj::download::secret_data(&secret).unwrap();
    let old = kj::certkey::CertificateKey::parse(KEY).unwrap();
    assert!(kj::download::files(&data, &old, "/etc/kubernetes/pki", &local_etcd()).is_err());

    // A short TTL runs out by itself.
    let cp = cp_at(
        "v1.30.0",
        ControlPlane {
            certs_ttl: Duration::from_millis(400),
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    assert_eq!(Client::bootstrap(&cp).get(SECRET).status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(Client::bootstrap(&cp).get(SECRET).status, 404);
}

fn cluster_config(cp: &Handle) -> (String, kj::cluster::ClusterConfig) {
    let cm = Client::bootstrap(cp)
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .json();
    let text = cm["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap()
        .to_string();
    let doc: Value = kubejoin::yaml::from_str(&text).unwrap();
    (
        text.clone(),
        kj::cluster::ClusterConfig::from_json(&doc).unwrap(),
    )
}

#[test]
fn kubeadm_config_carries_what_a_control_plane_join_reads() {
    let spec = ClusterSpec {
        control_plane_endpoint: Some("cp.example:6443".into()),
        service_subnet: "10.100.0.0/16".into(),
        pod_subnet: Some("192.168.0.0/16".into()),
        dns_domain: "corp.local".into(),
        cert_sans: vec!["cp.example".into(), "10.0.2.2".into()],
        api_server_extra_args: vec![("audit-log-maxage".into(), "30".into())],
        controller_manager_extra_args: vec![("node-cidr-mask-size".into(), "25".into())],
        scheduler_extra_args: vec![("bind-address".into(), "0.0.0.0".into())],
        ..ClusterSpec::default()
    };
    let local = LocalEtcd {
        extra_args: vec![("election-timeout".into(), "2000".into())],
        server_cert_sans: vec!["etcd.example".into()],
        ..LocalEtcd::default()
    };
    for version in ["v1.24.17", "v1.30.14", "v1.33.2"] {
        let cp = cp_at(
            version,
            ControlPlane {
                cluster: spec.clone(),
                etcd: EtcdTopology::Stacked(local.clone()),
                ..ControlPlane::with_certificate_key(KEY)
            },
        );
        let (text, cfg) = cluster_config(&cp);
        assert_eq!(cfg.kubernetes_version_text, version, "{text}");
        assert_eq!(cfg.control_plane_endpoint, "cp.example:6443");
        assert_eq!(cfg.service_subnet, "10.100.0.0/16");
        assert_eq!(cfg.pod_subnet, "192.168.0.0/16");
        assert_eq!(cfg.dns_domain, "corp.local");
        assert_eq!(cfg.api_server_cert_sans, ["cp.example", "10.0.2.2"]);
        assert_eq!(
            cfg.api_server_extra_args,
            [kj::cluster::Arg::new("audit-log-maxage", "30")]
        );
        assert_eq!(
            cfg.controller_manager_extra_args,
            [kj::cluster::Arg::new("node-cidr-mask-size", "25")]
        );
        assert_eq!(
            cfg.scheduler_extra_args,
            [kj::cluster::Arg::new("bind-address", "0.0.0.0")]
        );
        let kj::cluster::Etcd::Local(l) = &cfg.etcd else {
            panic!("stacked etcd expected: {text}");
        };
        assert_eq!(
            l.extra_args,
            [kj::cluster::Arg::new("election-timeout", "2000")]
        );
        assert_eq!(l.server_cert_sans, ["etcd.example"]);
        let expect_repo = if version == "v1.24.17" {
            "k8s.gcr.io"
        } else {
            "registry.k8s.io"
        };
        assert_eq!(cfg.image_repository, expect_repo);
        // The map form up to v1beta3, the list form in v1beta4.
        if version == "v1.33.2" {
            assert!(
                text.contains("  extraArgs:\n  - name: audit-log-maxage\n    value: \"30\"\n"),
                "{text}"
            );
        } else {
            assert!(
                text.contains("  extraArgs:\n    audit-log-maxage: \"30\"\n"),
                "{text}"
            );
        }
    }
    let cp = cp_at(
        "v1.30.0",
        ControlPlane {
            etcd: EtcdTopology::External(ExternalEtcd::tls(&[
                "https://10.0.0.9:2379",
                "https://10.0.0.10:2379",
            ])),
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    let (_, cfg) = cluster_config(&cp);
    let kj::cluster::Etcd::External(x) = cfg.etcd else {
        panic!("external etcd expected")
    };
    assert_eq!(
        x.endpoints,
        ["https://10.0.0.9:2379", "https://10.0.0.10:2379"]
    );
    assert_eq!(x.key_file, "/etc/kubernetes/pki/apiserver-etcd-client.key");
}

#[test]
fn etcd_endpoints_are_discovered_as_the_version_does() {
    for (version, status, annotations) in [
        ("v1.17.17", true, false),
        ("v1.21.14", true, true),
        ("v1.22.0", false, true),
        ("v1.33.0", false, true),
    ] {
        let cp = cp_at(version, ControlPlane::with_certificate_key(KEY));
        let cm = Client::bootstrap(&cp)
            .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
            .json();
        match cm["data"]["ClusterStatus"].as_str() {
            Some(s) => {
                assert!(status, "{version}: no ClusterStatus after v1.21");
                let port = cp.addr().port();
                assert_eq!(
                    s,
                    format!("apiEndpoints:\n  cp-1:\n    advertiseAddress: 127.0.0.1\n    bindPort: {port}\napiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterStatus\n")
                );
            }
            None => assert!(!status, "{version}: ClusterStatus expected"),
        }
        // kubeadm lists the etcd Pods with admin.conf; a bootstrapper may not.
        let bootstrap = Client::bootstrap(&cp).get(ETCD_PODS);
        assert_eq!(bootstrap.status, 403);
        assert_eq!(
            bootstrap.json()["message"],
            "pods is forbidden: User \"system:bootstrap:abcdef\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
        );
        let pods = Client::admin(&cp).get(ETCD_PODS).json();
        assert_eq!(pods["kind"], "PodList");
        let items = pods["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{pods}");
        assert_eq!(items[0]["metadata"]["name"], "etcd-cp-1");
        assert_eq!(items[0]["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(
            items[0]["metadata"]["ownerReferences"][0]["uid"],
            cp.node("cp-1").unwrap()["metadata"]["uid"]
        );
        let endpoints = kj::etcd::endpoints_from_pods(&pods);
        if annotations {
            assert_eq!(endpoints, [cp.etcd_url().unwrap()], "{version}");
            let api = Client::admin(&cp)
                .get("/api/v1/namespaces/kube-system/pods/kube-apiserver-cp-1")
                .json();
            assert_eq!(
                api["metadata"]["annotations"]
                    ["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"],
                cp.endpoint()
            );
        } else {
            assert!(
                endpoints.is_empty(),
                "{version}: no annotation before v1.18"
            );
        }
        // A node may read Pods (the Node authorizer's system:node rules).
        let (cert, key) = cp.issue_client_cert("system:node:cp-2", &["system:nodes"]);
        assert_eq!(Client::cert(&cp, &cert, &key).get(ETCD_PODS).status, 200);
    }
    // Worker-only clusters have no control-plane Pods to show.
    let cp = start(Config::default()).unwrap();
    assert_eq!(Client::admin(&cp).get(ETCD_PODS).json()["items"], json!([]));
}

// ---- the etcd gateway ------------------------------------------------------------------------

fn etcd_agent(ca_pem: &str, client: Option<(&str, &str)>) -> ureq::Agent {
    let roots = RootCerts::new_with_certs(&[Certificate::from_pem(ca_pem.as_bytes()).unwrap()]);
    let mut tls = TlsConfig::builder().root_certs(roots);
    if let Some((cert, key)) = client {
        tls = tls.client_cert(Some(ClientCert::new_with_certs(
            &[Certificate::from_pem(cert.as_bytes()).unwrap()],
            PrivateKey::from_pem(key.as_bytes()).unwrap(),
        )));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn etcd_post(
    agent: &ureq::Agent,
    cp: &Handle,
    path: &str,
    body: &str,
) -> Result<(u16, Value), ureq::Error> {
    let mut r = agent
        .post(format!("{}{path}", cp.etcd_url().unwrap()))
        .content_type("application/json")
        .send(body)?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

#[test]
fn the_etcd_gateway_requires_a_client_certificate_of_the_etcd_ca() {
    let cp = cp_at("v1.30.0", ControlPlane::with_certificate_key(KEY));
    let ca = cp.etcd_ca_pem().unwrap();
    let list = "/v3/cluster/member/list";
    assert!(
        etcd_post(&etcd_agent(&ca, None), &cp, list, "{}").is_err(),
        "no client certificate"
    );
    let (cert, key) = cp.issue_client_cert("kubernetes-admin", &["system:masters"]);
    assert!(
        etcd_post(&etcd_agent(&ca, Some((&cert, &key))), &cp, list, "{}").is_err(),
        "a certificate of the cluster CA is not one of the etcd CA"
    );
    let other = cp_at("v1.30.0", ControlPlane::with_certificate_key(KEY));
    let (cert, key) = other
        .issue_etcd_client_cert("kube-etcd-healthcheck-client", &[])
        .unwrap();
    assert!(
        etcd_post(&etcd_agent(&ca, Some((&cert, &key))), &cp, list, "{}").is_err(),
        "another etcd CA"
    );
    assert!(
        cp.etcd_calls().is_empty(),
        "refused handshakes never reach etcd"
    );
    // The serving certificate is the etcd CA's: a client trusting the cluster CA refuses it.
    let (cert, key) = cp
        .issue_etcd_client_cert("kube-etcd-healthcheck-client", &[])
        .unwrap();
    assert!(etcd_post(
        &etcd_agent(&cp.ca_pem(), Some((&cert, &key))),
        &cp,
        list,
        "{}"
    )
    .is_err());
    let (status, members) =
        etcd_post(&etcd_agent(&ca, Some((&cert, &key))), &cp, list, "{}").unwrap();
    assert_eq!(status, 200);
    assert_eq!(members["members"][0]["name"], "cp-1");
    assert_eq!(
        members["members"][0]["clientURLs"][0],
        cp.etcd_url().unwrap()
    );
    let calls = cp.etcd_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].client, "kube-etcd-healthcheck-client");
    assert_eq!(calls[0].path, list);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// kubejoin's etcd client, authenticated as kubeadm's healthcheck client of the etcd CA.
fn kubejoin_etcd(cp: &Handle) -> kj::etcd::Client {
    let (cert, key) = cp
        .issue_etcd_client_cert("kube-etcd-healthcheck-client", &[])
        .unwrap();
    kj::etcd::Client::new(
        &[cp.etcd_url().unwrap()],
        cp.etcd_ca_pem().unwrap().as_bytes(),
        cert.as_bytes(),
        key.as_bytes(),
        Duration::from_secs(5),
    )
    .unwrap()
}

#[test]
fn member_add_list_and_promote_are_answered_as_etcd_does_and_recorded() {
    let cp = cp_at("v1.30.0", ControlPlane::with_certificate_key(KEY));
    let etcd = kubejoin_etcd(&cp);
    let rt = runtime();
    let peer = "https://10.0.2.15:2380";
    let listed = rt.block_on(etcd.member_list()).unwrap();
    assert_eq!(listed.members.len(), 1);
    let added = rt.block_on(etcd.member_add(peer, true)).unwrap();
    assert!(added.member.is_learner);
    assert_eq!(added.header.cluster_id, listed.header.cluster_id);
    assert_eq!(added.members.len(), 2);
    // kubeadm's --initial-cluster from the answer: the new member under the node's name.
    let initial = kj::etcd::initial_cluster(&added.members, "cp-2", peer);
    assert_eq!(initial[0].name, "cp-1");
    assert_eq!(initial[1].name, "cp-2");
    let promoted = rt.block_on(etcd.member_promote(added.member.id)).unwrap();
    assert!(promoted.members.iter().all(|m| !m.is_learner));
    let members = cp.etcd_members();
    assert_eq!(members.len(), 2);
    assert_eq!(members[1].peer_urls, [peer]);
    assert!(!members[1].is_learner && members[1].started);
    assert!(
        members[1].name.is_empty(),
        "etcd names a member once its etcd publishes it"
    );
    assert!(cp.etcd_member_started(peer, "cp-2", &["https://10.0.2.15:2379"]));
    assert_eq!(cp.etcd_members()[1].name, "cp-2");
    // Every call, with the body as sent (etcd's JSON: uint64 IDs as strings).
    let calls = cp.etcd_calls();
    let paths: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v3/cluster/member/list",
            "/v3/cluster/member/add",
            "/v3/cluster/member/promote"
        ]
    );
    assert_eq!(
        calls[1].request,
        json!({"peerURLs": [peer], "isLearner": true})
    );
    assert_eq!(calls[2].request, json!({"ID": added.member.id.to_string()}));
    assert!(calls
        .iter()
        .all(|c| c.status == 200 && c.client == "kube-etcd-healthcheck-client"));
    // Adding the same peer again: etcd refuses it.
    let err = rt.block_on(etcd.member_add(peer, false)).unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: Peer URLs already exists"),
        "{err}"
    );
}

#[test]
fn etcd_faults_refuse_the_member_and_delay_the_promotion() {
    let cp = cp_at(
        "v1.30.0",
        ControlPlane {
            etcd_options: EtcdOptions {
                refuse_add: Some(EtcdRefusal {
                    error: EtcdError::Unhealthy,
                    count: Some(1),
                }),
                promote_not_ready: 2,
                ..EtcdOptions::default()
            },
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    let etcd = kubejoin_etcd(&cp);
    let rt = runtime();
    let err = rt
        .block_on(etcd.member_add("https://10.0.2.15:2380", true))
        .unwrap_err();
    match &err {
        kj::etcd::EtcdError::Refused {
            status,
            message,
            code,
            ..
        } => {
            assert_eq!(
                (*status, message.as_str(), *code),
                (503, "etcdserver: unhealthy cluster", 14)
            );
        }
        other => panic!("{other}"),
    }
    let added = rt
        .block_on(etcd.member_add("https://10.0.2.15:2380", true))
        .unwrap();
    for _ in 0..2 {
        let e = rt
            .block_on(etcd.member_promote(added.member.id))
            .unwrap_err();
        assert!(e.is_learner_not_ready(), "{e}");
    }
    rt.block_on(etcd.member_promote(added.member.id)).unwrap();
    // One learner at a time; refusals are recorded with etcd's message.
    let cp = cp_at(
        "v1.30.0",
        ControlPlane {
            etcd_options: EtcdOptions {
                member_start: None,
                ..EtcdOptions::default()
            },
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    let etcd = kubejoin_etcd(&cp);
    let added = rt
        .block_on(etcd.member_add("https://10.0.2.15:2380", true))
        .unwrap();
    let e = rt
        .block_on(etcd.member_add("https://10.0.2.16:2380", true))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("too many learner members in cluster"),
        "{e}"
    );
    // Its etcd never started: it cannot be in sync.
    assert!(rt
        .block_on(etcd.member_promote(added.member.id))
        .unwrap_err()
        .is_learner_not_ready());
    cp.etcd_member_started("https://10.0.2.15:2380", "cp-2", &[]);
    rt.block_on(etcd.member_promote(added.member.id)).unwrap();
    let refused: Vec<Option<String>> = cp.etcd_calls().into_iter().map(|c| c.error).collect();
    assert_eq!(
        refused[1].as_deref(),
        Some("etcdserver: too many learner members in cluster")
    );
}

// ---- node marking ------------------------------------------------------------------------------

/// kubeadm's mark-control-plane: GET the Node, add the labels (value "") and the taints not
/// there yet, PATCH the two-way strategic merge diff (taints are replaced as a whole).
fn mark_patch(node: &Value, labels: &[&str], taints: &[&str]) -> Value {
    let mut want: Vec<Value> = taints
        .iter()
        .map(|k| json!({"effect": "NoSchedule", "key": k}))
        .collect();
    for t in node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if !want
            .iter()
            .any(|w| w["key"] == t["key"] && w["effect"] == t["effect"])
        {
            want.push(t);
        }
    }
    let labels: serde_json::Map<String, Value> =
        labels.iter().map(|l| (l.to_string(), json!(""))).collect();
    json!({"metadata": {"labels": labels}, "spec": {"taints": want}})
}

const SMP: &str = "application/strategic-merge-patch+json";

#[test]
fn node_marking_follows_the_version_and_node_restriction() {
    for (version, labels, taints) in [
        (
            "v1.23.17",
            vec![
                "node-role.kubernetes.io/master",
                "node-role.kubernetes.io/control-plane",
                "node.kubernetes.io/exclude-from-external-load-balancers",
            ],
            vec!["node-role.kubernetes.io/master"],
        ),
        (
            "v1.24.17",
            vec![
                "node-role.kubernetes.io/control-plane",
                "node.kubernetes.io/exclude-from-external-load-balancers",
            ],
            vec![
                "node-role.kubernetes.io/master",
                "node-role.kubernetes.io/control-plane",
            ],
        ),
        (
            "v1.30.14",
            vec![
                "node-role.kubernetes.io/control-plane",
                "node.kubernetes.io/exclude-from-external-load-balancers",
            ],
            vec!["node-role.kubernetes.io/control-plane"],
        ),
    ] {
        let cp = cp_at(version, ControlPlane::with_certificate_key(KEY));
        let rules = cp.kubeadm_rules();
        assert_eq!(rules.control_plane_labels, labels, "{version}");
        assert_eq!(rules.control_plane_taints, taints, "{version}");
        // The first control plane carries them already.
        let first = cp.node("cp-1").unwrap();
        for l in &labels {
            assert_eq!(first["metadata"]["labels"][l], "", "{version} {l}");
        }
        let creds =
            kubejoin_testcp::kubeconfig::parse_admin_kubeconfig(&cp.kubeadm_admin_kubeconfig())
                .unwrap();
        let admin = Client::cert(&cp, &creds.cert_pem, &creds.key_pem);
        let path = "/api/v1/nodes/cp-2";
        // Before the kubelet registers, there is nothing to mark.
        let missing = admin.request("PATCH", path, Some(b"{}".to_vec()), SMP);
        assert_eq!(missing.status, 404);
        cp.register_node("cp-2");
        let node = admin.get(path).json();
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "cp-2");
        let patch = mark_patch(&node, &labels, &taints);
        // The node itself may not: NodeRestriction, taints first, then labels.
        let (cert, key) = cp.issue_client_cert("system:node:cp-2", &["system:nodes"]);
        let kubelet = Client::cert(&cp, &cert, &key);
        let denied = kubelet.request("PATCH", path, Some(patch.to_string().into_bytes()), SMP);
        assert_eq!(denied.status, 403);
        assert_eq!(
            denied.json()["message"],
            "nodes \"cp-2\" is forbidden: node \"cp-2\" is not allowed to modify taints"
        );
        let labels_only = json!({"metadata": patch["metadata"]});
        let denied = kubelet.request(
            "PATCH",
            path,
            Some(labels_only.to_string().into_bytes()),
            SMP,
        );
        assert_eq!(denied.status, 403);
        assert!(denied.json()["message"].as_str().unwrap().starts_with("nodes \"cp-2\" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/"), "{}", denied.body);
        assert_eq!(
            Client::bootstrap(&cp)
                .request("PATCH", path, Some(patch.to_string().into_bytes()), SMP)
                .status,
            403
        );
        // admin.conf may.
        let marked = admin.request("PATCH", path, Some(patch.to_string().into_bytes()), SMP);
        assert_eq!(marked.status, 200, "{}", marked.body);
        let marked = marked.json();
        for l in &labels {
            assert_eq!(marked["metadata"]["labels"][l], "", "{version} {l}");
        }
        let keys: Vec<&str> = marked["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        let mut expected: Vec<&str> = taints.clone();
        expected.push("node.kubernetes.io/not-ready");
        assert_eq!(keys, expected, "{version}");
        assert_eq!(
            cp.node("cp-2").unwrap()["spec"]["taints"],
            marked["spec"]["taints"]
        );
        // JSON merge patch replaces the list the same way; a bad effect is a 422.
        let bad = json!({"spec": {"taints": [{"key": "x", "effect": "Never"}]}});
        let reply = admin.request(
            "PATCH",
            path,
            Some(bad.to_string().into_bytes()),
            "application/merge-patch+json",
        );
        assert_eq!(reply.status, 422);
        assert_eq!(
            reply.json()["message"],
            "Node \"cp-2\" is invalid: spec.taints[0].effect: Unsupported value: \"Never\": supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\""
        );
    }
}

#[test]
fn kubelets_register_their_nodes_after_their_client_certificate() {
    let cp = cp_at(
        "v1.30.0",
        ControlPlane {
            register_nodes_after: Some(Duration::from_millis(200)),
            ..ControlPlane::with_certificate_key(KEY)
        },
    );
    let (pem, _key) = make_csr("system:node:cp-3", &["system:nodes"], &[]);
    let reply = Client::bootstrap(&cp).post(
        common::CSRS,
        &csr_body(
            Some("node-csr-cp-3"),
            &pem,
            &["digital signature", "key encipherment", "client auth"],
        ),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(cp.node("cp-3").is_none());
    let node = wait_for(Duration::from_secs(5), "cp-3 to register", || {
        cp.node("cp-3")
    });
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "cp-3");
    assert_eq!(
        node["spec"]["taints"][0]["key"],
        "node.kubernetes.io/not-ready"
    );
    let _ = TOKEN;
}

#[test]
fn the_rules_by_version() {
    let r = |v: &str| kubejoin_testcp::kubeadm_rules(v).unwrap();
    assert!(!r("1.26").etcd_learner && !r("1.28").etcd_learner && r("1.29").etcd_learner);
    assert_eq!(r("1.28").admin_group, "system:masters");
    assert!(r("1.29").super_admin && !r("1.28").super_admin);
    let cp = cp_at("v1.29.0", ControlPlane::with_certificate_key(KEY));
    assert_eq!(cp.kubeadm_rules(), r("v1.29.0"));
    let mut groups: BTreeMap<&str, &str> = BTreeMap::new();
    groups.insert("v1.29.0", "kubeadm:cluster-admins");
    let creds = kubejoin_testcp::kubeconfig::parse_admin_kubeconfig(&cp.kubeadm_admin_kubeconfig())
        .unwrap();
    let review = Client::cert(&cp, &creds.cert_pem, &creds.key_pem)
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1"}),
        )
        .json();
    assert_eq!(review["status"]["userInfo"]["groups"][0], groups["v1.29.0"]);
    // A bad key is refused without echoing it.
    let e = start(Config {
        control_plane: Some(ControlPlane::with_certificate_key("0123abcd")),
        ..Config::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("64 hex digits") && !e.to_string().contains("0123abcd"),
        "{e}"
    );
}

// ---- the command line --------------------------------------------------------------------------

struct Served {
    child: std::process::Child,
    lines: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_bin(args: &[&str]) -> Served {
    use std::io::BufRead as _;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kubejoin-testcp"))
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    // Killed and reaped on drop, whatever happens below.
    let mut served = Served {
        child,
        lines: Vec::new(),
    };
    let mut reader = std::io::BufReader::new(served.child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "serve exited: {:?}",
            served.lines
        );
        let done = line.starts_with("READY ");
        served.lines.push(line.trim_end().to_string());
        if done {
            return served;
        }
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn serve_prints_the_control_plane_join_and_upload_certs_re_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let served = serve_bin(&[
        "--kubernetes-version",
        "1.30",
        "--upload-certs",
        "--apiserver-cert-san",
        "cp.example",
        "--state-dir",
        state,
    ]);
    let text = served.lines.join("\n");
    let key = std::fs::read_to_string(dir.path().join("certificate-key")).unwrap();
    let key = key.trim();
    assert_eq!(key.len(), 64);
    assert_eq!(mode(&dir.path().join("certificate-key")), 0o600);
    let endpoint = std::fs::read_to_string(dir.path().join("endpoint")).unwrap();
    let pin = std::fs::read_to_string(dir.path().join("pin")).unwrap();
    let line = format!(
        "  kubejoin join {} --token {TOKEN} --discovery-token-ca-cert-hash {} --control-plane --certificate-key {key}",
        endpoint.trim(),
        pin.trim()
    );
    assert!(
        text.contains(&format!("join a control plane with:\n{line}\n")),
        "{text}"
    );
    assert!(
        text.contains("uploaded-certs will be deleted in 2h"),
        "{text}"
    );
    let etcd_url = std::fs::read_to_string(dir.path().join("etcd-endpoint")).unwrap();
    assert!(
        text.contains(&format!(
            "etcd (v3 JSON gateway, mTLS with the etcd CA): {}",
            etcd_url.trim()
        )),
        "{text}"
    );
    // The first node's PKI, as kubeadm init leaves it.
    for (f, m) in [
        ("pki/ca.crt", 0o644),
        ("pki/ca.key", 0o600),
        ("pki/sa.key", 0o600),
        ("pki/sa.pub", 0o644),
        ("pki/etcd/ca.key", 0o600),
        ("pki/front-proxy-ca.crt", 0o644),
    ] {
        assert_eq!(mode(&dir.path().join(f)), m, "{f}");
    }
    let url = format!("https://{}", endpoint.trim());
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let fetch = || Client::token_at(&url, &ca, TOKEN).get(SECRET);
    let decrypt = |key: &str| {
        let data = kj::download::secret_data(&fetch().json()).unwrap();
        let key = kj::certkey::CertificateKey::parse(key).unwrap();
        kj::download::files(&data, &key, "/etc/kubernetes/pki", &local_etcd())
    };
    let d = decrypt(key).unwrap();
    assert_eq!(
        file(&d, "/etc/kubernetes/pki/ca.key").contents,
        std::fs::read(dir.path().join("pki/ca.key")).unwrap()
    );
    let cm = Client::token_at(&url, &ca, TOKEN)
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .json();
    assert!(cm["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap()
        .contains("  certSANs:\n  - cp.example\n"));
    let owner = fetch().json()["metadata"]["ownerReferences"][0]["name"].clone();

    // upload-certs, as kubeadm does it through the API from the node's files.
    let new_key = "b".repeat(64);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubejoin-testcp"))
        .args([
            "upload-certs",
            "--state-dir",
            state,
            "--certificate-key",
            &new_key,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        format!("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[upload-certs] Using certificate key:\n{new_key}\n")
    );
    let secret = fetch().json();
    assert_ne!(secret["metadata"]["ownerReferences"][0]["name"], owner);
    assert!(decrypt(key).is_err(), "the old key no longer decrypts");
    let d = decrypt(&new_key).unwrap();
    assert_eq!(d.files.len(), 8);
    // Without a key, a fresh one is made and printed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubejoin-testcp"))
        .args(["upload-certs", "--state-dir", state])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(printed.len(), 64);
    decrypt(&printed).unwrap();
    drop(served);

    // Bad input is a usage error that does not echo the key.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubejoin-testcp"))
        .args(["serve", "--certificate-key", "deadbeef"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--certificate-key: a certificate key is 64 hex digits")
            && !err.contains("deadbeef"),
        "{err}"
    );
}

#[test]
fn an_rsa_cluster_as_kubeadm_makes_it_by_default() {
    let cp = start(Config {
        kubernetes_version: "v1.24.17".into(),
        ca_key_type: kubejoin_testcp::CaKeyType::Rsa2048,
        control_plane: Some(ControlPlane::with_certificate_key(KEY)),
        ..Config::default()
    })
    .unwrap();
    let d = download(&cp, KEY, &local_etcd());
    for key in ["ca.key", "front-proxy-ca.key", "etcd/ca.key", "sa.key"] {
        let pem = &file(&d, &format!("/etc/kubernetes/pki/{key}")).contents;
        assert!(
            pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----\n"),
            "{key}"
        );
    }
    // kubejoin loads the RSA CA (ring) and what it signs authenticates here.
    let ca = kj::pki::Ca::from_pem(
        "ca",
        &file(&d, "/etc/kubernetes/pki/ca.crt").contents,
        &file(&d, "/etc/kubernetes/pki/ca.key").contents,
    )
    .unwrap();
    let issued = kj::pki::client_cert(
        &ca,
        "kubernetes-admin",
        &["system:masters"],
        kj::cluster::KeyAlgorithm::EcdsaP256,
        unix_now(),
        86_400,
    )
    .unwrap();
    let admin = Client::cert(
        &cp,
        std::str::from_utf8(&issued.cert_pem).unwrap(),
        std::str::from_utf8(&issued.key.private_pem).unwrap(),
    );
    assert_eq!(admin.get("/api/v1/nodes").status, 200);
    // The etcd gateway's certificate comes from the RSA etcd CA.
    let etcd = kubejoin_etcd(&cp);
    assert_eq!(
        runtime()
            .block_on(etcd.member_list())
            .unwrap()
            .members
            .len(),
        1
    );
    // The pin kubejoin checks is the RSA CA's.
    let der = common::ca_der(&cp);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.tbs_certificate
            .subject_pki
            .algorithm
            .algorithm
            .to_id_string(),
        "1.2.840.113549.1.1.1"
    );
}
