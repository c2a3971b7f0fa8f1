//! `kubejoin.config.sha256`: the pin of the first config document, checked before a byte of it
//! is parsed.

use sha2::{Digest, Sha256};
use std::fmt;

/// A `kubejoin.config.sha256` value that is no SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a SHA-256 hash (64 hex digits, optionally prefixed sha256:)")]
pub struct BadConfigPin {
    pub input: String,
}

/// The expected SHA-256 of the first config document (`kubejoin.config.sha256`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConfigPin(pub [u8; 32]);

impl ConfigPin {
    /// `<64 hex>` or `sha256:<64 hex>`, any case.
    pub fn parse(s: &str) -> Result<Self, BadConfigPin> {
        let hexpart = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .unwrap_or(s);
        let mut out = [0u8; 32];
        if hexpart.len() != 64
            || hex::decode_to_slice(hexpart.to_ascii_lowercase(), &mut out).is_err()
        {
            return Err(BadConfigPin {
                input: s.to_string(),
            });
        }
        Ok(Self(out))
    }

    /// Checks `bytes` against the pin. `what` names the document (path, URL, provider).
    pub fn verify(&self, what: &str, bytes: &[u8]) -> Result<(), ConfigPinMismatch> {
        let actual: [u8; 32] = Sha256::digest(bytes).into();
        if actual == self.0 {
            Ok(())
        } else {
            Err(ConfigPinMismatch {
                what: what.to_string(),
                expected: *self,
                actual: ConfigPin(actual),
            })
        }
    }
}

impl fmt::Display for ConfigPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ConfigPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A config document whose hash is not the pinned one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing config {what}: its hash is {actual} but kubejoin.config.sha256 pins {expected}")]
pub struct ConfigPinMismatch {
    pub what: String,
    pub expected: ConfigPin,
    pub actual: ConfigPin,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_pin_mismatch_names_both_hashes() {
        let pin = ConfigPin::parse(&format!("sha256:{}", "AB".repeat(32))).unwrap();
        let e = pin.verify("https://cfg/x.yaml", b"doc").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("refusing config https://cfg/x.yaml: its hash is sha256:"),
            "{e}"
        );
        assert!(
            e.to_string().ends_with(&format!(
                "but kubejoin.config.sha256 pins sha256:{}",
                "ab".repeat(32)
            )),
            "{e}"
        );
        let good = ConfigPin(Sha256::digest(b"doc").into());
        assert!(good.verify("x", b"doc").is_ok());
    }
}
