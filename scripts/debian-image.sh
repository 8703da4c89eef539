#!/usr/bin/env bash
# Build (once, cached) a small real Debian system image for the end-to-end boot tests.
#
#   bash scripts/debian-image.sh initramfs-tools   # MBR + ext4 root, initramfs-tools initrd
#   bash scripts/debian-image.sh dracut            # GPT + ESP (vfat) + ext4 root, dracut initrd
#   bash scripts/debian-image.sh bootpart          # MBR + ext4 /boot + ext4 root, initramfs-tools
#
# Prints the path of the raw image. Needs root and Debian's archive (mmdebstrap reads the
# machine's own apt sources; no archive address is written here). The image boots (direct
# kernel boot) to multi-user.target, where the unit `subroot-marker.service` prints to the
# serial console: a marker, /proc/self/mountinfo, whether /var /home /boot are writable,
# and whether a freshly generated initrd still holds the subroot hook — then powers off.
set -euo pipefail
flavour=${1:-initramfs-tools}
here=$(cd "$(dirname "$0")" && pwd)
cache=${SUBROOT_CACHE:-$here/../testdata/cache}
key=$(sha256sum "$0" | cut -c1-12)
out=$cache/debian-$flavour-$key.raw
if [[ -f $out ]]; then echo "$out"; exit 0; fi
[[ $(id -u) == 0 ]] || { echo "debian-image.sh: building the image needs root" >&2; exit 1; }
# The tests ask for images from parallel threads: apt waits for the dpkg lock another
# install holds, and one build per flavour runs at a time (the others then find its image).
command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
  install -y -qq mmdebstrap >/dev/null
export PATH="$PATH:/usr/sbin:/sbin"
. /etc/os-release
suite=$VERSION_CODENAME
mkdir -p "$cache"
exec 9>"$cache/.build-$flavour.lock"
flock 9
if [[ -f $out ]]; then echo "$out"; exit 0; fi
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
root_uuid=5e1f0b0a-7c3d-4e2a-9b1c-2d3e4f5a6b7c
# The bootpart flavour's separate /boot partition.
boot_uuid=b007b007-1a2b-4c3d-8e4f-5a6b7c8d9e0f

pkgs=linux-image-amd64,systemd-sysv,udev,kmod,e2fsprogs,zstd
case $flavour in
  initramfs-tools | bootpart) pkgs+=,initramfs-tools ;;
  dracut) pkgs+=,dracut,dracut-core ;;
  *) echo "unknown flavour $flavour" >&2; exit 2 ;;
esac

# The machine's apt sources, for mmdebstrap to read on stdin ("-" as the mirror).
sources=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null; true)
[[ -n $sources ]] || sources=$(grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null)
printf '%s\n' "$sources" | mmdebstrap --mode=root --variant=minbase --include="$pkgs" \
  --aptopt='Acquire::Languages "none"' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  "$suite" "$work/root" - >"$work/mmdebstrap.log" 2>&1 || { tail -30 "$work/mmdebstrap.log" >&2; exit 1; }

r=$work/root
echo subroot-test > "$r/etc/hostname"
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$root_uuid" > "$r/etc/fstab"
if [[ $flavour == bootpart ]]; then
  printf 'UUID=%s /boot ext4 defaults 0 2\n' "$boot_uuid" >> "$r/etc/fstab"
fi
install -m 0755 /dev/stdin "$r/usr/local/sbin/subroot-marker" <<'MARKER'
#!/bin/sh
# Report how the system came up, on the serial console, then power off.
exec >/dev/ttyS0 2>&1
echo "SUBROOT-MARKER-BEGIN"
cat /proc/self/mountinfo | sed 's/^/MOUNTINFO /'
for d in /var /home /boot; do
  if touch "$d/.subroot-rw-test" 2>/dev/null; then echo "WRITABLE $d"; rm -f "$d/.subroot-rw-test"
  else echo "READONLY $d"; fi
done
if command -v update-initramfs >/dev/null; then
  if update-initramfs -u -k all >/tmp/mkinitrd.log 2>&1; then
    for f in /boot/initrd.img-*; do
      if lsinitramfs "$f" | grep -q 'scripts/local-bottom/subroot$'; then echo "HOOK-KEPT $f"; else echo "HOOK-LOST $f"; fi
    done
  else echo "INITRD-REBUILD-FAILED"; sed 's/^/MKINITRD /' /tmp/mkinitrd.log; fi
