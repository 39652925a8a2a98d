//! The settings of a boot file, checked: each alone (a known format, a parsable image and
//! stub spec, a URL, a size resin can make, a `uname` word, SBAT lines, a certificate and
//! its one key) and against each other (what the format takes and needs, the image's
//! command line for the format, the stub's platform for the image's). Every problem is a
//! [`FieldError`] at its setting; a setting not known yet (another resource computes it)
//! is checked once it is.

use std::path::PathBuf;

use super::signing::{Fault, KeySource, Signer, SigningError};
use super::DiskFormat;
use crate::assemble::{EfiStubSpec, ImageSpec};
use crate::field::FieldError;

/// A setting as the configuration gives it: `None` while unknown, `Some(None)` when unset.
pub type Setting<T> = Option<Option<T>>;

/// The settings of a boot file as configured.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub format: Setting<String>,
    pub image: Setting<String>,
    pub stub: Setting<String>,
    pub base_url: Setting<String>,
    pub size_mb: Setting<i64>,
    pub uname: Setting<String>,
    pub sbat: Setting<String>,
    pub signing_certificate: Setting<String>,
    pub signing_key: Setting<String>,
    pub signing_key_file: Setting<String>,
    pub signing_command: Setting<Vec<String>>,
}

/// The largest `size_mb`: 1 TiB.
pub const MAX_SIZE_MB: u64 = 1 << 20;

/// The parsed settings; `None` where a value is still unknown.
pub struct Inputs {
    pub format: Option<&'static dyn DiskFormat>,
    pub image: Option<ImageSpec>,
    pub stub: Setting<EfiStubSpec>,
    pub base_url: Setting<String>,
    pub size_mb: Setting<u64>,
    pub uname: Setting<String>,
    pub sbat: Setting<String>,
    pub signing: Setting<Signing>,
}

/// The inputs of a boot file, all known.
pub struct Complete<'a> {
    pub format: &'static dyn DiskFormat,
    pub image: &'a ImageSpec,
    pub stub: Option<&'a EfiStubSpec>,
    pub base_url: Option<&'a str>,
    pub size_mb: Option<u64>,
    pub uname: Option<&'a str>,
    pub sbat: Option<&'a str>,
    pub signing: Option<&'a Signing>,
}

/// How a UKI is signed: the certificate, its digest (in the content hash) and where the
/// key is. The key's own bytes are never kept here.
#[derive(Clone, Debug)]
pub struct Signing {
    pub certificate: String,
    pub certificate_digest: crate::oci::digest::Digest,
    pub key: SigningKey,
    /// About the certificate (expired, no code signing), for the plan.
    pub warnings: Vec<String>,
}

/// Where the signing key is.
#[derive(Clone)]
pub enum SigningKey {
    /// The `signing_key` value (sensitive).
    Pem(String),
    File(PathBuf),
    Command(Vec<String>),
}

/// Never shows the key itself.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningKey::Pem(_) => f.write_str("Pem(<sensitive>)"),
            SigningKey::File(path) => f.debug_tuple("File").field(path).finish(),
            SigningKey::Command(argv) => f.debug_tuple("Command").field(argv).finish(),
        }
    }
}

impl SigningKey {
    /// The setting it comes from.
    pub fn attribute(&self) -> &'static str {
        match self {
            SigningKey::Pem(_) => "signing_key",
            SigningKey::File(_) => "signing_key_file",
            SigningKey::Command(_) => "signing_command",
        }
    }
}

impl Signing {
    /// The signer: the certificate parsed, a key read and checked to be the certificate's.
    pub fn signer(&self) -> Result<Signer, SigningError> {
        let key = match &self.key {
            SigningKey::Pem(pem) => KeySource::Pem(pem),
            SigningKey::File(path) => KeySource::File(path),
            SigningKey::Command(argv) => KeySource::Command(argv),
        };
        Signer::new(&self.certificate, key)
    }
}

/// Collects the problems of one set of settings.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn fail(&mut self, attribute: &'static str, summary: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError::new(attribute, detail).titled(summary));
    }
}

