//! The newc writer on arbitrary entries (names of any bytes, any type bits, data), read
//! back by an independent parser: every entry the writer accepts comes back with its
//! name, mode and data; an entry it refuses is an error, never a panic or a malformed
//! archive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resin::initrd::newc::{write_trailer, Metadata, SegmentWriter, S_IFDIR, S_IFLNK, S_IFREG};

struct Parsed {
    name: Vec<u8>,
    mode: u32,
    data: Vec<u8>,
}

fn field(header: &[u8], index: usize) -> u32 {
    let text = std::str::from_utf8(&header[6 + index * 8..14 + index * 8]).expect("ASCII hex");
    u32::from_str_radix(text, 16).expect("hex")
}

/// Reads newc entries up to the trailer.
fn parse(mut bytes: &[u8]) -> Vec<Parsed> {
    let pad = |n: usize| (4 - n % 4) % 4;
    let mut entries = Vec::new();
    loop {
        assert!(bytes.len() >= 110, "truncated header");
        assert_eq!(&bytes[..6], b"070701");
        let (mode, size, namesize) = (field(bytes, 1), field(bytes, 6) as usize, field(bytes, 11) as usize);
        let name = bytes[110..110 + namesize - 1].to_vec();
        assert_eq!(bytes[110 + namesize - 1], 0, "name not NUL-terminated");
        let data_start = 110 + namesize + pad(110 + namesize);
        let data = bytes[data_start..data_start + size].to_vec();
        bytes = &bytes[data_start + size + pad(size)..];
        if name == b"TRAILER!!!" {
            assert!(bytes.iter().all(|b| *b == 0), "bytes after the trailer");
            return entries;
        }
        entries.push(Parsed { name, mode, data });
    }
}

fuzz_target!(|data: &[u8]| {
    let mut writer = SegmentWriter::new(Vec::new(), (0, 1));
    let mut accepted = Vec::new();
    let mut input = data;
    while input.len() >= 3 {
        let (name_len, kind, size) = (usize::from(input[0]), input[1] % 3, usize::from(input[2]));
        input = &input[3..];
        let name = &input[..name_len.min(input.len())];
        input = &input[name.len()..];
        let content = &input[..size.min(input.len())];
        input = &input[content.len()..];
        let mode = [S_IFREG | 0o644, S_IFDIR | 0o755, S_IFLNK | 0o777][usize::from(kind)];
        let meta = Metadata { mode, uid: 0, gid: 0, mtime: 0, rdev: (0, 0) };
        let size = if mode == S_IFDIR | 0o755 { 0 } else { content.len() };
        if writer.entry(name, &meta, size as u64, &content[..size]).is_ok() {
            accepted.push((name.to_vec(), mode, content[..size].to_vec()));
        } else {
            // A refused entry may have left a partial header: the segment is abandoned,
            // as assembly abandons it.
            return;
        }
    }
    let written = writer.written();
    let mut archive = writer.into_inner();
    assert_eq!(archive.len() as u64, written);
    write_trailer(&mut archive, written).unwrap();
    assert_eq!(archive.len() % 512, 0);
    let parsed = parse(&archive);
    assert_eq!(parsed.len(), accepted.len());
    for (entry, (name, mode, content)) in parsed.iter().zip(&accepted) {
        assert_eq!(&entry.name, name);
        assert_eq!(entry.mode, *mode);
        assert_eq!(&entry.data, content);
    }
});
