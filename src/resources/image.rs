//! `resin_image`: composes a kernel, init images, onboot/onshutdown/service containers and
//! files into `<name>-kernel`, `<name>-initrd.img` and `<name>-cmdline`.
//!
//! * **Plan** parses the `spec` documents of the kernel and packages, decides the whole
//!   composition (bundle layout, `config.json`/`runtime.json`, uids, files) and computes
//!   `content_hash` from it, without reading any layer: it is known whenever the inputs
//!   are. A changed hash is an in-place update; only a new `name` or `output_dir`
//!   replaces the image. The documents written beside the artifacts (the SBOM and the
//!   LinuxKit YAML, [`Document`]) are functions of the composition: their digests are
//!   known at plan too.
//! * **Apply** recomputes the composition and refuses to write if the hash differs from
//!   the plan's (an input changed in between), pulls the images by digest, and writes the
//!   three artifacts through temporary files renamed into place together. A failed update
//!   returns the prior state with its error, so Terraform keeps the image.
//! * **Refresh** checks the artifacts on disk: a missing or modified one is recorded in
//!   state, and the next plan rewrites the artifacts. A file whose size, mtime and inode
//!   are as written is not hashed again. When only documents are damaged (or only they
//!   change: a reference spelled anew names the same content), only they are written.
//! * **Destroy** removes the artifacts it wrote, and only if they are still what it wrote
//!   (compared with private state: refresh records edits in the state itself).
//!   In a replacement (destroy, then create) artifacts at paths the new image will write
//!   are left for the create to overwrite atomically. (The destroy half of a replacement
//!   receives the private state of the create's plan, which names those paths; a plain
//!   destroy never does.)

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint::*, AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use super::context::SharedContext;
use super::file_backed::FileWriter;
use super::files::{self, OnDisk, WritesFiles, Written};
use super::known;
use super::schema::{attribute, list_block, resource_schema, strings};
use crate::assemble::{
    build, compose, file_digest, file_kind, write_documents, ArtifactKind, Composition, Compression, Document,
    FileKind, FileSpec, ImageInputs, ImageSpec, InitrdPart, KernelSpec, PackageSpec, SPEC_VERSION,
};
use crate::field::FieldError;

pub struct Image;

