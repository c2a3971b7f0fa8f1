//! # kubejoin-testcp
//!
//! A test control plane: it behaves like kube-apiserver + kube-controller-manager as
//! `kubeadm init` sets them up, for everything a worker join touches, with the shapes, status
//! codes and `Status` bodies of a real v1.28 control plane (`tests/fixtures/apiserver`).
//!
//! - TLS with a kubeadm-like cluster CA; optional client certificates (CN = user, O = groups).
//! - `kube-public/cluster-info` for anonymous readers, with the bootstrap signer's detached
//!   JWS per signing token, its lag (`signer_delay`) and a hook to tamper with responses.
//! - Bootstrap-token authentication (401 for every kind of bad token) and the RBAC rules of
//!   kubeadm (403 with the apiserver's exact messages).
//! - `certificates.k8s.io/v1` CSRs: create/get/list/watch/delete, the `approval` subresource,
//!   the csrapproving controller (nodeclient/selfnodeclient) and the csrsigning controller.
//! - `kube-system` ConfigMaps (`kubeadm-config`, `kubelet-config`, optional `kube-proxy`),
//!   Nodes, SelfSubjectReviews, `/healthz` `/readyz` `/livez` `/version` `/api` `/apis`.
//! - Version-aware ([`Config::kubernetes_version`]): the usage rules of the approver and signer,
//!   the kubelet-config ConfigMap name (`kubelet-config-1.X` where that version used it) and
//!   the `ClusterConfiguration` API version follow the version it is told to be.
//!
//! ```no_run
//! let cp = kubejoin_testcp::start(kubejoin_testcp::Config::default()).unwrap();
//! println!("{}", cp.join_command());
//! ```
//!
//! [`start`] is synchronous: it binds, runs the server on its own thread and runtime, and
//! returns when the server accepts connections (or, with [`Faults::down_for`], at once, while
//! the port refuses them). Dropping the [`Handle`] stops everything.
//!
//! [`Config::control_plane`] makes it a cluster other control planes can join (`kubeadm init
//! --upload-certs`): `kube-system/kubeadm-certs` encrypted with the certificate key, owned by a
//! 2-hour bootstrap token and readable by bootstrappers through kubeadm's Role; the shared CAs
//! and service-account key it holds (the cluster CA is the one this server signs with); the
//! `ClusterConfiguration` a control-plane join reads; the first control plane's Node and static
//! Pods with kubeadm's endpoint annotations; admin credentials of the version; Node marking
//! (strategic-merge PATCH, NodeRestriction); and for stacked etcd a fake etcd v3 JSON gateway
//! over mutual TLS on its own port, recording member list/add/promote, with faults. See
//! [`controlplane`] for the version rules and their sources.
//!
//! [`Config::faults`] injects failures on demand (see [`fault`]): down periods, error statuses
//! with `Retry-After`, resets mid-body, stalls, truncated JSON, redirects, oversized bodies,
//! watch cuts, late certificates, a concurrency cap, the startup window of a kube-apiserver whose
//! caches are not synced yet, and restarts ([`Handle::restart`], or triggered by time or by a
//! request) that keep the CA, tokens and every object.

mod auth;
pub mod cli;
mod client;
pub mod controlplane;
pub mod copycerts;
mod cpapi;
mod cpstate;
mod csr;
mod der;
pub mod etcd;
pub mod fault;
mod jws;
mod kubeadm_config;
pub mod kubeconfig;
mod kubesystem;
mod nodepatch;
mod objects;
mod pki;
mod pods;
mod server;
pub mod sntp;
mod state;
mod util;
mod version;

pub use controlplane::{
    kubeadm_rules, ClusterSpec, ControlPlane, EtcdOptions, EtcdRefusal, EtcdTopology, ExternalEtcd,
    KubeadmRules, LocalEtcd,
};
pub use copycerts::CertificateKey;
pub use etcd::{EtcdCall, EtcdError, EtcdMember};
pub use fault::{
    Action, DownMode, Faults, InFlightLimit, RequestFault, Restart, RestartTrigger, WatchCut,
};
pub use jws::compute_detached_signature;
pub use pki::CaKeyType;
pub use util::parse_duration;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// `listen(2)` backlog: large enough that a load test's burst of connections is queued, not
/// refused.
const LISTEN_BACKLOG: i32 = 1024;

/// Lets a test change what one `cluster-info` response carries: called with the number of the
/// GET (from 1; only GETs that are served count, not the 401/403 ones) and that response's
/// `data`. The stored object is not changed. A hook that panics makes that response a 500.
pub type ClusterInfoHook = Arc<dyn Fn(u64, &mut BTreeMap<String, String>) + Send + Sync>;

