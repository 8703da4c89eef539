//! The plan of a resize, computed from the input alone before anything is written: which
//! partition and filesystem grow (or shrink), the old and new sizes of the disk, the
//! partition and the filesystem, and the engine. The same value is printed for
//! `--dry-run`/`--json` and carried out, so what is shown is what happens. Everything
//! `subroot resize` refuses (a partition that is not last, LVM, FAT, an unknown
//! filesystem, a size that shrinks, an MBR beyond 2 TiB) is refused here.

use super::request::{Goal, ResizeRequest};
use crate::edit::engine::Engine;
use crate::json::Named;
use crate::size::human;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Slice};
use subroot_formats::ext::ExtFs;
use subroot_formats::image::ImageFormat;
use subroot_formats::sniff::sniff;
use subroot_formats::table::{read_layout, types, DiskLayout, PartKind, TableKind, MBR_MAX_END};

/// Old and new size in bytes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    pub old: u64,
    pub new: u64,
}

/// The partition that changes.
#[derive(Debug, Clone, Serialize)]
pub struct PartPlan {
    pub number: u32,
    /// Its first byte (unchanged).
    pub start: u64,
    #[serde(flatten)]
    pub size: Sizes,
}

/// What kind of filesystem is resized, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    Ext,
    Swap,
}

/// The filesystem that changes.
#[derive(Debug, Clone, Serialize)]
pub struct FsPlan {
    /// As `subroot info` names it: "ext4", "swap".
    #[serde(rename = "type")]
    pub fs_type: String,
    #[serde(skip)]
    pub kind: FsKind,
    /// Its block size (ext) or page size (swap).
    pub block_size: u64,
    /// In bytes (blocks × block size).
    #[serde(flatten)]
    pub size: Sizes,
}

/// A resize, decided.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    #[serde(flatten)]
    pub image: Named,
    /// "raw" | "qcow2".
    pub format: &'static str,
    /// "mbr" | "gpt" | null (a filesystem on the whole disk).
    pub table: Option<&'static str>,
    /// The disk's virtual size.
    pub container: Sizes,
    /// null without a partition table.
    pub partition: Option<PartPlan>,
    pub filesystem: FsPlan,
    /// "edit" | "rebuild" (ext), or null (swap: its header is rewritten).
    pub engine: Option<Engine>,
    pub engine_reason: Option<String>,
    /// Things worth knowing (a limit that left space unused, ...).
    pub notes: Vec<String>,
    /// "grow" | "shrink".
    pub direction: &'static str,
}

impl Plan {
    /// The plan for people.
    pub fn describe(&self) -> String {
        let c = &self.container;
        let mut s = format!(
            "resize {} ({}): {}\n  disk: {} -> {}\n",
            self.image,
            self.format,
            self.direction,
            human(c.old),
            human(c.new)
        );
        if let Some(p) = &self.partition {
            s += &format!(
                "  partition {} ({}, at byte {}): {} -> {}\n",
                p.number,
                self.table.unwrap_or("?"),
                p.start,
                human(p.size.old),
                human(p.size.new)
            );
        }
        let f = &self.filesystem;
        s += &format!(
            "  filesystem {}: {} blocks of {} -> {} ({} -> {})\n",
            f.fs_type,
            f.size.old / f.block_size,
            f.block_size,
            f.size.new / f.block_size,
            human(f.size.old),
            human(f.size.new)
        );
        match (&self.engine, &self.engine_reason) {
            (Some(e), Some(why)) => s += &format!("  engine: {} ({why})\n", e.name()),
            (Some(e), None) => s += &format!("  engine: {}\n", e.name()),
            (None, _) => {
                s += "  engine: none (the swap header is rewritten with its UUID and label)\n"
            }
        }
        for n in &self.notes {
            s += &format!("  note: {n}\n");
        }
        s
    }
}

