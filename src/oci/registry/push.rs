//! Pushes to a registry, as the OCI distribution spec has them: a blob is uploaded unless
//! the repository has it (`HEAD`), in one `POST` (an upload session) and one `PUT` of the
//! whole blob with its digest, streamed from a file; a manifest is `PUT` under a tag or
//! its digest, after its blobs (so a tag never names a manifest whose blobs are missing).
//! Every request has the retries pulls have, with a push authorisation (`pull,push`
//! scope); a refusal names the registry, the repository and the blob.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;

use super::{Operation, Refusal, RegistryClient};
use crate::oci::reference::{Digest, RegistryReference};
use crate::oci::retry::Attempt;

/// The bytes read from a blob's file per chunk of the upload.
const CHUNK: usize = 256 << 10;

/// The bytes of a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobSource {
    /// Held in memory (a config, a manifest's small documents).
    Bytes(Vec<u8>),
    /// A byte range of a file (a part of an initrd is a range of the initrd), read a chunk
    /// at a time when uploaded, never whole in memory.
    Range { path: PathBuf, offset: u64, length: u64 },
}

impl BlobSource {
    /// The whole file at `path`, of `length` bytes.
    pub fn file(path: &Path, length: u64) -> BlobSource {
        BlobSource::range(path, 0, length)
    }

    /// `length` bytes of the file at `path`, from `offset`.
    pub fn range(path: &Path, offset: u64, length: u64) -> BlobSource {
        BlobSource::Range { path: path.to_path_buf(), offset, length }
    }

    /// A blob held in memory.
    pub fn bytes(bytes: Vec<u8>) -> BlobSource {
        BlobSource::Bytes(bytes)
    }

    /// The blob's size.
    pub fn size(&self) -> u64 {
        match self {
            BlobSource::Bytes(bytes) => bytes.len() as u64,
            BlobSource::Range { length, .. } => *length,
        }
    }

    /// Where the bytes are, for messages.
    fn place(&self) -> String {
        match self {
            BlobSource::Bytes(_) => "in memory".into(),
            BlobSource::Range { path, .. } => path.display().to_string(),
        }
    }
}

/// What pushing a blob did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The repository had it: nothing was sent.
    Present,
    /// Uploaded, this many bytes.
    Uploaded(u64),
}

impl RegistryClient {
    /// Whether the reference's repository holds blob `digest`.
    pub async fn has_blob(&self, reference: &RegistryReference, digest: &Digest) -> Result<bool> {
        let url = format!("{}blobs/{digest}", self.base_url(reference));
        let what = format!("{}/{}@{digest}", reference.registry(), reference.repository());
        let found = self
            .request_as(reference, Operation::Push, &what, |authorization| {
                let url = url.clone();
                async move {
                    match self.send::<bool>(self.http.head(&url), authorization.as_deref()).await {
                        Ok(_) => Attempt::Done(Ok(true)),
                        Err(Attempt::Done(Err(Refusal::NotFound))) => Attempt::Done(Ok(false)),
                        Err(other) => other,
                    }
                }
            })
            .await?;
        Ok(found)
    }

