//! The composition of a machine image, decided before any layer is read: where every
//! bundle goes, its `config.json` and `runtime.json`, the uid map, the `file` entries, and
//! the content hash over all of it. Plan and apply both compute it from the same inputs;
//! apply refuses to write if the hash differs from the plan's.
//!
//! Layout (LinuxKit's): kernel modules and init images at `/`; `onboot[i]` in
//! `containers/onboot/%03d-<name>`, `onshutdown[i]` in `containers/onshutdown/%03d-<name>`,
//! `services` in `containers/services/<name>` (names unique); `file` entries last.
//! Container names get ids from 100 upwards in onboot, onshutdown, services order (a name
//! used twice keeps the later id), for `uid`/`gid` given as names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use sha2::Digest as _;

use super::hash::{content_hash, ASSEMBLY_FORMAT};
use super::spec::{KernelSpec, PackageSpec};
use crate::container::bundle::{config_json, merge, resolve_id, runtime_json, to_bytes, BundleContext};
use crate::container::label::parse_label;
use crate::container::ContainerOptions;
use crate::field::FieldError;
pub use crate::initrd::Compression;
use crate::oci::digest::Digest;
use crate::oci::reference::PinnedImage;
use crate::rootfs::path::{display, normalise};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Onboot,
    Onshutdown,
    Services,
}

impl Section {
    pub fn attribute(self) -> &'static str {
        match self {
            Section::Onboot => "onboot",
            Section::Onshutdown => "onshutdown",
            Section::Services => "services",
        }
    }
}

/// What a `file` block asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Contents(Vec<u8>),
    Source(PathBuf),
    Directory,
    Symlink(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub kind: FileKind,
    /// Octal permission bits; default 0644 for files, 0755 for directories, 0777 for symlinks.
    pub mode: Option<u32>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// A missing `source` is skipped instead of an error.
    pub optional: bool,
    /// The contents came from `sensitive_contents`: never shown (e.g. in `linuxkit_yaml`).
    pub sensitive: bool,
}

/// The `compression` settings of `resin_image` ([`Compression`] is the initrd's own).
impl Compression {
    /// Reads the `compression` and `compression_level` settings (`None`: unset).
    pub fn from_settings(name: Option<&str>, level: Option<i64>) -> Result<Compression, FieldError> {
        let error = |attribute: &'static str, message: String| FieldError::new(attribute, message);
        let level_in = |name: &str, range: std::ops::RangeInclusive<u32>, default: u32| match level {
            None => Ok(default),
            Some(level) => u32::try_from(level).ok().filter(|level| range.contains(level)).ok_or_else(|| {
                let (low, high) = range.into_inner();
                error("compression_level", format!("{level} is not a {name} level ({low} to {high})"))
            }),
        };
        match name.unwrap_or("gzip") {
            "gzip" => Ok(Compression::Gzip { level: level_in("gzip", 1..=9, crate::initrd::gzip::DEFAULT_LEVEL)? }),
            "zstd" => Ok(Compression::Zstd {
                level: level_in("zstd", 1..=crate::initrd::zstd::MAX_LEVEL, crate::initrd::zstd::DEFAULT_LEVEL)?,
            }),
            "none" => match level {
                None => Ok(Compression::Uncompressed),
                Some(_) => Err(error(
                    "compression_level",
                    "compression \"none\" takes no level: leave compression_level out, or compress with \"gzip\" or \"zstd\"".into(),
                )),
            },
            other => Err(error(
                "compression",
                format!("{other:?} is not a compression: use \"gzip\" (the default), \"zstd\" or \"none\""),
            )),
        }
    }

    /// What the content hash and the segment keys record.
    pub fn identity(&self) -> serde_json::Value {
        match self {
            Compression::Gzip { level } => json!({ "gzip": level }),
            Compression::Zstd { level } => json!({ "zstd": level }),
            Compression::Uncompressed => json!("none"),
        }
    }
}

/// Everything an image is made of, as the resource's attributes give it.
#[derive(Clone, Debug)]
pub struct ImageInputs {
    pub compression: Compression,
    pub kernel: KernelSpec,
    pub init: Vec<PackageSpec>,
    pub onboot: Vec<PackageSpec>,
    pub onshutdown: Vec<PackageSpec>,
    pub services: Vec<PackageSpec>,
    pub files: Vec<FileSpec>,
}

