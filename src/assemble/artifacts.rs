//! The artifacts of an image on disk: where they go, what was written, and how to tell
//! drift from what apply wrote.
//!
//! * **Paths**: `<name>-kernel`, `<name>-initrd.img`, `<name>-cmdline` and the
//!   [`Document`]s `<name>-sbom.spdx.json` and `<name>-linuxkit.yml` in the output
//!   directory.
//! * **Drift** ([`check`]): an artifact whose size, mtime and inode are as written
//!   ([`FileStamp`]) keeps its recorded digest without being read again, as make and git
//!   do, so refresh stays fast for large initrds; any other file is hashed.
//! * **Publishing**: artifacts are written to temporary files in the output directory
//!   (named [`TEMPORARY_PREFIX`]..., locked while written, so a killed run's leftovers are
//!   told from a running one's) and renamed into place only when all are complete.
//! * **Destroy safety** ([`remove_if_written`]): an artifact is removed only while its
//!   bytes are still what apply wrote; an edited one is left in place.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::compose::Composition;
use crate::rootfs::host::digest_regular;

/// One written artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub path: PathBuf,
    /// `sha256:<hex>`.
    pub sha256: String,
    pub size: u64,
}

/// A kind of file an image is made of: its place (`<output_dir>/<name><suffix>`), its
/// state attributes and its key in the private state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    Kernel,
    Initrd,
    Cmdline,
}

impl ArtifactKind {
    /// What a `resin_image` writes, in this order (the order of old private states).
    pub const IMAGE: [ArtifactKind; 3] = [ArtifactKind::Kernel, ArtifactKind::Initrd, ArtifactKind::Cmdline];

    /// The prefix of its state attributes: `<attribute>_path`, `_sha256`, `_size`.
    pub fn attribute(self) -> &'static str {
        match self {
            ArtifactKind::Kernel => "kernel",
            ArtifactKind::Initrd => "initrd",
            ArtifactKind::Cmdline => "cmdline",
        }
    }

    /// What it is, for documentation and messages.
    pub fn describe(self) -> &'static str {
        match self {
            ArtifactKind::Kernel => "kernel binary",
            ArtifactKind::Initrd => "newc initrd",
            ArtifactKind::Cmdline => "kernel command line",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            ArtifactKind::Kernel => "-kernel",
            ArtifactKind::Initrd => "-initrd.img",
            ArtifactKind::Cmdline => "-cmdline",
        }
    }

    /// Where the artifact of `name` goes in `output_dir`.
    pub fn path(self, output_dir: &Path, name: &str) -> PathBuf {
        output_dir.join(format!("{name}{}", self.suffix()))
    }
}

/// A document written beside an image's artifacts: a function of the composition and
/// the image's name alone, so its digest is known at plan time, and it can be written
/// again by itself when only it is missing or was edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Document {
    /// The SPDX 2.3 SBOM.
    Sbom,
    /// The LinuxKit YAML that builds the same image.
    LinuxkitYaml,
}

impl Document {
    pub const ALL: [Document; 2] = [Document::Sbom, Document::LinuxkitYaml];

    /// The attribute prefix: `<attribute>_path`, `<attribute>_sha256`.
    pub fn attribute(self) -> &'static str {
        match self {
            Document::Sbom => "sbom",
            Document::LinuxkitYaml => "linuxkit_yaml",
        }
    }

    /// Where the document of image `name` goes.
    pub fn path(self, output_dir: &Path, name: &str) -> PathBuf {
        output_dir.join(match self {
            Document::Sbom => format!("{name}-sbom.spdx.json"),
            Document::LinuxkitYaml => format!("{name}-linuxkit.yml"),
        })
    }

    /// Its bytes for image `name` of `composition`.
    pub fn bytes(self, composition: &Composition, name: &str) -> Vec<u8> {
        match self {
            Document::Sbom => super::interop::sbom_bytes(composition, name),
            Document::LinuxkitYaml => super::interop::linuxkit_yaml(composition).into_bytes(),
        }
    }
}

/// sha256 (as `sha256:<hex>`) and size of a regular file on disk.
pub fn file_digest(path: &Path) -> Result<(String, u64)> {
    let (digest, size) = digest_regular(path)?;
    Ok((digest.to_string(), size))
}

