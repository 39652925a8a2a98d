//! The files a kernel's settings name (the kernel binary, the modules tarball, the
//! microcode cpio): checked once the image is pulled, so that a wrong name is reported at
//! the setting rather than at the first image built from it, and extracted at assembly.

use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

use super::artifacts::temporary;
use super::spec::KernelSpec;
use super::union::{extract, open_file};
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

/// Checks that the union of the pulled image's layers has every named file as a regular
/// file. On failure, returns the setting at fault with the error (`image` when the layers
/// themselves cannot be read).
pub fn check_kernel_files(
    image: &ResolvedImage,
    cache: &BlobCache,
    files: &[NamedFile<'_>],
) -> Result<(), (&'static str, anyhow::Error)> {
    let tree = super::union::flatten_pulled(image, cache).map_err(|e| ("image", e))?;
    for file in files {
        let path = normalise(file.path.as_bytes()).map_err(|e| (file.setting, e))?;
        if !matches!(tree.get(&path), Some(Node::File(_))) {
            return Err((
                file.setting,
                anyhow::anyhow!("{} has no file /{}", image.reference, file.path.trim_start_matches('/')),
            ));
        }
    }
    Ok(())
}

/// A kernel image's files: the binary in a temporary file of the output directory, the
/// microcode cpio.
pub struct KernelFiles {
    /// The kernel binary, with the digest and size taken as it was written.
    pub kernel: (NamedTempFile, Digest, u64),
    /// The early microcode cpio.
    pub ucode: Option<NamedTempFile>,
}

/// Extracts the kernel binary and the microcode `spec` names from the kernel image (its
/// union `tree` and `spool`).
pub fn extract_kernel(
    spec: &KernelSpec,
    image: &ResolvedImage,
    tree: &Tree,
    spool: &Spool,
    output_dir: &Path,
) -> Result<KernelFiles> {
    let mut kernel = temporary(output_dir, "kernel")?;
    // The kernel's digest is taken as it is written, not by reading the file again.
    let mut kernel_out = HashingWriter::new(kernel.as_file_mut());
    extract(tree, spool, vec![(&normalise(spec.binary.as_bytes())?, &mut kernel_out)], image)
        .context("extracting the kernel")?;
    let (kernel_digest, kernel_size) = kernel_out.finish();
    let ucode = match &spec.ucode {
        Some(path) => {
            let mut ucode = temporary(output_dir, "ucode")?;
            extract(tree, spool, vec![(&normalise(path.as_bytes())?, ucode.as_file_mut())], image)
                .context("extracting the microcode")?;
            Some(ucode)
        }
        None => None,
    };
    Ok(KernelFiles { kernel: (kernel, kernel_digest, kernel_size), ucode })
}

/// The union of the modules tarball `spec` names, read straight from the kernel image's
/// spool (never unpacked to a file), its data kept in `modules_spool`.
pub fn read_modules(
    spec: &KernelSpec,
    image: &ResolvedImage,
    tree: &Tree,
    spool: &Spool,
    mut modules_spool: Spool,
) -> Result<(Tree, Spool)> {
    let path = normalise(spec.modules_tar.as_bytes())?;
    let mut modules = Tree::new();
    modules
        .read_layer(0, open_file(tree, spool, &path, image)?, &mut modules_spool)
        .with_context(|| format!("reading {} of {}", spec.modules_tar, image.reference))?;
    modules_spool.finish()?;
    Ok((modules, modules_spool))
}
