//! Bad input to resin_image: each is a diagnostic naming the attribute, image, layer or
//! path, and the artifacts already on disk stay as they were.

use serde_json::json;

use crate::fixtures::{add_layered_image, add_raw_image, digest_of, gzip, tar_layer, Entry};
use crate::image::{applied, artifact_digests, image_config};
use crate::terraform::Workspace;

/// Adds `resin_package.extra` (image tag `tag`) to the onboot list.
fn with_extra_onboot(workspace: &Workspace, tag: &str) -> String {
    image_config(workspace, "").replace(
        "onboot     = [resin_package.sysctl.spec]",
        "onboot     = [resin_package.sysctl.spec, resin_package.extra.spec]",
    ) + &format!(
        "\nresource \"resin_package\" \"extra\" {{\n  name  = \"extra\"\n  image = \"oci-layout:./layout:{tag}\"\n}}\n"
    )
}

#[test]
fn hostile_and_corrupt_layers_fail_naming_image_layer_and_path() {
    let (workspace, before) = applied();
    let layout = workspace.work_dir().join("layout");
    add_layered_image(
        &layout,
        "hostile",
        &[tar_layer(&[Entry::File("ok", b"fine", 0o644), Entry::RawFile(b"../../etc/evil")])],
        json!({}),
    );
    let good = tar_layer(&[Entry::File("usr/bin/tool", &vec![7u8; 4000], 0o755)]);
    add_layered_image(&layout, "truncated", &[good[..2048].to_vec()], json!({}));
    add_layered_image(&layout, "dangling", &[tar_layer(&[Entry::HardLink("bin/sh", "bin/nowhere")])], json!({}));
    // A layer that does not match its config's diff_id, and a gzip stream whose CRC is
    // wrong (its blob digest is right: the layout was written that way).
    let plain = tar_layer(&[Entry::File("usr/bin/tool", b"tool", 0o755)]);
    add_raw_image(&layout, "diffid", &[gzip(&plain)], &[digest_of(b"some other layer")]);
    let mut bad_crc = gzip(&plain);
    let crc = bad_crc.len() - 8;
    bad_crc[crc] ^= 0xff;
    let bad_crc_digest = digest_of(&bad_crc);
    add_raw_image(&layout, "badcrc", &[bad_crc], &[digest_of(&plain)]);
    let diff_id_layer = digest_of(&gzip(&plain));
    for (tag, messages) in [
        ("hostile", vec!["onboot[1]", "oci-layout:./layout:hostile", "layer 1", "../../etc/evil", "escapes the root"]),
        (
            "truncated",
            vec!["onboot[1]", "oci-layout:./layout:truncated", "layer 1", "tar entry \"usr/bin/tool\"", "ends after"],
        ),
        ("dangling", vec!["onboot[1]", "hard link /bin/sh -> /bin/nowhere: the target does not exist"]),
        ("diffid", vec!["onboot[1]", "layer 1", &diff_id_layer, "diff_id"]),
        ("badcrc", vec!["onboot[1]", "layer 1", &bad_crc_digest, "corrupt"]),
    ] {
        workspace.write_config(&with_extra_onboot(&workspace, tag));
        let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(apply.code, 1, "{tag}: {}", apply.text());
        for message in messages {
            assert!(apply.says(message), "{tag}: expected {message:?}:\n{}", apply.text());
        }
        assert_eq!(artifact_digests(&workspace), before, "{tag}: the previous artifacts must be untouched");
    }
    crate::trust::assert_cache_consistent(&workspace);
    // Without the broken package, the next apply succeeds.
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    assert_eq!(artifact_digests(&workspace), before);
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn names_newc_cannot_carry_are_an_error_or_a_warning() {
    let (workspace, before) = applied();
    let layout = workspace.work_dir().join("layout");
    // An init image with an entry named like the archive's end marker: GNU cpio and the
    // kernel would stop reading there and lose everything after it.
    add_layered_image(
        &layout,
        "trailer",
        &[tar_layer(&[Entry::File("TRAILER!!!", b"", 0o644), Entry::File("etc/after", b"x", 0o644)])],
        json!({}),
    );
    let trailer_config = image_config(&workspace, "").replace(
        "init       = [resin_package.init.spec]",
        "init       = [resin_package.init.spec, resin_package.extra.spec]",
    ) + "\nresource \"resin_package\" \"extra\" {\n  image = \"oci-layout:./layout:trailer\"\n}\n";
    workspace.write_config(&trailer_config);
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    for expected in ["init[1]", "oci-layout:./layout", "TRAILER!!!", "end-of-archive"] {
        assert!(apply.says(expected), "expected {expected:?}:\n{}", apply.text());
    }
    assert_eq!(artifact_digests(&workspace), before);

    // As a file block: refused at plan time.
    workspace.write_config(&image_config(
        &workspace,
        "\n  file {\n    path     = \"/TRAILER!!!\"\n    contents = \"x\"\n  }\n",
    ));
    let plan = workspace.plan();
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says("Invalid file[2].path") && plan.says("end-of-archive"), "{}", plan.text());

    // Names the kernel cannot create: a warning naming the path (and the file block
    // forms are plan-time errors).
    let long_component = format!("opt/{}/file", "n".repeat(256));
    add_layered_image(
        &layout,
        "longname",
        &[tar_layer(&[Entry::File(&long_component, b"lost at boot", 0o644)])],
        json!({}),
    );
    workspace.write_config(&with_extra_onboot(&workspace, "longname"));
    let apply = workspace.apply();
    assert!(apply.says("Warning: Names the kernel cannot create"), "{}", apply.text());
    assert!(apply.says("longer than 255 bytes"), "{}", apply.text());
    assert!(apply.stdout.contains(&"n".repeat(256)), "the path is not named:\n{}", apply.text());
    let long_path = format!("/{}", ["d"; 2100].join("/"));
    workspace.write_config(&image_config(
        &workspace,
        &format!("\n  file {{\n    path     = \"{long_path}\"\n    contents = \"x\"\n  }}\n"),
    ));
    let plan = workspace.plan();
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says("Invalid file[2].path") && plan.says("4096"), "{}", plan.text());
}

