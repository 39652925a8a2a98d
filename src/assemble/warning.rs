//! Warnings of an assembly: what the image will not have at boot although a layer asked
//! for it. Built where the loss is found (the union, the kernel's files, the newc writer),
//! kept with cached segments as (summary, detail) pairs, and shown as Terraform warnings;
//! and the shared segment cache's failures, which cost time, never bytes.

/// Something the image will not have at boot although a layer asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub summary: String,
    pub detail: String,
}

impl Warning {
    pub(super) fn dropped_xattrs(detail: String) -> Warning {
        Warning { summary: "Extended attributes dropped".into(), detail }
    }

    pub(super) fn uncreatable(name: &[u8], reason: &str) -> Warning {
        Warning {
            summary: "Names the kernel cannot create".into(),
            detail: format!(
                "/{}: {reason}; the kernel cannot create it when it unpacks the initrd, so it is missing at boot",
                String::from_utf8_lossy(name)
            ),
        }
    }

    /// The shared segment cache (the provider's `segment_cache`) failed this run: what was
    /// not fetched was built here, what was not pushed stays local.
    pub fn shared_cache(repository: &str, problems: &str) -> Warning {
        Warning {
            summary: "Shared segment cache not fully used".into(),
            detail: format!(
                "segment_cache repository {repository}:\n{problems}\nThe image is the same either way: what could not be fetched was built here."
            ),
        }
    }

    /// A warning kept with a cached segment or kernel file (its detail says nothing of
    /// where the segment sits), told about `what` it is now.
    pub(super) fn kept(what: &str, (summary, detail): &(String, String)) -> Warning {
        Warning { summary: summary.clone(), detail: format!("{what}: {detail}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_warning_says_where_it_is_now() {
        let kept = Warning::kept(
            "init[0]: example.com/init@sha256:00",
            &("Extended attributes dropped".into(), "/bin/ping: security.capability".into()),
        );
        assert_eq!(
            kept,
            Warning::dropped_xattrs("init[0]: example.com/init@sha256:00: /bin/ping: security.capability".into())
        );
        let uncreatable = Warning::uncreatable(b"dev/\xff", "not UTF-8");
        assert_eq!(uncreatable.summary, "Names the kernel cannot create");
        assert!(
            uncreatable.detail.starts_with("/dev/\u{fffd}: not UTF-8; the kernel cannot create it"),
            "{}",
            uncreatable.detail
        );
    }
}
