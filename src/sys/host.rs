//! The kernel-facing calls of host preparation (modules, swap, identity) behind one narrow
//! trait, so the planning and applying logic in `crate::host` runs in tests against a fake.
//!
//! [`RealHost`] is one line per method; [`RecordingHost`] records typed [`HostCall`]s, answers
//! from its configuration, can inject an errno per module or swap device, and can emulate the
//! kernel's visible side effects in a fake root (`/sys/module/<name>` appearing after a load,
//! the line of `/proc/swaps` disappearing after swapoff) so verification is exercised too.
//! Nothing here reads configuration or decides anything.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Capability names as the kernel headers spell them (`CAP_SYS_MODULE`).
pub type CapabilitySet = BTreeSet<String>;

/// The privileged effects of host preparation.
pub trait Host: fmt::Debug + Send + Sync {
    /// The running kernel's release, as `uname -r` prints it.
    fn uname_release(&self) -> io::Result<String>;

    /// Opens a module file (`real`: its path under the root in use) read-only, for
    /// [`Host::finit_module`] or to read it whole for [`Host::init_module`].
    fn open_module(&self, real: &Path) -> io::Result<File>;

    /// `finit_module(2)` on an open module file. `module` and `path` are for the record only:
    /// the kernel sees just the descriptor. `flags` are `MODULE_INIT_*` bits.
    fn finit_module(
        &self,
        module: &str,
        path: &Path,
        file: &File,
        params: &str,
        flags: u32,
    ) -> io::Result<()>;

    /// `init_module(2)` with an in-memory (already decompressed) module image.
    fn init_module(&self, module: &str, path: &Path, image: &[u8], params: &str) -> io::Result<()>;

    /// `swapoff(2)` on a swap device or file, named as the kernel lists it in `/proc/swaps`.
    fn swapoff(&self, path: &Path) -> io::Result<()>;

    /// The effective user id.
    fn euid(&self) -> u32;

    /// The effective capability set.
    fn effective_capabilities(&self) -> io::Result<CapabilitySet>;

    /// Writes `value` to the sysctl `key` (dotted, for the record) at `path` (its
    /// `/proc/sys/…` file, under the root in use), in one `write(2)`.
    fn write_sysctl(&self, key: &str, path: &Path, value: &str) -> io::Result<()>;

    /// Binds (then releases) a TCP listener on `port` on all addresses, like the kubelet will:
    /// `AddrInUse` means something already listens there.
    fn bind_tcp(&self, port: u16) -> io::Result<()>;

    /// Connects to the unix socket at `path` (a real path, under the root in use) and closes the
    /// connection again: whether something listens there (the container runtime probe).
    fn connect_unix(&self, path: &Path) -> io::Result<()>;

    /// How many modules host preparation may load at once (`finit_module` from that many
    /// threads; a module still starts only after the modules it needs). 1: one after another.
    fn module_load_threads(&self) -> usize {
        1
    }