impl Inputs {
    /// Parses and checks what is known of `settings`: every problem, at its setting.
    pub fn of(settings: &Settings) -> Result<Inputs, Vec<FieldError>> {
        let mut problems = Problems::default();
        let format = settings.format.clone().flatten().and_then(|name| match super::format(&name) {
            Some(format) => Some(format),
            None => {
                let names = super::format_names().join(", ");
                problems.fail("format", "Unknown format", format!("{name:?} is not a format: use one of {names}"));
                None
            }
        });
        let image = checked(&settings.image, &mut problems, "image", |text| {
            ImageSpec::parse(text).map_err(|e| format!("{e:#}"))
        })
        .flatten();
        let stub = checked(&settings.stub, &mut problems, "stub", |text| {
            EfiStubSpec::parse(text).map_err(|e| format!("{e:#}"))
        });
        let base_url = checked_text(&settings.base_url, &mut problems, "base_url", super::ipxe::check_base_url);
        let uname = checked_text(&settings.uname, &mut problems, "uname", super::uname::check);
        let sbat = checked_text(&settings.sbat, &mut problems, "sbat", super::sbat::check);
        let size_mb = checked(&settings.size_mb, &mut problems, "size_mb", |size| size_mb(*size));
        let signing = signing_of(settings, &mut problems);
        let inputs = Inputs { format, image, stub, base_url, size_mb, uname, sbat, signing };
        inputs.check_together(settings, &mut problems);
        match problems.0.is_empty() {
            true => Ok(inputs),
            false => Err(problems.0),
        }
    }

    /// Checks the settings against each other: what the format takes and needs, the
    /// command line for the format, the stub's platform for the image's.
    fn check_together(&self, settings: &Settings, problems: &mut Problems) {
        let Inputs { format, image, stub, base_url, size_mb, uname, sbat, .. } = self;
        if let Some(format) = *format {
            let name = format.name();
            if let (Some(Some(_)), false) = (size_mb, format.sized()) {
                problems.fail(
                    "size_mb",
                    "Unused size_mb",
                    format!("format {name:?} is not a disk: it takes no size_mb"),
                );
            }
            for (attribute, value) in [
                ("uname", matches!(uname, Some(Some(_)))),
                ("sbat", matches!(sbat, Some(Some(_)))),
                ("signing_certificate", settings.signing_certificate != Some(None)),
            ] {
                if value && !format.needs_stub() {
                    let detail = format!("format {name:?} holds no UKI: it takes no {attribute}");
                    problems.fail(attribute, format!("Unused {attribute}"), detail);
                }
            }
            match stub {
                Some(None) if format.needs_stub() => problems.fail(
                    "stub",
                    "Missing stub",
                    format!("format {name:?} boots through an EFI stub: set stub = resin_efi_stub.<name>.spec"),
                ),
                Some(Some(_)) if !format.needs_stub() => {
                    problems.fail("stub", "Unused stub", format!("format {name:?} takes no stub"))
                }
                _ => {}
            }
            match base_url {
                Some(None) if format.needs_base_url() => problems.fail(
                    "base_url",
                    "Missing base_url",
                    format!(
                        "format {name:?} boots from the network: set base_url to where the image's files are served"
                    ),
                ),
                Some(Some(_)) if !format.needs_base_url() => {
                    problems.fail("base_url", "Unused base_url", format!("format {name:?} takes no base_url"))
                }
                _ => {}
            }
        }
        if let (Some(image), Some(format)) = (image, *format) {
            let problem =
                crate::assemble::check_cmdline(&image.cmdline).or_else(|| format.check_cmdline(&image.cmdline));
            if let Some(problem) = problem {
                problems.fail(
                    "image",
                    "Command line unfit for the format",
                    format!(
                        "the command line of resin_image {} (its resin_kernel's cmdline) cannot go in format {:?}: {problem}",
                        image.name,
                        format.name()
                    ),
                );
            }
        }
        if let (Some(image), Some(Some(stub))) = (image, stub) {
            if image.platform != stub.platform {
                problems.fail(
                    "stub",
                    "Stub of another platform",
                    format!("the stub is for {}, resin_image {} for {}", stub.platform, image.name, image.platform),
                );
            }
        }
    }

