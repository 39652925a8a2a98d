//! The `config.json` (OCI runtime spec) and `runtime.json` of a container bundle, from
//! the package's options, its image label and its image config, with LinuxKit's rules:
//!
//! * precedence: resource attribute > `org.mobyproject.config` label > image config >
//!   default; only `capabilities_add` and `binds_add` extend the label's list;
//! * args = command, else Entrypoint + Cmd; env replaces; cwd, else WorkingDir, else `/`;
//! * capabilities: `effective` in the given order (duplicates dropped), `bounding`,
//!   `inheritable`, `permitted` the sorted union with the ambient set; `all`/`none`;
//! * namespaces: a new mount namespace always, a new pid namespace unless `host`,
//!   network/ipc/uts/user shared unless `new` (or `none` for net) or a path to join;
//! * mounts: defaults, then tmpfs, then binds, then mounts, later winning per destination,
//!   sorted by destination; `readonly` adds `ro` to `/dev` and `/sys`;
//! * uids and gids given as container names resolve through the image's id map.
//!
//! Where LinuxKit is wrong resin differs, and says so: duplicate capabilities are dropped,
//! and a bind from a volume is an error (resin images have no volumes) instead of a mount
//! that fails at boot. The keys are LinuxKit's (runtime spec 1.2.1; what is empty or false
//! is left out, as Go's `omitempty` does); output is JSON with sorted keys, two-space
//! indented.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use super::validate::{inferred_mount_type, parse_rlimit_value, ALL_CAPABILITIES};
use super::{ContainerOptions, Mount, Runtime};
use crate::oci::manifest::ContainerConfig;

/// The OCI runtime spec version written into `config.json`.
pub const OCI_VERSION: &str = "1.2.1";

/// What a bundle's JSON documents depend on besides the options.
pub struct BundleContext<'a> {
    /// Bundle directory, relative to `/` (`containers/onboot/000-sysctl`).
    pub path: &'a str,
    /// Where the image's files are, relative to `/`: `<path>/lower` (or `<path>/rootfs`
    /// when read-only), or another bundle's when the same image was extracted there.
    pub image_root: &'a str,
    /// Container name to allocated id.
    pub ids: &'a BTreeMap<String, u32>,
}

/// Merges the resource's options over the label's (see the module doc).
pub fn merge(resource: &ContainerOptions, label: &ContainerOptions) -> ContainerOptions {
    fn pick<T: Clone>(resource: &Option<T>, label: &Option<T>) -> Option<T> {
        resource.clone().or_else(|| label.clone())
    }
    fn extended(
        resource: &Option<Vec<String>>,
        label: &Option<Vec<String>>,
        added: &Option<Vec<String>>,
    ) -> Option<Vec<String>> {
        if resource.is_some() {
            return resource.clone();
        }
        match (label, added) {
            (None, None) => None,
            _ => Some(label.iter().flatten().chain(added.iter().flatten()).cloned().collect()),
        }
    }
    let runtime = match (&resource.runtime, &label.runtime) {
        (None, None) => None,
        (r, l) => {
            let (r, l) = (r.clone().unwrap_or_default(), l.clone().unwrap_or_default());
            Some(Runtime {
                cgroups: pick(&r.cgroups, &l.cgroups),
                mounts: pick(&r.mounts, &l.mounts),
                mkdir: pick(&r.mkdir, &l.mkdir),
                interfaces: pick(&r.interfaces, &l.interfaces),
                bind_ns: pick(&r.bind_ns, &l.bind_ns),
                namespace: pick(&r.namespace, &l.namespace),
            })
        }
    };
    ContainerOptions {
        capabilities: extended(&resource.capabilities, &label.capabilities, &resource.capabilities_add),
        capabilities_add: None,
        ambient: pick(&resource.ambient, &label.ambient),
        binds: extended(&resource.binds, &label.binds, &resource.binds_add),
        binds_add: None,
        mounts: pick(&resource.mounts, &label.mounts),
        tmpfs: pick(&resource.tmpfs, &label.tmpfs),
        command: pick(&resource.command, &label.command),
        env: pick(&resource.env, &label.env),
        cwd: pick(&resource.cwd, &label.cwd),
        net: pick(&resource.net, &label.net),
        pid: pick(&resource.pid, &label.pid),
        ipc: pick(&resource.ipc, &label.ipc),
        uts: pick(&resource.uts, &label.uts),
        userns: pick(&resource.userns, &label.userns),
        readonly: pick(&resource.readonly, &label.readonly),
        masked_paths: pick(&resource.masked_paths, &label.masked_paths),
        readonly_paths: pick(&resource.readonly_paths, &label.readonly_paths),
        uid: pick(&resource.uid, &label.uid),
        gid: pick(&resource.gid, &label.gid),
        additional_gids: pick(&resource.additional_gids, &label.additional_gids),
        no_new_privileges: pick(&resource.no_new_privileges, &label.no_new_privileges),
        hostname: pick(&resource.hostname, &label.hostname),
        oom_score_adj: pick(&resource.oom_score_adj, &label.oom_score_adj),
        rootfs_propagation: pick(&resource.rootfs_propagation, &label.rootfs_propagation),
        cgroups_path: pick(&resource.cgroups_path, &label.cgroups_path),
        devices: pick(&resource.devices, &label.devices),
        resources: pick(&resource.resources, &label.resources),
        sysctl: pick(&resource.sysctl, &label.sysctl),
        rlimits: pick(&resource.rlimits, &label.rlimits),
        annotations: pick(&resource.annotations, &label.annotations),
        runtime,
    }
}