type Strings = Value<Vec<Value<String>>>;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageState {
    id: Value<String>,
    name: Value<String>,
    output_dir: Value<String>,
    kernel: Value<String>,
    init: Strings,
    onboot: Strings,
    onshutdown: Strings,
    services: Strings,
    file: Value<Vec<FileBlock>>,
    content_hash: Value<String>,
    kernel_path: Value<String>,
    initrd_path: Value<String>,
    cmdline_path: Value<String>,
    kernel_sha256: Value<String>,
    initrd_sha256: Value<String>,
    cmdline_sha256: Value<String>,
    kernel_size: Value<i64>,
    initrd_size: Value<i64>,
    cmdline_size: Value<i64>,
    sbom_path: Value<String>,
    /// Absent from states written before it existed.
    #[serde(default)]
    sbom_sha256: Value<String>,
    /// Absent from states written before they existed.
    #[serde(default)]
    linuxkit_yaml_path: Value<String>,
    #[serde(default)]
    linuxkit_yaml_sha256: Value<String>,
    /// Absent from states written before it existed.
    #[serde(default)]
    spec: Value<String>,
    /// Absent from states written before it existed.
    #[serde(default)]
    file_sha256: Value<std::collections::BTreeMap<String, Value<String>>>,
    labels: Value<std::collections::BTreeMap<String, Value<String>>>,
    /// Absent from states written before they existed.
    #[serde(default)]
    compression: Value<String>,
    #[serde(default)]
    compression_level: Value<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FileBlock {
    path: Value<String>,
    contents: Value<String>,
    sensitive_contents: Value<String>,
    source: Value<String>,
    directory: Value<bool>,
    symlink: Value<String>,
    mode: Value<String>,
    uid: Value<String>,
    gid: Value<String>,
    optional: Value<bool>,
}

fn known_strings(value: &Strings) -> Option<Vec<String>> {
    match value {
        Value::Unknown => None,
        Value::Null => Some(Vec::new()),
        Value::Value(items) => items.iter().map(|v| known(v).map(Option::unwrap_or_default)).collect(),
    }
}

/// The inputs, when every one is known; errors are reported at their attributes.
fn inputs_of(state: &ImageState, diags: &mut Diagnostics) -> Result<Option<ImageInputs>, ()> {
    let mut errors = Vec::new();
    let inputs = known_inputs(state, &mut errors);
    for error in &errors {
        super::report(diags, "resin_image", error);
    }
    match errors.is_empty() {
        true => Ok(inputs),
        false => Err(()),
    }
}

/// The inputs of `state`: `None` while one is unknown or when one is wrong (in `errors`).
fn known_inputs(state: &ImageState, errors: &mut Vec<FieldError>) -> Option<ImageInputs> {
    let kernel_text = known(&state.kernel)??;
    let kernel = KernelSpec::parse(&kernel_text).map_err(|e| errors.push(FieldError::new("kernel", format!("{e:#}"))));
    let [init, onboot, onshutdown, services] = sections_of(state, errors)?;
    let files = files_of(state, errors)?;
    let compression = compression_of(state, errors)?;
    Some(ImageInputs { compression: compression?, kernel: kernel.ok()?, init, onboot, onshutdown, services, files })
}

/// The packages of `init`, `onboot`, `onshutdown` and `services`: `None` while one is
/// unknown; a spec that is not a package's is an error at its element.
fn sections_of(state: &ImageState, errors: &mut Vec<FieldError>) -> Option<[Vec<PackageSpec>; 4]> {
    let sections = [
        ("init", &state.init),
        ("onboot", &state.onboot),
        ("onshutdown", &state.onshutdown),
        ("services", &state.services),
    ];
    let texts: Vec<(&'static str, Vec<String>)> = sections
        .into_iter()
        .map(|(attribute, value)| Some((attribute, known_strings(value)?)))
        .collect::<Option<_>>()?;
    let packages = texts.into_iter().map(|(attribute, texts)| {
        let parsed = texts.iter().enumerate().filter_map(|(index, text)| match PackageSpec::parse(text) {
            Ok(package) => Some(package),
            Err(e) => {
                errors.push(FieldError::new(attribute, format!("{e:#}")).index(index));
                None
            }
        });
        parsed.collect::<Vec<_>>()
    });
    Some(packages.collect::<Vec<_>>().try_into().expect("four sections"))
}

/// The `file` blocks: `None` while one is unknown.
fn files_of(state: &ImageState, errors: &mut Vec<FieldError>) -> Option<Vec<FileSpec>> {
    let blocks = match &state.file {
        Value::Unknown => return None,
        Value::Null => Vec::new(),
        Value::Value(blocks) => blocks.clone(),
    };
    let files: Vec<Option<FileSpec>> =
        blocks.iter().enumerate().map(|(index, block)| file_of(index, block, errors)).collect::<Option<_>>()?;
    Some(files.into_iter().flatten().collect())
}

/// `file[index]`: `None` while a setting is unknown, `Some(None)` when the block is wrong
/// (in `errors`).
fn file_of(index: usize, block: &FileBlock, errors: &mut Vec<FieldError>) -> Option<Option<FileSpec>> {
    let (path, contents, sensitive, source) =
        (known(&block.path)?, known(&block.contents)?, known(&block.sensitive_contents)?, known(&block.source)?);
    let (directory, symlink, mode) = (known(&block.directory)?, known(&block.symlink)?, known(&block.mode)?);
    let (uid, gid, optional) = (known(&block.uid)?, known(&block.gid)?, known(&block.optional)?);
    let is_sensitive = sensitive.is_some();
    let kind = match file_kind(contents, sensitive, source, directory.unwrap_or(false), symlink) {
        Ok(kind) => kind,
        Err(e) => {
            errors.push(FieldError::new("file", format!("{e:#}")).index(index).titled("Conflicting file settings"));
            return Some(None);
        }
    };
    let mode = match mode.map(|m| u32::from_str_radix(&m, 8).map_err(|_| m)) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(m)) => {
            let problem = format!("mode {m:?} is not an octal mode such as \"0644\"");
            errors.push(FieldError::new("file", problem).index(index).field("mode").titled("Invalid file mode"));
            return Some(None);
        }
    };
    let optional = optional.unwrap_or(false);
    Some(Some(FileSpec { path: path.unwrap_or_default(), kind, mode, uid, gid, optional, sensitive: is_sensitive }))
}

/// `compression` and `compression_level`: `None` while unknown, `Some(None)` when wrong
/// (in `errors`).
fn compression_of(state: &ImageState, errors: &mut Vec<FieldError>) -> Option<Option<Compression>> {
    let (compression, level) = (known(&state.compression)?, known(&state.compression_level)?);
    match Compression::from_settings(compression.as_deref(), level) {
        Ok(compression) => Some(Some(compression)),
        Err(e) => {
            errors.push(e.titled("Invalid compression"));
            Some(None)
        }
    }
}

