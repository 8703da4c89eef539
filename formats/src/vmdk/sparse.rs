//! A hosted sparse extent ("KDMV"): header (or, for streamOptimized, the footer that
//! holds the real grain directory offset), grain directory, grain tables read on demand
//! through a small cache, and grains stored plainly or deflate-compressed behind a marker.

use super::descriptor::{Descriptor, MAX_DESCRIPTOR};
use crate::block::{BlockDevice, RawFile};
use crate::qcow2::cache::Lru;
use crate::{Error, Result};
use std::sync::{Arc, Mutex, MutexGuard};

/// The first four bytes of a sparse extent.
pub const MAGIC: &[u8; 4] = b"KDMV";
const SECTOR: u64 = 512;
/// `gdOffset` of a streamOptimized header: the real one is in the footer.
const GD_AT_END: u64 = u64::MAX;
const FLAG_RGD: u32 = 1 << 1;
const FLAG_ZERO_GRAIN: u32 = 1 << 2;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
/// The grain table entry that means "reads as zeros" (with [`FLAG_ZERO_GRAIN`]).
const GTE_ZEROED: u32 = 1;
/// Largest grain accepted (VMware uses 64 KiB; qemu accepts up to 2 MiB... and more).
const MAX_GRAIN_BYTES: u64 = 16 << 20;
/// Largest grain directory read into memory.
const MAX_GD_BYTES: u64 = 16 << 20;
/// Grain tables cached.
const GT_CACHED: usize = 64;
/// Stream-optimized marker types.
const MARKER_EOS: u32 = 0;
const MARKER_FOOTER: u32 = 3;

/// How a grain is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// Not in this extent: the parent's, or zeros.
    Unallocated,
    /// Reads as zeros.
    Zero,
    /// Stored plainly at this byte offset of the file.
    Data(u64),
    /// Compressed, behind a marker at this byte offset.
    Compressed(u64),
}

/// The fields of a sparse extent header that reading needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseHeader {
    pub version: u32,
    pub flags: u32,
    /// Sectors.
    pub capacity: u64,
    /// Sectors per grain.
    pub grain_sectors: u64,
    pub descriptor_offset: u64,
    pub descriptor_size: u64,
    pub gtes_per_gt: u32,
    pub rgd_offset: u64,
    pub gd_offset: u64,
    pub compress_algorithm: u16,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl SparseHeader {
    /// Parse the 512-byte header at `b` (magic included).
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < 512 || &b[..4] != MAGIC {
            return Err(Error::corrupt(
                "not a VMDK sparse extent (no \"KDMV\" magic)".to_string(),
            ));
        }
        let h = SparseHeader {
            version: le32(b, 4),
            flags: le32(b, 8),
            capacity: le64(b, 12),
            grain_sectors: le64(b, 20),
            descriptor_offset: le64(b, 28),
            descriptor_size: le64(b, 36),
            gtes_per_gt: le32(b, 44),
            rgd_offset: le64(b, 48),
            gd_offset: le64(b, 56),
            compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
        };
        if !(1..=3).contains(&h.version) {
            return Err(Error::unsupported(format!(
                "VMDK sparse extent version {} (expected 1, 2 or 3)",
                h.version
            )));
        }
        let grain = h.grain_sectors.saturating_mul(SECTOR);
        if h.grain_sectors == 0 || !h.grain_sectors.is_power_of_two() || grain > MAX_GRAIN_BYTES {
            return Err(Error::corrupt(format!(
                "grain size of {} sectors (expected a power of two up to {} sectors)",
                h.grain_sectors,
                MAX_GRAIN_BYTES / SECTOR
            )));
        }
        if h.gtes_per_gt == 0 || h.gtes_per_gt > 1 << 16 {
            return Err(Error::corrupt(format!(
                "{} grain table entries per grain table (expected 1 to 65536)",
                h.gtes_per_gt
            )));
        }
        if h.flags & FLAG_COMPRESSED != 0 && h.compress_algorithm != 1 {
            return Err(Error::unsupported(format!(
                "compression algorithm {} (only 1, deflate, is known)",
                h.compress_algorithm
            )));
        }
        Ok(h)
    }

    fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    fn grain_bytes(&self) -> u64 {
        self.grain_sectors * SECTOR
    }
}

