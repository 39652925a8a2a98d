#!/usr/bin/env bash
# Installs a provider binary into a Terraform filesystem mirror, in the layout `terraform
# init` looks for:
#   <mirror>/registry.terraform.io/resinstack/resin/<version>/<os>_<arch>/terraform-provider-resin_v<version>
#
#   install-mirror.sh BINARY MIRROR_DIR VERSION
set -euo pipefail
binary="$1"
mirror="$2"
version="$3"
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch="$(uname -m)" ;;
esac
target="$mirror/registry.terraform.io/resinstack/resin/$version/linux_$arch"
mkdir -p "$target"
install -m 0755 "$binary" "$target/terraform-provider-resin_v$version"
echo "$target/terraform-provider-resin_v$version"
