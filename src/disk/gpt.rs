//! A GUID partition table (UEFI specification, chapter 5) over a disk image file: the
//! protective MBR, the primary header and entries at LBAs 1 and 2, their backups at the
//! end of the disk.
//!
//! Written by hand: it is a few fixed-layout structures and two CRC32s, and the crates
//! (`gpt`, `gptman`) bring device handling and random GUIDs resin would have to work
//! around to get the same bytes from the same inputs.

use std::fs::File;
use std::os::unix::fs::FileExt as _;

use anyhow::{bail, Result};

/// Bytes per sector (logical block).
pub const SECTOR: u64 = 512;
const SECTOR_BYTES: usize = 512;
const ENTRIES: usize = 128;
const ENTRY_SIZE: usize = 128;
/// Sectors the entries take: 128 entries of 128 bytes.
const ENTRY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE / SECTOR_BYTES) as u64;

/// The EFI system partition type, C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
pub const EFI_SYSTEM: Guid = Guid::from_text_bytes([
    0xc1, 0x2a, 0x73, 0x28, 0xf8, 0x1f, 0x11, 0xd2, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
]);

/// A GUID, kept in its on-disk byte order (the first three fields little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid([u8; 16]);

impl Guid {
    /// From the bytes in the order the text form shows them.
    pub const fn from_text_bytes(b: [u8; 16]) -> Guid {
        Guid([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
    }

    /// A version-4-shaped GUID made of `bytes` (a hash): the same bytes, the same GUID.
    pub fn derived(bytes: &[u8]) -> Guid {
        let mut b = [0u8; 16];
        b.copy_from_slice(&bytes[..16]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid::from_text_bytes(b)
    }
}

/// One partition.
pub struct Partition<'a> {
    pub type_guid: Guid,
    pub guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub name: &'a str,
}

/// The first LBA partitions may use (1 MiB: aligned for any storage).
pub const FIRST_USABLE: u64 = 2048;

/// The last LBA partitions may use on a disk of `sectors`.
pub fn last_usable(sectors: u64) -> u64 {
    sectors - 2 - ENTRY_SECTORS
}

fn header(sectors: u64, disk: Guid, primary: bool, entries_crc: u32) -> [u8; SECTOR_BYTES] {
    let mut h = [0u8; SECTOR_BYTES];
    let (current, backup) = if primary { (1, sectors - 1) } else { (sectors - 1, 1) };
    let entries_lba = if primary { 2 } else { sectors - 1 - ENTRY_SECTORS };
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&current.to_le_bytes());
    h[32..40].copy_from_slice(&backup.to_le_bytes());
    h[40..48].copy_from_slice(&(2 + ENTRY_SECTORS).to_le_bytes());
    h[48..56].copy_from_slice(&last_usable(sectors).to_le_bytes());
    h[56..72].copy_from_slice(&disk.0);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&128u32.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

fn protective_mbr(sectors: u64) -> [u8; SECTOR_BYTES] {
    let mut m = [0u8; SECTOR_BYTES];
    let entry = &mut m[446..462];
    entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    entry[4] = 0xee;
    entry[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&1u32.to_le_bytes());
    entry[12..16].copy_from_slice(&u32::try_from(sectors - 1).unwrap_or(u32::MAX).to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xaa;
    m
}

/// Writes the partition table of a disk of `sectors` sectors into `file` (already that
/// size; the partitions' contents are written separately).
pub fn write(file: &File, sectors: u64, disk: Guid, partitions: &[Partition<'_>]) -> Result<()> {
    if partitions.len() > ENTRIES {
        bail!("more than {ENTRIES} partitions");
    }
    let mut entries = vec![0u8; ENTRIES * ENTRY_SIZE];
    for (index, partition) in partitions.iter().enumerate() {
        if partition.first_lba < FIRST_USABLE
            || partition.last_lba > last_usable(sectors)
            || partition.last_lba < partition.first_lba
        {
            bail!("partition {:?} does not fit the disk", partition.name);
        }
        let entry = &mut entries[index * ENTRY_SIZE..][..ENTRY_SIZE];
        entry[0..16].copy_from_slice(&partition.type_guid.0);
        entry[16..32].copy_from_slice(&partition.guid.0);
        entry[32..40].copy_from_slice(&partition.first_lba.to_le_bytes());
        entry[40..48].copy_from_slice(&partition.last_lba.to_le_bytes());
        for (at, unit) in partition.name.encode_utf16().take(36).enumerate() {
            entry[56 + 2 * at..58 + 2 * at].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let entries_crc = crc32fast::hash(&entries);
    file.write_all_at(&protective_mbr(sectors), 0)?;
    file.write_all_at(&header(sectors, disk, true, entries_crc), SECTOR)?;
    file.write_all_at(&entries, 2 * SECTOR)?;
    file.write_all_at(&entries, (sectors - 1 - ENTRY_SECTORS) * SECTOR)?;
    file.write_all_at(&header(sectors, disk, false, entries_crc), (sectors - 1) * SECTOR)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_back_with_its_crcs() {
        let file = tempfile::tempfile().unwrap();
        let sectors = 8192;
        file.set_len(sectors * SECTOR).unwrap();
        let partition = Partition {
            type_guid: EFI_SYSTEM,
            guid: Guid::derived(&[7u8; 32]),
            first_lba: FIRST_USABLE,
            last_lba: last_usable(sectors),
            name: "EFI system",
        };
        write(&file, sectors, Guid::derived(&[9u8; 32]), &[partition]).unwrap();
        let mut header = [0u8; 92];
        file.read_exact_at(&mut header, SECTOR).unwrap();
        assert_eq!(&header[..8], b"EFI PART");
        let stored = u32::from_le_bytes(header[16..20].try_into().unwrap());
        header[16..20].fill(0);
        assert_eq!(crc32fast::hash(&header), stored);
        let mut entry = [0u8; 16];
        file.read_exact_at(&mut entry, 2 * SECTOR).unwrap();
        assert_eq!(
            entry,
            [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b]
        );
        let mut backup = [0u8; 8];
        file.read_exact_at(&mut backup, (sectors - 1) * SECTOR).unwrap();
        assert_eq!(&backup, b"EFI PART");
        let mut mbr = [0u8; 2];
        file.read_exact_at(&mut mbr, 510).unwrap();
        assert_eq!(mbr, [0x55, 0xaa]);
    }
}