/// How the control plane is set up.
#[derive(Clone)]
pub struct Config {
    /// Bootstrap tokens. Default: `abcdef.0123456789abcdef`, signing + authentication, group
    /// `system:bootstrappers:kubeadm:default-node-token`, expiring in 24 h.
    pub tokens: Vec<TokenSpec>,
    /// Extra SANs of the serving certificate (IP literals or DNS names), on top of 127.0.0.1,
    /// localhost, kubernetes, kubernetes.default, kubernetes.default.svc(.cluster.local).
    pub extra_sans: Vec<String>,
    /// The cluster-info CA bundle carries an unrelated, non-signing CA before the real one.
    pub ca_rotation: bool,
    /// The bootstrap signer adds `jws-kubeconfig-*` only this long after cluster-info was
    /// (re)written. The real one lags 1–15 s.
    pub signer_delay: Duration,
    pub approval: Approval,
    /// Delay before the auto-approver approves a qualifying CSR.
    pub approval_delay: Duration,
    /// Write `preferences: {}` in the cluster-info kubeconfig (client-go <= 0.33).
    pub preferences_line: bool,
    /// The `server:` of cluster-info; default `https://<endpoint>`.
    pub server_url: Option<String>,
    /// Where to listen; default 127.0.0.1:0 (a free port).
    pub bind: SocketAddr,
    /// Nodes that exist before anyone joins.
    pub nodes: Vec<NodeSpec>,
    /// The kube-proxy addon is installed (ConfigMap + RBAC). Without it, reading the
    /// `kube-proxy` ConfigMap with a token is a 403, as on the captured control plane.
    pub kube_proxy: bool,
    pub cluster_name: String,
    /// The version this control plane behaves as (`v1.28.7`, or `1.24` for `v1.24.0`): served
    /// by `/version`, written into `kubeadm-config` (in the `ClusterConfiguration` API version
    /// kubeadm of that version uploads), and deciding the CSR approver's and signer's usage
    /// rules and the kubelet-config ConfigMap name (see `version.rs`).
    pub kubernetes_version: String,
    /// What `kubeadm-config` says when it is not `kubernetes_version`: a cluster whose
    /// ClusterConfiguration was upgraded before its kube-controller-manager.
    pub kubeadm_config_kubernetes_version: Option<String>,
    /// kubeadm's `UnversionedKubeletConfigMap` gate in the ClusterConfiguration (`None`: the
    /// version's default); `Some(false)` before v1.25 names the ConfigMap `kubelet-config-1.X`.
    pub unversioned_kubelet_config_map: Option<bool>,
    /// kubeadm feature gates written into `ClusterConfiguration.featureGates` (e.g.
    /// `NodeLocalCRISocket=false`), also for a cluster only workers join.
    pub feature_gates: Vec<(String, bool)>,
    /// `ClusterConfiguration.imageRepository`; `None`: kubeadm's default for the version.
    pub image_repository: Option<String>,
    /// The kubelet-config ConfigMap's name when it does not follow the version and the gate (a
    /// cluster set up or upgraded by other means): `kubelet-config` or `kubelet-config-1.N`.
    pub kubelet_config_map_name: Option<String>,
    pub cluster_info_hook: Option<ClusterInfoHook>,
    /// Injected failures (none by default); see [`fault`].
    pub faults: Faults,
    /// The key type of the cluster CA (and of the front-proxy and etcd CAs): ECDSA P-256 by
    /// default (fast), RSA 2048 as kubeadm makes it by default.
    pub ca_key_type: CaKeyType,
    /// How long before the start the cluster CA and the API server's serving certificate
    /// become valid: 5 minutes by default; zero makes a cluster whose certificates are valid
    /// only from its start (newer than any kubejoin build already made, for time tests).
    pub pki_backdate: Duration,
    /// The control-plane side (`kubeadm init --upload-certs`): `None` for a cluster that
    /// only workers join (no kubeadm-certs, no etcd gateway, no first control-plane Node).
    pub control_plane: Option<ControlPlane>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tokens: vec![TokenSpec::new("abcdef", "0123456789abcdef")],
            extra_sans: Vec::new(),
            ca_rotation: false,
            signer_delay: Duration::ZERO,
            approval: Approval::Auto,
            approval_delay: Duration::ZERO,
            preferences_line: true,
            server_url: None,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            nodes: Vec::new(),
            kube_proxy: false,
            cluster_name: "kubernetes".to_string(),
            kubernetes_version: "v1.33.0".to_string(),
            kubeadm_config_kubernetes_version: None,
            unversioned_kubelet_config_map: None,
            feature_gates: Vec::new(),
            image_repository: None,
            kubelet_config_map_name: None,
            cluster_info_hook: None,
            faults: Faults::default(),
            ca_key_type: CaKeyType::EcdsaP256,
            pki_backdate: Duration::from_secs(300),
            control_plane: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("tokens", &self.tokens)
            .field("extra_sans", &self.extra_sans)
            .field("ca_rotation", &self.ca_rotation)
            .field("signer_delay", &self.signer_delay)
            .field("approval", &self.approval)
            .field("approval_delay", &self.approval_delay)
            .field("preferences_line", &self.preferences_line)
            .field("server_url", &self.server_url)
            .field("bind", &self.bind)
            .field("nodes", &self.nodes)
            .field("kube_proxy", &self.kube_proxy)
            .field("cluster_name", &self.cluster_name)
            .field("kubernetes_version", &self.kubernetes_version)
            .field(
                "kubeadm_config_kubernetes_version",
                &self.kubeadm_config_kubernetes_version,
            )
            .field(
                "unversioned_kubelet_config_map",
                &self.unversioned_kubelet_config_map,
            )
            .field("feature_gates", &self.feature_gates)
            .field("image_repository", &self.image_repository)
            .field("kubelet_config_map_name", &self.kubelet_config_map_name)
            .field(
                "cluster_info_hook",
                &self.cluster_info_hook.as_ref().map(|_| "<fn>"),
            )
            .field("faults", &self.faults)
            .field("ca_key_type", &self.ca_key_type)
            .field("pki_backdate", &self.pki_backdate)
            .field("control_plane", &self.control_plane)
            .finish()
    }
}

