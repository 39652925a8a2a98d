//! Writing the artifacts of a composition: pull every image, union its layers, and write
//! `<name>-kernel`, `<name>-initrd.img`, `<name>-cmdline` and the SBOM through temporary
//! files in the output directory, renamed into place only when all of them are complete.
//!
//! The initrd is one gzip member of independently compressed segments, in order:
//! kernel modules, each init image, the merged apk database (when two or more init images
//! have one), each bundle (onboot, onshutdown, services), the `file` entries, and the cpio
//! trailer. Segment `n` numbers its inodes in its own namespace (devminor `n`). An early
//! microcode cpio, when the kernel sets one, precedes the gzip member uncompressed.
//!
//! Every segment's tree is built first (metadata only), which fixes what each segment
//! writes; then the segments are written and compressed in parallel, one per core, each
//! to its own temporary file, and concatenated in order. Layers are read twice (headers,
//! then the data of the surviving files), verified on each read (blob digest and
//! compression trailer each time, the diff_id on the first) and never held in memory; all of it runs on blocking threads, off the
//! async runtime. A cache blob found damaged is fetched again and assembly starts over
//! ([`Puller::with_repair`]); nothing is renamed into place before everything verified.
//! Temporary files left in the output directory by a killed run are removed first.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::compose::{Composition, FileKind};
use super::rewrite::{rewrite, ImageRole};
use super::spec::pinned;
use crate::initrd::gzip::{self, SegmentEncoder, SegmentSummary};
use crate::initrd::newc::{self, Metadata, SegmentWriter, S_IFDIR};
use crate::log;
use crate::oci::cache::BlobCache;
use crate::oci::hashing::HashingWriter;
use crate::oci::platform::Platform;
use crate::oci::reference::Digest;
use crate::oci::{Puller, ResolvedImage};
use crate::rootfs::host::digest_regular;
use crate::rootfs::layer::{for_each_entry, read_entries, LayerSource};
use crate::rootfs::path::{display, normalise};
use crate::rootfs::tree::{Content, DroppedXattrs, Meta, Node, Tree};

/// One written artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub path: PathBuf,
    /// `sha256:<hex>`.
    pub sha256: String,
    pub size: u64,
}

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
    fn dropped_xattrs(detail: String) -> Warning {
        Warning { summary: "Extended attributes dropped", detail }
    }
}

/// The artifact paths of image `name` in `output_dir`.
pub fn artifact_paths(output_dir: &Path, name: &str) -> [PathBuf; 3] {
    [
        output_dir.join(format!("{name}-kernel")),
        output_dir.join(format!("{name}-initrd.img")),
        output_dir.join(format!("{name}-cmdline")),
    ]
}

/// Where the SPDX SBOM of image `name` goes.
pub fn sbom_path(output_dir: &Path, name: &str) -> PathBuf {
    output_dir.join(format!("{name}-sbom.spdx.json"))
}

/// The SPDX SBOM of image `name`: a function of the composition alone, so its digest is
/// known at plan time.
pub fn sbom_bytes(composition: &Composition, name: &str) -> Vec<u8> {
    let mut bytes =
        serde_json::to_vec_pretty(&super::interop::spdx_document(composition, name)).expect("JSON values serialise");
    bytes.push(b'\n');
    bytes
}

/// Writes the SBOM alone (when only it is missing or was edited), through a temporary
/// file renamed into place.
pub fn write_sbom(composition: &Composition, output_dir: &Path, name: &str) -> Result<Artifact> {
    let bytes = sbom_bytes(composition, name);
    let path = sbom_path(output_dir, name);
    let mut file = temporary(output_dir, "sbom")?;
    file.write_all(&bytes).with_context(|| format!("writing {}", path.display()))?;
    publishable(&file)?;
    crate::tempfiles::publish(|| {
        file.persist(&path).with_context(|| format!("moving the SBOM into place at {}", path.display()))
    })?;
    Ok(Artifact { path, sha256: Digest::of(&bytes).to_string(), size: bytes.len() as u64 })
}

