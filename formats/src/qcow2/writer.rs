//! A streaming writer for new qcow2 v3 images from any [`BlockDevice`].
//!
//! The source is walked once, in increasing guest order ([`crate::convert`]'s data walk);
//! all-zero clusters are left unallocated, the others are stored as they are or compressed
//! (zlib or zstd, in parallel). The host file is allocated strictly sequentially:
//!
//! ```text
//! header | L1 table | data clusters and L2 tables as they come ... | refcount table (+ last blocks)
//! ```
//!
//! Memory stays bounded whatever the image size:
//! - an L2 table is complete once the walk passes its guest range, so only the current one
//!   is kept; it is written then, and its L1 entry goes into a one-cluster L1 buffer that is
//!   written out when the walk passes that part of the L1 (the L1 itself is never held whole);
//! - refcount blocks are interleaved with the data: when the allocation pointer first enters
//!   the host range a refcount block covers, the block gets the next free cluster, and it is
//!   written once the pointer has passed its range (refcounts behind the pointer never change,
//!   as compressed data is packed sequentially too). Only the list of refcount block offsets
//!   (the refcount table, at most qemu's 8 MiB limit) is kept until the end, where the table
//!   is placed with a fixed-point computation so that it and any block it needs are counted.
//!
//! The header is written last, then the file is synced: a crash leaves no valid image.

use super::entry::{csize_shift, COMPRESSED, COPIED, SECTOR};
use super::header::CompressionType;
pub use crate::sparse_copy::WriteStats;

use crate::block::BlockDevice;
use crate::sparse_copy::{all_zero, for_each_data_chunk, map_chunks_in_order, Writeback, CHUNK};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Host offsets in L1/L2 entries have 56 bits.
const MAX_HOST_END: u64 = 1 << 56;
/// qemu refuses L1 tables larger than this (QCOW_MAX_L1_SIZE).
const MAX_L1_BYTES: u64 = 32 << 20;
/// qemu refuses refcount tables larger than this (QCOW_MAX_REFTABLE_SIZE).
const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// The length of the v3 header written here (ends with the compression type byte + padding).
const HEADER_LEN: usize = 112;
/// Incompatible feature bit 3: the compression type field is not zlib.
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Compressed data is buffered and written in pieces of about this size.
const WRITE_BUFFER: usize = 8 << 20;
/// L2 entry flag (v3): the cluster reads as zeros, not from the backing file.
const ZERO_FLAG: u64 = 1;
/// The backing file format header extension.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Longest backing file name qemu accepts.
const MAX_BACKING_NAME: usize = 1023;

/// How to write a qcow2 image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Cluster size in bytes: a power of two in 512..=2 MiB (default 64 KiB).
    pub cluster_size: u64,
    /// Compress data clusters with this algorithm; `None` stores them as they are.
    pub compression: Option<CompressionType>,
    /// Compression worker threads; 0 means the available parallelism.
    pub threads: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            cluster_size: 65536,
            compression: None,
            threads: 0,
        }
    }
}

/// Write `src` as a new qcow2 v3 image to `out` (an empty file opened read+write).
///
/// The virtual size is `src.len()` rounded up to a multiple of 512 (as qemu does). All-zero
/// clusters stay unallocated. Calls `progress(bytes_of_virtual_disk_done)` now and then,
/// monotonically, ending at `src.len()`. Fails with [`Error::InvalidArgument`] for a bad
/// cluster size, [`Error::Unsupported`] when the image would exceed qemu's table limits.
pub fn write_qcow2(
    src: &dyn BlockDevice,
    out: &File,
    opts: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    write_image(src, out, opts, None, progress)
}

/// The backing file an image names in its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackingRef {
    /// The name as stored (relative to the image's directory, or absolute).
    pub name: String,
    /// "raw" or "qcow2", recorded in the backing-format extension.
    pub format: &'static str,
}

