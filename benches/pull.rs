//! `make bench`: resolving and pulling packages from a real registry on loopback, with a
//! cold and a warm cache. Prints wall time, throughput and peak RSS; asserts nothing about
//! speed (numbers vary by machine), only that the pulls succeed.

use resin_testkit::fixtures;
use resin_testkit::measure;
use resin_testkit::registry;

use std::sync::Arc;
use std::time::Instant;

use resin::oci::auth::{DockerConfig, RegistrySettings};
use resin::oci::cache::BlobCache;
use resin::oci::platform::Platform;
use resin::oci::reference::ImageReference;
use resin::oci::registry::RegistryClient;
use resin::oci::Puller;

const PACKAGES: usize = 8;
const PACKAGE_BYTES: usize = 16 << 20;

async fn pull_all(puller: &Puller, references: &[ImageReference], platform: &Platform) -> (f64, f64, u64) {
    let started = Instant::now();
    let mut resolved = Vec::new();
    for reference in references {
        resolved.push(puller.resolve(reference, platform, None).await.expect("resolve"));
    }
    let resolve_seconds = started.elapsed().as_secs_f64();
    let mut fetched = 0;
    for image in &resolved {
        fetched += puller.pull(image).await.expect("pull").bytes_fetched;
    }
    (resolve_seconds, started.elapsed().as_secs_f64(), fetched)
}

fn main() {
    resin::oci::registry::install_crypto_provider();
    let registry = registry::Registry::start(None);
    let layouts = tempfile::tempdir().unwrap();
    let mut references = Vec::new();
    for index in 0..PACKAGES {
        let tag = format!("p{index}");
        let content = fixtures::noise(index as u64, PACKAGE_BYTES);
        fixtures::add_to_layout(layouts.path(), &tag, &[fixtures::Image::amd64(vec![("usr/lib/blob", content)])]);
        registry.push(layouts.path(), &tag, "bench/package", false);
        references.push(format!("{}/bench/package:{tag}", registry.address).parse::<ImageReference>().unwrap());
    }
    let cache = tempfile::tempdir().unwrap();
    let settings =
        vec![RegistrySettings { address: registry.address.clone(), username: None, password: None, plain_http: true }];
    let puller = Puller::new(
        BlobCache::open(cache.path()).unwrap(),
        Arc::new(RegistryClient::new(settings, DockerConfig::default(), resin::oci::registry::DEFAULT_TIMEOUT)),
        4,
    );
    let platform: Platform = "linux/amd64".parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mib = (PACKAGES * PACKAGE_BYTES) as f64 / f64::from(1 << 20);
    println!("pull benchmark: {PACKAGES} packages, {mib:.0} MiB of gzip'd layers, registry on loopback");
    for (label, _) in [("cold cache", ()), ("warm cache", ())] {
        let cpu_before = measure::cpu_seconds();
        let (resolve, total, fetched) = runtime.block_on(pull_all(&puller, &references, &platform));
        let cpu = measure::cpu_seconds() - cpu_before;
        println!(
            "{label:10}: resolve {:7.1} ms, resolve+pull {:7.1} ms, cpu {:5.2} s, fetched {:6.1} MiB, {:7.1} MiB/s, peak RSS {} MiB",
            resolve * 1000.0,
            total * 1000.0,
            cpu,
            fetched as f64 / f64::from(1 << 20),
            fetched as f64 / f64::from(1 << 20) / total,
            measure::peak_rss_kib() / 1024
        );
    }
}
