//! THE atomic writer: every file kubejoin puts on the node goes through here.
//!
//! A reader (the kubelet, a crash-restarted kubejoin, a person) sees either the old file or the
//! new one, never a partial one, and a file that a reader sees survives a power cut:
//!
//! 1. create a temp file in the same directory (same filesystem, so the rename is atomic) with
//!    `O_CREAT|O_EXCL` and the final mode, then `fchmod` it to that mode before writing a byte,
//!    so a key is never world-readable for an instant whatever the umask;
//! 2. write, `fsync` the file;
//! 3. `rename` over the final name;
//! 4. `fsync` the directory, so the rename itself is durable.
//!
//! Missing parent directories are created with the mode the spec gives (0755, or 0700 for
//! `/var/lib/kubelet`), each made exactly that mode and made durable in its own parent.
//! Errors name the action and the real path ("writing /etc/kubernetes/kubelet.conf").

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A local file operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}", path.display())]
pub struct WriteError {
    /// What was being done: `writing`, `creating directory`, `replacing symlink`, ...
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Prefix of our temp files for `name`; a leftover one is debris from a crashed run.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.kubejoin-tmp.")
}

fn parent_of(path: &Path) -> Result<&Path, WriteError> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Err(WriteError {
            action: "writing",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory"),
        }),
    }
}

fn file_name_of(path: &Path) -> Result<String, WriteError> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| WriteError {
            action: "writing",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        })
}

/// Makes a directory entry change durable (rename, create, unlink inside `dir`).
pub fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("syncing directory", dir))
}

/// Creates `dir` and its missing ancestors, each with exactly `mode`. Existing directories are
/// left as they are (an admin may have tightened them on purpose).
pub fn create_dirs(dir: &Path, mode: u32) -> Result<(), WriteError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(mode).create(d) {
            Ok(()) => {}
            // Someone else created it in between: fine, it is a directory now.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(err("creating directory", d)(e)),
        }
        // DirBuilder's mode is filtered by the umask; make it exactly what the spec says.
        fs::set_permissions(d, Permissions::from_mode(mode))
            .map_err(err("setting the mode of", d))?;
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Removes leftover temp files of `name` in `dir` from an earlier, interrupted run. Best effort:
/// they are invisible to the kubelet and only cost space.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Atomically replaces `path` with `contents`, mode `mode` (e.g. 0o600); missing parents are
/// created with `dir_mode`.
pub fn write_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    dir_mode: u32,
) -> Result<(), WriteError> {
    let dir = parent_of(path)?;
    let name = file_name_of(path)?;
    create_dirs(dir, dir_mode)?;
    remove_stale_temps(dir, &name);

    let (tmp, mut file) = loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{}{}.{n}", temp_prefix(&name), std::process::id()));
        // create_new = O_CREAT|O_EXCL: never follows a planted symlink, never reuses a file.
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err("writing", path)(e)),
        }
    };
    let result = (|| {
        // fchmod before the first byte: the open mode was reduced by the umask, and may only
        // ever be made stricter than `mode`, never looser, so nothing leaks in between.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    drop(file);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err("writing", path)(e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(err("writing", path)(e));
    }
    sync_dir(dir)
}

/// Atomically points the symlink `link` at `target` (the kubelet's certificate-store swap):
/// create the symlink `staging` → `target`, then rename it over `link`. As the kubelet's store
/// does, a regular file at either name is an error rather than something to delete.
pub fn swap_symlink(
    link: &Path,
    staging: &Path,
    target: &Path,
    dir_mode: u32,
) -> Result<(), WriteError> {
    let dir = parent_of(link)?;
    create_dirs(dir, dir_mode)?;
    let not_a_symlink = |p: &Path| WriteError {
        action: "replacing symlink",
        path: p.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it exists and is not a symlink",
        ),
    };
    match fs::symlink_metadata(staging) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::remove_file(staging).map_err(err("removing", staging))?;
        }
        Ok(_) => return Err(not_a_symlink(staging)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("inspecting", staging)(e)),
    }
    match fs::symlink_metadata(link) {
        Ok(m) if !m.file_type().is_symlink() => return Err(not_a_symlink(link)),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("inspecting", link)(e)),
    }
    std::os::unix::fs::symlink(target, staging).map_err(err("creating symlink", staging))?;
    if let Err(e) = fs::rename(staging, link) {
        let _ = fs::remove_file(staging);
        return Err(err("replacing symlink", link)(e));
    }
    sync_dir(dir)
}

