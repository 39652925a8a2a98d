//! Publishing images to a registry and booting fleets from it: `resin_publish`'s lifecycle
//! against a registry with basic auth (plan, apply, a moved tag, destroy with and without
//! deleting), `resin_published_image` reading images back on another workspace with an
//! empty cache, and machines network-booting a published image by digest through a
//! pull-through mirror.

use std::process::Command;

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
    let (user, password) = registry.credentials.clone().unwrap();
    let output = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("--creds={user}:{password}")])
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
