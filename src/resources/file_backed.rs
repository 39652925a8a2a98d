//! The lifecycle of every resource that writes files (`resin_image`, `resin_disk`), one
//! generic resource over what tells them apart ([`FileWriter`]), as
//! [`super::image_backed`] is for the resources that pin an image.
//!
//! * **Plan**: the writer fills the computed values from the inputs; a new content hash,
//!   a replacement or drift makes the files' digests unknown ([`files::plan_update`]).
//!   A new path (`name`, `output_dir`, ...: [`FileWriter::identity`]) replaces the
//!   resource; new content rewrites the files in place. A path whose default follows
//!   another resource (a disk's name and directory, its image's) is no replacement: when
//!   it changes, the update writes there and removes the files it wrote before.
//! * **Apply** writes the files; a failed update keeps the resource and its previous files
//!   (returning no state would make Terraform forget them). An update whose files are all
//!   kept writes nothing, or only what the writer restores on its own ([`FileWriter::keep`]).
//! * **Refresh** and **destroy** are those of [`super::files`].

use std::marker::PhantomData;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::context::SharedContext;
use super::files::{self, WritesFiles, WrittenFor};

/// The private state of a writer's resource.
pub type Private<K> = Option<WrittenFor<<K as FileWriter>::State>>;

/// What distinguishes one resource that writes files from another.
#[async_trait]
pub trait FileWriter: Send + Sync + 'static {
    type State: WritesFiles + Serialize + DeserializeOwned + Clone + Default + Send + Sync;
    /// What a plan derived from the inputs, for the steps after the files are planned.
    type Plan: Send + Sync;
    /// Terraform type name, for messages.
    const TYPE_NAME: &'static str;

    fn schema() -> Schema;
    /// The `name` setting: a file name prefix.
    fn name(state: &Self::State) -> &Value<String>;
    fn content_hash(state: &Self::State) -> &Value<String>;
    /// Checks the settings that are known; reports problems at their attributes.
    fn validate(config: &Self::State, diags: &mut Diagnostics);
    /// The settings that name other files, each with whether it changed: a change replaces
    /// the resource (`config` tells the settings given from the defaults).
    fn identity(prior: &Self::State, planned: &Self::State, config: &Self::State) -> Vec<(&'static str, bool)>;
    /// `proposed` with its computed values filled from the inputs (`prior` in an update);
    /// `None` when an input is wrong (reported).
    async fn plan(
        context: &SharedContext,
        proposed: Self::State,
        config: &Self::State,
        prior: Option<&Self::State>,
        diags: &mut Diagnostics,
    ) -> Option<(Self::State, Self::Plan)>;
    /// The paths a planned create writes besides the files of [`WritesFiles`] (an image's
    /// documents).
    fn also_writes(_state: &Self::State) -> Vec<String> {
        Vec::new()
    }
    /// Fills what follows from the planned files (`rewrite`: they are written again),
    /// given the prior state and what apply wrote in an update.
    fn after_files(
        _state: &mut Self::State,
        _prior: Option<&Self::State>,
        _written: Option<&WrittenFor<Self::State>>,
        _rewrite: bool,
        _plan: &Self::Plan,
    ) {
    }
    /// Writes the files of `planned`.
    async fn apply(
        context: &SharedContext,
        planned: Self::State,
        diags: &mut Diagnostics,
    ) -> Option<(Self::State, WrittenFor<Self::State>)>;
    /// An update whose files are kept: by default nothing is written.
    async fn keep(
        _prior: &Self::State,
        planned: Self::State,
        private: Option<WrittenFor<Self::State>>,
        _diags: &mut Diagnostics,
    ) -> Option<(Self::State, Option<WrittenFor<Self::State>>)> {
        Some((planned, private))
    }
    /// What refresh reads besides the files (an image's documents).
    async fn refresh_more(_state: &mut Self::State) {}
    /// What happened to the files besides those of [`WritesFiles`] that are not what apply
    /// wrote (as [`files::drift`] says it).
    fn drift_also(_prior: &Self::State, _private: &WrittenFor<Self::State>) -> Vec<String> {
        Vec::new()
    }
    /// Files destroy removes besides those of [`WritesFiles`], each with the digest it was
    /// written with.
    fn removes_also(_prior: &Self::State, _private: &WrittenFor<Self::State>) -> Vec<(PathBuf, Option<String>)> {
        Vec::new()
    }
}

pub struct FileResource<K> {
    context: SharedContext,
    kind: PhantomData<K>,
}

impl<K: FileWriter> FileResource<K> {
    pub fn new(context: SharedContext) -> Self {
        FileResource { context, kind: PhantomData }
    }
}

#[async_trait]
impl<K: FileWriter> Resource for FileResource<K> {
    type State<'a> = K::State;
    type PrivateState<'a> = Private<K>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(K::schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        if let Value::Value(name) = K::name(&config) {
            if !crate::container::is_valid_name(name) {
                diags.error(
                    "Invalid name",
                    format!("{}: {name:?} is not a usable file name prefix", K::TYPE_NAME),
                    AttributePath::new("name"),
                );
            }
        }
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
        files::refresh(&mut state, private.as_ref(), diags).await;
        K::refresh_more(&mut state).await;
        Some((state, private))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let (mut state, plan) = K::plan(&self.context, proposed, &config, None, diags).await?;
        let also = K::also_writes(&state);
        let written = files::plan_create(&mut state, also);
        K::after_files(&mut state, None, None, true, &plan);
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
        let (mut state, plan) = K::plan(&self.context, proposed, &config, Some(&prior), diags).await?;
        if let Some(written) = &private {
            let drift: Vec<String> =
                files::drift(&prior, Some(written)).into_iter().chain(K::drift_also(&prior, written)).collect();
            if !drift.is_empty() {
                let name = K::name(&prior).as_ref_option().cloned().unwrap_or_default();
                diags.warning(
                    format!("{} {name}: files changed since apply", K::TYPE_NAME),
                    format!("{}.\nThis apply writes them again.", drift.join(";\n")),
                    AttributePath::root(),
                );
            }
        }
        let identity = K::identity(&prior, &state, &config);
        let content_changed = K::content_hash(&prior) != K::content_hash(&state);
        let (replace, rewrite) = files::plan_update(&mut state, &prior, private.as_ref(), &identity, content_changed);
        K::after_files(&mut state, Some(&prior), private.as_ref(), rewrite, &plan);
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
        let (state, written) = K::apply(&self.context, planned, diags).await?;
        Some((state, Some(written)))
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
        // Known file digests in the plan mean the content is unchanged and the files on
        // disk are what was written: only the configuration's wording changed.
        let applied = if files::all_kept(&planned) {
            K::keep(&prior, planned, private.clone(), diags).await
        } else {
            K::apply(&self.context, planned, diags).await.map(|(state, written)| (state, Some(written)))
        };
        match applied {
            Some((state, written)) => {
                // Files that moved (a default that follows another resource changed) are
                // removed where they were, as destroy would.
                files::remove_moved(&prior, &state, private.as_ref(), diags);
                Some((state, written))
            }
            // A failed update keeps the resource as it was (with the error): returning no
            // state would make Terraform forget it and its files.
            None => Some((prior, private)),
        }
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let private = private.unwrap_or_default();
        let more = K::removes_also(&prior, &private);
        files::remove(&prior, &private, more, diags)
    }
}
