//! VirtualBox VDI images (header version 1.1), fixed and dynamic, read-only as a
//! [`BlockDevice`]. The block map is read in chunks through a small cache; unallocated
//! and discarded blocks read as zeros and are reported as holes. Differencing images
//! (which name their parent by UUID only) are refused.

use crate::block::{check_range, BlockDevice, Extent, RawFile};
use crate::image::chain::{self, Run};
use crate::qcow2::cache::Lru;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The signature at byte 0x40.
pub const SIGNATURE: u32 = 0xbeda_107f;
const VERSION_1_1: u32 = 0x0001_0001;
const TYPE_DYNAMIC: u32 = 1;
const TYPE_STATIC: u32 = 2;
const UNALLOCATED: u32 = 0xffff_ffff;
const DISCARDED: u32 = 0xffff_fffe;
/// Block map entries cached per chunk, and chunks cached.
const CHUNK: u64 = 4096;
const CHUNKS_CACHED: usize = 16;
/// Largest block accepted (VirtualBox uses 1 MiB).
const MAX_BLOCK: u32 = 64 << 20;

/// The fields of a VDI header that reading needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdiHeader {
    /// 1: dynamic, 2: fixed.
    pub image_type: u32,
    pub offset_bmap: u32,
    pub offset_data: u32,
    pub disk_size: u64,
    pub block_size: u32,
    pub blocks_in_image: u32,
    pub blocks_allocated: u32,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl VdiHeader {
    /// Parse the header at the start of a file of `file_len` bytes (`b` is its first 512).
    pub fn parse(b: &[u8], file_len: u64) -> Result<Self> {
        if b.len() < 0x190 || le32(b, 0x40) != SIGNATURE {
            return Err(Error::corrupt(
                "not a VDI image (no signature 0xbeda107f at byte 0x40)".to_string(),
            ));
        }
        let version = le32(b, 0x44);
        if version != VERSION_1_1 {
            return Err(Error::unsupported(format!(
                "VDI header version {}.{} (only 1.1 is read)",
                version >> 16,
                version & 0xffff
            )));
        }
        let h = VdiHeader {
            image_type: le32(b, 0x4c),
            offset_bmap: le32(b, 0x154),
            offset_data: le32(b, 0x158),
            disk_size: u64::from_le_bytes(b[0x170..0x178].try_into().expect("8 bytes")),
            block_size: le32(b, 0x178),
            blocks_in_image: le32(b, 0x180),
            blocks_allocated: le32(b, 0x184),
        };
        let block_extra = le32(b, 0x17c);
        let sector_size = le32(b, 0x168);
        match h.image_type {
            TYPE_DYNAMIC | TYPE_STATIC => {}
            4 => {
                return Err(Error::unsupported(
                    "a VDI differencing image (its parent is named by UUID only)".to_string(),
                ))
            }
            t => return Err(Error::unsupported(format!("VDI image type {t}"))),
        }
        let bad = |m: String| Err(Error::corrupt(m));
        if sector_size != 512 {
            return bad(format!("sector size {sector_size} (expected 512)"));
        }
        if block_extra != 0 {
            return Err(Error::unsupported(format!(
                "{block_extra} extra bytes per block"
            )));
        }
        if h.block_size == 0 || !h.block_size.is_power_of_two() || h.block_size > MAX_BLOCK {
            return bad(format!(
                "block size {} (expected a power of two up to {MAX_BLOCK})",
                h.block_size
            ));
        }
        if (h.blocks_in_image as u64) < h.disk_size.div_ceil(h.block_size as u64) {
            return bad(format!(
                "{} blocks of {} bytes cannot hold a disk of {} bytes",
                h.blocks_in_image, h.block_size, h.disk_size
            ));
        }
        let bmap_end = h.offset_bmap as u64 + h.blocks_in_image as u64 * 4;
        if h.offset_bmap < 512 || bmap_end > file_len {
            return bad(format!(
                "the block map ({} entries at {:#x}) is beyond the end of the file \
                 ({file_len} bytes)",
                h.blocks_in_image, h.offset_bmap
            ));
        }
        if (h.offset_data as u64) < bmap_end.min(h.offset_bmap as u64 + 4) {
            return bad(format!(
                "data offset {:#x} is inside the header or block map",
                h.offset_data
            ));
        }
        Ok(h)
    }
}

