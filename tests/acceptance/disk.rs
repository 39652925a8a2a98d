//! `resin_disk` from the boot fixture image. Each layout boots once under UEFI firmware
//! (OVMF, AAVMF): the raw-efi disk on both architectures, the iso-efi image from a CD on
//! x86_64, an iPXE script network-booted through QEMU's user network (its TFTP server and
//! iPXE ROM), and signed UKIs under Secure Boot (`secure_boot.rs`). The wrappers are proven
//! by bytes: the ESP of every raw-efi and iso-efi image holds the very UKI written beside
//! it, and gcp's `disk.raw` has the raw-efi disk's partition table and that UKI. Also: plan-time content
//! hashes, drift, destroy, and bad input (the same bytes anywhere: `src/disk/golden.rs`).

use std::path::Path;
use std::process::Command;

use crate::boot::{boot_config, boot_layout, judge, run_qemu_until};
use crate::image::{extract_initrd, sha256};
use crate::terraform::Workspace;

const UKI: &str = r#"
resource "resin_disk" "uki" {
  image  = resin_image.boot.spec
  format = "uki"
  stub   = resin_efi_stub.systemd.spec
}
"#;

/// A UKI with SBAT lines of its own, merged into the stub's.
const UKI_SBAT: &str = r#"
resource "resin_disk" "uki" {
  image  = resin_image.boot.spec
  format = "uki"
  stub   = resin_efi_stub.systemd.spec
  sbat   = "resin-boot,1,Resin tests,boot,1,https://example.com/boot"
}
"#;

const IPXE: &str = r#"
resource "resin_disk" "ipxe" {
  image    = resin_image.boot.spec
  format   = "ipxe"
  base_url = "tftp://10.0.2.2/"
}
"#;

/// The boot image for `platform`, systemd's stub and `disks`.
pub fn disk_config(platform: &str, disks: &str) -> String {
    let layout = boot_layout();
    format!(
        "{}\nresource \"resin_efi_stub\" \"systemd\" {{\n  image = \"oci-layout:{}:efi-stub\"\n}}\n{disks}",
        boot_config(platform, true, ""),
        layout.display()
    )
}

/// UEFI firmware as the boot tests run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// Secure Boot off.
    Plain,
    /// Secure Boot enforced, Debian's snakeoil certificate enrolled as PK, KEK and db;
    /// QEMU is stopped once the firmware says it refused an image.
    SecureBoot,
}

/// What firmware prints when Secure Boot refuses an image.
pub const ACCESS_DENIED: &str = "Access Denied";

/// Boots `uki` as the removable-media loader of a FAT disk under `firmware`. The disk is a
/// real FAT image made with dosfstools and mtools (QEMU's emulated `fat:` directory once
/// stalled the firmware before it loaded anything).
pub fn boot_uki_with(arch: &str, uki: &Path, firmware: Firmware) -> (String, std::time::Duration) {
    let esp = esp_holding(arch, uki);
    boot_media(arch, &esp.1, false, firmware)
}

/// A FAT image (made with dosfstools and mtools) holding `uki` as the removable-media
/// loader of `arch`, in a temporary directory kept with it.
pub fn esp_holding(arch: &str, uki: &Path) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let esp = dir.path().join("esp.img").display().to_string();
    let loader = if arch == "x86_64" { "BOOTX64.EFI" } else { "BOOTAA64.EFI" };
    let kibibytes = std::fs::metadata(uki).unwrap().len() / 1024 + 8192;
    run("mkfs.vfat", &["-C", &esp, &kibibytes.to_string()]);
    run("mmd", &["-i", &esp, "::/EFI", "::/EFI/BOOT"]);
    run("mcopy", &["-i", &esp, &uki.display().to_string(), &format!("::/EFI/BOOT/{loader}")]);
    (dir, esp)
}

/// Boots the raw disk `file` (a QEMU drive file) under UEFI firmware: OVMF (x86_64) or
/// AAVMF (aarch64).
fn boot_firmware(arch: &str, file: &str) -> (String, std::time::Duration) {
    boot_media(arch, file, false, Firmware::Plain)
}

