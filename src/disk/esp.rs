//! EFI system partitions: a FAT32 file system holding a UKI as the removable-media boot
//! loader (`\EFI\BOOT\BOOTX64.EFI`, `BOOTAA64.EFI`), which firmware boots without any
//! boot entry. Written with `fatfs`; every timestamp is the DOS epoch, 1980-01-01 00:00
//! ([`DosEpoch`]: without its chrono feature `fatfs` writes day 0 of month 0, a date that
//! is not one), and the volume id comes from the caller, so the bytes depend only on the
//! inputs.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt as _;

use anyhow::{Context, Result};
use fatfs::{FatType, FileSystem, FormatVolumeOptions, FsOptions};

/// Every directory entry's time: 1980-01-01 00:00, the first date FAT can hold.
#[derive(Debug)]
struct DosEpoch;

impl fatfs::TimeProvider for DosEpoch {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date { year: 1980, month: 1, day: 1 }
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime { date: self.get_current_date(), time: fatfs::Time { hour: 0, min: 0, sec: 0, millis: 0 } }
    }
}

static DOS_EPOCH: DosEpoch = DosEpoch;

/// Smallest ESP written: FAT32 with 512-byte clusters needs 65525 clusters (32 MiB), and
/// some firmware refuses smaller system partitions.
pub const MIN_SIZE: u64 = 64 << 20;

/// Most clusters a partition is given before its clusters grow: 16 Mi (a FAT of 64 MiB),
/// far below FAT32's limit of 2^28 - 12.
const MAX_CLUSTERS: u64 = 1 << 24;

/// The cluster size of a partition of `length` bytes: 512 bytes (the least waste for
/// small files) up to 8 GiB, then the smallest power of two that keeps the cluster count
/// at most [`MAX_CLUSTERS`], at most 32 KiB (the largest every FAT reader takes). So every
/// size up to 1 TiB formats as FAT32.
pub fn cluster_size(length: u64) -> u32 {
    let mut cluster: u32 = 512;
    while length / u64::from(cluster) > MAX_CLUSTERS && cluster < 32 << 10 {
        cluster *= 2;
    }
    cluster
}

/// The size of an ESP for a UKI of `uki` bytes: room for it and the FAT, in whole MiB.
pub fn size_for(uki: u64) -> u64 {
    (uki + uki / 8 + (4 << 20)).div_ceil(1 << 20).max(MIN_SIZE >> 20) << 20
}

/// The removable-media loader's file name for a PE machine.
pub fn loader_name(machine: u16) -> &'static str {
    if machine == super::pe::MACHINE_AARCH64 {
        "BOOTAA64.EFI"
    } else {
        "BOOTX64.EFI"
    }
}

/// A window of a file, as a seekable stream. Small reads go through one cached block:
/// `fatfs` reads the FAT an entry (4 bytes) at a time, so counting the free clusters of a
/// 1 GiB partition (2 Mi clusters) took as many system calls, and most of a `gcp` disk's
/// time. Writes go to the file and into the cached block they overlap.
struct Window<'f> {
    file: &'f File,
    start: u64,
    length: u64,
    position: u64,
    cached: Option<Block>,
}

/// Bytes of a window from `start` (in the window), as the file holds them.
struct Block {
    start: u64,
    bytes: Vec<u8>,
}

/// The cached block's size: reads this large or larger bypass it.
const BLOCK: u64 = 256 << 10;

impl<'f> Window<'f> {
    fn new(file: &'f File, start: u64, length: u64) -> Window<'f> {
        Window { file, start, length, position: 0, cached: None }
    }

    /// The cached block holding window offset `at` (below the window's length), read now
    /// if it is not the one cached.
    fn block(&mut self, at: u64) -> io::Result<&Block> {
        let cached = self.cached.as_ref().is_some_and(|b| at >= b.start && at - b.start < b.bytes.len() as u64);
        if !cached {
            let start = at / BLOCK * BLOCK;
            let length = usize::try_from(BLOCK.min(self.length - start)).expect("a block fits in memory");
            let mut bytes = vec![0u8; length];
            let mut filled = 0;
            while filled < length {
                match self.file.read_at(&mut bytes[filled..], self.start + start + filled as u64)? {
                    0 => break,
                    n => filled += n,
                }
            }
            bytes.truncate(filled);
            self.cached = Some(Block { start, bytes });
        }
        Ok(self.cached.as_ref().expect("just cached"))
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.length.saturating_sub(self.position)).unwrap_or(usize::MAX);
        let wanted = buffer.len().min(left);
        if wanted == 0 {
            return Ok(0);
        }
        let n = if wanted as u64 >= BLOCK {
            self.file.read_at(&mut buffer[..wanted], self.start + self.position)?
        } else {
            let at = self.position;
            let block = self.block(at)?;
            let offset = usize::try_from(at - block.start).expect("inside the block");
            let n = wanted.min(block.bytes.len().saturating_sub(offset));
            buffer[..n].copy_from_slice(&block.bytes[offset..offset + n]);
            n
        };
        self.position += n as u64;
        Ok(n)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let left = usize::try_from(self.length.saturating_sub(self.position)).unwrap_or(usize::MAX);
        if left == 0 && !buffer.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "past the end of the partition"));
        }
        let wanted = buffer.len().min(left);
        let n = self.file.write_at(&buffer[..wanted], self.start + self.position)?;
        if let Some(block) = &mut self.cached {
            // The part of the write inside the cached block.
            let (from, to) = (
                self.position.max(block.start),
                (self.position + n as u64).min(block.start + block.bytes.len() as u64),
            );
            if from < to {
                let (at, length) =
                    (usize::try_from(from - block.start).expect("inside"), usize::try_from(to - from).expect("inside"));
                let source = usize::try_from(from - self.position).expect("inside the write");
                block.bytes[at..at + length].copy_from_slice(&buffer[source..source + length]);
            }
        }
        self.position += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let position = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.length.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = position.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

