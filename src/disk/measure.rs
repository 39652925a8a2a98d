//! PCR 11: what systemd-stub measures of a UKI before it boots it, computed ahead of time
//! as `systemd-measure calculate` does, so attestation policy (a TPM-sealed disk key, a
//! remote attestation server) can be written before a machine boots.
//!
//! The stub extends PCR 11 (SHA-256 bank) twice for each of the sections it measures
//! that the UKI has, in the order below: first with the section's name and its NUL,
//! then with the section's data (its `VirtualSize` bytes). Extending with `data` makes
//! the PCR `sha256(pcr || sha256(data))`; it starts at zeros. Which sections are measured
//! depends on the stub's systemd version, read from its `.sdmagic` section
//! (`#### LoaderInfo: systemd-stub 252.38-1~deb12u1 ####`).

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

use super::pe::Headers;
use super::Sources;

/// The sections systemd-stub measures, in its canonical order, with the first version
/// that measures each (systemd's `UnifiedSection` enum: `src/fundamental/tpm-pcr.h` in
/// 252 and 253, `uki.h` from 255; `.uname` and `.sbat` from 254, `.ucode` from 256,
/// `.profile`, `.dtbauto`, `.hwids` from 257, `.efifw` from 258). `.pcrsig` is never
/// measured (it signs the others). resin writes `.linux`, `.osrel`, `.cmdline`, `.initrd`,
/// `.uname` and `.sbat`; the others count when the stub brings them.
const MEASURED: &[(&str, u32)] = &[
    (".linux", 252),
    (".osrel", 252),
    (".cmdline", 252),
    (".initrd", 252),
    (".ucode", 256),
    (".splash", 252),
    (".dtb", 252),
    (".uname", 254),
    (".sbat", 254),
    (".pcrpkey", 252),
    (".profile", 257),
    (".dtbauto", 257),
    (".hwids", 257),
    (".efifw", 258),
];

/// The first systemd version whose stub measures the UKI's sections into PCR 11.
const FIRST_MEASURING: u32 = 252;

/// The systemd version of a systemd-stub, from its `.sdmagic` section; `None` for a stub
/// that is not systemd's.
pub fn stub_version(stub: &[u8]) -> Option<u32> {
    let headers = Headers::of_image(stub).ok()?;
    let magic = super::uki::section_data(stub, headers.section(".sdmagic")?).ok()?;
    let text = String::from_utf8_lossy(magic);
    let after = text.split("systemd-stub ").nth(1)?;
    after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The sections a stub of systemd `version` measures, in its order.
pub fn measured_sections(version: u32) -> Vec<&'static str> {
    MEASURED.iter().filter(|(_, since)| version >= *since).map(|(name, _)| *name).collect()
}

/// PCR 11 after a stub of systemd `version` measured a UKI whose sections hash as
/// `section` says (`None` for a section the UKI does not have); `None` for a stub that
/// measures nothing.
pub fn pcr11(version: u32, section: impl Fn(&str) -> Option<[u8; 32]>) -> Option<[u8; 32]> {
    if version < FIRST_MEASURING {
        return None;
    }
    let mut pcr = [0u8; 32];
    let mut extend = |digest: [u8; 32]| {
        let mut hasher = Sha256::new();
        hasher.update(pcr);
        hasher.update(digest);
        pcr = hasher.finalize().into();
    };
    for name in measured_sections(version) {
        let Some(data) = section(name) else { continue };
        let mut with_nul = name.as_bytes().to_vec();
        with_nul.push(0);
        extend(Sha256::digest(&with_nul).into());
        extend(data);
    }
    Some(pcr)
}

/// The digest of a section of `image` as a stub measures it: its `VirtualSize` bytes as
/// loaded (its raw data, then zeros where `VirtualSize` is larger).
fn measured_digest(image: &[u8], headers: &Headers, name: &str) -> Option<[u8; 32]> {
    let section = headers.section(name)?;
    let raw = section.raw_size.min(section.virtual_size) as usize;
    let data = image.get(section.raw_offset as usize..)?.get(..raw)?;
    let mut hasher = Sha256::new();
    hasher.update(data);
    hasher.update(vec![0u8; (section.virtual_size as usize).saturating_sub(raw)]);
    Some(hasher.finalize().into())
}

/// PCR 11 as a stub of systemd `version` measures the UKI `image` (the whole file).
pub fn pcr11_of_uki(image: &[u8], version: u32) -> Result<Option<[u8; 32]>> {
    let headers = Headers::of_image(image).context("the UKI")?;
    Ok(pcr11(version, |name| measured_digest(image, &headers, name)))
}

