//! One gzip member made of separately deflated segments.
//!
//! ```text
//! 1f 8b 08 00  00 00 00 00  00 ff     header: deflate, no flags, mtime 0, no extra flags, OS unknown
//! segment 1: raw deflate pieces, each ending in an empty stored block (byte-aligned, not final)
//! segment 2: ...
//! 03 00                               an empty final block (fixed Huffman, end of block)
//! crc32 (LE)  isize (LE, mod 2^32)    of the whole uncompressed stream
//! ```
//!
//! Each piece is compressed on its own by libdeflate ([`PieceDeflater`]) into a complete
//! deflate stream, which [`super::continued`] makes one that goes on (its final block
//! made not final, an empty stored block after it, as zlib's full flush ends a stream),
//! so pieces and segments can be compressed independently (in parallel, or cached) and
//! concatenated in order; the CRC32s of the segments are combined. For the same reason a
//! segment can stand alone as a gzip member ([`write_standalone`]: header, segment, final
//! block, its own trailer), and standalone members join back into the one member
//! ([`join_members`]) byte for byte. The compressor (libdeflate, its version pinned by
//! Cargo.lock) and the level are part of every content hash: the compressed bytes, and
//! hence the initrd digest, depend on both.

use std::io::{self, Write};

use super::continued::continue_stream;

/// The default compression level: 3, the fastest of libdeflate's levels whose initrds stay
/// within 5 % of `gzip -6`'s size (measured on the benchmark's LinuxKit-shaped image of
/// real binaries, 1 MiB pieces: level 3 is 1.04x `gzip -6` and 1.5x as fast as zlib-rs at
/// level 4, the level it replaces, for the same size; level 2 is 1.06x).
pub const DEFAULT_LEVEL: u32 = 3;

const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// CRC32 and length of the uncompressed bytes of one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    pub crc: u32,
    pub length: u64,
}

/// Compresses pieces into raw deflate that goes on (a compressor per thread, its
/// memory reused from piece to piece).
pub struct PieceDeflater {
    compressor: libdeflater::Compressor,
}

impl PieceDeflater {
    /// A compressor at `level` (1 to 9; 0 stores).
    pub fn new(level: u32) -> io::Result<PieceDeflater> {
        let level = libdeflater::CompressionLvl::new(i32::try_from(level).unwrap_or(i32::MAX))
            .map_err(|_| io::Error::other(format!("gzip level {level} is not one of 0 to 9")))?;
        Ok(PieceDeflater { compressor: libdeflater::Compressor::new(level) })
    }

    /// `piece` deflated into a stream that goes on (nothing for an empty piece), and the
    /// CRC32 and length of `piece`.
    pub fn deflate(&mut self, piece: &[u8]) -> io::Result<(Vec<u8>, SegmentSummary)> {
        let summary = SegmentSummary { crc: crc32fast::hash(piece), length: piece.len() as u64 };
        if piece.is_empty() {
            return Ok((Vec::new(), summary));
        }
        let mut out = vec![0u8; self.compressor.deflate_compress_bound(piece.len()) + 5];
        let length = self.compressor.deflate_compress(piece, &mut out).map_err(io::Error::other)?;
        out.truncate(length);
        continue_stream(&mut out).map_err(io::Error::other)?;
        Ok((out, summary))
    }
}

/// The gzip header, written before the first segment.
pub fn write_header(mut out: impl Write) -> io::Result<()> {
    out.write_all(&HEADER)
}

/// The final empty block and the trailer for the combined `segments`.
pub fn write_footer(mut out: impl Write, segments: &[SegmentSummary]) -> io::Result<()> {
    let mut crc = crc32fast::Hasher::new();
    let mut length: u64 = 0;
    for segment in segments {
        crc.combine(&crc32fast::Hasher::new_with_initial_len(segment.crc, segment.length));
        length += segment.length;
    }
    out.write_all(&FINAL_EMPTY_BLOCK)?;
    out.write_all(&crc.finalize().to_le_bytes())?;
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out.write_all(&u32::try_from(length & 0xffff_ffff).expect("masked to 32 bits").to_le_bytes())
}

/// One segment as a gzip member of its own: the header, the segment's deflate bytes (read
/// from `segment`), the final empty block and a trailer of the segment's own CRC and
/// length. A member per segment is what can be served as separate blobs: the kernel
/// unpacks concatenated initrds one member at a time (each segment ends on a cpio entry),
/// and [`join_members`] turns the members back into the one-member initrd, byte for byte.
pub fn write_standalone(mut out: impl Write, segment: &mut impl io::Read, summary: SegmentSummary) -> io::Result<()> {
    let (header, trailer) = member_framing(summary)?;
    out.write_all(&header)?;
    io::copy(segment, &mut out)?;
    out.write_all(&trailer)
}

/// What goes before and after a segment to make it a gzip member of its own
/// ([`write_standalone`]): the header, and the final empty block with the segment's own
/// trailer.
pub fn member_framing(summary: SegmentSummary) -> io::Result<(Vec<u8>, Vec<u8>)> {
    if summary.length > u64::from(u32::MAX) {
        // The trailer keeps the length modulo 2^32: joining could not combine the CRC.
        return Err(io::Error::other(format!(
            "a segment of {} uncompressed bytes cannot be a gzip member of its own (4 GiB at most)",
            summary.length
        )));
    }
    let mut trailer = FINAL_EMPTY_BLOCK.to_vec();
    trailer.extend_from_slice(&summary.crc.to_le_bytes());
    trailer.extend_from_slice(&u32::try_from(summary.length).expect("checked above").to_le_bytes());
    Ok((HEADER.to_vec(), trailer))
}

