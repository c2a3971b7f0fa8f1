//! The builder end to end on a synthetic kernel module tree: dependency closure, regenerated
//! index, layout, manifest, and byte-for-byte reproducibility.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use kubejoin_image::build::{build, Extra, Spec, CA_BUNDLE_PATH, DRIVERS_PATH, MODULES_LOAD_PATH};
use kubejoin_image::compress::{decompress, Compression};
use kubejoin_image::cpio::read_newc;
use std::path::Path;

/// A minimal little-endian ELF64 file whose only real section is `.modinfo` with `fields`.
fn module_elf(fields: &[&str]) -> Vec<u8> {
    let mut modinfo = Vec::new();
    for f in fields {
        modinfo.extend_from_slice(f.as_bytes());
        modinfo.push(0);
    }
    let shstrtab = b"\0.modinfo\0.shstrtab\0".to_vec();
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    elf[6] = 1; // version
    let modinfo_off = elf.len() as u64;
    elf.extend_from_slice(&modinfo);
    let shstr_off = elf.len() as u64;
    elf.extend_from_slice(&shstrtab);
    while !elf.len().is_multiple_of(8) {
        elf.push(0);
    }
    let shoff = elf.len() as u64;
    let section = |name: u32, kind: u32, off: u64, size: u64| {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&off.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h
    };
    elf.extend(section(0, 0, 0, 0));
    elf.extend(section(1, 1, modinfo_off, modinfo.len() as u64));
    elf.extend(section(10, 3, shstr_off, shstrtab.len() as u64));
    elf[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    elf[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
    elf[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
    elf[0x3E..0x40].copy_from_slice(&2u16.to_le_bytes());
    elf
}

/// `lib/modules/6.1.0-test` with virtio_net → net_failover → failover, an alias, and an
/// unrelated module that must stay out.
fn tree(dir: &Path) -> std::path::PathBuf {
    let m = dir.join("lib/modules/6.1.0-test");
    let put = |rel: &str, fields: &[&str]| {
        let p = m.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, module_elf(fields)).unwrap();
    };
    put(
        "kernel/drivers/net/virtio_net.ko",
        &[
            "alias=virtio:d00000001v*",
            "depends=net_failover",
            "name=virtio_net",
        ],
    );
    put(
        "kernel/drivers/net/net_failover.ko",
        &["depends=failover", "name=net_failover"],
    );
    put(
        "kernel/net/core/failover.ko",
        &["depends=", "name=failover"],
    );
    put(
        "kernel/fs/overlayfs/overlay.ko",
        &["alias=fs-overlay", "depends=", "name=overlay"],
    );
    put("kernel/sound/unrelated.ko", &["depends=", "name=unrelated"]);
    std::fs::write(m.join("modules.builtin"), "kernel/drivers/block/loop.ko\n").unwrap();
    m
}

fn spec(dir: &Path, modules: &[&str], mtime: u32, compression: Compression) -> Spec {
    std::fs::write(dir.join("kubejoin"), b"\x7fELF static kubejoin").unwrap();
    std::fs::write(dir.join("ca.pem"), b"-----BEGIN CERTIFICATE-----\n").unwrap();
    std::fs::write(dir.join("kubelet"), b"#!checker").unwrap();
    Spec {
        init: dir.join("kubejoin"),
        modules_dir: Some(tree(dir)),
        modules: modules.iter().map(|s| s.to_string()).collect(),
        drivers: vec![],
        ca_bundle: Some(dir.join("ca.pem")),
        extra: vec![Extra {
            src: dir.join("kubelet"),
            dest: "/usr/bin/kubelet".into(),
            mode: Some(0o755),
        }],
        compression,
        module_compression: Compression::None,
        mtime,
    }
}

#[test]
fn closes_dependencies_and_regenerates_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let built = build(&spec(
        dir.path(),
        &["virtio:d00000001v00001AF4", "fs-overlay", "loop"],
        0,
        Compression::None,
    ))
    .unwrap();
    let m = &built.manifest;
    let names: Vec<&str> = m.modules.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        ["net_failover", "virtio_net", "overlay", "failover"],
        "sorted by path, no unrelated module"
    );
    assert_eq!(m.modules[3].wanted_by, vec!["virtio:d00000001v00001AF4"]);
    assert_eq!(m.modules_builtin, vec!["loop"]);
    assert_eq!(m.kernel_release.as_deref(), Some("6.1.0-test"));

    let members = read_newc(&built.bytes).unwrap();
    let file = |p: &str| {
        members
            .iter()
            .find(|x| x.path == p)
            .map(|x| String::from_utf8_lossy(&x.data).into_owned())
    };
    let dep = file("lib/modules/6.1.0-test/modules.dep").unwrap();
    assert!(
        dep.contains("kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n"),
        "{dep}"
    );
    assert!(!dep.contains("unrelated"));
    let alias = file("lib/modules/6.1.0-test/modules.alias").unwrap();
    assert!(
        alias.contains("alias virtio:d00000001v* virtio_net")
            && alias.contains("alias fs-overlay overlay"),
        "{alias}"
    );
    assert_eq!(
        file("lib/modules/6.1.0-test/modules.builtin").unwrap(),
        "kernel/drivers/block/loop.ko\n"
    );
    let load = file(MODULES_LOAD_PATH.trim_start_matches('/')).unwrap();
    assert!(
        load.ends_with("virtio:d00000001v00001AF4\nfs-overlay\nloop\n"),
        "{load}"
    );

    // Layout: /init, device nodes, mount points, CA bundle, the extra file.
    let mode = |p: &str| members.iter().find(|x| x.path == p).map(|x| x.mode);
    assert_eq!(mode("init"), Some(0o100755));
    assert_eq!(mode("dev/console"), Some(0o020600));
    assert_eq!(
        members
            .iter()
            .find(|x| x.path == "dev/console")
            .unwrap()
            .rdev,
        (5, 1)
    );
    assert_eq!(mode("tmp"), Some(0o041777));
    assert_eq!(mode("proc"), Some(0o040555));
    assert_eq!(mode("sysroot"), Some(0o040755));
    assert_eq!(mode(CA_BUNDLE_PATH.trim_start_matches('/')), Some(0o100644));
    assert_eq!(mode("usr/bin/kubelet"), Some(0o100755));
    assert!(members
        .iter()
        .all(|x| x.uid == 0 && x.gid == 0 && x.mtime == 0));

    // The manifest covers every member, with the sha256 of every file.
    assert_eq!(m.members.len(), members.len());
    let init = m.members.iter().find(|x| x.path == "init").unwrap();
    assert_eq!(init.mode, "0755");
    assert_eq!(init.sha256.as_deref().map(str::len), Some(64));
}

