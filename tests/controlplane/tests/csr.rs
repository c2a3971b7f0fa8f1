//! The CSR API and the two controllers behind it: create (201/409/422), get/list/watch,
//! auto-approval exactly as the real approver decides, manual approve/deny, and the issued
//! certificate.

// Test code (and its helpers outside #[test] fns) panics on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{
    csr_body, fixture, fixture_line, issued_der, make_csr, normalize, wait_for, Client, CSRS,
};
use kubejoin_testcp::{start, Approval, Config, Handle};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use x509_parser::prelude::*;

const KUBELET_USAGES: &[&str] = &["digital signature", "client auth"];

fn issued(cp: &Handle, name: &str) -> Value {
    let client = Client::bootstrap(cp);
    wait_for(Duration::from_secs(5), "the certificate", || {
        let csr = client.get(&format!("{CSRS}/{name}")).json();
        csr["status"].get("certificate").is_some().then_some(csr)
    })
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fixture's POST body: its name, request and usages (and expirationSeconds).
fn fixture_post(name: &str) -> Value {
    let f = fixture(name);
    let mut spec = json!({
        "request": f["spec"]["request"],
        "signerName": f["spec"]["signerName"],
        "usages": f["spec"]["usages"],
    });
    if let Some(e) = f["spec"].get("expirationSeconds") {
        spec["expirationSeconds"] = e.clone();
    }
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": f["metadata"]["name"]},
        "spec": spec,
    })
}

#[test]
fn a_kubelet_csr_is_approved_and_signed_and_the_watch_sees_each_step() {
    let cp = start(Config::default()).unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let name = "node-csr-flow-1";
    let mut watch = bootstrap.watch(&format!(
        "{CSRS}?fieldSelector=metadata.name%3D{name}&watch=true&timeoutSeconds=10"
    ));
    assert!(
        watch.chunked,
        "watch responses are streamed with chunked encoding"
    );

    let (pem, key) = make_csr("system:node:worker-1", &["system:nodes"], &[]);
    let created = bootstrap.post(CSRS, &csr_body(Some(name), &pem, KUBELET_USAGES));
    assert_eq!(created.status, 201);
    let created = created.json();
    assert_eq!(
        normalize(&created),
        normalize(&fixture("csr-post-response.json"))
    );
    assert_eq!(created["spec"]["username"], "system:bootstrap:abcdef");

    let events: Vec<Value> = (0..3).map(|_| watch.next().expect("an event")).collect();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            normalize(event),
            normalize(&fixture_line("csr-watch-stream.jsonl", i)),
            "event {i}"
        );
    }
    let rvs: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs[0] < rvs[1] && rvs[1] < rvs[2]);
    assert_eq!(
        events[0]["object"]["metadata"]["uid"],
        events[2]["object"]["metadata"]["uid"]
    );

    let csr = bootstrap.get(&format!("{CSRS}/{name}")).json();
    assert_eq!(normalize(&csr), normalize(&fixture("csr-issued.json")));
    assert_eq!(csr, events[2]["object"]);

    // The leaf: chains to the cluster CA, subject from the CSR, backdated 5 minutes, 1 year.
    let der = issued_der(&csr);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ca = common::ca_der(&cp);
    let (_, ca_cert) = X509Certificate::from_der(&ca).unwrap();
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    assert_eq!(cert.issuer(), ca_cert.subject());
    assert_eq!(
        cert.subject().to_string(),
        "O=system:nodes, CN=system:node:worker-1"
    );
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    assert!(
        (not_before - (now_secs() - 300)).abs() <= 5,
        "backdated by 5 minutes"
    );
    assert_eq!(not_after - not_before, 365 * 86_400);
    assert!(!cert.is_ca());
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_encipherment());
    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.client_auth && !eku.value.server_auth);
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
            _ => None,
        })
        .unwrap();
    let ski = ca_cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(aki.0, ski.0);
    assert!(cert.subject_alternative_name().unwrap().is_none());
    use rcgen::PublicKeyData;
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice()
    );

    // And the certificate works: it authenticates as the node.
    let cert_pem = String::from_utf8(
        STANDARD
            .decode(csr["status"]["certificate"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let node = Client::cert(&cp, &cert_pem, &key.serialize_pem());
    let review = node
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1"}),
        )
        .json();
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:node:worker-1"
    );
}

