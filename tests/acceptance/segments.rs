//! The segment cache: applies where nothing or one input changed copy the cached
//! segments and build only the new ones, with the same bytes as an apply from nothing;
//! the kernel image is read once (by resin_kernel's check, which keeps its files);
//! damaged entries are found and built again; the cache keeps at most its limit.

use crate::image::{artifact_digests, image_config, out, sha256, write_fixtures};
use crate::terraform::{Output, Workspace};

fn workspace() -> Workspace {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    workspace
}

pub fn debug_apply(workspace: &Workspace) -> Output {
    let apply =
        workspace.run_with_env(&[("TF_LOG", "DEBUG")], &["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    apply
}

/// (cached, built) from the apply's "segments planned" line.
pub fn planned(apply: &Output) -> (usize, usize) {
    let line = apply
        .stderr
        .lines()
        .find(|l| l.contains("assembly: segments planned:") && l.contains("@module=resin"))
        .unwrap_or_else(|| panic!("no segments line:\n{}", apply.stderr));
    (log_field(line, "cached"), log_field(line, "to_build"))
}

/// The number `name=` holds in a provider log line.
pub fn log_field(line: &str, name: &str) -> usize {
    let start = line.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {line}")) + name.len() + 1;
    line[start..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// How many times the apply read the kernel image.
pub fn kernel_reads(apply: &Output) -> usize {
    apply.stderr.lines().filter(|l| l.contains("reading the kernel image:") && l.contains("@module=resin")).count()
}

fn segment_entries(workspace: &Workspace) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(workspace.cache_dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    entries.sort();
    entries
}

#[test]
fn cached_segments_give_the_same_bytes_and_only_what_changed_is_built() {
    let workspace = workspace();
    workspace.write_config(&image_config(&workspace, ""));
    // kernel modules, init, onboot, services, files: five segments, all new. The kernel
    // image is read once, by resin_kernel's check, which keeps the kernel binary and the
    // modules tarball for the assembly: seven entries.
    let cold = debug_apply(&workspace);
    assert_eq!(planned(&cold), (0, 5));
    assert_eq!(kernel_reads(&cold), 1, "{}", cold.stderr);
    let first = artifact_digests(&workspace);
    assert_eq!(segment_entries(&workspace).len(), 7);

    // The artifacts rewritten from the cache alone: the same bytes.
    for artifact in ["kernel", "initrd.img", "cmdline"] {
        std::fs::remove_file(out(&workspace, artifact)).unwrap();
    }
    let warm = debug_apply(&workspace);
    assert_eq!(planned(&warm), (5, 0));
    assert_eq!(kernel_reads(&warm), 0, "{}", warm.stderr);
    assert_eq!(artifact_digests(&workspace), first);

    // One file changes: only the file segment is built again.
    workspace.write_config(&image_config(&workspace, "").replace("contents = \"MOTD\"", "contents = \"MOTD 2\""));
    assert_eq!(planned(&debug_apply(&workspace)), (4, 1));
    let changed = sha256(&out(&workspace, "initrd.img"));
    assert_ne!(changed, first[1]);

    // The same image from nothing, in a cache of its own, with no segment kept: the
    // same bytes as the one mostly made of cached segments.
    let fresh = self::workspace();
    let config = image_config(&fresh, "").replace("contents = \"MOTD\"", "contents = \"MOTD 2\"");
    fresh.write_config(&crate::without_segment_cache(&config));
    assert_eq!(planned(&debug_apply(&fresh)), (0, 5));
    assert_eq!(sha256(&out(&fresh, "initrd.img")), changed);
    assert!(segment_entries(&fresh).is_empty(), "segment_cache_mb = 0 keeps nothing");
}

#[test]
fn a_damaged_cached_segment_is_built_again() {
    let workspace = workspace();
    workspace.write_config(&image_config(&workspace, ""));
    debug_apply(&workspace);
    let before = artifact_digests(&workspace);
    for (index, entry) in segment_entries(&workspace).iter().enumerate() {
        let mut bytes = std::fs::read(entry).unwrap();
        match index % 3 {
            // A bit flipped in the compressed bytes, in the metadata, or the entry cut short.
            0 => bytes[0] ^= 1,
            1 => {
                let at = bytes.len() - 110;
                bytes[at] ^= 1;
            }
            _ => bytes.truncate(bytes.len() / 2),
        }
        std::fs::write(entry, bytes).unwrap();
    }
    std::fs::remove_file(out(&workspace, "initrd.img")).unwrap();
    let apply = debug_apply(&workspace);
    assert_eq!(planned(&apply), (0, 5), "every damaged segment is built again");
    // Five segments and the two kernel files kept.
    assert_eq!(apply.stderr.matches("removing a damaged cached segment").count(), 7, "{}", apply.stderr);
    assert_eq!(kernel_reads(&apply), 1, "the kernel files are kept again from one read");
    assert_eq!(artifact_digests(&workspace), before);
    assert_eq!(segment_entries(&workspace).len(), 7);
}

/// The standard image with `settings` added to `resin_image`.
fn with_settings(workspace: &Workspace, settings: &str) -> String {
    image_config(workspace, settings)
}

#[test]
fn compression_settings_give_the_same_files_in_other_bytes() {
    let workspace = workspace();
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    let gzip_root = crate::image::extract_initrd(&out(&workspace, "initrd.img"));
    let default_hash = workspace.state()["resin_image.img"]["content_hash"].clone();
    let default_initrd = sha256(&out(&workspace, "initrd.img"));

    // Level 9: other bytes, the same files, another content hash.
    workspace.write_config(&with_settings(&workspace, "\n  compression_level = 9\n"));
    workspace.apply();
    assert_ne!(sha256(&out(&workspace, "initrd.img")), default_initrd);
    assert_ne!(workspace.state()["resin_image.img"]["content_hash"], default_hash);
    let level9_root = crate::image::extract_initrd(&out(&workspace, "initrd.img"));
    assert_eq!(crate::image::listing(level9_root.path()), crate::image::listing(gzip_root.path()));

    // None: a plain newc archive with the same files.
    workspace.write_config(&with_settings(&workspace, "\n  compression = \"none\"\n"));
    workspace.apply();
    let initrd = out(&workspace, "initrd.img");
    assert_eq!(&std::fs::read(&initrd).unwrap()[..6], b"070701", "a plain cpio");
    let plain = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(&initrd)
        .current_dir(plain.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(crate::image::listing(plain.path()), crate::image::listing(gzip_root.path()));
    assert_eq!(
        std::fs::read(plain.path().join("etc/motd")).unwrap(),
        std::fs::read(gzip_root.path().join("etc/motd")).unwrap()
    );
    // zstd: frames that the zstd tool reads as one stream, the same files.
    workspace.write_config(&with_settings(&workspace, "\n  compression = \"zstd\"\n"));
    workspace.apply();
    let zstd_hash = workspace.state()["resin_image.img"]["content_hash"].clone();
    assert_ne!(zstd_hash, default_hash);
    let initrd = out(&workspace, "initrd.img");
    assert_eq!(std::fs::read(&initrd).unwrap()[..4], [0x28, 0xb5, 0x2f, 0xfd], "zstd frames");
    let zstd_root = tempfile::tempdir().unwrap();
    let script = format!("zstd -dcq '{}' | cpio -idm --quiet --no-absolute-filenames", initrd.display());
    let status = std::process::Command::new("sh").arg("-c").arg(script).current_dir(zstd_root.path()).status().unwrap();
    assert!(status.success());
    assert_eq!(crate::image::listing(zstd_root.path()), crate::image::listing(gzip_root.path()));
    assert_eq!(
        std::fs::read(zstd_root.path().join("etc/motd")).unwrap(),
        std::fs::read(gzip_root.path().join("etc/motd")).unwrap()
    );
    // Level 19: other bytes again.
    let zstd_initrd = sha256(&initrd);
    workspace.write_config(&with_settings(&workspace, "\n  compression = \"zstd\"\n  compression_level = 19\n"));
    workspace.apply();
    assert_ne!(sha256(&out(&workspace, "initrd.img")), zstd_initrd);
    assert_ne!(workspace.state()["resin_image.img"]["content_hash"], zstd_hash);
    // Back to the default: the cached segments give the first bytes again.
    workspace.write_config(&image_config(&workspace, ""));
    workspace.apply();
    assert_eq!(sha256(&out(&workspace, "initrd.img")), default_initrd);
}

#[test]
fn bad_compression_settings_are_plan_errors_at_the_attribute() {
    let workspace = workspace();
    for (settings, attribute, message) in [
        ("compression = \"lz4\"", "compression", "\"lz4\" is not a compression"),
        ("compression_level = 0", "compression_level", "0 is not a gzip level (1 to 9)"),
        ("compression = \"zstd\"\n  compression_level = 20", "compression_level", "20 is not a zstd level (1 to 19)"),
        ("compression = \"none\"\n  compression_level = 4", "compression_level", "compression \"none\" takes no level"),
    ] {
        workspace.write_config(&with_settings(&workspace, &format!("\n  {settings}\n")));
        let plan = workspace.run(&["plan", "-input=false", "-no-color"]);
        assert_eq!(plan.code, 1, "{settings}: {}", plan.text());
        assert!(plan.says(message), "{settings}: {}", plan.text());
        assert!(plan.says(&format!("resin_image {attribute}:")), "{settings}: {}", plan.text());
    }
}