/// A bootstrap token (the `bootstrap-token-<id>` Secret).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub id: String,
    pub secret: String,
    pub expires: Option<SystemTime>,
    /// `usage-bootstrap-signing`: the bootstrap signer signs cluster-info for it.
    pub signing: bool,
    /// `usage-bootstrap-authentication`: it authenticates API requests.
    pub authentication: bool,
    /// `auth-extra-groups`.
    pub extra_groups: Vec<String>,
}

impl std::fmt::Debug for TokenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSpec")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("expires", &self.expires)
            .field("signing", &self.signing)
            .field("authentication", &self.authentication)
            .field("extra_groups", &self.extra_groups)
            .finish()
    }
}

impl TokenSpec {
    /// A token as `kubeadm token create` makes it: both usages, the default node group,
    /// 24 h TTL.
    pub fn new(id: &str, secret: &str) -> TokenSpec {
        TokenSpec {
            id: id.to_string(),
            secret: secret.to_string(),
            expires: Some(SystemTime::now() + Duration::from_secs(24 * 3600)),
            signing: true,
            authentication: true,
            extra_groups: vec![auth::DEFAULT_NODE_TOKEN_GROUP.to_string()],
        }
    }

    /// `<id>.<secret>`, with the defaults of [`TokenSpec::new`].
    pub fn parse(token: &str) -> Result<TokenSpec, Error> {
        let (id, secret) = token
            .split_once('.')
            .ok_or_else(|| Error::Config("a token must look like <id>.<secret>".to_string()))?;
        let spec = TokenSpec::new(id, secret);
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), Error> {
        if !auth::valid_token_part(&self.id, 6) || !auth::valid_token_part(&self.secret, 16) {
            return Err(Error::Config(format!(
                "token {:?} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}",
                self.id
            )));
        }
        if let Some(g) = self
            .extra_groups
            .iter()
            .find(|g| !auth::valid_bootstrap_group(g))
        {
            return Err(Error::Config(format!(
                "token {}: extra group {g:?} does not match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]",
                self.id
            )));
        }
        Ok(())
    }
}

/// Whether qualifying kubelet client CSRs are approved by the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approval {
    #[default]
    Auto,
    /// Only [`Handle::approve`], the `approval` subresource or the CLI approve.
    Manual,
}

