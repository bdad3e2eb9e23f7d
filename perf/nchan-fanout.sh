#!/usr/bin/env bash
# The quick fan-out scenario against nginx + nchan (the anchor to beat):
# one nginx worker pinned to CPU 0, a publisher POSTing the same JSON
# records at R/s and K EventSource clients on CPU 1.
#
#   perf/nchan-fanout.sh [K=1000] [R=100] [SECONDS=20]
#
# Needs Debian's nginx-light and libnginx-mod-nchan (installed when
# missing). Prints one JSON line. Everything it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-1000}; RATE=${2:-100}; SECS=${3:-20}
if [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null
fi
cargo build --release --example http_publish --example fanout_probe >&2
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity 1;
worker_rlimit_nofile 20000;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 19000; }
http {
  access_log off;
  client_body_temp_path $work;
  server {
    listen 127.0.0.1:$PORT backlog=8192;
    location = /pub { nchan_publisher; nchan_channel_id items; nchan_message_buffer_length 1000; nchan_message_timeout 60s; }
    location = /sub { nchan_subscriber eventsource; nchan_channel_id items; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
worker=$(pgrep -P "${pids[0]}" | head -1)
taskset -c 1 ./target/release/examples/http_publish --addr "127.0.0.1:$PORT" --path /pub --rate "$RATE" --seconds $(( SECS + 10 )) &
pids+=($!)
t0=$(awk '{print $14+$15}' "/proc/$worker/stat")
live=$(taskset -c 1 ./target/release/examples/fanout_probe --addr "127.0.0.1:$PORT" --path /sub \
  --clients "$K" --seconds "$SECS" --warmup 5 2>/dev/null)
t1=$(awk '{print $14+$15}' "/proc/$worker/stat")
hz=$(getconf CLK_TCK)
echo "{\"scenario\":\"live\",\"server\":\"nchan\",\"rate\":$RATE,\"probe\":$live,\"server_cpu_s\":$(awk -v a="$t0" -v b="$t1" -v h="$hz" 'BEGIN{printf "%.2f", (b-a)/h}')}"