/// Names of resin's temporary files in an output directory. `~` never appears in an
/// image name, so no artifact can be taken for a temporary file.
pub const TEMPORARY_PREFIX: &str = ".resin~";

/// A new locked temporary file in `dir`, labelled for what it will hold.
pub fn temporary(dir: &Path, label: &str) -> Result<tempfile::NamedTempFile> {
    crate::tempfiles::create_locked(dir, &format!("{TEMPORARY_PREFIX}{label}-"))
}

/// Who may read an artifact once it is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (0644): artifacts are meant to be read by a PXE or image server, a VM launcher.
    Public,
    /// Its owner only (0600): the artifacts of an image with `sensitive_contents`, and the
    /// boot files made from them, which hold those contents as they are.
    Private,
}

impl Access {
    /// The access of what is made from something `sensitive`.
    pub fn of(sensitive: bool) -> Access {
        if sensitive {
            Access::Private
        } else {
            Access::Public
        }
    }

    pub fn mode(self) -> u32 {
        match self {
            Access::Public => 0o644,
            Access::Private => 0o600,
        }
    }
}

/// Renames complete temporary files into place, in order, readable as `access` says
/// (temporary files are created 0600); they are on disk before the rename. Renames within
/// one directory fail only exceptionally (permissions changed under the run); the error
/// then says which artifacts are already new: refresh sees them as changed and the next
/// apply writes all again.
pub fn publish(files: Vec<(tempfile::NamedTempFile, &Path)>, access: Access) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for (file, _) in &files {
        file.as_file().set_permissions(std::fs::Permissions::from_mode(access.mode()))?;
        file.as_file().sync_all()?;
    }
    crate::tempfiles::publish(|| {
        let mut replaced: Vec<String> = Vec::new();
        for (file, path) in files {
            file.persist(path).with_context(|| {
                let already = if replaced.is_empty() {
                    "none was replaced".to_string()
                } else {
                    format!("already replaced: {}", replaced.join(", "))
                };
                format!("moving the artifact into place at {} ({already})", path.display())
            })?;
            replaced.push(path.display().to_string());
        }
        Ok(())
    })
}

/// Writes one artifact at `path` through a locked temporary file in its directory, renamed
/// into place once `write` has written all of it; returns its digest and size. Blocks of
/// zeros are left as holes ([`crate::sparse::SparseFile`]: a raw disk takes the room of
/// its data). A failure leaves the file that was at `path` as it was.
pub fn write_artifact(
    path: &Path,
    label: &str,
    access: Access,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
) -> Result<Artifact> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file = temporary(dir, label)?;
    let writing = || format!("writing {}", path.display());
    let mut sparse =
        std::io::BufWriter::with_capacity(1 << 20, crate::sparse::SparseFile::new(file.as_file().try_clone()?));
    let mut out = crate::oci::hashing::HashingWriter::new(&mut sparse);
    write(&mut out).with_context(writing)?;
    out.flush().with_context(writing)?;
    let (sha256, size) = out.finish();
    sparse.into_inner().map_err(|e| e.into_error()).and_then(|sparse| sparse.finish()).with_context(writing)?;
    publish(vec![(file, path)], access)?;
    Ok(Artifact { path: path.to_path_buf(), sha256: sha256.to_string(), size })
}

/// Writes `documents` of image `name` (when only they are missing or were edited)
/// through temporary files renamed into place together.
pub fn write_documents(
    composition: &Composition,
    output_dir: &Path,
    name: &str,
    documents: &[Document],
) -> Result<BTreeMap<Document, Artifact>> {
    let contents: Vec<(Document, Vec<u8>)> = documents.iter().map(|d| (*d, d.bytes(composition, name))).collect();
    let (files, written) = document_files(output_dir, name, &contents)?;
    let renames = files.into_iter().map(|(document, file)| (file, written[&document].path.as_path())).collect();
    publish(renames, Access::of(composition.is_sensitive()))?;
    Ok(written)
}

/// Documents written to temporary files, not yet renamed into place.
pub(super) type DocumentFiles = Vec<(Document, tempfile::NamedTempFile)>;

