//! How the initrd's cpio is compressed ([`Compression`]), and the compressor that makes
//! one piece of it a member of its own ([`Compressor`]): the same bytes for the same input
//! on every machine, so every setting is part of the content hash.

use std::io;

use super::gzip::{PieceDeflater, SegmentSummary};
use super::zstd::FrameCompressor;

/// How the initrd's cpio is compressed. Part of the content hash: every setting writes
/// different (deterministic) bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip members that each end with a cpio entry (libdeflate at `level`, 1 to 9).
    Gzip { level: u32 },
    /// zstd frames that each end with a cpio entry (`level`, 1 to 19).
    Zstd { level: u32 },
    /// The plain cpio: larger, nothing to decompress at boot.
    Uncompressed,
}

impl Compression {
    /// The default: gzip at [`super::gzip::DEFAULT_LEVEL`].
    pub const DEFAULT: Compression = Compression::Gzip { level: super::gzip::DEFAULT_LEVEL };
}

/// Compresses pieces that are members of their own, reusing its state (one per thread).
pub enum Compressor {
    Gzip { deflater: PieceDeflater },
    Zstd { frames: FrameCompressor },
    Plain,
}

impl Compressor {
    pub fn new(compression: Compression) -> io::Result<Compressor> {
        Ok(match compression {
            Compression::Gzip { level } => Compressor::Gzip { deflater: PieceDeflater::new(level)? },
            Compression::Zstd { level } => Compressor::Zstd { frames: FrameCompressor::new(level)? },
            Compression::Uncompressed => Compressor::Plain,
        })
    }

    /// Compresses a piece that is a member (a gzip member, a zstd frame) of its own: the
    /// bytes, and the CRC32 (gzip's alone) and length of the input.
    pub fn whole(&mut self, bytes: &[u8]) -> io::Result<(Vec<u8>, SegmentSummary)> {
        let summary = SegmentSummary { crc: 0, length: bytes.len() as u64 };
        match self {
            Compressor::Gzip { deflater } => deflater.member(bytes),
            Compressor::Zstd { frames } => Ok((frames.frame(bytes)?, summary)),
            Compressor::Plain => Ok((bytes.to_vec(), summary)),
        }
    }
}

/// A fingerprint of what the compressor writes at `compression` (the sha256 of a fixed,
/// varied input compressed): part of every segment key, so a segment compressed by
/// another version of libdeflate or zstd, whose bytes could differ, is never reused.
pub fn fingerprint(compression: Compression) -> String {
    let mut input = Vec::with_capacity(64 << 10);
    let mut state: u32 = 0x1234_5678;
    while input.len() < 64 << 10 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let [high, _, _, low] = state.to_be_bytes();
        // Half text-like (few symbols, compressible), half noise.
        input.push(if low & 1 == 0 { b'a' + high % 8 } else { high });
    }
    let (bytes, _) = Compressor::new(compression)
        .and_then(|mut compressor| compressor.whole(&input))
        .expect("compressing in memory cannot fail");
    crate::oci::digest::sha256(&bytes).digest()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_has_its_own_fingerprint_and_keeps_it() {
        let settings = [
            Compression::DEFAULT,
            Compression::Gzip { level: 9 },
            Compression::Zstd { level: 3 },
            Compression::Uncompressed,
        ];
        let prints: std::collections::BTreeSet<String> = settings.iter().map(|c| fingerprint(*c)).collect();
        assert_eq!(prints.len(), settings.len());
        assert_eq!(fingerprint(Compression::DEFAULT), fingerprint(Compression::DEFAULT));
    }
}
