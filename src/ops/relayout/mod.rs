//! `subroot relayout`: move an installed Linux system into a subroot directory (`r0/`)
//! of its root filesystem, keep the shared directories (`/boot`, `/var`, `/home`) at the
//! top, add the subroot hook to its initrds and `subroot=r0` to its kernel command lines,
//! so it boots into `r0` — the procedure of the "multiple roots" note, as one rootless
//! command.
//!
//! The work is split in two: [`plan`] computes everything from the input (what moves,
//! what is created, which files are edited and how, which initrds get the hook, which
//! partitions are rewritten), then the execution carries that plan out: initrds are
//! rewritten with [`subroot_formats::initrd::add_subroot`], the root filesystem becomes
//! the [`transform::RelayoutTree`] view of the input with the same identity (edited in
//! process or rebuilt: [`engine`]) over a copy-on-write view of the disk, and the result
//! goes to a new image, an overlay or the input itself ([`crate::ops::deliver`]).
//!
//! - [`request`]: the [`request::RelayoutRequest`] carried out (from the command line or
//!   from `batch relayout`).
//! - [`plan`]: the [`plan::Plan`] value (also the `--dry-run --json` document).
//! - [`bootcfg`]: the kernel command line editors.
//! - [`bootpart`]: a separate `/boot` partition named by `/etc/fstab`.
//! - [`esp`]: boot configuration on FAT ESPs (planned; refused in a real run for now).
//! - [`initrds`]: where the initrds are.
//! - [`transform`]: the tree transform.
//! - [`engine`]: the edit engine (in process, libext2fs) or the rebuild (mke2fs -d).
//! - [`apply`]: the edit engine's work on one filesystem.
//! - [`execute`]: rewriting initrds, changing the filesystems, delivering the result.

/// Refuse the input: an [`subroot_formats::Error::Unsupported`] (exit status 3) with the
/// formatted message.
macro_rules! refuse {
    ($($t:tt)*) => {
        return Err(subroot_formats::Error::unsupported(format!($($t)*)).into())
    };
}

pub mod apply;
pub mod bootcfg;
pub mod bootpart;
pub mod engine;
pub mod esp;
pub mod execute;
pub mod initrds;
pub mod plan;
pub mod request;
pub mod transform;

use crate::cli::relayout::RelayoutArgs;
use crate::ops::deliver::{Destination, DestinationArgs};
use crate::ops::select::select;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use engine::Engine;
use plan::{BootInput, BootPlan, PartitionPlan, PlanInput};
use request::RelayoutRequest;
use std::sync::Arc;
use subroot_e2fs::writer::uuid_string;
use subroot_formats::block::{BlockDevice, Slice};
use subroot_formats::ext::{ExtTree, OpenOptions};
use subroot_formats::sniff::sniff;
use subroot_formats::table::{read_table, PartKind};

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

/// Every partition (or the whole disk) with what sniffing found.
fn survey(disk: &Arc<dyn BlockDevice>, name: &str) -> Result<Vec<PartitionPlan>> {
    let table = read_table(&**disk)
        .with_context(|| format!("cannot read the partition table of {name}"))?;
    let Some(table) = table else {
        let fs = sniff(&**disk).with_context(|| format!("cannot read {name}"))?;
        return Ok(vec![PartitionPlan {
            number: None,
            start: 0,
            size: disk.len(),
            filesystem: fs.map(|f| f.kind),
            action: plan::COPY.into(),
        }]);
    };
    let mut out = Vec::new();
    for p in table
        .partitions
        .iter()
        .filter(|p| p.kind != PartKind::Extended)
    {
        let dev = Slice::new(disk.clone(), p.start, p.size)
            .with_context(|| format!("partition {} of {name}", p.number))?;
        let fs =
            sniff(&dev).with_context(|| format!("cannot read partition {} of {name}", p.number))?;
        let lvm_type = subroot_formats::table::types::is_lvm(&p.type_code);
        out.push(PartitionPlan {
            number: Some(p.number),
            start: p.start,
            size: p.size,
            filesystem: fs
                .map(|f| f.kind)
                .or(lvm_type.then(|| "LVM2_member".to_string())),
            action: plan::COPY.into(),
        });
    }
    Ok(out)
}

/// `subroot relayout`.
pub fn run(args: &RelayoutArgs, ctx: &Ctx) -> Result<()> {
    relayout(&RelayoutRequest::try_from(args)?, ctx).map(|_| ())
}

