//! Boot tests: what resin assembles boots under QEMU (KVM for the host's architecture
//! where `/dev/kvm` can be opened, TCG otherwise) and runs its containers with
//! real runc. The fixture packages (a Debian kernel, an init with busybox and runc, a
//! probe container) are built from Debian packages by scripts/boot-fixtures/build.sh,
//! which `make test` runs first.
//!
//! A boot passes only when every marker appears on the console: QEMU exits 0 even after
//! a kernel panic, so the console is the only evidence. A panic, a missing marker or a
//! timeout fails the test and prints the console.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::terraform::Workspace;

const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

pub fn boot_layout() -> PathBuf {
    let path = std::env::var_os("RESIN_BOOT_LAYOUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/boot-layout"));
    assert!(
        path.join("index.json").is_file(),
        "{} is missing: `make test` builds it (scripts/boot-fixtures/build.sh)",
        path.display()
    );
    path
}

/// The cache every test of the boot image shares (blobs and segments, in the target
/// directory, kept between runs): it is made for concurrent runs, each blob and segment
/// verified whenever it is read, so the fixture layers are copied and the boot image's
/// segments compressed once, not once per test.
pub fn shared_boot_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("boot-cache")
}

/// Skips the x86 kernel's check that the IO-APIC timer ticks in its first milliseconds:
/// under TCG on a loaded machine (several QEMUs and tests on 2 cores) the emulated CPU can
/// fall behind and the kernel panics with "IO-APIC + timer doesn't work!" before it reaches
/// the initrd. aarch64 kernels ignore it.
pub const NO_TIMER_CHECK: &str = "no_timer_check";

/// The kernel command line of the boot-test images.
pub fn boot_cmdline() -> String {
    format!("console=ttyS0 console=ttyAMA0 panic=-1 {NO_TIMER_CHECK}")
}

/// The boot-test image: two onboot probes (one granted CAP_NET_ADMIN, with an env var and
/// a bind of a file block; one with nothing) and one service probe; `settings` are more
/// `resin_image` attributes. The provider uses [`shared_boot_cache`].
pub fn boot_config(platform: &str, with_init: bool, settings: &str) -> String {
    let layout = boot_layout();
    let layout = layout.display();
    let init = if with_init { "[resin_package.init.spec]" } else { "[]" };
    format!(
        r#"
provider "resin" {{
  cache_dir = "{cache}"
  platform  = "{platform}"
}}

resource "resin_kernel" "k" {{
  image   = "oci-layout:{layout}:kernel"
  cmdline = "{cmdline}"
}}

resource "resin_package" "init" {{
  name  = "init"
  image = "oci-layout:{layout}:init"
}}

resource "resin_package" "granted" {{
  name         = "granted"
  image        = "oci-layout:{layout}:probe"
  command      = ["/usr/bin/probe", "ONBOOT"]
  capabilities = ["CAP_NET_ADMIN"]
  env          = ["PROBE_ENV=from-terraform", "PATH=/bin:/usr/bin"]
  binds        = ["/etc/resin-fixture:/probe/file:ro"]
}}

resource "resin_package" "withheld" {{
  name    = "withheld"
  image   = "oci-layout:{layout}:probe"
  command = ["/usr/bin/probe", "WITHHELD"]
}}

resource "resin_package" "service" {{
  name    = "service"
  image   = "oci-layout:{layout}:probe"
  command = ["/usr/bin/probe", "SERVICE", "wait"]
}}

resource "resin_image" "boot" {{
  name       = "boot"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  init       = {init}
  onboot     = [resin_package.granted.spec, resin_package.withheld.spec]
  services   = [resin_package.service.spec]
  {settings}

  file {{
    path     = "/etc/resin-fixture"
    contents = "FILE-CONTENT-OK"
  }}
}}
"#,
        cache = shared_boot_cache().display(),
        cmdline = boot_cmdline(),
    )
}

/// Boots kernel + initrd under QEMU for `arch` and returns the console and the boot time.
pub fn boot(arch: &str, kernel: &Path, initrd: &Path) -> (String, Duration) {
    let mut command = match arch {
        "x86_64" => {
            let mut c = Command::new("qemu-system-x86_64");
            c.args(["-m", "512"]).arg("-append").arg(format!("console=ttyS0 panic=-1 {NO_TIMER_CHECK}"));
            c
        }
        "aarch64" => {
            let mut c = Command::new("qemu-system-aarch64");
            c.args(["-M", "virt", "-cpu", "cortex-a57", "-m", "512"]).arg("-append").arg("console=ttyAMA0 panic=-1");
            c
        }
        other => panic!("no QEMU for {other}"),
    };
    command.args(["-nographic", "-no-reboot", "-kernel"]).arg(kernel).arg("-initrd").arg(initrd);
    run_qemu(command)
}

/// Runs a QEMU `command` (with `-nographic`) until it exits or [`BOOT_TIMEOUT`]; returns
/// the console and the time it ran.
pub fn run_qemu(command: Command) -> (String, Duration) {
    run_qemu_until(command, None)
}

