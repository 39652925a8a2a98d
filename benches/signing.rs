//! `make bench`, Secure Boot: what signing costs per UKI. A UKI-sized PE image (a minimal
//! stub with a 12 MiB `.linux` and a 40 MiB `.initrd` of incompressible bytes, about the
//! demo image's and a busy server's) is written, then signed in place with RSA 2048 and
//! ECDSA P-256 keys made by openssl: the Authenticode hash (one read of the file) and the
//! signature. Prints numbers; asserts nothing about speed.

use resin_testkit::fixtures;

use std::io::Write as _;
use std::time::Instant;

use resin::disk::authenticode::sign_in_place;
use resin::disk::pe::{append_sections, tiny_image, NewSection, MACHINE_X86_64};
use resin::disk::signing::{KeySource, Signer};

/// A self-signed certificate and key made with openssl's `key` options.
fn identity(dir: &std::path::Path, name: &str, key: &[&str]) -> (String, String) {
    let (cert, keyfile) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=bench"])
        .args(key)
        .arg("-keyout")
        .arg(&keyfile)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed by make test");
    assert!(status.success());
    (std::fs::read_to_string(cert).unwrap(), std::fs::read_to_string(keyfile).unwrap())
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (linux, initrd) = (fixtures::noise(1, 12 << 20), fixtures::noise(2, 40 << 20));
    let unsigned = dir.path().join("unsigned.efi");
    let started = Instant::now();
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&unsigned).unwrap());
        let sections = vec![
            NewSection { name: ".initrd", length: initrd.len() as u64, data: Box::new(&initrd[..]) },
            NewSection { name: ".linux", length: linux.len() as u64, data: Box::new(&linux[..]) },
        ];
        append_sections(&tiny_image(MACHINE_X86_64), sections, &mut out).unwrap();
        out.flush().unwrap();
    }
    let size = std::fs::metadata(&unsigned).unwrap().len();
    let megabytes = size as f64 / f64::from(1 << 20);
    println!(
        "signing benchmark: a {megabytes:.1} MiB UKI, written unsigned in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    for (label, key) in [
        ("RSA 2048", vec!["-newkey", "rsa:2048"]),
        ("RSA 4096", vec!["-newkey", "rsa:4096"]),
        ("ECDSA P-256", vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
    ] {
        let (cert, pem) = identity(dir.path(), &label.replace(' ', ""), &key);
        let started = Instant::now();
        let signer = Signer::new(&cert, KeySource::Pem(&pem)).unwrap();
        let setup = started.elapsed().as_secs_f64();
        let copy = dir.path().join("signed.efi");
        std::fs::copy(&unsigned, &copy).unwrap();
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&copy).unwrap();
        let started = Instant::now();
        let signed = sign_in_place(&mut file, &signer).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{label:>12}: key read and checked {:.1} ms; signed in {:.1} ms ({:.0} MiB/s of image hashed; {} bytes of signature)",
            setup * 1e3,
            seconds * 1e3,
            megabytes / seconds,
            signed - size
        );
    }
}
