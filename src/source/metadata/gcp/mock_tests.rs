use super::*;
use crate::source::metadata::mock::{transport, MockReply, MockServer};
use std::time::{Duration, Instant};

fn gce(kubejoin_config: bool) -> impl Fn(&crate::source::metadata::mock::MockRequest) -> MockReply {
    move |r| {
        if r.header("metadata-flavor") != Some("Google") {
            return MockReply::status(403);
        }
        match r.path.as_str() {
            "/computeMetadata/v1/instance/attributes/kubejoin-config" if kubejoin_config => {
                MockReply::ok("dedicated")
            }
            "/computeMetadata/v1/instance/attributes/user-data" => {
                MockReply::ok("#cloud-config\nkubejoin: {}\n")
            }
            "/computeMetadata/v1/instance/hostname" => MockReply::ok("vm-1.c.proj.internal"),
            "/computeMetadata/v1/instance/network-interfaces/0/ip" => MockReply::ok("10.128.0.5"),
            _ => MockReply::status(404),
        }
    }
}

#[tokio::test]
async fn prefers_kubejoin_config_attribute_and_sends_the_flavor_header() {
    let srv = MockServer::start(gce(true)).await;
    let g = Gcp::new(&srv.url(), transport(), Retry::none());
    assert_eq!(g.user_data().await.unwrap().bytes, b"dedicated");
    assert_eq!(
        srv.hits(),
        ["GET /computeMetadata/v1/instance/attributes/kubejoin-config"]
    );
}

#[tokio::test]
async fn falls_back_to_user_data_then_facts() {
    let srv = MockServer::start(gce(false)).await;
    let g = Gcp::new(&srv.url(), transport(), Retry::none());
    let ud = g.user_data().await.unwrap();
    assert!(ud.location.ends_with("/attributes/user-data"));
    let f = g.node_facts().await.unwrap();
    assert_eq!(f.hostname.as_deref(), Some("vm-1.c.proj.internal"));
    assert_eq!(f.ipv4, Some("10.128.0.5".parse().unwrap()));
}

#[tokio::test]
async fn no_user_data_names_the_user_data_url() {
    let srv = MockServer::start(|_| MockReply::status(404)).await;
    let e = Gcp::new(&srv.url(), transport(), Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("no user-data: provider gcp at {}/computeMetadata/v1/instance/attributes/user-data returned 404", srv.url())
    );
}

#[tokio::test]
async fn stalled_server_times_out_bounded() {
    let srv = MockServer::start(|_| MockReply::Stall).await;
    let started = Instant::now();
    let e = Gcp::new(&srv.url(), transport(), Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            MetadataError::Timeout {
                provider: Platform::Gcp,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn malformed_ip_is_reported() {
    let srv = MockServer::start(|r| match r.path.as_str() {
        "/computeMetadata/v1/instance/network-interfaces/0/ip" => MockReply::ok("not-an-ip"),
        _ => MockReply::ok("h"),
    })
    .await;
    let e = Gcp::new(&srv.url(), transport(), Retry::none())
        .node_facts()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("\"not-an-ip\" is not an IP address"),
        "{e}"
    );
}
