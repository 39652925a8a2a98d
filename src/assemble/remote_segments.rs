//! The shared tier of the segment cache: entries kept in an OCI registry repository (the
//! provider's `segment_cache` block), so that a runner with an empty local cache fetches
//! the compressed segments another runner built instead of compressing them again.
//!
//! An entry is the local cache's file, as it is ([`super::segment_cache`]: compressed
//! bytes, metadata, a footer binding them to the key), stored as the one layer of a
//! manifest tagged `segment-<key hex>`:
//!
//! ```text
//! artifactType  application/vnd.resin.segment.v1
//! config        the empty descriptor ({})
//! layers        [ application/vnd.resin.segment.entry.v1: the entry ]
//! annotations   dev.resin.segment.key        the key
//!               dev.resin.segment.signer     the signing key's name
//!               dev.resin.segment.signature  ed25519 over key, entry digest and size
//! ```
//!
//! * **Reading** (a local miss): the manifest by its tag (one request; a miss is a 404),
//!   then checks before a byte of the entry is fetched: the artifact type, the key, one
//!   layer of the entry type and of a bounded size, a signer the provider trusts and a
//!   signature that verifies ([`super::segment_keys`]). The entry is then fetched
//!   (verified against its digest) and must verify as a local entry for that key before it
//!   is put in the local cache, the first tier. Anything refused is logged with why, and
//!   the segment is built locally.
//! * **Writing**: an entry built locally is pushed (blob, then the manifest under its tag)
//!   by a runner that has a signing key, in the background while the apply goes on (two at
//!   a time); the apply waits for the pushes before it ends. A push that fails is not an
//!   error. The segment of an image's files is not pushed when one of them is
//!   `sensitive_contents`: secrets stay here.
//! * **Faults never fail a build**: a registry that cannot be reached, refuses, or answers
//!   nonsense turns the shared tier off (reads, or pushes only when only pushes were
//!   refused) for the rest of the provider's run, and the apply says so once, as a warning.
//!   The provider never lists the repository; what it keeps is the registry's business.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::segment_cache::{CachedSegment, SegmentCache};
use super::segment_keys::{signed_message, PublicKey, SigningKey};
use crate::log;
use crate::oci::cache::BlobCache;
use crate::oci::digest::Digest;
use crate::oci::reference::{ImageReference, RegistryReference};
use crate::oci::registry::{BlobSource, RegistryClient};
use crate::oci::FetchError;

pub const SEGMENT_TYPE: &str = "application/vnd.resin.segment.v1";
pub const ENTRY_TYPE: &str = "application/vnd.resin.segment.entry.v1";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const KEY_ANNOTATION: &str = "dev.resin.segment.key";
const SIGNER_ANNOTATION: &str = "dev.resin.segment.signer";
const SIGNATURE_ANNOTATION: &str = "dev.resin.segment.signature";
/// The largest entry fetched (a segment is a few images' worth of compressed files).
const MAX_ENTRY_BYTES: u64 = 4 << 30;
/// Entries pushed at once.
const PARALLEL_PUSHES: usize = 2;

/// The provider's `segment_cache` settings.
#[derive(Debug)]
pub struct RemoteSettings {
    /// `registry/repository`, no tag.
    pub repository: String,
    pub trusted: Vec<PublicKey>,
    pub signer: Option<SigningKey>,
}

/// What one apply got from the shared tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteCounts {
    pub fetched: usize,
    pub refused: usize,
    pub pushed: usize,
}

/// The shared tier, shared by every resource of a provider run.
pub struct RemoteSegments {
    settings: RemoteSettings,
    client: Arc<RegistryClient>,
    /// Where fetched entries land first, verified against their digest.
    blobs: BlobCache,
    runtime: tokio::runtime::Handle,
    /// Reads are off: the registry could not be reached, or refused to serve.
    reads_off: AtomicBool,
    /// Pushes are off: the above, or the registry refused a push.
    pushes_off: AtomicBool,
    /// A warning was given already in this run.
    warned: AtomicBool,
    problems: Mutex<Vec<String>>,
    pushes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pushing: Arc<tokio::sync::Semaphore>,
    /// The empty config blob is in the repository.
    config_pushed: tokio::sync::OnceCell<()>,
    fetched: AtomicUsize,
    refused: AtomicUsize,
    pushed: AtomicUsize,
}

