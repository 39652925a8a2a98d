//! `resin_boot_check`: the boot-test image booted by the provider itself at apply, judged
//! by its console; a good image passes and is not booted again while nothing changes; a
//! kernel panic, a timeout and bad settings fail with messages that say what happened.

use crate::boot::{boot_config, boot_markers};
use crate::terraform::Workspace;

/// A check of `resin_image.boot` expecting `expect`, with `settings`.
fn check(expect: &[String], settings: &str) -> String {
    let expect: Vec<String> = expect.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "resource \"resin_boot_check\" \"boot\" {{\n  image      = resin_image.boot.spec\n  output_dir = \"./checks\"\n  expect     = [{}]\n  {settings}\n}}\n",
        expect.join(", ")
    )
}

/// Whether a QEMU started in `dir` (the provider's working directory: a workspace's) is
/// running.
fn running(dir: &str) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmdline).contains("qemu-system")
            && std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == dir)
    })
}

#[test]
fn a_good_image_passes_is_not_booted_again_and_a_hang_times_out() {
    let workspace = Workspace::new();
    let markers = boot_markers("x86_64");
    workspace.write_config(&format!("{}\n{}", boot_config("linux/amd64", true, ""), check(&markers, "")));
    let apply = workspace.apply();
    assert!(apply.says("resin_boot_check.boot: Creation complete"), "{}", apply.text());
    let state = workspace.state();
    let checked = &state["resin_boot_check.boot"];
    let seconds = checked["boot_seconds"].as_f64().unwrap();
    eprintln!("x86_64 direct boot check ({}): passed in {seconds:.1} s", checked["accelerator"]);
    assert!(seconds > 0.0);
    let matches = checked["matches"].as_object().unwrap();
    assert_eq!(matches.len(), markers.len());
    let last = matches[markers.last().unwrap()].as_f64().unwrap();
    assert_eq!(last, seconds, "the last pattern is when the boot counts as done");
    let log = workspace.work_dir().join("checks/boot-boot.log");
    assert_eq!(checked["console_log"], "./checks/boot-boot.log");
    let console = std::fs::read_to_string(&log).unwrap();
    assert!(markers.iter().all(|m| console.contains(m.as_str())), "{console}");
    let work = workspace.work_dir().display().to_string();
    assert!(!running(&work), "QEMU is gone");
    // Nothing changed: no boot.
    let plan = workspace.plan();
    assert_eq!(plan.code, 0, "{}", plan.text());

    // The same image, a pattern it never prints: the image powers off, and the check
    // says so.
    let never = vec!["RESIN-INIT-OK".to_string(), "NEVER-PRINTED".to_string()];
    workspace.write_config(&format!("{}\n{}", boot_config("linux/amd64", true, ""), check(&never, "")));
    let plan = workspace.plan();
    assert!(plan.says("must be replaced"), "a new check:\n{}", plan.text());
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    eprintln!("a pattern never printed, as a user sees it:\n{}", apply.stderr);
    assert!(
        apply.says("Boot check boot failed")
            && apply.says("without showing expect pattern \"NEVER-PRINTED\"")
            && apply.says("the VM stopped after")
            && apply.says("init ran")
            && apply.says("The last console lines (./checks/boot-boot.log)")
            && apply.says("RESIN-BOOT-DONE"),
        "{}",
        apply.text()
    );
    assert!(workspace.state().get("resin_boot_check.boot").is_none(), "a failed check is not in the state");

    // A boot slower than the timeout: killed at the timeout, saying how far it got.
    workspace.write_config(&format!(
        "{}\n{}",
        boot_config("linux/amd64", true, ""),
        check(&markers, "timeout_seconds = 4")
    ));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    eprintln!("a timeout as a user sees it:\n{}", apply.stderr);
    assert!(
        apply.says("the VM ran for 4 s (the timeout) without showing expect pattern")
            && (apply.says("the kernel started but never ran init")
                || apply.says("init ran")
                || apply.says("the kernel never started")),
        "{}",
        apply.text()
    );
    assert!(!running(&work), "QEMU is gone");
}

