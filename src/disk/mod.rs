//! Boot formats made from an assembled image, for `resin_disk`: each format is one module
//! implementing [`DiskFormat`] (it writes one file from the image's artifacts) and one
//! line in [`FORMATS`].
//!
//! * [`uki`]: a Unified Kernel Image, the EFI stub with the kernel, initrd and command
//!   line as sections ([`pe`] appends them, [`uname`] and [`sbat`] fill two more);
//! * [`raw_efi`]: a GPT disk whose EFI system partition holds the UKI ([`gpt`], [`esp`]);
//! * [`gcp`]: that disk as `disk.raw` in a gzip'd tar, for Google Compute Engine;
//! * [`iso_efi`]: an ISO 9660 image whose El Torito EFI entry is that ESP;
//! * [`ipxe`]: an iPXE script that boots the image's kernel and initrd from a URL.

pub mod esp;
pub mod gcp;
pub mod gpt;
pub mod ipxe;
pub mod iso_efi;
pub mod pe;
pub mod raw_efi;
pub mod sbat;
pub mod uki;
pub mod uname;

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::assemble::{write_artifact, Artifact, EfiStubSpec, ImageSpec};
use crate::oci::digest::Digest;

/// Bumped whenever a format writes other bytes for the same inputs.
pub const DISK_FORMAT: u32 = 3;

/// What a disk is made of.
pub struct Sources<'a> {
    pub image: &'a ImageSpec,
    /// The EFI stub's bytes, for formats that need one.
    pub stub: Option<&'a [u8]>,
    /// Where the image's artifacts are served from, for network boot.
    pub base_url: Option<&'a str>,
    /// The disk's size in MiB, for disk formats (computed when `None`).
    pub size_mb: Option<u64>,
    /// A UKI's `.uname` (read from the kernel when `None`).
    pub uname: Option<&'a str>,
    /// SBAT lines merged into a UKI's `.sbat` (the stub's kept as it is when `None`).
    pub sbat: Option<&'a str>,
    /// A directory for temporary files (the output directory).
    pub scratch: &'a Path,
}

/// One boot format.
pub trait DiskFormat: Sync {
    /// Its name, as `format` takes it (LinuxKit's where LinuxKit has the format).
    fn name(&self) -> &'static str;
    /// What it is, for the docs (the schema's description of `format`).
    fn summary(&self) -> &'static str;
    /// What follows the disk's name in its file name.
    fn suffix(&self) -> &'static str;
    fn needs_stub(&self) -> bool {
        false
    }
    fn needs_base_url(&self) -> bool {
        false
    }
    /// Whether it takes `size_mb`.
    fn sized(&self) -> bool {
        false
    }
    /// Checks the image's kernel (its first bytes) can be used: `Err` says why not. A
    /// format that boots through a stub holds a UKI, whose kernel must be an EFI binary.
    fn check_kernel(&self, kernel_head: &[u8], sources: &Sources<'_>) -> Result<()> {
        if self.needs_stub() {
            uki::check_efi_kernel(kernel_head, sources)?;
        }
        Ok(())
    }
    /// Writes the disk. The image's artifacts are read from the paths its spec gives.
    fn write(&self, sources: &Sources<'_>, out: &mut dyn Write) -> Result<()>;
}

/// Every format, by name.
pub const FORMATS: &[&dyn DiskFormat] = &[&uki::Uki, &raw_efi::RawEfi, &iso_efi::IsoEfi, &gcp::Gcp, &ipxe::Ipxe];

/// The format named `name`.
pub fn format(name: &str) -> Option<&'static dyn DiskFormat> {
    FORMATS.iter().copied().find(|format| format.name() == name)
}

/// The names of every format, for messages and docs.
pub fn format_names() -> Vec<&'static str> {
    FORMATS.iter().map(|format| format.name()).collect()
}

/// Every format as documentation: `` `name`: summary (`<name><suffix>`) ``, joined by `; `.
pub fn format_docs() -> String {
    FORMATS
        .iter()
        .map(|f| format!("`{}`: {} (`<name>{}`)", f.name(), f.summary(), f.suffix()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The formats that boot through an EFI stub, as `` `a`, `b` ``.
pub fn stub_formats() -> String {
    FORMATS.iter().filter(|f| f.needs_stub()).map(|f| format!("`{}`", f.name())).collect::<Vec<_>>().join(", ")
}

/// The formats that take `size_mb`, as `` `a`, `b` ``.
pub fn sized_formats() -> String {
    FORMATS.iter().filter(|f| f.sized()).map(|f| format!("`{}`", f.name())).collect::<Vec<_>>().join(", ")
}

/// Writes the disk of `format` at `path` (blocking): checks the image's kernel, then
/// writes through a temporary file renamed into place, so a failure leaves what was there.
pub fn write_disk(format: &dyn DiskFormat, sources: &Sources<'_>, path: &Path) -> Result<Artifact> {
    let kernel = Path::new(&sources.image.kernel_path);
    let mut head = Vec::new();
    crate::rootfs::host::open_regular(kernel)
        .and_then(|file| Ok(file.take(64 << 10).read_to_end(&mut head)?))
        .with_context(|| format!("reading the kernel of resin_image {}", sources.image.name))?;
    format.check_kernel(&head, sources)?;
    write_artifact(path, format.name(), |out| format.write(sources, out))
}

/// 32 bytes derived from the image's content hash and `what` (GUIDs, volume ids): the
/// same image gives the same bytes.
pub fn derived(sources: &Sources<'_>, what: &str) -> Vec<u8> {
    let digest = crate::oci::digest::sha256(format!("{} {what}", sources.image.content_hash).as_bytes());
    hex::decode(digest.digest()).expect("a sha256 digest is hex")
}

/// A FAT volume id derived from the image's content hash and `what`.
pub fn derived_volume_id(sources: &Sources<'_>, what: &str) -> u32 {
    let bytes = derived(sources, what);
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The content hash of a disk: the same hash, the same bytes.
pub fn content_hash(format: &dyn DiskFormat, sources: &Sources<'_>, stub: Option<&EfiStubSpec>) -> Digest {
    let document = json!({
        "disk_format": DISK_FORMAT,
        "format": format.name(),
        "image": { "name": sources.image.name, "content_hash": sources.image.content_hash },
        "stub": stub,
        "base_url": sources.base_url,
        "size_mb": sources.size_mb,
        "uname": sources.uname,
        "sbat": sources.sbat,
    });
    crate::oci::digest::sha256(document.to_string().as_bytes())
}
