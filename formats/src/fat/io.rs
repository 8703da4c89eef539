//! [`Shared`]: a block device with a small write-through cache of 4 KiB blocks, shared
//! between `fatfs` (through the [`FatIo`] cursor) and this module's raw entry patches, so
//! both always see the same bytes.

use super::read::io_err;
use crate::block::{check_range, BlockDevice};
use crate::Result;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

/// Cached block size.
const CBLOCK: u64 = 4096;
/// Cache slots (1 MiB).
const SLOTS: usize = 256;

type Slots = Vec<Option<(u64, Vec<u8>)>>;

/// A device with a write-through block cache.
pub struct Shared<D: BlockDevice> {
    pub(crate) dev: D,
    slots: Mutex<Slots>,
}

impl<D: BlockDevice> Shared<D> {
    pub fn new(dev: D) -> Self {
        Shared {
            dev,
            slots: Mutex::new(vec![None; SLOTS]),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves whole blocks (each update is one copy).
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<D: BlockDevice> BlockDevice for Shared<D> {
    fn len(&self) -> u64 {
        self.dev.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64)?;
        if buf.len() as u64 >= CBLOCK {
            // Large reads bypass the cache, but cached blocks may be newer: none are, as
            // the cache is write-through.
            return self.dev.read_at(buf, offset);
        }
        let mut slots = self.slots();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let blk = pos / CBLOCK;
            let slot = (blk % SLOTS as u64) as usize;
            if !matches!(&slots[slot], Some((b, _)) if *b == blk) {
                let start = blk * CBLOCK;
                let len = CBLOCK.min(self.dev.len() - start) as usize;
                let mut data = vec![0u8; len];
                self.dev.read_at(&mut data, start)?;
                slots[slot] = Some((blk, data));
            }
            let data = slots[slot].as_ref().map_or(&[][..], |(_, d)| d.as_slice());
            let off = (pos % CBLOCK) as usize;
            let n = (buf.len() - done).min(data.len().saturating_sub(off));
            if n == 0 {
                break;
            }
            buf[done..done + n].copy_from_slice(&data[off..off + n]);
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64)?;
        self.dev.write_at(buf, offset)?;
        let mut slots = self.slots();
        let end = offset + buf.len() as u64;
        let first = offset / CBLOCK;
        let last = end.div_ceil(CBLOCK);
        for blk in first..last {
            let slot = (blk % SLOTS as u64) as usize;
            if let Some((b, data)) = &mut slots[slot] {
                if *b == blk {
                    let start = blk * CBLOCK;
                    let from = offset.max(start);
                    let to = end.min(start + data.len() as u64);
                    if from < to {
                        data[(from - start) as usize..(to - start) as usize].copy_from_slice(
                            &buf[(from - offset) as usize..(to - offset) as usize],
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.dev.flush()
    }
}

/// A `Read + Write + Seek` cursor over a [`Shared`] device, for `fatfs`.
pub struct FatIo<D: BlockDevice> {
    dev: Arc<Shared<D>>,
    pos: u64,
}

impl<D: BlockDevice> FatIo<D> {
    pub fn new(dev: Arc<Shared<D>>) -> Self {
        FatIo { dev, pos: 0 }
    }
}

impl<D: BlockDevice> Read for FatIo<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.dev.len();
        if self.pos >= len || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(len - self.pos) as usize;
        self.dev.read_at(&mut buf[..n], self.pos).map_err(io_err)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: BlockDevice> Write for FatIo<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = self.dev.len();
        if self.pos >= len && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "write at offset {} beyond the volume's end ({len})",
                    self.pos
                ),
            ));
        }
        let n = (buf.len() as u64).min(len - self.pos) as usize;
        self.dev.write_at(&buf[..n], self.pos).map_err(io_err)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.dev.flush().map_err(io_err)
    }
}

impl<D: BlockDevice> Seek for FatIo<D> {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        self.pos = crate::block::seek_target(self.pos, self.dev.len(), from)?;
        Ok(self.pos)
    }
}
