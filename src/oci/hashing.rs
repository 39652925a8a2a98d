//! sha256 while bytes stream: a reader and a writer that hash and count what passes
//! through them, so content is verified in the same pass that uses it.

use std::io::{self, Read, Write};

use sha2::Digest as _;

use super::digest::Digest;

/// Hashes and counts what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: sha2::Sha256::new(), read: 0 }
    }

    /// The digest and length of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (super::digest::from_hash(&self.hasher.finalize()), self.read)
    }

    /// How many bytes were read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The digest of everything read so far; reading may go on.
    pub fn digest_so_far(&self) -> Digest {
        super::digest::from_hash(&self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Hashes and counts what is written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: sha2::Sha256::new(), written: 0 }
    }

    /// How many bytes were written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest and length of everything written so far.
    pub fn finish(self) -> (Digest, u64) {
        (super::digest::from_hash(&self.hasher.finalize()), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_passes() {
        let mut reader = HashingReader::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        reader.read_exact(&mut first).unwrap();
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(reader.finish(), (crate::oci::digest::sha256(b"hello world"), 11));
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        assert_eq!(writer.finish(), (crate::oci::digest::sha256(b"hello world"), 11));
    }
}
