//! Writing the initrd. Each segment is a newc stream whose inodes are numbered from 1 in
//! its own namespace: its device number, 64 bits of its key ([`super::segments::Planned::key`]), so its bytes
//! do not depend on where it sits. A segment's stream is cut into [`PIECE`]-byte pieces
//! that one compressor per core compresses (each ending in a full flush) into a new entry
//! of the segment cache. The initrd is then the microcode cpio (when the kernel sets one),
//! one gzip member made of the segments (cached or new) in order, and the cpio trailer.
//! File contents stream from the spools; memory holds a few pieces at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::build::Warning;
use super::compose::Compression;
use super::segment_cache::{CachedSegment, NewSegment, SegmentCache, SegmentMeta};
use crate::initrd::gzip::{self, SegmentEncoder, SegmentSummary};
use crate::initrd::newc::{self, Metadata, SegmentWriter, S_IFDIR};
use crate::oci::digest::Digest;
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
    /// Nothing (a planned segment that turned out to have nothing to hold).
    Empty,
}

pub struct Segment<'a> {
    pub body: SegmentBody<'a>,
    /// Directories written by the segments before this one.
    pub existing: BTreeSet<Vec<u8>>,
    /// The device number of every entry (newc's devmajor, devminor), which keeps the
    /// segment's inode numbers apart from every other segment's ([`device_of`] its key).
    pub device: (u32, u32),
    /// What the segment's bytes are a function of: its name in the segment cache.
    pub key: Digest,
    /// The directories it writes (its scaffolding's and its tree's).
    pub directories: Vec<Vec<u8>>,
    /// What building its tree warned about.
    pub warnings: Vec<Warning>,
}

impl Segment<'_> {
    pub fn describe(&self) -> String {
        match &self.body {
            SegmentBody::Tree { describe, .. } => describe.clone(),
            SegmentBody::File { path, .. } => String::from_utf8_lossy(path).into_owned(),
            SegmentBody::Empty => "nothing".into(),
        }
    }
}

/// Uncompressed cpio bytes compressed as one piece. Segments are cut into pieces of this
/// size, compressed in parallel (so every core stays busy however unequal the packages)
/// and each ended with a full flush. Fixed, so the bytes do not depend on the machine.
pub const PIECE: usize = 1 << 20;

/// One piece of one segment's cpio stream, to compress.
struct Piece {
    segment: usize,
    index: usize,
    bytes: Vec<u8>,
}

/// Cuts a segment's cpio stream into pieces for the compressors.
struct Cutter<'q> {
    segment: usize,
    pieces: usize,
    buffer: Vec<u8>,
    queue: &'q std::sync::mpsc::SyncSender<Piece>,
    stop: &'q AtomicBool,
}

impl Cutter<'_> {
    fn send(&mut self) -> io::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("stopped: another segment failed"));
        }
        let bytes = std::mem::replace(&mut self.buffer, Vec::with_capacity(PIECE));
        let piece = Piece { segment: self.segment, index: self.pieces, bytes };
        self.queue.send(piece).map_err(|_| io::Error::other("the compressors stopped"))?;
        self.pieces += 1;
        Ok(())
    }

    /// Sends what is left; returns the number of pieces.
    fn finish(mut self) -> io::Result<usize> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(self.pieces)
    }
}

