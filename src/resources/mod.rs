//! The Terraform side: the provider and one module per resource type. This is the only
//! code that knows the plugin protocol; it converts `tf_provider` values to domain types
//! (`crate::oci`, `crate::container`), calls the core, and turns errors into diagnostics
//! that point at the offending attribute.

mod boot_check;
mod context;
mod disk;
mod efi_stub;
mod file_backed;
mod files;
mod image;
mod image_backed;
mod kernel;
mod package;
mod provider;
mod publish;
mod published_image;
mod schema;
mod segment_cache_block;

pub use context::ProviderContext;
pub use provider::ResinProvider;

use tf_provider::{AttributePath, Diagnostics};

use crate::field::{FieldError, Step};

/// A list index as Terraform's attribute paths take it.
pub(crate) fn attribute_index(index: usize) -> i64 {
    i64::try_from(index).expect("a list shorter than 2^63")
}

/// A value as the domain code takes it: `None` while unknown, `Some(None)` when unset.
pub(crate) fn known<T: Clone>(value: &tf_provider::value::Value<T>) -> Option<Option<T>> {
    match value {
        tf_provider::value::Value::Value(v) => Some(Some(v.clone())),
        tf_provider::value::Value::Null => Some(None),
        tf_provider::value::Value::Unknown => None,
    }
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

/// Reports a bad input at its attribute: its own title or `Invalid <path>`, and as detail
/// `prefix` (which names the resource) and the error (`<path>: <message>`).
pub(crate) fn report(diags: &mut Diagnostics, prefix: &str, error: &FieldError) {
    diags.error(error.summary(), format!("{prefix} {error}"), attribute_path(&error.path, &[]));
}

/// The Terraform path of an input: `single_blocks` names the nested blocks of the schema
/// that hold one object, whose path in Terraform goes through index 0.
pub(crate) fn attribute_path(steps: &[Step], single_blocks: &[&str]) -> AttributePath {
    let mut path = AttributePath::root();
    for step in steps {
        match step {
            Step::Field(name) => {
                path.add_attribute(*name);
                if single_blocks.contains(name) {
                    path.add_index(0);
                }
            }
            Step::Index(index) => {
                path.add_index(attribute_index(*index));
            }
            Step::Key(key) => {
                path.add_key(key.clone());
            }
        }
    }
    path
}
