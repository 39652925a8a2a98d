//! Image references: what users write in `image = "..."`, parsed and normalised.
//!
//! Two forms are accepted:
//!
//! * **Registry references**, normalised the way Docker does: `alpine` is
//!   `docker.io/library/alpine:latest`, `linuxkit/init:v1.0` is
//!   `docker.io/linuxkit/init:v1.0`, `host:5000/a/b:t` keeps its host, and a digest
//!   (`name@sha256:...` or `name:tag@sha256:...`) pins the content. The first path
//!   component is a registry host when it contains `.` or `:` or is `localhost`.
//! * **Local OCI image layouts**: `oci-layout:<dir>:<tag>` or `oci-layout:<dir>@sha256:...`
//!   (a tag defaults to `latest`). `<dir>` is a directory holding `oci-layout`, `index.json`
//!   and `blobs/`; a relative path is taken from Terraform's working directory.
//!
//! `Display` prints the canonical form, and parsing the canonical form gives the same value.

use std::fmt;
use std::str::FromStr;

pub use oci_spec::distribution::Reference as RegistryReference;
use thiserror::Error;

pub use super::digest::{Digest, InvalidDigest};

/// Prefix of a local OCI image layout reference.
pub const LAYOUT_PREFIX: &str = "oci-layout:";
/// Registry host Docker uses for references without one.
pub const DOCKER_HUB: &str = "docker.io";

/// Why a reference could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("the reference is empty")]
    Empty,
    #[error(transparent)]
    Digest(#[from] InvalidDigest),
    #[error("invalid tag {0:?}: a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")]
    Tag(String),
    #[error("invalid repository name {0:?}: use lowercase letters, digits and separators ('.', '_', '__', '-') between '/'-separated components")]
    Repository(String),
    #[error("invalid registry host {0:?}")]
    Registry(String),
    #[error("an oci-layout reference needs a directory: oci-layout:<dir>[:<tag>|@sha256:<hex>]")]
    LayoutPath,
}

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageReference {
    /// An image in a registry: oci-spec's reference (registry host with port when given,
    /// repository, tag, digest), built from parts this module has validated.
    Registry(RegistryReference),
    Layout(LayoutReference),
}

/// An image in a local OCI image layout directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LayoutReference {
    /// The layout directory, as written.
    pub path: String,
    /// The `org.opencontainers.image.ref.name` annotation to look up in `index.json`.
    pub tag: Option<String>,
    /// Digest pinning the content.
    pub digest: Option<Digest>,
}

impl ImageReference {
    /// The digest the reference pins, if any.
    pub fn digest(&self) -> Option<Digest> {
        match self {
            // Validated as sha256 when the reference was built.
            ImageReference::Registry(r) => r.digest().and_then(|d| super::digest::parse(d).ok()),
            ImageReference::Layout(l) => l.digest.clone(),
        }
    }

    /// The same image pinned to `digest`, without its tag: the shortest reference that
    /// always names exactly this content.
    pub fn by_digest(&self, digest: Digest) -> ImageReference {
        match self {
            ImageReference::Registry(r) => ImageReference::Registry(r.clone_with_digest(digest.to_string())),
            ImageReference::Layout(l) => {
                ImageReference::Layout(LayoutReference { path: l.path.clone(), tag: None, digest: Some(digest) })
            }
        }
    }

    /// The last component of the repository (`getty` of `linuxkit/getty:v1`), or of the
    /// layout directory's path.
    pub fn base_name(&self) -> String {
        let last = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
        match self {
            ImageReference::Registry(r) => last(r.repository()),
            ImageReference::Layout(l) => last(l.path.trim_end_matches('/')),
        }
    }

