//! Adding the subroot hook to an initrd.
//!
//! Every segment is copied byte for byte except the one holding the main archive (the
//! last segment with an `init` entry), which is decoded and re-encoded — with its own
//! compression or the requested one — with the hook entries added before its trailer (and,
//! for initramfs-tools, the local-bottom ORDER file made to run the script). The bytes
//! between segments are kept; zero padding is inserted only where an offset's alignment
//! would otherwise change. The same input and options always give the same output, and an
//! initrd that already has the same hook is copied unchanged.

use super::hooks::{
    initrd_script, new_order, order_has_subroot, order_with_subroot, validate_shared,
    DEFAULT_SHARED, DRACUT_HOOK_NAME, IT_ORDER_PATH, IT_SCRIPT_PATH, SCRIPT_MODE,
};
use super::scan::{normalise, scan, Scan};
use super::Flavour;
use crate::block::BlockDevice;
use crate::cpio::newc::{S_IFDIR, S_IFREG};
use crate::cpio::{visit_entries, Compression, CompressionSpec, CpioHeader, CpioWriter, Encoder};
use crate::{Error, Result};
use std::io::{self, Write};

/// Options of [`add_subroot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSubrootOptions {
    /// Directories of the physical root bind-mounted into the subroot (baked into the hook).
    pub shared: Vec<String>,
    /// Compression of the rewritten main segment; `None` keeps its current one (at that
    /// compression's default level).
    pub compression: Option<CompressionSpec>,
    /// Modification time of added and changed entries (`SOURCE_DATE_EPOCH`, or 0).
    pub mtime: u64,
}

impl Default for AddSubrootOptions {
    fn default() -> Self {
        AddSubrootOptions {
            shared: DEFAULT_SHARED.iter().map(|s| s.to_string()).collect(),
            compression: None,
            mtime: 0,
        }
    }
}

/// What [`add_subroot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// The hook was added (or replaced one with other content).
    Added { flavour: Flavour },
    /// The same hook was already there; the output is a copy of the input.
    AlreadyPresent { flavour: Flavour },
}

/// True when the initrd in `dev` holds a subroot hook (whatever its content).
pub fn hook_present<D: BlockDevice>(dev: &D) -> Result<bool> {
    Ok(scan(dev)?.hook_present())
}

/// A writer counting what goes through it.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copy `[offset, end)` of `dev` to `out` through a bounded buffer.
fn copy_raw<D: BlockDevice, W: Write>(dev: &D, offset: u64, end: u64, out: &mut W) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = offset;
    while pos < end {
        let n = (end - pos).min(buf.len() as u64) as usize;
        let chunk = &mut buf[..n];
        dev.read_at(chunk, pos)?;
        out.write_all(chunk)
            .map_err(|e| Error::io(format!("writing the initrd at input offset {pos}"), e))?;
        pos += n as u64;
    }
    Ok(())
}

fn zeros<W: Write>(out: &mut W, n: u64) -> Result<()> {
    out.write_all(&[0u8; 4][..n as usize])
        .map_err(|e| Error::io("writing zero padding between segments", e))
}

/// An entry to append to the main archive.
struct NewEntry {
    name: String,
    mode: u32,
    data: Vec<u8>,
}

/// Directories leading to `path` that the initrd lacks (parents first).
fn missing_parents(sc: &Scan, path: &str, planned: &[NewEntry]) -> Vec<String> {
    let mut out = Vec::new();
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if !sc.names.contains_key(&prefix) && !planned.iter().any(|e| e.name == prefix) {
            out.push(prefix.clone());
        }
    }
    out
}

