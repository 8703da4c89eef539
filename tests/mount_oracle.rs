//! The kernel as the judge: an image made by `subroot create … fs=ext4,from=DIR` is
//! loop-mounted read-only, and GNU `find` /
//! `getfattr` / `diff -r` must see exactly DIR: names, kinds, modes (suid…), owners, sizes,
//! nanosecond mtimes, symlink targets, xattrs and contents. Root-only (the mount); subroot
//! itself runs as uid 65534. Skipped loudly when not root or when loop devices are
//! unavailable, but under `CI=true` a missing loop device is a failure.

mod common;

use common::{is_root, need, ok, run, s, workdir};
use subroot_test_support::mount::{diff_tree, listing, mount_ro, small_tree, xattrs};

#[test]
fn a_created_image_mounts_and_matches_its_tree() {
    let t = "a_created_image_mounts_and_matches_its_tree";
    if !is_root() {
        eprintln!("SKIPPED {t}: needs root for the loop mount");
        return;
    }
    for tool in [
        "mke2fs", "mount", "umount", "find", "getfattr", "setfattr", "diff",
    ] {
        if !need(tool, t) {
            return;
        }
    }
    let w = workdir();
    let d = w.path();
    let src = d.join("tree");
    std::fs::create_dir(&src).expect("mkdir");
    small_tree(&src);
    run("chmod", &["a+rx", s(&src)]);
    // The CLI runs as nobody: it must be able to read the tree (the suid file is 4750).
    run("chmod", &["o+r", s(&src.join("usr/bin/prog"))]);
    run("chmod", &["o+rx", s(&src.join("home/u"))]);
    ok(
        d,
        &[
            "create",
            "img.raw",
            "--size",
            "64M",
            "--table",
            "gpt",
            "--part",
            "size=rest,type=linux,fs=ext4,from=tree",
        ],
    );
    let mnt = d.join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let Some(guard) = mount_ro(&d.join("img.raw"), 1 << 20, &mnt, t) else {
        return;
    };
    assert_eq!(listing(&mnt), listing(&src));
    assert_eq!(xattrs(&mnt), xattrs(&src));
    let real = diff_tree(&src, &mnt);
    assert!(real.is_empty(), "{real:#?}");
    // The kernel sees the hard link as one inode and the sparse file as sparse.
    let ino = |p: &str| {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(mnt.join(p)).expect("stat"))
    };
    assert_eq!(ino("usr/bin/prog"), ino("usr/bin/prog2"));
    let blocks = std::os::unix::fs::MetadataExt::blocks(
        &std::fs::metadata(mnt.join("var/sparse")).expect("stat"),
    );
    assert!(blocks * 512 < 1 << 20, "sparse file has {blocks} sectors");
    drop(guard);
}
