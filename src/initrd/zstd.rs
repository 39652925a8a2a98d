//! zstd initrds: a sequence of zstd frames, each of which ends where a cpio entry ends.
//!
//! The kernel unpacks a compressed initramfs one member at a time (`init/initramfs.c`): it
//! decodes one zstd frame (`__unzstd` stops at the end of the frame), checks that the
//! cpio reader is between two entries ("junk at the end of compressed archive"
//! otherwise, and the rest of the initramfs is lost), and goes on with the next member.
//! So a frame may hold any number of whole entries but never ends inside one:
//!
//! - pieces that end where an entry ends are whole frames ([`FrameCompressor`]),
//!   compressed independently, so in parallel;
//! - an entry longer than a piece (a large binary) spans several pieces that one
//!   [`LongFrame`] encoder compresses in order, flushed after each piece, so memory
//!   stays bounded by the piece size and not by the entry.
//!
//! Every frame records its content checksum (XXH64), which the kernel verifies. The bytes
//! depend on the level and on the zstd library's version (pinned by the lock file; a
//! fingerprint of its output is in every segment key).

use std::io::{self, Write};

use zstd::zstd_safe::CParameter;

/// The default level: zstd's own (the `zstd` tool's). On a LinuxKit-shaped image it
/// needs about half the CPU of gzip's default level for an initrd 0.92x the size of
/// `gzip -6`'s.
pub const DEFAULT_LEVEL: u32 = 3;
/// The highest level offered. Levels 20 to 22 ("ultra") need windows of 32 to 128 MiB,
/// which the kernel would have to allocate at boot, for little gain on an initrd.
pub const MAX_LEVEL: u32 = 19;

fn level(level: u32) -> i32 {
    i32::try_from(level.min(MAX_LEVEL)).expect("at most 19")
}

/// Compresses whole frames, reusing one zstd context (one per compressor thread).
pub struct FrameCompressor {
    context: zstd::bulk::Compressor<'static>,
}

impl FrameCompressor {
    pub fn new(compression_level: u32) -> io::Result<FrameCompressor> {
        let mut context = zstd::bulk::Compressor::new(level(compression_level))?;
        context.set_parameter(CParameter::ChecksumFlag(true))?;
        Ok(FrameCompressor { context })
    }

    /// One frame holding `bytes` (and their size, in its header).
    pub fn frame(&mut self, bytes: &[u8]) -> io::Result<Vec<u8>> {
        self.context.compress(bytes)
    }
}

/// One frame written a piece at a time: each [`LongFrame::part`] returns the compressed
/// bytes of its piece (ended with a flush), [`LongFrame::finish`] those of the last piece
/// and the frame's end.
pub struct LongFrame {
    encoder: zstd::stream::write::Encoder<'static, Vec<u8>>,
}

impl LongFrame {
    pub fn new(compression_level: u32) -> io::Result<LongFrame> {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level(compression_level))?;
        encoder.include_checksum(true)?;
        Ok(LongFrame { encoder })
    }

    pub fn part(&mut self, piece: &[u8]) -> io::Result<Vec<u8>> {
        self.encoder.write_all(piece)?;
        self.encoder.flush()?;
        Ok(std::mem::take(self.encoder.get_mut()))
    }

    pub fn finish(mut self, piece: &[u8]) -> io::Result<Vec<u8>> {
        self.encoder.write_all(piece)?;
        self.encoder.finish()
    }
}

/// Splits `bytes` into frames, decoding each one alone as the kernel does.
#[cfg(test)]
pub(crate) fn decode_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let size = zstd::zstd_safe::find_frame_compressed_size(bytes).expect("a whole frame");
        let mut decoded = Vec::new();
        let mut decoder = zstd::stream::write::Decoder::new(&mut decoded).unwrap();
        decoder.write_all(&bytes[..size]).unwrap();
        decoder.flush().unwrap();
        drop(decoder);
        frames.push(decoded);
        bytes = &bytes[size..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_long_frames_decode_alone_and_are_deterministic() {
        let text: Vec<u8> =
            (0..3_000_000u32).map(|i| b"resin initrd "[(i % 13) as usize] ^ (i / 7919).to_le_bytes()[0]).collect();
        let write = || {
            let mut out = FrameCompressor::new(DEFAULT_LEVEL).unwrap().frame(&text[..1000]).unwrap();
            let mut long = LongFrame::new(DEFAULT_LEVEL).unwrap();
            out.extend(long.part(&text[1000..1_000_000]).unwrap());
            out.extend(long.part(&text[1_000_000..2_000_000]).unwrap());
            out.extend(long.finish(&text[2_000_000..]).unwrap());
            out
        };
        let out = write();
        assert_eq!(out, write());
        assert_eq!(decode_frames(&out), [text[..1000].to_vec(), text[1000..].to_vec()]);
        // Real frames with checksums: a flipped byte in the last one is caught.
        let mut damaged = out.clone();
        let at = damaged.len() - 2;
        damaged[at] ^= 1;
        let mut sink = Vec::new();
        assert!(zstd::stream::copy_decode(&damaged[..], &mut sink).is_err());
    }
}
