//! The golden image assembled by the library alone, without Terraform: the fixtures
//! write an OCI layout, the puller resolves and pulls it into a fresh cache, and
//! [`build`] must write exactly the golden initrd (the same bytes Terraform gets in
//! `tests/acceptance/golden.rs`), twice in a row.

use std::path::Path;
use std::sync::Arc;

use resin_testkit::fixtures;

use super::{
    build, compose, FileKind, FileSpec, ImageDefaults, ImageInputs, KernelSpec, PackageSpec, SegmentCache, SPEC_VERSION,
};
use crate::container::ContainerOptions;
use crate::oci::auth::DockerConfig;
use crate::oci::cache::BlobCache;
use crate::oci::platform::Platform;
use crate::oci::reference::{ImageReference, PinnedImage};
use crate::oci::registry::{RegistryClient, DEFAULT_TIMEOUT};
use crate::oci::Puller;

fn file(path: &str, contents: &[u8], mode: Option<u32>, uid: Option<&str>, sensitive: bool) -> FileSpec {
    FileSpec {
        path: path.into(),
        kind: FileKind::Contents(contents.to_vec()),
        mode,
        uid: uid.map(Into::into),
        gid: None,
        optional: false,
        sensitive,
    }
}

/// The inputs `image_config` of the acceptance tests gives, resolved from `layout`.
async fn golden_inputs(puller: &Puller, layout: &Path) -> ImageInputs {
    let platform: Platform = "linux/amd64".parse().unwrap();
    let resolve = |tag: &'static str| {
        let platform = platform.clone();
        async move {
            let reference: ImageReference = format!("oci-layout:{}:{tag}", layout.display()).parse().unwrap();
            let resolved = puller.resolve(&reference, &platform, None).await.unwrap();
            (PinnedImage::new(&reference, resolved.digest.clone()), ImageDefaults::of(&resolved.config))
        }
    };
    let package = |(image, defaults): (PinnedImage, ImageDefaults), name: &str, options| PackageSpec {
        spec_version: SPEC_VERSION,
        image,
        index: None,
        platform: platform.clone(),
        name: name.into(),
        options,
        defaults,
    };
    let (kernel, _) = resolve("kernel").await;
    ImageInputs {
        compression: super::Compression::DEFAULT,
        kernel: KernelSpec {
            spec_version: SPEC_VERSION,
            image: kernel,
            index: None,
            platform: platform.clone(),
            cmdline: "console=ttyS0 panic=-1".into(),
            binary: "kernel".into(),
            modules_tar: "kernel.tar".into(),
            ucode: None,
        },
        init: vec![package(resolve("init").await, "init", ContainerOptions::default())],
        onboot: vec![package(
            resolve("sysctl").await,
            "sysctl",
            ContainerOptions { capabilities: Some(vec!["CAP_SYS_ADMIN".into()]), ..Default::default() },
        )],
        onshutdown: vec![],
        services: vec![package(
            resolve("sshd").await,
            "sshd",
            ContainerOptions {
                binds: Some(vec!["/etc/ssh:/etc/ssh".into()]),
                uid: Some("sshd".into()),
                ..Default::default()
            },
        )],
        files: vec![
            file("/etc/motd", b"MOTD", None, None, false),
            file("/etc/secret", b"s3cret", Some(0o600), Some("sshd"), true),
        ],
    }
}

/// What the golden image is assembled with, in `work`: the fixtures' layout, a puller and
/// a segment cache on a fresh cache, a runtime, and the composition.
struct Golden {
    puller: Puller,
    segments: SegmentCache,
    runtime: tokio::runtime::Runtime,
    composition: super::Composition,
}

impl Golden {
    fn new(work: &Path) -> Golden {
        let layout = work.join("layout");
        fixtures::write_fixtures(&layout);
        let puller = Puller::new(
            BlobCache::open(&work.join("cache")).unwrap(),
            Arc::new(RegistryClient::new(vec![], DockerConfig::default(), DEFAULT_TIMEOUT)),
            4,
        );
        let segments = SegmentCache::open(&work.join("cache"), 1 << 30).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let inputs = runtime.block_on(golden_inputs(&puller, &layout));
        let composition = compose(inputs).unwrap();
        Golden { puller, segments, runtime, composition }
    }

