# The header every benchmark shares; source it first thing in bench/NAME.sh:
#
#   source "$(dirname "$0")/lib.sh"   # strict mode (set -euo pipefail), the working
#                                     # directory is the repository, /usr/sbin and /sbin
#                                     # are on PATH (mke2fs, sfdisk, losetup ...)
#   bench_need mke2fs qemu-img        # exits 1 naming the first tool that is missing
#   subroot=$(bench_subroot)          # $SUBROOT when set (an older build to compare, in
#                                     # the same conditions), else this tree's release
#                                     # build, built now
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
