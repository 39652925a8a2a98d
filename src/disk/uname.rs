//! The kernel release a UKI's `.uname` section names (what `uname -r` prints once the
//! kernel runs), read from the kernel file when `resin_disk.uname` is not set:
//!
//! * an x86 bzImage says it in its setup header: `HdrS` at 0x202, and at 0x20e the
//!   offset (from 0x200) of a string that starts with the release;
//! * other kernels (an arm64 `Image`) carry the banner `Linux version <release> (` in
//!   their bytes, found by streaming the file.
//!
//! A kernel that says neither (a compressed arm64 kernel) gets no `.uname`; systemd-boot
//! then shows the image's os-release instead.

use std::io::{Read, Seek, SeekFrom};

use anyhow::Result;

/// Longest release read (the kernel's own limit is 64 bytes).
const MAX_RELEASE: usize = 64;
const BANNER: &[u8] = b"Linux version ";

/// Checks a release given by the user: printable, no spaces, at most 64 bytes.
pub fn check(release: &str) -> Option<String> {
    if release.is_empty() || release.len() > MAX_RELEASE {
        return Some(format!("{release:?} is not a kernel release: 1 to {MAX_RELEASE} bytes"));
    }
    if let Some(c) = release.chars().find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii()) {
        return Some(format!("{release:?} is not a kernel release: it holds {c:?} (uname -r prints one word)"));
    }
    None
}

/// The first word of `bytes` if it reads as a release: starts with a digit, printable.
fn release_at(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|b| !b.is_ascii_graphic()).unwrap_or(bytes.len());
    let word = std::str::from_utf8(&bytes[..end.min(MAX_RELEASE)]).ok()?;
    (word.len() == end && word.starts_with(|c: char| c.is_ascii_digit())).then(|| word.to_string())
}

/// The release in an x86 bzImage's setup header.
fn from_setup_header(kernel: &mut (impl Read + Seek)) -> Result<Option<String>> {
    let mut header = [0u8; 0x20];
    kernel.seek(SeekFrom::Start(0x200))?;
    if kernel.read_exact(&mut header).is_err() || &header[2..6] != b"HdrS" {
        return Ok(None);
    }
    let offset = u16::from_le_bytes([header[0xe], header[0xf]]);
    if offset == 0 {
        return Ok(None);
    }
    let mut text = Vec::with_capacity(MAX_RELEASE + 1);
    kernel.seek(SeekFrom::Start(0x200 + u64::from(offset)))?;
    kernel.take(MAX_RELEASE as u64 + 1).read_to_end(&mut text)?;
    Ok(release_at(&text))
}

/// The release in the first `Linux version <release> (` banner of the file.
fn from_banner(kernel: &mut (impl Read + Seek)) -> Result<Option<String>> {
    kernel.seek(SeekFrom::Start(0))?;
    let keep = BANNER.len() + MAX_RELEASE + 2;
    let mut window = vec![0u8; 1 << 20];
    let mut filled = 0;
    loop {
        let read = kernel.read(&mut window[filled..])?;
        let length = filled + read;
        let mut from = 0;
        while let Some(at) = memchr::memmem::find(&window[from..length], BANNER) {
            let start = from + at + BANNER.len();
            if length - start < MAX_RELEASE + 2 && read != 0 {
                break; // the release may go on in the next read
            }
            if let Some(release) = release_at(&window[start..length]) {
                if window.get(start + release.len()..start + release.len() + 2) == Some(b" (") {
                    return Ok(Some(release));
                }
            }
            from = start;
        }
        if read == 0 {
            return Ok(None);
        }
        // Keep the tail: a banner may straddle two reads.
        let tail = length.saturating_sub(keep);
        window.copy_within(tail..length, 0);
        filled = length - tail;
    }
}

/// The kernel release `kernel` says, if it says one.
pub fn scrape(kernel: &mut (impl Read + Seek)) -> Result<Option<String>> {
    match from_setup_header(kernel)? {
        Some(release) => Ok(Some(release)),
        None => from_banner(kernel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_bzimage_names_its_release_in_the_setup_header() {
        let mut kernel = vec![0u8; 0x4000];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        kernel[0x20e..0x210].copy_from_slice(&0x1000u16.to_le_bytes());
        let text = b"6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        kernel[0x1200..0x1200 + text.len()].copy_from_slice(text);
        assert_eq!(scrape(&mut Cursor::new(kernel)).unwrap().as_deref(), Some("6.1.0-57-amd64"));
    }

    #[test]
    fn other_kernels_name_it_in_their_banner_even_across_reads() {
        for at in [100, (1 << 20) - 20, (1 << 20) - 3, 3 << 20] {
            let mut kernel = vec![0x55u8; (4 << 20) + 7];
            // A decoy without the " (" after the release, then the banner.
            let decoy = b"Linux version %s";
            kernel[10..10 + decoy.len()].copy_from_slice(decoy);
            let banner = b"Linux version 6.1.0-57-arm64 (debian-kernel@lists.debian.org)";
            kernel[at..at + banner.len()].copy_from_slice(banner);
            assert_eq!(scrape(&mut Cursor::new(kernel)).unwrap().as_deref(), Some("6.1.0-57-arm64"), "at {at}");
        }
        assert_eq!(scrape(&mut Cursor::new(vec![0u8; 5000])).unwrap(), None);
    }

    #[test]
    fn a_given_release_is_one_printable_word() {
        assert_eq!(check("6.6.71-linuxkit"), None);
        assert!(check("6.6 71").unwrap().contains("uname -r prints one word"));
        assert!(check("").is_some());
        assert!(check(&"1".repeat(65)).is_some());
    }
}
