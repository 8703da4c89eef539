//! A device seen at another length: cut short, or extended with zeros past the end of its
//! base (a disk being grown or shrunk, before anything is written).

use super::{check_range, push_extent, BlockDevice, Extent, ExtentKind};
use crate::Result;

/// `base` seen as `len` bytes: its first `len` bytes, then zeros when `len` is larger.
#[derive(Debug, Clone)]
pub struct Resized<D> {
    base: D,
    len: u64,
}

impl<D: BlockDevice> Resized<D> {
    pub fn new(base: D, len: u64) -> Self {
        Resized { base, len }
    }

    /// The bytes of `[offset, offset + len)` that lie inside the base.
    fn in_base(&self, offset: u64, len: u64) -> u64 {
        self.base.len().saturating_sub(offset).min(len)
    }
}

impl<D: BlockDevice> BlockDevice for Resized<D> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        let n = self.in_base(offset, buf.len() as u64) as usize;
        if n > 0 {
            self.base.read_at(&mut buf[..n], offset)?;
        }
        buf[n..].fill(0);
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len, offset, len)?;
        let n = self.in_base(offset, len);
        let mut out = if n > 0 {
            self.base.extents(offset, n)?
        } else {
            Vec::new()
        };
        push_extent(
            &mut out,
            Extent {
                offset: offset + n,
                len: len - n,
                kind: ExtentKind::Zero,
            },
        );
        Ok(out)
    }

    fn format_name(&self) -> &'static str {
        self.base.format_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn grown_reads_zeros_past_the_base_and_shrunk_is_cut() {
        let m = MemoryDevice::from_vec(vec![7u8; 100]);
        let g = Resized::new(&m, 300);
        let mut b = [1u8; 10];
        g.read_at(&mut b, 95).unwrap();
        assert_eq!(b, [7, 7, 7, 7, 7, 0, 0, 0, 0, 0]);
        let e = g.extents(50, 250).unwrap();
        assert_eq!(e.last().unwrap().kind, ExtentKind::Zero);
        assert_eq!(e.last().unwrap().offset, 100);
        assert_eq!(e.iter().map(|e| e.len).sum::<u64>(), 250);
        let s = Resized::new(&m, 40);
        assert!(s.read_at(&mut b, 35).is_err());
        assert_eq!(
            s.extents(0, 40).unwrap().iter().map(|e| e.len).sum::<u64>(),
            40
        );
    }
}
