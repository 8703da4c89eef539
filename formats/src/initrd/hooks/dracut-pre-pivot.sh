#!/bin/sh
# subroot: boot into a sub-directory of the root filesystem (dracut, pre-pivot hook).
#
# With subroot=DIR on the kernel command line, this hook runs after the root filesystem is
# mounted at $NEWROOT (/sysroot) and makes $NEWROOT show DIR instead of the top of the
# filesystem, so the switch to $NEWROOT starts the system from DIR:
#
#   1. mount propagation of the initramfs is made private (systemd makes / shared, and
#      the kernel refuses to move a mount out of a shared parent; systemd's switch-root
#      does the same just before switching);
#   2. the physical root is moved from $NEWROOT to /subroot-phys (a directory of the
#      initramfs itself: /run is moved into the new root at the switch);
#   3. /subroot-phys/DIR is bind-mounted on $NEWROOT;
#   4. each shared directory (SUBROOT_SHARED below, baked in when the hook was added) that
#      exists on the physical root is bind-mounted from there over $NEWROOT/NAME
#      (except one that DIR/etc/fstab mounts itself, such as a separate /boot
#      partition: a bind mount there would make systemd take that mount unit for
#      active and never mount the filesystem fstab names);
#   5. if DIR/sysroot is a directory, the physical root is moved there, so it stays
#      reachable as /sysroot in the booted system; otherwise it is detached (the bind
#      mounts keep the filesystem mounted).
#
# Read-only flags: a bind mount copies the per-mount read-only flag of its source, and the
# root is usually mounted read-only here. systemd later runs `mount -o remount,rw /`,
# which only changes the superblock and the flags of the mount at /: the bind mounts over
# /var, /home, /boot would stay read-only. So every bind mount made here gets its
# per-mount flag cleared with `mount -o remount,bind,rw` (the superblock stays read-only
# until the system remounts / read-write).
#
# Without subroot= on the command line this hook does nothing. If DIR is missing or not a
# valid relative path, it warns and starts the emergency shell, as dracut does when the
# root cannot be used; if the shell is left, the system boots from the top of the
# filesystem.
#
# Hooks are sourced by dracut: everything lives in functions and subroot_* variables, and
# nothing calls exit. SUBROOT_MOUNT, SUBROOT_UMOUNT and SUBROOT_PHYS exist for testing.

# Directories bind-mounted from the physical root into every subroot.
SUBROOT_SHARED="@SUBROOT_SHARED@"

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

subroot_fail() {
	warn "subroot: $*"
	emergency_shell -n subroot "subroot: $*"
}

subroot_main() {
	subroot_mount=${SUBROOT_MOUNT:-mount}
	subroot_umount=${SUBROOT_UMOUNT:-umount}
	subroot_phys=${SUBROOT_PHYS:-/subroot-phys}
	subroot_root=${NEWROOT:-/sysroot}

	# getarg: the last subroot= wins; an empty value counts as absent.
	subroot_dir=$(getarg subroot=) || return 0

	# One leading "/" is allowed (subroot=/r0 means r0); trailing "/"s are dropped.
	subroot_dir=${subroot_dir#/}
	while [ "${subroot_dir%/}" != "$subroot_dir" ]; do
		subroot_dir=${subroot_dir%/}
	done
	[ -n "$subroot_dir" ] || return 0

	case $subroot_dir in
	/* | *//* | "." | "./"* | *"/." | *"/./"* | ".." | "../"* | *"/.." | *"/../"* | *[!A-Za-z0-9._+@,:=/-]*)
		subroot_fail "invalid subroot=${subroot_dir}: expected a relative path without '.', '..' or unusual characters"
		return 1
		;;
	esac

	if [ -L "${subroot_root}/${subroot_dir}" ] || [ ! -d "${subroot_root}/${subroot_dir}" ]; then
		subroot_fail "/${subroot_dir} is not a directory on the root filesystem (subroot=${subroot_dir})"
		return 1
	fi

	info "subroot: mounting /${subroot_dir} as the root"

	# Decide everything while $NEWROOT is still the physical root.
	subroot_binds=
	for subroot_d in $SUBROOT_SHARED; do
		[ -d "${subroot_root}/${subroot_d}" ] || continue
		if subroot_in_fstab "${subroot_root}/${subroot_dir}/etc/fstab" "$subroot_d"; then
			continue # the system mounts it itself (e.g. a separate /boot partition)
		fi
		subroot_target="${subroot_root}/${subroot_dir}/${subroot_d}"
		if [ -L "$subroot_target" ]; then
			warn "subroot: /${subroot_dir}/${subroot_d} is a symbolic link, not sharing /${subroot_d}"
			continue
		fi
		if [ ! -d "$subroot_target" ] && ! mkdir "$subroot_target" 2>/dev/null; then
			warn "subroot: /${subroot_dir}/${subroot_d} is missing and cannot be created (read-only root?), not sharing /${subroot_d}"
			continue
		fi
		subroot_binds="${subroot_binds} ${subroot_d}"
	done
	subroot_sysroot=
	if [ -d "${subroot_root}/${subroot_dir}/sysroot" ] && [ ! -L "${subroot_root}/${subroot_dir}/sysroot" ]; then
		subroot_sysroot=y
	fi

	$subroot_mount --make-rprivate / ||
		warn "subroot: cannot make the mounts of the initramfs private"
	mkdir -p "$subroot_phys"
	if ! $subroot_mount --move "$subroot_root" "$subroot_phys"; then
		subroot_fail "cannot move the root filesystem from ${subroot_root} to ${subroot_phys}"
		return 1
	fi
	if ! $subroot_mount --bind "${subroot_phys}/${subroot_dir}" "$subroot_root"; then
		$subroot_mount --move "$subroot_phys" "$subroot_root"
		subroot_fail "cannot bind-mount /${subroot_dir} on ${subroot_root}"
		return 1
	fi
	$subroot_mount -o remount,bind,rw "$subroot_root" ||
		warn "subroot: cannot clear the read-only flag of the ${subroot_root} bind mount"

	for subroot_d in $subroot_binds; do
		subroot_target="${subroot_root}/${subroot_d}"
		if ! $subroot_mount --bind "${subroot_phys}/${subroot_d}" "$subroot_target"; then
			warn "subroot: cannot bind-mount /${subroot_d} on ${subroot_target}"
			continue
		fi
		$subroot_mount -o remount,bind,rw "$subroot_target" ||
			warn "subroot: cannot clear the read-only flag of ${subroot_target}"
	done

	if [ -n "$subroot_sysroot" ]; then
		$subroot_mount --move "$subroot_phys" "${subroot_root}/sysroot" ||
			warn "subroot: cannot move the physical root to ${subroot_root}/sysroot"
	else
		$subroot_umount -l "$subroot_phys" ||
			warn "subroot: cannot detach ${subroot_phys}"
	fi
	return 0
}

subroot_main
