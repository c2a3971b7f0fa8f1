//! The static Pod manifests of a control-plane node, rendered from the cluster's
//! ClusterConfiguration as kubeadm of the cluster's version renders them, byte for byte.
//!
//! Sources (kubernetes/kubernetes, `cmd/kubeadm/app/`): `phases/controlplane/manifests.go`
//! (`GetStaticPodSpecs`, `getAPIServerCommand`, `getControllerManagerCommand`,
//! `getSchedulerCommand`), `phases/controlplane/volumes.go` (host-path mounts),
//! `phases/etcd/local.go` (`GetEtcdPodSpec`, `getEtcdCommand`), `util/staticpod/utils.go`
//! (`ComponentPod`, probes, `WriteStaticPodToDisk` mode 0600), `util/arguments.go`
//! (`ArgumentsToCommand`/`BuildArgumentListFromMap`: overrides replace defaults by name, then
//! everything sorted by name, then value), `constants/constants.go` (ports, etcd versions).
//!
//! Verification status, per rule: **golden** = byte-identical to what real kubeadm v1.24
//! (built from v1.24.0-alpha.1) wrote (`tests/fixtures/kubeadm-v1.24/manifests/`); **read** =
//! read in the upstream source (a recent release; the search index holds one version of each
//! file, not every tag); **inferred** = from release notes/memory of the change, not read at
//! the tag. `docs/control-plane.md` has the table.

use super::cluster::{host_port, Arg, ClusterConfig, ConfigError, Etcd, LocalNode};
use super::{join_path, yaml, NodeFile};
use serde_json::{json, Map, Value};

/// `kubeadmconstants.KubernetesDir`.
const KUBERNETES_DIR: &str = "/etc/kubernetes";
/// `GetStaticPodDirectory()`.
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
/// Mode of every manifest (`WriteStaticPodToDisk`, read; golden).
pub const MANIFEST_MODE: u32 = 0o600;
/// `KubeControllerManagerPort`, `KubeSchedulerPort` (read; golden).
const KCM_PORT: u16 = 10257;
const SCHEDULER_PORT: u16 = 10259;
/// `EtcdListenClientPort`, `EtcdListenPeerPort`, `EtcdMetricsPort` (read).
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
const ETCD_METRICS_PORT: u16 = 2381;
/// `ControlPlaneComponentHealthCheckTimeout` 4 m / the 10 s period → 24 (read; golden).
const STARTUP_FAILURE_THRESHOLD: u32 = 24;

/// One etcd member for `--initial-cluster` (name and first peer URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_url: String,
}

/// Directories of the host's CA trust that kubeadm mounts into kube-apiserver and
/// kube-controller-manager when they exist on the node (`caCertsExtraVolumePaths`; read
/// `phases/controlplane/volumes.go`). v1.24: `/etc/pki`, `/usr/share/ca-certificates`,
/// `/usr/local/share/ca-certificates`, `/etc/ca-certificates` (golden: the three that exist on
/// Debian). From v1.28 `/etc/pki` was replaced by `/etc/pki/ca-trust` and `/etc/pki/tls/certs`
/// (inferred: kubernetes/kubernetes PR 117224 release note).
pub fn host_ca_dir_candidates(cfg: &ClusterConfig) -> &'static [&'static str] {
    if cfg.minor() >= 28 {
        &[
            "/etc/pki/ca-trust",
            "/etc/pki/tls/certs",
            "/etc/ca-certificates",
            "/usr/share/ca-certificates",
            "/usr/local/share/ca-certificates",
        ]
    } else {
        &[
            "/etc/pki",
            "/usr/share/ca-certificates",
            "/usr/local/share/ca-certificates",
            "/etc/ca-certificates",
        ]
    }
}

/// `images.GetKubernetesImage`: `<imageRepository>/<component>:<kubernetesVersion>` with `+`
/// replaced by `_` (read: `util.KubernetesVersionToImageTag`).
fn core_image(cfg: &ClusterConfig, component: &str) -> String {
    format!(
        "{}/{component}:{}",
        cfg.image_repository,
        cfg.kubernetes_version_text.replace('+', "_")
    )
}