/// Artifacts are meant to be read (by a PXE or image server, a VM launcher), and
/// temporary files are created 0600; and they must be on disk before the rename.
fn publishable(file: &tempfile::NamedTempFile) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.as_file().sync_all()?;
    Ok(())
}

/// sha256 and size of a file on disk (an artifact), as `sha256:<hex>`.
pub fn file_digest(path: &Path) -> Result<(String, u64)> {
    let (digest, size) = digest_regular(path)?;
    Ok((digest.to_string(), size))
}

/// Pulls every image of the composition (a few at a time), then assembles on a
/// blocking thread.
pub async fn build(composition: Composition, puller: &Puller, output_dir: PathBuf, name: String) -> Result<Artifacts> {
    let sbom = sbom_bytes(&composition, &name);
    let started = Instant::now();
    let kernel = &composition.inputs.kernel;
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    wanted.insert((kernel.image.clone(), kernel.platform.clone()));
    for package in composition
        .inputs
        .init
        .iter()
        .chain(composition.bundles.iter().filter(|b| b.extracts_image).map(|b| &b.package))
    {
        wanted.insert((package.image.clone(), package.platform.clone()));
    }
    let images: BTreeMap<String, ResolvedImage> = stream::iter(wanted)
        .map(|(image, platform)| async move {
            let (reference, digest) = pinned(&image)?;
            let platform: Platform = platform.parse()?;
            let resolved = puller.resolve(&reference, &platform, Some(&digest)).await?;
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

/// An image's layers in the cache, in order, with the digests they must have.
pub fn layer_sources(image: &ResolvedImage, cache: &BlobCache) -> Result<Vec<LayerSource>> {
    let diff_ids = image.config.diff_ids();
    image
        .manifest
        .layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let digest = layer.parsed_digest()?;
            let diff_id = match diff_ids {
                Some(ids) => {
                    let id = ids.get(index).with_context(|| {
                        format!("{}: the config has no diff_id for layer {}", image.reference, index + 1)
                    })?;
                    Some(
                        id.parse::<Digest>()
                            .with_context(|| format!("{}: the diff_id of layer {}", image.reference, index + 1))?,
                    )
                }
                None => None,
            };
            Ok(LayerSource { path: cache.blob_path(&digest), blob: Some((digest, layer.size)), diff_id })
        })
        .collect()
}

/// The union of a pulled image's layers (metadata only), e.g. to check a file is there.
pub fn flatten_pulled(image: &ResolvedImage, cache: &BlobCache) -> Result<Tree> {
    let layers = layer_sources(image, cache)?;
    Ok(flatten(image, &layers)?.0)
}

/// The union of an image's layers, and what they carried that newc drops.
fn flatten(image: &ResolvedImage, layers: &[LayerSource]) -> Result<(Tree, Vec<Warning>)> {
    let mut tree = Tree::new();
    let mut warnings = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let describe =
            || format!("layer {} ({}) of {}", index + 1, image.manifest.layers[index].digest, image.reference);
        let entries = layer.read(|stream| read_entries(stream)).with_context(describe)?;
        let dropped = tree.apply_layer(index, &entries).with_context(describe)?;
        for DroppedXattrs { path, names } in dropped {
            warnings.push(Warning::dropped_xattrs(format!(
                "{}: {} in {} carries extended attributes ({}) that a newc initrd cannot hold; they are dropped",
                image.reference,
                display(&path),
                describe(),
                names.join(", ")
            )));
        }
    }
    Ok((tree, warnings))
}

