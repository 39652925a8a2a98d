#!/usr/bin/env python3
"""Writes the demo's packages into a local OCI image layout, offline and deterministically.

    make-demo-layout.py DIR

Each package is one gzip'd tar layer with fixed mtimes and owners, so the same script
always writes the same digests. Tags: kernel, init, hello (a service), sysctl (onboot).
The kernel package is a stand-in with LinuxKit's layout (kernel, kernel.tar): the demo
resolves and pulls, it does not boot.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

REF_NAME = "org.opencontainers.image.ref.name"


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def layer(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (mode, content) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.mode, info.size, info.mtime = mode, len(content), 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(tar_bytes)
    return packed.getvalue(), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def image(layout, files, config, labels=None):
    data, diff_id = layer(files)
    layer_desc = dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **blob(layout, data))
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": dict(config, Labels=labels or {}),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    cfg_desc = dict(mediaType="application/vnd.oci.image.config.v1+json",
                    **blob(layout, json.dumps(cfg, sort_keys=True).encode()))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg_desc,
        "layers": [layer_desc],
    }
    return dict(mediaType="application/vnd.oci.image.manifest.v1+json",
                **blob(layout, json.dumps(manifest, sort_keys=True).encode()))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    layout = sys.argv[1]
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    modules, _ = layer({"lib/modules/demo/modules.dep": (0o644, b"")})
    packages = {
        "kernel": image(layout, {
            "kernel": (0o644, b"demo kernel stand-in\n"),
            "kernel.tar": (0o644, modules),
        }, {"Cmd": ["/bin/true"]}),
        "init": image(layout, {
            "init": (0o755, b"#!/bin/sh\necho 'resin demo init'\nexec /bin/sh\n"),
            "etc/issue": (0o644, b"resin demo\n"),
        }, {"Cmd": ["/init"]}),
        "hello": image(layout, {
            "usr/bin/hello": (0o755, b"#!/bin/sh\nwhile true; do echo hello from a service; sleep 60; done\n"),
        }, {"Entrypoint": ["/usr/bin/hello"], "Env": ["PATH=/usr/bin:/bin"]},
            labels={"org.mobyproject.config": json.dumps({"capabilities": ["CAP_NET_BIND_SERVICE"]})}),
        "sysctl": image(layout, {
            "usr/bin/apply-sysctl": (0o755, b"#!/bin/sh\necho applying sysctls\n"),
        }, {"Cmd": ["/usr/bin/apply-sysctl"]}),
    }
    index = {"schemaVersion": 2, "manifests": []}
    for tag, desc in sorted(packages.items()):
        index["manifests"].append(dict(desc, annotations={REF_NAME: tag}))
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
    for tag, desc in sorted(packages.items()):
        print(f"{tag:8} {desc['digest']}")


if __name__ == "__main__":
    main()
