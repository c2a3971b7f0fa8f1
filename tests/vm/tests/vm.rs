//! The VM end-to-end test: a kernel boots with kubejoin as `/init` and joins the test control
//! plane, in a network namespace of its own. Needs root (network namespaces), qemu, iproute2
//! and the prebuilt kernel, initramfs and control plane that `scripts/vm-test` prepares and
//! passes in `KUBEJOIN_VM_KERNEL`, `KUBEJOIN_VM_INITRD`, `KUBEJOIN_VM_TESTCP`. So every case is
//! `#[ignore]`d in a plain `cargo test` (reported as ignored, with the reason) and
//! `scripts/vm-test` runs them with `--ignored`; run that way without the artifacts, a case fails
//! saying what is missing rather than passing without having booted anything.
//!
//! Every assertion is on what left the VM: its serial console (kubejoin's log, its JSON
//! timeline, the stand-in kubelet's PASS/FAIL lines) and the control plane's request log.

use kubejoin_vmtest::harness::{run_case, Artifacts, Case, Outcome};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|| {
        panic!("KUBEJOIN_VM_KERNEL/INITRD/TESTCP are not set: run the VM cases through scripts/vm-test")
    })
}

fn work_dir(name: &str) -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("KUBEJOIN_VM_WORK") {
        Some(d) => (PathBuf::from(d).join(name), None),
        None => {
            let t = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
            (t.path().join(name), Some(t))
        }
    }
}

