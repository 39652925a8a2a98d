//! `resin_publish`: images of `resin_image` pushed to a registry repository and tag as an
//! OCI artifact ([`crate::publish`]), one per platform, several under one tag as an index.
//!
//! * **Plan** reads the images' specs: `content_hash` covers what the artifact holds, so it
//!   is known whenever the specs are. Unchanged content keeps its `digest`; new content, or
//!   a tag that refresh saw moved, plans a new publication. A new `repository` or `tag`
//!   replaces the resource.
//! * **Apply** reads the kernels and initrds (checked against the digests their images
//!   recorded), uploads the blobs the repository lacks, then the manifests, the SBOMs as
//!   referrers, and the tag last. A failure leaves the tag where it was and the state at
//!   the last digest really published.
//! * **Refresh** reads the digest the tag names: a moved or deleted tag shows in the next
//!   plan as a change of `digest`, and apply publishes again (the blobs are there: only
//!   the manifests are sent). An unreachable registry is a warning.
//! * **Destroy** leaves the registry as it is, with a warning saying so, unless
//!   `delete_on_destroy` is set: then the tag is deleted (on registries that cannot delete
//!   a tag, the manifest it names while it is the one published, with every tag naming it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::context::{ProviderContext, SharedContext};
use super::schema::{attribute, list_block, resource_schema, string_map, strings};
use crate::assemble::ImageSpec;
use crate::oci::platform::Platform;
use crate::oci::reference::{ImageReference, RegistryReference};
use crate::oci::{is_unreachable, FetchError};
use crate::publish::DiskFile;

pub struct Publish {
    context: SharedContext,
}

impl Publish {
    pub fn new(context: SharedContext) -> Publish {
        Publish { context }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PublishState {
    id: Value<String>,
    images: Value<Vec<Value<String>>>,
    repository: Value<String>,
    tag: Value<String>,
    delete_on_destroy: Value<bool>,
    allow_sensitive: Value<bool>,
    /// Absent from configurations without `disk` blocks.
    #[serde(default)]
    disk: Value<Vec<DiskBlock>>,
    content_hash: Value<String>,
    digest: Value<String>,
    reference: Value<String>,
    manifests: Value<HashMap<String, Value<String>>>,
}

/// A boot file attached to the publication.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DiskBlock {
    path: Value<String>,
    sha256: Value<String>,
    platform: Value<String>,
}

/// The digest last published (the state's `digest` may show where refresh found the tag).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Published {
    digest: Option<String>,
}

const TYPE_NAME: &str = "resin_publish";

/// The target `repository:tag`, when both are known. Reports what is wrong with either.
fn target(state: &PublishState, diags: &mut Diagnostics) -> Result<Option<RegistryReference>, ()> {
    let (Value::Value(repository), Value::Value(tag)) = (&state.repository, &state.tag) else {
        return Ok(None);
    };
    match parse_target(repository, tag) {
        Ok(target) => Ok(Some(target)),
        Err((attribute, problem)) => {
            diags.error(
                format!("Invalid {attribute}"),
                format!("{TYPE_NAME}: {problem}"),
                AttributePath::new(attribute),
            );
            Err(())
        }
    }
}

/// `repository` and `tag` as one reference, or the attribute that is wrong and why.
fn parse_target(repository: &str, tag: &str) -> Result<RegistryReference, (&'static str, String)> {
    let valid_tag = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !tag.starts_with(['.', '-']);
    if !valid_tag {
        return Err((
            "tag",
            format!("{tag:?} is not a tag: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"),
        ));
    }
    let last = repository.rsplit('/').next().unwrap_or_default();
    let not_repository = || {
        ("repository", format!("{repository:?} is not a repository: expected `registry/path` without a tag or digest (e.g. `ghcr.io/team/edge`)"))
    };
    if repository.contains('@') || last.contains(':') || repository.starts_with(crate::oci::reference::LAYOUT_PREFIX) {
        return Err(not_repository());
    }
    match format!("{repository}:{tag}").parse::<ImageReference>() {
        Ok(ImageReference::Registry(reference)) if reference.tag() == Some(tag) => Ok(reference),
        _ => Err(not_repository()),
    }
}

