//! Compressed initrd segments kept between applies, in `<cache_dir>/segments/`, under a
//! key that covers everything their bytes depend on: what the segment holds (images by
//! digest, generated files by content), the directories written before it under its
//! prefix, the compression settings and the assembly format ([`super::segments::Planned::key`]).
//! An apply where nothing or one package changed copies the cached segments and
//! compresses only the new ones; the bytes are the same either way.
//!
//! One file per segment, named by the key's hex:
//!
//! ```text
//! compressed bytes | metadata (JSON) | "\nresin-segment v1 <JSON length, 16 hex> <sha256 of all before the footer>\n"
//! ```
//!
//! * Verified whole (sha256) before it is used: a damaged entry is removed and the
//!   segment built again.
//! * Written to a locked temporary file in the same directory and renamed into place, so
//!   concurrent applies (which would write the same bytes) never see half an entry; a
//!   killed run's temporary files are removed by the next.
//! * Bounded: after each assembly, the least recently used entries (by mtime, refreshed
//!   on every use) are removed until the directory holds at most the provider's
//!   `segment_cache_mb`. A run keeps the entries it opened until it is done with them.
//! * Shared, when the provider has a `segment_cache` block: a local miss is looked up in
//!   the registry ([`super::remote_segments`]), and entries built here are pushed there.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::early::EarlyReads;
use super::remote_segments::RemoteSegments;
use crate::initrd::gzip::SegmentSummary;
use crate::initrd::segments::{SegmentStore, Stored};
use crate::log;
use crate::oci::digest::Digest;

const MAGIC: &str = "resin-segment v1 ";
/// `"\n" + MAGIC + 16 hex + " " + 64 hex + "\n"`.
const FOOTER_LEN: u64 = 1 + MAGIC.len() as u64 + 16 + 1 + 64 + 1;
/// Names of temporary files (`~` never appears in a key's hex).
const TEMPORARY_PREFIX: &str = ".resin~segment-";

/// What a segment's bytes do not say, and the segments after it need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// CRC32 and length of the uncompressed cpio bytes (for the gzip trailer).
    pub crc: u32,
    pub length: u64,
    /// The directories the segment writes (hex-encoded names).
    pub directories: Vec<String>,
    /// Warnings building the segment gave: (summary, detail).
    pub warnings: Vec<(String, String)>,
}

/// A verified cache entry, open: its data stays readable even if another run removes it.
#[derive(Debug)]
pub struct CachedSegment {
    file: File,
    data_length: u64,
    pub meta: SegmentMeta,
}

impl CachedSegment {
    /// Copies the compressed bytes to `out`.
    pub fn copy_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        let mut buffer = crate::copy::Buffer::new();
        let copied = crate::copy::copy(&mut (&mut self.file).take(self.data_length), out, &mut buffer)?;
        if copied != self.data_length {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a cached segment ended early"));
        }
        Ok(())
    }

    /// Reads the data from its start.
    pub fn reader(&mut self) -> io::Result<impl Read + '_> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok((&mut self.file).take(self.data_length))
    }

    pub fn compressed_length(&self) -> u64 {
        self.data_length
    }
}

/// A cached segment is a stored segment of the initrd.
impl Stored for CachedSegment {
    fn summary(&self) -> SegmentSummary {
        SegmentSummary { crc: self.meta.crc, length: self.meta.length }
    }

    fn copy_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        CachedSegment::copy_to(self, out)
    }
}

/// New segments are written into new entries.
impl SegmentStore for SegmentCache {
    type Output = NewSegment;

    fn create(&self) -> Result<NewSegment> {
        SegmentCache::create(self)
    }

    fn describe(&self) -> String {
        format!("the segment cache {}", self.dir().display())
    }
}

/// The segment cache directory.
#[derive(Clone, Debug)]
pub struct SegmentCache {
    dir: PathBuf,
    /// Most bytes kept after [`SegmentCache::trim`].
    limit: u64,
    /// The shared tier, second after the directory.
    remote: Option<Arc<RemoteSegments>>,
    /// Images read by package applies for the assembly that follows ([`super::early`]).
    early: Arc<EarlyReads>,
}

