//! resin_image end to end: real Terraform, local OCI layouts, and the initrd read back by
//! real tools (gzip -t, GNU cpio).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::fixtures::{add_layered_image, tar_layer, Entry};
use crate::terraform::Workspace;

pub use crate::fixtures::{write_fixtures, KERNEL_BYTES};

/// The standard image configuration; `files` is extra HCL inside `resin_image`.
pub fn image_config(workspace: &Workspace, files: &str) -> String {
    format!(
        r#"
provider "resin" {{
  cache_dir = "{cache}"
}}

resource "resin_kernel" "k" {{
  image   = "oci-layout:./layout:kernel"
  cmdline = "console=ttyS0 panic=-1"
}}

resource "resin_package" "init" {{
  name  = "init"
  image = "oci-layout:./layout:init"
}}

resource "resin_package" "sysctl" {{
  name         = "sysctl"
  image        = "oci-layout:./layout:sysctl"
  capabilities = ["CAP_SYS_ADMIN"]
}}

resource "resin_package" "sshd" {{
  name  = "sshd"
  image = "oci-layout:./layout:sshd"
  binds = ["/etc/ssh:/etc/ssh"]
  uid   = "sshd"
}}

resource "resin_image" "img" {{
  name       = "test"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  init       = [resin_package.init.spec]
  onboot     = [resin_package.sysctl.spec]
  services   = [resin_package.sshd.spec]

  file {{
    path     = "/etc/motd"
    contents = "MOTD"
  }}

  file {{
    path               = "/etc/secret"
    sensitive_contents = "s3cret"
    mode               = "0600"
    uid                = "sshd"
  }}
{files}
}}
"#,
        cache = workspace.cache_dir.display()
    )
}

pub fn out(workspace: &Workspace, artifact: &str) -> PathBuf {
    workspace.work_dir().join("out").join(format!("test-{artifact}"))
}

/// Extracts the initrd with GNU cpio (after checking it with gzip -t) into a new directory.
pub fn extract_initrd(initrd: &Path) -> tempfile::TempDir {
    let status = std::process::Command::new("gzip").arg("-t").arg(initrd).status().unwrap();
    assert!(status.success(), "gzip -t rejects {}", initrd.display());
    let dir = tempfile::tempdir().unwrap();
    let script = format!("gzip -dc '{}' | cpio -idm --quiet --no-absolute-filenames", initrd.display());
    let output = std::process::Command::new("sh").arg("-c").arg(script).current_dir(dir.path()).output().unwrap();
    assert!(output.status.success(), "cpio failed: {}", String::from_utf8_lossy(&output.stderr));
    dir
}

