//! The documents of `kube-system/kubeadm-config`: `ClusterConfiguration` as `kubeadm init` of
//! the version the ConfigMap names uploads it (`kubeadm.k8s.io/v1beta2` up to v1.21, `v1beta3`
//! v1.22–v1.30, `v1beta4` from v1.31), and `ClusterStatus` where that kubeadm still kept it
//! (up to v1.21, PR 101915). sigs.k8s.io/yaml marshals through JSON, so keys come out sorted;
//! `extraArgs` is a map up to v1beta3 and a list of `{name, value}` in v1beta4.

use crate::controlplane::{ClusterSpec, EtcdTopology};

/// What the renderer needs besides the [`ClusterSpec`].
pub(crate) struct Facts<'a> {
    pub api: &'static str,
    pub cluster_name: &'a str,
    /// `host:port` of `controlPlaneEndpoint` when the spec names none.
    pub default_endpoint: &'a str,
    pub image_repository: &'a str,
    pub kubernetes_version: &'a str,
    pub unversioned_kubelet_config_map: Option<bool>,
}

/// The `ClusterConfiguration` document.
pub(crate) fn cluster_configuration(
    f: &Facts<'_>,
    spec: &ClusterSpec,
    etcd: &EtcdTopology,
) -> String {
    let v4 = f.api == "kubeadm.k8s.io/v1beta4";
    let mut out = String::new();
    let endpoint = spec
        .control_plane_endpoint
        .as_deref()
        .unwrap_or(f.default_endpoint);

    // apiServer: certSANs, extraArgs, (timeoutForControlPlane up to v1beta3).
    let mut api_server = String::new();
    push_list(&mut api_server, "  ", "certSANs", &spec.cert_sans);
    push_args(&mut api_server, "  ", &spec.api_server_extra_args, v4);
    if !v4 {
        api_server.push_str("  timeoutForControlPlane: 4m0s\n");
    }
    section(&mut out, "apiServer", &api_server);
    out.push_str(&format!("apiVersion: {}\n", f.api));
    if v4 {
        out.push_str(
            "caCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\n",
        );
    }
    out.push_str(&format!(
        "certificatesDir: {}\n",
        scalar(&spec.certificates_dir)
    ));
    out.push_str(&format!("clusterName: {}\n", scalar(f.cluster_name)));
    out.push_str(&format!("controlPlaneEndpoint: {}\n", scalar(endpoint)));
    let mut cm = String::new();
    push_args(&mut cm, "  ", &spec.controller_manager_extra_args, v4);
    section(&mut out, "controllerManager", &cm);
    if f.api == "kubeadm.k8s.io/v1beta2" {
        out.push_str("dns:\n  type: CoreDNS\n");
    } else {
        out.push_str("dns: {}\n");
    }
    if v4 {
        out.push_str(&format!(
            "encryptionAlgorithm: {}\n",
            scalar(spec.encryption_algorithm.as_deref().unwrap_or("RSA-2048"))
        ));
    }
    out.push_str("etcd:\n");
    match etcd {
        EtcdTopology::Stacked(local) => {
            out.push_str("  local:\n");
            out.push_str(&format!("    dataDir: {}\n", scalar(&local.data_dir)));
            push_args(&mut out, "    ", &local.extra_args, v4);
            if let Some(tag) = &local.image_tag {
                out.push_str(&format!("    imageTag: {}\n", scalar(tag)));
            }
            push_list(&mut out, "    ", "peerCertSANs", &local.peer_cert_sans);
            push_list(&mut out, "    ", "serverCertSANs", &local.server_cert_sans);
        }
        EtcdTopology::External(x) => {
            out.push_str("  external:\n");
            out.push_str(&format!("    caFile: {}\n", scalar(&x.ca_file)));
            out.push_str(&format!("    certFile: {}\n", scalar(&x.cert_file)));
            if x.endpoints.is_empty() {
                out.push_str("    endpoints: null\n");
            } else {
                push_list(&mut out, "    ", "endpoints", &x.endpoints);
            }
            out.push_str(&format!("    keyFile: {}\n", scalar(&x.key_file)));
        }
    }
    let mut gates: Vec<(String, bool)> = spec.feature_gates.clone();
    if let Some(on) = f.unversioned_kubelet_config_map {
        gates.retain(|(n, _)| n != "UnversionedKubeletConfigMap");
        gates.push(("UnversionedKubeletConfigMap".to_string(), on));
    }
    gates.sort();
    gates.dedup_by(|a, b| a.0 == b.0);
    if !gates.is_empty() {
        out.push_str("featureGates:\n");
        for (name, on) in &gates {
            out.push_str(&format!("  {}: {on}\n", scalar(name)));
        }
    }
    out.push_str(&format!(
        "imageRepository: {}\n",
        scalar(f.image_repository)
    ));
    out.push_str("kind: ClusterConfiguration\n");
    out.push_str(&format!(
        "kubernetesVersion: {}\n",
        scalar(f.kubernetes_version)
    ));
    out.push_str("networking:\n");
    out.push_str(&format!("  dnsDomain: {}\n", scalar(&spec.dns_domain)));
    if let Some(pods) = &spec.pod_subnet {
        out.push_str(&format!("  podSubnet: {}\n", scalar(pods)));
    }
    out.push_str(&format!(
        "  serviceSubnet: {}\n",
        scalar(&spec.service_subnet)
    ));
    if v4 {
        out.push_str("proxy: {}\n");
    }
    let mut scheduler = String::new();
    push_args(&mut scheduler, "  ", &spec.scheduler_extra_args, v4);
    section(&mut out, "scheduler", &scheduler);
    out
}

