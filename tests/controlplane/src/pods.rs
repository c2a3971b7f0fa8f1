//! The mirror Pods of the first control plane's static Pods in kube-system (etcd for stacked
//! etcd, kube-apiserver, kube-controller-manager, kube-scheduler), which kubeadm reads the etcd
//! endpoints (and, on upgrade, API endpoints) from: labels `component=<name>,tier=control-plane`,
//! the endpoint annotations where the version writes them, the kubelet's `kubernetes.io/config.*`
//! annotations and the controller reference to the Node every mirror Pod carries. Listed with
//! equality-based label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`) and the field selectors
//! `metadata.name`, `spec.nodeName`.

use crate::objects::{ObjectMeta, OwnerReference, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// `core/v1` Pod (the fields a static Pod's mirror shows), in Go's order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pod {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    pub status: PodStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpec {
    pub containers: Vec<Container>,
    pub restart_policy: &'static str,
    pub node_name: String,
    pub host_network: bool,
    pub priority_class_name: &'static str,
    pub priority: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Container {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub resources: serde_json::Value,
    pub image_pull_policy: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodStatus {
    pub phase: &'static str,
    #[serde(rename = "hostIP")]
    pub host_ip: String,
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    pub start_time: String,
}

/// What the Pods are made from.
#[derive(Debug, Clone)]
pub(crate) struct PodFacts {
    pub node: String,
    pub node_uid: String,
    /// The node's advertise address (an IP) and the API server's port.
    pub address: String,
    pub api_port: u16,
    /// The etcd client URL (stacked etcd), or the external endpoints.
    pub etcd_url: Option<String>,
    pub external_etcd: Vec<String>,
    pub image_repository: String,
    pub kubernetes_version: String,
    pub etcd_version: String,
    pub annotations: bool,
    pub created: SystemTime,
    pub service_subnet: String,
    pub pod_subnet: Option<String>,
    pub cluster_name: String,
}

/// A parsed label selector.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    /// (key, value, op): op `=` equal, `!` not equal, `e` exists, `n` does not exist.
    terms: Vec<(String, String, char)>,
}

impl Selector {
    pub(crate) fn parse(s: Option<&str>) -> Result<Selector, Status> {
        let mut terms = Vec::new();
        for part in s
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let term = if let Some((k, v)) = part.split_once("!=") {
                (k.trim(), v.trim(), '!')
            } else if let Some((k, v)) = part.split_once("==") {
                (k.trim(), v.trim(), '=')
            } else if let Some((k, v)) = part.split_once('=') {
                (k.trim(), v.trim(), '=')
            } else if let Some(k) = part.strip_prefix('!') {
                (k.trim(), "", 'n')
            } else if part.contains(' ') || part.contains('(') {
                return Err(Status::bad_request(format!(
                    "unable to parse requirement: set-based requirements are not supported by this server: {part:?}"
                )));
            } else {
                (part, "", 'e')
            };
            if term.0.is_empty() {
                return Err(Status::bad_request(format!(
                    "unable to parse requirement: {part:?}: key is empty"
                )));
            }
            terms.push((term.0.to_string(), term.1.to_string(), term.2));
        }
        Ok(Selector { terms })
    }

    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|(k, v, op)| match op {
            '=' => labels.get(k) == Some(v),
            '!' => labels.get(k) != Some(v),
            'e' => labels.contains_key(k),
            _ => !labels.contains_key(k),
        })
    }
}

/// The static Pods' mirrors, by name.
pub(crate) fn pods(f: &PodFacts) -> Vec<Pod> {
    let mut out = Vec::new();
    let host_port = |port: u16| {
        if f.address.contains(':') {
            format!("[{}]:{port}", f.address)
        } else {
            format!("{}:{port}", f.address)
        }
    };
    let repo = &f.image_repository;
    let version = &f.kubernetes_version;
    if let Some(url) = &f.etcd_url {
        let peer = format!("https://{}", host_port(2380));
        out.push(pod(
            f,
            "etcd",
            format!("{repo}/etcd:{}-0", f.etcd_version),
            vec![
                "etcd".into(),
                format!("--advertise-client-urls={url}"),
                "--cert-file=/etc/kubernetes/pki/etcd/server.crt".into(),
                "--client-cert-auth=true".into(),
                "--data-dir=/var/lib/etcd".into(),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster={}={peer}", f.node),
                "--key-file=/etc/kubernetes/pki/etcd/server.key".into(),
                format!("--listen-client-urls=https://127.0.0.1:2379,{url}"),
                format!("--listen-peer-urls={peer}"),
                format!("--name={}", f.node),
                "--peer-client-cert-auth=true".into(),
                "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt".into(),
            ],
            f.annotations
                .then(|| (crate::controlplane::ETCD_ANNOTATION, url.clone())),
        ));
    }
    let etcd_servers = match &f.etcd_url {
        Some(_) => "https://127.0.0.1:2379".to_string(),
        None => f.external_etcd.join(","),
    };
    out.push(pod(
        f,
        "kube-apiserver",
        format!("{repo}/kube-apiserver:{version}"),
        vec![
            "kube-apiserver".into(),
            format!("--advertise-address={}", f.address),
            "--allow-privileged=true".into(),
            "--authorization-mode=Node,RBAC".into(),
            "--client-ca-file=/etc/kubernetes/pki/ca.crt".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--enable-bootstrap-token-auth=true".into(),
            format!("--etcd-servers={etcd_servers}"),
            format!("--secure-port={}", f.api_port),
            format!("--service-cluster-ip-range={}", f.service_subnet),
        ],
        f.annotations.then(|| {
            (
                crate::controlplane::APISERVER_ANNOTATION,
                host_port(f.api_port),
            )
        }),
    ));
    let mut kcm = vec![
        "kube-controller-manager".to_string(),
        "--bind-address=127.0.0.1".into(),
        format!("--cluster-name={}", f.cluster_name),
        "--controllers=*,bootstrapsigner,tokencleaner".into(),
        "--leader-elect=true".into(),
        format!("--service-cluster-ip-range={}", f.service_subnet),
    ];
    if let Some(pods) = &f.pod_subnet {
        kcm.push("--allocate-node-cidrs=true".into());
        kcm.push(format!("--cluster-cidr={pods}"));
    }
    kcm.sort();
    out.push(pod(
        f,
        "kube-controller-manager",
        format!("{repo}/kube-controller-manager:{version}"),
        kcm,
        None,
    ));
    out.push(pod(
        f,
        "kube-scheduler",
        format!("{repo}/kube-scheduler:{version}"),
        vec![
            "kube-scheduler".into(),
            "--bind-address=127.0.0.1".into(),
            "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
            "--leader-elect=true".into(),
        ],
        None,
    ));
    out
}

