#!/usr/bin/env bash
# One standard scenario against sse-kafka, measured with sse-kafka-load:
# the broker unpinned, the proxy pinned to CPU 0 (one shard), the load
# generator (subscribers and producer) pinned to CPU 1.
#
#   perf/scenario.sh A|B|C|D [SECONDS=30] [extra sse-kafka-load flags...]
#
#   A: K=1,000 at 100 records/s     B: K=10,000 at 10 records/s
#   C: K=10,000 at 20 records/s     D: K=10,000 at $RATE records/s (search it)
#
# Writes perf/results/<scenario>-sse-kafka.json: the generator's report plus
# the proxy's CPU seconds and RSS. Everything it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:?scenario A, B, C or D}; SECS=${2:-30}; shift $(( $# > 1 ? 2 : 1 ))
case "$SCENARIO" in
  A) K=1000; RATE=100 ;;
  B) K=10000; RATE=10 ;;
  C) K=10000; RATE=20 ;;
  D) K=10000; RATE=${RATE:?set RATE for scenario D} ;;
  *) echo "unknown scenario $SCENARIO" >&2; exit 2 ;;
esac
./examples/install-nisshi.sh
cargo build --release --bin sse-kafka --bin sse-kafka-load >&2
mkdir -p perf/results
. perf/lib.sh
read -r KPORT PORT APORT < <(free_ports 3)
start_broker "$KPORT"
write_proxy_config "$PORT" "$APORT" "$KPORT"
# Create the topic before the proxy looks for it.
./target/release/sse-kafka-load produce --brokers "127.0.0.1:$KPORT" --topic items --rate 1 --seconds 0 >/dev/null
start_proxy "$APORT"
t0=$(cpu_ticks "$PROXY")
report=$(./target/release/sse-kafka-load run --brokers "127.0.0.1:$KPORT" --topic items --rate "$RATE" \
  --url "http://127.0.0.1:$PORT/items" --connections "$K" --cpus 1 --producer-cpu 1 \
  --warmup 5 --seconds "$SECS" "$@" 2>"$work/load.err" | tail -1)
t1=$(cpu_ticks "$PROXY")
rss=$(rss_kb "$PROXY")
cpu=$(cpu_seconds "$t0" "$t1")
out="perf/results/$SCENARIO-sse-kafka.json"
echo "{\"scenario\":\"$SCENARIO\",\"server\":\"sse-kafka\",\"k\":$K,\"rate\":$RATE,\"proxy_cpu_s\":$cpu,\"proxy_rss_kb\":$rss,\"load\":$report}" | tee "$out"
