//! Plan, apply and preflight against a fake root laid out like `/proc`, `/sys` and
//! `/lib/modules` (the Debian 6.1 fixture index) and the recording fake seam. Nothing here
//! loads a module into, or turns swap off on, the machine running the tests.

use super::*;
use crate::host::modules::compress::{self, MODULE_INIT_COMPRESSED_FILE};
use crate::host::testutil::{synthetic_ko, FakeRoot, RELEASE};
use crate::sys::host::{HostCall, RecordingHost};

fn fake() -> RecordingHost {
    RecordingHost::new(RELEASE)
}

fn node() -> FakeRoot {
    FakeRoot::new().with_fixture_kernel().with_default_sysctls()
}

fn kmod(rel: &str) -> PathBuf {
    PathBuf::from(format!("/lib/modules/{RELEASE}/{rel}"))
}

fn load_names(p: &HostPlan) -> Vec<&str> {
    p.modules.loads.iter().map(|l| l.name.as_str()).collect()
}

fn finit_calls(f: &RecordingHost) -> Vec<(String, PathBuf, String, u32)> {
    f.calls()
        .into_iter()
        .filter_map(|c| match c {
            HostCall::FinitModule {
                module,
                path,
                params,
                flags,
            } => Some((module, path, params, flags)),
            _ => None,
        })
        .collect()
}

#[test]
fn default_plan_loads_the_real_chain_in_order_and_sets_sysctls() {
    let r = node();
    r.write(
        "/proc/cmdline",
        "root=/dev/vda1 br_netfilter.foo=1 \"bridge.opt=a b\" sysctl.vm.swappiness=10 -- x.y=1\n",
    );
    r.sysctl("vm.swappiness", "60");
    let sys = fake().with_kernel_root(r.dir.path());
    let plan = plan(&HostConfig::default(), &r.root, &sys).unwrap();
    assert_eq!(plan.kernel_release, RELEASE);
    assert_eq!(
        load_names(&plan),
        vec!["overlay", "llc", "stp", "bridge", "br_netfilter"]
    );
    let brnf = &plan.modules.loads[4];
    assert_eq!(brnf.path, kmod("kernel/net/bridge/br_netfilter.ko"));
    assert_eq!(brnf.method, LoadMethod::Finit);
    assert_eq!(brnf.params, vec!["foo=1"]);
    assert_eq!(brnf.deps, vec!["bridge", "stp", "llc"]);
    assert_eq!(plan.modules.loads[3].params, vec!["opt=\"a b\""]);
    assert_eq!(plan.modules.loads[1].wanted_by, vec!["br_netfilter"]);

    let report = apply(&plan, &r.root, &sys).unwrap();
    assert_eq!(
        sys.loaded(),
        vec!["overlay", "llc", "stp", "bridge", "br_netfilter"]
    );
    // Every module file was opened through the seam, under the root.
    let opened: Vec<PathBuf> = sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            HostCall::OpenModule { path } => Some(path),
            _ => None,
        })
        .collect();
    assert_eq!(opened.len(), 5, "{opened:?}");
    assert!(
        opened.iter().all(|p| p.starts_with(r.root.path())),
        "{opened:?}"
    );
    let calls = finit_calls(&sys);
    assert_eq!(
        calls[3],
        (
            "bridge".into(),
            kmod("kernel/net/bridge/bridge.ko"),
            "opt=\"a b\"".into(),
            0
        )
    );
    assert_eq!(calls[4].2, "foo=1");
    for (k, v) in [
        ("net/bridge/bridge-nf-call-iptables", "1"),
        ("net/bridge/bridge-nf-call-ip6tables", "1"),
        ("net/ipv4/ip_forward", "1"),
        ("vm/overcommit_memory", "1"),
        ("kernel/panic", "10"),
        ("kernel/panic_on_oops", "1"),
        ("vm/swappiness", "10"),
    ] {
        assert_eq!(r.read(&format!("/proc/sys/{k}")).trim(), v, "{k}");
    }
    assert_eq!(
        r.read("/proc/sys/net/ipv6/conf/all/forwarding").trim(),
        "0",
        "not dual-stack"
    );
    // Every write went through the host seam, and only the values not already in place.
    let written = sys.sysctls_written();
    assert!(
        written.contains(&("vm.swappiness".into(), "10".into())),
        "{written:?}"
    );
    assert!(
        !written.iter().any(|(k, _)| k == "vm.panic_on_oom"),
        "{written:?}"
    );
    // One record per action; vm.panic_on_oom already had its value.
    assert!(report.actions.iter().any(
        |a| matches!(&a.action, Action::SetSysctl { key, .. } if key == "vm.panic_on_oom")
            && a.outcome == Outcome::AlreadyDone
    ));
    assert_eq!(
        report
            .actions
            .iter()
            .filter(|a| matches!(a.action, Action::LoadModule { .. }))
            .count(),
        5
    );
    assert!(
        report.to_string().contains("load module br_netfilter from"),
        "{report}"
    );
}

#[test]
fn proxy_mode_and_dual_stack_extend_the_defaults() {
    let r = node();
    let sys = fake().with_kernel_root(r.dir.path());
    let cfg = HostConfig {
        proxy_mode: ProxyMode::Ipvs,
        dual_stack: true,
        ..HostConfig::default()
    };
    let plan = plan(&cfg, &r.root, &sys).unwrap();
    let n = load_names(&plan);
    for m in [
        "ip_vs",
        "ip_vs_rr",
        "ip_vs_wrr",
        "ip_vs_sh",
        "nf_conntrack",
        "nf_defrag_ipv4",
        "nf_defrag_ipv6",
        "libcrc32c",
    ] {
        assert!(n.contains(&m), "{m} in {n:?}");
    }
    let pos = |m: &str| n.iter().position(|x| *x == m).unwrap();
    assert!(
        pos("libcrc32c") < pos("nf_conntrack")
            && pos("nf_conntrack") < pos("ip_vs")
            && pos("ip_vs") < pos("ip_vs_sh")
    );
    assert_eq!(
        n.iter().filter(|m| **m == "nf_conntrack").count(),
        1,
        "each module once"
    );
    assert!(plan
        .sysctls
        .iter()
        .any(|s| s.name() == "net.ipv6.conf.all.forwarding" && s.value == "1"));
    apply(&plan, &r.root, &sys).unwrap();
    assert_eq!(r.read("/proc/sys/net/ipv6/conf/all/forwarding").trim(), "1");
    assert_eq!("IPVS".parse::<ProxyMode>().unwrap(), ProxyMode::Ipvs);
    assert!("userspace".parse::<ProxyMode>().is_err());
}

