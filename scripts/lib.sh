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

# Starts Azurite's Blob service (installed by peers.sh) on a free loopback port for this shell,
# points clouder at its development account, and stops it on exit (after what the EXIT trap
# already does). Needs $work set to a scratch folder.
start_azurite() {
  local port dir=${CLOUDER_TEST_AZURITE_DIR:-/var/tmp/clouder-peers/azurite} previous
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  : "${work:?set work to a scratch folder first}"
  "$dir/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
    --location "$work/azurite" --skipApiVersionCheck --silent >"$work/azurite.log" 2>&1 &
  azurite_pid=$!
  previous=$(trap -p EXIT | sed "s/^trap -- '\(.*\)' EXIT$/\1/")
  # shellcheck disable=SC2064 # the pid is fixed now; the earlier trap's text is kept as it was
  trap "kill $azurite_pid 2>/dev/null; wait $azurite_pid 2>/dev/null; $previous" EXIT
  until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.2; done
  # The well-known development account of Azurite (public).
  export AZURE_STORAGE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==' \
         AZURE_STORAGE_BLOB_ENDPOINT=http://127.0.0.1:$port/devstoreaccount1
}

# Creates container $1 in Azurite's development account (a Shared Key signed request).
azurite_container() {
  python3 - "$1" <<'PY'
import base64, email.utils, hashlib, hmac, os, sys, urllib.parse, urllib.request
url = f"{os.environ['AZURE_STORAGE_BLOB_ENDPOINT']}/{sys.argv[1]}?restype=container"
date, version = email.utils.formatdate(usegmt=True), "2021-08-06"
# VERB, 11 standard headers (only Content-Type set), x-ms- headers, resource.
to_sign = ("PUT\n" + "\n" * 4 + "application/octet-stream\n" + "\n" * 6
           + f"x-ms-date:{date}\nx-ms-version:{version}\n"
           f"/devstoreaccount1{urllib.parse.urlparse(url).path}\nrestype:container")
key = base64.b64decode(os.environ["AZURE_STORAGE_KEY"])
signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
request = urllib.request.Request(url, data=b"", method="PUT", headers={
    "Content-Type": "application/octet-stream", "x-ms-date": date, "x-ms-version": version,
    "Authorization": f"SharedKey devstoreaccount1:{signature}"})
urllib.request.urlopen(request).close()
PY
}

# Wall times: seconds elapsed for a command (its output discarded), and the median of N runs in ms.
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
timed() { local t0; t0=$(now); "$@" >/dev/null; calc "$(now) - $t0"; }
median_ms() { local n=$1; shift; for _ in $(seq "$n"); do timed "$@"; done | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]*1000}'; }

# Adds the records of 100 clusters c0…c99 (3 workers each) to the SQLite state at $1.
add_cluster_records() {
  python3 - "$1" <<'PY'
import json, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
for i in range(100):
    spec = {"apiVersion": "clouder.io/v1alpha1", "kind": "Cluster", "metadata": {"name": f"c{i}"},
            "spec": {"provider": "aws", "controlPlane": {"count": 1, "size": "t3.large", "osDiskGb": 100},
                     "nodePools": [{"name": "workers", "count": 3, "size": "t3.xlarge", "osDiskGb": 100}]}}
    db.execute("INSERT OR REPLACE INTO clusters VALUES (?,?,?,?,?,?,?,?,?)",
               (f"c{i}", "aws", "us-east-1", None, json.dumps(spec), "ready", 0, int(time.time()), int(time.time())))
db.commit()
PY
}
