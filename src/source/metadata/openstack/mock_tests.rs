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

fn drive_dir() -> tempfile::TempDir {
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
    drive
}

#[tokio::test]
async fn config_drive_is_read_without_network() {
    let drive = drive_dir();
    let data = DriveData::read(drive.path(), Path::new("/dev/vdb")).unwrap();
    // A base URL nothing listens on: the drive must answer everything.
    let o = OpenStack::new(
        &crate::source::metadata::mock::closed_url().await,
        Some(Arc::new(data)),
        transport(),
        Retry::none(),
    );
    let ud = o.user_data().await.unwrap();
    assert_eq!(ud.bytes, b"from the drive");
    assert_eq!(ud.location, "/dev/vdb:/openstack/latest/user_data");
    let f = o.node_facts().await.unwrap();
    assert_eq!(f.hostname.as_deref(), Some("os-worker-1.novalocal"));
    assert_eq!(f.ipv4, Some("192.168.0.13".parse().unwrap()));
}

#[tokio::test]
async fn config_drive_without_user_data() {
    let drive = tempfile::tempdir().unwrap();
    let data = DriveData::read(drive.path(), Path::new("/dev/sr0")).unwrap();
    let o = OpenStack::new(
        "http://unused.invalid",
        Some(Arc::new(data)),
        transport(),
        Retry::none(),
    );
    let e = o.user_data().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "no user-data: provider openstack has no /openstack/latest/user_data on the config drive /dev/sr0"
    );
}

#[test]
fn an_oversized_user_data_on_the_drive_is_refused() {
    let drive = drive_dir();
    std::fs::write(
        drive.path().join("openstack/latest/user_data"),
        vec![b'a'; MAX_USER_DATA + 1],
    )
    .unwrap();
    let e = DriveData::read(drive.path(), Path::new("/dev/vdb")).unwrap_err();
    assert!(matches!(e, MetadataError::TooLarge { .. }), "{e:?}");
}

#[test]
fn symlinks_on_the_drive_are_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host file").unwrap();
    let drive = drive_dir();
    let ud = drive.path().join("openstack/latest/user_data");
    std::fs::remove_file(&ud).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), &ud).unwrap();
    let e = DriveData::read(drive.path(), Path::new("/dev/sr0")).unwrap_err();
    assert!(
        format!("{:?}", e).contains("is a symlink; refusing to follow it"),
        "{e:?}"
    );
    // A symlinked directory is refused the same way.
    let drive = drive_dir();
    std::fs::remove_dir_all(drive.path().join("openstack/latest")).unwrap();
    std::os::unix::fs::symlink(outside.path(), drive.path().join("openstack/latest")).unwrap();
    assert!(DriveData::read(drive.path(), Path::new("/dev/sr0")).is_err());
}

#[test]
fn finds_the_config_drive_by_label_under_the_root() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(
        find_config_drive(&Root::new(root.path()), &RecordingDrive::new()),
        None
    );
    std::fs::create_dir_all(root.path().join("dev/disk/by-label")).unwrap();
    std::fs::write(root.path().join("dev/disk/by-label/CONFIG-2"), "").unwrap();
    assert_eq!(
        find_config_drive(&Root::new(root.path()), &RecordingDrive::new()),
        Some((root.path().join("dev/disk/by-label/CONFIG-2"), None))
    );
}

// ---- mounting through the seam ----

use crate::sys::drive::{DriveCall, RecordingDrive};

fn fake_drive() -> RecordingDrive {
    RecordingDrive::new()
        .with_file("openstack/latest/user_data", "endpoint: 10.0.0.1:6443\n")
        .with_file("openstack/latest/meta_data.json", META)
}

#[test]
fn the_drive_is_mounted_read_then_unmounted_and_the_directory_removed() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("run/kubejoin/config-drive");
    let sys = fake_drive().accepting("vfat");
    let data = read_config_drive(&sys, Path::new("/dev/vdb"), &dir, None, None).unwrap();
    assert_eq!(
        data.user_data.as_deref(),
        Some(&b"endpoint: 10.0.0.1:6443\n"[..])
    );
    assert!(data.meta_data.is_some());
    assert_eq!(data.ec2_meta_data, None);
    // iso9660 first (what config drives usually are), then vfat; then the unmount.
    let mount = |fstype: &str| DriveCall::MountRo {
        device: "/dev/vdb".into(),
        target: dir.clone(),
        fstype: fstype.into(),
    };
    assert_eq!(
        sys.calls(),
        [
            mount("iso9660"),
            mount("vfat"),
            DriveCall::Unmount {
                target: dir.clone()
            }
        ]
    );
    assert!(!dir.exists(), "the mount directory is removed");
    assert!(
        !format!("{data:?}").contains("10.0.0.1"),
        "user-data is not shown by Debug"
    );
}

#[test]
fn the_type_the_label_was_read_from_is_tried_first() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("config-drive");
    let sys = fake_drive().accepting("vfat");
    read_config_drive(
        &sys,
        Path::new("/dev/vdb"),
        &dir,
        Some(label::FsKind::Vfat),
        None,
    )
    .unwrap();
    assert_eq!(sys.calls().len(), 2, "{:?}", sys.calls());
}

