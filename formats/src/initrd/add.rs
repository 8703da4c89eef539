//! Adding the subroot hook to an initrd: the decision shared by both engines.
//!
//! The hook is the script (and, for initramfs-tools, the local-bottom ORDER file with the
//! script's line added). An initrd whose merged view (later entries replace earlier ones,
//! as when the kernel unpacks) already runs the same script is copied unchanged. One
//! running another script (other shared directories, an older version) is only changed
//! with [`AddSubrootOptions::replace`]. Otherwise one of two engines writes the output:
//!
//! - [`append`](super::append) (the default): the initrd's bytes unchanged, followed by one
//!   small segment holding the hook; a segment appended earlier is replaced, never stacked.
//! - [`recompress`](super::recompress): the main segment decoded and re-encoded with the
//!   hook inside it (a single segment, as before appending existed); also used when the
//!   initrd's codec does not allow appending (see [`append_codec`]).
//!
//! The same input and options always give the same output.

use super::hooks::{
    initrd_script, new_order, order_has_subroot, order_with_subroot, validate_shared,
    DEFAULT_SHARED, DRACUT_HOOK_NAME, IT_ORDER_PATH, IT_SCRIPT_PATH, SCRIPT_MODE,
};
use super::scan::{scan, scan_with, Depth, PathView, Scan};
use super::Flavour;
use crate::block::BlockDevice;
use crate::cpio::newc::{S_IFDIR, S_IFREG};
use crate::cpio::{Compression, CompressionSpec};
use crate::{Error, Result};
use std::io::{self, Write};

/// How the hook gets into the initrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Append one segment holding the hook (falls back to [`Method::Recompress`] for the
    /// codecs [`append_codec`] refuses).
    #[default]
    Append,
    /// Re-encode the main segment with the hook inside, with the given compression (or its
    /// current one, at that compression's default level); a segment appended earlier is
    /// folded in.
    Recompress(Option<CompressionSpec>),
}

/// Options of [`add_subroot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSubrootOptions {
    /// Directories of the physical root bind-mounted into the subroot (baked into the hook).
    pub shared: Vec<String>,
    pub method: Method,
    /// Replace a subroot hook with other content (an older version, other shared
    /// directories); without it such an initrd is refused.
    pub replace: bool,
    /// Modification time of added and changed entries (`SOURCE_DATE_EPOCH`, or 0).
    pub mtime: u64,
    /// How much of the initrd to decode to find what the hook needs: by default the main
    /// segment only up to where its sorted names pass every needed path (see
    /// [`super::scan`]); [`Depth::Full`] decodes everything.
    pub depth: Depth,
}

impl Default for AddSubrootOptions {
    fn default() -> Self {
        AddSubrootOptions {
            shared: DEFAULT_SHARED.iter().map(|s| s.to_string()).collect(),
            method: Method::Append,
            replace: false,
            mtime: 0,
            depth: Depth::SortedPrefix,
        }
    }
}

/// What [`add_subroot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A segment holding the hook was appended; `replaced` when it took the place of the
    /// one appended earlier.
    Appended {
        flavour: Flavour,
        replaced: bool,
        /// Bytes of the input kept in front of it (all of it, or everything before the
        /// segment appended earlier).
        kept: u64,
        /// Bytes of the appended segment (with the zero padding before it).
        bytes: u64,
    },
    /// The main segment was re-encoded with the hook inside.
    Recompressed { flavour: Flavour },
    /// The same hook was already there; the output is a copy of the input.
    AlreadyPresent { flavour: Flavour },
}

impl std::fmt::Display for AddOutcome {
    /// What was done, for people: "appended the subroot hook (dracut) as a segment of
    /// 4096 bytes".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddOutcome::Appended {
                flavour,
                replaced,
                bytes,
                ..
            } => write!(
                f,
                "{} the subroot hook ({flavour}) as a segment of {bytes} bytes",
                if *replaced {
                    "replaced the segment holding"
                } else {
                    "appended"
                }
            ),
            AddOutcome::Recompressed { flavour } => write!(
                f,
                "added the subroot hook ({flavour}) inside the re-encoded main segment"
            ),
            AddOutcome::AlreadyPresent { flavour } => {
                write!(f, "the subroot hook is already present ({flavour})")
            }
        }
    }
}

/// True when the initrd in `dev` holds a subroot hook (whatever its content).
pub fn hook_present<D: BlockDevice>(dev: &D) -> Result<bool> {
    Ok(scan(dev)?.hook_present())
}

