#!/usr/bin/env bash
# Benchmarks of issue targets, printed side by side. Uses the release binary and a local moto server.
#   plan of a 1,000-node spec            target < 1 s
#   no-op re-apply of 100 workers        target 0 mutating calls, < 3 s
#   create 1 vs 50 workers               target ratio <= 2
#   clouder --help, kubeadm ls (100 clusters in state)   target < 20 ms, < 15 MiB
#   kubeadm ls and a no-op re-apply, state local vs S3 vs Azure Blob (scripts/bench-state.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"
bash scripts/peers.sh
cargo build --release --locked --bin clouder >&2
source scripts/lib.sh
clouder=$(clouder_bin release)
work=$(mktemp -d)
start_moto
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
common=(--admin-cidr 203.0.113.7/32 --image ami-785db401 --ssh-public-key "$work/key.pub" -q)

peak_kib() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

# A warm-up, so moto's lazy start-up costs land in no figure.
"$clouder" kubeadm create warmup -w 1 "${common[@]}" >/dev/null
"$clouder" kubeadm terminate warmup --force -q >/dev/null

plan_1000=$(timed "$clouder" kubeadm plan -f <(cat <<YAML
apiVersion: clouder.io/v1alpha1
kind: Cluster
metadata: {name: big}
spec:
  provider: aws
  adminCidrs: [203.0.113.7/32]
  image: ami-785db401
  ssh: {publicKeyPath: $work/key.pub}
  controlPlane: {count: 3}
  nodePools: [{name: workers, count: 997}]
YAML
))

create_1=$(timed "$clouder" kubeadm create one -w 1 "${common[@]}")
create_50=$(timed "$clouder" kubeadm create fifty -w 50 "${common[@]}")
# The same with a cloud's round trip on every call (moto answers at once, but serially).
slow=(env CLOUDER_FAULT_LATENCY_MS=150)
slow_1=$(timed "${slow[@]}" "$clouder" kubeadm create slow-one -w 1 "${common[@]}")
slow_50=$(timed "${slow[@]}" "$clouder" kubeadm create slow-fifty -w 50 "${common[@]}")
"$clouder" kubeadm create hundred -w 100 "${common[@]}" >/dev/null
noop_100=$(timed "$clouder" kubeadm create hundred -w 100 "${common[@]}")
noop_mut=$("$clouder" kubeadm create hundred -w 100 "${common[@]}" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"]["mutating"])')

# 100 clusters in local state (records only: ls reads state, not the cloud)
add_cluster_records "$CLOUDER_HOME/state.db"
help_ms=$(median_ms 21 "$clouder" --help)
ls_ms=$(median_ms 21 "$clouder" kubeadm ls)
help_kib=$(peak_kib "$clouder" --help)
ls_kib=$(peak_kib "$clouder" kubeadm ls)

printf '\n%-44s %12s %12s\n' "benchmark" "measured" "target"
printf '%-44s %11.3fs %12s\n' "plan, 1,000-node spec" "$plan_1000" "< 1 s"
printf '%-44s %11.3fs %12s\n' "create, 1 worker" "$create_1" ""
printf '%-44s %11.3fs %12s\n' "create, 50 workers" "$create_50" ""
printf '%-44s %12.2f %12s\n' "  ratio 50 / 1" "$(calc "$create_50 / $create_1")" "<= 2"
printf '%-44s %11.3fs %12s\n' "create, 1 worker, 150 ms per call" "$slow_1" ""
printf '%-44s %11.3fs %12s\n' "create, 50 workers, 150 ms per call" "$slow_50" ""
printf '%-44s %12.2f %12s\n' "  ratio 50 / 1" "$(calc "$slow_50 / $slow_1")" "<= 2"
printf '%-44s %11.3fs %12s\n' "no-op re-apply, 100 workers" "$noop_100" "< 3 s"
printf '%-44s %12s %12s\n' "  mutating calls" "$noop_mut" "0"
printf '%-44s %10sms %12s\n' "clouder --help (median of 21)" "$help_ms" "< 20 ms"
printf '%-44s %10sms %12s\n' "clouder kubeadm ls, 100 clusters (median)" "$ls_ms" "< 20 ms"
printf '%-44s %9.1fMiB %12s\n' "clouder --help, peak memory" "$(calc "$help_kib / 1024")" "< 15 MiB"
printf '%-44s %9.1fMiB %12s\n' "clouder kubeadm ls, peak memory" "$(calc "$ls_kib / 1024")" "< 15 MiB"

# The same with the state in S3 and in Azure Blob, side by side.
bash scripts/bench-state.sh release

# BYOC heartbeats: one round over 1,000 HTTPS endpoints (5% slow or down), bounded concurrent vs
# a naive sequential loop (wall and CPU time; about two minutes, most of it the sequential loop).
echo
cargo bench --locked -p clouder-byoc --bench heartbeat