    /// Uploads the blob `digest`, read from `source`, unless the repository has it. The
    /// registry checks the digest of what it receives.
    pub async fn push_blob(
        &self,
        reference: &RegistryReference,
        digest: &Digest,
        source: &BlobSource,
    ) -> Result<Pushed> {
        let (size, place) = (source.size(), source.place());
        if self.has_blob(reference, digest).await? {
            return Ok(Pushed::Present);
        }
        let base = self.base_url(reference);
        let what =
            format!("blob {digest} ({size} bytes, {}) to {}/{}", place, reference.registry(), reference.repository());
        self.request_as(reference, Operation::Push, &what, |authorization| {
            let (base, authorization) = (base.clone(), authorization.clone());
            async move {
                // A new upload session for every attempt: a failed PUT ends the last one.
                let started =
                    self.http.post(format!("{base}blobs/uploads/")).header(reqwest::header::CONTENT_LENGTH, 0);
                let response = match self.send::<()>(started, authorization.as_deref()).await {
                    Ok(response) => response,
                    Err(outcome) => return outcome,
                };
                let Some(location) = response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok())
                else {
                    return Attempt::Failed(anyhow::anyhow!("the registry opened an upload without a Location"));
                };
                let url = match upload_url(&base, location, digest) {
                    Ok(url) => url,
                    Err(e) => return Attempt::Failed(e),
                };
                let body = match blob_body(source).await {
                    Ok(body) => body,
                    Err(e) => return Attempt::Failed(e),
                };
                let put = self
                    .http
                    .put(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_LENGTH, size)
                    .body(body);
                match self.send::<()>(put, authorization.as_deref()).await {
                    Ok(_) => Attempt::Done(Ok(())),
                    Err(outcome) => outcome,
                }
            }
        })
        .await?;
        Ok(Pushed::Uploaded(size))
    }

    /// Puts `manifest` (of `media_type`) in the reference's repository under `name`, a tag
    /// or its digest. Returns its digest, which the registry must agree on, and whether the
    /// registry said it indexed the manifest's `subject` (`OCI-Subject`: it has the
    /// referrers API).
    pub async fn push_manifest(
        &self,
        reference: &RegistryReference,
        name: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<ManifestPushed> {
        let digest = crate::oci::digest::sha256(manifest);
        let url = format!("{}manifests/{name}", self.base_url(reference));
        let what = format!("manifest {digest} as {}/{}:{name}", reference.registry(), reference.repository());
        let (answered, subject) = self
            .request_as(reference, Operation::Push, &what, |authorization| {
                let url = url.clone();
                async move {
                    let put =
                        self.http.put(&url).header(reqwest::header::CONTENT_TYPE, media_type).body(manifest.to_vec());
                    match self.send::<(Option<String>, bool)>(put, authorization.as_deref()).await {
                        Ok(response) => {
                            let header = |name: &str| {
                                response.headers().get(name).and_then(|h| h.to_str().ok()).map(str::to_string)
                            };
                            Attempt::Done(Ok((header("docker-content-digest"), header("oci-subject").is_some())))
                        }
                        // Its blobs were all pushed before it: a blob the registry does not
                        // know is one it is still putting in place, because another upload
                        // of the same blob (another manifest's, pushed at the same time)
                        // is finishing (seen with distribution 2.8). It passes.
                        Err(Attempt::Done(Err(Refusal::Other(detail)))) if detail.contains("MANIFEST_BLOB_UNKNOWN") => {
                            Attempt::Retry { reason: detail, after: None }
                        }
                        Err(outcome) => outcome,
                    }
                }
            })
            .await?;
        if let Some(answered) = answered {
            if answered != digest.to_string() {
                anyhow::bail!("registry {} stored {what} under digest {answered}", reference.registry());
            }
        }
        Ok(ManifestPushed { digest, subject_indexed: subject })
    }

    /// Deletes the manifest `name` (a tag or a digest) from the reference's repository.
    pub async fn delete_manifest(&self, reference: &RegistryReference, name: &str) -> Result<()> {
        let url = format!("{}manifests/{name}", self.base_url(reference));
        let what = format!("{}/{}:{name}", reference.registry(), reference.repository());
        self.request_as(reference, Operation::Delete, &what, |authorization| {
            let url = url.clone();
            async move {
                match self.send::<()>(self.http.delete(&url), authorization.as_deref()).await {
                    Ok(_) => Attempt::Done(Ok(())),
                    Err(outcome) => outcome,
                }
            }
        })
        .await
    }
}

/// What pushing a manifest did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestPushed {
    pub digest: Digest,
    /// The registry indexed the manifest's `subject` for the referrers API.
    pub subject_indexed: bool,
}

/// The URL that completes an upload: the session's `Location` (absolute, or a path on
/// the registry) with the blob's digest as a query parameter.
fn upload_url(base: &str, location: &str, digest: &Digest) -> Result<String> {
    let location = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        let origin = base.split("/v2/").next().context("a registry URL")?;
        format!("{origin}{location}")
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    Ok(format!("{location}{separator}digest={}", digest.to_string().replace(':', "%3A")))
}

