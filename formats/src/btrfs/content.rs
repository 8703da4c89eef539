//! A file's content: its extents read in order, a few at a time (inline, regular,
//! prealloc, holes; zlib, lzo and zstd decompressed one extent at a time, at most 128 KiB
//! each), as a [`Content`] that knows its data/zero map.

use super::fs::BtrfsFs;
use super::items::{ExtentBody, FileExtent};
use super::key_type::EXTENT_DATA;
use super::search::TreeRoot;
use crate::block::{BlockDevice, Extent, ExtentKind};
use crate::tree::Content;
use crate::{Error, Result};
use std::collections::VecDeque;
use std::io::{self, Read};

/// Extent items fetched per tree search.
const BATCH: usize = 64;
/// The largest decompressed extent btrfs writes (128 KiB), with room to spare.
const MAX_RAM_BYTES: u64 = 1 << 20;
/// Bytes read from the device at once for an uncompressed extent.
const READ_CHUNK: u64 = 1 << 20;

/// One extent item, placed in the file.
#[derive(Debug, Clone)]
struct Placed {
    start: u64,
    ext: FileExtent,
}

/// What an extent holds, once decompressed when it must be.
enum Loaded {
    /// Bytes in memory for `[start, start + len)`.
    Bytes { start: u64, data: Vec<u8> },
    /// Read from logical `at` onwards for `[start, end)`.
    Disk { start: u64, end: u64, at: u64 },
    /// Zeros for `[start, end)`.
    Zero { start: u64, end: u64 },
}

/// The content of one regular file (or a symlink's target).
pub struct BtrfsContent<'a, D: BlockDevice> {
    fs: &'a BtrfsFs<D>,
    tree: TreeRoot,
    ino: u64,
    size: u64,
    pos: u64,
    /// Extent items fetched, not yet passed.
    queue: VecDeque<Placed>,
    /// The file offset from which to fetch more items (`None`: all fetched).
    next: Option<u64>,
    current: Option<Loaded>,
}

impl<'a, D: BlockDevice> BtrfsContent<'a, D> {
    pub fn new(fs: &'a BtrfsFs<D>, tree: TreeRoot, ino: u64, size: u64) -> Self {
        BtrfsContent {
            fs,
            tree,
            ino,
            size,
            pos: 0,
            queue: VecDeque::new(),
            next: Some(0),
            current: None,
        }
    }

    /// The next extent item, fetching a batch when needed.
    fn peek(&mut self) -> Result<Option<&Placed>> {
        if self.queue.is_empty() {
            if let Some(from) = self.next {
                let items = self
                    .fs
                    .items(self.tree, self.ino, EXTENT_DATA, from, BATCH)?;
                self.next = match items.last() {
                    Some((off, _)) if items.len() == BATCH => off.checked_add(1),
                    _ => None,
                };
                for (start, d) in items {
                    let ext = FileExtent::parse(&d)?;
                    self.queue.push_back(Placed { start, ext });
                }
            }
        }
        Ok(self.queue.front())
    }

    /// Make `current` cover `pos` (an extent, or the hole before the next one).
    fn load(&mut self) -> Result<()> {
        loop {
            let pos = self.pos;
            let Some(p) = self.peek()? else {
                self.current = Some(Loaded::Zero {
                    start: pos,
                    end: self.size,
                });
                return Ok(());
            };
            let (start, len) = (p.start, p.ext.len());
            if start > pos {
                self.current = Some(Loaded::Zero {
                    start: pos,
                    end: start,
                });
                return Ok(());
            }
            let p = self.queue.pop_front().expect("peeked");
            if start.saturating_add(len) <= pos {
                continue; // passed (or covers nothing)
            }
            self.current = Some(self.loaded(&p)?);
            return Ok(());
        }
    }

    fn sector(&self) -> usize {
        self.fs.superblock().sectorsize as usize
    }

    fn loaded(&self, p: &Placed) -> Result<Loaded> {
        let start = p.start;
        let end = start.saturating_add(p.ext.len());
        let what = || format!("inode {} at file offset {start}", self.ino);
        Ok(match &p.ext.body {
            ExtentBody::Prealloc { .. } | ExtentBody::Regular { disk_bytenr: 0, .. } => {
                Loaded::Zero { start, end }
            }
            ExtentBody::Inline(d) => Loaded::Bytes {
                start,
                data: decompress(p.ext.compression, d, p.ext.len(), self.sector(), &what)?,
            },
            ExtentBody::Regular {
                disk_bytenr,
                disk_len,
                offset,
                num_bytes,
            } if p.ext.compression != 0 => {
                if *disk_len > MAX_RAM_BYTES || p.ext.ram_bytes > MAX_RAM_BYTES {
                    return Err(Error::corrupt(format!(
                        "btrfs: the compressed extent of {} claims {disk_len} bytes on disk, \
                         {} decompressed (at most {MAX_RAM_BYTES})",
                        what(),
                        p.ext.ram_bytes
                    )));
                }
                let mut raw = vec![0u8; *disk_len as usize];
                self.fs.read_logical(&mut raw, *disk_bytenr)?;
                let all = decompress(
                    p.ext.compression,
                    &raw,
                    p.ext.ram_bytes,
                    self.sector(),
                    &what,
                )?;
                let from = (*offset as usize).min(all.len());
                let to = offset.saturating_add(*num_bytes).min(all.len() as u64) as usize;
                if to - from != *num_bytes as usize {
                    return Err(Error::corrupt(format!(
                        "btrfs: the compressed extent of {} decompresses to {} bytes, too few \
                         for {num_bytes} from offset {offset}",
                        what(),
                        all.len()
                    )));
                }
                Loaded::Bytes {
                    start,
                    data: all[from..to].to_vec(),
                }
            }
            ExtentBody::Regular {
                disk_bytenr,
                offset,
                ..
            } => Loaded::Disk {
                start,
                end,
                at: disk_bytenr.checked_add(*offset).ok_or_else(|| {
                    Error::corrupt(format!("btrfs: the extent of {} overflows", what()))
                })?,
            },
        })
    }

