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

pub mod authenticode;
pub mod esp;
pub mod gcp;
#[cfg(test)]
mod golden;
pub mod gpt;
pub mod inputs;
pub mod ipxe;
pub mod iso_efi;
pub mod measure;
pub mod pe;
pub mod raw_efi;
pub mod sbat;
pub mod signing;
pub mod uki;
pub mod uname;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use crate::assemble::{write_artifact, Access, Artifact, ArtifactKind, EfiStubSpec, ImageSpec};
use crate::oci::digest::Digest;
use crate::rootfs::host::PlannedFile;

/// Bumped whenever a format writes other bytes for the same inputs.
pub const DISK_FORMAT: u32 = 4;

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
    /// Signs the UKI for Secure Boot, when set.
    pub signer: Option<&'a signing::Signer>,
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
    /// Checks the image's kernel (its first bytes, of `kernel_length` in all) can be used: `Err` says why not. A
    /// format that boots through a stub holds a UKI, whose kernel must be an EFI binary.
    fn check_kernel(&self, kernel_head: &[u8], kernel_length: u64, sources: &Sources<'_>) -> Result<()> {
        if self.needs_stub() {
            uki::check_efi_kernel(kernel_head, kernel_length, sources)?;
        }
        Ok(())
    }
    /// Why the image's command line cannot go in this format, if it cannot (a command line
    /// with a control character can go in none: [`crate::assemble::check_cmdline`]).
    fn check_cmdline(&self, _cmdline: &str) -> Option<String> {
        None
    }
    /// Writes the disk. The image's artifacts are read from the paths its spec gives.
    fn write(&self, sources: &Sources<'_>, out: &mut dyn Write) -> Result<()>;
}

/// A format's phases, each logged at DEBUG (`TF_LOG=DEBUG`) with how long it took, so an
/// apply's log says where a boot file's time went.
pub struct Phases {
    format: &'static str,
    started: Instant,
    last: Instant,
}

impl Phases {
    pub fn start(format: &'static str) -> Phases {
        let now = Instant::now();
        Phases { format, started: now, last: now }
    }

