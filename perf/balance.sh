#!/usr/bin/env bash
# How evenly SO_REUSEPORT spreads connections over the shards (issue 16,
# item 3b). Every shard binds its own listener on the client port with
# SO_REUSEPORT (src/sys/socket.rs); the kernel picks one listener per
# connection from a hash of its 4-tuple (net/core/sock_reuseport.c,
# reuseport_select_sock), so a shard serves the connections its listener
# was handed, whatever the other shards carry.
#
# Each run starts a fresh proxy with --cpus $CPUS, opens K idle SSE
# connections with `sse-kafka-load subscribe` (pinned to $LOAD_CPUS),
# counts the connections each shard accepted, and appends one JSON line to
# $OUT. Setups (SETUPS, each RUNS times, alternating run by run so drift
# spreads over all of them alike):
#
#   one        every connection from 127.0.0.1, all opened at once
#   many       from $SOURCES round-robin, all opened at once
#   one-slow   as one, at most SLOW_CONCURRENCY waiting for a response head
#   many-slow  as many, the same pacing
#
# How a shard's connections are counted: the proxy has no per-shard figure
# (/metrics sums its per-shard gauges), and a socket does not record the
# listener it came from. But each shard accepts only from its own listener,
# on its own thread (named shard-<id>-<n> by glommio): glommio first tries
# a plain non-blocking accept(2) and, when none is waiting, submits an
# io_uring IORING_OP_ACCEPT (opcode 13), whose completion then is one
# connection (glommio 0.9, net/mod.rs yolo_accept and
# net/tcp_socket.rs shared_accept). `perf stat --per-thread` counts,
# per thread, the tracepoints syscalls:sys_exit_accept with ret >= 0 plus
# io_uring:io_uring_submit_req with opcode 13 from before the first connect
# until every connection has been accepted (K established sockets on the
# port, empty accept queues). A submission left waiting at the end stands
# for the one that was waiting at the start, so a shard's sum is its
# accepts; nothing asks the admin listener (also on shard 0) meanwhile.
# The sum over shards is checked against K, and /metrics'
# sse_kafka_connections_open against K afterwards. (Checked once against
# another count: on loopback a packet is received on the CPU that sent
# it, so a client's SO_INCOMING_CPU after the response head names the
# CPU of the shard that wrote it; 3,000 connections, three runs, the
# same counts per shard to the connection.)
#
# imbalance = max/mean - 1 over the shards' counts. A fair random hash
# gives a binomial count per shard: for K = 10,000 over 2 shards a standard
# deviation of 50 (1%), a mean imbalance of sqrt(2/(pi K)) = 0.8% and
# 1.96/sqrt(K) = 2.0% at the 95th percentile; the summary prints these
# for the shard count run (simulated), and each run's z (how many standard
# deviations its busiest shard is above the mean).
#
# Usage: perf/balance.sh   (K, RUNS, SETUPS, CPUS, LOAD_CPUS, SOURCES,
# SLOW_CONCURRENCY, OPEN_DEADLINE, OUT; PROXY_BIN and LOAD_BIN pick the
# binaries, as in perf/guards.sh.) About 11 s a run: 20 runs, 4 minutes.
# Needs perf(1) and root (or perf_event_paranoid <= -1) for tracepoints.
# Output: a table on stdout and perf/results/balance.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh

K=${K:-10000}
RUNS=${RUNS:-5}
SETUPS=${SETUPS:-one many one-slow many-slow}
CPUS=${CPUS:-0,1}
LOAD_CPUS=${LOAD_CPUS:-1}
# 49 source addresses, as the issue suggests (2..50).
SOURCES=${SOURCES:-127.0.0.2-127.0.0.50}
SLOW_CONCURRENCY=${SLOW_CONCURRENCY:-1}
# Seconds the opening may take: a burst of 10,000 overflows the SYN and
# accept queues, and a dropped SYN comes back after 1 s, then 2 s, 4 s...
OPEN_DEADLINE=${OPEN_DEADLINE:-90}
OUT=${OUT:-perf/results/balance.jsonl}

command -v perf >/dev/null || { echo "perf/balance.sh: needs perf(1)" >&2; exit 2; }
if [ -z "${PROXY_BIN:-}" ] || [ -z "${LOAD_BIN:-}" ]; then
  cargo build --release --quiet --bin sse-kafka --bin sse-kafka-load
fi
PROXY_BIN=${PROXY_BIN:-./target/release/sse-kafka}
LOAD_BIN=${LOAD_BIN:-./target/release/sse-kafka-load}
./examples/install-nisshi.sh

