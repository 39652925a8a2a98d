//! `resin_boot_check`: boots an image (its kernel and initrd, directly) or a boot file
//! `resin_disk` wrote (a UKI, a `raw-efi` disk, an `iso-efi` image, under UEFI firmware;
//! an iPXE script, network-booted) in a VM at apply ([`crate::boot`]), and fails the apply, with the console, when the
//! `expect` patterns do not all appear in order or a `fail_on` pattern does. Resources that
//! upload or roll out the image `depends_on` it, so a broken image never leaves the
//! pipeline.
//!
//! * **Plan** checks the inputs (patterns compile, the timeout and sizes are in range, the
//!   format boots in a VM, QEMU and the firmware are installed) and computes
//!   `content_hash` over what is booted and how: a new hash replaces the check, so it runs
//!   again exactly when what it boots or how it judges changes.
//! * **Apply** checks the files are those the image or disk recorded, boots, and records
//!   `boot_seconds`, when each pattern matched and the console log's path. A failed check
//!   leaves nothing in the state: the next plan runs it again.
//! * **Refresh** and **destroy** touch nothing (the console log is left for reading).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::context::{ProviderContext, SharedContext};
use super::schema::{attribute, optional_block, resource_schema, strings};
use crate::assemble::ImageSpec;
use crate::boot::{Arch, Media, Vm, DEFAULT_FAIL_ON};
use crate::oci::platform::Platform;

pub struct BootCheck {
    context: SharedContext,
}

impl BootCheck {
    pub fn new(context: SharedContext) -> BootCheck {
        BootCheck { context }
    }

    fn context(&self, diags: &mut Diagnostics) -> Option<Arc<ProviderContext>> {
        super::context::configured(&self.context, diags)
    }
}

const TYPE_NAME: &str = "resin_boot_check";
/// Bumped when how a check boots or judges changes (every check runs again).
const CHECK_FORMAT: u32 = 1;
const DEFAULT_TIMEOUT: i64 = 300;
const DEFAULT_MEMORY_MB: i64 = 1024;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BootCheckState {
    id: Value<String>,
    image: Value<String>,
    #[serde(default)]
    disk: Value<Vec<DiskBlock>>,
    platform: Value<String>,
    name: Value<String>,
    output_dir: Value<String>,
    expect: Value<Vec<Value<String>>>,
    fail_on: Value<Vec<Value<String>>>,
    timeout_seconds: Value<i64>,
    memory_mb: Value<i64>,
    cpus: Value<i64>,
    network: Value<bool>,
    content_hash: Value<String>,
    boot_seconds: Value<Seconds>,
    matches: Value<HashMap<String, Value<Seconds>>>,
    console_log: Value<String>,
    accelerator: Value<String>,
}

/// Seconds, to a tenth. Terraform sends back a number that no float holds exactly (such as
/// 16.4) as text, so it is read from a number or a string.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Seconds(f64);

