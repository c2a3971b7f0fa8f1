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
//! Missing parent directories are created the same way, so a crash never leaves one with a
//! mode other than the spec's (0755, or 0700 for `/var/lib/kubelet`): a temp directory is
//! made, given exactly that mode, then renamed into place and made durable in its parent. (A
//! directory left by a crash between `mkdir` and `chmod` would keep the umask's mode forever,
//! since existing directories are deliberately left alone.)
//!
//! Every instant between these system calls is a named failpoint (see [`super::failpoint`]),
//! labelled with the node path when the caller gives one (`*_as` functions).
//! Errors name the action and the real path ("writing /etc/kubernetes/kubelet.conf").

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::failpoint::hit;

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
    create_dirs_as(dir, &dir.display().to_string(), mode)
}

/// [`create_dirs`], with `label` (the node path of `dir`) naming the failpoints.
pub fn create_dirs_as(dir: &Path, label: &str, mode: u32) -> Result<(), WriteError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    let mut cur_label = Some(Path::new(label));
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        let l = cur_label
            .filter(|l| l.parent().is_some())
            .map_or_else(|| d.display().to_string(), |l| l.display().to_string());
        missing.push((d, l));
        cur = d.parent();
        cur_label = cur_label.and_then(Path::parent);
    }
    for (d, l) in missing.into_iter().rev() {
        create_dir(d, &l, mode)?;
    }
    Ok(())
}

/// Creates the single directory `d` (its parent exists) with exactly `mode`, atomically.
fn create_dir(d: &Path, label: &str, mode: u32) -> Result<(), WriteError> {
    let parent = parent_of(d)?;
    let name = file_name_of(d)?;
    remove_stale_temps(parent, &name);
    hit("mkdir.before", label);
    let tmp = loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!("{}{}.{n}", temp_prefix(&name), std::process::id()));
        match fs::DirBuilder::new().mode(mode).create(&tmp) {
            Ok(()) => break tmp,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err("creating directory", d)(e)),
        }
    };
    let staged = (|| {
        // DirBuilder's mode is filtered by the umask; make it exactly what the spec says
        // before the directory gets its real name.
        fs::set_permissions(&tmp, Permissions::from_mode(mode))?;
        File::open(&tmp)?.sync_all()
    })();
    if let Err(e) = staged {
        let _ = fs::remove_dir(&tmp);
        return Err(err("setting the mode of", d)(e));
    }
    hit("mkdir.staged", label);
    if let Err(e) = rename_noreplace(&tmp, d) {
        let _ = fs::remove_dir(&tmp);
        // Someone else created it in between: fine, it is a directory now.
        if d.is_dir() {
            return Ok(());
        }
        return Err(err("creating directory", d)(e));
    }
    hit("mkdir.renamed", label);
    sync_dir(parent)?;
    hit("mkdir.dir-synced", label);
    Ok(())
}

/// `rename` that fails instead of replacing an existing (empty) directory at `to`, which a plain
/// rename(2) would silently do to a directory another process just created.
#[cfg(target_env = "gnu")]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        // Filesystems without RENAME_NOREPLACE: check, then rename (a narrow race, and only
        // with another writer creating the same directory).
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOSYS) => {
            if to.exists() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fs::rename(from, to)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

/// musl has no `renameat2` wrapper (and nix exposes it for glibc only): check, then rename. The
/// race is narrow and needs another writer creating the same directory at the same moment.
#[cfg(not(target_env = "gnu"))]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    fs::rename(from, to)
}

/// Removes leftover temp files (or empty temp directories) of `name` in `dir` from an earlier,
/// interrupted run. Best effort: they are invisible to the kubelet and only cost space.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            match entry.file_type() {
                Ok(t) if t.is_dir() => {
                    let _ = fs::remove_dir(entry.path());
                }
                _ => {
                    let _ = fs::remove_file(entry.path());
                }
            }
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
    write_file_as(path, &path.display().to_string(), contents, mode, dir_mode)
}

