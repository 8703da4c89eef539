//! The VHDX structures before the data: headers, region table and metadata region, parsed
//! with CRC-32C and range checks into what the reader needs.

use crate::block::BlockDevice;
use crate::{Error, Result};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// The two header copies and the two region table copies.
pub(super) const HEADERS: [u64; 2] = [64 * KIB, 128 * KIB];
pub(super) const REGION_TABLES: [u64; 2] = [192 * KIB, 256 * KIB];
pub(super) const HEADER_LEN: usize = 4096;
pub(super) const REGION_TABLE_LEN: usize = 64 * KIB as usize;
pub(super) const METADATA_TABLE_LEN: usize = 64 * KIB as usize;

/// A GUID as VHDX stores it (the first three fields little-endian), written the usual way.
const fn guid(s: &[u8; 36]) -> [u8; 16] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        }
    }
    let mut raw = [0u8; 16];
    let mut i = 0;
    let mut j = 0;
    while i < 36 {
        if s[i] == b'-' {
            i += 1;
            continue;
        }
        raw[j] = nib(s[i]) << 4 | nib(s[i + 1]);
        j += 1;
        i += 2;
    }
    [
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ]
}

pub(super) const BAT_REGION: [u8; 16] = guid(b"2DC27766-F623-4200-9D64-115E9BFD4A08");
pub(super) const METADATA_REGION: [u8; 16] = guid(b"8B7CA206-4790-4B9A-B8FE-575F050F886E");
pub(super) const FILE_PARAMETERS: [u8; 16] = guid(b"CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
pub(super) const VIRTUAL_DISK_SIZE: [u8; 16] = guid(b"2FA54224-CD1B-4876-B211-5DBED83BF4B8");
pub(super) const VIRTUAL_DISK_ID: [u8; 16] = guid(b"BECA12AB-B2E6-4523-93EF-C309E000C746");
pub(super) const LOGICAL_SECTOR_SIZE: [u8; 16] = guid(b"8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
pub(super) const PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(b"CDA348C7-445D-4471-9CC9-E9885251C556");
const PARENT_LOCATOR: [u8; 16] = guid(b"A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
const VHDX_PARENT_LOCATOR_TYPE: [u8; 16] = guid(b"B04AEFB7-D19E-4A81-B789-25B8E9445913");

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | u64::from(le32(b, o + 4)) << 32
}

/// The CRC-32C of a header or region table `b` with its checksum field (at 4) taken as zero.
pub(super) fn checksum(b: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..4]), &[0; 4]);
    crc32c::crc32c_append(crc, &b[8..])
}

/// True when the checksum of `b` is the stored one.
fn crc_ok(b: &[u8]) -> bool {
    checksum(b) == le32(b, 4)
}

/// The key/value parent locator of a differencing disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentLocator {
    /// Every key and value, in the order stored.
    pub entries: Vec<(String, String)>,
}

impl ParentLocator {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What the reader needs from the headers, region table and metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// File offset and length of the BAT region.
    pub bat_offset: u64,
    pub bat_len: u64,
    /// Bytes per payload block.
    pub block_size: u32,
    /// Bytes per logical sector (512 or 4096).
    pub logical_sector_size: u32,
    /// Virtual disk size.
    pub size: u64,
    /// The header's DataWriteGuid (a child names its parent's in `parent_linkage`).
    pub data_write_guid: [u8; 16],
    /// Set for differencing disks.
    pub parent: Option<ParentLocator>,
}

impl Metadata {
    /// Read and check the region table and metadata of `file` (read with its log
    /// replayed), whose current header is `header` (from [`current_header`]).
    pub(crate) fn read(file: &dyn BlockDevice, header: &[u8]) -> Result<Metadata> {
        let version = le16(header, 66);
        if version != 1 {
            return Err(Error::unsupported(format!(
                "VHDX version {version}; expected 1"
            )));
        }
        let (bat, meta) = Self::regions(file)?;
        let mut m = Self::from_region(file, meta)?;
        m.bat_offset = bat.0;
        m.bat_len = bat.1;
        m.data_write_guid = header[32..48].try_into().unwrap_or_default();
        Ok(m)
    }
}

