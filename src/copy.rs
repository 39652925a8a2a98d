//! Copying a reader to a writer through a buffer its owner keeps.
//!
//! `std::io::copy` zeroes memory on every call when the reader does not implement
//! `read_buf` (tar entries, decompressors, `dyn Read`): its 8 KiB stack buffer, or, into a
//! `BufWriter`, the writer's whole spare capacity. Called once per file, that costs more
//! than the copy itself when files are small (200k small files spent about half of the
//! assembly's CPU zeroing). [`copy`] uses a buffer initialised once by its owner, and fills
//! it before each write: a `BufWriter` of at most [`SIZE`] bytes passes such writes
//! straight through instead of copying them into its own buffer first.

use std::io::{self, Read, Write};

/// The size of a [`Buffer`]: large enough for big files to move in few calls.
pub const SIZE: usize = 64 << 10;

/// A copy buffer, zeroed once when made.
pub struct Buffer(Box<[u8]>);

impl Buffer {
    pub fn new() -> Buffer {
        Buffer(vec![0u8; SIZE].into_boxed_slice())
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({} bytes)", self.0.len())
    }
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer::new()
    }
}

/// Copies all of `reader` to `writer` through `buffer`, a whole buffer at a time but the
/// last; returns the number of bytes.
pub fn copy(
    reader: &mut (impl Read + ?Sized),
    writer: &mut (impl Write + ?Sized),
    buffer: &mut Buffer,
) -> io::Result<u64> {
    let mut copied = 0u64;
    loop {
        let n = fill(reader, &mut buffer.0)?;
        writer.write_all(&buffer.0[..n])?;
        copied += n as u64;
        if n < buffer.0.len() {
            return Ok(copied);
        }
    }
}

/// Reads into all of `buffer` unless the reader ends first; returns the bytes read.
fn fill(reader: &mut (impl Read + ?Sized), buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_everything_across_buffer_sizes() {
        let mut buffer = Buffer::new();
        for length in [0, 1, SIZE - 1, SIZE, SIZE + 1, 3 * SIZE + 17] {
            let data: Vec<u8> = (0..length).map(|i| (i % 251).to_le_bytes()[0]).collect();
            let mut out = Vec::new();
            assert_eq!(copy(&mut &data[..], &mut out, &mut buffer).unwrap(), length as u64);
            assert_eq!(out, data);
        }
    }

    #[test]
    fn short_reads_are_gathered_into_whole_buffers() {
        /// Reads at most 1000 bytes at a time.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
                let n = buffer.len().min(1000).min(self.0.len());
                buffer[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        /// Records the length of each write.
        struct Writes(Vec<usize>, Vec<u8>);
        impl Write for Writes {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.push(bytes.len());
                self.1.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data: Vec<u8> = (0..2 * SIZE + 5).map(|i| (i % 249).to_le_bytes()[0]).collect();
        let mut writes = Writes(Vec::new(), Vec::new());
        assert_eq!(copy(&mut Trickle(&data), &mut writes, &mut Buffer::new()).unwrap(), data.len() as u64);
        assert_eq!(writes.0, [SIZE, SIZE, 5]);
        assert_eq!(writes.1, data);
    }
}