impl std::fmt::Debug for RemoteSegments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSegments").field("repository", &self.settings.repository).finish_non_exhaustive()
    }
}

/// Why the shared tier gave nothing for a key.
enum Refusal {
    /// The entry is not acceptable: logged, the segment is built.
    Entry(String),
    /// The registry is the problem: the shared tier is turned off.
    Registry(String),
}

impl RemoteSegments {
    /// Must be called on the async runtime the pushes are to run on.
    pub fn new(settings: RemoteSettings, client: Arc<RegistryClient>, blobs: BlobCache) -> RemoteSegments {
        RemoteSegments {
            settings,
            client,
            blobs,
            runtime: tokio::runtime::Handle::current(),
            reads_off: AtomicBool::new(false),
            pushes_off: AtomicBool::new(false),
            warned: AtomicBool::new(false),
            problems: Mutex::new(Vec::new()),
            pushes: Mutex::new(Vec::new()),
            pushing: Arc::new(tokio::sync::Semaphore::new(PARALLEL_PUSHES)),
            config_pushed: tokio::sync::OnceCell::new(),
            fetched: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            pushed: AtomicUsize::new(0),
        }
    }

    pub fn repository(&self) -> &str {
        &self.settings.repository
    }

    /// The reference of `key`'s entry.
    fn reference(&self, key: &Digest) -> Result<RegistryReference> {
        let text = format!("{}:segment-{}", self.settings.repository, key.digest());
        match text.parse::<ImageReference>()? {
            ImageReference::Registry(reference) => Ok(reference),
            _ => bail!("{} is not a registry repository", self.settings.repository),
        }
    }

    fn problem(&self, what: String) {
        log::warn(
            "shared segment cache",
            &[("repository", self.settings.repository.clone()), ("problem", what.clone())],
        );
        self.problems.lock().expect("problems lock").push(what);
    }

