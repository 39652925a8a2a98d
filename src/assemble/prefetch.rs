//! Images flattened ahead of the segments that need them, on worker threads, so that
//! reading and decompressing the layers of several images overlaps (with each other and
//! with the writing of the segments before them) and every core is busy from the first
//! byte.
//!
//! The assembly queues the images of the segments it guesses are to be built
//! ([`Prefetch::start`]); the workers, one per core, read them in segment order on their
//! own, so reading goes on while the assembly waits for the writers (a segment is queued
//! for writing only once the writers have room). Memory stays bounded as it would with
//! one result per worker: a read starts only while the reads running and the results
//! waiting to be taken are fewer than the workers, except that small results (together
//! at most [`SMALL_ENTRIES`] tree entries and [`HELD_DATA`] bytes of file data in their
//! spools) do not count. Before, the assembly started a read only when it came to a
//! segment and a worker was free, and a result waiting for its segment kept its worker:
//! while the assembly waited for the writers, which compress a large image's long zstd
//! frames on fewer cores than there are, no image was read (the benchmark's zstd cold
//! apply: about a fifth of both cores idle for half a second). Cold applies of the
//! benchmark's image, alternating: zstd 2.061 s mean of 8 to 2.018 s, gzip 2.503 s mean
//! of 6 to 2.467 s.
//!
//! What to read ahead is decided before the segments before it are known: the caller
//! queues an image whose segment is not in the local segment cache under the key it would
//! have were nothing more written before it. That guess is right unless a segment before
//! it adds directories under its prefix; when wrong, the cached segment is used as ever
//! and its image's read dropped ([`Prefetch::forget`]: not started if still queued), or
//! the image is read when its segment is reached (as without reading ahead).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Scope;

use anyhow::{anyhow, Result};

use super::early::{EarlyReads, HELD_DATA};
use super::union::{flatten_pulled, Flattened};
use crate::oci::cache::BlobCache;
use crate::oci::reference::PinnedImage;
use crate::oci::ResolvedImage;

/// Tree entries of the small results that wait beyond one per worker (about 8 MB).
pub const SMALL_ENTRIES: usize = 32 << 10;

/// Images being flattened ahead, by image.
pub struct Prefetch<'env> {
    shared: Arc<Shared<'env>>,
}

struct Shared<'env> {
    state: Mutex<State<'env>>,
    /// Signalled when an image is queued, a read ends, a result is taken, or reading stops.
    changed: Condvar,
    /// Reads running and counted results together, at most.
    limit: usize,
    /// Entries and data bytes the small results may hold together.
    small: (usize, u64),
}

#[derive(Default)]
struct State<'env> {
    /// Images to read, by the index of the first segment that needs them.
    queued: BTreeMap<usize, (PinnedImage, &'env ResolvedImage)>,
    /// Every image queued, running or read and not taken.
    images: BTreeMap<PinnedImage, Status>,
    running: usize,
    /// Results waiting that count against the limit.
    counted: usize,
    /// Entries and data bytes of the small results waiting.
    small_entries: usize,
    small_data: u64,
    stopped: bool,
}

enum Status {
    Queued(usize),
    /// Being read; `wanted` is false once no segment takes it ([`Prefetch::forget`]): it
    /// then keeps nothing.
    Running {
        wanted: bool,
    },
    /// Read: the result (boxed: a tree and a spool), and whether it is small.
    Read(Box<Result<Flattened>>, bool),
}

/// Tree entries and data bytes a result holds (none for an error).
fn held(result: &Result<Flattened>) -> (usize, u64) {
    result.as_ref().map_or((0, 0), |(tree, spool, _)| (tree.len(), spool.data_bytes()))
}

