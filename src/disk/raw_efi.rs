//! `raw-efi`: a raw disk image that UEFI firmware boots: a GUID partition table with one
//! EFI system partition (FAT32, [`super::esp`]) holding the image's UKI as
//! `\EFI\BOOT\BOOTX64.EFI` (`BOOTAA64.EFI` on arm64). LinuxKit names it `<name>-efi.img`.
//!
//! ```text
//! LBA 0        protective MBR
//! LBA 1..33    GPT header and entries
//! LBA 2048     the EFI system partition, to the last usable LBA
//! end - 33     backup entries and header
//! ```
//!
//! The size is the smallest whole MiB that holds the ESP ([`super::esp::size_for`] the UKI),
//! or `size_mb`. The disk and partition GUIDs and the FAT volume id are derived from the
//! image's content hash, so the same inputs give the same bytes.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use anyhow::{Context, Result};

use super::gpt::{self, Guid, Partition, SECTOR};
use super::uki::temporary_uki;
use super::{DiskFormat, Sources};

pub struct RawEfi;

/// The smallest disk in MiB: an EFI system partition of [`super::esp::MIN_SIZE`] and the
/// partition tables.
pub fn min_size_mb() -> u64 {
    (super::esp::MIN_SIZE + OVERHEAD).div_ceil(1 << 20)
}

/// The bytes of a disk that are not its partition: the protective MBR and GPT before it,
/// the backup GPT after it.
const OVERHEAD: u64 = (gpt::FIRST_USABLE + 34) * SECTOR;

/// `size_mb` cannot hold what the disk must.
#[derive(Debug, thiserror::Error)]
#[error("size_mb = {given}: the disk needs at least {needed} MiB (a {uki} byte UKI in its EFI system partition)")]
pub struct TooSmall {
    pub given: u64,
    pub needed: u64,
    pub uki: u64,
}

/// The raw disk (GPT, ESP) holding `sources`' UKI, in an unnamed temporary file in
/// `sources.scratch`, read from its start. Its size is a multiple of `unit_mb` MiB: the
/// smallest that holds the ESP, or `size_mb` rounded up.
pub fn disk_image(sources: &Sources<'_>, label: &str, unit_mb: u64, phases: &mut super::Phases) -> Result<File> {
    let (mut uki, uki_length, loader) = temporary_uki(sources, phases)?;
    let esp = super::esp::size_for(uki_length);
    let needed = (esp + OVERHEAD).div_ceil(1 << 20);
    let mebibytes = match sources.size_mb {
        Some(given) if given < needed => return Err(TooSmall { given, needed, uki: uki_length }.into()),
        Some(given) => given,
        None => needed,
    }
    .div_ceil(unit_mb)
        * unit_mb;
    let sectors = (mebibytes << 20) / SECTOR;
    let disk = tempfile::tempfile_in(sources.scratch).context("a temporary file for the disk")?;
    disk.set_len(sectors * SECTOR)?;
    let seed = |what: &str| super::derived(sources, &format!("{label} {what}"));
    let partition = Partition {
        type_guid: gpt::EFI_SYSTEM,
        guid: Guid::derived(&seed("partition")),
        first_lba: gpt::FIRST_USABLE,
        last_lba: gpt::last_usable(sectors),
        name: "EFI system partition",
    };
    let (start, length) = (partition.first_lba * SECTOR, (partition.last_lba + 1 - partition.first_lba) * SECTOR);
    gpt::write(&disk, sectors, Guid::derived(&seed("disk")), &[partition])?;
    let volume_id = super::derived_volume_id(sources, &format!("{label} volume"));
    super::esp::write(&disk, start, length, volume_id, loader, &mut uki)?;
    phases.done("EFI system partition written", length);
    let mut disk = disk;
    disk.seek(SeekFrom::Start(0))?;
    Ok(disk)
}

impl DiskFormat for RawEfi {
    fn name(&self) -> &'static str {
        "raw-efi"
    }

    fn summary(&self) -> &'static str {
        "a GPT disk whose EFI system partition (FAT32) holds the UKI as the removable-media boot loader"
    }

    fn suffix(&self) -> &'static str {
        "-efi.img"
    }

    fn needs_stub(&self) -> bool {
        true
    }

    fn sized(&self) -> bool {
        true
    }

    fn write(&self, sources: &Sources<'_>, out: &mut dyn Write) -> Result<()> {
        let mut phases = super::Phases::start(self.name());
        let disk = disk_image(sources, self.name(), 1, &mut phases)?;
        let size = disk.metadata()?.len();
        crate::sparse::copy_sparse(&disk, size, out).context("copying the disk")?;
        phases.done("disk copied", size);
        Ok(())
    }
}
