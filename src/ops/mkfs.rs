//! `subroot mkfs`: rebuild one partition's filesystem (ext2/3/4 or vfat) from a tree (a
//! host directory, a tar archive — plain or compressed — or another image's filesystem),
//! keeping its identity unless told otherwise, and write a new image in which every byte
//! outside the partition is the input's. The rebuild-and-splice steps are shared with
//! `copy-in` and `rm`.

use crate::cli::{ExtTypeArg, MkfsArgs};
use crate::edit::deliver::{deliver, Destination, Edit};
use crate::exit::InputError;
use crate::open::fstree::print_warnings;
use crate::open::select::{select, Selected, Which};
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::Path;
use subroot_e2fs::tools::E2fsprogs;
use subroot_e2fs::writer::{build, parse_uuid, BuildOptions, BuiltFs, Identity, Populate};
use subroot_formats::block::RawFile;
use subroot_formats::block::{changed_ranges, BlockDevice, Splice};
use subroot_formats::ext::{ExtFs, ExtTree};
use subroot_formats::fat::{FatFormatOptions, FatIdentity, FatTree};
use subroot_formats::hostdir::HostDir;
use subroot_formats::tar::{probe, TarTree};
use subroot_formats::tree::TreeSource;

pub fn run(args: &MkfsArgs, ctx: &Ctx) -> Result<()> {
    let out = args.out.destination(&args.image)?;
    let sel = select(&args.image, &args.part, ctx)?;
    let existing = if sel.is_ext() {
        Some("ext")
    } else if sel.is_vfat() {
        Some("vfat")
    } else {
        None
    };
    let fat = match args.fs_type {
        Some(ExtTypeArg::Vfat) => true,
        Some(_) => false,
        None => existing == Some("vfat"),
    };
    let changes_family = existing.is_some_and(|e| (e == "vfat") != fat);
    if changes_family && !args.new_identity {
        bail!("--type changes the filesystem's identity: add --new-identity");
    }
    if fat {
        return mkfs_fat(args, &sel, &out, ctx);
    }
    let len = sel.device.len();
    let tools = crate::e2fsprogs::find(ctx.mke2fs.as_deref())?;
    let mut identity = if args.new_identity || !sel.is_ext() {
        let kind = match args.fs_type.unwrap_or(ExtTypeArg::Ext4) {
            ExtTypeArg::Ext2 => "ext2",
            ExtTypeArg::Ext3 => "ext3",
            _ => "ext4",
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
    let built = with_tree(&args.from, ctx, &mut |tree| {
        // Announced only once every refusal has had its chance (the source opened), so a
        // refused run prints nothing but its error.
        ctx.note(format_args!("rebuilding {}", sel.describe()));
        rebuild_ext(tree, len, &identity, &tools, ctx)
    })
    .context("cannot build the new filesystem")?;
    splice_out(&sel, built.open()?, &out, ctx)
}

/// `mkfs --type vfat` (or a vfat partition rebuilt like itself).
fn mkfs_fat(args: &MkfsArgs, sel: &Selected, out: &Destination, ctx: &Ctx) -> Result<()> {
    let mut opts = if sel.is_vfat() && !args.new_identity {
        FatIdentity::read(&*sel.device)
            .with_context(|| format!("cannot read the FAT identity of {}", sel.describe()))?
            .options()
    } else {
        FatFormatOptions {
            esp: sel.is_esp(),
            ..Default::default()
        }
    };
    if let Some(u) = &args.uuid {
        opts.volume_id = Some(parse_volume_id(u)?);
    }
    if let Some(l) = &args.label {
        subroot_formats::fat::encode_label(l).context("--label")?;
        opts.label = Some(l.clone());
    }
    let (scratch, stats) = with_tree(&args.from, ctx, &mut |tree| {
        ctx.note(format_args!("rebuilding {} as vfat", sel.describe()));
        crate::edit::edit_fat::build(tree, sel.device.len(), &opts, out.path())
    })
    .context("cannot build the new filesystem")?;
    ctx.note(format_args!(
        "built the filesystem: {} files, {} directories, {} bytes",
        stats.files, stats.dirs, stats.bytes
    ));
    splice_out(sel, scratch.dev, out, ctx)
}

/// A FAT volume id as `XXXX-XXXX` (or 8 hex digits).
pub fn parse_volume_id(s: &str) -> Result<u32> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if hex.len() != 8 {
        bail!("--uuid: a FAT volume id is 8 hex digits like 1234-ABCD, got `{s}`");
    }
    u32::from_str_radix(&hex, 16).with_context(|| format!("--uuid: `{s}` is not hexadecimal"))
}

/// Build an ext filesystem of `len` bytes from `tree` with `identity`, reporting progress.
pub fn rebuild_ext(
    tree: &dyn TreeSource,
    len: u64,
    identity: &Identity,
    tools: &E2fsprogs,
    ctx: &Ctx,
) -> Result<BuiltFs> {
    let progress = |s: &str| {
        if ctx.verbose > 0 {
            eprintln!("subroot: {s}");
        }
    };
    let scratch = crate::output::scratch_root()?;
    let opts = BuildOptions {
        size: len,
        identity: identity.clone(),
        tools,
        temp_dir: Some(&scratch),
        progress: Some(&progress),
        populate: crate::e2fsprogs::populate()?,
    };
    let built = build(tree, b"", &opts)?;
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
    Ok(built)
}

/// Write the image of `sel` with its filesystem replaced by `fs_dev` (every other byte the
/// input's) to `dest`. The changed ranges are found by comparing the new filesystem with
/// the old one, so an overlay or an in-place update holds only the blocks that differ.
pub fn splice_out<R: BlockDevice>(
    sel: &Selected,
    fs_dev: R,
    dest: &Destination,
    ctx: &Ctx,
) -> Result<()> {
    let start = sel.partition.as_ref().map_or(0, |p| p.start);
    let len = fs_dev.len();
    let spliced = Splice::new(sel.disk.clone(), start, fs_dev)?;
    let changed = match dest {
        // A new image is written whole: no need to compare.
        Destination::NewImage { .. } => Vec::new(),
        _ => changed_ranges(&*sel.disk, &spliced, start, len)
            .with_context(|| format!("cannot compare the new {} with the old", sel.describe()))?,
    };
    let edit = Edit {
        input: &sel.image,
        input_format: sel.format,
        edited: &spliced,
        changed,
    };
    deliver(&edit, dest, ctx)
}

/// Open the tree `from` names — a host directory, a tar archive (a regular file whose
/// content, decompressed if need be, starts with a tar header) or `IMAGE[:N]` holding an
/// ext or FAT filesystem — and hand it to `f`.
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
    if p.is_file() {
        let dev = RawFile::open(p).with_context(|| format!("cannot open {from}"))?;
        if probe(&dev)
            .with_context(|| format!("cannot read {from}"))?
            .is_some()
        {
            let t = TarTree::new(dev);
            return f(&t).with_context(|| format!("reading the tar archive {from}"));
        }
    }
    let (img, part) = match from.rsplit_once(':') {
        Some((i, n)) if !p.exists() && n.parse::<u32>().is_ok() => (i, n.parse().ok()),
        _ => (from, None),
    };
    let which = Which {
        partition: part.map(crate::cli::PartSpec::Number),
        format: None,
    };
    let sel = select(Path::new(img), which, ctx)?;
    if sel.is_vfat() {
        let t = FatTree::open(sel.device.clone())
            .with_context(|| format!("cannot read the filesystem of {from}"))?;
        return f(&t);
    }
    if !sel.is_ext() {
        return Err(InputError::UnsupportedFilesystem(format!(
            "{from}: {} is not an ext or FAT filesystem",
            sel.describe()
        ))
        .into());
    }
    let fs = ExtFs::open(sel.device.clone())
        .with_context(|| format!("cannot read the filesystem of {from}"))?;
    let tree = ExtTree::new(fs);
    let r = f(&tree);
    print_warnings(from, tree.fs().take_warnings());
    r
}
