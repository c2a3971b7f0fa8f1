//! A fake etcd for stacked-etcd clusters: the v3 JSON gateway (grpc-gateway on the client
//! port) over mutual TLS, with the member calls a joining control plane makes, etcd's
//! membership rules, and faults. Every call is recorded.
//!
//! Wire conventions (etcd 3.4/3.5: grpc-gateway v1 with the `JSONPb{OrigName: true}`
//! marshaller): proto field names (`cluster_id`, `ID`, `peerURLs`, `isLearner`), 64-bit
//! integers as decimal strings, zero values left out; fields in proto order. Errors: the
//! gRPC status as `{"error":MSG,"code":N,"message":MSG}` with the HTTP status grpc-gateway maps
//! the code to (FailedPrecondition and InvalidArgument 400, NotFound 404, Unavailable 503).
//! Messages are etcd's `rpctypes` (read). TLS: the serving certificate comes from the etcd CA
//! (CN = the first node's name, SANs: it, localhost, 127.0.0.1, ::1, as kubeadm's
//! `etcd/server`), and a client certificate from that CA is required (`--client-cert-auth`).
//!
//! Membership rules modelled from etcd's `RaftCluster` (read in etcd's source, not at a tag):
//! a peer URL already used by a member is refused; at most one learner (etcd 3.5's
//! `maxLearners`); a voting member is only added when the started voting members would keep
//! quorum (a one-member cluster may always grow to two); a learner is promoted only once it is
//! in sync, which here means "started" (see `EtcdOptions::member_start`). An added member has
//! no name until its etcd starts and publishes it; this model never learns the name on its own
//! (use `Handle::etcd_member_started`).

use crate::controlplane::EtcdOptions;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

const MAX_BODY: usize = 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// gRPC codes etcd's membership errors use.
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNAVAILABLE: i32 = 14;
}

/// An error etcd answers a member call with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// `etcdserver: unhealthy cluster` (Unavailable).
    Unhealthy,
    /// `etcdserver: too many learner members in cluster`.
    TooManyLearners,
    /// `etcdserver: Peer URLs already exists`.
    PeerUrlExists,
    /// `etcdserver: re-configuration failed due to not enough started members`.
    NotEnoughStarted,
    /// `etcdserver: member ID already exist`.
    MemberExists,
    /// `etcdserver: given member URLs are invalid` (InvalidArgument).
    BadUrls,
    /// `etcdserver: member not found` (NotFound).
    MemberNotFound,
    /// `etcdserver: can only promote a learner member`.
    NotLearner,
    /// `etcdserver: can only promote a learner member which is in sync with leader`.
    LearnerNotReady,
    /// Any other gRPC status.
    Custom { code: i32, message: String },
}

impl EtcdError {
    /// The gRPC code.
    pub fn code(&self) -> i32 {
        match self {
            EtcdError::Unhealthy => code::UNAVAILABLE,
            EtcdError::BadUrls => code::INVALID_ARGUMENT,
            EtcdError::MemberNotFound => code::NOT_FOUND,
            EtcdError::Custom { code, .. } => *code,
            _ => code::FAILED_PRECONDITION,
        }
    }

    /// etcd's message.
    pub fn message(&self) -> String {
        match self {
            EtcdError::Unhealthy => "etcdserver: unhealthy cluster",
            EtcdError::TooManyLearners => "etcdserver: too many learner members in cluster",
            EtcdError::PeerUrlExists => "etcdserver: Peer URLs already exists",
            EtcdError::NotEnoughStarted => {
                "etcdserver: re-configuration failed due to not enough started members"
            }
            EtcdError::MemberExists => "etcdserver: member ID already exist",
            EtcdError::BadUrls => "etcdserver: given member URLs are invalid",
            EtcdError::MemberNotFound => "etcdserver: member not found",
            EtcdError::NotLearner => "etcdserver: can only promote a learner member",
            EtcdError::LearnerNotReady => {
                "etcdserver: can only promote a learner member which is in sync with leader"
            }
            EtcdError::Custom { message, .. } => message,
        }
        .to_string()
    }

    /// The HTTP status grpc-gateway v1 gives the code (`runtime.HTTPStatusFromCode`).
    pub fn http_status(&self) -> u16 {
        match self.code() {
            1 => 499,
            2 | 13 | 15 => 500,
            3 | 9 | 11 => 400,
            4 => 504,
            5 => 404,
            6 | 10 => 409,
            7 => 403,
            8 => 429,
            12 => 501,
            14 => 503,
            16 => 401,
            _ => 500,
        }
    }