/// `d path`, `f path mode`, `l path -> target` for everything under `root`, sorted.
pub fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.push(format!("l {relative} -> {}", std::fs::read_link(&path).unwrap().display()));
            } else if std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type()) {
                let rdev = meta.rdev();
                out.push(format!("c {relative} {:o} {}:{}", meta.mode() & 0o7777, rdev >> 8, rdev & 0xff));
            } else if meta.is_dir() {
                out.push(format!("d {relative}"));
                walk(root, &path, out);
            } else {
                out.push(format!("f {relative} {:o}", meta.mode() & 0o7777));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn new_workspace() -> Workspace {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    workspace
}

pub fn sha256(path: &Path) -> String {
    crate::fixtures::file_sha256(path)
}

/// The sha256 of the standard image's kernel, initrd and cmdline.
pub fn artifact_digests(workspace: &Workspace) -> Vec<String> {
    ["kernel", "initrd.img", "cmdline"].iter().map(|a| sha256(&out(workspace, a))).collect()
}

/// A workspace with the standard image applied, and its artifact digests.
pub fn applied() -> (Workspace, Vec<String>) {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    let digests = artifact_digests(&workspace);
    (workspace, digests)
}

#[test]
fn an_image_assembles_and_reads_back_with_real_tools() {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    assert_eq!(std::fs::read(out(&workspace, "kernel")).unwrap(), KERNEL_BYTES);
    assert_eq!(std::fs::read_to_string(out(&workspace, "cmdline")).unwrap(), "console=ttyS0 panic=-1");
    // The spec says where each part of the initrd is: the segments and the trailer's, one
    // after the other from the first byte to the last, each gzip members of its own.
    let spec: serde_json::Value =
        serde_json::from_str(workspace.state()["resin_image.img"]["spec"].as_str().unwrap()).unwrap();
    let parts = spec["initrd_parts"].as_array().unwrap();
    let initrd = std::fs::read(out(&workspace, "initrd.img")).unwrap();
    let mut at = 0;
    for (index, part) in parts.iter().enumerate() {
        let kind = if index + 1 == parts.len() { "trailer" } else { "segment" };
        assert_eq!((part["kind"].as_str(), part["offset"].as_u64()), (Some(kind), Some(at)), "{parts:?}");
        let length = part["length"].as_u64().unwrap();
        let bytes = &initrd[usize::try_from(at).unwrap()..][..usize::try_from(length).unwrap()];
        assert_eq!(&bytes[..3], [0x1f, 0x8b, 0x08], "part {index} starts with a gzip header");
        at += length;
    }
    assert_eq!(at, initrd.len() as u64, "{parts:?}");
    let root = extract_initrd(&out(&workspace, "initrd.img"));
    let root = root.path();
    let expected = [
        "d containers",
        "d containers/onboot",
        "d containers/onboot/000-sysctl",
        "f containers/onboot/000-sysctl/config.json 644",
        "d containers/onboot/000-sysctl/rootfs",
        "d containers/onboot/000-sysctl/rootfs/dev",
        "d containers/onboot/000-sysctl/rootfs/dev/pts",
        "d containers/onboot/000-sysctl/rootfs/dev/shm",
        "d containers/onboot/000-sysctl/rootfs/etc",
        "f containers/onboot/000-sysctl/rootfs/etc/hosts 644",
        "l containers/onboot/000-sysctl/rootfs/etc/mtab -> /proc/mounts",
        "f containers/onboot/000-sysctl/rootfs/etc/resolv.conf 644",
        "d containers/onboot/000-sysctl/rootfs/proc",
        "d containers/onboot/000-sysctl/rootfs/sys",
        "d containers/onboot/000-sysctl/rootfs/usr",
        "d containers/onboot/000-sysctl/rootfs/usr/bin",
        "f containers/onboot/000-sysctl/rootfs/usr/bin/sysctl-apply 755",
        "f containers/onboot/000-sysctl/runtime.json 644",
        "d containers/services",
        "d containers/services/sshd",
        "f containers/services/sshd/config.json 644",
        "d containers/services/sshd/lower",
        "d containers/services/sshd/lower/dev",
        "d containers/services/sshd/lower/dev/pts",
        "d containers/services/sshd/lower/dev/shm",
        "d containers/services/sshd/lower/etc",
        "f containers/services/sshd/lower/etc/hosts 644",
        "l containers/services/sshd/lower/etc/mtab -> /proc/mounts",
        "f containers/services/sshd/lower/etc/resolv.conf 644",
        "d containers/services/sshd/lower/proc",
        "d containers/services/sshd/lower/sys",
        "d containers/services/sshd/lower/usr",
        "d containers/services/sshd/lower/usr/sbin",
        "f containers/services/sshd/lower/usr/sbin/sshd 4755",
        "d containers/services/sshd/rootfs",
        "f containers/services/sshd/runtime.json 644",
        "d containers/services/sshd/tmp",
        "d dev",
        "d dev/pts",
        "d dev/shm",
        "d etc",
        "f etc/hosts 644",
        "f etc/issue 644",
        "f etc/motd 644",
        "l etc/mtab -> /proc/mounts",
        "l etc/resolv.conf -> /run/resolvconf/resolv.conf",
        "f etc/secret 600",
        "d bin",
        "f bin/busybox 755",
        "f bin/sh 755",
        "l bin/ls -> busybox",
        "c dev/null 666 1:3",
        "d usr",
        "d usr/bin",
        "f usr/bin/passwd 4755",
        "d lib",
        "d lib/modules",
        "d lib/modules/6.1.0",
        "d lib/modules/6.1.0/kernel",
        "d lib/modules/6.1.0/kernel/fs",
        "d lib/modules/6.1.0/kernel/fs/overlayfs",
        "f lib/modules/6.1.0/kernel/fs/overlayfs/overlay.ko 644",
        "f lib/modules/6.1.0/modules.dep 644",
        "d proc",
        "d sbin",
        "f sbin/init 755",
        "d sys",
        "d tmp",
    ];
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(listing(root), expected);

    // Hard links stay hard links; rewritten and generated files have their content.
    let (busybox, sh) = (root.join("bin/busybox").metadata().unwrap(), root.join("bin/sh").metadata().unwrap());
    assert_eq!((busybox.ino(), busybox.nlink()), (sh.ino(), 2));
    assert_eq!(std::fs::read_to_string(root.join("etc/motd")).unwrap(), "MOTD");
    assert!(std::fs::read_to_string(root.join("etc/hosts")).unwrap().starts_with("127.0.0.1"));
    let secret = root.join("etc/secret").metadata().unwrap();
    assert_eq!((secret.uid(), secret.mode() & 0o777), (101, 0o600), "uid of the container named sshd");

    let sysctl: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("containers/onboot/000-sysctl/config.json")).unwrap()).unwrap();
    assert_eq!(sysctl["root"], json!({ "path": "rootfs", "readonly": true }), "readonly from the label");
    assert_eq!(sysctl["process"]["args"], json!(["/usr/bin/sysctl-apply"]));
    assert_eq!(sysctl["process"]["capabilities"]["effective"], json!(["CAP_SYS_ADMIN"]));
    assert_eq!(
        sysctl["linux"]["namespaces"],
        json!([{ "type": "pid" }, { "type": "mount" }]),
        "net host from the label"
    );
    let sshd: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("containers/services/sshd/config.json")).unwrap()).unwrap();
    assert_eq!(sshd["process"]["args"], json!(["/usr/sbin/sshd", "-D"]));
    assert_eq!(sshd["process"]["user"], json!({ "uid": 101, "gid": 0 }));
    assert_eq!(sshd["process"]["capabilities"]["effective"], json!(["CAP_NET_BIND_SERVICE"]));
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("containers/services/sshd/runtime.json")).unwrap()).unwrap();
    assert_eq!(runtime["mounts"][2]["options"][0], json!("lowerdir=/containers/services/sshd/lower"));

    let state = workspace.state();
    let image = &state["resin_image.img"];
    assert_eq!(image["initrd_sha256"], format!("sha256:{}", sha256(&out(&workspace, "initrd.img"))).as_str());

    // Interop: the LinuxKit YAML and the SPDX SBOM, written beside the artifacts with their
    // digests in state.
    let yaml_path = image["linuxkit_yaml_path"].as_str().unwrap();
    assert_eq!(yaml_path, "./out/test-linuxkit.yml");
    let yaml = std::fs::read_to_string(workspace.work_dir().join(yaml_path)).unwrap();
    assert_eq!(
        image["linuxkit_yaml_sha256"],
        format!("sha256:{}", sha256(&workspace.work_dir().join(yaml_path))).as_str()
    );
    assert!(yaml.starts_with("# 4 image(s) below come from OCI layouts"), "{yaml}");
    for expected in [
        "kernel:\n  image: \"oci-layout:./layout@sha256:",
        "init:\n  - \"oci-layout:./layout@sha256:",
        "onboot:\n  - name: \"sysctl\"",
        "    capabilities:\n      - \"CAP_SYS_ADMIN\"",
        "services:\n  - name: \"sshd\"",
        "    uid: \"sshd\"",
        // Every mode and owner explicit: LinuxKit's defaults are 0600 and 0700.
        "  - path: \"etc/motd\"\n    contents: \"MOTD\"\n    gid: 0\n    mode: \"0644\"\n    uid: 0\n",
        "  - path: \"etc/secret\"\n    contents: \"(sensitive contents, not shown)\"\n    gid: 0\n    mode: \"0600\"\n    uid: \"sshd\"\n",
    ] {
        assert!(yaml.contains(expected), "linuxkit_yaml lacks {expected:?}:\n{yaml}");
    }
    assert!(!yaml.contains("s3cret"), "a sensitive value leaked into linuxkit_yaml");
    // A real YAML parser (PyYAML, from the checkov install) reads it as the intended data.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/checkov/bin/python");
    let mut parse = std::process::Command::new(python)
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("make test installs checkov, which brings PyYAML");
    std::io::Write::write_all(parse.stdin.as_mut().unwrap(), yaml.as_bytes()).unwrap();
    drop(parse.stdin.take());
    let parsed: serde_json::Value = serde_json::from_slice(&parse.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(parsed["kernel"]["cmdline"], "console=ttyS0 panic=-1");
    assert_eq!(parsed["onboot"][0]["capabilities"], json!(["CAP_SYS_ADMIN"]));
    assert_eq!(parsed["services"][0]["binds"], json!(["/etc/ssh:/etc/ssh"]));
    assert_eq!(
        parsed["files"][0],
        json!({ "path": "etc/motd", "contents": "MOTD", "mode": "0644", "uid": 0, "gid": 0 })
    );
    assert_eq!(parsed["files"][1]["mode"], "0600");
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workspace.work_dir().join("out/test-sbom.spdx.json")).unwrap()).unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let names: Vec<&str> = sbom["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["test", "kernel", "init", "sysctl", "sshd"]);
    assert!(sbom["packages"][4]["versionInfo"].as_str().unwrap().starts_with("sha256:"));
    assert!(sbom["documentNamespace"]
        .as_str()
        .unwrap()
        .ends_with(image["content_hash"].as_str().unwrap().trim_start_matches("sha256:")));
    assert_eq!(image["kernel_size"], KERNEL_BYTES.len());
    let plan = workspace.plan();
    assert_eq!(plan.code, 0, "{}", plan.text());
}

