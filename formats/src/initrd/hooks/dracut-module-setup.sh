#!/bin/bash
# subroot dracut module: boot into a sub-directory of the root filesystem when the kernel
# command line has subroot=DIR (see subroot-pre-pivot.sh). Added to every initrd by
# /etc/dracut.conf.d/90-subroot.conf.

# Only included when asked for (add_dracutmodules).
check() {
    return 255
}

depends() {
    return 0
}

install() {
    inst_multiple mount umount mkdir
    inst_hook pre-pivot 50 "$moddir/subroot-pre-pivot.sh"
}
