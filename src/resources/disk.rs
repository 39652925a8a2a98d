//! `resin_disk`: one boot file made from a `resin_image` in one of the formats of
//! [`crate::disk::FORMATS`], written to `<output_dir>/<name><suffix>`. Several formats of one image are several
//! resources.
//!
//! * **Plan** reads the image's `spec` (and the stub's, for formats that boot through
//!   one) and computes `content_hash` from them: known whenever the image's content hash
//!   is. A new hash rewrites the file in place; a new `format`, or a `name` or
//!   `output_dir` set to another value, replaces the resource; a name and directory that
//!   follow the image move the file in place when the image's change.
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
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use super::context::{ProviderContext, SharedContext};
use super::file_backed::FileWriter;
use super::files::{self, OnDisk, OutputKind, WritesFiles, Written};
use super::known;
use super::schema::{attribute, resource_schema, strings};
use crate::assemble::EfiStubSpec;
use crate::disk::inputs::{Complete, Inputs, Settings, Signing};
use crate::disk::signing::{Fault, KeyFailed, SigningError};
use crate::disk::Sources;

pub struct Disk;

/// The one file a disk writes (`disk` in its private state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootFile {
    Disk,
}

impl OutputKind for BootFile {
    const ALL: &'static [BootFile] = &[BootFile::Disk];
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
    type Kind = BootFile;

    fn path(&self, _kind: BootFile) -> Option<PathBuf> {
        self.path.as_ref_option().map(PathBuf::from)
    }

    fn get(&self, _kind: BootFile) -> OnDisk {
        match (&self.sha256, &self.size) {
            (Value::Value(sha256), Value::Value(size)) => {
                OnDisk::File(sha256.clone(), u64::try_from(*size).unwrap_or_default())
            }
            (Value::Unknown, _) | (_, Value::Unknown) => OnDisk::ToWrite,
            _ => OnDisk::Missing,
        }
    }

    fn set(&mut self, _kind: BootFile, on_disk: OnDisk) {
        (self.sha256, self.size) = match on_disk {
            OnDisk::File(digest, length) => (Value::Value(digest), Value::Value(super::number_of_bytes(length))),
            OnDisk::Missing => (Value::Null, Value::Null),
            OnDisk::ToWrite => (Value::Unknown, Value::Unknown),
        };
    }
}

/// The settings of `state` as [`crate::disk::inputs`] checks them.
fn settings_of(state: &DiskState) -> Settings {
    let signing_command = match &state.signing_command {
        Value::Value(words) => words.iter().map(|w| w.as_ref_option().cloned()).collect::<Option<Vec<_>>>().map(Some),
        Value::Null => Some(None),
        Value::Unknown => None,
    };
    Settings {
        format: known(&state.format),
        image: known(&state.image),
        stub: known(&state.stub),
        base_url: known(&state.base_url),
        size_mb: known(&state.size_mb),
        uname: known(&state.uname),
        sbat: known(&state.sbat),
        signing_certificate: known(&state.signing_certificate),
        signing_key: known(&state.signing_key),
        signing_key_file: known(&state.signing_key_file),
        signing_command,
    }
}

