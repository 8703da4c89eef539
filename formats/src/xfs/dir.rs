//! Directories in the four v2 formats: short form (in the inode), block (one directory
//! block holding entries and their hash leaf), and leaf and node/B+tree (several data
//! blocks, hash leaves and free-space blocks). A listing only needs the entries, which all
//! live in the data blocks: those are the directory blocks the directory's block map places
//! below `XFS_DIR2_LEAF_OFFSET` (32 GiB), whatever the format.

use super::bmap::{fork_map, read_fork};
use super::inode::{Fork, Inode, FMT_BTREE, FMT_EXTENTS, FMT_LOCAL};
use super::sb::Superblock;
use super::{be16, be32, be64, corrupt, crc_ok};
use crate::block::BlockDevice;
use crate::Result;

/// Byte offset of the leaf section of a directory's address space.
const LEAF_OFFSET: u64 = 32 << 30;
/// Entries listed per directory before giving up (a directory block loop cannot make more
/// than its blocks hold, but a damaged map may repeat blocks).
const MAX_ENTRIES: usize = 1 << 24;

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
}

/// The entries of directory `inode` (without `.` and `..`), sorted by name; two entries of
/// one name are an error.
pub fn list(dev: &dyn BlockDevice, sb: &Superblock, inode: &Inode) -> Result<Vec<DirEntry>> {
    let mut v = match inode.format {
        FMT_LOCAL => short_form(sb, inode)?,
        FMT_EXTENTS | FMT_BTREE => blocks(dev, sb, inode)?,
        f => {
            return Err(corrupt(format!(
                "directory inode {}: data fork format {f} is not a directory format",
                inode.ino
            )))
        }
    };
    v.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = v.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(corrupt(format!(
            "directory inode {} has two entries named {:?}",
            inode.ino,
            String::from_utf8_lossy(&w[0].name)
        )));
    }
    Ok(v)
}

/// Check a name: not empty, no `/` or NUL.
fn check_name(ino: u64, name: &[u8]) -> Result<()> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(corrupt(format!(
            "directory inode {ino} has an entry named {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// A short-form directory (`xfs_dir2_sf_hdr` and entries, in the data fork).
fn short_form(sb: &Superblock, inode: &Inode) -> Result<Vec<DirEntry>> {
    let f = inode.fork(Fork::Data);
    let bad = |m: String| corrupt(format!("directory inode {} (short form): {m}", inode.ino));
    let count = usize::from(*f.first().unwrap_or(&0));
    let wide = f.get(1).is_some_and(|&n| n != 0);
    let inum = if wide { 8 } else { 4 };
    let read_ino = |at: usize| {
        if wide {
            be64(f, at)
        } else {
            u64::from(be32(f, at))
        }
    };
    let ft = usize::from(sb.ftype);
    let mut p = 2 + inum;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let namelen = usize::from(
            *f.get(p)
                .ok_or_else(|| bad(format!("entry {i} is cut off")))?,
        );
        let end = p + 3 + namelen + ft + inum;
        if end > f.len() {
            return Err(bad(format!("entry {i} runs past the end of the fork")));
        }
        let name = f[p + 3..p + 3 + namelen].to_vec();
        check_name(inode.ino, &name)?;
        out.push(DirEntry {
            name,
            ino: read_ino(p + 3 + namelen + ft),
        });
        p = end;
    }
    Ok(out)
}

/// The entries of the data blocks of a block, leaf or node directory.
fn blocks(dev: &dyn BlockDevice, sb: &Superblock, inode: &Inode) -> Result<Vec<DirEntry>> {
    let map = fork_map(dev, sb, inode, Fork::Data)?;
    let dbs = u64::from(sb.dir_block_size());
    let per = 1u64 << sb.dirblklog;
    let leaf_blk = LEAF_OFFSET >> sb.blocklog;
    let mut buf = vec![0u8; dbs as usize];
    let mut out = Vec::new();
    let mut next = 0u64;
    for m in map.iter().filter(|m| m.off < leaf_blk) {
        let first = (m.off / per).max(next);
        let last = (m.end().min(leaf_blk) - 1) / per;
        for db in first..=last {
            read_fork(dev, sb, &map, db * dbs, &mut buf).map_err(|e| {
                corrupt(format!(
                    "directory inode {}: data block {db}: {}",
                    inode.ino,
                    e.to_string().trim_start_matches("xfs: ")
                ))
            })?;
            data_block(sb, inode.ino, db, &buf, &mut out)?;
            if out.len() > MAX_ENTRIES {
                return Err(corrupt(format!(
                    "directory inode {} has more than {MAX_ENTRIES} entries",
                    inode.ino
                )));
            }
        }
        next = last + 1;
    }
    Ok(out)
}

/// The entries of one directory data block (`XD2B`/`XDB3` single-block form with its
/// trailing leaf, or `XD2D`/`XDD3` data block).
fn data_block(sb: &Superblock, ino: u64, db: u64, b: &[u8], out: &mut Vec<DirEntry>) -> Result<()> {
    let bad = |m: String| corrupt(format!("directory inode {ino}, data block {db}: {m}"));
    let (block_magic, data_magic, hdr): (&[u8], &[u8], usize) = if sb.v5() {
        (b"XDB3", b"XDD3", 64)
    } else {
        (b"XD2B", b"XD2D", 16)
    };
    let magic = &b[..4];
    let single = magic == block_magic;
    if !single && magic != data_magic {
        return Err(bad(format!(
            "expected the magic {:?} or {:?}, found {magic:02x?}",
            String::from_utf8_lossy(block_magic),
            String::from_utf8_lossy(data_magic)
        )));
    }
    if sb.v5() {
        if !crc_ok(b, 4) {
            return Err(bad("the CRC does not match its contents".into()));
        }
        if be64(b, 40) != ino {
            return Err(bad(format!("it belongs to inode {}", be64(b, 40))));
        }
    }
    let end = if single {
        let count = u64::from(be32(b, b.len() - 8));
        let end = (b.len() as u64 - 8).checked_sub(count * 8);
        match end {
            Some(e) if e >= hdr as u64 => e as usize,
            _ => return Err(bad(format!("its leaf of {count} entries does not fit"))),
        }
    } else {
        b.len()
    };
    let ft = usize::from(sb.ftype);
    let mut p = hdr;
    while p < end {
        if be16(b, p) == 0xffff {
            let len = usize::from(be16(b, p + 2));
            if len < 8 || len % 8 != 0 || p + len > end {
                return Err(bad(format!("a free region of {len} bytes at byte {p}")));
            }
            p += len;
            continue;
        }
        if p + 9 > end {
            return Err(bad(format!("the entry at byte {p} is cut off")));
        }
        let namelen = usize::from(b[p + 8]);
        let size = (8 + 1 + namelen + ft + 2 + 7) & !7;
        if p + size > end || namelen == 0 {
            return Err(bad(format!(
                "the entry at byte {p} ({namelen}-byte name) runs past the data"
            )));
        }
        let name = &b[p + 9..p + 9 + namelen];
        if name != b"." && name != b".." {
            check_name(ino, name)?;
            out.push(DirEntry {
                name: name.to_vec(),
                ino: be64(b, p),
            });
        }
        p += size;
    }
    Ok(())
}