fn composition_of(state: &ImageState, diags: &mut Diagnostics) -> Result<Option<Composition>, ()> {
    let Some(inputs) = inputs_of(state, diags)? else { return Ok(None) };
    match compose(inputs) {
        Ok(composition) => Ok(Some(composition)),
        Err(errors) => {
            for error in errors {
                super::report(diags, "resin_image", &error);
            }
            Err(())
        }
    }
}

fn set_paths(state: &mut ImageState) {
    let (Some(Some(name)), Some(Some(dir))) = (known(&state.name), known(&state.output_dir)) else {
        state.id = Value::Unknown;
        for document in Document::ALL {
            *state.document(document).0 = Value::Unknown;
        }
        for kind in ArtifactKind::IMAGE {
            *state.fields_mut(kind).0 = Value::Unknown;
        }
        return;
    };
    for document in Document::ALL {
        *state.document(document).0 = Value::Value(document.path(Path::new(&dir), &name).display().to_string());
    }
    state.id = Value::Value(Path::new(&dir).join(&name).display().to_string());
    for kind in ArtifactKind::IMAGE {
        *state.fields_mut(kind).0 = Value::Value(kind.path(Path::new(&dir), &name).display().to_string());
    }
}

/// The `spec` document for `resin_disk`: unknown until the composition, the paths and the
/// kernel's and initrd's digests are (so after a change of content, until apply). The
/// initrd's parts are those it was written with (`written`).
fn image_spec(
    state: &ImageState,
    composition: Option<&Composition>,
    written: Option<&Written<ArtifactKind>>,
) -> Value<String> {
    match composition {
        Some(composition) => spec_of(
            state,
            composition.content_hash.as_ref(),
            &composition.inputs.kernel,
            composition.is_sensitive(),
            written.map_or(&[][..], |w| &w.initrd_parts),
        ),
        None => Value::Unknown,
    }
}

/// [`image_spec`] of an image of `content_hash` with `kernel`, its initrd of `initrd_parts`.
fn spec_of(
    state: &ImageState,
    content_hash: &str,
    kernel: &KernelSpec,
    sensitive: bool,
    initrd_parts: &[InitrdPart],
) -> Value<String> {
    let (Value::Value(name), Value::Value(output_dir)) = (&state.name, &state.output_dir) else {
        return Value::Unknown;
    };
    let (Some(kernel_path), Some(initrd_path)) = (state.path(ArtifactKind::Kernel), state.path(ArtifactKind::Initrd))
    else {
        return Value::Unknown;
    };
    let (OnDisk::File(kernel_sha256, kernel_size), OnDisk::File(initrd_sha256, initrd_size)) =
        (state.get(ArtifactKind::Kernel), state.get(ArtifactKind::Initrd))
    else {
        return Value::Unknown;
    };
    let spec = ImageSpec {
        spec_version: SPEC_VERSION,
        name: name.clone(),
        output_dir: output_dir.clone(),
        content_hash: content_hash.to_string(),
        platform: kernel.platform.clone(),
        cmdline: kernel.cmdline.clone(),
        kernel_path: kernel_path.display().to_string(),
        initrd_path: initrd_path.display().to_string(),
        kernel_sha256,
        kernel_size,
        initrd_sha256,
        initrd_size,
        initrd_parts: initrd_parts.to_vec(),
        sensitive,
        // Specs of images written before parts were recorded stay as they were.
        sbom_sha256: if initrd_parts.is_empty() { None } else { state.sbom_sha256.as_ref_option().cloned() },
        published: None,
    };
    Value::Value(serde_json::to_string(&spec).expect("a spec serialises"))
}

impl ImageState {
    /// The path and sha256 attributes of `document`.
    fn document(&mut self, document: Document) -> (&mut Value<String>, &mut Value<String>) {
        match document {
            Document::Sbom => (&mut self.sbom_path, &mut self.sbom_sha256),
            Document::LinuxkitYaml => (&mut self.linuxkit_yaml_path, &mut self.linuxkit_yaml_sha256),
        }
    }

    /// The path and sha256 of `document`, as they are.
    fn document_ref(&self, document: Document) -> (&Value<String>, &Value<String>) {
        match document {
            Document::Sbom => (&self.sbom_path, &self.sbom_sha256),
            Document::LinuxkitYaml => (&self.linuxkit_yaml_path, &self.linuxkit_yaml_sha256),
        }
    }

