//! Partition tables (MBR with extended/logical partitions, and GPT): read, validate, write a
//! fresh table, and move a GPT backup to the end of a resized device.
//!
//! Other disk labels (BSD, Sun, SGI, Atari) are recognised and refused by name
//! (`foreign.rs`), and a filesystem whose first sector holds boot code with an MBR signature
//! but no partitions is a filesystem, not an empty table.
//!
//! The on-disk structures are decoded with the `mbrman` and `gpt` crates; the walks and
//! checks around them (EBR chains, header fallback, bounds) are ours, see `mbr.rs`/`gpt.rs`.

mod foreign;
mod gpt;
mod mbr;
pub mod types;

pub use foreign::ForeignLabel;

use crate::block::{BlockDevice, Extent};
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Alignment of new partitions, like sfdisk/fdisk: 1 MiB.
pub(crate) const ALIGN_BYTES: u64 = 1 << 20;

/// The kind of partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Mbr,
    Gpt,
}

impl TableKind {
    /// "mbr" or "gpt".
    pub fn name(&self) -> &'static str {
        match self {
            TableKind::Mbr => "mbr",
            TableKind::Gpt => "gpt",
        }
    }
}

/// Where a partition lives in an MBR table. GPT partitions are all `Primary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Primary,
    Extended,
    Logical,
}

/// One partition, in bytes, with the fields `sfdisk -J` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Linux numbering: MBR primaries 1-4, logicals from 5; GPT: entry index + 1.
    pub number: u32,
    /// Offset of the first byte on the device.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    pub kind: PartKind,
    /// MBR: "0x83" style; GPT: the uppercase type GUID.
    pub type_code: String,
    /// Human-readable type name as `sfdisk -l` prints it.
    pub type_name: String,
    /// GPT partition name.
    pub name: Option<String>,
    /// GPT unique partition GUID, uppercase.
    pub uuid: Option<String>,
    /// MBR active flag; GPT legacy BIOS bootable attribute (bit 2).
    pub bootable: bool,
    /// GPT attribute bits (0 for MBR).
    pub attributes: u64,
}

impl Partition {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// A decoded partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub kind: TableKind,
    /// Logical sector size the table is expressed in (512 or 4096).
    pub sector_size: u64,
    /// MBR: "0x1234abcd" like `sfdisk -J`; GPT: the disk GUID, uppercase.
    pub disk_id: String,
    /// GPT first usable LBA.
    pub first_lba: Option<u64>,
    /// GPT last usable LBA.
    pub last_lba: Option<u64>,
    /// Sorted by number; for MBR the extended container is included.
    pub partitions: Vec<Partition>,
    /// Soft problems found while reading (damaged backup, misplaced backup header, ...).
    pub warnings: Vec<String>,
}

impl PartitionTable {
    /// The partition with Linux number `n`.
    pub fn partition(&self, n: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == n)
    }
}

/// What a disk holds at its start: a partition table, or none (the whole disk is one
/// volume, or empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskLayout {
    /// An MBR or GPT partition table.
    Table(PartitionTable),
    /// No partition table. `boot_code` is true when sector 0 has the MBR signature 0x55AA
    /// but no partition and a filesystem starts at sector 0: boot code installed into the
    /// filesystem (GRUB or extlinux in a partition that was then copied out), not a table.
    Whole { boot_code: bool },
}

/// Read the partition table of `dev`. `Ok(None)` when there is none (see [`read_layout`]).
pub fn read_table(dev: &dyn BlockDevice) -> Result<Option<PartitionTable>> {
    Ok(match read_layout(dev)? {
        DiskLayout::Table(t) => Some(t),
        DiskLayout::Whole { .. } => None,
    })
}

