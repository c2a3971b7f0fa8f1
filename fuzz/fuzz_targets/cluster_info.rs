//! What token discovery decides about an untrusted cluster-info answer (`discovery`): the body
//! decoding, the JWS, the signed kubeconfig, its CA bundle and the pin.
//!
//! First byte even: the rest is the answer's body (JSON). Odd: the rest is a kubeconfig, which
//! the target signs with the token itself, so that the fuzzer gets past the JWS into the
//! kubeconfig, PEM and pin checks.
#![no_main]

use kubejoin::discovery::token::{jws_key, verify_cluster_info, KUBECONFIG_KEY};
use kubejoin::discovery::{decode_cluster_info, jws, Error};
use kubejoin::plan::pin::PinSet;
use kubejoin::plan::token::BootstrapToken;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

/// The pin of tests/fixtures/apiserver/ca.crt (the CA in the seeds).
const PIN: &str = "sha256:0f90fc16ca8700dea6e04dd26e9925296f500cadb2dc8221bee9034bb5dec0c2";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(token) = BootstrapToken::parse("abcdef.0123456789abcdef") else {
        return;
    };
    let Ok(pins) = PinSet::parse(&[PIN]) else {
        return;
    };
    let Ok(no_pins) = PinSet::parse::<&str>(&[]) else {
        return;
    };
    let signed = mode % 2 == 1;
    let map = if signed {
        let text = String::from_utf8_lossy(rest).into_owned();
        let mut m = BTreeMap::new();
        m.insert(
            jws_key("abcdef"),
            jws::compute_detached(text.as_bytes(), "abcdef", "0123456789abcdef"),
        );
        m.insert(KUBECONFIG_KEY.to_string(), text);
        m
    } else {
        match decode_cluster_info(rest) {
            Ok(cm) => cm.data.unwrap_or_default(),
            Err(_) => return,
        }
    };
    for p in [&pins, &no_pins] {
        match verify_cluster_info(&map, "fuzz:6443", &token, p) {
            Ok(v) => {
                assert_eq!(Some(&v.kubeconfig), map.get(KUBECONFIG_KEY));
                assert!(!v.ca_der.is_empty());
                // Pins given: trusted only with a matching one; none: nothing matched.
                assert_eq!(v.matched_pin.is_some(), !p.is_empty());
                if let Some(m) = &v.matched_pin {
                    assert_eq!(m.to_string(), PIN);
                }
            }
            Err(e) => {
                if signed && !rest.is_empty() && std::str::from_utf8(rest).is_ok() {
                    // Signed with our token: the JWS itself cannot be the problem.
                    assert!(
                        !matches!(e, Error::BadJws { .. } | Error::EmptyJws { .. }),
                        "{e}"
                    );
                }
                // Never the secret in what a user would see.
                assert!(!format!("{e} {e:?}").contains("0123456789abcdef"));
            }
        }
    }
});