/// [`write_qcow2`], optionally as an overlay of `backing`: then the clusters `src` reports
/// as data are all allocated (all-zero ones as zero clusters, so they do not fall through
/// to the backing file) and the others are left to the backing file.
pub(crate) fn write_image(
    src: &dyn BlockDevice,
    out: &File,
    opts: &WriteOptions,
    backing: Option<&BackingRef>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    let geo = Geometry::new(src.len(), opts.cluster_size)?;
    let header_tail = match backing {
        Some(b) => header_extensions(b, geo.cs)?,
        None => Vec::new(),
    };
    let name_len = backing.map_or(0, |b| b.name.len());
    let mut w = Writer::new(out, geo, header_tail, name_len, backing.is_some())?;
    let chunk = CHUNK.max(geo.cs);
    let Some(kind) = opts.compression else {
        for_each_data_chunk(src, geo.cs, chunk, progress, |pos, buf| {
            w.plain_chunk(pos, buf)
        })?;
        return w.finish(None);
    };
    let keep_zeros = w.keep_zeros;
    let cs = geo.cs;
    map_chunks_in_order(
        src,
        cs,
        chunk,
        progress,
        opts.threads,
        move |pos, buf| compress_chunk(kind, cs, pos, buf, keep_zeros),
        |packed| w.store_packed(packed),
    )?;
    w.finish(Some(kind))
}

/// The result of one compression job: (guest cluster, packed data) in guest order.
type Batch = Result<Vec<(u64, Packed)>>;

/// Compress the non-zero clusters of a chunk at guest offset `pos`, in order; with
/// `keep_zeros`, the all-zero ones come as [`Packed::Zero`] instead of being left out.
fn compress_chunk(kind: CompressionType, cs: u64, pos: u64, buf: &[u8], keep_zeros: bool) -> Batch {
    let first_guest = pos / cs;
    buf.chunks(cs as usize)
        .enumerate()
        .filter_map(|(i, c)| {
            let guest = first_guest + i as u64;
            if !all_zero(c) {
                Some(compress_cluster(kind, c).map(|p| (guest, p)))
            } else {
                keep_zeros.then_some(Ok((guest, Packed::Zero)))
            }
        })
        .collect()
}

/// The header extensions of an overlay and its backing file name, as they follow the
/// fixed header: the backing-format extension, the end marker, then the name.
fn header_extensions(b: &BackingRef, cs: u64) -> Result<Vec<u8>> {
    if b.name.is_empty() || b.name.len() > MAX_BACKING_NAME {
        return Err(Error::InvalidArgument(format!(
            "a qcow2 backing file name must have 1 to {MAX_BACKING_NAME} bytes, {:?} has {}",
            b.name,
            b.name.len()
        )));
    }
    let mut v = Vec::new();
    v.extend_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
    v.extend_from_slice(&(b.format.len() as u32).to_be_bytes());
    v.extend_from_slice(b.format.as_bytes());
    v.resize(v.len().next_multiple_of(8), 0);
    v.extend_from_slice(&[0; 8]); // end of the extensions
    v.extend_from_slice(b.name.as_bytes());
    if (HEADER_LEN + v.len()) as u64 > cs {
        return Err(Error::InvalidArgument(format!(
            "the backing file name {:?} does not fit in the first {cs}-byte cluster with the \
             header; use a larger cluster size",
            b.name
        )));
    }
    Ok(v)
}

/// The sizes that follow from the virtual size and the cluster size.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Cluster size in bytes.
    cs: u64,
    cluster_bits: u32,
    /// Virtual size (rounded up to 512).
    size: u64,
    /// Entries per L2 table.
    l2_entries: u64,
    /// Entries in the L1 table.
    l1_size: u64,
    /// Clusters the L1 table occupies.
    l1_clusters: u64,
    /// Refcounts per refcount block (16-bit refcounts).
    per_block: u64,
}

impl Geometry {
    fn new(len: u64, cs: u64) -> Result<Geometry> {
        if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
            return Err(Error::InvalidArgument(format!(
                "qcow2 cluster size must be a power of two from 512 bytes to 2 MiB, not {cs}"
            )));
        }
        let size = len
            .checked_next_multiple_of(SECTOR)
            .filter(|&s| s <= i64::MAX as u64)
            .ok_or_else(|| {
                Error::Unsupported(format!("a virtual size of {len} bytes is too large"))
            })?;
        let l2_entries = cs / 8;
        let l1_size = size.div_ceil(cs).div_ceil(l2_entries);
        if l1_size * 8 > MAX_L1_BYTES {
            return Err(Error::Unsupported(format!(
                "a virtual size of {size} bytes with {cs}-byte clusters needs an L1 table of {} \
                 bytes, over qemu's limit of {MAX_L1_BYTES}; use a larger cluster size",
                l1_size * 8
            )));
        }
        Ok(Geometry {
            cs,
            cluster_bits: cs.trailing_zeros(),
            size,
            l2_entries,
            l1_size,
            l1_clusters: (l1_size * 8).div_ceil(cs),
            per_block: cs / 2,
        })
    }

    /// Bit position of the sector count in a compressed L2 entry.
    fn csize_shift(&self) -> u32 {
        csize_shift(self.cluster_bits)
    }
}

