//! `subroot initrd extract`: every entry of the initrd into a host directory, through the
//! safe host-directory writer (`subroot_formats::hostdir::extract`) over the initrd read as
//! a tree (`CpioTree`: the kernel's semantics, hostile names refused before anything is
//! written). Unprivileged users get a summary of what could not be restored.

use super::open_input;
use crate::cli::ExtractArgs;
use crate::Ctx;
use anyhow::{Context, Result};
use subroot_formats::cpio::CpioTree;
use subroot_formats::hostdir::{extract, ExtractOptions};

pub fn run(args: &ExtractArgs, ctx: &Ctx) -> Result<()> {
    let input = open_input(&args.input, ctx)?;
    let dest = &args.directory;
    std::fs::create_dir_all(dest)
        .with_context(|| format!("cannot create the directory {}", dest.display()))?;
    let tree = CpioTree::new(input.dev);
    let sum = extract(&tree, b"", dest, &ExtractOptions::default()).with_context(|| {
        format!(
            "cannot extract the initrd {} into {}",
            input.name,
            dest.display()
        )
    })?;
    ctx.note(format_args!(
        "{}: extracted {} entries ({} bytes of file data) into {}",
        input.name,
        sum.entries,
        sum.bytes,
        dest.display()
    ));
    if let Some(line) = sum.one_line() {
        eprintln!("subroot: {line}");
    }
    for p in &sum.first_problems {
        if ctx.verbose > 0 {
            eprintln!("subroot:   {p}");
        }
    }
    Ok(())
}
