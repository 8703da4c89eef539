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
//! the [`transform::RelayoutTree`] view of the input with the same identity (edited in a
//! copy or rebuilt: [`engine`]), and the new filesystem is spliced into the disk, which is
//! streamed into the output image.
//!
//! - [`plan`]: the [`plan::Plan`] value (also the `--dry-run --json` document).
//! - [`bootcfg`]: the kernel command line editors.
//! - [`bootpart`]: a separate `/boot` partition named by `/etc/fstab`.
//! - [`esp`]: boot configuration on FAT ESPs (planned; refused in a real run for now).
//! - [`initrds`]: where the initrds are.
//! - [`transform`]: the tree transform.
//! - [`engine`]: the edit engine (a copy edited in place) or the rebuild (mke2fs -d).
//! - [`execute`]: rewriting initrds, rewriting the filesystems and splicing.

/// Refuse the input: an [`subroot_formats::Error::Unsupported`] (exit status 3) with the
/// formatted message.
macro_rules! refuse {
    ($($t:tt)*) => {
        return Err(subroot_formats::Error::unsupported(format!($($t)*)).into())
    };
}

pub mod bootcfg;
pub mod bootpart;
pub mod engine;
pub mod esp;
pub mod execute;
pub mod initrds;
pub mod plan;
pub mod transform;

use crate::cli::relayout::{EngineArg, RelayoutArgs};
use crate::ops::select::select;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use plan::{BootInput, BootPlan, PartitionPlan, PlanInput, PlanOptions};
use std::sync::Arc;
use subroot_e2fs::writer::uuid_string;
use subroot_formats::block::{BlockDevice, Slice};
use subroot_formats::ext::{ExtTree, OpenOptions};
use subroot_formats::qcow2::WriteStats;
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
            action: "copy".into(),
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
            action: "copy".into(),
        });
    }
    Ok(out)
}

/// Parse `--move`'s list (comma- or space-separated); `None` when not given.
pub fn parse_move_list(m: Option<&str>) -> Result<Option<Vec<String>>> {
    let Some(m) = m else { return Ok(None) };
    let list: Vec<String> = m
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        bail!("--move needs at least one name");
    }
    Ok(Some(list))
}

/// The plan options of `args` (`--subroot`, `--shared`, `--move`, `--refresh-hook`), checked.
pub fn plan_options(args: &RelayoutArgs) -> Result<PlanOptions> {
    let opts = PlanOptions {
        subroot: args.subroot.trim_matches('/').to_string(),
        shared: args
            .shared
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
        move_list: parse_move_list(args.move_list.as_deref())?,
        refresh_hook: args.refresh_hook,
    };
    plan::check_options(&opts)?;
    Ok(opts)
}

/// `subroot relayout`.
pub fn run(args: &RelayoutArgs, ctx: &Ctx) -> Result<()> {
    relayout(args, ctx).map(|_| ())
}

/// Relayout as `args` say; the output's write statistics (`None` for `--dry-run`).
pub fn relayout(args: &RelayoutArgs, ctx: &Ctx) -> Result<Option<WriteStats>> {
    let name = args.input.display().to_string();
    let output = match (&args.output, args.in_place) {
        (Some(o), _) => Some(o.clone()),
        (None, true) => Some(args.input.clone()),
        (None, false) => None,
    };
    let opts = plan_options(args)?;
    if let Some(out) = &output {
        if !args.dry_run && !args.in_place && out.exists() && !args.force {
            bail!("{} exists; use --force to replace it", out.display());
        }
    }

    // Which filesystem: refuse layouts relayout cannot handle, naming what was found.
    let selected = select(&args.input, &args.part, ctx);
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
            let img = super::open_image(&args.input, args.part.format)?;
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
    let format = args
        .output_format
        .unwrap_or_else(|| super::write::format_following(&*disk));
    // qcow2-only options with a raw output: refused before any work.
    crate::ops::write::OutputSpec {
        path: &args.input,
        format,
        qcow2: &args.qcow2,
        force: true,
        quiet: true,
    }
    .validate()?;
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
            p.action = "rebuild".into();
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
                    p.action = "rebuild".into();
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
    let work = match args.work_dir.as_deref().filter(|_| !args.dry_run) {
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
        opts: &opts,
        work: work.path(),
    })?;
    // The engine: one for the root and a separate /boot alike.
    let (mut chosen, mut reason) = engine::choose(args.engine, &tree, &layout, &fsname)?;
    if let (EngineArg::Edit, Some(bl), Some(bt)) = (chosen, &boot_layout, &boot_tree) {
        let (c, r) = engine::choose(args.engine, bt, bl, "the /boot filesystem")?;
        (chosen, reason) = (c, r.map(|r| format!("the /boot filesystem: {r}")));
    }
    let word = match chosen {
        EngineArg::Edit => "edit",
        _ => "rebuild",
    };
    plan.engine = word.into();
    plan.engine_reason = reason;
    for p in &mut plan.partitions {
        if p.action == "rebuild" {
            p.action = word.into();
        }
    }
    let esp_edits = esp::edit_esp_files(&disk, &plan.partitions, &plan.subroot, &name)?;
    plan.esp_edits = esp_edits.iter().map(|e| e.edit.clone()).collect();
    if args.dry_run {
        let text = if args.json {
            format!("{}\n", serde_json::to_string_pretty(&plan)?)
        } else {
            plan.text()
        };
        print_out(&text)?;
        return Ok(None);
    }
    let Some(output) = output else {
        bail!("no output: give -o OUT (or --in-place, or --dry-run)");
    };
    if !ctx.quiet && !args.json {
        eprint!("{}", plan.text());
    }
    let (report, stats) = execute::execute(
        execute::Job {
            plan: &plan,
            layout,
            engine: chosen,
            tree: &tree,
            disk: &disk,
            format,
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
            output: &output,
            args,
            work: work.path(),
        },
        ctx,
    )?;
    if args.json {
        print_out(&format!("{}\n", serde_json::to_string_pretty(&plan)?))?;
    }
    ctx.note(format_args!("{report}"));
    Ok(Some(stats))
}

/// Write to stdout; a closed pipe (`| head`) ends the output quietly.
pub fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}