/// [`run_qemu`], stopping QEMU as soon as the console shows `until` (firmware that refuses
/// to boot waits at its boot manager instead of exiting).
///
/// Emulated AAVMF has now and then (2 boots of some hundreds, under load) printed its banner
/// and then nothing until QEMU was killed 240 s later, where the same bytes boot in 17-40 s.
/// A boot whose console holds nothing but that banner after [`FIRMWARE_STALL`] is started
/// once more, and says so on stderr and in the console; a second stall is a failure.
pub fn run_qemu_until(mut command: Command, until: Option<&str>) -> (String, Duration) {
    accelerate(&mut command);
    let (console, elapsed, stalled) = run_qemu_once(&mut command, until, true);
    if !stalled {
        return (console, elapsed);
    }
    let note = format!(
        "[boot test: nothing past the firmware's banner in {}s: QEMU stopped and started again]",
        FIRMWARE_STALL.as_secs()
    );
    eprintln!("{note}");
    let (again, more, _) = run_qemu_once(&mut command, until, false);
    (format!("{console}\n{note}\n{again}"), elapsed + more)
}

/// How long a firmware may show nothing past its banner before [`run_qemu_until`] starts
/// QEMU again.
const FIRMWARE_STALL: Duration = Duration::from_secs(120);

/// Whether `console` is a firmware's banner and nothing else.
fn only_firmware_banner(console: &str) -> bool {
    let lines: Vec<&str> = console.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    matches!(lines.as_slice(), [banner] if banner.starts_with("UEFI firmware"))
}

