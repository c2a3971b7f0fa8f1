//! Everything the server stores: cluster-info (with the bootstrap signer's lag), the kube-system
//! ConfigMaps, Nodes, CSRs and their watch history, and the request log. One mutex guards the
//! objects; it is never held across an await.

use crate::auth::{self, FieldTerm, RequestInfo, User};
use crate::csr::{self, NewCsr, Signing};
use crate::fault::{Budgets, Faults};
use crate::objects::{
    ConfigMap, Csr, CsrCondition, CsrSpec, CsrStatus, FieldError, List, ManagedFieldsEntry, Node,
    NodeAddress, NodeCondition, NodeInfo, NodeSpecJson, NodeStatus, ObjectMeta, Status, Taint,
    CSRS, NODES,
};
use crate::pki::{self, Ca};
use crate::{jws, kubeconfig, util, Approval, ClusterInfoHook, NodeSpec, RequestRecord, TokenSpec};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// The CSR watch cache's history (what a watch can resume from; older resource versions get
/// 410 Expired) is sized as kube-apiserver's: `k8s.io/apiserver/pkg/storage/cacher/watch_cache.go`
/// (v1.28; dynamic since v1.19): it starts at 100 events, doubles (up to 100 × 1024) whenever it
/// is full and its oldest event is younger than `eventFreshDuration` (75 s), and halves (not
/// below 100) when full and the newest quarter began more than 75 s ago. So a burst keeps at
/// least 75 s of events: a fleet's node whose watch starts a few seconds after its POST resumes
/// from the POST's version. (A fixed 1,000 events made most nodes of a 10,000-node fleet fall
/// out of the history and list again.)
const HISTORY_LOWER: usize = 100;
const HISTORY_UPPER: usize = 100 * 1024;
const EVENT_FRESH: Duration = Duration::from_secs(75);
/// Resource versions start here, so that small ones (a client's `resourceVersion=1`) are too old.
const FIRST_RESOURCE_VERSION: u64 = 100;
/// The request log keeps this many records; a test control plane should not grow without bound.
const MAX_RECORDS: usize = 100_000;

/// The fixed facts of this control plane.
pub(crate) struct Settings {
    pub tokens: Vec<TokenSpec>,
    pub approval: Approval,
    pub approval_delay: Duration,
    pub signer_delay: Duration,
    pub preferences_line: bool,
    pub server_url: String,
    pub endpoint: String,
    pub kube_proxy: bool,
    pub cluster_name: String,
    pub kubernetes_version: String,
    pub image_repository: String,
    pub unversioned_kubelet_config_map: Option<bool>,
    /// `kubelet-config` or `kubelet-config-1.X`.
    pub kubelet_config_map: String,
    /// The version the controllers behave as.
    pub version: crate::version::ServerVersion,
    /// The version `kubeadm-config` names (usually `version`).
    pub kubeadm_config_version: crate::version::ServerVersion,
    pub hook: Option<ClusterInfoHook>,
    /// What `kubeadm-config` says about the control plane (defaults without one).
    pub cluster: crate::controlplane::ClusterSpec,
    pub etcd: crate::controlplane::EtcdTopology,
    /// The first control plane's (name, advertise address, port), for `ClusterStatus`.
    pub api_endpoint: (String, String, u16),
}

pub(crate) struct State {
    pub settings: Settings,
    pub ca: Ca,
    pub bundle_pem: String,
    pub bundle_pins: Vec<String>,
    pub admin: (String, String),
    inner: Mutex<Inner>,
    /// The resource version of the newest CSR event; watches wait on it.
    pub events: tokio::sync::watch::Sender<u64>,
    records: Mutex<Records>,
    /// The faults this server injects (see `fault.rs`).
    pub faults: Faults,
    pub budgets: Budgets,
    /// `get`/`list` requests being handled now (watches excluded), for `max_in_flight`.
    pub in_flight: AtomicUsize,
    /// Requests of every other verb being handled now, for `max_in_flight`'s mutating pool.
    pub in_flight_mutating: AtomicUsize,
    /// TLS handshakes that did not complete (the client refused the server's certificate, or
    /// the connection went before the handshake ended): requests that never reached the API.
    pub failed_handshakes: AtomicUsize,
    /// TLS handshakes that succeeded (numbering the connections of [`crate::RequestRecord`]).
    pub handshakes: std::sync::atomic::AtomicU64,
    /// With `certificate_delay`: approved CSRs `(name, uid)` whose certificate is issued later
    /// by a task of the server's runtime (approvals also come from threads outside it).
    delayed_signs: Option<tokio::sync::mpsc::UnboundedSender<(String, String)>>,
    delayed_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(String, String)>>>,
    /// kube-system Secrets, Roles and RoleBindings (see `kubesystem.rs`).
    pub kube_system: crate::kubesystem::KubeSystem,
    /// The control-plane side, when the cluster has one (see `cpstate.rs`).
    pub cp: Option<crate::cpstate::ControlPlaneState>,
    /// Node names whose kubelet client certificate was issued, for the simulated kubelet
    /// registration (`ControlPlane::register_nodes_after`).
    registrations: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    registrations_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("endpoint", &self.settings.endpoint)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Records {
    list: VecDeque<RequestRecord>,
    /// Index in `list` of the first record still kept (records before it were dropped).
    offset: usize,
    log: Option<File>,
}

struct ClusterInfo {
    uid: String,
    created: SystemTime,
    rv: u64,
    kubeconfig: String,
    written: Instant,
    written_at: SystemTime,
    /// When the bootstrap signer (re)added the jws keys; `None` while it lags.
    signed_at: Option<SystemTime>,
    gets: u64,
}

struct StoredConfigMap {
    uid: String,
    created: SystemTime,
    rv: u64,
    labels: BTreeMap<String, String>,
    data: BTreeMap<String, String>,
}

struct StoredNode {
    ready: bool,
    index: u32,
    uid: String,
    created: SystemTime,
    rv: u64,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    taints: Vec<Taint>,
    ids: [String; 3],
}

/// One CSR watch event, kept for resumption.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub rv: u64,
    pub type_: &'static str,
    pub object: Csr,
    /// When it was recorded (the watch cache's sizing looks at its age).
    pub at: Instant,
}

/// The watch cache's window of events (see [`HISTORY_LOWER`]).
#[derive(Debug)]
struct History {
    events: VecDeque<Event>,
    capacity: usize,
    /// An event has been dropped since the start: resource versions before the oldest kept one
    /// are too old.
    evicted: bool,
}

impl History {
    fn new() -> History {
        History {
            events: VecDeque::new(),
            capacity: HISTORY_LOWER,
            evicted: false,
        }
    }

