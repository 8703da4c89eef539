//! `subroot create`: a new empty image, optionally with an empty MBR or GPT partition
//! table (the note's `qemu-img create`, plus `sfdisk`, as one rootless command).
//!
//! The table is written onto a copy-on-write overlay over a zero device and streamed into
//! the output, so the cost is the same for a 1 GiB and a 1 TiB disk.

use super::write::{write_image, OutputSpec};
use crate::cli::{CreateArgs, TableArg};
use crate::size::human;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use subroot_formats::block::{Overlay, Zeros};
use subroot_formats::table::{write_table, PartSpec, TableKind};

pub fn run(args: &CreateArgs, ctx: &Ctx) -> Result<()> {
    let spec = OutputSpec {
        path: &args.output,
        format: args.output_format,
        qcow2: &args.qcow2,
        force: args.force,
        quiet: ctx.quiet,
    };
    spec.validate()?;
    if args.size == 0 {
        bail!("--size must be greater than zero");
    }
    let parts = args
        .parts
        .iter()
        .map(|p| {
            let spec: PartSpec = p.parse().with_context(|| format!("bad --part `{p}`"))?;
            if spec.fs.is_some() || spec.from.is_some() {
                bail!(
                    "--part `{p}`: fs= and from= (populating a filesystem) are not supported yet; \
                     create the empty table now and populate the partition with mke2fs/mkfs.vfat"
                );
            }
            Ok(spec)
        })
        .collect::<Result<Vec<_>>>()?;
    let dev = Overlay::new(Zeros(args.size));
    let mut summary = String::new();
    if let Some(t) = args.table {
        let kind = match t {
            TableArg::Mbr => TableKind::Mbr,
            TableArg::Gpt => TableKind::Gpt,
        };
        let table =
            write_table(&dev, kind, &parts).context("cannot lay out the partition table")?;
        summary = format!(
            ", {} table with {} partition(s)",
            kind.name(),
            table.partitions.len()
        );
    }
    write_image(&dev, &spec, "creating")?;
    ctx.note(format_args!(
        "created {} ({}, {}{summary})",
        args.output.display(),
        spec.format_name(),
        human(args.size)
    ));
    Ok(())
}
