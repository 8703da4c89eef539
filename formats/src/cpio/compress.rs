//! The compressions an initrd segment may use: detection by magic, streaming decoders that
//! stop exactly at the end of their compressed stream, and reproducible encoders.
//!
//! Decoders read through a [`PeekReader`], so after a stream ends the reader's consumed
//! count is the stream's exact length and the next segment's bytes are still unread.

use super::encparams::{zstd_params, XZ_MAX_DICT};
use super::lz4legacy::{Lz4LegacyDecoder, Lz4LegacyEncoder};
use super::peek::PeekReader;
use super::xz::{LzmaDecoder, LzmaKind, XzCheck};
use crate::{Error, Result};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use zstd::stream::raw::CParameter;

/// A compression of an initrd segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    /// Legacy `.lzma` (lzma_alone).
    Lzma,
    /// LZ4 legacy framing (`lz4 -l`).
    Lz4Legacy,
    Bzip2,
}

impl Compression {
    /// Every compression, in the order of this enum.
    pub const ALL: [Compression; 7] = [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Xz,
        Compression::Lzma,
        Compression::Lz4Legacy,
        Compression::Bzip2,
    ];

    /// The name [`FromStr`] accepts: "none", "gzip", "zstd", "xz", "lzma", "lz4", "bzip2".
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Lz4Legacy => "lz4",
            Compression::Bzip2 => "bzip2",
        }
    }

    /// The valid levels (inclusive) for [`Encoder::new`].
    pub fn level_range(self) -> (u32, u32) {
        match self {
            Compression::None => (0, 0),
            Compression::Gzip => (0, 9),
            Compression::Zstd => (1, 19),
            Compression::Xz | Compression::Lzma => (0, 9),
            Compression::Lz4Legacy => (1, 1),
            Compression::Bzip2 => (1, 9),
        }
    }

    /// The level used when none is given.
    pub fn default_level(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 9,
            Compression::Zstd => 19,
            Compression::Xz | Compression::Lzma => 6,
            Compression::Lz4Legacy => 1,
            Compression::Bzip2 => 9,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" | "cat" | "uncompressed" => Compression::None,
            "gzip" | "gz" => Compression::Gzip,
            "zstd" | "zst" => Compression::Zstd,
            "xz" => Compression::Xz,
            "lzma" => Compression::Lzma,
            "lz4" | "lz4-legacy" | "lz4legacy" => Compression::Lz4Legacy,
            "bzip2" | "bz2" => Compression::Bzip2,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown compression {s:?}, expected none, gzip, zstd, xz, lzma, lz4 or bzip2"
                )))
            }
        })
    }
}

/// A compression with an optional level, parsed from "NAME" or "NAME:LEVEL" ("zstd:19").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionSpec {
    pub compression: Compression,
    pub level: Option<u32>,
}

impl FromStr for CompressionSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => {
                let level = l.parse::<u32>().map_err(|_| {
                    Error::InvalidArgument(format!(
                        "compression level {l:?} in {s:?} is not a number"
                    ))
                })?;
                (n, Some(level))
            }
            None => (s, None),
        };
        let compression: Compression = name.parse()?;
        if let Some(l) = level {
            check_level(compression, l)?;
        }
        Ok(CompressionSpec { compression, level })
    }
}

fn check_level(c: Compression, level: u32) -> Result<()> {
    let (lo, hi) = c.level_range();
    if level < lo || level > hi {
        return Err(Error::InvalidArgument(format!(
            "{} level {level} is out of range {lo}..={hi}",
            c.name()
        )));
    }
    Ok(())
}

/// Recognise a compressed stream (or `Ok(None)`: not a known compression, e.g. plain cpio)
/// from its first bytes (6 are enough). Known-but-unsupported formats (LZO, the LZ4 frame
/// format) are [`Error::Unsupported`].
pub fn detect(head: &[u8]) -> Result<Option<Compression>> {
    let c = match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..] => Compression::Zstd,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Compression::Xz,
        [0x5d, 0, 0, ..] => Compression::Lzma,
        [0x02, 0x21, 0x4c, 0x18, ..] => Compression::Lz4Legacy,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0x89, b'L', b'Z', b'O', ..] => {
            return Err(Error::unsupported(
                "LZO-compressed data (magic 89 4c 5a 4f): LZO is not supported, recompress with another codec",
            ))
        }
        [0x04, 0x22, 0x4d, 0x18, ..] => {
            return Err(Error::unsupported(
                "LZ4 frame format (magic 04 22 4d 18): the kernel only reads the legacy format (lz4 -l)",
            ))
        }
        _ => return Ok(None),
    };
    Ok(Some(c))
}

