//! An image's layers as one tree: the union of its layers (metadata only, the layers
//! read once and verified), and the contents of chosen files copied out of it with a
//! second, verified read of only the layers that hold them.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Context, Result};

use super::build::Warning;
use crate::oci::cache::BlobCache;
use crate::oci::ResolvedImage;
use crate::rootfs::layer::{for_each_entry, read_entries, LayerSource};
use crate::rootfs::path::display;
use crate::rootfs::tree::{Content, DroppedXattrs, Node, Tree};

/// An image's layers in the cache, in order, with the digests they must have.
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
            Ok(LayerSource { path: cache.blob_path(&digest), blob: Some((digest, layer.size())), diff_id })
        })
        .collect()
}

/// The union of a pulled image's layers (metadata only), e.g. to check a file is there.
pub fn flatten_pulled(image: &ResolvedImage, cache: &BlobCache) -> Result<Tree> {
    let layers = layer_sources(image, cache)?;
    Ok(flatten(image, &layers)?.0)
}

/// The union of an image's layers, and what they carried that newc drops.
pub fn flatten(image: &ResolvedImage, layers: &[LayerSource]) -> Result<(Tree, Vec<Warning>)> {
    let mut tree = Tree::new();
    let mut warnings = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let describe =
            || format!("layer {} ({}) of {}", index + 1, image.manifest.layers()[index].digest(), image.reference);
        let entries = layer.read(|stream| read_entries(stream)).with_context(describe)?;
        let dropped = tree.apply_layer(index, &entries).with_context(describe)?;
        for DroppedXattrs { path, names } in dropped {
            warnings.push(Warning::dropped_xattrs(format!(
                "{}: {} in {} carries extended attributes ({}) that a newc initrd cannot hold; they are dropped",
                image.reference,
                display(&path),
                describe(),
                names.join(", ")
            )));
        }
    }
    Ok((tree, warnings))
}

/// Copies the contents of files of `tree` (by path) into writers, in one pass per layer.
pub fn extract(
    tree: &Tree,
    layers: &[LayerSource],
    files: Vec<(&[u8], &mut dyn Write)>,
    image: &ResolvedImage,
) -> Result<()> {
    let mut by_layer: BTreeMap<usize, BTreeMap<usize, &mut dyn Write>> = BTreeMap::new();
    for (path, out) in files {
        let Some(Node::File(id)) = tree.get(path) else {
            bail!("{} has no file {}", image.reference, display(path));
        };
        let Content::Layer { layer, ordinal } = tree.inode(*id).content else {
            bail!("{} of {} does not come from a layer", display(path), image.reference);
        };
        if by_layer.entry(layer).or_default().insert(ordinal, out).is_some() {
            bail!("{} is asked for twice from {}", display(path), image.reference);
        }
    }
    for (layer, mut wanted) in by_layer {
        // `tree` came from a first, fully verified read of these layers.
        layers[layer]
            .again()
            .read(|stream| {
                for_each_entry(stream, |entry, data| {
                    if let Some(out) = wanted.remove(&entry.ordinal) {
                        std::io::copy(data, out)?;
                    }
                    Ok(())
                })
            })
            .with_context(|| {
                format!(
                    "reading layer {} ({}) of {}",
                    layer + 1,
                    image.manifest.layers()[layer].digest(),
                    image.reference
                )
            })?;
    }
    Ok(())
}