/// Boots the ISO image `file` from a (SCSI) CD drive under UEFI firmware.
fn boot_firmware_cd(arch: &str, file: &str) -> (String, std::time::Duration) {
    boot_media(arch, file, true, Firmware::Plain)
}

pub fn boot_media(arch: &str, file: &str, cd: bool, firmware: Firmware) -> (String, std::time::Duration) {
    boot_media_with(arch, file, cd, firmware, &[])
}

/// [`boot_media`] with more QEMU arguments (a TPM).
pub fn boot_media_with(
    arch: &str,
    file: &str,
    cd: bool,
    firmware: Firmware,
    extra: &[String],
) -> (String, std::time::Duration) {
    let (code, vars_template) = match (arch, firmware) {
        ("x86_64", Firmware::Plain) => ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
        ("x86_64", Firmware::SecureBoot) => {
            ("/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd", "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd")
        }
        (_, Firmware::Plain) => ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
        (_, Firmware::SecureBoot) => {
            ("/usr/share/AAVMF/AAVMF_CODE.snakeoil.fd", "/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd")
        }
    };
    let vars = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(vars_template, vars.path()).expect("UEFI firmware is installed by make test");
    let mut command = match arch {
        "x86_64" if firmware == Firmware::SecureBoot => {
            // OVMF's Secure Boot build keeps its variables in SMM, out of the OS's reach.
            let mut c = Command::new("qemu-system-x86_64");
            c.args(["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]);
            c
        }
        "x86_64" => {
            let mut c = Command::new("qemu-system-x86_64");
            c.args(["-machine", "q35"]);
            c
        }
        _ => {
            let mut c = Command::new("qemu-system-aarch64");
            c.args(["-machine", "virt", "-cpu", "cortex-a57"]);
            c
        }
    };
    command
        .args(["-m", "1024", "-nographic", "-no-reboot", "-net", "none"])
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,readonly=on,file={code}"))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,file={}", vars.path().display()))
        .arg("-drive");
    if cd {
        command.arg(format!("if=none,id=cd,media=cdrom,readonly=on,format=raw,file={file}")).args([
            "-device",
            "virtio-scsi-pci",
            "-device",
            "scsi-cd,drive=cd",
        ]);
    } else {
        command.arg(format!("if=none,id=disk,format=raw,file={file}")).args(["-device", "virtio-blk-pci,drive=disk"]);
    }
    command.args(extra);
    run_qemu_until(command, (firmware == Firmware::SecureBoot).then_some(ACCESS_DENIED))
}

pub fn judge_boot(what: &str, arch: &str, console: &str) {
    let markers = crate::boot::boot_markers(arch);
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
    if let Err(report) = judge(console, &markers) {
        panic!("{what} did not boot: {report}");
    }
}

