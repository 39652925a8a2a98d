//! Assembling the artifacts of a composition: pull every image, then (on a blocking
//! thread, off the async runtime) extract the kernel ([`super::kernel`]), take each
//! segment the plan names ([`super::segments`]) from the segment cache or build its tree
//! ([`super::union`]), write the new segments and the initrd ([`super::initrd`]), and
//! publish `<name>-kernel`, `<name>-initrd.img`, `<name>-cmdline` and the SBOM together
//! ([`super::artifacts`]).
//!
//! Segments are decided in order, each knowing the directories the ones before it write.
//! A cached segment is used as it is (verified by its sha256); any other has its tree
//! built, which reads (and decompresses) each of its layers once, verified as it is read
//! (blob digest, compression trailer, diff_id), its files' data going to a spool (an
//! unnamed temporary file beside the cache) that the segment is written from: no layer
//! is held in memory or decompressed twice. A cache blob found damaged is fetched again
//! and assembly starts over ([`Puller::with_repair`]); nothing is renamed into place
//! before everything verified. Temporary files left in the output directory by a killed
//! run are removed first.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::json;

use super::artifacts::{file_digest, publish, sbom_path, temporary, Access, Artifact, ArtifactKind, TEMPORARY_PREFIX};
use super::compose::{Composition, FileKind};
use super::hash::ASSEMBLY_FORMAT;
use super::initrd::{compressor_fingerprint, device_of, write_initrd, write_segments, Segment, SegmentBody, PIECE};
use super::kernel::{extract_kernel, read_modules, KernelSource};
use super::rewrite::{rewrite, ImageRole};
use super::segment_cache::{CachedSegment, SegmentCache};
use super::segments::{plan, Planned, APK_DATABASE};
use super::union::{extract, flatten, layer_sources};
use crate::log;
use crate::oci::cache::BlobCache;
use crate::oci::platform::Platform;
use crate::oci::reference::PinnedImage;
use crate::oci::{Puller, ResolvedImage};
use crate::rootfs::spool::Spool;
use crate::rootfs::tree::{Content, Meta, Node, Tree};

#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The files written, by kind ([`ArtifactKind::IMAGE`]).
    pub files: BTreeMap<ArtifactKind, Artifact>,
    pub sbom: Artifact,
    /// Things worth a warning: extended attributes newc cannot keep, names the kernel
    /// cannot create.
    pub warnings: Vec<Warning>,
}

/// Something the image will not have at boot although a layer asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub summary: String,
    pub detail: String,
}

impl Warning {
    pub(super) fn dropped_xattrs(detail: String) -> Warning {
        Warning { summary: "Extended attributes dropped".into(), detail }
    }

    pub(super) fn uncreatable(name: &[u8], reason: &str) -> Warning {
        Warning {
            summary: "Names the kernel cannot create".into(),
            detail: format!(
                "/{}: {reason}; the kernel cannot create it when it unpacks the initrd, so it is missing at boot",
                String::from_utf8_lossy(name)
            ),
        }
    }

    /// A warning kept with a cached segment or kernel file (its detail says nothing of
    /// where the segment sits), told about `what` it is now.
    pub(super) fn kept(what: &str, (summary, detail): &(String, String)) -> Warning {
        Warning { summary: summary.clone(), detail: format!("{what}: {detail}") }
    }
}

