use super::*;
use crate::source::metadata::http::{HttpTransport, Tls};
use crate::source::metadata::mock::{quick, tls_pair, untrusting_client, MockReply, MockServer};

const DEVICE: &str = r#"{
  "id": "b2ad3f4f-7f4b-4a5e-9a5a-3c1e2d4f5a6b",
  "hostname": "metal-worker-1",
  "plan": "c3.small.x86",
  "network": {
    "addresses": [
      {"id": "1", "address_family": 4, "netmask": "255.255.255.254", "public": true, "management": true, "address": "147.75.0.3", "gateway": "147.75.0.2"},
      {"id": "2", "address_family": 6, "netmask": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0", "public": true, "management": true, "address": "2604:1380::3", "gateway": "2604:1380::2"},
      {"id": "3", "address_family": 4, "netmask": "255.255.255.254", "public": false, "management": true, "address": "10.70.1.3", "gateway": "10.70.1.2"}
    ]
  }
}"#;

#[tokio::test]
async fn over_https_with_injected_roots() {
    let (server_cfg, client_cfg) = tls_pair();
    let srv = MockServer::start_tls(server_cfg, |r| match r.path.as_str() {
        "/userdata" => MockReply::ok("endpoint: 10.0.0.1:6443\n"),
        "/metadata" => MockReply::ok(DEVICE),
        _ => MockReply::status(404),
    })
    .await;
    let t = Arc::new(HttpTransport::new(quick(), Tls::Config(client_cfg)).unwrap());
    let e = Equinix::new(&srv.url(), t, Retry::none());
    assert_eq!(
        e.user_data().await.unwrap().bytes,
        b"endpoint: 10.0.0.1:6443\n"
    );
    let f = e.node_facts().await.unwrap();
    assert_eq!(f.hostname.as_deref(), Some("metal-worker-1"));
    assert_eq!(
        f.ipv4,
        Some("10.70.1.3".parse().unwrap()),
        "private address preferred"
    );
    assert_eq!(f.ipv6, Some("2604:1380::3".parse().unwrap()));
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let (server_cfg, _) = tls_pair();
    let srv = MockServer::start_tls(server_cfg, |_| MockReply::ok("secret")).await;
    let t = Arc::new(HttpTransport::new(quick(), Tls::Config(untrusting_client())).unwrap());
    let e = Equinix::new(&srv.url(), t, Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            MetadataError::Unreachable {
                provider: Platform::Equinix,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("/userdata"), "{e}");
}

#[tokio::test]
async fn https_is_refused_by_a_plain_transport() {
    let t = Arc::new(HttpTransport::new(quick(), Tls::Disabled).unwrap());
    let e = Equinix::new(DEFAULT_BASE, t, Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("https is not enabled"), "{e}");
}
