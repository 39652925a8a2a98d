//! Acceptance tests: the real Terraform binary drives the provider against a real OCI
//! registry on loopback (anonymous and with basic auth) and local OCI layouts.

mod boot;
mod boot_check;
mod crashes;
mod disk;
mod fault_proxy;
mod fleet;
mod full_disk;
mod golden;
mod image;
mod image_errors;
mod policies;
mod pull;
mod readme;
mod retries;
mod saved_plans;
mod secure_boot;
mod segments;
mod shared_cache;
mod trust;
mod upgrade;

use std::path::Path;

use resin_testkit::{fixtures, registry, terraform};

use fixtures::{add_to_layout, index_entries, layer_digests, Image};
use registry::Registry;
use terraform::Workspace;

/// The provider block for `registries` (plain HTTP, with their credentials unless told not).
fn provider_block(workspace: &Workspace, registries: &[&Registry], with_credentials: bool) -> String {
    let mut text = format!("provider \"resin\" {{\n  cache_dir = \"{}\"\n", workspace.cache_dir.display());
    for registry in registries {
        text.push_str(&format!("  registry {{\n    address    = \"{}\"\n    plain_http = true\n", registry.address));
        if let (true, Some((user, password))) = (with_credentials, &registry.credentials) {
            text.push_str(&format!("    username = \"{user}\"\n    password = \"{password}\"\n"));
        }
        text.push_str("  }\n");
    }
    text.push_str("}\n");
    text
}

/// An init-like image and a kernel image, pushed as `fixtures/init:v1` and
/// `fixtures/kernel:v1`. Returns the layout directory.
/// A registry serving the basic fixtures, and the layouts they were pushed from.
fn basic_registry() -> (Registry, tempfile::TempDir) {
    let registry = Registry::start(None);
    let layouts = tempfile::tempdir().unwrap();
    push_basic_fixtures(&registry, layouts.path());
    (registry, layouts)
}

fn push_basic_fixtures(registry: &Registry, dir: &Path) {
    add_to_layout(dir, "init-v1", &[Image::amd64(vec![("sbin/init", b"#!/bin/sh\necho init v1\n".to_vec())])]);
    add_to_layout(dir, "kernel-v1", &[Image::amd64(vec![("kernel", vec![0x4d; 4096]), ("kernel.tar", vec![0; 1024])])]);
    retag(dir, "init-v1", "v1");
    registry.push(dir, "v1", "fixtures/init", false);
    retag(dir, "kernel-v1", "v1");
    registry.push(dir, "v1", "fixtures/kernel", false);
}

/// `config` with a provider that keeps no initrd segments, so every assembly reads its
/// layers (for tests of what reading a layer checks).
fn without_segment_cache(config: &str) -> String {
    assert!(config.contains("provider \"resin\" {\n"), "{config}");
    config.replacen("provider \"resin\" {\n", "provider \"resin\" {\n  segment_cache_mb = 0\n", 1)
}

/// Points `to` at whatever `from` names in the layout's index.json.
fn retag(dir: &Path, from: &str, to: &str) {
    fixtures::set_tag(dir, to, &fixtures::tagged(dir, from));
}

fn basic_config(workspace: &Workspace, registry: &Registry) -> String {
    format!("{}\n{}", provider_block(workspace, &[registry], true), basic_packages(&registry.address))
}

/// `resin_kernel.k` and `resin_package.init` from the basic fixtures served at `address`.
fn basic_packages(address: &str) -> String {
    format!(
        "resource \"resin_kernel\" \"k\" {{\n  image   = \"{address}/fixtures/kernel:v1\"\n  cmdline = \"console=ttyS0\"\n}}\n\nresource \"resin_package\" \"init\" {{\n  image = \"{address}/fixtures/init:v1\"\n}}\n"
    )
}

