//! The kernel's random pool: TLS (the handshake's random and key share) and the node's key need
//! it, and `getrandom(2)` blocks until the kernel has gathered enough entropy since boot.
//!
//! On real hardware that is immediate: the CPU's RDRAND/RDSEED (`random.trust_cpu`, on in
//! Debian's kernels) or a hypervisor's virtio-rng fill it before or just after `/init` starts.
//! A machine with neither (an emulated CPU without RDRAND, a VM without an RNG device) waits
//! for the kernel's jitter entropy: it credits about one bit per timer tick to a caller blocked
//! in `getrandom`, so 256 bits take about 1 s at `HZ=250` (measured: 1.05 s in the VM test's
//! emulated guest). kubejoin cannot make that wait shorter without weakening its keys; it loads
//! the RNG drivers first (host preparation), and makes the wait visible in the timeline.

use std::io;

/// Whether the kernel's random pool is initialised (`getrandom` would not block).
pub fn ready() -> bool {
    let mut b = [0u8; 1];
    !matches!(
        rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::NONBLOCK),
        Err(rustix::io::Errno::AGAIN)
    )
}

/// Blocks until the kernel's random pool is initialised (the wait that makes the kernel gather
/// jitter entropy when no hardware source is there).
pub fn wait() -> io::Result<()> {
    let mut b = [0u8; 1];
    loop {
        match rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_booted_machine_has_its_random_pool() {
        // Any machine running the tests has been up long enough.
        assert!(super::ready());
        super::wait().unwrap();
    }
}
