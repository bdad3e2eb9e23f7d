#!/usr/bin/env bash
# Installs the nisshi Kafka-protocol broker (the test broker, see DESIGN §6)
# when it is missing. It needs rustc >= 1.96, so it builds with the nightly
# toolchain; the first build takes about 14 minutes.
set -euo pipefail
NISSHI_VERSION=0.8.1
bin="${NISSHI_BIN:-$HOME/.cargo/bin/nisshi}"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$NISSHI_VERSION"; then
  exit 0
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
echo "installing nisshi $NISSHI_VERSION (first time: ~14 minutes)..." >&2
cargo +nightly install "nisshi@$NISSHI_VERSION" --locked --no-default-features --features dynostore,libsql