/// The basic fixtures served at `address` (plain HTTP, anonymous: a registry or a proxy in
/// front of one) composed into the image `reg` in `./out`, with `/etc/motd` holding `motd`.
fn registry_image_config(workspace: &Workspace, address: &str, motd: &str) -> String {
    format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n  registry {{\n    address    = \"{address}\"\n    plain_http = true\n  }}\n}}\n{}\nresource \"resin_image\" \"img\" {{\n  name       = \"reg\"\n  output_dir = \"./out\"\n  kernel     = resin_kernel.k.spec\n  init       = [resin_package.init.spec]\n  file {{\n    path     = \"/etc/motd\"\n    contents = \"{motd}\"\n  }}\n}}\n",
        workspace.cache_dir.display(),
        basic_packages(address)
    )
}

#[test]
fn apply_records_pinned_digests_then_plan_is_clean() {
    let (registry, layouts) = basic_registry();
    let workspace = Workspace::new();
    workspace.write_config(&basic_config(&workspace, &registry));
    workspace.apply();

    let state = workspace.state();
    let init_digest = registry.manifest_digest("fixtures/init", "v1");
    let init = &state["resin_package.init"];
    assert_eq!(init["digest"], init_digest.as_str());
    assert_eq!(init["id"], format!("{}/fixtures/init@{init_digest}", registry.address).as_str());
    assert_eq!(init["name"], "init");
    assert_eq!(init["platform"], "linux/amd64");
    assert!(init["content_hash"].as_str().unwrap().starts_with("sha256:"));
    let kernel = &state["resin_kernel.k"];
    assert_eq!(kernel["digest"], registry.manifest_digest("fixtures/kernel", "v1").as_str());
    assert_eq!(kernel["binary"], "kernel");
    assert_eq!(kernel["modules_tar"], "kernel.tar");
    for layer in layer_digests(layouts.path(), &init_digest) {
        assert!(workspace.cache_has(&layer), "layer {layer} not in the cache");
    }
    assert!(workspace.cache_has(&init_digest), "manifest not in the cache");

    let plan = workspace.plan();
    assert_eq!(plan.code, 0, "plan after apply must be clean:\n{}", plan.text());

    // A changed setting is a content-hash diff; the digest stays what was recorded.
    let hash = init["content_hash"].as_str().unwrap().to_string();
    workspace.write_config(
        &basic_config(&workspace, &registry)
            .replace("fixtures/init:v1\"\n}", "fixtures/init:v1\"\n  capabilities = [\"CAP_NET_ADMIN\"]\n}"),
    );
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    assert!(plan.says(&format!("~ content_hash = \"{hash}\" ->")), "{}", plan.text());
    assert!(!plan.says("~ digest"), "the digest must not change:\n{}", plan.text());
    workspace.apply();
    assert_ne!(workspace.state()["resin_package.init"]["content_hash"], hash.as_str());
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn a_moved_tag_is_planned_as_a_digest_change() {
    let (registry, layouts) = basic_registry();
    let workspace = Workspace::new();
    workspace.write_config(&basic_config(&workspace, &registry));
    workspace.apply();
    let old = registry.manifest_digest("fixtures/init", "v1");

    add_to_layout(layouts.path(), "v1", &[Image::amd64(vec![("sbin/init", b"#!/bin/sh\necho init v2\n".to_vec())])]);
    registry.push(layouts.path(), "v1", "fixtures/init", false);
    let new = registry.manifest_digest("fixtures/init", "v1");
    assert_ne!(old, new);

    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "a moved tag must show as a change:\n{}", plan.text());
    assert!(
        plan.stdout.contains(&format!("\"{old}\" -> \"{new}\"")),
        "the digest change is not shown:\n{}",
        plan.text()
    );
    assert!(plan.stdout.contains("resin_package.init will be updated in-place"), "{}", plan.text());
    assert!(!plan.stdout.contains("resin_kernel.k will be"), "the kernel did not change:\n{}", plan.text());

    workspace.apply();
    assert_eq!(workspace.state()["resin_package.init"]["digest"], new.as_str());
    let plan = workspace.plan();
    assert_eq!(plan.code, 0, "{}", plan.text());
}

#[test]
fn import_by_image_reference() {
    let (registry, _layouts) = basic_registry();
    let workspace = Workspace::new();
    let reference = format!("{}/fixtures/init:v1", registry.address);
    workspace.write_config(&format!(
        "{}\nresource \"resin_package\" \"imported\" {{\n  image = \"{reference}\"\n}}\n",
        provider_block(&workspace, &[&registry], false)
    ));
    let output = workspace.run(&["import", "-no-color", "-input=false", "resin_package.imported", &reference]);
    assert_eq!(output.code, 0, "{}", output.text());
    let state = workspace.state();
    assert_eq!(state["resin_package.imported"]["digest"], registry.manifest_digest("fixtures/init", "v1").as_str());
    assert_eq!(state["resin_package.imported"]["name"], "init");
    let plan = workspace.plan();
    assert_eq!(plan.code, 0, "an imported package matching its config plans no change:\n{}", plan.text());

    let bad = workspace.run(&["import", "-no-color", "-input=false", "resin_package.imported", "Not/A Ref"]);
    assert_eq!(bad.code, 1);
    assert!(bad.says("invalid image reference \"Not/A Ref\""), "{}", bad.text());
}

#[test]
fn a_saved_plan_applies_on_a_machine_with_an_empty_cache() {
    let (registry, layouts) = basic_registry();
    let workspace = Workspace::new();
    workspace.write_config(&basic_config(&workspace, &registry));
    let plan = workspace.run(&["plan", "-out=saved.tfplan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 0, "{}", plan.text());
    // The plan already names the digest: it was resolved at plan time.
    let digest = registry.manifest_digest("fixtures/init", "v1");
    assert!(plan.stdout.contains(&digest), "digest not known at plan:\n{}", plan.text());
    std::fs::remove_dir_all(&workspace.cache_dir).unwrap();

    let apply = workspace.run(&["apply", "-input=false", "-no-color", "saved.tfplan"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    for layer in layer_digests(layouts.path(), &digest) {
        assert!(workspace.cache_has(&layer));
    }
}

#[test]
fn bad_references_and_unknown_images_name_the_attribute_and_the_reference() {
    let (registry, _layouts) = basic_registry();
    let cases = [
        ("Not A Reference", "Invalid image reference \"Not A Reference\""),
        ("alpine@sha256:1234", "invalid digest \"sha256:1234\""),
        (&format!("{}/fixtures/missing:v1", registry.address), "not found"),
        (&format!("{}/fixtures/init:no-such-tag", registry.address), "not found"),
        // Nothing listens on port 1: the registry cannot be reached at all.
        ("127.0.0.1:1/fixtures/init:v1", "registry 127.0.0.1:1 cannot be reached"),
        // A host name that does not resolve (`.invalid` never does): said at once, not
        // after 5 attempts.
        ("registry.resin-test.invalid/fixtures/init:v1", "its host name registry.resin-test.invalid does not resolve"),
    ];
    for (image, message) in cases {
        let workspace = Workspace::new();
        workspace.write_config(&format!(
            "{}\nresource \"resin_package\" \"bad\" {{\n  image = \"{image}\"\n}}\n",
            provider_block(&workspace, &[&registry], false)
        ));
        let plan = workspace.plan();
        assert_eq!(plan.code, 1, "{}", plan.text());
        assert!(plan.says(message), "{image}: expected {message:?}:\n{}", plan.text());
        assert!(plan.says(&format!("image = \"{image}\"")), "the attribute is not pointed at:\n{}", plan.text());
        if image.contains(".invalid") {
            assert!(!plan.says("gave up after"), "not retried:\n{}", plan.text());
        }
    }
}

#[test]
fn a_corrupted_blob_is_rejected_and_never_enters_the_cache() {
    let (registry, layouts) = basic_registry();
    let digest = registry.manifest_digest("fixtures/init", "v1");
    let layer = layer_digests(layouts.path(), &digest).remove(0);
    let data = registry.blob_data_path(&layer);
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let workspace = Workspace::new();
    workspace.write_config(&basic_config(&workspace, &registry));
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("digest mismatch") || apply.says("Invalid digest"), "{}", apply.text());
    assert!(apply.says(&layer), "the layer is not named:\n{}", apply.text());
    assert!(!workspace.cache_has(&layer), "a corrupt blob entered the cache");
    let leftovers: Vec<_> = std::fs::read_dir(workspace.cache_dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left in the cache: {leftovers:?}");
}

#[test]
fn basic_auth_from_registry_blocks_and_docker_config() {
    let registry = Registry::start(Some(("resin", "s3cret")));
    let layouts = tempfile::tempdir().unwrap();
    push_basic_fixtures(&registry, layouts.path());

    let with_block = Workspace::new();
    with_block.write_config(&basic_config(&with_block, &registry));
    with_block.apply();
    assert_eq!(
        with_block.state()["resin_package.init"]["digest"],
        registry.manifest_digest("fixtures/init", "v1").as_str()
    );

    let with_docker_config = Workspace::new();
    std::fs::write(
        with_docker_config.docker_config_dir.join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "cmVzaW46czNjcmV0"}}}}}}"#, registry.address),
    )
    .unwrap();
    with_docker_config.write_config(&format!(
        "{}\nresource \"resin_package\" \"init\" {{\n  image = \"{}/fixtures/init:v1\"\n}}\n",
        provider_block(&with_docker_config, &[&registry], false),
        registry.address
    ));
    with_docker_config.apply();

    let wrong = Workspace::new();
    wrong.write_config(&format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n  registry {{\n    address = \"{a}\"\n    plain_http = true\n    username = \"resin\"\n    password = \"wrong\"\n  }}\n}}\nresource \"resin_package\" \"init\" {{\n  image = \"{a}/fixtures/init:v1\"\n}}\n",
        wrong.cache_dir.display(),
        a = registry.address
    ));
    let plan = wrong.plan();
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says(&format!("not authorised by registry {}", registry.address)), "{}", plan.text());
    assert!(plan.says("image = "), "{}", plan.text());
}

