//! The bootstrap signer's detached JWS (spec §3.1): HS256 over the raw `kubeconfig` bytes, keyed
//! with the 16-character token secret, header exactly `{"alg":"HS256","kid":"<id>"}`, payload
//! removed from the compact form.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `ComputeDetachedSignature(content, tokenID, tokenSecret)`: `<b64url(header)>..<b64url(sig)>`.
pub fn compute_detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    // go-jose marshals the protected header with sorted keys and no whitespace.
    let header = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, json_escape(token_id));
    let header_b64 = URL_SAFE_NO_PAD.encode(header.as_bytes());
    let signing_input = format!(
        "{header_b64}.{}",
        URL_SAFE_NO_PAD.encode(content.as_bytes())
    );
    // HMAC accepts keys of any length, the empty key included; the Err arm cannot happen.
    let signature = match Hmac::<Sha256>::new_from_slice(token_secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    };
    format!("{header_b64}..{}", URL_SAFE_NO_PAD.encode(signature))
}

fn json_escape(s: &str) -> String {
    serde_json::to_string(s)
        .map(|q| q.trim_matches('"').to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &str = "Hello from the other side. I must have called a thousand times.";

    #[test]
    fn upstream_vectors() {
        // spec §11.1, cluster-bootstrap token/jws/jws_test.go
        assert_eq!(
            compute_detached_signature(CONTENT, "joshua", "my voice is my passcode"),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"
        );
        assert_eq!(
            compute_detached_signature("", "joshua", "my voice is my passcode"),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"
        );
        assert_eq!(
            compute_detached_signature(CONTENT, "joshua", ""),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8"
        );
    }

    #[test]
    fn derived_vector() {
        // spec §11.5
        assert_eq!(
            compute_detached_signature("hello", "abcdef", "0123456789abcdef"),
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..MxsnbCjBaYzcbNIFa06F-wuF9LX26rhMlrL4zA1511s"
        );
    }

    #[test]
    fn signs_the_captured_cluster_info_like_the_real_signer() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../fixtures/apiserver/cluster-info.anonymous.json"
        ))
        .unwrap();
        let kubeconfig = fixture["data"]["kubeconfig"].as_str().unwrap();
        let expected = fixture["data"]["jws-kubeconfig-abcdef"].as_str().unwrap();
        assert_eq!(
            compute_detached_signature(kubeconfig, "abcdef", "0123456789abcdef"),
            expected
        );
    }
}