/// [`write_file`], with `label` (the node path of `path`) naming the failpoints.
pub fn write_file_as(
    path: &Path,
    label: &str,
    contents: &[u8],
    mode: u32,
    dir_mode: u32,
) -> Result<(), WriteError> {
    let dir = parent_of(path)?;
    let name = file_name_of(path)?;
    let dir_label = Path::new(label)
        .parent()
        .map_or_else(|| dir.display().to_string(), |p| p.display().to_string());
    create_dirs_as(dir, &dir_label, dir_mode)?;
    remove_stale_temps(dir, &name);
    hit("write.before", label);

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
    hit("write.opened", label);
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
    hit("write.temp-synced", label);
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(err("writing", path)(e));
    }
    hit("write.renamed", label);
    sync_dir(dir)?;
    hit("write.dir-synced", label);
    Ok(())
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
    swap_symlink_as(link, &link.display().to_string(), staging, target, dir_mode)
}

/// [`swap_symlink`], with `label` (the node path of `link`) naming the failpoints.
pub fn swap_symlink_as(
    link: &Path,
    label: &str,
    staging: &Path,
    target: &Path,
    dir_mode: u32,
) -> Result<(), WriteError> {
    let dir = parent_of(link)?;
    let dir_label = Path::new(label)
        .parent()
        .map_or_else(|| dir.display().to_string(), |p| p.display().to_string());
    create_dirs_as(dir, &dir_label, dir_mode)?;
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
    hit("symlink.before", label);
    std::os::unix::fs::symlink(target, staging).map_err(err("creating symlink", staging))?;
    hit("symlink.staged", label);
    if let Err(e) = fs::rename(staging, link) {
        let _ = fs::remove_file(staging);
        return Err(err("replacing symlink", link)(e));
    }
    hit("symlink.swapped", label);
    sync_dir(dir)?;
    hit("symlink.dir-synced", label);
    Ok(())
}

/// Removes `path` if it exists and makes the removal durable.
pub fn remove_file(path: &Path) -> Result<(), WriteError> {
    remove_file_as(path, &path.display().to_string())
}

/// [`remove_file`], with `label` (the node path of `path`) naming the failpoints.
pub fn remove_file_as(path: &Path, label: &str) -> Result<(), WriteError> {
    hit("remove.before", label);
    match fs::remove_file(path) {
        Ok(()) => {
            hit("remove.unlinked", label);
            sync_dir(parent_of(path)?)?;
            hit("remove.dir-synced", label);
            Ok(())
        }
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
    fn directories_appear_whole_and_leftovers_of_a_crash_are_cleaned() {
        let t = tempfile::tempdir().unwrap();
        // A crash between mkdir and rename left a staged directory behind.
        let stale = t.path().join(".kubelet.kubejoin-tmp.1.0");
        fs::create_dir(&stale).unwrap();
        let d = t.path().join("kubelet/pki");
        create_dirs_as(&d, "/var/lib/kubelet/pki", 0o700).unwrap();
        assert_eq!(mode(&t.path().join("kubelet")), 0o700);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(
            names(t.path()),
            vec!["kubelet"],
            "the stale staging directory is gone"
        );
        assert_eq!(names(&t.path().join("kubelet")), vec!["pki"]);
        // Existing directories are left alone, whatever their mode.
        fs::set_permissions(&d, Permissions::from_mode(0o750)).unwrap();
        create_dirs(&d, 0o755).unwrap();
        assert_eq!(mode(&d), 0o750);
    }

    #[test]
    fn a_directory_created_meanwhile_is_not_replaced() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("pki");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("theirs"), "x").unwrap();
        // As if another writer won the race between our is_dir check and our rename.
        create_dir(&d, "/pki", 0o755).unwrap();
        assert_eq!(names(&d), vec!["theirs"]);
        assert_eq!(
            names(t.path()),
            vec!["pki"],
            "our staging directory is removed"
        );
        let empty = t.path().join("empty");
        fs::create_dir(&empty).unwrap();
        fs::set_permissions(&empty, Permissions::from_mode(0o711)).unwrap();
        create_dir(&empty, "/empty", 0o755).unwrap();
        assert_eq!(
            mode(&empty),
            0o711,
            "an existing empty directory is not swapped either"
        );
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
