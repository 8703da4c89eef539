//! Every xattr kind on ext4 with ea_inode: in-inode, xattr block, EA inodes (values larger
//! than a block), empty values, an ACL; replaced as a whole set (the old EA inodes and block
//! freed) and dropped with the file. Judged by e2fsck -fn (which counts EA inode references
//! and block refcounts), our after-edit check and our reader's xattrs.

mod common;

use common::*;
use subroot_formats::block::RawFile;
use subroot_formats::ext::ExtTree;
use subroot_formats::tree::{Kind, Metadata};
use subroot_test_support::noise;

type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn xattrs(pairs: &[(&str, Vec<u8>)]) -> Xattrs {
    let mut v: Xattrs = pairs
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn ea_inodes_blocks_and_in_inode_values_are_written_replaced_and_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    mkfs(&img, "-t ext4 -O ea_inode", "64M", None);
    let first = xattrs(&[
        ("user.small", b"s".to_vec()),
        ("user.empty", Vec::new()),
        ("user.block", noise(600, 1)),
        ("user.huge", noise(20_000, 2)),
        ("trusted.big", noise(5_000, 3)),
    ]);
    let second = xattrs(&[
        ("user.other", noise(9_000, 4)),
        ("security.selinux", b"system_u:object_r:etc_t:s0\0".to_vec()),
    ]);
    let (dev, mut fs) = open(&img);
    for name in ["a", "b"] {
        let meta = Metadata {
            perm: 0o644,
            xattrs: first.clone(),
            ..Default::default()
        };
        fs.create(&new_entry(name, Kind::Fifo, meta), None).unwrap();
    }
    let meta = Metadata {
        perm: 0o600,
        xattrs: second.clone(),
        ..Default::default()
    };
    fs.set_meta(b"a", &meta).unwrap();
    fs.unlink(b"b").unwrap();
    assert_eq!(fs.stat(b"a").unwrap().meta.xattrs, second);
    let stats = close_and_judge(fs, dev, &img);
    // Only `a`, its two EA inodes (for the 9,000-byte value: one) remain in use.
    assert!(stats.inodes_used <= 3, "{stats:?}");
    let t = ExtTree::open(RawFile::open(&img).unwrap(), Default::default()).unwrap();
    let mut got = t.entry(b"a").unwrap().meta.xattrs;
    got.sort();
    assert_eq!(got, second);
}

#[test]
fn a_create_whose_xattrs_do_not_fit_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    mkfs(&img, "-t ext4 -b 1024", "32M", None);
    let (dev, mut fs) = open(&img);
    for kind in [Kind::File, Kind::Dir, Kind::Fifo] {
        let meta = Metadata {
            perm: 0o644,
            xattrs: xattrs(&[("user.big", noise(3000, 5))]),
            ..Default::default()
        };
        let mut c = subroot_formats::tree::BytesContent::new(b"data".to_vec());
        let mut e = new_entry("x", kind, meta);
        e.size = 4;
        let content =
            (kind == Kind::File).then_some(&mut c as &mut dyn subroot_formats::tree::Content);
        let err = fs
            .create(&e, content)
            .expect_err("a 3,000-byte value needs a bigger block");
        assert!(
            err.to_string().contains("user.big"),
            "the error names the xattr: {err}"
        );
        assert_eq!(fs.lookup(b"x").unwrap(), None, "{kind:?} left behind");
    }
    let stats = close_and_judge(fs, dev, &img);
    assert_eq!((stats.inodes_used, stats.blocks_used), (0, 0), "{stats:?}");
}