/// The bytes of `source` as a request body, the file read a chunk at a time (never the
/// whole blob in memory). A file shorter than the range is an error, not a short body.
async fn blob_body(source: &BlobSource) -> Result<reqwest::Body> {
    use tokio::io::AsyncSeekExt as _;
    let (path, offset, length) = match source {
        BlobSource::Bytes(bytes) => return Ok(reqwest::Body::from(bytes.clone())),
        BlobSource::Range { path, offset, length } => (path.clone(), *offset, *length),
    };
    let mut file = tokio::fs::File::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
    file.seek(std::io::SeekFrom::Start(offset)).await.with_context(|| format!("reading {}", path.display()))?;
    let range = futures_util::stream::unfold((file.take(length), length), move |(mut file, left)| {
        let path = path.clone();
        async move {
            if left == 0 {
                return None;
            }
            let mut buffer = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
            match file.read(&mut buffer).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{} ended {left} bytes before the blob did", path.display()),
                    )),
                    (file, 0),
                )),
                Ok(n) => {
                    buffer.truncate(n);
                    Some((Ok(buffer), (file, left - n as u64)))
                }
                Err(e) => Some((Err(e), (file, 0))),
            }
        }
    });
    Ok(reqwest::Body::wrap_stream(range.boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::auth::{DockerConfig, RegistrySettings};
    use crate::oci::reference::ImageReference;

    fn client(address: &str, user: &str, password: &str) -> RegistryClient {
        let settings = RegistrySettings {
            address: address.into(),
            username: Some(user.into()),
            password: Some(password.into()),
            plain_http: true,
        };
        RegistryClient::new(vec![settings], DockerConfig::default(), super::super::DEFAULT_TIMEOUT)
    }

    fn reference(text: &str) -> RegistryReference {
        match text.parse::<ImageReference>().unwrap() {
            ImageReference::Registry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn blobs_and_a_manifest_are_pushed_once_and_read_back_by_digest() {
        let registry = resin_testkit::registry::Registry::start(Some(("pusher", "s3cret")));
        let client = client(&registry.address, "pusher", "s3cret");
        let target = reference(&format!("{}/fleet/node:v1", registry.address));
        let dir = tempfile::tempdir().unwrap();
        // Larger than a chunk, so the body streams in several.
        let blob: Vec<u8> = (0..(CHUNK * 2 + 1000)).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let path = dir.path().join("blob");
        std::fs::write(&path, &blob).unwrap();
        let digest = crate::oci::digest::sha256(&blob);
        assert!(!client.has_blob(&target, &digest).await.unwrap());
        let source = BlobSource::file(&path, blob.len() as u64);
        let first = client.push_blob(&target, &digest, &source).await.unwrap();
        assert_eq!(first, Pushed::Uploaded(blob.len() as u64));
        assert_eq!(client.push_blob(&target, &digest, &source).await.unwrap(), Pushed::Present);
        // A range of the file.
        let framed = BlobSource::range(&path, 7, CHUNK as u64 + 3);
        let bytes = blob[7..CHUNK + 10].to_vec();
        let framed_digest = crate::oci::digest::sha256(&bytes);
        assert_eq!(framed.size(), bytes.len() as u64);
        client.push_blob(&target, &framed_digest, &framed).await.unwrap();
        assert!(std::fs::read(registry.blob_data_path(framed_digest.as_ref())).unwrap() == bytes);
        let config = b"{}";
        let config_path = dir.path().join("config");
        std::fs::write(&config_path, config).unwrap();
        let config_digest = crate::oci::digest::sha256(config);
        client.push_blob(&target, &config_digest, &BlobSource::file(&config_path, 2)).await.unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.resin.test.v1",
            "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest.to_string(), "size": 2 },
            "layers": [{ "mediaType": "application/octet-stream", "digest": digest.to_string(), "size": blob.len() }],
        }))
        .unwrap();
        let pushed = client
            .push_manifest(&target, "v1", "application/vnd.oci.image.manifest.v1+json", &manifest)
            .await
            .unwrap()
            .digest;
        let (read, read_digest) = client.fetch_manifest(&target, None).await.unwrap();
        assert_eq!((read, read_digest), (manifest, pushed));
        // The blob the registry stored has the bytes sent.
        let stored = std::fs::read(registry.blob_data_path(digest.as_ref())).unwrap();
        assert!(stored == blob);
    }

    #[tokio::test]
    async fn a_refused_push_names_the_registry_and_the_blob() {
        let registry = resin_testkit::registry::Registry::start(Some(("pusher", "s3cret")));
        let client = client(&registry.address, "pusher", "wrong");
        let target = reference(&format!("{}/fleet/node:v1", registry.address));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"bytes").unwrap();
        let digest = crate::oci::digest::sha256(b"bytes");
        let error = client.push_blob(&target, &digest, &BlobSource::file(&path, 5)).await.unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(&format!("not authorised by registry {}", registry.address)), "{message}");
        // A blob whose bytes are not its digest is refused by the registry, named.
        let client = client_for(&registry);
        let wrong: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        let error = client.push_blob(&target, &wrong, &BlobSource::file(&path, 5)).await.unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(&format!("pushing blob {wrong}")) && message.contains("HTTP 400"), "{message}");
    }

    fn client_for(registry: &resin_testkit::registry::Registry) -> RegistryClient {
        client(&registry.address, "pusher", "s3cret")
    }

    #[test]
    fn uploads_complete_at_the_session_location_with_the_digest() {
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let base = "http://127.0.0.1:5000/v2/team/node/";
        let escaped = format!("sha256%3A{}", "a".repeat(64));
        assert_eq!(
            upload_url(base, "/v2/team/node/blobs/uploads/u1?_state=x", &digest).unwrap(),
            format!("http://127.0.0.1:5000/v2/team/node/blobs/uploads/u1?_state=x&digest={escaped}")
        );
        assert_eq!(
            upload_url(base, "https://cdn.example/upload/u2", &digest).unwrap(),
            format!("https://cdn.example/upload/u2?digest={escaped}")
        );
    }
}
