#!/usr/bin/env bash
# The main job on local peers: start a moto server (a local AWS), create a cluster's
# infrastructure, show it, re-run (a no-op), and terminate it leaving nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"
bash scripts/peers.sh
cargo build --locked --bin clouder
source scripts/lib.sh
clouder=$(clouder_bin debug)
work=$(mktemp -d)
start_moto
ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
cat >"$work/cluster.yaml" <<YAML
apiVersion: clouder.io/v1alpha1
kind: Cluster
metadata:
  name: quickstart
spec:
  provider: aws
  region: us-east-1
  adminCidrs: [203.0.113.7/32]
  image: ami-785db401          # an image the moto server knows
  ssh:
    publicKeyPath: $work/id_ed25519.pub
  controlPlane: {count: 1}
  nodePools:
    - name: workers
      count: 3
YAML

set -x
"$clouder" kubeadm plan -f "$work/cluster.yaml"
"$clouder" kubeadm apply -f "$work/cluster.yaml"
"$clouder" kubeadm apply -f "$work/cluster.yaml"      # converged: no mutating call
"$clouder" kubeadm set-default quickstart
"$clouder" kubeadm ls
"$clouder" kubeadm info
"$clouder" kubeadm terminate --force
"$clouder" kubeadm ls