#[test]
fn loaded_and_builtin_modules_are_not_loaded_again_and_eexist_is_success() {
    let r = node();
    for m in ["llc", "stp", "bridge"] {
        r.loaded(m);
    }
    let sys = fake().failing_load("overlay", libc::EEXIST);
    let cfg = HostConfig {
        modules: vec!["crc32c".into(), "bridge".into(), "rtnl-link-bridge".into()],
        ..HostConfig::default()
    };
    let plan = plan(&cfg, &r.root, &sys).unwrap();
    assert_eq!(load_names(&plan), vec!["overlay", "br_netfilter"]);
    let outcome = |n: &str| {
        plan.modules
            .requests
            .iter()
            .find(|q| q.request.name == n)
            .unwrap()
            .outcome
            .clone()
    };
    assert_eq!(outcome("crc32c"), RequestOutcome::Builtin);
    assert_eq!(outcome("bridge"), RequestOutcome::AlreadyLoaded);
    assert_eq!(
        outcome("rtnl-link-bridge"),
        RequestOutcome::AlreadyLoaded,
        "an alias of a loaded module"
    );
    assert_eq!(
        outcome("br_netfilter"),
        RequestOutcome::Load {
            modules: vec!["br_netfilter".into()],
            already: vec!["llc".into(), "stp".into(), "bridge".into()]
        }
    );
    let report = apply(&plan, &r.root, &sys).unwrap();
    assert_eq!(
        report.actions[0].outcome,
        Outcome::AlreadyDone,
        "EEXIST from the kernel is success"
    );
    let shown = plan.to_string();
    assert!(
        shown.contains("crc32c: built into the kernel (config)"),
        "{shown}"
    );
    assert!(shown.contains("bridge: already loaded (config)"), "{shown}");
}

/// An index whose modules are compressed: a.ko.xz ← b.ko.zst ← c.ko.gz.
fn compressed_node() -> (FakeRoot, Vec<Vec<u8>>) {
    let r = FakeRoot::new();
    let dir = format!("/lib/modules/{RELEASE}");
    r.write(
        format!("{dir}/modules.dep").as_str(),
        "kernel/a.ko.xz:\nkernel/b.ko.zst: kernel/a.ko.xz\nkernel/c.ko.gz: kernel/b.ko.zst kernel/a.ko.xz\n",
    );
    let mut images = Vec::new();
    for (name, c) in [
        ("a", compress::Compression::Xz),
        ("b", compress::Compression::Zstd),
        ("c", compress::Compression::Gzip),
    ] {
        let img = synthetic_ko(&[("name", name)]);
        r.write(
            &format!("{dir}/kernel/{name}.ko{}", c.extension()),
            compress::compress(c, &img).unwrap(),
        );
        images.push(img);
    }
    (r, images)
}

#[test]
fn compressed_modules_use_in_kernel_decompression_when_advertised() {
    let (r, images) = compressed_node();
    r.write("/sys/module/compression", "zstd\n");
    let cfg = HostConfig {
        skip_default_modules: true,
        skip_default_sysctls: true,
        modules: vec!["c".into()],
        ..HostConfig::default()
    };
    let sys = fake();
    let plan = plan(&cfg, &r.root, &sys).unwrap();
    let methods: Vec<LoadMethod> = plan.modules.loads.iter().map(|l| l.method).collect();
    use compress::Compression::*;
    assert_eq!(
        methods,
        vec![
            LoadMethod::Decompress(Xz),
            LoadMethod::FinitCompressed(Zstd),
            LoadMethod::Decompress(Gzip)
        ]
    );
    apply(&plan, &r.root, &sys).unwrap();
    let calls: Vec<HostCall> = sys
        .calls()
        .into_iter()
        .filter(|c| !matches!(c, HostCall::Uname | HostCall::OpenModule { .. }))
        .collect();
    assert_eq!(
        calls,
        vec![
            HostCall::InitModule {
                module: "a".into(),
                path: kmod("kernel/a.ko.xz"),
                image: images[0].clone(),
                params: String::new()
            },
            HostCall::FinitModule {
                module: "b".into(),
                path: kmod("kernel/b.ko.zst"),
                params: String::new(),
                flags: MODULE_INIT_COMPRESSED_FILE
            },
            HostCall::InitModule {
                module: "c".into(),
                path: kmod("kernel/c.ko.gz"),
                image: images[2].clone(),
                params: String::new()
            },
        ]
    );
}

