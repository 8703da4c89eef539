# The header every benchmark shares; source it first thing in bench/NAME.sh:
#
#   source "$(dirname "$0")/lib.sh"   # strict mode (set -euo pipefail), the working
#                                     # directory is the repository, /usr/sbin and /sbin
#                                     # are on PATH (mke2fs, sfdisk, losetup ...)
#   bench_need mke2fs qemu-img        # exits 1 naming the first tool that is missing
#   subroot=$(bench_subroot)          # $SUBROOT when set (an older build to compare, in
#                                     # the same conditions), else this tree's release
#                                     # build, built now
#   bench_timed DEST CMD...           # seconds and peak RSS of CMD, which writes under
#                                     # DEST, from nothing dirty to its data on disk
#
# Nothing else: each benchmark keeps its own measuring helpers (bench/measure.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/sbin:/sbin"

bench_need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "bench needs $t" >&2; exit 1; }
  done
}

bench_subroot() {
  if [[ -n ${SUBROOT:-} ]]; then
    echo "$SUBROOT"
  else
    cargo build --release --quiet >&2
    echo "${CARGO_TARGET_DIR:-$PWD/target}/release/subroot"
  fi
}

# Each contender starts with nothing dirty (earlier writes flushed, not timed) and is timed
# up to its own data being on disk (`sync -f DEST`): otherwise whoever runs next pays for
# the writeback of whoever ran before, which on a shared disk moves the times by seconds.
bench_timed() {
  local dest=$1
  shift
  sync
  python3 bench/measure.py sh -c '"$@" && sync -f "$0"' "$dest" "$@"
}
