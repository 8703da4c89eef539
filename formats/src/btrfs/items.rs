//! The layouts of the items this reader uses: inodes, directory entries (and xattrs, which
//! share their layout), file extents, subvolume roots and their back references.

use super::{le, slice_at, u16_at, u32_at, u64_at, u8_at, Key, KEY_LEN};
use crate::tree::Timestamp;
use crate::{Error, Result};

/// `INODE_ITEM`: what the tree model needs of an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeItem {
    pub size: u64,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub rdev: u64,
    pub flags: u64,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    pub mtime: Timestamp,
    pub otime: Timestamp,
}

/// Bytes of an inode item (also the start of a root item).
pub const INODE_ITEM_LEN: usize = 160;

fn time(b: &[u8], at: usize) -> Result<Timestamp> {
    Ok(Timestamp {
        sec: i64::from_le_bytes(le(b, at, "a timestamp")?),
        nsec: u32_at(b, at + 8, "a timestamp")?.min(999_999_999),
    })
}

impl InodeItem {
    pub fn parse(b: &[u8]) -> Result<InodeItem> {
        let what = "an inode item";
        if b.len() < INODE_ITEM_LEN {
            return Err(Error::corrupt(format!(
                "btrfs: {what} of {} bytes ({INODE_ITEM_LEN} expected)",
                b.len()
            )));
        }
        Ok(InodeItem {
            size: u64_at(b, 16, what)?,
            nlink: u32_at(b, 40, what)?,
            uid: u32_at(b, 44, what)?,
            gid: u32_at(b, 48, what)?,
            mode: u32_at(b, 52, what)?,
            rdev: u64_at(b, 56, what)?,
            flags: u64_at(b, 64, what)?,
            atime: time(b, 112)?,
            ctime: time(b, 124)?,
            mtime: time(b, 136)?,
            otime: time(b, 148)?,
        })
    }
}

/// One entry of a `DIR_ITEM`, `DIR_INDEX` or `XATTR_ITEM`: where it points, its type, name
/// and (xattrs) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub location: Key,
    pub file_type: u8,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

/// Bytes of a directory entry before its name.
const DIR_HEAD: usize = KEY_LEN + 8 + 2 + 2 + 1;
/// Longest name a directory entry (or xattr) may hold.
const NAME_MAX: usize = 255;

impl DirEntry {
    /// Every entry packed in one item (a `DIR_ITEM` or `XATTR_ITEM` holds several when
    /// their name hashes collide).
    pub fn parse_all(b: &[u8]) -> Result<Vec<DirEntry>> {
        let what = "a directory item";
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let data_len = usize::from(u16_at(b, at + KEY_LEN + 8, what)?);
            let name_len = usize::from(u16_at(b, at + KEY_LEN + 10, what)?);
            if name_len == 0 || name_len > NAME_MAX {
                return Err(Error::corrupt(format!(
                    "btrfs: a directory entry has a name of {name_len} bytes (1 to {NAME_MAX})"
                )));
            }
            let name = slice_at(b, at + DIR_HEAD, name_len, what)?.to_vec();
            let data = slice_at(b, at + DIR_HEAD + name_len, data_len, what)?.to_vec();
            out.push(DirEntry {
                location: Key::parse(b, at)?,
                file_type: u8_at(b, at + KEY_LEN + 12, what)?,
                name,
                data,
            });
            at += DIR_HEAD + name_len + data_len;
        }
        Ok(out)
    }
}

/// How a file extent's bytes are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtentBody {
    /// In the item itself (maybe compressed).
    Inline(Vec<u8>),
    /// `disk_len` bytes at logical `disk_bytenr` (0: a hole); the file's bytes are
    /// `num_bytes` from `offset` into the (decompressed) extent.
    Regular {
        disk_bytenr: u64,
        disk_len: u64,
        offset: u64,
        num_bytes: u64,
    },
    /// Allocated, never written: reads as zeros.
    Prealloc { num_bytes: u64 },
}

