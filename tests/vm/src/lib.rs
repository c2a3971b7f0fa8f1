//! The VM end-to-end test of kubejoin.
//!
//! - [`check`]: the guest side, `kubejoin-vmcheck`, installed as `/usr/bin/kubelet` in the test
//!   initramfs.
//! - [`harness`]: the host side: a network namespace of our own, the test control plane on its
//!   loopback, qemu (user networking, so the guest reaches the namespace's `127.0.0.1:PORT` at
//!   `10.0.2.2:PORT`) booting the kernel with kubejoin as `/init` and the join data on the
//!   kernel command line, and readers for what comes back: the serial console (kubejoin's log,
//!   its JSON timeline, the checker's PASS/FAIL lines) and the control plane's `requests.jsonl`.
//! - `cluster` (feature `real-cluster`, on by default): `scripts/demo --kubeconfig`: a
//!   short-lived bootstrap token and the CA pin of a real cluster.

pub mod check;
#[cfg(feature = "real-cluster")]
pub mod cluster;
pub mod harness;
