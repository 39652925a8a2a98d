//! Secure Boot: UKIs signed by `resin_disk` boot under UEFI firmware that enforces Secure
//! Boot with a test certificate enrolled (Debian's snakeoil OVMF and AAVMF variable stores:
//! the snakeoil certificate is PK, KEK and db) and run their containers; an unsigned UKI is
//! refused on both architectures, one signed by another key and one altered after signing
//! by OVMF (the same EDK II checks as AAVMF's). `sbverify` (sbsigntool) checks every
//! signature independently, and a signed raw-efi disk's loader is the signed UKI.

use std::path::Path;

use crate::disk::{boot_uki_with, disk_config, judge_boot, loader_of, run, Firmware, ACCESS_DENIED};
use crate::terraform::Workspace;

/// The snakeoil certificate enrolled in the test firmware, and its key (encrypted with the
/// passphrase `snakeoil`).
fn snakeoil(arch: &str) -> (&'static str, &'static str) {
    match arch {
        "x86_64" => ("/usr/share/ovmf/PkKek-1-snakeoil.pem", "/usr/share/ovmf/PkKek-1-snakeoil.key"),
        _ => ("/usr/share/qemu-efi-aarch64/PkKek-1-snakeoil.pem", "/usr/share/qemu-efi-aarch64/PkKek-1-snakeoil.key"),
    }
}

/// A UKI named `name` signed with `signing` (attributes), or unsigned.
fn uki(name: &str, signing: &str) -> String {
    format!(
        "resource \"resin_disk\" \"{name}\" {{\n  image  = resin_image.boot.spec\n  format = \"uki\"\n  name   = \"{name}\"\n  stub   = resin_efi_stub.systemd.spec\n  {signing}\n}}\n"
    )
}

/// Checks the firmware refused `uki` and booted nothing.
fn refused(arch: &str, uki: &Path, what: &str) -> String {
    let (console, elapsed) = boot_uki_with(arch, uki, Firmware::SecureBoot);
    eprintln!("{arch} {what}: refused by the firmware after {:.1} s", elapsed.as_secs_f64());
    assert!(console.contains(ACCESS_DENIED), "{what}: the firmware did not refuse it:\n{console}");
    assert!(!console.contains("RESIN-INIT-OK"), "{what} booted:\n{console}");
    console
}

