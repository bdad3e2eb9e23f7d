#!/usr/bin/env bash
# The test command: installs the nisshi broker when missing, the npm
# EventSource client, the Python Kafka client and HAProxy (the tests start
# their own brokers, proxies and load balancers on ephemeral ports), then
# runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./examples/install-nisshi.sh
# Real EventSource clients for the tests: the npm `eventsource` package,
# and a browser, headless Chromium (Debian package `chromium`) driven by
# `puppeteer-core` (tests/reauth.rs runs the README's re-authentication
# code in it). Chromium is installed once; a test that finds it missing
# fails and says so.
npm ci --prefix tests/clients --no-audit --no-fund
if ! command -v chromium >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi
# A real Kafka producer, Python `confluent-kafka` (bundled librdkafka), for
# the tests that check where keys land (tests/clients/produce_keys.py), and
# PyJWT (with `cryptography`), which mints the guard tests' keys and tokens
# (tests/clients/mint.py), independently of the server's verifier.
# Tests run "$SSE_KAFKA_PYTHON", exported here: the system python3 when it
# already imports both, else a venv in target/python, created once and
# reused (Debian's python3 refuses `pip install --user`, PEP 668). The venv's
# bin/ also goes first on PATH, so a plain `python3` finds them too.
CONFLUENT_KAFKA_VERSION=2.16.1
PYJWT_VERSION=2.10.1
if python3 -c 'import confluent_kafka, jwt' 2>/dev/null; then
  SSE_KAFKA_PYTHON="$(command -v python3)"
else
  venv="$PWD/target/python"
  if ! "$venv/bin/python3" -c 'import confluent_kafka, jwt' 2>/dev/null; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv"; then
      # Debian ships venv (and the pip it bootstraps) as python3-venv.
      rm -rf "$venv"
      sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
      $sudo apt-get update -qq
      $sudo apt-get install -y -qq python3-venv
      python3 -m venv "$venv"
    fi
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
      "confluent-kafka==$CONFLUENT_KAFKA_VERSION" "pyjwt[crypto]==$PYJWT_VERSION"
  fi
  SSE_KAFKA_PYTHON="$venv/bin/python3"
  export PATH="$venv/bin:$PATH"
fi
export SSE_KAFKA_PYTHON
# A real load balancer, HAProxy (Debian package `haproxy`), for the tests
# that kill one of two instances behind it (tests/failover.rs). Installed
# once (Debian puts it in /usr/sbin, not on every user's PATH); a test that
# finds it missing fails and says so.
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq haproxy
fi
# systemd-analyze (Debian package `systemd`) checks the unit in
# examples/systemd/ (tests/operations.rs); no running systemd is needed.
if ! command -v systemd-analyze >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq systemd
fi
# The load generator is its own package; one of the server's tests runs
# its binary (tests/server.rs), which cargo does not build for them.
cargo build --release -p sse-kafka-load
# Every package of the workspace: the server, the load generator, the
# perf tools.
cargo test --release --workspace --tests "$@"
