//! Registry faults, injected by a proxy in front of the real test registry: transient ones
//! are retried (and logged at INFO with their reason), persistent ones and 4xx answers end
//! in a clear error after a bounded number of requests.

use std::time::Duration;

use crate::fault_proxy::{Fault, FaultProxy, Rule};
use crate::fixtures::{add_layered_image, layer_digests, tar_layer, Entry};
use crate::terraform::Workspace;
use crate::trust::assert_cache_consistent;

/// The basic fixtures through `address` (the proxy), with a short request timeout.
fn config_through(workspace: &Workspace, address: &str, packages: &str) -> String {
    format!(
        "provider \"resin\" {{\n  cache_dir        = \"{}\"\n  registry_timeout = 1\n  registry {{\n    address    = \"{address}\"\n    plain_http = true\n  }}\n}}\n{packages}",
        workspace.cache_dir.display()
    )
}

fn kernel_and_init(address: &str) -> String {
    format!(
        "resource \"resin_kernel\" \"k\" {{\n  image = \"{address}/fixtures/kernel:v1\"\n}}\nresource \"resin_package\" \"init\" {{\n  image = \"{address}/fixtures/init:v1\"\n}}\n"
    )
}

fn retried(output: &crate::terraform::Output, reason: &str) -> bool {
    output.stderr.lines().any(|l| l.contains("retrying a registry request") && l.contains(reason))
}

