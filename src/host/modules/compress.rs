//! Compressed kernel modules (`.ko.xz`, `.ko.zst`, `.ko.gz`).
//!
//! A kernel built with `CONFIG_MODULE_DECOMPRESS` names its one supported format in
//! `/sys/module/compression` and then accepts the compressed file itself through
//! `finit_module(…, MODULE_INIT_COMPRESSED_FILE)`. Otherwise the module must be decompressed in
//! memory and handed over with `init_module`. Decompression here is pure Rust (no liblzma/libzstd
//! in a static binary).

use std::fmt;
use std::io::{self, Read, Write};

/// `MODULE_INIT_COMPRESSED_FILE` from `<uapi/linux/module.h>` (Linux 5.17+); nix does not
/// name it yet.
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// Upper bound of a decompressed module. The largest in-tree modules are a few tens of MiB
/// (GPU drivers); anything past this is a corrupt or hostile file, not a module.
pub const MAX_MODULE_SIZE: u64 = 256 * 1024 * 1024;

/// A module file's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Compression {
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    /// From a module file name (`bridge.ko.zst`); `None` for a plain `.ko` or a non-module.
    pub fn from_path(path: &str) -> Option<Self> {
        if path.ends_with(".ko.xz") {
            Some(Self::Xz)
        } else if path.ends_with(".ko.zst") {
            Some(Self::Zstd)
        } else if path.ends_with(".ko.gz") {
            Some(Self::Gzip)
        } else {
            None
        }
    }

    /// From the magic bytes at the start of a file.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Self::Xz)
        } else if bytes.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Some(Self::Zstd)
        } else if bytes.starts_with(&[0x1F, 0x8B]) {
            Some(Self::Gzip)
        } else {
            None
        }
    }

    /// From the content of `/sys/module/compression` (`xz`, `zstd`, `gzip`).
    pub fn from_kernel_name(name: &str) -> Option<Self> {
        match name.trim() {
            "xz" => Some(Self::Xz),
            "zstd" => Some(Self::Zstd),
            "gzip" => Some(Self::Gzip),
            _ => None,
        }
    }

    /// The name the kernel uses in `/sys/module/compression`.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Self::Xz => "xz",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }

    /// The file-name suffix after `.ko`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Xz => ".xz",
            Self::Zstd => ".zst",
            Self::Gzip => ".gz",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kernel_name())
    }
}

/// Why a module image could not be decompressed. Displays as the reason only: the caller names
/// the module and its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    #[error("the file does not start with the {0} magic bytes")]
    Magic(Compression),
    /// The decoder's own reason (its error types differ per format; the text is kept).
    #[error("{reason}")]
    Decoder { format: Compression, reason: String },
    #[error("{0}")]
    Read(String),
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
}

impl DecompressError {
    fn decoder(format: Compression) -> impl Fn(String) -> Self {
        move |reason| Self::Decoder { format, reason }
    }
}

/// Decompresses a whole module image of format `c`, refusing output larger than `limit`.
pub fn decompress(c: Compression, data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    if Compression::sniff(data) != Some(c) {
        return Err(DecompressError::Magic(c));
    }
    let bad = DecompressError::decoder(c);
    let mut out = Limited {
        buf: Vec::with_capacity(data.len().saturating_mul(3)),
        limit,
    };
    match c {
        Compression::Xz => {
            let mut input = data;
            lzma_rs::xz_decompress(&mut input, &mut out).map_err(|e| bad(format!("{e:?}")))?;
        }
        Compression::Zstd => {
            let mut dec =
                ruzstd::decoding::StreamingDecoder::new(data).map_err(|e| bad(e.to_string()))?;
            io::copy(&mut dec, &mut out).map_err(|e| bad(e.to_string()))?;
        }
        Compression::Gzip => {
            let mut dec = flate2::read::MultiGzDecoder::new(data);
            io::copy(&mut dec, &mut out).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(out.buf)
}

/// Reads `r` to the end, decompressing when the content starts with a known magic.
pub fn read_maybe_compressed(
    mut r: impl Read,
    limit: u64,
) -> Result<(Vec<u8>, Option<Compression>), DecompressError> {
    let mut raw = Vec::new();
    r.by_ref()
        .take(limit.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(|e| DecompressError::Read(e.to_string()))?;
    if raw.len() as u64 > limit {
        return Err(DecompressError::TooLarge(limit));
    }
    match Compression::sniff(&raw) {
        Some(c) => Ok((decompress(c, &raw, limit)?, Some(c))),
        None => Ok((raw, None)),
    }
}

/// A `Write` into memory that fails once more than `limit` bytes arrive (decompression bombs).
struct Limited {
    buf: Vec<u8>,
    limit: u64,
}

impl Write for Limited {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() as u64 + data.len() as u64 > self.limit {
            return Err(io::Error::other(format!(
                "decompressed size exceeds {} bytes",
                self.limit
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compresses `data` (used by tests and by the image builder's fixtures; not on the boot path).
pub fn compress(c: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match c {
        Compression::Xz => {
            let mut input = data;
            lzma_rs::xz_compress(&mut input, &mut out)?;
        }
        Compression::Zstd => {
            out = ruzstd::encoding::compress_to_vec(
                data,
                ruzstd::encoding::CompressionLevel::Fastest,
            );
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(&mut out, flate2::Compression::fast());
            enc.write_all(data)?;
            enc.finish()?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 3] = [Compression::Xz, Compression::Zstd, Compression::Gzip];

    #[test]
    fn round_trips_every_format() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in ALL {
            let z = compress(c, &data).unwrap();
            assert_eq!(Compression::sniff(&z), Some(c), "{c}");
            assert_eq!(decompress(c, &z, MAX_MODULE_SIZE).unwrap(), data, "{c}");
            let (plain, found) = read_maybe_compressed(&z[..], MAX_MODULE_SIZE).unwrap();
            assert_eq!((plain, found), (data.clone(), Some(c)));
        }
        let (plain, found) = read_maybe_compressed(&data[..], MAX_MODULE_SIZE).unwrap();
        assert_eq!((plain.len(), found), (data.len(), None));
    }

    #[test]
    fn refuses_bombs_wrong_magic_and_garbage() {
        let data = vec![0u8; 100_000];
        for c in ALL {
            let z = compress(c, &data).unwrap();
            let e = decompress(c, &z, 1000).unwrap_err().to_string();
            assert!(e.contains("exceeds") || e.contains("1000"), "{c}: {e}");
            let mut bad = z.clone();
            let n = bad.len();
            bad.truncate(n / 2);
            assert!(
                decompress(c, &bad, MAX_MODULE_SIZE).is_err(),
                "{c} truncated"
            );
        }
        assert_eq!(
            decompress(Compression::Xz, b"\x7fELF", MAX_MODULE_SIZE).unwrap_err(),
            DecompressError::Magic(Compression::Xz)
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            Compression::from_path("kernel/net/bridge/bridge.ko.zst"),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::from_path("a.ko.xz"), Some(Compression::Xz));
        assert_eq!(Compression::from_path("a.ko.gz"), Some(Compression::Gzip));
        assert_eq!(Compression::from_path("a.ko"), None);
        assert_eq!(
            Compression::from_kernel_name("zstd\n"),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::from_kernel_name("lz4"), None);
        for c in ALL {
            assert_eq!(Compression::from_kernel_name(c.kernel_name()), Some(c));
            assert_eq!(
                Compression::from_path(&format!("m.ko{}", c.extension())),
                Some(c)
            );
        }
    }
}
