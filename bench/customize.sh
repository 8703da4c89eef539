#!/usr/bin/env bash
# Benchmark a typical `subroot customize` (issue 16): hostname, an SSH key for root, a
# first-boot script and three uploaded files, written as an overlay (--overlay), on a real
# Debian image (scripts/debian-image.sh initramfs-tools) with ~1 GiB of extra file data
# (random 32 MiB blobs, by `subroot copy-in`), raw and qcow2; goal under 0.5 s. Side by
# side: virt-customize doing the same into a qcow2 overlay of the raw image (its appliance
# under TCG: LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg), ratio goal
# <= 0.05x; and `subroot inspect --json` on the same image (goal under 0.2 s).
# Prints seconds and peak RSS (subroot: best of BENCH_RUNS, default 3). Work files go to
# bench/work/customize/ (about 3.5 GiB; removed at the end).
#
#   bash bench/customize.sh [DATA_MIB]            # default 1024
#   SUBROOT=path/to/subroot bash bench/customize.sh   # that binary, no cargo build
source "$(dirname "$0")/lib.sh"
mib=${1:-1024}
runs=${BENCH_RUNS:-3}
subroot=$(bench_subroot)
work=$PWD/bench/work/customize
rm -rf "$work"; mkdir -p "$work/files"
trap 'rm -rf "$work"' EXIT
bash bench/debian-data-image.sh "$subroot" "$work" "$mib"

# What both tools do.
key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMJ1bXBlcnN0aWNrZXJzdWJyb290dGVzdGtleQ bench@host"
printf '#!/bin/sh\necho first boot\n' > "$work/files/fb.sh"
printf 'Welcome to the bench VM\n' > "$work/files/motd"
printf '[Journal]\nStorage=persistent\n' > "$work/files/journald.conf"
head -c 200K /dev/urandom > "$work/files/blob.bin"
ops=(--hostname bench-vm --ssh-inject "root:string:$key" --firstboot "$work/files/fb.sh"
     --upload "$work/files/motd:/etc/motd" --upload "$work/files/journald.conf:/etc/systemd/journald.conf"
     --upload "$work/files/blob.bin:/usr/local/lib/blob.bin")

best() {
  local best_t= best_r=
  for _ in $(seq "$runs"); do
    rm -f "$work/ov.qcow2"
    read -r t r < <(python3 bench/measure.py --own "$@")
    if [[ -z $best_t ]] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; best_r=$r; fi
  done
  echo "$best_t $best_r"
}
printf '%-44s %8s %10s\n' "" "seconds" "peak RSS"
for f in raw qcow2; do
  read -r t r < <(best "$subroot" -q customize "$work/in.$f" "${ops[@]}" --overlay "$work/ov.qcow2")
  printf '%-44s %8s %6s MiB  overlay %s KiB\n' "subroot customize --overlay ($f)" "$t" $((r / 1024)) \
    $(( $(stat -c %s "$work/ov.qcow2") / 1024 ))
  [[ $f == raw ]] && raw_t=$t
  read -r t r < <(best "$subroot" -q inspect --json "$work/in.$f")
  printf '%-44s %8s %6s MiB\n' "subroot inspect --json ($f)" "$t" $((r / 1024))
done
if command -v virt-customize >/dev/null; then
  export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
  qemu-img create -q -f qcow2 -b "$work/in.raw" -F raw "$work/vc.qcow2"
  if read -r vt vr < <(python3 bench/measure.py virt-customize -q -a "$work/vc.qcow2" "${ops[@]}"); then
    printf '%-44s %8s %6s MiB  (TCG; whole process tree)\n' "virt-customize (raw, into a qcow2 overlay)" "$vt" $((vr / 1024))
    echo "ratio: customize --overlay / virt-customize = $(awk -v a="$raw_t" -v b="$vt" 'BEGIN { printf "%.3f", a / b }')"
  else
    echo "virt-customize: its appliance does not start here; not measured"
  fi
else
  echo "virt-customize: not installed; not measured"
fi
