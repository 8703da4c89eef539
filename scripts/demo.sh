#!/usr/bin/env bash
# The demo: build subroot, make a small MBR disk image from committed files
# (testdata/demo-root plus a /boot with a stand-in kernel and an initramfs-tools-layout
# initrd from testdata/demo-initrd, see scripts/demo-image.sh), relayout it into r0/ as
# an ordinary user, and show the result.
# Needs no root and no network; needs mke2fs (e2fsprogs), debugfs/e2fsck, GNU cpio, gzip.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
cargo build --release --quiet
subroot=${CARGO_TARGET_DIR:-$PWD/target}/release/subroot
out=${DEMO_OUT:-$PWD/target/demo}
mkdir -p "$out"
bash scripts/demo-image.sh "$out/demo.raw" "$subroot"
cd "$out"
rm -f demo-r0.qcow2
set -x
# The plan first (nothing written), then the relayout itself into compressed qcow2.
"$subroot" relayout demo.raw --dry-run
"$subroot" relayout demo.raw -o demo-r0.qcow2 -O qcow2 -c zstd
# The operating system now lives in /r0; /boot, /var and /home stay shared at the top.
"$subroot" ls demo-r0.qcow2 /
"$subroot" ls demo-r0.qcow2 /r0
"$subroot" cat demo-r0.qcow2 /boot/grub/grub.cfg
