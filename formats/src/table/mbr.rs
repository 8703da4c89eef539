//! MBR ("dos") tables: the four primary entries, and logical partitions found by walking the
//! chain of extended boot records (EBRs).
//!
//! Sectors are decoded and encoded with `mbrman::MBRHeader` (an EBR has the MBR layout). The
//! chain walk and the EBR writing are ours: `mbrman::MBR::read_from` adds on-disk `u32` LBAs
//! without overflow checks (a crafted EBR panics in debug builds and wraps in release) and
//! does not check that links stay inside the extended partition, and `MBR::write_into`
//! computes EBR byte offsets as `u32 * u32`, which overflows for EBRs beyond 4 GiB.

use super::{
    align_up, check_layout, types, PartKind, PartSize, PartSpec, Partition, PartitionTable,
    TableKind,
};
use crate::block::BlockDevice;
use crate::{Error, Result};
use mbrman::{MBRHeader, MBRPartitionEntry, BOOT_ACTIVE, BOOT_INACTIVE, CHS};
use std::io::Cursor;

const SECTOR: u64 = 512;
/// New partitions (and EBRs) are aligned to 1 MiB.
const ALIGN: u64 = super::ALIGN_BYTES / SECTOR;
/// Bound on the EBR walk: Linux gives a disk at most 256 minors.
const MAX_LOGICAL: usize = 256;
/// Extended partition type written for new tables (what fdisk uses).
const EXTENDED: u8 = 0x05;

/// The type bytes of the four primary entries of sector 0.
pub(super) fn type_bytes(s0: &[u8; 512]) -> [u8; 4] {
    [s0[450], s0[466], s0[482], s0[498]]
}

/// Decode one MBR-layout sector with mbrman.
fn decode(sector: &[u8]) -> std::result::Result<MBRHeader, mbrman::Error> {
    MBRHeader::read_from(&mut Cursor::new(sector))
}

fn is_extended(sys: u8) -> bool {
    matches!(sys, 0x05 | 0x0f | 0x85)
}

fn part(number: u32, kind: PartKind, start_lba: u64, e: &MBRPartitionEntry) -> Partition {
    Partition {
        number,
        start: start_lba * SECTOR,
        size: u64::from(e.sectors) * SECTOR,
        kind,
        type_code: format!("0x{:02x}", e.sys),
        type_name: types::mbr_type_name(e.sys).to_string(),
        name: None,
        uuid: None,
        bootable: e.boot == BOOT_ACTIVE,
        attributes: 0,
    }
}

/// Read an MBR table whose sector 0 (with a 0x55AA signature) is `s0`.
pub(super) fn read(dev: &dyn BlockDevice, s0: &[u8; 512]) -> Result<Option<PartitionTable>> {
    // Like libblkid: a FAT boot sector also ends in 0x55AA but is not a partition table.
    if crate::sniff::is_vfat_boot_sector(s0) {
        return Ok(None);
    }
    let hdr = match decode(s0) {
        Ok(h) => h,
        // Boot flags other than 0x00/0x80: boot code, not a partition table.
        Err(mbrman::Error::InvalidBootFlag) => return Ok(None),
        Err(e) => return Err(Error::corrupt(format!("MBR at sector 0: {e}"))),
    };
    let mut warnings = Vec::new();
    let mut primaries = Vec::new();
    let mut extended: Option<Partition> = None;
    for (i, e) in hdr.iter() {
        if e.sys == 0 || e.sectors == 0 {
            continue;
        }
        let kind = if is_extended(e.sys) {
            PartKind::Extended
        } else {
            PartKind::Primary
        };
        let p = part(i as u32, kind, u64::from(e.starting_lba), e);
        if kind == PartKind::Extended {
            if extended.is_some() {
                warnings.push(format!(
                    "partition {i} is a second extended partition; only the first one is followed"
                ));
            } else {
                extended = Some(p.clone());
            }
        }
        primaries.push(p);
    }
    let dev_len = dev.len();
    check_layout(&primaries.iter().collect::<Vec<_>>(), dev_len, SECTOR)?;
    let logicals = match &extended {
        Some(ext) => walk_ebrs(dev, ext, &mut warnings)?,
        None => Vec::new(),
    };
    check_layout(&logicals.iter().collect::<Vec<_>>(), dev_len, SECTOR)?;
    let mut partitions = primaries;
    partitions.extend(logicals);
    partitions.sort_by_key(|p| p.number);
    Ok(Some(PartitionTable {
        kind: TableKind::Mbr,
        sector_size: SECTOR,
        disk_id: format!("0x{:08x}", u32::from_le_bytes(hdr.disk_signature)),
        first_lba: None,
        last_lba: None,
        partitions,
        warnings,
    }))
}