    /// Records `event` (recorded at `event.at`), resizing first as `resizeCacheLocked` does,
    /// then dropping the oldest event if the window is still full.
    fn push(&mut self, event: Event) {
        let full = self.events.len() >= self.capacity;
        let age = |e: Option<&Event>| e.map(|e| event.at.saturating_duration_since(e.at));
        if full && age(self.events.front()).is_some_and(|a| a < EVENT_FRESH) {
            self.capacity = (self.capacity * 2).min(HISTORY_UPPER);
        } else if full
            && age(self.events.get(self.events.len() - self.capacity / 4))
                .is_some_and(|a| a > EVENT_FRESH)
        {
            self.capacity = (self.capacity / 2).max(HISTORY_LOWER);
        }
        while self.events.len() >= self.capacity {
            self.events.pop_front();
            self.evicted = true;
        }
        self.events.push_back(event);
    }
}

struct Inner {
    rv: u64,
    cluster_info: ClusterInfo,
    configmaps: BTreeMap<(String, String), StoredConfigMap>,
    nodes: BTreeMap<String, StoredNode>,
    node_seq: u32,
    csrs: BTreeMap<String, Csr>,
    history: History,
    /// The resource version the watch cache started at.
    list_rv: u64,
}

impl Inner {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn push_event(&mut self, type_: &'static str, object: Csr, rv: u64) {
        self.history.push(Event {
            rv,
            type_,
            object,
            at: Instant::now(),
        });
    }
}

/// A CSR field selector: `metadata.name` and `spec.signerName` are the supported fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct CsrFilter(Vec<FieldTerm>);

impl CsrFilter {
    pub(crate) fn parse(selector: Option<&str>) -> Result<CsrFilter, Status> {
        let Some(sel) = selector else {
            return Ok(CsrFilter::default());
        };
        let terms = auth::parse_field_selector(sel).map_err(Status::bad_request)?;
        for t in &terms {
            if !matches!(t.field.as_str(), "metadata.name" | "spec.signerName") {
                return Err(Status::bad_request(format!(
                    "field label not supported: {}",
                    t.field
                )));
            }
        }
        Ok(CsrFilter(terms))
    }

    pub(crate) fn matches(&self, csr: &Csr) -> bool {
        self.0.iter().all(|t| {
            let actual = match t.field.as_str() {
                "metadata.name" => &csr.metadata.name,
                _ => &csr.spec.signer_name,
            };
            (actual == &t.value) == t.equals
        })
    }
}

/// How a watch starts.
#[derive(Debug)]
pub(crate) enum WatchStart {
    /// Synthetic ADDED events for the current objects, then everything after `rv`.
    Snapshot { objects: Vec<Csr>, rv: u64 },
    /// Replay of the kept events after the requested version, then everything after `rv`.
    Resume { events: Vec<Event>, rv: u64 },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not take the whole server down with poisoning.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ts(t: SystemTime) -> String {
    util::rfc3339(t)
}

impl State {
    pub(crate) fn new(
        settings: Settings,
        ca: Ca,
        bundle_pem: String,
        bundle_pins: Vec<String>,
        admin: (String, String),
        nodes: Vec<NodeSpec>,
        faults: Faults,
    ) -> State {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let delayed_signs = (!faults.certificate_delay.is_zero()).then_some(tx);
        let now = SystemTime::now();
        let mut rv = FIRST_RESOURCE_VERSION;
        let mut next = || {
            rv += 1;
            rv
        };
        let kubeconfig = kubeconfig::cluster_info_kubeconfig(
            &bundle_pem,
            &settings.server_url,
            settings.preferences_line,
        );
        let mut configmaps = BTreeMap::new();
        let mut add_cm = |name: &str,
                          labels: BTreeMap<String, String>,
                          data: BTreeMap<String, String>,
                          rv: u64| {
            configmaps.insert(
                ("kube-system".to_string(), name.to_string()),
                StoredConfigMap {
                    uid: util::uuid(),
                    created: now,
                    rv,
                    labels,
                    data,
                },
            );
        };
        add_cm(
            "kubeadm-config",
            BTreeMap::new(),
            kubeadm_config_data(&settings),
            next(),
        );
        add_cm(
            &settings.kubelet_config_map,
            BTreeMap::new(),
            [("kubelet".to_string(), KUBELET_CONFIG.to_string())].into(),
            next(),
        );
        if settings.kube_proxy {
            add_cm(
                "kube-proxy",
                [("app".to_string(), "kube-proxy".to_string())].into(),
                [
                    ("config.conf".to_string(), KUBE_PROXY_CONFIG.to_string()),
                    (
                        "kubeconfig.conf".to_string(),
                        kube_proxy_kubeconfig(&settings.server_url),
                    ),
                ]
                .into(),
                next(),
            );
        }
        let cluster_info = ClusterInfo {
            uid: util::uuid(),
            created: now,
            rv: next(),
            kubeconfig,
            written: Instant::now(),
            written_at: now,
            signed_at: None,
            gets: 0,
        };
        let mut inner = Inner {
            rv,
            cluster_info,
            configmaps,
            nodes: BTreeMap::new(),
            node_seq: 0,
            csrs: BTreeMap::new(),
            history: History::new(),
            list_rv: 0,
        };
        for n in nodes {
            insert_node(&mut inner, n);
        }
        inner.list_rv = inner.rv;
        let (events, _) = tokio::sync::watch::channel(inner.rv);
        State {
            settings,
            ca,
            bundle_pem,
            bundle_pins,
            admin,
            inner: Mutex::new(inner),
            events,
            records: Mutex::new(Records::default()),
            budgets: Budgets::new(faults.requests.clone()),
            faults,
            in_flight: AtomicUsize::new(0),
            in_flight_mutating: AtomicUsize::new(0),
            failed_handshakes: AtomicUsize::new(0),
            handshakes: std::sync::atomic::AtomicU64::new(0),
            delayed_signs,
            delayed_rx: Mutex::new(Some(rx)),
            kube_system: crate::kubesystem::KubeSystem::new(),
            cp: None,
            registrations: None,
            registrations_rx: Mutex::new(None),
        }
    }

    /// Adds the control-plane side: the first control plane's Node, marked as its version
    /// marks control planes, and the simulated kubelet registrations.
    pub(crate) fn with_control_plane(
        mut self,
        cp: Option<crate::cpstate::ControlPlaneState>,
    ) -> State {
        let Some(cp) = cp else {
            return self;
        };
        {
            let mut inner = lock(&self.inner);
            // The node `kubeadm init` ran on, marked as its version marks control planes.
            insert_node(
                &mut inner,
                NodeSpec {
                    name: cp.config.first_node.clone(),
                    ready: true,
                },
            );
            let rules = &cp.rules;
            if let Some(node) = inner.nodes.get_mut(&cp.config.first_node) {
                for l in &rules.control_plane_labels {
                    node.labels.insert(l.to_string(), String::new());
                }
                node.taints = rules
                    .control_plane_taints
                    .iter()
                    .map(|k| Taint {
                        key: k.to_string(),
                        value: String::new(),
                        effect: "NoSchedule".into(),
                        time_added: String::new(),
                    })
                    .collect();
            }
            // Still part of the state the server starts with.
            inner.list_rv = inner.rv;
        }
        if cp.config.register_nodes_after.is_some() {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            self.registrations = Some(tx);
            self.registrations_rx = Mutex::new(Some(rx));
        }
        self.cp = Some(cp);
        self
    }

