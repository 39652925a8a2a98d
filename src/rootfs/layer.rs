//! Reading one layer: decompression chosen by the stream's magic bytes (gzip, zstd or
//! plain tar, whatever the media type claims), then the tar entries, as [`LayerEntry`]
//! values in stream order. The same walk, [`for_each_entry`], serves both passes of an
//! assembly: the first reads headers only, the second copies the data of the entries
//! that survived the union, so a layer's bytes are never held in memory.
//!
//! Every read of a layer blob is a verified read ([`LayerSource::read`]): the blob is
//! hashed as it streams, the compressed stream is read to its very end (so gzip's CRC32
//! and length, and zstd's checksums, are checked), and on the first read of a blob the
//! uncompressed tar is hashed too and compared with the image config's `diff_id` (later
//! reads, [`LayerSource::again`] and those of later applies once the blob cache recorded
//! the check, rely on the blob digest, which pins the same bytes). What was read is only
//! used once all of it checked out; callers write to temporary files until then.

use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use thiserror::Error;

use super::path::{file_name, join, normalise, parent};
use crate::oci::cache::DamagedBlob;
use crate::oci::digest::Digest;
use crate::oci::hashing::HashingReader;
use crate::oci::tap::BlobTap;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// What a tar entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File {
        size: u64,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A hard link to the (normalised) path of an earlier entry.
    HardLink {
        target: Vec<u8>,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    /// `.wh.<name>`: hides `<name>` of lower layers (the path is the hidden one).
    Whiteout,
    /// `.wh..wh..opq`: hides the lower layers' contents of the directory (the path).
    Opaque,
}

/// One entry of a layer, with a normalised path (empty for the root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// Position in the tar stream; the second pass finds the data by it.
    pub ordinal: usize,
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits, with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// Extended attributes the entry carries (newc cannot keep them).
    pub xattrs: Vec<String>,
}

/// The uncompressed layer does not match the image config's `diff_id`: the image itself
/// is inconsistent (fetching it again cannot help).
#[derive(Debug, Error)]
#[error("the uncompressed layer hashes to {actual}, but the image config's diff_id says {expected}")]
pub struct DiffIdMismatch {
    pub expected: Digest,
    pub actual: Digest,
}

/// A layer to read, and what it must hash to.
#[derive(Clone, Debug)]
pub struct LayerSource {
    pub path: PathBuf,
    /// The digest and size of the (compressed) blob at `path`.
    pub blob: Option<(Digest, u64)>,
    /// The digest of the uncompressed tar (the image config's `rootfs.diff_ids` entry).
    pub diff_id: Option<Digest>,
}

