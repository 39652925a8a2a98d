//! The provider's `segment_cache` block: the shared tier of the segment cache in a registry
//! repository ([`crate::assemble::RemoteSegments`]), the keys readers trust, and the key
//! this runner signs its pushes with, if it writes.
//!
//! Errors are the configuration's (a repository that is not one, a key that does not
//! parse: at their attribute); a signing key that no trusted key matches is a warning
//! (readers configured like this runner would ignore its pushes). What the registry does
//! at apply never fails a build.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Block};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use super::schema::{attribute, description, strings};
use crate::assemble::{PublicKey, RemoteSegments, RemoteSettings, SigningKey};
use crate::oci::cache::BlobCache;
use crate::oci::reference::ImageReference;
use crate::oci::registry::RegistryClient;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SegmentCacheBlock {
    repository: Value<String>,
    trusted_keys: Value<Vec<Value<String>>>,
    signing_key: Value<String>,
    signing_key_file: Value<String>,
}

pub fn schema() -> Block {
    let sensitive = |(name, attribute): (String, Attribute)| (name, Attribute { sensitive: true, ..attribute });
    Block {
        description: description("A second tier of the segment cache in an OCI registry repository, shared by CI runners: a segment missing from `cache_dir` is fetched from there (when signed by a trusted key) instead of compressed again, and segments built here are pushed there (when this runner has a signing key). The registry's problems never fail a build: the segment is built here, with a warning. See docs/guides/shared-cache.md."),
        attributes: HashMap::from([
            attribute("repository", AttributeType::String, AttributeConstraint::Required,
                "`registry/repository` holding the entries (tagged `segment-<key>`), with the credentials of the provider's `registry` blocks or Docker's config. Nothing else should be pushed there."),
            attribute("trusted_keys", strings(), AttributeConstraint::Required,
                "Public keys (`name:base64`, as `nix-store --generate-binary-cache-key` or `terraform-provider-resin segment-cache-key` write them) whose signatures this runner accepts; an entry signed by any other key, or not signed, is refused and the segment built here."),
            sensitive(attribute("signing_key", AttributeType::String, AttributeConstraint::Optional,
                "The secret key (`name:base64`) this runner signs the entries it pushes with. Without it (and `signing_key_file`), the runner only reads.")),
            attribute("signing_key_file", AttributeType::String, AttributeConstraint::Optional,
                "A file holding the secret key, instead of `signing_key`."),
        ]),
        ..Default::default()
    }
}

fn at(index: usize) -> AttributePath {
    AttributePath::new("segment_cache").index(super::attribute_index(index))
}

/// The block's settings once known: `None` when something is wrong (reported) or unknown.
fn settings(
    blocks: &[SegmentCacheBlock],
    diags: &mut Diagnostics,
    configuring: bool,
) -> Option<Option<RemoteSettings>> {
    let before = diags.errors.len();
    if blocks.len() > 1 {
        diags.error_short("at most one segment_cache block", at(1));
        return None;
    }
    let Some(block) = blocks.first() else { return Some(None) };
    let unknown = block.repository.is_unknown()
        || block.signing_key.is_unknown()
        || block.signing_key_file.is_unknown()
        || match &block.trusted_keys {
            Value::Value(keys) => keys.iter().any(Value::is_unknown),
            _ => true,
        };
    if unknown {
        if configuring {
            diags.error_short("segment_cache settings must be known when the provider is configured", at(0));
        }
        return None;
    }
    let repository = block.repository.as_ref_option().cloned().unwrap_or_default();
    let probe = format!("{repository}:probe");
    if repository.contains(['@', ' ']) || !matches!(probe.parse::<ImageReference>(), Ok(ImageReference::Registry(_))) {
        diags.error(
            "Invalid segment_cache repository",
            format!("{repository:?} is not a registry repository (registry/team/resin-cache, no tag)"),
            at(0).attribute("repository"),
        );
    }
    let mut trusted = Vec::new();
    let keys = block.trusted_keys.as_ref_option().cloned().unwrap_or_default();
    if keys.is_empty() {
        diags.error_short(
            "segment_cache.trusted_keys lists no key: entries are accepted only when signed by one listed here (list the writers' public keys, this runner's too)",
            at(0).attribute("trusted_keys"),
        );
    }
    for (index, key) in keys.iter().enumerate() {
        let text = key.as_ref_option().cloned().unwrap_or_default();
        match PublicKey::parse(&text) {
            Ok(key) => trusted.push(key),
            Err(e) => diags.error(
                "Invalid trusted key",
                format!("segment_cache.trusted_keys: {e:#}"),
                at(0).attribute("trusted_keys").index(super::attribute_index(index)),
            ),
        }
    }
    let signer = match (block.signing_key.as_ref_option(), block.signing_key_file.as_ref_option()) {
        (Some(_), Some(_)) => {
            diags.error_short(
                "segment_cache: set one of signing_key and signing_key_file",
                at(0).attribute("signing_key_file"),
            );
            None
        }
        (Some(text), None) => parsed_signer(text, "signing_key", diags),
        (None, Some(path)) if configuring => match std::fs::read_to_string(path) {
            Ok(text) => parsed_signer(&text, "signing_key_file", diags),
            Err(e) => {
                diags.error(
                    "Unreadable signing key",
                    format!("segment_cache.signing_key_file {path}: {e}"),
                    at(0).attribute("signing_key_file"),
                );
                None
            }
        },
        _ => None,
    };
    if diags.errors.len() > before {
        return None;
    }
    if let Some(signer) = &signer {
        if configuring && !trusted.contains(&signer.public()) {
            diags.warning(
                "Signing key not trusted",
                format!(
                    "segment_cache: the signing key {} is not among trusted_keys ({}): runners that trust only those keys ignore what this one pushes",
                    signer.public(),
                    trusted.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
                at(0).attribute(if block.signing_key.is_null() { "signing_key_file" } else { "signing_key" }),
            );
        }
    }
    Some(Some(RemoteSettings { repository, trusted, signer }))
}

/// The secret key in `text`; the error names the attribute, never the key.
fn parsed_signer(text: &str, attribute: &'static str, diags: &mut Diagnostics) -> Option<SigningKey> {
    match SigningKey::parse(text) {
        Ok(key) => Some(key),
        Err(e) => {
            diags.error("Invalid signing key", format!("segment_cache.{attribute}: {e:#}"), at(0).attribute(attribute));
            None
        }
    }
}

/// Checks the blocks (validation: what is known).
pub fn validate(blocks: &Value<Vec<SegmentCacheBlock>>, diags: &mut Diagnostics) {
    if let Value::Value(blocks) = blocks {
        settings(blocks, diags, false);
    }
}

/// The shared tier the blocks configure, if any; `Err` when they are wrong (reported).
pub fn configure(
    blocks: &Value<Vec<SegmentCacheBlock>>,
    client: Arc<RegistryClient>,
    blobs: BlobCache,
    diags: &mut Diagnostics,
) -> Result<Option<RemoteSegments>, ()> {
    let blocks = blocks.as_ref_option().cloned().unwrap_or_default();
    match settings(&blocks, diags, true) {
        None => Err(()),
        Some(None) => Ok(None),
        Some(Some(settings)) => Ok(Some(RemoteSegments::new(settings, client, blobs))),
    }
}