/// One run of `command`: the console, the time it ran, and whether it was stopped as a
/// firmware stall (only when `stop_stalls`).
fn run_qemu_once(command: &mut Command, until: Option<&str>, stop_stalls: bool) -> (String, Duration, bool) {
    let log = tempfile::NamedTempFile::new().unwrap();
    command.stdin(Stdio::null()).stdout(log.reopen().unwrap()).stderr(log.reopen().unwrap());
    let started = Instant::now();
    let mut child = command.spawn().expect("QEMU is installed by make test");
    let console = || {
        let mut bytes = Vec::new();
        log.reopen().unwrap().read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (timed_out, stalled) = loop {
        if child.try_wait().unwrap().is_some() {
            break (false, false);
        }
        let shown = console();
        let stalled = stop_stalls && started.elapsed() > FIRMWARE_STALL && only_firmware_banner(&shown);
        if stalled || until.is_some_and(|pattern| shown.contains(pattern)) {
            let _ = child.kill();
            let _ = child.wait();
            break (false, stalled);
        }
        if started.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break (true, false);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let elapsed = started.elapsed();
    let mut console = console();
    if timed_out {
        console.push_str(&format!("\n[boot test: QEMU killed after {}s]\n", BOOT_TIMEOUT.as_secs()));
    }
    (console, elapsed, stalled)
}

#[test]
fn a_console_with_the_firmware_banner_alone_is_a_stall() {
    assert!(only_firmware_banner("UEFI firmware (version  built at 13:10:49 on Nov  5 2024)\r\n\r\n"));
    assert!(!only_firmware_banner(""), "no banner yet: QEMU itself may still be starting");
    assert!(!only_firmware_banner("UEFI firmware (version 1)\nEFI stub: Booting Linux Kernel...\n"));
    assert!(!only_firmware_banner("BdsDxe: loading Boot0001\n"));
}

/// Runs a guest of the host's architecture under KVM where the host has hardware-assisted
/// KVM (`/dev/kvm` opens and `kvm_intel` or `kvm_amd` is loaded; a paravirtual KVM such as
/// `kvm_pvm` runs only guests built for it): the same boot and the same assertions, many
/// times faster. TCG runs everything else.
fn accelerate(command: &mut Command) {
    let native = format!("qemu-system-{}", std::env::consts::ARCH);
    if command.get_program() == native.as_str() && hardware_kvm() {
        command.args(["-accel", "kvm"]);
    }
}

fn hardware_kvm() -> bool {
    static KVM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KVM.get_or_init(|| {
        let opens = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
        let hardware = ["kvm_intel", "kvm_amd"].iter().any(|module| Path::new("/sys/module").join(module).exists());
        eprintln!("QEMU accelerator: {}", if opens && hardware { "KVM" } else { "TCG (no hardware-assisted KVM)" });
        opens && hardware
    })
}

/// Every marker must be on the console, and no kernel panic or timeout.
pub fn judge(console: &str, markers: &[&str]) -> Result<(), String> {
    let mut problems = Vec::new();
    if console.contains("Kernel panic") {
        problems.push("the kernel panicked".to_string());
    }
    if console.contains("[boot test: QEMU killed after") {
        problems.push("the boot timed out".to_string());
    }
    for marker in markers {
        if !console.contains(marker) {
            problems.push(format!("missing marker {marker:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n----- console -----\n{console}\n----- end of console -----", problems.join("; ")))
    }
}

/// What the boot-test image prints on the console of `arch` when it boots as it should:
/// init ran and loaded a module, each onboot probe ran with what it was granted (CAP_NET_ADMIN
/// is bit 12, an env var, the bind of a file block) or withheld, the service started.
/// Every boot test (each boot format, Secure Boot, the TPM) judges its console by them.
pub fn boot_markers(arch: &str) -> Vec<String> {
    vec![
        format!("RESIN-INIT-OK arch={arch}"),
        "RESIN-MODULE-OK overlay.ko".to_string(),
        format!("RESIN-ONBOOT-OK capeff=0000000000001000 env=from-terraform file=FILE-CONTENT-OK arch={arch}"),
        "RESIN-ONBOOT-EXIT 000-granted 0".to_string(),
        format!("RESIN-WITHHELD-OK capeff=0000000000000000 env=unset file=none arch={arch}"),
        "RESIN-ONBOOT-EXIT 001-withheld 0".to_string(),
        format!("RESIN-SERVICE-OK capeff=0000000000000000 env=unset file=none arch={arch}"),
        "RESIN-BOOT-DONE".to_string(),
    ]
}

#[test]
fn a_kernel_panic_fails_the_boot_check() {
    // No init image: the kernel finds no /init and panics; QEMU still exits 0.
    let workspace = Workspace::new();
    workspace.write_config(&boot_config("linux/arm64", false, ""));
    workspace.apply();
    let out = workspace.work_dir().join("out");
    let (console, _) = boot("aarch64", &out.join("boot-kernel"), &out.join("boot-initrd.img"));
    let report = judge(&console, &["RESIN-INIT-OK"]).expect_err("a panicking boot must fail");
    assert!(report.contains("the kernel panicked") && report.contains("missing marker \"RESIN-INIT-OK\""), "{report}");
    assert!(report.contains("----- console -----"), "the console must be printed");
}

#[test]
fn judging_the_console() {
    assert!(judge("boot\nRESIN-A\nRESIN-B\n", &["RESIN-A", "RESIN-B"]).is_ok());
    let report = judge("RESIN-A\n[boot test: QEMU killed after 240s]\n", &["RESIN-A"]).unwrap_err();
    assert!(report.starts_with("the boot timed out"), "{report}");
}

#[test]
fn a_provider_platform_no_image_offers_is_one_error() {
    // Five images (kernel, init, three probes), each an index of amd64 and arm64.
    let workspace = Workspace::new();
    workspace.write_config(&boot_config("linux/riscv64", true, ""));
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.text());
    let text = plan.text();
    assert_eq!(text.matches("Error: ").count(), 1, "one error, not one per resource:\n{text}");
    assert!(plan.says("No manifest for the provider's platform linux/riscv64"), "{text}");
    assert!(plan.says("provider \"resin\" platform = \"linux/riscv64\""), "{text}");
    assert!(plan.says("the index offers linux/amd64, linux/arm64"), "{text}");

    // A resource that sets its own platform is not the provider's fault: its own error.
    let config = boot_config("linux/amd64", true, "")
        .replace("  name  = \"init\"\n", "  name  = \"init\"\n  platform = \"linux/s390x\"\n");
    assert!(config.contains("linux/s390x"));
    workspace.write_config(&config);
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says("Cannot resolve image"), "{}", plan.text());
    assert!(plan.says("has no manifest for platform linux/s390x"), "{}", plan.text());
}

#[test]
fn images_named_through_an_index_are_pinned_to_it_in_linuxkit_yaml() {
    // Every tag of the boot layout names an index of amd64 and arm64 images.
    let workspace = Workspace::new();
    workspace.write_config(&boot_config("linux/arm64", true, ""));
    workspace.apply();
    let state = workspace.state();
    let layout = boot_layout();
    let index = crate::fixtures::tagged(&layout, "kernel")["digest"].as_str().unwrap().to_string();
    let kernel = &state["resin_kernel.k"];
    assert_ne!(kernel["digest"], index.as_str(), "the kernel's digest is its arm64 manifest's");
    let spec: serde_json::Value = serde_json::from_str(kernel["spec"].as_str().unwrap()).unwrap();
    let pinned = |digest: &str| format!("oci-layout:{}@{digest}", layout.display());
    assert_eq!(spec["image"], pinned(kernel["digest"].as_str().unwrap()).as_str());
    assert_eq!(spec["index"], pinned(&index).as_str(), "both digests are in the spec");
    let yaml_path = state["resin_image.boot"]["linuxkit_yaml_path"].as_str().unwrap();
    let yaml = std::fs::read_to_string(workspace.work_dir().join(yaml_path)).unwrap();
    assert!(yaml.contains(&format!("kernel:\n  image: \"{}\"", pinned(&index))), "{yaml}");
    let init = crate::fixtures::tagged(&layout, "init")["digest"].as_str().unwrap().to_string();
    assert!(yaml.contains(&format!("init:\n  - \"{}\"", pinned(&init))), "{yaml}");
    // The index does not change what is built: a second plan is empty.
    assert_eq!(workspace.plan().code, 0);
}
