//! File discovery (spec §2.3), and the validation HTTPS discovery shares with it.
//!
//! The kubeconfig is trusted because the operator put it there (or it came over verified
//! HTTPS): no JWS, no pin. What is checked: at least one cluster, a usable server and CA,
//! credentials for the TLS bootstrap. Then cluster-info is read through the file's own CA and
//! credentials, which proves the CA really serves that API server; `Forbidden` is fine (a
//! bootstrap token may not read cluster-info, only anonymous may), and a missing CA is
//! filled in from cluster-info.
//!
//! Deliberate difference from kubeadm: `insecure-skip-tls-verify` is refused, because the CA
//! learned through such a connection would be trusted without any verification at all.

use super::{
    data_of, gave_up_error, poll_cluster_info, timeouts, BootstrapCredentials, Discovered, Error,
    FetchContext, Method, Miss, Options, Verdict,
};
use crate::kube::kubeconfig::{Kubeconfig, NamedUser};
use crate::kube::token::BootstrapToken;
use crate::kube::{Identity, Trust, WireFailure};
use crate::pki::pem::certs_from_pem;
use std::path::{Path, PathBuf};

/// Runs file discovery on the kubeconfig at `path`.
pub async fn discover(path: &Path, opts: &Options) -> Result<Discovered, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    crate::info!("using the discovery kubeconfig {origin}");
    let cfg = Kubeconfig::parse(&text).map_err(|source| Error::BadKubeconfig {
        origin: origin.clone(),
        source,
    })?;
    // client-go resolves relative file references against the kubeconfig's own directory.
    let base = path.parent().map(Path::to_path_buf);
    validate(
        cfg,
        &origin,
        base.as_deref(),
        Method::File {
            path: origin.clone(),
        },
        opts,
    )
    .await
}

/// Credentials found in the discovery kubeconfig's current user.
enum FileCreds {
    None,
    Token(BootstrapToken),
    Cert {
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    },
    /// Present, but not something the TLS bootstrap can use; the reason.
    Unusable(&'static str),
}

fn resolve(base: Option<&Path>, p: &str) -> PathBuf {
    let p = Path::new(p);
    match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    }
}

fn read_referenced(origin: &str, base: Option<&Path>, p: &str) -> Result<Vec<u8>, Error> {
    let path = resolve(base, p);
    std::fs::read(&path).map_err(|source| Error::ReadReferenced {
        origin: origin.to_string(),
        path,
        source,
    })
}

/// `EnsureAuthenticationInfoAreEmbedded` plus the choice of what the bootstrap can use.
fn user_creds(
    user: Option<&NamedUser>,
    origin: &str,
    base: Option<&Path>,
) -> Result<FileCreds, Error> {
    let Some(user) = user else {
        return Ok(FileCreds::None);
    };
    let a = &user.user;
    if let Some(t) = a.token.as_deref() {
        // The token text is never echoed: it is a credential even when malformed.
        return Ok(match BootstrapToken::parse(t) {
            Ok(t) => FileCreds::Token(t),
            Err(_) => {
                FileCreds::Unusable("its token is not a bootstrap token of the form <id>.<secret>")
            }
        });
    }
    let cert = match (&a.client_certificate_data, &a.client_certificate) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(p)) => Some(read_referenced(origin, base, p)?),
        (None, None) => None,
    };
    let key = match (&a.client_key_data, &a.client_key) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(p)) => Some(read_referenced(origin, base, p)?),
        (None, None) => None,
    };
    Ok(match (cert, key) {
        (Some(cert_pem), Some(key_pem)) => FileCreds::Cert { cert_pem, key_pem },
        (Some(_), None) | (None, Some(_)) => FileCreds::Unusable(
            "it has a client certificate without a key, or a key without a certificate",
        ),
        (None, None) if a.username.is_some() && a.password.is_some() => {
            FileCreds::Unusable("basic authentication (username/password) is not supported")
        }
        (None, None) => FileCreds::None,
    })
}

