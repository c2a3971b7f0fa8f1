use super::*;
use crate::source::metadata::mock::{transport, MockReply, MockServer};

const META: &str = r#"{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "os-worker-1.novalocal", "name": "os-worker-1", "availability_zone": "nova", "launch_index": 0}"#;

#[tokio::test]
async fn metadata_service() {
    let srv = MockServer::start(|r| match r.path.as_str() {
        "/openstack/latest/user_data" => MockReply::ok("endpoint: 10.0.0.1:6443\n"),
        "/openstack/latest/meta_data.json" => MockReply::ok(META),
        "/latest/meta-data/local-ipv4" => MockReply::ok("192.168.0.12"),
        _ => MockReply::status(404),
    })
    .await;
    let o = OpenStack::new(&srv.url(), None, transport(), Retry::none());
    assert_eq!(
        o.user_data().await.unwrap().bytes,
        b"endpoint: 10.0.0.1:6443\n"
    );
    let f = o.node_facts().await.unwrap();
    assert_eq!(f.hostname.as_deref(), Some("os-worker-1.novalocal"));
    assert_eq!(f.ipv4, Some("192.168.0.12".parse().unwrap()));
}

#[tokio::test]
async fn config_drive_is_read_without_network() {
    let drive = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(drive.path().join("openstack/latest")).unwrap();
    std::fs::create_dir_all(drive.path().join("ec2/latest")).unwrap();
    std::fs::write(
        drive.path().join("openstack/latest/user_data"),
        "from the drive",
    )
    .unwrap();
    std::fs::write(drive.path().join("openstack/latest/meta_data.json"), META).unwrap();
    std::fs::write(
        drive.path().join("ec2/latest/meta-data.json"),
        r#"{"local-ipv4": "192.168.0.13"}"#,
    )
    .unwrap();
    // A base URL nothing listens on: the drive must answer everything.
    let o = OpenStack::new(
        &crate::source::metadata::mock::closed_url().await,
        Some(drive.path().into()),
        transport(),
        Retry::none(),
    );
    assert_eq!(o.user_data().await.unwrap().bytes, b"from the drive");
    let f = o.node_facts().await.unwrap();
    assert_eq!(f.hostname.as_deref(), Some("os-worker-1.novalocal"));
    assert_eq!(f.ipv4, Some("192.168.0.13".parse().unwrap()));
}

#[tokio::test]
async fn config_drive_without_user_data() {
    let drive = tempfile::tempdir().unwrap();
    let o = OpenStack::new(
        "http://unused.invalid",
        Some(drive.path().into()),
        transport(),
        Retry::none(),
    );
    let e = o.user_data().await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no user-data: provider openstack has no "),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("openstack/latest/user_data on the config drive"),
        "{e}"
    );
}

#[test]
fn finds_the_config_drive_by_label_under_the_root() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(find_config_drive(&Root::new(root.path())), None);
    std::fs::create_dir_all(root.path().join("dev/disk/by-label")).unwrap();
    std::fs::write(root.path().join("dev/disk/by-label/CONFIG-2"), "").unwrap();
    assert_eq!(
        find_config_drive(&Root::new(root.path())),
        Some(root.path().join("dev/disk/by-label/CONFIG-2"))
    );
}