impl LayerSource {
    /// Opens the layer, hands its plain tar stream to `read`, then reads everything to its
    /// end and checks the blob digest, size, compression trailers and diff_id. A blob that
    /// does not hash to its digest is a [`DamagedBlob`], whatever else went wrong while
    /// reading it (damage explains any parse error); otherwise `read`'s own error, then a
    /// [`DiffIdMismatch`].
    pub fn read<T>(&self, read: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<T> {
        let file = match (std::fs::File::open(&self.path), &self.blob) {
            (Ok(file), _) => file,
            // A cache blob gone since it was pulled (evicted by another run): fetched again.
            (Err(e), Some((digest, _))) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DamagedBlob {
                    digest: digest.clone(),
                    detail: "it is missing from the cache".into(),
                    file: None,
                }
                .into());
            }
            (Err(e), _) => return Err(e).with_context(|| format!("opening layer {}", self.path.display())),
        };
        let file_identity = file.metadata().ok().map(|meta| crate::oci::cache::identity(&meta));
        let mut blob = HashingReader::new(file);
        let outcome = Self::read_plain(&mut blob, self.diff_id.is_some(), read);
        let drained = io::copy(&mut blob, &mut io::sink());
        let (actual, size) = blob.finish();
        if let Some((digest, expected_size)) = &self.blob {
            let detail = if drained.is_err() {
                None
            } else if &actual != digest {
                Some(format!("its content hashes to {actual}"))
            } else if size != *expected_size {
                Some(format!("it has {size} bytes, not {expected_size}"))
            } else {
                None
            };
            if let Some(detail) = detail {
                return Err(DamagedBlob { digest: digest.clone(), detail, file: file_identity }.into());
            }
        }
        drained.with_context(|| format!("reading {}", self.path.display()))?;
        self.checked(outcome)
    }

    /// [`LayerSource::read`] of the layer's bytes as its download brings them: the same
    /// checks but the blob's digest and size, which the download checks (the tap ends
    /// only once it did: [`crate::oci::tap`]).
    pub fn read_download<T>(&self, mut download: BlobTap, read: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<T> {
        let outcome = Self::read_plain(&mut download, self.diff_id.is_some(), read);
        io::copy(&mut download, &mut io::sink()).context("reading the layer as it downloads")?;
        self.checked(outcome)
    }

    /// Hands the plain tar stream of `blob` to `read`, then reads it to its end; with the
    /// digest of the uncompressed tar when `diff_id` is asked for.
    fn read_plain<T>(
        blob: impl Read + Send,
        diff_id: bool,
        read: impl FnOnce(&mut dyn Read) -> Result<T>,
    ) -> Result<(T, Option<Digest>)> {
        let mut tar = decompress(blob)?;
        // The tar reader stops at the end-of-archive blocks; the rest (and the
        // compression trailer) must be read too for the checks to mean anything.
        let to_end = "reading the layer to its end";
        if !diff_id {
            let value = read(&mut tar)?;
            io::copy(&mut tar, &mut io::sink()).context(to_end)?;
            return Ok((value, None));
        }
        let mut plain = HashingReader::new(&mut tar);
        let value = read(&mut plain)?;
        io::copy(&mut plain, &mut io::sink()).context(to_end)?;
        Ok((value, Some(plain.finish().0)))
    }

    /// What `read` gave, once the uncompressed tar matched the diff_id.
    fn checked<T>(&self, outcome: Result<(T, Option<Digest>)>) -> Result<T> {
        let (value, uncompressed) = outcome?;
        if let (Some(expected), Some(actual)) = (&self.diff_id, uncompressed) {
            if &actual != expected {
                return Err(DiffIdMismatch { expected: expected.clone(), actual }.into());
            }
        }
        Ok(value)
    }
}

/// Opens a (possibly compressed) layer stream as plain tar. The decompressors read to
/// the end of their input and fail on a wrong checksum or trailing garbage.
pub fn decompress<'a>(reader: impl Read + Send + 'a) -> Result<Box<dyn Read + Send + 'a>> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = reader.fill_buf().context("reading the start of the layer")?;
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if is_zstd(head) {
        Ok(Box::new(ZstdFrames::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// A zstd stream of any number of frames (zstd:chunked layers have many, and skippable
/// ones), each frame's content checksum checked when it carries one. ruzstd's streaming
/// decoder reads a single frame; this drives its frame decoder the same way, frame after
/// frame, until the input ends.
struct ZstdFrames<R: BufRead> {
    reader: R,
    /// The frame being decoded; `None` between frames.
    frame: Option<ruzstd::decoding::FrameDecoder>,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(reader: R) -> Self {
        ZstdFrames { reader, frame: None }
    }

    /// Starts the next frame, past any skippable frames; `false` at the end of the input.
    fn next_frame(&mut self) -> io::Result<bool> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        loop {
            if self.reader.fill_buf()?.is_empty() {
                return Ok(false);
            }
            let mut decoder = ruzstd::decoding::FrameDecoder::new();
            match decoder.init(&mut self.reader) {
                Ok(()) => {
                    self.frame = Some(decoder);
                    return Ok(true);
                }
                // The 8-byte skippable frame header is read; its data follows.
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame { length, .. })) => {
                    let length = u64::from(length);
                    let skipped = io::copy(&mut (&mut self.reader).take(length), &mut io::sink())?;
                    if skipped != length {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a zstd skippable frame ends early"));
                    }
                }
                Err(e) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("reading a zstd frame header: {e}")))
                }
            }
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(frame) = &mut self.frame {
                while frame.can_collect() < buffer.len() && !frame.is_finished() {
                    let wanted = buffer.len() - frame.can_collect();
                    frame
                        .decode_blocks(&mut self.reader, ruzstd::decoding::BlockDecodingStrategy::UptoBytes(wanted))
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("decoding a zstd frame: {e}")))?;
                }
                let n = frame.read(buffer)?;
                if n > 0 {
                    return Ok(n);
                }
                if let (Some(stored), Some(computed)) =
                    (frame.get_checksum_from_data(), frame.get_calculated_checksum())
                {
                    if stored != computed {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("zstd frame checksum mismatch: stored {stored:08x}, computed {computed:08x}"),
                        ));
                    }
                }
                self.frame = None;
            }
            if !self.next_frame()? {
                return Ok(0);
            }
        }
    }
}

