//! The newc cpio format, byte for byte, as resin writes it.
//!
//! An entry is a 110-byte ASCII header, the name, and the data:
//!
//! ```text
//! "070701"                  magic
//! 13 fields of 8 uppercase hex digits, in this order:
//!   ino                     sequential from 1 within a segment, in write order
//!   mode                    file type bits | permission bits (setuid, setgid, sticky kept)
//!   uid, gid                from the layer (or 0 for generated entries)
//!   nlink                   1; a hard-link group writes its size to every member
//!   mtime                   from the layer, clamped to 0..=u32::MAX; generated entries
//!                           use a fixed time
//!   filesize                data length; a file of 4 GiB or more is an error
//!   devmajor, devminor      the segment's device number, 64 bits of its key: (dev, ino)
//!                           identifies an inode across independently written segments
//!   rdevmajor, rdevminor    device numbers of character and block devices, else 0
//!   namesize                name length + 1 (the NUL)
//!   check                   0
//! name, NUL, then NULs until header + name is a multiple of 4
//! data, then NULs until it is a multiple of 4
//! ```
//!
//! Names are relative paths without a leading `/` or `./` and may be any bytes but NUL
//! (layers can carry non-UTF-8 names, which is why resin writes newc itself instead of
//! using the `cpio` crate, whose names are `&str`). Hard links: every member of a group
//! has the same `ino` and `nlink` = group size; all but the last have size 0 and the last
//! carries the data, which both the kernel and GNU cpio turn into real hard links.
//!
//! Segments are written independently and concatenated; each is a multiple of 4 bytes, so
//! alignment holds across them. The archive ends with the `TRAILER!!!` entry (all fields
//! 0 but nlink 1) and NULs up to a multiple of 512 bytes.
//!
//! Names newc cannot carry: an entry named `TRAILER!!!` is refused (readers stop there, so
//! every later entry would vanish). Names the kernel's initramfs unpacker cannot create
//! (a component over 255 bytes, a name of 4096 bytes or more, a symlink target of 4096
//! bytes or more) are written, since they harm nothing else, and listed by
//! [`SegmentWriter::uncreatable`] so that the caller can warn about them.

use std::io::{self, Read, Write};

use anyhow::{bail, Context, Result};

use crate::rootfs::tree::{Meta, Walked};

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFIFO: u32 = 0o010000;

/// Largest file size newc can record.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// The name of the end-of-archive entry.
pub const TRAILER: &[u8] = b"TRAILER!!!";
/// Longest file name component the kernel creates (NAME_MAX).
pub const MAX_COMPONENT: usize = 255;
/// PATH_MAX: the kernel skips names (with their NUL) and symlink targets longer than this.
pub const MAX_PATH: usize = 4096;

/// Why the kernel cannot create an entry with this name (or symlink target), if it cannot.
pub fn uncreatable_reason(name: &[u8], symlink_target: Option<&[u8]>) -> Option<String> {
    if name.len() + 1 > MAX_PATH {
        return Some(format!(
            "its path is {} bytes, and the kernel skips paths of {MAX_PATH} bytes or more",
            name.len()
        ));
    }
    if let Some(component) = name.split(|b| *b == b'/').find(|c| c.len() > MAX_COMPONENT) {
        return Some(format!("a path component is {} bytes, longer than {MAX_COMPONENT} bytes", component.len()));
    }
    if let Some(target) = symlink_target.filter(|t| t.len() >= MAX_PATH) {
        return Some(format!(
            "its symlink target is {} bytes, and the kernel skips targets of {MAX_PATH} bytes or more",
            target.len()
        ));
    }
    None
}

/// Metadata of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// Device numbers of character and block devices.
    pub rdev: (u32, u32),
}

fn pad4(n: u64) -> usize {
    ((4 - (n % 4)) % 4) as usize
}

/// Where a [`SegmentWriter`] writes: a writer told where each entry ends, the points at
/// which the stream may be cut into separately compressed members ([`super::zstd`]).
pub trait EntrySink: Write {
    /// The bytes written so far end an entry (data and padding included).
    fn entry_end(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Writes an entry's data: `size` bytes of `data` (through `buffer`, unless the sink
    /// reads into buffers of its own); returns how many there were (fewer: `data` ended).
    fn write_data(&mut self, data: &mut dyn Read, size: u64, buffer: &mut crate::copy::Buffer) -> io::Result<u64> {
        crate::copy::copy(&mut data.take(size), self, buffer)
    }
}

impl EntrySink for Vec<u8> {}

impl<T: EntrySink + ?Sized> EntrySink for &mut T {
    fn entry_end(&mut self) -> io::Result<()> {
        (**self).entry_end()
    }

