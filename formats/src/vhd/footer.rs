//! The VHD footer and dynamic-disk header: parsing with checksum and range checks, the
//! virtual size as qemu computes it, and the CHS geometry of a size.

use super::FOOTER_MAGIC;
use crate::{Error, Result};

/// Size of the footer (and of its copy at the start of a dynamic disk).
pub const FOOTER_LEN: usize = 512;
/// Size of the dynamic-disk header.
pub const HEADER_LEN: usize = 1024;
/// Largest CHS geometry: a footer with it carries the real size in `current_size`.
const MAX_GEOMETRY_SECTORS: u64 = 65535 * 16 * 255;
/// Largest virtual size the format allows (2040 GiB).
pub const MAX_SIZE: u64 = 2040 << 30;

/// What kind of disk a footer describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    /// The disk's bytes, then the footer.
    Fixed,
    /// Blocks allocated on write through a BAT.
    Dynamic,
    /// Dynamic, over a parent image.
    Differencing,
}

impl DiskType {
    /// "fixed", "dynamic" or "differencing".
    pub fn name(&self) -> &'static str {
        match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        }
    }
}

/// A parsed, checksum-verified VHD footer.
#[derive(Debug, Clone)]
pub struct Footer {
    /// File offset of the dynamic header (dynamic and differencing disks).
    pub data_offset: u64,
    /// Four-character creator application ("qemu", "win ", "vpc ", ...).
    pub creator_app: [u8; 4],
    /// `current_size` as stored.
    pub current_size: u64,
    /// Cylinders, heads, sectors per track.
    pub geometry: (u16, u8, u8),
    /// Fixed, dynamic or differencing.
    pub disk_type: DiskType,
    /// The disk's unique id (a differencing child names its parent's).
    pub unique_id: [u8; 16],
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn be64(b: &[u8], off: usize) -> u64 {
    (u64::from(be32(b, off)) << 32) | u64::from(be32(b, off + 4))
}

/// The one's complement of the byte sum of `b`, the checksum field (4 bytes at
/// `field`) counted as zero.
pub fn checksum(b: &[u8], field: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &v)| s.wrapping_add(u32::from(v)));
    !sum
}

