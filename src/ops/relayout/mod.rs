//! `subroot relayout`: move an installed Linux system into a subroot directory (`r0/`)
//! of its root filesystem, keep the shared directories (`/boot`, `/var`, `/home`) at the
//! top, add the subroot hook to its initrds and `subroot=r0` to its kernel command lines,
//! so it boots into `r0` — the procedure of the "multiple roots" note, as one rootless
//! command.
//!
//! The work is split in three: the image is surveyed once ([`ImageSurvey`]: the container
//! opened, the partition table read, each partition's filesystem identified; the root,
//! a separate `/boot` and the ESPs are all found in it), [`steps`] builds the one plan
//! value from it (what moves, what is created, which files are edited and how, which
//! initrds get the hook, which partitions are rewritten), then the execution carries that
//! plan out: initrds are
//! rewritten with [`subroot_formats::initrd::add_subroot`], the root filesystem becomes
//! the [`transform::RelayoutTree`] view of the input with the same identity (edited in
//! process or rebuilt: [`engine`]) over a copy-on-write view of the disk, and the result
//! goes to a new image, an overlay or the input itself ([`crate::edit::deliver`]).
//!
//! - [`request`]: the [`request::RelayoutRequest`] carried out (from the command line or
//!   from `batch relayout`).
//! - [`plan`]: the [`plan::Plan`] value (also the `--dry-run --json` document).
//! - [`steps`]: the plan built in steps.
//! - [`bootcfg`]: the kernel command line editors.
//! - [`bootpart`]: a separate `/boot` partition named by `/etc/fstab`.
//! - [`esp`]: boot configuration on FAT ESPs (planned; refused in a real run for now).
//! - [`initrds`]: where the initrds are.
//! - [`transform`]: the tree transform.
//! - [`engine`]: the edit engine (in process, libext2fs) or the rebuild (mke2fs -d).
//! - [`apply`]: the edit engine's work on one filesystem.
//! - [`execute`]: rewriting initrds, changing the filesystems, delivering the result.
//! - [`bootfiles`]: where the boot configuration and initrds are.
//! - [`undo`]: `relayout --undo`, the inverse.

/// Refuse the input: an [`subroot_formats::Error::Unsupported`] (exit status 3) with the
/// formatted message.
macro_rules! refuse {
    ($($t:tt)*) => {
        return Err(subroot_formats::Error::unsupported(format!($($t)*)).into())
    };
}

pub mod apply;
pub mod bootcfg;
pub mod bootfiles;
pub mod bootpart;
pub mod esp;
pub mod execute;
pub mod initrds;
pub mod plan;
pub mod request;
pub mod steps;
pub mod transform;
pub mod undo;

use crate::cli::relayout::RelayoutArgs;
use crate::edit::deliver::{Destination, DestinationArgs};
use crate::edit::output_options::OutputFormat;
use crate::open::select::{select_in, Selected};
use crate::open::survey::ImageSurvey;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use request::RelayoutRequest;
use subroot_formats::ext::{ExtTree, OpenOptions};

/// The filesystems relayout cannot work through, and what to say about them.
fn unsupported_kind(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "crypto_LUKS" => "a LUKS-encrypted volume",
        "LVM2_member" => "an LVM physical volume",
        "btrfs" => "a btrfs filesystem",
        "xfs" => "an XFS filesystem",
        "squashfs" | "erofs" | "iso9660" => "a read-only image filesystem",
        _ => return None,
    })
}

/// `subroot relayout`.
pub fn run(args: &RelayoutArgs, ctx: &Ctx) -> Result<()> {
    if args.undo {
        return undo::run(args, ctx);
    }
    relayout(&RelayoutRequest::try_from(args)?, ctx).map(|_| ())
}

/// The root filesystem in `survey` (ext2/3/4); refuses layouts relayout cannot handle,
/// naming what was found.
fn root_filesystem(survey: &ImageSurvey, req: &RelayoutRequest, ctx: &Ctx) -> Result<Selected> {
    let name = survey.name();
    match select_in(survey, req.part.clone(), ctx) {
        Ok(s) if s.is_ext() => Ok(s),
        Ok(s) => {
            let kind =
                s.fs.as_ref()
                    .map_or("unrecognised content".to_string(), |f| f.kind.clone());
            refuse!(
                "{name}: the root filesystem ({}) is {kind}; relayout supports ext2/3/4 roots{}",
                s.describe(),
                unsupported_kind(&kind).map_or(String::new(), |w| format!(" (found {w})"))
            );
        }
        Err(e) => {
            let odd: Vec<String> = survey
                .slots
                .iter()
                .filter_map(|slot| {
                    let k = steps::content_of(slot)?;
                    let w = unsupported_kind(&k)?;
                    Some(match &slot.partition {
                        Some(p) => format!("partition {} is {w} ({k})", p.number),
                        None => format!("the disk is {w} ({k})"),
                    })
                })
                .collect();
            if !odd.is_empty() {
                refuse!(
                    "{name}: no ext2/3/4 root filesystem to relayout: {}; relayout supports plain \
                     ext2/3/4 roots (no LVM, LUKS, btrfs or XFS)",
                    odd.join("; ")
                );
            }
            Err(e)
        }
    }
}

