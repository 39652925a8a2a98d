//! The Terraform side: the provider and one module per resource type. This is the only
//! code that knows the plugin protocol; it converts `tf_provider` values to domain types
//! (`crate::oci`, `crate::container`), calls the core, and turns errors into diagnostics
//! that point at the offending attribute.

mod disk;
mod efi_stub;
mod files;
mod image;
mod image_backed;
mod kernel;
mod package;
mod provider;
mod schema;

pub use provider::{ProviderContext, ResinProvider};

use tf_provider::{AttributePath, Diagnostics};

/// A list index as Terraform's attribute paths take it.
pub(crate) fn attribute_index(index: usize) -> i64 {
    i64::try_from(index).expect("a list shorter than 2^63")
}

/// A byte count as a Terraform number (sizes of files, far below 2^63).
pub(crate) fn number_of_bytes(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// One diagnostic for a failure: a short summary, the whole context chain as detail, and
/// the attribute it concerns.
pub(crate) fn error_at(
    diags: &mut Diagnostics,
    summary: impl Into<String>,
    error: &anyhow::Error,
    path: AttributePath,
) {
    diags.error(summary.into(), format!("{error:#}"), path);
}
