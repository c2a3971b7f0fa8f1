//! The cluster's configuration for a joining node (spec §1 steps 3–6), read with the bootstrap
//! credentials from the discovered server.

use super::{api_error, Cluster, Error};
use crate::kube::types::{ConfigMap, Node};
use crate::plan::version::KubernetesVersion;
use crate::versions::ClusterRules;
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
    /// `ClusterConfiguration.apiVersion` (`kubeadm.k8s.io/v1beta2`, `v1beta3`, `v1beta4`).
    pub api_version: Option<String>,
    /// `ClusterConfiguration.kubernetesVersion`, when it is a version (not e.g. `stable`).
    pub kubernetes_version: Option<KubernetesVersion>,
    /// `ClusterConfiguration.featureGates.UnversionedKubeletConfigMap`, when set.
    pub unversioned_kubelet_config_map: Option<bool>,
    /// `ClusterConfiguration.featureGates.NodeLocalCRISocket`, when set.
    pub node_local_cri_socket: Option<bool>,
    /// The kubelet-config ConfigMap that was read (`kubelet-config` or `kubelet-config-1.X`).
    pub kubelet_config_map: String,
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

/// What `kubeadm-config`'s `ClusterConfiguration` tells a join. The fields read are the same in
/// `kubeadm.k8s.io/v1beta2`, `v1beta3` and `v1beta4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfiguration {
    pub api_version: Option<String>,
    pub cluster_name: String,
    pub image_repository: String,
    pub kubernetes_version: Option<KubernetesVersion>,
    /// `kubernetesVersion` as written, for messages when it is not a version.
    pub kubernetes_version_text: Option<String>,
    pub unversioned_kubelet_config_map: Option<bool>,
    pub node_local_cri_socket: Option<bool>,
}

/// `featureGates.<name>` of a ClusterConfiguration, when it is a boolean.
fn feature_gate(cc: &Option<yaml::Node>, name: &str) -> Option<bool> {
    cc.as_ref()?
        .get("featureGates")?
        .get(name)
        .and_then(yaml::Node::as_scalar)
        .and_then(|v| match v.resolve() {
            yaml::Resolved::Bool(b) => Some(b),
            _ => None,
        })
}

/// Parses `kubeadm-config`'s `ClusterConfiguration`.
pub fn parse_cluster_configuration(text: &str) -> Result<ClusterConfiguration, Error> {
    let cc = yaml("kubeadm-config", "ClusterConfiguration", text)?;
    let version_text = str_field(&cc, "kubernetesVersion").map(str::to_string);
    Ok(ClusterConfiguration {
        api_version: str_field(&cc, "apiVersion").map(str::to_string),
        cluster_name: str_field(&cc, "clusterName")
            .unwrap_or(DEFAULT_CLUSTER_NAME)
            .to_string(),
        image_repository: str_field(&cc, "imageRepository")
            .unwrap_or(DEFAULT_IMAGE_REPOSITORY)
            .to_string(),
        kubernetes_version: version_text
            .as_deref()
            .and_then(|v| KubernetesVersion::parse(v).ok()),
        kubernetes_version_text: version_text,
        unversioned_kubelet_config_map: feature_gate(&cc, "UnversionedKubeletConfigMap"),
        node_local_cri_socket: feature_gate(&cc, "NodeLocalCRISocket"),
    })
}

/// Parses the two documents the join uses. Split out so it is tested on the captured fixtures.
pub fn parse(kubelet_config: String, cluster_configuration: &str) -> Result<ClusterConfig, Error> {
    let cc = parse_cluster_configuration(cluster_configuration)?;
    with_kubelet_config(cc, kubelet_config, "kubelet-config".into())
}

fn with_kubelet_config(
    cc: ClusterConfiguration,
    kubelet_config: String,
    map_name: String,
) -> Result<ClusterConfig, Error> {
    let kubelet = yaml("kubelet-config", "kubelet", &kubelet_config)?;
    if kubelet.as_ref().and_then(yaml::Node::as_mapping).is_none() {
        return Err(Error::BadConfig {
            name: "kubelet-config",
            key: "kubelet",
            why: "not a mapping".into(),
        });
    }
    Ok(ClusterConfig {
        container_runtime_endpoint: str_field(&kubelet, "containerRuntimeEndpoint")
            .map(str::to_string),
        cluster_name: cc.cluster_name,
        image_repository: cc.image_repository,
        api_version: cc.api_version,
        kubernetes_version: cc.kubernetes_version,
        unversioned_kubelet_config_map: cc.unversioned_kubelet_config_map,
        node_local_cri_socket: cc.node_local_cri_socket,
        kubelet_config_map: map_name,
        kubelet_config,
    })
}

/// `kube-system/<name>`.
fn config_map_path(name: &str) -> String {
    format!("/api/v1/namespaces/kube-system/configmaps/{name}")
}

/// Reads kubeadm-config (required, with kubeadm's short retry), then the kubelet-config
/// ConfigMap (required) under the name kubeadm of the cluster's version uses, in kubeadm's order
/// (`FetchInitConfigurationFromCluster` reads kubeadm-config before the component configs).
///
/// The name depends on the version and on `UnversionedKubeletConfigMap` (see
/// [`crate::versions`]), so kubeadm-config comes first. When that name is missing (404), or is
/// one the token may not read (403: kubeadm's RBAC only grants the name in use), the other
/// naming is tried once; in the common case this is still one GET.
///
/// Unlike kubeadm, the kube-proxy ConfigMap is not read: kubeadm reads it (optional,
/// mustExist=false) while loading the cluster's component configs, but nothing a worker's join
/// writes depends on it (kube-proxy runs from its own DaemonSet and ConfigMap), so it would be
/// one request per join for nothing.
pub async fn fetch(cluster: &Cluster) -> Result<ClusterConfig, Error> {
    fetch_resuming(cluster, &Resume::default()).await
}

