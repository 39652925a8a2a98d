//! The content-addressed blob cache shared by every resource and every Terraform process.
//!
//! On disk:
//!
//! ```text
//! <cache_dir>/
//!   blobs/sha256/<hex>          verified content: manifests, indexes, configs, layers
//!   blobs/sha256/.tmp-<random>  a download in progress (same directory, so rename is atomic)
//!   locks/<hex>.lock            advisory lock held by the process fetching <hex>
//!   diff_ids/<hex>              the diff_id layer <hex> was checked against, uncompressed
//! ```
//!
//! Invariants:
//! * A file under `blobs/sha256/` always has exactly the digest of its name: content is
//!   hashed while it is written to a temporary file, its digest and size are checked, and
//!   only then is it renamed into place. Nothing partial or unverified is ever visible.
//! * Several processes may share the directory. Rename makes insertion atomic; the lock
//!   file only stops two processes from downloading the same blob at once.
//! * A blob is trusted only as far as it is verified on the read that uses it: small
//!   documents by [`BlobCache::read_verified`], layers as they stream through assembly
//!   (`crate::rootfs::layer::LayerSource`). A blob damaged on disk after it was written is
//!   reported as [`DamagedBlob`], evicted, and fetched again from where it came from. A
//!   reader may also read a blob as it downloads ([`super::tap`]): the download is then the
//!   read that verifies it, and the reader's data ends only once it has.
//! * A layer's uncompressed tar is hashed against the image config's `diff_id` on its first
//!   read only: the check is then recorded under `diff_ids/` ([`BlobCache::record_diff_id`]),
//!   and later reads verify the blob's digest alone, which pins the same compressed bytes
//!   and so the same uncompressed ones. A record names the diff_id checked: another
//!   config's claim about the same blob is checked again.
//! * Temporary files are removed when a download fails (they are `tempfile` handles,
//!   deleted on drop), and locked while they are written: those of a killed process are
//!   removed when the cache is next opened ([`crate::tempfiles`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures_util::{Stream, StreamExt};
use sha2::Digest as _;
use thiserror::Error;

use super::digest::Digest;
use super::tap::{Feed, Taps};

/// Names of downloads in progress in `blobs/sha256/`.
const TEMPORARY_PREFIX: &str = ".tmp-";

/// How often a long download logs its progress.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Blob content did not match what its descriptor promised.
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Digest { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    Size { digest: Digest, expected: u64, actual: u64 },
    #[error("size mismatch for {digest}: expected {expected} bytes, got more")]
    TooLong { digest: Digest, expected: u64 },
}

/// A cached blob no longer has the content its name promises: damaged on disk after it
/// was verified and written. Whoever reads it evicts it and fetches it again.
#[derive(Debug, Error)]
#[error("the cached blob {digest} is damaged ({detail})")]
pub struct DamagedBlob {
    pub digest: Digest,
    pub detail: String,
    /// Which file was read (device, inode), so that only that file is evicted and not a
    /// good copy another process has put in its place since; `None` when it is missing.
    pub file: Option<FileIdentity>,
}

/// A file's device and inode numbers.
pub type FileIdentity = (u64, u64);

/// The identity of an open file.
pub fn identity(meta: &std::fs::Metadata) -> FileIdentity {
    use std::os::unix::fs::MetadataExt as _;
    (meta.dev(), meta.ino())
}

/// The damaged cache blob behind `error`, if that is what it is.
pub fn damaged_blob(error: &anyhow::Error) -> Option<&DamagedBlob> {
    error.chain().find_map(|e| e.downcast_ref::<DamagedBlob>())
}

/// The largest document (manifest, index) read from the cache without a known size;
/// registries refuse larger manifests.
const MAX_DOCUMENT_BYTES: u64 = 4 << 20;

/// Handle on a cache directory.
#[derive(Clone, Debug)]
pub struct BlobCache {
    root: PathBuf,
    /// Readers of downloads in progress, shared by the handle's clones.
    taps: Taps,
}

