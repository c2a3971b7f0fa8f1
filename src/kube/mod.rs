//! kubejoin's own small Kubernetes API client: hyper 1 + hyper-util's legacy client +
//! hyper-rustls over rustls/ring, the same stack the metadata client uses.
//!
//! It does exactly what a join needs and nothing behind its back:
//! - one base URL (`https://host:port`), HTTP/1.1, `Accept: application/json`;
//! - [`Trust`]: the CA bundle of the cluster, the system store (HTTPS discovery), or
//!   [`Trust::DangerousAcceptAny`], used only for the first, JWS-checked cluster-info fetch;
//! - [`Identity`]: anonymous clients send no `Authorization` header at all (the real apiserver
//!   answers 403 to a bearer token on `cluster-info`), a bootstrap token, or a client certificate;
//! - a connect timeout and a per-request timeout (head and body), never a proxy from the
//!   environment, never a redirect followed, and **no retries**: every retry is
//!   [`crate::http::retry`]'s, which sees each failure with its status, `Status` and `Retry-After`;
//! - bounded body reads (a larger answer is refused, not buffered) and a watch whose events are
//!   read one bounded line at a time;
//! - TCP keep-alive and one connection pool per client, shared by its clones, so a join's
//!   requests to one server reuse a connection.

pub mod kubeconfig;
pub mod token;
pub mod types;

pub use crate::http::tls::{Trust, UnpinnedCa};
pub use crate::http::wire::WireFailure;

use crate::http::tls::TlsError;
use crate::http::wire::{find_rustls, wire_failure_of};
use crate::kube::token::BootstrapToken;
use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER,
};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime};

/// Who the client is.
#[derive(Clone)]
pub enum Identity {
    /// No credentials: not even an empty `Authorization` header.
    Anonymous,
    /// `Authorization: Bearer <id>.<secret>`.
    Token(BootstrapToken),
    /// A client certificate chain and key, PEM (node identity after the TLS bootstrap).
    ClientCert { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => write!(f, "Anonymous"),
            Identity::Token(t) => write!(f, "Token({t})"),
            Identity::ClientCert { .. } => write!(f, "ClientCert(<redacted>)"),
        }
    }
}

/// Timeouts applied to every request of a client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Per-request timeout (kubeadm uses 10 s for every API call): the answer's head and body
    /// must both arrive within it. For a watch, the longest silence between two chunks.
    /// `None`: no bound (the caller bounds the request).
    pub read: Option<Duration>,
    /// The first connection after a refused one waits 0.5–1 s before it is used: an API server
    /// that just began listening refuses valid tokens until its caches are filled
    /// ([`crate::http::settle`]).
    pub settle: bool,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            read: Some(Duration::from_secs(10)),
            settle: true,
        }
    }
}

/// Building the client failed (bad URL or credentials); no request was sent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server URL {url:?}")]
    Url {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("invalid server URL {url:?}: {why}")]
    NotHttps { url: String, why: &'static str },
    #[error("building the API client for {url}")]
    Tls {
        url: String,
        #[source]
        source: Box<TlsError>,
    },
    #[error("building the API client for {url}: the bootstrap token is not a valid header value")]
    TokenHeader { url: String },
}

/// Largest answer to an ordinary request (a CSR with its certificate, a ConfigMap, a Node are a
/// few KiB; a kubeadm-config with many components well under 100 KiB).
pub const MAX_BODY: usize = 4 << 20;

/// Largest single line (event) of a watch.
pub const MAX_WATCH_LINE: usize = 4 << 20;

/// Largest error answer that is read (its `Status` is small; anything else is cut).
const MAX_ERROR_BODY: usize = 64 << 10;

/// TCP keep-alive of API connections: a dead peer is noticed even on a quiet watch.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// hyper's connectors, each connect and handshake recorded in the timeline ([`crate::trace`]).
type Connector = crate::http::Connector;
type Hyper = hyper_util::client::legacy::Client<Connector, Full<Bytes>>;

