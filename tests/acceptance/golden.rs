//! The golden fixture: the standard test image must keep giving exactly these bytes.

use crate::image::{image_config, out, write_fixtures};
use crate::terraform::Workspace;

/// sha256 of `test-initrd.img` for the standard fixture (tests/acceptance/image.rs).
const GOLDEN_INITRD: &str = "81aecdf6d4afcdae300fb8790d340bde5fa2079a137449f3cf5358fdb37838e1";
/// Its `content_hash`.
const GOLDEN_CONTENT_HASH: &str = "sha256:2df0f88ab6157f13d965b2028b455da6118b2f4a030a43efe0009ff8cb6b2c20";

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
    let advice = "If this change is intentional (resin now writes different bytes or hashes different \
                  inputs for the same image), bump ASSEMBLY_FORMAT in src/assemble/hash.rs so every \
                  content_hash changes with the bytes, note it in CHANGELOG.md, and set the constants in \
                  tests/acceptance/golden.rs to the new values. If it is not intentional, a change made \
                  the output depend on something it must not (order, time, cache state, backend).";
    assert_eq!(initrd, GOLDEN_INITRD, "the golden initrd changed.\n{advice}");
    assert_eq!(content_hash, GOLDEN_CONTENT_HASH, "the golden content hash changed.\n{advice}");
}
