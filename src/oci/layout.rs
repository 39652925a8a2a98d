//! Reading images from a local OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`), for offline use. Blobs are copied into the cache through the same
//! verification as registry downloads, so a corrupt layout is caught the same way.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::cache::BlobCache;
use super::manifest::parse_index;
use super::reference::{Digest, LayoutReference};
use super::FetchError;

/// Annotation naming a manifest in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join(super::digest::blob_path(digest))
}

fn check_layout(dir: &Path) -> Result<()> {
    let marker = dir.join("oci-layout");
    if !marker.is_file() {
        if !dir.exists() {
            return Err(FetchError::NotFound { what: format!("OCI layout directory {}", dir.display()) }.into());
        }
        bail!("{} is not an OCI image layout (no oci-layout file)", dir.display());
    }
    Ok(())
}

/// Reads the manifest `reference` names (or `digest`, when given). Returns the bytes and
/// their digest; the digest is checked against the file.
pub async fn fetch_manifest(reference: &LayoutReference, digest: Option<&Digest>) -> Result<(Vec<u8>, Digest)> {
    let dir = PathBuf::from(&reference.path);
    check_layout(&dir)?;
    let digest = match digest.or(reference.digest.as_ref()) {
        Some(d) => d.clone(),
        None => {
            let tag = reference.tag.as_deref().unwrap_or("latest");
            let index_path = dir.join("index.json");
            let bytes =
                tokio::fs::read(&index_path).await.with_context(|| format!("reading {}", index_path.display()))?;
            let index = parse_index(&bytes).with_context(|| format!("reading {}", index_path.display()))?;
            let tag_of = |m: &oci_spec::image::Descriptor| -> Option<String> {
                m.annotations().as_ref().and_then(|a| a.get(REF_NAME)).cloned()
            };
            let Some(entry) = index.manifests().iter().find(|m| tag_of(m).as_deref() == Some(tag)) else {
                let mut tags: Vec<String> = index.manifests().iter().filter_map(tag_of).collect();
                tags.sort();
                tags.dedup();
                let has = if tags.is_empty() { "no tags".to_string() } else { format!("the tags {}", tags.join(", ")) };
                let what = format!("tag {tag} in OCI layout {} (which has {has})", dir.display());
                return Err(FetchError::NotFound { what }.into());
            };
            entry.digest().clone()
        }
    };
    let path = blob_path(&dir, &digest);
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                FetchError::NotFound { what: format!("manifest {digest} in OCI layout {}", dir.display()) }.into()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let actual = super::digest::sha256(&bytes);
    if actual != digest {
        return Err(super::cache::VerifyError::Digest { expected: digest, actual })
            .with_context(|| format!("reading {}", path.display()));
    }
    Ok((bytes, digest))
}

/// Copies one blob of the layout into the cache, verified against `digest` and `size`.
pub async fn fetch_blob(reference: &LayoutReference, digest: &Digest, size: u64, cache: &BlobCache) -> Result<()> {
    let path = blob_path(Path::new(&reference.path), digest);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FetchError::NotFound { what: format!("blob {digest} in OCI layout {}", reference.path) }.into())
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let stream = file_chunks(file);
    cache.insert_stream(digest, Some(size), stream).await.with_context(|| format!("copying {}", path.display()))?;
    Ok(())
}

/// A file as a stream of 256 KiB chunks.
fn file_chunks(file: tokio::fs::File) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Unpin {
    use tokio::io::AsyncReadExt as _;
    Box::pin(futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(buffer), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}