mkdir -p "$(dirname "$OUT")"
: >"$OUT"
jq -cn --arg date "$(date -u +%FT%TZ)" --arg kernel "$(uname -r)" --arg cpus "$CPUS" \
  --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty)" \
  --arg command "K=$K RUNS=$RUNS SETUPS=\"$SETUPS\" CPUS=$CPUS LOAD_CPUS=$LOAD_CPUS SOURCES=$SOURCES SLOW_CONCURRENCY=$SLOW_CONCURRENCY perf/balance.sh" \
  '{meta: {date: $date, kernel: $kernel, commit: $commit, cpus: $cpus, command: $command}}' >>"$OUT"

read -r KPORT < <(free_ports 1)
BROKER_CPU=${BROKER_CPU:-1} start_broker "$KPORT"
# Create the topic before any proxy looks for it.
"$LOAD_BIN" produce --brokers "127.0.0.1:$KPORT" --topic items --rate 1 --seconds 0 >/dev/null

# until SECONDS COMMAND...: true once COMMAND succeeds, polled every 50 ms.
until_ok() {
  local end=$(( $(date +%s) + $1 )); shift
  while ! "$@"; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.05
  done
}

# perf_attached PERF_PID PROXY_PID: perf holds two counters per thread.
perf_attached() {
  local want=$(( 2 * $(ls "/proc/$2/task" | wc -l) )) have
  have=$(find "/proc/$1/fd" -lname 'anon_inode:*perf_event*' 2>/dev/null | wc -l)
  [ "$have" -ge "$want" ]
}

# all_accepted PORT: K established sockets on PORT, every accept queue empty.
all_accepted() {
  [ "$(ss -Htn state established "( sport = :$1 )" | wc -l)" -ge "$K" ] &&
    [ -z "$(ss -Hltn "( sport = :$1 )" | awk '$2 != 0')" ]
}

# listen_overflows: the kernel's count of connections an accept queue had
# no room for (a burst retransmits them; they reach the same listener).
listen_overflows() {
  awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) k[i] = $i; h = 1 }
    else for (i = 1; i <= NF; i++) if (k[i] == "ListenOverflows") print $i }' /proc/net/netstat
}

# run SETUP N: one fresh proxy, K connections, one JSON line.
run() {
  local setup=$1 n=$2 port aport flags=() concurrency=0 source=127.0.0.1
  case "$setup" in
    one) ;;
    many) source=$SOURCES ;;
    one-slow) concurrency=$SLOW_CONCURRENCY ;;
    many-slow) source=$SOURCES; concurrency=$SLOW_CONCURRENCY ;;
    *) echo "unknown setup $setup" >&2; exit 2 ;;
  esac
  [ "$source" = 127.0.0.1 ] || flags+=(--source-addresses "$source")
  # Fresh ports for each proxy; another process on this shared machine may
  # take one between free_ports and the proxy's bind: then new ones.
  local proxy try
  for try in 1 2 3; do
    read -r port aport < <(free_ports 2)
    write_proxy_config "$port" "$aport" "$KPORT"
    "$PROXY_BIN" run --config "$work/proxy.yaml" --cpus "$CPUS" 2>"$work/proxy.log" &
    proxy=$!; pids+=($proxy)
    until_ok 10 curl -sf "http://127.0.0.1:$aport/health/ready" -o /dev/null && break
    echo "proxy not ready (try $try):" >&2; tail -1 "$work/proxy.log" >&2
    stop "$proxy"
    [ "$try" -lt 3 ] || exit 1
  done

  perf stat -x, --per-thread -o "$work/perf.csv" -p "$proxy" \
    -e syscalls:sys_exit_accept --filter 'ret >= 0' \
    -e io_uring:io_uring_submit_req --filter 'opcode == 13' &
  local perf_pid=$!; pids+=($perf_pid)
  until_ok 10 perf_attached "$perf_pid" "$proxy" || { echo "perf did not attach" >&2; exit 1; }

  local t0 t1 opened=yes overflows0
  overflows0=$(listen_overflows)
  t0=$(date +%s.%N)
  taskset -c "$LOAD_CPUS" "$LOAD_BIN" subscribe --url "http://127.0.0.1:$port/items" --connections "$K" \
    --cpus "$LOAD_CPUS" --warmup 0 --seconds $(( OPEN_DEADLINE + 30 )) --connect-concurrency "$concurrency" \
    "${flags[@]}" >/dev/null 2>"$work/load.err" &
  local gen=$!; pids+=($gen)
  until_ok "$OPEN_DEADLINE" all_accepted "$port" || opened=no
  t1=$(date +%s.%N)
  # perf prints its counts when interrupted.
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  stop "$perf_pid"
  local open
  open=$(metric "$aport" sse_kafka_connections_open || echo null)
  stop "$gen"
  stop "$proxy"
  [ $opened = yes ] || echo "$setup run $n: not all $K accepted within ${OPEN_DEADLINE}s: $(tail -3 "$work/load.err")" >&2

  # Per shard (threads shard-<id>-*): accepts of both kinds summed.
  local counts
  counts=$(awk -F, '$1 ~ /^shard-[0-9]+-/ && $2 ~ /^[0-9]+$/ {
      split($1, a, "-"); c[a[2]] += $2; if (a[2] + 0 > top) top = a[2] + 0 }
    END { s = ""; for (i = 0; i <= top; i++) s = s (i ? "," : "") (c[i] + 0); print "[" s "]" }' "$work/perf.csv")
  local overflows=$(( $(listen_overflows) - overflows0 ))
  jq -cn --arg setup "$setup" --argjson run "$n" --argjson k "$K" --arg source "$source" \
    --argjson concurrency "$concurrency" --argjson shards "$counts" --argjson open "${open:-null}" \
    --argjson opening "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" \
    --argjson overflows "$overflows" --arg opened "$opened" \
    '($shards | add) as $sum | ($sum / ($shards | length)) as $mean |
     {setup: $setup, run: $run, connections: $k, source: $source, connect_concurrency: $concurrency,
      shards: $shards, accepted: $sum, connections_open: $open, all_opened: ($opened == "yes"),
      imbalance: (if $mean > 0 then (($shards | max) / $mean - 1) * 10000 | round / 10000 else null end),
      z: (if $mean > 0 then (($shards | max) - $mean) / ($sum * (1 / ($shards | length)) * (1 - 1 / ($shards | length)) | sqrt) * 100 | round / 100 else null end),
      opening_s: $opening, listen_overflows: $overflows}' | tee -a "$OUT"
}