/// Resolves a uid or gid: a number, `root`, or a container name of this image.
pub fn resolve_id(id: &str, ids: &BTreeMap<String, u32>) -> Result<u32> {
    if id.is_empty() || id == "root" {
        return Ok(0);
    }
    if let Ok(number) = id.parse() {
        return Ok(number);
    }
    ids.get(id).copied().with_context(|| format!("no container named {id:?} to take the id of"))
}

fn capability_list(caps: &Option<Vec<String>>) -> Vec<String> {
    let caps = caps.clone().unwrap_or_default();
    if caps.len() == 1 && caps[0].eq_ignore_ascii_case("all") {
        return ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    }
    if caps.len() == 1 && caps[0].eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    let mut seen = BTreeSet::new();
    caps.into_iter().filter(|c| seen.insert(c.clone())).collect()
}

fn mount_json(destination: &str, mount_type: Option<&str>, source: Option<&str>, options: &[String]) -> Value {
    let mut mount = Map::new();
    mount.insert("destination".into(), json!(destination));
    if let Some(t) = mount_type {
        mount.insert("type".into(), json!(t));
    }
    if let Some(s) = source {
        mount.insert("source".into(), json!(s));
    }
    if !options.is_empty() {
        mount.insert("options".into(), json!(options));
    }
    Value::Object(mount)
}

fn user_mount(mount: &Mount) -> Result<Value> {
    let mount_type = inferred_mount_type(mount)
        .with_context(|| format!("mount for destination {} is missing its type", mount.destination))?;
    let source = mount.source.clone().unwrap_or_else(|| mount_type.clone());
    Ok(mount_json(&mount.destination, Some(&mount_type), Some(&source), &mount.options))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn mounts(options: &ContainerOptions, readonly: bool) -> Result<Vec<Value>> {
    let mut by_destination: BTreeMap<String, Value> = BTreeMap::new();
    let with_ro = |mut base: Vec<String>| {
        if readonly {
            base.push("ro".into());
        }
        base
    };
    for (destination, mount_type, source, options) in [
        ("/proc", "proc", "proc", strings(&["nosuid", "nodev", "noexec", "relatime"])),
        ("/dev", "tmpfs", "tmpfs", with_ro(strings(&["nosuid", "strictatime", "mode=755", "size=65536k"]))),
        ("/dev/pts", "devpts", "devpts", strings(&["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"])),
        ("/sys", "sysfs", "sysfs", with_ro(strings(&["nosuid", "noexec", "nodev"]))),
        ("/sys/fs/cgroup", "cgroup", "cgroup", strings(&["nosuid", "noexec", "nodev", "relatime", "ro"])),
    ] {
        by_destination.insert(destination.into(), mount_json(destination, Some(mount_type), Some(source), &options));
    }
    for tmpfs in options.tmpfs.iter().flatten() {
        let (destination, opts) = match tmpfs.split_once(':') {
            Some((d, o)) => (d, o.split(',').map(String::from).collect()),
            None => (tmpfs.as_str(), Vec::new()),
        };
        by_destination.insert(destination.into(), mount_json(destination, Some("tmpfs"), Some("tmpfs"), &opts));
    }
    for bind in options.binds.iter().flatten() {
        let parts: Vec<&str> = bind.split(':').collect();
        let (source, destination, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, strings(&["rw", "rbind", "rshared"])),
            [s, d, o] => (*s, *d, o.split(',').map(String::from).chain(["rbind".to_string()]).collect()),
            _ => bail!("malformed bind {bind:?}"),
        };
        if !source.starts_with('/') {
            // The package's own binds are checked at plan: this one is the image label's.
            bail!("bind {bind:?} of the image's org.mobyproject.config label names a volume ({source}); resin images have no volumes: set the package's binds to replace the label's");
        }
        by_destination.insert(destination.into(), mount_json(destination, Some("bind"), Some(source), &opts));
    }
    for mount in options.mounts.iter().flatten() {
        by_destination.insert(mount.destination.clone(), user_mount(mount)?);
    }
    Ok(by_destination.into_values().collect())
}

