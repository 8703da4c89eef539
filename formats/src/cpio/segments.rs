//! Walking an initrd: a concatenation of cpio "segments", each either a plain newc archive
//! or a compressed stream holding one or more archives, with zero padding between them.
//!
//! This follows the kernel's `unpack_to_rootfs`: zero bytes between segments are skipped,
//! a plain archive must start at a 4-byte-aligned offset and ends after its `TRAILER!!!`,
//! a compressed stream is recognised by its magic and decompressed up to its exact end
//! (the next segment may follow directly), and the decompressed data is a sequence of
//! archives separated by zero padding. Everything is streamed through the device: memory
//! stays bounded whatever the initrd size.
//!
//! A [`walk_entries`] callback may ask to skip the rest of a segment ([`Flow::SkipSegment`]);
//! where the segment's end can be found without decoding ([`can_skip`]: zstd from its
//! block headers, gzip by looking for the segments behind it from the end of the file)
//! the walk goes straight to the next segment. Such a walk looks for that end on a second
//! thread while it decodes the segment's first entries, so the two costs overlap (the
//! gzip probe is about a tenth of adding the hook to a dracut initrd); [`visit_entries`],
//! which never skips, does not.

use super::compress::{detect, Compression, Decoder, Members};
use super::newc::{CpioHeader, CpioReader};
use super::peek::PeekReader;
use super::xz::XzCheck;
use super::{tailprobe, zstdframe};
use crate::block::{BlockDevice, DeviceIo};
use crate::{Error, Result};
use std::io::{Read, Seek, SeekFrom};

/// One segment of an initrd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Offset of its first byte in the initrd.
    pub offset: u64,
    /// Bytes it occupies in the initrd (compressed size; for a plain archive, up to the end
    /// of the trailer's padding, not including the zero padding that may follow).
    pub length: u64,
    pub compression: Compression,
    /// cpio archives (trailers) in it.
    pub archives: u32,
    /// Entries, trailers not counted.
    pub entries: u64,
    /// Decompressed bytes (equal to `length` for a plain archive).
    pub uncompressed_size: u64,
    /// For xz, the stream's integrity check (the kernel verifies only none and CRC32).
    pub xz_check: Option<XzCheck>,
    /// False when the walk skipped the rest of the segment ([`Flow::SkipSegment`]):
    /// `archives`, `entries` and `uncompressed_size` then count only the decoded part,
    /// and for gzip `length` counts the zero padding behind it.
    pub complete: bool,
}

/// What a [`walk_entries`] callback wants after an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next entry.
    Continue,
    /// Nothing more of this segment is needed: go to the next segment without decoding the
    /// rest, where [`can_skip`] allows it (elsewhere the same as [`Flow::Continue`]).
    SkipSegment,
}

/// True when a walk can skip the rest of a segment compressed with `c` without decoding
/// it: zstd, whose frame end is found from the block headers ([`zstdframe`]), and gzip,
/// whose following segments are found from the end of the file ([`tailprobe`]). The end
/// of an xz, lzma, bzip2 or lz4 stream is only known by decoding it, and a plain
/// archive's by walking its headers.
pub fn can_skip(c: Compression) -> bool {
    matches!(c, Compression::Zstd | Compression::Gzip)
}

/// Where an entry given to a [`visit_entries`] callback comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryContext {
    /// Index of the segment in the initrd.
    pub segment: usize,
    /// Offset of the segment in the initrd.
    pub segment_offset: u64,
    pub compression: Compression,
    /// Index of the archive within the segment's decompressed data.
    pub archive: u32,
    /// Offset of the entry's header within the segment's decompressed data.
    pub header_offset: u64,
}

/// The segments of the initrd held in `dev`.
pub fn list_segments<D: BlockDevice>(dev: &D) -> Result<Vec<Segment>> {
    visit_entries(dev, |_, _, _| Ok(()))
}

/// Call `f` for every entry of every segment, in order, with a reader of the entry's data
/// (which `f` may read fully, partly or not at all), and return the segments.
pub fn visit_entries<D, F>(dev: &D, mut f: F) -> Result<Vec<Segment>>
where
    D: BlockDevice,
    F: FnMut(&EntryContext, &CpioHeader, &mut dyn Read) -> Result<()>,
{
    walk(dev, false, |c, h, d| f(c, h, d).map(|()| Flow::Continue))
}

/// [`visit_entries`] whose callback may skip the rest of a segment (see [`Flow`]).
pub fn walk_entries<D, F>(dev: &D, f: F) -> Result<Vec<Segment>>
where
    D: BlockDevice,
    F: FnMut(&EntryContext, &CpioHeader, &mut dyn Read) -> Result<Flow>,
{
    walk(dev, true, f)
}

