//! One tree block (node or leaf): its header checked against what pointed to it (address,
//! filesystem id, level), its checksum verified, and its items read with bounds checks.

use super::{slice_at, u32_at, u64_at, u8_at, Key, KEY_LEN};
use crate::{Error, Result};

/// Bytes of a block header.
pub const HEADER_LEN: usize = 0x65;
/// Bytes of a leaf's item descriptor (key, data offset, data size).
const ITEM_LEN: usize = KEY_LEN + 8;
/// Bytes of a node's child pointer (key, block address, generation).
const PTR_LEN: usize = KEY_LEN + 16;
/// The highest level a tree block can have.
pub const MAX_LEVEL: u8 = 7;

/// A checked tree block.
#[derive(Debug)]
pub struct Node {
    pub bytenr: u64,
    pub level: u8,
    pub owner: u64,
    nritems: usize,
    bytes: Vec<u8>,
}

impl Node {
    /// Check the block read from logical `bytenr` (checksum already verified): it must say
    /// it is at `bytenr`, carry the filesystem's id, and hold `level` when that is known.
    pub fn parse(bytes: Vec<u8>, bytenr: u64, fsid: &[u8; 16], level: Option<u8>) -> Result<Node> {
        let what = "a tree block header";
        let at = u64_at(&bytes, 0x30, what)?;
        if at != bytenr {
            return Err(Error::corrupt(format!(
                "btrfs: the tree block at logical {bytenr} says it is at {at}"
            )));
        }
        if slice_at(&bytes, 0x20, 16, what)? != fsid {
            return Err(Error::corrupt(format!(
                "btrfs: the tree block at logical {bytenr} belongs to another filesystem"
            )));
        }
        let lvl = u8_at(&bytes, 0x64, what)?;
        if lvl > MAX_LEVEL || level.is_some_and(|l| l != lvl) {
            return Err(Error::corrupt(format!(
                "btrfs: the tree block at logical {bytenr} has level {lvl}, {} expected \
                 (a tree pointer loop?)",
                level.map_or(format!("at most {MAX_LEVEL}"), |l| l.to_string())
            )));
        }
        let nritems = u32_at(&bytes, 0x60, what)? as usize;
        let each = if lvl == 0 { ITEM_LEN } else { PTR_LEN };
        if nritems.saturating_mul(each) > bytes.len() - HEADER_LEN {
            return Err(Error::corrupt(format!(
                "btrfs: the tree block at logical {bytenr} claims {nritems} items, more than \
                 its {} bytes hold",
                bytes.len()
            )));
        }
        let node = Node {
            bytenr,
            level: lvl,
            owner: u64_at(&bytes, 0x58, what)?,
            nritems,
            bytes,
        };
        for i in 1..nritems {
            if node.key(i - 1)? >= node.key(i)? {
                return Err(Error::corrupt(format!(
                    "btrfs: the keys of the tree block at logical {bytenr} are out of order \
                     at item {i}"
                )));
            }
        }
        Ok(node)
    }

    /// Number of items (leaf) or child pointers (node).
    pub fn len(&self) -> usize {
        self.nritems
    }

    /// True without items.
    pub fn is_empty(&self) -> bool {
        self.nritems == 0
    }

    /// The key of item or pointer `i`.
    pub fn key(&self, i: usize) -> Result<Key> {
        let each = if self.level == 0 { ITEM_LEN } else { PTR_LEN };
        Key::parse(&self.bytes, HEADER_LEN + i * each)
    }

    /// The child block address of pointer `i` (nodes only).
    pub fn child(&self, i: usize) -> Result<u64> {
        u64_at(
            &self.bytes,
            HEADER_LEN + i * PTR_LEN + KEY_LEN,
            "a child pointer",
        )
    }

    /// The data of item `i` (leaves only).
    pub fn data(&self, i: usize) -> Result<&[u8]> {
        let at = HEADER_LEN + i * ITEM_LEN + KEY_LEN;
        let off = u32_at(&self.bytes, at, "an item")? as usize;
        let size = u32_at(&self.bytes, at + 4, "an item")? as usize;
        slice_at(
            &self.bytes,
            HEADER_LEN.saturating_add(off),
            size,
            &format!("item {i} of the leaf at logical {}", self.bytenr),
        )
    }
}
