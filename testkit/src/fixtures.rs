//! Fixture images written by code: deterministic OCI image layouts (tar layers, gzip,
//! JSON, sha256), optionally as a multi-platform index. The one layout writer of the
//! project: the acceptance tests, the library's golden test (`src/assemble/golden.rs`),
//! the benchmarks and the boot-fixture builder (`examples/boot_fixtures.rs`) use it. The
//! tests push layouts to the test registry with skopeo, which can also convert them to
//! Docker v2 schema 2 media types.

use std::io::Write as _;
use std::path::Path;

use serde_json::json;
use sha2::Digest as _;

/// sha256 of the initrd of the golden image: the standard fixture's packages
/// ([`write_fixtures`]) with the settings of `tests/acceptance/image.rs`'s `image_config`.
/// Checked through Terraform (tests/acceptance/golden.rs) and by the library alone
/// (`src/assemble/golden.rs`).
pub const GOLDEN_INITRD: &str = "98eb280df8d3c65316d47d0c27d890056802d027974edf4045abd09d05e76e96";

/// What to do when a golden value changes.
pub const GOLDEN_ADVICE: &str = "If this change is intentional (resin now writes different bytes or hashes \
    different inputs for the same image), bump ASSEMBLY_FORMAT in src/assemble/hash.rs so every content_hash \
    changes with the bytes, note it in CHANGELOG.md, and set the golden constants (GOLDEN_INITRD in \
    testkit/src/fixtures.rs, GOLDEN_CONTENT_HASH in tests/acceptance/golden.rs) to the new values. If it \
    is not intentional, a change made the output depend on something it must not (order, time, cache state, \
    backend).";

pub struct Image<'a> {
    pub architecture: &'a str,
    pub variant: Option<&'a str>,
    /// Files of the single layer: (path, contents).
    pub files: Vec<(&'a str, Vec<u8>)>,
    pub cmd: Vec<&'a str>,
}

impl<'a> Image<'a> {
    pub fn amd64(files: Vec<(&'a str, Vec<u8>)>) -> Image<'a> {
        Image { architecture: "amd64", variant: None, files, cmd: vec!["/bin/true"] }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The sha256 (hex) of a file's contents.
pub fn file_sha256(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

/// Writes a blob, returning its descriptor fields (digest, size).
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = sha256_hex(bytes);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

/// Writes an image made of `layers` (uncompressed tars, gzip'd here) with container
/// `config` (Cmd, Entrypoint, Labels...); returns its manifest descriptor, with platform.
pub fn put_image(
    dir: &Path,
    layers: &[Vec<u8>],
    architecture: &str,
    variant: Option<&str>,
    config: serde_json::Value,
) -> serde_json::Value {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        diff_ids.push(digest_of(layer));
        let (digest, size) = put_blob(dir, &gzip(layer));
        descriptors.push(
            json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size }),
        );
    }
    let mut image_config = json!({ "architecture": architecture, "os": "linux", "config": config, "rootfs": { "type": "layers", "diff_ids": diff_ids } });
    let mut platform = json!({ "os": "linux", "architecture": architecture });
    if let Some(variant) = variant {
        image_config["variant"] = json!(variant);
        platform["variant"] = json!(variant);
    }
    let mut descriptor = put_manifest(dir, &image_config, descriptors);
    descriptor["platform"] = platform;
    descriptor
}

/// Writes an image config and a manifest of it and `layers`; returns the manifest's
/// descriptor.
fn put_manifest(dir: &Path, config: &serde_json::Value, layers: Vec<serde_json::Value>) -> serde_json::Value {
    let (config_digest, config_size) = put_blob(dir, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
        "layers": layers,
    });
    let (digest, size) = put_blob(dir, manifest.to_string().as_bytes());
    json!({ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size })
}

/// Points `tag` of the layout's index.json at `descriptor` (its platform dropped);
/// returns the descriptor's digest.
pub fn set_tag(dir: &Path, tag: &str, descriptor: &serde_json::Value) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut entry = descriptor.clone();
    entry.as_object_mut().unwrap().remove("platform");
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_else(|_| json!({ "schemaVersion": 2, "manifests": [] }));
    let manifests = index["manifests"].as_array_mut().unwrap();
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != json!(tag));
    manifests.push(entry);
    std::fs::write(index_path, index.to_string()).unwrap();
    descriptor["digest"].as_str().unwrap().to_string()
}

/// The descriptor `tag` names in the layout's index.json.
pub fn tagged(dir: &Path, tag: &str) -> serde_json::Value {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()
        .clone()
}