#[test]
fn bearer_token_auth_through_a_token_server() {
    let registry = Registry::start_with_token_auth("resin", "t0ken-pass");
    let layouts = tempfile::tempdir().unwrap();
    let digest = add_to_layout(layouts.path(), "v1", &[Image::amd64(vec![("sbin/init", b"token".to_vec())])]);
    registry.push(layouts.path(), "v1", "fixtures/private", false);

    let workspace = Workspace::new();
    workspace.write_config(&format!(
        "{}\nresource \"resin_package\" \"private\" {{\n  image = \"{}/fixtures/private:v1\"\n}}\n",
        provider_block(&workspace, &[&registry], true),
        registry.address
    ));
    workspace.apply();
    assert_eq!(workspace.state()["resin_package.private"]["digest"], digest.as_str());
    for layer in layer_digests(layouts.path(), &digest) {
        assert!(workspace.cache_has(&layer));
    }

    let anonymous = Workspace::new();
    anonymous.write_config(&format!(
        "{}\nresource \"resin_package\" \"private\" {{\n  image = \"{}/fixtures/private:v1\"\n}}\n",
        provider_block(&anonymous, &[&registry], false),
        registry.address
    ));
    let plan = anonymous.plan();
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says(&format!("not authorised by registry {}", registry.address)), "{}", plan.text());
}

