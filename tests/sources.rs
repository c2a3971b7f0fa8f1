//! Join sources end to end: recorded boots replayed offline, and the layering rules of
//! `source::load::load` on a temporary root.
//!
//! Each directory of `tests/fixtures/boot/` is one recorded boot (layout in its README): the
//! kernel command line, the metadata responses by URL path, optionally a root with DMI files
//! and `/etc/kubejoin.yaml`, and what `kubejoin plan` must print (`expected-plan.json`) or the
//! error a person must see (`expected-error.txt`). `KUBEJOIN_BLESS=1 cargo test --test sources`
//! rewrites the expectations after an intended change (review the diff).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin::error::{Classify, Report};
use kubejoin::fs::root::Root;
use kubejoin::plan::json::plan_json;
use kubejoin::plan::merge::Source;
use kubejoin::plan::values::Values;
use kubejoin::source::load::{load, LoadError, LoadOptions, MetadataAccess};
use kubejoin::source::metadata::Platform;
use std::path::{Path, PathBuf};

const SECRET: &str = "0123456789abcdef";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/boot")
}

/// Options that replay `case`. Without a `root/` the root is an empty directory, so the
/// machine running the tests never leaks its own DMI or files into a replay.
fn replay_options(case: &Path, empty_root: &Path) -> LoadOptions {
    let root = case.join("root");
    let mut o = LoadOptions::new(Root::new(if root.is_dir() {
        root
    } else {
        empty_root.to_path_buf()
    }));
    o.cmdline_file = Some(case.join("cmdline"));
    o.metadata = MetadataAccess::Recorded(case.join("metadata"));
    o
}

fn rendered(e: &LoadError) -> String {
    format!("{}\n", Report(e, e.hint()))
}

async fn replay(case: &Path) -> Result<serde_json::Value, String> {
    let empty = tempfile::tempdir().unwrap();
    match load(&replay_options(case, empty.path())).await {
        Ok(loaded) => {
            let dbg = format!("{:?}", loaded.settings);
            assert!(
                !dbg.contains(SECRET),
                "{}: token secret in Debug: {dbg}",
                case.display()
            );
            Ok(plan_json(&loaded.settings))
        }
        Err(e) => Err(rendered(&e)),
    }
}