/// Whether a stream starts like zstd: a frame, or a skippable frame (0x184D2A5?).
fn is_zstd(head: &[u8]) -> bool {
    head.starts_with(&ZSTD_MAGIC) || (head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18])
}

fn entry_of(ordinal: usize, entry: &mut tar::Entry<'_, impl Read>) -> Result<Option<LayerEntry>> {
    let raw_path = entry.path_bytes().into_owned();
    let path = normalise(&raw_path)?;
    let header = entry.header();
    // Some writers leave numeric fields empty (all NULs or spaces): that is 0, while any
    // other unparsable value is an error.
    let blank = |field: &[u8]| field.iter().all(|b| *b == 0 || *b == b' ');
    let old = header.as_old();
    let number = |value: std::io::Result<u64>, field: &[u8], what: &str| -> Result<u64> {
        match value {
            Ok(n) => Ok(n),
            Err(_) if blank(field) => Ok(0),
            Err(e) => Err(e).with_context(|| format!("reading the {what}")),
        }
    };
    let mode =
        header.mode().map_or_else(|e| if blank(&old.mode) { Ok(0) } else { Err(e) }, Ok).context("reading the mode")?
            & 0o7777;
    // PAX headers can carry ids of any size; newc and the kernel take 32 bits.
    let id = |value: u64, what: &str| {
        u32::try_from(value)
            .map_err(|_| anyhow::anyhow!("the {what} {value} is larger than 4294967295, which an initrd cannot record"))
    };
    let uid = id(number(header.uid(), &old.uid, "uid")?, "uid")?;
    let gid = id(number(header.gid(), &old.gid, "gid")?, "gid")?;
    let mtime = number(header.mtime(), &old.mtime, "mtime")?;
    let device = |h: &tar::Header| -> Result<(u32, u32)> {
        Ok((
            h.device_major().context("reading the device major")?.unwrap_or(0),
            h.device_minor().context("reading the device minor")?.unwrap_or(0),
        ))
    };
    let entry_type = header.entry_type();
    let kind = match entry_type {
        tar::EntryType::Directory => EntryKind::Directory,
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            EntryKind::File { size: entry.size() }
        }
        tar::EntryType::Symlink => {
            EntryKind::Symlink { target: entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default() }
        }
        tar::EntryType::Link => {
            let target = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
            EntryKind::HardLink {
                target: normalise(&target)
                    .with_context(|| format!("hard link {}", String::from_utf8_lossy(&raw_path)))?,
            }
        }
        tar::EntryType::Char => {
            let (major, minor) = device(header)?;
            EntryKind::CharDevice { major, minor }
        }
        tar::EntryType::Block => {
            let (major, minor) = device(header)?;
            EntryKind::BlockDevice { major, minor }
        }
        tar::EntryType::Fifo => EntryKind::Fifo,
        // Metadata entries: the reader applies long names and PAX headers itself.
        tar::EntryType::XGlobalHeader
        | tar::EntryType::XHeader
        | tar::EntryType::GNULongName
        | tar::EntryType::GNULongLink => return Ok(None),
        other => bail!("unsupported tar entry type {:?} for {}", other, String::from_utf8_lossy(&raw_path)),
    };
    let mut xattrs = Vec::new();
    if let Some(extensions) = entry.pax_extensions().context("reading PAX extensions")? {
        for extension in extensions {
            let extension = extension.context("reading a PAX extension")?;
            if let Some(name) = extension.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                xattrs.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    // Whiteouts name what they hide.
    let name = file_name(&path);
    let (path, kind) = if name == OPAQUE_MARKER {
        (parent(&path).to_vec(), EntryKind::Opaque)
    } else if name.starts_with(AUFS_META_PREFIX) {
        // AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): not content, skipped as
        // Docker skips it.
        return Ok(None);
    } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        if matches!(hidden, b"" | b"." | b"..") {
            bail!("whiteout {:?} names no file", String::from_utf8_lossy(&raw_path));
        }
        (join(parent(&path), hidden), EntryKind::Whiteout)
    } else {
        (path, kind)
    };
    Ok(Some(LayerEntry { ordinal, path, kind, mode, uid, gid, mtime, xattrs }))
}