fn namespaces(options: &ContainerOptions) -> Vec<Value> {
    let mut namespaces = Vec::new();
    let mut add = |kind: &str, mode: Option<&str>, default_new: bool, none_is_new: bool| {
        let new = |m: &str| m == "new" || (none_is_new && m == "none");
        match mode {
            None if default_new => namespaces.push(json!({ "type": kind })),
            None => {}
            Some("host" | "root") => {}
            Some(m) if new(m) => namespaces.push(json!({ "type": kind })),
            Some(path) => namespaces.push(json!({ "type": kind, "path": path })),
        }
    };
    add("network", options.net.as_deref(), false, true);
    add("ipc", options.ipc.as_deref(), false, false);
    add("uts", options.uts.as_deref(), false, false);
    add("pid", options.pid.as_deref(), true, false);
    add("user", options.userns.as_deref(), false, false);
    namespaces.push(json!({ "type": "mount" }));
    namespaces
}

fn resources(options: &ContainerOptions) -> Result<(Value, Vec<Value>)> {
    let mut resources = Map::new();
    let mut cgroup_devices = Vec::new();
    let mut devices = Vec::new();
    for device in options.devices.iter().flatten() {
        if device.path == "all" {
            cgroup_devices.push(json!({ "allow": true, "type": device.device_type, "access": "rwm" }));
            continue;
        }
        let mode = match &device.mode {
            Some(mode) => u32::from_str_radix(mode, 8).with_context(|| format!("device mode {mode:?} is not octal"))?,
            None => bail!("device {} needs a mode", device.path),
        };
        let (major, minor) = (device.major.unwrap_or(0), device.minor.unwrap_or(0));
        devices.push(json!({ "path": device.path, "type": device.device_type, "major": major, "minor": minor, "fileMode": mode }));
        cgroup_devices.push(
            json!({ "allow": true, "type": device.device_type, "major": major, "minor": minor, "access": "rwm" }),
        );
    }
    if let Some(r) = &options.resources {
        if let Some(m) = &r.memory {
            let mut memory = Map::new();
            for (key, value) in
                [("limit", m.limit), ("reservation", m.reservation), ("swap", m.swap), ("swappiness", m.swappiness)]
            {
                if let Some(v) = value {
                    memory.insert(key.into(), json!(v));
                }
            }
            if let Some(v) = m.disable_oom_killer {
                memory.insert("disableOOMKiller".into(), json!(v));
            }
            resources.insert("memory".into(), Value::Object(memory));
        }
        if let Some(c) = &r.cpu {
            let mut cpu = Map::new();
            for (key, value) in [("shares", c.shares), ("quota", c.quota), ("period", c.period)] {
                if let Some(v) = value {
                    cpu.insert(key.into(), json!(v));
                }
            }
            for (key, value) in [("cpus", &c.cpus), ("mems", &c.mems)] {
                if let Some(v) = value {
                    cpu.insert(key.into(), json!(v));
                }
            }
            resources.insert("cpu".into(), Value::Object(cpu));
        }
        if let Some(limit) = r.pids_limit {
            resources.insert("pids".into(), json!({ "limit": limit }));
        }
        if let Some(weight) = r.block_io_weight {
            resources.insert("blockIO".into(), json!({ "weight": weight }));
        }
    }
    if !cgroup_devices.is_empty() {
        resources.insert("devices".into(), Value::Array(cgroup_devices));
    }
    Ok((Value::Object(resources), devices))
}