fn input_error(
    attribute: &'static str,
    index: Option<usize>,
    field: Option<&'static str>,
    error: anyhow::Error,
) -> FieldError {
    let error = FieldError::new(attribute, format!("{error:#}"));
    let error = match index {
        Some(index) => error.index(index),
        None => error,
    };
    match field {
        Some(field) => error.field(field),
        None => error,
    }
}

/// One container bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub section: Section,
    pub index: usize,
    pub package: PackageSpec,
    /// `containers/<section>/[NNN-]<name>`.
    pub path: String,
    /// Where the image's files are (its own `lower`/`rootfs`, or an earlier bundle's).
    pub image_root: String,
    /// Whether this bundle carries the image's files (false when an earlier one does).
    pub extracts_image: bool,
    pub readonly: bool,
    pub config_json: Vec<u8>,
    pub runtime_json: Vec<u8>,
}

/// One resolved `file` entry.
#[derive(Clone, Debug)]
pub struct PlacedFile {
    /// Its index among the `file` blocks (an optional one whose source is missing has no
    /// placed file).
    pub block: usize,
    pub path: Vec<u8>,
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Digest of the contents (files) or target (symlinks); none for directories.
    pub digest: Option<Digest>,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct Composition {
    pub inputs: ImageInputs,
    pub ids: BTreeMap<String, u32>,
    pub bundles: Vec<Bundle>,
    pub files: Vec<PlacedFile>,
    pub content_hash: Digest,
}

impl Composition {
    /// Whether a `file` holds `sensitive_contents`: the image's artifacts, and boot files
    /// made from them, are then readable by their owner only.
    pub fn is_sensitive(&self) -> bool {
        self.inputs.files.iter().any(|file| file.sensitive)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Allocates container ids from 100 in onboot, onshutdown, services order.
fn allocate_ids(inputs: &ImageInputs) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    for (offset, package) in inputs.onboot.iter().chain(&inputs.onshutdown).chain(&inputs.services).enumerate() {
        ids.insert(package.name.clone(), 100 + u32::try_from(offset).expect("fewer than 2^32 containers"));
    }
    ids
}

/// Decides the layout, generates the bundle documents and hashes everything. Returns
/// every problem found, each tied to its attribute.
pub fn compose(inputs: ImageInputs) -> Result<Composition, Vec<FieldError>> {
    let ids = allocate_ids(&inputs);
    let mut errors = check_packages(&inputs);
    let (bundles, bundle_errors) = place_bundles(&inputs, &ids);
    let (files, file_errors) = place_files(&inputs.files, &ids);
    errors.extend(bundle_errors.into_iter().chain(file_errors));
    if !errors.is_empty() {
        return Err(errors);
    }
    let content_hash = content_hash(&hash_document(&inputs, &bundles, &files));
    Ok(Composition { inputs, ids, bundles, files, content_hash })
}

/// What the packages must agree on: the kernel's platform, and distinct service names.
fn check_packages(inputs: &ImageInputs) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let platform = &inputs.kernel.platform;
    for (attribute, packages) in [
        ("init", &inputs.init),
        ("onboot", &inputs.onboot),
        ("onshutdown", &inputs.onshutdown),
        ("services", &inputs.services),
    ] {
        for (index, package) in packages.iter().enumerate() {
            if package.platform != *platform {
                errors.push(input_error(
                    attribute,
                    Some(index),
                    None,
                    anyhow!(
                        "{} was resolved for {}, the kernel for {platform}; set the same platform on both",
                        package.image,
                        package.platform
                    ),
                ));
            }
        }
    }
    let mut service_names = BTreeMap::new();
    for (index, package) in inputs.services.iter().enumerate() {
        if let Some(first) = service_names.insert(package.name.clone(), index) {
            errors.push(input_error("services", Some(index), None, anyhow!(
                "two services are named {:?} (services[{first}] and services[{index}]); set a distinct name on one of the packages", package.name
            )));
        }
    }
    errors
}

/// The bundles of onboot, onshutdown and services, in that order: each image's files are
/// extracted once, by the first bundle of it; the others share that bundle's root.
fn place_bundles(inputs: &ImageInputs, ids: &BTreeMap<String, u32>) -> (Vec<Bundle>, Vec<FieldError>) {
    let (mut bundles, mut errors) = (Vec::new(), Vec::new());
    let mut extracted: BTreeMap<PinnedImage, String> = BTreeMap::new();
    for (section, packages) in [
        (Section::Onboot, &inputs.onboot),
        (Section::Onshutdown, &inputs.onshutdown),
        (Section::Services, &inputs.services),
    ] {
        for (index, package) in packages.iter().enumerate() {
            match bundle(section, index, package, ids, &mut extracted) {
                Ok(bundle) => bundles.push(bundle),
                Err(e) => errors.push(input_error(
                    section.attribute(),
                    Some(index),
                    None,
                    e.context(format!("package {}", package.name)),
                )),
            }
        }
    }
    (bundles, errors)
}

/// `section[index]`'s bundle: its path, where its image's files are (recorded in
/// `extracted` when it is the first bundle of the image), and its documents.
fn bundle(
    section: Section,
    index: usize,
    package: &PackageSpec,
    ids: &BTreeMap<String, u32>,
    extracted: &mut BTreeMap<PinnedImage, String>,
) -> Result<Bundle> {
    let path = match section {
        Section::Services => format!("containers/services/{}", package.name),
        _ => format!("containers/{}/{index:03}-{}", section.attribute(), package.name),
    };
    let label = match &package.defaults.label {
        Some(text) => parse_label(text).with_context(|| format!("the image label of {}", package.image))?,
        None => ContainerOptions::default(),
    };
    let options = merge(&package.options, &label);
    let readonly = options.readonly.unwrap_or(false);
    let own_root = format!("{path}/{}", if readonly { "rootfs" } else { "lower" });
    let (image_root, extracts_image) = match extracted.get(&package.image) {
        Some(root) => (root.clone(), false),
        None => {
            extracted.insert(package.image.clone(), own_root.clone());
            (own_root, true)
        }
    };
    let context = BundleContext { path: &path, image_root: &image_root, ids };
    let config = config_json(&options, &package.defaults.container_config(), &context)?;
    let runtime = runtime_json(&options, &context)?;
    Ok(Bundle {
        section,
        index,
        package: package.clone(),
        path: path.clone(),
        image_root,
        extracts_image,
        readonly,
        config_json: to_bytes(&config),
        runtime_json: to_bytes(&runtime),
    })
}

/// The `file` blocks placed in the image, in their order (an optional one whose source is
/// missing is left out).
fn place_files(files: &[FileSpec], ids: &BTreeMap<String, u32>) -> (Vec<PlacedFile>, Vec<FieldError>) {
    let (mut placed, mut errors) = (Vec::new(), Vec::new());
    for (index, file) in files.iter().enumerate() {
        match place_file(index, file, ids) {
            Ok(Some(file)) => placed.push(file),
            Ok(None) => {}
            Err(problems) => errors.extend(problems),
        }
    }
    (placed, errors)
}

/// `file[index]`: its path in the image, owner, mode and the digest of what it holds;
/// `None` for an optional file whose source is missing.
fn place_file(
    index: usize,
    file: &FileSpec,
    ids: &BTreeMap<String, u32>,
) -> Result<Option<PlacedFile>, Vec<FieldError>> {
    let at = |field, e| vec![input_error("file", Some(index), Some(field), e)];
    if !file.path.starts_with('/') {
        let absolute = format!("/{}", file.path.trim_start_matches("./"));
        return Err(at(
            "path",
            anyhow!("{:?} is relative: write {absolute:?} (a file's path is in the image, from its root)", file.path),
        ));
    }
    let path = match normalise(file.path.as_bytes()) {
        Ok(p) if p == crate::initrd::newc::TRAILER => {
            return Err(at("path", anyhow!("/TRAILER!!! is the newc end-of-archive marker: the kernel and cpio would stop reading the initrd there")));
        }
        Ok(p) if !p.is_empty() => match crate::initrd::newc::uncreatable_reason(&p, None) {
            Some(reason) => {
                return Err(at("path", anyhow!("{}: {reason}; the kernel could not create it", display(&p))));
            }
            None => p,
        },
        Ok(_) => return Err(at("path", anyhow!("a file block needs a path below /"))),
        Err(e) => return Err(at("path", e)),
    };
    let ids_of = |id: &Option<String>, field| resolve_id(id.as_deref().unwrap_or("0"), ids).map_err(|e| at(field, e));
    let (uid, gid) = match (ids_of(&file.uid, "uid"), ids_of(&file.gid, "gid")) {
        (Ok(u), Ok(g)) => (u, g),
        (u, g) => return Err(u.err().into_iter().chain(g.err()).flatten().collect()),
    };
    let (sha256, size, default_mode) = match &file.kind {
        FileKind::Contents(bytes) => (Some(crate::oci::digest::sha256(bytes)), bytes.len() as u64, 0o644),
        FileKind::Directory => (None, 0, 0o755),
        FileKind::Symlink(target) => (Some(crate::oci::digest::sha256(target.as_bytes())), target.len() as u64, 0o777),
        FileKind::Source(source) => match crate::rootfs::host::digest_regular(source) {
            Ok((sha, size)) => (Some(sha), size, 0o644),
            Err(_) if file.optional && !source.exists() => return Ok(None),
            Err(e) => {
                // Terraform starts the provider in its working directory.
                let e = match (source.is_relative(), source.exists()) {
                    (true, false) => e.context(format!(
                        "a relative source is read from Terraform's working directory, {}",
                        std::env::current_dir().map_or_else(|_| "(unknown)".into(), |dir| dir.display().to_string())
                    )),
                    _ => e,
                };
                return Err(at("source", e.context(format!("the source of {}", display(&path)))));
            }
        },
    };
    if let FileKind::Symlink(target) = &file.kind {
        if let Some(reason) = crate::initrd::newc::uncreatable_reason(&path, Some(target.as_bytes())) {
            return Err(at("symlink", anyhow!("{reason}; the kernel could not create it")));
        }
    }
    let mode = file.mode.unwrap_or(default_mode);
    if mode > 0o7777 {
        return Err(at("mode", anyhow!("mode {mode:o} is not a permission mode")));
    }
    Ok(Some(PlacedFile { block: index, path, kind: file.kind.clone(), mode, uid, gid, digest: sha256, size }))
}

/// The document the content hash is taken of: the assembly format, the compression and
/// everything placed, images by their manifest digest and generated bytes by their sha256.
/// Never a reference's text: the same content named by another registry, a tag, or
/// another spelling of an OCI layout's path has the same hash.
fn hash_document(inputs: &ImageInputs, bundles: &[Bundle], files: &[PlacedFile]) -> serde_json::Value {
    let kernel = &inputs.kernel;
    let digests = |packages: &[PackageSpec]| packages.iter().map(|p| p.image.digest().clone()).collect::<Vec<_>>();
    json!({
        "format": ASSEMBLY_FORMAT,
        "compression": inputs.compression.identity(),
        "platform": kernel.platform,
        "kernel": { "image": kernel.image.digest(), "cmdline": kernel.cmdline, "binary": kernel.binary, "modules_tar": kernel.modules_tar, "ucode": kernel.ucode },
        "init": digests(&inputs.init),
        "bundles": bundles.iter().map(|b| json!({
            "path": b.path, "image": b.package.image.digest(), "image_root": b.image_root, "extracts_image": b.extracts_image,
            "readonly": b.readonly, "config.json": sha256_hex(&b.config_json), "runtime.json": sha256_hex(&b.runtime_json),
        })).collect::<Vec<_>>(),
        "files": files.iter().map(|f| json!({
            "path": String::from_utf8_lossy(&f.path), "kind": match f.kind {
                FileKind::Contents(_) | FileKind::Source(_) => "file", FileKind::Directory => "directory", FileKind::Symlink(_) => "symlink" },
            "mode": f.mode, "uid": f.uid, "gid": f.gid, "sha256": f.digest.as_ref().map_or("", |d| d.digest()),
        })).collect::<Vec<_>>(),
    })
}

/// Checks a `file` block's settings are consistent; returns its kind.
pub fn file_kind(
    contents: Option<String>,
    sensitive: Option<String>,
    source: Option<String>,
    directory: bool,
    symlink: Option<String>,
) -> Result<FileKind> {
    let given: Vec<&str> = [
        contents.as_ref().map(|_| "contents"),
        sensitive.as_ref().map(|_| "sensitive_contents"),
        source.as_ref().map(|_| "source"),
        directory.then_some("directory"),
        symlink.as_ref().map(|_| "symlink"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        bail!(
            "a file block takes one of contents, sensitive_contents, source, directory and symlink; this one sets {}",
            given.join(" and ")
        );
    }
    Ok(match (contents.or(sensitive), source, directory, symlink) {
        (Some(text), ..) => FileKind::Contents(text.into_bytes()),
        (_, Some(source), ..) => FileKind::Source(PathBuf::from(source)),
        (_, _, true, _) => FileKind::Directory,
        (_, _, _, Some(target)) => FileKind::Symlink(target),
        // An empty regular file, as in LinuxKit.
        _ => FileKind::Contents(Vec::new()),
    })
}

/// Tests, and the fixtures other modules' tests build compositions from.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::assemble::spec::{ImageDefaults, SPEC_VERSION};

    pub(crate) const A: &str =
        "docker.io/library/a@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    pub(crate) const B: &str =
        "docker.io/library/b@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    pub(crate) fn package(image: &str, name: &str, options: ContainerOptions) -> PackageSpec {
        PackageSpec {
            spec_version: SPEC_VERSION,
            image: image.parse().unwrap(),
            index: None,
            platform: "linux/amd64".parse().unwrap(),
            name: name.into(),
            options,
            defaults: ImageDefaults::default(),
        }
    }

