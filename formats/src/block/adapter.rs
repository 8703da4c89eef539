//! `std::io` views of a [`BlockDevice`], for crates that want `Read + Seek (+ Write)`
//! (`mbrman`, `gpt`, `fatfs`).

use super::BlockDevice;
use crate::Error;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// A cursor over a device implementing `Read`, `Write` and `Seek`.
#[derive(Debug)]
pub struct DeviceIo<D> {
    dev: D,
    pos: u64,
}

impl<D: BlockDevice> DeviceIo<D> {
    /// A cursor at offset 0.
    pub fn new(dev: D) -> Self {
        DeviceIo { dev, pos: 0 }
    }

    /// The device back.
    pub fn into_inner(self) -> D {
        self.dev
    }
}

fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io { source, .. } => source,
        Error::OutOfRange { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()),
        other => io::Error::other(other),
    }
}

impl<D: BlockDevice> Read for DeviceIo<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.dev.len();
        if self.pos >= len {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(len - self.pos) as usize;
        self.dev.read_at(&mut buf[..n], self.pos).map_err(to_io)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: BlockDevice> Write for DeviceIo<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = self.dev.len();
        if self.pos >= len && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the device",
            ));
        }
        let n = (buf.len() as u64).min(len - self.pos) as usize;
        self.dev.write_at(&buf[..n], self.pos).map_err(to_io)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.dev.flush().map_err(to_io)
    }
}

impl<D: BlockDevice> Seek for DeviceIo<D> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = seek_target(self.pos, self.dev.len(), pos)?;
        Ok(self.pos)
    }
}

/// Where a `seek(from)` lands for a cursor at `pos` over `len` bytes (past the end is
/// allowed, as for files); an error for a negative or overflowing offset.
pub(crate) fn seek_target(pos: u64, len: u64, from: SeekFrom) -> io::Result<u64> {
    let new = match from {
        SeekFrom::Start(p) => Some(p),
        SeekFrom::End(d) => len.checked_add_signed(d),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
    };
    new.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "seek to a negative or overflowing offset",
        )
    })
}
