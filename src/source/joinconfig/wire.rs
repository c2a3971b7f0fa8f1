//! The kubeadm wire types, `v1beta3` and `v1beta4` side by side (they share most shapes), and
//! their conversion to the version-independent fields. No `Debug`: they hold token strings.

use super::*;

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JoinConfiguration mapping"
)]
pub(super) struct RawJoinV1beta3 {
    #[serde(rename = "apiVersion")]
    pub(super) _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    pub(super) _kind: IgnoredAny,
    #[serde(default)]
    pub(super) ca_cert_path: Option<String>,
    #[serde(default)]
    pub(super) discovery: Option<RawDiscoveryV1beta3>,
    #[serde(default)]
    pub(super) node_registration: Option<RawNodeRegistrationV1beta3>,
    #[serde(default)]
    pub(super) control_plane: Option<RawControlPlane>,
    #[serde(default)]
    pub(super) skip_phases: Option<Vec<String>>,
    #[serde(default)]
    pub(super) patches: Option<RawPatches>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JoinConfiguration mapping"
)]
pub(super) struct RawJoinV1beta4 {
    #[serde(rename = "apiVersion")]
    pub(super) _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    pub(super) _kind: IgnoredAny,
    #[serde(default)]
    pub(super) dry_run: Option<bool>,
    #[serde(default)]
    pub(super) ca_cert_path: Option<String>,
    #[serde(default)]
    pub(super) discovery: Option<RawDiscoveryV1beta4>,
    #[serde(default)]
    pub(super) node_registration: Option<RawNodeRegistrationV1beta4>,
    #[serde(default)]
    pub(super) control_plane: Option<RawControlPlane>,
    #[serde(default)]
    pub(super) skip_phases: Option<Vec<String>>,
    #[serde(default)]
    pub(super) patches: Option<RawPatches>,
    #[serde(default)]
    pub(super) timeouts: Option<RawTimeouts>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a discovery mapping"
)]
pub(super) struct RawDiscoveryV1beta3 {
    #[serde(default)]
    pub(super) bootstrap_token: Option<RawBootstrapToken>,
    #[serde(default)]
    pub(super) file: Option<RawFile>,
    #[serde(default)]
    pub(super) tls_bootstrap_token: Option<String>,
    #[serde(default)]
    pub(super) timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a discovery mapping"
)]
pub(super) struct RawDiscoveryV1beta4 {
    #[serde(default)]
    pub(super) bootstrap_token: Option<RawBootstrapToken>,
    #[serde(default)]
    pub(super) file: Option<RawFile>,
    #[serde(default)]
    pub(super) tls_bootstrap_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a bootstrapToken mapping"
)]
pub(super) struct RawBootstrapToken {
    #[serde(default)]
    pub(super) token: Option<String>,
    #[serde(default)]
    pub(super) api_server_endpoint: Option<String>,
    #[serde(default)]
    pub(super) ca_cert_hashes: Option<Vec<String>>,
    #[serde(default, rename = "unsafeSkipCAVerification")]
    pub(super) unsafe_skip_ca_verification: Option<bool>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a file mapping"
)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) kube_config_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a nodeRegistration mapping"
)]
pub(super) struct RawNodeRegistrationV1beta3 {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) cri_socket: Option<String>,
    #[serde(default)]
    pub(super) taints: Option<Vec<RawTaint>>,
    #[serde(default)]
    pub(super) kubelet_extra_args: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(super) ignore_preflight_errors: Option<Vec<String>>,
    #[serde(default)]
    pub(super) image_pull_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a nodeRegistration mapping"
)]
pub(super) struct RawNodeRegistrationV1beta4 {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) cri_socket: Option<String>,
    #[serde(default)]
    pub(super) taints: Option<Vec<RawTaint>>,
    #[serde(default)]
    pub(super) kubelet_extra_args: Option<Vec<RawArg>>,
    #[serde(default)]
    pub(super) ignore_preflight_errors: Option<Vec<String>>,
    #[serde(default)]
    pub(super) image_pull_policy: Option<String>,
    #[serde(default)]
    pub(super) image_pull_serial: Option<bool>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a {name, value} mapping"
)]
pub(super) struct RawArg {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) value: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a taint mapping"
)]
pub(super) struct RawTaint {
    #[serde(default)]
    pub(super) key: Option<String>,
    #[serde(default)]
    pub(super) value: Option<String>,
    #[serde(default)]
    pub(super) effect: Option<String>,
    #[serde(default)]
    pub(super) time_added: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a patches mapping"
)]
pub(super) struct RawPatches {
    #[serde(default)]
    pub(super) directory: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a controlPlane mapping"
)]
pub(super) struct RawControlPlane {
    #[serde(default, rename = "localAPIEndpoint")]
    pub(super) local_api_endpoint: Option<RawApiEndpoint>,
    #[serde(default)]
    pub(super) certificate_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a localAPIEndpoint mapping"
)]
pub(super) struct RawApiEndpoint {
    #[serde(default)]
    pub(super) advertise_address: Option<String>,
    #[serde(default)]
    pub(super) bind_port: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a timeouts mapping"
)]
pub(super) struct RawTimeouts {
    #[serde(default)]
    pub(super) control_plane_component_health_check: Option<String>,
    #[serde(default)]
    pub(super) kubelet_health_check: Option<String>,
    #[serde(default, rename = "kubernetesAPICall")]
    pub(super) kubernetes_api_call: Option<String>,
    #[serde(default, rename = "etcdAPICall")]
    pub(super) etcd_api_call: Option<String>,
    #[serde(default)]
    pub(super) tls_bootstrap: Option<String>,
    #[serde(default)]
    pub(super) discovery: Option<String>,
    #[serde(default)]
    pub(super) upgrade_manifests: Option<String>,
}

