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

use thiserror::Error;

/// Prefix of a local OCI image layout reference.
pub const LAYOUT_PREFIX: &str = "oci-layout:";
/// Registry host Docker uses for references without one.
pub const DOCKER_HUB: &str = "docker.io";

/// A content digest. Only `sha256` is supported: it is what every registry and layout
/// uses, and the cache is keyed on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The 64 lowercase hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest { hex: hex::encode(sha2::Sha256::digest(bytes)) }
    }

    pub(crate) fn from_sha256(hash: &[u8]) -> Digest {
        Digest { hex: hex::encode(hash) }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(ReferenceError::Digest(s.to_string()));
        };
        if algorithm != "sha256" || hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::Digest(s.to_string()));
        }
        Ok(Digest { hex: hex.to_string() })
    }
}

/// Why a reference could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("the reference is empty")]
    Empty,
    #[error("invalid digest {0:?}: expected sha256: followed by 64 lowercase hex digits")]
    Digest(String),
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
    Registry(RegistryReference),
    Layout(LayoutReference),
}

/// An image in a registry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistryReference {
    /// Registry host, with port when given (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/alpine`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Digest pinning the content.
    pub digest: Option<Digest>,
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
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            ImageReference::Registry(r) => r.digest.as_ref(),
            ImageReference::Layout(l) => l.digest.as_ref(),
        }
    }

    /// The same image pinned to `digest`, without its tag: the shortest reference that
    /// always names exactly this content.
    pub fn by_digest(&self, digest: Digest) -> ImageReference {
        let mut pinned = self.clone();
        match &mut pinned {
            ImageReference::Registry(r) => (r.tag, r.digest) = (None, Some(digest)),
            ImageReference::Layout(l) => (l.tag, l.digest) = (None, Some(digest)),
        }
        pinned
    }

    /// The last component of the repository (or of the layout directory): the default
    /// container name, as LinuxKit derives it.
    pub fn short_name(&self) -> String {
        let path = match self {
            ImageReference::Registry(r) => r.repository.as_str(),
            ImageReference::Layout(l) => l.path.trim_end_matches('/'),
        };
        path.rsplit('/').next().unwrap_or(path).to_string()
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tag, digest) = match self {
            ImageReference::Registry(r) => {
                write!(f, "{}/{}", r.registry, r.repository)?;
                (&r.tag, &r.digest)
            }
            ImageReference::Layout(l) => {
                write!(f, "{LAYOUT_PREFIX}{}", l.path)?;
                (&l.tag, &l.digest)
            }
        };
        if let Some(tag) = tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
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

/// Splits `name[:tag][@digest]`; the tag colon is the last one after the last `/`.
fn split_tag_and_digest(s: &str) -> Result<(&str, Option<String>, Option<Digest>), ReferenceError> {
    let (rest, digest) = match s.rsplit_once('@') {
        Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
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
    let (name, mut tag, digest) = split_tag_and_digest(s)?;
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
    if tag.is_none() && digest.is_none() {
        tag = Some("latest".to_string());
    }
    Ok(RegistryReference { registry, repository, tag, digest })
}

fn parse_layout(s: &str) -> Result<LayoutReference, ReferenceError> {
    let (path, digest) = match s.rsplit_once('@') {
        Some((path, digest)) => (path, Some(digest.parse::<Digest>()?)),
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
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.digest.as_ref().unwrap().hex(), HEX);
        assert_eq!(both.to_string().parse::<ImageReference>().unwrap(), both);
        assert_eq!(both.by_digest(r.digest.clone().unwrap()).to_string(), format!("host:5000/a@sha256:{HEX}"));
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
    fn short_names() {
        for (input, short) in
            [("linuxkit/getty:v1", "getty"), ("alpine", "alpine"), ("oci-layout:./fixtures/sshd/:x", "sshd")]
        {
            assert_eq!(input.parse::<ImageReference>().unwrap().short_name(), short);
        }
    }
}
