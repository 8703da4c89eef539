#!/usr/bin/env bash
# Boot a disk image under QEMU (software emulation: no KVM needed) with a given kernel,
# initrd and command line; the serial console goes to LOG. The disk is opened with
# snapshot=on, so the image file is never modified, unless the 7th argument is `rw` (the
# guest's writes land in IMAGE: a second boot sees the first one's). Ends when the guest
# powers off, or kills it after TIMEOUT seconds (exit 124).
#
#   bash scripts/boot.sh IMAGE KERNEL INITRD "CMDLINE" LOG [TIMEOUT [rw]]
set -euo pipefail
img=$1 kernel=$2 initrd=$3 cmdline=$4 log=$5 timeout=${6:-900} snapshot=on
[[ ${7:-} == rw ]] && snapshot=off
fmt=raw
# qcow2 magic: "QFI\xfb".
[[ $(head -c 4 "$img" | od -An -tx1 | tr -d ' \n') == 514649fb ]] && fmt=qcow2
exec timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
  -machine q35 -accel tcg -cpu max -smp 2 -m 1536 \
  -nographic -no-reboot -monitor none -serial "file:$log" \
  -drive "file=$img,format=$fmt,if=virtio,snapshot=$snapshot" \
  -kernel "$kernel" -initrd "$initrd" -append "$cmdline console=ttyS0 panic=-1"
