#!/usr/bin/env bash
# Build the small demo image that `subroot relayout` works on, from committed files only:
# the tree in testdata/demo-root plus a /boot with a stand-in kernel and a gzip'd
# initramfs-tools-layout initrd made with GNU cpio from testdata/demo-initrd.
#   bash scripts/demo-image.sh OUT.raw [SUBROOT-BINARY]
# A 48 MiB MBR disk, one Linux partition at 1 MiB holding ext4 (label demo-root, a fixed
# UUID). No root and no network needed: mke2fs -d writes straight into the image.
set -euo pipefail
data=$(cd "$(dirname "$0")/../testdata" && pwd)
out=$1
subroot=${2:-subroot}
export PATH="$PATH:/usr/sbin:/sbin"
for t in mke2fs cpio gzip; do
  command -v "$t" >/dev/null || { echo "demo-image.sh needs $t" >&2; exit 1; }
done
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -a "$data/demo-root/." "$stage/"
mkdir -p "$stage/boot"
printf 'stand-in for a kernel\n' > "$stage/boot/vmlinuz-6.1.0-demo"
(cd "$data/demo-initrd" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) \
  | gzip -n -9 > "$stage/boot/initrd.img-6.1.0-demo"
ln -sfn vmlinuz-6.1.0-demo "$stage/boot/vmlinuz"
ln -sfn initrd.img-6.1.0-demo "$stage/boot/initrd.img"
touch -h -d @1700000000 $(find "$stage")
rm -f "$out"
"$subroot" -q create "$out" --size 48M --table mbr --part size=rest,type=linux
E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -t ext4 -L demo-root -U 0d3e0000-0000-4000-8000-00000000d3e0 \
  -E offset=$((1 << 20)),hash_seed=0d3e0000-0000-4000-8000-00000000d3e1 -d "$stage" "$out" 47M
