//! `subroot create`: a new empty image, optionally with an empty MBR or GPT partition
//! table (the note's `qemu-img create`, plus `sfdisk`, as one rootless command).
//!
//! The table is written onto a copy-on-write overlay over a zero device and streamed into
//! the output, so the cost is the same for a 1 GiB and a 1 TiB disk.

use crate::cli::{CreateArgs, TableArg};
use crate::edit::write_image::{write_image, OutputSpec};
use crate::size::human;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::Path;
use subroot_e2fs::writer::{build, BuildOptions, BuiltFs, Identity};
use subroot_formats::block::{BlockDevice, Overlay, Splice, Zeros};
use subroot_formats::fat::{FatFormatOptions, FatType};
use subroot_formats::table::{write_table, PartSpec, Partition, TableKind};
use subroot_formats::tree::{Entry, Kind, Metadata, Timestamp, TreeSource, Visitor};

pub fn run(args: &CreateArgs, ctx: &Ctx) -> Result<()> {
    let qcow2 = (&args.qcow2).into();
    let spec = OutputSpec {
        path: &args.output,
        format: args.output_format.into(),
        qcow2: &qcow2,
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
            if spec.from.is_some() && spec.fs.is_none() {
                bail!("--part `{p}`: from= needs fs= ({FS_NAMES})");
            }
            if let Some(fs) = &spec.fs {
                if !matches!(
                    fs.as_str(),
                    "ext2" | "ext3" | "ext4" | "vfat" | "fat" | "fat12" | "fat16" | "fat32"
                ) {
                    bail!("--part `{p}`: fs={fs} is not supported ({FS_NAMES})");
                }
            }
            Ok(spec)
        })
        .collect::<Result<Vec<_>>>()?;
    let dev = Overlay::new(Zeros(args.size));
    let mut summary = String::new();
    let mut filled: Vec<(u64, Filled)> = Vec::new();
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
        for (ps, part) in parts.iter().zip(&table.partitions) {
            if let Some(fs) = &ps.fs {
                let built = populate(fs, ps.from.as_deref(), part, &args.output, ctx)
                    .with_context(|| {
                        format!(
                            "cannot make the {fs} filesystem of partition {}",
                            part.number
                        )
                    })?;
                filled.push((part.start, built));
            }
        }
    } else if parts.iter().any(|p| p.fs.is_some()) {
        bail!("fs= needs a partition table (--table mbr|gpt)");
    }
    let mut out: Box<dyn BlockDevice> = Box::new(dev);
    // The built filesystems' temporary files live until the image is written.
    let (mut keep_ext, mut keep_fat) = (Vec::new(), Vec::new());
    for (start, built) in filled {
        let dev: Box<dyn BlockDevice> = match built {
            Filled::Ext(b) => {
                let d = b.open()?;
                keep_ext.push(b);
                Box::new(d)
            }
            Filled::Fat(s) => {
                keep_fat.push(s.file);
                Box::new(s.dev)
            }
        };
        out = Box::new(Splice::new(out, start, dev)?);
    }
    write_image(&*out, &spec, "creating")?;
    ctx.note(format_args!(
        "created {} ({}, {}{summary})",
        args.output.display(),
        spec.format_name(),
        human(args.size)
    ));
    Ok(())
}

/// The filesystem types `fs=` accepts, for messages.
const FS_NAMES: &str = "ext2, ext3, ext4, vfat, fat12, fat16 or fat32";

/// A filesystem made for a partition.
enum Filled {
    Ext(BuiltFs),
    Fat(crate::edit::edit_fat::Scratch),
}

/// Build an `fs` filesystem for `part` from `from` (a tree as `mkfs --from` takes), or
/// empty. FAT filesystems are made in a scratch file beside `out`; an ESP is FAT32.
fn populate(
    fs: &str,
    from: Option<&str>,
    part: &Partition,
    out: &Path,
    ctx: &Ctx,
) -> Result<Filled> {
    if !fs.starts_with("ext") {
        let opts = FatFormatOptions {
            fat_type: match fs {
                "fat12" => Some(FatType::Fat12),
                "fat16" => Some(FatType::Fat16),
                "fat32" => Some(FatType::Fat32),
                _ => None,
            },
            esp: crate::open::select::is_esp(part),
            ..Default::default()
        };
        let (s, _) = match from {
            Some(f) => super::mkfs::with_tree(f, ctx, &mut |t| {
                crate::edit::edit_fat::build(t, part.size, &opts, out)
            })?,
            None => crate::edit::edit_fat::build(&EmptyTree, part.size, &opts, out)?,
        };
        return Ok(Filled::Fat(s));
    }
    Ok(Filled::Ext(populate_ext(fs, from, part.size, ctx)?))
}

/// Build an ext filesystem of `size` bytes from `from`, or empty.
fn populate_ext(fs: &str, from: Option<&str>, size: u64, ctx: &Ctx) -> Result<BuiltFs> {
    let tools = crate::e2fsprogs::find(ctx.mke2fs.as_deref())?;
    let scratch = crate::output::scratch_root()?;
    let opts = BuildOptions {
        size,
        identity: Identity::fresh(fs)?,
        tools: &tools,
        temp_dir: Some(&scratch),
        progress: None,
        populate: crate::e2fsprogs::populate()?,
    };
    match from {
        Some(f) => {
            super::mkfs::with_tree(f, ctx, &mut |t| build(t, b"", &opts).map_err(Into::into))
        }
        None => Ok(build(&EmptyTree, b"", &opts)?),
    }
}

/// A tree with only its root directory (root-owned, 0755, created now).
struct EmptyTree;

impl TreeSource for EmptyTree {
    fn walk(&self, _root: &[u8], visit: &mut Visitor<'_>) -> subroot_formats::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let t = Timestamp {
            sec: now.as_secs() as i64,
            nsec: now.subsec_nanos(),
        };
        let e = Entry {
            path: Vec::new(),
            kind: Kind::Dir,
            meta: Metadata {
                perm: 0o755,
                atime: t,
                mtime: t,
                ctime: t,
                crtime: Some(t),
                ..Default::default()
            },
            size: 0,
            rdev: (0, 0),
            link_target: None,
            hardlink_id: None,
        };
        visit(&e, None)
    }
}
