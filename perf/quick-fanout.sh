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
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# Distinct free ports (held open together while they are picked). The idle
# phase gets its own: a stopped proxy's listener can linger a moment while
# the kernel tears down its io_uring.
read -r KPORT PORT APORT PORT2 APORT2 < <(python3 -c 'import socket
s=[socket.socket() for _ in range(5)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
(cd "$work" && exec "${NISSHI_BIN:-$HOME/.cargo/bin/nisshi}" broker --listener-url "tcp://127.0.0.1:$KPORT" \
  --advertised-listener-url "tcp://127.0.0.1:$KPORT" --storage-engine memory://nisshi/ >"$work/broker.log" 2>&1) &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KPORT") 2>/dev/null && break; sleep 0.1; done
# nisshi holds a long-poll fetch for its whole max_wait even when records
# arrive, so a short wait keeps its share of the latency small; but it also
# treats the wait as a deadline for assembling records (~5 ms), so not
# shorter than 10 ms.
cat >"$work/proxy.yaml" <<YAML
listen: 127.0.0.1:$PORT
admin_listen: 127.0.0.1:$APORT
kafka:
  bootstrap: ["127.0.0.1:$KPORT"]
  fetch_max_wait: 20ms
routes:
  - path: /items
    topic: items
YAML
./target/release/examples/produce --brokers "127.0.0.1:$KPORT" --topic items --partitions 4 --rate 1 --count 1 >/dev/null
run_proxy() {
  ./target/release/sse-kafka run --config "$work/proxy.yaml" --cpus 0 2>"$work/proxy.log" &
  PROXY=$!; pids+=($PROXY)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$APORT/health/ready" >/dev/null && return 0; sleep 0.1; done
  echo "proxy not ready:" >&2; cat "$work/proxy.log" >&2; exit 1
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

run_proxy
t0=$(cpu_ticks "$PROXY")
taskset -c 1 ./target/release/examples/produce --brokers "127.0.0.1:$KPORT" --topic items --rate "$RATE" \
  --count $(( RATE * (SECS + 10) )) >/dev/null &
PRODUCER=$!; pids+=($PRODUCER)
live=$(taskset -c 1 ./target/release/examples/fanout_probe --addr "127.0.0.1:$PORT" --path /items \
  --clients "$K" --seconds "$SECS" --warmup 5 2>/dev/null)
t1=$(cpu_ticks "$PROXY")
hz=$(getconf CLK_TCK)
echo "{\"scenario\":\"live\",\"shards\":1,\"rate\":$RATE,\"probe\":$live,\"proxy_cpu_s\":$(awk -v a="$t0" -v b="$t1" -v h="$hz" 'BEGIN{printf "%.2f", (b-a)/h}')}"
kill "$PROXY" "$PRODUCER"; wait "$PROXY" "$PRODUCER" 2>/dev/null || true

# Idle connections: no records flow.
sed -i "s/:$PORT\$/:$PORT2/; s/:$APORT\$/:$APORT2/" "$work/proxy.yaml"
PORT=$PORT2; APORT=$APORT2

run_proxy
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
