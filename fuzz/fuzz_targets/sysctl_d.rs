//! sysctl.d files and `sysctl.*` kernel parameters (`host::sysctl`): systemd-sysctl's format,
//! globs, precedence; malformed lines are notes, never panics.
//!
//! Input: `sysctl.d file \0 kernel command line`. The file is written under a scratch root (the
//! only way into the parser is the way kubejoin reads it).
#![no_main]

use kubejoin::host::sysctl::plan_sysctls;
use kubejoin::host::{cmdline, HostConfig};
use kubejoin::root::Root;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kubejoin-fuzz-sysctl-{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir.join("etc/sysctl.d"));
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let (file, line) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let dir = scratch();
    if std::fs::write(dir.join("etc/sysctl.d/50-fuzz.conf"), file).is_err() {
        return;
    }
    let args = cmdline::split(&String::from_utf8_lossy(line));
    let cfg = HostConfig {
        read_sysctl_d: true,
        read_kernel_cmdline: true,
        read_modules_load_d: false,
        ..HostConfig::default()
    };
    let mut notes = Vec::new();
    let _ = plan_sysctls(&cfg, &Root::new(dir), &args, &mut notes);
});
