//! Where the segments behind a gzip member start, without inflating it: what lets a walk
//! skip the rest of a gzip segment it no longer needs.
//!
//! A deflate stream does not say where it ends (only decoding it finds out), so the walk
//! looks from the other end: the segments that may follow a main archive (the one
//! `initrd add-subroot` appends, an extra archive) are small and end at the end of the
//! file. The first offset in the last [`WINDOW`] bytes from which the rest of the file
//! reads as complete, valid segments (each decoded to its end, gzip CRC and size checked,
//! cpio archives to their trailers) is where they start; with none, the member runs to
//! the end of the file. Inside a deflate stream such an offset would need a whole valid
//! member (header, stream, CRC-32 of its data) that happens to end where more valid
//! segments run exactly to the end of the file — not something compressed data holds by
//! chance. What this cannot find is a segment starting more than [`WINDOW`] bytes before
//! the end; its entries then count as the skipped part of the gzip member (see
//! `initrd::scan` for why that is acceptable and `--full-scan` for the way around it).

use super::compress::{detect, may_start_stream};
use super::segments::visit_entries;
use crate::block::{BlockDevice, Slice};
use crate::Result;

/// How far from the end of the file the segments behind a skipped gzip member are looked
/// for: the appended hook segment is a few KiB.
pub const WINDOW: u64 = 1 << 20;
/// The smallest gzip member (10-byte header, empty stream, 8-byte trailer).
const MIN_MEMBER: u64 = 20;

/// The offset where the segments behind the gzip member starting at `start` begin (the
/// end of `dev` when none follow); zero padding before them is counted in the member.
/// (Not generic: the walk it runs would instantiate it again for a slice of a slice.)
pub fn gzip_member_end(dev: &dyn BlockDevice, start: u64) -> Result<u64> {
    let len = dev.len();
    let lo = (start + MIN_MEMBER).max(len.saturating_sub(WINDOW));
    if lo >= len {
        return Ok(len);
    }
    let mut buf = vec![0u8; (len - lo) as usize];
    dev.read_at(&mut buf, lo)?;
    for i in 0..buf.len() {
        // Most offsets cannot start a segment: two bytes compared before the full check
        // (which cost a quarter of a gzip initrd's add-subroot, a MiB of offsets at a time).
        if !may_start_segment(buf[i], buf.get(i + 1).copied().unwrap_or(0)) {
            continue;
        }
        let p = lo + i as u64;
        let head = &buf[i..buf.len().min(i + 6)];
        let plain = head.starts_with(b"07070") && p % 4 == 0;
        if !plain && !matches!(detect(head), Ok(Some(_))) {
            continue;
        }
        let rest = Slice::new(dev, p, len - p)?;
        if visit_entries(&rest, |_, _, _| Ok(())).is_ok_and(|s| !s.is_empty()) {
            return Ok(p);
        }
    }
    Ok(len)
}

/// Whether a segment can start with the bytes `b0 b1`: `07` of a plain cpio header, or
/// the start of a compressed stream [`detect`] knows.
fn may_start_segment(b0: u8, b1: u8) -> bool {
    (b0, b1) == (b'0', b'7') || may_start_stream(b0, b1)
}
