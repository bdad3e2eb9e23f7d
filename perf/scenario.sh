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
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
read -r KPORT PORT APORT < <(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
(cd "$work" && exec "${NISSHI_BIN:-$HOME/.cargo/bin/nisshi}" broker --listener-url "tcp://127.0.0.1:$KPORT" \
  --advertised-listener-url "tcp://127.0.0.1:$KPORT" --storage-engine memory://nisshi/ >"$work/broker.log" 2>&1) &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KPORT") 2>/dev/null && break; sleep 0.1; done
cat >"$work/proxy.yaml" <<YAML
listen: 127.0.0.1:$PORT
admin_listen: 127.0.0.1:$APORT
kafka:
  bootstrap: ["127.0.0.1:$KPORT"]
  fetch_max_wait: 20ms   # nisshi: see perf/quick-fanout.sh
routes:
  - path: /items
    topic: items
YAML
# Create the topic before the proxy looks for it.
./target/release/sse-kafka-load produce --brokers "127.0.0.1:$KPORT" --topic items --rate 1 --seconds 0 >/dev/null
./target/release/sse-kafka run --config "$work/proxy.yaml" --cpus 0 2>"$work/proxy.log" &
PROXY=$!; pids+=($PROXY)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$APORT/health/ready" >/dev/null && break; sleep 0.1; done
t0=$(awk '{print $14+$15}' "/proc/$PROXY/stat")
report=$(./target/release/sse-kafka-load run --brokers "127.0.0.1:$KPORT" --topic items --rate "$RATE" \
  --url "http://127.0.0.1:$PORT/items" --connections "$K" --cpus 1 --producer-cpu 1 \
  --warmup 5 --seconds "$SECS" "$@" 2>"$work/load.err" | tail -1)
t1=$(awk '{print $14+$15}' "/proc/$PROXY/stat")
rss=$(awk '/VmRSS/{print $2}' "/proc/$PROXY/status")
cpu=$(awk -v a="$t0" -v b="$t1" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}')
out="perf/results/$SCENARIO-sse-kafka.json"
echo "{\"scenario\":\"$SCENARIO\",\"server\":\"sse-kafka\",\"k\":$K,\"rate\":$RATE,\"proxy_cpu_s\":$cpu,\"proxy_rss_kb\":$rss,\"load\":$report}" | tee "$out"
