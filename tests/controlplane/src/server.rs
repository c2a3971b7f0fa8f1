//! TLS + HTTP/1.1 plumbing and the request pipeline of kube-apiserver: authentication,
//! authorization, then the handler. Every response is a `Status` or an object; nothing in here
//! panics (a handler that did would be answered with a 500 Status).

use crate::auth::{self, Authn, Query, RequestInfo, User};
use crate::csr::NewCsr;
use crate::fault::{Action, Lifecycle, RestartRequest};
use crate::objects::{
    ApiVersions, CsrCondition, SelfSubjectReview, SelfSubjectReviewStatus, ServerAddress, Status,
    UserInfoJson, VersionInfo, WatchEvent, CONFIGMAPS, NODES,
};
use crate::state::{CsrFilter, State, WatchStart};
use crate::{pki, util, Approval, RequestRecord};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Frame, Incoming};
use hyper::header::{
    HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER, USER_AGENT,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::Serialize;
use std::future::Future as _;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// Request bodies above this are refused with 413 (the real limit is 3 MiB; nothing kubejoin
/// sends comes close to either).
pub(crate) const MAX_BODY: usize = 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an oversized body is read and dropped before the connection is given up.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Bodies can fail on purpose (an injected reset, an abrupt end of a watch stream).
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type RespBody = BoxBody<Bytes, BodyError>;

/// The TLS side: the serving certificate, and optional client certificates verified against
/// the cluster CA (anonymous and token requests present none).
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
        .map_err(|e| format!("adding the cluster CA to the client roots: {e}"))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| format!("building the client certificate verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("choosing TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(serving_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(serving_key_pkcs8)),
        )
        .map_err(|e| format!("loading the serving certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Why [`serve`] returned.
#[derive(Debug)]
pub(crate) enum Served {
    /// `shutdown` flipped (or its sender went away).
    Shutdown,
    /// A restart was asked for: the listener and every connection are closed.
    Restart(RestartRequest),
}

/// Accepts connections until `shutdown` flips (or its sender goes away) or a restart is asked
/// for on `restarts`; then closes the listener, and for a restart every open connection too (a
/// process that dies takes them with it). Until `reset_until`, each connection is reset as soon
/// as it is accepted (the "down, resetting" fault).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    state: Arc<State>,
    lifecycle: Arc<Lifecycle>,
    restarts: &mut mpsc::UnboundedReceiver<RestartRequest>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    reset_until: Option<tokio::time::Instant>,
) -> Served {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Served::Shutdown;
                }
            }
            Some(request) = restarts.recv() => {
                drop(listener);
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                return Served::Restart(request);
            }
            // Reaps finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if reset_until.is_some_and(|t| tokio::time::Instant::now() < t) {
                        // SO_LINGER 0: closing sends a RST instead of a FIN.
                        let _ = stream.set_zero_linger();
                        drop(stream);
                        continue;
                    }
                    // As kube-apiserver (Go's net package) does: without it, a small write after
                    // a small write (a watch event after the headers) waits ~40 ms for the
                    // client's delayed ACK.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(
                        stream,
                        tls.clone(),
                        state.clone(),
                        lifecycle.clone(),
                    ));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