#[test]
fn a_drive_that_mounts_as_nothing_is_an_error_and_leaves_no_directory() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("run/kubejoin/config-drive");
    let sys = fake_drive();
    let e = read_config_drive(&sys, Path::new("/dev/sr0"), &dir, None, None).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("mounting the config drive /dev/sr0 read-only on "),
        "{msg}"
    );
    assert!(
        msg.contains("(tried iso9660: ") && msg.contains("; vfat: "),
        "{msg}"
    );
    assert!(!dir.exists());
    assert!(sys
        .calls()
        .iter()
        .all(|c| matches!(c, DriveCall::MountRo { .. })));
}

#[test]
fn a_read_error_after_the_mount_still_unmounts() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("config-drive");
    let sys = RecordingDrive::new()
        .accepting("iso9660")
        .with_file("openstack/latest/user_data", vec![b'x'; MAX_USER_DATA + 1]);
    let e = read_config_drive(&sys, Path::new("/dev/sr0"), &dir, None, None).unwrap_err();
    assert!(
        matches!(e, DriveError::Read(MetadataError::TooLarge { .. })),
        "{e:?}"
    );
    assert_eq!(
        sys.calls().last(),
        Some(&DriveCall::Unmount {
            target: dir.clone()
        })
    );
    assert!(!dir.exists());
}

#[test]
fn a_leftover_empty_directory_is_reused_but_one_with_content_is_not_mounted_over() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("config-drive");
    std::fs::create_dir(&dir).unwrap();
    let sys = fake_drive().accepting("iso9660");
    read_config_drive(&sys, Path::new("/dev/sr0"), &dir, None, None).unwrap();
    assert!(!dir.exists());

    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("something"), "x").unwrap();
    let sys = fake_drive().accepting("iso9660");
    let e = read_config_drive(&sys, Path::new("/dev/sr0"), &dir, None, None).unwrap_err();
    assert!(matches!(e, DriveError::MountDir { .. }), "{e:?}");
    assert!(sys.calls().is_empty(), "nothing was mounted");
    assert!(dir.join("something").exists(), "nothing was deleted");
}

#[test]
fn an_unmount_that_fails_leaves_the_directory_in_place() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("config-drive");
    let sys = fake_drive()
        .accepting("iso9660")
        .failing_unmount(std::io::ErrorKind::ResourceBusy);
    // The data was read: the join can go on; the busy mount point is only a warning.
    let data = read_config_drive(&sys, Path::new("/dev/sr0"), &dir, None, None).unwrap();
    assert!(data.user_data.is_some());
    assert!(dir.exists());
}

/// The real seam on a real image: builds a config drive image with `genisoimage` or
/// `mkfs.vfat` + `mcopy`, attaches it to a loop device, finds it by its label through
/// `/sys/class/block`, mounts and reads it through `RealDrive`, and checks it is unmounted
/// and its directory gone. Needs root, a free loop device and a kernel that mounts iso9660 or
/// vfat, so it is ignored in a plain `cargo test`; `scripts/test` runs it with `--ignored` when
/// the machine has all of that and otherwise reports it as ignored with the reason. Run on a
/// machine without them, it fails saying what is missing.
#[test]
#[ignore = "needs root, a free loop device and a kernel that mounts iso9660 or vfat: scripts/test runs it with --ignored where it can"]
fn real_config_drive_on_a_loop_device() {
    use crate::sys::drive::RealDrive;
    use std::process::Command;
    let skip = |why: &str| panic!("cannot run here: {why}");
    if !nix::unistd::geteuid().is_root() {
        return skip("not root (run the tests as root, e.g. with sudo -E)");
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let has = |t: &str| fs.lines().any(|l| l.split_whitespace().last() == Some(t));
    let tool = |t: &str| Command::new(t).arg("--version").output().is_ok();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("openstack/latest")).unwrap();
    std::fs::write(
        src.join("openstack/latest/user_data"),
        "endpoint: 10.9.8.7:6443\n",
    )
    .unwrap();
    std::fs::write(src.join("openstack/latest/meta_data.json"), META).unwrap();
    let img = work.path().join("drive.img");
    let built = if has("iso9660") && tool("genisoimage") {
        Command::new("genisoimage")
            .args(["-quiet", "-V", "config-2", "-r", "-J", "-o"])
            .arg(&img)
            .arg(&src)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    } else if has("vfat") && tool("mcopy") {
        let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
        ok(Command::new("truncate").args(["-s", "4M"]).arg(&img))
            && ok(Command::new("mkfs.vfat").args(["-n", "CONFIG-2"]).arg(&img))
            && ok(Command::new("mcopy")
                .args(["-s", "-i"])
                .arg(&img)
                .arg(src.join("openstack"))
                .arg("::/"))
    } else {
        return skip(&format!(
            "this kernel mounts neither iso9660 nor vfat (or genisoimage/mtools are missing); \
             /proc/filesystems has: {}",
            fs.lines()
                .filter(|l| !l.starts_with("nodev"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    };
    assert!(built, "building the image failed");
    let out = Command::new("losetup")
        .args(["-f", "--show", "-r"])
        .arg(&img)
        .output()
        .unwrap();
    if !out.status.success() {
        return skip(&format!(
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let loopdev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.0])
                .status();
        }
    }
    let _detach = Detach(loopdev.clone());
    // Found by label the initramfs way, on the real /sys/class/block and /dev.
    let (found, kind) =
        label::find_by_label(&Root::new("/"), &crate::sys::RealDrive, &LABELS).unwrap();
    assert_eq!(
        found,
        Path::new(&loopdev),
        "another config-2 device on this machine?"
    );
    let dir = work.path().join("run/kubejoin/config-drive");
    let data = read_config_drive(&RealDrive, &found, &dir, Some(kind), None).unwrap();
    assert!(!dir.exists(), "the mount directory is removed");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&loopdev), "still mounted:\n{mounts}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let o = OpenStack::new(
        "http://unused.invalid",
        Some(Arc::new(data)),
        transport(),
        Retry::none(),
    );
    let ud = rt.block_on(o.user_data()).unwrap();
    assert_eq!(ud.bytes, b"endpoint: 10.9.8.7:6443\n");
    let facts = rt.block_on(o.node_facts()).unwrap();
    assert_eq!(facts.hostname.as_deref(), Some("os-worker-1.novalocal"));
}

/// The real seam's failure path, which runs on any kernel as root: a device that is no
/// filesystem at all fails both types, and the mount directory does not stay behind.
#[test]
fn real_mount_of_a_non_filesystem_fails_both_types_and_cleans_up() {
    use crate::sys::drive::RealDrive;
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("zeros.img");
    std::fs::write(&img, vec![0u8; 64 * 1024]).unwrap();
    let dir = work.path().join("run/kubejoin/config-drive");
    let e = read_config_drive(&RealDrive, &img, &dir, None, None).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("(tried iso9660: ") && msg.contains("; vfat: "),
        "{msg}"
    );
    assert!(!dir.exists());
}

