//! Is the internal log clean? As the kernel's `xlog_find_head`/`xlog_find_tail` decide it:
//! find the head (where the cycle numbers stamped on every 512-byte log block drop), then
//! the last record header before it; the log is clean when that record is an unmount
//! record (one operation flagged `XLOG_UNMOUNT_TRANS`) ending exactly at the head. Anything
//! else means transactions a mount would replay, which a reader of the raw blocks misses.

use super::sb::Superblock;
use super::{be32, corrupt};
use crate::block::BlockDevice;
use crate::Result;

/// Basic block size of the log.
const BB: u64 = 512;
/// Record header magic.
const HEADER_MAGIC: u32 = 0xFEED_BABE;
/// `oh_flags`: the unmount record.
const UNMOUNT_TRANS: u8 = 0x20;
/// Log blocks searched back from the head for the last record header (records are at
/// most 256 KiB of data plus their headers).
const MAX_BACK: u64 = 1024;

/// Why the log is not clean, or `None` when it is.
pub fn dirty(dev: &dyn BlockDevice, sb: &Superblock) -> Result<Option<String>> {
    if sb.logstart == 0 {
        return Ok(Some(
            "its log is on an external device, which subroot cannot check".into(),
        ));
    }
    let start = sb.fsb_to_byte(sb.logstart).ok_or_else(|| {
        corrupt(format!(
            "the log starts outside the filesystem (block {})",
            sb.logstart
        ))
    })?;
    let nbb = u64::from(sb.logblocks) * u64::from(sb.block_size) / BB;
    if nbb < 2 || start + nbb * BB > dev.len() {
        return Err(corrupt(format!(
            "the log of {} blocks at byte {start} does not fit the device ({} bytes)",
            sb.logblocks,
            dev.len()
        )));
    }
    let read = |bb: u64| -> Result<[u8; BB as usize]> {
        let mut b = [0u8; BB as usize];
        dev.read_at(&mut b, start + (bb % nbb) * BB)?;
        Ok(b)
    };
    // Record headers start with their magic and carry the cycle after it.
    let cycle = |bb: u64| -> Result<u32> {
        let b = read(bb)?;
        Ok(match be32(&b, 0) {
            HEADER_MAGIC => be32(&b, 4),
            c => c,
        })
    };
    let first = cycle(0)?;
    let last = cycle(nbb - 1)?;
    let head = if first == last {
        nbb
    } else {
        let (mut lo, mut hi) = (0, nbb - 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if cycle(mid)? == last {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    };
    let mut rec = None;
    for back in 1..=MAX_BACK.min(nbb) {
        let bb = (head + nbb - back) % nbb;
        if be32(&read(bb)?, 0) == HEADER_MAGIC {
            rec = Some(bb);
            break;
        }
    }
    let Some(rec) = rec else {
        return Ok(Some(format!(
            "no log record header lies within {MAX_BACK} blocks before the log head"
        )));
    };
    let h = read(rec)?;
    let version = be32(&h, 8);
    let len = u64::from(be32(&h, 12));
    let ops = be32(&h, 40);
    let hsize = u64::from(be32(&h, 320));
    let hblks = if version & 2 != 0 && hsize > 32768 {
        hsize.div_ceil(32768)
    } else {
        1
    };
    let end = (rec + hblks + len.div_ceil(BB)) % nbb;
    let op_flags = read(rec + hblks)?[9];
    if ops == 1 && op_flags & UNMOUNT_TRANS != 0 && end == head % nbb {
        Ok(None)
    } else {
        Ok(Some(
            "its log holds transactions that were not written back (it was not unmounted \
             cleanly)"
                .into(),
        ))
    }
}