/// Ends a connection without an answer: hyper closes a connection whose service fails.
#[derive(Debug)]
pub(crate) struct Abort(&'static str);

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Abort {}

async fn connection(
    stream: tokio::net::TcpStream,
    tls: TlsAcceptor,
    state: Arc<State>,
    lifecycle: Arc<Lifecycle>,
) {
    // A second descriptor of the same socket: a fault can set SO_LINGER 0 on it after the
    // stream has gone to TLS and hyper, so that the close becomes a reset. It is closed with
    // the connection.
    let raw = {
        use std::os::fd::AsFd as _;
        stream.as_fd().try_clone_to_owned().ok().map(Arc::new)
    };
    let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await else {
        state
            .failed_handshakes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return;
    };
    let connection = state
        .handshakes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    // The verifier already checked the chain; the certificate only names the user.
    let identity = Arc::new(
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| pki::cert_identity(cert)),
    );
    let date_header = !state.faults.no_date_header;
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let identity = identity.clone();
        let raw = raw.clone();
        let lifecycle = lifecycle.clone();
        async move { handle(state, lifecycle, identity, raw, connection, req).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .auto_date_header(date_header)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

struct Outcome {
    response: Response<RespBody>,
    user: String,
    request_bytes: u64,
    streaming: bool,
}

impl Outcome {
    fn new(response: Response<RespBody>, user: &User) -> Outcome {
        Outcome {
            response,
            user: user.name.clone(),
            request_bytes: 0,
            streaming: false,
        }
    }
}

/// A slot of kube-apiserver's max-in-flight filter, held while the request is handled.
struct InFlight<'a> {
    pool: &'a std::sync::atomic::AtomicUsize,
}

impl<'a> InFlight<'a> {
    /// A slot of `pool` if fewer than `cap` are taken, as the filter's non-blocking send on
    /// its channel does (a refused request takes none); `None` when the pool is full.
    fn take(pool: &'a std::sync::atomic::AtomicUsize, cap: usize) -> Option<InFlight<'a>> {
        let mut now = pool.load(Ordering::SeqCst);
        loop {
            if now >= cap {
                return None;
            }
            match pool.compare_exchange_weak(now, now + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(InFlight { pool }),
                Err(n) => now = n,
            }
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.pool.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What kube-apiserver's max-in-flight filter does with a request (see
/// [`crate::fault::InFlightLimit`]).
enum Admission<'a> {
    /// Served, holding this slot (`None`: it takes none).
    Serve(Option<InFlight<'a>>),
    /// Its pool is full: 429.
    Refuse,
}

/// Authentication, first in kube-apiserver's chain (`DefaultBuildHandlerChain`): while the
/// server's caches are not synced (the startup window) no bootstrap token is known yet.
fn authenticate_first(
    state: &State,
    lifecycle: &Lifecycle,
    identity: Option<&(String, Vec<String>)>,
    req: &Request<Incoming>,
) -> Authn {
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let tokens = if lifecycle.in_startup_window() {
        &[][..]
    } else {
        &state.settings.tokens[..]
    };
    auth::authenticate(identity, authorization, tokens, SystemTime::now())
}

/// The max-in-flight filter for `req`, given authentication's verdict (`None`: no limit, or a
/// watch). It sits after authentication, so credentials it rejects (a 401, also every token of
/// a server whose caches are not synced) take no slot, and a `system:masters` user is served
/// even when its pool is full; a watch (long-running) takes none either.
fn admit<'a>(state: &'a State, authn: Option<&Authn>, req: &Request<Incoming>) -> Admission<'a> {
    let (Some(limit), Some(authn)) = (state.faults.max_in_flight, authn) else {
        return Admission::Serve(None);
    };
    let masters = match authn {
        Authn::Rejected => return Admission::Serve(None),
        Authn::User(user) => user.in_group(auth::MASTERS),
    };
    // The verbs `get`, `list` and `watch` are GET and HEAD; every other method is a write.
    let mutating = !matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD);
    let pool = if mutating {
        &state.in_flight_mutating
    } else {
        &state.in_flight
    };
    match InFlight::take(pool, limit.cap(mutating)) {
        Some(slot) => Admission::Serve(Some(slot)),
        None if masters => Admission::Serve(None),
        None => Admission::Refuse,
    }
}

/// The max-in-flight filter's refusal: `http.Error`'s plain text, with `Retry-After`.
fn too_many_requests(retry_after_secs: u64) -> Response<RespBody> {
    let mut response = text(
        429,
        "Too many requests, please try again later.\n".to_string(),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// Records a response that was produced without the handler (a fault), and returns it.
fn answered(
    state: &State,
    id: usize,
    response: Response<RespBody>,
    fault: String,
) -> Response<RespBody> {
    let status = response.status().as_u16();
    let size = response.body().size_hint().exact().unwrap_or(0);
    state.update_record(id, |r| {
        r.status = status;
        r.response_bytes += size;
        r.fault = Some(fault);
    });
    state.finish_record(id);
    response
}

async fn handle(
    state: Arc<State>,
    lifecycle: Arc<Lifecycle>,
    identity: Arc<Option<(String, Vec<String>)>>,
    raw: Option<Arc<OwnedFd>>,
    connection: u64,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Abort> {
    let path = req.uri().path().to_string();
    let is_watch = Query::parse(req.uri().query())
        .bool("watch")
        .unwrap_or(false);
    let id = state.record(
        RequestRecord {
            method: req.method().as_str().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string()),
            user: String::new(),
            status: 0,
            request_bytes: 0,
            response_bytes: 0,
            time: SystemTime::now(),
            authorization: req.headers().contains_key(AUTHORIZATION),
            fault: None,
            connection,
        },
        false,
    );
    // A restart this request sets off takes it down with everything else, unanswered.
    if lifecycle.on_request(&path) {
        state.update_record(id, |r| r.fault = Some("restart".into()));
        state.finish_record(id);
        return Err(Abort("the server restarts"));
    }
    // With a max-in-flight limit, authentication's verdict decides the slot; the handler then
    // goes on with the same verdict, as kube-apiserver authenticates a request once.
    let authn = (state.faults.max_in_flight.is_some() && !is_watch)
        .then(|| authenticate_first(&state, &lifecycle, identity.as_ref().as_ref(), &req));
    let in_flight = match admit(&state, authn.as_ref(), &req) {
        Admission::Serve(slot) => slot,
        Admission::Refuse => {
            let secs = state.faults.max_in_flight.map_or(1, |l| l.retry_after_secs);
            let response = too_many_requests(secs);
            return Ok(answered(&state, id, response, "max in flight".into()));
        }
    };
    let fault = state.budgets.take(&path).cloned();
    match &fault {
        Some(a @ Action::Status { code, retry_after }) => {
            let response = fault_status(*code, retry_after.as_deref());
            return Ok(answered(&state, id, response, a.name()));
        }
        Some(a @ Action::Redirect { code, location }) => {
            return Ok(answered(&state, id, redirect(*code, location), a.name()));
        }
        Some(a @ Action::Stall { max }) => {
            state.update_record(id, |r| r.fault = Some(a.name()));
            tokio::time::sleep(*max).await;
            state.finish_record(id);
            return Err(Abort("a stalled request was dropped"));
        }
        Some(
            a @ Action::Oversize {
                bytes,
                content_length,
            },
        ) => {
            state.update_record(id, |r| {
                r.status = 200;
                r.fault = Some(a.name());
            });
            return Ok(oversize(state.clone(), id, *bytes, *content_length));
        }
        Some(Action::Delay { by }) => tokio::time::sleep(*by).await,
        Some(Action::ResetMidBody | Action::TruncateJson) | None => {}
    }
    if lifecycle.in_startup_window() {
        if let Some((status, user)) = startup_refusal(identity.as_ref().as_ref(), &req) {
            // The body is read first, as `route` does, so that the answer is not lost to a reset.
            let (parts, body) = req.into_parts();
            let _ = read_body(&parts.headers, body).await;
            let pretty = is_pretty(
                &Query::parse(parts.uri.query()),
                parts.headers.get(USER_AGENT),
            );
            state.update_record(id, |r| r.user = user);
            let response = status_response(&status, pretty);
            return Ok(answered(&state, id, response, "startup window".into()));
        }
    }
    // The handler runs as its own task so that a bug that panics becomes a 500 answer
    // instead of a connection closed without a word.
    let task_state = state.clone();
    let mut outcome = match tokio::spawn(route(task_state, identity, authn, req, id)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome {
            response: status_response(
                &Status::internal("the server failed while handling the request"),
                false,
            ),
            user: String::new(),
            request_bytes: 0,
            streaming: false,
        },
    };
    let mut applied = match &fault {
        Some(a @ Action::Delay { .. }) => Some(a.name()),
        _ => None,
    };
    if let Some(a @ (Action::ResetMidBody | Action::TruncateJson)) = &fault {
        if !outcome.streaming {
            let (mut parts, body) = outcome.response.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let half = bytes.slice(..bytes.len() / 2);
            let body = if *a == Action::TruncateJson {
                parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(half.len()));
                Full::new(half).map_err(|never| match never {}).boxed()
            } else {
                // The full length is announced and half of it sent: the client is cut off in
                // the middle of a message it knows is incomplete.
                parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                if let Some(fd) = &raw {
                    let _ = socket2::SockRef::from(fd.as_ref()).set_linger(Some(Duration::ZERO));
                }
                ResetBody {
                    first: Some(half),
                    pause: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
                }
                .boxed()
            };
            outcome.response = Response::from_parts(parts, body);
            applied = Some(a.name());
        }
    }
    drop(in_flight);
    let status = outcome.response.status().as_u16();
    let size = outcome.response.body().size_hint().exact().unwrap_or(0);
    state.update_record(id, |r| {
        r.user = outcome.user.clone();
        r.status = status;
        r.request_bytes = outcome.request_bytes;
        r.response_bytes += size;
        r.fault = applied;
    });
    if !outcome.streaming {
        state.finish_record(id);
    }
    Ok(outcome.response)
}

/// What a kube-apiserver whose informers have not synced yet answers `req` (see
/// [`crate::fault`]): a bearer token is unknown to the empty Secret lister (401, the body of
/// every 401), and the RBAC authorizer, with no bindings yet, denies everyone but the
/// `system:masters` superuser (403, the ordinary Forbidden message without a reason). `None`:
/// the request passes (a `system:masters` client certificate). Also returns the user recorded.
fn startup_refusal(
    identity: Option<&(String, Vec<String>)>,
    req: &Request<Incoming>,
) -> Option<(Status, String)> {
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match auth::authenticate(identity, authorization, &[], SystemTime::now()) {
        Authn::Rejected => return Some((Status::unauthorized(), String::new())),
        Authn::User(user) if user.in_group(auth::MASTERS) => return None,
        Authn::User(user) => user,
    };
    let query = Query::parse(req.uri().query());
    let ri = RequestInfo::parse(req.method().as_str(), req.uri().path(), &query);
    let gr = ri
        .is_resource
        .then_some((ri.api_group.as_str(), ri.resource.as_str()));
    let status = Status::forbidden(gr, &ri.name, &auth::forbidden_message(&user, &ri, ""));
    Some((status, user.name))
}

/// The answer of an injected status fault, worded as kube-apiserver words these statuses.
fn fault_status(code: u16, retry_after: Option<&str>) -> Response<RespBody> {
    let seconds = retry_after.and_then(|v| v.parse::<u64>().ok());
    let mut response = status_response(&Status::injected(code, seconds), false);
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(RETRY_AFTER, v);
    }
    response
}

fn redirect(code: u16, location: &str) -> Response<RespBody> {
    let mut response = text(code, format!("<a href=\"{location}\">Found</a>.\n"));
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, v);
    }
    response
}

