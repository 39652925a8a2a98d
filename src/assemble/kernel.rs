//! The files a kernel's settings name (the kernel binary, the modules tarball, the
//! microcode cpio). `resin_kernel`'s apply checks them, so that a wrong name is reported at
//! the setting rather than at the first image built from it; that one read of the kernel
//! image also keeps each file in the segment cache (under the image's digest and the
//! path), so assembly copies them from there instead of reading the kernel image again.
//! Whichever comes first reads the image; nothing reads it twice while the files are kept.
//!
//! That read keeps nothing but the named files, each written into its cache entry as its
//! layer is read: the modules tarball (tens of megabytes) is not first kept with the rest
//! of the image and copied from there. A named file whose data the tar gives under another
//! name (a hard link) is kept from a second read of the whole image.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use tempfile::NamedTempFile;

use super::artifacts::temporary;
use super::hash::{content_hash, ASSEMBLY_FORMAT};
use super::segment_cache::{CachedSegment, NewSegment, SegmentCache, SegmentMeta};
use super::spec::KernelSpec;
use super::union::{flatten_pulled, open_file, union_pulled, Downloads};
use super::warning::Warning;
use crate::copy::Buffer;
use crate::oci::cache::BlobCache;
use crate::oci::digest::Digest;
use crate::oci::hashing::HashingWriter;
use crate::oci::ResolvedImage;
use crate::rootfs::path::{display, normalise};
use crate::rootfs::spool::{Extent, Spool};
use crate::rootfs::tree::{Content, Node, Tree};

/// A file a kernel setting names, and the setting (`binary`, `modules_tar`, `ucode`).
pub struct NamedFile<'a> {
    pub setting: &'static str,
    pub path: &'a str,
}

/// The files of one kernel image, from the segment cache or, when one is missing, from one
/// read of the image, which writes every file the source was made for that the cache
/// lacks straight into a new entry as the layers are read (nothing else of the image is
/// kept, and no file is copied twice).
pub struct KernelSource<'a> {
    image: &'a ResolvedImage,
    cache: &'a BlobCache,
    segments: &'a SegmentCache,
    /// The paths (normalised) the caller will ask for.
    wanted: Vec<Vec<u8>>,
    /// What the one read found, by path, until asked for: `None` when the image has no
    /// regular file there.
    read: BTreeMap<Vec<u8>, Option<CachedSegment>>,
    /// The whole union, for the rare file whose data the read did not keep.
    union: Option<(Tree, Spool)>,
    /// Layers the first read reads as they download.
    downloads: Downloads,
    /// What reading the image warned about.
    warnings: Vec<Warning>,
}

