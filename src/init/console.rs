//! Logging as PID 1: every line kubejoin writes to stderr reaches the console *and* the kernel
//! log (`/dev/kmsg`), with its level.
//!
//! The whole crate logs with `eprintln!` (`crate::log`), so PID 1 points stderr at a pipe and a
//! thread copies each line to both places. That catches every module's lines, and the panic hook's,
//! without the rest of the crate knowing it runs as PID 1. Before an exec, stderr is pointed back
//! at the console ([`Tee::finish`]): after the exec nobody would drain the pipe.
//!
//! The kernel itself prints kmsg records on the console when their level is below
//! `console_loglevel` (`quiet` lowers it to 4). Those lines go to kmsg only, so the console shows
//! every line exactly once: kernel-echoed ones with the kernel's `[ seconds]` stamp, the others
//! as written. Lines too long for one kmsg record (the JSON timeline) always go to the console
//! directly and are cut in kmsg.

use crate::sys::init::Init;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::thread::JoinHandle;

/// The console, kept for [`restore`]: a program started from another thread (the watchdog's
/// shell) must get the console back on stderr, not the pipe whose reader it may not have.
static CONSOLE: std::sync::OnceLock<File> = std::sync::OnceLock::new();

/// Points stderr back at the console without waiting for the copy thread (which may be the
/// thing that is stuck). A no-op when stderr was never captured.
pub fn restore(sys: &dyn Init) {
    if let Some(c) = CONSOLE.get() {
        let _ = sys.restore_stderr(c);
    }
}

/// Longest kmsg record written (the kernel refuses records over ~1 KiB).
const KMSG_MAX: usize = 976;

/// The syslog level of one of kubejoin's stderr lines (`kubejoin: <level>: …`).
pub fn level_of(line: &str) -> u8 {
    let rest = line.strip_prefix("kubejoin: ").unwrap_or(line);
    if rest.starts_with("error:") {
        3
    } else if rest.starts_with("warning:") {
        4
    } else if rest.starts_with("debug:") {
        7
    } else {
        6
    }
}

/// The kmsg record for one line: `<level>` + the line (prefixed `kubejoin: ` when another
/// writer's line lacks it), cut on a character boundary to fit one record.
pub fn kmsg_record(line: &str) -> Vec<u8> {
    let mut text = if line.starts_with("kubejoin") {
        line.to_string()
    } else {
        format!("kubejoin: {line}")
    };
    if text.len() > KMSG_MAX {
        let mut cut = KMSG_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    format!("<{}>{text}\n", level_of(line)).into_bytes()
}

/// Whether a line must also be written to the console directly: when the kernel will not echo
/// its kmsg record (level not below `echo_below`), or the record would be cut.
pub fn needs_direct(line: &str, echo_below: Option<u8>) -> bool {
    match echo_below {
        Some(threshold) => level_of(line) >= threshold || line.len() + 12 > KMSG_MAX,
        None => true,
    }
}

/// `console_loglevel`, the first field of `/proc/sys/kernel/printk`.
pub fn console_loglevel(printk: &str) -> Option<u8> {
    printk.split_whitespace().next()?.parse().ok()
}

/// A running copy of stderr to the console and kmsg.
#[derive(Debug)]
pub struct Tee {
    console: File,
    thread: Option<JoinHandle<()>>,
}

/// Starts the copy. Returns `None` (logs then simply stay on stderr) when stderr cannot be
/// captured; never fails the boot for logging's sake.
pub fn start(sys: &dyn Init) -> Option<Tee> {
    let kmsg = sys.open_kmsg().ok();
    let mut echo_below = None;
    if kmsg.is_some() && sys.is_pid1() {
        // Userspace kmsg writes are rate-limited by default (10 lines per 5 s); a join logs more
        // than that. systemd does the same.
        if sys
            .write_file(Path::new("/proc/sys/kernel/printk_devkmsg"), b"on\n")
            .is_ok()
        {
            echo_below = sys
                .read_file(Path::new("/proc/sys/kernel/printk"))
                .ok()
                .and_then(|b| console_loglevel(&String::from_utf8_lossy(&b)));
        }
    }
    let (reader, console) = sys.capture_stderr().ok()?;
    let out = console.try_clone().ok()?;
    if let Ok(c) = console.try_clone() {
        let _ = CONSOLE.set(c);
    }
    let thread = std::thread::Builder::new()
        .name("kmsg-tee".into())
        .spawn(move || copy_lines(reader, out, kmsg, echo_below))
        .ok()?;
    Some(Tee {
        console,
        thread: Some(thread),
    })
}

/// Copies `reader` line by line to `console` and `kmsg` until EOF.
pub fn copy_lines(reader: File, mut console: File, mut kmsg: Option<File>, echo_below: Option<u8>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        // One write per destination and line, so concurrent writers never split a line.
        let mut echoed = false;
        if let Some(k) = kmsg.as_mut() {
            echoed = k.write_all(&kmsg_record(line)).is_ok() && !needs_direct(line, echo_below);
        }
        if !echoed {
            let _ = console.write_all(format!("{line}\n").as_bytes());
        }
    }
}

