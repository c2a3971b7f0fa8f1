//! systemd's configuration-directory rules, shared by modules-load.d and sysctl.d.
//!
//! Files named `*.conf` are collected from every directory; a file name present in several
//! directories is taken only from the first (`/etc` over `/run` over `/usr/local/lib` over
//! `/usr/lib`), so an administrator overrides a vendor file by reusing its name, and masks it
//! with an empty file or a symlink to `/dev/null`. The survivors are read in file-name order
//! regardless of directory.

use crate::fs::root::Root;
use crate::host::HostError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The directories of a systemd `*.d` configuration, highest priority first.
pub fn search_dirs(name: &str) -> Vec<String> {
    ["/etc", "/run", "/usr/local/lib", "/usr/lib"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .collect()
}

/// One configuration file that survived shadowing, by its node path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    /// The path as the node sees it (`/etc/sysctl.d/99-k8s.conf`).
    pub path: PathBuf,
    /// Its content (empty for a masked file).
    pub content: String,
}

/// The effective `*.conf` files of `dirs` (highest priority first), in file-name order.
/// Missing directories are fine; an unreadable file is an error naming it.
pub fn collect(root: &Root, dirs: &[String]) -> Result<Vec<ConfFile>, HostError> {
    let mut chosen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let real = root.join(dir)?;
        let Ok(entries) = std::fs::read_dir(&real) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".conf") || name.starts_with('.') {
                continue;
            }
            chosen
                .entry(name.clone())
                .or_insert_with(|| Path::new(dir).join(&name));
        }
    }
    let mut out = Vec::with_capacity(chosen.len());
    for (_, node_path) in chosen {
        let real = root.join(&node_path)?;
        // A symlink to /dev/null masks the vendor file of the same name; read nothing (under a
        // test root the link would otherwise resolve on the host).
        if std::fs::read_link(&real).is_ok_and(|t| t == Path::new("/dev/null")) {
            out.push(ConfFile {
                path: node_path,
                content: String::new(),
            });
            continue;
        }
        if real.is_dir() {
            continue;
        }
        let content = match std::fs::read_to_string(&real) {
            Ok(c) => c,
            // A dangling symlink: nothing there to apply (systemd skips it too).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(HostError::Read { path: real, source }),
        };
        out.push(ConfFile {
            path: node_path,
            content,
        });
    }
    Ok(out)
}

/// The meaningful lines of a configuration file: (1-based line number, trimmed text), without
/// blank lines and `#` / `;` comments.
pub fn lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    content
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_beats_run_beats_usr_lib_and_names_sort_across_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let put = |p: &str, s: &str| {
            let real = root.join(p).unwrap();
            std::fs::create_dir_all(real.parent().unwrap()).unwrap();
            std::fs::write(real, s).unwrap();
        };
        put("/usr/lib/x.d/10-vendor.conf", "vendor");
        put("/usr/lib/x.d/20-shadowed.conf", "usr");
        put("/run/x.d/20-shadowed.conf", "run");
        put("/etc/x.d/20-shadowed.conf", "etc");
        put("/run/x.d/30-run.conf", "run only");
        put("/usr/lib/x.d/40-masked.conf", "masked");
        put("/etc/x.d/ignored.txt", "not a .conf");
        std::os::unix::fs::symlink(
            "/nonexistent",
            root.join("/etc/x.d/50-dangling.conf").unwrap(),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("/etc/x.d").unwrap()).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("/etc/x.d/40-masked.conf").unwrap())
            .unwrap();
        let files = collect(&root, &search_dirs("x.d")).unwrap();
        let got: Vec<(String, String)> = files
            .iter()
            .map(|f| (f.path.display().to_string(), f.content.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/usr/lib/x.d/10-vendor.conf".into(), "vendor".into()),
                ("/etc/x.d/20-shadowed.conf".into(), "etc".into()),
                ("/run/x.d/30-run.conf".into(), "run only".into()),
                ("/etc/x.d/40-masked.conf".into(), "".into()),
            ]
        );
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let got: Vec<_> =
            lines("# c\n; c\n\n  overlay  \nbr_netfilter # not a comment here\n").collect();
        assert_eq!(
            got,
            vec![(4, "overlay"), (5, "br_netfilter # not a comment here")]
        );
    }
}
