//! Copy-on-write views: [`Overlay`] keeps writes over a read-only base, and [`Zeros`] is a
//! base of any length that reads as zeros.
//!
//! `create` writes a partition table onto `Overlay<Zeros>` and streams the result into a
//! raw or qcow2 file, so a 2 TiB disk costs a few sectors: written blocks stay in memory.
//! An image edit puts an overlay with a spill file over the input, so memory holds only an
//! index of the written blocks whatever the edit writes; [`Overlay::changed`] then says
//! which ranges the edit changed (for `--overlay` and `--in-place` outputs).

use super::{check_range, push_extent, BlockDevice, Changed, Extent, ExtentKind};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
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

/// Writes kept over a base device that is never written, at 4 KiB granularity: in memory
/// ([`Overlay::new`]) or in a spill file with only an index in memory
/// ([`Overlay::with_spill`]).
#[derive(Debug)]
pub struct Overlay<D> {
    base: D,
    blocks: RwLock<BTreeMap<u64, Block>>,
    /// Where block contents go in spill mode (slot `n` at byte `n * BLOCK`).
    spill: Option<File>,
}

/// Where the new contents of one written block are.
#[derive(Debug)]
enum Block {
    /// In memory (the block's length: 4 KiB, less for a partial last block).
    Memory(Box<[u8]>),
    /// In the spill file, at slot `n`.
    Slot(u64),
}

impl<D: BlockDevice> Overlay<D> {
    /// An overlay with no writes yet, keeping written blocks in memory.
    pub fn new(base: D) -> Self {
        Overlay {
            base,
            blocks: RwLock::new(BTreeMap::new()),
            spill: None,
        }
    }

    /// An overlay with no writes yet that keeps written blocks in `spill` (a temporary
    /// file opened read+write, made and removed by the caller): memory holds only the
    /// index of written blocks, a few dozen bytes per 4 KiB written.
    pub fn with_spill(base: D, spill: File) -> Self {
        Overlay {
            base,
            blocks: RwLock::new(BTreeMap::new()),
            spill: Some(spill),
        }
    }

    /// Bytes of the device changed by writes so far (whole 4 KiB blocks).
    pub fn dirty_bytes(&self) -> u64 {
        self.blocks.read().unwrap_or_else(|e| e.into_inner()).len() as u64 * BLOCK
    }

    /// The device underneath.
    pub fn base(&self) -> &D {
        &self.base
    }

    /// The ranges of the device written so far, in order, adjacent blocks merged, in whole
    /// 4 KiB blocks (the last one clipped to the device length).
    pub fn changed(&self) -> Vec<Changed> {
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        let len = self.len();
        let mut out: Vec<Changed> = Vec::new();
        for &i in blocks.keys() {
            let (start, end) = (i * BLOCK, ((i + 1) * BLOCK).min(len));
            match out.last_mut() {
                Some(last) if last.end() == start => last.len = end - last.offset,
                _ => out.push(Changed {
                    offset: start,
                    len: end - start,
                }),
            }
        }
        out
    }

    /// The length of block `index` (the last block of the device may be short).
    fn block_len(&self, index: u64) -> usize {
        BLOCK.min(self.base.len() - index * BLOCK) as usize
    }

    /// Copy bytes `inner..inner + out.len()` of the written block `b` into `out`.
    fn read_block(&self, b: &Block, inner: usize, out: &mut [u8]) -> Result<()> {
        match b {
            Block::Memory(m) => {
                out.copy_from_slice(&m[inner..inner + out.len()]);
                Ok(())
            }
            Block::Slot(n) => {
                let at = n * BLOCK + inner as u64;
                self.spill_file()?.read_exact_at(out, at).map_err(|e| {
                    Error::io(
                        format!(
                            "reading {} bytes at {at} of the overlay's spill file",
                            out.len()
                        ),
                        e,
                    )
                })
            }
        }
    }

    fn spill_file(&self) -> Result<&File> {
        self.spill
            .as_ref()
            .ok_or_else(|| Error::corrupt("an overlay block is in a spill file it does not have"))
    }

    /// The block `index` as the overlay sees it (for read-modify-write).
    fn load_block(&self, index: u64, blocks: &BTreeMap<u64, Block>) -> Result<Vec<u8>> {
        let mut b = vec![0u8; self.block_len(index)];
        match blocks.get(&index) {
            Some(written) => self.read_block(written, 0, &mut b)?,
            None => self.base.read_at(&mut b, index * BLOCK)?,
        }
        Ok(b)
    }

