//! Reading a qcow2 image (and its backing chain) as a read-only [`BlockDevice`].
//!
//! The L1 table is read lazily in chunks and L2 tables on demand, both through small LRU
//! caches, so memory stays bounded whatever the virtual size. A read walks the guest range
//! in runs of clusters (or subclusters, with extended L2) that map the same way: runs of
//! data clusters whose host offsets are consecutive become one read of the file; zero runs
//! are filled; unallocated runs come from the backing image (or read as zeros); compressed
//! clusters are decompressed into a one-cluster cache.

use super::cache::Lru;
use super::compress::decompress;
use super::entry::{compressed_extent, COMPRESSED, OFFSET_MASK, ZERO};
use super::header::read_head;
use super::Header;
use crate::block::{check_range, BlockDevice, Extent, RawFile};
use crate::image::chain::{self, Run};
use crate::image::{Image, ImageFormat};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// L1 entries are cached in chunks of this many entries (32 KiB).
const L1_CHUNK: u64 = 4096;
/// At most this many L1 chunks are cached.
const L1_CHUNKS_CACHED: usize = 16;
/// L2 tables cached: at most this many bytes ...
const L2_CACHE_BYTES: u64 = 16 << 20;
/// ... and at most this many tables.
const L2_CACHE_TABLES: u64 = 64;

/// How a run of guest bytes is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Map {
    /// Not allocated here: read from the backing image, or zeros.
    Unallocated,
    /// Reads as zeros.
    Zero,
    /// Stored uncompressed at this host offset (of the run's first byte).
    Data(u64),
    /// Inside a compressed cluster with this L2 entry.
    Compressed(u64),
}

/// A cached L2 table (`None`: the L1 entry is unallocated).
type L2 = Option<Arc<Vec<u64>>>;

