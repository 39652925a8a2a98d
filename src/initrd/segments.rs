//! Writing the initrd's segments and the initrd. Each segment is a newc stream whose
//! inodes are numbered from 1 in its own namespace (its device number, which the caller
//! derives from what the segment holds), so its bytes do not depend on where it sits. A
//! segment's stream is cut into [`PIECE`]-byte pieces that one compressor per core
//! compresses into the segment's output in a [`SegmentStore`] (the caller's: a cache, or
//! memory): gzip members or zstd frames that each end where an entry ends (a piece cut
//! inside a long entry continues its member: for gzip, a deflate stream made to go on;
//! for zstd, a frame fed in order to zstd's workers). Each segment compressed whole goes
//! to the caller in order while the next ones are written. The initrd is the microcode
//! cpio (when the kernel sets one), the segments ([`Stored`]) in order and the cpio
//! trailer's segment, each of them whole members or frames ([`InitrdWriter`]), written as
//! the segments come. File contents stream from the spools; memory holds a few pieces at
//! a time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use super::compression::{Compression, Compressor};
use super::gzip::{self, PieceDeflater, SegmentSummary};
use super::newc::{self, Metadata, SegmentWriter, S_IFDIR};
use super::zstd::{FrameCompressor, LongFrame, LongFrames};
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

/// One segment to write, and the caller's `tag` for it (what it is kept under).
pub struct Segment<'a, T> {
    pub body: SegmentBody<'a>,
    /// Directories written by the segments before this one.
    pub existing: BTreeSet<Vec<u8>>,
    /// The device number of every entry (newc's devmajor, devminor), which keeps the
    /// segment's inode numbers apart from every other segment's.
    pub device: (u32, u32),
    pub tag: T,
}

impl<T> Segment<'_, T> {
    pub fn describe(&self) -> String {
        match &self.body {
            SegmentBody::Tree { describe, .. } => describe.clone(),
            SegmentBody::File { path, .. } => String::from_utf8_lossy(path).into_owned(),
            SegmentBody::Empty => "nothing".into(),
        }
    }
}

/// Uncompressed cpio bytes compressed as one piece, at most. Segments are cut into pieces
/// of this size, or (compressed) at the first entry end after half of it, compressed in
/// parallel (so every core stays busy however unequal the packages). Fixed, so the bytes
/// do not depend on the machine.
pub const PIECE: usize = 1 << 20;

/// Where a piece sits in its compressed member. A gzip member or zstd frame must end with
/// an entry ([`crate::initrd::gzip`], [`crate::initrd::zstd`]), so an entry longer than a
/// piece makes a member of several pieces. Uncompressed pieces are always [`Part::Whole`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Whole,
    First,
    Middle,
    Last,
}

impl Part {
    fn starts_member(self) -> bool {
        matches!(self, Part::Whole | Part::First)
    }

    fn ends_member(self) -> bool {
        matches!(self, Part::Whole | Part::Last)
    }
}

/// One piece of one segment's cpio stream, to compress: the first `length` bytes of its
/// buffer.
struct Piece {
    segment: usize,
    index: usize,
    part: Part,
    buffer: Vec<u8>,
    length: usize,
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        &self.buffer[..self.length]
    }
}

/// Piece buffers ([`PIECE`] bytes, zeroed once) that the compressors are done with, for
/// the next pieces: the producer reads file data straight into them.
#[derive(Default)]
struct SpareBuffers(Mutex<Vec<Vec<u8>>>);

impl SpareBuffers {
    /// A few more than can be in use at once (queued, compressing, filling).
    const KEPT: usize = 8;

    fn take(&self) -> Vec<u8> {
        self.0.lock().expect("spare buffers lock").pop().unwrap_or_else(|| vec![0; PIECE])
    }

    fn give(&self, buffer: Vec<u8>) {
        let mut spare = self.0.lock().expect("spare buffers lock");
        if buffer.len() == PIECE && spare.len() < Self::KEPT {
            spare.push(buffer);
        }
    }
}

/// Cuts a segment's cpio stream into pieces for the compressors: every [`PIECE`] bytes,
/// or (`at_entries`) at the first entry end after half a piece, where a piece that fills
/// up inside an entry continues its member into the next one.
struct Cutter<'q> {
    segment: usize,
    pieces: usize,
    /// The piece being filled: its first `filled` bytes.
    buffer: Vec<u8>,
    filled: usize,
    spare: &'q SpareBuffers,
    at_entries: bool,
    /// The last piece sent left its member open: the next one continues it.
    open: bool,
    queue: &'q SyncSender<Piece>,
    stop: &'q AtomicBool,
}