    /// Assembles the golden image as `test` in `out`.
    fn build(&self, out: &Path) -> super::Artifacts {
        std::fs::create_dir_all(out).unwrap();
        let build = build(self.composition.clone(), &self.puller, &self.segments, out.to_path_buf(), "test".into());
        self.runtime.block_on(build).unwrap()
    }

    /// The composition's packages (init images, then the bundles'), resolved and pulled.
    fn pulled_packages(&self) -> Vec<crate::oci::ResolvedImage> {
        let packages = self.composition.inputs.init.iter().chain(self.composition.bundles.iter().map(|b| &b.package));
        let pulled = packages.map(|package| async {
            let resolved = self
                .puller
                .resolve(package.image.reference(), &package.platform, Some(package.image.digest()))
                .await
                .unwrap();
            self.puller.pull(&resolved).await.unwrap();
            resolved
        });
        pulled.map(|pulling| self.runtime.block_on(pulling)).collect()
    }
}

/// The golden initrd's bytes, assembled by the library in `work` (for the pinned bytes of
/// the boot formats made from it).
pub(crate) fn golden_initrd(work: &Path) -> Vec<u8> {
    let artifacts = Golden::new(work).build(&work.join("out"));
    let initrd = std::fs::read(&artifacts.files[&super::ArtifactKind::Initrd].path).unwrap();
    assert_eq!(crate::oci::digest::sha256(&initrd).to_string(), format!("sha256:{}", fixtures::GOLDEN_INITRD));
    initrd
}

#[test]
fn the_library_assembles_the_golden_image() {
    let work = tempfile::tempdir().unwrap();
    let golden = Golden::new(work.path());
    for round in ["first", "second"] {
        let out = work.path().join(format!("out-{round}"));
        let artifacts = golden.build(&out);
        assert_eq!(
            artifacts.files[&super::ArtifactKind::Initrd].sha256,
            format!("sha256:{}", fixtures::GOLDEN_INITRD),
            "the golden initrd changed ({round} build).\n{}",
            fixtures::GOLDEN_ADVICE
        );
        assert_eq!(
            artifacts.files[&super::ArtifactKind::Initrd].sha256,
            crate::oci::digest::sha256(&std::fs::read(&artifacts.files[&super::ArtifactKind::Initrd].path).unwrap())
                .to_string()
        );
        assert_eq!(std::fs::read(&artifacts.files[&super::ArtifactKind::Kernel].path).unwrap(), fixtures::KERNEL_BYTES);
        assert_eq!(
            std::fs::read(&artifacts.files[&super::ArtifactKind::Cmdline].path).unwrap(),
            b"console=ttyS0 panic=-1"
        );
        assert!(artifacts.warnings.is_empty(), "{:?}", artifacts.warnings);
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(super::TEMPORARY_PREFIX))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}

