//! The OCI and Docker v2 manifest documents resin reads: image indexes (manifest lists),
//! image manifests and image configs. Indexes, manifests and descriptors are oci-spec's
//! types (both media-type families share one JSON shape); Docker schema 1 is refused, and
//! every digest a document names must be sha256. The image config is a tolerant subset of
//! our own: real images omit fields oci-spec's `ImageConfiguration` requires.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
pub use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use super::digest::{require_sha256, Digest};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// What a manifest request accepts. Registries answer 404 to OCI documents unless their
/// media types are listed, so all four are always sent.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// Parses an image index (an OCI layout's `index.json`, a registry's index or manifest
/// list), refusing digests other than sha256.
pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex> {
    let index: ImageIndex = serde_json::from_slice(bytes).context("parsing image index")?;
    check_digests(index.manifests())?;
    Ok(index)
}

fn check_digests<'a>(descriptors: impl IntoIterator<Item = &'a Descriptor>) -> Result<()> {
    for descriptor in descriptors {
        require_sha256(descriptor.digest()).context("a descriptor")?;
    }
    Ok(())
}

/// The `os/architecture[/variant]` a descriptor of an index is for, when it says.
pub fn descriptor_platform(descriptor: &Descriptor) -> Option<(String, String, Option<String>)> {
    descriptor.platform().as_ref().map(|p| (p.os().to_string(), p.architecture().to_string(), p.variant().clone()))
}

/// A manifest document of either kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    Index(Box<ImageIndex>),
    Image(Box<ImageManifest>),
}

impl Manifest {
    /// Parses a manifest document, telling index from image by `mediaType` or, when it is
    /// absent (allowed by OCI), by the presence of `manifests`.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            schema_version: Option<u32>,
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes).context("manifest is not JSON")?;
        if probe.schema_version != Some(2) {
            bail!(
                "unsupported manifest schema version {:?} (only schema 2, OCI or Docker v2, is supported)",
                probe.schema_version
            );
        }
        let is_index = match probe.media_type.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            Some(other) => bail!("unsupported manifest media type {other}"),
            None => probe.manifests.is_some(),
        };
        if is_index {
            Ok(Manifest::Index(Box::new(parse_index(bytes)?)))
        } else {
            let manifest: ImageManifest = serde_json::from_slice(bytes).context("parsing image manifest")?;
            check_digests(std::iter::once(manifest.config()).chain(manifest.layers()))?;
            Ok(Manifest::Image(Box::new(manifest)))
        }
    }
}

/// The parts of an image config that resin uses.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    /// The digests of the uncompressed layers, checked as each layer streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// `config` of an image config: the defaults of a container made from the image.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ContainerConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig> {
        let config: ImageConfig = serde_json::from_slice(bytes).context("parsing image config")?;
        for diff_id in config.diff_ids().unwrap_or_default() {
            require_sha256(diff_id).context("a layer diff_id")?;
        }
        Ok(config)
    }

    /// The layers' diff_ids, when the config lists them (the OCI spec requires them;
    /// a config without `rootfs` only has its layers checked against their blob digests).
    pub fn diff_ids(&self) -> Option<&[Digest]> {
        self.rootfs.as_ref().map(|r| r.diff_ids.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "8b0f0ea7fbdcbc3bd8e0c1e1d3a2b1f1e1d2c3b4a5968778695a4b3c2d1e0f00";

    #[test]
    fn tells_indexes_from_manifests() {
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{HEX}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let Manifest::Index(parsed) = Manifest::parse(index.as_bytes()).unwrap() else { panic!("an index") };
        assert_eq!(
            descriptor_platform(&parsed.manifests()[0]),
            Some(("linux".into(), "arm64".into(), Some("v8".into())))
        );
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:{HEX}","size":1}},"layers":[]}}"#
        );
        assert!(matches!(Manifest::parse(docker.as_bytes()).unwrap(), Manifest::Image(_)));
        let schema1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(Manifest::parse(schema1).unwrap_err().to_string().contains("schema version"));
        let odd = br#"{"schemaVersion":2,"mediaType":"text/plain"}"#;
        assert!(Manifest::parse(odd).is_err());
    }

    #[test]
    fn digests_other_than_sha256_are_refused() {
        let sha512 = format!("sha512:{HEX}{HEX}");
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{HEX}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{sha512}","size":1}}]}}"#
        );
        let error = format!("{:#}", Manifest::parse(manifest.as_bytes()).unwrap_err());
        assert!(error.contains(&sha512), "{error}");
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{sha512}"]}}}}"#);
        assert!(format!("{:#}", ImageConfig::parse(config.as_bytes()).unwrap_err()).contains("diff_id"));
        let tolerant = br#"{"config":{"Cmd":["/bin/sh"]}}"#;
        assert_eq!(ImageConfig::parse(tolerant).unwrap().config.unwrap().cmd.unwrap(), ["/bin/sh"]);
    }
}