impl Cutter<'_> {
    fn send(&mut self, ends_member: bool) -> io::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("stopped: another segment failed"));
        }
        let part = match (self.open, ends_member) {
            (false, true) => Part::Whole,
            (false, false) => Part::First,
            (true, false) => Part::Middle,
            (true, true) => Part::Last,
        };
        self.open = !ends_member;
        let buffer = std::mem::replace(&mut self.buffer, self.spare.take());
        let length = std::mem::take(&mut self.filled);
        let piece = Piece { segment: self.segment, index: self.pieces, part, buffer, length };
        self.queue.send(piece).map_err(|_| io::Error::other("the compressors stopped"))?;
        self.pieces += 1;
        Ok(())
    }

    /// Sends what is left (the end of a segment is the end of an entry); returns the
    /// number of pieces.
    fn finish(mut self) -> io::Result<usize> {
        if self.filled > 0 {
            self.send(true)?;
        }
        debug_assert!(!self.open, "a member left open");
        Ok(self.pieces)
    }
}

impl Cutter<'_> {
    /// Room in the piece being filled, sending it first if it is full (more bytes of the
    /// same entry: with `at_entries`, its member goes on).
    fn room(&mut self) -> io::Result<&mut [u8]> {
        if self.filled == PIECE {
            self.send(!self.at_entries)?;
        }
        Ok(&mut self.buffer[self.filled..])
    }
}

impl Drop for Cutter<'_> {
    fn drop(&mut self) {
        self.spare.give(std::mem::take(&mut self.buffer));
    }
}

