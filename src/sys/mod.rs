//! All kernel-facing effects behind one seam (youki's syscall seam).
//!
//! [`System`] bundles the narrow parts every effect belongs to: [`Exec`] (exec, run a program,
//! hostname), [`Host`] (modules, sysctls, swap, identity, the CRI socket), [`Init`] (PID 1:
//! mounts, console, reaping, power, switch-root, exit), [`Net`] (links, addresses, routes, the
//! DHCP socket), [`Drive`] (the config drive: block devices, mount, unmount) and [`Clock`] (the
//! system clock). Each part has a real implementation, one line per call where it can be
//! (`Real…`), and a recording fake of the same name scheme (`Recording…`) that records typed
//! calls (`…Call`), answers from its configuration and can inject failures, so the logic around
//! these calls is unit-tested without root and without replacing the test process. One
//! `System` is made at the top (`main` through `app::run`, or PID 1) and handed down; never
//! chosen with `cfg!(test)`. Files kubejoin writes on the node go through [`crate::fs`], not here.
//!
//! `unsafe` is allowed in this folder only, with a `// SAFETY:` note above each use.

pub mod clock;
pub mod drive;
pub mod entropy;
pub mod exec;
pub mod host;
pub mod init;
pub mod net;
mod rtnl;

pub use clock::{Clock, RealClock, RecordingClock};
pub use drive::{Drive, RealDrive, RecordingDrive};
pub use exec::{Exec, ExecCall, RealExec, RecordingExec};
pub use host::{Host, RealHost, RecordingHost};
pub use init::{Init, RealInit, RecordingInit};
pub use net::{Net, RealNet, RecordingNet};

use std::sync::Arc;

/// The one seam: every part, made once at the top (`main` for a command, [`crate::init`] for
/// PID 1) and handed down. Cloning shares the parts (they are behind `Arc`s), so a recording
/// fake kept by a test sees every call made through the `System` it was put in.
#[derive(Debug, Clone)]
pub struct System {
    pub exec: Arc<dyn Exec>,
    pub host: Arc<dyn Host>,
    pub init: Arc<dyn Init>,
    pub net: Arc<dyn Net>,
    pub drive: Arc<dyn Drive>,
    pub clock: Arc<dyn Clock>,
}

impl System {
    /// This machine: every part real (the network's `/sys/class/net` read under `/`).
    pub fn real() -> Self {
        Self {
            exec: Arc::new(RealExec),
            host: Arc::new(RealHost),
            init: Arc::new(RealInit),
            net: Arc::new(RealNet::new(crate::fs::root::Root::new("/"))),
            drive: Arc::new(RealDrive),
            clock: clock::node_clock(),
        }
    }

    /// Every part a recording fake of an empty machine named `hostname` (kernel `6.1.0`, no
    /// links, no files, clock at the Unix epoch); tests replace the parts they look at with
    /// `with_…`, keeping their own handle on the fake.
    pub fn recording(hostname: &str) -> Self {
        Self {
            exec: Arc::new(RecordingExec::new(hostname)),
            host: Arc::new(RecordingHost::new("6.1.0")),
            init: Arc::new(RecordingInit::new()),
            net: Arc::new(RecordingNet::new()),
            drive: Arc::new(RecordingDrive::new()),
            clock: Arc::new(RecordingClock::at(crate::time::wall::WallTime::UNIX_EPOCH)),
        }
    }

    pub fn with_exec(mut self, exec: Arc<dyn Exec>) -> Self {
        self.exec = exec;
        self
    }

    pub fn with_host(mut self, host: Arc<dyn Host>) -> Self {
        self.host = host;
        self
    }

    pub fn with_init(mut self, init: Arc<dyn Init>) -> Self {
        self.init = init;
        self
    }

    pub fn with_net(mut self, net: Arc<dyn Net>) -> Self {
        self.net = net;
        self
    }

    pub fn with_drive(mut self, drive: Arc<dyn Drive>) -> Self {
        self.drive = drive;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}
