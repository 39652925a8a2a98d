//! The default name of a package's container: what LinuxKit derives from the image
//! reference (the repository's last component), and for an OCI layout the name its tag
//! gives.

use super::is_valid_name;
use crate::oci::reference::ImageReference;

/// The default container name of a package of `image`: the last component of the
/// repository, as LinuxKit derives it. For an OCI layout, the name its tag gives (the
/// repository's last component of a tag such as `linuxkit/sshd:v1`, or a bare tag such as
/// `sshd` that is not a version), else the layout directory's.
pub fn default_name(image: &ImageReference) -> String {
    image.layout_tag().and_then(name_from_tag).unwrap_or_else(|| image.base_name())
}

/// The container name an OCI layout's tag gives, if any.
fn name_from_tag(tag: &str) -> Option<String> {
    let name = if tag.contains(['/', ':']) {
        // `[registry/]repository[:tag]`: the repository's last component.
        let repository = match (tag.rfind(':'), tag.rfind('/')) {
            (Some(colon), slash) if slash.is_none_or(|slash| colon > slash) => &tag[..colon],
            _ => tag,
        };
        repository.rsplit('/').next().unwrap_or(repository)
    } else {
        let version = tag == "latest"
            || tag.starts_with(|c: char| c.is_ascii_digit())
            || (tag.starts_with('v') && tag[1..].starts_with(|c: char| c.is_ascii_digit()));
        if version {
            return None;
        }
        tag
    };
    is_valid_name(name).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        let digest = "0123456789abcdef".repeat(4);
        for (input, short) in [
            ("linuxkit/getty:v1", "getty"),
            ("alpine", "alpine"),
            // A layout: the name its tag gives, else the directory's.
            ("oci-layout:./images:sshd", "sshd"),
            ("oci-layout:./images:docker.io/linuxkit/sshd:v1.0", "sshd"),
            ("oci-layout:./images:localhost:5000/sshd", "sshd"),
            ("oci-layout:./fixtures/sshd/:v1.2", "sshd"),
            ("oci-layout:./fixtures/sshd:latest", "sshd"),
            ("oci-layout:./fixtures/sshd:3.19", "sshd"),
            (&format!("oci-layout:./fixtures/sshd@sha256:{digest}"), "sshd"),
        ] {
            assert_eq!(default_name(&input.parse::<ImageReference>().unwrap()), short, "{input}");
        }
    }
}