#[test]
fn a_multi_platform_index_resolves_to_the_requested_platform() {
    let registry = Registry::start(None);
    let layouts = tempfile::tempdir().unwrap();
    let index = add_to_layout(
        layouts.path(),
        "v1",
        &[
            Image::amd64(vec![("arch", b"amd64".to_vec())]),
            Image {
                architecture: "arm64",
                variant: Some("v8"),
                files: vec![("arch", b"arm64".to_vec())],
                cmd: vec!["/bin/true"],
            },
        ],
    );
    registry.push(layouts.path(), "v1", "fixtures/multi", false);
    let entries = index_entries(layouts.path(), &index);
    let digest_for = |arch: &str| {
        entries.iter().find(|e| e["platform"]["architecture"] == arch).unwrap()["digest"].as_str().unwrap().to_string()
    };

    let workspace = Workspace::new();
    workspace.write_config(&format!(
        "{}\nresource \"resin_package\" \"default\" {{\n  image = \"{a}/fixtures/multi:v1\"\n}}\nresource \"resin_package\" \"arm\" {{\n  image    = \"{a}/fixtures/multi:v1\"\n  platform = \"linux/arm64\"\n}}\nresource \"resin_package\" \"pinned\" {{\n  image    = \"{a}/fixtures/multi@{index}\"\n  platform = \"linux/arm64/v8\"\n}}\n",
        provider_block(&workspace, &[&registry], false),
        a = registry.address
    ));
    workspace.apply();
    let state = workspace.state();
    assert_eq!(state["resin_package.default"]["digest"], digest_for("amd64").as_str());
    assert_eq!(state["resin_package.arm"]["digest"], digest_for("arm64").as_str());
    assert_eq!(state["resin_package.pinned"]["digest"], digest_for("arm64").as_str());
    assert_eq!(workspace.plan().code, 0);

    let missing = Workspace::new();
    missing.write_config(&format!(
        "{}\nresource \"resin_package\" \"s390x\" {{\n  image    = \"{}/fixtures/multi:v1\"\n  platform = \"linux/s390x\"\n}}\n",
        provider_block(&missing, &[&registry], false),
        registry.address
    ));
    let plan = missing.plan();
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says("has no manifest for platform linux/s390x"), "{}", plan.text());
    assert!(plan.says("linux/amd64, linux/arm64/v8"), "available platforms not listed:\n{}", plan.text());
}

