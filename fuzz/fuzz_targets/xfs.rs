//! Fuzz the XFS reader through its public API only (`XfsTree::open_with`,
//! `TreeSource::walk`): open arbitrary bytes as an XFS filesystem, walk every entry and
//! read every file (up to a budget).
//!
//! An XFS spreads its structures over its allocation groups, megabytes apart (mkfs.xfs
//! makes nothing under 300 MB unless run as xfstests does), too far for a fuzzer's inputs,
//! so an input is a list of records `[byte offset: u32 LE][length: u16 LE][bytes]` laid
//! over zeros (seeds.sh makes them from the non-zero blocks of mkfs.xfs images, the log
//! left out). The device is as long as the superblock claims (at most 1 GiB), which costs
//! no memory. The log is read as it is (`salvage`): a strict open refuses the zeros.
#![no_main]

#[path = "common/walk.rs"]
mod walk;

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use subroot_formats::block::BlockDevice;
use subroot_formats::xfs::XfsTree;
use subroot_formats::{Error, Result};

/// Largest device the records describe.
const MAX_LEN: u64 = 1 << 30;

/// Records laid over zeros, by start offset (where two overlap, the later-starting one
/// wins).
struct Sparse {
    records: BTreeMap<u64, Vec<u8>>,
    len: u64,
}

impl Sparse {
    fn parse(mut rest: &[u8]) -> Sparse {
        let mut records = BTreeMap::new();
        while rest.len() >= 6 {
            let off = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
            let n = usize::from(u16::from_le_bytes([rest[4], rest[5]])).min(rest.len() - 6);
            records.insert(off % MAX_LEN, rest[6..6 + n].to_vec());
            rest = &rest[6 + n..];
        }
        let mut s = Sparse {
            records,
            len: MAX_LEN,
        };
        // sb_blocksize (byte 4) times sb_dblocks (byte 8), big-endian.
        let mut sb = [0u8; 16];
        let _ = s.read_at(&mut sb, 0);
        let bs = u64::from(u32::from_be_bytes([sb[4], sb[5], sb[6], sb[7]]));
        let blocks =
            u64::from_be_bytes([sb[8], sb[9], sb[10], sb[11], sb[12], sb[13], sb[14], sb[15]]);
        s.len = bs.saturating_mul(blocks).clamp(1 << 20, MAX_LEN);
        s
    }
}

impl BlockDevice for Sparse {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if end > self.len {
            return Err(Error::OutOfRange {
                offset,
                len: buf.len() as u64,
                size: self.len,
            });
        }
        buf.fill(0);
        for (&at, bytes) in self.records.range(..end) {
            let rec_end = at + bytes.len() as u64;
            if rec_end <= offset {
                continue;
            }
            let from = at.max(offset);
            let to = rec_end.min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let dev = Sparse::parse(data);
    let Ok(tree) = XfsTree::open_with(dev, true) else {
        return;
    };
    walk::walk_all(&tree);
});