impl State<'_> {
    fn may_start(&self, limit: usize) -> bool {
        !self.queued.is_empty() && self.running + self.counted < limit
    }

    /// Keeps `result`, small if it fits beside the other small ones within `small`.
    fn finish(&mut self, image: PinnedImage, result: Result<Flattened>, small: (usize, u64)) {
        self.running -= 1;
        if matches!(self.images.get(&image), Some(Status::Running { wanted: false })) {
            self.images.remove(&image);
            return;
        }
        let (entries, data) = held(&result);
        let small = self.small_entries + entries <= small.0 && self.small_data + data <= small.1;
        if small {
            self.small_entries += entries;
            self.small_data += data;
        } else {
            self.counted += 1;
        }
        self.images.insert(image, Status::Read(Box::new(result), small));
    }

    /// Removes `image` unless it is being read: its result when it was read (one still
    /// queued will not be read).
    fn remove(&mut self, image: &PinnedImage) -> Option<Result<Flattened>> {
        match self.images.remove(image)? {
            Status::Queued(order) => {
                self.queued.remove(&order);
                None
            }
            Status::Read(result, small) => {
                if small {
                    let (entries, data) = held(&result);
                    self.small_entries -= entries;
                    self.small_data -= data;
                } else {
                    self.counted -= 1;
                }
                Some(*result)
            }
            running @ Status::Running { .. } => {
                self.images.insert(image.clone(), running);
                None
            }
        }
    }
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
        Prefetch::with_small(scope, cache, early, limit, (SMALL_ENTRIES, HELD_DATA))
    }

    /// [`Prefetch::new`] whose small results hold at most `small` entries and data bytes
    /// together (less for a test).
    pub fn with_small<'scope>(
        scope: &'scope Scope<'scope, 'env>,
        cache: &'env BlobCache,
        early: &'env EarlyReads,
        limit: usize,
        small: (usize, u64),
    ) -> Prefetch<'env> {
        let shared = Arc::new(Shared { state: Mutex::default(), changed: Condvar::new(), limit, small });
        for _ in 0..limit {
            let shared = shared.clone();
            crate::initrd::segments::spawn_named(scope, "resin-prefetch", move || {
                while let Some((image, resolved)) = shared.next() {
                    // A read that panics ends with an error, so that its segment does not
                    // wait for it; the panic then reaches the caller when the scope ends.
                    let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        early.take(resolved).map_or_else(|| flatten_pulled(resolved, cache), Ok)
                    }));
                    let (result, panic) = match read {
                        Ok(result) => (result, None),
                        Err(panic) => (Err(anyhow!("reading {image} ahead stopped")), Some(panic)),
                    };
                    shared.state.lock().expect("read-ahead lock").finish(image, result, shared.small);
                    shared.changed.notify_all();
                    if let Some(panic) = panic {
                        std::panic::resume_unwind(panic);
                    }
                }
            });
        }
        Prefetch { shared }
    }

    /// Queues `image` (resolved as `resolved`), first needed by segment `order`, unless it
    /// is queued, running or read already.
    pub fn start(&mut self, order: usize, image: &PinnedImage, resolved: &'env ResolvedImage) {
        if self.shared.limit == 0 {
            return;
        }
        let mut state = self.shared.state.lock().expect("read-ahead lock");
        if state.images.contains_key(image) {
            return;
        }
        state.images.insert(image.clone(), Status::Queued(order));
        state.queued.insert(order, (image.clone(), resolved));
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Whether `image` is queued, being read, or read and not yet taken.
    pub fn is_known(&self, image: &PinnedImage) -> bool {
        self.shared.state.lock().expect("read-ahead lock").images.contains_key(image)
    }

    /// `image` flattened, waiting for a read running; `None` when it was not started (one
    /// still queued is left to the caller).
    pub fn take(&mut self, image: &PinnedImage) -> Option<Result<Flattened>> {
        let mut state = self.shared.state.lock().expect("read-ahead lock");
        while matches!(state.images.get(image)?, Status::Running { .. }) {
            state = self.shared.changed.wait(state).expect("read-ahead lock");
        }
        let result = state.remove(image);
        drop(state);
        self.shared.changed.notify_all();
        result
    }

    /// Drops what was queued or read for `image` (its segment was found in the cache):
    /// a read running keeps nothing when it ends.
    pub fn forget(&mut self, image: &PinnedImage) {
        let mut state = self.shared.state.lock().expect("read-ahead lock");
        if let Some(Status::Running { wanted }) = state.images.get_mut(image) {
            *wanted = false;
            return;
        }
        let dropped = state.remove(image);
        drop(state);
        self.shared.changed.notify_all();
        drop(dropped);
    }
}

#[cfg(test)]
impl Prefetch<'_> {
    /// Once no read runs and none may start: how many results wait and how many images
    /// are queued.
    pub fn settled(&self) -> (usize, usize) {
        let mut state = self.shared.state.lock().expect("read-ahead lock");
        while state.running > 0 || state.may_start(self.shared.limit) {
            state = self.shared.changed.wait(state).expect("read-ahead lock");
        }
        let read = state.images.values().filter(|status| matches!(status, Status::Read(..))).count();
        (read, state.queued.len())
    }
}

impl<'env> Shared<'env> {
    /// The next image to read, once a read may start; `None` once reading stopped.
    fn next(&self) -> Option<(PinnedImage, &'env ResolvedImage)> {
        let mut state = self.state.lock().expect("read-ahead lock");
        loop {
            if state.stopped {
                return None;
            }
            if state.may_start(self.limit) {
                let (_, (image, resolved)) = state.queued.pop_first()?;
                state.images.insert(image.clone(), Status::Running { wanted: true });
                state.running += 1;
                return Some((image, resolved));
            }
            state = self.changed.wait(state).expect("read-ahead lock");
        }
    }
}

impl Drop for Prefetch<'_> {
    fn drop(&mut self) {
        // The workers end once they finish what they are reading.
        self.shared.state.lock().expect("read-ahead lock").stopped = true;
        self.shared.changed.notify_all();
    }
}
