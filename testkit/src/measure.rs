//! What the benchmarks measure with: process measurements read from /proc, and the real
//! files of this machine they pack into images.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Peak resident set size (VmHWM) of this process, in KiB.
pub fn peak_rss_kib() -> u64 {
    peak_rss_kib_of(Path::new("/proc/self"))
}

/// User + system CPU time of this process, in seconds.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_of(Path::new("/proc/self"))
}

/// Peak resident set size (VmHWM) of the process at `proc` (`/proc/<pid>`), in KiB; 0 when
/// it is gone.
pub fn peak_rss_kib_of(proc: &Path) -> u64 {
    std::fs::read_to_string(proc.join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// User + system CPU time of the process at `proc`, in seconds (clock ticks of 1/100 s).
pub fn cpu_seconds_of(proc: &Path) -> f64 {
    let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Regular files of this machine's /usr/lib, /usr/bin and /usr/libexec whose size is in
/// `sizes`, in path order, up to `budget` bytes in all.
pub fn real_files(sizes: Range<u64>, budget: u64) -> Vec<PathBuf> {
    fn walk(dir: &Path, sizes: &Range<u64>, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if meta.is_dir() {
                walk(&path, sizes, files);
            } else if meta.is_file() && sizes.contains(&meta.len()) {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for root in ["/usr/lib", "/usr/bin", "/usr/libexec"] {
        walk(Path::new(root), &sizes, &mut files);
    }
    let mut total = 0;
    files.retain(|f| {
        let size = std::fs::metadata(f).map_or(0, |m| m.len());
        let keep = total + size <= budget;
        total += if keep { size } else { 0 };
        keep
    });
    files
}