/// The images' specs, when all are known. Reports each that is not a usable image.
fn images(state: &PublishState, diags: &mut Diagnostics) -> Result<Option<Vec<ImageSpec>>, ()> {
    let Value::Value(texts) = &state.images else {
        return Ok(None);
    };
    if texts.is_empty() {
        diags.error_short("images lists no image: publish at least one", AttributePath::new("images"));
        return Err(());
    }
    let mut specs = Vec::new();
    let mut failed = false;
    for (index, text) in texts.iter().enumerate() {
        let path = AttributePath::new("images").index(super::attribute_index(index));
        let Value::Value(text) = text else {
            return Ok(None);
        };
        match ImageSpec::parse(text) {
            Ok(spec) if spec.initrd_parts.is_empty() => {
                diags.error(
                    "Image written by an older provider",
                    format!("{TYPE_NAME}: the spec of resin_image {} does not say where the parts of its initrd are: apply the image again with this provider version", spec.name),
                    path,
                );
                failed = true;
            }
            Ok(spec) if spec.published.is_some() => {
                diags.error(
                    "Image already published",
                    format!(
                        "{TYPE_NAME}: resin_image {} was read from a registry; publish the resin_image it was made of",
                        spec.name
                    ),
                    path,
                );
                failed = true;
            }
            Ok(spec) => {
                if let Some(other) = specs.iter().find(|other: &&ImageSpec| other.platform == spec.platform) {
                    diags.error(
                        "Two images for one platform",
                        format!(
                            "{TYPE_NAME}: resin_image {} and {} are both for {}: one tag holds one image per platform",
                            other.name, spec.name, spec.platform
                        ),
                        path,
                    );
                    failed = true;
                }
                specs.push(spec);
            }
            Err(e) => {
                diags.error("Invalid images", format!("{TYPE_NAME}: {e:#}"), path);
                failed = true;
            }
        }
    }
    if failed {
        return Err(());
    }
    if state.allow_sensitive.as_ref_option() != Some(&true) {
        if let Some((index, spec)) = specs.iter().enumerate().find(|(_, spec)| spec.sensitive) {
            diags.error(
                "Sensitive image",
                format!("{TYPE_NAME}: resin_image {} holds sensitive_contents, which anyone who can pull the repository (or fetch from a mirror of it) would read; set allow_sensitive = true to publish it all the same", spec.name),
                AttributePath::new("images").index(super::attribute_index(index)),
            );
            return Err(());
        }
    }
    Ok(Some(specs))
}

/// The `disk` blocks, when all are known. Reports a platform that is not one.
fn disks(state: &PublishState, diags: &mut Diagnostics) -> Result<Option<Vec<DiskFile>>, ()> {
    let blocks = match &state.disk {
        Value::Value(blocks) => blocks,
        Value::Null => return Ok(Some(Vec::new())),
        Value::Unknown => return Ok(None),
    };
    let mut disks = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let (Value::Value(path), Value::Value(sha256)) = (&block.path, &block.sha256) else {
            return Ok(None);
        };
        let platform = match &block.platform {
            Value::Value(text) => match text.parse::<Platform>() {
                Ok(platform) => Some(platform),
                Err(e) => {
                    let at = AttributePath::new("disk").index(super::attribute_index(index)).attribute("platform");
                    diags.error("Invalid platform", format!("{TYPE_NAME}: {e}"), at);
                    return Err(());
                }
            },
            Value::Null => None,
            Value::Unknown => return Ok(None),
        };
        disks.push(DiskFile { path: PathBuf::from(path), sha256: sha256.clone(), platform });
    }
    Ok(Some(disks))
}

/// What the artifact holds: the same hash, the same blobs (manifests and configs).
fn content_hash(images: &[ImageSpec], disks: &[DiskFile]) -> String {
    let images: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            json!({
                "name": image.name,
                "platform": image.platform,
                "cmdline": image.cmdline,
                "content_hash": image.content_hash,
                "kernel": image.kernel_sha256,
                "initrd": image.initrd_sha256,
                "sbom": image.sbom_sha256,
                "sensitive": image.sensitive,
            })
        })
        .collect();
    let disks: Vec<serde_json::Value> = disks
        .iter()
        .map(|disk| {
            let name = disk.path.file_name().map(|n| n.to_string_lossy().into_owned());
            json!({ "name": name, "sha256": disk.sha256, "platform": disk.platform })
        })
        .collect();
    let mut document = json!({ "artifact_format": crate::publish::artifact::ARTIFACT_FORMAT, "images": images });
    // Only a publication with boot files names them (so others' hashes stay as they were).
    if !disks.is_empty() {
        document["disks"] = json!(disks);
    }
    crate::oci::digest::sha256(document.to_string().as_bytes()).to_string()
}

