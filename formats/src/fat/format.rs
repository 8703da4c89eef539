//! Making a new FAT filesystem ([`format`]), and reading the identity of an existing one
//! ([`FatIdentity`]) so a rebuilt volume can keep it.

use super::guard;
use super::io::{FatIo, Shared};
use super::raw;
use super::read::fat_err;
use crate::block::BlockDevice;
use crate::{Error, Result};
use std::sync::Arc;

/// A FAT width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

impl FatType {
    /// 12, 16 or 32.
    pub fn bits(self) -> u8 {
        match self {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        }
    }

    /// The type of a width, if it is one.
    pub fn from_bits(bits: u8) -> Option<FatType> {
        match bits {
            12 => Some(FatType::Fat12),
            16 => Some(FatType::Fat16),
            32 => Some(FatType::Fat32),
            _ => None,
        }
    }

    fn to_fatfs(self) -> fatfs::FatType {
        match self {
            FatType::Fat12 => fatfs::FatType::Fat12,
            FatType::Fat16 => fatfs::FatType::Fat16,
            FatType::Fat32 => fatfs::FatType::Fat32,
        }
    }
}

/// How to format a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FatFormatOptions {
    /// The FAT width (default: chosen from the size, as `fatfs` does; FAT32 when `esp`).
    pub fat_type: Option<FatType>,
    /// The volume id (default: random).
    pub volume_id: Option<u32>,
    /// The label: at most 11 bytes of printable ASCII without `"*+,./:;<=>?[\]|`
    /// (default: none, shown as `NO NAME`).
    pub label: Option<String>,
    /// An EFI System Partition: FAT32 is forced (UEFI firmware must read FAT32; FAT12/16
    /// ESPs are unreliable).
    pub esp: bool,
    /// Bytes per cluster (default: chosen from the size).
    pub cluster_size: Option<u32>,
}

/// What identifies a FAT volume: kept when a volume is rebuilt "like" another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatIdentity {
    pub fat_type: FatType,
    pub volume_id: u32,
    /// The label (root-directory entry, else boot sector), without padding; `None` when
    /// unset or `NO NAME`.
    pub label: Option<String>,
    pub cluster_size: u32,
}

impl FatIdentity {
    /// Read the identity of the FAT volume on `dev` (read-only).
    pub fn read(dev: &dyn BlockDevice) -> Result<FatIdentity> {
        let geo = raw::geometry(dev)?;
        let label = match raw::root_label(dev, &geo)? {
            Some((_, l)) => l,
            None => geo.bpb_label,
        };
        Ok(FatIdentity {
            fat_type: FatType::from_bits(geo.fat_bits).unwrap_or(FatType::Fat32),
            volume_id: geo.volume_id,
            label: label_string(&label),
            cluster_size: geo.cluster_bytes,
        })
    }

    /// Options that format a volume with this identity.
    pub fn options(&self) -> FatFormatOptions {
        FatFormatOptions {
            fat_type: Some(self.fat_type),
            volume_id: Some(self.volume_id),
            label: self.label.clone(),
            esp: false,
            cluster_size: Some(self.cluster_size),
        }
    }
}

/// A padded 11-byte label as text (`None` for blank or `NO NAME`).
pub(crate) fn label_string(l: &[u8; 11]) -> Option<String> {
    let end = l
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |p| p + 1);
    let s = String::from_utf8_lossy(&l[..end]).into_owned();
    (!s.is_empty() && s != "NO NAME").then_some(s)
}

/// Check a label and pad it to 11 bytes.
pub fn encode_label(label: &str) -> Result<[u8; 11]> {
    let b = label.as_bytes();
    if b.is_empty() || b.len() > 11 {
        return Err(Error::InvalidArgument(format!(
            "a FAT label has 1 to 11 bytes, `{label}` has {}",
            b.len()
        )));
    }
    if let Some(c) = b
        .iter()
        .find(|&&c| !(0x20..0x7f).contains(&c) || b"\"*+,./:;<=>?[\\]|".contains(&c))
    {
        return Err(Error::InvalidArgument(format!(
            "a FAT label cannot contain {:?} (in `{label}`)",
            char::from(*c)
        )));
    }
    if b[0] == b' ' {
        return Err(Error::InvalidArgument(format!(
            "a FAT label cannot start with a space (`{label}`)"
        )));
    }
    let mut out = [b' '; 11];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// A random volume id.
fn random_id() -> u32 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Format the whole of `dev` as a new, empty FAT filesystem; returns its identity.
///
/// With an explicit (or ESP-forced) type and no cluster size, cluster sizes from 32 KiB
/// down to 512 bytes are tried until the volume has a valid cluster count for the type;
/// a volume too small for the type is an error (FAT32 needs at least 65525 clusters,
/// about 33 MiB).
pub fn format(dev: &dyn BlockDevice, opts: &FatFormatOptions) -> Result<FatIdentity> {
    let fat_type = if opts.esp {
        if matches!(opts.fat_type, Some(t) if t != FatType::Fat32) {
            return Err(Error::InvalidArgument(
                "an EFI System Partition must be FAT32".into(),
            ));
        }
        Some(FatType::Fat32)
    } else {
        opts.fat_type
    };
    if dev.len() < 64 * 1024 {
        return Err(Error::InvalidArgument(format!(
            "a {}-byte FAT filesystem is too small (at least 64 KiB)",
            dev.len()
        )));
    }
    if dev.len() / 512 > u64::from(u32::MAX) {
        return Err(Error::InvalidArgument(format!(
            "a {}-byte volume is too large for FAT",
            dev.len()
        )));
    }
    if let Some(c) = opts.cluster_size {
        if !c.is_power_of_two() || !(512..=65536).contains(&c) {
            return Err(Error::InvalidArgument(format!(
                "a FAT cluster size is a power of two from 512 to 65536, not {c}"
            )));
        }
    }
    let label = opts.label.as_deref().map(encode_label).transpose()?;
    let volume_id = opts.volume_id.unwrap_or_else(random_id);
    let mut base = fatfs::FormatVolumeOptions::new().volume_id(volume_id);
    if let Some(l) = label {
        base = base.volume_label(l);
    }
    if let Some(t) = fat_type {
        base = base.fat_type(t.to_fatfs());
    }
    let mut tries: Vec<Option<u32>> = vec![opts.cluster_size];
    if opts.cluster_size.is_none() && fat_type.is_some() {
        tries.extend((9..=15).rev().map(|s| Some(1u32 << s)));
    }
    let mut last = None;
    for cs in tries {
        let o = match cs {
            Some(c) => base.clone().bytes_per_cluster(c),
            None => base.clone(),
        };
        let shared = Arc::new(Shared::new(dev));
        let r = guard("formatting", || {
            fatfs::format_volume(FatIo::new(shared.clone()), o)
                .map_err(|e| fat_err("cannot format the volume", e))
        });
        match r {
            Ok(()) => {
                let geo = raw::geometry(dev)?;
                if fat_type.is_some_and(|t| t.bits() != geo.fat_bits) {
                    last = Some(Error::InvalidArgument(format!(
                        "a {}-byte volume cannot be FAT{} with {}-byte clusters (it came out FAT{})",
                        dev.len(),
                        fat_type.map_or(0, |t| t.bits()),
                        geo.cluster_bytes,
                        geo.fat_bits
                    )));
                    continue;
                }
                if let Some(l) = &label {
                    raw::set_label(dev, &geo, l)?;
                }
                raw::write_fsinfo(dev, &geo)?;
                dev.flush()?;
                return FatIdentity::read(dev);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::InvalidArgument("cannot format the volume".into())))
}
