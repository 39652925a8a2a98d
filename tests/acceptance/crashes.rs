//! `kill -9` of the provider (mid-pull, mid-assembly) and of Terraform itself: the next
//! run removes the temporary files the killed one left, and an orphaned provider stops
//! without putting anything in place.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::fault_proxy::{Fault, FaultProxy, Rule};
use crate::fixtures::{add_layered_image, layer_digests, noise, tar_layer, Entry};
use crate::image::{applied, artifact_digests, image_config, out, sha256};
use crate::terraform::Workspace;
use crate::trust::assert_cache_consistent;

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            children.push(child);
        }
    }
    children
}

/// Whether `pid` is running (not gone, not a zombie).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// The provider process Terraform started, and its parent (waits for it). Terraform runs
/// its work in a child of the process started (panicwrap), so the provider is a
/// descendant, not necessarily a child.
pub(crate) fn provider_of(terraform: u32) -> (u32, u32) {
    wait_for("the provider process", Duration::from_secs(60), || {
        let mut parents = vec![terraform];
        while let Some(parent) = parents.pop() {
            for child in children_of(parent) {
                if std::fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|c| c.starts_with("terraform-prov"))
                {
                    return Some((child, parent));
                }
                parents.push(child);
            }
        }
        None
    })
}

fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

/// The files in `dir` whose names start with `prefix`.
fn temporary_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Makes files look as old as an abandoned run's would be by the time anyone looks.
fn age(files: &[PathBuf]) {
    for file in files {
        let handle = std::fs::OpenOptions::new().write(true).open(file).unwrap();
        handle.set_modified(SystemTime::now() - Duration::from_secs(600)).unwrap();
    }
}

#[test]
fn the_next_run_removes_what_a_provider_killed_mid_pull_left() {
    let (registry, layouts) = crate::basic_registry();
    let init_layer = layer_digests(layouts.path(), &registry.manifest_digest("fixtures/init", "v1")).remove(0);
    let proxy = FaultProxy::start(
        &registry.address,
        vec![Rule::new(&format!("/blobs/{init_layer}"), 1, Fault::StallBody(Duration::from_secs(60)))],
    );
    let workspace = Workspace::new();
    workspace.write_config(&format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n  registry {{\n    address    = \"{a}\"\n    plain_http = true\n  }}\n}}\nresource \"resin_package\" \"init\" {{\n  image = \"{a}/fixtures/init:v1\"\n}}\n",
        workspace.cache_dir.display(),
        a = proxy.address
    ));
    let mut terraform = workspace.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let blobs = workspace.cache_dir.join("blobs/sha256");
    // Half the layer is in a temporary file when the provider dies.
    wait_for("the stalled layer", Duration::from_secs(60), || {
        proxy.seen(&format!("/blobs/{init_layer}")).first().cloned()
    });
    let partial = wait_for("a partial download", Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(200));
        temporary_files(&blobs, ".tmp-").into_iter().find(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
    });
    let (provider, _) = provider_of(terraform.id());
    kill_9(provider);
    assert!(!terraform.wait().unwrap().success());
    assert!(partial.exists(), "the killed download is left behind");

    age(&temporary_files(&blobs, ".tmp-"));
    workspace.apply();
    assert!(!partial.exists(), "the next run removes the abandoned download");
    assert!(workspace.cache_has(&init_layer));
    assert_cache_consistent(&workspace);
}

#[test]
fn the_next_run_removes_what_a_provider_killed_mid_assembly_left() {
    let (workspace, before) = applied();
    let layout = workspace.work_dir().join("layout");

    // An init image big enough for assembly to take a while.
    let big = noise(9, 96 << 20);
    add_layered_image(&layout, "big", &[tar_layer(&[Entry::File("opt/big", &big, 0o644)])], json!({}));
    workspace.write_config(
        &image_config(&workspace, "")
            .replace("init       = [resin_package.init.spec]", "init       = [resin_package.init.spec, resin_package.big.spec]")
            .replace("resource \"resin_package\" \"sysctl\"", "resource \"resin_package\" \"big\" {\n  image = \"oci-layout:./layout:big\"\n}\n\nresource \"resin_package\" \"sysctl\""),
    );
    let output_dir = workspace.work_dir().join("out");
    let segments = workspace.cache_dir.join("segments");
    let mut terraform = workspace.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    wait_for("an initrd segment being written", Duration::from_secs(120), || {
        temporary_files(&segments, ".resin~segment-")
            .into_iter()
            .find(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
    });
    let (provider, _) = provider_of(terraform.id());
    kill_9(provider);
    assert!(!terraform.wait().unwrap().success());
    let left_in = |dir: &Path| temporary_files(dir, ".resin~");
    assert!(!left_in(&output_dir).is_empty(), "the killed assembly leaves its temporary artifacts");
    assert!(!left_in(&segments).is_empty(), "the killed assembly leaves its segment being written");
    assert_eq!(artifact_digests(&workspace), before, "the previous artifacts are intact");

    age(&left_in(&output_dir));
    age(&left_in(&segments));
    workspace.apply();
    for dir in [&output_dir, &segments] {
        assert!(left_in(dir).is_empty(), "the next run removes them: {:?}", left_in(dir));
    }
    assert_ne!(sha256(&out(&workspace, "initrd.img")), before[1]);
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn killing_terraform_stops_the_provider_before_it_puts_anything_in_place() {
    let (registry, layouts) = crate::basic_registry();
    let init_layer = layer_digests(layouts.path(), &registry.manifest_digest("fixtures/init", "v1")).remove(0);
    let proxy = FaultProxy::start(&registry.address, vec![]);
    let workspace = Workspace::new();
    let config = |motd: &str| crate::registry_image_config(&workspace, &proxy.address, motd);
    workspace.write_config(&config("one"));
    workspace.apply();
    let initrd = workspace.work_dir().join("out/reg-initrd.img");
    let before = sha256(&initrd);

    // The image's update must pull again (empty cache), and the layer stalls half way:
    // Terraform is killed while the provider waits for it.
    workspace.write_config(&config("two"));
    std::fs::remove_dir_all(&workspace.cache_dir).unwrap();
    let stall = Duration::from_secs(4);
    proxy.add(Rule::new(&format!("/blobs/{init_layer}"), 1, Fault::StallBody(stall)));
    let mut terraform = workspace.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    wait_for("the stalled layer", Duration::from_secs(60), || {
        proxy.seen(&format!("/blobs/{init_layer}")).first().cloned()
    });
    // The provider doing the apply, and the Terraform process that runs it.
    let (provider, parent) = provider_of(terraform.id());
    let killed = Instant::now();
    kill_9(parent);
    if parent != terraform.id() {
        kill_9(terraform.id());
    }
    let _ = terraform.wait();
    wait_for("the orphaned provider to stop", Duration::from_secs(5), || (!running(provider)).then_some(()));
    let stopped_after = killed.elapsed();

    // Past the stall, a provider that carried on would have written the new initrd.
    std::thread::sleep(stall + Duration::from_secs(3));
    assert_eq!(sha256(&initrd), before, "nothing may be put in place once Terraform is gone");
    assert!(stopped_after < stall, "the provider must stop promptly (it took {stopped_after:?})");
}
