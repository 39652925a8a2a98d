//! `resin_disk`: one boot file made from a `resin_image` in one of the formats of
//! [`crate::disk::FORMATS`], written to `<output_dir>/<name><suffix>`. Several formats of one image are several
//! resources.
//!
//! * **Plan** reads the image's `spec` (and the stub's, for formats that boot through
//!   one) and computes `content_hash` from them: known whenever the image's content hash
//!   is. A new hash rewrites the file in place; a new path (`name`, `output_dir`,
//!   `format`) replaces the resource.
//! * **Apply** checks the inputs still give the planned hash, pulls the stub by digest,
//!   checks the image's kernel suits the format and writes the file through a temporary
//!   file renamed into place: a failure leaves the previous file.
//! * **Refresh**, drift and **destroy** are those of every file resin writes
//!   ([`super::files`]): an edited or missing file is planned again, and destroy removes
//!   the file only while it is what apply wrote.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint::*, AttributeType, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::files::{self, OnDisk, WritesFiles, Written};
use super::provider::{ProviderContext, SharedContext};
use super::schema::{attribute, resource_schema, strings};
use crate::assemble::{ArtifactKind, EfiStubSpec, ImageSpec};
use crate::disk::signing::{Fault, KeyFailed, KeySource, Signer, SigningError};
use crate::disk::{DiskFormat, Sources};

pub struct Disk {
    context: SharedContext,
}

impl Disk {
    pub fn new(context: SharedContext) -> Disk {
        Disk { context }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DiskState {
    id: Value<String>,
    image: Value<String>,
    format: Value<String>,
    name: Value<String>,
    output_dir: Value<String>,
    stub: Value<String>,
    base_url: Value<String>,
    size_mb: Value<i64>,
    uname: Value<String>,
    sbat: Value<String>,
    /// Absent from states written before signing existed.
    #[serde(default)]
    signing_certificate: Value<String>,
    #[serde(default)]
    signing_key: Value<String>,
    #[serde(default)]
    signing_key_file: Value<String>,
    #[serde(default)]
    signing_command: Value<Vec<Value<String>>>,
    content_hash: Value<String>,
    /// Absent from states written before it existed.
    #[serde(default)]
    pcr11_sha256: Value<String>,
    path: Value<String>,
    sha256: Value<String>,
    size: Value<i64>,
}

impl WritesFiles for DiskState {
    fn kinds(&self) -> &'static [ArtifactKind] {
        &[ArtifactKind::Disk]
    }

    fn path(&self, _kind: ArtifactKind) -> Option<PathBuf> {
        self.path.as_ref_option().map(PathBuf::from)
    }

    fn get(&self, _kind: ArtifactKind) -> OnDisk {
        match (&self.sha256, &self.size) {
            (Value::Value(sha256), Value::Value(size)) => {
                OnDisk::File(sha256.clone(), u64::try_from(*size).unwrap_or_default())
            }
            (Value::Unknown, _) | (_, Value::Unknown) => OnDisk::ToWrite,
            _ => OnDisk::Missing,
        }
    }

    fn set(&mut self, _kind: ArtifactKind, on_disk: OnDisk) {
        (self.sha256, self.size) = match on_disk {
            OnDisk::File(digest, length) => (Value::Value(digest), Value::Value(super::number_of_bytes(length))),
            OnDisk::Missing => (Value::Null, Value::Null),
            OnDisk::ToWrite => (Value::Unknown, Value::Unknown),
        };
    }
}

/// The largest `size_mb`: 1 TiB.
const MAX_SIZE_MB: u64 = 1 << 20;

/// The parsed inputs of a disk; `None` where a value is still unknown.
struct Inputs {
    format: Option<&'static dyn DiskFormat>,
    image: Option<ImageSpec>,
    stub: Option<Option<EfiStubSpec>>,
    base_url: Option<Option<String>>,
    size_mb: Option<Option<u64>>,
    uname: Option<Option<String>>,
    sbat: Option<Option<String>>,
    signing: Option<Option<Signing>>,
}

/// How a disk's UKI is signed: the certificate, its digest (in the content hash) and where
/// the key is. The key's own bytes are never kept here.
#[derive(Clone, Debug)]
struct Signing {
    certificate: String,
    certificate_digest: crate::oci::digest::Digest,
    key: SigningKey,
    /// About the certificate (expired, no code signing), for the plan.
    warnings: Vec<String>,
}

#[derive(Clone)]
enum SigningKey {
    /// The `signing_key` value (sensitive).
    Pem(String),
    File(PathBuf),
    Command(Vec<String>),
}

/// Never shows the key itself.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningKey::Pem(_) => f.write_str("Pem(<sensitive>)"),
            SigningKey::File(path) => f.debug_tuple("File").field(path).finish(),
            SigningKey::Command(argv) => f.debug_tuple("Command").field(argv).finish(),
        }
    }
}