impl BlobCache {
    /// Opens (creating if needed) the cache rooted at `root`.
    pub fn open(root: &Path) -> Result<BlobCache> {
        for dir in [root.join("blobs/sha256"), root.join("locks")] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating cache directory {}", dir.display()))?;
        }
        // Downloads of runs that were killed: their writers' locks are gone.
        if let Err(e) = crate::tempfiles::remove_abandoned(&root.join("blobs/sha256"), TEMPORARY_PREFIX) {
            crate::log::warn(
                "could not remove abandoned temporary files from the cache",
                &[("error", format!("{e:#}"))],
            );
        }
        Ok(BlobCache { root: root.to_path_buf(), taps: Taps::default() })
    }

    /// Readers of blobs as they download ([`super::tap`]).
    pub fn taps(&self) -> &Taps {
        &self.taps
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is there yet).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(super::digest::blob_path(digest))
    }

    /// Whether layer `blob` was read (verified) and found to be `diff_id` uncompressed.
    pub fn diff_id_checked(&self, blob: &Digest, diff_id: &Digest) -> bool {
        std::fs::read(self.diff_id_path(blob)).is_ok_and(|recorded| recorded == diff_id.to_string().as_bytes())
    }

    /// Records that layer `blob`, read and verified, is `diff_id` uncompressed. A failure
    /// to record costs the check again on the next read, nothing more.
    pub fn record_diff_id(&self, blob: &Digest, diff_id: &Digest) {
        let path = self.diff_id_path(blob);
        let written = (|| -> Result<()> {
            let dir = path.parent().context("a record in a directory")?;
            std::fs::create_dir_all(dir)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            file.write_all(diff_id.to_string().as_bytes())?;
            file.persist(&path)?;
            Ok(())
        })();
        if let Err(e) = written {
            crate::log::debug(
                "could not record a checked diff_id",
                &[("blob", blob.to_string()), ("error", format!("{e:#}"))],
            );
        }
    }

    fn diff_id_path(&self, blob: &Digest) -> PathBuf {
        self.root.join("diff_ids").join(blob.digest())
    }

    /// Whether the blob is cached (with the expected size, when one is known).
    pub fn contains(&self, digest: &Digest, size: Option<u64>) -> bool {
        match std::fs::metadata(self.blob_path(digest)) {
            Ok(meta) => meta.is_file() && size.is_none_or(|s| s == meta.len()),
            Err(_) => false,
        }
    }

    /// Reads a cached blob whole and checks it against its digest (and `size`, when
    /// known); for small blobs (manifests, configs) only: a blob without a known size is
    /// read only up to 4 MiB. `None` when it is absent, or damaged (it is then evicted, so
    /// the caller fetches it again). Blocking: call it off the async runtime.
    pub fn read_verified(&self, digest: &Digest, size: Option<u64>) -> Result<Option<Vec<u8>>> {
        use std::io::Read as _;
        let path = self.blob_path(digest);
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening cached blob {}", path.display())),
        };
        let meta = file.metadata().with_context(|| format!("reading the metadata of {}", path.display()))?;
        let damage = match size {
            Some(size) if meta.len() != size => Some(format!("it has {} bytes, not {size}", meta.len())),
            None if meta.len() > MAX_DOCUMENT_BYTES => {
                Some(format!("it has {} bytes, more than a manifest may", meta.len()))
            }
            _ => None,
        };
        let damage = match damage {
            Some(damage) => damage,
            None => {
                let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
                file.read_to_end(&mut bytes).with_context(|| format!("reading cached blob {}", path.display()))?;
                let actual = super::digest::sha256(&bytes);
                if &actual == digest {
                    return Ok(Some(bytes));
                }
                format!("its content hashes to {actual}")
            }
        };
        self.evict(digest, &damage, Some(identity(&meta)))?;
        Ok(None)
    }

    /// Removes a blob found damaged, so that the next fetch writes a verified copy. With
    /// `file`, only if the blob is still that file: another process may have replaced it
    /// with a good copy meanwhile (checked under the blob's lock, which every fetch holds
    /// while it puts a blob in place). Blocking: call it off the async runtime.
    pub fn evict(&self, digest: &Digest, why: &str, file: Option<FileIdentity>) -> Result<()> {
        let _lock = self.lock_blocking(digest)?;
        let path = self.blob_path(digest);
        match (std::fs::metadata(&path), file) {
            (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            (Ok(meta), Some(file)) if identity(&meta) != file => return Ok(()),
            _ => {}
        }
        crate::log::info(
            "evicting a damaged cache blob",
            &[("digest", digest.to_string()), ("path", path.display().to_string()), ("why", why.to_string())],
        );
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the damaged cache blob {}", path.display())),
        }
    }

    /// Removes a blob that is no longer wanted here (a shared segment entry, moved into
    /// the segment cache), under its lock. Blocking.
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let _lock = self.lock_blocking(digest)?;
        let path = self.blob_path(digest);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    /// Takes the per-blob lock so that only one process downloads `digest`; the lock is
    /// released when the returned guard is dropped.
    pub async fn lock(&self, digest: &Digest) -> Result<BlobLock> {
        let (cache, digest) = (self.clone(), digest.clone());
        tokio::task::spawn_blocking(move || cache.lock_blocking(&digest)).await?
    }

    fn lock_blocking(&self, digest: &Digest) -> Result<BlobLock> {
        let path = self.root.join("locks").join(format!("{}.lock", digest.digest()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        file.lock().with_context(|| format!("locking {}", path.display()))?;
        Ok(BlobLock { _file: file })
    }

    /// Verifies `bytes` against `digest` (and `size`) and stores them.
    pub fn insert_bytes(&self, digest: &Digest, size: Option<u64>, bytes: &[u8]) -> Result<PathBuf> {
        let mut writer = self.writer(digest, size)?;
        writer.write(bytes)?;
        writer.commit()
    }

    /// Streams a blob into the cache and stores it once verified. Hashing and writing run
    /// on a blocking thread fed through a small bounded channel, so the async runtime only
    /// moves buffers. A stream that runs past `size` is cut off at once rather than read to
    /// its end.
    pub async fn insert_stream<S, B, E>(&self, digest: &Digest, size: Option<u64>, mut stream: S) -> Result<PathBuf>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]> + Send + 'static,
        E: Into<anyhow::Error>,
    {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<B>(8);
        let (cache, owned_digest) = (self.clone(), digest.clone());
        // A reader of this download gets each chunk too (the first attempt to bring bytes
        // takes the tap: a retry after that has none).
        let mut tap = self.taps.take(digest);
        let worker = tokio::task::spawn_blocking(move || {
            // Created here, off the runtime; if this fails, sending fails and the error
            // is reported below.
            let mut writer = cache.writer(&owned_digest, size)?;
            while let Some(chunk) = receiver.blocking_recv() {
                writer.write(chunk.as_ref())?;
                // A reader that is gone stops the copies, not the download.
                if tap.as_ref().is_some_and(|tap| tap.send(Feed::Data(chunk.as_ref().to_vec())).is_err()) {
                    tap = None;
                }
            }
            Ok::<_, anyhow::Error>((writer, tap))
        });
        let mut failure = None;
        let started = std::time::Instant::now();
        let mut reported = started;
        let mut received: u64 = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    received += chunk.as_ref().len() as u64;
                    // Long downloads say how far they are, every PROGRESS_INTERVAL.
                    if reported.elapsed() >= PROGRESS_INTERVAL {
                        reported = std::time::Instant::now();
                        crate::log::info(
                            "pulling blob",
                            &[
                                ("digest", digest.to_string()),
                                ("bytes", received.to_string()),
                                ("of", size.map_or("unknown".into(), |s| s.to_string())),
                                ("elapsed_ms", started.elapsed().as_millis().to_string()),
                            ],
                        );
                    }
                    if sender.send(chunk).await.is_err() {
                        // The writer stopped: its error is reported below.
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
        }
        drop(sender);
        let (writer, tap) = worker.await??;
        if let Some(error) = failure {
            // Dropping the writer removes the temporary file (and the tap, which ends
            // its reader with an error).
            drop(writer);
            return Err(error);
        }
        let path = tokio::task::spawn_blocking(move || writer.commit()).await??;
        if let Some(tap) = tap {
            let _ = tap.send(Feed::Verified);
        }
        Ok(path)
    }

    fn writer(&self, digest: &Digest, size: Option<u64>) -> Result<BlobWriter> {
        let dir = self.root.join("blobs/sha256");
        let file = crate::tempfiles::create_locked(&dir, TEMPORARY_PREFIX)?;
        Ok(BlobWriter {
            file,
            hasher: sha2::Sha256::new(),
            written: 0,
            digest: digest.clone(),
            size,
            destination: self.blob_path(digest),
        })
    }
}