/// Formats `length` bytes of `file` from `start` as FAT32 ([`cluster_size`]) labelled
/// `ESP` with `volume_id`, and writes `uki` (`uki_length` bytes) as `\EFI\BOOT\<loader>`.
pub fn write(file: &File, start: u64, length: u64, volume_id: u32, loader: &str, uki: &mut dyn Read) -> Result<()> {
    let mut window = Window::new(file, start, length);
    let options = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .bytes_per_cluster(cluster_size(length))
        .volume_id(volume_id)
        .volume_label(*b"ESP        ");
    fatfs::format_volume(&mut window, options).context("formatting the EFI system partition")?;
    window.position = 0;
    let fs = FileSystem::new(&mut window, FsOptions::new().time_provider(&DOS_EPOCH))
        .context("opening the new EFI system partition")?;
    {
        let root = fs.root_dir();
        let boot = root.create_dir("EFI")?.create_dir("BOOT")?;
        let mut out = boot.create_file(loader)?;
        io::copy(uki, &mut out).with_context(|| format!("copying the UKI to \\EFI\\BOOT\\{loader}"))?;
        out.flush()?;
    }
    // Counts the free clusters, so that the FSInfo sector records them.
    fs.stats()?;
    fs.unmount().context("closing the EFI system partition")?;
    window.position = 0;
    root_parent_to_zero(&mut window, b"EFI        ").context("fixing the \\EFI directory's '..' entry")
}

