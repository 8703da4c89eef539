//! The block-device trait every container implements and every reader reads through.
//!
//! Devices take `&self` for reads and writes so one device can be shared (behind an `Arc`)
//! by several slices and threads; implementations use interior mutability where they cache.
//! Besides bytes, a device reports which ranges hold data and which read as zeros
//! ([`BlockDevice::extents`]), so copies stay sparse and cost grows with the data in use.

mod adapter;
mod delta;
mod diff;
mod memory;
mod overlay;
mod raw;
mod resized;
mod slice;
mod splice;

pub(crate) use adapter::seek_target;
pub use adapter::DeviceIo;
pub use delta::{raw_plan, Changed, PlannedWrite, WritePlan};
pub use diff::{changed_ranges, DIFF_BLOCK};
pub use memory::MemoryDevice;
pub use overlay::{Overlay, Zeros};
pub(crate) use raw::file_len;
pub use raw::RawFile;
pub use resized::Resized;
pub use slice::Slice;
pub use splice::Splice;

use crate::{Error, Result};
use std::sync::Arc;

/// What a range of a device holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentKind {
    /// Bytes that must be read (they may still happen to be zero).
    Data,
    /// Bytes known to read as zero without reading them (a hole, an unallocated or zero cluster).
    Zero,
}

/// A run of a device with one [`ExtentKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
    pub kind: ExtentKind,
}

impl Extent {
    /// One past the last byte of the extent.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A random-access device of fixed length.
pub trait BlockDevice: Send + Sync {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// True when the device has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` from `offset`. Reading past the end is an error ([`Error::OutOfRange`]).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// Write `buf` at `offset`. Writing past the end is an error. Read-only devices
    /// return [`Error::ReadOnly`].
    fn write_at(&self, _buf: &[u8], _offset: u64) -> Result<()> {
        Err(Error::ReadOnly)
    }

    /// Make written data durable.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// The data/zero map of `[offset, offset + len)`, in order, covering exactly that range,
    /// with neighbours of the same kind merged. The default says "all data".
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len(), offset, len)?;
        Ok(if len == 0 {
            Vec::new()
        } else {
            vec![Extent {
                offset,
                len,
                kind: ExtentKind::Data,
            }]
        })
    }

    /// A short description of the container ("raw", "qcow2"), for messages.
    fn format_name(&self) -> &'static str {
        "device"
    }
}

/// Smart pointers and references to a device are devices: every method forwards.
macro_rules! forward_block_device {
    ($($ptr:ty),*) => {$(
        impl<T: BlockDevice + ?Sized> BlockDevice for $ptr {
            fn len(&self) -> u64 {
                (**self).len()
            }
            fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
                (**self).read_at(buf, offset)
            }
            fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
                (**self).write_at(buf, offset)
            }
            fn flush(&self) -> Result<()> {
                (**self).flush()
            }
            fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
                (**self).extents(offset, len)
            }
            fn format_name(&self) -> &'static str {
                (**self).format_name()
            }
        }
    )*};
}

forward_block_device!(Arc<T>, Box<T>, &T);

/// Check that `[offset, offset + len)` lies within a device of `size` bytes.
pub fn check_range(size: u64, offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::OutOfRange { offset, len, size }),
    }
}

/// Append `ext` to `out`, merging it with the last extent when adjacent and of the same kind.
pub fn push_extent(out: &mut Vec<Extent>, ext: Extent) {
    if ext.len == 0 {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.kind == ext.kind && last.end() == ext.offset {
            last.len += ext.len;
            return;
        }
    }
    out.push(ext);
}

/// True when every byte of `buf` is zero (fast path for sparse copies). One
/// implementation serves the whole crate: the early-exit check in `convert`.
pub fn is_zero(buf: &[u8]) -> bool {
    crate::sparse_copy::all_zero(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0; 4097]));
        let mut b = vec![0u8; 4097];
        b[4096] = 1;
        assert!(!is_zero(&b));
        b[4096] = 0;
        b[3] = 1;
        assert!(!is_zero(&b));
        assert!(is_zero(&[]));
    }

    #[test]
    fn extents_merge() {
        let mut v = Vec::new();
        push_extent(
            &mut v,
            Extent {
                offset: 0,
                len: 10,
                kind: ExtentKind::Data,
            },
        );
        push_extent(
            &mut v,
            Extent {
                offset: 10,
                len: 5,
                kind: ExtentKind::Data,
            },
        );
        push_extent(
            &mut v,
            Extent {
                offset: 15,
                len: 0,
                kind: ExtentKind::Zero,
            },
        );
        push_extent(
            &mut v,
            Extent {
                offset: 15,
                len: 5,
                kind: ExtentKind::Zero,
            },
        );
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].len, 15);
        assert_eq!(v[1].offset, 15);
    }

    #[test]
    fn range_checks() {
        assert!(check_range(10, 0, 10).is_ok());
        assert!(check_range(10, 5, 6).is_err());
        assert!(check_range(10, u64::MAX, 2).is_err());
    }
}