    /// Fill as much of `buf` as the current extent allows; 0 at the end of the file.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let covers = |l: &Loaded, pos: u64| match l {
            Loaded::Bytes { start, data } => {
                pos >= *start && pos < start.saturating_add(data.len() as u64)
            }
            Loaded::Disk { start, end, .. } | Loaded::Zero { start, end } => {
                pos >= *start && pos < *end
            }
        };
        if !self.current.as_ref().is_some_and(|l| covers(l, self.pos)) {
            self.load()?;
        }
        let pos = self.pos;
        let left = self.size - pos;
        let want = |end: u64| (end - pos).min(left).min(buf.len() as u64) as usize;
        let n = match self.current.as_ref().expect("loaded") {
            Loaded::Bytes { start, data } => {
                let n = want(start.saturating_add(data.len() as u64));
                let from = (pos - start) as usize;
                buf[..n].copy_from_slice(&data[from..from + n]);
                n
            }
            Loaded::Zero { end, .. } => {
                let n = want(*end);
                buf[..n].fill(0);
                n
            }
            Loaded::Disk { start, end, at } => {
                let n = want(*end).min(READ_CHUNK as usize);
                let from = at.checked_add(pos - start).ok_or_else(|| {
                    Error::corrupt(format!("btrfs: inode {}: an extent overflows", self.ino))
                })?;
                self.fs.read_logical(&mut buf[..n], from)?;
                n
            }
        };
        if n == 0 {
            return Err(Error::corrupt(format!(
                "btrfs: inode {}: no data at offset {pos}",
                self.ino
            )));
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// The data/zero map of the file, merged (reads every extent item, none of the data).
    pub fn map(&self) -> Result<Vec<Extent>> {
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |offset: u64, end: u64, kind: ExtentKind| {
            let end = end.min(self.size);
            if end <= offset {
                return;
            }
            match out.last_mut() {
                Some(l) if l.kind == kind && l.end() == offset => l.len = end - l.offset,
                _ => out.push(Extent {
                    offset,
                    len: end - offset,
                    kind,
                }),
            }
        };
        let mut covered = 0u64;
        let mut from = Some(0u64);
        while let Some(f) = from {
            let items = self.fs.items(self.tree, self.ino, EXTENT_DATA, f, BATCH)?;
            from = match items.last() {
                Some((off, _)) if items.len() == BATCH => off.checked_add(1),
                _ => None,
            };
            for (start, d) in items {
                let ext = FileExtent::parse(&d)?;
                let start = start.max(covered);
                let end = start.saturating_add(ext.len());
                if start > covered {
                    push(covered, start, ExtentKind::Zero);
                }
                let kind = match ext.body {
                    ExtentBody::Prealloc { .. } | ExtentBody::Regular { disk_bytenr: 0, .. } => {
                        ExtentKind::Zero
                    }
                    _ => ExtentKind::Data,
                };
                push(start, end, kind);
                covered = covered.max(end);
            }
        }
        push(covered, self.size, ExtentKind::Zero);
        Ok(out)
    }
}

impl<D: BlockDevice> Read for BtrfsContent<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_some(buf).map_err(io::Error::other)
    }
}

impl<D: BlockDevice> Content for BtrfsContent<'_, D> {
    fn extents(&self) -> Result<Vec<Extent>> {
        self.map()
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.pos = self.pos.saturating_add(n).min(self.size);
        Ok(())
    }
}

/// The bytes of an extent stored with `compression` (0 none, 1 zlib, 2 lzo, 3 zstd),
/// `len` once decompressed (what is missing reads as zeros, as in the kernel).
pub fn decompress(
    compression: u8,
    data: &[u8],
    len: u64,
    sectorsize: usize,
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    if len > MAX_RAM_BYTES {
        return Err(Error::corrupt(format!(
            "btrfs: the extent of {} claims {len} bytes (at most {MAX_RAM_BYTES})",
            what()
        )));
    }
    let len = len as usize;
    let bad = |algo: &str, e: &dyn std::fmt::Display| {
        Error::corrupt(format!(
            "btrfs: the {algo} data of {} do not decompress: {e}",
            what()
        ))
    };
    let mut out = match compression {
        0 => data.to_vec(),
        1 => {
            let mut out = Vec::with_capacity(len);
            let r = flate2::read::ZlibDecoder::new(data)
                .take(len as u64)
                .read_to_end(&mut out);
            if out.len() < len {
                r.map_err(|e| bad("zlib", &e))?;
            }
            out
        }
        2 => super::lzo::decompress(data, len, sectorsize).map_err(|e| bad("lzo", &e))?,
        3 => {
            let mut out = Vec::with_capacity(len);
            let mut dec = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| bad("zstd", &e))?
                .single_frame();
            let r = (&mut dec).take(len as u64).read_to_end(&mut out);
            // The kernel writes one frame, padded to a sector with zeros.
            if out.len() < len {
                r.map_err(|e| bad("zstd", &e))?;
            }
            out
        }
        c => {
            return Err(Error::unsupported(format!(
                "btrfs: the extent of {} uses compression {c} (1 zlib, 2 lzo, 3 zstd are known)",
                what()
            )))
        }
    };
    out.resize(len, 0);
    Ok(out)
}
