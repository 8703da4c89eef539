#!/usr/bin/env bash
# Benchmark: `subroot batch convert` throughput at -j1 and -j2 on the same image set, and
# the scaling efficiency throughput(-j2) / (2 x throughput(-j1)) (1.0 = perfect).
# Input: BENCH_IMAGES (default 8) qcow2 images, each 512 MiB virtual holding BENCH_MIB
# (default 256) MiB of real file data (from /usr, a different slice per image) in 32 MiB
# runs with holes between. Cases: to qcow2 with zstd, and to raw. Best of BENCH_RUNS
# (default 1) per point; prints images/minute, the efficiency and peak RSS.
# Then `batch relayout` the same way on BENCH_RELAYOUT_IMAGES (default 4) relayout-ready
# images: the demo root with /boot, GRUB config and an initramfs-tools initrd, plus
# BENCH_RELAYOUT_MIB (default 128) MiB of host /usr/share files and random blobs, in an ext4
# partition of an MBR disk (raw). Set BENCH_SKIP_CONVERT=1 for the relayout part only.
source "$(dirname "$0")/lib.sh"
subroot=$(bench_subroot)
work=${BENCH_DIR:-$PWD/bench/work/batch}
n=${BENCH_IMAGES:-8}
mib=${BENCH_MIB:-256}
runs=${BENCH_RUNS:-1}
mkdir -p "$work/in"
if [[ ! -f $work/in/.complete-$n-$mib ]]; then
  echo "==> building $n inputs (512 MiB virtual, $mib MiB of data each)"
  rm -rf "$work/in" && mkdir -p "$work/in"
  find /usr -type f -size +64k 2>/dev/null | sort | head -n 40000 | xargs cat 2>/dev/null \
    | head -c $(((n * mib + 64) << 20)) > "$work/data.bin" || true
  for i in $(seq 0 $((n - 1))); do
    raw=$work/in/img$i.raw
    truncate -s 512M "$raw"
    for r in $(seq 0 $((mib / 32 - 1))); do
      dd if="$work/data.bin" of="$raw" bs=1M skip=$((i * mib + r * 32)) seek=$((r * 64)) \
        count=32 conv=notrunc status=none
    done
    qemu-img convert -f raw -O qcow2 "$raw" "$work/in/img$i.qcow2"
    rm -f "$raw"
  done
  rm -f "$work/data.bin"
  touch "$work/in/.complete-$n-$mib"
fi
inputs=("$work"/in/img*.qcow2)

op=convert
best() { # best-of-N seconds and RSS of one batch run: best J ARGS...
  local j=$1 best_t= best_r=; shift
  for _ in $(seq "$runs"); do
    rm -rf "$work/out"
    read -r t r < <(python3 bench/measure.py "$subroot" batch "$op" -q --out-dir "$work/out" \
      -j "$j" "$@" "${inputs[@]}")
    if [[ -z $best_t ]] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; best_r=$r; fi
  done
  echo "$best_t $best_r"
}

echo "$n images x $mib MiB data, $(nproc) cores"
printf '%-14s %12s %12s %12s %12s %11s %10s\n' case "j1 time" "j1 img/min" "j2 time" "j2 img/min" efficiency "peak rss"
row() {
  local name=$1; shift
  read -r t1 r1 < <(best 1 "$@")
  read -r t2 r2 < <(best 2 "$@")
  awk -v name="$name" -v n="$n" -v t1="$t1" -v t2="$t2" -v r="$((r1 > r2 ? r1 : r2))" 'BEGIN {
    p1 = n * 60 / t1; p2 = n * 60 / t2
    printf "%-14s %11.2fs %12.1f %11.2fs %12.1f %11.2f %7d KiB\n", name, t1, p1, t2, p2, p2 / (2 * p1), r }'
}
if [[ -z ${BENCH_SKIP_CONVERT:-} ]]; then
  row "to qcow2 zstd" -O qcow2 -c zstd
  row "to raw" -O raw
fi
rm -rf "$work/out"

# batch relayout
rn=${BENCH_RELAYOUT_IMAGES:-4}
rmib=${BENCH_RELAYOUT_MIB:-128}
rin=$work/relayout-in
if [[ ! -f $rin/.complete-$rn-$rmib ]]; then
  echo "==> building $rn relayout inputs ($rmib MiB of data each)"
  rm -rf "$rin" && mkdir -p "$rin"
  stage=$rin/tree
  cp -a testdata/demo-root/. "$stage/"
  mkdir -p "$stage/boot" "$stage/usr/share" "$stage/usr/lib/bench"
  (cd testdata/demo-initrd && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -n > "$stage/boot/initrd.img-6.1.0-bench"
  for src in /usr/share/*; do
    [[ -d $src ]] || continue
    have=$(du -sm "$stage" | cut -f1); add=$(du -sm "$src" | cut -f1)
    (( have + add <= rmib / 2 )) || continue
    cp -a "$src" "$stage/usr/share/" 2>/dev/null || true
  done
  b=0
  while (( $(du -sm "$stage" | cut -f1) + 16 <= rmib )); do
    head -c 16M /dev/urandom > "$stage/usr/lib/bench/blob$b"; b=$((b + 1))
  done
  part_mib=$(( $(du -sm "$stage" | cut -f1) * 2 + 128 ))
  for i in $(seq 0 $((rn - 1))); do
    echo "image $i" > "$stage/etc/image-id"
    img=$rin/sys$i.raw
    truncate -s $(( (part_mib + 2) << 20 )) "$img"
    printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$img"
    mke2fs -q -F -t ext4 -L bench -E offset=1048576 -d "$stage" "$img" "${part_mib}M"
  done
  rm -rf "$stage"
  touch "$rin/.complete-$rn-$rmib"
fi
inputs=("$rin"/sys*.raw)
n=$rn
op=relayout
echo "$rn relayout images x $rmib MiB data, $(nproc) cores"
printf '%-14s %12s %12s %12s %12s %11s %10s\n' case "j1 time" "j1 img/min" "j2 time" "j2 img/min" efficiency "peak rss"
row "relayout raw" -O raw
rm -rf "$work/out"
