//! Reading a VHD (fixed, dynamic or differencing, with its parent chain) as a read-only
//! [`BlockDevice`].
//!
//! The footer at the end of the file is trusted when its checksum holds, else the copy at
//! the start of a dynamic disk. The BAT is read on demand in chunks and sector bitmaps
//! through a small cache, so memory stays bounded. A sector whose bitmap bit is clear
//! reads as zeros in a dynamic disk and from the parent in a differencing one.

use super::footer::{DiskType, DynamicHeader, Footer, FOOTER_LEN, HEADER_LEN, MAX_SIZE};
use crate::block::{check_range, BlockDevice, Extent, RawFile};
use crate::image::chain::{self, Run};
use crate::image::table::{Entry, Table};
use crate::image::Image;
use crate::qcow2::cache::Lru;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A BAT entry for a block that is not allocated.
const UNALLOCATED: u64 = 0xffff_ffff;
/// Largest block size accepted (its bitmap is 64 KiB).
const MAX_BLOCK_SIZE: u32 = 256 << 20;
/// Sector bitmaps cached.
const BITMAPS_CACHED: usize = 64;
/// Longest parent locator read.
const MAX_LOCATOR_LEN: u32 = 64 << 10;

/// The block map of a dynamic or differencing disk.
#[derive(Debug)]
struct Dynamic {
    header: DynamicHeader,
    bat: Table,
    /// Bytes of the sector bitmap before each block's data (whole sectors).
    bitmap_len: u64,
    bitmaps: Mutex<Lru<Arc<Vec<u8>>>>,
}

/// How a run of guest bytes is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Map {
    /// Not in this file: zeros, or the parent's bytes.
    Absent,
    /// At this host offset (of the run's first byte).
    Data(u64),
}

/// An open VHD image, read-only, with its parent chain.
#[derive(Debug)]
pub struct VhdImage {
    path: PathBuf,
    file: RawFile,
    footer: Footer,
    size: u64,
    dynamic: Option<Dynamic>,
    parent: Option<Image>,
}

