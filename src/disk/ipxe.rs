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
//! An image read from a registry (`resin_published_image`, whose spec says where it is
//! published) boots from there: `base_url` is the registry's or a mirror's root as the
//! machines reach it, and the script fetches the kernel and each part of the initrd by
//! digest, immutable URLs any HTTP cache can serve:
//!
//! ```text
//! #!ipxe
//! kernel <base_url>/v2/<repository>/blobs/<kernel digest> initrd=<name>-initrd.000 ... <cmdline>
//! initrd --name <name>-initrd.000 <base_url>/v2/<repository>/blobs/<digest of part 0>
//! ...
//! boot
//! ```
//!
//! The command line goes in as it is: one iPXE would change ([`check_cmdline`]) is refused.
//!
//! `initrd=` names the initrd for kernels booted through their EFI stub by iPXE's EFI
//! build; BIOS iPXE and the kernel ignore it otherwise.

use std::io::Write;

use anyhow::Result;

use super::{DiskFormat, Sources};
use crate::assemble::{InitrdPart, Published};

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

    fn check_cmdline(&self, cmdline: &str) -> Option<String> {
        check_cmdline(cmdline)
    }

    fn write(&self, sources: &Sources<'_>, out: &mut dyn Write) -> Result<()> {
        if let Some(problem) = check_cmdline(&sources.image.cmdline) {
            anyhow::bail!(
                "the command line of resin_image {} cannot go in an iPXE script: {problem}",
                sources.image.name
            );
        }
        let base = sources.base_url.unwrap_or_default().trim_end_matches('/');
        let name = &sources.image.name;
        let script = match &sources.image.published {
            Some(published) => {
                from_registry(base, name, &sources.image.cmdline, published, &sources.image.initrd_parts)
            }
            None => {
                let initrd = format!("{name}-initrd.img");
                let kernel_line =
                    with_cmdline(format!("kernel {base}/{name}-kernel initrd={initrd}"), &sources.image.cmdline);
                format!("#!ipxe\n{kernel_line}\ninitrd {base}/{initrd}\nboot\n")
            }
        };
        out.write_all(script.as_bytes())?;
        Ok(())
    }
}

fn with_cmdline(mut kernel_line: String, cmdline: &str) -> String {
    if !cmdline.is_empty() {
        kernel_line.push(' ');
        kernel_line.push_str(cmdline);
    }
    kernel_line
}

/// The script of a published image: the kernel and each part of the initrd fetched by
/// digest from the registry (or mirror) at `base`, the parts loaded as initrds in order
/// (the kernel unpacks them concatenated), each named `<name>-initrd.NNN` (its layer's
/// title) for `initrd=`. Parts that hold no cpio bytes (a package with no files, an empty
/// section) are left out: a gzip member of nothing first would be refused by the kernel
/// ("junk at the end of compressed archive"), and none adds anything.
fn from_registry(base: &str, name: &str, cmdline: &str, published: &Published, parts: &[InitrdPart]) -> String {
    let blob = |digest: &str| format!("{base}/v2/{}/blobs/{digest}", published.repository);
    let empty = |index: usize| parts.len() == published.initrd.len() && parts[index].cpio_length == 0;
    let loaded: Vec<(String, &String)> = published
        .initrd
        .iter()
        .enumerate()
        .filter(|(index, _)| !empty(*index))
        .map(|(index, digest)| (format!("{name}-initrd.{index:03}"), digest))
        .collect();
    let mut kernel_line = format!("kernel {}", blob(&published.kernel));
    for (part, _) in &loaded {
        kernel_line.push_str(&format!(" initrd={part}"));
    }
    let mut script = format!("#!ipxe\n{}\n", with_cmdline(kernel_line, cmdline));
    for (part, digest) in &loaded {
        script.push_str(&format!("initrd --name {part} {}\n", blob(digest)));
    }
    script.push_str("boot\n");
    script
}

