//! Direct access to the on-disk structures `fatfs` 0.3 does not expose: the BPB geometry,
//! cluster chains (followed with loop and range checks), 32-byte directory entries
//! (attributes, times) and the volume label in the boot sector and the root directory.
//!
//! Everything read from the volume is bounds-checked here; errors name the offset and
//! the value found.

use crate::block::BlockDevice;
use crate::{Error, Result};

/// Bytes of a directory entry.
pub const ENTRY: u64 = 32;
/// Most entries a directory may have (the FAT specification's limit).
const MAX_DIR_ENTRIES: u64 = 65536;

/// The layout of a FAT volume, from its boot sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// 12, 16 or 32 (32 when the 16-bit FAT size is zero, as Linux decides; else from the
    /// cluster count).
    pub fat_bits: u8,
    pub bytes_per_sector: u32,
    pub cluster_bytes: u32,
    /// Offset of the first FAT.
    pub fat_offset: u64,
    /// Bytes of one FAT.
    pub fat_bytes: u64,
    /// Offset of cluster 2.
    pub data_offset: u64,
    /// Data clusters (numbered 2 ..= clusters + 1).
    pub clusters: u32,
    /// FAT12/16: the fixed root directory (offset, bytes); FAT32: `None`.
    pub root_region: Option<(u64, u64)>,
    /// FAT32: the root directory's first cluster.
    pub root_cluster: u32,
    /// Offset of the volume id in the boot sector.
    pub id_offset: u64,
    /// The volume id.
    pub volume_id: u32,
    /// The label in the boot sector (space padded).
    pub bpb_label: [u8; 11],
}

fn le16(b: &[u8], o: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[o], b[o + 1]]))
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Read and check the boot sector of `dev`.
pub fn geometry(dev: &dyn BlockDevice) -> Result<Geometry> {
    if dev.len() < 512 {
        return Err(Error::corrupt(format!(
            "fat: the volume is {} bytes, too small for a boot sector",
            dev.len()
        )));
    }
    let mut s = [0u8; 512];
    dev.read_at(&mut s, 0)?;
    let bad = |what: &str, v: u64| {
        Error::corrupt(format!(
            "fat: boot sector: {what} is {v}, which is not valid"
        ))
    };
    if s[510] != 0x55 || s[511] != 0xAA {
        return Err(Error::corrupt(format!(
            "fat: boot sector signature is {:02x}{:02x}, expected 55aa",
            s[510], s[511]
        )));
    }
    let bps = le16(&s, 11);
    if !(512..=4096).contains(&bps) || !bps.is_power_of_two() {
        return Err(bad("bytes per sector (offset 11)", bps.into()));
    }
    let spc = u32::from(s[13]);
    if spc == 0 || !spc.is_power_of_two() {
        return Err(bad("sectors per cluster (offset 13)", spc.into()));
    }
    let cluster_bytes = bps * spc;
    if cluster_bytes > 1 << 21 {
        return Err(bad("the cluster size", cluster_bytes.into()));
    }
    let reserved = le16(&s, 14);
    if reserved == 0 {
        return Err(bad("reserved sectors (offset 14)", 0));
    }
    let fats = u32::from(s[16]);
    if fats == 0 || fats > 2 {
        return Err(bad("the number of FATs (offset 16)", fats.into()));
    }
    let root_entries = le16(&s, 17);
    let total = match le16(&s, 19) {
        0 => le32(&s, 32),
        n => n,
    };
    let fat_sectors = match le16(&s, 22) {
        0 => le32(&s, 36),
        n => n,
    };
    if fat_sectors == 0 {
        return Err(bad("sectors per FAT (offset 22/36)", 0));
    }
    let bps64 = u64::from(bps);
    let root_sectors = (u64::from(root_entries) * ENTRY).div_ceil(bps64);
    let data_sector = u64::from(reserved) + u64::from(fats) * u64::from(fat_sectors) + root_sectors;
    let total = u64::from(total);
    if total == 0 || data_sector >= total {
        return Err(Error::corrupt(format!(
            "fat: boot sector: {total} sectors in all, but the data region starts at sector {data_sector}"
        )));
    }
    if total * bps64 > dev.len() {
        return Err(Error::corrupt(format!(
            "fat: boot sector: the volume claims {} bytes but the device has {}",
            total * bps64,
            dev.len()
        )));
    }
    let clusters = ((total - data_sector) / u64::from(spc)) as u32;
    // As Linux and fsck.fat decide (and `sniff`): no 16-bit FAT size means FAT32, whatever
    // the cluster count (`mkfs.fat -F 32` makes FAT32 volumes of fewer than 65525
    // clusters on small devices); otherwise the count decides between 12 and 16.
    let fat_bits = if le16(&s, 22) == 0 {
        32
    } else if clusters < 4085 {
        12
    } else {
        16
    };
    let fat_bytes = u64::from(fat_sectors) * bps64;
    let need = (u64::from(clusters) + 2) * u64::from(fat_bits) / 8;
    if fat_bytes < need {
        return Err(Error::corrupt(format!(
            "fat: boot sector: a FAT of {fat_bytes} bytes cannot map {clusters} clusters ({need} bytes needed)"
        )));
    }
    if fat_bits == 32 && root_entries != 0 {
        return Err(bad("FAT32 root entries (offset 17)", root_entries.into()));
    }
    if fat_bits != 32 && root_entries == 0 {
        return Err(bad("FAT12/16 root entries (offset 17)", 0));
    }
    let fat_offset = u64::from(reserved) * bps64;
    let root_offset = fat_offset + u64::from(fats) * fat_bytes;
    let (root_region, root_cluster, id_offset, label_offset) = if fat_bits == 32 {
        let rc = le32(&s, 44) & 0x0FFF_FFFF;
        if rc < 2 || rc > clusters + 1 {
            return Err(bad("the root directory cluster (offset 44)", rc.into()));
        }
        (None, rc, 67, 71)
    } else {
        (Some((root_offset, root_sectors * bps64)), 0, 39, 43)
    };
    let mut bpb_label = [b' '; 11];
    bpb_label.copy_from_slice(&s[label_offset..label_offset + 11]);
    Ok(Geometry {
        fat_bits,
        bytes_per_sector: bps,
        cluster_bytes,
        fat_offset,
        fat_bytes,
        data_offset: data_sector * bps64,
        clusters,
        root_region,
        root_cluster,
        id_offset,
        volume_id: le32(&s, id_offset as usize),
        bpb_label,
    })
}

