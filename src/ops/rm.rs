//! `subroot rm`: remove files and directories from a partition's filesystem (like
//! guestfish `rm` / `rm-rf`): ext partitions are rebuilt without them (identity kept), FAT
//! partitions edited in a scratch copy; the result is spliced into a new image.

use super::copy_in::{edit_ext, fs_path, lookup_error};
use super::mkfs::splice_out;
use crate::cli::RmArgs;
use crate::open::select::select;
use crate::Ctx;
use anyhow::{bail, Result};
use subroot_formats::tree::{Entry, Kind};

fn show(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

pub fn run(args: &RmArgs, ctx: &Ctx) -> Result<()> {
    let paths = args
        .paths
        .iter()
        .map(|p| fs_path(p))
        .collect::<Result<Vec<_>>>()?;
    if paths.iter().any(|p| p.is_empty()) {
        bail!("refusing to remove the root directory `/`");
    }
    let out = args.out.destination(&args.image)?;
    let sel = select(&args.image, &args.part, ctx)?;
    let recursive = args.recursive;
    let check = |entry: &dyn Fn(&[u8]) -> Result<Entry>,
                 children: &dyn Fn(&[u8]) -> Result<Vec<Entry>>|
     -> Result<()> {
        for p in &paths {
            let e = entry(p).map_err(|e| {
                lookup_error(
                    e,
                    format!(
                        "{}: no such file or directory in {}",
                        show(p),
                        sel.describe()
                    ),
                )
            })?;
            if e.kind == Kind::Dir && !recursive && !children(p)?.is_empty() {
                bail!("{} is a directory that is not empty (use -r)", show(p));
            }
        }
        Ok(())
    };
    if sel.is_vfat() {
        let tree = crate::edit::edit_fat::open_tree(&sel)?;
        check(&|p| tree.entry(p).map_err(Into::into), &|p| {
            tree.children(p).map_err(Into::into)
        })?;
        drop(tree);
        ctx.note(format_args!("removing from {}", sel.describe()));
        let scratch = crate::edit::edit_fat::rm(&sel, &paths, recursive, out.path())?;
        return splice_out(&sel, scratch.dev, &out, ctx);
    }
    edit_ext(
        &sel,
        args.engine.asked(),
        args.out.verify,
        ctx.mke2fs.as_deref(),
        Vec::new(),
        paths.clone(),
        &|tree| {
            check(&|p| tree.entry(p).map_err(Into::into), &|p| {
                tree.children(p).map_err(Into::into)
            })
        },
        &out,
        ctx,
    )
}
