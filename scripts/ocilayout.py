"""Writing OCI image layouts deterministically, from directory trees or file maps.

Used by the demo and boot-fixture builders. Layers are gzip'd tars with sorted entries,
owner root and mtime 0, so the same input always gives the same digests.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

REF_NAME = "org.opencontainers.image.ref.name"
ARCH_OF = {"amd64": "amd64", "arm64": "arm64"}


def _blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def _normalise(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def layer_from_tree(root):
    """A tar of everything under `root` (paths relative to it), in sorted order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                arcname = os.path.relpath(path, root)
                tar.add(path, arcname, recursive=False, filter=_normalise)
    return raw.getvalue()


def layer_from_files(files):
    """A tar from {path: (mode, bytes)}."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (mode, content) in sorted(files.items()):
            info = _normalise(tarfile.TarInfo(name))
            info.mode, info.size = mode, len(content)
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def image(layout, tar_bytes, arch, config=None):
    """Writes one single-layer image; returns its manifest descriptor (with platform)."""
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(tar_bytes)
    layer = dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, packed.getvalue()))
    cfg = {
        "architecture": ARCH_OF[arch],
        "os": "linux",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]},
    }
    cfg_desc = dict(mediaType="application/vnd.oci.image.config.v1+json", **_blob(layout, json.dumps(cfg, sort_keys=True).encode()))
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg_desc, "layers": [layer]}
    desc = dict(mediaType="application/vnd.oci.image.manifest.v1+json", **_blob(layout, json.dumps(manifest, sort_keys=True).encode()))
    desc["platform"] = {"os": "linux", "architecture": ARCH_OF[arch]}
    return desc


def index(layout, manifests):
    """Writes an image index over platform manifests; returns its descriptor."""
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    return dict(mediaType="application/vnd.oci.image.index.v1+json", **_blob(layout, json.dumps(doc, sort_keys=True).encode()))


def tag(layout, name, descriptor):
    """Points tag `name` of the layout's index.json at `descriptor`."""
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    path = os.path.join(layout, "index.json")
    doc = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(path):
        with open(path) as f:
            doc = json.load(f)
    entry = {k: v for k, v in descriptor.items() if k != "platform"}
    entry["annotations"] = {REF_NAME: name}
    doc["manifests"] = [m for m in doc["manifests"] if m.get("annotations", {}).get(REF_NAME) != name] + [entry]
    doc["manifests"].sort(key=lambda m: m["annotations"][REF_NAME])
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
