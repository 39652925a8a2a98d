//! LinuxKit's rewriting of every flattened image, applied to its tree:
//!
//! * dropped: `.dockerenv`, `Dockerfile`, `dev/console`, `dev/pts`, `dev/shm`,
//!   `etc/hostname`;
//! * `etc/hosts` gets fixed localhost content;
//! * `etc/resolv.conf` is a symlink to `/run/resolvconf/resolv.conf` in init images and a
//!   file saying no resolv.conf is configured in container bundles;
//! * present afterwards: directories `dev`, `dev/pts`, `dev/shm`, `etc`, `proc`, `sys`
//!   (0755, root, when missing), and the symlink `etc/mtab -> /proc/mounts`.

use crate::rootfs::tree::{Content, Meta, Node, Tree};

pub const HOSTS: &[u8] = b"127.0.0.1       localhost\n::1     localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";
pub const BUNDLE_RESOLV_CONF: &[u8] = b"\n# no resolv.conf configured\n";
pub const INIT_RESOLV_CONF_TARGET: &[u8] = b"/run/resolvconf/resolv.conf";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageRole {
    Init,
    Bundle,
}

pub fn rewrite(tree: &mut Tree, role: ImageRole) {
    for dropped in [&b".dockerenv"[..], b"Dockerfile", b"dev/console", b"dev/pts", b"dev/shm", b"etc/hostname"] {
        tree.remove(dropped);
    }
    for directory in [&b"dev"[..], b"dev/pts", b"dev/shm", b"etc", b"proc", b"sys"] {
        if !matches!(tree.get(directory), Some(Node::Directory(_))) {
            tree.insert(directory, Node::Directory(Meta::generated(0o755)));
        }
    }
    tree.insert_file(b"etc/hosts", Meta::generated(0o644), HOSTS.len() as u64, Content::Bytes(HOSTS.to_vec()));
    match role {
        ImageRole::Init => {
            tree.insert(b"etc/resolv.conf", Node::Symlink(Meta::generated(0o777), INIT_RESOLV_CONF_TARGET.to_vec()))
        }
        ImageRole::Bundle => {
            tree.insert_file(
                b"etc/resolv.conf",
                Meta::generated(0o644),
                BUNDLE_RESOLV_CONF.len() as u64,
                Content::Bytes(BUNDLE_RESOLV_CONF.to_vec()),
            );
        }
    }
    tree.insert(b"etc/mtab", Node::Symlink(Meta::generated(0o777), b"/proc/mounts".to_vec()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(tree: &Tree) -> Vec<String> {
        tree.nodes()
            .map(|(path, node)| {
                let kind = match node {
                    Node::Directory(_) => "d",
                    Node::File(_) => "f",
                    Node::Symlink(..) => "l",
                    _ => "o",
                };
                format!("{kind} {}", String::from_utf8_lossy(path))
            })
            .collect()
    }

    #[test]
    fn applies_linuxkit_rules() {
        let mut tree = Tree::new();
        for path in [&b".dockerenv"[..], b"Dockerfile", b"etc/hostname", b"dev/console", b"dev/pts/0", b"etc/hosts"] {
            tree.insert_file(path, Meta::generated(0o644), 0, Content::Bytes(vec![]));
        }
        let mut init = tree.clone();
        rewrite(&mut init, ImageRole::Init);
        assert_eq!(
            listing(&init),
            [
                "d dev",
                "d dev/pts",
                "d dev/shm",
                "d etc",
                "f etc/hosts",
                "l etc/mtab",
                "l etc/resolv.conf",
                "d proc",
                "d sys"
            ]
        );
        assert!(matches!(init.get(b"etc/resolv.conf"), Some(Node::Symlink(_, t)) if t == INIT_RESOLV_CONF_TARGET));
        let Some(Node::File(hosts)) = init.get(b"etc/hosts") else { panic!() };
        assert_eq!(init.inode(*hosts).content, Content::Bytes(HOSTS.to_vec()));

        let mut bundle = tree;
        rewrite(&mut bundle, ImageRole::Bundle);
        let Some(Node::File(resolv)) = bundle.get(b"etc/resolv.conf") else { panic!("a file in bundles") };
        assert_eq!(bundle.inode(*resolv).content, Content::Bytes(BUNDLE_RESOLV_CONF.to_vec()));
    }
}