/// Whether a stream [`detect`] recognises can start with the two bytes `b0 b1` (a cheap
/// filter before it, for scans over many offsets: one table load and one compare, no
/// branch to mispredict on compressed data).
pub fn may_start_stream(b0: u8, b1: u8) -> bool {
    let want = STREAM_SECOND_BYTE[b0 as usize];
    want == u16::from(b1) || (want == LZMA_OR_SKIPPABLE && (b1 == 0 || b1 == 0x2a))
}

/// 0x5d starts both an lzma stream (`5d 00`) and a zstd skippable frame (`5d 2a`).
const LZMA_OR_SKIPPABLE: u16 = 0x200;

/// For each first byte of a stream [`detect`] knows, its second byte; 0x100 (no byte) for
/// the others.
const STREAM_SECOND_BYTE: [u16; 256] = {
    let mut t = [0x100u16; 256];
    t[0x1f] = 0x8b; // gzip
    t[0x28] = 0xb5; // zstd
    let mut b = 0x50; // zstd skippable frames
    while b <= 0x5f {
        t[b] = 0x2a;
        b += 1;
    }
    t[0xfd] = b'7' as u16; // xz
    t[0x5d] = LZMA_OR_SKIPPABLE;
    t[0x02] = 0x21; // lz4 legacy
    t[b'B' as usize] = b'Z' as u16; // bzip2
    t
};

/// How much of a multi-member stream a [`Decoder`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    /// One gzip member / xz stream / bzip2 stream / zstd frame (after any skippable
    /// frames): the unit the kernel decompresses as one initrd segment (its zstd
    /// decompressor stops where the frame is complete). lz4 legacy blocks always run on
    /// while they continue.
    First,
    /// Every concatenated member until the end of input (what `gzip -dc` does).
    All,
}

/// zstd frames (and skippable frames) decoded one after the other while they follow, or
/// (`run_on` false) up to the end of the first frame that is not skippable.
struct ZstdFrames<R: Read> {
    dec: Option<zstd::stream::read::Decoder<'static, PeekReader<R>>>,
    rest: Option<PeekReader<R>>,
    run_on: bool,
    /// The frame being decoded is a skippable one.
    skippable: bool,
}

fn is_skippable_magic(b: &[u8]) -> bool {
    matches!(b, [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..])
}

fn is_zstd_magic(b: &[u8]) -> bool {
    matches!(
        b,
        [0x28, 0xb5, 0x2f, 0xfd, ..] | [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..]
    )
}

impl<R: Read> ZstdFrames<R> {
    fn new(mut input: PeekReader<R>, run_on: bool) -> io::Result<Self> {
        let skippable = is_skippable_magic(input.peek(4)?);
        Ok(ZstdFrames {
            dec: Some(zstd::stream::read::Decoder::with_buffer(input)?.single_frame()),
            rest: None,
            run_on,
            skippable,
        })
    }

    fn reader(&self) -> Option<&PeekReader<R>> {
        match &self.dec {
            Some(d) => Some(d.get_ref()),
            None => self.rest.as_ref(),
        }
    }

    fn into_inner(self) -> Option<PeekReader<R>> {
        match self.dec {
            Some(d) => Some(d.finish()),
            None => self.rest,
        }
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(mut d) = self.dec.take() {
                let n = d.read(buf)?;
                if n > 0 || buf.is_empty() {
                    self.dec = Some(d);
                    return Ok(n);
                }
                self.rest = Some(d.finish());
                if !self.run_on && !self.skippable {
                    return Ok(0);
                }
            }
            let Some(mut r) = self.rest.take() else {
                return Ok(0);
            };
            if (self.run_on || self.skippable) && is_zstd_magic(r.peek(4)?) {
                self.skippable = is_skippable_magic(r.peek(4)?);
                self.dec = Some(zstd::stream::read::Decoder::with_buffer(r)?.single_frame());
            } else {
                self.rest = Some(r);
                return Ok(0);
            }
        }
    }
}