    /// Everything, when everything is known.
    pub fn complete(&self) -> Option<Complete<'_>> {
        Some(Complete {
            format: self.format?,
            image: self.image.as_ref()?,
            stub: self.stub.as_ref()?.as_ref(),
            base_url: self.base_url.as_ref()?.as_deref(),
            size_mb: self.size_mb?,
            uname: self.uname.as_ref()?.as_deref(),
            sbat: self.sbat.as_ref()?.as_deref(),
            signing: self.signing.as_ref()?.as_ref(),
        })
    }
}

/// A setting parsed by `parse`; a problem is reported at `attribute` (`Invalid <attribute>`).
fn checked<T, U>(
    setting: &Setting<T>,
    problems: &mut Problems,
    attribute: &'static str,
    parse: impl FnOnce(&T) -> Result<U, String>,
) -> Setting<U> {
    match setting.as_ref()? {
        None => Some(None),
        Some(value) => match parse(value) {
            Ok(parsed) => Some(Some(parsed)),
            Err(problem) => {
                problems.0.push(FieldError::new(attribute, problem));
                None
            }
        },
    }
}

/// A text setting checked by `check` (`Some(problem)` when bad).
fn checked_text(
    setting: &Setting<String>,
    problems: &mut Problems,
    attribute: &'static str,
    check: fn(&str) -> Option<String>,
) -> Setting<String> {
    checked(setting, problems, attribute, |text| check(text).map_or(Ok(text.clone()), Err))
}

/// `size_mb` checked: a size resin can make.
fn size_mb(size: i64) -> Result<u64, String> {
    let sizes = super::raw_efi::min_size_mb()..=MAX_SIZE_MB;
    u64::try_from(size).ok().filter(|size| sizes.contains(size)).ok_or_else(|| {
        format!(
            "{size} is not a disk size resin can make: from {} MiB (an EFI system partition of {} MiB and the partition tables) to {} MiB (1 TiB)",
            sizes.start(),
            super::esp::MIN_SIZE >> 20,
            sizes.end()
        )
    })
}

