//! Active swap areas (`/proc/swaps`).
//!
//! The kubelet refuses to start while swap is on unless it is configured for it (NodeSwap,
//! `failSwapOn: false`), so host preparation turns every active area off unless told to keep
//! them.

use crate::fs::root::Root;
use crate::host::HostError;
use std::fmt;

/// One line of `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    /// The device or file, as the kernel names it (octal escapes decoded).
    pub path: String,
    /// `partition` or `file`.
    pub kind: String,
    pub size_kib: u64,
    pub used_kib: u64,
    pub priority: i64,
}

impl fmt::Display for SwapArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {} KiB, {} KiB used)",
            self.path, self.kind, self.size_kib, self.used_kib
        )
    }
}

/// Parses `/proc/swaps`: a header line, then `path type size used priority` separated by
/// whitespace. The kernel escapes space, tab, newline and backslash in the path as `\ooo`.
pub fn parse(content: &str) -> Vec<SwapArea> {
    content
        .lines()
        .filter(|l| !l.starts_with("Filename"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let path = unescape(w.next()?);
            let kind = w.next()?.to_string();
            let size_kib = w.next()?.parse().ok()?;
            let used_kib = w.next()?.parse().ok()?;
            let priority = w.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            Some(SwapArea {
                path,
                kind,
                size_kib,
                used_kib,
                priority,
            })
        })
        .collect()
}

/// Decodes seq_file's `\ooo` octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The active swap areas under `root`. A kernel without swap support has no `/proc/swaps`:
/// nothing is active.
pub fn active(root: &Root) -> Result<Vec<SwapArea>, HostError> {
    let p = root.join("/proc/swaps")?;
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(parse(&s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(HostError::Read { path: p, source }),
    }
}

/// What an errno from swapoff(2) means.
pub fn errno_meaning(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => "not enough free memory to bring the swapped-out pages back".into(),
        Some(libc::EPERM) => "operation not permitted: needs CAP_SYS_ADMIN".into(),
        Some(libc::ENOENT) => "the swap device or file no longer exists".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_swaps() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /dev/vda2                               partition\t1048572\t\t0\t\t-2\n\
                    /var/swap\\040file                       file\t\t524284\t\t1024\t\t-3\n";
        assert_eq!(
            parse(text),
            vec![
                SwapArea {
                    path: "/dev/vda2".into(),
                    kind: "partition".into(),
                    size_kib: 1048572,
                    used_kib: 0,
                    priority: -2
                },
                SwapArea {
                    path: "/var/swap file".into(),
                    kind: "file".into(),
                    size_kib: 524284,
                    used_kib: 1024,
                    priority: -3
                },
            ]
        );
        assert!(parse("Filename\tType\tSize\tUsed\tPriority\n").is_empty());
        assert!(parse("").is_empty());
        assert_eq!(unescape(r"a\134b\011c\0"), "a\\b\tc\\0");
    }
}