enum Kind<R: Read> {
    None(PeekReader<R>),
    Gzip(flate2::bufread::GzDecoder<PeekReader<R>>),
    GzipAll(flate2::bufread::MultiGzDecoder<PeekReader<R>>),
    Zstd(ZstdFrames<R>),
    Lzma(LzmaDecoder<R>),
    Lz4(Lz4LegacyDecoder<R>),
    Bzip2(bzip2::bufread::BzDecoder<PeekReader<R>>),
    Bzip2All(bzip2::bufread::MultiBzDecoder<PeekReader<R>>),
}

/// A streaming decoder of one compressed stream, as a `Read` of the decompressed bytes.
/// Decoding errors come out of `read` as `InvalidData` I/O errors naming the codec.
pub struct Decoder<R: Read> {
    kind: Kind<R>,
    compression: Compression,
    xz_check: Option<XzCheck>,
}

impl<R: Read> fmt::Debug for Decoder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("compression", &self.compression)
            .field("xz_check", &self.xz_check)
            .finish()
    }
}

impl<R: Read> Decoder<R> {
    /// A decoder of `compression` reading from `input` (positioned at the stream's start).
    pub fn new(
        compression: Compression,
        mut input: PeekReader<R>,
        members: Members,
    ) -> Result<Self> {
        let all = members == Members::All;
        let mut xz_check = None;
        let kind = match compression {
            Compression::None => Kind::None(input),
            Compression::Gzip if all => Kind::GzipAll(flate2::bufread::MultiGzDecoder::new(input)),
            Compression::Gzip => Kind::Gzip(flate2::bufread::GzDecoder::new(input)),
            Compression::Zstd => Kind::Zstd(
                ZstdFrames::new(input, all).map_err(|e| Error::io("initialising zstd", e))?,
            ),
            Compression::Xz => {
                let head = input
                    .peek(12)
                    .map_err(|e| Error::io("reading an xz stream header", e))?;
                xz_check = XzCheck::from_stream_header(head);
                if xz_check.is_none() {
                    return Err(Error::corrupt(format!(
                        "xz stream header expected, found {head:02x?}"
                    )));
                }
                Kind::Lzma(
                    LzmaDecoder::new(input, LzmaKind::Xz { concatenated: all })
                        .map_err(|e| Error::io("initialising xz", e))?,
                )
            }
            Compression::Lzma => Kind::Lzma(
                LzmaDecoder::new(input, LzmaKind::Alone)
                    .map_err(|e| Error::io("initialising lzma", e))?,
            ),
            Compression::Lz4Legacy => Kind::Lz4(Lz4LegacyDecoder::new(input)),
            Compression::Bzip2 if all => Kind::Bzip2All(bzip2::bufread::MultiBzDecoder::new(input)),
            Compression::Bzip2 => Kind::Bzip2(bzip2::bufread::BzDecoder::new(input)),
        };
        Ok(Decoder {
            kind,
            compression,
            xz_check,
        })
    }

    /// Detect the compression from the first bytes of `input` and decode it
    /// ([`Compression::None`] when they are not a known compressed format).
    pub fn detect(mut input: PeekReader<R>, members: Members) -> Result<Self> {
        let head = input
            .peek(6)
            .map_err(|e| Error::io("reading the first bytes of a stream", e))?;
        let c = detect(head)?.unwrap_or(Compression::None);
        Self::new(c, input, members)
    }

    /// The compression being decoded.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// For xz, the stream's integrity check (the kernel verifies only none/CRC32).
    pub fn xz_check(&self) -> Option<XzCheck> {
        self.xz_check
    }

    /// Compressed bytes consumed so far; once `read` has returned 0 this is the stream's
    /// exact length.
    pub fn consumed(&self) -> u64 {
        match &self.kind {
            Kind::None(r) => r.consumed(),
            Kind::Gzip(d) => d.get_ref().consumed(),
            Kind::GzipAll(d) => d.get_ref().consumed(),
            Kind::Zstd(d) => d.reader().map_or(0, |r| r.consumed()),
            Kind::Lzma(d) => d.get_ref().consumed(),
            Kind::Lz4(d) => d.get_ref().consumed(),
            Kind::Bzip2(d) => d.get_ref().consumed(),
            Kind::Bzip2All(d) => d.get_ref().consumed(),
        }
    }