    /// The path, sha256 and size attributes of the artifact of `kind`.
    fn fields(&self, kind: ArtifactKind) -> (&Value<String>, &Value<String>, &Value<i64>) {
        match kind {
            ArtifactKind::Kernel => (&self.kernel_path, &self.kernel_sha256, &self.kernel_size),
            ArtifactKind::Initrd => (&self.initrd_path, &self.initrd_sha256, &self.initrd_size),
            ArtifactKind::Cmdline => (&self.cmdline_path, &self.cmdline_sha256, &self.cmdline_size),
        }
    }

    fn fields_mut(&mut self, kind: ArtifactKind) -> (&mut Value<String>, &mut Value<String>, &mut Value<i64>) {
        match kind {
            ArtifactKind::Kernel => (&mut self.kernel_path, &mut self.kernel_sha256, &mut self.kernel_size),
            ArtifactKind::Initrd => (&mut self.initrd_path, &mut self.initrd_sha256, &mut self.initrd_size),
            ArtifactKind::Cmdline => (&mut self.cmdline_path, &mut self.cmdline_sha256, &mut self.cmdline_size),
        }
    }
}

impl WritesFiles for ImageState {
    type Kind = ArtifactKind;

    fn path(&self, kind: ArtifactKind) -> Option<PathBuf> {
        self.fields(kind).0.as_ref_option().map(PathBuf::from)
    }

    fn get(&self, kind: ArtifactKind) -> OnDisk {
        match self.fields(kind) {
            (_, Value::Value(sha256), Value::Value(size)) => {
                OnDisk::File(sha256.clone(), u64::try_from(*size).unwrap_or_default())
            }
            (_, Value::Unknown, _) | (_, _, Value::Unknown) => OnDisk::ToWrite,
            _ => OnDisk::Missing,
        }
    }

    fn set(&mut self, kind: ArtifactKind, on_disk: OnDisk) {
        let (_, sha256, size) = self.fields_mut(kind);
        (*sha256, *size) = match on_disk {
            OnDisk::File(digest, length) => (Value::Value(digest), Value::Value(super::number_of_bytes(length))),
            OnDisk::Missing => (Value::Null, Value::Null),
            OnDisk::ToWrite => (Value::Unknown, Value::Unknown),
        };
    }
}

/// `file_sha256`: the digest of each regular file's contents by path, as the composition
/// hashed them (a later block for a path wins, as in the image; `sensitive_contents` left
/// out); unknown until the composition is known.
fn set_file_digests(state: &mut ImageState, composition: Option<&Composition>) {
    state.file_sha256 = match composition {
        None => Value::Unknown,
        Some(composition) => {
            let mut digests = std::collections::BTreeMap::new();
            for file in &composition.files {
                let path = format!("/{}", String::from_utf8_lossy(&file.path));
                let sensitive = composition.inputs.files[file.block].sensitive;
                match (&file.kind, &file.digest) {
                    (FileKind::Contents(_) | FileKind::Source(_), Some(digest)) if !sensitive => {
                        digests.insert(path, Value::Value(digest.to_string()));
                    }
                    _ => {
                        digests.remove(&path);
                    }
                }
            }
            Value::Value(digests)
        }
    };
}

/// After [`files::to_write`], the digests a plan can still know: the command line's (its
/// bytes are the kernel's `cmdline`) and the kernel's while the kernel is the one written
/// and intact (the same `kernel` spec, and the file as apply wrote it).
fn keep_predictable(
    state: &mut ImageState,
    prior: &ImageState,
    written: Option<&Written<ArtifactKind>>,
    composition: Option<&Composition>,
) {
    if let Some(composition) = composition {
        let cmdline = composition.inputs.kernel.cmdline.as_bytes();
        let digest = crate::oci::digest::sha256(cmdline).to_string();
        state.set(ArtifactKind::Cmdline, OnDisk::File(digest, cmdline.len() as u64));
    }
    let same_kernel = state.kernel.as_ref_option().is_some()
        && prior.kernel == state.kernel
        && prior.kernel_path == state.kernel_path;
    if let (true, OnDisk::File(digest, size)) = (same_kernel, prior.get(ArtifactKind::Kernel)) {
        if written.and_then(|w| w.sha256.get(&ArtifactKind::Kernel)) == Some(&digest) {
            state.set(ArtifactKind::Kernel, OnDisk::File(digest, size));
        }
    }
}