/// Sets the `..` entry of the root's subdirectory `name` to cluster 0, as the FAT
/// specification wants for a parent that is the root (`fatfs` writes the root's cluster,
/// which fsck.fat reports as invalid).
fn root_parent_to_zero(volume: &mut Window<'_>, name: &[u8; 11]) -> Result<()> {
    let mut boot = [0u8; 512];
    volume.read_exact(&mut boot)?;
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([boot[at], boot[at + 1]]));
    let u32_at = |at: usize| u64::from(u32::from_le_bytes([boot[at], boot[at + 1], boot[at + 2], boot[at + 3]]));
    let (sector, per_cluster) = (u16_at(11), u64::from(boot[13]));
    let data_start = (u16_at(14) + u64::from(boot[16]) * u32_at(36)) * sector;
    let cluster_size = per_cluster * sector;
    let cluster_offset = |cluster: u64| data_start + (cluster - 2) * cluster_size;
    let mut root = vec![0u8; usize::try_from(cluster_size).context("a cluster too large")?];
    volume.seek(SeekFrom::Start(cluster_offset(u32_at(44))))?;
    volume.read_exact(&mut root)?;
    let entry =
        root.chunks(32).find(|entry| &entry[..11] == name && entry[11] & 0x10 != 0).context("no such directory")?;
    let cluster = (u64::from(u16::from_le_bytes([entry[20], entry[21]])) << 16)
        | u64::from(u16::from_le_bytes([entry[26], entry[27]]));
    let dotdot = cluster_offset(cluster) + 32;
    let mut entry = [0u8; 32];
    volume.seek(SeekFrom::Start(dotdot))?;
    volume.read_exact(&mut entry)?;
    if &entry[..11] != b"..         " {
        anyhow::bail!("the second entry of the directory is not '..'");
    }
    entry[20..22].fill(0);
    entry[26..28].fill(0);
    volume.seek(SeekFrom::Start(dotdot))?;
    volume.write_all(&entry)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_reads_what_was_written_through_it_across_blocks() {
        let file = tempfile::tempfile().unwrap();
        let length = 3 * BLOCK + 100;
        file.set_len(length + 10).unwrap();
        let mut window = Window::new(&file, 10, length);
        let mut byte = [0u8; 1];
        window.seek(SeekFrom::Start(BLOCK - 2)).unwrap();
        window.read_exact(&mut byte).unwrap();
        assert_eq!(byte, [0], "the block around it is cached");
        // A write over the end of the cached block, then reads from both blocks.
        window.seek(SeekFrom::Start(BLOCK - 3)).unwrap();
        window.write_all(b"abcdef").unwrap();
        let mut read = [0u8; 6];
        window.seek(SeekFrom::Start(BLOCK - 3)).unwrap();
        window.read_exact(&mut read).unwrap();
        assert_eq!(&read, b"abcdef");
        // The last, short block, and the file under the window.
        window.seek(SeekFrom::Start(length - 1)).unwrap();
        window.write_all(b"z").unwrap();
        assert!(window.write_all(b"!").is_err(), "past the end");
        window.seek(SeekFrom::Start(length - 2)).unwrap();
        let mut end = Vec::new();
        window.read_to_end(&mut end).unwrap();
        assert_eq!(end, b"\0z");
        let mut under = [0u8; 6];
        file.read_exact_at(&mut under, 10 + BLOCK - 3).unwrap();
        assert_eq!(&under, b"abcdef");
    }

    #[test]
    fn large_partitions_take_larger_clusters_and_still_format() {
        const GIB: u64 = 1 << 30;
        assert_eq!(cluster_size(64 << 20), 512);
        assert_eq!(cluster_size(8 * GIB), 512);
        assert_eq!(cluster_size(8 * GIB + 512), 1024);
        assert_eq!(cluster_size(300 * GIB), 32 << 10);
        assert_eq!(cluster_size(1024 * GIB), 32 << 10);
        assert!(1024 * GIB / u64::from(cluster_size(1024 * GIB)) < 0x0fff_fff4, "within FAT32's limit");
        // A 20 GiB partition (2 KiB clusters) formats, in a sparse file, and reads back.
        let file = tempfile::tempfile().unwrap();
        file.set_len(20 * GIB).unwrap();
        write(&file, 0, 20 * GIB, 1, "BOOTX64.EFI", &mut &b"uki"[..]).unwrap();
        let fs = FileSystem::new(Window::new(&file, 0, 20 * GIB), FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), FatType::Fat32);
        assert_eq!(fs.cluster_size(), 2048);
    }

    #[test]
    fn the_loader_reads_back_and_the_bytes_are_the_same_every_time() {
        let uki: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253).to_le_bytes()[0]).collect();
        let write_one = || {
            let file = tempfile::tempfile().unwrap();
            let size = size_for(uki.len() as u64);
            file.set_len(size + 4096).unwrap();
            write(&file, 4096, size, 0x1234_5678, "BOOTX64.EFI", &mut &uki[..]).unwrap();
            let mut bytes = Vec::new();
            (&file).read_to_end(&mut bytes).unwrap();
            (file, bytes)
        };
        let (file, first) = write_one();
        let (_, second) = write_one();
        assert!(first == second, "the same bytes every time");
        let mut window = Window::new(&file, 4096, first.len() as u64 - 4096);
        let fs = FileSystem::new(&mut window, FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), FatType::Fat32);
        let mut read = Vec::new();
        fs.root_dir().open_file("EFI/BOOT/BOOTX64.EFI").unwrap().read_to_end(&mut read).unwrap();
        assert!(read == uki);
        // Every entry is dated 1980-01-01 00:00, a valid DOS date.
        let epoch = fatfs::Date { year: 1980, month: 1, day: 1 };
        for entry in fs.root_dir().open_dir("EFI/BOOT").unwrap().iter().chain(fs.root_dir().iter()) {
            let entry = entry.unwrap();
            assert_eq!(entry.modified().date, epoch, "{}", String::from_utf8_lossy(entry.short_file_name_as_bytes()));
            assert_eq!(entry.created().date, epoch, "{}", String::from_utf8_lossy(entry.short_file_name_as_bytes()));
        }
        assert_eq!(size_for(1), MIN_SIZE);
        // fsck.fat finds nothing to fix.
        let image = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(image.path(), &first[4096..]).unwrap();
        let fsck = std::process::Command::new("fsck.vfat")
            .arg("-n")
            .arg(image.path())
            .output()
            .expect("make test installs dosfstools");
        assert!(
            fsck.status.success(),
            "{}{}",
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
        assert_eq!(size_for(100 << 20) % (1 << 20), 0);
    }
}