fn secure_boot(platform: &str, arch: &str) {
    let workspace = Workspace::new();
    let dir = workspace.work_dir();
    let (certificate, encrypted_key) = snakeoil(arch);
    // x86_64 signs with a key file (the snakeoil key decrypted); aarch64 through a signer
    // command, as an HSM or KMS would sign.
    let signing = if arch == "x86_64" {
        let key = dir.join("db.key").display().to_string();
        run("openssl", &["pkey", "-in", encrypted_key, "-passin", "pass:snakeoil", "-out", &key]);
        format!("signing_certificate = file(\"{certificate}\")\n  signing_key_file = \"{key}\"")
    } else {
        format!(
            "signing_certificate = file(\"{certificate}\")\n  signing_command = [\"openssl\", \"pkeyutl\", \"-sign\", \"-inkey\", \"{encrypted_key}\", \"-passin\", \"pass:snakeoil\", \"-pkeyopt\", \"digest:sha256\"]"
        )
    };
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (other_cert, other_key) =
        (other.join("db.crt").display().to_string(), other.join("db.key").display().to_string());
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=not enrolled",
            "-newkey",
            "rsa:2048",
            "-keyout",
            &other_key,
            "-out",
            &other_cert,
        ],
    );
    // The signed UKI merges SBAT lines: its .sbat replaces the stub's, whose bytes stay in
    // the file outside any section, a gap the image hash must treat as the firmware does.
    let sbat = SBAT;
    let mut disks = uki("signed", &format!("{signing}\n  {sbat}")) + &uki("unsigned", "");
    disks +=
        &uki("other", &format!("signing_certificate = file(\"{other_cert}\")\n  signing_key_file = \"{other_key}\""));
    if arch == "x86_64" {
        disks += &format!(
            "resource \"resin_disk\" \"raw\" {{\n  image  = resin_image.boot.spec\n  format = \"raw-efi\"\n  stub   = resin_efi_stub.systemd.spec\n  {signing}\n  {sbat}\n}}\n"
        );
    }
    workspace.write_config(&disk_config(platform, &disks));
    workspace.apply();
    let out = dir.join("out");
    let (signed, unsigned, wrong) = (out.join("signed.efi"), out.join("unsigned.efi"), out.join("other.efi"));

    // sbsigntool agrees: the signature verifies with the enrolled certificate and only it.
    let verified = run("sbverify", &["--cert", certificate, &signed.display().to_string()]);
    assert!(verified.contains("Signature verification OK"), "{verified}");
    let failed = std::process::Command::new("sbverify")
        .args(["--cert", certificate, &wrong.display().to_string()])
        .output()
        .unwrap();
    assert!(!failed.status.success(), "another key's signature passed sbverify with the snakeoil certificate");
    // The same inputs sign to the same bytes.
    let state = workspace.state();
    assert_eq!(workspace.plan().code, 0, "signed disks are stable");
    assert_ne!(state["resin_disk.signed"]["content_hash"], state["resin_disk.unsigned"]["content_hash"]);

    if arch == "x86_64" {
        // The signed raw-efi disk's loader is the signed UKI (the plain raw-efi disk boots in
        // disk.rs). The x86_64 signed UKI, with these SBAT lines, boots under Secure Boot in
        // the PCR 11 test below, with a TPM: one firmware boot for both.
        let raw = out.join("boot-efi.img").display().to_string();
        assert!(loader_of(&raw, 1 << 20, arch) == std::fs::read(&signed).unwrap(), "the ESP holds another UKI");
    } else {
        let (console, elapsed) = boot_uki_with(arch, &signed, Firmware::SecureBoot);
        eprintln!("{arch} signed UKI: booted under Secure Boot and powered off in {:.1} s", elapsed.as_secs_f64());
        judge_boot("the signed UKI under Secure Boot", arch, &console);
    }
    // The control: this firmware enforces Secure Boot.
    refused(arch, &unsigned, "unsigned UKI");
    // One byte of the initrd changed after signing: the image hash no longer matches.
    let altered = out.join("altered.efi");
    let mut bytes = std::fs::read(&signed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&altered, &bytes).unwrap();
    let report = std::process::Command::new("sbverify").args(["--cert", certificate]).arg(&altered).output().unwrap();
    assert!(!report.status.success(), "sbverify took an altered UKI");
    // The firmware's own checks of another key and of an altered image, once: they are the
    // same EDK II code on both architectures, and sbverify checked both UKIs above.
    if arch == "x86_64" {
        refused(arch, &wrong, "UKI signed by a key not enrolled");
        refused(arch, &altered, "UKI altered after signing");
    }
}

/// SBAT lines of the signed UKIs.
const SBAT: &str = "sbat = \"resin-boot,1,Resin tests,boot,1,https://example.com/boot\"";

#[test]
fn signed_ukis_boot_under_secure_boot_and_others_are_refused() {
    secure_boot("linux/amd64", "x86_64");
}

#[test]
fn signed_aarch64_ukis_boot_under_secure_boot_and_others_are_refused() {
    secure_boot("linux/arm64", "aarch64");
}

