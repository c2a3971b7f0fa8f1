//! PID 1 mode: early mounts as data, kmsg logging, reaping, failure policy, the boot pipeline.
