#!/usr/bin/env bash
# Installs the test peers this machine lacks. Safe to run again; used by test.sh, quickstart.sh, bench.sh.
set -euo pipefail

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs), then re-run" >&2
  exit 1
fi

# SSH hosts: network namespaces (iproute2) running the system's sshd (openssh-server).
missing=()
command -v ip >/dev/null || missing+=(iproute2)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
