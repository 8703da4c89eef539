//! btrfs, read-only: the superblock, the chunk mapping of one device (SINGLE and DUP),
//! B-tree search with every node's checksum verified, subvolumes and snapshots, and a
//! subvolume's files as a [`crate::tree::TreeSource`] ([`BtrfsTree`]).
//!
//! Layout of the module, one job per file: [`superblock`] (the primary superblock and its
//! checksum), [`csum`] (the checksum algorithms), [`chunks`] (logical → physical),
//! [`node`] (one tree block, checked), [`search`] (walking the items of a tree in key
//! order), [`items`] (the item layouts), [`fs`] (the filesystem: trees, subvolumes),
//! [`content`] (a file's extents and data, decompressed), and [`read`] (the tree model).
//!
//! Everything read from the device is bounds-checked; a tree's depth is bounded by the
//! levels written in its nodes (each child one level below its parent), so a pointer loop
//! cannot make a search run forever.

pub mod chunks;
pub mod content;
pub mod csum;
pub mod fs;
pub mod items;
mod lzo;
pub mod node;
mod read;
pub mod search;
pub mod superblock;

pub use fs::{BtrfsFs, Subvolume};
pub use read::BtrfsTree;

use crate::{Error, Result};

/// Item types (the `type` byte of a key), from the on-disk format (`btrfs_tree.h`).
pub mod key_type {
    pub const INODE_ITEM: u8 = 1;
    pub const INODE_REF: u8 = 12;
    pub const XATTR_ITEM: u8 = 24;
    pub const DIR_ITEM: u8 = 84;
    pub const DIR_INDEX: u8 = 96;
    pub const EXTENT_DATA: u8 = 108;
    pub const ROOT_ITEM: u8 = 132;
    pub const ROOT_BACKREF: u8 = 144;
    pub const ROOT_REF: u8 = 156;
    pub const CHUNK_ITEM: u8 = 228;
}

/// Well-known object ids.
pub mod objectid {
    /// The root tree's directory holding the `default` item.
    pub const ROOT_TREE_DIR: u64 = 6;
    /// The top-level subvolume (`FS_TREE`).
    pub const FS_TREE: u64 = 5;
    /// The first id of a subvolume created later, and of a chunk item.
    pub const FIRST_FREE: u64 = 256;
    /// Subvolume ids end here (higher ids are special trees).
    pub const LAST_FREE: u64 = u64::MAX - 256;
}

/// A little-endian integer of `N` bytes at `at` in `b`, or a corrupt-structure error
/// naming `what`.
pub(crate) fn le<const N: usize>(b: &[u8], at: usize, what: &str) -> Result<[u8; N]> {
    b.get(at..at.saturating_add(N))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| {
            Error::corrupt(format!(
                "btrfs: {what} is cut short ({} bytes, {N} wanted at offset {at})",
                b.len()
            ))
        })
}

pub(crate) fn u8_at(b: &[u8], at: usize, what: &str) -> Result<u8> {
    Ok(le::<1>(b, at, what)?[0])
}
pub(crate) fn u16_at(b: &[u8], at: usize, what: &str) -> Result<u16> {
    Ok(u16::from_le_bytes(le(b, at, what)?))
}
pub(crate) fn u32_at(b: &[u8], at: usize, what: &str) -> Result<u32> {
    Ok(u32::from_le_bytes(le(b, at, what)?))
}
pub(crate) fn u64_at(b: &[u8], at: usize, what: &str) -> Result<u64> {
    Ok(u64::from_le_bytes(le(b, at, what)?))
}

/// `len` bytes at `at` in `b`, or a corrupt-structure error naming `what`.
pub(crate) fn slice_at<'a>(b: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8]> {
    b.get(at..at.saturating_add(len)).ok_or_else(|| {
        Error::corrupt(format!(
            "btrfs: {what} ({len} bytes at offset {at}) lies beyond its {}-byte container",
            b.len()
        ))
    })
}

/// A key: (object id, type, offset), ordered as btrfs orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub objectid: u64,
    pub ty: u8,
    pub offset: u64,
}

impl Key {
    pub const fn new(objectid: u64, ty: u8, offset: u64) -> Self {
        Key {
            objectid,
            ty,
            offset,
        }
    }

    /// The 17-byte on-disk key at `at`.
    pub(crate) fn parse(b: &[u8], at: usize) -> Result<Key> {
        Ok(Key {
            objectid: u64_at(b, at, "a key")?,
            ty: u8_at(b, at + 8, "a key")?,
            offset: u64_at(b, at + 9, "a key")?,
        })
    }
}

/// Bytes of an on-disk key.
pub(crate) const KEY_LEN: usize = 17;