/// The planned value of `attribute` of `address` (`terraform plan -out`, `show -json`).
fn planned(workspace: &Workspace, address: &str, attribute: &str) -> serde_json::Value {
    let plan = workspace.run(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    assert_eq!(plan.code, 0, "{}", plan.text());
    let shown = workspace.run(&["show", "-json", "tfplan"]);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let change = shown["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == address).cloned();
    change.unwrap_or_else(|| panic!("no change for {address}"))["change"]["after"][attribute].clone()
}

/// The UKI's sections, drift and destroy. It is booted as the loader of the raw-efi disk,
/// which holds the very same bytes ([`raw_efi_boots`]), and signed under Secure Boot
/// (`secure_boot.rs`); the same inputs give the same bytes anywhere (the pinned bytes of
/// every format, `src/disk/golden.rs`).
#[test]
fn a_uki_holds_the_release_and_sbat_and_is_replaced_when_edited() {
    let workspace = Workspace::new();
    workspace.write_config(&disk_config("linux/amd64", UKI_SBAT));
    // Once the image is written (its spec then names the digests of its files), the disk's
    // content hash is known at plan.
    let image = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color", "-target=resin_image.boot"]);
    assert_eq!(image.code, 0, "{}", image.text());
    let content_hash = planned(&workspace, "resin_disk.uki", "content_hash");
    assert!(content_hash.as_str().is_some_and(|h| h.starts_with("sha256:")), "known at plan: {content_hash}");
    workspace.apply();
    let state = workspace.state();
    let disk = &state["resin_disk.uki"];
    assert_eq!(disk["content_hash"], content_hash);
    assert_eq!(disk["path"], "./out/boot.efi", "<output_dir>/<name>.efi, both the image's");
    let uki = workspace.work_dir().join(disk["path"].as_str().unwrap());
    assert_eq!(disk["sha256"].as_str().unwrap(), format!("sha256:{}", sha256(&uki)));

    // binutils reads the sections: .uname is the kernel's release (its modules' directory
    // in the initrd), .sbat the stub's lines and ours after one sbat line.
    let section = |name: &str| {
        let dumped = workspace.work_dir().join(format!("section{name}"));
        let only = format!("--only-section={name}");
        run("objcopy", &["-O", "binary", &only, &uki.display().to_string(), &dumped.display().to_string()]);
        String::from_utf8(std::fs::read(dumped).unwrap()).unwrap()
    };
    let initrd = extract_initrd(&workspace.work_dir().join("out/boot-initrd.img"));
    let releases: Vec<String> = std::fs::read_dir(initrd.path().join("lib/modules"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(releases.len(), 1, "{releases:?}");
    assert_eq!(section(".uname"), releases[0]);
    let sbat = section(".sbat");
    let lines: Vec<&str> = sbat.trim_end_matches('\0').lines().collect();
    assert!(lines[0].starts_with("sbat,1,SBAT Version,"), "{sbat}");
    assert!(lines[1].starts_with("systemd,"), "the stub's own lines: {sbat}");
    assert_eq!(lines.last(), Some(&"resin-boot,1,Resin tests,boot,1,https://example.com/boot"), "{sbat}");

    // An edited file is drift: planned again, written again; destroy removes it.
    std::fs::write(&uki, b"edited").unwrap();
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "the edit shows in the plan");
    let edited = format!(
        "{} was changed since apply (now sha256:{}",
        uki.strip_prefix(workspace.work_dir()).unwrap().display(),
        crate::image::sha256(&uki)
    );
    assert!(
        plan.says("files changed since apply") && plan.says(&edited),
        "the plan says which file changed and how:\n{}",
        plan.text()
    );
    workspace.apply();
    assert_eq!(workspace.state()["resin_disk.uki"]["sha256"], disk["sha256"]);
    assert_eq!(workspace.plan().code, 0);
    let destroy = workspace.run(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(destroy.code, 0, "{}", destroy.text());
    assert!(!uki.exists());
}

#[test]
fn an_ipxe_script_network_boots_the_image_from_zstd_frames() {
    // The image's initrd is zstd frames: the kernel unpacks one frame at a time and needs
    // each to end with a cpio entry (runc, larger than a piece, makes frames that span
    // pieces).
    let workspace = Workspace::new();
    let image = boot_config("linux/amd64", true, "compression = \"zstd\"");
    workspace.write_config(&format!("{image}\n{IPXE}"));
    workspace.apply();
    let out = workspace.work_dir().join("out");
    let initrd = std::fs::read(out.join("boot-initrd.img")).unwrap();
    assert_eq!(initrd[..4], [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame first");
    let script = std::fs::read_to_string(out.join("boot.ipxe")).unwrap();
    assert!(
        script.starts_with("#!ipxe\nkernel tftp://10.0.2.2/boot-kernel initrd=boot-initrd.img console=ttyS0"),
        "{script}"
    );
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-m", "1024", "-nographic", "-no-reboot", "-boot", "n"])
        .arg("-netdev")
        .arg(format!("user,id=net0,tftp={},bootfile=boot.ipxe", out.display()))
        .args(["-device", "virtio-net-pci,netdev=net0"]);
    let (console, elapsed) = run_qemu_until(command, None);
    eprintln!("x86_64 iPXE: network-booted and powered off in {:.1} s", elapsed.as_secs_f64());
    judge_boot("the iPXE script", "x86_64", &console);
}

#[test]
fn bad_disk_inputs_are_errors_at_their_attribute() {
    // Every rule is a unit test of resin::disk::inputs; this checks that Terraform points
    // each problem at its attribute's line, for each kind of attribute, in one plan made
    // once the image's spec is known (as it is once the image was applied).
    let workspace = Workspace::new();
    workspace.write_config(&disk_config("linux/amd64", ""));
    workspace.apply();
    let cases = [
        ("vhd", "format = \"vhd\"", "\"vhd\" is not a format: use one of uki, raw-efi, iso-efi, gcp, ipxe"),
        ("small", "size_mb = 65", "65 is not a disk size resin can make"),
        ("url", "base_url = \"boot.example/images\"", "is not a URL"),
        ("sbat", "sbat = \"boot,1,Example\"", "has 3 fields; an SBAT line has six"),
        ("uname", "uname = \"6.1\"", "takes no uname"),
    ];
    let settings = |name: &str| match name {
        "vhd" => "format = \"vhd\"",
        "small" => "format = \"raw-efi\"\n  stub = resin_efi_stub.systemd.spec\n  size_mb = 65",
        "url" => "format = \"ipxe\"\n  base_url = \"boot.example/images\"",
        "sbat" => "format = \"uki\"\n  stub = resin_efi_stub.systemd.spec\n  sbat = \"boot,1,Example\"",
        _ => "format = \"ipxe\"\n  base_url = \"http://x/\"\n  uname = \"6.1\"",
    };
    let disks: String = cases
        .iter()
        .map(|(name, _, _)| {
            format!("resource \"resin_disk\" \"{name}\" {{\n  image = resin_image.boot.spec\n  name = \"{name}\"\n  {}\n}}\n", settings(name))
        })
        .collect();
    workspace.write_config(&disk_config("linux/amd64", &disks));
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.text());
    let text = plan.text();
    // Terraform shows each diagnostic with its resource and the configuration line of the
    // attribute it points at (wrapping the detail: compared with single spaces).
    let diagnostics: Vec<String> =
        text.split("Error: ").skip(1).map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for (name, line, message) in cases {
        let attribute = line.split(' ').next().unwrap();
        let shown = diagnostics.iter().find(|d| d.contains(&format!("with resin_disk.{name},")));
        let shown = shown.unwrap_or_else(|| panic!("no error for resin_disk.{name}:\n{text}"));
        assert!(shown.contains(message), "resin_disk.{name}: {shown}");
        assert!(shown.contains(&format!("resin_disk {attribute}:")), "resin_disk.{name}: {shown}");
        assert!(shown.contains(&format!(": {line} ")), "resin_disk.{name} does not point at {line:?}: {shown}");
    }
    assert_eq!(diagnostics.len(), cases.len(), "{text}");
}

#[test]
fn a_kernel_without_an_efi_stub_cannot_make_a_uki_and_nothing_is_written() {
    let workspace = Workspace::new();
    // The modules tarball as the kernel: no MZ header.
    let config = disk_config("linux/amd64", UKI).replace(
        &format!("cmdline = \"{}\"", crate::boot::boot_cmdline()),
        "cmdline = \"console=ttyS0\"\n  binary  = \"kernel.tar\"\n  modules_tar = \"\"",
    );
    assert!(config.contains("binary  = \"kernel.tar\""));
    workspace.write_config(&config);
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("has no EFI stub"), "{}", apply.text());
    assert!(apply.says("CONFIG_EFI_STUB"), "{}", apply.text());
    let out = workspace.work_dir().join("out");
    assert!(!out.join("boot.efi").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(!leftovers.iter().any(|name| name.to_string_lossy().starts_with(".resin~")), "{leftovers:?}");
}

const RAW_EFI: &str = r#"
resource "resin_disk" "raw" {
  image  = resin_image.boot.spec
  format = "raw-efi"
  stub   = resin_efi_stub.systemd.spec
}
"#;

pub fn run(program: &str, args: &[&str]) -> String {
    let output =
        Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e} (make test installs it)"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn a_raw_efi_disk_passes_the_disk_tools_and_boots_under_uefi_firmware() {
    let workspace = raw_efi_boots("linux/amd64", "x86_64");
    let disk = workspace.work_dir().join("out/boot-efi.img");
    // A size no disk can have is a plan error at size_mb, and the disk written before stays.
    let before = crate::image::sha256(&disk);
    let sized = |size: u32| {
        let raw = RAW_EFI.replace("format = \"raw-efi\"", &format!("format = \"raw-efi\"\n  size_mb = {size}"));
        disk_config("linux/amd64", &raw)
    };
    workspace.write_config(&sized(8));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("resin_disk size_mb: 8 is not a disk size resin can make"), "{}", apply.text());
    assert!(apply.says("resin_disk.raw"), "{}", apply.text());
    assert_eq!(crate::image::sha256(&disk), before, "the previous disk is untouched");
    // A large disk is sparse: its zeros take no room, and it still passes the disk tools.
    workspace.write_config(&sized(2048));
    workspace.apply();
    let metadata = std::fs::metadata(&disk).unwrap();
    assert_eq!(metadata.len(), 2048 << 20);
    let allocated = std::os::unix::fs::MetadataExt::blocks(&metadata) * 512;
    assert!(allocated < 256 << 20, "{allocated} bytes allocated for a 2 GiB disk");
    assert!(run("sgdisk", &["-v", &disk.display().to_string()]).contains("No problems found"));
    let listing = run("mdir", &["-i", &format!("{}@@1M", disk.display()), "::/EFI/BOOT"]);
    assert!(listing.contains("BOOTX64"), "{listing}");
}

#[test]
fn an_aarch64_raw_efi_disk_boots_under_uefi_firmware() {
    raw_efi_boots("linux/arm64", "aarch64");
}

/// Writes the raw-efi disk for `platform` and the UKI beside it, checks the disk with the
/// disk tools, that its ESP's loader is the very UKI, and boots it: the one boot of each
/// architecture's UKI without Secure Boot.
fn raw_efi_boots(platform: &str, arch: &str) -> Workspace {
    let workspace = Workspace::new();
    workspace.write_config(&disk_config(platform, &format!("{RAW_EFI}{UKI}")));
    workspace.apply();
    let disk = workspace.work_dir().join("out/boot-efi.img");
    let disk_text = disk.display().to_string();
    let size = std::fs::metadata(&disk).unwrap().len();
    assert_eq!(size % (1 << 20), 0, "whole MiB");
    assert!(run("sgdisk", &["-v", &disk_text]).contains("No problems found"));
    let partitions = run("sgdisk", &["-p", &disk_text]);
    assert!(partitions.contains("EF00") && partitions.contains("2048"), "{partitions}");
    // The partition alone, for fsck.vfat; mtools reads it in place.
    let esp = tempfile::NamedTempFile::new().unwrap();
    let bytes = std::fs::read(&disk).unwrap();
    // From LBA 2048 to the last usable LBA (the backup table takes the last 33 sectors).
    std::fs::write(esp.path(), &bytes[1 << 20..bytes.len() - 33 * 512]).unwrap();
    run("fsck.vfat", &["-n", &esp.path().display().to_string()]);
    let listing = run("mdir", &["-i", &format!("{disk_text}@@1M"), "::/EFI/BOOT"]);
    let loader = if arch == "x86_64" { "BOOTX64" } else { "BOOTAA64" };
    assert!(listing.contains(loader) && listing.contains("EFI"), "{listing}");
    assert!(listing.contains("1980-01-01") && !listing.contains("1980-00-00"), "a valid DOS date: {listing}");
    let uki = std::fs::read(workspace.work_dir().join("out/boot.efi")).unwrap();
    assert!(loader_of(&disk_text, 1 << 20, arch) == uki, "the ESP's loader is not the UKI written beside it");

    let (console, elapsed) = boot_firmware(arch, &disk_text);
    eprintln!("{arch} raw-efi: booted under UEFI firmware and powered off in {:.1} s", elapsed.as_secs_f64());
    judge_boot("the raw-efi disk", arch, &console);
    workspace
}

#[test]
fn a_gcp_image_file_holds_the_raw_efi_disk_as_gce_imports_it() {
    let workspace = Workspace::new();
    let gcp = RAW_EFI.replace("\"raw\"", "\"gcp\"").replace("raw-efi", "gcp");
    let raw = RAW_EFI.replace("format = \"raw-efi\"", "format = \"raw-efi\"\n  size_mb = 1024");
    workspace.write_config(&disk_config("linux/amd64", &format!("{gcp}{raw}{UKI}")));
    let apply =
        workspace.run_with_env(&[("TF_LOG", "DEBUG")], &["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    // Each phase of the format is logged at DEBUG with its time.
    for phase in ["UKI written", "EFI system partition written", "data regions found", "archive compressed", "written"]
    {
        let logged = apply.stderr.lines().any(|line| {
            line.contains(&format!("disk: {phase}:")) && line.contains("format=gcp") && line.contains("elapsed_ms=")
        });
        assert!(logged, "no DEBUG line for the gcp phase {phase:?}");
    }
    let file = workspace.work_dir().join("out/boot.img.tar.gz");
    let listing = run("tar", &["-tvzf", &file.display().to_string()]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 1, "one member: {listing}");
    assert!(lines[0].ends_with(" disk.raw"), "{listing}");
    assert!(lines[0].contains(" 1073741824 "), "one GiB: {listing}");
    let extracted = tempfile::tempdir().unwrap();
    run("tar", &["-xzf", &file.display().to_string(), "-C", &extracted.path().display().to_string()]);
    let disk = extracted.path().join("disk.raw");
    // A sparse member (GNU tar -S, as GCE's instructions make it): GNU tar writes only
    // the data regions back.
    let metadata = std::fs::metadata(&disk).unwrap();
    assert_eq!(metadata.len(), 1 << 30);
    let allocated = std::os::unix::fs::MetadataExt::blocks(&metadata) * 512;
    assert!(allocated < metadata.len() / 4, "extracted sparse: {allocated} bytes allocated");
    let disk = disk.display().to_string();
    assert!(run("sgdisk", &["-v", &disk]).contains("No problems found"));
    let boot = run("mdir", &["-i", &format!("{disk}@@1M"), "::/EFI/BOOT"]);
    assert!(boot.contains("BOOTX64"), "{boot}");
    // What GCE boots is the raw-efi layout of the same size (the raw-efi tests boot it):
    // the same partition table but for the GUIDs (derived from the format, so two disks of
    // one image never share them), and the very UKI as the loader.
    let raw = workspace.work_dir().join("out/boot-efi.img").display().to_string();
    let table = |disk: &str| -> Vec<String> {
        run("sgdisk", &["-p", disk])
            .lines()
            .filter(|line| !line.starts_with("Disk ") && !line.contains("GUID"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(table(&disk), table(&raw), "disk.raw has the raw-efi partition table");
    let uki = std::fs::read(workspace.work_dir().join("out/boot.efi")).unwrap();
    assert!(loader_of(&disk, 1 << 20, "x86_64") == uki, "disk.raw's loader is not the UKI written beside it");
}

#[test]
fn an_iso_boots_under_uefi_firmware_from_its_el_torito_entry() {
    let (_workspace, file) = iso_holding_the_uki("linux/amd64", "x86_64");
    let (console, elapsed) = boot_firmware_cd("x86_64", &file);
    eprintln!("x86_64 iso-efi: booted under UEFI firmware from a CD and powered off in {:.1} s", elapsed.as_secs_f64());
    judge_boot("the iso-efi image", "x86_64", &console);
}

/// The aarch64 ISO is the x86_64 layout with the aarch64 UKI as `BOOTAA64.EFI`, which the
/// aarch64 raw-efi disk boots.
#[test]
fn an_aarch64_iso_holds_the_aarch64_uki_as_its_el_torito_entry() {
    iso_holding_the_uki("linux/arm64", "aarch64");
}

/// Writes the iso-efi image for `platform` and the UKI beside it, checks the image with
/// xorriso and that its El Torito ESP's loader is the very UKI. Returns the image's path.
fn iso_holding_the_uki(platform: &str, arch: &str) -> (Workspace, String) {
    let workspace = Workspace::new();
    let iso = RAW_EFI.replace("\"raw\"", "\"iso\"").replace("raw-efi", "iso-efi");
    workspace.write_config(&disk_config(platform, &format!("{iso}{UKI}")));
    workspace.apply();
    let file = workspace.work_dir().join("out/boot-efi.iso").display().to_string();
    let report = run("xorriso", &["-indev", &file, "-report_el_torito", "plain"]);
    assert!(report.contains("UEFI"), "an EFI boot entry: {report}");
    let listing = run("xorriso", &["-indev", &file, "-find", "/", "-name", "EFIBOOT.IMG"]);
    assert!(listing.contains("EFIBOOT.IMG"), "{listing}");
    // The ESP starts at sector 23 (src/disk/iso_efi.rs).
    let uki = std::fs::read(workspace.work_dir().join("out/boot.efi")).unwrap();
    assert!(loader_of(&file, 23 * 2048, arch) == uki, "the El Torito ESP's loader is not the UKI written beside it");
    (workspace, file)
}

/// The removable-media loader of `arch` in the FAT file system at `offset` of `image`,
/// read with mtools.
pub fn loader_of(image: &str, offset: u64, arch: &str) -> Vec<u8> {
    let loader = if arch == "x86_64" { "BOOTX64.EFI" } else { "BOOTAA64.EFI" };
    let copied = tempfile::tempdir().unwrap();
    let to = copied.path().join(loader);
    run("mcopy", &["-i", &format!("{image}@@{offset}"), &format!("::/EFI/BOOT/{loader}"), &to.display().to_string()]);
    std::fs::read(to).unwrap()
}

/// Every format's file is what its state records, and a second plan is clean. That the
/// same inputs give the same bytes in any workspace is pinned at library level
/// (`src/disk/golden.rs`).
#[test]
fn every_disk_format_records_the_bytes_it_wrote() {
    let disks = [("raw-efi", "raw"), ("iso-efi", "iso"), ("gcp", "gcp")]
        .iter()
        .map(|(format, name)| RAW_EFI.replace("\"raw\"", &format!("\"{name}\"")).replace("raw-efi", format))
        .chain([IPXE.to_string()])
        .collect::<String>();
    let workspace = Workspace::new();
    workspace.write_config(&disk_config("linux/amd64", &disks));
    workspace.apply();
    let state = workspace.state();
    for name in ["raw", "iso", "gcp", "ipxe"] {
        let disk = &state[format!("resin_disk.{name}").as_str()];
        let path = workspace.work_dir().join(disk["path"].as_str().unwrap());
        assert_eq!(disk["sha256"].as_str().unwrap(), format!("sha256:{}", sha256(&path)), "{name}");
        assert!(disk["content_hash"].as_str().is_some_and(|h| h.starts_with("sha256:")), "{name}");
    }
    let plan = workspace.plan();
    assert_eq!(plan.code, 0, "{}", plan.text());
}

#[test]
fn a_stub_image_without_the_file_is_an_error_at_path() {
    let workspace = Workspace::new();
    let config = disk_config("linux/amd64", "")
        .replace(":efi-stub\"\n}", ":efi-stub\"\n  path  = \"usr/lib/systemd/boot/efi/missing.efi.stub\"\n}");
    assert!(config.contains("missing.efi.stub"));
    workspace.write_config(&config);
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("has no file /usr/lib/systemd/boot/efi/missing.efi.stub"), "{}", apply.text());
    assert!(apply.says("resin_efi_stub.systemd"), "{}", apply.text());
}

/// The real systemd stub of the boot fixtures (amd64), from the Debian package `make test`
/// downloaded.
fn real_stub() -> Vec<u8> {
    let debs = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/debs/amd64");
    let deb = std::fs::read_dir(&debs)
        .expect("make test downloads the fixture packages")
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("systemd-boot-efi_"))
        .expect("systemd-boot-efi is a fixture package");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -xO ./usr/lib/systemd/boot/efi/linuxx64.efi.stub",
            deb.display()
        ))
        .output()
        .unwrap();
    assert!(output.status.success() && output.stdout.starts_with(b"MZ"), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[test]
fn hostile_stubs_are_errors_at_path_and_nothing_is_written() {
    let stub = real_stub();
    let pe = u32::from_le_bytes(stub[0x3c..0x40].try_into().unwrap()) as usize;
    let optional = pe + 24;
    let mut file_alignment = stub.clone();
    file_alignment[optional + 36..optional + 40].copy_from_slice(&(16u32 << 20).to_le_bytes());
    let mut sections = stub.clone();
    sections[pe + 6..pe + 8].copy_from_slice(&200u16.to_le_bytes());
    let layout = tempfile::tempdir().unwrap();
    let path = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
    for (tag, bytes, message) in [
        ("cut", stub[..stub.len() / 2].to_vec(), "beyond the end of the file"),
        ("aligned", file_alignment, "FileAlignment 0x1000000 is not a power of two from 512 to 64 KiB"),
        ("sections", sections, "claims 200 sections"),
    ] {
        crate::fixtures::add_to_layout(layout.path(), tag, &[crate::fixtures::Image::amd64(vec![(path, bytes)])]);
        let workspace = Workspace::new();
        let config = disk_config("linux/amd64", UKI).replace(
            &format!("oci-layout:{}:efi-stub", boot_layout().display()),
            &format!("oci-layout:{}:{tag}", layout.path().display()),
        );
        workspace.write_config(&config);
        let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(apply.code, 1, "{tag}: {}", apply.text());
        assert!(apply.says(message), "{tag}: {}", apply.text());
        assert!(apply.says("resin_efi_stub.systemd") && apply.says("path"), "{tag}: {}", apply.text());
        assert!(!workspace.work_dir().join("out/boot.efi").exists(), "{tag}");
    }
}

#[test]
fn command_lines_that_would_be_cut_or_run_as_commands_are_refused() {
    let workspace = Workspace::new();
    let original = &format!("cmdline = \"{}\"", crate::boot::boot_cmdline());
    // A control character: an error at the kernel's cmdline, at plan.
    let config = disk_config("linux/amd64", IPXE);
    assert!(config.contains(original));
    workspace.write_config(&config.replace(original, "cmdline = \"console=ttyS0\\nchain http://elsewhere/x\""));
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says("resin_kernel cmdline: '\\n' at byte 13 is a control character"), "{}", plan.text());
    // iPXE operators: the ipxe disk refuses the command line naming the word; the image
    // itself (which the kernel takes verbatim) is written.
    workspace.write_config(&config.replace(original, "cmdline = \"console=ttyS0 || chain http://elsewhere/x\""));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("resin_disk image:"), "{}", apply.text());
    assert!(
        apply.says("the word \"||\" ends the kernel command and starts another in an iPXE script"),
        "{}",
        apply.text()
    );
    assert!(!workspace.work_dir().join("out/boot.ipxe").exists());
}

#[test]
fn a_damaged_image_file_is_never_built_into_a_boot_file_and_secrets_stay_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let workspace = Workspace::new();
    let secret = "file {\n    path               = \"/etc/secret\"\n    sensitive_contents = \"s3cret\"\n  }";
    let config = disk_config("linux/amd64", UKI)
        .replace("resource \"resin_image\" \"boot\" {", &format!("resource \"resin_image\" \"boot\" {{\n  {secret}"));
    assert!(config.contains("s3cret"));
    workspace.write_config(&config);
    workspace.apply();
    let out = workspace.work_dir().join("out");
    for file in ["boot-kernel", "boot-initrd.img", "boot-cmdline", "boot-sbom.spdx.json", "boot.efi"] {
        let mode = std::fs::metadata(out.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} of an image with sensitive_contents");
    }

    // Bit rot: one byte of the initrd flipped in place, its size, inode and mtime kept.
    let initrd = out.join("boot-initrd.img");
    let modified = std::fs::metadata(&initrd).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&initrd).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    {
        use std::io::{Seek, Write};
        let mut file = std::fs::File::options().write(true).open(&initrd).unwrap();
        file.seek(std::io::SeekFrom::Start(middle as u64)).unwrap();
        file.write_all(&bytes[middle..middle + 1]).unwrap();
        file.set_modified(modified).unwrap();
    }
    assert_eq!(workspace.plan().code, 0, "refresh trusts an unchanged stamp");
    // A boot file made now refuses the initrd instead of building it in.
    let uki = out.join("boot.efi");
    std::fs::remove_file(&uki).unwrap();
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("resin_image boot's initrd ./out/boot-initrd.img is not what it wrote"), "{}", apply.text());
    assert!(apply.says("terraform apply -replace"), "{}", apply.text());
    assert!(!uki.exists());
    // Writing the image again mends it, and the UKI follows.
    let replace = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color", "-replace=resin_image.boot"]);
    assert_eq!(replace.code, 0, "{}", replace.text());
    assert!(uki.exists());
    assert_eq!(workspace.plan().code, 0);
}
