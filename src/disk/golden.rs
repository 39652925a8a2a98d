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
    ("uki", "sha256:7615a829d95cb72c0cb8c81084d71a6c41fdc953b8ea56f35b48a230960dc001"),
    ("raw-efi", "sha256:064107cc37f6c6c004b6fcd65e136269ce8b10363b2fa83ac15d03111d2f4751"),
    ("iso-efi", "sha256:f8b11004f771d3d96914b41aaf4adaee6c8f31bdac8f266e17b678b042db543f"),
    ("gcp", "sha256:15efb381b38656748ba2befd00237a8fe09b804e0fcc916d9b93ad5a76c3a6e4"),
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
