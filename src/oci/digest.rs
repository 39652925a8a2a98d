//! Content digests. The one digest type is oci-spec's [`Digest`]; resin computes and
//! verifies sha256 only (what every registry and layout uses), so every digest that comes
//! from outside (a reference, a manifest, Terraform state) is checked to be sha256 when it
//! is parsed, and the helpers here compute them.

use std::path::PathBuf;

pub use oci_spec::image::Digest;
use oci_spec::image::DigestAlgorithm;
use sha2::Digest as _;
use thiserror::Error;

/// A digest resin cannot use.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid digest {0:?}: expected sha256: followed by 64 lowercase hex digits")]
pub struct InvalidDigest(pub String);

/// Parses `sha256:<64 lowercase hex>`.
pub fn parse(s: &str) -> Result<Digest, InvalidDigest> {
    let digest: Digest = s.parse().map_err(|_| InvalidDigest(s.to_string()))?;
    require_sha256(&digest)?;
    Ok(digest)
}

/// Refuses a well-formed digest of another algorithm (oci-spec accepts sha512 and others).
pub fn require_sha256(digest: &Digest) -> Result<(), InvalidDigest> {
    if *digest.algorithm() == DigestAlgorithm::Sha256 {
        Ok(())
    } else {
        Err(InvalidDigest(digest.to_string()))
    }
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    from_hash(&sha2::Sha256::digest(bytes))
}

/// The digest of a finished sha256 hash.
pub fn from_hash(hash: &[u8]) -> Digest {
    // 64 lowercase hex digits after `sha256:` always parse.
    Digest::try_from(format!("sha256:{}", hex::encode(hash))).expect("a sha256 digest is well-formed")
}

/// Where a blob lives inside an OCI image layout or the cache: `blobs/<algorithm>/<hex>`.
pub fn blob_path(digest: &Digest) -> PathBuf {
    ["blobs", digest.algorithm().as_ref(), digest.digest()].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_is_accepted() {
        let hex = "8b0f0ea7fbdcbc3bd8e0c1e1d3a2b1f1e1d2c3b4a5968778695a4b3c2d1e0f00";
        let digest = parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!((digest.digest(), digest.to_string()), (hex, format!("sha256:{hex}")));
        assert_eq!(blob_path(&digest), PathBuf::from(format!("blobs/sha256/{hex}")));
        for bad in [
            "sha256:abc".to_string(),
            format!("sha256:{}", hex.to_uppercase()),
            format!("sha512:{hex}{hex}"),
            format!("md5:{hex}"),
            hex.to_string(),
            format!("sha256:{hex}/.."),
        ] {
            assert_eq!(parse(&bad), Err(InvalidDigest(bad.clone())), "{bad}");
        }
        assert_eq!(sha256(b"hello"), from_hash(&sha2::Sha256::digest(b"hello")));
        assert_eq!(sha256(b"").to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
