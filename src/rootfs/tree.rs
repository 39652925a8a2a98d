//! The union of an image's layers, per the OCI image spec, as an in-memory tree of
//! metadata (file contents are kept in a spool, referenced by layer and position).
//!
//! For each layer, in order:
//! 1. its whiteouts apply first, to what the lower layers built: `.wh.<name>` removes
//!    `<name>` and everything under it, `.wh..wh..opq` empties its directory. Entries of
//!    the same layer are never hidden by its own whiteouts, wherever they sit in the tar.
//! 2. its other entries apply in tar order: a later entry for the same path wins; a
//!    directory over a directory updates the metadata and keeps the contents; anything
//!    else replaces what was there, a directory with all its contents. Missing parent
//!    directories are created (0755, root, fixed mtime), replacing a non-directory in the
//!    way. A hard link shares the inode of its target, which must be a regular file
//!    already in the tree.
//!
//! So a directory deleted in one layer and recreated in a later one has only the later
//! layer's contents (LinuxKit brings the old ones back), and an opaque directory hides
//! lower contents (LinuxKit ignores the marker).
//!
//! [`Tree::walk`] hands out the tree in archive order, for any archive format (the initrd's
//! newc writer is [`crate::initrd::newc::SegmentWriter::walked`]): directories first
//! (sorted, so parents precede children), then symlinks, devices and FIFOs (sorted), then
//! files whose contents are in memory or on the host (sorted), then layer files in layer
//! and tar order, their data read back from the [`Spool`] the one read of each layer
//! filled ([`Tree::read_layer`]). A hard-link group comes as one entry, at its data's
//! position.
//!
//! A tree made by [`Tree::in_insertion_order`] (the image's `file` entries) walks in the
//! order its entries were inserted instead, as LinuxKit writes `files`: each path at its
//! last insertion, preceded by those of its parents not walked yet.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::layer::{for_each_entry, EntryKind, LayerEntry};
use super::path::{display, join, parent};
use super::spool::{Extent, Spool};

/// mtime of entries resin makes up (implicit parents, generated files): LinuxKit's,
/// 2017-04-18T16:30:00Z.
pub const GENERATED_MTIME: u64 = 1_492_533_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits, with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

impl Meta {
    /// Root-owned with `mode` and the generated mtime.
    pub fn generated(mode: u32) -> Meta {
        Meta { mode, uid: 0, gid: 0, mtime: GENERATED_MTIME }
    }
}

pub type InodeId = usize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Directory(Meta),
    File(InodeId),
    Symlink(Meta, Vec<u8>),
    CharDevice(Meta, u32, u32),
    BlockDevice(Meta, u32, u32),
    Fifo(Meta),
}

/// Where a file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// From layer `layer` (as given to [`Tree::apply_layer`]); its bytes are at `extent`
    /// in the spool the layer's read filled (`None` for a union of metadata only).
    Layer { layer: usize, extent: Option<Extent> },
    /// Generated content.
    Bytes(Vec<u8>),
    /// A file on the machine running the provider, which must still have the digest
    /// (and the inode's size) it was planned with. Boxed: the rare variant would
    /// otherwise make every inode of a large tree twice as large.
    HostFile(Box<(PathBuf, crate::oci::digest::Digest)>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub meta: Meta,
    pub size: u64,
    pub content: Content,
}

/// An entry that carried extended attributes, which newc cannot hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedXattrs {
    pub path: Vec<u8>,
    pub names: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<Vec<u8>, Node>,
    inodes: Vec<Inode>,
    /// Directories created only because something below them was added.
    implicit: std::collections::BTreeSet<Vec<u8>>,
    /// Every inserted path, in insertion order, when the walk follows it.
    insertion_order: Option<Vec<Vec<u8>>>,
}