/// Copies the contents of files of `tree` (by path) into writers, in one pass per layer.
fn extract(
    tree: &Tree,
    layers: &[LayerSource],
    files: Vec<(&[u8], &mut dyn Write)>,
    image: &ResolvedImage,
) -> Result<()> {
    let mut by_layer: BTreeMap<usize, BTreeMap<usize, &mut dyn Write>> = BTreeMap::new();
    for (path, out) in files {
        let Some(Node::File(id)) = tree.get(path) else {
            bail!("{} has no file {}", image.reference, display(path));
        };
        let Content::Layer { layer, ordinal } = tree.inode(*id).content else {
            bail!("{} of {} does not come from a layer", display(path), image.reference);
        };
        if by_layer.entry(layer).or_default().insert(ordinal, out).is_some() {
            bail!("{} is asked for twice from {}", display(path), image.reference);
        }
    }
    for (layer, mut wanted) in by_layer {
        // `tree` came from a first, fully verified read of these layers.
        layers[layer]
            .again()
            .read(|stream| {
                for_each_entry(stream, |entry, data| {
                    if let Some(out) = wanted.remove(&entry.ordinal) {
                        std::io::copy(data, out)?;
                    }
                    Ok(())
                })
            })
            .with_context(|| {
                format!("reading layer {} ({}) of {}", layer + 1, image.manifest.layers[layer].digest, image.reference)
            })?;
    }
    Ok(())
}

/// Names of resin's temporary files in an output directory. `~` never appears in an
/// image name, so no artifact can be taken for a temporary file.
const TEMPORARY_PREFIX: &str = ".resin~";

fn temporary(dir: &Path, label: &str) -> Result<tempfile::NamedTempFile> {
    crate::tempfiles::create_locked(dir, &format!("{TEMPORARY_PREFIX}{label}-"))
}

fn directory_meta() -> Metadata {
    Metadata { mode: S_IFDIR | 0o755, uid: 0, gid: 0, mtime: crate::rootfs::tree::GENERATED_MTIME, rdev: (0, 0) }
}

const APK_DATABASE: &[u8] = b"lib/apk/db/installed";

/// What one segment of the initrd holds.
enum SegmentBody<'a> {
    /// A flattened tree under a prefix, its layers (plain tar files or cache blobs), and
    /// bundle scaffolding (directories, then files) written before it.
    Tree {
        tree: Tree,
        prefix: Vec<u8>,
        layers: Vec<LayerSource>,
        scaffold_directories: Vec<Vec<u8>>,
        scaffold_files: Vec<(Vec<u8>, &'a [u8])>,
        describe: String,
    },
    /// One generated file.
    File { path: &'static [u8], contents: Vec<u8> },
}

struct Segment<'a> {
    body: SegmentBody<'a>,
    /// Directories written by the segments before this one.
    existing: BTreeSet<Vec<u8>>,
}

/// A segment written to its own temporary file, compressed.
struct WrittenSegment {
    file: tempfile::NamedTempFile,
    summary: SegmentSummary,
    cpio_bytes: u64,
    /// Names written that the kernel cannot create, with the reason.
    uncreatable: Vec<(Vec<u8>, String)>,
}

impl Segment<'_> {
    fn describe(&self) -> String {
        match &self.body {
            SegmentBody::Tree { describe, .. } => describe.clone(),
            SegmentBody::File { path, .. } => String::from_utf8_lossy(path).into_owned(),
        }
    }
}

fn write_segment(segment: &Segment, number: u32, output_dir: &Path) -> Result<WrittenSegment> {
    let file = temporary(output_dir, "segment")?;
    let encoder = SegmentEncoder::new(std::io::BufWriter::with_capacity(1 << 20, file.as_file().try_clone()?));
    let mut writer = SegmentWriter::new(encoder, number);
    match &segment.body {
        SegmentBody::Tree { tree, prefix, layers, scaffold_directories, scaffold_files, describe } => {
            for directory in scaffold_directories {
                writer.entry(directory, &directory_meta(), 0, std::io::empty())?;
            }
            for (path, bytes) in scaffold_files {
                let meta = Metadata { mode: newc::S_IFREG | 0o644, ..directory_meta() };
                writer.entry(path, &meta, bytes.len() as u64, &bytes[..])?;
            }
            tree.write(prefix, &mut writer, layers, &segment.existing).with_context(|| describe.clone())?;
        }
        SegmentBody::File { path, contents } => {
            let meta = Metadata { mode: newc::S_IFREG | 0o644, ..directory_meta() };
            writer.entry(path, &meta, contents.len() as u64, &contents[..])?;
        }
    }
    let cpio_bytes = writer.written();
    let uncreatable = writer.uncreatable().to_vec();
    let (mut out, summary) = writer.into_inner().finish()?;
    out.flush()?;
    drop(out);
    Ok(WrittenSegment { file, summary, cpio_bytes, uncreatable })
}

