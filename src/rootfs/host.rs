//! Files on the machine running the provider (`file { source = ... }`): only regular
//! files are read. A FIFO, a device (`/dev/zero`), a socket or a directory is refused
//! before a byte is read, and the open itself never blocks (a FIFO without a writer
//! would block an ordinary open forever).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::oci::digest::Digest;
use crate::oci::hashing::HashingReader;

/// `O_NONBLOCK` on Linux (every architecture resin builds for).
const O_NONBLOCK: i32 = 0o4000;

/// What a non-regular file is, for messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` (following symlinks) for reading if it is a regular file.
pub fn open_regular(path: &Path) -> Result<File> {
    // The type is checked on the opened file, so it cannot change in between.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let file_type = file.metadata().with_context(|| format!("reading the metadata of {}", path.display()))?.file_type();
    if !file_type.is_file() {
        bail!("{} is {}: a file source must be a regular file", path.display(), kind_of(file_type));
    }
    Ok(file)
}

/// The sha256 and size of a regular file.
pub fn digest_regular(path: &Path) -> Result<(Digest, u64)> {
    let mut reader = HashingReader::new(open_regular(path)?);
    std::io::copy(&mut reader, &mut std::io::sink()).with_context(|| format!("reading {}", path.display()))?;
    Ok(reader.finish())
}

/// A regular file that must still be what the plan hashed: reading it yields exactly
/// `size` bytes, and the read that completes them fails instead if they do not hash to
/// the planned digest. So the bytes written from it are the planned ones, or the write
/// fails (before anything is published).
pub struct PlannedFile {
    reader: HashingReader<std::io::Take<File>>,
    expected: Digest,
    size: u64,
    /// The error of a file that is not as expected.
    mismatch: String,
}

impl PlannedFile {
    pub fn open(path: &Path, expected: &Digest, size: u64) -> Result<PlannedFile> {
        let mismatch = format!(
            "{} changed since the plan (the plan saw {size} bytes hashing to {expected}); run terraform plan again",
            path.display()
        );
        Ok(PlannedFile {
            reader: HashingReader::new(open_regular(path)?.take(size)),
            expected: expected.clone(),
            size,
            mismatch,
        })
    }

    /// Opens a file that must be exactly `size` bytes hashing to `expected` (a file resin
    /// wrote, read back to build another from it): one of another length fails at once,
    /// one of other bytes on the read that completes it, both with the error `mismatch`.
    pub fn exactly(path: &Path, expected: &Digest, size: u64, mismatch: String) -> Result<PlannedFile> {
        let file = open_regular(path)?;
        let length = file.metadata().with_context(|| format!("reading the metadata of {}", path.display()))?.len();
        if length != size {
            bail!("{mismatch} (it is {length} bytes, not {size})");
        }
        Ok(PlannedFile { reader: HashingReader::new(file.take(size)), expected: expected.clone(), size, mismatch })
    }
}

impl Read for PlannedFile {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buffer)?;
        let read = self.reader.bytes_read();
        // Checked on the read that completes the planned size, or that finds the file short.
        let complete = read == self.size && (n > 0 || self.size == 0);
        if (complete || n == 0) && (read != self.size || self.reader.digest_so_far() != self.expected) {
            return Err(std::io::Error::other(self.mismatch.clone()));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, b"secret").unwrap();
        assert_eq!(digest_regular(&file).unwrap(), (crate::oci::digest::sha256(b"secret"), 6));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(digest_regular(&link).unwrap().1, 6, "a symlink to a regular file is followed");

        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        for (path, kind) in
            [(fifo.as_path(), "a FIFO"), (Path::new("/dev/zero"), "a character device"), (dir.path(), "a directory")]
        {
            // A FIFO without a writer must not block: this returns at once.
            let err = digest_regular(path).unwrap_err();
            assert!(format!("{err:#}").contains(kind), "{}: {err:#}", path.display());
        }
    }

    #[test]
    fn a_changed_file_is_not_copied_as_planned() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"planned").unwrap();
        let (digest, size) = digest_regular(&file).unwrap();
        let mut out = Vec::new();
        std::io::copy(&mut PlannedFile::open(&file, &digest, size).unwrap(), &mut out).unwrap();
        assert_eq!(out, b"planned");
        // Grown files give the planned prefix only when it is unchanged.
        std::fs::write(&file, b"planned and more").unwrap();
        let mut out = Vec::new();
        std::io::copy(&mut PlannedFile::open(&file, &digest, size).unwrap(), &mut out).unwrap();
        assert_eq!(out, b"planned");
        for edited in [&b"planted"[..], b"plan", b"planted and more", b""] {
            std::fs::write(&file, edited).unwrap();
            let err =
                std::io::copy(&mut PlannedFile::open(&file, &digest, size).unwrap(), &mut Vec::new()).unwrap_err();
            assert!(err.to_string().contains("changed since the plan"), "{edited:?}: {err:#}");
        }
    }
}
