//! Assembling the artifacts of a composition: pull every image, then (on a blocking
//! thread, off the async runtime) extract the kernel ([`super::kernel`]), take each
//! segment the plan names from the segment cache or build it ([`super::segments`], its
//! layers read through [`super::union`]), write the new segments and the initrd ([`super::initrd`]), and
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
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::json;

use super::artifacts::{
    document_files, file_digest, publish, temporary, Access, Artifact, ArtifactKind, Document, TEMPORARY_PREFIX,
};
use super::compose::Composition;
use super::hash::ASSEMBLY_FORMAT;
use super::kernel::{extract_kernel, KernelSource};
use super::prefetch::Prefetch;
use super::segment_cache::{CachedSegment, SegmentCache};
use super::segment_writer::{write_segments, Entry};
use super::segments::{plan, BodySources, Planned};
use super::warning::Warning;
use crate::initrd::segments::{spawn_named, InitrdWriter, SegmentSink, WrittenInitrd, PIECE};
use crate::log;
use crate::oci::cache::BlobCache;
use crate::oci::digest::Digest;
use crate::oci::platform::Platform;
use crate::oci::reference::PinnedImage;
use crate::oci::{Puller, ResolvedImage};

#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The files written, by kind ([`ArtifactKind::IMAGE`]).
    pub files: BTreeMap<ArtifactKind, Artifact>,
    /// The documents written beside them ([`Document::ALL`]).
    pub documents: BTreeMap<Document, Artifact>,
    /// Where each part of the initrd is.
    pub initrd_parts: Vec<super::spec::InitrdPart>,
    /// Things worth a warning: extended attributes newc cannot keep, names the kernel
    /// cannot create.
    pub warnings: Vec<Warning>,
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
    let documents: Vec<(Document, Vec<u8>)> =
        Document::ALL.iter().map(|d| (*d, d.bytes(&composition, &name))).collect();
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
    let shared = segment_cache.clone();
    let built = puller
        .with_repair(&pulled, move || assemble(&composition, &images, &cache, &shared, &output_dir, &name, &documents))
        .await;
    let Some(remote) = segment_cache.remote() else { return built };
    // The entries built here go to the shared tier before the apply ends.
    let (_, problems) = remote.settle().await;
    let mut artifacts = built?;
    if let Some(problems) = problems {
        artifacts.warnings.push(Warning::shared_cache(remote.repository(), &problems));
    }
    Ok(artifacts)
}

