//! Reading one layer: decompression chosen by the stream's magic bytes (gzip, zstd or
//! plain tar, whatever the media type claims), then the tar entries, as [`LayerEntry`]
//! values in stream order. The same walk, [`for_each_entry`], serves both passes of an
//! assembly: the first reads headers only, the second copies the data of the entries
//! that survived the union, so a layer's bytes are never held in memory.

use std::io::{BufRead, BufReader, Read};

use anyhow::{bail, Context, Result};

use super::path::{file_name, join, normalise, parent};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// What a tar entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File { size: u64 },
    Symlink { target: Vec<u8> },
    /// A hard link to the (normalised) path of an earlier entry.
    HardLink { target: Vec<u8> },
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
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

/// Opens a (possibly compressed) layer stream as plain tar.
pub fn decompress<'a>(reader: impl Read + Send + 'a) -> Result<Box<dyn Read + Send + 'a>> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = reader.fill_buf().context("reading the start of the layer")?;
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(reader).map_err(|e| anyhow::anyhow!("reading the zstd frame header: {e}"))?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(reader))
    }
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
    let mode = number(header.mode().map(u64::from), &old.mode, "mode")? as u32 & 0o7777;
    let uid = number(header.uid(), &old.uid, "uid")? as u32;
    let gid = number(header.gid(), &old.gid, "gid")? as u32;
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
        tar::EntryType::Symlink => EntryKind::Symlink {
            target: entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default(),
        },
        tar::EntryType::Link => {
            let target = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
            EntryKind::HardLink {
                target: normalise(&target).with_context(|| format!("hard link {}", String::from_utf8_lossy(&raw_path)))?,
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
        tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {
            return Ok(None)
        }
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
    } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        (join(parent(&path), hidden), EntryKind::Whiteout)
    } else {
        (path, kind)
    };
    Ok(Some(LayerEntry { ordinal, path, kind, mode, uid, gid, mtime, xattrs }))
}

/// Walks the entries of a plain tar stream in order. `visit` gets each entry and the
/// entry's data reader (the data of a regular file; read it or leave it).
pub fn for_each_entry(tar_stream: impl Read, mut visit: impl FnMut(LayerEntry, &mut dyn Read) -> Result<()>) -> Result<()> {
    let mut archive = tar::Archive::new(tar_stream);
    let entries = archive.entries().context("reading the tar stream")?;
    for (ordinal, entry) in entries.enumerate() {
        let mut entry = entry.with_context(|| format!("reading tar entry {}", ordinal + 1))?;
        let description = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(layer_entry) = entry_of(ordinal, &mut entry).with_context(|| format!("tar entry {description:?}"))? else {
            continue;
        };
        visit(layer_entry, &mut entry).with_context(|| format!("tar entry {description:?}"))?;
    }
    Ok(())
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
                    contents = vec![b'x'; *size as usize];
                    data = &contents;
                }
                EntryKind::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    builder.append_link(&mut header, std::str::from_utf8(path).unwrap(), std::str::from_utf8(target).unwrap()).unwrap();
                    continue;
                }
                EntryKind::HardLink { target } => {
                    header.set_entry_type(tar::EntryType::Link);
                    builder.append_link(&mut header, std::str::from_utf8(path).unwrap(), std::str::from_utf8(target).unwrap()).unwrap();
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
        let summary: Vec<(String, EntryKind)> = entries
            .iter()
            .map(|e| (String::from_utf8_lossy(&e.path).into_owned(), e.kind.clone()))
            .collect();
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
        let body = format!(" path={name}\n");
        let mut length = body.len() + 3;
        if format!("{length}{body}").len() != length {
            length += 1;
        }
        let record = format!("{length}{body}");
        let mut builder = tar::Builder::new(Vec::new());
        let mut pax = tar::Header::new_ustar();
        pax.set_path("PaxHeaders/x").unwrap();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_mode(0o644);
        pax.set_mtime(0);
        pax.set_uid(0);
        pax.set_gid(0);
        pax.set_cksum();
        builder.append(&pax, record.as_bytes()).unwrap();
        let mut file = tar::Header::new_ustar();
        file.set_path("truncated-name").unwrap();
        file.set_entry_type(tar::EntryType::Regular);
        file.set_size(0);
        file.set_mode(0o644);
        file.set_mtime(0);
        file.set_uid(0);
        file.set_gid(0);
        file.set_cksum();
        builder.append(&file, &[][..]).unwrap();
        let stream = builder.into_inner().unwrap();
        let entries = read_entries(&stream[..]).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(String::from_utf8_lossy(&entries[0].path), name);
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
