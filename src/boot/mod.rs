//! Booting what was assembled in a VM and judging it by its console ([`console`]), for
//! `resin_boot_check`: assembly never boots, which can mask images that are broken only
//! at boot time.
//!
//! QEMU runs the image's architecture on any host: under KVM when the guest's
//! architecture is the host's and `/dev/kvm` is usable with hardware virtualisation,
//! under TCG (emulation, slower) otherwise. Its serial console is read a line at a time,
//! copied to the console log and judged; the VM is killed as soon as the judgement is in
//! (every expected pattern seen, a failure pattern seen, or the timeout), and with the
//! provider if the provider dies (`setpriv --pdeathsig KILL`). It has no network unless
//! asked.
//!
//! What boots:
//! * an image's kernel and initrd, directly (`-kernel`, `-initrd`, `-append`), no firmware;
//! * a UKI, as UEFI firmware (OVMF, AAVMF) loads it from QEMU's `-kernel`;
//! * a `raw-efi` disk, or an `iso-efi` image as a CD, under that firmware;
//! * an iPXE script, from the network (x86_64: QEMU's iPXE ROM gets it from QEMU's TFTP
//!   server, which serves the script's directory, and runs it; what it fetches comes
//!   through QEMU's user network: `tftp://10.0.2.2/` is that directory, `10.0.2.2` the
//!   host).

pub mod console;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use regex::Regex;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

pub use console::{Judge, Verdict, DEFAULT_FAIL_ON};

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture of an image's platform (`amd64`, `arm64`).
    pub fn of_platform(architecture: &str) -> Option<Arch> {
        match architecture {
            "amd64" => Some(Arch::X86_64),
            "arm64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The Debian package that has this architecture's QEMU.
    fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Aarch64 => "qemu-system-arm",
        }
    }

    /// The UEFI firmware (code, variables template) and the Debian package holding it.
    fn firmware(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Arch::X86_64 => ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", "ovmf"),
            Arch::Aarch64 => ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd", "qemu-efi-aarch64"),
        }
    }

    fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

/// What a VM boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Media {
    /// A kernel and initrd, booted directly with this command line.
    Direct { kernel: PathBuf, initrd: PathBuf, cmdline: String },
    /// A UKI, loaded by the firmware.
    Uki(PathBuf),
    /// A disk image (`raw-efi`), or a CD image (`iso-efi`) when `cdrom`.
    Disk { path: PathBuf, cdrom: bool },
    /// An iPXE script, network-booted.
    Ipxe(PathBuf),
}

impl Media {
    fn needs_firmware(&self) -> bool {
        matches!(self, Media::Uki(_) | Media::Disk { .. })
    }
}

/// The iPXE ROM QEMU's virtio network card boots from (Debian's `ipxe-qemu`).
const IPXE_ROM: &str = "/usr/lib/ipxe/qemu/efi-virtio.rom";

/// A VM.
#[derive(Clone, Debug)]
pub struct Vm {
    pub arch: Arch,
    pub media: Media,
    pub memory_mb: u32,
    pub cpus: u32,
    /// A user-mode network (NAT, no inbound connections).
    pub network: bool,
}

/// Why a VM cannot run on this machine, if it cannot: its QEMU or firmware is missing.
pub fn missing_tools(arch: Arch, media: &Media) -> Option<String> {
    let on_path = |program: &str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    };
    if !on_path(arch.qemu()) {
        return Some(format!("{} is not installed: install the Debian package {}", arch.qemu(), arch.qemu_package()));
    }
    if !on_path("setpriv") {
        return Some("setpriv is not installed: install the Debian package util-linux".to_string());
    }
    if let Media::Ipxe(_) = media {
        if arch != Arch::X86_64 {
            return Some(
                "iPXE scripts boot in x86_64 VMs (QEMU's iPXE ROM): check an arm64 image directly or its UKI"
                    .to_string(),
            );
        }
        if !Path::new(IPXE_ROM).is_file() {
            return Some(format!("QEMU's iPXE ROM {IPXE_ROM} is not installed: install the Debian package ipxe-qemu"));
        }
    }
    let (code, vars, package) = arch.firmware();
    if media.needs_firmware() && !(Path::new(code).is_file() && Path::new(vars).is_file()) {
        return Some(format!("UEFI firmware {code} is not installed: install the Debian package {package}"));
    }
    None
}

