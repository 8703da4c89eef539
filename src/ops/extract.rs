//! `subroot extract`: a filesystem (or a subtree) inside an image into a host directory,
//! through the safe host-directory writer (`subroot_formats::hostdir::extract`: every
//! operation relative to an open directory, no symlink ever followed, nothing written
//! outside the destination). As non-root, what cannot be restored (ownership, device
//! nodes, privileged xattrs) is skipped and reported in one summary line.

use crate::cli::read::ExtractArgs;
use crate::ops::fstree::{open, shown, tree_path};
use crate::Ctx;
use anyhow::{Context, Result};
use subroot_formats::hostdir::{extract, ExtractOptions};

/// Run `subroot extract`.
pub fn run(args: &ExtractArgs, ctx: &Ctx) -> Result<()> {
    let fs = open(&args.read, ctx)?;
    let root = tree_path(args.path.as_deref())?;
    // Fail before creating anything when the path does not exist.
    fs.tree
        .entry(&root)
        .with_context(|| format!("cannot extract {} from {}", shown(&root), fs.name))?;
    let dest = &args.dir;
    std::fs::create_dir_all(dest)
        .with_context(|| format!("cannot create the directory {}", dest.display()))?;
    let sum =
        extract(fs.tree.source(), &root, dest, &ExtractOptions::default()).with_context(|| {
            format!(
                "cannot extract {} from {} into {}",
                shown(&root),
                fs.name,
                dest.display()
            )
        })?;
    ctx.note(format_args!(
        "{}: extracted {} entries ({} bytes of file data) into {}",
        fs.name,
        sum.entries,
        sum.bytes,
        dest.display()
    ));
    // Said even with -q: leaving metadata out must never be silent.
    if let Some(line) = sum.one_line() {
        eprintln!("subroot: {line}");
    }
    if ctx.verbose > 0 {
        for p in &sum.first_problems {
            eprintln!("subroot:   {p}");
        }
    }
    fs.print_warnings();
    Ok(())
}
