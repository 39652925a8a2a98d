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
    ("uki", "sha256:aa766192e647114f677bd8f172929912116101c5e8d95675bb9885283b10ba3e"),
    ("raw-efi", "sha256:8859012cafb67ad0bd6c9af067cd1adff343c258ee80deebc39c0ac056485f61"),
    ("iso-efi", "sha256:8b50d8be2e9da12b93ad3e4de979bb70db788b06f5e09cbd5385e172cbbf6bbe"),
    ("gcp", "sha256:474c3050e4909d04ec8a168b4c72ef9b1cb87db2f3ca8b7dc1cf175113d27035"),
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
