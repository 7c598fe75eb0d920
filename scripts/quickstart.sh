#!/usr/bin/env bash
# The main job on local peers: start a moto server (a local AWS), create a cluster's
# infrastructure, show it, re-run (a no-op), and terminate it leaving nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"
bash scripts/peers.sh
cargo build --locked --bin clouder
clouder=$(cargo metadata --format-version 1 --no-deps | python3 -c "import json,sys; print(json.load(sys.stdin)[\"target_directory\"])")/debug/clouder

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.2; done

export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
       AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true CLOUDER_HOME=$work/home
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
