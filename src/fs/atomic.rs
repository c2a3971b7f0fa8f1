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
//! Paths are node paths under a [`Root`]. The directory of each file is resolved **inside the
//! root** (`openat2(RESOLVE_IN_ROOT)`, or its per-component fallback: see [`crate::fs::root`]), so a
//! symlink planted anywhere under the root never takes a write outside it; every step after
//! that is relative to that directory's fd (`openat`, `mkdirat`, `renameat2`, `symlinkat`,
//! `unlinkat`, `fsync`), so the directory that was resolved is the one written and synced.
//!
//! Every instant between these system calls is a named failpoint (see [`super::failpoint`]),
//! labelled with the node path. Errors name the action and the path under the root
//! ("writing /sysroot/etc/kubernetes/kubelet.conf").

use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use super::failpoint::hit;
use crate::fs::root::Root;

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

/// The error of `action` on the node path `node` under `root`.
fn err<'a>(
    action: &'static str,
    root: &'a Root,
    node: &'a Path,
) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError {
        action,
        path: shown(root, node),
        source,
    }
}

/// The path to show for `node` under `root` (the text, not a resolution).
fn shown(root: &Root, node: &Path) -> PathBuf {
    root.join(node).unwrap_or_else(|_| node.to_path_buf())
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Prefix of our temp files for `name`; a leftover one is debris from a crashed run.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.kubejoin-tmp.")
}

fn temp_name(name: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{}.{n}", temp_prefix(name), std::process::id())
}

/// The parent directory and file name of a node path (`/a/b` → `/a`, `b`).
fn split<'a>(
    root: &Root,
    node: &'a Path,
    action: &'static str,
) -> Result<(&'a Path, String), WriteError> {
    let invalid = |why: &str| WriteError {
        action,
        path: shown(root, node),
        source: io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
    };
    if root.relative(node).is_err() {
        return Err(invalid("the path contains `..`"));
    }
    let name = node
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| invalid("path has no file name"))?;
    let parent = node
        .parent()
        .ok_or_else(|| invalid("path has no parent directory"))?;
    Ok((parent, name))
}

/// Makes a directory entry change durable (rename, create, unlink inside `dir`).
fn sync_dir(dir: &OwnedFd) -> io::Result<()> {
    rustix::fs::fsync(dir).map_err(errno)
}

/// Creates the node directory `dir` and its missing ancestors, each with exactly `mode`, and
/// returns it opened. Existing directories are left as they are (an admin may have tightened
/// them on purpose); symlinks on the way are resolved inside the root.
pub fn create_dirs(root: &Root, dir: &Path, mode: u32) -> Result<OwnedFd, WriteError> {
    match root.open_dir(dir) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("opening directory", root, dir)(e)),
    }
    // The root directory itself is the caller's to name; make it if it is missing.
    if !root.path().is_dir() {
        std::fs::create_dir_all(root.path()).map_err(err(
            "creating the root directory",
            root,
            Path::new("/"),
        ))?;
    }
    let rel = root
        .relative(dir)
        .map_err(|e| err("creating directory", root, dir)(io::Error::other(e)))?;
    let mut node = PathBuf::from("/");
    let mut parent = root
        .open_dir(&node)
        .map_err(err("opening directory", root, &node))?;
    for part in rel.iter() {
        node.push(part);
        match root.open_dir(&node) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("opening directory", root, &node)(e)),
        }
        create_dir(root, &parent, &node, mode)?;
        // Whoever made it (we, or another writer racing us), it must now be a directory.
        parent = match root.open_dir(&node) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The name exists but leads nowhere: a symlink whose target is missing inside
                // the root. It is not followed out of the root, and not created through.
                let why = format!(
                    "it is a symlink whose target does not exist inside the root {root} (symlinks \
                     under the root resolve inside it, as they will for the booted system)"
                );
                return Err(err("creating directory", root, &node)(io::Error::new(
                    io::ErrorKind::NotFound,
                    why,
                )));
            }
            Err(e) => return Err(err("creating directory", root, &node)(e)),
        };
    }
    Ok(parent)
}

