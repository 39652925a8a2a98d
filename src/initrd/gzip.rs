//! gzip initrds: a sequence of gzip members, each of which ends where a cpio entry ends.
//!
//! ```text
//! 1f 8b 08 00  00 00 00 00  00 ff     header: deflate, no flags, mtime 0, no extra flags, OS unknown
//! raw deflate pieces                  every piece but the last ending in an empty stored block
//!                                     (byte-aligned, not final); the last one's final block ends the stream
//! crc32 (LE)  isize (LE, mod 2^32)    of the member's uncompressed bytes
//! ```
//!
//! The kernel unpacks a compressed initramfs one member at a time, as it does zstd frames
//! ([`super::zstd`]): a member holds any number of whole cpio entries and never ends inside
//! one. A piece that ends where an entry ends is a member of its own: libdeflate
//! ([`PieceDeflater`]) compresses it into a complete deflate stream, used as it is. An
//! entry longer than a piece (a large binary) makes a member of several pieces, each
//! compressed on its own (so in parallel) into a complete stream, every one but the last
//! made one that goes on by [`super::continued`] (its final block made not final, an
//! empty stored block after it, as zlib's full flush ends a stream); the CRC32s of its
//! pieces are combined for its trailer. A segment is thus whole members: it stands alone
//! as an initrd, and the initrd is its parts concatenated. The compressor (libdeflate, its
//! version pinned by Cargo.lock) and the level are part of every content hash: the
//! compressed bytes, and hence the initrd digest, depend on both.
//!
//! Images published in artifact format 1 held the one-member initrd of assembly formats
//! up to 5 as a member per segment; [`join_members`] joins those back.

use std::io::{self, Write};

use super::continued::continue_stream;

/// The default compression level: 3, the fastest of libdeflate's levels whose initrds stay
/// within 5 % of `gzip -6`'s size (measured on the benchmark's LinuxKit-shaped image of
/// real binaries, pieces of 0.5 to 1 MiB: level 3 is 1.04x `gzip -6` and 1.5x as fast as
/// zlib-rs at level 4, the level it replaces, for the same size; level 2 is 1.06x).
pub const DEFAULT_LEVEL: u32 = 3;

/// The header of every member resin writes.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// CRC32 and length of uncompressed bytes (a piece's, a member's, a segment's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    pub crc: u32,
    pub length: u64,
}

impl SegmentSummary {
    /// The summary of these bytes followed by those of `next`.
    pub fn then(self, next: SegmentSummary) -> SegmentSummary {
        let mut crc = crc32fast::Hasher::new_with_initial_len(self.crc, self.length);
        crc.combine(&crc32fast::Hasher::new_with_initial_len(next.crc, next.length));
        SegmentSummary { crc: crc.finalize(), length: self.length + next.length }
    }
}

/// Compresses pieces into raw deflate (a compressor per thread, its memory reused from
/// piece to piece).
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

    /// `piece` deflated into a complete stream, or (`goes_on`) into one that goes on
    /// (nothing for an empty piece), and the CRC32 and length of `piece`.
    pub fn deflate(&mut self, piece: &[u8], goes_on: bool) -> io::Result<(Vec<u8>, SegmentSummary)> {
        let summary = SegmentSummary { crc: crc32fast::hash(piece), length: piece.len() as u64 };
        if piece.is_empty() && goes_on {
            return Ok((Vec::new(), summary));
        }
        let mut out = vec![0u8; self.compressor.deflate_compress_bound(piece.len()) + 5];
        let length = self.compressor.deflate_compress(piece, &mut out).map_err(io::Error::other)?;
        out.truncate(length);
        if goes_on {
            continue_stream(&mut out).map_err(io::Error::other)?;
        }
        Ok((out, summary))
    }

    /// `bytes` as one gzip member, and their CRC32 and length.
    pub fn member(&mut self, bytes: &[u8]) -> io::Result<(Vec<u8>, SegmentSummary)> {
        let (deflated, summary) = self.deflate(bytes, false)?;
        let mut member = Vec::with_capacity(HEADER.len() + deflated.len() + 8);
        member.extend_from_slice(&HEADER);
        member.extend_from_slice(&deflated);
        member.extend_from_slice(&trailer(summary));
        Ok((member, summary))
    }
}

/// The trailer of a member of these uncompressed bytes: CRC32 and length modulo 2^32
/// (RFC 1952), little-endian.
pub fn trailer(summary: SegmentSummary) -> [u8; 8] {
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&summary.crc.to_le_bytes());
    let length = u32::try_from(summary.length & 0xffff_ffff).expect("masked to 32 bits");
    trailer[4..].copy_from_slice(&length.to_le_bytes());
    trailer
}

/// Whether `bytes` are the header resin writes (the start of an initrd it gzip'd).
pub fn is_header(bytes: &[u8]) -> bool {
    bytes == HEADER
}

