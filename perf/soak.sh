#!/usr/bin/env bash
# The soak: MINUTES (default 30) of steady load with churn, on one proxy
# shard (CPU 0; the broker and every client on CPU 1):
#
#   steady   STEADY clients on /items for the whole run; a quarter of them
#            hang up in the middle (during the broker's restart) and resume
#            with Last-Event-ID
#   churn    every ~25 s, CHURN clients connect, half of them hang up and
#            resume in the middle of their 20 s, 100 more connect once and
#            leave, and SLOW clients ask and never read, then hang up
#   restart  in the middle the producer stops, the broker (sqlite storage)
#            is stopped and started again, and a second producer continues
#            each partition's sequence (`produce --continue`)
#
# Every 10 s the proxy's RSS, open descriptors, CPU, delivered events per
# second and open streams go into perf/results/soak.tsv; the chart is
# perf/soak.svg. At the end, it checks:
#
#   - zero loss and zero duplicates for every client (steady and churn),
#     every resume exact, and every steady client got each partition's last
#     record (the producer's heads);
#   - once the clients have left, RSS within RSS_MARGIN_MIB of its value
#     before any client came (with the partition cache filled to its bound
#     first, so it holds the same at both ends), and the descriptors within
#     FD_MARGIN of theirs.
#
# Usage: perf/soak.sh [MINUTES]   (RATE, STEADY, CHURN, SLOW: the load;
# PROXY_BIN picks the proxy binary, as in perf/compare.sh). Exits 1 when a
# check fails; the verdict is also perf/results/soak.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh

