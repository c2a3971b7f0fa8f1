use super::*;

/// Regenerates the index of a whole extracted kernel tree and checks it agrees with depmod's
/// index of the same tree (`KUBEJOIN_DEPMOD_TREE`) on every module's dependency set, the alias
/// list and the soft dependencies. Not part of a plain `cargo test` (it needs a kernel package and
/// depmod's output for it): `scripts/test` runs it against the kernel the suite downloads
/// (scripts/fetch-kernel), with `KUBEJOIN_KERNEL_TREE=<tree>/lib/modules/<rel>` and
/// `KUBEJOIN_DEPMOD_TREE=<copy after depmod -b>/lib/modules/<rel>`, `--ignored`
/// (`KUBEJOIN_OUT=DIR` also writes the generated files there).
#[test]
#[ignore = "needs a downloaded kernel tree and depmod's output for it: scripts/test runs it with --ignored"]
fn real_kernel_tree_matches_depmod() {
    let tree = std::env::var("KUBEJOIN_KERNEL_TREE")
        .unwrap_or_else(|_| panic!("KUBEJOIN_KERNEL_TREE is not set: run it through scripts/test"));
    let depmod = std::env::var("KUBEJOIN_DEPMOD_TREE")
        .unwrap_or_else(|_| panic!("KUBEJOIN_DEPMOD_TREE is not set: run it through scripts/test"));
    let mods = scan_tree(Path::new(&tree)).unwrap();
    let gen = generate_modules_dep(&mods).unwrap();
    eprintln!("{} modules", mods.len());
    if let Ok(out) = std::env::var("KUBEJOIN_OUT") {
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(Path::new(&out).join("modules.dep"), &gen.modules_dep).unwrap();
        std::fs::write(Path::new(&out).join("modules.alias"), &gen.modules_alias).unwrap();
        std::fs::write(
            Path::new(&out).join("modules.softdep"),
            &gen.modules_softdep,
        )
        .unwrap();
    }
    let read = |n: &str| std::fs::read_to_string(Path::new(&depmod).join(n)).unwrap();
    let sets = |text: &str| -> BTreeMap<String, BTreeSet<String>> {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(m, d)| {
                (
                    m.to_string(),
                    d.split_whitespace().map(String::from).collect(),
                )
            })
            .collect()
    };
    assert_eq!(sets(&gen.modules_dep), sets(&read("modules.dep")));
    let lines = |t: &str| -> BTreeSet<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    assert_eq!(lines(&gen.modules_alias), lines(&read("modules.alias")));
    assert_eq!(lines(&gen.modules_softdep), lines(&read("modules.softdep")));
    // Our load order must be valid against depmod's own file too.
    let idx = ModuleIndex::parse("x", &read("modules.dep"), "", "", "", b"").unwrap();
    for m in idx.modules.keys() {
        let order = idx.load_order(m).unwrap();
        for (i, (n, _)) in order.iter().enumerate() {
            for d in idx.deps(n) {
                assert!(
                    order[..i].iter().any(|(o, _)| o == d),
                    "{m}: {d} must load before {n}"
                );
            }
        }
    }
}

use crate::host::testutil::{self, elf, fixtures, synthetic_ko, FakeRoot, RELEASE};

fn fixture_index() -> ModuleIndex {
    let r = FakeRoot::new().with_fixture_kernel();
    ModuleIndex::load(&r.root, RELEASE).unwrap()
}