elif command -v dracut >/dev/null; then
  k=$(uname -r)
  if dracut -f --hostonly "/boot/initrd.img-$k" "$k" >/tmp/mkinitrd.log 2>&1; then
    if lsinitrd "/boot/initrd.img-$k" | grep -q 'subroot'; then echo "HOOK-KEPT /boot/initrd.img-$k"; else echo "HOOK-LOST /boot/initrd.img-$k"; fi
  else echo "INITRD-REBUILD-FAILED"; sed 's/^/MKINITRD /' /tmp/mkinitrd.log; fi
fi
echo "SUBROOT-MARKER-END"
systemctl --no-block poweroff
MARKER
cat > "$r/etc/systemd/system/subroot-marker.service" <<'UNIT'
[Unit]
Description=subroot test marker
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/subroot-marker
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/subroot-marker.service "$r/etc/systemd/system/multi-user.target.wants/"
# In-guest initrd rebuilds (the marker's update-initramfs) run under emulation: keep them
# quick with only the modules this machine uses and light compression. The initrd the image
# ships was built with the distribution's defaults above.
if [[ $flavour == initramfs-tools || $flavour == bootpart ]]; then
  printf 'MODULES=dep\nCOMPRESSLEVEL=1\n' > "$r/etc/initramfs-tools/conf.d/subroot-test.conf"
fi
# Boot faster: no waiting for network or a clock.
rm -f "$r"/etc/systemd/system/*.wants/systemd-timesyncd.service
# The dracut flavour regenerates its initrd non-hostonly, so it boots in QEMU.
if [[ $flavour == dracut ]]; then
  echo 'hostonly="no"' > "$r/etc/dracut.conf.d/10-generic.conf"
  k=$(ls "$r/lib/modules" | head -n1)
  chroot "$r" dracut -f "/boot/initrd.img-$k" "$k" >"$work/dracut.log" 2>&1 || { tail -20 "$work/dracut.log" >&2; exit 1; }
fi
rm -rf "$r/var/cache/apt/archives"/*.deb "$r/var/lib/apt/lists"/*_Packages

img=$work/disk.raw
truncate -s 2G "$img"
if [[ $flavour == dracut ]]; then
  # GPT: a 64 MiB ESP and the root.
  sfdisk -q "$img" <<<$'label: gpt\nsize=64MiB, type=uefi\ntype=linux'
  start1=2048; start2=$(( (64 << 11) + 2048 ))
  mkfs.vfat -F 32 -s 1 -n ESP --offset "$start1" "$img" $((64 << 10)) >/dev/null
  truncate -s 2G "$img"
elif [[ $flavour == bootpart ]]; then
  # MBR: a 256 MiB ext4 /boot holding what the system put in /boot, and the root, whose
  # /boot stays an empty mount point.
  sfdisk -q "$img" <<<$'label: dos\nsize=256MiB, type=83, bootable\ntype=83'
  start1=2048; start2=$(( (256 << 11) + 2048 ))
  mkdir "$work/boot"
  find "$r/boot" -mindepth 1 -maxdepth 1 -exec mv -t "$work/boot" {} +
  mke2fs -q -t ext4 -U "$boot_uuid" -L debian-boot -d "$work/boot" -E offset=$((start1 * 512)) "$img" "$((256 << 10))k"
  e2fsck -fn "$img?offset=$((start1 * 512))" >/dev/null
else
  sfdisk -q "$img" <<<$'label: dos\ntype=83, bootable'
  start2=2048
fi
size=$(( (2 << 30) / 512 - start2 - 2048 ))
mke2fs -q -t ext4 -U "$root_uuid" -L debian-root -d "$r" -E offset=$((start2 * 512)) "$img" "$((size / 2))k"
# The reference checker judges the result (e2fsprogs reads "FILE?offset=N").
e2fsck -fn "$img?offset=$((start2 * 512))" >/dev/null
mv "$img" "$out"
echo "$out"
