//! The `org.mobyproject.config` image label: LinuxKit's per-image defaults, JSON with
//! LinuxKit's (camelCase) keys, read into [`ContainerOptions`]. Unknown keys are errors,
//! as in LinuxKit, and so are `name` and `image`, which a label may not set.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::{
    BindNamespaces, ContainerOptions, CpuResources, Device, Interface, MemoryResources, Mount, Resources, Runtime,
};

/// The label's key.
pub const LABEL: &str = "org.mobyproject.config";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Label {
    capabilities: Option<Vec<String>>,
    #[serde(rename = "capabilities.add")]
    capabilities_add: Option<Vec<String>>,
    ambient: Option<Vec<String>>,
    mounts: Option<Vec<LabelMount>>,
    binds: Option<Vec<String>>,
    #[serde(rename = "binds.add")]
    binds_add: Option<Vec<String>>,
    devices: Option<Vec<LabelDevice>>,
    tmpfs: Option<Vec<String>>,
    command: Option<Vec<String>>,
    env: Option<Vec<String>>,
    cwd: Option<String>,
    net: Option<String>,
    pid: Option<String>,
    ipc: Option<String>,
    uts: Option<String>,
    userns: Option<String>,
    hostname: Option<String>,
    readonly: Option<bool>,
    #[serde(rename = "maskedPaths")]
    masked_paths: Option<Vec<String>>,
    #[serde(rename = "readonlyPaths")]
    readonly_paths: Option<Vec<String>>,
    uid: Option<serde_json::Value>,
    gid: Option<serde_json::Value>,
    #[serde(rename = "additionalGids")]
    additional_gids: Option<Vec<serde_json::Value>>,
    #[serde(rename = "noNewPrivileges")]
    no_new_privileges: Option<bool>,
    #[serde(rename = "oomScoreAdj")]
    oom_score_adj: Option<i64>,
    #[serde(rename = "rootfsPropagation")]
    rootfs_propagation: Option<String>,
    #[serde(rename = "cgroupsPath")]
    cgroups_path: Option<String>,
    resources: Option<LabelResources>,
    sysctl: Option<BTreeMap<String, String>>,
    rlimits: Option<Vec<String>>,
    annotations: Option<BTreeMap<String, String>>,
    runtime: Option<LabelRuntime>,
}

#[derive(Deserialize)]
struct LabelMount {
    #[serde(default)]
    destination: String,
    #[serde(rename = "type")]
    mount_type: Option<String>,
    source: Option<String>,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Deserialize)]
