//! The data of an image's regular files, kept while its layers are read once: the one
//! pass over a layer that builds the union ([`super::tree`]) also copies each file's bytes
//! into an unnamed temporary file (gone when dropped, even if the process is killed), so
//! writing the initrd never decompresses a layer again. Memory stays flat: the union's
//! inodes keep where their bytes are ([`Extent`]). Readers use positioned reads, so
//! several threads can read one spool.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where one entry's bytes are in a spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
}

/// File data of some layers; each entry's place is kept by its owner (the union's inode).
#[derive(Debug)]
pub struct Spool {
    /// `None` for an empty spool (a tree with no file from a layer).
    file: Option<File>,
    /// Buffers appends until [`Spool::finish`].
    writer: Option<io::BufWriter<File>>,
    dir: PathBuf,
    length: u64,
    buffer: Option<crate::copy::Buffer>,
}

impl Spool {
    /// A spool in an unnamed temporary file in `dir`.
    pub fn new_in(dir: &Path) -> Result<Spool> {
        let created = || -> io::Result<(File, File)> {
            let file = tempfile::tempfile_in(dir)?;
            let writer = file.try_clone()?;
            Ok((file, writer))
        };
        let (file, writer) = created().with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        Ok(Spool {
            file: Some(file),
            // No larger than the copy buffer: a large file's data is written straight
            // through, small files' gathered.
            writer: Some(io::BufWriter::with_capacity(crate::copy::SIZE, writer)),
            dir: dir.to_path_buf(),
            length: 0,
            buffer: Some(crate::copy::Buffer::new()),
        })
    }

    /// How many bytes of data were appended.
    pub fn data_bytes(&self) -> u64 {
        self.length
    }

    /// A spool with nothing in it and no file: for a tree with no file from a layer.
    pub fn empty() -> Spool {
        Spool { file: None, writer: None, dir: PathBuf::new(), length: 0, buffer: None }
    }

    fn failed(&self) -> String {
        format!("keeping layer data in a temporary file in {}", self.dir.display())
    }

    /// Copies `data` (the whole data of one entry) into the spool. Returns where it is.
    pub fn append(&mut self, data: &mut dyn Read) -> Result<Extent> {
        let (Some(writer), Some(buffer)) = (&mut self.writer, &mut self.buffer) else {
            bail!("the spool is finished, or has no file");
        };
        let copied = crate::copy::copy(data, writer, buffer).with_context(|| self.failed())?;
        let extent = Extent { offset: self.length, length: copied };
        self.length += copied;
        Ok(extent)
    }

    /// Ends the appends: what was appended can be read from now on.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush().with_context(|| self.failed())?;
        }
        self.buffer = None;
        Ok(())
    }

    /// The data at `extent` (`None`: never kept), which must be `length` bytes.
    pub fn reader(&self, extent: Option<Extent>, length: u64) -> Result<SpoolReader<'_>> {
        if self.writer.is_some() {
            bail!("the spool is read before it is finished");
        }
        let (Some(file), Some(extent)) = (&self.file, extent) else {
            bail!("the data was not kept");
        };
        if extent.length != length || extent.offset + extent.length > self.length {
            bail!("the data kept has {} bytes, not {length}", extent.length);
        }
        Ok(SpoolReader { file, position: extent.offset, end: extent.offset + extent.length })
    }
}

/// Reads one entry's bytes back.
pub struct SpoolReader<'a> {
    file: &'a File,
    position: u64,
    end: u64,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.position).unwrap_or(usize::MAX);
        let wanted = buffer.len().min(left);
        if wanted == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buffer[..wanted], self.position)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the spool ended early"));
        }
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new_in(dir.path()).unwrap();
        let first = Some(spool.append(&mut &b"first"[..]).unwrap());
        let empty = Some(spool.append(&mut &b""[..]).unwrap());
        let big = Some(spool.append(&mut &vec![7u8; 300_000][..]).unwrap());
        assert!(spool.reader(first, 5).is_err(), "not finished");
        spool.finish().unwrap();
        let read = |extent, length| {
            let mut bytes = Vec::new();
            spool.reader(extent, length).unwrap().read_to_end(&mut bytes).unwrap();
            bytes
        };
        assert_eq!(read(big, 300_000), vec![7u8; 300_000]);
        assert_eq!(read(first, 5), b"first");
        assert_eq!(read(empty, 0), b"");
        assert!(spool.reader(first, 4).is_err(), "a length that does not match is an error");
        assert!(spool.reader(None, 0).is_err());
        assert!(spool.reader(Some(Extent { offset: 300_000, length: 10 }), 10).is_err(), "beyond the end");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "the spool has no name");
        assert!(spool.append(&mut &b"late"[..]).is_err(), "a finished spool takes nothing more");
        let mut empty = Spool::empty();
        assert!(empty.append(&mut &b"nowhere"[..]).is_err());
        assert!(empty.reader(None, 0).is_err());
    }
}
