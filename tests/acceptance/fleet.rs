//! Publishing images to a registry and booting fleets from it: `resin_publish`'s lifecycle
//! against a registry with basic auth (plan, apply, a moved tag, destroy with and without
//! deleting), `resin_published_image` reading images back on another workspace with an
//! empty cache, and machines network-booting a published image by digest through a
//! pull-through mirror.

use std::path::Path;
use std::process::Command;

use crate::boot::{boot_config, boot_layout, boot_markers, judge, run_qemu_until, shared_boot_cache};
use crate::disk::judge_boot;
use crate::fault_proxy::{Fault, FaultProxy, Rule};
use crate::registry::Registry;
use crate::terraform::Workspace;
use crate::{basic_packages, provider_block, push_basic_fixtures};

/// The basic image `reg` and `publishes` (more resources).
fn published_config(workspace: &Workspace, registry: &Registry, publishes: &str) -> String {
    format!(
        "{}\n{}\nresource \"resin_image\" \"img\" {{\n  name       = \"reg\"\n  output_dir = \"./out\"\n  kernel     = resin_kernel.k.spec\n  init       = [resin_package.init.spec]\n}}\n{publishes}",
        provider_block(workspace, &[registry], true),
        basic_packages(&registry.address),
    )
}

/// `skopeo inspect --raw` of `reference` on `registry`: the document, or `None` when the
/// registry has nothing there.
fn raw_manifest(registry: &Registry, reference: &str) -> Option<serde_json::Value> {
    let mut command = Command::new("skopeo");
    command.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some((user, password)) = &registry.credentials {
        command.arg(format!("--creds={user}:{password}"));
    }
    let output = command
        .arg(format!("docker://{}/{reference}", registry.address))
        .output()
        .expect("skopeo is installed by make test");
    output.status.success().then(|| serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn a_publication_is_planned_applied_refreshed_and_destroyed_as_asked() {
    let registry = Registry::start(Some(("pusher", "s3cret")));
    let layouts = tempfile::tempdir().unwrap();
    push_basic_fixtures(&registry, layouts.path());
    let workspace = Workspace::new();
    let publishes = |repository: &str, tag: &str| {
        format!(
            r#"
resource "resin_publish" "kept" {{
  images     = [resin_image.img.spec]
  repository = "{repository}"
  tag        = "{tag}"
}}

resource "resin_publish" "deleted" {{
  images            = [resin_image.img.spec]
  repository        = "{address}/fleet/reg"
  tag               = "scratch"
  delete_on_destroy = true
}}

data "resin_published_image" "back" {{
  reference  = resin_publish.kept.reference
  output_dir = "./back"
}}
"#,
            address = registry.address
        )
    };
    let repository = format!("{}/fleet/reg", registry.address);

    // Bad targets are errors at their attribute, before anything is built.
    for (repository, tag, says) in [
        (format!("{repository}:v1"), "v1", "is not a repository: expected `registry/path` without a tag or digest"),
        (repository.clone(), "-v1", "\"-v1\" is not a tag"),
        (format!("{repository}@sha256:{}", "a".repeat(64)), "v1", "is not a repository"),
    ] {
        workspace.write_config(&published_config(&workspace, &registry, &publishes(&repository, tag)));
        let plan = workspace.plan();
        assert_eq!(plan.code, 1, "{}", plan.text());
        assert!(plan.says(says) && plan.says("resin_publish: "), "{says}:\n{}", plan.text());
    }
    assert!(!workspace.work_dir().join("out").exists(), "nothing was built");

    workspace.write_config(&published_config(&workspace, &registry, &publishes(&repository, "v1")));
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    workspace.apply();
    let state = workspace.state();
    let kept = &state["resin_publish.kept"];
    let digest = registry.manifest_digest("fleet/reg", "v1");
    assert_eq!(kept["digest"], digest.as_str());
    assert_eq!(kept["reference"], format!("{repository}@{digest}").as_str());
    assert_eq!(kept["id"], format!("{repository}:v1").as_str());
    assert_eq!(state["resin_publish.deleted"]["digest"], digest.as_str(), "the same content, the same manifest");
    // The artifact as the registry holds it.
    let manifest = raw_manifest(&registry, "fleet/reg:v1").unwrap();
    eprintln!("the artifact (skopeo inspect --raw):\n{}", serde_json::to_string_pretty(&manifest).unwrap());
    assert_eq!(manifest["artifactType"], "application/vnd.resin.image.v1");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.resin.image.config.v1+json");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers[0]["mediaType"], "application/vnd.resin.image.kernel.v1");
    assert_eq!(layers[0]["digest"], state["resin_image.img"]["kernel_sha256"]);
    let image_spec: serde_json::Value =
        serde_json::from_str(state["resin_image.img"]["spec"].as_str().unwrap()).unwrap();
    assert_eq!(layers.len(), 1 + image_spec["initrd_parts"].as_array().unwrap().len());
    assert!(layers[1..].iter().all(|l| l["mediaType"] == "application/vnd.resin.image.initrd.v1.cpio+gzip"));
    // The SBOM is a referrer, listed under the fallback tag (distribution 2.8 has no
    // referrers API).
    let referrers = raw_manifest(&registry, &format!("fleet/reg:sha256-{}", &digest["sha256:".len()..])).unwrap();
    let sbom = &referrers["manifests"][0];
    assert_eq!(sbom["artifactType"], "application/spdx+json");
    let sbom = raw_manifest(&registry, &format!("fleet/reg@{}", sbom["digest"].as_str().unwrap())).unwrap();
    assert_eq!(sbom["subject"]["digest"], digest.as_str());
    assert_eq!(sbom["layers"][0]["digest"], state["resin_image.img"]["sbom_sha256"]);
    // Read back: the same files.
    let back = &state["data.resin_published_image.back"];
    assert_eq!(back["digest"], digest.as_str());
    assert_eq!(back["content_hash"], state["resin_image.img"]["content_hash"]);
    let out = workspace.work_dir();
    for file in ["reg-kernel", "reg-initrd.img"] {
        assert!(
            std::fs::read(out.join("out").join(file)).unwrap() == std::fs::read(out.join("back").join(file)).unwrap(),
            "{file}"
        );
    }
    let plan = workspace.plan();
    assert_eq!(plan.code, 0, "{}", plan.text());

    // The tag moved (another push): the plan shows it and apply publishes again.
    registry.push(layouts.path(), "v1", "fleet/reg", false);
    assert_ne!(registry.manifest_digest("fleet/reg", "v1"), digest);
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    assert!(plan.says("the tag moved") && plan.says(&format!("not {digest} as published")), "{}", plan.text());
    let apply = workspace.apply();
    assert!(apply.says("0 added, 1 changed, 0 destroyed"), "{}", apply.text());
    assert_eq!(registry.manifest_digest("fleet/reg", "v1"), digest, "the same manifest again");
    assert_eq!(workspace.plan().code, 0);

    // A tag that moves again between plan and apply is not overwritten.
    registry.push(layouts.path(), "v1", "fleet/reg", false);
    let plan = workspace.run(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    assert_eq!(plan.code, 0, "{}", plan.text());
    crate::retag(layouts.path(), "init-v1", "v1");
    registry.push(layouts.path(), "v1", "fleet/reg", false);
    let other = registry.manifest_digest("fleet/reg", "v1");
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color", "tfplan"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(
        apply.says("The tag moved since plan") && apply.says(&format!("{repository}:v1 names {other} now")),
        "{}",
        apply.text()
    );
    assert_eq!(registry.manifest_digest("fleet/reg", "v1"), other, "nothing was published");
    workspace.apply();
    assert_eq!(registry.manifest_digest("fleet/reg", "v1"), digest);

    // Destroy: the kept tag stays, and the plan and apply say so; the other is deleted.
    let destroy = workspace.run(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(destroy.code, 0, "{}", destroy.text());
    assert!(
        destroy.says(&format!("the registry keeps {repository}:v1")) && destroy.says("delete_on_destroy = true"),
        "{}",
        destroy.text()
    );
    assert!(raw_manifest(&registry, "fleet/reg:scratch").is_none(), "the scratch tag is deleted");
    // distribution 2.8 deletes no tags: the manifest went, and with it every tag naming it.
    assert!(raw_manifest(&registry, "fleet/reg:v1").is_none());
}

#[test]
fn publishing_fails_clearly_without_push_access_or_with_an_image_that_is_not_resins() {
    let (fixtures, _layouts) = crate::basic_registry();
    let target = Registry::start(Some(("pusher", "s3cret")));
    let workspace = Workspace::new();
    let repository = format!("{}/fleet/reg", target.address);
    let config = format!(
        "{}\n{}\nresource \"resin_image\" \"img\" {{\n  name       = \"reg\"\n  output_dir = \"./out\"\n  kernel     = resin_kernel.k.spec\n  init       = [resin_package.init.spec]\n}}\n\nresource \"resin_publish\" \"p\" {{\n  images     = [resin_image.img.spec]\n  repository = \"{repository}\"\n  tag        = \"v1\"\n}}\n",
        provider_block(&workspace, &[&fixtures, &target], true),
        basic_packages(&fixtures.address),
    );
    workspace.write_config(&config.replace("password = \"s3cret\"", "password = \"wrong\""));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(
        apply.says(&format!("Could not publish to {repository}:v1"))
            && apply.says(&format!("not authorised by registry {}", target.address))
            && apply.says("with resin_publish.p"),
        "{}",
        apply.text()
    );
    assert!(workspace.state().get("resin_publish.p").is_none(), "nothing was published");
    assert!(target.blobs().is_empty(), "no blob reached the registry");
    workspace.write_config(&config);
    workspace.apply();
    assert_eq!(workspace.state()["resin_publish.p"]["digest"], target.manifest_digest("fleet/reg", "v1").as_str());

    // A reference that is not a resin artifact.
    let reader = Workspace::new();
    reader.write_config(&format!(
        "{}\ndata \"resin_published_image\" \"x\" {{\n  reference  = \"{}/fixtures/init:v1\"\n  output_dir = \"./x\"\n}}\n",
        provider_block(&reader, &[&fixtures], true),
        fixtures.address
    ));
    let plan = reader.plan();
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(
        plan.says("is not a resin image") && plan.says(&format!("{}/fixtures/init@sha256:", fixtures.address)),
        "{}",
        plan.text()
    );
    assert!(!reader.work_dir().join("x").exists());
}

#[test]
fn a_push_cut_off_is_retried_and_one_that_keeps_failing_leaves_the_tag_where_it_was() {
    let (fixtures, _layouts) = crate::basic_registry();
    let target = Registry::start(None);
    let proxy = FaultProxy::start(
        &target.address,
        vec![
            // An upload answered 503, a manifest's answer cut off: retried.
            Rule::new("PUT /v2/fleet/reg/blobs/uploads/", 1, Fault::Status(503, None)),
            Rule::new("PUT /v2/fleet/reg/manifests/sha256:", 1, Fault::CutOff),
            // The tag refused every time (5 attempts).
            Rule::new("PUT /v2/fleet/reg/manifests/v1 ", 5, Fault::Status(502, None)),
        ],
    );
    let workspace = Workspace::new();
    let repository = format!("{}/fleet/reg", proxy.address);
    workspace.write_config(&format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n  registry {{\n    address    = \"{}\"\n    plain_http = true\n  }}\n  registry {{\n    address    = \"{}\"\n    plain_http = true\n  }}\n}}\n{}\nresource \"resin_image\" \"img\" {{\n  name       = \"reg\"\n  output_dir = \"./out\"\n  kernel     = resin_kernel.k.spec\n  init       = [resin_package.init.spec]\n}}\n\nresource \"resin_publish\" \"p\" {{\n  images     = [resin_image.img.spec]\n  repository = \"{repository}\"\n  tag        = \"v1\"\n}}\n",
        workspace.cache_dir.display(),
        fixtures.address,
        proxy.address,
        basic_packages(&fixtures.address),
    ));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says(&format!("Could not publish to {repository}:v1")) && apply.says("HTTP 502"), "{}", apply.text());
    assert!(raw_manifest(&target, "fleet/reg:v1").is_none(), "no tag names a partial publication");
    assert!(workspace.state().get("resin_publish.p").is_none());
    let uploads = proxy.seen("PUT /v2/fleet/reg/blobs/uploads/");
    assert!(uploads[0].contains("Status(503") && uploads[1] == "pass", "retried: {uploads:?}");
    let manifests = proxy.seen("PUT /v2/fleet/reg/manifests/sha256:");
    assert!(manifests[0].contains("CutOff") && manifests[1] == "pass", "retried: {manifests:?}");
    assert_eq!(proxy.seen("PUT /v2/fleet/reg/manifests/v1 ").len(), 5);
    // Next time the blobs are there: none is sent again.
    workspace.apply();
    assert_eq!(proxy.seen("PUT /v2/fleet/reg/blobs/uploads/").len(), uploads.len(), "no blob uploaded again");
    let digest = workspace.state()["resin_publish.p"]["digest"].as_str().unwrap().to_string();
    assert!(raw_manifest(&target, &format!("fleet/reg@{digest}")).is_some());
    assert_eq!(workspace.plan().code, 0);
}

/// The boot-test image ([`boot_config`]) for `platform`, without its provider block, its
/// resources renamed with `suffix` (the image keeps its name `boot`) and written to
/// `./out<suffix>`; `service_env` is the service's env, if any.
fn boot_image(platform: &str, suffix: &str, service_env: Option<&str>) -> String {
    let config = boot_config(platform, true, "");
    let mut text = config[config.find("resource \"resin_kernel\"").unwrap()..].to_string();
    for (kind, name) in [
        ("resin_kernel", "k"),
        ("resin_package", "init"),
        ("resin_package", "granted"),
        ("resin_package", "withheld"),
        ("resin_package", "service"),
        ("resin_image", "boot"),
    ] {
        text = text
            .replace(&format!("resource \"{kind}\" \"{name}\""), &format!("resource \"{kind}\" \"{name}{suffix}\""))
            .replace(&format!("{kind}.{name}.spec"), &format!("{kind}.{name}{suffix}.spec"));
    }
    text = text.replace("output_dir = \"./out\"", &format!("output_dir = \"./out{suffix}\""));
    if let Some(env) = service_env {
        text = text.replace(
            "command = [\"/usr/bin/probe\", \"SERVICE\", \"wait\"]",
            &format!("command = [\"/usr/bin/probe\", \"SERVICE\", \"wait\"]\n  env     = [\"PROBE_ENV={env}\", \"PATH=/bin:/usr/bin\"]"),
        );
    }
    let mut pinned = String::new();
    for line in text.lines() {
        pinned.push_str(line);
        pinned.push('\n');
        if line.trim_start().starts_with("image") && line.contains("oci-layout:") {
            pinned.push_str(&format!("  platform = \"{platform}\"\n"));
        }
    }
    pinned
}

/// A provider block with `cache_dir` and the primary registry's credentials.
fn fleet_provider(cache_dir: &Path, primary: &Registry) -> String {
    let (user, password) = primary.credentials.clone().unwrap();
    format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n  registry {{\n    address    = \"{}\"\n    plain_http = true\n    username   = \"{user}\"\n    password   = \"{password}\"\n  }}\n}}\n",
        cache_dir.display(),
        primary.address
    )
}

/// What builds and publishes the boot image for amd64 and arm64 under `fleet/boot:v1`, and
/// makes a UKI of the amd64 image.
fn builder_config(primary: &Registry, service_env: Option<&str>) -> String {
    format!(
        "{}\n{}\n{}\nresource \"resin_efi_stub\" \"systemd\" {{\n  image = \"oci-layout:{}:efi-stub\"\n}}\n\nresource \"resin_disk\" \"uki\" {{\n  image  = resin_image.boot.spec\n  format = \"uki\"\n  stub   = resin_efi_stub.systemd.spec\n}}\n\nresource \"resin_publish\" \"fleet\" {{\n  images     = [resin_image.boot.spec, resin_image.boot_arm64.spec]\n  repository = \"{}/fleet/boot\"\n  tag        = \"v1\"\n\n  disk {{\n    path     = resin_disk.uki.path\n    sha256   = resin_disk.uki.sha256\n    platform = \"linux/amd64\"\n  }}\n}}\n",
        fleet_provider(&shared_boot_cache(), primary),
        boot_image("linux/amd64", "", service_env),
        boot_image("linux/arm64", "_arm64", service_env),
        boot_layout().display(),
        primary.address
    )
}

/// What another machine declares: the published image read back for both platforms, a
/// UKI of it and an iPXE script booting it from the mirror.
fn reader_config(workspace: &Workspace, primary: &Registry, mirror: &Registry) -> String {
    let port = mirror.address.rsplit(':').next().unwrap();
    format!(
        "{}\ndata \"resin_published_image\" \"boot\" {{\n  reference  = \"{address}/fleet/boot:v1\"\n  output_dir = \"./out\"\n}}\n\ndata \"resin_published_image\" \"boot_arm64\" {{\n  reference  = \"{address}/fleet/boot:v1\"\n  platform   = \"linux/arm64\"\n  output_dir = \"./out-arm64\"\n}}\n\nresource \"resin_efi_stub\" \"systemd\" {{\n  image = \"oci-layout:{layout}:efi-stub\"\n}}\n\nresource \"resin_disk\" \"uki\" {{\n  image  = data.resin_published_image.boot.spec\n  format = \"uki\"\n  stub   = resin_efi_stub.systemd.spec\n}}\n\nresource \"resin_disk\" \"ipxe\" {{\n  image    = data.resin_published_image.boot.spec\n  format   = \"ipxe\"\n  base_url = \"http://10.0.2.2:{port}\"\n}}\n",
        fleet_provider(&workspace.cache_dir, primary),
        address = primary.address,
        layout = boot_layout().display(),
    )
}

/// Network-boots `count` x86_64 machines at once from the iPXE script in `dir` (QEMU's
/// user network: its TFTP server hands out the script, the host is 10.0.2.2); returns each
/// console and boot time.
fn boot_fleet(dir: &Path, count: usize) -> Vec<(String, std::time::Duration)> {
    let machines: Vec<_> = (0..count)
        .map(|_| {
            let dir = dir.to_path_buf();
            std::thread::spawn(move || {
                let mut command = Command::new("qemu-system-x86_64");
                command
                    .args(["-m", "768", "-nographic", "-no-reboot", "-boot", "n"])
                    .arg("-netdev")
                    .arg(format!("user,id=net0,tftp={},bootfile=boot.ipxe", dir.display()))
                    .args(["-device", "virtio-net-pci,netdev=net0"]);
                run_qemu_until(command, None)
            })
        })
        .collect();
    machines.into_iter().map(|machine| machine.join().unwrap()).collect()
}

/// The blob digests fetched with `GET` (answered 200) in a registry's access log (iPXE
/// escapes the digest's colon).
fn blobs_fetched(log: &str, repository: &str) -> Vec<String> {
    let prefix = format!("\"GET /v2/{repository}/blobs/");
    log.lines()
        .filter(|line| line.contains(" 200 "))
        .filter_map(|line| {
            line.split_once(prefix.as_str()).map(|(_, rest)| rest.split(' ').next().unwrap().replace("%3A", ":"))
        })
        .collect()
}

/// The blobs an image's iPXE script fetches, in order: the kernel, then the initrd parts.
fn script_blobs(script: &str) -> Vec<String> {
    script
        .split_whitespace()
        .filter_map(|word| word.split_once("/blobs/").map(|(_, digest)| digest.to_string()))
        .collect()
}

#[test]
fn a_fleet_netboots_a_published_image_through_a_mirror_and_a_changed_package_is_one_new_blob() {
    // The registry wants bearer tokens (as Docker Hub and ghcr do, and as distribution's
    // pull-through proxy needs of its remote); machines fetch from an anonymous mirror.
    let primary = Registry::start_with_token_auth("pusher", "s3cret");
    let mirror = Registry::start_mirror(&primary);
    let builder = Workspace::new();
    builder.write_config(&builder_config(&primary, None));
    builder.apply();
    let state = builder.state();
    let published = &state["resin_publish.fleet"];
    let index = published["digest"].as_str().unwrap().to_string();
    let manifests = published["manifests"].as_object().unwrap().clone();
    assert_eq!(manifests.len(), 2, "{published}");
    // The UKI is attached to the amd64 image as a referrer.
    let amd64 = manifests["linux/amd64"].as_str().unwrap();
    let referrers = raw_manifest(&primary, &format!("fleet/boot:sha256-{}", &amd64["sha256:".len()..])).unwrap();
    let uki = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["artifactType"] == "application/vnd.resin.disk.v1");
    let uki =
        raw_manifest(&primary, &format!("fleet/boot@{}", uki.expect("a disk referrer")["digest"].as_str().unwrap()))
            .unwrap();
    assert_eq!(uki["layers"][0]["mediaType"], "application/vnd.resin.disk.uki.v1");
    assert_eq!(uki["layers"][0]["digest"], state["resin_disk.uki"]["sha256"]);
    assert_eq!(uki["subject"]["digest"], amd64);
    let cold_bytes: u64 = primary.blobs().values().sum();
    eprintln!("published cold: {} blobs, {cold_bytes} bytes in the registry", primary.blobs().len());
    assert_eq!(builder.plan().code, 0);

    // Another machine, its cache empty: the same files, the same UKI.
    let reader = Workspace::new();
    reader.write_config(&reader_config(&reader, &primary, &mirror));
    reader.apply();
    let (built, read) = (builder.work_dir(), reader.work_dir());
    for (from, to) in [
        ("out/boot.efi", "out/boot.efi"),
        ("out/boot-initrd.img", "out/boot-initrd.img"),
        ("out_arm64/boot-kernel", "out-arm64/boot-kernel"),
        ("out_arm64/boot-initrd.img", "out-arm64/boot-initrd.img"),
    ] {
        assert!(
            std::fs::read(built.join(from)).unwrap() == std::fs::read(read.join(to)).unwrap(),
            "{from} and {to} differ"
        );
    }
    let reader_state = reader.state();
    assert_eq!(reader_state["resin_disk.uki"]["sha256"], state["resin_disk.uki"]["sha256"]);
    assert_eq!(reader_state["data.resin_published_image.boot"]["digest"], manifests["linux/amd64"]);
    assert_eq!(reader.plan().code, 0);

    // The fleet: three machines at once, from the mirror, by digest.
    let script = std::fs::read_to_string(read.join("out/boot.ipxe")).unwrap();
    let blobs = script_blobs(&script);
    eprintln!("the iPXE script:\n{script}");
    for (n, (console, took)) in boot_fleet(&read.join("out"), 3).iter().enumerate() {
        eprintln!("machine {n}: network-booted from the mirror and powered off in {:.1} s", took.as_secs_f64());
        judge_boot(&format!("machine {n} of the fleet"), "x86_64", console);
    }
    let fetched = blobs_fetched(&mirror.log(), "fleet/boot");
    for blob in &blobs {
        let listed = blobs.iter().filter(|b| *b == blob).count();
        let served = fetched.iter().filter(|f| *f == blob).count();
        assert_eq!(served, 3 * listed, "{blob} fetched once per machine:\n{}", mirror.log());
    }
    eprintln!("the mirror served {} blob fetches for 3 machines", fetched.len());

    // One package changed: its segment is the one new initrd blob of each platform.
    let before = primary.blobs();
    builder.write_config(&builder_config(&primary, Some("fleet-v2")));
    builder.apply();
    let state = builder.state();
    assert_ne!(state["resin_publish.fleet"]["digest"], index.as_str());
    let after = primary.blobs();
    let new: std::collections::BTreeMap<&String, &u64> =
        after.iter().filter(|(d, _)| !before.contains_key(*d)).collect();
    let mut changed_layers = 0;
    for digest in state["resin_publish.fleet"]["manifests"].as_object().unwrap().values() {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(primary.blob_data_path(digest.as_str().unwrap())).unwrap()).unwrap();
        let layers: Vec<&serde_json::Value> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| new.contains_key(&l["digest"].as_str().unwrap().to_string()))
            .collect();
        // The package's segment; and the trailer's, which pads the archive to 512 bytes
        // and so follows the length of the rest (a blob of some 60 bytes).
        let (trailer, segments): (Vec<&&serde_json::Value>, Vec<&&serde_json::Value>) =
            layers.iter().partition(|l| l["annotations"]["dev.resin.initrd.part"] == "trailer");
        assert_eq!(segments.len(), 1, "one new segment per platform: {layers:?}");
        assert!(trailer.iter().all(|l| l["size"].as_u64().unwrap() < 200), "{trailer:?}");
        changed_layers += layers.iter().map(|l| l["size"].as_u64().unwrap()).sum::<u64>();
    }
    // The new UKI (attached: it holds the whole initrd) apart, what the registry received is
    // the changed segments and small documents.
    let uki = state["resin_disk.uki"]["sha256"].as_str().unwrap().to_string();
    let uki_bytes = new.get(&uki).map_or(0, |size| **size);
    let received: u64 = new.values().copied().sum::<u64>() - uki_bytes;
    eprintln!(
        "after one package changed the registry received {} new blobs, {received} bytes: {changed_layers} bytes of changed segments, the rest configs and manifests (cold: {cold_bytes} bytes), and the new UKI, {uki_bytes} bytes",
        new.len() - 1
    );
    assert!(uki_bytes > 0, "the new UKI is attached");
    assert!(
        new.iter().all(|(digest, size)| **digest == uki || **size < 64 << 10 || changed_layers >= **size),
        "{new:?}"
    );

    // The reader sees the tag moved; its script names the unchanged blobs by the same URLs.
    reader.apply();
    let next = std::fs::read_to_string(read.join("out/boot.ipxe")).unwrap();
    let next_blobs = script_blobs(&next);
    let changed: Vec<&String> = next_blobs.iter().filter(|b| !blobs.contains(b)).collect();
    assert_eq!(
        changed.len(),
        2,
        "every blob but the changed segment and the trailer's is the same URL:\n{script}\n{next}"
    );
    let primary_log = primary.log().len();
    let (console, took) = boot_fleet(&read.join("out"), 1).remove(0);
    eprintln!("after the change: network-booted in {:.1} s", took.as_secs_f64());
    let markers: Vec<String> = boot_markers("x86_64")
        .into_iter()
        .map(|m| if m.starts_with("RESIN-SERVICE-OK") { m.replace("env=unset", "env=fleet-v2") } else { m })
        .collect();
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
    if let Err(report) = judge(&console, &markers) {
        panic!("the changed image did not boot: {report}");
    }
    // The mirror served the unchanged blobs from its storage: it asked the registry for
    // the changed ones only (distribution's proxy fetches a blob it lacks twice: one
    // answer for the machine, one for its storage).
    let mut asked = blobs_fetched(&primary.log()[primary_log..], "fleet/boot");
    asked.sort();
    asked.dedup();
    let mut changed: Vec<String> = changed.into_iter().cloned().collect();
    changed.sort();
    assert_eq!(asked, changed, "{}", &primary.log()[primary_log..]);
}
