//! SNTP replies and the vote over offsets (src/clock/sntp.rs, src/clock/client.rs).
//! The body and its input format: `kubejoin::fuzzing::sntp` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::sntp(data));