    /// The input reader back, positioned right after the consumed compressed bytes.
    pub fn into_inner(self) -> Option<PeekReader<R>> {
        Some(match self.kind {
            Kind::None(r) => r,
            Kind::Gzip(d) => d.into_inner(),
            Kind::GzipAll(d) => d.into_inner(),
            Kind::Zstd(d) => return d.into_inner(),
            Kind::Lzma(d) => d.into_inner(),
            Kind::Lz4(d) => d.into_inner(),
            Kind::Bzip2(d) => d.into_inner(),
            Kind::Bzip2All(d) => d.into_inner(),
        })
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = match &mut self.kind {
            Kind::None(r) => r.read(buf),
            Kind::Gzip(d) => d.read(buf),
            Kind::GzipAll(d) => d.read(buf),
            Kind::Zstd(d) => d.read(buf),
            Kind::Lzma(d) => d.read(buf),
            Kind::Lz4(d) => d.read(buf),
            Kind::Bzip2(d) => d.read(buf),
            Kind::Bzip2All(d) => d.read(buf),
        };
        r.map_err(|e| match e.kind() {
            io::ErrorKind::Interrupted => e,
            _ if self.compression == Compression::None => e,
            _ => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} data: {e}", self.compression.name()),
            ),
        })
    }
}

enum EncKind<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Xz(liblzma::write::XzEncoder<W>),
    Lz4(Lz4LegacyEncoder<W>),
    Bzip2(bzip2::write::BzEncoder<W>),
}

/// A streaming compressor. Output depends only on the input, compression and level: no
/// timestamps, names or random bytes (gzip header mtime 0, no name; zstd output is the same
/// for any number of worker threads >= 1).
pub struct Encoder<W: Write> {
    kind: EncKind<W>,
    compression: Compression,
}

impl<W: Write> fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("compression", &self.compression)
            .finish()
    }
}

fn zerr(e: io::Error) -> Error {
    Error::io("initialising zstd", e)
}

/// A zstd stream encoder at `level` whose frames carry a content checksum.
fn zstd_encoder<W: Write>(out: W, level: u32) -> Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(out, level as i32).map_err(zerr)?;
    enc.include_checksum(true).map_err(zerr)?;
    Ok(enc)
}

/// The xz / lzma preset `level` with its dictionary capped at [`XZ_MAX_DICT`].
fn lzma_options(
    level: u32,
) -> std::result::Result<liblzma::stream::LzmaOptions, liblzma::stream::Error> {
    let mut opts = liblzma::stream::LzmaOptions::new_preset(level)?;
    // Presets 0-2 use dictionaries of 256 KiB to 2 MiB, 3-4 use 4 MiB, 5-9 8 to 64 MiB.
    if level >= 3 {
        opts.dict_size(XZ_MAX_DICT);
    }
    Ok(opts)
}

impl<W: Write> Encoder<W> {
    /// A compressor writing to `out`, at `level` (or [`Compression::default_level`]).
    /// xz streams use a CRC32 check (the kind the kernel verifies); zstd streams carry a
    /// content checksum. Memory stays within
    /// [`ENCODER_MEMORY_BUDGET`](super::encparams::ENCODER_MEMORY_BUDGET) (see
    /// [`super::encparams`]).
    pub fn new(out: W, compression: Compression, level: Option<u32>) -> Result<Self> {
        Self::with_cpus(out, compression, level, None)
    }

