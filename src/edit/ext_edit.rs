//! `copy-in` and `rm` on an ext filesystem through the in-process editor
//! ([`subroot_libext2fs::Ext2Fs`]): the image is opened read-only, a copy-on-write
//! [`Overlay`] (its blocks spilled to an unnamed temporary file) takes every write, the
//! editor reads only the metadata it needs and writes only the blocks it changes, the
//! result is checked ([`subroot_libext2fs::check`]: touched directories, checksums, counts)
//! and [`deliver`]ed as a new image, an overlay or an in-place update. An error at any
//! point leaves the input as it was: nothing reaches it before `deliver`.
//!
//! The rules of what may be copied where (a directory is never replaced by a file, no path
//! twice) are [`crate::edit::edited_tree::EditedTree`]'s, checked by the caller before the edit,
//! so both engines refuse the same requests. Directories that receive or lose entries keep their metadata, as after a
//! rebuild: the result is the input's tree plus the copied trees minus the removed paths.

use crate::edit::deliver::{deliver, Destination, Edit};
use crate::edit::edited_tree::Graft;
use crate::edit::full_check::Verify;
use crate::open::select::Selected;
use crate::Ctx;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Overlay, Slice};
use subroot_formats::tree::{relative, Content, Entry, Kind};
use subroot_libext2fs::{check, check_input, CheckReport, CloseStats, Error as EditError, Ext2Fs};

/// What one edit session changes.
pub struct ExtChanges<'a> {
    pub grafts: Vec<Graft<'a>>,
    pub removed: Vec<Vec<u8>>,
}

/// Why the editor cannot take `sel`'s filesystem, when it says so before anything is
/// written (the caller may then rebuild instead).
pub enum Outcome {
    Done,
    Refused(String),
}

/// Make `changes` to `sel`'s ext filesystem in process and deliver the image to `dest`.
/// `validate` (the [`EditedTree`] rules) has already run.
pub fn edit(
    sel: &Selected,
    changes: &ExtChanges,
    verify: Verify,
    dest: &Destination,
    ctx: &Ctx,
) -> Result<Outcome> {
    let Scratch { overlay, part } = scratch(sel)?;
    let what = sel.describe();
    if let Some(why) = refusal(&part, &what)? {
        return Ok(Outcome::Refused(why));
    }
    let mut fs = open_editor(&part, &what)?;
    ctx.note(format_args!("editing {what} in process"));
    for path in &changes.removed {
        fs.remove_tree(path)
            .with_context(|| format!("cannot remove /{}", String::from_utf8_lossy(path)))?;
    }
    let mut copied = Copied::default();
    for g in &changes.grafts {
        graft(&mut fs, g, false, &mut copied)?;
    }
    let (stats, report) = finish(fs, &part, &what, verify, ctx)?;
    ctx.detail(format_args!(
        "edited {what}: {} files, {} directories, {} links, {} removed; {}",
        copied.files,
        copied.dirs,
        copied.links,
        changes.removed.len(),
        summary(&stats, &report)
    ));
    deliver_overlay(sel, &overlay, dest, ctx)?;
    Ok(Outcome::Done)
}

/// Where an in-process edit of `sel`'s filesystem writes: a copy-on-write overlay of the
/// whole disk (its blocks spilled to an unnamed temporary file) and the filesystem's
/// slice of it.
struct Scratch {
    overlay: Arc<Overlay<Arc<dyn BlockDevice>>>,
    part: Arc<dyn BlockDevice>,
}

/// A fresh [`Scratch`] over `sel`.
fn scratch(sel: &Selected) -> Result<Scratch> {
    let spill = tempfile::tempfile().context("cannot create a temporary file for the edit")?;
    let overlay = Arc::new(Overlay::with_spill(sel.disk.clone(), spill));
    let (start, len) = match &sel.partition {
        Some(p) => (p.start, sel.device.len()),
        None => (0, sel.disk.len()),
    };
    let part: Arc<dyn BlockDevice> = Arc::new(Slice::new(overlay.clone(), start, len)?);
    Ok(Scratch { overlay, part })
}

/// Deliver the edited `overlay` of `sel`'s disk to `dest`.
fn deliver_overlay(
    sel: &Selected,
    overlay: &Overlay<Arc<dyn BlockDevice>>,
    dest: &Destination,
    ctx: &Ctx,
) -> Result<()> {
    let edit = Edit {
        input: &sel.image,
        input_format: sel.format,
        edited: overlay,
        changed: overlay.changed(),
    };
    deliver(&edit, dest, ctx)
}

/// Counts for the report.
#[derive(Default)]
pub struct Copied {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
}

/// Copy one tree in: new entries are created, existing directories take the graft's
/// metadata (as tar does; unless `keep_dirs`, as `tar --no-overwrite-dir`), other
/// existing entries are replaced; hard links inside the graft stay hard links.
pub fn graft(fs: &mut Ext2Fs, g: &Graft, keep_dirs: bool, copied: &mut Copied) -> Result<()> {
    let mut first_name: HashMap<u64, Vec<u8>> = HashMap::new();
    // The walk's visitor returns the codecs' error type: an editor error is kept here
    // (typed, with its path) and the walk stopped.
    let mut failed: Option<(Vec<u8>, EditError)> = None;
    let walked = g.tree.walk(&g.root, &mut |e, content| {
        let mut entry = e.clone();
        entry.path = join(&g.dest, relative(&e.path, &g.root));
        match put(fs, &entry, content, keep_dirs, &mut first_name, copied) {
            Ok(()) => Ok(()),
            Err(err) => {
                failed = Some((entry.path, err));
                Err(subroot_formats::Error::InvalidArgument(
                    "the edit failed".into(),
                ))
            }
        }
    });
    if let Some((path, err)) = failed {
        return Err(anyhow::Error::new(err).context(format!(
            "cannot copy in /{}",
            String::from_utf8_lossy(&path)
        )));
    }
    walked.context("cannot read the files to copy in")?;
    Ok(())
}

