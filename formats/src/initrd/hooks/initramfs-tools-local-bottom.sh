#!/bin/sh
# subroot: boot into a sub-directory of the root filesystem (initramfs-tools, local-bottom).
#
# With subroot=DIR on the kernel command line, this script runs after the root filesystem
# is mounted at ${rootmnt} and makes ${rootmnt} show DIR instead of the top of the
# filesystem, so init's later `run-init ${rootmnt} ...` starts the system from DIR:
#
#   1. the physical root is moved from ${rootmnt} to /subroot-phys (a directory of the
#      initramfs itself: /run is moved into the new root by init later, so it is no place
#      for a mount that must stay where we put it);
#   2. /subroot-phys/DIR is bind-mounted on ${rootmnt};
#   3. each shared directory (SUBROOT_SHARED below, baked in when the hook was added) that
#      exists on the physical root is bind-mounted from there over ${rootmnt}/NAME
#      (except one that DIR/etc/fstab mounts itself, such as a separate /boot
#      partition: a bind mount there would make systemd take that mount unit for
#      active and never mount the filesystem fstab names);
#   4. if DIR/sysroot is a directory, the physical root is moved there, so it stays
#      reachable as /sysroot in the booted system; otherwise it is detached (the bind
#      mounts keep the filesystem mounted).
#
# Read-only flags: a bind mount copies the per-mount read-only flag of its source, and the
# root is mounted read-only here. systemd later runs `mount -o remount,rw /`, which only
# changes the superblock and the flags of the mount at /: the bind mounts over /var,
# /home, /boot would stay read-only. So every bind mount made here gets its per-mount
# flag cleared with `mount -o bind,remount,rw` (the superblock stays read-only until the
# system remounts / read-write, so nothing can be written before that; and a system that
# keeps / read-only keeps everything read-only).
#
# The option order matters for klibc's mount (initramfs-tools' default without busybox):
# with `remount,bind,rw` it makes a second bind mount over the first (read-only again);
# with `bind,remount,rw` it changes the per-mount flag as intended (checked with the
# klibc mount of a Debian bookworm initrd in a private mount namespace).
#
# Without subroot= on the command line this script does nothing. If DIR is missing or not
# a valid relative path, it says so and calls panic (from /scripts/functions), as
# initramfs-tools does when the root cannot be mounted; if the shell is left, the system
# boots from the top of the filesystem.
#
# The environment variables SUBROOT_FUNCTIONS, SUBROOT_CMDLINE_FILE, SUBROOT_MOUNT,
# SUBROOT_UMOUNT and SUBROOT_PHYS exist for testing; they are not set at boot.

PREREQ=""
prereqs()
{
	echo "$PREREQ"
}
case $1 in
prereqs)
	prereqs
	exit 0
	;;
esac

# Directories bind-mounted from the physical root into every subroot.
SUBROOT_SHARED="@SUBROOT_SHARED@"

. "${SUBROOT_FUNCTIONS:-/scripts/functions}"

subroot_mount=${SUBROOT_MOUNT:-mount}
subroot_umount=${SUBROOT_UMOUNT:-umount}
subroot_phys=${SUBROOT_PHYS:-/subroot-phys}
subroot_cmdline=${SUBROOT_CMDLINE_FILE:-/proc/cmdline}
rootmnt=${rootmnt:-/root}

# Whether the fstab file $1 has a line that mounts /$2 (blank lines and comments skipped,
# a trailing "/" on the mount point ignored). A symbolic link is not followed: it would
# resolve inside the initramfs.
subroot_in_fstab() {
	{ [ -f "$1" ] && [ ! -L "$1" ]; } || return 1
	while read -r subroot_fs_dev subroot_fs_dir subroot_fs_rest || [ -n "$subroot_fs_dev" ]; do
		case $subroot_fs_dev in
		"" | "#"*) continue ;;
		esac
		[ "${subroot_fs_dir%/}" = "/$2" ] && return 0
	done <"$1"
	return 1
}

