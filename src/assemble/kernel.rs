//! The files a kernel's settings name (the kernel binary, the modules tarball, the
//! microcode cpio): checked once the image is pulled, so that a wrong name is reported at
//! the setting rather than at the first image built from it, and extracted at assembly.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

use super::artifacts::temporary;
use super::spec::KernelSpec;
use super::union::extract;
use crate::oci::cache::BlobCache;
use crate::oci::digest::Digest;
use crate::oci::hashing::HashingWriter;
use crate::oci::ResolvedImage;
use crate::rootfs::layer::LayerSource;
use crate::rootfs::path::normalise;
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

/// A kernel image's files, extracted into temporary files of the output directory.
pub struct KernelFiles {
    /// The kernel binary, with the digest and size taken as it was written.
    pub kernel: (NamedTempFile, Digest, u64),
    /// The modules tarball, readable as a layer (verified against the digest taken as it
    /// was written) while the file lives.
    pub modules: Option<(NamedTempFile, LayerSource)>,
    /// The early microcode cpio.
    pub ucode: Option<NamedTempFile>,
}

/// Extracts what `spec` names from the kernel image (its union `tree` and `layers`), in
/// one pass over the layers.
pub fn extract_kernel(
    spec: &KernelSpec,
    image: &ResolvedImage,
    tree: &Tree,
    layers: &[LayerSource],
    output_dir: &Path,
) -> Result<KernelFiles> {
    let mut kernel = temporary(output_dir, "kernel")?;
    let mut modules = temporary(output_dir, "modules")?;
    let mut ucode = temporary(output_dir, "ucode")?;
    let binary = normalise(spec.binary.as_bytes())?;
    let modules_path = normalise(spec.modules_tar.as_bytes())?;
    let ucode_path = spec.ucode.as_ref().map(|u| normalise(u.as_bytes())).transpose()?;
    // The kernel's digest is taken as it is written, not by reading the file again; the
    // modules tarball is hashed as it is written, so reading it back is verified like any
    // other layer.
    let mut kernel_out = HashingWriter::new(kernel.as_file_mut());
    let mut modules_out = HashingWriter::new(modules.as_file_mut());
    let mut wanted: Vec<(&[u8], &mut dyn Write)> = vec![(&binary, &mut kernel_out)];
    if !spec.modules_tar.is_empty() {
        wanted.push((&modules_path, &mut modules_out));
    }
    if let Some(path) = &ucode_path {
        wanted.push((path, ucode.as_file_mut()));
    }
    extract(tree, layers, wanted, image).context("extracting from the kernel image")?;
    let (kernel_digest, kernel_size) = kernel_out.finish();
    let modules_digest = modules_out.finish();
    let modules = (!spec.modules_tar.is_empty()).then(|| {
        let source = LayerSource { path: modules.path().to_path_buf(), blob: Some(modules_digest), diff_id: None };
        (modules, source)
    });
    Ok(KernelFiles {
        kernel: (kernel, kernel_digest, kernel_size),
        modules,
        ucode: spec.ucode.is_some().then_some(ucode),
    })
}
