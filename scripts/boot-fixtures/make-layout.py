#!/usr/bin/env python3
"""Assembles the boot-test packages from extracted Debian packages (see build.sh).

    make-layout.py STAGING LAYOUT
"""
import glob
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import ocilayout  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# busybox applets the fixture scripts use.
APPLETS = "sh ash mount umount mkdir cp cat echo ls awk tr sleep uname insmod poweroff switch_root basename grep".split()


def copy_tree(source, target):
    """Copies a tree keeping symlinks, merging into target."""
    for dirpath, dirnames, filenames in os.walk(source):
        relative = os.path.relpath(dirpath, source)
        os.makedirs(os.path.join(target, relative), exist_ok=True)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            destination = os.path.join(target, relative, name)
            if os.path.islink(path):
                if os.path.lexists(destination):
                    os.remove(destination)
                os.symlink(os.readlink(path), destination)
            elif os.path.isfile(path):
                shutil.copy2(path, destination)


def busybox_root(root, staging_arch):
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy2(os.path.join(staging_arch, "busybox-static", "bin", "busybox"), os.path.join(root, "bin", "busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    for directory in ["proc", "sys", "dev", "run", "tmp", "etc", "sbin", "usr/bin"]:
        os.makedirs(os.path.join(root, directory), exist_ok=True)


def main():
    staging, layout = sys.argv[1], sys.argv[2]
    tags = {"kernel": [], "init": [], "probe": []}
    for arch in ["amd64", "arm64"]:
        staging_arch = os.path.join(staging, arch)
        kernel_package = open(os.path.join(staging_arch, "kernel-package")).read().strip()
        extracted = os.path.join(staging_arch, kernel_package)
        with tempfile.TemporaryDirectory() as work:
            # kernel: the vmlinuz as `kernel`, overlay.ko in `kernel.tar`.
            modules = os.path.join(work, "modules")
            for module in glob.glob(os.path.join(extracted, "lib/modules/*/kernel/fs/overlayfs/overlay.ko*")):
                relative = os.path.relpath(module, extracted)
                os.makedirs(os.path.dirname(os.path.join(modules, relative)), exist_ok=True)
                shutil.copy2(module, os.path.join(modules, relative))
            kernel_files = {
                "kernel": (0o644, open(glob.glob(os.path.join(extracted, "boot/vmlinuz-*"))[0], "rb").read()),
                "kernel.tar": (0o644, ocilayout.layer_from_tree(modules)),
            }
            tags["kernel"].append(ocilayout.image(layout, ocilayout.layer_from_files(kernel_files), arch))

            # init: busybox, runc and its libraries, the fixture init.
            init = os.path.join(work, "init")
            busybox_root(init, staging_arch)
            for package in ["runc", "libseccomp2", "libc6"]:
                copy_tree(os.path.join(staging_arch, package), init)
            shutil.rmtree(os.path.join(init, "usr/share"), ignore_errors=True)
            shutil.copy2(os.path.join(HERE, "init"), os.path.join(init, "init"))
            shutil.copy2(os.path.join(HERE, "resin-init"), os.path.join(init, "sbin/resin-init"))
            os.makedirs(os.path.join(init, "etc/resin"), exist_ok=True)
            shutil.copy2(os.path.join(HERE, "mounts.awk"), os.path.join(init, "etc/resin/mounts.awk"))
            tags["init"].append(ocilayout.image(layout, ocilayout.layer_from_tree(init), arch, {"Cmd": ["/init"]}))

            # probe: busybox and the probe script.
            probe = os.path.join(work, "probe")
            busybox_root(probe, staging_arch)
            shutil.copy2(os.path.join(HERE, "probe"), os.path.join(probe, "usr/bin/probe"))
            os.makedirs(os.path.join(probe, "probe"), exist_ok=True)
            config = {"Entrypoint": ["/usr/bin/probe"], "Cmd": ["PROBE"], "Env": ["PATH=/bin:/usr/bin"]}
            tags["probe"].append(ocilayout.image(layout, ocilayout.layer_from_tree(probe), arch, config))
    for name, manifests in tags.items():
        ocilayout.tag(layout, name, ocilayout.index(layout, manifests))
        print(f"{name:7} {', '.join(m['digest'][:19] for m in manifests)}")


if __name__ == "__main__":
    main()