#[test]
fn a_changed_file_block_is_a_content_hash_diff_that_updates_the_image() {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    let hash = workspace.state()["resin_image.img"]["content_hash"].as_str().unwrap().to_string();

    workspace.write_config(&image_config(&workspace, "").replace("contents = \"MOTD\"", "contents = \"NEW MOTD\""));
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    assert!(
        plan.says(&format!("~ content_hash = \"{hash}\" -> \"sha256:")),
        "the new hash is known at plan:\n{}",
        plan.text()
    );
    assert!(plan.says("resin_image.img will be updated in-place"), "{}", plan.text());
    workspace.apply();
    let root = extract_initrd(&out(&workspace, "initrd.img"));
    assert_eq!(std::fs::read_to_string(root.path().join("etc/motd")).unwrap(), "NEW MOTD");
    assert!(
        !std::fs::read_dir(workspace.work_dir().join("out")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "no temporary file may remain"
    );
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn an_edited_source_file_is_named_in_the_plan_and_unchanged_artifacts_keep_their_digests() {
    let workspace = new_workspace();
    let source = workspace.work_dir().join("banner.txt");
    std::fs::write(&source, "welcome\n").unwrap();
    let files = "\n  file {\n    path   = \"/etc/banner\"\n    source = \"./banner.txt\"\n  }\n";
    workspace.write_config(&image_config(&workspace, files));
    workspace.apply();
    let state = workspace.state();
    let image = &state["resin_image.img"];
    let digests = &image["file_sha256"];
    assert_eq!(digests["/etc/banner"], format!("sha256:{}", sha256(&source)).as_str());
    assert_eq!(digests["/etc/motd"], format!("sha256:{}", hex_sha256(b"MOTD")).as_str());
    assert!(digests.get("/etc/secret").is_none(), "no digest of a sensitive value: {digests}");

    // Only the source's contents change: the plan says which file, the content hash and
    // the initrd change, and the kernel and command line keep their digests.
    std::fs::write(&source, "welcome back\n").unwrap();
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "{}", plan.text());
    let old = digests["/etc/banner"].as_str().unwrap();
    assert!(
        plan.says(&format!("~ \"/etc/banner\" = \"{old}\" -> \"sha256:{}\"", sha256(&source))),
        "the plan names the file: {}",
        plan.text()
    );
    assert!(plan.says("~ initrd_sha256 = \"sha256:"), "{}", plan.text());
    // (The spec, unknown until the new initrd is written, shows the old digests as JSON.)
    assert!(!plan.says("~ kernel_sha256"), "the kernel's digest does not change: {}", plan.text());
    assert!(!plan.says("~ cmdline_sha256"), "the command line's does not: {}", plan.text());
    workspace.apply();
    assert_eq!(workspace.state()["resin_image.img"]["kernel_sha256"], image["kernel_sha256"]);
    assert_eq!(workspace.plan().code, 0);

    // A new command line: its digest is known at plan as well.
    workspace.write_config(&image_config(&workspace, files).replace("console=ttyS0 panic=-1", "console=ttyS0"));
    let plan = workspace.plan();
    let expected = hex_sha256(b"console=ttyS0");
    assert!(plan.says(&format!("-> \"sha256:{expected}\"")), "{}", plan.text());
    workspace.apply();
    assert_eq!(workspace.state()["resin_image.img"]["cmdline_sha256"], format!("sha256:{expected}").as_str());
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn modified_or_missing_artifacts_are_drift() {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    let initrd = out(&workspace, "initrd.img");
    let original = sha256(&initrd);

    let mut bytes = std::fs::read(&initrd).unwrap();
    bytes.push(0);
    std::fs::write(&initrd, bytes).unwrap();
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "a modified initrd must be drift:\n{}", plan.text());
    // A warning names the file and what happened to it (the diff alone shows a digest
    // known after apply).
    let changed = format!(
        "./out/test-initrd.img was changed since apply (now sha256:{}, written as sha256:{original})",
        sha256(&initrd)
    );
    assert!(
        plan.says("Warning: resin_image test: files changed since apply") && plan.says(&changed),
        "{}",
        plan.text()
    );
    workspace.apply();
    assert_eq!(sha256(&initrd), original, "the rewrite gives the same bytes");
    assert_eq!(workspace.plan().code, 0);

    // Same size, one byte changed in place: refresh sees the new mtime and hashes again.
    let mut bytes = std::fs::read(&initrd).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&initrd, bytes).unwrap();
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "a same-size change must be drift:\n{}", plan.text());
    workspace.apply();
    assert_eq!(sha256(&initrd), original);

    std::fs::remove_file(&initrd).unwrap();
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "a missing initrd must be drift:\n{}", plan.text());
    assert!(plan.says("./out/test-initrd.img is missing"), "{}", plan.text());
    // Something else in its place.
    std::fs::create_dir(&initrd).unwrap();
    let plan = workspace.plan();
    assert!(plan.says("./out/test-initrd.img was replaced by a directory"), "{}", plan.text());
    std::fs::remove_dir(&initrd).unwrap();
    workspace.apply();
    assert_eq!(sha256(&initrd), original);
    assert_eq!(workspace.plan().code, 0);

    std::fs::remove_file(out(&workspace, "kernel")).unwrap();
    let plan = workspace.plan();
    assert_eq!(plan.code, 2, "a missing kernel must be drift:\n{}", plan.text());
    workspace.apply();
    assert_eq!(std::fs::read(out(&workspace, "kernel")).unwrap(), KERNEL_BYTES);
    assert_eq!(workspace.plan().code, 0);
}