/// The file identifier checked, the valid header with the higher sequence number.
pub(crate) fn current_header(file: &dyn BlockDevice) -> Result<Vec<u8>> {
    let file_len = file.len();
    let mut ident = [0u8; 8];
    if file_len < 320 * KIB {
        return Err(Error::corrupt(format!(
            "truncated VHDX: {file_len} bytes, less than its 320 KiB of headers"
        )));
    }
    file.read_at(&mut ident, 0)?;
    if ident != super::MAGIC {
        return Err(Error::corrupt(
            "not a VHDX: no \"vhdxfile\" identifier".to_string(),
        ));
    }
    let mut best: Option<(u64, Vec<u8>)> = None;
    for at in HEADERS {
        let mut b = vec![0u8; HEADER_LEN];
        file.read_at(&mut b, at)?;
        if &b[..4] != b"head" || !crc_ok(&b) {
            continue;
        }
        let seq = le64(&b, 8);
        if best.as_ref().is_none_or(|(s, _)| seq > *s) {
            best = Some((seq, b));
        }
    }
    best.map(|(_, b)| b).ok_or_else(|| {
        Error::corrupt(
            "neither VHDX header (at 64 KiB and 128 KiB) has a valid signature and CRC-32C"
                .to_string(),
        )
    })
}

impl Metadata {
    /// The BAT and metadata regions (offset, length) from the first valid region table.
    fn regions(file: &dyn BlockDevice) -> Result<((u64, u64), (u64, u64))> {
        let file_len = file.len();
        let mut last_err = None;
        for at in REGION_TABLES {
            let mut b = vec![0u8; REGION_TABLE_LEN];
            file.read_at(&mut b, at)?;
            if &b[..4] != b"regi" || !crc_ok(&b) {
                last_err = Some(format!(
                    "region table at {at:#x} has a bad signature or CRC-32C"
                ));
                continue;
            }
            let count = le32(&b, 8);
            if count > 2047 {
                return Err(Error::corrupt(format!(
                    "VHDX region table lists {count} entries; at most 2047 fit"
                )));
            }
            let (mut bat, mut meta) = (None, None);
            for i in 0..count as usize {
                let e = &b[16 + 32 * i..48 + 32 * i];
                let (off, len, required) = (le64(e, 16), u64::from(le32(e, 24)), le32(e, 28) & 1);
                if off % MIB != 0
                    || len % MIB != 0
                    || off < MIB
                    || off.saturating_add(len) > file_len
                {
                    return Err(Error::corrupt(format!(
                        "VHDX region {} ({len} bytes at {off:#x}) is not 1 MiB aligned or \
                         extends beyond the end of the file ({file_len} bytes)",
                        guid_text(&e[..16])
                    )));
                }
                match e[..16].try_into().unwrap_or([0; 16]) {
                    BAT_REGION => bat = Some((off, len)),
                    METADATA_REGION => meta = Some((off, len)),
                    _ if required != 0 => {
                        return Err(Error::unsupported(format!(
                            "VHDX region {} is required but unknown",
                            guid_text(&e[..16])
                        )))
                    }
                    _ => {}
                }
            }
            return match (bat, meta) {
                (Some(b), Some(m)) => Ok((b, m)),
                _ => Err(Error::corrupt(
                    "VHDX region table lacks the BAT or the metadata region".to_string(),
                )),
            };
        }
        Err(Error::corrupt(format!(
            "no valid VHDX region table: {}",
            last_err.unwrap_or_default()
        )))
    }

