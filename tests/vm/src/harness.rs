//! Host side of the VM test: namespace, control plane, qemu, and what they leave behind.
//!
//! Every resource is owned by a guard whose `Drop` releases it — the namespace is deleted, the
//! control plane and qemu are killed — so a failing assertion or a panic never leaves a VM or a
//! namespace behind. Every wait is bounded.

use crate::check::TIMELINE_FILE_LINE;
use serde_json::Value;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The guest's view of the host in qemu user networking.
pub const HOST_FROM_GUEST: &str = "10.0.2.2";
/// The port the control plane listens on inside the namespace (the namespace is fresh, so it is
/// free; the guest sees it at 10.0.2.2:PORT).
pub const PORT: u16 = 6443;
/// The UDP port the test SNTP server listens on inside the namespace (the guest asks
/// `10.0.2.2:NTP_PORT`: qemu's user network forwards UDP to the host's loopback as it does TCP).
pub const NTP_PORT: u16 = 10123;

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b
}

/// A random bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
pub fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let r = random_bytes::<22>();
    let s: String = r
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}.{}", &s[..6], &s[6..])
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A network namespace of our own, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `ip netns add kjvm-<random>` and `lo` up.
    pub fn create() -> io::Result<Self> {
        let r = random_bytes::<4>();
        let name = format!("kjvm-{:02x}{:02x}{:02x}{:02x}", r[0], r[1], r[2], r[3]);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// `program` run inside the namespace (`ip netns exec` execs it, so the child is the program).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test control plane running in a namespace.
#[derive(Debug)]
pub struct ControlPlane {
    _child: Guard,
    pub state: PathBuf,
    /// `sha256:…` of the CA.
    pub pin: String,
    /// What the guest dials: `10.0.2.2:PORT`.
    pub endpoint: String,
}

impl ControlPlane {
    /// Starts `testcp` in `ns` on `127.0.0.1:PORT`, advertising `https://10.0.2.2:PORT`, with
    /// `token` as its bootstrap token; waits (bounded) for `READY`.
    pub fn start(
        ns: &Netns,
        testcp: &Path,
        state: &Path,
        token: &str,
        extra: &[String],
    ) -> io::Result<Self> {
        std::fs::create_dir_all(state)?;
        let log = std::fs::File::create(state.join("cp.log"))?;
        let url = format!("https://{HOST_FROM_GUEST}:{PORT}");
        let child = ns
            .command(testcp)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{PORT}"),
                "--state-dir",
            ])
            .arg(state)
            .args([
                "--server-url",
                &url,
                "--san",
                HOST_FROM_GUEST,
                "--token",
                token,
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut guard = Guard(child);
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(state.join("cp.log")).unwrap_or_default();
            if text.lines().any(|l| l.starts_with("READY ")) {
                break;
            }
            if let Ok(Some(status)) = guard.0.try_wait() {
                return Err(io::Error::other(format!(
                    "the test control plane exited ({status}):\n{text}"
                )));
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::other(format!(
                    "the test control plane was not READY within 30s:\n{text}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let pin = std::fs::read_to_string(state.join("pin"))?
            .trim()
            .to_string();
        Ok(ControlPlane {
            _child: guard,
            state: state.to_path_buf(),
            pin,
            endpoint: format!("{HOST_FROM_GUEST}:{PORT}"),
        })
    }

    /// Every request the control plane logged so far.
    pub fn requests(&self) -> Vec<Value> {
        read_requests(&self.state.join("requests.jsonl"))
    }
}

/// The lines of a `requests.jsonl`.
pub fn read_requests(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub serial_log: PathBuf,
    /// A raw disk image attached as the first virtio disk (`/dev/vda` in the guest).
    pub disk: Option<PathBuf>,
    /// An OpenStack config drive image attached read-only as the next virtio disk (`/dev/vdb`
    /// after a `disk`, else `/dev/vda`).
    pub config_drive: Option<PathBuf>,
    /// qemu's `-rtc base=…` (e.g. `2015-01-01`): the guest's clock starts there.
    pub rtc_base: Option<String>,
}

/// How a boot ended.
#[derive(Debug, Clone)]
pub struct VmRun {
    /// qemu's exit status; `None` when it was killed at the timeout.
    pub exit: Option<ExitStatus>,
    pub elapsed: Duration,
    pub console: Console,
    /// `kvm` or `tcg`.
    pub accel: &'static str,
}

impl VmRun {
    /// qemu exited by itself (guest power-off, or reboot under `-no-reboot`) before the timeout.
    pub fn exited(&self) -> bool {
        self.exit.is_some()
    }
}

/// `tcg` (software emulation), unless `KUBEJOIN_VM_ACCEL=kvm`. Not detected from `/dev/kvm`:
/// on CI's machines the device opens but KVM fails to start guests (nested virtualisation
/// without the MSRs qemu needs), while TCG always works, only slower.
pub fn accel() -> &'static str {
    match std::env::var("KUBEJOIN_VM_ACCEL").as_deref() {
        Ok("kvm") => "kvm",
        _ => "tcg",
    }
}

/// The VM's hardware random source, from `KUBEJOIN_VM_RNG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rng {
    /// The default (`cpu`, or unset): the emulated CPU gets RDRAND, as every real
    /// x86 server has, and the guest kernel (`CONFIG_RANDOM_TRUST_CPU=y` in Debian's) seeds its
    /// pool from them at once. No PCI device: each virtio PCI device costs the guest ~200 ms of
    /// ACPI interrupt routing under emulation (README "Performance").
    Cpu,
    /// `virtio`: a virtio-rng PCI device (the CPU without RDRAND), as the VM had before.
    Virtio,
    /// `none`: no random source at all (the guest's pool waits ~1 s for timer jitter).
    None,
}

/// `KUBEJOIN_VM_RNG`: `cpu` (the default), `virtio` or `none`.
pub fn rng() -> Rng {
    match std::env::var("KUBEJOIN_VM_RNG").as_deref() {
        Ok("virtio") => Rng::Virtio,
        Ok("none") => Rng::None,
        _ => Rng::Cpu,
    }
}

/// The VM's CPUs: 1 unless `KUBEJOIN_VM_SMP=N` (1–8), which `scripts/bench --vm` uses to
/// measure what loading modules in parallel gives a guest with more than one CPU.
pub fn smp() -> u32 {
    std::env::var("KUBEJOIN_VM_SMP")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| (1..=8).contains(n))
        .unwrap_or(1)
}

/// The VM's machine type: qemu's `q35` (PCI Express, what current cloud and libvirt guests get)
/// unless `KUBEJOIN_VM_MACHINE` names another (`pc`, the 1996 i440FX board). Measured under
/// software emulation: virtio_pci's probe of the NIC takes ~15 ms on q35 and ~120 ms on `pc`,
/// where the kernel routes the legacy interrupt through ACPI PCI link devices whose AML the
/// emulated CPU interprets (README "Performance").
pub fn machine() -> String {
    std::env::var("KUBEJOIN_VM_MACHINE").unwrap_or_else(|_| "q35".into())
}

/// The qemu command line for `spec` (without the namespace wrapper).
pub fn qemu_args(spec: &VmSpec, accel: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-nodefaults".into(),
        "-no-reboot".into(),
        "-display".into(),
        "none".into(),
        "-machine".into(),
        format!("{},accel={accel}", machine()),
        "-m".into(),
        spec.memory_mb.to_string(),
        "-smp".into(),
        smp().to_string(),
        "-kernel".into(),
        spec.kernel.display().to_string(),
        "-initrd".into(),
        spec.initrd.display().to_string(),
        "-append".into(),
        spec.append.clone(),
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
        "-serial".into(),
        format!("file:{}", spec.serial_log.display()),
    ];
    // A hardware random source, as real servers and cloud VMs have: without one the guest
    // kernel's random pool takes ~1 s of timer jitter to initialise, and the first TLS
    // handshake waits for it (src/sys/entropy.rs). `KUBEJOIN_VM_RNG=none` boots without one
    // to measure that.
    match (rng(), accel) {
        // KVM's `-cpu host` (below) passes the host CPU's RDRAND through.
        (Rng::Cpu, "kvm") | (Rng::None, _) => {}
        // TCG emulates RDRAND (qemu 7.2 warns that it lacks RDSEED); qemu64 otherwise, as
        // before (`-cpu max` would also turn on every other emulated feature, 5-level paging
        // included: another machine to compare).
        (Rng::Cpu, _) => a.extend(["-cpu".into(), "qemu64,+rdrand".into()]),
        (Rng::Virtio, _) => a.extend(["-device".into(), "virtio-rng-pci".into()]),
    }
    if let Some(disk) = &spec.disk {
        a.extend([
            "-drive".into(),
            format!("file={},format=raw,if=virtio", disk.display()),
        ]);
    }
    if let Some(drive) = &spec.config_drive {
        a.extend([
            "-drive".into(),
            format!("file={},format=raw,if=virtio,readonly=on", drive.display()),
        ]);
    }
    if let Some(base) = &spec.rtc_base {
        a.extend(["-rtc".into(), format!("base={base}")]);
    }
    if accel == "kvm" {
        a.extend(["-cpu".into(), "host".into()]);
    }
    a
}

