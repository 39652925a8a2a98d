//! Damage after verification: cache blobs flipped, truncated or edited once they were
//! written, and broken blobs in a local layout. Damage is never built into an image: a
//! damaged cache blob is evicted and fetched again, a broken source is a clear error, and
//! the cache holds only blobs that hash to their names afterwards.

use std::path::{Path, PathBuf};

use crate::fixtures::{config_digest, layer_digests};
use crate::image::{applied, artifact_digests, extract_initrd, image_config, out, sha256};
use crate::terraform::Workspace;

pub fn cache_blob(workspace: &Workspace, digest: &str) -> PathBuf {
    workspace.cache_dir.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

/// Every blob in the cache hashes to its name, and no temporary file is left.
pub fn assert_cache_consistent(workspace: &Workspace) {
    for entry in std::fs::read_dir(workspace.cache_dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "temporary file {name} left in the cache");
        assert_eq!(sha256(&entry.path()), name, "cache blob {name} does not hash to its name");
    }
}

fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_cache_blobs_are_fetched_again_and_never_built_in() {
    let (registry, layouts) = crate::basic_registry();
    let workspace = Workspace::new();
    // Without cached segments the next assembly reads every layer again.
    workspace.write_config(&crate::without_segment_cache(&crate::registry_image_config(
        &workspace,
        &registry.address,
        "one",
    )));
    workspace.apply();
    let initrd = workspace.work_dir().join("out/reg-initrd.img");
    let planned = sha256(&initrd);

    let init = registry.manifest_digest("fixtures/init", "v1");
    let init_layer = layer_digests(layouts.path(), &init).remove(0);
    let init_config = config_digest(layouts.path(), &init);
    let kernel_layer = layer_digests(layouts.path(), &registry.manifest_digest("fixtures/kernel", "v1")).remove(0);
    // A byte flipped in a gzip layer (it used to give a file of zeros), the config edited
    // at the same size, the kernel's layer cut short.
    flip_middle_byte(&cache_blob(&workspace, &init_layer));
    let config_path = cache_blob(&workspace, &init_config);
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains("/bin/true"));
    std::fs::write(&config_path, config.replace("/bin/true", "/bin/evil")).unwrap();
    let kernel_path = cache_blob(&workspace, &kernel_layer);
    let kernel_bytes = std::fs::read(&kernel_path).unwrap();
    std::fs::write(&kernel_path, &kernel_bytes[..kernel_bytes.len() - 7]).unwrap();
    // The artifacts are gone, so the next apply assembles again from the damaged cache.
    std::fs::remove_file(&initrd).unwrap();

    let apply = workspace.run_with_env(&[("TF_LOG", "INFO")], &["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    for digest in [&init_layer, &init_config] {
        assert!(
            apply.stderr.lines().any(|l| l.contains("evicting a damaged cache blob") && l.contains(digest.as_str())),
            "{digest} was not reported as evicted:\n{}",
            apply.text()
        );
    }
    assert_eq!(sha256(&initrd), planned, "the rebuilt initrd must be the planned bytes");
    let root = extract_initrd(&initrd);
    assert_eq!(std::fs::read(root.path().join("sbin/init")).unwrap(), b"#!/bin/sh\necho init v1\n");
    assert_cache_consistent(&workspace);
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn a_damaged_layout_blob_is_an_error_naming_image_layer_and_digest() {
    let (workspace, before) = applied();
    let layout = workspace.work_dir().join("layout");
    let sshd = workspace.state()["resin_package.sshd"]["digest"].as_str().unwrap().to_string();
    let layer = layer_digests(&layout, &sshd).remove(0);

    // The cache copy damaged, the layout intact: copied again from the layout. (The
    // segments go, so that the layers are read again.)
    std::fs::remove_dir_all(workspace.cache_dir.join("segments")).unwrap();
    flip_middle_byte(&cache_blob(&workspace, &layer));
    std::fs::remove_file(out(&workspace, "initrd.img")).unwrap();
    workspace.apply();
    assert_eq!(sha256(&out(&workspace, "initrd.img")), before[1]);
    assert_cache_consistent(&workspace);

    // The layout's own blob damaged (and the cache copy gone): nothing to fetch a good
    // copy from, so a clear error, and the previous artifacts stay.
    let layout_blob = layout.join("blobs/sha256").join(layer.strip_prefix("sha256:").unwrap());
    let intact = std::fs::read(&layout_blob).unwrap();
    flip_middle_byte(&layout_blob);
    std::fs::remove_file(cache_blob(&workspace, &layer)).unwrap();
    workspace.write_config(&image_config(&workspace, "").replace("contents = \"MOTD\"", "contents = \"NEW MOTD\""));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    for expected in ["oci-layout:./layout", "layer 1", layer.as_str(), "digest mismatch"] {
        assert!(apply.says(expected), "expected {expected:?}:\n{}", apply.text());
    }
    assert_eq!(artifact_digests(&workspace), before, "the previous artifacts must be untouched");
    assert_cache_consistent(&workspace);

    std::fs::write(&layout_blob, intact).unwrap();
    workspace.apply();
    assert_eq!(workspace.plan().code, 0);
}
