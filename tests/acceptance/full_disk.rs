//! A full disk: the cache or the output directory on a tiny tmpfs (the tests run as root,
//! in CI too). The error names the path, nothing partial stays behind, and artifacts
//! already written stay intact.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::fixtures::{add_layered_image, noise, tar_layer, Entry};
use crate::image::{image_config, out, write_fixtures};
use crate::terraform::Workspace;

/// A tmpfs of `size` mounted at `path`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root (the tests run as root)");
        SmallDisk(path.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_full_cache_disk_fails_cleanly() {
    let workspace = Workspace::new();
    let layout = workspace.work_dir().join("layout");
    let big = noise(1, 3 << 20);
    add_layered_image(&layout, "big", &[tar_layer(&[Entry::File("blob", &big, 0o644)])], json!({}));
    let _disk = SmallDisk::mount(&workspace.cache_dir, "1m");
    workspace.write_config(&format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n}}\nresource \"resin_package\" \"big\" {{\n  image = \"oci-layout:./layout:big\"\n}}\n",
        workspace.cache_dir.display()
    ));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("No space left on device"), "{}", apply.text());
    assert!(apply.says("oci-layout:./layout:big"), "{}", apply.text());
    assert!(apply.says(&workspace.cache_dir.display().to_string()), "the error names the path:\n{}", apply.text());
    let blobs = workspace.cache_dir.join("blobs/sha256");
    assert!(entries(&blobs).iter().all(|n| !n.starts_with('.')), "temporary files left: {:?}", entries(&blobs));
}

#[test]
fn a_full_output_disk_keeps_the_previous_artifacts() {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    let _disk = SmallDisk::mount(&workspace.work_dir().join("out"), "256k");
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    let before: Vec<Vec<u8>> =
        ["kernel", "initrd.img", "cmdline"].iter().map(|a| std::fs::read(out(&workspace, a)).unwrap()).collect();

    // A file too big for the disk that is left.
    let big = workspace.work_dir().join("big.bin");
    std::fs::write(&big, noise(2, 400 << 10)).unwrap();
    workspace.write_config(&image_config(
        &workspace,
        "\n  file {\n    path   = \"/big.bin\"\n    source = \"./big.bin\"\n  }\n",
    ));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("No space left on device"), "{}", apply.text());
    assert!(
        apply.says("writing initrd segment") || apply.says("writing the initrd to"),
        "the error says what was being written:\n{}",
        apply.text()
    );
    let after: Vec<Vec<u8>> =
        ["kernel", "initrd.img", "cmdline"].iter().map(|a| std::fs::read(out(&workspace, a)).unwrap()).collect();
    assert!(before == after, "the previous artifacts must be intact");
    let out_dir = workspace.work_dir().join("out");
    assert!(entries(&out_dir).iter().all(|n| !n.starts_with('.')), "temporary files left: {:?}", entries(&out_dir));
}
