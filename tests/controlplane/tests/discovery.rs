//! cluster-info as kubeadm's token discovery sees it: the kubeconfig bytes, the bootstrap
//! signer's JWS (and its lag), anonymous-only access, CA bundles, and the kube-system
//! ConfigMaps a join reads next.

// Test code (and its helpers outside #[test] fns) panics on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::{fixture, fixture_text, normalize, Client, TOKEN};
use hmac::{Hmac, Mac};
use kubejoin_testcp::{start, Config, TokenSpec};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// An HS256 check written from RFC 7515 directly, not with the crate's signer.
fn jws_verifies(detached: &str, content: &str, id: &str, secret: &str) -> bool {
    let Some((header, sig)) = detached.split_once("..") else {
        return false;
    };
    let decoded = URL_SAFE_NO_PAD.decode(header).unwrap();
    if decoded != format!(r#"{{"alg":"HS256","kid":"{id}"}}"#).as_bytes() {
        return false;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{}", URL_SAFE_NO_PAD.encode(content)).as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap())
        .is_ok()
}

fn data_keys(cm: &Value) -> Vec<String> {
    cm["data"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn anonymous_cluster_info_is_kubeadms_kubeconfig_signed_by_the_bootstrap_signer() {
    let cp = start(Config::default()).unwrap();
    let reply = Client::insecure(&cp).get(CLUSTER_INFO);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    assert!(
        reply.body.ends_with("}\n") && reply.body.lines().count() == 1,
        "compact JSON"
    );
    let cm = reply.json();

    let kubeconfig = cm["data"]["kubeconfig"].as_str().unwrap();
    let expected = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        STANDARD.encode(cp.ca_pem()),
        cp.url()
    );
    assert_eq!(kubeconfig, expected);
    assert!(cp.ca_pem().ends_with("-----END CERTIFICATE-----\n"));
    assert!(cp.ca_pem().lines().all(|l| l.len() <= 64));

    let jws = cm["data"]["jws-kubeconfig-abcdef"].as_str().unwrap();
    assert!(jws_verifies(jws, kubeconfig, "abcdef", "0123456789abcdef"));
    assert!(!jws_verifies(jws, kubeconfig, "abcdef", "0123456789abcdee"));
    assert_eq!(
        jws,
        kubejoin_testcp::compute_detached_signature(kubeconfig, "abcdef", "0123456789abcdef")
    );

    // Same shape as the capture: metadata fields, two managedFields entries, sorted data keys.
    let captured = fixture("cluster-info.anonymous.json");
    let mut ours = normalize(&cm);
    let mut theirs = normalize(&captured);
    for v in [&mut ours, &mut theirs] {
        v["data"] = Value::Null;
    }
    assert_eq!(ours, theirs);
    assert_eq!(data_keys(&cm), data_keys(&captured));
}

#[test]
fn a_bearer_token_may_not_read_cluster_info() {
    let cp = start(Config::default()).unwrap();
    let reply = Client::bootstrap(&cp)
        .user_agent("curl/8.5.0")
        .get(CLUSTER_INFO);
    assert_eq!(reply.status, 403);
    // Byte for byte: curl gets indented JSON, as the capture was made.
    assert_eq!(
        reply.body,
        fixture_text("cluster-info.bootstrap-token.json")
    );
}

#[test]
fn the_verified_refetch_returns_identical_bytes() {
    let cp = start(Config::default()).unwrap();
    let first = Client::insecure(&cp).get(CLUSTER_INFO).json();
    let second = Client::verified(&cp).get(CLUSTER_INFO).json();
    assert_eq!(first["data"]["kubeconfig"], second["data"]["kubeconfig"]);
}

#[test]
fn the_signer_lags_after_every_write() {
    let delay = Duration::from_millis(600);
    let cp = start(Config {
        signer_delay: delay,
        ..Config::default()
    })
    .unwrap();
    let client = Client::insecure(&cp);
    let has_jws = || {
        client.get(CLUSTER_INFO).json()["data"]
            .get("jws-kubeconfig-abcdef")
            .is_some()
    };
    for round in 0..2 {
        let started = Instant::now();
        assert!(!has_jws(), "round {round}: the signer has not run yet");
        common::wait_for(Duration::from_secs(3), "the jws key", || {
            has_jws().then_some(())
        });
        assert!(started.elapsed() >= delay - Duration::from_millis(50));
        let before = client.get(CLUSTER_INFO).json();
        cp.rewrite_cluster_info();
        let after = client.get(CLUSTER_INFO).json();
        let rv = |v: &Value| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&after) > rv(&before));
        assert_eq!(before["metadata"]["uid"], after["metadata"]["uid"]);
    }
}