/// `ValidateConfigInfo` (spec §2.3 steps 1–7) for a kubeconfig read from `origin`.
pub(super) async fn validate(
    mut cfg: Kubeconfig,
    origin: &str,
    base: Option<&Path>,
    method: Method,
    opts: &Options,
) -> Result<Discovered, Error> {
    let invalid = |why: String| Error::InvalidKubeconfig {
        origin: origin.to_string(),
        why,
    };
    if cfg.clusters.is_empty() {
        return Err(Error::NoClusters {
            origin: origin.to_string(),
        });
    }
    let named = cfg.cluster_mut().map_err(|source| Error::BadKubeconfig {
        origin: origin.to_string(),
        source,
    })?;
    let cluster_name = named.name.clone();
    let cluster = &mut named.cluster;
    if cluster.server.is_empty() {
        return Err(invalid(format!("cluster {cluster_name:?} has no server")));
    }
    if !cluster.server.starts_with("https://") {
        return Err(invalid(format!(
            "the server {:?} of cluster {cluster_name:?} is not an https:// URL",
            cluster.server
        )));
    }
    if cluster.certificate_authority.is_some() && cluster.certificate_authority_data.is_some() {
        return Err(invalid(format!(
            "certificate-authority-data and certificate-authority are both specified for cluster {cluster_name:?}"
        )));
    }
    if cluster.insecure_skip_tls_verify {
        return Err(invalid(format!(
            "cluster {cluster_name:?} sets insecure-skip-tls-verify, so its CA could not be verified; embed the \
             cluster CA (certificate-authority-data) instead"
        )));
    }
    if cluster.tls_server_name.is_some() {
        crate::warn!(
            "tls-server-name of cluster {cluster_name:?} in {origin} is ignored; the certificate is checked against \
             the host of {}",
            cluster.server
        );
    }
    // EnsureCertificateAuthorityIsEmbedded: the CA is written into bootstrap files later, so
    // read it now, while the path means what the operator meant.
    if let Some(p) = cluster.certificate_authority.take() {
        cluster.certificate_authority_data = Some(read_referenced(origin, base, &p)?);
    }
    let server = cluster.server.clone();
    let file_ca = cluster.certificate_authority_data.clone();

    let user = cfg.current_user().cloned();
    let creds = user_creds(user.as_ref(), origin, base)?;
    let user_name = user.as_ref().map(|u| u.name.clone()).unwrap_or_default();
    let identity = match &creds {
        FileCreds::Token(t) => Identity::Token(t.clone()),
        FileCreds::Cert { cert_pem, key_pem } => Identity::ClientCert {
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        },
        FileCreds::None | FileCreds::Unusable(_) => Identity::Anonymous,
    };
    // discovery.go For(): a TLS bootstrap token replaces whatever the file carries.
    let credentials = match (&opts.tls_bootstrap_token, creds) {
        (Some(t), _) => BootstrapCredentials::Token(t.clone()),
        (None, FileCreds::Token(t)) => BootstrapCredentials::Token(t),
        (None, FileCreds::Cert { cert_pem, key_pem }) => {
            BootstrapCredentials::ClientCert { cert_pem, key_pem }
        }
        (None, FileCreds::Unusable(why)) => {
            return Err(Error::UnsupportedCredentials {
                origin: origin.to_string(),
                user: user_name,
                why,
            });
        }
        (None, FileCreds::None) => {
            return Err(Error::NoCredentials {
                origin: origin.to_string(),
            })
        }
    };

    let (trust, against) = match &file_ca {
        Some(pem) => {
            let ders = certs_from_pem(pem).map_err(|source| Error::BadCa {
                origin: origin.to_string(),
                source,
            })?;
            (Trust::CaBundle(ders), format!("the CA in {origin}"))
        }
        None => (Trust::System, "the system trust store".to_string()),
    };
    let who = match identity {
        Identity::Anonymous => "anonymous",
        _ => "the discovery kubeconfig's credentials",
    };
    crate::info!("reading cluster-info from {server} ({who}), verifying TLS against {against}");
    let client =
        crate::kube::client(&server, &trust, &identity, timeouts(opts)).map_err(|source| {
            Error::BadAddress {
                url: server.clone(),
                source,
            }
        })?;
    let endpoint = server
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let ctx = FetchContext {
        url: &server,
        endpoint: &endpoint,
        token_id: None,
        against: Some(&against),
        who,
        what: "the cluster-info ConfigMap",
        cluster_server: None,
    };
    let fetched = poll_cluster_info(&client, &server, "file", opts, |res| match res {
        Ok(cm) => Verdict::Done(Some(data_of(cm))),
        Err(Miss::Wire {
            failure: WireFailure::Status { code: 403, .. },
            ..
        }) => {
            crate::warn!(
                "could not access the cluster-info ConfigMap for refreshing the cluster-info information, but \
                 the TLS cert is valid so proceeding..."
            );
            Verdict::Done(None)
        }
        // The server is verified against the file's CA: an answer that is not a ConfigMap only
        // means there is nothing to learn from it.
        Err(Miss::Malformed(why)) => {
            crate::warn!("ignoring the cluster-info answer from {server}: {why}");
            Verdict::Done(None)
        }
        Err(miss) => Verdict::Retry(miss),
    })
    .await
    .map_err(|g| gave_up_error(g, &ctx))?;

    let mut ca_pem = file_ca;
    if let Some(kc) = fetched
        .as_ref()
        .and_then(|d| d.get(super::token::KUBECONFIG_KEY))
    {
        match Kubeconfig::parse(kc)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                c.cluster()
                    .map(|n| n.cluster.clone())
                    .map_err(|e| e.to_string())
            }) {
            Ok(ci) => {
                if ci.server != server {
                    crate::warn!(
                        "the API server endpoint {server:?} in use is different from the endpoint {:?} defined in \
                         the cluster-info ConfigMap",
                        ci.server
                    );
                }
                if ca_pem.is_none() && ci.certificate_authority_data.is_some() {
                    crate::info!("using the cluster CA from the cluster-info ConfigMap (the kubeconfig has none)");
                    ca_pem = ci.certificate_authority_data;
                }
            }
            Err(e) => crate::debug!("ignoring the kubeconfig in cluster-info from {server}: {e}"),
        }
    }
    let ca_pem = ca_pem.ok_or_else(|| Error::NoCa {
        origin: origin.to_string(),
    })?;
    let ca_der = certs_from_pem(&ca_pem).map_err(|source| Error::BadCa {
        origin: origin.to_string(),
        source,
    })?;
    // Installed re-encoded from what parsed, as for token discovery: only certificates reach
    // `ca.crt` and `kubelet.conf`, whatever else the PEM held.
    Ok(Discovered {
        server,
        ca_pem: crate::pki::pem::pem_bundle(&ca_der),
        ca_der,
        unpinned: Vec::new(),
        matched_pin: None,
        method,
        credentials,
        warm: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Mode;
    use crate::error::{Class, Classify};
    use std::time::Duration;

    const CA: &[u8] = include_bytes!("../../tests/fixtures/apiserver/ca.crt");

    fn opts(path: &Path, tls: Option<&str>) -> Options {
        Options {
            mode: Mode::File {
                path: path.to_path_buf(),
            },
            tls_bootstrap_token: tls.map(|t| BootstrapToken::parse(t).unwrap()),
            timeout: Duration::from_millis(300),
            retry_interval: Duration::from_millis(100),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run(o: &Options) -> Result<Discovered, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(crate::discovery::discover(o))
    }

    #[test]
    fn refuses_bad_files_before_any_connection() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
            ("empty.conf", "", None, "must have at least one cluster defined"),
            ("garbage.conf", "clusters: [", None, "is malformed"),
            (
                "nocluster.conf",
                "clusters:\n- name: a\n  cluster: {server: https://127.0.0.1:1}\ncurrent-context: x\n",
                None,
                "is malformed",
            ),
            (
                "http.conf",
                "clusters:\n- name: \"\"\n  cluster: {server: http://127.0.0.1:1}\n",
                Some("abcdef.0123456789abcdef"),
                "is not an https:// URL",
            ),
            (
                "insecure.conf",
                "clusters:\n- name: \"\"\n  cluster: {server: https://127.0.0.1:1, insecure-skip-tls-verify: true}\n",
                Some("abcdef.0123456789abcdef"),
                "insecure-skip-tls-verify",
            ),
            (
                "missingca.conf",
                "clusters:\n- name: \"\"\n  cluster: {server: https://127.0.0.1:1, certificate-authority: nope.crt}\n",
                Some("abcdef.0123456789abcdef"),
                "nope.crt",
            ),
            (
                "nocreds.conf",
                "clusters:\n- name: \"\"\n  cluster: {server: https://127.0.0.1:1}\n",
                None,
                "could not find authentication credentials for the TLS bootstrap process",
            ),
            (
                "badtoken.conf",
                "clusters:\n- name: k\n  cluster: {server: https://127.0.0.1:1}\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: sekrit-not-a-bootstrap-token}\n",
                None,
                "is not a bootstrap token",
            ),
            (
                "basic.conf",
                "clusters:\n- name: k\n  cluster: {server: https://127.0.0.1:1}\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {username: bob, password: sekrit}\n",
                None,
                "basic authentication",
            ),
        ];
        for (name, text, tls, want) in cases {
            let p = write(d, name, text);
            let e = run(&opts(&p, tls)).unwrap_err();
            let full = format!(
                "{e} {:?}",
                std::error::Error::source(&e).map(|s| s.to_string())
            );
            assert!(full.contains(want), "{name}: {full}");
            assert_eq!(e.class(), Class::Usage, "{name}: {e}");
            assert!(
                !full.contains("sekrit") && !format!("{e:?}").contains("sekrit"),
                "{name}: {e:?}"
            );
        }
        let e = run(&opts(&d.join("absent.conf"), None)).unwrap_err();
        assert!(matches!(e, Error::ReadFile { .. }), "{e}");
        assert!(e.to_string().contains("absent.conf"));
    }

    #[test]
    fn reads_relative_ca_and_reports_unreachable_server() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ca.crt"), CA).unwrap();
        // a port nothing listens on
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = write(
            d,
            "kc.conf",
            &format!("clusters:\n- name: \"\"\n  cluster: {{server: \"https://127.0.0.1:{port}\", certificate-authority: ca.crt}}\n"),
        );
        let e = run(&opts(&p, Some("abcdef.0123456789abcdef"))).unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e}");
        assert_eq!(e.class(), Class::Timeout);
        assert!(e.hint().unwrap().contains(&format!(
            "port {port} (the API server port) is open and reachable"
        )));
        assert!(!format!("{e} {e:?}").contains("0123456789abcdef"));
    }
}
