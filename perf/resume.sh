#!/usr/bin/env bash
# Issue 4's numbers, each against a baseline measured in the same run:
#
#   cache    proxy RSS per MiB the partition cache holds (RSS before and
#            after producing CACHE_MB MiB of records, over the cache gauge)
#   slow     the fast clients' latency p99 while SLOW clients stop reading
#            (they leave the live stream and wait as cursors), against the
#            same run without them
#   storm    STORM_K clients reconnecting at once with ids STORM_BEHIND
#            records behind: to the same instance (its cache serves), and to
#            a second instance with the cache disabled (Kafka serves, with
#            shared fetches); time to catch up and broker fetches
#   stall    STALL_K clients that ask for a cached topic of STALL_RECORDS
#            records from its start and then never read: how long until all
#            are stalled (parked with a full socket), the live clients' p99
#            beside them against without, and the proxy's RSS before, while
#            they are connected, and after they left
#
# Usage: perf/resume.sh [cache|slow|storm|stall]...   (default: the first
# three; PROXY_BIN picks the proxy binary, as in perf/compare.sh)
# Output: a table on stdout and perf/results/resume.jsonl (one JSON per row).
set -euo pipefail
cd "$(dirname "$0")/.."
. perf/lib.sh

CACHE_MB=${CACHE_MB:-256}
FAST_K=${FAST_K:-1000}
SLOW=${SLOW:-200}
SECS=${SECS:-10}
STORM_K=${STORM_K:-15000}
STORM_BEHIND=${STORM_BEHIND:-4000}
STALL_K=${STALL_K:-10000}
STALL_RECORDS=${STALL_RECORDS:-200000}
OUT=${OUT:-perf/results/resume.jsonl}
what=("$@"); [ ${#what[@]} -gt 0 ] || what=(cache slow storm)

cargo build --release --quiet
mkdir -p "$(dirname "$OUT")"; : >"$OUT"
read -r port admin broker port2 admin2 <<<"$(free_ports 5)"
BROKER_CPU=1 start_broker "$broker"
load=./target/release/sse-kafka-load
# The topic (nisshi creates it with 4 partitions on first produce).
taskset -c 1 $load produce --brokers "127.0.0.1:$broker" --topic items --rate 1 --seconds 0 >/dev/null
row() { echo "$1" | tee -a "$OUT"; }

# A proxy on CPU 0 with $work/proxy.yaml; PROXY_CONFIG_EXTRA adds YAML.
fresh_proxy() {
  if [ -n "${PROXY:-}" ]; then
    kill "$PROXY"; wait "$PROXY" 2>/dev/null || true
    # Until the old listener is gone (it drains its streams first).
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break; sleep 0.1; done
  fi
  write_proxy_config "$port" "$admin" "$broker"
  start_proxy "$admin"
}

for w in "${what[@]}"; do case $w in
cache)
  PROXY_CONFIG_EXTRA="cache: {partition_bytes: 1GiB, total_bytes: 2GiB, max_age: 1h}" fresh_proxy
  rss0=$(rss_kb "$PROXY")
  n=$((CACHE_MB * 1024))
  $load produce --brokers "127.0.0.1:$broker" --topic items --partitions 4 --value-size 1000 \
    --rate $((n / 4 + 1)) --seconds 4 --producer-cpu 1 >/dev/null
  for _ in $(seq 300); do
    [ "$(metric "$admin" sse_kafka_records_fetched_total)" -ge "$n" ] && break; sleep 0.1
  done
  cached=$(metric "$admin" sse_kafka_cache_bytes); rss1=$(rss_kb "$PROXY")
  row "$(python3 -c "import json,sys; c,a,b=map(int,sys.argv[1:]); print(json.dumps({'row':'cache','cached_mib':round(c/2**20,1),'rss_growth_mib':round((b-a)/1024,1),'rss_mib_per_cached_mib':round((b-a)*1024/c,3)}))" "$cached" "$rss0" "$rss1")"
  ;;
slow)
  PROXY_CONFIG_EXTRA="" fresh_proxy
  run_fast() {
    $load run --brokers "127.0.0.1:$broker" --topic items --partitions 4 --rate 100 --value-size 2000 \
      --producer-cpu 1 --url "http://127.0.0.1:$port/items" --connections "$FAST_K" --cpus 1 \
      --warmup 3 --seconds "$SECS" --spin-us 200 2>/dev/null | tail -1
  }
  base=$(run_fast)
  demoted0=$(metric "$admin" sse_kafka_demotions_total)
  slow_clients "$port" "$SLOW" $((SECS + 6))
  with=$(run_fast)
  demoted=$(( $(metric "$admin" sse_kafka_demotions_total) - demoted0 ))
  row "$(python3 -c "
import json,sys
b,w=json.loads(sys.argv[1]),json.loads(sys.argv[2])
print(json.dumps({'row':'slow','slow_clients':int(sys.argv[3]),'demoted':int(sys.argv[4]),
 'fast_p99_ms_without':b['latency_ms']['p99'],'fast_p99_ms_with':w['latency_ms']['p99'],
 'ratio':round(w['latency_ms']['p99']/b['latency_ms']['p99'],2),
 'fast_loss':w['loss'],'fast_events_per_s':round(w['events_per_s'])}))" "$base" "$with" "$SLOW" "$demoted")"
  ;;
