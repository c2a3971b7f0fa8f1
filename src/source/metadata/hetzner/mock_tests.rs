use super::*;
use crate::source::metadata::mock::{transport, MockReply, MockServer};

#[tokio::test]
async fn user_data_hostname_and_private_network_address() {
    let srv = MockServer::start(|r| match r.path.as_str() {
        "/hetzner/v1/userdata" => MockReply::ok("endpoint: 10.0.0.1:6443\n"),
        "/hetzner/v1/metadata/hostname" => MockReply::ok("cx22-worker"),
        "/hetzner/v1/metadata/private-networks" => MockReply::ok(
            "- ip: 10.0.0.2\n  alias_ips: []\n  interface_num: 1\n  mac_address: 86:00:00:2a:7d:e0\n  network_id: 1234\n  network_name: nw\n  network: 10.0.0.0/16\n  subnet: 10.0.0.0/24\n  gateway: 10.0.0.1\n",
        ),
        "/hetzner/v1/metadata/public-ipv4" => MockReply::ok("203.0.113.5"),
        _ => MockReply::status(404),
    })
    .await;
    let h = Hetzner::new(&srv.url(), transport(), Retry::none());
    assert_eq!(
        h.user_data().await.unwrap().bytes,
        b"endpoint: 10.0.0.1:6443\n"
    );
    let f = h.node_facts().await.unwrap();
    assert_eq!(f.hostname.as_deref(), Some("cx22-worker"));
    assert_eq!(f.ipv4, Some("10.0.0.2".parse().unwrap()));
}

#[tokio::test]
async fn public_address_without_private_networks() {
    let srv = MockServer::start(|r| match r.path.as_str() {
        "/hetzner/v1/metadata/private-networks" => MockReply::ok("[]"),
        "/hetzner/v1/metadata/public-ipv4" => MockReply::ok("203.0.113.5"),
        _ => MockReply::status(404),
    })
    .await;
    let f = Hetzner::new(&srv.url(), transport(), Retry::none())
        .node_facts()
        .await
        .unwrap();
    assert_eq!(f.ipv4, Some("203.0.113.5".parse().unwrap()));
}

#[tokio::test]
async fn empty_user_data_is_no_user_data() {
    let srv = MockServer::start(|_| MockReply::ok("")).await;
    let e = Hetzner::new(&srv.url(), transport(), Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no user-data: provider hetzner at {}/hetzner/v1/userdata returned an empty document",
            srv.url()
        )
    );
}
