//! What a kernel image must hold: the files a kernel's settings name (the kernel binary,
//! the modules tarball, the microcode cpio), checked once the image is pulled so that a
//! wrong name is reported at the setting rather than at the first image built from it.

use anyhow::Result;

use crate::oci::cache::BlobCache;
use crate::oci::ResolvedImage;
use crate::rootfs::path::normalise;
use crate::rootfs::tree::Node;

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
    let tree = super::build::flatten_pulled(image, cache).map_err(|e| ("image", e))?;
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