/// Key range of everything below `path` (`path/` up to `path0`, '0' following '/').
fn below(path: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if path.is_empty() {
        return (Vec::new(), vec![0xff; 1]);
    }
    ([path, b"/"].concat(), [path, b"0"].concat())
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// A tree whose walk follows the order of [`Tree::insert`] (see the module doc).
    pub fn in_insertion_order() -> Tree {
        Tree { insertion_order: Some(Vec::new()), ..Tree::default() }
    }

    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn inode(&self, id: InodeId) -> &Inode {
        &self.inodes[id]
    }

    /// Every path and node, sorted by path.
    pub fn nodes(&self) -> impl Iterator<Item = (&Vec<u8>, &Node)> {
        self.nodes.iter()
    }

    /// Removes `path` and everything below it (the root: everything).
    pub fn remove(&mut self, path: &[u8]) {
        let (start, end) = below(path);
        let mut tail = self.nodes.split_off(&start);
        let mut rest = if path.is_empty() { BTreeMap::new() } else { tail.split_off(&end) };
        self.nodes.append(&mut rest);
        self.nodes.remove(path);
    }

    /// Removes everything below directory `path`, keeping the directory.
    fn empty_directory(&mut self, path: &[u8]) {
        let keep = self.nodes.remove(path);
        self.remove(path);
        if let Some(node) = keep {
            self.nodes.insert(path.to_vec(), node);
        }
    }

    fn ensure_parents(&mut self, path: &[u8]) {
        let mut ancestors = Vec::new();
        let mut current = parent(path);
        while !current.is_empty() {
            ancestors.push(current.to_vec());
            current = parent(current);
        }
        for ancestor in ancestors.into_iter().rev() {
            if !matches!(self.nodes.get(&ancestor), Some(Node::Directory(_))) {
                self.nodes.insert(ancestor.clone(), Node::Directory(Meta::generated(0o755)));
                self.implicit.insert(ancestor);
            }
        }
    }

    /// Puts `node` at `path` with the replacement rules of the module doc. The root (empty
    /// path) is not represented and is ignored.
    pub fn insert(&mut self, path: &[u8], node: Node) {
        if path.is_empty() {
            return;
        }
        self.ensure_parents(path);
        let replacing_directory = matches!(self.nodes.get(path), Some(Node::Directory(_)));
        if replacing_directory && !matches!(node, Node::Directory(_)) {
            self.remove(path);
        }
        self.implicit.remove(path);
        self.nodes.insert(path.to_vec(), node);
        if let Some(order) = &mut self.insertion_order {
            order.push(path.to_vec());
        }
    }

    /// Adds a regular file with its own inode.
    pub fn insert_file(&mut self, path: &[u8], meta: Meta, size: u64, content: Content) -> InodeId {
        let id = self.inodes.len();
        self.inodes.push(Inode { meta, size, content });
        self.insert(path, Node::File(id));
        id
    }

    /// How many paths the tree holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree holds nothing.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Gives back the room kept for more inodes, once every layer is read (a quarter of
    /// the inodes' memory, on average, until the tree is dropped).
    pub fn shrink_to_fit(&mut self) {
        self.inodes.shrink_to_fit();
    }

    /// Reads one layer's plain tar stream to its end, applies its entries as layer `layer`
    /// and keeps the data of its regular files in `spool`: the layer's one read. Returns
    /// the entries that carried extended attributes.
    pub fn read_layer(
        &mut self,
        layer: usize,
        tar_stream: impl std::io::Read,
        spool: &mut Spool,
    ) -> Result<Vec<DroppedXattrs>> {
        self.read_layer_keeping(layer, tar_stream, |_, data| spool.append(data).map(Some))
    }

    /// [`Tree::read_layer`], each regular file's data handed to `keep` with its path, which
    /// keeps it where it likes and says where (`None`: not kept, and the walk cannot read
    /// it): for a reader that wants a few files of a layer and none of the others.
    pub fn read_layer_keeping(
        &mut self,
        layer: usize,
        tar_stream: impl std::io::Read,
        mut keep: impl FnMut(&[u8], &mut dyn std::io::Read) -> Result<Option<Extent>>,
    ) -> Result<Vec<DroppedXattrs>> {
        let (mut entries, mut extents) = (Vec::new(), Vec::new());
        for_each_entry(tar_stream, |entry, data| {
            extents.push(match entry.kind {
                EntryKind::File { .. } => keep(&entry.path, data)?,
                _ => None,
            });
            entries.push(entry);
            Ok(())
        })?;
        self.apply_entries(layer, &entries, &extents)
    }

    /// Applies one layer's entries (see the module doc). Returns the entries that carried
    /// extended attributes.
    pub fn apply_layer(&mut self, layer: usize, entries: &[LayerEntry]) -> Result<Vec<DroppedXattrs>> {
        self.apply_entries(layer, entries, &vec![None; entries.len()])
    }

    /// [`Tree::apply_layer`], with where each entry's data was kept (`extents[i]` for
    /// `entries[i]`).
    fn apply_entries(
        &mut self,
        layer: usize,
        entries: &[LayerEntry],
        extents: &[Option<Extent>],
    ) -> Result<Vec<DroppedXattrs>> {
        for entry in entries {
            match entry.kind {
                EntryKind::Whiteout => self.remove(&entry.path),
                EntryKind::Opaque => self.empty_directory(&entry.path),
                _ => {}
            }
        }
        let mut dropped = Vec::new();
        for (entry, extent) in entries.iter().zip(extents) {
            let meta = Meta { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime };
            if !entry.xattrs.is_empty() {
                dropped.push(DroppedXattrs { path: entry.path.clone(), names: entry.xattrs.clone() });
            }
            let node = match &entry.kind {
                EntryKind::Whiteout => continue,
                EntryKind::Opaque => {
                    // The marker implies its directory.
                    if !matches!(self.nodes.get(&entry.path), Some(Node::Directory(_))) {
                        self.insert(&entry.path, Node::Directory(Meta::generated(0o755)));
                    }
                    continue;
                }
                EntryKind::Directory => Node::Directory(meta),
                EntryKind::File { size } => {
                    self.insert_file(&entry.path, meta, *size, Content::Layer { layer, extent: *extent });
                    continue;
                }
                EntryKind::Symlink { target } => Node::Symlink(meta, target.clone()),
                EntryKind::HardLink { target } => match self.nodes.get(target) {
                    Some(Node::File(id)) => Node::File(*id),
                    Some(_) => bail!(
                        "hard link {} -> {}: the target is not a regular file",
                        display(&entry.path),
                        display(target)
                    ),
                    None => {
                        bail!("hard link {} -> {}: the target does not exist", display(&entry.path), display(target))
                    }
                },
                EntryKind::CharDevice { major, minor } => Node::CharDevice(meta, *major, *minor),
                EntryKind::BlockDevice { major, minor } => Node::BlockDevice(meta, *major, *minor),
                EntryKind::Fifo => Node::Fifo(meta),
            };
            if entry.path.is_empty() {
                continue;
            }
            self.insert(&entry.path, node);
        }
        Ok(dropped)
    }

    /// The directory names [`Tree::walk`] writes under `prefix` when `existing` holds the
    /// directories written before it, in the order it writes them.
    pub fn directories_written(&self, prefix: &[u8], existing: &std::collections::BTreeSet<Vec<u8>>) -> Vec<Vec<u8>> {
        let directories: Vec<&[u8]> = match self.inserted_order() {
            Some(order) => {
                order.into_iter().filter(|path| matches!(self.nodes.get(*path), Some(Node::Directory(_)))).collect()
            }
            None => self
                .nodes
                .iter()
                .filter(|(_, node)| matches!(node, Node::Directory(_)))
                .map(|(path, _)| path.as_slice())
                .collect(),
        };
        directories
            .into_iter()
            .map(|path| (join(prefix, path), self.implicit.contains(path)))
            .filter(|(full, implicit)| !(*implicit && existing.contains(full)))
            .map(|(full, _)| full)
            .collect()
    }

    /// For a tree in insertion order, the paths its walk visits: each inserted path still
    /// in the tree at its last insertion, preceded by its parents not visited yet.
    fn inserted_order(&self) -> Option<Vec<&[u8]>> {
        let order = self.insertion_order.as_ref()?;
        let mut last = std::collections::BTreeSet::new();
        let mut kept: Vec<&[u8]> =
            order.iter().rev().filter(|path| last.insert(path.as_slice())).map(Vec::as_slice).collect();
        kept.reverse();
        let mut visited = std::collections::BTreeSet::new();
        let mut walk = Vec::new();
        for path in kept.into_iter().filter(|path| self.nodes.contains_key(*path)) {
            let mut chain = vec![path];
            let mut current = parent(path);
            while !current.is_empty() {
                chain.push(current);
                current = parent(current);
            }
            for step in chain.into_iter().rev() {
                if visited.insert(step) {
                    walk.push(step);
                }
            }
        }
        Some(walk)
    }

    /// Walks the tree under `prefix` (empty for `/`) in archive order, handing each entry
    /// to `visit`. The data of files from layers comes from `spool`, filled by the one
    /// verified read of each layer (layer `i` as given to [`Tree::apply_layer`]). Implicit
    /// directories (made only as parents) that `existing` already holds are not walked
    /// again, so they do not override the metadata an earlier segment gave them (which
    /// directories those are: [`Tree::directories_written`]).
    pub fn walk(
        &self,
        prefix: &[u8],
        spool: &Spool,
        existing: &std::collections::BTreeSet<Vec<u8>>,
        mut visit: impl FnMut(Walked<'_>) -> Result<()>,
    ) -> Result<()> {
        if let Some(order) = self.inserted_order() {
            return self.walk_in_order(&order, prefix, existing, visit);
        }
        let directories = self.directories_written(prefix, existing);
        let mut written = directories.iter().peekable();
        let name = |path: &[u8]| join(prefix, path);
        // Each inode's first name (without the prefix) and, for hard links, the names
        // after it; the inodes in the order of their first name (the nodes are walked in
        // path order). One slot per inode: this is the walk's memory at 200k files.
        let mut first: Vec<Option<&[u8]>> = vec![None; self.inodes.len()];
        let mut more: BTreeMap<InodeId, Vec<&[u8]>> = BTreeMap::new();
        let mut by_first_path: Vec<InodeId> = Vec::with_capacity(self.inodes.len());
        for (path, node) in &self.nodes {
            match node {
                Node::Directory(meta) => {
                    let full = name(path);
                    if written.peek() == Some(&&full) {
                        written.next();
                        visit(Walked::Directory { name: full, meta: *meta })?;
                    }
                }
                Node::File(id) => match first[*id] {
                    None => {
                        first[*id] = Some(path);
                        by_first_path.push(*id);
                    }
                    Some(_) => more.entry(*id).or_default().push(path),
                },
                _ => {}
            }
        }
        for (path, node) in &self.nodes {
            if let Some(entry) = special(name(path), node) {
                visit(entry)?;
            }
        }
        let names = |id: InodeId| -> Vec<Vec<u8>> {
            first[id].into_iter().chain(more.get(&id).into_iter().flatten().copied()).map(name).collect()
        };
        // Files in memory or on the host, in path order; layer files grouped by layer, in
        // tar order (the order of their bytes in the spool).
        let mut from_layers: Vec<(usize, Option<Extent>, InodeId)> = Vec::with_capacity(by_first_path.len());
        for id in by_first_path {
            match &self.inodes[id].content {
                Content::Layer { layer, extent } => from_layers.push((*layer, *extent, id)),
                _ => visit_generated(&self.inodes[id], names(id), &mut visit)?,
            }
        }
        // The data of layer files comes from the spool filled by the one read of each layer.
        from_layers.sort_unstable();
        for (layer, extent, id) in from_layers {
            let inode = &self.inodes[id];
            let mut data = spool.reader(extent, inode.size).with_context(|| {
                format!("the data of {} (layer {})", display(first[id].unwrap_or_default()), layer + 1)
            })?;
            visit(Walked::File { names: names(id), meta: inode.meta, size: inode.size, data: &mut data })?;
        }
        Ok(())
    }
}

impl Tree {
    /// [`Tree::walk`] for a tree in insertion order, whose files are generated (in memory
    /// or on the host) and each its own inode.
    fn walk_in_order(
        &self,
        order: &[&[u8]],
        prefix: &[u8],
        existing: &std::collections::BTreeSet<Vec<u8>>,
        mut visit: impl FnMut(Walked<'_>) -> Result<()>,
    ) -> Result<()> {
        for path in order {
            let name = join(prefix, path);
            match &self.nodes[*path] {
                Node::Directory(_) if self.implicit.contains(*path) && existing.contains(&name) => {}
                Node::Directory(meta) => visit(Walked::Directory { name, meta: *meta })?,
                Node::File(id) => visit_generated(&self.inodes[*id], vec![name], &mut visit)?,
                node => visit(special(name, node).expect("neither a directory nor a file"))?,
            }
        }
        Ok(())
    }
}

/// The walk entry of a node that is neither a directory nor a regular file.
fn special(name: Vec<u8>, node: &Node) -> Option<Walked<'_>> {
    match node {
        Node::Symlink(meta, target) => Some(Walked::Symlink { name, meta: *meta, target }),
        Node::CharDevice(meta, major, minor) => {
            Some(Walked::Device { name, meta: *meta, block: false, rdev: (*major, *minor) })
        }
        Node::BlockDevice(meta, major, minor) => {
            Some(Walked::Device { name, meta: *meta, block: true, rdev: (*major, *minor) })
        }
        Node::Fifo(meta) => Some(Walked::Fifo { name, meta: *meta }),
        Node::Directory(_) | Node::File(_) => None,
    }
}

/// Visits a file whose contents are in memory or on the host (checked as copied).
fn visit_generated(inode: &Inode, names: Vec<Vec<u8>>, visit: &mut impl FnMut(Walked<'_>) -> Result<()>) -> Result<()> {
    let (meta, size) = (inode.meta, inode.size);
    match &inode.content {
        Content::Bytes(bytes) => visit(Walked::File { names, meta, size, data: &mut &bytes[..] }),
        Content::HostFile(host) => {
            let (path, sha256) = &**host;
            let mut file = super::host::PlannedFile::open(path, sha256, size)?;
            visit(Walked::File { names, meta, size, data: &mut file })
                .with_context(|| format!("copying {}", path.display()))
        }
        Content::Layer { .. } => bail!("{}: layer data comes from the spool", display(&names[0])),
    }
}

/// One entry of a [`Tree::walk`], named with the walk's prefix.
pub enum Walked<'a> {
    Directory {
        name: Vec<u8>,
        meta: Meta,
    },
    Symlink {
        name: Vec<u8>,
        meta: Meta,
        target: &'a [u8],
    },
    /// A character (`block: false`) or block device, with its device numbers.
    Device {
        name: Vec<u8>,
        meta: Meta,
        block: bool,
        rdev: (u32, u32),
    },
    Fifo {
        name: Vec<u8>,
        meta: Meta,
    },
    /// A regular file: all its names (a hard-link group, in path order), its size and its
    /// data, which is `size` bytes.
    File {
        names: Vec<Vec<u8>>,
        meta: Meta,
        size: u64,
        data: &'a mut dyn std::io::Read,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::layer::EntryKind::*;

    /// A layer entry from a short description.
    fn e(path: &str, kind: EntryKind) -> LayerEntry {
        LayerEntry {
            ordinal: 0,
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 1,
            xattrs: vec![],
        }
    }

    fn f(path: &str) -> LayerEntry {
        e(path, File { size: 1 })
    }

    /// The tree as lines: `d path`, `f path <layer>`, `l path -> target`, `c path`, `p path`.
    fn listing(tree: &Tree) -> Vec<String> {
        tree.nodes()
            .map(|(path, node)| {
                let path = String::from_utf8_lossy(path);
                match node {
                    Node::Directory(_) => format!("d {path}"),
                    Node::File(id) => match &tree.inode(*id).content {
                        Content::Layer { layer, .. } => format!("f {path} {layer}"),
                        other => format!("f {path} {other:?}"),
                    },
                    Node::Symlink(_, target) => format!("l {path} -> {}", String::from_utf8_lossy(target)),
                    Node::CharDevice(..) | Node::BlockDevice(..) => format!("c {path}"),
                    Node::Fifo(_) => format!("p {path}"),
                }
            })
            .collect()
    }

    fn union(layers: Vec<Vec<LayerEntry>>) -> Result<Tree> {
        let mut tree = Tree::new();
        for (index, mut entries) in layers.into_iter().enumerate() {
            for (ordinal, entry) in entries.iter_mut().enumerate() {
                entry.ordinal = ordinal;
            }
            tree.apply_layer(index, &entries)?;
        }
        Ok(tree)
    }

    #[test]
    fn union_follows_the_oci_rules() {
        type Case<'a> = (&'a str, Vec<Vec<LayerEntry>>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            ("file whiteout", vec![vec![f("a/x"), f("a/y")], vec![e("a/x", Whiteout)]], vec!["d a", "f a/y 0"]),
            (
                "directory whiteout removes the subtree",
                vec![vec![f("a/b/x"), f("a/c")], vec![e("a/b", Whiteout)]],
                vec!["d a", "f a/c 0"],
            ),
            (
                "opaque directory hides lower contents only",
                vec![vec![f("a/old"), f("b")], vec![e("a", Opaque), f("a/new")]],
                vec!["d a", "f a/new 1", "f b 0"],
            ),
            (
                "opaque marker after the new file in the same layer",
                vec![vec![f("a/old")], vec![f("a/new"), e("a", Opaque)]],
                vec!["d a", "f a/new 1"],
            ),
            (
                "deleted and recreated directory has only new contents",
                vec![vec![f("d/old")], vec![e("d", Whiteout)], vec![e("d", Directory), f("d/new")]],
                vec!["d d", "f d/new 2"],
            ),
            (
                "whiteout in the same layer does not hide its own entries",
                vec![vec![f("x")], vec![f("x"), e("x", Whiteout)]],
                vec!["f x 1"],
            ),
            ("directory replaced by a file", vec![vec![f("p/x")], vec![f("p")]], vec!["f p 1"]),
            (
                "directory replaced by a symlink and back",
                vec![
                    vec![f("p/x")],
                    vec![e("p", Symlink { target: b"/q".to_vec() })],
                    vec![e("p", Directory), f("p/y")],
                ],
                vec!["d p", "f p/y 2"],
            ),
            (
                "file under a former file gets an implicit directory",
                vec![vec![f("p")], vec![f("p/y")]],
                vec!["d p", "f p/y 1"],
            ),
            (
                "duplicate paths: the later entry wins",
                vec![vec![f("x"), e("x", Symlink { target: b"y".to_vec() })]],
                vec!["l x -> y"],
            ),
            (
                "directory over directory keeps contents",
                vec![vec![f("d/a")], vec![e("d", Directory)]],
                vec!["d d", "f d/a 0"],
            ),
            ("missing parents are created", vec![vec![f("a/b/c")]], vec!["d a", "d a/b", "f a/b/c 0"]),
            ("root entries are ignored", vec![vec![e("", Directory), f("x")]], vec!["f x 0"]),
            (
                "hard link shares the inode",
                vec![vec![f("a"), e("b", HardLink { target: b"a".to_vec() })]],
                vec!["f a 0", "f b 0"],
            ),
            (
                "devices and fifos",
                vec![vec![e("dev/null", CharDevice { major: 1, minor: 3 }), e("p", Fifo)]],
                vec!["d dev", "c dev/null", "p p"],
            ),
            ("whiteout of something absent is harmless", vec![vec![f("a")], vec![e("zz", Whiteout)]], vec!["f a 0"]),
        ];
        for (name, layers, expected) in cases {
            let tree = union(layers).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(listing(&tree), expected, "{name}");
        }
    }

    #[test]
    fn hard_links_keep_content_when_the_target_is_replaced() {
        let tree = union(vec![vec![f("a"), e("b", HardLink { target: b"a".to_vec() })], vec![f("a")]]).unwrap();
        let Some(Node::File(a)) = tree.get(b"a") else { panic!() };
        let Some(Node::File(b)) = tree.get(b"b") else { panic!() };
        assert_ne!(a, b);
        assert_eq!(tree.inode(*b).content, Content::Layer { layer: 0, extent: None });
    }

    #[test]
    fn bad_hard_links_are_errors() {
        let err = union(vec![vec![e("b", HardLink { target: b"missing".to_vec() })]]).unwrap_err();
        assert!(err.to_string().contains("hard link /b -> /missing: the target does not exist"), "{err}");
        let err = union(vec![vec![e("d", Directory), e("b", HardLink { target: b"d".to_vec() })]]).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_tree_in_insertion_order_walks_as_inserted_with_parents_first() {
        let mut tree = Tree::in_insertion_order();
        let file = |tree: &mut Tree, path: &str| {
            tree.insert_file(path.as_bytes(), Meta::generated(0o644), 1, Content::Bytes(b"x".to_vec()));
        };
        file(&mut tree, "usr/z");
        file(&mut tree, "etc/motd");
        tree.insert(b"etc/ssh/key", Node::Symlink(Meta::generated(0o777), b"/k".to_vec()));
        file(&mut tree, "usr/z"); // again: walked at its last place
        tree.insert(b"etc/ssh", Node::Directory(Meta::generated(0o700))); // explicit, after its child
        file(&mut tree, "gone/x");
        tree.insert(b"gone", Node::Symlink(Meta::generated(0o777), b"/tmp".to_vec())); // replaces gone/x
        let existing = std::collections::BTreeSet::from([b"etc".to_vec()]);
        let mut walked = Vec::new();
        tree.walk(b"", &Spool::empty(), &existing, |entry| {
            walked.push(match entry {
                Walked::Directory { name, meta } => format!("d {} {:o}", display(&name), meta.mode),
                Walked::Symlink { name, .. } => format!("l {}", display(&name)),
                Walked::File { names, .. } => format!("f {}", display(&names[0])),
                _ => "other".into(),
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(walked, ["f /etc/motd", "d /etc/ssh 700", "l /etc/ssh/key", "d /usr 755", "f /usr/z", "l /gone"]);
        assert_eq!(tree.directories_written(b"", &existing), [b"etc/ssh".to_vec(), b"usr".to_vec()]);
    }

    #[test]
    fn dropped_xattrs_are_reported() {
        let mut entry = f("usr/bin/ping");
        entry.xattrs = vec!["security.capability".into()];
        let mut tree = Tree::new();
        let dropped = tree.apply_layer(0, &[entry]).unwrap();
        assert_eq!(
            dropped,
            vec![DroppedXattrs { path: b"usr/bin/ping".to_vec(), names: vec!["security.capability".into()] }]
        );
    }
}
