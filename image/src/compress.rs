//! Compression of the archive: gzip (every kernel), zstd (smaller and faster to unpack; Debian's
//! and most distribution kernels have `CONFIG_RD_ZSTD`), or none. Both encoders are pure Rust
//! and deterministic: the gzip header carries no timestamp, no file name and a fixed OS byte.

use std::io::{Read as _, Write as _};

/// How the archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Compression::None),
            "gzip" | "gz" => Some(Compression::Gzip),
            "zstd" | "zst" => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Recognises a compressed archive by its magic number.
    pub fn sniff(bytes: &[u8]) -> Self {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Compresses `data`.
pub fn compress(c: Compression, data: &[u8]) -> std::io::Result<Vec<u8>> {
    match c {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            // mtime 0 and no name: nothing of the build machine or the build time in the header.
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(3) // "Unix", whatever the build host is
                .write(Vec::new(), flate2::Compression::best());
            enc.write_all(data)?;
            enc.finish()
        }
        Compression::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            data,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
    }
}

/// Decompresses `data` (for `kubejoin-image list` and tests).
pub fn decompress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match Compression::sniff(data) {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            let mut dec = ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            dec.read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let a = compress(c, &data).unwrap();
            assert_eq!(compress(c, &data).unwrap(), a, "{c:?} is deterministic");
            assert_eq!(Compression::sniff(&a), c);
            assert_eq!(decompress(&a).unwrap(), data, "{c:?} round-trips");
            if c != Compression::None {
                assert!(a.len() < data.len() / 2, "{c:?} compresses");
            }
        }
        let gz = compress(Compression::Gzip, b"x").unwrap();
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip mtime is zero");
        assert_eq!(gz[9], 3, "gzip OS byte is fixed");
    }

    #[test]
    fn names() {
        assert_eq!(Compression::parse("zst"), Some(Compression::Zstd));
        assert_eq!(Compression::parse("xz"), None);
        assert_eq!(Compression::Gzip.name(), "gzip");
    }
}
