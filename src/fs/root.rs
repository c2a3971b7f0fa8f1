//! Paths under an injectable root, and opening them without ever leaving it.
//!
//! Every host path kubejoin touches is written as the node sees it (`/etc/kubernetes/kubelet.conf`)
//! and placed under the root. On a booted node the root is `/`; from an initramfs it is
//! `/sysroot`; in tests it is a temporary directory.
//!
//! [`Root::join`] only builds the path text (for messages, and for the host-level reads of
//! `/proc` and `/sys`). Everything kubejoin writes or reads under `--root` is opened through
//! [`Root::open`] / [`Root::open_dir`] instead, which resolve the node path **inside the root**:
//!
//! - `openat2(root_fd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: the kernel resolves the
//!   path as if the root were `/`. An absolute symlink (`ROOT/var -> /data/var`) resolves to
//!   `ROOT/data/var`, which is where the booted system (whose `/` this root becomes) will look
//!   for the file; `..` stops at the root; `/proc/*/fd`-style magic links are refused.
//! - Where openat2 is missing (Linux < 5.6, or a seccomp filter that answers ENOSYS/EPERM), the
//!   same rules are applied in user space, one component at a time, each opened with
//!   `O_NOFOLLOW` relative to its parent's fd: a symlink is read with `readlinkat` and its target
//!   walked again from the root fd (absolute) or from its directory (relative), `..` pops the
//!   stack of directories already opened and never goes above the root's, at most 40 links.
//!
//! **Chosen behaviour: resolve inside the root, never refuse.** A symlink planted at any level
//! (`ROOT/var`, `ROOT/var/lib/kubelet/pki`, `ROOT/etc/kubernetes`, ...) that points outside the
//! root lands the write at the same path *inside* the root, as the booted system would see it,
//! never outside. Refusing (RESOLVE_BENEATH) would break images whose `/var` or `/etc` are
//! legitimately symlinks into another tree of the same root (ostree-style layouts), for no gain:
//! nothing under the root can name a file outside it either way. `..` in a node path is still
//! refused up front ([`RootError`]): kubejoin's own paths never contain it.
//!
//! What is opened is then operated on by fd (`openat`, `mkdirat`, `renameat2`, `symlinkat`,
//! `unlinkat` relative to the directory fd: see `crate::fs::atomic`), so the directory that
//! was resolved is the one written, even if the path is changed meanwhile.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsString;
use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// The directory that stands for the node's `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    dir: PathBuf,
    resolver: Resolver,
}

/// How node paths are resolved inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// openat2 when the kernel has it, else the per-component walk.
    Auto,
    /// Always the per-component `O_NOFOLLOW` walk (what a kernel without openat2 gets; tests).
    Walk,
}

/// A node path that cannot be placed under the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path {path:?} escapes the root directory {root:?} (it contains `..`)")]
pub struct RootError {
    pub root: PathBuf,
    pub path: PathBuf,
}

/// Symlinks followed while resolving one path (the kernel's MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// Environment variable that forces [`Resolver::Walk`] in every [`Root`] of the process
/// (`KUBEJOIN_RESOLVE=walk`), so tests can run the real binary through the fallback. Honoured
/// only in builds with failpoints (debug builds, or the `failpoints` feature), like them.
pub const RESOLVE_ENV: &str = "KUBEJOIN_RESOLVE";

fn walk_forced() -> bool {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    {
        static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FORCED.get_or_init(|| std::env::var(RESOLVE_ENV).is_ok_and(|v| v.trim() == "walk"))
    }
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    {
        false
    }
}

/// Whether openat2 works here: 0 unknown, 1 yes, 2 no (learnt once per process).
static OPENAT2: AtomicU8 = AtomicU8::new(0);

