#!/usr/bin/env bash
# What an idle proxy costs in CPU: two shards (--cpus 0,1), one route, a
# broker with the topic and no records, no clients. Each build in $BINS
# (default: this checkout's release build) runs $ROUNDS times, in turn, for
# $SECS seconds after a 3 s settle; the figure is the CPU time of all the
# proxy's threads (/proc/PID/task/*/schedstat, ns) per second of wall time.
# Its sidecars' Kafka long polls (fetch_max_wait 20 ms) are part of it.
#
#   perf/idle_cpu.sh
#   BINS="/tmp/base/sse-kafka ./target/release/sse-kafka" ROUNDS=3 perf/idle_cpu.sh
#
# One JSON line per run to $OUT (default perf/results/idle_cpu.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
BINS=${BINS:-./target/release/sse-kafka}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-30}
OUT=${OUT:-perf/results/idle_cpu.jsonl}
./examples/install-nisshi.sh
cargo build --release --bin sse-kafka --bin sse-kafka-load >&2
. perf/lib.sh
read -r KPORT < <(free_ports 1)
start_broker "$KPORT"
./target/release/sse-kafka-load produce --brokers "127.0.0.1:$KPORT" --topic items --rate 1 --seconds 0 >/dev/null
ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {print s}'; }
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty)"
for round in $(seq "$ROUNDS"); do
  for bin in $BINS; do
    read -r port aport < <(free_ports 2)
    write_proxy_config "$port" "$aport" "$KPORT"
    "$bin" run --config "$work/proxy.yaml" --cpus 0,1 2>"$work/proxy.log" &
    P=$!; pids+=($P)
    ready=no
    for _ in $(seq 100); do
      curl -sf "http://127.0.0.1:$aport/health/ready" >/dev/null && { ready=yes; break; }
      sleep 0.1
    done
    [ $ready = yes ] || { echo "proxy not ready:" >&2; cat "$work/proxy.log" >&2; exit 1; }
    sleep 3
    a=$(ns $P); sleep "$SECS"; b=$(ns $P)
    us=$(( (b - a) / (SECS * 1000) ))
    echo "$bin, round $round: $us us of CPU per second, idle" >&2
    jq -cn --arg bin "$bin" --arg commit "$commit" --argjson round "$round" --argjson us "$us" \
      --argjson threads "$(ls /proc/$P/task | wc -l)" \
      '{bench: "idle_cpu", bin: $bin, commit: $commit, round: $round, cpu_us_per_s: $us, threads: $threads}' >>"$OUT"
    stop $P
  done
done
