//! The append engine: the initrd's bytes unchanged, then one small segment holding the
//! hook (the script, the extended ORDER file for initramfs-tools, the directories they
//! need). The kernel unpacks the segments in order and a later entry replaces an earlier
//! one of the same path, so the appended copies win. The cost is a copy of the input and a
//! few kilobytes of output, whatever the initrd's size or codec.
//!
//! A segment appended earlier ([`Scan::appended_hook`]) is cut off first: the new one takes
//! its place, and the result is byte for byte what appending to the original gives.

use super::add::{copy_raw, pad4, Counting, Hook};
use super::scan::Scan;
use crate::block::BlockDevice;
use crate::cpio::newc::S_IFDIR;
use crate::cpio::{Compression, CpioHeader, SegmentWriter};
use crate::{Error, Result};
use std::io::Write;

/// Write `dev` with `hook` appended as a `codec` segment to `out`; `main` is the main
/// segment (its entry format is used). Returns whether a segment appended earlier was
/// replaced and the bytes appended.
pub(super) fn append<D: BlockDevice, W: Write>(
    dev: &D,
    out: W,
    sc: &Scan,
    hook: &Hook,
    codec: Compression,
    main: usize,
) -> Result<(bool, u64)> {
    let ours = sc.appended_hook();
    let base_segments = ours.unwrap_or(sc.segments.len());
    let base_end = match ours.and_then(|i| sc.segments.get(i)) {
        Some(s) => s.offset,
        None => dev.len(),
    };
    let format = sc.facts.get(main).cloned().unwrap_or_default().format();
    let mut out = Counting {
        inner: out,
        count: 0,
    };
    copy_raw(dev, 0, base_end, &mut out)?;
    if codec == Compression::None {
        // A plain archive must start 4-byte aligned; the kernel skips the zeros before it.
        pad4(&mut out)?;
    }
    let mut ino = sc.max_ino_before(base_segments);
    let mut w = SegmentWriter::new(&mut out, codec, None, format)?;
    for e in hook.entries(sc.base(), false) {
        let mut h = CpioHeader::new(e.name.as_bytes(), e.mode, 0);
        h.mtime = hook.mtime;
        ino = ino.wrapping_add(1);
        h.ino = ino;
        if e.mode & 0o170000 == S_IFDIR {
            h.nlink = 2;
        }
        w.add_bytes(&h, &e.data)?;
    }
    w.finish()?;
    out.flush()
        .map_err(|e| Error::io("flushing the initrd", e))?;
    Ok((ours.is_some(), out.count - base_end))
}
