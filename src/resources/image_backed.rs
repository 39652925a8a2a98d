//! The lifecycle shared by `resin_kernel` and `resin_package`, both "an OCI image plus
//! settings": resolve at plan, pull at apply, re-resolve tags at refresh.
//!
//! * **Plan** resolves the reference to a platform manifest digest, so `digest`, `id` and
//!   `content_hash` are known in the plan whenever `image` is. An unchanged image keeps its
//!   recorded digest, unless refresh saw the tag move (then the new digest is planned and
//!   the diff shows it).
//! * **Apply** fetches exactly the planned digest (never the tag again, which may have moved
//!   since) and pulls every layer into the verified cache, then checks that what it
//!   computed equals what the plan promised.
//! * **Refresh** re-resolves a tag and, if it now names another digest, records that digest
//!   in private state for the next plan. An unreachable registry is a warning and the
//!   recorded state is kept.
//! * **Destroy** forgets the resource; the shared, content-addressed cache is left alone.
//! * **Import** takes an image reference; refresh fills in the rest.
//!
//! `id` is the pinned reference, so a later plan or apply can fetch the content on a
//! machine whose cache is empty: nothing lives only in memory or only in the cache.

use std::marker::PhantomData;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::context::{ProviderContext, SharedContext};
use super::error_at;
use crate::assemble::{content_hash, ImageDefaults, ASSEMBLY_FORMAT};
use crate::oci::cache::damaged_blob;
use crate::oci::platform::Platform;
use crate::oci::reference::{Digest, ImageReference, PinnedImage};
use crate::oci::{is_unreachable, ResolvedImage};

/// What a resource records of a resolved image.
struct Resolution {
    /// The platform manifest's digest.
    digest: Digest,
    defaults: ImageDefaults,
    /// The index the reference named, if it named one.
    index: Option<Digest>,
}

impl Resolution {
    fn of(resolved: &ResolvedImage) -> Resolution {
        Resolution {
            digest: resolved.digest.clone(),
            defaults: ImageDefaults::of(&resolved.config),
            index: resolved.index.clone(),
        }
    }
}

/// Why resolving gave no image.
enum Unresolved {
    /// An error is in the diagnostics.
    Reported,
    /// The provider's platform is missing, as a resource of this run has reported.
    AlreadyReported(anyhow::Error),
}

/// The image-related fields of a resource state.
pub struct ImageFields<'s> {
    pub image: &'s mut Value<String>,
    pub platform: &'s mut Value<String>,
    pub id: &'s mut Value<String>,
    pub digest: &'s mut Value<String>,
    pub content_hash: &'s mut Value<String>,
    pub spec: &'s mut Value<String>,
}

/// What checking a pulled image found: nothing wrong, or the attribute at fault and why.
pub type Checked = Result<(), (&'static str, anyhow::Error)>;

/// What distinguishes one image-backed resource type from another.
pub trait ImageKind: Send + Sync + 'static {
    type State: Serialize + DeserializeOwned + Clone + Send + Sync;
    /// Terraform type name, for messages.
    const TYPE_NAME: &'static str;

    fn schema() -> Schema;
    fn fields(state: &mut Self::State) -> ImageFields<'_>;
    /// Checks the settings that are known; reports problems at their attributes.
    fn validate(state: &Self::State, diags: &mut Diagnostics);
    /// Fills optional settings left unset in `config` with their defaults.
    fn fill_defaults(state: &mut Self::State, config: &Self::State, reference: Option<&ImageReference>);
    /// The settings covered by `content_hash`, or `None` while any is unknown.
    fn hash_inputs(state: &Self::State) -> Option<serde_json::Value>;
    /// The `spec` document for `resin_image` (see `crate::assemble::KernelSpec` and `PackageSpec`), or `None`
    /// while a setting is unknown. `image` is the pinned reference.
    fn spec(
        state: &Self::State,
        image: &PinnedImage,
        platform: &Platform,
        defaults: &ImageDefaults,
    ) -> Option<serde_json::Value>;
    /// A state with only `image` set (import), blocks as empty lists.
    fn stub(image: String) -> Self::State;
    /// Whether an apply that downloaded layers starts reading the image for the
    /// assembly that follows ([`crate::assemble::EarlyReads`]).
    const READS_EARLY: bool = false;
    /// Whether the check reads the image's layers as they download, while the image is
    /// pulled ([`crate::oci::tap`]): for a check every `resin_image` waits for.
    const CHECKS_WHILE_PULLING: bool = false;
    /// Checks a pulled image has what the settings name (on a blocking thread), reading
    /// the layers in `downloads` as they arrive; returns the attribute at fault with the
    /// error.
    fn check_pulled(
        _state: &Self::State,
        _image: &ResolvedImage,
        _cache: &crate::oci::cache::BlobCache,
        _segments: &crate::assemble::SegmentCache,
        _downloads: crate::assemble::Downloads,
    ) -> Checked {
        Ok(())
    }
}