/// What starts a setting iPXE expands in a script line (`${name}`).
const SETTING_START: &str = "${";

/// Why iPXE would not pass `cmdline` to the kernel as it is, if it would not. iPXE splits
/// a script line into words at white space and joins the `kernel` command's arguments
/// with single spaces; the words `||`, `&&` and `;` end the command and start another, a
/// word starting with `#` starts a comment, and `${...}` expands a setting. So a command
/// line holding any of these, or spaces that are not single spaces between words, would
/// boot with another command line, or run commands of its own.
pub fn check_cmdline(cmdline: &str) -> Option<String> {
    if let Some(found) = cmdline.chars().find(|c| c.is_whitespace() && *c != ' ') {
        return Some(format!("{found:?}: iPXE splits its script at such white space"));
    }
    if cmdline.starts_with(' ') || cmdline.ends_with(' ') || cmdline.contains("  ") {
        return Some(
            "spaces at its start or end or runs of spaces: iPXE passes words separated by single spaces".to_string(),
        );
    }
    for word in cmdline.split(' ') {
        let problem = match word {
            "||" | "&&" | ";" => "ends the kernel command and starts another",
            _ if word.starts_with('#') => "starts a comment that cuts the command line",
            _ if word.contains(SETTING_START) => "is expanded as an iPXE setting",
            _ => continue,
        };
        return Some(format!("the word {word:?} {problem} in an iPXE script"));
    }
    None
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
            signer: None,
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
    fn a_published_image_boots_from_its_registry_blobs_in_order() {
        let mut image = crate::disk::uki::tests::image_spec("console=ttyS0");
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        image.published = Some(Published {
            registry: "registry.example".into(),
            repository: "fleet/node".into(),
            manifest: digest('0'),
            kernel: digest('a'),
            initrd: vec![digest('e'), digest('b'), digest('c')],
        });
        let part = |cpio_length| InitrdPart { kind: "segment".into(), offset: 0, length: 20, crc: 0, cpio_length };
        // The first part is empty: left out.
        image.initrd_parts = vec![part(0), part(512), part(124)];
        let sources = Sources {
            image: &image,
            stub: None,
            base_url: Some("http://mirror.boot:5000/"),
            size_mb: None,
            uname: None,
            sbat: None,
            scratch: std::path::Path::new("."),
            signer: None,
        };
        let mut out = Vec::new();
        Ipxe.write(&sources, &mut out).unwrap();
        let blobs = "http://mirror.boot:5000/v2/fleet/node/blobs";
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "#!ipxe\nkernel {blobs}/{} initrd=node-initrd.001 initrd=node-initrd.002 console=ttyS0\n\
                 initrd --name node-initrd.001 {blobs}/{}\ninitrd --name node-initrd.002 {blobs}/{}\nboot\n",
                digest('a'),
                digest('b'),
                digest('c')
            )
        );
    }

    #[test]
    fn command_lines_ipxe_would_change_are_refused_naming_the_word() {
        assert_eq!(check_cmdline("console=ttyS0 root=/dev/sda1 quiet"), None);
        assert_eq!(check_cmdline(""), None);
        assert_eq!(check_cmdline("a=b#c x|y z&&w"), None, "only whole words are operators, only leading # comments");
        for (cmdline, named) in [
            ("quiet || chain http://elsewhere/x", "\"||\" ends the kernel command"),
            ("quiet && echo", "\"&&\""),
            ("quiet ; shell", "\";\""),
            ("quiet #comment", "\"#comment\" starts a comment"),
            ("root=${root-path}", "\"root=${root-path}\" is expanded"),
            ("quiet\tloglevel=3", "'\\t'"),
            ("quiet  loglevel=3", "runs of spaces"),
            (" quiet", "at its start"),
        ] {
            let problem = check_cmdline(cmdline).unwrap_or_else(|| panic!("{cmdline:?} passed"));
            assert!(problem.contains(named), "{cmdline:?}: {problem}");
        }
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
