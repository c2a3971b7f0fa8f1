//! Token discovery (spec §2.2).
//!
//! 1. Anonymous GET of `kube-public/cluster-info` from `https://EP` with TLS verification off,
//!    repeated every `retry_interval` until `jws-kubeconfig-<id>` appears (the bootstrap signer
//!    adds it asynchronously, 1–15 s after any rewrite) or `timeout` passes. Failures of the
//!    wire are retried with backoff and jitter (`crate::http::retry`); permanent ones stop at once.
//!    The answer is read with a size bound: this server is not trusted yet.
//! 2. The detached JWS is verified over the raw `kubeconfig` bytes with the token secret: only
//!    someone who knows the token could have produced this content.
//! 3. Any CA of the signed kubeconfig must match any pin: the token alone is not enough, since
//!    anyone holding a token (e.g. from a leaked join command) could sign a fake cluster-info.
//!    From then on the trust anchors are **only the certificates a pin matched** (all of them
//!    when several pins match, as during a CA rotation). The rest of the bundle is never
//!    trusted: the same token holder could sign a bundle `[real CA, own CA]`, which matches the
//!    pin through the real CA, and then serve TLS from its own (kubeadm trusts the whole bundle
//!    after any match and falls for it). A server whose certificate chains to such an unpinned
//!    CA is refused at the handshake, before any request, with that CA's pin in the error.
//! 4. When the signed kubeconfig's `server:` (SRV) is another address than EP: the same GET
//!    again, to EP, over TLS verified against that CA bundle, with its own full timeout; its
//!    `kubeconfig` must be byte-identical. This proves the server we talked to holds a key
//!    certified by the pinned CA. When SRV *is* EP (the usual case: kubeadm publishes its
//!    control-plane endpoint) this request is folded into the TLS bootstrap's first one (a
//!    deliberate deviation from kubeadm, one request less per join): that request goes to the
//!    same address over TLS verified against the same pinned CA, and its bearer token is only
//!    sent once that handshake has proven the server. The re-fetch would add nothing: the JWS
//!    already authenticates the kubeconfig's bytes and the pin its CA, so byte equality with a
//!    second copy proves nothing the handshake does not, and no token-bearing request can reach
//!    a server that lacks a key certified by the pinned CA either way. The bootstrap goes on
//!    over step 1's own connection when the certificate that connection was made with passes
//!    the pinned CAs exactly as a new handshake would ([`crate::http::tls::Trust::Deferred`]:
//!    step 1 keeps each certificate it accepted, the handshake signature proved the server
//!    holds its key, and every later handshake of that client is verified): one TCP and TLS
//!    handshake per join instead of two. When it does not pass, the bootstrap connects anew
//!    and that handshake refuses the server (naming an unpinned CA of the bundle).
//!
//! With no pins (only allowed with the explicit unsafe opt-in), steps 3–4 are skipped and the JWS
//! is the only trust anchor.

use super::{
    data_of, gave_up_error, jws, poll_cluster_info, timeouts, BootstrapCredentials, Discovered,
    Error, FetchContext, Method, Miss, Options, Verdict,
};
use crate::kube::kubeconfig::Kubeconfig;
use crate::kube::token::BootstrapToken;
use crate::kube::{Identity, Trust};
use crate::pki::pem::{certs_from_pem, pem_bundle};
use crate::pki::pin::{CaPin, PinSet};
use std::collections::BTreeMap;

/// The ConfigMap key holding the kubeconfig that is signed.
pub const KUBECONFIG_KEY: &str = "kubeconfig";

/// The ConfigMap key holding the detached JWS for a token id.
pub fn jws_key(token_id: &str) -> String {
    format!("jws-kubeconfig-{token_id}")
}

