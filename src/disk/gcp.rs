//! `gcp`: a Google Compute Engine image import file: a gzip'd tar (GNU format) whose only
//! member is `disk.raw`, the [`super::raw_efi`] disk grown to a whole number of GiB as
//! GCE requires. LinuxKit names it `<name>.img.tar.gz`. The disk boots through UEFI, so
//! the image is created with the `UEFI_COMPATIBLE` guest OS feature.
//!
//! `disk.raw` is a GNU sparse member, as Google's instructions make it (`tar
//! --format=oldgnu -S`): the header lists the disk's data regions (4 KiB blocks that are
//! not all zero) and only their bytes follow, so the gigabyte of zeros around the EFI
//! system partition is neither compressed nor stored. The `tar` crate reads such members
//! but does not write them; the header is written here on its GNU header type.
//!
//! The member's mtime, owner and mode are fixed (0, root, 0644) and the gzip header
//! carries no time, so the same inputs give the same bytes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{bail, Context, Result};

use super::raw_efi::disk_image;
use super::{DiskFormat, Sources};

/// GCE takes raw disks of whole GiB.
const GIB_IN_MIB: u64 = 1024;

pub struct Gcp;

impl DiskFormat for Gcp {
    fn name(&self) -> &'static str {
        "gcp"
    }

    fn summary(&self) -> &'static str {
        "the `raw-efi` disk, grown to whole GiB, as `disk.raw` (a sparse member) in a gzip'd tar for GCE image import"
    }

    fn suffix(&self) -> &'static str {
        ".img.tar.gz"
    }

    fn needs_stub(&self) -> bool {
        true
    }

    fn sized(&self) -> bool {
        true
    }

    fn write(&self, sources: &Sources<'_>, out: &mut dyn Write) -> Result<()> {
        let mut phases = super::Phases::start(self.name());
        let mut disk = disk_image(sources, self.name(), GIB_IN_MIB, &mut phases)?;
        let size = disk.metadata()?.len();
        let regions = data_regions(&mut disk, size).context("finding the disk's data")?;
        phases.done("data regions found", regions.iter().map(|(_, length)| length).sum());
        let mut gzip = flate2::GzBuilder::new().mtime(0).write(out, flate2::Compression::new(6));
        write_sparse_member(&mut gzip, "disk.raw", size, &regions, &mut disk)
            .context("writing disk.raw into the archive")?;
        gzip.finish()?.flush()?;
        phases.done("archive compressed", size);
        Ok(())
    }
}

/// Granularity of the sparse map.
const BLOCK: u64 = 4096;
const TAR_BLOCK: usize = 512;

/// The `(offset, length)` runs of 4 KiB blocks of `file` that are not all zero, in order:
/// only the extents the file system stores are read ([`crate::sparse::data_extents`]).
fn data_regions(file: &mut File, size: u64) -> Result<Vec<(u64, u64)>> {
    let mut regions: Vec<(u64, u64)> = Vec::new();
    let mut block = vec![0u8; usize::try_from(BLOCK).expect("4 KiB")];
    // Where the blocks scanned so far end (extents of a file system with smaller blocks
    // may share one of ours).
    let mut scanned = 0;
    for (start, length) in crate::sparse::data_extents(file, size)? {
        let mut offset = (start / BLOCK * BLOCK).max(scanned);
        file.seek(SeekFrom::Start(offset))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &mut *file);
        while offset < start + length {
            let length = BLOCK.min(size - offset);
            let block = &mut block[..usize::try_from(length).expect("at most 4 KiB")];
            reader.read_exact(block)?;
            if block.iter().any(|b| *b != 0) {
                match regions.last_mut() {
                    Some((start, run)) if *start + *run == offset => *run += length,
                    _ => regions.push((offset, length)),
                }
            }
            offset += length;
        }
        scanned = offset;
    }
    Ok(regions)
}