#[test]
fn a_kernel_image_without_its_kernel_file_is_an_error() {
    let (workspace, before) = applied();
    add_layered_image(
        &workspace.work_dir().join("layout"),
        "nokernel",
        &[tar_layer(&[Entry::File("vmlinuz", b"elsewhere", 0o644)])],
        json!({}),
    );
    workspace.write_config(
        &image_config(&workspace, "")
            .replace("oci-layout:./layout:kernel\"", "oci-layout:./layout:nokernel\"\n  modules_tar = \"\""),
    );
    let apply = workspace.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 1, "{}", apply.text());
    assert!(apply.says("oci-layout:./layout:nokernel"), "{}", apply.text());
    assert!(apply.says("has no file /kernel"), "{}", apply.text());
    assert!(
        apply.says("resin_kernel attribute binary"),
        "the kernel resource reports it, at binary:\n{}",
        apply.text()
    );
    assert_eq!(artifact_digests(&workspace), before);
}

#[test]
fn inputs_are_checked_at_plan_time_and_point_at_the_attribute() {
    let (workspace, before) = applied();
    let status = std::process::Command::new("mkfifo").arg(workspace.work_dir().join("fifo")).status().unwrap();
    assert!(status.success());
    let cases = [
        (
            image_config(&workspace, "\n  file {\n    path   = \"/etc/key\"\n    source = \"./missing.key\"\n  }\n"),
            vec!["Invalid file[2].source", "source = \"./missing.key\"", "missing.key", "/etc/key"],
        ),
        // Used to make terraform plan hang forever, reading without end or waiting for
        // a writer.
        (
            image_config(&workspace, "\n  file {\n    path   = \"/etc/zero\"\n    source = \"/dev/zero\"\n  }\n"),
            vec!["Invalid file[2].source", "/dev/zero is a character device", "must be a regular file"],
        ),
        (
            image_config(&workspace, "\n  file {\n    path   = \"/etc/fifo\"\n    source = \"./fifo\"\n  }\n"),
            vec!["Invalid file[2].source", "is a FIFO", "must be a regular file"],
        ),
        (
            image_config(&workspace, "\n  file {\n    path   = \"/etc/dir\"\n    source = \"./layout\"\n  }\n"),
            vec!["Invalid file[2].source", "is a directory"],
        ),
        (
            image_config(
                &workspace,
                "\n  file {\n    path     = \"/etc/both\"\n    contents = \"x\"\n    symlink  = \"/y\"\n  }\n",
            ),
            vec!["Conflicting file settings", "sets contents and symlink"],
        ),
        (
            image_config(&workspace, "\n  file {\n    path = \"/../../outside\"\n    contents = \"x\"\n  }\n"),
            vec!["Invalid file[2].path", "escapes the root"],
        ),
        (
            image_config(&workspace, "").replace(
                "services   = [resin_package.sshd.spec]",
                "services   = [resin_package.sshd.spec, resin_package.sshd.spec]",
            ),
            vec!["Invalid services[1]", "two services are named \"sshd\""],
        ),
        (
            image_config(&workspace, "")
                .replace("kernel     = resin_kernel.k.spec", "kernel     = resin_package.init.spec"),
            vec!["Invalid kernel", "not a resin_kernel spec"],
        ),
    ];
    for (config, messages) in cases {
        workspace.write_config(&config);
        let plan = workspace.plan();
        assert_eq!(plan.code, 1, "{}", plan.text());
        for message in messages {
            assert!(plan.says(message), "expected {message:?}:\n{}", plan.text());
        }
    }
    // An optional source that does not exist is skipped.
    workspace.write_config(&image_config(
        &workspace,
        "\n  file {\n    path     = \"/etc/key\"\n    source   = \"./missing.key\"\n    optional = true\n  }\n",
    ));
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    assert!(!plan.says("content_hash"), "an absent optional source changes no content:\n{}", plan.text());
    workspace.apply();
    assert_eq!(artifact_digests(&workspace), before);
}

#[test]
fn file_capabilities_are_a_warning_naming_the_file() {
    let (workspace, _) = applied();
    add_layered_image(
        &workspace.work_dir().join("layout"),
        "ping",
        &[tar_layer(&[Entry::FileWithXattr("bin/ping", b"ping binary", "security.capability")])],
        json!({}),
    );
    workspace.write_config(&with_extra_onboot(&workspace, "ping"));
    let apply = workspace.apply();
    assert!(apply.says("Warning: Extended attributes dropped"), "{}", apply.text());
    assert!(apply.says("/bin/ping"), "{}", apply.text());
    assert!(apply.says("security.capability"), "{}", apply.text());
}

#[test]
fn a_tag_missing_from_an_oci_layout_lists_the_tags_it_has() {
    let workspace = Workspace::new();
    crate::fixtures::write_fixtures(&workspace.work_dir().join("layout"));
    workspace.write_config(&with_extra_onboot(&workspace, "no-such-tag"));
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says("tag no-such-tag in OCI layout"), "{}", plan.text());
    assert!(plan.says("(which has the tags "), "{}", plan.text());
    assert!(plan.says("kernel, "), "the fixture's tags are listed: {}", plan.text());
}