/// The state of one image being written.
struct Writer<'a> {
    out: &'a File,
    g: Geometry,
    /// Next free host cluster.
    next: u64,
    /// Where the next compressed cluster may go: a byte offset inside cluster `next - 1`
    /// (or at its end), valid only while that cluster is being filled with compressed data.
    comp_pos: Option<u64>,
    /// Host byte offset of the refcount block of each host range, in range order.
    block_offsets: Vec<u64>,
    /// Refcount blocks not yet written, by range.
    pending: BTreeMap<u64, Vec<u16>>,
    /// Index and entries of the L2 table being filled.
    l2_index: Option<u64>,
    l2: Vec<u64>,
    /// Index (within the L1) and entries of the L1 cluster being filled.
    l1_part: Option<u64>,
    l1: Vec<u64>,
    /// Host offset of the L1 table.
    l1_offset: u64,
    /// Compressed bytes not yet written: (host offset, bytes).
    wbuf: (u64, Vec<u8>),
    data_bytes: u64,
    /// Early writeback of the data behind the allocation pointer.
    writeback: Writeback,
    /// What follows the fixed header in the first cluster (extensions, backing name).
    header_tail: Vec<u8>,
    /// The length of the backing file name at the end of `header_tail` (0: none).
    backing_name_len: usize,
    /// All-zero data clusters get zero-cluster entries instead of none (an overlay).
    keep_zeros: bool,
}