/// Creates the single directory `node` (in the open directory `parent`) with exactly `mode`,
/// atomically; an entry that appears meanwhile under that name is left alone.
fn create_dir(root: &Root, parent: &OwnedFd, node: &Path, mode: u32) -> Result<(), WriteError> {
    let (_, name) = split(root, node, "creating directory")?;
    let label = node.display().to_string();
    remove_stale_temps(parent, &name);
    hit("mkdir.before", &label);
    let tmp = loop {
        let tmp = temp_name(&name);
        match rustix::fs::mkdirat(parent, tmp.as_str(), Mode::from_raw_mode(mode)) {
            Ok(()) => break tmp,
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(err("creating directory", root, node)(errno(e))),
        }
    };
    let staged = (|| {
        // mkdir's mode is filtered by the umask; make it exactly what the spec says before the
        // directory gets its real name.
        let fd = rustix::fs::openat(
            parent,
            tmp.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        rustix::fs::fsync(&fd)
    })();
    if let Err(e) = staged {
        let _ = rustix::fs::unlinkat(parent, tmp.as_str(), AtFlags::REMOVEDIR);
        return Err(err("setting the mode of", root, node)(errno(e)));
    }
    hit("mkdir.staged", &label);
    if let Err(e) = rename_noreplace(parent, &tmp, &name) {
        let _ = rustix::fs::unlinkat(parent, tmp.as_str(), AtFlags::REMOVEDIR);
        // Someone else created it in between: the caller checks it is a directory now.
        if e == Errno::EXIST {
            return Ok(());
        }
        return Err(err("creating directory", root, node)(errno(e)));
    }
    hit("mkdir.renamed", &label);
    sync_dir(parent).map_err(err("syncing the directory of", root, node))?;
    hit("mkdir.dir-synced", &label);
    Ok(())
}

/// `renameat2(RENAME_NOREPLACE)` within `dir`: fails instead of replacing an existing (empty)
/// directory at `to`, which a plain rename(2) would silently do to a directory another process
/// just created. rustix makes the system call itself, so this works on musl too.
fn rename_noreplace(dir: &OwnedFd, from: &str, to: &str) -> Result<(), Errno> {
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        // Filesystems without RENAME_NOREPLACE: check, then rename (a narrow race, and only
        // with another writer creating the same directory).
        Err(Errno::INVAL) | Err(Errno::NOSYS) => {
            match rustix::fs::statat(dir, to, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => Err(Errno::EXIST),
                Err(Errno::NOENT) => rustix::fs::renameat(dir, from, dir, to),
                Err(e) => Err(e),
            }
        }
        r => r,
    }
}

/// Removes leftover temp files (or empty temp directories) of `name` in `dir` from an earlier,
/// interrupted run. Best effort: they are invisible to the kubelet and only cost space.
fn remove_stale_temps(dir: &OwnedFd, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_bytes();
        if !file.starts_with(prefix.as_bytes()) {
            continue;
        }
        let flags = if entry.file_type() == FileType::Directory {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        let _ = rustix::fs::unlinkat(dir, entry.file_name(), flags);
    }
}