fn rlimits(options: &ContainerOptions) -> Result<Vec<Value>> {
    options
        .rlimits
        .iter()
        .flatten()
        .map(|rlimit| {
            let parts: Vec<&str> = rlimit.split(',').collect();
            let [name, soft, hard] = parts.as_slice() else { bail!("malformed rlimit {rlimit:?}") };
            let upper = name.trim().to_ascii_uppercase();
            let kind = if upper.starts_with("RLIMIT_") { upper } else { format!("RLIMIT_{upper}") };
            let value = |v: &str| parse_rlimit_value(v).with_context(|| format!("malformed rlimit {rlimit:?}"));
            Ok(json!({ "type": kind, "soft": value(soft)?, "hard": value(hard)? }))
        })
        .collect()
}

/// The `config.json` of a container: `options` already merged with the label.
pub fn config_json(options: &ContainerOptions, image: &ContainerConfig, context: &BundleContext) -> Result<Value> {
    let readonly = options.readonly.unwrap_or(false);
    let args = match &options.command {
        Some(command) => command.clone(),
        None => image.entrypoint.iter().flatten().chain(image.cmd.iter().flatten()).cloned().collect(),
    };
    let env = options.env.clone().or_else(|| image.env.clone()).unwrap_or_default();
    let cwd = options
        .cwd
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let caps = capability_list(&options.capabilities);
    let ambient = capability_list(&options.ambient);
    let union: BTreeSet<String> = caps.iter().chain(ambient.iter()).cloned().collect();
    let union: Vec<String> = union.into_iter().collect();
    // Keys as LinuxKit writes them: the runtime spec's Go types, whose empty lists, maps,
    // strings and false booleans are left out (`omitempty`).
    fn put(map: &mut Map<String, Value>, key: &str, value: Value) {
        let empty = match &value {
            Value::Null | Value::Bool(false) => true,
            Value::Array(items) => items.is_empty(),
            Value::Object(entries) => entries.is_empty(),
            Value::String(text) => text.is_empty(),
            Value::Number(_) | Value::Bool(true) => false,
        };
        if !empty {
            map.insert(key.into(), value);
        }
    }
    let mut user = Map::new();
    user.insert("uid".into(), json!(resolve_id(options.uid.as_deref().unwrap_or("0"), context.ids).context("uid")?));
    user.insert("gid".into(), json!(resolve_id(options.gid.as_deref().unwrap_or("0"), context.ids).context("gid")?));
    if let Some(gids) = &options.additional_gids {
        let gids: Vec<u32> =
            gids.iter().map(|g| resolve_id(g, context.ids)).collect::<Result<_>>().context("additional_gids")?;
        put(&mut user, "additionalGids", json!(gids));
    }
    let mut capabilities = Map::new();
    for (key, list) in [
        ("bounding", &union),
        ("effective", &caps),
        ("inheritable", &union),
        ("permitted", &union),
        ("ambient", &ambient),
    ] {
        put(&mut capabilities, key, json!(list));
    }
    let mut process = Map::new();
    process.insert("user".into(), Value::Object(user));
    put(&mut process, "args", json!(args));
    put(&mut process, "env", json!(env));
    process.insert("cwd".into(), json!(cwd));
    process.insert("capabilities".into(), Value::Object(capabilities));
    put(&mut process, "rlimits", Value::Array(rlimits(options)?));
    put(&mut process, "noNewPrivileges", json!(options.no_new_privileges.unwrap_or(false)));
    if let Some(adj) = options.oom_score_adj {
        process.insert("oomScoreAdj".into(), json!(adj));
    }
    let (resources, devices) = resources(options)?;
    let mut linux = Map::new();
    linux.insert("namespaces".into(), Value::Array(namespaces(options)));
    linux.insert("resources".into(), resources);
    put(&mut linux, "devices", Value::Array(devices));
    put(&mut linux, "sysctl", json!(options.sysctl.clone().unwrap_or_default()));
    put(&mut linux, "maskedPaths", json!(options.masked_paths.clone().unwrap_or_default()));
    put(&mut linux, "readonlyPaths", json!(options.readonly_paths.clone().unwrap_or_default()));
    put(&mut linux, "cgroupsPath", json!(options.cgroups_path.clone().unwrap_or_default()));
    put(&mut linux, "rootfsPropagation", json!(options.rootfs_propagation.clone().unwrap_or_default()));
    let mut root = Map::new();
    root.insert("path".into(), json!("rootfs"));
    put(&mut root, "readonly", json!(readonly));
    let mut config = Map::new();
    config.insert("ociVersion".into(), json!(OCI_VERSION));
    config.insert("process".into(), Value::Object(process));
    config.insert("root".into(), Value::Object(root));
    put(&mut config, "hostname", json!(options.hostname.clone().unwrap_or_default()));
    config.insert("mounts".into(), Value::Array(mounts(options, readonly)?));
    config.insert("linux".into(), Value::Object(linux));
    put(&mut config, "annotations", json!(options.annotations.clone().unwrap_or_default()));
    Ok(Value::Object(config))
}

