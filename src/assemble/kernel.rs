//! The files a kernel's settings name (the kernel binary, the modules tarball, the
//! microcode cpio). `resin_kernel`'s apply checks them, so that a wrong name is reported at
//! the setting rather than at the first image built from it; that one read of the kernel
//! image also keeps each file in the segment cache (under the image's digest and the
//! path), so assembly copies them from there instead of reading the kernel image again.
//! Whichever comes first reads the image; nothing reads it twice while the files are kept.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use tempfile::NamedTempFile;

use super::artifacts::temporary;
use super::hash::{content_hash, ASSEMBLY_FORMAT};
use super::segment_cache::{CachedSegment, SegmentCache, SegmentMeta};
use super::spec::KernelSpec;
use super::union::{flatten_pulled, open_file};
use super::warning::Warning;
use crate::oci::cache::BlobCache;
use crate::oci::digest::Digest;
use crate::oci::hashing::HashingWriter;
use crate::oci::ResolvedImage;
use crate::rootfs::path::normalise;
use crate::rootfs::spool::Spool;
use crate::rootfs::tree::{Node, Tree};

/// A file a kernel setting names, and the setting (`binary`, `modules_tar`, `ucode`).
pub struct NamedFile<'a> {
    pub setting: &'static str,
    pub path: &'a str,
}

/// The files of one kernel image, from the segment cache or, when one is missing, from one
/// read of the image (which then keeps every file asked for since in the cache).
pub struct KernelSource<'a> {
    image: &'a ResolvedImage,
    cache: &'a BlobCache,
    segments: &'a SegmentCache,
    union: Option<(Tree, Spool)>,
    /// What reading the image warned about.
    warnings: Vec<Warning>,
}

impl<'a> KernelSource<'a> {
    pub fn new(image: &'a ResolvedImage, cache: &'a BlobCache, segments: &'a SegmentCache) -> KernelSource<'a> {
        KernelSource { image, cache, segments, union: None, warnings: Vec::new() }
    }

    fn key(&self, path: &[u8]) -> Digest {
        content_hash(&json!({
            "format": ASSEMBLY_FORMAT,
            "kernel image": self.image.digest.to_string(),
            "path": hex::encode(path),
        }))
    }

    /// The kernel image's union, read (once) if it was not yet.
    fn union(&mut self) -> Result<&(Tree, Spool)> {
        if self.union.is_none() {
            crate::log::debug("reading the kernel image", &[("reference", self.image.reference.to_string())]);
            let (tree, spool, warnings) = flatten_pulled(self.image, self.cache)?;
            // The union's warnings go with the files kept from it.
            self.union = Some((tree, spool));
            self.warnings = warnings;
        }
        Ok(self.union.as_ref().expect("just read"))
    }

    /// The regular file `path`, kept in the segment cache; `None` when the image has no
    /// such file. Its entry also carries the warnings reading the image gave.
    fn kept(&mut self, path: &[u8]) -> Result<Option<CachedSegment>> {
        let key = self.key(path);
        if let Some(kept) = self.segments.get(&key)? {
            return Ok(Some(kept));
        }
        let (image, segments) = (self.image, self.segments);
        let (tree, spool) = self.union()?;
        if !matches!(tree.get(path), Some(Node::File(_))) {
            return Ok(None);
        }
        let mut entry = segments.create()?;
        let length = std::io::copy(&mut open_file(tree, spool, path, image)?, &mut entry)
            .with_context(|| format!("keeping {} in {}", String::from_utf8_lossy(path), segments.dir().display()))?;
        let warnings = self.warnings.iter().map(|w| (w.summary.clone(), w.detail.clone())).collect();
        let meta = SegmentMeta { crc: 0, length, directories: Vec::new(), warnings };
        entry.finish(segments, &key, &meta, true).map(Some)
    }

    /// The regular file `path`, kept in the segment cache (an error names the image and
    /// the path when there is no such file).
    pub fn file(&mut self, path: &[u8]) -> Result<CachedSegment> {
        let image = self.image;
        self.kept(path)?.with_context(|| format!("{} has no file /{}", image.reference, String::from_utf8_lossy(path)))
    }
}

/// Checks that the pulled kernel image has every named file as a regular file, and keeps
/// each in the segment cache. On failure, returns the setting at fault with the error
/// (`image` when the layers themselves cannot be read).
pub fn check_kernel_files(
    image: &ResolvedImage,
    cache: &BlobCache,
    segments: &SegmentCache,
    files: &[NamedFile<'_>],
) -> Result<(), (&'static str, anyhow::Error)> {
    let mut source = KernelSource::new(image, cache, segments);
    for file in files {
        let path = normalise(file.path.as_bytes()).map_err(|e| (file.setting, e))?;
        if source.kept(&path).map_err(|e| ("image", e))?.is_none() {
            return Err((
                file.setting,
                anyhow::anyhow!("{} has no file /{}", image.reference, file.path.trim_start_matches('/')),
            ));
        }
    }
    Ok(())
}

/// A kernel image's files for an assembly: the binary in a temporary file of the output
/// directory, the microcode cpio, and the warnings reading the image gave.
pub struct KernelFiles {
    /// The kernel binary, with the digest and size taken as it was written.
    pub kernel: (NamedTempFile, Digest, u64),
    /// The early microcode cpio.
    pub ucode: Option<NamedTempFile>,
    pub warnings: Vec<Warning>,
}

/// Copies a kept file into a new temporary file of `output_dir`, hashing it.
fn copy_out(kept: &mut CachedSegment, output_dir: &Path, label: &str) -> Result<(NamedTempFile, Digest, u64)> {
    let mut file = temporary(output_dir, label)?;
    let mut out = HashingWriter::new(file.as_file_mut());
    kept.copy_to(&mut out).with_context(|| format!("writing the {label} to {}", output_dir.display()))?;
    let (digest, size) = out.finish();
    Ok((file, digest, size))
}

/// The kernel binary and the microcode `spec` names, in temporary files of `output_dir`.
pub fn extract_kernel(spec: &KernelSpec, source: &mut KernelSource<'_>, output_dir: &Path) -> Result<KernelFiles> {
    let mut binary = source.file(&normalise(spec.binary.as_bytes())?).context("the kernel binary")?;
    let what = format!("kernel {}", source.image.reference);
    let warnings = binary.meta.warnings.iter().map(|warning| Warning::kept(&what, warning)).collect();
    let kernel = copy_out(&mut binary, output_dir, "kernel")?;
    let ucode = match &spec.ucode {
        Some(path) => {
            let mut kept = source.file(&normalise(path.as_bytes())?).context("the microcode")?;
            Some(copy_out(&mut kept, output_dir, "ucode")?.0)
        }
        None => None,
    };
    Ok(KernelFiles { kernel, ucode, warnings })
}

/// The union of the modules tarball `spec` names, its data kept in `modules_spool`.
pub fn read_modules(
    spec: &KernelSpec,
    source: &mut KernelSource<'_>,
    mut modules_spool: Spool,
) -> Result<(Tree, Spool)> {
    let describe = || format!("reading {} of {}", spec.modules_tar, source.image.reference);
    let mut kept = source.file(&normalise(spec.modules_tar.as_bytes())?).with_context(describe)?;
    let mut modules = Tree::new();
    modules.read_layer(0, kept.reader()?, &mut modules_spool).with_context(describe)?;
    modules_spool.finish()?;
    Ok((modules, modules_spool))
}
