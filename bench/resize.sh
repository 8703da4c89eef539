#!/usr/bin/env bash
# Benchmark `subroot resize` (issue 17): grow a 2 GiB GPT disk whose last partition holds an
# ext4 with DATA_MIB of files to 20 GiB, raw and qcow2, with --in-place and --overlay (and
# -o for raw), against, in the same run: `qemu-img resize` + the partition grown by sfdisk +
# `resize2fs` on a raw copy of the partition written back (the rootless way without subroot),
# and `virt-resize --expand` (libguestfs, TCG here) when it is installed.
# Prints wall times, ratios and peak RSS. Work files go to bench/work/resize/.
#
#   bash bench/resize.sh [DATA_MIB]            # default: 1024
#   SUBROOT=path/to/subroot bash bench/resize.sh
source "$(dirname "$0")/lib.sh"
mib=${1:-1024}
bench_need mke2fs resize2fs e2fsck qemu-img sfdisk python3
subroot=$(bench_subroot)
work=$PWD/bench/work/resize
rm -rf "$work"; mkdir -p "$work"
measure() { python3 bench/measure.py --own "$@"; }
measure_tree() { python3 bench/measure.py "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }'; }
row() { printf '%-52s %9s s %6s MiB\n' "$1" "$2" $(($3 / 1024)); }

# The input: 2 GiB, GPT, a 100 MiB ESP then the root partition (ext4, DATA_MIB of random
# files, 32 MiB each) up to the end.
stage=$work/tree
mkdir -p "$stage/etc" "$stage/usr/lib/bench"
echo "ID=debian" > "$stage/etc/os-release"
for ((i = 0; i < mib / 32; i++)); do head -c 32M /dev/urandom > "$stage/usr/lib/bench/blob$i"; done
img=$work/disk.raw
truncate -s 2G "$img"
printf 'label: gpt\nstart=2048, size=100MiB, type=U\ntype=L\n' | sfdisk -q "$img"
start=$(sfdisk -J "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][1]["start"])')
size=$(sfdisk -J "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][1]["size"])')
mke2fs -q -F -t ext4 -L root -E offset=$((start * 512)) -d "$stage" "$img" "$((size / 2))k"
rm -rf "$stage"
qemu-img convert -O qcow2 "$img" "$work/disk.qcow2"
echo "input: 2 GiB GPT disk, ext4 root with $mib MiB of data ($(du -sm "$img" | cut -f1) MiB allocated); grown to 20 GiB"

printf '%-52s %11s %10s\n' "" "time" "peak RSS"
for fmt in raw qcow2; do
  in=$work/disk.$fmt
  cp --sparse=always "$in" "$work/ip.$fmt"; sync "$work/ip.$fmt"
  read -r ip m < <(measure "$subroot" -q resize "$work/ip.$fmt" --size 20G --in-place)
  row "$fmt: subroot resize --in-place" "$ip" "$m"
  read -r ov m < <(measure "$subroot" -q resize "$in" --size 20G --overlay "$work/ov.qcow2")
  row "$fmt: subroot resize --overlay" "$ov" "$m"
  echo "  overlay: $(( $(stat -c %s "$work/ov.qcow2") / 1024 )) KiB"
  if [[ $fmt == raw ]]; then
    read -r o m < <(measure "$subroot" -q resize "$in" --size 20G -o "$work/out.raw")
    row "$fmt: subroot resize -o out.raw" "$o" "$m"
  fi
  rm -f "$work/ip.$fmt" "$work/ov.qcow2" "$work/out.raw"
done

# Without subroot, rootless: a raw copy grown by qemu-img, the partition by sfdisk, the
# filesystem by resize2fs on a copy of the partition, written back.
read -r base bm < <(measure_tree bash -c '
  set -e; in=$1; w=$2; start=$3
  cp --sparse=always "$in" "$w/b.raw"
  qemu-img resize -q -f raw "$w/b.raw" 20G
  sfdisk -q --relocate gpt-bak-std "$w/b.raw"
  echo ", +" | sfdisk -q -N 2 "$w/b.raw"
  size=$(sfdisk -J "$w/b.raw" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"partitiontable\"][\"partitions\"][1][\"size\"])")
  dd if="$w/b.raw" of="$w/p.raw" bs=1M iflag=skip_bytes,count_bytes skip=$((start * 512)) count=$((size * 512)) conv=sparse status=none
  truncate -s $((size * 512)) "$w/p.raw"
  e2fsck -fy "$w/p.raw" >/dev/null
  resize2fs -f "$w/p.raw" >/dev/null 2>&1
  dd if="$w/p.raw" of="$w/b.raw" bs=1M oflag=seek_bytes seek=$((start * 512)) conv=sparse,notrunc status=none
  sync "$w/b.raw"' _ "$img" "$work" "$start")
row "raw: cp + qemu-img resize + sfdisk + resize2fs" "$base" "$bm"
rm -f "$work/b.raw" "$work/p.raw"

if command -v virt-resize >/dev/null; then
  export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
  qemu-img create -q -f raw "$work/vr.raw" 20G
  if read -r vr vm < <(measure_tree virt-resize -q --expand /dev/sda2 "$img" "$work/vr.raw"); then
    row "raw: virt-resize --expand (TCG)" "$vr" "$vm"
  else
    vr=0
  fi
  rm -f "$work/vr.raw"
else
  echo "libguestfs is not installed: virt-resize not compared"; vr=0
fi
echo "ratio --in-place (qcow2) / (qemu-img resize + resize2fs): $(ratio "$ip" "$base")"
echo "ratio --overlay (qcow2) / (qemu-img resize + resize2fs): $(ratio "$ov" "$base")"
[[ $vr != 0 ]] && echo "ratio --in-place (qcow2) / virt-resize: $(ratio "$ip" "$vr"), --overlay / virt-resize: $(ratio "$ov" "$vr")"
rm -rf "$work"
