//! Assembling the artifacts of a composition: pull every image, then (on a blocking
//! thread, off the async runtime) extract the kernel ([`super::kernel`]), build the tree
//! of every initrd segment the plan names ([`super::segments`], [`super::union`]), write
//! the segments and the initrd ([`super::initrd`]), and publish `<name>-kernel`,
//! `<name>-initrd.img`, `<name>-cmdline` and the SBOM together ([`super::artifacts`]).
//!
//! Every segment's tree is built first, which fixes what each segment writes; then the
//! segments are written. Each layer is read (and decompressed) once, verified as it is
//! read (blob digest, compression trailer, diff_id); its files' data goes to a spool (an
//! unnamed temporary file beside the cache) that the segments are written from, so no
//! layer is held in memory or decompressed twice. A cache blob found
//! damaged is fetched again and assembly starts over ([`Puller::with_repair`]); nothing is
//! renamed into place before everything verified. Temporary files left in the output
//! directory by a killed run are removed first.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::artifacts::{artifact_paths, file_digest, publish, sbom_path, temporary, Artifact, TEMPORARY_PREFIX};
use super::compose::{Composition, FileKind};
use super::initrd::{in_order, write_initrd, write_segments, SegmentBody};
use super::kernel::extract_kernel;
use super::rewrite::{rewrite, ImageRole};
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
    pub kernel: Artifact,
    pub initrd: Artifact,
    pub cmdline: Artifact,
    pub sbom: Artifact,
    /// Things worth a warning: extended attributes newc cannot keep, names the kernel
    /// cannot create.
    pub warnings: Vec<Warning>,
}

/// Something the image will not have at boot although a layer asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub summary: &'static str,
    pub detail: String,
}

impl Warning {
    pub(super) fn dropped_xattrs(detail: String) -> Warning {
        Warning { summary: "Extended attributes dropped", detail }
    }
}

/// Pulls every image of the composition (a few at a time), then assembles on a
/// blocking thread.
pub async fn build(composition: Composition, puller: &Puller, output_dir: PathBuf, name: String) -> Result<Artifacts> {
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
    puller.with_repair(&pulled, move || assemble(&composition, &images, &cache, &output_dir, &name, &sbom)).await
}