/// An open sparse extent.
#[derive(Debug)]
pub struct SparseExtent {
    file: RawFile,
    header: SparseHeader,
    /// Grain directory: byte offsets of grain tables (0: none).
    gd: Vec<u64>,
    gt_cache: Mutex<Lru<Arc<Vec<u32>>>>,
    last_grain: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SparseExtent {
    /// Open the sparse extent in `file`, and its embedded descriptor if any.
    pub fn open(file: RawFile) -> Result<(Self, Option<Descriptor>)> {
        let len = file.len();
        let path = file.path().to_path_buf();
        let corrupt = |m: String| Error::corrupt(format!("{}: {m}", path.display()));
        if len < 512 {
            return Err(corrupt(format!(
                "{len} bytes is too short for a VMDK sparse extent header (512 bytes)"
            )));
        }
        let mut buf = [0u8; 512];
        file.read_at(&mut buf, 0)?;
        let mut header = SparseHeader::parse(&buf).map_err(|e| e.in_file(&path))?;
        if header.gd_offset == GD_AT_END {
            header = footer(&file, &header).map_err(|e| e.in_file(&path))?;
        }
        let descriptor = read_descriptor(&file, &header).map_err(|e| e.in_file(&path))?;
        let gd = read_gd(&file, &header).map_err(|e| e.in_file(&path))?;
        Ok((
            SparseExtent {
                file,
                header,
                gd,
                gt_cache: Mutex::new(Lru::new(GT_CACHED)),
                last_grain: Mutex::new(None),
            },
            descriptor,
        ))
    }

    /// Bytes of disk this extent holds.
    pub fn capacity_bytes(&self) -> u64 {
        self.header.capacity.saturating_mul(SECTOR)
    }

    /// The extent file.
    pub fn path(&self) -> &std::path::Path {
        self.file.path()
    }

    /// Bytes the extent file occupies on the host filesystem.
    pub fn file_allocated_bytes(&self) -> Result<u64> {
        self.file.allocated_bytes()
    }

    /// Bytes per grain.
    pub fn grain_bytes(&self) -> u64 {
        self.header.grain_bytes()
    }

    fn corrupt(&self, m: String) -> Error {
        Error::corrupt(format!("{}: {m}", self.file.path().display()))
    }

    fn gt(&self, gd_idx: u64) -> Result<Option<Arc<Vec<u32>>>> {
        let Some(&off) = self.gd.get(gd_idx as usize) else {
            return Err(self.corrupt(format!("grain directory index {gd_idx} out of range")));
        };
        if off == 0 {
            return Ok(None);
        }
        if let Some(t) = lock(&self.gt_cache).get(gd_idx) {
            return Ok(Some(t));
        }
        let n = self.header.gtes_per_gt as u64;
        let mut buf = vec![0u8; (n * 4) as usize];
        self.file.read_at(&mut buf, off)?;
        let t = Arc::new(buf.chunks_exact(4).map(|c| le32(c, 0)).collect::<Vec<_>>());
        lock(&self.gt_cache).insert(gd_idx, t.clone());
        Ok(Some(t))
    }

    /// How the grain holding byte `pos` of the extent is stored, and how many bytes from
    /// `pos` (at most `max`, within one grain table) are stored alike: holes, zeros, or
    /// plain grains one after the other in the file (a compressed grain is a run of its own).
    pub fn run(&self, pos: u64, max: u64) -> Result<(Grain, u64)> {
        let gb = self.grain_bytes();
        let per = self.header.gtes_per_gt as u64;
        let g = pos / gb;
        let table_end = (g / per + 1).saturating_mul(per).saturating_mul(gb);
        let end = table_end.min(pos.saturating_add(max));
        let Some(table) = self.gt(g / per)? else {
            return Ok((Grain::Unallocated, end - pos));
        };
        let first = self.classify(table[(g % per) as usize], pos)?;
        let mut next = (g + 1) * gb;
        if !matches!(first, Grain::Compressed(_)) {
            while next < end {
                let at = self.classify(table[(next / gb % per) as usize], next)?;
                let same = match (first, at) {
                    (Grain::Data(a), Grain::Data(b)) => b == a + (next - g * gb),
                    (a, b) => a == b,
                };
                if !same {
                    break;
                }
                next += gb;
            }
        }
        Ok((first, next.min(end) - pos))
    }

    /// What grain table entry `entry` (for byte `pos` of the extent) says.
    fn classify(&self, entry: u32, pos: u64) -> Result<Grain> {
        if entry == 0 {
            return Ok(Grain::Unallocated);
        }
        if entry == GTE_ZEROED && self.header.flags & FLAG_ZERO_GRAIN != 0 {
            return Ok(Grain::Zero);
        }
        let host = entry as u64 * SECTOR;
        let len = self.file.len();
        let need = if self.header.compressed() {
            12
        } else {
            self.grain_bytes()
        };
        if host.checked_add(need).is_none_or(|e| e > len) {
            return Err(self.corrupt(format!(
                "grain table entry for offset {pos:#x} points to sector {entry} ({host:#x}), \
                 beyond the end of the file ({len} bytes)"
            )));
        }
        Ok(if self.header.compressed() {
            Grain::Compressed(host)
        } else {
            Grain::Data(host)
        })
    }

    /// The plain bytes of the compressed grain behind the marker at `host`, which holds
    /// byte `pos` of the extent.
    pub fn compressed_grain(&self, host: u64, pos: u64) -> Result<Arc<Vec<u8>>> {
        if let Some((h, data)) = lock(&self.last_grain).as_ref() {
            if *h == host {
                return Ok(data.clone());
            }
        }
        let gb = self.grain_bytes();
        let mut head = [0u8; 12];
        self.file.read_at(&mut head, host)?;
        let lba = le64(&head, 0);
        let size = le32(&head, 8) as u64;
        let want = pos / gb * self.header.grain_sectors;
        if self.header.flags & FLAG_MARKERS != 0 && lba != want {
            return Err(self.corrupt(format!(
                "compressed grain at {host:#x} says it holds sector {lba}, the grain table \
                 says sector {want}"
            )));
        }
        let len = self.file.len();
        if size == 0 || size > 2 * gb + 4096 || host + 12 + size > len {
            return Err(self.corrupt(format!(
                "compressed grain at {host:#x} claims {size} bytes (the file has {len}, a \
                 grain is {gb})"
            )));
        }
        let mut input = vec![0u8; size as usize];
        self.file.read_at(&mut input, host + 12)?;
        let mut out = vec![0u8; gb as usize];
        let mut d = flate2::Decompress::new(true);
        let ok = d.decompress(&input, &mut out, flate2::FlushDecompress::Finish);
        let produced = d.total_out();
        // The last grain of a disk whose size is not a multiple of the grain is short.
        let expect = (self.capacity_bytes() - pos / gb * gb).min(gb);
        if ok.is_err() || produced < expect {
            return Err(self.corrupt(format!(
                "compressed grain at {host:#x} does not inflate to {expect} bytes ({})",
                match ok {
                    Err(e) => e.to_string(),
                    Ok(_) => format!("{produced} bytes"),
                }
            )));
        }
        let out = Arc::new(out);
        *lock(&self.last_grain) = Some((host, out.clone()));
        Ok(out)
    }

    /// Read `buf.len()` bytes at byte `host` of the file (a plain grain's data).
    pub fn read_plain(&self, buf: &mut [u8], host: u64) -> Result<()> {
        self.file.read_at(buf, host)
    }
}

/// The header copy in a streamOptimized footer: footer marker, header, end-of-stream marker
/// in the last three sectors.
fn footer(file: &RawFile, first: &SparseHeader) -> Result<SparseHeader> {
    let len = file.len();
    let bad = |m: &str| {
        Error::corrupt(format!(
            "the header says the grain directory is in the footer, but {m}"
        ))
    };
    if first.flags & FLAG_MARKERS == 0 || len < 512 * 4 {
        return Err(bad("the file has no markers or is too short for a footer"));
    }
    let mut buf = vec![0u8; 1536];
    file.read_at(&mut buf, len / 512 * 512 - 1536)?;
    let marker_ok = |b: &[u8], ty: u32| le64(b, 0) == 0 && le32(b, 8) == 0 && le32(b, 12) == ty;
    // The footer marker's first field is the number of sectors that follow (1).
    let footer_marker = le32(&buf, 8) == 0 && le32(&buf, 12) == MARKER_FOOTER;
    if !footer_marker || !marker_ok(&buf[1024..], MARKER_EOS) {
        return Err(bad(
            "the last three sectors are not footer marker, footer, end-of-stream",
        ));
    }
    let h = SparseHeader::parse(&buf[512..1024]).map_err(|e| bad(&format!("the footer: {e}")))?;
    if h.gd_offset == GD_AT_END {
        return Err(bad("the footer does not give its offset either"));
    }
    Ok(h)
}

fn read_descriptor(file: &RawFile, h: &SparseHeader) -> Result<Option<Descriptor>> {
    if h.descriptor_offset == 0 || h.descriptor_size == 0 {
        return Ok(None);
    }
    let off = h.descriptor_offset.saturating_mul(SECTOR);
    let size = h.descriptor_size.saturating_mul(SECTOR);
    if size > MAX_DESCRIPTOR || off.checked_add(size).is_none_or(|e| e > file.len()) {
        return Err(Error::corrupt(format!(
            "embedded descriptor ({size} bytes at {off:#x}) is beyond the end of the file \
             ({} bytes) or too large",
            file.len()
        )));
    }
    let mut buf = vec![0u8; size as usize];
    file.read_at(&mut buf, off)?;
    Descriptor::parse(&buf).map(Some)
}

/// The grain directory (primary, or the redundant one when the primary does not fit in
/// the file), as byte offsets of grain tables, each checked to lie inside the file.
fn read_gd(file: &RawFile, h: &SparseHeader) -> Result<Vec<u64>> {
    let len = file.len();
    let coverage = h.gtes_per_gt as u64 * h.grain_sectors;
    let entries = h.capacity.div_ceil(coverage);
    let bytes = entries * 4;
    if bytes > MAX_GD_BYTES {
        return Err(Error::unsupported(format!(
            "a grain directory of {bytes} bytes (capacity {} sectors) is larger than the \
             {MAX_GD_BYTES} bytes supported",
            h.capacity
        )));
    }
    let fits = |sector: u64| {
        sector != 0
            && sector
                .checked_mul(SECTOR)
                .and_then(|o| o.checked_add(bytes))
                .is_some_and(|e| e <= len)
    };
    let gd_sector = if fits(h.gd_offset) {
        h.gd_offset
    } else if h.flags & FLAG_RGD != 0 && fits(h.rgd_offset) {
        h.rgd_offset
    } else {
        return Err(Error::corrupt(format!(
            "the grain directory ({bytes} bytes at sector {}) is beyond the end of the file \
             ({len} bytes)",
            h.gd_offset
        )));
    };
    let mut buf = vec![0u8; bytes as usize];
    file.read_at(&mut buf, gd_sector * SECTOR)?;
    let gt_bytes = h.gtes_per_gt as u64 * 4;
    buf.chunks_exact(4)
        .enumerate()
        .map(|(i, c)| {
            let off = le32(c, 0) as u64 * SECTOR;
            if off != 0 && off + gt_bytes > len {
                return Err(Error::corrupt(format!(
                    "grain directory entry {i} points to a grain table at {off:#x}, beyond \
                     the end of the file ({len} bytes)"
                )));
            }
            Ok(off)
        })
        .collect()
}