impl Write for Cutter<'_> {
    fn write(&mut self, input: &[u8]) -> io::Result<usize> {
        let n = input.len().min(PIECE - self.buffer.len());
        self.buffer.extend_from_slice(&input[..n]);
        if self.buffer.len() == PIECE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A segment's compressed pieces, written to its cache entry in order as they arrive.
struct Output {
    entry: NewSegment,
    next: usize,
    waiting: BTreeMap<usize, (Vec<u8>, SegmentSummary)>,
    crc: crc32fast::Hasher,
    length: u64,
    error: Option<anyhow::Error>,
}

impl Output {
    fn new(cache: &SegmentCache) -> Result<Output> {
        Ok(Output {
            entry: cache.create()?,
            next: 0,
            waiting: BTreeMap::new(),
            crc: crc32fast::Hasher::new(),
            length: 0,
            error: None,
        })
    }

    fn add(&mut self, index: usize, compressed: Vec<u8>, summary: SegmentSummary) -> io::Result<()> {
        self.waiting.insert(index, (compressed, summary));
        while let Some((compressed, summary)) = self.waiting.remove(&self.next) {
            self.entry.write_all(&compressed)?;
            self.crc.combine(&crc32fast::Hasher::new_with_initial_len(summary.crc, summary.length));
            self.length += summary.length;
            self.next += 1;
        }
        Ok(())
    }
}

/// What one segment's producer learnt while writing its cpio stream.
struct Produced {
    pieces: usize,
    cpio_bytes: u64,
    uncreatable: Vec<(Vec<u8>, String)>,
}

/// Writes one segment's cpio stream into `cutter`.
fn produce(segment: &Segment, mut cutter: Cutter<'_>) -> Result<Produced> {
    let mut writer = SegmentWriter::new(&mut cutter, segment.device);
    match &segment.body {
        SegmentBody::Tree { tree, prefix, spool, scaffold_directories, scaffold_files, describe } => {
            for directory in scaffold_directories {
                writer.entry(directory, &directory_meta(), 0, io::empty())?;
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
        SegmentBody::Empty => {}
    }
    let (cpio_bytes, uncreatable) = (writer.written(), writer.uncreatable().to_vec());
    drop(writer);
    Ok(Produced { pieces: cutter.finish()?, cpio_bytes, uncreatable })
}

/// Hands segments, in order, to [`write_segments`]'s writers.
pub struct SegmentSink<'c> {
    segments: std::sync::mpsc::SyncSender<Segment<'c>>,
}

/// The writers stopped early: the reason is reported by [`write_segments`].
#[derive(Debug, thiserror::Error)]
#[error("the segment writers stopped")]
struct WritersStopped;

impl<'c> SegmentSink<'c> {
    /// Queues the next segment (waiting while the writers are busy with earlier ones, so
    /// only a few trees wait in memory).
    pub fn push(&self, segment: Segment<'c>) -> Result<()> {
        self.segments.send(segment).map_err(|_| WritersStopped.into())
    }
}

/// A segment written: what its cache entry needs besides the bytes.
struct Done {
    key: Digest,
    directories: Vec<Vec<u8>>,
    warnings: Vec<Warning>,
    produced: Produced,
}

/// Writes the segments `build` pushes into new entries of the segment cache, while
/// `build` goes on: one thread writes their cpio streams in order, cut into pieces that
/// one compressor per core compresses (as `compression` says). Memory holds a few pieces and a few
/// segments at a time. Returns the entries, open, in the order they were pushed.
pub fn write_segments<'c>(
    compression: Compression,
    cache: &SegmentCache,
    build: impl FnOnce(&SegmentSink<'c>) -> Result<()>,
) -> Result<Vec<CachedSegment>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let describe =
        |what: &str| format!("writing initrd segment ({what}) to the segment cache {}", cache.dir().display());
    let outputs: Mutex<Vec<std::sync::Arc<Mutex<Output>>>> = Mutex::new(Vec::new());
    let output = |index: usize| outputs.lock().expect("outputs lock")[index].clone();
    let stop = AtomicBool::new(false);
    let (queue, pieces) = std::sync::mpsc::sync_channel::<Piece>(workers);
    let pieces = Mutex::new(pieces);
    let (sink, segments) = std::sync::mpsc::sync_channel::<Segment<'c>>(1);
    let (built, done) = std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let Ok(piece) = pieces.lock().expect("piece queue lock").recv() else { break };
                let compressed = compress(compression, piece.bytes);
                let output = output(piece.segment);
                let mut output = output.lock().expect("segment output lock");
                let added = compressed.and_then(|(bytes, summary)| output.add(piece.index, bytes, summary));
                if let Err(e) = added {
                    output.error.get_or_insert(e.into());
                    stop.store(true, Ordering::SeqCst);
                }
            });
        }
        let (outputs, stop) = (&outputs, &stop);
        let producer = scope.spawn(move || {
            let queue = queue;
            // Each segment started, with what it is: its entry failing to open, or its
            // writing failing, ends the writing.
            let mut done: Vec<(String, Result<Done>)> = Vec::new();
            for (index, segment) in segments.iter().enumerate() {
                let what = segment.describe();
                let result = Output::new(cache).and_then(|output| {
                    outputs.lock().expect("outputs lock").push(Mutex::new(output).into());
                    let cutter =
                        Cutter { segment: index, pieces: 0, buffer: Vec::with_capacity(PIECE), queue: &queue, stop };
                    produce(&segment, cutter)
                });
                let Segment { key, directories, warnings, .. } = segment;
                let failed = result.is_err();
                done.push((what, result.map(|produced| Done { key, directories, warnings, produced })));
                if failed || stop.load(Ordering::SeqCst) {
                    stop.store(true, Ordering::SeqCst);
                    break;
                }
            }
            done
        });
        let built = build(&SegmentSink { segments: sink });
        if built.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        let done = producer.join().expect("the segment producer does not panic");
        (built, done)
    });
    // The first real failure: a compressor's (a full disk...), the build's own (a damaged
    // blob, which must reach the caller as it is), or the segment writer's.
    let outputs = outputs.into_inner().expect("outputs lock");
    for ((what, _), output) in done.iter().zip(&outputs) {
        if let Some(error) = output.lock().expect("segment output lock").error.take() {
            return Err(error).with_context(|| describe(what));
        }
    }
    if let Err(error) = built {
        if !error.is::<WritersStopped>() {
            return Err(error);
        }
    }
    let mut written = Vec::new();
    let mut outputs = outputs.into_iter();
    for (what, done) in done {
        let what = describe(&what);
        let done = done.with_context(|| what.clone())?;
        let output = outputs.next().context("a segment without its output")?;
        let output = std::sync::Arc::into_inner(output).expect("the writers are done").into_inner().expect("lock");
        if output.next != done.produced.pieces {
            bail!("{what}: {} of {} pieces were compressed", output.next, done.produced.pieces);
        }
        debug_assert_eq!(done.produced.cpio_bytes, output.length);
        let mut warnings: Vec<(String, String)> = done.warnings.into_iter().map(|w| (w.summary, w.detail)).collect();
        warnings.extend(done.produced.uncreatable.iter().map(|(name, reason)| {
            let warning = Warning::uncreatable(name, reason);
            (warning.summary, warning.detail)
        }));
        let meta = SegmentMeta {
            crc: output.crc.finalize(),
            length: output.length,
            directories: done.directories.iter().map(hex::encode).collect(),
            warnings,
        };
        written.push(output.entry.finish(cache, &done.key, &meta).with_context(|| what.clone())?);
    }
    Ok(written)
}

