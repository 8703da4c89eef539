#!/usr/bin/env bash
# Benchmark `subroot mkfs IMG -p 1 --from IMG:1 -o OUT` (rebuilding an ext4 partition
# holding ~1 GiB of a real tree from itself) against the floor measured in the same run:
# `mke2fs -d` from an already-extracted copy of the same tree (what any rebuild must at
# least do). Both populate paths are measured: the staging copy with the system's mke2fs,
# and the tar stream with an mke2fs that reads tar (SUBROOT_TEST_MKE2FS_TAR, else the one
# scripts/e2fsprogs-backports.sh fetches, else skipped), each against its own mke2fs's
# floor. Peak RSS is subroot's own (VmHWM), not its children's (mke2fs, debugfs, e2fsck).
# The input (a copy of the host's /usr/share and /usr/lib up to DATA_MIB) is cached in
# bench/work/rebuild/ (git-ignored); delete that directory to rebuild it.
#
#   bash bench/rebuild.sh [DATA_MIB]      # default 1024
source "$(dirname "$0")/lib.sh"
mib=${1:-1024}
bench_need mke2fs sfdisk python3
subroot=$(bench_subroot)
work=$PWD/bench/work/rebuild
tree=$work/tree
img=$work/in.raw
mkdir -p "$work"

if [[ ! -f $img || ! -f $work/tree.done || $(cat "$work/tree.done") != "$mib" ]]; then
  echo "==> building the input: ~${mib} MiB of /usr/share and /usr/lib in an ext4 partition"
  rm -rf "$tree" "$img" "$work/tree.done"
  mkdir -p "$tree/usr"
  for src in /usr/share/* /usr/lib/*; do
    [[ -d $src && ! -L $src ]] || continue
    have=$(du -sm "$tree" | cut -f1); add=$(du -sm "$src" | cut -f1)
    (( have + add <= mib )) || continue
    rel=${src#/usr/}
    mkdir -p "$tree/usr/$(dirname "$rel")"
    cp -a "$src" "$tree/usr/$rel" 2>/dev/null || true
  done
  data=$(du -sm "$tree" | cut -f1)
  part_mib=$(( data * 2 + 256 ))
  truncate -s $(( (part_mib + 2) << 20 )) "$img"
  printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$img"
  mke2fs -q -F -t ext4 -L bench -E offset=1048576 -d "$tree" "$img" "${part_mib}M"
  echo "$mib" > "$work/tree.done"
fi
data=$(du -sm "$tree" | cut -f1)
entries=$(find "$tree" | wc -l)
part_bytes=$(( $(stat -c %s "$img") - (2 << 20) ))
echo "tree: ${data} MiB, ${entries} entries; partition $(( part_bytes >> 20 )) MiB"

# "seconds peak_rss_kib": subroot's own peak RSS (VmHWM), without the mke2fs it runs.
measure() { python3 bench/measure.py --own "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

tar_mke2fs=${SUBROOT_TEST_MKE2FS_TAR:-}
if [[ -z $tar_mke2fs ]]; then
  tar_mke2fs=$(bash scripts/e2fsprogs-backports.sh 2>/dev/null) || tar_mke2fs=
fi

printf '%-44s %8s %10s\n' "" "seconds" "peak RSS"
run_path() { # NAME MKE2FS POPULATE
  local name=$1 mk=$2 pop=$3 t m ft fm
  read -r t m < <(SUBROOT_POPULATE=$pop measure "$subroot" -q mkfs "$img" -p 1 --from "$img:1" \
    -o "$work/out.raw" --force --mke2fs "$mk")
  rm -f "$work/floor.img"; truncate -s "$part_bytes" "$work/floor.img"
  read -r ft fm < <(measure "$mk" -q -F -t ext4 -d "$tree" "$work/floor.img")
  printf '%-44s %8s %6s MiB\n' "subroot mkfs ($name)" "$t" $((m / 1024))
  printf '%-44s %8s %6s MiB\n' "floor: mke2fs -d DIR ($name's mke2fs)" "$ft" $((fm / 1024))
  echo "ratio $name: subroot mkfs / floor = $(ratio "$t" "$ft")"
}
run_path "staging, $(mke2fs -V 2>&1 | head -1 | cut -d' ' -f2)" "$(command -v mke2fs)" staging
if [[ -n $tar_mke2fs ]]; then
  run_path "tar, $("$tar_mke2fs" -V 2>&1 | head -1 | cut -d' ' -f2)" "$tar_mke2fs" tar
else
  echo "tar path: no mke2fs that reads tar (scripts/e2fsprogs-backports.sh failed); not measured"
fi
rm -f "$work/out.raw" "$work/floor.img"
