//! A published image as a registry holds it: an OCI 1.1 artifact manifest whose config is
//! the image's [`ArtifactConfig`] and whose layers are the kernel and each part of the
//! initrd, in order.
//!
//! ```text
//! manifest  application/vnd.oci.image.manifest.v1+json, artifactType application/vnd.resin.image.v1
//!   config  application/vnd.resin.image.config.v1+json      name, platform, cmdline, content hash, digests
//!   layer   application/vnd.resin.image.kernel.v1            <name>-kernel
//!   layer   application/vnd.resin.image.initrd.v1.cpio       the early microcode, if any
//!   layer   application/vnd.resin.image.initrd.v1.cpio+gzip  a segment: its gzip members
//!   ...                                                      (+zstd: its zstd frames; .cpio: uncompressed)
//!   layer   ...                                              the segment of the cpio trailer, last
//! ```
//!
//! Each initrd layer is an initrd on its own; the kernel unpacks them concatenated in
//! layer order, as a boot loader passes several initrds. A segment's bytes depend only on
//! what it holds, so a package that did not change is the same blob in the next version
//! and is neither uploaded nor downloaded again. Concatenated ([`super::pull`]), the
//! layers are the image's `<name>-initrd.img` byte for byte. (Artifact format 1, the
//! one-member gzip initrds of assembly formats up to 5, made each segment a member of its
//! own, joined back into the one member: [`gzip::join_members`].)

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest as _;

use crate::assemble::{ImageSpec, InitrdPart};
use crate::initrd::gzip;
use crate::oci::digest::{from_hash, Digest};
use crate::oci::manifest::OCI_MANIFEST;
use crate::oci::platform::Platform;
use crate::oci::registry::BlobSource;

/// The manifest's `artifactType`: a resin machine image.
pub const ARTIFACT_TYPE: &str = "application/vnd.resin.image.v1";
/// The config: an [`ArtifactConfig`].
pub const CONFIG_TYPE: &str = "application/vnd.resin.image.config.v1+json";
/// The kernel.
pub const KERNEL_TYPE: &str = "application/vnd.resin.image.kernel.v1";
/// An uncompressed initrd part (the early microcode, or every part of an uncompressed initrd).
pub const INITRD_CPIO: &str = "application/vnd.resin.image.initrd.v1.cpio";
/// A gzip member holding one segment.
pub const INITRD_GZIP: &str = "application/vnd.resin.image.initrd.v1.cpio+gzip";
/// A zstd frame (or frames) holding one segment.
pub const INITRD_ZSTD: &str = "application/vnd.resin.image.initrd.v1.cpio+zstd";
/// The annotation saying which part of the initrd a layer is: `microcode`, `segment`, `trailer`.
pub const PART_ANNOTATION: &str = "dev.resin.initrd.part";
/// The file name of a layer, as ORAS and other tools name files.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The SBOM referrer's `artifactType` and layer type.
pub const SBOM_TYPE: &str = "application/spdx+json";
/// The `artifactType` of a boot file made from the image (a `resin_disk`), attached as a
/// referrer; its layer is `application/vnd.resin.disk.<format>.v1`.
pub const DISK_TYPE: &str = "application/vnd.resin.disk.v1";
/// OCI's empty config (`{}`), for the referrers.
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Bumped when the artifact's layout changes. 2: gzip parts are the initrd's own bytes
/// (its members), concatenated as they are; 1: one-member initrds, a part per segment
/// made a member of its own (still read).
pub const ARTIFACT_FORMAT: u32 = 2;

/// What an artifact's config says of the image: everything a reader needs to make boot
/// files, and the digests that check the joined kernel and initrd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactConfig {
    pub artifact_format: u32,
    pub name: String,
    pub platform: Platform,
    pub cmdline: String,
    pub content_hash: String,
    pub assembly_format: u32,
    pub kernel_sha256: String,
    pub kernel_size: u64,
    pub initrd_sha256: String,
    pub initrd_size: u64,
    /// `gzip`, `zstd` or `none`.
    pub initrd_compression: String,
    pub initrd_parts: Vec<InitrdPart>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One layer (or config) and where its bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub media_type: &'static str,
    pub digest: Digest,
    pub source: BlobSource,
    pub annotations: BTreeMap<&'static str, String>,
}