storm)
  PROXY_CONFIG_EXTRA="" fresh_proxy
  storm() {
    $load storm --brokers "127.0.0.1:$broker" --topic items --partitions 4 --rate 2000 --producer-cpu 1 \
      --url "http://127.0.0.1:$port/items" --admin "127.0.0.1:$admin" --connections "$STORM_K" \
      --source-addresses 127.0.0.2-127.0.0.40 --behind "$STORM_BEHIND" --cpus 1 "$@" 2>/dev/null | tail -1
  }
  row "$(storm | python3 -c 'import json,sys; r=json.load(sys.stdin); r["row"]="storm, same instance (cache)"; print(json.dumps(r))')"
  # A second instance with no cache: every resume is served from Kafka.
  cat >"$work/proxy2.yaml" <<YAML
listen: 127.0.0.1:$port2
admin_listen: 127.0.0.1:$admin2
kafka:
  bootstrap: ["127.0.0.1:$broker"]
  fetch_max_wait: 20ms
cache: {partition_bytes: 0, total_bytes: 0}
routes:
  - path: /items
    topic: items
YAML
  ./target/release/sse-kafka run --config "$work/proxy2.yaml" --cpus 0 2>"$work/proxy2.log" &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin2/health/ready" >/dev/null && break; sleep 0.1; done
  row "$(storm --resume-url "http://127.0.0.1:$port2/items" --resume-admin "127.0.0.1:$admin2" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); r["row"]="storm, other instance (no cache)"; print(json.dumps(r))')"
  ;;
stall)
  PROXY_CONFIG_EXTRA="cache: {partition_bytes: 256MiB, total_bytes: 1GiB, max_age: 1h}" fresh_proxy
  fetched0=$(metric "$admin" sse_kafka_records_fetched_total)
  $load produce --brokers "127.0.0.1:$broker" --topic items --partitions 4 --value-size 100 \
    --rate $((STALL_RECORDS / 4)) --seconds 4 --producer-cpu 1 >/dev/null
  for _ in $(seq 300); do
    [ "$(( $(metric "$admin" sse_kafka_records_fetched_total) - fetched0 ))" -ge "$STALL_RECORDS" ] && break; sleep 0.1
  done
  run_live() {
    $load run --brokers "127.0.0.1:$broker" --topic items --partitions 4 --rate 100 --value-size 100 \
      --producer-cpu 1 --url "http://127.0.0.1:$port/items" --connections 1000 --cpus 1 \
      --warmup 3 --seconds "$SECS" --spin-us 200 2>/dev/null | tail -1
  }
  base=$(run_live)
  rss_before=$(rss_kb "$PROXY")
  open0=$(metric "$admin" sse_kafka_connections_open)
  # The live clients measured a second time from the moment the readers
  # come: beside their connects and catch-up, not only beside them parked.
  run_live >"$work/live-start.json" &
  live_pid=$!
  slow_clients "$port" "$STALL_K" $((SECS + 180)) "/items?since=0"
  for _ in $(seq 600); do
    [ "$(( $(metric "$admin" sse_kafka_connections_open) - open0 ))" -ge "$STALL_K" ] && break; sleep 0.1
  done
  # Until every reader has filled its socket and been parked (at most 2
  # minutes): the live clients are measured beside readers that take
  # nothing, not beside their catch-up.
  t0=$(date +%s.%N)
  for _ in $(seq 1200); do
    [ "$(metric "$admin" sse_kafka_stalled_readers)" -ge "$STALL_K" ] && break; sleep 0.1
  done
  stalled_after=$(python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),1))" "$t0")
  stalled_n=$(metric "$admin" sse_kafka_stalled_readers)
  wait "$live_pid"; starting=$(cat "$work/live-start.json")
  with=$(run_live)
  rss_during=$(rss_kb "$PROXY")
  kill "$SLOW_PID"; wait "$SLOW_PID" 2>/dev/null || true
  for _ in $(seq 600); do
    [ "$(metric "$admin" sse_kafka_connections_open)" -le "$open0" ] && break; sleep 0.1
  done
  # Two ticks of the proxy after the last stream ended.
  sleep 3
  rss_after=$(rss_kb "$PROXY")
  row "$(python3 -c "
import json,sys
b,w=json.loads(sys.argv[1]),json.loads(sys.argv[2])
k,r0,r1,r2,n=map(int,sys.argv[3:8])
s=json.loads(sys.argv[9])
print(json.dumps({'row':'stall','readers':k,'stalled':n,'all_stalled_after_s':float(sys.argv[8]),'live_p99_ms_without':b['latency_ms']['p99'],
 'live_p99_ms_while_starting':s['latency_ms']['p99'],'ratio_starting':round(s['latency_ms']['p99']/b['latency_ms']['p99'],2),
 'live_p99_ms_with':w['latency_ms']['p99'],'ratio':round(w['latency_ms']['p99']/b['latency_ms']['p99'],2),
 'live_loss':w['loss']+s['loss'],'rss_mib_before':round(r0/1024,1),'rss_mib_during':round(r1/1024,1),
 'rss_mib_after':round(r2/1024,1),'kib_per_stalled':round((r1-r0)/k,1)}))" "$base" "$with" "$STALL_K" "$rss_before" "$rss_during" "$rss_after" "$stalled_n" "$stalled_after" "$starting")"
  ;;
*) echo "unknown measurement: $w (cache, slow, storm or stall)" >&2; exit 2 ;;
esac; done