#[test]
fn bad_signing_inputs_are_errors_at_their_attribute_and_nothing_is_written() {
    let workspace = Workspace::new();
    let dir = workspace.work_dir();
    let identity = |name: &str| {
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        let subject = format!("/CN={name}");
        let (cert_text, key_text) = (cert.display().to_string(), key.display().to_string());
        run(
            "openssl",
            &[
                "req", "-x509", "-nodes", "-days", "30", "-subj", &subject, "-newkey", "rsa:2048", "-keyout",
                &key_text, "-out", &cert_text,
            ],
        );
        (cert_text, key_text)
    };
    let (cert, key) = identity("db");
    let (_, other_key) = identity("other");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
        .unwrap();
    let garbage = garbage.display().to_string();
    let disk = |format: &str, signing: &str| {
        let extra = if format == "ipxe" { "base_url = \"https://x/\"" } else { "stub = resin_efi_stub.systemd.spec" };
        format!("resource \"resin_disk\" \"d\" {{\n  image  = resin_image.boot.spec\n  format = \"{format}\"\n  {extra}\n  {signing}\n}}\n")
    };
    let certificate = format!("signing_certificate = file(\"{cert}\")");
    // Wrong at plan: each at its attribute.
    for (format, signing, attribute, message) in [
        (
            "uki",
            format!("{certificate}\n  signing_key_file = \"{other_key}\""),
            "signing_key_file",
            "the private key is not the one of the certificate",
        ),
        (
            "uki",
            format!("{certificate}\n  signing_key = file(\"{other_key}\")"),
            "signing_key",
            "the private key is not the one of the certificate",
        ),
        (
            "uki",
            format!("{certificate}\n  signing_key_file = \"{key}.missing\""),
            "signing_key_file",
            "reading the private key file",
        ),
        (
            "uki",
            format!("signing_key_file = \"{key}\""),
            "signing_key_file",
            "set signing_certificate to the certificate of this key",
        ),
        (
            "raw-efi",
            certificate.clone(),
            "signing_certificate",
            "set one of signing_key, signing_key_file and signing_command",
        ),
        (
            "uki",
            format!("{certificate}\n  signing_key_file = \"{key}\"\n  signing_command = [\"true\"]"),
            "signing_command",
            "not signing_key_file and signing_command",
        ),
        (
            "uki",
            format!("signing_certificate = file(\"{garbage}\")\n  signing_key_file = \"{key}\""),
            "signing_certificate",
            "not a PEM X.509 certificate",
        ),
        ("ipxe", format!("{certificate}\n  signing_key_file = \"{key}\""), "signing_certificate", "holds no UKI"),
    ] {
        workspace.write_config(&disk_config("linux/amd64", &disk(format, &signing)));
        let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
        assert_eq!(plan.code, 1, "{signing}: {}", plan.text());
        assert!(plan.says(&format!("resin_disk {attribute}:")) && plan.says(message), "{signing}: {}", plan.text());
        assert!(!plan.says("PRIVATE KEY"), "no key material in messages: {}", plan.text());
    }
    // Wrong at apply: a signer that fails, one that returns garbage; nothing is written.
    for (command, message) in [
        ("[\"sh\", \"-c\", \"echo the HSM is locked >&2; exit 1\"]", "the HSM is locked"),
        (
            "[\"sh\", \"-c\", \"cat >/dev/null; echo not a signature\"]",
            "are not a signature of the digest by the certificate's key",
        ),
    ] {
        let signing = format!("{certificate}\n  signing_command = {command}");
        workspace.write_config(&disk_config("linux/amd64", &disk("uki", &signing)));
        let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(apply.code, 1, "{command}: {}", apply.text());
        assert!(apply.says(message) && apply.says("signing_command ="), "{command}: {}", apply.text());
        assert!(!dir.join("out/boot.efi").exists(), "{command}");
    }
}