/// The test SNTP server (`testcp sntp`) in a namespace, on `127.0.0.1:NTP_PORT`, telling the
/// host's time.
#[derive(Debug)]
pub struct SntpServer {
    _child: Guard,
    /// What the guest asks: `10.0.2.2:NTP_PORT`.
    pub server: String,
}

impl SntpServer {
    /// Starts it and waits (bounded) for its `READY` line.
    pub fn start(ns: &Netns, testcp: &Path, dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log_path = dir.join("sntp.log");
        let log = std::fs::File::create(&log_path)?;
        let child = ns
            .command(testcp)
            .args(["sntp", "--listen", &format!("127.0.0.1:{NTP_PORT}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut guard = Guard(child);
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.lines().any(|l| l.starts_with("READY ")) {
                break;
            }
            if let Ok(Some(status)) = guard.0.try_wait() {
                return Err(io::Error::other(format!(
                    "the test SNTP server exited ({status}):\n{text}"
                )));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(io::Error::other(format!(
                    "the test SNTP server was not READY within 10s:\n{text}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            _child: guard,
            server: format!("{HOST_FROM_GUEST}:{NTP_PORT}"),
        })
    }
}

/// Boots `spec` with qemu inside `ns` (or, for a real cluster, in the host's network) and
/// waits until qemu exits or the timeout passes (then it is killed). The serial console is read
/// back from `spec.serial_log`.
pub fn boot(ns: Option<&Netns>, spec: &VmSpec) -> io::Result<VmRun> {
    let accel = accel();
    let start = Instant::now();
    let qlog = std::fs::File::create(spec.serial_log.with_extension("qemu.log"))?;
    let mut cmd = match ns {
        Some(ns) => ns.command("qemu-system-x86_64"),
        None => Command::new("qemu-system-x86_64"),
    };
    let child = cmd
        .args(qemu_args(spec, accel))
        .stdin(Stdio::null())
        .stdout(qlog.try_clone()?)
        .stderr(qlog)
        .spawn()?;
    let mut guard = Guard(child);
    let mut progress = Progress::default();
    let exit = loop {
        if let Some(status) = guard.0.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > spec.timeout {
            break None;
        }
        if PROGRESS.load(std::sync::atomic::Ordering::Relaxed) {
            progress.report(&spec.serial_log, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(guard);
    let elapsed = start.elapsed();
    let console = Console(
        String::from_utf8_lossy(&std::fs::read(&spec.serial_log).unwrap_or_default())
            .replace('\r', ""),
    );
    Ok(VmRun {
        exit,
        elapsed,
        console,
        accel,
    })
}

static PROGRESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`boot`] print, while the guest runs, each boot phase as it starts on the serial console
/// (and a line every few seconds while the console is quiet), for a person watching
/// (`kubejoin-vm`); tests leave it off.
pub fn show_progress(on: bool) {
    PROGRESS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// What [`boot`] has reported of the console so far.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes of the serial log already looked at (up to the last complete line).
    seen: usize,
    /// When the last line was printed.
    last: Duration,
}

impl Progress {
    fn report(&mut self, serial_log: &Path, now: Duration) {
        let bytes = std::fs::read(serial_log).unwrap_or_default();
        let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if end > self.seen {
            let text = String::from_utf8_lossy(&bytes[self.seen..end]).replace('\r', "");
            self.seen = end;
            for line in text.lines() {
                let what = if line.contains("Linux version ") {
                    Some("the kernel is starting".to_string())
                } else {
                    line.find("kubejoin: info: [")
                        .map(|i| &line[i + "kubejoin: info: [".len()..])
                        .and_then(|rest| rest.strip_suffix("] start"))
                        .map(|phase| format!("kubejoin: {phase}"))
                };
                if let Some(what) = what {
                    println!("    [{:>5.1}s] guest: {what}", now.as_secs_f64());
                    self.last = now;
                }
            }
        }
        if now.saturating_sub(self.last) >= Duration::from_secs(3) {
            // A `quiet` kernel prints nothing until kubejoin starts.
            let what = if self.seen == 0 {
                "the kernel is booting (software emulation: a few seconds)"
            } else {
                "still running"
            };
            println!("    [{:>5.1}s] guest: {what}", now.as_secs_f64());
            self.last = now;
        }
    }
}

/// A file the disk of the switch-root case carries, so the checker can tell it runs there.
pub const SYSROOT_MARKER: &str = "/etc/kubejoin-vm-sysroot";

/// An ext4 disk image holding a minimal real root: `/sbin/init` is the checker, plus the
/// directories a root has and a marker file. Built with `mkfs.ext4 -d` (no mount, no loop
/// device, no root needed for this part).
pub fn make_root_disk(checker: &Path, dir: &Path) -> io::Result<PathBuf> {
    let tree = dir.join("rootfs");
    for d in [
        "sbin", "etc", "proc", "sys", "dev", "run", "tmp", "var/lib", "usr/bin",
    ] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    std::fs::copy(checker, tree.join("sbin/init"))?;
    std::fs::write(
        tree.join(SYSROOT_MARKER.trim_start_matches('/')),
        b"the real root of the switch-root VM case\n",
    )?;
    let img = dir.join("root.img");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "kjroot", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("64M"))?;
    Ok(img)
}

/// What the config drive of [`make_config_drive`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveContent {
    /// `openstack/latest/user_data`.
    pub user_data: String,
    /// `openstack/latest/meta_data.json`.
    pub meta_data: String,
}

/// The sysctl the config drive's KubejoinConfiguration sets (the kernel's default is 65530):
/// host preparation's layer from user-data, seen by the checker.
pub const DRIVE_SYSCTL: (&str, &str) = ("vm.max_map_count", "262144");

/// What an OpenStack config drive carries for a join: the user-data (a kubeadm
/// JoinConfiguration with the node name, plus a KubejoinConfiguration with [`DRIVE_SYSCTL`])
/// and the instance's `meta_data.json` (uuid, hostname, name).
pub fn drive_content(endpoint: &str, token: &str, pin: &str, node: &str) -> DriveContent {
    let user_data = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\n\
         kind: JoinConfiguration\n\
         discovery:\n  \
           bootstrapToken:\n    \
             apiServerEndpoint: \"{endpoint}\"\n    \
             token: {token}\n    \
             caCertHashes: [\"{pin}\"]\n\
         ---\n\
         apiVersion: kubejoin.dev/v1alpha1\n\
         kind: KubejoinConfiguration\n\
         sysctls:\n  \
           {}: {}\n",
        DRIVE_SYSCTL.0, DRIVE_SYSCTL.1
    );
    let meta_data = serde_json::json!({
        "uuid": "0b7e5a4c-6b8e-4f0e-9d3c-1f2a3b4c5d6e",
        "hostname": node,
        "name": node,
        "availability_zone": "nova",
    })
    .to_string();
    DriveContent {
        user_data,
        meta_data,
    }
}

/// An ISO 9660 image labelled `config-2` (as Nova builds config drives) holding `content`
/// under `openstack/latest/`, built with `genisoimage` (Rock Ridge and Joliet names).
pub fn make_config_drive(content: &DriveContent, dir: &Path) -> io::Result<PathBuf> {
    let tree = dir.join("config-drive");
    let latest = tree.join("openstack/latest");
    std::fs::create_dir_all(&latest)?;
    std::fs::write(latest.join("user_data"), &content.user_data)?;
    std::fs::write(latest.join("meta_data.json"), &content.meta_data)?;
    let img = dir.join("config-drive.iso");
    run(Command::new("genisoimage")
        .args(["-quiet", "-V", "config-2", "-J", "-R", "-o"])
        .arg(&img)
        .arg(&tree))?;
    Ok(img)
}

/// A serial console transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Console(pub String);

impl Console {
    /// kubejoin's lines, from `kubejoin: ` on (a kernel-echoed kmsg line has a `[ time]` stamp
    /// before it).
    pub fn kubejoin_lines(&self) -> Vec<&str> {
        self.0
            .lines()
            .filter_map(|l| l.find("kubejoin: ").map(|i| &l[i..]))
            .collect()
    }

    /// Whether any kubejoin line contains `s`.
    pub fn logged(&self, s: &str) -> bool {
        self.kubejoin_lines().iter().any(|l| l.contains(s))
    }

    /// The JSON of the `kubejoin: timeline {…}` line, else (`kubejoin.timeline=file`) the
    /// checker's copy of `/run/kubejoin/timeline.json`.
    pub fn timeline(&self) -> Option<Value> {
        self.kubejoin_lines()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("kubejoin: timeline "))
            .and_then(|j| serde_json::from_str(j).ok())
            .or_else(|| self.timeline_file())
    }

    /// The checker's copy of `/run/kubejoin/timeline.json` (`kubejoin-check: timeline-file {…}`).
    pub fn timeline_file(&self) -> Option<Value> {
        self.0
            .lines()
            .rev()
            .find_map(|l| {
                l.find(TIMELINE_FILE_LINE)
                    .map(|i| &l[i + TIMELINE_FILE_LINE.len()..])
            })
            .and_then(|j| serde_json::from_str(j).ok())
    }

    /// The checker's `(pass, what)` lines (the RESULT line excluded).
    pub fn checks(&self) -> Vec<(bool, String)> {
        self.0
            .lines()
            .filter_map(|l| {
                l.find("kubejoin-check: ")
                    .map(|i| &l[i + "kubejoin-check: ".len()..])
            })
            .filter_map(|l| {
                if let Some(w) = l.strip_prefix("PASS ") {
                    Some((true, w.to_string()))
                } else {
                    l.strip_prefix("FAIL ").map(|w| (false, w.to_string()))
                }
            })
            .collect()
    }

    /// The checker's verdict, when it printed one.
    pub fn check_result(&self) -> Option<bool> {
        self.0.lines().find_map(|l| {
            let i = l.find("kubejoin-check: RESULT ")?;
            Some(l[i..].ends_with("PASS"))
        })
    }

    /// The phase durations of the timeline, `(phase, ms, outcome)`.
    pub fn phases(&self) -> Vec<(String, u64, String)> {
        let Some(t) = self.timeline() else {
            return Vec::new();
        };
        t["phases"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["phase"].as_str().unwrap_or_default().to_string(),
                            p["duration_ms"].as_u64().unwrap_or_default(),
                            p["outcome"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Paths of the prebuilt artifacts the VM test boots (from the environment `scripts/vm-test`
/// sets up).
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub testcp: PathBuf,
    /// The static checker, for the switch-root case's disk (`KUBEJOIN_VM_CHECKER`).
    pub checker: Option<PathBuf>,
}

impl Artifacts {
    /// `KUBEJOIN_VM_KERNEL`, `KUBEJOIN_VM_INITRD`, `KUBEJOIN_VM_TESTCP`; `None` when unset (the
    /// test then says how to run it and passes vacuously).
    pub fn from_env() -> Option<Self> {
        // Absolute: cargo runs tests in the package's directory, not the caller's.
        let get = |k: &str| {
            std::env::var_os(k)
                .map(PathBuf::from)
                .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        };
        Some(Artifacts {
            kernel: get("KUBEJOIN_VM_KERNEL")?,
            initrd: get("KUBEJOIN_VM_INITRD")?,
            testcp: get("KUBEJOIN_VM_TESTCP")?,
            checker: get("KUBEJOIN_VM_CHECKER"),
        })
    }
}

/// One join attempt in a VM.
#[derive(Debug, Clone)]
pub struct Case {
    /// Pin the control plane's CA (`true`) or a key that is not the CA's (`false`).
    pub right_pin: bool,
    pub node_name: String,
    /// Extra kernel command line words.
    pub extra_append: Vec<String>,
    pub timeout: Duration,
    /// Boot with a real root on a disk (`root=/dev/vda`): kubejoin installs into it and switches
    /// to it; its `/sbin/init` is the checker.
    pub switch_root: bool,
    /// Dial this `host:port` instead of the control plane (an address nobody answers at).
    pub endpoint: Option<String>,
    /// `kubejoin.on-failure` and `kubejoin.timeout` instead of `poweroff` and `90s`.
    pub policy: Option<(String, String)>,
    /// The join data goes on an OpenStack config drive ([`make_config_drive`]; the node name as
    /// the instance's hostname) and the kernel command line carries none.
    pub config_drive: bool,
    /// qemu's `-rtc base=…`: the guest's clock starts there (a board without a real-time clock).
    pub rtc_base: Option<String>,
    /// Run the test SNTP server in the namespace and name it with `kubejoin.ntp=10.0.2.2:PORT`.
    pub sntp: bool,
    /// Extra `kubejoin-testcp serve` flags (e.g. `--pki-backdate 0s`).
    pub cp_args: Vec<String>,
}

/// What a [`Case`] left behind.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub run: VmRun,
    pub requests: Vec<Value>,
    pub token: String,
    pub pin: String,
    pub append: String,
    pub work: PathBuf,
    pub netns: String,
}

/// The pin of no CA at all: what a man in the middle would make a node trust.
pub const WRONG_PIN: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The kernel command line of a join.
pub fn append_line(endpoint: &str, token: &str, pin: &str, node: &str, extra: &[String]) -> String {
    let join = [
        format!("kubejoin.endpoint={endpoint}"),
        format!("kubejoin.token={token}"),
        format!("kubejoin.ca-cert-hash={pin}"),
        format!("kubejoin.node-name={node}"),
    ];
    pid1_append_line(&join, extra)
}

/// A kernel command line with PID 1's own keys only (no join data) before `join` and `extra`.
pub fn pid1_append_line(join: &[String], extra: &[String]) -> String {
    let mut words = vec![
        "console=ttyS0".to_string(),
        // Kernel messages below warning stay off the serial line: faster under emulation, and
        // kubejoin's lines are easy to read (they reach the console either way).
        "quiet".into(),
        // A kernel panic (PID 1 died) reboots at once; with -no-reboot qemu then exits.
        "panic=-1".into(),
    ];
    words.extend(join.iter().cloned());
    words.extend([
        "kubejoin.handoff=exec".to_string(),
        "kubejoin.on-failure=poweroff".into(),
        // The join takes ~2 s here; anything stuck ends in the policy's power-off (the watchdog
        // fires 15 s after this) well before the harness's own 150 s bound.
        "kubejoin.timeout=90s".into(),
    ]);
    // The whole JSON timeline on the console, where the tests and the benchmark read it (a
    // case that names its own `kubejoin.timeline=` keeps it).
    if !extra.iter().any(|w| w.starts_with("kubejoin.timeline=")) {
        words.push("kubejoin.timeline=console".into());
    }
    words.extend(extra.iter().cloned());
    words.join(" ")
}

/// Runs one case: fresh namespace, control plane, VM; everything torn down before returning.
pub fn run_case(art: &Artifacts, case: &Case, work: &Path) -> io::Result<Outcome> {
    std::fs::create_dir_all(work)?;
    let ns = Netns::create()?;
    let token = random_token();
    let cp = ControlPlane::start(&ns, &art.testcp, &work.join("cp"), &token, &case.cp_args)?;
    let pin = if case.right_pin {
        cp.pin.clone()
    } else {
        WRONG_PIN.to_string()
    };
    let mut extra = case.extra_append.clone();
    let sntp = if case.sntp {
        let s = SntpServer::start(&ns, &art.testcp, &work.join("sntp"))?;
        extra.push(format!("kubejoin.ntp={}", s.server));
        Some(s)
    } else {
        None
    };
    let disk = if case.switch_root {
        let checker = art
            .checker
            .as_ref()
            .ok_or_else(|| io::Error::other("the switch-root case needs KUBEJOIN_VM_CHECKER"))?;
        extra.extend([
            "root=/dev/vda".to_string(),
            "rootfstype=ext4".into(),
            "init=/sbin/init".into(),
        ]);
        Some(make_root_disk(checker, work)?)
    } else {
        None
    };
    let endpoint = case.endpoint.clone().unwrap_or_else(|| cp.endpoint.clone());
    let (mut append, config_drive) = if case.config_drive {
        let content = drive_content(&endpoint, &token, &pin, &case.node_name);
        (
            pid1_append_line(&[], &extra),
            Some(make_config_drive(&content, work)?),
        )
    } else {
        (
            append_line(&endpoint, &token, &pin, &case.node_name, &extra),
            None,
        )
    };
    if case.switch_root {
        append = append.replace("kubejoin.handoff=exec", "kubejoin.handoff=switch-root");
    }
    if let Some((policy, timeout)) = &case.policy {
        append = append
            .replace(
                "kubejoin.on-failure=poweroff",
                &format!("kubejoin.on-failure={policy}"),
            )
            .replace(
                "kubejoin.timeout=90s",
                &format!("kubejoin.timeout={timeout}"),
            );
    }
    let spec = VmSpec {
        kernel: art.kernel.clone(),
        initrd: art.initrd.clone(),
        append: append.clone(),
        memory_mb: 512,
        timeout: case.timeout,
        serial_log: work.join("console.log"),
        disk,
        config_drive,
        rtc_base: case.rtc_base.clone(),
    };
    let run = boot(Some(&ns), &spec)?;
    let requests = cp.requests();
    let netns = ns.name.clone();
    drop(sntp);
    drop(cp);
    drop(ns);
    Ok(Outcome {
        run,
        requests,
        token,
        pin,
        append,
        work: work.to_path_buf(),
        netns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_bootstrap_form() {
        let t = random_token();
        let (id, secret) = t.split_once('.').unwrap();
        assert_eq!((id.len(), secret.len()), (6, 16));
        assert!(t
            .chars()
            .all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(random_token(), t);
    }

    #[test]
    fn a_file_timeline_is_read_from_the_checkers_copy() {
        let c = Console(
            "kubejoin: info: timeline: handoff 700ms after /init (mounts 4ms); all of it in /run/kubejoin/timeline.json\n\
             kubejoin-check: timeline-file {\"outcome\":\"switch-root\",\"init_to_end_ms\":700,\"phases\":[]}\n\
             kubejoin-check: PASS x\n"
                .into(),
        );
        assert_eq!(c.timeline().unwrap()["outcome"], "switch-root");
        assert_eq!(c.checks(), [(true, "x".to_string())]);
        // kubejoin's own line wins when both are there.
        let both = Console(format!(
            "kubejoin: timeline {{\"outcome\":\"handoff\"}}\n{}",
            c.0
        ));
        assert_eq!(both.timeline().unwrap()["outcome"], "handoff");
        assert_eq!(Console::default().timeline(), None);
    }

    #[test]
    fn reads_a_console() {
        let c = Console(
            "[    0.000000] Linux version 6.1\n\
             kubejoin: info: [mounts] start\n\
             [    4.100000] kubejoin: error: boom\n\
             kubejoin: timeline {\"outcome\":\"handoff\",\"kernel_to_init_ms\":3900,\"init_to_end_ms\":1200,\"phases\":[{\"phase\":\"mounts\",\"start_ms\":1,\"end_ms\":5,\"duration_ms\":4,\"outcome\":\"ok\"}]}\n\
             kubejoin-check: PASS client certificate CN=system:node:vm-1\n\
             kubejoin-check: FAIL sysctl net.ipv4.ip_forward=0\n\
             kubejoin-check: RESULT FAIL\n"
                .into(),
        );
        assert_eq!(c.kubejoin_lines().len(), 3);
        assert!(c.logged("error: boom"));
        assert_eq!(c.timeline().unwrap()["kernel_to_init_ms"], 3900);
        assert_eq!(
            c.phases(),
            vec![("mounts".to_string(), 4, "ok".to_string())]
        );
        assert_eq!(
            c.checks(),
            vec![
                (true, "client certificate CN=system:node:vm-1".to_string()),
                (false, "sysctl net.ipv4.ip_forward=0".to_string())
            ]
        );
        assert_eq!(c.check_result(), Some(false));
        assert_eq!(Console::default().check_result(), None);
    }

    #[test]
    fn the_command_lines() {
        let a = append_line(
            "10.0.2.2:6443",
            "abcdef.0123456789abcdef",
            WRONG_PIN,
            "vm-1",
            &["kubejoin.debug".into()],
        );
        assert!(a.starts_with("console=ttyS0 quiet panic=-1 kubejoin.endpoint=10.0.2.2:6443 "));
        assert!(a.ends_with(" kubejoin.timeline=console kubejoin.debug"));
        let own = append_line(
            "10.0.2.2:6443",
            "abcdef.0123456789abcdef",
            WRONG_PIN,
            "vm-1",
            &["kubejoin.timeline=file".into()],
        );
        assert!(
            own.ends_with(" kubejoin.timeout=90s kubejoin.timeline=file"),
            "{own}"
        );
        let spec = VmSpec {
            kernel: "/k".into(),
            initrd: "/i".into(),
            append: a,
            memory_mb: 512,
            timeout: Duration::from_secs(1),
            serial_log: "/tmp/s.log".into(),
            disk: Some("/tmp/root.img".into()),
            config_drive: Some("/tmp/config-drive.iso".into()),
            rtc_base: Some("2015-01-01".into()),
        };
        let q = qemu_args(&spec, "tcg");
        let s = q.join(" ");
        assert!(s.contains("-no-reboot"));
        assert!(s.contains(&format!("-machine {},accel=tcg", machine())));
        assert!(s.contains("-netdev user,id=n0 -device virtio-net-pci,netdev=n0"));
        assert_eq!(s.contains("-device virtio-rng-pci"), rng() == Rng::Virtio);
        assert_eq!(s.contains("-cpu qemu64,+rdrand"), rng() == Rng::Cpu, "{s}");
        assert!(s.contains("-serial file:/tmp/s.log"));
        assert!(!s.contains("-cpu host"));
        let k = qemu_args(&spec, "kvm").join(" ");
        assert!(k.contains("-cpu host") && !k.contains("qemu64"), "{k}");
        assert!(s.contains("-rtc base=2015-01-01"));
        assert!(s.contains(&format!("-smp {} ", smp())));
        assert!(s.contains(
            "-drive file=/tmp/root.img,format=raw,if=virtio -drive file=/tmp/config-drive.iso,format=raw,if=virtio,readonly=on"
        ));
        let p = pid1_append_line(&[], &[]);
        assert!(
            !p.contains("kubejoin.endpoint") && !p.contains("kubejoin.token"),
            "{p}"
        );
        assert!(p.contains("kubejoin.on-failure=poweroff"), "{p}");
    }

    #[test]
    fn the_config_drive_content() {
        let d = drive_content(
            "10.0.2.2:6443",
            "abcdef.0123456789abcdef",
            WRONG_PIN,
            "kjvm-drive",
        );
        let docs = d.user_data.split("\n---\n").collect::<Vec<_>>();
        assert_eq!(docs.len(), 2, "{}", d.user_data);
        assert!(
            docs[0].contains("kind: JoinConfiguration\n"),
            "{}",
            d.user_data
        );
        assert!(
            docs[0].contains(
                "    apiServerEndpoint: \"10.0.2.2:6443\"\n    token: abcdef.0123456789abcdef\n"
            ),
            "{}",
            d.user_data
        );
        assert!(
            docs[1].ends_with("sysctls:\n  vm.max_map_count: 262144\n"),
            "{}",
            d.user_data
        );
        let m: Value = serde_json::from_str(&d.meta_data).unwrap();
        assert_eq!(
            (m["hostname"].as_str(), m["name"].as_str()),
            (Some("kjvm-drive"), Some("kjvm-drive"))
        );
        assert!(m["uuid"].is_string());
    }
}
