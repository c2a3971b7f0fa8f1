//! sysctl.d files and `sysctl.*` kernel parameters.
//! The body and its input format: `kubejoin::fuzzing::sysctl_d` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::sysctl_d(data));