/// A Node object that exists from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub ready: bool,
}

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// `system:anonymous`, `system:bootstrap:<id>`, a certificate CN; empty for a 401.
    pub user: String,
    /// 0 while the request is still being handled.
    pub status: u16,
    pub request_bytes: u64,
    /// Grows while a watch streams.
    pub response_bytes: u64,
    /// When the request arrived.
    pub time: SystemTime,
    /// The request carried an `Authorization` header (valid or not, answered or not).
    pub authorization: bool,
    /// The injected fault this request got ([`Action::name`], or `max in flight`).
    pub fault: Option<String>,
    /// The TLS connection it came over: 1 for the first handshake that succeeded, and so on.
    pub connection: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("creating the cluster PKI: {0}")]
    Pki(String),
    #[error("setting up TLS: {0}")]
    Tls(String),
    #[error("starting the server thread")]
    Runtime(#[source] std::io::Error),
    #[error("certificatesigningrequest {0:?} not found")]
    NotFound(String),
    #[error("certificatesigningrequest {name:?} cannot be changed: {reason}")]
    Conflict { name: String, reason: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Client(String),
    #[error("control plane: {0}")]
    ControlPlane(String),
}

/// A running control plane. Dropping it shuts the server down.
pub struct Handle {
    state: Arc<state::State>,
    lifecycle: Arc<fault::Lifecycle>,
    addr: SocketAddr,
    endpoint: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Binds, builds the PKI, starts the server on a background thread with its own runtime, and
/// returns once it accepts connections (with `faults.down_for`: at once, the port bound and
/// refusing until the down period is over).
pub fn start(config: Config) -> Result<Handle, Error> {
    for t in &config.tokens {
        t.validate()?;
    }
    if config.cluster_name.is_empty() {
        return Err(Error::Config("cluster_name is empty".to_string()));
    }
    let version = version::ServerVersion::parse(&config.kubernetes_version)?;
    let kubeadm_config_version = match &config.kubeadm_config_kubernetes_version {
        Some(v) => version::ServerVersion::parse(v)?,
        None => version.clone(),
    };
    let kubelet_config_map = match &config.kubelet_config_map_name {
        Some(name) => {
            version::legacy_minor(name)?;
            name.clone()
        }
        None => version.kubelet_config_map(config.unversioned_kubelet_config_map)?,
    };
    // The port is bound here, so the endpoint is known and stays ours; it only listens when the
    // server is up, so during `down_for` the kernel refuses connections to it.
    let bind_err = |source| Error::Bind {
        addr: config.bind,
        source,
    };
    let socket = bind_socket(config.bind).map_err(bind_err)?;
    let addr = socket
        .local_addr()
        .map_err(bind_err)?
        .as_socket()
        .ok_or_else(|| bind_err(std::io::Error::other("not an IP socket address")))?;
    let faults = config.faults.clone();
    let listen_late = !faults.down_for.is_zero() && faults.down_mode == DownMode::Refuse;
    if !listen_late {
        socket.listen(LISTEN_BACKLOG).map_err(bind_err)?;
    }
    // Clients dial a concrete address, never the wildcard one.
    let dial_ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let endpoint = SocketAddr::new(dial_ip, addr.port()).to_string();
    let server_url = config
        .server_url
        .clone()
        .unwrap_or_else(|| format!("https://{endpoint}"));

    let now = SystemTime::now();
    // `Ca::generate_with` backdates by 5 minutes; a shorter `pki_backdate` starts it later.
    let ca_start = now + Duration::from_secs(300).saturating_sub(config.pki_backdate);
    let ca = pki::Ca::generate_with("kubernetes", ca_start, config.ca_key_type)
        .map_err(|e| Error::Pki(e.to_string()))?;
    let mut bundle_pem = String::new();
    let mut bundle_pins = Vec::new();
    if config.ca_rotation {
        let old = pki::Ca::generate_with("kubernetes", now, config.ca_key_type)
            .map_err(|e| Error::Pki(e.to_string()))?;
        bundle_pem.push_str(&old.pem());
        bundle_pins.push(old.pin());
    }
    bundle_pem.push_str(&ca.pem());
    bundle_pins.push(ca.pin());

    let mut sans = pki::Sans::default();
    for name in [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ] {
        sans.push_name(name);
    }
    let mut extra: Vec<String> = config.extra_sans.clone();
    if dial_ip != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        extra.push(dial_ip.to_string());
    }
    if let Some(host) = url_host(&server_url) {
        extra.push(host);
    }
    for name in extra {
        let known = sans.dns.contains(&name)
            || name
                .parse::<IpAddr>()
                .is_ok_and(|ip| sans.ips.contains(&ip_bytes(ip)));
        if !known && !name.is_empty() {
            sans.push_name(&name);
        }
    }
    let (serving_der, serving_key) = ca
        .serving_cert(sans, config.pki_backdate)
        .map_err(|e| Error::Pki(e.to_string()))?;
    let tls = server::tls_config(&ca.der, serving_der, serving_key).map_err(Error::Tls)?;
    let admin = ca
        .client_cert("kubernetes-admin", &[auth::MASTERS])
        .map_err(|e| Error::Pki(e.to_string()))?;
    let first_node = config.control_plane.as_ref().map_or_else(
        || ControlPlane::default().first_node,
        |c| c.first_node.clone(),
    );
    let (cp_state, cp_key, etcd_server) = match &config.control_plane {
        Some(cp) => {
            let setup = setup_control_plane(
                cp,
                config.ca_key_type,
                &ca,
                &version,
                dial_ip,
                addr.port(),
                &config.cluster_name,
                config
                    .image_repository
                    .as_deref()
                    .unwrap_or_else(|| version.default_image_repository()),
            )?;
            (Some(setup.0), setup.1, setup.2)
        }
        None => (None, None, None),
    };
    let (mut cluster_spec, etcd_topology): (ClusterSpec, EtcdTopology) = config
        .control_plane
        .as_ref()
        .map(|c| (c.cluster.clone(), c.etcd.clone()))
        .unwrap_or_default();
    cluster_spec
        .feature_gates
        .extend(config.feature_gates.iter().cloned());

    let settings = state::Settings {
        tokens: config.tokens,
        approval: config.approval,
        approval_delay: config.approval_delay,
        signer_delay: config.signer_delay,
        preferences_line: config.preferences_line,
        server_url,
        endpoint: endpoint.clone(),
        kube_proxy: config.kube_proxy,
        cluster_name: config.cluster_name,
        kubernetes_version: version.text.clone(),
        image_repository: config
            .image_repository
            .unwrap_or_else(|| version.default_image_repository().to_string()),
        unversioned_kubelet_config_map: config.unversioned_kubelet_config_map,
        kubelet_config_map,
        kubeadm_config_version,
        version,
        hook: config.cluster_info_hook,
        cluster: cluster_spec,
        etcd: etcd_topology,
        api_endpoint: (first_node, dial_ip.to_string(), addr.port()),
    };
    let certificate_delay = faults.certificate_delay;
    let down_for = faults.down_for;
    let down_mode = faults.down_mode;
    let (lifecycle, mut restart_rx) = fault::Lifecycle::new(&faults);
    let lifecycle = Arc::new(lifecycle);
    let timed_restarts: Vec<(Duration, Duration)> = faults
        .restarts
        .iter()
        .filter_map(|r| match r.trigger {
            RestartTrigger::After(after) => Some((after, r.down)),
            RestartTrigger::Request { .. } => None,
        })
        .collect();
    let state = Arc::new(
        state::State::new(
            settings,
            ca,
            bundle_pem,
            bundle_pins,
            admin,
            config.nodes,
            faults,
        )
        .with_control_plane(cp_state),
    );
    // Every bootstrap token has its Secret, as `kubeadm token create` makes it.
    for t in &state.settings.tokens {
        let mut usages = Vec::new();
        if t.signing {
            usages.push("signing");
        }
        if t.authentication {
            usages.push("authentication");
        }
        let _ = state.kube_system.put_secret(
            kubesystem::token_secret(&t.id, &t.secret, None, t.expires, &usages, &t.extra_groups),
            false,
            "kubeadm",
        );
    }
    if let (Some(cp), Some(key)) = (&state.cp, cp_key) {
        cp.upload(&state.kube_system, key)?;
    }
    let register_after = config
        .control_plane
        .as_ref()
        .and_then(|c| c.register_nodes_after);

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), Error>>();
    let server_state = state.clone();
    let server_lifecycle = lifecycle.clone();
    // The runtime lives and dies on this thread, so the handle can be dropped anywhere,
    // including inside another runtime.
    let thread = std::thread::Builder::new()
        .name("kubejoin-testcp".to_string())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("kubejoin-testcp-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::Runtime(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let up_at = tokio::time::Instant::now() + down_for;
                // The fake etcd is its own process in a real cluster: it serves on its own
                // port, whatever happens to the API server.
                if let Some((listener, tls, etcd)) = etcd_server {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            tokio::spawn(etcd::serve(
                                listener,
                                tokio_rustls::TlsAcceptor::from(tls),
                                etcd,
                                shutdown_rx.clone(),
                            ));
                        }
                        Err(source) => {
                            let _ = ready_tx.send(Err(Error::Bind { addr, source }));
                            return;
                        }
                    }
                }
                // The kubelets of joined nodes register their Nodes.
                if let (Some(mut rx), Some(delay)) =
                    (server_state.take_registrations(), register_after)
                {
                    let state = server_state.clone();
                    tokio::spawn(async move {
                        while let Some(name) = rx.recv().await {
                            let state = state.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                state.register_node(&name);
                            });
                        }
                    });
                }
                // The delayed csrsigning controller: each approval is signed `certificate_delay`
                // after it was made.
                let signer_state = server_state.clone();
                let delayed = server_state.take_delayed_signs();
                tokio::spawn(async move {
                    let Some(mut delayed_rx) = delayed else {
                        return;
                    };
                    while let Some((name, uid)) = delayed_rx.recv().await {
                        let state = signer_state.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(certificate_delay).await;
                            state.sign_delayed(&name, &uid);
                        });
                    }
                });
                let mut shutdown_rx = shutdown_rx;
                if listen_late {
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = tokio::time::sleep_until(up_at) => {}
                        _ = shutdown_rx.changed() => return,
                    }
                    if socket.listen(LISTEN_BACKLOG).is_err() {
                        return;
                    }
                }
                let mut listener = match tokio::net::TcpListener::from_std(socket.into()) {
                    Ok(l) => l,
                    Err(source) => {
                        let _ = ready_tx.send(Err(Error::Bind { addr, source }));
                        return;
                    }
                };
                if !listen_late {
                    let _ = ready_tx.send(Ok(()));
                }
                // Restarts set off by the clock, counted from when the server came up.
                for (after, down) in timed_restarts {
                    let lifecycle = server_lifecycle.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(up_at + after).await;
                        lifecycle.request(down, None);
                    });
                }
                let mut reset_until = (down_mode == DownMode::Reset).then_some(up_at);
                loop {
                    // While a resetting down period lasts, nothing is served: the window
                    // starts when it ends.
                    server_lifecycle
                        .up(reset_until.map_or_else(std::time::Instant::now, |t| t.into_std()));
                    let served = server::serve(
                        listener,
                        tokio_rustls::TlsAcceptor::from(tls.clone()),
                        server_state.clone(),
                        server_lifecycle.clone(),
                        &mut restart_rx,
                        shutdown_rx.clone(),
                        reset_until,
                    )
                    .await;
                    let request = match served {
                        server::Served::Shutdown => break,
                        server::Served::Restart(request) => request,
                    };
                    reset_until = None;
                    // Down: the port is bound again at once (so it stays ours) but does not
                    // listen, so connections are refused, as when the process is gone.
                    let Some(socket) = rebind(addr).await else {
                        break;
                    };
                    server_lifecycle.down();
                    if let Some(done) = request.done {
                        let _ = done.send(());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(request.down) => {}
                        _ = shutdown_rx.changed() => break,
                    }
                    if socket.listen(LISTEN_BACKLOG).is_err() {
                        break;
                    }
                    listener = match tokio::net::TcpListener::from_std(socket.into()) {
                        Ok(l) => l,
                        Err(_) => break,
                    };
                }
            });
            // Open connections, watches and pending approvals end here.
            runtime.shutdown_timeout(Duration::from_millis(500));
        })
        .map_err(Error::Runtime)?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(Error::Runtime(std::io::Error::other(
                "the server thread ended before it was ready",
            )));
        }
    }
    Ok(Handle {
        state,
        lifecycle,
        addr,
        endpoint,
        shutdown: shutdown_tx,
        thread: Some(thread),
    })
}