#[test]
fn compressed_modules_are_decompressed_here_without_kernel_support_or_when_refused() {
    let (r, images) = compressed_node();
    let cfg = HostConfig {
        skip_default_modules: true,
        skip_default_sysctls: true,
        modules: vec!["c".into()],
        ..HostConfig::default()
    };
    let sys = fake();
    let p = plan(&cfg, &r.root, &sys).unwrap();
    assert!(p
        .modules
        .loads
        .iter()
        .all(|l| matches!(l.method, LoadMethod::Decompress(_))));
    apply(&p, &r.root, &sys).unwrap();
    let imgs: Vec<Vec<u8>> = sys
        .calls()
        .into_iter()
        .filter_map(|c| {
            if let HostCall::InitModule { image, .. } = c {
                Some(image)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(imgs, images);

    // Advertised, but the kernel refuses the flag: fall back to decompressing here.
    r.write("/sys/module/compression", "zstd\n");
    let p = plan(&cfg, &r.root, &fake()).unwrap();
    let refusing = RefusingFlag(fake());
    apply(&p, &r.root, &refusing).unwrap();
    assert_eq!(
        refusing.0.loaded(),
        vec!["a", "b", "b", "c"],
        "b: finit refused, then init_module"
    );
}

/// A kernel that rejects MODULE_INIT_COMPRESSED_FILE with EOPNOTSUPP.
#[derive(Debug)]
struct RefusingFlag(RecordingHost);

impl Host for RefusingFlag {
    fn uname_release(&self) -> std::io::Result<String> {
        self.0.uname_release()
    }
    fn finit_module(
        &self,
        m: &str,
        p: &std::path::Path,
        f: &std::fs::File,
        a: &str,
        flags: u32,
    ) -> std::io::Result<()> {
        self.0.finit_module(m, p, f, a, flags)?;
        if flags & MODULE_INIT_COMPRESSED_FILE != 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        Ok(())
    }
    fn init_module(&self, m: &str, p: &std::path::Path, i: &[u8], a: &str) -> std::io::Result<()> {
        self.0.init_module(m, p, i, a)
    }
    fn swapoff(&self, p: &std::path::Path) -> std::io::Result<()> {
        self.0.swapoff(p)
    }
    fn euid(&self) -> u32 {
        self.0.euid()
    }
    fn effective_capabilities(&self) -> std::io::Result<crate::sys::host::CapabilitySet> {
        self.0.effective_capabilities()
    }
    fn write_sysctl(&self, k: &str, p: &std::path::Path, v: &str) -> std::io::Result<()> {
        self.0.write_sysctl(k, p, v)
    }
    fn bind_tcp(&self, port: u16) -> std::io::Result<()> {
        self.0.bind_tcp(port)
    }
    fn connect_unix(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.0.connect_unix(path)
    }
    fn open_module(&self, real: &std::path::Path) -> std::io::Result<std::fs::File> {
        self.0.open_module(real)
    }
}

#[test]
fn config_params_come_before_the_command_line_and_unapplied_ones_are_noted() {
    let r = node();
    r.write(
        "/proc/cmdline",
        "br_netfilter.foo=1 overlay.bad=\"x\"y module_blacklist=floppy,overlay\n",
    );
    let cfg = HostConfig {
        module_params: vec![
            "br_netfilter.foo=0".parse().unwrap(),
            "br-netfilter.bar=\"x y\"".parse().unwrap(),
            "unix.z=1".parse().unwrap(),
        ],
        ..HostConfig::default()
    };
    let sys = fake();
    let p = plan(&cfg, &r.root, &sys).unwrap();
    assert_eq!(
        p.modules.loads[4].params,
        vec!["foo=0", "bar=\"x y\"", "foo=1"]
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("unix") && n.contains("built into the kernel")),
        "{:?}",
        p.notes
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("module overlay is in module_blacklist=")),
        "{:?}",
        p.notes
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("ignoring") && n.contains("overlay")),
        "bad quote: {:?}",
        p.notes
    );
    apply(&p, &r.root, &sys).unwrap();
    assert_eq!(finit_calls(&sys)[4].2, "foo=0 bar=\"x y\" foo=1");

    let bad = HostConfig {
        module_params: vec![ModuleParam {
            module: "overlay".into(),
            name: "x".into(),
            value: Some("a\"b".into()),
        }],
        ..HostConfig::default()
    };
    let e = plan(&bad, &r.root, &sys).unwrap_err();
    assert!(matches!(e, HostError::ModuleParam { .. }), "{e}");
    assert_eq!(e.class(), Class::Usage);
}

