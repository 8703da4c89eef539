//! `subroot mkfs`: rebuild one partition's ext filesystem from a tree (a host directory or
//! another image's filesystem), keeping its identity unless told otherwise, and write a
//! new image in which every byte outside the partition is the input's.

use super::select::select;
use super::write::{write_image, OutputSpec};
use crate::cli::{ExtTypeArg, ImageFormatArg, MkfsArgs, PartitionArgs};
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::Path;
use subroot_formats::block::{BlockDevice, Splice};
use subroot_formats::ext::writer::{build, parse_uuid, BuildOptions, Identity, Populate};
use subroot_formats::ext::{ExtFs, ExtTree};
use subroot_formats::hostdir::HostDir;
use subroot_formats::image::ImageFormat;
use subroot_formats::tools::E2fsprogs;
use subroot_formats::tree::TreeSource;

pub fn run(args: &MkfsArgs, ctx: &Ctx) -> Result<()> {
    let out_path = match (&args.output, args.in_place) {
        (Some(o), _) => o.clone(),
        (None, true) => args.image.clone(),
        (None, false) => bail!("give -o OUT or --in-place"),
    };
    let sel = select(&args.image, &args.part, ctx)?;
    let (start, len) = match &sel.partition {
        Some(p) => (p.start, p.size),
        None => (0, sel.disk.len()),
    };
    let tools = E2fsprogs::find(args.mke2fs.as_deref())?;
    let mut identity = if args.new_identity || !sel.is_ext() {
        let kind = match args.fs_type.unwrap_or(ExtTypeArg::Ext4) {
            ExtTypeArg::Ext2 => "ext2",
            ExtTypeArg::Ext3 => "ext3",
            ExtTypeArg::Ext4 => "ext4",
        };
        Identity::fresh(kind)?
    } else {
        if args.fs_type.is_some() {
            bail!("--type changes the filesystem's identity: add --new-identity");
        }
        let fs = ExtFs::open(sel.device.clone())
            .with_context(|| format!("cannot read the filesystem of {}", sel.describe()))?;
        Identity::like(&fs)?
    };
    if let Some(u) = &args.uuid {
        identity.uuid = Some(parse_uuid(u)?);
    }
    if let Some(l) = &args.label {
        if l.len() > 16 {
            bail!("--label: at most 16 bytes, got {}", l.len());
        }
        identity.label = Some(l.as_bytes().to_vec());
    }
    let progress = |s: &str| {
        if ctx.verbose > 0 {
            eprintln!("subroot: {s}");
        }
    };
    let opts = |tools| BuildOptions {
        size: len,
        identity: identity.clone(),
        tools,
        temp_dir: None,
        progress: Some(&progress),
        populate: Populate::Auto,
    };
    let built = with_tree(&args.from, ctx, &mut |tree| {
        // Announced only once every refusal has had its chance (the source opened), so a
        // refused run prints nothing but its error.
        ctx.note(format_args!("rebuilding {}", sel.describe()));
        build(tree, b"", &opts(&tools)).map_err(Into::into)
    })
    .context("cannot build the new filesystem")?;
    let r = built.report;
    ctx.note(format_args!(
        "built the filesystem ({}): {} entries, {} reconcile commands ({} xattrs, {} devices)",
        match r.populate {
            Populate::Tar => "mke2fs -d from a tar stream",
            _ => "mke2fs -d from a staging copy",
        },
        r.stage.entries,
        r.reconcile.commands,
        r.reconcile.xattrs_set,
        r.reconcile.devices
    ));
    let fs_dev = built.open()?;
    let spliced = Splice::new(sel.disk.clone(), start, fs_dev)?;
    let in_format = super::open_image(&args.image, args.part.format)?.format();
    let format = args.output_format.unwrap_or(match in_format {
        ImageFormat::Qcow2 => ImageFormatArg::Qcow2,
        _ => ImageFormatArg::Raw,
    });
    let spec = OutputSpec {
        path: &out_path,
        format,
        qcow2: &args.qcow2,
        force: args.force || args.in_place,
        quiet: ctx.quiet,
    };
    write_image(&spliced, &spec, "writing")?;
    ctx.note(format_args!("wrote {}", out_path.display()));
    Ok(())
}

/// Open the tree `from` names and hand it to `f`.
pub fn with_tree<T>(
    from: &str,
    ctx: &Ctx,
    f: &mut dyn FnMut(&dyn TreeSource) -> Result<T>,
) -> Result<T> {
    let p = Path::new(from);
    if p.is_dir() {
        let h = HostDir::open(p).with_context(|| format!("cannot open {from}"))?;
        return f(&h);
    }
    let (img, part) = match from.rsplit_once(':') {
        Some((i, n)) if !p.exists() && n.parse::<u32>().is_ok() => (i, n.parse().ok()),
        _ => (from, None),
    };
    let pa = PartitionArgs {
        partition: part,
        format: None,
    };
    let sel = select(Path::new(img), &pa, ctx)?;
    if !sel.is_ext() {
        bail!("{from}: {} is not an ext filesystem", sel.describe());
    }
    let fs = ExtFs::open(sel.device.clone())
        .with_context(|| format!("cannot read the filesystem of {from}"))?;
    f(&ExtTree::new(fs))
}
