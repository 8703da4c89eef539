//! A bounds-checked window of another device: a partition is a slice of its disk.

use super::{check_range, BlockDevice, Extent};
use crate::{Error, Result};

/// `len` bytes of `inner` starting at `start`.
#[derive(Debug, Clone)]
pub struct Slice<D> {
    inner: D,
    start: u64,
    len: u64,
}

impl<D: BlockDevice> Slice<D> {
    /// A window of `inner`; fails if it does not fit inside `inner`.
    pub fn new(inner: D, start: u64, len: u64) -> Result<Self> {
        let size = inner.len();
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::corrupt(format!(
                "a range of {len} bytes at offset {start} extends beyond the end of the {size}-byte device"
            )));
        }
        Ok(Slice { inner, start, len })
    }

    /// Offset of the window within the inner device.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The inner device.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: BlockDevice> BlockDevice for Slice<D> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        self.inner.read_at(buf, self.start + offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        self.inner.write_at(buf, self.start + offset)
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len, offset, len)?;
        let mut v = self.inner.extents(self.start + offset, len)?;
        for e in &mut v {
            e.offset -= self.start;
        }
        Ok(v)
    }

    fn format_name(&self) -> &'static str {
        self.inner.format_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn window_bounds() {
        let m = MemoryDevice::from_vec((0..=255u8).collect());
        assert!(Slice::new(&m, 200, 57).is_err());
        let s = Slice::new(&m, 10, 20).unwrap();
        let mut b = [0u8; 5];
        s.read_at(&mut b, 15).unwrap();
        assert_eq!(b, [25, 26, 27, 28, 29]);
        assert!(s.read_at(&mut b, 16).is_err());
        s.write_at(&[1, 2], 0).unwrap();
        m.read_at(&mut b[..2], 10).unwrap();
        assert_eq!(&b[..2], &[1, 2]);
    }
}