for n in $(seq "$RUNS"); do
  for setup in $SETUPS; do
    echo "== $setup run $n" >&2
    run "$setup" "$n"
  done
done

# The summary, with a fair random hash's imbalance for the same K and
# shard count (simulated: per shard a binomial, normal-approximated,
# conditioned on the shards before it; 20,000 trials).
python3 - "$OUT" <<'PY'
import json, math, random, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"meta"' not in l]
if not rows:
    sys.exit("no runs")
k, shards = rows[0]["connections"], len(rows[0]["shards"])
def fair():
    left, n, counts = k, shards, []
    for i in range(shards - 1):
        p = 1 / (n - i)
        c = round(random.gauss(left * p, math.sqrt(left * p * (1 - p))))
        c = min(max(c, 0), left)
        counts.append(c); left -= c
    counts.append(left)
    return max(counts) / (k / shards) - 1
sim = sorted(fair() for _ in range(20000))
print(f"fair hash, K={k} over {shards} shards: mean imbalance {sum(sim)/len(sim):.2%}, "
      f"median {sim[len(sim)//2]:.2%}, p95 {sim[int(len(sim)*.95)]:.2%}, p99 {sim[int(len(sim)*.99)]:.2%}")
print(f"{'setup':<10} {'run':>3} {'shards':<16} {'accepted':>8} {'open':>6} {'imbalance':>9} {'z':>6} {'opening_s':>9} {'overflows':>9}")
for r in rows:
    print(f"{r['setup']:<10} {r['run']:>3} {str(r['shards']):<16} {r['accepted']:>8} {str(r['connections_open']):>6} "
          f"{r['imbalance']:>9.2%} {r['z']:>6} {r['opening_s']:>9} {r['listen_overflows']:>9}")
print(f"{'setup':<10} {'runs':>4} {'mean imbalance':>14} {'max imbalance':>13} {'rank in fair (mean)':>20}")
for setup in dict.fromkeys(r["setup"] for r in rows):
    im = [r["imbalance"] for r in rows if r["setup"] == setup]
    mean = sum(im) / len(im)
    # Where the setup's mean would fall among means of as many fair runs.
    means = sorted(sum(random.choice(sim) for _ in im) / len(im) for _ in range(5000))
    rank = sum(m <= mean for m in means) / len(means)
    print(f"{setup:<10} {len(im):>4} {mean:>14.2%} {max(im):>13.2%} {rank:>20.0%}")
PY
