//! Publishing: every blob the registry lacks, then each image's manifest by digest, the
//! index of several architectures, the referrers (SBOMs, boot files), and last the tag. So a tag only
//! ever names what is whole in the repository: a push cut off part way leaves the tag
//! where it was (and the blobs it did upload are not sent again next time).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde_json::json;

use super::artifact::{self, Artifact, Attachment, Blob, ARTIFACT_TYPE, EMPTY_TYPE};
use crate::assemble::ImageSpec;
use crate::oci::digest::Digest;
use crate::oci::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::oci::platform::Platform;
use crate::oci::reference::RegistryReference;
use crate::oci::registry::{Pushed, RegistryClient};
use crate::oci::FetchError;

/// Blobs uploaded at once.
const PARALLEL_UPLOADS: usize = 4;

/// What a publication put in the registry.
#[derive(Clone, Debug)]
pub struct Publication {
    /// What the tag names: the image's manifest, or the index of several.
    pub digest: Digest,
    /// Each image's manifest, with its platform.
    pub manifests: Vec<(crate::oci::platform::Platform, Digest)>,
    pub blobs_uploaded: usize,
    pub bytes_uploaded: u64,
    pub blobs_present: usize,
}

/// A boot file to attach to the image of `platform` (the only image's when `None`).
#[derive(Clone, Debug)]
pub struct DiskFile {
    pub path: PathBuf,
    pub sha256: String,
    pub platform: Option<Platform>,
}

/// The artifacts of `images` (one per platform) with `disks` attached, their files read
/// off the async runtime.
pub async fn artifacts(images: Vec<ImageSpec>, disks: Vec<DiskFile>) -> Result<Vec<Artifact>> {
    tokio::task::spawn_blocking(move || {
        let mut artifacts = images
            .iter()
            .map(|image| artifact::artifact(image).with_context(|| format!("resin_image {}", image.name)))
            .collect::<Result<Vec<_>>>()?;
        for (index, artifact) in artifacts.iter().enumerate() {
            if artifacts[..index].iter().any(|other| other.platform == artifact.platform) {
                bail!("two images are for {}: one tag holds one image per platform", artifact.platform);
            }
        }
        for disk in disks {
            let subject = match &disk.platform {
                Some(platform) => artifacts.iter_mut().find(|artifact| artifact.platform == *platform),
                None if artifacts.len() == 1 => artifacts.first_mut(),
                None => bail!(
                    "{}: say which image's platform it was made from (several are published)",
                    disk.path.display()
                ),
            };
            let Some(subject) = subject else {
                bail!("{}: no image for {} is published", disk.path.display(), disk.platform.expect("a platform"));
            };
            subject.attachments.push(artifact::disk(&disk.path, &disk.sha256)?);
        }
        Ok(artifacts)
    })
    .await
    .context("reading the images")?
}

/// The document the tag names: the one artifact's manifest, or an index of several.
pub fn top_document(artifacts: &[Artifact]) -> (Vec<u8>, &'static str) {
    if let [only] = artifacts {
        return (only.manifest.clone(), OCI_MANIFEST);
    }
    let manifests: Vec<serde_json::Value> = artifacts
        .iter()
        .map(|artifact| {
            let mut descriptor = artifact.descriptor();
            descriptor["artifactType"] = json!(ARTIFACT_TYPE);
            let platform = &artifact.platform;
            descriptor["platform"] = json!({ "architecture": platform.architecture, "os": platform.os });
            if let Some(variant) = &platform.variant {
                descriptor["platform"]["variant"] = json!(variant);
            }
            descriptor
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": ARTIFACT_TYPE,
        "manifests": manifests,
    });
    (serde_json::to_vec(&index).expect("an index serialises"), OCI_INDEX)
}

