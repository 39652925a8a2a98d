//! The checkov policy pack (policies/checkov) against its fixtures: every check has a
//! passing and a failing configuration, and checkov (installed by make test, run offline)
//! must give exactly that result for that check.

use std::collections::BTreeMap;
use std::path::Path;

pub fn checkov() -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/checkov/bin/checkov");
    assert!(path.is_file(), "{} is missing: `make test` installs checkov", path.display());
    path
}

#[test]
fn each_policy_passes_its_passing_fixture_and_fails_its_failing_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/checkov");
    let fixtures = root.join("tests");
    let mut checks: Vec<String> =
        std::fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    checks.sort();
    assert_eq!(checks.len(), 10, "one fixture directory per check: {checks:?}");
    let output = std::process::Command::new(checkov())
        .args(["--framework", "terraform", "--skip-download", "-o", "json", "--check", &checks.join(",")])
        .arg("--external-checks-dir")
        .arg(&root)
        .arg("-d")
        .arg(&fixtures)
        .output()
        .unwrap();
    // checkov exits 1 when a check fails, which the failing fixtures make it do.
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("checkov's JSON report");
    let mut outcomes: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for (kind, key) in [("passed", "passed_checks"), ("failed", "failed_checks")] {
        for result in report["results"][key].as_array().unwrap() {
            let check = result["check_id"].as_str().unwrap().to_string();
            let file = result["file_path"].as_str().unwrap().to_string();
            outcomes.entry((check, file)).or_default().push(kind);
        }
    }
    for check in &checks {
        for (fixture, expected) in [("pass", "passed"), ("fail", "failed")] {
            let file = format!("/{check}/{fixture}/main.tf");
            let results = outcomes
                .get(&(check.clone(), file.clone()))
                .unwrap_or_else(|| panic!("{check} did not run on {file}: {outcomes:?}"));
            assert!(results.iter().all(|r| *r == expected), "{check} on {file}: expected {expected}, got {results:?}");
        }
    }
    // A check says nothing of a resource it does not apply to (checkov's UNKNOWN): the iPXE
    // rule judges the iPXE disk of its passing fixture, not the UKI beside it.
    let ipxe = &outcomes[&("CKV_RESIN_8".to_string(), "/CKV_RESIN_8/pass/main.tf".to_string())];
    assert_eq!(ipxe.len(), 1, "CKV_RESIN_8 reported on a disk that is not iPXE: {ipxe:?}");
    // No check may fire on another check's fixtures unexpectedly: every result is accounted for.
    for ((check, file), results) in &outcomes {
        if !file.starts_with(&format!("/{check}/")) {
            assert!(results.iter().all(|r| *r == "passed"), "{check} failed on {file}, another check's fixture");
        }
    }
}

/// checkov's results for `check` by resource: `PASSED` or `FAILED`.
fn results(output: &std::process::Output) -> BTreeMap<String, &'static str> {
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("checkov's JSON report");
    let mut results = BTreeMap::new();
    for (key, outcome) in [("passed_checks", "PASSED"), ("failed_checks", "FAILED")] {
        for result in report["results"][key].as_array().unwrap() {
            results.insert(result["resource"].as_str().unwrap().to_string(), outcome);
        }
    }
    results
}

