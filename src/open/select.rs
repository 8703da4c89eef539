//! Choosing the filesystem a command works on: the partition given with `-p N` (`-p 0`: the
//! whole disk, whatever sector 0 holds); else the partition holding a Linux root
//! (`/etc/os-release` or `/usr/lib/os-release`, or the same under a root such as `/r0` of
//! an image `subroot relayout` made); else the only filesystem on the disk. The choice is reported on
//! stderr, so it is never a guess the user cannot see.

use super::survey::ImageSurvey;
use crate::cli::{InputFormatArg, PartSpec, PartitionArgs};
use crate::exit::InputError;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subroot_formats::block::BlockDevice;
use subroot_formats::ext::{ExtFs, OpenOptions};
use subroot_formats::image::ImageFormat;
use subroot_formats::sniff::{sniff, FsInfo};
use subroot_formats::table::{PartKind, Partition};

/// Which filesystem of an image to use, and how to open the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Which {
    /// `-p N` (0: the whole disk) or `-p VG/LV`; `None`: chosen as the module comment says.
    pub partition: Option<PartSpec>,
    /// `-f FMT`; `None`: detected.
    pub format: Option<InputFormatArg>,
}

impl From<&PartitionArgs> for Which {
    fn from(a: &PartitionArgs) -> Self {
        Which {
            partition: a.partition.clone(),
            format: a.format,
        }
    }
}

/// A filesystem chosen inside an image.
pub struct Selected {
    /// The image file named on the command line, and its container format.
    pub image: PathBuf,
    pub format: ImageFormat,
    /// The whole disk, for commands that write a new image around the filesystem.
    pub disk: Arc<dyn BlockDevice>,
    /// The filesystem's bytes: a partition slice, or the whole disk without a table.
    pub device: Arc<dyn BlockDevice>,
    /// The partition, or `None` for a filesystem on the whole disk or in a volume.
    pub partition: Option<Partition>,
    /// The LVM2 logical volume (`VG/LV`) holding the filesystem (only from
    /// [`select_for_reading`]).
    pub volume: Option<String>,
    /// What sniffing found there (`None` only when `-p` named a partition it could not
    /// recognise).
    pub fs: Option<FsInfo>,
}

impl Selected {
    /// "partition 2 (ext4, label=root)" or "the whole disk (ext4)".
    pub fn describe(&self) -> String {
        let fs = match &self.fs {
            Some(f) => match f.label.as_deref().filter(|l| !l.is_empty()) {
                Some(l) => format!("{}, label={l}", f.kind),
                None => f.kind.clone(),
            },
            None => "unrecognised content".into(),
        };
        match (&self.partition, &self.volume) {
            (_, Some(v)) => format!("logical volume {v} ({fs})"),
            (Some(p), None) => format!("partition {} ({fs})", p.number),
            (None, None) => format!("the whole disk ({fs})"),
        }
    }

    /// True when the chosen filesystem is ext2/3/4.
    pub fn is_ext(&self) -> bool {
        self.fs.as_ref().is_some_and(|f| f.kind.starts_with("ext"))
    }

    /// True when the chosen filesystem is FAT12/16/32.
    pub fn is_vfat(&self) -> bool {
        self.fs.as_ref().is_some_and(|f| f.kind == "vfat")
    }

    /// True when the chosen partition is an EFI System Partition (MBR 0xef or the GPT
    /// ESP type GUID).
    pub fn is_esp(&self) -> bool {
        self.partition.as_ref().is_some_and(is_esp)
    }
}

/// Pick the filesystem of `image` that `which` asks for (see the module comment), for a
/// command that may write it: LVM2 logical volumes are not chosen (a `-p VG/LV` is refused).
pub fn select(image: &Path, which: impl Into<Which>, ctx: &Ctx) -> Result<Selected> {
    choose(image, which.into(), ctx, false)
}

/// [`select`] for a command that only reads: LVM2 logical volumes are candidates too, and
/// `-p VG/LV` names one.
pub fn select_for_reading(image: &Path, which: impl Into<Which>, ctx: &Ctx) -> Result<Selected> {
    choose(image, which.into(), ctx, true)
}

fn choose(image: &Path, args: Which, ctx: &Ctx, volumes: bool) -> Result<Selected> {
    // `-p 0` and `-p VG/LV` need no partition table.
    let survey = match &args.partition {
        Some(PartSpec::Number(0) | PartSpec::Volume { .. }) => {
            ImageSurvey::whole_disk(image, args.format)?
        }
        _ => ImageSurvey::open(image, args.format)?,
    };
    choose_in(&survey, args, ctx, volumes)
}

/// [`select`] in an image surveyed already (its table is not read again).
pub fn select_in(survey: &ImageSurvey, which: impl Into<Which>, ctx: &Ctx) -> Result<Selected> {
    choose_in(survey, which.into(), ctx, false)
}

