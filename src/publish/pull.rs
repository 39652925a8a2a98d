//! Reading a published image back: the tag (or digest) resolved to the artifact of one
//! platform, its blobs brought into the verified cache by digest, and the kernel and
//! initrd written to an output directory, joined byte for byte as the image wrote them.
//! Nothing is trusted: a manifest that is not a resin artifact, a config that does not
//! describe its layers, or a joined file whose digest is not the one the config recorded
//! is an error naming the registry and the blob, and leaves the files that were there.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;

use super::artifact::{
    ArtifactConfig, ARTIFACT_FORMAT, ARTIFACT_TYPE, CONFIG_TYPE, INITRD_CPIO, INITRD_GZIP, INITRD_ZSTD, KERNEL_TYPE,
};
use crate::assemble::{Access, ImageSpec, Published, SPEC_VERSION};
use crate::oci::cache::BlobCache;
use crate::oci::digest::Digest;
use crate::oci::manifest::{descriptor_platform, parse_index, Manifest};
use crate::oci::platform::Platform;
use crate::oci::reference::RegistryReference;
use crate::oci::registry::RegistryClient;

/// Blobs downloaded at once.
const PARALLEL_DOWNLOADS: usize = 4;

/// A descriptor as a resin artifact's manifest has them.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifest {
    artifact_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// A published image of one platform, resolved: what its manifest and config say.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The image's artifact manifest.
    pub digest: Digest,
    pub config: ArtifactConfig,
    kernel: (Digest, u64),
    /// Each initrd part's blob: digest, size, media type.
    initrd: Vec<(Digest, u64, String)>,
}

fn name_of(reference: &RegistryReference, digest: &Digest) -> String {
    format!("{}/{}@{digest}", reference.registry(), reference.repository())
}

/// Resolves `reference` (a tag, or a digest) to its artifact for `platform`, reading the
/// manifest and the config into the cache.
pub async fn resolve(
    client: &RegistryClient,
    cache: &BlobCache,
    reference: &RegistryReference,
    platform: &Platform,
) -> Result<Resolved> {
    let (bytes, digest) = client.fetch_manifest(reference, None).await?;
    let (bytes, digest) = match Manifest::parse(&bytes)? {
        Manifest::Image(_) => (bytes, digest),
        Manifest::Index(_) => {
            let index = parse_index(&bytes)?;
            let chosen = index.manifests().iter().find(|descriptor| {
                descriptor_platform(descriptor)
                    .is_some_and(|(os, architecture, variant)| platform.matches(&os, &architecture, variant.as_deref()))
            });
            let Some(chosen) = chosen else {
                let listed: Vec<String> = index
                    .manifests()
                    .iter()
                    .filter_map(descriptor_platform)
                    .map(|(os, architecture, variant)| match variant {
                        Some(variant) => format!("{os}/{architecture}/{variant}"),
                        None => format!("{os}/{architecture}"),
                    })
                    .collect();
                bail!("{} holds no image for {platform} (it has {})", name_of(reference, &digest), listed.join(", "));
            };
            client.fetch_manifest(reference, Some(chosen.digest())).await?
        }
    };
    let what = name_of(reference, &digest);
    let manifest: ArtifactManifest =
        serde_json::from_slice(&bytes).with_context(|| format!("{what} is not an OCI artifact manifest"))?;
    if manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE) || manifest.config.media_type != CONFIG_TYPE {
        bail!(
            "{what} is not a resin image (its artifactType is {:?}, its config {:?}; resin publishes {ARTIFACT_TYPE})",
            manifest.artifact_type.as_deref().unwrap_or("unset"),
            manifest.config.media_type
        );
    }
    let config_digest = crate::oci::digest::parse(&manifest.config.digest)?;
    if manifest.config.size > 1 << 20 {
        bail!("{what}: its config of {} bytes is larger than a resin config can be", manifest.config.size);
    }
    let config_bytes = fetch_verified(client, cache, reference, &config_digest, manifest.config.size).await?;
    let config: ArtifactConfig = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("{what}: its config {config_digest} is not a resin image config"))?;
    if !(1..=ARTIFACT_FORMAT).contains(&config.artifact_format) {
        bail!(
            "{what} was published in artifact format {}; this provider reads formats 1 to {ARTIFACT_FORMAT}",
            config.artifact_format
        );
    }
    if config.platform != *platform
        && !platform.matches(&config.platform.os, &config.platform.architecture, config.platform.variant.as_deref())
    {
        bail!("{what} is an image for {}, not {platform}", config.platform);
    }
    let Some((kernel, parts)) = manifest.layers.split_first() else {
        bail!("{what} has no layers");
    };
    if kernel.media_type != KERNEL_TYPE || kernel.digest != config.kernel_sha256 || kernel.size != config.kernel_size {
        bail!("{what}: its first layer is not the kernel its config describes");
    }
    if parts.len() != config.initrd_parts.len() {
        bail!("{what} has {} initrd layers; its config lists {} parts", parts.len(), config.initrd_parts.len());
    }
    let expected = |kind: &str| match (kind, config.initrd_compression.as_str()) {
        ("microcode", _) | (_, "none") => Some(INITRD_CPIO),
        (_, "gzip") => Some(INITRD_GZIP),
        (_, "zstd") => Some(INITRD_ZSTD),
        _ => None,
    };
    let mut initrd = Vec::with_capacity(parts.len());
    for (index, (layer, part)) in parts.iter().zip(&config.initrd_parts).enumerate() {
        if expected(&part.kind) != Some(layer.media_type.as_str()) {
            bail!(
                "{what}: initrd layer {index} is {:?}, not the {} part its config describes",
                layer.media_type,
                part.kind
            );
        }
        initrd.push((crate::oci::digest::parse(&layer.digest)?, layer.size, layer.media_type.clone()));
    }
    Ok(Resolved { digest, kernel: (crate::oci::digest::parse(&kernel.digest)?, kernel.size), initrd, config })
}