/// A Kubernetes API client for one server. Clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    hyper: Hyper,
    /// What its connector learnt of the link (shared, as the pool is).
    link: std::sync::Arc<crate::http::settle::Link>,
    /// `https://host:port`, no trailing slash.
    base: String,
    /// The `Authorization` header value, marked sensitive; `None` when anonymous.
    auth: Option<HeaderValue>,
    read: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("authenticated", &self.auth.is_some())
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// The `Authorization` header of `token`, marked sensitive (never printed).
fn bearer(server: &str, token: &BootstrapToken) -> Result<HeaderValue, ClientError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.bearer())).map_err(|_| {
        ClientError::TokenHeader {
            url: server.to_string(),
        }
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// `https://host:port` of `server`, the URL a client is built for (a path is ignored).
fn base_url(server: &str) -> Result<String, ClientError> {
    let uri: http::Uri = server.parse().map_err(|source| ClientError::Url {
        url: server.to_string(),
        source,
    })?;
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return Err(ClientError::NotHttps {
            url: server.to_string(),
            why: "an API server is only ever reached over https://",
        });
    }
    let authority =
        uri.authority()
            .filter(|a| !a.host().is_empty())
            .ok_or(ClientError::NotHttps {
                url: server.to_string(),
                why: "it names no host",
            })?;
    Ok(format!("https://{authority}"))
}

/// Builds a client for `server` (an `https://host:port` URL; a path is ignored).
pub fn client(
    server: &str,
    trust: &Trust,
    identity: &Identity,
    timeouts: Timeouts,
) -> Result<Client, ClientError> {
    let base = base_url(server)?;
    let client_cert = match identity {
        Identity::ClientCert { cert_pem, key_pem } => Some((&cert_pem[..], &key_pem[..])),
        Identity::Anonymous | Identity::Token(_) => None,
    };
    let tls =
        crate::http::tls::client_config(trust, client_cert).map_err(|source| ClientError::Tls {
            url: server.to_string(),
            source: Box::new(source),
        })?;
    let (connector, link) = crate::http::connector(
        tls,
        timeouts.connect,
        Some(KEEPALIVE),
        crate::http::Schemes::HttpsOnly,
        timeouts.settle,
    );
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(4)
        .build(connector);
    let auth = match identity {
        Identity::Token(t) => Some(bearer(server, t)?),
        Identity::Anonymous | Identity::ClientCert { .. } => None,
    };
    Ok(Client {
        hyper,
        link,
        base,
        auth,
        read: timeouts.read,
    })
}

// ---- errors ----

/// A non-success answer: its status, the `metav1.Status` it carried (or the status line's
/// reason and the start of the body), and the headers the retry policy and messages need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `Retry-After`, as a pause from when the answer arrived.
    pub retry_after: Option<Duration>,
    /// `Location` (a redirect, which is never followed).
    pub location: Option<String>,
}

/// Why a request gave no usable answer. Never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The server answered with a non-success status.
    #[error("{}", status_line(.0))]
    Status(Box<StatusError>),
    /// The request failed on the wire (refused, reset, TLS, cut off mid-body).
    #[error("{}", wire_text(&wire_failure_of(.0.as_ref())))]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The answer was cut off in the middle of its body (a reset, a closed connection).
    #[error("the answer was cut off: {}", wire_text(&wire_failure_of(.0.as_ref())))]
    BodyCut(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The per-request timeout passed.
    #[error("timed out after {}", crate::time::duration::format(*.0))]
    TimedOut(Duration),
    /// The answer is larger than the client reads.
    #[error("{}", too_large_text(*.limit, *.announced))]
    TooLarge {
        limit: usize,
        /// Its `Content-Length`, when it announced one past the limit.
        announced: Option<u64>,
    },
    /// A complete answer that does not decode as what was asked for.
    #[error("the answer is not a {what}: {detail}")]
    Decode { what: &'static str, detail: String },
}

fn status_line(s: &StatusError) -> String {
    if s.message.is_empty() {
        format!("{} {}", s.code, s.reason)
    } else {
        format!("{} {}: {}", s.code, s.reason, s.message)
    }
}

fn too_large_text(limit: usize, announced: Option<u64>) -> String {
    match announced {
        Some(n) => format!("the answer announces {n} bytes; no more than {limit} bytes are read"),
        None => format!("the answer is larger than {limit} bytes"),
    }
}

fn wire_text(w: &WireFailure) -> String {
    match w {
        WireFailure::Refused => "connection refused".into(),
        WireFailure::TimedOut => "timed out".into(),
        WireFailure::TlsVerify(d) => format!("TLS handshake failed: {d}"),
        WireFailure::Clock(c) => c.to_string(),
        WireFailure::UnpinnedCa(pins) => format!(
            "TLS handshake refused: {}",
            UnpinnedCa { pins: pins.clone() }
        ),
        WireFailure::Transport(t) => t.clone(),
        WireFailure::Status { code, reason, .. } => format!("{code} {reason}"),
    }
}

impl RequestError {
    /// The failure distilled for classification and hints.
    pub fn failure(&self) -> WireFailure {
        match self {
            RequestError::Status(s) => WireFailure::Status {
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            RequestError::Transport(e) | RequestError::BodyCut(e) => wire_failure_of(e.as_ref()),
            RequestError::TimedOut(_) => WireFailure::TimedOut,
            // A verified server that answers garbage is not a network blip, but the answer may
            // have been cut by a middlebox: the phase's retry budget decides.
            RequestError::TooLarge { .. } | RequestError::Decode { .. } => {
                WireFailure::Transport(self.to_string())
            }
        }
    }

    /// The HTTP status, when the server answered one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            RequestError::Status(s) => Some(s.code),
            _ => None,
        }
    }

    /// The answer's `Retry-After`, when it had one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RequestError::Status(s) => s.retry_after,
            _ => None,
        }
    }

    /// The `rustls::Error` of a TLS failure (to tell a bad certificate from a bad handshake).
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        match self {
            RequestError::Transport(e) | RequestError::BodyCut(e) => find_rustls(e.as_ref()),
            _ => None,
        }
    }
}

