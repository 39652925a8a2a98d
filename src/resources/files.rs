//! The files a resource writes, handled one way by every resource that writes files,
//! whatever their number: a resource's state says where each kind of file is and what it
//! holds ([`WritesFiles`]), and its private state what apply wrote ([`Written`]).
//!
//! * **Plan**: a new content hash, a replacement or drift ([`drifted`]: a file that is not
//!   what apply wrote) makes every digest unknown ([`to_write`]): the apply writes them
//!   all again. A planned create records the paths it will write ([`Written::will_write`])
//!   so that the destroy half of a replacement leaves them for the create to overwrite.
//! * **Refresh** ([`refresh`]): each file is checked ([`check`]); one whose size, mtime and
//!   inode are as written keeps its recorded digest without being read again.
//! * **Destroy** ([`remove`]): a file is removed only while it is what apply wrote; an
//!   edited one is left in place with a warning.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use tf_provider::{AttributePath, Diagnostics};

use crate::assemble::{check, remove_if_written, Artifact, ArtifactKind, Document, FileStamp, Removal};

/// Checks at plan that apply can write into the output directory `dir`, reporting at
/// `resource`'s `output_dir` why not: the directory, or the nearest existing ancestor
/// apply would create it in, must be a directory that takes new files (tried with an
/// unnamed temporary file, which leaves nothing behind). `false` when reported.
pub fn check_output_dir(resource: &str, dir: &str, diags: &mut Diagnostics) -> bool {
    let problem = match output_dir_problem(std::path::Path::new(dir)) {
        None => return true,
        Some(problem) => problem,
    };
    diags.error(
        "Unusable output_dir",
        format!("{resource} output_dir {dir:?}: {problem}"),
        AttributePath::new("output_dir"),
    );
    false
}

fn output_dir_problem(dir: &std::path::Path) -> Option<String> {
    let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) if existing == dir => return Some("it is not a directory".into()),
            Ok(_) => return Some(format!("{} is not a directory, so it cannot be created", existing.display())),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                match existing.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
                    _ => return None,
                }
            }
            Err(e) => return Some(format!("{}: {e}", existing.display())),
        }
    }
    match tempfile::tempfile_in(existing) {
        Ok(_) => None,
        Err(e) if existing == dir => Some(format!("files cannot be written in it: {e}")),
        Err(e) => Some(format!("it cannot be created in {}: {e}", existing.display())),
    }
}

/// What the state says of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnDisk {
    /// A file with this digest (`sha256:<hex>`) and size.
    File(String, u64),
    /// No file (it was removed).
    Missing,
    /// Unknown until the apply writes it.
    ToWrite,
}

/// The kinds of file one resource type writes: each has its state attributes and its key
/// in the private state.
pub trait OutputKind: Copy + Ord + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Every kind, in the order of private states written before files were keyed by kind.
    const ALL: &'static [Self];
}

/// `resin_image`'s kernel, initrd and command line.
impl OutputKind for ArtifactKind {
    const ALL: &'static [ArtifactKind] = &ArtifactKind::IMAGE;
}

/// A resource state that records files it writes.
pub trait WritesFiles {
    /// The kinds of file it writes.
    type Kind: OutputKind;
    /// Where the file of `kind` goes (`None` while unknown).
    fn path(&self, kind: Self::Kind) -> Option<PathBuf>;
    fn get(&self, kind: Self::Kind) -> OnDisk;
    fn set(&mut self, kind: Self::Kind, on_disk: OnDisk);
}

/// The private state of a resource whose state is `S`.
pub type WrittenFor<S> = Written<<S as WritesFiles>::Kind>;

/// Private state: what apply wrote (to tell drift from the plan's own changes), and, in
/// a planned create, the paths it will write.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "K: OutputKind")]
pub struct Written<K> {
    /// The digest of each file as written.
    #[serde(default, deserialize_with = "by_kind")]
    pub sha256: BTreeMap<K, String>,
    #[serde(default)]
    pub will_write: Vec<String>,
    /// Size, mtime and inode of each file as written: refresh hashes a file again only
    /// when these changed (as make and git do), so plans stay fast for large files.
    #[serde(default, deserialize_with = "by_kind")]
    pub stamps: BTreeMap<K, FileStamp>,
    /// `resin_image`'s documents as written ([`Document`]).
    #[serde(default)]
    pub sbom_sha256: Option<String>,
    #[serde(default)]
    pub linuxkit_yaml_sha256: Option<String>,
    /// Where each part of `resin_image`'s initrd is, as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initrd_parts: Vec<crate::assemble::InitrdPart>,
}

