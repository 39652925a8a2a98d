//! An image's layers as one tree: the union of its layers, each layer read once and
//! verified (blob digest, compression trailer, diff_id), its files' data kept in a
//! [`Spool`] from which the initrd is written ([`flatten_pulled`]), or only the files a
//! reader wants, where it wants them ([`union_pulled`]: the kernel's files).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::{bail, Context, Result};

use super::warning::Warning;
use crate::oci::cache::BlobCache;
use crate::oci::tap::BlobTap;
use crate::oci::ResolvedImage;
use crate::rootfs::layer::LayerSource;
use crate::rootfs::path::display;
use crate::rootfs::spool::{Extent, Spool, SpoolReader};
use crate::rootfs::tree::{Content, DroppedXattrs, Node, Tree};

/// An image's layers in the cache, in order, with the digests they must have: the blob's,
/// and the config's diff_id unless the blob was already checked against it
/// ([`BlobCache::diff_id_checked`]: the verified blob digest pins the same bytes).
pub fn layer_sources(image: &ResolvedImage, cache: &BlobCache) -> Result<Vec<LayerSource>> {
    let diff_ids = image.config.diff_ids();
    image
        .manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let digest = layer.digest().clone();
            let diff_id = match diff_ids {
                Some(ids) => Some(
                    ids.get(index)
                        .with_context(|| {
                            format!("{}: the config has no diff_id for layer {}", image.reference, index + 1)
                        })?
                        .clone(),
                ),
                None => None,
            };
            let diff_id = diff_id.filter(|diff_id| !cache.diff_id_checked(&digest, diff_id));
            Ok(LayerSource { path: cache.blob_path(&digest), blob: Some((digest, layer.size())), diff_id })
        })
        .collect()
}

/// An image flattened: its tree, the spool holding its files' data, and the warnings.
pub type Flattened = (Tree, Spool, Vec<Warning>);

/// `image`, pulled into `cache`, flattened: its union ([`union_of`]), its files' data in a
/// new spool beside the cache.
pub fn flatten_pulled(image: &ResolvedImage, cache: &BlobCache) -> Result<Flattened> {
    let mut spool = Spool::new_in(cache.root())?;
    let (tree, warnings) = union_pulled(image, cache, Downloads::new(), |_, data| spool.append(data).map(Some))?;
    spool.finish()?;
    Ok((tree, spool, warnings))
}

/// Layers of an image read as they download ([`crate::oci::tap`]), by index; the others
/// are read from the cache.
pub type Downloads = BTreeMap<usize, BlobTap>;

/// The union of `image`'s layers, pulled into `cache` or being pulled (`downloads`)
/// ([`union_of`]), each regular file's data handed to `keep`.
pub fn union_pulled(
    image: &ResolvedImage,
    cache: &BlobCache,
    downloads: Downloads,
    keep: impl FnMut(&[u8], &mut dyn Read) -> Result<Option<Extent>>,
) -> Result<(Tree, Vec<Warning>)> {
    let started = std::time::Instant::now();
    let layers = layer_sources(image, cache)?;
    let union = union_of(image, &layers, downloads, keep)?;
    for layer in &layers {
        if let (Some((blob, _)), Some(diff_id)) = (&layer.blob, &layer.diff_id) {
            cache.record_diff_id(blob, diff_id);
        }
    }
    crate::log::debug(
        "image flattened",
        &[("reference", image.reference.to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );
    Ok(union)
}

/// The union of an image's layers, each read once, each regular file's data (with its
/// path) handed to `keep`, which says where it kept it ([`Tree::read_layer_keeping`]); and
/// what the layers carried that newc drops (warnings whose detail the caller prefixes with
/// what the image is used as).
fn union_of(
    image: &ResolvedImage,
    layers: &[LayerSource],
    mut downloads: Downloads,
    mut keep: impl FnMut(&[u8], &mut dyn Read) -> Result<Option<Extent>>,
) -> Result<(Tree, Vec<Warning>)> {
    let mut tree = Tree::new();
    let mut warnings = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let describe =
            || format!("layer {} ({}) of {}", index + 1, image.manifest.layers()[index].digest(), image.reference);
        let read = |stream: &mut dyn Read| tree.read_layer_keeping(index, stream, &mut keep);
        let dropped = match downloads.remove(&index) {
            Some(download) => layer.read_download(download, read),
            None => layer.read(read),
        }
        .with_context(describe)?;
        for DroppedXattrs { path, names } in dropped {
            warnings.push(Warning::dropped_xattrs(format!(
                "{} in layer {} ({}) carries extended attributes ({}) that a newc initrd cannot hold; they are dropped",
                display(&path),
                index + 1,
                image.manifest.layers()[index].digest(),
                names.join(", ")
            )));
        }
    }
    tree.shrink_to_fit();
    Ok((tree, warnings))
}

/// The contents of the regular file `path` of `tree`, from the spool its layers filled.
pub fn open_file<'s>(tree: &Tree, spool: &'s Spool, path: &[u8], image: &ResolvedImage) -> Result<SpoolReader<'s>> {
    let Some(Node::File(id)) = tree.get(path) else {
        bail!("{} has no file {}", image.reference, display(path));
    };
    let inode = tree.inode(*id);
    let Content::Layer { extent, .. } = inode.content else {
        bail!("{} of {} does not come from a layer", display(path), image.reference);
    };
    spool.reader(extent, inode.size).with_context(|| format!("{} of {}", display(path), image.reference))
}

/// Copies the contents of files of `tree` (by path) into writers.
pub fn extract(tree: &Tree, spool: &Spool, files: Vec<(&[u8], &mut dyn Write)>, image: &ResolvedImage) -> Result<()> {
    for (path, out) in files {
        std::io::copy(&mut open_file(tree, spool, path, image)?, out)
            .with_context(|| format!("copying {} of {}", display(path), image.reference))?;
    }
    Ok(())
}

/// Reads the regular file `path` of a pulled image, refused beyond `limit` bytes: for
/// small files a resource needs whole (an EFI stub).
pub fn read_pulled_file(image: &ResolvedImage, cache: &BlobCache, path: &str, limit: u64) -> Result<Vec<u8>> {
    let path = path.trim_start_matches("./").trim_start_matches('/').as_bytes();
    let (tree, spool, _) = flatten_pulled(image, cache)?;
    let mut file = open_file(&tree, &spool, path, image)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, limit + 1), &mut bytes)?;
    if bytes.len() as u64 > limit {
        bail!("{} of {} is larger than {limit} bytes", display(path), image.reference);
    }
    Ok(bytes)
}

/// Pulls `image` (pinned) and reads its regular file `path` ([`read_pulled_file`]).
pub async fn read_image_file(
    puller: &crate::oci::Puller,
    image: &crate::oci::reference::PinnedImage,
    platform: &crate::oci::platform::Platform,
    path: &str,
    limit: u64,
) -> Result<Vec<u8>> {
    let resolved = puller.resolve(image.reference(), platform, Some(image.digest())).await?;
    puller.pull(&resolved).await?;
    let cache = puller.cache().clone();
    let path = path.to_string();
    let image = resolved.clone();
    puller.with_repair(&[resolved], move || read_pulled_file(&image, &cache, &path, limit)).await
}