/// The input as opened for planning.
pub struct Input {
    pub disk: Arc<dyn BlockDevice>,
    pub format: ImageFormat,
    /// The filesystem's device (a partition slice, or the whole disk).
    pub fs_dev: Arc<dyn BlockDevice>,
}

/// One MiB: partitions and shrunk disks end on it.
const MIB: u64 = 1 << 20;

/// Plan `req` on the image `disk`. For --shrink-to-fit, `min_fs_bytes` gives the
/// filesystem's smallest size (resize2fs's estimate, found on a work copy by the caller,
/// which calls this twice: once to learn what to copy, once with the estimate).
pub fn plan(req: &ResizeRequest, input: &Input, min_fs_bytes: Option<u64>) -> Result<Plan> {
    let name = req.image.display().to_string();
    let disk = &input.disk;
    let old_len = disk.len();
    let layout = read_layout(&**disk)
        .with_context(|| format!("cannot read the partition table of {name}"))?;
    let mut notes = Vec::new();
    // The partition (None: the filesystem spans the disk) and the table.
    let (table, part, gpt_tail) = match &layout {
        DiskLayout::Whole { .. } => {
            if let Some(n) = req.partition.filter(|&n| n != 0) {
                bail!("{name} has no partition table, so it has no partition {n}");
            }
            (None, None, 0)
        }
        DiskLayout::Table(t) => {
            let parts: Vec<_> = t
                .partitions
                .iter()
                .filter(|p| p.kind != PartKind::Extended)
                .collect();
            let last = parts
                .iter()
                .max_by_key(|p| p.end())
                .with_context(|| format!("{name} has a partition table without partitions"))?;
            let p = match req.partition {
                None => *last,
                Some(n) => {
                    let Some(p) = t.partitions.iter().find(|p| p.number == n) else {
                        let have: Vec<String> =
                            t.partitions.iter().map(|p| p.number.to_string()).collect();
                        bail!("{name} has no partition {n} (it has: {})", have.join(", "));
                    };
                    if let Some(after) = parts.iter().find(|q| q.number != n && q.start >= p.end())
                    {
                        bail!(
                            "partition {n} of {name} is not the last partition (partition {} \
                             lies after it, at byte {}); only the last partition can grow into \
                             the new space",
                            after.number,
                            after.start
                        );
                    }
                    p
                }
            };
            if p.kind == PartKind::Extended {
                bail!(
                    "partition {} of {name} is the extended partition that holds the logical \
                     ones; subroot resizes primary partitions only",
                    p.number
                );
            }
            if p.kind == PartKind::Logical {
                bail!(
                    "partition {} of {name} is a logical partition of an MBR table; subroot \
                     resizes primary partitions only",
                    p.number
                );
            }
            if types::is_lvm(&p.type_code) {
                bail!(
                    "partition {} of {name} is an LVM physical volume; subroot does not resize \
                     LVM (grow the disk with qemu-img resize, then pvresize and lvextend inside \
                     the guest)",
                    p.number
                );
            }
            let ss = t.sector_size;
            let tail = match (t.kind, t.last_lba) {
                // The backup entry array and header after the last usable sector.
                (TableKind::Gpt, Some(last)) => (old_len / ss).saturating_sub(last + 1) * ss,
                _ => 0,
            };
            (Some(t.kind), Some(p.clone()), tail)
        }
    };
    let fs_info =
        sniff(&*input.fs_dev).with_context(|| format!("cannot read the filesystem of {name}"))?;
    let where_ = match &part {
        Some(p) => format!("partition {} of {name}", p.number),
        None => name.clone(),
    };
    let Some(fs_info) = fs_info else {
        bail!("{where_} holds no filesystem subroot recognises; it resizes ext2/3/4 and swap");
    };
    let (kind, block_size) = match fs_info.kind.as_str() {
        k if k.starts_with("ext") => {
            let fs = ExtFs::open(input.fs_dev.clone())
                .with_context(|| format!("cannot read the ext filesystem of {where_}"))?;
            (FsKind::Ext, u64::from(fs.superblock().block_size))
        }
        "swap" => match subroot_formats::swap::page_size(&*input.fs_dev)? {
            Some(page) => (FsKind::Swap, page),
            None => bail!("{where_} holds an old (v0) swap area; re-make it with mkswap"),
        },
        "vfat" => bail!(
            "{where_} holds a FAT filesystem, which subroot does not resize (it resizes ext2/3/4 \
             and swap)"
        ),
        "LVM2_member" => bail!(
            "{where_} is an LVM physical volume; subroot does not resize LVM (grow the disk \
             with qemu-img resize, then pvresize and lvextend inside the guest)"
        ),
        other => bail!(
            "{where_} holds a {other} filesystem, which subroot cannot resize (it resizes \
             ext2/3/4 and swap)"
        ),
    };
    let old_fs = match kind {
        FsKind::Ext => {
            let fs = ExtFs::open(input.fs_dev.clone())?;
            fs.superblock().blocks_count * block_size
        }
        FsKind::Swap => input.fs_dev.len() / block_size * block_size,
    };
    let (start, old_part) = part.as_ref().map_or((0, old_len), |p| (p.start, p.size));
    let (new_len, new_part) = match req.goal {
        Goal::GrowTo(_) | Goal::GrowBy(_) => {
            let new_len = match req.goal {
                Goal::GrowBy(d) => old_len
                    .checked_add(d)
                    .context("--size +SIZE is too large")?,
                Goal::GrowTo(n) => n,
                Goal::ShrinkToFit { .. } => unreachable!("matched above"),
            };
            if new_len % 512 != 0 {
                bail!("--size: {new_len} bytes is not a whole number of 512-byte sectors");
            }
            if new_len < old_len {
                bail!(
                    "{name} is {} ({old_len} bytes); --size {} would shrink it: use \
                     --shrink-to-fit to make it smaller",
                    human(old_len),
                    human(new_len)
                );
            }
            // Where the partition can end at most.
            let mut limit = new_len - gpt_tail;
            if table == Some(TableKind::Mbr) && limit > MBR_MAX_END {
                limit = MBR_MAX_END;
                notes.push(format!(
                    "an MBR partition cannot end beyond 2 TiB: partition {} ends there and the \
                     last {} of the disk stay unused (convert the table to GPT to use them)",
                    part.as_ref().map_or(0, |p| p.number),
                    human(new_len - MBR_MAX_END)
                ));
            }
            let max_part = limit.saturating_sub(start);
            let new_part = match req.part_size {
                // Ending on a MiB boundary, as partitioning tools align, when that still
                // grows it.
                None if part.is_some() => {
                    let aligned = ((start + max_part) / MIB * MIB).saturating_sub(start);
                    if aligned >= old_part {
                        aligned
                    } else {
                        max_part
                    }
                }
                None => max_part,
                Some(s) if part.is_none() => bail!(
                    "--part-size {}: {name} has no partition table (the filesystem spans the \
                     disk)",
                    human(s)
                ),
                Some(s) if s < old_part => bail!(
                    "--part-size {} is smaller than partition's present size {}; partitions \
                     only grow (see --shrink-to-fit)",
                    human(s),
                    human(old_part)
                ),
                Some(s) if s > max_part => bail!(
                    "--part-size {} does not fit: the partition can grow to {} at most",
                    human(s),
                    human(max_part)
                ),
                Some(s) if s % 512 != 0 => bail!("--part-size must be whole 512-byte sectors"),
                Some(s) => s,
            };
            (new_len, new_part)
        }
        Goal::ShrinkToFit { margin } => {
            if kind != FsKind::Ext {
                bail!("{where_} holds swap, which has no used size to shrink to; --shrink-to-fit shrinks ext2/3/4");
            }
            let new_part = shrunk_fs(old_fs, block_size, min_fs_bytes, margin)
                .next_multiple_of(MIB)
                .min(old_part);
            let new_len = if part.is_some() {
                (start + new_part + gpt_tail)
                    .next_multiple_of(MIB)
                    .min(old_len)
            } else {
                new_part
            };
            (new_len, new_part)
        }
    };
    let new_fs = match req.goal {
        Goal::ShrinkToFit { margin } => shrunk_fs(old_fs, block_size, min_fs_bytes, margin),
        _ => new_part / block_size * block_size,
    };
    if new_len == old_len
        && new_part == old_part
        && matches!(req.goal, Goal::GrowTo(_) | Goal::GrowBy(_))
    {
        bail!("{name} is already {} ({old_len} bytes)", human(old_len));
    }
    let (engine, engine_reason) = match (kind, req.goal) {
        (FsKind::Swap, _) => (None, None),
        (FsKind::Ext, Goal::ShrinkToFit { .. }) => {
            if req.engine == Some(Engine::Edit) {
                bail!(
                    "--engine edit only grows; --shrink-to-fit runs resize2fs (--engine rebuild)"
                );
            }
            (
                Some(Engine::Rebuild),
                Some("shrinking: resize2fs on a work copy of the filesystem".to_string()),
            )
        }
        (FsKind::Ext, _) => {
            let choice = crate::edit::engine::choose(req.engine, &input.fs_dev, &where_)?;
            (Some(choice.engine), choice.reason)
        }
    };
    let direction = match req.goal {
        Goal::ShrinkToFit { .. } => "shrink",
        _ => "grow",
    };
    Ok(Plan {
        image: Named::new("image", req.image.as_os_str().as_bytes()),
        format: input.format.name(),
        table: table.map(|t| t.name()),
        container: Sizes {
            old: old_len,
            new: new_len,
        },
        partition: part.as_ref().map(|p| PartPlan {
            number: p.number,
            start: p.start,
            size: Sizes {
                old: old_part,
                new: new_part,
            },
        }),
        filesystem: FsPlan {
            fs_type: fs_info.kind.clone(),
            kind,
            block_size,
            size: Sizes {
                old: old_fs,
                new: new_fs,
            },
        },
        engine,
        engine_reason,
        notes,
        direction,
    })
}