/// Follow the EBR chain of `ext`: each EBR's first entry is a logical partition relative to
/// the EBR, its second entry links to the next EBR relative to the extended partition start.
fn walk_ebrs(
    dev: &dyn BlockDevice,
    ext: &Partition,
    warnings: &mut Vec<String>,
) -> Result<Vec<Partition>> {
    let ext_start = ext.start / SECTOR;
    let ext_end = ext.end() / SECTOR; // exclusive
    let mut out = Vec::new();
    let mut visited: Vec<u64> = Vec::new();
    let mut ebr = ext_start;
    let mut number = 5u32;
    loop {
        if visited.contains(&ebr) {
            return Err(Error::corrupt(format!(
                "the EBR chain loops: a link leads back to the EBR at sector {ebr}"
            )));
        }
        if visited.len() >= MAX_LOGICAL {
            return Err(Error::corrupt(format!(
                "the EBR chain has more than {MAX_LOGICAL} links"
            )));
        }
        if ebr < ext_start || ebr >= ext_end {
            return Err(Error::corrupt(format!(
                "an EBR link points to sector {ebr}, outside the extended partition {} (sectors {ext_start}-{})",
                ext.number,
                ext_end - 1
            )));
        }
        visited.push(ebr);
        let mut sector = [0u8; 512];
        dev.read_at(&mut sector, ebr * SECTOR)?;
        let hdr = match decode(&sector) {
            Ok(h) => h,
            // An empty extended partition need not hold an EBR.
            Err(mbrman::Error::InvalidSignature) if ebr == ext_start => break,
            Err(mbrman::Error::InvalidSignature) => {
                return Err(Error::corrupt(format!(
                    "the EBR at sector {ebr} has no 0x55AA signature (found {:02x}{:02x})",
                    sector[510], sector[511]
                )))
            }
            Err(e) => return Err(Error::corrupt(format!("the EBR at sector {ebr}: {e}"))),
        };
        let data = &hdr.partition_1;
        if data.sys != 0 && data.sectors != 0 {
            let start = ebr + u64::from(data.starting_lba);
            let end = start + u64::from(data.sectors);
            if data.starting_lba == 0 || end > ext_end {
                return Err(Error::corrupt(format!(
                    "logical partition {number} (sectors {start}-{}) described by the EBR at sector {ebr} lies outside the extended partition (sectors {ext_start}-{})",
                    end - 1,
                    ext_end - 1
                )));
            }
            out.push(part(number, PartKind::Logical, start, data));
            number += 1;
        }
        let link = &hdr.partition_2;
        if link.sys == 0 || link.sectors == 0 {
            break;
        }
        if !is_extended(link.sys) {
            warnings.push(format!(
                "the EBR at sector {ebr} links with type 0x{:02x} instead of an extended type; the chain ends there",
                link.sys
            ));
            break;
        }
        ebr = ext_start + u64::from(link.starting_lba);
    }
    Ok(out)
}

/// CHS address of `lba` in the conventional 255-head, 63-sector geometry (clamped).
fn chs(lba: u64) -> CHS {
    let c = lba / (255 * 63);
    if c > 1023 {
        return CHS::new(1023, 254, 63);
    }
    CHS::new(c as u16, ((lba / 63) % 255) as u8, (lba % 63 + 1) as u8)
}

fn entry(
    sys: u8,
    boot: bool,
    abs_start: u64,
    rel_start: u64,
    sectors: u64,
) -> Result<MBRPartitionEntry> {
    let too_big = || {
        Error::InvalidArgument(format!(
            "a partition of {sectors} sectors at sector {abs_start} does not fit in an MBR (limit 2^32 sectors); use GPT"
        ))
    };
    Ok(MBRPartitionEntry {
        boot: if boot { BOOT_ACTIVE } else { BOOT_INACTIVE },
        first_chs: chs(abs_start),
        sys,
        last_chs: chs(abs_start + sectors - 1),
        starting_lba: u32::try_from(rel_start).map_err(|_| too_big())?,
        sectors: u32::try_from(sectors).map_err(|_| too_big())?,
    })
}

fn encode(h: &MBRHeader) -> Result<[u8; 512]> {
    let mut buf = [0u8; 512];
    h.write_into(&mut Cursor::new(&mut buf[..]))
        .map_err(|e| Error::InvalidArgument(format!("encoding an MBR sector: {e}")))?;
    Ok(buf)
}

/// Sectors for a spec starting at `start`, with `end` (exclusive) the limit.
fn sectors_for(spec: &PartSpec, n: usize, start: u64, end: u64) -> Result<u64> {
    let sectors = match spec.size {
        PartSize::Bytes(b) => b.div_ceil(SECTOR),
        PartSize::Rest => end.saturating_sub(start),
    };
    if sectors == 0 || start.checked_add(sectors).is_none_or(|e| e > end) {
        return Err(Error::InvalidArgument(format!(
            "partition {n} ({} bytes at offset {}) does not fit: only {} bytes are left",
            sectors * SECTOR,
            start * SECTOR,
            end.saturating_sub(start) * SECTOR
        )));
    }
    Ok(sectors)
}