/// The walk; `may_skip` says whether `f` may return [`Flow::SkipSegment`], and so whether
/// the end of a skippable segment is worth looking for ahead of the decoding.
fn walk<D, F>(dev: &D, may_skip: bool, mut f: F) -> Result<Vec<Segment>>
where
    D: BlockDevice,
    F: FnMut(&EntryContext, &CpioHeader, &mut dyn Read) -> Result<Flow>,
{
    let mut input = PeekReader::new(DeviceIo::new(dev));
    let mut segments = Vec::new();
    loop {
        input.skip_zeros().map_err(|e| {
            Error::io(
                format!("reading the initrd at offset {}", input.consumed()),
                e,
            )
        })?;
        let offset = input.consumed();
        let head = input
            .peek(6)
            .map_err(|e| Error::io(format!("reading the initrd at offset {offset}"), e))?;
        if head.is_empty() {
            break;
        }
        let index = segments.len();
        if let Some(prev) = segments
            .last()
            .filter(|p: &&Segment| p.compression == Compression::Lz4Legacy)
        {
            return Err(Error::corrupt(format!(
                "initrd offset {offset}: data after the lz4 legacy segment at offset {} \
                 (lz4 legacy has no end marker, so it must be the last segment)",
                prev.offset
            )));
        }
        let compression = if head.starts_with(b"07070") {
            Compression::None
        } else {
            match detect(head) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    return Err(Error::corrupt(format!(
                        "initrd offset {offset}: found bytes {head:02x?}, expected a cpio archive \
                         (\"070701\") or a gzip, zstd, xz, lzma, lz4 or bzip2 stream"
                    )))
                }
                Err(e) => return Err(in_segment(e, index, offset, None)),
            }
        };
        let ctx = EntryContext {
            segment: index,
            segment_offset: offset,
            compression,
            archive: 0,
            header_offset: 0,
        };
        let (segment, rest) = if compression == Compression::None {
            plain_segment(input, ctx, &mut f)
        } else {
            compressed_segment(dev, input, ctx, may_skip, &mut f)
        }
        .map_err(|e| in_segment(e, index, offset, Some(compression)))?;
        segments.push(segment);
        input = rest;
    }
    Ok(segments)
}

type Input<'a, D> = PeekReader<DeviceIo<&'a D>>;

/// Walk one archive from `r` (positioned at a header at stream offset `pos`); returns its
/// entry count, the stream offset after its trailer, and whether `f` asked to skip the
/// rest of the segment (honoured, by returning at once, only when `skip` is set).
/// `after` runs after each entry (to pass over the data `f` left unread).
fn walk_archive<R: Read, F>(
    r: R,
    pos: u64,
    ctx: &mut EntryContext,
    skip: bool,
    f: &mut F,
    mut after: impl FnMut(&mut CpioReader<R>) -> Result<()>,
) -> Result<(u64, u64, bool)>
where
    F: FnMut(&EntryContext, &CpioHeader, &mut dyn Read) -> Result<Flow>,
{
    let mut cr = CpioReader::with_position(r, pos);
    let mut entries = 0u64;
    while let Some(h) = cr.next_entry()? {
        ctx.header_offset = cr.entry_offset();
        let flow = f(ctx, &h, &mut cr.data())?;
        after(&mut cr)?;
        entries += 1;
        if skip && flow == Flow::SkipSegment {
            return Ok((entries, cr.position(), true));
        }
    }
    Ok((entries, cr.position(), false))
}

