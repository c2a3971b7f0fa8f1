//! The cluster's configuration for a joining node (spec §1 steps 3–6), read with the bootstrap
//! credentials from the discovered server.

use super::{api_error, Cluster, Error};
use crate::api::types::{ConfigMap, Node};
use crate::yaml;
use std::time::{Duration, Instant};

/// kubeadm's default image repository (and the fallback when ClusterConfiguration leaves it empty).
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";
/// kubeadm's default cluster name.
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes";

/// What the join needs from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `kubelet-config`/`kubelet`: the KubeletConfiguration document, verbatim. Installed as
    /// `/var/lib/kubelet/config.yaml` byte for byte: it was produced by kubeadm's marshaller.
    pub kubelet_config: String,
    /// `containerRuntimeEndpoint` when the document sets a non-empty one.
    pub container_runtime_endpoint: Option<String>,
    /// `ClusterConfiguration.clusterName`.
    pub cluster_name: String,
    /// `ClusterConfiguration.imageRepository` (for the pause image).
    pub image_repository: String,
}

fn data_key(cm: &ConfigMap, name: &'static str, key: &'static str) -> Result<String, Error> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
        .ok_or(Error::MissingConfig { name, key })
}

/// The one document of a ConfigMap value (none: null).
fn yaml(name: &'static str, key: &'static str, text: &str) -> Result<Option<yaml::Node>, Error> {
    let bad = |why: String| Error::BadConfig { name, key, why };
    let mut docs = yaml::documents(text).map_err(|e| bad(e.to_string()))?;
    if docs.len() > 1 {
        return Err(bad("more than one YAML document".into()));
    }
    Ok(docs.pop())
}

fn str_field<'a>(v: &'a Option<yaml::Node>, key: &str) -> Option<&'a str> {
    v.as_ref()?.get(key)?.as_str().filter(|s| !s.is_empty())
}

/// Parses the two documents the join uses. Split out so it is tested on the captured fixtures.
pub fn parse(kubelet_config: String, cluster_configuration: &str) -> Result<ClusterConfig, Error> {
    let kubelet = yaml("kubelet-config", "kubelet", &kubelet_config)?;
    if kubelet.as_ref().and_then(yaml::Node::as_mapping).is_none() {
        return Err(Error::BadConfig {
            name: "kubelet-config",
            key: "kubelet",
            why: "not a mapping".into(),
        });
    }
    let cc = yaml(
        "kubeadm-config",
        "ClusterConfiguration",
        cluster_configuration,
    )?;
    Ok(ClusterConfig {
        container_runtime_endpoint: str_field(&kubelet, "containerRuntimeEndpoint")
            .map(str::to_string),
        cluster_name: str_field(&cc, "clusterName")
            .unwrap_or(DEFAULT_CLUSTER_NAME)
            .to_string(),
        image_repository: str_field(&cc, "imageRepository")
            .unwrap_or(DEFAULT_IMAGE_REPOSITORY)
            .to_string(),
        kubelet_config,
    })
}

/// `kube-system/<name>`.
fn config_map_path(name: &str) -> String {
    format!("/api/v1/namespaces/kube-system/configmaps/{name}")
}

/// Reads kubelet-config (required) and kubeadm-config (required, with kubeadm's short retry),
/// in kubeadm's order.
///
/// Unlike kubeadm, the kube-proxy ConfigMap is not read: kubeadm reads it (optional,
/// mustExist=false) while loading the cluster's component configs, but nothing a worker's join
/// writes depends on it (kube-proxy runs from its own DaemonSet and ConfigMap), so it would be
/// one request per join for nothing.
pub async fn fetch(cluster: &Cluster) -> Result<ClusterConfig, Error> {
    let get = |name: &'static str| async move {
        cluster
            .client
            .get::<ConfigMap>(&config_map_path(name), "ConfigMap")
            .await
    };

    let kubelet = get("kubelet-config").await.map_err(|e| {
        api_error(
            "getting ConfigMap kube-system/kubelet-config",
            &cluster.server,
            &e,
        )
    })?;
    let kubelet_config = data_key(&kubelet, "kubelet-config", "kubelet")?;

    // GetConfigMapWithShortRetry: every 50 ms for up to 350 ms, whatever the error.
    let started = Instant::now();
    let kubeadm = loop {
        match get("kubeadm-config").await {
            Ok(cm) => break cm,
            Err(e) if started.elapsed() < Duration::from_millis(350) => {
                crate::debug!(
                    "getting kubeadm-config: {}; retrying",
                    super::describe(&e.failure())
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(api_error(
                    "getting ConfigMap kube-system/kubeadm-config",
                    &cluster.server,
                    &e,
                ))
            }
        }
    };
    let cc = data_key(&kubeadm, "kubeadm-config", "ClusterConfiguration")?;
    parse(kubelet_config, &cc)
}