fn names(order: &[(String, bool)]) -> Vec<&str> {
    order.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn reads_modinfo_of_real_debian_modules() {
    let stp = modinfo(&std::fs::read(fixtures().join("stp.ko")).unwrap()).unwrap();
    assert_eq!(stp.name.as_deref(), Some("stp"));
    assert_eq!(stp.depends, vec!["llc"]);
    assert!(stp.aliases.is_empty());
    assert_eq!(stp.license.as_deref(), Some("GPL"));
    assert!(
        stp.vermagic
            .as_deref()
            .unwrap()
            .starts_with("6.1.0-56-cloud-amd64 SMP"),
        "{:?}",
        stp.vermagic
    );
    assert_eq!(stp.compression, None);
    let crc = modinfo(&std::fs::read(fixtures().join("libcrc32c.ko")).unwrap()).unwrap();
    assert_eq!(crc.name.as_deref(), Some("libcrc32c"));
    assert!(crc.depends.is_empty());
    assert_eq!(crc.softdeps, vec!["pre: crc32c"]);
    assert_eq!(crc.softdep_pre, vec!["crc32c"]);
    assert_eq!(
        crc.description.as_deref(),
        Some("CRC32c (Castagnoli) calculations")
    );
    assert!(crc.fields.iter().any(|(k, v)| k == "intree" && v == "Y"));
}

#[test]
fn reads_modinfo_of_compressed_modules() {
    let raw = std::fs::read(fixtures().join("stp.ko")).unwrap();
    let plain = modinfo(&raw).unwrap();
    for c in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
        let z = compress::compress(c, &raw).unwrap();
        let info = modinfo(&z).unwrap();
        assert_eq!(info.compression, Some(c));
        assert_eq!(
            ModInfo {
                compression: None,
                ..info
            },
            plain,
            "{c}"
        );
    }
    let mut bad = compress::compress(Compression::Zstd, &raw).unwrap();
    bad.truncate(40);
    assert!(matches!(modinfo(&bad), Err(ModInfoError::Decompress(_))));
}

#[test]
fn reads_elf32_big_endian_and_rejects_bad_files() {
    let section =
        b"name=m32\0depends=a,b-c\0\0\0alias=pci:v*\0parm=debug:int\0softdep=post: x-y\0junk\0";
    let be32 = elf(&[(".modinfo", section)], false, false);
    let info = modinfo(&be32).unwrap();
    assert_eq!(info.name.as_deref(), Some("m32"));
    assert_eq!(info.depends, vec!["a", "b_c"]);
    assert_eq!(info.aliases, vec!["pci:v*"]);
    assert_eq!(info.params, vec!["debug"]);
    assert_eq!(info.softdep_post, vec!["x_y"]);
    assert_eq!(
        modinfo(&elf(&[(".modinfo", section)], true, false))
            .unwrap()
            .name
            .as_deref(),
        Some("m32")
    );
    assert_eq!(modinfo(b"not an elf"), Err(ModInfoError::NotElf));
    assert_eq!(
        modinfo(&elf(&[(".text", b"x")], true, true)),
        Err(ModInfoError::NoModinfo)
    );
    // Every truncation of a valid image is an error, never a panic (this runs as PID 1).
    let good = synthetic_ko(&[("name", "x"), ("depends", "")]);
    for n in 0..good.len() {
        let _ = modinfo(&good[..n]);
    }
    // Any single corrupted byte of the headers is an error or a (garbage) answer, never a panic.
    let shoff = u64::from_le_bytes(good[0x28..0x30].try_into().unwrap()) as usize;
    for at in (0..64).chain(shoff..good.len()) {
        for byte in [0x00, 0x7f, 0xff] {
            let mut m = good.clone();
            m[at] = byte;
            let _ = modinfo(&m);
        }
    }
    let mut corrupt = good.clone();
    corrupt[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes()); // e_shoff far past the end
    assert!(matches!(modinfo(&corrupt), Err(ModInfoError::Malformed(_))));
}