    fn from_region(file: &dyn BlockDevice, (off, len): (u64, u64)) -> Result<Metadata> {
        if len < METADATA_TABLE_LEN as u64 {
            return Err(Error::corrupt(format!(
                "VHDX metadata region of {len} bytes is too small"
            )));
        }
        let mut t = vec![0u8; METADATA_TABLE_LEN];
        file.read_at(&mut t, off)?;
        if &t[..8] != b"metadata" {
            return Err(Error::corrupt(
                "VHDX metadata table has no \"metadata\" signature".to_string(),
            ));
        }
        let count = le16(&t, 10) as usize;
        if count > 2047 {
            return Err(Error::corrupt(format!(
                "VHDX metadata table lists {count} entries; at most 2047 fit"
            )));
        }
        let item = |id: [u8; 16]| -> Result<Option<Vec<u8>>> {
            for i in 0..count {
                let e = &t[32 + 32 * i..64 + 32 * i];
                if e[..16] != id {
                    continue;
                }
                let (io, il) = (u64::from(le32(e, 16)), u64::from(le32(e, 20)));
                if io < METADATA_TABLE_LEN as u64 || io + il > len || il > MIB {
                    return Err(Error::corrupt(format!(
                        "VHDX metadata item {} ({il} bytes at {io:#x}) lies outside the \
                         metadata region ({len} bytes)",
                        guid_text(&id)
                    )));
                }
                let mut v = vec![0u8; il as usize];
                file.read_at(&mut v, off + io)?;
                return Ok(Some(v));
            }
            Ok(None)
        };
        let known = [
            FILE_PARAMETERS,
            VIRTUAL_DISK_SIZE,
            VIRTUAL_DISK_ID,
            LOGICAL_SECTOR_SIZE,
            PHYSICAL_SECTOR_SIZE,
            PARENT_LOCATOR,
        ];
        for i in 0..count {
            let e = &t[32 + 32 * i..64 + 32 * i];
            let required = le32(e, 24) & 4 != 0;
            if required && !known.iter().any(|k| e[..16] == *k) {
                return Err(Error::unsupported(format!(
                    "VHDX metadata item {} is required but unknown",
                    guid_text(&e[..16])
                )));
            }
        }
        let need = |id, what: &str, n: usize| -> Result<Vec<u8>> {
            match item(id)? {
                Some(v) if v.len() >= n => Ok(v),
                _ => Err(Error::corrupt(format!(
                    "VHDX metadata lacks the {what} item"
                ))),
            }
        };
        let params = need(FILE_PARAMETERS, "file parameters", 8)?;
        let block_size = le32(&params, 0);
        let has_parent = le32(&params, 4) & 2 != 0;
        let size = le64(&need(VIRTUAL_DISK_SIZE, "virtual disk size", 8)?, 0);
        let lss = le32(&need(LOGICAL_SECTOR_SIZE, "logical sector size", 4)?, 0);
        if !block_size.is_power_of_two() || !(MIB..=256 * MIB).contains(&u64::from(block_size)) {
            return Err(Error::corrupt(format!(
                "VHDX block size {block_size} is not a power of two from 1 MiB to 256 MiB"
            )));
        }
        if lss != 512 && lss != 4096 {
            return Err(Error::corrupt(format!(
                "VHDX logical sector size {lss}; expected 512 or 4096"
            )));
        }
        if size == 0 || size % u64::from(lss) != 0 || size > 64 << 40 {
            return Err(Error::corrupt(format!(
                "VHDX virtual disk size {size} is not a multiple of the sector size {lss} up to 64 TiB"
            )));
        }
        let parent = if has_parent {
            let v = need(PARENT_LOCATOR, "parent locator", 20)?;
            Some(parse_locator(&v)?)
        } else {
            None
        };
        Ok(Metadata {
            bat_offset: 0,
            bat_len: 0,
            block_size,
            logical_sector_size: lss,
            size,
            data_write_guid: [0; 16],
            parent,
        })
    }

    /// Payload blocks per sector bitmap block.
    pub fn chunk_ratio(&self) -> u64 {
        (1u64 << 23) * u64::from(self.logical_sector_size) / u64::from(self.block_size)
    }
}

fn parse_locator(v: &[u8]) -> Result<ParentLocator> {
    if v[..16] != VHDX_PARENT_LOCATOR_TYPE {
        return Err(Error::unsupported(format!(
            "VHDX parent locator of type {}; only the VHDX one is known",
            guid_text(&v[..16])
        )));
    }
    let n = le16(v, 18) as usize;
    let text = |o: u32, l: u16| -> Result<String> {
        let (o, l) = (o as usize, l as usize);
        let b = v.get(o..o + l).filter(|_| l % 2 == 0).ok_or_else(|| {
            Error::corrupt(format!(
                "VHDX parent locator entry ({l} bytes at {o}) lies outside the locator"
            ))
        })?;
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Ok(String::from_utf16_lossy(&units))
    };
    let mut entries = Vec::new();
    for i in 0..n {
        let e = v.get(20 + 12 * i..32 + 12 * i).ok_or_else(|| {
            Error::corrupt(format!(
                "VHDX parent locator claims {n} entries; they do not fit"
            ))
        })?;
        entries.push((
            text(le32(e, 0), le16(e, 8))?,
            text(le32(e, 4), le16(e, 10))?,
        ));
    }
    Ok(ParentLocator { entries })
}

/// A GUID in its usual text form, from its VHDX bytes.
pub(crate) fn guid_text(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8..10]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>(),
        b[10..16]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip() {
        assert_eq!(
            guid_text(&BAT_REGION),
            "2dc27766-f623-4200-9d64-115e9bfd4a08"
        );
        assert_eq!(&BAT_REGION[..4], &[0x66, 0x77, 0xc2, 0x2d]);
    }
}