impl Blob {
    /// A blob held in memory.
    pub fn of_bytes(media_type: &'static str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type,
            digest: crate::oci::digest::sha256(&bytes),
            source: BlobSource::bytes(bytes),
            annotations: BTreeMap::new(),
        }
    }

    /// Its OCI descriptor.
    pub fn descriptor(&self) -> serde_json::Value {
        let mut descriptor = json!({
            "mediaType": self.media_type,
            "digest": self.digest.to_string(),
            "size": self.source.size(),
        });
        if !self.annotations.is_empty() {
            descriptor["annotations"] = json!(self.annotations);
        }
        descriptor
    }
}

/// One image made an artifact: its manifest and every blob the manifest names.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub platform: Platform,
    pub config: Blob,
    pub kernel: Blob,
    pub initrd: Vec<Blob>,
    pub manifest: Vec<u8>,
    pub digest: Digest,
    /// What is attached to the image as referrers: its SBOM, when its spec names one, and
    /// boot files made from it.
    pub attachments: Vec<Attachment>,
}

/// A file attached to an image as a referrer: a manifest of `artifact_type` whose one
/// layer is `blob` and whose `subject` is the image's manifest.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub artifact_type: &'static str,
    pub blob: Blob,
}

/// A boot file `resin_disk` wrote at `path`, checked against the `sha256` it recorded;
/// its format told by its name (`<name><suffix>`, the suffixes of [`crate::disk::FORMATS`]).
pub fn disk(path: &Path, sha256: &str) -> Result<Attachment> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let format = crate::disk::FORMATS
        .iter()
        .filter(|format| file_name.len() > format.suffix().len() && file_name.ends_with(format.suffix()))
        .max_by_key(|format| format.suffix().len())
        .with_context(|| {
            format!("{} is not a file resin_disk writes (<name> and one of the formats' suffixes)", path.display())
        })?;
    let media_type = DISK_MEDIA_TYPES
        .iter()
        .find(|(name, _)| *name == format.name())
        .map(|(_, media_type)| *media_type)
        .expect("a media type per format");
    let size = std::fs::metadata(path).with_context(|| format!("the boot file {}", path.display()))?.len();
    let mut blob = recorded_file(media_type, path, sha256, size, "boot file")?;
    blob.annotations.insert(TITLE_ANNOTATION, file_name.to_string());
    Ok(Attachment { artifact_type: DISK_TYPE, blob })
}

/// The layer media type of each boot format.
pub const DISK_MEDIA_TYPES: [(&str, &str); 5] = [
    ("uki", "application/vnd.resin.disk.uki.v1"),
    ("raw-efi", "application/vnd.resin.disk.raw-efi.v1"),
    ("iso-efi", "application/vnd.resin.disk.iso-efi.v1"),
    ("gcp", "application/vnd.resin.disk.gcp.v1.tar+gzip"),
    ("ipxe", "application/vnd.resin.disk.ipxe.v1"),
];

impl Artifact {
    /// The manifest's descriptor, for an index or a referrer's `subject`.
    pub fn descriptor(&self) -> serde_json::Value {
        json!({
            "mediaType": OCI_MANIFEST,
            "digest": self.digest.to_string(),
            "size": self.manifest.len(),
        })
    }

    /// Every blob the manifest names: the config, the kernel, the initrd's parts.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(std::iter::once(&self.kernel)).chain(&self.initrd)
    }
}

/// The initrd's compression, told by the bytes at `at` (after the microcode).
fn compression_at(path: &Path, at: u64) -> Result<&'static str> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(at))?;
    let mut magic = [0u8; 10];
    let n = file.read(&mut magic).with_context(|| format!("reading {}", path.display()))?;
    let magic = &magic[..n];
    Ok(if gzip::is_header(magic) {
        "gzip"
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else if magic.starts_with(b"070701") {
        "none"
    } else {
        bail!("{} is not an initrd resin wrote: no gzip header, zstd frame or cpio entry at byte {at}", path.display())
    })
}

