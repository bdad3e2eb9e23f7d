#!/usr/bin/env bash
# What a guard costs a connect, against an unguarded route in the same run:
#
#   open      CLIENTS connections to an unguarded route (the baseline)
#   few       the same to a guarded route, every client holding one of FEW
#             tokens: the shard verifies each once and its token cache
#             answers the rest
#   distinct  the guarded route with CLIENTS tokens it has never seen (each
#             round mints its own): every connect is a signature check, as
#             if there were no cache
#
# for each algorithm of ALGS: RS256, what identity providers sign with by
# default, and ES256 (EdDSA works too). The variants alternate, round after
# round (open, few, distinct, ... ROUNDS times), so that drift on this
# shared machine spreads over all of them alike; a row gives each figure's
# median over its rounds (now and then another process, a build, takes a
# CPU and slows one round down: the median leaves it out, the per-round
# rates show it).
#
# How connects/s is measured: `sse-kafka-load subscribe` opens the CLIENTS
# connections with at most CONCURRENCY of them waiting for a response head
# at once, and times the opening: from its first connect to the last
# connection's 200 response head (`opening` in its JSON). connects/s is
# CLIENTS over that time, as the client sees it. The pacing matters:
# 10,000 SYNs at once overflow the listener's SYN queue (the kernel then
# answers with SYN cookies) or its accept queue (somaxconn, 4096 here),
# and a dropped SYN comes back after the 1 s retransmission timeout, which
# would be what the opening measured. CONCURRENCY stays below both; the
# queue overflow counters of /proc/net/netstat are reported per row to
# show it did. Each run holds its streams for HOLD seconds, hangs up, and
# the next starts once the proxy has closed them all.
#
# Beside it, per row: the connect-to-head p50/p99 of one connection; the
# proxy's own CPU time (user + system, all threads) over the opening per
# connect — the cost per connect, which holds even when the rate does not
# (the opening is found from /metrics, polled every 50 ms, so the share
# of the wall time is a slight underestimate); how busy the proxy, CPU 0
# and CPU 1 were over the opening (the proxy near 100%: it set the pace;
# CPU 0 well above the proxy: something else ran on its CPU; CPU 1 near
# 100%: the clients did); and from /metrics the signature checks, cache
# hits and guard rejections each run caused — few shows FEW checks at
# most and the rest hits, distinct CLIENTS checks and no hit.
#
# The proxy runs on CPU 0 (one shard), the broker and the load generator
# on CPU 1; the clients connect from 127.0.0.2-254, so the TIME_WAITs of
# earlier runs do not run one address out of ports.
#
# Usage: perf/guards.sh   (CLIENTS, FEW, ROUNDS, ALGS, CONCURRENCY, HOLD,
# OUT; PROXY_BIN picks the proxy binary, as in perf/compare.sh, LOAD_BIN
# the load generator's. The keys come from tests/clients/mint.py, the
# tokens from PyJWT, run by $SSE_KAFKA_PYTHON, else the target/python venv
# examples/test.sh makes, else python3, the first that imports PyJWT.)
# Output: a table on stdout and perf/results/guards.jsonl (one JSON per row).
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh

CLIENTS=${CLIENTS:-10000}
FEW=${FEW:-4}
ROUNDS=${ROUNDS:-3}
ALGS=${ALGS:-RS256 ES256}
CONCURRENCY=${CONCURRENCY:-1000}
HOLD=${HOLD:-20}
OUT=${OUT:-perf/results/guards.jsonl}

py=${SSE_KAFKA_PYTHON:-}
if [ -z "$py" ]; then
  for candidate in ./target/python/bin/python3 python3; do
    if "$candidate" -c 'import jwt, cryptography' 2>/dev/null; then py=$candidate; break; fi
  done
fi
if [ -z "$py" ]; then
  echo "perf/guards.sh: minting tokens needs a python3 with PyJWT[crypto]: run examples/test.sh once (it makes target/python) or set SSE_KAFKA_PYTHON" >&2
  exit 2
fi

# A binary given (e.g. a copy made while the tree builds) is used as it
# is; the others are built.
if [ -z "${PROXY_BIN:-}" ] || [ -z "${LOAD_BIN:-}" ]; then
  cargo build --release --quiet --bin sse-kafka --bin sse-kafka-load