impl<K> Written<K> {
    /// The digest `document` was written with, to set.
    pub fn document(&mut self, document: Document) -> &mut Option<String> {
        match document {
            Document::Sbom => &mut self.sbom_sha256,
            Document::LinuxkitYaml => &mut self.linuxkit_yaml_sha256,
        }
    }

    /// The digest `document` was written with.
    pub fn document_sha256(&self, document: Document) -> Option<&str> {
        match document {
            Document::Sbom => self.sbom_sha256.as_deref(),
            Document::LinuxkitYaml => self.linuxkit_yaml_sha256.as_deref(),
        }
    }
}

impl<K> Default for Written<K> {
    fn default() -> Self {
        Written {
            sha256: BTreeMap::new(),
            will_write: Vec::new(),
            stamps: BTreeMap::new(),
            sbom_sha256: None,
            linuxkit_yaml_sha256: None,
            initrd_parts: Vec::new(),
        }
    }
}

/// A map by kind, or, as private states written before files were keyed by kind hold
/// it, `null` or a list in [`OutputKind::ALL`] order.
fn by_kind<'de, D, K, T>(deserializer: D) -> Result<BTreeMap<K, T>, D::Error>
where
    D: Deserializer<'de>,
    K: OutputKind,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged, bound = "K: OutputKind, T: Deserialize<'de>")]
    enum Form<K, T> {
        ByKind(BTreeMap<K, T>),
        Listed(Vec<T>),
    }
    Ok(match Option::<Form<K, T>>::deserialize(deserializer)? {
        None => BTreeMap::new(),
        Some(Form::ByKind(map)) => map,
        Some(Form::Listed(list)) => K::ALL.iter().copied().zip(list).collect(),
    })
}

/// The private state a destroy receives: a plain destroy writes nothing after it, so no
/// path is spared.
pub fn for_destroy<K>(written: Option<Written<K>>) -> Option<Written<K>> {
    written.map(|written| Written { will_write: Vec::new(), ..written })
}

/// The known paths of the files `state` writes.
pub fn paths<S: WritesFiles>(state: &S) -> Vec<(S::Kind, PathBuf)> {
    S::Kind::ALL.iter().filter_map(|kind| Some((*kind, state.path(*kind)?))).collect()
}

/// Every file is to be written by the apply.
pub fn to_write<S: WritesFiles>(state: &mut S) {
    for kind in S::Kind::ALL {
        state.set(*kind, OnDisk::ToWrite);
    }
}

/// Plans a create: every file is to be written, and the private state records their paths
/// (and `more`, such as an SBOM's) so that the destroy half of a replacement spares them.
pub fn plan_create<S: WritesFiles>(state: &mut S, more: Vec<String>) -> Written<S::Kind> {
    to_write(state);
    let mut will_write: Vec<String> = paths(state).into_iter().map(|(_, path)| path.display().to_string()).collect();
    will_write.extend(more);
    Written { will_write, ..Written::default() }
}

