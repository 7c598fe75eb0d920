# shellcheck shell=bash
# Shared by quickstart.sh and bench.sh (sourced, not run).

# The built binary of PROFILE (debug|release), wherever cargo's target directory is.
clouder_bin() {
  local target
  target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  echo "$target/$1/clouder"
}

# Starts a moto server on a free loopback port for this shell, points the AWS SDK at it, and
# stops it (and removes $work) on exit. Needs $work set to a scratch folder.
start_moto() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  : "${work:?set work to a scratch folder first}"
  moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  trap 'kill $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
  until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.2; done
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
         AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true CLOUDER_HOME=$work/home
}
