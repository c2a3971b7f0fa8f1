//! The kernel module index: modules.dep & co, name resolution, load order.
//! The body and its input format: `kubejoin::fuzzing::modules_dep` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::modules_dep(data));
