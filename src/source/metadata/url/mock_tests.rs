use super::*;
use crate::source::metadata::http::{HttpTransport, Tls};
use crate::source::metadata::mock::{quick, tls_pair, transport, MockReply, MockServer};

fn vars() -> Vars {
    Vars {
        mac: Some("52:54:00:12:34:56".into()),
        uuid: Some("4c4c4544-0042-3010-8051-b7c04f4d4d31".into()),
        serial: Some("SN 42/x".into()),
        hostname: Some("node-a".into()),
    }
}

#[test]
fn substitutes_and_encodes_variables() {
    let u = substitute(
        "https://cfg.example/${mac}/${uuid}?h=${hostname}&s=${serial}",
        &vars(),
    )
    .unwrap();
    assert_eq!(u, "https://cfg.example/52:54:00:12:34:56/4c4c4544-0042-3010-8051-b7c04f4d4d31?h=node-a&s=SN%2042%2Fx");
    let e = substitute("https://x/${nope}", &vars()).unwrap_err();
    assert!(
        e.to_string().contains("cannot substitute ${nope}")
            && e.to_string().contains("unknown variable"),
        "{e}"
    );
    let e = substitute("https://x/${uuid}", &Vars::default()).unwrap_err();
    assert!(e.to_string().contains("does not report it"), "{e}");
    assert!(substitute("https://x/${mac", &vars()).is_err());
}

#[test]
fn reads_variables_under_the_root() {
    let root = tempfile::tempdir().unwrap();
    let w = |p: &str, v: &str| {
        let p = root.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, v).unwrap();
    };
    w("sys/class/dmi/id/product_uuid", "4C4C4544-0042\n");
    w("proc/sys/kernel/hostname", "pxe-7\n");
    w("sys/class/net/lo/type", "772\n");
    w("sys/class/net/lo/address", "00:00:00:00:00:00\n");
    w("sys/class/net/eth1/type", "1\n");
    w("sys/class/net/eth1/ifindex", "3\n");
    w("sys/class/net/eth1/address", "52:54:00:00:00:02\n");
    w("sys/class/net/eth0/type", "1\n");
    w("sys/class/net/eth0/ifindex", "2\n");
    w("sys/class/net/eth0/address", "52:54:00:00:00:01\n");
    let v = Vars::from_root(&Root::new(root.path()));
    assert_eq!(v.mac.as_deref(), Some("52:54:00:00:00:01"));
    assert_eq!(v.uuid.as_deref(), Some("4c4c4544-0042"));
    assert_eq!(v.hostname.as_deref(), Some("pxe-7"));
    assert_eq!(v.serial, None);
}

#[test]
fn redacts_credentials_and_queries() {
    assert_eq!(
        redact("https://u:p@h.example/a/b?sig=SECRET"),
        "https://h.example/a/b?<redacted>"
    );
    assert_eq!(redact("http://h/a"), "http://h/a");
}

#[tokio::test]
async fn plain_http_needs_a_pin() {
    let e = UrlProvider::new(
        "http://10.1.1.1/${mac}.yaml",
        false,
        &vars(),
        transport(),
        Retry::none(),
    )
    .unwrap_err();
    assert!(matches!(e, MetadataError::InsecureUrl { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("http://10.1.1.1/52:54:00:12:34:56.yaml without kubejoin.config.sha256"),
        "{e}"
    );
    assert!(UrlProvider::new(
        "http://10.1.1.1/x",
        true,
        &vars(),
        transport(),
        Retry::none()
    )
    .is_ok());
}

#[tokio::test]
async fn fetches_the_substituted_url() {
    let srv = MockServer::start(|r| match r.path.as_str() {
        "/nodes/52:54:00:12:34:56.yaml" => MockReply::ok("endpoint: 10.0.0.1:6443\n"),
        _ => MockReply::status(404),
    })
    .await;
    let p = UrlProvider::new(
        &format!("{}/nodes/${{mac}}.yaml", srv.url()),
        true,
        &vars(),
        transport(),
        Retry::none(),
    )
    .unwrap();
    assert_eq!(
        p.user_data().await.unwrap().bytes,
        b"endpoint: 10.0.0.1:6443\n"
    );
    let p = UrlProvider::new(
        &format!("{}/nodes/${{uuid}}?token=s3cret", srv.url()),
        true,
        &vars(),
        transport(),
        Retry::none(),
    )
    .unwrap();
    let e = p.user_data().await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!("no user-data: provider url at {}/nodes/4c4c4544-0042-3010-8051-b7c04f4d4d31?<redacted> returned 404", srv.url())
    );
}

#[tokio::test]
async fn https_with_injected_roots() {
    let (server_cfg, client_cfg) = tls_pair();
    let srv = MockServer::start_tls(server_cfg, |_| MockReply::ok("over tls")).await;
    let t = Arc::new(HttpTransport::new(quick(), Tls::Config(client_cfg)).unwrap());
    let p = UrlProvider::new(
        &format!("{}/c.yaml", srv.url()),
        false,
        &vars(),
        t,
        Retry::none(),
    )
    .unwrap();
    assert_eq!(p.user_data().await.unwrap().bytes, b"over tls");
}

#[tokio::test]
async fn stalled_server_is_bounded() {
    let srv = MockServer::start(|_| MockReply::Stall).await;
    let p = UrlProvider::new(
        &format!("{}/c", srv.url()),
        true,
        &vars(),
        transport(),
        Retry::none(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let e = p.user_data().await.unwrap_err();
    assert!(
        matches!(
            e,
            MetadataError::Timeout {
                provider: Platform::Url,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}
