//! Logical-to-physical block mapping: the common run type and the ext2/3 indirect map
//! (12 direct pointers, then single, double and triple indirect blocks).

use super::bytes::le32;
use crate::{Error, Result};
use std::sync::Arc;

/// What a run of logical blocks maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Allocated blocks starting at this physical block.
    Data(u64),
    /// Allocated but uninitialised (an unwritten extent): reads as zeros.
    Zero,
    /// Not allocated (a hole): reads as zeros.
    Hole,
}

/// `len` logical blocks from `lblk` with one kind (physically contiguous for data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub lblk: u64,
    pub len: u64,
    pub kind: RunKind,
}

/// What the mappers need from the filesystem.
pub struct MapCtx<'a> {
    /// The inode being mapped (for messages and checksums).
    pub ino: u32,
    /// Bytes per block.
    pub block_size: u32,
    /// Blocks in the filesystem: every pointer must lie below.
    pub blocks_count: u64,
    /// Blocks per allocation cluster (1 unless bigalloc): an extent must map logical and
    /// physical blocks at the same offset within their clusters.
    pub cluster_ratio: u64,
    /// The inode's checksum seed when metadata_csum is on (extent blocks).
    pub inode_seed: Option<u32>,
    /// Reads one metadata block (cached).
    pub read: &'a dyn Fn(u64) -> Result<Arc<Vec<u8>>>,
}

impl MapCtx<'_> {
    /// Fail unless `[start, start + len)` lies within the filesystem.
    pub fn check_blocks(&self, start: u64, len: u64, what: &str) -> Result<()> {
        match start.checked_add(len) {
            Some(end) if start != 0 && end <= self.blocks_count => Ok(()),
            _ => Err(Error::corrupt(format!(
                "inode {}: {what} points to blocks {start}..{} outside the filesystem (1..{} valid)",
                self.ino,
                start.saturating_add(len),
                self.blocks_count
            ))),
        }
    }
}

/// Map logical block `lblk` through an indirect block map rooted in `i_block`.
pub fn map_indirect(ctx: &MapCtx<'_>, i_block: &[u8], lblk: u64) -> Result<Run> {
    let per = u64::from(ctx.block_size / 4);
    if lblk < 12 {
        let ptrs: Vec<u32> = (0..12).map(|i| le32(i_block, i * 4)).collect();
        return run_in_array(ctx, &ptrs, lblk as usize, lblk);
    }
    let mut rel = lblk - 12;
    let mut span = per;
    let mut levels = 1;
    let mut root_slot = 12;
    while rel >= span {
        rel -= span;
        levels += 1;
        root_slot += 1;
        if levels > 3 {
            // Beyond the triple-indirect range: nothing can be mapped there.
            return Ok(Run {
                lblk,
                len: u64::MAX / 2,
                kind: RunKind::Hole,
            });
        }
        span *= per;
    }
    let mut blk = u64::from(le32(i_block, root_slot * 4));
    // `span` covers the subtree under `blk`; descend one level per pointer block.
    for level in (1..=levels).rev() {
        if blk == 0 {
            return Ok(Run {
                lblk,
                len: span - rel,
                kind: RunKind::Hole,
            });
        }
        ctx.check_blocks(blk, 1, "an indirect block")?;
        let data = (ctx.read)(blk)?;
        let ptrs: Vec<u32> = (0..per as usize).map(|i| le32(&data, i * 4)).collect();
        span /= per;
        let idx = (rel / span) as usize;
        if level == 1 {
            return run_in_array(ctx, &ptrs, idx, lblk);
        }
        rel %= span;
        blk = u64::from(ptrs.get(idx).copied().unwrap_or(0));
    }
    Err(Error::corrupt(format!(
        "inode {}: indirect map walk for block {lblk} did not end",
        ctx.ino
    )))
}

/// The run starting at `ptrs[idx]`, extended while the following pointers continue it.
fn run_in_array(ctx: &MapCtx<'_>, ptrs: &[u32], idx: usize, lblk: u64) -> Result<Run> {
    let first = u64::from(ptrs.get(idx).copied().unwrap_or(0));
    let mut len = 1u64;
    for &p in ptrs.iter().skip(idx + 1) {
        let p = u64::from(p);
        let continues = if first == 0 { p == 0 } else { p == first + len };
        if !continues {
            break;
        }
        len += 1;
    }
    if first == 0 {
        return Ok(Run {
            lblk,
            len,
            kind: RunKind::Hole,
        });
    }
    ctx.check_blocks(first, len, "a block pointer")?;
    Ok(Run {
        lblk,
        len,
        kind: RunKind::Data(first),
    })
}
