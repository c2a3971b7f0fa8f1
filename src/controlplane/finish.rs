//! The control-plane join's phases after the kubelet starts: etcd-join, mark-control-plane,
//! wait-control-plane (see [`super::join`] for the order and its sources).

use super::cluster::{ClusterConfig, LocalNode};
use super::etcd::{self, EtcdError};
use super::join_error::{api, Error};
use super::manifests;
use crate::deadline::PhaseClock;
use crate::kube::{self, Identity, Timeouts};
use crate::plan::control_plane::ControlPlanePlan;
use crate::{info, warn};
use serde_json::{json, Value};
use std::time::Duration;

pub(super) const ETCD_PODS: &str =
    "/api/v1/namespaces/kube-system/pods?labelSelector=component%3Detcd%2Ctier%3Dcontrol-plane";

/// The taints kubeadm gives a control-plane node (`constants.ControlPlaneTaint`, and
/// `OldControlPlaneTaint` alongside it in v1.24 only; read: v1.24 added the new taint, v1.25
/// dropped the old one).
pub fn default_taints(minor: u32) -> Vec<String> {
    let new = "node-role.kubernetes.io/control-plane:NoSchedule".to_string();
    match minor {
        0..=23 => vec!["node-role.kubernetes.io/master:NoSchedule".into()],
        24 => vec!["node-role.kubernetes.io/master:NoSchedule".into(), new],
        _ => vec![new],
    }
}

/// The labels kubeadm's mark-control-plane sets (`markcontrolplane.go`; v1.24 dropped the
/// `master` label, read).
pub fn control_plane_labels(minor: u32) -> Vec<&'static str> {
    let mut l = vec![
        "node-role.kubernetes.io/control-plane",
        "node.kubernetes.io/exclude-from-external-load-balancers",
    ];
    if minor <= 23 {
        l.insert(0, "node-role.kubernetes.io/master");
    }
    l
}

/// `key[=value]:Effect` as a Node taint object.
pub(super) fn taint_json(t: &str) -> Value {
    let (kv, effect) = t.rsplit_once(':').unwrap_or((t, "NoSchedule"));
    match kv.split_once('=') {
        Some((k, v)) => json!({"key": k, "value": v, "effect": effect}),
        None => json!({"key": kv, "effect": effect}),
    }
}

pub(super) fn healthz_url(cp: &ControlPlanePlan) -> String {
    cp.healthz_url.clone().unwrap_or_else(|| {
        format!(
            "https://{}/healthz",
            super::cluster::host_port(&cp.advertise_address.to_string(), cp.bind_port)
        )
    })
}

/// Pauses between attempts of the waits: 0.5 s doubling to 5 s.
pub(super) fn pause(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4))).min(Duration::from_secs(5))
}

