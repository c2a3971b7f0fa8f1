//! The kernel-facing effects of PID-1 mode (youki's syscall seam, for `src/init`).
//!
//! Everything `src/init` does to the machine goes through [`Init`]: mounts and mount moves,
//! the console and `/dev/kmsg`, reaping orphans, `reboot(2)`, `chroot`, and the deletion of the
//! initramfs before a switch-root. [`RealInit`] is one short method per call; [`RecordingInit`]
//! records typed [`InitCall`]s, answers reads from an in-memory file table and injects failures
//! by path, so the early mount table, the failure policy and the switch-root steps are unit-tested
//! without root and without touching the test machine.
//!
//! No `unsafe` is needed: `nix` wraps every syscall used here.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// `statfs` magic of ramfs: the initramfs root when the kernel was given `root=`.
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;
/// `statfs` magic of tmpfs: the initramfs root without `root=` (and `/run`).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// Mount flags kubejoin uses (a typed subset of `MS_*`, so tests compare values, not bits).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct MountFlags(u32);

impl MountFlags {
    pub const NONE: MountFlags = MountFlags(0);
    pub const RDONLY: MountFlags = MountFlags(1);
    pub const NOSUID: MountFlags = MountFlags(1 << 1);
    pub const NODEV: MountFlags = MountFlags(1 << 2);
    pub const NOEXEC: MountFlags = MountFlags(1 << 3);
    pub const RELATIME: MountFlags = MountFlags(1 << 4);

    /// Both sets of flags.
    pub const fn union(self, other: MountFlags) -> MountFlags {
        MountFlags(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: MountFlags) -> bool {
        self.0 & other.0 == other.0
    }

    fn to_nix(self) -> nix::mount::MsFlags {
        use nix::mount::MsFlags as M;
        let table = [
            (Self::RDONLY, M::MS_RDONLY),
            (Self::NOSUID, M::MS_NOSUID),
            (Self::NODEV, M::MS_NODEV),
            (Self::NOEXEC, M::MS_NOEXEC),
            (Self::RELATIME, M::MS_RELATIME),
        ];
        table
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .fold(M::empty(), |acc, (_, m)| acc | *m)
    }
}

impl std::ops::BitOr for MountFlags {
    type Output = MountFlags;
    fn bitor(self, rhs: MountFlags) -> MountFlags {
        self.union(rhs)
    }
}

impl fmt::Debug for MountFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::RDONLY, "ro"),
            (Self::NOSUID, "nosuid"),
            (Self::NODEV, "nodev"),
            (Self::NOEXEC, "noexec"),
            (Self::RELATIME, "relatime"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(fl, _)| self.contains(*fl))
            .map(|(_, n)| *n)
            .collect();
        if set.is_empty() {
            write!(f, "defaults")
        } else {
            write!(f, "{}", set.join(","))
        }
    }
}

/// What `reboot(2)` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Reboot,
    PowerOff,
}

/// A child collected by [`Init::reap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub pid: i32,
    /// `exited 0`, `killed by SIGKILL`…
    pub how: String,
}

/// What [`Init::clear_tree`] removed and left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleared {
    pub removed: u64,
    /// Entries left in place: other mounts, kept paths, and anything that could not be removed.
    pub kept: u64,
}

