#!/usr/bin/env bash
# Benchmark: `subroot batch convert` throughput at -j1 and -j2 on the same image set, and
# the scaling efficiency throughput(-j2) / (2 x throughput(-j1)) (1.0 = perfect).
# Input: BENCH_IMAGES (default 8) qcow2 images, each 512 MiB virtual holding BENCH_MIB
# (default 256) MiB of real file data (from /usr, a different slice per image) in 32 MiB
# runs with holes between. Cases: to qcow2 with zstd, and to raw. Best of BENCH_RUNS
# (default 1) per point; prints images/minute, the efficiency and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
subroot=$PWD/target/release/subroot
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

best() { # best-of-N seconds and RSS of one batch run: best J ARGS...
  local j=$1 best_t= best_r=; shift
  for _ in $(seq "$runs"); do
    rm -rf "$work/out"
    read -r t r < <(python3 bench/measure.py "$subroot" batch convert -q --out-dir "$work/out" \
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
row "to qcow2 zstd" -O qcow2 -c zstd
row "to raw" -O raw
rm -rf "$work/out"
