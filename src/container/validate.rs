//! Validation of [`ContainerOptions`]: every malformed value is reported with the path
//! of the field that holds it, so the provider can point at the offending attribute.
//!
//! Resin is stricter than LinuxKit where LinuxKit silently accepts nonsense: an unknown
//! namespace mode is an error (LinuxKit takes any string as a path), and an `rlimit` with
//! a soft limit above its hard limit is refused at plan time instead of at boot.

use super::{ContainerOptions, Device, Mount};
use crate::field::{FieldError, Step};

/// The capabilities a container may be given, as LinuxKit spells them.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Resource limits `rlimits` may name (without the `RLIMIT_` prefix).
pub const RLIMIT_NAMES: [&str; 16] = [
    "CPU",
    "FSIZE",
    "DATA",
    "STACK",
    "CORE",
    "RSS",
    "NPROC",
    "NOFILE",
    "MEMLOCK",
    "AS",
    "LOCKS",
    "SIGPENDING",
    "MSGQUEUE",
    "NICE",
    "RTPRIO",
    "RTTIME",
];

const PROPAGATIONS: [&str; 8] =
    ["private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"];

/// Collects errors under a path prefix.
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, path: &[Step], message: impl Into<String>) {
        self.errors.push(FieldError::at(path.to_vec(), message));
    }

    fn each<T>(
        &mut self,
        field: &'static str,
        items: &Option<Vec<T>>,
        mut check: impl FnMut(&mut Checker, &[Step], &T),
    ) {
        for (index, item) in items.iter().flatten().enumerate() {
            let path = [Step::Field(field), Step::Index(index)];
            check(self, &path, item);
        }
    }
}

fn is_absolute(path: &str) -> bool {
    path.starts_with('/')
}

/// A container or volume name: it becomes a directory name in the image.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks every option; returns all problems found, not just the first.
pub fn validate(options: &ContainerOptions) -> Vec<FieldError> {
    let mut c = Checker { errors: Vec::new() };
    check_capabilities_and_mounts(&mut c, options);
    check_process(&mut c, options);
    check_namespaces(&mut c, options);
    check_paths_and_ids(&mut c, options);
    check_host_settings(&mut c, options);
    check_resources(&mut c, options);
    if let Some(runtime) = &options.runtime {
        check_runtime(&mut c, runtime);
    }
    c.errors
}

/// Capabilities, binds, tmpfs and mounts.
fn check_capabilities_and_mounts(c: &mut Checker, options: &ContainerOptions) {
    check_capabilities(c, "capabilities", &options.capabilities, true);
    check_capabilities(c, "capabilities_add", &options.capabilities_add, false);
    check_capabilities(c, "ambient", &options.ambient, true);
    c.each("binds", &options.binds, check_bind);
    c.each("binds_add", &options.binds_add, check_bind);
    c.each("tmpfs", &options.tmpfs, check_tmpfs);
    c.each("mounts", &options.mounts, check_mount);
}

/// The environment, the command and its working directory.
fn check_process(c: &mut Checker, options: &ContainerOptions) {
    c.each("env", &options.env, |c, path, entry: &String| match entry.split_once('=') {
        Some((key, _)) if !key.is_empty() && !key.contains(char::is_whitespace) => {}
        _ => c.fail(path, format!("{entry:?} is not KEY=value")),
    });
    if options.command.as_ref().is_some_and(Vec::is_empty) {
        c.fail(&[Step::Field("command")], "command must not be empty; leave it unset to use the image's entrypoint");
    }
    if let Some(cwd) = &options.cwd {
        if !is_absolute(cwd) {
            c.fail(&[Step::Field("cwd")], format!("{cwd:?} is not an absolute path"));
        }
    }
}

/// The namespace modes: host, new, none (network only) or a path to join.
fn check_namespaces(c: &mut Checker, options: &ContainerOptions) {
    for (field, value, allow_none) in [
        ("net", &options.net, true),
        ("pid", &options.pid, false),
        ("ipc", &options.ipc, false),
        ("uts", &options.uts, false),
        ("userns", &options.userns, false),
    ] {
        if let Some(mode) = value {
            let known =
                matches!(mode.as_str(), "host" | "root" | "new") || (allow_none && mode == "none") || is_absolute(mode);
            if !known {
                let modes = if allow_none { "host, new, none" } else { "host, new" };
                c.fail(
                    &[Step::Field(field)],
                    format!(
                        "unknown namespace mode {mode:?}: use {modes}, or the absolute path of a namespace to join"
                    ),
                );
            }
        }
    }
}