/// The shrunk filesystem's size: resize2fs's minimum plus the margin, in whole blocks, no
/// larger than it is (unchanged while the minimum is not known yet).
fn shrunk_fs(old_fs: u64, block_size: u64, min: Option<u64>, margin: u64) -> u64 {
    min.map_or(old_fs, |m| {
        m.saturating_add(margin)
            .next_multiple_of(block_size)
            .min(old_fs)
    })
}

/// Open `req.image` and the device of the filesystem the plan would pick (the last
/// partition, or -p N, or the whole disk).
pub fn open(req: &ResizeRequest) -> Result<Input> {
    let img = crate::open::open_image(&req.image, req.format)?;
    let format = img.format();
    if !matches!(format, ImageFormat::Raw | ImageFormat::Qcow2) {
        bail!(
            "{} is a {} image; subroot resizes raw and qcow2 images (convert it first)",
            req.image.display(),
            format.name()
        );
    }
    let disk: Arc<dyn BlockDevice> = Arc::new(img);
    let fs_dev: Arc<dyn BlockDevice> = match read_layout(&*disk)
        .with_context(|| format!("cannot read the partition table of {}", req.image.display()))?
    {
        DiskLayout::Whole { .. } => disk.clone(),
        DiskLayout::Table(t) => {
            let parts = t.partitions.iter().filter(|p| p.kind != PartKind::Extended);
            let p = match req.partition {
                Some(n) => t.partitions.iter().find(|p| p.number == n),
                None => parts.max_by_key(|p| p.end()),
            };
            match p {
                Some(p) => Arc::new(Slice::new(disk.clone(), p.start, p.size)?),
                // plan() says what is wrong.
                None => disk.clone(),
            }
        }
    };
    Ok(Input {
        disk,
        format,
        fs_dev,
    })
}
