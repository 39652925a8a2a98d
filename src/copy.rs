//! Copying a reader to a writer through a buffer its owner keeps.
//!
//! `std::io::copy` zeroes memory on every call when the reader does not implement
//! `read_buf` (tar entries, decompressors, `dyn Read`): its 8 KiB stack buffer, or, into a
//! `BufWriter`, the writer's whole spare capacity. Called once per file, that costs more
//! than the copy itself when files are small (200k small files spent about half of the
//! assembly's CPU zeroing). [`copy`] uses a buffer initialised once by its owner.

use std::io::{self, Read, Write};

/// The size of a [`Buffer`]: large enough for big files to move in few calls.
const SIZE: usize = 64 << 10;

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

/// Copies all of `reader` to `writer` through `buffer`; returns the number of bytes.
pub fn copy(
    reader: &mut (impl Read + ?Sized),
    writer: &mut (impl Write + ?Sized),
    buffer: &mut Buffer,
) -> io::Result<u64> {
    let mut copied = 0u64;
    loop {
        let n = match reader.read(&mut buffer.0) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buffer.0[..n])?;
        copied += n as u64;
    }
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
}
