//! `make bench`, assembly: a realistic image (about 15 packages holding a few hundred MB
//! of real binaries from this machine's /usr), timed end to end in a child process
//! (wall, CPU, peak RSS, throughput); the same pipeline at 10 MiB and 1 GiB to show that
//! peak memory does not grow with image size; and `terraform plan` with a warm cache.
//! Prints numbers; asserts nothing about speed.

use resin_testkit::fixtures;
use resin_testkit::measure;
use resin_testkit::terraform;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use resin::assemble::{
    build, compose, ImageDefaults, ImageInputs, KernelSpec, PackageSpec, SegmentCache, SPEC_VERSION,
};
use resin::container::ContainerOptions;
use resin::oci::auth::DockerConfig;
use resin::oci::cache::BlobCache;
use resin::oci::platform::Platform;
use resin::oci::reference::{ImageReference, PinnedImage};
use resin::oci::registry::RegistryClient;
use resin::oci::Puller;
use serde_json::json;

use fixtures::{add_layered_image, tar_layer, Entry};

const PACKAGES: usize = 15;

/// Semi-compressible synthetic content (for the memory scaling runs): noise whose every
/// other 4-byte group keeps only its low nibbles.
fn synthetic(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = fixtures::noise(seed, len);
    for (index, byte) in bytes.iter_mut().enumerate() {
        if index % 8 >= 4 {
            *byte &= 0x0f;
        }
    }
    bytes
}

/// Writes a kernel and `PACKAGES` packages into a layout; returns the uncompressed bytes.
fn write_layout(layout: &Path, content: &dyn Fn(usize) -> Vec<(String, Vec<u8>)>) -> u64 {
    add_layered_image(
        layout,
        "kernel",
        &[tar_layer(&[Entry::File("kernel", &synthetic(99, 8 << 20), 0o644)])],
        json!({}),
    );
    let mut total = 0;
    for index in 0..PACKAGES {
        let files = content(index);
        total += files.iter().map(|(_, c)| c.len() as u64).sum::<u64>();
        let entries: Vec<Entry> = files.iter().map(|(p, c)| Entry::File(p, c, 0o755)).collect();
        add_layered_image(layout, &format!("p{index}"), &[tar_layer(&entries)], json!({ "Cmd": ["/bin/true"] }));
    }
    total
}