impl SigningKey {
    /// The attribute it comes from.
    fn attribute(&self) -> &'static str {
        match self {
            SigningKey::Pem(_) => "signing_key",
            SigningKey::File(_) => "signing_key_file",
            SigningKey::Command(_) => "signing_command",
        }
    }
}

impl Signing {
    /// The signer: the certificate parsed, a key read and checked to be the certificate's.
    fn signer(&self) -> Result<Signer, SigningError> {
        let key = match &self.key {
            SigningKey::Pem(pem) => KeySource::Pem(pem),
            SigningKey::File(path) => KeySource::File(path),
            SigningKey::Command(argv) => KeySource::Command(argv),
        };
        Signer::new(&self.certificate, key)
    }
}

/// The signing inputs of `state`: `Some(None)` when it signs nothing, `None` while one is
/// unknown or when one is wrong (reported through `fail`).
fn signing_of(state: &DiskState, mut fail: impl FnMut(&'static str, String)) -> Option<Option<Signing>> {
    let command = match &state.signing_command {
        Value::Value(words) => {
            let words: Option<Vec<String>> = words.iter().map(|w| w.as_ref_option().cloned()).collect();
            Value::Value(words?)
        }
        Value::Null => Value::Null,
        Value::Unknown => return None,
    };
    let keys = [
        ("signing_key", state.signing_key.clone().map(SigningKey::Pem)),
        ("signing_key_file", state.signing_key_file.clone().map(|path| SigningKey::File(PathBuf::from(path)))),
        ("signing_command", command.map(SigningKey::Command)),
    ];
    if state.signing_certificate.is_unknown() || keys.iter().any(|(_, key)| key.is_unknown()) {
        return None;
    }
    let mut given = keys.into_iter().filter_map(|(name, key)| key.as_ref_option().cloned().map(|key| (name, key)));
    let (first, second) = (given.next(), given.next());
    let Value::Value(certificate) = &state.signing_certificate else {
        if let Some((name, _)) = first {
            fail(name, "set signing_certificate to the certificate of this key, or leave the key out".into());
            return None;
        }
        return Some(None);
    };
    let key = match (first, second) {
        (Some((_, key)), None) => key,
        (None, _) => {
            fail("signing_certificate", "set one of signing_key, signing_key_file and signing_command: the key that signs with this certificate".into());
            return None;
        }
        (Some((one, _)), Some((other, _))) => {
            fail(other, format!("set one of signing_key, signing_key_file and signing_command, not {one} and {other}"));
            return None;
        }
    };
    let mut signing = Signing {
        certificate: certificate.clone(),
        certificate_digest: crate::oci::digest::sha256(b""),
        key,
        warnings: Vec::new(),
    };
    match signing.signer() {
        Ok(signer) => {
            signing.certificate_digest = crate::oci::digest::sha256(&signer.certificate_der().unwrap_or_default());
            signing.warnings = signer.warnings(std::time::SystemTime::now());
            Some(Some(signing))
        }
        Err(SigningError { fault, error }) => {
            let at = match fault {
                Fault::Certificate => "signing_certificate",
                Fault::Key => signing.key.attribute(),
            };
            fail(at, format!("{error:#}"));
            None
        }
    }
}

/// A known text attribute checked by `check` (`Some(problem)` when bad), `None` while
/// unknown.
fn checked_text(
    value: &Value<String>,
    check: fn(&str) -> Option<String>,
    mut fail: impl FnMut(String),
) -> Option<Option<String>> {
    match value {
        Value::Value(text) => match check(text) {
            None => Some(Some(text.clone())),
            Some(problem) => {
                fail(problem);
                None
            }
        },
        Value::Null => Some(None),
        Value::Unknown => None,
    }
}

/// A `fail` callback: the attribute, a summary, the detail.
type Fail<'f> = dyn FnMut(&'static str, &str, String) + 'f;

