//! Writing the initrd: each segment is a newc stream compressed on its own (segment `n`
//! numbers its inodes in its own namespace, devminor `n`), written to its own temporary
//! file, several at once (one per core); then the initrd is the microcode cpio (when the
//! kernel sets one), one gzip member made of the segments in order and the cpio trailer.
//! Segments never hold a whole image in memory: file contents stream from the layers.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::artifacts::temporary;
use crate::initrd::gzip::{self, SegmentEncoder, SegmentSummary};
use crate::initrd::newc::{self, Metadata, SegmentWriter, S_IFDIR};
use crate::oci::hashing::HashingWriter;
use crate::rootfs::spool::Spool;
use crate::rootfs::tree::Tree;

fn directory_meta() -> Metadata {
    Metadata { mode: S_IFDIR | 0o755, uid: 0, gid: 0, mtime: crate::rootfs::tree::GENERATED_MTIME, rdev: (0, 0) }
}

/// What one segment of the initrd holds.
#[allow(clippy::large_enum_variant)] // a few dozen per image: not worth a box
pub enum SegmentBody<'a> {
    /// A flattened tree under a prefix, the spool holding its files' data, and bundle
    /// scaffolding (directories, then files) written before it.
    Tree {
        tree: Tree,
        prefix: Vec<u8>,
        spool: Spool,
        scaffold_directories: Vec<Vec<u8>>,
        scaffold_files: Vec<(Vec<u8>, &'a [u8])>,
        describe: String,
    },
    /// One generated file.
    File { path: &'static [u8], contents: Vec<u8> },
}

pub struct Segment<'a> {
    pub body: SegmentBody<'a>,
    /// Directories written by the segments before this one.
    pub existing: BTreeSet<Vec<u8>>,
}

/// A segment written to its own temporary file, compressed.
pub struct WrittenSegment {
    pub file: tempfile::NamedTempFile,
    pub summary: SegmentSummary,
    pub cpio_bytes: u64,
    /// Names written that the kernel cannot create, with the reason.
    pub uncreatable: Vec<(Vec<u8>, String)>,
}

impl Segment<'_> {
    pub fn describe(&self) -> String {
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
        SegmentBody::Tree { tree, prefix, spool, scaffold_directories, scaffold_files, describe } => {
            for directory in scaffold_directories {
                writer.entry(directory, &directory_meta(), 0, std::io::empty())?;
            }
            for (path, bytes) in scaffold_files {
                let meta = Metadata { mode: newc::S_IFREG | 0o644, ..directory_meta() };
                writer.entry(path, &meta, bytes.len() as u64, &bytes[..])?;
            }
            tree.write(prefix, &mut writer, spool, &segment.existing).with_context(|| describe.clone())?;
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
pub fn write_segments(segments: &[Segment], output_dir: &Path) -> Result<Vec<WrittenSegment>> {
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
pub fn write_initrd(
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

/// The segments in order, each knowing the directories the ones before it write (a
/// directory a layer only implies is then not written twice).
pub fn in_order(bodies: Vec<SegmentBody<'_>>) -> Vec<Segment<'_>> {
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
    segments
}
