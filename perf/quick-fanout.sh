#!/usr/bin/env bash
# The quick fan-out figures of the core issue: K clients on ONE shard
# (proxy pinned to CPU 0) at R records/s (producer and clients on CPU 1),
# then RSS per idle connection with IDLE idle clients.
#
#   perf/quick-fanout.sh [K=1000] [R=100] [SECONDS=20] [IDLE=10000]
#
# Prints one JSON line per measurement. Everything it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-1000}; RATE=${2:-100}; SECS=${3:-20}; IDLE=${4:-10000}
./examples/install-nisshi.sh
cargo build --release --bin sse-kafka --example produce --example fanout_probe >&2
. perf/lib.sh
# The idle phase gets its own ports: a stopped proxy's listener can linger a
# moment while the kernel tears down its io_uring.
read -r KPORT PORT APORT PORT2 APORT2 < <(free_ports 5)
start_broker "$KPORT"
write_proxy_config "$PORT" "$APORT" "$KPORT"
./target/release/examples/produce --brokers "127.0.0.1:$KPORT" --topic items --partitions 4 --rate 1 --count 1 >/dev/null
start_proxy "$APORT"
t0=$(cpu_ticks "$PROXY")
taskset -c 1 ./target/release/examples/produce --brokers "127.0.0.1:$KPORT" --topic items --rate "$RATE" \
  --count $(( RATE * (SECS + 10) )) >/dev/null &
PRODUCER=$!; pids+=($PRODUCER)
live=$(taskset -c 1 ./target/release/examples/fanout_probe --addr "127.0.0.1:$PORT" --path /items \
  --clients "$K" --seconds "$SECS" --warmup 5 2>/dev/null)
t1=$(cpu_ticks "$PROXY")
echo "{\"scenario\":\"live\",\"shards\":1,\"rate\":$RATE,\"probe\":$live,\"proxy_cpu_s\":$(cpu_seconds "$t0" "$t1")}"
kill "$PROXY" "$PRODUCER"; wait "$PROXY" "$PRODUCER" 2>/dev/null || true

# Idle connections: no records flow.
PORT=$PORT2; APORT=$APORT2
write_proxy_config "$PORT" "$APORT" "$KPORT"
start_proxy "$APORT"
before=$(rss_kb "$PROXY")
taskset -c 1 ./target/release/examples/fanout_probe --addr "127.0.0.1:$PORT" --path /items \
  --clients "$IDLE" --seconds 6 --warmup 0 --idle >/dev/null 2>&1 &
probe=$!
for _ in $(seq 100); do
  open=$(curl -s "http://127.0.0.1:$APORT/metrics" | awk '/^sse_kafka_connections_open /{print $2}')
  [ "$open" = "$IDLE" ] && break; sleep 0.1
done
after=$(rss_kb "$PROXY")
wait "$probe" || true
echo "{\"scenario\":\"idle\",\"connections\":$IDLE,\"rss_before_kb\":$before,\"rss_after_kb\":$after,\"bytes_per_connection\":$(( (after - before) * 1024 / IDLE ))}"
