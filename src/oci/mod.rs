//! Everything about getting OCI images (and pushing to registries): references,
//! platforms, credentials, registries, local layouts and the verified blob cache. Nothing
//! here knows about Terraform.
//!
//! The entry point is [`Puller`]: [`Puller::resolve`] turns a reference and a platform into
//! a pinned platform manifest (reading the manifest and config into the cache), and
//! [`Puller::pull`] brings every layer into the cache, several at a time.

pub mod auth;
pub mod cache;
pub mod digest;
pub mod hashing;
pub mod layout;
pub mod manifest;
pub mod platform;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod retry;
pub mod tap;

pub use pull::{PlatformMissing, PullStats, Puller, ResolvedImage};

use thiserror::Error;

/// The failures callers treat differently: a missing image is the user's to fix, an
/// unreachable registry during refresh only warrants a warning.
#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("not authorised by registry {registry} ({detail}); check the credentials for {registry} (a provider registry block, or docker login)")]
    Unauthorized { registry: String, detail: String },
    #[error("registry {registry} cannot be reached: {detail}")]
    Unreachable { registry: String, detail: String },
}

/// Whether `error` is (or was caused by) a registry that could not be reached.
pub fn is_unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|e| matches!(e.downcast_ref::<FetchError>(), Some(FetchError::Unreachable { .. })))
}
