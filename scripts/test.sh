#!/usr/bin/env bash
# Run weir's whole test suite, from a fresh machine or a warm one.
#
# Installs what the tests need (the wasm32-wasip2 target; the Kafka-compatible
# broker and the S3 server, see scripts/dev-services.sh), then runs every
# test in the workspace. Tests that need the servers start them themselves
# through scripts/dev-services.sh. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
if [ -x scripts/dev-services.sh ]; then
    scripts/dev-services.sh install
fi
cargo test --workspace --locked "$@"
