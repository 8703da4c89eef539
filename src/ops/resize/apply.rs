//! Carrying a resize plan out: the disk seen at its new length, the resized filesystem put
//! into the partition, the partition table rewritten on a copy-on-write overlay, and the
//! result delivered like every edit (`-o`, `--overlay`, `--in-place`).
//!
//! - ext, edit engine: [`subroot_libext2fs::Ext2Fs::grow`] over the overlay, where the
//!   filesystem lies: only the new groups' metadata (and the descriptors, bitmaps and
//!   superblocks) are written, whatever the data held;
//! - ext, rebuild engine: e2fsprogs' `resize2fs` on a sparse work copy of the filesystem
//!   (for growing, a copy of the new partition's size whose tail is a hole), spliced back;
//! - swap: its header gets the new last page, UUID and label kept.

use super::plan::Plan;
use crate::edit::deliver::{deliver, Destination, Edit};
use crate::edit::edit_fat::Scratch;
use crate::edit::ext_edit::{finish, open_editor};
use crate::edit::full_check::Verify;
use crate::Ctx;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use subroot_formats::block::{
    changed_ranges, BlockDevice, Changed, Overlay, Resized, Slice, Splice,
};
use subroot_formats::image::ImageFormat;
use subroot_libext2fs::Error as EditError;

/// A sparse work copy of `fs_dev` seen at `len` bytes (holes past its end), in the
/// scratch directory.
pub fn work_copy(fs_dev: &dyn BlockDevice, len: u64) -> Result<Scratch> {
    let at = crate::output::scratch_root()?.join("resize");
    Scratch::copy_of(&Resized::new(fs_dev, len), &at)
}

/// resize2fs the work copy's filesystem to the plan's new size.
pub fn resize_ext(plan: &Plan, work: &Scratch, ctx: &Ctx) -> Result<()> {
    let tools = crate::e2fsprogs::find(ctx.mke2fs.as_deref())?;
    let f = &plan.filesystem;
    let path = work.file.temp_path();
    subroot_e2fs::resize::resize2fs(&tools, path, f.size.new / f.block_size)
        .context("cannot resize the filesystem")?;
    // resize2fs cuts a regular file to the filesystem's end; the partition's tail (less
    // than a block) reads as zeros again.
    work.file
        .file()
        .set_len(work.dev.len())
        .with_context(|| format!("cannot size {}", path.display()))
}

/// How the filesystem reaches its new size in the written disk.
pub enum FsStep {
    /// Already resized, in this device (the rebuild engine's work copy), spliced in.
    Replaced(Arc<dyn BlockDevice>),
    /// Grown in process where it lies (the edit engine), to the plan's size.
    Grow,
    /// A swap area whose header gets the new size.
    SwapHeader,
}

/// Why an edit-engine grow did not happen: the editor refused the layout (nothing was
/// written; `auto` then rebuilds), or something else failed.
pub enum WriteError {
    GrowRefused(anyhow::Error),
    Other(anyhow::Error),
}

impl WriteError {
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            WriteError::GrowRefused(e) | WriteError::Other(e) => e,
        }
    }
}

impl From<anyhow::Error> for WriteError {
    fn from(e: anyhow::Error) -> Self {
        WriteError::Other(e)
    }
}

/// Write the resized disk: `disk` at the plan's new length, the filesystem resized by
/// `step`, the table updated; delivered to `dest`.
pub fn write(
    plan: &Plan,
    image: &Path,
    format: ImageFormat,
    disk: &Arc<dyn BlockDevice>,
    step: FsStep,
    dest: &Destination,
    ctx: &Ctx,
) -> Result<(), WriteError> {
    let new_len = plan.container.new;
    let (start, part_len) = plan
        .partition
        .as_ref()
        .map_or((0, new_len), |p| (p.start, p.size.new));
    let grown: Box<dyn BlockDevice> = Box::new(Resized::new(disk.clone(), new_len));
    let base: Box<dyn BlockDevice> = match &step {
        FsStep::Replaced(fs) => Box::new(
            Splice::new(
                grown,
                start,
                Slice::new(fs.clone(), 0, part_len).map_err(anyhow::Error::new)?,
            )
            .map_err(anyhow::Error::new)?,
        ),
        _ => grown,
    };
    // Written blocks go to a spill file (a grow without lazy inode tables zeroes them all):
    // memory holds only the index.
    let spill = tempfile::tempfile().context("cannot create a temporary file for the edit")?;
    let edited = Arc::new(Overlay::with_spill(base, spill));
    match step {
        FsStep::SwapHeader => {
            subroot_formats::swap::fit_to_device(
                &Slice::new(&edited, start, part_len).map_err(anyhow::Error::new)?,
            )
            .context("cannot re-make the swap area")?;
        }
        FsStep::Grow => grow_ext(plan, &edited, start, part_len, ctx)?,
        FsStep::Replaced(_) => {}
    }
    if let Some(p) = &plan.partition {
        subroot_formats::table::resize_partition(&*edited, p.number, p.size.new)
            .with_context(|| format!("cannot resize partition {}", p.number))?;
    }
    let changed = match (dest, &step) {
        // A new image is written whole: no need to compare.
        (Destination::NewImage { .. }, _) => Vec::new(),
        (_, FsStep::Replaced(_)) => {
            let old = Resized::new(disk.clone(), new_len);
            let mut c = edited.changed();
            c.extend(
                changed_ranges(&old, &*edited, start, part_len)
                    .context("cannot compare the resized filesystem with the old one")?,
            );
            merge(c)
        }
        // Every change went through the overlay.
        _ => edited.changed(),
    };
    let edit = Edit {
        input: image,
        input_format: format,
        edited: &*edited,
        changed,
    };
    Ok(deliver(&edit, dest, ctx)?)
}

/// The edit engine: the filesystem in `[start, start + len)` of `edited` grown in process
/// to the plan's block count, closed and checked by subroot's own reader.
fn grow_ext(
    plan: &Plan,
    edited: &Arc<Overlay<Box<dyn BlockDevice>>>,
    start: u64,
    len: u64,
    ctx: &Ctx,
) -> Result<(), WriteError> {
    let dev: Arc<dyn BlockDevice> =
        Arc::new(Slice::new(edited.clone(), start, len).map_err(anyhow::Error::new)?);
    let what = match &plan.partition {
        Some(p) => format!("the filesystem of partition {}", p.number),
        None => "the filesystem".to_string(),
    };
    let mut fs = open_editor(&dev, &what)?;
    let f = &plan.filesystem;
    match fs.grow(f.size.new / f.block_size) {
        Ok(report) => ctx.detail(format_args!(
            "grew {what} from {} to {} blocks ({} new groups)",
            report.old_blocks,
            report.new_blocks,
            report.new_groups - report.old_groups
        )),
        Err(e @ EditError::GrowRefused { .. }) => {
            return Err(WriteError::GrowRefused(anyhow::Error::new(e)))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot grow {what}"))
                .into())
        }
    }
    finish(fs, &dev, &what, Verify::Quick, ctx)?;
    Ok(())
}

/// Ranges sorted and merged where they overlap or touch.
fn merge(mut v: Vec<Changed>) -> Vec<Changed> {
    v.sort_by_key(|c| c.offset);
    let mut out: Vec<Changed> = Vec::with_capacity(v.len());
    for c in v.into_iter().filter(|c| c.len > 0) {
        match out.last_mut() {
            Some(last) if c.offset <= last.end() => {
                last.len = last.len.max(c.end() - last.offset);
            }
            _ => out.push(c),
        }
    }
    out
}
