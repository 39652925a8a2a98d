//! The layer reader on arbitrary bytes: decompression by magic (gzip, zstd, plain), tar
//! headers (GNU and PAX long names, numeric fields, links, devices), whiteouts and path
//! normalisation. It must return an error or entries, never panic, and every path it
//! returns must be normalised.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use resin::rootfs::layer::{decompress, for_each_entry, EntryKind};

fuzz_target!(|data: &[u8]| {
    let Ok(stream) = decompress(data) else { return };
    // A few compressed bytes may expand without end: bounded.
    let stream = stream.take(16 << 20);
    let _ = for_each_entry(stream, |entry, content| {
        let normalised = |path: &[u8]| {
            !path.starts_with(b"/")
                && (path.is_empty() || path.split(|b| *b == b'/').all(|c| !c.is_empty() && c != b"." && c != b".."))
        };
        assert!(normalised(&entry.path), "unnormalised path {:?}", String::from_utf8_lossy(&entry.path));
        if let EntryKind::HardLink { target } = &entry.kind {
            assert!(normalised(target), "unnormalised hard-link target {:?}", String::from_utf8_lossy(target));
        }
        assert!(entry.mode <= 0o7777);
        let mut sink = Vec::new();
        content.take(1 << 20).read_to_end(&mut sink)?;
        Ok(())
    });
});
