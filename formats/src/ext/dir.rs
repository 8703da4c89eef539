//! Directory entries: the linear `ext4_dir_entry_2` format used by plain directory blocks,
//! htree leaf blocks and inline directories, with rec_len validation and the metadata_csum
//! leaf tail.

use super::bytes::{le16, le32, u8_at};
use super::csum::chksum;
use crate::{Error, Result};

/// Directory entry file types (`file_type`, with the filetype feature).
pub mod file_type {
    pub const UNKNOWN: u8 = 0;
    pub const REG: u8 = 1;
    pub const DIR: u8 = 2;
    pub const CHR: u8 = 3;
    pub const BLK: u8 = 4;
    pub const FIFO: u8 = 5;
    pub const SOCK: u8 = 6;
    pub const SYMLINK: u8 = 7;
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name as stored (any bytes but `/` and NUL).
    pub name: Vec<u8>,
    /// The inode it names.
    pub ino: u32,
    /// One of [`file_type`] (0 without the filetype feature).
    pub file_type: u8,
}

/// Size of the metadata_csum tail dirent.
pub const TAIL_SIZE: usize = 12;

/// The kernel's `ext4_rec_len_from_disk`: 64 KiB blocks encode 65536 specially.
pub fn rec_len_from_disk(raw: u16, block_size: u32) -> usize {
    let len = usize::from(raw);
    if block_size >= 65536 && (raw == 65535 || raw == 0) {
        return block_size as usize;
    }
    (len & 65532) | ((len & 3) << 16)
}

/// Where a run of entries comes from, for messages.
pub struct Origin<'a> {
    pub dir_ino: u32,
    pub what: &'a str,
}

/// Append the live entries of `buf` (a directory block or an inline area) to `out`.
pub fn parse_entries(
    origin: &Origin<'_>,
    buf: &[u8],
    block_size: u32,
    filetype: bool,
    out: &mut Vec<DirEntry>,
) -> Result<()> {
    let mut off = 0usize;
    while off < buf.len() {
        let bad = |msg: String| {
            Error::corrupt(format!(
                "directory inode {}, {}: entry at byte {off}: {msg}",
                origin.dir_ino, origin.what
            ))
        };
        if off + 8 > buf.len() {
            return Err(bad(format!(
                "only {} bytes left, a directory entry needs at least 8",
                buf.len() - off
            )));
        }
        let ino = le32(buf, off);
        let rec_len = rec_len_from_disk(le16(buf, off + 4), block_size);
        let name_len = usize::from(u8_at(buf, off + 6));
        let ft = u8_at(buf, off + 7);
        if rec_len < 12 || rec_len % 4 != 0 {
            return Err(bad(format!(
                "rec_len {rec_len} is below 12 or not a multiple of 4"
            )));
        }
        if off + rec_len > buf.len() {
            return Err(bad(format!(
                "rec_len {rec_len} runs past the end of the {}-byte block",
                buf.len()
            )));
        }
        if 8 + name_len > rec_len {
            return Err(bad(format!(
                "name of {name_len} bytes does not fit in rec_len {rec_len}"
            )));
        }
        if ino != 0 {
            if name_len == 0 {
                return Err(bad(format!("entry for inode {ino} has an empty name")));
            }
            out.push(DirEntry {
                name: buf[off + 8..off + 8 + name_len].to_vec(),
                ino,
                file_type: if filetype { ft } else { 0 },
            });
        }
        off += rec_len;
    }
    Ok(())
}

/// True when `buf` is an htree interior node: a single fake entry with inode 0 spanning
/// the whole block.
pub fn is_dx_node(buf: &[u8], block_size: u32) -> bool {
    le32(buf, 0) == 0 && rec_len_from_disk(le16(buf, 4), block_size) == buf.len()
}

/// Verify the metadata_csum tail of a leaf block and return the part holding entries.
pub fn verify_leaf(dir_ino: u32, blk: u64, buf: &[u8], inode_seed: u32) -> Result<&[u8]> {
    let n = buf.len();
    let t = n.saturating_sub(TAIL_SIZE);
    let is_tail = n >= TAIL_SIZE
        && le32(buf, t) == 0
        && le16(buf, t + 4) == TAIL_SIZE as u16
        && u8_at(buf, t + 6) == 0
        && u8_at(buf, t + 7) == 0xDE;
    if !is_tail {
        return Err(Error::corrupt(format!(
            "directory inode {dir_ino}, block {blk}: no checksum tail at byte {t} (the filesystem has metadata_csum)"
        )));
    }
    let want = chksum(inode_seed, &buf[..t]);
    let stored = le32(buf, t + 8);
    if want != stored {
        return Err(Error::corrupt(format!(
            "directory inode {dir_ino}, block {blk}: checksum 0x{stored:08x} does not match the computed 0x{want:08x}"
        )));
    }
    Ok(&buf[..t])
}
