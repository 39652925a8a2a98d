//! Resolving references to pinned platform manifests and pulling their blobs into the
//! cache.
//!
//! Resolution reads the manifest the reference names; an index (or Docker manifest list)
//! is narrowed to the requested platform, and that manifest and the image config are
//! fetched by digest. Every document is verified and stored in the cache, so a later
//! step (or another process) can read it by digest. Pulling fetches the layers with at
//! most `parallel` downloads at once; layers already cached are not fetched again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::cache::{damaged_blob, BlobCache};
use super::layout;
use super::manifest::{descriptor_platform, Descriptor, ImageConfig, ImageManifest, Manifest};
use super::platform::Platform;
use super::reference::{Digest, ImageReference};
use super::registry::RegistryClient;
use crate::log;

/// An index without a manifest for the requested platform.
#[derive(Debug, thiserror::Error)]
#[error("{reference} has no manifest for platform {platform} (the index offers: {offered})")]
pub struct PlatformMissing {
    pub reference: String,
    pub platform: Platform,
    /// The platforms the index has, joined by `, ` (`none` when it names none).
    pub offered: String,
}

/// A reference resolved for one platform.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The reference as given.
    pub reference: ImageReference,
    /// The platform it was resolved for.
    pub platform: Platform,
    /// Digest of the platform's image manifest: what `digest` records.
    pub digest: Digest,
    /// Digest of the index the reference named, when it named one (and was not resolved
    /// by a pinned platform digest): what LinuxKit pins.
    pub index: Option<Digest>,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
}

/// What a pull did, for logs and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct PullStats {
    pub layers: usize,
    pub layers_fetched: usize,
    pub bytes_fetched: u64,
    pub elapsed: Duration,
}

/// Resolves and pulls images into one cache. At most `parallel` blobs are downloaded at
/// once, however many images and resources pull at the same time.
pub struct Puller {
    cache: BlobCache,
    registry: Arc<RegistryClient>,
    parallel: usize,
    downloads: tokio::sync::Semaphore,
}

