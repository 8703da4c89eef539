//! The chunk mapping: logical addresses (what trees and extents name) to offsets on this
//! device. Built from the superblock's bootstrap array, then the chunk tree. SINGLE and
//! DUP chunks are read (DUP from its first copy, the second when the first is bad); the
//! RAID profiles are named and refused, as is a filesystem of several devices.

use super::{u16_at, u64_at, Key, KEY_LEN};
use crate::{Error, Result};

/// Block-group profile bits of a chunk's type.
const RAID0: u64 = 1 << 3;
const RAID1: u64 = 1 << 4;
const DUP: u64 = 1 << 5;
const RAID10: u64 = 1 << 6;
const RAID5: u64 = 1 << 7;
const RAID6: u64 = 1 << 8;
const RAID1C3: u64 = 1 << 9;
const RAID1C4: u64 = 1 << 10;

/// Bytes of a chunk item before its stripes, and of one stripe.
const CHUNK_HEAD: usize = 48;
const STRIPE_LEN: usize = 32;

/// One chunk: `len` logical bytes from `logical`, stored at each of `copies` on this
/// device (one for SINGLE, two for DUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub logical: u64,
    pub len: u64,
    pub flags: u64,
    pub copies: Vec<u64>,
}

/// The name of the profile in a chunk's type bits (`single` when none).
pub fn profile_name(flags: u64) -> &'static str {
    for (bit, name) in [
        (RAID0, "RAID0"),
        (RAID1, "RAID1"),
        (DUP, "DUP"),
        (RAID10, "RAID10"),
        (RAID5, "RAID5"),
        (RAID6, "RAID6"),
        (RAID1C3, "RAID1C3"),
        (RAID1C4, "RAID1C4"),
    ] {
        if flags & bit != 0 {
            return name;
        }
    }
    "single"
}

/// Decode the chunk item at `at` in `b` (for the chunk at `logical`), checking that it is
/// a profile this reader handles on device `devid`. Returns the chunk and the item's size.
pub fn parse_chunk(b: &[u8], at: usize, logical: u64, devid: u64) -> Result<(Chunk, usize)> {
    let what = "a chunk item";
    let len = u64_at(b, at, what)?;
    let flags = u64_at(b, at + 24, what)?;
    let n = usize::from(u16_at(b, at + 44, what)?);
    if len == 0 || n == 0 {
        return Err(Error::corrupt(format!(
            "btrfs: the chunk at logical {logical} has length {len} and {n} stripes"
        )));
    }
    let profile = profile_name(flags);
    if flags & (RAID0 | RAID1 | RAID10 | RAID5 | RAID6 | RAID1C3 | RAID1C4) != 0 {
        return Err(Error::unsupported(format!(
            "btrfs: the chunk at logical {logical} is {profile}; subroot reads single and DUP \
             chunks of a one-device btrfs"
        )));
    }
    let mut copies = Vec::with_capacity(n.min(2));
    for i in 0..n {
        let s = at + CHUNK_HEAD + i * STRIPE_LEN;
        let dev = u64_at(b, s, what)?;
        if dev != devid {
            return Err(Error::unsupported(format!(
                "btrfs: the chunk at logical {logical} lies on device {dev}, not on this one \
                 (device {devid}); subroot reads a one-device btrfs"
            )));
        }
        copies.push(u64_at(b, s + 8, what)?);
    }
    if n != if flags & DUP != 0 { 2 } else { 1 } {
        return Err(Error::corrupt(format!(
            "btrfs: the {profile} chunk at logical {logical} has {n} stripes"
        )));
    }
    Ok((
        Chunk {
            logical,
            len,
            flags,
            copies,
        },
        CHUNK_HEAD + n * STRIPE_LEN,
    ))
}

/// All chunks known, sorted by logical address, not overlapping.
#[derive(Debug, Clone, Default)]
pub struct ChunkMap {
    chunks: Vec<Chunk>,
    /// Bytes of the device: every copy must lie inside.
    dev_len: u64,
}

impl ChunkMap {
    pub fn new(dev_len: u64) -> Self {
        ChunkMap {
            chunks: Vec::new(),
            dev_len,
        }
    }

    /// The chunks of the superblock's bootstrap array.
    pub fn bootstrap(array: &[u8], devid: u64, dev_len: u64) -> Result<ChunkMap> {
        let mut map = ChunkMap::new(dev_len);
        let mut at = 0;
        while at < array.len() {
            let key = Key::parse(array, at)?;
            if key.ty != super::key_type::CHUNK_ITEM {
                return Err(Error::corrupt(format!(
                    "btrfs: the bootstrap chunk array holds an item of type {} (chunks expected)",
                    key.ty
                )));
            }
            let (chunk, size) = parse_chunk(array, at + KEY_LEN, key.offset, devid)?;
            map.insert(chunk)?;
            at += KEY_LEN + size;
        }
        if map.chunks.is_empty() {
            return Err(Error::corrupt("btrfs: the bootstrap chunk array is empty"));
        }
        Ok(map)
    }