    /// Puts the calling thread in the kernel's idle scheduling class (`SCHED_IDLE`): it then
    /// runs only when no other thread of the machine wants the CPU. For background work on a
    /// machine with one CPU.
    fn idle_priority(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Module loads at once on a real kernel: one per CPU, at most 4 (beyond that the kernel's own
/// module locks serialise them anyway). `KUBEJOIN_MODULE_THREADS=N` overrides it (on the kernel
/// command line it reaches PID 1 as an environment variable).
pub fn real_module_load_threads() -> usize {
    if let Some(n) = std::env::var("KUBEJOIN_MODULE_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return n.clamp(1, 16);
    }
    // sysconf, not std's available_parallelism: that one parses cgroup quotas (9 KiB of code
    // in this binary), which mean nothing to PID 1 on a node.
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// The real system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealHost;

fn c_string(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

impl Host for RealHost {
    fn uname_release(&self) -> io::Result<String> {
        Ok(nix::sys::utsname::uname()?
            .release()
            .to_string_lossy()
            .into_owned())
    }

    fn open_module(&self, real: &Path) -> io::Result<File> {
        File::open(real)
    }

    fn finit_module(
        &self,
        _module: &str,
        _path: &Path,
        file: &File,
        params: &str,
        flags: u32,
    ) -> io::Result<()> {
        let flags = nix::kmod::ModuleInitFlags::from_bits_retain(flags);
        Ok(nix::kmod::finit_module(file, &c_string(params)?, flags)?)
    }

    fn init_module(
        &self,
        _module: &str,
        _path: &Path,
        image: &[u8],
        params: &str,
    ) -> io::Result<()> {
        Ok(nix::kmod::init_module(image, &c_string(params)?)?)
    }

    #[allow(unsafe_code)]
    fn swapoff(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt as _;
        let p = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "swap path contains a NUL byte")
        })?;
        // SAFETY: `p` is a valid NUL-terminated string that outlives the call; swapoff(2) only
        // reads it and keeps no pointer to it.
        let rc = unsafe { libc::swapoff(p.as_ptr()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn euid(&self) -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn module_load_threads(&self) -> usize {
        real_module_load_threads()
    }

    #[allow(unsafe_code)]
    fn idle_priority(&self) -> io::Result<()> {
        // The raw system call: musl's sched_setscheduler() always fails with ENOSYS (POSIX
        // means the process, Linux sets one thread). The kernel reads one int, the priority
        // (0 for SCHED_IDLE).
        let priority: libc::c_int = 0;
        // SAFETY: pid 0 is the calling thread; `priority` is a valid `struct sched_param` (its
        // only field the kernel reads) that outlives the call; the kernel only reads it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sched_setscheduler,
                0 as libc::pid_t,
                libc::SCHED_IDLE,
                std::ptr::addr_of!(priority),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn effective_capabilities(&self) -> io::Result<CapabilitySet> {
        let caps = caps::read(None, caps::CapSet::Effective)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(caps.iter().map(ToString::to_string).collect())
    }

    fn write_sysctl(&self, _key: &str, path: &Path, value: &str) -> io::Result<()> {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            // One write call: procfs parses each write(2) on its own.
            .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
    }

    fn bind_tcp(&self, port: u16) -> io::Result<()> {
        std::net::TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, port))
            .or_else(|e| match e.kind() {
                // A kernel without IPv6 (ipv6.disable=1): fall back to the IPv4 wildcard.
                io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported => {
                    std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port))
                }
                _ => Err(e),
            })
            .map(drop)
    }

    fn connect_unix(&self, path: &Path) -> io::Result<()> {
        std::os::unix::net::UnixStream::connect(path).map(drop)
    }
}

/// One recorded call on [`RecordingHost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCall {
    Uname,
    FinitModule {
        module: String,
        path: PathBuf,
        params: String,
        flags: u32,
    },
    /// `image` is kept whole so tests can check what was decompressed.
    InitModule {
        module: String,
        path: PathBuf,
        image: Vec<u8>,
        params: String,
    },
    Swapoff {
        path: PathBuf,
    },
    Euid,
    Capabilities,
    BindTcp {
        port: u16,
    },
    ConnectUnix {
        path: PathBuf,
    },
    /// A module file opened for loading (its real path under the root).
    OpenModule {
        path: PathBuf,
    },
    WriteSysctl {
        key: String,
        value: String,
    },
    /// The calling thread asked for the idle scheduling class.
    IdlePriority,
}

/// A recording fake. Loads and swapoffs succeed unless an errno was injected for that module
/// or device; the kernel release, euid and capabilities are configured.
#[derive(Debug)]
pub struct RecordingHost {
    calls: Mutex<Vec<HostCall>>,
    release: String,
    load_errors: BTreeMap<String, i32>,
    swapoff_errors: BTreeMap<PathBuf, i32>,
    uname_error: Option<i32>,
    euid: u32,
    caps: CapabilitySet,
    ports_in_use: BTreeSet<u16>,
    sysctl_errors: BTreeMap<String, i32>,
    kernel_root: Option<PathBuf>,
    load_threads: usize,
    /// Devices a module's probe creates: module -> (sysfs node path, modalias).
    devices_on_load: BTreeMap<String, Vec<(PathBuf, String)>>,
}

impl RecordingHost {
    /// A fake kernel of release `release`, running as root with every capability host
    /// preparation asks for.
    pub fn new(release: &str) -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            release: release.to_string(),
            load_errors: BTreeMap::new(),
            swapoff_errors: BTreeMap::new(),
            uname_error: None,
            euid: 0,
            caps: [
                "CAP_SYS_MODULE",
                "CAP_NET_ADMIN",
                "CAP_SYS_ADMIN",
                "CAP_DAC_OVERRIDE",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            ports_in_use: BTreeSet::new(),
            sysctl_errors: BTreeMap::new(),
            kernel_root: None,
            load_threads: 1,
            devices_on_load: BTreeMap::new(),
        }
    }

