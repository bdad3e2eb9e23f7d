#!/usr/bin/env bash
# The test command: installs the nisshi broker when missing and the npm
# EventSource client (the tests start their own brokers and proxies on
# ephemeral ports), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./examples/install-nisshi.sh
# A real EventSource client (the npm `eventsource` package) for the tests.
npm ci --prefix tests/clients --no-audit --no-fund
cargo test --release --tests "$@"
