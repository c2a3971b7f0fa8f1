//! What token discovery decides about an untrusted cluster-info answer.
//! The body and its input format: `kubejoin::fuzzing::cluster_info` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::cluster_info(data));
