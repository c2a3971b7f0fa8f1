//! HTTP plumbing shared by the Kubernetes API client ([`crate::kube`]) and the metadata clients
//! ([`crate::source::metadata`]): one TLS set-up ([`tls`]), one connector, the classification
//! of wire failures ([`wire`]) and the retry policy beside them ([`retry`]).

pub mod retry;
pub mod settle;
pub mod tls;
pub mod wire;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::Duration;

/// Which URL schemes a connector accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schemes {
    /// `https://` only (the API server is only ever reached over TLS).
    HttpsOnly,
    /// `http://` and `https://` (link-local metadata services are plain HTTP).
    HttpOrHttps,
}

/// The connector of every client: no proxy from the environment, `TCP_NODELAY`, a connect
/// timeout, TCP keep-alive when given, HTTP/1.1 over `tls`; with `settle`, the first connection
/// after a refused one waits before it is used ([`settle`]). With it, the [`settle::Link`] its
/// connects are timed into.
pub fn connector(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
    keepalive: Option<Duration>,
    schemes: Schemes,
    settle: bool,
) -> (Connector, std::sync::Arc<settle::Link>) {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(keepalive);
    // The timeline's connect and handshake steps (crate::trace) wrap the two layers.
    let link = std::sync::Arc::new(settle::Link::default());
    let http = crate::trace::Connect(settle::Settle::new(http, settle, link.clone()));
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let connector = crate::trace::Handshake(match schemes {
        Schemes::HttpsOnly => builder.https_only().enable_http1().wrap_connector(http),
        Schemes::HttpOrHttps => builder.https_or_http().enable_http1().wrap_connector(http),
    });
    (connector, link)
}

/// The one connector of the API and metadata clients: TCP (and its settle), then TLS, each timed.
pub type Connector =
    crate::trace::Handshake<HttpsConnector<crate::trace::Connect<settle::Settle<HttpConnector>>>>;

/// `url` for messages: no `user:password@`, no query string.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (path, query) = match path.split_once('?') {
        Some((p, _)) => (p, "?<redacted>"),
        None => (path, ""),
    };
    let sep = if scheme.is_empty() { "" } else { "://" };
    format!("{scheme}{sep}{authority}{path}{query}")
}