/// `size_mb` checked: `None` while unknown or when it is no size resin can make (reported).
fn size_mb_of(size_mb: &Value<i64>, fail: &mut Fail<'_>) -> Option<Option<u64>> {
    let sizes = crate::disk::raw_efi::min_size_mb()..=MAX_SIZE_MB;
    match size_mb {
        Value::Value(size) => match u64::try_from(*size).ok().filter(|size| sizes.contains(size)) {
            Some(size) => Some(Some(size)),
            None => {
                fail("size_mb",
                        "Invalid size_mb",
                        format!(
                            "{size} is not a disk size resin can make: from {} MiB (an EFI system partition of {} MiB and the partition tables) to {} MiB (1 TiB)",
                            sizes.start(),
                            crate::disk::esp::MIN_SIZE >> 20,
                            sizes.end()
                        ),
                    );
                None
            }
        },
        Value::Null => Some(None),
        Value::Unknown => None,
    }
}

impl Inputs {
    /// Parses what is known of `state`, reporting bad values at their attribute.
    fn of(state: &DiskState, diags: &mut Diagnostics) -> Result<Inputs, ()> {
        let mut failed = false;
        let mut fail = |attribute: &'static str, summary: &str, detail: String| {
            diags.error(
                summary.to_string(),
                format!("resin_disk {attribute}: {detail}"),
                AttributePath::new(attribute),
            );
            failed = true;
        };
        let format = match &state.format {
            Value::Value(name) => match crate::disk::format(name) {
                Some(format) => Some(format),
                None => {
                    let names = crate::disk::format_names().join(", ");
                    fail("format", "Unknown format", format!("{name:?} is not a format: use one of {names}"));
                    None
                }
            },
            _ => None,
        };
        let image = match &state.image {
            Value::Value(text) => match ImageSpec::parse(text) {
                Ok(image) => Some(image),
                Err(e) => {
                    fail("image", "Invalid image", format!("{e:#}"));
                    None
                }
            },
            _ => None,
        };
        let stub = match &state.stub {
            Value::Value(text) => match EfiStubSpec::parse(text) {
                Ok(stub) => Some(Some(stub)),
                Err(e) => {
                    fail("stub", "Invalid stub", format!("{e:#}"));
                    None
                }
            },
            Value::Null => Some(None),
            Value::Unknown => None,
        };
        let base_url = checked_text(&state.base_url, crate::disk::ipxe::check_base_url, |problem| {
            fail("base_url", "Invalid base_url", problem)
        });
        let uname =
            checked_text(&state.uname, crate::disk::uname::check, |problem| fail("uname", "Invalid uname", problem));
        let sbat = checked_text(&state.sbat, crate::disk::sbat::check, |problem| fail("sbat", "Invalid sbat", problem));
        let signing = signing_of(state, |attribute, problem| fail(attribute, "Cannot sign", problem));
        let size_mb = size_mb_of(&state.size_mb, &mut fail);
        let inputs = Inputs { format, image, stub, base_url, size_mb, uname, sbat, signing };
        inputs.check_together(state, &mut fail);
        if failed {
            return Err(());
        }
        Ok(inputs)
    }

    /// Checks the settings against each other: what the format takes and needs, the
    /// command line for the format, the stub's platform for the image's.
    fn check_together(&self, state: &DiskState, fail: &mut Fail<'_>) {
        let Inputs { format, image, stub, base_url, size_mb, uname, sbat, .. } = self;
        if let Some(format) = *format {
            let name = format.name();
            if let (Some(Some(_)), false) = (size_mb, format.sized()) {
                fail("size_mb", "Unused size_mb", format!("format {name:?} is not a disk: it takes no size_mb"));
            }
            for (attribute, value) in [
                ("uname", matches!(uname, Some(Some(_)))),
                ("sbat", matches!(sbat, Some(Some(_)))),
                ("signing_certificate", !state.signing_certificate.is_null()),
            ] {
                if value && !format.needs_stub() {
                    let summary = format!("Unused {attribute}");
                    fail(attribute, &summary, format!("format {name:?} holds no UKI: it takes no {attribute}"));
                }
            }
            match stub {
                Some(None) if format.needs_stub() => fail(
                    "stub",
                    "Missing stub",
                    format!("format {name:?} boots through an EFI stub: set stub = resin_efi_stub.<name>.spec"),
                ),
                Some(Some(_)) if !format.needs_stub() => {
                    fail("stub", "Unused stub", format!("format {name:?} takes no stub"))
                }
                _ => {}
            }
            match base_url {
                Some(None) if format.needs_base_url() => fail(
                    "base_url",
                    "Missing base_url",
                    format!(
                        "format {name:?} boots from the network: set base_url to where the image's files are served"
                    ),
                ),
                Some(Some(_)) if !format.needs_base_url() => {
                    fail("base_url", "Unused base_url", format!("format {name:?} takes no base_url"))
                }
                _ => {}
            }
        }
        if let (Some(image), Some(format)) = (image, *format) {
            let problem =
                crate::assemble::check_cmdline(&image.cmdline).or_else(|| format.check_cmdline(&image.cmdline));
            if let Some(problem) = problem {
                fail("image",
                    "Command line unfit for the format",
                    format!(
                        "the command line of resin_image {} (its resin_kernel's cmdline) cannot go in format {:?}: {problem}",
                        image.name,
                        format.name()
                    ),
                );
            }
        }
        if let (Some(image), Some(Some(stub))) = (image, stub) {
            if image.platform != stub.platform {
                fail(
                    "stub",
                    "Stub of another platform",
                    format!("the stub is for {}, resin_image {} for {}", stub.platform, image.name, image.platform),
                );
            }
        }
    }

    /// Everything, when everything is known.
    fn complete(&self) -> Option<Complete<'_>> {
        Some(Complete {
            format: self.format?,
            image: self.image.as_ref()?,
            stub: self.stub.as_ref()?.as_ref(),
            base_url: self.base_url.as_ref()?.as_deref(),
            size_mb: self.size_mb?,
            uname: self.uname.as_ref()?.as_deref(),
            sbat: self.sbat.as_ref()?.as_deref(),
            signing: self.signing.as_ref()?.as_ref(),
        })
    }
}

