//! `data "resin_published_image"`: an image `resin_publish` put in a registry, read back
//! on any machine without assembling it again ([`crate::publish::pull`]): the reference
//! resolved to the artifact of one platform, its blobs fetched by digest into the verified
//! cache, and `<name>-kernel` and `<name>-initrd.img` written to `output_dir`, byte for
//! byte the files the image wrote (checked against the digests its config records). Its
//! `spec` is what `resin_disk` takes; for format `ipxe` it also says where the blobs are
//! published, so the script boots from the registry.
//!
//! A data source is read at every plan: the blobs are fetched once (the cache keeps
//! them), and files already in `output_dir` with the recorded digests are not written
//! again.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, DataSource, Diagnostics};

use super::context::{ProviderContext, SharedContext};
use super::schema::{attribute, resource_schema};
use crate::oci::platform::Platform;
use crate::oci::reference::ImageReference;

pub struct PublishedImage {
    context: SharedContext,
}

impl PublishedImage {
    pub fn new(context: SharedContext) -> PublishedImage {
        PublishedImage { context }
    }

    fn context(&self, diags: &mut Diagnostics) -> Option<Arc<ProviderContext>> {
        super::context::configured(&self.context, diags)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PublishedImageState {
    reference: Value<String>,
    platform: Value<String>,
    output_dir: Value<String>,
    name: Value<String>,
    id: Value<String>,
    digest: Value<String>,
    content_hash: Value<String>,
    cmdline: Value<String>,
    kernel_path: Value<String>,
    initrd_path: Value<String>,
    spec: Value<String>,
}

const TYPE_NAME: &str = "resin_published_image";

#[async_trait]
impl DataSource for PublishedImage {
    type State<'a> = PublishedImageState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(resource_schema(
            "An image published by `resin_publish`, read back from its registry: the kernel and initrd are fetched by digest (once: the blob cache keeps them), joined into `<name>-kernel` and `<name>-initrd.img` in `output_dir` byte for byte as the image wrote them, and checked against the digests the artifact records. Its `spec` is what `resin_disk` takes: boot files made from it are the same bytes as boot files made from the original image, and an `ipxe` disk of it boots from the registry.",
            vec![
                attribute("reference", AttributeType::String, Required,
                    "The published image: `registry/repository:tag`, or pinned, `registry/repository@sha256:...` (`resin_publish.x.reference`). A reference that is not a resin artifact is an error."),
                attribute("platform", AttributeType::String, OptionalComputed,
                    "Platform to read when the reference names an index of several, `os/arch[/variant]`. Default: the provider's `platform`."),
                attribute("output_dir", AttributeType::String, Required,
                    "Directory the kernel and initrd are written to (created if missing)."),
                attribute("name", AttributeType::String, OptionalComputed,
                    "Base name of the files. Default: the name the image was published with."),
                attribute("id", AttributeType::String, Computed,
                    "The image's artifact manifest, pinned: `<registry>/<repository>@sha256:...`."),
                attribute("digest", AttributeType::String, Computed, "Digest of the image's artifact manifest (of this platform)."),
                attribute("content_hash", AttributeType::String, Computed, "The content hash of the `resin_image` that was published."),
                attribute("cmdline", AttributeType::String, Computed, "The image's kernel command line."),
                attribute("kernel_path", AttributeType::String, Computed, "Path of the kernel written."),
                attribute("initrd_path", AttributeType::String, Computed, "Path of the initrd written."),
                attribute("spec", AttributeType::String, Computed,
                    "The image for `resin_disk` (its `image` attribute), as `resin_image`'s spec, and where it is published (`published`: registry, repository, the digests of its manifest, kernel and initrd parts)."),
            ],
            vec![],
        ))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        let _ = reference_of(&config, diags);
        if let Value::Value(platform) = &config.platform {
            if let Err(e) = platform.parse::<Platform>() {
                diags.error("Invalid platform", format!("{TYPE_NAME}: {e}"), AttributePath::new("platform"));
            }
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        mut state: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let context = self.context(diags)?;
        let reference = reference_of(&state, diags)?;
        let platform = match state.platform.as_ref_option() {
            Some(text) => match text.parse::<Platform>() {
                Ok(platform) => platform,
                Err(e) => {
                    diags.error("Invalid platform", format!("{TYPE_NAME}: {e}"), AttributePath::new("platform"));
                    return None;
                }
            },
            None => context.platform.clone(),
        };
        let Value::Value(output_dir) = &state.output_dir else {
            diags.error_short("output_dir must be known", AttributePath::new("output_dir"));
            return None;
        };
        let (client, cache) = (context.puller.registry(), context.puller.cache());
        let what = format!("{TYPE_NAME}: reading {}", reference);
        let resolved = match crate::publish::resolve(client, cache, &reference, &platform).await {
            Ok(resolved) => resolved,
            Err(e) => {
                super::error_at(
                    diags,
                    format!("Could not read {reference}"),
                    &e.context(what),
                    AttributePath::new("reference"),
                );
                return None;
            }
        };
        let name = state.name.as_ref_option().cloned().unwrap_or_else(|| resolved.config.name.clone());
        if !crate::container::is_valid_name(&name) {
            diags.error(
                "Invalid name",
                format!("{TYPE_NAME}: {name:?} is not a usable file name prefix"),
                AttributePath::new("name"),
            );
            return None;
        }
        let spec = match resolved.fetch(client, cache, &reference, &PathBuf::from(output_dir), &name).await {
            Ok(spec) => spec,
            Err(e) => {
                super::error_at(
                    diags,
                    format!("Could not read {reference}"),
                    &e.context(what),
                    AttributePath::new("reference"),
                );
                return None;
            }
        };
        state.platform = Value::Value(platform.to_string());
        state.name = Value::Value(name);
        state.id = Value::Value(format!("{}/{}@{}", reference.registry(), reference.repository(), resolved.digest));
        state.digest = Value::Value(resolved.digest.to_string());
        state.content_hash = Value::Value(spec.content_hash.clone());
        state.cmdline = Value::Value(spec.cmdline.clone());
        state.kernel_path = Value::Value(spec.kernel_path.clone());
        state.initrd_path = Value::Value(spec.initrd_path.clone());
        state.spec = Value::Value(serde_json::to_string(&spec).expect("a spec serialises"));
        Some(state)
    }
}

/// The registry reference of `reference`, reported when it is not one.
fn reference_of(
    state: &PublishedImageState,
    diags: &mut Diagnostics,
) -> Option<crate::oci::reference::RegistryReference> {
    let Value::Value(text) = &state.reference else {
        return None;
    };
    match text.parse::<ImageReference>() {
        Ok(ImageReference::Registry(reference)) => Some(reference),
        Ok(ImageReference::Layout(_)) => {
            diags.error(
                "Invalid reference",
                format!("{TYPE_NAME}: {text:?} is a local layout; published images are read from a registry"),
                AttributePath::new("reference"),
            );
            None
        }
        Err(e) => {
            diags.error("Invalid reference", format!("{TYPE_NAME}: {e}"), AttributePath::new("reference"));
            None
        }
    }
}