/// [`RequestError::failure`] (kept as a function for callers that only need the distillate).
pub fn wire_failure(err: &RequestError) -> WireFailure {
    err.failure()
}

/// `reason` and `message` of an error answer: its `Status` object when it is one, else the
/// status line's reason and the start of the body (made printable: it may come from anyone).
pub fn status_text(code: u16, body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct StatusBody {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(s) = serde_json::from_slice::<StatusBody>(body) {
        if !s.reason.is_empty() || !s.message.is_empty() {
            return (s.reason, s.message);
        }
    }
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or_default()
        .to_string();
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    (reason, text.trim().to_string())
}

// ---- requests ----

/// A complete answer of any status, body bounded.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: u16,
    pub retry_after: Option<Duration>,
    pub location: Option<String>,
    pub body: Bytes,
}

impl Answer {
    /// The answer as a [`RequestError::Status`] (for a non-success code).
    pub fn into_status_error(self) -> RequestError {
        let (reason, message) = status_text(self.code, &self.body);
        RequestError::Status(Box::new(StatusError {
            code: self.code,
            reason,
            message,
            retry_after: self.retry_after,
            location: self.location,
        }))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// An answer's head, before its body is read.
struct Head {
    code: u16,
    retry_after: Option<Duration>,
    location: Option<String>,
    content_length: Option<u64>,
    body: hyper::body::Incoming,
}

impl Client {
    /// The server this client talks to (`https://host:port`).
    pub fn server(&self) -> &str {
        &self.base
    }

    /// Whether `server` (a URL as [`client`] takes it) is the one this client talks to.
    pub fn serves(&self, server: &str) -> bool {
        base_url(server).is_ok_and(|b| b == self.base)
    }

    /// The same client (sharing its connections) sending `token` with every request.
    pub fn with_token(&self, token: &BootstrapToken) -> Result<Client, ClientError> {
        Ok(Client {
            auth: Some(bearer(&self.base, token)?),
            ..self.clone()
        })
    }

    /// About the network's round trip to the server: its fastest TCP connect so far (the
    /// kernel answers a SYN without the API server's process), `None` before one.
    pub fn network_round_trip(&self) -> Option<Duration> {
        self.link.fastest_connect()
    }

    /// The same client (sharing its connections) with another per-request timeout.
    pub fn with_read_timeout(&self, read: Option<Duration>) -> Client {
        Client {
            read,
            ..self.clone()
        }
    }

    fn request(
        &self,
        method: http::Method,
        path: &str,
        accept: &str,
        content_type: &str,
        body: Option<Vec<u8>>,
    ) -> Result<http::Request<Full<Bytes>>, RequestError> {
        let uri = format!("{}{path}", self.base);
        let mut b = http::Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, accept);
        if let Some(auth) = &self.auth {
            b = b.header(AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some(bytes) => {
                b = b.header(CONTENT_TYPE, content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        b.body(body).map_err(|e| RequestError::Decode {
            what: "request",
            detail: e.to_string(),
        })
    }

    async fn head(&self, req: http::Request<Full<Bytes>>) -> Result<Head, RequestError> {
        let server = req.uri().authority().map(ToString::to_string);
        let res = self
            .hyper
            .request(req)
            .await
            .map_err(|e| RequestError::Transport(Box::new(e)))?;
        let header = |name: http::header::HeaderName| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header(RETRY_AFTER)
            .and_then(|v| crate::http::retry::parse_retry_after(&v, SystemTime::now()));
        // A hint for the clock error only (`clock::cert::note_server_date`): never a time source.
        if let (Some(server), Some(date)) = (
            server,
            header(http::header::DATE).and_then(|d| crate::time::http_date::parse_http_date(&d)),
        ) {
            crate::clock::cert::note_server_date(&server, crate::time::WallTime::from_system(date));
        }
        let location = header(LOCATION);
        let content_length = header(CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
        Ok(Head {
            code: res.status().as_u16(),
            retry_after,
            location,
            content_length,
            body: res.into_body(),
        })
    }

    async fn read_body(head: Head, limit: usize) -> Result<Answer, RequestError> {
        let limit = if (200..300).contains(&head.code) {
            limit
        } else {
            limit.min(MAX_ERROR_BODY)
        };
        let success = (200..300).contains(&head.code);
        if let Some(n) = head.content_length.filter(|n| *n > limit as u64) {
            if success {
                return Err(RequestError::TooLarge {
                    limit,
                    announced: Some(n),
                });
            }
        }
        let body = match Limited::new(head.body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                if success {
                    return Err(RequestError::TooLarge {
                        limit,
                        announced: None,
                    });
                }
                // An error answer is only read for its Status: what was read is enough.
                Bytes::new()
            }
            Err(e) => return Err(RequestError::BodyCut(e)),
        };
        Ok(Answer {
            code: head.code,
            retry_after: head.retry_after,
            location: head.location,
            body,
        })
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, RequestError>>,
    ) -> Result<T, RequestError> {
        match self.read {
            Some(d) => tokio::time::timeout(d, fut)
                .await
                .unwrap_or(Err(RequestError::TimedOut(d))),
            None => fut.await,
        }
    }

    /// One request; the answer of any status with its body read up to `limit` bytes (a
    /// success larger than that is [`RequestError::TooLarge`]), within the request timeout.
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        accept: &str,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Answer, RequestError> {
        self.send_typed(method, path, accept, "application/json", body, limit)
            .await
    }

    /// [`Client::send`] with a body of another content type (a strategic-merge PATCH).
    pub async fn send_typed(
        &self,
        method: http::Method,
        path: &str,
        accept: &str,
        content_type: &str,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Answer, RequestError> {
        let step = request_step(&method, path);
        let req = self.request(method, path, accept, content_type, body)?;
        let r = self
            .bounded(async {
                let head = self.head(req).await?;
                Self::read_body(head, limit).await
            })
            .await;
        step.finish(match &r {
            Ok(a) => format!("-> {} ({} B)", a.code, a.body.len()),
            Err(e) => format!("-> {e}"),
        });
        r
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        what: &'static str,
    ) -> Result<T, RequestError> {
        let a = self
            .send(method, path, "application/json", body, MAX_BODY)
            .await?;
        if !a.is_success() {
            return Err(a.into_status_error());
        }
        serde_json::from_slice(&a.body).map_err(|e| RequestError::Decode {
            what,
            detail: e.to_string(),
        })
    }

    /// `GET path`, decoded as JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &'static str,
    ) -> Result<T, RequestError> {
        self.json(http::Method::GET, path, None, what).await
    }

    /// `POST path` with `obj` as JSON; the created object decoded.
    pub async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        obj: &B,
        what: &'static str,
    ) -> Result<T, RequestError> {
        let body = serde_json::to_vec(obj).map_err(|e| RequestError::Decode {
            what: "request body",
            detail: e.to_string(),
        })?;
        self.json(http::Method::POST, path, Some(body), what).await
    }

    /// Starts a watch (`path` carries `watch=true` and its parameters). The head must arrive
    /// within the request timeout; then each event is one JSON line of at most
    /// [`MAX_WATCH_LINE`] bytes, and a silence longer than the timeout ends the stream with
    /// [`RequestError::TimedOut`].
    pub async fn watch<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<WatchStream<T>, RequestError> {
        let step = request_step(&http::Method::GET, path);
        let req = self.request(
            http::Method::GET,
            path,
            "application/json",
            "application/json",
            None,
        )?;
        let head = self.bounded(self.head(req)).await;
        step.finish(match &head {
            Ok(h) => format!("-> {} (watch started)", h.code),
            Err(e) => format!("-> {e}"),
        });
        let head = head?;
        if !(200..300).contains(&head.code) {
            let a = self.bounded(Self::read_body(head, MAX_ERROR_BODY)).await?;
            return Err(a.into_status_error());
        }
        Ok(WatchStream {
            body: head.body,
            buf: Vec::new(),
            read: self.read,
            done: false,
            _t: std::marker::PhantomData,
        })
    }
}

/// The timeline step of one request: method and path (the query only says which object; no
/// header or body is ever recorded).
fn request_step(method: &http::Method, path: &str) -> crate::trace::Span {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    crate::trace::span("request", format!("{method} {path}"))
}

/// One event of a watch (the `type`/`object` envelope of the watch protocol).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "type", content = "object", rename_all = "UPPERCASE")]
pub enum WatchEvent<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    /// Only a resourceVersion to resume from.
    Bookmark(Bookmark),
    /// The watch cannot go on (e.g. 410 Expired: the resourceVersion is too old).
    Error(Box<types::Status>),
}

/// A `BOOKMARK` event's object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Bookmark {
    pub metadata: BookmarkMeta,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BookmarkMeta {
    #[serde(rename = "resourceVersion")]
    pub resource_version: String,
}

/// The events of a watch, decoded one line at a time.
pub struct WatchStream<T> {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    read: Option<Duration>,
    done: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for WatchStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("buffered", &self.buf.len())
            .field("done", &self.done)
            .finish()
    }
}

impl<T: DeserializeOwned> WatchStream<T> {
    /// The next event; `None` when the server ended the watch. A line that does not decode, a
    /// line past [`MAX_WATCH_LINE`], a broken connection or a silence past the timeout is an
    /// error, after which the stream is over.
    pub async fn next(&mut self) -> Option<Result<WatchEvent<T>, RequestError>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return Some(serde_json::from_slice(line).map_err(|e| {
                    // The stream is over: nothing after an undecodable line is trusted.
                    self.done = true;
                    self.buf.clear();
                    RequestError::Decode {
                        what: "watch event",
                        detail: e.to_string(),
                    }
                }));
            }
            if self.done {
                return None;
            }
            if self.buf.len() > MAX_WATCH_LINE {
                self.done = true;
                self.buf.clear();
                return Some(Err(RequestError::TooLarge {
                    limit: MAX_WATCH_LINE,
                    announced: None,
                }));
            }
            let frame = match self.read {
                Some(d) => match tokio::time::timeout(d, self.body.frame()).await {
                    Ok(f) => f,
                    Err(_) => {
                        self.done = true;
                        return Some(Err(RequestError::TimedOut(d)));
                    }
                },
                None => self.body.frame().await,
            };
            match frame {
                None => {
                    self.done = true;
                    // A last line without its newline is still an event.
                    if self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                        self.buf.push(b'\n');
                        continue;
                    }
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(RequestError::Transport(Box::new(e))));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// `?a=b&c=d` with each value percent-encoded for a query string.
pub fn query(params: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        for b in v.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    s.push(b as char)
                }
                _ => s.push_str(&format!("%{b:02X}")),
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn finds_tls_failures_nested_in_io_errors() {
        use std::io;
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, tls));
        let e = RequestError::Transport(Box::new(nested));
        assert!(matches!(e.failure(), WireFailure::TlsVerify(d) if d.contains("UnknownIssuer")));
        assert!(matches!(
            e.rustls_error(),
            Some(rustls::Error::InvalidCertificate(_))
        ));
        let refused =
            RequestError::Transport(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert_eq!(refused.failure(), WireFailure::Refused);
        assert_eq!(refused.to_string(), "connection refused");
        assert_eq!(
            RequestError::TimedOut(Duration::from_secs(10)).failure(),
            WireFailure::TimedOut
        );
    }

