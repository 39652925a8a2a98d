//! SBAT (Secure Boot Advanced Targeting) metadata for a UKI's `.sbat` section: the CSV
//! lines shim checks against its revocation list, one per component
//! (`component,generation,vendor,package,version,url`), after one `sbat,1,...` line.
//!
//! When `resin_disk.sbat` is set, the UKI's `.sbat` merges, as systemd's `ukify` does:
//! the `sbat` line once, then the components of the stub's `.sbat`, of the kernel's (if
//! it has one) and the user's. The merged section replaces the stub's ([`super::pe`]).
//! Without `sbat` the stub's own `.sbat` is kept as it is.

use anyhow::{bail, Result};

/// The first line of every SBAT section.
pub const HEADER: &str = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md";

/// The component lines of an SBAT text: without its `sbat,` line and empty lines.
fn components(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim_end).filter(|line| !line.is_empty() && !line.starts_with("sbat,"))
}

/// Checks the user's SBAT text: component lines of six fields, a name and a generation
/// number; the `sbat,1,...` line may be there or not.
pub fn check(text: &str) -> Option<String> {
    let mut lines = 0;
    for line in components(text) {
        lines += 1;
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 6 {
            return Some(format!(
                "{line:?} has {} fields; an SBAT line has six: component,generation,vendor,package,version,url",
                fields.len()
            ));
        }
        if fields[0].is_empty() || fields[1].parse::<u32>().is_err() {
            return Some(format!("{line:?}: an SBAT line starts with a component name and a generation number"));
        }
    }
    (lines == 0).then(|| "no SBAT component line (component,generation,vendor,package,version,url)".into())
}

/// The merged `.sbat` of the stub's and the kernel's sections (their bytes, if they have
/// one) and the user's text, NUL-terminated as the section's data.
pub fn merge(stub: Option<&[u8]>, kernel: Option<&[u8]>, user: &str) -> Result<Vec<u8>> {
    let mut merged = format!("{HEADER}\n");
    for (what, section) in [("the EFI stub", stub), ("the kernel", kernel)] {
        let Some(section) = section else { continue };
        let text = String::from_utf8_lossy(section);
        let text = text.trim_end_matches('\0');
        if !text.starts_with("sbat,") {
            bail!("the .sbat section of {what} does not start with an sbat line");
        }
        for line in components(text) {
            merged.push_str(line);
            merged.push('\n');
        }
    }
    for line in components(user) {
        merged.push_str(line);
        merged.push('\n');
    }
    let mut bytes = merged.into_bytes();
    bytes.push(0);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUB: &[u8] = b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nsystemd,1,The systemd Developers,systemd,252,https://systemd.io/\n\0";

    #[test]
    fn the_stubs_kernels_and_users_lines_follow_one_sbat_line() {
        let user = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nnode,1,Example,node,1.0,https://example.com/\n";
        let kernel = b"sbat,1,SBAT Version,sbat,1,x\nlinux,1,Debian,linux,6.1,https://debian.org/\n";
        let merged = merge(Some(STUB), Some(kernel), user).unwrap();
        assert_eq!(
            String::from_utf8(merged).unwrap(),
            format!("{HEADER}\nsystemd,1,The systemd Developers,systemd,252,https://systemd.io/\nlinux,1,Debian,linux,6.1,https://debian.org/\nnode,1,Example,node,1.0,https://example.com/\n\0")
        );
        assert!(merge(Some(b"garbage"), None, user).unwrap_err().to_string().contains("EFI stub"));
    }

    #[test]
    fn user_lines_are_six_fields_with_a_generation() {
        assert_eq!(check("node,1,Example,node,1.0,https://example.com/"), None);
        assert_eq!(check(&format!("{HEADER}\nnode,1,Example,node,1.0,https://example.com/\n")), None);
        assert!(check("node,1,Example").unwrap().contains("has 3 fields"));
        assert!(check("node,one,Example,node,1.0,u").unwrap().contains("generation number"));
        assert!(check(HEADER).unwrap().contains("no SBAT component line"));
    }
}
