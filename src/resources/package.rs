//! `resin_package`: one OCI image plus how it runs in the machine image. Every container
//! option is a typed attribute or nested block (never an opaque YAML string) so policy
//! tools can inspect it; they map one to one onto [`ContainerOptions`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use super::image_backed::{ImageFields, ImageKind};
use super::schema::{attribute, image_attributes, list_block, optional_block, resource_schema, string_map, strings};
use crate::assemble::{ImageDefaults, PackageSpec, SPEC_VERSION};
use crate::container::{
    self, BindNamespaces, ContainerOptions, CpuResources, Device, Interface, MemoryResources, Mount, Resources, Runtime,
};
use crate::oci::platform::Platform;
use crate::oci::reference::{ImageReference, PinnedImage};

pub struct Package;

type Strings = Value<Vec<Value<String>>>;
type StringMap = Value<BTreeMap<String, Value<String>>>;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PackageState {
    id: Value<String>,
    image: Value<String>,
    platform: Value<String>,
    digest: Value<String>,
    content_hash: Value<String>,
    spec: Value<String>,
    name: Value<String>,
    capabilities: Strings,
    capabilities_add: Strings,
    ambient: Strings,
    binds: Strings,
    binds_add: Strings,
    tmpfs: Strings,
    command: Strings,
    env: Strings,
    cwd: Value<String>,
    net: Value<String>,
    pid: Value<String>,
    ipc: Value<String>,
    uts: Value<String>,
    userns: Value<String>,
    readonly: Value<bool>,
    masked_paths: Strings,
    readonly_paths: Strings,
    uid: Value<String>,
    gid: Value<String>,
    additional_gids: Strings,
    no_new_privileges: Value<bool>,
    hostname: Value<String>,
    oom_score_adj: Value<i64>,
    rootfs_propagation: Value<String>,
    cgroups_path: Value<String>,
    sysctl: StringMap,
    rlimits: Strings,
    annotations: StringMap,
    mounts: Value<Vec<MountBlock>>,
    devices: Value<Vec<DeviceBlock>>,
    resources: Value<Vec<ResourcesBlock>>,
    runtime: Value<Vec<RuntimeBlock>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MountBlock {
    destination: Value<String>,
    #[serde(rename = "type")]
    mount_type: Value<String>,
    source: Value<String>,
    options: Strings,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DeviceBlock {
    path: Value<String>,
    #[serde(rename = "type")]
    device_type: Value<String>,
    major: Value<i64>,
    minor: Value<i64>,
    mode: Value<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ResourcesBlock {
    pids_limit: Value<i64>,
    block_io_weight: Value<i64>,
    memory: Value<Vec<MemoryBlock>>,
    cpu: Value<Vec<CpuBlock>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MemoryBlock {
    limit: Value<i64>,
    reservation: Value<i64>,
    swap: Value<i64>,
    swappiness: Value<i64>,
    disable_oom_killer: Value<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CpuBlock {
    shares: Value<i64>,
    quota: Value<i64>,
    period: Value<i64>,
    cpus: Value<String>,
    mems: Value<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RuntimeBlock {
    cgroups: Strings,
    mkdir: Strings,
    namespace: Value<String>,
    mounts: Value<Vec<MountBlock>>,
    interfaces: Value<Vec<InterfaceBlock>>,
    bind_ns: Value<Vec<BindNsBlock>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InterfaceBlock {
    name: Value<String>,
    add: Value<String>,
    peer: Value<String>,
    create_in_root: Value<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BindNsBlock {
    cgroup: Value<String>,
    ipc: Value<String>,
    mnt: Value<String>,
    net: Value<String>,
    pid: Value<String>,
    user: Value<String>,
    uts: Value<String>,
}

/// Converts Terraform values to domain values, noting whether anything was unknown. A
/// field with any unknown part is left out whole, so validation never sees a half-known
/// list and indexes in messages stay right.
struct Conversion {
    all_known: bool,
}

impl Conversion {
    fn scalar<T: Clone>(&mut self, value: &Value<T>) -> Option<T> {
        match value {
            Value::Value(v) => Some(v.clone()),
            Value::Null => None,
            Value::Unknown => {
                self.all_known = false;
                None
            }
        }
    }

    fn strings(&mut self, value: &Strings) -> Option<Vec<String>> {
        let items = self.scalar(value)?;
        let known: Option<Vec<String>> = items.iter().map(|v| v.as_ref_option().cloned()).collect();
        if known.is_none() || items.iter().any(Value::is_unknown) {
            self.all_known = false;
            return None;
        }
        known
    }

    fn map(&mut self, value: &StringMap) -> Option<BTreeMap<String, String>> {
        let items = self.scalar(value)?;
        let mut map = BTreeMap::new();
        for (key, value) in items {
            match value {
                Value::Value(v) => {
                    map.insert(key, v);
                }
                Value::Null => {}
                Value::Unknown => {
                    self.all_known = false;
                    return None;
                }
            }
        }
        Some(map)
    }

    /// A list block; empty means "not set", like an absent block.
    fn blocks<B: Clone, T>(
        &mut self,
        value: &Value<Vec<B>>,
        mut convert: impl FnMut(&mut Self, &B) -> T,
    ) -> Option<Vec<T>> {
        let items = self.scalar(value)?;
        if items.is_empty() {
            return None;
        }
        let mut inner = Conversion { all_known: true };
        let converted: Vec<T> = items.iter().map(|b| convert(&mut inner, b)).collect();
        if !inner.all_known {
            self.all_known = false;
            return None;
        }
        Some(converted)
    }

    fn single<B: Clone, T>(&mut self, value: &Value<Vec<B>>, convert: impl FnMut(&mut Self, &B) -> T) -> Option<T> {
        self.blocks(value, convert).and_then(|v| v.into_iter().next())
    }

    fn mount(&mut self, m: &MountBlock) -> Mount {
        Mount {
            destination: self.scalar(&m.destination).unwrap_or_default(),
            mount_type: self.scalar(&m.mount_type),
            source: self.scalar(&m.source),
            options: self.strings(&m.options).unwrap_or_default(),
        }
    }
}

fn options_of(state: &PackageState) -> (ContainerOptions, bool) {
    let mut c = Conversion { all_known: true };
    let options = ContainerOptions {
        capabilities: c.strings(&state.capabilities),
        capabilities_add: c.strings(&state.capabilities_add),
        ambient: c.strings(&state.ambient),
        binds: c.strings(&state.binds),
        binds_add: c.strings(&state.binds_add),
        mounts: c.blocks(&state.mounts, Conversion::mount),
        tmpfs: c.strings(&state.tmpfs),
        command: c.strings(&state.command),
        env: c.strings(&state.env),
        cwd: c.scalar(&state.cwd),
        net: c.scalar(&state.net),
        pid: c.scalar(&state.pid),
        ipc: c.scalar(&state.ipc),
        uts: c.scalar(&state.uts),
        userns: c.scalar(&state.userns),
        readonly: c.scalar(&state.readonly),
        masked_paths: c.strings(&state.masked_paths),
        readonly_paths: c.strings(&state.readonly_paths),
        uid: c.scalar(&state.uid),
        gid: c.scalar(&state.gid),
        additional_gids: c.strings(&state.additional_gids),
        no_new_privileges: c.scalar(&state.no_new_privileges),
        hostname: c.scalar(&state.hostname),
        oom_score_adj: c.scalar(&state.oom_score_adj),
        rootfs_propagation: c.scalar(&state.rootfs_propagation),
        cgroups_path: c.scalar(&state.cgroups_path),
        devices: c.blocks(&state.devices, |c, d| Device {
            path: c.scalar(&d.path).unwrap_or_default(),
            device_type: c.scalar(&d.device_type).unwrap_or_default(),
            major: c.scalar(&d.major),
            minor: c.scalar(&d.minor),
            mode: c.scalar(&d.mode),
        }),
        resources: c.single(&state.resources, |c, r| Resources {
            memory: c.single(&r.memory, |c, m| MemoryResources {
                limit: c.scalar(&m.limit),
                reservation: c.scalar(&m.reservation),
                swap: c.scalar(&m.swap),
                swappiness: c.scalar(&m.swappiness),
                disable_oom_killer: c.scalar(&m.disable_oom_killer),
            }),
            cpu: c.single(&r.cpu, |c, p| CpuResources {
                shares: c.scalar(&p.shares),
                quota: c.scalar(&p.quota),
                period: c.scalar(&p.period),
                cpus: c.scalar(&p.cpus),
                mems: c.scalar(&p.mems),
            }),
            pids_limit: c.scalar(&r.pids_limit),
            block_io_weight: c.scalar(&r.block_io_weight),
        }),
        sysctl: c.map(&state.sysctl),
        rlimits: c.strings(&state.rlimits),
        annotations: c.map(&state.annotations),
        runtime: c.single(&state.runtime, |c, r| Runtime {
            cgroups: c.strings(&r.cgroups),
            mounts: c.blocks(&r.mounts, Conversion::mount),
            mkdir: c.strings(&r.mkdir),
            interfaces: c.blocks(&r.interfaces, |c, i| Interface {
                name: c.scalar(&i.name).unwrap_or_default(),
                add: c.scalar(&i.add),
                peer: c.scalar(&i.peer),
                create_in_root: c.scalar(&i.create_in_root).unwrap_or(false),
            }),
            bind_ns: c.single(&r.bind_ns, |c, b| BindNamespaces {
                cgroup: c.scalar(&b.cgroup),
                ipc: c.scalar(&b.ipc),
                mnt: c.scalar(&b.mnt),
                net: c.scalar(&b.net),
                pid: c.scalar(&b.pid),
                user: c.scalar(&b.user),
                uts: c.scalar(&b.uts),
            }),
            namespace: c.scalar(&r.namespace),
        }),
    };
    (options, c.all_known)
}

/// Nested objects that are single blocks in the schema: their path in Terraform goes
/// through index 0.
const SINGLE_BLOCKS: [&str; 5] = ["resources", "memory", "cpu", "runtime", "bind_ns"];

fn mount_block(name: &str, text: &str) -> (String, tf_provider::schema::NestedBlock) {
    list_block(name, text, vec![
        attribute("destination", AttributeType::String, Required, "Absolute path of the mount point."),
        attribute("type", AttributeType::String, Optional,
            "Filesystem type (`bind`, `tmpfs`, `proc`...). May be left out when `source` is one of mqueue, devpts, proc, sysfs, cgroup, or the destination is `/dev` (tmpfs), as in LinuxKit."),
        attribute("source", AttributeType::String, Optional, "Mount source. Default: the type."),
        attribute("options", strings(), Optional, "Mount options, one per entry (`rbind`, `ro`, `mode=755`...)."),
    ], vec![])
}

impl ImageKind for Package {
    type State = PackageState;
    const TYPE_NAME: &'static str = "resin_package";
    const READS_EARLY: bool = true;

    fn schema() -> Schema {
        let mut attributes = image_attributes(
            "OCI image reference: `name[:tag][@sha256:...]` as Docker normalises it, or `oci-layout:<dir>[:<tag>|@sha256:...]` for a local OCI image layout.",
            "sha256 over everything this package contributes to a machine image: the image's digest (never how its reference is spelled), the platform, every setting and the assembly format. Known at plan time whenever its inputs are.",
            "The package as `resin_image` takes it (`init`, `onboot`, `onshutdown`, `services = [resin_package.p.spec]`): a JSON document with the pinned image (`image`, the platform manifest; `index`, the index it was chosen from when the reference named one), the platform, every setting, and the image's entrypoint, cmd, env, working directory and `org.mobyproject.config` label.",
        );
        let namespace = |name: &str, extra: &str| {
            attribute(name, AttributeType::String, Optional, &format!(
            "{} namespace: `host` to share the host's, `new` for a new one{extra}, or the absolute path of a namespace to join. Default: the image label's, else {}.",
            name, if name == "pid" { "`new`" } else { "`host`" }))
        };
        attributes.extend([
            attribute("name", AttributeType::String, OptionalComputed,
                "Container name: the bundle directory (`containers/<section>/[NNN-]<name>`) and the key of uid/gid allocation. Default: the last component of the image repository; for an `oci-layout:` image, the name its tag gives (`sshd` for the tag `sshd` or `linuxkit/sshd:v1`; a version tag such as `v1.2`, `3.19` or `latest` gives none), else the layout directory's."),
            attribute("capabilities", strings(), Optional,
                "Capabilities (`CAP_NET_ADMIN`...), or the single entry `all` or `none`. Replaces the image label's list. Default: the label's, else none."),
            attribute("capabilities_add", strings(), Optional, "Capabilities added to the image label's list (used when `capabilities` is not set)."),
            attribute("ambient", strings(), Optional, "Ambient capabilities, or the single entry `all` or `none`."),
            attribute("binds", strings(), Optional,
                "Bind mounts `source:destination[:options]`; without options `rw,rbind,rshared`. The source is an absolute path of the machine; a LinuxKit volume name (`data:/data`) is an error at this attribute, as resin images have no volumes. Replaces the image label's list."),
            attribute("binds_add", strings(), Optional, "Bind mounts added to the image label's list (used when `binds` is not set)."),
            attribute("tmpfs", strings(), Optional, "tmpfs mounts `/destination[:options]` (options comma-separated)."),
            attribute("command", strings(), Optional, "Process arguments. Default: the label's, else the image's Entrypoint followed by Cmd."),
            attribute("env", strings(), Optional, "Environment, `KEY=value` entries. Replaces (never merges with) the label's or the image's Env."),
            attribute("cwd", AttributeType::String, Optional, "Working directory. Default: the label's, else the image's WorkingDir, else `/`."),
            namespace("net", ", `none` for a new empty one"),
            namespace("pid", ""),
            namespace("ipc", ""),
            namespace("uts", ""),
            namespace("userns", ""),
            attribute("readonly", AttributeType::Bool, Optional,
                "Read-only root filesystem: the image is unpacked into `rootfs/` directly instead of an overlay, and `/dev` and `/sys` are mounted read-only."),
            attribute("masked_paths", strings(), Optional, "Paths masked in the container (OCI `linux.maskedPaths`)."),
            attribute("readonly_paths", strings(), Optional, "Paths made read-only in the container (OCI `linux.readonlyPaths`)."),
            attribute("uid", AttributeType::String, Optional,
                "User id: a number, or the name of a container of the same image, whose allocated id (from 100, in onboot, onshutdown, services order) is used. Default: 0."),
            attribute("gid", AttributeType::String, Optional, "Group id, as `uid`. Default: 0."),
            attribute("additional_gids", strings(), Optional, "Supplementary group ids, numbers or container names."),
            attribute("no_new_privileges", AttributeType::Bool, Optional, "Set the process's no_new_privs bit."),
            attribute("hostname", AttributeType::String, Optional, "Hostname inside the container (needs a new uts namespace)."),
            attribute("oom_score_adj", AttributeType::Number, Optional, "OOM score adjustment, -1000..1000."),
            attribute("rootfs_propagation", AttributeType::String, Optional,
                "Root mount propagation: private, rprivate, shared, rshared, slave, rslave, unbindable or runbindable."),
            attribute("cgroups_path", AttributeType::String, Optional, "cgroup path of the container (OCI `linux.cgroupsPath`)."),
            attribute("sysctl", string_map(), Optional, "sysctls set in the container's namespaces."),
            attribute("rlimits", strings(), Optional,
                "Resource limits `name,soft,hard` (e.g. `nofile,1024,4096`); the name is case-insensitive with `RLIMIT_` optional, and `unlimited` is allowed."),
            attribute("annotations", string_map(), Optional, "OCI annotations of the container."),
        ]);
        let blocks = vec![
            mount_block(
                "mounts",
                "A mount of the container (OCI `mounts`); overrides tmpfs and binds with the same destination.",
            ),
            list_block(
                "devices",
                "A device node in the container and its cgroup allow rule (access `rwm`).",
                vec![
                    attribute(
                        "path",
                        AttributeType::String,
                        Required,
                        "Device path, or `all` for only a cgroup rule covering every device of `type`.",
                    ),
                    attribute(
                        "type",
                        AttributeType::String,
                        Required,
                        "`c` (character), `b` (block), `u`, `p` (FIFO) or `a` (all).",
                    ),
                    attribute("major", AttributeType::Number, Optional, "Major number."),
                    attribute("minor", AttributeType::Number, Optional, "Minor number."),
                    attribute(
                        "mode",
                        AttributeType::String,
                        Optional,
                        "File mode as an octal string, e.g. `\"0666\"`.",
                    ),
                ],
                vec![],
            ),
            optional_block(
                "resources",
                "cgroup resource limits (OCI `linux.resources`).",
                vec![
                    attribute("pids_limit", AttributeType::Number, Optional, "Largest number of processes."),
                    attribute("block_io_weight", AttributeType::Number, Optional, "Block I/O weight, 10..1000."),
                ],
                vec![
                    optional_block(
                        "memory",
                        "Memory limits, in bytes.",
                        vec![
                            attribute("limit", AttributeType::Number, Optional, "Memory limit."),
                            attribute("reservation", AttributeType::Number, Optional, "Soft limit."),
                            attribute("swap", AttributeType::Number, Optional, "Memory plus swap limit."),
                            attribute("swappiness", AttributeType::Number, Optional, "Swappiness, 0..100."),
                            attribute("disable_oom_killer", AttributeType::Bool, Optional, "Disable the OOM killer."),
                        ],
                        vec![],
                    ),
                    optional_block(
                        "cpu",
                        "CPU limits.",
                        vec![
                            attribute("shares", AttributeType::Number, Optional, "Relative CPU weight."),
                            attribute("quota", AttributeType::Number, Optional, "CPU time in microseconds per period."),
                            attribute("period", AttributeType::Number, Optional, "Period in microseconds."),
                            attribute("cpus", AttributeType::String, Optional, "CPUs to run on (cpuset, e.g. `0-1`)."),
                            attribute("mems", AttributeType::String, Optional, "Memory nodes (cpuset)."),
                        ],
                        vec![],
                    ),
                ],
            ),
            optional_block(
                "runtime",
                "What the image's init prepares before the container starts (`runtime.json`).",
                vec![
                    attribute("cgroups", strings(), Optional, "cgroups to create."),
                    attribute(
                        "mkdir",
                        strings(),
                        Optional,
                        "Directories to create (relative paths are relative to the bundle's rootfs).",
                    ),
                    attribute(
                        "namespace",
                        AttributeType::String,
                        Optional,
                        "containerd namespace of a service. Default: `services.linuxkit`.",
                    ),
                ],
                vec![
                    mount_block("mounts", "A mount made before the container starts."),
                    list_block(
                        "interfaces",
                        "A network interface created in or moved into the container.",
                        vec![
                            attribute("name", AttributeType::String, Required, "Interface name."),
                            attribute(
                                "add",
                                AttributeType::String,
                                Optional,
                                "Type of interface to create (e.g. `veth`); unset to move an existing one.",
                            ),
                            attribute("peer", AttributeType::String, Optional, "Peer name of a veth pair."),
                            attribute(
                                "create_in_root",
                                AttributeType::Bool,
                                Optional,
                                "Create in the root namespace, then move into the container.",
                            ),
                        ],
                        vec![],
                    ),
                    optional_block(
                        "bind_ns",
                        "Paths where the container's namespaces are bind-mounted once it runs.",
                        ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"]
                            .map(|ns| {
                                attribute(
                                    ns,
                                    AttributeType::String,
                                    Optional,
                                    &format!("Absolute path to bind the {ns} namespace to."),
                                )
                            })
                            .into(),
                        vec![],
                    ),
                ],
            ),
        ];
        resource_schema(
            "One OCI image plus how it runs inside a machine image: as an `init` image (unpacked at `/`) or as an onboot, onshutdown or service container whose `config.json` and `runtime.json` these settings shape. Unset settings come from the image's `org.mobyproject.config` label, then its config, as in LinuxKit.",
            attributes,
            blocks,
        )
    }

    fn fields(state: &mut PackageState) -> ImageFields<'_> {
        ImageFields {
            image: &mut state.image,
            platform: &mut state.platform,
            id: &mut state.id,
            digest: &mut state.digest,
            content_hash: &mut state.content_hash,
            spec: &mut state.spec,
        }
    }

    fn validate(state: &PackageState, diags: &mut Diagnostics) {
        if let Value::Value(name) = &state.name {
            if !container::is_valid_name(name) {
                diags.error(
                    "Invalid container name",
                    format!("resin_package: {name:?} is not a container name (letters, digits, '_', '.', '-'; it becomes a directory name)"),
                    AttributePath::new("name"),
                );
            }
        }
        let (options, _) = options_of(state);
        let image = state.image.as_ref_option().map_or("image not yet known", String::as_str);
        for error in container::validate(&options) {
            diags.error(
                error.summary(),
                format!("resin_package ({image}): {error}"),
                super::attribute_path(&error.path, &SINGLE_BLOCKS),
            );
        }
    }

    fn fill_defaults(state: &mut PackageState, config: &PackageState, reference: Option<&ImageReference>) {
        if config.name.is_null() {
            state.name = match reference {
                Some(reference) => Value::Value(container::default_name(reference)),
                None => Value::Unknown,
            };
        }
    }

    fn hash_inputs(state: &PackageState) -> Option<serde_json::Value> {
        let (options, all_known) = options_of(state);
        let name = state.name.as_ref_option()?;
        all_known.then(|| serde_json::json!({ "name": name, "options": options }))
    }

    fn spec(
        state: &PackageState,
        image: &PinnedImage,
        platform: &Platform,
        defaults: &ImageDefaults,
    ) -> Option<serde_json::Value> {
        let (options, all_known) = options_of(state);
        if !all_known {
            return None;
        }
        let spec = PackageSpec {
            spec_version: SPEC_VERSION,
            image: image.clone(),
            index: None,
            platform: platform.clone(),
            name: state.name.as_ref_option()?.clone(),
            options,
            defaults: defaults.clone(),
        };
        serde_json::to_value(spec).ok()
    }

    fn stub(image: String) -> PackageState {
        PackageState {
            image: Value::Value(image),
            mounts: Value::Value(vec![]),
            devices: Value::Value(vec![]),
            resources: Value::Value(vec![]),
            runtime: Value::Value(vec![]),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Step;
    use crate::resources::attribute_path;

    #[test]
    fn a_package_whose_image_is_not_known_yet_says_so_in_its_errors() {
        let state =
            PackageState { image: Value::Unknown, cwd: Value::Value("relative".into()), ..PackageState::default() };
        let mut diags = Diagnostics::default();
        Package::validate(&state, &mut diags);
        // (tf-provider appends a backtrace to the detail when RUST_BACKTRACE is set.)
        assert_eq!(diags.errors.len(), 1);
        let detail = &diags.errors[0].detail;
        assert!(
            detail.starts_with("resin_package (image not yet known): cwd: \"relative\" is not an absolute path"),
            "{detail}"
        );
    }

    #[test]
    fn single_blocks_point_through_index_zero() {
        let path = attribute_path(
            &[Step::Field("resources"), Step::Field("memory"), Step::Field("swappiness")],
            &SINGLE_BLOCKS,
        );
        let expected = AttributePath::new("resources").index(0).attribute("memory").index(0).attribute("swappiness");
        assert_eq!(path, expected);
        let path = attribute_path(&[Step::Field("binds"), Step::Index(2)], &SINGLE_BLOCKS);
        assert_eq!(path, AttributePath::new("binds").index(2));
    }

    #[test]
    fn unknown_values_leave_the_hash_unknown() {
        let mut state = PackageState { name: Value::Value("x".into()), ..Default::default() };
        assert!(Package::hash_inputs(&state).is_some());
        state.binds = Value::Value(vec![Value::Value("/a:/b".into()), Value::Unknown]);
        assert!(Package::hash_inputs(&state).is_none());
        let (options, known) = options_of(&state);
        assert!(!known && options.binds.is_none());
    }
}