#[test]
fn closure_and_load_order_from_the_real_index() {
    let idx = fixture_index();
    assert!(!idx.missing_dep_file);
    let order = idx.load_order("br_netfilter").unwrap();
    assert_eq!(names(&order), vec!["llc", "stp", "bridge", "br_netfilter"]);
    assert!(order.iter().all(|(_, hard)| *hard));
    assert_eq!(names(&idx.load_order("overlay").unwrap()), vec!["overlay"]);
    assert_eq!(
        names(&idx.load_order("virtio_net").unwrap()),
        vec![
            "virtio_ring",
            "virtio",
            "failover",
            "net_failover",
            "virtio_net"
        ]
    );
    // nf_conntrack's three dependencies are independent of each other: any order of them is
    // valid, all three come first; libcrc32c's soft dependency crc32c is built in.
    let ipvs = idx.load_order("ip_vs_rr").unwrap();
    let n = names(&ipvs);
    assert_eq!(n.len(), 6, "{n:?}");
    assert_eq!(&n[3..], ["nf_conntrack", "ip_vs", "ip_vs_rr"]);
    let mut first: Vec<&str> = n[..3].to_vec();
    first.sort();
    assert_eq!(first, ["libcrc32c", "nf_defrag_ipv4", "nf_defrag_ipv6"]);
    assert_eq!(
        idx.node_path("bridge").unwrap(),
        PathBuf::from(format!(
            "/lib/modules/{RELEASE}/kernel/net/bridge/bridge.ko"
        ))
    );
}

#[test]
fn load_order_is_valid_against_depmods_own_file() {
    let depmod =
        std::fs::read_to_string(fixtures().join(RELEASE).join("modules.dep.depmod")).unwrap();
    let ours = std::fs::read_to_string(fixtures().join(RELEASE).join("modules.dep")).unwrap();
    let theirs = ModuleIndex::parse(RELEASE, &depmod, "", "", "", b"").unwrap();
    let mine = ModuleIndex::parse(RELEASE, &ours, "", "", "", b"").unwrap();
    assert_eq!(theirs.modules.len(), 20);
    for (name, e) in &theirs.modules {
        let a: BTreeSet<&String> = e.deps.iter().collect();
        let b: BTreeSet<&String> = mine.modules[name].deps.iter().collect();
        assert_eq!(a, b, "{name}");
        let order = theirs.load_order(name).unwrap();
        for (i, (m, _)) in order.iter().enumerate() {
            for d in theirs.deps(m) {
                assert!(
                    names(&order[..i]).contains(&d.as_str()),
                    "{name}: {d} before {m}"
                );
            }
        }
        assert_eq!(order.last().map(|(m, _)| m.as_str()), Some(name.as_str()));
    }
}

