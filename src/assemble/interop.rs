//! What a composition looks like to other tools: the equivalent LinuxKit YAML (to compare
//! with or migrate from `linuxkit build`) and an SPDX 2.3 JSON SBOM of the image.
//!
//! Both are deterministic functions of the composition: the SBOM's namespace is derived
//! from the content hash and its creation time is the fixed time of generated entries
//! (as SOURCE_DATE_EPOCH would be), so the same image always gives the same document.

use serde_json::{json, Map, Value};

use super::compose::{Composition, FileKind};
use super::spec::PackageSpec;
use crate::container::ContainerOptions;
use crate::oci::reference::{ImageReference, PinnedImage};

/// What `linuxkit_yaml` shows for the contents of a file given as `sensitive_contents`.
pub const SENSITIVE_PLACEHOLDER: &str = "(sensitive contents, not shown)";

/// A package's options under LinuxKit's keys.
fn linuxkit_options(options: &ContainerOptions) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            out.insert(key.to_string(), v);
        }
    };
    let strings = |v: &Option<Vec<String>>| v.as_ref().map(|v| json!(v));
    put("capabilities", strings(&options.capabilities));
    put("capabilities.add", strings(&options.capabilities_add));
    put("ambient", strings(&options.ambient));
    put("binds", strings(&options.binds));
    put("binds.add", strings(&options.binds_add));
    put("mounts", options.mounts.as_ref().map(|m| json!(m)));
    put("tmpfs", strings(&options.tmpfs));
    put("command", strings(&options.command));
    put("env", strings(&options.env));
    put("cwd", options.cwd.as_ref().map(|v| json!(v)));
    put("net", options.net.as_ref().map(|v| json!(v)));
    put("pid", options.pid.as_ref().map(|v| json!(v)));
    put("ipc", options.ipc.as_ref().map(|v| json!(v)));
    put("uts", options.uts.as_ref().map(|v| json!(v)));
    put("userns", options.userns.as_ref().map(|v| json!(v)));
    put("readonly", options.readonly.map(|v| json!(v)));
    put("maskedPaths", strings(&options.masked_paths));
    put("readonlyPaths", strings(&options.readonly_paths));
    put("uid", options.uid.as_ref().map(|v| json!(v)));
    put("gid", options.gid.as_ref().map(|v| json!(v)));
    put("additionalGids", strings(&options.additional_gids));
    put("noNewPrivileges", options.no_new_privileges.map(|v| json!(v)));
    put("hostname", options.hostname.as_ref().map(|v| json!(v)));
    put("oomScoreAdj", options.oom_score_adj.map(|v| json!(v)));
    put("rootfsPropagation", options.rootfs_propagation.as_ref().map(|v| json!(v)));
    put("cgroupsPath", options.cgroups_path.as_ref().map(|v| json!(v)));
    put("devices", options.devices.as_ref().map(|d| json!(d)));
    put(
        "resources",
        options.resources.as_ref().map(|r| {
            let mut resources = Map::new();
            if let Some(m) = &r.memory {
                let mut memory = serde_json::to_value(m).expect("serialisable");
                if let Some(object) = memory.as_object_mut() {
                    if let Some(v) = object.remove("disable_oom_killer") {
                        object.insert("disableOOMKiller".into(), v);
                    }
                }
                resources.insert("memory".into(), memory);
            }
            if let Some(c) = &r.cpu {
                resources.insert("cpu".into(), json!(c));
            }
            if let Some(limit) = r.pids_limit {
                resources.insert("pids".into(), json!({ "limit": limit }));
            }
            if let Some(weight) = r.block_io_weight {
                resources.insert("blockio".into(), json!({ "weight": weight }));
            }
            Value::Object(resources)
        }),
    );
    put("sysctl", options.sysctl.as_ref().map(|v| json!(v)));
    put("rlimits", strings(&options.rlimits));
    put("annotations", options.annotations.as_ref().map(|v| json!(v)));
    put(
        "runtime",
        options.runtime.as_ref().map(|r| {
            let mut runtime = Map::new();
            if let Some(v) = &r.cgroups {
                runtime.insert("cgroups".into(), json!(v));
            }
            if let Some(v) = &r.mounts {
                runtime.insert("mounts".into(), json!(v));
            }
            if let Some(v) = &r.mkdir {
                runtime.insert("mkdir".into(), json!(v));
            }
            if let Some(v) = &r.interfaces {
                let interfaces: Vec<Value> = v
                    .iter()
                    .map(|i| json!({ "name": i.name, "add": i.add, "peer": i.peer, "createInRoot": i.create_in_root }))
                    .collect();
                runtime.insert("interfaces".into(), Value::Array(interfaces));
            }
            if let Some(v) = &r.bind_ns {
                runtime.insert("bindNS".into(), json!(v));
            }
            if let Some(v) = &r.namespace {
                runtime.insert("namespace".into(), json!(v));
            }
            Value::Object(runtime)
        }),
    );
    out
}

