#!/usr/bin/env bash
# Benchmark `subroot inspect --json` on a real Debian image (scripts/debian-image.sh
# initramfs-tools: dpkg status of a real install, a real zstd initrd examined in place)
# with ~1 GiB of extra file data copied in (random 32 MiB blobs, by `subroot copy-in`),
# raw and qcow2. Target (issue 16): under 0.2 s. virt-inspector is measured when installed.
# Prints seconds and peak RSS (best of BENCH_RUNS, default 3).
#
#   bash bench/inspect.sh [DATA_MIB]      # default 1024
#   SUBROOT=path/to/subroot bash bench/inspect.sh   # that binary, no cargo build
source "$(dirname "$0")/lib.sh"
mib=${1:-1024}
runs=${BENCH_RUNS:-3}
subroot=$(bench_subroot)
work=$PWD/bench/work/inspect
rm -rf "$work"; mkdir -p "$work"
bash bench/debian-data-image.sh "$subroot" "$work" "$mib"

best() {
  local best_t= best_r=
  for _ in $(seq "$runs"); do
    read -r t r < <(python3 bench/measure.py --own "$@")
    if [[ -z $best_t ]] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; best_r=$r; fi
  done
  echo "$best_t $best_r"
}
printf '%-32s %8s %10s\n' "" "seconds" "peak RSS"
for f in qcow2 raw; do
  read -r t r < <(best "$subroot" -q inspect --json "$work/in.$f")
  printf '%-32s %8s %6s MiB\n' "subroot inspect --json ($f)" "$t" $((r / 1024))
done
# virt-inspector on the same image; where qemu aborts on KVM (a nested VM), TCG is forced.
if command -v virt-inspector >/dev/null; then
  export LIBGUESTFS_BACKEND=direct
  vi=(virt-inspector -a "$work/in.raw")
  accel="qemu's choice"
  if ! "${vi[@]}" >/dev/null 2>&1; then
    if [[ -z ${LIBGUESTFS_BACKEND_SETTINGS:-} ]] &&
       LIBGUESTFS_BACKEND_SETTINGS=force_tcg "${vi[@]}" >/dev/null 2>&1; then
      export LIBGUESTFS_BACKEND_SETTINGS=force_tcg; accel="TCG (forced: KVM failed)"
    else
      accel=
    fi
  fi
  if [[ -n $accel ]]; then
    read -r vt vr < <(python3 bench/measure.py "${vi[@]}")
    printf '%-32s %8s %6s MiB  (%s; whole process tree)\n' "virt-inspector (raw)" "$vt" $((vr / 1024)) "$accel"
    echo "ratio: inspect / virt-inspector = $(awk -v a="$t" -v b="$vt" 'BEGIN { printf "%.3f", a / b }')"
  else
    echo "virt-inspector: its appliance does not start here; not measured"
  fi
else
  echo "virt-inspector: not installed; not measured"
fi
