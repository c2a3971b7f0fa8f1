//! `scripts/demo --kubeconfig`: join a VM to a real cluster.
//!
//! With an admin kubeconfig it does what `kubeadm token create --print-join-command` does:
//! creates a short-lived bootstrap token (a `bootstrap-token-<id>` Secret in `kube-system`,
//! usable for authentication and for signing cluster-info, in kubeadm's default node group),
//! computes the pin of the cluster CA from the kubeconfig, and derives the endpoint the guest
//! dials (a loopback API server is reached from a qemu user-network guest at 10.0.2.2).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kubejoin::pki::pin::CaPin;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The group kubeadm's RBAC lets join (CSR creation, auto-approval).
pub const NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// What the VM needs to join a real cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinData {
    /// `host:port` as the guest dials it.
    pub endpoint: String,
    /// `sha256:…` of every CA certificate in the kubeconfig.
    pub pins: Vec<String>,
    /// The API server URL as the kubeconfig has it.
    pub server: String,
}

/// `host:port` of an API server URL, as a qemu user-network guest reaches it: loopback
/// addresses become 10.0.2.2 (the host), a missing port becomes 443.
pub fn guest_endpoint(server: &str) -> Result<String, String> {
    let rest = server
        .strip_prefix("https://")
        .ok_or_else(|| format!("{server}: the API server URL must be https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h.to_string(), p.to_string()),
        _ => (authority.to_string(), "443".to_string()),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    let host = if loopback {
        crate::harness::HOST_FROM_GUEST.to_string()
    } else {
        host
    };
    Ok(format!("{host}:{port}"))
}

/// The pins of the CA certificates (DER).
pub fn pins(ca_der: &[Vec<u8>]) -> Result<Vec<String>, String> {
    ca_der
        .iter()
        .map(|d| {
            CaPin::of_cert_der(d)
                .map(|p| p.to_string())
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The bootstrap-token Secret for `id.secret`, expiring `ttl` after `now`.
pub fn token_secret(id: &str, secret: &str, ttl: Duration, now: SystemTime) -> Secret {
    let expires = now
        .checked_add(ttl)
        .unwrap_or(now)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expiration = kubejoin::time::calendar::rfc3339(i64::try_from(expires).unwrap_or(i64::MAX));
    let data: BTreeMap<String, String> = [
        ("token-id", id.to_string()),
        ("token-secret", secret.to_string()),
        ("expiration", expiration.clone()),
        ("usage-bootstrap-authentication", "true".into()),
        ("usage-bootstrap-signing", "true".into()),
        ("auth-extra-groups", NODE_TOKEN_GROUP.into()),
        (
            "description",
            format!("kubejoin demo VM join, expires {expiration}"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        string_data: Some(data),
        ..Default::default()
    }
}

/// Reads the admin kubeconfig, creates a token valid for `ttl`, and returns the token and the
/// join data.
pub async fn prepare(
    kubeconfig: &std::path::Path,
    ttl: Duration,
) -> Result<(String, JoinData), String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("reading {}: {e}", kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| format!("loading {}: {e}", kubeconfig.display()))?;
    let server = cfg
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let ca = cfg.root_cert.clone().unwrap_or_default();
    if ca.is_empty() {
        return Err(format!(
            "{} has no certificate-authority(-data): there is nothing to pin",
            kubeconfig.display()
        ));
    }
    let data = JoinData {
        endpoint: guest_endpoint(&server)?,
        pins: pins(&ca)?,
        server,
    };
    let client = kube::Client::try_from(cfg).map_err(|e| format!("building a client: {e}"))?;
    let token = crate::harness::random_token();
    let (id, secret) = token.split_once('.').ok_or("bad token")?;
    let api: Api<Secret> = Api::namespaced(client, "kube-system");
    api.create(
        &PostParams::default(),
        &token_secret(id, secret, ttl, SystemTime::now()),
    )
    .await
    .map_err(|e| {
        format!("creating the bootstrap token Secret kube-system/bootstrap-token-{id}: {e}")
    })?;
    Ok((token, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_as_the_guest_sees_them() {
        assert_eq!(
            guest_endpoint("https://127.0.0.1:6443").unwrap(),
            "10.0.2.2:6443"
        );
        assert_eq!(
            guest_endpoint("https://localhost:6443/").unwrap(),
            "10.0.2.2:6443"
        );
        assert_eq!(
            guest_endpoint("https://[::1]:6443").unwrap(),
            "10.0.2.2:6443"
        );
        assert_eq!(
            guest_endpoint("https://cp.example.com").unwrap(),
            "cp.example.com:443"
        );
        assert_eq!(
            guest_endpoint("https://192.0.2.10:6443").unwrap(),
            "192.0.2.10:6443"
        );
        assert!(guest_endpoint("http://x:1").is_err());
    }

    #[test]
    fn the_token_secret_is_what_kubeadm_creates() {
        let s = token_secret(
            "abcdef",
            "0123456789abcdef",
            Duration::from_secs(900),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
        let d = s.string_data.unwrap();
        assert_eq!(d["expiration"], "2023-11-14T22:28:20Z");
        assert_eq!(d["usage-bootstrap-authentication"], "true");
        assert_eq!(d["usage-bootstrap-signing"], "true");
        assert_eq!(d["auth-extra-groups"], NODE_TOKEN_GROUP);
    }

    #[test]
    fn pins_of_the_fixture_ca() {
        let pem = include_bytes!("../../fixtures/apiserver/ca.crt");
        let want = include_str!("../../fixtures/apiserver/ca-pin.txt").trim();
        let der = kubejoin::pki::pem::certs_from_pem(pem).unwrap();
        assert_eq!(pins(&der).unwrap(), vec![want.to_string()]);
    }
}