/// The `runtime.json` of a container: the rootfs mounts first (tmpfs, private remount and
/// overlay; or a bind for a read-only image), then the package's runtime settings.
pub fn runtime_json(options: &ContainerOptions, context: &BundleContext) -> Result<Value> {
    let bundle = context.path;
    let mut runtime_mounts = if options.readonly.unwrap_or(false) {
        vec![mount_json(
            &format!("/{bundle}/rootfs"),
            None,
            Some(&format!("/{}", context.image_root)),
            &strings(&["bind"]),
        )]
    } else {
        vec![
            mount_json(&format!("/{bundle}/tmp"), Some("tmpfs"), Some("tmpfs"), &[]),
            mount_json(&format!("/{bundle}/tmp"), None, None, &strings(&["remount", "private"])),
            mount_json(
                &format!("/{bundle}/rootfs"),
                Some("overlay"),
                Some("overlay"),
                &[
                    format!("lowerdir=/{}", context.image_root),
                    format!("upperdir=/{bundle}/tmp/upper"),
                    format!("workdir=/{bundle}/tmp/work"),
                ],
            ),
        ]
    };
    let runtime = options.runtime.clone().unwrap_or_default();
    for mount in runtime.mounts.iter().flatten() {
        let mount_type = inferred_mount_type(mount);
        let source = mount.source.clone().or_else(|| mount_type.clone());
        runtime_mounts.push(mount_json(&mount.destination, mount_type.as_deref(), source.as_deref(), &mount.options));
    }
    let interfaces: Vec<Value> = runtime
        .interfaces
        .iter()
        .flatten()
        .map(|i| {
            let mut interface = Map::new();
            interface.insert("name".into(), json!(i.name));
            if let Some(add) = &i.add {
                interface.insert("add".into(), json!(add));
            }
            if let Some(peer) = &i.peer {
                interface.insert("peer".into(), json!(peer));
            }
            interface.insert("createInRoot".into(), json!(i.create_in_root));
            Value::Object(interface)
        })
        .collect();
    let bind_ns = runtime.bind_ns.unwrap_or_default();
    Ok(json!({
        "cgroups": runtime.cgroups.unwrap_or_default(),
        "mounts": runtime_mounts,
        "mkdir": runtime.mkdir.unwrap_or_default(),
        "interfaces": interfaces,
        "bindNS": {
            "cgroup": bind_ns.cgroup.unwrap_or_default(),
            "ipc": bind_ns.ipc.unwrap_or_default(),
            "mnt": bind_ns.mnt.unwrap_or_default(),
            "net": bind_ns.net.unwrap_or_default(),
            "pid": bind_ns.pid.unwrap_or_default(),
            "user": bind_ns.user.unwrap_or_default(),
            "uts": bind_ns.uts.unwrap_or_default(),
        },
        "namespace": runtime.namespace.unwrap_or_default(),
    }))
}

