//! The control plane behaves as the version it is told to be (`Config::kubernetes_version`,
//! `--kubernetes-version`): the kubelet client CSR usage rules of its approver and signer, the
//! kubelet-config ConfigMap name (and kubeadm's RBAC for it), the `ClusterConfiguration` API
//! version in `kubeadm-config`, `/version`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{csr_body, make_csr, wait_for, Client, CSRS};
use kubejoin_testcp::{start, Approval, Config, Handle};
use serde_json::{json, Value};
use std::time::Duration;

const WITHOUT_KEY_ENCIPHERMENT: &[&str] = &["digital signature", "client auth"];
const WITH_KEY_ENCIPHERMENT: &[&str] = &["digital signature", "key encipherment", "client auth"];
const CONFIGMAPS: &str = "/api/v1/namespaces/kube-system/configmaps";

fn at(version: &str, approval: Approval) -> Handle {
    start(Config {
        kubernetes_version: version.into(),
        approval,
        ..Config::default()
    })
    .unwrap()
}

fn post(cp: &Handle, name: &str, usages: &[&str]) {
    let (pem, _) = make_csr(&format!("system:node:{name}"), &["system:nodes"], &[]);
    let reply = Client::bootstrap(cp).post(CSRS, &csr_body(Some(name), &pem, usages));
    assert_eq!(reply.status, 201);
}

fn csr(cp: &Handle, name: &str) -> Value {
    Client::bootstrap(cp).get(&format!("{CSRS}/{name}")).json()
}

fn issued(cp: &Handle, name: &str) -> Value {
    wait_for(Duration::from_secs(5), "the certificate", || {
        let c = csr(cp, name);
        c["status"].get("certificate").is_some().then_some(c)
    })
}

#[test]
fn v1_24_leaves_the_ecdsa_kubelet_usages_pending_and_its_signer_fails_them() {
    let cp = at("1.24", Approval::Auto);
    post(&cp, "pending", WITHOUT_KEY_ENCIPHERMENT);
    // The approver's recognizer does not match: no condition, ever (checked after a while).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(csr(&cp, "pending")["status"], json!({}));
    // `kubectl certificate approve`, then the signer's own validation.
    cp.approve("pending").unwrap();
    let c = csr(&cp, "pending");
    let conditions = c["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2, "{c:#}");
    assert_eq!(conditions[0]["type"], "Approved");
    assert_eq!(conditions[1]["type"], "Failed");
    assert_eq!(conditions[1]["status"], "True");
    assert_eq!(conditions[1]["reason"], "SignerValidationFailure");
    assert_eq!(
        conditions[1]["message"],
        "usages did not match [client auth digital signature key encipherment]"
    );
    assert!(c["status"].get("certificate").is_none());

    // The set with key encipherment is approved and signed by the same control plane.
    post(&cp, "strict", WITH_KEY_ENCIPHERMENT);
    let c = issued(&cp, "strict");
    assert_eq!(c["status"]["conditions"][0]["reason"], "AutoApproved");
}

#[test]
fn from_v1_25_both_usage_sets_are_approved_and_signed() {
    for version in ["v1.25.0", "v1.28.7", "v1.36.3"] {
        let cp = at(version, Approval::Auto);
        post(&cp, "ecdsa", WITHOUT_KEY_ENCIPHERMENT);
        post(&cp, "rsa-style", WITH_KEY_ENCIPHERMENT);
        issued(&cp, "ecdsa");
        issued(&cp, "rsa-style");
    }
}

fn kubeadm_config(cp: &Handle) -> String {
    Client::bootstrap(cp)
        .get(&format!("{CONFIGMAPS}/kubeadm-config"))
        .json()["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn kubeadm_config_is_in_the_api_version_that_kubeadm_uploads() {
    for (version, api, repo) in [
        ("v1.21.14", "kubeadm.k8s.io/v1beta2", "k8s.gcr.io"),
        ("v1.24.17", "kubeadm.k8s.io/v1beta3", "k8s.gcr.io"),
        ("v1.25.16", "kubeadm.k8s.io/v1beta3", "registry.k8s.io"),
        ("v1.30.14", "kubeadm.k8s.io/v1beta3", "registry.k8s.io"),
        ("v1.31.0", "kubeadm.k8s.io/v1beta4", "registry.k8s.io"),
        ("1.36", "kubeadm.k8s.io/v1beta4", "registry.k8s.io"),
    ] {
        let cp = at(version, Approval::Auto);
        let cc = kubeadm_config(&cp);
        let shown = if version == "1.36" {
            "v1.36.0"
        } else {
            version
        };
        assert!(
            cc.contains(&format!("apiVersion: {api}\n")),
            "{version}: {cc}"
        );
        assert!(
            cc.contains(&format!("kubernetesVersion: {shown}\n")),
            "{version}: {cc}"
        );
        assert!(
            cc.contains(&format!("imageRepository: {repo}\n")),
            "{version}: {cc}"
        );
        assert!(!cc.contains("featureGates"), "{cc}");
        let v: Value = Client::bootstrap(&cp).get("/version").json();
        assert_eq!(v["gitVersion"], shown);
    }
    // An upgrade in progress: kubeadm-config ahead of the controllers.
    let cp = start(Config {
        kubernetes_version: "v1.24.17".into(),
        kubeadm_config_kubernetes_version: Some("v1.27.0".into()),
        ..Config::default()
    })
    .unwrap();
    assert!(kubeadm_config(&cp).contains("kubernetesVersion: v1.27.0\n"));
    post(&cp, "mid-upgrade", WITHOUT_KEY_ENCIPHERMENT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        csr(&cp, "mid-upgrade")["status"],
        json!({}),
        "v1.24 rules apply"
    );
}

#[test]
fn kubelet_config_names_and_their_rbac_follow_the_version() {
    let get = |cp: &Handle, name: &str| {
        Client::bootstrap(cp)
            .get(&format!("{CONFIGMAPS}/{name}"))
            .status
    };
    // v1.23: UnversionedKubeletConfigMap was alpha and off.
    let cp = at("v1.23.17", Approval::Auto);
    assert_eq!(cp.kubelet_config_map(), "kubelet-config-1.23");
    assert_eq!(get(&cp, "kubelet-config-1.23"), 200);
    assert_eq!(
        get(&cp, "kubelet-config"),
        403,
        "no RBAC for the other name"
    );
    // v1.24: on by default, may be switched off in the ClusterConfiguration.
    let cp = at("v1.24.17", Approval::Auto);
    assert_eq!(get(&cp, "kubelet-config"), 200);
    let cp = start(Config {
        kubernetes_version: "v1.24.17".into(),
        unversioned_kubelet_config_map: Some(false),
        ..Config::default()
    })
    .unwrap();
    assert_eq!(get(&cp, "kubelet-config-1.24"), 200);
    assert_eq!(get(&cp, "kubelet-config"), 403);
    assert!(kubeadm_config(&cp).contains("featureGates:\n  UnversionedKubeletConfigMap: false\n"));
    // v1.25: locked on; switching it off is refused as kubeadm refuses it.
    let e = start(Config {
        kubernetes_version: "v1.25.0".into(),
        unversioned_kubelet_config_map: Some(false),
        ..Config::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
    assert!(start(Config {
        kubernetes_version: "latest".into(),
        ..Config::default()
    })
    .is_err());
}
