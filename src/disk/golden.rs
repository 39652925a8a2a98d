//! The bytes of every boot format, pinned: the golden initrd (assembled by the library
//! from the golden fixture, [`crate::assemble::golden`]), a tiny EFI kernel and a fixed
//! stub ([`super::pe::tiny_image`]) make a UKI, raw-efi, iso-efi, gcp and ipxe file whose
//! sha256s are fixed here. Another workspace or machine writes the same bytes (the
//! acceptance tests check one workspace per format against its content hash; these pins
//! check the bytes themselves). A pin that changes is a change of [`super::DISK_FORMAT`]:
//! bump it, note it in CHANGELOG.md, and set the new sha256 here.

use super::{pe, uki, write_disk, Sources, FORMATS};

/// Each format's sha256 for the golden inputs.
const PINNED: [(&str, &str); 5] = [
    ("uki", "sha256:fe6055b87a67ed8461e33ac34af0bb436af31d2aefde40562c1de396397bff1d"),
    ("raw-efi", "sha256:913825ba741094ba30621cf01182c7728c96721d805a5b0622daa48cd1c7e58c"),
    ("iso-efi", "sha256:788bb1961c2f899100d00c43a223fb1e364e7ed66a1e3605c7e7f2283282f07f"),
    ("gcp", "sha256:e970dc2ccebb514bb544a3767368f7989c59954b76c745716ebbe7b8df631a5f"),
    ("ipxe", "sha256:331cd6324ce2b1fc465db0899fb0734ba0a75ed4b7b6c4e3226c5ee1e3b0c11e"),
];

#[test]
fn every_format_writes_its_pinned_bytes_from_the_golden_image() {
    let work = tempfile::tempdir().unwrap();
    let initrd = crate::assemble::golden::golden_initrd(work.path());
    let mut image = uki::tests::image_spec("console=ttyS0 panic=-1");
    let kernel = pe::tiny_image(pe::MACHINE_X86_64);
    uki::tests::write_artifacts(&mut image, work.path(), &kernel, &initrd);
    let stub = pe::tiny_image(pe::MACHINE_X86_64);
    let sources = Sources {
        base_url: Some("http://boot.example/images/"),
        scratch: work.path(),
        ..uki::tests::stub_sources(&image, &stub)
    };
    let written: Vec<(&str, String)> = FORMATS
        .iter()
        .map(|format| {
            let path = work.path().join(format!("node{}", format.suffix()));
            (format.name(), write_disk(*format, &sources, &path).unwrap().sha256)
        })
        .collect();
    let pinned: Vec<(&str, String)> = PINNED.iter().map(|(name, sha256)| (*name, sha256.to_string())).collect();
    assert_eq!(
        written, pinned,
        "a boot format writes other bytes for the same inputs: if that is intended, bump DISK_FORMAT, note it in CHANGELOG.md and pin the new sha256s in src/disk/golden.rs"
    );
    // Twice in a row, the same bytes.
    let again = write_disk(FORMATS[0], &sources, &work.path().join("again.efi")).unwrap();
    assert_eq!(again.sha256, written[0].1);
}