/// Rewrite the initrd in `dev` into `out` with the subroot hook added (see the module
/// documentation). An initrd of [`Flavour::Other`] is [`Error::Unsupported`].
pub fn add_subroot<D: BlockDevice, W: Write>(
    dev: &D,
    out: W,
    opts: &AddSubrootOptions,
) -> Result<AddOutcome> {
    validate_shared(&opts.shared)?;
    let mtime = u32::try_from(opts.mtime).map_err(|_| {
        Error::InvalidArgument(format!(
            "mtime {} does not fit the 32-bit cpio time field",
            opts.mtime
        ))
    })?;
    let sc = scan(dev)?;
    let flavour = sc.flavour();
    if flavour == Flavour::Other {
        return Err(Error::unsupported(format!(
            "cannot add the subroot hook: the initrd is neither initramfs-tools nor dracut ({})",
            sc.describe()
        )));
    }
    let main = sc.main_segment()?;
    let script = initrd_script(flavour, &opts.shared)?;
    let hook_path = match flavour {
        Flavour::Dracut => format!("{}/pre-pivot/{DRACUT_HOOK_NAME}", sc.dracut_hook_dir()?),
        _ => IT_SCRIPT_PATH.to_string(),
    };
    let is_it = flavour == Flavour::InitramfsTools;
    let order = sc.names.get(IT_ORDER_PATH);
    let mut out = Counting {
        inner: out,
        count: 0,
    };

    let hook_same = sc
        .names
        .get(&hook_path)
        .is_some_and(|f| f.mode == SCRIPT_MODE && f.content.as_deref() == Some(&script[..]));
    let order_same = !is_it
        || order
            .and_then(|f| f.content.as_deref())
            .is_some_and(order_has_subroot);
    if hook_same && order_same {
        copy_raw(dev, 0, dev.len(), &mut out)?;
        out.flush()
            .map_err(|e| Error::io("flushing the initrd", e))?;
        return Ok(AddOutcome::AlreadyPresent { flavour });
    }

    // What the ORDER file becomes, and whether the main archive already holds one to rewrite.
    let new_order_content = if is_it {
        Some(match order.and_then(|f| f.content.as_deref()) {
            Some(c) => order_with_subroot(c).unwrap_or_else(|| c.to_vec()),
            None => {
                let scripts: Vec<String> = sc.local_bottom_scripts.iter().cloned().collect();
                new_order(&scripts)
            }
        })
    } else {
        None
    };
    let rewrite_order_in_place =
        order.is_some_and(|f| f.segment == main && f.mode & 0o170000 == S_IFREG);

    let mut added: Vec<NewEntry> = Vec::new();
    if let Some(content) = &new_order_content {
        if !rewrite_order_in_place {
            for d in missing_parents(&sc, IT_ORDER_PATH, &added) {
                added.push(NewEntry {
                    name: d,
                    mode: S_IFDIR | 0o755,
                    data: Vec::new(),
                });
            }
            added.push(NewEntry {
                name: IT_ORDER_PATH.to_string(),
                mode: S_IFREG | 0o644,
                data: content.clone(),
            });
        }
    }
    for d in missing_parents(&sc, &hook_path, &added) {
        added.push(NewEntry {
            name: d,
            mode: S_IFDIR | 0o755,
            data: Vec::new(),
        });
    }
    added.push(NewEntry {
        name: hook_path.clone(),
        mode: SCRIPT_MODE,
        data: script,
    });

    let seg = sc
        .segments
        .get(main)
        .ok_or_else(|| Error::corrupt(format!("main segment {main} vanished between passes")))?;
    let facts = sc.facts.get(main).cloned().unwrap_or_default();
    let (compression, level) = match opts.compression {
        Some(spec) => (spec.compression, spec.level),
        None => (seg.compression, None),
    };
    let old_end = seg.offset + seg.length;

    copy_raw(dev, 0, seg.offset, &mut out)?;
    if compression == Compression::None && out.count % 4 != 0 {
        // A plain archive must start 4-byte aligned; the kernel skips zeros before it.
        let pad = 4 - out.count % 4;
        zeros(&mut out, pad)?;
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
            if name == Some(hook_path.as_str()) {
                // Replaced by the new hook appended at the end.
            } else if name == Some(IT_ORDER_PATH) && h.file_type() == S_IFREG && is_it {
                let content = new_order_content.as_deref().unwrap_or_default();
                let mut nh = h.clone();
                nh.mtime = mtime;
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
            h.mtime = mtime;
            h.ino = fresh_ino();
            if e.mode & 0o170000 == S_IFDIR {
                h.nlink = 2;
            }
            w.write_entry(&h, &e.data)?;
        }
        w.finish()?.finish()?;
    }

    if old_end < dev.len() && compression != Compression::Lz4Legacy {
        // Keep the alignment of whatever follows (a plain archive must stay 4-aligned).
        let want = old_end % 4;
        let pad = (want + 4 - out.count % 4) % 4;
        zeros(&mut out, pad)?;
    }
    copy_raw(dev, old_end, dev.len(), &mut out)?;
    out.flush()
        .map_err(|e| Error::io("flushing the initrd", e))?;
    Ok(AddOutcome::Added { flavour })
}
