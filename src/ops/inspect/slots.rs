//! Every filesystem of a disk, opened for `inspect` (and `customize`): its partitions (or
//! the whole disk), and with [`open_volumes`] the LVM2 logical volumes of the physical
//! volumes among them; and which of them an `/etc/fstab` line names.

use super::report::FstabLine;
use super::view::Mounted;
use crate::open::fstree::{FsTree, ReadMode};
use crate::open::select::{tree_root, RootKind};
use crate::open::survey::ImageSurvey;
use crate::ops::relayout::bootpart::{matches, matches_fs, parse_spec};
use anyhow::{Context, Result};
use std::sync::Arc;
use subroot_formats::block::BlockDevice;
use subroot_formats::lvm::LvLayout;
use subroot_formats::sniff::{sniff, FsInfo};
use subroot_formats::table::{Partition, PartitionTable};

type Dev = Arc<dyn BlockDevice>;

/// One partition, logical volume, or the whole disk, with what is on it.
pub(crate) struct Slot {
    /// The partition (`None`: a logical volume, or the whole disk).
    pub part: Option<Partition>,
    /// The LVM2 logical volume, `VG/LV`.
    pub volume: Option<String>,
    pub device: Dev,
    pub fs: Option<FsInfo>,
    pub mounted: Option<Mounted>,
    pub root: Option<RootKind>,
}

impl Slot {
    /// "partition 2", "volume vg/root" or "the whole disk", for notes.
    pub fn place(&self) -> String {
        place(self.part.as_ref().map(|p| p.number), self.volume.as_deref())
    }

    /// True when the slot holds an LVM2 physical volume.
    pub fn is_pv(&self) -> bool {
        self.fs.as_ref().is_some_and(|f| f.kind == "LVM2_member")
    }
}

/// "partition 2", "volume vg/root" or "the whole disk".
pub(crate) fn place(partition: Option<u32>, volume: Option<&str>) -> String {
    match (partition, volume) {
        (_, Some(v)) => format!("volume {v}"),
        (Some(n), None) => format!("partition {n}"),
        (None, None) => "the whole disk".into(),
    }
}

/// Every place `survey` found (the partitions, or the whole disk without a table), opened.
pub(crate) fn open_slots(survey: &ImageSurvey, notes: &mut Vec<String>) -> Result<Vec<Slot>> {
    for (_, why) in &survey.unreadable {
        notes.push(why.clone());
    }
    survey
        .slots
        .iter()
        .map(|s| {
            open_slot(
                s.partition.clone(),
                None,
                s.device.clone(),
                s.fs.clone(),
                notes,
            )
        })
        .collect()
}

/// The LVM2 logical volumes of the physical volumes among `slots`, opened. LVM2 metadata
/// that cannot be read, and volumes subroot does not map (thin, RAID...), are notes.
pub(crate) fn open_volumes(
    disk: &Dev,
    table: Option<&PartitionTable>,
    slots: &[Slot],
    notes: &mut Vec<String>,
) -> Result<Vec<Slot>> {
    if !slots.iter().any(Slot::is_pv) {
        return Ok(Vec::new());
    }
    let groups = match crate::open::volumes::groups(disk, table, "the disk") {
        Ok(g) => g,
        Err(e) => {
            notes.push(format!("LVM2 volumes not read: {e:#}"));
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::new();
    for g in &groups {
        for lv in &g.lvs {
            let name = format!("{}/{}", g.name, lv.name);
            if let LvLayout::Other(kind) = &lv.layout {
                notes.push(format!(
                    "volume {name}: a {kind} logical volume, which subroot does not read"
                ));
                continue;
            }
            let device: Dev = match g.open(&lv.name) {
                Ok(v) => Arc::new(v),
                Err(e) => {
                    notes.push(format!("volume {name}: {e}"));
                    continue;
                }
            };
            let fs = sniff(&*device).with_context(|| format!("cannot read volume {name}"))?;
            out.push(open_slot(None, Some(name), device, fs, notes)?);
        }
    }
    Ok(out)
}

/// Open what subroot reads ([`FsTree::open_kind`]) of one partition or volume holding
/// `fs` (what sniffing found). Unknown or unsupported content is a note; a recognised
/// filesystem that does not open is an error.
fn open_slot(
    part: Option<Partition>,
    volume: Option<String>,
    device: Dev,
    fs: Option<FsInfo>,
    notes: &mut Vec<String>,
) -> Result<Slot> {
    let partition = part.as_ref().map(|p| p.number);
    let at = place(partition, volume.as_deref());
    let tree = match fs.as_ref().map(|f| f.kind.as_str()) {
        // What is not a filesystem: swap, and physical volumes (read by open_volumes).
        Some("swap" | "LVM2_member") => None,
        Some(k) => {
            // Opened as it is on disk (a journal to replay is not refused), without
            // reading past damage.
            let how = ReadMode {
                force: true,
                salvage: false,
                subvol: None,
            };
            let tree = FsTree::open_kind(&device, k, &at, how)?;
            if tree.is_none() {
                notes.push(format!("{at}: {k}, which subroot does not read"));
            }
            tree
        }
        None => {
            if part.is_some() || volume.is_some() {
                notes.push(format!("{at}: no filesystem subroot recognises"));
            }
            None
        }
    };
    let root = tree.as_ref().and_then(tree_root);
    Ok(Slot {
        part,
        mounted: tree.map(|tree| Mounted {
            partition,
            volume: volume.clone(),
            tree,
            device: device.clone(),
        }),
        volume,
        device,
        fs,
        root,
    })
}

/// The lines of `/etc/fstab`, each with the slot, partition or volume its device field
/// names: `UUID=`, `LABEL=`, `PARTUUID=`, `/dev/sda1`... (see
/// [`crate::ops::relayout::bootpart::parse_spec`]), and for a volume also
/// `/dev/mapper/VG-LV` and `/dev/VG/LV`.
pub(crate) fn fstab_lines(
    text: &str,
    table: Option<&PartitionTable>,
    slots: &[Slot],
) -> Vec<FstabLine> {
    crate::open::fstab::parse(text)
        .into_iter()
        .map(|e| {
            let spec = parse_spec(&e.device);
            let named = crate::open::fstab::lvm_volume(&e.device);
            let slot = slots.iter().position(|s| match (&s.part, &s.volume) {
                (Some(p), _) => spec
                    .as_ref()
                    .zip(table)
                    .is_some_and(|(spec, t)| matches(spec, t, p, s.fs.as_ref())),
                (None, Some(v)) => {
                    named.as_deref() == Some(v.as_str())
                        || spec
                            .as_ref()
                            .is_some_and(|spec| matches_fs(spec, s.fs.as_ref()))
                }
                (None, None) => false,
            });
            let s = slot.map(|i| &slots[i]);
            FstabLine {
                device: e.device,
                mountpoint: e.mountpoint,
                fs_type: e.fs_type,
                options: e.options,
                partition: s.and_then(|s| s.part.as_ref()).map(|p| p.number),
                volume: s.and_then(|s| s.volume.clone()),
                slot,
            }
        })
        .collect()
}