    /// The receiving end of the kubelet registrations, for the task that makes the Nodes.
    pub(crate) fn take_registrations(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        self.registrations.as_ref()?;
        lock(&self.registrations_rx).take()
    }

    /// The kubelet of `name` registers its Node (a Node that exists is left as it is).
    pub(crate) fn register_node(&self, name: &str) {
        let mut inner = lock(&self.inner);
        if !inner.nodes.contains_key(name) {
            insert_node(
                &mut inner,
                NodeSpec {
                    name: name.to_string(),
                    ready: false,
                },
            );
        }
    }

    /// The UID of a Node.
    pub(crate) fn node_uid(&self, name: &str) -> Option<String> {
        lock(&self.inner).nodes.get(name).map(|n| n.uid.clone())
    }

    pub(crate) fn policy(&self) -> auth::Policy {
        auth::Policy {
            cluster_admins: self.settings.version.major == 1 && self.settings.version.minor >= 29,
            kube_proxy: self.settings.kube_proxy,
            kubelet_config_minor: crate::version::legacy_minor(&self.settings.kubelet_config_map)
                .unwrap_or(None),
        }
    }

    // ---- cluster-info -------------------------------------------------------------------

    /// GET kube-public/cluster-info, as the n-th reader sees it (the hook applies).
    pub(crate) fn cluster_info(&self) -> ConfigMap {
        self.cluster_info_view(true)
    }

    fn cluster_info_view(&self, get: bool) -> ConfigMap {
        let now = SystemTime::now();
        let (n, cm) = {
            let mut inner = lock(&self.inner);
            // The bootstrap signer lags: the jws keys appear only `signer_delay` after a write.
            if inner.cluster_info.signed_at.is_none()
                && inner.cluster_info.written.elapsed() >= self.settings.signer_delay
            {
                inner.cluster_info.signed_at = Some(now);
                inner.cluster_info.rv = inner.next_rv();
            }
            if get {
                inner.cluster_info.gets += 1;
            }
            let ci = &inner.cluster_info;
            let mut data = BTreeMap::new();
            data.insert("kubeconfig".to_string(), ci.kubeconfig.clone());
            let mut managed = vec![ManagedFieldsEntry::update(
                "kubeadm",
                ts(ci.written_at),
                json!({"f:data": {".": {}, "f:kubeconfig": {}}}),
            )];
            if let Some(signed_at) = ci.signed_at {
                let mut fields = serde_json::Map::new();
                for t in self.signing_tokens(now) {
                    let key = format!("jws-kubeconfig-{}", t.id);
                    data.insert(
                        key.clone(),
                        jws::compute_detached_signature(&ci.kubeconfig, &t.id, &t.secret),
                    );
                    fields.insert(format!("f:{key}"), json!({}));
                }
                if !fields.is_empty() {
                    managed.push(ManagedFieldsEntry::update(
                        "kube-controller-manager",
                        ts(signed_at),
                        json!({ "f:data": fields }),
                    ));
                }
            }
            let cm = ConfigMap {
                kind: Some("ConfigMap"),
                api_version: Some("v1"),
                metadata: ObjectMeta {
                    name: "cluster-info".into(),
                    namespace: "kube-public".into(),
                    uid: ci.uid.clone(),
                    resource_version: ci.rv.to_string(),
                    creation_timestamp: ts(ci.created),
                    managed_fields: managed,
                    ..ObjectMeta::default()
                },
                data,
            };
            (ci.gets, cm)
        };
        // The hook runs outside the lock: it is test code and may call back into the handle.
        match &self.settings.hook {
            Some(hook) if get => {
                let mut cm = cm;
                hook(n, &mut cm.data);
                cm
            }
            _ => cm,
        }
    }

    /// Tokens the bootstrap signer signs for: signing usage, not expired.
    fn signing_tokens(&self, now: SystemTime) -> impl Iterator<Item = &TokenSpec> {
        self.settings
            .tokens
            .iter()
            .filter(move |t| t.signing && t.expires.is_none_or(|e| e > now))
    }

    pub(crate) fn rewrite_cluster_info(&self) {
        let mut inner = lock(&self.inner);
        inner.cluster_info.written = Instant::now();
        inner.cluster_info.written_at = SystemTime::now();
        inner.cluster_info.signed_at = None;
        inner.cluster_info.rv = inner.next_rv();
    }

    // ---- kube-system ConfigMaps ---------------------------------------------------------

    pub(crate) fn configmap(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        if namespace == "kube-public" && name == "cluster-info" {
            return Some(self.cluster_info());
        }
        let inner = lock(&self.inner);
        let cm = inner
            .configmaps
            .get(&(namespace.to_string(), name.to_string()))?;
        Some(configmap_json(namespace, name, cm))
    }

    pub(crate) fn list_configmaps(&self, namespace: &str) -> List<ConfigMap> {
        let mut items: Vec<ConfigMap> = Vec::new();
        if namespace.is_empty() || namespace == "kube-public" {
            let mut ci = self.cluster_info_view(false);
            ci.kind = None;
            ci.api_version = None;
            items.push(ci);
        }
        let inner = lock(&self.inner);
        for ((ns, name), cm) in &inner.configmaps {
            if namespace.is_empty() || namespace == ns {
                let mut item = configmap_json(ns, name, cm);
                item.kind = None;
                item.api_version = None;
                items.push(item);
            }
        }
        List {
            kind: "ConfigMapList",
            api_version: "v1",
            metadata: list_meta(inner.rv),
            items,
        }
    }

    // ---- Nodes --------------------------------------------------------------------------

    pub(crate) fn add_node(&self, spec: NodeSpec) {
        let mut inner = lock(&self.inner);
        insert_node(&mut inner, spec);
    }

    pub(crate) fn node(&self, name: &str) -> Option<Node> {
        let inner = lock(&self.inner);
        inner
            .nodes
            .get(name)
            .map(|n| node_json(name, n, &self.settings.kubernetes_version))
    }

    pub(crate) fn list_nodes(&self) -> List<Node> {
        let inner = lock(&self.inner);
        List {
            kind: "NodeList",
            api_version: "v1",
            metadata: list_meta(inner.rv),
            items: inner
                .nodes
                .iter()
                .map(|(name, n)| {
                    let mut node = node_json(name, n, &self.settings.kubernetes_version);
                    node.kind = None;
                    node.api_version = None;
                    node
                })
                .collect(),
        }
    }

