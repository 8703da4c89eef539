//! Which 4 KiB blocks of a range differ between two devices of the same length: the changed
//! ranges of an edit that was made as a whole new filesystem (a rebuild, a FAT scratch copy)
//! rather than through a copy-on-write [`super::Overlay`], so that such edits can still be
//! written as an overlay or in place.
//!
//! Cost: both devices are read over the range, except where both report zeros
//! ([`BlockDevice::extents`]); memory is one window per device.

use super::{BlockDevice, Changed, ExtentKind};
use crate::{Error, Result};

/// The comparison granularity (the page size, and the smallest ext block worth tracking).
pub const DIFF_BLOCK: u64 = 4096;
/// Bytes compared per read.
const WINDOW: u64 = 1 << 20;

/// The ranges of `[offset, offset + len)` where `new` differs from `old`, at
/// [`DIFF_BLOCK`] granularity (clipped to the devices' length), sorted and merged.
pub fn changed_ranges(
    old: &dyn BlockDevice,
    new: &dyn BlockDevice,
    offset: u64,
    len: u64,
) -> Result<Vec<Changed>> {
    if old.len() != new.len() {
        return Err(Error::InvalidArgument(format!(
            "cannot compare devices of {} and {} bytes",
            old.len(),
            new.len()
        )));
    }
    super::check_range(old.len(), offset, len)?;
    let end = offset + len;
    let mut out: Vec<Changed> = Vec::new();
    let mut push = |start: u64, stop: u64| match out.last_mut() {
        Some(last) if last.offset + last.len == start => last.len += stop - start,
        _ => out.push(Changed {
            offset: start,
            len: stop - start,
        }),
    };
    let mut a = vec![0u8; WINDOW as usize];
    let mut b = vec![0u8; WINDOW as usize];
    let mut pos = offset;
    while pos < end {
        let n = WINDOW.min(end - pos);
        if both_zero(old, new, pos, n)? {
            pos += n;
            continue;
        }
        let (a, b) = (&mut a[..n as usize], &mut b[..n as usize]);
        old.read_at(a, pos)?;
        new.read_at(b, pos)?;
        // Blocks are aligned to the device, not to `offset`.
        let mut at = pos;
        while at < pos + n {
            let stop = ((at / DIFF_BLOCK + 1) * DIFF_BLOCK).min(pos + n);
            let (i, j) = ((at - pos) as usize, (stop - pos) as usize);
            if a[i..j] != b[i..j] {
                push(
                    at / DIFF_BLOCK * DIFF_BLOCK,
                    (stop.div_ceil(DIFF_BLOCK) * DIFF_BLOCK).min(old.len()),
                );
            }
            at = stop;
        }
        pos += n;
    }
    // Neighbouring windows can report the same block twice at an unaligned edge.
    out.dedup_by(|b, a| {
        if b.offset < a.offset + a.len {
            a.len = a.len.max(b.offset + b.len - a.offset);
            true
        } else {
            false
        }
    });
    Ok(out)
}

/// True when both devices say the whole range reads as zeros.
fn both_zero(old: &dyn BlockDevice, new: &dyn BlockDevice, pos: u64, n: u64) -> Result<bool> {
    let zero = |d: &dyn BlockDevice| -> Result<bool> {
        Ok(d.extents(pos, n)?
            .iter()
            .all(|e| e.kind == ExtentKind::Zero))
    };
    Ok(zero(old)? && zero(new)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn finds_changed_blocks_aligned_to_the_device() {
        let old = MemoryDevice::from_vec(vec![0u8; 5 * 4096 + 100]);
        let mut v = old.to_vec();
        v[4096 + 7] = 1; // block 1
        v[3 * 4096] = 1; // block 3
        v[5 * 4096 + 99] = 1; // the short tail block
        let new = MemoryDevice::from_vec(v);
        let c = changed_ranges(&old, &new, 0, old.len()).unwrap();
        let got: Vec<(u64, u64)> = c.iter().map(|c| (c.offset, c.len)).collect();
        assert_eq!(got, vec![(4096, 4096), (3 * 4096, 4096), (5 * 4096, 100)]);
        // An unaligned range still reports whole device blocks.
        let c = changed_ranges(&old, &new, 4096 + 5, 10).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].offset, c[0].len), (4096, 4096));
        assert!(changed_ranges(&old, &old, 0, old.len()).unwrap().is_empty());
    }
}