MINUTES=${1:-30}
if ! [[ $MINUTES =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [MINUTES]  (a whole number of minutes, default 30)" >&2
  exit 2
fi
RATE=${RATE:-500}
STEADY=${STEADY:-1000}
CHURN=${CHURN:-300}
SLOW=${SLOW:-200}
RSS_MARGIN_MIB=${RSS_MARGIN_MIB:-16}
FD_MARGIN=${FD_MARGIN:-4}
results=perf/results
mkdir -p "$results"
samples=$results/soak.tsv

cargo build --release --quiet -p sse-kafka -p sse-kafka-load
load=./target/release/sse-kafka-load
read -r port admin broker <<<"$(free_ports 3)"
BROKER_CPU=1 BROKER_STORAGE="sqlite://soak.db" start_broker "$broker"
produce() {
  $load produce --brokers "127.0.0.1:$broker" --topic items --partitions 4 --value-size 200 \
    --rate "$RATE" --producer-cpu 1 "$@" 2>>"$work/produce.log"
}
# The topic, created before the proxy asks for it.
produce --seconds 0 >/dev/null
PROXY_CONFIG_EXTRA="cache: {partition_bytes: 16MiB, total_bytes: 64MiB, max_age: 1h}" \
  write_proxy_config "$port" "$admin" "$broker"
start_proxy "$admin"
# The cache filled to its bound (bursts of records until it holds 97 % of
# it) before the baseline is taken, so that the memory it holds, bounded
# by config and at the bound all along, is in the start's RSS as in the
# end's. Every later producer continues these sequences.
# nisshi's sqlite storage takes in about 30k records/s: bursts slower than
# that, and then until the proxy has fetched nothing new for 2 s, so that
# no record of the prefill reaches the clients as a live burst.
cache_bound=$((64 * 1024 * 1024))
for _ in $(seq 60); do
  [ "$(metric "$admin" sse_kafka_cache_bytes)" -ge $((cache_bound * 97 / 100)) ] && break
  $load produce --brokers "127.0.0.1:$broker" --topic items --value-size 200 --rate 20000 \
    --seconds 3 --producer-cpu 1 --continue >/dev/null 2>>"$work/produce.log"
done
fetched=-1
until [ "$fetched" = "$(metric "$admin" sse_kafka_records_fetched_total)" ]; do
  fetched=$(metric "$admin" sse_kafka_records_fetched_total); sleep 2
done

# The sampler: one line every 10 s. A note written to $work/note is put on
# the next line.
total=$((MINUTES * 60))
start=$(date +%s)
now() { echo $(($(date +%s) - start)); }
note() { echo "$1" >"$work/note"; echo "$(now) s: $1" >&2; }
sample_line() {
  local events streams note=""
  events=$(metric "$admin" sse_kafka_events_sent_total || echo 0)
  streams=$(metric "$admin" sse_kafka_connections_open || echo 0)
  [ -s "$work/note" ] && { note=$(cat "$work/note"); : >"$work/note"; }
  echo "$(now) $(rss_kb "$PROXY") $(ls "/proc/$PROXY/fd" | wc -l) $(cpu_ticks "$PROXY") ${events:-0} ${streams:-0} $note"
}
sampler() {
  local hz; hz=$(getconf CLK_TCK)
  printf 'seconds\trss_kib\tfds\tcpu_percent\tevents_per_s\tstreams\tnote\n' >"$samples"
  local last; last=$(sample_line)
  printf '%s\n' "$last" | awk -v OFS='\t' '{n=$7; for (i=8;i<=NF;i++) n=n" "$i; print $1,$2,$3,0,0,$6,n}' >>"$samples"
  while [ ! -e "$work/stop" ]; do
    sleep 10
    local cur; cur=$(sample_line)
    printf '%s\n%s\n' "$last" "$cur" | awk -v OFS='\t' -v hz="$hz" 'NR == 1 {t=$1; c=$4; e=$5; next}
      {dt=$1-t; if (dt <= 0) dt=1; n=$7; for (i=8;i<=NF;i++) n=n" "$i
       printf "%d\t%d\t%d\t%.1f\t%.0f\t%d\t%s\n", $1, $2, $3, ($4-c)*100/hz/dt, ($5-e)/dt, $6, n}' >>"$samples"
    last=$cur
  done
}
sampler &
SAMPLER=$!; pids+=($SAMPLER)

# Before any client: the baseline the end is compared with.
rss_start=$(rss_kb "$PROXY"); fds_start=$(ls "/proc/$PROXY/fd" | wc -l)
cache_start=$(metric "$admin" sse_kafka_cache_bytes)

half=$((total / 2))
produce --continue --seconds "$half" >"$work/produce1.json" &
PRODUCER=$!; pids+=($PRODUCER)
# The steady clients' window ends 15 s after the last record: time for the
# tail to arrive.
$load subscribe --url "http://127.0.0.1:$port/items" --connections "$STEADY" --cpus 1 \
  --warmup 5 --seconds $((total + 10)) --drop-fraction 0.25 >"$work/steady.json" 2>"$work/steady.log" &
STEADY_PID=$!; pids+=($STEADY_PID)

# The churn, until 30 s before the end.
churn() {
  local cycle=0
  while [ "$(now)" -lt $((total - 30)) ]; do
    cycle=$((cycle + 1))
    SLOW_CPU=1 slow_clients "$port" "$SLOW" 20
    $load subscribe --url "http://127.0.0.1:$port/items" --connections "$CHURN" --cpus 1 \
      --warmup 2 --seconds 20 --drop-fraction 0.5 --extra-connections 100 2>>"$work/churn.log" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); r["cycle"]=int(sys.argv[1]); r["at_s"]=int(sys.argv[2]); print(json.dumps(r))' \
        "$cycle" "$(now)" >>"$work/churn.jsonl"
    wait "$SLOW_PID" 2>/dev/null || true
  done
}
churn &
CHURN_PID=$!; pids+=($CHURN_PID)

# The broker's restart, once the first producer is done (its last records
# acknowledged).
wait "$PRODUCER"
note "broker restarted"
kill "$BROKER"; wait "$BROKER" 2>/dev/null || true
BROKER_CPU=1 BROKER_STORAGE="sqlite://soak.db" start_broker "$broker"
produce --continue --seconds $((total - $(now))) >"$work/produce2.json"
note "producer done"
wait "$CHURN_PID"
wait "$STEADY_PID"
note "clients gone"
# Until every stream is closed, then two ticks of the proxy (it returns
# freed memory after many streams ended) and one more sample.
for _ in $(seq 300); do
  [ "$(metric "$admin" sse_kafka_connections_open)" = 0 ] && break; sleep 0.1
done
sleep 12
rss_end=$(rss_kb "$PROXY"); fds_end=$(ls "/proc/$PROXY/fd" | wc -l)
cache_end=$(metric "$admin" sse_kafka_cache_bytes)
touch "$work/stop"; wait "$SAMPLER" 2>/dev/null || true

status=0
python3 - "$work" "$results/soak.json" "$MINUTES" "$rss_start" "$rss_end" "$cache_start" "$cache_end" \
  "$fds_start" "$fds_end" "$RSS_MARGIN_MIB" "$FD_MARGIN" <<'PY' || status=1
import json, sys
work, out = sys.argv[1], sys.argv[2]
minutes, rss0, rss1, cache0, cache1, fds0, fds1, rss_margin, fd_margin = map(int, sys.argv[3:])
steady = json.load(open(f"{work}/steady.json"))
heads = json.load(open(f"{work}/produce2.json"))["heads"]
first = json.load(open(f"{work}/produce1.json"))
cycles = [json.loads(l) for l in open(f"{work}/churn.jsonl")]
# The cache is full at both ends (prefilled), so RSS is compared as is.
tail_missing = {p: heads[p] - 1 - steady["lowest_last_seq"].get(p, -1) for p in heads}
verdict = {
    "minutes": minutes,
    "steady": {k: steady[k] for k in ("connections", "events", "loss", "duplicates", "resumes", "resume_errors", "errors")},
    "tail_missing": tail_missing,
    "produced": first["produced"] + json.load(open(f"{work}/produce2.json"))["produced"],
    "produce_failed": first["produce_failed"] + json.load(open(f"{work}/produce2.json"))["produce_failed"],
    "churn": {
        "cycles": len(cycles),
        "connections": sum(c["connections"] for c in cycles),
        "extra_connections": sum(c.get("extra", {}).get("connections", 0) for c in cycles),
        "events": sum(c["events"] for c in cycles),
        **{k: sum(c[k] for c in cycles) for k in ("loss", "duplicates", "resumes", "resume_errors", "errors")},
    },
    "rss_mib": {"start": round(rss0 / 1024, 1), "end": round(rss1 / 1024, 1),
                "cache_start": round(cache0 / 2**20, 1), "cache_end": round(cache1 / 2**20, 1),
                "growth": round((rss1 - rss0) / 1024, 1), "margin": rss_margin},
    "fds": {"start": fds0, "end": fds1, "margin": fd_margin},
}
failures = []
for who in ("steady", "churn"):
    for k in ("loss", "duplicates", "resume_errors", "errors"):
        if verdict[who][k]:
            failures.append(f"{who} {k}: {verdict[who][k]}")
if any(tail_missing.values()):
    failures.append(f"steady clients missed the tail: {tail_missing}")
if verdict["produce_failed"]:
    failures.append(f"produce failed: {verdict['produce_failed']}")
if not cycles:
    failures.append("no churn cycle ran")
if rss1 - rss0 > rss_margin * 1024:
    failures.append(f"RSS grew {verdict['rss_mib']['growth']} MiB")
if cache1 < cache0 * 0.9:
    failures.append("the cache was not full at the start (the RSS comparison needs it)")
if fds1 > fds0 + fd_margin:
    failures.append(f"descriptors {fds0} -> {fds1}")
verdict["failures"] = failures
json.dump(verdict, open(out, "w"), indent=1)
print(json.dumps(verdict, indent=1))
sys.exit(1 if failures else 0)
PY
cargo run --release --quiet -p sse-kafka-perf --bin soak_chart -- "$samples" perf || status=1
exit $status
