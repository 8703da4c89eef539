//! The block map of an inode fork: extent records (`xfs_bmbt_rec`, 128 bits) kept in the
//! inode or in a B+tree (`xfs_bmdr_block` root in the inode, `BMAP`/`BMA3` blocks below),
//! turned into a checked, sorted list of [`Mapping`]s.

use super::inode::{Fork, Inode, FMT_BTREE, FMT_EXTENTS};
use super::sb::Superblock;
use super::{be16, be64, corrupt, crc_ok};
use crate::block::BlockDevice;
use crate::Result;

/// Deepest B+tree followed (XFS's own limit is 9 for the largest forks).
const MAX_LEVELS: u16 = 10;

/// One extent of a fork: `len` blocks at fork block `off` stored at filesystem block
/// `start`; `unwritten` extents read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub off: u64,
    pub len: u64,
    pub start: u64,
    pub unwritten: bool,
}

impl Mapping {
    pub fn end(&self) -> u64 {
        self.off + self.len
    }
}

/// Decode one `xfs_bmbt_rec`.
fn record(b: &[u8], at: usize) -> Mapping {
    let l0 = be64(b, at);
    let l1 = be64(b, at + 8);
    Mapping {
        unwritten: l0 >> 63 != 0,
        off: (l0 & ((1 << 63) - 1)) >> 9,
        start: ((l0 & 0x1ff) << 43) | (l1 >> 21),
        len: l1 & ((1 << 21) - 1),
    }
}

/// The block map of fork `which` of `inode` (empty for local and device forks), sorted by
/// offset, each extent checked to lie inside the filesystem and none overlapping.
pub fn fork_map(
    dev: &dyn BlockDevice,
    sb: &Superblock,
    inode: &Inode,
    which: Fork,
) -> Result<Vec<Mapping>> {
    let fork = inode.fork(which);
    let n = inode.fork_extents(which);
    let what = || match which {
        Fork::Data => format!("inode {}", inode.ino),
        Fork::Attr => format!("inode {} (attribute fork)", inode.ino),
    };
    let mut out = Vec::new();
    match inode.fork_format(which) {
        FMT_EXTENTS => {
            if n * 16 > fork.len() as u64 {
                return Err(corrupt(format!(
                    "{}: {n} extents do not fit its {}-byte fork",
                    what(),
                    fork.len()
                )));
            }
            out.extend((0..n as usize).map(|i| record(fork, i * 16)));
        }
        FMT_BTREE => {
            let level = be16(fork, 0);
            let numrecs = usize::from(be16(fork, 2));
            let maxrecs = fork.len().saturating_sub(4) / 16;
            if level == 0 || level > MAX_LEVELS || numrecs == 0 || numrecs > maxrecs {
                return Err(corrupt(format!(
                    "{}: block map root of level {level} with {numrecs} records (at most \
                     {maxrecs} fit)",
                    what()
                )));
            }
            let mut walk = Walk {
                dev,
                sb,
                owner: inode.ino,
                limit: n,
                blocks_left: inode.nblocks.clamp(1, sb.dblocks),
                out: &mut out,
                what: &what,
            };
            for i in 0..numrecs {
                walk.node(be64(fork, 4 + maxrecs * 8 + i * 8), level - 1)?;
            }
        }
        _ => return Ok(out),
    }
    if out.len() as u64 != n {
        return Err(corrupt(format!(
            "{}: the fork says {n} extents, its block map holds {}",
            what(),
            out.len()
        )));
    }
    let mut prev_end = 0;
    for m in &out {
        let last = m.start.checked_add(m.len.saturating_sub(1));
        let inside = m.len > 0
            && m.end() < 1u64 << (63 - sb.blocklog)
            && sb.fsb_to_byte(m.start).is_some()
            && last.is_some_and(|l| {
                sb.fsb_to_byte(l).is_some() && l >> sb.agblklog == m.start >> sb.agblklog
            });
        if !inside || m.off < prev_end {
            return Err(corrupt(format!(
                "{}: extent of {} blocks at file block {} (disk block {}) is out of order or \
                 outside the filesystem",
                what(),
                m.len,
                m.off,
                m.start
            )));
        }
        prev_end = m.end();
    }
    Ok(out)
}

/// A walk down a block map B+tree, bounded by the fork's extent count and block count.
struct Walk<'a, F: Fn() -> String> {
    dev: &'a dyn BlockDevice,
    sb: &'a Superblock,
    owner: u64,
    limit: u64,
    blocks_left: u64,
    out: &'a mut Vec<Mapping>,
    what: &'a F,
}