fn plain_segment<'a, D: BlockDevice, F>(
    mut input: Input<'a, D>,
    mut ctx: EntryContext,
    f: &mut F,
) -> Result<(Segment, Input<'a, D>)>
where
    F: FnMut(&EntryContext, &CpioHeader, &mut dyn Read) -> Result<Flow>,
{
    let offset = ctx.segment_offset;
    if offset % 4 != 0 {
        return Err(Error::corrupt(format!(
            "uncompressed cpio archive at offset {offset} is not 4-byte aligned (the kernel rejects it)"
        )));
    }
    // Entry offsets are relative to the segment; alignment is the same since offset % 4 == 0.
    // Data left unread is sought over, not read: an early segment's microcode is MiBs.
    let (entries, end, _) = walk_archive(&mut input, 0, &mut ctx, false, f, |cr| {
        cr.skip_data_with(|r, n| r.skip(n))
    })?;
    Ok((
        Segment {
            offset,
            length: end,
            compression: Compression::None,
            archives: 1,
            entries,
            uncompressed_size: end,
            xz_check: None,
            complete: true,
        },
        input,
    ))
}

/// Where the segment compressed with `c` starting at `start` ends, found without decoding
/// it (only for [`can_skip`] codecs).
fn skipped_segment_end<D: BlockDevice>(dev: &D, c: Compression, start: u64) -> Result<u64> {
    match c {
        Compression::Gzip => tailprobe::gzip_member_end(dev, start),
        _ => zstdframe::segment_end(dev, start),
    }
}

/// Walk a compressed segment; when `may_skip` and the codec allows skipping, its end is
/// looked for on a second thread meanwhile (on one thread if none can be started).
fn compressed_segment<'a, D: BlockDevice, F>(
    dev: &'a D,
    input: Input<'a, D>,
    ctx: EntryContext,
    may_skip: bool,
    f: &mut F,
) -> Result<(Segment, Input<'a, D>)>
where
    F: FnMut(&EntryContext, &CpioHeader, &mut dyn Read) -> Result<Flow>,
{
    let (c, start) = (ctx.compression, input.consumed());
    let here = || skipped_segment_end(dev, c, start);
    if !(may_skip && can_skip(c)) {
        return decode_segment(dev, input, ctx, f, here);
    }
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("segment-end".into())
            .spawn_scoped(s, here)
        {
            Ok(ahead) => decode_segment(dev, input, ctx, f, || {
                ahead
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }),
            Err(_) => decode_segment(dev, input, ctx, f, here),
        }
    })
}

/// Decode a compressed segment's archives from `input`; `end` gives the segment's end
/// when `f` asks to skip the rest.
fn decode_segment<'a, D: BlockDevice, F>(
    dev: &'a D,
    input: Input<'a, D>,
    mut ctx: EntryContext,
    f: &mut F,
    end: impl FnOnce() -> Result<u64>,
) -> Result<(Segment, Input<'a, D>)>
where
    F: FnMut(&EntryContext, &CpioHeader, &mut dyn Read) -> Result<Flow>,
{
    let offset = ctx.segment_offset;
    let skip = can_skip(ctx.compression);
    let start = input.consumed();
    let dec = Decoder::new(ctx.compression, input, Members::First)?;
    let xz_check = dec.xz_check();
    let mut data = PeekReader::new(dec);
    let mut archives = 0u32;
    let mut entries = 0u64;
    loop {
        let read_err =
            |e: std::io::Error, at: u64| Error::corrupt(format!("decompressed offset {at}: {e}"));
        data.skip_zeros()
            .map_err(|e| read_err(e, data.consumed()))?;
        let pos = data.consumed();
        let head = data.peek(6).map_err(|e| read_err(e, pos))?;
        if head.is_empty() {
            break;
        }
        if !head.starts_with(b"07070") {
            return Err(Error::corrupt(format!(
                "junk in the decompressed data at offset {pos}: found {head:02x?}, expected a cpio header"
            )));
        }
        if pos % 4 != 0 {
            return Err(Error::corrupt(format!(
                "cpio archive at decompressed offset {pos} is not 4-byte aligned (broken padding)"
            )));
        }
        ctx.archive = archives;
        let (n, _, skipped) = walk_archive(&mut data, pos, &mut ctx, skip, f, |_| Ok(()))?;
        entries += n;
        archives += 1;
        if skipped {
            // The rest is not decoded: the next segment starts where the stream ends.
            let end = end()?;
            let mut io = DeviceIo::new(dev);
            io.seek(SeekFrom::Start(end))
                .map_err(|e| Error::io(format!("seeking to offset {end}"), e))?;
            let segment = Segment {
                offset,
                length: end - start,
                compression: ctx.compression,
                archives,
                entries,
                uncompressed_size: data.consumed(),
                xz_check,
                complete: false,
            };
            return Ok((segment, PeekReader::with_consumed(io, end)));
        }
    }
    let uncompressed_size = data.consumed();
    let input = data
        .into_inner()
        .into_inner()
        .ok_or_else(|| Error::corrupt("the decompressor lost its input reader".to_string()))?;
    Ok((
        Segment {
            offset,
            length: input.consumed() - start,
            compression: ctx.compression,
            archives,
            entries,
            uncompressed_size,
            xz_check,
            complete: true,
        },
        input,
    ))
}

/// Prefix an error with the segment it happened in.
fn in_segment(e: Error, index: usize, offset: u64, c: Option<Compression>) -> Error {
    let what = match c {
        Some(c) => format!("initrd segment {index} ({c}) at offset {offset}"),
        None => format!("initrd segment {index} at offset {offset}"),
    };
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("{what}: {m}")),
        Error::Unsupported(m) => Error::Unsupported(format!("{what}: {m}")),
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{what}: {m}")),
        Error::Io { context, source } => Error::Io {
            context: format!("{what}: {context}"),
            source,
        },
        other => other,
    }
}
