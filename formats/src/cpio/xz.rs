//! xz and legacy `.lzma` ("lzma_alone") decoding through liblzma's low-level stream API,
//! which reports exactly how much input it used, so the stream's end is known precisely.
//!
//! Also reads the integrity-check type from an xz stream header: the kernel's xz decoder
//! only verifies CRC32 (and "none"); initrds made with xz's default CRC64 still unpack but
//! get a warning, so callers may want to report it.

use super::peek::PeekReader;
use liblzma::stream::{Action, Status, Stream, CONCATENATED};
use std::io::{self, BufRead, Read};

/// Memory liblzma may use for one stream (xz -9 needs about 65 MiB).
pub const MEMLIMIT: u64 = 256 << 20;

/// The xz stream-header magic.
pub const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];

/// The integrity check of an xz stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XzCheck {
    None,
    Crc32,
    Crc64,
    Sha256,
    /// A reserved check id (liblzma skips such checks unverified).
    Other(u8),
}

impl XzCheck {
    /// The check in a 12-byte xz stream header, if `header` is one.
    pub fn from_stream_header(header: &[u8]) -> Option<XzCheck> {
        if header.len() < 8 || header[..6] != XZ_MAGIC {
            return None;
        }
        Some(match header[7] & 0x0f {
            0x00 => XzCheck::None,
            0x01 => XzCheck::Crc32,
            0x04 => XzCheck::Crc64,
            0x0a => XzCheck::Sha256,
            other => XzCheck::Other(other),
        })
    }

    /// True when the kernel's decompressor can verify it (none or CRC32).
    pub fn kernel_verifies(self) -> bool {
        matches!(self, XzCheck::None | XzCheck::Crc32)
    }

    /// Short name, as `xz --check=` spells it.
    pub fn name(self) -> &'static str {
        match self {
            XzCheck::None => "none",
            XzCheck::Crc32 => "crc32",
            XzCheck::Crc64 => "crc64",
            XzCheck::Sha256 => "sha256",
            XzCheck::Other(_) => "reserved",
        }
    }
}

/// Which liblzma container to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LzmaKind {
    /// One `.xz` stream (or, with `concatenated`, every stream and stream padding to EOF).
    Xz { concatenated: bool },
    /// One legacy `.lzma` stream.
    Alone,
}

/// A decoder of one xz or lzma stream reading from a [`PeekReader`].
pub struct LzmaDecoder<R> {
    inner: PeekReader<R>,
    stream: Stream,
    kind: LzmaKind,
    done: bool,
}

impl<R> std::fmt::Debug for LzmaDecoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LzmaDecoder")
            .field("kind", &self.kind)
            .field("done", &self.done)
            .finish()
    }
}

impl<R: Read> LzmaDecoder<R> {
    /// A decoder for a stream starting at the reader's position.
    pub fn new(inner: PeekReader<R>, kind: LzmaKind) -> io::Result<Self> {
        let stream = match kind {
            LzmaKind::Xz { concatenated } => {
                Stream::new_stream_decoder(MEMLIMIT, if concatenated { CONCATENATED } else { 0 })
            }
            LzmaKind::Alone => Stream::new_lzma_decoder(MEMLIMIT),
        }
        .map_err(|e| io::Error::other(format!("initialising liblzma: {e}")))?;
        Ok(LzmaDecoder {
            inner,
            stream,
            kind,
            done: false,
        })
    }

    /// The input reader back, positioned after the consumed stream.
    pub fn into_inner(self) -> PeekReader<R> {
        self.inner
    }

    /// The input reader.
    pub fn get_ref(&self) -> &PeekReader<R> {
        &self.inner
    }

    fn name(&self) -> &'static str {
        match self.kind {
            LzmaKind::Xz { .. } => "xz",
            LzmaKind::Alone => "lzma",
        }
    }
}

impl<R: Read> Read for LzmaDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.done {
                return Ok(0);
            }
            let offset = self.inner.consumed();
            let input = self.inner.fill_buf()?;
            let eof = input.is_empty();
            let action = if eof { Action::Finish } else { Action::Run };
            let (in0, out0) = (self.stream.total_in(), self.stream.total_out());
            let status = self.stream.process(input, buf, action);
            let used = (self.stream.total_in() - in0) as usize;
            let produced = (self.stream.total_out() - out0) as usize;
            self.inner.consume(used);
            let status = status.map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} stream corrupt near input offset {offset}: {e}",
                        self.name()
                    ),
                )
            })?;
            if status == Status::MemNeeded {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} stream at input offset {offset} needs more than the {} MiB memory limit",
                        self.name(),
                        MEMLIMIT >> 20
                    ),
                ));
            }
            if status == Status::StreamEnd {
                self.done = true;
            } else if eof && produced == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} stream truncated: input ends at offset {offset} before the end of the stream",
                        self.name()
                    ),
                ));
            }
            if produced > 0 || self.done {
                return Ok(produced);
            }
        }
    }
}
