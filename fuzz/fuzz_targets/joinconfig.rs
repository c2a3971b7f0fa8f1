//! kubeadm JoinConfiguration / KubejoinConfiguration files.
//! The body and its input format: `kubejoin::fuzzing::joinconfig` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::joinconfig(data));
