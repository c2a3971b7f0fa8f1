//! Detached JWS verification.
//! The body and its input format: `kubejoin::fuzzing::jws` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::jws(data));