    /// Kernel `A` (no modules tarball), no init image, no file.
    pub(crate) fn inputs(onboot: Vec<PackageSpec>, services: Vec<PackageSpec>) -> ImageInputs {
        ImageInputs {
            compression: Compression::DEFAULT,
            kernel: KernelSpec {
                spec_version: SPEC_VERSION,
                image: A.parse().unwrap(),
                index: None,
                platform: "linux/amd64".parse().unwrap(),
                cmdline: String::new(),
                binary: "kernel".into(),
                modules_tar: String::new(),
                ucode: None,
            },
            init: vec![],
            onboot,
            onshutdown: vec![],
            services,
            files: vec![],
        }
    }

    #[test]
    fn platforms_are_compared_as_platforms_not_as_text() {
        let mut same = inputs(vec![package(B, "x", ContainerOptions::default())], vec![]);
        same.onboot[0].platform = "linux/x86_64".parse().unwrap();
        let composition = compose(same.clone()).unwrap();
        same.onboot[0].platform = "linux/amd64".parse().unwrap();
        assert_eq!(compose(same).unwrap().content_hash, composition.content_hash);
    }

    #[test]
    fn layout_ids_and_shared_extraction() {
        let readonly = ContainerOptions { readonly: Some(true), ..Default::default() };
        let composition = compose(inputs(
            vec![
                package(A, "first", readonly),
                package(A, "second", ContainerOptions::default()),
                package(B, "third", ContainerOptions::default()),
            ],
            vec![package(A, "svc", ContainerOptions { uid: Some("second".into()), ..Default::default() })],
        ))
        .unwrap();
        let summary: Vec<(&str, &str, bool)> =
            composition.bundles.iter().map(|b| (b.path.as_str(), b.image_root.as_str(), b.extracts_image)).collect();
        assert_eq!(
            summary,
            [
                ("containers/onboot/000-first", "containers/onboot/000-first/rootfs", true),
                ("containers/onboot/001-second", "containers/onboot/000-first/rootfs", false),
                ("containers/onboot/002-third", "containers/onboot/002-third/lower", true),
                ("containers/services/svc", "containers/onboot/000-first/rootfs", false),
            ]
        );
        assert_eq!(
            composition.ids,
            BTreeMap::from([("first".into(), 100), ("second".into(), 101), ("third".into(), 102), ("svc".into(), 103)])
        );
        let svc: serde_json::Value = serde_json::from_slice(&composition.bundles[3].config_json).unwrap();
        assert_eq!(svc["process"]["user"]["uid"], 101);
    }