impl Image {
    /// The planned state and the composition (`None` while an input is unknown).
    fn planned(diags: &mut Diagnostics, mut state: ImageState) -> Option<(ImageState, Option<Composition>)> {
        if let Value::Value(dir) = &state.output_dir {
            if !files::check_output_dir("resin_image", dir, diags) {
                return None;
            }
        }
        set_paths(&mut state);
        let composition = composition_of(&state, diags).ok()?;
        state.content_hash = match &composition {
            Some(c) => Value::Value(c.content_hash.to_string()),
            None => Value::Unknown,
        };
        for document in Document::ALL {
            *state.document(document).1 = match (&composition, &state.name) {
                (Some(c), Value::Value(name)) => {
                    Value::Value(crate::oci::digest::sha256(&document.bytes(c, name)).to_string())
                }
                _ => Value::Unknown,
            };
        }
        set_file_digests(&mut state, composition.as_ref());
        Some((state, composition))
    }

    /// What an apply writes: the composition, the image's name and its output directory.
    /// Refuses when an input changed since the plan, which promised `content_hash`.
    fn target(planned: &ImageState, diags: &mut Diagnostics) -> Option<(Composition, String, String)> {
        let Some(composition) = composition_of(planned, diags).ok()? else {
            diags.root_error_short("resin_image inputs are still unknown at apply");
            return None;
        };
        if let Value::Value(promised) = &planned.content_hash {
            if *promised != composition.content_hash.to_string() {
                diags.error(
                    "content_hash changed between plan and apply",
                    format!("the plan promised {promised}, the inputs now give {}: an input (a package, a file source) changed since the plan was made. Nothing was written; run terraform plan again.", composition.content_hash),
                    AttributePath::new("content_hash"),
                );
                return None;
            }
        }
        let (Some(Some(name)), Some(Some(dir))) = (known(&planned.name), known(&planned.output_dir)) else {
            diags.root_error_short("name and output_dir must be known at apply");
            return None;
        };
        Some((composition, name, dir))
    }
}

#[async_trait]
impl FileWriter for Image {
    type State = ImageState;
    type Plan = Option<Composition>;
    const TYPE_NAME: &'static str = "resin_image";

