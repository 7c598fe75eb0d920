#!/usr/bin/env bash
# Node bootstrap benchmark, by hand: 1, 10 and 30 lab hosts, shared cores and capped CPU (see
# crates/clouder-node/benches/bootstrap.rs). Needs root, scripts/peers.sh and the Debian registry.
#   bash scripts/bench-bootstrap.sh [1 10 30] [--shared | --capped]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/peers.sh
# The nodekit packages the Kubernetes stand-in from the same profile as the bench.
cargo build --release -q -p clouder-testkube --bin clouder-testkube
cargo bench -q -p clouder-node --bench bootstrap -- "$@"
