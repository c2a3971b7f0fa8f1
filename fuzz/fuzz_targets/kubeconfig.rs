//! Kubeconfig parsing and rendering (`discovery::kubeconfig`): never panics, and what it
//! renders it reads back to the same thing (render ∘ parse is idempotent).
#![no_main]

use kubejoin::discovery::kubeconfig::Kubeconfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Kubeconfig::parse(text) else {
        return;
    };
    let _ = cfg.cluster();
    let _ = cfg.current();
    let _ = cfg.current_user().map(|u| u.user.has_credentials());
    let once = cfg.render();
    let again = Kubeconfig::parse(&once).unwrap_or_else(|e| panic!("{e}\n{once}"));
    assert_eq!(again.render(), once);
});
