//! The documents resources hand to each other through their `spec` attribute:
//! `resin_kernel` and `resin_package` to `resin_image`, `resin_image` and `resin_efi_stub`
//! to `resin_disk`. Each holds everything its consumer needs, pinned and self-contained,
//! so a resource plans and applies on a machine whose cache is empty (images are fetched
//! again by digest) and without the provider remembering anything between calls. An image
//! is pinned to its platform manifest (`image`), and to the index it was chosen from
//! (`index`) when the reference named one, as LinuxKit's YAML pins it.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::container::ContainerOptions;
use crate::oci::manifest::{ContainerConfig, ImageConfig};
use crate::oci::platform::Platform;
use crate::oci::reference::PinnedImage;

/// Bumped when the spec documents change shape.
pub const SPEC_VERSION: u32 = 1;

/// A kernel image and how to use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    pub spec_version: u32,
    pub image: PinnedImage,
    /// The index `image` was chosen from, when the reference named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<PinnedImage>,
    pub platform: Platform,
    pub cmdline: String,
    pub binary: String,
    /// Empty: no modules tarball.
    pub modules_tar: String,
    pub ucode: Option<String>,
}

/// What a package's image says about running it: the parts of its config LinuxKit uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDefaults {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// The `org.mobyproject.config` label, verbatim.
    pub label: Option<String>,
}

impl ImageDefaults {
    pub fn of(config: &ImageConfig) -> ImageDefaults {
        let container = config.config.clone().unwrap_or_default();
        ImageDefaults {
            label: container.labels.as_ref().and_then(|l| l.get(crate::container::label::LABEL)).cloned(),
            entrypoint: container.entrypoint,
            cmd: container.cmd,
            env: container.env,
            working_dir: container.working_dir,
        }
    }

    pub fn container_config(&self) -> ContainerConfig {
        ContainerConfig {
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: self.env.clone(),
            working_dir: self.working_dir.clone(),
            labels: None,
        }
    }
}

/// A package: its image, name, options and image defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    pub spec_version: u32,
    pub image: PinnedImage,
    /// The index `image` was chosen from, when the reference named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<PinnedImage>,
    pub platform: Platform,
    pub name: String,
    pub options: ContainerOptions,
    pub defaults: ImageDefaults,
}

/// An assembled image, as `resin_disk` needs it: where its artifacts are, what determines
/// their bytes, and the digests of the kernel and initrd as they were written, which boot
/// files check what they read against (so the spec is known once those files are).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub spec_version: u32,
    pub name: String,
    pub output_dir: String,
    /// The image's content hash: the same hash, the same artifacts.
    pub content_hash: String,
    pub platform: Platform,
    pub cmdline: String,
    pub kernel_path: String,
    pub initrd_path: String,
    /// `sha256:<hex>` and size of `<name>-kernel` as written.
    pub kernel_sha256: String,
    pub kernel_size: u64,
    /// `sha256:<hex>` and size of `<name>-initrd.img` as written.
    pub initrd_sha256: String,
    pub initrd_size: u64,
    /// Where each part of the initrd is (the microcode, each segment, the trailer's
    /// segment), each an initrd on its own: what publishing serves as separate blobs.
    /// Empty in specs of images written before parts were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initrd_parts: Vec<InitrdPart>,
    /// The image holds `sensitive_contents`: its artifacts, and boot files made from them,
    /// are readable by their owner only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// `sha256:<hex>` of `<name>-sbom.spdx.json` as written, which publishing attaches
    /// to the image. Absent from specs written before parts were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom_sha256: Option<String>,
    /// Where the image is published, for a spec read from a registry
    /// (`resin_published_image`): network boot files fetch its blobs from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
}

/// An image as a registry holds it ([`crate::publish`]): its repository and the digests of
/// its artifact manifest and of the blobs a boot loader fetches, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// The registry host, as references name it (`ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    pub repository: String,
    /// The image's artifact manifest.
    pub manifest: String,
    /// The kernel's blob.
    pub kernel: String,
    /// The initrd's parts' blobs, in order: each an initrd, loaded concatenated.
    pub initrd: Vec<String>,
}