/// Whether guests of `arch` run under KVM here: the host's architecture, `/dev/kvm`
/// opens, and hardware virtualisation is there (`kvm_intel`, `kvm_amd`; an aarch64 host's
/// KVM is hardware's).
pub fn kvm(arch: Arch) -> bool {
    if Arch::host() != Some(arch) {
        return false;
    }
    let opens = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    let hardware = arch == Arch::Aarch64
        || ["kvm_intel", "kvm_amd"].iter().any(|module| Path::new("/sys/module").join(module).exists());
    opens && hardware
}

/// What a passed check saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Passed {
    /// From starting QEMU to the last expected pattern.
    pub boot_seconds: f64,
    /// Each expected pattern and when it matched.
    pub matches: Vec<(String, f64)>,
    pub accelerator: &'static str,
}

/// How a check ends when it does not pass.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    #[error("the console showed {line:?}, which matches fail_on pattern {pattern:?} (after {seconds:.1} s); {progress}.\nThe last console lines ({log}):\n{tail}")]
    FailOn { pattern: String, line: String, seconds: f64, progress: String, log: String, tail: String },
    #[error("the VM ran for {seconds:.0} s (the timeout) without showing expect pattern {missing:?}; {progress}.\nThe last console lines ({log}):\n{tail}")]
    Timeout { missing: String, seconds: f64, progress: String, log: String, tail: String },
    #[error("the VM stopped after {seconds:.1} s without showing expect pattern {missing:?} ({status}); {progress}.\nThe last console lines ({log}):\n{tail}")]
    Stopped { missing: String, seconds: f64, status: String, progress: String, log: String, tail: String },
}

/// Boots `vm` until `expect` has all been seen in order, a `fail_on` pattern is seen or
/// `timeout` passes; the console goes to `console_log`. `scratch` holds the firmware's
/// variables for the time of the boot.
pub async fn check(
    vm: &Vm,
    expect: Vec<Regex>,
    fail_on: Vec<Regex>,
    timeout: Duration,
    console_log: &Path,
    scratch: &Path,
) -> Result<Passed> {
    if let Some(problem) = missing_tools(vm.arch, &vm.media) {
        bail!("{problem}");
    }
    let accelerated = kvm(vm.arch);
    let vars = tempfile::NamedTempFile::new_in(scratch).context("a file for the firmware's variables")?;
    let mut command = tokio::process::Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(vm.arch.qemu());
    command.args(qemu_arguments(vm, accelerated, vars.path())?);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    crate::log::debug(
        "boot check: starting QEMU",
        &[("command", format!("{command:?}")), ("accelerator", accelerator(accelerated).to_string())],
    );
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("starting {}", vm.arch.qemu()))?;
    let mut log = tokio::fs::File::create(console_log)
        .await
        .with_context(|| format!("creating the console log {}", console_log.display()))?;
    let stdout = child.stdout.take().expect("piped");
    // QEMU's own messages are read as they come (a full pipe would stop it), the last
    // few kept for the message if it stops.
    let stderr = tokio::spawn(last_bytes(child.stderr.take().expect("piped"), 4096));
    let mut lines = tokio::io::BufReader::new(stdout).split(b'\n');
    let mut judge = Judge::new(expect, fail_on);
    let shown = console_log.display().to_string();
    let deadline = tokio::time::Instant::now() + timeout;
    let outcome = loop {
        let next = match tokio::time::timeout_at(deadline, lines.next_segment()).await {
            Ok(next) => next.context("reading the VM's console")?,
            Err(_) => {
                break Err(Failed::Timeout {
                    missing: judge.missing().unwrap_or_default().to_string(),
                    seconds: started.elapsed().as_secs_f64(),
                    progress: judge.progress(),
                    log: shown.clone(),
                    tail: judge.tail(),
                });
            }
        };
        let Some(bytes) = next else {
            let status = child.wait().await.map_or_else(|e| e.to_string(), |s| s.to_string());
            let error = stderr.await.unwrap_or_default();
            let status = if error.trim().is_empty() { status } else { format!("{status}: {}", error.trim()) };
            break Err(Failed::Stopped {
                missing: judge.missing().unwrap_or_default().to_string(),
                seconds: started.elapsed().as_secs_f64(),
                status,
                progress: judge.progress(),
                log: shown.clone(),
                tail: judge.tail(),
            });
        };
        log.write_all(&bytes).await.context("writing the console log")?;
        log.write_all(b"\n").await.context("writing the console log")?;
        let line = String::from_utf8_lossy(&bytes);
        match judge.line(&line, started.elapsed()) {
            Verdict::Going => {}
            Verdict::Passed => {
                let matches = judge
                    .matches()
                    .into_iter()
                    .map(|(pattern, at)| (pattern.to_string(), at.unwrap_or_default().as_secs_f64()))
                    .collect::<Vec<_>>();
                let boot_seconds = matches.last().map_or(0.0, |(_, at)| *at);
                break Ok(Passed { boot_seconds, matches, accelerator: accelerator(accelerated) });
            }
            Verdict::Failed { pattern, line } => {
                break Err(Failed::FailOn {
                    pattern,
                    line,
                    seconds: started.elapsed().as_secs_f64(),
                    progress: judge.progress(),
                    log: shown.clone(),
                    tail: judge.tail(),
                });
            }
        }
    };
    // The judgement is in: the VM goes, whatever it was doing.
    let _ = child.kill().await;
    log.flush().await.context("writing the console log")?;
    crate::log::info(
        "boot check: done",
        &[("passed", outcome.is_ok().to_string()), ("seconds", format!("{:.1}", started.elapsed().as_secs_f64()))],
    );
    Ok(outcome?)
}

