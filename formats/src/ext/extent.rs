//! ext4 extent trees: header/index/leaf decoding with every bound checked, and the
//! lookup of the run containing a logical block.
//!
//! A tree node is a 12-byte header (magic 0xF30A, entries, max, depth) followed by 12-byte
//! entries; the root lives in the inode's i_block (max 4 entries), other nodes fill a block
//! and end with a crc32c tail under metadata_csum. Depth must decrease by exactly one per
//! level and never exceed 5, which also rules out loops.

use super::blockmap::{MapCtx, Run, RunKind};
use super::bytes::{le16, le32};
use super::csum::chksum;
use crate::{Error, Result};
use std::sync::Arc;

/// `eh_magic`.
pub const EXTENT_MAGIC: u16 = 0xF30A;
/// The kernel's `EXT4_MAX_EXTENT_DEPTH`.
pub const MAX_DEPTH: u16 = 5;
/// ee_len above this marks an uninitialised extent.
const INIT_MAX_LEN: u32 = 32768;

struct Header {
    entries: usize,
    depth: u16,
}

fn header(ctx: &MapCtx<'_>, node: &[u8], where_: &str) -> Result<Header> {
    let magic = le16(node, 0);
    if magic != EXTENT_MAGIC {
        return Err(Error::corrupt(format!(
            "inode {}: extent header in {where_} has magic 0x{magic:04x}, expected 0x{EXTENT_MAGIC:04x}",
            ctx.ino
        )));
    }
    let entries = usize::from(le16(node, 2));
    let max = usize::from(le16(node, 4));
    let depth = le16(node, 6);
    let capacity = node.len().saturating_sub(12) / 12;
    if entries > max || max > capacity {
        return Err(Error::corrupt(format!(
            "inode {}: extent header in {where_} claims {entries} entries of at most {max}, but the node holds {capacity}",
            ctx.ino
        )));
    }
    if depth > MAX_DEPTH {
        return Err(Error::corrupt(format!(
            "inode {}: extent tree depth {depth} in {where_} exceeds {MAX_DEPTH}",
            ctx.ino
        )));
    }
    Ok(Header { entries, depth })
}

fn verify_block_csum(ctx: &MapCtx<'_>, node: &[u8], blk: u64) -> Result<()> {
    let Some(seed) = ctx.inode_seed else {
        return Ok(());
    };
    let max = usize::from(le16(node, 4));
    let tail = 12 + 12 * max;
    if tail + 4 > node.len() {
        return Err(Error::corrupt(format!(
            "inode {}: extent block {blk} has no room for its checksum",
            ctx.ino
        )));
    }
    let want = chksum(seed, &node[..tail]);
    let stored = le32(node, tail);
    if want != stored {
        return Err(Error::corrupt(format!(
            "inode {}: extent block {blk} checksum 0x{stored:08x} does not match the computed 0x{want:08x}",
            ctx.ino
        )));
    }
    Ok(())
}

/// Check the entries of a node the way the kernel (`ext4_valid_extent_entries`) and e2fsck
/// do: every logical start at or after `lower` (the index entry that led here), starts
/// strictly increasing, leaf extents non-empty, not overlapping, ending by `limit` (the
/// next index entry's start) and aligned to the cluster under bigalloc. A lookup in a
/// node that breaks these would return some plausible but wrong block.
fn check_entries(
    ctx: &MapCtx<'_>,
    node: &[u8],
    h: &Header,
    where_: &str,
    lower: u64,
    limit: u64,
) -> Result<()> {
    let bad = |what: String| {
        Err(Error::corrupt(format!(
            "inode {}: extent {} in {where_}: {what}",
            ctx.ino,
            if h.depth == 0 { "leaf" } else { "index" }
        )))
    };
    let mut next_free = lower;
    for i in 0..h.entries {
        let e = &node[12 + i * 12..24 + i * 12];
        let start = u64::from(le32(e, 0));
        if start < next_free {
            return if i == 0 {
                bad(format!(
                    "entry 0 starts at logical block {start}, before {lower} where its index entry says the node begins"
                ))
            } else if h.depth == 0 {
                bad(format!(
                    "entry {i} starts at logical block {start}, inside or before entry {} (which ends at {next_free}): extents out of order or overlapping",
                    i - 1
                ))
            } else {
                bad(format!(
                    "entry {i} starts at logical block {start}, not after entry {} (at {}): index out of order",
                    i - 1,
                    next_free - 1
                ))
            };
        }
        if h.depth > 0 {
            next_free = start + 1;
            continue;
        }
        let raw_len = u32::from(le16(e, 4));
        let len = u64::from(if raw_len > INIT_MAX_LEN {
            raw_len - INIT_MAX_LEN
        } else {
            raw_len
        });
        if len == 0 {
            return bad(format!("entry {i} (logical block {start}) has length 0"));
        }
        let end = start + len;
        if end > limit {
            return bad(format!(
                "entry {i} covers logical blocks {start}..{end}, beyond {limit} where the next index entry begins"
            ));
        }
        let phys = (u64::from(le16(e, 6)) << 32) | u64::from(le32(e, 8));
        let r = ctx.cluster_ratio;
        if r > 1 && start % r != phys % r {
            return bad(format!(
                "entry {i} maps logical block {start} to physical block {phys}, which violates the cluster allocation rules ({r} blocks per cluster: both must lie at the same offset in their clusters)"
            ));
        }
        next_free = end;
    }
    Ok(())
}

