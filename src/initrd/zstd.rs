//! zstd initrds: a sequence of zstd frames, each of which ends where a cpio entry ends.
//!
//! The kernel unpacks a compressed initramfs one member at a time (`init/initramfs.c`): it
//! decodes one zstd frame (`__unzstd` stops at the end of the frame), checks that the
//! cpio reader is between two entries ("junk at the end of compressed archive"
//! otherwise, and the rest of the initramfs is lost), and goes on with the next member.
//! So a frame may hold any number of whole entries but never ends inside one:
//!
//! - pieces that end where an entry ends are whole frames ([`FrameCompressor`]),
//!   compressed independently, so in parallel;
//! - an entry longer than a piece (a large binary) spans several pieces that one
//!   [`LongFrame`] encoder compresses in order, flushed after each piece, so memory
//!   stays bounded by the piece size and not by the entry.
//!
//! Every frame records its content checksum (XXH64), which the kernel verifies. The bytes
//! depend on the level and on the zstd library's version (pinned by the lock file; a
//! fingerprint of its output is in every segment key).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective as EndDirective;
use zstd::zstd_safe::CParameter;

/// The default level: zstd's own (the `zstd` tool's). On a LinuxKit-shaped image it
/// needs about half the CPU of gzip's default level for an initrd 0.92x the size of
/// `gzip -6`'s.
pub const DEFAULT_LEVEL: u32 = 3;
/// The highest level offered. Levels 20 to 22 ("ultra") need windows of 32 to 128 MiB,
/// which the kernel would have to allocate at boot, for little gain on an initrd.
pub const MAX_LEVEL: u32 = 19;

fn level(level: u32) -> i32 {
    i32::try_from(level.min(MAX_LEVEL)).expect("at most 19")
}

/// Compresses whole frames, reusing one zstd context (one per compressor thread).
pub struct FrameCompressor {
    context: zstd::bulk::Compressor<'static>,
}

impl FrameCompressor {
    pub fn new(compression_level: u32) -> io::Result<FrameCompressor> {
        let mut context = zstd::bulk::Compressor::new(level(compression_level))?;
        context.set_parameter(CParameter::ChecksumFlag(true))?;
        Ok(FrameCompressor { context })
    }

    /// One frame holding `bytes` (and their size, in its header).
    pub fn frame(&mut self, bytes: &[u8]) -> io::Result<Vec<u8>> {
        self.context.compress(bytes)
    }
}

/// One frame written a piece at a time: each [`LongFrame::part`] takes a piece and returns
/// what of the frame is compressed so far, [`LongFrame::finish`] the rest of the frame.
///
/// The frame is cut into jobs of [`JOB`] bytes that zstd's worker threads (one per core)
/// compress in parallel, each job with the window before it as its dictionary, so
/// a large file keeps every core busy although its pieces must be fed in order. zstd's
/// multithreaded output depends on the job size, not on the number of workers nor on how
/// the input is fed: the same bytes on every machine. Nothing is flushed between pieces
/// (a flush would wait for the running jobs), so a piece's output may come back with a
/// later piece's; the frame's bytes are the concatenation, in order.
///
/// Its context (the workers and their buffers, about 11 MiB at level 3) is lent by
/// [`LongFrames`]: one frame at a time, the others wait (the workers already use every
/// core). Above [`MAX_PARALLEL_LEVEL`] the frame is compressed on the calling thread.
pub struct LongFrame {
    context: Option<zstd::zstd_safe::CCtx<'static>>,
    owner: Arc<LongFrames>,
}

/// Input bytes per job of a [`LongFrame`]: part of the bytes written (fixed, so they do not
/// depend on the machine). One piece: a file of two pieces is compressed on two cores.
pub const JOB: u32 = 1 << 20;

