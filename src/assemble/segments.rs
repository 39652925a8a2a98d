//! The initrd's segments, planned from the composition alone (no layer is read): what
//! each segment holds, in order, and the bundle scaffolding written before a bundle's
//! files. Writing them is [`super::initrd`]'s job.
//!
//! Order (LinuxKit's): the kernel's modules tarball, each init image, the merged apk
//! database (kept only when two or more init images turn out to have one), each bundle
//! (onboot, onshutdown, services), then the `file` entries.
//!
//! A planned segment that is not in the segment cache is built here ([`Planned::build`]):
//! its tree, read from its image's layers ([`super::union`]), or the bytes it holds.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::compose::{Bundle, Composition, FileKind};
use super::early::EarlyReads;
use super::hash::content_hash;
use super::kernel::{read_modules, KernelSource};
use super::rewrite::{rewrite, ImageRole};
use super::segment_writer::{device_of, Entry, Segment};
use super::spec::PackageSpec;
use super::union::{extract, flatten_pulled, Flattened};
use super::warning::Warning;
use crate::initrd::segments::SegmentBody;
use crate::oci::cache::BlobCache;
use crate::oci::digest::Digest;
use crate::oci::reference::PinnedImage;
use crate::oci::ResolvedImage;
use crate::rootfs::spool::Spool;
use crate::rootfs::tree::{Content, Meta, Node, Tree};

/// Where an init image keeps its apk database.
pub const APK_DATABASE: &[u8] = b"lib/apk/db/installed";

/// What one segment holds.
#[derive(Debug)]
pub enum Planned<'c> {
    /// The kernel image's modules tarball, at `/`.
    KernelModules,
    /// `init[index]`, flattened at `/`.
    Init { index: usize, package: &'c PackageSpec },
    /// The init images' apk databases concatenated (LinuxKit's merge), when two or more
    /// have one: known only once the init images are flattened.
    ApkDatabases,
    /// A bundle: its scaffolding, then its image's files under `prefix` (when it is the
    /// bundle that carries them).
    Bundle { bundle: &'c Bundle, prefix: Vec<u8>, scaffold: Scaffold<'c> },
    /// The `file` entries.
    Files,
}

/// Written before a bundle's image files: its directories (each ancestor first) and its
/// `config.json` and `runtime.json`.
#[derive(Debug)]
pub struct Scaffold<'c> {
    pub directories: Vec<Vec<u8>>,
    pub files: Vec<(Vec<u8>, &'c [u8])>,
}

