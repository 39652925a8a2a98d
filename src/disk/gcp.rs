//! `gcp`: a Google Compute Engine image import file: a gzip'd tar (GNU format) whose only
//! member is `disk.raw`, the [`super::raw_efi`] disk grown to a whole number of GiB as
//! GCE requires. LinuxKit names it `<name>.img.tar.gz`. The disk boots through UEFI, so
//! the image is created with the `UEFI_COMPATIBLE` guest OS feature.
//!
//! The member's mtime, owner and mode are fixed (0, root, 0644) and the gzip header
//! carries no time, so the same inputs give the same bytes.

use std::io::Write;

use anyhow::{Context, Result};

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
        "the `raw-efi` disk, grown to whole GiB, as `disk.raw` in a gzip'd tar for GCE image import"
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
        let mut disk = disk_image(sources, self.name(), GIB_IN_MIB)?;
        let size = disk.metadata()?.len();
        let gzip = flate2::GzBuilder::new().mtime(0).write(out, flate2::Compression::new(6));
        let mut archive = tar::Builder::new(gzip);
        let mut header = tar::Header::new_gnu();
        header.set_path("disk.raw")?;
        header.set_size(size);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        archive.append(&header, &mut disk).context("writing disk.raw into the archive")?;
        archive.into_inner()?.finish()?.flush()?;
        Ok(())
    }
}
