//! Failpoints: named instants of the write path where a test kills the process for real.
//!
//! Crash consistency is a claim about every instant of an install, so tests need to stop the
//! real binary at each of them, as a power cut or an OOM kill would: no error path, no
//! destructor, no flush. `KUBEJOIN_FAILPOINT=<name>` makes the process `abort()` when it
//! reaches `<name>`; `trace` prints every failpoint passed (to stderr) and carries on; `list`
//! makes `kubejoin join` print every failpoint of a join and exit (`crate::install::failpoints`). Names are
//! `<operation>.<instant>:<node path>`, e.g. `write.renamed:/etc/kubernetes/kubelet.conf`; the
//! client PEM's timestamp is written `*` (`/var/lib/kubelet/pki/kubelet-client-*.pem`).
//!
//! Compiled in only with `debug_assertions` (test and dev builds) or the `failpoints` cargo
//! feature; in a release build [`hit`] is an empty inline function and the variable is ignored.
//!
//! Instants per operation (an instant "before X" is the same as "after" the previous one, since
//! nothing happens in between, so each state has one name):
//! - `write` (atomic file write): `before`; `opened` (temp file created by
//!   `open(O_CREAT|O_EXCL, mode)`, before `fchmod` and before any byte); `temp-synced` (temp
//!   written, fsynced, closed = before the rename); `renamed` (= before the directory fsync);
//!   `dir-synced`.
//! - `mkdir` (each missing directory): `before`; `staged` (temp directory with its final mode,
//!   synced = before the rename); `renamed`; `dir-synced` (parent fsynced).
//! - `symlink` (the `kubelet-client-current.pem` swap): `before`; `staged` (staging link
//!   created = before the swap); `swapped`; `dir-synced`.
//! - `remove`: `before`; `unlinked`; `dir-synced`.
//! - `key.persisted:<key path>` (the pending key is durable, no CSR sent yet) and
//!   `csr.posted:<csr name pattern>` (the server created the CSR, nothing installed yet).

use std::path::Path;

/// The environment variable that arms a failpoint.
pub const ENV: &str = "KUBEJOIN_FAILPOINT";

/// Whether this build honours [`ENV`].
pub const COMPILED_IN: bool = cfg!(any(debug_assertions, feature = "failpoints"));

/// What [`ENV`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Armed {
    /// Print every failpoint passed.
    Trace,
    /// Print the list of failpoints and exit (handled by `kubejoin join`).
    List,
    /// Abort at this failpoint.
    At(String),
}

/// Parses a value of [`ENV`].
pub fn parse(value: &str) -> Option<Armed> {
    match value.trim() {
        "" => None,
        "trace" => Some(Armed::Trace),
        "list" => Some(Armed::List),
        name => Some(Armed::At(name.to_string())),
    }
}

/// What this process was armed with (read once); always `None` in a release build.
pub fn armed() -> Option<&'static Armed> {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    {
        static ARMED: std::sync::OnceLock<Option<Armed>> = std::sync::OnceLock::new();
        ARMED
            .get_or_init(|| std::env::var(ENV).ok().and_then(|v| parse(&v)))
            .as_ref()
    }
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    {
        None
    }
}

/// The failpoint name of `site` on `label` (a node path, or a real path when there is none).
pub fn name(site: &str, label: &str) -> String {
    format!("{site}:{}", stable_label(label))
}

/// Replaces what changes from run to run (the client PEM's timestamp) by `*`.
fn stable_label(label: &str) -> String {
    let path = Path::new(label);
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    let stamped = file
        .strip_prefix("kubelet-client-")
        .and_then(|r| r.strip_suffix(".pem"))
        .is_some_and(|ts| ts.len() == 19 && ts.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    match (stamped, path.parent()) {
        (true, Some(dir)) => format!("{}/kubelet-client-*.pem", dir.display()),
        _ => label.to_string(),
    }
}

/// Marks failpoint `site` on `label`: aborts the process if armed with its name.
#[cfg(any(debug_assertions, feature = "failpoints"))]
pub fn hit(site: &str, label: &str) {
    match armed() {
        None | Some(Armed::List) => {}
        Some(Armed::Trace) => eprintln!("kubejoin: failpoint: {}", name(site, label)),
        Some(Armed::At(want)) => {
            let here = name(site, label);
            if *want == here {
                eprintln!("kubejoin: failpoint: {here}: aborting");
                // A real crash: no unwinding, no destructors, no buffered output flushed.
                std::process::abort();
            }
        }
    }
}

/// Marks failpoint `site` on `label` (compiled out of this build).
#[cfg(not(any(debug_assertions, feature = "failpoints")))]
#[inline(always)]
pub fn hit(_site: &str, _label: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_across_runs() {
        assert_eq!(
            name(
                "write.renamed",
                "/var/lib/kubelet/pki/kubelet-client-2026-11-22-11-56-16.pem"
            ),
            "write.renamed:/var/lib/kubelet/pki/kubelet-client-*.pem"
        );
        assert_eq!(
            name(
                "symlink.swapped",
                "/var/lib/kubelet/pki/kubelet-client-current.pem"
            ),
            "symlink.swapped:/var/lib/kubelet/pki/kubelet-client-current.pem"
        );
        assert_eq!(parse(" trace "), Some(Armed::Trace));
        assert_eq!(parse(""), None);
        assert_eq!(
            parse("write.before:/x"),
            Some(Armed::At("write.before:/x".into()))
        );
    }
}