/// Half of a body, a pause (so that hyper flushes it), then an error: hyper gives up on the
/// connection, and with SO_LINGER 0 the close is a reset.
struct ResetBody {
    first: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for ResetBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match this.pause.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Abort("injected reset"))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A body of `left` bytes made as it is sent: a ConfigMap whose `kubeconfig` string never
/// ends. Only what the client actually takes is produced (and counted in the record).
struct OversizeBody {
    prefix: Option<Bytes>,
    left: u64,
    declared: bool,
    filler: Bytes,
    state: Arc<State>,
    record_id: usize,
}

const OVERSIZE_PREFIX: &[u8] = br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cluster-info","namespace":"kube-public"},"data":{"kubeconfig":""#;

fn oversize(state: Arc<State>, record_id: usize, bytes: u64, declared: bool) -> Response<RespBody> {
    let prefix_len = (OVERSIZE_PREFIX.len() as u64).min(bytes);
    let body = OversizeBody {
        prefix: Some(Bytes::from_static(&OVERSIZE_PREFIX[..prefix_len as usize])),
        left: bytes - prefix_len,
        declared,
        filler: Bytes::from(vec![b'A'; 64 * 1024]),
        state,
        record_id,
    };
    let total = bytes;
    let mut response = Response::new(body.boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if declared {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(total));
    }
    response
}

