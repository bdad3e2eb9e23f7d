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
. perf/lib.sh
PORT=$(free_ports 1)
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
wait_port "$PORT"
worker=$(pgrep -P "${pids[0]}" | head -1)
taskset -c 1 ./target/release/examples/http_publish --addr "127.0.0.1:$PORT" --path /pub --rate "$RATE" --seconds $(( SECS + 10 )) &
pids+=($!)
t0=$(cpu_ticks "$worker")
live=$(taskset -c 1 ./target/release/examples/fanout_probe --addr "127.0.0.1:$PORT" --path /sub \
  --clients "$K" --seconds "$SECS" --warmup 5 2>/dev/null)
t1=$(cpu_ticks "$worker")
echo "{\"scenario\":\"live\",\"server\":\"nchan\",\"rate\":$RATE,\"probe\":$live,\"server_cpu_s\":$(cpu_seconds "$t0" "$t1")}"
