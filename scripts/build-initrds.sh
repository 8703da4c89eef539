#!/bin/bash
# Build real initrds with the distribution's own tools, for the initrd tests and benchmark:
# a minimal Debian chroot (debootstrap) with linux-image-amd64, initramfs-tools and the CPU
# microcode packages gives an initramfs-tools initrd (early microcode segment + zstd main);
# installing dracut in the same chroot then gives dracut initrds (gzip and zstd).
#
# Needs root and the Debian archive configured for apt on this machine (the mirror and
# suite are read from /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list).
# Results are cached in testdata/cache/initrds-HASH/ (HASH = this script's hash), so a
# second run is instant. Prints the cache directory on stdout (last line).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=$(cd "$here/.." && pwd)/testdata/cache
hash=$(sha256sum "$0" | cut -c1-12)
cache="$cache_root/initrds-$hash"
if [[ -f $cache/done ]]; then
  echo "$cache"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "build-initrds.sh: needs root (debootstrap, chroot); run it with sudo" >&2
  exit 2
fi

# The configured Debian mirror and suite.
mirror="" suite=""
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  read -r mirror suite < <(awk '
    /^URIs:/ { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /-/) { s = $i; break } }
    /^$/ { if (uri != "" && s != "") { print uri, s; exit } uri = ""; s = "" }
    END { if (uri != "" && s != "") print uri, s }
  ' /etc/apt/sources.list.d/debian.sources | head -n1)
fi
if [[ -z $mirror && -f /etc/apt/sources.list ]]; then
  read -r mirror suite < <(awk '$1 == "deb" && $3 !~ /-/ { print $2, $3; exit }' /etc/apt/sources.list)
fi
if [[ -z $mirror || -z $suite ]]; then
  echo "build-initrds.sh: no Debian mirror found in the apt sources" >&2
  exit 2
fi
echo "==> mirror $mirror, suite $suite" >&2

if ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d /var/tmp/subroot-initrds.XXXXXX)
root="$work/root"
cleanup() {
  for m in dev/pts dev sys proc; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "==> debootstrap (minbase) into $root" >&2
debootstrap --variant=minbase --components=main,non-free-firmware "$suite" "$root" "$mirror" >&2
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

echo "==> linux-image-amd64, initramfs-tools, microcode" >&2
in_root apt-get install -y -q --no-install-recommends \
  linux-image-amd64 initramfs-tools zstd intel-microcode amd64-microcode >&2
# Put every CPU's microcode in the early segment (not only the build host's).
echo 'IUCODE_TOOL_INITRAMFS=yes' >>"$root/etc/default/intel-microcode"
echo 'AMD64UCODE_INITRAMFS=early' >>"$root/etc/default/amd64-microcode"
kver=$(basename "$(ls -d "$root"/lib/modules/* | sort -V | tail -n1)")
in_root update-initramfs -c -k "$kver" >&2 || in_root update-initramfs -u -k "$kver" >&2

mkdir -p "$work/out"
cp "$root/boot/vmlinuz-$kver" "$work/out/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/out/initramfs-tools.img"

echo "==> dracut" >&2
in_root apt-get install -y -q --no-install-recommends dracut >&2
in_root dracut --force --no-hostonly --gzip --kver "$kver" /tmp/dracut-gzip.img >&2
in_root dracut --force --no-hostonly --zstd --kver "$kver" /tmp/dracut-zstd.img >&2
cp "$root/tmp/dracut-gzip.img" "$root/tmp/dracut-zstd.img" "$work/out/"
echo "$kver" >"$work/out/kver"

mkdir -p "$cache_root"
rm -rf "$cache"
mv "$work/out" "$cache"
chmod -R a+rX "$cache"
touch "$cache/done"
ls -l "$cache" >&2
echo "$cache"