impl<'a> Writer<'a> {
    fn new(
        out: &'a File,
        g: Geometry,
        header_tail: Vec<u8>,
        backing_name_len: usize,
        keep_zeros: bool,
    ) -> Result<Writer<'a>> {
        let mut w = Writer {
            out,
            g,
            next: 0,
            comp_pos: None,
            block_offsets: Vec::new(),
            pending: BTreeMap::new(),
            l2_index: None,
            l2: vec![0; g.l2_entries as usize],
            l1_part: None,
            l1: vec![0; (g.cs / 8) as usize],
            l1_offset: 0,
            wbuf: (0, Vec::new()),
            data_bytes: 0,
            writeback: Writeback::new(out),
            backing_name_len,
            header_tail,
            keep_zeros,
        };
        // Header cluster and L1 table, contiguous.
        w.alloc(1 + g.l1_clusters)?;
        if g.l1_size > 0 {
            w.l1_offset = g.cs;
        }
        Ok(w)
    }

    /// Store a chunk (guest offset `pos`, cluster-aligned) uncompressed.
    fn plain_chunk(&mut self, pos: u64, buf: &[u8]) -> Result<()> {
        let cs = self.g.cs as usize;
        let nonzero: Vec<bool> = buf.chunks(cs).map(|c| !all_zero(c)).collect();
        let first_guest = pos / self.g.cs;
        let mut i = 0;
        while i < nonzero.len() {
            if !nonzero[i] {
                if self.keep_zeros {
                    self.set_l2(first_guest + i as u64, ZERO_FLAG)?;
                }
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < nonzero.len() && nonzero[j] {
                j += 1;
            }
            let start = self.alloc((j - i) as u64)?;
            self.write(&buf[i * cs..j * cs], start * self.g.cs)?;
            for k in i..j {
                let host = (start + (k - i) as u64) * self.g.cs;
                self.set_l2(first_guest + k as u64, host | COPIED)?;
            }
            i = j;
        }
        self.start_writeback();
        Ok(())
    }

    /// Hand what lies behind the allocation pointer (and any queued compressed data) to
    /// the kernel for writeback.
    fn start_writeback(&mut self) {
        let mut upto = self.next * self.g.cs;
        if !self.wbuf.1.is_empty() {
            upto = upto.min(self.wbuf.0);
        }
        self.writeback.advance(upto);
    }

    /// Store compressed (or incompressible) clusters, in order.
    fn store_packed(&mut self, packed: Vec<(u64, Packed)>) -> Result<()> {
        for (guest, p) in packed {
            match p {
                Packed::Compressed(z) => {
                    let off = self.place_compressed(z.len() as u64)?;
                    if off + z.len() as u64 > 1 << self.g.csize_shift() {
                        return Err(Error::Unsupported(format!(
                            "compressed data at host offset {off} is beyond what a compressed \
                             cluster entry can address with {}-byte clusters",
                            self.g.cs
                        )));
                    }
                    self.buffered_write(&z, off)?;
                    let last = off + z.len() as u64 - 1;
                    let sectors = last / SECTOR - off / SECTOR;
                    let entry = COMPRESSED | (sectors << self.g.csize_shift()) | off;
                    self.set_l2(guest, entry)?;
                }
                Packed::Plain(data) => {
                    let c = self.alloc(1)?;
                    self.write(&data, c * self.g.cs)?;
                    self.set_l2(guest, (c * self.g.cs) | COPIED)?;
                }
                Packed::Zero => self.set_l2(guest, ZERO_FLAG)?,
            }
        }
        self.start_writeback();
        Ok(())
    }

    /// Allocate `n` contiguous clusters with refcount 1, then a cluster for the refcount
    /// block of every host range entered that has none yet. Returns the first cluster.
    fn alloc(&mut self, n: u64) -> Result<u64> {
        let start = self.next;
        self.next = start + n;
        for c in start..self.next {
            self.add_ref(c)?;
        }
        while (self.block_offsets.len() as u64) * self.g.per_block < self.next {
            if (self.block_offsets.len() as u64 + 1) * 8 > MAX_REFTABLE_BYTES {
                return Err(Error::Unsupported(format!(
                    "the image would need a refcount table over qemu's limit of \
                     {MAX_REFTABLE_BYTES} bytes; use a larger cluster size"
                )));
            }
            let c = self.next;
            self.next += 1;
            self.block_offsets.push(c * self.g.cs);
            self.add_ref(c)?;
        }
        if self.next.saturating_mul(self.g.cs) > MAX_HOST_END {
            return Err(Error::Unsupported(format!(
                "the image file would grow past {MAX_HOST_END} bytes, the qcow2 limit"
            )));
        }
        self.comp_pos = None;
        self.flush_done_blocks()?;
        Ok(start)
    }

    /// Find room for `len` (< cluster size) bytes of compressed data, packed right after the
    /// previous compressed cluster when possible; counts the reference in every host
    /// cluster it touches. Returns the host byte offset.
    fn place_compressed(&mut self, len: u64) -> Result<u64> {
        let cs = self.g.cs;
        if let Some(pos) = self.comp_pos {
            let cur = self.next - 1;
            let room = self.next * cs - pos;
            if self.refcount(cur) < u16::MAX - 1 && room > 0 {
                self.add_ref(cur)?;
                if len <= room {
                    self.comp_pos = Some(pos + len);
                    return Ok(pos);
                }
                let c = self.alloc(1)?;
                debug_assert_eq!(c, cur + 1);
                self.comp_pos = (self.next == c + 1).then_some(pos + len);
                return Ok(pos);
            }
        }
        let c = self.alloc(1)?;
        let off = c * cs;
        self.comp_pos = (self.next == c + 1).then_some(off + len);
        Ok(off)
    }

    fn refcount(&self, cluster: u64) -> u16 {
        let range = cluster / self.g.per_block;
        self.pending
            .get(&range)
            .map_or(0, |b| b[(cluster % self.g.per_block) as usize])
    }

    fn add_ref(&mut self, cluster: u64) -> Result<()> {
        let per_block = self.g.per_block;
        let block = self
            .pending
            .entry(cluster / per_block)
            .or_insert_with(|| vec![0; per_block as usize]);
        let r = &mut block[(cluster % per_block) as usize];
        *r = r.checked_add(1).ok_or_else(|| {
            Error::Unsupported(format!("refcount of host cluster {cluster} overflows"))
        })?;
        Ok(())
    }

    /// Write the refcount blocks whose whole range lies behind the allocation pointer (the
    /// last two clusters may still gain references from compressed data).
    fn flush_done_blocks(&mut self) -> Result<()> {
        while let Some((&range, _)) = self.pending.first_key_value() {
            if (range + 1) * self.g.per_block + 2 > self.next {
                break;
            }
            self.write_block(range)?;
        }
        Ok(())
    }

    fn write_block(&mut self, range: u64) -> Result<()> {
        let Some(block) = self.pending.remove(&range) else {
            return Ok(());
        };
        let off = *self.block_offsets.get(range as usize).ok_or_else(|| {
            Error::corrupt(format!(
                "refcount block for host range {range} was never placed"
            ))
        })?;
        let bytes: Vec<u8> = block.iter().flat_map(|r| r.to_be_bytes()).collect();
        self.write(&bytes, off)
    }

    /// Set the L2 entry of guest cluster `guest`; entries must come in increasing order.
    fn set_l2(&mut self, guest: u64, entry: u64) -> Result<()> {
        let index = guest / self.g.l2_entries;
        if self.l2_index != Some(index) {
            self.flush_l2()?;
            self.l2_index = Some(index);
        }
        self.l2[(guest % self.g.l2_entries) as usize] = entry;
        if entry != ZERO_FLAG {
            self.data_bytes += self.g.cs.min(self.g.size - guest * self.g.cs);
        }
        Ok(())
    }

    /// Write the current L2 table and record it in the L1.
    fn flush_l2(&mut self) -> Result<()> {
        let Some(index) = self.l2_index.take() else {
            return Ok(());
        };
        let c = self.alloc(1)?;
        let bytes: Vec<u8> = self.l2.iter().flat_map(|e| e.to_be_bytes()).collect();
        self.write(&bytes, c * self.g.cs)?;
        self.l2.fill(0);
        self.set_l1(index, (c * self.g.cs) | COPIED)
    }

    fn set_l1(&mut self, index: u64, entry: u64) -> Result<()> {
        let per = self.g.cs / 8;
        let part = index / per;
        if self.l1_part != Some(part) {
            self.flush_l1()?;
            self.l1_part = Some(part);
        }
        self.l1[(index % per) as usize] = entry;
        Ok(())
    }

    fn flush_l1(&mut self) -> Result<()> {
        let Some(part) = self.l1_part.take() else {
            return Ok(());
        };
        let bytes: Vec<u8> = self.l1.iter().flat_map(|e| e.to_be_bytes()).collect();
        self.write(&bytes, self.l1_offset + part * self.g.cs)?;
        self.l1.fill(0);
        Ok(())
    }

    /// Queue compressed bytes at host offset `off`, writing the queue when it is not
    /// contiguous with them or has grown large.
    fn buffered_write(&mut self, bytes: &[u8], off: u64) -> Result<()> {
        if self.wbuf.0 + self.wbuf.1.len() as u64 != off || self.wbuf.1.len() >= WRITE_BUFFER {
            self.flush_wbuf()?;
            self.wbuf.0 = off;
        }
        self.wbuf.1.extend_from_slice(bytes);
        Ok(())
    }

    fn flush_wbuf(&mut self) -> Result<()> {
        if !self.wbuf.1.is_empty() {
            let buf = std::mem::take(&mut self.wbuf.1);
            self.write(&buf, self.wbuf.0)?;
            self.wbuf.1 = buf;
            self.wbuf.1.clear();
        }
        Ok(())
    }

    fn write(&self, bytes: &[u8], off: u64) -> Result<()> {
        self.out.write_all_at(bytes, off).map_err(|e| {
            Error::io(
                format!(
                    "writing {} bytes at offset {off} of the qcow2 image",
                    bytes.len()
                ),
                e,
            )
        })
    }

    /// Write the last L2 and L1 parts, the refcount table and blocks, then the header.
    fn finish(mut self, compression: Option<CompressionType>) -> Result<WriteStats> {
        self.flush_l2()?;
        self.flush_l1()?;
        self.flush_wbuf()?;
        // The refcount table goes at the end; the table and any block it needs must be
        // counted by the table itself, so find the smallest size that covers everything.
        let cs = self.g.cs;
        let mut table_clusters = 1u64;
        loop {
            let mut end = self.next + table_clusters;
            let mut blocks = self.block_offsets.len() as u64;
            while blocks * self.g.per_block < end {
                blocks += 1;
                end += 1;
            }
            let need = (blocks * 8).div_ceil(cs);
            if need <= table_clusters {
                break;
            }
            table_clusters = need;
        }
        let table = self.alloc(table_clusters)?;
        if (self.block_offsets.len() as u64) * 8 > table_clusters * cs {
            return Err(Error::corrupt(format!(
                "refcount table of {table_clusters} clusters cannot hold {} blocks",
                self.block_offsets.len()
            )));
        }
        let ranges: Vec<u64> = self.pending.keys().copied().collect();
        for range in ranges {
            self.write_block(range)?;
        }
        let mut bytes: Vec<u8> = self
            .block_offsets
            .iter()
            .flat_map(|e| e.to_be_bytes())
            .collect();
        bytes.resize((table_clusters * cs) as usize, 0);
        self.write(&bytes, table * cs)?;
        let file_size = self.next * cs;
        self.out
            .set_len(file_size)
            .map_err(|e| Error::io(format!("setting the image size to {file_size}"), e))?;

        let header = self.header(table * cs, table_clusters, compression);
        let mut first = vec![0u8; cs as usize];
        first[..HEADER_LEN].copy_from_slice(&header);
        first[HEADER_LEN..HEADER_LEN + self.header_tail.len()].copy_from_slice(&self.header_tail);
        self.write(&first, 0)?;
        self.writeback.finish();
        self.out
            .sync_all()
            .map_err(|e| Error::io("syncing the qcow2 image", e))?;
        Ok(WriteStats {
            virtual_size: self.g.size,
            data_bytes: self.data_bytes,
            file_size,
        })
    }

    /// The 112-byte v3 header (no extensions; the zeros after it end the extension list).
    fn header(
        &self,
        reftable_offset: u64,
        reftable_clusters: u64,
        compression: Option<CompressionType>,
    ) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &super::MAGIC);
        put(4, &3u32.to_be_bytes());
        put(20, &self.g.cluster_bits.to_be_bytes());
        put(24, &self.g.size.to_be_bytes());
        put(36, &(self.g.l1_size as u32).to_be_bytes());
        put(40, &self.l1_offset.to_be_bytes());
        put(48, &reftable_offset.to_be_bytes());
        put(56, &(reftable_clusters as u32).to_be_bytes());
        let zstd = compression == Some(CompressionType::Zstd);
        let incompat = if zstd { INCOMPAT_COMPRESSION } else { 0 };
        put(72, &incompat.to_be_bytes());
        put(96, &4u32.to_be_bytes()); // refcount_order: 16-bit refcounts
        put(100, &(HEADER_LEN as u32).to_be_bytes());
        if self.backing_name_len > 0 {
            // The backing file name ends the header tail (see `header_extensions`).
            let at = HEADER_LEN + self.header_tail.len() - self.backing_name_len;
            put(8, &(at as u64).to_be_bytes());
            put(16, &(self.backing_name_len as u32).to_be_bytes());
        }
        put(104, &[u8::from(zstd)]);
        h
    }
}