/// The highest level whose long frames are compressed by worker threads. Above it a
/// frame is compressed on the calling thread (no worker): workers' contexts grow with the
/// level (measured on 16 MB of the benchmark's binaries, 2 workers: 11 MiB more at level
/// 3, 36 MiB at level 9, 97 MiB at 12, 189 MiB at 19) for a quarter less time.
pub const MAX_PARALLEL_LEVEL: u32 = 9;

/// Output room added at a time while compressing (zstd's own streaming buffer size).
const OUTPUT_STEP: usize = 128 << 10;

/// The one context of the long frames of an initrd's writing, lent to one frame at a time
/// and made when first needed.
pub struct LongFrames {
    level: u32,
    workers: u32,
    /// Whether a frame holds the context, and the context when none does.
    state: Mutex<(bool, Option<zstd::zstd_safe::CCtx<'static>>)>,
    returned: Condvar,
}

impl LongFrames {
    pub fn new(compression_level: u32) -> Arc<LongFrames> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        LongFrames::with_workers(compression_level, u32::try_from(workers).unwrap_or(u32::MAX))
    }

    /// Frames compressed by `workers` threads (at least 1).
    fn with_workers(level: u32, workers: u32) -> Arc<LongFrames> {
        Arc::new(LongFrames {
            level,
            workers: workers.max(1),
            state: Mutex::new((false, None)),
            returned: Condvar::new(),
        })
    }

    /// A new frame, once no other frame holds the context; `None` if `stop` was set
    /// meanwhile.
    pub fn start(self: &Arc<Self>, stop: &AtomicBool) -> io::Result<Option<LongFrame>> {
        let mut state = self.state.lock().expect("long frame lock");
        while state.0 {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            state = self.returned.wait_timeout(state, Duration::from_millis(50)).expect("long frame lock").0;
        }
        let context = match state.1.take() {
            Some(context) => context,
            None => self.context()?,
        };
        state.0 = true;
        Ok(Some(LongFrame { context: Some(context), owner: self.clone() }))
    }

    fn context(&self) -> io::Result<zstd::zstd_safe::CCtx<'static>> {
        let mut context = zstd::zstd_safe::CCtx::create();
        let workers = if self.level <= MAX_PARALLEL_LEVEL { self.workers } else { 0 };
        for parameter in [
            CParameter::CompressionLevel(level(self.level)),
            CParameter::ChecksumFlag(true),
            CParameter::NbWorkers(workers),
            CParameter::JobSize(JOB),
            // Each job starts from half the window before it (zstd makes a job at least
            // that long): as small as one thread's frame on the benchmark's binaries (a
            // quarter of the window lost a third at level 9).
            CParameter::OverlapSizeLog(8),
        ] {
            context.set_parameter(parameter).map_err(zstd_error)?;
        }
        Ok(context)
    }
}

impl LongFrame {
    fn context(&mut self) -> &mut zstd::zstd_safe::CCtx<'static> {
        self.context.as_mut().expect("a frame holds its context until dropped")
    }

    /// Takes `piece`; returns the frame's bytes compressed meanwhile (perhaps none).
    pub fn part(&mut self, piece: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut input = zstd::zstd_safe::InBuffer::around(piece);
        while input.pos < piece.len() {
            out.reserve(OUTPUT_STEP);
            let written = out.len();
            let mut output = zstd::zstd_safe::OutBuffer::around_pos(&mut out, written);
            self.context()
                .compress_stream2(&mut output, &mut input, EndDirective::ZSTD_e_continue)
                .map_err(zstd_error)?;
        }
        Ok(out)
    }

    /// Takes the last piece; returns the rest of the frame.
    pub fn finish(mut self, piece: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = self.part(piece)?;
        loop {
            out.reserve(OUTPUT_STEP);
            let written = out.len();
            let mut output = zstd::zstd_safe::OutBuffer::around_pos(&mut out, written);
            if self.context().end_stream(&mut output).map_err(zstd_error)? == 0 {
                return Ok(out);
            }
        }
    }
}