    /// A strategic merge or JSON merge patch of the Node's labels, annotations and taints
    /// (`nodepatch.rs`); a node changing its own Node is held to NodeRestriction.
    pub(crate) fn patch_node(
        &self,
        name: &str,
        patch: &serde_json::Value,
        user: &User,
    ) -> Result<Node, Status> {
        let mut inner = lock(&self.inner);
        let Some(node) = inner.nodes.get(name) else {
            return Err(Status::not_found(NODES, name));
        };
        let old = crate::nodepatch::NodeView {
            labels: node.labels.clone(),
            annotations: node.annotations.clone(),
            taints: node.taints.clone(),
        };
        let mut new = crate::nodepatch::apply(&old, patch).map_err(Status::bad_request)?;
        // The Node strategy stamps NoExecute taints with the time they were added.
        for t in &mut new.taints {
            if t.effect == "NoExecute" && t.time_added.is_empty() {
                t.time_added = ts(SystemTime::now());
            }
        }
        let errs = crate::nodepatch::validate(&new);
        if !errs.is_empty() {
            return Err(Status::invalid("", "Node", name, &errs));
        }
        if user.node_name() == Some(name) {
            crate::nodepatch::node_restriction(name, &old, &new).map_err(|why| {
                Status::forbidden(Some((NODES.group, NODES.resource)), name, &why)
            })?;
        }
        let rv = inner.next_rv();
        let Some(node) = inner.nodes.get_mut(name) else {
            return Err(Status::not_found(NODES, name));
        };
        if new.labels != node.labels
            || new.annotations != node.annotations
            || new.taints != node.taints
        {
            node.labels = new.labels;
            node.annotations = new.annotations;
            node.taints = new.taints;
            node.rv = rv;
        }
        Ok(node_json(name, node, &self.settings.kubernetes_version))
    }

    // ---- CSRs ---------------------------------------------------------------------------

    /// Create: validation (422), admission (403), storage (409), then the ADDED event.
    pub(crate) fn create_csr(
        &self,
        new: NewCsr,
        generate_name: &str,
        user: &User,
    ) -> Result<Csr, Status> {
        let mut new = new;
        let mut inner = lock(&self.inner);
        if new.name.is_empty() && !generate_name.is_empty() {
            // The generator can collide; the apiserver surfaces that as a conflict, a test
            // server just draws again.
            new.name = util::generate_name(generate_name);
            for _ in 0..8 {
                if !inner.csrs.contains_key(&new.name) {
                    break;
                }
                new.name = util::generate_name(generate_name);
            }
        }
        let errs = csr::validate_create(&new);
        if !errs.is_empty() {
            return Err(Status::invalid(
                "certificates.k8s.io",
                "CertificateSigningRequest",
                &new.name,
                &errs,
            ));
        }
        let parsed = csr::parse_request(new.request.as_deref().unwrap_or_default())
            .map_err(|e| Status::internal(&e.to_string()))?;
        // The CertificateSubjectRestriction admission plugin.
        if new.signer_name == csr::APISERVER_CLIENT_SIGNER
            && parsed
                .subject
                .organization
                .iter()
                .any(|o| o == auth::MASTERS)
        {
            return Err(Status::forbidden(
                Some((CSRS.group, CSRS.resource)),
                &new.name,
                "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed",
            ));
        }
        if inner.csrs.contains_key(&new.name) {
            return Err(Status::already_exists(CSRS, &new.name));
        }
        let rv = inner.next_rv();
        let obj = Csr {
            kind: Some("CertificateSigningRequest"),
            api_version: Some("certificates.k8s.io/v1"),
            metadata: ObjectMeta {
                name: new.name.clone(),
                generate_name: generate_name.to_string(),
                uid: util::uuid(),
                resource_version: rv.to_string(),
                creation_timestamp: ts(SystemTime::now()),
                ..ObjectMeta::default()
            },
            spec: CsrSpec {
                request: STANDARD.encode(new.request.as_deref().unwrap_or_default()),
                signer_name: new.signer_name,
                expiration_seconds: new.expiration_seconds,
                usages: new.usages,
                username: user.name.clone(),
                uid: String::new(),
                groups: user.groups.clone(),
                extra: BTreeMap::new(),
            },
            status: CsrStatus::default(),
        };
        inner.csrs.insert(obj.metadata.name.clone(), obj.clone());
        inner.push_event("ADDED", obj.clone(), rv);
        self.events.send_replace(rv);
        Ok(obj)
    }

    pub(crate) fn get_csr(&self, name: &str) -> Option<Csr> {
        lock(&self.inner).csrs.get(name).cloned()
    }

    pub(crate) fn csr_values(&self) -> Vec<serde_json::Value> {
        lock(&self.inner)
            .csrs
            .values()
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect()
    }

    pub(crate) fn list_csrs(&self, filter: &CsrFilter) -> List<Csr> {
        let inner = lock(&self.inner);
        List {
            kind: "CertificateSigningRequestList",
            api_version: "certificates.k8s.io/v1",
            metadata: list_meta(inner.rv),
            items: inner
                .csrs
                .values()
                .filter(|c| filter.matches(c))
                .map(Csr::as_item)
                .collect(),
        }
    }

    pub(crate) fn delete_csr(&self, name: &str) -> Result<Status, Status> {
        let mut inner = lock(&self.inner);
        let Some(mut obj) = inner.csrs.remove(name) else {
            return Err(Status::not_found(CSRS, name));
        };
        let rv = inner.next_rv();
        obj.metadata.resource_version = rv.to_string();
        let uid = obj.metadata.uid.clone();
        inner.push_event("DELETED", obj, rv);
        self.events.send_replace(rv);
        Ok(Status::deleted(CSRS, name, &uid))
    }

    /// Where a watch starts; `Err` is the 410 a too-old version gets.
    pub(crate) fn watch_start(
        &self,
        resource_version: Option<u64>,
        filter: &CsrFilter,
    ) -> Result<WatchStart, Status> {
        let inner = lock(&self.inner);
        match resource_version {
            None | Some(0) => Ok(WatchStart::Snapshot {
                objects: inner
                    .csrs
                    .values()
                    .filter(|c| filter.matches(c))
                    .cloned()
                    .collect(),
                rv: inner.rv,
            }),
            Some(rv) => {
                // The watch cache can serve from one past the version it was listed at, or
                // from its oldest kept event once older ones were dropped.
                let oldest = match inner.history.events.front() {
                    Some(first) if inner.history.evicted => first.rv,
                    _ => inner.list_rv + 1,
                };
                if rv < oldest - 1 {
                    return Err(Status::expired(format!(
                        "too old resource version: {rv} ({})",
                        oldest - 1
                    )));
                }
                Ok(WatchStart::Resume {
                    events: events_after(&inner, rv, filter),
                    rv: inner.rv.max(rv),
                })
            }
        }
    }

    /// Kept events newer than `rv` that match, and the version they bring the watcher to;
    /// `Err` if the watcher fell out of the history.
    pub(crate) fn events_after(
        &self,
        rv: u64,
        filter: &CsrFilter,
    ) -> Result<(Vec<Event>, u64), Status> {
        let inner = lock(&self.inner);
        if inner.history.evicted
            && inner
                .history
                .events
                .front()
                .is_some_and(|e| e.rv > rv.saturating_add(1))
        {
            let oldest = inner.history.events.front().map_or(rv, |e| e.rv);
            return Err(Status::expired(format!(
                "too old resource version: {rv} ({})",
                oldest - 1
            )));
        }
        Ok((events_after(&inner, rv, filter), inner.rv.max(rv)))
    }

