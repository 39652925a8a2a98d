//! Saved plans whose world changed before `terraform apply saved.tfplan`, and updates that
//! fail: what was planned is written or nothing is, and no resource leaves the state.

use crate::fixtures::{add_to_layout, config_digest, layer_digests, Image};
use crate::image::{artifact_digests, extract_initrd, image_config, out, sha256, write_fixtures};
use crate::terraform::Workspace;
use crate::trust::{assert_cache_consistent, cache_blob};

fn plan_out(workspace: &Workspace) {
    let plan = workspace.run(&["plan", "-out=saved.tfplan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 0, "{}", plan.text());
}

fn apply_saved(workspace: &Workspace) -> crate::terraform::Output {
    workspace.run(&["apply", "-input=false", "-no-color", "saved.tfplan"])
}

fn state_list(workspace: &Workspace) -> String {
    let list = workspace.run(&["state", "list"]);
    assert_eq!(list.code, 0, "{}", list.text());
    list.stdout
}

#[test]
fn new_content_is_an_in_place_update() {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    workspace.write_config(&image_config(&workspace, "").replace("contents = \"MOTD\"", "contents = \"NEW MOTD\""));
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    assert!(plan.says("resin_image.img will be updated in-place"), "{}", plan.text());
    assert!(!plan.says("forces replacement"), "{}", plan.text());
    // A new output_dir is another image: a replacement.
    workspace
        .write_config(&image_config(&workspace, "").replace("output_dir = \"./out\"", "output_dir = \"./elsewhere\""));
    let plan = workspace.plan();
    assert!(plan.says("resin_image.img must be replaced") && plan.says("# forces replacement"), "{}", plan.text());
}

#[test]
fn a_tag_moved_after_the_plan_applies_what_was_planned() {
    let (registry, layouts) = crate::basic_registry();
    let workspace = Workspace::new();
    workspace.write_config(&crate::registry_image_config(&workspace, &registry.address, "one"));
    workspace.apply();
    let planned_digest = registry.manifest_digest("fixtures/init", "v1");

    workspace.write_config(&crate::registry_image_config(&workspace, &registry.address, "two"));
    plan_out(&workspace);
    add_to_layout(layouts.path(), "v1", &[Image::amd64(vec![("sbin/init", b"#!/bin/sh\necho init v2\n".to_vec())])]);
    registry.push(layouts.path(), "v1", "fixtures/init", false);
    assert_ne!(registry.manifest_digest("fixtures/init", "v1"), planned_digest);

    let apply = apply_saved(&workspace);
    assert_eq!(apply.code, 0, "{}", apply.text());
    assert_eq!(workspace.state()["resin_package.init"]["digest"], planned_digest.as_str());
    let root = extract_initrd(&workspace.work_dir().join("out/reg-initrd.img"));
    assert_eq!(
        std::fs::read(root.path().join("sbin/init")).unwrap(),
        b"#!/bin/sh\necho init v1\n",
        "the planned digest's content"
    );
    assert_eq!(std::fs::read(root.path().join("etc/motd")).unwrap(), b"two");
    // The next plan sees the moved tag.
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    assert!(plan.says(&format!("\"{planned_digest}\" ->")), "{}", plan.text());
}

#[test]
fn a_tag_moved_before_a_new_package_is_applied_is_refused_and_nothing_is_written() {
    // A resource planned for creation is planned again at apply with no memory of the
    // first plan: the moved tag resolves to another digest, and Terraform itself rejects
    // the final plan before the provider is asked to apply anything. The documented
    // remedy: pin by digest for saved-plan workflows, or plan again.
    let (registry, layouts) = crate::basic_registry();
    let workspace = Workspace::new();
    workspace.write_config(&crate::registry_image_config(&workspace, &registry.address, "one"));
    plan_out(&workspace);
    add_to_layout(layouts.path(), "v1", &[Image::amd64(vec![("sbin/init", b"#!/bin/sh\necho init v2\n".to_vec())])]);
    registry.push(layouts.path(), "v1", "fixtures/init", false);
    let apply = apply_saved(&workspace);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("produced an invalid new value for .digest"), "{}", apply.text());
    assert!(!workspace.work_dir().join("out/reg-initrd.img").exists(), "nothing may be written");
    assert!(!state_list(&workspace).contains("resin_image.img"));
    workspace.apply();
}

#[test]
fn a_source_edited_after_the_plan_is_refused_and_the_image_stays() {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    let source = workspace.work_dir().join("banner.txt");
    std::fs::write(&source, "one").unwrap();
    let extra = "\n  file {\n    path   = \"/etc/banner\"\n    source = \"./banner.txt\"\n  }\n";
    workspace.write_config(&image_config(&workspace, extra));
    workspace.apply();
    let before = artifact_digests(&workspace);
    let hash = workspace.state()["resin_image.img"]["content_hash"].clone();

    std::fs::write(&source, "two").unwrap();
    plan_out(&workspace);
    std::fs::write(&source, "three").unwrap();
    let apply = apply_saved(&workspace);
    assert_eq!(apply.code, 1, "{}", apply.text());
    // Terraform checks the final plan against the saved one before the provider applies.
    assert!(apply.says("produced an invalid new value for .content_hash"), "{}", apply.text());
    assert_eq!(artifact_digests(&workspace), before, "the previous artifacts must be intact");
    assert_eq!(workspace.state()["resin_image.img"]["content_hash"], hash, "the image stays in state, as it was");

    // Planning again takes the file as it is now.
    workspace.apply();
    let root = extract_initrd(&out(&workspace, "initrd.img"));
    assert_eq!(std::fs::read(root.path().join("etc/banner")).unwrap(), b"three");
}

#[test]
fn cache_blobs_damaged_after_the_plan_are_fetched_again() {
    let (registry, layouts) = crate::basic_registry();
    let workspace = Workspace::new();
    // Without cached segments the apply reads every layer again.
    let config =
        |motd| crate::without_segment_cache(&crate::registry_image_config(&workspace, &registry.address, motd));
    workspace.write_config(&config("one"));
    workspace.apply();
    workspace.write_config(&config("two"));
    plan_out(&workspace);

    let init = registry.manifest_digest("fixtures/init", "v1");
    for digest in [layer_digests(layouts.path(), &init).remove(0), config_digest(layouts.path(), &init), init.clone()] {
        let path = cache_blob(&workspace, &digest);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    }
    let apply = apply_saved(&workspace);
    assert_eq!(apply.code, 0, "{}", apply.text());
    let root = extract_initrd(&workspace.work_dir().join("out/reg-initrd.img"));
    assert_eq!(std::fs::read(root.path().join("sbin/init")).unwrap(), b"#!/bin/sh\necho init v1\n");
    assert_eq!(std::fs::read(root.path().join("etc/motd")).unwrap(), b"two");
    assert_cache_consistent(&workspace);
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn failed_updates_keep_every_resource_in_state() {
    let (mut registry, _layouts) = crate::basic_registry();
    let workspace = Workspace::new();
    workspace.write_config(&crate::registry_image_config(&workspace, &registry.address, "one"));
    workspace.apply();
    let before = artifact_digests_of(&workspace);
    let state = workspace.state();
    registry.stop();
    std::fs::remove_dir_all(&workspace.cache_dir).unwrap();

    // New image content, with the registry and the cache gone: the image's update fails.
    workspace.write_config(&crate::registry_image_config(&workspace, &registry.address, "two"));
    plan_out(&workspace);
    let apply = apply_saved(&workspace);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("cannot be reached"), "{}", apply.text());
    assert!(state_list(&workspace).contains("resin_image.img"), "the image was dropped from state:\n{}", apply.text());
    assert_eq!(workspace.state()["resin_image.img"]["content_hash"], state["resin_image.img"]["content_hash"]);
    assert_eq!(artifact_digests_of(&workspace), before, "the previous artifacts must be intact");

    // A package update that must pull again fails the same way.
    let changed = crate::registry_image_config(&workspace, &registry.address, "one")
        .replace("fixtures/init:v1\"\n}", "fixtures/init:v1\"\n  capabilities = [\"CAP_NET_ADMIN\"]\n}");
    workspace.write_config(&changed);
    plan_out(&workspace);
    let apply = apply_saved(&workspace);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("cannot be reached"), "{}", apply.text());
    assert!(
        state_list(&workspace).contains("resin_package.init"),
        "the package was dropped from state:\n{}",
        apply.text()
    );
    assert_eq!(workspace.state()["resin_package.init"]["content_hash"], state["resin_package.init"]["content_hash"]);
}

fn artifact_digests_of(workspace: &Workspace) -> Vec<String> {
    ["kernel", "initrd.img", "cmdline"]
        .iter()
        .map(|a| sha256(&workspace.work_dir().join(format!("out/reg-{a}"))))
        .collect()
}
