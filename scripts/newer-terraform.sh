#!/usr/bin/env bash
# Prints the path of the `terraform` found on PATH when it is newer than the pinned one
# the tests install (so `make test` runs the acceptance tests on it too), else nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
pinned="$PWD/.tools/bin/terraform"
found=$(command -v terraform || true)
[ -n "$found" ] || exit 0
[ "$(readlink -f "$found")" != "$(readlink -f "$pinned")" ] || exit 0
version_of() {
  "$1" version -json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["terraform_version"])'
}
found_version=$(version_of "$found")
pinned_version=$(version_of "$pinned")
newest=$(printf '%s\n%s\n' "$pinned_version" "$found_version" | sort -V | tail -n 1)
if [ "$found_version" != "$pinned_version" ] && [ "$newest" = "$found_version" ]; then
  echo "$found"
fi