impl Publish {
    fn context(&self, diags: &mut Diagnostics) -> Option<Arc<ProviderContext>> {
        super::context::configured(&self.context, diags)
    }

    /// The planned state: `id` and `content_hash` from the config; the published digests
    /// unknown (kept by `plan_update` when nothing changed).
    fn plan(state: &mut PublishState, diags: &mut Diagnostics) -> Option<()> {
        let target = target(state, diags).ok()?;
        let images = images(state, diags).ok()?;
        let disks = disks(state, diags).ok()?;
        state.id = target.as_ref().map_or(Value::Unknown, |t| Value::Value(id_of(t)));
        state.content_hash = match (&images, &disks) {
            (Some(images), Some(disks)) => Value::Value(content_hash(images, disks)),
            _ => Value::Unknown,
        };
        state.delete_on_destroy = Value::Value(state.delete_on_destroy.unwrap_or(false));
        state.allow_sensitive = Value::Value(state.allow_sensitive.unwrap_or(false));
        state.digest = Value::Unknown;
        state.reference = Value::Unknown;
        state.manifests = Value::Unknown;
        Some(())
    }

    /// Publishes `state`. `expected`: for an update, what the tag named when the plan was
    /// made (`None`: gone); another publication under the tag since is not overwritten.
    async fn apply(
        &self,
        diags: &mut Diagnostics,
        mut state: PublishState,
        expected: Option<Option<String>>,
    ) -> Option<(PublishState, Published)> {
        let context = self.context(diags)?;
        let target = target(&state, diags).ok()??;
        let images = images(&state, diags).ok()??;
        let disks = disks(&state, diags).ok()??;
        if state.content_hash.as_ref_option() != Some(&content_hash(&images, &disks)) {
            diags.root_error_short(format!("{TYPE_NAME}: the images changed between plan and apply; plan again"));
            return None;
        }
        let client = context.puller.registry();
        if let Some(expected) = expected {
            let now = match client.fetch_manifest(&target, None).await {
                Ok((_, digest)) => Some(digest.to_string()),
                Err(e) if matches!(e.downcast_ref::<FetchError>(), Some(FetchError::NotFound { .. })) => None,
                Err(e) => {
                    let e = e.context(format!("{TYPE_NAME}: reading {} before publishing", id_of(&target)));
                    super::error_at(
                        diags,
                        format!("Could not publish to {}", id_of(&target)),
                        &e,
                        AttributePath::new("repository"),
                    );
                    return None;
                }
            };
            if now != expected {
                let say = |digest: &Option<String>| digest.as_deref().map_or("nothing".to_string(), str::to_string);
                diags.error(
                    "The tag moved since plan",
                    format!(
                        "{TYPE_NAME}: {} names {} now; the plan was made when it named {}. Another publication may have been made since: nothing was published. Plan again.",
                        id_of(&target),
                        say(&now),
                        say(&expected)
                    ),
                    AttributePath::new("tag"),
                );
                return None;
            }
        }
        let published = async {
            let artifacts = crate::publish::artifacts(images, disks).await?;
            crate::publish::publish(client, &target, &artifacts).await
        }
        .await;
        let publication = match published {
            Ok(publication) => publication,
            Err(e) => {
                super::error_at(
                    diags,
                    format!("Could not publish to {}", id_of(&target)),
                    &e.context(format!("{TYPE_NAME}: publishing to {}", id_of(&target))),
                    AttributePath::new("repository"),
                );
                return None;
            }
        };
        let digest = publication.digest.to_string();
        state.reference = Value::Value(format!("{}/{}@{digest}", target.registry(), target.repository()));
        state.manifests = Value::Value(
            publication
                .manifests
                .iter()
                .map(|(platform, digest)| (platform.to_string(), Value::Value(digest.to_string())))
                .collect(),
        );
        state.digest = Value::Value(digest.clone());
        Some((state, Published { digest: Some(digest) }))
    }
}

fn id_of(target: &RegistryReference) -> String {
    format!("{}/{}:{}", target.registry(), target.repository(), target.tag().unwrap_or("latest"))
}

