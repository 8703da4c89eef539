//! Volume groups and their logical volumes: the newest valid metadata of each group found
//! on a set of devices, and linear or striped logical volumes as block devices mapped onto
//! their physical volumes' extents.

use super::label::{read_label, read_metadata, PvLabel};
use super::text::{parse, Section, Value};
use crate::block::{check_range, BlockDevice, Extent};
use crate::image::chain::{map_extents, Run};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

const SECTOR: u64 = 512;
/// Most segments or stripes one logical volume may have (real ones: a handful).
const MAX_PIECES: usize = 65536;

/// A device that may hold a physical volume, and how to name it in messages.
pub struct Candidate {
    pub name: String,
    pub device: Arc<dyn BlockDevice>,
}

/// A physical volume of a group.
#[derive(Clone)]
pub struct PhysicalVolume {
    /// Its name in the metadata (`pv0`).
    pub name: String,
    /// Its UUID as the metadata writes it (with dashes).
    pub id: String,
    /// Where its extents start, in bytes from the PV start.
    pub pe_start: u64,
    /// The device holding it and that device's name, when found.
    pub device: Option<(String, Arc<dyn BlockDevice>)>,
}

/// What a logical volume is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LvLayout {
    /// One segment type subroot maps: linear (one stripe) or striped.
    Striped { max_stripes: usize },
    /// Another segment type (thin, RAID, mirror, cache, snapshot, VDO ...): named, refused.
    Other(String),
}

/// A logical volume as the metadata describes it.
#[derive(Debug, Clone)]
pub struct LvInfo {
    pub name: String,
    /// Bytes.
    pub size: u64,
    pub layout: LvLayout,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
struct Segment {
    /// In bytes of the logical volume.
    start: u64,
    len: u64,
    /// Bytes per stripe chunk (0 for one stripe).
    chunk: u64,
    /// (index into the group's PVs, byte offset of the stripe's first extent in the PV).
    stripes: Vec<(usize, u64)>,
}

/// A volume group: its newest valid metadata.
#[derive(Clone)]
pub struct VolumeGroup {
    pub name: String,
    pub id: String,
    pub seqno: i64,
    /// Bytes per extent.
    pub extent_size: u64,
    pub pvs: Vec<PhysicalVolume>,
    /// Visible logical volumes, in the order written.
    pub lvs: Vec<LvInfo>,
}

/// The volume groups whose physical volumes are among `devices` (each group once, from
/// its newest metadata copy whose checksums hold). A device without a PV label is skipped;
/// a damaged label or metadata is an error unless another copy of the same group is good.
pub fn scan(devices: &[Candidate]) -> Result<Vec<VolumeGroup>> {
    let mut labels: Vec<(usize, PvLabel)> = Vec::new();
    for (i, c) in devices.iter().enumerate() {
        let label =
            read_label(&*c.device).map_err(|e| Error::corrupt(format!("{}: {e}", c.name)))?;
        if let Some(l) = label {
            labels.push((i, l));
        }
    }
    // (vg id) -> (seqno, text, where) of the newest copy; the errors of bad copies.
    let mut newest: BTreeMap<String, (i64, Section, String)> = BTreeMap::new();
    let mut bad: Vec<String> = Vec::new();
    for (i, l) in &labels {
        let c = &devices[*i];
        for &(off, size) in &l.metadata_areas {
            let text = match read_metadata(&*c.device, off, size) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    bad.push(format!("{}: {e}", c.name));
                    continue;
                }
            };
            let top = match parse(&text) {
                Ok(t) => t,
                Err(e) => {
                    bad.push(format!("{}: {e}", c.name));
                    continue;
                }
            };
            let Some((vg_name, vg)) = top
                .sections()
                .find(|(_, s)| s.section("physical_volumes").is_some())
            else {
                bad.push(format!("{}: LVM2 metadata without a volume group", c.name));
                continue;
            };
            let id = vg.string("id").unwrap_or(vg_name).to_string();
            let seqno = vg.number("seqno").unwrap_or(0);
            if newest.get(&id).is_none_or(|(s, _, _)| seqno > *s) {
                let mut holder = Section::default();
                holder
                    .items
                    .insert(vg_name.to_string(), Value::Section(vg.clone()));
                holder.order.push(vg_name.to_string());
                newest.insert(id, (seqno, holder, c.name.clone()));
            }
        }
    }
    if newest.is_empty() && !bad.is_empty() {
        return Err(Error::corrupt(format!(
            "no readable LVM2 metadata: {}",
            bad.join("; ")
        )));
    }
    let mut out = Vec::new();
    for (id, (seqno, holder, _)) in newest {
        let (name, vg) = holder.sections().next().expect("one group");
        out.push(group(name, &id, seqno, vg, devices, &labels)?);
    }
    Ok(out)
}

