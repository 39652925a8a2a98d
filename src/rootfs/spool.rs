//! The data of an image's regular files, kept while its layers are read once: the one
//! pass over a layer that builds the union ([`super::tree`]) also copies each file's bytes
//! into an unnamed temporary file (gone when dropped, even if the process is killed), so
//! writing the initrd never decompresses a layer again. Memory stays flat: only offsets
//! are kept. Readers use positioned reads, so several threads can read one spool.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where the bytes of entry `ordinal` of layer `layer` are.
#[derive(Clone, Copy, Debug)]
struct Extent {
    offset: u64,
    length: u64,
}

/// File data of some layers, by (layer, entry ordinal).
#[derive(Debug)]
pub struct Spool {
    /// `None` for a union read for its metadata only: data is skipped.
    file: Option<File>,
    /// Buffers appends until [`Spool::finish`].
    writer: Option<io::BufWriter<File>>,
    dir: PathBuf,
    length: u64,
    extents: HashMap<(usize, usize), Extent>,
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
            writer: Some(io::BufWriter::with_capacity(1 << 20, writer)),
            dir: dir.to_path_buf(),
            length: 0,
            extents: HashMap::new(),
        })
    }

    /// A spool that keeps nothing: for a union wanted for its metadata.
    pub fn discarding() -> Spool {
        Spool { file: None, writer: None, dir: PathBuf::new(), length: 0, extents: HashMap::new() }
    }

    fn failed(&self) -> String {
        format!("keeping layer data in a temporary file in {}", self.dir.display())
    }

    /// Copies `data` (the whole data of entry `ordinal` of layer `layer`) into the spool.
    pub fn append(&mut self, layer: usize, ordinal: usize, data: &mut dyn Read) -> Result<()> {
        let Some(writer) = &mut self.writer else {
            if self.file.is_some() {
                bail!("the spool is finished");
            }
            return Ok(());
        };
        let copied = io::copy(data, writer).with_context(|| self.failed())?;
        self.extents.insert((layer, ordinal), Extent { offset: self.length, length: copied });
        self.length += copied;
        Ok(())
    }

    /// Ends the appends: what was appended can be read from now on.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush().with_context(|| self.failed())?;
        }
        Ok(())
    }

    /// The data of entry `ordinal` of layer `layer`, which must be `length` bytes.
    pub fn reader(&self, layer: usize, ordinal: usize, length: u64) -> Result<SpoolReader<'_>> {
        if self.writer.is_some() {
            bail!("the spool is read before it is finished");
        }
        let (Some(file), Some(extent)) = (&self.file, self.extents.get(&(layer, ordinal))) else {
            bail!("entry {} of layer {} was not kept", ordinal + 1, layer + 1);
        };
        if extent.length != length {
            bail!("entry {} of layer {} has {} bytes, not {length}", ordinal + 1, layer + 1, extent.length);
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
    fn entries_read_back_by_layer_and_ordinal_from_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new_in(dir.path()).unwrap();
        spool.append(0, 3, &mut &b"first"[..]).unwrap();
        spool.append(1, 0, &mut &b""[..]).unwrap();
        spool.append(1, 7, &mut &vec![7u8; 300_000][..]).unwrap();
        assert!(spool.reader(0, 3, 5).is_err(), "not finished");
        spool.finish().unwrap();
        let read = |layer, ordinal, length| {
            let mut bytes = Vec::new();
            spool.reader(layer, ordinal, length).unwrap().read_to_end(&mut bytes).unwrap();
            bytes
        };
        assert_eq!(read(1, 7, 300_000), vec![7u8; 300_000]);
        assert_eq!(read(0, 3, 5), b"first");
        assert_eq!(read(1, 0, 0), b"");
        assert!(spool.reader(0, 3, 4).is_err(), "a length that does not match is an error");
        assert!(spool.reader(2, 0, 0).is_err());
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "the spool has no name");
        let mut discarding = Spool::discarding();
        discarding.append(0, 0, &mut &b"dropped"[..]).unwrap();
        assert!(discarding.reader(0, 0, 7).is_err());
    }
}