    #[test]
    fn problems_point_at_their_attribute() {
        let mut bad = inputs(
            vec![],
            vec![package(A, "x", ContainerOptions::default()), package(B, "x", ContainerOptions::default())],
        );
        bad.onboot.push(PackageSpec {
            platform: "linux/arm64".parse().unwrap(),
            ..package(B, "arm", ContainerOptions::default())
        });
        bad.files.push(FileSpec {
            path: "/etc/a".into(),
            kind: FileKind::Contents(vec![]),
            mode: None,
            uid: Some("nobody".into()),
            gid: None,
            optional: false,
            sensitive: false,
        });
        bad.files.push(FileSpec {
            path: "/".into(),
            kind: FileKind::Directory,
            mode: None,
            uid: None,
            gid: None,
            optional: false,
            sensitive: false,
        });
        bad.files.push(FileSpec {
            path: "etc/motd".into(),
            kind: FileKind::Contents(vec![]),
            mode: None,
            uid: None,
            gid: None,
            optional: false,
            sensitive: false,
        });
        let errors: Vec<String> = compose(bad).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert_eq!(
            errors[4],
            "file[2].path: \"etc/motd\" is relative: write \"/etc/motd\" (a file's path is in the image, from its root)"
        );
        assert!(errors[0].starts_with("onboot[0]: docker.io/library/b@sha256:bbbb"), "{}", errors[0]);
        assert!(errors[1].starts_with("services[1]: two services are named \"x\""), "{}", errors[1]);
        assert!(errors[2].starts_with("file[0].uid: no container named \"nobody\""), "{}", errors[2]);
        assert!(errors[3].starts_with("file[1].path"), "{}", errors[3]);
    }

