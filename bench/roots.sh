#!/usr/bin/env bash
# Benchmark `subroot roots add` (a hard-link clone of a root) and `roots remove` with
# --overlay on the cached real Debian image (scripts/debian-image.sh; SUBROOT_CACHE),
# relayouted first: its own root, and the same root grown to ~30,000 entries by copying
# the host's /usr/include and /usr/share/doc into it (copy-in, as an overlay on top).
# Prints wall time, CPU time (user + system: on a loaded machine the wall time is mostly
# waiting for a core and for the disk), peak RSS (subroot starts no other program here)
# and the overlay size. Work files go to bench/work/roots (git-ignored).
#
#   SUBROOT_CACHE=/work/cache bash bench/roots.sh
#   SUBROOT=path/to/subroot bash bench/roots.sh     # that binary, no cargo build
source "$(dirname "$0")/lib.sh"
bench_need qemu-img /usr/bin/time
subroot=$(bench_subroot)
deb=$(bash scripts/debian-image.sh initramfs-tools)
work=$PWD/bench/work/roots
rm -rf "$work"; mkdir -p "$work"
# "wall cpu rss_kib" of a command.
measure() {
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$work/time"
}

"$subroot" -q relayout "$deb" --overlay "$work/r0.qcow2"
mkdir -p "$work/extra/bench"
cp -a /usr/include /usr/share/doc "$work/extra/bench/"
"$subroot" -q copy-in "$work/r0.qcow2" "$work/extra/bench" /r0/usr/share --overlay "$work/big.qcow2"
rm -rf "$work/extra"

printf '%-40s %7s %6s %6s %8s %12s\n' "" "entries" "wall s" "CPU s" "peak RSS" "overlay"
for base in r0 big; do
  img=$work/$base.qcow2
  n=$("$subroot" -q manifest --no-hash "$img" /r0 | wc -l)
  for mode in link copy; do
    extra=(); [[ $mode == copy ]] && extra=(--copy)
    rm -f "$work/add.qcow2"
    read -r t c m < <(measure "$subroot" -q roots add "$img" r1 --from r0 "${extra[@]}" --overlay "$work/add.qcow2")
    size=$(stat -c %s "$work/add.qcow2")
    printf '%-40s %7s %6s %6s %4s MiB %8s KiB\n' "roots add --overlay ($base, $mode)" "$n" "$t" "$c" $((m / 1024)) $((size / 1024))
  done
  # Remove the linked clone again.
  rm -f "$work/add.qcow2" "$work/rm.qcow2"
  "$subroot" -q roots add "$img" r1 --from r0 --overlay "$work/add.qcow2"
  read -r t c m < <(measure "$subroot" -q roots remove "$work/add.qcow2" r1 --overlay "$work/rm.qcow2")
  size=$(stat -c %s "$work/rm.qcow2")
  printf '%-40s %7s %6s %6s %4s MiB %8s KiB\n' "roots remove --overlay ($base)" "$n" "$t" "$c" $((m / 1024)) $((size / 1024))
  read -r t c m < <(measure "$subroot" -q roots "$work/add.qcow2")
  printf '%-40s %7s %6s %6s %4s MiB\n' "roots (list) ($base)" "$n" "$t" "$c" $((m / 1024))
done
rm -rf "$work"