/// Seconds since the kernel started, from `/proc/uptime`'s first field.
pub fn uptime(text: &str) -> Option<Duration> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The effects of PID-1 mode.
pub trait Init: fmt::Debug + Send + Sync {
    /// Whether this process is PID 1 (the only case in which kubejoin may reboot the machine).
    fn is_pid1(&self) -> bool;
    /// `mkdir -p` with `mode` for the directories it creates.
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// `mount(2)` of a new filesystem.
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()>;
    /// `mount(2)` with `MS_MOVE`: moves the mount at `from` (and everything below it) to `to`.
    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Creates the symlink `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Whether `path` exists (without following a final symlink).
    fn exists(&self, path: &Path) -> bool;
    /// Reads a whole file (`/proc/cmdline`, …).
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Time since the kernel started (`CLOCK_BOOTTIME`: what `/proc/uptime` prints, there in
    /// hundredths of a second).
    fn since_boot(&self) -> io::Result<Duration>;
    /// Writes a whole file, creating its parent directories (`/run/kubejoin/result.json`, sysctls
    /// of the kernel's own logging).
    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()>;
    /// Opens `/dev/kmsg` for writing.
    fn open_kmsg(&self) -> io::Result<File>;
    /// When stdin/stdout/stderr are closed (an initramfs without `/dev/console`), opens
    /// `/dev/console` on them. Returns whether it had to.
    fn ensure_stdio(&self) -> io::Result<bool>;
    /// Points stderr at a new pipe; returns the pipe's read end and a duplicate of the old
    /// stderr (the console), so every line written to stderr can be copied elsewhere too.
    fn capture_stderr(&self) -> io::Result<(File, File)>;
    /// Points stderr back at `console` (before exec: nobody would read the pipe any more).
    fn restore_stderr(&self, console: &File) -> io::Result<()>;
    /// Collects every exited child without blocking.
    fn reap(&self) -> Vec<Reaped>;
    /// `sync(2)`.
    fn sync(&self);
    /// `reboot(2)`. Returns only on failure.
    fn power(&self, action: PowerAction) -> io::Error;
    /// Ends the process with `code` (`kubejoin init` run by hand: never as PID 1, whose exit
    /// panics the kernel). Returns only when it did not exit (the recording fake).
    fn exit(&self, code: i32) -> io::Error;
    fn chdir(&self, dir: &Path) -> io::Result<()>;
    fn chroot(&self, dir: &Path) -> io::Result<()>;
    /// `statfs(2)` magic of the filesystem holding `path`.
    fn fs_magic(&self, path: &Path) -> io::Result<u64>;
    /// Whether `a` and `b` are on the same filesystem (same `st_dev`): a directory that is on
    /// its parent's filesystem is not a mount point.
    fn same_fs(&self, a: &Path, b: &Path) -> io::Result<bool>;
    /// Deletes everything below `dir` that lives on `dir`'s own filesystem, except the paths in
    /// `keep`; never descends into other mounts.
    fn clear_tree(&self, dir: &Path, keep: &[PathBuf]) -> io::Result<Cleared>;
}

/// The real system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealInit;

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

impl Init for RealInit {
    fn is_pid1(&self) -> bool {
        std::process::id() == 1
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
    }

    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        let data = (!data.is_empty()).then_some(data);
        nix::mount::mount(Some(source), target, Some(fstype), flags.to_nix(), data).map_err(errno)
    }

    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()> {
        nix::mount::mount(
            Some(from),
            to,
            None::<&str>,
            nix::mount::MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(errno)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn exists(&self, path: &Path) -> bool {
        path.symlink_metadata().is_ok()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn since_boot(&self) -> io::Result<Duration> {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)?;
        let (secs, nanos) = (u64::try_from(t.tv_sec()), u32::try_from(t.tv_nsec()));
        match (secs, nanos) {
            (Ok(s), Ok(n)) => Ok(Duration::new(s, n)),
            _ => Err(io::Error::other("CLOCK_BOOTTIME is negative")),
        }
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)?;
        }
        std::fs::write(path, contents)
    }

    fn open_kmsg(&self) -> io::Result<File> {
        std::fs::OpenOptions::new().write(true).open("/dev/kmsg")
    }

    fn ensure_stdio(&self) -> io::Result<bool> {
        use nix::fcntl::{fcntl, FcntlArg};
        use std::os::fd::AsFd as _;
        let open = |fd: std::os::fd::BorrowedFd<'_>| fcntl(fd, FcntlArg::F_GETFD).is_ok();
        if open(io::stdin().as_fd()) && open(io::stdout().as_fd()) && open(io::stderr().as_fd()) {
            return Ok(false);
        }
        let console = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/console")?;
        nix::unistd::dup2_stdin(&console).map_err(errno)?;
        nix::unistd::dup2_stdout(&console).map_err(errno)?;
        nix::unistd::dup2_stderr(&console).map_err(errno)?;
        Ok(true)
    }

    fn capture_stderr(&self) -> io::Result<(File, File)> {
        let console = File::from(nix::unistd::dup(io::stderr()).map_err(errno)?);
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(errno)?;
        nix::unistd::dup2_stderr(&write).map_err(errno)?;
        // `write` drops here: fd 2 is now the pipe's only write end, so the reader sees EOF as
        // soon as stderr is pointed back at the console.
        Ok((File::from(read), console))
    }

    fn restore_stderr(&self, console: &File) -> io::Result<()> {
        nix::unistd::dup2_stderr(console).map_err(errno)
    }

    fn reap(&self) -> Vec<Reaped> {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let mut out = Vec::new();
        // Bounded: a fork bomb of orphans must not keep PID 1 here forever.
        for _ in 0..1024 {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => out.push(Reaped {
                    pid: pid.as_raw(),
                    how: format!("exited {code}"),
                }),
                Ok(WaitStatus::Signaled(pid, sig, _)) => out.push(Reaped {
                    pid: pid.as_raw(),
                    how: format!("killed by {sig:?}"),
                }),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out
    }

    fn sync(&self) {
        nix::unistd::sync();
    }

    fn power(&self, action: PowerAction) -> io::Error {
        use nix::sys::reboot::{reboot, RebootMode};
        let mode = match action {
            PowerAction::Reboot => RebootMode::RB_AUTOBOOT,
            PowerAction::PowerOff => RebootMode::RB_POWER_OFF,
        };
        match reboot(mode) {
            Err(e) => errno(e),
            Ok(never) => match never {},
        }
    }

    fn exit(&self, code: i32) -> io::Error {
        std::process::exit(code)
    }

    fn chdir(&self, dir: &Path) -> io::Result<()> {
        nix::unistd::chdir(dir).map_err(errno)
    }

    fn chroot(&self, dir: &Path) -> io::Result<()> {
        nix::unistd::chroot(dir).map_err(errno)
    }

    fn fs_magic(&self, path: &Path) -> io::Result<u64> {
        let st = nix::sys::statfs::statfs(path).map_err(errno)?;
        // f_type is a signed word on some targets; the magic numbers are 32-bit patterns.
        Ok(st.filesystem_type().0 as u64 & 0xffff_ffff)
    }

    fn same_fs(&self, a: &Path, b: &Path) -> io::Result<bool> {
        Ok(a.symlink_metadata()?.dev() == b.symlink_metadata()?.dev())
    }

    fn clear_tree(&self, dir: &Path, keep: &[PathBuf]) -> io::Result<Cleared> {
        clear_same_fs(dir, keep)
    }
}

/// Deletes the contents of `dir` that are on `dir`'s filesystem, skipping `keep` and never
/// crossing into another mount (a mount point's `st_dev` differs from its parent's). What
/// cannot be removed is counted as kept, not reported as an error: freeing the initramfs'
/// memory is best effort, the switch-root must go on.
pub fn clear_same_fs(dir: &Path, keep: &[PathBuf]) -> io::Result<Cleared> {
    let dev = dir.symlink_metadata()?.dev();
    let mut c = Cleared::default();
    clear_dir(dir, dev, keep, &mut c);
    Ok(c)
}

fn clear_dir(dir: &Path, dev: u64, keep: &[PathBuf], c: &mut Cleared) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        c.kept += 1;
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(md) = path.symlink_metadata() else {
            c.kept += 1;
            continue;
        };
        if keep.iter().any(|k| k == &path) || md.dev() != dev {
            c.kept += 1;
            continue;
        }
        if md.is_dir() {
            clear_dir(&path, dev, keep, c);
            match std::fs::remove_dir(&path) {
                Ok(()) => c.removed += 1,
                // Not empty: something below was kept (a mount point, a kept path).
                Err(_) => c.kept += 1,
            }
        } else {
            match std::fs::remove_file(&path) {
                Ok(()) => c.removed += 1,
                Err(_) => c.kept += 1,
            }
        }
    }
}

/// One recorded call on [`RecordingInit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitCall {
    MkdirAll {
        path: PathBuf,
        mode: u32,
    },
    Mount {
        source: String,
        target: PathBuf,
        fstype: String,
        flags: MountFlags,
        data: String,
    },
    MoveMount {
        from: PathBuf,
        to: PathBuf,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    WriteFile {
        path: PathBuf,
        contents: Vec<u8>,
    },
    EnsureStdio,
    Reap,
    Sync,
    Power(PowerAction),
    Exit(i32),
    Chdir(PathBuf),
    Chroot(PathBuf),
    ClearTree {
        dir: PathBuf,
        keep: Vec<PathBuf>,
    },
}

impl InitCall {
    /// The path a failure injected with [`RecordingInit::fail_at`] is matched against.
    fn path(&self) -> Option<&Path> {
        match self {
            InitCall::MkdirAll { path, .. } | InitCall::WriteFile { path, .. } => Some(path),
            InitCall::Mount { target, .. } => Some(target),
            InitCall::MoveMount { from, .. } => Some(from),
            InitCall::Symlink { link, .. } => Some(link),
            InitCall::Chdir(p) | InitCall::Chroot(p) => Some(p),
            InitCall::ClearTree { dir, .. } => Some(dir),
            _ => None,
        }
    }
}

/// A fake that records every call, keeps written files in memory and fails on request.
///
/// Reads are answered from the files given with [`RecordingInit::with_file`] and from those
/// written since; `exists` is true for those files, for directories created with `mkdir_all`
/// and for paths given with [`RecordingInit::with_path`]. `power` records and returns an
/// error: the test process is never rebooted.
#[derive(Debug)]
pub struct RecordingInit {
    calls: Mutex<Vec<InitCall>>,
    files: Mutex<BTreeMap<PathBuf, Vec<u8>>>,
    paths: Mutex<Vec<PathBuf>>,
    failures: Vec<(PathBuf, io::ErrorKind)>,
    /// Mount points, as `mount`/`move_mount` left them (plus those given with `with_mount`).
    mounts: Mutex<Vec<PathBuf>>,
    pid1: bool,
    fs_magic: u64,
}

impl Default for RecordingInit {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingInit {
    /// A fake PID 1 on an initramfs (ramfs) root with no files.
    pub fn new() -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            files: Mutex::new(BTreeMap::new()),
            paths: Mutex::new(Vec::new()),
            failures: Vec::new(),
            mounts: Mutex::new(Vec::new()),
            pid1: true,
            fs_magic: RAMFS_MAGIC,
        }
    }

    /// A file readable through `read_file`.
    pub fn with_file(self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        if let Ok(mut f) = self.files.lock() {
            f.insert(path.into(), contents.into());
        }
        self
    }

    /// A path for which `exists` is true.
    pub fn with_path(self, path: impl Into<PathBuf>) -> Self {
        if let Ok(mut p) = self.paths.lock() {
            p.push(path.into());
        }
        self
    }

    /// Every call whose path is `path` fails with `kind`.
    pub fn fail_at(mut self, path: impl Into<PathBuf>, kind: io::ErrorKind) -> Self {
        self.failures.push((path.into(), kind));
        self
    }

    /// Pretends not to be PID 1 (`kubejoin init` run by hand).
    pub fn not_pid1(mut self) -> Self {
        self.pid1 = false;
        self
    }

    /// The `statfs` magic every path reports.
    pub fn with_fs_magic(mut self, magic: u64) -> Self {
        self.fs_magic = magic;
        self
    }

    /// A mount point that exists already (`same_fs` sees it as a filesystem of its own).
    pub fn with_mount(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if let Ok(mut m) = self.mounts.lock() {
            m.push(path.clone());
        }
        self.with_path(path)
    }

    /// The mount point `path` is on (the longest mounted prefix, `/` by default).
    fn mount_of(&self, path: &Path) -> PathBuf {
        let mounts = self.mounts.lock().map(|m| m.clone()).unwrap_or_default();
        mounts
            .into_iter()
            .filter(|m| path.starts_with(m))
            .max_by_key(|m| m.components().count())
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<InitCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The contents last written to `path`, if any.
    pub fn written(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.files
            .lock()
            .ok()
            .and_then(|f| f.get(path.as_ref()).cloned())
    }

    fn record(&self, call: InitCall) -> io::Result<()> {
        let failure = call
            .path()
            .and_then(|p| self.failures.iter().find(|(f, _)| f == p))
            .map(|(_, kind)| *kind);
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
        match failure {
            Some(kind) => Err(io::Error::new(kind, "injected failure (recording fake)")),
            None => Ok(()),
        }
    }
}

impl Init for RecordingInit {
    fn is_pid1(&self) -> bool {
        self.pid1
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(InitCall::MkdirAll {
            path: path.to_path_buf(),
            mode,
        })?;
        if let Ok(mut p) = self.paths.lock() {
            p.push(path.to_path_buf());
        }
        Ok(())
    }

    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        self.record(InitCall::Mount {
            source: source.into(),
            target: target.into(),
            fstype: fstype.into(),
            flags,
            data: data.into(),
        })?;
        if let Ok(mut m) = self.mounts.lock() {
            m.push(target.into());
        }
        Ok(())
    }

    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.record(InitCall::MoveMount {
            from: from.into(),
            to: to.into(),
        })?;
        if let Ok(mut m) = self.mounts.lock() {
            for p in m.iter_mut().filter(|p| p.starts_with(from)) {
                if let Ok(rest) = p.strip_prefix(from) {
                    *p = to.join(rest);
                }
            }
        }
        Ok(())
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.record(InitCall::Symlink {
            target: target.into(),
            link: link.into(),
        })
    }

