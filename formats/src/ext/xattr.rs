//! Extended attributes: the in-inode area and the external block (both
//! `ext4_xattr_entry` lists), name-prefix indexes, and ext4's compact POSIX ACL format.
//!
//! ext4 stores `system.posix_acl_access`/`_default` values as `ext4_acl_header` version 1
//! with 4-byte entries for USER_OBJ/GROUP_OBJ/MASK/OTHER and 8-byte ones for USER/GROUP.
//! [`acl_to_xattr`] converts them to the standard `posix_acl_xattr` version 2 layout
//! (every entry 8 bytes, id 0xFFFFFFFF where undefined), which is what `getfattr` shows
//! and what `setxattr` expects.

use super::bytes::{le16, le32, u8_at};
use super::csum::chksum;
use crate::{Error, Result};

/// Magic of the in-inode area and of xattr blocks.
pub const XATTR_MAGIC: u32 = 0xEA02_0000;
/// Size of an xattr block header.
const BLOCK_HEADER: usize = 32;

/// Where the value of an attribute is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Stored next to the entry.
    Inline(Vec<u8>),
    /// Stored as the contents of an EA inode (ea_inode feature).
    Inode { ino: u32, size: u32 },
}

/// One attribute as stored: prefix index, name suffix, value.
#[derive(Debug, Clone)]
pub struct RawXattr {
    pub index: u8,
    pub name: Vec<u8>,
    pub value: Value,
}

/// The full name for prefix `index` and suffix `name`.
pub fn full_name(index: u8, name: &[u8]) -> Option<Vec<u8>> {
    let prefix: &[u8] = match index {
        0 => b"",
        1 => b"user.",
        2 => b"system.posix_acl_access",
        3 => b"system.posix_acl_default",
        4 => b"trusted.",
        6 => b"security.",
        7 => b"system.",
        8 => b"system.richacl",
        _ => return None,
    };
    let mut v = prefix.to_vec();
    v.extend_from_slice(name);
    Some(v)
}

/// Who uses name index `index` when it has no `setxattr` name (for messages).
pub fn index_owner(index: u8) -> &'static str {
    match index {
        5 => "Lustre",
        9 => "encryption context",
        10 => "Hurd",
        11 => "fs-verity",
        _ => "unknown index",
    }
}

/// Entries of the in-inode area (`area` starts right after i_extra_isize).
pub fn parse_ibody(ino: u32, area: &[u8]) -> Result<Vec<RawXattr>> {
    if area.len() < 4 || le32(area, 0) != XATTR_MAGIC {
        return Ok(Vec::new());
    }
    let body = &area[4..];
    parse_entries(&format!("inode {ino}: in-inode xattrs"), body, 0, body)
}

/// Entries of the xattr block `blk` (the whole block in `data`), checking the header and,
/// with `seed` (metadata_csum), the checksum.
pub fn parse_block(ino: u32, blk: u64, data: &[u8], seed: Option<u32>) -> Result<Vec<RawXattr>> {
    let what = format!("inode {ino}: xattr block {blk}");
    let magic = le32(data, 0);
    if data.len() < BLOCK_HEADER || magic != XATTR_MAGIC {
        return Err(Error::corrupt(format!(
            "{what}: magic 0x{magic:08x}, expected 0x{XATTR_MAGIC:08x}"
        )));
    }
    let nblocks = le32(data, 8);
    if nblocks != 1 {
        return Err(Error::corrupt(format!(
            "{what}: header says it spans {nblocks} blocks, expected 1"
        )));
    }
    if let Some(seed) = seed {
        let mut c = chksum(seed, &blk.to_le_bytes());
        c = chksum(c, &data[..0x10]);
        c = chksum(c, &[0; 4]);
        c = chksum(c, &data[0x14..]);
        let stored = le32(data, 0x10);
        if c != stored {
            return Err(Error::corrupt(format!(
                "{what}: checksum 0x{stored:08x} does not match the computed 0x{c:08x}"
            )));
        }
    }
    parse_entries(&what, data, BLOCK_HEADER, data)
}

/// Walk entries in `buf` from `start`; value offsets are relative to `values`.
fn parse_entries(what: &str, buf: &[u8], start: usize, values: &[u8]) -> Result<Vec<RawXattr>> {
    let mut out = Vec::new();
    let mut off = start;
    loop {
        if off + 4 > buf.len() {
            return Err(Error::corrupt(format!(
                "{what}: entry list runs past the end at byte {off} without a terminator"
            )));
        }
        if le32(buf, off) == 0 {
            return Ok(out);
        }
        if off + 16 > buf.len() {
            return Err(Error::corrupt(format!(
                "{what}: entry at byte {off} is cut off by the end of the area ({} bytes)",
                buf.len()
            )));
        }
        let name_len = usize::from(u8_at(buf, off));
        let index = u8_at(buf, off + 1);
        let value_offs = usize::from(le16(buf, off + 2));
        let value_inum = le32(buf, off + 4);
        let value_size = le32(buf, off + 8);
        let name = buf.get(off + 16..off + 16 + name_len).ok_or_else(|| {
            Error::corrupt(format!(
                "{what}: name of {name_len} bytes at byte {} runs past the end",
                off + 16
            ))
        })?;
        let value = if value_inum != 0 {
            Value::Inode {
                ino: value_inum,
                size: value_size,
            }
        } else {
            let end = value_offs.checked_add(value_size as usize);
            match end.and_then(|e| values.get(value_offs..e)) {
                Some(v) => Value::Inline(v.to_vec()),
                None => {
                    return Err(Error::corrupt(format!(
                        "{what}: value of entry at byte {off} ({value_size} bytes at offset {value_offs}) runs past the end of the {}-byte area",
                        values.len()
                    )))
                }
            }
        };
        out.push(RawXattr {
            index,
            name: name.to_vec(),
            value,
        });
        off += (name_len + 16 + 3) & !3;
    }
}

/// `ACL_USER` and `ACL_GROUP` carry an id; the other tags do not.
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;

/// Convert an ext4 on-disk ACL (version 1, compact) to the `posix_acl_xattr` format
/// (version 2).
pub fn acl_to_xattr(ino: u32, v: &[u8]) -> Result<Vec<u8>> {
    let bad = |msg: String| Error::corrupt(format!("inode {ino}: POSIX ACL: {msg}"));
    if v.len() < 4 || le32(v, 0) != 1 {
        return Err(bad(format!(
            "expected an ext4_acl_header of version 1, found {} bytes starting 0x{:08x}",
            v.len(),
            le32(v, 0)
        )));
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    let mut off = 4;
    while off < v.len() {
        if off + 4 > v.len() {
            return Err(bad(format!("entry at byte {off} is cut off")));
        }
        let tag = le16(v, off);
        let perm = le16(v, off + 2);
        let (id, size) = if tag == ACL_USER || tag == ACL_GROUP {
            if off + 8 > v.len() {
                return Err(bad(format!("entry at byte {off} is cut off")));
            }
            (le32(v, off + 4), 8)
        } else {
            (u32::MAX, 4)
        };
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        off += size;
    }
    Ok(out)
}
