#!/usr/bin/env bash
# The state's backends side by side: `kubeadm ls` and a no-op re-apply of a 100-worker cluster
# (with 100 more clusters' records in the state), the state local, in S3 (moto) and in Azure
# Blob (Azurite). A shared state adds a lock, a fetch, and a compare-and-swap write-back.
#   scripts/bench-state.sh [debug|release (default debug)]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"
profile=${1:-debug}
bash scripts/peers.sh
flags=(); [ "$profile" = release ] && flags=(--release)
cargo build "${flags[@]}" --locked --bin clouder >&2
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
clouder=$(clouder_bin "$profile")
work=$(mktemp -d)
start_moto
start_azurite
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
common=(--admin-cidr 203.0.113.7/32 --image ami-785db401 --ssh-public-key "$work/key.pub" -q)

"$clouder" kubeadm create hundred -w 100 "${common[@]}" >/dev/null
# 100 more clusters' records (ls reads the state, not the cloud).
add_cluster_records "$CLOUDER_HOME/state.db"
python3 -c "import boto3,os; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL']).create_bucket(Bucket='bench-state')"
azurite_container bench-state
s3=s3://bench-state/clouder.db
blob=azblob://devstoreaccount1/bench-state/clouder.db
"$clouder" state migrate --to "$s3" >/dev/null
"$clouder" state migrate --to "$blob" >/dev/null
size_kib=$(( $(stat -c %s "$CLOUDER_HOME/state.db") / 1024 ))

declare -A ls_ms noop_ms
for backend in local s3 blob; do
  case $backend in local) shared=() ;; s3) shared=(--state "$s3") ;; blob) shared=(--state "$blob") ;; esac
  ls_ms[$backend]=$(median_ms 11 "$clouder" kubeadm ls "${shared[@]}")
  noop_ms[$backend]=$(median_ms 3 "$clouder" kubeadm create hundred -w 100 "${common[@]}" "${shared[@]}")
done

printf '\nstate backends (%s build; state of 101 clusters, one of 100 workers, %s KiB)\n' "$profile" "$size_kib"
printf '%-40s %12s %12s %16s\n' "median wall time" "local" "S3 (moto)" "Blob (Azurite)"
printf '%-40s %10sms %10sms %14sms\n' "kubeadm ls (of 11)" "${ls_ms[local]}" "${ls_ms[s3]}" "${ls_ms[blob]}"
printf '%-40s %10sms %10sms %14sms\n' "no-op re-apply, 100 workers (of 3)" "${noop_ms[local]}" "${noop_ms[s3]}" "${noop_ms[blob]}"
