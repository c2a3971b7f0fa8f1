//! Detached HS256 JWS, as the bootstrap signer writes into `cluster-info` (spec §3.1).
//!
//! The signature is `BASE64URL(header) ".." BASE64URL(HMAC-SHA256(secret, signing input))` where
//! the header is exactly `{"alg":"HS256","kid":"<token id>"}` and the signing input is
//! `BASE64URL(header) "." BASE64URL(content)`. The content is the raw `kubeconfig` string of the
//! ConfigMap: no canonicalisation, so any re-serialisation would break the signature.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The protected header, serialised byte for byte as go-jose does: sorted keys, no whitespace,
/// and Go's JSON string escaping (which also escapes `<`, `>`, `&`, U+2028 and U+2029).
fn header(id: &str) -> String {
    let mut out = String::from(r#"{"alg":"HS256","kid":""#);
    for c in id.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("\"}");
    out
}

/// Computes the detached JWS (`<header>..<signature>`) of `content` for token `id`/`secret`.
///
/// The HMAC key is the secret half of the token only, as ASCII bytes. An empty secret is
/// accepted (the upstream vectors include one); the token format is checked elsewhere.
pub fn compute_detached(content: &[u8], id: &str, secret: &str) -> String {
    let protected = B64URL.encode(header(id));
    let signing_input = format!("{protected}.{}", B64URL.encode(content));
    // HMAC accepts keys of any length, so this cannot fail; fall back to an impossible
    // signature rather than panic if it ever did.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(signing_input.as_bytes());
    let sig = B64URL.encode(mac.finalize().into_bytes());
    format!("{protected}..{sig}")
}

/// Whether `sig` is the detached JWS of `content` for `id`/`secret`.
///
/// Recomputes the signature and compares the whole string in constant time (kubeadm compares
/// with `==`; timing must not leak how much of a forged signature was right).
pub fn verify_detached(sig: &str, content: &[u8], id: &str, secret: &str) -> bool {
    let expected = compute_detached(content, id, secret);
    if expected.is_empty() {
        return false;
    }
    bool::from(expected.as_bytes().ct_eq(sig.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec §11.1: cluster-bootstrap jws_test.go (upstream).
    const CONTENT: &str = "Hello from the other side. I must have called a thousand times.";
    const SECRET: &str = "my voice is my passcode";
    const ID: &str = "joshua";
    const SIG: &str =
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8";

    #[test]
    fn upstream_vectors() {
        assert_eq!(compute_detached(CONTENT.as_bytes(), ID, SECRET), SIG);
        assert_eq!(
            compute_detached(b"", ID, SECRET),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"
        );
        assert_eq!(
            compute_detached(CONTENT.as_bytes(), ID, ""),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8"
        );
        assert!(verify_detached(SIG, CONTENT.as_bytes(), ID, SECRET));
        assert!(!verify_detached(
            &format!("{SIG}foo"),
            CONTENT.as_bytes(),
            ID,
            SECRET
        ));
    }

    #[test]
    fn header_is_byte_exact() {
        assert_eq!(header("joshua"), r#"{"alg":"HS256","kid":"joshua"}"#);
        assert_eq!(
            B64URL.encode(header("joshua")),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9"
        );
        assert_eq!(header("a<b\"c"), r#"{"alg":"HS256","kid":"a\u003cb\"c"}"#);
    }

    #[test]
    fn small_derived_vector() {
        // spec §11.5 (derived independently).
        let sig =
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..MxsnbCjBaYzcbNIFa06F-wuF9LX26rhMlrL4zA1511s";
        assert_eq!(
            compute_detached(b"hello", "abcdef", "0123456789abcdef"),
            sig
        );
        assert!(verify_detached(sig, b"hello", "abcdef", "0123456789abcdef"));
        assert!(!verify_detached(
            sig,
            b"hello!",
            "abcdef",
            "0123456789abcdef"
        ));
        assert!(!verify_detached(
            sig,
            b"hello",
            "abcdeg",
            "0123456789abcdef"
        ));
        assert!(!verify_detached(
            sig,
            b"hello",
            "abcdef",
            "0123456789abcdee"
        ));
        assert!(!verify_detached("", b"hello", "abcdef", "0123456789abcdef"));
    }

    #[test]
    fn token_test_expected_kubeconfig_vector() {
        // spec §11.3: signature derived over the 1686 upstream bytes with token 123456.abcdef1234567890.
        let kc =
            include_bytes!("../../tests/fixtures/upstream/token-test-expected-kubeconfig.yaml");
        assert_eq!(kc.len(), 1686);
        assert_eq!(
            compute_detached(kc, "123456", "abcdef1234567890"),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6IjEyMzQ1NiJ9..ULkT4gQHyrWDuzDzcZQH9Ep0vBc8i1iRZXHQUF6otRo"
        );
        // The trailing newline is part of the signed content.
        let sig = compute_detached(kc, "123456", "abcdef1234567890");
        assert!(!verify_detached(
            &sig,
            &kc[..kc.len() - 1],
            "123456",
            "abcdef1234567890"
        ));
    }

    #[test]
    fn dry_run_fixture_vector() {
        // spec §11.4: kubeadm dry-run cluster-info, token abcdef.abcdef0123456789.
        let kc =
            include_bytes!("../../tests/fixtures/upstream/dryrun-cluster-info-kubeconfig.yaml");
        assert_eq!(kc.len(), 1671);
        let sig =
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..wUZ0q9o0VK1RWFptmSBOEem2bXHWrHyxrposHg0mb1w";
        assert_eq!(compute_detached(kc, "abcdef", "abcdef0123456789"), sig);
        assert!(verify_detached(sig, kc, "abcdef", "abcdef0123456789"));
    }

    #[test]
    fn real_apiserver_capture() {
        // cluster-info captured from kube-apiserver v1.28.7, token abcdef.0123456789abcdef.
        let json = include_str!("../../tests/fixtures/apiserver/cluster-info.anonymous.json");
        let cm: serde_json::Value = serde_json::from_str(json).unwrap();
        let kc = cm["data"]["kubeconfig"].as_str().unwrap();
        let sig = cm["data"]["jws-kubeconfig-abcdef"].as_str().unwrap();
        assert!(verify_detached(
            sig,
            kc.as_bytes(),
            "abcdef",
            "0123456789abcdef"
        ));
        assert_eq!(
            compute_detached(kc.as_bytes(), "abcdef", "0123456789abcdef"),
            sig
        );
        assert!(!verify_detached(
            sig,
            kc.as_bytes(),
            "abcdef",
            "0123456789abcdeg"
        ));
        let tampered = kc.replace("127.0.0.1", "127.0.0.2");
        assert!(!verify_detached(
            sig,
            tampered.as_bytes(),
            "abcdef",
            "0123456789abcdef"
        ));
    }
}
