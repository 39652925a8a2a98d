//! `uki`: a Unified Kernel Image as the UAPI specification describes it: an EFI stub
//! (systemd's `linux<arch>.efi.stub`) with the image in sections the stub boots from:
//!
//! | section    | holds |
//! |------------|-------|
//! | `.osrel`   | os-release text naming the image (`IMAGE_ID`, and `IMAGE_VERSION` from its content hash) |
//! | `.cmdline` | the kernel command line |
//! | `.uname`   | the kernel release: `resin_disk.uname`, or read from the kernel ([`super::uname`]); absent if neither says one |
//! | `.initrd`  | the initrd |
//! | `.linux`   | the kernel, which must itself be an EFI binary (`CONFIG_EFI_STUB`) of the stub's machine |
//! | `.sbat`    | only with `resin_disk.sbat`: the stub's, the kernel's and the user's SBAT lines ([`super::sbat`]), replacing the stub's |
//!
//! in the order systemd's `ukify` writes them. The stub's bytes are kept; the sections
//! are appended ([`super::pe`]), the kernel and initrd streamed from the image's files. Firmware boots the file directly (an ESP's
//! `\EFI\BOOT\BOOTX64.EFI`), as do systemd-boot and `qemu -kernel` under OVMF.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{bail, Context, Result};

use super::pe::{self, Headers, NewSection};
use super::{DiskFormat, Sources};
use crate::assemble::{ArtifactKind, ImageSpec};
use crate::oci::platform::Platform;

pub struct Uki;

/// Largest EFI stub read from an image (systemd's are about 100 KiB).
pub const MAX_STUB: u64 = 16 << 20;

/// The PE machine type of EFI binaries for `platform`.
pub fn machine_of(platform: &Platform) -> Option<u16> {
    match platform.architecture.as_str() {
        "amd64" => Some(pe::MACHINE_X86_64),
        "arm64" => Some(pe::MACHINE_AARCH64),
        _ => None,
    }
}

/// The machine `platform` boots, or why it has no EFI machine type.
fn expected_machine(platform: &Platform) -> Result<u16> {
    machine_of(platform)
        .with_context(|| format!("platform {platform} has no UEFI machine type resin knows (amd64, arm64)"))
}

/// Checks that `stub` is an EFI binary for `platform` whose headers and sections lie
/// inside it and that can take a UKI's sections.
pub fn check_stub(stub: &[u8], platform: &Platform) -> Result<()> {
    let headers = Headers::of_image(stub).context("the EFI stub")?;
    headers.check_appendable().context("the EFI stub")?;
    let expected = expected_machine(platform)?;
    if headers.machine != expected {
        bail!(
            "the EFI stub is for {}, the image for {platform} ({})",
            pe::machine_name(headers.machine),
            pe::machine_name(expected)
        );
    }
    Ok(())
}

/// The `.osrel` section: os-release lines naming the image.
pub fn osrel(image: &ImageSpec) -> String {
    let version = image.content_hash.trim_start_matches("sha256:");
    format!(
        "NAME=resin\nID=resin\nPRETTY_NAME=\"{} (resin)\"\nIMAGE_ID={}\nIMAGE_VERSION={}\n",
        image.name,
        image.name,
        &version[..version.len().min(12)]
    )
}

/// Checks the image's kernel (its first bytes, of `length` in all) is an EFI binary of the
/// image's machine, as a UKI's `.linux` must be.
pub fn check_efi_kernel(kernel_head: &[u8], length: u64, sources: &Sources<'_>) -> Result<()> {
    let headers = Headers::read(kernel_head, length).with_context(|| {
        format!(
            "the kernel {} cannot go in a UKI: it has no EFI stub (a kernel built with CONFIG_EFI_STUB starts with an MZ and a PE header)",
            sources.image.kernel_path
        )
    })?;
    let expected = expected_machine(&sources.image.platform)?;
    if headers.machine != expected {
        bail!(
            "the kernel {} is an EFI binary for {}, the image is for {}",
            sources.image.kernel_path,
            pe::machine_name(headers.machine),
            sources.image.platform
        );
    }
    Ok(())
}