    /// Add a chunk (one already there with the same address and length is ignored).
    pub fn insert(&mut self, c: Chunk) -> Result<()> {
        let end = c.logical.checked_add(c.len);
        for &p in &c.copies {
            if end.is_none() || p.checked_add(c.len).is_none_or(|e| e > self.dev_len) {
                return Err(Error::corrupt(format!(
                    "btrfs: the chunk at logical {} ({} bytes) is mapped to offset {p}, past \
                     the end of the device ({} bytes)",
                    c.logical, c.len, self.dev_len
                )));
            }
        }
        let i = self.chunks.partition_point(|x| x.logical < c.logical);
        if self.chunks.get(i) == Some(&c) {
            return Ok(());
        }
        let overlaps_next = self
            .chunks
            .get(i)
            .is_some_and(|n| n.logical < c.logical + c.len);
        let overlaps_prev =
            i > 0 && self.chunks[i - 1].logical + self.chunks[i - 1].len > c.logical;
        if overlaps_next || overlaps_prev {
            return Err(Error::corrupt(format!(
                "btrfs: the chunk at logical {} overlaps another",
                c.logical
            )));
        }
        self.chunks.insert(i, c);
        Ok(())
    }

    /// The device offsets of the copies of `logical`, and how many bytes from there lie in
    /// the same chunk.
    pub fn map(&self, logical: u64) -> Result<(Vec<u64>, u64)> {
        let i = self.chunks.partition_point(|c| c.logical <= logical);
        let c = i
            .checked_sub(1)
            .map(|i| &self.chunks[i])
            .filter(|c| logical - c.logical < c.len)
            .ok_or_else(|| {
                Error::corrupt(format!("btrfs: logical address {logical} lies in no chunk"))
            })?;
        let off = logical - c.logical;
        Ok((c.copies.iter().map(|p| p + off).collect(), c.len - off))
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// True when no chunk is known.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(logical: u64, len: u64, copies: &[u64]) -> Chunk {
        Chunk {
            logical,
            len,
            flags: if copies.len() == 2 { DUP } else { 0 },
            copies: copies.to_vec(),
        }
    }

    #[test]
    fn logical_addresses_map_to_every_copy_within_their_chunk() {
        let mut m = ChunkMap::new(100 << 20);
        m.insert(chunk(1 << 20, 4 << 20, &[1 << 20])).unwrap();
        m.insert(chunk(30 << 20, 8 << 20, &[40 << 20, 50 << 20]))
            .unwrap();
        assert_eq!(
            m.map((1 << 20) + 5).unwrap(),
            (vec![(1 << 20) + 5], (4 << 20) - 5)
        );
        assert_eq!(
            m.map(31 << 20).unwrap(),
            (vec![41 << 20, 51 << 20], 7 << 20)
        );
        assert!(m.map(10 << 20).is_err());
        assert!(m.map(0).is_err());
    }

    #[test]
    fn overlapping_chunks_and_copies_past_the_end_are_refused() {
        let mut m = ChunkMap::new(100 << 20);
        m.insert(chunk(1 << 20, 4 << 20, &[1 << 20])).unwrap();
        let e = m.insert(chunk(2 << 20, 4 << 20, &[20 << 20])).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        let e = m.insert(chunk(50 << 20, 4 << 20, &[98 << 20])).unwrap_err();
        assert!(e.to_string().contains("past the end of the device"), "{e}");
        let e = m.insert(chunk(u64::MAX - 5, 10, &[0])).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
    }

    #[test]
    fn raid_profiles_and_other_devices_are_named() {
        let mut item = vec![0u8; CHUNK_HEAD + 2 * STRIPE_LEN];
        item[..8].copy_from_slice(&(1u64 << 20).to_le_bytes());
        item[24..32].copy_from_slice(&RAID1.to_le_bytes());
        item[44] = 2;
        item[48..56].copy_from_slice(&1u64.to_le_bytes());
        item[80..88].copy_from_slice(&2u64.to_le_bytes());
        let e = parse_chunk(&item, 0, 0, 1).unwrap_err();
        assert!(e.to_string().contains("is RAID1"), "{e}");
        item[24..32].copy_from_slice(&0u64.to_le_bytes());
        item[44] = 1;
        item[48..56].copy_from_slice(&2u64.to_le_bytes());
        let e = parse_chunk(&item, 0, 0, 1).unwrap_err();
        assert!(e.to_string().contains("device 2"), "{e}");
    }
}
