//! The kernel command line tokenizer (`source::cmdline`) and the host's argument splitter
//! (`host::cmdline`): never panic, and keep the tokenizer's documented promises.
#![no_main]

use kubejoin::host::cmdline as host;
use kubejoin::source::cmdline::{tokenize, Cmdline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match tokenize(data) {
        Ok(params) => {
            // Offsets point into the line, in order.
            let mut last = None;
            for p in &params {
                assert!(p.offset < data.len(), "{p:?}");
                assert!(last.is_none_or(|l| p.offset > l), "{params:?}");
                last = Some(p.offset);
                assert!(!p.key.contains('\0'));
            }
            // Deterministic.
            assert_eq!(tokenize(data).ok(), Some(params));
        }
        Err(_) => {
            // Only an unterminated quote or a NUL byte may fail it.
            assert!(data.contains(&b'"') || data.contains(&0), "{data:?}");
        }
    }
    if let Ok(c) = Cmdline::parse(data) {
        let _ = c.kubejoin();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let args = host::split(s);
        let _ = host::module_params(&args);
        let _ = host::sysctls(&args);
    }
});
