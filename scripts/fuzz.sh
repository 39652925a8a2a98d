#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/) with libFuzzer's coverage instrumentation on the stable
# toolchain, as cargo-fuzz does with `--sanitizer none`, and runs each for SECONDS.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds, every target
#   scripts/fuzz.sh build                     only build them
# The corpus of each target lives in target/fuzz-corpus/<target> (seeded by
# scripts/fuzz-seeds.py) and grows across runs; crashes are written to
# target/fuzz-artifacts/<target>/ and fail the run. As many targets run at once as there
# are cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(layer_reader union newc_writer pe_writer deflate_continue)

host=$(rustc -vV | sed -n 's/^host: //p')
# Linted elsewhere (make test builds every target with clippy's lints): built with rustc.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
# --target keeps the instrumentation out of build scripts and proc macros.
# -D warnings: the library without its provider feature must build without a warning
# (items only the provider uses would be dead code there; dependencies' lints are capped).
RUSTFLAGS="-Dwarnings --cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Ccodegen-units=16" \
  cargo build --profile fuzz --quiet --package resin-fuzz --target "$host" \
  --target-dir target/fuzz-build --bins
[ "$seconds" = build ] && exit 0

python3 scripts/fuzz-seeds.py target/fuzz-corpus
# One target per core at a time (libFuzzer runs one process per target); each one's
# summary is printed when it ends.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
fuzz() {
  local target=$1 corpus="target/fuzz-corpus/$1" artifacts="target/fuzz-artifacts/$1"
  mkdir -p "$corpus" "$artifacts"
  "target/fuzz-build/$host/fuzz/$target" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" \
    > "$logs/$target" 2>&1 || true
}
report() {
  local target=$1 artifacts="target/fuzz-artifacts/$1"
  echo "fuzzed $target for ${seconds}s"
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|.*panicked at|Test unit written)' \
    "$logs/$target" || true
  if [ -n "$(ls -A "$artifacts")" ]; then
    echo "fuzz target $target found crashing inputs in $artifacts:" >&2
    ls "$artifacts" >&2
    return 1
  fi
}
cores=$(nproc)
failed=0
for ((i = 0; i < ${#targets[@]}; i += cores)); do
  batch=("${targets[@]:i:cores}")
  for target in "${batch[@]}"; do fuzz "$target" & done
  wait
  for target in "${batch[@]}"; do report "$target" || failed=1; done
done
exit $failed
