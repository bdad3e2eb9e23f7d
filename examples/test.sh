#!/usr/bin/env bash
# The test command: installs the nisshi broker when missing (the tests start
# their own brokers and proxies on ephemeral ports), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./examples/install-nisshi.sh
cargo test --release --all-targets "$@"