impl Planned<'_> {
    /// The segment's key, its name in the segment cache: `settings` (assembly format,
    /// compression...), what it holds ([`Planned::identity`]) and, of the directories
    /// `existing` written before it, those that can change its bytes: the ones under its
    /// prefix (a directory a layer only implies is not written again). The key names the
    /// segment's bytes wherever it sits in the initrd.
    pub fn key(&self, composition: &Composition, settings: &Value, existing: &BTreeSet<Vec<u8>>) -> Digest {
        let mut base = settings.clone();
        base["segment"] = self.identity(composition);
        // Where the segment's tree goes; `None` for a segment without a tree.
        let prefix: Option<&[u8]> = match self {
            Planned::KernelModules | Planned::Init { .. } | Planned::Files => Some(b""),
            Planned::Bundle { prefix, .. } => Some(prefix),
            Planned::ApkDatabases => None,
        };
        let relevant: Vec<String> = match prefix {
            Some(prefix) => {
                let below = [prefix, b"/"].concat();
                existing.iter().filter(|d| prefix.is_empty() || d.starts_with(&below)).map(hex::encode).collect()
            }
            None => Vec::new(),
        };
        content_hash(&json!({ "segment": content_hash(&base).to_string(), "existing": relevant }))
    }

    /// What the segment is, in messages: the attribute and the image.
    pub fn describe(&self, composition: &Composition) -> String {
        let kernel = &composition.inputs.kernel;
        match self {
            Planned::KernelModules => format!("kernel {} of {}", kernel.modules_tar, kernel.image),
            Planned::Init { index, package } => format!("init[{index}]: {}", package.image),
            Planned::ApkDatabases => format!("/{}", String::from_utf8_lossy(APK_DATABASE)),
            Planned::Bundle { bundle, .. } => {
                let at = format!("{}[{}]", bundle.section.attribute(), bundle.index);
                if bundle.extracts_image {
                    format!("{at}: {}", bundle.package.image)
                } else {
                    at
                }
            }
            Planned::Files => "file".into(),
        }
    }

    /// What the segment is made of, without reading a layer: images by digest, generated
    /// bytes by their sha256, names hex-encoded (they may be any bytes). Part of the
    /// segment's key ([`Planned::key`] adds the settings and what the segments before it write).
    pub fn identity(&self, composition: &Composition) -> serde_json::Value {
        let kernel = &composition.inputs.kernel;
        let sha = |bytes: &[u8]| crate::oci::digest::sha256(bytes).to_string();
        match self {
            Planned::KernelModules => json!({
                "kind": "kernel modules", "kernel": kernel.image.digest().to_string(), "modules_tar": kernel.modules_tar,
            }),
            Planned::Init { package, .. } => json!({ "kind": "init", "image": package.image.digest().to_string() }),
            Planned::ApkDatabases => json!({
                "kind": "apk databases",
                "init": composition.inputs.init.iter().map(|p| p.image.digest().to_string()).collect::<Vec<_>>(),
            }),
            Planned::Bundle { bundle, prefix, scaffold } => json!({
                "kind": "bundle",
                "image": bundle.extracts_image.then(|| bundle.package.image.digest().to_string()),
                "prefix": hex::encode(prefix),
                "directories": scaffold.directories.iter().map(hex::encode).collect::<Vec<_>>(),
                "files": scaffold.files.iter().map(|(path, bytes)| (hex::encode(path), sha(bytes))).collect::<Vec<_>>(),
            }),
            Planned::Files => json!({
                "kind": "files",
                "files": composition.files.iter().map(|f| json!({
                    "path": hex::encode(&f.path),
                    "kind": match f.kind { FileKind::Directory => "directory", FileKind::Symlink(_) => "symlink", _ => "file" },
                    "mode": f.mode, "uid": f.uid, "gid": f.gid, "size": f.size,
                    "sha256": f.digest.as_ref().map(ToString::to_string),
                })).collect::<Vec<_>>(),
            }),
        }
    }
}

/// What segment bodies are built from: the pulled images and their layers (verified as
/// they are read), the kernel image (its modules), and the apk databases of the init
/// images built so far, kept for the merge.
pub struct BodySources<'a> {
    composition: &'a Composition,
    images: &'a BTreeMap<PinnedImage, ResolvedImage>,
    cache: &'a BlobCache,
    kernel: KernelSource<'a>,
    init_databases: BTreeMap<usize, Option<Vec<u8>>>,
    /// Images flattened ahead ([`super::prefetch`]), for the segment that reads them.
    ready: BTreeMap<PinnedImage, Result<Flattened>>,
    /// Images read by package applies ([`super::early`]).
    early: &'a EarlyReads,
}

impl<'a> BodySources<'a> {
    pub fn new(
        composition: &'a Composition,
        images: &'a BTreeMap<PinnedImage, ResolvedImage>,
        cache: &'a BlobCache,
        kernel: KernelSource<'a>,
        early: &'a EarlyReads,
    ) -> BodySources<'a> {
        BodySources {
            composition,
            images,
            cache,
            kernel,
            init_databases: BTreeMap::new(),
            ready: BTreeMap::new(),
            early,
        }
    }

    /// The blob cache the layers are read from.
    pub fn cache(&self) -> &'a BlobCache {
        self.cache
    }

    /// The pulled image `image`.
    pub fn image(&self, image: &PinnedImage) -> &'a ResolvedImage {
        &self.images[image]
    }

    /// `image` flattened ahead: its segment takes it instead of reading the image.
    pub fn adopt(&mut self, image: PinnedImage, flattened: Result<Flattened>) {
        self.ready.insert(image, flattened);
    }

    /// A new spool for layer data: an unnamed temporary file beside the cache.
    fn spool(&self) -> Result<Spool> {
        Spool::new_in(self.cache.root())
    }

    /// `image` flattened: its tree, the spool holding its files' data, and the extended
    /// attributes dropped; read now unless it was read ahead.
    fn flatten(&mut self, image: &PinnedImage) -> Result<Flattened> {
        match self.ready.remove(image) {
            Some(flattened) => flattened,
            None => {
                let image = &self.images[image];
                self.early.take(image).map_or_else(|| flatten_pulled(image, self.cache), Ok)
            }
        }
    }
}