/// The inputs of a disk, all known.
struct Complete<'a> {
    format: &'static dyn DiskFormat,
    image: &'a ImageSpec,
    stub: Option<&'a EfiStubSpec>,
    base_url: Option<&'a str>,
    size_mb: Option<u64>,
    uname: Option<&'a str>,
    sbat: Option<&'a str>,
    signing: Option<&'a Signing>,
}

/// Fills `name` and `output_dir` from the image, `path` and `id` from them, and
/// `content_hash` from the inputs (unknown until they are).
fn plan_state(mut state: DiskState, config: &DiskState, inputs: &Inputs) -> DiskState {
    if config.name.is_null() {
        state.name = inputs.image.as_ref().map_or(Value::Unknown, |image| Value::Value(image.name.clone()));
    }
    if config.output_dir.is_null() {
        state.output_dir = inputs.image.as_ref().map_or(Value::Unknown, |image| Value::Value(image.output_dir.clone()));
    }
    state.path = match (&state.output_dir, &state.name, inputs.format) {
        (Value::Value(dir), Value::Value(name), Some(format)) => {
            Value::Value(Path::new(dir).join(format!("{name}{}", format.suffix())).display().to_string())
        }
        _ => Value::Unknown,
    };
    state.id = state.path.clone();
    state.content_hash = match inputs.complete() {
        Some(Complete { format, image, stub, base_url, size_mb, uname, sbat, signing }) => {
            let sources =
                Sources { image, stub: None, base_url, size_mb, uname, sbat, scratch: Path::new("."), signer: None };
            let certificate = signing.map(|s| &s.certificate_digest);
            Value::Value(crate::disk::content_hash(format, &sources, stub, certificate).to_string())
        }
        None => Value::Unknown,
    };
    state
}