/// Fewest clusters of a FAT32 volume by the FAT specification (and for `fatfs`, which
/// decides the FAT width by cluster count alone).
pub const FAT32_MIN_CLUSTERS: u32 = 65525;

impl Geometry {
    /// A FAT32 volume of fewer than [`FAT32_MIN_CLUSTERS`] clusters: `mkfs.fat -F 32`
    /// makes these on devices under about 32 MiB; Linux and fsck.fat accept them.
    pub fn is_small_fat32(&self) -> bool {
        self.fat_bits == 32 && self.clusters < FAT32_MIN_CLUSTERS
    }

    /// Byte offset of cluster `c` (checked to be a data cluster).
    pub fn cluster_offset(&self, c: u32) -> Result<u64> {
        self.check_cluster(c)?;
        Ok(self.data_offset + u64::from(c - 2) * u64::from(self.cluster_bytes))
    }

    fn check_cluster(&self, c: u32) -> Result<()> {
        if c < 2 || c > self.clusters + 1 {
            return Err(Error::corrupt(format!(
                "fat: cluster {c} is outside the data region (2..={})",
                self.clusters + 1
            )));
        }
        Ok(())
    }

    /// The raw FAT entry of cluster `c` (12, 16 or 28 bits), read through `cache`.
    fn fat_entry(&self, dev: &dyn BlockDevice, cache: &mut FatCache, c: u32) -> Result<u32> {
        self.check_cluster(c)?;
        Ok(match self.fat_bits {
            12 => {
                let off = u64::from(c) + u64::from(c) / 2;
                let w = u32::from(u16::from_le_bytes(cache.read(dev, self.fat_offset + off)?));
                if c & 1 == 1 {
                    w >> 4
                } else {
                    w & 0xFFF
                }
            }
            16 => u32::from(u16::from_le_bytes(
                cache.read(dev, self.fat_offset + 2 * u64::from(c))?,
            )),
            _ => {
                u32::from_le_bytes(cache.read(dev, self.fat_offset + 4 * u64::from(c))?)
                    & 0x0FFF_FFFF
            }
        })
    }