/// `EXTENT_DATA`: one extent of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileExtent {
    /// Bytes of the extent once decompressed.
    pub ram_bytes: u64,
    /// 0 none, 1 zlib, 2 lzo, 3 zstd.
    pub compression: u8,
    pub body: ExtentBody,
}

/// Bytes of a file extent item before inline data.
const EXTENT_HEAD: usize = 21;

impl FileExtent {
    pub fn parse(b: &[u8]) -> Result<FileExtent> {
        let what = "a file extent item";
        let ram_bytes = u64_at(b, 8, what)?;
        let compression = u8_at(b, 16, what)?;
        if u8_at(b, 17, what)? != 0 || u16_at(b, 18, what)? != 0 {
            return Err(Error::unsupported(
                "btrfs: a file extent is encrypted or otherwise encoded, which subroot does \
                 not read",
            ));
        }
        let body = match u8_at(b, 20, what)? {
            0 => ExtentBody::Inline(b[EXTENT_HEAD.min(b.len())..].to_vec()),
            t @ (1 | 2) => {
                let num_bytes = u64_at(b, 45, what)?;
                if t == 2 {
                    ExtentBody::Prealloc { num_bytes }
                } else {
                    ExtentBody::Regular {
                        disk_bytenr: u64_at(b, 21, what)?,
                        disk_len: u64_at(b, 29, what)?,
                        offset: u64_at(b, 37, what)?,
                        num_bytes,
                    }
                }
            }
            t => {
                return Err(Error::corrupt(format!(
                    "btrfs: a file extent of unknown type {t} (0 inline, 1 regular, 2 prealloc)"
                )))
            }
        };
        Ok(FileExtent {
            ram_bytes,
            compression,
            body,
        })
    }

    /// Bytes of the file this extent covers (inline: its decompressed length).
    pub fn len(&self) -> u64 {
        match &self.body {
            ExtentBody::Inline(d) if self.compression == 0 => d.len() as u64,
            ExtentBody::Inline(_) => self.ram_bytes,
            ExtentBody::Regular { num_bytes, .. } | ExtentBody::Prealloc { num_bytes } => {
                *num_bytes
            }
        }
    }

    /// True for an extent covering nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `ROOT_ITEM`: where a tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootItem {
    pub bytenr: u64,
    pub level: u8,
    /// The subvolume's top directory inode (256).
    pub root_dirid: u64,
    /// Root item flags (bit 0: read-only subvolume).
    pub flags: u64,
}

impl RootItem {
    pub fn parse(b: &[u8]) -> Result<RootItem> {
        let what = "a root item";
        Ok(RootItem {
            root_dirid: u64_at(b, INODE_ITEM_LEN + 8, what)?,
            bytenr: u64_at(b, INODE_ITEM_LEN + 16, what)?,
            flags: u64_at(b, INODE_ITEM_LEN + 48, what)?,
            level: u8_at(b, INODE_ITEM_LEN + 78, what)?,
        })
    }
}

/// `ROOT_REF` / `ROOT_BACKREF`: a subvolume's name in a directory of its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRef {
    pub dirid: u64,
    pub name: Vec<u8>,
}

impl RootRef {
    pub fn parse(b: &[u8]) -> Result<RootRef> {
        let what = "a root reference";
        let n = usize::from(u16_at(b, 16, what)?);
        Ok(RootRef {
            dirid: u64_at(b, 0, what)?,
            name: slice_at(b, 18, n, what)?.to_vec(),
        })
    }
}

/// `INODE_REF`: the first name of an inode in directory `key.offset` (index, name).
pub fn first_inode_ref_name(b: &[u8]) -> Result<Vec<u8>> {
    let n = usize::from(u16_at(b, 8, "an inode reference")?);
    Ok(slice_at(b, 10, n, "an inode reference")?.to_vec())
}
