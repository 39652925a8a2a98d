//! A blob read while it downloads. A reader that will read a layer right after its pull
//! (`resin_kernel`'s check, which every `resin_image` waits for) asks the cache for a
//! [`BlobTap`] on the digest before pulling; the download that then writes the blob into
//! the cache ([`super::cache::BlobCache::insert_stream`]) hands each chunk to the tap as
//! well, so the reader decompresses and parses the layer while the rest arrives instead
//! of after. The blob is hashed once, by the download.
//!
//! The tap ends only once the download has checked the blob's digest and size and put it
//! in place: a reader that reaches its end has read verified bytes. Anything else ends it
//! with an error the reader reports and its caller falls back on reading the cached blob:
//! a download that fails or is retried (a tap follows the first attempt that brings
//! bytes), a blob another process fetched, a pull that never started the download
//! ([`Taps::cancel`]).
//!
//! Memory stays bounded: the download waits while the reader is [`CHUNKS`] chunks behind.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::digest::Digest;

/// Chunks a download runs ahead of its reader: as many as the download itself queues
/// for its writer (hyper's chunks are up to a few hundred KiB, a layout's 256 KiB), so a
/// tap adds at most a few MiB to the provider's memory.
pub const CHUNKS: usize = 8;

/// What a download hands to its tap.
#[derive(Debug)]
pub enum Feed {
    Data(Vec<u8>),
    /// The blob is verified and in place: the data ended.
    Verified,
}

/// The taps waiting for their download, by digest.
#[derive(Clone, Debug, Default)]
pub struct Taps(Arc<Mutex<HashMap<Digest, SyncSender<Feed>>>>);

impl Taps {
    /// A tap on the next download of `digest` (replacing an earlier one's).
    pub fn tap(&self, digest: &Digest) -> BlobTap {
        let (sender, receiver) = sync_channel(CHUNKS);
        self.0.lock().expect("taps lock").insert(digest.clone(), sender);
        BlobTap { digest: digest.clone(), receiver, chunk: Vec::new(), position: 0, verified: false }
    }

    /// The tap of `digest` for the download starting now, if there is one.
    pub fn take(&self, digest: &Digest) -> Option<SyncSender<Feed>> {
        self.0.lock().expect("taps lock").remove(digest)
    }

    /// Ends the tap on `digest` if no download took it: its reader gets an error.
    pub fn cancel(&self, digest: &Digest) {
        self.take(digest);
    }
}

/// The bytes of one download, as they arrive ([`Read`]).
#[derive(Debug)]
pub struct BlobTap {
    digest: Digest,
    receiver: Receiver<Feed>,
    chunk: Vec<u8>,
    position: usize,
    verified: bool,
}

impl Read for BlobTap {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.position < self.chunk.len() {
                let n = buffer.len().min(self.chunk.len() - self.position);
                buffer[..n].copy_from_slice(&self.chunk[self.position..self.position + n]);
                self.position += n;
                return Ok(n);
            }
            if self.verified || buffer.is_empty() {
                return Ok(0);
            }
            match self.receiver.recv() {
                Ok(Feed::Data(chunk)) => (self.chunk, self.position) = (chunk, 0),
                Ok(Feed::Verified) => self.verified = true,
                Err(_) => {
                    return Err(io::Error::other(format!(
                        "the download of {} ended before the blob was verified",
                        self.digest
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(tap: &mut BlobTap) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        tap.read_to_end(&mut bytes).map(|_| bytes)
    }

    #[test]
    fn a_tap_ends_only_once_its_download_is_verified() {
        let taps = Taps::default();
        let digest = crate::oci::digest::sha256(b"abcdef");
        let mut tap = taps.tap(&digest);
        let feed = taps.take(&digest).expect("the download takes the tap");
        assert!(taps.take(&digest).is_none(), "one download only");
        let download = std::thread::spawn(move || {
            for chunk in [&b"abc"[..], b"def"] {
                feed.send(Feed::Data(chunk.to_vec())).unwrap();
            }
            feed.send(Feed::Verified).unwrap();
        });
        assert_eq!(read_all(&mut tap).unwrap(), b"abcdef");
        download.join().unwrap();
    }

    #[test]
    fn a_download_that_stops_or_never_starts_is_an_error() {
        let taps = Taps::default();
        let digest = crate::oci::digest::sha256(b"abcdef");
        let mut cut = taps.tap(&digest);
        let feed = taps.take(&digest).unwrap();
        feed.send(Feed::Data(b"abc".to_vec())).unwrap();
        drop(feed);
        let error = read_all(&mut cut).unwrap_err();
        assert!(error.to_string().contains("ended before the blob was verified"), "{error}");

        let mut never = taps.tap(&digest);
        taps.cancel(&digest);
        assert!(read_all(&mut never).is_err());
    }
}
