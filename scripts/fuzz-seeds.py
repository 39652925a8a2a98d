#!/usr/bin/env python3
"""Writes starting inputs for the fuzz targets into CORPUS_DIR/<target>/ (small layers
made with Python's tarfile, gzip and the zstd tool when present, covering long names,
PAX headers, links, devices and whiteouts; a few newc writer inputs; a minimal PE image). Idempotent."""

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zlib


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


def tiny_pe():
    """A minimal PE32+ image (x86_64): headers of 0x400 bytes, one .text section."""
    image = bytearray(0x600)
    image[0:2] = b"MZ"
    image[0x3C:0x40] = (0x80).to_bytes(4, "little")
    image[0x80:0x84] = b"PE\0\0"
    image[0x84:0x86] = (0x8664).to_bytes(2, "little")
    image[0x86:0x88] = (1).to_bytes(2, "little")
    image[0x94:0x96] = (240).to_bytes(2, "little")
    optional = 0x98
    for at, value, size in [(0, 0x20B, 2), (32, 0x1000, 4), (36, 0x200, 4), (56, 0x2000, 4), (60, 0x400, 4), (108, 16, 4)]:
        image[optional + at:optional + at + size] = value.to_bytes(size, "little")
    table = optional + 240
    image[table:table + 5] = b".text"
    for at, value in [(8, 0x10), (12, 0x1000), (16, 0x200), (20, 0x400)]:
        image[table + at:table + at + 4] = value.to_bytes(4, "little")
    image[0x400:0x410] = b"stub code here!!"
    return bytes(image)


def raw_deflate(data, level):
    """`data` as a raw deflate stream (no zlib or gzip framing)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


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
        "pe_writer": {"tiny": tiny_pe()},
        # The deflate continuation: raw deflate streams (stored, fixed and dynamic blocks).
        "deflate_continue": {
            "dynamic": raw_deflate(plain, 6),
            "fixed": raw_deflate(b"hello, hello", 1),
            "stored": raw_deflate(bytes(range(256)) * 4, 0),
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