/// Temporary files holding `documents`, and the artifacts they will be once renamed to
/// their paths.
pub(super) fn document_files(
    output_dir: &Path,
    name: &str,
    documents: &[(Document, Vec<u8>)],
) -> Result<(DocumentFiles, BTreeMap<Document, Artifact>)> {
    let (mut files, mut written) = (Vec::new(), BTreeMap::new());
    for (document, bytes) in documents {
        let path = document.path(output_dir, name);
        let mut file = temporary(output_dir, document.attribute())?;
        file.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
        let sha256 = crate::oci::digest::sha256(bytes).to_string();
        written.insert(*document, Artifact { path, sha256, size: bytes.len() as u64 });
        files.push((*document, file));
    }
    Ok((files, written))
}

/// Size, mtime and inode of a file as written: a file with the same stamp is taken to
/// have the same bytes. (Kept in Terraform's private state; the field names are part of
/// that format.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    size: u64,
    mtime_ns: i64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of the regular file at `path`; `None` when there is none.
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        Some(FileStamp {
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            inode: meta.ino(),
        })
    }
}

/// What is at an artifact's path now: its digest and size, or `None` when there is no
/// regular file. With the stamp taken when it was written and the digest recorded then,
/// an unchanged file is not read.
pub fn check(path: &Path, written: Option<(&FileStamp, &str)>) -> Option<(String, u64)> {
    let current = FileStamp::of(path)?;
    match written {
        Some((stamp, digest)) if *stamp == current => Some((digest.to_string(), current.size)),
        _ => file_digest(path).ok(),
    }
}

/// What [`remove_if_written`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Nothing (readable) was there.
    Absent,
    /// The file is not what was written (or nothing is known of what was): left in place.
    Changed,
}

/// Removes the artifact at `path` only while it is still what was written (`written`,
/// `sha256:<hex>`).
pub fn remove_if_written(path: &Path, written: Option<&str>) -> Result<Removal> {
    let Ok((current, _)) = file_digest(path) else { return Ok(Removal::Absent) };
    if Some(current.as_str()) != written {
        return Ok(Removal::Changed);
    }
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    Ok(Removal::Removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_stamp_trusts_the_recorded_digest_and_any_change_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-initrd.img");
        std::fs::write(&path, b"written").unwrap();
        let (digest, size) = file_digest(&path).unwrap();
        assert_eq!((digest.clone(), size), (crate::oci::digest::sha256(b"written").to_string(), 7));
        let stamp = FileStamp::of(&path).unwrap();
        // The same stamp: the recorded digest is believed (a bogus one proves it was not read).
        assert_eq!(check(&path, Some((&stamp, "sha256:recorded"))), Some(("sha256:recorded".into(), 7)));
        // Rewritten (a new inode, as an editor's save or a rename does): hashed again.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"edited!").unwrap();
        let edited = check(&path, Some((&stamp, "sha256:recorded"))).unwrap();
        assert_eq!(edited, file_digest(&path).unwrap());
        assert_ne!(edited.0, digest);
        // Without a stamp, hashed; without a file, nothing.
        assert_eq!(check(&path, None), Some(edited));
        assert_eq!(check(&dir.path().join("missing"), Some((&stamp, "sha256:recorded"))), None);
        assert_eq!(check(dir.path(), None), None, "a directory is not an artifact");
    }

    #[test]
    fn only_what_was_written_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-kernel");
        std::fs::write(&path, b"kernel").unwrap();
        let (written, _) = file_digest(&path).unwrap();
        std::fs::write(&path, b"edited").unwrap();
        assert_eq!(remove_if_written(&path, Some(&written)).unwrap(), Removal::Changed);
        assert_eq!(remove_if_written(&path, None).unwrap(), Removal::Changed);
        assert_eq!(std::fs::read(&path).unwrap(), b"edited");
        std::fs::write(&path, b"kernel").unwrap();
        assert_eq!(remove_if_written(&path, Some(&written)).unwrap(), Removal::Removed);
        assert!(!path.exists());
        assert_eq!(remove_if_written(&path, Some(&written)).unwrap(), Removal::Absent);
    }
}
