#!/usr/bin/env python3
"""Writes starting inputs for the fuzz targets into CORPUS_DIR/<target>/ (small layers
made with Python's tarfile, gzip and the zstd tool when present, covering long names,
PAX headers, links, devices and whiteouts; a few newc writer inputs). Idempotent."""

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile


def layer(entries, fmt=tarfile.GNU_FORMAT):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            data = b""
            if kind == "file":
                data = extra
                info.size = len(data)
                info.mode = 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = extra
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = extra
            elif kind == "chardev":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def main():
    root = sys.argv[1]
    base = [
        ("./", "dir", None),
        ("etc/", "dir", None),
        ("etc/passwd", "file", b"root:x:0:0::/root:/bin/sh\n"),
        ("etc/link", "hardlink", "etc/passwd"),
        ("bin/sh", "symlink", "/bin/busybox"),
        ("dev/null", "chardev", None),
        ("run/fifo", "fifo", None),
        ("etc/.wh.shadow", "file", b""),
        ("var/.wh..wh..opq", "file", b""),
        ("deep/" + "d" * 150 + "/file", "file", b"x"),
    ]
    plain = layer(base)
    pax = layer([("pax/" + "p" * 200 + "/file", "file", b"pax"), ("a/b", "file", b"1")], tarfile.PAX_FORMAT)
    second = layer([(".wh.etc", "file", b""), ("etc/", "dir", None), ("etc/new", "file", b"new")])
    seeds = {
        "layer_reader": {"plain": plain, "pax": pax, "gzip": gzip.compress(plain, mtime=0)},
        # The union target: a layer count byte, then the layers' bytes split evenly.
        "union": {"one": b"\x00" + plain, "two": b"\x01" + plain + second.ljust(len(plain), b"\0")},
        # The newc target: (name length, kind, size, name, data) records.
        "newc_writer": {
            "files": b"\x03\x01\x00etc" + b"\x09\x00\x03etc/hosts" + b"abc" + b"\x06\x02\x07bin/sh" + b"busybox",
            "trailer": b"\x0a\x00\x00TRAILER!!!",
        },
    }
    zstd = shutil.which("zstd")
    if zstd:
        seeds["layer_reader"]["zstd"] = subprocess.run([zstd, "-q", "-c", "--check"], input=plain, capture_output=True, check=True).stdout
    for target, files in seeds.items():
        directory = os.path.join(root, target)
        os.makedirs(directory, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(directory, "seed-" + name), "wb") as out:
                out.write(data)


if __name__ == "__main__":
    main()
