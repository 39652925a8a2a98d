//! `ipxe`: an iPXE script that boots the image's kernel and initrd from `base_url`, with
//! the image's command line, for network-booting fleets:
//!
//! ```text
//! #!ipxe
//! kernel <base_url>/<name>-kernel initrd=<name>-initrd.img <cmdline>
//! initrd <base_url>/<name>-initrd.img
//! boot
//! ```
//!
//! `initrd=` names the initrd for kernels booted through their EFI stub by iPXE's EFI
//! build; BIOS iPXE and the kernel ignore it otherwise.

use std::io::Write;

use anyhow::Result;

use super::{DiskFormat, Sources};

pub struct Ipxe;

impl DiskFormat for Ipxe {
    fn name(&self) -> &'static str {
        "ipxe"
    }

    fn summary(&self) -> &'static str {
        "an iPXE script booting the image's kernel and initrd from `base_url`"
    }

    fn suffix(&self) -> &'static str {
        ".ipxe"
    }

    fn needs_base_url(&self) -> bool {
        true
    }

    fn write(&self, sources: &Sources<'_>, out: &mut dyn Write) -> Result<()> {
        let base = sources.base_url.unwrap_or_default().trim_end_matches('/');
        let name = &sources.image.name;
        let initrd = format!("{name}-initrd.img");
        let mut kernel_line = format!("kernel {base}/{name}-kernel initrd={initrd}");
        if !sources.image.cmdline.is_empty() {
            kernel_line.push(' ');
            kernel_line.push_str(&sources.image.cmdline);
        }
        write!(out, "#!ipxe\n{kernel_line}\ninitrd {base}/{initrd}\nboot\n")?;
        Ok(())
    }
}

/// Why `url` cannot be an iPXE base URL, if it cannot: an absolute http, https or tftp
/// URL without spaces, query or fragment (the script appends file names to it).
pub fn check_base_url(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some(format!("{url:?} is not a URL (expected http://, https:// or tftp://host/path)"));
    };
    if !["http", "https", "tftp"].contains(&scheme) {
        return Some(format!("{url:?}: iPXE fetches http, https and tftp URLs, not {scheme}"));
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Some(format!("{url:?} has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c == '?' || c == '#') {
        return Some(format!(
            "{url:?}: file names are appended to it, so it cannot hold spaces, a query or a fragment"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_boots_the_images_files() {
        let image = crate::disk::uki::tests::image_spec("console=ttyS0 quiet");
        let sources = Sources {
            image: &image,
            stub: None,
            base_url: Some("http://boot.example/images/"),
            size_mb: None,
            uname: None,
            sbat: None,
            scratch: std::path::Path::new("."),
        };
        let mut out = Vec::new();
        Ipxe.write(&sources, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "#!ipxe\nkernel http://boot.example/images/node-kernel initrd=node-initrd.img console=ttyS0 quiet\n\
             initrd http://boot.example/images/node-initrd.img\nboot\n"
        );
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(check_base_url("http://10.0.2.2:8080/img"), None);
        assert_eq!(check_base_url("tftp://10.0.2.2"), None);
        assert!(check_base_url("boot.example/images").unwrap().contains("is not a URL"));
        assert!(check_base_url("ftp://boot.example").unwrap().contains("not ftp"));
        assert!(check_base_url("http:///x").unwrap().contains("no host"));
        assert!(check_base_url("http://a/b?c=d").unwrap().contains("query"));
    }
}
