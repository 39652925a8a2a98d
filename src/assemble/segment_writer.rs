//! The initrd's new segments written into the segment cache: the segment writer of
//! [`crate::initrd::segments`] with the cache as its store, each segment tagged with
//! what its cache entry keeps (its key, the directories it writes, the warnings building
//! it gave).

use anyhow::{Context, Result};

use super::segment_cache::{CachedSegment, SegmentCache, SegmentMeta};
use super::warning::Warning;
use crate::initrd::segments::{self, Compressed, SegmentSink};
use crate::initrd::Compression;
use crate::oci::digest::Digest;

/// What a segment's cache entry is kept under and holds besides its bytes.
pub struct Entry {
    /// What the segment's bytes are a function of: its name in the segment cache.
    pub key: Digest,
    /// The directories it writes (its scaffolding's and its tree's).
    pub directories: Vec<Vec<u8>>,
    /// What building its tree warned about.
    pub warnings: Vec<Warning>,
    /// Whether it may go to the shared segment cache (not when it holds `sensitive_contents`).
    pub shared: bool,
}

/// A segment of an image, to write into the cache.
pub type Segment<'c> = segments::Segment<'c, Entry>;

/// Writes the segments `build` pushes into new entries of `cache` (see
/// [`segments::write_segments`]); hands each entry, open, to `finished` in the order they
/// were pushed, as soon as it is written.
pub fn write_segments<'c>(
    compression: Compression,
    cache: &SegmentCache,
    build: impl FnOnce(&SegmentSink<'c, Entry>) -> Result<()>,
    mut finished: impl FnMut(CachedSegment) -> Result<()> + Send,
) -> Result<()> {
    segments::write_segments(compression, cache, build, |segment| {
        let Compressed { output, summary, uncreatable, tag: Entry { key, directories, warnings, shared }, what } =
            segment;
        let mut warnings: Vec<(String, String)> = warnings.into_iter().map(|w| (w.summary, w.detail)).collect();
        warnings.extend(uncreatable.iter().map(|(name, reason)| {
            let warning = Warning::uncreatable(name, reason);
            (warning.summary, warning.detail)
        }));
        let meta = SegmentMeta {
            crc: summary.crc,
            length: summary.length,
            directories: directories.iter().map(hex::encode).collect(),
            warnings,
        };
        finished(output.finish(cache, &key, &meta, shared).with_context(|| what)?)
    })
}

/// A segment's device number: the first 64 bits of its key, as (major, minor), which
/// keeps its inode numbers apart from every other segment's.
pub fn device_of(key: &Digest) -> (u32, u32) {
    let hex = key.digest();
    let part = |range: std::ops::Range<usize>| u32::from_str_radix(&hex[range], 16).expect("a sha256 digest is hex");
    (part(0..8), part(8..16))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::initrd::segments::SegmentBody;

    #[test]
    fn each_segment_becomes_a_cache_entry_under_its_key_with_its_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SegmentCache::open(dir.path(), 1 << 30).unwrap();
        let key = crate::oci::digest::sha256(b"motd");
        let warning = Warning { summary: "s".into(), detail: "d".into() };
        let entry =
            Entry { key: key.clone(), directories: vec![b"etc".to_vec()], warnings: vec![warning], shared: true };
        let body = SegmentBody::File { path: b"etc/motd", contents: b"hello\n".to_vec() };
        let segment = Segment { body, existing: BTreeSet::new(), device: device_of(&key), tag: entry };
        let mut written = Vec::new();
        write_segments(
            Compression::DEFAULT,
            &cache,
            |sink| sink.push(segment),
            |entry| {
                written.push(entry);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(written.len(), 1);
        let meta = &written[0].meta;
        assert_eq!(meta.directories, [hex::encode("etc")]);
        assert_eq!(meta.warnings, [("s".to_string(), "d".to_string())]);
        assert!(meta.length > 110, "a newc entry: {}", meta.length);
        let kept = cache.get(&key).unwrap().expect("kept under its key");
        assert_eq!(kept.meta, *meta);
        assert_eq!(
            device_of(&key),
            (
                u32::from_str_radix(&key.digest()[..8], 16).unwrap(),
                u32::from_str_radix(&key.digest()[8..16], 16).unwrap()
            )
        );
    }
}