impl SegmentCache {
    /// Opens (creating) `<root>/segments`, removing what killed runs left.
    pub fn open(root: &Path, limit: u64) -> Result<SegmentCache> {
        let dir = root.join("segments");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Err(e) = crate::tempfiles::remove_abandoned(&dir, TEMPORARY_PREFIX) {
            log::warn(
                "could not remove abandoned temporary files",
                &[("directory", dir.display().to_string()), ("error", format!("{e:#}"))],
            );
        }
        Ok(SegmentCache { dir, limit, remote: None, early: Arc::default() })
    }

    /// This cache with `remote` as its second tier.
    pub fn with_remote(self, remote: Arc<RemoteSegments>) -> SegmentCache {
        SegmentCache { remote: Some(remote), ..self }
    }

    pub fn remote(&self) -> Option<&Arc<RemoteSegments>> {
        self.remote.as_ref()
    }

    /// Reads of new images started by package applies, for the assemblies that follow.
    pub fn early_reads(&self) -> &Arc<EarlyReads> {
        &self.early
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(key.digest())
    }

    /// Whether the directory has an entry for `key` (not verified: a guess, for reading
    /// ahead).
    pub fn has_local(&self, key: &Digest) -> bool {
        self.path(key).is_file()
    }

    /// The entry for `key`, verified, from the directory or else the shared tier; `None`
    /// when neither has it (or it was damaged, then removed). Marks it used. Blocking: not
    /// on a thread of the async runtime.
    pub fn get(&self, key: &Digest) -> Result<Option<CachedSegment>> {
        if let Some(found) = self.get_local(key)? {
            return Ok(Some(found));
        }
        Ok(self.remote.as_ref().and_then(|remote| remote.fetch(key, self)))
    }

    /// Moves the entry file at `source` (fetched into the blob cache, on the same file
    /// system; copied otherwise) in place as `key`'s, if it verifies as that key's entry
    /// (its footer binds its bytes to the key: the registry's digest and the signature
    /// cannot tell a trusted writer's entry of another key), and returns it open.
    pub fn adopt(&self, key: &Digest, source: &Path) -> Result<CachedSegment> {
        // Locked, so that a run removing abandoned temporary files leaves it alone.
        let file = File::open(source).with_context(|| format!("opening {}", source.display()))?;
        let _ = file.try_lock();
        let temporary = self.dir.join(format!("{TEMPORARY_PREFIX}adopted-{}", key.digest()));
        let file = if std::fs::rename(source, &temporary).is_ok() {
            file
        } else {
            std::fs::copy(source, &temporary)
                .with_context(|| format!("copying {} into {}", source.display(), self.dir.display()))?;
            let copy = File::open(&temporary).with_context(|| format!("opening {}", temporary.display()))?;
            let _ = copy.try_lock();
            copy
        };
        let entry = match verify(file, key) {
            Ok(entry) => entry,
            Err(why) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(why.context(format!("it is not an entry of key {key}")));
            }
        };
        let target = self.path(key);
        std::fs::rename(&temporary, &target)
            .with_context(|| format!("putting the segment in place at {}", target.display()))?;
        Ok(entry)
    }

    /// The entry for `key` in the directory.
    fn get_local(&self, key: &Digest) -> Result<Option<CachedSegment>> {
        let path = self.path(key);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        match verify(file, key) {
            Ok(entry) => {
                // Least recently used is judged by mtime.
                let _ = entry.file.set_modified(std::time::SystemTime::now());
                Ok(Some(entry))
            }
            Err(why) => {
                log::warn(
                    "removing a damaged cached segment",
                    &[("path", path.display().to_string()), ("why", format!("{why:#}"))],
                );
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("removing the damaged cached segment {}", path.display())),
                }
            }
        }
    }

    /// A new entry to write: its data is written to it, then [`NewSegment::finish`].
    pub fn create(&self) -> Result<NewSegment> {
        let file = crate::tempfiles::create_locked(&self.dir, TEMPORARY_PREFIX)?;
        // Compressed pieces arrive in large writes, which pass the buffer by.
        let out = io::BufWriter::with_capacity(64 << 10, file.as_file().try_clone()?);
        Ok(NewSegment { file, out, hasher: sha2::Sha256::new(), data_length: 0 })
    }

    /// Removes the least recently used entries until at most the limit is kept. Returns
    /// the bytes removed.
    pub fn trim(&self) -> Result<u64> {
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&self.dir).with_context(|| format!("reading {}", self.dir.display()))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                entries.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len(), entry.path()));
            }
        }
        entries.sort();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        let mut removed = 0;
        for (_, size, path) in entries {
            if total <= self.limit {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => removed += size,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
            total -= size;
        }
        Ok(removed)
    }
}