    /// The smallest FAT entry value that ends a chain (and the one that marks a bad
    /// cluster is one less).
    fn end_of_chain(&self) -> u32 {
        match self.fat_bits {
            12 => 0xFF8,
            16 => 0xFFF8,
            _ => 0x0FFF_FFF8,
        }
    }

    /// The FAT entry of cluster `c`: `None` at the end of a chain, else the next cluster.
    pub fn next(&self, dev: &dyn BlockDevice, c: u32) -> Result<Option<u32>> {
        let v = self.fat_entry(dev, &mut FatCache::default(), c)?;
        if v >= self.end_of_chain() {
            return Ok(None);
        }
        if v < 2 || v > self.clusters + 1 {
            return Err(Error::corrupt(format!(
                "fat: the FAT entry of cluster {c} is {v:#x}: neither a cluster nor end of chain"
            )));
        }
        Ok(Some(v))
    }

    /// The clusters in use (FAT entry not 0).
    pub fn used_clusters(&self, dev: &dyn BlockDevice) -> Result<u64> {
        let mut cache = FatCache::default();
        let mut n = 0;
        for c in 2..self.clusters + 2 {
            if self.fat_entry(dev, &mut cache, c)? != 0 {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Check the cluster chain of a file of `size` bytes that starts at `first`, as
    /// fsck.fat does: every link is a data cluster (not free, not bad, not past the end of
    /// the volume), the chain does not loop, and it has at least the clusters the size
    /// needs (a longer chain is harmless: the file ends at its size). The error says what
    /// was found; the caller names the file.
    pub fn check_file_chain(&self, dev: &dyn BlockDevice, first: u32, size: u64) -> Result<()> {
        let cs = u64::from(self.cluster_bytes);
        let needed = size.div_ceil(cs);
        if first == 0 {
            if needed == 0 {
                return Ok(());
            }
            return Err(Error::corrupt(format!(
                "its size is {size} bytes but its directory entry gives it no cluster"
            )));
        }
        if first < 2 || first > self.clusters + 1 {
            return Err(Error::corrupt(format!(
                "its first cluster {first} is outside the data region (2..={})",
                self.clusters + 1
            )));
        }
        // Only the clusters the size needs are followed: the kernel reads no further.
        let mut cache = FatCache::default();
        let mut seen = Visited::for_chain(needed, self.clusters);
        let (mut c, mut n) = (first, 1u64);
        loop {
            if !seen.insert(c) {
                return Err(Error::corrupt(format!(
                    "its cluster chain loops: after {} clusters it comes back to cluster {c}, \
                     but its size ({size} bytes) needs {needed}",
                    n - 1
                )));
            }
            if n >= needed {
                return Ok(());
            }
            let v = self.fat_entry(dev, &mut cache, c)?;
            let found = if v >= self.end_of_chain() {
                return Err(Error::corrupt(format!(
                    "its cluster chain ends after {n} clusters ({} bytes) but its size is \
                     {size} bytes",
                    n * cs
                )));
            } else if v == 0 {
                "a free cluster (FAT entry 0)".to_string()
            } else if v == self.end_of_chain() - 1 {
                format!("a bad-cluster mark ({v:#x})")
            } else if v == 1 || v > self.clusters + 1 {
                format!(
                    "cluster {v}, past the end of the volume (the last is {})",
                    self.clusters + 1
                )
            } else {
                c = v;
                n += 1;
                continue;
            };
            return Err(Error::corrupt(format!(
                "cluster {n} of its chain (cluster {c}) is followed by {found}, but its size \
                 ({size} bytes) needs {needed} clusters"
            )));
        }
    }

    /// Follow the chain from `first`, checking every link, and return its length; `limit`
    /// bounds the length (a longer chain is an error, as is a loop).
    pub fn chain_len(&self, dev: &dyn BlockDevice, first: u32, limit: u64) -> Result<u64> {
        let mut n = 1u64;
        let mut c = first;
        let cap = limit.min(u64::from(self.clusters));
        while let Some(next) = self.next(dev, c)? {
            n += 1;
            if n > cap {
                return Err(Error::corrupt(format!(
                    "fat: the cluster chain from {first} is longer than {cap} clusters (a loop?)"
                )));
            }
            c = next;
        }
        Ok(n)
    }

    /// The byte ranges of the directory starting at `first` (`0` = the root).
    pub fn dir_regions(&self, dev: &dyn BlockDevice, first: u32) -> Result<Vec<(u64, u64)>> {
        if first == 0 {
            if let Some(r) = self.root_region {
                return Ok(vec![r]);
            }
            return self.dir_regions(dev, self.root_cluster);
        }
        let limit = MAX_DIR_ENTRIES * ENTRY / u64::from(self.cluster_bytes) + 1;
        let mut v = vec![(self.cluster_offset(first)?, u64::from(self.cluster_bytes))];
        let mut c = first;
        while let Some(next) = self.next(dev, c)? {
            if v.len() as u64 >= limit {
                return Err(Error::corrupt(format!(
                    "fat: the directory at cluster {first} spans more than {limit} clusters (a loop?)"
                )));
            }
            v.push((self.cluster_offset(next)?, u64::from(self.cluster_bytes)));
            c = next;
        }
        Ok(v)
    }
}

/// The clusters of a chain seen so far: a set for a short chain, a bitmap of the volume's
/// clusters (at most 32 MiB, for the largest FAT32) for a long one.
enum Visited {
    Few(std::collections::HashSet<u32>),
    Bitmap(Vec<u64>),
}

impl Visited {
    /// For a chain of `needed` clusters on a volume of `clusters`.
    fn for_chain(needed: u64, clusters: u32) -> Self {
        if needed <= 4096 {
            Visited::Few(std::collections::HashSet::new())
        } else {
            Visited::Bitmap(vec![0; (clusters as usize + 2).div_ceil(64)])
        }
    }

    /// Record `c`; false when it was seen before.
    fn insert(&mut self, c: u32) -> bool {
        match self {
            Visited::Few(set) => set.insert(c),
            Visited::Bitmap(bits) => {
                let (word, bit) = (c as usize / 64, 1u64 << (c % 64));
                let new = bits[word] & bit == 0;
                bits[word] |= bit;
                new
            }
        }
    }
}

/// The last 4 KiB of the FAT read, so that following a chain costs one read per 4 KiB of
/// FAT rather than one per cluster.
#[derive(Default)]
struct FatCache {
    at: u64,
    buf: Vec<u8>,
}

impl FatCache {
    /// The `N` bytes at device offset `off`.
    fn read<const N: usize>(&mut self, dev: &dyn BlockDevice, off: u64) -> Result<[u8; N]> {
        const BLOCK: u64 = 4096;
        let mut out = [0u8; N];
        let start = off - off % BLOCK;
        if off + N as u64 > start + BLOCK {
            dev.read_at(&mut out, off)?; // straddles two blocks (FAT12)
            return Ok(out);
        }
        if self.buf.is_empty() || self.at != start {
            let len = BLOCK.min(dev.len().saturating_sub(start)) as usize;
            self.buf = vec![0; len];
            dev.read_at(&mut self.buf, start)?;
            self.at = start;
        }
        let i = (off - start) as usize;
        let got = self.buf.get(i..i + N).ok_or_else(|| {
            Error::corrupt(format!(
                "fat: the FAT entry at offset {off} is past the device's end"
            ))
        })?;
        out.copy_from_slice(got);
        Ok(out)
    }
}

/// The live short entries of the directory at cluster `first` (`0` = the root) by their
/// raw 11-byte names.
pub fn short_entries(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    first: u32,
) -> Result<std::collections::HashMap<[u8; 11], [u8; 32]>> {
    let regions = geo.dir_regions(dev, first)?;
    let mut map = std::collections::HashMap::new();
    scan(dev, &regions, &mut |_, e| {
        if e[11] & 0x08 == 0 {
            let mut name = [0u8; 11];
            name.copy_from_slice(&e[..11]);
            map.insert(name, *e);
        }
        false
    })?;
    Ok(map)
}

/// The first cluster recorded in a directory entry.
pub fn first_cluster(e: &[u8; 32], fat_bits: u8) -> u32 {
    let lo = u32::from(u16::from_le_bytes([e[26], e[27]]));
    let hi = if fat_bits == 32 {
        u32::from(u16::from_le_bytes([e[20], e[21]]))
    } else {
        0
    };
    (hi << 16) | lo
}

/// The 11-byte on-disk short name of a `NAME.EXT` short name as `fatfs` shows it.
pub fn raw_short_name(shown: &[u8]) -> Result<[u8; 11]> {
    let mut raw = [b' '; 11];
    let (name, ext) = match shown.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => (&shown[..i], &shown[i + 1..]),
        _ => (shown, &[][..]),
    };
    if name.is_empty() || name.len() > 8 || ext.len() > 3 {
        return Err(Error::corrupt(format!(
            "fat: {:?} is not a valid short name",
            String::from_utf8_lossy(shown)
        )));
    }
    raw[..name.len()].copy_from_slice(name);
    raw[8..8 + ext.len()].copy_from_slice(ext);
    if raw[0] == 0xE5 {
        raw[0] = 0x05;
    }
    Ok(raw)
}

/// Visit the live short entries of a directory (not long-name parts, not deleted, not
/// volume labels) as (offset, bytes), until `f` returns `true` or the end marker.
fn scan(
    dev: &dyn BlockDevice,
    regions: &[(u64, u64)],
    f: &mut dyn FnMut(u64, &[u8; 32]) -> bool,
) -> Result<()> {
    let mut buf = vec![0u8; 4096];
    for &(off, len) in regions {
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(buf.len() as u64) as usize;
            dev.read_at(&mut buf[..n], off + pos)?;
            for (i, e) in buf[..n].chunks_exact(32).enumerate() {
                let mut ent = [0u8; 32];
                ent.copy_from_slice(e);
                if ent[0] == 0 {
                    return Ok(());
                }
                if ent[0] == 0xE5 || ent[11] == 0x0F {
                    continue;
                }
                if f(off + pos + i as u64 * ENTRY, &ent) {
                    return Ok(());
                }
            }
            pos += n as u64;
        }
    }
    Ok(())
}

/// Find the entry at the path of raw short names `path` (from the root): its offset and
/// bytes.
pub fn find_entry(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    path: &[[u8; 11]],
) -> Result<(u64, [u8; 32])> {
    let mut dir = 0u32;
    let mut found = None;
    for (i, want) in path.iter().enumerate() {
        if i > 0 {
            let (_, e) = found.ok_or_else(|| Error::corrupt("fat: empty path"))?;
            dir = first_cluster(&e, geo.fat_bits);
            if dir == 0 {
                return Err(Error::corrupt(format!(
                    "fat: directory {:?} has no cluster",
                    String::from_utf8_lossy(&path[i - 1])
                )));
            }
        }
        let regions = geo.dir_regions(dev, dir)?;
        let mut hit = None;
        scan(dev, &regions, &mut |off, e| {
            if e[11] & 0x08 == 0 && e[..11] == want[..] {
                hit = Some((off, *e));
                true
            } else {
                false
            }
        })?;
        found = Some(hit.ok_or_else(|| {
            Error::corrupt(format!(
                "fat: no directory entry {:?} found on disk",
                String::from_utf8_lossy(want)
            ))
        })?);
    }
    found.ok_or_else(|| Error::InvalidArgument("fat: the root has no directory entry".into()))
}

/// The root directory's volume-label entry: offset and label.
pub fn root_label(dev: &dyn BlockDevice, geo: &Geometry) -> Result<Option<(u64, [u8; 11])>> {
    let regions = geo.dir_regions(dev, 0)?;
    let mut hit = None;
    scan(dev, &regions, &mut |off, e| {
        if e[11] & 0x08 != 0 && e[11] & 0x10 == 0 {
            let mut l = [0u8; 11];
            l.copy_from_slice(&e[..11]);
            hit = Some((off, l));
            true
        } else {
            false
        }
    })?;
    Ok(hit)
}

/// Write `label` into the boot sector (and the FAT32 backup boot sector) and into the
/// root directory's label entry, which is created in the first free slot if missing.
pub fn set_label(dev: &dyn BlockDevice, geo: &Geometry, label: &[u8; 11]) -> Result<()> {
    let label_offset = geo.id_offset + 4;
    dev.write_at(label, label_offset)?;
    if geo.fat_bits == 32 {
        let mut b = [0u8; 2];
        dev.read_at(&mut b, 50)?;
        let backup = u64::from(u16::from_le_bytes(b));
        if backup != 0 && backup != 0xFFFF {
            dev.write_at(
                label,
                backup * u64::from(geo.bytes_per_sector) + label_offset,
            )?;
        }
    }
    let mut ent = [0u8; 32];
    ent[..11].copy_from_slice(label);
    ent[11] = 0x08;
    if let Some((off, _)) = root_label(dev, geo)? {
        let mut old = [0u8; 32];
        dev.read_at(&mut old, off)?;
        ent[12..].copy_from_slice(&old[12..]);
        return dev.write_at(&ent, off);
    }
    // The first free (end-marker or deleted) slot of the root directory.
    for (off, len) in geo.dir_regions(dev, 0)? {
        let mut pos = 0;
        while pos + ENTRY <= len {
            let mut b = [0u8; 1];
            dev.read_at(&mut b, off + pos)?;
            if b[0] == 0 || b[0] == 0xE5 {
                return dev.write_at(&ent, off + pos);
            }
            pos += ENTRY;
        }
    }
    Err(Error::unsupported(
        "fat: the root directory is full; no slot for the volume label",
    ))
}

/// Rewrite a new directory's first cluster as exactly a `.` and a `..` entry (short
/// entries only, times from `like`, the directory's own entry) followed by zeros.
///
/// `fatfs` 0.3 writes long-name entries in front of `.` and `..` and points `..` of a
/// top-level directory at the FAT32 root cluster; `fsck.fat` rejects both.
pub fn init_dir(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    like: &[u8; 32],
    parent_cluster: u32,
) -> Result<()> {
    let me = first_cluster(like, geo.fat_bits);
    let off = geo.cluster_offset(me)?;
    let mut buf = vec![0u8; geo.cluster_bytes as usize];
    for (i, (name, c)) in [
        (&b".          "[..], me),
        (&b"..         "[..], parent_cluster),
    ]
    .into_iter()
    .enumerate()
    {
        let e = &mut buf[i * 32..i * 32 + 32];
        e[..11].copy_from_slice(name);
        e[11] = 0x10;
        e[13..26].copy_from_slice(&like[13..26]);
        e[20..22].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
        e[26..28].copy_from_slice(&(c as u16).to_le_bytes());
    }
    dev.write_at(&buf, off)
}

/// Count the free clusters by reading the whole FAT (in 64 KiB pieces) and record the
/// count and the first free cluster in the FAT32 FSInfo sector (`fatfs` leaves them
/// "unknown" after formatting, which `fsck.fat` reports).
pub fn write_fsinfo(dev: &dyn BlockDevice, geo: &Geometry) -> Result<()> {
    if geo.fat_bits != 32 {
        return Ok(());
    }
    let mut b = [0u8; 2];
    dev.read_at(&mut b, 48)?;
    let sector = u64::from(u16::from_le_bytes(b));
    let off = sector * u64::from(geo.bytes_per_sector);
    if sector == 0 || sector == 0xFFFF || off + 512 > geo.fat_offset {
        return Ok(());
    }
    let mut fsinfo = [0u8; 512];
    dev.read_at(&mut fsinfo, off)?;
    if le32(&fsinfo, 0) != 0x4161_5252 || le32(&fsinfo, 484) != 0x6141_7272 {
        return Err(Error::corrupt(format!(
            "fat: the FSInfo sector {sector} has no FSInfo signatures"
        )));
    }
    let mut free = 0u32;
    let mut first_free = None;
    let mut buf = vec![0u8; 64 << 10];
    let last = u64::from(geo.clusters) + 1;
    let mut c = 2u64;
    while c <= last {
        let n = (last + 1 - c).min(buf.len() as u64 / 4);
        let chunk = &mut buf[..(n * 4) as usize];
        dev.read_at(chunk, geo.fat_offset + 4 * c)?;
        for (i, e) in chunk.chunks_exact(4).enumerate() {
            if u32::from_le_bytes([e[0], e[1], e[2], e[3]]) & 0x0FFF_FFFF == 0 {
                free += 1;
                first_free.get_or_insert(c + i as u64);
            }
        }
        c += n;
    }
    fsinfo[488..492].copy_from_slice(&free.to_le_bytes());
    let hint = first_free.map_or(0xFFFF_FFFF, |f| f as u32);
    fsinfo[492..496].copy_from_slice(&hint.to_le_bytes());
    dev.write_at(&fsinfo, off)
}

/// The short-name checksum long-name entries carry.
fn sfn_checksum(name: &[u8]) -> u8 {
    name.iter().fold(0u8, |s, &b| {
        ((s & 1) << 7).wrapping_add(s >> 1).wrapping_add(b)
    })
}

/// Every live entry of the directory starting at `first` (`0` = the root) except `.`,
/// `..` and volume labels: (name, offset of the short entry). The name is the long name
/// when a valid one (checksum matching) precedes the short entry, else `NAME.EXT`.
pub fn dir_names(dev: &dyn BlockDevice, geo: &Geometry, first: u32) -> Result<Vec<(String, u64)>> {
    let regions = geo.dir_regions(dev, first)?;
    let mut out = Vec::new();
    let mut lfn: Vec<u16> = Vec::new();
    let mut lfn_sum: Option<u8> = None;
    let (mut parts, mut seen) = (0usize, 0usize);
    let mut buf = vec![0u8; 4096];
    'outer: for &(off, len) in &regions {
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(buf.len() as u64) as usize;
            dev.read_at(&mut buf[..n], off + pos)?;
            for (i, e) in buf[..n].chunks_exact(32).enumerate() {
                if e[0] == 0 {
                    break 'outer;
                }
                if e[0] == 0xE5 {
                    lfn_sum = None;
                    continue;
                }
                if e[11] & 0x3F == 0x0F {
                    let order = usize::from(e[0] & 0x1F);
                    if e[0] & 0x40 != 0 {
                        lfn = vec![0; order * 13];
                        lfn_sum = Some(e[13]);
                        (parts, seen) = (order, 0);
                    }
                    if order == 0 || order * 13 > lfn.len() || lfn_sum != Some(e[13]) {
                        lfn_sum = None;
                        continue;
                    }
                    seen += 1;
                    let at = (order - 1) * 13;
                    let units = e[1..11]
                        .chunks_exact(2)
                        .chain(e[14..26].chunks_exact(2))
                        .chain(e[28..32].chunks_exact(2));
                    for (k, u) in units.enumerate() {
                        lfn[at + k] = u16::from_le_bytes([u[0], u[1]]);
                    }
                    continue;
                }
                let sum = lfn_sum.take();
                if e[11] & 0x08 != 0 || e[0] == b'.' {
                    continue;
                }
                let name = if sum == Some(sfn_checksum(&e[..11])) && seen == parts {
                    let end = lfn.iter().position(|&u| u == 0).unwrap_or(lfn.len());
                    String::from_utf16_lossy(&lfn[..end])
                } else {
                    let mut raw = [0u8; 11];
                    raw.copy_from_slice(&e[..11]);
                    if raw[0] == 0x05 {
                        raw[0] = 0xE5;
                    }
                    let base = String::from_utf8_lossy(&raw[..8]).trim_end().to_string();
                    let ext = String::from_utf8_lossy(&raw[8..]).trim_end().to_string();
                    if ext.is_empty() {
                        base
                    } else {
                        format!("{base}.{ext}")
                    }
                };
                out.push((name, off + pos + i as u64 * ENTRY));
                if out.len() as u64 > MAX_DIR_ENTRIES {
                    return Err(Error::corrupt(format!(
                        "fat: the directory at cluster {first} has more than {MAX_DIR_ENTRIES} entries"
                    )));
                }
            }
            pos += n as u64;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revisited_cluster_is_seen_by_both_kinds_of_set() {
        for needed in [3, 1 << 20] {
            let mut v = Visited::for_chain(needed, 70_000);
            assert!(v.insert(2) && v.insert(69_999) && v.insert(70_001));
            assert!(!v.insert(69_999), "needed {needed}");
        }
    }
}