fi
mkdir -p "$(dirname "$OUT")"; : >"$OUT"
load=${LOAD_BIN:-./target/release/sse-kafka-load}

# The keys (jwks.json holds rsa1 RS256, ec1 ES256, ed1 EdDSA, ec2 ES384).
mkdir "$work/keys" "$work/tokens"
"$py" tests/clients/mint.py keys "$work/keys"
key_of() { case $1 in RS256) echo rsa1 ;; ES256) echo ec1 ;; EdDSA) echo ed1 ;; ES384) echo ec2 ;;
  *) echo "perf/guards.sh: no key for $1 (RS256, ES256, EdDSA, ES384)" >&2; exit 2 ;; esac; }
# mint ALG N NAME: N distinct tokens (sub NAME-i) into $work/tokens/NAME,
# valid for an hour (far longer than the run). Never printed. PyJWT
# directly, not tests/clients/mint.py token: that reloads the key for
# every token, and loading an RSA key checks it (~30 ms: 5 minutes for
# 10,000 tokens); here it is loaded once.
mint() {
  taskset -c 1 "$py" - "$work/keys/$(key_of "$1").pem" "$@" >"$work/tokens/$3" <<'PY'
import sys, time
import jwt
from cryptography.hazmat.primitives import serialization
pem, alg, n, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
key = serialization.load_pem_private_key(open(pem, "rb").read(), None)
kid = pem.rsplit("/", 1)[1].removesuffix(".pem")
now = int(time.time())
for i in range(n):
    claims = {"iss": "https://auth.test/", "aud": "sse-kafka", "sub": f"{name}-{i}",
              "iat": now, "exp": now + 3600, "scope": "items:read"}
    print(jwt.encode(claims, key, algorithm=alg, headers={"kid": kid}))
PY
  [ "$(wc -l <"$work/tokens/$3")" -eq "$2" ] || { echo "perf/guards.sh: minting $3 failed" >&2; exit 1; }
}
for alg in $ALGS; do key_of "$alg" >/dev/null; done
for alg in $ALGS; do
  mint "$alg" "$FEW" "$alg-few"
  for r in $(seq "$ROUNDS"); do mint "$alg" "$CLIENTS" "$alg-distinct-$r"; done
done

read -r port admin broker <<<"$(free_ports 3)"
BROKER_CPU=1 start_broker "$broker"
# The topic (nisshi creates it with 4 partitions on first produce).
taskset -c 1 $load produce --brokers "127.0.0.1:$broker" --topic items --rate 1 --seconds 0 >/dev/null
cat >"$work/proxy.yaml" <<YAML
listen: 127.0.0.1:$port
admin_listen: 127.0.0.1:$admin
kafka:
  bootstrap: ["127.0.0.1:$broker"]
  fetch_max_wait: 20ms
guards:
  jwt0:
    issuer: https://auth.test/
    audience: sse-kafka
    keys: { file: $work/keys/jwks.json }
routes:
  - path: /open
    topic: items
  - path: /guarded
    topic: items
    guard: jwt0
YAML
start_proxy "$admin"