/// Writes every segment, several at once (one per core), each to its own file.
fn write_segments(segments: &[Segment], output_dir: &Path) -> Result<Vec<WrittenSegment>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(segments.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<std::sync::Mutex<Option<Result<WrittenSegment>>>> =
        segments.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if index >= segments.len() || failed.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let segment = &segments[index];
                let describe = segment.describe();
                let result =
                    write_segment(segment, u32::try_from(index + 1).expect("fewer than 2^32 segments"), output_dir)
                        .with_context(|| {
                            format!(
                                "writing initrd segment {} ({describe}) to a temporary file in {}",
                                index + 1,
                                output_dir.display()
                            )
                        });
                if result.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                *results[index].lock().expect("segment result lock") = Some(result);
            });
        }
    });
    let mut written = Vec::new();
    for result in results {
        match result.into_inner().expect("segment result lock") {
            Some(Ok(segment)) => written.push(segment),
            Some(Err(e)) => return Err(e),
            // Not started because another segment failed; that error comes first.
            None => continue,
        }
    }
    Ok(written)
}

/// Writes the initrd: the microcode cpio (if any), then one gzip member of the written
/// segments and the trailer. Returns its sha256, size, uncompressed cpio size and the
/// number of segments.
fn write_initrd(
    initrd: &tempfile::NamedTempFile,
    ucode: Option<&tempfile::NamedTempFile>,
    written: &[WrittenSegment],
) -> Result<(String, u64, u64, usize)> {
    let mut out = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, initrd.as_file().try_clone()?));
    if let Some(ucode) = ucode {
        std::io::copy(&mut ucode.reopen()?, &mut out).context("copying the microcode cpio")?;
    }
    gzip::write_header(&mut out)?;
    let mut summaries = Vec::new();
    let mut cpio_bytes = 0;
    for segment in written {
        std::io::copy(&mut segment.file.reopen()?, &mut out)?;
        summaries.push(segment.summary);
        cpio_bytes += segment.cpio_bytes;
    }
    let mut trailer = SegmentEncoder::new(&mut out);
    cpio_bytes += newc::write_trailer(&mut trailer, cpio_bytes)?;
    let (_, summary) = trailer.finish()?;
    summaries.push(summary);
    gzip::write_footer(&mut out, &summaries)?;
    out.flush()?;
    let (sha256, size) = out.finish();
    Ok((sha256.to_string(), size, cpio_bytes, summaries.len()))
}

