//! `make bench`, LinuxKit-shaped: whole `terraform apply` runs of a kernel and 14 packages
//! (two layers each, about 300 MB of real binaries from this machine's /usr), every image
//! published to a loopback registry as a one-entry OCI index:
//!
//! * **cold**: empty cache, new state and output directory;
//! * **warm**: the populated cache, new state and output directory;
//! * **one changed**: the warm workspace again after one small package's tag moved;
//! * **cold, zstd**: as cold, with `compression = "zstd"` (level 3);
//! * **new image**: every layer in the blob cache but no segment (the zstd run's cache
//!   without its segments), as for every new image on a machine that built others;
//! * **many files**: 200k small files in one image used by two packages (cold);
//! * **shared cache**: two CI runners with empty caches and a segment cache in a registry
//!   (`segment_cache`): A builds and pushes, B fetches what A pushed (compared with the
//!   cold and warm applies);
//! * **publish**: the warm image published to a second registry (basic auth) with
//!   `resin_publish`, cold (an empty repository) and after the one package changed: wall
//!   time and the bytes the registry received (its storage before and after).
//!
//! For each: wall time of the apply, CPU time and peak RSS of the provider processes
//! (sampled from /proc while Terraform runs), and the initrd's size. In the same run, on
//! the same bytes, the floors: `zcat` of every layer, `gzip -6`, `pigz -6 -p<cores>` and
//! `zstd -3 -T<cores>` of the uncompressed cpio; every time is also printed as a ratio to
//! the `pigz -6` floor. The cold, zstd and new-image applies and the `pigz` floor run three
//! times (each cold one in new caches): the run of median wall time is printed, with the
//! largest peak RSS of the three, and every run's wall time in the order they ran, to show
//! how far they spread (on some virtual machines, writing to memory the guest has not
//! used lately is many times slower than writing to memory it just freed, so a run's time
//! depends on what ran before it). One unmeasured cold apply before them reads what the
//! first run after the setup would read from disk. Prints numbers; asserts nothing about
//! speed.

use resin_testkit::fixtures;
use resin_testkit::measure;
use resin_testkit::registry;
use resin_testkit::terraform;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fixtures::{put_image, put_index, set_tag, tar_layer, Entry};
use registry::Registry;
use serde_json::json;
use terraform::Workspace;

const PACKAGES: usize = 14;
const BUDGET: u64 = 300 << 20;

/// A tar layer of `(path, contents)`.
fn layer(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<Entry> = files.iter().map(|(p, c)| Entry::File(p, c, 0o755)).collect();
    tar_layer(&entries)
}

/// Writes one image (its layers gzip'd) as a one-entry index under `tag` of the layout, and
/// pushes it to `registry` as `bench/<tag>:<tag>`.
fn publish(registry: &Registry, layout: &Path, tag: &str, layers: &[Vec<u8>], config: serde_json::Value) {
    let manifest = put_image(layout, layers, "amd64", None, config);
    let index = put_index(layout, vec![manifest]);
    set_tag(layout, tag, &index);
    registry.push(layout, tag, &format!("bench/{tag}"), false);
}

/// Samples every provider process while a Terraform command runs: total CPU seconds and
/// the largest peak RSS (VmHWM) seen.
struct ProviderSampler {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<u32, (f64, u64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProviderSampler {
    fn start() -> ProviderSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<BTreeMap<u32, (f64, u64)>>> = Arc::default();
        let (thread_stop, thread_seen) = (stop.clone(), seen.clone());
        // Only processes started after this one can be providers of the run: their pids
        // come after the last one given out now (unless pids wrapped around meanwhile).
        // Reading every process's name at every sample took CPU from the measured apply.
        let last_pid = || -> u32 {
            std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0)
        };
        let before = last_pid();
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                let wrapped = last_pid() < before;
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
                    if pid <= before && !wrapped {
                        continue;
                    }
                    let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                    if !comm.starts_with("terraform-provi") {
                        continue;
                    }
                    let (cpu, hwm) = (measure::cpu_seconds_of(&entry.path()), measure::peak_rss_kib_of(&entry.path()));
                    let mut seen = thread_seen.lock().unwrap();
                    let slot = seen.entry(pid).or_default();
                    *slot = (slot.0.max(cpu), slot.1.max(hwm));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        ProviderSampler { stop, seen, thread: Some(thread) }
    }

    /// (CPU seconds of all provider processes, largest peak RSS in MiB).
    fn finish(mut self) -> (f64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let seen = self.seen.lock().unwrap();
        (seen.values().map(|v| v.0).sum(), seen.values().map(|v| v.1).max().unwrap_or(0) / 1024)
    }
}