    fn write_data(&mut self, data: &mut dyn Read, size: u64, buffer: &mut crate::copy::Buffer) -> io::Result<u64> {
        (**self).write_data(data, size, buffer)
    }
}

/// Writes the entries of one segment. Counts what it writes, so segments can be
/// concatenated and the trailer padded.
pub struct SegmentWriter<W: EntrySink> {
    out: W,
    written: u64,
    next_ino: u32,
    device: (u32, u32),
    uncreatable: Vec<(Vec<u8>, String)>,
    buffer: crate::copy::Buffer,
}

impl<W: EntrySink> SegmentWriter<W> {
    /// A writer for a segment whose entries carry `device` (devmajor, devminor): inode
    /// numbers count from 1 in each segment, so the device number tells segments apart
    /// (the kernel and cpio match hard links on device and inode).
    pub fn new(out: W, device: (u32, u32)) -> SegmentWriter<W> {
        SegmentWriter {
            out,
            written: 0,
            next_ino: 1,
            device,
            uncreatable: Vec::new(),
            buffer: crate::copy::Buffer::new(),
        }
    }

    fn header(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        ino: u32,
        nlink: u32,
        size: u64,
        device: (u32, u32),
    ) -> Result<()> {
        if name.is_empty() || name.contains(&0) {
            bail!("invalid cpio entry name {:?}", String::from_utf8_lossy(name));
        }
        if size > MAX_FILE_SIZE {
            bail!("{} is {size} bytes: newc cannot record files of 4 GiB or more", String::from_utf8_lossy(name));
        }
        let mtime = u32::try_from(meta.mtime).unwrap_or(u32::MAX);
        let header = format!(
            "070701{ino:08X}{:08X}{:08X}{:08X}{nlink:08X}{mtime:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            meta.mode,
            meta.uid,
            meta.gid,
            device.0,
            device.1,
            meta.rdev.0,
            meta.rdev.1,
            name.len() + 1,
            0
        );
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name)?;
        let name_end = 110 + name.len() as u64 + 1;
        self.out.write_all(&[0u8; 4][..1 + pad4(name_end)])?;
        self.written += name_end + pad4(name_end) as u64;
        Ok(())
    }

    fn data(&mut self, size: u64, mut data: impl Read) -> Result<()> {
        let copied = self.out.write_data(&mut data, size, &mut self.buffer)?;
        if copied != size {
            bail!("expected {size} bytes of data, got {copied}");
        }
        self.out.write_all(&[0u8; 4][..pad4(size)])?;
        self.written += size + pad4(size) as u64;
        self.out.entry_end()?;
        Ok(())
    }

    fn allocate_ino(&mut self) -> u32 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    /// Writes a directory, symlink (target as `data`), device, FIFO or file with one name.
    pub fn entry(&mut self, name: &[u8], meta: &Metadata, size: u64, data: impl Read) -> Result<()> {
        Self::check_name(name)?;
        let ino = self.allocate_ino();
        self.header(name, meta, ino, 1, size, self.device)?;
        if meta.mode & S_IFMT == S_IFLNK {
            // A symlink's data is its target: small, read to check its length.
            let mut target = Vec::new();
            (&mut { data }).take(size).read_to_end(&mut target)?;
            self.note_uncreatable(name, Some(&target));
            return self.data(size, &target[..]);
        }
        self.note_uncreatable(name, None);
        self.data(size, data)
    }

    /// Refuses the one name that would truncate the archive.
    fn check_name(name: &[u8]) -> Result<()> {
        if name == TRAILER {
            bail!("an entry named TRAILER!!! is the newc end-of-archive marker: the kernel and cpio would stop reading there and lose every later entry");
        }
        Ok(())
    }

    fn note_uncreatable(&mut self, name: &[u8], symlink_target: Option<&[u8]>) {
        if let Some(reason) = uncreatable_reason(name, symlink_target) {
            self.uncreatable.push((name.to_vec(), reason));
        }
    }

    /// The names written so far that the kernel cannot create at boot, with the reason.
    pub fn uncreatable(&self) -> &[(Vec<u8>, String)] {
        &self.uncreatable
    }

    /// Writes a hard-link group: every name, one inode; the data goes with the last name.
    pub fn hard_links(&mut self, names: &[Vec<u8>], meta: &Metadata, size: u64, data: impl Read) -> Result<()> {
        let ino = self.allocate_ino();
        let nlink = u32::try_from(names.len()).context("a hard-link group of 2^32 names or more")?;
        let Some((last, others)) = names.split_last() else {
            bail!("a hard-link group needs a name");
        };
        for name in names {
            Self::check_name(name)?;
        }
        for name in others {
            self.header(name, meta, ino, nlink, 0, self.device)?;
            self.note_uncreatable(name, None);
        }
        self.header(last, meta, ino, nlink, size, self.device)?;
        self.note_uncreatable(last, None);
        self.data(size, data)
    }