/// `value` as `width - 1` octal digits and a NUL, as tar's numeric fields are written.
fn octal(field: &mut [u8], value: u64) -> Result<()> {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    if digits.len() != field.len() - 1 {
        bail!("{value} does not fit a {}-byte tar field", field.len());
    }
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[digits.len()] = 0;
    Ok(())
}

/// Writes a whole archive of one old-GNU sparse member `name` of `size` bytes whose data
/// is `regions` of `file` (the rest zeros): the header with the first four regions, as
/// many extension headers of 21 as the others need, the regions' bytes, the end blocks.
/// A map that ends before the file does ends with an empty region at `size`, as GNU tar
/// writes it.
fn write_sparse_member(
    out: &mut impl Write,
    name: &str,
    size: u64,
    regions: &[(u64, u64)],
    file: &mut File,
) -> Result<()> {
    let mut map = regions.to_vec();
    if map.last().is_none_or(|(offset, length)| offset + length < size) {
        map.push((size, 0));
    }
    let stored: u64 = map.iter().map(|(_, length)| length).sum();
    let mut header = tar::Header::new_gnu();
    header.set_path(name)?;
    header.set_size(stored);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::GNUSparse);
    let (first, rest) = map.split_at(map.len().min(4));
    {
        let gnu = header.as_gnu_mut().context("a GNU header")?;
        for (entry, (offset, length)) in gnu.sparse.iter_mut().zip(first) {
            octal(&mut entry.offset, *offset)?;
            octal(&mut entry.numbytes, *length)?;
        }
        gnu.isextended[0] = u8::from(!rest.is_empty());
        octal(&mut gnu.realsize, size)?;
    }
    header.set_cksum();
    out.write_all(header.as_bytes())?;
    let chunks: Vec<&[(u64, u64)]> = rest.chunks(21).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let mut extension = tar::GnuExtSparseHeader::new();
        for (entry, (offset, length)) in extension.sparse.iter_mut().zip(chunk.iter()) {
            octal(&mut entry.offset, *offset)?;
            octal(&mut entry.numbytes, *length)?;
        }
        extension.isextended[0] = u8::from(index + 1 < chunks.len());
        out.write_all(extension.as_bytes())?;
    }
    for (offset, length) in &map {
        file.seek(SeekFrom::Start(*offset))?;
        let copied = std::io::copy(&mut (&mut *file).take(*length), out)?;
        if copied != *length {
            bail!("the disk ended at {} of {size} bytes", offset + copied);
        }
    }
    let padding = (TAR_BLOCK - usize::try_from(stored % TAR_BLOCK as u64).expect("under 512")) % TAR_BLOCK;
    out.write_all(&vec![0u8; padding + 2 * TAR_BLOCK])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_member_reads_back_as_the_whole_file() {
        // Data at the start, a run in the middle, a hole at the end: more than four regions,
        // so extension headers follow.
        let mut bytes = vec![0u8; 40 * 4096 + 100];
        for block in [0usize, 1, 5, 9, 12, 13, 20, 22, 30] {
            bytes[block * 4096 + 7] = u8::try_from(block).unwrap() + 1;
        }
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let regions = data_regions(&mut file, bytes.len() as u64).unwrap();
        assert_eq!(regions[0], (0, 2 * 4096), "adjacent blocks make one region");
        assert_eq!(regions.len(), 7);
        let mut archive = Vec::new();
        write_sparse_member(&mut archive, "disk.raw", bytes.len() as u64, &regions, &mut file).unwrap();
        assert_eq!(archive.len() % 512, 0);
        let mut reader = tar::Archive::new(&archive[..]);
        let mut entries = reader.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.header().entry_type(), tar::EntryType::GNUSparse);
        assert_eq!(entry.path().unwrap().to_str(), Some("disk.raw"));
        let mut read = Vec::new();
        entry.read_to_end(&mut read).unwrap();
        assert_eq!(read.len(), bytes.len());
        assert!(read == bytes, "the same bytes, holes as zeros");
        assert!(entries.next().is_none());
    }
}