#[test]
fn generate_name_list_then_watch_like_the_kubelet() {
    let cp = start(Config {
        approval_delay: Duration::from_millis(300),
        ..Config::default()
    })
    .unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let (pem, _) = make_csr("system:node:worker-2", &["system:nodes"], &[]);
    let created = bootstrap
        .post(CSRS, &csr_body(None, &pem, KUBELET_USAGES))
        .json();
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(created["metadata"]["generateName"], "csr-");
    assert_eq!(name.len(), 9);
    assert!(
        name[4..]
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
        "{name}"
    );

    let list = bootstrap
        .get(&format!("{CSRS}?fieldSelector=metadata.name%3D{name}"))
        .json();
    assert_eq!(list["kind"], "CertificateSigningRequestList");
    assert_eq!(list["apiVersion"], "certificates.k8s.io/v1");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0].get("kind").is_none(),
        "list items carry no kind, like the capture"
    );
    let captured = fixture("extra/bootstrap-list-csrs.json");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&items[0]), keys(&captured["items"][0]));
    assert_eq!(keys(&list), keys(&captured));
    assert!(
        items[0]["status"].get("conditions").is_none(),
        "not approved yet"
    );

    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let mut watch = bootstrap.watch(&format!(
        "{CSRS}?allowWatchBookmarks=true&fieldSelector=metadata.name%3D{name}&resourceVersion={rv}&timeoutSeconds=10&watch=true"
    ));
    let approved = watch.next().unwrap();
    assert_eq!(approved["type"], "MODIFIED");
    assert_eq!(
        approved["object"]["status"]["conditions"][0]["type"],
        "Approved"
    );
    let signed = watch.next().unwrap();
    assert!(signed["object"]["status"]["certificate"].is_string());

    // Other CSRs do not leak into a filtered list.
    let (pem, _) = make_csr("system:node:other", &["system:nodes"], &[]);
    assert_eq!(
        bootstrap
            .post(CSRS, &csr_body(None, &pem, KUBELET_USAGES))
            .status,
        201
    );
    let list = bootstrap
        .get(&format!("{CSRS}?fieldSelector=metadata.name={name}"))
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        bootstrap.get(CSRS).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        bootstrap
            .get(&format!("{CSRS}?fieldSelector=spec.foo%3Dbar"))
            .status,
        400
    );
}

#[test]
fn the_captured_csrs_that_qualify_are_issued() {
    let cp = start(Config::default()).unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let rsa = fixture_post("extra/x-ok-rsa-keyenc-1795347852.post.json");
    assert_eq!(bootstrap.post(CSRS, &rsa).status, 201);
    let expiry = fixture_post("extra/x-ok-expiry3600-1795347852.post.json");
    let created = bootstrap.post(CSRS, &expiry);
    assert_eq!(created.status, 201);
    assert_eq!(
        normalize(&created.json()),
        normalize(&fixture("extra/x-ok-expiry3600-1795347852.post.json"))
    );

    let rsa = issued(&cp, "x-ok-rsa-keyenc-1795347852");
    assert_eq!(
        normalize(&rsa),
        normalize(&fixture("extra/x-ok-rsa-keyenc-1795347852.after5s.json"))
    );
    let der = issued_der(&rsa);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.value.digital_signature() && ku.value.key_encipherment());

    // Short-lived: the end is not backdated (now + 3600 s, start now - 300 s).
    let short = issued(&cp, "x-ok-expiry3600-1795347852");
    assert_eq!(
        normalize(&short),
        normalize(&fixture("extra/x-ok-expiry3600-1795347852.after5s.json"))
    );
    let der = issued_der(&short);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let v = cert.validity();
    assert_eq!(v.not_after.timestamp() - v.not_before.timestamp(), 3900);
}