/// An open VDI image, read-only.
#[derive(Debug)]
pub struct VdiImage {
    path: PathBuf,
    file: RawFile,
    header: VdiHeader,
    bmap: Mutex<Lru<Arc<Vec<u32>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a block is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Map {
    Hole,
    /// At this byte offset of the file (of the block's first byte).
    Data(u64),
}

impl VdiImage {
    /// Open a VDI image read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = RawFile::open(path)?;
        if file.len() < 512 {
            return Err(Error::corrupt(format!(
                "{}: {} bytes is too short for a VDI header (512 bytes)",
                path.display(),
                file.len()
            )));
        }
        let mut head = vec![0u8; 512];
        file.read_at(&mut head, 0)?;
        let header = VdiHeader::parse(&head, file.len()).map_err(|e| e.in_file(path))?;
        Ok(VdiImage {
            path: path.to_path_buf(),
            file,
            header,
            bmap: Mutex::new(Lru::new(CHUNKS_CACHED)),
        })
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header.
    pub fn header(&self) -> &VdiHeader {
        &self.header
    }

    /// Bytes the file occupies on the host filesystem.
    pub fn file_allocated_bytes(&self) -> Result<u64> {
        self.file.allocated_bytes()
    }

    fn entry(&self, block: u64) -> Result<u32> {
        let chunk = block / CHUNK;
        let cached = lock(&self.bmap).get(chunk);
        let table = match cached {
            Some(t) => t,
            None => {
                let first = chunk * CHUNK;
                let n = CHUNK.min(self.header.blocks_in_image as u64 - first);
                let mut buf = vec![0u8; (n * 4) as usize];
                self.file
                    .read_at(&mut buf, self.header.offset_bmap as u64 + first * 4)?;
                let t = Arc::new(buf.chunks_exact(4).map(|c| le32(c, 0)).collect::<Vec<_>>());
                lock(&self.bmap).insert(chunk, t.clone());
                t
            }
        };
        Ok(table[(block - chunk * CHUNK) as usize])
    }

    /// How the block holding `pos` is stored, and the bytes from `pos` to its end.
    fn map(&self, pos: u64) -> Result<(Map, u64)> {
        let bs = self.header.block_size as u64;
        let block = pos / bs;
        let within = pos % bs;
        let e = self.entry(block)?;
        if e == UNALLOCATED || e == DISCARDED {
            return Ok((Map::Hole, bs - within));
        }
        let host = self.header.offset_data as u64 + e as u64 * bs;
        let file_len = self.file.len();
        if e >= self.header.blocks_in_image || host + bs > file_len {
            return Err(Error::corrupt(format!(
                "{}: block map entry {block} points to block {e} at {host:#x}, beyond the \
                 end of the file ({file_len} bytes) or the {} blocks of the image",
                self.path.display(),
                self.header.blocks_in_image
            )));
        }
        Ok((Map::Data(host + within), bs - within))
    }
}

impl BlockDevice for VdiImage {
    fn len(&self) -> u64 {
        self.header.disk_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64)?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (map, n) = self.map(pos)?;
            let n = n.min((buf.len() - done) as u64) as usize;
            let out = &mut buf[done..done + n];
            match map {
                Map::Hole => out.fill(0),
                Map::Data(host) => self.file.read_at(out, host)?,
            }
            done += n;
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len(), offset, len)?;
        chain::map_extents(None, offset, len, |pos, _| {
            let (map, n) = self.map(pos)?;
            let run = match map {
                Map::Hole => Run::Zero,
                Map::Data(_) => Run::Data,
            };
            Ok((run, n))
        })
    }

    fn format_name(&self) -> &'static str {
        "vdi"
    }
}