    /// Logs that `phase` is done, `bytes` long, and how long it took.
    pub fn done(&mut self, phase: &str, bytes: u64) {
        let now = Instant::now();
        crate::log::debug(
            &format!("disk: {phase}"),
            &[
                ("format", self.format.to_string()),
                ("bytes", bytes.to_string()),
                ("elapsed_ms", now.duration_since(self.last).as_millis().to_string()),
                ("total_ms", now.duration_since(self.started).as_millis().to_string()),
            ],
        );
        self.last = now;
    }
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

/// Writes the disk of `format` at `path` (blocking): removes the temporary files a killed
/// run left in its directory, checks the image's kernel, then writes through a temporary
/// file renamed into place, so a failure leaves what was there.
pub fn write_disk(format: &dyn DiskFormat, sources: &Sources<'_>, path: &Path) -> Result<Artifact> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Failing to remove one is no reason not to write.
    if let Err(e) = crate::tempfiles::remove_abandoned(dir, crate::assemble::TEMPORARY_PREFIX) {
        crate::log::warn(
            "could not remove abandoned temporary files",
            &[("directory", dir.display().to_string()), ("error", format!("{e:#}"))],
        );
    }
    let kernel = Path::new(&sources.image.kernel_path);
    let mut head = Vec::new();
    let length = crate::rootfs::host::open_regular(kernel)
        .and_then(|file| {
            let length = file.metadata()?.len();
            file.take(64 << 10).read_to_end(&mut head)?;
            Ok(length)
        })
        .with_context(|| format!("reading the kernel of resin_image {}", sources.image.name))?;
    format.check_kernel(&head, length, sources)?;
    let access = Access::of(sources.image.sensitive);
    let started = Instant::now();
    let artifact = write_artifact(path, format.name(), access, |out| format.write(sources, out))?;
    crate::log::debug(
        "disk: written",
        &[
            ("format", format.name().to_string()),
            ("path", path.display().to_string()),
            ("bytes", artifact.size.to_string()),
            ("elapsed_ms", started.elapsed().as_millis().to_string()),
        ],
    );
    Ok(artifact)
}

/// The image's kernel or initrd, opened to be read once and whole: its bytes must be the
/// ones the image recorded in its spec when it wrote them, or the read that completes
/// them fails (before the disk is published). So a file damaged or replaced on disk
/// since (bit rot keeps its size, inode and mtime, which refresh trusts) is never built
/// into a boot file.
pub fn open_artifact(image: &ImageSpec, kind: ArtifactKind) -> Result<(PlannedFile, u64)> {
    let (path, sha256, size) = match kind {
        ArtifactKind::Kernel => (&image.kernel_path, &image.kernel_sha256, image.kernel_size),
        ArtifactKind::Initrd => (&image.initrd_path, &image.initrd_sha256, image.initrd_size),
        other => anyhow::bail!("a resin_image has no {} to read", other.describe()),
    };
    let expected = crate::oci::digest::parse(sha256)
        .with_context(|| format!("the {} digest in the spec of resin_image {}", kind.attribute(), image.name))?;
    let mismatch = format!(
        "resin_image {}'s {} {path} is not what it wrote ({size} bytes hashing to {sha256}): it was changed on disk since; write the image again (terraform apply -replace=<that resin_image>)",
        image.name,
        kind.attribute(),
    );
    let file = PlannedFile::exactly(Path::new(path), &expected, size, mismatch)
        .with_context(|| format!("opening the {} of resin_image {}", kind.attribute(), image.name))?;
    Ok((file, size))
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

/// The content hash of a disk: the same hash, the same bytes. A signed disk's covers the
/// signing certificate (its DER's digest): the key is the certificate's, and its
/// signatures are deterministic (see [`signing`]). The stub counts by its image's digest
/// and path, never by how its reference is spelled.
pub fn content_hash(
    format: &dyn DiskFormat,
    sources: &Sources<'_>,
    stub: Option<&EfiStubSpec>,
    signing_certificate: Option<&Digest>,
) -> Digest {
    let mut document = json!({
        "disk_format": DISK_FORMAT,
        "format": format.name(),
        "image": { "name": sources.image.name, "content_hash": sources.image.content_hash },
        "stub": stub.map(|stub| json!({ "image": stub.image.digest(), "platform": stub.platform, "path": stub.path })),
        "base_url": sources.base_url,
        "size_mb": sources.size_mb,
        "uname": sources.uname,
        "sbat": sources.sbat,
    });
    // A network boot script names where a published image's blobs are.
    if let (true, Some(published)) = (format.needs_base_url(), &sources.image.published) {
        document["published"] =
            json!({ "repository": published.repository, "kernel": published.kernel, "initrd": published.initrd });
    }
    // Only a signed disk's document names a certificate.
    if let Some(certificate) = signing_certificate {
        document["signing_certificate"] = json!(certificate.to_string());
    }
    crate::oci::digest::sha256(document.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// An image of a tiny EFI kernel and an initrd in `dir`, and a stub.
    fn image_in(dir: &Path) -> (ImageSpec, Vec<u8>) {
        let mut image = uki::tests::image_spec("console=ttyS0");
        let kernel = pe::tiny_image(pe::MACHINE_X86_64);
        uki::tests::write_artifacts(&mut image, dir, &kernel, b"initrd bytes");
        (image, pe::tiny_image(pe::MACHINE_X86_64))
    }

    /// `image` with `stub`, temporary files in `dir`.
    fn sources<'a>(image: &'a ImageSpec, stub: &'a [u8], dir: &'a Path) -> Sources<'a> {
        Sources { scratch: dir, ..uki::tests::stub_sources(image, stub) }
    }

    #[test]
    fn an_image_file_changed_since_it_was_written_is_never_built_in() {
        let dir = tempfile::tempdir().unwrap();
        let (image, stub) = image_in(dir.path());
        let path = dir.path().join("node.efi");
        let first = write_disk(&uki::Uki, &sources(&image, &stub, dir.path()), &path).unwrap();
        // A byte flipped, the size kept (as bit rot leaves it), then a file of another size.
        for (damaged, what) in [(&b"initrd bytez"[..], "initrd"), (b"initrd", "initrd")] {
            std::fs::write(&image.initrd_path, damaged).unwrap();
            for format in [&uki::Uki as &dyn DiskFormat, &raw_efi::RawEfi, &iso_efi::IsoEfi, &gcp::Gcp] {
                let error = write_disk(format, &sources(&image, &stub, dir.path()), &path).unwrap_err();
                let message = format!("{error:#}");
                assert!(
                    message.contains(&format!("resin_image node's {what} {} is not what it wrote", image.initrd_path)),
                    "{}: {message}",
                    format.name()
                );
                assert!(message.contains("terraform apply -replace"), "{message}");
            }
        }
        let (kept, _) = crate::assemble::file_digest(&path).unwrap();
        assert_eq!(kept, first.sha256, "the UKI written before is untouched");
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert!(!names.iter().any(|n| n.starts_with(crate::assemble::TEMPORARY_PREFIX)), "{names:?}");
        // The kernel is checked too.
        std::fs::write(&image.initrd_path, b"initrd bytes").unwrap();
        let mut kernel = std::fs::read(&image.kernel_path).unwrap();
        kernel[0x405] ^= 1;
        std::fs::write(&image.kernel_path, &kernel).unwrap();
        let error = write_disk(&uki::Uki, &sources(&image, &stub, dir.path()), &path).unwrap_err();
        assert!(format!("{error:#}").contains("resin_image node's kernel"), "{error:#}");
    }

    #[test]
    fn boot_files_of_a_sensitive_image_are_private_and_disks_are_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let (mut image, stub) = image_in(dir.path());
        let path = dir.path().join("node-efi.img");
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let mut sized = sources(&image, &stub, dir.path());
        sized.size_mb = Some(512);
        write_disk(&raw_efi::RawEfi, &sized, &path).unwrap();
        assert_eq!(mode(&path), 0o644);
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 512 << 20);
        assert!(meta.blocks() * 512 < 8 << 20, "{} bytes stored for a 512 MiB disk", meta.blocks() * 512);
        image.sensitive = true;
        write_disk(&raw_efi::RawEfi, &sources(&image, &stub, dir.path()), &path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_disk_hash_names_its_stub_by_digest_not_by_how_its_reference_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let (image, stub) = image_in(dir.path());
        let digest = format!("sha256:{}", "5".repeat(64));
        let spec = |reference: &str, path: &str| EfiStubSpec {
            spec_version: crate::assemble::SPEC_VERSION,
            image: format!("{reference}@{digest}").parse().unwrap(),
            index: None,
            platform: "linux/amd64".parse().unwrap(),
            path: path.into(),
        };
        let hash = |stub_spec: &EfiStubSpec| {
            content_hash(&uki::Uki, &sources(&image, &stub, dir.path()), Some(stub_spec), None)
        };
        let stub_path = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
        let first = hash(&spec("oci-layout:./layout/stub", stub_path));
        assert_eq!(hash(&spec("oci-layout:/srv/ci/job-9/layout/stub", stub_path)), first);
        assert_eq!(hash(&spec("debian", stub_path)), hash(&spec("docker.io/library/debian", stub_path)));
        assert_ne!(hash(&spec("debian", "usr/lib/other.efi.stub")), hash(&spec("debian", stub_path)));
    }

    #[test]
    fn a_killed_writes_temporary_files_are_removed_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (image, stub) = image_in(dir.path());
        let left = dir.path().join(format!("{}uki-killed", crate::assemble::TEMPORARY_PREFIX));
        std::fs::write(&left, b"half a UKI").unwrap();
        let old = std::time::SystemTime::now() - crate::tempfiles::GRACE * 2;
        std::fs::File::options().write(true).open(&left).unwrap().set_modified(old).unwrap();
        write_disk(&uki::Uki, &sources(&image, &stub, dir.path()), &dir.path().join("node.efi")).unwrap();
        assert!(!left.exists());
    }
}