# counters: the proxy's streams opened and open, signature checks, cache
# hits and guard rejections (all reasons), in one scrape.
counters() {
  curl -sf "http://127.0.0.1:$admin/metrics" | awk '
    $1 == "sse_kafka_connections_total" {t = $2} $1 == "sse_kafka_connections_open" {o = $2}
    $1 == "sse_kafka_guard_signature_checks_total" {c = $2} $1 == "sse_kafka_guard_token_cache_hits_total" {h = $2}
    $1 ~ /^sse_kafka_guard_rejections_total\{/ {r += $2}
    END {print t + 0, o + 0, c + 0, h + 0, r + 0}'
}
# queue_overflows: SYNs and handshakes the kernel could not queue
# (ListenOverflows, ListenDrops, TCPReqQFullDrop) or answered with a SYN
# cookie (TCPReqQFullDoCookies), summed.
queue_overflows() {
  awk '$1 == "TcpExt:" && !n {for (i = 2; i <= NF; i++) h[i] = $i; n = 1; next}
    $1 == "TcpExt:" {for (i = 2; i <= NF; i++) if (h[i] ~ /^(ListenOverflows|ListenDrops|TCPReqQFullDrop|TCPReqQFullDoCookies)$/) s += $i}
    END {print s + 0}' /proc/net/netstat
}

# measure VARIANT ALG ROUND PATH [TOKEN_FILE]: one run; appends its JSON to
# $work/runs.jsonl.
measure() {
  local variant=$1 alg=$2 round=$3 path=$4 file=${5:-}
  local total0 open0 checks0 hits0 rejected0 total1 open1 checks1 hits1 rejected1 q0 cpu0 cpu1 t0 t1 sub
  local busy0 busy1 client0 client1
  read -r total0 open0 checks0 hits0 rejected0 <<<"$(counters)"
  q0=$(queue_overflows); cpu0=$(cpu_ticks "$PROXY"); busy0=$(busy_ticks 0); client0=$(busy_ticks 1)
  t0=$(date +%s.%N)
  taskset -c 1 $load subscribe --url "http://127.0.0.1:$port$path" --connections "$CLIENTS" --cpus 1 \
    --source-addresses 127.0.0.2-127.0.0.254 --connect-concurrency "$CONCURRENCY" --warmup 0 \
    --seconds "$HOLD" ${file:+--token-file "$file"} >"$work/run.json" 2>"$work/run.log" &
  sub=$!; pids+=($sub)
  # The opening as the proxy spends it: until it has started every stream
  # (polled every 50 ms, from CPU 1), or the clients gave up.
  while kill -0 "$sub" 2>/dev/null; do
    [ "$(taskset -c 1 curl -sf "http://127.0.0.1:$admin/metrics" | awk '$1 == "sse_kafka_connections_total" {print $2}')" \
      -ge $((total0 + CLIENTS)) ] && break
    sleep 0.05
  done
  cpu1=$(cpu_ticks "$PROXY"); busy1=$(busy_ticks 0); client1=$(busy_ticks 1); t1=$(date +%s.%N)
  wait "$sub" || { echo "perf/guards.sh: $variant $alg round $round: the load generator failed:" >&2; cat "$work/run.log" >&2; exit 1; }
  # Until the proxy has closed every stream of this run.
  for _ in $(seq 600); do
    read -r total1 open1 checks1 hits1 rejected1 <<<"$(counters)"
    [ "$open1" -le "$open0" ] && break; sleep 0.1
  done
  python3 -c '
import json, sys
run = json.loads(sys.stdin.read().strip().splitlines()[-1])
a = sys.argv[1:]
variant, alg, round_ = a[0], a[1], int(a[2])
n = [float(x) for x in a[3:]]
clients, cpu0, cpu1, b0, b1, l0, l1, t0, t1, q0, q1, c0, c1, h0, h1, r0, r1, hz = n
cpu_s, wall = (cpu1 - cpu0) / hz, max(t1 - t0, 1e-9)
print(json.dumps({"variant": variant, "alg": alg, "round": round_,
  "connects_per_s": run["opening"]["connects_per_s"], "opening_s": run["opening"]["seconds"],
  "answered": run["opening"]["answered"], "connect_ms": run["connect_ms"],
  "errors": run["errors"] + run["warmup_errors"],
  "proxy_cpu_us_per_connect": round(cpu_s * 1e6 / clients, 1),
  "proxy_busy": round(cpu_s / wall, 3), "cpu0_busy": round((b1 - b0) / hz / wall, 3),
  "cpu1_busy": round((l1 - l0) / hz / wall, 3),
  "queue_overflows": int(q1 - q0), "signature_checks": int(c1 - c0), "cache_hits": int(h1 - h0),
  "rejected": int(r1 - r0)}))' "$variant" "$alg" "$round" "$CLIENTS" "$cpu0" "$cpu1" "$busy0" "$busy1" "$client0" "$client1" "$t0" "$t1" \
    "$q0" "$(queue_overflows)" "$checks0" "$checks1" "$hits0" "$hits1" "$rejected0" "$rejected1" \
    "$(getconf CLK_TCK)" <"$work/run.json" | tee -a "$work/runs.jsonl" >&2
}

for r in $(seq "$ROUNDS"); do
  measure open - "$r" /open
  for alg in $ALGS; do
    measure few "$alg" "$r" /guarded "$work/tokens/$alg-few"
    measure distinct "$alg" "$r" /guarded "$work/tokens/$alg-distinct-$r"
  done
done

# The rows: each variant's medians over its rounds, against open's.
python3 - "$work/runs.jsonl" "$OUT" "$CLIENTS" "$FEW" "$CONCURRENCY" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
out, clients, few, concurrency = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
order = []
for r in runs:
    if (r["variant"], r["alg"]) not in order:
        order.append((r["variant"], r["alg"]))
def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def of(variant, alg):
    return [r for r in runs if (r["variant"], r["alg"]) == (variant, alg)]
base = median([r["connects_per_s"] for r in of("open", "-")])
base_us = median([r["proxy_cpu_us_per_connect"] for r in of("open", "-")])
rows = []
for variant, alg in order:
    rs = of(variant, alg)
    rate = median([r["connects_per_s"] for r in rs]) if all(r["connects_per_s"] for r in rs) else None
    rows.append({
        "row": "guards", "variant": variant, "alg": None if alg == "-" else alg,
        "tokens": {"open": 0, "few": few, "distinct": clients}[variant],
        "clients": clients, "concurrency": concurrency, "rounds": len(rs),
        "connects_per_s": round(rate) if rate else None,
        "connects_per_s_rounds": [r["connects_per_s"] for r in rs],
        "ratio_to_open": round(rate / base, 3) if rate and base else None,
        "connect_p50_ms": round(median([r["connect_ms"]["p50"] for r in rs]), 1),
        "connect_p99_ms": round(median([r["connect_ms"]["p99"] for r in rs]), 1),
        "proxy_cpu_us_per_connect": round(median([r["proxy_cpu_us_per_connect"] for r in rs]), 1),
        "proxy_cpu_us_over_open": round(median([r["proxy_cpu_us_per_connect"] for r in rs]) - base_us, 1),
        "proxy_busy": round(median([r["proxy_busy"] for r in rs]), 2),
        "cpu0_busy": round(median([r["cpu0_busy"] for r in rs]), 2),
        "cpu1_busy": round(median([r["cpu1_busy"] for r in rs]), 2),
        "signature_checks_rounds": [r["signature_checks"] for r in rs],
        "cache_hits_rounds": [r["cache_hits"] for r in rs],
        "rejected": sum(r["rejected"] for r in rs), "errors": sum(r["errors"] for r in rs),
        "queue_overflows": sum(r["queue_overflows"] for r in rs),
    })
with open(out, "w") as f:
    for row in rows:
        f.write(json.dumps(row) + "\n")
head = ["variant", "alg", "tokens", "connects/s", "per round", "ratio", "p50 ms", "p99 ms",
        "proxy us/conn", "over open", "proxy", "cpu0", "cpu1", "sig checks", "cache hits", "rejected", "errors", "overflows"]
table = [head] + [[
    r["variant"], r["alg"] or "-", f'{r["tokens"]:,}',
    f'{r["connects_per_s"]:,}' if r["connects_per_s"] else "incomplete",
    " ".join(f"{x:,.0f}" if x else "-" for x in r["connects_per_s_rounds"]),
    f'{r["ratio_to_open"]:.2f}' if r["ratio_to_open"] else "-",
    f'{r["connect_p50_ms"]:.1f}', f'{r["connect_p99_ms"]:.1f}',
    f'{r["proxy_cpu_us_per_connect"]:.1f}', f'{r["proxy_cpu_us_over_open"]:+.1f}', f'{r["proxy_busy"]:.0%}', f'{r["cpu0_busy"]:.0%}',
    f'{r["cpu1_busy"]:.0%}',
    " ".join(map(str, r["signature_checks_rounds"])), " ".join(map(str, r["cache_hits_rounds"])),
    str(r["rejected"]), str(r["errors"]), str(r["queue_overflows"])] for r in rows]
widths = [max(len(row[i]) for row in table) for i in range(len(head))]
for row in table:
    print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
print(f"{clients:,} clients per run, at most {concurrency:,} connecting at once; ratio: connects/s over open's;")
print("proxy us/conn: the proxy's CPU time per connect over the opening; over open: what the guard adds to it")
print("proxy, cpu0, cpu1: the proxy's CPU time and CPU 0's and CPU 1's busy time over the opening's wall time")
bad = [r for r in rows if r["rejected"] or r["errors"] or not r["connects_per_s"]]
sys.exit(1 if bad else 0)
PY