#[test]
fn csrs_that_do_not_qualify_stay_pending_without_any_condition() {
    let cp = start(Config::default()).unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let bad = ["cn", "org", "dnssan", "serverauth", "keyenc-ec-only"];
    for b in bad {
        let post = fixture_post(&format!("extra/x-bad-{b}-1795347852.post.json"));
        let reply = bootstrap.post(CSRS, &post);
        assert_eq!(reply.status, 201, "{b}: {}", reply.body);
        assert_eq!(
            normalize(&reply.json()),
            normalize(&fixture(&format!("extra/x-bad-{b}-1795347852.post.json")))
        );
    }
    // A good one created after them is issued; the approver has had its chance at the rest.
    let (pem, _) = make_csr("system:node:good", &["system:nodes"], &[]);
    bootstrap.post(CSRS, &csr_body(Some("good"), &pem, KUBELET_USAGES));
    issued(&cp, "good");
    std::thread::sleep(Duration::from_millis(200));
    for b in bad {
        let name = format!("x-bad-{b}-1795347852");
        let now = bootstrap.get(&format!("{CSRS}/{name}")).json();
        assert_eq!(now["status"], json!({}), "{b}");
        assert_eq!(
            normalize(&now),
            normalize(&fixture(&format!(
                "extra/x-bad-{b}-1795347852.after5s.json"
            ))),
            "{b}"
        );
    }
}

/// The bytes inside a captured `[]byte{0x30, 0x81, ...}` message.
fn go_bytes(message: &str) -> Vec<u8> {
    let start = message.find("[]byte{").unwrap() + "[]byte{".len();
    let end = start + message[start..].find('}').unwrap();
    message[start..end]
        .split(", ")
        .map(|h| u8::from_str_radix(h.trim_start_matches("0x"), 16).unwrap())
        .collect()
}