/// A software TPM 2.0 (swtpm) on a socket in `dir`, and the QEMU arguments that plug it in.
fn software_tpm(dir: &Path, arch: &str) -> (std::process::Child, Vec<String>) {
    let socket = dir.join("swtpm.sock");
    let child = std::process::Command::new("swtpm")
        .args(["socket", "--tpm2", "--tpmstate"])
        .arg(format!("dir={}", dir.display()))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}", socket.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("swtpm is installed by make test");
    let started = std::time::Instant::now();
    while !socket.exists() {
        assert!(started.elapsed().as_secs() < 10, "swtpm did not open {}", socket.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let device = if arch == "x86_64" { "tpm-tis,tpmdev=tpm0" } else { "tpm-tis-device,tpmdev=tpm0" };
    let args = [
        "-chardev".to_string(),
        format!("socket,id=chrtpm,path={}", socket.display()),
        "-tpmdev".to_string(),
        "emulator,id=tpm0,chardev=chrtpm".to_string(),
        "-device".to_string(),
        device.to_string(),
    ];
    (child, args.to_vec())
}

#[test]
fn pcr11_known_at_plan_is_what_the_tpm_holds_after_booting_the_uki() {
    let workspace = Workspace::new();
    let (certificate, encrypted_key) = snakeoil("x86_64");
    let key = workspace.work_dir().join("db.key").display().to_string();
    run("openssl", &["pkey", "-in", encrypted_key, "-passin", "pass:snakeoil", "-out", &key]);
    let signing = format!("signing_certificate = file(\"{certificate}\")\n  signing_key_file = \"{key}\"");
    // The SBAT lines of the Secure Boot test: the signed UKI booted here is that test's
    // (its .sbat replaces the stub's, a gap the firmware's image hash must skip).
    let disks = uki("signed", &format!("{signing}\n  {SBAT}")) + &uki("unsigned", SBAT);
    workspace.write_config(&disk_config("linux/amd64", &disks));
    // Known at plan once the image is written (its spec names its files' digests).
    let image = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color", "-target=resin_image.boot"]);
    assert_eq!(image.code, 0, "{}", image.text());
    let plan = workspace.run(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    assert_eq!(plan.code, 0, "{}", plan.text());
    let shown: serde_json::Value = serde_json::from_str(&workspace.run(&["show", "-json", "tfplan"]).stdout).unwrap();
    let planned = |address: &str| {
        let changes = shown["resource_changes"].as_array().unwrap();
        let change = changes.iter().find(|c| c["address"] == address).unwrap();
        change["change"]["after"]["pcr11_sha256"].as_str().map(str::to_string)
    };
    let predicted = planned("resin_disk.signed").expect("pcr11_sha256 is known at plan");
    assert_eq!(planned("resin_disk.unsigned").as_deref(), Some(predicted.as_str()), "signing does not change it");
    let apply = workspace.run(&["apply", "-input=false", "-no-color", "tfplan"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    assert_eq!(workspace.state()["resin_disk.signed"]["pcr11_sha256"], predicted.as_str());

    // The firmware measures the UKI, systemd-stub its sections, into a real (software) TPM.
    let tpm = tempfile::tempdir().unwrap();
    let (mut swtpm, args) = software_tpm(tpm.path(), "x86_64");
    let (_esp_dir, esp) = crate::disk::esp_holding("x86_64", &workspace.work_dir().join("out/signed.efi"));
    let (console, elapsed) = crate::disk::boot_media_with("x86_64", &esp, false, Firmware::SecureBoot, &args);
    let _ = swtpm.kill();
    let _ = swtpm.wait();
    eprintln!("x86_64 signed UKI with a TPM: booted under Secure Boot in {:.1} s", elapsed.as_secs_f64());
    judge_boot("the signed UKI with a TPM", "x86_64", &console);
    let read = console
        .lines()
        .find_map(|line| line.trim().strip_prefix("RESIN-PCR11 "))
        .unwrap_or_else(|| panic!("the image printed no PCR 11:\n{console}"))
        .trim()
        .to_lowercase();
    eprintln!("x86_64 PCR 11: pcr11_sha256 {predicted}, read in the booted image {read}");
    assert_eq!(read, predicted, "PCR 11 read in the booted image");
}
