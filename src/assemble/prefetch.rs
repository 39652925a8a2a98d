//! Images flattened ahead of the segments that need them, on worker threads, so that
//! reading and decompressing the layers of several images overlaps (with each other and
//! with the writing of the segments before them) and every core is busy from the first
//! byte. At most `limit` images are read ahead at once, by as many workers; each holds its
//! tree and a spool until its segment takes it, so memory stays bounded.
//!
//! What to read ahead is decided before the segments before it are known: the caller
//! starts an image whose segment is not in the local segment cache under the key it would
//! have were nothing more written before it. That guess is right unless a segment before
//! it adds directories under its prefix; when wrong, the image is read for nothing (a
//! cached segment is used as ever) or read when its segment is reached (as without
//! reading ahead).

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use anyhow::{anyhow, Result};

use super::early::EarlyReads;
use super::union::{flatten_pulled, Flattened};
use crate::oci::cache::BlobCache;
use crate::oci::reference::PinnedImage;
use crate::oci::ResolvedImage;

/// An image to flatten, and where its result goes.
type Job<'env> = (&'env ResolvedImage, Sender<Result<Flattened>>);

/// Images being flattened ahead, by image.
pub struct Prefetch<'env> {
    jobs: Option<Sender<Job<'env>>>,
    pending: BTreeMap<PinnedImage, Receiver<Result<Flattened>>>,
    limit: usize,
}

impl<'env> Prefetch<'env> {
    /// Reads ahead on `limit` workers of `scope` (none: never); they stop when it is dropped.
    /// An image a package apply read already ([`EarlyReads`]) is taken from `early`.
    pub fn new<'scope>(
        scope: &'scope Scope<'scope, 'env>,
        cache: &'env BlobCache,
        early: &'env EarlyReads,
        limit: usize,
    ) -> Prefetch<'env> {
        let (jobs, queue) = channel::<Job<'env>>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..limit {
            let queue = queue.clone();
            crate::initrd::segments::spawn_named(scope, "resin-prefetch", move || loop {
                let Ok((image, reply)) = queue.lock().expect("read-ahead queue lock").recv() else { return };
                // The caller may have stopped waiting (an earlier segment failed).
                let _ = reply.send(early.take(image).map_or_else(|| flatten_pulled(image, cache), Ok));
            });
        }
        Prefetch { jobs: Some(jobs), pending: BTreeMap::new(), limit }
    }

    /// Whether another image can be started.
    pub fn has_room(&self) -> bool {
        self.pending.len() < self.limit
    }

    /// Whether `image` is being (or was) flattened ahead and not yet taken.
    pub fn is_running(&self, image: &PinnedImage) -> bool {
        self.pending.contains_key(image)
    }

    /// Starts flattening `image` (resolved as `resolved`), if there is room and it is not
    /// running already.
    pub fn start(&mut self, image: &PinnedImage, resolved: &'env ResolvedImage) {
        let Some(jobs) = &self.jobs else { return };
        if !self.has_room() || self.is_running(image) {
            return;
        }
        let (reply, result) = channel();
        if jobs.send((resolved, reply)).is_ok() {
            self.pending.insert(image.clone(), result);
        }
    }

    /// `image` flattened, waiting for it; `None` when it was not started.
    pub fn take(&mut self, image: &PinnedImage) -> Option<Result<Flattened>> {
        let result = self.pending.remove(image)?;
        // A worker that panicked drops the reply: the panic reaches the caller when the
        // scope ends.
        Some(result.recv().unwrap_or_else(|_| Err(anyhow!("reading {image} ahead stopped"))))
    }
}

impl Drop for Prefetch<'_> {
    fn drop(&mut self) {
        // Closing the queue ends the workers once they finish what they are reading.
        self.jobs.take();
    }
}