#[test]
fn a_missing_module_is_named_with_the_kernel_release() {
    let r = node();
    let cfg = HostConfig {
        modules: vec!["no_such_mod".into()],
        ..HostConfig::default()
    };
    let e = plan(&cfg, &r.root, &fake()).unwrap_err();
    assert!(
        matches!(&e, HostError::ModuleNotFound { name, index_missing: false, .. } if name == "no_such_mod")
    );
    assert_eq!(
        e.to_string(),
        "module no_such_mod not found for kernel 6.1.0-56-cloud-amd64: is the module shipped in the image?"
    );
    assert!(e.hint().unwrap().contains("module list"));

    // A kernel built without loadable modules: no /proc/modules, no module tree.
    let bare = FakeRoot::new();
    let e = plan(&HostConfig::default(), &bare.root, &fake()).unwrap_err();
    assert!(
        matches!(&e, HostError::NoModuleSupport { name, .. } if name == "overlay"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("--skip-phases host"));

    // A kernel that loads modules, whose tree was never indexed by depmod.
    let bare = FakeRoot::new();
    bare.write("/proc/modules", "");
    bare.write(&format!("/lib/modules/{RELEASE}/modules.order"), "");
    let e = plan(&HostConfig::default(), &bare.root, &fake()).unwrap_err();
    assert!(e.to_string().contains("modules.dep is missing"), "{e}");
    assert!(
        e.hint().unwrap().contains("generate modules.dep"),
        "{:?}",
        e.hint()
    );

    // Nothing to load: no index needed at all.
    bare.loaded("overlay");
    bare.loaded("br_netfilter");
    assert!(plan(
        &HostConfig {
            skip_default_sysctls: true,
            ..HostConfig::default()
        },
        &bare.root,
        &fake()
    )
    .unwrap()
    .modules
    .loads
    .is_empty());

    let e = plan(
        &HostConfig::default(),
        &bare.root,
        &fake().failing_uname(libc::EPERM),
    )
    .unwrap_err();
    assert!(matches!(e, HostError::Uname { .. }));
}

#[test]
fn a_failed_load_names_module_file_and_errno_and_skips_dependents() {
    let r = node();
    let sys = fake().failing_load("bridge", libc::ENOEXEC);
    let p = plan(&HostConfig::default(), &r.root, &sys).unwrap();
    let HostError::Apply { failures, report } = apply(&p, &r.root, &sys).unwrap_err() else {
        panic!("not Apply")
    };
    let e = &failures[0];
    assert!(
        matches!(e, HostError::ModuleLoad { module, errno, .. } if module == "bridge" && *errno == libc::ENOEXEC)
    );
    assert_eq!(
        e.to_string(),
        format!(
            "loading module bridge from /lib/modules/{RELEASE}/kernel/net/bridge/bridge.ko: invalid module format: built for another kernel, or corrupt (ENOEXEC)"
        )
    );
    assert!(e.hint().unwrap().contains("uname -r"));
    assert_eq!(
        sys.loaded(),
        vec!["overlay", "llc", "stp", "bridge"],
        "br_netfilter is not attempted"
    );
    let brnf = report
        .actions
        .iter()
        .find(|a| matches!(&a.action, Action::LoadModule { name, .. } if name == "br_netfilter"))
        .unwrap();
    assert_eq!(
        brnf.outcome,
        Outcome::Skipped("dependency bridge failed to load".into())
    );
    // Sysctls were still attempted (the bridge ones exist in this fake root).
    assert_eq!(r.read("/proc/sys/net/ipv4/ip_forward").trim(), "1");
}

#[test]
fn modules_load_d_follows_systemd_precedence_and_is_best_effort() {
    let r = node();
    r.write("/usr/lib/modules-load.d/k8s.conf", "stp\n");
    r.write("/etc/modules-load.d/k8s.conf", "# admin copy\nllc\n");
    r.write(
        "/run/modules-load.d/extra.conf",
        "; comment\nnot_shipped_mod\nvirtio-net\ntwo words\n",
    );
    let sys = fake();
    let p = plan(&HostConfig::default(), &r.root, &sys).unwrap();
    let reqs: Vec<(&str, &str, bool)> = p
        .modules
        .requests
        .iter()
        .map(|q| {
            (
                q.request.name.as_str(),
                q.request.source.as_str(),
                q.request.required,
            )
        })
        .collect();
    // Files in name order across directories: extra.conf (/run) before k8s.conf (/etc, which
    // shadows the /usr/lib file of the same name).
    assert_eq!(
        reqs,
        vec![
            ("overlay", "default", true),
            ("br_netfilter", "default", true),
            ("not_shipped_mod", "/run/modules-load.d/extra.conf:2", false),
            ("virtio-net", "/run/modules-load.d/extra.conf:3", false),
            ("llc", "/etc/modules-load.d/k8s.conf:2", false),
        ]
    );
    assert!(
        !reqs.iter().any(|(n, ..)| *n == "stp"),
        "the /usr/lib file is shadowed"
    );
    assert!(p
        .notes
        .iter()
        .any(|n| n.contains("not_shipped_mod") && n.contains("skipped")));
    assert!(p.notes.iter().any(|n| n.contains("two words")));
    let virtio = p
        .modules
        .loads
        .iter()
        .find(|l| l.name == "virtio_net")
        .unwrap();
    assert!(!virtio.required);
    // llc is needed hard by br_netfilter: required even though modules-load.d also lists it.
    assert!(
        p.modules
            .loads
            .iter()
            .find(|l| l.name == "llc")
            .unwrap()
            .required
    );

    // A best-effort module that fails is logged, not fatal.
    let sys = fake().failing_load("virtio_net", libc::ENODEV);
    let report = apply(&p, &r.root, &sys).unwrap();
    let v = report
        .actions
        .iter()
        .find(|a| matches!(&a.action, Action::LoadModule { name, .. } if name == "virtio_net"))
        .unwrap();
    assert!(
        matches!(&v.outcome, Outcome::Ignored(m) if m.contains("no such device")),
        "{:?}",
        v.outcome
    );
}

#[test]
fn sysctl_d_precedence_globs_and_sources() {
    let r = node();
    for iface in ["all", "default", "eth0", "eth0.100"] {
        r.write(&format!("/proc/sys/net/ipv4/conf/{iface}/rp_filter"), "0\n");
    }
    r.sysctl("vm.swappiness", "60");
    r.write(
        "/usr/lib/sysctl.d/10-vendor.conf",
        "net.ipv4.conf.*.rp_filter = 2\nkernel.panic = 3\n",
    );
    r.write("/usr/lib/sysctl.d/50-x.conf", "vm.swappiness = 1\n");
    r.write(
        "/etc/sysctl.d/50-x.conf",
        "; admin override of the vendor file\nvm.swappiness = 20\n",
    );
    r.write(
        "/run/sysctl.d/60-run.conf",
        "net/ipv4/conf/eth0.100/rp_filter = 1\n-net.no.such.key = 1\nnot an assignment\nkernel.panic = 7\n",
    );
    r.write(
        "/etc/sysctl.conf",
        "# procps reads this last\nkernel.panic_on_oops=0\nnet.ipv4.conf.eth0*.rp_filter = 2\n",
    );
    r.write("/proc/cmdline", "sysctl.kernel.panic_on_oops=1\n");
    let cfg = HostConfig {
        sysctls: vec![("vm.swappiness".into(), "30".into())],
        ..HostConfig::default()
    };
    let sys = fake();
    let p = plan(&cfg, &r.root, &sys).unwrap();
    let get = |k: &str| p.sysctls.iter().find(|s| s.name() == k).unwrap().clone();
    assert_eq!(
        (get("vm.swappiness").value, get("vm.swappiness").source),
        ("30".into(), "config".into())
    );
    assert_eq!(
        get("vm.swappiness").overrides,
        vec![("/etc/sysctl.d/50-x.conf:2".into(), "20".into())]
    );
    assert_eq!(
        get("kernel.panic").value,
        "7",
        "a later file wins over an earlier one and the default"
    );
    assert_eq!(get("kernel.panic").source, "/run/sysctl.d/60-run.conf:4");
    assert_eq!(get("kernel.panic_on_oops").source, "kernel command line");
    assert!(get("net.ipv4.conf.*.rp_filter").glob);
    assert!(get("net.no.such.key").ignore_failure);
    assert!(p.notes.iter().any(|n| n.contains("not an assignment")));

    let report = apply(&p, &r.root, &sys).unwrap();
    for (iface, want) in [
        ("all", "2"),
        ("default", "2"),
        ("eth0", "2"),
        ("eth0.100", "1"),
    ] {
        assert_eq!(
            r.read(&format!("/proc/sys/net/ipv4/conf/{iface}/rp_filter"))
                .trim(),
            want,
            "{iface}"
        );
    }
    assert_eq!(r.read("/proc/sys/vm/swappiness").trim(), "30");
    assert_eq!(r.read("/proc/sys/kernel/panic").trim(), "7");
    assert_eq!(r.read("/proc/sys/kernel/panic_on_oops").trim(), "1");
    let ignored = report
        .actions
        .iter()
        .find(|a| matches!(&a.action, Action::SetSysctl { key, .. } if key == "net.no.such.key"))
        .unwrap();
    assert!(matches!(&ignored.outcome, Outcome::Ignored(m) if m.contains("does not exist")));
    // systemd: a key set explicitly is never touched by a glob, whatever their order; so
    // eth0.100 is written once (explicitly), the other three through the glob.
    let rp_writes = report
        .actions
        .iter()
        .filter(
            |a| matches!(&a.action, Action::SetSysctl { key, .. } if key.ends_with("rp_filter")),
        )
        .count();
    assert_eq!(rp_writes, 4 + 1, "the later eth0* glob also skips eth0.100");
}

#[test]
fn a_value_the_kernel_does_not_keep_is_a_read_back_mismatch() {
    let r = node();
    // Writes to /dev/null succeed and read back empty: a kernel that ignored the value.
    std::fs::remove_file(r.real("/proc/sys/kernel/panic")).unwrap();
    std::os::unix::fs::symlink("/dev/null", r.real("/proc/sys/kernel/panic")).unwrap();
    let sys = fake();
    let p = plan(&HostConfig::default(), &r.root, &sys).unwrap();
    let HostError::Apply { failures, .. } = apply(&p, &r.root, &sys).unwrap_err() else {
        panic!()
    };
    assert_eq!(failures.len(), 1);
    assert!(
        matches!(&failures[0], HostError::SysctlMismatch { key, wanted, got, .. } if key == "kernel.panic" && wanted == "10" && got.is_empty())
    );
    assert!(
        failures[0].to_string().contains("reads back"),
        "{}",
        failures[0]
    );
}

#[test]
fn a_missing_sysctl_names_the_module_that_creates_it() {
    let r = FakeRoot::new().with_fixture_kernel().with_default_sysctls();
    std::fs::remove_dir_all(r.real("/proc/sys/net/bridge")).unwrap();
    let cfg = HostConfig {
        skip_default_modules: true,
        ..HostConfig::default()
    };
    let sys = fake();
    let p = plan(&cfg, &r.root, &sys).unwrap();
    let e = apply(&p, &r.root, &sys).unwrap_err();
    let HostError::Apply { failures, .. } = &e else {
        panic!()
    };
    assert_eq!(failures.len(), 2);
    assert!(
        matches!(&failures[0], HostError::SysctlMissing { module: Some(m), .. } if m == "br_netfilter")
    );
    assert_eq!(
        failures[0].to_string(),
        "setting sysctl net.bridge.bridge-nf-call-iptables: /proc/sys/net/bridge/bridge-nf-call-iptables does not exist (load module br_netfilter first)"
    );
    assert!(
        e.hint()
            .unwrap()
            .contains("add br_netfilter to the module set"),
        "{:?}",
        e.hint()
    );
}

#[test]
fn swap_is_turned_off_verified_or_kept() {
    let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/vda2                               partition\t1048572\t\t0\t\t-2\n/swap\\040file                           file\t\t524284\t\t12\t\t-3\n";
    let cfg = HostConfig {
        skip_default_modules: true,
        skip_default_sysctls: true,
        ..HostConfig::default()
    };

    let r = FakeRoot::new();
    r.write("/proc/swaps", swaps);
    let sys = fake().with_kernel_root(r.dir.path());
    let p = plan(&cfg, &r.root, &sys).unwrap();
    assert_eq!(
        p.swaps.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        vec!["/dev/vda2", "/swap file"]
    );
    assert!(
        p.to_string()
            .contains("turn off /dev/vda2 (partition, 1048572 KiB, 0 KiB used)"),
        "{p}"
    );
    let report = apply(&p, &r.root, &sys).unwrap();
    let offs: Vec<HostCall> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, HostCall::Swapoff { .. }))
        .collect();
    assert_eq!(
        offs,
        vec![
            HostCall::Swapoff {
                path: "/dev/vda2".into()
            },
            HostCall::Swapoff {
                path: "/swap file".into()
            }
        ]
    );
    assert!(report.actions.iter().all(|a| a.outcome == Outcome::Done));
    assert!(swap::active(&r.root).unwrap().is_empty());

    // Kept on purpose: no syscall, and the report says so.
    let r = FakeRoot::new();
    r.write("/proc/swaps", swaps);
    let sys = fake();
    let p = plan(
        &HostConfig {
            keep_swap: true,
            ..cfg.clone()
        },
        &r.root,
        &sys,
    )
    .unwrap();
    let report = apply(&p, &r.root, &sys).unwrap();
    assert!(!sys
        .calls()
        .iter()
        .any(|c| matches!(c, HostCall::Swapoff { .. })));
    assert!(matches!(
        &report.actions[0],
        ActionRecord {
            action: Action::KeepSwap { .. },
            outcome: Outcome::Skipped(_),
            ..
        }
    ));

    // A refused swapoff, and one the kernel claims but /proc/swaps still lists.
    let sys = fake().failing_swapoff("/dev/vda2", libc::ENOMEM);
    let p = plan(&cfg, &r.root, &sys).unwrap();
    let HostError::Apply { failures, .. } = apply(&p, &r.root, &sys).unwrap_err() else {
        panic!()
    };
    assert_eq!(
        failures[0].to_string(),
        "turning off swap /dev/vda2: not enough free memory to bring the swapped-out pages back (ENOMEM)"
    );
    assert!(matches!(&failures[1], HostError::SwapStillActive { path } if path == "/swap file"));
}