impl hyper::body::Body for OversizeBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let chunk = match this.prefix.take() {
            Some(p) => p,
            None if this.left == 0 => return Poll::Ready(None),
            None => {
                let n = this.left.min(this.filler.len() as u64);
                this.left -= n;
                this.filler.slice(..n as usize)
            }
        };
        this.state
            .add_response_bytes(this.record_id, chunk.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.declared {
            let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
            hyper::body::SizeHint::with_exact(prefix + self.left)
        } else {
            hyper::body::SizeHint::default()
        }
    }
}

impl Drop for OversizeBody {
    fn drop(&mut self) {
        self.state.finish_record(self.record_id);
    }
}

async fn route(
    state: Arc<State>,
    identity: Arc<Option<(String, Vec<String>)>>,
    authn: Option<Authn>,
    req: Request<Incoming>,
    record_id: usize,
) -> Outcome {
    let (parts, body) = req.into_parts();
    // The body is read (or, past the limit, drained) before anything is answered: a server
    // that closes a connection with unread bytes makes the kernel reset it, and the client can
    // lose the answer. Its size is only judged after authentication and authorization, whose
    // verdicts come first.
    let body = read_body(&parts.headers, body).await;
    let request_bytes = body.as_ref().map_or(0, |b| b.len() as u64);
    let query = Query::parse(parts.uri.query());
    let pretty = is_pretty(&query, parts.headers.get(USER_AGENT));
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let authn = authn.unwrap_or_else(|| {
        auth::authenticate(
            identity.as_ref().as_ref(),
            authorization,
            &state.settings.tokens,
            SystemTime::now(),
        )
    });
    let user = match authn {
        Authn::User(user) => user,
        Authn::Rejected => {
            return Outcome {
                response: status_response(&Status::unauthorized(), pretty),
                user: String::new(),
                request_bytes,
                streaming: false,
            }
        }
    };
    let ri = RequestInfo::parse(parts.method.as_str(), parts.uri.path(), &query);
    // The kube-system Roles and RoleBindings (kubeadm's `kubeadm:kubeadm-certs`) are the
    // RBAC authorizer's too: a request either of them allows goes on.
    let authorized = auth::authorize(&user, &ri, state.policy()).or_else(|reason| {
        match state.kube_system.allows(&user, &ri) {
            true => Ok(()),
            false => Err(reason),
        }
    });
    if let Err(reason) = authorized {
        let gr = ri
            .is_resource
            .then_some((ri.api_group.as_str(), ri.resource.as_str()));
        let status = Status::forbidden(gr, &ri.name, &auth::forbidden_message(&user, &ri, &reason));
        let mut outcome = Outcome::new(status_response(&status, pretty), &user);
        outcome.request_bytes = request_bytes;
        return outcome;
    }
    let body = match body {
        Ok(b) => b,
        Err(status) => return Outcome::new(status_response(&status, pretty), &user),
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let user_agent = parts
        .headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let ctx = Ctx {
        state,
        user,
        ri,
        query,
        pretty,
        body,
        content_type,
        user_agent,
        record_id,
    };
    let (response, streaming) = if ctx.ri.is_resource {
        resource(&ctx)
    } else {
        (non_resource(&ctx, parts.method.as_str()), false)
    };
    Outcome {
        response,
        user: ctx.user.name.clone(),
        request_bytes,
        streaming,
    }
}

async fn read_body(headers: &hyper::HeaderMap, body: Incoming) -> Result<Bytes, Status> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut too_large = declared.is_some_and(|n| n > MAX_BODY as u64);
    let mut body = body;
    let mut buf: Vec<u8> = Vec::new();
    let mut seen: u64 = 0;
    // An oversized body is still read (and dropped) up to a bound, so that the client finishes
    // sending and can read the 413 instead of failing on a broken pipe.
    let read_all = async {
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| Status::bad_request(format!("error reading the request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                seen += data.len() as u64;
                if seen > MAX_BODY as u64 {
                    too_large = true;
                    buf = Vec::new();
                }
                if !too_large {
                    buf.extend_from_slice(&data);
                }
                if seen > DRAIN_LIMIT {
                    break;
                }
            }
        }
        Ok::<(), Status>(())
    };
    match tokio::time::timeout(BODY_TIMEOUT, read_all).await {
        Ok(Ok(())) => {}
        Ok(Err(status)) => return Err(status),
        Err(_) if too_large => {}
        Err(_) => {
            return Err(Status::bad_request(
                "timed out reading the request body".to_string(),
            ))
        }
    }
    if too_large {
        Err(Status::too_large(MAX_BODY))
    } else {
        Ok(Bytes::from(buf))
    }
}

