# Shared by the perf scripts (sourced, not run): a scratch directory whose
# processes are stopped on exit, free ports, the broker, the proxy, and CPU
# and memory readings from /proc.

work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# stop PID...: ends processes this script started and waited for no longer,
# and drops them from lib.sh's list, so the exit trap never signals a PID
# the system may since have given to another process.
stop() {
  local p keep=() q
  kill "$@" 2>/dev/null || true
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
  for q in "${pids[@]}"; do
    for p in "$@"; do [ "$q" = "$p" ] && continue 2; done
    keep+=("$q")
  done
  pids=("${keep[@]}")
}

# raise_connection_queues: a tuned host's connection queues (README,
# Tuning) for the run, put back on exit: past them a burst's surplus is
# accepted by SYN cookie, before its request is in.
raise_connection_queues() {
  old_queues="$(sysctl -n net.core.somaxconn) $(sysctl -n net.ipv4.tcp_max_syn_backlog)"
  sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
  trap 'restore_connection_queues; cleanup' EXIT
}
restore_connection_queues() {
  local s q
  read -r s q <<<"$old_queues"
  sysctl -qw net.core.somaxconn="$s" net.ipv4.tcp_max_syn_backlog="$q"
}

# free_ports N: N distinct free loopback ports, held open together while
# they are picked so none is handed out twice. They come from below the
# kernel's ephemeral range: a port from inside it can be taken as a source
# port by one of the thousands of client connections before the server
# binds it.
free_ports() {
  python3 -c 'import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
held = []
while len(held) < int(sys.argv[1]):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(10000, low)))
        held.append(s)
    except OSError:
        s.close()
print(*[x.getsockname()[1] for x in held])' "$1"
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s at most).
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1" >&2; return 1
}

# start_broker PORT: a nisshi broker run from $work (it reads .env from its
# working directory), with memory storage unless $BROKER_STORAGE names
# another (sqlite://FILE keeps the log across a restart); on CPU
# $BROKER_CPU if set. Sets BROKER to its PID.
start_broker() {
  (cd "$work" && exec ${BROKER_CPU:+taskset -c "$BROKER_CPU"} "${NISSHI_BIN:-$HOME/.cargo/bin/nisshi}" broker --listener-url "tcp://127.0.0.1:$1" \
    --advertised-listener-url "tcp://127.0.0.1:$1" --storage-engine "${BROKER_STORAGE:-memory://nisshi/}" >>"$work/broker.log" 2>&1) &
  BROKER=$!; pids+=($BROKER)
  wait_port "$1"
}

# metric ADMIN_PORT NAME: the value of one unlabelled metric of the proxy.
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# slow_clients PORT N SECONDS [PATH]: in the background, N connections that
# send a request for PATH (default /items) and never read, with a 4 KiB
# receive buffer, held for SECONDS; sets SLOW_PID.
slow_clients() {
  ${SLOW_CPU:+taskset -c "$SLOW_CPU"} python3 - "$1" "$2" "$3" "${4:-/items}" <<'PY' &
import socket, sys, time
port, n, secs, path = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
held = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    held.append(s)
time.sleep(secs)
PY
  SLOW_PID=$!; pids+=($SLOW_PID)
}

# write_proxy_config PORT ADMIN_PORT BROKER_PORT: $work/proxy.yaml, one
# route /items for topic items. nisshi holds a long-poll fetch for its whole
# max_wait even when records arrive, so a short wait keeps its share of the
# latency small; but it also treats the wait as a deadline for assembling
# records (~5 ms), so not shorter than 10 ms: $FETCH_MAX_WAIT, 20ms unless
# set. $PROXY_CONFIG_EXTRA (YAML, e.g. "connections: {nodelay: false}") is
# appended.
write_proxy_config() {
  cat >"$work/proxy.yaml" <<YAML
listen: 127.0.0.1:$1
admin_listen: 127.0.0.1:$2
kafka:
  bootstrap: ["127.0.0.1:$3"]
  fetch_max_wait: ${FETCH_MAX_WAIT:-20ms}
routes:
  - path: /items
    topic: items
${PROXY_CONFIG_EXTRA:-}
YAML
}

# start_proxy ADMIN_PORT: the proxy on CPU 0 (one shard) with
# $work/proxy.yaml; sets PROXY and waits until it is ready.
start_proxy() {
  ${PROXY_BIN:-./target/release/sse-kafka} run --config "$work/proxy.yaml" --cpus 0 2>"$work/proxy.log" &
  PROXY=$!; pids+=($PROXY)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null && return 0; sleep 0.1; done
  echo "proxy not ready:" >&2; cat "$work/proxy.log" >&2; exit 1
}

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# busy_ticks CPU: the CPU's busy time (user, nice, system, irq, softirq) from
# /proc/stat. A server pinned alone to a CPU is charged its whole kernel
# cost this way, including the loopback receive work done in softirq
# context (ksoftirqd or another task's interrupt), which per-process times
# miss.
busy_ticks() { awk -v c="cpu$1" '$1 == c {print $2+$3+$4+$7+$8}' /proc/stat; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
# cpu_seconds T0 T1: the ticks between two cpu_ticks readings, in seconds.
cpu_seconds() { awk -v a="$1" -v b="$2" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}'; }