fn timeout() -> Duration {
    let secs = std::env::var("KUBEJOIN_VM_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    Duration::from_secs(secs)
}

/// The `module` steps of the timeline: `(phase, detail)`, e.g. `("host-prep", "virtio_net:
/// done (for device virtio:d00000001v00001AF4)")`.
fn module_steps(timeline: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in timeline["phases"].as_array().into_iter().flatten() {
        for s in p["steps"].as_array().into_iter().flatten() {
            if s["step"] == "module" {
                out.push((
                    p["phase"].as_str().unwrap_or_default().to_string(),
                    s["detail"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    out
}

/// The modules the stand-in kubelet found loaded (`/proc/modules`).
fn loaded_modules(checks: &[(bool, String)]) -> Vec<String> {
    checks
        .iter()
        .find_map(|(_, w)| w.strip_prefix("modules loaded:"))
        .map(|m| m.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Whether a `module` step of `phase` loaded `module` for `why` (its device's modalias
/// prefix, or the filesystem).
fn loaded_for(steps: &[(String, String)], phase: &str, module: &str, why: &str) -> bool {
    steps
        .iter()
        .any(|(p, d)| p == phase && d.starts_with(&format!("{module}: done (for {why}")))
}

/// Everything a failed assertion should show.
fn context(o: &Outcome) -> String {
    let reqs: Vec<String> = o
        .requests
        .iter()
        .map(|r| {
            format!(
                "{} {} {} as {}",
                r["status"], r["method"], r["path"], r["user"]
            )
        })
        .collect();
    let qemu = std::fs::read_to_string(o.work.join("console.qemu.log")).unwrap_or_default();
    format!(
        "\n--- console ({:?}, {:.1}s) ---\n{}\n--- qemu ---\n{qemu}\n--- requests ---\n{}\n--- work dir: {} ---",
        o.run.exit,
        o.run.elapsed.as_secs_f64(),
        o.run.console.0,
        reqs.join("\n"),
        o.work.display()
    )
}

fn requests_matching<'a>(o: &'a Outcome, method: &str, path_prefix: &str) -> Vec<&'a Value> {
    o.requests
        .iter()
        .filter(|r| {
            r["method"] == method
                && r["path"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(path_prefix)
        })
        .collect()
}

#[test]
#[ignore = "boots a VM: needs root, qemu and the artifacts of scripts/vm-test, which runs it with --ignored"]
fn a_vm_joins_with_kubejoin_as_init() {
    let art = artifacts();
    let (work, _tmp) = work_dir("join");
    let node = "kjvm-join";
    let case = Case {
        right_pin: true,
        node_name: node.into(),
        extra_append: vec![],
        timeout: timeout(),
        switch_root: false,
        endpoint: None,
        policy: None,
        config_drive: false,
        rtc_base: None,
        sntp: false,
        cp_args: vec![],
    };
    let o = run_case(&art, &case, &work).unwrap_or_else(|e| panic!("running the VM: {e}"));
    let c = &o.run.console;
    let ctx = context(&o);
    let (token_id, secret) = o.token.split_once('.').unwrap_or_default();

    // The boot: kubejoin ran as PID 1 and printed its timeline.
    assert!(o.run.exited(), "qemu did not exit within the timeout{ctx}");
    assert!(c.logged("as PID 1"), "kubejoin did not start as PID 1{ctx}");
    let timeline = c
        .timeline()
        .unwrap_or_else(|| panic!("no JSON timeline on the console{ctx}"));
    assert!(
        timeline["kernel_to_init_ms"].as_u64().is_some(),
        "{timeline}"
    );
    let phases: Vec<String> = c.phases().into_iter().map(|p| p.0).collect();
    for p in [
        "mounts",
        "host-prep",
        "network",
        "sources",
        "discovery",
        "join",
    ] {
        assert!(
            phases.iter().any(|x| x == p),
            "phase {p} missing from the timeline {phases:?}{ctx}"
        );
    }

    // Host preparation and the network, as the stand-in kubelet found them.
    let checks = c.checks();
    let check = |s: &str| checks.iter().find(|(_, w)| w.contains(s)).cloned();
    let modules = check("modules loaded:")
        .unwrap_or_else(|| panic!("no module list{ctx}"))
        .1;
    for m in ["virtio_net", "br_netfilter", "overlay"] {
        assert!(
            modules.split_whitespace().any(|x| x == m),
            "{m} not loaded: {modules}{ctx}"
        );
    }
    // Coldplug: the NIC's drivers for its devices (virtio_pci for the PCI function, virtio_net
    // for the virtio device its probe created); nothing for hardware this VM does not have (no
    // virtio-rng, no disk) and no filesystem module without a drive to mount.
    let steps = module_steps(&timeline);
    assert!(
        loaded_for(
            &steps,
            "host-prep",
            "virtio_pci",
            "device pci:v00001AF4d00001000"
        ),
        "virtio_pci not coldplugged for the NIC: {steps:?}{ctx}"
    );
    assert!(
        loaded_for(
            &steps,
            "host-prep",
            "virtio_net",
            "device virtio:d00000001v00001AF4"
        ),
        "virtio_net not coldplugged for the virtio NIC: {steps:?}{ctx}"
    );
    for m in ["virtio_rng", "virtio_blk", "isofs"] {
        assert!(
            !modules.split_whitespace().any(|x| x == m),
            "{m} loaded without its hardware: {modules}{ctx}"
        );
        assert!(
            !steps.iter().any(|(_, d)| d.starts_with(&format!("{m}:"))),
            "{m} in the timeline: {steps:?}{ctx}"
        );
    }
    for s in [
        "sysctl net.ipv4.ip_forward=1",
        "sysctl net.bridge.bridge-nf-call-iptables=1",
    ] {
        assert_eq!(check(s).map(|c| c.0), Some(true), "{s}{ctx}");
    }
    assert_eq!(
        check("default route via 10.0.2.2").map(|c| c.0),
        Some(true),
        "no DHCP lease/route{ctx}"
    );

    // Discovery pinned the CA; the CSR went in with the token and came back approved.
    assert!(c.logged("cluster CA pinned"), "{ctx}");
    let bootstrap_user = format!("system:bootstrap:{token_id}");
    let csr_posts = requests_matching(
        &o,
        "POST",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
    );
    assert!(
        csr_posts
            .iter()
            .any(|r| r["user"] == bootstrap_user.as_str() && r["status"] == 201),
        "no CSR created by {bootstrap_user}{ctx}"
    );
    assert!(
        c.logged("certificate for system:node:kjvm-join issued"),
        "{ctx}"
    );

    // The files, with kubeadm's modes.
    for f in [
        "file /etc/kubernetes/kubelet.conf mode 0600",
        "file /etc/kubernetes/pki/ca.crt mode 0644",
        "file /var/lib/kubelet/config.yaml mode 0644",
        "file /var/lib/kubelet/kubeadm-flags.env mode 0644",
        "file /var/lib/kubelet/pki/kubelet-client-current.pem mode 0600",
    ] {
        assert_eq!(check(f).map(|c| c.0), Some(true), "{f}{ctx}");
    }

    // The stand-in kubelet proved the new identity over mTLS, and the server agrees.
    assert_eq!(
        check("client certificate CN=system:node:kjvm-join").map(|c| c.0),
        Some(true),
        "{ctx}"
    );
    assert_eq!(check("-> 404 NotFound").map(|c| c.0), Some(true), "{ctx}");
    let node_gets = requests_matching(&o, "GET", &format!("/api/v1/nodes/{node}"));
    assert!(
        node_gets
            .iter()
            .any(|r| r["user"] == format!("system:node:{node}").as_str() && r["status"] == 404),
        "the control plane did not see GET /api/v1/nodes/{node} as system:node:{node} -> 404{ctx}"
    );
    assert_eq!(
        c.check_result(),
        Some(true),
        "the checker did not pass{ctx}"
    );

    // The token's secret half never reached the console.
    assert!(
        !c.0.contains(secret),
        "the token secret appeared on the console{ctx}"
    );
}

#[test]
#[ignore = "boots a VM: needs root, qemu and the artifacts of scripts/vm-test, which runs it with --ignored"]
fn a_wrong_pin_never_sends_the_token() {
    let art = artifacts();
    let (work, _tmp) = work_dir("wrong-pin");
    let case = Case {
        right_pin: false,
        node_name: "kjvm-mitm".into(),
        extra_append: vec![],
        timeout: timeout(),
        switch_root: false,
        endpoint: None,
        policy: None,
        config_drive: false,
        rtc_base: None,
        sntp: false,
        cp_args: vec![],
    };
    let o = run_case(&art, &case, &work).unwrap_or_else(|e| panic!("running the VM: {e}"));
    let c = &o.run.console;
    let ctx = context(&o);

    // The failure policy (on-failure=poweroff) ended the boot.
    assert!(
        o.run.exited(),
        "qemu did not exit: the failure policy did not power off{ctx}"
    );
    assert!(
        c.logged("join failed in stage discovery"),
        "no reason block{ctx}"
    );
    assert!(
        c.logged("policy: kubejoin.on-failure=poweroff -> powering off now"),
        "{ctx}"
    );
    assert!(c.logged("details: /run/kubejoin/result.json"), "{ctx}");
    assert!(
        c.logged("none of the public keys"),
        "the reason does not say the pin did not match{ctx}"
    );
    assert_eq!(
        c.timeline().map(|t| t["outcome"] == "failed"),
        Some(true),
        "{ctx}"
    );
    assert_eq!(
        c.check_result(),
        None,
        "the kubelet stand-in must not have run{ctx}"
    );

    // Only the anonymous cluster-info fetch reached the server: no token, no CSR.
    assert!(
        !o.requests.is_empty(),
        "discovery never reached the control plane{ctx}"
    );
    for r in &o.requests {
        let user = r["user"].as_str().unwrap_or_default();
        assert!(
            !user.starts_with("system:bootstrap:"),
            "a token-authenticated request was sent: {r}{ctx}"
        );
        assert!(
            !r["path"]
                .as_str()
                .unwrap_or_default()
                .contains("certificatesigningrequests"),
            "{r}{ctx}"
        );
    }
}

#[test]
#[ignore = "boots a VM: needs root, qemu and the artifacts of scripts/vm-test, which runs it with --ignored"]
fn a_vm_joins_into_its_real_root_and_switches_to_it() {
    let art = artifacts();
    assert!(
        art.checker.is_some(),
        "KUBEJOIN_VM_CHECKER is not set: run the VM cases through scripts/vm-test"
    );
    let (work, _tmp) = work_dir("switch-root");
    let node = "kjvm-sysroot";
    let case = Case {
        right_pin: true,
        node_name: node.into(),
        // The default destination of the timeline: its file (carried into the real root with
        // /run) and one summary line on the console.
        extra_append: vec!["kubejoin.timeline=file".into()],
        timeout: timeout(),
        switch_root: true,
        endpoint: None,
        policy: None,
        config_drive: false,
        rtc_base: None,
        sntp: false,
        cp_args: vec![],
    };
    let o = run_case(&art, &case, &work).unwrap_or_else(|e| panic!("running the VM: {e}"));
    let c = &o.run.console;
    let ctx = context(&o);
    assert!(o.run.exited(), "qemu did not exit within the timeout{ctx}");
    assert!(
        c.logged("mounted the real root /dev/vda (ext4) on /sysroot"),
        "{ctx}"
    );
    assert!(c.logged("files installed under /sysroot"), "{ctx}");
    assert!(
        c.logged("switching to the real root /sysroot and executing /sbin/init"),
        "{ctx}"
    );
    // kubejoin printed a summary, not the JSON; the checker (the real root's init) found the
    // file in the new root and copied it to the console.
    assert!(
        c.logged("timeline: switch-root ") && c.logged("all of it in /run/kubejoin/timeline.json"),
        "{ctx}"
    );
    assert!(
        !c.kubejoin_lines()
            .iter()
            .any(|l| l.starts_with("kubejoin: timeline {")),
        "{ctx}"
    );
    assert_eq!(
        c.timeline_file().map(|t| t["outcome"] == "switch-root"),
        Some(true),
        "{ctx}"
    );
    let checks = c.checks();
    let check = |s: &str| checks.iter().find(|(_, w)| w.contains(s)).map(|c| c.0);
    assert_eq!(
        check("running as the real root's init"),
        Some(true),
        "{ctx}"
    );
    assert_eq!(check("/ is the ext4 disk"), Some(true), "{ctx}");
    // The disk's driver, coldplugged for the virtio block device (id 2) before the real root
    // was mounted; no filesystem module for a config drive there is not.
    let steps = c.timeline().map(|t| module_steps(&t)).unwrap_or_default();
    assert!(
        loaded_for(
            &steps,
            "host-prep",
            "virtio_blk",
            "device virtio:d00000002v00001AF4"
        ),
        "virtio_blk not coldplugged for the disk: {steps:?}{ctx}"
    );
    let modules = loaded_modules(&checks);
    assert!(
        modules.iter().any(|m| m == "virtio_blk"),
        "{modules:?}{ctx}"
    );
    for m in ["virtio_rng", "isofs"] {
        assert!(
            !modules.iter().any(|x| x == m),
            "{m} loaded: {modules:?}{ctx}"
        );
    }
    assert_eq!(
        check("/run (with /run/kubejoin/result.json) was moved"),
        Some(true),
        "{ctx}"
    );
    assert_eq!(
        check("timeline /run/kubejoin/timeline.json: outcome switch-root"),
        Some(true),
        "{ctx}"
    );
    assert_eq!(
        check("file /etc/kubernetes/kubelet.conf mode 0600"),
        Some(true),
        "{ctx}"
    );
    assert_eq!(check("-> 404 NotFound"), Some(true), "{ctx}");
    assert_eq!(
        c.check_result(),
        Some(true),
        "the checker did not pass{ctx}"
    );
}

#[test]
#[ignore = "boots a VM: needs root, qemu and the artifacts of scripts/vm-test, which runs it with --ignored"]
fn the_default_policy_reboots_when_the_deadline_passes() {
    let art = artifacts();
    let (work, _tmp) = work_dir("retry");
    // Nobody listens on 6444: every connection is refused, which waiting could cure, so the
    // default policy keeps trying (discovery's own retry loop, then the stage's) until
    // kubejoin.timeout, then reboots (and qemu exits: -no-reboot).
    let case = Case {
        right_pin: true,
        node_name: "kjvm-retry".into(),
        extra_append: vec![],
        timeout: timeout(),
        switch_root: false,
        endpoint: Some("10.0.2.2:6444".into()),
        policy: Some(("retry".into(), "20s".into())),
        config_drive: false,
        rtc_base: None,
        sntp: false,
        cp_args: vec![],
    };
    let o = run_case(&art, &case, &work).unwrap_or_else(|e| panic!("running the VM: {e}"));
    let c = &o.run.console;
    let ctx = context(&o);
    assert!(o.run.exited(), "qemu did not exit: no reboot{ctx}");
    assert!(c.logged("on-failure=retry timeout=20s"), "{ctx}");
    assert!(c.logged("join failed in stage discovery"), "{ctx}");
    assert!(c.logged("class timeout (exit code 5)"), "{ctx}");
    assert!(
        c.logged("policy: kubejoin.on-failure=retry -> rebooting now"),
        "{ctx}"
    );
    assert!(
        c.0.contains("reboot: Restarting system"),
        "the kernel did not restart{ctx}"
    );
    assert!(o.requests.is_empty(), "{ctx}");
}

#[test]
#[ignore = "boots a VM: needs root, qemu and the artifacts of scripts/vm-test, which runs it with --ignored"]
fn a_vm_joins_from_an_openstack_config_drive() {
    let art = artifacts();
    let (work, _tmp) = work_dir("config-drive");
    // The node name comes from the drive's meta_data.json (hostname), nothing from the kernel
    // command line; the platform from the drive's config-2 label.
    let node = "kjvm-drive";
    let case = Case {
        right_pin: true,
        node_name: node.into(),
        extra_append: vec![],
        timeout: timeout(),
        switch_root: false,
        endpoint: None,
        policy: None,
        config_drive: true,
        rtc_base: None,
        sntp: false,
        cp_args: vec![],
    };
    let o = run_case(&art, &case, &work).unwrap_or_else(|e| panic!("running the VM: {e}"));
    let c = &o.run.console;
    let ctx = context(&o);
    let (token_id, secret) = o.token.split_once('.').unwrap_or_default();
    for k in [
        "kubejoin.endpoint",
        "kubejoin.token",
        "kubejoin.node-name",
        "kubejoin.ca-cert-hash",
    ] {
        assert!(
            !o.append.contains(k),
            "{k} on the command line: {}",
            o.append
        );
    }

    assert!(o.run.exited(), "qemu did not exit within the timeout{ctx}");
    // The drive was found by its label, read before the network, and unmounted.
    assert!(
        c.logged("(config drive read and unmounted)"),
        "kubejoin did not say it read the config drive{ctx}"
    );
    // Host preparation's layer from the drive's user-data (before the network).
    let (key, value) = kubejoin_vmtest::harness::DRIVE_SYSCTL;
    assert!(
        c.logged(&format!(
            "host (local-sources): the join settings add sysctl(s) {key}={value} (metadata:openstack)"
        )),
        "no host layer from the config drive{ctx}"
    );
    assert!(
        c.logged(&format!("host: set {key} = {value} (config): done")),
        "{ctx}"
    );
    let checks = c.checks();
    let check = |s: &str| checks.iter().find(|(_, w)| w.contains(s)).map(|c| c.0);
    assert_eq!(
        check(&format!("sysctl value {key}={value}")),
        Some(true),
        "the kubelet's node does not have {key}={value}{ctx}"
    );
    assert_eq!(
        check("no iso9660/vfat filesystem mounted"),
        Some(true),
        "the config drive stayed mounted{ctx}"
    );
    for m in ["isofs", "virtio_blk"] {
        assert!(
            checks
                .iter()
                .any(|(_, w)| w.starts_with("modules loaded:")
                    && w.split_whitespace().any(|x| x == m)),
            "{m} not loaded{ctx}"
        );
    }
    // virtio_blk by coldplug for the drive's device; isofs on demand, by the config-drive
    // reader just before it mounted the drive (local-sources), not by host-prep.
    let steps = c.timeline().map(|t| module_steps(&t)).unwrap_or_default();
    assert!(
        loaded_for(
            &steps,
            "host-prep",
            "virtio_blk",
            "device virtio:d00000002v00001AF4"
        ),
        "virtio_blk not coldplugged for the drive: {steps:?}{ctx}"
    );
    assert!(
        loaded_for(&steps, "local-sources", "isofs", "filesystem iso9660"),
        "isofs not loaded on demand for the drive: {steps:?}{ctx}"
    );

    // The join, as the control plane saw it: a CSR from the drive's token, for the drive's
    // hostname.
    let bootstrap_user = format!("system:bootstrap:{token_id}");
    assert!(
        requests_matching(
            &o,
            "POST",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests"
        )
        .iter()
        .any(|r| r["user"] == bootstrap_user.as_str() && r["status"] == 201),
        "no CSR created by {bootstrap_user}{ctx}"
    );
    assert!(
        c.logged(&format!("certificate for system:node:{node} issued")),
        "{ctx}"
    );
    assert!(
        requests_matching(&o, "GET", &format!("/api/v1/nodes/{node}"))
            .iter()
            .any(|r| r["user"] == format!("system:node:{node}").as_str()),
        "the control plane did not see the node {node}{ctx}"
    );
    assert_eq!(
        c.check_result(),
        Some(true),
        "the checker did not pass{ctx}"
    );
    assert!(
        !c.0.contains(secret),
        "the token secret appeared on the console{ctx}"
    );
}

/// A board whose clock starts in 2015 (`-rtc base=2015-01-01`), with the test SNTP server
/// reachable through qemu's user network (`kubejoin.ntp=10.0.2.2:10123`): kubejoin steps the
/// clock in its `clock` stage, before discovery, joins and hands off; the stand-in kubelet finds
/// the clock set and proves the identity over mTLS (which it verifies at its own clock).
#[test]
#[ignore = "boots a VM: needs root, qemu and the artifacts of scripts/vm-test, which runs it with --ignored"]
fn a_vm_whose_clock_is_in_2015_sets_it_from_sntp_and_joins() {
    let art = artifacts();
    let (work, _tmp) = work_dir("clock-sntp");
    let node = "kjvm-clock";
    let case = Case {
        right_pin: true,
        node_name: node.into(),
        extra_append: vec![],
        timeout: timeout(),
        switch_root: false,
        endpoint: None,
        policy: None,
        config_drive: false,
        rtc_base: Some("2015-01-01".into()),
        sntp: true,
        cp_args: vec![],
    };
    let o = run_case(&art, &case, &work).unwrap_or_else(|e| panic!("running the VM: {e}"));
    let c = &o.run.console;
    let ctx = context(&o);
    assert!(o.run.exited(), "qemu did not exit within the timeout{ctx}");
    assert!(
        c.logged("clock: asking 10.0.2.2:10123 (from cmdline)"),
        "{ctx}"
    );
    assert!(c.logged("clock: stepped 2015-01-01T"), "{ctx}");
    let timeline = c
        .timeline()
        .unwrap_or_else(|| panic!("no JSON timeline on the console{ctx}"));
    let phases = timeline["phases"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap_or_default())
        .collect();
    let at = |n: &str| names.iter().position(|x| *x == n);
    assert!(
        at("clock").is_some() && at("clock") < at("discovery"),
        "the clock stage must run before discovery: {names:?}{ctx}"
    );
    let step = phases
        .iter()
        .find(|p| p["phase"] == "clock-step")
        .unwrap_or_else(|| panic!("no clock-step entry in the timeline {names:?}{ctx}"));
    assert!(
        step["detail"]["from"]
            .as_str()
            .unwrap_or_default()
            .starts_with("2015-01-01T"),
        "{step}{ctx}"
    );
    assert_eq!(
        step["detail"]["servers"],
        serde_json::json!(["10.0.2.2:10123"]),
        "{step}{ctx}"
    );
    let checks = c.checks();
    let check = |s: &str| checks.iter().find(|(_, w)| w.contains(s)).map(|c| c.0);
    assert_eq!(check("is after 2025-01-01"), Some(true), "{ctx}");
    assert_eq!(check("-> 404 NotFound"), Some(true), "{ctx}");
    assert_eq!(
        c.check_result(),
        Some(true),
        "the checker did not pass{ctx}"
    );
}

/// The same board with no SNTP server, against a control plane whose certificates are valid only
/// from its start (`--pki-backdate 0s`: newer than this kubejoin's build, so the build-time floor
/// cannot vouch for them): after the CA pin matched, kubejoin takes the time from the `Date` of an
/// anonymous answer over TLS verified against the pinned CA, steps the clock to it as it would
/// from SNTP (`clock-step` in the timeline, by the API server), joins and hands off; the stand-in
/// kubelet finds the clock set.
#[test]
#[ignore = "boots a VM: needs root, qemu and the artifacts of scripts/vm-test, which runs it with --ignored"]
fn a_vm_whose_clock_is_in_2015_without_sntp_sets_it_from_the_verified_date_and_joins() {
    let art = artifacts();
    let (work, _tmp) = work_dir("clock-date");
    let case = Case {
        right_pin: true,
        node_name: "kjvm-dateclock".into(),
        extra_append: vec![],
        timeout: timeout(),
        switch_root: false,
        endpoint: None,
        policy: None,
        config_drive: false,
        rtc_base: Some("2015-01-01".into()),
        sntp: false,
        cp_args: vec!["--pki-backdate".into(), "0s".into()],
    };
    let o = run_case(&art, &case, &work).unwrap_or_else(|e| panic!("running the VM: {e}"));
    let c = &o.run.console;
    let ctx = context(&o);
    assert!(o.run.exited(), "qemu did not exit within the timeout{ctx}");
    for needle in [
        "earlier than this kubejoin was built",
        "clock: taking the time from the Date header of https://10.0.2.2:",
        "clock: stepped 2015-01-01T",
    ] {
        assert!(c.logged(needle), "{needle}{ctx}");
    }
    let timeline = c
        .timeline()
        .unwrap_or_else(|| panic!("no JSON timeline on the console{ctx}"));
    let phases = timeline["phases"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap_or_default())
        .collect();
    let step = phases
        .iter()
        .find(|p| p["phase"] == "clock-step")
        .unwrap_or_else(|| panic!("no clock-step entry in the timeline {names:?}{ctx}"));
    assert!(
        step["detail"]["from"]
            .as_str()
            .unwrap_or_default()
            .starts_with("2015-01-01T"),
        "{step}{ctx}"
    );
    let by = step["detail"]["servers"][0].as_str().unwrap_or_default();
    assert!(by.starts_with("https://10.0.2.2:"), "{step}{ctx}");
    // The Date came from an anonymous request, before any token-authenticated one.
    let users: Vec<&str> = o
        .requests
        .iter()
        .map(|r| r["user"].as_str().unwrap_or_default())
        .collect();
    let probe = o
        .requests
        .iter()
        .position(|r| r["path"] == "/version")
        .unwrap_or_else(|| panic!("no GET /version{ctx}"));
    assert_eq!(users[probe], "system:anonymous", "{ctx}");
    let first_token = users
        .iter()
        .position(|u| u.starts_with("system:bootstrap:"))
        .unwrap_or_else(|| panic!("the token was never used{ctx}"));
    assert!(probe < first_token, "{users:?}{ctx}");
    let checks = c.checks();
    let check = |s: &str| checks.iter().find(|(_, w)| w.contains(s)).map(|c| c.0);
    assert_eq!(check("is after 2025-01-01"), Some(true), "{ctx}");
    assert_eq!(
        c.check_result(),
        Some(true),
        "the checker did not pass{ctx}"
    );
}

/// The same board with network time turned off (`kubejoin.ntp=off`: no SNTP and no `Date`) and
/// the same control plane: the clock stage says the clock is earlier than the build and goes on
/// at the build time; the certificates are "not yet valid" at it, so the join stops with the
/// clock message, before the token is sent, and the failure policy powers off.
#[test]
#[ignore = "boots a VM: needs root, qemu and the artifacts of scripts/vm-test, which runs it with --ignored"]
fn a_vm_whose_clock_is_in_2015_with_network_time_off_stops_with_the_clock_message() {
    let art = artifacts();
    let (work, _tmp) = work_dir("clock-off");
    let case = Case {
        right_pin: true,
        node_name: "kjvm-noclock".into(),
        extra_append: vec!["kubejoin.ntp=off".into()],
        timeout: timeout(),
        switch_root: false,
        endpoint: None,
        policy: None,
        config_drive: false,
        rtc_base: Some("2015-01-01".into()),
        sntp: false,
        cp_args: vec!["--pki-backdate".into(), "0s".into()],
    };
    let o = run_case(&art, &case, &work).unwrap_or_else(|e| panic!("running the VM: {e}"));
    let c = &o.run.console;
    let ctx = context(&o);
    assert!(
        o.run.exited(),
        "qemu did not exit: the failure policy did not power off{ctx}"
    );
    assert!(c.logged("earlier than this kubejoin was built"), "{ctx}");
    assert!(
        c.logged("network time is off: no SNTP, no verified Date (from cmdline)"),
        "{ctx}"
    );
    assert!(
        !c.logged("Date header of"),
        "no Date is taken when network time is off{ctx}"
    );
    for needle in [
        "is not yet valid: it is valid from",
        "earlier than this kubejoin was built, so the build time was used",
        "the clock is the likely cause",
        "kubejoin.ntp=HOST[:PORT]",
        "policy: kubejoin.on-failure=poweroff -> powering off now",
    ] {
        assert!(c.logged(needle), "{needle}{ctx}");
    }
    assert_eq!(
        c.check_result(),
        None,
        "the kubelet stand-in must not have run{ctx}"
    );
    for r in &o.requests {
        let user = r["user"].as_str().unwrap_or_default();
        assert!(
            !user.starts_with("system:bootstrap:"),
            "a token-authenticated request was sent: {r}{ctx}"
        );
    }
}