/// What [`fetch_resuming`] keeps between its attempts: kubeadm-config once it was read, so an
/// attempt that failed on the kubelet-config (a 429 of an overloaded API server) is retried
/// from there rather than reading kubeadm-config again (one request less per retry).
#[derive(Debug, Default)]
pub struct Resume {
    kubeadm: std::sync::Mutex<Option<ConfigMap>>,
}

impl Resume {
    /// Starts from `kubeadm-config` already read by an earlier phase of the same join (a
    /// control-plane join reads it in control-plane-prepare): the cluster-config phase then
    /// reads only the kubelet-config ConfigMap.
    pub fn with_kubeadm_config(cm: ConfigMap) -> Resume {
        Resume {
            kubeadm: std::sync::Mutex::new(Some(cm)),
        }
    }
}

/// [`fetch`] as one attempt of a retried phase: it starts from what an earlier attempt with
/// the same `resume` already read.
pub async fn fetch_resuming(cluster: &Cluster, resume: &Resume) -> Result<ClusterConfig, Error> {
    let get = |name: String| async move {
        cluster
            .client
            .get::<ConfigMap>(&config_map_path(&name), "ConfigMap")
            .await
    };

    // GetConfigMapWithShortRetry: every 50 ms for up to 350 ms, whatever the error — except an
    // answer that says when to come back (429/503 with Retry-After): that goes to the phase's
    // backoff, which honours it (an overloaded server must not see three more requests); a
    // refusal (401/403): the phase's backoff decides when one has persisted (`crate::http::retry`), and
    // counts each request it saw; and a refused server certificate (it does not verify, or the
    // clock puts it outside its validity): no repeat heals it, so it is final at once.
    let started = Instant::now();
    let cached = resume.kubeadm.lock().ok().and_then(|c| c.clone());
    let kubeadm = match cached {
        Some(cm) => cm,
        None => loop {
            match get("kubeadm-config".into()).await {
                Ok(cm) => {
                    if let Ok(mut c) = resume.kubeadm.lock() {
                        *c = Some(cm.clone());
                    }
                    break cm;
                }
                Err(e)
                    if e.retry_after().is_none()
                        && !matches!(e.status_code(), Some(401 | 403))
                        && !e.failure().is_certificate_refusal()
                        && started.elapsed() < Duration::from_millis(350) =>
                {
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
        },
    };
    let cc = parse_cluster_configuration(&data_key(
        &kubeadm,
        "kubeadm-config",
        "ClusterConfiguration",
    )?)?;
    let rules = ClusterRules::for_cluster(cc.kubernetes_version.as_ref());
    let [first, second] = rules.kubelet_config_maps(cc.unversioned_kubelet_config_map);
    let (kubelet, name) = match get(first.clone()).await {
        Ok(cm) => (cm, first),
        Err(e) if matches!(e.status_code(), Some(403 | 404)) => {
            crate::info!(
                "ConfigMap kube-system/{first} cannot be read ({}); trying kube-system/{second}",
                super::describe(&e.failure())
            );
            match get(second.clone()).await {
                Ok(cm) => (cm, second),
                // The first name is the one this version uses: its error is the one to report.
                Err(_) => {
                    return Err(api_error(
                        format!("getting ConfigMap kube-system/{first}"),
                        &cluster.server,
                        &e,
                    ))
                }
            }
        }
        Err(e) => {
            return Err(api_error(
                format!("getting ConfigMap kube-system/{first}"),
                &cluster.server,
                &e,
            ))
        }
    };
    let kubelet_config = data_key(&kubelet, "kubelet-config", "kubelet")?;
    with_kubelet_config(cc, kubelet_config, name)
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
        assert_eq!(c.api_version.as_deref(), Some("kubeadm.k8s.io/v1beta3"));
        assert_eq!(c.kubernetes_version, Some(KubernetesVersion::new(1, 28, 7)));
        assert_eq!(c.unversioned_kubelet_config_map, None);
    }

    #[test]
    fn reads_the_version_from_every_cluster_configuration_api_version() {
        for api in ["v1beta2", "v1beta3", "v1beta4"] {
            let cc = parse_cluster_configuration(&format!(
                "apiVersion: kubeadm.k8s.io/{api}\nkind: ClusterConfiguration\nkubernetesVersion: v1.24.0-alpha.1\n\
                 imageRepository: k8s.gcr.io\nfeatureGates:\n  UnversionedKubeletConfigMap: false\n"
            ))
            .unwrap();
            assert_eq!(cc.api_version.unwrap(), format!("kubeadm.k8s.io/{api}"));
            assert_eq!(
                cc.kubernetes_version.unwrap().to_string(),
                "v1.24.0-alpha.1"
            );
            assert_eq!(cc.image_repository, "k8s.gcr.io");
            assert_eq!(cc.unversioned_kubelet_config_map, Some(false));
        }
        // A label instead of a version: kept as text, no version.
        let cc = parse_cluster_configuration("kubernetesVersion: stable-1\n").unwrap();
        assert_eq!(cc.kubernetes_version, None);
        assert_eq!(cc.kubernetes_version_text.as_deref(), Some("stable-1"));
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
