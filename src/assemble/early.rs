//! Images read while Terraform still applies the packages. A `resin_package` apply that
//! downloaded layers (an image new to this machine: no segment of it can be in the local
//! segment cache) starts flattening its image on a background thread, and the
//! `resin_image` apply that follows in the same provider process takes the result instead
//! of reading the image again. While Terraform applies the packages and the kernel, the
//! cores are partly idle (downloads wait on the registry); the assembly after them keeps
//! both busy, so what is read before it starts is time saved.
//!
//! As many reads run at once as there are cores less one (one at least); the others wait
//! for a slot. The core left over is for what every `resin_image` apply waits for, which
//! runs at the same time: the downloads, and `resin_kernel`'s check reading its layer as
//! it arrives. On the benchmark's image with 2 cores, zstd cold applies alternating (5
//! pairs): 1.959 s mean with two reads at once, 1.898 s with one; gzip: 2.361 and 2.355 s.
//! An assembly that needs an image whose read is still running waits for it (the same
//! work it would do itself). A read that fails keeps nothing: the assembly reads the image and reports
//! what it finds. At most [`HELD_ENTRIES`] tree entries are kept in all (about 60 MB); a
//! result that would go past that is dropped. Results no assembly takes go with the
//! process (their spools are unnamed temporary files).
//!
//! Reads stop once the results kept hold [`HELD_DATA`] bytes of file data (their spools,
//! in the page cache): a read that gets its slot then ends at once and leaves its image
//! to the assembly. Without that bound every image's data sat in the page cache at once
//! when the assembly began (about 350 MB on the benchmark's image), where the assembly
//! itself holds a few images' at a time and reuses the pages of each spool it is done
//! with. Memory the machine has not used lately can cost more than the copy into it: on
//! the virtual machines resin is measured on, writing 512 MB into new page-cache pages
//! took 1.25-1.6 s of system time, against 0.11 s into pages just freed. The benchmark's
//! zstd cold apply, runs alternating: with pages just freed, 2.11 s mean of 5 with the
//! bound and without, 2.22 s with no early read; with earlier runs' files kept (new
//! pages), 2.67 s mean of 5 with the bound, 2.76 s without (2.49-2.97 s).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};

use super::union::{flatten_pulled, Flattened};
use crate::oci::cache::BlobCache;
use crate::oci::ResolvedImage;

/// The most tree entries kept in all by finished reads.
pub const HELD_ENTRIES: usize = 250_000;

/// Bytes of file data kept by finished reads past which no read starts.
pub const HELD_DATA: u64 = 64 << 20;

/// Reads started by package applies.
#[derive(Debug)]
pub struct EarlyReads {
    state: Mutex<State>,
    /// Signalled when a read ends (a slot is free, a result is there).
    ended: Condvar,
    /// [`HELD_DATA`], or less for a test.
    held_data_limit: u64,
}

impl Default for EarlyReads {
    fn default() -> EarlyReads {
        EarlyReads::with_data_limit(HELD_DATA)
    }
}

#[derive(Debug, Default)]
struct State {
    /// Reads running now.
    running: usize,
    /// Entries of the trees kept.
    held: usize,
    /// Bytes of file data in the spools kept.
    held_data: u64,
    /// By manifest digest: `None` while running.
    reads: BTreeMap<String, Option<Box<Flattened>>>,
}

impl EarlyReads {
    /// Reads that stop once their results keep `limit` bytes of file data.
    pub fn with_data_limit(limit: u64) -> EarlyReads {
        EarlyReads { state: Mutex::default(), ended: Condvar::new(), held_data_limit: limit }
    }

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
            if this.wait_for_slot(&thread_key) {
                let result = flatten_pulled(&image, &cache);
                this.finish(thread_key, result);
            }
        });
        if spawned.is_err() {
            self.state.lock().expect("early reads lock").reads.remove(&key);
        }
    }

    /// Waits for a slot; `false` (and `key` forgotten) when the results kept hold enough
    /// data by then.
    fn wait_for_slot(&self, key: &str) -> bool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slots = cores.saturating_sub(1).max(1);
        let mut state = self.state.lock().expect("early reads lock");
        while state.running >= slots {
            state = self.ended.wait(state).expect("early reads lock");
        }
        if state.held_data >= self.held_data_limit {
            state.reads.remove(key);
            self.ended.notify_all();
            return false;
        }
        state.running += 1;
        true
    }

    fn finish(&self, key: String, result: anyhow::Result<Flattened>) {
        let mut state = self.state.lock().expect("early reads lock");
        state.running -= 1;
        match result {
            Ok(flattened) if state.held + flattened.0.len() <= HELD_ENTRIES => {
                state.held += flattened.0.len();
                state.held_data += flattened.1.data_bytes();
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
        state.held_data -= flattened.1.data_bytes();
        Some(*flattened)
    }
}
