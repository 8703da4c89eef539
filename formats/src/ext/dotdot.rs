//! Rewriting a directory's `..` entry: the one change moving a directory to another parent
//! needs inside the directory itself, and the one e2fsprogs' debugfs has no command for
//! (its `ln`/`unlink` edit the parents; `..` would stay pointing at the old one).
//!
//! [`ExtFs::dotdot_patch`] reads the directory's first block, checks that it starts with
//! `.` and `..` as every ext directory must, and returns the block with `..` naming the
//! new parent and its checksum recomputed: the leaf tail (`ext4_dir_entry_tail`) of a
//! linear block, or the `dx_tail` of an htree root, when the filesystem has
//! metadata_csum. The caller writes it back (the reader never writes). Inline-data
//! directories (the parent in `i_block`, covered by the inode checksum) are refused.

use super::bytes::{le16, le32, u8_at};
use super::csum::chksum;
use super::dir::{rec_len_from_disk, TAIL_SIZE};
use super::fs::ExtFs;
use super::inode::{InodeKind, FLAG_INDEX};
use crate::block::BlockDevice;
use crate::{Error, Result};

/// A block to write back: `data` at byte `offset` of the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPatch {
    pub offset: u64,
    pub data: Vec<u8>,
}

/// Offset of `dx_root_info` in an htree root block (after the `.` and `..` entries).
const DX_ROOT_INFO: usize = 24;
/// Size of one `dx_entry` (hash, block).
const DX_ENTRY: usize = 8;

impl<D: BlockDevice> ExtFs<D> {
    /// The first block of directory `dir` with its `..` entry naming `new_parent`.
    pub fn dotdot_patch(&self, dir: u32, new_parent: u32) -> Result<BlockPatch> {
        let inode = self.inode(dir)?;
        if inode.kind() != InodeKind::Dir {
            return Err(Error::InvalidArgument(format!(
                "ext: inode {dir} is not a directory (mode 0o{:o})",
                inode.mode
            )));
        }
        if inode.has_inline_data() {
            return Err(Error::unsupported(format!(
                "ext: directory inode {dir} keeps its entries inline; moving it in place is not supported"
            )));
        }
        let bs = self.superblock().block_size as usize;
        let super::blockmap::RunKind::Data(pblk) = self.map(&inode, 0)?.kind else {
            return Err(Error::corrupt(format!(
                "ext: directory inode {dir} has no first block"
            )));
        };
        let mut buf = vec![0u8; bs];
        self.read_blocks(pblk, &mut buf)?;
        let bad = |what: &str| {
            Error::corrupt(format!(
                "ext: directory inode {dir}, block {pblk}: {what} (expected `.` then `..` at the start)"
            ))
        };
        let dot_len = rec_len_from_disk(le16(&buf, 4), bs as u32);
        if le32(&buf, 0) != dir || u8_at(&buf, 6) != 1 || u8_at(&buf, 8) != b'.' || dot_len != 12 {
            return Err(bad("no `.` entry of 12 bytes"));
        }
        if u8_at(&buf, 18) != 2 || buf.get(20..22) != Some(b"..".as_slice()) {
            return Err(bad("no `..` entry"));
        }
        buf[12..16].copy_from_slice(&new_parent.to_le_bytes());
        if let Some(seed) = self.inode_seed(&inode) {
            if inode.flags & FLAG_INDEX != 0 {
                dx_root_csum(&mut buf, seed).map_err(|w| bad(&w))?;
            } else {
                let t = bs - TAIL_SIZE;
                let tail_ok = le32(&buf, t) == 0
                    && le16(&buf, t + 4) == TAIL_SIZE as u16
                    && u8_at(&buf, t + 7) == 0xDE;
                if !tail_ok {
                    return Err(bad("no checksum tail at the end of the block"));
                }
                let c = chksum(seed, &buf[..t]);
                buf[t + 8..t + 12].copy_from_slice(&c.to_le_bytes());
            }
        }
        Ok(BlockPatch {
            offset: pblk * bs as u64,
            data: buf,
        })
    }
}

/// Recompute the `dx_tail` checksum of an htree root block (e2fsprogs' `ext2fs_dx_csum`:
/// the header and the used `dx_entry`s, then the tail's reserved word and a zero word).
fn dx_root_csum(buf: &mut [u8], seed: u32) -> std::result::Result<(), String> {
    let info_len = usize::from(u8_at(buf, DX_ROOT_INFO + 5));
    let count_offset = DX_ROOT_INFO + info_len;
    let limit = usize::from(le16(buf, count_offset));
    let count = usize::from(le16(buf, count_offset + 2));
    let tail = count_offset + limit * DX_ENTRY;
    if info_len != 8 || count > limit || tail + 8 > buf.len() {
        return Err(format!(
            "htree root with info length {info_len}, count {count}, limit {limit} has no room for its checksum"
        ));
    }
    let c = chksum(seed, &buf[..count_offset + count * DX_ENTRY]);
    let c = chksum(c, &buf[tail..tail + 4]);
    let c = chksum(c, &[0u8; 4]);
    buf[tail + 4..tail + 8].copy_from_slice(&c.to_le_bytes());
    Ok(())
}