#[tokio::test]
async fn recorded_boots_replay_to_their_expected_plans() {
    let bless = std::env::var_os("KUBEJOIN_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "fixtures missing: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let plan_file = case.join("expected-plan.json");
        let error_file = case.join("expected-error.txt");
        let got = replay(case).await;
        let text = match &got {
            Ok(v) => serde_json::to_string_pretty(v).unwrap() + "\n",
            Err(e) => e.clone(),
        };
        assert!(
            !text.contains(SECRET),
            "{name}: token secret in the output:\n{text}"
        );
        if bless {
            let (write, remove) = if got.is_ok() {
                (&plan_file, &error_file)
            } else {
                (&error_file, &plan_file)
            };
            std::fs::write(write, &text).unwrap();
            let _ = std::fs::remove_file(remove);
            continue;
        }
        let expected = match (
            &got,
            std::fs::read_to_string(&plan_file),
            std::fs::read_to_string(&error_file),
        ) {
            (Ok(_), Ok(p), _) => p,
            (Err(_), _, Ok(e)) => e,
            _ => {
                failures.push(format!(
                    "{name}: got {} but the fixture expects the other:\n{text}",
                    if got.is_ok() { "a plan" } else { "an error" }
                ));
                continue;
            }
        };
        let same = match &got {
            Ok(v) => {
                serde_json::from_str::<serde_json::Value>(&expected)
                    .ok()
                    .as_ref()
                    == Some(v)
            }
            Err(e) => *e == expected,
        };
        if !same {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}\n--- got\n{text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn case(name: &str) -> PathBuf {
    fixtures().join(name)
}

#[tokio::test]
async fn precedence_cmdline_over_metadata_with_provenance() {
    let plan = replay(&case("aws-imdsv2-cloud-config")).await.unwrap();
    let v = &plan["values"];
    assert_eq!(plan["valid"], true);
    assert_eq!(v["token"]["source"], "cmdline");
    assert_eq!(v["token"]["value"], "abcdef.<redacted>");
    assert_eq!(v["endpoint"]["source"], "metadata:aws");
    // Facts fill what nobody gave.
    assert_eq!(
        v["node-name"]["value"],
        "ip-10-0-1-23.eu-west-1.compute.internal"
    );
    assert_eq!(v["node-ip"]["source"], "metadata:aws");
    // The command line's max-pods wins; the user-data's is reported, not silently dropped.
    assert_eq!(plan["conflicts"][0]["key"], "kubelet-arg max-pods");
    assert_eq!(plan["conflicts"][0]["kept"]["source"], "cmdline");
    assert_eq!(plan["conflicts"][0]["dropped"]["value"], "110");
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("did you mean kubejoin.token?"),
        "{warnings}"
    );
}

#[tokio::test]
async fn local_file_over_metadata_user_data() {
    let plan = replay(&case("digitalocean-file-over-metadata"))
        .await
        .unwrap();
    assert_eq!(
        plan["values"]["endpoint"]["source"],
        "file:/etc/kubejoin.yaml"
    );
    let conflicts = plan["conflicts"].as_array().unwrap();
    assert!(conflicts
        .iter()
        .any(|c| c["key"] == "endpoint" && c["dropped"]["source"] == "metadata:digitalocean"));
    // Per-name merge: the file's max-pods wins, the user-data's other kubelet arg is kept.
    let args = plan["kubelet-args"].as_array().unwrap();
    assert!(args
        .iter()
        .any(|a| a["name"] == "register-with-taints" && a["source"] == "metadata:digitalocean"));
    assert!(args
        .iter()
        .any(|a| a["name"] == "max-pods" && a["value"] == "64"));
}

#[tokio::test]
async fn each_bad_input_names_what_and_where() {
    let err = |name: &str| {
        let name = name.to_string();
        async move { replay(&case(&name)).await.unwrap_err() }
    };
    let e = err("error-aws-no-user-data").await;
    assert!(e.starts_with("error: no user-data: provider aws at http://169.254.169.254/latest/user-data returned 404"), "{e}");
    let e = err("error-imdsv2-refused").await;
    assert!(
        e.contains("IMDSv2 refused http://169.254.169.254/latest/api/token with HTTP 403"),
        "{e}"
    );
    assert!(e.contains("HttpPutResponseHopLimit"), "{e}");
    let e = err("error-truncated-gzip").await;
    assert!(e.contains("config from metadata:aws (http://169.254.169.254/latest/user-data): gzip data is truncated"), "{e}");
    let e = err("error-config-hash-mismatch").await;
    assert!(e.contains("refusing config https://config.example.com/nodes/4c4c4544-0042-3010-8051-b7c04f4d4d31.yaml"), "{e}");
    let e = err("error-unterminated-quote").await;
    assert!(
        e.contains("unterminated double quote at byte 33 of the kernel command line"),
        "{e}"
    );
    let e = err("error-duplicate-key").await;
    assert!(
        e.contains("kubejoin.endpoint is given twice on the kernel command line (bytes 14 and 52)"),
        "{e}"
    );
    let e = err("error-http-url-without-pin").await;
    assert!(e.contains("refusing the plain-http config URL"), "{e}");
    let plan = replay(&case("error-both-discovery")).await.unwrap();
    assert_eq!(plan["valid"], false);
    assert!(
        plan["error"]
            .as_str()
            .unwrap()
            .contains("discovery-file from metadata:hetzner"),
        "{plan}"
    );
    let plan = replay(&case("invalid-no-pin")).await.unwrap();
    assert!(
        plan["error"]
            .as_str()
            .unwrap()
            .starts_with("using token-based discovery without caCertHashes"),
        "{plan}"
    );
}

// ---- load() on a temporary root ----

/// DHCP option 42 (which PID 1's network stage passes in `dhcp_ntp`) is the `dhcp` layer of the
/// time sources: below what a person wrote, above the platform's.
#[tokio::test]
async fn dhcp_ntp_servers_are_a_layer_below_the_written_ones() {
    let b = Boot::new(&format!(
        "ro kubejoin.platform=none kubejoin.token={TOKEN} kubejoin.endpoint=10.0.0.1:6443 kubejoin.ca-cert-hash={PIN}\n"
    ));
    let mut o = b.options();
    o.dhcp_ntp = vec!["10.0.0.123".into(), "10.0.0.124".into()];
    let plan = load(&o)
        .await
        .unwrap()
        .settings
        .to_plan(b.dir.path())
        .unwrap();
    assert_eq!(plan.time.source.as_deref(), Some("dhcp"));
    assert_eq!(
        plan.time
            .servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["10.0.0.123:123", "10.0.0.124:123"]
    );
    // A server on the command line replaces DHCP's list whole (a recorded conflict).
    b.write(
        "proc/cmdline",
        &format!(
            "ro kubejoin.platform=none kubejoin.token={TOKEN} kubejoin.endpoint=10.0.0.1:6443 kubejoin.ca-cert-hash={PIN} kubejoin.ntp=192.0.2.9\n"
        ),
    );
    let l = load(&o).await.unwrap();
    let plan = l.settings.to_plan(b.dir.path()).unwrap();
    assert_eq!(plan.time.describe(), "192.0.2.9:123 (from cmdline)");
    assert!(l
        .settings
        .conflicts
        .iter()
        .any(|c| c.key == "ntp" && c.dropped.source == Source::Dhcp));
}

struct Boot {
    dir: tempfile::TempDir,
}

impl Boot {
    fn new(cmdline: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let b = Boot { dir };
        b.write("proc/cmdline", cmdline);
        b
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn options(&self) -> LoadOptions {
        let mut o = LoadOptions::new(Root::new(self.dir.path()));
        o.metadata = MetadataAccess::Recorded(self.dir.path().join("metadata"));
        o
    }
}

const TOKEN: &str = "abcdef.0123456789abcdef";
const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";

#[tokio::test]
async fn reads_proc_cmdline_and_the_default_config_file_under_the_root() {
    let b = Boot::new(&format!("ro kubejoin.token={TOKEN}\n"));
    b.write(
        "etc/kubejoin.yaml",
        &format!("endpoint: 10.0.0.1:6443\nca-cert-hash: {PIN}\n"),
    );
    let l = load(&b.options()).await.unwrap();
    assert_eq!(l.platform, None);
    assert_eq!(
        l.settings.endpoint.as_ref().unwrap().source,
        Source::File("/etc/kubejoin.yaml".into())
    );
    assert_eq!(l.cmdline.last("ro").map(|p| p.value.is_none()), Some(true));
    assert!(l.settings.to_plan(b.dir.path()).is_ok());
}

#[tokio::test]
async fn config_path_on_the_cmdline_is_read_under_the_root_and_pinned() {
    let doc = format!("endpoint: 10.0.0.1:6443\ntoken: {TOKEN}\nca-cert-hash: {PIN}\n");
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(doc.as_bytes()));
    let b = Boot::new(&format!(
        "kubejoin.config=/boot/join.yaml kubejoin.config.sha256={hash}"
    ));
    b.write("boot/join.yaml", &doc);
    let l = load(&b.options()).await.unwrap();
    assert_eq!(
        l.settings.token.as_ref().unwrap().source,
        Source::File("/boot/join.yaml".into())
    );

    b.write("boot/join.yaml", &doc.replace("10.0.0.1", "10.6.6.6"));
    let e = load(&b.options()).await.unwrap_err();
    assert!(matches!(e, LoadError::Pin(_)), "{e:?}");
    assert_eq!(e.class(), kubejoin::error::Class::Trust);
    assert!(
        e.to_string()
            .starts_with("refusing config /boot/join.yaml: its hash is sha256:"),
        "{e}"
    );
}

#[tokio::test]
async fn a_pin_that_checked_nothing_is_an_error() {
    let b = Boot::new(&format!(
        "kubejoin.platform=none kubejoin.config.sha256={}",
        "1".repeat(64)
    ));
    let e = load(&b.options()).await.unwrap_err();
    assert!(matches!(e, LoadError::PinUnused), "{e:?}");
}

#[tokio::test]
async fn config_metadata_needs_a_platform() {
    let b = Boot::new("kubejoin.config=metadata");
    let e = load(&b.options()).await.unwrap_err();
    assert!(matches!(e, LoadError::NoPlatform), "{e:?}");
    assert!(e
        .hint()
        .unwrap()
        .contains("aws, gcp, azure, openstack, digitalocean, hetzner, equinix"));
}

#[tokio::test]
async fn explicit_config_file_must_exist() {
    let b = Boot::new("quiet");
    let mut o = b.options();
    o.config_file = Some(b.dir.path().join("nope.yaml"));
    let e = load(&o).await.unwrap_err();
    assert!(e.to_string().starts_with("reading the config file "), "{e}");
    assert!(e.to_string().ends_with("nope.yaml"), "{e}");
}

#[tokio::test]
async fn auto_detected_metadata_is_skipped_when_discovery_is_already_known() {
    // DMI says AWS, but the command line has the whole join: no request is made (the recorded
    // directory does not even exist; a fetch would fail).
    let b = Boot::new(&format!("kubejoin.endpoint=10.0.0.1:6443 kubejoin.token={TOKEN} kubejoin.ca-cert-hash={PIN} kubejoin.node-name=n1"));
    b.write("sys/class/dmi/id/sys_vendor", "Amazon EC2\n");
    let l = load(&b.options()).await.unwrap();
    assert_eq!(l.platform, Some(Platform::Aws));
    assert!(l.settings.to_plan(Path::new("/")).is_ok());
    // The node address was wanted; failing to get it is a warning, not a failed boot.
    assert!(
        l.settings
            .warnings
            .iter()
            .any(|w| w.starts_with("node name and address from metadata")),
        "{:?}",
        l.settings.warnings
    );
}

#[tokio::test]
async fn explicit_platform_without_user_data_only_warns_when_discovery_is_known() {
    let b = Boot::new(&format!(
        "kubejoin.platform=hetzner kubejoin.endpoint=10.0.0.1:6443 kubejoin.token={TOKEN} kubejoin.ca-cert-hash={PIN}"
    ));
    b.write("metadata/hetzner/hetzner/v1/metadata/hostname", "cx-1\n");
    let l = load(&b.options()).await.unwrap();
    assert!(l.settings.warnings[0].starts_with("no user-data: provider hetzner at http://169.254.169.254/hetzner/v1/userdata returned 404; using the other sources"), "{:?}", l.settings.warnings);
    assert_eq!(l.settings.node_name.as_ref().unwrap().value, "cx-1");
}

#[tokio::test]
async fn image_defaults_are_the_lowest_layer() {
    let b = Boot::new(&format!("kubejoin.platform=none kubejoin.endpoint=10.0.0.1:6443 kubejoin.token={TOKEN} kubejoin.ca-cert-hash={PIN}"));
    let mut o = b.options();
    let mut defaults = Values::builtin_defaults();
    defaults.cri_socket = Some("unix:///run/crio/crio.sock".into());
    o.defaults = defaults;
    let l = load(&o).await.unwrap();
    assert_eq!(
        l.settings.cri_socket.as_ref().unwrap().source,
        Source::Default
    );
    assert_eq!(
        l.settings.to_plan(Path::new("/")).unwrap().cri_socket,
        "unix:///run/crio/crio.sock"
    );
}

// ---- the OpenStack config drive as a local source ----

/// A loopback URL nothing listens on: a provider that asks it fails at once.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn the_config_drive_is_read_before_the_network_and_unmounted() {
    use kubejoin::source::load::{load_local, load_remote};
    use kubejoin::source::metadata::http::{Retry, Timeouts};
    use kubejoin::source::metadata::Endpoints;
    use kubejoin::sys::drive::{Drive, DriveCall, RecordingDrive};
    use std::sync::Arc;

    let user_data = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    \
         apiServerEndpoint: 10.1.0.1:6443\n    token: {TOKEN}\n    caCertHashes: [\"{PIN}\"]\n---\n\
         apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nnetwork:\n  interfaces:\n  \
         - name: ens3\n    address: 10.1.0.20/24\n    gateway: 10.1.0.1\n"
    );
    let b = Boot::new("console=ttyS0");
    b.write("sys/class/dmi/id/product_name", "OpenStack Nova\n");
    b.write("dev/disk/by-label/config-2", "");
    let drive = Arc::new(
        RecordingDrive::new()
            .accepting("iso9660")
            .with_file("openstack/latest/user_data", user_data)
            .with_file(
                "openstack/latest/meta_data.json",
                r#"{"hostname": "os-node-4.novalocal"}"#,
            ),
    );
    let mut o = LoadOptions::new(Root::new(b.dir.path()));
    o.metadata = MetadataAccess::Live {
        endpoints: Endpoints::all(&closed_url()),
        timeouts: Timeouts::default(),
        retry: Retry::none(),
        tls: None,
    };
    o.config_drive = Some(drive.clone() as Arc<dyn Drive>);

    let local = load_local(&o).unwrap();
    let device = b.dir.path().join("dev/disk/by-label/config-2");
    let mount_dir = b.dir.path().join("run/kubejoin/config-drive");
    assert_eq!(
        drive.calls(),
        [
            DriveCall::MountRo {
                device: device.clone(),
                target: mount_dir.clone(),
                fstype: "iso9660".into()
            },
            DriveCall::Unmount {
                target: mount_dir.clone()
            }
        ],
        "mounted once, read, unmounted before anything else"
    );
    assert!(!mount_dir.exists(), "no mount directory left behind");
    let s = local.settings();
    let net = s.network.as_ref().unwrap();
    assert_eq!(net.source, Source::Metadata(Platform::OpenStack));
    assert_eq!(
        net.value.to_string(),
        "ens3 10.1.0.20/24 via 10.1.0.1",
        "the drive's network is known before the network is up"
    );

    // After the network: nothing more to fetch; the node name comes from the drive too (the
    // metadata service URL is closed, so any request would have failed).
    let loaded = load_remote(&o, local).await.unwrap();
    assert_eq!(
        loaded.settings.node_name.as_ref().unwrap().value,
        "os-node-4.novalocal"
    );
    assert_eq!(
        loaded.settings.endpoint.as_ref().unwrap().source,
        Source::Metadata(Platform::OpenStack)
    );
    assert!(
        loaded.settings.warnings.is_empty(),
        "{:?}",
        loaded.settings.warnings
    );
    assert_eq!(drive.calls().len(), 2, "the drive is not mounted again");
    let plan = plan_json(&loaded.settings);
    assert_eq!(plan["valid"], true, "{plan}");
    assert_eq!(plan["values"]["network"]["source"], "metadata:openstack");
}

#[tokio::test]
async fn a_config_drive_that_cannot_be_mounted_falls_back_to_the_metadata_service_with_a_warning() {
    use kubejoin::sys::drive::{Drive, RecordingDrive};
    use std::sync::Arc;
    let b = Boot::new(&format!(
        "kubejoin.endpoint=10.0.0.1:6443 kubejoin.token={TOKEN} kubejoin.ca-cert-hash={PIN} kubejoin.node-name=n1"
    ));
    b.write("sys/class/dmi/id/sys_vendor", "OpenStack Foundation\n");
    b.write("dev/disk/by-label/CONFIG-2", "");
    let mut o = LoadOptions::new(Root::new(b.dir.path()));
    o.metadata = MetadataAccess::Live {
        endpoints: kubejoin::source::metadata::Endpoints::all(&closed_url()),
        timeouts: kubejoin::source::metadata::http::Timeouts::default(),
        retry: kubejoin::source::metadata::http::Retry::none(),
        tls: None,
    };
    o.config_drive = Some(Arc::new(RecordingDrive::new()) as Arc<dyn Drive>);
    let l = load(&o).await.unwrap();
    let w = &l.settings.warnings;
    assert!(
        w[0].starts_with("mounting the config drive ")
            && w[0].contains("(tried iso9660: ")
            && w[0].ends_with("; using the metadata service"),
        "{w:?}"
    );
    assert!(!b.dir.path().join("run/kubejoin/config-drive").exists());
    assert!(l.settings.to_plan(Path::new("/")).is_ok());
}

/// An initramfs has no modprobe for the kernel to ask for `fs-iso9660`: the config-drive reader
/// loads isofs itself through the host seam — only when a drive was found, and only when
/// `/proc/filesystems` does not list iso9660 yet.
#[tokio::test]
async fn the_config_drives_filesystem_module_is_loaded_only_when_a_drive_is_found() {
    use kubejoin::host::filesystems::FsModules;
    use kubejoin::sys::drive::{Drive, DriveCall, RecordingDrive};
    use kubejoin::sys::host::{Host, RecordingHost};
    use std::sync::Arc;
    const RELEASE: &str = "6.1.0-test";

    let boot = |with_drive: bool, iso_available: bool| {
        let b = Boot::new("console=ttyS0");
        b.write("sys/class/dmi/id/product_name", "OpenStack Nova\n");
        let m = format!("lib/modules/{RELEASE}");
        b.write(&format!("{m}/modules.dep"), "kernel/fs/isofs/isofs.ko:\n");
        b.write(&format!("{m}/modules.alias"), "alias fs-iso9660 isofs\n");
        b.write(
            &format!("{m}/kernel/fs/isofs/isofs.ko"),
            "not parsed by the fake",
        );
        b.write(
            "proc/filesystems",
            if iso_available {
                "nodev\tproc\n\text4\n\tiso9660\n"
            } else {
                "nodev\tproc\n\text4\n"
            },
        );
        if with_drive {
            b.write("dev/disk/by-label/config-2", "");
        }
        b
    };
    let run = |b: &Boot| {
        let host = Arc::new(RecordingHost::new(RELEASE));
        let drive = Arc::new(RecordingDrive::new().accepting("iso9660").with_file(
            "openstack/latest/user_data",
            format!("endpoint: 10.1.0.1:6443\ntoken: {TOKEN}\n"),
        ));
        let mut o = LoadOptions::new(Root::new(b.dir.path())).with_fs_modules(FsModules::new(
            Root::new(b.dir.path()),
            host.clone() as Arc<dyn Host>,
        ));
        o.metadata = MetadataAccess::Live {
            endpoints: kubejoin::source::metadata::Endpoints::all(&closed_url()),
            timeouts: kubejoin::source::metadata::http::Timeouts::default(),
            retry: kubejoin::source::metadata::http::Retry::none(),
            tls: None,
        };
        o.config_drive = Some(drive.clone() as Arc<dyn Drive>);
        let local = kubejoin::source::load::load_local(&o).unwrap();
        (host.loaded(), drive.calls(), local.has_config_drive())
    };

    let (loaded, calls, read) = run(&boot(true, false));
    assert_eq!(
        loaded,
        ["isofs"],
        "a drive, no iso9660 in the kernel: isofs is loaded"
    );
    assert!(read, "and the drive is read");
    assert!(
        matches!(&calls[0], DriveCall::MountRo { fstype, .. } if fstype == "iso9660"),
        "{calls:?}"
    );

    let (loaded, _, read) = run(&boot(true, true));
    assert!(
        loaded.is_empty(),
        "iso9660 is there already: nothing loaded, {loaded:?}"
    );
    assert!(read);

    let (loaded, calls, read) = run(&boot(false, false));
    assert!(loaded.is_empty(), "no drive: nothing loaded, {loaded:?}");
    assert!(
        !read
            && calls
                .iter()
                .all(|c| !matches!(c, DriveCall::MountRo { .. }))
    );
}

// ---- `kubejoin join` with no flags, against the test control plane ----

mod join_without_flags {
    use super::*;
    use kubejoin::cli::{self, Command};
    use kubejoin_testcp::{Config, Handle};
    use std::process::Stdio;
    use std::time::Duration;

    const RUN_LIMIT: Duration = Duration::from_secs(60);

    fn start() -> Handle {
        kubejoin_testcp::start(Config::default()).unwrap()
    }

    /// The node joined: its kubeconfig is installed and the control plane saw its CSR.
    fn assert_joined(cp: &Handle, root: &Path, node: &str) {
        let conf = std::fs::read_to_string(root.join("etc/kubernetes/kubelet.conf"))
            .unwrap_or_else(|e| panic!("no kubelet.conf under {}: {e}", root.display()));
        assert!(conf.contains(&cp.url()), "{conf}");
        let csrs = cp.csrs();
        assert_eq!(csrs.len(), 1, "{csrs:?}");
        // The CSR's subject names the node (the CN is plain text inside the DER).
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let pem = b64
            .decode(csrs[0]["spec"]["request"].as_str().unwrap())
            .unwrap();
        let body: String = String::from_utf8(pem)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = b64.decode(body).unwrap();
        let cn = format!("system:node:{node}");
        assert!(
            der.windows(cn.len()).any(|w| w == cn.as_bytes()),
            "the CSR is not for {cn}"
        );
        assert!(cp
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("certificatesigningrequests")));
    }

    /// The real binary, `kubejoin join` and only `--root` (so this test machine is not
    /// prepared as a node): everything comes from `<root>/proc/cmdline`.
    #[test]
    fn cmdline_only() {
        let cp = start();
        let b = Boot::new(&format!(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 kubejoin.platform=none kubejoin.endpoint={} \
             kubejoin.token={} kubejoin.ca-cert-hash={} kubejoin.node-name=cmdline-node\n",
            cp.endpoint(),
            cp.token(),
            cp.signing_ca_pin()
        ));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kubejoin"));
        cmd.arg("join")
            .arg("--root")
            .arg(b.dir.path())
            .env_clear()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = crate::support::run_bounded(cmd, RUN_LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{:?}\n{stderr}", out.status);
        assert!(
            !stderr.contains(SECRET),
            "token secret in the log:\n{stderr}"
        );
        assert_joined(&cp, b.dir.path(), "cmdline-node");
        cp.shutdown();
    }

    /// A minimal metadata service on loopback (Hetzner's paths): one response per path, every
    /// request recorded. Bounded: one connection at a time, each closed after its answer.
    async fn metadata_server(
        routes: Vec<(&'static str, String)>,
    ) -> (
        String,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        tokio::task::JoinHandle<()>,
    ) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(path.clone());
                let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                    Some((_, b)) => ("200 OK", b.clone()),
                    None => ("404 Not Found", String::new()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        (url, seen, task)
    }

    /// `kubejoin join --root DIR` as the CLI parses it, on a machine whose command line has no
    /// join data at all: DMI says Hetzner, and the user-data (a `#cloud-config` with a
    /// `kubejoin:` key) carries the join. Only the metadata base URL is moved to loopback.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_only() {
        let cp = start();
        let user_data = format!(
            "#cloud-config\nkubejoin:\n  endpoint: {}\n  token: {}\n  ca-cert-hash: {}\n",
            cp.endpoint(),
            cp.token(),
            cp.signing_ca_pin()
        );
        let (url, seen, task) = metadata_server(vec![
            ("/hetzner/v1/userdata", user_data),
            ("/hetzner/v1/metadata/hostname", "hcloud-node-9".into()),
            ("/hetzner/v1/metadata/public-ipv4", "127.0.0.1".into()),
        ])
        .await;
        let b = Boot::new("BOOT_IMAGE=/vmlinuz console=ttyS0 quiet\n");
        b.write("sys/class/dmi/id/sys_vendor", "Hetzner\n");
        let argv = ["kubejoin", "join", "--root", b.dir.path().to_str().unwrap()];
        let Command::JoinFromSources(j) = cli::parse(argv.iter().map(Into::into)).unwrap() else {
            panic!("no flags must mean the boot sources")
        };
        // This machine's seam: the join goes into a temporary root (no host preparation there).
        let system = kubejoin::sys::System::real();
        let mut opts = kubejoin::app::load_options(&j.sources, &system);
        opts.metadata = MetadataAccess::Live {
            endpoints: kubejoin::source::metadata::Endpoints::all(&url),
            timeouts: kubejoin::source::metadata::http::Timeouts::default(),
            retry: kubejoin::source::metadata::http::Retry::none(),
            tls: None,
        };
        tokio::time::timeout(
            RUN_LIMIT,
            kubejoin::app::join_from_sources(&j, &opts, &system),
        )
        .await
        .expect("the join is bounded")
        .unwrap();
        task.abort();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen.first().map(String::as_str),
            Some("/hetzner/v1/userdata"),
            "{seen:?}"
        );
        assert_joined(&cp, b.dir.path(), "hcloud-node-9");
        let kubeadm_flags =
            std::fs::read_to_string(b.dir.path().join("var/lib/kubelet/kubeadm-flags.env"))
                .unwrap_or_default();
        assert!(
            kubeadm_flags.contains("--node-ip=127.0.0.1"),
            "the provider's address reaches the kubelet: {kubeadm_flags}"
        );
        cp.shutdown();
    }

    /// The platform's documented time source (AWS's `169.254.169.123`) joins the plan below every
    /// written layer, at the address the endpoints give it (loopback here): an AWS instance (by
    /// DMI) whose boot names no NTP server asks it in the clock phase, and `result.json` says so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_platform_time_source_is_asked_at_its_injected_address() {
        let cp = start();
        let sntp =
            kubejoin_testcp::sntp::start(kubejoin_testcp::sntp::SntpConfig::default()).unwrap();
        let b = Boot::new(&format!(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 kubejoin.endpoint={} kubejoin.token={} \
             kubejoin.ca-cert-hash={} kubejoin.node-name=aws-time-node\n",
            cp.endpoint(),
            cp.token(),
            cp.signing_ca_pin()
        ));
        b.write("sys/class/dmi/id/sys_vendor", "Amazon EC2\n");
        let argv = ["kubejoin", "join", "--root", b.dir.path().to_str().unwrap()];
        let Command::JoinFromSources(j) = cli::parse(argv.iter().map(Into::into)).unwrap() else {
            panic!("no flags must mean the boot sources")
        };
        let system = kubejoin::sys::System::real();
        let mut opts = kubejoin::app::load_options(&j.sources, &system);
        let mut endpoints = kubejoin::source::metadata::Endpoints::all(&closed_url());
        endpoints.aws_time = sntp.addr().to_string();
        opts.metadata = MetadataAccess::Live {
            endpoints,
            timeouts: kubejoin::source::metadata::http::Timeouts::default(),
            retry: kubejoin::source::metadata::http::Retry::none(),
            tls: None,
        };
        tokio::time::timeout(
            RUN_LIMIT,
            kubejoin::app::join_from_sources(&j, &opts, &system),
        )
        .await
        .expect("the join is bounded")
        .unwrap();
        assert_joined(&cp, b.dir.path(), "aws-time-node");
        assert!(
            sntp.requests() >= 1,
            "the platform's time source was not asked"
        );
        let result: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(b.dir.path().join("run/kubejoin/result.json")).unwrap(),
        )
        .unwrap();
        let clock = &result["clock"];
        assert_eq!(clock["servers_from"], "platform:aws", "{clock}");
        assert_eq!(clock["source"], "sntp", "{clock}");
        assert_eq!(
            clock["servers"][0]["server"],
            sntp.addr().to_string(),
            "{clock}"
        );
        assert_eq!(clock["servers"][0]["verdict"], "agreed", "{clock}");
        // This machine's clock is right: nothing to step.
        assert!(clock.get("step").is_none(), "{clock}");
    }

    /// The replay mode (`--cmdline-file`, `--metadata-dir`) parses like a live boot and its
    /// plan is the recorded fixture's.
    #[tokio::test]
    async fn replay_flags_reproduce_a_recorded_plan() {
        let case = case("hetzner-private-network");
        let root = case.join("root");
        let (cmdline, metadata) = (case.join("cmdline"), case.join("metadata"));
        let argv = [
            "kubejoin",
            "plan",
            "--root",
            root.to_str().unwrap(),
            "--cmdline-file",
            cmdline.to_str().unwrap(),
            "--metadata-dir",
            metadata.to_str().unwrap(),
        ];
        let Command::Plan(args) = cli::parse(argv.iter().map(Into::into)).unwrap() else {
            panic!("not a plan")
        };
        let loaded = kubejoin::app::load_sources(&args, &kubejoin::sys::System::real())
            .await
            .unwrap();
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(case.join("expected-plan.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(plan_json(&loaded.settings), expected);
    }
}

/// An initramfs: no udev (no `/dev/disk/by-label`), SMBIOS that names no cloud. The drive is
/// found by the label in its first bytes, which also says the platform is OpenStack, and its
/// user-data carries the whole join.
#[tokio::test]
async fn a_config_drive_found_by_its_label_in_sys_class_block_means_openstack() {
    use kubejoin::sys::drive::{Drive, DriveCall, RecordingDrive};
    use std::sync::Arc;
    let b = Boot::new("console=ttyS0");
    b.write("sys/class/dmi/id/sys_vendor", "Supermicro\n");
    b.write("sys/class/block/vda/dev", "253:0\n");
    b.write("sys/class/block/sr0/dev", "11:0\n");
    // sr0 holds an ISO 9660 primary volume descriptor labelled config-2.
    let mut iso = vec![0u8; 34 * 1024];
    iso[32768..32774].copy_from_slice(b"\x01CD001");
    iso[32808..32840].fill(b' ');
    iso[32808..32816].copy_from_slice(b"config-2");
    std::fs::create_dir_all(b.dir.path().join("dev")).unwrap();
    std::fs::write(b.dir.path().join("dev/sr0"), &iso).unwrap();
    std::fs::write(b.dir.path().join("dev/vda"), vec![0u8; 4096]).unwrap();
    let drive = Arc::new(RecordingDrive::new().accepting("iso9660").with_file(
        "openstack/latest/user_data",
        format!("endpoint: 10.3.0.1:6443\ntoken: {TOKEN}\nca-cert-hash: {PIN}\nnode-name: bm-1\n"),
    ));
    let mut o = LoadOptions::new(Root::new(b.dir.path()));
    o.metadata = MetadataAccess::Live {
        endpoints: kubejoin::source::metadata::Endpoints::all(&closed_url()),
        timeouts: kubejoin::source::metadata::http::Timeouts::default(),
        retry: kubejoin::source::metadata::http::Retry::none(),
        tls: None,
    };
    o.config_drive = Some(drive.clone() as Arc<dyn Drive>);
    let l = load(&o).await.unwrap();
    assert_eq!(l.platform, Some(Platform::OpenStack));
    // The probe went through the seam (the listing first, then the devices' first bytes), then
    // the mount of the one labelled config-2.
    let calls = drive.calls();
    assert!(
        matches!(calls.first(), Some(DriveCall::BlockDevices { .. })),
        "{calls:?}"
    );
    assert!(calls.contains(&DriveCall::ReadHead {
        device: b.dir.path().join("dev/sr0"),
        len: kubejoin::source::metadata::openstack::label::PROBE_LEN,
    }));
    assert!(matches!(
        calls.iter().find(|c| matches!(c, DriveCall::MountRo { .. })),
        Some(DriveCall::MountRo { device, fstype, .. })
            if *device == b.dir.path().join("dev/sr0") && fstype == "iso9660"
    ));
    assert_eq!(
        l.settings.endpoint.as_ref().unwrap().source,
        Source::Metadata(Platform::OpenStack)
    );
    assert!(l.settings.to_plan(Path::new("/")).is_ok());

    // Without a way to mount it (a replay, another root), the label decides nothing.
    let mut o = LoadOptions::new(Root::new(b.dir.path()));
    o.metadata = MetadataAccess::Recorded(b.dir.path().join("metadata"));
    let l = load(&o).await.unwrap();
    assert_eq!(l.platform, None);
    assert!(l.settings.to_plan(Path::new("/")).is_err());
}