/// A segment's contents, and the warnings reading them gave.
pub struct Built<'c> {
    pub body: SegmentBody<'c>,
    pub warnings: Vec<Warning>,
}

impl<'c> Built<'c> {
    /// The segment to write under `key`, after the segments that wrote `existing`: it
    /// writes its scaffolding's directories, then those its tree adds below its prefix
    /// (where no scaffolding directory is: the tree is written against `existing` alone).
    pub fn into_segment(self, key: Digest, existing: &BTreeSet<Vec<u8>>) -> Segment<'c> {
        let directories = match &self.body {
            SegmentBody::Tree { tree, prefix, scaffold_directories, .. } => {
                let mut directories = scaffold_directories.clone();
                directories.extend(tree.directories_written(prefix, existing));
                directories
            }
            SegmentBody::File { .. } | SegmentBody::Empty => Vec::new(),
        };
        Segment {
            body: self.body,
            existing: existing.clone(),
            device: device_of(&key),
            tag: Entry { key, directories, warnings: self.warnings, shared: true },
        }
    }
}

impl<'c> Planned<'c> {
    /// The image whose layers building the segment reads, if any (the kernel's modules
    /// come from the segment cache, kept by `resin_kernel`).
    pub fn image(&self) -> Option<&'c PinnedImage> {
        match self {
            Planned::Init { package, .. } => Some(&package.image),
            Planned::Bundle { bundle, .. } if bundle.extracts_image => Some(&bundle.package.image),
            _ => None,
        }
    }

    /// Builds the segment's contents from `sources` (`describe` names it in messages):
    /// reads each of its layers once.
    pub fn build(self, sources: &mut BodySources<'c>, describe: &str) -> Result<Built<'c>> {
        let composition = sources.composition;
        let mut warnings = Vec::new();
        let body = match self {
            Planned::KernelModules => {
                let spool = sources.spool()?;
                let (tree, spool) = read_modules(&composition.inputs.kernel, &mut sources.kernel, spool)?;
                image_body(tree, vec![], spool, describe.to_string())
            }
            // Init images at /, each flattened on its own (later ones overwrite earlier files).
            Planned::Init { index, package } => {
                let image = sources.image(&package.image);
                let (mut tree, spool, dropped) =
                    sources.flatten(&package.image).with_context(|| format!("init[{index}]"))?;
                warnings = dropped;
                let database = apk_database(&tree, &spool, image).with_context(|| describe.to_string())?;
                sources.init_databases.insert(index, database);
                rewrite(&mut tree, ImageRole::Init);
                image_body(tree, vec![], spool, describe.to_string())
            }
            // Like LinuxKit, the image gets the concatenation of the init images' apk
            // databases, so every installed package stays listed.
            Planned::ApkDatabases => {
                let mut databases = Vec::new();
                for (index, package) in composition.inputs.init.iter().enumerate() {
                    let database = match sources.init_databases.remove(&index) {
                        Some(database) => database,
                        None => {
                            let image = sources.image(&package.image);
                            let (tree, spool, _) = sources.flatten(&package.image)?;
                            apk_database(&tree, &spool, image).with_context(|| format!("init[{index}]"))?
                        }
                    };
                    databases.extend(database);
                }
                if databases.len() >= 2 {
                    SegmentBody::File { path: APK_DATABASE, contents: databases.concat() }
                } else {
                    SegmentBody::Empty
                }
            }
            Planned::Bundle { bundle, prefix, scaffold } => {
                let (tree, spool) = if bundle.extracts_image {
                    let at = format!("{}[{}]", bundle.section.attribute(), bundle.index);
                    let (mut tree, spool, dropped) =
                        sources.flatten(&bundle.package.image).with_context(|| at.clone())?;
                    warnings = dropped;
                    rewrite(&mut tree, ImageRole::Bundle);
                    (tree, spool)
                } else {
                    (Tree::new(), Spool::empty())
                };
                SegmentBody::Tree {
                    tree,
                    prefix,
                    spool,
                    scaffold_directories: scaffold.directories,
                    scaffold_files: scaffold.files,
                    describe: describe.to_string(),
                }
            }
            Planned::Files => image_body(file_entries(composition)?, vec![], Spool::empty(), "file".into()),
        };
        Ok(Built { body, warnings })
    }
}

