#!/usr/bin/env bash
# The fetch path's own cost: CPU of the proxy's Kafka sidecar thread
# (kafka-0: fetch requests, record decoding, handing batches to the shard)
# per million records fetched, at a high record rate with few subscribers,
# so the fan-out does not drown it. Several proxy binaries are measured in
# alternation, ROUNDS times each, in the same run on the same broker: the
# first binary is the baseline the others are compared with.
#
#   perf/fetch_cost.sh OLD_BIN NEW_BIN      # RATE=20000 SECS=15 ROUNDS=2
#
# Each step: a fresh proxy on CPU 0 (one shard), the load generator on
# CPU 1 producing RATE records/s (150-byte values, HEADERS on every record)
# to a 4-partition topic and reading them with K connections; the sidecar's
# CPU and the records fetched are read over the window only. One line per
# step on stdout; a summary per binary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,10p "$0" >&2; exit 2; }
RATE=${RATE:-20000}
SECS=${SECS:-15}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
K=${K:-10}
HEADERS=${HEADERS:-"source=loadgen,kind=order,region=eu"}
./examples/install-nisshi.sh
cargo build --release --bin sse-kafka-load >&2
. perf/lib.sh
load=./target/release/sse-kafka-load
hz=$(getconf CLK_TCK)

read -r KPORT < <(free_ports 1)
BROKER_CPU=1 start_broker "$KPORT"
taskset -c 1 $load produce --brokers "127.0.0.1:$KPORT" --topic items --rate 1 --seconds 0 >/dev/null

# sidecar_ticks PID: user + system ticks of the process's kafka-0 thread.
sidecar_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm")" = kafka-0 ]; then awk '{print $14+$15}' "$t/stat"; return; fi
  done
  echo "no kafka-0 thread in $1" >&2; return 1
}
fetched() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk '/^sse_kafka_records_fetched_total/ {n += $NF} END {print n + 0}'
}

declare -A total_ticks total_records
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    read -r port aport < <(free_ports 2)
    write_proxy_config "$port" "$aport" "$KPORT"
    PROXY_BIN=$bin start_proxy "$aport"
    taskset -c 1 $load run --brokers "127.0.0.1:$KPORT" --topic items --rate "$RATE" --producer-cpu 1 \
      --headers "$HEADERS" --url "http://127.0.0.1:$port/items" --connections "$K" --cpus 1 \
      --warmup "$WARMUP" --seconds "$SECS" >"$work/load.json" 2>"$work/load.err" &
    gen=$!
    sleep "$WARMUP"
    t0=$(sidecar_ticks "$PROXY"); r0=$(fetched "$aport")
    sleep "$SECS"
    t1=$(sidecar_ticks "$PROXY"); r1=$(fetched "$aport")
    wait "$gen" || echo "generator exited $?: $(tail -3 "$work/load.err")" >&2
    kill "$PROXY"; wait "$PROXY" 2>/dev/null || true
    records=$((r1 - r0)); ticks=$((t1 - t0))
    total_ticks[$bin]=$(( ${total_ticks[$bin]:-0} + ticks ))
    total_records[$bin]=$(( ${total_records[$bin]:-0} + records ))
    loss=$(tail -1 "$work/load.json" | jq '.loss')
    awk -v b="$bin" -v r="$round" -v t="$ticks" -v n="$records" -v h="$hz" -v l="$loss" \
      'BEGIN {printf "round %d %s: sidecar %.2f CPU-s, %d records, %.2f CPU-s per M records, loss %s\n", r, b, t/h, n, (n ? t/h/n*1e6 : 0), l}'
  done
done
base=""
for bin in "$@"; do
  per=$(awk -v t="${total_ticks[$bin]}" -v n="${total_records[$bin]}" -v h="$hz" 'BEGIN {printf "%.3f", (n ? t/h/n*1e6 : 0)}')
  [ -n "$base" ] || base=$per
  awk -v b="$bin" -v p="$per" -v base="$base" 'BEGIN {printf "%s: %.3f CPU-s per M records fetched, %.2fx the first binary\n", b, p, (base > 0 ? p/base : 0)}'
done