#[test]
fn dry_run_touches_nothing() {
    let r = node();
    r.write(
        "/proc/swaps",
        "Filename Type Size Used Priority\n/dev/vda2 partition 100 0 -2\n",
    );
    r.write(
        "/etc/sysctl.d/99-k8s.conf",
        "net.ipv4.conf.*.rp_filter = 1\n",
    );
    let before = r.snapshot();
    let sys = fake();
    let p = plan(
        &HostConfig {
            proxy_mode: ProxyMode::Ipvs,
            ..HostConfig::default()
        },
        &r.root,
        &sys,
    )
    .unwrap();
    let shown = p.to_string();
    assert_eq!(r.snapshot(), before, "planning wrote nothing");
    assert_eq!(
        sys.calls(),
        vec![HostCall::Uname],
        "planning made no privileged call"
    );
    for want in [
        "host preparation plan for kernel 6.1.0-56-cloud-amd64",
        "load br_netfilter from /lib/modules/6.1.0-56-cloud-amd64/kernel/net/bridge/br_netfilter.ko (finit_module) [for br_netfilter]",
        "load llc from",
        "net.ipv4.ip_forward = 1 (default)",
        "kernel.panic = 10 (kubelet protect-kernel-defaults)",
        "net.ipv4.conf.*.rp_filter = 1 (/etc/sysctl.d/99-k8s.conf:1; pattern, expanded after modules load)",
        "turn off /dev/vda2",
    ] {
        assert!(shown.contains(want), "missing {want:?} in\n{shown}");
    }
}