    /// The CLI names: `unhealthy`, `too-many-learners`, `peer-url-exists`,
    /// `not-enough-started`, `member-exists`.
    pub fn by_name(name: &str) -> Option<EtcdError> {
        Some(match name {
            "unhealthy" => EtcdError::Unhealthy,
            "too-many-learners" => EtcdError::TooManyLearners,
            "peer-url-exists" => EtcdError::PeerUrlExists,
            "not-enough-started" => EtcdError::NotEnoughStarted,
            "member-exists" => EtcdError::MemberExists,
            _ => return None,
        })
    }
}

/// One etcd member as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    pub id: u64,
    /// Empty until the member's etcd has started and published its name.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
    /// Its etcd runs (and, for a learner, has caught up with the leader).
    pub started: bool,
}

/// One call the gateway answered (or refused at the HTTP level).
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdCall {
    pub method: String,
    pub path: String,
    /// The request body as JSON (`Null` when empty or not JSON).
    pub request: Value,
    pub status: u16,
    /// The etcd error message of a refusal.
    pub error: Option<String>,
    /// CN of the client certificate.
    pub client: String,
    pub time: SystemTime,
}

struct Member {
    public: EtcdMember,
    /// When its etcd starts (`None`: not by itself).
    start_at: Option<Instant>,
}

impl Member {
    fn started(&self, now: Instant) -> bool {
        self.public.started || self.start_at.is_some_and(|t| t <= now)
    }
}

struct Inner {
    members: Vec<Member>,
    calls: Vec<EtcdCall>,
    raft_term: u64,
    promote_not_ready_left: u32,
    refuse_add_left: Option<u32>,
}

/// The fake etcd cluster.
pub(crate) struct Etcd {
    cluster_id: u64,
    /// The member answering (the first node's).
    member_id: u64,
    revision: i64,
    version: &'static str,
    options: EtcdOptions,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_id() -> u64 {
    loop {
        let mut b = [0u8; 8];
        crate::util::random_bytes(&mut b);
        let id = u64::from_le_bytes(b);
        if id != 0 {
            return id;
        }
    }
}

/// The etcd version kubeadm of this Kubernetes minor deploys (`constants.SupportedEtcdVersion`;
/// inferred for older minors, see `docs/control-plane.md` of kubejoin).
pub(crate) fn etcd_version(minor: u32) -> &'static str {
    match minor {
        0..=26 => "3.5.6",
        27 => "3.5.7",
        28..=30 => "3.5.15",
        31..=33 => "3.5.24",
        _ => "3.6.9",
    }
}

impl Etcd {
    pub(crate) fn new(
        url: String,
        first_node: &str,
        peer_host: &str,
        minor: u32,
        options: EtcdOptions,
    ) -> Etcd {
        let member_id = random_id();
        let first = Member {
            public: EtcdMember {
                id: member_id,
                name: first_node.to_string(),
                peer_urls: vec![format!("https://{}", host_port(peer_host, 2380))],
                client_urls: vec![url.clone()],
                is_learner: false,
                started: true,
            },
            start_at: None,
        };
        Etcd {
            cluster_id: random_id(),
            member_id,
            revision: 1234,
            version: etcd_version(minor),
            inner: Mutex::new(Inner {
                members: vec![first],
                calls: Vec::new(),
                raft_term: 2,
                promote_not_ready_left: options.promote_not_ready,
                refuse_add_left: options.refuse_add.as_ref().and_then(|r| r.count),
            }),
            options,
            url,
        }
    }

    pub(crate) fn members(&self) -> Vec<EtcdMember> {
        let now = Instant::now();
        lock(&self.inner)
            .members
            .iter()
            .map(|m| EtcdMember {
                started: m.started(now),
                ..m.public.clone()
            })
            .collect()
    }

    pub(crate) fn calls(&self) -> Vec<EtcdCall> {
        lock(&self.inner).calls.clone()
    }