/// Reads `length` bytes of `reader` into `whole`, and into `part` when given.
fn hash_range(
    reader: &mut impl Read,
    length: u64,
    whole: &mut sha2::Sha256,
    mut part: Option<&mut sha2::Sha256>,
) -> Result<()> {
    let mut buffer = vec![0u8; 256 << 10];
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left.min(buffer.len() as u64)).expect("at most the buffer's length");
        let n = reader.read(&mut buffer[..want])?;
        if n == 0 {
            bail!("the file ended {left} bytes early");
        }
        whole.update(&buffer[..n]);
        if let Some(part) = part.as_deref_mut() {
            part.update(&buffer[..n]);
        }
        left -= n as u64;
    }
    Ok(())
}

/// The blob of a whole file, checked against the digest and size an image recorded.
fn recorded_file(media_type: &'static str, path: &Path, sha256: &str, size: u64, what: &str) -> Result<Blob> {
    let file = File::open(path).with_context(|| format!("opening the {what} {}", path.display()))?;
    let mut reader = crate::oci::hashing::HashingReader::new(BufReader::new(file));
    std::io::copy(&mut reader, &mut std::io::sink()).with_context(|| format!("reading {}", path.display()))?;
    let (digest, length) = reader.finish();
    if digest.to_string() != sha256 || length != size {
        bail!(
            "the {what} {} changed since resin wrote it ({digest}, {length} bytes; the image recorded {sha256}, {size} bytes): apply the image again",
            path.display()
        );
    }
    Ok(Blob { media_type, digest, source: BlobSource::file(path, size), annotations: BTreeMap::new() })
}

/// The artifact of `image`, reading its kernel and initrd once (blocking): each checked
/// against the digest the image recorded, the initrd's parts checked to tile it so that
/// they join back into the same bytes, and each part's blob digest computed.
pub fn artifact(image: &ImageSpec) -> Result<Artifact> {
    let name = &image.name;
    if image.initrd_parts.is_empty() {
        bail!("the spec of resin_image {name} does not say where the parts of its initrd are (it was written by an older provider): apply the image again");
    }
    let kernel_path = Path::new(&image.kernel_path);
    let mut kernel = recorded_file(KERNEL_TYPE, kernel_path, &image.kernel_sha256, image.kernel_size, "kernel")?;
    kernel.annotations.insert(TITLE_ANNOTATION, format!("{name}-kernel"));
    let (initrd, compression) = initrd_blobs(image)?;
    let config = ArtifactConfig {
        artifact_format: ARTIFACT_FORMAT,
        name: name.clone(),
        platform: image.platform.clone(),
        cmdline: image.cmdline.clone(),
        content_hash: image.content_hash.clone(),
        assembly_format: crate::assemble::ASSEMBLY_FORMAT,
        kernel_sha256: image.kernel_sha256.clone(),
        kernel_size: image.kernel_size,
        initrd_sha256: image.initrd_sha256.clone(),
        initrd_size: image.initrd_size,
        initrd_compression: compression.to_string(),
        initrd_parts: image.initrd_parts.clone(),
        sensitive: image.sensitive,
    };
    let config = Blob::of_bytes(CONFIG_TYPE, serde_json::to_vec(&config).expect("a config serialises"));
    let mut attachments = Vec::new();
    if let Some(sha256) = &image.sbom_sha256 {
        let path = Path::new(&image.output_dir).join(format!("{name}-sbom.spdx.json"));
        let size = std::fs::metadata(&path).with_context(|| format!("the SBOM {}", path.display()))?.len();
        let mut blob = recorded_file(SBOM_TYPE, &path, sha256, size, "SBOM")?;
        blob.annotations.insert(TITLE_ANNOTATION, format!("{name}-sbom.spdx.json"));
        attachments.push(Attachment { artifact_type: SBOM_TYPE, blob });
    }
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config.descriptor(),
        "layers": std::iter::once(&kernel).chain(&initrd).map(Blob::descriptor).collect::<Vec<_>>(),
    });
    manifest["annotations"] = json!({ "org.opencontainers.image.title": name });
    let manifest = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let digest = crate::oci::digest::sha256(&manifest);
    Ok(Artifact { platform: image.platform.clone(), config, kernel, initrd, manifest, digest, attachments })
}