fn number(s: &Section, key: &str, what: &str) -> Result<u64> {
    s.number(key)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| Error::corrupt(format!("LVM2 metadata: {what} has no valid {key}")))
}

fn group(
    name: &str,
    id: &str,
    seqno: i64,
    vg: &Section,
    devices: &[Candidate],
    labels: &[(usize, PvLabel)],
) -> Result<VolumeGroup> {
    let what = format!("volume group {name}");
    let extent_size = number(vg, "extent_size", &what)?
        .checked_mul(SECTOR)
        .filter(|&e| e > 0)
        .ok_or_else(|| Error::corrupt(format!("LVM2 metadata: {what} has a bad extent_size")))?;
    let mut pvs = Vec::new();
    let pv_section = vg.section("physical_volumes").expect("checked by scan");
    for (pv_name, pv) in pv_section.sections() {
        let pid = pv.string("id").unwrap_or_default().to_string();
        let bare: String = pid.chars().filter(|c| *c != '-').collect();
        let device = labels
            .iter()
            .find(|(_, l)| l.uuid == bare)
            .map(|(i, _)| (devices[*i].name.clone(), devices[*i].device.clone()));
        pvs.push(PhysicalVolume {
            name: pv_name.to_string(),
            id: pid,
            pe_start: number(pv, "pe_start", &format!("{what}, PV {pv_name}"))?
                .saturating_mul(SECTOR),
            device,
        });
    }
    let mut lvs = Vec::new();
    if let Some(lv_section) = vg.section("logical_volumes") {
        for (lv_name, lv) in lv_section.sections() {
            if !lv.strings("status").contains(&"VISIBLE") {
                continue;
            }
            lvs.push(logical_volume(lv_name, lv, &pvs, extent_size, &what)?);
        }
    }
    Ok(VolumeGroup {
        name: name.to_string(),
        id: id.to_string(),
        seqno,
        extent_size,
        pvs,
        lvs,
    })
}

fn logical_volume(
    name: &str,
    lv: &Section,
    pvs: &[PhysicalVolume],
    extent_size: u64,
    vg_what: &str,
) -> Result<LvInfo> {
    let what = format!("{vg_what}, logical volume {name}");
    let mut segments = Vec::new();
    let mut other: Option<String> = None;
    let mut max_stripes = 1;
    for (_, seg) in lv.sections() {
        if segments.len() == MAX_PIECES {
            return Err(Error::corrupt(format!(
                "LVM2 metadata: {what} has too many segments"
            )));
        }
        let kind = seg.string("type").unwrap_or("");
        let start = number(seg, "start_extent", &what)?;
        let count = number(seg, "extent_count", &what)?;
        let (start, len) = match (
            start.checked_mul(extent_size),
            count.checked_mul(extent_size),
        ) {
            (Some(s), Some(l)) => (s, l),
            _ => {
                return Err(Error::corrupt(format!(
                    "LVM2 metadata: {what} is too large"
                )))
            }
        };
        if kind != "striped" {
            other.get_or_insert_with(|| kind.to_string());
            segments.push(Segment {
                start,
                len,
                chunk: 0,
                stripes: Vec::new(),
            });
            continue;
        }
        let n = number(seg, "stripe_count", &what)? as usize;
        let list = match seg.get("stripes") {
            Some(Value::List(l)) => l,
            _ => {
                return Err(Error::corrupt(format!(
                    "LVM2 metadata: {what} has no stripes"
                )))
            }
        };
        if n == 0 || n > MAX_PIECES || list.len() != 2 * n || count % n as u64 != 0 {
            return Err(Error::corrupt(format!(
                "LVM2 metadata: {what}: {n} stripes over {count} extents with {} stripe values",
                list.len()
            )));
        }
        let chunk = if n > 1 {
            number(seg, "stripe_size", &what)?
                .checked_mul(SECTOR)
                .filter(|&c| c > 0 && extent_size % c == 0)
                .ok_or_else(|| {
                    Error::corrupt(format!("LVM2 metadata: {what} has a bad stripe_size"))
                })?
        } else {
            0
        };
        let mut stripes = Vec::new();
        for pair in list.chunks(2) {
            let (Value::String(pv), Value::Number(pe)) = (&pair[0], &pair[1]) else {
                return Err(Error::corrupt(format!(
                    "LVM2 metadata: {what}: a bad stripe entry"
                )));
            };
            let idx = pvs.iter().position(|p| &p.name == pv).ok_or_else(|| {
                Error::corrupt(format!("LVM2 metadata: {what} names an unknown PV {pv}"))
            })?;
            let pe = u64::try_from(*pe)
                .ok()
                .and_then(|pe| pe.checked_mul(extent_size))
                .and_then(|b| b.checked_add(pvs[idx].pe_start))
                .ok_or_else(|| Error::corrupt(format!("LVM2 metadata: {what}: a bad extent")))?;
            stripes.push((idx, pe));
        }
        max_stripes = max_stripes.max(n);
        segments.push(Segment {
            start,
            len,
            chunk,
            stripes,
        });
    }
    segments.sort_by_key(|s| s.start);
    let mut at = 0;
    for s in &segments {
        if s.start != at {
            return Err(Error::corrupt(format!(
                "LVM2 metadata: {what}: its segments leave a gap or overlap at byte {at}"
            )));
        }
        at = s.start + s.len;
    }
    Ok(LvInfo {
        name: name.to_string(),
        size: at,
        layout: match other {
            Some(k) => LvLayout::Other(k),
            None => LvLayout::Striped { max_stripes },
        },
        segments,
    })
}