impl<'a> KernelSource<'a> {
    /// A source for the files at `wanted` (normalised paths) of `image`, whose first read
    /// reads the layers in `downloads` as they arrive.
    pub fn new(
        image: &'a ResolvedImage,
        cache: &'a BlobCache,
        segments: &'a SegmentCache,
        wanted: Vec<Vec<u8>>,
        downloads: Downloads,
    ) -> KernelSource<'a> {
        KernelSource {
            image,
            cache,
            segments,
            wanted,
            read: BTreeMap::new(),
            union: None,
            downloads,
            warnings: Vec::new(),
        }
    }

    /// A source for the files `spec` names.
    pub fn for_spec(
        spec: &KernelSpec,
        image: &'a ResolvedImage,
        cache: &'a BlobCache,
        segments: &'a SegmentCache,
    ) -> KernelSource<'a> {
        let named = [Some(&spec.binary), Some(&spec.modules_tar).filter(|m| !m.is_empty()), spec.ucode.as_ref()];
        // A name that does not normalise is reported when it is asked for.
        let wanted = named.into_iter().flatten().filter_map(|path| normalise(path.as_bytes()).ok()).collect();
        KernelSource::new(image, cache, segments, wanted, Downloads::new())
    }

    fn key(&self, path: &[u8]) -> Digest {
        content_hash(&json!({
            "format": ASSEMBLY_FORMAT,
            "kernel image": self.image.digest.to_string(),
            "path": hex::encode(path),
        }))
    }

    /// The regular file `path`, kept in the segment cache; `None` when the image has no
    /// such file. Its entry also carries the warnings reading the image gave.
    fn kept(&mut self, path: &[u8]) -> Result<Option<CachedSegment>> {
        if let Some(found) = self.read.remove(path) {
            return Ok(found);
        }
        if let Some(kept) = self.segments.get(&self.key(path))? {
            return Ok(Some(kept));
        }
        self.read_image(path)?;
        Ok(self.read.remove(path).flatten())
    }

    /// Reads the image once, keeping `path` and the other wanted files the cache lacks
    /// (or has damaged), each written into a new cache entry as its layer is read.
    fn read_image(&mut self, path: &[u8]) -> Result<()> {
        let mut keeping = BTreeSet::from([path.to_vec()]);
        for wanted in self.wanted.clone() {
            if keeping.contains(&wanted) || self.read.contains_key(&wanted) {
                continue;
            }
            match self.segments.get(&self.key(&wanted))? {
                Some(kept) => _ = self.read.insert(wanted, Some(kept)),
                None => _ = keeping.insert(wanted),
            }
        }
        crate::log::debug("reading the kernel image", &[("reference", self.image.reference.to_string())]);
        // Each kept file's data is a new entry; its extent is its place in the kept
        // files' data one after another (a later file of the same path replaces it).
        let (segments, mut entries, mut end, mut buffer) = (self.segments, BTreeMap::new(), 0, Buffer::new());
        let downloads = std::mem::take(&mut self.downloads);
        let (tree, warnings) = union_pulled(self.image, self.cache, downloads, |path, data| {
            if !keeping.contains(path) {
                return Ok(None);
            }
            let mut entry = segments.create()?;
            let length = crate::copy::copy(data, &mut entry, &mut buffer)
                .with_context(|| format!("keeping {} in {}", display(path), segments.dir().display()))?;
            let extent = Extent { offset: end, length };
            end += length;
            entries.insert(extent, entry);
            Ok(Some(extent))
        })?;
        self.warnings = warnings;
        for path in keeping {
            let found = match tree.get(&path) {
                Some(Node::File(id)) => match tree.inode(*id).content {
                    Content::Layer { extent: Some(extent), .. } => entries.remove(&extent),
                    _ => None,
                },
                _ => {
                    self.read.insert(path, None);
                    continue;
                }
            };
            let kept = match found {
                Some(entry) => self.finish(&path, entry)?,
                // A hard link to a file not kept, or a second name of a file kept.
                None => self.kept_from_union(&path)?,
            };
            self.read.insert(path, Some(kept));
        }
        Ok(())
    }

    /// Puts a new entry holding the file `path` in place.
    fn finish(&self, path: &[u8], entry: NewSegment) -> Result<CachedSegment> {
        let warnings = self.warnings.iter().map(|w| (w.summary.clone(), w.detail.clone())).collect();
        let meta = SegmentMeta { crc: 0, length: entry.data_length(), directories: Vec::new(), warnings };
        entry.finish(self.segments, &self.key(path), &meta, true)
    }

    /// The regular file `path` kept from the image's whole union, read (once) if it was
    /// not yet.
    fn kept_from_union(&mut self, path: &[u8]) -> Result<CachedSegment> {
        if self.union.is_none() {
            crate::log::debug("reading the kernel image", &[("reference", self.image.reference.to_string())]);
            let (tree, spool, _) = flatten_pulled(self.image, self.cache)?;
            self.union = Some((tree, spool));
        }
        let (tree, spool) = self.union.as_ref().expect("just read");
        let mut entry = self.segments.create()?;
        std::io::copy(&mut open_file(tree, spool, path, self.image)?, &mut entry)
            .with_context(|| format!("keeping {} in {}", display(path), self.segments.dir().display()))?;
        self.finish(path, entry)
    }

    /// The regular file `path`, kept in the segment cache (an error names the image and
    /// the path when there is no such file).
    pub fn file(&mut self, path: &[u8]) -> Result<CachedSegment> {
        let image = self.image;
        self.kept(path)?.with_context(|| format!("{} has no file /{}", image.reference, String::from_utf8_lossy(path)))
    }
}

