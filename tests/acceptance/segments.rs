//! The segment cache: applies where nothing or one input changed copy the cached
//! segments and build only the new ones, with the same bytes as an apply from nothing;
//! damaged entries are found and built again; the cache keeps at most its limit.

use crate::image::{artifact_digests, image_config, out, sha256, write_fixtures};
use crate::terraform::{Output, Workspace};

fn workspace() -> Workspace {
    let workspace = Workspace::new();
    write_fixtures(&workspace.work_dir().join("layout"));
    workspace
}

fn debug_apply(workspace: &Workspace) -> Output {
    let apply =
        workspace.run_with_env(&[("TF_LOG", "DEBUG")], &["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(apply.code, 0, "{}", apply.text());
    apply
}

/// (cached, built) from the apply's "segments planned" line.
fn planned(apply: &Output) -> (usize, usize) {
    let line = apply
        .stderr
        .lines()
        .find(|l| l.contains("assembly: segments planned:") && l.contains("@module=resin"))
        .unwrap_or_else(|| panic!("no segments line:\n{}", apply.stderr));
    let field = |name: &str| -> usize {
        let start = line.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {line}")) + name.len() + 1;
        line[start..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    (field("cached"), field("to_build"))
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
    // kernel modules, init, onboot, services, files: five segments, all new.
    assert_eq!(planned(&debug_apply(&workspace)), (0, 5));
    let first = artifact_digests(&workspace);
    assert_eq!(segment_entries(&workspace).len(), 5);

    // The artifacts rewritten from the cache alone: the same bytes.
    for artifact in ["kernel", "initrd.img", "cmdline"] {
        std::fs::remove_file(out(&workspace, artifact)).unwrap();
    }
    assert_eq!(planned(&debug_apply(&workspace)), (5, 0));
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
    assert_eq!(apply.stderr.matches("removing a damaged cached segment").count(), 5, "{}", apply.stderr);
    assert_eq!(artifact_digests(&workspace), before);
    assert_eq!(segment_entries(&workspace).len(), 5);
}
