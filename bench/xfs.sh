#!/usr/bin/env bash
# Benchmark reading a whole XFS filesystem: `subroot extract` (into a directory) against
# the kernel's `cp -a` from a read-only loop mount of the same image in the same run
# (root only: the kernel side needs the mount; subroot itself needs none). The filesystem
# is made by mkfs.xfs and filled through a loop mount with a copy of the host's /usr (up
# to DATA_MIB of it). Prints wall times, the ratio and peak RSS.
# Work files go to bench/work/xfs (git-ignored).
#
#   sudo bash bench/xfs.sh [DATA_MIB]      # default 1024
#   sudo BENCH_DEST=/dev/shm/bench bash bench/xfs.sh   # copies written to tmpfs
source "$(dirname "$0")/lib.sh"
mib=${1:-1024}
[[ $(id -u) == 0 ]] || { echo "bench/xfs.sh needs root (the kernel side loop-mounts)" >&2; exit 1; }
bench_need mkfs.xfs mount python3
subroot=$(bench_subroot)
work=$PWD/bench/work/xfs
mkdir -p "$work"
img=$work/usr-$mib.xfs
mnt=$work/mnt
mkdir -p "$mnt"
trap 'umount "$mnt" 2>/dev/null || true' EXIT

# The image is cached between runs (same DATA_MIB): building it dominates otherwise.
if [[ ! -f $img ]]; then
  truncate -s "$(( mib * 3 / 2 + 512 ))M" "$img.tmp"
  mkfs.xfs -q -f "$img.tmp"
  mount -o loop "$img.tmp" "$mnt"
  # Whole directories two levels down (/usr/lib/x86_64-linux-gnu, /usr/share/doc, ...)
  # while they fit, so the tree comes close to DATA_MIB.
  have=0
  for src in /usr/*/*; do
    add=$(du -sm "$src" | cut -f1)
    (( have + add <= mib )) || continue
    cp -a --parents "$src" "$mnt/" 2>/dev/null || true
    have=$(( have + add ))
  done
  umount "$mnt"
  mv "$img.tmp" "$img"
fi
entries=$("$subroot" -q manifest --no-hash "$img" | wc -l)
echo "filesystem: $img, ${entries} entries, $(du -sm --apparent-size "$img" | cut -f1) MiB image"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
fresh() { rm -rf "$1"; mkdir -p "$1"; }
# Where the copies are written: BENCH_DEST=/dev/shm/bench takes the disk out of the
# comparison (on a shared virtual disk its writeback varies by seconds from run to run).
out=${BENCH_DEST:-$work}

# Warm the page cache once so both read the image from memory alike; the mount is made
# fresh, so the kernel's XFS metadata cache starts empty as subroot's does.
cat "$img" > /dev/null
fresh "$out/kernel"
mount -o loop,ro "$img" "$mnt"
read -r t_cp m_cp < <(bench_timed "$out/kernel" cp -a "$mnt/." "$out/kernel")
umount "$mnt"
fresh "$out/extract"
read -r t_ext m_ext < <(bench_timed "$out/extract" "$subroot" -q extract "$img" -C "$out/extract")
rm -rf "$out/kernel" "$out/extract"

printf '%-36s %8s %10s\n' "" "seconds" "peak RSS"
printf '%-36s %8s %8s MiB\n' "cp -a from a loop mount (kernel)" "$t_cp" $((m_cp / 1024))
printf '%-36s %8s %8s MiB\n' "subroot extract -C DIR" "$t_ext" $((m_ext / 1024))
echo "ratio extract / kernel cp -a = $(ratio "$t_ext" "$t_cp")   (target <= 1.00, RSS < 64 MiB)"