/// A held per-blob lock.
pub struct BlobLock {
    _file: std::fs::File,
}

/// A blob being written: hashed as written, renamed into place by [`BlobWriter::commit`].
struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: sha2::Sha256,
    written: u64,
    digest: Digest,
    size: Option<u64>,
    destination: PathBuf,
}

impl BlobWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        if let Some(expected) = self.size {
            if self.written > expected {
                return Err(VerifyError::TooLong { digest: self.digest.clone(), expected }.into());
            }
        }
        self.hasher.update(bytes);
        self.file.write_all(bytes).with_context(|| format!("writing to {}", self.file.path().display()))
    }

    fn commit(self) -> Result<PathBuf> {
        let actual = super::digest::from_hash(&self.hasher.finalize());
        if let Some(expected) = self.size {
            if self.written != expected {
                return Err(VerifyError::Size { digest: self.digest, expected, actual: self.written }.into());
            }
        }
        if actual != self.digest {
            return Err(VerifyError::Digest { expected: self.digest, actual }.into());
        }
        self.file.as_file().sync_all().with_context(|| format!("syncing {}", self.file.path().display()))?;
        self.file
            .persist(&self.destination)
            .with_context(|| format!("moving blob into place at {}", self.destination.display()))?;
        Ok(self.destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checked_diff_id_is_recorded_for_its_blob_and_that_diff_id_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let sha = crate::oci::digest::sha256;
        let (blob, diff_id, other) = (sha(b"layer"), sha(b"tar"), sha(b"another tar"));
        assert!(!cache.diff_id_checked(&blob, &diff_id), "nothing recorded yet");
        cache.record_diff_id(&blob, &diff_id);
        assert!(cache.diff_id_checked(&blob, &diff_id));
        assert!(!cache.diff_id_checked(&blob, &other), "another config's claim is checked again");
        assert!(!cache.diff_id_checked(&other, &diff_id), "another blob is checked");
        // A record that is not a diff_id (damaged) only costs the check again.
        std::fs::write(dir.path().join("diff_ids").join(blob.digest()), b"garbage").unwrap();
        assert!(!cache.diff_id_checked(&blob, &diff_id));
    }

    #[test]
    fn damaged_blobs_are_evicted_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let digest = crate::oci::digest::sha256(b"{\"config\":1}");
        assert!(cache.read_verified(&digest, Some(12)).unwrap().is_none(), "absent");
        cache.insert_bytes(&digest, None, b"{\"config\":1}").unwrap();
        assert_eq!(cache.read_verified(&digest, Some(12)).unwrap().unwrap(), b"{\"config\":1}");
        assert!(cache.read_verified(&digest, None).unwrap().is_some(), "the size need not be known");
        // Edited on disk at the same size: evicted, not trusted.
        std::fs::write(cache.blob_path(&digest), b"{\"config\":2}").unwrap();
        assert!(cache.read_verified(&digest, Some(12)).unwrap().is_none());
        assert!(!cache.contains(&digest, None), "the damaged blob must be evicted");
        // Of another size: evicted without being read.
        std::fs::write(cache.blob_path(&digest), b"{\"config\":1, \"more\": 2}").unwrap();
        assert!(cache.read_verified(&digest, Some(12)).unwrap().is_none());
        assert!(!cache.contains(&digest, None));
    }

    #[test]
    fn eviction_spares_a_good_copy_put_in_place_since() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let digest = crate::oci::digest::sha256(b"layer");
        std::fs::write(cache.blob_path(&digest), b"lay3r").unwrap();
        // Held open, as the reader that found it damaged holds it (its inode stays taken).
        let damaged_file = std::fs::File::open(cache.blob_path(&digest)).unwrap();
        let damaged = identity(&damaged_file.metadata().unwrap());
        // Another process fetched a good copy and renamed it into place.
        cache.insert_bytes(&digest, Some(5), b"layer").unwrap();
        cache.evict(&digest, "test", Some(damaged)).unwrap();
        assert!(cache.contains(&digest, Some(5)), "the good copy must stay");
        cache.evict(&digest, "test", None).unwrap();
        assert!(!cache.contains(&digest, None));
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn verified_bytes_are_stored_under_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let digest = crate::oci::digest::sha256(b"hello");
        assert!(!cache.contains(&digest, None));
        let path = cache.insert_bytes(&digest, Some(5), b"hello").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"hello");
        assert!(cache.contains(&digest, Some(5)));
        assert!(!cache.contains(&digest, Some(6)));
        assert_eq!(entries(&dir.path().join("blobs/sha256")), vec![digest.digest().to_string()]);
    }

    #[test]
    fn corrupt_content_never_enters_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let digest = crate::oci::digest::sha256(b"hello");
        let cases: [(&[u8], Option<u64>, &str); 3] = [
            (b"hellO", Some(5), "digest mismatch"),
            (b"hell", Some(5), "size mismatch"),
            (b"hello!", Some(5), "got more"),
        ];
        for (content, size, message) in cases {
            let err = cache.insert_bytes(&digest, size, content).unwrap_err();
            assert!(err.to_string().contains(message), "{err:#}");
            assert!(!cache.contains(&digest, None));
            assert!(entries(&dir.path().join("blobs/sha256")).is_empty(), "temp file left behind");
        }
    }

    #[tokio::test]
    async fn streams_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let digest = crate::oci::digest::sha256(b"abcdef");
        let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(b"abc".to_vec()), Ok(b"def".to_vec())]);
        cache.insert_stream(&digest, Some(6), chunks).await.unwrap();
        assert_eq!(cache.read_verified(&digest, Some(6)).unwrap().unwrap(), b"abcdef");

        let other = crate::oci::digest::sha256(b"xyz");
        let failing = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(b"x".to_vec()),
            Err(std::io::Error::other("connection reset")),
        ]);
        let err = cache.insert_stream(&other, Some(3), failing).await.unwrap_err();
        assert!(err.to_string().contains("connection reset"));
        assert!(!cache.contains(&other, None));
        assert_eq!(entries(&dir.path().join("blobs/sha256")), vec![digest.digest().to_string()]);
    }

    /// A tap on a download reads its bytes and ends once the blob is verified and in
    /// place; on a download whose bytes do not match, it ends with an error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tap_reads_a_download_and_ends_once_it_is_verified() {
        use std::io::Read as _;
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let reading = |mut tap: crate::oci::tap::BlobTap, cache: BlobCache, digest: Digest| {
            tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::new();
                let read = tap.read_to_end(&mut bytes).map(|_| bytes);
                (read, cache.contains(&digest, None))
            })
        };
        let content: Vec<u8> = (0..200_000u32).flat_map(u32::to_le_bytes).collect();
        let digest = crate::oci::digest::sha256(&content);
        let reader = reading(cache.taps().tap(&digest), cache.clone(), digest.clone());
        let chunks = content.chunks(1000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>();
        cache.insert_stream(&digest, Some(content.len() as u64), futures_util::stream::iter(chunks)).await.unwrap();
        let (read, in_place) = reader.await.unwrap();
        assert!(read.unwrap() == content, "the tap gave the download's bytes");
        assert!(in_place, "it ended once the blob was in place");

        let claimed = crate::oci::digest::sha256(b"something else");
        let reader = reading(cache.taps().tap(&claimed), cache.clone(), claimed.clone());
        let chunks = vec![Ok::<_, std::io::Error>(content[..6].to_vec())];
        cache.insert_stream(&claimed, Some(6), futures_util::stream::iter(chunks)).await.unwrap_err();
        let (read, in_place) = reader.await.unwrap();
        assert!(read.unwrap_err().to_string().contains("ended before the blob was verified"));
        assert!(!in_place);
    }
}
