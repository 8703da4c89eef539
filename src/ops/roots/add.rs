//! `subroot roots add IMAGE NAME --from ROOT`: a new root as a clone of another, made in
//! process over a copy-on-write overlay ([`super::image::write_with`]). The source root is
//! walked by subroot's own reader over the unchanged input; in the new root every
//! directory, symlink, device, fifo and socket is made anew with the same metadata (owner,
//! mode, ns times, xattrs, flags), and every regular file gets a new name for the *same*
//! inode (a hard link: no data is copied, so the cost is metadata only) — except under the
//! copied directories (`--copied`, default
//! [`crate::cli::roots::DEFAULT_COPIED`]) and with `--copy`, where
//! the file is copied into a new inode. Hard links inside the source stay hard links in
//! the new root.
//!
//! Linked files are shared between roots: writing into one in place changes it in every
//! root; replacing it by renaming a new file over it (what package managers and subroot's
//! own editing commands do) changes only the root it happens in.

use super::image::{write_with, Changes};
use super::survey::survey;
use super::{check_name, root_image};
use crate::cli::roots::AddArgs;
use crate::ops::copy_in::{fs_path, PartTree};
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use subroot_formats::tree::{relative, Entry, Kind};
use subroot_libext2fs::{Error as EditError, Ext2Fs};

pub fn run(args: &AddArgs, ctx: &Ctx) -> Result<()> {
    check_name(&args.name, "NAME")?;
    check_name(&args.from, "--from")?;
    let copied = if args.copy {
        vec![Vec::new()]
    } else {
        copied_dirs(&args.copied)?
    };
    let dest = args.out.destination(&args.image)?;
    let roots = survey(&args.image, args.format)?;
    if !roots.has(&args.from) {
        bail!(
            "--from {}: {} has no such root (its roots: {})",
            args.from,
            roots.image,
            roots.names()
        );
    }
    let img = root_image(&args.image, args.format, &roots, ctx)?;
    let what = &img.name;
    if img.tree.lookup(args.name.as_bytes()).is_ok() {
        bail!(
            "NAME {}: /{} already exists in {what} (the new root must be a new top-level name)",
            args.name,
            args.name
        );
    }
    ctx.note(format_args!(
        "adding root {} to {what}: a clone of {}",
        args.name, args.from
    ));
    let mut clone = |fs: &mut Ext2Fs| -> Result<()> {
        // Every directory written is new and filled in order: no need to look for room.
        fs.set_append_names(true);
        let counts = clone_root(&img.tree, fs, &args.from, &args.name, &copied)?;
        ctx.note(format_args!(
            "root {}: {} directories, {} files linked, {} copied ({} bytes), {} other entries",
            args.name, counts.dirs, counts.linked, counts.copied, counts.bytes, counts.other
        ));
        Ok(())
    };
    write_with(
        &img,
        &Changes::default(),
        Some(&mut clone),
        &dest,
        args.out.verify,
        ctx,
    )
}

/// `--copied DIRS` as relative paths inside a root ('' = none).
fn copied_dirs(list: &str) -> Result<Vec<Vec<u8>>> {
    list.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let p = fs_path(d).with_context(|| format!("--copied {list}"))?;
            if p.is_empty() {
                bail!("--copied {list}: `{d}` is the whole root (use --copy)");
            }
            Ok(p)
        })
        .collect()
}

/// What a clone made.
#[derive(Default)]
struct Counts {
    dirs: u64,
    linked: u64,
    copied: u64,
    bytes: u64,
    other: u64,
}

/// True when `rel` (a path inside the root) is `dir` or below it.
fn under(rel: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || rel.starts_with(dir) && (rel.len() == dir.len() || rel[dir.len()] == b'/')
}

/// Make `to` (a new top-level directory) a clone of the root `from` read from `tree` (the
/// input, unchanged), writing through `fs`; regular files under `copied` get their own
/// copy, the others a new link to the same inode.
fn clone_root(
    tree: &PartTree,
    fs: &mut Ext2Fs,
    from: &str,
    to: &str,
    copied: &[Vec<u8>],
) -> Result<Counts> {
    let mut counts = Counts::default();
    // Source inode -> its first name in the new root, for the entries made anew (a hard
    // link group of them stays one group).
    let mut made: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut failed: Option<(Vec<u8>, EditError)> = None;
    let root = from.as_bytes();
    let walked = tree.walk_inodes(root, &mut |e, ino| {
        let rel = relative(&e.path, root);
        let mut path = to.as_bytes().to_vec();
        if !rel.is_empty() {
            path.push(b'/');
            path.extend_from_slice(rel);
        }
        let copy = e.kind == Kind::File && copied.iter().any(|d| under(rel, d));
        let done = put(tree, fs, e, ino, &path, copy, &mut made, &mut counts);
        done.map_err(|err| {
            failed = Some((path, err));
            subroot_formats::Error::InvalidArgument("the edit failed".into())
        })
    });
    if let Some((path, err)) = failed {
        return Err(anyhow::Error::new(err)
            .context(format!("cannot make /{}", String::from_utf8_lossy(&path))));
    }
    walked.with_context(|| format!("cannot read the root {from}"))?;
    Ok(counts)
}

/// Put one entry of the source root at `path` in the new root.
#[allow(clippy::too_many_arguments)]
fn put(
    tree: &PartTree,
    fs: &mut Ext2Fs,
    e: &Entry,
    ino: u32,
    path: &[u8],
    copy: bool,
    made: &mut HashMap<u32, Vec<u8>>,
    counts: &mut Counts,
) -> Result<(), EditError> {
    if e.kind == Kind::File && !copy {
        counts.linked += 1;
        return fs.link_inode(ino, path);
    }
    if e.hardlink_id.is_some() {
        if let Some(first) = made.get(&ino) {
            return fs.link(first, path);
        }
    }
    let mut entry = e.clone();
    entry.path = path.to_vec();
    match e.kind {
        Kind::File => {
            let mut content = tree.fs().open_file(ino)?.named(&e.path);
            fs.create(&entry, Some(&mut content))?;
            counts.copied += 1;
            counts.bytes += e.size;
        }
        Kind::Dir => {
            fs.create(&entry, None)?;
            counts.dirs += 1;
        }
        _ => {
            fs.create(&entry, None)?;
            counts.other += 1;
        }
    }
    if e.hardlink_id.is_some() {
        made.insert(ino, path.to_vec());
    }
    Ok(())
}
