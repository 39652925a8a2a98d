//! The initrd's segments, planned from the composition alone (no layer is read): what
//! each segment holds, in order, and the bundle scaffolding written before a bundle's
//! files. Writing them is [`super::initrd`]'s job.
//!
//! Order (LinuxKit's): the kernel's modules tarball, each init image, the merged apk
//! database (kept only when two or more init images turn out to have one), each bundle
//! (onboot, onshutdown, services), then the `file` entries.

use super::compose::{Bundle, Composition};
use super::spec::PackageSpec;

/// Where an init image keeps its apk database.
pub const APK_DATABASE: &[u8] = b"lib/apk/db/installed";

/// What one segment holds.
#[derive(Debug)]
pub enum Planned<'c> {
    /// The kernel image's modules tarball, at `/`.
    KernelModules,
    /// `init[index]`, flattened at `/`.
    Init { index: usize, package: &'c PackageSpec },
    /// The init images' apk databases concatenated (LinuxKit's merge), when two or more
    /// have one: known only once the init images are flattened.
    ApkDatabases,
    /// A bundle: its scaffolding, then its image's files under `prefix` (when it is the
    /// bundle that carries them).
    Bundle { bundle: &'c Bundle, prefix: Vec<u8>, scaffold: Scaffold<'c> },
    /// The `file` entries.
    Files,
}

/// Written before a bundle's image files: its directories (each ancestor first) and its
/// `config.json` and `runtime.json`.
#[derive(Debug)]
pub struct Scaffold<'c> {
    pub directories: Vec<Vec<u8>>,
    pub files: Vec<(Vec<u8>, &'c [u8])>,
}

/// The segments of `composition`'s initrd, in order.
pub fn plan(composition: &Composition) -> Vec<Planned<'_>> {
    let inputs = &composition.inputs;
    let mut segments = Vec::new();
    if !inputs.kernel.modules_tar.is_empty() {
        segments.push(Planned::KernelModules);
    }
    segments.extend(inputs.init.iter().enumerate().map(|(index, package)| Planned::Init { index, package }));
    if inputs.init.len() >= 2 {
        segments.push(Planned::ApkDatabases);
    }
    for bundle in &composition.bundles {
        segments.push(Planned::Bundle {
            bundle,
            prefix: bundle.image_root.clone().into_bytes(),
            scaffold: scaffold(bundle),
        });
    }
    segments.push(Planned::Files);
    segments
}

fn scaffold(bundle: &Bundle) -> Scaffold<'_> {
    let mut directories = Vec::new();
    let mut current = String::new();
    for component in bundle.path.split('/') {
        current = if current.is_empty() { component.to_string() } else { format!("{current}/{component}") };
        directories.push(current.clone().into_bytes());
    }
    directories.push(format!("{}/rootfs", bundle.path).into_bytes());
    if !bundle.readonly {
        directories.push(format!("{}/tmp", bundle.path).into_bytes());
        if bundle.extracts_image {
            directories.push(format!("{}/lower", bundle.path).into_bytes());
        }
    }
    let files = vec![
        (format!("{}/config.json", bundle.path).into_bytes(), &bundle.config_json[..]),
        (format!("{}/runtime.json", bundle.path).into_bytes(), &bundle.runtime_json[..]),
    ];
    Scaffold { directories, files }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::compose::{compose, ImageInputs};
    use crate::assemble::spec::{ImageDefaults, KernelSpec, SPEC_VERSION};
    use crate::container::ContainerOptions;

    const A: &str = "docker.io/library/a@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "docker.io/library/b@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn package(image: &str, name: &str, readonly: bool) -> PackageSpec {
        PackageSpec {
            spec_version: SPEC_VERSION,
            image: image.parse().unwrap(),
            platform: "linux/amd64".parse().unwrap(),
            name: name.into(),
            options: ContainerOptions { readonly: readonly.then_some(true), ..Default::default() },
            defaults: ImageDefaults::default(),
        }
    }

    fn composition(modules_tar: &str, init: Vec<PackageSpec>) -> Composition {
        compose(ImageInputs {
            kernel: KernelSpec {
                spec_version: SPEC_VERSION,
                image: A.parse().unwrap(),
                platform: "linux/amd64".parse().unwrap(),
                cmdline: String::new(),
                binary: "kernel".into(),
                modules_tar: modules_tar.into(),
                ucode: None,
            },
            init,
            onboot: vec![package(A, "ro", true), package(A, "rw", false)],
            onshutdown: vec![],
            services: vec![package(B, "svc", false)],
            files: vec![],
        })
        .unwrap()
    }

    fn strings(bytes: &[Vec<u8>]) -> Vec<String> {
        bytes.iter().map(|b| String::from_utf8(b.clone()).unwrap()).collect()
    }

    #[test]
    fn segments_follow_linuxkits_order_with_scaffolding_before_each_bundle() {
        let composition = composition("kernel.tar", vec![package(A, "i0", false), package(B, "i1", false)]);
        let planned = plan(&composition);
        let kinds: Vec<String> = planned
            .iter()
            .map(|p| match p {
                Planned::KernelModules => "modules".into(),
                Planned::Init { index, package } => format!("init[{index}] {}", package.name),
                Planned::ApkDatabases => "apk".into(),
                Planned::Bundle { bundle, prefix, .. } => {
                    format!("{} -> {}", bundle.path, String::from_utf8_lossy(prefix))
                }
                Planned::Files => "files".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "modules",
                "init[0] i0",
                "init[1] i1",
                "apk",
                "containers/onboot/000-ro -> containers/onboot/000-ro/rootfs",
                "containers/onboot/001-rw -> containers/onboot/000-ro/rootfs",
                "containers/services/svc -> containers/services/svc/lower",
                "files",
            ]
        );
        let scaffold = |index: usize| match &planned[index] {
            Planned::Bundle { scaffold, .. } => scaffold,
            other => panic!("a bundle expected, not {other:?}"),
        };
        // Read-only: no tmp, and its rootfs holds the image.
        assert_eq!(
            strings(&scaffold(4).directories),
            ["containers", "containers/onboot", "containers/onboot/000-ro", "containers/onboot/000-ro/rootfs"]
        );
        // Writable, sharing the first bundle's files: tmp but no lower of its own.
        assert_eq!(
            strings(&scaffold(5).directories)[3..],
            ["containers/onboot/001-rw/rootfs", "containers/onboot/001-rw/tmp"]
        );
        // Writable and carrying its image: tmp and lower.
        assert_eq!(
            strings(&scaffold(6).directories)[3..],
            ["containers/services/svc/rootfs", "containers/services/svc/tmp", "containers/services/svc/lower"]
        );
        let files: Vec<String> =
            scaffold(6).files.iter().map(|(path, _)| String::from_utf8(path.clone()).unwrap()).collect();
        assert_eq!(files, ["containers/services/svc/config.json", "containers/services/svc/runtime.json"]);
        assert_eq!(scaffold(6).files[0].1, &composition.bundles[2].config_json[..]);
    }

    #[test]
    fn no_modules_segment_without_a_tarball_and_no_apk_merge_for_one_init_image() {
        let composition = composition("", vec![package(A, "i0", false)]);
        let planned = plan(&composition);
        assert!(matches!(planned[0], Planned::Init { index: 0, .. }));
        assert!(!planned.iter().any(|p| matches!(p, Planned::KernelModules | Planned::ApkDatabases)));
        assert!(matches!(planned.last(), Some(Planned::Files)));
    }
}