/// The bytes written for a JSON document: sorted keys, two-space indent, final newline.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("JSON values serialise");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::label::parse_label;
    use crate::container::Device;

    fn ids() -> BTreeMap<String, u32> {
        BTreeMap::from([("getty".to_string(), 101), ("sshd".to_string(), 102)])
    }

    fn generate(resource: ContainerOptions, label: &str, image: ContainerConfig) -> (Value, Value) {
        let ids = ids();
        let context =
            BundleContext { path: "containers/services/x", image_root: "containers/services/x/lower", ids: &ids };
        let merged = merge(&resource, &parse_label(label).unwrap());
        (config_json(&merged, &image, &context).unwrap(), runtime_json(&merged, &context).unwrap())
    }

    fn s(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    fn image() -> ContainerConfig {
        ContainerConfig {
            entrypoint: s(&["/bin/entry"]),
            cmd: s(&["--flag"]),
            env: s(&["PATH=/bin", "FROM=image"]),
            working_dir: Some("/work".into()),
            labels: None,
        }
    }

    #[test]
    fn process_precedence() {
        let cases: Vec<(ContainerOptions, &str, &str, Value)> = vec![
            (ContainerOptions::default(), "{}", "/process/args", json!(["/bin/entry", "--flag"])),
            (ContainerOptions::default(), r#"{"command":["/label"]}"#, "/process/args", json!(["/label"])),
            (
                ContainerOptions { command: s(&["/attr"]), ..Default::default() },
                r#"{"command":["/label"]}"#,
                "/process/args",
                json!(["/attr"]),
            ),
            (ContainerOptions::default(), "{}", "/process/env", json!(["PATH=/bin", "FROM=image"])),
            (
                ContainerOptions { env: s(&["ONLY=attr"]), ..Default::default() },
                r#"{"env":["L=1"]}"#,
                "/process/env",
                json!(["ONLY=attr"]),
            ),
            (ContainerOptions::default(), "{}", "/process/cwd", json!("/work")),
            (ContainerOptions::default(), r#"{"cwd":"/label"}"#, "/process/cwd", json!("/label")),
            (ContainerOptions::default(), "{}", "/process/user", json!({"uid": 0, "gid": 0})),
            (
                ContainerOptions {
                    uid: Some("getty".into()),
                    gid: Some("1000".into()),
                    additional_gids: s(&["sshd", "5"]),
                    ..Default::default()
                },
                "{}",
                "/process/user",
                json!({"uid": 101, "gid": 1000, "additionalGids": [102, 5]}),
            ),
            (ContainerOptions::default(), "{}", "/root", json!({"path": "rootfs"})),
            (ContainerOptions { readonly: Some(true), ..Default::default() }, "{}", "/root/readonly", json!(true)),
            (
                ContainerOptions { no_new_privileges: Some(true), ..Default::default() },
                "{}",
                "/process/noNewPrivileges",
                json!(true),
            ),
            (
                ContainerOptions { oom_score_adj: Some(-500), ..Default::default() },
                "{}",
                "/process/oomScoreAdj",
                json!(-500),
            ),
            (ContainerOptions::default(), r#"{"hostname":"box"}"#, "/hostname", json!("box")),
            (
                ContainerOptions { masked_paths: s(&["/proc/kcore"]), ..Default::default() },
                "{}",
                "/linux/maskedPaths",
                json!(["/proc/kcore"]),
            ),
        ];
        for (resource, label, pointer, expected) in cases {
            let (config, _) = generate(resource.clone(), label, image());
            assert_eq!(config.pointer(pointer), Some(&expected), "{pointer} with {resource:?} and label {label}");
        }
        let (config, _) = generate(ContainerOptions::default(), "{}", ContainerConfig::default());
        assert_eq!(config.pointer("/process/cwd"), Some(&json!("/")));
        assert_eq!(config.pointer("/process/args"), None, "no args: left out, as LinuxKit does");
    }

    #[test]
    fn empty_settings_are_left_out_as_linuxkit_writes_them() {
        // What LinuxKit's ConfigToOCI gives for an image with no settings, serialised by
        // the runtime spec's Go types (`omitempty` on every list, map, string and bool
        // shown missing here); keys compared one for one.
        let (config, _) = generate(ContainerOptions::default(), "{}", image());
        let expected = json!({
            "ociVersion": "1.2.1",
            "process": {
                "user": { "uid": 0, "gid": 0 },
                "args": ["/bin/entry", "--flag"],
                "env": ["PATH=/bin", "FROM=image"],
                "cwd": "/work",
                "capabilities": {},
            },
            "root": { "path": "rootfs" },
            "mounts": [
                { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
                { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
                { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "nodev", "noexec", "relatime"] },
                { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev"] },
                { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] },
            ],
            "linux": {
                "resources": {},
                "namespaces": [{ "type": "pid" }, { "type": "mount" }],
            },
        });
        assert_eq!(config, expected);
    }

    #[test]
    fn capabilities() {
        let cases: Vec<(ContainerOptions, &str, Value)> = vec![
            (ContainerOptions::default(), "{}", json!({})),
            (
                ContainerOptions {
                    capabilities: s(&["CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_SYS_ADMIN"]),
                    ambient: s(&["CAP_NET_RAW"]),
                    ..Default::default()
                },
                "{}",
                json!({"effective": ["CAP_SYS_ADMIN", "CAP_CHOWN"], "ambient": ["CAP_NET_RAW"],
                       "bounding": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"], "inheritable": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
                       "permitted": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]}),
            ),
            (
                ContainerOptions { capabilities_add: s(&["CAP_CHOWN"]), ..Default::default() },
                r#"{"capabilities":["CAP_KILL"]}"#,
                json!({"effective": ["CAP_KILL", "CAP_CHOWN"], "bounding": ["CAP_CHOWN", "CAP_KILL"],
                       "inheritable": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"]}),
            ),
            (
                ContainerOptions {
                    capabilities: s(&["CAP_CHOWN"]),
                    capabilities_add: s(&["CAP_BPF"]),
                    ..Default::default()
                },
                r#"{"capabilities":["CAP_KILL"]}"#,
                json!({"effective": ["CAP_CHOWN"], "bounding": ["CAP_CHOWN"], "inheritable": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}),
            ),
            (
                ContainerOptions { capabilities: s(&["none"]), ..Default::default() },
                r#"{"capabilities":["CAP_KILL"]}"#,
                json!({}),
            ),
        ];
        for (resource, label, expected) in cases {
            let (config, _) = generate(resource.clone(), label, image());
            assert_eq!(config.pointer("/process/capabilities"), Some(&expected), "{resource:?} / {label}");
        }
        let (config, _) = generate(ContainerOptions { capabilities: s(&["all"]), ..Default::default() }, "{}", image());
        assert_eq!(
            config.pointer("/process/capabilities/effective").unwrap().as_array().unwrap().len(),
            ALL_CAPABILITIES.len()
        );
    }

    #[test]
    fn namespaces_follow_linuxkit() {
        let cases: Vec<(ContainerOptions, Value)> = vec![
            (ContainerOptions::default(), json!([{"type": "pid"}, {"type": "mount"}])),
            (ContainerOptions { pid: Some("host".into()), ..Default::default() }, json!([{"type": "mount"}])),
            (
                ContainerOptions { net: Some("new".into()), uts: Some("new".into()), ..Default::default() },
                json!([{"type": "network"}, {"type": "uts"}, {"type": "pid"}, {"type": "mount"}]),
            ),
            (
                ContainerOptions { net: Some("none".into()), ..Default::default() },
                json!([{"type": "network"}, {"type": "pid"}, {"type": "mount"}]),
            ),
            (
                ContainerOptions {
                    net: Some("/run/netns/x".into()),
                    ipc: Some("host".into()),
                    userns: Some("new".into()),
                    ..Default::default()
                },
                json!([{"type": "network", "path": "/run/netns/x"}, {"type": "pid"}, {"type": "user"}, {"type": "mount"}]),
            ),
        ];
        for (resource, expected) in cases {
            let (config, _) = generate(resource.clone(), "{}", image());
            assert_eq!(config.pointer("/linux/namespaces"), Some(&expected), "{resource:?}");
        }
    }

    #[test]
    fn mounts_merge_by_destination_and_sort() {
        let resource = ContainerOptions {
            tmpfs: s(&["/run:size=1m", "/var"]),
            binds: s(&["/etc/resolv.conf:/etc/resolv.conf", "/var/lib:/var:ro"]),
            mounts: Some(vec![Mount {
                destination: "/run".into(),
                mount_type: Some("bind".into()),
                source: Some("/host/run".into()),
                options: vec!["rbind".into()],
            }]),
            readonly: Some(true),
            ..Default::default()
        };
        let (config, _) = generate(resource, "{}", image());
        let mounts = config["mounts"].as_array().unwrap();
        let destinations: Vec<&str> = mounts.iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert_eq!(
            destinations,
            ["/dev", "/dev/pts", "/etc/resolv.conf", "/proc", "/run", "/sys", "/sys/fs/cgroup", "/var"]
        );
        let by = |d: &str| mounts.iter().find(|m| m["destination"] == d).unwrap().clone();
        assert_eq!(
            by("/run"),
            json!({"destination": "/run", "type": "bind", "source": "/host/run", "options": ["rbind"]}),
            "mounts beat tmpfs"
        );
        assert_eq!(
            by("/var"),
            json!({"destination": "/var", "type": "bind", "source": "/var/lib", "options": ["ro", "rbind"]}),
            "binds beat tmpfs"
        );
        assert_eq!(by("/etc/resolv.conf")["options"], json!(["rw", "rbind", "rshared"]));
        assert_eq!(by("/dev")["options"], json!(["nosuid", "strictatime", "mode=755", "size=65536k", "ro"]));
        assert_eq!(by("/sys")["options"], json!(["nosuid", "noexec", "nodev", "ro"]));
        assert_eq!(config["root"], json!({"path": "rootfs", "readonly": true}));
        let ids = ids();
        let context = BundleContext { path: "b", image_root: "b/rootfs", ids: &ids };
        let err =
            config_json(&ContainerOptions { binds: s(&["data:/data"]), ..Default::default() }, &image(), &context)
                .unwrap_err();
        assert!(err.to_string().contains("names a volume"), "{err}");
    }

    #[test]
    fn devices_rlimits_sysctl_resources() {
        let resource = ContainerOptions {
            devices: Some(vec![
                Device {
                    path: "/dev/console".into(),
                    device_type: "c".into(),
                    major: Some(5),
                    minor: Some(1),
                    mode: Some("0666".into()),
                },
                Device { path: "all".into(), device_type: "b".into(), ..Default::default() },
            ]),
            rlimits: s(&["nofile,1024,unlimited", "RLIMIT_CORE,0,0"]),
            sysctl: Some(BTreeMap::from([("net.ipv4.ip_forward".to_string(), "1".to_string())])),
            ..Default::default()
        };
        let (config, _) =
            generate(resource, r#"{"resources":{"memory":{"limit":1048576},"pids":{"limit":10}}}"#, image());
        assert_eq!(
            config.pointer("/linux/devices"),
            Some(&json!([{"path": "/dev/console", "type": "c", "major": 5, "minor": 1, "fileMode": 438}]))
        );
        assert_eq!(
            config.pointer("/linux/resources"),
            Some(&json!({"memory": {"limit": 1048576}, "pids": {"limit": 10}, "devices": [
                {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
                {"allow": true, "type": "b", "access": "rwm"}]}))
        );
        assert_eq!(
            config.pointer("/process/rlimits"),
            Some(
                &json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": u64::MAX}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}])
            )
        );
        assert_eq!(config.pointer("/linux/sysctl/net.ipv4.ip_forward"), Some(&json!("1")));
    }

    #[test]
    fn runtime_json_starts_with_the_rootfs_mounts() {
        let resource = ContainerOptions {
            runtime: Some(Runtime { mkdir: s(&["/var/lib/x"]), namespace: Some("ns".into()), ..Default::default() }),
            ..Default::default()
        };
        let (_, runtime) = generate(resource, r#"{"runtime":{"cgroups":["app"],"mkdir":["/ignored"]}}"#, image());
        assert_eq!(
            runtime["mounts"],
            json!([
                {"destination": "/containers/services/x/tmp", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/containers/services/x/tmp", "options": ["remount", "private"]},
                {"destination": "/containers/services/x/rootfs", "type": "overlay", "source": "overlay", "options": [
                    "lowerdir=/containers/services/x/lower", "upperdir=/containers/services/x/tmp/upper", "workdir=/containers/services/x/tmp/work"]}
            ])
        );
        assert_eq!(runtime["mkdir"], json!(["/var/lib/x"]), "a set attribute replaces the label's list");
        assert_eq!(runtime["cgroups"], json!(["app"]), "unset attributes come from the label");
        assert_eq!(runtime["namespace"], json!("ns"));
        assert_eq!(runtime["bindNS"]["net"], json!(""));

        let ids = ids();
        let context =
            BundleContext { path: "containers/onboot/001-b", image_root: "containers/onboot/000-a/rootfs", ids: &ids };
        let readonly = ContainerOptions { readonly: Some(true), ..Default::default() };
        let runtime = runtime_json(&readonly, &context).unwrap();
        assert_eq!(
            runtime["mounts"],
            json!([{"destination": "/containers/onboot/001-b/rootfs", "source": "/containers/onboot/000-a/rootfs", "options": ["bind"]}])
        );
    }

    #[test]
    fn unknown_container_names_are_errors() {
        let ids = ids();
        let context = BundleContext { path: "b", image_root: "b/lower", ids: &ids };
        let err = config_json(
            &ContainerOptions { uid: Some("nobody-here".into()), ..Default::default() },
            &image(),
            &context,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("no container named \"nobody-here\""), "{err:#}");
    }

    #[test]
    fn output_is_canonical() {
        let options =
            ContainerOptions { annotations: Some(BTreeMap::from([("a".into(), "b".into())])), ..Default::default() };
        let (config, _) = generate(options, "{}", image());
        let text = String::from_utf8(to_bytes(&config)).unwrap();
        assert!(text.find("\"annotations\"").unwrap() < text.find("\"linux\"").unwrap());
        assert_eq!(to_bytes(&config), to_bytes(&serde_json::from_str::<Value>(&text).unwrap()));
    }
}