/// What `reader` writes until it ends, the last `keep` bytes of it.
async fn last_bytes(mut reader: impl tokio::io::AsyncRead + Unpin, keep: usize) -> String {
    let mut kept = std::collections::VecDeque::with_capacity(keep);
    let mut buffer = [0; 4096];
    while let Ok(read @ 1..) = tokio::io::AsyncReadExt::read(&mut reader, &mut buffer).await {
        for byte in &buffer[..read] {
            if kept.len() == keep {
                kept.pop_front();
            }
            kept.push_back(*byte);
        }
    }
    String::from_utf8_lossy(kept.make_contiguous()).into_owned()
}

fn accelerator(kvm: bool) -> &'static str {
    if kvm {
        "kvm"
    } else {
        "tcg"
    }
}

/// QEMU's arguments for `vm`: serial console on stdout, no display, no reboot.
fn qemu_arguments(vm: &Vm, kvm: bool, vars: &Path) -> Result<Vec<String>> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    match vm.arch {
        Arch::X86_64 => push(&["-machine", "q35"]),
        Arch::Aarch64 => push(&["-machine", "virt", "-cpu", if kvm { "host" } else { "cortex-a57" }]),
    }
    if kvm {
        push(&["-accel", "kvm"]);
    }
    let (memory, cpus) = (vm.memory_mb.to_string(), vm.cpus.to_string());
    push(&["-m", &memory, "-smp", &cpus, "-nographic", "-no-reboot"]);
    if let Media::Ipxe(script) = &vm.media {
        // The network is the boot device: QEMU's DHCP names the script, its TFTP serves it.
        let (Some(dir), Some(file)) = (script.parent(), script.file_name()) else {
            bail!("{} is not a file", script.display());
        };
        let netdev = format!(
            "user,id=net0,tftp={},bootfile={}",
            qemu_option(&dir.display().to_string()),
            qemu_option(&file.to_string_lossy())
        );
        push(&["-netdev", &netdev, "-device", "virtio-net-pci,netdev=net0", "-boot", "n"]);
    } else if vm.network {
        push(&["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]);
    } else {
        push(&["-nic", "none"]);
    }
    if vm.media.needs_firmware() {
        let (code, template, package) = vm.arch.firmware();
        std::fs::copy(template, vars)
            .with_context(|| format!("copying the firmware's variables {template} (Debian package {package})"))?;
        push(&["-drive", &format!("if=pflash,format=raw,readonly=on,file={code}")]);
        push(&["-drive", &format!("if=pflash,format=raw,file={}", qemu_option(&vars.display().to_string()))]);
    }
    match &vm.media {
        Media::Direct { kernel, initrd, cmdline } => {
            push(&["-kernel", &kernel.display().to_string(), "-initrd", &initrd.display().to_string()]);
            push(&["-append", cmdline]);
        }
        Media::Uki(path) => push(&["-kernel", &path.display().to_string()]),
        Media::Disk { path, cdrom: false } => {
            push(&[
                "-drive",
                &format!("if=none,id=disk,format=raw,snapshot=on,file={}", qemu_option(&path.display().to_string())),
            ]);
            push(&["-device", "virtio-blk-pci,drive=disk"]);
        }
        Media::Disk { path, cdrom: true } => {
            push(&[
                "-drive",
                &format!(
                    "if=none,id=cd,media=cdrom,readonly=on,format=raw,file={}",
                    qemu_option(&path.display().to_string())
                ),
            ]);
            push(&["-device", "virtio-scsi-pci", "-device", "scsi-cd,drive=cd"]);
        }
        Media::Ipxe(_) => {}
    }
    Ok(args)
}

/// `value` as a QEMU option value: a comma doubled, so that it does not start an option.
fn qemu_option(value: &str) -> String {
    value.replace(',', ",,")
}
