//! The Terraform side: the provider and one module per resource type. This is the only
//! code that knows the plugin protocol; it converts `tf_provider` values to domain types
//! (`crate::oci`, `crate::container`), calls the core, and turns errors into diagnostics
//! that point at the offending attribute.

mod image;
mod image_resource;
mod kernel;
mod package;
mod provider;
mod schema;

pub use provider::{ProviderContext, ResinProvider};

use tf_provider::{AttributePath, Diagnostics};

/// The assembler's format version: part of every content hash, so a change to what resin
/// writes for the same inputs shows up as a new hash.
pub const FORMAT_VERSION: u32 = 1;

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

/// sha256 over canonical JSON (object keys sorted, no whitespace), as `sha256:<hex>`.
pub(crate) fn content_hash(value: &serde_json::Value) -> String {
    // serde_json's map is ordered by key (the preserve_order feature is not enabled), so
    // serialising a Value is canonical; the test below guards that.
    let bytes = serde_json::to_vec(value).expect("a JSON value always serialises");
    crate::oci::reference::Digest::of(&bytes).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_hash_is_canonical() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":{"c":3,"d":2},"b":1}"#).unwrap();
        assert_eq!(super::content_hash(&a), super::content_hash(&b));
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }
}