/// Atomically replaces the node file `path` under `root` with `contents`, mode `mode` (e.g.
/// 0o600); missing parents are created with `dir_mode`.
pub fn write_file(
    root: &Root,
    path: &Path,
    contents: &[u8],
    mode: u32,
    dir_mode: u32,
) -> Result<(), WriteError> {
    let (parent, name) = split(root, path, "writing")?;
    let label = path.display().to_string();
    let dir = create_dirs(root, parent, dir_mode)?;
    remove_stale_temps(&dir, &name);
    hit("write.before", &label);

    let (tmp, file) = loop {
        let tmp = temp_name(&name);
        // O_CREAT|O_EXCL: never follows a planted symlink, never reuses a file.
        match rustix::fs::openat(
            &dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        ) {
            Ok(fd) => break (tmp, fd),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(err("writing", root, path)(errno(e))),
        }
    };
    hit("write.opened", &label);
    let result = (|| {
        // fchmod before the first byte: the open mode was reduced by the umask, and may only
        // ever be made stricter than `mode`, never looser, so nothing leaks in between.
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(errno)?;
        let mut file = std::fs::File::from(file);
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(err("writing", root, path)(e));
    }
    hit("write.temp-synced", &label);
    if let Err(e) = rustix::fs::renameat(&dir, tmp.as_str(), &dir, name.as_str()) {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(err("writing", root, path)(errno(e)));
    }
    hit("write.renamed", &label);
    sync_dir(&dir).map_err(err("syncing the directory of", root, path))?;
    hit("write.dir-synced", &label);
    Ok(())
}

/// Atomically points the node symlink `link` at `target` (the kubelet's certificate-store
/// swap): create the symlink `staging` (in the same directory) → `target`, then rename it over
/// `link`. As the kubelet's store does, a regular file at either name is an error rather than
/// something to delete. `target` is stored as given: a node path, right once the root is `/`.
pub fn swap_symlink(
    root: &Root,
    link: &Path,
    staging: &Path,
    target: &Path,
    dir_mode: u32,
) -> Result<(), WriteError> {
    let (parent, link_name) = split(root, link, "replacing symlink")?;
    let (staging_parent, staging_name) = split(root, staging, "replacing symlink")?;
    if parent != staging_parent {
        return Err(WriteError {
            action: "replacing symlink",
            path: shown(root, staging),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "the staging link must be in the same directory as the link",
            ),
        });
    }
    let label = link.display().to_string();
    let dir = create_dirs(root, parent, dir_mode)?;
    let not_a_symlink = |p: &Path| WriteError {
        action: "replacing symlink",
        path: shown(root, p),
        source: io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it exists and is not a symlink",
        ),
    };
    let is_symlink = |name: &str| {
        rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    };
    match is_symlink(&staging_name) {
        Ok(true) => rustix::fs::unlinkat(&dir, staging_name.as_str(), AtFlags::empty())
            .map_err(|e| err("removing", root, staging)(errno(e)))?,
        Ok(false) => return Err(not_a_symlink(staging)),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(err("inspecting", root, staging)(errno(e))),
    }
    match is_symlink(&link_name) {
        Ok(false) => return Err(not_a_symlink(link)),
        Ok(true) | Err(Errno::NOENT) => {}
        Err(e) => return Err(err("inspecting", root, link)(errno(e))),
    }
    hit("symlink.before", &label);
    rustix::fs::symlinkat(target, &dir, staging_name.as_str())
        .map_err(|e| err("creating symlink", root, staging)(errno(e)))?;
    hit("symlink.staged", &label);
    if let Err(e) = rustix::fs::renameat(&dir, staging_name.as_str(), &dir, link_name.as_str()) {
        let _ = rustix::fs::unlinkat(&dir, staging_name.as_str(), AtFlags::empty());
        return Err(err("replacing symlink", root, link)(errno(e)));
    }
    hit("symlink.swapped", &label);
    sync_dir(&dir).map_err(err("syncing the directory of", root, link))?;
    hit("symlink.dir-synced", &label);
    Ok(())
}