/// The blocking part: the kernel, the segments, the initrd, the cmdline, published.
fn assemble(
    composition: &Composition,
    images: &BTreeMap<PinnedImage, ResolvedImage>,
    cache: &BlobCache,
    segment_cache: &SegmentCache,
    output_dir: &Path,
    name: &str,
    documents: &[(Document, Vec<u8>)],
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
    // The kernel's files come from the segment cache; the kernel image is read only when
    // one of them is not there (resin_kernel's apply usually kept them).
    let mut kernel_source = KernelSource::for_spec(kernel_spec, kernel_image, cache, segment_cache);
    let kernel = extract_kernel(kernel_spec, &mut kernel_source, output_dir)?;
    let mut warnings = kernel.warnings.clone();
    let sources = BodySources::new(composition, images, cache, kernel_source, segment_cache.early_reads());

    // The initrd (microcode, the segments, the trailer's segment) is written on a thread of
    // its own as its segments come: a cached one at once, a new one once compressed whole,
    // while the next ones are built.
    let initrd = temporary(output_dir, "initrd")?;
    let initrd_path = initrd.path().display().to_string();
    let (parts, ordered) = channel();
    let (written, built) = channel();
    let (segments, initrd_written) = std::thread::scope(|scope| {
        let (file, ucode) = (initrd.as_file().try_clone(), kernel.ucode.as_ref());
        let writer =
            spawn_named(scope, "resin-initrd", move || write_in_order(file?, ucode, ordered, built, compression));
        let segments = initrd_segments(composition, sources, segment_cache, started, &parts, written);
        drop(parts);
        (segments, writer.join().expect("the initrd writer does not panic"))
    });
    let writing = || format!("writing the initrd to {initrd_path}");
    let (initrd_written, kept, segment_count) = match (segments, initrd_written) {
        // The writer failed first (a full disk...): its error is the one to report.
        (Err(e), Err(writer)) if e.is::<InitrdStopped>() => return Err(writer).with_context(writing),
        (Err(e), _) => return Err(e),
        (Ok(()), written) => written.with_context(writing)?,
    };
    warnings.extend(kept);
    let crate::initrd::segments::WrittenInitrd { sha256: initrd_sha256, size: initrd_size, cpio_bytes, parts } =
        initrd_written;
    let initrd_parts = parts.iter().map(super::spec::InitrdPart::from).collect();
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
    let written = [
        (ArtifactKind::Kernel, kernel_file, kernel_digest.to_string(), kernel_size),
        (ArtifactKind::Initrd, initrd, initrd_sha256, initrd_size),
    ];
    let access = Access::of(composition.is_sensitive());
    let (files, documents) = publish_artifacts(output_dir, name, written, &kernel_spec.cmdline, documents, access)?;
    log::debug(
        "assembly: artifacts written",
        &[("name", name.to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );
    Ok(Artifacts { files, documents, initrd_parts, warnings })
}

/// A part of the initrd, in order, and what it is: a cached segment, or `None` for the
/// next segment written.
type Part = (String, Option<CachedSegment>);

/// The initrd writer stopped: the reason is what it returned.
#[derive(Debug, thiserror::Error)]
#[error("the initrd writer stopped")]
struct InitrdStopped;

/// Every segment of the initrd, in order, each knowing the directories the ones before it
/// write: a segment in the cache gives its bytes and those directories; any other is built
/// (its layers read once) and written (cut into pieces, compressed on every core) while
/// the next ones are built. Each goes to `parts` in order as it is decided, and each
/// written one to `written` once compressed whole.
fn initrd_segments<'c>(
    composition: &'c Composition,
    mut sources: BodySources<'c>,
    segment_cache: &SegmentCache,
    started: Instant,
    parts: &Sender<Part>,
    written: Sender<CachedSegment>,
) -> Result<()> {
    let compression = composition.inputs.compression;
    // What every segment's bytes depend on besides its contents.
    let settings = json!({
        "format": ASSEMBLY_FORMAT,
        "compression": compression.identity(),
        "piece": PIECE,
        "compressor": crate::initrd::compression::fingerprint(compression),
    });
    let mut source = SegmentSource::new(segment_cache);
    let part = |part: Part| parts.send(part).map_err(|_| InitrdStopped);
    let done = move |segment| written.send(segment).map_err(|_| InitrdStopped.into());
    let build = |sink: &SegmentSink<'c, Entry>| {
        std::thread::scope(|scope| {
            let mut prefetch =
                Prefetch::new(scope, sources.cache(), segment_cache.early_reads(), read_ahead_limit(segment_cache));
            let mut planned: Vec<Option<Planned>> = plan(composition).into_iter().map(Some).collect();
            let mut existing: BTreeSet<Vec<u8>> = BTreeSet::new();
            for index in 0..planned.len() {
                let this = planned[index].take().expect("each segment is planned once");
                let describe = this.describe(composition);
                let key = this.key(composition, &settings, &existing);
                if let Some(cached) = source.cached(&key)? {
                    for directory in &cached.meta.directories {
                        existing.insert(hex::decode(directory).context("a cached segment's directory")?);
                    }
                    if let Some(image) = this.image() {
                        prefetch.forget(image);
                    }
                    part((describe, Some(cached)))?;
                    continue;
                }
                let later = planned.iter().enumerate().skip(index + 1);
                read_ahead(
                    &mut prefetch,
                    later,
                    |p| !segment_cache.has_local(&p.key(composition, &settings, &existing)),
                    &sources,
                );
                if let Some(image) = this.image() {
                    if let Some(flattened) = prefetch.take(image) {
                        sources.adopt(image.clone(), flattened);
                    }
                }
                // The files' segment holds sensitive_contents when an image has any: it
                // never leaves this machine.
                let private = matches!(this, Planned::Files) && composition.is_sensitive();
                let mut segment = this.build(&mut sources, &describe)?.into_segment(key, &existing);
                segment.tag.shared = !private;
                existing.extend(segment.tag.directories.iter().cloned());
                part((describe, None))?;
                sink.push(segment)?;
            }
            log::debug(
                "assembly: segments planned",
                &[
                    ("cached", source.hits.to_string()),
                    ("to_build", source.misses.to_string()),
                    ("elapsed_ms", started.elapsed().as_millis().to_string()),
                ],
            );
            Ok(())
        })
    };
    write_segments(compression, segment_cache, build, done)?;
    drop(sources);
    log::debug(
        "assembly: segments written",
        &[("segments", source.misses.to_string()), ("elapsed_ms", started.elapsed().as_millis().to_string())],
    );
    Ok(())
}