impl VhdImage {
    /// Open a VHD read-only, with its whole parent chain.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_chain(path.as_ref(), &mut Vec::new())
    }

    /// Open `path` as part of a chain whose images (canonical paths) are `seen`.
    pub(crate) fn open_chain(path: &Path, seen: &mut Vec<PathBuf>) -> Result<Self> {
        chain::enter(path, seen)?;
        let file = RawFile::open(path)?;
        let (footer, size, dynamic) = Self::parse(&file).map_err(|e| e.in_file(path))?;
        let mut img = VhdImage {
            path: path.to_path_buf(),
            file,
            footer,
            size,
            dynamic,
            parent: None,
        };
        if img.footer.disk_type == DiskType::Differencing {
            img.parent = Some(img.open_parent(seen)?);
        }
        Ok(img)
    }

    fn parse(file: &RawFile) -> Result<(Footer, u64, Option<Dynamic>)> {
        let file_len = file.len();
        if file_len < FOOTER_LEN as u64 {
            return Err(Error::corrupt(format!(
                "truncated VHD: {file_len} bytes, shorter than its 512-byte footer"
            )));
        }
        let mut buf = [0u8; FOOTER_LEN];
        file.read_at(&mut buf, file_len - FOOTER_LEN as u64)?;
        let footer = match Footer::parse(&buf) {
            Ok(f) => f,
            Err(end) => {
                // A dynamic disk keeps a copy at the start (the end one may be cut off).
                file.read_at(&mut buf, 0)?;
                match Footer::parse(&buf) {
                    Ok(f) if f.disk_type != DiskType::Fixed => f,
                    _ => return Err(end),
                }
            }
        };
        let size = footer.virtual_size();
        if size > MAX_SIZE || size % 512 != 0 {
            return Err(Error::corrupt(format!(
                "VHD virtual size {size} is not a multiple of 512 up to 2040 GiB"
            )));
        }
        if footer.disk_type == DiskType::Fixed {
            let data = file_len - FOOTER_LEN as u64;
            if size > data {
                return Err(Error::corrupt(format!(
                    "truncated fixed VHD: virtual size {size} but only {data} bytes before \
                     the footer"
                )));
            }
            return Ok((footer, size, None));
        }
        let at = footer.data_offset;
        if at
            .checked_add(HEADER_LEN as u64)
            .is_none_or(|e| e > file_len)
        {
            return Err(Error::corrupt(format!(
                "VHD dynamic header offset {at:#x} is beyond the end of the file \
                 ({file_len} bytes)"
            )));
        }
        let mut hbuf = vec![0u8; HEADER_LEN];
        file.read_at(&mut hbuf, at)?;
        let header = DynamicHeader::parse(&hbuf, file_len)?;
        if header.block_size > MAX_BLOCK_SIZE {
            return Err(Error::unsupported(format!(
                "VHD block size {} is larger than {MAX_BLOCK_SIZE}",
                header.block_size
            )));
        }
        let mapped = u64::from(header.max_table_entries) * u64::from(header.block_size);
        if mapped < size {
            return Err(Error::corrupt(format!(
                "VHD block allocation table maps {mapped} bytes, less than the virtual \
                 size {size}"
            )));
        }
        let sectors = u64::from(header.block_size / 512);
        let bitmap_len = sectors.div_ceil(8).next_multiple_of(512);
        let bat = Table::new(
            header.table_offset,
            u64::from(header.max_table_entries),
            Entry::Be32,
        );
        Ok((
            footer,
            size,
            Some(Dynamic {
                header,
                bat,
                bitmap_len,
                bitmaps: Mutex::new(Lru::new(BITMAPS_CACHED)),
            }),
        ))
    }

    /// Find and open the parent through the locators, confined to the child's directory
    /// (an absolute locator is taken only when that file exists), checking its identity.
    fn open_parent(&self, seen: &mut Vec<PathBuf>) -> Result<Image> {
        let Some(d) = &self.dynamic else {
            return Err(self.corrupt("differencing disk without a dynamic header".into()));
        };
        let mut written = Vec::new();
        // Relative locators first, then absolute ones, then each name beside the child.
        let order = [b"W2ru", b"Wi2r", b"W2ku", b"Wi2k", b"MacX", b"Mac "];
        for code in order {
            for l in d
                .header
                .parent_locators
                .iter()
                .filter(|l| &l.platform == code)
            {
                written.push(self.locator_text(l.platform, l.len, l.offset)?);
            }
        }
        let mut candidates: Vec<PathBuf> = written
            .iter()
            .filter_map(|w| chain::locate(&self.path, w))
            .collect();
        let names = written.iter().chain(std::iter::once(&d.header.parent_name));
        for n in names.filter_map(|w| chain::file_name_of(w)) {
            candidates.extend(chain::locate(&self.path, n));
        }
        let Some(found) = candidates.into_iter().next() else {
            return Err(Error::NotFound(format!(
                "{}: parent image {:?} not found (locators: {}); it is looked for beside \
                 the child, never outside its directory",
                self.path.display(),
                d.header.parent_name,
                if written.is_empty() {
                    "none".to_string()
                } else {
                    written.join(", ")
                }
            )));
        };
        let parent = Image::open_chain(&found, None, seen)?;
        if let Image::Vhd(p) = &parent {
            if p.footer.unique_id != d.header.parent_unique_id {
                return Err(self.corrupt(format!(
                    "parent {} has unique id {}, but the child was made from {}",
                    found.display(),
                    hex(&p.footer.unique_id),
                    hex(&d.header.parent_unique_id)
                )));
            }
        }
        Ok(parent)
    }

    /// The path a locator holds: UTF-16LE for the Windows codes, a UTF-8 file URL for Mac.
    fn locator_text(&self, platform: [u8; 4], len: u32, offset: u64) -> Result<String> {
        let file_len = self.file.len();
        if len > MAX_LOCATOR_LEN
            || offset
                .checked_add(u64::from(len))
                .is_none_or(|e| e > file_len)
        {
            return Err(self.corrupt(format!(
                "parent locator {:?} ({len} bytes at {offset:#x}) is beyond the end of the \
                 file ({file_len} bytes) or too long",
                String::from_utf8_lossy(&platform)
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_at(&mut buf, offset)?;
        let text = if platform.starts_with(b"Mac") {
            let s = String::from_utf8_lossy(&buf).into_owned();
            let s = s.trim_end_matches('\0');
            let s = s.strip_prefix("file://").unwrap_or(s);
            s.strip_prefix("localhost").unwrap_or(s).to_string()
        } else {
            let units: Vec<u16> = buf
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&c| c != 0)
                .collect();
            String::from_utf16_lossy(&units)
        };
        Ok(text)
    }

    /// The parsed footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The dynamic header (dynamic and differencing disks).
    pub fn dynamic_header(&self) -> Option<&DynamicHeader> {
        self.dynamic.as_ref().map(|d| &d.header)
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parent image of a differencing disk.
    pub fn parent(&self) -> Option<&Image> {
        self.parent.as_ref()
    }

    /// Bytes the file occupies on the host filesystem.
    pub fn file_allocated_bytes(&self) -> Result<u64> {
        self.file.allocated_bytes()
    }

    fn corrupt(&self, msg: String) -> Error {
        Error::corrupt(format!("{}: {msg}", self.path.display()))
    }

    fn bitmap(&self, d: &Dynamic, block: u64, at: u64) -> Result<Arc<Vec<u8>>> {
        let lock = || d.bitmaps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = lock().get(block) {
            return Ok(b);
        }
        let mut buf = vec![0u8; d.bitmap_len as usize];
        self.file.read_at(&mut buf, at)?;
        let b = Arc::new(buf);
        lock().insert(block, b.clone());
        Ok(b)
    }

    /// The mapping of `pos` and how many bytes from it (at most `max`, within one block)
    /// map the same way.
    fn map_run(&self, pos: u64, max: u64) -> Result<(Map, u64)> {
        let Some(d) = &self.dynamic else {
            return Ok((Map::Data(pos), max));
        };
        let bs = u64::from(d.header.block_size);
        let block = pos / bs;
        let end = ((block + 1) * bs).min(pos + max);
        let entry = d.bat.get(&self.file, block)?;
        if entry == UNALLOCATED {
            return Ok((Map::Absent, end - pos));
        }
        let file_len = self.file.len();
        let bitmap_at = entry * 512;
        let data_at = bitmap_at + d.bitmap_len;
        let block_end = data_at + (end - block * bs);
        if block_end > file_len {
            return Err(self.corrupt(format!(
                "BAT entry {block} points to sector {entry} (offset {bitmap_at:#x}), whose \
                 data extends beyond the end of the file ({file_len} bytes)"
            )));
        }
        let bitmap = self.bitmap(d, block, bitmap_at)?;
        let bit = |p: u64| {
            let s = (p - block * bs) / 512;
            bitmap[(s / 8) as usize] & (0x80 >> (s % 8)) != 0
        };
        let first = bit(pos);
        let mut next = (pos / 512 + 1) * 512;
        while next < end && bit(next) == first {
            next += 512;
        }
        let map = if first {
            Map::Data(data_at + (pos - block * bs))
        } else {
            Map::Absent
        };
        Ok((map, next.min(end) - pos))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl BlockDevice for VhdImage {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len() as u64)?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (map, n) = self.map_run(pos, (buf.len() - done) as u64)?;
            let out = &mut buf[done..done + n as usize];
            match map {
                Map::Absent => chain::read_parent(self.parent.as_ref(), out, pos)?,
                Map::Data(host) => self.file.read_at(out, host)?,
            }
            done += n as usize;
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.size, offset, len)?;
        if self.dynamic.is_none() {
            return self.file.extents(offset, len);
        }
        chain::map_extents(self.parent.as_ref(), offset, len, |pos, left| {
            let (map, n) = self.map_run(pos, left)?;
            let run = match map {
                Map::Absent => Run::Parent,
                Map::Data(_) => Run::Data,
            };
            Ok((run, n))
        })
    }

    fn format_name(&self) -> &'static str {
        "vhd"
    }
}
