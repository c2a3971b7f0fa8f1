//! The transport providers talk through: one narrow trait, a real HTTP(S) client and (in
//! [`super::recorded`]) a directory of recorded responses.
//!
//! The real client is hyper-util's legacy client over hyper-rustls (rustls + ring; the same
//! stack kube already links, so no second HTTP or TLS implementation enters the binary). It
//! never consults proxy environment variables: metadata services are link-local and a proxy
//! would either fail or, worse, answer for them. Every request has a connect timeout and a total
//! timeout (connect + headers + body), and every body is read through a byte limit.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// HTTP methods the providers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    /// Only AWS's IMDSv2 session token.
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
        }
    }
}

/// One request. Header values may hold session tokens, so `Debug` shows header names only.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// The most body bytes accepted; more is [`TransportError::TooLarge`].
    pub limit: usize,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("limit", &self.limit)
            .finish()
    }
}

impl Request {
    pub fn get(url: impl Into<String>, limit: usize) -> Self {
        Self {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            limit,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A response: status and the whole (bounded) body. The body may be user-data, so `Debug`
/// shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Response {{ status: {}, body: {} bytes }}",
            self.status,
            self.body.len()
        )
    }
}

/// Why a request got no response. Carries no URL: the provider adds it, with its own name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("https is not enabled for this client")]
    HttpsDisabled,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the response: {0}")]
    Body(String),
}

impl TransportError {
    /// Worth another attempt (the service may not be up yet this early in boot).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Connect(_) | TransportError::Timeout(_) | TransportError::Body(_)
        )
    }
}

/// Sends requests. Implemented by [`HttpTransport`] and the recorded-metadata directory.
pub trait Transport: fmt::Debug + Send + Sync {
    fn send<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, Result<Response, TransportError>>;
}

/// Connect and total bounds of each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Connect + request + headers + the whole body.
    pub total: Duration,
}

impl Default for Timeouts {
    /// Link-local services answer in milliseconds; 2 s to connect and 10 s in all leave room for
    /// a slow first ARP/NDP exchange without stalling a boot on a platform that has no service.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(10),
        }
    }
}

/// Which TLS roots the client trusts for `https://` URLs.
#[derive(Clone)]
pub enum Tls {
    /// Plain HTTP only (the link-local metadata services); no trust store is loaded.
    Disabled,
    /// The system trust store (`SSL_CERT_FILE`, `/etc/ssl/certs`…), for Equinix and config URLs.
    NativeRoots,
    /// An explicit configuration (tests pass their own CA).
    Config(Arc<rustls::ClientConfig>),
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tls::Disabled => "Disabled",
            Tls::NativeRoots => "NativeRoots",
            Tls::Config(_) => "Config",
        })
    }
}

/// The real client.
pub struct HttpTransport {
    client: Client<crate::http::Connector, Empty<Bytes>>,
    https: bool,
    timeouts: Timeouts,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("https", &self.https)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl HttpTransport {
    pub fn new(timeouts: Timeouts, tls: Tls) -> Result<Self, crate::http::tls::TlsError> {
        use crate::http::tls::{client_config, Trust};
        let (config, https) = match tls {
            // The connector wants a TLS config even when https is refused up front (in `send`).
            Tls::Disabled => (client_config(&Trust::CaBundle(Vec::new()), None)?, false),
            Tls::NativeRoots => (client_config(&Trust::System, None)?, true),
            Tls::Config(cfg) => ((*cfg).clone(), true),
        };
        let (connector, _) = crate::http::connector(
            config,
            timeouts.connect,
            None,
            crate::http::Schemes::HttpOrHttps,
            false,
        );
        // No idle pool: a handful of requests per boot, and no connection should outlive them.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok(Self {
            client,
            https,
            timeouts,
        })
    }

    async fn send_inner(&self, req: &Request) -> Result<Response, TransportError> {
        let uri: http::Uri = req
            .url
            .parse()
            .map_err(|e: http::uri::InvalidUri| TransportError::Url(e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if self.https => {}
            Some("https") => return Err(TransportError::HttpsDisabled),
            _ => {
                return Err(TransportError::Url(format!(
                    "{:?} is not an http(s) URL",
                    req.url
                )))
            }
        }
        let method = match req.method {
            Method::Get => http::Method::GET,
            Method::Put => http::Method::PUT,
        };
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder
            .body(Empty::<Bytes>::new())
            .map_err(|e| TransportError::Url(e.to_string()))?;
        let response = self.client.request(request).await.map_err(|e| {
            if crate::http::wire::io_kind_in_chain(&e, std::io::ErrorKind::TimedOut) {
                TransportError::Timeout(self.timeouts.connect)
            } else {
                TransportError::Connect(chain_text(&e))
            }
        })?;
        let status = response.status().as_u16();
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > req.limit as u64) {
            return Err(TransportError::TooLarge(req.limit));
        }
        let body = Limited::new(response.into_body(), req.limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    TransportError::TooLarge(req.limit)
                } else {
                    TransportError::Body(e.to_string())
                }
            })?;
        Ok(Response {
            status,
            body: body.to_bytes().to_vec(),
        })
    }
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    parts.join(": ")
}

impl Transport for HttpTransport {
    fn send<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, Result<Response, TransportError>> {
        Box::pin(async move {
            tokio::time::timeout(self.timeouts.total, self.send_inner(req))
                .await
                .map_err(|_| TransportError::Timeout(self.timeouts.total))?
        })
    }
}

/// The pauses between attempts of one request.
///
/// Default schedule, after the first attempt: 250 ms, 500 ms, 1 s, 2 s, 4 s — six attempts over
/// about 8 s plus the requests' own timeouts. Early in boot the link may come up a moment after
/// kubejoin starts; after that a missing service is a real failure and the boot should say so.
/// Only transient failures are retried: connection errors, timeouts, 429 and 5xx. A 404 or 401
/// is an answer, not a hiccup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub delays: Vec<Duration>,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            delays: [250, 500, 1000, 2000, 4000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
        }
    }
}

impl Retry {
    /// One attempt only (tests, and replays).
    pub fn none() -> Self {
        Self { delays: Vec::new() }
    }
}

/// Sends `req`, retrying transient failures on `retry`'s schedule.
pub async fn fetch(
    t: &dyn Transport,
    req: &Request,
    retry: &Retry,
) -> Result<Response, TransportError> {
    let mut delays = retry.delays.iter();
    loop {
        let result = t.send(req).await;
        let transient = match &result {
            Ok(r) => r.status == 429 || r.status >= 500,
            Err(e) => e.is_transient(),
        };
        match (transient, delays.next()) {
            (true, Some(d)) => tokio::time::sleep(*d).await,
            _ => return result,
        }
    }
}
