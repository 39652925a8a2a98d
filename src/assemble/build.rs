//! Writing the artifacts of a composition: pull every image, union its layers, and write
//! `<name>-kernel`, `<name>-initrd.img` and `<name>-cmdline` through temporary files in
//! the output directory, renamed into place only when all three are complete.
//!
//! The initrd is one gzip member of independently compressed segments, in order:
//! kernel modules, each init image, the merged apk database (when two or more init images
//! have one), each bundle (onboot, onshutdown, services), the `file` entries (which also
//! carry the cpio trailer). Segment `n` numbers its inodes in
//! its own namespace (devminor `n`). An early microcode cpio, when the kernel sets one,
//! precedes the gzip member uncompressed. Layers are read twice (headers, then the data
//! of the surviving files), never held in memory; all of it runs on a blocking thread.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use sha2::Digest as _;

use super::compose::{Composition, FileKind};
use super::rewrite::{rewrite, ImageRole};
use super::spec::pinned;
use crate::initrd::gzip::{self, SegmentEncoder, SegmentSummary};
use crate::initrd::newc::{self, Metadata, SegmentWriter, S_IFDIR};
use crate::log;
use crate::oci::cache::BlobCache;
use crate::oci::platform::Platform;
use crate::oci::{Puller, ResolvedImage};
use crate::rootfs::layer::{decompress, for_each_entry, read_entries};
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
    /// Things worth a warning: extended attributes newc cannot keep.
    pub warnings: Vec<String>,
}

/// The artifact paths of image `name` in `output_dir`.
pub fn artifact_paths(output_dir: &Path, name: &str) -> [PathBuf; 3] {
    [
        output_dir.join(format!("{name}-kernel")),
        output_dir.join(format!("{name}-initrd.img")),
        output_dir.join(format!("{name}-cmdline")),
    ]
}

/// sha256 and size of a file on disk.
pub fn file_digest(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hashing = HashingWriter::new(std::io::sink());
    std::io::copy(&mut file, &mut hashing).with_context(|| format!("reading {}", path.display()))?;
    Ok(hashing.finish())
}