fn check_sum(b: &[u8], field: usize, what: &str) -> Result<()> {
    let stored = be32(b, field);
    let computed = checksum(b, field);
    if stored != computed {
        return Err(Error::corrupt(format!(
            "bad {what} checksum: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    Ok(())
}

impl Footer {
    /// Parse and verify a footer (exactly [`FOOTER_LEN`] bytes).
    pub fn parse(b: &[u8]) -> Result<Footer> {
        if b.len() < FOOTER_LEN || b[..8] != FOOTER_MAGIC {
            return Err(Error::corrupt(
                "not a VHD: no \"conectix\" footer in the last 512 bytes".to_string(),
            ));
        }
        let b = &b[..FOOTER_LEN];
        check_sum(b, 64, "VHD footer")?;
        let version = be32(b, 12);
        if version >> 16 != 1 {
            return Err(Error::unsupported(format!(
                "VHD format version {version:#010x}; only 1.x is known"
            )));
        }
        let disk_type = match be32(b, 60) {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            t => {
                return Err(Error::unsupported(format!(
                    "VHD disk type {t}; expected 2 (fixed), 3 (dynamic) or 4 (differencing)"
                )))
            }
        };
        Ok(Footer {
            data_offset: be64(b, 16),
            creator_app: [b[28], b[29], b[30], b[31]],
            current_size: be64(b, 48),
            geometry: (u16::from_be_bytes([b[56], b[57]]), b[58], b[59]),
            disk_type,
            unique_id: b[68..84].try_into().unwrap_or_default(),
        })
    }

    /// The virtual size, decided as qemu does: Virtual PC and qemu's own older images
    /// size the disk by its CHS geometry; Hyper-V, Disk2vhd, XenServer, XenConverter and
    /// qemu's "qem2" (and any image at the maximum geometry) by `current_size`.
    pub fn virtual_size(&self) -> u64 {
        let by_size = [b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0"]
            .iter()
            .any(|a| **a == self.creator_app);
        let (c, h, s) = self.geometry;
        let chs = u64::from(c) * u64::from(h) * u64::from(s);
        if by_size || chs == MAX_GEOMETRY_SECTORS {
            self.current_size
        } else {
            chs * 512
        }
    }
}

/// CHS geometry for `sectors` sectors, as the VHD specification (appendix) computes it.
pub fn geometry(sectors: u64) -> (u16, u8, u8) {
    let total = sectors.min(MAX_GEOMETRY_SECTORS);
    let (mut spt, mut heads, mut cth);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        spt = 17;
        cth = total / spt;
        heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
    }
    let cyl = cth / heads;
    (cyl.min(65535) as u16, heads as u8, spt as u8)
}

/// One parent locator of a differencing disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLocator {
    /// Platform code: "W2ku", "W2ru", "Mac ", "MacX", "Wi2k", "Wi2r".
    pub platform: [u8; 4],
    /// Bytes of locator data.
    pub len: u32,
    /// File offset of the data.
    pub offset: u64,
}

/// A parsed, checksum-verified dynamic-disk header.
#[derive(Debug, Clone)]
pub struct DynamicHeader {
    /// File offset of the block allocation table.
    pub table_offset: u64,
    /// Entries in the BAT.
    pub max_table_entries: u32,
    /// Bytes per block (a power of two, at least one sector).
    pub block_size: u32,
    /// The parent's unique id (differencing disks).
    pub parent_unique_id: [u8; 16],
    /// The parent's file name as stored (UTF-16BE, NUL-trimmed).
    pub parent_name: String,
    /// Locators in use (platform code not zero).
    pub parent_locators: Vec<ParentLocator>,
}

impl DynamicHeader {
    /// Parse and verify a dynamic header ([`HEADER_LEN`] bytes) of a file of `file_len`.
    pub fn parse(b: &[u8], file_len: u64) -> Result<DynamicHeader> {
        if b.len() < HEADER_LEN || &b[..8] != b"cxsparse" {
            return Err(Error::corrupt(
                "no \"cxsparse\" dynamic disk header where the footer points".to_string(),
            ));
        }
        check_sum(&b[..HEADER_LEN], 36, "VHD dynamic header")?;
        let table_offset = be64(b, 16);
        let max_table_entries = be32(b, 28);
        let block_size = be32(b, 32);
        if !block_size.is_power_of_two() || block_size < 512 {
            return Err(Error::corrupt(format!(
                "VHD block size {block_size} is not a power of two of at least 512"
            )));
        }
        let bat_end = u64::from(max_table_entries)
            .checked_mul(4)
            .and_then(|n| n.checked_add(table_offset));
        if bat_end.is_none_or(|e| e > file_len) {
            return Err(Error::corrupt(format!(
                "VHD block allocation table ({max_table_entries} entries at {table_offset:#x}) \
                 extends beyond the end of the file ({file_len} bytes)"
            )));
        }
        let name: Vec<u16> = b[64..576]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        let parent_locators = (0..8)
            .map(|i| 576 + 24 * i)
            .filter(|&o| be32(b, o) != 0)
            .map(|o| ParentLocator {
                platform: [b[o], b[o + 1], b[o + 2], b[o + 3]],
                len: be32(b, o + 8),
                offset: be64(b, o + 16),
            })
            .collect();
        Ok(DynamicHeader {
            table_offset,
            max_table_entries,
            block_size,
            parent_unique_id: b[40..56].try_into().unwrap_or_default(),
            parent_name: String::from_utf16_lossy(&name),
            parent_locators,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_the_specification() {
        // 10 MiB: qemu-img info reports 10 MiB (20480 sectors) as 20 cyl... check product
        // is at most the size and uses the table's sectors-per-track steps.
        let (c, h, s) = geometry(20480);
        assert_eq!((c, h, s), (301, 4, 17));
        assert_eq!(geometry(u64::MAX), (65535, 16, 255));
    }

    #[test]
    fn checksum_skips_its_field() {
        let mut b = vec![1u8; 16];
        b[4..8].copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(checksum(&b, 4), !12u32);
    }
}