impl Write for Cutter<'_> {
    fn write(&mut self, input: &[u8]) -> io::Result<usize> {
        let room = self.room()?;
        let n = input.len().min(room.len());
        room[..n].copy_from_slice(&input[..n]);
        self.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl newc::EntrySink for Cutter<'_> {
    fn entry_end(&mut self) -> io::Result<()> {
        if self.at_entries && self.filled >= PIECE / 2 {
            self.send(true)?;
        }
        Ok(())
    }

    /// Reads the data straight into the pieces.
    fn write_data(&mut self, data: &mut dyn Read, size: u64, _: &mut crate::copy::Buffer) -> io::Result<u64> {
        let mut left = size;
        while left > 0 {
            let room = self.room()?;
            let wanted = room.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match data.read(&mut room[..wanted]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.filled += n;
            left -= n as u64;
        }
        Ok(size - left)
    }
}

/// A segment's compressed pieces, written to its cache entry in order as they arrive.
struct Output<W> {
    /// Taken when the segment is complete.
    entry: Option<W>,
    next: usize,
    waiting: BTreeMap<usize, (Part, Vec<u8>, SegmentSummary)>,
    /// The segment's cpio bytes so far.
    summary: SegmentSummary,
    /// gzip: each member gets its header and trailer here, `member` summing its pieces.
    gzip: bool,
    member: SegmentSummary,
    error: Option<anyhow::Error>,
    /// Open zstd frames, under the index of the piece that continues each.
    frames: BTreeMap<usize, LongFrame>,
    /// The segment and its store, for messages.
    what: String,
}

impl<W: Write> Output<W> {
    fn new(entry: W, compression: Compression, what: String) -> Output<W> {
        Output {
            entry: Some(entry),
            next: 0,
            waiting: BTreeMap::new(),
            summary: SegmentSummary::default(),
            gzip: matches!(compression, Compression::Gzip { .. }),
            member: SegmentSummary::default(),
            error: None,
            frames: BTreeMap::new(),
            what,
        }
    }

    fn add(&mut self, index: usize, part: Part, compressed: Vec<u8>, summary: SegmentSummary) -> io::Result<()> {
        self.waiting.insert(index, (part, compressed, summary));
        while let Some((part, compressed, summary)) = self.waiting.remove(&self.next) {
            let entry = self.entry.as_mut().ok_or_else(|| io::Error::other("a piece after the segment's end"))?;
            if self.gzip && part.starts_member() {
                entry.write_all(&gzip::HEADER)?;
                self.member = SegmentSummary::default();
            }
            entry.write_all(&compressed)?;
            self.member = self.member.then(summary);
            if self.gzip && part.ends_member() {
                entry.write_all(&gzip::trailer(self.member))?;
            }
            self.summary = self.summary.then(summary);
            self.next += 1;
        }
        Ok(())
    }
}

/// Sets `stop` when the thread holding it panics, so that no other thread waits for what
/// it would have done (the panic itself reaches the caller when the threads are joined).
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// A segment's output, and the signal that a piece of it was compressed.
struct Slot<W> {
    output: Mutex<Output<W>>,
    compressed: Condvar,
}

/// Compresses a piece of a zstd frame that spans pieces: a first piece starts a frame
/// (waiting for the context while another frame holds it), the others continue the one
/// left in the segment's slot by the piece before (waiting for it). `None`: the writing
/// stopped meanwhile.
fn part_of_frame<W>(
    piece: &Piece,
    slot: &Slot<W>,
    shared: &Shared<W>,
) -> io::Result<Option<(Vec<u8>, SegmentSummary)>> {
    let Some(frames) = &shared.long_frames else {
        return Err(io::Error::other("only zstd members span pieces"));
    };
    let summary = SegmentSummary { crc: 0, length: piece.length as u64 };
    let frame = if piece.part == Part::First {
        frames.start(&shared.stop)?
    } else {
        let mut output = slot.output.lock().expect("segment output lock");
        loop {
            if let Some(frame) = output.frames.remove(&piece.index) {
                break Some(frame);
            }
            if shared.stop.load(Ordering::SeqCst) {
                break None;
            }
            let wait = slot.compressed.wait_timeout(output, Duration::from_millis(50));
            output = wait.expect("segment output lock").0;
        }
    };
    let Some(mut frame) = frame else { return Ok(None) };
    if piece.part == Part::Last {
        return Ok(Some((frame.finish(piece.bytes())?, summary)));
    }
    let compressed = frame.part(piece.bytes())?;
    slot.output.lock().expect("segment output lock").frames.insert(piece.index + 1, frame);
    slot.compressed.notify_all();
    Ok(Some((compressed, summary)))
}

/// What one segment's producer learnt while writing its cpio stream.
struct Produced {
    pieces: usize,
    cpio_bytes: u64,
    uncreatable: Vec<(Vec<u8>, String)>,
}

/// Writes one segment's cpio stream into `cutter`.
fn produce<T>(segment: &Segment<T>, mut cutter: Cutter<'_>) -> Result<Produced> {
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
            tree.walk(prefix, spool, &segment.existing, |entry| writer.walked(entry))
                .with_context(|| describe.clone())?;
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

/// Where compressed segments go: a new output for each segment, written in order.
pub trait SegmentStore: Sync {
    type Output: Write + Send;
    /// An output for the next segment.
    fn create(&self) -> Result<Self::Output>;
    /// The store, for messages ("the segment cache <dir>").
    fn describe(&self) -> String;
}

/// A segment written: its output (every byte in it), CRC32 and length of its cpio bytes,
/// the names newc could not carry and why, and the caller's tag.
pub struct Compressed<W, T> {
    pub output: W,
    pub summary: SegmentSummary,
    pub uncreatable: Vec<(Vec<u8>, String)>,
    pub tag: T,
    /// Names the segment and the store, for messages.
    pub what: String,
}

/// Hands segments, in order, to [`write_segments`]'s writers.
pub struct SegmentSink<'c, T> {
    segments: std::sync::mpsc::SyncSender<Segment<'c, T>>,
}

/// The writers stopped early: the reason is reported by [`write_segments`].
#[derive(Debug, thiserror::Error)]
#[error("the segment writers stopped")]
struct WritersStopped;

impl<'c, T> SegmentSink<'c, T> {
    /// Queues the next segment (waiting while the writers are busy with earlier ones, so
    /// only a few trees wait in memory).
    pub fn push(&self, segment: Segment<'c, T>) -> Result<()> {
        self.segments.send(segment).map_err(|_| WritersStopped.into())
    }
}

/// What the producer and the compressors share: each segment's output, and the signal to
/// stop.
struct Shared<W> {
    slots: Mutex<Vec<Arc<Slot<W>>>>,
    stop: AtomicBool,
    /// The context of zstd frames that span pieces.
    long_frames: Option<Arc<LongFrames>>,
    spare: SpareBuffers,
}

/// One compressor thread: compresses the pieces it takes from `pieces` into their
/// segments' outputs, until the queue closes.
fn compress_pieces<W: Write>(mut compressor: Compressor, pieces: &Mutex<Receiver<Piece>>, shared: &Shared<W>) {
    let _guard = StopOnPanic(&shared.stop);
    loop {
        let Ok(piece) = pieces.lock().expect("piece queue lock").recv() else { break };
        let slot = shared.slots.lock().expect("slots lock")[piece.segment].clone();
        let (index, part) = (piece.index, piece.part);
        let compressed = match (&mut compressor, part) {
            // Every gzip piece is compressed on its own; the output frames the members.
            (Compressor::Gzip { deflater }, _) => deflater.deflate(piece.bytes(), !part.ends_member()).map(Some),
            (_, Part::Whole) => compressor.whole(piece.bytes()).map(Some),
            _ => part_of_frame(&piece, &slot, shared),
        };
        shared.spare.give(piece.buffer);
        let mut output = slot.output.lock().expect("segment output lock");
        let added = match compressed {
            Ok(Some((bytes, summary))) => output.add(index, part, bytes, summary),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            output.error.get_or_insert(e.into());
            shared.stop.store(true, Ordering::SeqCst);
        }
        drop(output);
        slot.compressed.notify_all();
    }
}

/// A segment the producer is done with: its index, and what writing its cpio stream learnt
/// (or why it failed, saying which segment).
type Done<T> = (usize, Result<(Produced, T)>);

/// The producer thread: writes each segment's cpio stream, in order, into pieces for the
/// compressors, and sends each one it is done with to the finisher. Its output failing to
/// open, or its writing failing, ends the writing.
fn produce_segments<T, S: SegmentStore>(
    store: &S,
    compression: Compression,
    describe: impl Fn(&str) -> String,
    segments: Receiver<Segment<'_, T>>,
    queue: SyncSender<Piece>,
    done: Sender<Done<T>>,
    shared: &Shared<S::Output>,
) {
    let stop = &shared.stop;
    let _guard = StopOnPanic(stop);
    for (index, segment) in segments.iter().enumerate() {
        let what = describe(&segment.describe());
        let result = store.create().and_then(|output| {
            let output = Output::new(output, compression, what.clone());
            let slot = Slot { output: Mutex::new(output), compressed: Condvar::new() };
            shared.slots.lock().expect("slots lock").push(Arc::new(slot));
            let cutter = Cutter {
                segment: index,
                pieces: 0,
                buffer: shared.spare.take(),
                filled: 0,
                spare: &shared.spare,
                at_entries: !matches!(compression, Compression::Uncompressed),
                open: false,
                queue: &queue,
                stop,
            };
            produce(&segment, cutter)
        });
        let failed = result.is_err();
        // The finisher stopped: `stop` says so.
        let _ = done.send((index, result.map(|produced| (produced, segment.tag)).context(what)));
        if failed || stop.load(Ordering::SeqCst) {
            stop.store(true, Ordering::SeqCst);
            break;
        }
    }
}

/// The finisher thread: waits for each segment the producer is done with to be
/// compressed whole, in order, and hands it to `finished`. Returns the first failure of
/// the producer or of `finished` (a compressor's stays in its segment's output).
fn finish_segments<T, W: Write>(
    done: Receiver<Done<T>>,
    shared: &Shared<W>,
    mut finished: impl FnMut(Compressed<W, T>) -> Result<()>,
) -> Result<()> {
    let _guard = StopOnPanic(&shared.stop);
    let stopped = |error: anyhow::Error| {
        shared.stop.store(true, Ordering::SeqCst);
        Err(error)
    };
    for (index, result) in done {
        let (produced, tag) = match result {
            Ok(produced) => produced,
            Err(e) => return stopped(e),
        };
        let slot = shared.slots.lock().expect("slots lock")[index].clone();
        let mut output = slot.output.lock().expect("segment output lock");
        while output.next < produced.pieces {
            if output.error.is_some() || shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            output = slot.compressed.wait_timeout(output, Duration::from_millis(50)).expect("segment output lock").0;
        }
        debug_assert_eq!(produced.cpio_bytes, output.summary.length);
        let (summary, what) = (output.summary, std::mem::take(&mut output.what));
        let entry = output.entry.take().expect("the finisher takes each segment once");
        drop(output);
        let compressed = Compressed { output: entry, summary, uncreatable: produced.uncreatable, tag, what };
        if let Err(e) = finished(compressed) {
            return stopped(e);
        }
    }
    Ok(())
}

/// Writes the segments `build` pushes into new outputs of `store`, while `build` goes on:
/// one thread writes their cpio streams in order, cut into pieces that one compressor per
/// core compresses (as `compression` says), and each segment, once compressed whole, goes
/// to `finished`, in the order they were pushed (on a thread of its own, while the next
/// ones are written). Memory holds a few pieces and a few segments at a time.
pub fn write_segments<'c, T: Send, S: SegmentStore>(
    compression: Compression,
    store: &S,
    build: impl FnOnce(&SegmentSink<'c, T>) -> Result<()>,
    finished: impl FnMut(Compressed<S::Output, T>) -> Result<()> + Send,
) -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let describe = |what: &str| format!("writing initrd segment ({what}) to {}", store.describe());
    let long_frames = match compression {
        Compression::Zstd { level } => Some(LongFrames::new(level)),
        _ => None,
    };
    let shared = Shared {
        slots: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        long_frames,
        spare: SpareBuffers::default(),
    };
    let (queue, pieces) = std::sync::mpsc::sync_channel::<Piece>(workers);
    let pieces = Mutex::new(pieces);
    let (sink, segments) = std::sync::mpsc::sync_channel::<Segment<'c, T>>(1);
    let (done, produced) = std::sync::mpsc::channel::<Done<T>>();
    let compressors = (0..workers)
        .map(|_| Compressor::new(compression))
        .collect::<io::Result<Vec<_>>>()
        .with_context(|| format!("starting the {compression:?} compressor"))?;
    let (built, finishing) = std::thread::scope(|scope| {
        for compressor in compressors {
            let (pieces, shared) = (&pieces, &shared);
            spawn_named(scope, "resin-compress", move || compress_pieces(compressor, pieces, shared));
        }
        let shared = &shared;
        spawn_named(scope, "resin-cpio", move || {
            produce_segments(store, compression, describe, segments, queue, done, shared);
        });
        let finisher = spawn_named(scope, "resin-finish", move || finish_segments(produced, shared, finished));
        let built = build(&SegmentSink { segments: sink });
        if built.is_err() {
            shared.stop.store(true, Ordering::SeqCst);
        }
        (built, finisher.join().expect("the segment finisher does not panic"))
    });
    // The first real failure: a compressor's (a full disk...), the build's own (a damaged
    // blob, which must reach the caller as it is), then the producer's or `finished`'s.
    let slots = shared.slots.into_inner().expect("slots lock");
    for slot in &slots {
        let mut output = slot.output.lock().expect("segment output lock");
        if let Some(error) = output.error.take() {
            return Err(error).context(output.what.clone());
        }
    }
    match built {
        Err(error) if !error.is::<WritersStopped>() => Err(error),
        _ => finishing,
    }
}