/// Removes `path` if it exists and makes the removal durable.
pub fn remove_file(path: &Path) -> Result<(), WriteError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent_of(path)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err("removing", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_with_exact_mode_and_creates_parents_with_dir_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("var/lib/kubelet/pki/key.pem");
        write_file(&p, b"secret", 0o600, 0o700).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"secret");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&t.path().join("var")), 0o700);
        assert_eq!(mode(&t.path().join("var/lib/kubelet/pki")), 0o700);
        assert_eq!(
            names(p.parent().unwrap()),
            vec!["key.pem"],
            "no temp file left"
        );
    }

    #[test]
    fn replaces_existing_file_and_fixes_its_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("kubelet.conf");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, Permissions::from_mode(0o666)).unwrap();
        write_file(&p, b"new", 0o600, 0o755).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(names(t.path()), vec!["kubelet.conf"]);
    }

    #[test]
    fn mode_does_not_depend_on_the_umask() {
        // A wide-open mode must come out exactly as asked even though the process umask (022
        // at least) would strip group/other write bits at open time.
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a/shared");
        write_file(&p, b"x", 0o664, 0o775).unwrap();
        assert_eq!(mode(&p), 0o664);
        assert_eq!(mode(&t.path().join("a")), 0o775);
    }

    #[test]
    fn stale_temp_files_are_cleaned_and_existing_dirs_keep_their_mode() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), Permissions::from_mode(0o711)).unwrap();
        let stale = t.path().join(".ca.crt.kubejoin-tmp.1.0");
        fs::write(&stale, "partial").unwrap();
        write_file(&t.path().join("ca.crt"), b"pem", 0o644, 0o755).unwrap();
        assert_eq!(names(t.path()), vec!["ca.crt"]);
        assert_eq!(mode(t.path()), 0o711);
    }

    #[test]
    fn failure_names_action_and_path_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("dir-in-the-way");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("keep"), "x").unwrap();
        let e = write_file(&p, b"x", 0o644, 0o755).unwrap_err();
        assert_eq!(e.action, "writing");
        assert_eq!(e.to_string(), format!("writing {}", p.display()));
        assert_eq!(names(t.path()), vec!["dir-in-the-way"]);
    }

    #[test]
    fn symlink_swap_replaces_the_link_atomically() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("pki");
        let link = dir.join("kubelet-client-current.pem");
        let staging = dir.join("kubelet-client-updated.pem");
        swap_symlink(
            &link,
            &staging,
            Path::new("/var/lib/kubelet/pki/kubelet-client-1.pem"),
            0o755,
        )
        .unwrap();
        assert_eq!(
            fs::read_link(&link).unwrap(),
            PathBuf::from("/var/lib/kubelet/pki/kubelet-client-1.pem")
        );
        // A leftover staging link from a crash is replaced; the current link is swapped.
        std::os::unix::fs::symlink("/stale", &staging).unwrap();
        swap_symlink(
            &link,
            &staging,
            Path::new("/var/lib/kubelet/pki/kubelet-client-2.pem"),
            0o755,
        )
        .unwrap();
        assert_eq!(
            fs::read_link(&link).unwrap(),
            PathBuf::from("/var/lib/kubelet/pki/kubelet-client-2.pem")
        );
        assert_eq!(names(&dir), vec!["kubelet-client-current.pem"]);
    }

    #[test]
    fn symlink_swap_refuses_a_regular_file() {
        let t = tempfile::tempdir().unwrap();
        let link = t.path().join("kubelet-client-current.pem");
        fs::write(&link, "not a link").unwrap();
        let e = swap_symlink(
            &link,
            &t.path().join("kubelet-client-updated.pem"),
            Path::new("/x"),
            0o755,
        )
        .unwrap_err();
        assert_eq!(e.action, "replacing symlink");
        assert!(e.source.to_string().contains("not a symlink"));
        assert_eq!(fs::read_to_string(&link).unwrap(), "not a link");
    }

    #[test]
    fn remove_is_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("kubelet-client.key.tmp");
        fs::write(&p, "k").unwrap();
        remove_file(&p).unwrap();
        remove_file(&p).unwrap();
        assert!(!p.exists());
    }
}