/// Private state: the digest refresh saw the tag at, when it differs from the recorded one
/// (and the index it was chosen from).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Observed {
    remote_digest: Option<String>,
    #[serde(default)]
    remote_index: Option<String>,
}

pub struct ImageResource<K> {
    context: SharedContext,
    kind: PhantomData<K>,
}

impl<K: ImageKind> ImageResource<K> {
    pub fn new(context: SharedContext) -> Self {
        ImageResource { context, kind: PhantomData }
    }

    fn context(&self, diags: &mut Diagnostics) -> Option<std::sync::Arc<ProviderContext>> {
        super::context::configured(&self.context, diags)
    }

    /// Parses `image` when it is known. `Err` when it is malformed (reported).
    fn reference(state: &mut K::State, diags: &mut Diagnostics) -> Result<Option<ImageReference>, ()> {
        match &*K::fields(state).image {
            Value::Value(image) => match image.parse::<ImageReference>() {
                Ok(reference) => Ok(Some(reference)),
                Err(e) => {
                    diags.error(
                        format!("Invalid image reference {image:?}"),
                        format!("{}: {e}", K::TYPE_NAME),
                        AttributePath::new("image"),
                    );
                    Err(())
                }
            },
            _ => Ok(None),
        }
    }

    /// The platform the state asks for, or `Err` when it is malformed (reported).
    fn platform(state: &mut K::State, diags: &mut Diagnostics) -> Result<Option<Platform>, ()> {
        match &*K::fields(state).platform {
            Value::Value(p) => match p.parse::<Platform>() {
                Ok(platform) => Ok(Some(platform)),
                Err(e) => {
                    diags.error("Invalid platform", format!("{e:#}"), AttributePath::new("platform"));
                    Err(())
                }
            },
            _ => Ok(None),
        }
    }

    /// Defaults (including the platform) and a parsed reference, shared by both plans.
    fn prepare_plan(
        context: &ProviderContext,
        mut state: K::State,
        config: &K::State,
        diags: &mut Diagnostics,
    ) -> Option<(K::State, Option<ImageReference>, Option<Platform>)> {
        let reference = Self::reference(&mut state, diags).ok()?;
        let mut platform_config = config.clone();
        if K::fields(&mut platform_config).platform.is_null() {
            *K::fields(&mut state).platform = Value::Value(context.platform.to_string());
        }
        // After the platform, which some defaults depend on.
        K::fill_defaults(&mut state, config, reference.as_ref());
        let platform = Self::platform(&mut state, diags).ok()?;
        Some((state, reference, platform))
    }