/// Read what `dev` holds at its start. No table when sector 0 has no 0x55AA signature (and
/// there is no GPT header), is all zero, is a FAT boot sector, or holds boot code over a
/// filesystem (an MBR signature, no partition, a filesystem superblock). A protective MBR
/// (type 0xEE) means GPT. A BSD, Sun, SGI or Atari label is [`Error::UnsupportedLabel`].
pub fn read_layout(dev: &dyn BlockDevice) -> Result<DiskLayout> {
    let whole = Ok(DiskLayout::Whole { boot_code: false });
    if dev.len() < 512 {
        return whole;
    }
    let mut s0 = [0u8; 512];
    dev.read_at(&mut s0, 0)?;
    // A GPT with a wiped/absent MBR is still recognised by its header signature.
    let gpt_sig = gpt::has_gpt_signature(dev)?;
    if !gpt_sig {
        if let Some(label) = foreign::sun_or_sgi(dev)? {
            return Err(Error::UnsupportedLabel { label });
        }
    }
    if s0[510..512] != [0x55, 0xaa] {
        if gpt_sig {
            let mut t = gpt::read(dev)?;
            t.warnings
                .push("the protective MBR is missing (no 0x55AA signature at LBA 0)".into());
            return Ok(DiskLayout::Table(t));
        }
        return no_table(dev);
    }
    let types = mbr::type_bytes(&s0);
    if types.contains(&0xee) || (gpt_sig && types.iter().all(|&t| t == 0)) {
        return gpt::read(dev).map(DiskLayout::Table);
    }
    match mbr::read(dev, &s0)? {
        Some(t) if t.partitions.is_empty() && crate::sniff::sniff(dev)?.is_some() => {
            Ok(DiskLayout::Whole { boot_code: true })
        }
        Some(t) => Ok(DiskLayout::Table(t)),
        None => no_table(dev),
    }
}

/// Neither MBR nor GPT: a BSD label, an Atari root sector (a heuristic, so only when no
/// filesystem is found), or nothing: the whole disk.
fn no_table(dev: &dyn BlockDevice) -> Result<DiskLayout> {
    let label = if foreign::is_bsd(dev)? {
        ForeignLabel::Bsd
    } else if crate::sniff::sniff(dev)?.is_none() && foreign::is_atari(dev)? {
        ForeignLabel::Atari
    } else {
        return Ok(DiskLayout::Whole { boot_code: false });
    };
    Err(Error::UnsupportedLabel { label })
}

/// The size of a partition to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartSize {
    /// Exactly this many bytes (rounded up to whole sectors).
    Bytes(u64),
    /// Everything up to the end of the usable area (only for the last partition).
    Rest,
}

/// A partition to create with [`write_table`]; parsed from `size=200M,type=esp,name=EFI,bootable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    pub size: PartSize,
    /// "linux", "esp", "swap", "bios", "lvm", "raid", "home", "fat32", an MBR hex code
    /// ("0x83"/"83"), or a GPT type GUID.
    pub type_alias: String,
    /// GPT partition name (at most 36 UTF-16 units); MBR has no names and ignores it.
    pub name: Option<String>,
    pub bootable: bool,
    /// Filesystem to create in the partition (used by the CLI, not here).
    pub fs: Option<String>,
    /// Source to fill the partition from (used by the CLI, not here).
    pub from: Option<String>,
}

const SPEC_KEYS: &str = "size, type, name, bootable, fs, from";

impl FromStr for PartSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut spec = PartSpec {
            size: PartSize::Rest,
            type_alias: "linux".into(),
            name: None,
            bootable: false,
            fs: None,
            from: None,
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
                None => (item.to_ascii_lowercase(), None),
            };
            let need = |v: Option<&'_ str>| -> Result<String> {
                v.filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "`{key}` in partition spec `{s}` needs a value"
                        ))
                    })
            };
            match key.as_str() {
                "size" => {
                    let v = need(value)?;
                    spec.size = if v.eq_ignore_ascii_case("rest") {
                        PartSize::Rest
                    } else {
                        PartSize::Bytes(parse_size(&v)?)
                    };
                }
                "type" => {
                    let v = need(value)?;
                    if !types::is_valid_alias(&v) {
                        return Err(Error::InvalidArgument(format!(
                            "unknown partition type `{v}`: expected one of {}, an MBR hex code (0x83) or a GPT type GUID",
                            types::alias_names().join(", ")
                        )));
                    }
                    spec.type_alias = v;
                }
                "name" => spec.name = Some(need(value)?),
                "fs" => spec.fs = Some(need(value)?),
                "from" => spec.from = Some(need(value)?),
                "bootable" => {
                    spec.bootable = match value.map(|v| v.to_ascii_lowercase()) {
                        None => true,
                        Some(v) if ["1", "yes", "true", "on"].contains(&v.as_str()) => true,
                        Some(v) if ["0", "no", "false", "off"].contains(&v.as_str()) => false,
                        Some(v) => {
                            return Err(Error::InvalidArgument(format!(
                                "bootable takes yes/no, found `{v}`"
                            )))
                        }
                    }
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown key `{key}` in partition spec `{s}`; valid keys are {SPEC_KEYS}"
                    )))
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for PartSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.size {
            PartSize::Bytes(b) => write!(f, "size={b}")?,
            PartSize::Rest => write!(f, "size=rest")?,
        }
        write!(f, ",type={}", self.type_alias)?;
        if let Some(n) = &self.name {
            write!(f, ",name={n}")?;
        }
        if self.bootable {
            write!(f, ",bootable")?;
        }
        if let Some(v) = &self.fs {
            write!(f, ",fs={v}")?;
        }
        if let Some(v) = &self.from {
            write!(f, ",from={v}")?;
        }
        Ok(())
    }
}

