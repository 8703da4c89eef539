//! Block group descriptors: where they live (classic table or meta_bg) and what they say.

use super::bytes::{le16, le32};
use super::csum::{chksum, crc16};
use super::superblock::{Superblock, INCOMPAT_META_BG, RO_COMPAT_GDT_CSUM};
use crate::{Error, Result};

/// The fields of a group descriptor this reader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDesc {
    /// First block of the group's inode table.
    pub inode_table: u64,
    /// `bg_flags`.
    pub flags: u16,
    /// Block of the group's block (cluster) bitmap.
    pub block_bitmap: u64,
    /// Block of the group's inode bitmap.
    pub inode_bitmap: u64,
    /// Free blocks (clusters under bigalloc) the descriptor counts.
    pub free_blocks: u32,
    /// Free inodes the descriptor counts.
    pub free_inodes: u32,
}

/// Block holding the descriptor of group `g`, and the byte offset within that block.
pub fn desc_location(sb: &Superblock, g: u64) -> (u64, usize) {
    let bs = u64::from(sb.block_size);
    let per_block = bs / u64::from(sb.desc_size);
    let meta_group = g / per_block;
    let index = (g % per_block) as usize * usize::from(sb.desc_size);
    // The block holding the superblock, counted in filesystem blocks (1 for 1 KiB blocks).
    let sb_block = 1024 / bs;
    let meta_bg = sb.features.has_incompat(INCOMPAT_META_BG);
    if !meta_bg || meta_group < u64::from(sb.first_meta_bg) {
        return (sb_block + 1 + meta_group, index);
    }
    let first_group = meta_group * per_block;
    let mut has_super = u64::from(sb.group_has_super(first_group));
    if bs == 1024 && meta_group == 0 && sb.first_data_block == 0 {
        has_super += 1;
    }
    let first_block = first_group * u64::from(sb.blocks_per_group) + u64::from(sb.first_data_block);
    (first_block + has_super, index)
}

/// Decode descriptor `g` from its bytes (`raw` is `desc_size` long) and check its checksum.
pub fn parse_desc(sb: &Superblock, g: u64, raw: &[u8]) -> Result<GroupDesc> {
    let ds = usize::from(sb.desc_size);
    if raw.len() < ds {
        return Err(Error::corrupt(format!(
            "group descriptor {g}: expected {ds} bytes, got {}",
            raw.len()
        )));
    }
    if sb.has_metadata_csum() {
        let stored = le16(raw, 0x1E);
        let mut c = chksum(sb.csum_seed(), &(g as u32).to_le_bytes());
        c = chksum(c, &raw[..0x1E]);
        c = chksum(c, &[0, 0]);
        c = chksum(c, &raw[0x20..ds]);
        let want = (c & 0xFFFF) as u16;
        if want != stored {
            return Err(Error::corrupt(format!(
                "group descriptor {g}: checksum 0x{stored:04x} does not match the computed 0x{want:04x}"
            )));
        }
    } else if sb.features.has_ro_compat(RO_COMPAT_GDT_CSUM) {
        let stored = le16(raw, 0x1E);
        let mut c = crc16(0xFFFF, &sb.uuid);
        c = crc16(c, &(g as u32).to_le_bytes());
        c = crc16(c, &raw[..0x1E]);
        if ds > 0x20 {
            c = crc16(c, &raw[0x20..ds]);
        }
        if c != stored {
            return Err(Error::corrupt(format!(
                "group descriptor {g}: uninit_bg checksum 0x{stored:04x} does not match the computed 0x{c:04x}"
            )));
        }
    }
    let wide = ds >= 64;
    let hi32 = |at: usize| {
        if wide {
            u64::from(le32(raw, at)) << 32
        } else {
            0
        }
    };
    let hi16 = |at: usize| {
        if wide {
            u32::from(le16(raw, at)) << 16
        } else {
            0
        }
    };
    Ok(GroupDesc {
        inode_table: u64::from(le32(raw, 0x8)) | hi32(0x28),
        flags: le16(raw, 0x12),
        block_bitmap: u64::from(le32(raw, 0x0)) | hi32(0x20),
        inode_bitmap: u64::from(le32(raw, 0x4)) | hi32(0x24),
        free_blocks: u32::from(le16(raw, 0xC)) | hi16(0x2C),
        free_inodes: u32::from(le16(raw, 0xE)) | hi16(0x2E),
    })
}
