//! `resin_kernel`: a kernel OCI image in LinuxKit's layout (a `kernel` file, optionally a
//! `kernel.tar` of modules and an early microcode cpio) and the kernel command line.

use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::Diagnostics;

use super::image_backed::{Checked, ImageFields, ImageKind};
use super::schema::{attribute, check_image_path, image_attributes, resource_schema};
use crate::assemble::{check_cmdline, ImageDefaults, KernelSpec, SPEC_VERSION};
use crate::oci::platform::Platform;
use crate::oci::reference::{ImageReference, PinnedImage};

pub struct Kernel;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KernelState {
    id: Value<String>,
    image: Value<String>,
    platform: Value<String>,
    digest: Value<String>,
    content_hash: Value<String>,
    spec: Value<String>,
    cmdline: Value<String>,
    binary: Value<String>,
    modules_tar: Value<String>,
    ucode: Value<String>,
}

impl ImageKind for Kernel {
    type State = KernelState;
    const TYPE_NAME: &'static str = "resin_kernel";

    fn schema() -> Schema {
        let mut attributes = image_attributes(
            "Kernel OCI image reference: `name[:tag][@sha256:...]` as Docker normalises it, or `oci-layout:<dir>[:<tag>|@sha256:...]` for a local OCI image layout.",
            "sha256 over everything this kernel contributes to a machine image: the image's digest (never how its reference is spelled), the platform, `cmdline`, `binary`, `modules_tar`, `ucode` and the assembly format. Known at plan time whenever its inputs are.",
            "The kernel as `resin_image` takes it (`kernel = resin_kernel.k.spec`): a JSON document with the pinned image (`image`, the platform manifest; `index`, the index it was chosen from when the reference named one), the platform and every setting.",
        );
        attributes.extend([
            attribute("cmdline", AttributeType::String, Optional, "Kernel command line, written to `<name>-cmdline` (and a UKI's `.cmdline`): one line of printable text, a control character (newline, tab, NUL) is an error."),
            attribute("binary", AttributeType::String, OptionalComputed, "Path of the kernel binary inside the image. Default: `kernel`."),
            attribute("modules_tar", AttributeType::String, OptionalComputed,
                "Path of the modules tarball inside the image, unpacked at `/` of the initrd. Default: `kernel.tar`; an empty string means none."),
            attribute("ucode", AttributeType::String, Optional,
                "Path of an early microcode cpio inside the image (e.g. `intel-ucode.cpio`), prepended uncompressed to the initrd."),
        ]);
        resource_schema(
            "A kernel OCI image in LinuxKit's layout and the kernel command line. Apply pulls the image into the verified cache and checks it has the `binary`, `modules_tar` and `ucode` files it names; `content_hash` covers the digest and every setting.",
            attributes,
            vec![],
        )
    }

    fn fields(state: &mut KernelState) -> ImageFields<'_> {
        ImageFields {
            image: &mut state.image,
            platform: &mut state.platform,
            id: &mut state.id,
            digest: &mut state.digest,
            content_hash: &mut state.content_hash,
            spec: &mut state.spec,
        }
    }

    fn validate(state: &KernelState, diags: &mut Diagnostics) {
        if let Some(problem) = state.cmdline.as_ref_option().and_then(|cmdline| check_cmdline(cmdline)) {
            diags.error(
                "Invalid cmdline",
                format!("resin_kernel cmdline: {problem}"),
                tf_provider::AttributePath::new("cmdline"),
            );
        }
        check_image_path(&state.binary, Self::TYPE_NAME, "binary", false, diags);
        check_image_path(&state.modules_tar, Self::TYPE_NAME, "modules_tar", true, diags);
        check_image_path(&state.ucode, Self::TYPE_NAME, "ucode", false, diags);
    }

    fn fill_defaults(state: &mut KernelState, config: &KernelState, _reference: Option<&ImageReference>) {
        if config.binary.is_null() {
            state.binary = Value::Value("kernel".into());
        }
        if config.modules_tar.is_null() {
            state.modules_tar = Value::Value("kernel.tar".into());
        }
    }

    fn hash_inputs(state: &KernelState) -> Option<serde_json::Value> {
        let known = |v: &Value<String>| (!v.is_unknown()).then(|| v.as_ref_option().cloned());
        Some(serde_json::json!({
            "cmdline": known(&state.cmdline)?,
            "binary": known(&state.binary)?,
            "modules_tar": known(&state.modules_tar)?,
            "ucode": known(&state.ucode)?,
        }))
    }

    fn spec(
        state: &KernelState,
        image: &PinnedImage,
        platform: &Platform,
        _defaults: &ImageDefaults,
    ) -> Option<serde_json::Value> {
        let known = |v: &Value<String>| (!v.is_unknown()).then(|| v.as_ref_option().cloned());
        let spec = KernelSpec {
            spec_version: SPEC_VERSION,
            image: image.clone(),
            index: None,
            platform: platform.clone(),
            cmdline: known(&state.cmdline)?.unwrap_or_default(),
            binary: state.binary.as_ref_option()?.clone(),
            modules_tar: state.modules_tar.as_ref_option()?.clone(),
            ucode: known(&state.ucode)?,
        };
        serde_json::to_value(spec).ok()
    }

    // Every resin_image waits for this check (it keeps the kernel's files).
    const CHECKS_WHILE_PULLING: bool = true;

    fn check_pulled(
        state: &KernelState,
        image: &crate::oci::ResolvedImage,
        cache: &crate::oci::cache::BlobCache,
        segments: &crate::assemble::SegmentCache,
        downloads: crate::assemble::Downloads,
    ) -> Checked {
        use crate::assemble::{check_kernel_files, NamedFile};
        let (binary, modules_tar, ucode) = (
            state.binary.as_ref_option(),
            state.modules_tar.as_ref_option().filter(|m| !m.is_empty()),
            state.ucode.as_ref_option(),
        );
        let files: Vec<NamedFile> = [("binary", binary), ("modules_tar", modules_tar), ("ucode", ucode)]
            .into_iter()
            .filter_map(|(setting, path)| path.map(|path| NamedFile { setting, path }))
            .collect();
        check_kernel_files(image, cache, segments, &files, downloads)
    }

    fn stub(image: String) -> KernelState {
        KernelState { image: Value::Value(image), ..Default::default() }
    }
}