    /// The member with this first peer URL starts: it publishes its name and client URLs.
    pub(crate) fn member_started(
        &self,
        peer_url: &str,
        name: &str,
        client_urls: &[String],
    ) -> bool {
        let mut inner = lock(&self.inner);
        match inner
            .members
            .iter_mut()
            .find(|m| m.public.peer_urls.first().map(String::as_str) == Some(peer_url))
        {
            Some(m) => {
                m.public.name = name.to_string();
                m.public.client_urls = client_urls.to_vec();
                m.public.started = true;
                true
            }
            None => false,
        }
    }

    fn header(&self, inner: &Inner) -> Header {
        Header {
            cluster_id: self.cluster_id.to_string(),
            member_id: self.member_id.to_string(),
            revision: self.revision.to_string(),
            raft_term: inner.raft_term.to_string(),
        }
    }

    /// Answers one gateway call: (HTTP status, body, etcd error message).
    fn answer(&self, method: &str, path: &str, body: &[u8]) -> (u16, Bytes, Option<String>) {
        let json = |v: &dyn erased::Json| (200, v.bytes(), None);
        if method == "GET" {
            return match path {
                "/health" => json(&serde_json::json!({"health": "true", "reason": ""})),
                "/version" => json(&serde_json::json!({
                    "etcdserver": self.version,
                    "etcdcluster": format!("{}.0", self.version.rsplitn(2, '.').last().unwrap_or("3.5")),
                })),
                _ => (404, Bytes::from_static(b"Not Found\n"), None),
            };
        }
        let known = matches!(
            path,
            "/v3/cluster/member/list"
                | "/v3/cluster/member/add"
                | "/v3/cluster/member/promote"
                | "/v3/cluster/member/remove"
                | "/v3/maintenance/status"
        );
        if !known || method != "POST" {
            return (404, Bytes::from_static(b"Not Found\n"), None);
        }
        let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(serde_json::Map::new())
        } else {
            match serde_json::from_slice(body) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) | Err(_) => {
                    return refusal(&EtcdError::Custom {
                        code: code::INVALID_ARGUMENT,
                        message: "unexpected EOF".to_string(),
                    })
                }
            }
        };
        let result = match path {
            "/v3/cluster/member/list" => self.list(),
            "/v3/cluster/member/add" => self.add(&request),
            "/v3/cluster/member/promote" => self.promote(&request),
            "/v3/cluster/member/remove" => self.remove(&request),
            _ => self.status(),
        };
        match result {
            Ok(bytes) => (200, bytes, None),
            Err(e) => refusal(&e),
        }
    }

    fn list(&self) -> Result<Bytes, EtcdError> {
        let inner = lock(&self.inner);
        Ok(Members {
            header: self.header(&inner),
            members: proto_members(&inner),
        }
        .bytes())
    }

    fn add(&self, request: &Value) -> Result<Bytes, EtcdError> {
        let peer_urls: Vec<String> = match request.get("peerURLs") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|u| u.as_str().map(str::to_string).ok_or(EtcdError::BadUrls))
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        let learner = request
            .get("isLearner")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if peer_urls.is_empty() || !peer_urls.iter().all(|u| valid_url(u)) {
            return Err(EtcdError::BadUrls);
        }
        let mut inner = lock(&self.inner);
        if let Some(refusal) = &self.options.refuse_add {
            let refuse = match &mut inner.refuse_add_left {
                None => true,
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
            };
            if refuse {
                return Err(refusal.error.clone());
            }
        }
        let now = Instant::now();
        if inner
            .members
            .iter()
            .any(|m| m.public.peer_urls.iter().any(|u| peer_urls.contains(u)))
        {
            return Err(EtcdError::PeerUrlExists);
        }
        if learner {
            if inner.members.iter().any(|m| m.public.is_learner) {
                return Err(EtcdError::TooManyLearners);
            }
        } else {
            // RaftCluster.IsReadyToAddVotingMember: the new member counts in the quorum
            // but not as started; a one-member cluster may always grow to two.
            let voting: Vec<&Member> = inner
                .members
                .iter()
                .filter(|m| !m.public.is_learner)
                .collect();
            let members = voting.len() + 1;
            let started = voting.iter().filter(|m| m.started(now)).count();
            if !(started == 1 && members == 2) && started < members / 2 + 1 {
                return Err(EtcdError::NotEnoughStarted);
            }
        }
        let id = random_id();
        let start_at = self.options.member_start.map(|d| now + d);
        inner.members.push(Member {
            public: EtcdMember {
                id,
                name: String::new(),
                peer_urls: peer_urls.clone(),
                client_urls: Vec::new(),
                is_learner: learner,
                started: false,
            },
            start_at,
        });
        Ok(AddAnswer {
            header: self.header(&inner),
            member: ProtoMember {
                id: id.to_string(),
                name: None,
                peer_urls,
                client_urls: Vec::new(),
                is_learner: learner.then_some(true),
            },
            members: proto_members(&inner),
        }
        .bytes())
    }

    fn promote(&self, request: &Value) -> Result<Bytes, EtcdError> {
        let id = request_id(request)?;
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        let Some(index) = inner.members.iter().position(|m| m.public.id == id) else {
            return Err(EtcdError::MemberNotFound);
        };
        if !inner.members[index].public.is_learner {
            return Err(EtcdError::NotLearner);
        }
        if inner.promote_not_ready_left > 0 {
            inner.promote_not_ready_left -= 1;
            return Err(EtcdError::LearnerNotReady);
        }
        if !inner.members[index].started(now) {
            return Err(EtcdError::LearnerNotReady);
        }
        inner.members[index].public.is_learner = false;
        Ok(Members {
            header: self.header(&inner),
            members: proto_members(&inner),
        }
        .bytes())
    }

    fn remove(&self, request: &Value) -> Result<Bytes, EtcdError> {
        let id = request_id(request)?;
        let mut inner = lock(&self.inner);
        let Some(index) = inner.members.iter().position(|m| m.public.id == id) else {
            return Err(EtcdError::MemberNotFound);
        };
        inner.members.remove(index);
        Ok(Members {
            header: self.header(&inner),
            members: proto_members(&inner),
        }
        .bytes())
    }

    fn status(&self) -> Result<Bytes, EtcdError> {
        let inner = lock(&self.inner);
        Ok(serde_json::to_vec(&StatusAnswer {
            header: self.header(&inner),
            version: self.version,
            db_size: "4096000".to_string(),
            leader: self.member_id.to_string(),
            raft_index: "5678".to_string(),
            raft_term: inner.raft_term.to_string(),
            raft_applied_index: "5678".to_string(),
            db_size_in_use: "2048000".to_string(),
        })
        .map(Bytes::from)
        .unwrap_or_default())
    }

    fn record(&self, call: EtcdCall) {
        let mut inner = lock(&self.inner);
        // A test etcd should not grow without bound.
        if inner.calls.len() < 100_000 {
            inner.calls.push(call);
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// etcd's `types.NewURLs`: http or https, a host and a port, no path.
fn valid_url(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once("]:") {
            Some((h, p)) => (h, p),
            None => return false,
        },
        None => match rest.rsplit_once(':') {
            Some(hp) => hp,
            None => return false,
        },
    };
    !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
}

/// `ID` as jsonpb reads a uint64: a decimal string or a number.
fn request_id(request: &Value) -> Result<u64, EtcdError> {
    let bad = || EtcdError::Custom {
        code: code::INVALID_ARGUMENT,
        message: "invalid member ID".to_string(),
    };
    match request.get("ID") {
        Some(Value::String(s)) => s.parse().map_err(|_| bad()),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad),
        None => Ok(0),
        Some(_) => Err(bad()),
    }
}

