//! GUID partition tables: read with primary/backup fallback, write a fresh table, and move
//! the backup structures to the end of a resized device.
//!
//! Headers and entry arrays are decoded, CRC-checked and encoded by the `gpt` crate. Around
//! it we add what it lacks for untrusted images: `GptConfig::open_from_device` panics
//! (`assert_eq!`) on an entry size other than 128, allocates `num_parts * part_size` bytes
//! straight from the header, never validates `current_lba`/array bounds, and does not fall
//! back to the backup when only the primary *entry array* is damaged. So every header is
//! validated here before the crate reads its entries. For relocation we rewrite the headers
//! ourselves via `Header::write_{primary,backup}`, because `GptDisk::write` compacts used
//! entries to the front of the array (renumbering partitions after a gap) and keeps a stale
//! `last_usable` when the device shrinks.

use super::{
    align_up, check_layout, types, DevRef, PartKind, PartSize, PartSpec, Partition, PartitionTable,
    TableKind,
};
use crate::block::{BlockDevice, DeviceIo, Slice};
use crate::{Error, Result};
use ::gpt::disk::LogicalBlockSize;
use ::gpt::header::Header;
use ::gpt::partition::Partition as Entry;
use std::collections::BTreeMap;

/// Largest entry array accepted (8192 entries of 128 bytes); real tables use 16 KiB.
const MAX_ARRAY_BYTES: u64 = 1 << 20;
/// Entries in a new table.
const NEW_ENTRIES: u64 = 128;
/// GPT attribute bit 2: legacy BIOS bootable.
const LEGACY_BOOTABLE: u64 = 1 << 2;

