//! Cloud user-data decoding (base64, gzip with its size bound, cloud-config).
//! The body and its input format: `kubejoin::fuzzing::userdata` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::userdata(data));