#[test]
fn regenerates_the_index_like_depmod_from_module_files() {
    // A tree of module files carrying the real metadata (the two real .ko files where we ship
    // them, some compressed), scanned and indexed without depmod.
    let dir = tempfile::tempdir().unwrap();
    let formats = [
        None,
        Some(Compression::Xz),
        Some(Compression::Zstd),
        Some(Compression::Gzip),
    ];
    let mut expected_paths = BTreeMap::new();
    for (i, (path, fields)) in testutil::fixture_modinfo().into_iter().enumerate() {
        let base = path.rsplit('/').next().unwrap().to_string();
        let bytes = if base == "stp.ko" || base == "libcrc32c.ko" {
            std::fs::read(fixtures().join(&base)).unwrap()
        } else {
            let f: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            synthetic_ko(&f)
        };
        let (path, bytes) = match formats[i % 4] {
            Some(c) if !base.starts_with("stp") => (
                format!("{path}{}", c.extension()),
                compress::compress(c, &bytes).unwrap(),
            ),
            _ => (path, bytes),
        };
        let real = dir.path().join(&path);
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(real, bytes).unwrap();
        expected_paths.insert(modinfo::name_from_path(&path), path);
    }
    std::fs::write(dir.path().join("modules.order"), "not a module\n").unwrap();
    let mods = scan_tree(dir.path()).unwrap();
    assert_eq!(mods.len(), 20);
    let gen = generate_modules_dep(&mods).unwrap();

    // Same dependency sets as depmod (compressed names mapped back to the plain ones).
    let strip = |p: &str| p.split(".ko").next().unwrap().to_string();
    let sets = |t: &str| -> BTreeMap<String, BTreeSet<String>> {
        t.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(m, d)| (strip(m), d.split_whitespace().map(strip).collect()))
            .collect()
    };
    let depmod =
        std::fs::read_to_string(fixtures().join(RELEASE).join("modules.dep.depmod")).unwrap();
    assert_eq!(sets(&gen.modules_dep), sets(&depmod));
    let lines = |t: &str| -> BTreeSet<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    let fixture = |n: &str| std::fs::read_to_string(fixtures().join(RELEASE).join(n)).unwrap();
    assert_eq!(lines(&gen.modules_alias), lines(&fixture("modules.alias")));
    assert_eq!(
        lines(&gen.modules_softdep),
        lines(&fixture("modules.softdep"))
    );

    // And the runtime resolver reads it back: paths keep their compression suffix.
    let idx = ModuleIndex::parse(
        RELEASE,
        &gen.modules_dep,
        &gen.modules_alias,
        "",
        &gen.modules_softdep,
        b"",
    )
    .unwrap();
    assert_eq!(
        names(&idx.load_order("br_netfilter").unwrap()),
        vec!["llc", "stp", "bridge", "br_netfilter"]
    );
    for (name, path) in expected_paths {
        assert_eq!(
            idx.node_path(&name).unwrap(),
            PathBuf::from(format!("/lib/modules/{RELEASE}/{path}"))
        );
    }
}

#[test]
fn generation_refuses_open_subsets_and_cycles() {
    let m = |path: &str, deps: &[&str]| ModuleFile {
        path: path.into(),
        info: ModInfo {
            depends: deps.iter().map(|d| d.to_string()).collect(),
            ..ModInfo::default()
        },
    };
    let e = generate_modules_dep(&[m("kernel/br_netfilter.ko", &["bridge"])]).unwrap_err();
    assert!(
        matches!(&e, HostError::UnresolvedDependency { module, depends } if module == "br_netfilter" && depends == "bridge")
    );
    assert_eq!(
        e.to_string(),
        "module br_netfilter depends on bridge, which is not in the module set"
    );
    let e = generate_modules_dep(&[m("a.ko", &["b"]), m("b.ko", &["a"])]).unwrap_err();
    assert!(matches!(e, HostError::DependencyCycle { .. }), "{e}");
    let ok = generate_modules_dep(&[m("k/x-y.ko.zst", &[]), m("k/z.ko", &["x_y"])]).unwrap();
    assert_eq!(ok.modules_dep, "k/x-y.ko.zst:\nk/z.ko: k/x-y.ko.zst\n");

    let idx = ModuleIndex::parse("r", "a.ko: b.ko\nb.ko: a.ko\n", "", "", "", b"").unwrap();
    let e = idx.load_order("a").unwrap_err();
    assert_eq!(e.to_string(), "module a: dependency cycle a -> b -> a");
    let e = ModuleIndex::parse("r", "garbage line\n", "", "", "", b"").unwrap_err();
    assert!(e.to_string().contains("modules.dep:1"), "{e}");
}

