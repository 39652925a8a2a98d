//! One gzip member made of separately deflated segments.
//!
//! ```text
//! 1f 8b 08 00  00 00 00 00  00 ff     header: deflate, no flags, mtime 0, no extra flags, OS unknown
//! segment 1: raw deflate, ended with a full flush (byte-aligned, not final)
//! segment 2: ...
//! 03 00                               an empty final block (fixed Huffman, end of block)
//! crc32 (LE)  isize (LE, mod 2^32)    of the whole uncompressed stream
//! ```
//!
//! Each segment starts with a fresh compressor and ends byte-aligned, so segments can be
//! compressed independently (in parallel, or cached) and concatenated in order; the
//! CRC32s of the segments are combined. For the same reason a segment can stand alone as
//! a gzip member ([`write_standalone`]: header, segment, final block, its own trailer),
//! and standalone members join back into the one member ([`join_members`]) byte for byte. The backend (zlib-rs) is pinned and the level is
//! part of every content hash: the compressed bytes, and hence the initrd digest, depend
//! on both.

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};

/// The default compression level: 4, the fastest of zlib-rs's levels whose initrds stay
/// within 5 % of `gzip -6`'s size (measured on a LinuxKit-shaped image of real binaries:
/// level 4 is 1.04x `gzip -6`, 1.3x faster than level 6; level 3 is 1.07x).
pub const DEFAULT_LEVEL: u32 = 4;

const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// CRC32 and length of the uncompressed bytes of one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    pub crc: u32,
    pub length: u64,
}

/// Compresses one segment into `out` as raw deflate ending in a full flush.
pub struct SegmentEncoder<W: Write> {
    out: W,
    compress: Compress,
    hasher: crc32fast::Hasher,
    length: u64,
    buffer: Vec<u8>,
}

impl<W: Write> SegmentEncoder<W> {
    /// An encoder at `level` (0 to 9).
    pub fn with_level(out: W, level: u32) -> SegmentEncoder<W> {
        SegmentEncoder {
            out,
            compress: Compress::new(Compression::new(level), false),
            hasher: crc32fast::Hasher::new(),
            length: 0,
            buffer: Vec::with_capacity(128 * 1024),
        }
    }

    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            self.buffer.clear();
            let before_in = self.compress.total_in();
            let status = self.compress.compress_vec(input, &mut self.buffer, flush).map_err(io::Error::other)?;
            let consumed = usize::try_from(self.compress.total_in() - before_in).expect("at most the input's length");
            input = &input[consumed..];
            self.out.write_all(&self.buffer)?;
            let output_full = self.buffer.len() == self.buffer.capacity();
            match (status, flush) {
                (Status::BufError, _) => return Ok(()),
                _ if !input.is_empty() || output_full => continue,
                _ => return Ok(()),
            }
        }
    }

    /// Ends the segment (full flush) and returns its output and summary.
    pub fn finish(mut self) -> io::Result<(W, SegmentSummary)> {
        self.run(&[], FlushCompress::Full)?;
        Ok((self.out, SegmentSummary { crc: self.hasher.finalize(), length: self.length }))
    }
}

impl<W: Write> Write for SegmentEncoder<W> {
    fn write(&mut self, input: &[u8]) -> io::Result<usize> {
        self.hasher.update(input);
        self.length += input.len() as u64;
        self.run(input, FlushCompress::None)?;
        Ok(input.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
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
        for segment in segments {
            let mut encoder = SegmentEncoder::with_level(Vec::new(), DEFAULT_LEVEL);
            encoder.write_all(segment).unwrap();
            let (bytes, summary) = encoder.finish().unwrap();
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
        segments
            .iter()
            .map(|segment| {
                let mut encoder = SegmentEncoder::with_level(Vec::new(), DEFAULT_LEVEL);
                encoder.write_all(segment).unwrap();
                encoder.finish().unwrap()
            })
            .collect()
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