    /// Sets `id`, `digest`, `content_hash` and `spec` from a resolution (or marks them
    /// unknown). The index digest goes in the spec only: it does not change the content.
    fn set_computed(state: &mut K::State, reference: Option<&ImageReference>, resolved: Option<Resolution>) {
        let (pinned, digest_value, defaults, index) = match (reference, resolved) {
            (Some(reference), Some(Resolution { digest, defaults, index })) => (
                Some(PinnedImage::new(reference, digest.clone())),
                Value::Value(digest.to_string()),
                Some(defaults),
                index.map(|index| PinnedImage::new(reference, index)),
            ),
            _ => (None, Value::Unknown, None, None),
        };
        let hash = match (&digest_value, K::hash_inputs(state)) {
            (Value::Value(d), Some(settings)) => {
                let fields = K::fields(state);
                Value::Value(
                    content_hash(&serde_json::json!({
                        "format": ASSEMBLY_FORMAT,
                        "type": K::TYPE_NAME,
                        "digest": d,
                        "platform": fields.platform.as_ref_option(),
                        "settings": settings,
                    }))
                    .to_string(),
                )
            }
            _ => Value::Unknown,
        };
        let platform = K::fields(state).platform.as_ref_option().and_then(|p| p.parse::<Platform>().ok());
        let spec = match (&pinned, &platform, &defaults) {
            (Some(image), Some(platform), Some(defaults)) => match K::spec(state, image, platform, defaults) {
                Some(mut document) => {
                    if let (Some(index), Some(object)) = (&index, document.as_object_mut()) {
                        object.insert("index".into(), serde_json::json!(index));
                    }
                    Value::Value(serde_json::to_string(&document).expect("JSON values serialise"))
                }
                None => Value::Unknown,
            },
            _ => Value::Unknown,
        };
        let id = pinned.map_or(Value::Unknown, |image| Value::Value(image.to_string()));
        let fields = K::fields(state);
        *fields.id = id;
        *fields.digest = digest_value;
        *fields.content_hash = hash;
        *fields.spec = spec;
    }

    /// What a state's `spec` recorded: the image defaults (if it is readable) and the index
    /// digest (if it has one).
    fn recorded(state: &mut K::State) -> (Option<ImageDefaults>, Option<Digest>) {
        let spec = K::fields(state).spec.as_ref_option().and_then(|spec| serde_json::from_str(spec).ok());
        let Some(spec): Option<serde_json::Value> = spec else { return (None, None) };
        let defaults = match spec.get("defaults") {
            Some(defaults) => serde_json::from_value(defaults.clone()).ok(),
            None => Some(ImageDefaults::default()),
        };
        let index = spec.get("index").and_then(|i| i.as_str()?.parse::<PinnedImage>().ok());
        (defaults, index.map(|index| index.digest().clone()))
    }

    async fn resolve(
        context: &ProviderContext,
        reference: &ImageReference,
        platform: &Platform,
        pinned: Option<&Digest>,
        diags: &mut Diagnostics,
    ) -> Option<ResolvedImage> {
        match Self::resolve_collapsing(context, reference, platform, pinned, diags).await {
            Ok(resolved) => Some(resolved),
            Err(Unresolved::Reported) => None,
            Err(Unresolved::AlreadyReported(e)) => {
                Self::report_unresolved(reference, e, diags);
                None
            }
        }
    }

