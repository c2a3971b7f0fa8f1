//! The DHCPv4 client state machine fed hostile replies. The body and its input format:
//! `kubejoin::fuzzing::dhcp` (src/fuzzing.rs), which tests/fuzz_smoke.rs also runs on stable.
//!
//! This target found that dhcproto 0.15 panicked on some option lengths (option 152 with length
//! 0, kept as a seed); `net::dhcp` now has its own codec that cannot panic. libFuzzer's panic
//! hook aborts at the first panic, caught or not, so the target installs its own hook while the
//! body runs and fails only on a panic that the body itself did not survive.
#![no_main]

use std::cell::RefCell;
use std::panic::{catch_unwind, set_hook, take_hook};

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let fuzzer_hook = take_hook();
    set_hook(Box::new(|info| {
        LAST_PANIC.with(|p| *p.borrow_mut() = info.to_string());
    }));
    let survived = catch_unwind(|| kubejoin::fuzzing::dhcp(data)).is_ok();
    set_hook(fuzzer_hook);
    if !survived {
        // Raised again under libFuzzer's hook: a crash, with the original message.
        panic!("{}", LAST_PANIC.with(|p| p.borrow().clone()));
    }
});
