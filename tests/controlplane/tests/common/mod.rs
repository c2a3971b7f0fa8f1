//! Shared test helpers: a real TLS HTTP/1.1 client (ureq over rustls/ring, independent of the
//! server's own code), fixture loading, CSR construction with rcgen.
#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kubejoin_testcp::Handle;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

pub const TOKEN: &str = "abcdef.0123456789abcdef";
pub const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

pub fn fixture_text(name: &str) -> String {
    let path = format!(
        "{}/../fixtures/apiserver/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

pub fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap()
}

/// The `i`-th line of a `.jsonl` fixture.
pub fn fixture_line(name: &str, i: usize) -> Value {
    serde_json::from_str(fixture_text(name).lines().nth(i).unwrap()).unwrap()
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    bearer: Option<String>,
    user_agent: String,
}

fn agent(tls: TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

fn roots(cp: &Handle) -> RootCerts {
    roots_from_pem(&cp.ca_pem())
}

fn roots_from_pem(pem: &str) -> RootCerts {
    let certs: Vec<Certificate<'static>> = pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .map(|block| Certificate::from_pem(block.as_bytes()).unwrap())
        .collect();
    RootCerts::new_with_certs(&certs)
}

impl Client {
    /// What kubeadm's first discovery fetch is: anonymous, TLS not verified.
    pub fn insecure(cp: &Handle) -> Client {
        let tls = TlsConfig::builder().disable_verification(true).build();
        Client::with_agent(agent(tls), cp.url())
    }

    /// Anonymous, server verified against the cluster-info CA bundle.
    pub fn verified(cp: &Handle) -> Client {
        let tls = TlsConfig::builder().root_certs(roots(cp)).build();
        Client::with_agent(agent(tls), cp.url())
    }

    /// A bearer-token client for a server known only by URL and CA bundle (the CLI tests).
    pub fn token_at(url: &str, ca_pem: &str, token: &str) -> Client {
        let tls = TlsConfig::builder()
            .root_certs(roots_from_pem(ca_pem))
            .build();
        let mut c = Client::with_agent(agent(tls), url.to_string());
        c.bearer = Some(token.to_string());
        c
    }

    pub fn token(cp: &Handle, token: &str) -> Client {
        let mut c = Client::verified(cp);
        c.bearer = Some(token.to_string());
        c
    }

    pub fn bootstrap(cp: &Handle) -> Client {
        Client::token(cp, TOKEN)
    }

    /// Mutual TLS with a client certificate.
    pub fn cert(cp: &Handle, cert_pem: &str, key_pem: &str) -> Client {
        let cert = Certificate::from_pem(cert_pem.as_bytes()).unwrap();
        let key = PrivateKey::from_pem(key_pem.as_bytes()).unwrap();
        let tls = TlsConfig::builder()
            .root_certs(roots(cp))
            .client_cert(Some(ClientCert::new_with_certs(&[cert], key)))
            .build();
        Client::with_agent(agent(tls), cp.url())
    }

    pub fn admin(cp: &Handle) -> Client {
        let (cert, key) = cp.issue_client_cert("kubernetes-admin", &["system:masters"]);
        Client::cert(cp, &cert, &key)
    }

    fn with_agent(agent: ureq::Agent, base: String) -> Client {
        Client {
            agent,
            base,
            bearer: None,
            user_agent: "kubejoin-tests/0".to_string(),
        }
    }

    pub fn user_agent(mut self, ua: &str) -> Client {
        self.user_agent = ua.to_string();
        self
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, "application/json")
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(
            "POST",
            path,
            Some(body.to_string().into_bytes()),
            "application/json",
        )
    }

    pub fn put(&self, path: &str, body: &Value) -> Reply {
        self.request(
            "PUT",
            path,
            Some(body.to_string().into_bytes()),
            "application/json",
        )
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None, "application/json")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let auth = self.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let result = match method {
            "GET" | "DELETE" => {
                let mut req = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                req = req.header("User-Agent", &self.user_agent);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            _ => {
                let mut req = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    other => panic!("unsupported method {other}"),
                };
                req = req.header("User-Agent", &self.user_agent);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.content_type(content_type)
                    .send(body.unwrap_or_default())
            }
        };
        let response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.into_body().read_to_string().unwrap();
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// Starts a watch; events are read one line at a time as the server streams them.
    pub fn watch(&self, path: &str) -> Watch {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url).header("User-Agent", &self.user_agent);
        if let Some(t) = &self.bearer {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let response = req.call().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let chunked = response
            .headers()
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok())
            == Some("chunked");
        Watch {
            reader: BufReader::new(response.into_body().into_reader()),
            chunked,
        }
    }
}

pub struct Watch {
    reader: BufReader<ureq::BodyReader<'static>>,
    pub chunked: bool,
}

impl Watch {
    /// The next event, or `None` when the server ended the stream.
    pub fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e) => panic!("reading the watch: {e}"),
        }
    }
}

/// A PEM CSR made with rcgen (P-256 unless an RSA key is given), O values then CN as Go orders
/// them; returns the PEM and the key.
pub fn make_csr(cn: &str, orgs: &[&str], dns_sans: &[&str]) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(dns_sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    if let Some(o) = orgs.first() {
        dn.push(rcgen::DnType::OrganizationName, *o);
    }
    dn.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name = dn;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (pem, key)
}

/// The kubelet's POST body (spec §5.1), with a fixed name or `generateName: csr-`.
pub fn csr_body(name: Option<&str>, pem: &str, usages: &[&str]) -> Value {
    let metadata = match name {
        Some(n) => json!({ "name": n }),
        None => json!({ "generateName": "csr-" }),
    };
    json!({
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": metadata,
        "spec": {
            "request": STANDARD.encode(pem.as_bytes()),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": usages,
        }
    })
}

/// Polls until `f` returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Replaces the values that differ between two runs (names, UIDs, versions, times, key
/// material) so that the structure and every other value can be compared exactly.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let volatile = matches!(
                        k.as_str(),
                        "name"
                            | "uid"
                            | "resourceVersion"
                            | "creationTimestamp"
                            | "lastUpdateTime"
                            | "lastTransitionTime"
                            | "request"
                            | "certificate"
                            | "time"
                    );
                    let nv = if volatile && (v.is_string()) {
                        Value::String(format!("<{k}>"))
                    } else {
                        normalize(v)
                    };
                    (k.clone(), nv)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// The issued certificate of a CSR object, DER.
pub fn issued_der(csr: &Value) -> Vec<u8> {
    let pem = STANDARD
        .decode(
            csr["status"]["certificate"]
                .as_str()
                .expect("no certificate"),
        )
        .unwrap();
    let text = String::from_utf8(pem).unwrap();
    assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(text.matches("-----BEGIN").count(), 1, "leaf only");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

pub fn ca_der(cp: &Handle) -> Vec<u8> {
    let pem = cp.ca_pem();
    let last = pem.split("-----BEGIN CERTIFICATE-----\n").last().unwrap();
    let body: String = last.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}
