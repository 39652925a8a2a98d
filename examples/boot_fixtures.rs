//! Assembles the boot-test packages from extracted Debian packages into an OCI image
//! layout (run by `scripts/boot-fixtures/build.sh`, which downloads and extracts them):
//!
//! * `kernel`: the vmlinuz as `kernel`, and `kernel.tar` holding overlay.ko;
//! * `init`: busybox, runc and its libraries, and the fixture init (`init`, `resin-init`);
//! * `probe`: busybox and the probe script the boot tests run as containers.
//!
//! Each tag is an index of an amd64 and an arm64 image.
//!
//! ```text
//! cargo run --example boot_fixtures -- STAGING LAYOUT
//! ```

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use resin_testkit::fixtures;
use serde_json::json;

/// The fixture scripts, next to build.sh.
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/boot-fixtures");
/// busybox applets the fixture scripts use.
const APPLETS: &[&str] = &[
    "sh",
    "ash",
    "mount",
    "umount",
    "mkdir",
    "cp",
    "cat",
    "echo",
    "ls",
    "awk",
    "tr",
    "sleep",
    "uname",
    "insmod",
    "poweroff",
    "switch_root",
    "basename",
    "grep",
];

/// Copies a tree into `target`, keeping symlinks, merging with what is there.
fn copy_tree(source: &Path, target: &Path) {
    std::fs::create_dir_all(target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let (from, to) = (entry.path(), target.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            if to.symlink_metadata().is_ok() {
                std::fs::remove_file(&to).unwrap();
            }
            symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else if kind.is_dir() {
            copy_tree(&from, &to);
        } else if kind.is_file() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

fn copy_script(name: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(Path::new(SCRIPTS).join(name), to).unwrap();
}

fn busybox_root(root: &Path, staging: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(staging.join("busybox-static/bin/busybox"), root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    for directory in ["proc", "sys", "dev", "run", "tmp", "etc", "sbin", "usr/bin"] {
        std::fs::create_dir_all(root.join(directory)).unwrap();
    }
}

/// The files under `dir` whose paths (relative to `dir`) satisfy `wanted`.
fn find(dir: &Path, wanted: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if wanted(path.strip_prefix(dir).unwrap().to_str().unwrap()) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, staging, layout] = &args[..] else {
        eprintln!("usage: boot_fixtures STAGING LAYOUT");
        std::process::exit(2);
    };
    let (staging, layout) = (Path::new(staging), Path::new(layout));
    let mut tags: Vec<(&str, Vec<serde_json::Value>)> =
        vec![("kernel", vec![]), ("init", vec![]), ("probe", vec![]), ("efi-stub", vec![])];
    for architecture in ["amd64", "arm64"] {
        let staging = staging.join(architecture);
        let kernel_package = std::fs::read_to_string(staging.join("kernel-package")).unwrap();
        let extracted = staging.join(kernel_package.trim());
        let work = tempfile::tempdir().unwrap();

        // kernel: the vmlinuz as `kernel`, overlay.ko in `kernel.tar`.
        let modules = work.path().join("modules");
        for module in
            find(&extracted, &|p| p.starts_with("lib/modules/") && p.contains("/kernel/fs/overlayfs/overlay.ko"))
        {
            let to = modules.join(module.strip_prefix(&extracted).unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&module, &to).unwrap();
        }
        let vmlinuz = find(&extracted.join("boot"), &|p| p.starts_with("vmlinuz-")).remove(0);
        let (kernel, modules_tar) = (std::fs::read(vmlinuz).unwrap(), fixtures::tar_directory(&modules));
        let kernel_layer = fixtures::tar_layer(&[
            fixtures::Entry::File("kernel", &kernel, 0o644),
            fixtures::Entry::File("kernel.tar", &modules_tar, 0o644),
        ]);
        tags[0].1.push(fixtures::put_image(layout, &[kernel_layer], architecture, None, json!({})));

        // init: busybox, runc and its libraries, the fixture init.
        let init = work.path().join("init");
        busybox_root(&init, &staging);
        for package in ["runc", "libseccomp2", "libc6"] {
            copy_tree(&staging.join(package), &init);
        }
        let _ = std::fs::remove_dir_all(init.join("usr/share"));
        copy_script("init", &init.join("init"));
        copy_script("resin-init", &init.join("sbin/resin-init"));
        copy_script("mounts.awk", &init.join("etc/resin/mounts.awk"));
        let layer = fixtures::tar_directory(&init);
        tags[1].1.push(fixtures::put_image(layout, &[layer], architecture, None, json!({ "Cmd": ["/init"] })));

        // probe: busybox and the probe script.
        let probe = work.path().join("probe");
        busybox_root(&probe, &staging);
        copy_script("probe", &probe.join("usr/bin/probe"));
        std::fs::create_dir_all(probe.join("probe")).unwrap();
        let config = json!({ "Entrypoint": ["/usr/bin/probe"], "Cmd": ["PROBE"], "Env": ["PATH=/bin:/usr/bin"] });
        tags[2].1.push(fixtures::put_image(layout, &[fixtures::tar_directory(&probe)], architecture, None, config));

        // efi-stub: systemd's stubs (usr/lib/systemd/boot/efi/linux<arch>.efi.stub).
        let stub = work.path().join("efi-stub");
        let efi = staging.join("systemd-boot-efi/usr/lib/systemd/boot/efi");
        for found in find(&efi, &|p| p.ends_with(".efi.stub")) {
            let to = stub.join(found.strip_prefix(staging.join("systemd-boot-efi")).unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&found, &to).unwrap();
        }
        tags[3].1.push(fixtures::put_image(layout, &[fixtures::tar_directory(&stub)], architecture, None, json!({})));
    }
    for (tag, manifests) in tags {
        let digests: Vec<String> = manifests.iter().map(|m| m["digest"].as_str().unwrap()[..19].to_string()).collect();
        let index = fixtures::put_index(layout, manifests);
        fixtures::set_tag(layout, tag, &index);
        println!("{tag:7} {}", digests.join(", "));
    }
}
