//! The golden fixture: the standard test image must keep giving exactly these bytes (and
//! the same content hash) through Terraform.

use crate::fixtures::{GOLDEN_ADVICE, GOLDEN_INITRD};
use crate::image::{image_config, out, write_fixtures};
use crate::terraform::Workspace;

/// The `content_hash` of the golden image, planned by Terraform (it names the layout as
/// `./layout`, relative to Terraform's working directory).
const GOLDEN_CONTENT_HASH: &str = "sha256:6521c89f0ff45c3b09735901d0327c0b95572c64cc1b494851e525c0efb6560a";

#[test]
fn the_golden_fixture_gives_the_same_bytes() {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    let initrd = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(out(&workspace, "initrd.img")).unwrap()))
    };
    let content_hash = workspace.state()["resin_image.img"]["content_hash"].as_str().unwrap().to_string();
    assert_eq!(initrd, GOLDEN_INITRD, "the golden initrd changed.\n{GOLDEN_ADVICE}");
    assert_eq!(content_hash, GOLDEN_CONTENT_HASH, "the golden content hash changed.\n{GOLDEN_ADVICE}");
}
