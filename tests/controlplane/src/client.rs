//! The CLI's HTTPS client: one request per connection, mutual TLS with admin credentials.

use crate::kubeconfig::AdminCredentials;
use crate::{pki, Error};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub(crate) struct Client {
    tls: tokio_rustls::TlsConnector,
    host: String,
    port: u16,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn client_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Client(format!("{what}: {e}"))
}

impl Client {
    pub(crate) fn new(creds: &AdminCredentials) -> Result<Client, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for der in pki::pem_certs(creds.ca_pem.as_bytes()) {
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| client_error("loading the CA from the kubeconfig", e))?;
        }
        let chain: Vec<CertificateDer<'static>> = pki::pem_certs(creds.cert_pem.as_bytes())
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key = match pki::pem_decode_first(creds.key_pem.as_bytes()) {
            Some((label, der)) if label == "PRIVATE KEY" => PrivateKeyDer::Pkcs8(der.into()),
            Some((label, der)) if label == "EC PRIVATE KEY" => PrivateKeyDer::Sec1(der.into()),
            Some((label, der)) if label == "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(der.into()),
            _ => {
                return Err(Error::Client(
                    "no private key in the kubeconfig".to_string(),
                ))
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| client_error("choosing TLS versions", e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| client_error("loading the client certificate", e))?;
        let rest = creds.server.strip_prefix("https://").ok_or_else(|| {
            Error::Client(format!("server {:?} is not an https URL", creds.server))
        })?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| Error::Client(format!("bad server address {authority:?}")))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|e| client_error("reading the server port", e))?,
            None => 443,
        };
        let host = host.to_string();
        Ok(Client {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            host,
            port,
        })
    }

    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, Error> {
        tokio::time::timeout(TIMEOUT, self.request_inner(method, path, body))
            .await
            .map_err(|_| Error::Client(format!("{method} {path}: timed out after {TIMEOUT:?}")))?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, Error> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| client_error(&format!("connecting to {}:{}", self.host, self.port), e))?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| client_error("using the server host as a TLS name", e))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| client_error("TLS handshake", e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| client_error("HTTP handshake", e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{}:{}", self.host, self.port))
            .header("accept", "application/json, */*")
            .header("user-agent", "kubejoin-testcp");
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| client_error("building the request", e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| client_error(&format!("{method} {path}"), e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| client_error("reading the response", e))?
            .to_bytes()
            .to_vec();
        Ok(Response { status, body })
    }
}