#[test]
fn transient_registry_faults_are_retried() {
    let (registry, layouts) = crate::basic_registry();
    let init_layer = layer_digests(layouts.path(), &registry.manifest_digest("fixtures/init", "v1")).remove(0);
    let kernel_layer = layer_digests(layouts.path(), &registry.manifest_digest("fixtures/kernel", "v1")).remove(0);
    let proxy = FaultProxy::start(
        &registry.address,
        vec![
            Rule::new("/fixtures/init/manifests/v1", 1, Fault::Status(503, None)),
            Rule::new("/fixtures/kernel/manifests/v1", 1, Fault::CutOff),
            Rule::new(&format!("/blobs/{init_layer}"), 1, Fault::Status(429, Some(1))),
            Rule::new(&format!("/blobs/{init_layer}"), 1, Fault::CutOff),
            Rule::new(&format!("/blobs/{kernel_layer}"), 1, Fault::Stall(Duration::from_secs(3))),
            // Cut off after resin_kernel's check began reading it as it downloaded: the
            // check reads it again once it is in the cache.
            Rule::new(&format!("/blobs/{kernel_layer}"), 1, Fault::CutOff),
        ],
    );
    let workspace = Workspace::new();
    workspace.write_config(&config_through(&workspace, &proxy.address, &kernel_and_init(&proxy.address)));
    let apply =
        workspace.run_with_env(&[("TF_LOG", "DEBUG")], &["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    assert_eq!(crate::segments::kernel_reads(&apply), 2, "read as it downloaded (cut off), then from the cache");

    for reason in
        ["HTTP 503", "HTTP 429", "end of file before message length reached", "the answer was cut off", "timed out"]
    {
        assert!(retried(&apply, reason), "no retry logged for {reason}:\n{}", apply.stderr);
    }
    // The 429's Retry-After: 1 was the wait.
    assert!(apply.stderr.lines().any(|l| l.contains("HTTP 429") && l.contains("wait_ms=1000")), "{}", apply.stderr);
    // Every fault was met once, then the request went through.
    assert_eq!(proxy.seen(&format!("/blobs/{init_layer}")), ["Status(429, Some(1))", "CutOff", "pass"]);
    assert_eq!(proxy.seen(&format!("/blobs/{kernel_layer}")), ["Stall(3s)", "CutOff", "pass"]);
    assert_eq!(
        workspace.state()["resin_package.init"]["digest"],
        registry.manifest_digest("fixtures/init", "v1").as_str()
    );
    assert!(workspace.cache_has(&init_layer) && workspace.cache_has(&kernel_layer));
    assert_cache_consistent(&workspace);
}

#[test]
fn persistent_faults_and_client_errors_end_in_a_clear_error() {
    let (registry, _layouts) = crate::basic_registry();
    let proxy = FaultProxy::start(
        &registry.address,
        vec![
            Rule::new("/fixtures/init/manifests/v1", 100, Fault::Status(500, None)),
            Rule::new("/fixtures/kernel/manifests/v1", 100, Fault::Status(429, Some(3600))),
        ],
    );
    let run = |packages: String| {
        let workspace = Workspace::new();
        workspace.write_config(&config_through(&workspace, &proxy.address, &packages));
        let plan = workspace.plan();
        assert_eq!(plan.code, 1, "{}", plan.text());
        plan
    };

    let plan =
        run(format!("resource \"resin_package\" \"init\" {{\n  image = \"{}/fixtures/init:v1\"\n}}\n", proxy.address));
    assert!(plan.says(&format!("registry {} cannot be reached: HTTP 500", proxy.address)), "{}", plan.text());
    assert!(plan.says("(gave up after 5 attempts"), "{}", plan.text());
    assert!(plan.says("image = "), "the attribute is not pointed at:\n{}", plan.text());
    assert_eq!(proxy.seen("/fixtures/init/manifests/v1").len(), 5, "1 attempt and 4 retries");

    let plan =
        run(format!("resource \"resin_kernel\" \"k\" {{\n  image = \"{}/fixtures/kernel:v1\"\n}}\n", proxy.address));
    assert!(plan.says("the registry asks to wait 3600 s"), "{}", plan.text());
    assert_eq!(
        proxy.seen("/fixtures/kernel/manifests/v1").len(),
        1,
        "a Retry-After beyond the bound is not waited for"
    );

    // TLS spoken to a plain-HTTP registry (no plain_http): refused at once, not retried.
    let workspace = Workspace::new();
    workspace.write_config(&format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n}}\nresource \"resin_package\" \"init\" {{\n  image = \"{}/fixtures/init:v1\"\n}}\n",
        workspace.cache_dir.display(),
        registry.address
    ));
    let plan = workspace.run_with_env(&[("TF_LOG", "INFO")], &["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says("does not speak TLS"), "{}", plan.text());
    assert!(plan.says("plain_http = true"), "the fix is named: {}", plan.text());
    assert!(
        !plan.stderr.contains("retrying a registry request"),
        "a TLS failure must not be retried:\n{}",
        plan.stderr
    );

    // A 4xx is the answer: asked once.
    let plan = run(format!(
        "resource \"resin_package\" \"missing\" {{\n  image = \"{}/fixtures/init:no-such-tag\"\n}}\n",
        proxy.address
    ));
    assert!(plan.says("not found"), "{}", plan.text());
    assert_eq!(proxy.seen("/fixtures/init/manifests/no-such-tag"), ["pass"]);
}

#[test]
fn parallel_pulls_bounds_the_downloads_of_every_resource_together() {
    let (registry, layouts) = crate::basic_registry();
    let layers: Vec<Vec<u8>> =
        (0..4).map(|i| tar_layer(&[Entry::File(&format!("layer{i}"), format!("{i}").as_bytes(), 0o644)])).collect();
    add_layered_image(layouts.path(), "layers", &layers, serde_json::json!({ "Cmd": ["/layer0"] }));
    registry.push(layouts.path(), "layers", "fixtures/layers", false);
    // Every blob answer takes a while, so requests that may overlap do.
    let proxy =
        FaultProxy::start(&registry.address, vec![Rule::new("/blobs/", 100, Fault::Delay(Duration::from_millis(300)))]);
    let workspace = Workspace::new();
    let packages = format!(
        "{}resource \"resin_package\" \"layers\" {{\n  image = \"{}/fixtures/layers:layers\"\n}}\n",
        kernel_and_init(&proxy.address),
        proxy.address
    );
    let config = config_through(&workspace, &proxy.address, &packages)
        .replace("registry_timeout = 1\n", "registry_timeout = 5\n  parallel_pulls   = 2\n");
    workspace.write_config(&config);
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    // Three resources apply at once and one image has four layers: nine blobs (three
    // configs, four layers and two single layers) wanted together, two downloaded at a time.
    assert_eq!(proxy.seen("/blobs/").len(), 9, "{:?}", proxy.seen("/blobs/"));
    assert_eq!(proxy.most_blob_requests_at_once(), 2);
    assert_cache_consistent(&workspace);
}
