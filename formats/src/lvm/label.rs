//! The LVM2 physical volume label (`LABELONE` in one of the first four sectors), its PV
//! header (UUID, data areas, metadata areas) and the metadata area headers with their
//! circular text buffers. Layout and checksums as in lvm2's `lib/format_text/layout.h`.

use crate::block::BlockDevice;
use crate::{Error, Result};

const SECTOR: u64 = 512;
const LABEL_ID: &[u8; 8] = b"LABELONE";
const LABEL_TYPE: &[u8; 8] = b"LVM2 001";
const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
const MDA_HEADER_SIZE: u64 = 512;
/// lvm2's `INITIAL_CRC`.
const INITIAL_CRC: u32 = 0xf597_a6cf;
/// Largest metadata text read (real ones are a few KiB; the default area is 1 MiB).
const MAX_TEXT: u64 = 16 << 20;
/// Most data or metadata areas one PV header may list.
const MAX_AREAS: usize = 16;

/// lvm2's checksum: CRC-32 (the reflected 0xEDB88320 polynomial) from [`INITIAL_CRC`]
/// without the final inversion.
pub fn lvm_crc(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!INITIAL_CRC);
    h.update(data);
    !h.finalize()
}

/// One physical volume's label: who it is and where its metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// The PV UUID, 32 characters without dashes.
    pub uuid: String,
    /// The device size the PV header records (bytes).
    pub device_size: u64,
    /// Data areas (offset, size) in bytes from the PV start (size 0: to the end).
    pub data_areas: Vec<(u64, u64)>,
    /// Metadata areas (offset, size) in bytes from the PV start.
    pub metadata_areas: Vec<(u64, u64)>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The PV label of `dev`, or `None` when none of its first four sectors holds one.
pub fn read_label(dev: &dyn BlockDevice) -> Result<Option<PvLabel>> {
    if dev.len() < 4 * SECTOR {
        return Ok(None);
    }
    let mut head = vec![0u8; 4 * SECTOR as usize];
    dev.read_at(&mut head, 0)?;
    for s in 0..4usize {
        let sec = &head[s * 512..(s + 1) * 512];
        if &sec[..8] != LABEL_ID {
            continue;
        }
        if u64_at(sec, 8) != s as u64 {
            continue;
        }
        let crc = u32_at(sec, 16);
        if lvm_crc(&sec[20..]) != crc {
            return Err(Error::corrupt(format!(
                "LVM2 label in sector {s}: checksum {crc:#010x} does not match its content \
                 ({:#010x})",
                lvm_crc(&sec[20..])
            )));
        }
        if &sec[24..32] != LABEL_TYPE {
            return Err(Error::unsupported(format!(
                "LVM label of type {:?} in sector {s}; subroot reads LVM2 (\"LVM2 001\")",
                String::from_utf8_lossy(&sec[24..32])
            )));
        }
        let off = u32_at(sec, 20) as usize;
        if !(32..=512 - 40).contains(&off) {
            return Err(Error::corrupt(format!(
                "LVM2 label in sector {s}: PV header offset {off} is outside the sector"
            )));
        }
        return parse_pv_header(&sec[off..], dev.len()).map(Some);
    }
    Ok(None)
}

/// The PV header: UUID, device size, then two zero-terminated lists of (offset, size).
fn parse_pv_header(b: &[u8], dev_len: u64) -> Result<PvLabel> {
    let uuid = &b[..32];
    if !uuid.iter().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::corrupt(
            "LVM2 PV header: the UUID is not 32 alphanumeric characters".to_string(),
        ));
    }
    let device_size = u64_at(b, 32);
    let mut at = 40;
    let mut lists = [Vec::new(), Vec::new()];
    for list in &mut lists {
        loop {
            if at + 16 > b.len() {
                return Err(Error::corrupt(
                    "LVM2 PV header: its area lists run past the label sector".to_string(),
                ));
            }
            let (o, s) = (u64_at(b, at), u64_at(b, at + 8));
            at += 16;
            if o == 0 {
                break;
            }
            if list.len() == MAX_AREAS {
                return Err(Error::corrupt(format!(
                    "LVM2 PV header: more than {MAX_AREAS} areas"
                )));
            }
            if o >= dev_len || s > dev_len - o {
                return Err(Error::corrupt(format!(
                    "LVM2 PV header: area at {o} of {s} bytes is beyond the device ({dev_len} bytes)"
                )));
            }
            list.push((o, s));
        }
    }
    let [data_areas, metadata_areas] = lists;
    Ok(PvLabel {
        uuid: String::from_utf8_lossy(uuid).into_owned(),
        device_size,
        data_areas,
        metadata_areas,
    })
}