/// Checks that the pulled kernel image has every named file as a regular file, and keeps
/// each in the segment cache; layers in `downloads` are read as they arrive (the image is
/// being pulled). On failure, returns the setting at fault with the error (`image` when
/// the layers themselves cannot be read).
pub fn check_kernel_files(
    image: &ResolvedImage,
    cache: &BlobCache,
    segments: &SegmentCache,
    files: &[NamedFile<'_>],
    downloads: Downloads,
) -> Result<(), (&'static str, anyhow::Error)> {
    let paths = files
        .iter()
        .map(|file| normalise(file.path.as_bytes()).map_err(|e| (file.setting, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut source = KernelSource::new(image, cache, segments, paths.clone(), downloads);
    for (file, path) in files.iter().zip(paths) {
        if source.kept(&path).map_err(|e| ("image", e))?.is_none() {
            return Err((
                file.setting,
                anyhow::anyhow!("{} has no file /{}", image.reference, file.path.trim_start_matches('/')),
            ));
        }
    }
    Ok(())
}

/// A kernel image's files for an assembly: the binary in a temporary file of the output
/// directory, the microcode cpio, and the warnings reading the image gave.
pub struct KernelFiles {
    /// The kernel binary, with the digest and size taken as it was written.
    pub kernel: (NamedTempFile, Digest, u64),
    /// The early microcode cpio.
    pub ucode: Option<NamedTempFile>,
    pub warnings: Vec<Warning>,
}

/// Copies a kept file into a new temporary file of `output_dir`, hashing it.
fn copy_out(kept: &mut CachedSegment, output_dir: &Path, label: &str) -> Result<(NamedTempFile, Digest, u64)> {
    let mut file = temporary(output_dir, label)?;
    let mut out = HashingWriter::new(file.as_file_mut());
    kept.copy_to(&mut out).with_context(|| format!("writing the {label} to {}", output_dir.display()))?;
    let (digest, size) = out.finish();
    Ok((file, digest, size))
}

/// The kernel binary and the microcode `spec` names, in temporary files of `output_dir`.
pub fn extract_kernel(spec: &KernelSpec, source: &mut KernelSource<'_>, output_dir: &Path) -> Result<KernelFiles> {
    let mut binary = source.file(&normalise(spec.binary.as_bytes())?).context("the kernel binary")?;
    let what = format!("kernel {}", source.image.reference);
    let warnings = binary.meta.warnings.iter().map(|warning| Warning::kept(&what, warning)).collect();
    let kernel = copy_out(&mut binary, output_dir, "kernel")?;
    let ucode = match &spec.ucode {
        Some(path) => {
            let mut kept = source.file(&normalise(path.as_bytes())?).context("the microcode")?;
            Some(copy_out(&mut kept, output_dir, "ucode")?.0)
        }
        None => None,
    };
    Ok(KernelFiles { kernel, ucode, warnings })
}

/// The union of the modules tarball `spec` names, its data kept in `modules_spool`.
pub fn read_modules(
    spec: &KernelSpec,
    source: &mut KernelSource<'_>,
    mut modules_spool: Spool,
) -> Result<(Tree, Spool)> {
    let describe = || format!("reading {} of {}", spec.modules_tar, source.image.reference);
    let mut kept = source.file(&normalise(spec.modules_tar.as_bytes())?).with_context(describe)?;
    let mut modules = Tree::new();
    modules.read_layer(0, kept.reader()?, &mut modules_spool).with_context(describe)?;
    modules_spool.finish()?;
    Ok((modules, modules_spool))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use resin_testkit::fixtures::{self, Entry};

    use super::*;
    use crate::oci::auth::DockerConfig;
    use crate::oci::registry::{RegistryClient, DEFAULT_TIMEOUT};
    use crate::oci::Puller;

    /// A kernel image of `layers` in a layout, resolved into a fresh cache.
    struct Pulled {
        _work: tempfile::TempDir,
        cache: BlobCache,
        segments: SegmentCache,
        image: ResolvedImage,
        puller: Puller,
        runtime: tokio::runtime::Runtime,
    }

    impl Pulled {
        fn pull(&self) {
            self.runtime.block_on(self.puller.pull(&self.image)).unwrap();
        }
    }

    fn resolved(layers: &[Vec<u8>]) -> Pulled {
        let work = tempfile::tempdir().unwrap();
        let layout = work.path().join("layout");
        fixtures::add_layered_image(&layout, "kernel", layers, serde_json::json!({}));
        let cache = BlobCache::open(&work.path().join("cache")).unwrap();
        let client = Arc::new(RegistryClient::new(vec![], DockerConfig::default(), DEFAULT_TIMEOUT));
        let puller = Puller::new(cache.clone(), client, 2);
        let reference = format!("oci-layout:{}:kernel", layout.display()).parse().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let image = runtime.block_on(puller.resolve(&reference, &"linux/amd64".parse().unwrap(), None)).unwrap();
        let segments = SegmentCache::open(&work.path().join("cache"), 1 << 30).unwrap();
        Pulled { _work: work, cache, segments, image, puller, runtime }
    }

    /// A kernel image of `layers` in a layout, pulled into a fresh cache.
    fn pulled(layers: &[Vec<u8>]) -> Pulled {
        let pulled = resolved(layers);
        pulled.pull();
        pulled
    }

    fn named<'a>(files: &[(&'static str, &'a str)]) -> Vec<NamedFile<'a>> {
        files.iter().map(|&(setting, path)| NamedFile { setting, path }).collect()
    }

    /// The bytes of the file `path` kept in the segment cache.
    fn kept(pulled: &Pulled, path: &str) -> Option<Vec<u8>> {
        let source = KernelSource::new(&pulled.image, &pulled.cache, &pulled.segments, vec![], Downloads::new());
        let mut entry = pulled.segments.get(&source.key(path.as_bytes())).unwrap()?;
        let mut bytes = Vec::new();
        entry.copy_to(&mut bytes).unwrap();
        Some(bytes)
    }

    /// One read keeps every named file, as the last layer that has it gives it, and
    /// nothing else of the image.
    #[test]
    fn one_read_keeps_every_named_file_as_the_last_layer_gives_it() {
        let modules = fixtures::noise(1, 300_000);
        let pulled = pulled(&[
            fixtures::tar_layer(&[
                Entry::File("kernel", b"old kernel", 0o644),
                Entry::File("kernel.tar", &modules, 0o644),
                Entry::File("System.map", &fixtures::noise(2, 200_000), 0o644),
            ]),
            fixtures::tar_layer(&[Entry::File("kernel", b"new kernel", 0o644)]),
        ]);
        let files = named(&[("binary", "kernel"), ("modules_tar", "/kernel.tar")]);
        check_kernel_files(&pulled.image, &pulled.cache, &pulled.segments, &files, Downloads::new()).unwrap();
        assert_eq!(kept(&pulled, "kernel").unwrap(), b"new kernel");
        assert_eq!(kept(&pulled, "kernel.tar").unwrap(), modules);
        assert_eq!(kept(&pulled, "System.map"), None);
        let entries = std::fs::read_dir(pulled.segments.dir()).unwrap().count();
        assert_eq!(entries, 2, "the two files, nothing left besides them");

        // The assembly's source finds them kept, and would not read the image.
        let spec = KernelSpec {
            spec_version: crate::assemble::SPEC_VERSION,
            image: crate::oci::reference::PinnedImage::new(&pulled.image.reference, pulled.image.digest.clone()),
            index: None,
            platform: "linux/amd64".parse().unwrap(),
            cmdline: String::new(),
            binary: "kernel".into(),
            modules_tar: "kernel.tar".into(),
            ucode: None,
        };
        let mut source = KernelSource::for_spec(&spec, &pulled.image, &pulled.cache, &pulled.segments);
        assert_eq!(source.file(b"kernel").unwrap().compressed_length(), 10);
        assert!(source.read.is_empty() && source.union.is_none(), "nothing read");
    }

    /// The check reads a layer as it downloads, keeps what it read once the download
    /// verified it, and fails (keeping nothing) when the download never comes.
    #[test]
    fn the_check_reads_a_layer_as_it_downloads() {
        let modules = fixtures::noise(3, 2_000_000);
        let layer = fixtures::tar_layer(&[
            Entry::File("kernel", b"the kernel", 0o644),
            Entry::File("kernel.tar", &modules, 0o644),
        ]);
        let pulled = resolved(&[layer]);
        let digest = pulled.image.manifest.layers()[0].digest().clone();
        let checking = |tap| {
            let (image, cache, segments) = (pulled.image.clone(), pulled.cache.clone(), pulled.segments.clone());
            let files = named(&[("binary", "kernel"), ("modules_tar", "kernel.tar")]);
            std::thread::spawn(move || {
                check_kernel_files(&image, &cache, &segments, &files, Downloads::from([(0, tap)])).map_err(|e| e.1)
            })
        };

        let never = checking(pulled.cache.taps().tap(&digest));
        pulled.cache.taps().cancel(&digest);
        let error = never.join().unwrap().unwrap_err();
        assert!(format!("{error:#}").contains("ended before the blob was verified"), "{error:#}");
        assert_eq!(kept(&pulled, "kernel"), None, "nothing kept from a download that never came");

        let check = checking(pulled.cache.taps().tap(&digest));
        pulled.pull();
        check.join().unwrap().unwrap();
        assert!(pulled.cache.contains(&digest, None));
        assert_eq!(kept(&pulled, "kernel").unwrap(), b"the kernel");
        assert_eq!(kept(&pulled, "kernel.tar").unwrap(), modules);
    }

    /// A named file whose data came under another name (a hard link), or that shares its
    /// data with another named file, is kept from the image's whole union.
    #[test]
    fn named_files_that_are_hard_links_are_kept_whole() {
        let pulled = pulled(&[fixtures::tar_layer(&[
            Entry::Dir("boot"),
            Entry::File("boot/vmlinuz", b"the kernel", 0o644),
            Entry::HardLink("kernel", "boot/vmlinuz"),
            Entry::File("kernel.tar", b"modules", 0o644),
            Entry::HardLink("ucode.cpio", "kernel.tar"),
        ])]);
        let files = named(&[("binary", "kernel"), ("modules_tar", "kernel.tar"), ("ucode", "ucode.cpio")]);
        check_kernel_files(&pulled.image, &pulled.cache, &pulled.segments, &files, Downloads::new()).unwrap();
        assert_eq!(kept(&pulled, "kernel").unwrap(), b"the kernel");
        assert_eq!(kept(&pulled, "kernel.tar").unwrap(), b"modules");
        assert_eq!(kept(&pulled, "ucode.cpio").unwrap(), b"modules");
    }

    /// A named file a later layer removes is missing, reported at its setting.
    #[test]
    fn a_named_file_a_later_layer_removes_is_reported_at_its_setting() {
        let pulled = pulled(&[
            fixtures::tar_layer(&[
                Entry::File("kernel", b"the kernel", 0o644),
                Entry::File("kernel.tar", b"modules", 0o644),
            ]),
            fixtures::tar_layer(&[Entry::File(".wh.kernel.tar", b"", 0o644)]),
        ]);
        let files = named(&[("binary", "kernel"), ("modules_tar", "kernel.tar")]);
        let (setting, error) =
            check_kernel_files(&pulled.image, &pulled.cache, &pulled.segments, &files, Downloads::new()).unwrap_err();
        assert_eq!(setting, "modules_tar");
        assert!(format!("{error:#}").contains("has no file /kernel.tar"), "{error:#}");
        assert_eq!(kept(&pulled, "kernel").unwrap(), b"the kernel", "the file there is kept");
    }
}