/// The etcd gateway's listener, TLS and state.
type EtcdServer = (
    std::net::TcpListener,
    Arc<rustls::ServerConfig>,
    Arc<etcd::Etcd>,
);

/// The control-plane side: its PKI, the certificate key to upload with, and for stacked etcd
/// the gateway (bound here, so that its URL is known to the Pods and the first member).
#[allow(clippy::too_many_arguments)] // the facts of the first control plane, each used once
fn setup_control_plane(
    cp: &ControlPlane,
    ca_key_type: CaKeyType,
    ca: &pki::Ca,
    version: &version::ServerVersion,
    dial_ip: IpAddr,
    api_port: u16,
    cluster_name: &str,
    image_repository: &str,
) -> Result<
    (
        cpstate::ControlPlaneState,
        Option<CertificateKey>,
        Option<EtcdServer>,
    ),
    Error,
> {
    let key = match &cp.certificate_key {
        Some(k) => Some(
            CertificateKey::parse(k)
                .map_err(|why| Error::Config(format!("certificate key: {why}")))?,
        ),
        None => None,
    };
    if cp.first_node.is_empty() {
        return Err(Error::Config("control_plane.first_node is empty".into()));
    }
    let rules = controlplane::rules(version);
    let pki = controlplane::ControlPlanePki::generate(&cp.etcd, ca_key_type)?;
    let files = pki.files(ca, &cp.etcd);
    let minor = if version.major == 1 {
        version.minor
    } else {
        u32::MAX
    };
    let mut etcd_server = None;
    let mut etcd_url = None;
    if let (controlplane::EtcdTopology::Stacked(_), Some(etcd_ca)) = (&cp.etcd, &pki.etcd_ca) {
        let bind = SocketAddr::new(dial_ip, 0);
        let bind_err = |source| Error::Bind { addr: bind, source };
        let listener = std::net::TcpListener::bind(bind).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let port = listener.local_addr().map_err(bind_err)?.port();
        let url = format!("https://{}", SocketAddr::new(dial_ip, port));
        // kubeadm's etcd/server: CN and a SAN the node name, localhost, the advertise
        // address, 127.0.0.1 and ::1; server and client auth.
        let mut sans = pki::Sans::default();
        for n in [cp.first_node.as_str(), "localhost", "127.0.0.1", "::1"] {
            sans.push_name(n);
        }
        if dial_ip != IpAddr::V4(Ipv4Addr::LOCALHOST) && dial_ip != IpAddr::V6(Ipv6Addr::LOCALHOST)
        {
            sans.push_name(&dial_ip.to_string());
        }
        let key_pair = pki::new_key().map_err(|e| Error::Pki(e.to_string()))?;
        let now = der::truncate_to_seconds(SystemTime::now());
        let template = pki::Template {
            subject: pki::GoName::new(&cp.first_node, &[]).to_der(),
            spki: rcgen::PublicKeyData::subject_public_key_info(&key_pair),
            not_before: now - Duration::from_secs(300),
            not_after: now + Duration::from_secs(365 * 86_400),
            key_usage: pki::ku::DIGITAL_SIGNATURE | pki::ku::KEY_ENCIPHERMENT,
            ext_key_usages: vec![pki::oid::EKU_SERVER_AUTH, pki::oid::EKU_CLIENT_AUTH],
            sans,
        };
        let serving = etcd_ca
            .issue(&template)
            .map_err(|e| Error::Pki(e.to_string()))?;
        let tls = etcd::tls_config(&etcd_ca.der, serving, key_pair.serialize_der())
            .map_err(Error::Tls)?;
        let etcd = Arc::new(etcd::Etcd::new(
            url.clone(),
            &cp.first_node,
            &dial_ip.to_string(),
            minor,
            cp.etcd_options.clone(),
        ));
        etcd_url = Some(url);
        etcd_server = Some((listener, tls, etcd));
    }
    let pod_facts = pods::PodFacts {
        node: cp.first_node.clone(),
        node_uid: String::new(),
        address: dial_ip.to_string(),
        api_port,
        etcd_url,
        external_etcd: match &cp.etcd {
            controlplane::EtcdTopology::External(x) => x.endpoints.clone(),
            controlplane::EtcdTopology::Stacked(_) => Vec::new(),
        },
        image_repository: image_repository.to_string(),
        kubernetes_version: version.text.clone(),
        etcd_version: etcd::etcd_version(minor).to_string(),
        annotations: rules.pod_annotations,
        created: SystemTime::now(),
        service_subnet: cp.cluster.service_subnet.clone(),
        pod_subnet: cp.cluster.pod_subnet.clone(),
        cluster_name: cluster_name.to_string(),
    };
    let state = cpstate::ControlPlaneState::new(
        cp.clone(),
        rules,
        pki,
        files,
        etcd_server.as_ref().map(|(_, _, e)| e.clone()),
        pod_facts,
    );
    Ok((state, key, etcd_server))
}