#[test]
fn errors_classify_and_hint() {
    let e = HostError::Preflight {
        failed: vec!["Swap".into(), "CRI".into()],
    };
    assert_eq!(e.to_string(), "preflight checks failed: Swap, CRI");
    assert!(e.hint().unwrap().contains("--ignore-preflight-errors"));
    assert_eq!(e.class(), Class::Other);
    assert_eq!(errno_name(libc::EKEYREJECTED), "EKEYREJECTED");
    assert_eq!(
        HostError::ProxyMode { value: "x".into() }.class(),
        Class::Usage
    );
}

/// A node where every preflight check passes; returns the CRI listener to keep it alive.
fn healthy(r: &FakeRoot) -> std::os::unix::net::UnixListener {
    r.write("/usr/bin/kubelet", "#!/bin/true\n");
    std::fs::set_permissions(
        r.real("/usr/bin/kubelet"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(r.real("/run/containerd")).unwrap();
    let l =
        std::os::unix::net::UnixListener::bind(r.real("/run/containerd/containerd.sock")).unwrap();
    r.write(
        "/sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    for m in ["overlay", "br_netfilter"] {
        r.loaded(m);
    }
    for (k, v) in [
        ("net.bridge.bridge-nf-call-iptables", "1"),
        ("net.bridge.bridge-nf-call-ip6tables", "1"),
        ("net.ipv4.ip_forward", "1"),
        ("vm.overcommit_memory", "1"),
        ("vm.panic_on_oom", "0"),
        ("kernel.panic", "10"),
        ("kernel.panic_on_oops", "1"),
        ("kernel.keys.root_maxkeys", "1000000"),
        ("kernel.keys.root_maxbytes", "25000000"),
    ] {
        r.sysctl(k, v);
    }
    l
}

fn pf_cfg() -> PreflightConfig {
    PreflightConfig {
        cri_socket: "unix:///run/containerd/containerd.sock".into(),
        ..PreflightConfig::default()
    }
}

#[test]
fn preflight_passes_on_a_prepared_node() {
    let r = FakeRoot::new().with_fixture_kernel();
    let _cri = healthy(&r);
    let report = preflight(&pf_cfg(), &HostConfig::default(), &r.root, &fake());
    assert_eq!(report.errors(), Vec::<&str>::new(), "\n{report}");
    assert!(
        report.checks.iter().all(|c| c.status == CheckStatus::Ok),
        "\n{report}"
    );
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "IsPrivilegedUser",
            "FileAvailable--etc-kubernetes-kubelet.conf",
            "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf",
            "CRI",
            "Swap",
            "FileExisting-kubelet",
            "SystemVerification",
            "KernelModule-overlay",
            "KernelModule-br_netfilter",
            "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
            "FileContent--proc-sys-net-bridge-bridge-nf-call-ip6tables",
            "FileContent--proc-sys-net-ipv4-ip_forward",
            "FileContent--proc-sys-vm-overcommit_memory",
            "FileContent--proc-sys-vm-panic_on_oom",
            "FileContent--proc-sys-kernel-panic",
            "FileContent--proc-sys-kernel-panic_on_oops",
            "FileContent--proc-sys-kernel-keys-root_maxkeys",
            "FileContent--proc-sys-kernel-keys-root_maxbytes",
            "Port-10250",
            "FileAvailable--etc-kubernetes-pki-ca.crt",
        ]
    );
    assert!(report.into_result().is_ok());
    // A built-in module counts as present even without /sys/module/<name>.
    std::fs::remove_dir_all(r.real("/sys/module/overlay")).unwrap();
    let cfg = HostConfig {
        modules: vec!["crc32c".into()],
        ..HostConfig::default()
    };
    let report = preflight(&pf_cfg(), &cfg, &r.root, &fake());
    assert_eq!(
        report.get("KernelModule-crc32c").unwrap().status,
        CheckStatus::Ok
    );
    assert_eq!(
        report.get("KernelModule-overlay").unwrap().status,
        CheckStatus::Error
    );
}