/// The apk database of an init image's union, if it has one.
fn apk_database(tree: &Tree, spool: &Spool, image: &ResolvedImage) -> Result<Option<Vec<u8>>> {
    if !matches!(tree.get(APK_DATABASE), Some(Node::File(_))) {
        return Ok(None);
    }
    let mut database = Vec::new();
    extract(tree, spool, vec![(APK_DATABASE, &mut database)], image)?;
    Ok(Some(database))
}

/// A segment of a tree alone, without bundle scaffolding.
fn image_body<'a>(tree: Tree, prefix: Vec<u8>, spool: Spool, describe: String) -> SegmentBody<'a> {
    SegmentBody::Tree { tree, prefix, spool, scaffold_directories: vec![], scaffold_files: vec![], describe }
}

/// The `file` entries as a tree walked in their order (their contents: bytes, or host
/// files checked as copied).
fn file_entries(composition: &Composition) -> Result<Tree> {
    let mut files = Tree::in_insertion_order();
    for file in &composition.files {
        let meta = Meta { mode: file.mode, uid: file.uid, gid: file.gid, mtime: crate::rootfs::tree::GENERATED_MTIME };
        match &file.kind {
            FileKind::Directory => files.insert(&file.path, Node::Directory(meta)),
            FileKind::Symlink(target) => files.insert(&file.path, Node::Symlink(meta, target.clone().into_bytes())),
            FileKind::Contents(bytes) => {
                files.insert_file(&file.path, meta, bytes.len() as u64, Content::Bytes(bytes.clone()));
            }
            FileKind::Source(source) => {
                // The composition hashed this file (the caller checked the content hash
                // against the plan's); the bytes copied are checked against that digest
                // as they are copied, so it is not read a third time here.
                let sha256 = file.digest.clone().with_context(|| format!("{}: no digest", source.display()))?;
                files.insert_file(&file.path, meta, file.size, Content::HostFile(Box::new((source.clone(), sha256))));
            }
        }
    }
    Ok(files)
}

/// The segments of `composition`'s initrd, in order.
pub fn plan(composition: &Composition) -> Vec<Planned<'_>> {
    let inputs = &composition.inputs;
    let mut segments = Vec::new();
    if !inputs.kernel.modules_tar.is_empty() {
        segments.push(Planned::KernelModules);
    }
    segments.extend(inputs.init.iter().enumerate().map(|(index, package)| Planned::Init { index, package }));
    if inputs.init.len() >= 2 {
        segments.push(Planned::ApkDatabases);
    }
    for bundle in &composition.bundles {
        segments.push(Planned::Bundle {
            bundle,
            prefix: bundle.image_root.clone().into_bytes(),
            scaffold: scaffold(bundle),
        });
    }
    segments.push(Planned::Files);
    segments
}