/// Put one entry of a graft into the filesystem.
fn put(
    fs: &mut Ext2Fs,
    entry: &Entry,
    content: Option<&mut dyn Content>,
    keep_dirs: bool,
    first_name: &mut HashMap<u64, Vec<u8>>,
    copied: &mut Copied,
) -> Result<(), EditError> {
    let existing = match fs.stat(&entry.path) {
        Ok(st) => Some(st.kind),
        Err(EditError::NotFound(_)) => None,
        Err(err) => return Err(err),
    };
    match existing {
        Some(Kind::Dir) if entry.kind == Kind::Dir && keep_dirs => return Ok(()),
        Some(Kind::Dir) if entry.kind == Kind::Dir => return fs.set_meta(&entry.path, &entry.meta),
        Some(_) => fs.unlink(&entry.path)?,
        None => {}
    }
    if let Some(id) = entry.hardlink_id {
        if let Some(first) = first_name.get(&id) {
            copied.links += 1;
            return fs.link(first, &entry.path);
        }
        first_name.insert(id, entry.path.clone());
    }
    fs.create(entry, content)?;
    match entry.kind {
        Kind::Dir => copied.dirs += 1,
        _ => copied.files += 1,
    }
    Ok(())
}

fn join(dir: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() && !rel.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(rel);
    p
}

/// The filesystem on `dev` (a slice of the edit's overlay), open for editing, its clock
/// set for reproducible output.
pub fn open_editor(dev: &Arc<dyn BlockDevice>, what: &str) -> Result<Ext2Fs> {
    let mut fs = Ext2Fs::open(dev.clone(), what).with_context(|| format!("cannot open {what}"))?;
    reproducible_clock(&mut fs)?;
    Ok(fs)
}

/// Close the editor (everything reaches `dev`) and check what it touched with subroot's
/// own reader; with `--verify full` also `e2fsck -fn` of the result. A failed check is
/// [`crate::exit::OwnCheckFailed`]: nothing is delivered.
pub fn finish(
    fs: Ext2Fs,
    dev: &Arc<dyn BlockDevice>,
    what: &str,
    verify: Verify,
    ctx: &Ctx,
) -> Result<(CloseStats, CheckReport)> {
    let stats = fs
        .close()
        .with_context(|| format!("cannot finish the edit of {what}"))?;
    let report = check(dev.clone(), &stats.touched_dirs).map_err(|e| {
        crate::exit::OwnCheckFailed(format!(
            "the edited {what} failed its check ({e}); nothing was written"
        ))
    })?;
    if verify == Verify::Full {
        crate::edit::full_check::e2fsck(&**dev, what, ctx.mke2fs.as_deref())?;
    }
    Ok((stats, report))
}

/// What an edit cost and what its check read, for `-v`: "N blocks, N inodes taken
/// (negative: freed); N bytes read, N written; checked N directories, N groups".
pub fn summary(stats: &CloseStats, report: &CheckReport) -> String {
    format!(
        "{} blocks, {} inodes taken (negative: freed); {} bytes read, {} written; checked {} directories, {} groups",
        stats.blocks_used,
        stats.inodes_used,
        stats.bytes_read,
        stats.bytes_written,
        report.dirs,
        report.groups
    )
}

/// With `SOURCE_DATE_EPOCH` set, the editor's clock (the superblock's write time, freed
/// inodes' deletion time) is that time, so the same edit gives the same bytes.
fn reproducible_clock(fs: &mut Ext2Fs) -> Result<()> {
    if let Some(t) = crate::clock::source_date_epoch()? {
        fs.set_clock(t as i64);
    }
    Ok(())
}

/// Why the editor cannot take the filesystem on `device` (named `what`), `None` when it
/// can; decided before anything is written, over a throw-away overlay: a feature the
/// editor does not write correctly, or free counts that already disagree with the bitmaps
/// (an input e2fsck -fn finds fault with: the check after the edit could not tell its own
/// mistakes from the input's).
pub fn refusal(device: &Arc<dyn BlockDevice>, what: &str) -> Result<Option<String>> {
    let probe: Arc<dyn BlockDevice> = Arc::new(Overlay::new(device.clone()));
    match Ext2Fs::open(probe, what) {
        Ok(_) => {}
        Err(e @ (EditError::Unsupported { .. } | EditError::LibraryTooOld { .. })) => {
            return Ok(Some(e.to_string()))
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot open {what}"))),
    }
    match check_input(device.clone()) {
        Ok(_) => Ok(None),
        Err(EditError::Corrupt(why)) => Ok(Some(format!(
            "{what} is {why}; e2fsck -fn finds fault with it"
        ))),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {what}"))),
    }
}