    fn schema() -> Schema {
        let mut attributes: Vec<(String, Attribute)> = vec![
            attribute("name", AttributeType::String, Required, "Base name of the artifacts: `<name>-kernel`, `<name>-initrd.img`, `<name>-cmdline`. Changing it replaces the image."),
            attribute("output_dir", AttributeType::String, Required, "Directory the artifacts are written to (created if missing; one that cannot be created or written in is a plan error). Changing it replaces the image."),
            attribute("kernel", AttributeType::String, Required, "The kernel: the `spec` of a `resin_kernel`."),
            attribute("init", strings(), Optional, "Init images, unpacked at `/` in order (later files win): `spec`s of `resin_package`s."),
            attribute("onboot", strings(), Optional, "Containers run once at boot, in order, from `containers/onboot/NNN-<name>`: `spec`s of `resin_package`s."),
            attribute("onshutdown", strings(), Optional, "Containers run at shutdown, in order, from `containers/onshutdown/NNN-<name>`: `spec`s of `resin_package`s."),
            attribute("services", strings(), Optional, "Long-running containers, from `containers/services/<name>` (names must be unique): `spec`s of `resin_package`s."),
            attribute("compression", AttributeType::String, Optional,
                "How the initrd is compressed: `gzip` (the default: gzip members that each end with a cpio entry, which every kernel unpacks), `zstd` (zstd frames that each end with a cpio entry: smaller, faster to write and to unpack; the kernel needs Linux 5.9 or later with `CONFIG_RD_ZSTD=y`) or `none` (a plain cpio: larger, nothing to decompress at boot). See `docs/guides/initrd-compression.md`. Part of the content hash."),
            attribute("compression_level", AttributeType::Number, Optional,
                "The compression level. gzip: 1 (fastest) to 9 (smallest), default 3 (libdeflate's level 3), the fastest level whose initrds stay within 5 % of `gzip -6`'s size (measured on real binaries: 1.04x; level 2 is 1.06x). zstd: 1 to 19, default 3 (zstd's own default). Not with `compression = \"none\"`. Part of the content hash."),
            attribute("content_hash", AttributeType::String, Computed,
                "sha256 over everything that determines the artifacts: kernel and package digests and settings, every generated `config.json` and `runtime.json`, file contents, order, platform and the assembly format. Images count by digest, never by how a reference names them (a registry, a tag, an OCI layout's path), so the same content has the same hash wherever it is built. Known at plan time whenever the inputs are; the same hash always gives byte-identical artifacts."),
            attribute("id", AttributeType::String, Computed, "`<output_dir>/<name>`."),
            attribute("file_sha256", super::schema::string_map(), Computed,
                "sha256 of each regular file a `file` block adds, by path: `contents`, or `source` as hashed at plan time, so that a plan names the file whose contents changed. `sensitive_contents` are left out."),
            attribute("labels", super::schema::string_map(), Optional,
                "Free-form labels (`environment`, `owner`...) for policy tools and inventories, e.g. `environment = \"production\"` for the policy pack's production rules. They do not change the artifacts or the content hash."),
            attribute("sbom_path", AttributeType::String, Computed,
                "Path of the SPDX 2.3 JSON SBOM written beside the artifacts (`<name>-sbom.spdx.json`): the kernel and every package with its pinned digest, deterministic (namespace and creation time derive from the content hash)."),
            attribute("sbom_sha256", AttributeType::String, Computed,
                "SHA-256 of the SBOM (`sha256:<hex>`), known at plan time. Refresh reads the file: a missing or edited SBOM shows in the plan and is written again (alone, when the other artifacts are intact)."),
            attribute("linuxkit_yaml_path", AttributeType::String, Computed,
                "Path of the equivalent LinuxKit YAML written beside the artifacts (`<name>-linuxkit.yml`: kernel, init, onboot, onshutdown, services, files), to compare with or migrate from `linuxkit build`. Files with `sensitive_contents` appear with a placeholder instead of their contents. Images from OCI layouts are named `oci-layout:...`, which `linuxkit build` cannot read: a comment at the top says so and how to push them to a registry."),
            attribute("linuxkit_yaml_sha256", AttributeType::String, Computed,
                "SHA-256 of the LinuxKit YAML (`sha256:<hex>`), known at plan time: a plan shows one line when it changes, not the document. Refresh reads the file, as for the SBOM."),
            attribute("spec", AttributeType::String, Computed,
                "The image for `resin_disk` (its `image` attribute): name, artifact paths, platform, command line, content hash, the kernel's and initrd's sha256 and size as written (boot files check what they read against them), where each part of the initrd is (`initrd_parts`: the microcode, each segment, the trailer's segment, each an initrd of its own) and the SBOM's sha256 (`sbom_sha256`), as JSON; `resin_publish` publishes it. Known at plan time while the kernel and initrd are kept; after a change of content, once apply has written them."),
        ];
        for kind in ArtifactKind::IMAGE {
            let (artifact, what) = (kind.attribute(), kind.describe());
            attributes.push(attribute(
                &format!("{artifact}_path"),
                AttributeType::String,
                Computed,
                &format!("Path of the {what}."),
            ));
            attributes.push(attribute(&format!("{artifact}_sha256"), AttributeType::String, Computed, &format!("sha256 of the {what} as written (`sha256:<hex>`); refresh notices when the file on disk no longer matches.")));
            attributes.push(attribute(
                &format!("{artifact}_size"),
                AttributeType::Number,
                Computed,
                &format!("Size in bytes of the {what}."),
            ));
        }
        let sensitive = Attribute {
            sensitive: true,
            ..attribute(
                "sensitive_contents",
                AttributeType::String,
                Optional,
                "Contents that must not show in plans or logs (secrets). The image's artifacts and SBOM, and the boot files `resin_disk` makes from it, are then written readable by their owner only (0600) instead of 0644.",
            )
            .1
        };
        let file = list_block("file", "A file, directory or symlink added to the root filesystem after everything else.", vec![
            attribute("path", AttributeType::String, Required, "Absolute path in the image (`/etc/motd`); a relative path is an error."),
            attribute("contents", AttributeType::String, Optional, "File contents."),
            ("sensitive_contents".to_string(), sensitive),
            attribute("source", AttributeType::String, Optional, "Path of a file on the machine running Terraform whose contents are copied (hashed at plan time)."),
            attribute("directory", AttributeType::Bool, Optional, "Create a directory."),
            attribute("symlink", AttributeType::String, Optional, "Create a symlink pointing here."),
            attribute("mode", AttributeType::String, Optional, "Octal permission bits, e.g. `\"0600\"`. Default: 0644 for files, 0755 for directories, 0777 for symlinks."),
            attribute("uid", AttributeType::String, Optional, "Owner: a number, or the name of a container of this image. Default: 0."),
            attribute("gid", AttributeType::String, Optional, "Group, as `uid`. Default: 0."),
            attribute("optional", AttributeType::Bool, Optional, "Skip the file when `source` does not exist instead of failing."),
        ], vec![]);
        resource_schema(
            "A machine image: kernel, initrd and command line assembled LinuxKit's way from a `resin_kernel` and `resin_package`s, without booting anything. `content_hash` is known at plan time and covers everything that determines the bytes.",
            attributes,
            vec![file],
        )
    }

