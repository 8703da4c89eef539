//! An image surveyed once: the container opened, the partition table read, and what each
//! partition (or the whole disk, without a table) holds identified. A command that looks
//! at several partitions of one image (relayout: the root, a separate `/boot`, the ESPs,
//! the partition list of its plan; `roots`) takes this one survey everywhere instead of
//! reading the table again; [`super::select::select_in`] chooses a filesystem in it.

use crate::cli::InputFormatArg;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Slice};
use subroot_formats::image::ImageFormat;
use subroot_formats::sniff::{sniff, FsInfo};
use subroot_formats::table::{read_layout, DiskLayout, PartKind, Partition, PartitionTable};

/// The device an image and its partitions are read through.
pub type Dev = Arc<dyn BlockDevice>;

/// What the survey found in one place of the disk.
pub struct Slot {
    /// The partition, or `None` for the whole disk (no table).
    pub partition: Option<Partition>,
    /// Its bytes.
    pub device: Dev,
    /// What sniffing found there (`None`: nothing recognised).
    pub fs: Option<FsInfo>,
}

/// An image, opened and surveyed.
pub struct ImageSurvey {
    /// The image file named on the command line, and its container format.
    pub image: PathBuf,
    pub format: ImageFormat,
    /// The whole disk.
    pub disk: Dev,
    /// The partition table; `None` when the disk has none (or was not read: [`Self::whole_disk`]).
    pub table: Option<PartitionTable>,
    /// Without a table: sector 0 holds boot code over a filesystem.
    pub boot_code: bool,
    /// Every partition that can hold a filesystem (not an extended one), in table order;
    /// without a table, the whole disk.
    pub slots: Vec<Slot>,
    /// Partitions that could not be read (one lying past the end of the disk, say): their
    /// numbers and why. They are left out of `slots`, so a damaged partition does not stop
    /// a command that works on another; [`Self::complete`] refuses them for one that
    /// rewrites the image.
    pub unreadable: Vec<(u32, String)>,
}

impl ImageSurvey {
    /// Open `image` (its format detected unless given), read its partition table and
    /// identify what each partition holds.
    pub fn open(image: &Path, format: Option<InputFormatArg>) -> Result<ImageSurvey> {
        let img = super::open_image(image, format)?;
        let format = img.format();
        ImageSurvey::of(image, format, Arc::new(img))
    }

    /// Survey `disk`, the opened `image` of container `format`.
    pub fn of(image: &Path, format: ImageFormat, disk: Dev) -> Result<ImageSurvey> {
        let name = image.display();
        let layout = read_layout(&*disk)
            .with_context(|| format!("cannot read the partition table of {name}"))?;
        let (table, boot_code) = match layout {
            DiskLayout::Table(t) => (Some(t), false),
            DiskLayout::Whole { boot_code } => (None, boot_code),
        };
        let mut slots = Vec::new();
        let mut unreadable = Vec::new();
        match &table {
            Some(t) => {
                for p in t.partitions.iter().filter(|p| p.kind != PartKind::Extended) {
                    match partition_slot(&disk, p, &name.to_string()) {
                        Ok(slot) => slots.push(slot),
                        Err(e) => unreadable.push((p.number, format!("{e:#}"))),
                    }
                }
            }
            None => slots.push(whole(&disk, &name.to_string())?),
        }
        Ok(ImageSurvey {
            image: image.to_path_buf(),
            format,
            disk,
            table,
            boot_code,
            slots,
            unreadable,
        })
    }

    /// Open `image` and take the whole disk as the one place, whatever sector 0 holds
    /// (`-p 0`): the partition table is not read.
    pub fn whole_disk(image: &Path, format: Option<InputFormatArg>) -> Result<ImageSurvey> {
        let img = super::open_image(image, format)?;
        let format = img.format();
        let disk: Dev = Arc::new(img);
        let slot = whole(&disk, &image.display().to_string())?;
        Ok(ImageSurvey {
            image: image.to_path_buf(),
            format,
            disk,
            table: None,
            boot_code: false,
            slots: vec![slot],
            unreadable: Vec::new(),
        })
    }

    /// The image as messages name it.
    pub fn name(&self) -> String {
        self.image.display().to_string()
    }

    /// Refuse an image with a partition that could not be read (for commands that rewrite
    /// or copy the whole image).
    pub fn complete(&self) -> Result<()> {
        match self.unreadable.first() {
            Some((n, _)) => self.why_unreadable(*n),
            None => Ok(()),
        }
    }

    /// The error partition `number` gave when it was surveyed, read again so that it keeps
    /// its type (and the exit status it decides); `Ok` when it is not unreadable.
    pub fn why_unreadable(&self, number: u32) -> Result<()> {
        let Some((_, why)) = self.unreadable.iter().find(|(n, _)| *n == number) else {
            return Ok(());
        };
        let partition = self
            .table
            .as_ref()
            .and_then(|t| t.partitions.iter().find(|p| p.number == number));
        match partition.map(|p| partition_slot(&self.disk, p, &self.name())) {
            Some(Err(e)) => Err(e),
            _ => Err(anyhow::anyhow!("{why}")),
        }
    }

    /// The slot of partition `number`.
    pub fn partition(&self, number: u32) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| s.partition.as_ref().is_some_and(|p| p.number == number))
    }
}

/// Partition `p` of `disk` as a slot.
fn partition_slot(disk: &Dev, p: &Partition, name: &str) -> Result<Slot> {
    let device: Dev = Arc::new(
        Slice::new(disk.clone(), p.start, p.size)
            .with_context(|| format!("partition {} of {name}", p.number))?,
    );
    let fs =
        sniff(&*device).with_context(|| format!("cannot read partition {} of {name}", p.number))?;
    Ok(Slot {
        partition: Some(p.clone()),
        device,
        fs,
    })
}

/// The whole disk as a slot.
fn whole(disk: &Dev, name: &str) -> Result<Slot> {
    Ok(Slot {
        partition: None,
        device: disk.clone(),
        fs: sniff(&**disk).with_context(|| format!("cannot read {name}"))?,
    })
}
