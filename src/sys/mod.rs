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
