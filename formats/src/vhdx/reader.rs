//! Reading a VHDX (dynamic, fixed or differencing, with its parent chain) as a read-only
//! [`BlockDevice`].
//!
//! The BAT is read on demand in chunks, sector bitmaps (of partially present blocks in a
//! differencing disk) through a small cache, so memory stays bounded. Blocks that are not
//! present read as zeros, or from the parent in a differencing disk.

use super::header::{current_header, guid_text, Metadata};
use super::log::Replayed;
use crate::block::{check_range, BlockDevice, Extent, RawFile};
use crate::image::chain::{self, Run};
use crate::image::table::{Entry, Table};
use crate::image::Image;
use crate::qcow2::cache::Lru;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const MIB: u64 = 1 << 20;
/// Payload block states.
const NOT_PRESENT: u64 = 0;
const UNDEFINED: u64 = 1;
const ZERO: u64 = 2;
const UNMAPPED: u64 = 3;
const FULLY_PRESENT: u64 = 6;
const PARTIALLY_PRESENT: u64 = 7;
/// A sector bitmap block's "present" state.
const SB_PRESENT: u64 = 6;
/// Per-block slices of sector bitmaps cached.
const BITMAPS_CACHED: usize = 64;

/// How a run of guest bytes is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Map {
    /// Not in this file: the parent's bytes, or zeros without a parent.
    Absent,
    /// Reads as zeros.
    Zero,
    /// At this host offset (of the run's first byte).
    Data(u64),
}

/// An open VHDX image, read-only, with its parent chain.
#[derive(Debug)]
pub struct VhdxImage {
    path: PathBuf,
    file: Replayed,
    meta: Metadata,
    bat: Table,
    bitmaps: Mutex<Lru<Arc<Vec<u8>>>>,
    parent: Option<Image>,
}

