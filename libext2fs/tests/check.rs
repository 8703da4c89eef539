//! The after-edit check finds what it claims to: free counts that disagree with the
//! bitmaps (group or superblock) and a touched directory whose block checksum is wrong.

mod common;

use common::*;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, RawFile};
use subroot_libext2fs::{check, Error};
use subroot_test_support::s;

fn checked(img: &std::path::Path, dirs: &[&[u8]]) -> Result<(), Error> {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).unwrap());
    let dirs: Vec<Vec<u8>> = dirs.iter().map(|d| d.to_vec()).collect();
    check(dev, &dirs).map(|_| ())
}

#[test]
fn the_check_finds_wrong_counts_and_a_bad_directory_block() {
    let tmp = tempfile::tempdir().unwrap();
    let (seed, img) = (tmp.path().join("seed"), tmp.path().join("fs.img"));
    bash(&format!("mkdir -p {0}/d; touch {0}/d/a {0}/d/b", s(&seed)));
    for (fix, dirs) in [
        ("ssv free_inodes_count 5", &[][..]),
        ("set_bg 0 free_blocks_count 7", &[][..]),
    ] {
        mkfs(&img, "-t ext4 -b 4096", "32M", Some(&seed));
        checked(&img, &[b"d"]).expect("a fresh filesystem passes");
        bash(&format!("debugfs -w -R '{fix}' {} 2>/dev/null", s(&img)));
        let err = checked(&img, dirs).expect_err(fix);
        assert!(matches!(err, Error::Corrupt(_)), "{fix}: {err:?}");
    }
    // A directory block with a bad checksum (a name byte flipped behind libext2fs' back).
    mkfs(&img, "-t ext4 -b 4096", "32M", Some(&seed));
    let blk: u64 = bash(&format!("debugfs -R 'bmap /d 0' {} 2>/dev/null", s(&img)))
        .trim()
        .parse()
        .unwrap();
    let mut bytes = std::fs::read(&img).unwrap();
    let at = blk as usize * 4096 + 24 + 8; // the first name after `.` and `..`
    bytes[at] ^= 0x20;
    std::fs::write(&img, bytes).unwrap();
    checked(&img, &[]).expect("untouched directories are not read");
    let err = checked(&img, &[b"d"]).expect_err("the bad block is found");
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
}