/// Masked and read-only paths, uid, gid and additional gids.
fn check_paths_and_ids(c: &mut Checker, options: &ContainerOptions) {
    for field in ["masked_paths", "readonly_paths"] {
        let list = if field == "masked_paths" { &options.masked_paths } else { &options.readonly_paths };
        c.each(field, list, |c, path, p: &String| {
            if !is_absolute(p) {
                c.fail(path, format!("{p:?} is not an absolute path"));
            }
        });
    }
    for (field, value) in [("uid", &options.uid), ("gid", &options.gid)] {
        if let Some(id) = value {
            check_id(c, &[Step::Field(field)], id);
        }
    }
    c.each("additional_gids", &options.additional_gids, |c, path, id: &String| check_id(c, path, id));
}

/// Hostname, OOM score, rootfs propagation, devices, sysctls and rlimits.
fn check_host_settings(c: &mut Checker, options: &ContainerOptions) {
    if let Some(hostname) = &options.hostname {
        let ok = !hostname.is_empty()
            && hostname.len() <= 64
            && hostname.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
        if !ok {
            c.fail(&[Step::Field("hostname")], format!("{hostname:?} is not a valid hostname"));
        }
    }
    if let Some(adj) = options.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            c.fail(&[Step::Field("oom_score_adj")], format!("{adj} is outside -1000..1000"));
        }
    }
    if let Some(propagation) = &options.rootfs_propagation {
        if !PROPAGATIONS.contains(&propagation.as_str()) {
            c.fail(
                &[Step::Field("rootfs_propagation")],
                format!("unknown propagation {propagation:?}: use one of {}", PROPAGATIONS.join(", ")),
            );
        }
    }
    c.each("devices", &options.devices, check_device);
    if let Some(sysctl) = &options.sysctl {
        for key in sysctl.keys() {
            let ok = !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
            if !ok {
                c.fail(&[Step::Field("sysctl"), Step::Key(key.clone())], format!("{key:?} is not a sysctl name"));
            }
        }
    }
    c.each("rlimits", &options.rlimits, check_rlimit);
}

/// The cgroup resources.
fn check_resources(c: &mut Checker, options: &ContainerOptions) {
    if let Some(resources) = &options.resources {
        let base = [Step::Field("resources")];
        if let Some(memory) = &resources.memory {
            if let Some(swappiness) = memory.swappiness {
                if !(0..=100).contains(&swappiness) {
                    let path = [base[0].clone(), Step::Field("memory"), Step::Field("swappiness")];
                    c.fail(&path, format!("{swappiness} is outside 0..100"));
                }
            }
        }
        if let Some(weight) = resources.block_io_weight {
            if !(10..=1000).contains(&weight) {
                c.fail(&[base[0].clone(), Step::Field("block_io_weight")], format!("{weight} is outside 10..1000"));
            }
        }
    }
}

/// The runtime settings (mounts, directories, interfaces, namespaces to bind), under
/// `runtime`.
fn check_runtime(c: &mut Checker, runtime: &super::Runtime) {
    let start = c.errors.len();
    c.each("mounts", &runtime.mounts, check_mount);
    c.each("mkdir", &runtime.mkdir, |c, path, dir: &String| {
        if dir.is_empty() {
            c.fail(path, "empty directory");
        }
    });
    c.each("interfaces", &runtime.interfaces, |c, path, interface: &super::Interface| {
        if interface.name.is_empty() {
            c.fail(&[path, &[Step::Field("name")]].concat(), "an interface needs a name");
        }
    });
    if let Some(bind_ns) = &runtime.bind_ns {
        for (field, value) in [
            ("cgroup", &bind_ns.cgroup),
            ("ipc", &bind_ns.ipc),
            ("mnt", &bind_ns.mnt),
            ("net", &bind_ns.net),
            ("pid", &bind_ns.pid),
            ("user", &bind_ns.user),
            ("uts", &bind_ns.uts),
        ] {
            if let Some(path) = value {
                if !is_absolute(path) {
                    c.fail(&[Step::Field("bind_ns"), Step::Field(field)], format!("{path:?} is not an absolute path"));
                }
            }
        }
    }
    if runtime.namespace.as_ref().is_some_and(String::is_empty) {
        c.fail(&[Step::Field("namespace")], "empty containerd namespace");
    }
    for error in &mut c.errors[start..] {
        error.path.insert(0, Step::Field("runtime"));
    }
}