/// The mode LinuxKit gives the parent directories of a `files` entry of `mode`: each of
/// user, group and other that has any bit also gets its execute bit.
fn linuxkit_parent_mode(mode: u32) -> u32 {
    [0o700, 0o070, 0o007].iter().fold(mode, |dir, class| if mode & class != 0 { dir | (class & 0o111) } else { dir })
}

/// An image pinned as its reference named it: to the index it was chosen from, else to
/// its manifest.
fn as_named<'a>(image: &'a PinnedImage, index: &'a Option<PinnedImage>) -> &'a PinnedImage {
    index.as_ref().unwrap_or(image)
}

fn container(package: &PackageSpec) -> Value {
    let mut entry = Map::new();
    entry.insert("name".into(), json!(package.name));
    entry.insert("image".into(), json!(as_named(&package.image, &package.index)));
    entry.extend(linuxkit_options(&package.options));
    Value::Object(entry)
}

/// The LinuxKit YAML document equivalent to the composition. Images are pinned as the
/// user pinned them: to the index their reference named (as LinuxKit's own YAML pins
/// them; `linuxkit build` takes a slower path for a platform manifest), else to the
/// manifest. Sensitive file contents are not written out: the entry says where they
/// would go.
pub fn linuxkit_document(composition: &Composition) -> Value {
    let inputs = &composition.inputs;
    let kernel = &inputs.kernel;
    let mut kernel_entry =
        json!({ "image": kernel.index.as_ref().unwrap_or(&kernel.image), "cmdline": kernel.cmdline });
    if kernel.binary != "kernel" {
        kernel_entry["binary"] = json!(kernel.binary);
    }
    if kernel.modules_tar != "kernel.tar" {
        kernel_entry["tar"] = json!(if kernel.modules_tar.is_empty() { "none" } else { kernel.modules_tar.as_str() });
    }
    if let Some(ucode) = &kernel.ucode {
        kernel_entry["ucode"] = json!(ucode);
    }
    let mut document = Map::new();
    document.insert("kernel".into(), kernel_entry);
    let init: Vec<&PinnedImage> = inputs.init.iter().map(|p| as_named(&p.image, &p.index)).collect();
    document.insert("init".into(), json!(init));
    for (key, packages) in
        [("onboot", &inputs.onboot), ("onshutdown", &inputs.onshutdown), ("services", &inputs.services)]
    {
        if !packages.is_empty() {
            document.insert(key.into(), Value::Array(packages.iter().map(container).collect()));
        }
    }
    let mut files = Vec::new();
    // Paths LinuxKit has already written an entry for (it writes each parent once).
    let mut written = std::collections::BTreeSet::new();
    for file in &inputs.files {
        let path = file.path.trim_start_matches('/').to_string();
        let mode = file.mode.unwrap_or(match file.kind {
            FileKind::Contents(_) | FileKind::Source(_) => 0o644,
            FileKind::Directory => 0o755,
            FileKind::Symlink(_) => 0o777,
        });
        let (uid, gid) = (file.uid.as_deref().unwrap_or("0"), file.gid.as_deref().unwrap_or("0"));
        // LinuxKit writes the parents of an entry it has not written yet with a mode made
        // from the entry's (each class that has a bit gets x) and the entry's owner; where
        // that is not 0755 root, the parents go first as explicit 0755 root directories,
        // as resin leaves them (see the compatibility guide).
        let parents_unlike_resin = linuxkit_parent_mode(mode) != 0o755 || uid != "0" || gid != "0";
        let mut parent = String::new();
        for part in path.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
            parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
            if written.insert(parent.clone()) && parents_unlike_resin {
                files.push(json!({ "path": parent, "directory": true, "mode": "0755", "uid": 0, "gid": 0 }));
            }
        }
        written.insert(path.clone());
        let mut entry = Map::new();
        entry.insert("path".into(), json!(path));
        match &file.kind {
            FileKind::Contents(_) if file.sensitive => {
                entry.insert("contents".into(), json!(SENSITIVE_PLACEHOLDER));
            }
            FileKind::Contents(bytes) => {
                entry.insert("contents".into(), json!(String::from_utf8_lossy(bytes)));
            }
            FileKind::Source(source) => {
                entry.insert("source".into(), json!(source.display().to_string()));
            }
            FileKind::Directory => {
                entry.insert("directory".into(), json!(true));
            }
            FileKind::Symlink(target) => {
                entry.insert("symlink".into(), json!(target));
            }
        }
        entry.insert("mode".into(), json!(format!("{mode:04o}")));
        for (key, id) in [("uid", uid), ("gid", gid)] {
            entry.insert(key.into(), id.parse::<u32>().map(|n| json!(n)).unwrap_or_else(|_| json!(id)));
        }
        if file.optional {
            entry.insert("optional".into(), json!(true));
        }
        files.push(Value::Object(entry));
    }
    if !files.is_empty() {
        document.insert("files".into(), Value::Array(files));
    }
    Value::Object(document)
}