/// Parse a size: bytes, or a number (decimals allowed) with a binary suffix K/M/G/T/P/E
/// (optionally followed by "iB" or "B"), like qemu-img.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || {
        Error::InvalidArgument(format!(
            "invalid size `{s}`: expected bytes or a number with a K/M/G/T suffix (e.g. 200M)"
        ))
    };
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(num_end);
    let suffix = suffix.trim().to_ascii_lowercase();
    let suffix = suffix
        .strip_suffix("ib")
        .or_else(|| suffix.strip_suffix('b'))
        .unwrap_or(&suffix);
    let shift = match suffix {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        "e" => 60,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 9 || frac.contains('.') {
        return Err(bad());
    }
    let int: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut bytes = int.checked_shl(shift).filter(|v| v >> shift == int);
    if !frac.is_empty() {
        let f: u64 = frac.parse().map_err(|_| bad())?;
        let scale = 10u64.pow(frac.len() as u32);
        let extra = ((f as u128) << shift) / scale as u128;
        bytes = bytes.and_then(|b| u64::try_from(extra).ok().and_then(|e| b.checked_add(e)));
    }
    match bytes {
        Some(0) => Err(Error::InvalidArgument(format!("size `{s}` is zero"))),
        Some(b) => Ok(b),
        None => Err(Error::InvalidArgument(format!("size `{s}` is too large"))),
    }
}

/// Write a fresh table of `kind` with `parts` onto `dev` and return it as read back.
///
/// Partitions are 1 MiB aligned. GPT: 128 entries, protective MBR, backup at the end,
/// random GUIDs. MBR: random disk id; with more than 4 partitions, 1-3 are primary and the
/// rest are logicals inside an extended partition 4 spanning the rest of the disk.
pub fn write_table(
    dev: &dyn BlockDevice,
    kind: TableKind,
    parts: &[PartSpec],
) -> Result<PartitionTable> {
    if let Some(i) = parts
        .iter()
        .take(parts.len().saturating_sub(1))
        .position(|p| p.size == PartSize::Rest)
    {
        return Err(Error::InvalidArgument(format!(
            "partition {} has size=rest but is not the last partition",
            i + 1
        )));
    }
    match kind {
        TableKind::Mbr => mbr::write(dev, parts)?,
        TableKind::Gpt => gpt::write(dev, parts)?,
    }
    dev.flush()?;
    read_table(dev)?.ok_or_else(|| Error::corrupt("the table just written cannot be read back"))
}

/// Rewrite the GPT backup header and entries at the end of a device whose size changed, and
/// fix the protective MBR's size. A no-op for MBR disks and disks without a table.
pub fn relocate_gpt_backup(dev: &dyn BlockDevice) -> Result<()> {
    match read_table_kind(dev)? {
        Some(TableKind::Gpt) => gpt::relocate_backup(dev, None),
        _ => Ok(()),
    }
}

/// Give partition `number` the size `size` in bytes (its start stays) on a device whose
/// length may have changed. GPT: the entry's last LBA changes, the backup entry array and
/// header move to the end of the device, `last_usable` follows, both headers get new CRCs
/// and the protective MBR covers the device. MBR: the primary entry's sector count (and
/// end CHS) changes; a size beyond the format's 2^32-sector limit is refused, and so is a
/// logical partition. Nothing else is written; the caller checks that the partition is
/// the last one.
pub fn resize_partition(dev: &dyn BlockDevice, number: u32, size: u64) -> Result<()> {
    match read_table_kind(dev)? {
        Some(TableKind::Gpt) => gpt::relocate_backup(dev, Some((number, size))),
        Some(TableKind::Mbr) => mbr::set_primary_size(dev, number, size),
        None => Err(Error::InvalidArgument(
            "the device has no partition table".into(),
        )),
    }?;
    dev.flush()
}

