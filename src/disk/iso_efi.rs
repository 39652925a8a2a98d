//! `iso-efi`: an ISO 9660 image that UEFI firmware boots from a CD, DVD or virtual
//! optical drive: an El Torito boot catalog whose one entry (platform EFI, no emulation)
//! is an EFI system partition image ([`super::esp`]) holding the UKI as the
//! removable-media loader. LinuxKit names it `<name>-efi.iso`.
//!
//! ```text
//! sector (2048 bytes)
//! 0-15    system area (zeros)
//! 16      primary volume descriptor
//! 17      El Torito boot record (the catalog's sector)
//! 18      volume descriptor set terminator
//! 19, 20  path tables (little- and big-endian): the root alone
//! 21      root directory: ".", "..", BOOT.CAT;1, EFIBOOT.IMG;1
//! 22      boot catalog: validation entry (platform 0xEF), default entry (bootable, no emulation)
//! 23-     the EFI system partition image, to the end of the volume
//! ```
//!
//! Written by hand: the crates that write ISO 9660 do not write El Torito EFI entries, and
//! the image needs only these fixed structures. Dates are fixed (LinuxKit's 2017-04-18
//! 16:30 UTC), the volume id is `RESIN`, so the same inputs give the same bytes. The
//! default entry's sector count is the ESP's in 512-byte units when it fits in 16 bits,
//! else 0, which UEFI firmware (EDK II) reads as "to the end of the volume", where the ESP
//! ends.

use std::io::Write;

use anyhow::{Context, Result};

use super::uki::temporary_uki;
use super::{DiskFormat, Sources};

const SECTOR: usize = 2048;
const SECTOR_U32: u32 = 2048;
const PVD: u32 = 16;
const PATH_TABLE_L: u32 = 19;
const PATH_TABLE_M: u32 = 20;
const ROOT: u32 = 21;
const CATALOG: u32 = 22;
const ESP: u32 = 23;
/// 2017-04-18 16:30:00 UTC, as a directory record date and a volume descriptor date.
const RECORD_DATE: [u8; 7] = [117, 4, 18, 16, 30, 0, 0];
const VOLUME_DATE: &[u8; 17] = b"2017041816300000\0";

pub struct IsoEfi;

fn both_u32(value: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&value.to_le_bytes());
    b[4..].copy_from_slice(&value.to_be_bytes());
    b
}

fn both_u16(value: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&value.to_le_bytes());
    b[2..].copy_from_slice(&value.to_be_bytes());
    b
}

/// A directory record for `id` (`\0` for ".", `\x01` for "..").
fn record(id: &[u8], extent: u32, length: u32, directory: bool) -> Vec<u8> {
    let size = 33 + id.len() + (id.len() + 1) % 2;
    let mut r = vec![0u8; size];
    r[0] = u8::try_from(size).expect("a short name");
    r[2..10].copy_from_slice(&both_u32(extent));
    r[10..18].copy_from_slice(&both_u32(length));
    r[18..25].copy_from_slice(&RECORD_DATE);
    r[25] = if directory { 0x02 } else { 0 };
    r[28..32].copy_from_slice(&both_u16(1));
    r[32] = u8::try_from(id.len()).expect("a short name");
    r[33..33 + id.len()].copy_from_slice(id);
    r
}

fn padded(text: &[u8], length: usize) -> Vec<u8> {
    let mut field = vec![b' '; length];
    field[..text.len()].copy_from_slice(text);
    field
}