/// A small blob's bytes, through the verified cache.
async fn fetch_verified(
    client: &RegistryClient,
    cache: &BlobCache,
    reference: &RegistryReference,
    digest: &Digest,
    size: u64,
) -> Result<Vec<u8>> {
    if let Some(bytes) = cache.read_verified(digest, Some(size))? {
        return Ok(bytes);
    }
    client.fetch_blob(reference, digest, size, cache).await?;
    cache.read_verified(digest, Some(size))?.with_context(|| format!("{} vanished from the cache", digest))
}

impl Resolved {
    /// Brings every blob into the cache (those it holds are not fetched), then writes
    /// `<name>-kernel` and `<name>-initrd.img` in `output_dir` unless they are there with
    /// the recorded digests already. Returns the spec `resin_disk` takes.
    pub async fn fetch(
        &self,
        client: &RegistryClient,
        cache: &BlobCache,
        reference: &RegistryReference,
        output_dir: &Path,
        name: &str,
    ) -> Result<ImageSpec> {
        let blobs: Vec<(Digest, u64)> = std::iter::once(self.kernel.clone())
            .chain(self.initrd.iter().map(|(digest, size, _)| (digest.clone(), *size)))
            .collect();
        futures_util::stream::iter(blobs)
            .map(|(digest, size)| async move {
                if cache.contains(&digest, Some(size)) {
                    return Ok(());
                }
                client
                    .fetch_blob(reference, &digest, size, cache)
                    .await
                    .with_context(|| format!("fetching {}", name_of(reference, &digest)))
            })
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        let (resolved, cache, output_dir, name) =
            (self.clone(), cache.clone(), output_dir.to_path_buf(), name.to_string());
        let written = tokio::task::spawn_blocking(move || resolved.write_files(&cache, &output_dir, &name))
            .await
            .context("writing the published image's files")??;
        Ok(self.spec_with(written, reference))
    }

