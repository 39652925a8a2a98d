//! A complete raw deflate stream made one that goes on: its final block's BFINAL bit
//! cleared and an empty stored block appended, so that it ends byte-aligned and not final,
//! as zlib's full flush ends. libdeflate compresses a buffer into a complete stream only
//! (its last block final); pieces made to go on are concatenated into one stream.
//!
//! Finding the final block's header means walking the stream block by block: a stored
//! block is skipped by its length, a Huffman block's symbols are decoded (table lookups,
//! nothing written out) up to its end-of-block code. The walk checks what it reads: a
//! stream that is not well-formed deflate is an error, never a panic.

use std::fmt;

/// Why a stream could not be made to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(&'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a complete deflate stream: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// The empty stored block (after its 3 header bits and the padding to a byte): LEN 0, NLEN 0xffff.
const EMPTY_STORED: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Makes the complete stream in `stream` (nothing after its final block but the padding
/// to a byte) one that goes on: the same bytes decoded, ending byte-aligned in a
/// non-final empty stored block. An empty `stream` stays empty.
pub fn continue_stream(stream: &mut Vec<u8>) -> Result<(), Malformed> {
    if stream.is_empty() {
        return Ok(());
    }
    let (header, end) = final_block(stream)?;
    if end.div_ceil(8) != stream.len() as u64 {
        return Err(Malformed("bytes after the final block"));
    }
    let byte = |bit: u64| usize::try_from(bit / 8).expect("within the stream");
    stream[byte(header)] &= !(1 << (header % 8));
    // The padding after the end-of-block code holds the stored block's 3 header bits
    // (0: not final, stored) when 3 are left; otherwise they go on into a byte of their own.
    let used = end % 8;
    if used != 0 {
        let last = stream.len() - 1;
        stream[last] &= (1u8 << used) - 1;
    }
    if used == 0 || used > 5 {
        stream.push(0);
    }
    stream.extend_from_slice(&EMPTY_STORED);
    Ok(())
}

/// Reads the stream's bits, least significant first.
struct Bits<'a> {
    bytes: &'a [u8],
    /// Bytes taken into `buffer`.
    taken: usize,
    buffer: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(bytes: &'a [u8]) -> Bits<'a> {
        Bits { bytes, taken: 0, buffer: 0, count: 0 }
    }

    /// Fills the buffer to at least 56 bits (with zeros past the end: [`Bits::position`]
    /// tells whether they were read).
    #[inline(always)]
    fn refill(&mut self) {
        if self.count >= 56 {
            return;
        }
        if let Some(word) = self.bytes.get(self.taken..self.taken + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            self.buffer |= word << self.count;
            let whole = (63 - self.count) / 8;
            self.taken += whole as usize;
            self.count += whole * 8;
        } else {
            while self.count < 56 {
                let byte = self.bytes.get(self.taken).copied().unwrap_or(0);
                self.buffer |= u64::from(byte) << self.count;
                self.taken += 1;
                self.count += 8;
            }
        }
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u64 {
        self.buffer & ((1u64 << n) - 1)
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buffer >>= n;
        self.count -= n;
    }

    /// Takes `n` (at most 16) bits.
    #[inline(always)]
    fn take(&mut self, n: u32) -> usize {
        debug_assert!(n <= 16);
        self.refill();
        let value = usize::try_from(self.peek(n)).expect("at most 16 bits");
        self.consume(n);
        value
    }

    /// The position, in bits from the start, of the next bit to read.
    fn position(&self) -> u64 {
        self.taken as u64 * 8 - u64::from(self.count)
    }

    /// Whether everything read so far was in the stream.
    fn in_stream(&self) -> bool {
        self.position() <= self.bytes.len() as u64 * 8
    }

    /// Drops the bits up to the next byte boundary.
    fn align(&mut self) {
        let partial = self.count % 8;
        self.consume(partial);
    }
}

/// Codes up to this long are decoded by one lookup; longer ones (rare symbols) bit by bit.
const PRIMARY_BITS: u32 = 10;

/// A canonical Huffman code: a lookup table over the next [`PRIMARY_BITS`] bits of the
/// stream, and the counts and symbols by code length for the longer codes. Nothing needs
/// the values of a symbol's extra bits, only how many there are: a table entry is
/// `symbol << 5 | bits`, the bits of the code and of the extra bits together (0 where a
/// longer code starts, or none).
struct Code {
    table: Box<[u16; 1 << PRIMARY_BITS]>,
    counts: [u16; 16],
    symbols: Vec<u16>,
    /// Extra bits by symbol (none past its end).
    extra: &'static [u8],
}

impl Code {
    /// The code of the symbols' `lengths` (0: the symbol has no code), each followed by
    /// `extra[symbol]` extra bits.
    fn new(lengths: &[u8], extra: &'static [u8]) -> Result<Code, Malformed> {
        let mut counts = [0u16; 16];
        for &length in lengths {
            counts[usize::from(length)] += 1;
        }
        counts[0] = 0;
        // Over-subscribed codes cannot be decoded; incomplete ones can (their unused
        // entries are errors when met).
        let mut left: i32 = 1;
        for &count in &counts[1..] {
            left = left * 2 - i32::from(count);
            if left < 0 {
                return Err(Malformed("an over-subscribed Huffman code"));
            }
        }
        let mut offsets = [0u16; 16];
        for length in 1..15 {
            offsets[length + 1] = offsets[length] + counts[length];
        }
        let mut symbols = vec![0u16; usize::from(offsets[15] + counts[15])];
        let size = 1usize << PRIMARY_BITS;
        let mut table = Box::new([0u16; 1 << PRIMARY_BITS]);
        let mut next = [0u32; 16];
        let mut code = 0u32;
        for length in 1..16 {
            code = (code + u32::from(counts[length - 1])) << 1;
            next[length] = code;
        }
        for (symbol, &length) in lengths.iter().enumerate() {
            if length == 0 {
                continue;
            }
            let slot = &mut offsets[usize::from(length)];
            let symbol = u16::try_from(symbol).map_err(|_| Malformed("too many symbols"))?;
            symbols[usize::from(*slot)] = symbol;
            *slot += 1;
            let length = u32::from(length);
            if length > PRIMARY_BITS {
                continue;
            }
            let code = next[length as usize];
            next[length as usize] += 1;
            let reversed = (code.reverse_bits() >> (32 - length)) as usize;
            let bits = length + u32::from(extra.get(usize::from(symbol)).copied().unwrap_or(0));
            let entry = symbol << 5 | u16::try_from(bits).expect("at most 15 + 13 bits");
            let mut index = reversed;
            while index < size {
                table[index] = entry;
                index += 1 << length;
            }
        }
        Ok(Code { table, counts, symbols, extra })
    }

    /// Decodes one symbol.
    #[inline(always)]
    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, Malformed> {
        bits.refill();
        self.decode_buffered(bits)
    }

    /// Decodes one symbol and skips its extra bits, from the bits buffered (at least 28).
    #[inline(always)]
    fn decode_buffered(&self, bits: &mut Bits<'_>) -> Result<u16, Malformed> {
        let index = usize::try_from(bits.peek(PRIMARY_BITS)).expect("PRIMARY_BITS bits");
        let entry = self.table[index];
        let length = u32::from(entry & 31);
        if length == 0 {
            return self.decode_long(bits);
        }
        bits.consume(length);
        Ok(entry >> 5)
    }

    /// Decodes a symbol bit by bit, as the canonical code orders them, and skips its extra
    /// bits.
    #[cold]
    fn decode_long(&self, bits: &mut Bits<'_>) -> Result<u16, Malformed> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for (length, &count) in (1u32..).zip(&self.counts[1..]) {
            if (bits.buffer >> (length - 1)) & 1 == 1 {
                code |= 1;
            }
            let count = i32::from(count);
            if code - first < count {
                let symbol = self.symbols[usize::try_from(index + code - first).expect("within the code's symbols")];
                let extra = self.extra.get(usize::from(symbol)).copied().unwrap_or(0);
                bits.consume(length + u32::from(extra));
                return Ok(symbol);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(Malformed("a code that is not in its Huffman code"))
    }
}

/// Extra bits of the literal/length symbols: none for literals and the end of block; 0 to
/// 5 for the lengths 257 to 285.
const LITERAL_EXTRA: [u8; 286] = {
    let lengths = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
    let mut extra = [0u8; 286];
    let mut at = 0;
    while at < lengths.len() {
        extra[257 + at] = lengths[at];
        at += 1;
    }
    extra
};
/// Extra bits of the distance symbols 0 to 29.
const DISTANCE_EXTRA: [u8; 30] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
/// The order code length code lengths come in.
const CODE_LENGTH_ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/// The bit positions of the final block's header and of the end of its end-of-block code.
fn final_block(stream: &[u8]) -> Result<(u64, u64), Malformed> {
    let mut bits = Bits::new(stream);
    let mut fixed: Option<(Code, Code)> = None;
    loop {
        let header = bits.position();
        let last = bits.take(1) == 1;
        match bits.take(2) {
            0 => {
                bits.align();
                let length = bits.take(16);
                if bits.take(16) != !length & 0xffff {
                    return Err(Malformed("a stored block's length and its complement disagree"));
                }
                // Skip the bytes: what is buffered, then the rest from the bytes.
                let mut skip = u32::try_from(length * 8).expect("16 bits");
                let buffered = skip.min(bits.count);
                bits.consume(buffered);
                // Bits above the count are bytes read ahead: skipped with the rest.
                bits.buffer &= (1u64 << bits.count) - 1;
                skip -= buffered;
                bits.taken += (skip / 8) as usize;
            }
            1 => {
                let (literal, distance) = match &fixed {
                    Some(codes) => codes,
                    None => fixed.insert(fixed_codes()?),
                };
                skip_symbols(&mut bits, literal, distance)?;
            }
            2 => {
                let (literal, distance) = dynamic_codes(&mut bits)?;
                skip_symbols(&mut bits, &literal, &distance)?;
            }
            _ => return Err(Malformed("a block of the reserved type")),
        }
        if !bits.in_stream() {
            return Err(Malformed("the stream ends inside a block"));
        }
        if last {
            return Ok((header, bits.position()));
        }
    }
}

/// The codes of a block with fixed Huffman codes.
fn fixed_codes() -> Result<(Code, Code), Malformed> {
    let mut lengths = [0u8; 288];
    lengths[..144].fill(8);
    lengths[144..256].fill(9);
    lengths[256..280].fill(7);
    lengths[280..].fill(8);
    Ok((Code::new(&lengths, &LITERAL_EXTRA)?, Code::new(&[5; 32], &DISTANCE_EXTRA)?))
}

/// Reads a dynamic block's codes.
fn dynamic_codes(bits: &mut Bits<'_>) -> Result<(Code, Code), Malformed> {
    let literal_count = bits.take(5) + 257;
    let distance_count = bits.take(5) + 1;
    let length_count = bits.take(4) + 4;
    if literal_count > 286 || distance_count > 30 {
        return Err(Malformed("too many codes"));
    }
    let mut code_lengths = [0u8; 19];
    for &symbol in &CODE_LENGTH_ORDER[..length_count] {
        code_lengths[symbol] = u8::try_from(bits.take(3)).expect("3 bits");
    }
    let lengths_code = Code::new(&code_lengths, &[])?;
    let mut lengths = [0u8; 286 + 30];
    let total = literal_count + distance_count;
    let mut at = 0;
    while at < total {
        let symbol = lengths_code.decode(bits)?;
        let (value, repeat) = match symbol {
            0..=15 => (u8::try_from(symbol).expect("at most 15"), 1),
            16 => {
                let previous = *lengths[..at].last().ok_or(Malformed("a repeat with nothing before it"))?;
                (previous, 3 + bits.take(2))
            }
            17 => (0, 3 + bits.take(3)),
            _ => (0, 11 + bits.take(7)),
        };
        if at + repeat > total {
            return Err(Malformed("code lengths run past their count"));
        }
        lengths[at..at + repeat].fill(value);
        at += repeat;
    }
    if lengths[256] == 0 {
        return Err(Malformed("no end-of-block code"));
    }
    Ok((
        Code::new(&lengths[..literal_count], &LITERAL_EXTRA)?,
        Code::new(&lengths[literal_count..total], &DISTANCE_EXTRA)?,
    ))
}

/// Decodes a Huffman block's symbols up to its end-of-block code, writing nothing.
fn skip_symbols(bits: &mut Bits<'_>, literal: &Code, distance: &Code) -> Result<(), Malformed> {
    // A symbol takes at most 48 bits (15 + 5 for a length, 15 + 13 for its distance): one
    // refill each.
    let end = bits.bytes.len() + 8;
    loop {
        bits.refill();
        if bits.taken > end {
            return Err(Malformed("the stream ends inside a block"));
        }
        let symbol = literal.decode_buffered(bits)?;
        if symbol < 256 {
            continue;
        }
        if symbol == 256 {
            return Ok(());
        }
        if symbol > 285 {
            return Err(Malformed("a length symbol past 285"));
        }
        if distance.decode_buffered(bits)? > 29 {
            return Err(Malformed("a distance symbol past 29"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// `input` compressed by libdeflate at `level`, a complete stream.
    fn complete(input: &[u8], level: i32) -> Vec<u8> {
        let mut compressor = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        let mut out = vec![0u8; compressor.deflate_compress_bound(input.len())];
        let n = compressor.deflate_compress(input, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(stream).read_to_end(&mut out).unwrap();
        out
    }

    /// Bytes of every kind deflate meets: text, runs, noise, and a mix.
    fn inputs() -> Vec<Vec<u8>> {
        let mut state: u32 = 7;
        let mut noise = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            state.to_be_bytes()[0]
        };
        let text: Vec<u8> = (0..200_000).map(|i| b"the initrd of an image, "[i % 24] ^ u8::from(i % 97 == 0)).collect();
        let random: Vec<u8> = (0..150_000).map(|_| noise()).collect();
        let mixed: Vec<u8> =
            (0..400_000u32).map(|i| if (i / 5000) % 3 == 0 { noise() } else { i.to_le_bytes()[0] }).collect();
        vec![vec![], b"a".to_vec(), b"hello, hello, hello".to_vec(), vec![0; 70_000], text, random, mixed]
    }

    #[test]
    fn continued_streams_decode_as_one_with_the_same_bytes() {
        // Level 0 writes stored blocks, 1 fixed and dynamic ones, 12 its slowest parser.
        for level in [0, 1, 3, 6, 12] {
            let inputs = inputs();
            let mut joined = Vec::new();
            for input in &inputs {
                let mut stream = complete(input, level);
                continue_stream(&mut stream).unwrap();
                if !input.is_empty() {
                    assert_eq!(&stream[stream.len() - 4..], EMPTY_STORED, "ends byte-aligned, as a full flush ends");
                }
                joined.extend_from_slice(&stream);
            }
            joined.extend_from_slice(&[0x03, 0x00]);
            assert!(inflate(&joined) == inputs.concat(), "level {level}");
        }
    }

    #[test]
    fn an_empty_stream_stays_empty() {
        let mut stream = Vec::new();
        continue_stream(&mut stream).unwrap();
        assert!(stream.is_empty());
    }

    #[test]
    fn what_is_not_one_complete_stream_is_an_error_never_a_panic() {
        let inputs = inputs();
        let whole = complete(&inputs[6], 3);
        // Cut anywhere: the stream ends inside a block.
        for cut in (1..whole.len()).step_by(97).chain([whole.len() - 1]) {
            let mut stream = whole[..cut].to_vec();
            assert!(continue_stream(&mut stream).is_err(), "cut at {cut}");
        }
        let mut longer = whole.clone();
        longer.push(0);
        assert_eq!(
            continue_stream(&mut longer).unwrap_err().to_string(),
            "not a complete deflate stream: bytes after the final block"
        );
        let mut reserved = vec![0x07];
        assert_eq!(
            continue_stream(&mut reserved).unwrap_err().to_string(),
            "not a complete deflate stream: a block of the reserved type"
        );
        // A stored block whose length's complement is wrong.
        let mut stored = vec![0x01, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5];
        assert!(continue_stream(&mut stored).is_err());
        // Noise: whatever it is, no panic and no endless loop.
        let mut state: u32 = 99;
        for length in [1usize, 2, 5, 16, 300, 5000] {
            for _ in 0..200 {
                let mut stream: Vec<u8> = (0..length)
                    .map(|_| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        state.to_be_bytes()[0]
                    })
                    .collect();
                let _ = continue_stream(&mut stream);
            }
        }
    }
}
