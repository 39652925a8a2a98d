//! The golden fixture: the standard test image must keep giving exactly these bytes (and
//! the same content hash) through Terraform, wherever its layout and workspace are.

use std::collections::BTreeMap;

use crate::fixtures::{GOLDEN_ADVICE, GOLDEN_INITRD};
use crate::image::{image_config, out, sha256, write_fixtures};
use crate::terraform::Workspace;

/// The `content_hash` of the golden image, planned by Terraform.
const GOLDEN_CONTENT_HASH: &str = "sha256:fea74178843f6e6a55c6b90d682d03feadc20f179343f8fff428e110fa0f7f15";

/// The golden image and an iPXE script of it, the layout named as `layout` names it.
fn golden_config(workspace: &Workspace, layout: &str) -> String {
    let disk = "resource \"resin_disk\" \"pxe\" {\n  image    = resin_image.img.spec\n  format   = \"ipxe\"\n  base_url = \"https://boot.example/images\"\n}\n";
    format!("{}\n{disk}", image_config(workspace, "").replace("oci-layout:./layout:", &format!("oci-layout:{layout}:")))
}

/// Every resource's content hash, and the sha256 of every file the workspace wrote.
fn outcome(workspace: &Workspace) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let state = workspace.state();
    let hashes = state
        .as_object()
        .unwrap()
        .iter()
        .map(|(address, resource)| (address.clone(), resource["content_hash"].as_str().unwrap_or_default().to_string()))
        .collect();
    let files = std::fs::read_dir(workspace.work_dir().join("out"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), sha256(&path))
        })
        .collect();
    (hashes, files)
}

#[test]
fn the_golden_fixture_gives_the_same_bytes_wherever_its_layout_and_workspace_are() {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    workspace.write_config(&golden_config(&workspace, "./layout"));
    workspace.apply();
    let initrd = sha256(&out(&workspace, "initrd.img"));
    let content_hash = workspace.state()["resin_image.img"]["content_hash"].as_str().unwrap().to_string();
    assert_eq!(initrd, GOLDEN_INITRD, "the golden initrd changed.\n{GOLDEN_ADVICE}");
    assert_eq!(content_hash, GOLDEN_CONTENT_HASH, "the golden content hash changed.\n{GOLDEN_ADVICE}");

    // The same layout elsewhere, named by an absolute path, from another workspace (as
    // CI jobs check out to new paths): the same content hashes and the same bytes.
    let (moved, elsewhere) = (Workspace::new(), tempfile::tempdir().unwrap());
    let layout = elsewhere.path().join("images/layout");
    write_fixtures(&layout);
    moved.write_config(&golden_config(&moved, &layout.display().to_string()));
    moved.apply();
    let (first, second) = (outcome(&workspace), outcome(&moved));
    assert_eq!(first.0.len(), 6, "{:?}", first.0);
    assert_eq!(first.1.len(), 6, "kernel, initrd, cmdline, SBOM, LinuxKit YAML, iPXE script: {:?}", first.1);
    // The LinuxKit YAML names each image as the configuration does (it is what `linuxkit
    // build` would be given), so it alone follows the layout's path.
    let content = |files: &BTreeMap<String, String>| {
        files
            .iter()
            .filter(|(name, _)| !name.ends_with("-linuxkit.yml"))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        (&second.0, content(&second.1)),
        (&first.0, content(&first.1)),
        "moving the layout and the workspace changed a content hash or a file"
    );

    // The layout spelled anew: the same content, so only the LinuxKit YAML (which names
    // images as the configuration does) is written again; the initrd is left as it is.
    let initrd = moved.work_dir().join("out/test-initrd.img");
    let written = std::fs::metadata(&initrd).unwrap().modified().unwrap();
    moved.write_config(&golden_config(&moved, &format!("{}/../layout", layout.display())));
    let plan = moved.run(&["plan", "-input=false", "-no-color"]);
    assert!(plan.says("~ linuxkit_yaml_sha256"), "{}", plan.text());
    assert!(!plan.says("content_hash"), "no content hash changes:\n{}", plan.text());
    moved.apply();
    let (hashes, files) = outcome(&moved);
    assert_eq!(hashes, first.0);
    assert_ne!(files["test-linuxkit.yml"], second.1["test-linuxkit.yml"]);
    assert_eq!(content(&files), content(&first.1));
    assert_eq!(std::fs::metadata(&initrd).unwrap().modified().unwrap(), written, "the initrd was not written again");
    assert_eq!(moved.plan().code, 0);
}