/// Removes the node file `path` if it exists and makes the removal durable.
pub fn remove_file(root: &Root, path: &Path) -> Result<(), WriteError> {
    let (parent, name) = split(root, path, "removing")?;
    let label = path.display().to_string();
    hit("remove.before", &label);
    let dir = match root.open_dir(parent) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err("removing", root, path)(e)),
    };
    match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
        Ok(()) => {
            hit("remove.unlinked", &label);
            sync_dir(&dir).map_err(err("syncing the directory of", root, path))?;
            hit("remove.dir-synced", &label);
            Ok(())
        }
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(err("removing", root, path)(errno(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::root::Resolver;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

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

    fn roots(t: &tempfile::TempDir) -> [Root; 2] {
        [
            Root::new(t.path()),
            Root::new(t.path()).with_resolver(Resolver::Walk),
        ]
    }

    #[test]
    fn writes_with_exact_mode_and_creates_parents_with_dir_mode() {
        for i in 0..2 {
            let t = tempfile::tempdir().unwrap();
            let r = &roots(&t)[i];
            write_file(
                r,
                Path::new("/var/lib/kubelet/pki/key.pem"),
                b"secret",
                0o600,
                0o700,
            )
            .unwrap();
            let p = t.path().join("var/lib/kubelet/pki/key.pem");
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
    }

    #[test]
    fn replaces_existing_file_and_fixes_its_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("kubelet.conf");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, Permissions::from_mode(0o666)).unwrap();
        write_file(
            &Root::new(t.path()),
            Path::new("/kubelet.conf"),
            b"new",
            0o600,
            0o755,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(names(t.path()), vec!["kubelet.conf"]);
    }

    #[test]
    fn mode_does_not_depend_on_the_umask() {
        // A wide-open mode must come out exactly as asked even though the process umask (022
        // at least) would strip group/other write bits at open time.
        let t = tempfile::tempdir().unwrap();
        write_file(
            &Root::new(t.path()),
            Path::new("/a/shared"),
            b"x",
            0o664,
            0o775,
        )
        .unwrap();
        assert_eq!(mode(&t.path().join("a/shared")), 0o664);
        assert_eq!(mode(&t.path().join("a")), 0o775);
    }

    #[test]
    fn stale_temp_files_are_cleaned_and_existing_dirs_keep_their_mode() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), Permissions::from_mode(0o711)).unwrap();
        let stale = t.path().join(".ca.crt.kubejoin-tmp.1.0");
        fs::write(&stale, "partial").unwrap();
        write_file(
            &Root::new(t.path()),
            Path::new("/ca.crt"),
            b"pem",
            0o644,
            0o755,
        )
        .unwrap();
        assert_eq!(names(t.path()), vec!["ca.crt"]);
        assert_eq!(mode(t.path()), 0o711);
    }

    #[test]
    fn failure_names_action_and_path_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("dir-in-the-way");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("keep"), "x").unwrap();
        let e = write_file(
            &Root::new(t.path()),
            Path::new("/dir-in-the-way"),
            b"x",
            0o644,
            0o755,
        )
        .unwrap_err();
        assert_eq!(e.action, "writing");
        assert_eq!(e.to_string(), format!("writing {}", p.display()));
        assert_eq!(names(t.path()), vec!["dir-in-the-way"]);
    }

    #[test]
    fn symlink_swap_replaces_the_link_atomically() {
        for i in 0..2 {
            let t = tempfile::tempdir().unwrap();
            let r = &roots(&t)[i];
            let link = Path::new("/pki/kubelet-client-current.pem");
            let staging = Path::new("/pki/kubelet-client-updated.pem");
            let dir = t.path().join("pki");
            swap_symlink(
                r,
                link,
                staging,
                Path::new("/var/lib/kubelet/pki/kubelet-client-1.pem"),
                0o755,
            )
            .unwrap();
            assert_eq!(
                fs::read_link(dir.join("kubelet-client-current.pem")).unwrap(),
                PathBuf::from("/var/lib/kubelet/pki/kubelet-client-1.pem")
            );
            // A leftover staging link from a crash is replaced; the current link is swapped.
            std::os::unix::fs::symlink("/stale", dir.join("kubelet-client-updated.pem")).unwrap();
            swap_symlink(
                r,
                link,
                staging,
                Path::new("/var/lib/kubelet/pki/kubelet-client-2.pem"),
                0o755,
            )
            .unwrap();
            assert_eq!(
                fs::read_link(dir.join("kubelet-client-current.pem")).unwrap(),
                PathBuf::from("/var/lib/kubelet/pki/kubelet-client-2.pem")
            );
            assert_eq!(names(&dir), vec!["kubelet-client-current.pem"]);
        }
    }

    #[test]
    fn symlink_swap_refuses_a_regular_file() {
        let t = tempfile::tempdir().unwrap();
        let link = t.path().join("kubelet-client-current.pem");
        fs::write(&link, "not a link").unwrap();
        let e = swap_symlink(
            &Root::new(t.path()),
            Path::new("/kubelet-client-current.pem"),
            Path::new("/kubelet-client-updated.pem"),
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
        let r = Root::new(t.path());
        // A crash between mkdir and rename left a staged directory behind.
        let stale = t.path().join(".kubelet.kubejoin-tmp.1.0");
        fs::create_dir(&stale).unwrap();
        create_dirs(&r, Path::new("/kubelet/pki"), 0o700).unwrap();
        let d = t.path().join("kubelet/pki");
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
        create_dirs(&r, Path::new("/kubelet/pki"), 0o755).unwrap();
        assert_eq!(mode(&d), 0o750);
    }

    #[test]
    fn a_directory_created_meanwhile_is_not_replaced() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        let top = r.open_dir(Path::new("/")).unwrap();
        let d = t.path().join("pki");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("theirs"), "x").unwrap();
        // As if another writer won the race between our check and our rename.
        create_dir(&r, &top, Path::new("/pki"), 0o755).unwrap();
        assert_eq!(names(&d), vec!["theirs"]);
        assert_eq!(
            names(t.path()),
            vec!["pki"],
            "our staging directory is removed"
        );
        let empty = t.path().join("empty");
        fs::create_dir(&empty).unwrap();
        fs::set_permissions(&empty, Permissions::from_mode(0o711)).unwrap();
        create_dir(&r, &top, Path::new("/empty"), 0o755).unwrap();
        assert_eq!(
            mode(&empty),
            0o711,
            "an existing empty directory is not swapped either"
        );
    }

    #[test]
    fn remove_is_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        let p = t.path().join("kubelet-client.key.tmp");
        fs::write(&p, "k").unwrap();
        remove_file(&r, Path::new("/kubelet-client.key.tmp")).unwrap();
        remove_file(&r, Path::new("/kubelet-client.key.tmp")).unwrap();
        remove_file(&r, Path::new("/no/such/dir/x")).unwrap();
        assert!(!p.exists());
    }

    /// A root whose every level (`/etc`, `/etc/kubernetes`, ...) is, in turn, a symlink to a
    /// directory outside the root, absolute or relative.
    #[test]
    fn a_symlink_at_any_level_never_takes_a_write_outside_the_root() {
        let levels = ["/etc", "/etc/kubernetes", "/etc/kubernetes/pki"];
        for resolver in [Resolver::Auto, Resolver::Walk] {
            for level in levels {
                for absolute in [true, false] {
                    let t = tempfile::tempdir().unwrap();
                    let root_dir = t.path().join("root");
                    let outside = t.path().join("outside");
                    fs::create_dir_all(&outside).unwrap();
                    let planted = root_dir.join(&level[1..]);
                    fs::create_dir_all(planted.parent().unwrap()).unwrap();
                    let target = if absolute {
                        outside.clone()
                    } else {
                        // Enough `..` to climb out of any level, then into `outside`.
                        PathBuf::from("../../../../../../../../..")
                            .join(outside.strip_prefix("/").unwrap())
                    };
                    std::os::unix::fs::symlink(&target, &planted).unwrap();
                    let r = Root::new(&root_dir).with_resolver(resolver);
                    let file = Path::new("/etc/kubernetes/pki/ca.crt");
                    // The target does not exist inside the root: refused, nothing outside.
                    let e = write_file(&r, file, b"pem", 0o644, 0o755).unwrap_err();
                    assert!(
                        e.source
                            .to_string()
                            .contains("does not exist inside the root"),
                        "{e}: {}",
                        e.source
                    );
                    assert_eq!(names(&outside), Vec::<String>::new());
                    // It exists inside the root (as on the booted system): the write goes there.
                    fs::create_dir_all(root_dir.join(outside.strip_prefix("/").unwrap())).unwrap();
                    write_file(&r, file, b"pem", 0o644, 0o755).unwrap();
                    swap_symlink(
                        &r,
                        Path::new("/etc/kubernetes/pki/current"),
                        Path::new("/etc/kubernetes/pki/updated"),
                        Path::new("/x"),
                        0o755,
                    )
                    .unwrap();
                    remove_file(&r, Path::new("/etc/kubernetes/pki/gone")).unwrap();
                    assert_eq!(
                        names(&outside),
                        Vec::<String>::new(),
                        "{resolver:?} {level} -> {target:?}"
                    );
                    // The write landed inside the root, where the booted system reads it.
                    assert_eq!(r.read(file).unwrap(), b"pem");
                    let inside = root_dir
                        .join(outside.strip_prefix("/").unwrap())
                        .join(Path::new(file).strip_prefix(level).unwrap());
                    assert_eq!(fs::read(&inside).unwrap(), b"pem", "{resolver:?} {level}");
                }
            }
        }
    }
}
