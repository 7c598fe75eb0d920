#!/usr/bin/env bash
# The test suite: installs peers, then runs every test of the workspace (moto is started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"
bash scripts/peers.sh
cargo test --workspace --locked "$@"
