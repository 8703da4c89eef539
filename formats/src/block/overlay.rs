//! Copy-on-write views: [`Overlay`] keeps writes in memory over a read-only base, and
//! [`Zeros`] is a base of any length that reads as zeros.
//!
//! `create` writes a partition table onto `Overlay<Zeros>` and streams the result into a
//! raw or qcow2 file, so a 2 TiB disk costs a few sectors. Memory grows with the bytes
//! written (in 4 KiB blocks), never with the device size.

use super::{check_range, push_extent, BlockDevice, Extent, ExtentKind};
use crate::Result;
use std::collections::BTreeMap;
use std::sync::RwLock;

const BLOCK: u64 = 4096;

/// A device of `len` bytes that reads as zeros and has no data extents.
#[derive(Debug, Clone, Copy)]
pub struct Zeros(pub u64);

impl BlockDevice for Zeros {
    fn len(&self) -> u64 {
        self.0
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.0, offset, buf.len() as u64)?;
        buf.fill(0);
        Ok(())
    }
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.0, offset, len)?;
        let mut v = Vec::new();
        push_extent(
            &mut v,
            Extent {
                offset,
                len,
                kind: ExtentKind::Zero,
            },
        );
        Ok(v)
    }
    fn format_name(&self) -> &'static str {
        "zeros"
    }
}

/// Writes kept in memory (4 KiB granularity) over a base device that is never written.
#[derive(Debug)]
pub struct Overlay<D> {
    base: D,
    blocks: RwLock<BTreeMap<u64, Box<[u8]>>>,
}

impl<D: BlockDevice> Overlay<D> {
    /// An overlay with no writes yet.
    pub fn new(base: D) -> Self {
        Overlay {
            base,
            blocks: RwLock::new(BTreeMap::new()),
        }
    }

    /// Bytes held in memory by writes so far.
    pub fn dirty_bytes(&self) -> u64 {
        self.blocks.read().unwrap_or_else(|e| e.into_inner()).len() as u64 * BLOCK
    }

    /// The device underneath.
    pub fn base(&self) -> &D {
        &self.base
    }

    /// The block `index` as the overlay sees it (for read-modify-write).
    fn load_block(&self, index: u64, blocks: &BTreeMap<u64, Box<[u8]>>) -> Result<Box<[u8]>> {
        if let Some(b) = blocks.get(&index) {
            return Ok(b.clone());
        }
        let start = index * BLOCK;
        let len = BLOCK.min(self.base.len() - start);
        let mut b = vec![0u8; len as usize].into_boxed_slice();
        self.base.read_at(&mut b, start)?;
        Ok(b)
    }
}

impl<D: BlockDevice> BlockDevice for Overlay<D> {
    fn len(&self) -> u64 {
        self.base.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64)?;
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        // Copy from overlay blocks where present; read runs of untouched blocks from the base.
        while pos < end {
            let index = pos / BLOCK;
            let block_end = ((index + 1) * BLOCK).min(end);
            let out = &mut buf[(pos - offset) as usize..(block_end - offset) as usize];
            match blocks.get(&index) {
                Some(b) => {
                    let inner = (pos - index * BLOCK) as usize;
                    out.copy_from_slice(&b[inner..inner + out.len()]);
                    pos = block_end;
                }
                None => {
                    // Extend the run up to the next overlay block.
                    let next_dirty = blocks
                        .range(index + 1..)
                        .next()
                        .map(|(&i, _)| i * BLOCK)
                        .unwrap_or(u64::MAX);
                    let run_end = next_dirty.min(end);
                    let out = &mut buf[(pos - offset) as usize..(run_end - offset) as usize];
                    self.base.read_at(out, pos)?;
                    pos = run_end;
                }
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64)?;
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        while pos < end {
            let index = pos / BLOCK;
            let block_end = ((index + 1) * BLOCK).min(end);
            let mut b = self.load_block(index, &blocks)?;
            let inner = (pos - index * BLOCK) as usize;
            b[inner..inner + (block_end - pos) as usize]
                .copy_from_slice(&buf[(pos - offset) as usize..(block_end - offset) as usize]);
            blocks.insert(index, b);
            pos = block_end;
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len(), offset, len)?;
        let end = offset + len;
        let base = self.base.extents(offset, len)?;
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        let first = offset / BLOCK;
        let last = end.div_ceil(BLOCK);
        let mut out = Vec::new();
        let mut pos = offset;
        // Overlay blocks are data; between them, the base's map applies.
        let mut base_iter = base.into_iter().peekable();
        for (&i, _) in blocks.range(first..last) {
            let (bs, be) = ((i * BLOCK).max(offset), ((i + 1) * BLOCK).min(end));
            emit_base(&mut out, &mut base_iter, pos, bs);
            push_extent(
                &mut out,
                Extent {
                    offset: bs,
                    len: be - bs,
                    kind: ExtentKind::Data,
                },
            );
            pos = be;
        }
        emit_base(&mut out, &mut base_iter, pos, end);
        Ok(out)
    }

    fn format_name(&self) -> &'static str {
        self.base.format_name()
    }
}

/// Push the base extents clipped to `[from, to)`, consuming those that end before `to`.
fn emit_base(
    out: &mut Vec<Extent>,
    base: &mut std::iter::Peekable<std::vec::IntoIter<Extent>>,
    from: u64,
    to: u64,
) {
    while let Some(e) = base.peek().copied() {
        if e.offset >= to {
            break;
        }
        let (s, t) = (e.offset.max(from), e.end().min(to));
        if s < t {
            push_extent(
                out,
                Extent {
                    offset: s,
                    len: t - s,
                    kind: e.kind,
                },
            );
        }
        if e.end() <= to {
            base.next();
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemoryDevice;

    #[test]
    fn writes_stay_in_memory() {
        let base = MemoryDevice::from_vec(vec![5u8; 20000]);
        let o = Overlay::new(&base);
        o.write_at(&[1, 2, 3], 4094).unwrap();
        let mut b = [0u8; 6];
        o.read_at(&mut b, 4093).unwrap();
        assert_eq!(b, [5, 1, 2, 3, 5, 5]);
        base.read_at(&mut b, 4093).unwrap();
        assert_eq!(b, [5; 6]);
        assert_eq!(o.dirty_bytes(), 8192);
        // The tail block is partial (20000 is not a multiple of 4096).
        o.write_at(&[9], 19999).unwrap();
        let mut t = [0u8; 2];
        o.read_at(&mut t, 19998).unwrap();
        assert_eq!(t, [5, 9]);
    }

    #[test]
    fn extents_mark_writes_as_data() {
        let o = Overlay::new(Zeros(1 << 30));
        o.write_at(&[1; 512], 0).unwrap();
        o.write_at(&[1; 512], (1 << 30) - 512).unwrap();
        let e = o.extents(0, 1 << 30).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].kind, e[0].len), (ExtentKind::Data, 4096));
        assert_eq!(e[1].kind, ExtentKind::Zero);
        assert_eq!(
            (e[2].kind, e[2].offset),
            (ExtentKind::Data, (1 << 30) - 4096)
        );
        let mid = o.extents(100, 8000).unwrap();
        assert_eq!(mid.iter().map(|x| x.len).sum::<u64>(), 8000);
        assert_eq!(mid[0].offset, 100);
    }
}