/// Adds `images` to the OCI layout at `dir` under `tag`: one image directly, several as an
/// index. Returns the digest `tag` names (the manifest's, or the index's).
pub fn add_to_layout(dir: &Path, tag: &str, images: &[Image]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let mut descriptors: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            let entries: Vec<Entry> =
                image.files.iter().map(|(path, contents)| Entry::File(path, contents, 0o755)).collect();
            let config = json!({ "Cmd": image.cmd, "Env": ["PATH=/bin"] });
            put_image(dir, &[tar_layer(&entries)], image.architecture, image.variant, config)
        })
        .collect();
    let descriptor = if descriptors.len() == 1 { descriptors.remove(0) } else { put_index(dir, descriptors) };
    set_tag(dir, tag, &descriptor)
}

/// Writes an image index over platform manifest descriptors; returns its descriptor.
pub fn put_index(dir: &Path, manifests: Vec<serde_json::Value>) -> serde_json::Value {
    let index =
        json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests });
    let (digest, size) = put_blob(dir, index.to_string().as_bytes());
    json!({ "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size })
}

/// An uncompressed tar of everything under `root` (paths relative to it, in sorted order,
/// directories before their contents), with owner root and mtime 0; modes and symlinks
/// are kept.
pub fn tar_directory(root: &Path) -> Vec<u8> {
    fn walk(builder: &mut tar::Builder<Vec<u8>>, root: &Path, relative: &Path) {
        let mut names: Vec<std::ffi::OsString> =
            std::fs::read_dir(root.join(relative)).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for name in names {
            let path = relative.join(&name);
            let meta = std::fs::symlink_metadata(root.join(&path)).unwrap();
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            {
                use std::os::unix::fs::PermissionsExt as _;
                header.set_mode(meta.permissions().mode() & 0o7777);
            }
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(root.join(&path)).unwrap();
                builder.append_link(&mut header, &path, target).unwrap();
            } else if meta.is_dir() {
                builder.append_data(&mut header, &path, &[][..]).unwrap();
                walk(builder, root, &path);
            } else {
                let file = std::fs::File::open(root.join(&path)).unwrap();
                builder.append_data(&mut header, &path, file).unwrap();
            }
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    walk(&mut builder, root, Path::new(""));
    builder.into_inner().unwrap()
}

/// The manifest descriptors of the index `digest` in the layout (platform manifests).
pub fn index_entries(dir: &Path, digest: &str) -> Vec<serde_json::Value> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    index["manifests"].as_array().unwrap().clone()
}

/// The layer digests of manifest `digest` in the layout.
pub fn layer_digests(dir: &Path, digest: &str) -> Vec<String> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

/// One entry of a hand-made layer.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    HardLink(&'a str, &'a str),
    Symlink(&'a str, &'a str),
    CharDevice(&'a str, u32, u32),
    /// A name written as raw bytes, bypassing the tar crate's path checks (hostile paths).
    RawFile(&'a [u8]),
    /// A file carrying an extended attribute in a PAX header, as file capabilities do.
    FileWithXattr(&'a str, &'a [u8], &'a str),
}

/// An uncompressed tar layer from entries, with fixed times and owners.
pub fn tar_layer(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        match entry {
            Entry::Dir(path) => {
                header.set_mode(0o755);
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Entry::File(path, contents, mode) => {
                header.set_mode(*mode);
                header.set_size(contents.len() as u64);
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(&mut header, path, *contents).unwrap();
            }
            Entry::HardLink(path, target) => {
                header.set_mode(0o755);
                header.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_mode(0o777);
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Entry::FileWithXattr(path, contents, xattr) => {
                let body = format!(" SCHILY.xattr.{xattr}=\x01\x00\x00\x02\n");
                // A PAX record starts with its own length, digits included.
                let mut length = body.len() + 2;
                if format!("{length}{body}").len() != length {
                    length += 1;
                }
                let record = format!("{length}{body}");
                let mut pax = tar::Header::new_ustar();
                pax.set_path(format!("PaxHeaders/{path}")).unwrap();
                pax.set_size(record.len() as u64);
                pax.set_entry_type(tar::EntryType::XHeader);
                pax.set_mode(0o644);
                pax.set_mtime(0);
                pax.set_uid(0);
                pax.set_gid(0);
                pax.set_cksum();
                builder.append(&pax, record.as_bytes()).unwrap();
                header.set_mode(0o755);
                header.set_size(contents.len() as u64);
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(&mut header, path, *contents).unwrap();
            }
            Entry::CharDevice(path, major, minor) => {
                header.set_mode(0o666);
                header.set_entry_type(tar::EntryType::Char);
                header.set_device_major(*major).unwrap();
                header.set_device_minor(*minor).unwrap();
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Entry::RawFile(name) => {
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                header.as_old_mut().name[..name.len()].copy_from_slice(name);
                header.set_cksum();
                builder.append(&header, &[][..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// Adds an amd64 image whose layer blobs are given as they are stored (any bytes, e.g. a
/// gzip stream with a wrong CRC), with the `diff_ids` its config claims; returns the
/// manifest digest.
pub fn add_raw_image(dir: &Path, tag: &str, blobs: &[Vec<u8>], diff_ids: &[String]) -> String {
    let descriptors: Vec<serde_json::Value> = blobs
        .iter()
        .map(|blob| {
            let (digest, size) = put_blob(dir, blob);
            json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size })
        })
        .collect();
    let config = json!({ "architecture": "amd64", "os": "linux", "config": {}, "rootfs": { "type": "layers", "diff_ids": diff_ids } });
    let descriptor = put_manifest(dir, &config, descriptors);
    set_tag(dir, tag, &descriptor)
}

/// gzip of `bytes`, as the fixtures compress layers.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The config digest of manifest `digest` in the layout.
pub fn config_digest(dir: &Path, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

/// Adds an amd64 image made of `layers` (uncompressed tars) with container `config`
/// under `tag`; returns the manifest digest.
pub fn add_layered_image(dir: &Path, tag: &str, layers: &[Vec<u8>], config: serde_json::Value) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let descriptor = put_image(dir, layers, "amd64", None, config);
    set_tag(dir, tag, &descriptor)
}

/// Deterministic, incompressible bytes (xorshift64 seeded by `seed`).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub const KERNEL_BYTES: &[u8] = b"\x4d\x5a stand-in kernel image\n";

/// Writes the standard fixture's kernel, init, sysctl and sshd packages into the layout
/// at `dir` (the golden image: `GOLDEN_INITRD`).
pub fn write_fixtures(dir: &Path) {
    let modules = tar_layer(&[
        Entry::Dir("lib/modules/6.1.0"),
        Entry::File("lib/modules/6.1.0/modules.dep", b"kernel/fs/overlayfs/overlay.ko:\n", 0o644),
        Entry::File("lib/modules/6.1.0/kernel/fs/overlayfs/overlay.ko", b"\x7fELF overlay", 0o644),
    ]);
    add_layered_image(
        dir,
        "kernel",
        &[tar_layer(&[
            Entry::File("kernel", KERNEL_BYTES, 0o644),
            Entry::File("kernel.tar", &modules, 0o644),
            Entry::File("README", b"ignored", 0o644),
        ])],
        json!({}),
    );
    add_layered_image(
        dir,
        "init",
        &[
            tar_layer(&[
                Entry::Dir("./"),
                Entry::File("bin/busybox", b"busybox binary", 0o755),
                Entry::HardLink("bin/sh", "bin/busybox"),
                Entry::Symlink("bin/ls", "busybox"),
                Entry::CharDevice("dev/null", 1, 3),
                Entry::File("usr/bin/passwd", b"setuid", 0o4755),
                Entry::Dir("tmp"),
                Entry::File("etc/hostname", b"builder", 0o644),
                Entry::File("sbin/init", b"#!/bin/sh\nexec /bin/sh\n", 0o755),
                Entry::File("tmp/junk", b"removed by the next layer", 0o644),
                Entry::File(".dockerenv", b"", 0o644),
            ]),
            tar_layer(&[Entry::File("tmp/.wh.junk", b"", 0), Entry::File("etc/issue", b"resin\n", 0o644)]),
        ],
        json!({ "Cmd": ["/sbin/init"] }),
    );
    add_layered_image(
        dir,
        "sysctl",
        &[tar_layer(&[Entry::File("usr/bin/sysctl-apply", b"#!/bin/sh\n", 0o755)])],
        json!({ "Cmd": ["/usr/bin/sysctl-apply"], "Labels": { "org.mobyproject.config": "{\"readonly\":true,\"net\":\"host\"}" } }),
    );
    add_layered_image(
        dir,
        "sshd",
        &[tar_layer(&[Entry::File("usr/sbin/sshd", b"sshd binary", 0o4755)])],
        json!({ "Entrypoint": ["/usr/sbin/sshd", "-D"], "Env": ["PATH=/usr/sbin"],
                "Labels": { "org.mobyproject.config": "{\"capabilities\":[\"CAP_NET_BIND_SERVICE\"]}" } }),
    );
}