/// Publishes `artifacts` to `target` (a repository and tag).
pub async fn publish(
    client: &RegistryClient,
    target: &RegistryReference,
    artifacts: &[Artifact],
) -> Result<Publication> {
    let tag = target.tag().context("a tag to publish under")?.to_string();
    let Some(first) = artifacts.first() else {
        bail!("no image to publish");
    };
    // The referrers: each attachment's manifest, its subject the image's.
    let empty = Blob::of_bytes(EMPTY_TYPE, b"{}".to_vec());
    let referrers: Vec<(&Artifact, &Attachment, Vec<u8>)> = artifacts
        .iter()
        .flat_map(|artifact| artifact.attachments.iter().map(move |attachment| (artifact, attachment)))
        .map(|(artifact, attachment)| {
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": attachment.artifact_type,
                "config": empty.descriptor(),
                "layers": [attachment.blob.descriptor()],
                "subject": artifact.descriptor(),
            });
            (artifact, attachment, serde_json::to_vec(&manifest).expect("a manifest serialises"))
        })
        .collect();
    // Each blob once, however many images share it.
    let mut blobs: BTreeMap<String, &Blob> = BTreeMap::new();
    for blob in artifacts.iter().flat_map(Artifact::blobs) {
        blobs.entry(blob.digest.to_string()).or_insert(blob);
    }
    for (_, attachment, _) in &referrers {
        for blob in [&attachment.blob, &empty] {
            blobs.entry(blob.digest.to_string()).or_insert(blob);
        }
    }
    // Owned items: a stream of borrowed ones is not `Send` for every lifetime, as the
    // plugin server needs.
    let blobs: Vec<Blob> = blobs.into_values().cloned().collect();
    let pushed: Vec<Pushed> = futures_util::stream::iter(blobs)
        .map(|blob| async move { client.push_blob(target, &blob.digest, &blob.source).await })
        .buffer_unordered(PARALLEL_UPLOADS)
        .try_collect()
        .await?;
    let mut publication = Publication {
        digest: first.digest.clone(),
        manifests: Vec::new(),
        blobs_uploaded: 0,
        bytes_uploaded: 0,
        blobs_present: 0,
    };
    for outcome in pushed {
        match outcome {
            Pushed::Present => publication.blobs_present += 1,
            Pushed::Uploaded(bytes) => {
                publication.blobs_uploaded += 1;
                publication.bytes_uploaded += bytes;
            }
        }
    }
    for artifact in artifacts {
        client.push_manifest(target, artifact.digest.as_ref(), OCI_MANIFEST, &artifact.manifest).await?;
        publication.manifests.push((artifact.platform.clone(), artifact.digest.clone()));
    }
    let (top, media_type) = top_document(artifacts);
    publication.digest = crate::oci::digest::sha256(&top);
    if artifacts.len() > 1 {
        client.push_manifest(target, publication.digest.as_ref(), media_type, &top).await?;
    }
    for (artifact, attachment, manifest) in &referrers {
        let title = attachment.blob.annotations.get(super::artifact::TITLE_ANNOTATION).cloned().unwrap_or_default();
        attach(client, target, artifact, attachment.artifact_type, manifest)
            .await
            .with_context(|| format!("attaching {title} to the image for {}", artifact.platform))?;
    }
    client.push_manifest(target, &tag, media_type, &top).await?;
    crate::log::info(
        "publish: published",
        &[
            ("target", format!("{}/{}:{tag}", target.registry(), target.repository())),
            ("digest", publication.digest.to_string()),
            ("blobs_uploaded", publication.blobs_uploaded.to_string()),
            ("bytes_uploaded", publication.bytes_uploaded.to_string()),
            ("blobs_present", publication.blobs_present.to_string()),
        ],
    );
    Ok(publication)
}

/// Pushes the referrer `manifest` of `artifact` and, when the registry has no referrers
/// API (it did not acknowledge the subject), lists it in the fallback tag
/// `sha256-<hex of the subject>`'s index, as OCI 1.1 has clients do.
async fn attach(
    client: &RegistryClient,
    target: &RegistryReference,
    artifact: &Artifact,
    artifact_type: &str,
    manifest: &[u8],
) -> Result<()> {
    let pushed =
        client.push_manifest(target, crate::oci::digest::sha256(manifest).as_ref(), OCI_MANIFEST, manifest).await?;
    if pushed.subject_indexed {
        return Ok(());
    }
    let fallback = RegistryReference::with_tag(
        target.registry().to_string(),
        target.repository().to_string(),
        format!("sha256-{}", artifact.digest.digest()),
    );
    let mut index = match client.fetch_manifest(&fallback, None).await {
        Ok((bytes, _)) => serde_json::from_slice::<serde_json::Value>(&bytes).context("the referrers tag's index")?,
        Err(e) if matches!(e.downcast_ref::<FetchError>(), Some(FetchError::NotFound { .. })) => {
            json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] })
        }
        Err(e) => return Err(e),
    };
    let digest = pushed.digest.to_string();
    let Some(listed) = index["manifests"].as_array_mut() else {
        bail!("the referrers tag {} holds no index", fallback.tag().unwrap_or_default());
    };
    if listed.iter().any(|descriptor| descriptor["digest"] == json!(digest)) {
        return Ok(());
    }
    listed.push(json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": manifest.len(),
        "artifactType": artifact_type,
    }));
    let bytes = serde_json::to_vec(&index).expect("an index serialises");
    client.push_manifest(&fallback, fallback.tag().expect("a tag"), OCI_INDEX, &bytes).await?;
    Ok(())
}