    /// Resolves, reporting an image without the provider's platform once per run: it is a
    /// provider setting, not a fault of each resource. The resources after the first get
    /// [`Unresolved::AlreadyReported`]; a plan leaves them unknown (the first one's error
    /// fails it), [`Self::resolve`] reports them in full.
    async fn resolve_collapsing(
        context: &ProviderContext,
        reference: &ImageReference,
        platform: &Platform,
        pinned: Option<&Digest>,
        diags: &mut Diagnostics,
    ) -> Result<ResolvedImage, Unresolved> {
        let e = match context.puller.resolve(reference, platform, pinned).await {
            Ok(resolved) => return Ok(resolved),
            Err(e) => e,
        };
        let missing = e.chain().find_map(|c| c.downcast_ref::<crate::oci::PlatformMissing>());
        if let Some(missing) = missing.filter(|_| *platform == context.platform) {
            if context.platform_missing_reported.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(Unresolved::AlreadyReported(e));
            }
            diags.root_error(
                format!("No manifest for the provider's platform {platform}"),
                format!(
                    "provider \"resin\" platform = \"{platform}\" (linux/amd64 unless set): {} attribute image {} has no manifest for it; the index offers {}. Set the provider's platform to one the images offer, or platform on the resources that need another. Other resources whose images lack {platform} are not reported again.",
                    K::TYPE_NAME,
                    missing.reference,
                    missing.offered
                ),
            );
            return Err(Unresolved::Reported);
        }
        Self::report_unresolved(reference, e, diags);
        Err(Unresolved::Reported)
    }

    fn report_unresolved(reference: &ImageReference, e: anyhow::Error, diags: &mut Diagnostics) {
        error_at(
            diags,
            format!("Cannot resolve image {reference}"),
            &e.context(format!("{} attribute image", K::TYPE_NAME)),
            AttributePath::new("image"),
        );
    }

    /// Starts the check of a `K` that checks while pulling ([`ImageKind::CHECKS_WHILE_PULLING`]),
    /// reading the image's layer as it downloads, when one layer is to download (with more,
    /// each download would wait for the reader to come to it). Returns the layer's digest
    /// and the check.
    fn check_while_pulling(
        state: &K::State,
        image: &ResolvedImage,
        cache: &crate::oci::cache::BlobCache,
        segments: &crate::assemble::SegmentCache,
    ) -> Option<(Digest, tokio::task::JoinHandle<Checked>)> {
        if !K::CHECKS_WHILE_PULLING {
            return None;
        }
        let layers = image.manifest.layers().iter().enumerate();
        let missing: Vec<(usize, &Digest)> =
            layers.map(|(index, layer)| (index, layer.digest())).filter(|(_, d)| !cache.contains(d, None)).collect();
        let [(index, digest)] = missing[..] else { return None };
        let downloads = crate::assemble::Downloads::from([(index, cache.taps().tap(digest))]);
        let (state, image, cache, segments) = (state.clone(), image.clone(), cache.clone(), segments.clone());
        let check = move || K::check_pulled(&state, &image, &cache, &segments, downloads);
        Some((digest.clone(), tokio::task::spawn_blocking(check)))
    }

    /// Apply: fetch the planned digest, pull it, and check the result against the plan.
    async fn apply(&self, diags: &mut Diagnostics, planned: K::State) -> Option<(K::State, Option<Observed>)> {
        let context = self.context(diags)?;
        let mut state = planned.clone();
        let reference = Self::reference(&mut state, diags).ok()??;
        let Some(platform) = Self::platform(&mut state, diags).ok()? else {
            diags.root_error_short("platform is unknown at apply");
            return None;
        };
        let pinned = match &*K::fields(&mut state).digest {
            Value::Value(d) => Some(crate::oci::digest::parse(d).ok()?),
            _ => None,
        };
        let resolved = Self::resolve(&context, &reference, &platform, pinned.as_ref(), diags).await?;
        let (check_state, check_image, cache, segments) =
            (state.clone(), resolved.clone(), context.puller.cache().clone(), context.segments.clone());
        let reading = Self::check_while_pulling(&state, &resolved, &cache, &segments);
        let pulled = context.puller.pull(&resolved).await;
        // What the check found as the layer downloaded stands if the pull went well;
        // otherwise (the download failed, was retried, or was another process's) the
        // check reads the cached blob below.
        let early_check = match reading {
            Some((digest, check)) => {
                cache.taps().cancel(&digest);
                check.await.ok().filter(|checked| pulled.is_ok() && checked.is_ok())
            }
            None => None,
        };
        let pulled = match pulled {
            Ok(pulled) => pulled,
            Err(e) => {
                error_at(
                    diags,
                    format!("Cannot pull image {reference}"),
                    &e.context(format!("{} attribute image", K::TYPE_NAME)),
                    AttributePath::new("image"),
                );
                return None;
            }
        };
        // New layers here: no segment of the image can be in this machine's cache, so the
        // image is read now, while Terraform applies the rest (a shared cache may have them).
        if K::READS_EARLY && pulled.layers_fetched > 0 && context.segments.remote().is_none() {
            context.segments.early_reads().start(&resolved, context.puller.cache());
        }
        // Checking reads the layers: a damaged cache blob is fetched again (with_repair).
        let checked = match early_check {
            Some(checked) => Ok(checked),
            None => {
                let no_downloads = crate::assemble::Downloads::new;
                context
                    .puller
                    .with_repair(std::slice::from_ref(&resolved), move || {
                        match K::check_pulled(&check_state, &check_image, &cache, &segments, no_downloads()) {
                            Err((_, e)) if damaged_blob(&e).is_some() => Err(e),
                            other => Ok(other),
                        }
                    })
                    .await
            }
        };
        // A kernel's files built here go to the shared segment cache before the apply ends.
        if let Some(remote) = context.segments.remote() {
            if let (_, Some(problems)) = remote.settle().await {
                let warning = crate::assemble::Warning::shared_cache(remote.repository(), &problems);
                diags.warning(warning.summary, warning.detail, AttributePath::root());
            }
        }
        let failure = match checked {
            Ok(Ok(())) => None,
            Ok(Err((attribute, e))) => Some((attribute, e)),
            // The repair itself failed (the blob could not be fetched again).
            Err(e) => Some(("image", e)),
        };
        if let Some((attribute, e)) = failure {
            error_at(
                diags,
                format!("Unusable image {reference}"),
                &e.context(format!("{} attribute {attribute}", K::TYPE_NAME)),
                AttributePath::new(attribute),
            );
            return None;
        }
        let mut planned = planned;
        // Resolved by the planned digest: the index the plan recorded stays.
        let resolution = Resolution { index: Self::recorded(&mut planned).1, ..Resolution::of(&resolved) };
        Self::set_computed(&mut state, Some(&reference), Some(resolution));
        let (planned_fields, fields) = (K::fields(&mut planned), K::fields(&mut state));
        for (name, promised, actual) in [
            ("digest", planned_fields.digest, fields.digest),
            ("content_hash", planned_fields.content_hash, fields.content_hash),
            ("spec", planned_fields.spec, fields.spec),
        ] {
            if let Value::Value(promised) = promised {
                if Some(&*promised) != actual.as_ref_option() {
                    diags.error(
                        format!("{name} changed between plan and apply"),
                        format!("the plan promised {promised}, apply computed {}; an input changed since the plan was made. Run terraform plan again.", actual.as_ref_option().map_or("nothing", String::as_str)),
                        AttributePath::new(name),
                    );
                    return None;
                }
            }
        }
        Some((state, None))
    }
}

