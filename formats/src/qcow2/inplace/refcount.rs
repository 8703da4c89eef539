//! The refcount side of an in-place plan: every new cluster gets refcount 1, every
//! cluster a compressed or shared cluster occupied loses one reference, and refcount
//! blocks that do not exist yet are allocated (counting themselves) and entered in the
//! refcount table. When the table has no room for them, a larger table is placed after
//! the end of the file (with the blocks it needs itself), the header points to it and
//! the old table's clusters are released, as qemu grows it.
//!
//! Refcounts of any width qcow2 allows (1 to 64 bits, `refcount_order` 0..=6) are read
//! and written as qemu lays them out: big-endian for 8 bits and more, packed from the
//! least significant bit for narrower ones. A refcount that would go below zero, or a
//! cluster after the end of the file that is already counted, means the refcounts
//! contradict the tables: the image is reported corrupt and nothing is planned.

use super::{entry_runs, push_bytes, Image};
use crate::block::PlannedWrite;
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};

/// Bits 9..=63 of a refcount table entry: the offset of a refcount block.
const REFTABLE_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
/// The header's refcount_table_offset (8 bytes) and refcount_table_clusters (4 bytes).
const REFTABLE_HEADER_FIELDS: u64 = 48;
/// qemu refuses refcount tables larger than this (QCOW_MAX_REFTABLE_SIZE).
const MAX_REFTABLE_BYTES: u64 = 8 << 20;

/// What happens to one cluster's refcount.
#[derive(Default, Clone, Copy)]
struct Change {
    /// The cluster is newly allocated: its refcount goes from 0 to 1.
    allocated: bool,
    /// References dropped.
    released: u64,
}

/// The refcount changes a plan makes, by cluster index.
pub(super) struct RefChanges<'a> {
    img: &'a Image<'a>,
    changes: BTreeMap<u64, Change>,
}

/// A refcount block the plan writes into.
struct Block {
    offset: u64,
    /// Allocated by this plan (its bytes start as zeros; its table entry must be set).
    new: bool,
}

impl<'a> RefChanges<'a> {
    pub(super) fn new(img: &'a Image<'a>) -> Self {
        RefChanges {
            img,
            changes: BTreeMap::new(),
        }
    }

    /// The cluster at host offset `offset` is newly allocated.
    pub(super) fn allocated(&mut self, offset: u64) {
        let cluster = offset / self.img.cluster_size();
        self.changes.entry(cluster).or_default().allocated = true;
    }