    /// With [`RecordingHost::with_kernel_root`]: a successful load of `module` also creates the
    /// device `node` (`/sys/bus/virtio/devices/virtio0`) with `modalias`, as a bus driver's
    /// probe does (virtio_pci creating the virtio devices that select virtio_net).
    pub fn with_device_on_load(mut self, module: &str, node: &str, modalias: &str) -> Self {
        self.devices_on_load
            .entry(module.to_string())
            .or_default()
            .push((PathBuf::from(node), modalias.to_string()));
        self
    }

    /// Lets host preparation load up to `n` modules at once (default 1: calls in plan order).
    pub fn with_load_threads(mut self, n: usize) -> Self {
        self.load_threads = n;
        self
    }

    /// Emulates the kernel's visible effects under `root` (a fake `/`): a successful load
    /// creates `/sys/module/<name>/initstate` (`live`), a successful swapoff removes the
    /// device's line from `/proc/swaps`.
    pub fn with_kernel_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.kernel_root = Some(root.into());
        self
    }

    /// Makes loading `module` fail with `errno` (e.g. `libc::ENOEXEC`).
    pub fn failing_load(mut self, module: &str, errno: i32) -> Self {
        self.load_errors.insert(module.to_string(), errno);
        self
    }

    /// Makes writing the sysctl `key` (dotted) fail with `errno`.
    pub fn failing_sysctl(mut self, key: &str, errno: i32) -> Self {
        self.sysctl_errors.insert(key.to_string(), errno);
        self
    }

    /// The sysctls written so far (dotted key, value), in order.
    pub fn sysctls_written(&self) -> Vec<(String, String)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                HostCall::WriteSysctl { key, value } => Some((key, value)),
                _ => None,
            })
            .collect()
    }

    /// Makes swapoff of `path` fail with `errno`.
    pub fn failing_swapoff(mut self, path: impl Into<PathBuf>, errno: i32) -> Self {
        self.swapoff_errors.insert(path.into(), errno);
        self
    }

    /// Makes `uname_release()` fail with `errno`.
    pub fn failing_uname(mut self, errno: i32) -> Self {
        self.uname_error = Some(errno);
        self
    }

    pub fn with_euid(mut self, euid: u32) -> Self {
        self.euid = euid;
        self
    }

    pub fn with_capabilities<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        caps: I,
    ) -> Self {
        self.caps = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Makes `bind_tcp(port)` fail with `AddrInUse`.
    pub fn with_port_in_use(mut self, port: u16) -> Self {
        self.ports_in_use.insert(port);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<HostCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The modules loaded so far (finit or init), in order.
    pub fn loaded(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                HostCall::FinitModule { module, .. } | HostCall::InitModule { module, .. } => {
                    Some(module)
                }
                _ => None,
            })
            .collect()
    }

    fn record(&self, call: HostCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }

    fn load(&self, module: &str) -> io::Result<()> {
        if let Some(&errno) = self.load_errors.get(module) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        if let Some(root) = &self.kernel_root {
            let dir = root.join("sys/module").join(module);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("initstate"), "live\n")?;
            for (node, modalias) in self.devices_on_load.get(module).into_iter().flatten() {
                let dev = root.join(node.strip_prefix("/").unwrap_or(node));
                std::fs::create_dir_all(&dev)?;
                std::fs::write(dev.join("modalias"), format!("{modalias}\n"))?;
            }
        }
        Ok(())
    }
}

impl Host for RecordingHost {
    fn module_load_threads(&self) -> usize {
        self.load_threads
    }

    fn idle_priority(&self) -> io::Result<()> {
        self.record(HostCall::IdlePriority);
        Ok(())
    }

    fn uname_release(&self) -> io::Result<String> {
        self.record(HostCall::Uname);
        match self.uname_error {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(self.release.clone()),
        }
    }

    /// Records the open; the file is the test root's own (a fixture kernel's module tree).
    fn open_module(&self, real: &Path) -> io::Result<File> {
        self.record(HostCall::OpenModule {
            path: real.to_path_buf(),
        });
        File::open(real)
    }

    fn finit_module(
        &self,
        module: &str,
        path: &Path,
        _file: &File,
        params: &str,
        flags: u32,
    ) -> io::Result<()> {
        self.record(HostCall::FinitModule {
            module: module.to_string(),
            path: path.to_path_buf(),
            params: params.to_string(),
            flags,
        });
        self.load(module)
    }

    fn init_module(&self, module: &str, path: &Path, image: &[u8], params: &str) -> io::Result<()> {
        self.record(HostCall::InitModule {
            module: module.to_string(),
            path: path.to_path_buf(),
            image: image.to_vec(),
            params: params.to_string(),
        });
        self.load(module)
    }

