//! Images read while Terraform still applies the packages. A `resin_package` apply that
//! downloaded layers (an image new to this machine: no segment of it can be in the local
//! segment cache) starts flattening its image on a background thread, and the
//! `resin_image` apply that follows in the same provider process takes the result instead
//! of reading the image again. While Terraform applies the packages and the kernel, the
//! cores are partly idle (downloads wait on the registry); the assembly after them keeps
//! both busy, so what is read before it starts is time saved.
//!
//! One read per core runs at once; the others wait for a slot. An assembly
//! that needs an image whose read is still running waits for it (the same work it would
//! do itself). A read that fails keeps nothing: the assembly reads the image and reports
//! what it finds. At most [`HELD_ENTRIES`] tree entries are kept in all (about 60 MB); a
//! result that would go past that is dropped. Results no assembly takes go with the
//! process (their spools are unnamed temporary files).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};

use super::union::{flatten_pulled, Flattened};
use crate::oci::cache::BlobCache;
use crate::oci::ResolvedImage;

/// The most tree entries kept in all by finished reads.
pub const HELD_ENTRIES: usize = 250_000;

/// Reads started by package applies.
#[derive(Debug, Default)]
pub struct EarlyReads {
    state: Mutex<State>,
    /// Signalled when a read ends (a slot is free, a result is there).
    ended: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Reads running now.
    running: usize,
    /// Entries of the trees kept.
    held: usize,
    /// By manifest digest: `None` while running.
    reads: BTreeMap<String, Option<Box<Flattened>>>,
}

impl EarlyReads {
    /// Starts reading `image` (pulled into `cache`) unless it is read or kept already.
    pub fn start(self: &Arc<Self>, image: &ResolvedImage, cache: &BlobCache) {
        let key = image.digest.to_string();
        {
            let mut state = self.state.lock().expect("early reads lock");
            if state.reads.contains_key(&key) {
                return;
            }
            state.reads.insert(key.clone(), None);
        }
        let (this, image, cache, thread_key) = (self.clone(), image.clone(), cache.clone(), key.clone());
        let spawned = std::thread::Builder::new().name("early-read".into()).spawn(move || {
            this.wait_for_slot();
            let result = flatten_pulled(&image, &cache);
            this.finish(thread_key, result);
        });
        if spawned.is_err() {
            self.state.lock().expect("early reads lock").reads.remove(&key);
        }
    }

    fn wait_for_slot(&self) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut state = self.state.lock().expect("early reads lock");
        while state.running >= cores {
            state = self.ended.wait(state).expect("early reads lock");
        }
        state.running += 1;
    }

    fn finish(&self, key: String, result: anyhow::Result<Flattened>) {
        let mut state = self.state.lock().expect("early reads lock");
        state.running -= 1;
        match result {
            Ok(flattened) if state.held + flattened.0.len() <= HELD_ENTRIES => {
                state.held += flattened.0.len();
                state.reads.insert(key, Some(Box::new(flattened)));
            }
            Ok(_) => {
                state.reads.remove(&key);
            }
            Err(e) => {
                state.reads.remove(&key);
                crate::log::debug("early read failed", &[("digest", key), ("error", format!("{e:#}"))]);
            }
        }
        self.ended.notify_all();
    }

    /// How many reads are running or kept, not yet taken.
    pub fn kept(&self) -> usize {
        self.state.lock().expect("early reads lock").reads.len()
    }

    /// How many reads are finished, their results kept.
    #[cfg(test)]
    pub fn finished(&self) -> usize {
        self.state.lock().expect("early reads lock").reads.values().filter(|read| read.is_some()).count()
    }

    /// `image` read early, waiting for a read still running; `None` when none was started
    /// or it failed.
    pub fn take(&self, image: &ResolvedImage) -> Option<Flattened> {
        let key = image.digest.to_string();
        let mut state = self.state.lock().expect("early reads lock");
        while state.reads.get(&key)?.is_none() {
            state = self.ended.wait(state).expect("early reads lock");
        }
        let flattened = state.reads.remove(&key).flatten()?;
        state.held -= flattened.0.len();
        Some(*flattened)
    }
}