impl DiskFormat for Uki {
    fn name(&self) -> &'static str {
        "uki"
    }

    fn summary(&self) -> &'static str {
        "the EFI stub with the kernel, initrd and command line as sections; the kernel needs `CONFIG_EFI_STUB`"
    }

    fn suffix(&self) -> &'static str {
        ".efi"
    }

    fn needs_stub(&self) -> bool {
        true
    }

    fn write(&self, sources: &Sources<'_>, out: &mut dyn Write) -> Result<()> {
        if sources.signer.is_none() {
            return write_unsigned(sources, out);
        }
        // Signing needs the whole image (its hash) first: it is made in a temporary file.
        let (uki, length, _) = temporary_uki(sources, &mut super::Phases::start(self.name()))?;
        let copied = std::io::copy(&mut (&uki).take(length), out).context("copying the signed UKI")?;
        if copied != length {
            bail!("the signed UKI ended after {copied} of {length} bytes");
        }
        Ok(())
    }
}

/// The small sections of a UKI: what the writer writes and systemd-stub measures.
pub struct SmallSections {
    pub osrel: String,
    pub cmdline: String,
    /// `.uname`: given, or read from the kernel; none if neither says one.
    pub uname: Option<String>,
    /// `.sbat` merged with the user's lines; `None` keeps the stub's own.
    pub sbat: Option<Vec<u8>>,
}

/// The small sections of the UKI of `sources` with `stub`; the kernel is read for its
/// release and its `.sbat` (not checked against its digest here: the writer checks the
/// whole kernel as it copies it, so a UKI is never made from a kernel that changed).
pub fn small_sections(sources: &Sources<'_>, stub: &[u8]) -> Result<SmallSections> {
    let image = sources.image;
    let mut kernel = crate::rootfs::host::open_regular(std::path::Path::new(&image.kernel_path))
        .with_context(|| format!("opening the kernel of resin_image {}", image.name))?;
    let uname = match sources.uname {
        Some(uname) => Some(uname.to_string()),
        None => super::uname::scrape(&mut kernel)
            .with_context(|| format!("reading the release of the kernel {}", image.kernel_path))?,
    };
    let sbat = match sources.sbat {
        Some(user) => {
            let stub_sbat = Headers::of_image(stub)?.section(".sbat").map(|s| section_data(stub, s)).transpose()?;
            let kernel_sbat = kernel_sbat(&mut kernel)
                .with_context(|| format!("reading the .sbat of the kernel {}", image.kernel_path))?;
            Some(super::sbat::merge(stub_sbat, kernel_sbat.as_deref(), user)?)
        }
        None => None,
    };
    Ok(SmallSections { osrel: osrel(image), cmdline: image.cmdline.clone(), uname, sbat })
}

/// Writes the UKI of `sources` without a signature.
fn write_unsigned(sources: &Sources<'_>, out: &mut dyn Write) -> Result<()> {
    let stub = sources.stub.context("a UKI needs an EFI stub")?;
    check_stub(stub, &sources.image.platform)?;
    let image = sources.image;
    let small = small_sections(sources, stub)?;
    // The kernel and initrd are streamed from their files, checked against the digests
    // the image recorded.
    let (kernel, kernel_length) = super::open_artifact(image, ArtifactKind::Kernel)?;
    let (initrd, initrd_length) = super::open_artifact(image, ArtifactKind::Initrd)?;
    let mut sections = vec![text(".osrel", small.osrel.as_bytes()), text(".cmdline", small.cmdline.as_bytes())];
    if let Some(uname) = &small.uname {
        sections.push(text(".uname", uname.as_bytes()));
    }
    sections.push(NewSection { name: ".initrd", length: initrd_length, data: Box::new(initrd) });
    sections.push(NewSection { name: ".linux", length: kernel_length, data: Box::new(kernel) });
    if let Some(sbat) = &small.sbat {
        sections.push(text(".sbat", sbat));
    }
    pe::append_sections(stub, sections, out)
}

/// A section holding `text`.
fn text<'d>(name: &'static str, text: &'d [u8]) -> NewSection<'d> {
    NewSection { name, length: text.len() as u64, data: Box::new(text) }
}

/// The bytes of `section` of the PE image `image`, at most 64 KiB.
pub fn section_data<'i>(image: &'i [u8], section: &pe::Section) -> Result<&'i [u8]> {
    let length = section.virtual_size.min(section.raw_size).min(64 << 10) as usize;
    image.get(section.raw_offset as usize..).and_then(|data| data.get(..length)).context("a section beyond the file")
}