#[test]
fn the_hook_changes_only_the_response_it_is_asked_to() {
    let cp = start(Config {
        cluster_info_hook: Some(Arc::new(|n, data| {
            if n == 1 {
                data.insert("kubeconfig".into(), "tampered".into());
            }
        })),
        ..Config::default()
    })
    .unwrap();
    let client = Client::insecure(&cp);
    assert_eq!(
        client.get(CLUSTER_INFO).json()["data"]["kubeconfig"],
        "tampered"
    );
    let second = client.get(CLUSTER_INFO).json();
    let kc = second["data"]["kubeconfig"].as_str().unwrap();
    assert!(kc.starts_with("apiVersion: v1\n"));
    assert!(jws_verifies(
        second["data"]["jws-kubeconfig-abcdef"].as_str().unwrap(),
        kc,
        "abcdef",
        "0123456789abcdef"
    ));
}

#[test]
fn ca_rotation_serves_an_old_ca_first() {
    let cp = start(Config {
        ca_rotation: true,
        ..Config::default()
    })
    .unwrap();
    let pins = cp.ca_pins();
    assert_eq!(pins.len(), 2);
    assert_eq!(pins[1], cp.signing_ca_pin());
    assert_ne!(pins[0], pins[1]);
    assert_eq!(
        cp.ca_pem().matches("-----BEGIN CERTIFICATE-----").count(),
        2
    );
    let cm = Client::verified(&cp).get(CLUSTER_INFO).json();
    let kc = cm["data"]["kubeconfig"].as_str().unwrap();
    let ca_line = kc
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    assert_eq!(STANDARD.decode(ca_line).unwrap(), cp.ca_pem().as_bytes());
    assert!(cp.join_command().ends_with(&cp.signing_ca_pin()));
}

