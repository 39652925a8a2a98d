//! Target platforms (`linux/amd64`, `linux/arm64/v8`) and choosing one manifest of an
//! OCI index or Docker manifest list.
//!
//! The default platform is fixed (`linux/amd64`), never the host's, so that a plan does
//! not depend on the machine that runs it.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

/// The platform used when neither the provider nor the resource sets one.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

/// `os/architecture[/variant]`, with architecture aliases normalised (`x86_64` is
/// `amd64`, `aarch64` is `arm64`).
/// Serialised as that text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Whether an index entry with these fields runs on this platform. A requested variant
    /// must match; without one any variant does. `arm64` without a variant is `arm64/v8`.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != normalise_architecture(architecture) {
            return false;
        }
        let Some(wanted) = &self.variant else {
            return true;
        };
        let implied = |v: Option<&str>| match (self.architecture.as_str(), v) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        implied(variant).as_deref() == Some(wanted.as_str())
    }
}

fn normalise_architecture(architecture: &str) -> &str {
    match architecture {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid_part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| valid_part(p)) {
            bail!("invalid platform {s:?}: expected os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8");
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: normalise_architecture(&parts[1].to_ascii_lowercase()).to_string(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl TryFrom<String> for Platform {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Platform> for String {
    fn from(platform: Platform) -> String {
        platform.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        for (input, canonical) in [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64/v8"),
            ("Linux/ARM/v7", "linux/arm/v7"),
        ] {
            assert_eq!(input.parse::<Platform>().unwrap().to_string(), canonical);
        }
        for bad in ["linux", "linux/", "/amd64", "linux/amd64/v1/x", "linux/am d64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_index_entries() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        let cases = [
            ("linux/amd64", ("linux", "amd64", None), true),
            ("linux/amd64", ("linux", "arm64", None), false),
            ("linux/amd64", ("windows", "amd64", None), false),
            ("linux/arm64", ("linux", "arm64", Some("v8")), true),
            ("linux/arm64/v8", ("linux", "arm64", None), true),
            ("linux/arm64/v8", ("linux", "arm64", Some("v8")), true),
            ("linux/arm/v7", ("linux", "arm", Some("v6")), false),
            ("linux/arm", ("linux", "arm", Some("v6")), true),
        ];
        for (wanted, (os, arch, variant), expected) in cases {
            assert_eq!(p(wanted).matches(os, arch, variant), expected, "{wanted} vs {os}/{arch}/{variant:?}");
        }
    }
}