#[test]
fn a_kernel_panic_fails_the_apply_with_the_console() {
    // No init: the kernel finds nothing to run and panics.
    let workspace = Workspace::new();
    let config = format!("{}\n{}", boot_config("linux/amd64", false, ""), check(&["RESIN-INIT-OK".to_string()], ""));
    workspace.write_config(&config);
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    eprintln!("a kernel panic as a user sees it:\n{}", apply.stderr);
    assert!(
        apply.says("matches fail_on pattern \"Kernel panic\"")
            && apply.says("the kernel started but never ran init")
            && apply.says("Kernel panic - not syncing"),
        "{}",
        apply.text()
    );
    assert!(!running(&workspace.work_dir().display().to_string()), "QEMU is gone");
}

#[test]
fn bad_settings_are_plan_errors_at_their_attribute() {
    let workspace = Workspace::new();
    let image = boot_config("linux/amd64", true, "");
    for (settings, says) in [
        ("timeout_seconds = 0", "0 seconds is outside 1..3600"),
        ("timeout_seconds = 86400", "86400 seconds is outside 1..3600"),
        ("fail_on = [\"(unclosed\"]", "\"(unclosed\" is not a regular expression"),
        ("memory_mb = 16", "16 MiB is outside 128..65536"),
    ] {
        workspace.write_config(&format!("{image}\n{}", check(&["ok".to_string()], settings)));
        let plan = workspace.plan();
        assert_eq!(plan.code, 1, "{settings}: {}", plan.text());
        assert!(plan.says(says) && plan.says("resin_boot_check: "), "{settings}: {}", plan.text());
    }
    workspace.write_config(&format!("{image}\n{}", check(&["[".to_string()], "")));
    let plan = workspace.plan();
    assert!(plan.says("Invalid expect") && plan.says("\"[\" is not a regular expression"), "{}", plan.text());
    // A format that does not boot in a VM.
    let disk = "resource \"resin_boot_check\" \"gcp\" {\n  output_dir = \"./checks\"\n  expect     = [\"x\"]\n  disk {\n    path   = \"out/boot.img.tar.gz\"\n    sha256 = \"sha256:00\"\n  }\n}\n";
    workspace.write_config(&format!("{image}\n{disk}"));
    let plan = workspace.plan();
    assert!(plan.says("is a gcp archive: check the raw-efi disk"), "{}", plan.text());
    // An iPXE script without the content hash of what it fetches; on arm64.
    let ipxe = |platform: &str, content_hash: &str| {
        format!("resource \"resin_boot_check\" \"ipxe\" {{\n  output_dir = \"./checks\"\n  platform   = \"{platform}\"\n  expect     = [\"x\"]\n  disk {{\n    path   = \"out/boot.ipxe\"\n    sha256 = \"sha256:00\"\n    {content_hash}\n  }}\n}}\n")
    };
    workspace.write_config(&format!("{image}\n{}", ipxe("linux/amd64", "")));
    let plan = workspace.plan();
    assert!(plan.says("Missing content_hash") && plan.says("boot.ipxe is an iPXE script"), "{}", plan.text());
    workspace.write_config(&format!("{image}\n{}", ipxe("linux/arm64", "content_hash = \"sha256:00\"")));
    let plan = workspace.plan();
    assert!(plan.says("iPXE scripts boot in x86_64 VMs"), "{}", plan.text());
    // No QEMU on the provider's PATH: the plan says which package to install.
    workspace.write_config(&format!("{image}\n{}", check(&["ok".to_string()], "")));
    assert_eq!(workspace.run(&["apply", "-auto-approve", "-input=false", "-target=resin_image.boot"]).code, 0);
    let bare = workspace.work_dir().join("bare-path");
    std::fs::create_dir_all(&bare).unwrap();
    let plan = workspace.run_with_env(&[("PATH", bare.to_str().unwrap())], &["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(
        plan.says("Cannot boot here")
            && plan.says("qemu-system-x86_64 is not installed: install the Debian package qemu-system-x86"),
        "{}",
        plan.text()
    );
}

#[test]
fn an_image_and_its_uki_pass_on_another_architecture() {
    // aarch64 under emulation on any host: the image booted directly, and its UKI loaded
    // by AAVMF.
    let workspace = Workspace::new();
    let markers: Vec<String> = boot_markers("aarch64").iter().map(|m| format!("{m:?}")).collect();
    let uki = format!(
        "resource \"resin_disk\" \"uki\" {{\n  image  = resin_image.boot.spec\n  format = \"uki\"\n  stub   = resin_efi_stub.systemd.spec\n}}\n\nresource \"resin_boot_check\" \"uki\" {{\n  name       = \"uki\"\n  output_dir = \"./checks\"\n  platform   = \"linux/arm64\"\n  expect     = [{}]\n  disk {{\n    path   = resin_disk.uki.path\n    sha256 = resin_disk.uki.sha256\n  }}\n}}\n",
        markers.join(", ")
    );
    workspace.write_config(&format!(
        "{}\n{}",
        crate::disk::disk_config("linux/arm64", &uki),
        check(&boot_markers("aarch64"), "")
    ));
    workspace.apply();
    let state = workspace.state();
    for check in ["resin_boot_check.boot", "resin_boot_check.uki"] {
        let seconds = state[check]["boot_seconds"].as_f64().unwrap();
        eprintln!("aarch64 {check} ({}): passed in {seconds:.1} s", state[check]["accelerator"]);
        assert!(seconds > 0.0);
    }
    assert_eq!(state["resin_boot_check.uki"]["console_log"], "./checks/uki-boot.log");
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn a_broken_init_and_a_service_that_cannot_start_fail_the_check() {
    let workspace = Workspace::new();
    let markers = boot_markers("x86_64");
    // An /init the kernel cannot execute (its interpreter is missing).
    let broken_init =
        "file {\n    path     = \"/init\"\n    contents = \"#!/nonexistent/sh\\n\"\n    mode     = \"0755\"\n  }";
    workspace.write_config(&format!("{}\n{}", boot_config("linux/amd64", true, broken_init), check(&markers, "")));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    eprintln!("a broken init as a user sees it:\n{}", apply.stderr);
    assert!(apply.says("matches fail_on pattern \"Failed to execute /init\""), "{}", apply.text());

    // A service whose command does not exist: runc cannot start it.
    let config = boot_config("linux/amd64", true, "")
        .replace("command = [\"/usr/bin/probe\", \"SERVICE\", \"wait\"]", "command = [\"/usr/bin/no-such-service\"]");
    workspace.write_config(&format!("{config}\n{}", check(&markers, "")));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    eprintln!("a service that cannot start as a user sees it:\n{}", apply.stderr);
    assert!(
        apply.says("matches fail_on pattern \"runc run failed\"")
            && apply.says("init ran; containers started: 000-granted, 001-withheld, ")
            && apply.says("Starting service"),
        "{}",
        apply.text()
    );

    // A service that exits at once (the fixture's init says so, as a supervisor would),
    // caught by a fail_on pattern of the configuration's own.
    let config = boot_config("linux/amd64", true, "").replace(
        "command = [\"/usr/bin/probe\", \"SERVICE\", \"wait\"]",
        "command = [\"/usr/bin/probe\", \"SERVICE\"]",
    );
    let fail_on = "fail_on = [\"Kernel panic\", \"RESIN-SERVICE-EXITED\"]";
    workspace.write_config(&format!("{config}\n{}", check(&markers, fail_on)));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    eprintln!("a service that exits as a user sees it:\n{}", apply.stderr);
    assert!(
        apply.says("the console showed \"RESIN-SERVICE-EXITED ")
            && apply.says("which matches fail_on pattern \"RESIN-SERVICE-EXITED\"")
            && apply.says("RESIN-SERVICE-OK"),
        "{}",
        apply.text()
    );
    assert!(!running(&workspace.work_dir().display().to_string()), "QEMU is gone");
}

#[test]
fn an_ipxe_script_passes_from_the_network() {
    // The script from QEMU's TFTP server (the output directory), the kernel and initrd
    // through the URLs it names.
    let workspace = Workspace::new();
    let markers: Vec<String> = boot_markers("x86_64").iter().map(|m| format!("{m:?}")).collect();
    let ipxe = format!(
        "resource \"resin_disk\" \"ipxe\" {{\n  image    = resin_image.boot.spec\n  format   = \"ipxe\"\n  base_url = \"tftp://10.0.2.2/\"\n}}\n\nresource \"resin_boot_check\" \"ipxe\" {{\n  output_dir = \"./checks\"\n  expect     = [{}]\n  disk {{\n    path         = resin_disk.ipxe.path\n    sha256       = resin_disk.ipxe.sha256\n    content_hash = resin_disk.ipxe.content_hash\n  }}\n}}\n",
        markers.join(", ")
    );
    workspace.write_config(&format!("{}\n{ipxe}", boot_config("linux/amd64", true, "")));
    let apply = workspace.apply();
    let state = workspace.state();
    let checked = &state["resin_boot_check.ipxe"];
    eprintln!("x86_64 iPXE boot check ({}): passed in {:.1} s", checked["accelerator"], checked["boot_seconds"]);
    assert_eq!(checked["console_log"], "./checks/boot-boot.log", "{}", apply.text());
    let console = std::fs::read_to_string(workspace.work_dir().join("checks/boot-boot.log")).unwrap();
    assert!(console.contains("iPXE") && console.contains("RESIN-BOOT-DONE"), "{console}");
    assert_eq!(workspace.plan().code, 0);
    // The image changes, the script's bytes do not: the check runs again all the same.
    workspace.write_config(&format!(
        "{}\n{ipxe}",
        boot_config("linux/amd64", true, "").replace("from-terraform", "from-terraform-2")
    ));
    let plan = workspace.plan();
    assert!(plan.says("resin_boot_check.ipxe must be replaced"), "{}", plan.text());
    assert!(!running(&workspace.work_dir().display().to_string()), "QEMU is gone");
}

#[test]
fn a_killed_terraform_leaves_no_vm_behind() {
    let workspace = Workspace::new();
    workspace.write_config(&format!(
        "{}\n{}",
        boot_config("linux/amd64", true, ""),
        check(&boot_markers("x86_64"), "")
    ));
    // The image first, so that the boot starts soon after the apply.
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color", "-target=resin_image.boot"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    let out = workspace.work_dir().display().to_string();
    let mut terraform = workspace.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let started = std::time::Instant::now();
    while !running(&out) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "QEMU never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Terraform as `kill -9` would stop it (the process running the provider, and the
    // one started, when Terraform re-executed itself).
    let (_, parent) = crate::crashes::provider_of(terraform.id());
    let killed = std::time::Instant::now();
    crate::crashes::kill_9(parent);
    if parent != terraform.id() {
        crate::crashes::kill_9(terraform.id());
    }
    let _ = terraform.wait();
    while running(&out) {
        assert!(killed.elapsed() < std::time::Duration::from_secs(5), "QEMU outlived Terraform");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    eprintln!("QEMU gone {:.1} s after Terraform was killed", killed.elapsed().as_secs_f64());
}

#[test]
fn the_terraform_test_example_passes() {
    // `terraform test` is Terraform 1.6 and later: `make test` runs this on the newer
    // Terraform (the pinned 1.0.3 tests the resource directly, above).
    let workspace = Workspace::new();
    let version = workspace.run(&["version", "-json"]);
    let version: serde_json::Value = serde_json::from_str(&version.stdout).unwrap();
    let version = version["terraform_version"].as_str().unwrap().to_string();
    let numbers: Vec<u32> = version.split(['.', '-']).take(2).map(|n| n.parse().unwrap()).collect();
    assert!(numbers >= vec![1, 6], "terraform test needs Terraform 1.6 or later, not {version}");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/boot-check");
    for file in ["main.tf", "boot.tftest.hcl"] {
        std::fs::copy(example.join(file), workspace.work_dir().join(file)).unwrap();
    }
    let layout = crate::boot::boot_layout().display().to_string();
    let test = workspace.run(&["test", "-no-color", "-var", &format!("layout={layout}")]);
    eprintln!("terraform test on Terraform {version}:\n{}", test.stdout);
    assert_eq!(test.code, 0, "{}", test.text());
    assert!(
        test.says("run \"the_image_boots\"... pass")
            && test.says("run \"a_second_plan_boots_nothing\"... pass")
            && test.says("Success! 2 passed, 0 failed."),
        "{}",
        test.text()
    );
    // It cleaned up after itself (the console log stays).
    let state = workspace.work_dir().join("terraform.tfstate");
    assert!(!state.exists() || std::fs::read_to_string(&state).unwrap().contains("\"resources\": []"));
    assert!(workspace.work_dir().join("out/node-boot.log").is_file());
}