/// An open qcow2 image, read-only, with its backing chain.
#[derive(Debug)]
pub struct Qcow2Image {
    path: PathBuf,
    file: RawFile,
    header: Header,
    backing: Option<Image>,
    /// L1 entries in use (enough for the virtual size; never more than `l1_size`).
    l1_entries: u64,
    /// Clusters mapped by one L2 table.
    l2_entries: u64,
    l1_cache: Mutex<Lru<Arc<Vec<u64>>>>,
    l2_cache: Mutex<Lru<L2>>,
    last_compressed: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse_be64s(buf: &[u8]) -> Vec<u64> {
    buf.chunks_exact(8)
        .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

impl Qcow2Image {
    /// Open a qcow2 image read-only, with its whole backing chain.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_chain(path.as_ref(), &mut Vec::new())
    }

    /// Open `path`, where `seen` holds the canonical paths of the images that (transitively)
    /// name it as their backing file, outermost first.
    pub(crate) fn open_chain(path: &Path, seen: &mut Vec<PathBuf>) -> Result<Self> {
        chain::enter(path, seen)?;
        let file = RawFile::open(path)?;
        let file_len = file.len();
        let head = read_head(file_len, |buf, off| file.read_at(buf, off))?;
        let header = Header::parse(&head, file_len).map_err(|e| e.in_file(path))?;
        drop(head);

        let backing = match &header.backing_file {
            None => None,
            Some(name) => Some(Self::open_backing(path, name, &header, seen)?),
        };

        let cs = header.cluster_size();
        let l2_entries = cs / if header.extended_l2 { 16 } else { 8 };
        let l2_cap = (L2_CACHE_BYTES / cs).clamp(4, L2_CACHE_TABLES) as usize;
        Ok(Qcow2Image {
            path: path.to_path_buf(),
            l1_entries: header.l1_entries_needed(),
            l2_entries,
            file,
            header,
            backing,
            l1_cache: Mutex::new(Lru::new(L1_CHUNKS_CACHED)),
            l2_cache: Mutex::new(Lru::new(l2_cap)),
            last_compressed: Mutex::new(None),
        })
    }

    fn open_backing(
        path: &Path,
        name: &str,
        header: &Header,
        seen: &mut Vec<PathBuf>,
    ) -> Result<Image> {
        let resolved = chain::resolve_parent(path, name);
        if let Err(e) = std::fs::metadata(&resolved) {
            return Err(Error::io(
                format!(
                    "opening backing file {name:?} of {} (resolved to {})",
                    path.display(),
                    resolved.display()
                ),
                e,
            ));
        }
        let format = header
            .backing_format
            .as_deref()
            .map(|f| {
                f.parse::<ImageFormat>().map_err(|_| {
                    Error::unsupported(format!(
                        "backing file {} of {} has format {f:?}; only raw, qcow2, vpc (VHD), \
                         vhdx, vmdk and vdi are supported",
                        resolved.display(),
                        path.display()
                    ))
                })
            })
            .transpose()?;
        Image::open_chain(&resolved, format, seen)
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The backing image, if any.
    pub fn backing(&self) -> Option<&Image> {
        self.backing.as_ref()
    }

    /// Bytes the qcow2 file itself occupies on the host filesystem.
    pub fn file_allocated_bytes(&self) -> Result<u64> {
        self.file.allocated_bytes()
    }

    fn cluster_size(&self) -> u64 {
        self.header.cluster_size()
    }

    /// Guest bytes mapped by one L2 table.
    fn l2_span(&self) -> u64 {
        self.cluster_size() * self.l2_entries
    }

    fn l1_entry(&self, idx: u64) -> Result<u64> {
        let chunk = idx / L1_CHUNK;
        let cached = lock(&self.l1_cache).get(chunk);
        let table = match cached {
            Some(t) => t,
            None => {
                let first = chunk * L1_CHUNK;
                let n = L1_CHUNK.min(self.l1_entries.saturating_sub(first));
                let mut buf = vec![0u8; (n * 8) as usize];
                self.file
                    .read_at(&mut buf, self.header.l1_table_offset + first * 8)?;
                let t = Arc::new(parse_be64s(&buf));
                lock(&self.l1_cache).insert(chunk, t.clone());
                t
            }
        };
        table
            .get((idx - chunk * L1_CHUNK) as usize)
            .copied()
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "L1 index {idx} is beyond the {} entries in use",
                    self.l1_entries
                ))
            })
    }

    fn l2_table(&self, l1_idx: u64) -> Result<L2> {
        if let Some(t) = lock(&self.l2_cache).get(l1_idx) {
            return Ok(t);
        }
        let entry = self.l1_entry(l1_idx)?;
        let off = entry & OFFSET_MASK;
        let table = if off == 0 {
            None
        } else {
            let cs = self.cluster_size();
            let file_len = self.file.len();
            if off % cs != 0 {
                return Err(self.corrupt(format!(
                    "L2 table offset {off:#x} (L1 entry {l1_idx}) is not aligned to the \
                     cluster size {cs}"
                )));
            }
            if off.checked_add(cs).is_none_or(|e| e > file_len) {
                return Err(self.corrupt(format!(
                    "L2 table offset {off:#x} (L1 entry {l1_idx}) is beyond the end of the \
                     file ({file_len} bytes)"
                )));
            }
            let mut buf = vec![0u8; cs as usize];
            self.file.read_at(&mut buf, off)?;
            Some(Arc::new(parse_be64s(&buf)))
        };
        lock(&self.l2_cache).insert(l1_idx, table.clone());
        Ok(table)
    }

    fn corrupt(&self, msg: String) -> Error {
        Error::corrupt(format!("{}: {msg}", self.path.display()))
    }

    /// Size of the unit one L2 entry (or bitmap bit) describes.
    fn granularity(&self) -> u64 {
        if self.header.extended_l2 {
            self.cluster_size() / 32
        } else {
            self.cluster_size()
        }
    }

    /// How the guest byte at `pos` is stored, given its L2 table.
    fn map_at(&self, table: &[u64], pos: u64) -> Result<Map> {
        let cs = self.cluster_size();
        let ci = (pos / cs) % self.l2_entries;
        let within = pos % cs;
        let stride = if self.header.extended_l2 { 2 } else { 1 };
        let get = |i: u64| {
            table
                .get((ci * stride + i) as usize)
                .copied()
                .ok_or_else(|| self.corrupt(format!("L2 index {ci} out of range")))
        };
        let entry = get(0)?;
        if entry & COMPRESSED != 0 {
            return Ok(Map::Compressed(entry));
        }
        let host = entry & OFFSET_MASK;
        let data = |host: u64| -> Result<Map> {
            let file_len = self.file.len();
            if host % cs != 0 {
                return Err(self.corrupt(format!(
                    "L2 entry for guest offset {pos:#x} points to host offset {host:#x}, \
                     which is not aligned to the cluster size {cs}"
                )));
            }
            if host >= file_len {
                return Err(self.corrupt(format!(
                    "L2 entry for guest offset {pos:#x} points to host offset {host:#x}, \
                     beyond the end of the file ({file_len} bytes)"
                )));
            }
            Ok(Map::Data(host + within))
        };
        if self.header.extended_l2 {
            let bitmap = get(1)?;
            let sc = within / self.granularity();
            let alloc = bitmap >> sc & 1 != 0;
            let zero = bitmap >> (32 + sc) & 1 != 0;
            return match (alloc, zero) {
                (true, true) => Err(self.corrupt(format!(
                    "subcluster {sc} of guest offset {pos:#x} is marked both allocated and zero"
                ))),
                (false, true) => Ok(Map::Zero),
                (false, false) => Ok(Map::Unallocated),
                (true, false) if host == 0 => Err(self.corrupt(format!(
                    "subcluster {sc} of guest offset {pos:#x} is allocated but its cluster has \
                     no host offset"
                ))),
                (true, false) => data(host),
            };
        }
        if self.header.version >= 3 && entry & ZERO != 0 {
            Ok(Map::Zero)
        } else if host == 0 {
            Ok(Map::Unallocated)
        } else {
            data(host)
        }
    }

    /// The mapping of `pos` and how many bytes from `pos` (at most `max`, and within one
    /// L2 table) map the same way, contiguously.
    fn map_run(&self, pos: u64, max: u64) -> Result<(Map, u64)> {
        let span = self.l2_span();
        let l1_idx = pos / span;
        let end = (l1_idx + 1).saturating_mul(span).min(pos + max);
        let Some(table) = self.l2_table(l1_idx)? else {
            return Ok((Map::Unallocated, end - pos));
        };
        let first = self.map_at(&table, pos)?;
        let g = self.granularity();
        if let Map::Compressed(_) = first {
            let cs = self.cluster_size();
            return Ok((first, ((pos / cs + 1) * cs).min(end) - pos));
        }
        let mut next = (pos / g + 1) * g;
        while next < end {
            let m = self.map_at(&table, next)?;
            let same = match (first, m) {
                (Map::Data(a), Map::Data(b)) => b == a + (next - pos),
                (a, b) => a == b,
            };
            if !same {
                break;
            }
            next += g;
        }
        Ok((first, next.min(end) - pos))
    }

    fn compressed_cluster(&self, entry: u64) -> Result<Arc<Vec<u8>>> {
        if let Some((e, data)) = lock(&self.last_compressed).as_ref() {
            if *e == entry {
                return Ok(data.clone());
            }
        }
        let (coff, csize) = compressed_extent(entry, self.header.cluster_bits);
        let file_len = self.file.len();
        if coff >= file_len {
            return Err(self.corrupt(format!(
                "compressed cluster at host offset {coff:#x} is beyond the end of the file \
                 ({file_len} bytes)"
            )));
        }
        let mut input = vec![0u8; csize.min(file_len - coff) as usize];
        self.file.read_at(&mut input, coff)?;
        let mut out = vec![0u8; self.cluster_size() as usize];
        decompress(self.header.compression_type, &input, &mut out).map_err(|e| {
            self.corrupt(format!("compressed cluster at host offset {coff:#x}: {e}"))
        })?;
        let out = Arc::new(out);
        *lock(&self.last_compressed) = Some((entry, out.clone()));
        Ok(out)
    }
}