/// Where an MBR partition can end at most: sector 2^32 (2 TiB), as fdisk and sfdisk keep
/// partitions (start and length are 32-bit sector counts).
pub const MBR_MAX_END: u64 = 1 << 41;

/// The table kind without full validation (a GPT whose partitions now extend beyond a
/// shrunken device is still a GPT).
fn read_table_kind(dev: &dyn BlockDevice) -> Result<Option<TableKind>> {
    if dev.len() < 512 {
        return Ok(None);
    }
    let mut s0 = [0u8; 512];
    dev.read_at(&mut s0, 0)?;
    if gpt::has_gpt_signature(dev)? || mbr::type_bytes(&s0).contains(&0xee) {
        return Ok(Some(TableKind::Gpt));
    }
    Ok((s0[510..512] == [0x55, 0xaa]).then_some(TableKind::Mbr))
}

/// Check that partitions (all in bytes) lie within `dev_len` and do not overlap each other;
/// `sector` is only used to express positions in sectors in messages.
pub(crate) fn check_layout(parts: &[&Partition], dev_len: u64, sector: u64) -> Result<()> {
    for p in parts {
        if p.size == 0 {
            return Err(Error::corrupt(format!(
                "partition {} has zero size",
                p.number
            )));
        }
        if p.start.checked_add(p.size).is_none_or(|e| e > dev_len) {
            return Err(Error::corrupt(format!(
                "partition {} (sectors {}-{}) extends beyond the end of the device ({} sectors); the image may be truncated",
                p.number,
                p.start / sector,
                (p.start.saturating_add(p.size) / sector).saturating_sub(1),
                dev_len / sector
            )));
        }
    }
    let mut sorted: Vec<&&Partition> = parts.iter().collect();
    sorted.sort_by_key(|p| p.start);
    for w in sorted.windows(2) {
        if let [a, b] = w {
            if a.end() > b.start {
                return Err(Error::corrupt(format!(
                    "partitions {} (sectors {}-{}) and {} (sectors {}-{}) overlap",
                    a.number,
                    a.start / sector,
                    a.end() / sector - 1,
                    b.number,
                    b.start / sector,
                    b.end() / sector - 1
                )));
            }
        }
    }
    Ok(())
}

/// Round `v` up to a multiple of `a` (`a` > 0).
pub(crate) fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a).saturating_mul(a)
}

/// A `&dyn BlockDevice` that is `Debug` (the `gpt` crate's `DiskDevice` bound wants it).
pub(crate) struct DevRef<'a>(pub &'a dyn BlockDevice);

impl fmt::Debug for DevRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} device of {} bytes",
            self.0.format_name(),
            self.0.len()
        )
    }
}

impl BlockDevice for DevRef<'_> {
    fn len(&self) -> u64 {
        self.0.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.0.write_at(buf, offset)
    }
    fn flush(&self) -> Result<()> {
        self.0.flush()
    }
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        self.0.extents(offset, len)
    }
    fn format_name(&self) -> &'static str {
        self.0.format_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("200M").unwrap(), 200 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("2t").unwrap(), 2 << 40);
        for bad in ["", "M", "12Q", "0", "1.2.3", "99999999999E", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs() {
        let s: PartSpec = "size=200M,type=esp,name=EFI,bootable".parse().unwrap();
        assert_eq!(s.size, PartSize::Bytes(200 << 20));
        assert_eq!(s.type_alias, "esp");
        assert_eq!(s.name.as_deref(), Some("EFI"));
        assert!(s.bootable);
        let r: PartSpec = "size=rest,fs=ext4,from=./root".parse().unwrap();
        assert_eq!(r.size, PartSize::Rest);
        assert_eq!(r.fs.as_deref(), Some("ext4"));
        assert_eq!(r.from.as_deref(), Some("./root"));
        assert_eq!(r.type_alias, "linux");
        let e = "size=1M,colour=red"
            .parse::<PartSpec>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("colour") && e.contains("size, type, name"),
            "{e}"
        );
        assert!("type=floppy".parse::<PartSpec>().is_err());
        assert!("size=".parse::<PartSpec>().is_err());
        assert!("bootable=maybe".parse::<PartSpec>().is_err());
        assert_eq!(s.to_string().parse::<PartSpec>().unwrap(), s);
    }
}