/// Plans an update: the attributes of `identity` (name, whether it changed) that changed
/// name other files and replace the resource; a replacement, new content or drift rewrites every
/// file (its digests unknown). Returns the replacing attributes and whether the files are
/// rewritten.
pub fn plan_update<S: WritesFiles>(
    state: &mut S,
    prior: &S,
    written: Option<&Written<S::Kind>>,
    identity: &[(&'static str, bool)],
    content_changed: bool,
) -> (Vec<AttributePath>, bool) {
    let replace: Vec<AttributePath> =
        identity.iter().filter(|(_, changed)| *changed).map(|(name, _)| AttributePath::new(*name)).collect();
    let rewrite = !replace.is_empty() || content_changed || drifted(prior, written);
    if rewrite {
        to_write(state);
    }
    (replace, rewrite)
}

/// Whether the plan leaves every file as it is (no digest unknown).
pub fn all_kept<S: WritesFiles>(planned: &S) -> bool {
    S::Kind::ALL.iter().all(|kind| planned.get(*kind) != OnDisk::ToWrite)
}

fn recorded<S: WritesFiles>(state: &S, kind: S::Kind) -> Option<String> {
    match state.get(kind) {
        OnDisk::File(sha256, _) => Some(sha256),
        OnDisk::Missing | OnDisk::ToWrite => None,
    }
}

/// Whether a file on disk (as refresh found it in `prior`) is not what apply wrote.
pub fn drifted<S: WritesFiles>(prior: &S, written: Option<&Written<S::Kind>>) -> bool {
    let written = written.map(|w| &w.sha256).filter(|w| !w.is_empty());
    S::Kind::ALL.iter().any(|kind| {
        let on_disk = recorded(prior, *kind);
        match written {
            Some(written) => written.get(kind) != on_disk.as_ref(),
            None => on_disk.is_none(),
        }
    })
}

/// What happened to each file that is not what apply wrote, as a plan tells it: `<path> is
/// missing`, `<path> was changed since apply (...)`, `<path> was replaced by a directory`.
pub fn drift<S: WritesFiles>(prior: &S, written: Option<&Written<S::Kind>>) -> Vec<String> {
    let Some(written) = written.map(|w| &w.sha256).filter(|w| !w.is_empty()) else { return Vec::new() };
    paths(prior)
        .into_iter()
        .filter_map(|(kind, path)| {
            let on_disk = recorded(prior, kind);
            let as_written = written.get(&kind);
            (as_written != on_disk.as_ref())
                .then(|| describe_drift(&path, as_written.map(String::as_str), on_disk.as_deref()))
        })
        .collect()
}

/// What is at `path` instead of the file written with digest `written`: a file of digest
/// `found`, or (`None`) nothing readable, which the path tells apart.
pub fn describe_drift(path: &std::path::Path, written: Option<&str>, found: Option<&str>) -> String {
    let path_text = path.display();
    if let Some(found) = found {
        let written = written.map_or(String::new(), |w| format!(", written as {w}"));
        return format!("{path_text} was changed since apply (now {found}{written})");
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("{path_text} is missing"),
        Err(e) => format!("{path_text} cannot be read: {e}"),
        Ok(meta) if meta.is_dir() => format!("{path_text} was replaced by a directory"),
        Ok(meta) if meta.file_type().is_symlink() => format!("{path_text} was replaced by a symbolic link"),
        Ok(meta) if !meta.is_file() => format!("{path_text} was replaced by something that is not a regular file"),
        Ok(_) => format!("{path_text} cannot be read"),
    }
}

/// Records what apply wrote in the state and returns the private state for it.
pub fn record<S: WritesFiles>(state: &mut S, files: &BTreeMap<S::Kind, Artifact>) -> Written<S::Kind> {
    let mut written = Written::default();
    for (kind, artifact) in files {
        state.set(*kind, OnDisk::File(artifact.sha256.clone(), artifact.size));
        written.sha256.insert(*kind, artifact.sha256.clone());
        if let Some(stamp) = FileStamp::of(&artifact.path) {
            written.stamps.insert(*kind, stamp);
        }
    }
    written
}

/// Checks every file on disk (off the async runtime) and records what is there. When the
/// check cannot run, a warning says so and the state is unchanged.
pub async fn refresh<S: WritesFiles>(state: &mut S, written: Option<&Written<S::Kind>>, diags: &mut Diagnostics) {
    /// A file to check, with its stamp and digest as written.
    type ToCheck<K> = (K, PathBuf, Option<(FileStamp, String)>);
    let files: Vec<ToCheck<S::Kind>> = paths(state)
        .into_iter()
        .map(|(kind, path)| {
            let stamp = written.and_then(|w| w.stamps.get(&kind)).cloned();
            let as_written = stamp.zip(recorded(state, kind));
            (kind, path, as_written)
        })
        .collect();
    let checked = tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .map(|(kind, path, as_written)| {
                let found = check(&path, as_written.as_ref().map(|(stamp, sha256)| (stamp, sha256.as_str())));
                (kind, found)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(checked) = checked else {
        diags.root_warning_short("could not check the artifacts on disk");
        return;
    };
    for (kind, found) in checked {
        state.set(kind, found.map_or(OnDisk::Missing, |(sha256, size)| OnDisk::File(sha256, size)));
    }
}

/// After an update: removes the files `prior` wrote at paths `updated` no longer writes
/// (only while they are what apply wrote, as [`remove`] does).
pub fn remove_moved<S: WritesFiles>(
    prior: &S,
    updated: &S,
    written: Option<&Written<S::Kind>>,
    diags: &mut Diagnostics,
) {
    let kept: Vec<String> = paths(updated).into_iter().map(|(_, path)| path.display().to_string()).collect();
    if paths(prior).iter().all(|(_, path)| kept.contains(&path.display().to_string())) {
        return;
    }
    let written = Written { will_write: kept, ..written.cloned().unwrap_or_default() };
    let _ = remove(prior, &written, Vec::new(), diags);
}

/// Removes the files `prior` wrote (and `more`, with the digest each was written with)
/// unless a planned create writes them again or they changed since they were written.
/// `None`: a file could not be removed (an error says which).
pub fn remove<S: WritesFiles>(
    prior: &S,
    written: &Written<S::Kind>,
    more: Vec<(PathBuf, Option<String>)>,
    diags: &mut Diagnostics,
) -> Option<()> {
    // Compared with what apply wrote (private state) rather than with the state: refresh
    // records an edit in the state, and destroy must still leave an edited file.
    let files = paths(prior).into_iter().map(|(kind, path)| {
        let sha256 = if written.sha256.is_empty() { recorded(prior, kind) } else { written.sha256.get(&kind).cloned() };
        (path, sha256)
    });
    for (path, sha256) in files.chain(more) {
        if written.will_write.contains(&path.display().to_string()) {
            // The replacement writes this path; it overwrites it atomically.
            continue;
        }
        match remove_if_written(&path, sha256.as_deref()) {
            Ok(Removal::Removed | Removal::Absent) => {}
            Ok(Removal::Changed) => diags.warning(
                "Artifact left in place",
                format!(
                    "{} is not what this resource wrote (it changed on disk), so destroy leaves it",
                    path.display()
                ),
                AttributePath::root(),
            ),
            Err(e) => {
                diags.error("Cannot remove artifact", format!("{e:#}"), AttributePath::root());
                return None;
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_dir_is_usable_when_it_or_its_nearest_ancestor_takes_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(output_dir_problem(dir.path()), None);
        assert_eq!(output_dir_problem(&dir.path().join("a/b/c")), None, "created by apply");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(output_dir_problem(&file).as_deref(), Some("it is not a directory"));
        assert!(output_dir_problem(&file.join("sub"))
            .unwrap()
            .ends_with("is not a directory, so it cannot be created"));
        // /proc takes no new files, as root or not.
        assert!(output_dir_problem(std::path::Path::new("/proc/resin-out"))
            .unwrap()
            .contains("cannot be created in /proc"));
    }

    #[test]
    fn private_states_from_before_kinds_still_read() {
        let old: Written<ArtifactKind> = serde_json::from_str(
            r#"{"sha256":["sha256:k","sha256:i","sha256:c"],"will_write":[],"stamps":null,"sbom_sha256":null}"#,
        )
        .unwrap();
        assert_eq!(old.sha256[&ArtifactKind::Initrd], "sha256:i");
        assert!(old.stamps.is_empty());
        let none: Written<ArtifactKind> =
            serde_json::from_str(r#"{"sha256":null,"will_write":["/out/a-kernel"]}"#).unwrap();
        assert!(none.sha256.is_empty());
        let mut new = Written::<ArtifactKind>::default();
        new.sha256.insert(ArtifactKind::Cmdline, "sha256:c".into());
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""cmdline":"sha256:c""#), "{text}");
        assert_eq!(serde_json::from_str::<Written<ArtifactKind>>(&text).unwrap().sha256, new.sha256);
    }
}
