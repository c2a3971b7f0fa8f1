//! Bootstrap tokens (`<id>.<secret>`), with the secret kept out of every Debug/Display.

use std::fmt;
use subtle::ConstantTimeEq;

/// A bootstrap token as kubeadm accepts it: `\A([a-z0-9]{6})\.([a-z0-9]{16})\z`.
///
/// `Debug` and `Display` print `abcdef.<redacted>`; the secret is only reachable through
/// [`BootstrapToken::secret`] and [`BootstrapToken::bearer`], for the JWS key and the
/// `Authorization` header.
#[derive(Clone)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

/// Why a string is not a bootstrap token. Never carries the input (it may hold a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bootstrap token is not of the form \"[a-z0-9]{{6}}.[a-z0-9]{{16}}\" (got {len} characters{dot})")]
    Malformed { len: usize, dot: &'static str },
}

/// Why a token file cannot be used. Never carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading the token file {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Group- or other-readable (or writable): the token would be exposed to local users.
    #[error(
        "the token file {path} has mode {mode:04o}: a bootstrap token file must be readable by its owner only; \
         run `chmod 600 {path}`"
    )]
    Mode { path: std::path::PathBuf, mode: u32 },
    /// Not exactly one token (a trailing newline is allowed).
    #[error("the token file {path} does not hold exactly one bootstrap token")]
    Content {
        path: std::path::PathBuf,
        #[source]
        source: TokenError,
    },
}

/// Larger than any token file (23 bytes and a newline); a bigger file is not a token file.
const MAX_TOKEN_FILE: u64 = 4096;

/// Reads a bootstrap token from `path` (`--token-file`, `kubejoin.token-file=`, `tokenFile`):
/// the file must be a regular file that no one but its owner may read or write (`chmod 600`),
/// holding one token and at most one trailing newline. `shown` is the path as the user wrote it
/// (`path` may be that path under `--root`).
pub fn read_token_file(
    path: &std::path::Path,
    shown: &std::path::Path,
) -> Result<BootstrapToken, TokenFileError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let read_err = |source| TokenFileError::Read {
        path: shown.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TokenFileError::Mode {
            path: shown.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    let one = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    BootstrapToken::parse(one).map_err(|source| TokenFileError::Content {
        path: shown.to_path_buf(),
        source,
    })
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl BootstrapToken {
    /// Parses `<id>.<secret>` with kubeadm's regex semantics.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let bytes = s.as_bytes();
        let ok = bytes.len() == 23
            && bytes[6] == b'.'
            && bytes[..6].iter().copied().all(is_token_char)
            && bytes[7..].iter().copied().all(is_token_char);
        if !ok {
            return Err(TokenError::Malformed {
                len: s.chars().count(),
                dot: if s.contains('.') { "" } else { ", no '.'" },
            });
        }
        Ok(Self {
            id: s[..6].to_string(),
            secret: s[7..].to_string(),
        })
    }

    /// The public token id (`abcdef`), safe to print.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret half. Only for computing the JWS and the bearer header; never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `<id>.<secret>`, for an `Authorization: Bearer` header. Never log it.
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// Constant-time equality of the whole token.
    pub fn ct_eq(&self, other: &BootstrapToken) -> bool {
        self.id == other.id && bool::from(self.secret.as_bytes().ct_eq(other.secret.as_bytes()))
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.<redacted>", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_token_and_redacts() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(t.id(), "abcdef");
        assert_eq!(t.secret(), "0123456789abcdef");
        assert_eq!(format!("{t}"), "abcdef.<redacted>");
        assert_eq!(format!("{t:?}"), "BootstrapToken(abcdef.<redacted>)");
        assert!(!format!("{t:?}{t}").contains("0123456789abcdef"));
    }

    #[test]
    fn rejects_malformed_tokens_without_echoing_them() {
        for bad in [
            "foo.bar",
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdefg",
            "abcde.f0123456789abcdef",
            "abcdef.0123456789abcdeé",
            "",
        ] {
            let e = BootstrapToken::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("0123456789"), "{e}");
        }
    }
}