/// What the cluster knows about a Node of our name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Absent,
    /// Exists but is not `Ready=True` (e.g. a previous life of this machine, powered off).
    NotReady,
    Ready,
}

/// `Ready=True` among the Node's conditions.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// kubeadm's kubelet-start check: a `Ready` Node with our name means another machine is that
/// node, and two kubelets fighting over one Node object is worse than refusing.
pub async fn check_node(cluster: &Cluster, name: &str) -> Result<NodeState, Error> {
    let path = format!("/api/v1/nodes/{name}");
    match cluster.client.get::<Node>(&path, "Node").await {
        Ok(n) if is_ready(&n) => Err(Error::NodeExists {
            name: name.to_string(),
        }),
        Ok(_) => {
            crate::warn!(
                "a Node named {name:?} exists but is not Ready; this machine will take it over"
            );
            Ok(NodeState::NotReady)
        }
        Err(e) if e.status_code() == Some(404) => Ok(NodeState::Absent),
        Err(e) => Err(api_error(
            format!("cannot get Node {name:?}"),
            &cluster.server,
            &e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> serde_json::Value {
        let p = format!(
            "{}/tests/fixtures/apiserver/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn parses_the_captured_config_maps() {
        let kubelet: ConfigMap = serde_json::from_value(fixture("kubelet-config.json")).unwrap();
        let kubeadm: ConfigMap = serde_json::from_value(fixture("kubeadm-config.json")).unwrap();
        let doc = data_key(&kubelet, "kubelet-config", "kubelet").unwrap();
        let cc = data_key(&kubeadm, "kubeadm-config", "ClusterConfiguration").unwrap();
        let c = parse(doc.clone(), &cc).unwrap();
        assert_eq!(c.kubelet_config, doc);
        assert!(c
            .kubelet_config
            .starts_with("apiVersion: kubelet.config.k8s.io/v1beta1\n"));
        // The capture has `containerRuntimeEndpoint: ""`: not set.
        assert_eq!(c.container_runtime_endpoint, None);
        assert_eq!(c.cluster_name, "kubernetes");
        assert_eq!(c.image_repository, "registry.k8s.io");
    }

    #[test]
    fn defaults_and_node_local_runtime_endpoint() {
        let c = parse(
            "kind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///run/crio/crio.sock\n"
                .into(),
            "kind: ClusterConfiguration\nimageRepository: \"\"\nclusterName: prod\n",
        )
        .unwrap();
        assert_eq!(
            c.container_runtime_endpoint.as_deref(),
            Some("unix:///run/crio/crio.sock")
        );
        assert_eq!(c.image_repository, DEFAULT_IMAGE_REPOSITORY);
        assert_eq!(c.cluster_name, "prod");
    }

    #[test]
    fn missing_key_and_bad_yaml_are_reported_by_name() {
        let empty = ConfigMap::default();
        let e = data_key(&empty, "kubelet-config", "kubelet").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ConfigMap kube-system/kubelet-config has no key \"kubelet\""
        );
        let e = parse("[a".into(), "").unwrap_err();
        assert!(
            matches!(
                e,
                Error::BadConfig {
                    name: "kubelet-config",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse("- a\n".into(), "").unwrap_err();
        assert!(e.to_string().contains("not a mapping"), "{e}");
    }

    #[test]
    fn ready_condition_is_read_from_the_captured_node() {
        // The capture is a Node whose kubelet never reported: Ready=Unknown is not Ready.
        let mut v = fixture("extra/bootstrap-get-node-existing.json");
        let node: Node = serde_json::from_value(v.clone()).unwrap();
        assert!(!is_ready(&node));
        v["status"]["conditions"][0]["status"] = "True".into();
        let node: Node = serde_json::from_value(v).unwrap();
        assert!(is_ready(&node));
        assert!(!is_ready(&Node::default()));
    }
}