    /// PUT .../approval: only `status.conditions` is taken from the body.
    pub(crate) fn update_approval(
        &self,
        name: &str,
        body_name: &str,
        body_rv: &str,
        conditions: Vec<CsrCondition>,
    ) -> Result<Csr, Status> {
        let mut inner = lock(&self.inner);
        let Some(old) = inner.csrs.get(name).cloned() else {
            return Err(Status::not_found(CSRS, name));
        };
        if !body_name.is_empty() && body_name != name {
            return Err(Status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if !body_rv.is_empty() && body_rv != old.metadata.resource_version {
            return Err(Status::conflict(
                CSRS,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let now = ts(SystemTime::now());
        let mut conditions = conditions;
        for c in &mut conditions {
            if c.last_update_time.is_empty() {
                c.last_update_time = now.clone();
            }
            if c.last_transition_time.is_empty() {
                c.last_transition_time = old
                    .status
                    .conditions
                    .iter()
                    .find(|o| {
                        o.type_ == c.type_
                            && o.status == c.status
                            && !o.last_transition_time.is_empty()
                    })
                    .map_or_else(|| now.clone(), |o| o.last_transition_time.clone());
            }
        }
        let errs = validate_approval_update(&old.status.conditions, &conditions);
        if !errs.is_empty() {
            return Err(Status::invalid(
                "certificates.k8s.io",
                "CertificateSigningRequest",
                name,
                &errs,
            ));
        }
        if conditions == old.status.conditions {
            return Ok(old);
        }
        let rv = inner.next_rv();
        let mut updated = old;
        updated.status.conditions = conditions;
        updated.metadata.resource_version = rv.to_string();
        inner.csrs.insert(name.to_string(), updated.clone());
        inner.push_event("MODIFIED", updated.clone(), rv);
        self.run_signer(&mut inner, name);
        self.events.send_replace(inner.rv);
        Ok(updated)
    }

    /// Appends an Approved or Denied condition, as `kubectl certificate approve|deny` would.
    pub(crate) fn decide(
        &self,
        name: &str,
        approve: bool,
        reason: &str,
        message: &str,
    ) -> Result<(), crate::Error> {
        let (want, other) = if approve {
            ("Approved", "Denied")
        } else {
            ("Denied", "Approved")
        };
        let mut inner = lock(&self.inner);
        let Some(csr) = inner.csrs.get(name) else {
            return Err(crate::Error::NotFound(name.to_string()));
        };
        if csr.has_condition(other) {
            return Err(crate::Error::Conflict {
                name: name.to_string(),
                reason: format!("it is already {}", other.to_lowercase()),
            });
        }
        if csr.has_condition(want) {
            return Ok(());
        }
        let now = ts(SystemTime::now());
        self.add_condition(
            &mut inner,
            name,
            CsrCondition {
                type_: want.to_string(),
                status: "True".to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                last_update_time: now.clone(),
                last_transition_time: now,
            },
        );
        if approve {
            self.run_signer(&mut inner, name);
        }
        self.events.send_replace(inner.rv);
        Ok(())
    }

    /// The csrapproving controller's pass over one CSR (the one created with `uid`).
    pub(crate) fn auto_approve(&self, name: &str, uid: &str) {
        let mut inner = lock(&self.inner);
        let Some(obj) = inner.csrs.get(name) else {
            return;
        };
        if obj.metadata.uid != uid
            || obj.status.certificate.is_some()
            || obj.has_condition("Approved")
            || obj.has_condition("Denied")
        {
            return;
        }
        let Ok(bytes) = STANDARD.decode(obj.spec.request.as_bytes()) else {
            return;
        };
        let Ok(parsed) = csr::parse_request(&bytes) else {
            return;
        };
        let requester = User {
            name: obj.spec.username.clone(),
            groups: obj.spec.groups.clone(),
        };
        let policy = self.policy();
        // The approver's SubjectAccessReview, answered by this server's own authorizer.
        let may_create = |subresource: &str| {
            let ri = RequestInfo {
                is_resource: true,
                verb: "create".into(),
                api_group: "certificates.k8s.io".into(),
                api_version: "v1".into(),
                resource: "certificatesigningrequests".into(),
                subresource: subresource.into(),
                ..RequestInfo::default()
            };
            auth::authorize(&requester, &ri, policy).is_ok()
        };
        let Some(message) = csr::auto_approval(
            &parsed,
            &obj.spec.signer_name,
            &obj.spec.usages,
            &obj.spec.username,
            may_create,
            &self.settings.version,
        ) else {
            // Not recognized or not permitted: it stays pending, with no condition at all.
            return;
        };
        let now = ts(SystemTime::now());
        self.add_condition(
            &mut inner,
            name,
            CsrCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: "AutoApproved".into(),
                message: message.into(),
                last_update_time: now.clone(),
                last_transition_time: now,
            },
        );
        self.run_signer(&mut inner, name);
        self.events.send_replace(inner.rv);
    }

    fn add_condition(&self, inner: &mut Inner, name: &str, condition: CsrCondition) {
        let rv = inner.next_rv();
        let Some(obj) = inner.csrs.get_mut(name) else {
            return;
        };
        obj.status.conditions.push(condition);
        obj.metadata.resource_version = rv.to_string();
        let snapshot = obj.clone();
        inner.push_event("MODIFIED", snapshot, rv);
    }

    /// The csrsigning controller: an approved CSR without a certificate gets one (or a
    /// `Failed` condition), as a separate update after the approval; with
    /// `certificate_delay`, that update comes later.
    fn run_signer(&self, inner: &mut Inner, name: &str) {
        if let Some(tx) = &self.delayed_signs {
            if let Some(obj) = inner.csrs.get(name) {
                let _ = tx.send((name.to_string(), obj.metadata.uid.clone()));
                return;
            }
        }
        self.sign_now(inner, name);
    }

    /// The receiving end of the delayed approvals, for the task that signs them (once).
    pub(crate) fn take_delayed_signs(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<(String, String)>> {
        lock(&self.delayed_rx).take()
    }

    /// The delayed half of [`State::run_signer`]: signs the CSR if it is still the one that
    /// was approved (same UID) and still needs a certificate.
    pub(crate) fn sign_delayed(&self, name: &str, uid: &str) {
        let mut inner = lock(&self.inner);
        if inner.csrs.get(name).is_none_or(|c| c.metadata.uid != uid) {
            return;
        }
        self.sign_now(&mut inner, name);
        self.events.send_replace(inner.rv);
    }

    fn sign_now(&self, inner: &mut Inner, name: &str) {
        let Some(obj) = inner.csrs.get(name) else {
            return;
        };
        if !obj.has_condition("Approved")
            || obj.has_condition("Denied")
            || obj.has_condition("Failed")
            || obj.status.certificate.is_some()
        {
            return;
        }
        let Ok(bytes) = STANDARD.decode(obj.spec.request.as_bytes()) else {
            return;
        };
        let Ok(parsed) = csr::parse_request(&bytes) else {
            return;
        };
        let outcome = csr::sign(
            &self.ca,
            &parsed,
            &obj.spec.signer_name,
            &obj.spec.usages,
            obj.spec.expiration_seconds,
            SystemTime::now(),
            &self.settings.version,
        );
        match outcome {
            Signing::Issued(der) => {
                let rv = inner.next_rv();
                let Some(obj) = inner.csrs.get_mut(name) else {
                    return;
                };
                obj.status.certificate =
                    Some(STANDARD.encode(pki::pem_encode("CERTIFICATE", &der).as_bytes()));
                obj.metadata.resource_version = rv.to_string();
                let snapshot = obj.clone();
                let kubelet_client = snapshot.spec.signer_name == csr::KUBELET_CLIENT_SIGNER;
                inner.push_event("MODIFIED", snapshot, rv);
                // The kubelet that gets a client certificate registers its Node next.
                if let Some(tx) = &self.registrations {
                    if let Some(node) = parsed
                        .subject
                        .common_name
                        .strip_prefix("system:node:")
                        .filter(|_| kubelet_client)
                    {
                        let _ = tx.send(node.to_string());
                    }
                }
            }
            Signing::Failed(message) => {
                let now = ts(SystemTime::now());
                self.add_condition(
                    inner,
                    name,
                    CsrCondition {
                        type_: "Failed".into(),
                        status: "True".into(),
                        reason: "SignerValidationFailure".into(),
                        message,
                        last_update_time: now.clone(),
                        last_transition_time: now,
                    },
                );
            }
            Signing::NotMine => {}
        }
    }

    // ---- request log --------------------------------------------------------------------

    /// Stores a record; returns its id for later byte counting. `finished` records go to the
    /// log file at once, streaming ones when `finish_record` is called.
    pub(crate) fn record(&self, rec: RequestRecord, finished: bool) -> usize {
        let mut r = lock(&self.records);
        if finished {
            write_log_line(&mut r.log, &rec);
        }
        r.list.push_back(rec);
        if r.list.len() > MAX_RECORDS {
            r.list.pop_front();
            r.offset += 1;
        }
        r.offset + r.list.len() - 1
    }

    pub(crate) fn update_record(&self, id: usize, f: impl FnOnce(&mut RequestRecord)) {
        let mut r = lock(&self.records);
        let offset = r.offset;
        if let Some(rec) = id.checked_sub(offset).and_then(|i| r.list.get_mut(i)) {
            f(rec);
        }
    }

    pub(crate) fn add_response_bytes(&self, id: usize, n: u64) {
        self.update_record(id, |rec| rec.response_bytes += n);
    }

    pub(crate) fn finish_record(&self, id: usize) {
        let mut r = lock(&self.records);
        let offset = r.offset;
        let rec = id.checked_sub(offset).and_then(|i| r.list.get(i)).cloned();
        if let Some(rec) = rec {
            write_log_line(&mut r.log, &rec);
        }
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.records).list.iter().cloned().collect()
    }

    /// The records from id `from` on (or from the oldest one kept), with the id of the first.
    /// Copies only those: a caller that follows the log copies each record about once instead
    /// of the whole log, and holds the lock every request handler takes that much shorter.
    pub(crate) fn requests_from(&self, from: usize) -> (usize, Vec<RequestRecord>) {
        let r = lock(&self.records);
        let first = from.max(r.offset);
        let skip = first - r.offset;
        (first, r.list.iter().skip(skip).cloned().collect())
    }

    pub(crate) fn set_request_log(&self, file: File) {
        lock(&self.records).log = Some(file);
    }
}

fn write_log_line(log: &mut Option<File>, rec: &RequestRecord) {
    let Some(file) = log else { return };
    let line = json!({
        "time": util::rfc3339_millis(rec.time),
        "method": rec.method,
        "path": rec.path,
        "user": rec.user,
        "status": rec.status,
        "request_bytes": rec.request_bytes,
        "response_bytes": rec.response_bytes,
        "authorization": rec.authorization,
        "fault": rec.fault,
        "connection": rec.connection,
    });
    // One write per line, formatted in memory first (formatting straight into the file would
    // be a write(2) per fragment); O_APPEND keeps concurrent lines whole for readers tailing it.
    // The log is a debugging aid: a failed write must not fail the request.
    let mut text = line.to_string();
    text.push('\n');
    let _ = file.write_all(text.as_bytes());
}

/// The kept events newer than `rv` that match `filter`. The history is in resource-version
/// order, so the search starts at the first newer event: a watcher woken by one new event looks
/// at that event, not at the whole history. (A full scan per wake-up made the server's CPU grow
/// with watchers × history: with 1,000 nodes watching their CSRs, every event woke 1,000 scans
/// of 1,000 events under the state lock, and the requests queued behind it met the
/// max-in-flight cap. kube-apiserver's watch cache hands each event to each watcher once.)
fn events_after(inner: &Inner, rv: u64, filter: &CsrFilter) -> Vec<Event> {
    let first = inner.history.events.partition_point(|e| e.rv <= rv);
    inner
        .history
        .events
        .range(first..)
        .filter(|e| filter.matches(&e.object))
        .cloned()
        .collect()
}

fn validate_approval_update(old: &[CsrCondition], new: &[CsrCondition]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in new.iter().enumerate() {
        let path = format!("status.conditions[{i}]");
        if c.type_.is_empty() {
            errs.push(FieldError::required(&format!("{path}.type"), ""));
        }
        if matches!(c.type_.as_str(), "Approved" | "Denied" | "Failed") {
            if c.status != "True" {
                errs.push(FieldError::not_supported(
                    &format!("{path}.status"),
                    &crate::objects::quote(&c.status),
                    &["True"],
                ));
            }
        } else if !matches!(c.status.as_str(), "True" | "False" | "Unknown") {
            errs.push(FieldError::not_supported(
                &format!("{path}.status"),
                &crate::objects::quote(&c.status),
                &["False", "True", "Unknown"],
            ));
        }
        if seen.contains(&c.type_.as_str()) {
            errs.push(FieldError::duplicate(
                &format!("{path}.type"),
                &crate::objects::quote(&c.type_),
            ));
        }
        seen.push(&c.type_);
        match c.type_.as_str() {
            "Approved" => {
                approved = true;
                if denied {
                    errs.push(FieldError::invalid(
                        &format!("{path}.type"),
                        "\"Approved\"",
                        "Approved and Denied conditions are mutually exclusive",
                    ));
                }
            }
            "Denied" => {
                denied = true;
                if approved {
                    errs.push(FieldError::invalid(
                        &format!("{path}.type"),
                        "\"Denied\"",
                        "Approved and Denied conditions are mutually exclusive",
                    ));
                }
            }
            _ => {}
        }
    }
    for t in ["Approved", "Denied"] {
        let olds: Vec<&CsrCondition> = old.iter().filter(|c| c.type_ == t).collect();
        let news: Vec<&CsrCondition> = new.iter().filter(|c| c.type_ == t).collect();
        if news.len() < olds.len() {
            errs.push(FieldError::forbidden(
                "status.conditions",
                &format!("updates may not remove a condition of type \"{t}\""),
            ));
        } else if olds
            .iter()
            .zip(&news)
            .any(|(o, n)| o.status != n.status || o.reason != n.reason || o.message != n.message)
        {
            errs.push(FieldError::forbidden(
                "status.conditions",
                &format!("updates may not modify a condition of type \"{t}\""),
            ));
        }
    }
    errs
}

fn list_meta(rv: u64) -> ObjectMeta {
    ObjectMeta {
        resource_version: rv.to_string(),
        ..ObjectMeta::default()
    }
}

fn configmap_json(namespace: &str, name: &str, cm: &StoredConfigMap) -> ConfigMap {
    let mut fields = serde_json::Map::new();
    fields.insert(".".into(), json!({}));
    for key in cm.data.keys() {
        fields.insert(format!("f:{key}"), json!({}));
    }
    let mut managed_fields = serde_json::Map::new();
    managed_fields.insert("f:data".into(), serde_json::Value::Object(fields));
    if !cm.labels.is_empty() {
        let mut labels = serde_json::Map::new();
        labels.insert(".".into(), json!({}));
        for key in cm.labels.keys() {
            labels.insert(format!("f:{key}"), json!({}));
        }
        managed_fields.insert("f:metadata".into(), json!({ "f:labels": labels }));
    }
    ConfigMap {
        kind: Some("ConfigMap"),
        api_version: Some("v1"),
        metadata: ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            uid: cm.uid.clone(),
            resource_version: cm.rv.to_string(),
            creation_timestamp: ts(cm.created),
            labels: cm.labels.clone(),
            managed_fields: vec![ManagedFieldsEntry::update(
                "kubeadm",
                ts(cm.created),
                serde_json::Value::Object(managed_fields),
            )],
            ..ObjectMeta::default()
        },
        data: cm.data.clone(),
    }
}

fn insert_node(inner: &mut Inner, spec: NodeSpec) {
    let rv = inner.next_rv();
    let now = SystemTime::now();
    let index = match inner.nodes.get(&spec.name) {
        Some(existing) => existing.index,
        None => {
            inner.node_seq += 1;
            inner.node_seq
        }
    };
    let uid = inner
        .nodes
        .get(&spec.name)
        .map_or_else(util::uuid, |n| n.uid.clone());
    let labels: BTreeMap<String, String> = [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/hostname", spec.name.as_str()),
        ("kubernetes.io/os", "linux"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations: BTreeMap<String, String> = [
        (
            "kubeadm.alpha.kubernetes.io/cri-socket",
            "unix:///var/run/containerd/containerd.sock",
        ),
        ("node.alpha.kubernetes.io/ttl", "0"),
        (
            "volumes.kubernetes.io/controller-managed-attach-detach",
            "true",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let name = spec.name.clone();
    let taints = if spec.ready {
        Vec::new()
    } else {
        vec![Taint {
            key: "node.kubernetes.io/not-ready".into(),
            value: String::new(),
            effect: "NoSchedule".into(),
            time_added: String::new(),
        }]
    };
    inner.nodes.insert(
        name,
        StoredNode {
            ready: spec.ready,
            taints,
            index,
            uid,
            created: now,
            rv,
            labels,
            annotations,
            ids: [util::uuid().replace('-', ""), util::uuid(), util::uuid()],
        },
    );
}

fn node_json(name: &str, n: &StoredNode, version: &str) -> Node {
    let created = ts(n.created);
    let pressure = |type_, reason, message| NodeCondition {
        type_,
        status: "False",
        last_heartbeat_time: created.clone(),
        last_transition_time: created.clone(),
        reason,
        message,
    };
    let mut conditions = vec![
        pressure(
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        pressure(
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        pressure(
            "PIDPressure",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
    ];
    conditions.push(if n.ready {
        NodeCondition {
            type_: "Ready",
            status: "True",
            last_heartbeat_time: created.clone(),
            last_transition_time: created.clone(),
            reason: "KubeletReady",
            message: "kubelet is posting ready status",
        }
    } else {
        NodeCondition {
            type_: "Ready",
            status: "False",
            last_heartbeat_time: created.clone(),
            last_transition_time: created.clone(),
            reason: "KubeletNotReady",
            message: "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
        }
    });
    let cidr = format!("10.244.{}.0/24", n.index % 256);
    let taints = n.taints.clone();
    Node {
        kind: Some("Node"),
        api_version: Some("v1"),
        metadata: ObjectMeta {
            name: name.into(),
            uid: n.uid.clone(),
            resource_version: n.rv.to_string(),
            creation_timestamp: created.clone(),
            labels: n.labels.clone(),
            annotations: n.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: NodeSpecJson {
            pod_cidr: cidr.clone(),
            pod_cidrs: vec![cidr],
            taints,
        },
        status: NodeStatus {
            conditions,
            // Documentation range (RFC 5737): node addresses are data, never dialled.
            addresses: vec![
                NodeAddress {
                    type_: "InternalIP",
                    address: format!("192.0.2.{}", 10 + n.index % 200),
                },
                NodeAddress {
                    type_: "Hostname",
                    address: name.into(),
                },
            ],
            daemon_endpoints: json!({"kubeletEndpoint": {"Port": 10250}}),
            node_info: NodeInfo {
                machine_id: n.ids[0].clone(),
                system_uuid: n.ids[1].clone(),
                boot_id: n.ids[2].clone(),
                kernel_version: "6.1.0-28-amd64".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                container_runtime_version: "containerd://1.7.24".into(),
                kubelet_version: version.into(),
                kube_proxy_version: String::new(),
                operating_system: "linux".into(),
                architecture: "amd64".into(),
            },
        },
    }
}

/// The data of `kube-system/kubeadm-config` (see `kubeadm_config.rs`): `ClusterConfiguration`,
/// and `ClusterStatus` where the kubeadm that wrote it still kept one (up to v1.21).
fn kubeadm_config_data(s: &Settings) -> BTreeMap<String, String> {
    let endpoint = s
        .server_url
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let v = &s.kubeadm_config_version;
    let facts = crate::kubeadm_config::Facts {
        api: v.kubeadm_config_api(),
        cluster_name: &s.cluster_name,
        default_endpoint: endpoint,
        image_repository: &s.image_repository,
        kubernetes_version: &v.text,
        unversioned_kubelet_config_map: s.unversioned_kubelet_config_map,
    };
    let mut data = BTreeMap::new();
    data.insert(
        "ClusterConfiguration".to_string(),
        crate::kubeadm_config::cluster_configuration(&facts, &s.cluster, &s.etcd),
    );
    if crate::controlplane::rules(v).cluster_status {
        data.insert(
            "ClusterStatus".to_string(),
            crate::kubeadm_config::cluster_status(std::slice::from_ref(&s.api_endpoint)),
        );
    }
    data
}

/// The captured `kubelet-config` document (kubeadm 1.28), with the standard CA path.
pub(crate) const KUBELET_CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    cacheTTL: 0s\n    enabled: true\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\nauthorization:\n  mode: Webhook\n  webhook:\n    cacheAuthorizedTTL: 0s\n    cacheUnauthorizedTTL: 0s\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\ncontainerRuntimeEndpoint: \"\"\ncpuManagerReconcilePeriod: 0s\nevictionPressureTransitionPeriod: 0s\nfileCheckFrequency: 0s\nhealthzBindAddress: 127.0.0.1\nhealthzPort: 10248\nhttpCheckFrequency: 0s\nimageMinimumGCAge: 0s\nkind: KubeletConfiguration\nlogging:\n  flushFrequency: 0\n  options:\n    json:\n      infoBufferSize: \"0\"\n  verbosity: 0\nmemorySwap: {}\nnodeStatusReportFrequency: 0s\nnodeStatusUpdateFrequency: 0s\nrotateCertificates: true\nruntimeRequestTimeout: 0s\nshutdownGracePeriod: 0s\nshutdownGracePeriodCriticalPods: 0s\nstaticPodPath: /etc/kubernetes/manifests\nstreamingConnectionIdleTimeout: 0s\nsyncFrequency: 0s\nvolumeStatsAggPeriod: 0s\n";

/// kube-proxy's `config.conf` as the kubeadm addon writes it (abridged to the fields kubeadm
/// itself sets or reads).
const KUBE_PROXY_CONFIG: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nbindAddress: 0.0.0.0\nbindAddressHardFail: false\nclientConnection:\n  acceptContentTypes: \"\"\n  burst: 0\n  contentType: \"\"\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n  qps: 0\nclusterCIDR: 10.244.0.0/16\nconfigSyncPeriod: 0s\nconntrack:\n  maxPerCore: null\n  min: null\n  tcpCloseWaitTimeout: null\n  tcpEstablishedTimeout: null\ndetectLocalMode: \"\"\nenableProfiling: false\nhealthzBindAddress: \"\"\nhostnameOverride: \"\"\niptables:\n  localhostNodePorts: null\n  masqueradeAll: false\n  masqueradeBit: null\n  minSyncPeriod: 0s\n  syncPeriod: 0s\nipvs:\n  excludeCIDRs: null\n  minSyncPeriod: 0s\n  scheduler: \"\"\n  strictARP: false\n  syncPeriod: 0s\n  tcpFinTimeout: 0s\n  tcpTimeout: 0s\n  udpTimeout: 0s\nkind: KubeProxyConfiguration\nmetricsBindAddress: \"\"\nmode: \"\"\nnodePortAddresses: null\noomScoreAdj: null\nportRange: \"\"\nshowHiddenMetricsForVersion: \"\"\nwinkernel:\n  enableDSR: false\n  forwardHealthCheckVip: false\n  networkName: \"\"\n  rootHnsEndpointName: \"\"\n  sourceVip: \"\"\n";

fn kube_proxy_kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: {server}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    namespace: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(rv: u64, at: Instant) -> Event {
        Event {
            rv,
            type_: "ADDED",
            object: Csr {
                kind: None,
                api_version: None,
                metadata: ObjectMeta::default(),
                spec: CsrSpec {
                    request: String::new(),
                    signer_name: String::new(),
                    expiration_seconds: None,
                    usages: Vec::new(),
                    username: String::new(),
                    uid: String::new(),
                    groups: Vec::new(),
                    extra: BTreeMap::new(),
                },
                status: CsrStatus::default(),
            },
            at,
        }
    }

    #[test]
    fn the_watch_history_keeps_75_seconds_of_a_burst_as_kube_apiserver_does() {
        let t0 = Instant::now();
        let mut h = History::new();
        // 30,000 events within a few seconds (a 10,000-node fleet's CSRs): nothing is dropped,
        // the window grew 100 -> 200 -> ... -> 51,200.
        for rv in 1..=30_000 {
            h.push(event(rv, t0 + Duration::from_micros(rv * 100)));
        }
        assert_eq!(h.events.len(), 30_000);
        assert!(!h.evicted);
        assert_eq!(h.capacity, 51_200);
        assert_eq!(h.events.front().map(|e| e.rv), Some(1));
        // At the upper bound the oldest go.
        let mut h = History::new();
        for rv in 1..=(HISTORY_UPPER as u64 + 10) {
            h.push(event(rv, t0));
        }
        assert_eq!(h.capacity, HISTORY_UPPER);
        assert_eq!(h.events.len(), HISTORY_UPPER);
        assert!(h.evicted);
        assert_eq!(h.events.front().map(|e| e.rv), Some(11));
    }

    #[test]
    fn a_slow_trickle_keeps_the_lower_bound_and_the_window_shrinks_back() {
        let t0 = Instant::now();
        // One event a second: when the 100-event window is full its oldest is 99 s old (> 75 s):
        // no growth, the oldest is dropped.
        let mut h = History::new();
        for rv in 1..=150 {
            h.push(event(rv, t0 + Duration::from_secs(rv)));
        }
        assert_eq!((h.capacity, h.events.len()), (HISTORY_LOWER, HISTORY_LOWER));
        assert!(h.evicted);
        assert_eq!(h.events.front().map(|e| e.rv), Some(51));
        // A burst grows it to 400; then, once the newest quarter began more than 75 s before
        // an event, the window halves (and drops what no longer fits).
        let mut h = History::new();
        for rv in 1..=400 {
            h.push(event(rv, t0));
        }
        assert_eq!(h.capacity, 400);
        h.push(event(401, t0 + Duration::from_secs(80)));
        assert_eq!((h.capacity, h.events.len()), (200, 200));
        assert_eq!(h.events.front().map(|e| e.rv), Some(202));
    }

    #[test]
    fn the_kubelet_config_is_the_capture_with_the_standard_ca_path() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../fixtures/apiserver/kubelet-config.json"))
                .unwrap();
        let captured = fixture["data"]["kubelet"].as_str().unwrap();
        assert_eq!(
            captured.replace("/tmp/realcp/pki/ca.crt", "/etc/kubernetes/pki/ca.crt"),
            KUBELET_CONFIG
        );
    }

    #[test]
    fn approval_updates_may_not_flip_or_remove_decisions() {
        let cond = |t: &str| CsrCondition {
            type_: t.into(),
            status: "True".into(),
            reason: "R".into(),
            message: "M".into(),
            last_update_time: "x".into(),
            last_transition_time: "x".into(),
        };
        assert!(validate_approval_update(&[], &[cond("Approved")]).is_empty());
        let both = validate_approval_update(&[], &[cond("Approved"), cond("Denied")]);
        assert_eq!(both.len(), 1);
        assert_eq!(
            both[0].body,
            "Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
        );
        let removed = validate_approval_update(&[cond("Approved")], &[]);
        assert_eq!(
            removed[0].body,
            "Forbidden: updates may not remove a condition of type \"Approved\""
        );
    }
}
