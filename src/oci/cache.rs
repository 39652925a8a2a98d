//! The content-addressed blob cache shared by every resource and every Terraform process.
//!
//! On disk:
//!
//! ```text
//! <cache_dir>/
//!   blobs/sha256/<hex>          verified content: manifests, indexes, configs, layers
//!   blobs/sha256/.tmp-<random>  a download in progress (same directory, so rename is atomic)
//!   locks/<hex>.lock            advisory lock held by the process fetching <hex>
//! ```
//!
//! Invariants:
//! * A file under `blobs/sha256/` always has exactly the digest of its name: content is
//!   hashed while it is written to a temporary file, its digest and size are checked, and
//!   only then is it renamed into place. Nothing partial or unverified is ever visible.
//! * Several processes may share the directory. Rename makes insertion atomic; the lock
//!   file only stops two processes from downloading the same blob at once.
//! * Temporary files are removed when a download fails (they are `tempfile` handles,
//!   deleted on drop).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures_util::{Stream, StreamExt};
use sha2::Digest as _;
use thiserror::Error;

use super::reference::Digest;

/// How often a long download logs its progress.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Blob content did not match what its descriptor promised.
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Digest { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("size mismatch for {digest}: expected {expected} bytes, got more")]
    TooLong { digest: Digest, expected: u64 },
}

/// Handle on a cache directory.
#[derive(Clone, Debug)]
pub struct BlobCache {
    root: PathBuf,
}

impl BlobCache {
    /// Opens (creating if needed) the cache rooted at `root`.
    pub fn open(root: &Path) -> Result<BlobCache> {
        for dir in [root.join("blobs/sha256"), root.join("locks")] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating cache directory {}", dir.display()))?;
        }
        Ok(BlobCache {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is there yet).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is cached (with the expected size, when one is known).
    pub fn contains(&self, digest: &Digest, size: Option<u64>) -> bool {
        match std::fs::metadata(self.blob_path(digest)) {
            Ok(meta) => meta.is_file() && size.is_none_or(|s| s == meta.len()),
            Err(_) => false,
        }
    }

    /// Reads a cached blob whole; for small blobs (manifests, configs) only.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        std::fs::read(&path).with_context(|| format!("reading cached blob {}", path.display()))
    }

    /// Takes the per-blob lock so that only one process downloads `digest`; the lock is
    /// released when the returned guard is dropped.
    pub async fn lock(&self, digest: &Digest) -> Result<BlobLock> {
        let path = self.root.join("locks").join(format!("{}.lock", digest.hex()));
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening lock file {}", path.display()))?;
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
            Ok(BlobLock { _file: file })
        })
        .await?
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
    pub async fn insert_stream<S, B, E>(
        &self,
        digest: &Digest,
        size: Option<u64>,
        mut stream: S,
    ) -> Result<PathBuf>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]> + Send + 'static,
        E: Into<anyhow::Error>,
    {
        let mut writer = self.writer(digest, size)?;
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<B>(8);
        let worker = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = receiver.blocking_recv() {
                writer.write(chunk.as_ref())?;
            }
            Ok::<BlobWriter, anyhow::Error>(writer)
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
        let writer = worker.await??;
        if let Some(error) = failure {
            // Dropping the writer removes the temporary file.
            drop(writer);
            return Err(error);
        }
        tokio::task::spawn_blocking(move || writer.commit()).await?
    }

    fn writer(&self, digest: &Digest, size: Option<u64>) -> Result<BlobWriter> {
        let dir = self.root.join("blobs/sha256");
        let file = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
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
                return Err(VerifyError::TooLong {
                    digest: self.digest.clone(),
                    expected,
                }
                .into());
            }
        }
        self.hasher.update(bytes);
        self.file.write_all(bytes).with_context(|| {
            format!("writing to {}", self.file.path().display())
        })
    }

    fn commit(self) -> Result<PathBuf> {
        let actual = Digest::from_sha256(&self.hasher.finalize());
        if let Some(expected) = self.size {
            if self.written != expected {
                return Err(VerifyError::Size {
                    digest: self.digest,
                    expected,
                    actual: self.written,
                }
                .into());
            }
        }
        if actual != self.digest {
            return Err(VerifyError::Digest {
                expected: self.digest,
                actual,
            }
            .into());
        }
        self.file
            .as_file()
            .sync_all()
            .with_context(|| format!("syncing {}", self.file.path().display()))?;
        self.file
            .persist(&self.destination)
            .with_context(|| format!("moving blob into place at {}", self.destination.display()))?;
        Ok(self.destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn verified_bytes_are_stored_under_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let digest = Digest::of(b"hello");
        assert!(!cache.contains(&digest, None));
        let path = cache.insert_bytes(&digest, Some(5), b"hello").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"hello");
        assert!(cache.contains(&digest, Some(5)));
        assert!(!cache.contains(&digest, Some(6)));
        assert_eq!(entries(&dir.path().join("blobs/sha256")), vec![digest.hex().to_string()]);
    }

    #[test]
    fn corrupt_content_never_enters_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let digest = Digest::of(b"hello");
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
        let digest = Digest::of(b"abcdef");
        let chunks = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(b"abc".to_vec()),
            Ok(b"def".to_vec()),
        ]);
        cache.insert_stream(&digest, Some(6), chunks).await.unwrap();
        assert_eq!(cache.read(&digest).unwrap(), b"abcdef");

        let other = Digest::of(b"xyz");
        let failing = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(b"x".to_vec()),
            Err(std::io::Error::other("connection reset")),
        ]);
        let err = cache.insert_stream(&other, Some(3), failing).await.unwrap_err();
        assert!(err.to_string().contains("connection reset"));
        assert!(!cache.contains(&other, None));
        assert_eq!(entries(&dir.path().join("blobs/sha256")), vec![digest.hex().to_string()]);
    }
}