/// The planned state of `proposed` and its inputs: the inputs checked, `plan_state`
/// filled and its output directory checked to be usable.
fn planned(proposed: DiskState, config: &DiskState, diags: &mut Diagnostics) -> Option<(DiskState, Inputs)> {
    let inputs = Inputs::of(&proposed, diags).ok()?;
    if let Some(Some(signing)) = &inputs.signing {
        for warning in &signing.warnings {
            diags.warning(
                "Signing certificate",
                format!("resin_disk signing_certificate: {warning}"),
                AttributePath::new("signing_certificate"),
            );
        }
    }
    let state = plan_state(proposed, config, &inputs);
    if let Value::Value(dir) = &state.output_dir {
        if !files::check_output_dir("resin_disk", dir, diags) {
            return None;
        }
    }
    Some((state, inputs))
}

/// The stub's bytes: from the cache, else pulled by its pinned digest.
async fn stub_bytes(context: &ProviderContext, stub: &EfiStubSpec) -> anyhow::Result<Vec<u8>> {
    crate::assemble::read_image_file(
        &context.puller,
        &stub.image,
        &stub.platform,
        &stub.path,
        crate::disk::uki::MAX_STUB,
    )
    .await
}

impl Disk {
    fn context(&self, diags: &mut Diagnostics) -> Option<std::sync::Arc<ProviderContext>> {
        super::provider::configured(&self.context, diags)
    }

    /// `pcr11_sha256` of the planned `state`: null for formats without a UKI or a stub
    /// that is not systemd's; the prior value while the content hash is the prior one (it
    /// is a function of the same inputs); else predicted from the image's recorded digests
    /// and the stub, unknown while they are, or when the stub cannot be read now.
    async fn predicted_pcr11(&self, state: &DiskState, inputs: &Inputs, prior: Option<&DiskState>) -> Value<String> {
        match inputs.format {
            Some(format) if !format.needs_stub() => return Value::Null,
            None => return Value::Unknown,
            Some(_) => {}
        }
        if let Some(prior) = prior.filter(|p| p.content_hash == state.content_hash && state.content_hash.is_value()) {
            if !prior.pcr11_sha256.is_unknown() {
                return prior.pcr11_sha256.clone();
            }
        }
        let Some(Complete { image, stub: Some(stub), uname, sbat, .. }) = inputs.complete() else {
            return Value::Unknown;
        };
        let Some(context) = self.context(&mut Diagnostics::default()) else { return Value::Unknown };
        let stub_bytes = match stub_bytes(&context, stub).await {
            Ok(bytes) => bytes,
            Err(e) => {
                crate::log::debug("pcr11_sha256 left to apply", &[("reason", format!("{e:#}"))]);
                return Value::Unknown;
            }
        };
        let (image, uname, sbat) = (image.clone(), uname.map(str::to_string), sbat.map(str::to_string));
        let predicted = tokio::task::spawn_blocking(move || {
            let sources = Sources {
                image: &image,
                stub: Some(&stub_bytes),
                base_url: None,
                size_mb: None,
                uname: uname.as_deref(),
                sbat: sbat.as_deref(),
                scratch: Path::new("."),
                signer: None,
            };
            crate::disk::measure::predict(&sources, &stub_bytes)
        })
        .await;
        match predicted {
            Ok(Ok(Some(pcr))) => Value::Value(hex::encode(pcr)),
            Ok(Ok(None)) => Value::Null,
            Ok(Err(e)) => {
                crate::log::debug("pcr11_sha256 left to apply", &[("reason", format!("{e:#}"))]);
                Value::Unknown
            }
            Err(_) => Value::Unknown,
        }
    }