/// Runs token discovery against `endpoint` (`host:port`).
pub async fn discover(
    endpoint: &str,
    token: &BootstrapToken,
    pins: &PinSet,
    unsafe_skip_ca_verification: bool,
    opts: &Options,
) -> Result<Discovered, Error> {
    if pins.is_empty() && !unsafe_skip_ca_verification {
        return Err(Error::NoPin);
    }
    let url = format!("https://{endpoint}");
    let id = token.id();

    // Step 1: insecure fetch. Its content is not trusted until the JWS and the pin say so.
    crate::info!(
        "fetching cluster-info from {url} without TLS verification (authenticated next by the JWS of token {token})"
    );
    // Any certificate for now, each one kept: once the pin has decided what to trust, the
    // connection goes on to the TLS bootstrap if its certificate passes that trust (step 4).
    let deferred = std::sync::Arc::new(crate::http::tls::Deferred::new());
    let insecure = crate::kube::client(
        &url,
        &Trust::Deferred(deferred.clone()),
        &Identity::Anonymous,
        timeouts(opts),
    )
    .map_err(|source| Error::BadAddress {
        url: url.clone(),
        source,
    })?;
    let ctx = FetchContext {
        url: &url,
        endpoint,
        token_id: Some(id),
        against: None,
        who: "anonymous",
        what: "the cluster-info ConfigMap",
        cluster_server: None,
    };
    let data = fetch_signed(&insecure, &ctx, "insecure", opts).await?;

    // Step 2: the JWS over the exact bytes; step 3: the signed kubeconfig's CA and the pin.
    let kc = verify_jws(&data, endpoint, token)?;
    crate::info!("JWS signature of cluster-info from {url} is valid for token {token}");
    let v = verify_signed_kubeconfig(kc, endpoint, pins)?;
    let credentials = BootstrapCredentials::Token(
        opts.tls_bootstrap_token
            .clone()
            .unwrap_or_else(|| token.clone()),
    );
    let done = |matched_pin| Discovered {
        server: v.server.clone(),
        ca_pem: pem_bundle(&v.trusted),
        ca_der: v.trusted.clone(),
        unpinned: v.unpinned.clone(),
        matched_pin,
        method: Method::Token {
            endpoint: endpoint.to_string(),
        },
        credentials: credentials.clone(),
        warm: None,
    };
    let Some(matched) = v.matched_pin.clone() else {
        crate::warn!(
            "THE CLUSTER CA WAS NOT VERIFIED: --discovery-token-unsafe-skip-ca-verification is set, so {url} is \
             trusted on the token's JWS alone; anyone who knows the token could impersonate this cluster. \
             Pin the CA with --discovery-token-ca-cert-hash {}",
            v.ca_der
                .first()
                .and_then(|d| CaPin::of_cert_der(d).ok())
                .map(|p| p.to_string())
                .unwrap_or_else(|| "sha256:<hash>".into())
        );
        crate::warn!(
            "trusting ALL {} certificate(s) of the cluster-info CA bundle from {url} for TLS and installing them as \
             the cluster CA, because none is pinned (--discovery-token-unsafe-skip-ca-verification)",
            v.trusted.len()
        );
        return Ok(done(None));
    };
    crate::info!("cluster CA {matched} from cluster-info matches the pinned hash");
    for (pin, _) in &v.unpinned {
        crate::warn!(
            "cluster-info's CA bundle also lists CA {pin}, which is not pinned: it is not trusted and not \
             installed (pin it too with --discovery-token-ca-cert-hash only if you know it is the cluster's, e.g. \
             during a CA rotation)"
        );
    }
    if crate::clock::datehdr::worth_asking() {
        verified_date(&url, &v.trusted, &v.unpinned, opts).await;
    }
    let kc = v.kubeconfig.clone();
    let cluster_server = v.server.clone();
    if same_address(&cluster_server, endpoint) {
        let d = done(Some(matched));
        // The connection cluster-info came over goes on to the TLS bootstrap only if the
        // certificate it was made with passes the pinned CAs exactly as a new handshake would
        // (the handshake's signature already proved the server holds its key): one TCP and TLS
        // handshake less per join. Otherwise the bootstrap connects anew and that handshake
        // decides (and names an unpinned CA).
        let warm = match crate::http::tls::settle(&deferred, &d.trust()) {
            Ok(true) => {
                crate::info!(
                    "cluster-info names {url} as the API server; the certificate it served cluster-info with \
                     is verified against the pinned cluster CA: the TLS bootstrap goes on over that connection"
                );
                Some(insecure)
            }
            Ok(false) | Err(_) => {
                crate::info!(
                    "cluster-info names {url} as the API server; its TLS is verified against the pinned cluster CA \
                     by the first request of the TLS bootstrap, before the token is sent"
                );
                None
            }
        };
        return Ok(Discovered { warm, ..d });
    }

    // Step 4: the verified re-fetch, to the user's endpoint, hostname checked against it.
    crate::info!(
        "fetching cluster-info again from {url}, verifying TLS against the pinned cluster CA"
    );
    let secure = crate::kube::client(
        &url,
        &Trust::Pinned {
            pinned: v.trusted.clone(),
            unpinned: v.unpinned.clone(),
        },
        &Identity::Anonymous,
        timeouts(opts),
    )
    .map_err(|source| Error::BadAddress {
        url: url.clone(),
        source,
    })?;
    let ctx = FetchContext {
        against: Some("the pinned cluster CA from cluster-info"),
        cluster_server: Some(&cluster_server),
        ..ctx
    };
    let data2 = fetch_signed(&secure, &ctx, "verified", opts).await?;
    if data2.get(KUBECONFIG_KEY).map(String::as_bytes) != Some(kc.as_bytes()) {
        return Err(Error::RefetchDiffers {
            endpoint: endpoint.to_string(),
        });
    }
    crate::info!(
        "cluster-info fetched over verified TLS is identical; API server is {cluster_server}"
    );
    Ok(done(Some(matched)))
}

