#!/usr/bin/env bash
# Checkpoint/restore benchmark, by hand: raw criu vs clouder's CRI + OCI image + registry path
# for a counter with ~100 MiB of touched memory. Needs root (namespaces) and scripts/peers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/peers.sh
# Release: a debug build digests the archive ten times slower than the runtime writes it.
cargo run --release -q -p clouder-checkpoint --example bench