/// An ext filesystem of the image, opened for reading; `what` names it in messages.
fn open_ext(slot_device: &plan::Dev, what: &str) -> Result<ExtTree<plan::Dev>> {
    ExtTree::open(slot_device.clone(), OpenOptions::default())
        .with_context(|| format!("cannot open the ext filesystem of {what}"))
}

/// Carry out `req`: the plan as carried out, or `None` for a dry run (nothing written).
pub fn relayout(req: &RelayoutRequest, ctx: &Ctx) -> Result<Option<plan::Plan>> {
    let name = req.input.display().to_string();
    // Where the result goes (options that do not apply and an existing OUT are refused
    // before any work).
    let dest = match req.dry_run {
        true => None,
        false => Some(
            DestinationArgs {
                output: req.output.as_deref(),
                overlay: req.overlay.as_deref(),
                in_place: req.in_place,
                image: req.image_options,
                force: req.replace_output,
            }
            .destination(&req.input)?,
        ),
    };

    // The image, surveyed once; the root filesystem, a separate /boot and the ESPs are
    // all found in this survey.
    let survey = ImageSurvey::open(&req.input, req.part.format)?;
    survey.complete()?;
    let selected = root_filesystem(&survey, req, ctx)?;
    if let Some(Destination::NewImage { format, .. }) = &dest {
        // qcow2-only options with a raw output: refused before any work.
        crate::edit::write_image::OutputSpec {
            path: &req.input,
            format: format.unwrap_or(OutputFormat::following(selected.format)),
            qcow2: &req.image_options.qcow2,
            force: true,
            quiet: true,
        }
        .validate()?;
    }
    let root_number = selected.partition.as_ref().map(|p| p.number);
    if root_number.is_none() && survey.slots.iter().any(|s| s.partition.is_some()) {
        refuse!(
            "{name}: -p 0 takes the whole disk, but the disk has a partition table; relayout \
             works on one of its partitions (-p N) or on a bare filesystem image"
        );
    }
    let fsname = match root_number {
        Some(n) => format!("{name} partition {n}"),
        None => name.clone(),
    };
    let tree = open_ext(&selected.device, &fsname)?;

    // A separate /boot partition (named by the root's /etc/fstab): rewritten too.
    let located = bootpart::locate(&survey, &tree, b"etc/fstab", root_number, &name)?;
    let boot_tree = match &located {
        Some(l) => Some(open_ext(
            &l.device,
            &format!("the /boot partition {} of {name}", l.partition.number),
        )?),
        None => None,
    };
    let planned = steps::build(&steps::Inputs {
        survey: &survey,
        tree: &tree,
        root_number,
        name: fsname,
        boot: located
            .as_ref()
            .zip(boot_tree.as_ref())
            .map(|(located, tree)| steps::BootInput { located, tree }),
        opts: &req.plan,
        engine: req.engine,
    })?;
    let plan = planned.plan;
    if req.dry_run {
        let text = if req.json {
            format!("{}\n", serde_json::to_string_pretty(&plan)?)
        } else {
            plan.text()
        };
        print_out(&text)?;
        return Ok(None);
    }
    let Some(dest) = dest else {
        bail!("no output: give -o OUT, --overlay OUT or --in-place (or --dry-run)");
    };
    if !ctx.quiet && !req.json {
        eprint!("{}", plan.text());
    }
    let tools =
        crate::e2fsprogs::find(ctx.mke2fs.as_deref()).context("relayout needs e2fsprogs")?;
    // The private work directory (the appended initrd segments, a rebuilt filesystem).
    let work = match req.work_dir.as_deref() {
        Some(at) => crate::output::ScratchDir::at(at)?,
        None => crate::output::ScratchDir::new("subroot-relayout.")?,
    };
    let summary = execute::execute(
        execute::Job {
            plan: &plan,
            layout: planned.layout,
            engine: plan.engine,
            tree: &tree,
            disk: &survey.disk,
            input: &req.input,
            input_format: selected.format,
            root: selected.partition.as_ref().map(|p| (p.start, p.size)),
            boot: match (planned.boot_layout, &boot_tree, &located) {
                (Some(layout), Some(tree), Some(l)) => Some(execute::BootJob {
                    layout,
                    tree,
                    start: l.partition.start,
                    size: l.partition.size,
                }),
                _ => None,
            },
            esp_edits: &planned.esp_edits,
            dest: &dest,
            verify: req.verify,
            work: work.path(),
            tools: &tools,
        },
        ctx,
    )?;
    if req.json {
        print_out(&format!("{}\n", serde_json::to_string_pretty(&plan)?))?;
    }
    ctx.note(format_args!("{summary}"));
    Ok(Some(plan))
}

/// Write to stdout (see [`crate::stdout`] for a closed pipe).
fn print_out(text: &str) -> Result<()> {
    crate::stdout::print(text).context("cannot write to stdout")
}