    /// Writes one entry of a tree walk ([`Tree::walk`](crate::rootfs::tree::Tree::walk)).
    pub fn walked(&mut self, entry: Walked<'_>) -> Result<()> {
        let typed = |meta: &Meta, kind: u32, rdev: (u32, u32)| Metadata {
            mode: kind | meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            rdev,
        };
        match entry {
            Walked::Directory { name, meta } => self.entry(&name, &typed(&meta, S_IFDIR, (0, 0)), 0, io::empty()),
            Walked::Symlink { name, meta, target } => {
                self.entry(&name, &typed(&meta, S_IFLNK, (0, 0)), target.len() as u64, target)
            }
            Walked::Device { name, meta, block, rdev } => {
                let kind = if block { S_IFBLK } else { S_IFCHR };
                self.entry(&name, &typed(&meta, kind, rdev), 0, io::empty())
            }
            Walked::Fifo { name, meta } => self.entry(&name, &typed(&meta, S_IFIFO, (0, 0)), 0, io::empty()),
            Walked::File { names, meta, size, data } => {
                self.hard_links(&names, &typed(&meta, S_IFREG, (0, 0)), size, data)
            }
        }
    }

    /// Bytes written so far (always a multiple of 4).
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes the trailer after `written` bytes of entries, padding the archive to 512 bytes.
/// Returns the number of bytes it wrote.
pub fn write_trailer(mut out: impl Write, written: u64) -> Result<u64> {
    let mut trailer = SegmentWriter::new(Vec::new(), (0, 0));
    let meta = Metadata { mode: 0, uid: 0, gid: 0, mtime: 0, rdev: (0, 0) };
    trailer.header(TRAILER, &meta, 0, 1, 0, (0, 0))?;
    let mut bytes = trailer.into_inner();
    let total = written + bytes.len() as u64;
    bytes.resize(bytes.len() + ((512 - total % 512) % 512) as usize, 0);
    out.write_all(&bytes)?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32) -> Metadata {
        Metadata { mode, uid: 0, gid: 0, mtime: 1_492_533_000, rdev: (0, 0) }
    }

    #[test]
    fn writes_the_documented_bytes() {
        let mut writer = SegmentWriter::new(Vec::new(), (0xabc, 1));
        writer.entry(b"etc", &meta(S_IFDIR | 0o755), 0, io::empty()).unwrap();
        writer.entry(b"etc/hosts", &meta(S_IFREG | 0o644), 3, &b"abc"[..]).unwrap();
        let written = writer.written();
        let mut bytes = writer.into_inner();
        assert_eq!(bytes.len() as u64, written);
        let fields = [
            "070701", "00000001", // ino
            "000041ED", // mode: directory, 0755
            "00000000", // uid
            "00000000", // gid
            "00000001", // nlink
            "58F63F08", // mtime 2017-04-18T16:30:00Z
            "00000000", // filesize
            "00000ABC", // devmajor: the segment's device
            "00000001", // devminor
            "00000000", // rdevmajor
            "00000000", // rdevminor
            "00000004", // namesize, with the NUL
            "00000000", // check
        ];
        assert_eq!(&bytes[..110], fields.concat().as_bytes());
        // header (110) + "etc\0" = 114 -> padded to 116
        assert_eq!(&bytes[110..116], b"etc\0\0\0");
        let file = &bytes[116..];
        assert_eq!(&file[..6], b"070701");
        assert_eq!(&file[6..14], b"00000002", "inodes are sequential");
        assert_eq!(&file[54..62], b"00000003", "file size");
        // header + "etc/hosts\0" = 120, already aligned; data 3 bytes + 1 pad.
        assert_eq!(&file[110..120], b"etc/hosts\0");
        assert_eq!(&file[120..124], b"abc\0");
        write_trailer(&mut bytes, written).unwrap();
        assert_eq!(bytes.len() % 512, 0);
        assert!(bytes.windows(10).any(|w| w == TRAILER));
    }

