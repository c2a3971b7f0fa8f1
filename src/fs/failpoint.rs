//! Failpoints: named instants of the write path where a test kills the process for real.
//!
//! Crash consistency is a claim about every instant of an install, so tests need to stop the
//! real binary at each of them, as a power cut or an OOM kill would: no error path, no
//! destructor, no flush. `KUBEJOIN_FAILPOINT=<name>` makes the process `abort()` when it
//! reaches `<name>`; `trace` prints every failpoint passed (to stderr) and carries on; `list`
//! makes `kubejoin join` print every failpoint of a join and exit. Names are
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

/// Every failpoint a first join into an empty root passes, in order. Derived from the install
/// plan itself (so a new step gets its failpoints listed), and checked against a traced run by
/// `tests/crash.rs`.
pub fn list() -> Vec<String> {
    use crate::bootstrap::csr::KEY_TMP;
    use crate::install::{completion_steps, plan, Inputs, Step, DIRS};
    let mut out = Vec::new();
    let mut made: Vec<String> = Vec::new();
    let mut mkdirs = |node_file: &str, out: &mut Vec<String>| {
        // ensure_dirs_for: every DIRS entry above the file, each with its missing ancestors.
        for (dir, _) in DIRS {
            if !node_file.starts_with(&format!("{dir}/")) {
                continue;
            }
            let mut chain: Vec<&Path> = Path::new(dir)
                .ancestors()
                .filter(|a| a.parent().is_some())
                .collect();
            chain.reverse();
            for d in chain {
                let d = d.display().to_string();
                if !made.contains(&d) {
                    for at in ["before", "staged", "renamed", "dir-synced"] {
                        out.push(name(&format!("mkdir.{at}"), &d));
                    }
                    made.push(d);
                }
            }
        }
    };
    let write = |p: &str, out: &mut Vec<String>| {
        for at in ["before", "opened", "temp-synced", "renamed", "dir-synced"] {
            out.push(name(&format!("write.{at}"), p));
        }
    };

    mkdirs(KEY_TMP, &mut out);
    write(KEY_TMP, &mut out);
    out.push(name("key.persisted", KEY_TMP));
    out.push(name("csr.posted", "node-csr-*"));
    let inputs = Inputs {
        server: "https://127.0.0.1:6443",
        ca_pem: b"",
        cert_chain_pem: "",
        key_pem: "",
        kubelet_config: "",
        flags_env: "",
        now: std::time::SystemTime::UNIX_EPOCH,
    };
    for step in plan(&inputs).iter().chain(completion_steps().iter()) {
        match step {
            Step::File { path, .. } => {
                mkdirs(path, &mut out);
                write(path, &mut out);
            }
            Step::Symlink { link, .. } => {
                mkdirs(link, &mut out);
                for at in ["before", "staged", "swapped", "dir-synced"] {
                    out.push(name(&format!("symlink.{at}"), link));
                }
            }
            Step::Remove { path, .. } => {
                for at in ["before", "unlinked", "dir-synced"] {
                    out.push(name(&format!("remove.{at}"), path));
                }
            }
        }
    }
    out
}

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

    #[test]
    fn list_covers_every_step_once_in_order() {
        let l = list();
        let mut sorted = l.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), l.len(), "names are unique");
        let pos = |n: &str| l.iter().position(|x| x == n).unwrap();
        // The key is durable before the CSR exists; kubelet.conf comes after the PEM and the
        // symlink it references; the pending key goes last but for the completion files.
        assert!(
            pos("key.persisted:/var/lib/kubelet/pki/kubelet-client.key.tmp")
                < pos("csr.posted:node-csr-*")
        );
        assert!(
            pos("symlink.dir-synced:/var/lib/kubelet/pki/kubelet-client-current.pem")
                < pos("write.before:/etc/kubernetes/kubelet.conf")
        );
        assert!(pos("mkdir.before:/var") < pos("mkdir.before:/var/lib/kubelet"));
        assert!(l.contains(&"mkdir.staged:/etc/kubernetes/pki".to_string()));
        assert!(l.contains(&"write.opened:/run/cluster-api/bootstrap-success.complete".to_string()));
        assert_eq!(
            l.iter().filter(|n| n.starts_with("mkdir.before:")).count(),
            10,
            "/etc /etc/kubernetes /etc/kubernetes/pki /var /var/lib /var/lib/kubelet \
             /var/lib/kubelet/pki /run /run/kubejoin /run/cluster-api: {l:?}"
        );
    }
}