/// The compression of a segment appended behind a segment compressed with `last`: the
/// same one, so that readers which decompress everything after the early segments as one
/// stream (`lsinitramfs`, `unmkinitramfs`, dracut's `lsinitrd`) still read the initrd. The
/// kernel unpacks each gzip member, zstd frame and xz stream as its own segment; `None`
/// for lzma, bzip2 and lz4 legacy, whose end the kernel's decompressors do not report
/// exactly (lz4 legacy has no end at all), so nothing can follow them safely.
pub fn append_codec(last: Compression) -> Option<Compression> {
    match last {
        Compression::None | Compression::Gzip | Compression::Zstd | Compression::Xz => Some(last),
        Compression::Lzma | Compression::Bzip2 | Compression::Lz4Legacy => None,
    }
}

/// The codec of the segment [`add_subroot`] appends to the initrd `sc` describes: that of
/// its last segment before any subroot appended earlier ([`append_codec`]). `None` when
/// nothing can follow that segment, where [`Method::Append`] re-encodes the main segment.
pub fn appended_segment_codec(sc: &Scan) -> Option<Compression> {
    let ours = sc.appended_hook();
    let last_base = ours.unwrap_or(sc.segments.len()).saturating_sub(1);
    sc.segments
        .get(last_base)
        .and_then(|s| append_codec(s.compression))
}

/// The hook an initrd gets.
pub(super) struct Hook {
    pub flavour: Flavour,
    /// Where the script goes (normalised, no leading `/`).
    pub path: String,
    pub script: Vec<u8>,
    pub mtime: u32,
}

impl Hook {
    /// What the ORDER file becomes in an initrd whose hook paths `view` shows
    /// (initramfs-tools only): the existing one with the script's line added, or a new one
    /// running the local-bottom scripts present and then the script.
    pub fn order(&self, view: &PathView) -> Option<Vec<u8>> {
        if self.flavour != Flavour::InitramfsTools {
            return None;
        }
        Some(
            match view
                .names
                .get(IT_ORDER_PATH)
                .and_then(|f| f.content.as_deref())
            {
                Some(c) => order_with_subroot(c).unwrap_or_else(|| c.to_vec()),
                None => {
                    let scripts: Vec<String> = view.local_bottom_scripts.iter().cloned().collect();
                    new_order(&scripts)
                }
            },
        )
    }

    /// True when `view` already runs this hook: the same script, and (initramfs-tools) an
    /// ORDER file running it.
    pub fn runs_in(&self, view: &PathView) -> bool {
        let script_same = view.names.get(&self.path).is_some_and(|f| {
            f.mode == SCRIPT_MODE && f.content.as_deref() == Some(&self.script[..])
        });
        let order_same = self.flavour != Flavour::InitramfsTools
            || view
                .names
                .get(IT_ORDER_PATH)
                .and_then(|f| f.content.as_deref())
                .is_some_and(order_has_subroot);
        script_same && order_same
    }

    /// The entries to add to an initrd whose hook paths `view` shows, parents first: the
    /// missing directories, the ORDER file (unless `order_elsewhere`), the script.
    pub fn entries(&self, view: &PathView, order_elsewhere: bool) -> Vec<NewEntry> {
        let mut added: Vec<NewEntry> = Vec::new();
        if let (Some(content), false) = (self.order(view), order_elsewhere) {
            let mode = view
                .names
                .get(IT_ORDER_PATH)
                .map(|f| f.mode)
                .filter(|m| m & 0o170000 == S_IFREG)
                .unwrap_or(S_IFREG | 0o644);
            push_with_parents(&mut added, view, IT_ORDER_PATH, mode, content);
        }
        push_with_parents(
            &mut added,
            view,
            &self.path,
            SCRIPT_MODE,
            self.script.clone(),
        );
        added
    }
}