/// The `ClusterStatus` document (v1beta2): the API endpoint of each control-plane node.
pub(crate) fn cluster_status(endpoints: &[(String, String, u16)]) -> String {
    let mut out = String::from("apiEndpoints:\n");
    let mut sorted = endpoints.to_vec();
    sorted.sort();
    for (node, address, port) in sorted {
        out.push_str(&format!(
            "  {}:\n    advertiseAddress: {}\n    bindPort: {port}\n",
            scalar(&node),
            scalar(&address)
        ));
    }
    out.push_str("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterStatus\n");
    out
}

fn section(out: &mut String, key: &str, body: &str) {
    if body.is_empty() {
        out.push_str(&format!("{key}: {{}}\n"));
    } else {
        out.push_str(&format!("{key}:\n{body}"));
    }
}

fn push_list(out: &mut String, indent: &str, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!("{indent}{key}:\n"));
    for item in items {
        out.push_str(&format!("{indent}- {}\n", scalar(item)));
    }
}

/// `extraArgs`: a sorted map up to v1beta3 (the last value of a repeated name wins, as in a Go
/// map), a list in the given order in v1beta4.
fn push_args(out: &mut String, indent: &str, args: &[(String, String)], v4: bool) {
    if args.is_empty() {
        return;
    }
    out.push_str(&format!("{indent}extraArgs:\n"));
    if v4 {
        for (name, value) in args {
            out.push_str(&format!(
                "{indent}- name: {}\n{indent}  value: {}\n",
                scalar(name),
                scalar(value)
            ));
        }
    } else {
        let map: std::collections::BTreeMap<&str, &str> =
            args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for (name, value) in map {
            out.push_str(&format!("{indent}  {}: {}\n", scalar(name), scalar(value)));
        }
    }
}

