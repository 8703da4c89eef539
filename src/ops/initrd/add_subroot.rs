//! `subroot initrd add-subroot`: the initrd with the subroot boot hook appended (or, with
//! `--recompress`, inside its main segment; see `subroot_formats::initrd::add`), written
//! atomically to `-o OUT`, or with `--in-place` appended to the file itself under the undo
//! log (`subroot_formats::inplace`); idempotent.

use super::{open_input, parse_compression, Input};
use crate::cli::AddSubrootArgs;
use crate::clock::source_date_epoch;
use crate::output::AtomicOutput;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::io::{BufWriter, Write};
use std::path::Path;
use subroot_formats::block::{BlockDevice, PlannedWrite, WritePlan};
use subroot_formats::initrd::scan::{scan_with, Depth};
use subroot_formats::initrd::{
    add_subroot, add_subroot_tail, appended_segment_codec, AddOutcome, AddSubrootOptions, Method,
};

pub fn run(args: &AddSubrootArgs, ctx: &Ctx) -> Result<()> {
    let opts = options(args)?;
    match &args.output {
        Some(out) => to_output(args, out, &opts, ctx),
        None => in_place(args, &opts, ctx),
    }
}

/// The library's request, made from the arguments.
fn options(args: &AddSubrootArgs) -> Result<AddSubrootOptions> {
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
    Ok(AddSubrootOptions {
        shared: args.shared.clone(),
        method,
        replace: args.refresh_hook,
        mtime: source_date_epoch()?.unwrap_or(0),
        depth: if args.full_scan {
            Depth::Full
        } else {
            Depth::SortedPrefix
        },
    })
}

/// `-o OUT`: the whole new initrd written to a temporary file renamed over OUT.
fn to_output(
    args: &AddSubrootArgs,
    output: &Path,
    opts: &AddSubrootOptions,
    ctx: &Ctx,
) -> Result<()> {
    let input = open_input(&args.input, ctx)?;
    let out = AtomicOutput::create(output, args.force)?;
    let dest = output.display();
    let outcome = {
        let mut w = BufWriter::with_capacity(1 << 20, out.file());
        let outcome = add_subroot(&input.dev, &mut w, opts)
            .with_context(|| format!("cannot add the subroot hook to {}", input.name))?;
        w.flush().with_context(|| format!("cannot write {dest}"))?;
        outcome
    };
    out.commit()?;
    ctx.note(format_args!("{}: {outcome}; wrote {dest}", input.name));
    already_present(&outcome)
}

/// `--in-place`: only the new segment (and the cut of a segment subroot appended earlier)
/// written into the file, crash safe: the old bytes it overwrites or cuts off go to
/// `FILE.subroot-undo` first, and an interrupted run is rolled back by the next one.
/// Initrds whose last segment nothing can follow (lzma, bzip2, lz4 legacy) are refused:
/// re-encoding rewrites the whole file, which `-o OUT` does atomically.
fn in_place(args: &AddSubrootArgs, opts: &AddSubrootOptions, ctx: &Ctx) -> Result<()> {
    let path = &args.input.file;
    if let Some(image) = &args.input.image {
        bail!(
            "--in-place appends to a host initrd file; {}:{} is inside an image, where \
             `subroot relayout --in-place` adds the hook (or write -o OUT)",
            image.display(),
            path.display()
        );
    }
    // Opening rolls an interrupted earlier run back first (nothing to do without its log).
    let input = open_input(&args.input, ctx)?;
    let sc = scan_with(&input.dev, opts.depth)
        .with_context(|| format!("cannot add the subroot hook to {}", input.name))?;
    if appended_segment_codec(&sc).is_none() {
        let last = sc.segments.last().map(|s| s.compression.name());
        return Err(subroot_formats::Error::unsupported(format!(
            "cannot add the subroot hook to {} in place: its last segment is {} compressed, \
             whose end the kernel cannot find, so no segment can follow it; write a \
             re-encoded copy with -o OUT",
            input.name,
            last.unwrap_or("not")
        ))
        .into());
    }
    let mut tail = Vec::new();
    let outcome = add_subroot_tail(&input.dev, &sc, &mut tail, opts)
        .with_context(|| format!("cannot add the subroot hook to {}", input.name))?;
    let kept = match outcome {
        AddOutcome::AlreadyPresent { .. } => {
            ctx.note(format_args!("{}: {outcome}; nothing written", input.name));
            return already_present(&outcome);
        }
        AddOutcome::Appended { kept, .. } => kept,
        AddOutcome::Recompressed { .. } => {
            return Err(subroot_formats::Error::unsupported(format!(
                "cannot add the subroot hook to {} in place: it would be re-encoded (write -o OUT)",
                input.name
            ))
            .into())
        }
    };
    let stats = apply(path, &input, kept, tail)?;
    ctx.note(format_args!(
        "{}: {outcome}; {} bytes written in place (file {} -> {} bytes)",
        input.name, stats.bytes_written, stats.old_len, stats.new_len
    ));
    Ok(())
}

/// Write `tail` at `kept` into `path` (which `input` reads) under the undo log.
fn apply(
    path: &Path,
    input: &Input,
    kept: u64,
    tail: Vec<u8>,
) -> Result<subroot_formats::inplace::ApplyStats> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read the status of {}", path.display()))?
        .len();
    if len != input.dev.len() {
        bail!(
            "{} changed while subroot read it ({} bytes, now {len}); nothing written",
            path.display(),
            input.dev.len()
        );
    }
    let plan = WritePlan {
        new_len: kept + tail.len() as u64,
        writes: vec![PlannedWrite::Bytes {
            offset: kept,
            data: tail,
        }],
    };
    subroot_formats::inplace::apply(path, &plan, &*input.dev)
        .with_context(|| format!("cannot update {} in place", path.display()))
}

/// On stdout, even under -q (scripts test for it), when the hook was there already.
fn already_present(outcome: &AddOutcome) -> Result<()> {
    if matches!(outcome, AddOutcome::AlreadyPresent { .. }) {
        crate::stdout::print("already present\n")?;
    }
    Ok(())
}