/// An entry to add to an initrd.
pub(super) struct NewEntry {
    pub name: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Push the directories leading to `path` that neither `view` nor `added` has (parents
/// first), then `path` itself.
fn push_with_parents(
    added: &mut Vec<NewEntry>,
    view: &PathView,
    path: &str,
    mode: u32,
    data: Vec<u8>,
) {
    let parts: Vec<&str> = path.split('/').collect();
    for n in 1..parts.len() {
        let dir = parts[..n].join("/");
        if !view.names.contains_key(&dir) && !added.iter().any(|e| e.name == dir) {
            added.push(NewEntry {
                name: dir,
                mode: S_IFDIR | 0o755,
                data: Vec::new(),
            });
        }
    }
    added.push(NewEntry {
        name: path.to_string(),
        mode,
        data,
    });
}

/// A writer counting what goes through it.
pub(super) struct Counting<W> {
    pub inner: W,
    pub count: u64,
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
pub(super) fn copy_raw<D: BlockDevice, W: Write>(
    dev: &D,
    offset: u64,
    end: u64,
    out: &mut W,
) -> Result<()> {
    let mut buf = vec![0u8; (end.saturating_sub(offset)).min(1 << 20) as usize];
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

/// Zero bytes bringing what `out` has written to a multiple of 4 (where a plain archive
/// may start).
pub(super) fn pad4<W: Write>(out: &mut Counting<W>) -> Result<u64> {
    let n = (4 - out.count % 4) % 4;
    out.write_all(&[0u8; 4][..n as usize])
        .map_err(|e| Error::io("writing zero padding between segments", e))?;
    Ok(n)
}

/// Write the initrd in `dev` into `out` with the subroot hook added (see the module
/// documentation). An initrd of [`Flavour::Other`] is [`Error::Unsupported`], and so is one
/// with another subroot hook unless [`AddSubrootOptions::replace`] is set; in both cases
/// nothing is written to `out`.
pub fn add_subroot<D: BlockDevice, W: Write>(
    dev: &D,
    out: W,
    opts: &AddSubrootOptions,
) -> Result<AddOutcome> {
    add(dev, &scan_with(dev, opts.depth)?, out, opts, Written::Whole)
}

/// [`add_subroot`] writing only what changes, for a caller that edits the initrd file in
/// place: after [`AddOutcome::Appended`], `out` holds the bytes that follow the first
/// `kept` bytes of the input (padding and the new segment); after
/// [`AddOutcome::AlreadyPresent`], nothing; after [`AddOutcome::Recompressed`], the whole
/// new initrd. `sc` is [`scan`] of `dev` (a caller that planned with it already does not
/// decode the initrd again): the cost of the append is then the segment alone.
pub fn add_subroot_tail<D: BlockDevice, W: Write>(
    dev: &D,
    sc: &Scan,
    out: W,
    opts: &AddSubrootOptions,
) -> Result<AddOutcome> {
    add(dev, sc, out, opts, Written::Tail)
}

/// What [`add`] writes to its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// The whole new initrd.
    Whole,
    /// Only the bytes after the part of the input that stays (see [`add_subroot_tail`]).
    Tail,
}

fn add<D: BlockDevice, W: Write>(
    dev: &D,
    sc: &Scan,
    out: W,
    opts: &AddSubrootOptions,
    written: Written,
) -> Result<AddOutcome> {
    validate_shared(&opts.shared)?;
    let mtime = u32::try_from(opts.mtime).map_err(|_| {
        Error::InvalidArgument(format!(
            "mtime {} does not fit the 32-bit cpio time field",
            opts.mtime
        ))
    })?;
    let flavour = sc.flavour();
    if flavour == Flavour::Other {
        return Err(Error::unsupported(format!(
            "cannot add the subroot hook: the initrd is neither initramfs-tools nor dracut ({})",
            sc.describe()
        )));
    }
    let main = sc.main_segment()?;
    let path = match flavour {
        Flavour::Dracut => format!("{}/pre-pivot/{DRACUT_HOOK_NAME}", sc.dracut_hook_dir()?),
        _ => IT_SCRIPT_PATH.to_string(),
    };
    let hook = Hook {
        flavour,
        path,
        script: initrd_script(flavour, &opts.shared)?,
        mtime,
    };
    let ours = sc.appended_hook();
    let codec = appended_segment_codec(sc);
    let recompress = match (opts.method, codec) {
        (Method::Append, Some(_)) => None,
        (Method::Append, None) => Some(None),
        (Method::Recompress(spec), _) => Some(spec),
    };
    let same = hook.runs_in(&sc.all);
    if same && !(recompress.is_some() && ours.is_some()) {
        let mut out = out;
        if written == Written::Whole {
            copy_raw(dev, 0, dev.len(), &mut out)?;
        }
        out.flush()
            .map_err(|e| Error::io("flushing the initrd", e))?;
        return Ok(AddOutcome::AlreadyPresent { flavour });
    }
    if !same && sc.hook_present() && !opts.replace {
        let at = match ours {
            Some(i) => format!("in the segment appended by subroot (segment {i})"),
            None => "in its main archive".to_string(),
        };
        return Err(Error::unsupported(format!(
            "the initrd already has a subroot hook with other content {at}: other shared \
             directories or an older subroot; replacing it needs --refresh-hook"
        )));
    }
    match (recompress, codec) {
        (None, Some(codec)) => {
            let (replaced, kept, bytes) =
                super::append::append(dev, out, sc, &hook, codec, main, written)?;
            Ok(AddOutcome::Appended {
                flavour,
                replaced,
                kept,
                bytes,
            })
        }
        (spec, _) => {
            // Re-encoding decodes the whole main segment anyway; its facts (highest inode
            // number, entry format) must cover all of it.
            let full;
            let sc = if sc.is_complete() {
                sc
            } else {
                full = scan_with(dev, Depth::Full)?;
                &full
            };
            super::recompress::recompress(dev, out, sc, &hook, spec.flatten(), main)?;
            Ok(AddOutcome::Recompressed { flavour })
        }
    }
}
