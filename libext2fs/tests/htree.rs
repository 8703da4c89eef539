//! An htree directory grows to 60,000 entries and receives inserts of long names that
//! split leaves and add index entries, and removals; e2fsck -fn judges each session,
//! debugfs' `htree` dump shows the index grew (the directory stayed indexed), and our
//! reader lists exactly the intended names.
//!
//! The directory starts with 2,000 entries from mke2fs -d, indexed by e2fsck -D, and the
//! editor adds the other 58,000: mke2fs -d of 60,000 names in one directory takes minutes
//! (its ext2fs_link scans the unindexed directory for every name), while inserts into an
//! indexed directory go through the index.

mod common;

use common::*;
use subroot_formats::block::RawFile;
use subroot_formats::ext::ExtTree;
use subroot_formats::tree::{Kind, Metadata};
use subroot_test_support::s;

/// Leaf blocks the htree index of `/big` points at, per debugfs.
fn leaves(img: &std::path::Path) -> usize {
    let out = bash(&format!("debugfs -R 'htree /big' {} 2>/dev/null", s(img)));
    assert!(
        out.contains("Root node dump"),
        "/big is not indexed:\n{out:.400}"
    );
    out.lines()
        .filter(|l| l.trim_start().starts_with("Entry #"))
        .count()
}

#[test]
fn htree_inserts_split_leaves_and_removals_stay_consistent() {
    let start = std::time::Instant::now();
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let tree = tmp.path().join("tree");
    let img = tmp.path().join("fs.img");
    bash(&format!(
        "mkdir -p {0}/big; cd {0}/big; python3 -c '
for i in range(2000): open(\"f%06d\" % i, \"w\").close()'",
        s(&tree)
    ));
    mkfs(&img, "-t ext4 -N 80000", "400M", Some(&tree));
    bash(&format!(
        "e2fsck -fyD {} >/dev/null 2>&1 || [ $? -le 2 ]",
        s(&img)
    ));
    e2fsck_clean(&img);
    let first = leaves(&img);
    let fifo = |path: String| {
        let meta = Metadata {
            perm: 0o644,
            ..Default::default()
        };
        new_entry(&path, Kind::Fifo, meta)
    };
    let (dev, mut fs) = open(&img);
    for i in 2000..60000 {
        fs.create(&fifo(format!("big/f{i:06}")), None).unwrap();
    }
    close_and_judge(fs, dev, &img);
    let before = leaves(&img);
    assert!(before > first * 10, "{first} leaves, then {before}");
    eprintln!("htree: setup {:?}", start.elapsed());

    let (dev, mut fs) = open(&img);
    let t0 = std::time::Instant::now();
    let name = |i: usize| format!("big/{}-{i:05}", "n".repeat(120));
    for i in 0..3000 {
        fs.create(&fifo(name(i)), None).unwrap();
    }
    let t1 = t0.elapsed();
    for i in (0..60000).step_by(7) {
        fs.unlink(format!("big/f{i:06}").as_bytes()).unwrap();
    }
    for i in (0..3000).step_by(5) {
        fs.unlink(name(i).as_bytes()).unwrap();
    }
    eprintln!(
        "htree: 3000 inserts {t1:?}, 9172 removals {:?}",
        t0.elapsed() - t1
    );
    let stats = close_and_judge(fs, dev, &img);
    eprintln!(
        "htree: closed and judged at {:?}: {stats:?}",
        start.elapsed()
    );
    // Removal goes through the index: scanning the directory per name would read ~9 GB.
    assert!(
        stats.bytes_read < 256 << 20,
        "read {} bytes",
        stats.bytes_read
    );
    let after = leaves(&img);
    assert!(
        after > before + 50,
        "the index should have grown: {before} leaves before, {after} after"
    );

    let t = ExtTree::open(RawFile::open(&img).unwrap(), Default::default()).unwrap();
    let mut got: Vec<Vec<u8>> = t
        .children(b"big")
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    let mut want: Vec<Vec<u8>> = (0..60000)
        .filter(|i| i % 7 != 0)
        .map(|i| format!("big/f{i:06}").into_bytes())
        .chain(
            (0..3000)
                .filter(|i| i % 5 != 0)
                .map(|i| name(i).into_bytes()),
        )
        .collect();
    eprintln!("htree: listed at {:?}", start.elapsed());
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the directory does not hold the intended names"
    );
}