struct Run {
    wall: f64,
    cpu: f64,
    rss_mib: u64,
    initrd: u64,
    /// The wall time of every run this one stands for, in the order they ran.
    walls: Vec<f64>,
}

/// How many times the cold, zstd and new-image applies and the `pigz` floor run.
const RUNS: usize = 3;

/// The run of median wall time among `first` and `RUNS - 1` runs `again`, with the largest
/// peak RSS of them all: one run slowed by the machine moves nothing. Every run's wall
/// time is kept and printed, so that how far they spread is seen.
fn median_run(first: Run, again: impl FnMut() -> Run) -> Run {
    let mut runs = vec![first];
    runs.extend(std::iter::repeat_with(again).take(RUNS - 1));
    let rss_mib = runs.iter().map(|run| run.rss_mib).max().unwrap_or(0);
    let walls = runs.iter().map(|run| run.wall).collect();
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    Run { rss_mib, walls, ..runs.swap_remove(RUNS / 2) }
}

fn apply(workspace: &Workspace, name: &str) -> Run {
    apply_with(workspace, name, &[])
}

/// [`apply`] with more arguments (`-target=...`).
fn apply_with(workspace: &Workspace, name: &str, more: &[&str]) -> Run {
    settle();
    let sampler = ProviderSampler::start();
    let started = Instant::now();
    let mut args = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
    args.extend_from_slice(more);
    let output = workspace.run(&args);
    let wall = started.elapsed().as_secs_f64();
    let (cpu, rss_mib) = sampler.finish();
    assert_eq!(output.code, 0, "{}", output.text());
    let initrd = std::fs::metadata(workspace.work_dir().join(format!("out/{name}-initrd.img"))).unwrap().len();
    Run { wall, cpu, rss_mib, initrd, walls: vec![wall] }
}

/// Writes back what earlier steps left dirty (the registry's blobs, an earlier apply's
/// files), then waits (10 s at most) for the machine to be idle, so that a measured run
/// does not pay for what came before it.
fn settle() {
    let status = Command::new("sync").status().unwrap_or_else(|e| panic!("sync: {e}"));
    assert!(status.success(), "sync failed");
    let started = Instant::now();
    while busy_cores(Duration::from_millis(250)) > 0.1 && started.elapsed() < Duration::from_secs(10) {}
}

/// How many cores were busy, on average, over `period` (from /proc/stat).
fn busy_cores(period: Duration) -> f64 {
    let sample = || -> (f64, f64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> =
            stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
        (ticks.iter().take(8).sum::<f64>() - idle, idle)
    };
    let (busy, idle) = sample();
    std::thread::sleep(period);
    let (busy_after, idle_after) = sample();
    let (busy, idle) = (busy_after - busy, idle_after - idle);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if busy + idle > 0.0 {
        cores * busy / (busy + idle)
    } else {
        0.0
    }
}

/// The bench image of `packages`, with `settings` (more `resin_image` attributes).
fn config(cache: &Path, registry: &Registry, packages: &[(&str, &str)], name: &str, settings: &str) -> String {
    let mut text = format!(
        "provider \"resin\" {{\n  cache_dir = \"{}\"\n  registry {{\n    address    = \"{}\"\n    plain_http = true\n  }}\n}}\nresource \"resin_kernel\" \"k\" {{\n  image   = \"{}/bench/kernel:kernel\"\n  cmdline = \"console=ttyS0\"\n}}\n",
        cache.display(),
        registry.address,
        registry.address
    );
    let mut sections: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (index, (tag, section)) in packages.iter().enumerate() {
        text.push_str(&format!(
            "resource \"resin_package\" \"p{index}\" {{\n  name  = \"p{index}\"\n  image = \"{}/bench/{tag}:{tag}\"\n}}\n",
            registry.address
        ));
        sections.entry(section).or_default().push(format!("resin_package.p{index}.spec"));
    }
    let list = |section: &str| sections.get(section).map_or(String::new(), |s| s.join(", "));
    text.push_str(&format!(
        "resource \"resin_image\" \"img\" {{\n  name       = \"{name}\"\n  output_dir = \"./out\"\n  kernel     = resin_kernel.k.spec\n  init       = [{}]\n  onboot     = [{}]\n  services   = [{}]\n{settings}}}\n",
        list("init"),
        list("onboot"),
        list("services")
    ));
    text
}

