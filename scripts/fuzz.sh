#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/) with libFuzzer's coverage instrumentation on the stable
# toolchain, as cargo-fuzz does with `--sanitizer none`, and runs each for SECONDS.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds, every target
# The corpus of each target lives in target/fuzz-corpus/<target> (seeded by
# scripts/fuzz-seeds.py) and grows across runs; crashes are written to
# target/fuzz-artifacts/<target>/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(layer_reader union newc_writer pe_writer)

host=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps the instrumentation out of build scripts and proc macros.
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Ccodegen-units=16" \
  cargo build --profile fuzz --quiet --package resin-fuzz --target "$host" \
  --target-dir target/fuzz-build --bins

python3 scripts/fuzz-seeds.py target/fuzz-corpus
for target in "${targets[@]}"; do
  corpus="target/fuzz-corpus/$target"
  artifacts="target/fuzz-artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzzing $target for ${seconds}s"
  "target/fuzz-build/$host/fuzz/$target" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" 2>&1 \
    | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|.*panicked at|Test unit written)' || true
  if [ -n "$(ls -A "$artifacts")" ]; then
    echo "fuzz target $target found crashing inputs in $artifacts:" >&2
    ls "$artifacts" >&2
    exit 1
  fi
done