/// JSON is indented when asked with `?pretty=true`, or for curl, wget and browsers.
fn is_pretty(query: &Query, user_agent: Option<&HeaderValue>) -> bool {
    if let Some(p) = query.bool("pretty") {
        return p;
    }
    let ua = user_agent.and_then(|v| v.to_str().ok()).unwrap_or_default();
    ua.starts_with("curl") || ua.starts_with("Wget") || ua.starts_with("Mozilla/5.0")
}

pub(crate) struct Ctx {
    pub(crate) state: Arc<State>,
    pub(crate) user: User,
    pub(crate) ri: RequestInfo,
    pub(crate) query: Query,
    pretty: bool,
    pub(crate) body: Bytes,
    content_type: String,
    /// The client's `User-Agent` (the field manager of what it writes).
    pub(crate) user_agent: String,
    record_id: usize,
}

impl Ctx {
    pub(crate) fn json<T: Serialize>(&self, code: u16, v: &T) -> Response<RespBody> {
        json_response(code, v, self.pretty)
    }

    pub(crate) fn status(&self, s: &Status) -> Response<RespBody> {
        status_response(s, self.pretty)
    }
}

fn json_bytes<T: Serialize>(v: &T, pretty: bool) -> Bytes {
    // Go's encoder ends compact output with a newline; MarshalIndent does not.
    let raw = if pretty {
        serde_json::to_vec_pretty(v)
    } else {
        serde_json::to_vec(v).map(|mut b| {
            b.push(b'\n');
            b
        })
    };
    match raw {
        Ok(b) => Bytes::from(util::go_json_escape(b)),
        Err(_) => Bytes::from_static(b"{}\n"),
    }
}

fn respond(code: u16, content_type: &'static str, body: Bytes) -> Response<RespBody> {
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    if let Ok(v) = HeaderValue::from_str(&util::uuid()) {
        headers.insert("audit-id", v);
    }
    response
}

fn json_response<T: Serialize>(code: u16, v: &T, pretty: bool) -> Response<RespBody> {
    respond(code, "application/json", json_bytes(v, pretty))
}

fn status_response(s: &Status, pretty: bool) -> Response<RespBody> {
    json_response(if s.code == 0 { 200 } else { s.code }, s, pretty)
}

fn text(code: u16, body: String) -> Response<RespBody> {
    let mut r = respond(code, "text/plain; charset=utf-8", Bytes::from(body));
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

// ---- non-resource paths ---------------------------------------------------------------------

fn non_resource(ctx: &Ctx, method: &str) -> Response<RespBody> {
    let path = ctx.ri.path.trim_end_matches('/');
    if method != "GET" && method != "HEAD" {
        return text(404, "404 page not found\n".into());
    }
    match path {
        "/healthz" | "/livez" | "/readyz" => {
            if ctx.query.get("verbose").is_some() {
                let name = path.trim_start_matches('/');
                text(
                    200,
                    format!("[+]ping ok\n[+]log ok\n[+]etcd ok\n{name} check passed\n"),
                )
            } else {
                text(200, "ok".into())
            }
        }
        "/version" => {
            let v = version_info(&ctx.state.settings.kubernetes_version);
            // The version handler always indents.
            json_response(200, &v, true)
        }
        "/api" => ctx.json(
            200,
            &ApiVersions {
                kind: "APIVersions",
                versions: vec!["v1"],
                server_address_by_client_cidrs: vec![ServerAddress {
                    client_cidr: "0.0.0.0/0",
                    server_address: ctx.state.settings.endpoint.clone(),
                }],
            },
        ),
        "/apis" => ctx.json(200, &api_group_list()),
        "/api/v1" => ctx.json(
            200,
            &resource_list(
                "v1",
                &[
                    ("configmaps", "ConfigMap", true, &["get", "list"]),
                    ("nodes", "Node", false, &["get", "list", "patch"]),
                    ("pods", "Pod", true, &["get", "list"]),
                    (
                        "secrets",
                        "Secret",
                        true,
                        &["create", "delete", "get", "list", "update"],
                    ),
                ],
            ),
        ),
        "/apis/certificates.k8s.io/v1" => ctx.json(
            200,
            &resource_list(
                "certificates.k8s.io/v1",
                &[
                    (
                        "certificatesigningrequests",
                        "CertificateSigningRequest",
                        false,
                        &["create", "delete", "get", "list", "watch"],
                    ),
                    (
                        "certificatesigningrequests/approval",
                        "CertificateSigningRequest",
                        false,
                        &["get", "update"],
                    ),
                    (
                        "certificatesigningrequests/status",
                        "CertificateSigningRequest",
                        false,
                        &["get"],
                    ),
                ],
            ),
        ),
        "/apis/rbac.authorization.k8s.io/v1" => ctx.json(
            200,
            &resource_list(
                "rbac.authorization.k8s.io/v1",
                &[
                    (
                        "rolebindings",
                        "RoleBinding",
                        true,
                        &["create", "delete", "get", "update"],
                    ),
                    (
                        "roles",
                        "Role",
                        true,
                        &["create", "delete", "get", "update"],
                    ),
                ],
            ),
        ),
        "/apis/authentication.k8s.io/v1" => ctx.json(
            200,
            &resource_list(
                "authentication.k8s.io/v1",
                &[(
                    "selfsubjectreviews",
                    "SelfSubjectReview",
                    false,
                    &["create"],
                )],
            ),
        ),
        _ => text(404, "404 page not found\n".into()),
    }
}

fn version_info(git_version: &str) -> VersionInfo {
    let trimmed = git_version.trim_start_matches('v');
    let mut parts = trimmed.split('.');
    let major = parts.next().unwrap_or_default().to_string();
    let minor = parts.next().unwrap_or_default().to_string();
    VersionInfo {
        major,
        minor,
        git_version: git_version.to_string(),
        git_commit: "0000000000000000000000000000000000000000",
        git_tree_state: "clean",
        build_date: "2025-01-01T00:00:00Z",
        go_version: "go1.24.0",
        compiler: "gc",
        platform: "linux/amd64",
    }
}

fn api_group_list() -> serde_json::Value {
    let group = |name: &str| {
        let gv = format!("{name}/v1");
        serde_json::json!({
            "name": name,
            "versions": [{"groupVersion": gv, "version": "v1"}],
            "preferredVersion": {"groupVersion": gv, "version": "v1"},
        })
    };
    serde_json::json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            group("authentication.k8s.io"),
            group("certificates.k8s.io"),
            group("rbac.authorization.k8s.io"),
        ],
    })
}