/// The inputs of `state`, its problems reported at their attributes.
fn inputs_of(state: &DiskState, diags: &mut Diagnostics) -> Result<Inputs, ()> {
    Inputs::of(&settings_of(state)).map_err(|problems| {
        for problem in &problems {
            super::report(diags, "resin_disk", problem);
        }
    })
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
    let inputs = inputs_of(&proposed, diags).ok()?;
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
    /// `pcr11_sha256` of the planned `state`: null for formats without a UKI or a stub
    /// that is not systemd's; the prior value while the content hash is the prior one (it
    /// is a function of the same inputs); else predicted from the image's recorded digests
    /// and the stub, unknown while they are, or when the stub cannot be read now.
    async fn predicted_pcr11(
        context: &SharedContext,
        state: &DiskState,
        inputs: &Inputs,
        prior: Option<&DiskState>,
    ) -> Value<String> {
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
        let Some(context) = context.get() else { return Value::Unknown };
        let stub_bytes = match stub_bytes(context, stub).await {
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
}

/// Writing one boot file, on a blocking thread: everything it is made of, owned.
struct Job {
    format: &'static dyn crate::disk::DiskFormat,
    image: crate::assemble::ImageSpec,
    stub: Option<Vec<u8>>,
    base_url: Option<String>,
    size_mb: Option<u64>,
    uname: Option<String>,
    sbat: Option<String>,
    signing: Option<Signing>,
    /// The plan could not predict `pcr11_sha256` (the stub was not readable then).
    predict_pcr11: bool,
    target: PathBuf,
}

impl Job {
    /// Writes the file (through a temporary file renamed into place); returns it and, when
    /// asked, the predicted PCR 11 (`None` inside: a stub that is not systemd's).
    fn run(self) -> anyhow::Result<(crate::assemble::Artifact, Option<Option<[u8; 32]>>)> {
        let target = &self.target;
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating output_dir {}: {e}", dir.display()))?;
        }
        let scratch = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let signer = self.signing.as_ref().map(Signing::signer).transpose()?;
        let sources = Sources {
            image: &self.image,
            stub: self.stub.as_deref(),
            base_url: self.base_url.as_deref(),
            size_mb: self.size_mb,
            uname: self.uname.as_deref(),
            sbat: self.sbat.as_deref(),
            scratch,
            signer: signer.as_ref(),
        };
        // Before anything is written: what fails here leaves the previous file.
        let pcr11 = match (self.predict_pcr11, sources.stub) {
            (true, Some(stub)) => Some(crate::disk::measure::predict(&sources, stub)?),
            _ => None,
        };
        let artifact = crate::disk::write_disk(self.format, &sources, target)?;
        Ok((artifact, pcr11))
    }
}

/// The setting a failed write is reported at: a size too small for the UKI is the user's
/// `size_mb`, a certificate or key that cannot be used (or a signer that fails) its
/// attribute; anything else (a damaged image file, a full disk) concerns the disk as a
/// whole.
fn fault_attribute(error: &anyhow::Error, key_attribute: &'static str) -> AttributePath {
    if error.downcast_ref::<crate::disk::raw_efi::TooSmall>().is_some() {
        AttributePath::new("size_mb")
    } else if let Some(SigningError { fault: Fault::Certificate, .. }) = error.downcast_ref() {
        AttributePath::new("signing_certificate")
    } else if error.downcast_ref::<SigningError>().is_some() || error.downcast_ref::<KeyFailed>().is_some() {
        AttributePath::new(key_attribute)
    } else {
        AttributePath::root()
    }
}

#[async_trait]
impl FileWriter for Disk {
    type State = DiskState;
    type Plan = ();
    const TYPE_NAME: &'static str = "resin_disk";

    fn schema() -> Schema {
        resource_schema(
            "A boot file made from a `resin_image`, in one `format`: a Unified Kernel Image, an EFI disk or ISO, a Google Compute Engine image file, an iPXE script. `content_hash` is known at plan time and covers the image's content hash, the format and its settings; several formats of one image are several resources. The image's kernel and initrd are checked against the digests its `spec` recorded as they are read: a file changed on disk since the image wrote it is an error, never built in.",
            vec![
                attribute("image", AttributeType::String, Required, "The image: the `spec` of a `resin_image`."),
                attribute("format", AttributeType::String, Required, &format!("The boot format. {}. Changing it replaces the disk.", crate::disk::format_docs())),
                attribute("name", AttributeType::String, OptionalComputed, "Base name of the file. Default: the image's name. Changing it replaces the disk."),
                attribute("output_dir", AttributeType::String, OptionalComputed, "Directory the file is written to (created if missing; one that cannot be created or written in is a plan error). Default: the image's output directory. Changing it replaces the disk."),
                attribute("stub", AttributeType::String, Optional, &format!("The EFI stub, for {}: the `spec` of a `resin_efi_stub` of the image's platform.", crate::disk::stub_formats())),
                attribute("base_url", AttributeType::String, Optional, "For `ipxe`: the http, https or tftp URL the image's `<name>-kernel` and `<name>-initrd.img` are served from. For an image read from a registry (`resin_published_image`), the registry's or a pull-through mirror's root as the machines reach it (`http://mirror.boot:5000`): the script fetches the kernel and each part of the initrd by digest, `<base_url>/v2/<repository>/blobs/<digest>`."),
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
                attribute("content_hash", AttributeType::String, Computed, "sha256 over everything that determines the file: the image's content hash and name, the format, the stub's image digest and path, `base_url`, `size_mb`, `uname`, `sbat`, and the signing certificate. Known at plan time whenever the image's `spec` is (after a change of the image's content, once the image is applied)."),
                attribute("pcr11_sha256", AttributeType::String, Computed, &format!("For {}: the value systemd-stub leaves in TPM PCR 11 (SHA-256 bank, hex) when it boots this UKI, as `systemd-measure calculate` predicts it: its measured sections (which depend on the stub's systemd version) extended in order into zeros. Known at plan whenever the image's `spec` is and the stub can be read; null for a stub that is not systemd's. Signing does not change it.", crate::disk::stub_formats())),
                attribute("id", AttributeType::String, Computed, "The file's path."),
                attribute("path", AttributeType::String, Computed, "Path of the file: `<output_dir>/<name>` and the format's suffix (see `format`)."),
                attribute("sha256", AttributeType::String, Computed, "sha256 of the file as written (`sha256:<hex>`); refresh notices when the file on disk no longer matches."),
                attribute("size", AttributeType::Number, Computed, "Size of the file in bytes."),
            ],
            vec![],
        )
    }

    fn name(state: &DiskState) -> &Value<String> {
        &state.name
    }

    fn content_hash(state: &DiskState) -> &Value<String> {
        &state.content_hash
    }

    fn validate(config: &DiskState, diags: &mut Diagnostics) {
        let _ = inputs_of(config, diags);
    }

    fn identity(prior: &DiskState, planned: &DiskState, config: &DiskState) -> Vec<(&'static str, bool)> {
        // A name or directory set in the configuration names another file: a replacement.
        // One that follows the image (unknown while the image is written again) moves the
        // file in the update, which removes the one it wrote before.
        let changed = |configured: &Value<String>, prior: &Value<String>, planned: &Value<String>| {
            !configured.is_null() && prior != planned
        };
        vec![
            ("name", changed(&config.name, &prior.name, &planned.name)),
            ("output_dir", changed(&config.output_dir, &prior.output_dir, &planned.output_dir)),
            ("format", prior.format != planned.format),
        ]
    }

    async fn plan(
        context: &SharedContext,
        proposed: DiskState,
        config: &DiskState,
        prior: Option<&DiskState>,
        diags: &mut Diagnostics,
    ) -> Option<(DiskState, ())> {
        let (mut state, inputs) = planned(proposed, config, diags)?;
        state.pcr11_sha256 = Disk::predicted_pcr11(context, &state, &inputs, prior).await;
        Some((state, ()))
    }

    async fn apply(
        context: &SharedContext,
        planned: DiskState,
        diags: &mut Diagnostics,
    ) -> Option<(DiskState, Written<BootFile>)> {
        let context = super::context::configured(context, diags)?;
        let inputs = inputs_of(&planned, diags).ok()?;
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
        let job = Job {
            format,
            image: image.clone(),
            stub: stub_bytes,
            base_url: base_url.map(str::to_string),
            size_mb,
            uname: uname.map(str::to_string),
            sbat: sbat.map(str::to_string),
            signing: signing.cloned(),
            predict_pcr11: format.needs_stub() && state.pcr11_sha256.is_unknown(),
            target: path,
        };
        let key_attribute = signing.map_or("signing_key", |s| s.key.attribute());
        let written = tokio::task::spawn_blocking(move || job.run()).await.map_err(anyhow::Error::from).and_then(|r| r);
        let (artifact, pcr11) = match written {
            Ok(written) => written,
            Err(e) => {
                let at = fault_attribute(&e, key_attribute);
                super::error_at(diags, format!("Cannot write {}", format.name()), &e.context(what), at);
                return None;
            }
        };
        let mut state = state;
        if let Some(pcr11) = pcr11 {
            state.pcr11_sha256 = pcr11.map_or(Value::Null, |pcr| Value::Value(hex::encode(pcr)));
        }
        let written = files::record(&mut state, &[(BootFile::Disk, artifact)].into_iter().collect());
        Some((state, written))
    }
}
