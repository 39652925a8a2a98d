//! Fixture images written by code: deterministic OCI image layouts (tar layers, gzip,
//! JSON, sha256), optionally as a multi-platform index. Pushed to the test registry with
//! skopeo, which can also convert them to Docker v2 schema 2 media types.

use std::io::Write as _;
use std::path::Path;

use serde_json::json;
use sha2::Digest as _;

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

/// Writes a blob, returning its descriptor fields (digest, size).
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = sha256_hex(bytes);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

fn layer_tar_gz(files: &[(&str, Vec<u8>)]) -> (Vec<u8>, String) {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, contents.as_slice()).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let diff_id = format!("sha256:{}", sha256_hex(&tar));
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Writes one image's blobs; returns its manifest descriptor as JSON.
fn put_image(dir: &Path, image: &Image) -> serde_json::Value {
    let (layer, diff_id) = layer_tar_gz(&image.files);
    let (layer_digest, layer_size) = put_blob(dir, &layer);
    let mut config = json!({
        "architecture": image.architecture,
        "os": "linux",
        "config": { "Cmd": image.cmd, "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    if let Some(variant) = image.variant {
        config["variant"] = json!(variant);
    }
    let (config_digest, config_size) = put_blob(dir, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size }],
    });
    let (digest, size) = put_blob(dir, manifest.to_string().as_bytes());
    let mut platform = json!({ "os": "linux", "architecture": image.architecture });
    if let Some(variant) = image.variant {
        platform["variant"] = json!(variant);
    }
    json!({ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size, "platform": platform })
}

/// Adds `images` to the OCI layout at `dir` under `tag`: one image directly, several as an
/// index. Returns the digest `tag` names (the manifest's, or the index's).
pub fn add_to_layout(dir: &Path, tag: &str, images: &[Image]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descriptor = if images.len() == 1 {
        put_image(dir, &images[0])
    } else {
        let manifests: Vec<serde_json::Value> = images.iter().map(|i| put_image(dir, i)).collect();
        let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests });
        let (digest, size) = put_blob(dir, index.to_string().as_bytes());
        json!({ "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size })
    };
    let digest = descriptor["digest"].as_str().unwrap().to_string();
    descriptor.as_object_mut().unwrap().remove("platform");
    descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_else(|_| json!({ "schemaVersion": 2, "manifests": [] }));
    let manifests = index["manifests"].as_array_mut().unwrap();
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != json!(tag));
    manifests.push(descriptor);
    std::fs::write(index_path, index.to_string()).unwrap();
    digest
}

/// The manifest descriptors of the index `digest` in the layout (platform manifests).
pub fn index_entries(dir: &Path, digest: &str) -> Vec<serde_json::Value> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    index["manifests"].as_array().unwrap().clone()
}

/// The layer digests of manifest `digest` in the layout.
pub fn layer_digests(dir: &Path, digest: &str) -> Vec<String> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap();
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

/// Adds an image made of `layers` (uncompressed tars, gzip'd here) with container
/// `config` (Entrypoint, Labels...) under `tag`; returns the manifest digest.
pub fn add_layered_image(dir: &Path, tag: &str, layers: &[Vec<u8>], config: serde_json::Value) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(layer)));
        let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
        gz.write_all(layer).unwrap();
        let (digest, size) = put_blob(dir, &gz.finish().unwrap());
        descriptors.push(json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size }));
    }
    let config = json!({ "architecture": "amd64", "os": "linux", "config": config, "rootfs": { "type": "layers", "diff_ids": diff_ids } });
    let (config_digest, config_size) = put_blob(dir, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
        "layers": descriptors,
    });
    let (digest, size) = put_blob(dir, manifest.to_string().as_bytes());
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_else(|_| json!({ "schemaVersion": 2, "manifests": [] }));
    let manifests = index["manifests"].as_array_mut().unwrap();
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != json!(tag));
    manifests.push(json!({ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
        "annotations": { "org.opencontainers.image.ref.name": tag } }));
    std::fs::write(index_path, index.to_string()).unwrap();
    digest
}
