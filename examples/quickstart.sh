#!/usr/bin/env bash
# The main job on a local default: a nisshi broker, the proxy and a sample
# producer. Then `curl -N http://127.0.0.1:8080/items` shows live events.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
./examples/install-nisshi.sh
cargo build --release --bin sse-kafka --example produce
. perf/lib.sh
# Ctrl-C too stops everything this script started.
trap cleanup EXIT INT TERM
start_broker 9092
# The producer creates the topic (4 partitions) before producing.
./target/release/examples/produce --brokers 127.0.0.1:9092 --topic items --partitions 4 --rate 2 &
pids+=($!)
# CONFIG=examples/asyncapi/quickstart.yaml: the same routes, declared in AsyncAPI.
./target/release/sse-kafka run --config "${CONFIG:-examples/quickstart.yaml}" &
pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:9464/health/ready >/dev/null && break; sleep 0.2; done
cat <<MSG

  sse-kafka is streaming topic 'items' (2 records/s). Try:

    curl -N http://127.0.0.1:8080/items
    curl -N http://127.0.0.1:8080/items -H 'Last-Event-ID: <an id you saw>'
    curl -s http://127.0.0.1:9464/metrics
    curl -s http://127.0.0.1:8080/asyncapi.yaml

  Ctrl-C stops the broker, the proxy and the producer.
MSG
wait