/// Drivers are shipped with what they need, listed (as module names, an alias resolved) in the
/// image's driver list with their aliases in the manifest, and kept out of modules-load.d;
/// the modules list stays there. Without drivers there is no list (no coldplug at boot).
#[test]
fn drivers_are_shipped_for_on_demand_and_not_in_modules_load_d() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), &["fs-overlay"], 0, Compression::None);
    s.drivers = vec!["virtio:d00000001v00001AF4".into(), "loop".into()];
    let built = build(&s).unwrap();
    let m = &built.manifest;
    let names: Vec<&str> = m.modules.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["net_failover", "virtio_net", "overlay", "failover"]);
    assert_eq!(m.drivers_requested, ["virtio:d00000001v00001AF4", "loop"]);
    assert_eq!(m.drivers.len(), 1, "loop is built in: nothing to load");
    assert_eq!(m.drivers[0].name, "virtio_net");
    assert_eq!(m.drivers[0].aliases, ["virtio:d00000001v*"]);
    assert_eq!(m.modules_builtin, ["loop"]);

    let members = read_newc(&built.bytes).unwrap();
    let file = |p: &str| {
        members
            .iter()
            .find(|x| x.path == p.trim_start_matches('/'))
            .map(|x| String::from_utf8_lossy(&x.data).into_owned())
    };
    let conf = file(DRIVERS_PATH).unwrap();
    assert!(
        conf.starts_with('#') && conf.ends_with("\nvirtio_net\n"),
        "{conf}"
    );
    let load = file(MODULES_LOAD_PATH).unwrap();
    assert!(load.ends_with("\nfs-overlay\n"), "{load}");
    assert!(!load.contains("virtio"), "{load}");
    assert!(file("lib/modules/6.1.0-test/modules.alias")
        .unwrap()
        .contains("alias virtio:d00000001v* virtio_net"));

    // What the node reads at boot: the list parses, and the image's index matches the driver
    // to the virtio NIC's modalias.
    let root = tempfile::tempdir().unwrap();
    for x in &members {
        if x.mode & 0o170000 == 0o100000 {
            let p = root.path().join(&x.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &x.data).unwrap();
        }
    }
    let r = kubejoin::fs::root::Root::new(root.path());
    let (_, drivers) = kubejoin::host::modules::read_drivers(&r).unwrap().unwrap();
    assert_eq!(drivers, ["virtio_net"]);
    let index = kubejoin::host::modules::ModuleIndex::load(&r, "6.1.0-test").unwrap();
    assert_eq!(
        index.matching("virtio:d00000001v00001AF4", &drivers),
        ["virtio_net"]
    );
    assert!(index
        .matching("virtio:d00000002v00001AF4", &drivers)
        .is_empty());

    let plain = build(&spec(dir.path(), &["fs-overlay"], 0, Compression::None)).unwrap();
    assert!(plain.manifest.drivers.is_empty());
    let members = read_newc(&plain.bytes).unwrap();
    assert!(members
        .iter()
        .all(|x| x.path != DRIVERS_PATH.trim_start_matches('/')));
}

