//! On-disk inodes: decoding every field (32-bit ids, 64-bit size, nanosecond timestamps,
//! device numbers) and verifying the metadata_csum inode checksum.

use super::bytes::{le16, le32};
use super::csum::chksum;
use super::time::{decode, Timestamp};
use crate::{Error, Result};

/// Inode flags a user may set (the kernel's `EXT4_FL_USER_MODIFIABLE` without
/// `EXTENTS_FL`): the ones compared and carried over; storage flags are the writer's.
pub const USER_FLAGS: u32 = 0x6043_C0FF;

/// Size of the classic inode; the extra fields follow it.
pub const GOOD_OLD_INODE_SIZE: usize = 128;
/// `EXT4_INDEX_FL`: an htree directory.
pub const FLAG_INDEX: u32 = 0x1000;
/// `EXT4_HUGE_FILE_FL`: i_blocks counts filesystem blocks, not 512-byte sectors.
pub const FLAG_HUGE_FILE: u32 = 0x4_0000;
/// `EXT4_EXTENTS_FL`: i_block holds an extent tree.
pub const FLAG_EXTENTS: u32 = 0x8_0000;
/// `EXT4_EA_INODE_FL`: this inode holds an xattr value.
pub const FLAG_EA_INODE: u32 = 0x20_0000;
/// `EXT4_INLINE_DATA_FL`: the data lives in i_block and the `system.data` xattr.
pub const FLAG_INLINE_DATA: u32 = 0x1000_0000;

/// What an inode is, from the file-type bits of its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InodeKind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
    /// A type value that is none of the above (the raw `mode & 0o170000`).
    Unknown(u16),
}

/// A decoded inode. `raw` keeps the on-disk bytes (i_block, in-inode xattrs).
#[derive(Debug, Clone)]
pub struct Inode {
    /// The inode number.
    pub ino: u32,
    /// Full mode: type and permission bits.
    pub mode: u16,
    /// Owner, with the high 16 bits.
    pub uid: u32,
    /// Group, with the high 16 bits.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Hard link count (`i_links_count`; 1 for a directory whose count overflowed with
    /// dir_nlink).
    pub nlink: u16,
    /// `i_flags`.
    pub flags: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Deletion time (seconds, 0 for a live inode).
    pub dtime: u32,
    /// Creation time, when the inode is large enough to hold it.
    pub crtime: Option<Timestamp>,
    /// Device number (major, minor) for character and block devices; (0, 0) otherwise.
    pub rdev: (u32, u32),
    /// `i_generation`.
    pub generation: u32,
    /// Allocated space as `i_blocks` (512-byte units, or filesystem blocks with huge_file).
    pub blocks_raw: u64,
    /// Block of the external xattr block, 0 if none.
    pub file_acl: u64,
    /// `i_extra_isize` (0 for 128-byte inodes).
    pub extra_isize: u16,
    /// Project id, when present.
    pub projid: u32,
    /// The raw on-disk inode (inode_size bytes).
    pub raw: Vec<u8>,
}

impl Inode {
    /// The kind from the mode's type bits.
    pub fn kind(&self) -> InodeKind {
        match self.mode & 0o170000 {
            0o100000 => InodeKind::File,
            0o040000 => InodeKind::Dir,
            0o120000 => InodeKind::Symlink,
            0o020000 => InodeKind::CharDev,
            0o060000 => InodeKind::BlockDev,
            0o010000 => InodeKind::Fifo,
            0o140000 => InodeKind::Socket,
            other => InodeKind::Unknown(other),
        }
    }

    /// Permission bits (including setuid/setgid/sticky).
    pub fn permissions(&self) -> u16 {
        self.mode & 0o7777
    }

    /// The 60 bytes of `i_block` (extent root, block pointers, fast symlink, inline data).
    pub fn i_block(&self) -> &[u8] {
        self.raw.get(0x28..0x64).unwrap_or(&[])
    }

    /// True when the inode uses an extent tree.
    pub fn has_extents(&self) -> bool {
        self.flags & FLAG_EXTENTS != 0
    }

    /// True when the data is inline.
    pub fn has_inline_data(&self) -> bool {
        self.flags & FLAG_INLINE_DATA != 0
    }

    /// The in-inode extended attribute area (after i_extra_isize), if any.
    pub fn xattr_area(&self) -> &[u8] {
        if self.raw.len() <= GOOD_OLD_INODE_SIZE {
            return &[];
        }
        let start = GOOD_OLD_INODE_SIZE + usize::from(self.extra_isize);
        self.raw.get(start..).unwrap_or(&[])
    }