/// How many images are read ahead at once: one per core, and none when a shared segment
/// cache may hold the segments (reading an image ahead would do what fetching its segment
/// is about to make needless).
fn read_ahead_limit(segment_cache: &SegmentCache) -> usize {
    match segment_cache.remote() {
        Some(_) => 0,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// Queues for reading ahead the images of the `later` segments (with their indexes) that
/// `missing` guesses are to be built and that are not queued yet ([`super::prefetch`]).
fn read_ahead<'p, 'c: 'p, 'env>(
    prefetch: &mut Prefetch<'env>,
    later: impl Iterator<Item = (usize, &'p Option<Planned<'c>>)>,
    mut missing: impl FnMut(&Planned<'c>) -> bool,
    sources: &BodySources<'env>,
) {
    for (order, planned) in later {
        let Some(planned) = planned else { continue };
        let Some(image) = planned.image() else { continue };
        if !prefetch.is_known(image) && missing(planned) {
            prefetch.start(order, image, sources.image(image));
        }
    }
}

/// Writes the initrd into `file`: the microcode `ucode`, then each of the `parts` in order
/// (a cached segment, or the next of those `written`), then the trailer's segment.
/// Returns what was written, the warnings the segments keep (told where each segment is)
/// and how many segments there are.
fn write_in_order(
    file: std::fs::File,
    ucode: Option<&tempfile::NamedTempFile>,
    parts: Receiver<Part>,
    written: Receiver<CachedSegment>,
    compression: crate::initrd::Compression,
) -> Result<(WrittenInitrd, Vec<Warning>, usize)> {
    let mut ucode = ucode.map(tempfile::NamedTempFile::reopen).transpose()?;
    let mut initrd = InitrdWriter::new(file, ucode.as_mut().map(|file| file as &mut dyn std::io::Read))?;
    let (mut warnings, mut count) = (Vec::new(), 0);
    for (describe, part) in parts {
        let mut segment = match part {
            Some(cached) => cached,
            None => written.recv().context("a segment was not written")?,
        };
        warnings.extend(segment.meta.warnings.iter().map(|warning| Warning::kept(&describe, warning)));
        initrd.append(&mut segment)?;
        count += 1;
    }
    Ok((initrd.finish(compression)?, warnings, count))
}

/// Segments from the segment cache, or to build: every lookup counts as a hit or a miss.
struct SegmentSource<'a> {
    cache: &'a SegmentCache,
    hits: usize,
    misses: usize,
}

impl<'a> SegmentSource<'a> {
    fn new(cache: &'a SegmentCache) -> SegmentSource<'a> {
        SegmentSource { cache, hits: 0, misses: 0 }
    }

    /// The verified cache entry for `key`, or `None` when the segment is to be built.
    fn cached(&mut self, key: &Digest) -> Result<Option<CachedSegment>> {
        let found = self.cache.get(key)?;
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        Ok(found)
    }
}

/// Publishes the kernel and initrd (`written`: temporary files with their sha256 and
/// size), the command line and the documents together in `output_dir` ([`publish`]: all
/// or none). Returns the artifacts by kind and the documents.
fn publish_artifacts(
    output_dir: &Path,
    name: &str,
    written: [(ArtifactKind, tempfile::NamedTempFile, String, u64); 2],
    cmdline: &str,
    documents: &[(Document, Vec<u8>)],
    access: Access,
) -> Result<(BTreeMap<ArtifactKind, Artifact>, BTreeMap<Document, Artifact>)> {
    let mut cmdline_file = temporary(output_dir, "cmdline")?;
    cmdline_file.write_all(cmdline.as_bytes())?;
    let (cmdline_sha256, cmdline_size) = file_digest(cmdline_file.path())?;
    let (document_files, documents) = document_files(output_dir, name, documents)?;
    let all = written.into_iter().chain([(ArtifactKind::Cmdline, cmdline_file, cmdline_sha256, cmdline_size)]);
    let mut files = BTreeMap::new();
    let mut temporaries = Vec::new();
    for (kind, file, sha256, size) in all {
        files.insert(kind, Artifact { path: kind.path(output_dir, name), sha256, size });
        temporaries.push((kind, file));
    }
    let mut renames: Vec<(tempfile::NamedTempFile, &Path)> =
        temporaries.into_iter().map(|(kind, file)| (file, files[&kind].path.as_path())).collect();
    renames.extend(document_files.into_iter().map(|(document, file)| (file, documents[&document].path.as_path())));
    publish(renames, access)?;
    Ok((files, documents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::segment_cache::tests::{key, put};
    use crate::initrd::Compression;

    #[test]
    fn the_segment_source_counts_hits_and_misses() {
        let root = tempfile::tempdir().unwrap();
        let cache = SegmentCache::open(root.path(), 1 << 30).unwrap();
        put(&cache, &key(1), b"segment");
        let mut source = SegmentSource::new(&cache);
        assert!(source.cached(&key(1)).unwrap().is_some());
        assert!(source.cached(&key(2)).unwrap().is_none());
        assert!(source.cached(&key(1)).unwrap().is_some());
        assert_eq!((source.hits, source.misses), (2, 1));
    }

    #[test]
    fn cached_and_written_segments_are_written_in_initrd_order_with_their_warnings() {
        let root = tempfile::tempdir().unwrap();
        let cache = SegmentCache::open(root.path(), 1 << 30).unwrap();
        let write = |parts: Vec<Part>, written: Vec<CachedSegment>| {
            let (part, ordered) = channel();
            let (done, built) = channel();
            parts.into_iter().for_each(|p| part.send(p).unwrap());
            written.into_iter().for_each(|w| done.send(w).unwrap());
            drop((part, done));
            let file = tempfile::NamedTempFile::new_in(root.path()).unwrap();
            let ucode = tempfile::NamedTempFile::new_in(root.path()).unwrap();
            std::fs::write(ucode.path(), b"ucode").unwrap();
            let result =
                write_in_order(file.reopen().unwrap(), Some(&ucode), ordered, built, Compression::Uncompressed);
            result.map(|(initrd, warnings, count)| (initrd, warnings, count, std::fs::read(file.path()).unwrap()))
        };
        let parts = vec![
            ("init[0]".to_string(), None),
            ("onboot[0]".to_string(), Some(put(&cache, &key(2), b"cached"))),
            ("file".to_string(), None),
        ];
        let written = vec![put(&cache, &key(1), b"first"), put(&cache, &key(3), b"last")];
        let (initrd, warnings, count, bytes) = write(parts, written).unwrap();
        assert_eq!(count, 3);
        assert!(bytes.starts_with(b"ucodefirstcachedlast070701"), "{:?}", String::from_utf8_lossy(&bytes));
        assert_eq!((initrd.size, initrd.sha256), (bytes.len() as u64, crate::oci::digest::sha256(&bytes).to_string()));
        let details: Vec<&str> = warnings.iter().map(|w| w.detail.as_str()).collect();
        assert_eq!(details, ["init[0]: b", "onboot[0]: b", "file: b"]);
        let missing = write(vec![("file".to_string(), None)], vec![]).unwrap_err();
        assert_eq!(missing.to_string(), "a segment was not written");
    }

    #[test]
    fn artifacts_are_published_together_under_the_image_name() {
        let dir = tempfile::tempdir().unwrap();
        let temporary_with = |label: &str, bytes: &[u8]| {
            let mut file = temporary(dir.path(), label).unwrap();
            file.write_all(bytes).unwrap();
            let sha256 = crate::oci::digest::sha256(bytes).to_string();
            (file, sha256, bytes.len() as u64)
        };
        let (kernel, kernel_sha, kernel_size) = temporary_with("kernel", b"kernel bytes");
        let (initrd, initrd_sha, initrd_size) = temporary_with("initrd", b"initrd bytes");
        let written = [
            (ArtifactKind::Kernel, kernel, kernel_sha.clone(), kernel_size),
            (ArtifactKind::Initrd, initrd, initrd_sha, initrd_size),
        ];
        let documents = [(Document::Sbom, b"{}".to_vec()), (Document::LinuxkitYaml, b"kernel: {}\n".to_vec())];
        let (files, documents) =
            publish_artifacts(dir.path(), "img", written, "console=ttyS0", &documents, Access::of(true)).unwrap();
        assert_eq!(files.len(), 3);
        let kernel = &files[&ArtifactKind::Kernel];
        assert_eq!((kernel.path.clone(), kernel.sha256.as_str()), (dir.path().join("img-kernel"), kernel_sha.as_str()));
        let cmdline = &files[&ArtifactKind::Cmdline];
        assert_eq!(std::fs::read(&cmdline.path).unwrap(), b"console=ttyS0");
        assert_eq!(cmdline.sha256, crate::oci::digest::sha256(b"console=ttyS0").to_string());
        let sbom = &documents[&Document::Sbom];
        assert_eq!((sbom.path.clone(), sbom.size), (dir.path().join("img-sbom.spdx.json"), 2));
        assert_eq!(std::fs::read(dir.path().join("img-linuxkit.yml")).unwrap(), b"kernel: {}\n");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files[&ArtifactKind::Initrd].path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a sensitive image is readable by its owner only");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 5, "no temporary file is left: {left:?}");
    }
}