#[test]
fn docker_v2_schema2_media_types() {
    let registry = Registry::start(None);
    let layouts = tempfile::tempdir().unwrap();
    add_to_layout(layouts.path(), "v1", &[Image::amd64(vec![("etc/motd", b"docker media types\n".to_vec())])]);
    registry.push(layouts.path(), "v1", "fixtures/docker", true);
    let multi = add_to_layout(
        layouts.path(),
        "multi",
        &[
            Image::amd64(vec![("a", b"1".to_vec())]),
            Image { architecture: "arm64", variant: None, files: vec![("a", b"2".to_vec())], cmd: vec![] },
        ],
    );
    assert!(multi.starts_with("sha256:"));
    registry.push(layouts.path(), "multi", "fixtures/docker-list", true);

    let workspace = Workspace::new();
    workspace.write_config(&format!(
        "{}\nresource \"resin_package\" \"docker\" {{\n  image = \"{a}/fixtures/docker:v1\"\n}}\nresource \"resin_package\" \"list\" {{\n  image    = \"{a}/fixtures/docker-list:multi\"\n  platform = \"linux/arm64\"\n}}\n",
        provider_block(&workspace, &[&registry], false),
        a = registry.address
    ));
    workspace.apply();
    let digest = registry.manifest_digest("fixtures/docker", "v1");
    let hex = digest.strip_prefix("sha256:").unwrap();
    let manifest = std::fs::read_to_string(workspace.cache_dir.join("blobs/sha256").join(hex)).unwrap();
    assert!(
        manifest.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "not a Docker manifest: {manifest}"
    );
    assert_eq!(workspace.state()["resin_package.docker"]["digest"], digest.as_str());
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn an_unreachable_registry_during_refresh_is_a_warning_and_state_is_kept() {
    let mut registry = Registry::start(None);
    let layouts = tempfile::tempdir().unwrap();
    push_basic_fixtures(&registry, layouts.path());
    let workspace = Workspace::new();
    workspace.write_config(&basic_config(&workspace, &registry));
    workspace.apply();
    let before = workspace.state();
    registry.stop();

    let plan = workspace.plan();
    assert_eq!(plan.code, 0, "{}", plan.text());
    assert!(plan.says("Warning: Could not refresh resin_package: the registry cannot be reached"), "{}", plan.text());
    assert!(plan.says("Warning: Could not refresh resin_kernel"), "{}", plan.text());
    let refresh = workspace.run(&["apply", "-refresh-only", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(refresh.code, 0, "{}", refresh.text());
    assert_eq!(workspace.state(), before, "the recorded state must be kept");
}

#[test]
fn a_local_oci_layout_works_offline() {
    let workspace = Workspace::new();
    let layout = workspace.work_dir().join("layout");
    let digest = add_to_layout(&layout, "v1", &[Image::amd64(vec![("sbin/init", b"offline".to_vec())])]);
    workspace.write_config(&format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n}}\nresource \"resin_package\" \"local\" {{\n  image = \"oci-layout:./layout:v1\"\n}}\n",
        workspace.cache_dir.display()
    ));
    workspace.apply();
    let state = workspace.state();
    assert_eq!(state["resin_package.local"]["digest"], digest.as_str());
    assert_eq!(state["resin_package.local"]["id"], format!("oci-layout:./layout@{digest}").as_str());
    assert_eq!(state["resin_package.local"]["name"], "layout");
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn malformed_container_options_point_at_the_attribute() {
    let workspace = Workspace::new();
    workspace.write_config(
        r#"
resource "resin_package" "bad" {
  image        = "oci-layout:./nowhere:v1"
  name         = "../escape"
  capabilities = ["CAP_CHOWN", "CAP_BOGUS"]
  binds        = ["/only-one-part"]
  binds_add    = ["data:/data"]
  ambient      = ["CAP_NET_ADIMN"]
  net          = "bridge"
  rlimits      = ["nofile,10"]
  mounts {
    destination = "/data"
  }
  devices {
    path  = "/dev/console"
    type  = "c"
    major = 5
    minor = 1
    mode  = "rw"
  }
  resources {
    memory {
      swappiness = 300
    }
  }
}
"#,
    );
    let output = workspace.run(&["validate", "-no-color"]);
    assert_eq!(output.code, 1, "{}", output.text());
    for expected in [
        "Invalid container name",
        "unknown capability \"CAP_BOGUS\"",
        "capabilities = [\"CAP_CHOWN\", \"CAP_BOGUS\"]",
        "malformed bind \"/only-one-part\"",
        // A LinuxKit volume: the error is the package's, at binds_add[0].
        "resin_package (oci-layout:./nowhere:v1): binds_add[0]: bind \"data:/data\" names a volume",
        "binds_add    = [\"data:/data\"]",
        "unknown capability \"CAP_NET_ADIMN\"; did you mean CAP_NET_ADMIN?",
        "unknown namespace mode \"bridge\"",
        "malformed rlimit \"nofile,10\"",
        "mount for destination \"/data\" is missing its type",
        "device mode \"rw\" is not an octal mode",
        "swappiness = 300",
    ] {
        assert!(output.says(expected), "missing {expected:?}:\n{}", output.text());
    }
}

#[test]
fn every_example_passes_terraform_validate() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut directories = vec![
        examples.join("demo"),
        examples.join("provider"),
        examples.join("full-stack"),
        examples.join("boot-check"),
    ];
    for entry in std::fs::read_dir(examples.join("resources")).unwrap() {
        directories.push(entry.unwrap().path());
    }
    for directory in directories {
        let workspace = Workspace::new();
        let mut body = String::new();
        for file in std::fs::read_dir(&directory).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "tf") {
                let text = std::fs::read_to_string(&path).unwrap();
                // The demo declares its own terraform block; the registry examples do not.
                if text.contains("required_providers") {
                    std::fs::write(workspace.work_dir().join(path.file_name().unwrap()), text).unwrap();
                } else {
                    body.push_str(&text);
                }
            }
        }
        if !body.is_empty() {
            workspace.write_config(&body);
        }
        let output = workspace.run(&["validate", "-no-color"]);
        assert_eq!(output.code, 0, "{} does not validate:\n{}", directory.display(), output.text());
    }
}

