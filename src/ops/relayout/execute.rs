//! Carrying out a relayout plan: rewrite each initrd with the hook (into the private work
//! directory), change the root filesystem (and a separate `/boot`) into the transformed
//! tree with the input's identity — edited in process or rebuilt, by the plan's engine —
//! over a copy-on-write overlay of the disk, and deliver the result: a new image, an
//! overlay, or the input changed in place ([`crate::edit::deliver`]).

use super::apply::apply;
use super::plan::{file_device, Dev, Plan};
use super::transform::{Layout, NewContent, RelayoutTree};
use crate::edit::deliver::{deliver, Destination, Edit};
use crate::edit::engine::Engine;
use crate::edit::ext_edit::{finish, open_editor, summary};
use crate::edit::full_check::Verify;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use subroot_e2fs::tools::E2fsprogs;
use subroot_e2fs::writer::{build, BuildOptions, BuiltFs, Identity};
use subroot_formats::block::{changed_ranges, BlockDevice, Overlay, Slice, Splice};
use subroot_formats::ext::ExtTree;
use subroot_formats::image::ImageFormat;
use subroot_formats::initrd::{add_subroot_tail, AddOutcome, AddSubrootOptions, Method};

/// Everything the execution needs.
pub struct Job<'a> {
    pub plan: &'a Plan,
    pub layout: Layout,
    /// The engine the plan chose.
    pub engine: Engine,
    pub tree: &'a ExtTree<Dev>,
    pub disk: &'a Arc<dyn BlockDevice>,
    /// The input image file and its container format.
    pub input: &'a Path,
    pub input_format: ImageFormat,
    /// The root partition's (start, size), or `None` for a filesystem on the whole disk.
    pub root: Option<(u64, u64)>,
    /// The separate `/boot` partition, rewritten too.
    pub boot: Option<BootJob<'a>>,
    /// Files to edit on FAT EFI system partitions.
    pub esp_edits: &'a [super::esp::EspEdit],
    /// Where the result goes.
    pub dest: &'a Destination,
    /// How much the edit engine's result is checked.
    pub verify: Verify,
    pub work: &'a Path,
    /// The e2fsprogs the rebuild runs (found once by the caller).
    pub tools: &'a E2fsprogs,
}

/// A separate `/boot` partition to rewrite.
pub struct BootJob<'a> {
    pub layout: Layout,
    pub tree: &'a ExtTree<Dev>,
    pub start: u64,
    pub size: u64,
}