/// Walks the entries of a plain tar stream in order. `visit` gets each entry and the
/// entry's data reader (the data of a regular file; read it or leave it).
pub fn for_each_entry(
    tar_stream: impl Read,
    mut visit: impl FnMut(LayerEntry, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let mut archive = tar::Archive::new(tar_stream);
    let entries = archive.entries().context("reading the tar stream")?;
    let mut previous: Option<String> = None;
    let mut buffer = crate::copy::Buffer::new();
    for (ordinal, entry) in entries.enumerate() {
        let mut entry = entry.with_context(|| match &previous {
            Some(path) => format!("reading the tar header after entry {path:?}"),
            None => "reading the first tar header".to_string(),
        })?;
        let description = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let size = entry.size();
        let layer_entry = entry_of(ordinal, &mut entry).with_context(|| format!("tar entry {description:?}"))?;
        let mut data = Counting { inner: &mut entry, read: 0 };
        if let Some(layer_entry) = layer_entry {
            visit(layer_entry, &mut data).with_context(|| format!("tar entry {description:?}"))?;
        }
        // What `visit` left of the data is read here, so that data ending early is
        // reported at its own entry rather than while looking for the next header.
        crate::copy::copy(&mut data, &mut io::sink(), &mut buffer)
            .with_context(|| format!("tar entry {description:?}: reading its data"))?;
        let read = data.read;
        if read != size {
            bail!("tar entry {description:?}: its data ends after {read} of {size} bytes (the layer is truncated)");
        }
        previous = Some(description);
    }
    Ok(())
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads every entry header of a plain tar stream (data skipped).
pub fn read_entries(tar_stream: impl Read) -> Result<Vec<LayerEntry>> {
    let mut entries = Vec::new();
    for_each_entry(tar_stream, |entry, _| {
        entries.push(entry);
        Ok(())
    })?;
    Ok(entries)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a tar stream from (path, kind) pairs with fixed metadata.
    pub fn tar_of(entries: &[(&[u8], EntryKind)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o755);
            header.set_mtime(1_000);
            header.set_uid(0);
            header.set_gid(0);
            header.set_size(0);
            let mut data: &[u8] = &[];
            let contents;
            match kind {
                EntryKind::Directory => header.set_entry_type(tar::EntryType::Directory),
                EntryKind::File { size } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(*size);
                    contents = vec![b'x'; usize::try_from(*size).unwrap()];
                    data = &contents;
                }
                EntryKind::Symlink { target } | EntryKind::HardLink { target } => {
                    let symlink = matches!(kind, EntryKind::Symlink { .. });
                    header.set_entry_type(if symlink { tar::EntryType::Symlink } else { tar::EntryType::Link });
                    builder
                        .append_link(
                            &mut header,
                            std::str::from_utf8(path).unwrap(),
                            std::str::from_utf8(target).unwrap(),
                        )
                        .unwrap();
                    continue;
                }
                EntryKind::CharDevice { major, minor } => {
                    header.set_entry_type(tar::EntryType::Char);
                    header.set_device_major(*major).unwrap();
                    header.set_device_minor(*minor).unwrap();
                }
                EntryKind::Fifo => header.set_entry_type(tar::EntryType::Fifo),
                other => panic!("tar_of does not build {other:?}"),
            }
            builder.append_data(&mut header, std::str::from_utf8(path).unwrap(), data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn reads_kinds_whiteouts_and_long_names() {
        let long = format!("deep/{}/file", "d".repeat(150));
        let stream = tar_of(&[
            (b"./", EntryKind::Directory),
            (b"./etc/", EntryKind::Directory),
            (b"etc/passwd", EntryKind::File { size: 5 }),
            (b"etc/link", EntryKind::HardLink { target: b"./etc/passwd".to_vec() }),
            (b"bin/sh", EntryKind::Symlink { target: b"/bin/busybox".to_vec() }),
            (b"dev/null", EntryKind::CharDevice { major: 1, minor: 3 }),
            (b"run/fifo", EntryKind::Fifo),
            (b"etc/.wh.shadow", EntryKind::File { size: 0 }),
            (b"var/.wh..wh..opq", EntryKind::File { size: 0 }),
            (long.as_bytes(), EntryKind::File { size: 1 }),
        ]);
        let entries = read_entries(&stream[..]).unwrap();
        let summary: Vec<(String, EntryKind)> =
            entries.iter().map(|e| (String::from_utf8_lossy(&e.path).into_owned(), e.kind.clone())).collect();
        assert_eq!(
            summary,
            vec![
                ("".into(), EntryKind::Directory),
                ("etc".into(), EntryKind::Directory),
                ("etc/passwd".into(), EntryKind::File { size: 5 }),
                ("etc/link".into(), EntryKind::HardLink { target: b"etc/passwd".to_vec() }),
                ("bin/sh".into(), EntryKind::Symlink { target: b"/bin/busybox".to_vec() }),
                ("dev/null".into(), EntryKind::CharDevice { major: 1, minor: 3 }),
                ("run/fifo".into(), EntryKind::Fifo),
                ("etc/shadow".into(), EntryKind::Whiteout),
                ("var".into(), EntryKind::Opaque),
                (long.clone(), EntryKind::File { size: 1 }),
            ]
        );
        // Long-name headers are folded into their entry: ordinals count entries.
        assert!(entries.iter().enumerate().all(|(i, e)| e.ordinal == i));
    }

    #[test]
    fn reads_pax_long_names() {
        let name = format!("pax/{}/file", "p".repeat(200));
        let stream = pax_then_file("path", &name, "truncated-name");
        let entries = read_entries(&stream[..]).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(String::from_utf8_lossy(&entries[0].path), name);
    }

    /// A tar stream of one PAX extended header (`key=value`) and the empty file `name`
    /// it applies to.
    fn pax_then_file(key: &str, value: &str, name: &str) -> Vec<u8> {
        // A PAX record starts with its own length, digits included.
        let body = format!(" {key}={value}\n");
        let mut length = body.len() + 1;
        while format!("{length}{body}").len() != length {
            length += 1;
        }
        let record = format!("{length}{body}");
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in
            [("PaxHeaders/x", tar::EntryType::XHeader, record.as_bytes()), (name, tar::EntryType::Regular, &[][..])]
        {
            let mut header = tar::Header::new_ustar();
            header.set_path(path).unwrap();
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn decompresses_by_magic() {
        use std::io::Write as _;
        let stream = tar_of(&[(b"a", EntryKind::File { size: 3 })]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&stream).unwrap();
        let gz = gz.finish().unwrap();
        let zstd = ruzstd::encoding::compress_to_vec(&stream[..], ruzstd::encoding::CompressionLevel::Fastest);
        assert_eq!(&zstd[..4], &ZSTD_MAGIC);
        for bytes in [stream.clone(), gz, zstd] {
            let entries = read_entries(decompress(&bytes[..]).unwrap()).unwrap();
            assert_eq!(entries[0].path, b"a");
        }
    }

    /// A layer written to a file, gzip'd or zstd'd (by the real zstd tool when `zstd` is
    /// set, for multi-frame streams), with the digests it is read against.
    fn layer_file(dir: &std::path::Path, name: &str, plain: &[u8], compression: &str) -> LayerSource {
        use std::io::Write as _;
        let bytes = match compression {
            "gzip" => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(plain).unwrap();
                gz.finish().unwrap()
            }
            "zstd-frames" => {
                // Two frames (checksummed) with a skippable frame between them, as
                // zstd:chunked writes: each frame compresses part of the tar.
                let half = plain.len() / 2;
                // A leading skippable frame too: the stream must still be known as zstd.
                let mut out = vec![0x5f, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 7, 7];
                for part in [&plain[..half], &plain[half..]] {
                    let path = dir.join(format!("{name}.part"));
                    std::fs::write(&path, part).unwrap();
                    let output = std::process::Command::new("zstd")
                        .args(["-q", "-c", "--check"])
                        .arg(&path)
                        .output()
                        .expect("zstd is installed by make test");
                    assert!(output.status.success());
                    out.extend_from_slice(&output.stdout);
                    if out.len() < 1_000_000 && part.as_ptr() == plain.as_ptr() {
                        out.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
                    }
                }
                out
            }
            _ => plain.to_vec(),
        };
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        LayerSource {
            path,
            blob: Some((crate::oci::digest::sha256(&bytes), bytes.len() as u64)),
            diff_id: Some(crate::oci::digest::sha256(plain)),
        }
    }

    fn read_paths(source: &LayerSource) -> Result<Vec<Vec<u8>>> {
        source.read(|stream| Ok(read_entries(stream)?.into_iter().map(|e| e.path).collect()))
    }

    #[test]
    fn verified_reads_check_blob_trailer_and_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let plain = tar_of(&[(b"etc/a", EntryKind::File { size: 3000 }), (b"etc/b", EntryKind::File { size: 5 })]);
        for compression in ["plain", "gzip", "zstd-frames"] {
            let source = layer_file(dir.path(), compression, &plain, compression);
            assert_eq!(read_paths(&source).unwrap(), vec![b"etc/a".to_vec(), b"etc/b".to_vec()], "{compression}");

            // One byte flipped anywhere in the blob: reported as a damaged blob, whatever
            // the decoder or tar reader made of it.
            let bytes = std::fs::read(&source.path).unwrap();
            for position in [bytes.len() / 2, bytes.len() - 3] {
                let mut damaged = bytes.clone();
                damaged[position] ^= 0x01;
                std::fs::write(&source.path, &damaged).unwrap();
                let err = read_paths(&source).unwrap_err();
                let damage =
                    err.downcast_ref::<DamagedBlob>().unwrap_or_else(|| panic!("{compression} at {position}: {err:#}"));
                assert_eq!(&damage.digest, &source.blob.as_ref().unwrap().0);
            }
            // Truncated, or with bytes appended: damaged too.
            std::fs::write(&source.path, &bytes[..bytes.len() - 1]).unwrap();
            assert!(
                read_paths(&source).unwrap_err().downcast_ref::<DamagedBlob>().is_some(),
                "{compression} truncated"
            );
            std::fs::write(&source.path, [&bytes[..], b"x"].concat()).unwrap();
            assert!(read_paths(&source).unwrap_err().downcast_ref::<DamagedBlob>().is_some(), "{compression} appended");
            std::fs::write(&source.path, &bytes).unwrap();

            // A blob that matches its digest but not the config's diff_id.
            let wrong = LayerSource { diff_id: Some(crate::oci::digest::sha256(b"another layer")), ..source.clone() };
            let err = read_paths(&wrong).unwrap_err();
            assert!(err.downcast_ref::<DiffIdMismatch>().is_some(), "{compression}: {err:#}");
        }
    }

    #[test]
    fn a_wrong_trailer_is_an_error_even_without_digests() {
        // Checks of the compression format itself, for blobs read without a digest.
        let dir = tempfile::tempdir().unwrap();
        let plain = tar_of(&[(b"a", EntryKind::File { size: 100 })]);
        let source = layer_file(dir.path(), "gz", &plain, "gzip");
        let mut bytes = std::fs::read(&source.path).unwrap();
        let crc = bytes.len() - 8;
        bytes[crc] ^= 0xff;
        std::fs::write(&source.path, &bytes).unwrap();
        let unchecked = LayerSource { blob: None, diff_id: None, ..source };
        let err = read_paths(&unchecked).unwrap_err();
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
    }

    #[test]
    fn whiteouts_that_name_nothing_are_errors() {
        // Found by fuzzing: `.wh.` alone hid the whole root, `dir/.wh.` produced the
        // unnormalised path `dir/`.
        for name in [&b".wh."[..], b"dir/.wh.", b"dir/.wh..", b"dir/.wh..."] {
            let mut header = tar::Header::new_gnu();
            header.set_size(0);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_cksum();
            let mut builder = tar::Builder::new(Vec::new());
            builder.append(&header, &[][..]).unwrap();
            let err = read_entries(&builder.into_inner().unwrap()[..]).unwrap_err();
            assert!(format!("{err:#}").contains("names no file"), "{}: {err:#}", String::from_utf8_lossy(name));
        }
        // AUFS bookkeeping entries are skipped.
        let stream =
            tar_of(&[(b"a/.wh..wh.plnk", EntryKind::Directory), (b"a/.wh..wh..opq", EntryKind::File { size: 0 })]);
        let entries = read_entries(&stream[..]).unwrap();
        assert_eq!(
            entries.iter().map(|e| (e.path.clone(), e.kind.clone())).collect::<Vec<_>>(),
            vec![(b"a".to_vec(), EntryKind::Opaque)]
        );
    }

    #[test]
    fn ids_newc_cannot_record_are_errors() {
        // A PAX header may carry any uid; newc and the kernel take 32 bits.
        let err = read_entries(&pax_then_file("uid", "5000000000", "etc/owned")[..]).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("etc/owned") && message.contains("uid 5000000000"), "{message}");
    }

    #[test]
    fn truncated_data_is_reported_at_its_entry() {
        let good = tar_of(&[
            (b"usr/bin/tool", EntryKind::File { size: 4000 }),
            (b"usr/bin/next", EntryKind::File { size: 1 }),
        ]);
        let err = read_entries(&good[..2048]).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("usr/bin/tool") && message.contains("ends after"), "{message}");
    }

    #[test]
    fn escaping_paths_and_corrupt_streams_are_errors() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // uid, gid and mtime are left empty, as some writers do: they read as 0.
        // Header::set_path refuses "..", so write the name bytes directly.
        header.as_old_mut().name[..9].copy_from_slice(b"../escape");
        header.set_cksum();
        builder.append(&header, &[][..]).unwrap();
        let stream = builder.into_inner().unwrap();
        let err = read_entries(&stream[..]).unwrap_err();
        assert!(format!("{err:#}").contains("escapes the root"), "{err:#}");

        let good = tar_of(&[(b"a", EntryKind::File { size: 2000 })]);
        let truncated = &good[..1000];
        assert!(read_entries(truncated).is_err(), "a truncated layer must be an error");
        let mut corrupt = good.clone();
        corrupt[148] ^= 0x55; // checksum field
        assert!(read_entries(&corrupt[..]).is_err(), "a corrupt header must be an error");
    }
}