    #[test]
    fn the_hash_covers_order_options_and_files() {
        let base = || {
            inputs(
                vec![package(A, "a", ContainerOptions::default()), package(B, "b", ContainerOptions::default())],
                vec![],
            )
        };
        let hash = |inputs: ImageInputs| compose(inputs).unwrap().content_hash;
        let reference = hash(base());
        assert_eq!(reference, hash(base()), "same inputs, same hash");
        let mut swapped = base();
        swapped.onboot.reverse();
        let mut option = base();
        option.onboot[0].options.env = Some(vec!["X=1".into()]);
        let mut file = base();
        file.files.push(FileSpec {
            path: "/etc/x".into(),
            kind: FileKind::Contents(b"x".to_vec()),
            mode: None,
            uid: None,
            gid: None,
            optional: false,
            sensitive: false,
        });
        let mut cmdline = base();
        cmdline.kernel.cmdline = "quiet".into();
        for (name, changed) in [("order", swapped), ("option", option), ("file", file), ("cmdline", cmdline)] {
            assert_ne!(hash(changed), reference, "{name} must change the hash");
        }
    }

    fn file(path: &str, kind: FileKind) -> FileSpec {
        FileSpec { path: path.into(), kind, mode: None, uid: None, gid: None, optional: false, sensitive: false }
    }

