//! The certificate key of `kubeadm join --control-plane --certificate-key` and the cipher of
//! the `kubeadm-certs` Secret.
//!
//! Upstream (read; the file is the same from v1.15 to today): `cmd/kubeadm/app/util/crypto/crypto.go`
//! `EncryptBytes`/`DecryptBytes`: AES-GCM (`crypto/cipher.NewGCM`, 12-byte nonce, 16-byte tag)
//! with the hex-decoded key, the stored value being `nonce ‖ ciphertext ‖ tag` (`gcm.Seal(nonce,
//! nonce, data, nil)`), no additional data. `phases/copycerts/copycerts.go` `CreateCertificateKey`
//! makes the key from `constants.CertificateKeySize` = 32 random bytes, printed as 64 hex digits,
//! so the cipher is AES-256. kubeadm itself accepts any key `hex.DecodeString` and `aes.NewCipher`
//! accept (16/24/32 bytes); kubejoin insists on 32, the only size kubeadm ever prints.

use ring::aead;

/// Bytes of an AES-GCM nonce as Go's `cipher.NewGCM` uses it.
pub const NONCE_LEN: usize = 12;
/// Bytes of the GCM tag.
pub const TAG_LEN: usize = 16;

pub use crate::plan::certificate_key::{CertificateKey, KeyError};

/// ring's key; it refuses only keys of the wrong length, which the type rules out.
fn aead_key(key: &CertificateKey) -> Option<aead::LessSafeKey> {
    aead::UnboundKey::new(&aead::AES_256_GCM, key.bytes())
        .ok()
        .map(aead::LessSafeKey::new)
}

/// Why one entry could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Shorter than a nonce (kubeadm: "size of data is less than the nonce") or than nonce + tag.
    #[error("the value is {len} bytes, shorter than a nonce and a tag ({} bytes)", NONCE_LEN + TAG_LEN)]
    TooShort { len: usize },
    /// The tag did not verify: another key, or altered bytes.
    #[error("the authentication tag does not match")]
    TagMismatch,
}

/// Decrypts one `kubeadm-certs` value (`nonce ‖ ciphertext ‖ tag`).
pub fn decrypt(key: &CertificateKey, value: &[u8]) -> Result<Vec<u8>, DecryptError> {
    if value.len() < NONCE_LEN + TAG_LEN {
        return Err(DecryptError::TooShort { len: value.len() });
    }
    let (nonce, sealed) = value.split_at(NONCE_LEN);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    let mut buf = sealed.to_vec();
    let aead_key = aead_key(key).ok_or(DecryptError::TagMismatch)?;
    let plain_len = aead_key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(n),
            aead::Aad::empty(),
            &mut buf,
        )
        .map_err(|_| DecryptError::TagMismatch)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// Encrypts as kubeadm's `EncryptBytes` with the given nonce (the caller supplies fresh random
/// bytes; tests pass fixed ones for known answers).
pub fn encrypt_with_nonce(key: &CertificateKey, nonce: [u8; NONCE_LEN], plain: &[u8]) -> Vec<u8> {
    let Some(aead_key) = aead_key(key) else {
        return Vec::new();
    };
    let mut buf = plain.to_vec();
    let sealed = aead_key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::empty(),
        &mut buf,
    );
    // Sealing only fails for inputs longer than GCM's 64 GiB limit.
    if sealed.is_err() {
        return Vec::new();
    }
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Encrypts with a fresh random nonce from the system's CSPRNG.
pub fn encrypt(key: &CertificateKey, plain: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
    use ring::rand::SecureRandom as _;
    let mut nonce = [0u8; NONCE_LEN];
    ring::rand::SystemRandom::new().fill(&mut nonce)?;
    Ok(encrypt_with_nonce(key, nonce, plain))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";

    #[test]
    fn parses_64_hex_digits_in_either_case() {
        let k = CertificateKey::parse(KEY).unwrap();
        assert_eq!(k.to_hex(), KEY);
        assert_eq!(
            CertificateKey::parse(&format!(" {}\n", KEY.to_uppercase())).unwrap(),
            k
        );
    }

    #[test]
    fn refuses_malformed_keys_without_echoing_them() {
        let short = &KEY[..63];
        let e = CertificateKey::parse(short).unwrap_err();
        assert_eq!(e, KeyError::Length { len: 63 });
        assert!(!e.to_string().contains(short));
        assert!(e
            .to_string()
            .contains("kubeadm init phase upload-certs --upload-certs"));
        let mut bad = KEY.to_string();
        bad.replace_range(10..11, "g");
        let e = CertificateKey::parse(&bad).unwrap_err();
        assert_eq!(e, KeyError::NotHex { position: 11 });
        assert!(!e.to_string().contains(&bad));
        assert!(CertificateKey::parse("").is_err());
        assert!(CertificateKey::parse(&format!("{KEY}00")).is_err());
    }

    #[test]
    fn debug_and_display_redact() {
        let k = CertificateKey::parse(KEY).unwrap();
        for s in [format!("{k:?}"), format!("{k}"), format!("{:?}", Some(&k))] {
            assert!(!s.contains(KEY) && !s.contains(&KEY[..8]), "{s}");
            assert!(s.contains("redacted"));
        }
    }

    /// kubeadm's own crypto tests (`util/crypto/crypto_test.go`) are round trips with random
    /// keys: the right key decrypts, another key and an empty key do not. Reproduced here.
    #[test]
    fn round_trips_as_kubeadm_tests_do() {
        let data = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.";
        let k1 = CertificateKey::from_bytes([1; 32]);
        let k2 = CertificateKey::from_bytes([2; 32]);
        let sealed = encrypt(&k1, data).unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + data.len() + TAG_LEN);
        assert_eq!(decrypt(&k1, &sealed).unwrap(), data);
        assert_eq!(decrypt(&k2, &sealed), Err(DecryptError::TagMismatch));
        // Two encryptions differ (fresh nonces).
        assert_ne!(encrypt(&k1, data).unwrap(), sealed);
    }

    #[test]
    fn layout_is_nonce_ciphertext_tag() {
        let k = CertificateKey::from_bytes([7; 32]);
        let sealed = encrypt_with_nonce(&k, [9; 12], b"abc");
        assert_eq!(&sealed[..12], &[9; 12]);
        assert_eq!(sealed.len(), 12 + 3 + 16);
        // Flipping any byte (nonce, ciphertext or tag) fails the tag.
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert_eq!(decrypt(&k, &t), Err(DecryptError::TagMismatch), "byte {i}");
        }
        assert_eq!(
            decrypt(&k, &sealed[..27]),
            Err(DecryptError::TooShort { len: 27 })
        );
        // An empty plaintext still has nonce and tag.
        assert_eq!(
            decrypt(&k, &encrypt_with_nonce(&k, [0; 12], b"")).unwrap(),
            b""
        );
    }

    /// NIST GCM test vector (McGrew & Viega, test case 16 without AAD is not published; this is
    /// test case 14: AES-256, zero key, zero nonce, one zero block) in kubeadm's layout.
    #[test]
    fn known_answer_aes_256_gcm() {
        let k = CertificateKey::from_bytes([0; 32]);
        let sealed = encrypt_with_nonce(&k, [0; 12], &[0u8; 16]);
        assert_eq!(
            hex::encode(&sealed[12..]),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }
}
