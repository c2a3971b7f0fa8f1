//! A loopback HTTP/1.1 mock server for the provider tests (test builds only).
//!
//! Binds `127.0.0.1:0`, answers each connection's one request from a handler closure, records
//! every request, and can stall, truncate or send oversized bodies. Never listens on anything
//! but loopback.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the mock saw it. Header names are lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockRequest {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl MockRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer.
#[derive(Debug, Clone)]
pub enum MockReply {
    /// Status, extra headers, body.
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// Never answer (the client's timeout must fire).
    Stall,
    /// Declare `declared` bytes but send only `body`, then close.
    Truncated { declared: usize, body: Vec<u8> },
}

impl MockReply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        MockReply::Full(200, Vec::new(), body.into())
    }

    pub fn status(code: u16) -> Self {
        MockReply::Full(code, Vec::new(), format!("status {code}").into_bytes())
    }
}

type Handler = Arc<dyn Fn(&MockRequest) -> MockReply + Send + Sync>;

/// A running mock server; stops when dropped.
#[derive(Debug)]
pub struct MockServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<MockRequest>>>,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockServer {
    /// Starts a plain-HTTP server.
    pub async fn start(
        handler: impl Fn(&MockRequest) -> MockReply + Send + Sync + 'static,
    ) -> Self {
        Self::start_inner(Arc::new(handler), None).await
    }

    /// Starts an HTTPS server with `config`.
    pub async fn start_tls(
        config: Arc<rustls::ServerConfig>,
        handler: impl Fn(&MockRequest) -> MockReply + Send + Sync + 'static,
    ) -> Self {
        Self::start_inner(
            Arc::new(handler),
            Some(tokio_rustls::TlsAcceptor::from(config)),
        )
        .await
    }

    async fn start_inner(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, log, tls) = (handler.clone(), log.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                serve(s, &*handler, &log).await;
                            }
                        }
                        None => serve(stream, &*handler, &log).await,
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            task,
            tls: is_tls,
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT` for TLS, matching the test cert).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    pub fn requests(&self) -> Vec<MockRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Paths requested, in order, with the method (`GET /latest/user-data`).
    pub fn hits(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// A loopback URL nothing listens on (connection refused).
pub async fn closed_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    handler: &(dyn Fn(&MockRequest) -> MockReply + Send + Sync),
    log: &Mutex<Vec<MockRequest>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let req = MockRequest {
        method,
        path,
        headers,
    };
    log.lock().unwrap().push(req.clone());
    let out = match handler(&req) {
        MockReply::Stall => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        MockReply::Full(code, hdrs, body) => {
            let mut h = format!(
                "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (n, v) in hdrs {
                h.push_str(&format!("{n}: {v}\r\n"));
            }
            h.push_str("\r\n");
            let mut out = h.into_bytes();
            out.extend_from_slice(&body);
            out
        }
        MockReply::Truncated { declared, body } => {
            let mut out = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n"
            )
            .into_bytes();
            out.extend_from_slice(&body);
            out
        }
    };
    let _ = s.write_all(&out).await;
    let _ = s.flush().await;
    let _ = s.shutdown().await;
}

/// A self-signed certificate for `localhost`, and a client config that trusts only it.
pub fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// A client config that trusts an unrelated CA (the server's certificate must be refused).
pub fn untrusting_client() -> Arc<rustls::ClientConfig> {
    let (_, client) = tls_pair();
    client
}

/// Test transport settings: short timeouts so stalls fail fast.
pub fn quick() -> super::http::Timeouts {
    super::http::Timeouts {
        connect: Duration::from_millis(500),
        total: Duration::from_millis(800),
    }
}

/// A plain HTTP transport with [`quick`] timeouts.
pub fn transport() -> Arc<dyn super::http::Transport> {
    Arc::new(super::http::HttpTransport::new(quick(), super::http::Tls::Disabled).unwrap())
}
