//! The append engine: the initrd's bytes unchanged, then one small segment holding the
//! hook (the script, the extended ORDER file for initramfs-tools, the directories they
//! need). The kernel unpacks the segments in order and a later entry replaces an earlier
//! one of the same path, so the appended copies win. The cost is a copy of the input and a
//! few kilobytes of output, whatever the initrd's size or codec.
//!
//! A segment appended earlier ([`Scan::appended_hook`]) is cut off first: the new one takes
//! its place, and the result is byte for byte what appending to the original gives.

use super::add::{copy_raw, pad4, Counting, Hook, Written};
use super::scan::Scan;
use crate::block::BlockDevice;
use crate::cpio::newc::S_IFDIR;
use crate::cpio::{Compression, CpioHeader, Encoder, SegmentWriter};
use crate::{Error, Result};
use std::io::Write;

/// The compression level of the appended segment: a few KiB compress the same at any
/// level, and the high default levels (zstd 19, xz 6) cost milliseconds of setup (tables
/// and dictionaries of several MiB) that would dominate the whole append.
fn segment_level(codec: Compression) -> u32 {
    match codec {
        Compression::Zstd => 3,
        Compression::Xz | Compression::Lzma => 1,
        Compression::Gzip => 6,
        c => c.default_level(),
    }
}

/// Write `dev` with `hook` appended as a `codec` segment to `out` (or, for
/// [`Written::Tail`], only what follows the input's kept bytes); `main` is the main segment
/// (its entry format is used). Returns whether a segment appended earlier was replaced, the
/// bytes of the input kept, and the bytes appended.
pub(super) fn append<D: BlockDevice, W: Write>(
    dev: &D,
    out: W,
    sc: &Scan,
    hook: &Hook,
    codec: Compression,
    main: usize,
    written: Written,
) -> Result<(bool, u64, u64)> {
    let ours = sc.appended_hook();
    let base_end = match ours.and_then(|i| sc.segments.get(i)) {
        Some(s) => s.offset,
        None => dev.len(),
    };
    let format = sc.facts.get(main).cloned().unwrap_or_default().format();
    let mut out = Counting {
        inner: out,
        count: 0,
    };
    match written {
        Written::Whole => copy_raw(dev, 0, base_end, &mut out)?,
        // The padding below is computed from the output's offset in the whole file.
        Written::Tail => out.count = base_end,
    }
    if codec == Compression::None {
        // A plain archive must start 4-byte aligned; the kernel skips the zeros before it.
        pad4(&mut out)?;
    }
    // Inode numbers from the top of the range down: clear of the small numbers the
    // generators use, and independent of how much of the main segment the scan decoded
    // (its highest number is only known after decoding all of it), so that the output is
    // the same whatever the scan depth. Nothing here is a hard link (files have nlink 1),
    // so no reader pairs these numbers with another archive's.
    let mut ino = 0u32;
    // The archive is built in memory (a few KiB), then compressed knowing its size.
    let mut w = SegmentWriter::new(Vec::new(), Compression::None, None, format)?;
    for e in hook.entries(sc.base(), false) {
        let mut h = CpioHeader::new(e.name.as_bytes(), e.mode, 0);
        h.mtime = hook.mtime;
        ino = ino.wrapping_sub(1);
        h.ino = ino;
        if e.mode & 0o170000 == S_IFDIR {
            h.nlink = 2;
        }
        w.add_bytes(&h, &e.data)?;
    }
    let archive = w.finish()?;
    let mut enc = Encoder::for_known_size(
        &mut out,
        codec,
        Some(segment_level(codec)),
        archive.len() as u64,
    )?;
    enc.write_all(&archive)
        .map_err(|e| Error::io("writing the hook segment", e))?;
    enc.finish()?;
    out.flush()
        .map_err(|e| Error::io("flushing the initrd", e))?;
    Ok((ours.is_some(), base_end, out.count - base_end))
}