#[test]
fn a_scanned_plan_judges_the_namespaces_the_image_label_sets() {
    use crate::fixtures::{add_layered_image, tar_layer, Entry};
    let workspace = crate::terraform::Workspace::new();
    let layout = workspace.work_dir().join("layout");
    let program = |name| tar_layer(&[Entry::File(name, b"#!/bin/sh\n", 0o755)]);
    // Neither package sets net or pid: only their images' labels do.
    add_layered_image(
        &layout,
        "ownnet",
        &[program("usr/bin/ownnet")],
        serde_json::json!({ "Cmd": ["/usr/bin/ownnet"], "Labels": { "org.mobyproject.config": "{\"net\":\"new\"}" } }),
    );
    add_layered_image(
        &layout,
        "hostpid",
        &[program("usr/bin/hostpid")],
        serde_json::json!({ "Cmd": ["/usr/bin/hostpid"], "Labels": { "org.mobyproject.config": "{\"net\":\"new\",\"pid\":\"host\"}" } }),
    );
    workspace.write_config(&format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n}}\n\nresource \"resin_package\" \"ownnet\" {{\n  image = \"oci-layout:./layout:ownnet\"\n}}\n\nresource \"resin_package\" \"hostpid\" {{\n  image = \"oci-layout:./layout:hostpid\"\n}}\n",
        workspace.cache_dir.display()
    ));
    let plan = workspace.run(&["plan", "-out=policy.plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 0, "{}", plan.text());
    let shown = workspace.run(&["show", "-json", "policy.plan"]);
    assert_eq!(shown.code, 0, "{}", shown.text());
    std::fs::write(workspace.work_dir().join("plan.json"), &shown.stdout).unwrap();
    let checkov = |framework: &str, target: &[&str]| {
        std::process::Command::new(checkov())
            .args(["--framework", framework, "--skip-download", "-o", "json", "--check", "CKV_RESIN_4"])
            .arg("--external-checks-dir")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/checkov"))
            .args(target)
            .current_dir(workspace.work_dir())
            .output()
            .unwrap()
    };
    // The plan knows each package's spec, with its label: the effective namespaces.
    let from_plan = results(&checkov("terraform_plan", &["-f", "plan.json"]));
    let expected = BTreeMap::from([
        ("resin_package.hostpid".to_string(), "FAILED"),
        ("resin_package.ownnet".to_string(), "PASSED"),
    ]);
    assert_eq!(from_plan, expected);
    // The configuration alone does not: an unset net is LinuxKit's default, the host's.
    let from_config = results(&checkov("terraform", &["-d", "."]));
    assert_eq!(from_config.get("resin_package.ownnet"), Some(&"FAILED"), "{from_config:?}");
}

#[test]
fn the_full_stack_example_passes_the_whole_policy_pack() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/full-stack");
    let output = std::process::Command::new(checkov())
        .args(["--framework", "terraform", "--skip-download", "-o", "json", "--check", "CKV_RESIN_*"])
        .arg("--external-checks-dir")
        .arg(root.join("policies/checkov"))
        .arg("-d")
        .arg(&example)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("checkov's JSON report");
    let ids = |key: &str| -> std::collections::BTreeSet<String> {
        report["results"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r["check_id"].as_str().unwrap(), r["resource"].as_str().unwrap()))
            .collect()
    };
    assert!(ids("failed_checks").is_empty(), "the full-stack example fails {:?}", ids("failed_checks"));
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let passed: std::collections::BTreeSet<String> =
        ids("passed_checks").into_iter().map(|r| r.split(' ').next().unwrap().to_string()).collect();
    // Every check but CKV_RESIN_9 (signed UKIs): the example's one disk is an iPXE script.
    let every: std::collections::BTreeSet<String> =
        (1..=10).filter(|n| *n != 9).map(|n| format!("CKV_RESIN_{n}")).collect();
    assert_eq!(passed, every, "every check of the pack that applies runs on the example and passes");
    // The init images run in no container: each skips CKV_RESIN_4, with its reason.
    let mut skipped: Vec<String> = report["results"]["skipped_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r["check_id"].as_str().unwrap(), r["resource"].as_str().unwrap()))
        .collect();
    skipped.sort();
    let init_images = ["ca_certificates", "containerd", "init", "runc"];
    assert_eq!(skipped, init_images.map(|p| format!("CKV_RESIN_4 resin_package.{p}")), "{skipped:?}");
    // Pinning: every image of the example, the kernel and nine packages.
    let pinned = ids("passed_checks").into_iter().filter(|r| r.starts_with("CKV_RESIN_1 ")).count();
    assert_eq!(pinned, 10, "CKV_RESIN_1 on the kernel and nine packages: {:?}", ids("passed_checks"));
}