    /// Fetches `key`'s entry into `cache` (the local tier) and returns it open, blocking
    /// the calling thread (not a thread of the async runtime).
    pub fn fetch(&self, key: &Digest, cache: &SegmentCache) -> Option<CachedSegment> {
        if self.reads_off.load(Ordering::SeqCst) {
            return None;
        }
        match self.runtime.block_on(self.fetch_entry(key, cache)) {
            Ok(found) => {
                if found.is_some() {
                    self.fetched.fetch_add(1, Ordering::SeqCst);
                }
                found
            }
            Err(Refusal::Entry(why)) => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                self.problem(format!("refused the entry of segment {key}: {why}; built it here"));
                None
            }
            Err(Refusal::Registry(why)) => {
                self.reads_off.store(true, Ordering::SeqCst);
                self.pushes_off.store(true, Ordering::SeqCst);
                self.problem(format!("{why}; building every segment here"));
                None
            }
        }
    }

    async fn fetch_entry(&self, key: &Digest, cache: &SegmentCache) -> Result<Option<CachedSegment>, Refusal> {
        let reference = self.reference(key).map_err(|e| Refusal::Registry(format!("{e:#}")))?;
        let manifest = match self.client.fetch_manifest(&reference, None).await {
            Ok((bytes, _)) => bytes,
            Err(e) if matches!(e.downcast_ref::<FetchError>(), Some(FetchError::NotFound { .. })) => return Ok(None),
            Err(e) => return Err(Refusal::Registry(format!("could not read {}: {e:#}", self.settings.repository))),
        };
        let (entry, size) = self.accepted(key, &manifest).map_err(|e| Refusal::Entry(format!("{e:#}")))?;
        if let Err(e) = self.client.fetch_blob(&reference, &entry, size, &self.blobs).await {
            return Err(match e.downcast_ref::<FetchError>() {
                Some(FetchError::Unreachable { .. }) | Some(FetchError::Unauthorized { .. }) => {
                    Refusal::Registry(format!("could not read {}: {e:#}", self.settings.repository))
                }
                _ => Refusal::Entry(format!("fetching {entry}: {e:#}")),
            });
        }
        let blob = self.blobs.blob_path(&entry);
        let adopted = cache.adopt(key, &blob);
        // The local tier holds it now (or refused it): the blob cache need not.
        if let Err(e) = self.blobs.remove(&entry) {
            log::debug("shared segment cache: could not remove a fetched entry", &[("error", format!("{e:#}"))]);
        }
        let adopted = adopted.map_err(|e| Refusal::Entry(format!("{e:#}")))?;
        log::debug("shared segment cache: fetched", &[("key", key.to_string()), ("bytes", size.to_string())]);
        Ok(Some(adopted))
    }

    /// The entry's digest and size when `manifest` is a signed entry of `key` by a trusted
    /// signer; why not otherwise.
    fn accepted(&self, key: &Digest, manifest: &[u8]) -> Result<(Digest, u64)> {
        let manifest: serde_json::Value = serde_json::from_slice(manifest).context("the manifest is not JSON")?;
        if manifest["artifactType"] != SEGMENT_TYPE {
            bail!("the manifest is not a resin segment ({})", manifest["artifactType"]);
        }
        let annotations = &manifest["annotations"];
        if annotations[KEY_ANNOTATION] != key.to_string() {
            bail!("the manifest is the entry of another key ({})", annotations[KEY_ANNOTATION]);
        }
        let layers = manifest["layers"].as_array().map(Vec::as_slice).unwrap_or_default();
        let [layer] = layers else { bail!("the manifest has {} layers, not one entry", layers.len()) };
        if layer["mediaType"] != ENTRY_TYPE {
            bail!("its layer is {}, not {ENTRY_TYPE}", layer["mediaType"]);
        }
        let entry =
            crate::oci::digest::parse(layer["digest"].as_str().unwrap_or_default()).context("its layer's digest")?;
        let size = layer["size"].as_u64().context("its layer has no size")?;
        if size > MAX_ENTRY_BYTES {
            bail!("its entry has {size} bytes, more than the {MAX_ENTRY_BYTES} a segment may have");
        }
        let (Some(signer), Some(signature)) =
            (annotations[SIGNER_ANNOTATION].as_str(), annotations[SIGNATURE_ANNOTATION].as_str())
        else {
            bail!("it is not signed");
        };
        // Several trusted keys may have one name (a key rotated under its name): any of
        // them will do.
        let named: Vec<&PublicKey> = self.settings.trusted.iter().filter(|k| k.name == signer).collect();
        if named.is_empty() {
            bail!("it is signed by {signer:?}, which is not a trusted key");
        }
        let message = signed_message(key, &entry, size);
        if !named.iter().any(|trusted| trusted.verifies(&message, signature)) {
            bail!("its signature is not {signer:?}'s over this key and entry");
        }
        Ok((entry, size))
    }

    /// Pushes the entry of `key` at `path`, in the background, when this runner signs.
    pub fn push(self: &Arc<Self>, key: &Digest, path: &Path) {
        if self.settings.signer.is_none() || self.pushes_off.load(Ordering::SeqCst) {
            return;
        }
        let (this, key, path) = (self.clone(), key.clone(), path.to_path_buf());
        let task = self.runtime.spawn(async move {
            let Ok(_permit) = this.pushing.clone().acquire_owned().await else { return };
            if this.pushes_off.load(Ordering::SeqCst) {
                return;
            }
            match this.push_entry(&key, &path).await {
                Ok(()) => {
                    this.pushed.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => {
                    this.pushes_off.store(true, Ordering::SeqCst);
                    this.problem(format!(
                        "could not push to {}: {e:#}; the other runners build it too",
                        this.settings.repository
                    ));
                }
            }
        });
        self.pushes.lock().expect("pushes lock").push(task);
    }

    async fn push_entry(&self, key: &Digest, path: &Path) -> Result<()> {
        let signer = self.settings.signer.as_ref().context("no signing key")?;
        let reference = self.reference(key)?;
        let hashed = path.to_path_buf();
        // The entry may be trimmed from the local tier meanwhile: then there is nothing to push.
        let Ok(Ok((entry, size))) = tokio::task::spawn_blocking(move || crate::assemble::file_digest(&hashed)).await
        else {
            return Ok(());
        };
        let entry = crate::oci::digest::parse(&entry)?;
        self.client.push_blob(&reference, &entry, &BlobSource::file(path, size)).await?;
        // The empty config once, before any manifest: distribution can lose a blob that two
        // uploads put at once (seen: a manifest refused with MANIFEST_BLOB_UNKNOWN).
        self.config_pushed
            .get_or_try_init(|| async {
                self.client.push_blob(&reference, &empty_digest(), &BlobSource::bytes(EMPTY.to_vec())).await.map(|_| ())
            })
            .await?;
        let signature = signer.sign(&signed_message(key, &entry, size));
        let bytes = entry_manifest(key, &entry, size, Some((&signer.name, &signature)));
        let tag = reference.tag().unwrap_or_default().to_string();
        self.client.push_manifest(&reference, &tag, OCI_MANIFEST, &bytes).await?;
        log::debug("shared segment cache: pushed", &[("key", key.to_string()), ("bytes", size.to_string())]);
        Ok(())
    }

    /// Waits for the pushes started so far; returns what the shared tier did since the
    /// last call, and the warning to give (once per run) if it had problems.
    pub async fn settle(&self) -> (RemoteCounts, Option<String>) {
        let pushes: Vec<_> = std::mem::take(&mut *self.pushes.lock().expect("pushes lock"));
        for push in pushes {
            let _ = push.await;
        }
        let counts = RemoteCounts {
            fetched: self.fetched.swap(0, Ordering::SeqCst),
            refused: self.refused.swap(0, Ordering::SeqCst),
            pushed: self.pushed.swap(0, Ordering::SeqCst),
        };
        // Quiet for the resources that used nothing of it.
        let level: fn(&str, &[(&str, String)]) = if counts == RemoteCounts::default() { log::debug } else { log::info };
        level(
            "assembly: shared segment cache",
            &[
                ("repository", self.settings.repository.clone()),
                ("fetched", counts.fetched.to_string()),
                ("refused", counts.refused.to_string()),
                ("pushed", counts.pushed.to_string()),
            ],
        );
        let problems = std::mem::take(&mut *self.problems.lock().expect("problems lock"));
        let warning = (!problems.is_empty() && !self.warned.swap(true, Ordering::SeqCst)).then(|| problems.join("\n"));
        (counts, warning)
    }
}