#[test]
fn modules_compressed_one_by_one_are_renamed_in_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut sp = spec(dir.path(), &["virtio_net"], 0, Compression::None);
    sp.module_compression = Compression::Zstd;
    let built = build(&sp).unwrap();
    let members = read_newc(&built.bytes).unwrap();
    let member = |p: &str| members.iter().find(|x| x.path == p);
    let base = "lib/modules/6.1.0-test";
    let packed = member(&format!("{base}/kernel/drivers/net/virtio_net.ko.zst")).unwrap();
    assert!(member(&format!("{base}/kernel/drivers/net/virtio_net.ko")).is_none());
    // The original module's bytes, compressed on their own.
    let original = std::fs::read(
        dir.path()
            .join(format!("{base}/kernel/drivers/net/virtio_net.ko")),
    )
    .unwrap();
    assert_eq!(decompress(&packed.data).unwrap(), original);
    let dep =
        String::from_utf8_lossy(&member(&format!("{base}/modules.dep")).unwrap().data).into_owned();
    assert!(
        dep.contains("kernel/drivers/net/virtio_net.ko.zst: kernel/drivers/net/net_failover.ko.zst kernel/net/core/failover.ko.zst\n"),
        "{dep}"
    );
    assert!(built
        .manifest
        .modules
        .iter()
        .all(|m| m.path.ends_with(".ko.zst")));
    // What the node reads at boot resolves to the renamed files.
    let root = tempfile::tempdir().unwrap();
    for m in &members {
        if m.path.starts_with(base) && !m.data.is_empty() {
            let p = root.path().join(&m.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &m.data).unwrap();
        }
    }
    let index = kubejoin::host::modules::ModuleIndex::load(
        &kubejoin::fs::root::Root::new(root.path()),
        "6.1.0-test",
    )
    .unwrap();
    assert_eq!(
        index.node_path("virtio_net").unwrap(),
        std::path::PathBuf::from(format!("/{base}/kernel/drivers/net/virtio_net.ko.zst"))
    );
}

#[test]
fn same_inputs_same_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for c in [Compression::Gzip, Compression::Zstd] {
        let x = build(&spec(
            a.path(),
            &["virtio_net", "overlay"],
            1_700_000_000,
            c,
        ))
        .unwrap();
        // Another build directory, same content: the same image.
        let y = build(&spec(
            b.path(),
            &["virtio_net", "overlay"],
            1_700_000_000,
            c,
        ))
        .unwrap();
        assert_eq!(x.manifest.members, y.manifest.members);
        assert_eq!(
            x.manifest.uncompressed_sha256,
            y.manifest.uncompressed_sha256
        );
        assert_eq!(x.bytes, y.bytes, "{c:?}: same inputs, same bytes");
        assert_eq!(
            decompress(&x.bytes).unwrap().len() as u64,
            x.manifest.uncompressed_size
        );
        // Another SOURCE_DATE_EPOCH is another image.
        let z = build(&spec(
            b.path(),
            &["virtio_net", "overlay"],
            1_700_000_001,
            c,
        ))
        .unwrap();
        assert_ne!(x.bytes, z.bytes);
    }
}

#[test]
fn unknown_modules_and_missing_trees_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = build(&spec(
        dir.path(),
        &["nonexistent_driver"],
        0,
        Compression::None,
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "module \"nonexistent_driver\" is neither a module nor an alias of kernel 6.1.0-test"
    );
    let mut s = spec(dir.path(), &["overlay"], 0, Compression::None);
    s.modules_dir = None;
    assert!(build(&s)
        .unwrap_err()
        .to_string()
        .contains("needs --modules-dir"));
}

#[test]
fn packaging_files_are_well_formed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, file) in [
        ("bash", "dracut/90kubejoin/module-setup.sh"),
        ("sh", "dracut/90kubejoin/kubejoin-join.sh"),
    ] {
        let out = std::process::Command::new(shell)
            .arg("-n")
            .arg(root.join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hook = std::fs::read_to_string(root.join("dracut/90kubejoin/kubejoin-join.sh")).unwrap();
    assert!(hook.contains("--root \"$root\" --handoff none"));
    assert!(
        !hook.lines().any(|l| l.trim_start().starts_with("exit")),
        "a sourced hook must not exit"
    );
    let setup = std::fs::read_to_string(root.join("dracut/90kubejoin/module-setup.sh")).unwrap();
    assert!(setup.contains("inst_hook pre-pivot 90"));
    let unit = std::fs::read_to_string(root.join("systemd/kubejoin.service")).unwrap();
    for line in [
        "Type=oneshot",
        "Before=kubelet.service",
        "ConditionPathExists=!/etc/kubernetes/kubelet.conf",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let dropin =
        std::fs::read_to_string(root.join("systemd/kubelet.service.d/10-kubejoin.conf")).unwrap();
    assert!(dropin.contains("After=kubejoin.service"));
}
