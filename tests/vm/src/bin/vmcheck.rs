//! `kubejoin-vmcheck`: installed as `/usr/bin/kubelet` in the test initramfs. kubejoin execs it
//! with the kubelet's argv; it checks what kubejoin did (see `kubejoin_vmtest::check`), prints
//! PASS/FAIL lines and a RESULT line on the console, then powers the VM off.
//!
//! It is PID 1 by then (kubejoin exec'd it), so it never exits: exiting would panic the kernel.
//! Run by hand (not PID 1) it exits 0 or 1 instead, checking under `KUBEJOIN_VMCHECK_ROOT`.

use kubejoin_vmtest::check::{self, PREFIX};
use std::path::PathBuf;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let root = std::env::var_os("KUBEJOIN_VMCHECK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let checks = std::panic::catch_unwind(|| check::run(&root, &argv)).unwrap_or_else(|_| {
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
