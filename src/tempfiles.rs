//! Temporary files that a later run can prove abandoned.
//!
//! Everything resin writes goes to a temporary file in the destination's directory first
//! (cache blobs, artifacts, initrd segments) and is renamed into place when complete. A
//! process killed on the way (`kill -9`, a crash, a full machine reboot) leaves those
//! files behind. To tell them from the files of a run still going on, each one is locked
//! (`flock`, exclusive) by the process writing it for as long as it is open; the kernel
//! drops the lock when that process dies. [`remove_abandoned`] removes the files whose
//! lock it can take, that is, whose writer is gone. A file younger than [`GRACE`] is left
//! alone as well: between creating a file and locking it there is an instant when even a
//! live writer holds no lock.
//!
//! The parent-death watch ([`watch_parent`]) is the other half: when Terraform itself is
//! killed, the provider it started stops before putting anything more in place.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

/// How old an unlocked temporary file must be before it counts as abandoned.
pub const GRACE: Duration = Duration::from_secs(60);

/// Creates a temporary file named `<prefix><random>` in `dir`, locked until dropped.
pub fn create_locked(dir: &Path, prefix: &str) -> Result<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    match file.as_file().try_lock() {
        Ok(()) => {}
        // A file system without locks (some NFS or FUSE mounts): the file is written all
        // the same; `remove_abandoned` cannot take its lock either, so it never removes it.
        Err(std::fs::TryLockError::Error(e)) => {
            crate::log::debug(
                "temporary file not locked",
                &[("path", file.path().display().to_string()), ("error", e.to_string())],
            );
        }
        Err(std::fs::TryLockError::WouldBlock) => bail!("{} is locked by another process", file.path().display()),
    }
    Ok(file)
}

/// Removes the files named `<prefix>...` in `dir` whose writer is gone (see the module
/// doc). Returns what it removed. A missing directory has nothing to remove.
pub fn remove_abandoned(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        // Gone already (renamed into place, or removed by its writer or another run).
        let Ok(file) = std::fs::OpenOptions::new().read(true).open(&path) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or_default();
        if !meta.is_file() || age < GRACE {
            continue;
        }
        if file.try_lock().is_err() {
            // Its writer is alive (or the file system has no locks: then never removed).
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing the abandoned temporary file {}", path.display()))
            }
        }
    }
    if !removed.is_empty() {
        crate::log::info(
            "removed temporary files of an interrupted run",
            &[("directory", dir.display().to_string()), ("files", removed.len().to_string())],
        );
    }
    Ok(removed)
}

/// Set once the process that started this provider is gone.
static ORPHANED: AtomicBool = AtomicBool::new(false);
/// Held while files are put in place, so that the parent-death watch never stops the
/// process half way through a set of renames.
static PUBLISHING: Mutex<()> = Mutex::new(());

/// Runs `put_in_place` (renames of finished files into their final place) unless the
/// provider's parent is gone: once Terraform has died, nothing it would not learn about
/// is published.
pub fn publish<T>(put_in_place: impl FnOnce() -> Result<T>) -> Result<T> {
    let _guard = PUBLISHING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if ORPHANED.load(Ordering::SeqCst) {
        bail!("Terraform, which started this provider, is gone: nothing is put in place");
    }
    put_in_place()
}

/// Watches the parent process (Terraform) from a thread: when it dies (the provider is
/// re-parented), waits for a set of renames in progress to finish, then exits at once.
/// Temporary files left behind are removed by a later run ([`remove_abandoned`]).
///
/// A Terraform killed before this runs (between starting the provider and the provider
/// reading its parent) leaves nothing to watch: the parent read is already the one it
/// was re-parented to. That provider finds out when its handshake cannot reach Terraform
/// ([`crate::plugin_socket`]) and stops through [`stop_orphaned`] too.
pub fn watch_parent(interval: Duration) {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        std::thread::sleep(interval);
        if std::os::unix::process::parent_id() != parent {
            stop_orphaned(
                "Terraform exited without stopping this provider; stopping now",
                &[("parent_pid", parent.to_string())],
            );
        }
    });
}

/// Stops the process, Terraform being gone (`why`): nothing is put in place from now on,
/// a set of renames under way is finished first.
pub fn stop_orphaned(why: &str, fields: &[(&str, String)]) -> ! {
    ORPHANED.store(true, Ordering::SeqCst);
    let _guard = PUBLISHING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    crate::log::write(crate::log::Level::Error, why, fields);
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, by: Duration) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn only_old_unlocked_files_are_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let live = create_locked(dir.path(), ".tmp-").unwrap();
        age(live.path(), GRACE * 2);
        let young = dir.path().join(".tmp-young");
        std::fs::write(&young, b"just created").unwrap();
        let abandoned = dir.path().join(".tmp-abandoned");
        std::fs::write(&abandoned, b"its writer was killed").unwrap();
        age(&abandoned, GRACE * 2);
        let other = dir.path().join("blob");
        std::fs::write(&other, b"not a temporary file").unwrap();
        age(&other, GRACE * 2);

        assert_eq!(remove_abandoned(dir.path(), ".tmp-").unwrap(), vec![abandoned.clone()]);
        assert!(live.path().exists() && young.exists() && other.exists() && !abandoned.exists());
        // Once its writer closes it, a file left behind is abandoned.
        let path = live.path().to_path_buf();
        let (_file, kept) = live.keep().unwrap();
        drop(_file);
        assert_eq!(remove_abandoned(dir.path(), ".tmp-").unwrap(), vec![kept.clone()]);
        assert!(!path.exists());
        assert!(remove_abandoned(&dir.path().join("missing"), ".tmp-").unwrap().is_empty());
    }

    #[test]
    fn publishing_runs_while_the_parent_lives() {
        assert_eq!(publish(|| Ok(7)).unwrap(), 7);
    }
}
