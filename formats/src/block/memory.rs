//! An in-memory device, for tests and for small scratch images.

use super::{check_range, push_extent, BlockDevice, Extent, ExtentKind};
use crate::Result;
use std::sync::RwLock;

/// A device backed by a `Vec<u8>`. Its extent map reports all-zero 4 KiB blocks as zero.
#[derive(Debug, Default)]
pub struct MemoryDevice {
    data: RwLock<Vec<u8>>,
}

impl MemoryDevice {
    /// A zero-filled device of `len` bytes.
    pub fn new(len: usize) -> Self {
        Self::from_vec(vec![0; len])
    }

    /// A device holding `data`.
    pub fn from_vec(data: Vec<u8>) -> Self {
        MemoryDevice {
            data: RwLock::new(data),
        }
    }

    /// A copy of the contents.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl BlockDevice for MemoryDevice {
    fn len(&self) -> u64 {
        self.data.read().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        check_range(data.len() as u64, offset, buf.len() as u64)?;
        let o = offset as usize;
        buf.copy_from_slice(&data[o..o + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut data = self.data.write().unwrap_or_else(|e| e.into_inner());
        check_range(data.len() as u64, offset, buf.len() as u64)?;
        let o = offset as usize;
        data[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        check_range(data.len() as u64, offset, len)?;
        let mut out = Vec::new();
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let next = ((pos / 4096 + 1) * 4096).min(end);
            let chunk = &data[pos as usize..next as usize];
            let kind = if super::is_zero(chunk) {
                ExtentKind::Zero
            } else {
                ExtentKind::Data
            };
            push_extent(
                &mut out,
                Extent {
                    offset: pos,
                    len: next - pos,
                    kind,
                },
            );
            pos = next;
        }
        Ok(out)
    }

    fn format_name(&self) -> &'static str {
        "memory"
    }
}
