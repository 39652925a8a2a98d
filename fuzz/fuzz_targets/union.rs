//! The union of up to four layers (plain tar each) on arbitrary bytes, then the union
//! written as newc. Invariants: every path's parent is a directory of the tree, every file
//! names an existing inode, and what is written is whole 4-byte units.
#![no_main]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use resin::initrd::newc::SegmentWriter;
use resin::rootfs::path::parent;
use resin::rootfs::spool::Spool;
use resin::rootfs::tree::{Node, Tree};

/// A directory for the spools of this process (Tree::write reads file data from a spool).
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("resin-fuzz-union-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else { return };
    let count = usize::from(count % 4) + 1;
    let size = rest.len().div_ceil(count).max(1);
    let layers: Vec<&[u8]> = rest.chunks(size).collect();
    let mut tree = Tree::new();
    let mut spool = Spool::new_in(scratch()).unwrap();
    for (index, layer) in layers.iter().enumerate() {
        if tree.read_layer(index, *layer, &mut spool).is_err() {
            return;
        }
    }
    spool.finish().unwrap();
    for (path, node) in tree.nodes() {
        assert!(!path.is_empty(), "the root is not a node");
        let up = parent(path);
        assert!(
            up.is_empty() || matches!(tree.get(up), Some(Node::Directory(_))),
            "{:?} has no parent directory",
            String::from_utf8_lossy(path)
        );
        if let Node::File(id) = node {
            let _ = tree.inode(*id);
        }
    }
    let mut writer = SegmentWriter::new(Vec::new(), (0, 1));
    if tree.walk(b"", &spool, &BTreeSet::new(), |entry| writer.walked(entry)).is_ok() {
        let written = writer.written();
        assert_eq!(written % 4, 0);
        assert_eq!(writer.into_inner().len() as u64, written);
    }
});