/// SNTP gave no time: now that the CA is pinned, one anonymous request to `url` over TLS
/// verified against the pinned CAs, validity times aside, may give the time from its `Date`
/// header (`clock::datehdr`, docs/time.md). Never fails discovery: a `Date` refused or missing
/// leaves the best time known as it was, and the verified requests that follow say why if the
/// certificates are then outside their windows.
async fn verified_date(
    url: &str,
    pinned: &[Vec<u8>],
    unpinned: &[(CaPin, Vec<u8>)],
    opts: &Options,
) {
    use crate::clock::datehdr::{Outcome, Probe};
    let inner = match crate::http::tls::pinned_verifier(pinned, unpinned) {
        Ok(v) => v,
        Err(e) => {
            crate::warn!("clock: no verified Date from {url}: {e}");
            return;
        }
    };
    let probe = std::sync::Arc::new(Probe::new(inner));
    let date = match date_over(url, probe.clone(), timeouts(opts).connect).await {
        Ok(d) => d,
        Err(e) => {
            crate::warn!("clock: no verified Date taken: GET {url}/version: {e}");
            return;
        }
    };
    match probe.conclude(url, date.as_deref()) {
        Ok(Outcome::NotNeeded) => {}
        Ok(Outcome::Taken(d)) => crate::info!(
            "clock: taking the time from the Date header of {url} over TLS verified against the pinned \
             cluster CA: {d} (source verified-date-header)"
        ),
        Err(e) => crate::warn!(
            "clock: no verified Date taken from {url}/version: {e}; certificates are checked at \
             the best time known (the clock, or this build's time when the clock is earlier)"
        ),
    }
}

/// One anonymous `GET <url>/version` (no token, no client certificate) over TLS verified by
/// `probe`, bounded by `timeout`: the answer's raw `Date` header.
async fn date_over(
    url: &str,
    probe: std::sync::Arc<crate::clock::datehdr::Probe>,
    timeout: std::time::Duration,
) -> Result<Option<String>, String> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let tls = crate::http::tls::ring_builder()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(probe)
        .with_no_client_auth();
    let (connector, _) =
        crate::http::connector(tls, timeout, None, crate::http::Schemes::HttpsOnly, false);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build::<_, Full<Bytes>>(connector);
    let req = http::Request::get(format!("{}/version", url.trim_end_matches('/')))
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let res = tokio::time::timeout(timeout, client.request(req))
        .await
        .map_err(|_| {
            format!(
                "no answer within {}",
                crate::time::duration::format(timeout)
            )
        })?
        .map_err(|e| {
            let mut s = e.to_string();
            let mut cur = std::error::Error::source(&e);
            while let Some(c) = cur {
                s.push_str(&format!(": {c}"));
                cur = c.source();
            }
            s
        })?;
    Ok(res
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string))
}

