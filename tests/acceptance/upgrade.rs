//! Upgrades: a state written by the provider of assembly format 2 and disk format 3, for
//! the fixture layout (`upgrade/`: the configuration, the state with its private states,
//! and the files it wrote), planned with this provider shows exactly the change
//! CHANGELOG.md's "Upgrading" section documents, applies, and then gives the same bytes as
//! a workspace that never had the old state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::fixtures;
use crate::image::sha256;
use crate::terraform::Workspace;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acceptance/upgrade")
}

/// A workspace with the fixture layout and configuration; with `old_state`, the previous
/// provider's state and files too.
fn fixture_workspace(old_state: bool) -> Workspace {
    let workspace = Workspace::new();
    let dir = workspace.work_dir();
    fixtures::write_fixtures(&dir.join("layout"));
    std::fs::copy(fixture().join("main.tf"), dir.join("main.tf")).unwrap();
    if old_state {
        std::fs::copy(fixture().join("terraform.tfstate"), dir.join("terraform.tfstate")).unwrap();
        std::fs::create_dir_all(dir.join("out")).unwrap();
        for entry in std::fs::read_dir(fixture().join("out")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join("out").join(entry.file_name())).unwrap();
        }
    }
    workspace
}

/// Each resource's planned action and the attributes the plan changes (a new value or
/// one known after apply).
fn changes(plan: &serde_json::Value) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut changes = BTreeMap::new();
    for change in plan["resource_changes"].as_array().unwrap() {
        let (before, after, unknown) =
            (&change["change"]["before"], &change["change"]["after"], &change["change"]["after_unknown"]);
        let names: BTreeSet<&String> =
            before.as_object().unwrap().keys().chain(after.as_object().unwrap().keys()).collect();
        let changed = names
            .into_iter()
            .filter(|name| unknown[name.as_str()] == true || before[name.as_str()] != after[name.as_str()])
            .cloned()
            .collect();
        let actions = change["change"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(",");
        changes.insert(change["address"].as_str().unwrap().to_string(), (actions, changed));
    }
    changes
}

#[test]
fn a_state_of_the_previous_formats_plans_exactly_the_documented_change_and_applies() {
    let workspace = fixture_workspace(true);
    let plan = workspace.run(&["plan", "-out=upgrade.plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 0, "{}", plan.text());
    let shown = workspace.run(&["show", "-json", "upgrade.plan"]);
    assert_eq!(shown.code, 0, "{}", shown.text());
    let planned = changes(&serde_json::from_str(&shown.stdout).unwrap());
    let update = |attributes: &[&str]| ("update".to_string(), attributes.iter().map(|a| a.to_string()).collect());
    // CHANGELOG.md, "Upgrading": every content_hash changes once (assembly format 3); an
    // image writes its initrd again (the kernel and command line are the same bytes) and
    // its SBOM, spec, the file_sha256 it did not have and the LinuxKit YAML file that took
    // the place of the linuxkit_yaml attribute; a disk follows its image in place (its
    // name and directory are the image's, known again once it is written).
    let expected = BTreeMap::from([
        ("resin_kernel.k".to_string(), update(&["content_hash"])),
        ("resin_package.init".to_string(), update(&["content_hash"])),
        ("resin_package.sshd".to_string(), update(&["content_hash"])),
        ("resin_package.sysctl".to_string(), update(&["content_hash"])),
        (
            "resin_image.img".to_string(),
            update(&[
                "content_hash",
                "file_sha256",
                "initrd_sha256",
                "initrd_size",
                "linuxkit_yaml_path",
                "linuxkit_yaml_sha256",
                "sbom_sha256",
                "spec",
            ]),
        ),
        (
            "resin_disk.pxe".to_string(),
            update(&["content_hash", "id", "image", "name", "output_dir", "path", "sha256", "size"]),
        ),
    ]);
    assert_eq!(planned, expected, "{}", plan.text());

    let apply = workspace.run(&["apply", "-input=false", "-no-color", "upgrade.plan"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    assert_eq!(workspace.plan().code, 0, "nothing left to change");
    let fresh = fixture_workspace(false);
    fresh.apply();
    for file in ["up-kernel", "up-initrd.img", "up-cmdline", "up-sbom.spdx.json", "up-linuxkit.yml", "up.ipxe"] {
        let (upgraded, new) = (workspace.work_dir().join("out").join(file), fresh.work_dir().join("out").join(file));
        assert_eq!(sha256(&upgraded), sha256(&new), "{file}: the upgraded workspace has other bytes");
    }
    assert_eq!(workspace.state()["resin_image.img"]["content_hash"], fresh.state()["resin_image.img"]["content_hash"]);
}

#[test]
fn a_disk_follows_its_image_in_place_and_moves_with_its_name() {
    let workspace = fixture_workspace(false);
    workspace.apply();
    let config = std::fs::read_to_string(workspace.work_dir().join("main.tf")).unwrap();
    let out = workspace.work_dir().join("out");
    // New content: the image's spec is unknown until it is written again, and with it the
    // disk's default name and directory; the disk is updated in place all the same.
    workspace.write_config_file(&config.replace("contents = \"MOTD\"", "contents = \"MOTD 2\""));
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert!(plan.says("resin_disk.pxe will be updated in-place"), "{}", plan.text());
    assert!(!plan.says("must be replaced"), "{}", plan.text());
    workspace.apply();
    assert!(out.join("up.ipxe").is_file());
    // A new image name replaces the image; the disk, named after it, moves: the file is
    // written under the new name and the one it wrote before is removed.
    workspace.write_config_file(&config.replace("name       = \"up\"", "name       = \"next\""));
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert!(plan.says("resin_disk.pxe will be updated in-place"), "{}", plan.text());
    workspace.apply();
    assert!(out.join("next.ipxe").is_file());
    assert!(!out.join("up.ipxe").exists(), "the file the disk wrote before is removed");
    assert_eq!(workspace.state()["resin_disk.pxe"]["path"], "./out/next.ipxe");
    assert_eq!(workspace.plan().code, 0);
}