impl Seconds {
    fn of(seconds: f64) -> Seconds {
        Seconds((seconds * 10.0).round() / 10.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Number {
            Float(f64),
            Text(String),
        }
        match Number::deserialize(deserializer)? {
            Number::Float(seconds) => Ok(Seconds(seconds)),
            Number::Text(text) => text.parse().map(Seconds).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DiskBlock {
    path: Value<String>,
    sha256: Value<String>,
    #[serde(default)]
    content_hash: Value<String>,
}

/// What a check boots and how, once every input is known.
struct Inputs {
    vm: Vm,
    /// The files booted, with the sha256 and size they must have.
    files: Vec<(PathBuf, String, Option<u64>)>,
    /// What the content hash covers of the booted thing.
    what: serde_json::Value,
    name: String,
    output_dir: PathBuf,
    expect: Vec<Regex>,
    fail_on: Vec<Regex>,
    timeout: Duration,
}

/// The patterns of `attribute`, each compiled; reports those that do not.
fn patterns(values: &[Value<String>], attribute: &'static str, diags: &mut Diagnostics) -> Option<Option<Vec<Regex>>> {
    let mut compiled = Vec::new();
    let mut failed = false;
    for (index, value) in values.iter().enumerate() {
        let Value::Value(text) = value else {
            return Some(None);
        };
        match Regex::new(text) {
            Ok(regex) => compiled.push(regex),
            Err(e) => {
                let at = AttributePath::new(attribute).index(super::attribute_index(index));
                diags.error(
                    format!("Invalid {attribute}"),
                    format!("{TYPE_NAME}: {text:?} is not a regular expression: {e}"),
                    at,
                );
                failed = true;
            }
        }
    }
    (!failed).then_some(Some(compiled))
}

/// The settings of `state`, their defaults filled and ranges checked (reported); the
/// compiled `expect` and `fail_on` patterns when known and valid, and whether a setting is
/// unknown.
#[allow(clippy::type_complexity)]
fn settings(state: &mut BootCheckState, diags: &mut Diagnostics) -> (Option<Vec<Regex>>, Option<Vec<Regex>>, bool) {
    let mut unknown = false;
    let mut range =
        |value: &mut Value<i64>, name: &'static str, default: i64, low: i64, high: i64, unit: &str| match value {
            Value::Null => *value = Value::Value(default),
            Value::Value(n) if !(low..=high).contains(n) => diags.error(
                format!("Invalid {name}"),
                format!("{TYPE_NAME}: {n} {unit} is outside {low}..{high}"),
                AttributePath::new(name),
            ),
            Value::Value(_) => {}
            Value::Unknown => unknown = true,
        };
    range(&mut state.timeout_seconds, "timeout_seconds", DEFAULT_TIMEOUT, 1, 3600, "seconds");
    range(&mut state.memory_mb, "memory_mb", DEFAULT_MEMORY_MB, 128, 65536, "MiB");
    range(&mut state.cpus, "cpus", 1, 1, 16, "CPUs");
    if state.network.is_null() {
        state.network = Value::Value(false);
    }
    if state.fail_on.is_null() {
        state.fail_on = Value::Value(DEFAULT_FAIL_ON.iter().map(|p| Value::Value(p.to_string())).collect());
    }
    let expect = match &state.expect {
        Value::Value(values) if values.is_empty() => {
            diags.error_short(
                format!("{TYPE_NAME}: expect lists no pattern: say what the console shows when the image is up"),
                AttributePath::new("expect"),
            );
            None
        }
        Value::Value(values) => patterns(values, "expect", diags).flatten(),
        _ => None,
    };
    let fail_on = match &state.fail_on {
        Value::Value(values) => patterns(values, "fail_on", diags).flatten(),
        _ => None,
    };
    (expect, fail_on, unknown)
}

/// What a check boots: the media, the files with their recorded digests, what the content
/// hash covers of it, the default name and the platform it is for.
struct Booted {
    media: Media,
    files: Vec<(PathBuf, String, Option<u64>)>,
    what: serde_json::Value,
    name: String,
    platform: Option<Platform>,
}

/// What `state` boots (`image` or `disk`); `Ok(None)` while unknown.
fn booted(state: &BootCheckState, diags: &mut Diagnostics) -> Result<Option<Booted>, ()> {
    let disk = match &state.disk {
        Value::Value(blocks) => blocks.first().cloned(),
        Value::Null => None,
        Value::Unknown => return Ok(None),
    };
    let (media, files, what, name, platform) = match (&state.image, &disk) {
        (Value::Value(_), Some(_)) | (Value::Null, None) => {
            diags.error_short(
                format!("{TYPE_NAME}: set one of image (a resin_image's spec, booted directly) and disk (a resin_disk's file)"),
                AttributePath::new("image"),
            );
            return Err(());
        }
        (Value::Unknown, _) => return Ok(None),
        (Value::Value(text), None) => {
            let image = match ImageSpec::parse(text) {
                Ok(image) => image,
                Err(e) => {
                    diags.error("Invalid image", format!("{TYPE_NAME}: {e:#}"), AttributePath::new("image"));
                    return Err(());
                }
            };
            let media = Media::Direct {
                kernel: PathBuf::from(&image.kernel_path),
                initrd: PathBuf::from(&image.initrd_path),
                cmdline: image.cmdline.clone(),
            };
            let files = vec![
                (PathBuf::from(&image.kernel_path), image.kernel_sha256.clone(), Some(image.kernel_size)),
                (PathBuf::from(&image.initrd_path), image.initrd_sha256.clone(), Some(image.initrd_size)),
            ];
            let what = json!({ "image": image.content_hash, "name": image.name, "cmdline": image.cmdline });
            (media, files, what, image.name.clone(), Some(image.platform.clone()))
        }
        (Value::Null, Some(block)) => {
            let (Value::Value(path), Value::Value(sha256)) = (&block.path, &block.sha256) else {
                return Ok(None);
            };
            if block.content_hash.is_unknown() {
                return Ok(None);
            }
            let path = PathBuf::from(path);
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let media = match disk_media(&path, &file_name) {
                Ok(media) => media,
                Err(problem) => {
                    diags.error(
                        "Format not bootable in a VM",
                        format!("{TYPE_NAME}: {problem}"),
                        AttributePath::new("disk").index(0).attribute("path"),
                    );
                    return Err(());
                }
            };
            let stem = crate::disk::FORMATS
                .iter()
                .find_map(|format| file_name.strip_suffix(format.suffix()))
                .unwrap_or(&file_name)
                .to_string();
            if matches!(media, Media::Ipxe(_)) && block.content_hash.is_null() {
                // The script names what it fetches, not its bytes: the same script boots
                // every version of a local image.
                diags.error(
                    "Missing content_hash",
                    format!("{TYPE_NAME}: {file_name} is an iPXE script, whose bytes do not change with the image it fetches: set content_hash = resin_disk.<name>.content_hash, so that the check runs again when the image changes"),
                    AttributePath::new("disk").index(0).attribute("content_hash"),
                );
                return Err(());
            }
            let mut what = json!({ "disk": file_name, "sha256": sha256 });
            if let Value::Value(content_hash) = &block.content_hash {
                what["content_hash"] = json!(content_hash);
            }
            (media, vec![(path, sha256.clone(), None)], what, stem, None)
        }
    };
    Ok(Some(Booted { media, files, what, name, platform }))
}

/// Checks the inputs of `state`; `Ok(None)` while some are unknown. Fills the defaults.
fn inputs(
    state: &mut BootCheckState,
    default_platform: &Platform,
    diags: &mut Diagnostics,
) -> Result<Option<Inputs>, ()> {
    let before = diags.errors.len();
    let (expect, fail_on, unknown) = settings(state, diags);
    let Some(Booted { media, files, what, name, platform }) = booted(state, diags)? else {
        return Ok(None);
    };
    let platform = match (&state.platform, platform) {
        (Value::Value(text), from_image) => match text.parse::<Platform>() {
            Ok(platform) if from_image.as_ref().is_none_or(|p| *p == platform) => platform,
            Ok(platform) => {
                diags.error(
                    "Invalid platform",
                    format!("{TYPE_NAME}: the image is for {}, not {platform}", from_image.expect("a platform")),
                    AttributePath::new("platform"),
                );
                return Err(());
            }
            Err(e) => {
                diags.error("Invalid platform", format!("{TYPE_NAME}: {e}"), AttributePath::new("platform"));
                return Err(());
            }
        },
        (Value::Unknown, _) => return Ok(None),
        (Value::Null, from_image) => from_image.unwrap_or_else(|| default_platform.clone()),
    };
    state.platform = Value::Value(platform.to_string());
    let Some(arch) = Arch::of_platform(&platform.architecture) else {
        diags.error(
            "Unsupported platform",
            format!("{TYPE_NAME}: no VM boots {platform} here (linux/amd64 and linux/arm64 do)"),
            AttributePath::new("platform"),
        );
        return Err(());
    };
    if let Some(problem) = crate::boot::missing_tools(arch, &media) {
        diags.error(
            "Cannot boot here",
            format!("{TYPE_NAME}: {problem}"),
            AttributePath::new(if state.image.is_null() { "disk" } else { "image" }),
        );
        return Err(());
    }
    if state.name.is_null() {
        state.name = Value::Value(name);
    }
    if diags.errors.len() > before {
        return Err(());
    }
    let (Value::Value(name), Value::Value(output_dir), Some(expect), Some(fail_on), false) =
        (&state.name, &state.output_dir, expect, fail_on, unknown)
    else {
        return Ok(None);
    };
    if !crate::container::is_valid_name(name) {
        diags.error(
            "Invalid name",
            format!("{TYPE_NAME}: {name:?} is not a usable file name prefix"),
            AttributePath::new("name"),
        );
        return Err(());
    }
    let to_u32 = |value: &Value<i64>| u32::try_from(value.unwrap_or(1)).unwrap_or(1);
    let vm = Vm {
        arch,
        media,
        memory_mb: to_u32(&state.memory_mb),
        cpus: to_u32(&state.cpus),
        network: state.network.unwrap_or(false),
    };
    let timeout = Duration::from_secs(state.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT).unsigned_abs());
    Ok(Some(Inputs {
        vm,
        files,
        what,
        name: name.clone(),
        output_dir: PathBuf::from(output_dir),
        expect,
        fail_on,
        timeout,
    }))
}

/// How a boot file of `file_name` boots in a VM, or why it does not.
fn disk_media(path: &Path, file_name: &str) -> Result<Media, String> {
    let format = crate::disk::FORMATS
        .iter()
        .filter(|format| file_name.ends_with(format.suffix()))
        .max_by_key(|format| format.suffix().len())
        .map(|format| format.name());
    match format {
        Some("uki") => Ok(Media::Uki(path.to_path_buf())),
        Some("raw-efi") => Ok(Media::Disk { path: path.to_path_buf(), cdrom: false }),
        Some("iso-efi") => Ok(Media::Disk { path: path.to_path_buf(), cdrom: true }),
        Some("gcp") => Err(format!("{file_name} is a gcp archive: check the raw-efi disk of the same image instead (the archive's disk.raw holds the same bytes)")),
        Some("ipxe") => Ok(Media::Ipxe(path.to_path_buf())),
        _ => Err(format!("{} is not a file resin_disk writes (<name> and a format's suffix)", path.display())),
    }
}

/// The check's content hash: what is booted, on what, and how it is judged.
fn content_hash(state: &BootCheckState, inputs: &Inputs) -> String {
    let texts = |value: &Value<Vec<Value<String>>>| -> Vec<String> {
        value.as_ref_option().map(|v| v.iter().filter_map(|s| s.as_ref_option().cloned()).collect()).unwrap_or_default()
    };
    let document = json!({
        "check_format": CHECK_FORMAT,
        "boots": inputs.what,
        "platform": state.platform.as_ref_option(),
        "expect": texts(&state.expect),
        "fail_on": texts(&state.fail_on),
        "timeout_seconds": state.timeout_seconds.as_ref_option(),
        "memory_mb": state.memory_mb.as_ref_option(),
        "cpus": state.cpus.as_ref_option(),
        "network": state.network.as_ref_option(),
    });
    crate::oci::digest::sha256(document.to_string().as_bytes()).to_string()
}

impl BootCheck {
    fn plan(&self, state: &mut BootCheckState, diags: &mut Diagnostics) -> Option<()> {
        let context = self.context(diags)?;
        let inputs = inputs(state, &context.platform, diags).ok()?;
        // Defaults not filled yet follow inputs not known yet.
        for value in [&mut state.platform, &mut state.name] {
            if value.is_null() {
                *value = Value::Unknown;
            }
        }
        state.content_hash = inputs.as_ref().map_or(Value::Unknown, |inputs| Value::Value(content_hash(state, inputs)));
        state.id = state.content_hash.clone();
        state.console_log = match (&state.output_dir, &state.name) {
            (Value::Value(dir), Value::Value(name)) => {
                Value::Value(Path::new(dir).join(format!("{name}-boot.log")).display().to_string())
            }
            _ => Value::Unknown,
        };
        state.boot_seconds = Value::Unknown;
        state.matches = Value::Unknown;
        state.accelerator = Value::Unknown;
        Some(())
    }

    async fn run(&self, diags: &mut Diagnostics, mut state: BootCheckState) -> Option<BootCheckState> {
        let context = self.context(diags)?;
        let inputs = inputs(&mut state, &context.platform, diags).ok()??;
        let files = inputs.files.clone();
        let checked = tokio::task::spawn_blocking(move || {
            for (path, sha256, size) in files {
                let (digest, length) = crate::assemble::file_digest(&path)
                    .map_err(|e| e.context(format!("reading {}", path.display())))?;
                if digest != sha256 || size.is_some_and(|size| size != length) {
                    anyhow::bail!(
                        "{} changed since resin wrote it ({digest}, {length} bytes; recorded {sha256}): apply it again",
                        path.display()
                    );
                }
            }
            Ok(())
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|checked| checked);
        if let Err(e) = checked {
            super::error_at(
                diags,
                "Changed boot files",
                &e.context(TYPE_NAME),
                AttributePath::new(if state.image.is_null() { "disk" } else { "image" }),
            );
            return None;
        }
        if let Err(e) = std::fs::create_dir_all(&inputs.output_dir) {
            let e = anyhow::Error::from(e).context(format!("{TYPE_NAME}: creating {}", inputs.output_dir.display()));
            super::error_at(diags, "Invalid output_dir", &e, AttributePath::new("output_dir"));
            return None;
        }
        let log = inputs.output_dir.join(format!("{}-boot.log", inputs.name));
        let outcome =
            crate::boot::check(&inputs.vm, inputs.expect, inputs.fail_on, inputs.timeout, &log, &inputs.output_dir)
                .await;
        match outcome {
            Ok(passed) => {
                state.boot_seconds = Value::Value(Seconds::of(passed.boot_seconds));
                state.matches = Value::Value(
                    passed
                        .matches
                        .iter()
                        .map(|(pattern, at)| (pattern.clone(), Value::Value(Seconds::of(*at))))
                        .collect(),
                );
                state.accelerator = Value::Value(passed.accelerator.to_string());
                state.console_log = Value::Value(log.display().to_string());
                Some(state)
            }
            Err(e) => {
                let name = state.name.as_ref_option().cloned().unwrap_or_default();
                super::error_at(
                    diags,
                    format!("Boot check {name} failed"),
                    &e.context(format!("{TYPE_NAME} {name}: booting under QEMU ({:?})", inputs.vm.arch)),
                    AttributePath::new("expect"),
                );
                None
            }
        }
    }
}

#[async_trait]
impl Resource for BootCheck {
    type State<'a> = BootCheckState;
    type PrivateState<'a> = Option<()>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(resource_schema(
            "Boots an image (its kernel and initrd, directly) or a boot file of `resin_disk` (`uki`, `raw-efi`, `iso-efi`, under UEFI firmware: OVMF, AAVMF; an `ipxe` script, from the network) in a QEMU VM at apply, and fails the apply, with the console, unless the `expect` patterns all appear in order before the timeout and no `fail_on` pattern does. The architecture follows the image (linux/amd64, linux/arm64) on any host: KVM when it is the host's and `/dev/kvm` is usable, emulation (TCG) otherwise. Resources that publish or roll out the image `depends_on` the check. It runs again exactly when its `content_hash` changes.",
            vec![
                attribute("image", AttributeType::String, Optional, "A `resin_image`'s spec, booted directly (QEMU's `-kernel`, `-initrd`, and the image's command line). Set this or `disk`."),
                attribute("platform", AttributeType::String, OptionalComputed, "The VM's platform. Default: the image's; for a `disk`, the provider's `platform`."),
                attribute("name", AttributeType::String, OptionalComputed, "Base name of the console log, `<output_dir>/<name>-boot.log`. Default: the image's name, or the disk file's."),
                attribute("output_dir", AttributeType::String, Required, "Directory the console log is written to."),
                attribute("expect", strings(), Required, "Regular expressions (Rust `regex` syntax) that must appear on the console, each on a line after the one before (or the same line): what the image prints when it is up. The check passes, and the VM is stopped, once the last one appears."),
                attribute("fail_on", strings(), OptionalComputed, &format!("Regular expressions that fail the check at once when a console line matches. Default: {}.", DEFAULT_FAIL_ON.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "))),
                attribute("timeout_seconds", AttributeType::Number, OptionalComputed, "Seconds the VM may run before the check fails (it is then killed), 1 to 3600. Default: 300. TCG is some 10 times slower than KVM."),
                attribute("memory_mb", AttributeType::Number, OptionalComputed, "The VM's memory, 128 to 65536 MiB. Default: 1024."),
                attribute("cpus", AttributeType::Number, OptionalComputed, "The VM's CPUs, 1 to 16. Default: 1."),
                attribute("network", AttributeType::Bool, OptionalComputed, "Give the VM a network (QEMU's user network: outbound NAT, no inbound connections). Default: false, no network."),
                attribute("id", AttributeType::String, Computed, "The content hash."),
                attribute("content_hash", AttributeType::String, Computed, "sha256 over what is booted (the image's content hash, name and command line, or the disk file's name, sha256 and content hash), the platform and every setting: a new hash replaces the check, which boots again."),
                attribute("boot_seconds", AttributeType::Number, Computed, "Seconds from starting QEMU to the last expected pattern."),
                attribute("matches", AttributeType::Map(Box::new(AttributeType::Number)), Computed, "Each expected pattern and the seconds after which it appeared."),
                attribute("console_log", AttributeType::String, Computed, "Path of the console log of the last boot."),
                attribute("accelerator", AttributeType::String, Computed, "`kvm` or `tcg`: how the VM ran."),
            ],
            vec![optional_block(
                "disk",
                "A boot file `resin_disk` wrote: `uki` (loaded by the firmware), `raw-efi` (a disk; the VM's writes go to a snapshot, the file stays as it is), `iso-efi` (a CD) or `ipxe` (linux/amd64: QEMU's iPXE ROM network-boots the script from QEMU's TFTP server, which serves the script's directory as `tftp://10.0.2.2/`; the host is `10.0.2.2`, so a `base_url` of the directory, a web server or a registry on the host works; the VM has QEMU's user network whatever `network` says). `gcp` archives are not booted: check the raw-efi disk of the same image, which is the archive's `disk.raw`.",
                vec![
                    attribute("path", AttributeType::String, Required, "The file (`resin_disk.x.path`); its format is told by its name."),
                    attribute("sha256", AttributeType::String, Required, "Its sha256 as written (`resin_disk.x.sha256`): a file changed since is an error at apply."),
                    attribute("content_hash", AttributeType::String, Optional, "The disk's `content_hash` (`resin_disk.x.content_hash`), part of the check's: required for an `ipxe` script, whose bytes stay the same when the image it fetches changes."),
                ],
                vec![],
            )],
        ))
    }

    async fn validate<'a>(&self, _diags: &mut Diagnostics, _config: Self::State<'a>) -> Option<()> {
        Some(())
    }

    async fn read<'a>(
        &self,
        _diags: &mut Diagnostics,
        state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        Some((state, private))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        mut proposed: Self::State<'a>,
        _config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        self.plan(&mut proposed, diags)?;
        Some((proposed, None))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        mut proposed: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        self.plan(&mut proposed, diags)?;
        if proposed.content_hash.as_ref_option().is_some()
            && proposed.content_hash.as_ref_option() == prior.content_hash.as_ref_option()
        {
            // Nothing that the check covers changed: it stands.
            proposed.boot_seconds = prior.boot_seconds;
            proposed.matches = prior.matches.clone();
            proposed.accelerator = prior.accelerator.clone();
            return Some((proposed, private, vec![]));
        }
        // Anything else boots again: a new check.
        Some((proposed, private, vec![AttributePath::new("content_hash")]))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        self.run(diags, planned).await.map(|state| (state, None))
    }

    async fn update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        // Only what the check does not cover changed (nothing does: every input is in the
        // hash); keep what the last boot saw.
        Some((planned, private))
    }

    async fn destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        Some(())
    }
}