impl<F: Fn() -> String> Walk<'_, F> {
    fn node(&mut self, fsb: u64, level: u16) -> Result<()> {
        let sb = self.sb;
        let bad = |m: String| corrupt(format!("{}: block map block {fsb}: {m}", (self.what)()));
        if self.blocks_left == 0 {
            return Err(bad(
                "the block map has more blocks than the inode (a loop?)".into(),
            ));
        }
        self.blocks_left -= 1;
        let at = sb
            .fsb_to_byte(fsb)
            .ok_or_else(|| bad("lies outside the filesystem".into()))?;
        let bs = sb.block_size as usize;
        if at + bs as u64 > self.dev.len() {
            return Err(bad(format!(
                "lies beyond the end of the device ({} bytes)",
                self.dev.len()
            )));
        }
        let mut b = vec![0u8; bs];
        self.dev.read_at(&mut b, at)?;
        let (magic, hdr): (&[u8], usize) = if sb.v5() {
            (b"BMA3", 72)
        } else {
            (b"BMAP", 24)
        };
        if &b[..4] != magic {
            return Err(bad(format!(
                "expected the magic {:?}, found {:02x?}",
                String::from_utf8_lossy(magic),
                &b[..4]
            )));
        }
        if sb.v5() && (!crc_ok(&b, 64) || be64(&b, 56) != self.owner) {
            return Err(bad("its CRC or owner does not match".into()));
        }
        let lvl = be16(&b, 4);
        let numrecs = usize::from(be16(&b, 6));
        if lvl != level {
            return Err(bad(format!("level {lvl}, expected {level}")));
        }
        if level == 0 {
            if numrecs == 0 || numrecs > (bs - hdr) / 16 {
                return Err(bad(format!(
                    "a leaf of {numrecs} records (it holds 1 to {})",
                    (bs - hdr) / 16
                )));
            }
            if self.out.len() + numrecs > self.limit as usize {
                return Err(bad(format!(
                    "more extents than the {} the inode counts",
                    self.limit
                )));
            }
            self.out
                .extend((0..numrecs).map(|i| record(&b, hdr + i * 16)));
            return Ok(());
        }
        let maxrecs = (bs - hdr) / 16;
        if numrecs == 0 || numrecs > maxrecs {
            return Err(bad(format!("{numrecs} pointers (at most {maxrecs} fit)")));
        }
        for i in 0..numrecs {
            let ptr = be64(&b, hdr + maxrecs * 8 + i * 8);
            self.node(ptr, level - 1)?;
        }
        Ok(())
    }
}

/// Fill `buf` from fork byte `off` through the fork's map; a block not mapped (or
/// unwritten) there is an error (metadata forks have no holes where they are read).
pub fn read_fork(
    dev: &dyn BlockDevice,
    sb: &Superblock,
    map: &[Mapping],
    off: u64,
    buf: &mut [u8],
) -> Result<()> {
    let bs = u64::from(sb.block_size);
    let mut done = 0usize;
    while done < buf.len() {
        let pos = off + done as u64;
        let blk = pos >> sb.blocklog;
        let i = map.partition_point(|m| m.end() <= blk);
        let m = map
            .get(i)
            .filter(|m| m.off <= blk && !m.unwritten)
            .ok_or_else(|| corrupt(format!("fork block {blk} is not mapped")))?;
        let in_ext = pos - m.off * bs;
        let n = ((m.len * bs - in_ext) as usize).min(buf.len() - done);
        let at = sb
            .fsb_to_byte(m.start)
            .ok_or_else(|| corrupt(format!("disk block {} is outside", m.start)))?
            + in_ext;
        if at + n as u64 > dev.len() {
            return Err(corrupt(format!(
                "disk block {} lies beyond the end of the device ({} bytes): the image is \
                 truncated",
                (at >> sb.blocklog),
                dev.len()
            )));
        }
        dev.read_at(&mut buf[done..done + n], at)?;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmbt_record_fields() {
        // unwritten, startoff 5, startblock split over both words, blockcount 7
        let start = (3u64 << 43) | 0x12345;
        let l0: u64 = (1 << 63) | (5 << 9) | (start >> 43);
        let l1: u64 = ((start & ((1 << 43) - 1)) << 21) | 7;
        let mut b = l0.to_be_bytes().to_vec();
        b.extend_from_slice(&l1.to_be_bytes());
        assert_eq!(
            record(&b, 0),
            Mapping {
                off: 5,
                len: 7,
                start,
                unwritten: true
            }
        );
    }
}
