#!/usr/bin/env bash
# The real Debian image (scripts/debian-image.sh initramfs-tools) with ~DATA_MIB of extra
# file data (random 32 MiB blobs under /usr/lib/bench, by `subroot copy-in`), written as
# WORK/in.raw and WORK/in.qcow2. Shared by bench/inspect.sh and bench/customize.sh.
#
#   bash bench/debian-data-image.sh SUBROOT WORK DATA_MIB
set -euo pipefail
cd "$(dirname "$0")/.."
subroot=$1 work=$2 mib=$3
mkdir -p "$work/add/usr/lib/bench"
debian=$(bash scripts/debian-image.sh initramfs-tools)
for ((i = 0; i * 32 < mib; i++)); do
  head -c 32M /dev/urandom > "$work/add/usr/lib/bench/blob$i"
done
"$subroot" -q copy-in "$debian" "$work/add/usr" / -o "$work/in.raw"
rm -rf "$work/add"
qemu-img convert -O qcow2 "$work/in.raw" "$work/in.qcow2"
echo "image: $(du -sm --apparent-size "$work/in.raw" | cut -f1) MiB virtual, $(du -sm "$work/in.raw" | cut -f1) MiB allocated"
