#!/usr/bin/env bash
# Builds the boot-test packages from Debian packages into an OCI image layout, for amd64
# and arm64 (each tag is an index of both):
#   kernel  the current Debian kernel and a kernel.tar with overlay.ko
#   init    busybox-static, runc with its libraries, and the fixture init (init, resin-init)
#   probe   busybox-static and the probe script the boot tests run as containers
#   efi-stub  systemd's UEFI stub from systemd-boot-efi (for UKIs)
#
#   build.sh LAYOUT_DIR
#
# Downloads go to .tools/debs (kept, so a second build is offline); the layout is written
# again when what it is made of changed. Needs dpkg-deb and apt-get (Debian); adds the
# arm64 architecture to apt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
layout="$1"
debs="$top/.tools/debs"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
  $sudo apt-get update -qq
fi

# The packages, downloaded when missing: "arch package deb" lines.
chosen=()
for arch in amd64 arm64; do
  mkdir -p "$debs/$arch"
  kernel_package=$(apt-cache depends "linux-image-$arch:$arch" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ && !found {print $2; found = 1}')
  if [ -z "$kernel_package" ]; then
    $sudo apt-get update -qq
    kernel_package=$(apt-cache depends "linux-image-$arch:$arch" | awk '/Depends: linux-image-[0-9]/ && !found {print $2; found = 1}')
  fi
  kernel_package="${kernel_package%%:*}"
  for package in "$kernel_package" busybox-static runc libseccomp2 libc6 systemd-boot-efi; do
    if ! ls "$debs/$arch/${package}_"*"_$arch.deb" >/dev/null 2>&1; then
      (cd "$debs/$arch" && apt-get download -q "$package:$arch" >/dev/null 2>&1) \
        || { echo "cannot download $package:$arch" >&2; exit 1; }
    fi
    deb=$(ls "$debs/$arch/${package}_"*"_$arch.deb" | sort | tail -n 1)
    role=package
    [ "$package" = "$kernel_package" ] && role=kernel
    chosen+=("$arch $role $package $deb")
  done
done

# The layout is a function of those packages, these scripts, the builder and the lock
# file: an unchanged layout is kept.
stamp=$( (printf '%s\n' "${chosen[@]##*/}" && cd "$top" && sha256sum scripts/boot-fixtures/* \
  examples/boot_fixtures.rs testkit/src/fixtures.rs Cargo.lock) | sha256sum | cut -d' ' -f1)
if [ -f "$layout/index.json" ] && [ "$(cat "$layout/.resin-stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

for line in "${chosen[@]}"; do
  read -r arch role package deb <<< "$line"
  mkdir -p "$staging/$arch/$package"
  if [ "$role" = kernel ]; then
    # Only the kernel and overlay.ko are needed: extract just those.
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$staging/$arch/$package" --wildcards './boot/vmlinuz-*' '*/kernel/fs/overlayfs/overlay.ko*'
    echo "$package" > "$staging/$arch/kernel-package"
  else
    dpkg-deb -x "$deb" "$staging/$arch/$package"
  fi
done

rm -rf "$layout"
(cd "$top" && cargo run --quiet --example boot_fixtures -- "$staging" "$layout")
echo "$stamp" > "$layout/.resin-stamp"