/// PCR 11 of the UKI `sources` and `stub` make, predicted without making it: the kernel
/// and initrd from the digests the image recorded, the small sections as the writer makes
/// them, the stub's own sections where the UKI keeps them. `None` for a stub that is not
/// systemd's, or measures nothing.
pub fn predict(sources: &Sources<'_>, stub: &[u8]) -> Result<Option<[u8; 32]>> {
    let Some(version) = stub_version(stub) else { return Ok(None) };
    let headers = Headers::of_image(stub).context("the EFI stub")?;
    let small = super::uki::small_sections(sources, stub)?;
    let recorded = |digest: &str| -> Result<[u8; 32]> {
        let digest = crate::oci::digest::parse(digest)?;
        hex::decode(digest.digest())?.try_into().map_err(|_| anyhow::anyhow!("not a sha256 digest"))
    };
    let (kernel, initrd) = (recorded(&sources.image.kernel_sha256)?, recorded(&sources.image.initrd_sha256)?);
    let text = |bytes: &[u8]| -> [u8; 32] { Sha256::digest(bytes).into() };
    Ok(pcr11(version, |name| match name {
        ".linux" => Some(kernel),
        ".initrd" => Some(initrd),
        ".osrel" => Some(text(small.osrel.as_bytes())),
        ".cmdline" => Some(text(small.cmdline.as_bytes())),
        ".uname" if small.uname.is_some() => small.uname.as_deref().map(|u| text(u.as_bytes())),
        ".sbat" if small.sbat.is_some() => small.sbat.as_deref().map(text),
        // What the UKI does not replace is the stub's.
        other => measured_digest(stub, &headers, other),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_sections_follow_the_stubs_version() {
        assert_eq!(measured_sections(252), [".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey"]);
        assert_eq!(measured_sections(253), measured_sections(252));
        assert_eq!(
            measured_sections(256),
            [".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey"]
        );
        assert_eq!(measured_sections(257)[10..], [".profile", ".dtbauto", ".hwids"]);
        assert_eq!(pcr11(251, |_| Some([0; 32])), None, "stubs before 252 measure nothing");
    }

    #[test]
    fn extending_is_sha256_of_the_pcr_and_the_digest() {
        // One section: two extends, by hand.
        let linux = [7u8; 32];
        let expected = {
            let name: [u8; 32] = Sha256::digest(b".linux\0").into();
            let once: [u8; 32] = Sha256::digest([[0u8; 32], name].concat()).into();
            let twice: [u8; 32] = Sha256::digest([once, linux].concat()).into();
            twice
        };
        let got = pcr11(252, |name| (name == ".linux").then_some(linux)).unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_prediction_is_what_the_written_uki_measures() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = crate::disk::uki::tests::image_spec("console=ttyS0");
        let mut kernel = crate::disk::pe::tiny_image(crate::disk::pe::MACHINE_X86_64);
        kernel.extend_from_slice(b"Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)");
        crate::disk::uki::tests::write_artifacts(&mut image, dir.path(), &kernel, b"initrd bytes");
        let stub = sdmagic_stub(b"#### LoaderInfo: systemd-stub 257.9-1 ####");
        for sbat in [None, Some("node,1,Example,node,1.0,https://example.com/")] {
            let mut sources = crate::disk::uki::tests::stub_sources(&image, &stub);
            sources.sbat = sbat;
            let mut out = Vec::new();
            crate::disk::DiskFormat::write(&crate::disk::uki::Uki, &sources, &mut out).unwrap();
            let predicted = predict(&sources, &stub).unwrap().unwrap();
            assert_eq!(Some(predicted), pcr11_of_uki(&out, 257).unwrap(), "sbat {sbat:?}");
            // 252 measures neither .uname nor .sbat: another value, the same agreement.
            let old = sdmagic_stub(b"#### LoaderInfo: systemd-stub 252.38-1~deb12u1 ####");
            sources.stub = Some(&old);
            let mut out = Vec::new();
            crate::disk::DiskFormat::write(&crate::disk::uki::Uki, &sources, &mut out).unwrap();
            let older = predict(&sources, &old).unwrap().unwrap();
            assert_eq!(Some(older), pcr11_of_uki(&out, 252).unwrap());
            assert_ne!(older, predicted);
        }
    }

    /// A tiny stub whose one section is `.sdmagic` holding `magic`.
    fn sdmagic_stub(magic: &[u8]) -> Vec<u8> {
        let mut stub = crate::disk::pe::tiny_image(crate::disk::pe::MACHINE_X86_64);
        let table = 0x98 + 240;
        stub[table..table + 8].copy_from_slice(b".sdmagic");
        stub[0x400..0x400 + magic.len()].copy_from_slice(magic);
        stub[table + 8..table + 12].copy_from_slice(&u32::try_from(magic.len()).unwrap().to_le_bytes());
        stub
    }

    #[test]
    fn the_version_comes_from_sdmagic() {
        let mut stub = sdmagic_stub(b"#### LoaderInfo: systemd-stub 252.38-1~deb12u1 ####");
        let table = 0x98 + 240;
        assert_eq!(stub_version(&stub), Some(252));
        stub[table..table + 8].copy_from_slice(b".text\0\0\0");
        assert_eq!(stub_version(&stub), None);
    }
}