fn resource_list(
    group_version: &str,
    resources: &[(&str, &str, bool, &[&str])],
) -> serde_json::Value {
    let items: Vec<serde_json::Value> = resources
        .iter()
        .map(|(name, kind, namespaced, verbs)| {
            serde_json::json!({
                "name": name,
                "singularName": "",
                "namespaced": namespaced,
                "kind": kind,
                "verbs": verbs,
            })
        })
        .collect();
    serde_json::json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": items,
    })
}

// ---- resources ----------------------------------------------------------------------------

/// Returns the response and whether its body is a stream.
fn resource(ctx: &Ctx) -> (Response<RespBody>, bool) {
    let ri = &ctx.ri;
    if ri.extra_parts > 0 {
        return (ctx.status(&Status::no_such_resource()), false);
    }
    match (
        ri.api_group.as_str(),
        ri.api_version.as_str(),
        ri.resource.as_str(),
    ) {
        ("", "v1", "configmaps") => (configmaps(ctx), false),
        ("", "v1", "nodes") => (nodes(ctx), false),
        ("", "v1", "secrets") => (crate::cpapi::secrets(ctx), false),
        ("", "v1", "pods") => (crate::cpapi::pods(ctx), false),
        ("rbac.authorization.k8s.io", "v1", "roles" | "rolebindings") => {
            (crate::cpapi::rbac(ctx), false)
        }
        ("certificates.k8s.io", "v1", "certificatesigningrequests") => csrs(ctx),
        ("authentication.k8s.io", "v1", "selfsubjectreviews") if ri.verb == "create" => {
            let review = SelfSubjectReview {
                kind: "SelfSubjectReview",
                api_version: "authentication.k8s.io/v1",
                metadata: crate::objects::ObjectMeta {
                    creation_timestamp: util::rfc3339(SystemTime::now()),
                    ..Default::default()
                },
                status: SelfSubjectReviewStatus {
                    user_info: UserInfoJson {
                        username: ctx.user.name.clone(),
                        groups: ctx.user.groups.clone(),
                    },
                },
            };
            (ctx.json(201, &review), false)
        }
        _ => (ctx.status(&Status::no_such_resource()), false),
    }
}

fn configmaps(ctx: &Ctx) -> Response<RespBody> {
    let ri = &ctx.ri;
    if !ri.subresource.is_empty() {
        return ctx.status(&Status::no_such_resource());
    }
    match ri.verb.as_str() {
        "get" => match ctx.state.configmap(&ri.namespace, &ri.name) {
            Some(cm) => ctx.json(200, &cm),
            None => ctx.status(&Status::not_found(CONFIGMAPS, &ri.name)),
        },
        "list" => ctx.json(200, &ctx.state.list_configmaps(&ri.namespace)),
        _ => ctx.status(&Status::method_not_allowed()),
    }
}

fn nodes(ctx: &Ctx) -> Response<RespBody> {
    let ri = &ctx.ri;
    if !ri.subresource.is_empty() || !ri.namespace.is_empty() {
        return ctx.status(&Status::no_such_resource());
    }
    match ri.verb.as_str() {
        "get" => match ctx.state.node(&ri.name) {
            Some(node) => ctx.json(200, &node),
            None => ctx.status(&Status::not_found(NODES, &ri.name)),
        },
        "list" => ctx.json(200, &ctx.state.list_nodes()),
        "patch" => {
            // NodeRestriction: a node may modify only its own Node object.
            if let Some(own) = ctx.user.node_name() {
                if own != ri.name {
                    let why = format!(
                        "node {} is not allowed to modify node {}",
                        quote(own),
                        quote(&ri.name)
                    );
                    return ctx.status(&Status::forbidden(Some(("", "nodes")), &ri.name, &why));
                }
            }
            let mime = ctx
                .content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            if !matches!(
                mime,
                "application/strategic-merge-patch+json" | "application/merge-patch+json"
            ) {
                return ctx.json(
                    415,
                    &Status::bad_request(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/strategic-merge-patch+json, application/merge-patch+json (got {mime:?})"
                    )),
                );
            }
            let patch: serde_json::Value = match serde_json::from_slice(&ctx.body) {
                Ok(v) => v,
                Err(e) => {
                    return ctx.status(&Status::bad_request(format!("error decoding patch: {e}")))
                }
            };
            match ctx.state.patch_node(&ri.name, &patch, &ctx.user) {
                Ok(node) => ctx.json(200, &node),
                Err(status) => ctx.status(&status),
            }
        }
        _ => ctx.status(&Status::method_not_allowed()),
    }
}