#[async_trait]
impl Resource for Publish {
    type State<'a> = PublishState;
    type PrivateState<'a> = Published;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(resource_schema(
            "Publishes `resin_image`s to a registry repository and tag as an OCI 1.1 artifact (artifactType `application/vnd.resin.image.v1`): the kernel and each part of the initrd are blobs of their own, so an unchanged package is the same blob in the next version and is not uploaded again, and machines can network-boot the image from the registry or any mirror of it (`resin_disk` format `ipxe` of a `resin_published_image`). Several platforms of one image go under one tag as an index. The SBOM is attached as a referrer. See the fleet-boot guide for the layout.",
            vec![
                attribute("images", strings(), Required,
                    "The images' specs (`resin_image.x.spec`), one per platform: one image is published as its manifest, several as an index of their manifests."),
                attribute("repository", AttributeType::String, Required,
                    "Repository to publish to, `registry/path` without tag or digest (`ghcr.io/team/edge`, `127.0.0.1:5000/fleet/node`). Credentials are the provider's for the registry (a `registry` block or Docker's config), with push access. A new repository replaces the resource."),
                attribute("tag", AttributeType::String, Required,
                    "Tag the publication is put under, last (after every blob and manifest is in the repository, so the tag never names a partial upload). A new tag replaces the resource."),
                attribute("delete_on_destroy", AttributeType::Bool, OptionalComputed,
                    "Delete the tag on destroy. Registries that cannot delete a tag (distribution 2.x) get the manifest it names deleted instead, while it is the one published, which removes every tag naming it. Default: false, destroy leaves the registry as it is and says so."),
                attribute("allow_sensitive", AttributeType::Bool, OptionalComputed,
                    "Publish images that hold `sensitive_contents`. Anyone who can pull the repository, or fetch from a mirror of it, reads them. Default: false, such an image is an error at plan."),
                attribute("id", AttributeType::String, Computed, "`<registry>/<repository>:<tag>`."),
                attribute("content_hash", AttributeType::String, Computed,
                    "sha256 over what the artifact holds: each image's content hash, name, platform, command line and the digests of its kernel, initrd and SBOM, the boot files attached (name, sha256, platform), and the artifact format. Known at plan whenever the images' specs are; the same hash, the same blobs."),
                attribute("digest", AttributeType::String, Computed,
                    "Digest of what the tag names (the manifest, or the index of several platforms), known after apply. Refresh reads the tag: when it names another digest or is gone, the plan shows this change and apply publishes again."),
                attribute("reference", AttributeType::String, Computed,
                    "The publication pinned by digest, `<registry>/<repository>@sha256:...`: what `resin_published_image` reads on another machine, unaffected by later pushes to the tag."),
                attribute("manifests", string_map(), Computed,
                    "Each image's artifact manifest digest, by platform (`linux/amd64`)."),
            ],
            vec![list_block(
                "disk",
                "A boot file `resin_disk` wrote from one of the images (a UKI, a disk), attached to that image's manifest as a referrer (`artifactType` `application/vnd.resin.disk.v1`, its layer `application/vnd.resin.disk.<format>.v1`): machines and tools that find the image find its boot files by the referrers API (or the `sha256-<digest>` tag on registries without it).",
                vec![
                    attribute("path", AttributeType::String, Required, "The file (`resin_disk.x.path`); its format is told by its name's suffix."),
                    attribute("sha256", AttributeType::String, Required, "Its sha256 as written (`resin_disk.x.sha256`): a file changed since is an error at apply."),
                    attribute("platform", AttributeType::String, Optional, "The platform of the image it was made from. Default: the only image's; required when several are published."),
                ],
                vec![],
            )],
        ))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        let _ = target(&config, diags);
        if let Value::Value(texts) = &config.images {
            if texts.is_empty() {
                diags.error_short("images lists no image: publish at least one", AttributePath::new("images"));
            }
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        mut state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let context = self.context(diags)?;
        let Ok(Some(target)) = target(&state, diags) else {
            return Some((state, private));
        };
        let private = Published { digest: private.digest.or_else(|| state.digest.as_ref_option().cloned()) };
        match context.puller.registry().fetch_manifest(&target, None).await {
            Ok((_, digest)) => {
                let digest = digest.to_string();
                if private.digest.as_ref() != Some(&digest) {
                    crate::log::info("publish: the tag moved", &[("tag", id_of(&target)), ("names", digest.clone())]);
                }
                state.digest = Value::Value(digest);
            }
            Err(e) if matches!(e.downcast_ref::<FetchError>(), Some(FetchError::NotFound { .. })) => {
                crate::log::info("publish: the tag is gone", &[("tag", id_of(&target))]);
                state.digest = Value::Null;
            }
            Err(e) => {
                let why = if is_unreachable(&e) { "the registry cannot be reached" } else { "the tag cannot be read" };
                diags.warning(
                    format!("Could not refresh {TYPE_NAME}: {why}"),
                    format!(
                        "{:#}\n\nThe recorded digest is kept; whether the tag moved is not checked in this run.",
                        e.context(format!("reading {}", id_of(&target)))
                    ),
                    AttributePath::new("tag"),
                );
            }
        }
        Some((state, private))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        mut proposed: Self::State<'a>,
        _config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        Self::plan(&mut proposed, diags)?;
        Some((proposed, Published::default()))
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
        Self::plan(&mut proposed, diags)?;
        let replace: Vec<AttributePath> =
            [("repository", &prior.repository, &proposed.repository), ("tag", &prior.tag, &proposed.tag)]
                .into_iter()
                .filter(|(_, before, after)| before.as_ref_option() != after.as_ref_option())
                .map(|(name, _, _)| AttributePath::new(name))
                .collect();
        let published = private.digest.clone().or_else(|| prior.digest.as_ref_option().cloned());
        let tag_in_place = published.is_some() && prior.digest.as_ref_option() == published.as_ref();
        if !tag_in_place {
            if let Value::Value(id) = &proposed.id {
                let now = prior.digest.as_ref_option().map_or("is gone".to_string(), |d| format!("names {d}"));
                diags.warning(
                    format!("{TYPE_NAME}: the tag moved"),
                    format!(
                        "{id} {now}, not {} as published: apply publishes it again",
                        published.as_deref().unwrap_or("the digest")
                    ),
                    AttributePath::new("tag"),
                );
            }
        }
        if replace.is_empty()
            && tag_in_place
            && proposed.content_hash.as_ref_option() == prior.content_hash.as_ref_option()
        {
            proposed.digest = prior.digest.clone();
            proposed.reference = prior.reference.clone();
            proposed.manifests = prior.manifests.clone();
        }
        Some((proposed, private, replace))
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
        self.apply(diags, planned, None).await
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
        // A failed publication keeps the state of the last one. The tag must still name
        // what refresh saw at plan (a new repository or tag is a new resource).
        let expected = Some(prior.digest.as_ref_option().cloned());
        let kept = (prior, private);
        self.apply(diags, planned, expected).await.or(Some(kept))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let Ok(Some(target)) = target(&prior, diags) else {
            return Some(());
        };
        let published = private.digest.or_else(|| prior.digest.as_ref_option().cloned());
        if prior.delete_on_destroy.as_ref_option() != Some(&true) {
            diags.warning(
                format!("{TYPE_NAME}: the registry keeps {}", id_of(&target)),
                format!(
                    "Destroy leaves the registry as it is: {} still names {}. Set delete_on_destroy = true to delete the tag on destroy.",
                    id_of(&target),
                    published.as_deref().unwrap_or("what was published")
                ),
                AttributePath::root(),
            );
            return Some(());
        }
        let context = self.context(diags)?;
        if let Err(e) = delete(&context, &target, published.as_deref()).await {
            super::error_at(
                diags,
                format!("Could not delete {}", id_of(&target)),
                &e.context(format!("{TYPE_NAME}: deleting {}", id_of(&target))),
                AttributePath::new("delete_on_destroy"),
            );
            return None;
        }
        Some(())
    }
}

/// Deletes the tag of `target`; where the registry cannot delete a tag, the manifest the
/// tag names while it is `published`. A tag already gone is deleted.
async fn delete(context: &ProviderContext, target: &RegistryReference, published: Option<&str>) -> anyhow::Result<()> {
    let client = context.puller.registry();
    let tag = target.tag().unwrap_or("latest");
    let not_found = |e: &anyhow::Error| matches!(e.downcast_ref::<FetchError>(), Some(FetchError::NotFound { .. }));
    let refused = match client.delete_manifest(target, tag).await {
        Ok(()) => return Ok(()),
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => e,
    };
    let current = match client.fetch_manifest(target, None).await {
        Ok((_, digest)) => digest.to_string(),
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if Some(current.as_str()) != published {
        return Err(refused.context(format!(
            "the registry does not delete tags, and the tag names {current} now, not what was published: left in place"
        )));
    }
    client.delete_manifest(target, &current).await.map_err(|e| {
        e.context(format!(
            "the registry does not delete tags ({refused:#}); deleting the manifest {current} failed too"
        ))
    })
}