impl Root {
    /// A root at `dir` (`/` for the running system).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            resolver: Resolver::Auto,
        }
    }

    /// The same root, resolved with `resolver`.
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether this is the running system's `/`.
    pub fn is_host(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// The path text of `node_path` (absolute as the node sees it, or relative to the root)
    /// under the root, for messages and host-level reads. `.` components are dropped; `..` is
    /// refused. It does not resolve symlinks: use [`Root::open`] for anything under `--root`.
    pub fn join(&self, node_path: impl AsRef<Path>) -> Result<PathBuf, RootError> {
        Ok(self.dir.join(self.relative(node_path.as_ref())?))
    }

    /// `node_path` relative to the root (`""` for the root itself), `..` refused.
    pub fn relative(&self, node_path: &Path) -> Result<PathBuf, RootError> {
        let mut out = PathBuf::new();
        for c in node_path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => out.push(part),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(RootError {
                        root: self.dir.clone(),
                        path: node_path.to_path_buf(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// The root directory, opened (`O_PATH`): what every resolution starts from.
    pub fn open_root(&self) -> std::io::Result<OwnedFd> {
        Ok(rustix::fs::open(
            &self.dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// Opens `node_path` resolved inside the root (see the module doc) with `flags` (and
    /// `mode` when creating); `O_CLOEXEC` is always added.
    pub fn open(&self, node_path: &Path, flags: OFlags, mode: Mode) -> std::io::Result<OwnedFd> {
        let rel = self.relative(node_path).map_err(std::io::Error::other)?;
        let root = self.open_root()?;
        Ok(self.open_at(&root, &rel, flags | OFlags::CLOEXEC, mode)?)
    }

    /// Opens the directory `node_dir` resolved inside the root, readable (so it can be listed
    /// and fsynced, and be the base of `*at` calls).
    pub fn open_dir(&self, node_dir: &Path) -> std::io::Result<OwnedFd> {
        self.open(node_dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
    }

    /// The whole of the file `node_path`, resolved inside the root.
    pub fn read(&self, node_path: impl AsRef<Path>) -> std::io::Result<Vec<u8>> {
        use std::io::Read as _;
        let fd = self.open(node_path.as_ref(), OFlags::RDONLY, Mode::empty())?;
        let mut out = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut out)?;
        Ok(out)
    }

    /// [`Root::read`] as UTF-8.
    pub fn read_to_string(&self, node_path: impl AsRef<Path>) -> std::io::Result<String> {
        String::from_utf8(self.read(node_path)?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    fn open_at(
        &self,
        root: &OwnedFd,
        rel: &Path,
        flags: OFlags,
        mode: Mode,
    ) -> Result<OwnedFd, Errno> {
        if self.resolver == Resolver::Auto && !walk_forced() && openat2_works(root) {
            let path: &Path = if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            };
            // EAGAIN: a rename or mount raced the in-root resolution; the kernel asks to retry.
            for _ in 0..16 {
                match rustix::fs::openat2(
                    root,
                    path,
                    flags,
                    mode,
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Err(Errno::AGAIN) => continue,
                    r => return r,
                }
            }
            return Err(Errno::AGAIN);
        }
        walk(root, rel, flags, mode)
    }
}

/// Probes openat2 once per process on a real directory fd.
fn openat2_works(root: &OwnedFd) -> bool {
    match OPENAT2.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let works = !matches!(
        rustix::fs::openat2(
            root,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ),
        Err(Errno::NOSYS) | Err(Errno::PERM)
    );
    if !works {
        crate::debug!(
            "openat2 is not available: resolving paths under the root component by component"
        );
    }
    OPENAT2.store(if works { 1 } else { 2 }, Ordering::Relaxed);
    works
}

/// The user-space equivalent of `RESOLVE_IN_ROOT` (see the module doc): every component opened
/// with `O_NOFOLLOW` relative to the directory before it.
fn walk(root: &OwnedFd, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    let dup = |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, 0);
    // The directories opened so far; the root is the bottom and never popped.
    let mut stack: Vec<OwnedFd> = vec![dup(root)?];
    let mut pending: std::collections::VecDeque<OsString> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    while let Some(name) = pending.pop_front() {
        let last = pending.is_empty();
        match name.as_bytes() {
            b"." | b"" => {}
            b".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
            }
            _ => {
                let cur = stack.last().ok_or(Errno::NOENT)?;
                let opened = if last {
                    rustix::fs::openat(cur, &name, flags | OFlags::NOFOLLOW, mode)
                } else {
                    rustix::fs::openat(cur, &name, dir_flags, Mode::empty())
                };
                match opened {
                    Ok(fd) if last => return Ok(fd),
                    Ok(fd) => stack.push(fd),
                    // A symlink refuses O_NOFOLLOW with ELOOP (or ENOTDIR with O_DIRECTORY).
                    Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                        let Ok(target) = rustix::fs::readlinkat(cur, &name, Vec::new()) else {
                            return Err(e);
                        };
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(Errno::LOOP);
                        }
                        let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                        if target.is_absolute() {
                            stack.truncate(1);
                        }
                        let mut expanded: Vec<OsString> = target
                            .components()
                            .filter_map(|c| match c {
                                Component::Normal(p) => Some(p.to_os_string()),
                                Component::ParentDir => Some(OsString::from("..")),
                                _ => None,
                            })
                            .collect();
                        if expanded.is_empty() {
                            expanded.push(OsString::from("."));
                        }
                        for part in expanded.into_iter().rev() {
                            pending.push_front(part);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // The path ended at a directory already on the stack (the root itself, `.`, `..`, or a
    // symlink to one of them): open it with the caller's flags.
    let top = stack.last().ok_or(Errno::NOENT)?;
    rustix::fs::openat(top, ".", flags, mode)
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn joins_absolute_and_relative_node_paths() {
        let r = Root::new("/sysroot");
        assert_eq!(
            r.join("/etc/kubernetes/kubelet.conf").unwrap(),
            PathBuf::from("/sysroot/etc/kubernetes/kubelet.conf")
        );
        assert_eq!(
            r.join("var/lib/./kubelet").unwrap(),
            PathBuf::from("/sysroot/var/lib/kubelet")
        );
        assert_eq!(
            Root::new("/").join("/etc/x").unwrap(),
            PathBuf::from("/etc/x")
        );
        assert!(Root::new("/").is_host());
        assert!(!r.is_host());
    }

    #[test]
    fn refuses_parent_components() {
        let r = Root::new("/sysroot");
        for bad in ["/../etc/shadow", "etc/../../x", ".."] {
            let e = r.join(bad).unwrap_err();
            assert_eq!(e.path, PathBuf::from(bad));
            assert!(e.to_string().contains("escapes the root"), "{e}");
        }
    }

    /// A root with `outside` next to it, and symlinks inside pointing at it in every way.
    fn planted() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        for d in [&root, &outside] {
            std::fs::create_dir_all(d.join("data/pki")).unwrap();
            std::fs::write(d.join("data/pki/ca.crt"), format!("{}", d.display())).unwrap();
        }
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // Absolute: the booted system reads /data/pki.
        symlink(outside.join("data"), root.join("abs")).unwrap();
        symlink("/data", root.join("etc/abs-node")).unwrap();
        // Relative, climbing above the root.
        symlink("../../../../../../outside/data", root.join("etc/rel")).unwrap();
        symlink("../data", root.join("etc/rel-in")).unwrap();
        // A loop.
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        // A magic link.
        symlink("/proc/self/root/etc", root.join("magic")).unwrap();
        (t, root, outside)
    }

    #[test]
    fn symlinks_resolve_inside_the_root_with_either_resolver() {
        let (_t, root, outside) = planted();
        for resolver in [Resolver::Auto, Resolver::Walk] {
            let r = Root::new(&root).with_resolver(resolver);
            let read = |p: &str| r.read_to_string(p);
            let inside = root.display().to_string();
            // `abs` names outside/data on the host; in the root it means /<outside path>/data,
            // which does not exist inside the root: not found, never the outside file.
            assert_eq!(
                read("/abs/pki/ca.crt").unwrap_err().kind(),
                std::io::ErrorKind::NotFound,
                "{resolver:?}"
            );
            assert_eq!(
                read("/etc/abs-node/pki/ca.crt").unwrap(),
                inside,
                "{resolver:?}"
            );
            // `..` stops at the root: ../../../outside/data is /outside/data, i.e. ROOT/...
            assert_eq!(
                read("/etc/rel/pki/ca.crt").unwrap_err().kind(),
                std::io::ErrorKind::NotFound,
                "{resolver:?}"
            );
            assert_eq!(
                read("/etc/rel-in/pki/ca.crt").unwrap(),
                inside,
                "{resolver:?}"
            );
            assert!(read("/loop1/x").is_err(), "{resolver:?}");
            // The magic link resolves (at most) to ROOT/proc/...: nothing there.
            assert!(read("/magic/abs-node/pki/ca.crt").is_err(), "{resolver:?}");
            let _ = &outside;
        }
        // With a copy of outside/data at its in-root name, the absolute link finds that copy.
        let mirror = root
            .join(outside.strip_prefix("/").unwrap())
            .join("data/pki");
        std::fs::create_dir_all(&mirror).unwrap();
        std::fs::write(mirror.join("ca.crt"), "mirror").unwrap();
        for resolver in [Resolver::Auto, Resolver::Walk] {
            let r = Root::new(&root).with_resolver(resolver);
            assert_eq!(r.read_to_string("/abs/pki/ca.crt").unwrap(), "mirror");
        }
    }

    #[test]
    fn directories_open_for_fsync_and_the_root_itself() {
        let (_t, root, _) = planted();
        for resolver in [Resolver::Auto, Resolver::Walk] {
            let r = Root::new(&root).with_resolver(resolver);
            rustix::fs::fsync(r.open_dir(Path::new("/")).unwrap()).unwrap();
            rustix::fs::fsync(r.open_dir(Path::new("/etc/abs-node/pki")).unwrap()).unwrap();
            assert!(r.open_dir(Path::new("/data/pki/ca.crt")).is_err());
        }
    }
}