    /// The clusters overlapping `[offset, offset + len)` each lose one reference.
    pub(super) fn release(&mut self, offset: u64, len: u64) -> Result<()> {
        let cs = self.img.cluster_size();
        let file_len = self.img.file_len;
        let end = offset
            .checked_add(len)
            .filter(|_| len > 0 && offset < file_len)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "a reference to {len} bytes at host offset {offset:#x} does not lie in \
                     the file ({file_len} bytes)"
                ))
            })?;
        for cluster in offset / cs..=(end - 1) / cs {
            self.changes.entry(cluster).or_default().released += 1;
        }
        Ok(())
    }

    /// Allocate the missing refcount blocks (and a larger refcount table when the old one
    /// has no room for them) and plan every refcount write: the blocks' changed entries,
    /// then the table entries of new blocks (or the new table and the header fields that
    /// point to it).
    pub(super) fn finish(mut self) -> Result<Vec<PlannedWrite>> {
        let img = self.img;
        let cs = img.cluster_size();
        let order = img.header.refcount_order;
        let per_block = (cs * 8) >> order;
        let mut blocks: BTreeMap<u64, Block> = BTreeMap::new();
        self.add_blocks(&mut blocks, per_block)?;
        let old_entries = self.table_entries();
        let grown = match blocks.keys().next_back() {
            Some(&last) if last >= old_entries => Some(self.grow_table(&mut blocks, per_block)?),
            _ => None,
        };

        let mut block_writes = Vec::new();
        for (&b, block) in &blocks {
            let mut bytes = if block.new {
                vec![0u8; cs as usize]
            } else {
                img.read_cluster(block.offset, &format!("refcount block {b}"))?
            };
            let first = b * per_block;
            for (&cluster, change) in self.changes.range(first..first + per_block) {
                let i = cluster - first;
                let old = get(&bytes, i, order);
                let host = cluster * cs;
                let new = if change.allocated {
                    if old != 0 {
                        return Err(Error::corrupt(format!(
                            "the cluster at host offset {host:#x}, after the end of the file, \
                             already has refcount {old}; run `qemu-img check -r all`"
                        )));
                    }
                    1
                } else {
                    old.checked_sub(change.released).ok_or_else(|| {
                        Error::corrupt(format!(
                            "the cluster at host offset {host:#x} has refcount {old} but \
                             {} reference{} to it are dropped; run `qemu-img check -r all`",
                            change.released,
                            if change.released == 1 { "" } else { "s" }
                        ))
                    })?
                };
                set(&mut bytes, i, order, new);
                let (start, end) = entry_bytes(i, order);
                push_bytes(
                    &mut block_writes,
                    block.offset + start as u64,
                    &bytes[start..end],
                );
            }
        }

        match grown {
            None => {
                for (&b, block) in blocks.iter().filter(|(_, b)| b.new) {
                    push_bytes(
                        &mut block_writes,
                        img.header.refcount_table_offset + 8 * b,
                        &block.offset.to_be_bytes(),
                    );
                }
            }
            Some((offset, clusters)) => {
                let mut entries = self.old_table()?;
                entries.resize((u64::from(clusters) * cs / 8) as usize, 0);
                for (&b, block) in blocks.iter().filter(|(_, b)| b.new) {
                    entries[b as usize] = block.offset;
                }
                // The new table lies after the old end of the file: only non-zero entries.
                let nonzero: Vec<usize> = (0..entries.len()).filter(|&i| entries[i] != 0).collect();
                block_writes.extend(entry_runs(offset, &nonzero, &entries));
                let mut header = offset.to_be_bytes().to_vec();
                header.extend_from_slice(&clusters.to_be_bytes());
                block_writes.push(PlannedWrite::Bytes {
                    offset: REFTABLE_HEADER_FIELDS,
                    data: header,
                });
            }
        }
        Ok(block_writes)
    }

    /// Give every changed cluster a refcount block: an existing one, or a new one (a new
    /// cluster, which needs counting too: repeat until nothing is missing).
    fn add_blocks(&mut self, blocks: &mut BTreeMap<u64, Block>, per_block: u64) -> Result<()> {
        let img = self.img;
        loop {
            let missing: BTreeSet<u64> = self
                .changes
                .keys()
                .map(|c| c / per_block)
                .filter(|b| !blocks.contains_key(b))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            for b in missing {
                let block = match self.table_entry(b)? {
                    0 => Block {
                        offset: img.allocate(self)?,
                        new: true,
                    },
                    offset => Block { offset, new: false },
                };
                blocks.insert(b, block);
            }
        }
    }

    /// Place a refcount table large enough for every block (the old one has no room),
    /// as qemu does: new clusters after the end of the file, the old table's clusters
    /// released. Returns its offset and size in clusters.
    fn grow_table(
        &mut self,
        blocks: &mut BTreeMap<u64, Block>,
        per_block: u64,
    ) -> Result<(u64, u32)> {
        let img = self.img;
        let cs = img.cluster_size();
        let old_clusters = u64::from(img.header.refcount_table_clusters);
        let start = img.next_free.get() / cs;
        // The table and the blocks it and they need must fit in it: find the size.
        let mut clusters = old_clusters + old_clusters.div_ceil(2);
        let end = loop {
            let mut end = start + clusters;
            loop {
                let mut missing = 0;
                for b in start / per_block..=(end - 1) / per_block {
                    if !blocks.contains_key(&b) && self.table_entry(b)? == 0 {
                        missing += 1;
                    }
                }
                if start + clusters + missing == end {
                    break;
                }
                end = start + clusters + missing;
            }
            let needed = ((end - 1) / per_block + 1).div_ceil(cs / 8);
            if needed <= clusters {
                break end;
            }
            clusters = needed;
        };
        if clusters * cs > MAX_REFTABLE_BYTES {
            return Err(Error::unsupported(format!(
                "cannot update the qcow2 image in place: its refcount table would grow to \
                 {} bytes, beyond qemu's limit of {MAX_REFTABLE_BYTES}",
                clusters * cs
            )));
        }
        let offset = img.allocate(self)?;
        for _ in 1..clusters {
            img.allocate(self)?;
        }
        if old_clusters > 0 {
            self.release(img.header.refcount_table_offset, old_clusters * cs)?;
        }
        self.add_blocks(blocks, per_block)?;
        if img.next_free.get() / cs != end || blocks.keys().any(|&b| b >= clusters * cs / 8) {
            return Err(Error::corrupt(
                "internal error: the grown refcount table does not cover its own blocks",
            ));
        }
        Ok((offset, clusters as u32))
    }

    /// Entries in the refcount table.
    fn table_entries(&self) -> u64 {
        u64::from(self.img.header.refcount_table_clusters) * self.img.cluster_size() / 8
    }

    /// The whole old refcount table (at most qemu's 8 MiB).
    fn old_table(&self) -> Result<Vec<u64>> {
        let img = self.img;
        let len = self.table_entries() * 8;
        if len > MAX_REFTABLE_BYTES {
            return Err(Error::corrupt(format!(
                "the refcount table ({len} bytes) is larger than qemu's limit of \
                 {MAX_REFTABLE_BYTES}"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        super::read_exact(
            img.file,
            &mut buf,
            img.header.refcount_table_offset,
            "the refcount table",
        )?;
        Ok(buf
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    /// The refcount table entry of block `b` (0: no block yet, or beyond the table).
    fn table_entry(&self, b: u64) -> Result<u64> {
        let img = self.img;
        let cs = img.cluster_size();
        if b >= self.table_entries() {
            return Ok(0);
        }
        let entry = img.read_be64(
            img.header.refcount_table_offset + 8 * b,
            "a refcount table entry",
        )?;
        let offset = entry & REFTABLE_OFFSET_MASK;
        if offset != 0 && (offset % cs != 0 || offset >= img.file_len) {
            return Err(Error::corrupt(format!(
                "refcount table entry {b} points to {offset:#x}, which is not a \
                 cluster-aligned offset inside the file ({} bytes)",
                img.file_len
            )));
        }
        Ok(offset)
    }
}

/// The byte range of refcount entry `i` in a block (a whole byte for narrow refcounts).
fn entry_bytes(i: u64, order: u32) -> (usize, usize) {
    if order >= 3 {
        let n = 1usize << (order - 3);
        (i as usize * n, i as usize * n + n)
    } else {
        let b = (i >> (3 - order)) as usize;
        (b, b + 1)
    }
}

/// Refcount entry `i` of a block with `1 << order`-bit entries.
fn get(block: &[u8], i: u64, order: u32) -> u64 {
    let (start, end) = entry_bytes(i, order);
    if order >= 3 {
        return block[start..end]
            .iter()
            .fold(0, |acc, &b| acc << 8 | u64::from(b));
    }
    let width = 1u32 << order;
    let shift = (i % (8 >> order)) as u32 * width;
    u64::from(block[start] >> shift) & ((1 << width) - 1)
}

/// Set refcount entry `i` (the value fits: it is 0, 1 or below an existing value).
fn set(block: &mut [u8], i: u64, order: u32, value: u64) {
    let (start, end) = entry_bytes(i, order);
    if order >= 3 {
        let n = end - start;
        block[start..end].copy_from_slice(&value.to_be_bytes()[8 - n..]);
        return;
    }
    let width = 1u32 << order;
    let shift = (i % (8 >> order)) as u32 * width;
    let mask = (((1u16 << width) - 1) << shift) as u8;
    block[start] = (block[start] & !mask) | ((value as u8) << shift & mask);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_round_trips_in_qemu_layout() {
        for order in 0..=6u32 {
            let mut b = vec![0u8; 64];
            let max = if order == 6 {
                u64::MAX
            } else {
                (1u64 << (1 << order)) - 1
            };
            set(&mut b, 3, order, max);
            set(&mut b, 4, order, 1);
            assert_eq!(get(&b, 3, order), max, "order {order}");
            assert_eq!(get(&b, 4, order), 1, "order {order}");
            assert_eq!(get(&b, 2, order), 0, "order {order}");
            assert_eq!(get(&b, 5, order), 0, "order {order}");
        }
        // qemu: 1-bit refcount i is bit i % 8 of byte i / 8; 16-bit ones are big-endian.
        let mut b = vec![0u8; 4];
        set(&mut b, 9, 0, 1);
        assert_eq!(b, [0, 2, 0, 0]);
        let mut b = vec![0u8; 4];
        set(&mut b, 1, 4, 0x0102);
        assert_eq!(b, [0, 0, 1, 2]);
        let mut b = vec![0u8; 1];
        set(&mut b, 1, 1, 3);
        assert_eq!(b, [0b1100]);
    }
}