    /// The files, written (blocking).
    fn write_files(&self, cache: &BlobCache, output_dir: &Path, name: &str) -> Result<WrittenFiles> {
        std::fs::create_dir_all(output_dir).with_context(|| format!("creating {}", output_dir.display()))?;
        let config = &self.config;
        let access = Access::of(config.sensitive);
        let kernel_path = output_dir.join(format!("{name}-kernel"));
        let initrd_path = output_dir.join(format!("{name}-initrd.img"));
        if !holds(&kernel_path, &config.kernel_sha256, config.kernel_size) {
            write_checked(&kernel_path, access, &config.kernel_sha256, config.kernel_size, |out| {
                let mut blob = std::fs::File::open(cache.blob_path(&self.kernel.0))?;
                std::io::copy(&mut blob, out)?;
                Ok(())
            })?;
        }
        if !holds(&initrd_path, &config.initrd_sha256, config.initrd_size) {
            write_checked(&initrd_path, access, &config.initrd_sha256, config.initrd_size, |out| {
                self.join_initrd(cache, out)
            })?;
        }
        Ok(WrittenFiles { kernel_path, initrd_path, output_dir: output_dir.to_path_buf(), name: name.to_string() })
    }

    /// The initrd's parts joined: concatenated, as they are (artifact format 1: the gzip
    /// members of its segments made one member again).
    fn join_initrd(&self, cache: &BlobCache, out: &mut dyn Write) -> Result<()> {
        let open = |digest: &Digest| -> Result<std::fs::File> {
            std::fs::File::open(cache.blob_path(digest)).with_context(|| format!("opening the cached blob {digest}"))
        };
        if self.config.artifact_format > 1 {
            for (digest, _, _) in &self.initrd {
                std::io::copy(&mut open(digest)?, out)?;
            }
            return Ok(());
        }
        let (mut members, mut rest) = (Vec::new(), Vec::new());
        for (digest, size, media_type) in &self.initrd {
            if media_type == INITRD_GZIP {
                members.push((open(digest)?, *size));
            } else if members.is_empty() {
                std::io::copy(&mut open(digest)?, out)?;
            } else {
                rest.push(digest);
            }
        }
        if !rest.is_empty() {
            bail!("an uncompressed part after gzip members");
        }
        if !members.is_empty() {
            crate::initrd::gzip::join_members(out, members)?;
        }
        Ok(())
    }

    /// The spec of the files written, naming where they are published.
    fn spec_with(&self, written: WrittenFiles, reference: &RegistryReference) -> ImageSpec {
        let config = &self.config;
        ImageSpec {
            spec_version: SPEC_VERSION,
            name: written.name,
            output_dir: written.output_dir.display().to_string(),
            content_hash: config.content_hash.clone(),
            platform: config.platform.clone(),
            cmdline: config.cmdline.clone(),
            kernel_path: written.kernel_path.display().to_string(),
            initrd_path: written.initrd_path.display().to_string(),
            kernel_sha256: config.kernel_sha256.clone(),
            kernel_size: config.kernel_size,
            initrd_sha256: config.initrd_sha256.clone(),
            initrd_size: config.initrd_size,
            initrd_parts: config.initrd_parts.clone(),
            sensitive: config.sensitive,
            sbom_sha256: None,
            published: Some(Published {
                registry: reference.registry().to_string(),
                repository: reference.repository().to_string(),
                manifest: self.digest.to_string(),
                kernel: self.kernel.0.to_string(),
                initrd: self.initrd.iter().map(|(digest, _, _)| digest.to_string()).collect(),
            }),
        }
    }
}

struct WrittenFiles {
    kernel_path: PathBuf,
    initrd_path: PathBuf,
    output_dir: PathBuf,
    name: String,
}

/// Whether `path` is a regular file of `sha256` and `size`.
fn holds(path: &Path, sha256: &str, size: u64) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == size => {
            crate::assemble::file_digest(path).is_ok_and(|(digest, _)| digest == sha256)
        }
        _ => false,
    }
}