/// The cloud examples hand resin disks to the google and aws providers, which cannot be
/// fetched on the machines the tests run on: Terraform parses all of each example
/// (`fmt -check`), and the resin part, without the cloud resources, validates against
/// this provider's schema.
#[test]
fn the_cloud_examples_parse_and_their_resin_part_validates() {
    let cloud = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloud");
    let fmt = Workspace::new().run(&["fmt", "-check", "-recursive", "-no-color", &cloud.display().to_string()]);
    assert_eq!(fmt.code, 0, "{}", fmt.text());
    let mut checked = 0;
    for entry in std::fs::read_dir(&cloud).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path().join("main.tf")).unwrap();
        // Top-level blocks end with a "}" line; drop the terraform block (the harness
        // declares the resin provider) and the clouds' resources.
        let mut kept = String::new();
        let mut skipping = false;
        for line in text.lines() {
            let cloud_block =
                ["resource \"google_", "resource \"aws_", "terraform {"].iter().any(|p| line.starts_with(p));
            if cloud_block {
                skipping = true;
            }
            if !skipping {
                kept.push_str(line);
                kept.push('\n');
            }
            if line == "}" {
                skipping = false;
            }
        }
        assert!(kept.contains("resource \"resin_disk\""), "{kept}");
        let workspace = Workspace::new();
        workspace.write_config(&kept);
        let output = workspace.run(&["validate", "-no-color"]);
        assert_eq!(output.code, 0, "{kept}\n{}", output.text());
        checked += 1;
    }
    assert_eq!(checked, 2, "the gcp and aws examples");
}

#[test]
fn the_docs_match_the_schema_and_the_examples() {
    let workspace = Workspace::new();
    workspace.write_config("");
    let schema = workspace.run(&["providers", "schema", "-json"]);
    assert_eq!(schema.code, 0, "{}", schema.text());
    let schema_path = workspace.work_dir().join("schema.json");
    std::fs::write(&schema_path, &schema.stdout).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-docs.py");
    let check = std::process::Command::new("python3").arg(script).arg(&schema_path).arg("--check").output().unwrap();
    assert!(
        check.status.success(),
        "docs/ is stale; run `make docs` and commit the result:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn run_by_hand_the_binary_explains_itself_and_prints_nothing_on_stdout() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_terraform-provider-resin"))
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Terraform starts it"));
}