    /// The tag a layout image is looked up by in `index.json`, when the reference names one.
    pub fn layout_tag(&self) -> Option<&str> {
        match self {
            ImageReference::Registry(_) => None,
            ImageReference::Layout(l) => l.tag.as_deref(),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageReference::Registry(r) => write!(f, "{r}"),
            ImageReference::Layout(l) => {
                write!(f, "{LAYOUT_PREFIX}{}", l.path)?;
                if let Some(tag) = &l.tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(digest) = &l.digest {
                    write!(f, "@{digest}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some(rest) = s.strip_prefix(LAYOUT_PREFIX) {
            return parse_layout(rest).map(ImageReference::Layout);
        }
        parse_registry(s).map(ImageReference::Registry)
    }
}

/// A reference pinned by digest, in its canonical text (its identity: equality, order and
/// hashing are the text's). This is how specs name images, so assembly fetches exactly
/// the content the plan saw. Serialised as the canonical text.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PinnedImage {
    text: String,
    reference: ImageReference,
    digest: Digest,
}

impl PinnedImage {
    /// `reference` pinned to `digest`, without its tag: the shortest reference that always
    /// names exactly this content.
    pub fn new(reference: &ImageReference, digest: Digest) -> PinnedImage {
        let reference = reference.by_digest(digest.clone());
        PinnedImage { text: reference.to_string(), reference, digest }
    }

    pub fn reference(&self) -> &ImageReference {
        &self.reference
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Why a text is not a pinned image.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PinnedImageError {
    #[error("image {0:?}: {1}")]
    Reference(String, ReferenceError),
    #[error("image {0:?} is not pinned by digest")]
    NotPinned(String),
}

impl FromStr for PinnedImage {
    type Err = PinnedImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let reference: ImageReference = s.parse().map_err(|e| PinnedImageError::Reference(s.to_string(), e))?;
        let digest = reference.digest().ok_or_else(|| PinnedImageError::NotPinned(s.to_string()))?;
        Ok(PinnedImage { text: reference.to_string(), reference, digest })
    }
}

impl TryFrom<String> for PinnedImage {
    type Error = PinnedImageError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PinnedImage> for String {
    fn from(image: PinnedImage) -> String {
        image.text
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for PinnedImage {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PinnedImage {}

impl std::hash::Hash for PinnedImage {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for PinnedImage {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PinnedImage {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

/// Splits `name[:tag][@digest]`; the tag colon is the last one after the last `/`.
fn split_tag_and_digest(s: &str) -> Result<(&str, Option<String>, Option<Digest>), ReferenceError> {
    let (rest, digest) = match s.rsplit_once('@') {
        Some((rest, digest)) => (rest, Some(super::digest::parse(digest)?)),
        None => (s, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let tag = &rest[last_slash + i + 1..];
            validate_tag(tag)?;
            (&rest[..last_slash + i], Some(tag.to_string()))
        }
        None => (rest, None),
    };
    Ok((name, tag, digest))
}

fn parse_registry(s: &str) -> Result<RegistryReference, ReferenceError> {
    let (name, tag, digest) = split_tag_and_digest(s)?;
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        registry
    };
    validate_registry(&registry)?;
    let repository =
        if registry == DOCKER_HUB && !repository.contains('/') { format!("library/{repository}") } else { repository };
    validate_repository(&repository)?;
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => {
            RegistryReference::with_tag_and_digest(registry, repository, tag, digest.to_string())
        }
        (None, Some(digest)) => RegistryReference::with_digest(registry, repository, digest.to_string()),
        (tag, None) => RegistryReference::with_tag(registry, repository, tag.unwrap_or_else(|| "latest".to_string())),
    })
}

fn parse_layout(s: &str) -> Result<LayoutReference, ReferenceError> {
    let (path, digest) = match s.rsplit_once('@') {
        Some((path, digest)) => (path, Some(super::digest::parse(digest)?)),
        None => (s, None),
    };
    // A tag follows the last ':' that comes after the last '/'.
    let last_slash = path.rfind('/').map_or(0, |i| i + 1);
    let (path, mut tag) = match path[last_slash..].rfind(':') {
        Some(i) => {
            let tag = &path[last_slash + i + 1..];
            validate_tag(tag)?;
            (&path[..last_slash + i], Some(tag.to_string()))
        }
        None => (path, None),
    };
    if path.is_empty() {
        return Err(ReferenceError::LayoutPath);
    }
    if tag.is_none() && digest.is_none() {
        tag = Some("latest".to_string());
    }
    Ok(LayoutReference { path: path.to_string(), tag, digest })
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::Tag(tag.to_string()))
    }
}

fn validate_registry(registry: &str) -> Result<(), ReferenceError> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || registry.starts_with('[') => (host, Some(port)),
        _ => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(ReferenceError::Registry(registry.to_string()))
    }
}

/// Each component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn validate_repository(repository: &str) -> Result<(), ReferenceError> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_lowercase() || b.is_ascii_digit() {
                i += 1;
                continue;
            }
            // A separator run: '.', '_', '__' or one or more '-'.
            let start = i;
            while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
                i += 1;
            }
            let sep = &c[start..i];
            let valid = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
            if !valid || sep.is_empty() {
                return false;
            }
        }
        true
    };
    if repository.len() <= 255 && repository.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(ReferenceError::Repository(repository.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "8b0f0ea7fbdcbc3bd8e0c1e1d3a2b1f1e1d2c3b4a5968778695a4b3c2d1e0f00";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.19", "docker.io/library/alpine:3.19"),
            ("linuxkit/init:v1.0", "docker.io/linuxkit/init:v1.0"),
            ("docker.io/alpine", "docker.io/library/alpine:latest"),
            ("index.docker.io/linuxkit/runc", "docker.io/linuxkit/runc:latest"),
            ("host:5000/a/b:t", "host:5000/a/b:t"),
            ("localhost/x", "localhost/x:latest"),
            ("127.0.0.1:5000/x/y-z__w.v", "127.0.0.1:5000/x/y-z__w.v:latest"),
            ("ghcr.io/o/r/deep/path:1.2-rc_3", "ghcr.io/o/r/deep/path:1.2-rc_3"),
        ];
        for (input, canonical) in cases {
            let parsed: ImageReference = input.parse().unwrap();
            assert_eq!(parsed.to_string(), canonical, "{input}");
            assert_eq!(canonical.parse::<ImageReference>().unwrap(), parsed, "{input}");
        }
    }

    #[test]
    fn digests_pin_with_or_without_tag() {
        let by_digest: ImageReference = format!("alpine@sha256:{HEX}").parse().unwrap();
        assert_eq!(by_digest.to_string(), format!("docker.io/library/alpine@sha256:{HEX}"));
        let both: ImageReference = format!("host:5000/a:t@sha256:{HEX}").parse().unwrap();
        let ImageReference::Registry(r) = &both else { panic!("registry reference expected") };
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(both.digest().unwrap().digest(), HEX);
        assert_eq!(both.to_string().parse::<ImageReference>().unwrap(), both);
        assert_eq!(both.by_digest(both.digest().unwrap()).to_string(), format!("host:5000/a@sha256:{HEX}"));
    }

    #[test]
    fn layouts() {
        let cases = [
            ("oci-layout:./dir:v1", "./dir", Some("v1"), false),
            ("oci-layout:dir", "dir", Some("latest"), false),
            ("oci-layout:/abs/with:colon/dir:t", "/abs/with:colon/dir", Some("t"), false),
            (&format!("oci-layout:../d@sha256:{HEX}"), "../d", None, true),
        ];
        for (input, path, tag, has_digest) in cases {
            let ImageReference::Layout(l) = input.parse().unwrap() else { panic!("layout expected for {input}") };
            assert_eq!(l.path, path, "{input}");
            assert_eq!(l.tag.as_deref(), tag, "{input}");
            assert_eq!(l.digest.is_some(), has_digest, "{input}");
            let back = ImageReference::Layout(l.clone()).to_string();
            assert_eq!(back.parse::<ImageReference>().unwrap(), ImageReference::Layout(l));
        }
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            "",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "a//b",
            "a/b/",
            "alpine@sha256:abc",
            "alpine@md5:0123",
            "foo bar",
            "host:port/x",
            "oci-layout:",
            "oci-layout::tag",
            "a..b",
            "-a",
        ];
        for input in cases {
            assert!(input.parse::<ImageReference>().is_err(), "{input:?} parsed");
        }
    }

    #[test]
    fn pinned_images_are_canonical_and_need_a_digest() {
        let image: PinnedImage = format!("alpine:3@sha256:{HEX}").parse().unwrap();
        assert_eq!(image.as_str(), format!("docker.io/library/alpine:3@sha256:{HEX}"));
        assert_eq!(image.digest().digest(), HEX);
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(serde_json::from_str::<PinnedImage>(&json).unwrap(), image);
        assert_eq!("alpine:3".parse::<PinnedImage>(), Err(PinnedImageError::NotPinned("alpine:3".into())));
        assert!(serde_json::from_str::<PinnedImage>(r#""Alpine@sha256:00""#).is_err());
        let by_tag: ImageReference = "oci-layout:./d:v1".parse().unwrap();
        let pinned = PinnedImage::new(&by_tag, image.digest().clone());
        assert_eq!(pinned.as_str(), format!("oci-layout:./d@sha256:{HEX}"));
        let tagged_and_pinned: ImageReference = format!("alpine:3@sha256:{HEX}").parse().unwrap();
        let pinned = PinnedImage::new(&tagged_and_pinned, image.digest().clone());
        assert_eq!(pinned.as_str(), format!("docker.io/library/alpine@sha256:{HEX}"), "the tag is dropped");
    }

    #[test]
    fn base_names_and_layout_tags() {
        let parse = |text: &str| text.parse::<ImageReference>().unwrap();
        assert_eq!(
            (parse("linuxkit/getty:v1").base_name(), parse("linuxkit/getty:v1").layout_tag()),
            ("getty".into(), None)
        );
        let layout = parse("oci-layout:./fixtures/sshd/:v1.2");
        assert_eq!((layout.base_name(), layout.layout_tag()), ("sshd".into(), Some("v1.2")));
        assert_eq!(parse(&format!("oci-layout:./fixtures/sshd@sha256:{HEX}")).layout_tag(), None);
    }
}