/// The current metadata text of the metadata area at (`offset`, `size`) of `dev`, or `None`
/// for an area that holds none (an empty PV, or one with `metadatacopies 0`). The text is
/// checked against the checksum its location records.
pub fn read_metadata(dev: &dyn BlockDevice, offset: u64, size: u64) -> Result<Option<String>> {
    if size < MDA_HEADER_SIZE * 2 {
        return Err(Error::corrupt(format!(
            "LVM2 metadata area at {offset} is {size} bytes, smaller than its header"
        )));
    }
    let mut h = vec![0u8; MDA_HEADER_SIZE as usize];
    dev.read_at(&mut h, offset)?;
    if &h[4..20] != MDA_MAGIC {
        return Err(Error::corrupt(format!(
            "LVM2 metadata area at {offset}: bad magic"
        )));
    }
    let crc = u32_at(&h, 0);
    if lvm_crc(&h[4..]) != crc {
        return Err(Error::corrupt(format!(
            "LVM2 metadata area at {offset}: header checksum {crc:#010x} does not match"
        )));
    }
    let version = u32_at(&h, 20);
    if version != 1 {
        return Err(Error::unsupported(format!(
            "LVM2 metadata area at {offset}: header version {version} (subroot reads 1)"
        )));
    }
    // The first raw location is the committed metadata.
    let (loc, len, text_crc) = (u64_at(&h, 40), u64_at(&h, 48), u32_at(&h, 56));
    // RAW_LOCN_IGNORED: a copy `pvchange --metadataignore` set aside.
    let ignored = u32_at(&h, 60) & 1 != 0;
    if loc == 0 || len == 0 || ignored {
        return Ok(None);
    }
    if len > MAX_TEXT || loc < MDA_HEADER_SIZE || loc >= size || len > size - MDA_HEADER_SIZE {
        return Err(Error::corrupt(format!(
            "LVM2 metadata area at {offset}: text of {len} bytes at {loc} does not fit the \
             {size}-byte area"
        )));
    }
    // A circular buffer after the header: the text may wrap to the buffer's start.
    let mut text = vec![0u8; len as usize];
    let first = len.min(size - loc);
    dev.read_at(&mut text[..first as usize], offset + loc)?;
    if first < len {
        dev.read_at(&mut text[first as usize..], offset + MDA_HEADER_SIZE)?;
    }
    if lvm_crc(&text) != text_crc {
        return Err(Error::corrupt(format!(
            "LVM2 metadata area at {offset}: the metadata text's checksum does not match"
        )));
    }
    while text.last() == Some(&0) {
        text.pop();
    }
    String::from_utf8(text).map(Some).map_err(|_| {
        Error::corrupt(format!(
            "LVM2 metadata area at {offset}: the metadata is not text"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_lvm2() {
        // lvm2's calc_crc over "123456789" from INITIAL_CRC, computed with its nibble table.
        let mut crc = INITIAL_CRC;
        const TAB: [u32; 16] = [
            0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158,
            0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4,
            0xa00ae278, 0xbdbdf21c,
        ];
        for &b in b"123456789" {
            crc ^= b as u32;
            crc = (crc >> 4) ^ TAB[(crc & 0xf) as usize];
            crc = (crc >> 4) ^ TAB[(crc & 0xf) as usize];
        }
        assert_eq!(lvm_crc(b"123456789"), crc);
    }
}