/// Runs `program args` with `input` as stdin (when given); returns the seconds it took
/// and the number of bytes it wrote.
fn floor(program: &str, args: &[&str], input: Option<&Path>) -> (f64, u64) {
    let mut command = Command::new(program);
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
    if let Some(input) = input {
        command.stdin(std::fs::File::open(input).unwrap());
    }
    settle();
    let started = Instant::now();
    let mut child = command.spawn().unwrap_or_else(|e| panic!("{program}: {e} (make bench installs it)"));
    let mut out = child.stdout.take().unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let n = out.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    assert!(child.wait().unwrap().success(), "{program} failed");
    (started.elapsed().as_secs_f64(), written)
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("layout");
    let registry = Registry::start(None);

    // The kernel: a large real binary as `kernel`, 20 MB of real files as its modules.
    let files = measure::real_files(16 << 10..16 << 20, BUDGET + (30 << 20));
    let read = |paths: &[PathBuf]| -> Vec<(String, Vec<u8>)> {
        paths.iter().map(|p| (p.strip_prefix("/").unwrap().display().to_string(), std::fs::read(p).unwrap())).collect()
    };
    let (kernel_files, package_files) = files.split_at(files.len() / 30);
    let modules = read(kernel_files);
    let kernel_binary = std::fs::read(package_files[package_files.len() / 2].clone()).unwrap();
    let kernel_layer =
        tar_layer(&[Entry::File("kernel", &kernel_binary, 0o644), Entry::File("kernel.tar", &layer(&modules), 0o644)]);
    publish(&registry, &layout, "kernel", &[kernel_layer], json!({}));

    // 14 packages of two layers each, sizes uneven as in LinuxKit (one small one).
    let per = package_files.len().div_ceil(PACKAGES - 1);
    let mut layer_blobs = Vec::new();
    let mut packages: Vec<(String, &str)> = Vec::new();
    for index in 0..PACKAGES {
        let contents = if index == PACKAGES - 1 {
            vec![("usr/bin/small".to_string(), b"#!/bin/sh\necho small v1\n".to_vec())]
        } else {
            read(&package_files[(index * per).min(package_files.len())..((index + 1) * per).min(package_files.len())])
        };
        let (lower, upper) = contents.split_at(contents.len() / 2);
        let layers = [layer(lower), layer(upper)];
        layer_blobs.extend(layers.iter().map(|l| fixtures::gzip(l)));
        let tag = format!("pkg{index}");
        publish(&registry, &layout, &tag, &layers, json!({ "Cmd": ["/bin/true"] }));
        let section = match index {
            0..=2 => "init",
            3..=5 => "onboot",
            _ => "services",
        };
        packages.push((tag, section));
    }
    let packages: Vec<(&str, &str)> = packages.iter().map(|(t, s)| (t.as_str(), *s)).collect();
    let layer_bytes: usize = layer_blobs.iter().map(Vec::len).sum();
    println!(
        "LinuxKit-shaped benchmark: kernel + {PACKAGES} packages, {} layers, {:.1} MB of layer blobs, {cores} cores",
        2 * PACKAGES + 1,
        layer_bytes as f64 / 1e6
    );

    // A cold apply in a new workspace of its own (`settings`: more `resin_image`
    // attributes), for the runs whose workspace nothing reads afterwards.
    let fresh_apply = |settings: &str| {
        let workspace = Workspace::new();
        workspace.write_config(&config(&workspace.cache_dir, &registry, &packages, "lk", settings));
        apply(&workspace, "lk")
    };
    // One apply first, not measured: the first run after the setup reads Terraform's and
    // the provider's binaries and the registry's blobs from disk (a machine may drop a
    // file's pages soon after its last use: here, half of Terraform's 75 MB binary within
    // a minute), which made that run up to 1 s slower than the next ones. Its caches are
    // its own: every measured cold apply still starts from empty ones.
    fresh_apply("");

    let cold = Workspace::new();
    cold.write_config(&config(&cold.cache_dir, &registry, &packages, "lk", ""));
    let cold_run = apply(&cold, "lk");
    let cold_run = median_run(cold_run, || fresh_apply(""));

    let warm = Workspace::new();
    warm.write_config(&config(&cold.cache_dir, &registry, &packages, "lk", ""));
    let warm_run = apply(&warm, "lk");

    // Two CI runners sharing a segment cache in a registry of its own: A (empty caches)
    // builds and pushes, B (empty caches, another machine) reads what A pushed.
    let cache_registry = Registry::start(None);
    let (secret, public) = resin::assemble::SigningKey::generate("bench").unwrap();
    let shared = |workspace: &Workspace, signing: bool| {
        let signing = if signing { format!("    signing_key  = \"{secret}\"\n") } else { String::new() };
        let block = format!(
            "registry {{\n    address    = \"{0}\"\n    plain_http = true\n  }}\n  segment_cache {{\n    repository   = \"{0}/ci/resin-cache\"\n    trusted_keys = [\"{public}\"]\n{signing}  }}\n  registry {{\n",
            cache_registry.address
        );
        config(&workspace.cache_dir, &registry, &packages, "lk", "").replacen("registry {\n", &block, 1)
    };
    let runner_a = Workspace::new();
    runner_a.write_config(&shared(&runner_a, true));
    let pushing_run = apply(&runner_a, "lk");
    let runner_b = Workspace::new();
    runner_b.write_config(&shared(&runner_b, false));
    let shared_run = apply(&runner_b, "lk");
    let same = |w: &Workspace| std::fs::read(w.work_dir().join("out/lk-initrd.img")).unwrap();
    assert!(same(&runner_b) == same(&cold), "runner B wrote the same initrd");

    // The warm image published to a registry of its own (basic auth, as pushes are).
    let target = Registry::start(Some(("pusher", "s3cret")));
    let publishing = format!(
        "{}resource \"resin_publish\" \"lk\" {{\n  images     = [resin_image.img.spec]\n  repository = \"{}/fleet/lk\"\n  tag        = \"v1\"\n}}\n",
        config(&cold.cache_dir, &registry, &packages, "lk", "").replacen(
            "registry {\n",
            &format!("registry {{\n    address    = \"{}\"\n    plain_http = true\n    username   = \"pusher\"\n    password   = \"s3cret\"\n  }}\n  registry {{\n", target.address),
            1
        ),
        target.address
    );
    warm.write_config(&publishing);
    let publish_cold = apply(&warm, "lk");
    let received = |before: &BTreeMap<String, u64>| -> (usize, u64) {
        let after = target.blobs();
        let new: Vec<u64> = after.iter().filter(|(d, _)| !before.contains_key(*d)).map(|(_, s)| *s).collect();
        (new.len(), new.iter().sum())
    };
    let cold_received = received(&BTreeMap::new());

    // One small package changes: its tag moves to new content.
    let changed = [layer(&[("usr/bin/small".to_string(), b"#!/bin/sh\necho small v2\n".to_vec())]), layer(&[])];
    let manifest = put_image(&layout, &changed, "amd64", None, json!({ "Cmd": ["/bin/true"] }));
    set_tag(&layout, "pkg13", &put_index(&layout, vec![manifest]));
    registry.push(&layout, "pkg13", "bench/pkg13", false);
    let changed_run = apply_with(&warm, "lk", &["-target=resin_image.img"]);
    let before = target.blobs();
    let publish_changed = apply(&warm, "lk");
    let changed_received = received(&before);

    let zstd_cold = Workspace::new();
    let zstd = "  compression = \"zstd\"\n";
    zstd_cold.write_config(&config(&zstd_cold.cache_dir, &registry, &packages, "lk", zstd));
    let zstd_run = apply(&zstd_cold, "lk");
    let zstd_run = median_run(zstd_run, || fresh_apply(zstd));

    // A new image: every blob in the cache, no segment (the zstd workspace's cache without
    // its segments; the gzip image's segments were never there).
    let new_image = || {
        std::fs::remove_dir_all(zstd_cold.cache_dir.join("segments")).unwrap();
        let workspace = Workspace::new();
        workspace.write_config(&config(&zstd_cold.cache_dir, &registry, &packages, "lk", ""));
        apply(&workspace, "lk")
    };
    let new_run = median_run(new_image(), new_image);

    // The floors, on the same bytes.
    let cpio = scratch.path().join("initrd.cpio");
    let initrd = cold.work_dir().join("out/lk-initrd.img");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("zcat '{}' > '{}'", initrd.display(), cpio.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let cpio_bytes = std::fs::metadata(&cpio).unwrap().len();
    let blobs_dir = scratch.path().join("layers");
    std::fs::create_dir_all(&blobs_dir).unwrap();
    let mut blob_paths = Vec::new();
    for (index, blob) in layer_blobs.iter().enumerate() {
        let path = blobs_dir.join(format!("{index}.gz"));
        std::fs::write(&path, blob).unwrap();
        blob_paths.push(path.display().to_string());
    }
    let mut zcat_args = vec!["-c"];
    zcat_args.extend(blob_paths.iter().map(String::as_str));
    let (zcat, _) = floor("zcat", &zcat_args, None);
    let (gzip, gzip_size) = floor("gzip", &["-6", "-c"], Some(&cpio));
    let mut pigz_runs: Vec<(f64, u64)> =
        (0..RUNS).map(|_| floor("pigz", &["-6", "-p", &cores, "-c"], Some(&cpio))).collect();
    let pigz_walls: Vec<String> = pigz_runs.iter().map(|(wall, _)| format!("{wall:.2}")).collect();
    pigz_runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (pigz, pigz_size) = pigz_runs[RUNS / 2];
    let (zstd, zstd_size) = floor("zstd", &["-3", &format!("-T{cores}"), "-c", "-q"], Some(&cpio));

    // Many small files: 200k of them in one image, used by two packages.
    let many: Vec<(String, Vec<u8>)> = (0..200_000)
        .map(|i| (format!("data/d{:03}/f{i:06}", i / 1000), format!("file {i}\n").repeat(1 + i % 16).into_bytes()))
        .collect();
    let (lower, upper) = many.split_at(many.len() / 2);
    publish(&registry, &layout, "many", &[layer(lower), layer(upper)], json!({ "Cmd": ["/bin/true"] }));
    let many_workspace = Workspace::new();
    many_workspace.write_config(&config(
        &many_workspace.cache_dir,
        &registry,
        &[("pkg13", "init"), ("many", "onboot"), ("many", "services")],
        "many",
        "",
    ));
    let many_run = apply(&many_workspace, "many");

    println!(
        "uncompressed cpio {:.1} MB; gzip -6 {:.1} MB, pigz -6 {:.1} MB, zstd -3 {:.1} MB",
        cpio_bytes as f64 / 1e6,
        gzip_size as f64 / 1e6,
        pigz_size as f64 / 1e6,
        zstd_size as f64 / 1e6
    );
    println!(
        "{:34} {:>8} {:>8} {:>8} {:>10} {:>12}  each run's wall s, in order",
        "", "wall s", "/pigz", "cpu s", "peak MiB", "initrd/gzip6"
    );
    for (label, run) in [
        ("apply, cold", &cold_run),
        ("apply, new image (blobs cached)", &new_run),
        ("apply, warm", &warm_run),
        ("apply, one package changed", &changed_run),
        ("apply, cold, zstd", &zstd_run),
    ] {
        let walls: Vec<String> = run.walls.iter().map(|wall| format!("{wall:.2}")).collect();
        println!(
            "{label:34} {:8.2} {:8.2} {:8.2} {:>10} {:12.3}  {}",
            run.wall,
            run.wall / pigz,
            run.cpu,
            run.rss_mib,
            run.initrd as f64 / gzip_size as f64,
            walls.join(" ")
        );
    }
    println!("{:34} initrd/zstd-3 {:.3}", "apply, cold, zstd", zstd_run.initrd as f64 / zstd_size as f64);
    println!(
        "{:34} {:8.2} {:8.2} {:>8} {:>10} {:>12}",
        "apply, many files (200k, cold)",
        many_run.wall,
        many_run.wall / pigz,
        format!("{:.2}", many_run.cpu),
        many_run.rss_mib,
        "-"
    );
    for (label, run) in
        [("apply, cold, pushing (runner A)", &pushing_run), ("apply, cold, shared (runner B)", &shared_run)]
    {
        println!(
            "{label:34} {:8.2} {:8.2} {:8.2} {:>10} {:12.3} {:.2}x cold, {:.2}x warm",
            run.wall,
            run.wall / pigz,
            run.cpu,
            run.rss_mib,
            run.initrd as f64 / gzip_size as f64,
            run.wall / cold_run.wall,
            run.wall / warm_run.wall
        );
    }
    for (label, run, (blobs, bytes)) in [
        ("publish, cold", &publish_cold, cold_received),
        ("publish, one package changed", &publish_changed, changed_received),
    ] {
        println!(
            "{label:34} {:8.2} {:8.2} {:8.2} {:>10} the registry received {blobs} blobs, {:.3} MB",
            run.wall,
            run.wall / pigz,
            run.cpu,
            run.rss_mib,
            bytes as f64 / 1e6
        );
    }
    for (label, seconds, walls) in [
        ("floor: zcat of every layer", zcat, String::new()),
        ("floor: gzip -6 of the cpio", gzip, String::new()),
        (&*format!("floor: pigz -6 -p{cores} of the cpio"), pigz, format!("{:35}{}", "", pigz_walls.join(" "))),
        (&*format!("floor: zstd -3 -T{cores} of the cpio"), zstd, String::new()),
    ] {
        println!("{label:34} {seconds:8.2} {:8.2}{walls}", seconds / pigz);
    }
}
