//! Files with holes. Disks are mostly zeros: a 1 GiB GCE disk holds a UKI of 20 MB. This
//! module reads only
//! the parts of a temporary disk file the file system holds ([`data_extents`], from
//! `SEEK_DATA`/`SEEK_HOLE`) and writes files with holes where they are zero
//! ([`SparseFile`]), so a raw disk takes the room of its data on any file system with
//! holes (ext4, xfs, btrfs, tmpfs), as `cp --sparse` and `qemu-img convert` leave them.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt as _;

use anyhow::{Context, Result};

/// The granularity of holes: a file system block.
pub const BLOCK: u64 = 4096;

/// The `(offset, length)` runs of `file` (`size` bytes) that the file system stores, in
/// order; the rest reads as zeros. A file system without `SEEK_DATA` gives the whole file.
pub fn data_extents(file: &File, size: u64) -> Result<Vec<(u64, u64)>> {
    let mut extents = Vec::new();
    let mut offset = 0;
    while offset < size {
        let start = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(offset)) {
            Ok(start) => start,
            // No data from `offset` on.
            Err(rustix::io::Errno::NXIO) => break,
            // No SEEK_DATA here: all of it is data.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) if offset == 0 => return Ok(vec![(0, size)]),
            Err(e) => return Err(io::Error::from(e)).context("finding the data of a disk (SEEK_DATA)"),
        };
        let end = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(start))
            .map_err(io::Error::from)
            .context("finding the data of a disk (SEEK_HOLE)")?
            .min(size);
        if end > start {
            extents.push((start, end - start));
        }
        offset = end;
    }
    Ok(extents)
}

/// Copies `size` bytes of `file` to `out`: the data extents as read, the holes as zeros
/// written from a fixed buffer (the reader of `out` sees every byte, a hash included,
/// but nothing reads the holes).
pub fn copy_sparse(file: &File, size: u64, out: &mut dyn Write) -> Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut buffer = vec![0u8; 1 << 20];
    let mut at = 0;
    let zeros = |out: &mut dyn Write, mut count: u64| -> io::Result<()> {
        while count > 0 {
            let n = count.min(ZEROS.len() as u64);
            out.write_all(&ZEROS[..usize::try_from(n).expect("at most 64 KiB")])?;
            count -= n;
        }
        Ok(())
    };
    for (start, length) in data_extents(file, size)? {
        zeros(out, start - at)?;
        let mut done = 0;
        while done < length {
            let n = usize::try_from((length - done).min(buffer.len() as u64)).expect("at most 1 MiB");
            file.read_exact_at(&mut buffer[..n], start + done).context("reading the disk")?;
            out.write_all(&buffer[..n])?;
            done += n as u64;
        }
        at = start + length;
    }
    zeros(out, size - at)?;
    Ok(())
}

/// A new file written from its start that leaves a hole for every whole block of zeros
/// instead of writing it, whatever the sizes of the writes. [`SparseFile::finish`] writes
/// what is left and sets the length, so a file that ends in zeros has them.
pub struct SparseFile {
    file: File,
    /// Where the next block starts: everything before it is written or left as a hole.
    position: u64,
    /// Whether the file's offset is behind `position` (holes skipped since the last write).
    behind: bool,
    /// The start of the next block, until it is whole.
    pending: Vec<u8>,
}

impl SparseFile {
    /// `file` must be empty: the holes left read as zeros.
    pub fn new(file: File) -> SparseFile {
        SparseFile { file, position: 0, behind: false, pending: Vec::new() }
    }

    /// Writes the last partial block and sets the file's length, holes included.
    pub fn finish(mut self) -> io::Result<File> {
        let pending = std::mem::take(&mut self.pending);
        if pending.iter().all(|b| *b == 0) {
            self.position += pending.len() as u64;
        } else {
            self.write_data(&pending)?;
        }
        self.file.set_len(self.position)?;
        Ok(self.file)
    }

    fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        if self.behind {
            self.file.seek(SeekFrom::Start(self.position))?;
            self.behind = false;
        }
        self.file.write_all(data)?;
        self.position += data.len() as u64;
        Ok(())
    }

    /// Whole blocks: a hole for each run of zero blocks, one write for each run of others.
    fn write_blocks(&mut self, blocks: &[u8]) -> io::Result<()> {
        let block = usize::try_from(BLOCK).expect("4 KiB");
        let is_zero = |chunk: &[u8]| chunk.iter().all(|b| *b == 0);
        let mut rest = blocks;
        while !rest.is_empty() {
            let zero = is_zero(&rest[..block]);
            let mut run = block;
            while run < rest.len() && is_zero(&rest[run..run + block]) == zero {
                run += block;
            }
            if zero {
                self.position += run as u64;
                self.behind = true;
            } else {
                self.write_data(&rest[..run])?;
            }
            rest = &rest[run..];
        }
        Ok(())
    }
}

impl Write for SparseFile {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let block = usize::try_from(BLOCK).expect("4 KiB");
        let mut rest = buffer;
        if !self.pending.is_empty() {
            let n = rest.len().min(block - self.pending.len());
            self.pending.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.pending.len() < block {
                return Ok(buffer.len());
            }
            let pending = std::mem::take(&mut self.pending);
            self.write_blocks(&pending)?;
        }
        let whole = rest.len() / block * block;
        self.write_blocks(&rest[..whole])?;
        self.pending.extend_from_slice(&rest[whole..]);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads all of `reader` into a sparse copy, for tests.
#[cfg(test)]
fn sparse_copy_of(mut reader: impl io::Read) -> (File, Vec<u8>) {
    let mut sparse = SparseFile::new(tempfile::tempfile().unwrap());
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    // Odd chunk sizes cross block boundaries every way.
    for chunk in all.chunks(3000) {
        sparse.write_all(chunk).unwrap();
    }
    (sparse.finish().unwrap(), all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn zeros_become_holes_and_read_back_as_zeros() {
        let mut bytes = vec![0u8; 8 << 20];
        bytes[5000..5010].fill(7);
        bytes[(4 << 20) + 1] = 1;
        let (file, all) = sparse_copy_of(&bytes[..]);
        let mut back = Vec::new();
        (&file).seek(SeekFrom::Start(0)).unwrap();
        (&file).read_to_end(&mut back).unwrap();
        assert_eq!(back, all, "the same bytes");
        let stored = file.metadata().unwrap().blocks() * 512;
        assert!(stored <= 64 << 10, "{stored} bytes stored for 8 MiB of mostly zeros");
        // Its extents are the two data blocks, and a sparse copy of it is the same file.
        let extents = data_extents(&file, all.len() as u64).unwrap();
        assert!(extents.len() <= 2 && extents.iter().map(|(_, l)| l).sum::<u64>() <= 16 << 10, "{extents:?}");
        let mut copied = Vec::new();
        copy_sparse(&file, all.len() as u64, &mut copied).unwrap();
        assert_eq!(copied, all);
        // A file of zeros only, and one ending in data.
        let (zeros, _) = sparse_copy_of(&vec![0u8; 100_000][..]);
        assert_eq!(zeros.metadata().unwrap().len(), 100_000);
        assert!(data_extents(&zeros, 100_000).unwrap().is_empty());
        let (tail, all) = sparse_copy_of(&[&[0u8; 10_000][..], b"end"].concat()[..]);
        let mut back = Vec::new();
        (&tail).seek(SeekFrom::Start(0)).unwrap();
        (&tail).read_to_end(&mut back).unwrap();
        assert_eq!(back, all);
    }
}