/// Raw deflate (no zlib header) with a 4 KiB window: qemu inflates with `windowBits = -12`,
/// so a stream using the usual 32 KiB window may refer back further than it can see.
fn new_deflate() -> flate2::Compress {
    flate2::Compress::new_with_window_bits(flate2::Compression::default(), false, 12)
}

/// A compressed cluster, or one stored as it is because it does not shrink, or an
/// all-zero cluster of an overlay.
enum Packed {
    Compressed(Vec<u8>),
    Plain(Vec<u8>),
    Zero,
}

thread_local! {
    /// Each compression worker's compressor, kept for the life of the thread (creating one
    /// costs more than compressing a cluster).
    static COMPRESSOR: std::cell::RefCell<Option<(CompressionType, usize, Compressor)>> =
        const { std::cell::RefCell::new(None) };
}

/// Compress one cluster with this thread's compressor for `kind` and the cluster size.
fn compress_cluster(kind: CompressionType, data: &[u8]) -> Result<Packed> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let c = match cell.as_mut() {
            Some((k, cs, c)) if *k == kind && *cs == data.len() => c,
            _ => {
                let c = Compressor::new(kind, data.len())
                    .map_err(|e| Error::io(format!("creating a {} compressor", kind.name()), e))?;
                &mut cell.insert((kind, data.len(), c)).2
            }
        };
        Ok(match c.compress(data)? {
            Some(z) => Packed::Compressed(z),
            None => Packed::Plain(data.to_vec()),
        })
    })
}