/// Each type's module is loaded just before that type's mount is tried, and only for the types
/// tried: a drive that mounts as the type of its label never loads the other one.
#[test]
fn the_filesystem_module_is_loaded_before_its_mount_and_only_for_the_types_tried() {
    use crate::host::filesystems::FsModules;
    use crate::sys::host::RecordingHost;
    use std::sync::Arc;

    /// The recording drive, noting at each mount which filesystem modules were loaded.
    #[derive(Debug)]
    struct Noting {
        inner: RecordingDrive,
        host: Arc<RecordingHost>,
        seen: std::sync::Mutex<Vec<(String, Vec<String>)>>,
    }
    impl Drive for Noting {
        fn block_devices(&self, d: &Path) -> std::io::Result<Vec<String>> {
            self.inner.block_devices(d)
        }
        fn read_head(&self, d: &Path, len: usize) -> std::io::Result<Vec<u8>> {
            self.inner.read_head(d, len)
        }
        fn mount_ro(&self, d: &Path, t: &Path, fstype: &str) -> std::io::Result<()> {
            self.seen
                .lock()
                .unwrap()
                .push((fstype.to_string(), self.host.loaded()));
            self.inner.mount_ro(d, t, fstype)
        }
        fn unmount(&self, t: &Path) -> std::io::Result<()> {
            self.inner.unmount(t)
        }
    }

    let node = tempfile::tempdir().unwrap();
    let write = |rel: &str, content: &str| {
        let p = node.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    };
    write(
        "lib/modules/r/modules.dep",
        "kernel/fs/isofs/isofs.ko:\nkernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\nkernel/fs/fat/fat.ko:\n",
    );
    write(
        "lib/modules/r/modules.alias",
        "alias fs-iso9660 isofs\nalias fs-vfat vfat\n",
    );
    for m in ["isofs/isofs", "fat/vfat", "fat/fat"] {
        write(&format!("lib/modules/r/kernel/fs/{m}.ko"), "");
    }
    write("proc/filesystems", "nodev\tproc\n");
    let run = |first: Option<label::FsKind>| {
        let host = Arc::new(RecordingHost::new("r"));
        let fs = FsModules::new(Root::new(node.path()), host.clone());
        let drive = Noting {
            inner: fake_drive().accepting("vfat"),
            host: host.clone(),
            seen: Default::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        read_config_drive(
            &drive,
            Path::new("/dev/vdb"),
            &dir.path().join("cd"),
            first,
            Some(&fs),
        )
        .unwrap();
        let seen = drive.seen.lock().unwrap().clone();
        seen
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // Label unknown: iso9660 first (isofs loaded before it), then vfat (fat, vfat before it).
    assert_eq!(
        run(None),
        [
            ("iso9660".to_string(), s(&["isofs"])),
            ("vfat".to_string(), s(&["isofs", "fat", "vfat"])),
        ]
    );
    // A FAT label: vfat is tried first and mounts; isofs is never loaded.
    assert_eq!(
        run(Some(label::FsKind::Vfat)),
        [("vfat".to_string(), s(&["fat", "vfat"]))]
    );
}