/// Carry out `req`; `false` for a dry run (nothing written).
pub fn relayout(req: &RelayoutRequest, ctx: &Ctx) -> Result<bool> {
    let name = req.input.display().to_string();
    let opts = &req.plan;
    // Where the result goes (options that do not apply and an existing OUT are refused
    // before any work).
    let dest = match req.dry_run {
        true => None,
        false => Some(
            DestinationArgs {
                output: req.output.as_deref(),
                overlay: req.overlay.as_deref(),
                in_place: req.in_place,
                output_format: req.output_format,
                qcow2: &req.qcow2,
                force: req.replace_output,
            }
            .destination(&req.input)?,
        ),
    };

    // Which filesystem: refuse layouts relayout cannot handle, naming what was found.
    let selected = select(&req.input, req.part, ctx);
    let selected = match selected {
        Ok(s) if s.is_ext() => s,
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
            let img = super::open_image(&req.input, req.part.format)?;
            let disk: Arc<dyn BlockDevice> = Arc::new(img);
            let parts = survey(&disk, &name)?;
            let odd: Vec<String> = parts
                .iter()
                .filter_map(|p| {
                    let k = p.filesystem.as_deref()?;
                    let w = unsupported_kind(k)?;
                    Some(match p.number {
                        Some(n) => format!("partition {n} is {w} ({k})"),
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
            return Err(e);
        }
    };
    let disk = selected.disk.clone();
    if let Some(Destination::NewImage { format, .. }) = &dest {
        // qcow2-only options with a raw output: refused before any work.
        crate::ops::write::OutputSpec {
            path: &req.input,
            format: format.unwrap_or(super::write::format_following(selected.format)),
            qcow2: &req.qcow2,
            force: true,
            quiet: true,
        }
        .validate()?;
    }
    let mut partitions = survey(&disk, &name)?;
    let root_number = selected.partition.as_ref().map(|p| p.number);
    if root_number.is_none() && partitions.iter().any(|p| p.number.is_some()) {
        refuse!(
            "{name}: -p 0 takes the whole disk, but the disk has a partition table; relayout \
             works on one of its partitions (-p N) or on a bare filesystem image"
        );
    }
    for p in &mut partitions {
        if p.number == root_number {
            p.action = Engine::Rebuild.name().into();
        }
    }
    let fsname = match root_number {
        Some(n) => format!("{name} partition {n}"),
        None => name.clone(),
    };
    let tree = ExtTree::open(selected.device.clone(), OpenOptions::default())
        .with_context(|| format!("cannot open the ext filesystem of {fsname}"))?;
    let sb = tree.fs().superblock();
    let uuid = uuid_string(&sb.uuid);

    // A separate /boot partition (named by the root's /etc/fstab): rewritten too.
    let located = bootpart::locate(&disk, &tree, root_number, &name)?;
    let boot_tree = match &located {
        Some(l) => Some(
            ExtTree::open(l.device.clone(), OpenOptions::default()).with_context(|| {
                format!(
                    "cannot open the ext filesystem of the /boot partition {} of {name}",
                    l.partition.number
                )
            })?,
        ),
        None => None,
    };
    let boot = match (&located, &boot_tree) {
        (Some(l), Some(bt)) => {
            for p in &mut partitions {
                if p.number == Some(l.partition.number) {
                    p.action = Engine::Rebuild.name().into();
                }
            }
            Some(BootInput {
                tree: bt,
                plan: BootPlan {
                    partition: l.partition.number,
                    fstab_device: l.spec.clone(),
                    filesystem: l.fs.kind.clone(),
                    uuid: uuid_string(&bt.fs().superblock().uuid),
                },
            })
        }
        _ => None,
    };
    // The private work directory (initrd copies, the new filesystem).
    let work = match req.work_dir.as_deref().filter(|_| !req.dry_run) {
        Some(at) => crate::output::ScratchDir::at(at)?,
        None => crate::output::ScratchDir::new("subroot-relayout.")?,
    };
    let (mut plan, layout, boot_layout) = plan::compute(&PlanInput {
        boot,
        tree: &tree,
        name: fsname.clone(),
        image: name.clone(),
        root_partition: root_number,
        filesystem: sb.kind().to_string(),
        uuid,
        partitions,
        opts,
        work: work.path(),
    })?;
    // The engine: one for the root and a separate /boot alike.
    let mut chosen = engine::choose(req.engine, &selected.device, &fsname)?;
    if let (Engine::Edit, Some(l)) = (chosen.engine, &located) {
        let c = engine::choose(req.engine, &l.device, "the /boot filesystem")?;
        chosen = engine::EngineChoice {
            engine: c.engine,
            reason: c.reason.map(|r| format!("the /boot filesystem: {r}")),
        };
    }
    plan.set_engine(&chosen);
    let esp_edits = esp::edit_esp_files(&disk, &plan.partitions, &plan.subroot, &name)?;
    plan.esp_edits = esp_edits.iter().map(|e| e.edit.clone()).collect();
    if req.dry_run {
        let text = if req.json {
            format!("{}\n", serde_json::to_string_pretty(&plan)?)
        } else {
            plan.text()
        };
        print_out(&text)?;
        return Ok(false);
    }
    let Some(dest) = dest else {
        bail!("no output: give -o OUT, --overlay OUT or --in-place (or --dry-run)");
    };
    if !ctx.quiet && !req.json {
        eprint!("{}", plan.text());
    }
    let tools =
        crate::e2fsprogs::find(ctx.mke2fs.as_deref()).context("relayout needs e2fsprogs")?;
    let summary = execute::execute(
        execute::Job {
            plan: &plan,
            layout,
            engine: chosen.engine,
            tree: &tree,
            disk: &disk,
            input: &req.input,
            input_format: selected.format,
            root: selected.partition.as_ref().map(|p| (p.start, p.size)),
            boot: match (boot_layout, &boot_tree, &located) {
                (Some(layout), Some(tree), Some(l)) => Some(execute::BootJob {
                    layout,
                    tree,
                    start: l.partition.start,
                    size: l.partition.size,
                }),
                _ => None,
            },
            esp_edits: &esp_edits,
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
    Ok(true)
}

/// Write to stdout (see [`crate::stdout`] for a closed pipe).
fn print_out(text: &str) -> Result<()> {
    crate::stdout::print(text).context("cannot write to stdout")
}