impl VolumeGroup {
    /// Open logical volume `name` as a device.
    pub fn open(&self, name: &str) -> Result<LogicalVolume> {
        let lv = self.lvs.iter().find(|l| l.name == name).ok_or_else(|| {
            Error::NotFound(format!(
                "volume group {} has no logical volume {name} (it has: {})",
                self.name,
                self.lvs
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if let LvLayout::Other(kind) = &lv.layout {
            return Err(Error::unsupported(format!(
                "{}/{name} is a {kind} logical volume; subroot reads linear and striped ones",
                self.name
            )));
        }
        let devices: Vec<_> = self
            .pvs
            .iter()
            .map(|pv| pv.device.as_ref().map(|(_, d)| d.clone()))
            .collect();
        for s in &lv.segments {
            for &(idx, start) in &s.stripes {
                let pv = &self.pvs[idx];
                let Some(d) = &devices[idx] else {
                    return Err(Error::unsupported(format!(
                        "{}/{name} lies partly on physical volume {} ({}), which is not in \
                         this image",
                        self.name, pv.name, pv.id
                    )));
                };
                let per_stripe = s.len / s.stripes.len() as u64;
                if start.checked_add(per_stripe).is_none_or(|e| e > d.len()) {
                    return Err(Error::corrupt(format!(
                        "{}/{name}: a segment ends beyond its physical volume {} ({} bytes)",
                        self.name,
                        pv.name,
                        d.len()
                    )));
                }
            }
        }
        Ok(LogicalVolume {
            lv: lv.clone(),
            devices,
        })
    }
}

/// A linear or striped logical volume, read through its physical volumes.
pub struct LogicalVolume {
    lv: LvInfo,
    devices: Vec<Option<Arc<dyn BlockDevice>>>,
}

impl LogicalVolume {
    /// Where byte `pos` of the volume is: (device, offset in it, bytes contiguous there).
    fn locate(&self, pos: u64) -> (&Arc<dyn BlockDevice>, u64, u64) {
        let i = self.lv.segments.partition_point(|s| s.start + s.len <= pos);
        let s = &self.lv.segments[i];
        let rel = pos - s.start;
        let n = s.stripes.len() as u64;
        let (stripe, off, run) = if n == 1 {
            (0, rel, s.len - rel)
        } else {
            let chunk = rel / s.chunk;
            let within = rel % s.chunk;
            (
                (chunk % n) as usize,
                (chunk / n) * s.chunk + within,
                s.chunk - within,
            )
        };
        let (idx, start) = s.stripes[stripe];
        let dev = self.devices[idx].as_ref().expect("checked at open");
        (dev, start + off, run)
    }
}

impl BlockDevice for LogicalVolume {
    fn len(&self) -> u64 {
        self.lv.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64)?;
        let mut done = 0usize;
        while done < buf.len() {
            let (dev, at, run) = self.locate(offset + done as u64);
            let n = run.min((buf.len() - done) as u64) as usize;
            dev.read_at(&mut buf[done..done + n], at)?;
            done += n;
        }
        Ok(())
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        check_range(self.len(), offset, len)?;
        map_extents(None, offset, len, |pos, left| {
            let (dev, at, run) = self.locate(pos);
            let n = run.min(left);
            let list = dev
                .extents(at, n)?
                .into_iter()
                .map(|e| Extent {
                    offset: e.offset - at + pos,
                    ..e
                })
                .collect();
            Ok((Run::Extents(list), n))
        })
    }

    fn format_name(&self) -> &'static str {
        "lvm2"
    }
}