/// Write a fresh MBR table.
pub(super) fn write(dev: &dyn BlockDevice, parts: &[PartSpec]) -> Result<()> {
    let total = dev.len() / SECTOR;
    if total < 2 * ALIGN && !parts.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the device ({} bytes) is too small for an aligned partition",
            dev.len()
        )));
    }
    let sys: Vec<u8> = parts
        .iter()
        .map(|p| types::mbr_type(&p.type_alias))
        .collect::<Result<_>>()?;
    let mut header = MBRHeader::new(random_id());
    let n_primary = if parts.len() <= 4 { parts.len() } else { 3 };
    let mut next = ALIGN;
    for i in 0..n_primary {
        let start = align_up(next, ALIGN);
        let sectors = sectors_for(&parts[i], i + 1, start, total)?;
        if let Some(slot) = header.get_mut(i + 1) {
            *slot = entry(sys[i], parts[i].bootable, start, start, sectors)?;
        }
        next = start + sectors;
    }
    // (start, sectors, ebr) of each logical partition.
    let mut logicals = Vec::new();
    let ext_start = align_up(next, ALIGN);
    if parts.len() > 4 {
        if ext_start + 2 * ALIGN > total {
            return Err(Error::InvalidArgument(
                "no room left for the extended partition".into(),
            ));
        }
        header.partition_4 = entry(EXTENDED, false, ext_start, ext_start, total - ext_start)?;
        let mut ebr = ext_start;
        for (i, spec) in parts.iter().enumerate().skip(3) {
            let start = ebr + ALIGN;
            let sectors = sectors_for(spec, i + 2, start, total)?;
            logicals.push((start, sectors, ebr));
            ebr = align_up(start + sectors, ALIGN);
        }
    }
    // Clear GPT remnants: the primary header area and a backup header at the last sector.
    let zero = vec![0u8; (33 * SECTOR) as usize];
    if total > 40 {
        dev.write_at(&zero, SECTOR)?;
        let mut last = [0u8; 512];
        dev.read_at(&mut last, (total - 1) * SECTOR)?;
        if &last[..8] == b"EFI PART" {
            dev.write_at(&zero[..512], (total - 1) * SECTOR)?;
        }
    }
    dev.write_at(&encode(&header)?, 0)?;
    for (k, &(start, sectors, ebr)) in logicals.iter().enumerate() {
        let spec = &parts[3 + k];
        let mut e = MBRHeader::new([0; 4]);
        e.partition_1 = entry(sys[3 + k], spec.bootable, start, start - ebr, sectors)?;
        if let Some(&(nstart, nsectors, nebr)) = logicals.get(k + 1) {
            let span = nstart + nsectors - nebr;
            e.partition_2 = entry(EXTENDED, false, nebr, nebr - ext_start, span)?;
        }
        dev.write_at(&encode(&e)?, ebr * SECTOR)?;
    }
    Ok(())
}

/// A random non-zero disk identifier.
fn random_id() -> [u8; 4] {
    loop {
        let u = uuid::Uuid::new_v4();
        let b = u.as_bytes();
        let id = [b[0], b[1], b[2], b[3]];
        if id != [0; 4] {
            return id;
        }
    }
}

/// Give primary partition `number` (1-4) `size` bytes: its entry's sector count and end
/// CHS. Refused for a logical or extended partition, a size that is not whole sectors, and
/// an end beyond [`super::MBR_MAX_END`].
pub(super) fn set_primary_size(dev: &dyn BlockDevice, number: u32, size: u64) -> Result<()> {
    if !(1..=4).contains(&number) {
        return Err(Error::unsupported(format!(
            "partition {number} is a logical partition of an MBR table; only primary \
             partitions (1-4) are resized"
        )));
    }
    if size == 0 || size % SECTOR != 0 {
        return Err(Error::InvalidArgument(format!(
            "partition size {size} is not a positive multiple of the {SECTOR}-byte sector"
        )));
    }
    let mut s0 = [0u8; 512];
    dev.read_at(&mut s0, 0)?;
    let mut hdr = decode(&s0).map_err(|e| Error::corrupt(format!("MBR at sector 0: {e}")))?;
    let e = &mut hdr[number as usize];
    if e.sys == 0 || is_extended(e.sys) {
        return Err(Error::InvalidArgument(format!(
            "MBR entry {number} is {}; it cannot be resized",
            if e.sys == 0 {
                "empty"
            } else {
                "an extended partition"
            }
        )));
    }
    let start = u64::from(e.starting_lba);
    let sectors = size / SECTOR;
    if (start + sectors) * SECTOR > super::MBR_MAX_END {
        return Err(Error::unsupported(format!(
            "partition {number} would end at byte {}, beyond the 2 TiB an MBR table can \
             address (use a GPT)",
            (start + sectors) * SECTOR
        )));
    }
    e.sectors = sectors as u32;
    e.last_chs = chs(start + sectors - 1);
    let mut out = Cursor::new(s0.to_vec());
    hdr.write_into(&mut out)
        .map_err(|e| Error::corrupt(format!("encoding the MBR: {e}")))?;
    dev.write_at(&out.into_inner()[..512], 0)
}
