//! The LZ4 "legacy" framing (`lz4 -l`), the only LZ4 format the kernel unpacks.
//!
//! Layout: the magic `0x184C2102` (little-endian), then blocks of `[u32 LE compressed
//! size][raw LZ4 block]`, each decompressing to at most 8 MiB. There is no end marker and no
//! checksum. As in the kernel's `lib/decompress_unlz4.c`, a size field equal to the magic
//! starts a new concatenated stream and a size larger than the LZ4 bound of 8 MiB is an
//! error; the stream ends at the end of input. A zero size field also ends it here (trailing
//! zero padding), and is left unconsumed.

use super::peek::PeekReader;
use std::io::{self, BufRead, Read, Write};

/// The legacy frame magic, as stored (little-endian 0x184C2102).
pub const MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// Uncompressed size of every block but the last.
pub const BLOCK_SIZE: usize = 8 << 20;

/// Largest valid compressed block (the LZ4 compress bound of [`BLOCK_SIZE`]).
pub fn max_compressed_block() -> usize {
    lz4_flex::block::get_maximum_output_size(BLOCK_SIZE)
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A decoder of one legacy LZ4 stream read from a [`PeekReader`].
#[derive(Debug)]
pub struct Lz4LegacyDecoder<R> {
    inner: PeekReader<R>,
    input: Vec<u8>,
    output: Vec<u8>,
    out_pos: usize,
    started: bool,
    done: bool,
}

impl<R: Read> Lz4LegacyDecoder<R> {
    /// A decoder whose input starts with the magic.
    pub fn new(inner: PeekReader<R>) -> Self {
        Lz4LegacyDecoder {
            inner,
            input: Vec::new(),
            output: Vec::new(),
            out_pos: 0,
            started: false,
            done: false,
        }
    }

    /// The input reader back, positioned after the consumed stream.
    pub fn into_inner(self) -> PeekReader<R> {
        self.inner
    }

    /// The input reader.
    pub fn get_ref(&self) -> &PeekReader<R> {
        &self.inner
    }

    /// Decode the next block into `output`; false at the end of the stream.
    fn next_block(&mut self) -> io::Result<bool> {
        if !self.started {
            let offset = self.inner.consumed();
            let magic = self.inner.peek(4)?;
            if magic != MAGIC {
                return Err(corrupt(format!(
                    "lz4 legacy stream at input offset {offset}: magic {magic:02x?}, expected {MAGIC:02x?}"
                )));
            }
            self.inner.consume(4);
            self.started = true;
        }
        loop {
            let offset = self.inner.consumed();
            let field = self.inner.peek(4)?;
            if field.is_empty() {
                return Ok(false);
            }
            let Ok(field) = <[u8; 4]>::try_from(field) else {
                return Err(corrupt(format!(
                    "lz4 legacy stream truncated: {} bytes of a block size field at input offset {offset}",
                    field.len()
                )));
            };
            if field == MAGIC {
                self.inner.consume(4);
                continue;
            }
            let size = u32::from_le_bytes(field) as usize;
            if size == 0 {
                return Ok(false);
            }
            if size > max_compressed_block() {
                return Err(corrupt(format!(
                    "lz4 legacy block at input offset {offset} claims {size} compressed bytes, \
                     more than the {} an 8 MiB block can take (data after an lz4 stream is not \
                     allowed: lz4 must be the last segment)",
                    max_compressed_block()
                )));
            }
            self.inner.consume(4);
            self.input.resize(size, 0);
            let mut got = 0;
            while got < size {
                let n = self.inner.read(&mut self.input[got..])?;
                if n == 0 {
                    return Err(corrupt(format!(
                        "lz4 legacy block at input offset {offset} truncated: {got} of {size} bytes"
                    )));
                }
                got += n;
            }
            self.output.resize(BLOCK_SIZE, 0);
            let n = lz4_flex::block::decompress_into(&self.input, &mut self.output)
                .map_err(|e| corrupt(format!("lz4 legacy block at input offset {offset}: {e}")))?;
            self.output.truncate(n);
            self.out_pos = 0;
            return Ok(true);
        }
    }
}

impl<R: Read> Read for Lz4LegacyDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.output.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            if !self.next_block()? {
                self.done = true;
                self.output = Vec::new();
                self.input = Vec::new();
                self.out_pos = 0;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.output.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// An encoder writing the legacy framing with `lz4_flex` block compression.
#[derive(Debug)]
pub struct Lz4LegacyEncoder<W: Write> {
    inner: W,
    pending: Vec<u8>,
    scratch: Vec<u8>,
    wrote_magic: bool,
}

impl<W: Write> Lz4LegacyEncoder<W> {
    /// An encoder writing to `inner`.
    pub fn new(inner: W) -> Self {
        Lz4LegacyEncoder {
            inner,
            pending: Vec::new(),
            scratch: Vec::new(),
            wrote_magic: false,
        }
    }

    fn magic(&mut self) -> io::Result<()> {
        if !self.wrote_magic {
            self.inner.write_all(&MAGIC)?;
            self.wrote_magic = true;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        self.magic()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        self.scratch.resize(
            lz4_flex::block::get_maximum_output_size(self.pending.len()),
            0,
        );
        let n = lz4_flex::block::compress_into(&self.pending, &mut self.scratch)
            .map_err(|e| io::Error::other(format!("lz4 block compression: {e}")))?;
        self.inner.write_all(&(n as u32).to_le_bytes())?;
        self.inner.write_all(&self.scratch[..n])?;
        self.pending.clear();
        Ok(())
    }

    /// Write the last block and return the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_block()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Lz4LegacyEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.len() == BLOCK_SIZE {
            self.flush_block()?;
        }
        let n = buf.len().min(BLOCK_SIZE - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