    async fn apply(&self, diags: &mut Diagnostics, planned: DiskState) -> Option<(DiskState, Option<Written>)> {
        let context = self.context(diags)?;
        let inputs = Inputs::of(&planned, diags).ok()?;
        let Some(Complete { format, image, stub, base_url, size_mb, uname, sbat, signing }) = inputs.complete() else {
            diags.root_error_short("resin_disk inputs are still unknown at apply");
            return None;
        };
        let state = plan_state(planned.clone(), &planned, &inputs);
        if let (Value::Value(promised), Value::Value(now)) = (&planned.content_hash, &state.content_hash) {
            if promised != now {
                diags.error(
                    "content_hash changed between plan and apply",
                    format!("the plan promised {promised}, the inputs now give {now}: the image or the stub changed since the plan was made. Nothing was written; run terraform plan again."),
                    AttributePath::new("content_hash"),
                );
                return None;
            }
        }
        let Some(path) = state.path.as_ref_option().map(PathBuf::from) else {
            diags.root_error_short("name and output_dir must be known at apply");
            return None;
        };
        let what = format!("resin_disk {} ({})", path.display(), format.name());
        let stub_bytes = match stub {
            Some(stub) => match stub_bytes(&context, stub).await {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    super::error_at(diags, "Cannot read the EFI stub", &e.context(what), AttributePath::new("stub"));
                    return None;
                }
            },
            None => None,
        };
        let (image, base_url) = (image.clone(), base_url.map(str::to_string));
        let (uname, sbat) = (uname.map(str::to_string), sbat.map(str::to_string));
        let signing = signing.cloned();
        let key_attribute = signing.as_ref().map_or("signing_key", |s| s.key.attribute());
        let predict_pcr11 = format.needs_stub() && state.pcr11_sha256.is_unknown();
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("creating output_dir {}: {e}", dir.display()))?;
            }
            let scratch = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let signer = signing.as_ref().map(Signing::signer).transpose()?;
            let sources = Sources {
                image: &image,
                stub: stub_bytes.as_deref(),
                base_url: base_url.as_deref(),
                size_mb,
                uname: uname.as_deref(),
                sbat: sbat.as_deref(),
                scratch,
                signer: signer.as_ref(),
            };
            // Only when the plan could not (the stub was not readable then), and before
            // anything is written: what fails here leaves the previous file.
            let pcr11 = match (predict_pcr11, sources.stub) {
                (true, Some(stub)) => Some(crate::disk::measure::predict(&sources, stub)?),
                _ => None,
            };
            let artifact = crate::disk::write_disk(format, &sources, &target)?;
            Ok::<_, anyhow::Error>((artifact, pcr11))
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
        let (artifact, pcr11) = match written {
            Ok(written) => written,
            Err(e) => {
                // A size too small for the UKI is the user's size_mb, a key that cannot be
                // read or a signer that fails its key attribute; anything else (a damaged
                // image file, a full disk) concerns the disk as a whole.
                let at = if e.downcast_ref::<crate::disk::raw_efi::TooSmall>().is_some() {
                    AttributePath::new("size_mb")
                } else if let Some(SigningError { fault: Fault::Certificate, .. }) = e.downcast_ref() {
                    AttributePath::new("signing_certificate")
                } else if e.downcast_ref::<SigningError>().is_some() || e.downcast_ref::<KeyFailed>().is_some() {
                    AttributePath::new(key_attribute)
                } else {
                    AttributePath::root()
                };
                super::error_at(diags, format!("Cannot write {}", format.name()), &e.context(what), at);
                return None;
            }
        };
        let mut state = state;
        if let Some(pcr11) = pcr11 {
            state.pcr11_sha256 = pcr11.map_or(Value::Null, |pcr| Value::Value(hex::encode(pcr)));
        }
        let written = files::record(&mut state, &[(ArtifactKind::Disk, artifact)].into_iter().collect());
        Some((state, Some(written)))
    }
}