/// etcd-join: member add (or find), promote; the `--initial-cluster` for etcd.yaml.
pub(super) async fn join_etcd(
    admin: &kube::Client,
    cfg: &ClusterConfig,
    node: &LocalNode,
    ca: &[u8],
    cert: &[u8],
    key: &[u8],
    clock: &PhaseClock,
) -> Result<Vec<manifests::InitialMember>, Error> {
    let pods: Value = admin
        .get(ETCD_PODS, "PodList")
        .await
        .map_err(api("listing the etcd Pods in kube-system", admin.server()))?;
    let endpoints = etcd::endpoints_from_pods(&pods);
    if endpoints.is_empty() {
        return Err(Error::NoEtcdEndpoints);
    }
    info!("etcd: endpoints {}", endpoints.join(", "));
    let client = etcd::Client::new(&endpoints, ca, cert, key, Duration::from_secs(10))
        .map_err(Error::Etcd)?;
    let peer = manifests::etcd_peer_url(node);
    let learner = etcd::adds_as_learner(cfg);
    let listed = client.member_list().await.map_err(Error::Etcd)?;
    let (members, id, is_learner) = match etcd::member_by_peer(&listed.members, &peer) {
        // A re-run after a crash: the member is there already.
        Some(m) => {
            info!("etcd: member {:x} with peer URL {peer} exists already (an earlier attempt); not adding it again", m.id);
            (listed.members.clone(), m.id, m.is_learner)
        }
        None => {
            let mut attempt = 0;
            let added = loop {
                match client.member_add(&peer, learner).await {
                    Ok(a) => break a,
                    Err(e @ EtcdError::Refused { .. })
                        if !e.to_string().contains("already exists") =>
                    {
                        if clock.remaining() <= pause(attempt) {
                            return Err(Error::Etcd(e));
                        }
                        warn!("etcd: {e}; retrying");
                        tokio::time::sleep(pause(attempt)).await;
                        attempt += 1;
                    }
                    Err(e) => return Err(Error::Etcd(e)),
                }
            };
            info!(
                "etcd: added member {:x} ({peer}){}",
                added.member.id,
                if learner { " as a learner" } else { "" }
            );
            (added.members, added.member.id, added.member.is_learner)
        }
    };
    let initial = etcd::initial_cluster(&members, &node.name, &peer);
    if is_learner {
        let mut attempt = 0;
        loop {
            match client.member_promote(id).await {
                Ok(_) => break,
                Err(e) if e.is_learner_not_ready() && clock.remaining() > pause(attempt) => {
                    crate::debug!("etcd: {e}; retrying");
                    tokio::time::sleep(pause(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(Error::Etcd(e)),
            }
        }
        info!("etcd: promoted member {id:x} to a voting member");
    }
    Ok(initial)
}

/// mark-control-plane: wait for the Node, then add the labels and the taints it lacks.
pub(super) async fn mark(
    admin: &kube::Client,
    node: &str,
    minor: u32,
    taints: &[String],
) -> Result<(), Error> {
    let path = format!("/api/v1/nodes/{node}");
    let mut attempt = 0;
    let current: Value = loop {
        match admin.get(&path, "Node").await {
            Ok(n) => break n,
            Err(e) if e.status_code() == Some(404) => {
                if attempt % 10 == 0 {
                    info!("mark-control-plane: waiting for the kubelet to register Node {node:?}");
                }
                tokio::time::sleep(pause(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(api(format!("getting Node {node:?}"), admin.server())(e)),
        }
    };
    let mut want: Vec<Value> = taints.iter().map(|t| taint_json(t)).collect();
    for t in current
        .pointer("/spec/taints")
        .and_then(Value::as_array)
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
    let labels: serde_json::Map<String, Value> = control_plane_labels(minor)
        .into_iter()
        .map(|l| (l.to_string(), json!("")))
        .collect();
    let patch = json!({"metadata": {"labels": labels}, "spec": {"taints": want}});
    let answer = admin
        .send_typed(
            http::Method::PATCH,
            &path,
            "application/json",
            "application/strategic-merge-patch+json",
            Some(patch.to_string().into_bytes()),
            kube::MAX_BODY,
        )
        .await
        .map_err(api(format!("patching Node {node:?}"), admin.server()))?;
    if !answer.is_success() {
        return Err(api(format!("patching Node {node:?}"), admin.server())(
            answer.into_status_error(),
        ));
    }
    info!(
        "mark-control-plane: Node {node:?} labelled [{}] and tainted [{}]",
        control_plane_labels(minor).join(", "),
        taints.join(", ")
    );
    Ok(())
}

/// wait-control-plane: `url` answers 200, verified against the cluster CA.
pub(super) async fn wait_healthy(url: &str, trust: &kube::Trust) -> Result<(), Error> {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    let base = format!("https://{host}");
    let client = kube::client(
        &base,
        trust,
        &Identity::Anonymous,
        // Polling /healthz is how readiness is learnt here: no settle after a refused port.
        Timeouts {
            connect: Duration::from_secs(5),
            read: Some(Duration::from_secs(5)),
            settle: false,
        },
    )
    .map_err(|e| Error::Internal(format!("a client for {base}: {e}")))?;
    let mut attempt = 0;
    loop {
        match client
            .send(http::Method::GET, path, "text/plain", None, 4096)
            .await
        {
            Ok(a) if a.is_success() => return Ok(()),
            Ok(a) => crate::debug!("wait-control-plane: {url} answered {}", a.code),
            Err(e) => crate::debug!("wait-control-plane: {url}: {e}"),
        }
        if attempt % 10 == 0 {
            info!("wait-control-plane: waiting for {url}");
        }
        tokio::time::sleep(pause(attempt)).await;
        attempt += 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn marking_rules_by_version() {
        assert_eq!(
            default_taints(24),
            [
                "node-role.kubernetes.io/master:NoSchedule",
                "node-role.kubernetes.io/control-plane:NoSchedule"
            ]
        );
        assert_eq!(
            default_taints(30),
            ["node-role.kubernetes.io/control-plane:NoSchedule"]
        );
        assert_eq!(control_plane_labels(23).len(), 3);
        assert_eq!(
            control_plane_labels(24)[0],
            "node-role.kubernetes.io/control-plane"
        );
        assert_eq!(
            taint_json("a=b:NoExecute"),
            json!({"key": "a", "value": "b", "effect": "NoExecute"})
        );
    }
}
