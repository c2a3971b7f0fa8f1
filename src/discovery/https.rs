//! HTTPS discovery (spec §2.4): a kubeconfig fetched with one plain GET over verified TLS,
//! then validated like a discovery file.
//!
//! Only `https://` is accepted, checked before any connection: the kubeconfig decides which CA
//! the node trusts, so fetching it over plain HTTP would let anyone on the path choose the
//! cluster. The certificate is verified against the system trust store, or `--discovery-file-ca`.
//! The body is bounded, so a hostile or broken server cannot exhaust an initramfs's memory.

use super::{single_request_error, timeouts, Discovered, Error, FetchContext, Method, Options};
use crate::kube::kubeconfig::Kubeconfig;
use crate::kube::{Identity, Trust};
use crate::pki::pem::certs_from_pem;
use std::path::Path;

/// Largest discovery kubeconfig accepted (a real one is a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// Splits an `https://` URL into its origin (`https://host:port`) and path-and-query.
/// Anything that is not an absolute `https://` URL with a host is refused.
fn split_url(url: &str) -> Result<(String, String), Error> {
    let refuse = || Error::InsecureUrl {
        url: redact_userinfo(url),
    };
    let uri: http::Uri = url.parse().map_err(|_| refuse())?;
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return Err(refuse());
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(refuse)?;
    // User info in the URL would be a credential sent nowhere we intend; refuse it.
    if authority.as_str().contains('@') {
        return Err(refuse());
    }
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    Ok((format!("https://{authority}"), path))
}

/// `https://user:pw@host/x` → `https://<redacted>@host/x`: user info is a credential.
fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}<redacted>{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Runs HTTPS discovery.
pub async fn discover(
    url: &str,
    ca_file: Option<&Path>,
    opts: &Options,
) -> Result<Discovered, Error> {
    let (origin, path) = split_url(url)?;
    let (trust, against) = match ca_file {
        Some(p) => {
            let pem = std::fs::read(p).map_err(|source| Error::ReadCaFile {
                path: p.to_path_buf(),
                source,
            })?;
            let ders = certs_from_pem(&pem).map_err(|source| Error::CaFilePem {
                path: p.to_path_buf(),
                source,
            })?;
            (
                Trust::CaBundle(ders),
                format!("the CA bundle {}", p.display()),
            )
        }
        None => (Trust::System, "the system trust store".to_string()),
    };
    crate::info!("fetching the discovery kubeconfig from {url}, verifying TLS against {against}");
    let client = crate::kube::client(&origin, &trust, &Identity::Anonymous, timeouts(opts))
        .map_err(|source| Error::BadAddress {
            url: url.to_string(),
            source,
        })?;
    let endpoint = origin.trim_start_matches("https://").to_string();
    let ctx = FetchContext {
        url,
        endpoint: &endpoint,
        token_id: None,
        against: Some(&against),
        who: "anonymous",
        what: "the discovery kubeconfig",
        cluster_server: None,
    };
    let started = std::time::Instant::now();
    // No retry around this fetch (kubeadm has none either); bound it by the discovery timeout.
    let fetch = client.send(
        http::Method::GET,
        &path,
        "application/yaml, */*",
        None,
        MAX_BODY,
    );
    let answer = match tokio::time::timeout(opts.timeout, fetch).await {
        Ok(Ok(a)) => a,
        Ok(Err(crate::kube::RequestError::TooLarge { .. })) => {
            return Err(Error::HttpsBody {
                url: url.to_string(),
                detail: format!("the body is larger than {MAX_BODY} bytes"),
            })
        }
        Ok(Err(e @ crate::kube::RequestError::BodyCut(_))) => {
            return Err(Error::HttpsBody {
                url: url.to_string(),
                detail: e.to_string(),
            })
        }
        Ok(Err(e)) => return Err(single_request_error(&e, &ctx, started.elapsed())),
        Err(_) => {
            return Err(Error::Unreachable {
                url: url.to_string(),
                what: ctx.what,
                attempts: 1,
                waited: started.elapsed(),
                reason: "timed out".into(),
            })
        }
    };
    if answer.code != 200 {
        return Err(Error::HttpsStatus {
            url: url.to_string(),
            status: answer.code,
        });
    }
    let bytes = answer.body;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::HttpsBody {
        url: url.to_string(),
        detail: "the body is not UTF-8 text".into(),
    })?;
    crate::debug!(
        "fetched {} bytes of discovery kubeconfig from {url}",
        bytes.len()
    );
    let cfg = Kubeconfig::parse(text).map_err(|source| Error::BadKubeconfig {
        origin: url.to_string(),
        source,
    })?;
    super::file::validate(
        cfg,
        url,
        None,
        Method::Https {
            url: url.to_string(),
        },
        opts,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Class, Classify};

    #[test]
    fn only_https_urls_pass() {
        assert_eq!(
            split_url("https://10.0.0.1:8443/cluster/kc.yaml?x=1").unwrap(),
            (
                "https://10.0.0.1:8443".to_string(),
                "/cluster/kc.yaml?x=1".to_string()
            )
        );
        assert_eq!(
            split_url("HTTPS://example.com").unwrap(),
            ("https://example.com".to_string(), "/".to_string())
        );
        for bad in [
            "http://10.0.0.1/kc.yaml",
            "ftp://10.0.0.1/kc",
            "file:///etc/kc",
            "/etc/kc",
            "10.0.0.1:6443",
            "https://",
            "https://user:pw@10.0.0.1/kc",
            "not a url",
        ] {
            assert!(!format!("{:?}", split_url(bad)).contains("pw@"), "{bad}");
            let e = split_url(bad).unwrap_err();
            assert!(matches!(e, Error::InsecureUrl { .. }), "{bad}: {e}");
            assert_eq!(e.class(), Class::Usage);
            assert!(e.to_string().contains("only https:// URLs are allowed"));
            assert!(e.hint().is_some());
        }
    }
}