/// One worker's compression state, reused across clusters.
enum Compressor {
    /// Raw deflate with a 4 KiB window, as qemu inflates with `windowBits = -12`.
    Zlib(flate2::Compress, Vec<u8>),
    Zstd(zstd::bulk::Compressor<'static>, Vec<u8>),
}

impl Compressor {
    fn new(kind: CompressionType, cs: usize) -> std::io::Result<Compressor> {
        // The result must be smaller than a cluster for qemu to store it compressed.
        let out = vec![0u8; cs - 1];
        Ok(match kind {
            CompressionType::Zlib => Compressor::Zlib(new_deflate(), out),
            CompressionType::Zstd => Compressor::Zstd(zstd::bulk::Compressor::new(3)?, out),
        })
    }

    /// The compressed form of `data`, or `None` when it is not smaller than a cluster.
    fn compress(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>> {
        match self {
            Compressor::Zlib(c, out) => {
                let r = c.compress(data, out, flate2::FlushCompress::Finish);
                let n = c.total_out() as usize;
                match r {
                    Ok(flate2::Status::StreamEnd) => {
                        // Reset only after a finished stream: zlib-rs 0.6.8 can panic
                        // ("buf.len() must fit in remaining()") when a stream abandoned
                        // with output pending is reset and reused, so start afresh then.
                        c.reset();
                        Ok(out.get(..n).map(<[u8]>::to_vec))
                    }
                    Ok(_) => {
                        *c = new_deflate();
                        Ok(None)
                    }
                    Err(e) => Err(Error::io("deflating a cluster", std::io::Error::other(e))),
                }
            }
            Compressor::Zstd(c, out) => Ok(c.compress_to_buffer(data, out).ok().map(|n| {
                // compress_to_buffer fails only when the output does not fit.
                out[..n].to_vec()
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn inflate(z: &[u8], cs: usize) -> Vec<u8> {
        let mut d = flate2::Decompress::new_with_window_bits(false, 12);
        let mut back = vec![0u8; cs];
        let st = d
            .decompress(z, &mut back, flate2::FlushDecompress::Finish)
            .unwrap();
        assert_eq!(st, flate2::Status::StreamEnd);
        assert_eq!(d.total_out() as usize, cs);
        back
    }

    /// One compressor fed a long mix of compressible, incompressible and partly noisy
    /// clusters: every output inflates with qemu's 4 KiB window to the input, fully
    /// incompressible clusters are refused, and nothing panics (zlib-rs once did when a
    /// stream abandoned with a full output buffer was reset and reused).
    #[test]
    fn zlib_sequence_round_trips_with_small_window() {
        for cs in [512usize, 4096, 65536] {
            let mut c = Compressor::new(CompressionType::Zlib, cs).unwrap();
            let step = (cs / 97).max(1);
            for (i, k) in (0..=cs).step_by(step).enumerate() {
                let n = noise(cs, i as u64);
                let mut data: Vec<u8> = (0..cs).map(|j| (j % 251) as u8).collect();
                if i % 2 == 0 {
                    data[cs - k..].copy_from_slice(&n[..k]);
                } else {
                    data[..k].copy_from_slice(&n[..k]);
                }
                if let Some(z) = c.compress(&data).unwrap() {
                    assert!(z.len() < cs);
                    assert_eq!(inflate(&z, cs), data, "cs {cs} k {k}");
                }
                assert_eq!(c.compress(&n).unwrap(), None, "noise, cs {cs}");
                if cs <= 4096 {
                    assert_eq!(c.compress(&n).unwrap(), None, "noise, cs {cs}");
                }
            }
        }
    }

    /// zstd output is one frame that decompresses to the cluster.
    #[test]
    fn zstd_round_trip() {
        for cs in [512usize, 65536] {
            let mut c = Compressor::new(CompressionType::Zstd, cs).unwrap();
            assert_eq!(c.compress(&noise(cs, 1)).unwrap(), None);
            let data: Vec<u8> = (0..cs).map(|j| (j % 13) as u8).collect();
            let z = c.compress(&data).unwrap().expect("compressible");
            assert_eq!(zstd::bulk::decompress(&z, cs).unwrap(), data);
        }
    }

    #[test]
    fn geometry_limits() {
        assert!(matches!(
            Geometry::new(1 << 30, 1000),
            Err(Error::InvalidArgument(_))
        ));
        let g = Geometry::new(1000, 512).unwrap();
        assert_eq!((g.size, g.l1_size, g.l1_clusters), (1024, 1, 1));
        // 512-byte clusters: each L2 maps 32 KiB, so 2^37 bytes need a 32 MiB L1 (the limit).
        assert!(Geometry::new(1 << 37, 512).is_ok());
        assert!(matches!(
            Geometry::new((1 << 37) + 512, 512),
            Err(Error::Unsupported(_))
        ));
    }
}