# The last subroot= on the command line wins.
subroot_dir=
subroot_set=
set -f
for subroot_arg in $(cat "$subroot_cmdline"); do
	case $subroot_arg in
	subroot=*)
		subroot_dir=${subroot_arg#subroot=}
		subroot_set=y
		;;
	esac
done
set +f
[ -n "$subroot_set" ] || exit 0

# One leading "/" is allowed (subroot=/r0 means r0); trailing "/"s are dropped.
subroot_dir=${subroot_dir#/}
while [ "${subroot_dir%/}" != "$subroot_dir" ]; do
	subroot_dir=${subroot_dir%/}
done
[ -n "$subroot_dir" ] || exit 0

case $subroot_dir in
/* | *//* | "." | "./"* | *"/." | *"/./"* | ".." | "../"* | *"/.." | *"/../"* | *[!A-Za-z0-9._+@,:=/-]*)
	panic "subroot: invalid subroot=${subroot_dir}: expected a relative path without '.', '..' or unusual characters"
	exit 0
	;;
esac

if [ -L "${rootmnt}/${subroot_dir}" ] || [ ! -d "${rootmnt}/${subroot_dir}" ]; then
	panic "subroot: /${subroot_dir} is not a directory on the root filesystem (subroot=${subroot_dir})"
	exit 0
fi

log_begin_msg "Mounting subroot /${subroot_dir}"

# Decide everything while ${rootmnt} is still the physical root.
subroot_binds=
for subroot_d in $SUBROOT_SHARED; do
	[ -d "${rootmnt}/${subroot_d}" ] || continue
	if subroot_in_fstab "${rootmnt}/${subroot_dir}/etc/fstab" "$subroot_d"; then
		continue # the system mounts it itself (e.g. a separate /boot partition)
	fi
	subroot_target="${rootmnt}/${subroot_dir}/${subroot_d}"
	if [ -L "$subroot_target" ]; then
		log_warning_msg "subroot: /${subroot_dir}/${subroot_d} is a symbolic link, not sharing /${subroot_d}"
		continue
	fi
	if [ ! -d "$subroot_target" ] && ! mkdir "$subroot_target" 2>/dev/null; then
		log_warning_msg "subroot: /${subroot_dir}/${subroot_d} is missing and cannot be created (read-only root?), not sharing /${subroot_d}"
		continue
	fi
	subroot_binds="${subroot_binds} ${subroot_d}"
done
subroot_sysroot=
if [ -d "${rootmnt}/${subroot_dir}/sysroot" ] && [ ! -L "${rootmnt}/${subroot_dir}/sysroot" ]; then
	subroot_sysroot=y
fi

mkdir -p "$subroot_phys"
if ! $subroot_mount -o move "$rootmnt" "$subroot_phys"; then
	log_end_msg
	panic "subroot: cannot move the root filesystem from ${rootmnt} to ${subroot_phys}"
	exit 0
fi
if ! $subroot_mount -o bind "${subroot_phys}/${subroot_dir}" "$rootmnt"; then
	$subroot_mount -o move "$subroot_phys" "$rootmnt"
	log_end_msg
	panic "subroot: cannot bind-mount /${subroot_dir} on ${rootmnt}"
	exit 0
fi
$subroot_mount -o bind,remount,rw "$rootmnt" "$rootmnt" ||
	log_warning_msg "subroot: cannot clear the read-only flag of the ${rootmnt} bind mount"

for subroot_d in $subroot_binds; do
	subroot_target="${rootmnt}/${subroot_d}"
	if ! $subroot_mount -o bind "${subroot_phys}/${subroot_d}" "$subroot_target"; then
		log_warning_msg "subroot: cannot bind-mount /${subroot_d} on ${subroot_target}"
		continue
	fi
	$subroot_mount -o bind,remount,rw "$subroot_target" "$subroot_target" ||
		log_warning_msg "subroot: cannot clear the read-only flag of ${subroot_target}"
done

if [ -n "$subroot_sysroot" ]; then
	$subroot_mount -o move "$subroot_phys" "${rootmnt}/sysroot" ||
		log_warning_msg "subroot: cannot move the physical root to ${rootmnt}/sysroot"
else
	$subroot_umount -l "$subroot_phys" ||
		log_warning_msg "subroot: cannot detach ${subroot_phys}"
fi

log_end_msg
exit 0
