//! Images in a registry: publishing an assembled image as an OCI 1.1 artifact whose blobs
//! are the kernel and each part of the initrd ([`artifact`], [`push`]), and reading a
//! published image back into the kernel and initrd it was made of ([`pull`]).
//!
//! Registries are the distribution layer of a fleet: machines netboot a published image
//! by fetching its blobs by digest (`/v2/<repository>/blobs/<digest>`, immutable URLs any
//! HTTP cache, mirror or CDN can serve), and another machine or CI job makes boot files
//! from it without assembling it again. Nothing here knows about Terraform.

pub mod artifact;
pub mod pull;
pub mod push;

pub use artifact::{Artifact, ArtifactConfig, ARTIFACT_TYPE};
pub use pull::{resolve, Resolved};
pub use push::{artifacts, publish, DiskFile, Publication};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::{ImageSpec, InitrdPart, SPEC_VERSION};
    use crate::initrd::Compression;
    use crate::oci::auth::{DockerConfig, RegistrySettings};
    use crate::oci::cache::BlobCache;
    use crate::oci::reference::{ImageReference, RegistryReference};
    use crate::oci::registry::RegistryClient;
    use std::path::Path;

    fn client(registry: &resin_testkit::registry::Registry) -> RegistryClient {
        let (user, password) = registry.credentials.clone().unwrap();
        let settings = RegistrySettings {
            address: registry.address.clone(),
            username: Some(user),
            password: Some(password),
            plain_http: true,
        };
        RegistryClient::new(vec![settings], DockerConfig::default(), crate::oci::registry::DEFAULT_TIMEOUT)
    }

    fn reference(text: &str) -> RegistryReference {
        match text.parse::<ImageReference>().unwrap() {
            ImageReference::Registry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// Files of a segment: a few of some size, so segments compress to blobs of their own.
    fn files(seed: u8) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..3u8)
            .map(|n| {
                let contents: Vec<u8> =
                    (0..20_000u32).map(|i| (i.to_le_bytes()[0]).wrapping_mul(seed).wrapping_add(n)).collect();
                (format!("d{seed}/f{n}").into_bytes(), contents)
            })
            .collect()
    }

    /// An image `node` for `platform` in `dir`: a kernel, an initrd of `segments`, an SBOM.
    fn image(
        dir: &Path,
        platform: &str,
        compression: Compression,
        segments: &[Vec<(Vec<u8>, Vec<u8>)>],
        ucode: Option<&[u8]>,
    ) -> ImageSpec {
        std::fs::create_dir_all(dir).unwrap();
        let (written, bytes) = crate::initrd::segments::tests::written_initrd(compression, segments, ucode);
        let kernel = format!("kernel for {platform}").into_bytes();
        let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#;
        for (file, contents) in
            [("node-kernel", &kernel[..]), ("node-initrd.img", &bytes), ("node-sbom.spdx.json", sbom)]
        {
            std::fs::write(dir.join(file), contents).unwrap();
        }
        ImageSpec {
            spec_version: SPEC_VERSION,
            name: "node".into(),
            output_dir: dir.display().to_string(),
            content_hash: crate::oci::digest::sha256(&bytes).to_string(),
            platform: platform.parse().unwrap(),
            cmdline: "console=ttyS0".into(),
            kernel_path: dir.join("node-kernel").display().to_string(),
            initrd_path: dir.join("node-initrd.img").display().to_string(),
            kernel_sha256: crate::oci::digest::sha256(&kernel).to_string(),
            kernel_size: kernel.len() as u64,
            initrd_sha256: written.sha256.clone(),
            initrd_size: written.size,
            initrd_parts: written.parts.iter().map(InitrdPart::from).collect(),
            sensitive: false,
            sbom_sha256: Some(crate::oci::digest::sha256(sbom).to_string()),
            published: None,
        }
    }

    /// Publishes `images` as `target`, reads each platform back into `out` and checks the
    /// files are the images' byte for byte.
    async fn round_trip(
        client: &RegistryClient,
        target: &RegistryReference,
        images: Vec<ImageSpec>,
        out: &Path,
    ) -> Publication {
        let artifacts = artifacts(images.clone(), Vec::new()).await.unwrap();
        let publication = publish(client, target, &artifacts).await.unwrap();
        let cache = BlobCache::open(&out.join("cache")).unwrap();
        for image in &images {
            let resolved = resolve(client, &cache, target, &image.platform).await.unwrap();
            let dir = out.join(image.platform.architecture.as_str());
            let spec = resolved.fetch(client, &cache, target, &dir, "node").await.unwrap();
            for (original, read) in [(&image.kernel_path, &spec.kernel_path), (&image.initrd_path, &spec.initrd_path)] {
                assert!(std::fs::read(original).unwrap() == std::fs::read(read).unwrap(), "{read} is {original}");
            }
            assert_eq!((&spec.initrd_parts, &spec.content_hash), (&image.initrd_parts, &image.content_hash));
            let published = spec.published.unwrap();
            assert_eq!(published.initrd.len(), image.initrd_parts.len());
            assert_eq!(published.manifest, resolved.digest.to_string());
        }
        publication
    }

    #[tokio::test]
    async fn a_published_image_reads_back_byte_for_byte_and_a_changed_segment_is_all_that_is_sent_again() {
        let registry = resin_testkit::registry::Registry::start(Some(("pusher", "s3cret")));
        let client = client(&registry);
        let dir = tempfile::tempdir().unwrap();
        let segments = vec![files(1), files(2), files(3)];
        for (name, compression, ucode) in [
            ("gzip", Compression::Gzip { level: 4 }, Some(&b"microcode"[..])),
            ("zstd", Compression::Zstd { level: 3 }, None),
            ("none", Compression::Uncompressed, Some(&b"ucode"[..])),
        ] {
            let target = reference(&format!("{}/fleet/node:{name}", registry.address));
            let work = dir.path().join(name);
            let amd64 = image(&work.join("amd64"), "linux/amd64", compression, &segments, ucode);
            let arm64 = image(&work.join("arm64"), "linux/arm64", compression, &segments, ucode);
            let first = round_trip(&client, &target, vec![amd64.clone(), arm64], &work.join("read")).await;
            // An index of two manifests; the segments are shared by both platforms.
            let index = registry.manifest_digest("fleet/node", name);
            assert_eq!(index, first.digest.to_string());
            assert_eq!(first.manifests.len(), 2);
            // One segment changed: its blob, the new config and nothing else is uploaded.
            let mut changed = segments.clone();
            changed[1] = files(9);
            let next = image(&work.join("next"), "linux/amd64", compression, &changed, ucode);
            let artifacts = artifacts(vec![next.clone()], Vec::new()).await.unwrap();
            let sizes: Vec<u64> = artifacts[0].initrd.iter().map(|blob| blob.source.size()).collect();
            let second = round_trip(&client, &target, vec![next], &work.join("read-next")).await;
            assert_eq!(second.blobs_uploaded, 2, "{compression:?}: the config and one segment: {second:?}");
            let config = artifacts[0].config.source.size();
            let segment = sizes[if ucode.is_some() { 2 } else { 1 }];
            assert_eq!(second.bytes_uploaded, config + segment, "{compression:?}");
            assert_eq!(registry.manifest_digest("fleet/node", name), second.digest.to_string());
        }
    }

    #[tokio::test]
    async fn a_blob_the_registry_serves_wrong_is_an_error_naming_it_and_writes_nothing() {
        let registry = resin_testkit::registry::Registry::start(Some(("pusher", "s3cret")));
        let client = client(&registry);
        let dir = tempfile::tempdir().unwrap();
        let image = image(&dir.path().join("image"), "linux/amd64", Compression::DEFAULT, &[files(1), files(2)], None);
        let target = reference(&format!("{}/fleet/node:v1", registry.address));
        let artifacts = artifacts(vec![image.clone()], Vec::new()).await.unwrap();
        publish(&client, &target, &artifacts).await.unwrap();
        // The registry's copy of a segment goes bad (same length, other bytes).
        let segment = &artifacts[0].initrd[1];
        let stored = registry.blob_data_path(segment.digest.as_ref());
        let mut bytes = std::fs::read(&stored).unwrap();
        bytes[12] ^= 0xff;
        std::fs::write(&stored, bytes).unwrap();
        let cache = BlobCache::open(&dir.path().join("cache")).unwrap();
        let resolved = resolve(&client, &cache, &target, &image.platform).await.unwrap();
        let out = dir.path().join("out");
        let error = resolved.fetch(&client, &cache, &target, &out, "node").await.unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(&format!("fetching {}/fleet/node@{}", registry.address, segment.digest)), "{message}");
        assert!(!out.join("node-initrd.img").exists() && !out.join("node-kernel").exists(), "nothing is written");
        assert!(!cache.contains(&segment.digest, None), "the bad blob is not kept");
    }
}