/// The signing settings: `Some(None)` when nothing is signed, `None` while one is unknown
/// or when one is wrong (a problem, titled "Cannot sign").
fn signing_of(settings: &Settings, problems: &mut Problems) -> Setting<Signing> {
    let keys = [
        ("signing_key", settings.signing_key.clone().map(|key| key.map(SigningKey::Pem))),
        ("signing_key_file", settings.signing_key_file.clone().map(|path| path.map(|p| SigningKey::File(p.into())))),
        ("signing_command", settings.signing_command.clone().map(|argv| argv.map(SigningKey::Command))),
    ];
    let certificate = settings.signing_certificate.as_ref()?;
    let mut given = Vec::new();
    for (name, key) in keys {
        if let Some(key) = key? {
            given.push((name, key));
        }
    }
    let mut given = given.into_iter();
    let (first, second) = (given.next(), given.next());
    let mut fail = |attribute, detail: String| problems.fail(attribute, "Cannot sign", detail);
    let Some(certificate) = certificate else {
        if let Some((name, _)) = first {
            fail(name, "set signing_certificate to the certificate of this key, or leave the key out".into());
            return None;
        }
        return Some(None);
    };
    let key = match (first, second) {
        (Some((_, key)), None) => key,
        (None, _) => {
            fail("signing_certificate", "set one of signing_key, signing_key_file and signing_command: the key that signs with this certificate".into());
            return None;
        }
        (Some((one, _)), Some((other, _))) => {
            fail(other, format!("set one of signing_key, signing_key_file and signing_command, not {one} and {other}"));
            return None;
        }
    };
    let mut signing = Signing {
        certificate: certificate.clone(),
        certificate_digest: crate::oci::digest::sha256(b""),
        key,
        warnings: Vec::new(),
    };
    match signing.signer() {
        Ok(signer) => {
            signing.certificate_digest = crate::oci::digest::sha256(&signer.certificate_der().unwrap_or_default());
            signing.warnings = signer.warnings(std::time::SystemTime::now());
            Some(Some(signing))
        }
        Err(SigningError { fault, error }) => {
            let at = match fault {
                Fault::Certificate => "signing_certificate",
                Fault::Key => signing.key.attribute(),
            };
            fail(at, format!("{error:#}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::uki::tests::image_spec;

    fn stub_spec(platform: &str) -> String {
        let image = format!("registry.example/stub@sha256:{}", "ab".repeat(32));
        serde_json::to_string(&EfiStubSpec {
            spec_version: crate::assemble::SPEC_VERSION,
            image: image.parse().unwrap(),
            index: None,
            platform: platform.parse().unwrap(),
            path: "/usr/lib/systemd/boot/efi/linuxx64.efi.stub".into(),
        })
        .unwrap()
    }

    /// A disk of the x86_64 test image in `format`.
    fn settings(format: &str) -> Settings {
        let unset = Some(None);
        Settings {
            format: Some(Some(format.into())),
            image: Some(Some(serde_json::to_string(&image_spec("console=ttyS0")).unwrap())),
            stub: unset.clone(),
            base_url: unset.clone(),
            size_mb: Some(None),
            uname: unset.clone(),
            sbat: unset.clone(),
            signing_certificate: unset.clone(),
            signing_key: unset.clone(),
            signing_key_file: unset.clone(),
            signing_command: Some(None),
        }
    }

    fn with_stub(format: &str) -> Settings {
        Settings { stub: Some(Some(stub_spec("linux/amd64"))), ..settings(format) }
    }

    /// The problems of `settings`, as `attribute: detail`.
    fn problems(settings: &Settings) -> Vec<String> {
        Inputs::of(settings).err().unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    fn text(value: &str) -> Setting<String> {
        Some(Some(value.into()))
    }

    #[test]
    fn every_bad_setting_is_a_problem_at_its_attribute() {
        let cases: Vec<(Settings, &str)> = vec![
            (settings("vhd"), "format: \"vhd\" is not a format: use one of uki, raw-efi, iso-efi, gcp, ipxe"),
            (Settings { size_mb: Some(Some(100)), ..with_stub("uki") }, "size_mb: format \"uki\" is not a disk: it takes no size_mb"),
            (Settings { size_mb: Some(Some(0)), ..with_stub("raw-efi") }, "size_mb: 0 is not a disk size resin can make: from 66 MiB"),
            // Smaller than the smallest EFI system partition, larger than FAT32 is made here.
            (Settings { size_mb: Some(Some(65)), ..with_stub("raw-efi") }, "size_mb: 65 is not a disk size resin can make"),
            (Settings { size_mb: Some(Some(-1)), ..with_stub("raw-efi") }, "size_mb: -1 is not a disk size"),
            (Settings { size_mb: Some(Some(1_048_577)), ..with_stub("gcp") }, "size_mb: 1048577 is not a disk size resin can make: from 66 MiB (an EFI system partition of 64 MiB and the partition tables) to 1048576 MiB (1 TiB)"),
            (settings("uki"), "stub: format \"uki\" boots through an EFI stub: set stub"),
            (settings("ipxe"), "base_url: format \"ipxe\" boots from the network: set base_url"),
            (Settings { base_url: text("boot.example/images"), ..settings("ipxe") }, "base_url: \"boot.example/images\" is not a URL"),
            (Settings { base_url: text("http://x/"), ..with_stub("ipxe") }, "stub: format \"ipxe\" takes no stub"),
            (Settings { base_url: text("http://x/"), ..with_stub("uki") }, "base_url: format \"uki\" takes no base_url"),
            (Settings { stub: Some(Some(stub_spec("linux/arm64"))), ..settings("uki") }, "stub: the stub is for linux/arm64, resin_image node for linux/amd64"),
            (Settings { stub: text("{}"), ..settings("uki") }, "stub: resin_efi_stub spec version None is not 1"),
            (Settings { image: text("[]"), ..with_stub("uki") }, "image: resin_image spec version None is not 1"),
            (Settings { sbat: text("boot,1,Example"), ..with_stub("uki") }, "sbat: \"boot,1,Example\" has 3 fields; an SBAT line has six"),
            (Settings { uname: text("6.1 custom"), ..with_stub("uki") }, "uname: \"6.1 custom\""),
            (Settings { base_url: text("http://x/"), uname: text("6.1"), ..settings("ipxe") }, "uname: format \"ipxe\" holds no UKI: it takes no uname"),
            (Settings { base_url: text("http://x/"), sbat: text("a,1,b,c,d,e"), ..settings("ipxe") }, "sbat: format \"ipxe\" holds no UKI"),
            (
                Settings { base_url: text("http://x/"), signing_certificate: text("x"), signing_key: text("k"), ..settings("ipxe") },
                "signing_certificate: format \"ipxe\" holds no UKI: it takes no signing_certificate",
            ),
            (Settings { signing_key: text("k"), ..with_stub("uki") }, "signing_key: set signing_certificate to the certificate of this key"),
            (Settings { signing_certificate: text("x"), ..with_stub("uki") }, "signing_certificate: set one of signing_key, signing_key_file and signing_command"),
            (
                Settings { signing_certificate: text("x"), signing_key: text("k"), signing_key_file: text("/k"), ..with_stub("uki") },
                "signing_key_file: set one of signing_key, signing_key_file and signing_command, not signing_key and signing_key_file",
            ),
        ];
        for (settings, expected) in cases {
            let problems = problems(&settings);
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected}: {problems:?}");
        }
    }

    #[test]
    fn each_problem_has_a_title_for_its_kind() {
        let titles = |settings: &Settings| -> Vec<String> {
            Inputs::of(settings).err().unwrap_or_default().iter().map(FieldError::summary).collect()
        };
        assert_eq!(titles(&settings("vhd")), ["Unknown format"]);
        assert_eq!(titles(&settings("uki")), ["Missing stub"]);
        assert_eq!(titles(&Settings { size_mb: Some(Some(100)), ..with_stub("uki") }), ["Unused size_mb"]);
        assert_eq!(titles(&Settings { size_mb: Some(Some(1)), ..with_stub("raw-efi") }), ["Invalid size_mb"]);
        assert_eq!(titles(&Settings { signing_key: text("k"), ..with_stub("uki") }), ["Cannot sign"]);
    }

    #[test]
    fn a_command_line_the_format_cannot_carry_is_a_problem_of_the_image() {
        let image = serde_json::to_string(&image_spec("console=ttyS0 initrd=x\n")).unwrap();
        let problems = problems(&Settings { image: text(&image), ..with_stub("uki") });
        assert!(problems.iter().any(|p| p.starts_with("image: the command line of resin_image node")), "{problems:?}");
    }

    #[test]
    fn good_settings_are_complete_and_unknown_ones_are_not_problems() {
        let inputs = Inputs::of(&with_stub("raw-efi")).unwrap();
        let complete = inputs.complete().expect("all known");
        assert_eq!((complete.format.name(), complete.size_mb, complete.stub.is_some()), ("raw-efi", None, true));
        let ipxe = Settings { base_url: text("http://boot.example/images"), ..settings("ipxe") };
        assert_eq!(Inputs::of(&ipxe).unwrap().complete().unwrap().base_url, Some("http://boot.example/images"));
        // An image or stub another resource has not computed yet: checked once known.
        let unknown = Settings { image: None, stub: None, signing_certificate: None, ..settings("uki") };
        let inputs = Inputs::of(&unknown).unwrap();
        assert!(inputs.complete().is_none());
        assert!(inputs.signing.is_none());
    }
}
