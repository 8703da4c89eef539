//! [`Splice`]: a device that shows `base` with one byte range replaced by another device —
//! how a rebuilt filesystem is put back into its partition. Everything outside the range
//! (boot code, the GPT, other partitions) reads from `base` unchanged, and the extent map
//! merges both sides, so the output image stays as sparse as its sources.

use super::{check_range, push_extent, BlockDevice, Extent};
use crate::{Error, Result};

/// `base`, with `[start, start + replacement.len())` read from `replacement` instead.
#[derive(Debug)]
pub struct Splice<B, R> {
    base: B,
    start: u64,
    replacement: R,
}

impl<B: BlockDevice, R: BlockDevice> Splice<B, R> {
    /// Fails when the replacement does not fit inside `base` at `start`.
    pub fn new(base: B, start: u64, replacement: R) -> Result<Self> {
        let len = replacement.len();
        if start.checked_add(len).is_none_or(|end| end > base.len()) {
            return Err(Error::InvalidArgument(format!(
                "a {len}-byte replacement at offset {start} does not fit in a {}-byte device",
                base.len()
            )));
        }
        Ok(Splice {
            base,
            start,
            replacement,
        })
    }

    fn end(&self) -> u64 {
        self.start + self.replacement.len()
    }

    /// `[offset, offset + len)` cut at the replaced range: the part before it, the part
    /// inside it and the part after it, as `(offset, len, inside)`; parts may be empty.
    fn parts(&self, offset: u64, len: u64) -> [(u64, u64, bool); 3] {
        let end = offset + len;
        let clip = |from: u64, to: u64, inside| (from, to.saturating_sub(from), inside);
        [
            clip(offset, end.min(self.start), false),
            clip(offset.max(self.start), end.min(self.end()), true),
            clip(offset.max(self.end()), end, false),
        ]
    }
}

impl<B: BlockDevice, R: BlockDevice> BlockDevice for Splice<B, R> {
    fn len(&self) -> u64 {
        self.base.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64)?;
        for (o, l, inside) in self.parts(offset, buf.len() as u64) {
            if l == 0 {
                continue;
            }
            let out = &mut buf[(o - offset) as usize..(o - offset + l) as usize];
            if inside {
                self.replacement.read_at(out, o - self.start)?;
            } else {
                self.base.read_at(out, o)?;
            }
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len(), offset, len)?;
        let mut out = Vec::new();
        for (o, l, inside) in self.parts(offset, len) {
            if l == 0 {
                continue;
            }
            let part = if inside {
                let mut v = self.replacement.extents(o - self.start, l)?;
                v.iter_mut().for_each(|e| e.offset += self.start);
                v
            } else {
                self.base.extents(o, l)?
            };
            part.into_iter().for_each(|e| push_extent(&mut out, e));
        }
        Ok(out)
    }

    fn format_name(&self) -> &'static str {
        self.base.format_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{ExtentKind, MemoryDevice, Zeros};

    #[test]
    fn reads_cross_the_seams() {
        let base = MemoryDevice::from_vec((0..100u8).collect());
        let rep = MemoryDevice::from_vec(vec![200; 10]);
        let s = Splice::new(&base, 40, &rep).unwrap();
        let mut all = vec![0u8; 100];
        s.read_at(&mut all, 0).unwrap();
        for (i, &b) in all.iter().enumerate() {
            let want = if (40..50).contains(&i) { 200 } else { i as u8 };
            assert_eq!(b, want, "byte {i}");
        }
        let mut mid = [0u8; 4];
        s.read_at(&mut mid, 38).unwrap();
        assert_eq!(mid, [38, 39, 200, 200]);
        s.read_at(&mut mid, 48).unwrap();
        assert_eq!(mid, [200, 200, 50, 51]);
        s.read_at(&mut mid, 42).unwrap();
        assert_eq!(mid, [200; 4]);
        assert!(Splice::new(&base, 95, &rep).is_err());
    }

    #[test]
    fn extents_merge_both_sides() {
        let base = MemoryDevice::new(5 * 4096);
        base.write_at(&[1; 4096], 0).unwrap();
        let rep = Zeros(8192);
        let s = Splice::new(&base, 4096, rep).unwrap();
        let e = s.extents(0, 5 * 4096).unwrap();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].kind, e[0].len), (ExtentKind::Data, 4096));
        assert_eq!(
            (e[1].kind, e[1].offset, e[1].len),
            (ExtentKind::Zero, 4096, 4 * 4096)
        );
        let part = s.extents(100, 8000).unwrap();
        assert_eq!(part.iter().map(|x| x.len).sum::<u64>(), 8000);
    }
}