/// A TCP socket bound to `addr` (`SO_REUSEADDR`, non-blocking), not listening yet.
fn bind_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Binds `addr` again after a restart closed its listener, trying for a while (the closed
/// connections' sockets linger briefly). `None`: the port could not be had back.
async fn rebind(addr: SocketAddr) -> Option<socket2::Socket> {
    for _ in 0..100 {
        match bind_socket(addr) {
            Ok(s) => return Some(s),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    None
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The host of an `https://host:port/...` URL, brackets removed.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_string())
}

impl Handle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`: what goes after `kubejoin join`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.endpoint)
    }

    /// The CA bundle served in cluster-info (PEM; with `ca_rotation`, old CA first).
    pub fn ca_pem(&self) -> String {
        self.state.bundle_pem.clone()
    }

    /// `sha256:<hex>` of each CA in the bundle, in bundle order.
    pub fn ca_pins(&self) -> Vec<String> {
        self.state.bundle_pins.clone()
    }

    /// The pin of the CA that signs (serving and client certificates).
    pub fn signing_ca_pin(&self) -> String {
        self.state.ca.pin()
    }

    /// The first token, `id.secret`.
    pub fn token(&self) -> String {
        self.state
            .settings
            .tokens
            .first()
            .map(|t| format!("{}.{}", t.id, t.secret))
            .unwrap_or_default()
    }

    /// A ready-to-paste `kubejoin join ...` line.
    pub fn join_command(&self) -> String {
        format!(
            "kubejoin join {} --token {} --discovery-token-ca-cert-hash {}",
            self.endpoint,
            self.token(),
            self.signing_ca_pin()
        )
    }

    /// Every request served so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests()
    }

    /// The requests seen from the `from`-th on (counting from 0 since the start; the oldest
    /// kept if earlier ones were dropped), with the index of the first returned: a caller that
    /// follows the log while the server is busy copies only what is new.
    pub fn requests_from(&self, from: usize) -> (usize, Vec<RequestRecord>) {
        self.state.requests_from(from)
    }

    /// TLS handshakes that did not complete so far: each is a request a client meant to send
    /// (for instance after refusing the server's certificate) that never reached the API.
    pub fn failed_handshakes(&self) -> usize {
        self.state
            .failed_handshakes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current CSR objects, as the API returns them.
    pub fn csrs(&self) -> Vec<serde_json::Value> {
        self.state.csr_values()
    }

    /// Approves like `kubectl certificate approve` (reason `KubectlApprove`); the signer then
    /// issues the certificate.
    pub fn approve(&self, name: &str) -> Result<(), Error> {
        self.state.decide(
            name,
            true,
            "KubectlApprove",
            "This CSR was approved by kubectl certificate approve.",
        )
    }

    /// The kubelet-config ConfigMap name of this cluster (`kubelet-config` or
    /// `kubelet-config-1.X`).
    pub fn kubelet_config_map(&self) -> String {
        self.state.settings.kubelet_config_map.clone()
    }

    /// The KubeletConfiguration its kubelet-config ConfigMap serves (`data.kubelet`).
    pub fn kubelet_config(&self) -> String {
        state::KUBELET_CONFIG.to_string()
    }

    /// The version this control plane behaves as (`v1.24.0`).
    pub fn kubernetes_version(&self) -> String {
        self.state.settings.version.text.clone()
    }

    /// Denies with the given condition reason and message.
    pub fn deny(&self, name: &str, reason: &str, message: &str) -> Result<(), Error> {
        self.state.decide(name, false, reason, message)
    }

    pub fn delete_csr(&self, name: &str) -> Result<(), Error> {
        self.state
            .delete_csr(name)
            .map(|_| ())
            .map_err(|_| Error::NotFound(name.to_string()))
    }

    /// Like kubeadm re-uploading cluster-info: the jws keys disappear until `signer_delay`
    /// has passed again.
    pub fn rewrite_cluster_info(&self) {
        self.state.rewrite_cluster_info();
    }

    /// Adds (or replaces) a Node.
    pub fn add_node(&self, spec: NodeSpec) {
        self.state.add_node(spec);
    }

    /// A kubeconfig with an embedded `kubernetes-admin` (O=system:masters) client certificate.
    pub fn admin_kubeconfig(&self) -> String {
        let (cert, key) = &self.state.admin;
        kubeconfig::admin_kubeconfig(
            &self.state.bundle_pem,
            &self.url(),
            &self.state.settings.cluster_name,
            cert,
            key,
        )
    }

    /// A client certificate signed by the cluster CA: `(certificate PEM, PKCS#8 key PEM)`.
    pub fn issue_client_cert(&self, cn: &str, orgs: &[&str]) -> (String, String) {
        self.state
            .ca
            .client_cert(cn, orgs)
            .unwrap_or_else(|_| (String::new(), String::new()))
    }

    // ---- the control-plane side (with `Config::control_plane`) ----------------------------

    /// The key of the last upload this server made (at start or [`Handle::upload_certs`]), 64
    /// hex digits. An upload through the API (`kubejoin-testcp upload-certs`) is not known
    /// here: the API server never sees the key.
    pub fn certificate_key(&self) -> Option<String> {
        self.state.cp.as_ref()?.certificate_key()
    }

    /// What `kubeadm init --upload-certs` prints for control planes, as a `kubejoin join` line.
    pub fn control_plane_join_command(&self) -> Option<String> {
        Some(format!(
            "{} --control-plane --certificate-key {}",
            self.join_command(),
            self.certificate_key()?
        ))
    }

    /// `kubeadm init phase upload-certs --upload-certs [--certificate-key KEY]`: a new token
    /// (TTL `certs_ttl`) owns the re-encrypted Secret from now on; returns the key used (a
    /// fresh one when `key` is `None`).
    pub fn upload_certs(&self, key: Option<&str>) -> Result<String, Error> {
        let cp = self
            .state
            .cp
            .as_ref()
            .ok_or_else(|| Error::Config("this server has no control plane".into()))?;
        let key = match key {
            Some(k) => CertificateKey::parse(k)
                .map_err(|why| Error::Config(format!("certificate key: {why}")))?,
            None => CertificateKey::generate(),
        };
        let hex = key.to_hex();
        cp.upload(&self.state.kube_system, key)?;
        Ok(hex)
    }

    /// The token owning `kubeadm-certs` expires now: the token cleaner deletes it and the
    /// garbage collector the Secret (404 from then on). `false` if there was none.
    pub fn expire_kubeadm_certs(&self) -> bool {
        match self.state.kube_system.owner_of(copycerts::SECRET_NAME) {
            Some((owner, _)) => self.state.kube_system.expire_token(&owner),
            None => false,
        }
    }

    /// When `kubeadm-certs` goes away (its owner token's expiration); `None` if it is gone.
    pub fn kubeadm_certs_expiry(&self) -> Option<SystemTime> {
        self.state
            .kube_system
            .owner_of(copycerts::SECRET_NAME)
            .and_then(|(_, e)| e)
    }

    /// What `kubeadm-certs` carries, decrypted: (path under `certificatesDir`, or the
    /// `external-etcd*` entry name; contents), empty for a file that does not exist.
    pub fn shared_files(&self) -> Vec<(String, Vec<u8>)> {
        self.state
            .cp
            .as_ref()
            .map(|cp| cp.files.clone())
            .unwrap_or_default()
    }

    /// The raw (encrypted) values of `kubeadm-certs` as stored now.
    pub fn kubeadm_certs_data(&self) -> Option<BTreeMap<String, Vec<u8>>> {
        self.state.kube_system.secret_data(copycerts::SECRET_NAME)
    }

    /// What kubeadm of this server's version does (see [`controlplane`]).
    pub fn kubeadm_rules(&self) -> KubeadmRules {
        controlplane::rules(&self.state.settings.version)
    }

    /// admin.conf as `kubeadm init` of this version writes it: `kubernetes-admin` in
    /// `system:masters` up to v1.28, in `kubeadm:cluster-admins` (bound to cluster-admin) from
    /// v1.29. ([`Handle::admin_kubeconfig`] is always `system:masters`, like super-admin.conf.)
    pub fn kubeadm_admin_kubeconfig(&self) -> String {
        let group = self.kubeadm_rules().admin_group;
        let (cert, key) = self.issue_client_cert("kubernetes-admin", &[group]);
        kubeconfig::admin_kubeconfig(
            &self.state.bundle_pem,
            &self.url(),
            &self.state.settings.cluster_name,
            &cert,
            &key,
        )
    }

    /// The etcd gateway's URL (`https://127.0.0.1:PORT`), stacked etcd only.
    pub fn etcd_url(&self) -> Option<String> {
        Some(self.state.cp.as_ref()?.etcd.as_ref()?.url.clone())
    }

    /// The etcd CA (PEM), stacked etcd only.
    pub fn etcd_ca_pem(&self) -> Option<String> {
        Some(self.state.cp.as_ref()?.pki.etcd_ca.as_ref()?.pem())
    }

    /// A client certificate from the etcd CA: `(certificate PEM, PKCS#8 key PEM)`.
    pub fn issue_etcd_client_cert(&self, cn: &str, orgs: &[&str]) -> Option<(String, String)> {
        self.state
            .cp
            .as_ref()?
            .pki
            .etcd_ca
            .as_ref()?
            .client_cert(cn, orgs)
            .ok()
    }

    /// The etcd members now.
    pub fn etcd_members(&self) -> Vec<EtcdMember> {
        self.etcd().map(|e| e.members()).unwrap_or_default()
    }

    /// Every call the etcd gateway answered, in order.
    pub fn etcd_calls(&self) -> Vec<EtcdCall> {
        self.etcd().map(|e| e.calls()).unwrap_or_default()
    }

    /// The etcd of the member whose first peer URL is `peer_url` has started: it now reports
    /// `name` and `client_urls` and counts as started (a learner can be promoted).
    pub fn etcd_member_started(&self, peer_url: &str, name: &str, client_urls: &[&str]) -> bool {
        let urls: Vec<String> = client_urls.iter().map(|u| u.to_string()).collect();
        self.etcd()
            .is_some_and(|e| e.member_started(peer_url, name, &urls))
    }

    fn etcd(&self) -> Option<&etcd::Etcd> {
        self.state.cp.as_ref()?.etcd.as_deref()
    }

    /// The kubelet of `name` registers its Node (not ready, as a kubelet without a network
    /// plugin), as it does after the handoff; a Node that exists stays as it is.
    pub fn register_node(&self, name: &str) {
        self.state.register_node(name);
    }

    /// A Node as the API returns it.
    pub fn node(&self, name: &str) -> Option<serde_json::Value> {
        self.state
            .node(name)
            .and_then(|n| serde_json::to_value(n).ok())
    }

    /// Restarts the server now: open connections are closed and the port refuses connections
    /// for `down`, then it listens again with the same CA, tokens and objects, its startup
    /// window (if any) starting anew. Returns once the port refuses (at most 5 s); `false` if
    /// the server did not get there.
    pub fn restart(&self, down: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        self.lifecycle.request(down, Some(tx)) && rx.recv_timeout(Duration::from_secs(5)).is_ok()
    }

    /// How many restarts have happened so far (on demand or triggered).
    pub fn restarts(&self) -> u64 {
        self.lifecycle.restarts()
    }

    /// Appends one JSON line per finished request to `path`.
    pub fn log_requests_to(&self, path: &Path) -> Result<(), Error> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::Io {
                action: "opening the request log",
                path: path.to_path_buf(),
                source,
            })?;
        self.state.set_request_log(file);
        Ok(())
    }

    /// Stops the server and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://127.0.0.1:6443").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(url_host("https://[::1]:6443/x").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://cp.example").as_deref(),
            Some("cp.example")
        );
    }

    #[test]
    fn token_parsing() {
        assert!(TokenSpec::parse("abcdef.0123456789abcdef").is_ok());
        assert!(TokenSpec::parse("ABCDEF.0123456789abcdef").is_err());
        assert!(TokenSpec::parse("abcdef").is_err());
        let t = TokenSpec::parse("abcdef.0123456789abcdef").unwrap();
        assert!(!format!("{t:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut c = Config::default();
        c.tokens[0].extra_groups = vec!["system:masters".into()];
        assert!(matches!(start(c), Err(Error::Config(_))));
    }
}