#[test]
fn a_missing_or_edited_sbom_is_drift_and_is_written_again_alone() {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    let plan = workspace.plan();
    assert!(
        plan.says("+ sbom_sha256        = \"sha256:"),
        "the SBOM digest must be known at the first plan:\n{}",
        plan.text()
    );
    workspace.apply();
    let sbom = out(&workspace, "sbom.spdx.json");
    let original = std::fs::read(&sbom).unwrap();
    let digest = format!("sha256:{}", sha256(&sbom));
    assert_eq!(workspace.state()["resin_image.img"]["sbom_sha256"], digest);
    let initrd = out(&workspace, "initrd.img");
    let initrd_before = std::fs::metadata(&initrd).unwrap();

    for damage in ["remove", "edit"] {
        let diff = match damage {
            "remove" => {
                std::fs::remove_file(&sbom).unwrap();
                format!("+ sbom_sha256 = \"{digest}\"")
            }
            _ => {
                std::fs::write(&sbom, b"{}\n").unwrap();
                format!("~ sbom_sha256 = \"sha256:{}\" -> \"{digest}\"", sha256(&sbom))
            }
        };
        let plan = workspace.plan();
        assert_eq!(plan.code, 2, "a {damage}d SBOM must be drift:\n{}", plan.text());
        let what = if damage == "remove" { "is missing" } else { "was changed since apply" };
        assert!(plan.says(&format!("./out/test-sbom.spdx.json {what}")), "{}", plan.text());
        assert!(plan.says(&diff), "the plan must show the SBOM digest change ({diff}):\n{}", plan.text());
        assert!(plan.says("1 to change"), "restoring the SBOM is an update, not a replacement:\n{}", plan.text());
        workspace.apply();
        assert_eq!(
            std::fs::read(&sbom).unwrap(),
            original,
            "the SBOM is written again, byte for byte, after it was {damage}d"
        );
        assert_eq!(workspace.plan().code, 0);
    }
    // Only the SBOM was written: the initrd is the same file, untouched.
    use std::os::unix::fs::MetadataExt as _;
    let initrd_after = std::fs::metadata(&initrd).unwrap();
    assert_eq!(
        (initrd_after.ino(), initrd_after.mtime_nsec(), initrd_after.mtime()),
        (initrd_before.ino(), initrd_before.mtime_nsec(), initrd_before.mtime())
    );
}