#[test]
fn server_url_and_newer_client_go_serialization() {
    let cp = start(Config {
        server_url: Some("https://cp.example.test:6443".into()),
        preferences_line: false,
        ..Config::default()
    })
    .unwrap();
    let cm = Client::insecure(&cp).get(CLUSTER_INFO).json();
    let kc = cm["data"]["kubeconfig"].as_str().unwrap();
    assert!(kc.contains("\n    server: https://cp.example.test:6443\n"));
    assert!(kc.ends_with("kind: Config\nusers: null\n"));
    let kubeadm = Client::bootstrap(&cp)
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .json();
    assert!(kubeadm["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap()
        .contains("controlPlaneEndpoint: cp.example.test:6443\n"));
}

#[test]
fn only_valid_signing_tokens_are_signed_for() {
    let past = SystemTime::now() - Duration::from_secs(60);
    let cp = start(Config {
        tokens: vec![
            TokenSpec::new("abcdef", "0123456789abcdef"),
            TokenSpec {
                expires: Some(past),
                ..TokenSpec::new("expird", "0123456789abcdef")
            },
            TokenSpec {
                signing: false,
                ..TokenSpec::new("nosign", "0123456789abcdef")
            },
            TokenSpec {
                authentication: false,
                expires: None,
                ..TokenSpec::new("noauth", "0123456789abcdef")
            },
        ],
        ..Config::default()
    })
    .unwrap();
    let cm = Client::insecure(&cp).get(CLUSTER_INFO).json();
    assert_eq!(
        data_keys(&cm),
        vec![
            "jws-kubeconfig-abcdef",
            "jws-kubeconfig-noauth",
            "kubeconfig"
        ]
    );
}

#[test]
fn the_config_maps_a_join_reads() {
    let cp = start(Config::default()).unwrap();
    let bootstrap = Client::bootstrap(&cp);

    let kubeadm = bootstrap.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config");
    assert_eq!(kubeadm.status, 200);
    let kubeadm = kubeadm.json();
    let cc = kubeadm["data"]["ClusterConfiguration"].as_str().unwrap();
    for line in [
        "apiVersion: kubeadm.k8s.io/v1beta4\n",
        "clusterName: kubernetes\n",
        "imageRepository: registry.k8s.io\n",
        "kind: ClusterConfiguration\n",
        "kubernetesVersion: v1.33.0\n",
        "  serviceSubnet: 10.96.0.0/12\n",
        &format!("controlPlaneEndpoint: {}\n", cp.endpoint()),
    ] {
        assert!(cc.contains(line), "{line:?} missing from {cc}");
    }
    let mut ours = normalize(&kubeadm);
    let mut theirs = normalize(&fixture("kubeadm-config.json"));
    ours["data"] = Value::Null;
    theirs["data"] = Value::Null;
    assert_eq!(ours, theirs);

    let kubelet = bootstrap
        .get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
        .json();
    let captured = fixture("kubelet-config.json");
    assert_eq!(
        kubelet["data"]["kubelet"].as_str().unwrap(),
        captured["data"]["kubelet"]
            .as_str()
            .unwrap()
            .replace("/tmp/realcp/pki/ca.crt", "/etc/kubernetes/pki/ca.crt")
    );
    assert_eq!(
        normalize(&kubelet)["metadata"],
        normalize(&captured)["metadata"]
    );

    let proxy = bootstrap
        .user_agent("curl/8.5.0")
        .get("/api/v1/namespaces/kube-system/configmaps/kube-proxy");
    assert_eq!(proxy.status, 403);
    assert_eq!(
        proxy.body,
        fixture_text("error-403-bootstrap-kube-proxy-no-addon.json")
    );

    let with_addon = start(Config {
        kube_proxy: true,
        ..Config::default()
    })
    .unwrap();
    let proxy =
        Client::bootstrap(&with_addon).get("/api/v1/namespaces/kube-system/configmaps/kube-proxy");
    assert_eq!(proxy.status, 200);
    let proxy = proxy.json();
    assert_eq!(proxy["metadata"]["labels"]["app"], "kube-proxy");
    assert!(proxy["data"]["config.conf"]
        .as_str()
        .unwrap()
        .contains("kind: KubeProxyConfiguration\n"));
    assert!(proxy["data"]["kubeconfig.conf"]
        .as_str()
        .unwrap()
        .contains(&format!("server: {}\n", with_addon.url())));

    // The token the tests use is the one in the join command.
    assert!(cp.join_command().contains(&format!("--token {TOKEN} ")));
    assert!(cp
        .join_command()
        .starts_with(&format!("kubejoin join {} ", cp.endpoint())));
}

#[test]
fn a_handler_that_panics_is_a_500_and_the_server_goes_on() {
    let cp = start(Config {
        cluster_info_hook: Some(Arc::new(|n, _| {
            if n == 1 {
                panic!("a test hook blew up (expected by this test)");
            }
        })),
        ..Config::default()
    })
    .unwrap();
    let client = Client::insecure(&cp);
    let reply = client.get(CLUSTER_INFO);
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["reason"], "InternalError");
    assert_eq!(client.get(CLUSTER_INFO).status, 200);
}
