#!/usr/bin/env bash
# Benchmark small edits of big images (issue 14): `copy-in` of one small file and `rm` of
# one file, written as an overlay (--overlay), in place (--in-place) and as a new raw image
# (-o), on two images — ~1 GiB of data, and a 20 GiB-virtual disk holding 8 GiB — raw and
# qcow2, against, in the same run: `qemu-img convert` followed by `sync FILE` (the floor of
# any -o output at the same durability: subroot syncs its output before renaming it), and
# guestfish doing the same edits (TCG here: `copy-in` and `rm` with the partition mounted
# by `-m`; virt-copy-in needs an inspectable OS, which these data images are not), when
# libguestfs is installed.
# Prints wall times, ratios, overlay sizes and peak RSS. Work files go to bench/work/edit/.
#
#   bash bench/edit.sh [SMALL_DATA_MIB [BIG_DATA_GIB]]   # defaults: 1024 8
#   SUBROOT=path/to/subroot bash bench/edit.sh           # that binary, no cargo build
source "$(dirname "$0")/lib.sh"
small_mib=${1:-1024}
big_gib=${2:-8}
bench_need mke2fs qemu-img sfdisk python3
subroot=$(bench_subroot)
work=$PWD/bench/work/edit
rm -rf "$work"; mkdir -p "$work"
measure() { python3 bench/measure.py --own "$@"; }
measure_tree() { python3 bench/measure.py "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
row() { printf '%-52s %9s s %6s MiB%s\n' "$1" "$2" $(($3 / 1024)) "${4:+  $4}"; }

# An MBR disk of VIRT_MIB whose one partition holds an ext4 with DATA_MIB of files: real
# small files (the host's /usr/share, up to half) and 32 MiB files of random data.
make_image() { # NAME DATA_MIB VIRT_MIB
  local name=$1 mib=$2 virt=$3 stage=$work/tree-$1
  mkdir -p "$stage/usr/share" "$stage/usr/lib/bench" "$stage/root" "$stage/etc"
  echo "ID=debian" > "$stage/etc/os-release"
  echo "obsolete" > "$stage/etc/motd"
  for src in /usr/share/*; do
    [[ -d $src ]] || continue
    local have add
    have=$(du -sm "$stage" | cut -f1); add=$(du -sm "$src" | cut -f1)
    (( have + add <= mib / 2 )) || continue
    cp -a "$src" "$stage/usr/share/" 2>/dev/null || true
  done
  local i=0
  while (( $(du -sm "$stage" | cut -f1) + 32 <= mib )); do
    head -c 32M /dev/urandom > "$stage/usr/lib/bench/blob$i"; i=$((i + 1))
  done
  local img=$work/$name.raw
  truncate -s "${virt}M" "$img"
  printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$img"
  mke2fs -q -F -t ext4 -L bench -E offset=1048576 -d "$stage" "$img" "$((virt - 2))M"
  rm -rf "$stage"
  qemu-img convert -O qcow2 "$img" "$work/$name.qcow2"
  echo "$name: $(du -sm --apparent-size "$img" | cut -f1) MiB virtual, ${mib} MiB of data, $(du -sm "$img" | cut -f1) MiB allocated"
}

echo hello > "$work/hello.txt"
make_image small "$small_mib" $(( small_mib * 2 + 256 ))
make_image big $(( big_gib * 1024 )) $(( 20 * 1024 ))

printf '%-52s %11s %10s\n' "" "time" "peak RSS"
for name in small big; do
  for fmt in raw qcow2; do
    img=$work/$name.$fmt
    # --overlay: the input is only read.
    rm -f "$work/ov.qcow2"
    read -r t m < <(measure "$subroot" -q copy-in "$img" "$work/hello.txt" /root --overlay "$work/ov.qcow2")
    row "$name $fmt: copy-in --overlay" "$t" "$m" "overlay $(( $(stat -c %s "$work/ov.qcow2") / 1024 )) KiB"
    ov_t=$t
    rm -f "$work/ov.qcow2"
    read -r t m < <(measure "$subroot" -q rm "$img" /etc/motd --overlay "$work/ov.qcow2")
    row "$name $fmt: rm --overlay" "$t" "$m"
    # --in-place, on a copy (the copy is not timed, and is synced first so that its dirty
    # pages are not charged to the edit's fsyncs).
    cp --sparse=always "$img" "$work/ip.$fmt"
    sync "$work/ip.$fmt"
    read -r t m < <(measure "$subroot" -q copy-in "$work/ip.$fmt" "$work/hello.txt" /root --in-place)
    row "$name $fmt: copy-in --in-place" "$t" "$m"
    ip_t=$t
    read -r t m < <(measure "$subroot" -q rm "$work/ip.$fmt" /etc/motd --in-place)
    row "$name $fmt: rm --in-place" "$t" "$m"
    # -o: a whole new raw image, against qemu-img convert of the same input.
    read -r t m < <(measure "$subroot" -q copy-in "$img" "$work/hello.txt" /root -o "$work/out.raw" -O raw --force)
    read -r c cm < <(measure_tree sh -c 'qemu-img convert -O raw "$1" "$2" && sync "$2"' _ "$img" "$work/copy.raw")
    row "$name $fmt: copy-in -o out.raw" "$t" "$m"
    row "$name $fmt: qemu-img convert -O raw + sync" "$c" "$cm"
    echo "ratio $name $fmt: copy-in -o raw / (qemu-img convert + sync) = $(ratio "$t" "$c")"
    rm -f "$work/out.raw" "$work/copy.raw"
    # libguestfs doing the same edits on another copy (its appliance boots under TCG here).
    if command -v guestfish >/dev/null; then
      cp --sparse=always "$img" "$work/gf.$fmt"
      sync "$work/gf.$fmt"
      export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
      if read -r g gm < <(measure_tree guestfish -a "$work/gf.$fmt" -m /dev/sda1 copy-in "$work/hello.txt" /root); then
        row "$name $fmt: guestfish copy-in (TCG)" "$g" "$gm"
        echo "ratio $name $fmt: copy-in --overlay / guestfish = $(ratio "$ov_t" "$g"), --in-place / guestfish = $(ratio "$ip_t" "$g")"
      fi
      if read -r g gm < <(measure_tree guestfish -a "$work/gf.$fmt" -m /dev/sda1 rm /etc/motd); then
        row "$name $fmt: guestfish rm (TCG)" "$g" "$gm"
      fi
      rm -f "$work/gf.$fmt"
    else
      echo "libguestfs is not installed: guestfish not compared"
    fi
    rm -f "$work/ip.$fmt" "$work/ov.qcow2"
  done
done