/// The child: assembles the layout's image once and prints one line of numbers.
fn child(layout: &Path) {
    resin::oci::registry::install_crypto_provider();
    let work = tempfile::tempdir().unwrap();
    let puller = Puller::new(
        BlobCache::open(&work.path().join("cache")).unwrap(),
        Arc::new(RegistryClient::new(vec![], DockerConfig::default(), resin::oci::registry::DEFAULT_TIMEOUT)),
        4,
    );
    let platform: Platform = "linux/amd64".parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let cpu_started = measure::cpu_seconds();
    let (pulled, built) = runtime.block_on(async {
        let resolve = |tag: String| {
            let puller = &puller;
            let platform = &platform;
            async move {
                let reference: ImageReference = format!("oci-layout:{}:{tag}", layout.display()).parse().unwrap();
                let resolved = puller.resolve(&reference, platform, None).await.unwrap();
                (PinnedImage::new(&reference, resolved.digest.clone()), resolved)
            }
        };
        let (kernel, _) = resolve("kernel".into()).await;
        let mut packages = Vec::new();
        for index in 0..PACKAGES {
            let (image, resolved) = resolve(format!("p{index}")).await;
            packages.push(PackageSpec {
                spec_version: SPEC_VERSION,
                image,
                index: None,
                platform: platform.clone(),
                name: format!("p{index}"),
                options: ContainerOptions::default(),
                defaults: ImageDefaults::of(&resolved.config),
            });
        }
        let kernel = KernelSpec {
            spec_version: SPEC_VERSION,
            image: kernel,
            index: None,
            platform: platform.clone(),
            cmdline: "console=ttyS0".into(),
            binary: "kernel".into(),
            modules_tar: "".into(),
            ucode: None,
        };
        let (init, services) = packages.split_at(1);
        let inputs = ImageInputs {
            compression: resin::assemble::Compression::DEFAULT,
            kernel,
            init: init.to_vec(),
            onboot: vec![],
            onshutdown: vec![],
            services: services.to_vec(),
            files: vec![],
        };
        let composition = compose(inputs).map_err(|e| format!("{e:?}")).unwrap();
        let pulled = started.elapsed().as_secs_f64();
        let segments = SegmentCache::open(&work.path().join("cache"), 1 << 40).unwrap();
        let artifacts =
            build(composition, &puller, &segments, work.path().to_path_buf(), "bench".into()).await.unwrap();
        (pulled, artifacts)
    });
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{{\"wall\": {wall:.3}, \"cpu\": {:.3}, \"pull_and_compose\": {pulled:.3}, \"peak_rss_kib\": {}, \"initrd_bytes\": {}}}",
        measure::cpu_seconds() - cpu_started,
        measure::peak_rss_kib(),
        built.files[&resin::assemble::ArtifactKind::Initrd].size
    );
}

fn run_child(layout: &Path) -> serde_json::Value {
    let output =
        std::process::Command::new(std::env::current_exe().unwrap()).env("RESIN_BENCH_CHILD", layout).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

fn report(label: &str, uncompressed: u64, numbers: &serde_json::Value) {
    let mib = uncompressed as f64 / f64::from(1 << 20);
    let wall = numbers["wall"].as_f64().unwrap();
    println!(
        "{label:10}: {mib:7.1} MiB in {PACKAGES} packages -> initrd {:7.1} MiB; wall {wall:6.2} s (resolve+compose {:5.2} s), cpu {:6.2} s, peak RSS {:4} MiB, {:6.1} MiB/s",
        numbers["initrd_bytes"].as_f64().unwrap() / f64::from(1 << 20),
        numbers["pull_and_compose"].as_f64().unwrap(),
        numbers["cpu"].as_f64().unwrap(),
        numbers["peak_rss_kib"].as_u64().unwrap() / 1024,
        mib / wall
    );
}

fn main() {
    if let Some(layout) = std::env::var_os("RESIN_BENCH_CHILD") {
        child(Path::new(&layout));
        return;
    }
    let scratch = tempfile::tempdir().unwrap();

    let binaries = measure::real_files(64 << 10..16 << 20, 300 << 20);
    let per_package = binaries.len().div_ceil(PACKAGES);
    let realistic = scratch.path().join("realistic");
    let total = write_layout(&realistic, &|index| {
        binaries
            .iter()
            .skip(index * per_package)
            .take(per_package)
            .map(|p| (p.strip_prefix("/").unwrap().display().to_string(), std::fs::read(p).unwrap()))
            .collect()
    });
    println!("assembly benchmark ({} real files from /usr)", binaries.len());
    report("realistic", total, &run_child(&realistic));

    for (label, bytes) in [("10 MiB", 10u64 << 20), ("1 GiB", 1 << 30)] {
        let layout = scratch.path().join(label.replace(' ', ""));
        let per = usize::try_from(bytes / PACKAGES as u64).unwrap();
        let total = write_layout(&layout, &|index| {
            // 4 MiB files, so no single buffer is the size of a package.
            (0..per.div_ceil(4 << 20))
                .map(|f| {
                    (format!("data/f{f}"), synthetic((index * 1000 + f) as u64, (4 << 20).min(per - f * (4 << 20))))
                })
                .collect()
        });
        report(label, total, &run_child(&layout));
        std::fs::remove_dir_all(&layout).unwrap();
    }

    // terraform plan with a warm cache, on the realistic image.
    let workspace = terraform::Workspace::new();
    let mut config = format!("provider \"resin\" {{\n  cache_dir = \"{}\"\n}}\nresource \"resin_kernel\" \"k\" {{\n  image = \"oci-layout:{}:kernel\"\n  modules_tar = \"\"\n}}\n", workspace.cache_dir.display(), realistic.display());
    let mut specs = Vec::new();
    for index in 0..PACKAGES {
        config.push_str(&format!("resource \"resin_package\" \"p{index}\" {{\n  name  = \"p{index}\"\n  image = \"oci-layout:{}:p{index}\"\n}}\n", realistic.display()));
        specs.push(format!("resin_package.p{index}.spec"));
    }
    config.push_str(&format!(
        "resource \"resin_image\" \"bench\" {{\n  name = \"bench\"\n  output_dir = \"./out\"\n  kernel = resin_kernel.k.spec\n  init = [{}]\n  services = [{}]\n}}\n",
        specs[0],
        specs[1..].join(", ")
    ));
    workspace.write_config(&config);
    let started = Instant::now();
    workspace.apply();
    let apply = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let plan = workspace.plan();
    let plan_seconds = started.elapsed().as_secs_f64();
    assert_eq!(plan.code, 0, "{}", plan.text());
    println!(
        "terraform : apply (cold cache, {} resources) {apply:.2} s; plan with a warm cache {plan_seconds:.2} s",
        PACKAGES + 2
    );
}
