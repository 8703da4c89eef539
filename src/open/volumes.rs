//! LVM2 logical volumes of a disk, for the reading commands: the physical volumes on its
//! partitions (or the whole disk), their groups, and each linear or striped volume with
//! what it holds. Groups whose PVs are not all in the image, and volume types subroot does
//! not map, are refused by name when asked for and skipped when searching for a root.

use anyhow::{bail, Context, Result};
use std::sync::Arc;
use subroot_formats::block::{BlockDevice, Slice};
use subroot_formats::lvm::{scan, Candidate, LvLayout, VolumeGroup};
use subroot_formats::sniff::{sniff, FsInfo};
use subroot_formats::table::{read_table, PartKind, PartitionTable};

/// The devices of `disk` that may be physical volumes: its partitions, or the whole disk.
fn candidates(
    disk: &Arc<dyn BlockDevice>,
    table: Option<&PartitionTable>,
    name: &str,
) -> Result<Vec<Candidate>> {
    let Some(table) = table else {
        return Ok(vec![Candidate {
            name: "the whole disk".into(),
            device: disk.clone(),
        }]);
    };
    let mut out = Vec::new();
    for p in table
        .partitions
        .iter()
        .filter(|p| p.kind != PartKind::Extended)
    {
        out.push(Candidate {
            name: format!("partition {}", p.number),
            device: Arc::new(
                Slice::new(disk.clone(), p.start, p.size)
                    .with_context(|| format!("partition {} of {name}", p.number))?,
            ),
        });
    }
    Ok(out)
}

/// The volume groups of `disk`.
pub fn groups(
    disk: &Arc<dyn BlockDevice>,
    table: Option<&PartitionTable>,
    name: &str,
) -> Result<Vec<VolumeGroup>> {
    let c = candidates(disk, table, name)?;
    scan(&c).with_context(|| format!("cannot read the LVM2 metadata of {name}"))
}

/// Open `vg/lv` of `disk`: the volume and what sniffing found in it.
pub fn open(
    disk: &Arc<dyn BlockDevice>,
    name: &str,
    vg: &str,
    lv: &str,
) -> Result<(Arc<dyn BlockDevice>, Option<FsInfo>)> {
    let table = read_table(&**disk)
        .with_context(|| format!("cannot read the partition table of {name}"))?;
    let all = groups(disk, table.as_ref(), name)?;
    let Some(group) = all.iter().find(|g| g.name == vg) else {
        let have: Vec<&str> = all.iter().map(|g| g.name.as_str()).collect();
        bail!(
            "{name} has no LVM2 volume group {vg}{}",
            if have.is_empty() {
                " (it has no LVM2 physical volume)".to_string()
            } else {
                format!(" (it has: {})", have.join(", "))
            }
        );
    };
    let dev: Arc<dyn BlockDevice> = Arc::new(
        group
            .open(lv)
            .with_context(|| format!("{name}: cannot open {vg}/{lv}"))?,
    );
    let fs = sniff(&*dev).with_context(|| format!("cannot read {vg}/{lv} of {name}"))?;
    Ok((dev, fs))
}

/// A readable logical volume holding a recognised filesystem: `VG/LV`, the volume, what
/// sniffing found.
pub type Found = (String, Arc<dyn BlockDevice>, FsInfo);

/// Every readable logical volume of `disk` holding a recognised filesystem.
pub fn all(disk: &Arc<dyn BlockDevice>, table: &PartitionTable, name: &str) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for g in groups(disk, Some(table), name)? {
        for lv in &g.lvs {
            if !matches!(lv.layout, LvLayout::Striped { .. }) {
                continue;
            }
            let Ok(v) = g.open(&lv.name) else { continue };
            let dev: Arc<dyn BlockDevice> = Arc::new(v);
            if let Some(fs) = sniff(&*dev)
                .with_context(|| format!("cannot read {}/{} of {name}", g.name, lv.name))?
            {
                out.push((format!("{}/{}", g.name, lv.name), dev, fs));
            }
        }
    }
    Ok(out)
}
