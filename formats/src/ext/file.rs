//! [`FileReader`]: the contents of an inode through `std::io::Read` or positioned reads,
//! plus its data/zero map so copies stay sparse.
//!
//! Contiguous physical blocks are read with one device request (up to 1 MiB); holes and
//! unwritten extents are zero-filled without touching the device. A forced read (salvage)
//! gives a block whose mapping cannot be read (a damaged extent tree) as a hole, with one
//! warning naming the file.

use super::blockmap::RunKind;
use super::fs::ExtFs;
use super::inode::Inode;
use crate::block::{push_extent, BlockDevice, Extent, ExtentKind};
use crate::{Error, Result};
use std::io;

/// A run of a file: byte offset, length, and whether it holds data or reads as zeros.
pub type FileExtent = Extent;

/// Largest single device read.
const MAX_READ: u64 = 1 << 20;

/// Reads the contents of one inode.
pub struct FileReader<'a, D: BlockDevice> {
    fs: &'a ExtFs<D>,
    inode: Inode,
    /// Contents held in memory: inline data or a fast symlink target.
    inline: Option<Vec<u8>>,
    pos: u64,
    /// How warnings name the file (`/PATH (inode N)`, or `inode N`).
    label: String,
    /// A salvaged block has been warned about (once per reader).
    warned: std::cell::Cell<bool>,
}

impl<'a, D: BlockDevice> FileReader<'a, D> {
    pub(crate) fn new(fs: &'a ExtFs<D>, inode: Inode) -> Result<Self> {
        let inline = if inode.has_inline_data() {
            Some(fs.inline_data(&inode)?)
        } else if fs.is_fast_symlink(&inode) {
            Some(inode.i_block().to_vec())
        } else {
            None
        };
        let label = format!("inode {}", inode.ino);
        Ok(FileReader {
            fs,
            inode,
            inline,
            pos: 0,
            label,
            warned: std::cell::Cell::new(false),
        })
    }

    /// Name the file `path` (relative to the root) in warnings.
    pub fn named(mut self, path: &[u8]) -> Self {
        self.label = format!(
            "/{} (inode {})",
            crate::manifest::escape(path),
            self.inode.ino
        );
        self
    }

    /// The run at `lblk`; in a forced read, a block whose mapping cannot be read (a
    /// damaged extent tree) is one block of hole, and the file is named in a warning.
    fn run_at(&self, lblk: u64) -> Result<super::blockmap::Run> {
        match self.fs.map(&self.inode, lblk) {
            Err(Error::Corrupt(why)) if self.fs.salvaging() => {
                if !self.warned.replace(true) {
                    let own = format!("inode {}: ", self.inode.ino);
                    let why = why.strip_prefix(&own).unwrap_or(&why);
                    self.fs.warn(format!(
                        "{}: {why}; read with --force: the blocks it cannot map read as zeros",
                        self.label
                    ));
                }
                Ok(super::blockmap::Run {
                    lblk,
                    len: 1,
                    kind: RunKind::Hole,
                })
            }
            r => r,
        }
    }

    /// The inode being read.
    pub fn inode(&self) -> &Inode {
        &self.inode
    }

    /// Size of the contents in bytes.
    pub fn size(&self) -> u64 {
        self.inode.size
    }

    /// Fill `buf` from byte `offset`; returns the bytes read (short only at end of file).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let size = self.inode.size;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(size - offset) as usize;
        let buf = &mut buf[..want];
        if let Some(data) = &self.inline {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = data.get(offset as usize + i).copied().unwrap_or(0);
            }
            return Ok(want);
        }
        let bs = u64::from(self.fs.superblock().block_size);
        let mut done = 0usize;
        while done < want {
            let pos = offset + done as u64;
            let lblk = pos / bs;
            let in_block = pos % bs;
            let run = self.run_at(lblk)?;
            if run.len == 0 {
                return Err(Error::corrupt(format!(
                    "inode {}: empty mapping at block {lblk}",
                    self.inode.ino
                )));
            }
            let run_bytes = run
                .len
                .saturating_mul(bs)
                .saturating_sub(in_block)
                .min(MAX_READ);
            let n = run_bytes.min((want - done) as u64) as usize;
            let dst = &mut buf[done..done + n];
            match run.kind {
                RunKind::Data(phys) => {
                    let byte = phys * bs + in_block;
                    self.fs.device().read_at(dst, byte).map_err(|e| {
                        Error::corrupt(format!(
                            "inode {}: reading {n} bytes of block {phys}: {e}",
                            self.inode.ino
                        ))
                    })?;
                }
                RunKind::Zero | RunKind::Hole => dst.fill(0),
            }
            done += n;
        }
        Ok(want)
    }

    /// The data/zero map of the whole file (holes and unwritten extents are zero), merged
    /// and clipped to the file size.
    pub fn extents(&self) -> Result<Vec<FileExtent>> {
        let size = self.inode.size;
        let mut out = Vec::new();
        if self.inline.is_some() {
            push_extent(
                &mut out,
                Extent {
                    offset: 0,
                    len: size,
                    kind: ExtentKind::Data,
                },
            );
            return Ok(out);
        }
        let bs = u64::from(self.fs.superblock().block_size);
        let nblocks = size.div_ceil(bs);
        let mut lblk = 0u64;
        while lblk < nblocks {
            let run = self.run_at(lblk)?;
            let n = run.len.clamp(1, nblocks - lblk);
            let start = lblk * bs;
            let end = ((lblk + n) * bs).min(size);
            let kind = match run.kind {
                RunKind::Data(_) => ExtentKind::Data,
                _ => ExtentKind::Zero,
            };
            push_extent(
                &mut out,
                Extent {
                    offset: start,
                    len: end - start,
                    kind,
                },
            );
            lblk += n;
        }
        Ok(out)
    }
}

impl<D: BlockDevice> io::Read for FileReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .read_at(buf, self.pos)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: BlockDevice> io::Seek for FileReader<'_, D> {
    fn seek(&mut self, from: io::SeekFrom) -> io::Result<u64> {
        let base = match from {
            io::SeekFrom::Start(o) => Some(o),
            io::SeekFrom::End(d) => self.inode.size.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match base {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )),
        }
    }
}
