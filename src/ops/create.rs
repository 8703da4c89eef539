//! `subroot create`: a new empty image, optionally with an empty MBR or GPT partition
//! table (the note's `qemu-img create`, plus `sfdisk`, as one rootless command).
//!
//! The table is written onto a copy-on-write overlay over a zero device and streamed into
//! the output, so the cost is the same for a 1 GiB and a 1 TiB disk.

use super::write::{write_image, OutputSpec};
use crate::cli::{CreateArgs, TableArg};
use crate::size::human;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use subroot_formats::block::{BlockDevice, Overlay, Splice, Zeros};
use subroot_formats::ext::writer::{build, BuildOptions, BuiltFs, Identity, Populate};
use subroot_formats::table::{write_table, PartSpec, TableKind};
use subroot_formats::tools::E2fsprogs;
use subroot_formats::tree::{Entry, Kind, Metadata, Timestamp, TreeSource, Visitor};

pub fn run(args: &CreateArgs, ctx: &Ctx) -> Result<()> {
    let spec = OutputSpec {
        path: &args.output,
        format: args.output_format,
        qcow2: &args.qcow2,
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
                bail!("--part `{p}`: from= needs fs= (ext2, ext3 or ext4)");
            }
            if let Some(fs) = &spec.fs {
                if !matches!(fs.as_str(), "ext2" | "ext3" | "ext4") {
                    bail!("--part `{p}`: fs={fs} is not supported (ext2, ext3 or ext4)");
                }
            }
            Ok(spec)
        })
        .collect::<Result<Vec<_>>>()?;
    let dev = Overlay::new(Zeros(args.size));
    let mut summary = String::new();
    let mut filled: Vec<(u64, BuiltFs)> = Vec::new();
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
                let built =
                    populate(fs, ps.from.as_deref(), part.size, ctx).with_context(|| {
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
    for (start, built) in &filled {
        out = Box::new(Splice::new(out, *start, built.open()?)?);
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

/// Build an `fs` filesystem of `size` bytes from `from` (a tree as `mkfs --from` takes),
/// or empty.
fn populate(fs: &str, from: Option<&str>, size: u64, ctx: &Ctx) -> Result<BuiltFs> {
    let tools = E2fsprogs::find(None)?;
    let opts = BuildOptions {
        size,
        identity: Identity::fresh(fs)?,
        tools: &tools,
        temp_dir: None,
        progress: None,
        populate: Populate::Auto,
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