/// A block-style YAML rendering of a JSON value (scalars in JSON's double-quoted form,
/// which YAML reads the same way). Keys in LinuxKit's usual order: kernel, init, onboot,
/// onshutdown, services, files; within entries, `name` and `image` first.
pub fn to_yaml(value: &Value) -> String {
    fn scalar(value: &Value) -> String {
        match value {
            Value::String(s) => serde_json::to_string(s).expect("strings serialise"),
            other => other.to_string(),
        }
    }
    fn key_rank(key: &str) -> (usize, &str) {
        let order = ["kernel", "init", "onboot", "onshutdown", "services", "files", "name", "image", "path"];
        (order.iter().position(|k| *k == key).unwrap_or(order.len()), key)
    }
    fn emit(value: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by_key(|k| key_rank(k));
                for key in keys {
                    let item = &map[key];
                    let key_text = if key.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                        key.clone()
                    } else {
                        scalar(&json!(key))
                    };
                    match item {
                        Value::Object(m) if !m.is_empty() => {
                            out.push_str(&format!("{pad}{key_text}:\n"));
                            emit(item, indent + 2, out);
                        }
                        Value::Array(a) if !a.is_empty() => {
                            out.push_str(&format!("{pad}{key_text}:\n"));
                            emit(item, indent + 2, out);
                        }
                        Value::Object(_) => out.push_str(&format!("{pad}{key_text}: {{}}\n")),
                        Value::Array(_) => out.push_str(&format!("{pad}{key_text}: []\n")),
                        Value::Null => {}
                        other => out.push_str(&format!("{pad}{key_text}: {}\n", scalar(other))),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(_) | Value::Array(_) => {
                            let mut nested = String::new();
                            emit(item, indent + 2, &mut nested);
                            // The first line of the nested block follows the dash.
                            let nested = nested.strip_prefix(&" ".repeat(indent + 2)).unwrap_or(&nested).to_string();
                            out.push_str(&format!("{pad}- {nested}"));
                        }
                        other => out.push_str(&format!("{pad}- {}\n", scalar(other))),
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", scalar(other))),
        }
    }
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

/// `pkg:oci/<name>@sha256%3A<hex>?repository_url=<registry>/<repository>[&tag=<tag>]`.
fn purl(image: &PinnedImage) -> String {
    let digest = image.digest().to_string().replace(':', "%3A");
    let name = crate::container::default_name(image.reference());
    match image.reference() {
        ImageReference::Registry(r) => {
            let tag = r.tag().map(|t| format!("&tag={t}")).unwrap_or_default();
            format!("pkg:oci/{name}@{digest}?repository_url={}/{}{tag}", r.registry(), r.repository())
        }
        // A local layout has no location another machine could fetch it from, and its path
        // depends on where it was built: only the digest (and the tag) name it.
        ImageReference::Layout(l) => match &l.tag {
            Some(tag) => format!("pkg:oci/{name}@{digest}?tag={tag}"),
            None => format!("pkg:oci/{name}@{digest}"),
        },
    }
}

/// Where an image can be downloaded from, for the SBOM: a registry reference pinned by
/// digest; nothing for a local OCI layout (its path is this machine's).
fn download_location(image: &PinnedImage) -> String {
    match image.reference() {
        ImageReference::Registry(_) => image.to_string(),
        ImageReference::Layout(_) => "NOASSERTION".into(),
    }
}

/// The LinuxKit YAML equivalent to the composition (`<name>-linuxkit.yml`). `linuxkit
/// build` reads images from registries (and its own cache), not from OCI layouts: when
/// the image has some, a comment at the top says so and how to push them.
pub fn linuxkit_yaml(composition: &Composition) -> String {
    let inputs = &composition.inputs;
    let packages = [&inputs.init, &inputs.onboot, &inputs.onshutdown, &inputs.services];
    let images =
        std::iter::once(&inputs.kernel.image).chain(packages.iter().flat_map(|list| list.iter().map(|p| &p.image)));
    let layouts = images.filter(|image| matches!(image.reference(), ImageReference::Layout(_))).count();
    let yaml = to_yaml(&linuxkit_document(composition));
    if layouts == 0 {
        return yaml;
    }
    format!(
        "# {layouts} image(s) below come from OCI layouts (oci-layout:...), which `linuxkit build`\n\
         # cannot read. Push each to a registry, e.g.\n\
         #   skopeo copy oci:<dir>:<tag> docker://<registry>/<name>:<tag>\n\
         # and name it there by the same digest (<registry>/<name>@sha256:...).\n{yaml}"
    )
}

/// The SPDX SBOM of image `name` as written: a function of the composition alone, so its
/// digest is known at plan time.
pub fn sbom_bytes(composition: &Composition, name: &str) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(&spdx_document(composition, name)).expect("JSON values serialise");
    bytes.push(b'\n');
    bytes
}

