#!/usr/bin/env bash
# Profiles a running process (the proxy, by default the newest sse-kafka)
# with `perf record` and renders a flamegraph with inferno, plus a short
# text summary of where the time goes (kernel vs user, top symbols).
#
#   perf/flamegraph.sh [PID] [SECONDS=10] [OUT=perf/results/flamegraph.svg]
#
# Uses the cpu-clock software event (this VM has no hardware counters) at
# 999 Hz with call graphs. Installs inferno with cargo when missing; needs
# linux-perf (installed with apt when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PID=${1:-$(pgrep -n -x sse-kafka || true)}
SECS=${2:-10}
OUT=${3:-perf/results/flamegraph.svg}
if [ -z "$PID" ] || [ ! -d "/proc/$PID" ]; then
  echo "usage: perf/flamegraph.sh PID [SECONDS] [OUT.svg] (no running sse-kafka found)" >&2
  exit 2
fi
if ! command -v perf >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
if ! command -v inferno-flamegraph >/dev/null; then
  cargo install inferno --locked >&2
fi
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
mkdir -p "$(dirname "$OUT")"
perf record -e cpu-clock -F 999 -g -p "$PID" -o "$data/perf.data" -- sleep "$SECS" 2>"$data/record.log" >/dev/null
perf script -i "$data/perf.data" 2>/dev/null >"$data/perf.txt"
inferno-collapse-perf <"$data/perf.txt" >"$data/folded"
inferno-flamegraph --title "$(tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | cut -c1-80) ($SECS s)" \
  <"$data/folded" >"$OUT"
# Kernel vs user by the leaf frame (kernel symbols have a [kernel.kallsyms]
# module in perf script's output).
perf report -i "$data/perf.data" --no-children --sort dso --stdio 2>/dev/null |
  awk '/^ +[0-9.]+%/{print "  " $1, $2}' | head -5
echo "top symbols (self time):"
perf report -i "$data/perf.data" --no-children --sort sym --stdio 2>/dev/null |
  awk '/^ +[0-9.]+%/{$2=""; print "  " $0}' | head -15
echo "flamegraph: $OUT" >&2