fn choose_in(survey: &ImageSurvey, args: Which, ctx: &Ctx, volumes: bool) -> Result<Selected> {
    if let (Some(PartSpec::Volume { .. }), false) = (&args.partition, volumes) {
        bail!(
            "{}: -p {} names an LVM2 logical volume; subroot reads those (ls, cat, export, \
             extract, manifest) but does not write them",
            survey.image.display(),
            args.partition.as_ref().expect("matched")
        );
    }
    let disk = &survey.disk;
    let name = survey.image.display();
    // A filesystem of this image: its device, and the partition or volume holding it.
    let at = |device: Arc<dyn BlockDevice>,
              partition: Option<Partition>,
              volume: Option<String>,
              fs: Option<FsInfo>| Selected {
        image: survey.image.clone(),
        format: survey.format,
        disk: disk.clone(),
        device,
        partition,
        volume,
        fs,
    };
    // A candidate of the automatic choice, with whether it holds a Linux root.
    let candidate = |device: Arc<dyn BlockDevice>,
                     partition: Option<Partition>,
                     volume: Option<String>,
                     fs: FsInfo| {
        let root = if fs.kind.starts_with("ext") {
            linux_root(&device)
        } else if fs.kind == "vfat" {
            None
        } else {
            // Other readable filesystems (XFS...) are opened as trees to look.
            let how = crate::open::fstree::ReadMode {
                force: true,
                salvage: false,
                subvol: None,
            };
            crate::open::fstree::FsTree::open_kind(&device, &fs.kind, "", how)
                .ok()
                .flatten()
                .and_then(|t| tree_root(&t))
        };
        (root, at(device, partition, volume, Some(fs)))
    };
    let whole = |why: &str| -> Result<Selected> {
        // Without a table the survey's one slot is the whole disk.
        let fs = match (&survey.table, survey.slots.first()) {
            (None, Some(slot)) => slot.fs.clone(),
            _ => sniff(&**disk).with_context(|| format!("cannot read {name}"))?,
        };
        if fs.is_none() {
            return Err(InputError::NothingRecognised {
                image: name.to_string(),
            }
            .into());
        }
        let chosen = at(disk.clone(), None, None, fs);
        if !why.is_empty() {
            ctx.note(format_args!("{name}: using {}{why}", chosen.describe()));
        }
        Ok(chosen)
    };
    if args.partition == Some(PartSpec::Number(0)) {
        return whole(" (-p 0: the whole disk, whatever sector 0 holds)");
    }
    if let Some(PartSpec::Volume { vg, lv }) = &args.partition {
        let (device, fs) = super::volumes::open(disk, &name.to_string(), vg, lv)?;
        return Ok(at(device, None, Some(format!("{vg}/{lv}")), fs));
    }
    let Some(table) = &survey.table else {
        if let Some(PartSpec::Number(n)) = args.partition {
            bail!("{name} has no partition table, so it has no partition {n}");
        }
        return whole(if survey.boot_code {
            ": sector 0 holds boot code, not a partition table"
        } else {
            ""
        });
    };
    if let Some(PartSpec::Number(n)) = args.partition {
        let Some(p) = table.partitions.iter().find(|p| p.number == n) else {
            let have: Vec<String> = table
                .partitions
                .iter()
                .map(|p| p.number.to_string())
                .collect();
            bail!("{name} has no partition {n} (it has: {})", have.join(", "));
        };
        if p.kind == PartKind::Extended {
            bail!("partition {n} of {name} is the extended partition that holds the logical ones; choose one of those");
        }
        survey.why_unreadable(n)?;
        let slot = survey
            .partition(n)
            .context("internal: a partition the survey missed")?;
        return Ok(at(
            slot.device.clone(),
            Some(p.clone()),
            None,
            slot.fs.clone(),
        ));
    }
    // Automatic choice: every partition with a recognised filesystem, roots first.
    for (n, why) in &survey.unreadable {
        ctx.note(format_args!(
            "{name}: partition {n} left out of the search: {why}"
        ));
    }
    let mut found = Vec::new();
    for slot in &survey.slots {
        if let Some(fs) = &slot.fs {
            found.push(candidate(
                slot.device.clone(),
                slot.partition.clone(),
                None,
                fs.clone(),
            ));
        }
    }
    // Only when a partition holds a PV label (whatever its type code says).
    let pv = found
        .iter()
        .any(|(_, s)| s.fs.as_ref().is_some_and(|f| f.kind == "LVM2_member"));
    if volumes && pv {
        // Damaged LVM2 metadata does not stop the search among the partitions.
        let lvs = super::volumes::all(disk, table, &name.to_string()).unwrap_or_else(|e| {
            ctx.note(format_args!("{name}: LVM2 volumes not searched: {e:#}"));
            Vec::new()
        });
        for (volume, device, fs) in lvs {
            found.push(candidate(device, None, Some(volume), fs));
        }
        // A PV itself is no filesystem to choose.
        found.retain(|(_, s)| s.fs.as_ref().is_none_or(|f| f.kind != "LVM2_member"));
    }
    // Partition numbers, or VG/LV.
    let roots: Vec<String> = found
        .iter()
        .filter(|(r, _)| r.is_some())
        .map(|(_, s)| match (&s.volume, &s.partition) {
            (Some(v), _) => v.clone(),
            (None, Some(p)) => p.number.to_string(),
            (None, None) => "the whole disk".into(),
        })
        .collect();
    let chosen = match (roots.len(), found.len()) {
        (1, _) => found.into_iter().find(|(r, _)| r.is_some()),
        (0, 1) => found.pop(),
        (0, 0) => {
            return Err(InputError::NoPartitionWithFilesystem {
                image: name.to_string(),
            }
            .into())
        }
        (0, _) => {
            let list: Vec<String> = found.iter().map(|(_, s)| s.describe()).collect();
            bail!("{name} has several filesystems and none holds a Linux root; choose one with -p: {}", list.join("; "))
        }
        _ => bail!(
            "several partitions of {name} hold a Linux root ({}); choose one with -p",
            roots.join(", ")
        ),
    };
    let (root, chosen) = chosen.context("internal: the chosen partition vanished")?;
    let why = match root {
        Some(RootKind::Plain) => " (root filesystem)",
        Some(RootKind::Relayouted) => " (root filesystem of a relayouted image)",
        None => "",
    };
    ctx.note(format_args!("{name}: using {}{why}", chosen.describe()));
    Ok(chosen)
}

