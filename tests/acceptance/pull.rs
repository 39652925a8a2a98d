//! The puller against a real registry, below Terraform: concurrent processes sharing one
//! cache, and a bounded parallel pull of many layers.

use std::sync::Arc;

use resin::oci::auth::{DockerConfig, RegistrySettings};
use resin::oci::cache::BlobCache;
use resin::oci::registry::RegistryClient;
use resin::oci::Puller;

use crate::fixtures::{add_to_layout, layer_digests, Image};
use crate::registry::Registry;

fn puller(registry: &Registry, cache: &std::path::Path) -> Puller {
    let settings =
        vec![RegistrySettings { address: registry.address.clone(), username: None, password: None, plain_http: true }];
    Puller::new(
        BlobCache::open(cache).unwrap(),
        Arc::new(RegistryClient::new(settings, DockerConfig::default(), resin::oci::registry::DEFAULT_TIMEOUT)),
        3,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pullers_sharing_a_cache_pull_the_same_image_safely() {
    let registry = Registry::start(None);
    let layouts = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..8u8).map(|i| (format!("f{i}"), vec![i; 300_000])).collect();
    let image = Image::amd64(files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect());
    let digest = add_to_layout(layouts.path(), "v1", &[image]);
    registry.push(layouts.path(), "v1", "fixtures/big", false);

    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/fixtures/big:v1", registry.address).parse().unwrap();
    let platform = "linux/amd64".parse().unwrap();
    let (a, b) = (puller(&registry, cache.path()), puller(&registry, cache.path()));
    let (ra, rb) = tokio::join!(a.resolve(&reference, &platform, None), b.resolve(&reference, &platform, None));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.digest.to_string(), digest);
    let (sa, sb) = tokio::join!(a.pull(&ra), b.pull(&rb));
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    // Between them the layer was downloaded once: the lock serialises the two processes.
    assert_eq!(sa.layers_fetched + sb.layers_fetched, 1);
    for layer in layer_digests(layouts.path(), &digest) {
        let cached = a.cache().blob_path(&layer.parse().unwrap());
        let bytes = std::fs::read(cached).unwrap();
        assert_eq!(resin::oci::digest::sha256(&bytes).to_string(), layer);
    }
    // A warm pull fetches nothing.
    let again = a.pull(&ra).await.unwrap();
    assert_eq!(again.layers_fetched, 0);
}