/// The etcd image tag kubeadm of the cluster's version picks (`SupportedEtcdVersion[minor]`, the
/// nearest entry otherwise). Patch releases of one minor sometimes bumped the tag; this table
/// holds the tag of each minor's newest patch that the sources showed.
/// - read: v1.31–v1.33 `3.5.24-0` and v1.34 `3.6.5-0` (a v1.34-era constants.go); v1.34–v1.36
///   `3.6.9-0` (a later constants.go diff, the newest seen).
/// - inferred (release notes): v1.24 `3.5.6-0`, v1.25 `3.5.6-0`, v1.26 `3.5.6-0`, v1.27
///   `3.5.7-0`, v1.28–v1.30 `3.5.15-0`.
pub fn etcd_image_tag(cfg: &ClusterConfig) -> String {
    if let Etcd::Local(l) = &cfg.etcd {
        if let Some(t) = &l.image_tag {
            return t.clone();
        }
    }
    match cfg.minor() {
        0..=26 => "3.5.6-0",
        27 => "3.5.7-0",
        28..=30 => "3.5.15-0",
        31..=33 => "3.5.24-0",
        _ => "3.6.9-0",
    }
    .to_string()
}

fn etcd_image(cfg: &ClusterConfig) -> String {
    let repo = match &cfg.etcd {
        Etcd::Local(l) => l
            .image_repository
            .as_deref()
            .unwrap_or(&cfg.image_repository),
        Etcd::External(_) => &cfg.image_repository,
    };
    format!("{repo}/etcd:{}", etcd_image_tag(cfg))
}

/// kubeadm's `ArgumentsToCommand` (v1beta4) / `BuildArgumentListFromMap` (v1beta3): an override
/// removes every default of its name; the result is sorted by name, then value (read; golden).
pub fn arguments_to_command(base: &[Arg], overrides: &[Arg]) -> Vec<String> {
    let mut args: Vec<Arg> = overrides.to_vec();
    args.extend(
        base.iter()
            .filter(|b| !overrides.iter().any(|o| o.name == b.name))
            .cloned(),
    );
    args.sort();
    args.iter()
        .map(|a| format!("--{}={}", a.name, a.value))
        .collect()
}

/// `kubeadmapi.SetArgValues(args, name, value, 1)`: replace the value of the first `name`
/// argument or append it.
fn set_arg(args: &mut Vec<Arg>, name: &str, value: impl Into<String>) {
    let value = value.into();
    match args.iter_mut().find(|a| a.name == name) {
        Some(a) => a.value = value,
        None => args.push(Arg::new(name, value)),
    }
}

fn get_arg<'a>(args: &'a [Arg], name: &str) -> Option<&'a str> {
    args.iter()
        .rev()
        .find(|a| a.name == name)
        .map(|a| a.value.as_str())
}

fn probe(
    host: &str,
    path: &str,
    port: u16,
    scheme: &str,
    failure: u32,
    initial_delay: bool,
) -> Value {
    let mut p = json!({
        "failureThreshold": failure,
        "httpGet": {"host": host, "path": path, "port": port, "scheme": scheme},
        "periodSeconds": 10,
        "timeoutSeconds": 15,
    });
    if initial_delay {
        p["initialDelaySeconds"] = json!(10);
    }
    p
}

/// `LivenessProbe` (failure 8, delay 10, period 10, timeout 15), `ReadinessProbe` (failure 3,
/// period 1, timeout 15, no delay), `StartupProbe` (failure 24, delay 10) — read; golden.
fn liveness(host: &str, path: &str, port: u16, scheme: &str) -> Value {
    probe(host, path, port, scheme, 8, true)
}

fn readiness(host: &str, path: &str, port: u16, scheme: &str) -> Value {
    let mut p = probe(host, path, port, scheme, 3, false);
    p["periodSeconds"] = json!(1);
    p
}