impl BlockDevice for Qcow2Image {
    fn len(&self) -> u64 {
        self.header.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.header.size, offset, buf.len() as u64)?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (map, n) = self.map_run(pos, (buf.len() - done) as u64)?;
            let out = &mut buf[done..done + n as usize];
            match map {
                Map::Zero => out.fill(0),
                Map::Unallocated => chain::read_parent(self.backing.as_ref(), out, pos)?,
                Map::Data(host) => {
                    let file_len = self.file.len();
                    if host + n > file_len {
                        return Err(self.corrupt(format!(
                            "data for guest offset {pos:#x} ({n} bytes at host offset \
                             {host:#x}) extends beyond the end of the file ({file_len} bytes)"
                        )));
                    }
                    self.file.read_at(out, host)?;
                }
                Map::Compressed(entry) => {
                    let data = self.compressed_cluster(entry)?;
                    let start = (pos % self.cluster_size()) as usize;
                    let src = data.get(start..start + out.len()).ok_or_else(|| {
                        self.corrupt(format!("compressed read at {pos:#x} out of range"))
                    })?;
                    out.copy_from_slice(src);
                }
            }
            done += n as usize;
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.header.size, offset, len)?;
        chain::map_extents(self.backing.as_ref(), offset, len, |pos, left| {
            let (map, n) = self.map_run(pos, left)?;
            let run = match map {
                Map::Zero => Run::Zero,
                Map::Data(_) | Map::Compressed(_) => Run::Data,
                Map::Unallocated => Run::Parent,
            };
            Ok((run, n))
        })
    }

    fn format_name(&self) -> &'static str {
        "qcow2"
    }
}