impl Drop for LongFrame {
    /// Gives the context back, ready for another frame (a frame left unfinished is
    /// abandoned; its workers are waited for). A context that cannot be reset is dropped.
    fn drop(&mut self) {
        let context = self
            .context
            .take()
            .and_then(|mut context| context.reset(zstd::zstd_safe::ResetDirective::SessionOnly).ok().map(|_| context));
        let mut state = self.owner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = (false, context);
        drop(state);
        self.owner.returned.notify_all();
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))
}

/// Splits `bytes` into frames, decoding each one alone as the kernel does.
#[cfg(test)]
pub(crate) fn decode_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    use std::io::Write;
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let size = zstd::zstd_safe::find_frame_compressed_size(bytes).expect("a whole frame");
        let mut decoded = Vec::new();
        let mut decoder = zstd::stream::write::Decoder::new(&mut decoded).unwrap();
        decoder.write_all(&bytes[..size]).unwrap();
        decoder.flush().unwrap();
        drop(decoder);
        frames.push(decoded);
        bytes = &bytes[size..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_long_frames_decode_alone_and_are_deterministic() {
        let text: Vec<u8> =
            (0..5_000_000u32).map(|i| b"resin initrd "[(i % 13) as usize] ^ (i / 7919).to_le_bytes()[0]).collect();
        // A long frame written by `workers` threads from pieces that end at `cuts`.
        let write = |workers: u32, cuts: &[usize]| {
            let mut out = FrameCompressor::new(DEFAULT_LEVEL).unwrap().frame(&text[..1000]).unwrap();
            let frames = LongFrames::with_workers(DEFAULT_LEVEL, workers);
            let stop = AtomicBool::new(false);
            let mut long = frames.start(&stop).unwrap().unwrap();
            let mut at = 1000;
            for &cut in cuts {
                out.extend(long.part(&text[at..cut]).unwrap());
                at = cut;
            }
            out.extend(long.finish(&text[at..]).unwrap());
            // The context used again, after a frame abandoned, writes the same frame.
            let mut abandoned = frames.start(&stop).unwrap().unwrap();
            abandoned.part(&text[..2_500_000]).unwrap();
            drop(abandoned);
            let mut long = frames.start(&stop).unwrap().unwrap();
            let mut again = long.part(&text[1000..1_500_000]).unwrap();
            again.extend(long.finish(&text[1_500_000..]).unwrap());
            assert!(again == out[out.len() - again.len()..], "the same frame from a context used before");
            out
        };
        let out = write(2, &[1_000_000, 2_000_000, 3_100_000]);
        assert_eq!(decode_frames(&out), [text[..1000].to_vec(), text[1000..].to_vec()]);
        // The same bytes however many workers, and however the pieces are cut.
        assert!(out == write(2, &[1_000_000, 2_000_000, 3_100_000]));
        assert!(out == write(1, &[1_000_000, 2_000_000, 3_100_000]));
        assert!(out == write(3, &[5000, 2_500_000]));
        // Above the parallel levels, a frame on the calling thread: the same bytes too.
        let high = |workers: u32, cut: usize| {
            let frames = LongFrames::with_workers(MAX_PARALLEL_LEVEL + 1, workers);
            let mut long = frames.start(&AtomicBool::new(false)).unwrap().unwrap();
            let mut out = long.part(&text[..cut]).unwrap();
            out.extend(long.finish(&text[cut..]).unwrap());
            out
        };
        let frame = high(2, 1_000_000);
        assert!(frame == high(1, 2_500_000), "the same frame on the calling thread");
        assert!(decode_frames(&frame) == [text.clone()], "one frame of the whole text");
        // Real frames with checksums: a flipped byte in the last one is caught.
        let mut damaged = out.clone();
        let at = damaged.len() - 2;
        damaged[at] ^= 1;
        let mut sink = Vec::new();
        assert!(zstd::stream::copy_decode(&damaged[..], &mut sink).is_err());
    }
}
