//! `subroot initrd add-subroot`: the initrd with the subroot boot hook appended (or, with
//! `--recompress`, inside its main segment; see `subroot_formats::initrd::add`), written
//! atomically; idempotent.

use super::{open_input, parse_compression};
use crate::cli::AddSubrootArgs;
use crate::clock::source_date_epoch;
use crate::output::AtomicOutput;
use crate::Ctx;
use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use subroot_formats::initrd::scan::Depth;
use subroot_formats::initrd::{add_subroot, AddOutcome, AddSubrootOptions, Method};

pub fn run(args: &AddSubrootArgs, ctx: &Ctx) -> Result<()> {
    let input = open_input(&args.input, ctx)?;
    let compression = args
        .compress
        .as_deref()
        .map(parse_compression)
        .transpose()?;
    let method = if args.recompress || compression.is_some() {
        Method::Recompress(compression)
    } else {
        Method::Append
    };
    let opts = AddSubrootOptions {
        shared: args.shared.clone(),
        method,
        replace: args.refresh_hook,
        mtime: source_date_epoch()?.unwrap_or(0),
        depth: if args.full_scan {
            Depth::Full
        } else {
            Depth::SortedPrefix
        },
    };
    let out = AtomicOutput::create(&args.output, args.force)?;
    let dest = args.output.display();
    let outcome = {
        let mut w = BufWriter::with_capacity(1 << 20, out.file());
        let outcome = add_subroot(&input.dev, &mut w, &opts)
            .with_context(|| format!("cannot add the subroot hook to {}", input.name))?;
        w.flush().with_context(|| format!("cannot write {dest}"))?;
        outcome
    };
    out.commit()?;
    ctx.note(format_args!("{}: {outcome}; wrote {dest}", input.name));
    if matches!(outcome, AddOutcome::AlreadyPresent { .. }) {
        // On stdout, even under -q: scripts test for it.
        crate::stdout::print("already present\n")?;
    }
    Ok(())
}
