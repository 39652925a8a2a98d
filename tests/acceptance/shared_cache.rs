//! The shared segment cache (the provider's `segment_cache` block) with a real registry on
//! loopback: two workspaces with empty caches of their own play two CI runners. The second
//! compresses nothing the first built and writes the same bytes; entries it must not trust
//! are refused and built locally with a warning; a registry that is down never fails the
//! build. The crafted poisoned entries (another key's, truncated, unsigned, re-signed) are
//! unit tests of `resin::assemble::remote_segments`.

use crate::fault_proxy::{Fault, FaultProxy, Rule};
use crate::image::{artifact_digests, image_config, write_fixtures};
use crate::registry::Registry;
use crate::segments::{debug_apply, kernel_reads, log_field, planned};
use crate::terraform::{Output, Workspace};

/// A key pair as `terraform-provider-resin segment-cache-key` prints it.
fn key_pair(name: &str) -> (String, String) {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_terraform-provider-resin"));
    let output = std::process::Command::new(binary).args(["segment-cache-key", name]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines().map(str::to_string);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// A runner: the standard image, its own empty cache, the shared cache at `registry`
/// trusting `trusted`, signing with `signing` (a reader when `None`).
fn runner(registry: &Registry, trusted: &[&str], signing: Option<&str>) -> Workspace {
    runner_at(&registry.address, trusted, signing)
}

/// [`runner`] with the registry at `address` (a fault proxy's).
fn runner_at(address: &str, trusted: &[&str], signing: Option<&str>) -> Workspace {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    let trusted: Vec<String> = trusted.iter().map(|k| format!("{k:?}")).collect();
    let signing = signing.map_or(String::new(), |key| format!("signing_key = {key:?}"));
    let block = format!(
        "provider \"resin\" {{\n  registry {{\n    address    = \"{address}\"\n    plain_http = true\n  }}\n  segment_cache {{\n    repository   = \"{address}/ci/resin-cache\"\n    trusted_keys = [{}]\n    {signing}\n  }}\n",
        trusted.join(", ")
    );
    workspace.write_config(&image_config(&workspace, "").replacen("provider \"resin\" {\n", &block, 1));
    workspace
}

/// (fetched, refused, pushed) over the apply's "shared segment cache" lines.
fn shared(apply: &Output) -> (usize, usize, usize) {
    let mut totals = (0, 0, 0);
    for line in
        apply.stderr.lines().filter(|l| l.contains("assembly: shared segment cache:") && l.contains("@module=resin"))
    {
        let field = |name| log_field(line, name);
        totals = (totals.0 + field("fetched"), totals.1 + field("refused"), totals.2 + field("pushed"));
    }
    totals
}

#[test]
fn a_second_runner_compresses_nothing_the_first_built_and_writes_the_same_bytes() {
    let registry = Registry::start(None);
    let (secret, public) = key_pair("ci-writer");
    let writer = runner(&registry, &[&public], Some(&secret));
    let cold = debug_apply(&writer);
    assert_eq!(planned(&cold), (0, 5), "five segments built");
    // The image's segments and the kernel's two files (resin_kernel keeps them), but the
    // segment of its files, one of which is sensitive_contents: it stays here.
    let entries = std::fs::read_dir(writer.cache_dir.join("segments")).unwrap().count();
    assert_eq!(entries, 7);
    assert_eq!(shared(&cold), (0, 0, entries - 1), "every other entry pushed:\n{}", cold.stderr);
    assert!(!cold.says("Shared segment cache not fully used"), "{}", cold.text());
    let blobs = registry.blobs();
    let puts_before = registry.log().matches("\"PUT ").count();

    // Runner B: empty cache, reads only.
    let reader = runner(&registry, &[&public], None);
    let apply = debug_apply(&reader);
    assert_eq!(planned(&apply), (4, 1), "only the private files' segment compressed:\n{}", apply.stderr);
    assert_eq!(shared(&apply), (entries - 1, 0, 0));
    eprintln!("runner B's kernel image reads: {}", kernel_reads(&apply));
    assert_eq!(artifact_digests(&reader), artifact_digests(&writer), "the same bytes");
    assert!(!apply.says("Shared segment cache not fully used"), "{}", apply.text());
    assert_eq!(registry.blobs(), blobs, "a reader pushes nothing");
    assert_eq!(registry.log().matches("\"PUT ").count(), puts_before);
    // Its own cache has the segments now: a second apply asks the registry nothing.
    assert_eq!(reader.plan().code, 0);

    // Without a sensitive file, the files' segment is shared too.
    let config = std::fs::read_to_string(writer.work_dir().join("main.tf")).unwrap();
    let open = config.replacen("sensitive_contents = \"s3cret\"", "contents = \"not a secret\"", 1);
    assert_ne!(open, config);
    writer.write_config_file(&open);
    let apply = debug_apply(&writer);
    assert_eq!(planned(&apply), (4, 1), "the files' segment is new:\n{}", apply.stderr);
    assert_eq!(shared(&apply).2, 1, "and pushed");
    let reader_of_open = runner(&registry, &[&public], None);
    reader_of_open.write_config_file(
        &open
            .replace(&writer.cache_dir.display().to_string(), &reader_of_open.cache_dir.display().to_string())
            .replacen(&format!("signing_key = {secret:?}"), "", 1),
    );
    assert_eq!(planned(&debug_apply(&reader_of_open)), (5, 0));

    // A runner that trusts another key only: every entry refused, built here, one warning.
    let (_, other) = key_pair("other");
    let wary = runner(&registry, &[&other], None);
    let apply = debug_apply(&wary);
    assert_eq!(planned(&apply), (0, 5), "built here:\n{}", apply.stderr);
    assert_eq!(apply.stdout.matches("Shared segment cache not fully used").count(), 1, "{}", apply.text());
    assert!(apply.says("signed by \"ci-writer\", which is not a trusted key"), "{}", apply.text());
    assert_eq!(artifact_digests(&wary), artifact_digests(&reader), "the same bytes as the first reader's");
}

#[test]
fn a_damaged_entry_or_a_registry_that_is_down_never_fails_the_build() {
    let mut registry = Registry::start(None);
    let (secret, public) = key_pair("ci-writer");
    let writer = runner(&registry, &[&public], Some(&secret));
    debug_apply(&writer);
    let expected = artifact_digests(&writer);

    // One stored entry's bytes damaged in the registry (manifests are smaller than 1000
    // bytes, entries with compressed files larger): refused (its digest), built here.
    let entries: Vec<(String, u64)> = registry.blobs().into_iter().filter(|(_, size)| *size > 1000).collect();
    let (damaged, _) = &entries[0];
    let path = registry.blob_data_path(damaged);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let reader = runner(&registry, &[&public], None);
    let apply = debug_apply(&reader);
    let (fetched, refused, _) = shared(&apply);
    // Every entry but the private one was pushed; one of them is damaged.
    let total = std::fs::read_dir(writer.cache_dir.join("segments")).unwrap().count();
    assert_eq!((fetched, refused), (total - 2, 1), "{}", apply.stderr);
    assert!(
        apply.says("Shared segment cache not fully used") && apply.says("refused the entry of segment"),
        "{}",
        apply.text()
    );
    assert_eq!(artifact_digests(&reader), expected);

    // The registry fails part way (its manifests answer, its blobs keep failing): the
    // shared tier is turned off at the first entry that cannot be fetched, the apply
    // builds the rest here, says so once, and succeeds.
    let proxy = FaultProxy::start(&registry.address, vec![Rule::new("/blobs/", 1000, Fault::Status(503, None))]);
    let failing = runner_at(&proxy.address, &[&public], None);
    let apply = debug_apply(&failing);
    assert_eq!(planned(&apply), (0, 5));
    assert_eq!(apply.stdout.matches("Shared segment cache not fully used").count(), 1, "{}", apply.text());
    assert!(apply.says("HTTP 503") || apply.says("503"), "{}", apply.text());
    assert_eq!(artifact_digests(&failing), expected);

    // The registry is down: the apply builds everything here, says so once, and succeeds.
    registry.stop();
    let alone = runner(&registry, &[&public], Some(&secret));
    let apply = debug_apply(&alone);
    assert_eq!(planned(&apply), (0, 5));
    assert_eq!(apply.stdout.matches("Shared segment cache not fully used").count(), 1, "{}", apply.text());
    assert!(apply.says("building every segment here"), "{}", apply.text());
    eprintln!("registry down, as a user sees it:\n{}", apply.stdout);
    assert_eq!(artifact_digests(&alone), expected);
}

#[test]
fn bad_segment_cache_settings_are_errors_at_their_attribute() {
    let registry = Registry::start(None);
    let (secret, public) = key_pair("ci-writer");
    let (other_secret, _) = key_pair("other");
    let workspace = runner(&registry, &[&public], Some(&secret));
    let config = std::fs::read_to_string(workspace.work_dir().join("main.tf")).unwrap();
    let address = &registry.address;
    for (from, to, says) in [
        (
            format!("\"{address}/ci/resin-cache\""),
            format!("\"{address}/ci/resin-cache:v1@sha256:00\""),
            "is not a registry repository",
        ),
        (format!("[{public:?}]"), "[\"ci-writer:AAAA\"]".to_string(), "the public key ci-writer has 3 bytes"),
        (format!("[{public:?}]"), "[]".to_string(), "trusted_keys lists no key"),
        (
            format!("signing_key = {secret:?}"),
            "signing_key = \"ci-writer\"".to_string(),
            "a signing key is written name:base64",
        ),
        (
            format!("signing_key = {secret:?}"),
            format!("signing_key = {secret:?}\n    signing_key_file = \"k\""),
            "set one of signing_key and signing_key_file",
        ),
        (
            format!("signing_key = {secret:?}"),
            "signing_key_file = \"./no-such-key\"".to_string(),
            "segment_cache.signing_key_file ./no-such-key",
        ),
    ] {
        assert!(config.contains(&from), "{from}");
        workspace.write_config_file(&config.replacen(&from, &to, 1));
        let plan = workspace.plan();
        assert_eq!(plan.code, 1, "{to}: {}", plan.text());
        assert!(plan.says(says) && plan.says("segment_cache"), "{to}: {}", plan.text());
        assert!(!plan.text().contains(&secret[secret.len() - 20..]), "the secret is never shown");
    }
    // A signing key no trusted key matches: a warning, the plan goes on.
    workspace.write_config_file(&config.replacen(
        &format!("signing_key = {secret:?}"),
        &format!("signing_key = {other_secret:?}"),
        1,
    ));
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "changes to make, no error: {}", plan.text());
    assert!(
        plan.says("Signing key not trusted") && plan.says("runners that trust only those keys ignore"),
        "{}",
        plan.text()
    );
}