fn startup(host: &str, path: &str, port: u16, scheme: &str) -> Value {
    probe(host, path, port, scheme, STARTUP_FAILURE_THRESHOLD, true)
}

/// `getProbeAddress`: an unspecified bind address leaves `host` empty (the kubelet uses the
/// Pod IP) — read.
fn probe_address(bind: Option<&str>) -> String {
    match bind {
        Some("0.0.0.0") | Some("::") => String::new(),
        Some(a) => a.to_string(),
        None => "127.0.0.1".to_string(),
    }
}

#[derive(Debug, Clone)]
struct Mount {
    name: String,
    path: String,
    read_only: bool,
    kind: &'static str,
}

fn mount(name: &str, path: &str, read_only: bool, kind: &'static str) -> Mount {
    Mount {
        name: name.to_string(),
        path: path.to_string(),
        read_only,
        kind,
    }
}

/// `ComponentPod` + `VolumeMapToSlice`/`VolumeMountMapToSlice` (sorted by name; golden).
fn component_pod(
    name: &str,
    container: Map<String, Value>,
    mut mounts: Vec<Mount>,
    annotations: Option<(&str, String)>,
) -> Value {
    mounts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut c = container;
    c.insert("name".into(), json!(name));
    c.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    c.insert(
        "volumeMounts".into(),
        Value::Array(
            mounts
                .iter()
                .map(|m| {
                    let mut v = json!({"mountPath": m.path, "name": m.name});
                    if m.read_only {
                        v["readOnly"] = json!(true);
                    }
                    v
                })
                .collect(),
        ),
    );
    let volumes: Vec<Value> = mounts
        .iter()
        .map(|m| json!({"hostPath": {"path": m.path, "type": m.kind}, "name": m.name}))
        .collect();
    let mut metadata = json!({
        "creationTimestamp": null,
        "labels": {"component": name, "tier": "control-plane"},
        "name": name,
        "namespace": "kube-system",
    });
    if let Some((k, v)) = annotations {
        metadata["annotations"] = json!({ k: v });
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [Value::Object(c)],
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": volumes,
        },
        "status": {},
    })
}

fn ca_mounts(host_ca_dirs: &[String]) -> Vec<Mount> {
    // `/etc/ssl/certs` always; the others only where they exist (volumes.go, read; golden).
    let mut m = vec![mount(
        "ca-certs",
        "/etc/ssl/certs",
        true,
        "DirectoryOrCreate",
    )];
    for d in host_ca_dirs {
        let name = d.trim_start_matches('/').replace('/', "-");
        m.push(mount(&name, d, true, "DirectoryOrCreate"));
    }
    m
}

/// Directories of the external etcd client files that are not already mounted get
/// `etcd-certs-N` (volumes.go `getEtcdCertVolumes`; read in an older release, inferred
/// unchanged).
fn external_etcd_mounts(cfg: &ClusterConfig, host_ca_dirs: &[String]) -> Vec<Mount> {
    let Etcd::External(x) = &cfg.etcd else {
        return Vec::new();
    };
    let mut dirs: Vec<String> = Vec::new();
    for f in [&x.ca_file, &x.cert_file, &x.key_file] {
        if f.is_empty() {
            continue;
        }
        let dir = match f.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => f[..i].to_string(),
            None => ".".to_string(),
        };
        let under_ca = host_ca_dirs.iter().any(|c| dir.starts_with(c.as_str()));
        if dir == "."
            || under_ca
            || dir == cfg.certificates_dir
            || dir.starts_with("/etc/ssl/certs")
        {
            continue;
        }
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.sort();
    dirs.iter()
        .enumerate()
        .map(|(i, d)| mount(&format!("etcd-certs-{i}"), d, true, "DirectoryOrCreate"))
        .collect()
}