/// The run of logical blocks containing `lblk`, from the extent tree whose root is `root`
/// (the 60 bytes of i_block).
pub fn map_extent(ctx: &MapCtx<'_>, root: &[u8], lblk: u64) -> Result<Run> {
    let end_of_space = 1u64 << 32;
    if lblk >= end_of_space {
        return Ok(Run {
            lblk,
            len: u64::MAX / 2,
            kind: RunKind::Hole,
        });
    }
    let mut node: Arc<Vec<u8>> = Arc::new(root.to_vec());
    let mut where_ = "the inode".to_string();
    let mut limit = end_of_space;
    let mut expect_depth: Option<u16> = None;
    let mut cur_blk: Option<u64> = None;
    let mut lower = 0u64;
    loop {
        let h = header(ctx, &node, &where_)?;
        if let Some(b) = cur_blk {
            verify_block_csum(ctx, &node, b)?;
        }
        if let Some(d) = expect_depth {
            if h.depth != d {
                return Err(Error::corrupt(format!(
                    "inode {}: extent node in {where_} has depth {}, expected {d}",
                    ctx.ino, h.depth
                )));
            }
        }
        check_entries(ctx, &node, &h, &where_, lower, limit)?;
        let ent = |i: usize| &node[12 + i * 12..24 + i * 12];
        if h.depth == 0 {
            let mut found: Option<usize> = None;
            for i in 0..h.entries {
                if u64::from(le32(ent(i), 0)) <= lblk {
                    found = Some(i);
                } else {
                    break;
                }
            }
            if let Some(i) = found {
                let e = ent(i);
                let start = u64::from(le32(e, 0));
                let raw_len = u32::from(le16(e, 4));
                let (len, uninit) = if raw_len > INIT_MAX_LEN {
                    (u64::from(raw_len - INIT_MAX_LEN), true)
                } else {
                    (u64::from(raw_len), false)
                };
                let phys = (u64::from(le16(e, 6)) << 32) | u64::from(le32(e, 8));
                if lblk < start + len {
                    ctx.check_blocks(phys, len, &format!("an extent in {where_}"))?;
                    let off = lblk - start;
                    let kind = if uninit {
                        RunKind::Zero
                    } else {
                        RunKind::Data(phys + off)
                    };
                    return Ok(Run {
                        lblk,
                        len: len - off,
                        kind,
                    });
                }
            }
            let next = match found {
                Some(i) if i + 1 < h.entries => u64::from(le32(ent(i + 1), 0)),
                None if h.entries > 0 => u64::from(le32(ent(0), 0)),
                _ => limit,
            };
            return Ok(Run {
                lblk,
                len: next.max(lblk + 1) - lblk,
                kind: RunKind::Hole,
            });
        }
        let mut found: Option<usize> = None;
        for i in 0..h.entries {
            if u64::from(le32(ent(i), 0)) <= lblk {
                found = Some(i);
            } else {
                break;
            }
        }
        let Some(i) = found else {
            let next = if h.entries > 0 {
                u64::from(le32(ent(0), 0))
            } else {
                limit
            };
            return Ok(Run {
                lblk,
                len: next.max(lblk + 1) - lblk,
                kind: RunKind::Hole,
            });
        };
        if i + 1 < h.entries {
            limit = u64::from(le32(ent(i + 1), 0));
        }
        let e = ent(i);
        lower = u64::from(le32(e, 0));
        let child = (u64::from(le16(e, 8)) << 32) | u64::from(le32(e, 4));
        ctx.check_blocks(child, 1, &format!("an extent index in {where_}"))?;
        let data = (ctx.read)(child)?;
        where_ = format!("block {child}");
        cur_blk = Some(child);
        expect_depth = Some(h.depth - 1);
        node = data;
    }
}
