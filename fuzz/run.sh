#!/usr/bin/env bash
# Build and run every fuzz target (or the ones named) for a bounded time each.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; all targets)
#
# Fails (exit 1) when libFuzzer finds a crash, a timeout (> 10 s for one input) or an
# out-of-memory (> 256 MiB RSS: allocating for a claimed size rather than real data
# counts as a bug), printing the artifact path. Reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O TARGET fuzz/artifacts/TARGET/crash-...
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address, -Cpasses=sancov...).
# The project builds with a stable toolchain, so we set RUSTC_BOOTSTRAP=1, which lets
# stable rustc accept those flags. It affects only this out-of-workspace crate's build.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(qcow2 vhd vhdx vmdk vdi lvm mbr_gpt ext cpio decompress sniff tar fat xfs btrfs)
export RUSTC_BOOTSTRAP=1
# ASan keeps up to 256 MiB of freed memory in quarantine by default, which alone trips
# the 256 MiB RSS limit; a small quarantine keeps the limit about our allocations.
# libFuzzer's -malloc_limit_mb (= -rss_limit_mb) still catches any single allocation
# over 256 MiB, however lazily the kernel would back it.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}"
command -v cargo-fuzz >/dev/null || { echo "run.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }

# Seeds: generated from the reference tools (committed ones stay; large ones are made here).
# (under a lock: several run.sh may run at once, each on some targets)
flock .seeds.lock ./seeds.sh || { echo "run.sh: seeds.sh failed" >&2; exit 2; }

cargo fuzz build -O

max_len() {
    case $1 in
        ext) echo 262144 ;;
        qcow2 | sniff | fat | vhdx | xfs) echo 131072 ;;
        btrfs) echo 163840 ;;
        *) echo 65536 ;;
    esac
}

failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(ls "artifacts/$t" | wc -l)
    echo "== fuzzing $t for ${secs}s"
    set +e
    cargo fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=256 -timeout=10 -max_len="$(max_len "$t")" \
        -print_final_stats=1 >"artifacts/$t.log" 2>&1
    rc=$?
    set -e
    grep -E '^(Done|stat::number_of_executed_units|#[0-9]+ +DONE)' "artifacts/$t.log" | tail -n 2 || true
    after=$(ls "artifacts/$t" | wc -l)
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
        failed=1
        echo "FUZZ FAILURE in $t (exit $rc); log: fuzz/artifacts/$t.log" >&2
        grep -E 'ERROR: libFuzzer|panicked|SUMMARY|Test unit written to' "artifacts/$t.log" >&2 || tail -n 30 "artifacts/$t.log" >&2
    fi
done
exit $failed