#[test]
fn preflight_reports_every_problem_in_a_table() {
    let r = FakeRoot::new().with_fixture_kernel();
    r.write("/etc/kubernetes/kubelet.conf", "x");
    r.write("/etc/kubernetes/pki/ca.crt", "x");
    r.write("/usr/bin/kubelet", "not executable");
    r.write("/sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
    r.write(
        "/proc/swaps",
        "Filename Type Size Used Priority\n/dev/vda2 partition 100 0 -2\n",
    );
    r.sysctl("net.ipv4.ip_forward", "0");
    r.sysctl("kernel.panic", "0");
    let sys = fake()
        .with_port_in_use(10250)
        .with_capabilities(["CAP_NET_ADMIN"]);
    let report = preflight(&pf_cfg(), &HostConfig::default(), &r.root, &sys);
    let status = |n: &str| {
        report
            .get(n)
            .map(|c| (c.status, c.message.clone()))
            .unwrap()
    };
    assert_eq!(
        status("IsPrivilegedUser"),
        (
            CheckStatus::Error,
            "missing capabilities: CAP_SYS_MODULE, CAP_SYS_ADMIN".into()
        )
    );
    assert_eq!(
        status("FileAvailable--etc-kubernetes-kubelet.conf"),
        (
            CheckStatus::Error,
            "/etc/kubernetes/kubelet.conf already exists".into()
        )
    );
    assert_eq!(
        status("FileAvailable--etc-kubernetes-bootstrap-kubelet.conf").0,
        CheckStatus::Ok
    );
    assert_eq!(
        status("FileAvailable--etc-kubernetes-pki-ca.crt").0,
        CheckStatus::Error
    );
    let (s, m) = status("CRI");
    assert!(s == CheckStatus::Error && m.starts_with("container runtime is not running: connecting to unix:///run/containerd/containerd.sock"), "{m}");
    // The probe went through the seam, at the socket's path under the root.
    assert!(
        sys.calls().contains(&HostCall::ConnectUnix {
            path: r.real("/run/containerd/containerd.sock")
        }),
        "{:?}",
        sys.calls()
    );
    let (s, m) = status("Swap");
    assert!(s == CheckStatus::Error && m.contains("/dev/vda2"), "{m}");
    assert_eq!(
        status("FileExisting-kubelet"),
        (
            CheckStatus::Error,
            "/usr/bin/kubelet is not an executable file".into()
        )
    );
    assert_eq!(
        status("SystemVerification"),
        (
            CheckStatus::Error,
            "cgroup v2 controllers missing: cpuset pids (have: cpu memory)".into()
        )
    );
    assert_eq!(
        status("KernelModule-br_netfilter"),
        (
            CheckStatus::Error,
            "module br_netfilter is not loaded (default)".into()
        )
    );
    assert_eq!(
        status("FileContent--proc-sys-net-ipv4-ip_forward"),
        (
            CheckStatus::Error,
            "/proc/sys/net/ipv4/ip_forward contents are not set to 1 [default]".into()
        )
    );
    let (s, m) = status("FileContent--proc-sys-net-bridge-bridge-nf-call-iptables");
    assert!(
        s == CheckStatus::Error && m.contains("does not exist (load module br_netfilter)"),
        "{m}"
    );
    // Only protectKernelDefaults cares about these: a warning.
    assert_eq!(
        status("FileContent--proc-sys-kernel-panic").0,
        CheckStatus::Warning
    );
    assert_eq!(
        status("Port-10250"),
        (CheckStatus::Error, "Port 10250 is in use".into())
    );

    let table = report.to_string();
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("CHECK ") && header.contains("RESULT") && header.ends_with("MESSAGE"),
        "{header}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("Port-10250 "))
        .unwrap();
    let cols: Vec<&str> = row
        .split("  ")
        .filter(|c| !c.trim().is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        cols,
        vec!["Port-10250", "ERROR", "Port 10250 is in use"],
        "{table}"
    );
    assert!(
        table.lines().any(|l| l
            .starts_with("FileAvailable--etc-kubernetes-bootstrap-kubelet.conf")
            && l.contains(" ok")),
        "{table}"
    );

    let e = report.clone().into_result().unwrap_err();
    assert!(e.to_string().starts_with("preflight checks failed: IsPrivilegedUser, FileAvailable--etc-kubernetes-kubelet.conf, CRI, Swap"), "{e}");

    // Ignored errors become warnings (names compared lower-cased); `all` ignores everything.
    let cfg = PreflightConfig {
        ignore_errors: vec![
            "fileavailable--etc-kubernetes-kubelet.conf".into(),
            "Port-10250".into(),
            "SWAP".into(),
        ],
        ..pf_cfg()
    };
    let report = preflight(&cfg, &HostConfig::default(), &r.root, &sys);
    for n in [
        "FileAvailable--etc-kubernetes-kubelet.conf",
        "Port-10250",
        "Swap",
    ] {
        let c = report.get(n).unwrap();
        assert!(c.status == CheckStatus::Warning && c.ignored, "{n}: {c:?}");
    }
    assert!(report
        .to_string()
        .contains("(ignored error) Port 10250 is in use"));
    assert!(report.errors().contains(&"CRI"));
    let all = PreflightConfig {
        ignore_errors: vec!["all".into()],
        ..pf_cfg()
    };
    let report = preflight(&all, &HostConfig::default(), &r.root, &sys);
    assert!(report.errors().is_empty());
    assert!(report.into_result().is_ok());
}

#[test]
fn preflight_variants_root_join_skipped_keep_swap_no_cgroup2() {
    let r = FakeRoot::new().with_fixture_kernel();
    let _cri = healthy(&r);
    r.write("/etc/kubernetes/kubelet.conf", "x");
    r.write(
        "/proc/swaps",
        "Filename Type Size Used Priority\n/swap partition 100 0 -2\n",
    );
    std::fs::remove_file(r.real("/sys/fs/cgroup/cgroup.controllers")).unwrap();
    let cfg = PreflightConfig {
        join_skipped: true,
        ..pf_cfg()
    };
    let host = HostConfig {
        keep_swap: true,
        ..HostConfig::default()
    };
    let report = preflight(&cfg, &host, &r.root, &fake().with_euid(1000));
    assert_eq!(
        report.get("IsPrivilegedUser").unwrap().message,
        "user is not running as root"
    );
    assert!(
        report
            .get("FileAvailable--etc-kubernetes-kubelet.conf")
            .is_none(),
        "skipped join: files expected"
    );
    assert!(report
        .get("FileAvailable--etc-kubernetes-pki-ca.crt")
        .is_none());
    let swap = report.get("Swap").unwrap();
    assert_eq!(swap.status, CheckStatus::Warning);
    assert!(swap
        .message
        .contains("must be properly configured to use swap"));
    assert!(report
        .get("SystemVerification")
        .unwrap()
        .message
        .contains("cgroup v2 is not mounted"));
    // The node's files may live under another root (an initramfs installing into /sysroot).
    let sysroot = FakeRoot::new();
    let cfg = PreflightConfig {
        node_root: Some(sysroot.root.clone()),
        ..pf_cfg()
    };
    let report = preflight(&cfg, &HostConfig::default(), &r.root, &fake());
    assert_eq!(
        report
            .get("FileAvailable--etc-kubernetes-kubelet.conf")
            .unwrap()
            .status,
        CheckStatus::Ok
    );
    assert_eq!(
        report.get("FileExisting-kubelet").unwrap().message,
        "kubelet not found at /usr/bin/kubelet"
    );
}

#[test]
fn a_refused_sysctl_write_through_the_seam_is_named() {
    let r = node();
    r.write("/proc/cmdline", "\n");
    r.sysctl("vm.swappiness", "60");
    let sys = fake()
        .with_kernel_root(r.dir.path())
        .failing_sysctl("vm.swappiness", libc::EACCES);
    let cfg = HostConfig {
        sysctls: vec![("vm.swappiness".into(), "10".into())],
        ..HostConfig::default()
    };
    let plan = plan(&cfg, &r.root, &sys).unwrap();
    let HostError::Apply { failures, .. } = apply(&plan, &r.root, &sys).unwrap_err() else {
        panic!("not an apply failure")
    };
    assert!(
        matches!(&failures[..], [HostError::SysctlWrite { key, value, source, .. }]
            if key == "vm.swappiness" && value == "10" && source.raw_os_error() == Some(libc::EACCES)),
        "{failures:?}"
    );
    assert_eq!(r.read("/proc/sys/vm/swappiness"), "60\n", "nothing written");
}

#[test]
fn modules_load_in_parallel_after_their_dependencies_and_a_failure_skips_dependents() {
    // Several threads: independent modules may load in any order, but each only after what it
    // needs; the report keeps the plan's order.
    for _ in 0..20 {
        let r = node();
        let sys = fake().with_kernel_root(r.dir.path()).with_load_threads(4);
        let p = plan(&HostConfig::default(), &r.root, &sys).unwrap();
        let report = apply(&p, &r.root, &sys).unwrap();
        let loaded = sys.loaded();
        let pos = |m: &str| loaded.iter().position(|x| x == m).unwrap();
        assert_eq!(loaded.len(), 5, "{loaded:?}");
        assert!(
            pos("llc") < pos("stp") && pos("stp") < pos("bridge"),
            "{loaded:?}"
        );
        assert!(pos("bridge") < pos("br_netfilter"), "{loaded:?}");
        let names: Vec<String> = report
            .actions
            .iter()
            .filter_map(|a| match &a.action {
                Action::LoadModule { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["overlay", "llc", "stp", "bridge", "br_netfilter"]);
    }
    let r = node();
    let sys = fake()
        .failing_load("stp", libc::ENOEXEC)
        .with_load_threads(4);
    let p = plan(&HostConfig::default(), &r.root, &sys).unwrap();
    let HostError::Apply { report, .. } = apply(&p, &r.root, &sys).unwrap_err() else {
        panic!("not Apply")
    };
    let mut loaded = sys.loaded();
    loaded.sort();
    assert_eq!(
        loaded,
        ["llc", "overlay", "stp"],
        "bridge, br_netfilter never attempted"
    );
    let outcome = |m: &str| {
        report
            .actions
            .iter()
            .find(|a| matches!(&a.action, Action::LoadModule { name, .. } if name == m))
            .map(|a| a.outcome.clone())
            .unwrap()
    };
    assert_eq!(
        outcome("bridge"),
        Outcome::Skipped("dependency stp failed to load".into())
    );
    assert_eq!(
        outcome("br_netfilter"),
        Outcome::Skipped("dependency bridge failed to load".into())
    );
    assert_eq!(outcome("overlay"), Outcome::Done);
}
