//! `subroot cat`: copy a regular file out of a filesystem inside an image to stdout.

use crate::cli::read::CatArgs;
use crate::open::fstree::{open, resolve_path, shown};
use crate::Ctx;
use anyhow::{Context, Result};
use std::io::Write;
use subroot_formats::resolve::Last;

/// Run `subroot cat`.
pub fn run(args: &CatArgs, ctx: &Ctx) -> Result<()> {
    let fs = open(&args.read, ctx)?;
    let path = resolve_path(&fs, Some(&args.path), Last::Follow)?.path;
    let mut out = crate::stdout::out();
    fs.tree
        .copy_file(&path, &mut out)
        .with_context(|| format!("cannot read {} in {}", shown(&path), fs.name))?;
    out.flush().context("cannot write to stdout")?;
    fs.print_warnings();
    Ok(())
}