    #[test]
    fn lists_what_the_kernel_cannot_create() {
        let mut writer = SegmentWriter::new(Vec::new(), (0, 1));
        let long_component = [b"dir/".as_slice(), &[b'n'; 256]].concat();
        let long_path = vec![b'p'; 4096];
        let long_target = vec![b't'; 4096];
        writer.entry(&long_component, &meta(S_IFREG | 0o644), 0, io::empty()).unwrap();
        writer.entry(&[b'n'; 255], &meta(S_IFREG | 0o644), 0, io::empty()).unwrap();
        writer.hard_links(&[long_path.clone(), b"short".to_vec()], &meta(S_IFREG | 0o644), 1, &b"x"[..]).unwrap();
        writer.entry(b"link", &meta(S_IFLNK | 0o777), long_target.len() as u64, &long_target[..]).unwrap();
        writer.entry(b"fine", &meta(S_IFLNK | 0o777), 3, &b"abc"[..]).unwrap();
        let listed: Vec<&[u8]> = writer.uncreatable().iter().map(|(name, _)| name.as_slice()).collect();
        assert_eq!(listed, [long_component.as_slice(), long_path.as_slice(), b"link".as_slice()]);
        assert!(writer.uncreatable()[0].1.contains("256 bytes, longer than 255"), "{:?}", writer.uncreatable());
    }

    #[test]
    fn refuses_what_newc_cannot_hold() {
        let mut writer = SegmentWriter::new(Vec::new(), (0, 1));
        let err = writer.entry(TRAILER, &meta(S_IFREG | 0o644), 0, io::empty()).unwrap_err();
        assert!(err.to_string().contains("end-of-archive marker"), "{err}");
        let err = writer.entry(b"big", &meta(S_IFREG | 0o644), MAX_FILE_SIZE + 1, io::empty()).unwrap_err();
        assert!(err.to_string().contains("4 GiB"), "{err}");
        assert!(writer.entry(b"a\0b", &meta(S_IFREG), 0, io::empty()).is_err());
        let err = writer.entry(b"short", &meta(S_IFREG), 10, &b"abc"[..]).unwrap_err();
        assert!(err.to_string().contains("expected 10 bytes"), "{err}");
    }

    #[test]
    fn a_walked_union_extracts_with_gnu_cpio() {
        use crate::rootfs::layer::tests::tar_of;
        use crate::rootfs::layer::EntryKind::*;
        use crate::rootfs::spool::Spool;
        use crate::rootfs::tree::{Content, Meta, Tree};
        use std::os::unix::fs::MetadataExt as _;
        let layers = [
            tar_of(&[
                (b"etc/", Directory),
                (b"etc/a", File { size: 5 }),
                (b"etc/b", HardLink { target: b"etc/a".to_vec() }),
                (b"bin/sh", Symlink { target: b"busybox".to_vec() }),
                (b"run/fifo", Fifo),
                (b"gone/x", File { size: 1 }),
            ]),
            tar_of(&[(b".wh.gone", File { size: 0 }), (b"etc/c", File { size: 3 })]),
        ];
        let mut tree = Tree::new();
        let spool_dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new_in(spool_dir.path()).unwrap();
        for (index, layer) in layers.iter().enumerate() {
            tree.read_layer(index, &layer[..], &mut spool).unwrap();
        }
        spool.finish().unwrap();
        tree.insert_file(b"etc/generated", Meta::generated(0o600), 2, Content::Bytes(b"hi".to_vec()));
        let mut writer = SegmentWriter::new(Vec::new(), (0, 1));
        tree.walk(b"", &spool, &Default::default(), |entry| writer.walked(entry)).unwrap();
        let written = writer.written();
        let mut archive = writer.into_inner();
        crate::initrd::newc::write_trailer(&mut archive, written).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let mut cpio = std::process::Command::new("cpio")
            .args(["-idm", "--quiet", "--no-absolute-filenames"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("GNU cpio is installed by make test");
        std::io::Write::write_all(cpio.stdin.as_mut().unwrap(), &archive).unwrap();
        drop(cpio.stdin.take());
        assert!(cpio.wait().unwrap().success());
        let root = dir.path();
        assert_eq!(std::fs::read(root.join("etc/a")).unwrap(), b"xxxxx");
        assert_eq!(std::fs::read(root.join("etc/c")).unwrap(), b"xxx");
        assert_eq!(std::fs::read(root.join("etc/generated")).unwrap(), b"hi");
        let (a, b) = (root.join("etc/a").metadata().unwrap(), root.join("etc/b").metadata().unwrap());
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "etc/b must be a real hard link");
        assert_eq!(std::fs::read_link(root.join("bin/sh")).unwrap().to_str(), Some("busybox"));
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&root.join("run/fifo").metadata().unwrap().file_type()));
        assert!(!root.join("gone").exists());
        assert_eq!(root.join("etc/generated").metadata().unwrap().mode() & 0o7777, 0o600);
    }
}
