//! What one small edit costs on a big filesystem: a 1 GiB ext4 image holding ~550 MB of
//! /usr (mke2fs -d), one small file created in a directory of thousands of entries.
//! Prints the time, the bytes read and written through the BlockDevice and the peak RSS;
//! fails when the edit reads more than 8 MiB (it must read metadata only) or takes more
//! than a second. Ignored by default (building the image takes a while):
//! `cargo test -p subroot-libext2fs --test measure -- --ignored --nocapture`.

mod common;

use common::*;
use subroot_formats::tree::{BytesContent, Kind, Metadata};
use subroot_test_support::s;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore]
fn one_small_file_on_a_1_gib_image() {
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let (tree, img) = (tmp.path().join("usr"), tmp.path().join("fs.img"));
    bash(&format!(
        "mkdir {0}; cp -a /usr/bin /usr/include /usr/libexec {0}/",
        s(&tree)
    ));
    mkfs(&img, "-t ext4", "1G", Some(&tree));
    let used = bash(&format!("du -sm --apparent-size {}", s(&tree)));
    let entries = bash(&format!("ls {}/bin | wc -l", s(&tree)));
    let rss0 = peak_rss_kib();

    let t = std::time::Instant::now();
    let (dev, mut fs) = open(&img);
    let data = b"hello, world\n".to_vec();
    let meta = Metadata {
        perm: 0o644,
        ..Default::default()
    };
    let mut e = new_entry("bin/hello.txt", Kind::File, meta);
    e.size = data.len() as u64;
    fs.create(&e, Some(&mut BytesContent::new(data))).unwrap();
    let stats = fs.close().unwrap();
    let took = t.elapsed();
    eprintln!(
        "measure: {} MB of data, bin/ holds {} entries; open + create + close took {took:?}, \
         read {} KiB, wrote {} KiB through the device; peak RSS {} KiB (before the edit {} KiB)",
        used.split_whitespace().next().unwrap_or("?"),
        entries.trim(),
        stats.bytes_read >> 10,
        stats.bytes_written >> 10,
        peak_rss_kib(),
        rss0
    );
    subroot_libext2fs::check(dev, &stats.touched_dirs).unwrap();
    e2fsck_clean(&img);
    assert!(
        stats.bytes_read < 8 << 20,
        "read {} bytes",
        stats.bytes_read
    );
    assert!(took.as_secs_f64() < 1.0, "took {took:?}");
}
