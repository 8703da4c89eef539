#!/usr/bin/env bash
# The whole test suite: installs the reference tools the tests use (when root and they are
# missing), then runs formatting, lint and every test. Under CI=true a missing tool is a
# failure; elsewhere the tests that need it are skipped and listed loudly at the end.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh cli_disk   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# tool -> Debian package
tools=(
  qemu-img:qemu-utils qemu-io:qemu-utils sfdisk:fdisk sgdisk:gdisk blkid:util-linux
  setpriv:util-linux mke2fs:e2fsprogs debugfs:e2fsprogs e2fsck:e2fsprogs resize2fs:e2fsprogs
  dumpe2fs:e2fsprogs
  mkfs.vfat:dosfstools mkfs.fat:dosfstools fsck.fat:dosfstools mcopy:mtools mdir:mtools
  mtype:mtools mattrib:mtools cpio:cpio gzip:gzip zstd:zstd grub-mkimage:grub-pc-bin
  xz:xz-utils lzma:xz-utils lz4:lz4 bzip2:bzip2 setfacl:acl setcap:libcap2-bin
  cmp:diffutils python3:python3 dash:dash busybox:busybox checkbashisms:devscripts
  mkswap:util-linux mkfs.btrfs:btrfs-progs mkfs.xfs:xfsprogs xfs_db:xfsprogs xfs_io:xfsprogs
  xfs_logprint:xfsprogs mksquashfs:squashfs-tools
  mkfs.erofs:erofs-utils xorriso:xorriso cryptsetup:cryptsetup-bin setfattr:attr strace:strace
  tar:tar cc:gcc lsinitramfs:initramfs-tools-core lsinitrd:dracut-core
  mmdebstrap:mmdebstrap pvcreate:lvm2 lvcreate:lvm2
)
missing_pkgs=()
missing_tools=()
for pair in "${tools[@]}"; do
  tool=${pair%%:*} pkg=${pair#*:}
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1; then
    missing_tools+=("$tool")
    [[ " ${missing_pkgs[*]} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
  fi
done
if ((${#missing_pkgs[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing reference tools: ${missing_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
  else
    echo "!!! missing reference tools (${missing_tools[*]}); install: apt-get install ${missing_pkgs[*]}" >&2
    echo "!!! tests that need them will be SKIPPED (and fail under CI=true)" >&2
  fi
fi
# Real boot-loader code for tests/disk_layout.rs (a filesystem with boot code in sector 0):
# syslinux's MBR code (or GRUB's boot.img when grub-pc-bin is there).
if [[ ! -f /usr/lib/syslinux/mbr/mbr.bin && ! -f /usr/lib/grub/i386-pc/boot.img ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing boot-loader code: syslinux-common"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends syslinux-common >/dev/null
  else
    echo "!!! no boot-loader code (apt-get install syslinux-common): a disk_layout test will be SKIPPED" >&2
  fi
fi
# The boot tests (tests/boot.rs; on under CI=true) need QEMU 10 from the release's
# backports suite (the stable one lacks what scripts/boot.sh uses on this hardware).
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null && ! command -v qemu-system-x86_64 >/dev/null; then
  echo "==> installing qemu-system-x86 from backports (boot tests)"
  bash scripts/backports.sh
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t "$(. /etc/os-release; echo "$VERSION_CODENAME")-backports" qemu-system-x86 >/dev/null
fi
# The tar populate path (`mke2fs -d -`) needs e2fsprogs 1.47.1+; the release's backports
# build is fetched beside the system's (scripts/e2fsprogs-backports.sh, cached) for the
# tests that run it. Under CI=true failing to get it is an error.
if [[ -z ${SUBROOT_TEST_MKE2FS_TAR:-} ]]; then
  if tar_mke2fs=$(bash scripts/e2fsprogs-backports.sh); then
    export SUBROOT_TEST_MKE2FS_TAR=$tar_mke2fs
    echo "==> tar populate path: $SUBROOT_TEST_MKE2FS_TAR"
  elif [[ ${CI:-} == true ]]; then
    echo "scripts/e2fsprogs-backports.sh failed: the tar populate path cannot be tested" >&2
    exit 1
  else
    echo "!!! no mke2fs that reads tar (scripts/e2fsprogs-backports.sh failed): the tar populate-path tests will be SKIPPED" >&2
  fi
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is not installed: install a Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi

export PATH="$PATH:/usr/sbin:/sbin"
skip_log=$(mktemp)
trap 'rm -f "$skip_log"' EXIT
export SUBROOT_SKIP_LOG=$skip_log

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --workspace --all-targets --no-fail-fast "$@"

# Fuzzing (fuzz/run.sh): under CI, or when SUBROOT_FUZZ_SECONDS (per target) is set.
if [[ ${CI:-} == true || -n ${SUBROOT_FUZZ_SECONDS:-} ]]; then
  echo "==> fuzzing, ${SUBROOT_FUZZ_SECONDS:-60}s per target"
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
  fuzz/run.sh "${SUBROOT_FUZZ_SECONDS:-60}"
fi

if [[ -s $skip_log ]]; then
  echo
  echo "!!! $(sort -u "$skip_log" | wc -l) test(s) were SKIPPED for missing reference tools:" >&2
  sort -u "$skip_log" >&2
fi