/// Waits (a minute at most) until no early read is running.
fn reads_ended(early: &super::EarlyReads) {
    let started = std::time::Instant::now();
    while early.finished() < early.kept() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Images read early by package applies ([`super::EarlyReads`]) give the assembly the
/// same bytes, and it takes every one of them instead of reading the image again.
#[test]
fn images_read_early_give_the_golden_bytes_and_are_all_taken() {
    let work = tempfile::tempdir().unwrap();
    let golden = Golden::new(work.path());
    let images = golden.pulled_packages();
    assert!(images.len() >= 3);
    for resolved in &images {
        golden.segments.early_reads().start(resolved, golden.puller.cache());
    }
    let early = golden.segments.early_reads();
    reads_ended(early);
    let read = early.kept();
    assert!(read >= 3 && early.finished() == read, "every early read ended well: {early:?}");
    let artifacts = golden.build(&work.path().join("out"));
    assert_eq!(
        artifacts.files[&super::ArtifactKind::Initrd].sha256,
        format!("sha256:{}", fixtures::GOLDEN_INITRD),
        "{}",
        fixtures::GOLDEN_ADVICE
    );
    assert_eq!(early.kept(), 0, "every image read early was taken, none read again");
}

/// Once the results kept hold their data limit, the next early read ends without reading
/// (the assembly reads that image); taking a result makes room again.
#[test]
fn early_reads_stop_once_their_results_hold_enough_data() {
    let work = tempfile::tempdir().unwrap();
    let golden = Golden::new(work.path());
    let resolved = golden.pulled_packages();
    let early = std::sync::Arc::new(super::EarlyReads::with_data_limit(1));
    let cache = golden.puller.cache();
    early.start(&resolved[0], cache);
    reads_ended(&early);
    assert_eq!((early.kept(), early.finished()), (1, 1), "the first image was read: {early:?}");
    early.start(&resolved[1], cache);
    reads_ended(&early);
    assert_eq!(early.kept(), 1, "the second image was not read, its data would go past the limit: {early:?}");
    assert!(early.take(&resolved[1]).is_none());
    let (tree, spool, _) = early.take(&resolved[0]).expect("the first image's result");
    assert!(spool.data_bytes() > 0 && !tree.is_empty());
    early.start(&resolved[1], cache);
    reads_ended(&early);
    assert_eq!((early.kept(), early.finished()), (1, 1), "with the first taken, the second was read: {early:?}");
    assert!(early.take(&resolved[1]).is_some());
}

/// The golden packages, each once, with the images they pin.
fn distinct(resolved: Vec<crate::oci::ResolvedImage>) -> Vec<(PinnedImage, crate::oci::ResolvedImage)> {
    let by_image: std::collections::BTreeMap<PinnedImage, crate::oci::ResolvedImage> =
        resolved.into_iter().map(|r| (PinnedImage::new(&r.reference, r.digest.clone()), r)).collect();
    by_image.into_iter().collect()
}

/// Reading ahead goes on while small results wait for their segments: one worker reads
/// every image queued, each result is taken once.
#[test]
fn reading_ahead_goes_on_while_small_results_wait() {
    let work = tempfile::tempdir().unwrap();
    let golden = Golden::new(work.path());
    let images = distinct(golden.pulled_packages());
    assert!(images.len() >= 3, "{} images", images.len());
    let early = super::EarlyReads::default();
    std::thread::scope(|scope| {
        let mut prefetch = super::prefetch::Prefetch::new(scope, golden.puller.cache(), &early, 1);
        for (order, (image, resolved)) in images.iter().enumerate() {
            prefetch.start(order, image, resolved);
        }
        assert_eq!(prefetch.settled(), (images.len(), 0), "every image was read; no result held the worker");
        for (image, _) in &images {
            let (tree, _, _) = prefetch.take(image).expect("read ahead").unwrap();
            assert!(!tree.is_empty());
            assert!(prefetch.take(image).is_none(), "a result is taken once");
        }
    });
}

/// A result that is not small holds its worker until its segment takes it; an image
/// still queued when its segment comes is left to that segment; a forgotten result is
/// gone, and frees its worker.
#[test]
fn a_result_that_is_not_small_holds_its_worker_until_taken() {
    let work = tempfile::tempdir().unwrap();
    let golden = Golden::new(work.path());
    let images = distinct(golden.pulled_packages());
    let [(first, _), (second, _), (third, third_resolved), ..] = &images[..] else { panic!("{} images", images.len()) };
    let early = super::EarlyReads::default();
    std::thread::scope(|scope| {
        let mut prefetch = super::prefetch::Prefetch::with_small(scope, golden.puller.cache(), &early, 1, (0, 0));
        for (order, (image, resolved)) in images[..3].iter().enumerate() {
            prefetch.start(order, image, resolved);
        }
        assert_eq!(prefetch.settled(), (1, 2), "the first result holds the one worker");
        assert!(prefetch.take(third).is_none(), "the third image, still queued, is left to its segment");
        assert!(prefetch.take(first).expect("the first image was read").is_ok());
        assert_eq!(prefetch.settled(), (1, 0), "taking the first let the second be read");
        prefetch.forget(second);
        assert!(prefetch.take(second).is_none(), "a forgotten result is gone");
        prefetch.start(3, third, third_resolved);
        assert_eq!(prefetch.settled(), (1, 0), "forgetting the second freed the worker for the third");
        assert!(prefetch.take(third).expect("the third image was read").is_ok());
    });
}