    fn name(state: &ImageState) -> &Value<String> {
        &state.name
    }

    fn content_hash(state: &ImageState) -> &Value<String> {
        &state.content_hash
    }

    fn validate(config: &ImageState, diags: &mut Diagnostics) {
        // Composition errors that need no registry (conflicting file settings, bad
        // specs) show up here already.
        let _ = inputs_of(config, diags);
    }

    fn identity(prior: &ImageState, planned: &ImageState, _config: &ImageState) -> Vec<(&'static str, bool)> {
        // New content is an in-place update: the artifacts are rewritten atomically where
        // they are, and a failed apply keeps the resource and its previous artifacts.
        vec![("name", prior.name != planned.name), ("output_dir", prior.output_dir != planned.output_dir)]
    }

    async fn plan(
        _context: &SharedContext,
        proposed: ImageState,
        _config: &ImageState,
        _prior: Option<&ImageState>,
        diags: &mut Diagnostics,
    ) -> Option<(ImageState, Option<Composition>)> {
        Image::planned(diags, proposed)
    }

    fn also_writes(state: &ImageState) -> Vec<String> {
        Document::ALL.iter().filter_map(|d| state.document_ref(*d).0.as_ref_option().cloned()).collect()
    }

    fn after_files(
        state: &mut ImageState,
        prior: Option<&ImageState>,
        written: Option<&Written<ArtifactKind>>,
        rewrite: bool,
        composition: &Option<Composition>,
    ) {
        if rewrite {
            let created = ImageState::default();
            keep_predictable(state, prior.unwrap_or(&created), written, composition.as_ref());
        }
        state.spec = image_spec(state, composition.as_ref(), written);
    }

    async fn apply(
        context: &SharedContext,
        planned: ImageState,
        diags: &mut Diagnostics,
    ) -> Option<(ImageState, Written<ArtifactKind>)> {
        let context = super::context::configured(context, diags)?;
        let (composition, name, dir) = Image::target(&planned, diags)?;
        let mut state = planned;
        state.content_hash = Value::Value(composition.content_hash.to_string());
        set_paths(&mut state);
        let (content_hash, kernel, sensitive) =
            (composition.content_hash.to_string(), composition.inputs.kernel.clone(), composition.is_sensitive());
        let output_dir = PathBuf::from(&dir);
        let result = async {
            std::fs::create_dir_all(&output_dir)
                .map_err(|e| anyhow::anyhow!("creating output_dir {}: {e}", output_dir.display()))?;
            build(composition, &context.puller, &context.segments, output_dir.clone(), name.clone()).await
        }
        .await;
        let artifacts = match result {
            Ok(artifacts) => artifacts,
            Err(e) => {
                super::error_at(
                    diags,
                    format!("Cannot assemble image {name}"),
                    &e.context(format!("resin_image {name} in {}", output_dir.display())),
                    AttributePath::root(),
                );
                return None;
            }
        };
        for warning in &artifacts.warnings {
            diags.warning(warning.summary.clone(), warning.detail.clone(), AttributePath::root());
        }
        let mut written = files::record(&mut state, &artifacts.files);
        written.initrd_parts = artifacts.initrd_parts;
        for (document, artifact) in artifacts.documents {
            *state.document(document).1 = Value::Value(artifact.sha256.clone());
            *written.document(document) = Some(artifact.sha256);
        }
        state.spec = spec_of(&state, &content_hash, &kernel, sensitive, &written.initrd_parts);
        Some((state, written))
    }

