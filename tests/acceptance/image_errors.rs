//! Bad input to resin_image: each is a diagnostic naming the attribute, image, layer or
//! path, and the artifacts already on disk stay as they were.

use serde_json::json;

use crate::fixtures::{add_layered_image, tar_layer, Entry};
use crate::image::{image_config, out, write_fixtures};
use crate::terraform::Workspace;

fn sha256(path: &std::path::Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A workspace with the standard image applied; returns it and the artifact digests.
fn applied() -> (Workspace, Vec<String>) {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    let digests = artifact_digests(&workspace);
    (workspace, digests)
}

fn artifact_digests(workspace: &Workspace) -> Vec<String> {
    ["kernel", "initrd.img", "cmdline"].iter().map(|a| sha256(&out(workspace, a))).collect()
}

/// Adds `resin_package.extra` (image tag `tag`) to the onboot list.
fn with_extra_onboot(workspace: &Workspace, tag: &str) -> String {
    image_config(workspace, "")
        .replace("onboot     = [resin_package.sysctl.spec]", "onboot     = [resin_package.sysctl.spec, resin_package.extra.spec]")
        + &format!("\nresource \"resin_package\" \"extra\" {{\n  name  = \"extra\"\n  image = \"oci-layout:./layout:{tag}\"\n}}\n")
}

#[test]
fn hostile_and_corrupt_layers_fail_naming_image_layer_and_path() {
    let (workspace, before) = applied();
    let layout = workspace.work_dir().join("layout");
    add_layered_image(&layout, "hostile", &[tar_layer(&[Entry::File("ok", b"fine", 0o644), Entry::RawFile(b"../../etc/evil")])], json!({}));
    let good = tar_layer(&[Entry::File("usr/bin/tool", &vec![7u8; 4000], 0o755)]);
    add_layered_image(&layout, "truncated", &[good[..2048].to_vec()], json!({}));
    add_layered_image(&layout, "dangling", &[tar_layer(&[Entry::HardLink("bin/sh", "bin/nowhere")])], json!({}));
    for (tag, messages) in [
        ("hostile", vec!["onboot[1]", "oci-layout:./layout:hostile", "layer 1", "../../etc/evil", "escapes the root"]),
        ("truncated", vec!["onboot[1]", "oci-layout:./layout:truncated", "layer 1"]),
        ("dangling", vec!["onboot[1]", "hard link /bin/sh -> /bin/nowhere: the target does not exist"]),
    ] {
        workspace.write_config(&with_extra_onboot(&workspace, tag));
        let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(apply.code, 1, "{tag}: {}", apply.text());
        for message in messages {
            assert!(apply.says(message), "{tag}: expected {message:?}:\n{}", apply.text());
        }
        assert_eq!(artifact_digests(&workspace), before, "{tag}: the previous artifacts must be untouched");
    }
}

#[test]
fn a_kernel_image_without_its_kernel_file_is_an_error() {
    let (workspace, before) = applied();
    add_layered_image(&workspace.work_dir().join("layout"), "nokernel", &[tar_layer(&[Entry::File("vmlinuz", b"elsewhere", 0o644)])], json!({}));
    workspace.write_config(
        &image_config(&workspace, "")
            .replace("oci-layout:./layout:kernel\"", "oci-layout:./layout:nokernel\"\n  modules_tar = \"\""),
    );
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("oci-layout:./layout:nokernel"), "{}", apply.text());
    assert!(apply.says("has no file /kernel"), "{}", apply.text());
    assert!(apply.says("resin_kernel attribute binary"), "the kernel resource reports it, at binary:\n{}", apply.text());
    assert_eq!(artifact_digests(&workspace), before);
}

#[test]
fn inputs_are_checked_at_plan_time_and_point_at_the_attribute() {
    let (workspace, before) = applied();
    let cases = [
        (
            image_config(&workspace, "\n  file {\n    path   = \"/etc/key\"\n    source = \"./missing.key\"\n  }\n"),
            vec!["Invalid file[2].source", "source = \"./missing.key\"", "missing.key", "/etc/key"],
        ),
        (
            image_config(&workspace, "\n  file {\n    path     = \"/etc/both\"\n    contents = \"x\"\n    symlink  = \"/y\"\n  }\n"),
            vec!["Conflicting file settings", "sets contents and symlink"],
        ),
        (
            image_config(&workspace, "\n  file {\n    path = \"/../../outside\"\n    contents = \"x\"\n  }\n"),
            vec!["Invalid file[2].path", "escapes the root"],
        ),
        (
            image_config(&workspace, "").replace("services   = [resin_package.sshd.spec]", "services   = [resin_package.sshd.spec, resin_package.sshd.spec]"),
            vec!["Invalid services[1]", "two services are named \"sshd\""],
        ),
        (
            image_config(&workspace, "").replace("kernel     = resin_kernel.k.spec", "kernel     = resin_package.init.spec"),
            vec!["Invalid kernel", "not a resin_kernel spec"],
        ),
    ];
    for (config, messages) in cases {
        workspace.write_config(&config);
        let plan = workspace.plan();
        assert_eq!(plan.code, 1, "{}", plan.text());
        for message in messages {
            assert!(plan.says(message), "expected {message:?}:\n{}", plan.text());
        }
    }
    // An optional source that does not exist is skipped.
    workspace.write_config(&image_config(&workspace, "\n  file {\n    path     = \"/etc/key\"\n    source   = \"./missing.key\"\n    optional = true\n  }\n"));
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    assert!(!plan.says("content_hash"), "an absent optional source changes no content:\n{}", plan.text());
    workspace.apply();
    assert_eq!(artifact_digests(&workspace), before);
}

#[test]
fn file_capabilities_are_a_warning_naming_the_file() {
    let (workspace, _) = applied();
    add_layered_image(
        &workspace.work_dir().join("layout"),
        "ping",
        &[tar_layer(&[Entry::FileWithXattr("bin/ping", b"ping binary", "security.capability")])],
        json!({}),
    );
    workspace.write_config(&with_extra_onboot(&workspace, "ping"));
    let apply = workspace.apply();
    assert!(apply.says("Warning: Extended attributes dropped"), "{}", apply.text());
    assert!(apply.says("/bin/ping"), "{}", apply.text());
    assert!(apply.says("security.capability"), "{}", apply.text());
}
