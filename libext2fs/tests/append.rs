//! Appending names ([`Ext2Fs::set_append_names`]) and hard links by inode number
//! ([`Ext2Fs::link_inode`]), as `roots add` fills a new tree: new directories grow block by
//! block (1 KiB and 4 KiB blocks, with and without metadata_csum and filetype), every name
//! resolves to the intended inode, the link counts are right, and e2fsck -fn is clean.

mod common;

use common::*;
use subroot_formats::ext::ExtTree;
use subroot_formats::tree::{BytesContent, Kind, Metadata};

/// Fill three new directories; returns the bytes the editor read.
fn fill(opts: &str, append: bool) -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    mkfs(&img, opts, "64M", None);
    let (dev, mut fs) = open(&img);
    let meta = Metadata {
        perm: 0o644,
        ..Default::default()
    };
    let mut file = new_entry("src", Kind::File, meta.clone());
    file.size = 6;
    let mut content = BytesContent::new(b"shared".to_vec());
    fs.create(&file, Some(&mut content)).unwrap();
    let src = fs.lookup(b"src").unwrap().unwrap();
    fs.set_append_names(append);
    let dir_meta = Metadata {
        perm: 0o755,
        ..Default::default()
    };
    for d in 0..3 {
        fs.create(
            &new_entry(&format!("d{d}"), Kind::Dir, dir_meta.clone()),
            None,
        )
        .unwrap();
        for i in 0..700 {
            // Names of every length class, so block tails of every size are met.
            let name = format!("d{d}/{i:04}-{}", "x".repeat(i % 60));
            match i % 4 {
                0 => fs
                    .create(&new_entry(&name, Kind::Dir, dir_meta.clone()), None)
                    .map(|_| ()),
                1 => fs
                    .create(&new_entry(&name, Kind::Fifo, meta.clone()), None)
                    .map(|_| ()),
                _ => fs.link_inode(src, name.as_bytes()),
            }
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    // A directory is refused, as by `link`.
    assert!(fs.link_inode(2, b"root-again").is_err());
    let read = fs.bytes_read();
    close_and_judge(fs, dev.clone(), &img);
    let tree = ExtTree::open(dev, Default::default()).unwrap();
    for d in 0..3 {
        let names = tree.children(format!("d{d}").as_bytes()).unwrap();
        assert_eq!(names.len(), 700);
    }
    let (links, ino) = {
        let st = tree.fs().inode(src).unwrap();
        (st.nlink, src)
    };
    assert_eq!(links, 1 + 3 * 350, "inode {ino}");
    assert_eq!(tree.fs().lookup(b"/d1/0002-xx").unwrap(), src);
    read
}

/// Appending gives the same consistent result as `ext2fs_link` and reads a fraction of
/// what its scan for room reads.
fn fills_new_directories(opts: &str) {
    let appended = fill(opts, true);
    let linked = fill(opts, false);
    assert!(
        appended * 3 < linked,
        "appending read {appended} bytes, linking {linked}"
    );
}

#[test]
fn appends_with_metadata_csum_4k() {
    fills_new_directories("-t ext4");
}

#[test]
fn appends_with_1k_blocks() {
    fills_new_directories("-t ext4 -b 1024");
}

#[test]
fn appends_without_metadata_csum_or_filetype() {
    fills_new_directories("-t ext2 -O ^filetype");
}
