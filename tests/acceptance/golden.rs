//! The golden fixture: the standard test image must keep giving exactly these bytes (and
//! the same content hash) through Terraform.

use crate::fixtures::{GOLDEN_ADVICE, GOLDEN_INITRD};
use crate::image::{image_config, out, write_fixtures};
use crate::terraform::Workspace;

/// The `content_hash` of the golden image, planned by Terraform (it names the layout as
/// `./layout`, relative to Terraform's working directory).
const GOLDEN_CONTENT_HASH: &str = "sha256:014801b920dd4c566f269e586289082889e0a0fb2b75d8a740bda86431459a7d";

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
