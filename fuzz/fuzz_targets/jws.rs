//! Detached JWS verification (`discovery::jws`): a signature verifies exactly when it is the
//! one the bootstrap signer computes (kubeadm compares the strings), for any content, token id
//! and secret; what the signer computes always verifies.
//!
//! Input: `signature \0 content \0 id \0 secret` (missing parts are empty).
#![no_main]

use kubejoin::discovery::jws::{compute_detached, verify_detached};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let sig = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let content = parts.next().unwrap_or_default();
    let id = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let secret = String::from_utf8_lossy(parts.next().unwrap_or_default());

    let expected = compute_detached(content, &id, &secret);
    // Shape: `<header>..<43 characters of signature>`, base64url without padding.
    let (header, mac) = expected.split_once("..").expect("detached form");
    assert_eq!(mac.len(), 43, "{expected}");
    assert!(!header.contains('.') && !header.contains('='));
    assert!(verify_detached(&expected, content, &id, &secret));
    assert_eq!(
        verify_detached(&sig, content, &id, &secret),
        *sig == *expected,
        "{sig:?} vs {expected:?}"
    );
    // Another secret never verifies what this one signed.
    let other = format!("{secret}x");
    assert!(!verify_detached(&expected, content, &id, &other));
});