    /// Keep `data` (the whole block) as the new contents of block `index`.
    fn store_block(
        &self,
        index: u64,
        data: &[u8],
        blocks: &mut BTreeMap<u64, Block>,
    ) -> Result<()> {
        let Some(file) = &self.spill else {
            blocks.insert(index, Block::Memory(data.into()));
            return Ok(());
        };
        let slot = match blocks.get(&index) {
            Some(Block::Slot(n)) => *n,
            _ => blocks.len() as u64,
        };
        let at = slot * BLOCK;
        file.write_all_at(data, at).map_err(|e| {
            Error::io(
                format!(
                    "writing {} bytes at {at} of the overlay's spill file",
                    data.len()
                ),
                e,
            )
        })?;
        blocks.insert(index, Block::Slot(slot));
        Ok(())
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
                    self.read_block(b, (pos - index * BLOCK) as usize, out)?;
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
            let src = &buf[(pos - offset) as usize..(block_end - offset) as usize];
            if pos == index * BLOCK && src.len() == self.block_len(index) {
                // The whole block is overwritten: nothing to read first.
                self.store_block(index, src, &mut blocks)?;
            } else {
                let mut b = self.load_block(index, &blocks)?;
                let inner = (pos - index * BLOCK) as usize;
                b[inner..inner + src.len()].copy_from_slice(src);
                self.store_block(index, &b, &mut blocks)?;
            }
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

    /// The same writes through a memory overlay and a spill overlay read back the same,
    /// the spill overlay keeps no block contents in memory (its file holds them, one slot
    /// per block, rewritten in place), and both report the same changed ranges.
    #[test]
    fn spill_mode_matches_memory_mode() {
        let len = 5 * 4096 + 1000;
        let base = MemoryDevice::from_vec((0..len).map(|i| (i % 253) as u8).collect());
        let spill = tempfile::tempfile().unwrap();
        let mem = Overlay::new(&base);
        let sp = Overlay::with_spill(&base, spill.try_clone().unwrap());
        let writes: [(u64, &[u8]); 6] = [
            (4094, &[1, 2, 3]),
            (3 * 4096, &[7; 4096]),
            (3 * 4096 + 10, &[8; 5]),
            (len as u64 - 1, &[9]),
            (5 * 4096, &[6; 1000]),
            (0, &[4; 2]),
        ];
        for (off, data) in writes {
            mem.write_at(data, off).unwrap();
            sp.write_at(data, off).unwrap();
        }
        let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
        mem.read_at(&mut a, 0).unwrap();
        sp.read_at(&mut b, 0).unwrap();
        assert_eq!(a, b);
        let mut expect: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        for (off, data) in writes {
            expect[off as usize..off as usize + data.len()].copy_from_slice(data);
        }
        assert_eq!(a, expect);
        // Blocks 0, 1, 3, 5 written; block 3 twice, in one slot.
        assert_eq!(spill.metadata().unwrap().len(), 3 * 4096 + 1000);
        let changed = vec![
            Changed {
                offset: 0,
                len: 8192,
            },
            Changed {
                offset: 3 * 4096,
                len: 4096,
            },
            Changed {
                offset: 5 * 4096,
                len: 1000,
            },
        ];
        assert_eq!(mem.changed(), changed);
        assert_eq!(sp.changed(), changed);
        assert_eq!(
            sp.extents(0, len as u64).unwrap(),
            mem.extents(0, len as u64).unwrap()
        );
        // Unaligned reads across written and unwritten blocks.
        for (off, n) in [(4000u64, 300usize), (8190, 9000), (len as u64 - 5, 5)] {
            let (mut x, mut y) = (vec![0u8; n], vec![0u8; n]);
            mem.read_at(&mut x, off).unwrap();
            sp.read_at(&mut y, off).unwrap();
            assert_eq!(x, y);
            assert_eq!(x, expect[off as usize..off as usize + n]);
        }
    }

    /// Written blocks are data even when they hold zeros; over a base with holes the
    /// unwritten parts keep the base's kind.
    #[test]
    fn extents_over_a_sparse_base() {
        let spill = tempfile::tempfile().unwrap();
        let o = Overlay::with_spill(Zeros(1 << 20), spill);
        o.write_at(&[0; 4096], 8192).unwrap();
        let e = o.extents(0, 1 << 20).unwrap();
        assert_eq!(
            e.iter().map(|x| (x.offset, x.kind)).collect::<Vec<_>>(),
            [
                (0, ExtentKind::Zero),
                (8192, ExtentKind::Data),
                (12288, ExtentKind::Zero)
            ]
        );
    }
}