/// The sectors before the ESP image, for an ESP of `esp_bytes`.
fn headers(esp_bytes: u64) -> Result<Vec<u8>> {
    let esp_sectors = u32::try_from(esp_bytes.div_ceil(SECTOR as u64)).context("an ESP beyond 8 TiB")?;
    let volume_sectors = ESP + esp_sectors;
    let esp_length = u32::try_from(esp_bytes).context("an ESP of 4 GiB or more cannot be an ISO 9660 file")?;
    let sector = |n: u32| usize::try_from(n).expect("a small sector number") * SECTOR;
    let mut image = vec![0u8; sector(ESP)];

    let root = [
        record(&[0], ROOT, SECTOR_U32, true),
        record(&[1], ROOT, SECTOR_U32, true),
        record(b"BOOT.CAT;1", CATALOG, SECTOR_U32, false),
        record(b"EFIBOOT.IMG;1", ESP, esp_length, false),
    ]
    .concat();
    image[sector(ROOT)..sector(ROOT) + root.len()].copy_from_slice(&root);

    // Primary volume descriptor.
    let pvd = &mut image[sector(PVD)..sector(PVD + 1)];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].copy_from_slice(&padded(b"", 32));
    pvd[40..72].copy_from_slice(&padded(b"RESIN", 32));
    pvd[80..88].copy_from_slice(&both_u32(volume_sectors));
    pvd[120..124].copy_from_slice(&both_u16(1));
    pvd[124..128].copy_from_slice(&both_u16(1));
    pvd[128..132].copy_from_slice(&both_u16(2048));
    pvd[132..140].copy_from_slice(&both_u32(10));
    pvd[140..144].copy_from_slice(&PATH_TABLE_L.to_le_bytes());
    pvd[148..152].copy_from_slice(&PATH_TABLE_M.to_be_bytes());
    pvd[156..190].copy_from_slice(&record(&[0], ROOT, SECTOR_U32, true));
    for (at, length) in [(190, 128), (318, 128), (446, 128), (574, 128), (702, 37), (739, 37), (776, 37)] {
        pvd[at..at + length].copy_from_slice(&padded(b"", length));
    }
    pvd[813..830].copy_from_slice(VOLUME_DATE);
    pvd[830..847].copy_from_slice(VOLUME_DATE);
    pvd[847..864].copy_from_slice(b"0000000000000000\0");
    pvd[864..881].copy_from_slice(b"0000000000000000\0");
    pvd[881] = 1;

    // El Torito boot record.
    let boot = &mut image[sector(PVD + 1)..sector(PVD + 2)];
    boot[1..6].copy_from_slice(b"CD001");
    boot[6] = 1;
    boot[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
    boot[71..75].copy_from_slice(&CATALOG.to_le_bytes());

    // Terminator.
    let end = &mut image[sector(PVD + 2)..sector(PVD + 3)];
    end[0] = 255;
    end[1..6].copy_from_slice(b"CD001");
    end[6] = 1;

    // Path tables: the root, its own parent.
    for (table, big_endian) in [(PATH_TABLE_L, false), (PATH_TABLE_M, true)] {
        let entry = &mut image[sector(table)..sector(table) + 10];
        entry[0] = 1;
        entry[2..6].copy_from_slice(&if big_endian { ROOT.to_be_bytes() } else { ROOT.to_le_bytes() });
        entry[6..8].copy_from_slice(&if big_endian { 1u16.to_be_bytes() } else { 1u16.to_le_bytes() });
    }

    // Boot catalog: the validation entry (its 16-bit words sum to 0), then the entry.
    let catalog = &mut image[sector(CATALOG)..sector(CATALOG) + 64];
    catalog[0] = 1;
    catalog[1] = 0xef;
    catalog[4..9].copy_from_slice(b"RESIN");
    catalog[30] = 0x55;
    catalog[31] = 0xaa;
    let sum = catalog[..32].chunks(2).fold(0u16, |sum, word| sum.wrapping_add(u16::from_le_bytes([word[0], word[1]])));
    catalog[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    catalog[32] = 0x88;
    let count = u16::try_from(esp_bytes / 512).unwrap_or(0);
    catalog[38..40].copy_from_slice(&count.to_le_bytes());
    catalog[40..44].copy_from_slice(&ESP.to_le_bytes());
    Ok(image)
}

impl DiskFormat for IsoEfi {
    fn name(&self) -> &'static str {
        "iso-efi"
    }

    fn summary(&self) -> &'static str {
        "an ISO 9660 image whose El Torito EFI boot entry is an EFI system partition holding the UKI"
    }

    fn suffix(&self) -> &'static str {
        "-efi.iso"
    }

    fn needs_stub(&self) -> bool {
        true
    }

    fn write(&self, sources: &Sources<'_>, out: &mut dyn Write) -> Result<()> {
        let mut phases = super::Phases::start(self.name());
        let (mut uki, uki_length, loader) = temporary_uki(sources, &mut phases)?;
        let esp_bytes = super::esp::size_for(uki_length);
        let esp = tempfile::tempfile_in(sources.scratch).context("a temporary file for the ESP")?;
        esp.set_len(esp_bytes)?;
        let volume_id = super::derived_volume_id(sources, "iso-efi volume");
        super::esp::write(&esp, 0, esp_bytes, volume_id, loader, &mut uki)?;
        phases.done("EFI system partition written", esp_bytes);
        out.write_all(&headers(esp_bytes)?)?;
        std::io::copy(&mut &esp, out).context("copying the EFI system partition")?;
        phases.done("ISO copied", esp_bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptors_and_the_catalog_are_where_readers_look() {
        let image = headers(64 << 20).unwrap();
        assert_eq!(&image[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(&image[17 * SECTOR + 7..17 * SECTOR + 30], b"EL TORITO SPECIFICATION");
        assert_eq!(image[18 * SECTOR], 255);
        let volume = u32::from_le_bytes(image[16 * SECTOR + 80..16 * SECTOR + 84].try_into().unwrap());
        assert_eq!(volume, 23 + (64 << 20) / 2048);
        let catalog = &image[22 * SECTOR..22 * SECTOR + 64];
        let sum = catalog[..32].chunks(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
        assert_eq!(sum, 0, "the validation entry's checksum");
        assert_eq!((catalog[1], catalog[32]), (0xef, 0x88), "EFI, bootable");
        assert_eq!(u16::from_le_bytes([catalog[38], catalog[39]]), 0, "64 MiB: to the end of the volume");
        assert_eq!(u32::from_le_bytes(catalog[40..44].try_into().unwrap()), 23);
        assert_eq!(u16::from_le_bytes(headers(16 << 20).unwrap()[22 * SECTOR + 38..][..2].try_into().unwrap()), 32768);
    }
}