    /// Records the write; the value then shows in the file at `path` (under the test's fake
    /// `/proc/sys`), as the kernel would show it.
    fn write_sysctl(&self, key: &str, path: &Path, value: &str) -> io::Result<()> {
        self.record(HostCall::WriteSysctl {
            key: key.to_string(),
            value: value.to_string(),
        });
        if let Some(&errno) = self.sysctl_errors.get(key) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        RealHost.write_sysctl(key, path, value)
    }

    fn swapoff(&self, path: &Path) -> io::Result<()> {
        self.record(HostCall::Swapoff {
            path: path.to_path_buf(),
        });
        if let Some(&errno) = self.swapoff_errors.get(path) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        if let Some(root) = &self.kernel_root {
            let swaps = root.join("proc/swaps");
            if let Ok(text) = std::fs::read_to_string(&swaps) {
                // /proc/swaps escapes space, tab, newline and backslash as \ooo.
                let mut dev = String::new();
                for c in path.to_string_lossy().chars() {
                    match c {
                        ' ' | '\t' | '\n' | '\\' => dev.push_str(&format!("\\{:03o}", c as u32)),
                        c => dev.push(c),
                    }
                }
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|l| l.split_whitespace().next() != Some(dev.as_str()))
                    .collect();
                std::fs::write(&swaps, kept.join("\n") + "\n")?;
            }
        }
        Ok(())
    }

    fn euid(&self) -> u32 {
        self.record(HostCall::Euid);
        self.euid
    }

    fn effective_capabilities(&self) -> io::Result<CapabilitySet> {
        self.record(HostCall::Capabilities);
        Ok(self.caps.clone())
    }

    fn bind_tcp(&self, port: u16) -> io::Result<()> {
        self.record(HostCall::BindTcp { port });
        if self.ports_in_use.contains(&port) {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        Ok(())
    }

    /// Records the probe; something listens when a socket file is at `path` (tests bind one in
    /// their temporary root), as the kernel would answer: `NotFound` without a file,
    /// `ECONNREFUSED` for a file that is no socket.
    fn connect_unix(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::FileTypeExt as _;
        self.record(HostCall::ConnectUnix {
            path: path.to_path_buf(),
        });
        match std::fs::metadata(path) {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            Ok(_) => Err(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_uname_and_identity_answer() {
        // Reading identity is harmless; loading modules or swapoff on this machine is never
        // attempted in unit tests (the VM test does that).
        assert!(!RealHost.uname_release().unwrap().is_empty());
        let caps = RealHost.effective_capabilities().unwrap();
        if RealHost.euid() != 0 {
            assert!(!caps.contains("CAP_SYS_MODULE"));
        }
    }

    #[test]
    fn real_bind_reports_addr_in_use() {
        let l = std::net::TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, 0))
            .or_else(|_| std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)))
            .unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            RealHost.bind_tcp(port).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }

    #[test]
    fn fake_records_and_injects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(
            dir.path().join("proc/swaps"),
            "Filename Type Size Used Priority\n/dev/vda2 partition 10 0 -2\n/swapfile file 10 0 -3\n",
        )
        .unwrap();
        let f = File::open(dir.path().join("proc/swaps")).unwrap();
        let fake = RecordingHost::new("6.1.0-test")
            .with_kernel_root(dir.path())
            .failing_load("bad", libc::ENOEXEC)
            .failing_swapoff("/swapfile", libc::ENOMEM)
            .with_port_in_use(10250);
        assert_eq!(fake.uname_release().unwrap(), "6.1.0-test");
        fake.finit_module("llc", Path::new("/lib/modules/x/llc.ko"), &f, "", 0)
            .unwrap();
        assert!(dir.path().join("sys/module/llc/initstate").exists());
        let e = fake
            .init_module("bad", Path::new("/x/bad.ko"), b"img", "a=1")
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOEXEC));
        fake.swapoff(Path::new("/dev/vda2")).unwrap();
        assert_eq!(
            fake.swapoff(Path::new("/swapfile"))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOMEM)
        );
        let swaps = std::fs::read_to_string(dir.path().join("proc/swaps")).unwrap();
        assert!(
            !swaps.contains("/dev/vda2") && swaps.contains("/swapfile"),
            "{swaps}"
        );
        assert_eq!(
            fake.bind_tcp(10250).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        fake.bind_tcp(10251).unwrap();
        assert_eq!(fake.loaded(), vec!["llc", "bad"]);
        assert_eq!(fake.calls()[0], HostCall::Uname);
        assert!(RecordingHost::new("x")
            .failing_uname(libc::EPERM)
            .uname_release()
            .is_err());
    }
}