/// Add the hook to every planned initrd, reading it in place: for an appended segment
/// only the segment is written to the work directory (the edit engine then truncates the
/// file where the segment goes and appends it; the rebuild engine reads the kept part from
/// the input); an initrd re-encoded whole (a codec nothing can follow) is written whole.
fn rewrite_initrds(job: &mut Job, ctx: &Ctx) -> Result<()> {
    // The plan refused an initrd that has the hook unless told to go on: replace it then.
    let opts = AddSubrootOptions {
        shared: job.plan.shared.clone(),
        method: Method::Append,
        replace: true,
        // Reproducible: SOURCE_DATE_EPOCH when set, else 0.
        mtime: crate::clock::source_date_epoch()?.unwrap_or(0),
        ..Default::default()
    };
    for (i, ip) in job.plan.initrds.iter().enumerate() {
        let tree = match (&job.boot, ip.partition) {
            (Some(b), Some(_)) => b.tree,
            _ => job.tree,
        };
        let src = file_device(tree, &ip.input_path)?;
        let out_path = job.work.join(format!("initrd-{i}.new"));
        let f = std::fs::File::create(&out_path)
            .with_context(|| format!("cannot create {}", out_path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        let outcome = add_subroot_tail(&src, &ip.scan, &mut w, &opts)
            .with_context(|| format!("cannot add the subroot hook to {}", ip.path))?;
        w.into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}", out_path.display(), e.error()))?;
        let written = std::fs::metadata(&out_path)?.len();
        let new = match outcome {
            AddOutcome::Appended { kept, .. } => NewContent::Appended {
                base: src,
                kept,
                tail: out_path,
                tail_len: written,
            },
            AddOutcome::AlreadyPresent { .. } => {
                ctx.note(format_args!("{}: {outcome}", ip.path));
                continue;
            }
            AddOutcome::Recompressed { .. } => NewContent::File {
                path: out_path,
                len: written,
            },
        };
        ctx.note(format_args!(
            "{}: {outcome}, {} -> {} bytes",
            ip.path,
            ip.size,
            new.len()
        ));
        match (&mut job.boot, ip.partition) {
            (Some(b), Some(_)) => {
                b.layout.replaced.insert(ip.input_path.clone(), new);
            }
            _ => {
                let out = job.layout.output_path(&ip.input_path);
                job.layout.replaced.insert(out, new);
            }
        }
    }
    Ok(())
}

/// Every filesystem is changed over one copy-on-write overlay of the input disk: the edit
/// engine writes into it, a rebuilt filesystem and the edited ESP files are spliced over
/// it. The changed ranges are the overlay's plus, for spliced partitions, the blocks that
/// differ from the input (only computed for an overlay or in-place destination).
pub fn execute(mut job: Job, ctx: &Ctx) -> Result<String> {
    rewrite_initrds(&mut job, ctx)?;
    let spill = tempfile::tempfile().context("cannot create a temporary file for the edit")?;
    let overlay = Arc::new(Overlay::with_spill(job.disk.clone(), spill));
    let mut edited: Arc<dyn BlockDevice> = overlay.clone();
    let mut spliced: Vec<(u64, u64)> = Vec::new();
    // Rebuilt filesystems live in the work directory until the image is written.
    let mut built = Vec::new();
    let (root_start, root_size) = job.root.unwrap_or((0, job.disk.len()));
    let boot = job.boot.take();
    let mut parts = vec![(
        &job.layout,
        job.tree,
        root_start,
        root_size,
        "the root filesystem",
    )];
    if let Some(b) = &boot {
        parts.push((&b.layout, b.tree, b.start, b.size, "the /boot filesystem"));
    }
    for (layout, tree, start, size, what) in parts {
        if job.engine == Engine::Edit {
            let dev: Arc<dyn BlockDevice> = Arc::new(Slice::new(overlay.clone(), start, size)?);
            edit(dev, layout, what, job.verify, ctx)?;
            continue;
        }
        let view = RelayoutTree::new(tree, layout);
        let fs = rebuild(&view, tree, size, what, job.tools, job.work, ctx)?;
        let dev = fs.open()?;
        if dev.len() > size {
            bail!(
                "the new {what} is {} bytes, the partition {size}",
                dev.len()
            );
        }
        spliced.push((start, dev.len()));
        edited = Arc::new(Splice::new(edited, start, dev)?);
        built.push(fs);
    }
    // ESP boot configuration, edited in scratch copies (kept until the output is written).
    let (edited, _esp_scratch) = super::esp::apply(edited, job.esp_edits, job.dest.path())?;
    spliced.extend(job.esp_edits.iter().map(|e| (e.start, e.size)));
    let mut changed = overlay.changed();
    if !matches!(job.dest, Destination::NewImage { .. }) {
        spliced.sort_unstable();
        spliced.dedup();
        for (start, len) in spliced {
            changed.extend(
                changed_ranges(&**job.disk, &*edited, start, len)
                    .context("cannot compare the rewritten partitions with the input")?,
            );
        }
        changed.sort_by_key(|c| c.offset);
    }
    deliver(
        &Edit {
            input: job.input,
            input_format: job.input_format,
            edited: &*edited,
            changed,
        },
        job.dest,
        ctx,
    )?;
    drop(built);
    let mut boot_note = job.plan.boot_partition.as_ref().map_or(String::new(), |b| {
        format!("; /boot partition {} rewritten", b.partition)
    });
    if !job.esp_edits.is_empty() {
        boot_note.push_str(&format!("; {} ESP file(s) edited", job.esp_edits.len()));
    }
    Ok(format!(
        "relayouted {} into {} (/{}: {} entries moved, {} files edited, {} initrds with the hook{boot_note}; engine {})",
        job.plan.image,
        job.dest.describe(),
        job.plan.subroot,
        job.plan.moves.len(),
        job.plan.edits.len() + job.plan.installed.len(),
        job.plan.initrds.len(),
        job.engine.name()
    ))
}

/// A progress callback noting each step (with `-v`) as "`doing` `what`: step".
fn step_notes<'a>(ctx: &'a Ctx, doing: &'a str, what: &'a str) -> impl Fn(&str) + 'a {
    move |step: &str| {
        if ctx.verbose > 0 {
            ctx.note(format_args!("{doing} {what}: {step}"));
        }
    }
}

/// The edit engine on one filesystem: `layout` carried out in process on `dev` (a slice
/// of the overlay), then the cheap check of what it touched.
fn edit(
    dev: Arc<dyn BlockDevice>,
    layout: &Layout,
    what: &str,
    verify: Verify,
    ctx: &Ctx,
) -> Result<()> {
    let mut fs = open_editor(&dev, what)?;
    let done = apply(&mut fs, layout).with_context(|| format!("cannot edit {what}"))?;
    let (stats, report) = finish(fs, &dev, what, verify, ctx)?;
    ctx.detail(format_args!(
        "edited {what}: {} moved, {} added, {} replaced ({} appended to); {}",
        done.moved,
        done.added,
        done.replaced,
        done.appended,
        summary(&stats, &report)
    ));
    Ok(())
}

/// Rebuild `input`'s filesystem as `view` with its identity (UUID, label, features, sizes,
/// hash seed …) through the ext write engine; the image file lives in the engine's
/// temporary directory under `work` until the returned value is dropped.
fn rebuild(
    view: &RelayoutTree,
    input: &ExtTree<Dev>,
    size: u64,
    what: &str,
    tools: &E2fsprogs,
    work: &Path,
    ctx: &Ctx,
) -> Result<BuiltFs> {
    let identity =
        Identity::like(input.fs()).with_context(|| format!("cannot read {what}'s identity"))?;
    let note = step_notes(ctx, "rebuilding", what);
    let opts = BuildOptions {
        size,
        identity,
        tools,
        temp_dir: Some(work),
        progress: Some(&note),
        populate: crate::e2fsprogs::populate()?,
    };
    build(view, b"", &opts).with_context(|| format!("cannot rebuild {what}"))
}
