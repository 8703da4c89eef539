#!/usr/bin/env bash
# Benchmark reading a whole ext4 filesystem: `subroot export` (pax tar to /dev/null) and
# `subroot extract` (into a directory) against `debugfs -R 'rdump / DIR'` of the same
# image in the same run. The filesystem is built with `mke2fs -d` from a copy of the
# host's /usr (up to DATA_MIB of it). Prints wall times, ratios and peak RSS.
# Work files go to bench/work/export (git-ignored).
#
#   bash bench/export.sh [DATA_MIB]      # default 2048
source "$(dirname "$0")/lib.sh"
mib=${1:-2048}
bench_need mke2fs debugfs python3
subroot=$(bench_subroot)
work=$PWD/bench/work/export
mkdir -p "$work"
img=$work/usr-$mib.ext4

# The image is cached between runs (same DATA_MIB): building it dominates otherwise.
if [[ ! -f $img ]]; then
  stage=$work/tree
  rm -rf "$stage"; mkdir -p "$stage"
  for src in /usr/*; do
    have=$(du -sm "$stage" | cut -f1); add=$(du -sm "$src" | cut -f1)
    (( have + add <= mib )) || continue
    cp -a "$src" "$stage/" 2>/dev/null || true
  done
  data=$(du -sm "$stage" | cut -f1)
  mke2fs -q -F -t ext4 -d "$stage" "$img.tmp" "$(( data * 3 / 2 + 256 ))M"
  mv "$img.tmp" "$img"
  rm -rf "$stage"
fi
entries=$("$subroot" -q manifest --no-hash "$img" | wc -l)
used=$(dumpe2fs -h "$img" 2>/dev/null | awk -F: '/^Block count/{b=$2} /^Free blocks/{f=$2} /^Block size/{s=$2} END{printf "%d", (b-f)*s/1048576}')
echo "filesystem: $img, ${used} MiB used, ${entries} entries"

measure() { python3 bench/measure.py "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
fresh() { rm -rf "$1"; mkdir -p "$1"; }

# Warm the page cache once so every contender reads from memory alike.
cat "$img" > /dev/null
fresh "$work/debugfs"
read -r t_dbg m_dbg < <(measure debugfs -R "rdump / $work/debugfs" "$img")
read -r t_exp m_exp < <(measure "$subroot" -q export "$img" -o -)
fresh "$work/extract"
read -r t_ext m_ext < <(measure "$subroot" -q extract "$img" -C "$work/extract")
rm -rf "$work/debugfs" "$work/extract"

printf '%-36s %8s %10s\n' "" "seconds" "peak RSS"
printf '%-36s %8s %8s MiB\n' "debugfs -R 'rdump / DIR'" "$t_dbg" $((m_dbg / 1024))
printf '%-36s %8s %8s MiB\n' "subroot export -o - (to /dev/null)" "$t_exp" $((m_exp / 1024))
printf '%-36s %8s %8s MiB\n' "subroot extract -C DIR" "$t_ext" $((m_ext / 1024))
echo "ratio export  / debugfs rdump = $(ratio "$t_exp" "$t_dbg")   (target <= 1.00, RSS < 64 MiB)"
echo "ratio extract / debugfs rdump = $(ratio "$t_ext" "$t_dbg")"