    /// [`Encoder::new`] using at most `cpus` worker threads (`None`: the machine's
    /// parallelism). The output is the same for any value.
    pub fn with_cpus(
        out: W,
        compression: Compression,
        level: Option<u32>,
        cpus: Option<usize>,
    ) -> Result<Self> {
        let level = level.unwrap_or(compression.default_level());
        check_level(compression, level)?;
        let lzma_err =
            |e: liblzma::stream::Error| Error::io("initialising liblzma", io::Error::other(e));
        let kind = match compression {
            Compression::None => EncKind::None(out),
            Compression::Gzip => EncKind::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(3)
                    .write(out, flate2::Compression::new(level)),
            ),
            Compression::Zstd => {
                let p = zstd_params(level, cpus);
                let mut enc = zstd_encoder(out, level)?;
                enc.multithread(p.workers).map_err(zerr)?;
                for param in [
                    CParameter::WindowLog(p.window_log),
                    CParameter::ChainLog(p.chain_log),
                    CParameter::HashLog(p.hash_log),
                    CParameter::JobSize(p.job_size),
                ] {
                    enc.set_parameter(param).map_err(zerr)?;
                }
                EncKind::Zstd(enc)
            }
            Compression::Xz => {
                let opts = lzma_options(level).map_err(lzma_err)?;
                let mut filters = liblzma::stream::Filters::new();
                filters.lzma2(&opts);
                let s = liblzma::stream::Stream::new_stream_encoder(
                    &filters,
                    liblzma::stream::Check::Crc32,
                )
                .map_err(lzma_err)?;
                EncKind::Xz(liblzma::write::XzEncoder::new_stream(out, s))
            }
            Compression::Lzma => {
                let opts = lzma_options(level).map_err(lzma_err)?;
                let s = liblzma::stream::Stream::new_lzma_encoder(&opts).map_err(lzma_err)?;
                EncKind::Xz(liblzma::write::XzEncoder::new_stream(out, s))
            }
            Compression::Lz4Legacy => EncKind::Lz4(Lz4LegacyEncoder::new(out)),
            Compression::Bzip2 => EncKind::Bzip2(bzip2::write::BzEncoder::new(
                out,
                bzip2::Compression::new(level),
            )),
        };
        Ok(Encoder { kind, compression })
    }

    /// [`Encoder::new`] for an input of exactly `size` bytes known in advance (a segment
    /// built in memory). zstd then runs on one thread and sizes its window and tables to
    /// the input: a few KiB need none of the tens of MiB the streaming set-up of
    /// [`Encoder::new`] allocates (its job buffers and input ring), whose page faults
    /// alone would dominate a small append. The output depends only on the input,
    /// compression and level, as for [`Encoder::new`] (but is not the same bytes).
    pub fn for_known_size(
        out: W,
        compression: Compression,
        level: Option<u32>,
        size: u64,
    ) -> Result<Self> {
        if compression != Compression::Zstd {
            return Self::new(out, compression, level);
        }
        let level = level.unwrap_or(compression.default_level());
        check_level(compression, level)?;
        let mut enc = zstd_encoder(out, level)?;
        enc.set_pledged_src_size(Some(size)).map_err(zerr)?;
        Ok(Encoder {
            kind: EncKind::Zstd(enc),
            compression,
        })
    }

    /// The compression being written.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Finish the compressed stream and return the output.
    pub fn finish(self) -> Result<W> {
        let ctx = format!("finishing the {} stream", self.compression.name());
        let r = match self.kind {
            EncKind::None(mut w) => w.flush().map(|()| w),
            EncKind::Gzip(e) => e.finish(),
            EncKind::Zstd(e) => e.finish(),
            EncKind::Xz(e) => e.finish(),
            EncKind::Lz4(e) => e.finish(),
            EncKind::Bzip2(e) => e.finish(),
        };
        r.map_err(|e| Error::io(ctx, e))
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.kind {
            EncKind::None(w) => w.write(buf),
            EncKind::Gzip(e) => e.write(buf),
            EncKind::Zstd(e) => e.write(buf),
            EncKind::Xz(e) => e.write(buf),
            EncKind::Lz4(e) => e.write(buf),
            EncKind::Bzip2(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            EncKind::None(w) => w.flush(),
            EncKind::Gzip(e) => e.flush(),
            EncKind::Zstd(e) => e.flush(),
            EncKind::Xz(e) => e.flush(),
            EncKind::Lz4(e) => e.flush(),
            EncKind::Bzip2(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-byte filter keeps every stream `detect` recognises and rejects only pairs
    /// with which none of them starts.
    #[test]
    fn the_two_byte_filter_keeps_every_known_stream() {
        let magics: [&[u8]; 7] = [
            &[0x1f, 0x8b, 8, 0, 0, 0],
            &[0x28, 0xb5, 0x2f, 0xfd, 0, 0],
            &[0x53, 0x2a, 0x4d, 0x18, 0, 0],
            &[0xfd, b'7', b'z', b'X', b'Z', 0],
            &[0x5d, 0, 0, 0x80, 0, 0],
            &[0x02, 0x21, 0x4c, 0x18, 0, 0],
            b"BZh91A",
        ];
        for m in magics {
            assert!(matches!(detect(m), Ok(Some(_))), "{m:x?}");
            assert!(may_start_stream(m[0], m[1]), "{m:x?}");
        }
        for b0 in 0..=255u8 {
            for b1 in (0..=255u8).filter(|&b1| !may_start_stream(b0, b1)) {
                for m in magics {
                    let mut h = m.to_vec();
                    (h[0], h[1]) = (b0, b1);
                    assert!(!matches!(detect(&h), Ok(Some(_))), "{h:x?}");
                }
            }
        }
    }
}
