//! `kube-system/kubeadm-certs` as kubeadm's `upload-certs` writes it, implemented here
//! independently of kubejoin's own codec so that the join is checked against a second reading
//! of the sources (kubernetes/kubernetes `cmd/kubeadm/app/phases/copycerts/copycerts.go` and
//! `cmd/kubeadm/app/util/crypto/crypto.go`, read; the cipher is also checked against the real
//! v1.24 capture in `tests/fixtures/kubeadm-v1.24/kubeadm-certs-vectors.json`):
//!
//! - The certificate key is 32 random bytes shown as 64 hex digits (`CertificateKeySize` = 32).
//! - Every entry is AES-256-GCM under the hex-decoded key with a fresh random 12-byte nonce and
//!   no additional data; the stored value is `nonce ‖ ciphertext ‖ tag(16)` (Go's
//!   `gcm.Seal(nonce, nonce, data, nil)`).
//! - Entry names are the file names under `certificatesDir` with `/` replaced by `-`:
//!   `ca.crt`, `ca.key`, `front-proxy-ca.crt`, `front-proxy-ca.key`, `sa.key`, `sa.pub`, and
//!   `etcd-ca.crt`/`etcd-ca.key` for stacked etcd, or `external-etcd-ca.crt`,
//!   `external-etcd.crt`, `external-etcd.key` (the files `etcd.external.caFile`/`certFile`/
//!   `keyFile` name) for external etcd. A file that does not exist is uploaded as an empty
//!   entry (plain-http external etcd has none of the three).
//! - The Secret is `Opaque`, owned (controller reference) by a bootstrap-token Secret that
//!   kubeadm creates for it with `DefaultCertTokenDuration` = 2 h, no usages and the
//!   description "Proxy for managing TTL for the kubeadm-certs secret": when the token cleaner
//!   deletes the expired token, the garbage collector deletes the Secret.
//! - Role `kubeadm:kubeadm-certs` (get on `secrets`, resourceNames `kubeadm-certs`) and its
//!   RoleBinding to the group `system:bootstrappers:kubeadm:default-node-token`, both in
//!   kube-system, created (or updated) by every upload.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use std::time::Duration;

/// `kubeadmconstants.KubeadmCertsSecret`.
pub const SECRET_NAME: &str = "kubeadm-certs";
/// `kubeadmconstants.KubeadmCertsClusterRoleName` (a Role, whatever the constant says).
pub const ROLE_NAME: &str = "kubeadm:kubeadm-certs";
/// `constants.DefaultCertTokenDuration`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2 * 3600);
/// The description kubeadm gives the token that owns the Secret.
pub const PROXY_TOKEN_DESCRIPTION: &str = "Proxy for managing TTL for the kubeadm-certs secret";
/// The GCM tag length.
pub const TAG_LEN: usize = 16;

/// A certificate key (32 bytes). Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateKey([u8; 32]);

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateKey(<redacted>)")
    }
}

impl CertificateKey {
    /// 64 hex digits (either case), as `--certificate-key` takes it. The error never repeats
    /// the input.
    pub fn parse(hex_text: &str) -> Result<CertificateKey, String> {
        let t = hex_text.trim();
        if t.len() != 64 {
            return Err(format!(
                "a certificate key is 64 hex digits (32 bytes), this one has {} characters",
                t.len()
            ));
        }
        let bytes = hex::decode(t)
            .map_err(|_| "a certificate key is 64 hex digits: it holds a non-hex character")?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(CertificateKey(key))
    }

    /// A fresh random key, as `kubeadm init --upload-certs` makes one.
    pub fn generate() -> CertificateKey {
        let mut key = [0u8; 32];
        crate::util::random_bytes(&mut key);
        CertificateKey(key)
    }

