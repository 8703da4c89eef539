#!/usr/bin/env bash
# Benchmark reading a whole btrfs (zstd-compressed): `subroot extract` against the kernel
# (`cp -a` from a read-only loop mount, freshly mounted so its caches are cold) and
# against `btrfs restore` (btrfs-progs' userspace reader), same image, same run. The
# filesystem holds a copy of the host's /usr (up to DATA_MIB of it), written through a
# `compress=zstd` mount. Root only (the mounts). Prints wall times, ratios and peak RSS.
# Work files go to bench/work/btrfs (git-ignored).
#
#   sudo bash bench/btrfs.sh [DATA_MIB]      # default 1024
#   sudo BENCH_DEST=/dev/shm/bench bash bench/btrfs.sh   # copies written to tmpfs
source "$(dirname "$0")/lib.sh"
mib=${1:-1024}
[[ $(id -u) == 0 ]] || { echo "bench/btrfs.sh needs root (loop mounts)" >&2; exit 1; }
bench_need mkfs.btrfs btrfs mount python3
work=$PWD/bench/work/btrfs
mkdir -p "$work"
img=$work/usr-$mib.btrfs
mnt=$work/mnt
mkdir -p "$mnt"
trap 'mountpoint -q "$mnt" && umount "$mnt"' EXIT

# The image is cached between runs (same DATA_MIB): building it dominates otherwise.
if [[ ! -f $img ]]; then
  truncate -s "$(( mib * 2 + 512 ))M" "$img.tmp"
  mkfs.btrfs -q -f "$img.tmp"
  mount -o loop,compress=zstd "$img.tmp" "$mnt"
  for src in /usr/*; do
    have=$(du -sm "$mnt" | cut -f1); add=$(du -sm "$src" | cut -f1)
    (( have + add <= mib )) || continue
    cp -a "$src" "$mnt/" 2>/dev/null || true
  done
  umount "$mnt"
  mv "$img.tmp" "$img"
fi
subroot=$(bench_subroot)
entries=$("$subroot" -q manifest --no-hash "$img" | wc -l)
mount -o loop,ro "$img" "$mnt"
data=$(du -sm "$mnt" | cut -f1)
umount "$mnt"
echo "filesystem: $img ($(du -m "$img" | cut -f1) MiB allocated), ${data} MiB of files, ${entries} entries, zstd"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
fresh() { rm -rf "$1"; mkdir -p "$1"; }
# Where the copies are written: BENCH_DEST=/dev/shm/bench takes the disk out of the
# comparison (on a shared virtual disk its writeback varies by seconds from run to run).
out=${BENCH_DEST:-$work}

# Warm the image file's page cache once so every contender reads it from memory alike.
cat "$img" > /dev/null
fresh "$out/kernel"
mount -o loop,ro "$img" "$mnt"
read -r t_cp m_cp < <(bench_timed "$out/kernel" cp -a "$mnt/." "$out/kernel")
umount "$mnt"
fresh "$out/restore"
read -r t_rs m_rs < <(bench_timed "$out/restore" btrfs restore -x -m -S "$img" "$out/restore")
rm -rf "$out/restore"
fresh "$out/extract"
read -r t_ext m_ext < <(bench_timed "$out/extract" "$subroot" -q extract "$img" -C "$out/extract")
diff -r --no-dereference "$out/kernel" "$out/extract" >/dev/null \
  || echo "WARNING: the extracted tree differs from the kernel's copy" >&2
rm -rf "$out/kernel" "$out/extract"

printf '%-40s %8s %10s\n' "" "seconds" "peak RSS"
printf '%-40s %8s %8s MiB\n' "kernel: cp -a from a loop mount" "$t_cp" $((m_cp / 1024))
printf '%-40s %8s %8s MiB\n' "btrfs restore -x -m -S" "$t_rs" $((m_rs / 1024))
printf '%-40s %8s %8s MiB\n' "subroot extract -C DIR" "$t_ext" $((m_ext / 1024))
echo "ratio extract / kernel cp -a    = $(ratio "$t_ext" "$t_cp")   (goal <= 1.00, RSS < 64 MiB)"
echo "ratio extract / btrfs restore   = $(ratio "$t_ext" "$t_rs")"
