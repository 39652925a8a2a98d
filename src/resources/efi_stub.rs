//! `resin_efi_stub`: a UEFI stub in an OCI image (systemd's `linuxx64.efi.stub` from
//! Debian's `systemd-boot-efi`...), pinned like a kernel, for `resin_disk` formats that
//! boot through one (`uki`). Apply pulls the image and checks the file is an EFI binary
//! for the platform.

use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::Diagnostics;

use super::image_backed::{Checked, ImageFields, ImageKind};
use super::schema::{attribute, check_image_path, image_attributes, resource_schema};
use crate::assemble::{EfiStubSpec, ImageDefaults, SPEC_VERSION};
use crate::oci::platform::Platform;
use crate::oci::reference::{ImageReference, PinnedImage};

pub struct EfiStub;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EfiStubState {
    id: Value<String>,
    image: Value<String>,
    platform: Value<String>,
    digest: Value<String>,
    content_hash: Value<String>,
    spec: Value<String>,
    path: Value<String>,
}

/// systemd's stub for the platform's architecture, where Debian's `systemd-boot-efi`
/// installs it.
fn default_path(platform: &Platform) -> Option<String> {
    let arch = match platform.architecture.as_str() {
        "amd64" => "x64",
        "arm64" => "aa64",
        _ => return None,
    };
    Some(format!("usr/lib/systemd/boot/efi/linux{arch}.efi.stub"))
}

impl ImageKind for EfiStub {
    type State = EfiStubState;
    const TYPE_NAME: &'static str = "resin_efi_stub";

    fn schema() -> Schema {
        let mut attributes = image_attributes(
            "OCI image holding the stub: `name[:tag][@sha256:...]` as Docker normalises it, or `oci-layout:<dir>[:<tag>|@sha256:...]` for a local OCI image layout.",
            "sha256 over the image's digest (never how its reference is spelled), the platform, `path` and the assembly format. Known at plan time whenever its inputs are.",
            "The stub as `resin_disk` takes it (`stub = resin_efi_stub.systemd.spec`): a JSON document with the pinned image (`image`, the platform manifest; `index`, the index it was chosen from when the reference named one), the platform and `path`.",
        );
        attributes.push(attribute(
            "path",
            AttributeType::String,
            OptionalComputed,
            "Path of the stub inside the image. Default: systemd's stub for the platform, `usr/lib/systemd/boot/efi/linuxx64.efi.stub` (amd64) or `linuxaa64.efi.stub` (arm64), where Debian's `systemd-boot-efi` installs it.",
        ));
        resource_schema(
            &format!("A UEFI stub (systemd-stub) in an OCI image, for the `resin_disk` formats that boot through one: {} (each holds a UKI: the stub with the kernel, initrd and command line as sections); `ipxe` needs none. Apply pulls the image and checks the file is an EFI binary for the platform; `content_hash` covers the digest and the path.", crate::disk::stub_formats()),
            attributes,
            vec![],
        )
    }

    fn fields(state: &mut EfiStubState) -> ImageFields<'_> {
        ImageFields {
            image: &mut state.image,
            platform: &mut state.platform,
            id: &mut state.id,
            digest: &mut state.digest,
            content_hash: &mut state.content_hash,
            spec: &mut state.spec,
        }
    }

    fn validate(state: &EfiStubState, diags: &mut Diagnostics) {
        check_image_path(&state.path, Self::TYPE_NAME, "path", false, diags);
    }

    fn fill_defaults(state: &mut EfiStubState, config: &EfiStubState, _reference: Option<&ImageReference>) {
        if !config.path.is_null() {
            return;
        }
        state.path = match state.platform.as_ref_option().map(|p| p.parse::<Platform>()) {
            Some(Ok(platform)) => default_path(&platform).map_or(Value::Null, Value::Value),
            _ => Value::Unknown,
        };
    }

    fn hash_inputs(state: &EfiStubState) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "path": state.path.as_ref_option()? }))
    }

    fn spec(
        state: &EfiStubState,
        image: &PinnedImage,
        platform: &Platform,
        _defaults: &ImageDefaults,
    ) -> Option<serde_json::Value> {
        let spec = EfiStubSpec {
            spec_version: SPEC_VERSION,
            image: image.clone(),
            index: None,
            platform: platform.clone(),
            path: state.path.as_ref_option()?.clone(),
        };
        serde_json::to_value(spec).ok()
    }

    fn check_pulled(
        state: &EfiStubState,
        image: &crate::oci::ResolvedImage,
        cache: &crate::oci::cache::BlobCache,
        _segments: &crate::assemble::SegmentCache,
        _downloads: crate::assemble::Downloads,
    ) -> Checked {
        let Some(path) = state.path.as_ref_option() else {
            return Err(("path", anyhow::anyhow!("no stub path: set path (no default for {})", image.platform)));
        };
        let stub = crate::assemble::read_pulled_file(image, cache, path, crate::disk::uki::MAX_STUB)
            .map_err(|e| ("path", e))?;
        crate::disk::uki::check_stub(&stub, &image.platform)
            .map_err(|e| ("path", e.context(format!("{path} of {}", image.reference))))
    }

    fn stub(image: String) -> EfiStubState {
        EfiStubState { image: Value::Value(image), ..Default::default() }
    }
}