/// A cache entry being written.
pub struct NewSegment {
    file: tempfile::NamedTempFile,
    out: io::BufWriter<File>,
    hasher: sha2::Sha256,
    data_length: u64,
}

/// The entry's data (compressed bytes, or a kept file) is written to it.
impl Write for NewSegment {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.data_length += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl NewSegment {
    /// How many bytes of data were written to it.
    pub fn data_length(&self) -> u64 {
        self.data_length
    }

    /// Adds the metadata and the footer, puts the entry in place as `key` and returns it
    /// open; it goes to the shared tier too when `share` (not when it holds
    /// `sensitive_contents`).
    pub fn finish(
        mut self,
        cache: &SegmentCache,
        key: &Digest,
        meta: &SegmentMeta,
        share: bool,
    ) -> Result<CachedSegment> {
        let path = cache.path(key);
        let json = serde_json::to_vec(meta).expect("the metadata serialises");
        self.hasher.update(&json);
        let json_length = format!("{:016x}", json.len());
        // The key and the length are covered too: an entry under another name, or with
        // another split between data and metadata, does not verify.
        self.hasher.update(key.digest().as_bytes());
        self.hasher.update(json_length.as_bytes());
        let footer = format!("\n{MAGIC}{json_length} {}\n", hex::encode(self.hasher.finalize()));
        debug_assert_eq!(footer.len() as u64, FOOTER_LEN);
        let written = (|| {
            self.out.write_all(&json)?;
            self.out.write_all(footer.as_bytes())?;
            self.out.flush()
        })();
        written.with_context(|| format!("writing a segment to {}", cache.dir.display()))?;
        drop(self.out);
        let file = self.file.as_file().try_clone()?;
        self.file.persist(&path).with_context(|| format!("putting the segment in place at {}", path.display()))?;
        if let Some(remote) = cache.remote.as_ref().filter(|_| share) {
            remote.push(key, &path);
        }
        Ok(CachedSegment { file, data_length: self.data_length, meta: meta.clone() })
    }
}

/// Checks a whole entry (named `key`) against its footer and reads its metadata.
fn verify(mut file: File, key: &Digest) -> Result<CachedSegment> {
    let size = file.metadata()?.len();
    if size < FOOTER_LEN {
        bail!("it has {size} bytes, less than a footer");
    }
    let mut footer = vec![0u8; usize::try_from(FOOTER_LEN).expect("a small constant")];
    file.seek(SeekFrom::Start(size - FOOTER_LEN))?;
    file.read_exact(&mut footer)?;
    let footer = String::from_utf8(footer).context("the footer is not text")?;
    let Some(fields) = footer.strip_prefix('\n').and_then(|f| f.strip_prefix(MAGIC)).and_then(|f| f.strip_suffix('\n'))
    else {
        bail!("no footer");
    };
    let Some((json_length_hex, sha)) = fields.split_once(' ') else { bail!("a malformed footer") };
    let json_length = u64::from_str_radix(json_length_hex, 16).context("a malformed footer")?;
    let Some(data_length) = (size - FOOTER_LEN).checked_sub(json_length) else { bail!("a malformed footer") };
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = sha2::Sha256::new();
    let mut body = (&mut file).take(size - FOOTER_LEN);
    let mut buffer = vec![0u8; 1 << 20];
    let mut json = Vec::new();
    let mut position = 0u64;
    loop {
        let n = body.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        let end = position + n as u64;
        if end > data_length {
            let from = usize::try_from(data_length.saturating_sub(position)).expect("within the buffer");
            json.extend_from_slice(&buffer[from..n]);
        }
        position = end;
    }
    if position != size - FOOTER_LEN {
        bail!("it ended early");
    }
    hasher.update(key.digest().as_bytes());
    hasher.update(json_length_hex.as_bytes());
    if hex::encode(hasher.finalize()) != sha {
        bail!("its content does not match its sha256");
    }
    let meta: SegmentMeta = serde_json::from_slice(&json).context("its metadata")?;
    Ok(CachedSegment { file, data_length, meta })
}

/// Tests, and the helpers other modules' tests fill a cache with.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn key(n: u8) -> Digest {
        crate::oci::digest::sha256(&[n])
    }

    pub(crate) fn put(cache: &SegmentCache, key: &Digest, data: &[u8]) -> CachedSegment {
        let mut entry = cache.create().unwrap();
        entry.write_all(data).unwrap();
        let meta = SegmentMeta {
            crc: 7,
            length: 100,
            directories: vec![hex::encode(b"etc")],
            warnings: vec![("a".into(), "b".into())],
        };
        entry.finish(cache, key, &meta, true).unwrap()
    }

    fn data(entry: &mut CachedSegment) -> Vec<u8> {
        let mut out = Vec::new();
        entry.copy_to(&mut out).unwrap();
        out
    }

    #[test]
    fn entries_round_trip_and_damage_is_found_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let cache = SegmentCache::open(root.path(), 1 << 30).unwrap();
        assert!(cache.get(&key(1)).unwrap().is_none());
        let mut written = put(&cache, &key(1), b"compressed bytes");
        assert_eq!(data(&mut written), b"compressed bytes");
        let mut read = cache.get(&key(1)).unwrap().unwrap();
        assert_eq!(data(&mut read), b"compressed bytes");
        assert_eq!(read.meta.directories, [hex::encode(b"etc")]);
        assert_eq!((read.meta.crc, read.meta.length, read.compressed_length()), (7, 100, 16));
        // An empty segment is an entry too.
        put(&cache, &key(2), b"");
        assert_eq!(data(&mut cache.get(&key(2)).unwrap().unwrap()), b"");

        let path = root.path().join("segments").join(key(1).digest());
        let good = std::fs::read(&path).unwrap();
        for position in [0, 10, good.len() - 40, good.len() - 2] {
            let mut bad = good.clone();
            bad[position] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(cache.get(&key(1)).unwrap().is_none(), "a flip at {position} went unnoticed");
            assert!(!path.exists(), "the damaged entry is removed");
        }
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(cache.get(&key(1)).unwrap().is_none());
        // A good entry under another key's name is not that key's entry.
        std::fs::write(&path, &good).unwrap();
        std::fs::rename(&path, root.path().join("segments").join(key(3).digest())).unwrap();
        assert!(cache.get(&key(3)).unwrap().is_none());
        let names: Vec<String> = std::fs::read_dir(root.path().join("segments"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [key(2).digest().to_string()], "no temporary file is left");
    }

    #[test]
    fn trimming_removes_the_least_recently_used_first() {
        let root = tempfile::tempdir().unwrap();
        let cache = SegmentCache::open(root.path(), 0).unwrap();
        for n in 1..=3 {
            put(&cache, &key(n), &vec![n; 1000]);
        }
        let entry = |n: u8| root.path().join("segments").join(key(n).digest());
        let set_age = |n: u8, seconds: u64| {
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + seconds);
            File::options().write(true).open(entry(n)).unwrap().set_modified(time).unwrap();
        };
        set_age(1, 30);
        set_age(2, 10);
        set_age(3, 20);
        // Using an entry makes it the most recent.
        cache.get(&key(2)).unwrap().unwrap();
        let size = std::fs::metadata(entry(1)).unwrap().len();
        let limited = SegmentCache { limit: 2 * size, ..cache.clone() };
        assert_eq!(limited.trim().unwrap(), size);
        assert!(!entry(3).exists(), "the least recently used went first");
        assert!(entry(1).exists() && entry(2).exists());
        assert_eq!(cache.trim().unwrap(), 2 * size, "a limit of 0 keeps nothing");
    }
}