/// The bytes around a format-1 member's segment: the header before it, the final empty
/// block and the trailer after it.
const MEMBER_OVERHEAD: u64 = (HEADER.len() + FINAL_EMPTY_BLOCK.len() + 8) as u64;

/// Writes the one-member gzip initrd of artifact format 1 from its `members` (each a reader
/// and its length), in order: every member is a header, a segment's deflate stream that
/// goes on, an empty final block and the segment's trailer; the joined member is the
/// header, the segments, an empty final block and their combined trailer. A member that is
/// not shaped so is an error naming its position.
pub fn join_members<R: io::Read>(mut out: impl Write, members: impl IntoIterator<Item = (R, u64)>) -> io::Result<()> {
    let invalid = |index: usize, what: &str| {
        io::Error::new(io::ErrorKind::InvalidData, format!("member {index} is not a segment resin wrote: {what}"))
    };
    out.write_all(&HEADER)?;
    let mut whole = SegmentSummary::default();
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
        whole = whole.then(SegmentSummary { crc, length });
    }
    out.write_all(&FINAL_EMPTY_BLOCK)?;
    out.write_all(&trailer(whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn noise(n: usize) -> Vec<u8> {
        (0..n).map(|i| u8::try_from(i * 7 % 251).unwrap() ^ u8::try_from(i / 4093 % 256).unwrap()).collect()
    }

    /// One member of `pieces`, compressed each on its own, as the segment writer frames it.
    fn member_of(pieces: &[&[u8]]) -> Vec<u8> {
        let mut deflater = PieceDeflater::new(DEFAULT_LEVEL).unwrap();
        let mut out = HEADER.to_vec();
        let mut summary = SegmentSummary::default();
        for (index, piece) in pieces.iter().enumerate() {
            let (bytes, piece_summary) = deflater.deflate(piece, index + 1 < pieces.len()).unwrap();
            out.extend_from_slice(&bytes);
            summary = summary.then(piece_summary);
        }
        out.extend_from_slice(&trailer(summary));
        out
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        // flate2's reader checks the CRC32 and the length of each trailer.
        let mut decoded = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut decoded).unwrap();
        decoded
    }

    #[test]
    fn pieces_compressed_apart_form_one_member_and_members_concatenate() {
        let big = noise(3_000_000);
        let cases: Vec<Vec<&[u8]>> =
            vec![vec![b"hello"], vec![b"hello ", b"", b"world"], vec![&big[..1_000_000], &big[1_000_000..]]];
        let mut all = Vec::new();
        for pieces in &cases {
            let member = member_of(pieces);
            let mut one = Vec::new();
            flate2::read::GzDecoder::new(&member[..]).read_to_end(&mut one).unwrap();
            assert!(one == pieces.concat(), "one member holds all its pieces");
            all.extend(member);
        }
        assert!(gunzip(&all) == cases.concat().concat(), "members read one after another");
        let (alone, summary) = PieceDeflater::new(DEFAULT_LEVEL).unwrap().member(&big).unwrap();
        assert!(gunzip(&alone) == big);
        assert_eq!(summary, SegmentSummary { crc: crc32fast::hash(&big), length: big.len() as u64 });
    }

    #[test]
    fn summaries_combine_as_the_crc_of_the_bytes_one_after_the_other() {
        let (first, second) = (noise(70_000), b"and more".to_vec());
        let summary = |bytes: &[u8]| SegmentSummary { crc: crc32fast::hash(bytes), length: bytes.len() as u64 };
        assert_eq!(summary(&first).then(summary(&second)), summary(&[first.clone(), second].concat()));
        assert_eq!(SegmentSummary::default().then(summary(&first)), summary(&first));
    }

    /// A format-1 member: a segment's stream that goes on, an empty final block, its trailer.
    fn format_1_member(segment: &[u8]) -> Vec<u8> {
        let (deflated, summary) = PieceDeflater::new(DEFAULT_LEVEL).unwrap().deflate(segment, true).unwrap();
        [&HEADER[..], &deflated, &FINAL_EMPTY_BLOCK, &trailer(summary)].concat()
    }

    #[test]
    fn format_1_members_join_into_one_member() {
        let big = noise(2_000_000);
        let inputs: Vec<&[u8]> = vec![b"070701 first segment", b"", &big[..], b"TRAILER!!!"];
        let members: Vec<Vec<u8>> = inputs.iter().map(|input| format_1_member(input)).collect();
        for (member, input) in members.iter().zip(&inputs) {
            assert!(gunzip(member) == *input, "each member decodes to its segment");
        }
        let mut joined = Vec::new();
        join_members(&mut joined, members.iter().map(|m| (&m[..], m.len() as u64))).unwrap();
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&joined[..]).read_to_end(&mut decoded).unwrap();
        assert!(decoded == inputs.concat(), "one member of every segment");
        assert!(gunzip(&joined) == decoded, "and nothing after it");
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
        assert_eq!(member_of(&[b"same input", b"same bytes"]), member_of(&[b"same input", b"same bytes"]));
    }
}