fn refusal(e: &EtcdError) -> (u16, Bytes, Option<String>) {
    let body = serde_json::to_vec(&ErrorBody {
        error: e.message(),
        code: e.code(),
        message: e.message(),
    })
    .map(Bytes::from)
    .unwrap_or_default();
    (e.http_status(), body, Some(e.message()))
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
    code: i32,
    message: String,
}

#[derive(Serialize)]
struct Header {
    cluster_id: String,
    member_id: String,
    revision: String,
    raft_term: String,
}

#[derive(Serialize)]
struct ProtoMember {
    #[serde(rename = "ID")]
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "peerURLs", skip_serializing_if = "Vec::is_empty")]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", skip_serializing_if = "Vec::is_empty")]
    client_urls: Vec<String>,
    #[serde(rename = "isLearner", skip_serializing_if = "Option::is_none")]
    is_learner: Option<bool>,
}

fn proto_members(inner: &Inner) -> Vec<ProtoMember> {
    inner
        .members
        .iter()
        .map(|m| ProtoMember {
            id: m.public.id.to_string(),
            name: (!m.public.name.is_empty()).then(|| m.public.name.clone()),
            peer_urls: m.public.peer_urls.clone(),
            client_urls: m.public.client_urls.clone(),
            is_learner: m.public.is_learner.then_some(true),
        })
        .collect()
}

