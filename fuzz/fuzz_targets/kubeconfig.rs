//! Kubeconfig parsing and rendering (render ∘ parse is idempotent).
//! The body and its input format: `kubejoin::fuzzing::kubeconfig` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::kubeconfig(data));
