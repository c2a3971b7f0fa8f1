//! `kubejoin-vmcheck`: installed as `/usr/bin/kubelet` in the test initramfs. kubejoin execs it
//! with the kubelet's argv; it checks what kubejoin did (see `kubejoin_vmtest::check`), prints
//! PASS/FAIL lines and a RESULT line on the console, then powers the VM off.
//!
//! It is PID 1 by then (kubejoin exec'd it), so it never exits: exiting would panic the kernel.
//! Run by hand (not PID 1) it exits 0 or 1 instead, checking under `KUBEJOIN_VMCHECK_ROOT`.
//! Started as `/sbin/init` (the switch-root case), it first checks that it runs in the real root.

use kubejoin_vmtest::check::{self, PREFIX};
use std::path::PathBuf;

fn main() {
    // First, before anything else costs time: when the "kubelet" started.
    if let Some(line) = check::started_line() {
        println!("{line}");
    }
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let argv: Vec<String> = args.collect();
    let root = std::env::var_os("KUBEJOIN_VMCHECK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    // Exec'd as /usr/bin/kubelet by kubejoin (handoff exec), or started as the real root's
    // /sbin/init after kubejoin's switch-root.
    let as_init = argv0.ends_with("/init");
    let (timeline_line, timeline_check) = check::timeline_file(&root);
    if let Some(line) = timeline_line {
        println!("{line}");
    }
    let checks = std::panic::catch_unwind(|| {
        let mut checks = if as_init {
            check::run_as_init(&root, kubejoin_vmtest::harness::SYSROOT_MARKER)
        } else {
            check::run(&root, &argv)
        };
        checks.push(timeline_check.clone());
        checks
    })
    .unwrap_or_else(|_| {
        vec![check::Check {
            pass: false,
            what: "the checker panicked".into(),
        }]
    });
    let ok = checks.iter().all(|c| c.pass);
    for c in &checks {
        println!("{}", c.line());
    }
    println!("{PREFIX} RESULT {}", if ok { "PASS" } else { "FAIL" });
    if std::process::id() != 1 {
        std::process::exit(if ok { 0 } else { 1 });
    }
    nix::unistd::sync();
    let e = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    println!("{PREFIX} power-off failed: {e:?}; halting here");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
