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
use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use sha2::Digest as _;

use super::spec::{KernelSpec, PackageSpec};
use crate::container::bundle::{config_json, merge, resolve_id, runtime_json, to_bytes, BundleContext};
use crate::container::label::parse_label;
use crate::container::ContainerOptions;
use crate::rootfs::path::{display, normalise};

/// Bumped whenever the bytes resin writes for the same inputs change.
pub const ASSEMBLY_FORMAT: u32 = 1;

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
}

/// Everything an image is made of, as the resource's attributes give it.
#[derive(Clone, Debug)]
pub struct ImageInputs {
    pub kernel: KernelSpec,
    pub init: Vec<PackageSpec>,
    pub onboot: Vec<PackageSpec>,
    pub onshutdown: Vec<PackageSpec>,
    pub services: Vec<PackageSpec>,
    pub files: Vec<FileSpec>,
}

/// Which attribute an input problem is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    pub attribute: &'static str,
    pub index: Option<usize>,
    pub field: Option<&'static str>,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.attribute)?;
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        if let Some(field) = self.field {
            write!(f, ".{field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

fn input_error(attribute: &'static str, index: Option<usize>, field: Option<&'static str>, error: anyhow::Error) -> InputError {
    InputError { attribute, index, field, message: format!("{error:#}") }
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
    pub path: Vec<u8>,
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// sha256 of the contents (files) or target (symlinks).
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct Composition {
    pub inputs: ImageInputs,
    pub ids: BTreeMap<String, u32>,
    pub bundles: Vec<Bundle>,
    pub files: Vec<PlacedFile>,
    pub content_hash: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn hash_file(path: &PathBuf) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Allocates container ids from 100 in onboot, onshutdown, services order.
fn allocate_ids(inputs: &ImageInputs) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    let mut next = 100;
    for package in inputs.onboot.iter().chain(&inputs.onshutdown).chain(&inputs.services) {
        ids.insert(package.name.clone(), next);
        next += 1;
    }
    ids
}

/// Decides the layout, generates the bundle documents and hashes everything. Returns
/// every problem found, each tied to its attribute.
pub fn compose(inputs: ImageInputs) -> Result<Composition, Vec<InputError>> {
    let mut errors = Vec::new();
    let platform = inputs.kernel.platform.clone();
    let ids = allocate_ids(&inputs);
    for (attribute, packages) in [
        ("init", &inputs.init),
        ("onboot", &inputs.onboot),
        ("onshutdown", &inputs.onshutdown),
        ("services", &inputs.services),
    ] {
        for (index, package) in packages.iter().enumerate() {
            if package.platform != platform {
                errors.push(input_error(attribute, Some(index), None, anyhow!(
                    "{} was resolved for {}, the kernel for {platform}; set the same platform on both", package.image, package.platform
                )));
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

    let mut bundles = Vec::new();
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    for (section, packages) in [
        (Section::Onboot, &inputs.onboot),
        (Section::Onshutdown, &inputs.onshutdown),
        (Section::Services, &inputs.services),
    ] {
        for (index, package) in packages.iter().enumerate() {
            let path = match section {
                Section::Services => format!("containers/services/{}", package.name),
                _ => format!("containers/{}/{index:03}-{}", section.attribute(), package.name),
            };
            let result = (|| -> Result<Bundle> {
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
                let context = BundleContext { path: &path, image_root: &image_root, ids: &ids };
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
            })();
            match result {
                Ok(bundle) => bundles.push(bundle),
                Err(e) => errors.push(input_error(section.attribute(), Some(index), None, e.context(format!("package {}", package.name)))),
            }
        }
    }

    let mut files = Vec::new();
    for (index, file) in inputs.files.iter().enumerate() {
        let at = |field, e| input_error("file", Some(index), field, e);
        let path = match normalise(file.path.as_bytes()) {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => {
                errors.push(at(Some("path"), anyhow!("a file block needs a path below /")));
                continue;
            }
            Err(e) => {
                errors.push(at(Some("path"), e));
                continue;
            }
        };
        let ids_of = |id: &Option<String>, field| resolve_id(id.as_deref().unwrap_or("0"), &ids).map_err(|e| at(Some(field), e));
        let (uid, gid) = match (ids_of(&file.uid, "uid"), ids_of(&file.gid, "gid")) {
            (Ok(u), Ok(g)) => (u, g),
            (u, g) => {
                errors.extend(u.err());
                errors.extend(g.err());
                continue;
            }
        };
        let (sha256, size, default_mode) = match &file.kind {
            FileKind::Contents(bytes) => (sha256_hex(bytes), bytes.len() as u64, 0o644),
            FileKind::Directory => (String::new(), 0, 0o755),
            FileKind::Symlink(target) => (sha256_hex(target.as_bytes()), target.len() as u64, 0o777),
            FileKind::Source(source) => match hash_file(source) {
                Ok((sha, size)) => (sha, size, 0o644),
                Err(_) if file.optional && !source.exists() => continue,
                Err(e) => {
                    errors.push(at(Some("source"), e.context(format!("the source of {}", display(&path)))));
                    continue;
                }
            },
        };
        let mode = file.mode.unwrap_or(default_mode);
        if mode > 0o7777 {
            errors.push(at(Some("mode"), anyhow!("mode {mode:o} is not a permission mode")));
            continue;
        }
        files.push(PlacedFile { path, kind: file.kind.clone(), mode, uid, gid, sha256, size });
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let kernel = &inputs.kernel;
    let package_ids = |packages: &[PackageSpec]| packages.iter().map(|p| p.image.clone()).collect::<Vec<_>>();
    let document = json!({
        "format": ASSEMBLY_FORMAT,
        "platform": platform,
        "kernel": { "image": kernel.image, "cmdline": kernel.cmdline, "binary": kernel.binary, "modules_tar": kernel.modules_tar, "ucode": kernel.ucode },
        "init": package_ids(&inputs.init),
        "bundles": bundles.iter().map(|b| json!({
            "path": b.path, "image": b.package.image, "image_root": b.image_root, "extracts_image": b.extracts_image,
            "readonly": b.readonly, "config.json": sha256_hex(&b.config_json), "runtime.json": sha256_hex(&b.runtime_json),
        })).collect::<Vec<_>>(),
        "files": files.iter().map(|f| json!({
            "path": String::from_utf8_lossy(&f.path), "kind": match f.kind {
                FileKind::Contents(_) | FileKind::Source(_) => "file", FileKind::Directory => "directory", FileKind::Symlink(_) => "symlink" },
            "mode": f.mode, "uid": f.uid, "gid": f.gid, "sha256": f.sha256,
        })).collect::<Vec<_>>(),
    });
    let content_hash = crate::resources::content_hash(&document);
    Ok(Composition { inputs, ids, bundles, files, content_hash })
}

/// A problem found while assembling (not in the inputs): the section and index it is in.
pub fn locate(section: Option<Section>, index: usize) -> String {
    match section {
        Some(s) => format!("{}[{index}]", s.attribute()),
        None => format!("init[{index}]"),
    }
}

/// Checks a `file` block's settings are consistent; returns its kind.
pub fn file_kind(contents: Option<String>, sensitive: Option<String>, source: Option<String>, directory: bool, symlink: Option<String>) -> Result<FileKind> {
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
        bail!("a file block takes one of contents, sensitive_contents, source, directory and symlink; this one sets {}", given.join(" and "));
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