fn api_server_command(cfg: &ClusterConfig, node: &LocalNode) -> Result<Vec<String>, ConfigError> {
    let pki = |n: &str| join_path(&cfg.certificates_dir, n);
    let mut args = vec![
        Arg::new("advertise-address", node.advertise_address.to_string()),
        Arg::new("enable-admission-plugins", "NodeRestriction"),
        Arg::new("service-cluster-ip-range", cfg.service_subnet.clone()),
        Arg::new("service-account-key-file", pki("sa.pub")),
        Arg::new("service-account-signing-key-file", pki("sa.key")),
        Arg::new(
            "service-account-issuer",
            format!("https://kubernetes.default.svc.{}", cfg.dns_domain),
        ),
        Arg::new("client-ca-file", pki("ca.crt")),
        Arg::new("tls-cert-file", pki("apiserver.crt")),
        Arg::new("tls-private-key-file", pki("apiserver.key")),
        Arg::new(
            "kubelet-client-certificate",
            pki("apiserver-kubelet-client.crt"),
        ),
        Arg::new("kubelet-client-key", pki("apiserver-kubelet-client.key")),
        Arg::new("enable-bootstrap-token-auth", "true"),
        Arg::new("secure-port", node.bind_port.to_string()),
        Arg::new("allow-privileged", "true"),
        Arg::new(
            "kubelet-preferred-address-types",
            "InternalIP,ExternalIP,Hostname",
        ),
        Arg::new("requestheader-username-headers", "X-Remote-User"),
        Arg::new("requestheader-group-headers", "X-Remote-Group"),
        Arg::new("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        Arg::new("requestheader-client-ca-file", pki("front-proxy-ca.crt")),
        Arg::new("requestheader-allowed-names", "front-proxy-client"),
        Arg::new("proxy-client-cert-file", pki("front-proxy-client.crt")),
        Arg::new("proxy-client-key-file", pki("front-proxy-client.key")),
    ];
    match &cfg.etcd {
        Etcd::External(x) => {
            set_arg(&mut args, "etcd-servers", x.endpoints.join(","));
            if !x.ca_file.is_empty() {
                set_arg(&mut args, "etcd-cafile", x.ca_file.clone());
            }
            if !x.cert_file.is_empty() && !x.key_file.is_empty() {
                set_arg(&mut args, "etcd-certfile", x.cert_file.clone());
                set_arg(&mut args, "etcd-keyfile", x.key_file.clone());
            }
        }
        Etcd::Local(l) => {
            let lo = if node.advertise_address.is_ipv6() {
                "::1"
            } else {
                "127.0.0.1"
            };
            set_arg(
                &mut args,
                "etcd-servers",
                format!("https://{}", host_port(lo, ETCD_CLIENT_PORT)),
            );
            set_arg(&mut args, "etcd-cafile", pki("etcd/ca.crt"));
            set_arg(&mut args, "etcd-certfile", pki("apiserver-etcd-client.crt"));
            set_arg(&mut args, "etcd-keyfile", pki("apiserver-etcd-client.key"));
            if let Some(v) = get_arg(&l.extra_args, "advertise-client-urls") {
                set_arg(&mut args, "etcd-servers", v.to_string());
            }
        }
    }
    // `getAuthzModes`: the user's valid modes, else Node,RBAC; none when the user gives a
    // structured `authorization-config` (read).
    let extra = &cfg.api_server_extra_args;
    if get_arg(extra, "authorization-config").is_none() {
        const VALID: &[&str] = &[
            "Node",
            "RBAC",
            "Webhook",
            "ABAC",
            "AlwaysAllow",
            "AlwaysDeny",
        ];
        let user: Vec<&str> = get_arg(extra, "authorization-mode")
            .unwrap_or("")
            .split(',')
            .filter(|m| VALID.contains(m))
            .collect();
        let modes = if user.is_empty() {
            "Node,RBAC".to_string()
        } else {
            user.join(",")
        };
        set_arg(&mut args, "authorization-mode", modes);
    }
    let mut extra = extra.clone();
    // The computed mode replaces the user's (kubeadm sets it among the defaults, and an
    // override of the same name would otherwise drop it).
    if let Some(m) = get_arg(&args, "authorization-mode").map(str::to_string) {
        for a in extra.iter_mut().filter(|a| a.name == "authorization-mode") {
            a.value = m.clone();
        }
    }
    let mut cmd = vec!["kube-apiserver".to_string()];
    cmd.extend(arguments_to_command(&args, &extra));
    Ok(cmd)
}

fn controller_manager_command(cfg: &ClusterConfig) -> Vec<String> {
    let pki = |n: &str| join_path(&cfg.certificates_dir, n);
    let kubeconfig = join_path(KUBERNETES_DIR, "controller-manager.conf");
    let mut args = vec![
        Arg::new("bind-address", "127.0.0.1"),
        Arg::new("leader-elect", "true"),
        Arg::new("kubeconfig", kubeconfig.clone()),
        Arg::new("authentication-kubeconfig", kubeconfig.clone()),
        Arg::new("authorization-kubeconfig", kubeconfig),
        Arg::new("client-ca-file", pki("ca.crt")),
        Arg::new("requestheader-client-ca-file", pki("front-proxy-ca.crt")),
        Arg::new("root-ca-file", pki("ca.crt")),
        Arg::new("service-account-private-key-file", pki("sa.key")),
        Arg::new("cluster-signing-cert-file", pki("ca.crt")),
        Arg::new("cluster-signing-key-file", pki("ca.key")),
        Arg::new("use-service-account-credentials", "true"),
        Arg::new("controllers", "*,bootstrapsigner,tokencleaner"),
    ];
    // External CA (no ca.key) is not a case of a join with --certificate-key: the key is
    // always downloaded, so `UsingExternalCA` is false here.
    if !cfg.pod_subnet.is_empty() {
        set_arg(&mut args, "allocate-node-cidrs", "true");
        set_arg(&mut args, "cluster-cidr", cfg.pod_subnet.clone());
        if !cfg.service_subnet.is_empty() {
            set_arg(
                &mut args,
                "service-cluster-ip-range",
                cfg.service_subnet.clone(),
            );
        }
    }
    if !cfg.cluster_name.is_empty() {
        set_arg(&mut args, "cluster-name", cfg.cluster_name.clone());
    }
    let mut cmd = vec!["kube-controller-manager".to_string()];
    cmd.extend(arguments_to_command(
        &args,
        &cfg.controller_manager_extra_args,
    ));
    cmd
}

fn scheduler_command(cfg: &ClusterConfig) -> Vec<String> {
    let kubeconfig = join_path(KUBERNETES_DIR, "scheduler.conf");
    let args = vec![
        Arg::new("bind-address", "127.0.0.1"),
        Arg::new("leader-elect", "true"),
        Arg::new("kubeconfig", kubeconfig.clone()),
        Arg::new("authentication-kubeconfig", kubeconfig.clone()),
        Arg::new("authorization-kubeconfig", kubeconfig),
    ];
    let mut cmd = vec!["kube-scheduler".to_string()];
    cmd.extend(arguments_to_command(&args, &cfg.scheduler_extra_args));
    cmd
}

fn container(image: String, command: Vec<String>, cpu: &str) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("image".into(), json!(image));
    c.insert("command".into(), json!(command));
    c.insert("resources".into(), json!({"requests": {"cpu": cpu}}));
    c
}

