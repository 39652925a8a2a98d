//! The README's example, planned: its configuration against a loopback registry serving
//! fixture images under the example's names, and the plan the README shows.

use std::path::Path;

use crate::fixtures::{add_to_layout, Image};
use crate::registry::Registry;
use crate::terraform::Workspace;
use crate::{provider_block, retag};

/// The body of the first fenced block of `language` after `marker` in `text`.
fn fenced_after(text: &str, marker: &str, language: &str) -> String {
    let from = text.find(marker).unwrap_or_else(|| panic!("the README has no {marker:?}"));
    let opening = format!("```{language}\n");
    let start = text[from..].find(&opening).unwrap_or_else(|| panic!("no {language} block after {marker:?}"))
        + from
        + opening.len();
    let end = text[start..].find("```").unwrap() + start;
    text[start..end].to_string()
}

/// `text` with every sha256 digest written `sha256:…`, and lines without their indentation.
fn normalised(text: &str) -> Vec<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("sha256:") {
        out.push_str(&rest[..at + 7]);
        rest = &rest[at + 7..];
        let hex = rest.chars().take_while(char::is_ascii_hexdigit).count();
        if hex == 64 {
            out.push('…');
            rest = &rest[64..];
        }
    }
    out.push_str(rest);
    out.lines().map(|line| line.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

#[test]
fn the_readme_example_plans_as_the_readme_shows() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let example = fenced_after(&readme, "# terraform-provider-resin", "hcl");
    let shown = fenced_after(&readme, "`terraform plan` shows", "text");

    // The example's images, as fixtures under its names.
    let registry = Registry::start(None);
    let layouts = tempfile::tempdir().unwrap();
    let dir = layouts.path();
    let kernel = vec![("kernel", vec![0x4d; 4096]), ("kernel.tar", vec![0; 1024])];
    let init = vec![("sbin/init", b"#!/bin/sh\n".to_vec())];
    let sshd = vec![("usr/sbin/sshd", b"#!/bin/sh\n".to_vec())];
    for (name, files, repository, tag) in [
        ("kernel", kernel, "linuxkit/kernel", "6.6.13"),
        ("init", init, "linuxkit/init", "v1.0.0"),
        ("sshd", sshd, "linuxkit/sshd", "v1.0.0"),
    ] {
        add_to_layout(dir, name, &[Image::amd64(files)]);
        retag(dir, name, tag);
        registry.push(dir, tag, repository, false);
    }

    let workspace = Workspace::new();
    let address = &registry.address;
    assert!(example.contains("\"linuxkit/"), "{example}");
    let config = example.replace("\"linuxkit/", &format!("\"{address}/linuxkit/"));
    workspace.write_config(&format!("{}\n{config}", provider_block(&workspace, &[&registry], false)));
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 0, "{}", plan.text());

    // Every line the README shows is in the plan, in order (digests and indentation aside).
    let actual = normalised(&plan.stdout.replace(&format!("{address}/"), ""));
    let mut from = 0;
    for line in normalised(&shown).iter().filter(|l| !l.is_empty() && l.as_str() != "...") {
        match actual[from..].iter().position(|a| a == line) {
            Some(at) => from += at + 1,
            None => panic!("the README shows {line:?}, the plan does not (after line {from}):\n{}", plan.stdout),
        }
    }
}
