#!/usr/bin/env bash
# A containerd node for tests: run as `unshare -m -p -f --kill-child cri-node.sh ROOTFS DIR [CMD…]`
# (CMD instead of containerd: the benchmark runs criu by hand there).
# ROOTFS (containerd, runc, CRIU) stays untouched under an overlay whose writes go to DIR/upper;
# the runtime's socket, state, pod logs and checkpoint archives are bind-mounted from DIR so the
# test reads them from outside. DIR/config.toml is containerd's configuration.
set -euo pipefail
rootfs=$1 dir=$2
shift 2
root=$dir/root
mount --make-rprivate /
mkdir -p "$dir"/{upper,work,root,run,lib,pods,checkpoints}
mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$dir/upper,workdir=$dir/work" "$root"
mkdir -p "$root"/{var/lib/containerd,var/log/pods,checkpoints,etc/containerd}
mount --bind "$dir/run" "$root/run"
mount --bind "$dir/lib" "$root/var/lib/containerd"
mount --bind "$dir/pods" "$root/var/log/pods"
mount --bind "$dir/checkpoints" "$root/checkpoints"
# Where a kubelet asks the runtime to write checkpoint archives.
mkdir -p "$root/var/lib/kubelet/checkpoints"
mount --bind "$dir/checkpoints" "$root/var/lib/kubelet/checkpoints"
cp "$dir/config.toml" "$root/etc/containerd/config.toml"
# runc has CRIU read this file: keep CRIU's log of the last dump or restore where the test sees it.
mkdir -p "$root/etc/criu"
printf 'log-file /var/lib/containerd/criu.log\nverbosity 4\n' > "$root/etc/criu/runc.conf"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
# containerd stages CRIU images under /tmp while checkpointing: room for large processes.
mount -t tmpfs -o size=4g tmpfs "$root/tmp"
mount -t tmpfs -o size=16m,mode=755 tmpfs "$root/dev"
for d in null zero full random urandom tty; do
  touch "$root/dev/$d"
  mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs shm "$root/dev/shm"
cd "$root"
mkdir -p .old-root
pivot_root . .old-root
umount -l /.old-root
if [ $# -gt 0 ]; then
  exec "$@"
fi
exec containerd --config /etc/containerd/config.toml --log-level info