/// Pulls every image of the composition (a few at a time), then assembles on a
/// blocking thread.
pub async fn build(
    composition: Composition,
    puller: &Puller,
    segment_cache: &SegmentCache,
    output_dir: PathBuf,
    name: String,
) -> Result<Artifacts> {
    let sbom = super::interop::sbom_bytes(&composition, &name);
    let started = Instant::now();
    let kernel = &composition.inputs.kernel;
    let mut wanted: BTreeSet<(PinnedImage, Platform)> = BTreeSet::new();
    wanted.insert((kernel.image.clone(), kernel.platform.clone()));
    for package in composition
        .inputs
        .init
        .iter()
        .chain(composition.bundles.iter().filter(|b| b.extracts_image).map(|b| &b.package))
    {
        wanted.insert((package.image.clone(), package.platform.clone()));
    }
    let images: BTreeMap<PinnedImage, ResolvedImage> = stream::iter(wanted)
        .map(|(image, platform)| async move {
            let resolved = puller.resolve(image.reference(), &platform, Some(image.digest())).await?;
            puller.pull(&resolved).await?;
            Ok::<_, anyhow::Error>((image, resolved))
        })
        .buffer_unordered(4)
        .try_collect()
        .await?;
    log::debug(
        "assembly: images pulled",
        &[("images", images.len().to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );
    let cache = puller.cache().clone();
    // A cache blob found damaged while assembling is fetched again and assembly restarts;
    // nothing is published before every layer has been read and verified.
    let pulled: Vec<ResolvedImage> = images.values().cloned().collect();
    let segment_cache = segment_cache.clone();
    puller
        .with_repair(&pulled, move || {
            assemble(&composition, &images, &cache, &segment_cache, &output_dir, &name, &sbom)
        })
        .await
}

/// The blocking part: the kernel, the segments, the initrd, the cmdline, published.
fn assemble(
    composition: &Composition,
    images: &BTreeMap<PinnedImage, ResolvedImage>,
    cache: &BlobCache,
    segment_cache: &SegmentCache,
    output_dir: &Path,
    name: &str,
    sbom: &[u8],
) -> Result<Artifacts> {
    let started = Instant::now();
    // Temporary files of an apply that was killed: their writers' locks are gone. Failing
    // to remove one is no reason not to build.
    if let Err(e) = crate::tempfiles::remove_abandoned(output_dir, TEMPORARY_PREFIX) {
        log::warn(
            "could not remove abandoned temporary files",
            &[("directory", output_dir.display().to_string()), ("error", format!("{e:#}"))],
        );
    }
    let compression = composition.inputs.compression;
    let kernel_spec = &composition.inputs.kernel;
    let kernel_image = &images[&kernel_spec.image];
    // Layer data is kept in unnamed temporary files beside the cache.
    let spool_dir = cache.root();
    let new_spool = || Spool::new_in(spool_dir);
    // The kernel's files come from the segment cache; the kernel image is read only when
    // one of them is not there (resin_kernel's apply usually kept them).
    let mut kernel_source = KernelSource::new(kernel_image, cache, segment_cache);
    let kernel = extract_kernel(kernel_spec, &mut kernel_source, output_dir)?;
    let mut warnings = kernel.warnings.clone();

    // Segment by segment, in order: a segment in the cache gives its bytes and the
    // directories it writes; any other is built (its layers read once) and written below.
    // New segments are written (cut into pieces, compressed on every core) while the next
    // ones are built.
    let mut parts: Vec<(String, Option<CachedSegment>)> = Vec::new();
    let (mut hits, mut misses) = (0usize, 0usize);
    // What every segment's bytes depend on besides its contents.
    let settings = json!({
        "format": ASSEMBLY_FORMAT,
        "compression": compression.identity(),
        "piece": PIECE,
        "compressor": compressor_fingerprint(compression),
    });
    let written = write_segments(compression, segment_cache, |sink| {
        let mut existing: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut init_databases: BTreeMap<usize, Option<Vec<u8>>> = BTreeMap::new();
        for planned in plan(composition) {
            let describe = planned.describe(composition);
            let key = planned.key(composition, &settings, &existing);
            if let Some(cached) = segment_cache.get(&key)? {
                for directory in &cached.meta.directories {
                    existing.insert(hex::decode(directory).context("a cached segment's directory")?);
                }
                parts.push((describe, Some(cached)));
                hits += 1;
                continue;
            }
            misses += 1;
            let mut dropped = Vec::new();
            let body = match planned {
                Planned::KernelModules => {
                    let (tree, spool) = read_modules(kernel_spec, &mut kernel_source, new_spool()?)?;
                    image_body(tree, vec![], spool, describe.clone())
                }
                // Init images at /, each flattened on its own (later ones overwrite earlier files).
                Planned::Init { index, package } => {
                    let image = &images[&package.image];
                    let (mut tree, spool, flattened) = flatten(image, &layer_sources(image, cache)?, new_spool()?)
                        .with_context(|| format!("init[{index}]"))?;
                    dropped = flattened;
                    init_databases.insert(index, apk_database(&tree, &spool, image).with_context(|| describe.clone())?);
                    rewrite(&mut tree, ImageRole::Init);
                    image_body(tree, vec![], spool, describe.clone())
                }
                // Like LinuxKit, the image gets the concatenation of the init images' apk
                // databases, so every installed package stays listed.
                Planned::ApkDatabases => {
                    let mut databases = Vec::new();
                    for (index, package) in composition.inputs.init.iter().enumerate() {
                        let database = match init_databases.remove(&index) {
                            Some(database) => database,
                            None => {
                                let image = &images[&package.image];
                                let (tree, spool, _) = flatten(image, &layer_sources(image, cache)?, new_spool()?)?;
                                apk_database(&tree, &spool, image).with_context(|| format!("init[{index}]"))?
                            }
                        };
                        databases.extend(database);
                    }
                    if databases.len() >= 2 {
                        SegmentBody::File { path: APK_DATABASE, contents: databases.concat() }
                    } else {
                        SegmentBody::Empty
                    }
                }
                Planned::Bundle { bundle, prefix, scaffold } => {
                    let at = format!("{}[{}]", bundle.section.attribute(), bundle.index);
                    let (tree, spool, describe) = if bundle.extracts_image {
                        let image = &images[&bundle.package.image];
                        let (mut tree, spool, flattened) =
                            flatten(image, &layer_sources(image, cache)?, new_spool()?).with_context(|| at.clone())?;
                        dropped = flattened;
                        rewrite(&mut tree, ImageRole::Bundle);
                        (tree, spool, describe.clone())
                    } else {
                        (Tree::new(), Spool::empty(), describe.clone())
                    };
                    SegmentBody::Tree {
                        tree,
                        prefix,
                        spool,
                        scaffold_directories: scaffold.directories,
                        scaffold_files: scaffold.files,
                        describe,
                    }
                }
                Planned::Files => image_body(file_entries(composition)?, vec![], Spool::empty(), "file".into()),
            };
            let directories = match &body {
                // The scaffolding, then what the tree writes (below its prefix, where no
                // scaffolding directory is: the tree is written against `existing` alone).
                SegmentBody::Tree { tree, prefix, scaffold_directories, .. } => {
                    let mut directories = scaffold_directories.clone();
                    directories.extend(tree.directories_written(prefix, &existing));
                    directories
                }
                SegmentBody::File { .. } | SegmentBody::Empty => Vec::new(),
            };
            let segment = Segment {
                body,
                existing: existing.clone(),
                device: device_of(&key),
                key,
                directories: directories.clone(),
                warnings: dropped,
            };
            existing.extend(directories);
            parts.push((describe, None));
            sink.push(segment)?;
        }
        log::debug(
            "assembly: segments planned",
            &[
                ("cached", hits.to_string()),
                ("to_build", misses.to_string()),
                ("elapsed_ms", started.elapsed().as_millis().to_string()),
            ],
        );
        Ok(())
    })?;
    drop(kernel_source);
    log::debug(
        "assembly: segments written",
        &[("segments", misses.to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );
    let mut written = written.into_iter();
    let mut ordered: Vec<CachedSegment> = Vec::new();
    for (describe, part) in parts {
        let segment = match part {
            Some(cached) => cached,
            None => written.next().context("a segment was not written")?,
        };
        warnings.extend(segment.meta.warnings.iter().map(|warning| Warning::kept(&describe, warning)));
        ordered.push(segment);
    }

    // The initrd: microcode, then one gzip member of the segments and the trailer.
    let initrd = temporary(output_dir, "initrd")?;
    let initrd_path = initrd.path().display().to_string();
    let (initrd_sha256, initrd_size, cpio_bytes) =
        write_initrd(&initrd, kernel.ucode.as_ref(), &mut ordered, compression)
            .with_context(|| format!("writing the initrd to {initrd_path}"))?;
    let segment_count = ordered.len();
    drop(ordered);
    if let Err(e) = segment_cache.trim() {
        log::warn("could not trim the segment cache", &[("error", format!("{e:#}"))]);
    }
    log::debug(
        "assembly: initrd written",
        &[
            ("segments", segment_count.to_string()),
            ("uncompressed_bytes", cpio_bytes.to_string()),
            ("bytes", initrd_size.to_string()),
            ("elapsed_ms", started.elapsed().as_millis().to_string()),
        ],
    );

    let (kernel_file, kernel_digest, kernel_size) = kernel.kernel;
    let mut cmdline = temporary(output_dir, "cmdline")?;
    cmdline.write_all(kernel_spec.cmdline.as_bytes())?;
    let (cmdline_sha256, cmdline_size) = file_digest(cmdline.path())?;
    let mut sbom_file = temporary(output_dir, "sbom")?;
    sbom_file.write_all(sbom)?;
    log::debug(
        "assembly: artifacts written",
        &[("name", name.to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );

    let written = [
        (ArtifactKind::Kernel, kernel_file, kernel_digest.to_string(), kernel_size),
        (ArtifactKind::Initrd, initrd, initrd_sha256, initrd_size),
        (ArtifactKind::Cmdline, cmdline, cmdline_sha256, cmdline_size),
    ];
    let files: BTreeMap<ArtifactKind, Artifact> = written
        .iter()
        .map(|(kind, _, sha256, size)| {
            (*kind, Artifact { path: kind.path(output_dir, name), sha256: sha256.clone(), size: *size })
        })
        .collect();
    let sbom_destination = sbom_path(output_dir, name);
    let mut renames: Vec<(tempfile::NamedTempFile, &Path)> =
        written.into_iter().map(|(kind, file, _, _)| (file, files[&kind].path.as_path())).collect();
    renames.push((sbom_file, &sbom_destination));
    publish(renames, Access::of(composition.is_sensitive()))?;
    Ok(Artifacts {
        files,
        sbom: Artifact {
            path: sbom_destination.clone(),
            sha256: crate::oci::digest::sha256(sbom).to_string(),
            size: sbom.len() as u64,
        },
        warnings,
    })
}

/// The apk database of an init image's union, if it has one.
fn apk_database(tree: &Tree, spool: &Spool, image: &ResolvedImage) -> Result<Option<Vec<u8>>> {
    if !matches!(tree.get(APK_DATABASE), Some(Node::File(_))) {
        return Ok(None);
    }
    let mut database = Vec::new();
    extract(tree, spool, vec![(APK_DATABASE, &mut database)], image)?;
    Ok(Some(database))
}

/// A segment of a tree alone, without bundle scaffolding.
fn image_body<'a>(tree: Tree, prefix: Vec<u8>, spool: Spool, describe: String) -> SegmentBody<'a> {
    SegmentBody::Tree { tree, prefix, spool, scaffold_directories: vec![], scaffold_files: vec![], describe }
}

/// The `file` entries as a tree walked in their order (their contents: bytes, or host
/// files checked as copied).
fn file_entries(composition: &Composition) -> Result<Tree> {
    let mut files = Tree::in_insertion_order();
    for file in &composition.files {
        let meta = Meta { mode: file.mode, uid: file.uid, gid: file.gid, mtime: crate::rootfs::tree::GENERATED_MTIME };
        match &file.kind {
            FileKind::Directory => files.insert(&file.path, Node::Directory(meta)),
            FileKind::Symlink(target) => files.insert(&file.path, Node::Symlink(meta, target.clone().into_bytes())),
            FileKind::Contents(bytes) => {
                files.insert_file(&file.path, meta, bytes.len() as u64, Content::Bytes(bytes.clone()));
            }
            FileKind::Source(source) => {
                // The composition hashed this file (the caller checked the content hash
                // against the plan's); the bytes copied are checked against that digest
                // as they are copied, so it is not read a third time here.
                let sha256 = file.digest.clone().with_context(|| format!("{}: no digest", source.display()))?;
                files.insert_file(&file.path, meta, file.size, Content::HostFile { path: source.clone(), sha256 });
            }
        }
    }
    Ok(files)
}
