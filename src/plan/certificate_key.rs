//! The certificate key of `kubeadm join --control-plane --certificate-key`: 64 hex digits, a
//! secret. It lives in the plan (every source of join data validates it the same way); the
//! cipher that uses it is `crate::controlplane::certkey`.

use std::fmt;

/// The hex-decoded 32-byte certificate key. A secret: `Debug` and `Display` never show it and
/// nothing derived from it is printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateKey([u8; 32]);

/// Why a certificate key was refused. Never carries the key or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the certificate key is not 64 hexadecimal digits (it has {len} characters): use the key \
         `kubeadm init phase upload-certs --upload-certs` printed on an existing control plane"
    )]
    Length { len: usize },
    #[error(
        "the certificate key is not hexadecimal (character {position} is not 0-9 or a-f): use the \
         key `kubeadm init phase upload-certs --upload-certs` printed on an existing control plane"
    )]
    NotHex { position: usize },
}

impl CertificateKey {
    /// Parses the 64 hex digits kubeadm prints (either case, surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        if t.len() != 64 {
            return Err(KeyError::Length {
                len: t.chars().count(),
            });
        }
        if let Some(position) = t.bytes().position(|b| !b.is_ascii_hexdigit()) {
            return Err(KeyError::NotHex {
                position: position + 1,
            });
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(t, &mut key).map_err(|_| KeyError::NotHex { position: 1 })?;
        Ok(Self(key))
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key as kubeadm prints it (lowercase hex). Only for the test control plane and tests:
    /// kubejoin never prints it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw key, for the cipher in `controlplane::certkey` only.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateKey(<redacted>)")
    }
}

impl fmt::Display for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a certificate key file was refused. Never carries the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("reading the certificate key file {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the certificate key file {path} has mode {mode:04o}: a certificate key file must be \
         readable by its owner only; run `chmod 600 {path}`"
    )]
    Mode { path: std::path::PathBuf, mode: u32 },
    #[error("the certificate key file {path} does not hold one certificate key")]
    Content {
        path: std::path::PathBuf,
        #[source]
        source: KeyError,
    },
}

/// Reads a certificate key from `path` (`--certificate-key-file`, `kubejoin.certificate-key-file=`):
/// a regular file only its owner may read or write (`chmod 600`), holding the 64 hex digits and
/// at most a trailing newline, as for token files. `shown` is the path as the user wrote it.
pub fn read_key_file(
    path: &std::path::Path,
    shown: &std::path::Path,
) -> Result<CertificateKey, KeyFileError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let read_err = |source| KeyFileError::Read {
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
        return Err(KeyFileError::Mode {
            path: shown.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    CertificateKey::parse(&text).map_err(|source| KeyFileError::Content {
        path: shown.to_path_buf(),
        source,
    })
}