/// Whether the `server:` URL `server` names the `host:port` endpoint `endpoint` (host compared
/// without case, `https`'s port 443 when none is given). Anything unparsable is "different", so
/// the verified re-fetch runs.
pub fn same_address(server: &str, endpoint: &str) -> bool {
    let Ok(uri) = server.parse::<http::Uri>() else {
        return false;
    };
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return false;
    }
    let (Some(a), Ok(b)) = (uri.authority(), endpoint.parse::<http::uri::Authority>()) else {
        return false;
    };
    a.host().eq_ignore_ascii_case(b.host())
        && a.port_u16().unwrap_or(443) == b.port_u16().unwrap_or(443)
        && !a.as_str().contains('@')
}

/// What the offline checks of token discovery established about a cluster-info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed `kubeconfig`, byte for byte (the verified re-fetch must match it).
    pub kubeconfig: String,
    /// Its cluster's `server:`.
    pub server: String,
    /// Its `certificate-authority-data`, as carried.
    pub ca_pem: Vec<u8>,
    /// Every certificate of `ca_pem`, DER, in bundle order.
    pub ca_der: Vec<Vec<u8>>,
    /// What is trusted from here on: the certificates a pin matched (each once), or with no
    /// pins (the unsafe opt-in) every certificate of the bundle.
    pub trusted: Vec<Vec<u8>>,
    /// The certificates of the bundle no pin matched, with their pins (empty without pins).
    pub unpinned: Vec<(CaPin, Vec<u8>)>,
    /// The first pin that matched; `None` only when `pins` was empty (the unsafe opt-in).
    pub matched_pin: Option<CaPin>,
}

/// Steps 2–3 of token discovery (spec §2.2), on the `data` of a fetched cluster-info: the
/// detached JWS of our token over the exact `kubeconfig` bytes, the signed kubeconfig's cluster
/// and CA bundle, and, when `pins` is not empty, a CA of that bundle matching a pin. No I/O:
/// this is everything that decides whether the content of an untrusted answer is trusted.
pub fn verify_cluster_info(
    data: &BTreeMap<String, String>,
    endpoint: &str,
    token: &BootstrapToken,
    pins: &PinSet,
) -> Result<Verified, Error> {
    let kc = verify_jws(data, endpoint, token)?;
    verify_signed_kubeconfig(kc, endpoint, pins)
}

/// Step 2: the `kubeconfig` of `data`, if our token's detached JWS over its exact bytes is there
/// and valid.
pub fn verify_jws(
    data: &BTreeMap<String, String>,
    endpoint: &str,
    token: &BootstrapToken,
) -> Result<String, Error> {
    let id = token.id();
    let kc = match data.get(KUBECONFIG_KEY) {
        Some(kc) if !kc.is_empty() => kc.clone(),
        _ => {
            return Err(Error::NoKubeconfigKey {
                endpoint: endpoint.to_string(),
            })
        }
    };
    let sig = match data.get(&jws_key(id)) {
        Some(s) if !s.is_empty() => s,
        _ => {
            return Err(Error::EmptyJws {
                endpoint: endpoint.to_string(),
                token_id: id.to_string(),
            })
        }
    };
    if !jws::verify_detached(sig, kc.as_bytes(), id, token.secret()) {
        return Err(Error::BadJws {
            endpoint: endpoint.to_string(),
            token_id: id.to_string(),
        });
    }
    Ok(kc)
}