/// A string as go-yaml v2 writes it: plain when that reads back as the same string, else
/// double-quoted if it would read as another type (bool, null, number), else single-quoted.
pub(crate) fn scalar(s: &str) -> String {
    if resolves_to_non_string(s) {
        return format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    }
    if plain_allowed(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let t = t.replace('_', "");
    if t.is_empty() {
        return false;
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(bin) = t.strip_prefix("0b") {
        return !bin.is_empty() && bin.bytes().all(|b| b == b'0' || b == b'1');
    }
    t.parse::<f64>().is_ok()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
}

fn plain_allowed(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first.is_whitespace() || s.ends_with(char::is_whitespace) {
        return false;
    }
    if "!&*|>'\"%@`#,[]{}".contains(first) {
        return false;
    }
    if matches!(first, '-' | '?' | ':') && s[1..].chars().next().is_none_or(|c| c.is_whitespace()) {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.contains(['\n', '\t', '\r']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::{ExternalEtcd, LocalEtcd};

    fn facts(api: &'static str) -> Facts<'static> {
        Facts {
            api,
            cluster_name: "kubernetes",
            default_endpoint: "127.0.0.1:6443",
            image_repository: "registry.k8s.io",
            kubernetes_version: "v1.30.0",
            unversioned_kubelet_config_map: None,
        }
    }

    #[test]
    fn the_defaults_are_what_the_worker_server_always_served() {
        let spec = ClusterSpec::default();
        let etcd = EtcdTopology::default();
        assert_eq!(
            cluster_configuration(&facts("kubeadm.k8s.io/v1beta3"), &spec, &etcd),
            "apiServer:\n  timeoutForControlPlane: 4m0s\napiVersion: kubeadm.k8s.io/v1beta3\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrolPlaneEndpoint: 127.0.0.1:6443\ncontrollerManager: {}\ndns: {}\netcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.30.0\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nscheduler: {}\n"
        );
        assert_eq!(
            cluster_configuration(&facts("kubeadm.k8s.io/v1beta4"), &spec, &etcd),
            "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrolPlaneEndpoint: 127.0.0.1:6443\ncontrollerManager: {}\ndns: {}\nencryptionAlgorithm: RSA-2048\netcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.30.0\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nproxy: {}\nscheduler: {}\n"
        );
    }

    #[test]
    fn a_control_plane_cluster_configuration() {
        let spec = ClusterSpec {
            control_plane_endpoint: Some("cp.example:6443".into()),
            cert_sans: vec!["cp.example".into(), "10.0.2.2".into()],
            api_server_extra_args: vec![
                (
                    "enable-admission-plugins".into(),
                    "NodeRestriction,PodSecurity".into(),
                ),
                ("anonymous-auth".into(), "false".into()),
            ],
            scheduler_extra_args: vec![("bind-address".into(), "0.0.0.0".into())],
            pod_subnet: None,
            ..ClusterSpec::default()
        };
        let etcd = EtcdTopology::Stacked(LocalEtcd {
            extra_args: vec![("listen-metrics-urls".into(), "http://0.0.0.0:2381".into())],
            server_cert_sans: vec!["etcd.example".into()],
            ..LocalEtcd::default()
        });
        let v3 = cluster_configuration(&facts("kubeadm.k8s.io/v1beta3"), &spec, &etcd);
        assert!(v3.starts_with("apiServer:\n  certSANs:\n  - cp.example\n  - 10.0.2.2\n  extraArgs:\n    anonymous-auth: \"false\"\n    enable-admission-plugins: NodeRestriction,PodSecurity\n  timeoutForControlPlane: 4m0s\n"), "{v3}");
        assert!(v3.contains("controlPlaneEndpoint: cp.example:6443\n"));
        assert!(v3.contains("etcd:\n  local:\n    dataDir: /var/lib/etcd\n    extraArgs:\n      listen-metrics-urls: http://0.0.0.0:2381\n    serverCertSANs:\n    - etcd.example\n"), "{v3}");
        assert!(v3.contains("networking:\n  dnsDomain: cluster.local\n  serviceSubnet: 10.96.0.0/12\nscheduler:\n  extraArgs:\n    bind-address: 0.0.0.0\n"), "{v3}");
        let v4 = cluster_configuration(&facts("kubeadm.k8s.io/v1beta4"), &spec, &etcd);
        assert!(v4.contains("  extraArgs:\n  - name: enable-admission-plugins\n    value: NodeRestriction,PodSecurity\n  - name: anonymous-auth\n    value: \"false\"\n"), "{v4}");
        let ext = cluster_configuration(
            &facts("kubeadm.k8s.io/v1beta3"),
            &ClusterSpec::default(),
            &EtcdTopology::External(ExternalEtcd::plain(&["http://127.0.0.1:2379"])),
        );
        assert!(ext.contains("etcd:\n  external:\n    caFile: \"\"\n    certFile: \"\"\n    endpoints:\n    - http://127.0.0.1:2379\n    keyFile: \"\"\n"), "{ext}");
    }

    #[test]
    fn cluster_status_lists_api_endpoints() {
        assert_eq!(
            cluster_status(&[("cp-1".into(), "10.0.2.10".into(), 6443)]),
            "apiEndpoints:\n  cp-1:\n    advertiseAddress: 10.0.2.10\n    bindPort: 6443\napiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterStatus\n"
        );
    }

    #[test]
    fn scalars_are_quoted_like_go_yaml() {
        for (s, want) in [
            ("true", "\"true\""),
            ("8080", "\"8080\""),
            ("", "\"\""),
            ("1.5", "\"1.5\""),
            ("0x1F", "\"0x1F\""),
            ("Node,RBAC", "Node,RBAC"),
            ("a: b", "'a: b'"),
            ("*", "'*'"),
            ("- x", "'- x'"),
            ("-x", "-x"),
            ("10.96.0.0/12", "10.96.0.0/12"),
            ("http://0.0.0.0:2381", "http://0.0.0.0:2381"),
            ("it's", "it's"),
        ] {
            assert_eq!(scalar(s), want, "{s:?}");
        }
    }
}
