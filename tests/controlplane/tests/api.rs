//! Authentication, RBAC, Nodes, identity, health and discovery endpoints: status codes and
//! bodies compared with the captures of a real control plane.

// Test code (and its helpers outside #[test] fns) panics on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture, fixture_text, normalize, Client, CSRS};
use kubejoin_testcp::{start, Config, NodeSpec, TokenSpec};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

const CURL: &str = "curl/8.5.0";

#[test]
fn every_kind_of_bad_token_gets_the_same_401() {
    let past = SystemTime::now() - Duration::from_secs(1);
    let cp = start(Config {
        tokens: vec![
            TokenSpec::new("abcdef", "0123456789abcdef"),
            TokenSpec {
                expires: Some(past),
                ..TokenSpec::new("expird", "0123456789abcdef")
            },
            TokenSpec {
                authentication: false,
                ..TokenSpec::new("noauth", "0123456789abcdef")
            },
        ],
        ..Config::default()
    })
    .unwrap();
    let cases = [
        ("abcdef.0123456789abcdee", "error-401-wrong-token.json"),
        (
            "zzzzzz.0123456789abcdef",
            "extra/error-401-unknown-token-id.json",
        ),
        (
            "this-is-not-a-token",
            "extra/error-401-malformed-token.json",
        ),
        (
            "expird.0123456789abcdef",
            "extra/error-401-expired-token.json",
        ),
        (
            "noauth.0123456789abcdef",
            "extra/error-401-token-without-auth-usage.json",
        ),
    ];
    for (token, capture) in cases {
        let client = Client::token(&cp, token).user_agent(CURL);
        // Authentication comes first, whatever the path and whatever RBAC would say.
        for path in [
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
            "/healthz",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        ] {
            let reply = client.get(path);
            assert_eq!(reply.status, 401, "{token} {path}");
            assert_eq!(reply.body, fixture_text(capture), "{token} {path}");
        }
    }
    let unauthorized: Vec<_> = cp
        .requests()
        .into_iter()
        .filter(|r| r.status == 401)
        .collect();
    assert_eq!(unauthorized.len(), 15);
    assert!(unauthorized.iter().all(|r| r.user.is_empty()));
}

#[test]
fn forbidden_bodies_are_the_captured_ones() {
    let cp = start(Config::default()).unwrap();
    let anonymous = Client::verified(&cp).user_agent(CURL);
    let bootstrap = Client::bootstrap(&cp).user_agent(CURL);
    let cases = [
        (
            &anonymous,
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
            "error-403-anonymous-kubeadm-config.json",
        ),
        (
            &bootstrap,
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/kube-proxy",
            "error-403-bootstrap-get-other-configmap.json",
        ),
        (
            &bootstrap,
            "GET",
            "/api/v1/namespaces/kube-system/secrets",
            "error-403-bootstrap-list-secrets.json",
        ),
        (
            &bootstrap,
            "GET",
            "/api/v1/nodes",
            "extra/error-403-bootstrap-list-nodes.json",
        ),
        (
            &bootstrap,
            "DELETE",
            &format!("{CSRS}/x-bad-cn-1795347852"),
            "extra/error-403-bootstrap-delete-csr.json",
        ),
    ];
    for (client, method, path, capture) in cases {
        let reply = client.request(method, path, None, "application/json");
        assert_eq!(reply.status, 403, "{method} {path}");
        assert_eq!(reply.body, fixture_text(capture), "{method} {path}");
    }
    let reply = anonymous.get("/api");
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message":"forbidden: User \"system:anonymous\" cannot get path \"/api\"",
               "reason":"Forbidden","details":{},"code":403})
    );
    let reply = bootstrap.request(
        "PUT",
        &format!("{CSRS}/x/approval"),
        Some(b"{}".to_vec()),
        "application/json",
    );
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json()["message"],
        "certificatesigningrequests.certificates.k8s.io \"x\" is forbidden: User \"system:bootstrap:abcdef\" cannot update resource \"certificatesigningrequests/approval\" in API group \"certificates.k8s.io\" at the cluster scope"
    );
}

#[test]
fn a_token_outside_the_default_group_gets_nothing_a_join_needs() {
    let cp = start(Config {
        tokens: vec![TokenSpec {
            extra_groups: vec!["system:bootstrappers:other".into()],
            ..TokenSpec::new("zyxwvu", "0123456789abcdef")
        }],
        ..Config::default()
    })
    .unwrap();
    let client = Client::token(&cp, "zyxwvu.0123456789abcdef");
    for path in [
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        "/api/v1/namespaces/kube-system/configmaps/kubelet-config",
        "/api/v1/nodes/n1",
        CSRS,
    ] {
        assert_eq!(client.get(path).status, 403, "{path}");
    }
    let (pem, _) = common::make_csr("system:node:n1", &["system:nodes"], &[]);
    let reply = client.post(
        CSRS,
        &common::csr_body(None, &pem, &["digital signature", "client auth"]),
    );
    assert_eq!(reply.status, 403);
    let review = client.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &json!({"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1"}),
    );
    assert_eq!(review.status, 201);
    assert_eq!(
        review.json()["status"]["userInfo"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:other",
            "system:authenticated"
        ])
    );
}