/// Step 3, on a kubeconfig whose JWS verified: its cluster, its CA bundle, and (when `pins` is
/// not empty) a CA of the bundle matching a pin.
pub fn verify_signed_kubeconfig(
    kc: String,
    endpoint: &str,
    pins: &PinSet,
) -> Result<Verified, Error> {
    let config = Kubeconfig::parse(&kc).map_err(|source| Error::ClusterInfoKubeconfig {
        endpoint: endpoint.to_string(),
        source,
    })?;
    let cluster = config
        .cluster()
        .map_err(|source| Error::ClusterInfoKubeconfig {
            endpoint: endpoint.to_string(),
            source,
        })?
        .cluster
        .clone();
    let ca_pem = cluster.certificate_authority_data.unwrap_or_default();
    let ca_der = certs_from_pem(&ca_pem).map_err(|source| Error::ClusterInfoCa {
        endpoint: endpoint.to_string(),
        source,
    })?;
    if pins.is_empty() {
        let mut trusted: Vec<Vec<u8>> = Vec::with_capacity(ca_der.len());
        for der in &ca_der {
            if !trusted.contains(der) {
                trusted.push(der.clone());
            }
        }
        return Ok(Verified {
            kubeconfig: kc,
            server: cluster.server,
            ca_pem,
            ca_der,
            trusted,
            unpinned: Vec::new(),
            matched_pin: None,
        });
    }
    let split = pins.partition(&ca_der).map_err(|e| Error::ClusterInfoCa {
        endpoint: endpoint.to_string(),
        source: e.into(),
    })?;
    let Some((matched, _)) = split.pinned.first().cloned() else {
        let seen = ca_der
            .iter()
            .filter_map(|d| CaPin::of_cert_der(d).ok())
            .collect();
        return Err(Error::PinMismatch {
            endpoint: endpoint.to_string(),
            expected: pins.pins().to_vec(),
            seen,
        });
    };
    Ok(Verified {
        kubeconfig: kc,
        server: cluster.server,
        ca_pem,
        ca_der,
        trusted: split.pinned.into_iter().map(|(_, der)| der).collect(),
        unpinned: split.unpinned,
        matched_pin: Some(matched),
    })
}