#[async_trait]
impl<K: ImageKind> Resource for ImageResource<K> {
    type State<'a> = K::State;
    type PrivateState<'a> = Option<Observed>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(K::schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, mut config: Self::State<'a>) -> Option<()> {
        let _ = Self::reference(&mut config, diags);
        let _ = Self::platform(&mut config, diags);
        K::validate(&config, diags);
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
        let Ok(Some(reference)) = Self::reference(&mut state, diags) else {
            return Some((state, private));
        };
        let imported = K::fields(&mut state).digest.is_null();
        if imported {
            // An import stub: resolve everything now.
            if K::fields(&mut state).platform.is_null() {
                *K::fields(&mut state).platform = Value::Value(context.platform.to_string());
            }
            let stub = state.clone();
            K::fill_defaults(&mut state, &stub, Some(&reference));
            let platform = Self::platform(&mut state, diags).ok()??;
            let resolved = Self::resolve(&context, &reference, &platform, None, diags).await?;
            Self::set_computed(&mut state, Some(&reference), Some(Resolution::of(&resolved)));
            return Some((state, None));
        }
        if reference.digest().is_some() {
            // Pinned by digest: the content cannot move.
            return Some((state, None));
        }
        let Ok(Some(platform)) = Self::platform(&mut state, diags) else {
            return Some((state, private));
        };
        let recorded = K::fields(&mut state).digest.as_ref_option().cloned();
        match context.puller.resolve(&reference, &platform, None).await {
            Ok(resolved) => {
                let remote = resolved.digest.to_string();
                if Some(&remote) == recorded.as_ref() {
                    Some((state, None))
                } else {
                    crate::log::info(
                        "tag moved",
                        &[
                            ("reference", reference.to_string()),
                            ("recorded", recorded.unwrap_or_default()),
                            ("remote", remote.clone()),
                        ],
                    );
                    let remote_index = resolved.index.as_ref().map(ToString::to_string);
                    Some((state, Some(Observed { remote_digest: Some(remote), remote_index })))
                }
            }
            Err(e) => {
                let why =
                    if is_unreachable(&e) { "the registry cannot be reached" } else { "the image cannot be resolved" };
                diags.warning(
                    format!("Could not refresh {}: {why}", K::TYPE_NAME),
                    format!(
                        "{:#}\n\nThe recorded digest is kept; drift of this tag is not checked in this run.",
                        e.context(format!("re-resolving {reference}"))
                    ),
                    AttributePath::new("image"),
                );
                Some((state, private))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let context = self.context(diags)?;
        let (mut state, reference, platform) = Self::prepare_plan(&context, proposed, &config, diags)?;
        let resolved = match (&reference, &platform) {
            (Some(reference), Some(platform)) => {
                match Self::resolve_collapsing(&context, reference, platform, None, diags).await {
                    Ok(resolved) => Some(Resolution::of(&resolved)),
                    // Another resource's error fails the plan: this one stays unknown.
                    Err(Unresolved::AlreadyReported(_)) => None,
                    Err(Unresolved::Reported) => return None,
                }
            }
            _ => None,
        };
        Self::set_computed(&mut state, reference.as_ref(), resolved);
        Some((state, None))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        mut prior: Self::State<'a>,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let context = self.context(diags)?;
        let (mut state, reference, platform) = Self::prepare_plan(&context, proposed, &config, diags)?;
        let resolved = match (&reference, &platform) {
            (Some(reference), Some(platform)) => {
                let (recorded_defaults, recorded_index) = Self::recorded(&mut prior);
                let prior_fields = K::fields(&mut prior);
                let same_image = prior_fields.image.as_ref_option() == K::fields(&mut state).image.as_ref_option()
                    && prior_fields.platform.as_ref_option() == Some(&platform.to_string());
                let recorded = prior_fields.digest.as_ref_option().and_then(|d| crate::oci::digest::parse(d).ok());
                let parse = |d: Option<&String>| d.and_then(|d| crate::oci::digest::parse(d).ok());
                let observed = parse(private.as_ref().and_then(|p| p.remote_digest.as_ref()));
                let observed_index = parse(private.as_ref().and_then(|p| p.remote_index.as_ref()));
                // An unchanged image keeps its digest, the defaults and the index recorded
                // with it, so planning needs no registry; a moved tag or a new image is
                // resolved (a moved tag by the digest and index refresh saw).
                let (pinned, defaults, index) = match (same_image, observed, recorded) {
                    (true, Some(observed), _) => (Some(observed), None, observed_index),
                    (true, None, Some(recorded)) => (Some(recorded), recorded_defaults, recorded_index),
                    _ => (None, None, None),
                };
                match (pinned, defaults) {
                    (Some(digest), Some(defaults)) => Some(Resolution { digest, defaults, index }),
                    (pinned, _) => {
                        match Self::resolve_collapsing(&context, reference, platform, pinned.as_ref(), diags).await {
                            Ok(resolved) => {
                                let index = resolved.index.clone().or(index);
                                Some(Resolution { index, ..Resolution::of(&resolved) })
                            }
                            // Another resource's error fails the plan: this one stays unknown.
                            Err(Unresolved::AlreadyReported(_)) => None,
                            Err(Unresolved::Reported) => return None,
                        }
                    }
                }
            }
            _ => None,
        };
        Self::set_computed(&mut state, reference.as_ref(), resolved);
        Some((state, None, vec![]))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(None)
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
        // A failed update keeps the resource as it was, with the error.
        let kept = (prior.clone(), private.clone());
        self.apply(diags, planned).await.or(Some(kept))
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

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        if let Err(e) = id.parse::<ImageReference>() {
            diags.root_error(
                format!("Cannot import {}: invalid image reference {id:?}", K::TYPE_NAME),
                format!(
                    "{e}. Import takes an image reference, e.g. terraform import {}.name linuxkit/init:v1.0",
                    K::TYPE_NAME
                ),
            );
            return None;
        }
        Some((K::stub(id), None))
    }
}