/// A fingerprint of what the compressor writes at `compression` (the sha256 of a fixed,
/// varied input compressed): part of every segment key, so a segment compressed by
/// another version of zlib-rs, whose bytes could differ, is never reused.
pub fn compressor_fingerprint(compression: Compression) -> String {
    let mut input = Vec::with_capacity(64 << 10);
    let mut state: u32 = 0x1234_5678;
    while input.len() < 64 << 10 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let [high, _, _, low] = state.to_be_bytes();
        // Half text-like (few symbols, compressible), half noise.
        input.push(if low & 1 == 0 { b'a' + high % 8 } else { high });
    }
    let (bytes, _) = compress(compression, input).expect("compressing in memory cannot fail");
    crate::oci::digest::sha256(&bytes).digest()[..16].to_string()
}

/// One piece, compressed (or not): the bytes and the CRC32 and length of the input.
fn compress(compression: Compression, piece: Vec<u8>) -> io::Result<(Vec<u8>, SegmentSummary)> {
    match compression {
        Compression::Gzip { level } => {
            let mut encoder = SegmentEncoder::with_level(Vec::with_capacity(piece.len() / 2), level);
            encoder.write_all(&piece)?;
            encoder.finish()
        }
        Compression::Uncompressed => {
            let length = piece.len() as u64;
            Ok((piece, SegmentSummary { crc: 0, length }))
        }
    }
}

/// Writes the initrd: the microcode cpio (if any), then the segments (cache entries, in
/// order) and the cpio trailer, as one gzip member or as they are. Returns its sha256,
/// size and uncompressed cpio size.
pub fn write_initrd(
    initrd: &tempfile::NamedTempFile,
    ucode: Option<&tempfile::NamedTempFile>,
    segments: &mut [CachedSegment],
    compression: Compression,
) -> Result<(String, u64, u64)> {
    let mut out = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, initrd.as_file().try_clone()?));
    if let Some(ucode) = ucode {
        io::copy(&mut ucode.reopen()?, &mut out).context("copying the microcode cpio")?;
    }
    let gzip_level = match compression {
        Compression::Gzip { level } => Some(level),
        Compression::Uncompressed => None,
    };
    if gzip_level.is_some() {
        gzip::write_header(&mut out)?;
    }
    let mut summaries = Vec::new();
    let mut cpio_bytes = 0;
    for segment in segments.iter_mut() {
        segment.copy_to(&mut out)?;
        summaries.push(SegmentSummary { crc: segment.meta.crc, length: segment.meta.length });
        cpio_bytes += segment.meta.length;
    }
    match gzip_level {
        Some(level) => {
            let mut trailer = SegmentEncoder::with_level(&mut out, level);
            cpio_bytes += newc::write_trailer(&mut trailer, cpio_bytes)?;
            let (_, summary) = trailer.finish()?;
            summaries.push(summary);
            gzip::write_footer(&mut out, &summaries)?;
        }
        None => cpio_bytes += newc::write_trailer(&mut out, cpio_bytes)?,
    }
    out.flush()?;
    let (sha256, size) = out.finish();
    Ok((sha256.to_string(), size, cpio_bytes))
}

/// A segment's device number: the first 64 bits of its key, as (major, minor).
pub fn device_of(key: &Digest) -> (u32, u32) {
    let hex = key.digest();
    let part = |range: std::ops::Range<usize>| u32::from_str_radix(&hex[range], 16).expect("a sha256 digest is hex");
    (part(0..8), part(8..16))
}