    /// Decode inode `ino` from `raw` (exactly inode_size bytes). `csum_seed` is the
    /// filesystem checksum seed when metadata_csum is on.
    pub fn parse(ino: u32, raw: &[u8], csum_seed: Option<u32>) -> Result<Self> {
        let isize = raw.len();
        if isize < GOOD_OLD_INODE_SIZE {
            return Err(Error::corrupt(format!(
                "inode {ino}: {isize} bytes, expected at least {GOOD_OLD_INODE_SIZE}"
            )));
        }
        let extra_isize = if isize > GOOD_OLD_INODE_SIZE {
            le16(raw, 0x80)
        } else {
            0
        };
        if GOOD_OLD_INODE_SIZE + usize::from(extra_isize) > isize || extra_isize % 4 != 0 {
            return Err(Error::corrupt(format!(
                "inode {ino}: i_extra_isize {extra_isize} is unaligned or exceeds the inode size {isize}"
            )));
        }
        let generation = le32(raw, 0x64);
        // An all-zero inode (never used, e.g. in an uninitialised table) has no checksum.
        let unused = raw.iter().all(|&b| b == 0);
        if let (Some(seed), false) = (csum_seed, unused) {
            verify_csum(ino, raw, seed, generation, extra_isize)?;
        }
        // A field in the extra area exists when i_extra_isize covers it.
        let has = |end: usize| usize::from(extra_isize) + GOOD_OLD_INODE_SIZE >= end;
        let extra = |off: usize| {
            if has(off + 4) {
                Some(le32(raw, off))
            } else {
                None
            }
        };
        let mode = le16(raw, 0x0);
        let flags = le32(raw, 0x20);
        let mut inode = Inode {
            ino,
            mode,
            uid: u32::from(le16(raw, 0x2)) | (u32::from(le16(raw, 0x78)) << 16),
            gid: u32::from(le16(raw, 0x18)) | (u32::from(le16(raw, 0x7A)) << 16),
            size: u64::from(le32(raw, 0x4)) | (u64::from(le32(raw, 0x6C)) << 32),
            nlink: le16(raw, 0x1A),
            flags,
            atime: decode(le32(raw, 0x8), extra(0x8C)),
            ctime: decode(le32(raw, 0xC), extra(0x84)),
            mtime: decode(le32(raw, 0x10), extra(0x88)),
            dtime: le32(raw, 0x14),
            crtime: extra(0x90).map(|c| decode(c, extra(0x94))),
            rdev: (0, 0),
            generation,
            blocks_raw: u64::from(le32(raw, 0x1C)) | (u64::from(le16(raw, 0x74)) << 32),
            file_acl: u64::from(le32(raw, 0x68)) | (u64::from(le16(raw, 0x76)) << 32),
            extra_isize,
            projid: extra(0x9C).unwrap_or(0),
            raw: raw.to_vec(),
        };
        if matches!(inode.kind(), InodeKind::CharDev | InodeKind::BlockDev) {
            inode.rdev = decode_dev(le32(raw, 0x28), le32(raw, 0x2C));
        }
        Ok(inode)
    }
}

/// Device number as ext4_iget reads it: the old 16-bit encoding in i_block[0] when non-zero,
/// otherwise the new 32-bit encoding in i_block[1] (the kernel's `new_decode_dev`).
pub fn decode_dev(block0: u32, block1: u32) -> (u32, u32) {
    if block0 != 0 {
        ((block0 >> 8) & 0xFF, block0 & 0xFF)
    } else {
        let major = (block1 & 0xFFF00) >> 8;
        let minor = (block1 & 0xFF) | ((block1 >> 12) & 0xFFF00);
        (major, minor)
    }
}

fn verify_csum(ino: u32, raw: &[u8], seed: u32, generation: u32, extra_isize: u16) -> Result<()> {
    let has_hi = raw.len() > GOOD_OLD_INODE_SIZE && extra_isize >= 4;
    let mut c = chksum(seed, &ino.to_le_bytes());
    c = chksum(c, &generation.to_le_bytes());
    let mut copy = raw.to_vec();
    copy[0x7C] = 0;
    copy[0x7D] = 0;
    if has_hi {
        copy[0x82] = 0;
        copy[0x83] = 0;
    }
    c = chksum(c, &copy);
    let stored_lo = u32::from(le16(raw, 0x7C));
    let (stored, want) = if has_hi {
        (stored_lo | (u32::from(le16(raw, 0x82)) << 16), c)
    } else {
        (stored_lo, c & 0xFFFF)
    };
    if stored != want {
        return Err(Error::corrupt(format!(
            "inode {ino}: checksum 0x{stored:08x} does not match the computed 0x{want:08x}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers() {
        assert_eq!(decode_dev(0x0801, 0), (8, 1));
        // new_encode_dev(MKDEV(259, 70000)) = (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
        let enc = (70000 & 0xff) | (259 << 8) | ((70000 & !0xff) << 12);
        assert_eq!(decode_dev(0, enc), (259, 70000));
    }
}