/// The fetch loop of §2.2 step 2: done once our token's JWS key is present.
async fn fetch_signed(
    client: &crate::kube::Client,
    ctx: &FetchContext<'_>,
    label: &str,
    opts: &Options,
) -> Result<BTreeMap<String, String>, Error> {
    let key = jws_key(ctx.token_id.unwrap_or_default());
    poll_cluster_info(client, ctx.url, label, opts, |res| match res {
        Ok(cm) => {
            let data = data_of(cm);
            if data.contains_key(&key) {
                Verdict::Done(data)
            } else if !data.contains_key(KUBECONFIG_KEY) {
                Verdict::Retry(Miss::NoKubeconfig)
            } else {
                Verdict::Retry(Miss::NoJws)
            }
        }
        Err(miss) => Verdict::Retry(miss),
    })
    .await
    .map_err(|g| gave_up_error(g, ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_address_compares_host_and_port() {
        assert!(same_address("https://127.0.0.1:6443", "127.0.0.1:6443"));
        assert!(same_address("https://CP.example:6443/", "cp.example:6443"));
        assert!(same_address("https://cp.example", "cp.example:443"));
        assert!(same_address("https://[::1]:6443", "[::1]:6443"));
        assert!(!same_address("https://127.0.0.1:6443", "127.0.0.2:6443"));
        assert!(!same_address("https://127.0.0.1:6443", "127.0.0.1:7443"));
        assert!(!same_address("https://lb.example:6443", "127.0.0.1:6443"));
        assert!(!same_address("http://127.0.0.1:6443", "127.0.0.1:6443"));
        assert!(!same_address("not a url", "127.0.0.1:6443"));
    }

    #[test]
    fn keys() {
        assert_eq!(jws_key("abcdef"), "jws-kubeconfig-abcdef");
    }

    #[test]
    fn real_capture_passes_every_offline_check() {
        // What discovery does between the two fetches, on the v1.28.7 capture.
        let json = include_str!("../../tests/fixtures/apiserver/cluster-info.anonymous.json");
        let cm: crate::kube::types::ConfigMap = serde_json::from_str(json).unwrap();
        let data = data_of(cm);
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let kc = &data[KUBECONFIG_KEY];
        assert!(jws::verify_detached(
            &data[&jws_key("abcdef")],
            kc.as_bytes(),
            token.id(),
            token.secret()
        ));
        let config = Kubeconfig::parse(kc).unwrap();
        // The signed bytes are exactly what our emitter writes (old client-go: preferences line).
        assert_eq!(&config.render(), kc);
        let cluster = &config.cluster().unwrap().cluster;
        assert_eq!(cluster.server, "https://127.0.0.1:6443");
        let ders = certs_from_pem(cluster.certificate_authority_data.as_deref().unwrap()).unwrap();
        let pin = include_str!("../../tests/fixtures/apiserver/ca-pin.txt").trim();
        let pins = PinSet::parse(&[pin]).unwrap();
        assert_eq!(pins.matching(&ders).unwrap().unwrap().to_string(), pin);
    }

    #[test]
    fn verify_cluster_info_on_the_real_capture() {
        let json = include_str!("../../tests/fixtures/apiserver/cluster-info.anonymous.json");
        let data = data_of(super::super::decode_cluster_info(json.as_bytes()).unwrap());
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let pin = include_str!("../../tests/fixtures/apiserver/ca-pin.txt").trim();
        let v = verify_cluster_info(&data, "ep", &token, &PinSet::parse(&[pin]).unwrap()).unwrap();
        assert_eq!(v.server, "https://127.0.0.1:6443");
        assert_eq!(v.matched_pin.unwrap().to_string(), pin);
        assert_eq!(&v.kubeconfig, &data[KUBECONFIG_KEY]);
        // No pins (the unsafe opt-in): the JWS alone, nothing matched.
        let v =
            verify_cluster_info(&data, "ep", &token, &PinSet::parse::<&str>(&[]).unwrap()).unwrap();
        assert_eq!(v.matched_pin, None);
        // Another secret: the JWS fails before anything else is looked at.
        let other = BootstrapToken::parse("abcdef.0123456789abcdee").unwrap();
        assert!(matches!(
            verify_cluster_info(&data, "ep", &other, &PinSet::parse(&[pin]).unwrap()),
            Err(Error::BadJws { .. })
        ));
        let foreign = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3";
        assert!(matches!(
            verify_cluster_info(&data, "ep", &token, &PinSet::parse(&[foreign]).unwrap()),
            Err(Error::PinMismatch { .. })
        ));
        assert!(matches!(
            super::super::decode_cluster_info(b"{\"kind\":"),
            Err(super::super::MalformedClusterInfo::NotConfigMap(_))
        ));
        assert!(matches!(
            super::super::decode_cluster_info(&vec![b' '; (1 << 20) + 1]),
            Err(super::super::MalformedClusterInfo::TooLarge { limit: 1_048_576 })
        ));
    }

    #[test]
    fn dry_run_vector_passes_every_offline_check() {
        // spec §11.4: token abcdef.abcdef0123456789, pin 3b793efe…
        let kc = include_str!("../../tests/fixtures/upstream/dryrun-cluster-info-kubeconfig.yaml");
        let sig =
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..wUZ0q9o0VK1RWFptmSBOEem2bXHWrHyxrposHg0mb1w";
        assert!(jws::verify_detached(
            sig,
            kc.as_bytes(),
            "abcdef",
            "abcdef0123456789"
        ));
        let config = Kubeconfig::parse(kc).unwrap();
        let ders = certs_from_pem(
            config
                .cluster()
                .unwrap()
                .cluster
                .certificate_authority_data
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        let pins = PinSet::parse(&[
            "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a",
        ])
        .unwrap();
        assert!(pins.matching(&ders).unwrap().is_some());
    }
}