fn file(name: &str, pod: &Value) -> NodeFile {
    NodeFile::new(
        join_path(MANIFESTS_DIR, &format!("{name}.yaml")),
        MANIFEST_MODE,
        yaml::to_yaml(pod).into_bytes(),
    )
}

/// kube-apiserver.yaml, kube-controller-manager.yaml, kube-scheduler.yaml. `host_ca_dirs` are
/// those of [`host_ca_dir_candidates`] that exist on the node, in that order.
pub fn control_plane(
    cfg: &ClusterConfig,
    node: &LocalNode,
    host_ca_dirs: &[String],
) -> Result<Vec<NodeFile>, ConfigError> {
    let pki_mount = mount(
        "k8s-certs",
        &cfg.certificates_dir,
        true,
        "DirectoryOrCreate",
    );

    // kube-apiserver: probes on the advertise address and bind port over HTTPS (read; golden).
    let host = node.advertise_address.to_string();
    let port = node.bind_port;
    let mut c = container(
        core_image(cfg, "kube-apiserver"),
        api_server_command(cfg, node)?,
        "250m",
    );
    c.insert(
        "livenessProbe".into(),
        liveness(&host, "/livez", port, "HTTPS"),
    );
    c.insert(
        "readinessProbe".into(),
        readiness(&host, "/readyz", port, "HTTPS"),
    );
    c.insert(
        "startupProbe".into(),
        startup(&host, "/livez", port, "HTTPS"),
    );
    let mut mounts = ca_mounts(host_ca_dirs);
    mounts.push(pki_mount.clone());
    mounts.extend(external_etcd_mounts(cfg, host_ca_dirs));
    let apiserver = component_pod(
        "kube-apiserver",
        c,
        mounts,
        Some((
            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint",
            node.endpoint(),
        )),
    );

    // kube-controller-manager.
    let kcm_host = probe_address(get_arg(&cfg.controller_manager_extra_args, "bind-address"));
    let mut c = container(
        core_image(cfg, "kube-controller-manager"),
        controller_manager_command(cfg),
        "200m",
    );
    c.insert(
        "livenessProbe".into(),
        liveness(&kcm_host, "/healthz", KCM_PORT, "HTTPS"),
    );
    c.insert(
        "startupProbe".into(),
        startup(&kcm_host, "/healthz", KCM_PORT, "HTTPS"),
    );
    let mut mounts = ca_mounts(host_ca_dirs);
    mounts.push(pki_mount);
    mounts.push(mount(
        "kubeconfig",
        &join_path(KUBERNETES_DIR, "controller-manager.conf"),
        true,
        "FileOrCreate",
    ));
    // The FlexVolume plugin directory (read; golden), unless the user moved it.
    let flex = get_arg(&cfg.controller_manager_extra_args, "flex-volume-plugin-dir")
        .unwrap_or("/usr/libexec/kubernetes/kubelet-plugins/volume/exec");
    mounts.push(mount("flexvolume-dir", flex, false, "DirectoryOrCreate"));
    let kcm = component_pod("kube-controller-manager", c, mounts, None);

    // kube-scheduler.
    let s_host = probe_address(get_arg(&cfg.scheduler_extra_args, "bind-address"));
    let mut c = container(
        core_image(cfg, "kube-scheduler"),
        scheduler_command(cfg),
        "100m",
    );
    c.insert(
        "livenessProbe".into(),
        liveness(&s_host, "/healthz", SCHEDULER_PORT, "HTTPS"),
    );
    c.insert(
        "startupProbe".into(),
        startup(&s_host, "/healthz", SCHEDULER_PORT, "HTTPS"),
    );
    let mounts = vec![mount(
        "kubeconfig",
        &join_path(KUBERNETES_DIR, "scheduler.conf"),
        true,
        "FileOrCreate",
    )];
    let scheduler = component_pod("kube-scheduler", c, mounts, None);

    Ok(vec![
        file("kube-apiserver", &apiserver),
        file("kube-controller-manager", &kcm),
        file("kube-scheduler", &scheduler),
    ])
}