#[derive(Serialize)]
struct Members {
    header: Header,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<ProtoMember>,
}

#[derive(Serialize)]
struct AddAnswer {
    header: Header,
    member: ProtoMember,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<ProtoMember>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusAnswer {
    header: Header,
    version: &'static str,
    db_size: String,
    leader: String,
    raft_index: String,
    raft_term: String,
    raft_applied_index: String,
    db_size_in_use: String,
}

/// Serialization without naming the type at the call site.
mod erased {
    pub(super) trait Json {
        fn bytes(&self) -> bytes::Bytes;
    }

    impl<T: serde::Serialize> Json for T {
        fn bytes(&self) -> bytes::Bytes {
            serde_json::to_vec(self)
                .map(bytes::Bytes::from)
                .unwrap_or_default()
        }
    }
}
use erased::Json as _;

/// The gateway's TLS: the serving certificate from the etcd CA, and a client certificate from
/// that CA required on every connection.
pub(crate) fn tls_config(
    ca_der: &[u8],
    serving_der: Vec<u8>,
    serving_key_pkcs8: Vec<u8>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| format!("adding the etcd CA to the client roots: {e}"))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("building the etcd client certificate verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("choosing TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(serving_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(serving_key_pkcs8)),
        )
        .map_err(|e| format!("loading the etcd serving certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the gateway until `shutdown` flips.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    etcd: Arc<Etcd>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, tls.clone(), etcd.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    tls: tokio_rustls::TlsAcceptor,
    etcd: Arc<Etcd>,
) {
    // A client without a certificate of the etcd CA fails here: nothing is recorded, as
    // etcd logs a rejected handshake but never sees a request.
    let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await else {
        return;
    };
    let client = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| crate::pki::cert_identity(c))
        .map(|(cn, _)| cn)
        .unwrap_or_default();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let etcd = etcd.clone();
        let client = client.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&etcd, &client, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(etcd: &Etcd, client: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (status, answer, error) = etcd.answer(&method, &path, &body);
    etcd.record(EtcdCall {
        method,
        path,
        request: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status,
        error,
        client: client.to_string(),
        time: SystemTime::now(),
    });
    let content_type = if status == 404 && !answer.starts_with(b"{") {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    };
    let mut response = Response::new(Full::new(answer));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::EtcdRefusal;

    fn etcd(options: EtcdOptions) -> Etcd {
        Etcd::new(
            "https://127.0.0.1:2379".into(),
            "cp-1",
            "127.0.0.1",
            30,
            options,
        )
    }

    fn call(e: &Etcd, path: &str, body: &str) -> (u16, Value) {
        let (status, bytes, _) = e.answer("POST", path, body.as_bytes());
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn member_calls_speak_etcds_json() {
        let e = etcd(EtcdOptions::default());
        let (status, list) = call(&e, "/v3/cluster/member/list", "{}");
        assert_eq!(status, 200);
        let header = &list["header"];
        assert!(header["cluster_id"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok());
        assert_eq!(header["raft_term"], "2");
        assert_eq!(list["members"][0]["name"], "cp-1");
        assert_eq!(list["members"][0]["peerURLs"][0], "https://127.0.0.1:2380");
        assert!(list["members"][0].get("isLearner").is_none());
        let (status, added) = call(
            &e,
            "/v3/cluster/member/add",
            r#"{"peerURLs":["https://10.0.2.15:2380"],"isLearner":true}"#,
        );
        assert_eq!(status, 200);
        assert_eq!(added["member"]["isLearner"], true);
        assert!(added["member"].get("name").is_none());
        assert_eq!(added["members"].as_array().unwrap().len(), 2);
        let id = added["member"]["ID"].as_str().unwrap().to_string();
        let (status, promoted) = call(
            &e,
            "/v3/cluster/member/promote",
            &format!(r#"{{"ID":"{id}"}}"#),
        );
        assert_eq!(status, 200, "{promoted}");
        assert!(promoted["members"][1].get("isLearner").is_none());
        let (status, again) = call(
            &e,
            "/v3/cluster/member/promote",
            &format!(r#"{{"ID":{id}}}"#),
        );
        assert_eq!(status, 400);
        assert_eq!(
            again,
            serde_json::json!({"error":"etcdserver: can only promote a learner member","code":9,
                "message":"etcdserver: can only promote a learner member"})
        );
    }

    #[test]
    fn membership_rules() {
        let e = etcd(EtcdOptions {
            member_start: None,
            ..EtcdOptions::default()
        });
        let add = |body: &str| call(&e, "/v3/cluster/member/add", body);
        assert_eq!(
            add(r#"{"peerURLs":["https://127.0.0.1:2380"]}"#).1["message"],
            "etcdserver: Peer URLs already exists"
        );
        assert_eq!(add(r#"{"peerURLs":["10.0.2.15:2380"]}"#).0, 400);
        assert_eq!(
            add(r#"{"peerURLs":["https://10.0.2.15:2380"],"isLearner":true}"#).0,
            200
        );
        assert_eq!(
            add(r#"{"peerURLs":["https://10.0.2.16:2380"],"isLearner":true}"#).1["message"],
            "etcdserver: too many learner members in cluster"
        );
        // Never started: the learner cannot be promoted.
        let id = e.members()[1].id;
        let (status, body) = call(
            &e,
            "/v3/cluster/member/promote",
            &format!(r#"{{"ID":"{id}"}}"#),
        );
        assert_eq!(status, 400);
        assert_eq!(
            body["message"],
            "etcdserver: can only promote a learner member which is in sync with leader"
        );
        // Voting members: 1 started + 1 new is allowed, then an unstarted one blocks quorum.
        assert_eq!(add(r#"{"peerURLs":["https://10.0.2.17:2380"]}"#).0, 200);
        let (status, body) = add(r#"{"peerURLs":["https://10.0.2.18:2380"]}"#);
        assert_eq!(status, 400);
        assert_eq!(
            body["message"],
            "etcdserver: re-configuration failed due to not enough started members"
        );
        assert!(e.member_started(
            "https://10.0.2.17:2380",
            "cp-3",
            &["https://10.0.2.17:2379".into()]
        ));
        assert_eq!(add(r#"{"peerURLs":["https://10.0.2.18:2380"]}"#).0, 200);
        assert_eq!(e.members()[2].name, "cp-3");
        assert_eq!(
            call(&e, "/v3/cluster/member/promote", r#"{"ID":"1"}"#).0,
            404
        );
    }

    #[test]
    fn faults_refuse_adds_and_promotes() {
        let e = etcd(EtcdOptions {
            refuse_add: Some(EtcdRefusal {
                error: EtcdError::Unhealthy,
                count: Some(2),
            }),
            promote_not_ready: 2,
            ..EtcdOptions::default()
        });
        let body = r#"{"peerURLs":["https://10.0.2.15:2380"],"isLearner":true}"#;
        for _ in 0..2 {
            let (status, answer) = call(&e, "/v3/cluster/member/add", body);
            assert_eq!(status, 503);
            assert_eq!(answer["code"], 14);
            assert_eq!(answer["error"], "etcdserver: unhealthy cluster");
        }
        let (_, added) = call(&e, "/v3/cluster/member/add", body);
        let id = added["member"]["ID"].as_str().unwrap().to_string();
        let promote = format!(r#"{{"ID":"{id}"}}"#);
        assert_eq!(call(&e, "/v3/cluster/member/promote", &promote).0, 400);
        assert_eq!(call(&e, "/v3/cluster/member/promote", &promote).0, 400);
        assert_eq!(call(&e, "/v3/cluster/member/promote", &promote).0, 200);
    }

    #[test]
    fn versions_and_errors() {
        assert_eq!(etcd_version(24), "3.5.6");
        assert_eq!(etcd_version(36), "3.6.9");
        assert_eq!(EtcdError::MemberNotFound.http_status(), 404);
        assert_eq!(EtcdError::Unhealthy.http_status(), 503);
        assert_eq!(
            EtcdError::by_name("too-many-learners"),
            Some(EtcdError::TooManyLearners)
        );
        let e = etcd(EtcdOptions::default());
        assert_eq!(e.answer("GET", "/v3/cluster/member/list", b"").0, 404);
        assert_eq!(
            e.answer("POST", "/v3/cluster/member/add", b"{not json").0,
            400
        );
        let (status, v, _) = e.answer("GET", "/health", b"");
        assert_eq!(
            (status, &v[..]),
            (200, &br#"{"health":"true","reason":""}"#[..])
        );
    }
}
