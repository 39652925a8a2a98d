//! The OCI and Docker v2 manifest documents resin reads: image indexes (manifest lists),
//! image manifests and image configs. Both media-type families share one JSON shape, so
//! one set of types parses both; Docker schema 1 is refused.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::reference::Digest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// What a manifest request accepts. Registries answer 404 to OCI documents unless their
/// media types are listed, so all four are always sent.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// A content descriptor.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn parsed_digest(&self) -> Result<Digest> {
        self.digest.parse().with_context(|| format!("descriptor digest {:?}", self.digest))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct DescriptorPlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest: one config and the layers in application order.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index or Docker manifest list.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A manifest document of either kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    Index(ImageIndex),
    Image(ImageManifest),
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
            Ok(Manifest::Index(serde_json::from_slice(bytes).context("parsing image index")?))
        } else {
            Ok(Manifest::Image(serde_json::from_slice(bytes).context("parsing image manifest")?))
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
    pub diff_ids: Vec<String>,
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
        serde_json::from_slice(bytes).context("parsing image config")
    }

    /// The layers' diff_ids, when the config lists them (the OCI spec requires them;
    /// a config without `rootfs` only has its layers checked against their blob digests).
    pub fn diff_ids(&self) -> Option<&[String]> {
        self.rootfs.as_ref().map(|r| r.diff_ids.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_indexes_from_manifests() {
        let index = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:00","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        assert!(
            matches!(Manifest::parse(index).unwrap(), Manifest::Index(i) if i.manifests[0].platform.as_ref().unwrap().variant.as_deref() == Some("v8"))
        );
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:00","size":1},"layers":[]}"#;
        assert!(matches!(Manifest::parse(docker).unwrap(), Manifest::Image(_)));
        let schema1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(Manifest::parse(schema1).unwrap_err().to_string().contains("schema version"));
        let odd = br#"{"schemaVersion":2,"mediaType":"text/plain"}"#;
        assert!(Manifest::parse(odd).is_err());
    }
}
