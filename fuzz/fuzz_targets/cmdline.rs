//! The kernel command line tokenizer and the host's argument splitter.
//! The body and its input format: `kubejoin::fuzzing::cmdline` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::cmdline(data));
