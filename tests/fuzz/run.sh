#!/usr/bin/env bash
# Builds the fuzz targets with nightly (cargo-fuzz: libFuzzer, with debug
# assertions and overflow checks) and runs each for SECONDS (default 60),
# one after the other, from its committed seeds. Fails if any target crashes, hangs or
# runs out of memory; prints each target's executions at the end.
#
#   tests/fuzz/run.sh [SECONDS]
#
# The committed seeds (corpus/<target>/) are only read: each target grows
# a working corpus of its own under target/corpus/<target>/, kept between
# runs so that later runs start where earlier ones stopped. A crashing
# input is written to artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz <target> <file>
# and minimize it with `cargo +nightly fuzz tmin --fuzz-dir tests/fuzz
# <target> <file>` (add `-s none --target-dir "$FUZZ_TARGET_DIR"` to both
# to reuse run.sh's build).
#
# Builds go to FUZZ_TARGET_DIR (default ~/.cache/sse-kafka-fuzz/target),
# outside the work tree: CI runs in a fresh clone each time, and a build
# from scratch (every dependency with AddressSanitizer and one codegen
# unit) takes many minutes on a small machine, while with the
# dependencies kept only the server crate and the targets are compiled
# again. A checkout of its own can set FUZZ_TARGET_DIR=tests/fuzz/target.
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]  (a whole number of seconds per target, default 60)" >&2
  exit 2
fi

cd "$(dirname "$0")"
fuzz_dir=$(pwd)
cd ../..
target_dir=${FUZZ_TARGET_DIR:-${HOME:-/tmp}/.cache/sse-kafka-fuzz/target}
mkdir -p "$target_dir"

# cargo-fuzz is only the driver: installed once, then reused.
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install "cargo-fuzz@$CARGO_FUZZ_VERSION" --locked
fi

targets=(request_head event_id sse_parser config filter record_batch)

# The longest input libFuzzer may try, per target. The request parser's
# limits (a 20 KiB request line, a 32 KiB head) are only reached by longer
# inputs than libFuzzer's default of 4 KiB; the others' limits are checked
# before any work, or are far below it.
max_len() {
  case $1 in
    request_head) echo 33000 ;;
    *) echo 4096 ;;
  esac
}

# Without AddressSanitizer: the code the targets reach is safe Rust (the
# crate's `unsafe` is confined to src/sys/, which no target calls), so it
# would find nothing the bounds checks miss, at an eighth of the speed.
sanitizer=none
cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" -s "$sanitizer"

declare -A executions rates outcome
failed=0
for target in "${targets[@]}"; do
  work="$fuzz_dir/target/corpus/$target"
  artifacts="$fuzz_dir/artifacts/$target"
  log="$fuzz_dir/target/logs/$target.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  cp "$fuzz_dir/corpus/$target"/* "$work"/
  echo "== $target: ${seconds}s"
  # -timeout: an input that takes 10 s is a hang (a real one takes
  # microseconds). -print_final_stats: the counts read below.
  if cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" -s "$sanitizer" \
    "$target" "$work" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    outcome[$target]=ok
  else
    outcome[$target]="FAILED (log: $log)"
    failed=1
    # The crash report: libFuzzer's and the panic's lines.
    grep -E -A12 "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | head -40 >&2 || true
  fi
  executions[$target]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rates[$target]=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
done

echo
printf '%-14s %14s %10s  %s\n' target executions exec/s outcome
for target in "${targets[@]}"; do
  printf '%-14s %14s %10s  %s\n' "$target" "${executions[$target]:-?}" \
    "${rates[$target]:-?}" "${outcome[$target]}"
done
exit "$failed"