#[test]
fn resolves_names_aliases_and_builtins() {
    let idx = fixture_index();
    let m = |v: &[&str]| Resolved::Modules(v.iter().map(|s| s.to_string()).collect());
    assert_eq!(idx.resolve("br_netfilter"), m(&["br_netfilter"]));
    assert_eq!(idx.resolve("br-netfilter"), m(&["br_netfilter"]));
    assert_eq!(idx.resolve("fs-overlay"), m(&["overlay"]));
    assert_eq!(idx.resolve("virtio:d00000001v00001AF4"), m(&["virtio_net"]));
    assert_eq!(idx.resolve("ip_conntrack"), m(&["nf_conntrack"]));
    assert_eq!(idx.resolve("rtnl-link-bridge"), m(&["bridge"]));
    // Built in: by name (modules.builtin) and by alias (modules.builtin.modinfo).
    assert_eq!(
        idx.resolve("crc32c_generic"),
        Resolved::Builtin("crc32c_generic".into())
    );
    assert_eq!(
        idx.resolve("crc32c"),
        Resolved::Builtin("crc32c_generic".into())
    );
    assert_eq!(idx.resolve("unix"), Resolved::Builtin("unix".into()));
    assert_eq!(idx.resolve("no_such_module"), Resolved::NotFound);
    assert!(idx.is_builtin("crc32c-generic"));
    assert_eq!(alias_normalize("pci:v-[a-f]-x"), "pci:v_[a-f]_x");
}

#[test]
fn soft_dependencies_come_first_and_are_best_effort() {
    let idx = ModuleIndex::parse(
        "r",
        "k/a.ko: k/b.ko\nk/b.ko:\nk/s.ko:\nk/p.ko:\n",
        "alias crypto-s s\n",
        "k/builtin.ko\n",
        "softdep a pre: crypto-s builtin missing post: p\n",
        b"",
    )
    .unwrap();
    assert_eq!(
        idx.load_order("a").unwrap(),
        vec![
            ("s".into(), false),
            ("b".into(), true),
            ("a".into(), true),
            ("p".into(), false)
        ]
    );
    // A module needed hard elsewhere stays hard even when it was first placed as soft.
    let idx = ModuleIndex::parse(
        "r",
        "k/a.ko: k/b.ko\nk/b.ko:\n",
        "",
        "",
        "softdep a pre: b\n",
        b"",
    )
    .unwrap();
    assert_eq!(
        idx.load_order("a").unwrap(),
        vec![("b".into(), true), ("a".into(), true)]
    );
}

#[test]
fn module_params_parse_and_quote_like_the_kernel() {
    let p: ModuleParam = "br_netfilter.foo=1".parse().unwrap();
    assert_eq!(
        p,
        ModuleParam {
            module: "br_netfilter".into(),
            name: "foo".into(),
            value: Some("1".into())
        }
    );
    let p: ModuleParam = "nf-conntrack.opt=\"a b\"".parse().unwrap();
    assert_eq!(
        (p.module.as_str(), p.value.as_deref()),
        ("nf_conntrack", Some("a b"))
    );
    assert_eq!(p.to_string(), "nf_conntrack.opt=\"a b\"");
    let flag: ModuleParam = "ip_vs.enable".parse().unwrap();
    assert_eq!(flag.value, None);
    for bad in ["nodot=1", "a.b=1 c.d=2", "", "../x.y=1"] {
        assert!(bad.parse::<ModuleParam>().is_err(), "{bad}");
    }
    assert!(check_param("m", "p", Some("a\"b")).is_err());
    assert_eq!(param_arg("p", Some("")), "p=\"\"");
}

#[test]
fn errno_meanings_are_actionable() {
    let m = |e: i32| errno_meaning(&std::io::Error::from_raw_os_error(e));
    assert!(m(libc::ENOEXEC).contains("another kernel"));
    assert!(m(libc::EPERM).contains("CAP_SYS_MODULE"));
    assert!(m(libc::EKEYREJECTED).contains("signature"));
    assert!(m(libc::ENOENT).contains("unknown symbol"));
    assert!(!m(libc::EIO).is_empty());
}

#[test]
fn missing_index_files_are_tolerated_and_flagged() {
    let r = FakeRoot::new();
    let idx = ModuleIndex::load(&r.root, RELEASE).unwrap();
    assert!(idx.missing_dep_file);
    assert_eq!(idx.resolve("overlay"), Resolved::NotFound);
    assert!(matches!(
        ModuleIndex::load(&r.root, "../x"),
        Err(HostError::BadRelease { .. })
    ));
}
