use super::*;
use crate::source::metadata::mock::{transport, MockReply, MockServer};

#[tokio::test]
async fn user_data_and_private_address_first() {
    let srv = MockServer::start(|r| match r.path.as_str() {
        "/metadata/v1/user-data" => {
            MockReply::ok("#cloud-config\nkubejoin:\n  platform: digitalocean\n")
        }
        "/metadata/v1/hostname" => MockReply::ok("droplet-1"),
        "/metadata/v1/interfaces/private/0/ipv4/address" => MockReply::ok("10.116.0.2"),
        "/metadata/v1/interfaces/public/0/ipv4/address" => MockReply::ok("203.0.113.9"),
        _ => MockReply::status(404),
    })
    .await;
    let d = DigitalOcean::new(&srv.url(), transport(), Retry::none());
    assert!(d
        .user_data()
        .await
        .unwrap()
        .bytes
        .starts_with(b"#cloud-config"));
    let f = d.node_facts().await.unwrap();
    assert_eq!(
        (f.hostname.as_deref(), f.ipv4),
        (Some("droplet-1"), Some("10.116.0.2".parse().unwrap()))
    );
    assert_eq!(f.ipv6, None);
}

#[tokio::test]
async fn public_address_when_no_private_interface() {
    let srv = MockServer::start(|r| match r.path.as_str() {
        "/metadata/v1/interfaces/public/0/ipv4/address" => MockReply::ok("203.0.113.9"),
        _ => MockReply::status(404),
    })
    .await;
    let f = DigitalOcean::new(&srv.url(), transport(), Retry::none())
        .node_facts()
        .await
        .unwrap();
    assert_eq!(f.ipv4, Some("203.0.113.9".parse().unwrap()));
    assert_eq!(f.hostname, None);
}

#[tokio::test]
async fn missing_user_data() {
    let srv = MockServer::start(|_| MockReply::status(404)).await;
    let e = DigitalOcean::new(&srv.url(), transport(), Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no user-data: provider digitalocean at {}/metadata/v1/user-data returned 404",
            srv.url()
        )
    );
}