/// The capability `cap` most likely means: itself with `CAP_` and in capitals, or the
/// nearest by edit distance (at most 2 edits, so a guess is a typo, not another name).
fn closest_capability(cap: &str) -> Option<&'static str> {
    let upper = cap.to_ascii_uppercase();
    let guess = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    ALL_CAPABILITIES
        .iter()
        .map(|known| (edit_distance(&guess, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance of two ASCII strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, y) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(x != y);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn check_capabilities(c: &mut Checker, field: &'static str, caps: &Option<Vec<String>>, allow_all_none: bool) {
    let Some(caps) = caps else { return };
    for (index, cap) in caps.iter().enumerate() {
        let path = [Step::Field(field), Step::Index(index)];
        let special = cap.eq_ignore_ascii_case("all") || cap.eq_ignore_ascii_case("none");
        if special {
            if !allow_all_none || caps.len() != 1 {
                c.fail(&path, format!("{cap:?} must be the only entry of {field}"));
            }
            continue;
        }
        if ALL_CAPABILITIES.contains(&cap.as_str()) {
            continue;
        }
        let hint = closest_capability(cap).map(|known| format!("; did you mean {known}?")).unwrap_or_default();
        c.fail(&path, format!("unknown capability {cap:?}{hint}"));
    }
}

fn check_bind(c: &mut Checker, path: &[Step], bind: &String) {
    let parts: Vec<&str> = bind.split(':').collect();
    let message = match parts.as_slice() {
        [_] => Some(format!("malformed bind {bind:?}: expected source:destination[:options]")),
        [source, destination, rest @ ..] if rest.len() <= 1 => {
            if source.is_empty() {
                Some(format!("malformed bind {bind:?}: empty source"))
            } else if !is_absolute(destination) {
                Some(format!("malformed bind {bind:?}: destination {destination:?} is not an absolute path"))
            } else if !is_absolute(source) && is_valid_name(source) {
                Some(format!(
                    "bind {bind:?} names a volume ({source}): resin images have no volumes; bind a path of the machine, such as \"/{source}:{destination}\""
                ))
            } else if !is_absolute(source) {
                Some(format!("malformed bind {bind:?}: source {source:?} is not an absolute path"))
            } else if rest.first().is_some_and(|o| o.is_empty() || o.split(',').any(str::is_empty)) {
                Some(format!("malformed bind {bind:?}: empty mount option"))
            } else {
                None
            }
        }
        _ => Some(format!("malformed bind {bind:?}: too many ':'; expected source:destination[:options]")),
    };
    if let Some(message) = message {
        c.fail(path, message);
    }
}

fn check_tmpfs(c: &mut Checker, path: &[Step], tmpfs: &String) {
    let (destination, options) = match tmpfs.split_once(':') {
        Some((d, o)) => (d, Some(o)),
        None => (tmpfs.as_str(), None),
    };
    if options.is_some_and(|o| o.contains(':')) {
        c.fail(path, format!("malformed tmpfs {tmpfs:?}: too many ':'; expected /destination[:options]"));
    } else if !is_absolute(destination) {
        c.fail(path, format!("malformed tmpfs {tmpfs:?}: {destination:?} is not an absolute path"));
    } else if options.is_some_and(|o| o.is_empty() || o.split(',').any(str::is_empty)) {
        c.fail(path, format!("malformed tmpfs {tmpfs:?}: empty mount option"));
    }
}

/// The type LinuxKit infers for a mount that gives none.
pub fn inferred_mount_type(mount: &Mount) -> Option<String> {
    if let Some(t) = mount.mount_type.as_ref().filter(|t| !t.is_empty()) {
        return Some(t.clone());
    }
    match mount.source.as_deref() {
        Some(s @ ("mqueue" | "devpts" | "proc" | "sysfs" | "cgroup")) => Some(s.to_string()),
        _ if mount.destination == "/dev" => Some("tmpfs".to_string()),
        _ => None,
    }
}

fn check_mount(c: &mut Checker, path: &[Step], mount: &Mount) {
    let field = |name| [path, &[Step::Field(name)]].concat();
    if !is_absolute(&mount.destination) {
        c.fail(&field("destination"), format!("mount destination {:?} is not an absolute path", mount.destination));
    }
    if inferred_mount_type(mount).is_none() {
        c.fail(&field("type"), format!("mount for destination {:?} is missing its type", mount.destination));
    }
    for (index, option) in mount.options.iter().enumerate() {
        if option.is_empty() || option.contains(',') {
            let option_path = [field("options"), vec![Step::Index(index)]].concat();
            c.fail(&option_path, format!("mount option {option:?} must be one non-empty option"));
        }
    }
}

fn check_device(c: &mut Checker, path: &[Step], device: &Device) {
    let field = |name| [path, &[Step::Field(name)]].concat();
    if !matches!(device.device_type.as_str(), "c" | "b" | "u" | "p" | "a") {
        c.fail(&field("type"), format!("unknown device type {:?}: use c, b, u, p or a", device.device_type));
    }
    if device.path == "all" {
        return;
    }
    if !is_absolute(&device.path) {
        c.fail(&field("path"), format!("device path {:?} is neither an absolute path nor \"all\"", device.path));
    }
    for (name, number) in [("major", device.major), ("minor", device.minor)] {
        match number {
            None if device.device_type != "p" => {
                c.fail(&field(name), format!("device {} needs a {name} number", device.path))
            }
            Some(n) if n < 0 => c.fail(&field(name), format!("{name} number {n} is negative")),
            _ => {}
        }
    }
    match &device.mode {
        None => {
            c.fail(&field("mode"), format!("device {} needs a mode (an octal string such as \"0666\")", device.path))
        }
        Some(mode) if u32::from_str_radix(mode, 8).map_or(true, |m| m > 0o7777) => {
            c.fail(&field("mode"), format!("device mode {mode:?} is not an octal mode such as \"0666\""))
        }
        Some(_) => {}
    }
}

/// Parses an rlimit value: a number or `unlimited`.
pub fn parse_rlimit_value(value: &str) -> Option<u64> {
    if value.trim().eq_ignore_ascii_case("unlimited") {
        Some(u64::MAX)
    } else {
        value.trim().parse().ok()
    }
}

fn check_rlimit(c: &mut Checker, path: &[Step], rlimit: &String) {
    let parts: Vec<&str> = rlimit.split(',').collect();
    let [name, soft, hard] = parts.as_slice() else {
        c.fail(path, format!("malformed rlimit {rlimit:?}: expected name,soft,hard (e.g. nofile,1024,4096)"));
        return;
    };
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("RLIMIT_").unwrap_or(&upper);
    if !RLIMIT_NAMES.contains(&bare) {
        c.fail(path, format!("unknown rlimit {name:?}: use one of {}", RLIMIT_NAMES.join(", ").to_lowercase()));
        return;
    }
    match (parse_rlimit_value(soft), parse_rlimit_value(hard)) {
        (Some(s), Some(h)) if s > h => c.fail(path, format!("rlimit {rlimit:?}: soft limit above hard limit")),
        (Some(_), Some(_)) => {}
        _ => c.fail(path, format!("malformed rlimit {rlimit:?}: limits are numbers or \"unlimited\"")),
    }
}

fn check_id(c: &mut Checker, path: &[Step], id: &str) {
    if id.parse::<u32>().is_ok() || id == "root" || is_valid_name(id) {
        return;
    }
    c.fail(path, format!("{id:?} is neither a numeric id nor a container name"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{MemoryResources, Resources, Runtime};

    fn errors_of(options: ContainerOptions) -> Vec<String> {
        validate(&options).iter().map(ToString::to_string).collect()
    }

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn accepts_a_typical_service() {
        let options = ContainerOptions {
            capabilities: strings(&["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]),
            ambient: strings(&["CAP_NET_ADMIN"]),
            binds: strings(&["/etc/resolv.conf:/etc/resolv.conf", "/var:/var:rshared,rbind"]),
            tmpfs: strings(&["/run", "/tmp:size=10m,mode=1777"]),
            env: strings(&["A=b", "EMPTY="]),
            net: Some("host".into()),
            pid: Some("/proc/1/ns/pid".into()),
            uid: Some("getty".into()),
            gid: Some("100".into()),
            rlimits: strings(&["nofile,1024,unlimited", "RLIMIT_CORE,0,0"]),
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
            ..Default::default()
        };
        assert_eq!(errors_of(options), Vec::<String>::new());
        assert!(validate(&ContainerOptions { capabilities: strings(&["all"]), ..Default::default() }).is_empty());
    }

    #[test]
    fn points_at_each_malformed_value() {
        let cases: Vec<(ContainerOptions, &str)> = vec![
            (
                ContainerOptions { capabilities: strings(&["CAP_CHOWN", "net_admin"]), ..Default::default() },
                "capabilities[1]: unknown capability \"net_admin\"; did you mean CAP_NET_ADMIN?",
            ),
            (
                ContainerOptions { capabilities: strings(&["CAP_NET_ADIMN"]), ..Default::default() },
                "capabilities[0]: unknown capability \"CAP_NET_ADIMN\"; did you mean CAP_NET_ADMIN?",
            ),
            (
                ContainerOptions { capabilities: strings(&["sys_admn"]), ..Default::default() },
                "capabilities[0]: unknown capability \"sys_admn\"; did you mean CAP_SYS_ADMIN?",
            ),
            (
                ContainerOptions { capabilities: strings(&["CAP_TOTALLY_BOGUS"]), ..Default::default() },
                "capabilities[0]: unknown capability \"CAP_TOTALLY_BOGUS\"",
            ),
            (
                ContainerOptions { capabilities: strings(&["CAP_CHOWN", "all"]), ..Default::default() },
                "capabilities[1]: \"all\" must be the only entry of capabilities",
            ),
            (
                ContainerOptions { binds: strings(&["/only-one-part"]), ..Default::default() },
                "binds[0]: malformed bind \"/only-one-part\": expected source:destination[:options]",
            ),
            (
                ContainerOptions { binds: strings(&["/etc:/etc", "data:/data"]), ..Default::default() },
                "binds[1]: bind \"data:/data\" names a volume (data): resin images have no volumes; bind a path of the machine, such as \"/data:/data\"",
            ),
            (
                ContainerOptions { binds: strings(&["/a:/b:ro:x"]), ..Default::default() },
                "binds[0]: malformed bind \"/a:/b:ro:x\": too many ':'",
            ),
            (
                ContainerOptions { binds_add: strings(&["/a:relative"]), ..Default::default() },
                "binds_add[0]: malformed bind \"/a:relative\": destination \"relative\" is not an absolute path",
            ),
            (ContainerOptions { tmpfs: strings(&["run"]), ..Default::default() }, "tmpfs[0]: malformed tmpfs \"run\""),
            (
                ContainerOptions {
                    mounts: Some(vec![Mount { destination: "/x".into(), ..Default::default() }]),
                    ..Default::default()
                },
                "mounts[0].type: mount for destination \"/x\" is missing its type",
            ),
            (
                ContainerOptions { net: Some("bridge".into()), ..Default::default() },
                "net: unknown namespace mode \"bridge\"",
            ),
            (
                ContainerOptions { pid: Some("none".into()), ..Default::default() },
                "pid: unknown namespace mode \"none\"",
            ),
            (
                ContainerOptions { rlimits: strings(&["nofile,10"]), ..Default::default() },
                "rlimits[0]: malformed rlimit \"nofile,10\"",
            ),
            (
                ContainerOptions { rlimits: strings(&["files,1,2"]), ..Default::default() },
                "rlimits[0]: unknown rlimit \"files\"",
            ),
            (
                ContainerOptions { rlimits: strings(&["nofile,20,10"]), ..Default::default() },
                "rlimits[0]: rlimit \"nofile,20,10\": soft limit above hard limit",
            ),
            (
                ContainerOptions {
                    devices: Some(vec![Device {
                        path: "/dev/x".into(),
                        device_type: "c".into(),
                        major: Some(1),
                        minor: Some(2),
                        mode: Some("rw".into()),
                    }]),
                    ..Default::default()
                },
                "devices[0].mode: device mode \"rw\" is not an octal mode",
            ),
            (
                ContainerOptions {
                    devices: Some(vec![Device {
                        path: "/dev/x".into(),
                        device_type: "z".into(),
                        major: Some(1),
                        minor: Some(2),
                        mode: Some("0600".into()),
                    }]),
                    ..Default::default()
                },
                "devices[0].type: unknown device type \"z\"",
            ),
            (
                ContainerOptions { env: strings(&["NOVALUE"]), ..Default::default() },
                "env[0]: \"NOVALUE\" is not KEY=value",
            ),
            (
                ContainerOptions { uid: Some("../etc".into()), ..Default::default() },
                "uid: \"../etc\" is neither a numeric id nor a container name",
            ),
            (
                ContainerOptions { rootfs_propagation: Some("shard".into()), ..Default::default() },
                "rootfs_propagation: unknown propagation \"shard\"",
            ),
            (
                ContainerOptions {
                    resources: Some(Resources {
                        memory: Some(MemoryResources { swappiness: Some(101), ..Default::default() }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "resources.memory.swappiness: 101 is outside 0..100",
            ),
            (
                ContainerOptions {
                    runtime: Some(Runtime {
                        mounts: Some(vec![Mount {
                            destination: "rel".into(),
                            mount_type: Some("bind".into()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "runtime.mounts[0].destination: mount destination \"rel\" is not an absolute path",
            ),
        ];
        for (options, expected) in cases {
            let errors = errors_of(options);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].starts_with(expected), "{:?} does not start with {expected:?}", errors[0]);
        }
    }
}