impl VhdxImage {
    /// Open a VHDX read-only, with its whole parent chain.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_chain(path.as_ref(), &mut Vec::new())
    }

    /// Open `path` as part of a chain whose images (canonical paths) are `seen`.
    pub(crate) fn open_chain(path: &Path, seen: &mut Vec<PathBuf>) -> Result<Self> {
        chain::enter(path, seen)?;
        let raw = RawFile::open(path)?;
        let (file, meta) = (|| {
            let header = current_header(&raw)?;
            let file = Replayed::replay(raw, &header)?;
            let meta = Metadata::read(&file, &header)?;
            Ok((file, meta))
        })()
        .map_err(|e: Error| e.in_file(path))?;
        let blocks = meta.size.div_ceil(u64::from(meta.block_size));
        let cr = meta.chunk_ratio();
        let entries = if meta.parent.is_some() {
            blocks.div_ceil(cr) * (cr + 1)
        } else {
            blocks + (blocks - 1) / cr
        };
        if entries * 8 > meta.bat_len {
            return Err(Error::corrupt(format!(
                "VHDX BAT region of {} bytes is too small for {entries} entries",
                meta.bat_len
            ))
            .in_file(path));
        }
        let mut img = VhdxImage {
            path: path.to_path_buf(),
            bat: Table::new(meta.bat_offset, entries, Entry::Le64),
            file,
            meta,
            bitmaps: Mutex::new(Lru::new(BITMAPS_CACHED)),
            parent: None,
        };
        if img.meta.parent.is_some() {
            img.parent = Some(img.open_parent(seen)?);
        }
        Ok(img)
    }

    /// Find the parent from the locator (relative path beside the child, an absolute one
    /// only when it exists, else its file name beside the child) and check its identity.
    fn open_parent(&self, seen: &mut Vec<PathBuf>) -> Result<Image> {
        let loc = self.meta.parent.clone().unwrap_or_default();
        let written: Vec<&str> = ["relative_path", "absolute_win32_path", "volume_path"]
            .iter()
            .filter_map(|k| loc.get(k))
            .collect();
        let mut candidates: Vec<PathBuf> = written
            .iter()
            .filter_map(|w| chain::locate(&self.path, w))
            .collect();
        for n in written.iter().filter_map(|w| chain::file_name_of(w)) {
            candidates.extend(chain::locate(&self.path, n));
        }
        let Some(found) = candidates.into_iter().next() else {
            return Err(Error::NotFound(format!(
                "{}: parent image not found (locator: {}); it is looked for beside the \
                 child, never outside its directory",
                self.path.display(),
                if written.is_empty() {
                    "no path".to_string()
                } else {
                    written.join(", ")
                }
            )));
        };
        let parent = Image::open_chain(&found, None, seen)?;
        if let (Image::Vhdx(p), Some(link)) = (&parent, loc.get("parent_linkage")) {
            let theirs = guid_text(&p.meta.data_write_guid);
            let want = link.trim_matches(['{', '}']).to_ascii_lowercase();
            if theirs != want {
                return Err(self.corrupt(format!(
                    "parent {} has DataWriteGuid {theirs}, but the child was made from {want}",
                    found.display()
                )));
            }
        }
        Ok(parent)
    }

    /// What the headers and metadata say.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// True when the image had a log to replay (it was replayed in memory).
    pub fn log_replayed(&self) -> bool {
        self.file.was_replayed()
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

    /// The sector bitmap bits of payload block `block` (one bit per logical sector).
    fn bitmap(&self, block: u64) -> Result<Arc<Vec<u8>>> {
        let lock = || self.bitmaps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = lock().get(block) {
            return Ok(b);
        }
        let cr = self.meta.chunk_ratio();
        let idx = (block / cr) * (cr + 1) + cr;
        let entry = self.bat.get(&self.file, idx)?;
        let at = entry >> 20 << 20;
        if entry & 7 != SB_PRESENT || at.checked_add(MIB).is_none_or(|e| e > self.file.len()) {
            return Err(self.corrupt(format!(
                "block {block} is partially present but its sector bitmap (BAT entry {idx}: \
                 {entry:#x}) is not present within the file ({} bytes)",
                self.file.len()
            )));
        }
        let per_block = u64::from(self.meta.block_size / self.meta.logical_sector_size) / 8;
        let mut buf = vec![0u8; per_block as usize];
        self.file.read_at(&mut buf, at + (block % cr) * per_block)?;
        let b = Arc::new(buf);
        lock().insert(block, b.clone());
        Ok(b)
    }

    /// The mapping of `pos` and how many bytes from it (at most `max`, within one block)
    /// map the same way.
    fn map_run(&self, pos: u64, max: u64) -> Result<(Map, u64)> {
        let bs = u64::from(self.meta.block_size);
        let block = pos / bs;
        let start = block * bs;
        let end = (start + bs).min(pos + max);
        let idx = block + block / self.meta.chunk_ratio();
        let entry = self.bat.get(&self.file, idx)?;
        let host = entry >> 20 << 20;
        let data = |p: u64| -> Result<Map> {
            let file_len = self.file.len();
            if host < MIB || host + (end - start) > file_len {
                return Err(self.corrupt(format!(
                    "BAT entry {idx} (block {block}) points to {host:#x}, outside the file \
                     ({file_len} bytes)"
                )));
            }
            Ok(Map::Data(host + (p - start)))
        };
        let whole = |m: Map| Ok((m, end - pos));
        match entry & 7 {
            NOT_PRESENT | UNDEFINED => whole(Map::Absent),
            ZERO | UNMAPPED => whole(Map::Zero),
            FULLY_PRESENT => whole(data(pos)?),
            PARTIALLY_PRESENT if self.parent.is_some() => {
                let bits = self.bitmap(block)?;
                let lss = u64::from(self.meta.logical_sector_size);
                let bit = |p: u64| {
                    let s = (p - start) / lss;
                    bits[(s / 8) as usize] >> (s % 8) & 1 != 0
                };
                let first = bit(pos);
                let mut next = (pos / lss + 1) * lss;
                while next < end && bit(next) == first {
                    next += lss;
                }
                let m = if first { data(pos)? } else { Map::Absent };
                Ok((m, next.min(end) - pos))
            }
            state => Err(self.corrupt(format!(
                "BAT entry {idx} (block {block}) has state {state}, invalid for a payload \
                 block{}",
                if self.parent.is_none() {
                    " of a disk without a parent"
                } else {
                    ""
                }
            ))),
        }
    }
}

impl BlockDevice for VhdxImage {
    fn len(&self) -> u64 {
        self.meta.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.meta.size, offset, buf.len() as u64)?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (map, n) = self.map_run(pos, (buf.len() - done) as u64)?;
            let out = &mut buf[done..done + n as usize];
            match map {
                Map::Absent => chain::read_parent(self.parent.as_ref(), out, pos)?,
                Map::Zero => out.fill(0),
                Map::Data(host) => self.file.read_at(out, host)?,
            }
            done += n as usize;
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.meta.size, offset, len)?;
        chain::map_extents(self.parent.as_ref(), offset, len, |pos, left| {
            let (map, n) = self.map_run(pos, left)?;
            let run = match map {
                Map::Absent => Run::Parent,
                Map::Zero => Run::Zero,
                Map::Data(_) => Run::Data,
            };
            Ok((run, n))
        })
    }

    fn format_name(&self) -> &'static str {
        "vhdx"
    }
}
