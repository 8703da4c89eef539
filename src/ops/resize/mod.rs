//! `subroot resize`: grow a disk image, its last partition and that partition's filesystem
//! (ext2/3/4, swap), or shrink an ext filesystem to its contents and the partition and disk
//! after it. [`plan`] decides everything from the input; [`apply`] carries it out.

pub mod apply;
pub mod plan;
pub mod request;

use crate::cli::resize::ResizeArgs;
use crate::edit::deliver::Destination;
use crate::edit::engine::Engine;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use apply::{FsStep, WriteError};
use plan::{FsKind, Plan};
use request::{Goal, ResizeRequest};
use std::path::Path;
use std::sync::Arc;
use subroot_formats::image::ImageFormat;

pub fn run(args: &ResizeArgs, ctx: &Ctx) -> Result<()> {
    let req = ResizeRequest::try_from(args)?;
    resize(&req, ctx)
}

/// Resize as `req` asks (see the module comment).
pub fn resize(req: &ResizeRequest, ctx: &Ctx) -> Result<()> {
    let shrink = matches!(req.goal, Goal::ShrinkToFit { .. });
    let dest = if req.dry_run {
        None
    } else {
        if shrink && (req.in_place || req.overlay.is_some()) {
            bail!("--shrink-to-fit writes a new image: give -o OUT");
        }
        Some(req.destination_args().destination(&req.image)?)
    };
    let input = plan::open(req)?;
    let mut plan = plan::plan(req, &input, None)?;
    // Shrinking: the smallest size comes from resize2fs -P on a work copy, which is then
    // the one resized.
    let mut work = None;
    if shrink {
        let copy = apply::work_copy(&*input.fs_dev, input.fs_dev.len())?;
        let tools = crate::e2fsprogs::find(ctx.mke2fs.as_deref())?;
        let min = subroot_e2fs::resize::minimum_blocks(&tools, copy.file.temp_path())?;
        plan = plan::plan(req, &input, Some(min * plan.filesystem.block_size))?;
        work = Some(copy);
    }
    let Some(dest) = dest else {
        if req.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", plan.describe());
        }
        return Ok(());
    };
    if let Destination::InPlace { image } = &dest {
        refuse_early(image, input.format, plan.container.new)?;
    }
    if !req.json {
        ctx.note(format_args!("{}", plan.describe().trim_end()));
    }
    let write = |step: FsStep| {
        apply::write(
            &plan,
            &req.image,
            input.format,
            &input.disk,
            step,
            &dest,
            ctx,
        )
    };
    match (plan.filesystem.kind, plan.engine) {
        (FsKind::Swap, _) => write(FsStep::SwapHeader).map_err(WriteError::into_anyhow)?,
        (FsKind::Ext, Some(Engine::Edit)) => match write(FsStep::Grow) {
            Err(WriteError::GrowRefused(why)) if req.engine.is_none() => {
                ctx.note(format_args!(
                    "{why:#}; rebuilding with resize2fs instead (--engine auto)"
                ));
                rebuild(&plan, &input, None, &write, ctx)?;
                // What the JSON report says is what was done.
                plan.engine = Some(Engine::Rebuild);
                plan.engine_reason = Some(format!("{why:#}"));
            }
            r => r.map_err(WriteError::into_anyhow)?,
        },
        (FsKind::Ext, _) => rebuild(&plan, &input, work, &write, ctx)?,
    }
    // After a run, the plan as carried out (the engine actually used).
    if req.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    }
    Ok(())
}

/// The rebuild engine: resize2fs on a work copy (`work`, or one made now), then written.
fn rebuild(
    plan: &Plan,
    input: &plan::Input,
    work: Option<crate::edit::edit_fat::Scratch>,
    write: &dyn Fn(FsStep) -> Result<(), WriteError>,
    ctx: &Ctx,
) -> Result<()> {
    let work = match work {
        Some(w) => w,
        None => apply::work_copy(&*input.fs_dev, part_len(plan))?,
    };
    apply::resize_ext(plan, &work, ctx)?;
    let fs = subroot_formats::block::RawFile::open(work.file.temp_path())?;
    write(FsStep::Replaced(Arc::new(fs))).map_err(WriteError::into_anyhow)
}

/// A qcow2 that cannot take its new virtual size in place is refused before the
/// filesystem is resized (the same planner runs again, for real, when it is written).
fn refuse_early(image: &Path, format: ImageFormat, new_len: u64) -> Result<()> {
    if format == ImageFormat::Qcow2 {
        let file = std::fs::File::open(image)
            .with_context(|| format!("cannot open {}", image.display()))?;
        subroot_formats::qcow2::plan_in_place_resized(&file, &[], Some(new_len))
            .with_context(|| format!("cannot resize {} in place", image.display()))?;
    }
    Ok(())
}

/// The new length of the filesystem's device: the partition, or the whole disk.
fn part_len(plan: &Plan) -> u64 {
    plan.partition
        .as_ref()
        .map_or(plan.container.new, |p| p.size.new)
}