/// OCI's empty config.
const EMPTY: &[u8] = b"{}";

fn empty_digest() -> Digest {
    crate::oci::digest::sha256(EMPTY)
}

/// The manifest of `key`'s entry (`entry`, `size` bytes), with a signer's name and
/// signature when given.
fn entry_manifest(key: &Digest, entry: &Digest, size: u64, signed: Option<(&str, &str)>) -> Vec<u8> {
    let mut annotations = json!({ KEY_ANNOTATION: key.to_string() });
    if let Some((signer, signature)) = signed {
        annotations[SIGNER_ANNOTATION] = json!(signer);
        annotations[SIGNATURE_ANNOTATION] = json!(signature);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SEGMENT_TYPE,
        "config": { "mediaType": EMPTY_TYPE, "digest": empty_digest().to_string(), "size": EMPTY.len() },
        "layers": [ { "mediaType": ENTRY_TYPE, "digest": entry.to_string(), "size": size } ],
        "annotations": annotations,
    });
    serde_json::to_vec(&manifest).expect("a manifest serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::segment_cache::tests::{key, put};
    use crate::oci::auth::{DockerConfig, RegistrySettings};

    struct Runner {
        cache: SegmentCache,
        _dir: tempfile::TempDir,
    }

    impl Runner {
        /// A runner with an empty local cache, trusting `trusted`, signing with `signer`.
        fn new(
            runtime: &tokio::runtime::Runtime,
            address: &str,
            trusted: &[&PublicKey],
            signer: Option<&str>,
        ) -> Runner {
            let _entered = runtime.enter();
            let dir = tempfile::tempdir().unwrap();
            let settings =
                RegistrySettings { address: address.to_string(), username: None, password: None, plain_http: true };
            let client = Arc::new(RegistryClient::new(
                vec![settings],
                DockerConfig::default(),
                crate::oci::registry::DEFAULT_TIMEOUT,
            ));
            let remote = RemoteSegments::new(
                RemoteSettings {
                    repository: format!("{address}/ci/resin-cache"),
                    trusted: trusted.iter().map(|k| (*k).clone()).collect(),
                    signer: signer.map(|s| SigningKey::parse(s).unwrap()),
                },
                client,
                BlobCache::open(dir.path()).unwrap(),
            );
            let cache = SegmentCache::open(dir.path(), 1 << 30).unwrap().with_remote(Arc::new(remote));
            Runner { cache, _dir: dir }
        }

        fn remote(&self) -> &RemoteSegments {
            self.cache.remote().unwrap()
        }

        fn settle(&self, runtime: &tokio::runtime::Runtime) -> (RemoteCounts, Option<String>) {
            runtime.block_on(self.remote().settle())
        }

        fn data(&self, key: &Digest) -> Option<Vec<u8>> {
            let mut entry = self.cache.get(key).unwrap()?;
            let mut out = Vec::new();
            entry.copy_to(&mut out).unwrap();
            Some(out)
        }

        /// Pushes `bytes` as `key`'s entry with this manifest signature, as a rogue or
        /// broken writer would.
        fn push_raw(
            &self,
            runtime: &tokio::runtime::Runtime,
            key: &Digest,
            bytes: &[u8],
            signed: Option<(&str, &str)>,
        ) {
            let remote = self.remote();
            let reference = remote.reference(key).unwrap();
            let entry = crate::oci::digest::sha256(bytes);
            let manifest = entry_manifest(key, &entry, bytes.len() as u64, signed);
            runtime.block_on(async {
                let client = &remote.client;
                client.push_blob(&reference, &entry, &BlobSource::bytes(bytes.to_vec())).await.unwrap();
                client.push_blob(&reference, &empty_digest(), &BlobSource::bytes(EMPTY.to_vec())).await.unwrap();
                let tag = reference.tag().unwrap().to_string();
                client.push_manifest(&reference, &tag, OCI_MANIFEST, &manifest).await.unwrap();
            });
        }
    }

    /// The entry file `runner` keeps for `key`.
    fn entry_file(runner: &Runner, key: &Digest) -> Vec<u8> {
        std::fs::read(runner.cache.dir().join(key.digest())).unwrap()
    }

    #[test]
    fn entries_are_shared_when_signed_by_a_trusted_key_and_poisoned_ones_are_refused() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut registry = resin_testkit::registry::Registry::start(None);
        let address = registry.address.clone();
        let (secret, public) = SigningKey::generate("writer").unwrap();
        let (rogue_secret, rogue) = SigningKey::generate("rogue").unwrap();
        let writer = Runner::new(&runtime, &address, &[&public], Some(&secret));
        put(&writer.cache, &key(1), b"compressed bytes one");
        put(&writer.cache, &key(2), b"compressed bytes two");
        let (counts, problems) = writer.settle(&runtime);
        assert_eq!((counts.pushed, problems), (2, None));

        // A reader with an empty cache gets both, byte for byte, and its misses are misses.
        let reader = Runner::new(&runtime, &address, &[&public], None);
        assert_eq!(reader.data(&key(1)).unwrap(), b"compressed bytes one");
        assert_eq!(reader.data(&key(2)).unwrap(), b"compressed bytes two");
        assert!(reader.data(&key(9)).is_none());
        assert_eq!(entry_file(&reader, &key(1)), entry_file(&writer, &key(1)), "the same entry");
        let (counts, problems) = reader.settle(&runtime);
        assert_eq!((counts.fetched, counts.refused, counts.pushed, problems), (2, 0, 0, None));
        // A reader that does not sign pushes nothing: what it builds stays local.
        put(&reader.cache, &key(8), b"built by the reader");
        assert_eq!(reader.settle(&runtime).0.pushed, 0);

        // The poisoned entries, each under a real key; a fresh reader for each.
        let good = entry_file(&writer, &key(1));
        let good_digest = crate::oci::digest::sha256(&good);
        let signature = |signer: &str, entry: &[u8], size: u64| {
            SigningKey::parse(signer).unwrap().sign(&signed_message(&key(3), &crate::oci::digest::sha256(entry), size))
        };
        let truncated = &good[..good.len() - 10];
        let other = entry_file(&writer, &key(2));
        // (case, the entry's bytes, (signer, signature), what the refusal says)
        type Case<'a> = (&'a str, Vec<u8>, Option<(String, String)>, &'a str);
        let cases: Vec<Case> = vec![
            (
                "signed by a key not trusted",
                good.clone(),
                Some(("rogue".into(), signature(&rogue_secret, &good, good.len() as u64))),
                "which is not a trusted key",
            ),
            ("unsigned", good.clone(), None, "it is not signed"),
            (
                "another key's entry under the trusted name, signature of the real one",
                other.clone(),
                Some((
                    "writer".into(),
                    SigningKey::parse(&secret).unwrap().sign(&signed_message(&key(3), &good_digest, good.len() as u64)),
                )),
                "signature is not \"writer\"'s",
            ),
            (
                "truncated, signed by the trusted key",
                truncated.to_vec(),
                Some(("writer".into(), signature(&secret, truncated, truncated.len() as u64))),
                "it is not an entry of key",
            ),
            (
                "another key's entry, signed by the trusted key",
                other.clone(),
                Some(("writer".into(), signature(&secret, &other, other.len() as u64))),
                "it is not an entry of key",
            ),
        ];
        for (case, bytes, signed, says) in cases {
            writer.push_raw(&runtime, &key(3), &bytes, signed.as_ref().map(|(n, s)| (n.as_str(), s.as_str())));
            let reader = Runner::new(&runtime, &address, &[&public], None);
            assert!(reader.data(&key(3)).is_none(), "{case}: accepted");
            let (counts, problems) = reader.settle(&runtime);
            let problems = problems.unwrap_or_default();
            eprintln!("{case}: {problems}");
            assert_eq!(counts.refused, 1, "{case}: {problems}");
            assert!(problems.contains(says) && problems.contains(&key(3).to_string()), "{case}: {problems}");
            assert!(!reader.cache.dir().join(key(3).digest()).exists(), "{case}: kept");
            // The reader still reads good entries: a refused entry turns nothing off.
            assert_eq!(reader.data(&key(1)).unwrap(), b"compressed bytes one", "{case}");
        }
        // A key rotated under the same name: a reader trusting the old and the new key of
        // that name accepts entries signed by either.
        let (renamed_secret, renamed) = SigningKey::generate("writer").unwrap();
        let rotated = Runner::new(&runtime, &address, &[&renamed, &public], Some(&renamed_secret));
        put(&rotated.cache, &key(4), b"signed by the new key");
        assert_eq!(rotated.settle(&runtime).0.pushed, 1);
        let both = Runner::new(&runtime, &address, &[&public, &renamed], None);
        assert_eq!(both.data(&key(4)).unwrap(), b"signed by the new key");
        assert_eq!(both.data(&key(1)).unwrap(), b"compressed bytes one");
        assert_eq!(both.settle(&runtime).0.fetched, 2);

        // The rogue's own reader trusts it, and only it.
        let rogues = Runner::new(&runtime, &address, &[&rogue], None);
        assert!(rogues.data(&key(1)).is_none());
        assert!(rogues.settle(&runtime).1.unwrap().contains("\"writer\", which is not a trusted key"));

        // The registry goes away: nothing fails, the reader says so once and stops asking.
        registry.stop();
        let reader = Runner::new(&runtime, &address, &[&public], Some(&secret));
        assert!(reader.data(&key(1)).is_none());
        let started = std::time::Instant::now();
        assert!(reader.data(&key(2)).is_none());
        assert!(started.elapsed() < std::time::Duration::from_millis(100), "the second miss does not ask again");
        put(&reader.cache, &key(7), b"built while the registry is down");
        let (counts, problems) = reader.settle(&runtime);
        assert_eq!((counts.fetched, counts.pushed), (0, 0));
        let problems = problems.unwrap();
        assert!(problems.contains("could not read") && problems.contains("building every segment here"), "{problems}");
        assert!(reader.settle(&runtime).1.is_none(), "warned once");
    }
}