#[test]
fn self_subject_reviews_name_the_token_and_the_node_certificate() {
    let cp = start(Config::default()).unwrap();
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let body = json!({"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"status":{"userInfo":{}}});
    let reply = Client::bootstrap(&cp).post(path, &body);
    assert_eq!(reply.status, 201);
    assert_eq!(
        normalize(&reply.json()),
        normalize(&fixture("selfsubjectreview-bootstrap-token.json"))
    );

    let (cert, key) = cp.issue_client_cert("system:node:test-node", &["system:nodes"]);
    let node = Client::cert(&cp, &cert, &key);
    assert_eq!(
        normalize(&node.post(path, &body).json()),
        normalize(&fixture("node-identity-selfsubjectreview.json"))
    );
}

#[test]
fn a_node_certificate_is_accepted_as_that_node() {
    let cp = start(Config::default()).unwrap();
    let (cert, key) = cp.issue_client_cert("system:node:test-node", &["system:nodes"]);
    let node = Client::cert(&cp, &cert, &key).user_agent(CURL);
    let reply = node.get("/api/v1/nodes/test-node");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, fixture_text("node-identity-get-own-node.json"));
    assert_eq!(
        node.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
            .status,
        200
    );
    let denied = node.get("/api/v1/namespaces/kube-system/configmaps/kube-proxy");
    assert_eq!(denied.status, 403);
    assert!(denied.json()["message"]
        .as_str()
        .unwrap()
        .ends_with(": no relationship found between node 'test-node' and this object"));
    assert_eq!(
        Client::verified(&cp).get("/api/v1/nodes/test-node").status,
        403
    );
    let record = cp
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/nodes/test-node" && r.status == 404)
        .unwrap();
    assert_eq!(record.user, "system:node:test-node");
}

#[test]
fn nodes_as_a_bootstrap_token_sees_them() {
    let cp = start(Config {
        nodes: vec![
            NodeSpec {
                name: "ready-node".into(),
                ready: true,
            },
            NodeSpec {
                name: "new-node".into(),
                ready: false,
            },
        ],
        ..Config::default()
    })
    .unwrap();
    let bootstrap = Client::bootstrap(&cp).user_agent(CURL);
    let ready_condition = |name: &str| {
        let node = bootstrap.get(&format!("/api/v1/nodes/{name}")).json();
        let conditions = node["status"]["conditions"].as_array().unwrap().clone();
        conditions
            .into_iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(ready_condition("ready-node"), "True");
    assert_eq!(ready_condition("new-node"), "False");
    cp.add_node(NodeSpec {
        name: "new-node".into(),
        ready: true,
    });
    assert_eq!(ready_condition("new-node"), "True");

    let missing = bootstrap.get("/api/v1/nodes/test-node");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        fixture_text("extra/bootstrap-get-node-missing.json")
    );

    // The shape of the captured Node: same top-level, metadata, spec and status fields.
    let node = bootstrap.get("/api/v1/nodes/ready-node").json();
    let captured = fixture("extra/bootstrap-get-node-existing.json");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&node), keys(&captured));
    for part in ["spec", "status"] {
        for k in keys(&captured[part]) {
            if k != "taints" {
                assert!(node[part].get(&k).is_some(), "{part}.{k}");
            }
        }
    }
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "ready-node"
    );
    assert_eq!(
        keys(&node["status"]["nodeInfo"]),
        keys(&captured["status"]["nodeInfo"])
    );
}

#[test]
fn a_node_may_patch_only_itself() {
    let cp = start(Config {
        nodes: vec![
            NodeSpec {
                name: "n1".into(),
                ready: true,
            },
            NodeSpec {
                name: "n2".into(),
                ready: true,
            },
        ],
        ..Config::default()
    })
    .unwrap();
    let (cert, key) = cp.issue_client_cert("system:node:n1", &["system:nodes"]);
    let node = Client::cert(&cp, &cert, &key);
    let patch = json!({"metadata":{"annotations":{"kubeadm.alpha.kubernetes.io/cri-socket":"unix:///run/crio/crio.sock"}}});
    let body = Some(patch.to_string().into_bytes());
    let ok = node.request(
        "PATCH",
        "/api/v1/nodes/n1",
        body.clone(),
        "application/strategic-merge-patch+json",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json()["metadata"]["annotations"]["kubeadm.alpha.kubernetes.io/cri-socket"],
        "unix:///run/crio/crio.sock"
    );
    let other = node.request(
        "PATCH",
        "/api/v1/nodes/n2",
        body,
        "application/strategic-merge-patch+json",
    );
    assert_eq!(other.status, 403);
    assert_eq!(
        other.json()["message"],
        "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
    );
}