fn quote(s: &str) -> String {
    crate::objects::quote(s)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrBody {
    kind: Option<String>,
    metadata: Option<MetaBody>,
    spec: Option<SpecBody>,
    status: Option<StatusBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct MetaBody {
    name: Option<String>,
    generate_name: Option<String>,
    resource_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SpecBody {
    request: Option<String>,
    signer_name: Option<String>,
    usages: Option<Vec<String>>,
    expiration_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusBody {
    conditions: Option<Vec<ConditionBody>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ConditionBody {
    #[serde(rename = "type")]
    type_: Option<String>,
    status: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    last_update_time: Option<String>,
    last_transition_time: Option<String>,
}

/// Decodes a CSR body the way the apiserver's JSON serializer reports problems.
fn decode_csr_body(body: &[u8]) -> Result<CsrBody, Status> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Status::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let cannot = |why: String| {
        Status::bad_request(format!(
            "CertificateSigningRequest in version \"v1\" cannot be handled as a CertificateSigningRequest: {why}"
        ))
    };
    let parsed: CsrBody = serde_json::from_value(value).map_err(|e| cannot(e.to_string()))?;
    if let Some(kind) = parsed.kind.as_deref() {
        if !kind.is_empty() && kind != "CertificateSigningRequest" {
            return Err(cannot(format!(
                "the object provided is unrecognized (wrong kind {kind:?})"
            )));
        }
    }
    Ok(parsed)
}

fn csrs(ctx: &Ctx) -> (Response<RespBody>, bool) {
    let ri = &ctx.ri;
    let state = &ctx.state;
    let plain = ri.subresource.is_empty();
    match (ri.verb.as_str(), ri.subresource.as_str()) {
        ("create", "") if ri.name.is_empty() => (create_csr(ctx), false),
        ("list", "") => match CsrFilter::parse(ctx.query.get("fieldSelector")) {
            Ok(filter) => (ctx.json(200, &state.list_csrs(&filter)), false),
            Err(status) => (ctx.status(&status), false),
        },
        ("watch", "") => match CsrFilter::parse(ctx.query.get("fieldSelector")) {
            Ok(filter) => watch(ctx, filter),
            Err(status) => (ctx.status(&status), false),
        },
        ("get", "" | "status" | "approval") => match state.get_csr(&ri.name) {
            Some(csr) => (ctx.json(200, &csr), false),
            None => (
                ctx.status(&Status::not_found(crate::objects::CSRS, &ri.name)),
                false,
            ),
        },
        ("delete", "") => match state.delete_csr(&ri.name) {
            Ok(status) => (ctx.json(200, &status), false),
            Err(status) => (ctx.status(&status), false),
        },
        ("update", "approval") => (update_approval(ctx), false),
        _ if plain || matches!(ri.subresource.as_str(), "status" | "approval") => {
            (ctx.status(&Status::method_not_allowed()), false)
        }
        _ => (ctx.status(&Status::no_such_resource()), false),
    }
}

fn create_csr(ctx: &Ctx) -> Response<RespBody> {
    let body = match decode_csr_body(&ctx.body) {
        Ok(b) => b,
        Err(status) => return ctx.status(&status),
    };
    let meta = body.metadata.unwrap_or_default();
    let spec = body.spec.unwrap_or_default();
    let request = match spec.request {
        None => None,
        Some(b64) => {
            // encoding/json decodes []byte with StdEncoding, skipping \r and \n.
            let cleaned: String = b64.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            match STANDARD.decode(cleaned.as_bytes()) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    return ctx.status(&Status::bad_request(format!(
                        "CertificateSigningRequest in version \"v1\" cannot be handled as a CertificateSigningRequest: illegal base64 data: {e}"
                    )))
                }
            }
        }
    };
    let new = NewCsr {
        name: meta.name.unwrap_or_default(),
        request,
        signer_name: spec.signer_name.unwrap_or_default(),
        usages: spec.usages.unwrap_or_default(),
        expiration_seconds: spec.expiration_seconds,
    };
    let generate_name = meta.generate_name.unwrap_or_default();
    match ctx.state.create_csr(new, &generate_name, &ctx.user) {
        Ok(csr) => {
            if ctx.state.settings.approval == Approval::Auto {
                let state = ctx.state.clone();
                let name = csr.metadata.name.clone();
                let uid = csr.metadata.uid.clone();
                let delay = state.settings.approval_delay;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    state.auto_approve(&name, &uid);
                });
            }
            ctx.json(201, &csr)
        }
        Err(status) => ctx.status(&status),
    }
}