    fn exists(&self, path: &Path) -> bool {
        let file = self
            .files
            .lock()
            .map(|f| f.contains_key(path))
            .unwrap_or(false);
        file || self
            .paths
            .lock()
            .map(|p| p.iter().any(|x| x == path))
            .unwrap_or(false)
    }

    /// From the fake's `/proc/uptime`, when it has one.
    fn since_boot(&self) -> io::Result<Duration> {
        let text = self.read_file(Path::new("/proc/uptime"))?;
        uptime(&String::from_utf8_lossy(&text))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not /proc/uptime's form"))
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .lock()
            .ok()
            .and_then(|f| f.get(path).cloned())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} (recording fake)", path.display()),
                )
            })
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.record(InitCall::WriteFile {
            path: path.into(),
            contents: contents.to_vec(),
        })?;
        if let Ok(mut f) = self.files.lock() {
            f.insert(path.into(), contents.to_vec());
        }
        Ok(())
    }

    fn open_kmsg(&self) -> io::Result<File> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no /dev/kmsg (recording fake)",
        ))
    }

    fn ensure_stdio(&self) -> io::Result<bool> {
        self.record(InitCall::EnsureStdio).map(|()| false)
    }

    fn capture_stderr(&self) -> io::Result<(File, File)> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "stderr stays as it is (recording fake)",
        ))
    }

    fn restore_stderr(&self, _console: &File) -> io::Result<()> {
        Ok(())
    }

    fn reap(&self) -> Vec<Reaped> {
        let _ = self.record(InitCall::Reap);
        Vec::new()
    }

    fn sync(&self) {
        let _ = self.record(InitCall::Sync);
    }

    fn power(&self, action: PowerAction) -> io::Error {
        let _ = self.record(InitCall::Power(action));
        io::Error::other("reboot not performed (recording fake)")
    }

    fn exit(&self, code: i32) -> io::Error {
        let _ = self.record(InitCall::Exit(code));
        io::Error::other("exit not performed (recording fake)")
    }

    fn chdir(&self, dir: &Path) -> io::Result<()> {
        self.record(InitCall::Chdir(dir.into()))
    }

    fn chroot(&self, dir: &Path) -> io::Result<()> {
        self.record(InitCall::Chroot(dir.into()))
    }

    fn fs_magic(&self, _path: &Path) -> io::Result<u64> {
        Ok(self.fs_magic)
    }

    fn same_fs(&self, a: &Path, b: &Path) -> io::Result<bool> {
        Ok(self.mount_of(a) == self.mount_of(b))
    }

    fn clear_tree(&self, dir: &Path, keep: &[PathBuf]) -> io::Result<Cleared> {
        self.record(InitCall::ClearTree {
            dir: dir.into(),
            keep: keep.to_vec(),
        })?;
        Ok(Cleared::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_since_boot_agrees_with_proc_uptime() {
        // The real clock: what /proc/uptime prints (in hundredths) read just before and after.
        let before = uptime(&std::fs::read_to_string("/proc/uptime").unwrap()).unwrap();
        let t = RealInit.since_boot().unwrap();
        let after = uptime(&std::fs::read_to_string("/proc/uptime").unwrap()).unwrap();
        assert!(t + Duration::from_millis(10) >= before, "{t:?} {before:?}");
        assert!(t <= after + Duration::from_millis(10), "{t:?} {after:?}");
        // The fake: from its /proc/uptime, or an error without one.
        let fake = RecordingInit::new().with_file("/proc/uptime", "3.91 1.20\n");
        assert_eq!(fake.since_boot().unwrap(), Duration::from_millis(3910));
        assert!(RecordingInit::new().since_boot().is_err());
    }

    #[test]
    fn flags_compose_and_print() {
        let f = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        assert!(f.contains(MountFlags::NODEV));
        assert!(!f.contains(MountFlags::RDONLY));
        assert_eq!(format!("{f:?}"), "nosuid,nodev,noexec");
        assert_eq!(format!("{:?}", MountFlags::NONE), "defaults");
        use nix::mount::MsFlags as M;
        assert_eq!(f.to_nix(), M::MS_NOSUID | M::MS_NODEV | M::MS_NOEXEC);
    }

    #[test]
    fn clear_same_fs_removes_everything_but_kept_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/modules/x")).unwrap();
        std::fs::write(root.join("usr/lib/modules/x/a.ko"), b"ko").unwrap();
        std::fs::write(root.join("init"), b"elf").unwrap();
        std::os::unix::fs::symlink("/nonexistent", root.join("dangling")).unwrap();
        std::fs::create_dir_all(root.join("sysroot/etc")).unwrap();
        std::fs::write(root.join("sysroot/etc/keep"), b"k").unwrap();
        let c = clear_same_fs(root, &[root.join("sysroot")]).unwrap();
        let left: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("sysroot")]);
        assert!(root.join("sysroot/etc/keep").exists());
        assert_eq!(
            c,
            Cleared {
                removed: 7,
                kept: 1
            }
        );
    }

    #[test]
    fn fake_records_reads_writes_and_failures() {
        let fake = RecordingInit::new()
            .with_file("/proc/cmdline", "console=ttyS0")
            .fail_at("/sys", io::ErrorKind::PermissionDenied);
        assert_eq!(
            fake.read_file(Path::new("/proc/cmdline")).unwrap(),
            b"console=ttyS0"
        );
        assert_eq!(
            fake.read_file(Path::new("/nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let e = fake
            .mount("sysfs", Path::new("/sys"), "sysfs", MountFlags::NONE, "")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        fake.write_file(Path::new("/run/x"), b"1").unwrap();
        assert!(fake.exists(Path::new("/run/x")));
        assert_eq!(fake.written("/run/x").unwrap(), b"1");
        assert_eq!(
            fake.power(PowerAction::PowerOff).kind(),
            io::ErrorKind::Other
        );
        assert_eq!(
            fake.calls().last(),
            Some(&InitCall::Power(PowerAction::PowerOff))
        );
        assert!(fake.is_pid1());
        assert!(!RecordingInit::new().not_pid1().is_pid1());

        // Mount points as the fake tracks them.
        let fake = RecordingInit::new().with_mount("/sysroot");
        assert!(!fake.same_fs(Path::new("/"), Path::new("/sysroot")).unwrap());
        assert!(fake
            .same_fs(Path::new("/sysroot/etc"), Path::new("/sysroot"))
            .unwrap());
        fake.mount("proc", Path::new("/proc"), "proc", MountFlags::NONE, "")
            .unwrap();
        assert!(!fake.same_fs(Path::new("/proc/1"), Path::new("/")).unwrap());
        fake.move_mount(Path::new("/proc"), Path::new("/sysroot/proc"))
            .unwrap();
        assert!(fake.same_fs(Path::new("/proc"), Path::new("/")).unwrap());
        assert!(!fake
            .same_fs(Path::new("/sysroot/proc"), Path::new("/sysroot"))
            .unwrap());
    }

    #[test]
    fn real_reads_and_stat() {
        let real = RealInit;
        assert!(!real.is_pid1());
        assert!(real.exists(Path::new("/")));
        assert!(real.fs_magic(Path::new("/")).unwrap() != 0);
        // No reap() here: it would collect children of other tests running in this process.
    }
}
