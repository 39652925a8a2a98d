//! Content hashes: sha256 over canonical JSON, and the one format version every content
//! hash covers.
//!
//! [`ASSEMBLY_FORMAT`] is part of the content hash of every kernel, package and image: bump
//! it whenever resin writes different bytes (or hashes different inputs) for the same
//! image, so that every `content_hash` changes with the bytes. The shape of the `spec`
//! documents has its own version, [`super::spec::SPEC_VERSION`].

/// Bumped whenever the bytes resin writes for the same inputs change.
pub const ASSEMBLY_FORMAT: u32 = 6;

/// sha256 over canonical JSON (object keys sorted, no whitespace).
pub fn content_hash(value: &serde_json::Value) -> crate::oci::digest::Digest {
    // serde_json's map is ordered by key (the preserve_order feature is not enabled), so
    // serialising a Value is canonical; the test below guards that.
    let bytes = serde_json::to_vec(value).expect("a JSON value always serialises");
    crate::oci::digest::sha256(&bytes)
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