    #[test]
    fn files_take_the_default_mode_of_their_kind_and_the_digest_of_what_they_hold() {
        let ids = BTreeMap::from([("svc".to_string(), 103)]);
        let place = |spec: FileSpec| place_file(0, &spec, &ids).unwrap().unwrap();
        let contents =
            place(FileSpec { gid: Some("svc".into()), ..file("/etc//motd", FileKind::Contents(b"hi".to_vec())) });
        assert_eq!(
            (contents.path.as_slice(), contents.mode, contents.uid, contents.gid),
            (&b"etc/motd"[..], 0o644, 0, 103)
        );
        assert_eq!(contents.digest, Some(crate::oci::digest::sha256(b"hi")));
        assert_eq!(contents.size, 2);
        let directory = place(file("/var/lib/x", FileKind::Directory));
        assert_eq!((directory.mode, directory.digest, directory.size), (0o755, None, 0));
        let link = place(FileSpec { mode: Some(0o700), ..file("/bin/sh", FileKind::Symlink("busybox".into())) });
        assert_eq!((link.mode, link.digest), (0o700, Some(crate::oci::digest::sha256(b"busybox"))));
    }

    #[test]
    fn a_missing_source_leaves_out_an_optional_file_and_is_an_error_at_source_otherwise() {
        let missing = FileKind::Source(PathBuf::from("/nonexistent/resin-test-source"));
        let optional = FileSpec { optional: true, ..file("/etc/x", missing.clone()) };
        assert!(place_file(0, &optional, &BTreeMap::new()).unwrap().is_none());
        let errors = place_file(3, &file("/etc/x", missing), &BTreeMap::new()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().starts_with("file[3].source: the source of /etc/x"), "{}", errors[0]);
        let (placed, errors) = place_files(&[optional, file("/etc/y", FileKind::Directory)], &BTreeMap::new());
        assert_eq!((placed.len(), placed[0].block, errors.len()), (1, 1, 0), "the block index stays the file's own");
        // A relative source that is not there: the message says where it was looked for.
        let relative = FileKind::Source(PathBuf::from("resin-test-missing/key"));
        let error = place_file(0, &file("/etc/key", relative), &BTreeMap::new()).unwrap_err()[0].to_string();
        let cwd = std::env::current_dir().unwrap();
        let expected = format!("a relative source is read from Terraform's working directory, {}", cwd.display());
        assert!(error.contains(&expected), "{error}");
    }

