//! Copying a [`BlockDevice`] into a new image file, sparsely: the sparse raw writer and the
//! data walk it shares with the qcow2 writer.
//!
//! The walk asks the source for its data/zero map one window (1 GiB) at a time, so the
//! extent list stays small whatever the size, and reads only the ranges reported as data,
//! in chunks of a few MiB aligned to the caller's block size.

use crate::block::{is_zero, BlockDevice, ExtentKind};
use crate::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The part of the source whose extent map is fetched at once.
pub(crate) const WINDOW: u64 = 1 << 30;
/// The largest chunk read from the source at once.
pub(crate) const CHUNK: u64 = 8 << 20;
/// The granularity at which [`write_raw`] leaves zero runs as holes.
const RAW_BLOCK: u64 = 4096;

/// What a conversion wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// The virtual size of the new image (qcow2 rounds it up to a multiple of 512).
    pub virtual_size: u64,
    /// Guest bytes written as data (zero runs left out).
    pub data_bytes: u64,
    /// The length of the output file.
    pub file_size: u64,
}

/// Visit the data of `src` as chunks aligned to `align` (a power of two dividing
/// [`WINDOW`] and [`CHUNK`]), skipping the ranges the device reports as zero.
///
/// `f(offset, bytes)` gets the chunk at `offset`; its length is a multiple of `align`,
/// zero-padded beyond the end of the device. `progress` is called with the number of bytes
/// of the device done, monotonically, ending at `src.len()`.
pub(crate) fn for_each_data_chunk(
    src: &dyn BlockDevice,
    align: u64,
    progress: &(dyn Fn(u64) + Sync),
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    debug_assert!(align.is_power_of_two() && WINDOW % align == 0 && CHUNK % align == 0);
    let len = src.len();
    let mut buf = Vec::new();
    let mut win = 0;
    while win < len {
        let wend = (win + WINDOW).min(len);
        let extents: Vec<_> = src
            .extents(win, wend - win)?
            .into_iter()
            .filter(|e| e.kind == ExtentKind::Data && e.len > 0)
            .collect();
        // Aligned runs that hold some data, merged when they touch.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for e in &extents {
            if e.offset < win || e.end() > wend {
                return Err(Error::corrupt(format!(
                    "the {} device reported extent {}..{} outside the requested range {win}..{wend}",
                    src.format_name(),
                    e.offset,
                    e.end()
                )));
            }
            let a = e.offset / align * align;
            let b = e.end().div_ceil(align) * align;
            match runs.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => runs.push((a, b)),
            }
        }
        let mut first = 0; // first extent that may overlap the current chunk
        for (a, b) in runs {
            let mut pos = a;
            while pos < b {
                let n = CHUNK.min(b - pos);
                let end = pos + n;
                buf.clear();
                buf.resize(n as usize, 0);
                while first < extents.len() && extents[first].end() <= pos {
                    first += 1;
                }
                for e in extents[first..].iter().take_while(|e| e.offset < end) {
                    let s = e.offset.max(pos);
                    let t = e.end().min(end);
                    if s < t {
                        let dst = &mut buf[(s - pos) as usize..(t - pos) as usize];
                        src.read_at(dst, s)?;
                    }
                }
                f(pos, &buf)?;
                progress(end.min(len));
                pos = end;
            }
        }
        progress(wend);
        win = wend;
    }
    progress(len);
    Ok(())
}

/// Write `src` as a sparse raw image into `out` (an empty file opened read+write): set its
/// length, then write only non-zero data. Zero runs (4 KiB granularity), including those
/// inside data extents, are left as holes. Ends with `sync_all`.
///
/// Calls `progress(bytes_of_the_device_done)` now and then, monotonically, ending at
/// `src.len()`.
pub fn write_raw(
    src: &dyn BlockDevice,
    out: &File,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteStats> {
    let len = src.len();
    out.set_len(len)
        .map_err(|e| Error::io(format!("setting the output size to {len} bytes"), e))?;
    let mut data_bytes = 0u64;
    for_each_data_chunk(src, RAW_BLOCK, progress, |pos, buf| {
        let blocks: Vec<bool> = buf
            .chunks(RAW_BLOCK as usize)
            .map(|b| !is_zero(b))
            .collect();
        let mut i = 0;
        while i < blocks.len() {
            if !blocks[i] {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < blocks.len() && blocks[j] {
                j += 1;
            }
            let start = pos + i as u64 * RAW_BLOCK;
            let stop = (pos + j as u64 * RAW_BLOCK).min(len);
            let bytes = &buf[i * RAW_BLOCK as usize..(stop - pos) as usize];
            out.write_all_at(bytes, start).map_err(|e| {
                Error::io(
                    format!(
                        "writing {} bytes at offset {start} of the output",
                        bytes.len()
                    ),
                    e,
                )
            })?;
            data_bytes += bytes.len() as u64;
            i = j;
        }
        Ok(())
    })?;
    out.sync_all()
        .map_err(|e| Error::io("syncing the output", e))?;
    Ok(WriteStats {
        virtual_size: len,
        data_bytes,
        file_size: len,
    })
}