impl Tee {
    /// Points stderr back at the console and waits until every line written so far is out.
    pub fn finish(mut self, sys: &dyn Init) {
        if sys.restore_stderr(&self.console).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn levels_from_the_log_prefix() {
        assert_eq!(level_of("kubejoin: error: discovery failed"), 3);
        assert_eq!(level_of("kubejoin: warning: swap is on"), 4);
        assert_eq!(level_of("kubejoin: info: [network] start"), 6);
        assert_eq!(level_of("kubejoin: debug: x"), 7);
        assert_eq!(level_of("kubejoin: timeline {}"), 6);
        assert_eq!(level_of("something else"), 6);
    }

    #[test]
    fn records_carry_the_level_and_fit() {
        assert_eq!(
            kmsg_record("kubejoin: error: x"),
            b"<3>kubejoin: error: x\n"
        );
        assert_eq!(
            kmsg_record("thread 'main' panicked"),
            b"<6>kubejoin: thread 'main' panicked\n"
        );
        let long = format!("kubejoin: timeline {}", "é".repeat(2000));
        let r = kmsg_record(&long);
        assert!(r.len() <= KMSG_MAX + 10 && r.ends_with("…\n".as_bytes()));
        assert!(std::str::from_utf8(&r).is_ok());
    }

    #[test]
    fn direct_console_writes_only_where_the_kernel_stays_silent() {
        // `quiet`: console_loglevel 4, the kernel echoes errors only.
        assert!(!needs_direct("kubejoin: error: x", Some(4)));
        assert!(needs_direct("kubejoin: info: x", Some(4)));
        // Default loglevel 7: the kernel echoes info too.
        assert!(!needs_direct("kubejoin: info: x", Some(7)));
        assert!(needs_direct("kubejoin: debug: x", Some(7)));
        assert!(needs_direct(
            &format!("kubejoin: timeline {}", "x".repeat(1000)),
            Some(7)
        ));
        assert!(needs_direct("kubejoin: error: x", None));
        assert_eq!(console_loglevel("4\t4\t1\t7\n"), Some(4));
        assert_eq!(console_loglevel(""), None);
    }

    #[test]
    fn copies_every_line_to_both() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, r) = {
            let (r, w) = nix::unistd::pipe().unwrap();
            (File::from(w), File::from(r))
        };
        let console = File::create(dir.path().join("console")).unwrap();
        let kmsg = File::create(dir.path().join("kmsg")).unwrap();
        let t = std::thread::spawn(move || copy_lines(r, console, Some(kmsg), Some(4)));
        w.write_all(b"kubejoin: info: [network] start\nkubejoin: error: boom\npartial")
            .unwrap();
        drop(w);
        t.join().unwrap();
        let mut c = String::new();
        File::open(dir.path().join("console"))
            .unwrap()
            .read_to_string(&mut c)
            .unwrap();
        let mut k = String::new();
        File::open(dir.path().join("kmsg"))
            .unwrap()
            .read_to_string(&mut k)
            .unwrap();
        // The error went to kmsg only: with console_loglevel 4 the kernel prints it itself.
        assert_eq!(c, "kubejoin: info: [network] start\npartial\n");
        assert_eq!(
            k,
            "<6>kubejoin: info: [network] start\n<3>kubejoin: error: boom\n<6>kubejoin: partial\n"
        );
    }
}