fn scaffold(bundle: &Bundle) -> Scaffold<'_> {
    let mut directories = Vec::new();
    let mut current = String::new();
    for component in bundle.path.split('/') {
        current = if current.is_empty() { component.to_string() } else { format!("{current}/{component}") };
        directories.push(current.clone().into_bytes());
    }
    directories.push(format!("{}/rootfs", bundle.path).into_bytes());
    if !bundle.readonly {
        directories.push(format!("{}/tmp", bundle.path).into_bytes());
        if bundle.extracts_image {
            directories.push(format!("{}/lower", bundle.path).into_bytes());
        }
    }
    let files = vec![
        (format!("{}/config.json", bundle.path).into_bytes(), &bundle.config_json[..]),
        (format!("{}/runtime.json", bundle.path).into_bytes(), &bundle.runtime_json[..]),
    ];
    Scaffold { directories, files }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::compose::compose;
    use crate::assemble::compose::tests::{inputs, A, B};
    use crate::container::ContainerOptions;

    /// A package of the compose tests' fixtures, read-only or not.
    fn package(image: &str, name: &str, readonly: bool) -> PackageSpec {
        let options = ContainerOptions { readonly: readonly.then_some(true), ..Default::default() };
        crate::assemble::compose::tests::package(image, name, options)
    }

    fn composition(modules_tar: &str, init: Vec<PackageSpec>) -> Composition {
        let mut inputs = inputs(vec![package(A, "ro", true), package(A, "rw", false)], vec![package(B, "svc", false)]);
        inputs.kernel.modules_tar = modules_tar.into();
        inputs.init = init;
        compose(inputs).unwrap()
    }

    fn strings(bytes: &[Vec<u8>]) -> Vec<String> {
        bytes.iter().map(|b| String::from_utf8(b.clone()).unwrap()).collect()
    }

    #[test]
    fn segments_follow_linuxkits_order_with_scaffolding_before_each_bundle() {
        let composition = composition("kernel.tar", vec![package(A, "i0", false), package(B, "i1", false)]);
        let planned = plan(&composition);
        let kinds: Vec<String> = planned
            .iter()
            .map(|p| match p {
                Planned::KernelModules => "modules".into(),
                Planned::Init { index, package } => format!("init[{index}] {}", package.name),
                Planned::ApkDatabases => "apk".into(),
                Planned::Bundle { bundle, prefix, .. } => {
                    format!("{} -> {}", bundle.path, String::from_utf8_lossy(prefix))
                }
                Planned::Files => "files".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "modules",
                "init[0] i0",
                "init[1] i1",
                "apk",
                "containers/onboot/000-ro -> containers/onboot/000-ro/rootfs",
                "containers/onboot/001-rw -> containers/onboot/000-ro/rootfs",
                "containers/services/svc -> containers/services/svc/lower",
                "files",
            ]
        );
        let scaffold = |index: usize| match &planned[index] {
            Planned::Bundle { scaffold, .. } => scaffold,
            other => panic!("a bundle expected, not {other:?}"),
        };
        // Read-only: no tmp, and its rootfs holds the image.
        assert_eq!(
            strings(&scaffold(4).directories),
            ["containers", "containers/onboot", "containers/onboot/000-ro", "containers/onboot/000-ro/rootfs"]
        );
        // Writable, sharing the first bundle's files: tmp but no lower of its own.
        assert_eq!(
            strings(&scaffold(5).directories)[3..],
            ["containers/onboot/001-rw/rootfs", "containers/onboot/001-rw/tmp"]
        );
        // Writable and carrying its image: tmp and lower.
        assert_eq!(
            strings(&scaffold(6).directories)[3..],
            ["containers/services/svc/rootfs", "containers/services/svc/tmp", "containers/services/svc/lower"]
        );
        let files: Vec<String> =
            scaffold(6).files.iter().map(|(path, _)| String::from_utf8(path.clone()).unwrap()).collect();
        assert_eq!(files, ["containers/services/svc/config.json", "containers/services/svc/runtime.json"]);
        assert_eq!(scaffold(6).files[0].1, &composition.bundles[2].config_json[..]);
    }

    #[test]
    fn identities_name_images_by_digest_and_change_with_what_the_segment_holds() {
        let composition = composition("kernel.tar", vec![package(A, "i0", false), package(B, "i1", false)]);
        let identities: Vec<serde_json::Value> = plan(&composition).iter().map(|p| p.identity(&composition)).collect();
        let unique: std::collections::BTreeSet<String> = identities.iter().map(ToString::to_string).collect();
        assert_eq!(unique.len(), identities.len(), "every segment is told apart: {identities:#?}");
        assert_eq!(identities[1]["image"], format!("sha256:{}", "a".repeat(64)));
        // The sharing bundle carries no image; the read-only one does.
        assert_eq!(identities[4]["image"], identities[1]["image"]);
        assert!(identities[5]["image"].is_null());
        // A different container config changes only that bundle's identity.
        let mut other = composition.clone();
        other.bundles[2].config_json = b"{}".to_vec();
        let changed: Vec<serde_json::Value> = plan(&other).iter().map(|p| p.identity(&other)).collect();
        let differing: Vec<usize> = (0..identities.len()).filter(|&i| identities[i] != changed[i]).collect();
        assert_eq!(differing, [6]);
    }

    #[test]
    fn no_modules_segment_without_a_tarball_and_no_apk_merge_for_one_init_image() {
        let composition = composition("", vec![package(A, "i0", false)]);
        let planned = plan(&composition);
        assert!(matches!(planned[0], Planned::Init { index: 0, .. }));
        assert!(!planned.iter().any(|p| matches!(p, Planned::KernelModules | Planned::ApkDatabases)));
        assert!(matches!(planned.last(), Some(Planned::Files)));
    }

    #[test]
    fn file_entries_are_a_tree_in_block_order_with_their_kinds_and_owners() {
        use crate::assemble::compose::FileSpec;
        let mut inputs = crate::assemble::compose::tests::inputs(vec![], vec![]);
        let spec = |path: &str, kind: FileKind| FileSpec {
            path: path.into(),
            kind,
            mode: None,
            uid: Some("7".into()),
            gid: None,
            optional: false,
            sensitive: false,
        };
        inputs.files = vec![
            spec("/z/file", FileKind::Contents(b"hi".to_vec())),
            spec("/a/link", FileKind::Symlink("../z/file".into())),
            spec("/a/dir", FileKind::Directory),
        ];
        let tree = file_entries(&compose(inputs).unwrap()).unwrap();
        let Some(Node::File(id)) = tree.get(b"z/file") else { panic!("z/file is not a file") };
        let file = tree.inode(*id);
        assert_eq!((file.meta.mode, file.meta.uid, file.size), (0o644, 7, 2));
        assert!(matches!(&file.content, Content::Bytes(bytes) if bytes == b"hi"));
        assert!(
            matches!(tree.get(b"a/link"), Some(Node::Symlink(meta, target)) if target == b"../z/file" && meta.mode == 0o777)
        );
        assert!(matches!(tree.get(b"a/dir"), Some(Node::Directory(meta)) if meta.mode == 0o755));
    }

    #[test]
    fn a_built_segment_writes_its_scaffolding_then_the_directories_its_tree_adds() {
        let key = crate::oci::digest::sha256(b"segment");
        let existing = BTreeSet::from([b"containers".to_vec()]);
        let mut tree = Tree::new();
        tree.insert(b"etc", Node::Directory(Meta::generated(0o755)));
        let body = SegmentBody::Tree {
            tree,
            prefix: b"containers/x/lower".to_vec(),
            spool: Spool::empty(),
            scaffold_directories: vec![b"containers".to_vec(), b"containers/x".to_vec()],
            scaffold_files: vec![],
            describe: "onboot[0]".into(),
        };
        let segment = Built { body, warnings: vec![] }.into_segment(key.clone(), &existing);
        assert_eq!(strings(&segment.tag.directories), ["containers", "containers/x", "containers/x/lower/etc"]);
        assert_eq!((segment.device, &segment.existing), (device_of(&key), &existing));
        let file = Built { body: SegmentBody::File { path: APK_DATABASE, contents: vec![] }, warnings: vec![] };
        assert!(file.into_segment(key, &existing).tag.directories.is_empty());
    }
}