/// The blocking part: unions, the initrd, the kernel and the cmdline.
fn assemble(
    composition: &Composition,
    images: &BTreeMap<String, ResolvedImage>,
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
    let kernel_layers = layer_sources(kernel_image, cache)?;
    let (kernel_tree, mut warnings) = flatten(kernel_image, &kernel_layers)?;

    let mut kernel_file = temporary(output_dir, "kernel")?;
    let mut modules = temporary(output_dir, "modules")?;
    let mut ucode = temporary(output_dir, "ucode")?;
    let (kernel_digest, modules_digest) = {
        let binary = normalise(kernel_spec.binary.as_bytes())?;
        // The kernel's digest is taken as it is written, not by reading the file again.
        let mut kernel_out = HashingWriter::new(kernel_file.as_file_mut());
        let mut wanted: Vec<(&[u8], &mut dyn Write)> = vec![(&binary, &mut kernel_out)];
        // The modules tarball is read again from its temporary file: hashed as it is
        // written, so that read is verified like any other.
        let mut modules_out = HashingWriter::new(modules.as_file_mut());
        let modules_path = normalise(kernel_spec.modules_tar.as_bytes())?;
        if !kernel_spec.modules_tar.is_empty() {
            wanted.push((&modules_path, &mut modules_out));
        }
        let ucode_path = kernel_spec.ucode.as_ref().map(|u| normalise(u.as_bytes())).transpose()?;
        if let Some(path) = &ucode_path {
            wanted.push((path, ucode.as_file_mut()));
        }
        extract(&kernel_tree, &kernel_layers, wanted, kernel_image).context("extracting from the kernel image")?;
        (kernel_out.finish(), modules_out.finish())
    };

    // Every segment's tree is built first (metadata only), so each knows which
    // directories the segments before it write; then they are written in parallel.
    let mut bodies: Vec<SegmentBody> = Vec::new();
    if !kernel_spec.modules_tar.is_empty() {
        let source = LayerSource { path: modules.path().to_path_buf(), blob: Some(modules_digest), diff_id: None };
        let describe = format!("{} of {}", kernel_spec.modules_tar, kernel_image.reference);
        let entries = source.read(|stream| read_entries(stream)).with_context(|| format!("reading {describe}"))?;
        let mut tree = Tree::new();
        tree.apply_layer(0, &entries).with_context(|| describe.clone())?;
        bodies.push(SegmentBody::Tree {
            tree,
            prefix: vec![],
            layers: vec![source],
            scaffold_directories: vec![],
            scaffold_files: vec![],
            describe,
        });
    }
    // Init images at /, each flattened on its own (later ones overwrite earlier files).
    let mut apk_databases: Vec<Vec<u8>> = Vec::new();
    for (index, package) in composition.inputs.init.iter().enumerate() {
        let image = &images[&package.image];
        let layers = layer_sources(image, cache)?;
        let describe = format!("init[{index}]: {}", image.reference);
        let (mut tree, dropped) = flatten(image, &layers).with_context(|| format!("init[{index}]"))?;
        warnings.extend(dropped);
        if let Some(Node::File(_)) = tree.get(APK_DATABASE) {
            let mut database = Vec::new();
            extract(&tree, &layers, vec![(APK_DATABASE, &mut database)], image).with_context(|| describe.clone())?;
            apk_databases.push(database);
        }
        rewrite(&mut tree, ImageRole::Init);
        bodies.push(SegmentBody::Tree {
            tree,
            prefix: vec![],
            layers,
            scaffold_directories: vec![],
            scaffold_files: vec![],
            describe,
        });
    }
    // Several init images each bring their apk database; like LinuxKit, the image gets
    // their concatenation, so every installed package stays listed.
    if apk_databases.len() >= 2 {
        bodies.push(SegmentBody::File { path: APK_DATABASE, contents: apk_databases.concat() });
    }
    for bundle in &composition.bundles {
        let at = format!("{}[{}]", bundle.section.attribute(), bundle.index);
        let mut scaffold_directories = Vec::new();
        let mut current = String::new();
        for component in bundle.path.split('/') {
            current = if current.is_empty() { component.to_string() } else { format!("{current}/{component}") };
            scaffold_directories.push(current.clone().into_bytes());
        }
        scaffold_directories.push(format!("{}/rootfs", bundle.path).into_bytes());
        if !bundle.readonly {
            scaffold_directories.push(format!("{}/tmp", bundle.path).into_bytes());
            if bundle.extracts_image {
                scaffold_directories.push(format!("{}/lower", bundle.path).into_bytes());
            }
        }
        let scaffold_files = vec![
            (format!("{}/config.json", bundle.path).into_bytes(), &bundle.config_json[..]),
            (format!("{}/runtime.json", bundle.path).into_bytes(), &bundle.runtime_json[..]),
        ];
        let (tree, layers, describe) = if bundle.extracts_image {
            let image = &images[&bundle.package.image];
            let layers = layer_sources(image, cache)?;
            let (mut tree, dropped) = flatten(image, &layers).with_context(|| at.clone())?;
            warnings.extend(dropped);
            rewrite(&mut tree, ImageRole::Bundle);
            (tree, layers, format!("{at}: {}", image.reference))
        } else {
            (Tree::new(), vec![], at.clone())
        };
        bodies.push(SegmentBody::Tree {
            tree,
            prefix: bundle.image_root.clone().into_bytes(),
            layers,
            scaffold_directories,
            scaffold_files,
            describe,
        });
    }
    // file entries.
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
                let sha256: Digest = format!("sha256:{}", file.sha256).parse().context("a file digest")?;
                files.insert_file(&file.path, meta, file.size, Content::HostFile { path: source.clone(), sha256 });
            }
        }
    }
    bodies.push(SegmentBody::Tree {
        tree: files,
        prefix: vec![],
        layers: vec![],
        scaffold_directories: vec![],
        scaffold_files: vec![],
        describe: "file".into(),
    });

    log::debug(
        "assembly: layers unioned",
        &[("segments", bodies.len().to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );
    let mut existing: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut segments = Vec::new();
    for body in bodies {
        let before = existing.clone();
        match &body {
            SegmentBody::Tree { tree, prefix, scaffold_directories, .. } => {
                existing.extend(scaffold_directories.iter().cloned());
                let scaffolded = existing.clone();
                existing.extend(tree.directories_written(prefix, &scaffolded));
            }
            SegmentBody::File { .. } => {}
        }
        segments.push(Segment { body, existing: before });
    }
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
    let ucode = kernel_spec.ucode.is_some().then_some(&ucode);
    let (initrd_sha256, initrd_size, cpio_bytes, segment_count) =
        write_initrd(&initrd, ucode, &written).with_context(|| format!("writing the initrd to {initrd_path}"))?;
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

    let (kernel_sha256, kernel_size) = (kernel_digest.0.to_string(), kernel_digest.1);
    let mut cmdline = temporary(output_dir, "cmdline")?;
    cmdline.write_all(kernel_spec.cmdline.as_bytes())?;
    let (cmdline_sha256, cmdline_size) = file_digest(cmdline.path())?;
    log::debug(
        "assembly: artifacts written",
        &[("name", name.to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );

    let mut sbom_file = temporary(output_dir, "sbom")?;
    sbom_file.write_all(sbom)?;

    let [kernel_path, initrd_path, cmdline_path] = artifact_paths(output_dir, name);
    for file in [&kernel_file, &initrd, &cmdline, &sbom_file] {
        publishable(file)?;
    }
    let sbom_destination = sbom_path(output_dir, name);
    crate::tempfiles::publish(|| {
        let mut replaced: Vec<String> = Vec::new();
        for (file, path) in [
            (kernel_file, &kernel_path),
            (initrd, &initrd_path),
            (cmdline, &cmdline_path),
            (sbom_file, &sbom_destination),
        ] {
            // Renames within one directory fail only exceptionally (permissions changed
            // under the run); then say which artifacts are already new: refresh sees them
            // as changed and the next apply writes all of them again.
            file.persist(path).with_context(|| {
                let already = if replaced.is_empty() {
                    "none was replaced".to_string()
                } else {
                    format!("already replaced: {}", replaced.join(", "))
                };
                format!("moving the artifact into place at {} ({already})", path.display())
            })?;
            replaced.push(path.display().to_string());
        }
        Ok(())
    })?;
    drop((modules, ucode));
    Ok(Artifacts {
        kernel: Artifact { path: kernel_path, sha256: kernel_sha256, size: kernel_size },
        initrd: Artifact { path: initrd_path, sha256: initrd_sha256, size: initrd_size },
        cmdline: Artifact { path: cmdline_path, sha256: cmdline_sha256, size: cmdline_size },
        sbom: Artifact { path: sbom_destination, sha256: Digest::of(sbom).to_string(), size: sbom.len() as u64 },
        warnings,
    })
}