fn update_approval(ctx: &Ctx) -> Response<RespBody> {
    let body = match decode_csr_body(&ctx.body) {
        Ok(b) => b,
        Err(status) => return ctx.status(&status),
    };
    let meta = body.metadata.unwrap_or_default();
    let conditions = body
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| CsrCondition {
            type_: c.type_.unwrap_or_default(),
            status: c.status.unwrap_or_default(),
            reason: c.reason.unwrap_or_default(),
            message: c.message.unwrap_or_default(),
            last_update_time: c.last_update_time.unwrap_or_default(),
            last_transition_time: c.last_transition_time.unwrap_or_default(),
        })
        .collect();
    match ctx.state.update_approval(
        &ctx.ri.name,
        meta.name.as_deref().unwrap_or_default(),
        meta.resource_version.as_deref().unwrap_or_default(),
        conditions,
    ) {
        Ok(csr) => ctx.json(200, &csr),
        Err(status) => ctx.status(&status),
    }
}

// ---- watch -----------------------------------------------------------------------------------

/// What the watch producer hands to the body: an event line, or the order to break the
/// connection (an abrupt watch cut).
enum Chunk {
    Data(Bytes),
    Abort,
}

/// A chunked response body fed by the task that produces watch events.
struct WatchBody {
    rx: mpsc::Receiver<Chunk>,
    state: Arc<State>,
    record_id: usize,
    /// An abrupt cut waits for this first, so that hyper flushes the events before it.
    cutting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for WatchBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(pause) = this.cutting.as_mut() {
            return match pause.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Abort("injected watch cut"))))),
                Poll::Pending => Poll::Pending,
            };
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Chunk::Data(chunk))) => {
                this.state
                    .add_response_bytes(this.record_id, chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Chunk::Abort)) => {
                let mut pause = Box::pin(tokio::time::sleep(Duration::from_millis(50)));
                let polled = pause.as_mut().poll(cx);
                this.cutting = Some(pause);
                match polled {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(Box::new(Abort("injected watch cut")))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        self.state.finish_record(self.record_id);
    }
}

/// The producer's end of a watch stream; it also enforces the watch-cut fault.
struct EventSink {
    tx: mpsc::Sender<Chunk>,
    sent: u32,
    cut: Option<crate::fault::WatchCut>,
}

impl EventSink {
    /// Sends one event line; `false` when the stream is over (client gone, or cut).
    async fn send(&mut self, line: Bytes) -> bool {
        if self.tx.send(Chunk::Data(line)).await.is_err() {
            return false;
        }
        self.sent += 1;
        match self.cut {
            Some(cut) if self.sent >= cut.every => {
                if cut.abrupt {
                    let _ = self.tx.send(Chunk::Abort).await;
                }
                // Dropping the sender ends the chunked stream cleanly.
                false
            }
            _ => true,
        }
    }
}

fn event_line<T: Serialize>(type_: &'static str, object: &T) -> Bytes {
    json_bytes(&WatchEvent { type_, object }, false)
}

fn watch(ctx: &Ctx, filter: CsrFilter) -> (Response<RespBody>, bool) {
    let resource_version = match ctx.query.get("resourceVersion") {
        None | Some("") => None,
        Some(s) => match s.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return (
                    ctx.status(&Status::bad_request(format!(
                        "resourceVersion: Invalid value: {}: must be a non-negative integer",
                        quote(s)
                    ))),
                    false,
                )
            }
        },
    };
    let timeout = ctx
        .query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let state = ctx.state.clone();
    // Subscribe before taking the starting point, so that nothing falls in between.
    let mut changes = state.events.subscribe();
    let start = state.watch_start(resource_version, &filter);
    let (tx, rx) = mpsc::channel::<Chunk>(64);
    let mut sink = EventSink {
        tx,
        sent: 0,
        cut: state.faults.watch_cut,
    };
    let producer_state = state.clone();
    tokio::spawn(async move {
        let state = producer_state;
        let deadline =
            tokio::time::Instant::now() + timeout.unwrap_or(Duration::from_secs(365 * 86_400));
        let mut last = match start {
            Err(status) => {
                let _ = sink.send(event_line("ERROR", &status)).await;
                return;
            }
            Ok(WatchStart::Snapshot { objects, rv }) => {
                for obj in objects {
                    if !sink.send(event_line("ADDED", &obj)).await {
                        return;
                    }
                }
                rv
            }
            Ok(WatchStart::Resume { events, rv }) => {
                for e in events {
                    if !sink.send(event_line(e.type_, &e.object)).await {
                        return;
                    }
                }
                rv
            }
        };
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = sink.tx.closed() => return,
            }
            match state.events_after(last, &filter) {
                Ok((events, newest)) => {
                    for e in events {
                        if !sink.send(event_line(e.type_, &e.object)).await {
                            return;
                        }
                    }
                    last = newest;
                }
                Err(status) => {
                    let _ = sink.send(event_line("ERROR", &status)).await;
                    return;
                }
            }
        }
    });
    let body = WatchBody {
        rx,
        state,
        record_id: ctx.record_id,
        cutting: None,
    };
    let mut response = Response::new(body.boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    (response, true)
}