/// The SPDX 2.3 JSON SBOM of an image named `name`.
pub fn spdx_document(composition: &Composition, name: &str) -> Value {
    let hex = composition.content_hash.digest();
    let inputs = &composition.inputs;
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": name,
        "versionInfo": composition.content_hash,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "comment": "The machine image assembled by terraform-provider-resin; the version is its content hash.",
    })];
    let mut relationships = vec![
        json!({ "spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image" }),
    ];
    let mut add = |id: String, package_name: &str, image: &PinnedImage, role: &str| {
        packages.push(json!({
            "SPDXID": id,
            "name": package_name,
            "versionInfo": image.digest(),
            "downloadLocation": download_location(image),
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{ "algorithm": "SHA256", "checksumValue": image.digest().digest() }],
            "externalRefs": [{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl(image) }],
            "comment": role,
        }));
        relationships.push(
            json!({ "spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id }),
        );
    };
    add("SPDXRef-Kernel".into(), "kernel", &inputs.kernel.image, "kernel");
    for (section, list) in [
        ("init", &inputs.init),
        ("onboot", &inputs.onboot),
        ("onshutdown", &inputs.onshutdown),
        ("services", &inputs.services),
    ] {
        for (index, package) in list.iter().enumerate() {
            add(format!("SPDXRef-{section}-{index}"), &package.name, &package.image, &format!("{section}[{index}]"));
        }
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{name}-{hex}"),
        "documentNamespace": format!("https://spdx.resinstack.invalid/images/{name}-{hex}"),
        "creationInfo": {
            "created": "2017-04-18T16:30:00Z",
            "creators": [format!("Tool: terraform-provider-resin-{}", env!("CARGO_PKG_VERSION"))],
            "comment": "Created is fixed, not the build time, so the same image always gives the same document.",
        },
        "packages": packages,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_of_layout_images_says_linuxkit_cannot_read_them() {
        use crate::assemble::compose::compose;
        use crate::assemble::compose::tests::{inputs, package, A};
        use crate::container::ContainerOptions;
        let registry =
            linuxkit_yaml(&compose(inputs(vec![package(A, "a", ContainerOptions::default())], vec![])).unwrap());
        assert!(registry.starts_with("kernel:"), "{registry}");
        let digest = A.split_once('@').unwrap().1;
        let layout = package(&format!("oci-layout:./layout:a@{digest}"), "a", ContainerOptions::default());
        let yaml = linuxkit_yaml(&compose(inputs(vec![layout], vec![])).unwrap());
        assert!(yaml.starts_with("# 1 image(s) below come from OCI layouts"), "{yaml}");
        assert!(yaml.contains("#   skopeo copy oci:<dir>:<tag> docker://<registry>/<name>:<tag>\n"), "{yaml}");
        assert!(
            yaml.ends_with(
                &registry[registry.find("onboot:").unwrap()..].replace(A, &format!("oci-layout:./layout:a@{digest}"))
            ),
            "{yaml}"
        );
    }

    #[test]
    fn yaml_is_block_style_and_readable_back_as_data() {
        let value = json!({
            "services": [{ "image": "x@sha256:00", "name": "sshd", "capabilities": ["CAP_NET_ADMIN"], "binds.add": ["/a:/b"] }],
            "kernel": { "image": "k", "cmdline": "console=ttyS0 \"quoted\"" },
            "init": ["i1", "i2"],
        });
        let yaml = to_yaml(&value);
        assert_eq!(
            yaml,
            "kernel:\n  image: \"k\"\n  cmdline: \"console=ttyS0 \\\"quoted\\\"\"\ninit:\n  - \"i1\"\n  - \"i2\"\nservices:\n  - name: \"sshd\"\n    image: \"x@sha256:00\"\n    binds.add:\n      - \"/a:/b\"\n    capabilities:\n      - \"CAP_NET_ADMIN\"\n"
        );
    }

    #[test]
    fn files_state_every_mode_and_owner_and_parents_linuxkit_would_change() {
        use crate::assemble::compose::{compose, tests::inputs, FileSpec};
        let file = |path: &str, kind: FileKind, mode: Option<u32>| FileSpec {
            path: path.into(),
            kind,
            mode,
            uid: None,
            gid: None,
            optional: false,
            sensitive: false,
        };
        let mut image = inputs(vec![], vec![]);
        image.files = vec![
            file("/etc/motd", FileKind::Contents(b"hi".to_vec()), None),
            file("/etc/ssh/key", FileKind::Contents(b"k".to_vec()), Some(0o600)),
            file("/usr/local/bin/tool", FileKind::Symlink("/bin/true".into()), None),
            file("/var/lib/data", FileKind::Directory, Some(0o700)),
        ];
        let document = linuxkit_document(&compose(image).unwrap());
        let files: Vec<String> = document["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("{} {} {}", f["path"].as_str().unwrap(), f["mode"].as_str().unwrap(), f["uid"]))
            .collect();
        assert_eq!(
            files,
            [
                "etc/motd 0644 0",
                "etc/ssh 0755 0",
                "etc/ssh/key 0600 0",
                "usr 0755 0",
                "usr/local 0755 0",
                "usr/local/bin 0755 0",
                "usr/local/bin/tool 0777 0",
                "var 0755 0",
                "var/lib 0755 0",
                "var/lib/data 0700 0",
            ]
        );
        assert_eq!(document["files"][1]["directory"], json!(true));
    }

    #[test]
    fn linuxkit_parents_get_execute_bits_where_the_entry_has_any() {
        assert_eq!(linuxkit_parent_mode(0o644), 0o755);
        assert_eq!(linuxkit_parent_mode(0o600), 0o700);
        assert_eq!(linuxkit_parent_mode(0o777), 0o777);
        assert_eq!(linuxkit_parent_mode(0o640), 0o750);
    }

    #[test]
    fn purls_name_the_image() {
        let hex = "8b0f0ea7fbdcbc3bd8e0c1e1d3a2b1f1e1d2c3b4a5968778695a4b3c2d1e0f00";
        for (image, location) in [
            (format!("linuxkit/init@sha256:{hex}"), "docker.io/linuxkit/init"),
            (format!("linuxkit/init:v1@sha256:{hex}"), "docker.io/linuxkit/init&tag=v1"),
        ] {
            assert_eq!(
                purl(&image.parse().unwrap()),
                format!("pkg:oci/init@sha256%3A{hex}?repository_url={location}"),
                "{image}"
            );
        }
        // A layout is named by its digest and tag, wherever it is.
        for layout in ["./l/init", "/srv/ci/l/init", "../l/init/"] {
            let image: PinnedImage = format!("oci-layout:{layout}@sha256:{hex}").parse().unwrap();
            assert_eq!(purl(&image), format!("pkg:oci/init@sha256%3A{hex}"));
            assert_eq!(download_location(&image), "NOASSERTION");
        }
        let tagged: PinnedImage = format!("oci-layout:/srv/l:sshd@sha256:{hex}").parse().unwrap();
        assert_eq!(purl(&tagged), format!("pkg:oci/sshd@sha256%3A{hex}?tag=sshd"));
    }
}
