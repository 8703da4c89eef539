//! The struct layouts the committed bindings (src/sys.rs) rely on, checked against the
//! installed e2fsprogs headers by compiling a C program that prints sizeof/offsetof.
//! Skipped where the headers (`libext2fs-dev`) are missing — building must not need them,
//! so this is not a CI failure — and (loudly) where no C compiler is installed.

use std::mem::{offset_of, size_of};
use subroot_libext2fs::sys;
use subroot_test_support::need;

#[test]
fn layouts_match_the_installed_headers() {
    let test = "layouts_match_the_installed_headers";
    if !std::path::Path::new("/usr/include/ext2fs/ext2fs.h").exists() {
        eprintln!("{test}: not checked, the libext2fs headers (libext2fs-dev) are not installed");
        return;
    }
    if !need("cc", test) {
        return;
    }
    let ours: Vec<(&str, usize)> = vec![
        (
            "sizeof(struct struct_io_manager)",
            size_of::<sys::struct_io_manager>(),
        ),
        (
            "offsetof(struct struct_io_manager, read_blk64)",
            offset_of!(sys::struct_io_manager, read_blk64),
        ),
        (
            "offsetof(struct struct_io_manager, discard)",
            offset_of!(sys::struct_io_manager, discard),
        ),
        (
            "offsetof(struct struct_io_manager, zeroout)",
            offset_of!(sys::struct_io_manager, zeroout),
        ),
        (
            "sizeof(struct struct_io_channel)",
            size_of::<sys::struct_io_channel>(),
        ),
        (
            "offsetof(struct struct_io_channel, block_size)",
            offset_of!(sys::struct_io_channel, block_size),
        ),
        (
            "offsetof(struct struct_io_channel, refcount)",
            offset_of!(sys::struct_io_channel, refcount),
        ),
        (
            "offsetof(struct struct_io_channel, private_data)",
            offset_of!(sys::struct_io_channel, private_data),
        ),
        (
            "offsetof(struct struct_ext2_filsys, super)",
            offset_of!(sys::struct_ext2_filsys, super_),
        ),
        (
            "offsetof(struct struct_ext2_filsys, blocksize)",
            offset_of!(sys::struct_ext2_filsys, blocksize),
        ),
        (
            "offsetof(struct struct_ext2_filsys, flags)",
            offset_of!(sys::struct_ext2_filsys, flags),
        ),
        (
            "offsetof(struct struct_ext2_filsys, group_desc_count)",
            offset_of!(sys::struct_ext2_filsys, group_desc_count),
        ),
        (
            "offsetof(struct struct_ext2_filsys, desc_blocks)",
            offset_of!(sys::struct_ext2_filsys, desc_blocks),
        ),
        (
            "offsetof(struct struct_ext2_filsys, group_desc)",
            offset_of!(sys::struct_ext2_filsys, group_desc),
        ),
        (
            "offsetof(struct struct_ext2_filsys, inode_blocks_per_group)",
            offset_of!(sys::struct_ext2_filsys, inode_blocks_per_group),
        ),
        (
            "offsetof(struct struct_ext2_filsys, inode_map)",
            offset_of!(sys::struct_ext2_filsys, inode_map),
        ),
        (
            "offsetof(struct struct_ext2_filsys, block_map)",
            offset_of!(sys::struct_ext2_filsys, block_map),
        ),
        (
            "offsetof(struct struct_ext2_filsys, stride)",
            offset_of!(sys::struct_ext2_filsys, stride),
        ),
        (
            "offsetof(struct struct_ext2_filsys, now)",
            offset_of!(sys::struct_ext2_filsys, now),
        ),
        (
            "offsetof(struct ext2_super_block, s_raid_stride)",
            offset_of!(sys::ext2_super_block, s_raid_stride),
        ),
        (
            "offsetof(struct ext2_super_block, s_reserved_gdt_blocks)",
            offset_of!(sys::ext2_super_block, s_reserved_gdt_blocks),
        ),
        (
            "offsetof(struct ext2_super_block, s_first_meta_bg)",
            offset_of!(sys::ext2_super_block, s_first_meta_bg),
        ),
        (
            "offsetof(struct ext2_super_block, s_log_groups_per_flex)",
            offset_of!(sys::ext2_super_block, s_log_groups_per_flex),
        ),
        (
            "offsetof(struct ext2_super_block, s_overhead_clusters)",
            offset_of!(sys::ext2_super_block, s_overhead_clusters),
        ),
        (
            "sizeof(struct ext2_inode_large)",
            size_of::<sys::ext2_inode_large>(),
        ),
        (
            "offsetof(struct ext2_inode_large, i_block)",
            offset_of!(sys::ext2_inode_large, i_block),
        ),
        (
            "offsetof(struct ext2_inode_large, osd2)",
            offset_of!(sys::ext2_inode_large, osd2),
        ),
        (
            "offsetof(struct ext2_inode_large, i_extra_isize)",
            offset_of!(sys::ext2_inode_large, i_extra_isize),
        ),
        (
            "offsetof(struct ext2_inode_large, i_crtime_extra)",
            offset_of!(sys::ext2_inode_large, i_crtime_extra),
        ),
        (
            "sizeof(struct ext2_super_block)",
            size_of::<sys::ext2_super_block>(),
        ),
        (
            "offsetof(struct ext2_super_block, s_state)",
            offset_of!(sys::ext2_super_block, s_state),
        ),
        (
            "offsetof(struct ext2_super_block, s_feature_incompat)",
            offset_of!(sys::ext2_super_block, s_feature_incompat),
        ),
        (
            "offsetof(struct ext2_super_block, s_last_orphan)",
            offset_of!(sys::ext2_super_block, s_last_orphan),
        ),
        (
            "offsetof(struct ext2_super_block, s_free_blocks_hi)",
            offset_of!(sys::ext2_super_block, s_free_blocks_hi),
        ),
        (
            "offsetof(struct ext2_dir_entry, name_len)",
            offset_of!(sys::ext2_dir_entry, name_len),
        ),
        (
            "offsetof(struct ext2_dir_entry, name)",
            offset_of!(sys::ext2_dir_entry, name),
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <ext2fs/ext2fs.h>\nint main(void) {\n",
    );
    for (expr, _) in &ours {
        c.push_str(&format!("printf(\"%zu\\n\", (size_t){expr});\n"));
    }
    c.push_str("return 0; }\n");
    let src = tmp.path().join("layout.c");
    let exe = tmp.path().join("layout");
    std::fs::write(&src, c).unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-D_FILE_OFFSET_BITS=64", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = std::process::Command::new(&exe).output().unwrap();
    let theirs: Vec<usize> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(theirs.len(), ours.len());
    for ((expr, ours), theirs) in ours.iter().zip(theirs) {
        assert_eq!(
            *ours, theirs,
            "{expr}: the bindings say {ours}, the headers {theirs}"
        );
    }
}