/// Writes `path` through a temporary file renamed into place only once what was written
/// is `sha256` and `size`.
fn write_checked(
    path: &Path,
    access: Access,
    sha256: &str,
    size: u64,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let dir = path.parent().context("a file in a directory")?;
    let file = crate::assemble::temporary(dir, "published")?;
    let writing = || format!("writing {}", path.display());
    let mut buffered = std::io::BufWriter::with_capacity(1 << 20, file.as_file().try_clone().with_context(writing)?);
    let mut out = crate::oci::hashing::HashingWriter::new(&mut buffered);
    write(&mut out).with_context(writing)?;
    out.flush().with_context(writing)?;
    let (digest, written) = out.finish();
    buffered.flush().with_context(writing)?;
    if digest.to_string() != sha256 || written != size {
        bail!(
            "the published blobs join into {digest} ({written} bytes), not the {sha256} ({size} bytes) the image's config records: {} was left as it was",
            path.display()
        );
    }
    crate::assemble::rename_into_place(vec![(file, path)], access)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initrd::gzip::{self, PieceDeflater};
    use std::io::Read;

    /// An artifact's initrd parts, put in `cache`: its config says `artifact_format`.
    fn resolved(cache: &BlobCache, artifact_format: u32, parts: &[(&[u8], &str)]) -> Resolved {
        let initrd = parts
            .iter()
            .map(|(bytes, media_type)| {
                let digest = crate::oci::digest::sha256(bytes);
                cache.insert_bytes(&digest, Some(bytes.len() as u64), bytes).unwrap();
                (digest, bytes.len() as u64, (*media_type).to_string())
            })
            .collect();
        let config = ArtifactConfig {
            artifact_format,
            name: "node".into(),
            platform: "linux/amd64".parse().unwrap(),
            cmdline: String::new(),
            content_hash: String::new(),
            assembly_format: 4,
            kernel_sha256: String::new(),
            kernel_size: 0,
            initrd_sha256: String::new(),
            initrd_size: 0,
            initrd_compression: "gzip".into(),
            initrd_parts: Vec::new(),
            sensitive: false,
        };
        let digest = crate::oci::digest::sha256(b"manifest");
        Resolved { digest: digest.clone(), config, kernel: (digest, 0), initrd }
    }

    #[test]
    fn format_2_parts_are_concatenated_and_format_1_gzip_members_joined_into_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let segments: [&[u8]; 3] = [b"070701 a segment", b"070701 another one", b"TRAILER!!!"];
        let mut deflater = PieceDeflater::new(gzip::DEFAULT_LEVEL).unwrap();
        let ucode = b"070701 microcode".to_vec();
        // Format 2: the initrd's own members, as they are.
        let members: Vec<Vec<u8>> = segments.iter().map(|segment| deflater.member(segment).unwrap().0).collect();
        let mut parts: Vec<(&[u8], &str)> = vec![(&ucode, INITRD_CPIO)];
        parts.extend(members.iter().map(|member| (&member[..], INITRD_GZIP)));
        let mut joined = Vec::new();
        resolved(&cache, 2, &parts).join_initrd(&cache, &mut joined).unwrap();
        assert!(joined == [ucode.clone(), members.concat()].concat());
        // Format 1: each segment a member of its own (a stream that goes on, an empty final
        // block, its trailer), joined back into the one member its initrd was.
        let format_1: Vec<Vec<u8>> = segments
            .iter()
            .map(|segment| {
                let (deflated, summary) = deflater.deflate(segment, true).unwrap();
                [&gzip::HEADER[..], &deflated, &[0x03, 0x00], &gzip::trailer(summary)].concat()
            })
            .collect();
        let mut parts: Vec<(&[u8], &str)> = vec![(&ucode, INITRD_CPIO)];
        parts.extend(format_1.iter().map(|member| (&member[..], INITRD_GZIP)));
        let mut joined = Vec::new();
        resolved(&cache, 1, &parts).join_initrd(&cache, &mut joined).unwrap();
        assert!(joined[..ucode.len()] == ucode[..]);
        let member = &joined[ucode.len()..];
        let mut decoder = flate2::bufread::GzDecoder::new(member);
        let mut cpio = Vec::new();
        decoder.read_to_end(&mut cpio).unwrap();
        assert!(cpio == segments.concat(), "one member of every segment");
        assert!(decoder.into_inner().is_empty(), "and nothing after it");
    }
}