#[test]
fn invalid_and_duplicate_csrs_get_the_captured_errors() {
    let cp = start(Config::default()).unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let (pem, _) = make_csr("system:node:x", &["system:nodes"], &[]);
    let kubelet = "kubernetes.io/kube-apiserver-client-kubelet";
    let body = |name: &str,
                request: &[u8],
                signer: Option<&str>,
                usages: &[&str],
                expiry: Option<i64>| {
        let mut spec = json!({"request": STANDARD.encode(request), "usages": usages});
        if let Some(s) = signer {
            spec["signerName"] = json!(s);
        }
        if let Some(e) = expiry {
            spec["expirationSeconds"] = json!(e);
        }
        json!({"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"name":name},"spec":spec})
    };
    let der_fixture = fixture("extra/error-422-der-not-pem.json");
    let der = go_bytes(der_fixture["message"].as_str().unwrap());
    let cases = [
        (
            body(
                "x-422-der-1795347852",
                &der,
                Some(kubelet),
                KUBELET_USAGES,
                None,
            ),
            "extra/error-422-der-not-pem.json",
        ),
        (
            body(
                "x-422-garbage-1795347852",
                b"not a csr",
                Some(kubelet),
                KUBELET_USAGES,
                None,
            ),
            "extra/error-422-garbage-request.json",
        ),
        (
            body(
                "x-422-nosigner-1795347852",
                pem.as_bytes(),
                None,
                KUBELET_USAGES,
                None,
            ),
            "extra/error-422-missing-signername.json",
        ),
        (
            body(
                "x-422-dupusage",
                pem.as_bytes(),
                Some(kubelet),
                &["digital signature", "client auth", "client auth"],
                None,
            ),
            "extra/error-422-duplicate-usage.json",
        ),
        (
            body(
                "x-422-expiry100-1795347852",
                pem.as_bytes(),
                Some(kubelet),
                KUBELET_USAGES,
                Some(100),
            ),
            "extra/x-422-expiry100-1795347852.post.json",
        ),
    ];
    for (request, capture) in cases {
        let reply = bootstrap.post(CSRS, &request);
        assert_eq!(reply.status, 422, "{capture}");
        assert_eq!(reply.json(), fixture(capture), "{capture}");
    }

    let dup = fixture_post("extra/x-ok-expiry3600-1795347852.post.json");
    assert_eq!(bootstrap.post(CSRS, &dup).status, 201);
    let again = bootstrap.post(CSRS, &dup);
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json(),
        fixture("extra/error-409-duplicate-csr-name.json")
    );

    let missing = bootstrap.get(&format!("{CSRS}/does-not-exist"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), fixture("error-404-csr-not-found.json"));
}

#[test]
fn a_watch_from_a_stale_version_gets_410_expired() {
    let cp = start(Config::default()).unwrap();
    let mut watch = Client::bootstrap(&cp).watch(&format!("{CSRS}?watch=true&resourceVersion=1"));
    let event = watch.next().unwrap();
    let mut expected = fixture_line("watch-error-410-too-old-resource-version.jsonl", 0);
    let message = event["object"]["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("too old resource version: 1 ("),
        "{message}"
    );
    expected["object"]["message"] = json!(message);
    assert_eq!(event, expected);
    assert!(watch.next().is_none(), "the stream ends after the error");
}

#[test]
fn a_watch_without_a_version_starts_with_the_current_objects() {
    let cp = start(Config::default()).unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let (pem, _) = make_csr("system:node:w", &["system:nodes"], &[]);
    bootstrap.post(CSRS, &csr_body(Some("existing"), &pem, KUBELET_USAGES));
    let current = issued(&cp, "existing");
    let mut watch = bootstrap.watch(&format!("{CSRS}?watch=1&timeoutSeconds=1"));
    let first = watch.next().unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"], current);
    let started = Instant::now();
    assert!(watch.next().is_none(), "timeoutSeconds ends the watch");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn manual_mode_waits_for_an_admin() {
    let cp = start(Config {
        approval: Approval::Manual,
        ..Config::default()
    })
    .unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let (pem, _) = make_csr("system:node:m1", &["system:nodes"], &[]);
    bootstrap.post(
        CSRS,
        &csr_body(Some("node-csr-manual"), &pem, KUBELET_USAGES),
    );
    let (pem2, _) = make_csr("system:node:deny-node", &["system:nodes"], &[]);
    bootstrap.post(
        CSRS,
        &csr_body(Some("node-csr-deny-demo"), &pem2, KUBELET_USAGES),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        bootstrap.get(&format!("{CSRS}/node-csr-manual")).json()["status"],
        json!({})
    );

    cp.approve("node-csr-manual").unwrap();
    let csr = issued(&cp, "node-csr-manual");
    let condition = &csr["status"]["conditions"][0];
    assert_eq!(condition["reason"], "KubectlApprove");
    assert_eq!(
        condition["message"],
        "This CSR was approved by kubectl certificate approve."
    );

    let rv: u64 = bootstrap.get(&format!("{CSRS}/node-csr-deny-demo")).json()["metadata"]
        ["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut watch = bootstrap.watch(&format!(
        "{CSRS}?watch=true&fieldSelector=metadata.name%3Dnode-csr-deny-demo&resourceVersion={rv}&timeoutSeconds=5"
    ));
    cp.deny(
        "node-csr-deny-demo",
        "KubectlDeny",
        "This CSR was denied by kubectl certificate deny.",
    )
    .unwrap();
    let event = watch.next().unwrap();
    assert_eq!(
        normalize(&event),
        normalize(&fixture_line("csr-watch-denied.jsonl", 0))
    );
    assert_eq!(
        normalize(&bootstrap.get(&format!("{CSRS}/node-csr-deny-demo")).json()),
        normalize(&fixture("csr-denied.json"))
    );
    assert!(
        cp.approve("node-csr-deny-demo").is_err(),
        "a denied CSR cannot be approved"
    );
    assert!(cp.approve("nope").is_err());

    assert!(cp.delete_csr("node-csr-manual").is_ok());
    assert_eq!(cp.csrs().len(), 1);
}

#[test]
fn the_approval_subresource_as_kubectl_uses_it() {
    let cp = start(Config {
        approval: Approval::Manual,
        ..Config::default()
    })
    .unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let admin = Client::admin(&cp);
    let (pem, _) = make_csr("system:node:a1", &["system:nodes"], &[]);
    bootstrap.post(CSRS, &csr_body(Some("via-api"), &pem, KUBELET_USAGES));
    let path = format!("{CSRS}/via-api/approval");
    let mut csr = admin.get(&format!("{CSRS}/via-api")).json();

    let mut stale = csr.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["status"]["conditions"] =
        json!([{"type":"Approved","status":"True","reason":"R","message":"M"}]);
    let conflict = admin.put(&path, &stale);
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["reason"], "Conflict");

    let mut both = csr.clone();
    both["status"]["conditions"] = json!([
        {"type":"Approved","status":"True","reason":"R","message":"M"},
        {"type":"Denied","status":"True","reason":"R","message":"M"}
    ]);
    let invalid = admin.put(&path, &both);
    assert_eq!(invalid.status, 422);
    assert_eq!(
        invalid.json()["message"],
        "CertificateSigningRequest.certificates.k8s.io \"via-api\" is invalid: status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
    );

    csr["status"]["conditions"] = json!([{
        "type":"Approved","status":"True","reason":"KubectlApprove",
        "message":"This CSR was approved by kubectl certificate approve.",
        "lastUpdateTime":"2026-01-01T00:00:00Z"
    }]);
    let ok = admin.put(&path, &csr);
    assert_eq!(ok.status, 200);
    let approved = ok.json();
    assert_eq!(
        approved["status"]["conditions"][0]["lastUpdateTime"],
        "2026-01-01T00:00:00Z"
    );
    assert!(approved["status"]["conditions"][0]["lastTransitionTime"].is_string());
    issued(&cp, "via-api");

    // Removing the decision is refused.
    let mut current = admin.get(&format!("{CSRS}/via-api")).json();
    current["status"]["conditions"] = json!([]);
    assert_eq!(admin.put(&path, &current).status, 422);
}

#[test]
fn a_manually_approved_csr_the_signer_rejects_gets_a_failed_condition() {
    let cp = start(Config {
        approval: Approval::Manual,
        ..Config::default()
    })
    .unwrap();
    let bootstrap = Client::bootstrap(&cp);
    bootstrap.post(CSRS, &fixture_post("extra/x-bad-org-1795347852.post.json"));
    cp.approve("x-bad-org-1795347852").unwrap();
    let csr = bootstrap
        .get(&format!("{CSRS}/x-bad-org-1795347852"))
        .json();
    let conditions = csr["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[1]["type"], "Failed");
    assert_eq!(conditions[1]["reason"], "SignerValidationFailure");
    assert_eq!(
        conditions[1]["message"],
        "subject organization is not system:nodes"
    );
    assert!(csr["status"].get("certificate").is_none());
}

#[test]
fn auto_approval_honours_its_delay() {
    let delay = Duration::from_millis(400);
    let cp = start(Config {
        approval_delay: delay,
        ..Config::default()
    })
    .unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let (pem, _) = make_csr("system:node:slow", &["system:nodes"], &[]);
    let started = Instant::now();
    bootstrap.post(CSRS, &csr_body(Some("slow"), &pem, KUBELET_USAGES));
    assert_eq!(
        bootstrap.get(&format!("{CSRS}/slow")).json()["status"],
        json!({})
    );
    issued(&cp, "slow");
    assert!(started.elapsed() >= delay);
}

#[test]
fn a_node_renewing_its_own_certificate_is_approved_as_selfnodeclient() {
    let cp = start(Config::default()).unwrap();
    let (cert, key) = cp.issue_client_cert("system:node:n1", &["system:nodes"]);
    let node = Client::cert(&cp, &cert, &key);
    let (pem, _) = make_csr("system:node:n1", &["system:nodes"], &[]);
    assert_eq!(
        node.post(CSRS, &csr_body(Some("renew"), &pem, KUBELET_USAGES))
            .status,
        201
    );
    let csr = issued(&cp, "renew");
    assert_eq!(csr["spec"]["username"], "system:node:n1");
    assert_eq!(
        csr["status"]["conditions"][0]["message"],
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    );
}

#[test]
fn deletes_are_for_admins_and_watchers_see_them() {
    let cp = start(Config::default()).unwrap();
    let bootstrap = Client::bootstrap(&cp);
    let (pem, _) = make_csr("system:node:d", &["system:nodes"], &[]);
    bootstrap.post(CSRS, &csr_body(Some("to-delete"), &pem, KUBELET_USAGES));
    let current = issued(&cp, "to-delete");
    let rv = current["metadata"]["resourceVersion"].as_str().unwrap();
    let mut watch = bootstrap.watch(&format!(
        "{CSRS}?watch=true&resourceVersion={rv}&timeoutSeconds=5"
    ));
    assert_eq!(bootstrap.delete(&format!("{CSRS}/to-delete")).status, 403);
    let deleted = Client::admin(&cp).delete(&format!("{CSRS}/to-delete"));
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",
               "details":{"name":"to-delete","group":"certificates.k8s.io","kind":"certificatesigningrequests","uid":current["metadata"]["uid"]}})
    );
    let event = watch.next().unwrap();
    assert_eq!(event["type"], "DELETED");
    assert_eq!(event["object"]["metadata"]["name"], "to-delete");
    assert_eq!(bootstrap.get(&format!("{CSRS}/to-delete")).status, 404);
}