    /// An API server whose certificate is not yet valid at the best time known: the request
    /// fails in the handshake, and the failure is the clock error (server, window, time used).
    #[tokio::test]
    async fn a_not_yet_valid_server_certificate_is_reported_as_a_clock_problem() {
        use tokio_rustls::rustls;
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "kubernetes");
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let ca = p.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(p, ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut lp = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        lp.distinguished_name = rcgen::DistinguishedName::new();
        lp.distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        // Valid only from 2080: no clock of this machine, nor the floor, is there yet.
        lp.not_before = rcgen::date_time_ymd(2080, 1, 1);
        lp.not_after = rcgen::date_time_ymd(2081, 1, 1);
        let leaf = lp.signed_by(&key, &issuer).unwrap();

        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            if let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });

        let c = client(
            &format!("https://localhost:{port}"),
            &Trust::CaBundle(vec![ca.der().to_vec()]),
            &Identity::Anonymous,
            Timeouts::default(),
        )
        .unwrap();
        let e = c
            .get::<serde_json::Value>("/version", "version")
            .await
            .unwrap_err();
        let _ = server.await;
        let ce = e
            .rustls_error()
            .and_then(crate::clock::cert::clock_error_of)
            .unwrap_or_else(|| panic!("not a clock error: {e:?}"));
        assert_eq!(ce.problem, crate::clock::cert::Problem::NotYetValid);
        assert_eq!(ce.server.as_deref(), Some("localhost"));
        assert!(ce.checked_at.time >= crate::clock::floor::floor());
        let text = e.to_string();
        assert!(text.starts_with("the certificate of localhost"), "{text}");
        assert!(text.contains("is not yet valid: it is valid from 2080-01-01T00:00:00.000Z to 2081-01-01T00:00:00.000Z"), "{text}");
        assert!(text.contains("the clock is the likely cause"), "{text}");
        // Typed, so discovery and the bootstrap can give the clock's hint (kubejoin.ntp=).
        assert!(
            matches!(e.failure(), WireFailure::Clock(c) if c.problem == crate::clock::cert::Problem::NotYetValid)
        );
    }

    /// A 429 answer with `Retry-After: secs` and `body`, as the client reads it.
    fn too_many(secs: u64, body: &'static [u8]) -> RequestError {
        Answer {
            code: 429,
            retry_after: Some(Duration::from_secs(secs)),
            location: None,
            body: Bytes::from_static(body),
        }
        .into_status_error()
    }

    #[test]
    fn status_errors_keep_code_status_and_retry_after() {
        let e = too_many(
            3,
            br#"{"kind":"Status","reason":"TooManyRequests","message":"slow down","code":429}"#,
        );
        assert_eq!(e.status_code(), Some(429));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.to_string(), "429 TooManyRequests: slow down");
        assert_eq!(
            e.failure(),
            WireFailure::Status {
                code: 429,
                reason: "TooManyRequests".into(),
                message: "slow down".into()
            }
        );
    }

    /// kube-apiserver's max-in-flight filter (and API Priority and Fairness) refuse with
    /// net/http's `http.Error`: plain text, not a `Status`. The retry policy needs the code and
    /// `Retry-After`; the message keeps the text.
    #[test]
    fn a_plain_text_429_keeps_its_code_retry_after_and_text() {
        let e = too_many(1, b"Too many requests, please try again later.\n");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(
            e.to_string(),
            "429 Too Many Requests: Too many requests, please try again later."
        );
        assert_eq!(
            crate::http::retry::classify(&e.failure()),
            crate::http::retry::Disposition::Transient
        );
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            query(&[
                ("fieldSelector", "metadata.name=node-csr-x"),
                ("watch", "true")
            ]),
            "?fieldSelector=metadata.name%3Dnode-csr-x&watch=true"
        );
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn anonymous_clients_carry_no_authorization_and_urls_must_be_https() {
        let c = client(
            "https://127.0.0.1:6443",
            &Trust::DangerousAcceptAny,
            &Identity::Anonymous,
            Timeouts::default(),
        )
        .unwrap();
        assert!(c.auth.is_none());
        assert_eq!(c.server(), "https://127.0.0.1:6443");
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let c = client(
            "https://127.0.0.1:6443/",
            &Trust::CaBundle(Vec::new()),
            &Identity::Token(t),
            Timeouts::default(),
        )
        .unwrap();
        assert!(c.auth.as_ref().unwrap().is_sensitive());
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        assert!(matches!(
            client(
                "http://127.0.0.1:6443",
                &Trust::System,
                &Identity::Anonymous,
                Timeouts::default()
            ),
            Err(ClientError::NotHttps { .. })
        ));
    }
}