    /// Kept artifacts: the documents that are missing, were edited, or changed (a
    /// reference spelled anew names the same content) are written again, alone (the other
    /// artifacts are as written, and the documents are functions of the composition).
    async fn keep(
        prior: &ImageState,
        planned: ImageState,
        private: Option<Written<ArtifactKind>>,
        diags: &mut Diagnostics,
    ) -> Option<(ImageState, Option<Written<ArtifactKind>>)> {
        let stale: Vec<Document> =
            Document::ALL.into_iter().filter(|d| prior.document_ref(*d).1 != planned.document_ref(*d).1).collect();
        if stale.is_empty() {
            return Some((planned, private));
        }
        let (composition, name, dir) = Image::target(&planned, diags)?;
        let image = format!("resin_image {name} in {dir}");
        let which = stale.clone();
        let written =
            tokio::task::spawn_blocking(move || write_documents(&composition, Path::new(&dir), &name, &which)).await;
        let documents = match written.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(documents) => documents,
            Err(e) => {
                let at = format!("{}_sha256", stale[0].attribute());
                super::error_at(diags, "Cannot write the image's documents", &e.context(image), AttributePath::new(at));
                return None;
            }
        };
        let (mut state, mut private) = (planned, private.unwrap_or_default());
        for (document, artifact) in documents {
            *state.document(document).1 = Value::Value(artifact.sha256.clone());
            *private.document(document) = Some(artifact.sha256);
        }
        Some((state, Some(private)))
    }

    async fn refresh_more(state: &mut ImageState) {
        // The documents are small: always hashed.
        for document in Document::ALL {
            let path = state.document_ref(document).0.as_ref_option().map(PathBuf::from);
            let digest =
                tokio::task::spawn_blocking(move || path.and_then(|path| file_digest(&path).ok()).map(|(sha, _)| sha))
                    .await
                    .ok()
                    .flatten();
            *state.document(document).1 = digest.map_or(Value::Null, Value::Value);
        }
    }

    fn drift_also(prior: &ImageState, private: &Written<ArtifactKind>) -> Vec<String> {
        Document::ALL
            .into_iter()
            .filter_map(|document| {
                let (path, found) = prior.document_ref(document);
                let (path, written) = (path.as_ref_option()?, private.document_sha256(document)?);
                let found = found.as_ref_option().map(String::as_str);
                (found != Some(written)).then(|| files::describe_drift(Path::new(path), Some(written), found))
            })
            .collect()
    }

    fn removes_also(prior: &ImageState, private: &Written<ArtifactKind>) -> Vec<(PathBuf, Option<String>)> {
        Document::ALL
            .into_iter()
            .filter_map(|document| {
                let (path, sha256) = prior.document_ref(document);
                let written = private.document_sha256(document).map(str::to_string);
                let written = written.or_else(|| sha256.as_ref_option().cloned());
                path.as_ref_option().map(|path| (PathBuf::from(path), written))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(path: &str) -> FileBlock {
        FileBlock { path: Value::Value(path.into()), ..FileBlock::default() }
    }

    #[test]
    fn a_file_block_is_an_error_at_its_setting_and_unknown_until_every_setting_is_known() {
        let mut errors = Vec::new();
        let both =
            FileBlock { contents: Value::Value("x".into()), symlink: Value::Value("/y".into()), ..block("/etc/both") };
        assert_eq!(file_of(2, &both, &mut errors), Some(None));
        let mode = FileBlock { contents: Value::Value("x".into()), mode: Value::Value("rw".into()), ..block("/a") };
        assert_eq!(file_of(3, &mode, &mut errors), Some(None));
        let texts: Vec<(String, String)> = errors.iter().map(|e| (e.summary(), e.to_string())).collect();
        assert_eq!(texts[0].0, "Conflicting file settings");
        assert!(texts[0].1.starts_with("file[2]: "), "{texts:?}");
        assert_eq!(
            texts[1],
            ("Invalid file mode".into(), "file[3].mode: mode \"rw\" is not an octal mode such as \"0644\"".into())
        );
        let unknown = FileBlock { contents: Value::Unknown, ..block("/a") };
        assert_eq!(file_of(0, &unknown, &mut errors), None);
        let good = FileBlock { contents: Value::Value("x".into()), mode: Value::Value("0600".into()), ..block("/a") };
        let file = file_of(0, &good, &mut errors).flatten().unwrap();
        assert_eq!((file.path.as_str(), file.mode), ("/a", Some(0o600)));
    }

    #[test]
    fn every_bad_input_is_collected_and_unknown_ones_wait() {
        let mut errors = Vec::new();
        let state = ImageState {
            kernel: Value::Value("{}".into()),
            init: Value::Value(vec![Value::Value("[]".into())]),
            compression: Value::Value("lz4".into()),
            file: Value::Value(vec![]),
            ..ImageState::default()
        };
        assert!(known_inputs(&state, &mut errors).is_none());
        let paths: Vec<String> = errors.iter().map(FieldError::path_text).collect();
        assert_eq!(paths, ["kernel", "init[0]", "compression"]);
        let waiting = ImageState { kernel: Value::Unknown, ..state };
        errors.clear();
        assert!(known_inputs(&waiting, &mut errors).is_none());
        assert!(errors.is_empty(), "{errors:?}");
    }
}
