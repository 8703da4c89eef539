//! The recompress engine: every segment is copied byte for byte except the main archive
//! (the last segment with an `init` entry), which is decoded and re-encoded — with its own
//! compression or the requested one — with the hook entries added before its trailer and,
//! for initramfs-tools, its local-bottom ORDER file rewritten in place. A segment appended
//! earlier by the append engine is dropped (its hook is folded into the main archive). The
//! bytes between segments are kept; zero padding is inserted only where an offset's
//! alignment would otherwise change.

use super::add::{copy_raw, pad4, Counting, Hook};
use super::hooks::IT_ORDER_PATH;
use super::scan::{normalise, Scan};
use super::Flavour;
use crate::block::BlockDevice;
use crate::cpio::newc::{S_IFDIR, S_IFREG};
use crate::cpio::{visit_entries, Compression, CompressionSpec, CpioHeader, CpioWriter, Encoder};
use crate::{Error, Result};
use std::io::Write;

/// Write `dev` with `hook` inside its main segment `main` (re-encoded with `spec`, or its
/// own compression at its default level) to `out`.
pub(super) fn recompress<D: BlockDevice, W: Write>(
    dev: &D,
    out: W,
    sc: &Scan,
    hook: &Hook,
    spec: Option<CompressionSpec>,
    main: usize,
) -> Result<()> {
    let view = sc.base();
    let is_it = hook.flavour == Flavour::InitramfsTools;
    let new_order_content = hook.order(view);
    let rewrite_order_in_place = view
        .names
        .get(IT_ORDER_PATH)
        .is_some_and(|f| f.segment == main && f.mode & 0o170000 == S_IFREG);
    let added = hook.entries(view, rewrite_order_in_place);
    // Drop a segment appended earlier: its hook goes into the main archive.
    let input_end = match sc.appended_hook().and_then(|i| sc.segments.get(i)) {
        Some(s) => s.offset,
        None => dev.len(),
    };

    let seg = sc
        .segments
        .get(main)
        .ok_or_else(|| Error::corrupt(format!("main segment {main} vanished between passes")))?;
    let facts = sc.facts.get(main).cloned().unwrap_or_default();
    let (compression, level) = match spec {
        Some(spec) => (spec.compression, spec.level),
        None => (seg.compression, None),
    };
    let old_end = seg.offset + seg.length;
    let mut out = Counting {
        inner: out,
        count: 0,
    };

    copy_raw(dev, 0, seg.offset, &mut out)?;
    if compression == Compression::None {
        // A plain archive must start 4-byte aligned; the kernel skips zeros before it.
        pad4(&mut out)?;
    }

    let format = facts.format();
    let mut next_ino = facts.max_ino;
    let mut fresh_ino = || {
        next_ino = next_ino.wrapping_add(1);
        next_ino
    };
    {
        let mut writer = Some(CpioWriter::new(
            Encoder::new(&mut out, compression, level)?,
            format,
        ));
        let mut archive = 0u32;
        visit_entries(dev, |ctx, h, data| {
            if ctx.segment != main {
                return Ok(());
            }
            let mut w = writer
                .take()
                .ok_or_else(|| Error::corrupt("cpio writer lost".to_string()))?;
            if ctx.archive != archive {
                // Keep the archives of the segment apart: finish one, start the next.
                w = CpioWriter::new(w.finish()?, format);
                archive = ctx.archive;
            }
            let name = normalise(&h.name);
            if name == Some(hook.path.as_str()) {
                // Replaced by the new hook appended at the end.
            } else if name == Some(IT_ORDER_PATH) && h.file_type() == S_IFREG && is_it {
                let content = new_order_content.as_deref().unwrap_or_default();
                let mut nh = h.clone();
                nh.mtime = hook.mtime;
                nh.nlink = 1;
                nh.ino = fresh_ino();
                w.write_entry(&nh, content)?;
            } else {
                w.write_header(h)?;
                w.copy_data(data)?;
            }
            writer = Some(w);
            Ok(())
        })?;
        let mut w = writer
            .take()
            .ok_or_else(|| Error::corrupt("cpio writer lost".to_string()))?;
        for e in &added {
            let mut h = CpioHeader::new(e.name.as_bytes(), e.mode, 0);
            h.mtime = hook.mtime;
            h.ino = fresh_ino();
            if e.mode & 0o170000 == S_IFDIR {
                h.nlink = 2;
            }
            w.write_entry(&h, &e.data)?;
        }
        w.finish()?.finish()?;
    }

    if old_end < input_end && compression != Compression::Lz4Legacy {
        // Keep the alignment of whatever follows (a plain archive must stay 4-aligned).
        let want = old_end % 4;
        let pad = (want + 4 - out.count % 4) % 4;
        out.write_all(&[0u8; 4][..pad as usize])
            .map_err(|e| Error::io("writing zero padding between segments", e))?;
    }
    copy_raw(dev, old_end, input_end, &mut out)?;
    out.flush()
        .map_err(|e| Error::io("flushing the initrd", e))?;
    Ok(())
}