/// The blocking part: the kernel, the segments, the initrd, the cmdline, published.
fn assemble(
    composition: &Composition,
    images: &BTreeMap<PinnedImage, ResolvedImage>,
    cache: &BlobCache,
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
    let kernel_spec = &composition.inputs.kernel;
    let kernel_image = &images[&kernel_spec.image];
    // Layer data is kept in unnamed temporary files beside the cache.
    let spool_dir = cache.root();
    let new_spool = || Spool::new_in(spool_dir);
    let kernel_layers = layer_sources(kernel_image, cache)?;
    let (kernel_tree, kernel_spool, mut warnings) = flatten(kernel_image, &kernel_layers, new_spool()?)?;
    let mut kernel = extract_kernel(kernel_spec, kernel_image, &kernel_tree, &kernel_spool, output_dir, spool_dir)?;
    drop((kernel_tree, kernel_spool));

    // Every segment's tree is built first (metadata only), so each knows which
    // directories the segments before it write; then they are written in parallel.
    let mut bodies: Vec<SegmentBody> = Vec::new();
    let mut apk_databases: Vec<Vec<u8>> = Vec::new();
    for planned in plan(composition) {
        match planned {
            Planned::KernelModules => {
                let (tree, spool) = kernel.modules.take().expect("the modules tarball was read");
                let describe = format!("{} of {}", kernel_spec.modules_tar, kernel_image.reference);
                bodies.push(image_body(tree, vec![], spool, describe));
            }
            // Init images at /, each flattened on its own (later ones overwrite earlier files).
            Planned::Init { index, package } => {
                let image = &images[&package.image];
                let layers = layer_sources(image, cache)?;
                let describe = format!("init[{index}]: {}", image.reference);
                let (mut tree, spool, dropped) =
                    flatten(image, &layers, new_spool()?).with_context(|| format!("init[{index}]"))?;
                warnings.extend(dropped);
                if let Some(Node::File(_)) = tree.get(APK_DATABASE) {
                    let mut database = Vec::new();
                    extract(&tree, &spool, vec![(APK_DATABASE, &mut database)], image)
                        .with_context(|| describe.clone())?;
                    apk_databases.push(database);
                }
                rewrite(&mut tree, ImageRole::Init);
                bodies.push(image_body(tree, vec![], spool, describe));
            }
            // Like LinuxKit, the image gets the concatenation of the init images' apk
            // databases, so every installed package stays listed.
            Planned::ApkDatabases => {
                if apk_databases.len() >= 2 {
                    bodies.push(SegmentBody::File { path: APK_DATABASE, contents: apk_databases.concat() });
                }
            }
            Planned::Bundle { bundle, prefix, scaffold } => {
                let at = format!("{}[{}]", bundle.section.attribute(), bundle.index);
                let (tree, spool, describe) = if bundle.extracts_image {
                    let image = &images[&bundle.package.image];
                    let layers = layer_sources(image, cache)?;
                    let (mut tree, spool, dropped) =
                        flatten(image, &layers, new_spool()?).with_context(|| at.clone())?;
                    warnings.extend(dropped);
                    rewrite(&mut tree, ImageRole::Bundle);
                    (tree, spool, format!("{at}: {}", image.reference))
                } else {
                    (Tree::new(), Spool::discarding(), at)
                };
                bodies.push(SegmentBody::Tree {
                    tree,
                    prefix,
                    spool,
                    scaffold_directories: scaffold.directories,
                    scaffold_files: scaffold.files,
                    describe,
                });
            }
            Planned::Files => {
                bodies.push(image_body(file_entries(composition)?, vec![], Spool::discarding(), "file".into()))
            }
        }
    }
    log::debug(
        "assembly: layers unioned",
        &[("segments", bodies.len().to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );
    let segments = in_order(bodies);
    let segments_started = Instant::now();
    let written = write_segments(&segments, output_dir)?;
    log::debug(
        "assembly: segments written",
        &[("segments", written.len().to_string()), ("elapsed_ms", segments_started.elapsed().as_millis().to_string())],
    );
    for (segment, written) in segments.iter().zip(&written) {
        for (name, reason) in &written.uncreatable {
            warnings.push(Warning {
                summary: "Names the kernel cannot create",
                detail: format!(
                    "{}: /{}: {reason}; the kernel cannot create it when it unpacks the initrd, so it is missing at boot",
                    segment.describe(),
                    String::from_utf8_lossy(name)
                ),
            });
        }
    }

    // The initrd: microcode, then one gzip member of the segments and the trailer.
    let initrd = temporary(output_dir, "initrd")?;
    let initrd_path = initrd.path().display().to_string();
    let (initrd_sha256, initrd_size, cpio_bytes, segment_count) =
        write_initrd(&initrd, kernel.ucode.as_ref(), &written)
            .with_context(|| format!("writing the initrd to {initrd_path}"))?;
    drop(written);
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

    let [kernel_path, initrd_path, cmdline_path] = artifact_paths(output_dir, name);
    let sbom_destination = sbom_path(output_dir, name);
    publish(vec![
        (kernel_file, &kernel_path),
        (initrd, &initrd_path),
        (cmdline, &cmdline_path),
        (sbom_file, &sbom_destination),
    ])?;
    Ok(Artifacts {
        kernel: Artifact { path: kernel_path, sha256: kernel_digest.to_string(), size: kernel_size },
        initrd: Artifact { path: initrd_path, sha256: initrd_sha256, size: initrd_size },
        cmdline: Artifact { path: cmdline_path, sha256: cmdline_sha256, size: cmdline_size },
        sbom: Artifact {
            path: sbom_destination,
            sha256: crate::oci::digest::sha256(sbom).to_string(),
            size: sbom.len() as u64,
        },
        warnings,
    })
}

/// A segment of a tree alone, without bundle scaffolding.
fn image_body<'a>(tree: Tree, prefix: Vec<u8>, spool: Spool, describe: String) -> SegmentBody<'a> {
    SegmentBody::Tree { tree, prefix, spool, scaffold_directories: vec![], scaffold_files: vec![], describe }
}

/// The `file` entries as a tree (their contents: bytes, or host files checked as copied).
fn file_entries(composition: &Composition) -> Result<Tree> {
    let mut files = Tree::new();
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