impl Puller {
    pub fn new(cache: BlobCache, registry: Arc<RegistryClient>, parallel: usize) -> Puller {
        let parallel = parallel.max(1);
        Puller { cache, registry, parallel, downloads: tokio::sync::Semaphore::new(parallel) }
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    pub fn cache(&self) -> &BlobCache {
        &self.cache
    }

    /// Resolves `reference` for `platform`. With `pinned`, the platform manifest digest is
    /// already known (from a plan or from state) and is fetched directly, so the tag cannot
    /// move under the caller.
    pub async fn resolve(
        &self,
        reference: &ImageReference,
        platform: &Platform,
        pinned: Option<&Digest>,
    ) -> Result<ResolvedImage> {
        let started = Instant::now();
        let (bytes, digest) = self.manifest(reference, pinned).await?;
        let (manifest, digest, index_digest) = match Manifest::parse(&bytes)
            .with_context(|| format!("reading the manifest {digest} of {reference}"))?
        {
            Manifest::Image(manifest) => (*manifest, digest, None),
            Manifest::Index(index) => {
                let index_digest = digest.clone();
                if pinned.is_some() {
                    bail!("{reference}: the pinned digest {digest} names an index, not a platform manifest");
                }
                let entry = index
                    .manifests()
                    .iter()
                    .find(|m| {
                        descriptor_platform(m).is_some_and(|(os, architecture, variant)| {
                            platform.matches(&os, &architecture, variant.as_deref())
                        })
                    })
                    .ok_or_else(|| {
                        let available: Vec<String> = index
                            .manifests()
                            .iter()
                            .filter_map(descriptor_platform)
                            .map(|(os, architecture, variant)| match variant {
                                Some(v) => format!("{os}/{architecture}/{v}"),
                                None => format!("{os}/{architecture}"),
                            })
                            .collect();
                        PlatformMissing {
                            reference: reference.to_string(),
                            platform: platform.clone(),
                            offered: if available.is_empty() { "none".to_string() } else { available.join(", ") },
                        }
                    })?;
                let (bytes, digest) = self.manifest(reference, Some(entry.digest())).await?;
                if bytes.len() as u64 != entry.size() {
                    bail!("{reference}: manifest {digest} has {} bytes, the index says {}", bytes.len(), entry.size());
                }
                match Manifest::parse(&bytes)
                    .with_context(|| format!("reading the manifest {digest} of {reference}"))?
                {
                    Manifest::Image(manifest) => (*manifest, digest, Some(index_digest)),
                    Manifest::Index(_) => bail!("{reference}: nested indexes are not supported"),
                }
            }
        };
        let config_digest = manifest.config().digest();
        let config_bytes = self
            .fetch_document(reference, config_digest, manifest.config().size())
            .await
            .with_context(|| format!("fetching the config {config_digest} of {reference}"))?;
        let config = ImageConfig::parse(&config_bytes)
            .with_context(|| format!("reading the config {config_digest} of {reference}"))?;
        if let Some(diff_ids) = config.diff_ids() {
            if diff_ids.len() != manifest.layers().len() {
                bail!(
                    "{reference}: the config {config_digest} lists {} layer diff_ids, the manifest {digest} has {} layers",
                    diff_ids.len(),
                    manifest.layers().len()
                );
            }
        }
        if let (Some(os), Some(architecture)) = (&config.os, &config.architecture) {
            if !platform.matches(os, architecture, config.variant.as_deref()) {
                bail!("{reference} is an image for {os}/{architecture}, not for the requested platform {platform}");
            }
        }
        log::debug(
            "resolved image",
            &[
                ("reference", reference.to_string()),
                ("platform", platform.to_string()),
                ("digest", digest.to_string()),
                ("elapsed_ms", started.elapsed().as_millis().to_string()),
            ],
        );
        Ok(ResolvedImage {
            reference: reference.clone(),
            platform: platform.clone(),
            digest,
            index: index_digest,
            manifest,
            config,
        })
    }

    /// Fetches a manifest (by `digest` when given) and stores it in the cache.
    async fn manifest(&self, reference: &ImageReference, digest: Option<&Digest>) -> Result<(Vec<u8>, Digest)> {
        if let Some(digest) = digest.cloned().or_else(|| reference.digest()) {
            if let Some(bytes) = self.read_cached(&digest, None).await? {
                return Ok((bytes, digest));
            }
        }
        let (bytes, digest) = match reference {
            ImageReference::Registry(r) => self.registry.fetch_manifest(r, digest).await,
            ImageReference::Layout(l) => layout::fetch_manifest(l, digest).await,
        }
        .with_context(|| format!("fetching the manifest of {reference}"))?;
        self.cache.insert_bytes(&digest, Some(bytes.len() as u64), &bytes)?;
        Ok((bytes, digest))
    }

    /// Brings one blob into the cache unless it is there. Returns the bytes fetched.
    async fn fetch_blob(&self, reference: &ImageReference, digest: &Digest, size: u64) -> Result<u64> {
        if self.cache.contains(digest, Some(size)) {
            return Ok(0);
        }
        let _lock = self.cache.lock(digest).await?;
        // Another process may have fetched it while this one waited for the lock.
        if self.cache.contains(digest, Some(size)) {
            return Ok(0);
        }
        let _download = self.downloads.acquire().await.expect("the semaphore is never closed");
        match reference {
            ImageReference::Registry(r) => self.registry.fetch_blob(r, digest, size, &self.cache).await?,
            ImageReference::Layout(l) => layout::fetch_blob(l, digest, size, &self.cache).await?,
        }
        Ok(size)
    }

    /// A small cached blob, verified (off the async runtime); `None` when absent or
    /// damaged (then evicted).
    async fn read_cached(&self, digest: &Digest, size: Option<u64>) -> Result<Option<Vec<u8>>> {
        let (cache, digest) = (self.cache.clone(), digest.clone());
        tokio::task::spawn_blocking(move || cache.read_verified(&digest, size)).await?
    }

    /// A small blob (a config), from the cache when it is there and intact, else fetched.
    async fn fetch_document(&self, reference: &ImageReference, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        // A damaged copy is evicted by the read, so the second round fetches it again.
        for _ in 0..2 {
            self.fetch_blob(reference, digest, size).await?;
            if let Some(bytes) = self.read_cached(digest, Some(size)).await? {
                return Ok(bytes);
            }
        }
        bail!("{digest} was damaged again right after it was fetched")
    }

    async fn pull_layer(&self, reference: &ImageReference, index: usize, layer: Descriptor) -> Result<u64> {
        let digest = layer.digest();
        let layer_started = Instant::now();
        let bytes = self
            .fetch_blob(reference, digest, layer.size())
            .await
            .with_context(|| format!("pulling layer {} ({digest}) of {reference}", index + 1))?;
        log::debug(
            "pulled layer",
            &[
                ("reference", reference.to_string()),
                ("digest", digest.to_string()),
                ("bytes", layer.size().to_string()),
                ("cache", if bytes == 0 { "hit" } else { "miss" }.to_string()),
                ("elapsed_ms", layer_started.elapsed().as_millis().to_string()),
            ],
        );
        Ok(bytes)
    }

    /// Runs `work` (on a blocking thread) over images already pulled. When it finds a cache
    /// blob damaged ([`DamagedBlob`]), the blob is evicted, the images are pulled again
    /// (which fetches just that blob, verified) and `work` runs again; a blob damaged
    /// again after it was fetched is an error. `work` must not have published anything
    /// when it fails, which holds for assembly: it writes to temporary files until the end.
    pub async fn with_repair<T: Send + 'static>(
        &self,
        images: &[ResolvedImage],
        work: impl Fn() -> Result<T> + Send + Sync + 'static,
    ) -> Result<T> {
        let work = Arc::new(work);
        let mut repaired: HashSet<Digest> = HashSet::new();
        loop {
            let attempt = work.clone();
            let error = match tokio::task::spawn_blocking(move || attempt()).await? {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let Some(damage) = damaged_blob(&error) else { return Err(error) };
            let (digest, file) = (damage.digest.clone(), damage.file);
            if !repaired.insert(digest.clone()) {
                return Err(error.context(format!("{digest} was fetched again and is still damaged")));
            }
            let (cache, why, evicted) = (self.cache.clone(), format!("{error:#}"), digest.clone());
            tokio::task::spawn_blocking(move || cache.evict(&evicted, &why, file)).await??;
            for image in images {
                self.pull(image).await?;
            }
        }
    }

    /// Pulls every layer of `image` into the cache, `parallel` at a time.
    pub async fn pull(&self, image: &ResolvedImage) -> Result<PullStats> {
        let started = Instant::now();
        let reference = &image.reference;
        let layers = image.manifest.layers();
        let owned: Vec<(usize, Descriptor)> = layers.iter().cloned().enumerate().collect();
        let fetched: Vec<u64> = stream::iter(owned)
            .map(|(index, layer)| self.pull_layer(reference, index, layer))
            .buffered(self.parallel)
            .try_collect()
            .await?;
        let stats = PullStats {
            layers: layers.len(),
            layers_fetched: fetched.iter().filter(|b| **b > 0).count(),
            bytes_fetched: fetched.iter().sum(),
            elapsed: started.elapsed(),
        };
        log::debug(
            "pulled image",
            &[
                ("reference", reference.to_string()),
                ("digest", image.digest.to_string()),
                ("layers", stats.layers.to_string()),
                ("layers_fetched", stats.layers_fetched.to_string()),
                ("bytes_fetched", stats.bytes_fetched.to_string()),
                ("elapsed_ms", stats.elapsed.as_millis().to_string()),
            ],
        );
        Ok(stats)
    }
}