/// `etcdutil.GetClientURL`/`GetPeerURL`.
pub fn etcd_client_url(node: &LocalNode) -> String {
    format!(
        "https://{}",
        host_port(&node.advertise_address.to_string(), ETCD_CLIENT_PORT)
    )
}

pub fn etcd_peer_url(node: &LocalNode) -> String {
    format!(
        "https://{}",
        host_port(&node.advertise_address.to_string(), ETCD_PEER_PORT)
    )
}

/// The etcd probe endpoint (`GetEtcdProbeEndpoint`, read): the first `listen-metrics-urls`
/// URL of the user's extra args, else http on the loopback of the advertise family, 2381.
fn etcd_probe_endpoint(extra: &[Arg], v6: bool) -> (String, u16, &'static str) {
    let lo = if v6 { "::1" } else { "127.0.0.1" };
    let Some(urls) = get_arg(extra, "listen-metrics-urls") else {
        return (lo.into(), ETCD_METRICS_PORT, "HTTP");
    };
    let first = urls.split(',').next().unwrap_or("");
    let (scheme, rest) = match first.split_once("://") {
        Some((s, r)) => (s, r),
        None => return (lo.into(), ETCD_METRICS_PORT, "HTTP"),
    };
    let scheme = if scheme == "https" { "HTTPS" } else { "HTTP" };
    let hostport = rest.split('/').next().unwrap_or("");
    let (h, p) = if let Some(r) = hostport.strip_prefix('[') {
        match r.split_once(']') {
            Some((h, p)) => (
                h.to_string(),
                p.strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (String::new(), None),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()),
            None => (hostport.to_string(), None),
        }
    };
    let h = if h.is_empty() { lo.to_string() } else { h };
    (h, p.unwrap_or(ETCD_METRICS_PORT), scheme)
}