/// Spawns a thread of `scope` named `name` (what `top -H` and `perf` show).
pub fn spawn_named<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new().name(name.into()).spawn_scoped(scope, f).expect("failed to spawn thread")
}

/// A compressed segment as the initrd takes it.
pub trait Stored {
    /// CRC32 and length of its cpio bytes.
    fn summary(&self) -> SegmentSummary;
    /// Copies its compressed bytes to `out`.
    fn copy_to(&mut self, out: &mut dyn Write) -> io::Result<()>;
}

/// An initrd as written: its digest and sizes, and where each part of it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenInitrd {
    /// `sha256:<hex>` of the file.
    pub sha256: String,
    pub size: u64,
    /// The uncompressed cpio bytes (the microcode's not counted).
    pub cpio_bytes: u64,
    /// The microcode cpio, the segments and the trailer's segment, in order: each a
    /// byte range of the file whose bytes stand alone as an initrd of their own, the file
    /// being the ranges concatenated.
    pub parts: Vec<InitrdPart>,
}

/// A byte range of the initrd file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitrdPart {
    pub kind: PartKind,
    pub offset: u64,
    pub length: u64,
    /// Length of the cpio bytes it holds, and their CRC32 when the initrd is gzip'd or the
    /// part is the microcode (0 otherwise).
    pub summary: SegmentSummary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// The early microcode cpio, uncompressed.
    Microcode,
    /// A segment, compressed as the initrd is.
    Segment,
    /// The segment of the cpio trailer, the last.
    Trailer,
}