#[async_trait]
impl Resource for Disk {
    type State<'a> = DiskState;
    type PrivateState<'a> = Option<Written>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(resource_schema(
            "A boot file made from a `resin_image`, in one `format`: a Unified Kernel Image, an EFI disk or ISO, a Google Compute Engine image file, an iPXE script. `content_hash` is known at plan time and covers the image's content hash, the format and its settings; several formats of one image are several resources. The image's kernel and initrd are checked against the digests its `spec` recorded as they are read: a file changed on disk since the image wrote it is an error, never built in.",
            vec![
                attribute("image", AttributeType::String, Required, "The image: the `spec` of a `resin_image`."),
                attribute("format", AttributeType::String, Required, &format!("The boot format. {}. Changing it replaces the disk.", crate::disk::format_docs())),
                attribute("name", AttributeType::String, OptionalComputed, "Base name of the file. Default: the image's name. Changing it replaces the disk."),
                attribute("output_dir", AttributeType::String, OptionalComputed, "Directory the file is written to (created if missing; one that cannot be created or written in is a plan error). Default: the image's output directory. Changing it replaces the disk."),
                attribute("stub", AttributeType::String, Optional, &format!("The EFI stub, for {}: the `spec` of a `resin_efi_stub` of the image's platform.", crate::disk::stub_formats())),
                attribute("base_url", AttributeType::String, Optional, "For `ipxe`: the http, https or tftp URL the image's `<name>-kernel` and `<name>-initrd.img` are served from."),
                attribute("size_mb", AttributeType::Number, Optional, &format!("For disk formats ({}): the disk's size in MiB. Default: the smallest that holds the EFI system partition (at least 64 MiB, or the UKI and an eighth more); `gcp` rounds up to whole GiB. From 66 MiB (the smallest EFI system partition, 64 MiB, and the partition tables) to 1048576 (1 TiB), else a plan error; a size too small for the UKI is an apply error at this attribute. The file is sparse: the zeros of the disk take no room on file systems with holes.", crate::disk::sized_formats())),
                attribute("uname", AttributeType::String, Optional, &format!("For {}: the kernel release the UKI's `.uname` section names (what `uname -r` prints; systemd-boot shows it). Default: read from the kernel (an x86 bzImage's header, or the `Linux version` banner of an uncompressed kernel); no `.uname` if the kernel says none.", crate::disk::stub_formats())),
                attribute("sbat", AttributeType::String, Optional, &format!("For {}: SBAT lines (`component,generation,vendor,package,version,url`, one per line) for Secure Boot revocation. When set, the UKI's `.sbat` section merges one `sbat,1,...` line, the stub's lines, the kernel's (if it has a `.sbat`) and these, as systemd's ukify does; when unset the stub's `.sbat` is kept as it is.", crate::disk::stub_formats())),
                attribute("signing_certificate", AttributeType::String, Optional, &format!("For {}: sign the UKI for UEFI Secure Boot (Authenticode, as sbsign does) with this X.509 certificate (PEM; RSA 2048 bits or more, or ECDSA P-256) and the key one of `signing_key`, `signing_key_file` or `signing_command` gives. Part of the content hash (the certificate's DER digest). An expired certificate or one whose extended key usage leaves out code signing is a warning (firmware accepts both). See `docs/guides/secure-boot.md`.", crate::disk::stub_formats())),
                (
                    "signing_key".to_string(),
                    Attribute {
                        sensitive: true,
                        ..attribute("signing_key", AttributeType::String, Optional, "The certificate's private key as PEM (PKCS#8, PKCS#1 RSA or SEC1 EC; not encrypted). Sensitive: kept out of plans and logs, but stored in the state like every sensitive value; prefer `signing_key_file` or `signing_command` where the state is shared.").1
                    },
                ),
                attribute("signing_key_file", AttributeType::String, Optional, "Path of a PEM file holding the certificate's private key, read at plan (to check it is the certificate's) and at apply; only the path is stored."),
                attribute("signing_command", strings(), Optional, "A program and its arguments that sign with the certificate's key (an HSM, a KMS): it gets the SHA-256 digest to sign (32 bytes) on standard input, and in `RESIN_SIGNING_DIGEST` as hex, and writes the signature to standard output (RSA: PKCS#1 v1.5; ECDSA: DER), as `openssl pkeyutl -sign -inkey KEY -pkeyopt digest:sha256` does. Its signature is checked with the certificate before use."),
                attribute("content_hash", AttributeType::String, Computed, "sha256 over everything that determines the file: the image's content hash and name, the format, the stub's pinned image and path, `base_url`, `size_mb`, `uname`, `sbat`, and the signing certificate. Known at plan time whenever the image's `spec` is (after a change of the image's content, once the image is applied)."),
                attribute("pcr11_sha256", AttributeType::String, Computed, &format!("For {}: the value systemd-stub leaves in TPM PCR 11 (SHA-256 bank, hex) when it boots this UKI, as `systemd-measure calculate` predicts it: its measured sections (which depend on the stub's systemd version) extended in order into zeros. Known at plan whenever the image's `spec` is and the stub can be read; null for a stub that is not systemd's. Signing does not change it.", crate::disk::stub_formats())),
                attribute("id", AttributeType::String, Computed, "The file's path."),
                attribute("path", AttributeType::String, Computed, "Path of the file: `<output_dir>/<name>` and the format's suffix (see `format`)."),
                attribute("sha256", AttributeType::String, Computed, "sha256 of the file as written (`sha256:<hex>`); refresh notices when the file on disk no longer matches."),
                attribute("size", AttributeType::Number, Computed, "Size of the file in bytes."),
            ],
            vec![],
        ))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        if let Value::Value(name) = &config.name {
            if !crate::container::is_valid_name(name) {
                diags.error(
                    "Invalid name",
                    format!("resin_disk: {name:?} is not a usable file name prefix"),
                    AttributePath::new("name"),
                );
            }
        }
        let _ = Inputs::of(&config, diags);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        mut state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        files::refresh(&mut state, private.as_ref(), diags).await;
        Some((state, private))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let (mut state, inputs) = planned(proposed, &config, diags)?;
        state.pcr11_sha256 = self.predicted_pcr11(&state, &inputs, None).await;
        let written = files::plan_create(&mut state, None);
        Some((state, Some(written)))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let (mut state, inputs) = planned(proposed, &config, diags)?;
        let identity = [
            ("name", prior.name != state.name),
            ("output_dir", prior.output_dir != state.output_dir),
            ("format", prior.format != state.format),
        ];
        let content_changed = prior.content_hash != state.content_hash;
        state.pcr11_sha256 = self.predicted_pcr11(&state, &inputs, Some(&prior)).await;
        let (replace, _) = files::plan_update(&mut state, &prior, private.as_ref(), &identity, content_changed);
        Some((state, private, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(files::for_destroy(private))
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        self.apply(diags, planned).await
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        if files::all_kept(&planned) {
            // Only the configuration's wording changed: the file is as written.
            return Some((planned, private));
        }
        let kept = (prior, private);
        // A failed update keeps the resource as it was (with the error).
        self.apply(diags, planned).await.or(Some(kept))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        files::remove(&prior, &private.unwrap_or_default(), Vec::new(), diags)
    }
}
