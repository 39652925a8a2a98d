//! What every resource needs once the provider is configured: the puller, the segment
//! cache, the default platform.
//!
//! Terraform asks for the resources before it configures the provider, so the context is
//! shared through a `OnceLock` that the provider's `configure` fills.

use std::sync::{Arc, OnceLock};

use tf_provider::Diagnostics;

use crate::assemble::SegmentCache;
use crate::oci::platform::Platform;
use crate::oci::Puller;

/// What every resource needs once the provider is configured.
pub struct ProviderContext {
    pub puller: Puller,
    pub segments: SegmentCache,
    pub platform: Platform,
    /// Set once a plan has reported that an image lacks the provider's platform: the
    /// resources that find the same stay quiet, so the run shows one error, not one per
    /// resource (the plan fails on that one).
    pub platform_missing_reported: std::sync::atomic::AtomicBool,
}

pub type SharedContext = Arc<OnceLock<Arc<ProviderContext>>>;

/// The provider's context, or an error saying the provider is not configured yet.
pub fn configured(context: &SharedContext, diags: &mut Diagnostics) -> Option<Arc<ProviderContext>> {
    let context = context.get().cloned();
    if context.is_none() {
        diags.root_error_short("the resin provider is not configured");
    }
    context
}
