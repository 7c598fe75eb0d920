#!/usr/bin/env bash
# Azure create of 1 vs 50 workers against the fake ARM server with a fixed latency on every
# request (a cloud's round trip; long-running operations poll twice). Prints wall times and the
# ratio (target <= 2: all machines are created at once).
#   scripts/bench-azure.sh [LATENCY_MS (default 200)] [debug|release (default debug)]
set -euo pipefail
cd "$(dirname "$0")/.."
latency=${1:-200}
profile=${2:-debug}
flags=(); [ "$profile" = release ] && flags=(--release)
cargo build "${flags[@]}" --bin clouder --bin fake-arm >&2
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
clouder=$(clouder_bin "$profile")
fake="$(dirname "$clouder")/fake-arm"
work=$(mktemp -d)
"$fake" --port 0 --latency-ms "$latency" >"$work/endpoint" 2>"$work/fake.log" &
fake_pid=$!
trap 'kill $fake_pid 2>/dev/null; rm -rf "$work"' EXIT
until [ -s "$work/endpoint" ]; do sleep 0.1; done
CLOUDER_AZURE_ARM_ENDPOINT=$(cat "$work/endpoint")
export CLOUDER_AZURE_ARM_ENDPOINT CLOUDER_AZURE_TOKEN=bench \
       AZURE_SUBSCRIPTION_ID=00000000-0000-0000-0000-00000000be0c CLOUDER_HOME=$work/home
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
# 64 calls in flight, so 50 machines' objects are written in one wave each.
common=(--provider azure -r eastus --admin-cidr 203.0.113.7/32 --ssh-public-key "$work/key.pub" --concurrency 64 -q)


one=$(timed "$clouder" kubeadm create one -w 1 "${common[@]}")
fifty=$(timed "$clouder" kubeadm create fifty -w 50 "${common[@]}")
printf 'azure create, %s ms per ARM request (fake-arm, %s build)\n' "$latency" "$profile"
printf '  1 worker    %6.2f s\n' "$one"
printf '  50 workers  %6.2f s\n' "$fifty"
printf '  ratio       %6.2f  (target <= 2)\n' "$(calc "$fifty / $one")"
