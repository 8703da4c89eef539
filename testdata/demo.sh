#!/usr/bin/env bash
# The demo: build subroot, make a small GPT disk image from the committed tree in
# testdata/demo-root (an ESP and an ext4 root), convert it to compressed qcow2, and show it.
# Needs no root and no network; needs mke2fs (e2fsprogs) and mkfs.vfat (dosfstools).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
for t in mke2fs mkfs.vfat; do
  command -v "$t" >/dev/null || { echo "demo needs $t (apt-get install e2fsprogs dosfstools)" >&2; exit 1; }
done
cargo build --release --quiet
subroot=$PWD/target/release/subroot
out=${DEMO_OUT:-$PWD/target/demo}
mkdir -p "$out"
cd "$out"
rm -f demo.raw demo.qcow2
set -x
# An empty 80 MiB disk with a GPT: a 34 MiB ESP at 1 MiB and a 40 MiB root at 35 MiB.
"$subroot" create demo.raw --size 80M --table gpt \
  --part size=34M,type=esp,name=EFI --part size=40M,type=linux,name=root
# Populate the partitions with the reference tools, straight into the image at their offsets.
# (FAT32 needs 65525 clusters: 512-byte clusters on 34 MiB give that.)
mkfs.vfat -F 32 -s 1 -n DEMO-ESP --offset 2048 demo.raw $((34 << 10)) >/dev/null
mke2fs -q -t ext4 -L demo-root -d "$OLDPWD/testdata/demo-root" -E offset=$((35 << 20)) demo.raw 40M
# Compress it into qcow2 (zstd) and look at the result.
"$subroot" convert demo.raw demo.qcow2 -O qcow2 -c zstd
"$subroot" info demo.qcow2
