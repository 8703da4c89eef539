//! Fuzz the btrfs reader through its public API (`BtrfsTree::open`, `TreeSource::walk`,
//! `BtrfsFs::subvolumes`).
//!
//! A btrfs spreads its structures over MiBs (the superblock at 64 KiB, chunks from 1 MiB),
//! too far apart for a fuzzer's inputs, so an input is a list of records
//! `[page number: u16 LE][4096 bytes]` placed on a zeroed device of at most 16 MiB
//! (seeds.sh makes them from a small `mkfs.btrfs --mixed --rootdir` image).
#![no_main]

#[path = "common/walk.rs"]
mod walk;

use libfuzzer_sys::fuzz_target;
use subroot_formats::block::MemoryDevice;
use subroot_formats::btrfs::BtrfsTree;

const PAGE: usize = 4096;
/// Pages of the device at most (16 MiB).
const MAX_PAGES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut pages = Vec::new();
    for rec in data.chunks_exact(2 + PAGE) {
        let n = usize::from(u16::from_le_bytes([rec[0], rec[1]])) % MAX_PAGES;
        pages.push((n, &rec[2..]));
    }
    let Some(last) = pages.iter().map(|(n, _)| *n).max() else {
        return;
    };
    let mut dev = vec![0u8; (last + 1) * PAGE];
    for (n, p) in pages {
        dev[n * PAGE..(n + 1) * PAGE].copy_from_slice(p);
    }
    let Ok(tree) = BtrfsTree::open(MemoryDevice::from_vec(dev), None) else {
        return;
    };
    let _ = tree.fs().subvolumes();
    walk::walk_all(&tree);
});