/// Whether `bytes` are the header resin writes (the start of an initrd it gzip'd).
pub fn is_header(bytes: &[u8]) -> bool {
    bytes == HEADER
}

/// Length of the header.
pub const HEADER_LENGTH: u64 = HEADER.len() as u64;

/// The footer [`write_footer`] writes for `segments`.
pub fn footer(segments: &[SegmentSummary]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    write_footer(&mut out, segments).expect("writing to a Vec");
    out
}

/// The bytes around a standalone member's segment: the header before it, the final empty
/// block and the trailer after it.
const MEMBER_OVERHEAD: u64 = (HEADER.len() + FINAL_EMPTY_BLOCK.len() + 8) as u64;

/// Writes the one-member gzip of the segments held by standalone `members` (as
/// [`write_standalone`] writes them: each a reader and its length), in order. A member
/// that is not shaped so is an error naming its position.
pub fn join_members<R: io::Read>(mut out: impl Write, members: impl IntoIterator<Item = (R, u64)>) -> io::Result<()> {
    let invalid = |index: usize, what: &str| {
        io::Error::new(io::ErrorKind::InvalidData, format!("member {index} is not a segment resin wrote: {what}"))
    };
    write_header(&mut out)?;
    let mut summaries = Vec::new();
    for (index, (mut member, length)) in members.into_iter().enumerate() {
        if length < MEMBER_OVERHEAD {
            return Err(invalid(index, "too short"));
        }
        let mut header = [0u8; HEADER.len()];
        member.read_exact(&mut header)?;
        if header != HEADER {
            return Err(invalid(index, "another gzip header"));
        }
        let segment = length - MEMBER_OVERHEAD;
        let copied = io::copy(&mut <&mut R as io::Read>::take(&mut member, segment), &mut out)?;
        if copied != segment {
            return Err(invalid(index, "shorter than its length"));
        }
        let mut tail = [0u8; 10];
        member.read_exact(&mut tail)?;
        if tail[..2] != FINAL_EMPTY_BLOCK {
            return Err(invalid(index, "no final empty block"));
        }
        let crc = u32::from_le_bytes(tail[2..6].try_into().expect("4 bytes"));
        let length = u64::from(u32::from_le_bytes(tail[6..10].try_into().expect("4 bytes")));
        summaries.push(SegmentSummary { crc, length });
    }
    write_footer(out, &summaries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn member(segments: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        let mut summaries = Vec::new();
        let mut deflater = PieceDeflater::new(DEFAULT_LEVEL).unwrap();
        for segment in segments {
            let (bytes, summary) = deflater.deflate(segment).unwrap();
            out.extend_from_slice(&bytes);
            summaries.push(summary);
        }
        write_footer(&mut out, &summaries).unwrap();
        out
    }

    #[test]
    fn separately_deflated_segments_form_one_valid_member() {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let cases: Vec<Vec<&[u8]>> =
            vec![vec![], vec![b"hello"], vec![b"hello ", b"", b"world"], vec![&big[..1_000_000], &big[1_000_000..]]];
        for segments in cases {
            let gz = member(&segments);
            // flate2's reader checks the CRC32 and the length of the trailer.
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut decoded).unwrap();
            assert_eq!(decoded, segments.concat());
        }
    }

    /// Each segment deflated, with its summary.
    fn segments_of(segments: &[&[u8]]) -> Vec<(Vec<u8>, SegmentSummary)> {
        segments.iter().map(|segment| PieceDeflater::new(DEFAULT_LEVEL).unwrap().deflate(segment).unwrap()).collect()
    }

    #[test]
    fn segments_as_members_of_their_own_decode_alone_and_join_into_the_same_member() {
        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let inputs: Vec<&[u8]> = vec![b"070701 first segment", b"", &big[..], b"TRAILER!!!"];
        let members: Vec<Vec<u8>> = segments_of(&inputs)
            .into_iter()
            .map(|(bytes, summary)| {
                let mut member = Vec::new();
                write_standalone(&mut member, &mut &bytes[..], summary).unwrap();
                member
            })
            .collect();
        for (member, input) in members.iter().zip(&inputs) {
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&member[..]).read_to_end(&mut decoded).unwrap();
            assert!(decoded == *input, "each member decodes to its segment");
        }
        // Concatenated, as a kernel given several initrds reads them: the whole stream.
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(&members.concat()[..]).read_to_end(&mut all).unwrap();
        assert!(all == inputs.concat());
        // Joined: exactly the one-member initrd of the same segments.
        let mut joined = Vec::new();
        join_members(&mut joined, members.iter().map(|m| (&m[..], m.len() as u64))).unwrap();
        assert!(joined == member(&inputs), "byte for byte the initrd written at assembly");
        // A member resin did not write is refused, named by its position.
        let mut other = Vec::new();
        let mut gz = flate2::write::GzEncoder::new(&mut other, flate2::Compression::default());
        gz.write_all(b"not ours").unwrap();
        gz.finish().unwrap();
        let error =
            join_members(Vec::new(), [(&members[0][..], members[0].len() as u64), (&other[..], other.len() as u64)])
                .unwrap_err();
        // (flate2 writes the same header; its deflate stream ends otherwise.)
        assert_eq!(error.to_string(), "member 1 is not a segment resin wrote: no final empty block");
        let mut dated = members[0].clone();
        dated[4] = 1;
        let error = join_members(Vec::new(), [(&dated[..], dated.len() as u64)]).unwrap_err();
        assert_eq!(error.to_string(), "member 0 is not a segment resin wrote: another gzip header");
        let cut = &members[2][..members[2].len() - 1];
        let error = join_members(Vec::new(), [(cut, members[2].len() as u64)]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(member(&[b"same input", b"same bytes"]), member(&[b"same input", b"same bytes"]));
    }
}