struct LabelDevice {
    path: String,
    #[serde(rename = "type")]
    device_type: String,
    major: Option<i64>,
    minor: Option<i64>,
    mode: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LabelResources {
    memory: Option<LabelMemory>,
    cpu: Option<LabelCpu>,
    pids: Option<LabelPids>,
    #[serde(alias = "blockIO")]
    blockio: Option<LabelBlockIo>,
}

#[derive(Deserialize)]
struct LabelMemory {
    limit: Option<i64>,
    reservation: Option<i64>,
    swap: Option<i64>,
    swappiness: Option<i64>,
    #[serde(rename = "disableOOMKiller")]
    disable_oom_killer: Option<bool>,
}

#[derive(Deserialize)]
struct LabelCpu {
    shares: Option<i64>,
    quota: Option<i64>,
    period: Option<i64>,
    cpus: Option<String>,
    mems: Option<String>,
}

#[derive(Deserialize)]
struct LabelPids {
    limit: Option<i64>,
}

#[derive(Deserialize)]
struct LabelBlockIo {
    weight: Option<i64>,
}

#[derive(Deserialize)]
struct LabelRuntime {
    cgroups: Option<Vec<String>>,
    mounts: Option<Vec<LabelMount>>,
    mkdir: Option<Vec<String>>,
    interfaces: Option<Vec<LabelInterface>>,
    #[serde(rename = "bindNS")]
    bind_ns: Option<LabelBindNs>,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct LabelInterface {
    #[serde(default)]
    name: String,
    add: Option<String>,
    peer: Option<String>,
    #[serde(rename = "createInRoot", default)]
    create_in_root: bool,
}

#[derive(Deserialize)]
struct LabelBindNs {
    cgroup: Option<String>,
    ipc: Option<String>,
    mnt: Option<String>,
    net: Option<String>,
    pid: Option<String>,
    user: Option<String>,
    uts: Option<String>,
}

fn id_string(value: &serde_json::Value) -> Result<String> {
    match value {
        serde_json::Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        serde_json::Value::String(s) => Ok(s.clone()),
        other => bail!("uid or gid {other} is neither a number nor a name"),
    }
}

fn mount(m: LabelMount) -> Mount {
    Mount { destination: m.destination, mount_type: m.mount_type, source: m.source, options: m.options }
}

fn empty_to_none(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Parses the label text into options (unset keys stay `None`).
pub fn parse_label(text: &str) -> Result<ContainerOptions> {
    let value: serde_json::Value =
        serde_json::from_str(text).context("the org.mobyproject.config label is not JSON")?;
    if let Some(object) = value.as_object() {
        for forbidden in ["name", "image"] {
            if object.contains_key(forbidden) {
                bail!("the org.mobyproject.config label may not set {forbidden}");
            }
        }
    } else {
        bail!("the org.mobyproject.config label is not a JSON object");
    }
    let label: Label = serde_json::from_value(value).context("invalid org.mobyproject.config label")?;
    Ok(ContainerOptions {
        capabilities: label.capabilities,
        capabilities_add: label.capabilities_add,
        ambient: label.ambient,
        binds: label.binds,
        binds_add: label.binds_add,
        mounts: label.mounts.map(|m| m.into_iter().map(mount).collect()),
        tmpfs: label.tmpfs,
        command: label.command,
        env: label.env,
        cwd: empty_to_none(label.cwd),
        net: empty_to_none(label.net),
        pid: empty_to_none(label.pid),
        ipc: empty_to_none(label.ipc),
        uts: empty_to_none(label.uts),
        userns: empty_to_none(label.userns),
        readonly: label.readonly,
        masked_paths: label.masked_paths,
        readonly_paths: label.readonly_paths,
        uid: label.uid.as_ref().map(id_string).transpose()?,
        gid: label.gid.as_ref().map(id_string).transpose()?,
        additional_gids: label.additional_gids.map(|ids| ids.iter().map(id_string).collect()).transpose()?,
        no_new_privileges: label.no_new_privileges,
        hostname: empty_to_none(label.hostname),
        oom_score_adj: label.oom_score_adj,
        rootfs_propagation: empty_to_none(label.rootfs_propagation),
        cgroups_path: empty_to_none(label.cgroups_path),
        devices: label
            .devices
            .map(|devices| {
                devices
                    .into_iter()
                    .map(|d| {
                        let mode = match d.mode {
                            None => None,
                            Some(serde_json::Value::String(s)) => Some(s),
                            // YAML-written labels may carry the octal mode as a bare number.
                            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                            Some(other) => bail!("device mode {other} is not an octal string"),
                        };
                        Ok(Device { path: d.path, device_type: d.device_type, major: d.major, minor: d.minor, mode })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?,
        resources: label.resources.map(|r| Resources {
            memory: r.memory.map(|m| MemoryResources {
                limit: m.limit,
                reservation: m.reservation,
                swap: m.swap,
                swappiness: m.swappiness,
                disable_oom_killer: m.disable_oom_killer,
            }),
            cpu: r.cpu.map(|c| CpuResources {
                shares: c.shares,
                quota: c.quota,
                period: c.period,
                cpus: c.cpus,
                mems: c.mems,
            }),
            pids_limit: r.pids.and_then(|p| p.limit),
            block_io_weight: r.blockio.and_then(|b| b.weight),
        }),
        sysctl: label.sysctl,
        rlimits: label.rlimits,
        annotations: label.annotations,
        runtime: label.runtime.map(|r| Runtime {
            cgroups: r.cgroups,
            mounts: r.mounts.map(|m| m.into_iter().map(mount).collect()),
            mkdir: r.mkdir,
            interfaces: r.interfaces.map(|i| {
                i.into_iter()
                    .map(|i| Interface { name: i.name, add: i.add, peer: i.peer, create_in_root: i.create_in_root })
                    .collect()
            }),
            bind_ns: r.bind_ns.map(|b| BindNamespaces {
                cgroup: b.cgroup,
                ipc: b.ipc,
                mnt: b.mnt,
                net: b.net,
                pid: b.pid,
                user: b.user,
                uts: b.uts,
            }),
            namespace: empty_to_none(r.namespace),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_linuxkit_keys() {
        let label = r#"{"capabilities":["CAP_SYS_ADMIN"],"binds":["/dev:/dev"],"net":"host","uid":100,"gid":"getty",
            "maskedPaths":["/proc/kcore"],"oomScoreAdj":-999,"resources":{"memory":{"limit":1024}},
            "devices":[{"path":"/dev/console","type":"c","major":5,"minor":1,"mode":"0666"}],
            "runtime":{"mkdir":["/var/lib"],"bindNS":{"net":"/run/netns/x"},"interfaces":[{"name":"eth1","createInRoot":true}]}}"#;
        let options = parse_label(label).unwrap();
        assert_eq!(options.capabilities, Some(vec!["CAP_SYS_ADMIN".to_string()]));
        assert_eq!(options.uid.as_deref(), Some("100"));
        assert_eq!(options.gid.as_deref(), Some("getty"));
        assert_eq!(options.oom_score_adj, Some(-999));
        assert_eq!(options.resources.unwrap().memory.unwrap().limit, Some(1024));
        let runtime = options.runtime.unwrap();
        assert_eq!(runtime.bind_ns.unwrap().net.as_deref(), Some("/run/netns/x"));
        assert!(runtime.interfaces.unwrap()[0].create_in_root);
    }

    #[test]
    fn rejects_what_linuxkit_rejects() {
        for (label, message) in [
            (r#"{"name":"x"}"#, "may not set name"),
            (r#"{"image":"x"}"#, "may not set image"),
            (r#"["a"]"#, "not a JSON object"),
            (r#"{"capabilites":[]}"#, "unknown field"),
            ("not json", "not JSON"),
        ] {
            let err = parse_label(label).unwrap_err();
            assert!(format!("{err:#}").contains(message), "{label}: {err:#}");
        }
    }
}