fn pod(
    f: &PodFacts,
    component: &str,
    image: String,
    command: Vec<String>,
    annotation: Option<(&str, String)>,
) -> Pod {
    // The kubelet's hash of the manifest: stable per component and node here.
    let hash = {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(format!("{component}/{}/{}", f.node, f.created_secs()));
        hex::encode(&d[..16])
    };
    let created = crate::util::rfc3339(f.created);
    let mut annotations = BTreeMap::new();
    if let Some((k, v)) = annotation {
        annotations.insert(k.to_string(), v);
    }
    annotations.insert("kubernetes.io/config.hash".into(), hash.clone());
    annotations.insert("kubernetes.io/config.mirror".into(), hash.clone());
    annotations.insert("kubernetes.io/config.seen".into(), created.clone());
    annotations.insert("kubernetes.io/config.source".into(), "file".into());
    let labels: BTreeMap<String, String> = [
        ("component".to_string(), component.to_string()),
        ("tier".to_string(), "control-plane".to_string()),
    ]
    .into();
    Pod {
        kind: Some("Pod"),
        api_version: Some("v1"),
        metadata: ObjectMeta {
            name: format!("{component}-{}", f.node),
            namespace: "kube-system".into(),
            uid: uid_from(&hash),
            resource_version: "300".into(),
            creation_timestamp: created.clone(),
            labels,
            annotations,
            owner_references: vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: f.node.clone(),
                uid: f.node_uid.clone(),
                controller: Some(true),
                block_owner_deletion: None,
            }],
            ..ObjectMeta::default()
        },
        spec: PodSpec {
            containers: vec![Container {
                name: component.to_string(),
                image,
                command,
                resources: serde_json::json!({}),
                image_pull_policy: "IfNotPresent",
            }],
            restart_policy: "Always",
            node_name: f.node.clone(),
            host_network: true,
            priority_class_name: "system-node-critical",
            priority: 2_000_001_000,
        },
        status: PodStatus {
            phase: "Running",
            host_ip: f.address.clone(),
            pod_ip: f.address.clone(),
            start_time: created,
        },
    }
}

impl PodFacts {
    fn created_secs(&self) -> u64 {
        self.created
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A UUID-shaped UID derived from the hash, so a Pod keeps its UID across reads.
fn uid_from(hash: &str) -> String {
    let h = format!("{hash:0<32}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(annotations: bool) -> PodFacts {
        PodFacts {
            node: "cp-1".into(),
            node_uid: "u".into(),
            address: "127.0.0.1".into(),
            api_port: 6443,
            etcd_url: Some("https://127.0.0.1:40000".into()),
            external_etcd: Vec::new(),
            image_repository: "registry.k8s.io".into(),
            kubernetes_version: "v1.30.0".into(),
            etcd_version: "3.5.15".into(),
            annotations,
            created: SystemTime::now(),
            service_subnet: "10.96.0.0/12".into(),
            pod_subnet: None,
            cluster_name: "kubernetes".into(),
        }
    }

    #[test]
    fn selectors_pick_the_etcd_pod() {
        let all = pods(&facts(true));
        let sel = Selector::parse(Some("component=etcd,tier=control-plane")).unwrap();
        let etcd: Vec<&Pod> = all
            .iter()
            .filter(|p| sel.matches(&p.metadata.labels))
            .collect();
        assert_eq!(etcd.len(), 1);
        assert_eq!(etcd[0].metadata.name, "etcd-cp-1");
        assert_eq!(
            etcd[0].metadata.annotations[crate::controlplane::ETCD_ANNOTATION],
            "https://127.0.0.1:40000"
        );
        let api = all
            .iter()
            .find(|p| p.metadata.name == "kube-apiserver-cp-1")
            .unwrap();
        assert_eq!(
            api.metadata.annotations[crate::controlplane::APISERVER_ANNOTATION],
            "127.0.0.1:6443"
        );
        assert_eq!(
            all.iter()
                .filter(|p| Selector::parse(Some("component!=etcd"))
                    .unwrap()
                    .matches(&p.metadata.labels))
                .count(),
            3
        );
        assert_eq!(
            all.iter()
                .filter(|p| Selector::parse(Some("!tier"))
                    .unwrap()
                    .matches(&p.metadata.labels))
                .count(),
            0
        );
        assert!(Selector::parse(Some("component in (etcd)")).is_err());
        // Before v1.18: no annotations.
        assert!(pods(&facts(false))[0]
            .metadata
            .annotations
            .keys()
            .all(|k| k.starts_with("kubernetes.io/")));
    }
}