/// How a filesystem holds a Linux root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// `/etc/os-release` or `/usr/lib/os-release`.
    Plain,
    /// Roots at the top instead (`/r0`, ...: a `subroot relayout` output).
    Relayouted,
}

/// Whether an ext filesystem holds a Linux root (see [`root_in`]).
pub fn linux_root(dev: &Arc<dyn BlockDevice>) -> Option<RootKind> {
    let fs = ExtFs::open_with(dev.clone(), OpenOptions { force: true }).ok()?;
    root_in(&|p| fs.lookup(&[b"/", p].concat()).is_ok(), || {
        let top = fs.read_dir(2).unwrap_or_default(); // the root directory's inode
        top.into_iter().map(|e| e.name).collect()
    })
}

/// Whether an opened filesystem of any kind holds a Linux root (see [`root_in`]).
pub fn tree_root(tree: &crate::open::fstree::FsTree) -> Option<RootKind> {
    root_in(&|p| tree.entry(p).is_ok(), || {
        let top = tree.children(b"").unwrap_or_default();
        top.into_iter().map(|e| e.path).collect()
    })
}

/// Whether a filesystem holds a Linux root: `/etc/os-release` or `/usr/lib/os-release`
/// (as an entry of any kind: on many systems the first is a symlink to the second), or
/// roots ([`is_root_dir`]) at its top (relayouted). `exists` tells whether a path
/// (no leading `/`) exists; `top` lists the names at the top.
fn root_in(exists: &dyn Fn(&[u8]) -> bool, top: impl FnOnce() -> Vec<Vec<u8>>) -> Option<RootKind> {
    if OS_RELEASE.iter().any(|f| exists(f.as_bytes())) {
        return Some(RootKind::Plain);
    }
    // r0 first: what relayout makes, found without listing the top directory.
    if is_root_dir(b"r0", exists) {
        return Some(RootKind::Relayouted);
    }
    top()
        .iter()
        .any(|name| is_root_dir(name, exists))
        .then_some(RootKind::Relayouted)
}

/// Where an OS says what it is, relative to its root.
pub const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// The one rule for what a root of a relayouted filesystem is (what `subroot=NAME` can
/// enter): a top-level entry `name` other than `.`, `..` and `lost+found` holding
/// `NAME/etc/os-release` or `NAME/usr/lib/os-release` (an entry of any kind), which only
/// a directory can. `exists` tells whether a path (relative to the filesystem's top, no
/// leading `/`) exists.
pub fn is_root_dir(name: &[u8], exists: &dyn Fn(&[u8]) -> bool) -> bool {
    if matches!(name, b"." | b".." | b"lost+found") {
        return false;
    }
    OS_RELEASE
        .iter()
        .any(|f| exists(&[name, b"/", f.as_bytes()].concat()))
}

/// True for an EFI System Partition (MBR type 0xef or the GPT ESP type GUID).
pub fn is_esp(p: &Partition) -> bool {
    p.type_code.eq_ignore_ascii_case("0xef")
        || p.type_code
            .eq_ignore_ascii_case(subroot_formats::table::types::GPT_ESP)
}
