//! Small constructors that keep the schema literals of the resources readable. Every
//! attribute and block gets a description: the registry docs are generated from them.

use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema};

/// The schema version of every resource. It never changes: tf-provider cannot implement
/// state upgrades, and with an unchanged version Terraform drops removed attributes and
/// nulls new ones itself (an attribute may never change type).
pub const SCHEMA_VERSION: i64 = 1;

/// A resource schema from its description, attributes and blocks.
pub fn resource_schema(text: &str, attributes: Vec<(String, Attribute)>, blocks: Vec<(String, NestedBlock)>) -> Schema {
    Schema { version: SCHEMA_VERSION, block: block(text, attributes, blocks) }
}

pub fn description(text: &str) -> Description {
    Description::markdown(text)
}

pub fn attribute(
    name: &str,
    attr_type: AttributeType,
    constraint: AttributeConstraint,
    text: &str,
) -> (String, Attribute) {
    (
        name.to_string(),
        Attribute { attr_type, description: description(text), constraint, sensitive: false, deprecated: false },
    )
}

pub fn strings() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::String))
}

pub fn string_map() -> AttributeType {
    AttributeType::Map(Box::new(AttributeType::String))
}

/// A block that may appear once (`NestedBlock::Optional`: a list of at most one item).
pub fn optional_block(
    name: &str,
    text: &str,
    attributes: Vec<(String, Attribute)>,
    blocks: Vec<(String, NestedBlock)>,
) -> (String, NestedBlock) {
    (name.to_string(), NestedBlock::Optional(block(text, attributes, blocks)))
}

/// A block that may repeat.
pub fn list_block(
    name: &str,
    text: &str,
    attributes: Vec<(String, Attribute)>,
    blocks: Vec<(String, NestedBlock)>,
) -> (String, NestedBlock) {
    (name.to_string(), NestedBlock::List(block(text, attributes, blocks)))
}

fn block(text: &str, attributes: Vec<(String, Attribute)>, blocks: Vec<(String, NestedBlock)>) -> Block {
    Block {
        version: SCHEMA_VERSION,
        attributes: attributes.into_iter().collect(),
        blocks: blocks.into_iter().collect(),
        description: description(text),
        deprecated: false,
    }
}

/// The attributes every image-backed resource has: `image`, `platform`, and the
/// computed `id`, `digest`, `content_hash` and `spec` (the last two described by the
/// resource: what its hash covers, and who takes its spec).
pub fn image_attributes(image_text: &str, content_hash_text: &str, spec_text: &str) -> Vec<(String, Attribute)> {
    use AttributeConstraint::*;
    vec![
        attribute("image", AttributeType::String, Required, image_text),
        attribute("platform", AttributeType::String, OptionalComputed,
            "Platform to resolve an index to, `os/arch[/variant]` (`linux/arm64` matches `linux/arm64/v8`). Default: the provider's `platform`."),
        attribute("id", AttributeType::String, Computed,
            "The image pinned to its platform manifest, `<registry>/<repository>@sha256:...` (or `oci-layout:<dir>@sha256:...`): enough to fetch exactly this content again on any machine."),
        attribute("digest", AttributeType::String, Computed,
            "Digest of the platform manifest the image resolved to. Refresh re-resolves tags, so a moved tag shows up in `terraform plan` as a change of this digest."),
        attribute("content_hash", AttributeType::String, Computed, content_hash_text),
        attribute("spec", AttributeType::String, Computed, spec_text),
    ]
}

/// Reports `attribute` of `resource` unless it is a file path inside an image: relative
/// (a leading `/` or `./` is allowed), no `..`, no empty components; empty only when
/// `allow_empty` (meaning "none").
pub fn check_image_path(
    value: &tf_provider::value::Value<String>,
    resource: &str,
    attribute: &'static str,
    allow_empty: bool,
    diags: &mut tf_provider::Diagnostics,
) {
    let tf_provider::value::Value::Value(file) = value else { return };
    if file.is_empty() && allow_empty {
        return;
    }
    let trimmed = file.trim_start_matches("./").trim_start_matches('/');
    if trimmed.is_empty() || trimmed.split('/').any(|c| c.is_empty() || c == "..") {
        diags.error(
            format!("Invalid {attribute}"),
            format!("{resource}: {file:?} is not a file path inside the image"),
            tf_provider::AttributePath::new(attribute),
        );
    }
}