/// The provider binary as go-plugin starts it (its magic cookie, protocol 6).
fn plugin_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_terraform-provider-resin"));
    command
        .env("TF_PLUGIN_MAGIC_COOKIE", "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2")
        .env("PLUGIN_PROTOCOL_VERSIONS", "6");
    command
}

/// The provider binary started as go-plugin starts it (stderr as given), and the
/// handshake line it printed.
fn serving_provider(stderr: std::process::Stdio) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = plugin_command().stdout(std::process::Stdio::piped()).stderr(stderr).spawn().unwrap();
    let mut handshake = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut handshake).unwrap();
    (child, handshake)
}

#[test]
fn sigint_does_not_kill_a_serving_provider() {
    let (mut child, handshake) = serving_provider(std::process::Stdio::null());
    assert!(handshake.starts_with("1|6|"), "unexpected handshake {handshake:?}");
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "the provider died on SIGINT; Terraform would lose an in-flight apply");
}

/// A Terraform killed right after it started the provider, before the provider read its
/// parent, never reads the handshake: the provider stops rather than serving nobody
/// forever (its parent, here the test, is still alive, so only the handshake tells).
#[test]
fn a_provider_whose_handshake_nobody_reads_stops() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = plugin_command().stdout(writer).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the provider still serves 30 s after its handshake found no reader");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Terraform is not reading this provider's output"), "{stderr}");
}

/// Nagle's algorithm delayed every response by up to 40 ms (see `plugin_socket.rs`):
/// before the handshake reaches Terraform, the listener it names has TCP_NODELAY.
#[test]
fn the_handshake_comes_after_the_plugin_listener_has_tcp_nodelay() {
    let (mut child, handshake) = serving_provider(std::process::Stdio::piped());
    let _ = child.kill();
    let _ = child.wait();
    assert!(handshake.starts_with("1|6|tcp|127.0.0.1:"), "unexpected handshake {handshake:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.contains("plugin socket"))
        .unwrap_or_else(|| panic!("no plugin socket line in the provider's log:\n{stderr}"));
    assert!(line.contains("TCP_NODELAY set") && line.contains("\"listeners\":\"1\""), "{line}");
}

#[test]
fn terraform_init_finds_the_provider_in_a_filesystem_mirror() {
    // What `make install` does, with this build's binary and a mirror of the test's own.
    let workspace = Workspace::new();
    let mirror = workspace.work_dir().parent().unwrap().join("mirror");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-mirror.sh");
    let status = std::process::Command::new(script)
        .arg(env!("CARGO_BIN_EXE_terraform-provider-resin"))
        .arg(&mirror)
        .arg(env!("CARGO_PKG_VERSION"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let config = workspace.work_dir().parent().unwrap().join("mirror.tfrc");
    std::fs::write(&config, format!("provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"resinstack/resin\"]\n  }}\n}}\n", mirror.display())).unwrap();
    workspace.write_config("resource \"resin_package\" \"p\" {\n  image = \"oci-layout:./layout:v1\"\n}\n");
    let init = workspace.run_with_cli_config(&config, &["init", "-no-color", "-input=false"]);
    assert_eq!(init.code, 0, "{}", init.text());
    assert!(init.says(&format!("Installed resinstack/resin v{}", env!("CARGO_PKG_VERSION"))), "{}", init.text());
    let validate = workspace.run_with_cli_config(&config, &["validate", "-no-color"]);
    assert_eq!(validate.code, 0, "{}", validate.text());
}

#[test]
fn the_demo_example_applies_against_the_boot_fixtures() {
    let workspace = Workspace::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/main.tf");
    std::fs::copy(&example, workspace.work_dir().join("main.tf")).unwrap();
    let layout = boot::boot_layout();
    let layout_var = format!("layout={}", layout.display());
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color", "-var", &layout_var]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    assert!(workspace.work_dir().join("out/demo-initrd.img").is_file());
    assert!(workspace.work_dir().join("out/demo.efi").is_file());
    let plan = workspace.run(&["plan", "-detailed-exitcode", "-input=false", "-no-color", "-var", &layout_var]);
    assert_eq!(plan.code, 0, "{}", plan.text());
}