/// Hashes and counts what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: sha2::Sha256::new(), written: 0 }
    }

    fn finish(self) -> (String, u64) {
        (format!("sha256:{}", hex::encode(self.hasher.finalize())), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Pulls every image of the composition (a few at a time), then assembles on a
/// blocking thread.
pub async fn build(composition: Composition, puller: &Puller, output_dir: PathBuf, name: String) -> Result<Artifacts> {
    let started = Instant::now();
    let kernel = &composition.inputs.kernel;
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    wanted.insert((kernel.image.clone(), kernel.platform.clone()));
    for package in composition.inputs.init.iter().chain(composition.bundles.iter().filter(|b| b.extracts_image).map(|b| &b.package)) {
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
    log::debug("assembly: images pulled", &[("images", images.len().to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())]);
    let cache = puller.cache().clone();
    tokio::task::spawn_blocking(move || assemble(&composition, &images, &cache, &output_dir, &name)).await?
}

/// An image's layers as blob paths in the cache, in order.
fn layer_paths(image: &ResolvedImage, cache: &BlobCache) -> Result<Vec<PathBuf>> {
    image.manifest.layers.iter().map(|l| Ok(cache.blob_path(&l.parsed_digest()?))).collect()
}

fn open_layer(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening layer {}", path.display()))?;
    decompress(file)
}

/// The union of an image's layers, and what they carried that newc drops.
fn flatten(image: &ResolvedImage, layers: &[PathBuf]) -> Result<(Tree, Vec<String>)> {
    let mut tree = Tree::new();
    let mut warnings = Vec::new();
    for (index, path) in layers.iter().enumerate() {
        let describe = || format!("layer {} ({}) of {}", index + 1, image.manifest.layers[index].digest, image.reference);
        let entries = open_layer(path).and_then(read_entries).with_context(describe)?;
        let dropped = tree.apply_layer(index, &entries).with_context(describe)?;
        for DroppedXattrs { path, names } in dropped {
            warnings.push(format!(
                "{}: {} in {} carries extended attributes ({}) that a newc initrd cannot hold; they are dropped",
                image.reference,
                display(&path),
                describe(),
                names.join(", ")
            ));
        }
    }
    Ok((tree, warnings))
}

/// Copies the contents of files of `tree` (by path) into writers, in one pass per layer.
fn extract(tree: &Tree, layers: &[PathBuf], files: Vec<(&[u8], &mut dyn Write)>, image: &ResolvedImage) -> Result<()> {
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
        for_each_entry(open_layer(&layers[layer])?, |entry, data| {
            if let Some(out) = wanted.remove(&entry.ordinal) {
                std::io::copy(data, out)?;
            }
            Ok(())
        })
        .with_context(|| format!("reading layer {} of {}", layer + 1, image.reference))?;
    }
    Ok(())
}

fn temporary(dir: &Path, label: &str) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!(".resin-{label}-"))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

fn directory_meta() -> Metadata {
    Metadata { mode: S_IFDIR | 0o755, uid: 0, gid: 0, mtime: crate::rootfs::tree::GENERATED_MTIME, rdev: (0, 0) }
}

type Output = HashingWriter<std::io::BufWriter<std::fs::File>>;

const APK_DATABASE: &[u8] = b"lib/apk/db/installed";

/// The blocking part: unions, the initrd, the kernel and the cmdline.
fn assemble(
    composition: &Composition,
    images: &BTreeMap<String, ResolvedImage>,
    cache: &BlobCache,
    output_dir: &Path,
    name: &str,
) -> Result<Artifacts> {
    let started = Instant::now();
    let kernel_spec = &composition.inputs.kernel;
    let kernel_image = &images[&kernel_spec.image];
    let kernel_layers = layer_paths(kernel_image, cache)?;
    let (kernel_tree, mut warnings) = flatten(kernel_image, &kernel_layers)?;

    let mut kernel_file = temporary(output_dir, "kernel")?;
    let mut modules = temporary(output_dir, "modules")?;
    let mut ucode = temporary(output_dir, "ucode")?;
    {
        let binary = normalise(kernel_spec.binary.as_bytes())?;
        let mut wanted: Vec<(&[u8], &mut dyn Write)> = vec![(&binary, kernel_file.as_file_mut())];
        let modules_path = normalise(kernel_spec.modules_tar.as_bytes())?;
        if !kernel_spec.modules_tar.is_empty() {
            wanted.push((&modules_path, modules.as_file_mut()));
        }
        let ucode_path = kernel_spec.ucode.as_ref().map(|u| normalise(u.as_bytes())).transpose()?;
        if let Some(path) = &ucode_path {
            wanted.push((path, ucode.as_file_mut()));
        }
        extract(&kernel_tree, &kernel_layers, wanted, kernel_image).context("extracting from the kernel image")?;
    }

    let initrd = temporary(output_dir, "initrd")?;
    let mut out = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, initrd.as_file().try_clone()?));
    if kernel_spec.ucode.is_some() {
        let mut file = ucode.reopen()?;
        std::io::copy(&mut file, &mut out).context("copying the microcode cpio")?;
    }
    gzip::write_header(&mut out)?;
    let mut summaries: Vec<SegmentSummary> = Vec::new();
    let mut cpio_written = 0u64;
    let mut directories: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut segment_number = 0u32;

    // One segment: its entries, and the trailer when it is the last.
    let mut segment = |out: &mut Output,
                       last: bool,
                       body: &mut dyn FnMut(&mut SegmentWriter<SegmentEncoder<&mut Output>>, &mut BTreeSet<Vec<u8>>) -> Result<()>|
     -> Result<()> {
        segment_number += 1;
        let mut writer = SegmentWriter::new(SegmentEncoder::new(out), segment_number);
        body(&mut writer, &mut directories)?;
        cpio_written += writer.written();
        let mut encoder = writer.into_inner();
        if last {
            cpio_written += newc::write_trailer(&mut encoder, cpio_written)?;
        }
        let (_, summary) = encoder.finish()?;
        summaries.push(summary);
        Ok(())
    };

    // Kernel modules at /.
    if !kernel_spec.modules_tar.is_empty() {
        let modules_path = modules.path().to_path_buf();
        let entries = open_layer(&modules_path)
            .and_then(read_entries).with_context(|| format!("reading {} of {}", kernel_spec.modules_tar, kernel_image.reference))?;
        let mut tree = Tree::new();
        tree.apply_layer(0, &entries).with_context(|| format!("{} of {}", kernel_spec.modules_tar, kernel_image.reference))?;
        segment(&mut out, false, &mut |writer, dirs| {
            let mut open = |_: usize| open_layer(&modules_path);
            let written = tree.write(b"", writer, &mut open, dirs)?;
            dirs.extend(written);
            Ok(())
        })?;
    }

    // Init images at /, each flattened on its own (later ones overwrite earlier files).
    let mut apk_databases: Vec<Vec<u8>> = Vec::new();
    for (index, package) in composition.inputs.init.iter().enumerate() {
        let image = &images[&package.image];
        let layers = layer_paths(image, cache)?;
        let (mut tree, dropped) = flatten(image, &layers).with_context(|| format!("init[{index}]"))?;
        warnings.extend(dropped);
        if let Some(Node::File(_)) = tree.get(APK_DATABASE) {
            let mut database = Vec::new();
            extract(&tree, &layers, vec![(APK_DATABASE, &mut database)], image).with_context(|| format!("init[{index}]"))?;
            apk_databases.push(database);
        }
        rewrite(&mut tree, ImageRole::Init);
        segment(&mut out, false, &mut |writer, dirs| {
            let mut open = |i: usize| open_layer(&layers[i]);
            let written = tree.write(b"", writer, &mut open, dirs).with_context(|| format!("init[{index}]: {}", image.reference))?;
            dirs.extend(written);
            Ok(())
        })?;
    }

    // Several init images each bring their apk database; like LinuxKit, the image gets
    // their concatenation, so every installed package stays listed.
    if apk_databases.len() >= 2 {
        let merged = apk_databases.concat();
        segment(&mut out, false, &mut |writer, _| {
            let meta = Metadata { mode: newc::S_IFREG | 0o644, ..directory_meta() };
            writer.entry(APK_DATABASE, &meta, merged.len() as u64, &merged[..])
        })?;
    }

    // Bundles.
    for bundle in &composition.bundles {
        let at = format!("{}[{}]", bundle.section.attribute(), bundle.index);
        let flattened = if bundle.extracts_image {
            let image = &images[&bundle.package.image];
            let layers = layer_paths(image, cache)?;
            let (mut tree, dropped) = flatten(image, &layers).with_context(|| at.clone())?;
            warnings.extend(dropped);
            rewrite(&mut tree, ImageRole::Bundle);
            Some((tree, layers, image))
        } else {
            None
        };
        segment(&mut out, false, &mut |writer, dirs| {
            let mut parents = Vec::new();
            let mut current = String::new();
            for component in bundle.path.split('/') {
                current = if current.is_empty() { component.to_string() } else { format!("{current}/{component}") };
                parents.push(current.clone());
            }
            let mut own = vec![format!("{}/rootfs", bundle.path)];
            if !bundle.readonly {
                own.push(format!("{}/tmp", bundle.path));
                if bundle.extracts_image {
                    own.push(format!("{}/lower", bundle.path));
                }
            }
            for directory in parents.iter().chain(own.iter()) {
                writer.entry(directory.as_bytes(), &directory_meta(), 0, std::io::empty())?;
                dirs.insert(directory.as_bytes().to_vec());
            }
            for (file, bytes) in [("config.json", &bundle.config_json), ("runtime.json", &bundle.runtime_json)] {
                let meta = Metadata { mode: newc::S_IFREG | 0o644, ..directory_meta() };
                writer.entry(format!("{}/{file}", bundle.path).as_bytes(), &meta, bytes.len() as u64, &bytes[..])?;
            }
            if let Some((tree, layers, image)) = &flattened {
                let mut open = |i: usize| open_layer(&layers[i]);
                let written = tree
                    .write(bundle.image_root.as_bytes(), writer, &mut open, dirs)
                    .with_context(|| format!("{at}: {}", image.reference))?;
                dirs.extend(written);
            }
            Ok(())
        })?;
    }

    // file entries, and the trailer.
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
                // The plan hashed this file; it must still be what the plan saw.
                let (sha256, size) = file_digest(source)?;
                if sha256 != format!("sha256:{}", file.sha256) {
                    bail!("{} changed since the plan (file {}); run terraform plan again", source.display(), display(&file.path));
                }
                files.insert_file(&file.path, meta, size, Content::HostFile(source.clone()));
            }
        }
    }
    segment(&mut out, true, &mut |writer, dirs| {
        let mut no_layers = |_: usize| -> Result<Box<dyn Read + Send>> { bail!("file entries have no layers") };
        let written = files.write(b"", writer, &mut no_layers, dirs)?;
        dirs.extend(written);
        Ok(())
    })?;
    gzip::write_footer(&mut out, &summaries)?;
    out.flush()?;
    let (initrd_sha256, initrd_size) = out.finish();
    log::debug("assembly: initrd written", &[
        ("segments", summaries.len().to_string()),
        ("uncompressed_bytes", cpio_written.to_string()),
        ("bytes", initrd_size.to_string()),
        ("elapsed_ms", started.elapsed().as_millis().to_string()),
    ]);

    let (kernel_sha256, kernel_size) = file_digest(kernel_file.path())?;
    let mut cmdline = temporary(output_dir, "cmdline")?;
    cmdline.write_all(kernel_spec.cmdline.as_bytes())?;
    let (cmdline_sha256, cmdline_size) = file_digest(cmdline.path())?;

    let [kernel_path, initrd_path, cmdline_path] = artifact_paths(output_dir, name);
    for file in [&kernel_file, &initrd, &cmdline] {
        // Temporary files are created 0600; artifacts are meant to be read (by a PXE or
        // image server, a VM launcher).
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.as_file().sync_all()?;
    }
    for (file, path) in [(kernel_file, &kernel_path), (initrd, &initrd_path), (cmdline, &cmdline_path)] {
        file.persist(path).with_context(|| format!("moving the artifact into place at {}", path.display()))?;
    }
    drop((modules, ucode));
    Ok(Artifacts {
        kernel: Artifact { path: kernel_path, sha256: kernel_sha256, size: kernel_size },
        initrd: Artifact { path: initrd_path, sha256: initrd_sha256, size: initrd_size },
        cmdline: Artifact { path: cmdline_path, sha256: cmdline_sha256, size: cmdline_size },
        warnings,
    })
}