#[test]
fn destroy_leaves_an_artifact_edited_after_apply() {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    // Destroy refreshes first, so the edit is in the state by then; destroy must still
    // compare with what apply wrote.
    let cmdline = out(&workspace, "cmdline");
    std::fs::write(&cmdline, "console=ttyS0 edited by hand").unwrap();
    let destroy = workspace.run(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(destroy.code, 0, "{}", destroy.text());
    assert!(destroy.says("Artifact left in place"), "{}", destroy.text());
    assert!(
        destroy.says("test-cmdline is not what this resource wrote"),
        "the warning names the file:\n{}",
        destroy.text()
    );
    assert_eq!(std::fs::read_to_string(&cmdline).unwrap(), "console=ttyS0 edited by hand");
    for artifact in ["kernel", "initrd.img", "sbom.spdx.json"] {
        assert!(!out(&workspace, artifact).exists(), "{artifact} left behind");
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes_with_any_cache() {
    let first = new_workspace();
    first.write_config(&image_config(&first, ""));
    first.apply();
    let second = new_workspace();
    second.write_config(&image_config(&second, ""));
    second.apply();
    for artifact in ["kernel", "initrd.img", "cmdline", "sbom.spdx.json"] {
        assert_eq!(
            sha256(&out(&first, artifact)),
            sha256(&out(&second, artifact)),
            "{artifact} differs between two caches"
        );
    }
    assert_eq!(first.state()["resin_image.img"]["content_hash"], second.state()["resin_image.img"]["content_hash"]);
}

#[test]
fn a_saved_plan_applies_after_the_cache_is_deleted() {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    let plan = workspace.run(&["plan", "-out=saved.tfplan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 0, "{}", plan.text());
    assert!(
        plan.says("+ content_hash = \"sha256:"),
        "the content hash must be known at the first plan:\n{}",
        plan.text()
    );
    std::fs::remove_dir_all(&workspace.cache_dir).unwrap();
    let apply = workspace.run(&["apply", "-input=false", "-no-color", "saved.tfplan"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    assert!(out(&workspace, "initrd.img").is_file());
}

#[test]
fn destroy_removes_the_artifacts_and_nothing_else() {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    let keep = workspace.work_dir().join("out/keep.txt");
    std::fs::write(&keep, "not ours").unwrap();
    let destroy = workspace.run(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(destroy.code, 0, "{}", destroy.text());
    for artifact in ["kernel", "initrd.img", "cmdline", "sbom.spdx.json"] {
        assert!(!out(&workspace, artifact).exists(), "{artifact} left behind");
    }
    assert!(keep.exists());
}

#[test]
fn microcode_is_prepended_and_apk_databases_are_merged() {
    let workspace = new_workspace();
    let layout = workspace.work_dir().join("layout");
    // A real early-microcode cpio, written by GNU cpio.
    let staging = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(staging.path().join("kernel/x86/microcode")).unwrap();
    std::fs::write(staging.path().join("kernel/x86/microcode/GenuineIntel.bin"), b"microcode").unwrap();
    let ucode = std::process::Command::new("sh")
        .arg("-c")
        .arg("find kernel | sort | cpio -o -H newc --quiet")
        .current_dir(staging.path())
        .output()
        .unwrap();
    assert!(ucode.status.success());
    let ucode = ucode.stdout;
    add_layered_image(
        &layout,
        "kernel-ucode",
        &[tar_layer(&[Entry::File("kernel", KERNEL_BYTES, 0o644), Entry::File("intel-ucode.cpio", &ucode, 0o644)])],
        json!({}),
    );
    for (tag, package) in [("apk-a", "musl-1.2"), ("apk-b", "busybox-1.36")] {
        let database = format!("P:{package}\n\n");
        add_layered_image(
            &layout,
            tag,
            &[tar_layer(&[Entry::File("lib/apk/db/installed", database.as_bytes(), 0o644)])],
            json!({}),
        );
    }
    let extra_files = "\n  file {\n    path      = \"/var/lib/data\"\n    directory = true\n    mode      = \"0700\"\n  }\n\n  file {\n    path    = \"/etc/localtime\"\n    symlink = \"/usr/share/zoneinfo/UTC\"\n  }\n";
    let config = image_config(&workspace, extra_files)
        .replace("oci-layout:./layout:kernel\"", "oci-layout:./layout:kernel-ucode\"\n  modules_tar = \"\"\n  ucode       = \"intel-ucode.cpio\"")
        .replace("init       = [resin_package.init.spec]", "init       = [resin_package.init.spec, resin_package.apk_a.spec, resin_package.apk_b.spec]")
        + "\nresource \"resin_package\" \"apk_a\" {\n  image = \"oci-layout:./layout:apk-a\"\n}\n\nresource \"resin_package\" \"apk_b\" {\n  image = \"oci-layout:./layout:apk-b\"\n}\n";
    workspace.write_config(&config);
    workspace.apply();
    let initrd = std::fs::read(out(&workspace, "initrd.img")).unwrap();
    assert_eq!(&initrd[..ucode.len()], &ucode[..], "the microcode cpio comes first, uncompressed");
    assert_eq!(&initrd[ucode.len()..ucode.len() + 2], &[0x1f, 0x8b], "then the gzip member");
    let gzip_part = workspace.work_dir().join("gzip-part");
    std::fs::write(&gzip_part, &initrd[ucode.len()..]).unwrap();
    let root = extract_initrd(&gzip_part);
    assert_eq!(
        std::fs::read_to_string(root.path().join("lib/apk/db/installed")).unwrap(),
        "P:musl-1.2\n\nP:busybox-1.36\n\n"
    );
    assert!(!root.path().join("lib/modules").exists(), "modules_tar = \"\" means no modules");
    assert_eq!(root.path().join("var/lib/data").metadata().unwrap().mode() & 0o7777, 0o700);
    assert_eq!(std::fs::read_link(root.path().join("etc/localtime")).unwrap(), Path::new("/usr/share/zoneinfo/UTC"));
}

#[test]
fn debug_logs_show_pulls_and_assembly_phases_and_info_stays_quiet() {
    let workspace = new_workspace();
    workspace.write_config(&image_config(&workspace, ""));
    let debug =
        workspace.run_with_env(&[("TF_LOG", "DEBUG")], &["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(debug.code, 0, "{}", debug.text());
    // Terraform prints a line's fields in no fixed order: look for each field in the line.
    let line_with = |message: &str, fields: &[&str]| {
        debug.stderr.lines().any(|line| {
            line.contains(&format!("{message}:"))
                && line.contains("@module=resin")
                && fields.iter().all(|f| line.contains(f))
        })
    };
    assert!(
        line_with(
            "pulled layer",
            &["reference=oci-layout:./layout:init", "digest=sha256:", "bytes=", "cache=miss", "elapsed_ms="]
        ),
        "no pull line"
    );
    assert!(line_with("pulled image", &["layers=", "bytes_fetched=", "elapsed_ms="]), "no image line");
    assert!(line_with("resolved image", &["platform=linux/amd64", "digest=sha256:"]), "no resolve line");
    for phase in [
        "assembly: segments planned",
        "assembly: segments written",
        "assembly: initrd written",
        "assembly: artifacts written",
    ] {
        assert!(line_with(phase, &["elapsed_ms="]), "no {phase:?} line");
    }
    workspace.write_config(&image_config(&workspace, "").replace("contents = \"MOTD\"", "contents = \"MOTD 2\""));
    let info = workspace.run_with_env(&[("TF_LOG", "INFO")], &["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(info.code, 0, "{}", info.text());
    assert!(
        !info.stderr.contains("@module=resin"),
        "INFO must stay quiet:\n{}",
        info.stderr.lines().filter(|l| l.contains("@module=resin")).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn an_output_dir_that_cannot_be_created_is_a_plan_error_at_the_attribute() {
    let workspace = new_workspace();
    std::fs::write(workspace.work_dir().join("blocker"), b"a file, not a directory").unwrap();
    let config = image_config(&workspace, "").replace("output_dir = \"./out\"", "output_dir = \"./blocker/out\"");
    assert!(config.contains("./blocker/out"));
    workspace.write_config(&config);
    let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.text());
    assert!(plan.says("Unusable output_dir"), "{}", plan.text());
    assert!(
        plan.says("resin_image output_dir \"./blocker/out\": ./blocker is not a directory, so it cannot be created"),
        "{}",
        plan.text()
    );
    assert!(plan.says("output_dir = \"./blocker/out\""), "Terraform shows the attribute: {}", plan.text());
}
