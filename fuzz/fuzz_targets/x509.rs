//! The DER reader of src/x509.rs (certificates, PKCS#10 requests, PEM blocks).
//! The body and its input format: `kubejoin::fuzzing::x509` (src/fuzzing.rs), which
//! tests/fuzz_smoke.rs also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubejoin::fuzzing::x509(data));