/// The kernel's own `.sbat` section, if it is a PE image with one.
fn kernel_sbat(kernel: &mut File) -> Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let length = kernel.metadata()?.len();
    kernel.seek(SeekFrom::Start(0))?;
    (&mut *kernel).take(64 << 10).read_to_end(&mut head)?;
    let Some(section) = Headers::read(&head, length).ok().and_then(|h| h.section(".sbat").cloned()) else {
        return Ok(None);
    };
    let mut data = Vec::new();
    kernel.seek(SeekFrom::Start(u64::from(section.raw_offset)))?;
    (&mut *kernel).take(u64::from(section.virtual_size.min(section.raw_size).min(64 << 10))).read_to_end(&mut data)?;
    Ok(Some(data))
}

/// The UKI of `sources` (signed when `sources.signer` says so) in an unnamed temporary
/// file in `sources.scratch`, read from its start, with its length and the removable-media
/// loader name for its machine (the stub's).
pub fn temporary_uki(sources: &Sources<'_>, phases: &mut super::Phases) -> Result<(File, u64, &'static str)> {
    let stub = sources.stub.context("a UKI needs an EFI stub")?;
    let loader = super::esp::loader_name(Headers::of_image(stub).context("the EFI stub")?.machine);
    let mut uki = tempfile::tempfile_in(sources.scratch).context("a temporary file for the UKI")?;
    {
        let mut out = std::io::BufWriter::new(&uki);
        write_unsigned(sources, &mut out)?;
        out.flush()?;
    }
    phases.done("UKI written", uki.metadata()?.len());
    let length = match sources.signer {
        Some(signer) => {
            let length = super::authenticode::sign_in_place(&mut uki, signer)?;
            phases.done("UKI signed", length);
            length
        }
        None => uki.metadata()?.len(),
    };
    std::io::Seek::seek(&mut uki, std::io::SeekFrom::Start(0))?;
    Ok((uki, length, loader))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn image_spec(cmdline: &str) -> ImageSpec {
        ImageSpec {
            spec_version: crate::assemble::SPEC_VERSION,
            name: "node".into(),
            output_dir: "/out".into(),
            content_hash: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            platform: "linux/amd64".parse().unwrap(),
            cmdline: cmdline.into(),
            kernel_path: "/out/node-kernel".into(),
            initrd_path: "/out/node-initrd.img".into(),
            kernel_sha256: crate::oci::digest::sha256(b"").to_string(),
            kernel_size: 0,
            initrd_sha256: crate::oci::digest::sha256(b"").to_string(),
            initrd_size: 0,
            initrd_parts: Vec::new(),
            sensitive: false,
            sbom_sha256: None,
            published: None,
        }
    }

    /// Writes `kernel` and `initrd` in `dir` as `image`'s artifacts, recording their digests.
    pub fn write_artifacts(image: &mut ImageSpec, dir: &std::path::Path, kernel: &[u8], initrd: &[u8]) {
        image.kernel_path = dir.join("node-kernel").display().to_string();
        image.initrd_path = dir.join("node-initrd.img").display().to_string();
        std::fs::write(&image.kernel_path, kernel).unwrap();
        std::fs::write(&image.initrd_path, initrd).unwrap();
        image.kernel_sha256 = crate::oci::digest::sha256(kernel).to_string();
        image.kernel_size = kernel.len() as u64;
        image.initrd_sha256 = crate::oci::digest::sha256(initrd).to_string();
        image.initrd_size = initrd.len() as u64;
    }

    /// `image` with `stub`, nothing else set.
    pub fn stub_sources<'a>(image: &'a ImageSpec, stub: &'a [u8]) -> Sources<'a> {
        Sources {
            image,
            stub: Some(stub),
            base_url: None,
            size_mb: None,
            uname: None,
            sbat: None,
            scratch: std::path::Path::new("."),
            signer: None,
        }
    }

    #[test]
    fn a_uki_holds_the_image_in_its_sections() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = image_spec("console=ttyS0");
        let kernel = crate::disk::pe::tiny_image(pe::MACHINE_X86_64);
        write_artifacts(&mut image, dir.path(), &kernel, b"initrd bytes");
        let stub = crate::disk::pe::tiny_image(pe::MACHINE_X86_64);
        let sources = stub_sources(&image, &stub);
        Uki.check_kernel(&kernel, kernel.len() as u64, &sources).unwrap();
        let mut out = Vec::new();
        Uki.write(&sources, &mut out).unwrap();
        let headers = Headers::of_image(&out).unwrap();
        let data = |name: &str| {
            let s = headers.section(name).unwrap();
            out[s.raw_offset as usize..][..s.virtual_size as usize].to_vec()
        };
        assert_eq!(data(".cmdline"), b"console=ttyS0");
        assert_eq!(data(".linux"), kernel);
        assert_eq!(data(".initrd"), b"initrd bytes");
        assert!(String::from_utf8(data(".osrel")).unwrap().contains("IMAGE_VERSION=0123456789ab\n"));
        let mut again = Vec::new();
        Uki.write(&sources, &mut again).unwrap();
        assert_eq!(out, again, "the same bytes every time");
    }

    #[test]
    fn uname_comes_from_the_kernel_or_the_user_and_sbat_merges_into_the_stubs() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = image_spec("console=ttyS0");
        let mut kernel = crate::disk::pe::tiny_image(pe::MACHINE_AARCH64);
        let banner = b"Linux version 6.1.0-57-arm64 (debian-kernel@lists.debian.org)";
        kernel.extend_from_slice(banner);
        image.platform = "linux/arm64".parse().unwrap();
        write_artifacts(&mut image, dir.path(), &kernel, b"initrd bytes");
        // A stub whose one section is its .sbat.
        let mut stub = crate::disk::pe::tiny_image(pe::MACHINE_AARCH64);
        let table = 0x98 + 240;
        stub[table..table + 8].copy_from_slice(b".sbat\0\0\0");
        let stub_sbat = b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nsystemd,1,The systemd Developers,systemd,252,https://systemd.io/\n\0";
        stub[0x400..0x400 + stub_sbat.len()].copy_from_slice(stub_sbat);
        stub[table + 8..table + 12].copy_from_slice(&u32::try_from(stub_sbat.len()).unwrap().to_le_bytes());
        let mut sources = stub_sources(&image, &stub);
        let sections = |sources: &Sources<'_>| {
            let mut out = Vec::new();
            Uki.write(sources, &mut out).unwrap();
            let headers = Headers::of_image(&out).unwrap();
            headers
                .sections
                .iter()
                .map(|s| (s.name.clone(), out[s.raw_offset as usize..][..s.virtual_size as usize].to_vec()))
                .collect::<Vec<_>>()
        };
        let names = |sections: &[(String, Vec<u8>)]| sections.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let read = sections(&sources);
        assert_eq!(names(&read), [".sbat", ".osrel", ".cmdline", ".uname", ".initrd", ".linux"]);
        assert_eq!(read[3].1, b"6.1.0-57-arm64", "read from the kernel's banner");
        assert_eq!(read[0].1, stub_sbat, "without sbat the stub's is kept");

        sources.uname = Some("6.6.71-custom");
        sources.sbat = Some("node,1,Example,node,1.0,https://example.com/");
        let given = sections(&sources);
        assert_eq!(names(&given), [".osrel", ".cmdline", ".uname", ".initrd", ".linux", ".sbat"]);
        assert_eq!(given[2].1, b"6.6.71-custom");
        let sbat = String::from_utf8(given[5].1.clone()).unwrap();
        assert!(sbat.starts_with("sbat,1,SBAT Version,"), "{sbat}");
        assert!(sbat.contains("\nsystemd,1,The systemd Developers,systemd,252,https://systemd.io/\nnode,1,Example,node,1.0,https://example.com/\n\0"), "{sbat}");
        assert_eq!(sbat.lines().filter(|l| l.starts_with("sbat,")).count(), 1);
    }

    #[test]
    fn a_kernel_without_an_efi_stub_or_of_another_machine_is_refused() {
        let image = image_spec("");
        let stub = crate::disk::pe::tiny_image(pe::MACHINE_X86_64);
        let sources = stub_sources(&image, &stub);
        let error = Uki.check_kernel(b"\x1f\x8b\x08\x00 a gzip'd Image", 20, &sources).unwrap_err();
        assert!(format!("{error:#}").contains("has no EFI stub"), "{error:#}");
        let arm = crate::disk::pe::tiny_image(pe::MACHINE_AARCH64);
        let error = Uki.check_kernel(&arm, arm.len() as u64, &sources).unwrap_err();
        assert!(format!("{error:#}").contains("for aarch64, the image is for linux/amd64"), "{error:#}");
        let error = check_stub(&arm, &image.platform).unwrap_err();
        assert!(format!("{error:#}").contains("the EFI stub is for aarch64"), "{error:#}");
    }
}