#[test]
fn health_version_and_discovery() {
    let cp = start(Config {
        kubernetes_version: "v1.31.4".into(),
        ..Config::default()
    })
    .unwrap();
    let anonymous = Client::verified(&cp);
    for path in ["/healthz", "/readyz", "/livez"] {
        let reply = anonymous.get(path);
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"), "{path}");
    }
    assert!(anonymous
        .get("/livez?verbose")
        .body
        .ends_with("livez check passed\n"));

    let version = anonymous.get("/version");
    assert_eq!(version.status, 200);
    assert!(version
        .body
        .starts_with("{\n  \"major\": \"1\",\n  \"minor\": \"31\",\n"));
    let version = version.json();
    assert_eq!(version["gitVersion"], "v1.31.4");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&version), keys(&fixture("extra/version.json")));

    let api = Client::bootstrap(&cp).get("/api");
    assert_eq!(api.status, 200);
    let mut expected = fixture("extra/bootstrap-get-api.json");
    expected["serverAddressByClientCIDRs"][0]["serverAddress"] = json!(cp.endpoint());
    assert_eq!(api.json(), expected);
    let apis = Client::bootstrap(&cp).get("/apis").json();
    assert_eq!(apis["kind"], "APIGroupList");
}

#[test]
fn json_is_indented_for_curl_and_pretty_true_only() {
    let cp = start(Config::default()).unwrap();
    let path = "/api/v1/namespaces/kube-system/configmaps/kubelet-config";
    let compact = Client::bootstrap(&cp).get(path).body;
    assert!(compact.starts_with("{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{"));
    assert!(compact.ends_with("}\n"));
    let curl = Client::bootstrap(&cp).user_agent(CURL).get(path).body;
    assert!(curl.starts_with("{\n  \"kind\": \"ConfigMap\",\n  \"apiVersion\": \"v1\",\n"));
    assert!(curl.ends_with("\n}"));
    let asked = Client::bootstrap(&cp)
        .get(&format!("{path}?pretty=true"))
        .body;
    assert!(asked.starts_with("{\n  \"kind\""));
    let refused = Client::bootstrap(&cp)
        .user_agent(CURL)
        .get(&format!("{path}?pretty=false"))
        .body;
    assert!(refused.starts_with("{\"kind\""));
    let a: Value = serde_json::from_str(&compact).unwrap();
    let b: Value = serde_json::from_str(&curl).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bodies_over_the_limit_are_refused() {
    let cp = start(Config::default()).unwrap();
    let big = vec![b' '; 2 * 1024 * 1024];
    let reply = Client::bootstrap(&cp).request("POST", CSRS, Some(big), "application/json");
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["reason"], "RequestEntityTooLarge");
    let garbage = Client::bootstrap(&cp).request(
        "POST",
        CSRS,
        Some(b"{not json".to_vec()),
        "application/json",
    );
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["reason"], "BadRequest");
    // The server is still fine.
    assert_eq!(Client::verified(&cp).get("/healthz").status, 200);
}

#[test]
fn the_admin_kubeconfig_is_cluster_admin() {
    let cp = start(Config::default()).unwrap();
    let kubeconfig = cp.admin_kubeconfig();
    let creds = kubejoin_testcp::kubeconfig::parse_admin_kubeconfig(&kubeconfig).unwrap();
    assert_eq!(creds.server, cp.url());
    assert_eq!(creds.ca_pem, cp.ca_pem());
    let admin = Client::cert(&cp, &creds.cert_pem, &creds.key_pem);
    let review = admin
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1"}),
        )
        .json();
    assert_eq!(review["status"]["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(admin.get("/api/v1/nodes").status, 200);
    // kube-system Secrets: the bootstrap token's (no control plane, so no kubeadm-certs).
    let secrets = admin.get("/api/v1/namespaces/kube-system/secrets").json();
    assert_eq!(secrets["kind"], "SecretList");
    assert_eq!(
        secrets["items"][0]["metadata"]["name"],
        "bootstrap-token-abcdef"
    );
    assert_eq!(secrets["items"].as_array().unwrap().len(), 1);
}

#[test]
fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let cp = start(Config::default()).unwrap();
    let other = start(Config::default()).unwrap();
    let (cert, key) = other.issue_client_cert("kubernetes-admin", &["system:masters"]);
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(true)
        .client_cert(Some(ureq::tls::ClientCert::new_with_certs(
            &[ureq::tls::Certificate::from_pem(cert.as_bytes()).unwrap()],
            ureq::tls::PrivateKey::from_pem(key.as_bytes()).unwrap(),
        )))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    assert!(agent
        .get(format!("{}/api/v1/nodes", cp.url()))
        .call()
        .is_err());
}
