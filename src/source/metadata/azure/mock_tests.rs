use super::*;
use crate::source::metadata::mock::{transport, MockReply, MockServer};

fn imds(body: &'static str) -> impl Fn(&crate::source::metadata::mock::MockRequest) -> MockReply {
    move |r| {
        if r.header("metadata") != Some("true") {
            return MockReply::status(400);
        }
        match r.path.as_str() {
            "/metadata/instance/compute/userData?api-version=2021-01-01&format=text" => MockReply::ok(body),
            "/metadata/instance/compute/osProfile/computerName?api-version=2021-01-01&format=text" => {
                MockReply::ok("AKS-Node-0")
            }
            "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-01-01&format=text" => {
                MockReply::ok("10.240.0.4")
            }
            _ => MockReply::status(404),
        }
    }
}

#[tokio::test]
async fn decodes_base64_user_data_with_the_metadata_header() {
    // "endpoint: 10.0.0.1:6443\n"
    let srv = MockServer::start(imds("ZW5kcG9pbnQ6IDEwLjAuMC4xOjY0NDMK")).await;
    let az = Azure::new(&srv.url(), transport(), Retry::none());
    let ud = az.user_data().await.unwrap();
    assert_eq!(ud.bytes, b"endpoint: 10.0.0.1:6443\n");
    assert!(
        ud.location
            .ends_with("userData?api-version=2021-01-01&format=text"),
        "{}",
        ud.location
    );
    let f = az.node_facts().await.unwrap();
    assert_eq!(f.hostname.as_deref(), Some("AKS-Node-0"));
    assert_eq!(f.ipv4, Some("10.240.0.4".parse().unwrap()));
}

#[tokio::test]
async fn empty_and_invalid_user_data() {
    let srv = MockServer::start(imds("")).await;
    let e = Azure::new(&srv.url(), transport(), Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            MetadataError::EmptyUserData {
                provider: Platform::Azure,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("no user-data: provider azure at http://127.0.0.1:"),
        "{e}"
    );

    let srv = MockServer::start(imds("%%% not base64")).await;
    let e = Azure::new(&srv.url(), transport(), Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("userData is not base64"), "{e}");
}

#[tokio::test]
async fn http_errors_name_the_url() {
    let srv = MockServer::start(|_| MockReply::status(500)).await;
    let e = Azure::new(&srv.url(), transport(), Retry::none())
        .user_data()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "provider azure: {}{USER_DATA_PATH} returned HTTP 500",
            srv.url()
        )
    );
}
