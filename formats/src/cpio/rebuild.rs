//! Writing an initrd segment: a cpio archive, optionally compressed, reproducibly.
//!
//! The same entries, compression and level always give the same bytes (no timestamps or
//! random bytes from the compressors). Segments can be concatenated to form an initrd; a
//! plain (uncompressed) segment must start at a 4-byte-aligned offset of the initrd.

use super::compress::{Compression, Encoder};
use super::newc::{CpioHeader, CpioWriter, Format};
use crate::Result;
use std::io::{Read, Write};

/// A segment being written: entries go into a cpio archive that is compressed on the fly.
#[derive(Debug)]
pub struct SegmentWriter<W: Write> {
    cpio: CpioWriter<Encoder<W>>,
}

impl<W: Write> SegmentWriter<W> {
    /// A segment of `format` entries compressed with `compression` at `level` (or the
    /// compression's default level).
    pub fn new(
        out: W,
        compression: Compression,
        level: Option<u32>,
        format: Format,
    ) -> Result<Self> {
        Ok(SegmentWriter {
            cpio: CpioWriter::new(Encoder::new(out, compression, level)?, format),
        })
    }

    /// Add an entry whose data (exactly `header.filesize` bytes) comes from `data`. In the
    /// crc format `header.check` must be the data sum (as read from a crc archive).
    pub fn add(&mut self, header: &CpioHeader, data: &mut dyn Read) -> Result<()> {
        self.cpio.write_header(header)?;
        self.cpio.copy_data(data)
    }

    /// Add an entry whose data is in memory (`filesize` and the crc checksum are set from it).
    pub fn add_bytes(&mut self, header: &CpioHeader, data: &[u8]) -> Result<()> {
        self.cpio.write_entry(header, data)
    }

    /// Uncompressed bytes written so far.
    pub fn uncompressed_size(&self) -> u64 {
        self.cpio.position()
    }

    /// Write the trailer, finish the compressed stream and return the output.
    pub fn finish(self) -> Result<W> {
        self.cpio.finish()?.finish()
    }
}

/// Write one segment holding `entries` (headers with readers of their data) to `out`.
pub fn write_segment<W, I, R>(
    out: W,
    compression: Compression,
    level: Option<u32>,
    format: Format,
    entries: I,
) -> Result<W>
where
    W: Write,
    I: IntoIterator<Item = (CpioHeader, R)>,
    R: Read,
{
    let mut w = SegmentWriter::new(out, compression, level, format)?;
    for (header, mut data) in entries {
        w.add(&header, &mut data)?;
    }
    w.finish()
}