    /// The 64 lowercase hex digits kubeadm prints.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn aead(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .ok()
            .map(LessSafeKey::new)
    }

    /// `nonce ‖ ciphertext ‖ tag` with the given nonce (known-answer tests only: a nonce must
    /// never be used twice with one key).
    pub fn seal_with_nonce(&self, nonce: [u8; NONCE_LEN], plain: &[u8]) -> Option<Vec<u8>> {
        let key = self.aead()?;
        let mut in_out = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut in_out,
        )
        .ok()?;
        let mut out = Vec::with_capacity(NONCE_LEN + in_out.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Some(out)
    }

    /// kubeadm's `EncryptBytes`: a fresh random nonce per value.
    pub fn seal(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::util::random_bytes(&mut nonce);
        self.seal_with_nonce(nonce, plain)
    }

    /// kubeadm's `DecryptBytes`; `None` when the value is too short or the tag does not match.
    pub fn open(&self, value: &[u8]) -> Option<Vec<u8>> {
        if value.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let key = self.aead()?;
        let (nonce, sealed) = value.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::empty(), &mut in_out).ok()?;
        Some(plain.to_vec())
    }
}

/// The entries of the Secret for this cluster, in kubeadm's `certsToTransfer` names: each is
/// (entry name, plaintext); an absent file is an empty plaintext.
pub(crate) fn entries(files: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(name, content)| (name.replace('/', "-"), content.clone()))
        .collect()
}

/// Encrypts every non-empty entry; empty ones stay empty, as kubeadm uploads a missing file.
pub(crate) fn seal_entries(
    key: &CertificateKey,
    entries: &[(String, Vec<u8>)],
) -> Option<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, plain) in entries {
        let value = if plain.is_empty() {
            Vec::new()
        } else {
            key.seal(plain)?
        };
        out.insert(name.clone(), value);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../fixtures/kubeadm-v1.24/kubeadm-certs-vectors.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_captured_secret_decrypts_and_re_encrypts_byte_for_byte() {
        let v = vectors();
        let key = CertificateKey::parse(v["certificateKey"].as_str().unwrap()).unwrap();
        let mut checked = 0;
        for (name, e) in v["entries"].as_object().unwrap() {
            let value = STANDARD
                .decode(e["secretValueBase64"].as_str().unwrap())
                .unwrap();
            let plain = e["plaintext"].as_str().unwrap().as_bytes();
            if value.is_empty() {
                assert!(plain.is_empty(), "{name}");
                continue;
            }
            assert_eq!(key.open(&value).unwrap(), plain, "{name}");
            let nonce: [u8; NONCE_LEN] = value[..NONCE_LEN].try_into().unwrap();
            assert_eq!(key.seal_with_nonce(nonce, plain).unwrap(), value, "{name}");
            checked += 1;
        }
        assert_eq!(checked, 3);
    }

    #[test]
    fn tampering_or_another_key_fails() {
        let key = CertificateKey::generate();
        let sealed = key.seal(b"-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 28 + TAG_LEN);
        assert_eq!(key.open(&sealed).unwrap(), b"-----BEGIN CERTIFICATE-----\n");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(key.open(&bad).is_none());
        assert!(CertificateKey::generate().open(&sealed).is_none());
        assert!(key.open(&sealed[..NONCE_LEN + TAG_LEN - 1]).is_none());
        // Two seals of one plaintext differ: a fresh nonce each time.
        assert_ne!(key.seal(b"x").unwrap(), key.seal(b"x").unwrap());
    }

    #[test]
    fn keys_are_64_hex_digits_and_never_echoed() {
        let hex_key = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
        let k = CertificateKey::parse(&hex_key.to_uppercase()).unwrap();
        assert_eq!(k.to_hex(), hex_key);
        assert!(!format!("{k:?}").contains("a0be"));
        let e = CertificateKey::parse(&hex_key[..63]).unwrap_err();
        assert!(!e.contains(&hex_key[..63]), "{e}");
        let e = CertificateKey::parse(&format!("{}zz", &hex_key[..62])).unwrap_err();
        assert!(!e.contains("a0be"), "{e}");
    }

    #[test]
    fn entry_names_use_dashes() {
        let e = entries(&[
            ("etcd/ca.crt".into(), b"x".to_vec()),
            ("external-etcd.key".into(), Vec::new()),
        ]);
        assert_eq!(e[0].0, "etcd-ca.crt");
        assert_eq!(e[1].0, "external-etcd.key");
    }
}