/// etcd.yaml for a member joining an existing stacked etcd cluster (`initial` holds every member
/// including this one, in the order etcd's member add answered; kubeadm then sets
/// `--initial-cluster-state=existing`).
pub fn etcd(
    cfg: &ClusterConfig,
    node: &LocalNode,
    initial: &[InitialMember],
) -> Result<NodeFile, ConfigError> {
    let Etcd::Local(l) = &cfg.etcd else {
        return Err(ConfigError::Invalid {
            field: "etcd".into(),
            why: "an etcd manifest is only written for stacked (local) etcd".into(),
        });
    };
    let v6 = node.advertise_address.is_ipv6();
    let lo = if v6 { "::1" } else { "127.0.0.1" };
    let pki = |n: &str| join_path(&cfg.certificates_dir, n);
    let client = etcd_client_url(node);
    let peer = etcd_peer_url(node);
    let minor = cfg.minor();
    let mut args = vec![
        Arg::new("name", node.name.clone()),
        Arg::new(
            "listen-client-urls",
            format!("https://{},{client}", host_port(lo, ETCD_CLIENT_PORT)),
        ),
        Arg::new("advertise-client-urls", client.clone()),
        Arg::new("listen-peer-urls", peer.clone()),
        Arg::new("initial-advertise-peer-urls", peer.clone()),
        Arg::new("data-dir", l.data_dir.clone()),
        Arg::new("cert-file", pki("etcd/server.crt")),
        Arg::new("key-file", pki("etcd/server.key")),
        Arg::new("trusted-ca-file", pki("etcd/ca.crt")),
        Arg::new("client-cert-auth", "true"),
        Arg::new("peer-cert-file", pki("etcd/peer.crt")),
        Arg::new("peer-key-file", pki("etcd/peer.key")),
        Arg::new("peer-trusted-ca-file", pki("etcd/ca.crt")),
        Arg::new("peer-client-cert-auth", "true"),
        Arg::new("snapshot-count", "10000"),
        Arg::new(
            "listen-metrics-urls",
            format!("http://{}", host_port(lo, ETCD_METRICS_PORT)),
        ),
    ];
    // Corruption check and watch progress notifications. Read (v1.31-era local.go):
    // `experimental-initial-corrupt-check=true` and `experimental-watch-progress-notify-interval=5s`;
    // read (newest local.go): with an etcd image >= 3.6.0 `feature-gates=InitialCorruptCheck=true`
    // and `watch-progress-notify-interval=5s` instead. Inferred: the corrupt check since v1.24,
    // the watch interval since v1.26.
    let tag = etcd_image_tag(cfg);
    let etcd36 = tag
        .split(['.', '-'])
        .take(2)
        .map(|p| p.parse::<u32>().unwrap_or(0))
        .collect::<Vec<_>>()
        >= vec![3, 6];
    if etcd36 {
        args.push(Arg::new("feature-gates", "InitialCorruptCheck=true"));
        args.push(Arg::new("watch-progress-notify-interval", "5s"));
    } else {
        args.push(Arg::new("experimental-initial-corrupt-check", "true"));
        if minor >= 26 {
            args.push(Arg::new(
                "experimental-watch-progress-notify-interval",
                "5s",
            ));
        }
    }
    if initial.is_empty() {
        set_arg(
            &mut args,
            "initial-cluster",
            format!("{}={peer}", node.name),
        );
    } else {
        let list: Vec<String> = initial
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        set_arg(&mut args, "initial-cluster", list.join(","));
        set_arg(&mut args, "initial-cluster-state", "existing");
    }
    let mut command = vec!["etcd".to_string()];
    command.extend(arguments_to_command(&args, &l.extra_args));

    let (ph, pp, ps) = etcd_probe_endpoint(&l.extra_args, v6);
    let mut c = Map::new();
    c.insert("image".into(), json!(etcd_image(cfg)));
    c.insert("command".into(), json!(command));
    c.insert(
        "resources".into(),
        json!({"requests": {"cpu": "100m", "memory": "100Mi"}}),
    );
    // Probes. Read (v1.31-era and newest local.go): liveness `/livez`, readiness `/readyz`,
    // startup `/readyz` (kubeadm issue 3039). v1.24: plain `/health` for both: kubeadm moved
    // the etcd probes to `/health?serializable=true` in v1.25 (CHANGELOG-1.25.md, PR #110072)
    // and the older local.go probes `/health`; the startup probe's `/health` is inferred.
    // Inferred for v1.25–v1.30: liveness `/health?exclude=NOSPACE&serializable=true`, startup
    // `/health?serializable=false`, no readiness probe.
    if minor >= 31 {
        c.insert("livenessProbe".into(), liveness(&ph, "/livez", pp, ps));
        c.insert("readinessProbe".into(), readiness(&ph, "/readyz", pp, ps));
        c.insert("startupProbe".into(), startup(&ph, "/readyz", pp, ps));
    } else if minor <= 24 {
        c.insert("livenessProbe".into(), liveness(&ph, "/health", pp, ps));
        c.insert("startupProbe".into(), startup(&ph, "/health", pp, ps));
    } else {
        c.insert(
            "livenessProbe".into(),
            liveness(&ph, "/health?exclude=NOSPACE&serializable=true", pp, ps),
        );
        c.insert(
            "startupProbe".into(),
            startup(&ph, "/health?serializable=false", pp, ps),
        );
    }
    let etcd_dir = format!("{}/etcd", cfg.certificates_dir);
    let mounts = vec![
        mount("etcd-data", &l.data_dir, false, "DirectoryOrCreate"),
        mount("etcd-certs", &etcd_dir, false, "DirectoryOrCreate"),
    ];
    let pod = component_pod(
        "etcd",
        c,
        mounts,
        Some(("kubeadm.kubernetes.io/etcd.advertise-client-urls", client)),
    );
    Ok(file("etcd", &pod))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_by_name_then_sort() {
        let base = vec![Arg::new("b", "1"), Arg::new("a", "1"), Arg::new("c", "1")];
        let over = vec![Arg::new("c", "2"), Arg::new("c", "0"), Arg::new("d", "x")];
        assert_eq!(
            arguments_to_command(&base, &over),
            ["--a=1", "--b=1", "--c=0", "--c=2", "--d=x"]
        );
    }

    #[test]
    fn etcd_probe_endpoint_from_extra_args() {
        assert_eq!(
            etcd_probe_endpoint(&[], false),
            ("127.0.0.1".into(), 2381, "HTTP")
        );
        assert_eq!(etcd_probe_endpoint(&[], true), ("::1".into(), 2381, "HTTP"));
        let a = [Arg::new(
            "listen-metrics-urls",
            "https://[::1]:9999,http://x:1",
        )];
        assert_eq!(
            etcd_probe_endpoint(&a, false),
            ("::1".into(), 9999, "HTTPS")
        );
        let a = [Arg::new("listen-metrics-urls", "http://:3000")];
        assert_eq!(
            etcd_probe_endpoint(&a, false),
            ("127.0.0.1".into(), 3000, "HTTP")
        );
    }
}