/// Both kubeadm versions, before defaulting and validation. Where a field's path differs between
/// the versions (`discovery.timeout` / `timeouts.discovery`, map / list `kubeletExtraArgs`), the
/// path travels with the value so errors name what the user wrote.
pub(super) struct Common {
    pub(super) dry_run: bool,
    pub(super) ca_cert_path: Option<String>,
    pub(super) bootstrap_token: Option<RawBootstrapToken>,
    pub(super) file: Option<RawFile>,
    pub(super) tls_bootstrap_token: Option<String>,
    pub(super) name: Option<String>,
    pub(super) cri_socket: Option<String>,
    pub(super) taints: Vec<RawTaint>,
    /// (name, value, path of the entry)
    pub(super) kubelet_extra_args: Vec<(Option<String>, String, String)>,
    pub(super) ignore_preflight_errors: Vec<String>,
    pub(super) image_pull_policy: Option<String>,
    pub(super) image_pull_serial: Option<bool>,
    pub(super) control_plane: Option<RawControlPlane>,
    pub(super) skip_phases: Vec<String>,
    pub(super) patches_directory: Option<String>,
    /// v1beta4 `timeouts`; for v1beta3 only `discovery` is set (from `discovery.timeout`).
    pub(super) timeouts: RawTimeouts,
    /// Where the discovery timeout was written, for its error message.
    pub(super) discovery_timeout_path: &'static str,
}

impl RawJoinV1beta3 {
    pub(super) fn into_common(self) -> Common {
        let d = self.discovery;
        let nr = self.node_registration;
        let (bootstrap_token, file, tls_bootstrap_token, timeout) = match d {
            Some(d) => (d.bootstrap_token, d.file, d.tls_bootstrap_token, d.timeout),
            None => (None, None, None, None),
        };
        let mut c = Common {
            dry_run: false,
            ca_cert_path: self.ca_cert_path,
            bootstrap_token,
            file,
            tls_bootstrap_token,
            name: None,
            cri_socket: None,
            taints: Vec::new(),
            kubelet_extra_args: Vec::new(),
            ignore_preflight_errors: Vec::new(),
            image_pull_policy: None,
            image_pull_serial: None,
            control_plane: self.control_plane,
            skip_phases: self.skip_phases.unwrap_or_default(),
            patches_directory: self.patches.and_then(|p| p.directory),
            timeouts: RawTimeouts {
                discovery: timeout,
                ..RawTimeouts::default()
            },
            discovery_timeout_path: "discovery.timeout",
        };
        if let Some(nr) = nr {
            c.name = nr.name;
            c.cri_socket = nr.cri_socket;
            c.taints = nr.taints.unwrap_or_default();
            // v1beta3 → internal conversion sorts the map by name; BTreeMap iterates sorted.
            c.kubelet_extra_args = nr
                .kubelet_extra_args
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let path = format!("nodeRegistration.kubeletExtraArgs.{k}");
                    (Some(k), v, path)
                })
                .collect();
            c.ignore_preflight_errors = nr.ignore_preflight_errors.unwrap_or_default();
            c.image_pull_policy = nr.image_pull_policy;
        }
        c
    }
}

impl RawJoinV1beta4 {
    pub(super) fn into_common(self) -> Common {
        let (bootstrap_token, file, tls_bootstrap_token) = match self.discovery {
            Some(d) => (d.bootstrap_token, d.file, d.tls_bootstrap_token),
            None => (None, None, None),
        };
        let mut c = Common {
            dry_run: self.dry_run.unwrap_or(false),
            ca_cert_path: self.ca_cert_path,
            bootstrap_token,
            file,
            tls_bootstrap_token,
            name: None,
            cri_socket: None,
            taints: Vec::new(),
            kubelet_extra_args: Vec::new(),
            ignore_preflight_errors: Vec::new(),
            image_pull_policy: None,
            image_pull_serial: None,
            control_plane: self.control_plane,
            skip_phases: self.skip_phases.unwrap_or_default(),
            patches_directory: self.patches.and_then(|p| p.directory),
            timeouts: self.timeouts.unwrap_or_default(),
            discovery_timeout_path: "timeouts.discovery",
        };
        if let Some(nr) = self.node_registration {
            c.name = nr.name;
            c.cri_socket = nr.cri_socket;
            c.taints = nr.taints.unwrap_or_default();
            c.kubelet_extra_args = nr
                .kubelet_extra_args
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    (
                        a.name,
                        a.value.unwrap_or_default(),
                        format!("nodeRegistration.kubeletExtraArgs[{i}]"),
                    )
                })
                .collect();
            c.ignore_preflight_errors = nr.ignore_preflight_errors.unwrap_or_default();
            c.image_pull_policy = nr.image_pull_policy;
            c.image_pull_serial = nr.image_pull_serial;
        }
        c
    }
}