/// A reader that sums what passes (CRC32).
struct CrcReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.crc.update(&buffer[..n]);
        Ok(n)
    }
}

/// Initrd bytes between two syncs of its file while it is written: the disk writes them
/// while later segments are compressed, not all at once when the initrd is published
/// (which syncs it whole before the rename).
const SYNC_STEP: u64 = 16 << 20;

/// Writes an initrd part by part, in order: the microcode cpio (if any), the segments
/// ([`InitrdWriter::append`], as each is ready), then the cpio trailer's segment (a gzip
/// member, a zstd frame, or plain) and the digest ([`InitrdWriter::finish`]).
pub struct InitrdWriter {
    out: HashingWriter<io::BufWriter<std::fs::File>>,
    parts: Vec<InitrdPart>,
    cpio_bytes: u64,
    /// The file, to sync, and how many bytes were synced ([`SYNC_STEP`]).
    file: std::fs::File,
    synced: u64,
}

impl InitrdWriter {
    /// Starts the initrd in `initrd` with the microcode cpio `ucode`.
    pub fn new(initrd: std::fs::File, ucode: Option<&mut dyn Read>) -> Result<InitrdWriter> {
        let file = initrd.try_clone()?;
        let out = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, initrd));
        let mut writer = InitrdWriter { out, parts: Vec::new(), cpio_bytes: 0, file, synced: 0 };
        if let Some(ucode) = ucode {
            let mut summed = CrcReader { inner: ucode, crc: crc32fast::Hasher::new() };
            let length = io::copy(&mut summed, &mut writer.out).context("copying the microcode cpio")?;
            writer.part(PartKind::Microcode, 0, SegmentSummary { crc: summed.crc.finalize(), length });
        }
        Ok(writer)
    }

    fn part(&mut self, kind: PartKind, offset: u64, summary: SegmentSummary) {
        self.parts.push(InitrdPart { kind, offset, length: self.out.written() - offset, summary });
    }

    /// Appends the next segment.
    pub fn append(&mut self, segment: &mut impl Stored) -> io::Result<()> {
        let offset = self.out.written();
        segment.copy_to(&mut self.out)?;
        let summary = segment.summary();
        self.part(PartKind::Segment, offset, summary);
        self.cpio_bytes += summary.length;
        if self.out.written() - self.synced >= SYNC_STEP {
            self.out.flush()?;
            self.file.sync_data()?;
            self.synced = self.out.written();
        }
        Ok(())
    }

    /// Appends the trailer's segment; returns what was written.
    pub fn finish(mut self, compression: Compression) -> Result<WrittenInitrd> {
        let offset = self.out.written();
        let mut trailer = Vec::new();
        let length = newc::write_trailer(&mut trailer, self.cpio_bytes)?;
        self.cpio_bytes += length;
        let summary = match compression {
            Compression::Gzip { level } => {
                let (member, summary) = PieceDeflater::new(level)?.member(&trailer)?;
                self.out.write_all(&member)?;
                summary
            }
            Compression::Zstd { level } => {
                self.out.write_all(&FrameCompressor::new(level)?.frame(&trailer)?)?;
                SegmentSummary { crc: 0, length }
            }
            Compression::Uncompressed => {
                self.out.write_all(&trailer)?;
                SegmentSummary { crc: 0, length }
            }
        };
        self.part(PartKind::Trailer, offset, summary);
        self.out.flush()?;
        let (sha256, size) = self.out.finish();
        Ok(WrittenInitrd { sha256: sha256.to_string(), size, cpio_bytes: self.cpio_bytes, parts: self.parts })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Keeps segments in memory.
    struct Memory;

    impl SegmentStore for Memory {
        type Output = Vec<u8>;

        fn create(&self) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }

        fn describe(&self) -> String {
            "memory".into()
        }
    }

    impl Stored for Compressed<Vec<u8>, ()> {
        fn summary(&self) -> SegmentSummary {
            self.summary
        }

        fn copy_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
            out.write_all(&self.output)
        }
    }

    /// A segment of generated files (as bundle scaffolding is written): `files` in a
    /// directory of their own.
    fn files_segment(files: &[(Vec<u8>, Vec<u8>)], n: u8) -> Segment<'_, ()> {
        let body = SegmentBody::Tree {
            tree: Tree::new(),
            prefix: Vec::new(),
            spool: Spool::empty(),
            scaffold_directories: vec![format!("d{n}").into_bytes()],
            scaffold_files: files.iter().map(|(path, contents)| (path.clone(), &contents[..])).collect(),
            describe: format!("segment {n}"),
        };
        Segment { body, existing: BTreeSet::new(), device: (1, u32::from(n)), tag: () }
    }

    fn initrd(compression: Compression, segments: &[Vec<(Vec<u8>, Vec<u8>)>]) -> Vec<u8> {
        written_initrd(compression, segments, None).1
    }

    /// The initrd of `segments` (after the microcode `ucode`) as written, and its bytes.
    pub(crate) fn written_initrd(
        compression: Compression,
        segments: &[Vec<(Vec<u8>, Vec<u8>)>],
        ucode: Option<&[u8]>,
    ) -> (WrittenInitrd, Vec<u8>) {
        let mut written = Vec::new();
        let finished = |segment| {
            written.push(segment);
            Ok(())
        };
        write_segments(
            compression,
            &Memory,
            |sink| {
                for (n, files) in segments.iter().enumerate() {
                    sink.push(files_segment(files, u8::try_from(n)?))?;
                }
                Ok(())
            },
            finished,
        )
        .unwrap();
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut microcode = ucode;
        let ucode = microcode.as_mut().map(|bytes| bytes as &mut dyn Read);
        let mut writer = InitrdWriter::new(out.reopen().unwrap(), ucode).unwrap();
        for segment in &mut written {
            writer.append(segment).unwrap();
        }
        let initrd = writer.finish(compression).unwrap();
        (initrd, std::fs::read(out.path()).unwrap())
    }

    #[test]
    fn segments_go_to_finished_in_order_and_its_failure_is_the_one_reported() {
        let segments: Vec<Vec<(Vec<u8>, Vec<u8>)>> =
            (0..6u8).map(|n| vec![(format!("d{n}/file").into_bytes(), vec![n; PIECE * 3 / 2])]).collect();
        fn build<'a>(segments: &'a [Vec<(Vec<u8>, Vec<u8>)>]) -> impl FnOnce(&SegmentSink<'a, u8>) -> Result<()> {
            move |sink| {
                for (n, files) in segments.iter().enumerate() {
                    let n = u8::try_from(n)?;
                    let Segment { body, existing, device, .. } = files_segment(files, n);
                    sink.push(Segment { body, existing, device, tag: n })?;
                }
                Ok(())
            }
        }
        let mut order = Vec::new();
        write_segments(Compression::DEFAULT, &Memory, build(&segments), |segment| {
            order.push(segment.tag);
            Ok(())
        })
        .unwrap();
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);

        let mut taken = Vec::new();
        let failed = write_segments(Compression::Zstd { level: 3 }, &Memory, build(&segments), |segment| {
            if segment.tag == 2 {
                anyhow::bail!("the initrd's disk is full");
            }
            taken.push(segment.tag);
            Ok(())
        })
        .unwrap_err();
        assert_eq!(format!("{failed:#}"), "the initrd's disk is full");
        assert_eq!(taken, [0, 1], "nothing after the failure");
    }

    /// Where each entry of a newc archive ends, up to and with the trailer's padding.
    fn entry_ends(cpio: &[u8]) -> BTreeSet<usize> {
        let field = |at: usize, index: usize| {
            let hex = std::str::from_utf8(&cpio[at + 6 + 8 * index..][..8]).unwrap();
            usize::from_str_radix(hex, 16).unwrap()
        };
        let align = |n: usize| n.next_multiple_of(4);
        let (mut at, mut ends) = (0, BTreeSet::new());
        while at < cpio.len() {
            assert_eq!(&cpio[at..at + 6], b"070701", "an entry at {at}");
            let (size, name_size) = (field(at, 6), field(at, 11));
            let trailer = &cpio[at + 110..at + 110 + name_size - 1] == newc::TRAILER;
            at = align(align(at + 110 + name_size) + size);
            ends.insert(at);
            if trailer {
                ends.insert(cpio.len());
                break;
            }
        }
        ends
    }

    #[test]
    fn every_part_of_an_initrd_stands_alone_and_the_gzip_members_join_back() {
        let segments: Vec<Vec<(Vec<u8>, Vec<u8>)>> =
            (0..3u8).map(|n| vec![(format!("d{n}/file").into_bytes(), vec![n; 200_000 + usize::from(n)])]).collect();
        let ucode = b"070701 an early microcode cpio".to_vec();
        for compression in [Compression::DEFAULT, Compression::Zstd { level: 3 }, Compression::Uncompressed] {
            let (initrd, bytes) = written_initrd(compression, &segments, Some(&ucode));
            assert_eq!(
                (initrd.size, initrd.sha256.clone()),
                (bytes.len() as u64, crate::oci::digest::sha256(&bytes).to_string())
            );
            let kinds: Vec<PartKind> = initrd.parts.iter().map(|p| p.kind).collect();
            assert_eq!(
                kinds,
                [PartKind::Microcode, PartKind::Segment, PartKind::Segment, PartKind::Segment, PartKind::Trailer]
            );
            let range = |part: &InitrdPart| {
                &bytes[usize::try_from(part.offset).unwrap()..][..usize::try_from(part.length).unwrap()]
            };
            assert_eq!(range(&initrd.parts[0]), &ucode[..]);
            assert_eq!(
                initrd.parts[0].summary,
                SegmentSummary { crc: crc32fast::hash(&ucode), length: ucode.len() as u64 }
            );
            // The parts after the microcode, each alone, hold the whole cpio in order.
            let mut cpio = Vec::new();
            for part in &initrd.parts[1..] {
                let alone = match compression {
                    Compression::Gzip { .. } => gzip_members(range(part)).concat(),
                    Compression::Zstd { .. } => {
                        let mut decoded = Vec::new();
                        ruzstd::decoding::StreamingDecoder::new(range(part))
                            .unwrap()
                            .read_to_end(&mut decoded)
                            .unwrap();
                        decoded
                    }
                    Compression::Uncompressed => range(part).to_vec(),
                };
                let crc = if let Compression::Gzip { .. } = compression { crc32fast::hash(&alone) } else { 0 };
                assert_eq!(part.summary, SegmentSummary { crc, length: alone.len() as u64 });
                cpio.extend(alone);
            }
            assert_eq!(cpio.len() as u64, initrd.cpio_bytes);
            assert!(entry_ends(&cpio).contains(&cpio.len()), "a whole archive, ending with its trailer");
            let end = initrd.parts.last().map(|part| part.offset + part.length);
            assert_eq!(end, Some(bytes.len() as u64), "the parts are the whole file");
        }
    }

    /// Splits `bytes` into gzip members, decoding each one alone as the kernel does.
    fn gzip_members(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut members = Vec::new();
        while !bytes.is_empty() {
            // The buffered decoder takes exactly one member from the slice.
            let mut decoder = flate2::bufread::GzDecoder::new(bytes);
            let mut decoded = Vec::new();
            decoder.read_to_end(&mut decoded).expect("a whole member");
            bytes = decoder.into_inner();
            members.push(decoded);
        }
        members
    }

    #[test]
    fn gzip_members_and_zstd_frames_end_with_entries_and_hold_the_same_cpio() {
        let noise = |n: usize, seed: u32| -> Vec<u8> {
            let mut state = seed;
            (0..n)
                .map(|i| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    if i % 3 == 0 {
                        (state >> 24) as u8
                    } else {
                        b"resin"[i % 5]
                    }
                })
                .collect()
        };
        // Many small files (whole frames), a file of 2.5 pieces (one frame over several
        // pieces, compressed in order), files after it; a segment of one large file; a
        // segment with no file.
        let mut first: Vec<(Vec<u8>, Vec<u8>)> =
            (0..300u32).map(|i| (format!("d0/small{i}").into_bytes(), noise(7_000 + i as usize * 13, i))).collect();
        first.insert(150, (b"d0/large".to_vec(), noise(PIECE * 5 / 2, 7)));
        let segments = vec![first, vec![(b"d1/medium".to_vec(), noise(PIECE * 3 / 4, 8))], vec![]];

        let plain = initrd(Compression::Uncompressed, &segments);
        let zstd = initrd(Compression::Zstd { level: 3 }, &segments);
        assert_eq!(zstd, initrd(Compression::Zstd { level: 3 }, &segments), "the same bytes every time");
        assert_members_end_with_entries("frame", &crate::initrd::zstd::decode_frames(&zstd), &zstd, &plain);

        // So do gzip members, pieces of a long entry joined into one member.
        let gzip = initrd(Compression::DEFAULT, &segments);
        assert_eq!(gzip, initrd(Compression::DEFAULT, &segments), "the same bytes every time");
        assert_members_end_with_entries("member", &gzip_members(&gzip), &gzip, &plain);
    }

    /// `members` (each decoded alone) of the `compressed` initrd hold the `plain` cpio, each
    /// ends where an entry ends, small files make members of their own and the large file
    /// one that spans pieces.
    fn assert_members_end_with_entries(what: &str, members: &[Vec<u8>], compressed: &[u8], plain: &[u8]) {
        assert!(members.concat() == plain, "the {what}s hold the plain cpio");
        let ends = entry_ends(plain);
        let mut at = 0;
        for member in members {
            at += member.len();
            assert!(ends.contains(&at), "a {what} ends at {at}, inside an entry");
        }
        assert!(members.len() > 6, "small files make {what}s of their own: {}", members.len());
        assert!(members.iter().any(|member| member.len() > 2 * PIECE), "the large file's {what} spans pieces");
        assert!(compressed.len() < plain.len() * 3 / 4, "compressed: {} of {}", compressed.len(), plain.len());
    }
}