/// A byte range of an image's initrd that is an initrd on its own
/// ([`crate::initrd::segments::InitrdPart`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitrdPart {
    /// `microcode`, `segment` or `trailer`.
    pub kind: String,
    pub offset: u64,
    pub length: u64,
    /// CRC32 of the cpio bytes it holds (gzip initrds and the microcode; 0 otherwise).
    pub crc: u32,
    /// Length of the cpio bytes it holds.
    pub cpio_length: u64,
}

impl From<&crate::initrd::segments::InitrdPart> for InitrdPart {
    fn from(part: &crate::initrd::segments::InitrdPart) -> InitrdPart {
        use crate::initrd::segments::PartKind;
        let kind = match part.kind {
            PartKind::Microcode => "microcode",
            PartKind::Segment => "segment",
            PartKind::Trailer => "trailer",
        };
        InitrdPart {
            kind: kind.into(),
            offset: part.offset,
            length: part.length,
            crc: part.summary.crc,
            cpio_length: part.summary.length,
        }
    }
}

/// A UEFI stub in an image (systemd's `linuxx64.efi.stub`...), for `resin_disk`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EfiStubSpec {
    pub spec_version: u32,
    pub image: PinnedImage,
    /// The index `image` was chosen from, when the reference named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<PinnedImage>,
    pub platform: Platform,
    /// The stub's path in the image.
    pub path: String,
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    let value: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("not a {what} spec (expected the spec attribute of a {what})"))?;
    let version = value.get("spec_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(SPEC_VERSION)) {
        bail!("{what} spec version {version:?} is not {SPEC_VERSION}; refresh the {what} with this provider version");
    }
    serde_json::from_value(value)
        .with_context(|| format!("not a {what} spec (expected the spec attribute of a {what})"))
}

impl KernelSpec {
    pub fn parse(text: &str) -> Result<KernelSpec> {
        let spec: KernelSpec = parse(text, "resin_kernel")?;
        if let Some(problem) = check_cmdline(&spec.cmdline) {
            bail!("the kernel's cmdline: {problem}");
        }
        Ok(spec)
    }
}

/// Why `cmdline` cannot be a kernel command line, if it cannot: it is one line of text,
/// written as it is to `<name>-cmdline`, a UKI's `.cmdline` and boot scripts, so a control
/// character (a newline, a tab, a NUL) would cut it short or smuggle in another line.
pub fn check_cmdline(cmdline: &str) -> Option<String> {
    let (at, found) = cmdline.char_indices().find(|(_, c)| c.is_control())?;
    let hint =
        if found == '\n' && at + 1 == cmdline.len() { " (a heredoc ends with one: trim it with chomp())" } else { "" };
    Some(format!("{found:?} at byte {at} is a control character; a command line is one line of printable text{hint}"))
}

impl PackageSpec {
    pub fn parse(text: &str) -> Result<PackageSpec> {
        parse(text, "resin_package")
    }
}

impl ImageSpec {
    pub fn parse(text: &str) -> Result<ImageSpec> {
        parse(text, "resin_image")
    }
}

impl EfiStubSpec {
    pub fn parse(text: &str) -> Result<EfiStubSpec> {
        parse(text, "resin_efi_stub")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_is_one_line_of_printable_text() {
        assert_eq!(check_cmdline("console=ttyS0 quiet"), None);
        assert_eq!(check_cmdline("name=\"with spaces\" \u{e9}"), None);
        for (cmdline, named) in [
            ("quiet\n", "'\\n' at byte 5 is a control character; a command line is one line of printable text (a heredoc ends with one: trim it with chomp())"),
            ("quiet\nchain http://x", "'\\n' at byte 5"),
            ("quiet\0loglevel=3", "'\\0' at byte 5"),
            ("a\tb", "'\\t' at byte 1"),
            ("a\u{7f}", "'\\u{7f}' at byte 1"),
        ] {
            let problem = check_cmdline(cmdline).unwrap_or_else(|| panic!("{cmdline:?} passed"));
            assert!(problem.contains(named), "{cmdline:?}: {problem}");
        }
    }
}