    #[test]
    fn compression_settings_are_checked_with_what_to_do() {
        assert_eq!(Compression::from_settings(None, None), Ok(Compression::DEFAULT));
        assert_eq!(Compression::from_settings(Some("zstd"), Some(19)), Ok(Compression::Zstd { level: 19 }));
        let none = Compression::from_settings(Some("none"), Some(4)).unwrap_err();
        assert!(none.to_string().starts_with("compression_level: compression \"none\" takes no level"), "{none}");
        let level = Compression::from_settings(Some("gzip"), Some(0)).unwrap_err();
        assert_eq!(level.to_string(), "compression_level: 0 is not a gzip level (1 to 9)");
    }

    #[test]
    fn every_problem_of_a_file_owner_is_reported_and_bad_modes_are_refused() {
        let both =
            FileSpec { uid: Some("nobody".into()), gid: Some("nogroup".into()), ..file("/a", FileKind::Directory) };
        let fields: Vec<_> =
            place_file(0, &both, &BTreeMap::new()).unwrap_err().into_iter().map(|e| e.path_text()).collect();
        assert_eq!(fields, ["file[0].uid", "file[0].gid"]);
        let mode = FileSpec { mode: Some(0o10000), ..file("/a", FileKind::Directory) };
        let errors = place_file(0, &mode, &BTreeMap::new()).unwrap_err();
        assert_eq!(errors[0].to_string(), "file[0].mode: mode 10000 is not a permission mode");
        let trailer = place_file(0, &file("/TRAILER!!!", FileKind::Directory), &BTreeMap::new()).unwrap_err();
        assert_eq!(trailer[0].path_text(), "file[0].path");
    }

    #[test]
    fn packages_must_share_the_kernel_platform_and_services_their_names() {
        let mut inputs = inputs(vec![], vec![package(A, "x", ContainerOptions::default())]);
        assert!(check_packages(&inputs).is_empty());
        inputs.services.push(package(B, "x", ContainerOptions::default()));
        inputs.init.push(PackageSpec {
            platform: "linux/arm64".parse().unwrap(),
            ..package(B, "init", ContainerOptions::default())
        });
        let at: Vec<String> = check_packages(&inputs).iter().map(FieldError::path_text).collect();
        assert_eq!(at, ["init[0]", "services[1]"]);
    }

    #[test]
    fn the_hash_document_names_images_by_digest_and_generated_bytes_by_sha256() {
        let composition = compose(inputs(vec![package(A, "a", ContainerOptions::default())], vec![])).unwrap();
        let document = hash_document(&composition.inputs, &composition.bundles, &composition.files);
        assert_eq!(document["format"], ASSEMBLY_FORMAT);
        assert_eq!(document["bundles"][0]["image"], A.split_once('@').unwrap().1);
        assert_eq!(document["bundles"][0]["config.json"], sha256_hex(&composition.bundles[0].config_json));
        assert_eq!(content_hash(&document), composition.content_hash);
    }

    #[test]
    fn the_hash_is_the_same_however_an_image_is_named() {
        let digest = A.split_once('@').unwrap().1;
        let hash = |kernel: &str, package: &str| {
            let mut image =
                inputs(vec![], vec![self::package(&format!("{package}@{digest}"), "a", ContainerOptions::default())]);
            image.kernel.image = format!("{kernel}@{digest}").parse().unwrap();
            compose(image).unwrap().content_hash
        };
        let first = hash("linuxkit/kernel", "alpine");
        for (kernel, package) in [
            ("docker.io/linuxkit/kernel", "docker.io/library/alpine"),
            ("mirror.example:5000/linuxkit/kernel", "mirror.example:5000/alpine"),
            ("oci-layout:./layout/kernel", "oci-layout:/srv/ci/job-7/layout/alpine"),
            ("oci-layout:../a/../layout", "oci-layout:layout:alpine"),
        ] {
            assert_eq!(hash(kernel, package), first, "{kernel} and {package}");
        }
    }
}