/// The blobs of the initrd's parts and its compression, the initrd checked to be what the
/// image recorded and to be its parts joined.
fn initrd_blobs(image: &ImageSpec) -> Result<(Vec<Blob>, &'static str)> {
    let path = Path::new(&image.initrd_path);
    let parts = &image.initrd_parts;
    let inconsistent =
        |why: String| anyhow::anyhow!("the spec of resin_image {} lists initrd parts that {why}", image.name);
    let microcode_end = match parts.first() {
        Some(part) if part.kind == "microcode" => {
            if part.offset != 0 {
                return Err(inconsistent("put the microcode after the start".into()));
            }
            part.length
        }
        _ => 0,
    };
    if parts.iter().skip(1).any(|part| part.kind == "microcode") {
        return Err(inconsistent("put the microcode after a segment".into()));
    }
    if parts.last().is_none_or(|part| part.kind != "trailer") {
        return Err(inconsistent("do not end with the trailer's segment".into()));
    }
    let compression = compression_at(path, microcode_end)?;
    let (mut at, end) = (microcode_end, image.initrd_size);
    for part in parts.iter().filter(|part| part.kind != "microcode") {
        if part.offset != at {
            return Err(inconsistent(format!("leave a gap or overlap at byte {at} (a part at {})", part.offset)));
        }
        at = part.offset.checked_add(part.length).ok_or_else(|| inconsistent("overflow".into()))?;
    }
    if at != end {
        return Err(inconsistent(format!("end at byte {at}, not at byte {end} of {} bytes", image.initrd_size)));
    }
    // The file: read once, hashed whole and part by part.
    let file = File::open(path).with_context(|| format!("opening the initrd {}", path.display()))?;
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let mut whole = sha2::Sha256::new();
    let mut blobs = Vec::with_capacity(parts.len());
    let mut position = 0;
    let reading = |e: anyhow::Error| e.context(format!("reading {}", path.display()));
    for (index, part) in parts.iter().enumerate() {
        if part.offset > position {
            hash_range(&mut reader, part.offset - position, &mut whole, None).map_err(reading)?;
        }
        let media_type = match (part.kind.as_str(), compression) {
            ("microcode", _) | (_, "none") => INITRD_CPIO,
            (_, "zstd") => INITRD_ZSTD,
            _ => INITRD_GZIP,
        };
        let mut hasher = sha2::Sha256::new();
        hash_range(&mut reader, part.length, &mut whole, Some(&mut hasher)).map_err(reading)?;
        let source = BlobSource::range(path, part.offset, part.length);
        let annotations = BTreeMap::from([
            (TITLE_ANNOTATION, format!("{}-initrd.{index:03}", image.name)),
            (PART_ANNOTATION, part.kind.clone()),
        ]);
        blobs.push(Blob { media_type, digest: from_hash(&hasher.finalize()), source, annotations });
        position = part.offset + part.length;
    }
    let mut tail = Vec::new();
    reader.read_to_end(&mut tail).with_context(|| format!("reading {}", path.display()))?;
    whole.update(&tail);
    let digest = from_hash(&whole.finalize());
    let size = position + tail.len() as u64;
    if digest.to_string() != image.initrd_sha256 || size != image.initrd_size {
        bail!(
            "the initrd {} changed since resin wrote it ({digest}, {size} bytes; the image recorded {}, {} bytes): apply the image again",
            path.display(),
            image.initrd_sha256,
            image.initrd_size
        );
    }
    Ok((blobs, compression))
}
