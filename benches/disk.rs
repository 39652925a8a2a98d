//! `make bench`, boot files: what each `resin_disk` format costs for a UKI-sized image (a
//! 12 MiB kernel and a 7 MiB initrd of incompressible bytes, about the demo image's: its
//! UKI is 19 MiB), against the floor of compressing what the disk holds (`gzip -6` of the
//! UKI, as `gcp`'s archive compresses it). Prints numbers; asserts nothing about speed.
//! With `TF_LOG` set, prints each format's phases as an apply logs them.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use resin::assemble::{ImageSpec, SPEC_VERSION};
use resin::disk::pe::{tiny_image, MACHINE_X86_64};
use resin::disk::{format, write_disk, Sources};
use resin_testkit::fixtures;

/// Writes `bytes` at `path`; returns its `sha256:<hex>` and size.
fn write(path: &Path, bytes: &[u8]) -> (String, u64) {
    std::fs::write(path, bytes).unwrap();
    (resin::oci::digest::sha256(bytes).to_string(), bytes.len() as u64)
}

fn main() {
    // Each format's phases, as an apply logs them at DEBUG.
    if std::env::var_os("TF_LOG").is_some() {
        resin::log::enable();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut kernel = tiny_image(MACHINE_X86_64);
    kernel.extend(fixtures::noise(1, 12 << 20));
    let (kernel_path, initrd_path) = (dir.path().join("bench-kernel"), dir.path().join("bench-initrd.img"));
    let (kernel_sha256, kernel_size) = write(&kernel_path, &kernel);
    let (initrd_sha256, initrd_size) = write(&initrd_path, &fixtures::noise(2, 7 << 20));
    let image = ImageSpec {
        spec_version: SPEC_VERSION,
        name: "bench".into(),
        output_dir: dir.path().display().to_string(),
        content_hash: format!("sha256:{}", "0".repeat(64)),
        platform: "linux/amd64".parse().unwrap(),
        cmdline: "console=ttyS0".into(),
        kernel_path: kernel_path.display().to_string(),
        initrd_path: initrd_path.display().to_string(),
        kernel_sha256,
        kernel_size,
        initrd_sha256,
        initrd_size,
        initrd_parts: Vec::new(),
        sensitive: false,
        sbom_sha256: None,
        published: None,
    };
    let stub = tiny_image(MACHINE_X86_64);
    let sources = Sources {
        image: &image,
        stub: Some(&stub),
        base_url: Some("http://boot.example/images"),
        size_mb: None,
        uname: Some("6.1.0"),
        sbat: None,
        scratch: dir.path(),
        signer: None,
    };
    println!("disk benchmark: a {:.1} MiB kernel and initrd", (kernel_size + initrd_size) as f64 / f64::from(1 << 20));
    for name in ["uki", "raw-efi", "iso-efi", "gcp", "ipxe"] {
        let disk_format = format(name).unwrap();
        let path = dir.path().join(format!("bench{}", disk_format.suffix()));
        let started = Instant::now();
        write_disk(disk_format, &sources, &path).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let size = std::fs::metadata(&path).unwrap().len();
        println!("{name:>8}: {:7.0} ms, {:.1} MiB written", seconds * 1e3, size as f64 / f64::from(1 << 20));
    }
    let uki = dir.path().join("bench.efi");
    let started = Instant::now();
    let gzip = std::process::Command::new("gzip").args(["-6", "-c"]).arg(&uki).output().unwrap();
    assert!(gzip.status.success());
    std::io::sink().write_all(&gzip.stdout).unwrap();
    println!("  floor: {:7.0} ms for gzip -6 of the UKI", started.elapsed().as_secs_f64() * 1e3);
}