/// True when "EFI PART" appears at LBA 1 for a 512- or 4096-byte sector size.
pub(super) fn has_gpt_signature(dev: &dyn BlockDevice) -> Result<bool> {
    for ss in [512u64, 4096] {
        if dev.len() >= ss + 8 {
            let mut sig = [0u8; 8];
            dev.read_at(&mut sig, ss)?;
            if &sig == b"EFI PART" {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A validated header and its entries.
struct Loaded {
    ss: u64,
    lb: LogicalBlockSize,
    header: Header,
    entries: BTreeMap<u32, Entry>,
    warnings: Vec<String>,
}

/// The sector size of the table: the one whose LBA 1 (or last LBA) holds a GPT signature.
fn sector_size(dev: &dyn BlockDevice) -> Result<(u64, LogicalBlockSize)> {
    let mut sig = [0u8; 8];
    for (ss, lb) in [
        (512u64, LogicalBlockSize::Lb512),
        (4096, LogicalBlockSize::Lb4096),
    ] {
        if dev.len() >= ss + 8 {
            dev.read_at(&mut sig, ss)?;
            if &sig == b"EFI PART" {
                return Ok((ss, lb));
            }
        }
        let last = (dev.len() / ss).saturating_sub(1) * ss;
        if last > 0 {
            dev.read_at(&mut sig, last)?;
            if &sig == b"EFI PART" {
                return Ok((ss, lb));
            }
        }
    }
    Ok((512, LogicalBlockSize::Lb512))
}

/// Read and validate the header at `lba`. Errors are reasons, for messages.
fn header_at(
    dev: &dyn BlockDevice,
    lba: u64,
    ss: u64,
    lb: LogicalBlockSize,
) -> std::result::Result<Header, String> {
    let total = dev.len() / ss;
    if lba == 0 || lba >= total {
        return Err(format!("LBA {lba} is outside the device ({total} sectors)"));
    }
    // The crate reads "the primary header" at LBA 1 of what it is given: give it a window
    // whose LBA 1 is `lba`.
    let window = Slice::new(DevRef(dev), (lba - 1) * ss, 2 * ss).map_err(|e| e.to_string())?;
    let h = ::gpt::header::read_header_from_arbitrary_device(&mut DeviceIo::new(window), lb)
        .map_err(|e| e.to_string())?;
    if h.current_lba != lba {
        return Err(format!(
            "the header at LBA {lba} says it is at LBA {}",
            h.current_lba
        ));
    }
    if h.header_size_le < 92 || u64::from(h.header_size_le) > ss {
        return Err(format!(
            "header size {} is not between 92 and {ss}",
            h.header_size_le
        ));
    }
    if h.part_size != 128 {
        return Err(format!(
            "partition entry size {} is not supported (expected 128)",
            h.part_size
        ));
    }
    let bytes = u64::from(h.num_parts) * 128;
    if h.num_parts == 0 || bytes > MAX_ARRAY_BYTES {
        return Err(format!(
            "{} partition entries is outside the supported range 1-{}",
            h.num_parts,
            MAX_ARRAY_BYTES / 128
        ));
    }
    let array_end = h
        .part_start
        .checked_mul(ss)
        .and_then(|s| s.checked_add(bytes));
    if h.part_start < 2 || array_end.is_none_or(|e| e > dev.len()) {
        return Err(format!(
            "the partition entry array at LBA {} ({bytes} bytes) is outside the device",
            h.part_start
        ));
    }
    if h.first_usable > h.last_usable.saturating_add(1) {
        return Err(format!(
            "first usable LBA {} is after last usable LBA {}",
            h.first_usable, h.last_usable
        ));
    }
    Ok(h)
}

/// Header at `lba` plus its CRC-checked entries.
fn table_at(
    dev: &dyn BlockDevice,
    lba: u64,
    ss: u64,
    lb: LogicalBlockSize,
) -> std::result::Result<(Header, BTreeMap<u32, Entry>), String> {
    let h = header_at(dev, lba, ss, lb)?;
    let entries = ::gpt::partition::file_read_partitions(&mut DeviceIo::new(DevRef(dev)), &h, lb)
        .map_err(|e| format!("entry array at LBA {}: {e}", h.part_start))?;
    Ok((h, entries))
}

/// Find a usable header: the primary, else the backup (with a warning).
fn load(dev: &dyn BlockDevice) -> Result<Loaded> {
    let (ss, lb) = sector_size(dev)?;
    let total = dev.len() / ss;
    let mut warnings = Vec::new();
    match table_at(dev, 1, ss, lb) {
        Ok((header, entries)) => {
            let bak = header.backup_lba;
            if bak >= total {
                warnings.push(format!(
                    "the backup GPT header should be at LBA {bak}, beyond the end of the device ({total} sectors): the image was truncated or shrunk"
                ));
            } else {
                if let Err(e) = table_at(dev, bak, ss, lb) {
                    warnings.push(format!(
                        "the backup GPT header at LBA {bak} is unusable ({e})"
                    ));
                }
                if bak != total - 1 {
                    warnings.push(format!(
                        "the backup GPT header is at LBA {bak}, not at the end of the device (LBA {}); the device was resized",
                        total - 1
                    ));
                }
            }
            Ok(Loaded {
                ss,
                lb,
                header,
                entries,
                warnings,
            })
        }
        Err(pe) => {
            let mut candidates = vec![total.saturating_sub(1)];
            if let Ok(h) = header_at(dev, 1, ss, lb) {
                candidates.insert(0, h.backup_lba);
            }
            let mut be = String::new();
            for lba in candidates {
                match table_at(dev, lba, ss, lb) {
                    Ok((header, entries)) => {
                        warnings.push(format!(
                            "the primary GPT header at LBA 1 is unusable ({pe}); using the backup header at LBA {lba}"
                        ));
                        return Ok(Loaded {
                            ss,
                            lb,
                            header,
                            entries,
                            warnings,
                        });
                    }
                    Err(e) => be = format!("backup at LBA {lba}: {e}"),
                }
            }
            Err(Error::corrupt(format!(
                "both GPT headers are unusable: primary at LBA 1: {pe}; {be}"
            )))
        }
    }
}

fn upper(u: &uuid::Uuid) -> String {
    u.hyphenated().to_string().to_uppercase()
}

/// Read and validate a GPT.
pub(super) fn read(dev: &dyn BlockDevice) -> Result<PartitionTable> {
    let l = load(dev)?;
    let ss = l.ss;
    let mut partitions = Vec::new();
    for (&number, e) in l.entries.iter().filter(|(_, e)| e.is_used()) {
        if e.last_lba < e.first_lba {
            return Err(Error::corrupt(format!(
                "partition {number} ends (LBA {}) before it starts (LBA {})",
                e.last_lba, e.first_lba
            )));
        }
        let size = (e.last_lba - e.first_lba)
            .checked_add(1)
            .and_then(|n| n.checked_mul(ss));
        let (Some(start), Some(size)) = (e.first_lba.checked_mul(ss), size) else {
            return Err(Error::corrupt(format!(
                "partition {number} (LBA {}-{}) is beyond any device size",
                e.first_lba, e.last_lba
            )));
        };
        let type_code = upper(&e.part_type_guid.guid);
        partitions.push(Partition {
            number,
            start,
            size,
            kind: PartKind::Primary,
            type_name: types::gpt_type_name(&type_code).to_string(),
            type_code,
            name: (!e.name.is_empty()).then(|| e.name.clone()),
            uuid: Some(upper(&e.part_guid)),
            bootable: e.flags & LEGACY_BOOTABLE != 0,
            attributes: e.flags,
        });
    }
    check_layout(&partitions.iter().collect::<Vec<_>>(), dev.len(), ss)?;
    let h = &l.header;
    for p in &partitions {
        let (first, last) = (p.start / ss, p.end() / ss - 1);
        if first < h.first_usable || last > h.last_usable {
            return Err(Error::corrupt(format!(
                "partition {} (LBA {first}-{last}) lies outside the usable area (LBA {}-{}) of the GPT",
                p.number, h.first_usable, h.last_usable
            )));
        }
    }
    Ok(PartitionTable {
        kind: TableKind::Gpt,
        sector_size: ss,
        disk_id: upper(&h.disk_guid),
        first_lba: Some(h.first_usable),
        last_lba: Some(h.last_usable),
        partitions,
        warnings: l.warnings,
    })
}

fn gpt_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::io(what.to_string(), std::io::Error::other(e.to_string()))
}

/// Write a fresh GPT (512-byte sectors, 128 entries) with a protective MBR.
pub(super) fn write(dev: &dyn BlockDevice, parts: &[PartSpec]) -> Result<()> {
    const SS: u64 = 512;
    let align = super::ALIGN_BYTES / SS;
    let total = dev.len() / SS;
    let array_lbs = NEW_ENTRIES * 128 / SS;
    if total < align + 2 * (array_lbs + 1) + 1 {
        return Err(Error::InvalidArgument(format!(
            "the device ({} bytes) is too small for a GPT",
            dev.len()
        )));
    }
    if parts.len() as u64 > NEW_ENTRIES {
        return Err(Error::InvalidArgument(format!(
            "{} partitions requested; a GPT holds at most {NEW_ENTRIES}",
            parts.len()
        )));
    }
    let last_usable = total - 1 - array_lbs - 1;
    let mut layout = Vec::new();
    let mut next = align;
    for (i, spec) in parts.iter().enumerate() {
        let ty = types::gpt_type(&spec.type_alias)?;
        let name = spec.name.clone().unwrap_or_default();
        if name.encode_utf16().count() > 36 {
            return Err(Error::InvalidArgument(format!(
                "partition name `{name}` is longer than the 36 UTF-16 units a GPT entry holds"
            )));
        }
        let start = align_up(next, align);
        let sectors = match spec.size {
            PartSize::Bytes(b) => b.div_ceil(SS),
            PartSize::Rest => (last_usable + 1).saturating_sub(start),
        };
        if sectors == 0 || start.saturating_add(sectors) > last_usable + 1 {
            return Err(Error::InvalidArgument(format!(
                "partition {} ({} bytes at offset {}) does not fit: the usable area ends at byte {}",
                i + 1,
                sectors * SS,
                start * SS,
                (last_usable + 1) * SS
            )));
        }
        let flags = if spec.bootable { LEGACY_BOOTABLE } else { 0 };
        layout.push((name, start, sectors, ty, flags));
        next = start + sectors;
    }
    let mut io = DeviceIo::new(DevRef(dev));
    ::gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(total - 1).unwrap_or(u32::MAX))
        .overwrite_lba0(&mut io)
        .map_err(|e| gpt_err("writing the protective MBR", e))?;
    let mut disk = ::gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(io, None)
        .map_err(|e| gpt_err("creating the GPT", e))?;
    for (i, (name, start, sectors, ty, flags)) in layout.into_iter().enumerate() {
        disk.add_partition_at(&name, i as u32 + 1, start, sectors, ty.into(), flags)
            .map_err(|e| gpt_err(&format!("adding partition {}", i + 1), e))?;
    }
    disk.write().map_err(|e| gpt_err("writing the GPT", e))?;
    Ok(())
}

/// Move the backup header and entry array to the end of the device, set `last_usable` to
/// match, rewrite the primary, and resize the protective MBR entry. With `resize` =
/// `(N, bytes)`, partition N is also given that size (its start stays) in both arrays.
pub(super) fn relocate_backup(dev: &dyn BlockDevice, resize: Option<(u32, u64)>) -> Result<()> {
    let mut l = load(dev)?;
    let (ss, lb) = (l.ss, l.lb);
    let h = &l.header;
    let total = dev.len() / ss;
    let bytes = u64::from(h.num_parts) * 128;
    let array_lbs = bytes.div_ceil(ss);
    // Validated by header_at: bytes <= MAX_ARRAY_BYTES and the array lies inside the device.
    let mut array = vec![0u8; bytes as usize];
    dev.read_at(&mut array, h.part_start * ss)?;
    if let Some((n, size)) = resize {
        let e = l
            .entries
            .get_mut(&n)
            .filter(|e| e.is_used())
            .ok_or_else(|| Error::InvalidArgument(format!("the GPT has no partition {n}")))?;
        if size == 0 || size % ss != 0 {
            return Err(Error::InvalidArgument(format!(
                "partition size {size} is not a positive multiple of the {ss}-byte sector"
            )));
        }
        e.last_lba = e.first_lba + size / ss - 1;
        // The entry's last LBA: bytes 40..48 of its 128-byte slot.
        let at = (n as usize - 1) * 128 + 40;
        array[at..at + 8].copy_from_slice(&e.last_lba.to_le_bytes());
    }
    let h = &l.header;
    let new_bak = total - 1;
    let new_array = new_bak
        .checked_sub(array_lbs)
        .filter(|&a| a > h.first_usable)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the device ({total} sectors) is too small for its GPT"
            ))
        })?;
    let new_last = new_array - 1;
    for (n, e) in l.entries.iter().filter(|(_, e)| e.is_used()) {
        if e.last_lba > new_last {
            return Err(Error::InvalidArgument(format!(
                "partition {n} ends at LBA {}, beyond the last usable LBA {new_last} of the resized device",
                e.last_lba
            )));
        }
    }
    let from_backup = h.current_lba != 1;
    let old_bak = if from_backup {
        h.current_lba
    } else {
        h.backup_lba
    };
    let mut primary = h.clone();
    primary.current_lba = 1;
    primary.backup_lba = new_bak;
    primary.last_usable = new_last;
    if from_backup {
        // The backup does not record where the primary array was; the standard place is LBA 2.
        primary.part_start = 2;
        if 2 + array_lbs > h.first_usable {
            return Err(Error::corrupt(
                "no room for the primary entry array before the first usable LBA",
            ));
        }
    }
    let mut backup = primary.clone();
    backup.current_lba = new_bak;
    backup.backup_lba = 1;
    backup.part_start = new_array;

    let mut io = DeviceIo::new(DevRef(dev));
    dev.write_at(&array, new_array * ss)?;
    if from_backup || resize.is_some() {
        dev.write_at(&array, primary.part_start * ss)?;
    }
    backup
        .write_backup(&mut io, lb)
        .map_err(|e| gpt_err("writing the backup GPT header", e))?;
    primary
        .write_primary(&mut io, lb)
        .map_err(|e| gpt_err("writing the primary GPT header", e))?;
    // Erase the stale backup header left in what is now free space.
    if old_bak != new_bak && old_bak > h.last_usable && old_bak < new_array {
        dev.write_at(&vec![0u8; ss as usize], old_bak * ss)?;
    }
    fix_protective_mbr(dev, total)?;
    dev.flush()
}

/// Make the protective (0xEE) entry cover the whole device again.
fn fix_protective_mbr(dev: &dyn BlockDevice, total: u64) -> Result<()> {
    let mut s0 = [0u8; 512];
    dev.read_at(&mut s0, 0)?;
    let size = u32::try_from(total - 1).unwrap_or(u32::MAX);
    let mut io = DeviceIo::new(DevRef(dev));
    match mbrman::MBRHeader::read_from(&mut std::io::Cursor::new(&s0[..])) {
        Ok(mut hdr) => {
            let mut changed = false;
            for (_, e) in hdr.iter_mut() {
                if e.sys == 0xee && e.starting_lba == 1 && e.sectors != size {
                    e.sectors = size;
                    changed = true;
                }
            }
            if changed {
                hdr.write_into(&mut io)
                    .map_err(|e| gpt_err("writing the protective MBR", e))?;
            }
        }
        Err(_) => {
            ::gpt::mbr::ProtectiveMBR::with_lb_size(size)
                .overwrite_lba0(&mut io)
                .map_err(|e| gpt_err("writing the protective MBR", e))?;
        }
    }
    Ok(())
}
