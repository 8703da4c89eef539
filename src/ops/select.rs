//! Choosing the filesystem a command works on: the partition given with `-p N` (`-p 0`: the
//! whole disk, whatever sector 0 holds); else the partition holding a Linux root
//! (`/etc/os-release` or `/usr/lib/os-release`, or the same under `/r0` for an image
//! `subroot relayout` made); else the only filesystem on the disk. The choice is reported on
//! stderr, so it is never a guess the user cannot see.

use crate::cli::{InputFormatArg, PartitionArgs};
use crate::exit::InputError;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Slice};
use subroot_formats::ext::{ExtFs, OpenOptions};
use subroot_formats::image::ImageFormat;
use subroot_formats::sniff::{sniff, FsInfo};
use subroot_formats::table::{read_layout, DiskLayout, PartKind, Partition};

/// Which filesystem of an image to use, and how to open the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Which {
    /// `-p N` (0: the whole disk); `None`: chosen as the module comment says.
    pub partition: Option<u32>,
    /// `-f FMT`; `None`: detected.
    pub format: Option<InputFormatArg>,
}

impl From<&PartitionArgs> for Which {
    fn from(a: &PartitionArgs) -> Self {
        Which {
            partition: a.partition,
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
    /// The partition, or `None` for a filesystem on the whole disk.
    pub partition: Option<Partition>,
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
        match &self.partition {
            Some(p) => format!("partition {} ({fs})", p.number),
            None => format!("the whole disk ({fs})"),
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

/// Pick the filesystem of `image` that `which` asks for (see the module comment).
pub fn select(image: &Path, which: impl Into<Which>, ctx: &Ctx) -> Result<Selected> {
    let args = which.into();
    let img = super::open_image(image, args.format)?;
    let format = img.format();
    let disk: Arc<dyn BlockDevice> = Arc::new(img);
    let name = image.display();
    let whole = |why: &str| -> Result<Selected> {
        let fs = sniff(&*disk).with_context(|| format!("cannot read {name}"))?;
        if fs.is_none() {
            return Err(InputError::NothingRecognised {
                image: name.to_string(),
            }
            .into());
        }
        let chosen = Selected {
            image: image.to_path_buf(),
            format,
            device: disk.clone(),
            disk: disk.clone(),
            partition: None,
            fs,
        };
        if !why.is_empty() {
            ctx.note(format_args!("{name}: using {}{why}", chosen.describe()));
        }
        Ok(chosen)
    };
    if args.partition == Some(0) {
        return whole(" (-p 0: the whole disk, whatever sector 0 holds)");
    }
    let layout = read_layout(&*disk)
        .with_context(|| format!("cannot read the partition table of {name}"))?;
    let table = match layout {
        DiskLayout::Table(t) => t,
        DiskLayout::Whole { boot_code } => {
            if let Some(n) = args.partition {
                bail!("{name} has no partition table, so it has no partition {n}");
            }
            return whole(if boot_code {
                ": sector 0 holds boot code, not a partition table"
            } else {
                ""
            });
        }
    };
    let slice = |p: &Partition| -> Result<Arc<dyn BlockDevice>> {
        Ok(Arc::new(
            Slice::new(disk.clone(), p.start, p.size)
                .with_context(|| format!("partition {} of {name}", p.number))?,
        ))
    };
    if let Some(n) = args.partition {
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
        let device = slice(p)?;
        let fs = sniff(&*device).with_context(|| format!("cannot read partition {n} of {name}"))?;
        return Ok(Selected {
            image: image.to_path_buf(),
            format,
            disk: disk.clone(),
            device,
            partition: Some(p.clone()),
            fs,
        });
    }
    // Automatic choice: every partition with a recognised filesystem, roots first.
    let mut found = Vec::new();
    for p in table
        .partitions
        .iter()
        .filter(|p| p.kind != PartKind::Extended)
    {
        let device = slice(p)?;
        if let Some(fs) = sniff(&*device)
            .with_context(|| format!("cannot read partition {} of {name}", p.number))?
        {
            let root = if fs.kind.starts_with("ext") {
                linux_root(&device)
            } else {
                None
            };
            found.push((
                root,
                Selected {
                    image: image.to_path_buf(),
                    format,
                    disk: disk.clone(),
                    device,
                    partition: Some(p.clone()),
                    fs: Some(fs),
                },
            ));
        }
    }
    let roots: Vec<u32> = found
        .iter()
        .filter(|(r, _)| r.is_some())
        .filter_map(|(_, s)| s.partition.as_ref().map(|p| p.number))
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
            roots
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let (root, chosen) = chosen.context("internal: the chosen partition vanished")?;
    let why = match root {
        Some(RootKind::Plain) => " (root filesystem)",
        Some(RootKind::Relayouted) => " (root filesystem, relayouted into r0)",
        None => "",
    };
    ctx.note(format_args!("{name}: using {}{why}", chosen.describe()));
    Ok(chosen)
}

/// How a filesystem holds a Linux root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootKind {
    /// `/etc/os-release` or `/usr/lib/os-release`.
    Plain,
    /// The same under `/r0` (a `subroot relayout` output).
    Relayouted,
}

/// Whether an ext filesystem holds a Linux root: `/etc/os-release` or
/// `/usr/lib/os-release` (as an entry of any kind: on many systems the first is a symlink
/// to the second), or the same under `/r0` (relayouted).
fn linux_root(dev: &Arc<dyn BlockDevice>) -> Option<RootKind> {
    let fs = ExtFs::open_with(dev.clone(), OpenOptions { force: true }).ok()?;
    let has = |paths: &[&[u8]]| paths.iter().any(|p| fs.lookup(p).is_ok());
    if has(&[b"/etc/os-release", b"/usr/lib/os-release"]) {
        Some(RootKind::Plain)
    } else if has(&[b"/r0/etc/os-release", b"/r0/usr/lib/os-release"]) {
        Some(RootKind::Relayouted)
    } else {
        None
    }
}

/// True for an EFI System Partition (MBR type 0xef or the GPT ESP type GUID).
pub fn is_esp(p: &Partition) -> bool {
    p.type_code.eq_ignore_ascii_case("0xef")
        || p.type_code
            .eq_ignore_ascii_case(subroot_formats::table::types::GPT_ESP)
}
